//! The audit feature's records: what lets an auditor who trusts nothing
//! check a service's history.
//!
//! - [`access`]: the access log, who read which case, when, through which
//!   RPC and for what purpose, and every refusal; a read is answered only
//!   once its entry is stored.
//! - [`checkpoint`]: C2SP checkpoints of each service's transparency log
//!   (signed notes), witnesses that cosign only a log that grew, export
//!   bundles verifiable offline, and the envelope and checkpoint
//!   conversions to and from the wire messages.
//! - [`checkpointer`]: the service's signer of checkpoints, the newest kept
//!   outside the log and checked at start, so that a log shorter than what
//!   was acknowledged, or changed, is never served.
//!
//! `baove.v1.AuditService`, which serves these over gRPC, is hosted with
//! every service by `baove-runtime` (`baove_runtime::audit`): its case
//! history opens a case's private text with the service's keys, which live
//! there.

pub mod access;
pub mod checkpoint;
pub mod checkpointer;
