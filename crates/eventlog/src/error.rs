//! The one error type of the event log.

/// What can go wrong with an append or a read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The stream's version is not the one the append expected. Nothing was
    /// written; `current` is the version to reload from.
    #[error(
        "version conflict on stream {stream}: expected {expected}, current version is {current}"
    )]
    Conflict {
        /// The stream.
        stream: crate::StreamId,
        /// What the caller expected, as text ("no stream", "3", ...).
        expected: String,
        /// The stream's current version (0 = no events).
        current: u64,
    },
    /// A command id that was already applied to another stream.
    #[error(
        "command_id {command_id} was already used on stream {stream}; a retry must name the same stream"
    )]
    CommandIdReused {
        /// The command id.
        command_id: String,
        /// The stream it was applied to.
        stream: crate::StreamId,
    },
    /// Input that breaks a rule; `field` names what, `rule` says why.
    #[error("invalid {field}: {rule}")]
    InvalidArgument {
        /// The offending field.
        field: &'static str,
        /// The rule it breaks.
        rule: String,
    },
    /// Stored bytes that do not decode: the store was altered or damaged.
    #[error("corrupt event log: {0}")]
    Corrupt(String),
    /// sled or the file system failed. The log stops accepting appends after
    /// a failed flush, since what reached the disk is then unknown.
    #[error("storage failure: {0}")]
    Storage(String),
    /// The log was closed (shutdown) or its writer stopped after a failure.
    #[error("event log is closed")]
    Closed,
    /// This log only follows another (a standby): it takes no appends.
    #[error(
        "this process is a standby: it follows the active's log and takes no writes; send writes to the active{}",
        if active.is_empty() { String::new() } else { format!(" at {active}") }
    )]
    ReadOnly {
        /// The active's address, when known.
        active: String,
    },
    /// The append is durable here but was not stored by the cluster within
    /// the wait ([`crate::EventLog::gate_acks`]): not acknowledged. A retry
    /// with the same command id writes nothing and waits again.
    #[error(
        "written here at position {position} but not stored by a quorum of the cluster within {waited_ms} ms: not acknowledged; retry with the same request id"
    )]
    NotReplicated {
        /// The append's last global position.
        position: u64,
        /// How long it waited.
        waited_ms: u64,
    },
}

impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Self {
        Self::Storage(e.to_string())
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Self::Storage(e.to_string())
    }
}
