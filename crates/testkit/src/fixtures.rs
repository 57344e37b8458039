//! Fixtures of the scope rules' unit tests (casework, referral, intake):
//! a small directory of Cần Thơ (two wards, the city) and Hà Nội, with
//! the ward's and its police's ids of the early seed as aliases, and a
//! caller with a role, an agency and units.

use baove_domain::reference::Directory;
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
