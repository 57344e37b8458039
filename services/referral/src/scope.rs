//! Who may read and act on what in the referral service: pure functions of
//! the caller, the referral and the directory, so that each rule is in one
//! place and unit-tested (the API records each read and refusal in the
//! access log around them).
//!
//! Stored ids of the early seed count as the official ids they map to
//! (the directory's aliases); a merged agency's referrals are read and
//! handled by whoever the directory says is the same agency.

use baove_domain::reference::Directory;
use baove_domain::referral::ReferralState;
use baove_runtime::auth::{covers, same_agency};
use baove_security::{Caller, Role};

/// Whether `caller` may read the inbox of `agency`: police and agency
/// staff their own agency's, province officers and auditors any.
#[must_use]
pub fn may_read_inbox(caller: &Caller, directory: &Directory, agency: &str) -> bool {
    match caller.role {
        Role::Police | Role::AgencyStaff => same_agency(directory, &caller.agency_id, agency),
        Role::ProvinceOfficer | Role::Auditor => true,
        _ => false,
    }
}

/// Whether `caller` may see a referral to `to_agency_id` from
/// `from_unit_id`: the receiving agency's police and staff; the officers
/// covering the requesting commune (its commune officers, the province's
/// officers) and auditors.
#[must_use]
pub fn may_see(
    caller: &Caller,
    directory: &Directory,
    to_agency_id: &str,
    from_unit_id: &str,
) -> bool {
    match caller.role {
        Role::Police | Role::AgencyStaff => same_agency(directory, &caller.agency_id, to_agency_id),
        _ => covers(caller, directory, from_unit_id),
    }
}

/// Whether `caller`, acting for `agency_id`, may take a step on `state`:
/// the receiving agency's steps (acknowledge, accept, decline, outcome,
/// complete) only for that agency; a revocation only by the officers
/// covering the requesting commune.
///
/// # Errors
/// The refusal, naming who takes the step.
pub fn may_step(
    caller: &Caller,
    agency_id: &str,
    directory: &Directory,
    state: &ReferralState,
    receiving_agency_only: bool,
) -> Result<(), String> {
    if receiving_agency_only {
        if same_agency(directory, agency_id, &state.to_agency_id) {
            return Ok(());
        }
        return Err(format!(
            "only the receiving agency ({}) takes this step on referral {}",
            state.to_agency_id, state.referral_id
        ));
    }
    if covers(caller, directory, &state.from_unit_id) {
        return Ok(());
    }
    Err(format!(
        "only the requesting commune ({}) revokes referral {}",
        state.from_unit_id, state.referral_id
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use baove_domain::referral::Status;
    use uuid::Uuid;

    const POLICE: &str = "vn:31135/cong-an";
    const WARD: &str = "vn:31135";

    fn directory() -> Directory {
        baove_testkit::fixtures::directory()
    }

    fn caller(role: Role, agency: &str, units: &[&str]) -> Caller {
        baove_testkit::fixtures::caller("u", role, agency, units)
    }

    fn referral(to: &str, from: &str) -> ReferralState {
        ReferralState {
            referral_id: Uuid::from_u128(7),
            case_id: Uuid::from_u128(8),
            from_unit_id: from.into(),
            to_agency_id: to.into(),
            request: baove_testkit::fixtures::referral_request(to),
            status: Status::Offered,
            ack_due_at_ms: 0,
            escalated: false,
            supervisor_agency_id: None,
        }
    }

    #[test]
    fn given_an_inbox_when_read_then_only_its_agency_the_province_and_auditors_may() {
        let d = directory();
        assert!(may_read_inbox(
            &caller(Role::Police, POLICE, &[]),
            &d,
            POLICE
        ));
        // The seed's id of the same agency is the same inbox.
        assert!(may_read_inbox(
            &caller(Role::Police, "ct.ca-p-ninh-kieu", &[]),
            &d,
            POLICE
        ));
        assert!(!may_read_inbox(
            &caller(Role::Police, "vn:92/cong-an", &[]),
            &d,
            POLICE
        ));
        assert!(!may_read_inbox(
            &caller(Role::AgencyStaff, "", &[]),
            &d,
            POLICE
        ));
        assert!(may_read_inbox(
            &caller(Role::ProvinceOfficer, "vn:92/so-y-te", &["vn:92"]),
            &d,
            POLICE
        ));
        assert!(may_read_inbox(&caller(Role::Auditor, "", &[]), &d, POLICE));
        for role in [Role::CommuneOfficer, Role::HotlineOperator] {
            assert!(!may_read_inbox(&caller(role, POLICE, &[WARD]), &d, POLICE));
        }
    }

    #[test]
    fn given_a_referral_when_seen_then_the_receiving_agency_and_the_requesting_communes_officers_may()
     {
        let d = directory();
        let see = |c: &Caller| may_see(c, &d, POLICE, WARD);
        assert!(see(&caller(Role::Police, POLICE, &[])));
        assert!(!see(&caller(Role::Police, "vn:92/cong-an", &[])));
        assert!(see(&caller(Role::CommuneOfficer, "", &[WARD])));
        // A referral stored under the seed's id of the ward.
        assert!(may_see(
            &caller(Role::CommuneOfficer, "", &[WARD]),
            &d,
            "ct.ca-p-ninh-kieu",
            "vn-ct.p-ninh-kieu"
        ));
        assert!(!see(&caller(Role::CommuneOfficer, "", &["vn:31120"])));
        assert!(see(&caller(Role::ProvinceOfficer, "", &["vn:92"])));
        assert!(!see(&caller(Role::ProvinceOfficer, "", &["vn:01"])));
    }

    #[test]
    fn given_a_step_when_taken_then_the_agency_acts_on_its_own_and_only_the_requester_revokes() {
        let d = directory();
        let state = referral(POLICE, WARD);
        let police = caller(Role::Police, POLICE, &[]);
        assert!(may_step(&police, POLICE, &d, &state, true).is_ok());
        assert!(may_step(&police, "ct.ca-p-ninh-kieu", &d, &state, true).is_ok());
        let refused = may_step(&police, "vn:92/cong-an", &d, &state, true).unwrap_err();
        assert!(
            refused.contains("only the receiving agency (vn:31135/cong-an)"),
            "{refused}"
        );
        // The police do not revoke; the requesting commune does.
        assert!(may_step(&police, POLICE, &d, &state, false).is_err());
        let officer = caller(Role::CommuneOfficer, "", &[WARD]);
        assert!(may_step(&officer, "", &d, &state, false).is_ok());
        let other = caller(Role::CommuneOfficer, "", &["vn:31120"]);
        let refused = may_step(&other, "", &d, &state, false).unwrap_err();
        assert!(
            refused.contains("only the requesting commune (vn:31135)"),
            "{refused}"
        );
    }
}
