//! baove's messaging over NATS JetStream.
//!
//! sled is the source of truth and NATS the transport: a service appends an
//! event to its own log with an outbox mark, the [`OutboxRelay`] publishes it
//! (one envelope per message, `Nats-Msg-Id` = event id) and clears the mark
//! only after JetStream's ack. A receiver reads through a durable pull
//! consumer ([`run_consumer`]), applies the event, records it in its own
//! inbox and only then acks, so a redelivery changes nothing. A message
//! that can never be applied (it does not decode, or the receiver's rules
//! refuse it) is parked: kept whole in the receiver's log (tree `parked`,
//! [`baove_eventlog::EventLog::parked`]), counted and logged once, and the
//! consumer goes on with the next one.
//!
//! Works against nats-server 2.9 (Debian's package) and newer: no feature
//! newer than 2.9 is used.
//!
//! # Layout
//! - [`alert`]: the alerts a person must act on, one typed payload each,
//!   published on `BAOVE_ALERT`.
//! - `connect`: [`connect`] with retries.
//! - `streams`: [`StreamSpec`], the services' streams, [`ensure_stream`].
//! - `publish`: [`publish`] one envelope, the headers it carries.
//! - `relay`: [`OutboxRelay`].
//! - [`kv`]: the key-value buckets (leases, intake's data keys), made by
//!   hand for nats-server 2.9.
//! - [`lease`]: which process of a service is the active (a key-value
//!   bucket with expiring entries, compare-and-set renewals).
//! - [`logstream`]: every event of a log on its own stream ([`LogRelay`]),
//!   the record a shortened log is repaired from and a data directory
//!   rebuilt from ([`logstream::catch_up`]).
//! - [`partition`]: one province's share of a national deployment: its
//!   own streams and lease key.
//! - [`replicas`]: a stream's stalled replicas in a cluster, and the step-down
//!   of its leader that restarts their catch-up.
//! - `consumer`: [`ConsumerSpec`], [`Handler`], [`run_consumer`].
//! - `health`: [`Bus`], [`BusHealth`]: whether each part makes progress.
//!
//! # After the bus loses its store
//! Every exchange converges from the services' own logs:
//! - each service keeps its streams (its own, and the alert stream for
//!   casework and referral): they are checked every second and made again
//!   as soon as they are missing;
//! - each relay remembers the bus sequence of what it delivered
//!   (`published` in the event log); a stream holding fewer messages than
//!   that lost some, and the relay publishes the whole log's published
//!   events again, in order, under their own ids;
//! - consumers are made again from the start of the new stream; each
//!   receiver's inbox drops what it had already applied;
//! - intake re-publishes a report until casework's answer comes back, and
//!   casework answers a repeated report by publishing its answer again.

pub mod alert;
mod connect;
mod consumer;
mod health;
pub mod kv;
pub mod lease;
pub mod logstream;
pub mod partition;
mod publish;
mod relay;
pub mod replicas;
mod streams;

pub use connect::{Credentials, connect, connect_as, inbox_prefix};
pub use consumer::{
    CONSUMER_PENDING, CONSUMER_REDELIVERED, ConsumerSpec, HandleError, Handler, MISSING_FOR,
    consumer_part, run_consumer,
};
pub use health::{Bus, BusHealth, Parts, first_failure};
pub use logstream::{CHAIN_FAILURES, LogRelay};
pub use publish::{
    HEADER_CORRELATION_ID, HEADER_EVENT_TYPE, HEADER_STREAM_ID, Published, publish, subject_for,
};
pub use relay::{OutboxRelay, RELAY_PUBLISH_SECONDS};
pub use streams::{ALERT, CASE, Ensured, INTAKE, REFERRAL, StreamSpec, ensure_stream};

