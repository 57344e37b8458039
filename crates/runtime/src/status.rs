//! The one mapping from event log errors to gRPC status codes.

use baove_eventlog::Error;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// Metadata key carrying the current version on an `ABORTED` conflict.
pub const CURRENT_VERSION_KEY: &str = "baove-current-version";

/// Metadata of a standby's refusal: the active's address.
pub const ACTIVE_KEY: &str = "baove-active";

/// Metadata of a refusal whose only fault is the partition it was sent to
/// (a report about a commune of another province): the province whose
/// partition takes the request unchanged
/// ([`baove_domain::Violations::only_elsewhere`]). The CLI and the console,
/// given that province's processes, send it there.
pub const PARTITION_KEY: &str = "baove-partition";

/// Beside [`PARTITION_KEY`], that province's name as UTF-8 ("Thành phố Cần
/// Thơ"; binary metadata, since names are not ASCII), when known: what a
/// console tells the person whose report it cannot send on.
pub const PARTITION_NAME_KEY: &str = "baove-partition-name-bin";

/// Maps an event log error to its status: conflict → `ABORTED` (with the
/// current version in the message and in `baove-current-version`), bad input
/// → `INVALID_ARGUMENT` with a `BadRequest` field violation, storage,
/// shutdown, a quorum not reached or a standby's refusal (with the active's
/// address in `baove-active`) → `UNAVAILABLE`, corruption → `DATA_LOSS`.
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
        Error::Storage(_) | Error::Closed | Error::NotReplicated { .. } => {
            Status::unavailable(error.to_string())
        }
        Error::ReadOnly { active } => {
            let mut status = Status::unavailable(error.to_string());
            // Not known (a process that just lost its lease): no address
            // rather than an empty one, which a client would try to reach.
            if !active.trim().is_empty()
                && let Ok(value) = active.parse()
            {
                status.metadata_mut().insert(ACTIVE_KEY, value);
            }
            status
        }
    }
}

/// Why a record (a case, a referral) could not be loaded from the log.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The log could not be read (UNAVAILABLE, retryable).
    #[error(transparent)]
    Log(#[from] Error),
    /// The stream exists but is not of this kind (an access-log or
    /// checkpoint stream, another service's id): for a reader, there is no
    /// such record (NOT_FOUND).
    #[error("no {0} {1}")]
    NotFound(&'static str, uuid::Uuid),
    /// A stored event does not decode: the log holds something this code
    /// cannot read (DATA_LOSS, never retryable).
    #[error("stream {stream}: stored event seq {seq} ({event_type}) does not decode: {reason}")]
    Undecodable {
        /// The stream.
        stream: uuid::Uuid,
        /// The event's seq.
        seq: u64,
        /// Its stored type.
        event_type: String,
        /// What the decoder said (clipped).
        reason: String,
    },
}

impl LoadError {
    /// The error of `envelope`, which does not decode for `reason`.
    #[must_use]
    pub fn undecodable(envelope: &baove_eventlog::Envelope, reason: &str) -> Self {
        Self::Undecodable {
            stream: *envelope.stream_id.as_uuid(),
            seq: envelope.seq,
            event_type: baove_domain::text::clip(&envelope.event_type, 64).into_owned(),
            reason: baove_domain::text::clip(reason, 300).into_owned(),
        }
    }
}

impl From<LoadError> for Status {
    fn from(e: LoadError) -> Self {
        match &e {
            LoadError::Log(log) => from_log(log),
            LoadError::NotFound(..) => Self::not_found(e.to_string()),
            LoadError::Undecodable { .. } => Self::data_loss(e.to_string()),
        }
    }
}

impl From<LoadError> for baove_bus::HandleError {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::Log(_) => Self::Retry(e.to_string()),
            // Retrying cannot help: the message is set aside (and logged)
            // so the consumer goes on with the next one.
            LoadError::NotFound(..) | LoadError::Undecodable { .. } => Self::Reject(e.to_string()),
        }
    }
}

/// The most field violations one error carries; the rest are counted in
/// a last entry. A request with 100,000 bad list items must not produce a
/// 5 MB error.
pub const MAX_VIOLATIONS: usize = 20;
/// The longest field path or rule echoed back, in characters.
const MAX_ECHO: usize = 200;

/// `INVALID_ARGUMENT` naming `field` and the rule it breaks, with a
/// `google.rpc.BadRequest` detail for clients that read details.
#[must_use]
pub fn invalid_argument(field: &str, rule: &str) -> Status {
    violations(&baove_domain::Violations::one(field, rule))
}

