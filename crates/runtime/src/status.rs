//! The one mapping from event log errors to gRPC status codes.

use baove_eventlog::Error;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// Metadata key carrying the current version on an `ABORTED` conflict.
pub const CURRENT_VERSION_KEY: &str = "baove-current-version";

/// Maps an event log error to its status: conflict → `ABORTED` (with the
/// current version in the message and in `baove-current-version`), bad input
/// → `INVALID_ARGUMENT` with a `BadRequest` field violation, storage or
/// shutdown → `UNAVAILABLE`, corruption → `DATA_LOSS`.
#[must_use]
pub fn from_log(error: &Error) -> Status {
    match error {
        Error::Conflict { current, .. } => {
            let mut status = Status::aborted(error.to_string());
            if let Ok(value) = current.to_string().parse() {
                status.metadata_mut().insert(CURRENT_VERSION_KEY, value);
            }
            status
        }
        Error::CommandIdReused { .. } => Status::failed_precondition(error.to_string()),
        Error::InvalidArgument { field, rule } => invalid_argument(field, rule),
        Error::Corrupt(_) => Status::data_loss(error.to_string()),
        Error::Storage(_) | Error::Closed => Status::unavailable(error.to_string()),
    }
}

/// `INVALID_ARGUMENT` naming `field` and the rule it breaks, with a
/// `google.rpc.BadRequest` detail for clients that read details.
#[must_use]
pub fn invalid_argument(field: &str, rule: &str) -> Status {
    Status::with_error_details(
        Code::InvalidArgument,
        format!("invalid {field}: {rule}"),
        ErrorDetails::with_bad_request_violation(field, rule),
    )
}

/// `INVALID_ARGUMENT` with one `BadRequest` field violation per bad field.
#[must_use]
pub fn violations(violations: &baove_domain::Violations) -> Status {
    let mut details = ErrorDetails::new();
    for v in &violations.0 {
        details.add_bad_request_violation(v.field.clone(), v.rule.clone());
    }
    Status::with_error_details(
        Code::InvalidArgument,
        format!("invalid request: {violations}"),
        details,
    )
}
