//! Integration tests of baove-eventlog against a real sled database in a
//! temporary directory. One binary: `cargo test -p baove-eventlog`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod append;
mod concurrency;
mod crash;
mod forms;
mod gate;
mod import;
mod properties;
mod rest;
mod setaside;
mod tamper;
mod tlog;
mod wal;

use baove_eventlog::{Actor, AppendRequest, ExpectedVersion, NewEvent, StreamId};

/// An append of `n` small events, published or not.
pub fn request(
    stream: StreamId,
    expected: ExpectedVersion,
    command_id: &str,
    n: usize,
) -> AppendRequest {
    AppendRequest {
        stream,
        expected,
        command_id: command_id.to_owned(),
        actor: Actor {
            user_id: "op-7".into(),
            role: "hotline_operator".into(),
            agency_id: "vn/tong-dai-111".into(),
        },
        causation_id: String::new(),
        correlation_id: format!("corr-{command_id}"),
        events: (0..n)
            .map(|i| {
                NewEvent::new(
                    "NoteAdded",
                    1,
                    &serde_json::json!({ "command": command_id, "i": i }),
                )
                .unwrap()
            })
            .collect(),
        publish: true,
    }
}

/// This test binary run again as a child process, running only the test
/// `test` with `env` set to `dir`, its stdout piped for the parent to read
/// (the crash and write-ahead tests SIGKILL it).
pub fn spawn_child(test: &str, env: &str, dir: impl AsRef<std::ffi::OsStr>) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(env, dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap()
}