/// How long baove waits for JetStream to answer a question about a stream
/// or bucket (where a log stream ends, which event it holds, a record's
/// or a referral's data key) before asking again or refusing the write. While a stream
/// elects a leader (its NATS node died) a request is answered by nobody
/// and would wait out the client's 10 s timeout, though the new leader is
/// usually there within 4 to 9 s. Measured on a three-node cluster on
/// loopback whose leader's node is killed, 3 runs each, with the client's
/// timeout and then with this bound:
/// - a log relay (`crates/bus/tests/it/failover.rs`): the event appended
///   at the kill reached the stream 10.11 s after it in every run, then
///   6.11 s in every run;
/// - a new record's data key (`baove_runtime::keys`, its failover test,
///   asking again 100 ms after each refusal): 10.11 s in every run, then
///   6.31, 4.21 and 8.42 s;
/// - a new referral's data key (`baove_runtime::referral_keys`, its
///   failover test, likewise): 10.01 s in every run, then 10.52, 6.31,
///   8.42, 6.31, 8.42 and 4.21 s; meanwhile a read of a referral's text
///   read before (opened with the key read then when the bucket does not
///   answer) took 10.00, 10.01 and 0.00 s, then 2.00 s in every run.
pub const ASK_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

/// How long a question goes unanswered before [`ask`] asks it once more.
/// A request sent while a stream elects a leader is dropped by the servers
/// and never answered, even once the leader is there; asked again, it is
/// answered as soon as the leader is. Short, since asking again costs one
/// request and waits for nothing (the earlier askings are still awaited).
/// Measured as for [`ASK_WITHIN`], with askings traced: the answer came
/// 1 to 2 ms after the first asking sent once the leader was there, where
/// before it waited for the next bounded attempt (up to 2.1 s). Whole
/// figures after: the log relay 4.11, 8.37, 4.87, 5.37, 5.37 and 6.11 s;
/// a record's data key 7.57, 7.57, 5.97, 6.31, 6.31, 5.46, 5.22, 4.71 and
/// 7.57 s; a referral's 7.31, 7.32 and 5.46 s (the election itself varies
/// more than the wait saved).
pub const ASK_AGAIN_AFTER: std::time::Duration = std::time::Duration::from_millis(250);

/// The first answer to `question`, asked at once and again each
/// [`ASK_AGAIN_AFTER`] while none came, every asking awaited, for at most
/// [`ASK_WITHIN`]; `None` when nobody answered. For questions that are
/// safe to ask twice: reads, and writes whose second asking is refused
/// for the first (a bucket's create).
pub async fn ask<T, Q: std::future::Future<Output = T>>(
    mut question: impl FnMut() -> Q,
) -> Option<T> {
    use futures_util::StreamExt as _;
    let deadline = tokio::time::Instant::now() + ASK_WITHIN;
    let mut asked = futures_util::stream::FuturesUnordered::new();
    loop {
        asked.push(question());
        let again = (tokio::time::Instant::now() + ASK_AGAIN_AFTER).min(deadline);
        tokio::select! {
            Some(answer) = asked.next() => return Some(answer),
            () = tokio::time::sleep_until(again) => {
                if again >= deadline {
                    return None;
                }
            }
        }
    }
}

/// What can go wrong on the bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Could not reach NATS (yet).
    #[error("nats unavailable: {0}")]
    Unavailable(String),
    /// JetStream refused or failed a request.
    #[error("jetstream: {0}")]
    JetStream(String),
    /// The event log failed underneath.
    #[error(transparent)]
    Log(#[from] baove_eventlog::Error),
    /// The log and its log stream hold different events at a position:
    /// two processes wrote the same log, or one was changed on disk.
    #[error(
        "the event log and its log stream {stream} hold different events at position {position}: another process wrote this log, or it was changed on disk. In a cluster (stream_replicas above 1) the process stops, and started again sets aside what it wrote that the cluster never stored (docs/cluster.md, \"Rejoining\"); otherwise stop this process and rebuild its data directory from the stream (README, \"Backup and restore\")"
    )]
    Diverged {
        /// The position.
        position: u64,
        /// The log stream.
        stream: &'static str,
    },
    /// The log stream holds more than the event log, which agrees with it
    /// as far as it goes: another process extended the stream, or this log
    /// started while NATS was away and serves without events it once had.
    #[error(
        "the event log ends at position {last} but its log stream {stream} holds {published} events: restart the service so that it takes the missing events from the stream before serving"
    )]
    Behind {
        /// Where the event log ends.
        last: u64,
        /// Where the log stream ends.
        published: u64,
        /// The log stream.
        stream: &'static str,
    },
    /// Shut down while waiting.
    #[error("cancelled")]
    Cancelled,
}
