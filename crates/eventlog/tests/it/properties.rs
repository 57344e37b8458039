//! For any sequence of appends with random expected versions and repeated
//! command ids, the stored log is exactly the accepted appends.

use std::collections::HashMap;

use baove_eventlog::{Error, EventLog, ExpectedVersion, StreamId, Verification};
use proptest::prelude::*;

use crate::request;

#[derive(Clone, Debug)]
struct Op {
    stream: usize,
    expected: Expect,
    command: usize,
    events: usize,
}

#[derive(Clone, Debug)]
enum Expect {
    NoStream,
    Exact(u64),
    Right,
    Any,
}

fn op() -> impl Strategy<Value = Op> {
    let expect = prop_oneof![
        Just(Expect::NoStream),
        (0u64..6).prop_map(Expect::Exact),
        Just(Expect::Right),
        Just(Expect::Right),
        Just(Expect::Any),
    ];
    (0usize..3, expect, 0usize..12, 1usize..4).prop_map(|(stream, expected, command, events)| Op {
        stream,
        expected,
        command,
        events,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn stored_log_is_exactly_the_accepted_appends(ops in prop::collection::vec(op(), 1..25)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(check(ops));
    }
}

async fn check(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::open(dir.path()).await.unwrap();
    let streams = [StreamId::new(), StreamId::new(), StreamId::new()];
    // The model: each stream's accepted payload commands, and each command's answer.
    let mut model: HashMap<StreamId, Vec<String>> = HashMap::new();
    let mut answers: HashMap<String, (StreamId, u64, u64)> = HashMap::new();
    for op in ops {
        let stream = streams[op.stream];
        let command = format!("cmd-{}", op.command);
        let version = model.get(&stream).map_or(0, |v| v.len() as u64);
        let expected = match op.expected {
            Expect::NoStream => ExpectedVersion::NoStream,
            Expect::Exact(v) => ExpectedVersion::Exact(v),
            Expect::Right => ExpectedVersion::Exact(version),
            Expect::Any => ExpectedVersion::Any,
        };
        let result = log
            .append(request(stream, expected, &command, op.events))
            .await;
        if let Some(&(first_stream, first, last)) = answers.get(&command) {
            if first_stream == stream {
                let a = result.unwrap();
                assert!(a.replayed);
                assert_eq!((a.first_seq, a.last_seq), (first, last));
            } else {
                assert!(
                    matches!(result, Err(Error::CommandIdReused { .. })),
                    "{result:?}"
                );
            }
            continue;
        }
        let accepted = match expected {
            ExpectedVersion::NoStream => version == 0,
            ExpectedVersion::Exact(v) => v == version,
            ExpectedVersion::Any => true,
        };
        if accepted {
            let a = result.unwrap();
            assert_eq!(
                (a.first_seq, a.last_seq),
                (version + 1, version + op.events as u64)
            );
            answers.insert(command.clone(), (stream, a.first_seq, a.last_seq));
            model
                .entry(stream)
                .or_default()
                .extend(std::iter::repeat_n(command, op.events));
        } else {
            assert!(
                matches!(result, Err(Error::Conflict { current, .. }) if current == version),
                "{result:?}"
            );
        }
    }
    let mut total = 0;
    for stream in streams {
        let expected = model.remove(&stream).unwrap_or_default();
        let stored = log.read_stream(stream, 1, 10_000).await.unwrap();
        let seqs: Vec<u64> = stored.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=expected.len() as u64).collect::<Vec<_>>());
        let commands: Vec<String> = stored.iter().map(|e| e.command_id.clone()).collect();
        assert_eq!(commands, expected);
        total += stored.len();
        match log.verify(stream).await.unwrap() {
            Verification::Intact(head) => assert_eq!(head.version, expected.len() as u64),
            Verification::NoStream => assert!(expected.is_empty()),
            broken => panic!("{broken:?}"),
        }
    }
    let all = log.read_all(1, 10_000).await.unwrap();
    assert_eq!(all.len(), total);
    assert!(all.iter().zip(1u64..).all(|(e, p)| e.global_position == p));
    // Reads of the tail are served from the events as the writer made
    // them; after a reopen the same reads come from sled: they must be the
    // same events, byte for byte, from every position.
    let mut live = Vec::new();
    for from in 1..=total as u64 + 1 {
        live.push(log.read_all(from, 3).await.unwrap());
    }
    drop(log);
    let log = EventLog::open(dir.path()).await.unwrap();
    for (from, events) in (1u64..).zip(live) {
        let stored = log.read_all(from, 3).await.unwrap();
        assert_eq!(events, stored, "from position {from}");
        for (a, b) in events.iter().zip(&stored) {
            assert_eq!(a.encode().unwrap(), b.encode().unwrap());
        }
    }
}