/// `INVALID_ARGUMENT` with one `BadRequest` field violation per bad field:
/// the first [`MAX_VIOLATIONS`], then one entry counting the rest; field
/// paths and rules are clipped, so that an echoed value stays short.
#[must_use]
pub fn violations(violations: &baove_domain::Violations) -> Status {
    use baove_domain::text::clip;
    let mut shown = baove_domain::Violations::default();
    for v in violations.0.iter().take(MAX_VIOLATIONS) {
        shown.add(clip(&v.field, MAX_ECHO), clip(&v.rule, MAX_ECHO));
    }
    if violations.0.len() > MAX_VIOLATIONS {
        shown.add(
            "(more)",
            format!(
                "{} more violations not shown: fix these and send again",
                violations.0.len() - MAX_VIOLATIONS
            ),
        );
    }
    let mut details = ErrorDetails::new();
    for v in &shown.0 {
        details.add_bad_request_violation(v.field.clone(), v.rule.clone());
    }
    let message = match shown.0.as_slice() {
        [one] => format!("invalid {}: {}", one.field, one.rule),
        _ => format!("invalid request: {shown}"),
    };
    let mut status = Status::with_error_details(Code::InvalidArgument, message, details);
    if let Some(province) = violations.only_elsewhere()
        && let Ok(value) = province.parse()
    {
        status.metadata_mut().insert(PARTITION_KEY, value);
        if let Some(name) = violations.only_elsewhere_name() {
            status.metadata_mut().insert_bin(
                PARTITION_NAME_KEY,
                tonic::metadata::MetadataValue::from_bytes(name.as_bytes()),
            );
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standby_refusal_names_the_active_only_when_it_is_known() {
        let refusal = |active: &str| {
            from_log(&Error::ReadOnly {
                active: active.into(),
            })
        };
        let known = refusal("http://10.0.0.2:50052");
        assert_eq!(known.code(), Code::Unavailable);
        assert_eq!(
            known
                .metadata()
                .get(ACTIVE_KEY)
                .and_then(|v| v.to_str().ok()),
            Some("http://10.0.0.2:50052")
        );
        let unknown = refusal("");
        assert_eq!(unknown.code(), Code::Unavailable);
        assert!(unknown.metadata().get(ACTIVE_KEY).is_none());
    }

    #[test]
    fn a_refusal_names_the_partition_that_takes_the_request_only_when_nothing_else_is_wrong() {
        let partition = |v: &baove_domain::Violations| {
            violations(v)
                .metadata()
                .get(PARTITION_KEY)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let mut elsewhere = baove_domain::Violations::default();
        elsewhere.add_elsewhere(
            "report.facts.incident_place.unit_id",
            "lies in province vn:01",
            "vn:01",
            Some("Thành phố Hà Nội".into()),
        );
        assert_eq!(violations(&elsewhere).code(), Code::InvalidArgument);
        assert_eq!(partition(&elsewhere).as_deref(), Some("vn:01"));
        let name = violations(&elsewhere)
            .metadata()
            .get_bin(PARTITION_NAME_KEY)
            .and_then(|v| v.to_bytes().ok())
            .map(|b| String::from_utf8(b.to_vec()).unwrap());
        assert_eq!(name.as_deref(), Some("Thành phố Hà Nội"));
        let mut also = elsewhere.clone();
        also.add("report.facts.occurred_at", "is in the future");
        assert_eq!(partition(&also), None);
        let plain = baove_domain::Violations::one("report.facts.occurred_at", "is in the future");
        assert_eq!(partition(&plain), None);
    }

    #[test]
    fn many_or_long_violations_give_a_short_error() {
        let mut many = baove_domain::Violations::default();
        for i in 0..100_000 {
            many.add(
                format!("report.facts.abuse_types[{i}]"),
                "is not a known form of abuse",
            );
        }
        let status = violations(&many);
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let bad = details.bad_request().map(|b| b.field_violations.len());
        assert_eq!(bad, Some(MAX_VIOLATIONS + 1));
        assert!(
            status.message().contains("99980 more violations"),
            "{}",
            status.message()
        );
        assert!(status.message().len() < 10_000);
        let long = invalid_argument(
            "unit_id",
            &format!("unit {} is not known", "x".repeat(10_000)),
        );
        assert!(long.message().len() < 400, "{}", long.message().len());
        assert!(long.details().len() < 1000);
    }
}
