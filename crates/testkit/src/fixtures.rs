//! Fixtures of the services' unit tests: for the scope rules (casework,
//! referral, intake), a small directory of Cần Thơ (two wards, the city)
//! and Hà Nội, with the ward's and its police's ids of the early seed as
//! aliases, a caller with a role, an agency and units, and a referral
//! request to an agency; for the consumers, an event as a consumer gets it.

use baove_domain::reference::Directory;
use baove_domain::referral::{ReferralKind, ReferralRequest, Service, Sharing, Urgency};
use baove_eventlog::{
    Actor, AppendRequest, Envelope, EventLog, ExpectedVersion, NewEvent, StreamId,
};
use baove_security::{Caller, Role};

/// Cần Thơ city (`vn:92`) with wards `vn:31135` (Ninh Kiều, seed id
/// `vn-ct.p-ninh-kieu`) and `vn:31120`, Hà Nội (`vn:01`); the police of
/// Ninh Kiều (`vn:31135/cong-an`, seed id `ct.ca-p-ninh-kieu`) and of the
/// city (`vn:92/cong-an`).
///
/// # Panics
/// Never: the fixture parses.
#[must_use]
#[allow(clippy::expect_used)]
pub fn directory() -> Directory {
    Directory::parse(
        r#"{"units":[
          {"id":"vn:92","kind":"city","parent":null,"names":[{"name":"Thành phố Cần Thơ","valid_from":"2025-07-01","valid_to":null}]},
          {"id":"vn:31135","kind":"ward","parent":"vn:92","names":[{"name":"Phường Ninh Kiều","valid_from":"2025-07-01","valid_to":null}]},
          {"id":"vn:31120","kind":"ward","parent":"vn:92","names":[{"name":"Phường Cái Khế","valid_from":"2025-07-01","valid_to":null}]},
          {"id":"vn:01","kind":"city","parent":null,"names":[{"name":"Thành phố Hà Nội","valid_from":"2025-07-01","valid_to":null}]}
        ]}"#,
        r#"{"agencies":[
          {"id":"vn:31135/cong-an","kind":"police","unit":"vn:31135","names":[{"name":"Công an phường Ninh Kiều","valid_from":"2025-07-01","valid_to":null}]},
          {"id":"vn:92/cong-an","kind":"police","unit":"vn:92","names":[{"name":"Công an thành phố Cần Thơ","valid_from":null,"valid_to":null}]}
        ]}"#,
    )
    .and_then(|d| {
        d.with_aliases(
            r#"{"units":{"vn-ct.p-ninh-kieu":"vn:31135"},"agencies":{"ct.ca-p-ninh-kieu":"vn:31135/cong-an"}}"#,
        )
    })
    .expect("the fixture directory parses")
}

/// A caller `user` with `role`, for `agency`, over `units`.
#[must_use]
pub fn caller(user: &str, role: Role, agency: &str, units: &[&str]) -> Caller {
    Caller {
        user_id: user.into(),
        role,
        agency_id: agency.into(),
        units: units.iter().map(|u| (*u).to_owned()).collect(),
        purpose: String::new(),
    }
}

/// A request to `to` for a police investigation, at normal urgency,
/// sharing nothing that identifies the child.
#[must_use]
pub fn referral_request(to: &str) -> ReferralRequest {
    ReferralRequest {
        kind: ReferralKind::Refer {
            service: Service::PoliceInvestigation,
        },
        to_agency_id: to.into(),
        reason: "x".into(),
        urgency: Urgency::Normal,
        sharing: Sharing {
            identifying: false,
            child_consent: false,
            guardian_consent: false,
            legal_basis: None,
            informant: false,
        },
    }
}

/// An event of type `event_type` at schema `version` with `payload`, as
/// casework would have stored it (on a new stream of `log`), read back
/// from the log as a consumer gets it.
///
/// # Panics
/// When the log refuses the append or cannot be read.
#[allow(clippy::unwrap_used)]
pub async fn stored_event(
    log: &EventLog,
    event_type: &str,
    version: u32,
    payload: &serde_json::Value,
) -> Envelope {
    let stream = StreamId::new();
    log.append(AppendRequest {
        stream,
        expected: ExpectedVersion::Any,
        command_id: stream.to_string(),
        actor: Actor::system("casework"),
        causation_id: String::new(),
        correlation_id: String::new(),
        events: vec![NewEvent::new(event_type, version, payload).unwrap()],
        publish: false,
    })
    .await
    .unwrap();
    log.read_stream(stream, 1, 1).await.unwrap().remove(0)
}

/// Every page of a list, `limit` rows at a time, following its cursor:
/// `list(after, limit)` gives a page and the next page's cursor. Asserts
/// that no page is longer than `limit` and that the cursor only moves on
/// (strictly down: the lists are newest first).
///
/// # Panics
/// When a page is too long or the cursor goes back.
pub fn all_pages<T, C: Ord + Copy + std::fmt::Debug>(
    limit: usize,
    mut list: impl FnMut(Option<C>, usize) -> (Vec<T>, Option<C>),
) -> Vec<T> {
    let mut rows = Vec::new();
    let mut after = None;
    loop {
        let (page, next) = list(after, limit);
        assert!(page.len() <= limit, "a page of {} for {limit}", page.len());
        rows.extend(page);
        match next {
            Some(cursor) => {
                assert!(
                    after.is_none_or(|a| cursor < a),
                    "the cursor went back: {cursor:?} after {after:?}"
                );
                after = Some(cursor);
            }
            None => return rows,
        }
    }
}
