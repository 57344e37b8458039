//! Who may read a case: a pure function of the caller and the case, so
//! that the rule is in one place and unit-tested (the API records each
//! read and refusal in the access log around it).

use baove_domain::case::summary::CaseSummary;
use baove_domain::reference::Directory;
use baove_runtime::auth::{covers, same_agency};
use baove_security::{Caller, Role};

/// Whether `caller` may read `case` at `now_ms`: commune officers the
/// cases of their units (incident or responsible); police and agency staff
/// a case referred to their agency while that referral grants access
/// ([`baove_domain::case::summary::ReferralAccess::lets_read_as`]); province officers and
/// auditors every case.
/// Stored ids of the early seed count as the official ids they map to
/// (`directory`).
#[must_use]
pub fn can_read(caller: &Caller, case: &CaseSummary, now_ms: i64, directory: &Directory) -> bool {
    covers(caller, directory, &case.responsible_unit_id)
        || covers(caller, directory, &case.incident_unit_id)
        || (matches!(caller.role, Role::Police | Role::AgencyStaff)
            && case.referrals.iter().any(|r| {
                r.lets_read_as(
                    |stored| same_agency(directory, &caller.agency_id, stored),
                    now_ms,
                )
            }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use baove_domain::case::{CaseReferral, CaseState, Routing, route_intake};
    use baove_domain::intake::{
        Age, Channel, Child, Concerns, IntakeRecorded, Place, Report, ReportFacts, Setting, Sex,
    };
    use baove_domain::referral::{READ_AFTER_COMPLETION_MS, Status};
    use uuid::Uuid;

    fn case() -> CaseState {
        let recorded = IntakeRecorded {
            intake_id: Uuid::from_u128(1),
            report: Report::Hotline {
                channel: Channel::Phone,
                operator_id: "op-17".into(),
                facts: ReportFacts {
                    received_at_ms: 1_000,
                    child: Child {
                        full_name: String::new(),
                        name_key: String::new(),
                        age: Age::EstimatedYears(9),
                        age_years: 9,
                        sex: Sex::Female,
                        ethnicity: String::new(),
                        current_condition: String::new(),
                    },
                    incident_place: Place {
                        unit_id: "vn:31135".into(),
                        address: String::new(),
                    },
                    residence_place: None,
                    concerns: Concerns::default(),
                    narrative: String::new(),
                    immediate_danger: false,
                    caregiver_is_alleged_abuser: false,
                    father: None,
                    mother: None,
                    caregiver: None,
                    actions_taken: String::new(),
                    likely_consequence: String::new(),
                    follow_up_case_id: None,
                    setting: Setting::Home,
                    occurred_at_ms: None,
                    responsible_unit_id: None,
                    province_id: None,
                    report_status: Default::default(),
                },
                informant: None,
            },
            outside_child_law: false,
            possible_duplicate_case_ids: Vec::new(),
            possible_duplicate_intake_ids: Vec::new(),
            consent_possible_from: None,
            sealed: None,
        };
        let Routing::Open(opened) = route_intake(&recorded, Uuid::from_u128(2), None) else {
            panic!("a new report opens a case")
        };
        baove_domain::case::apply(None, &baove_domain::case::CaseEvent::Opened(opened)).unwrap()
    }

    fn directory() -> Directory {
        baove_testkit::fixtures::directory()
    }

    fn read(caller: &Caller, state: &CaseState, now_ms: i64) -> bool {
        can_read(caller, &CaseSummary::of(state), now_ms, &directory())
    }

    fn caller(role: Role, agency: &str, units: &[&str]) -> Caller {
        baove_testkit::fixtures::caller("u", role, agency, units)
    }

    fn referred(state: &mut CaseState, to: &str, status: Status, at: Option<i64>) {
        state.referrals.insert(
            Uuid::from_u128(7),
            CaseReferral {
                request: baove_testkit::fixtures::referral_request(to),
                last_step: String::new(),
                status,
                status_at_ms: at,
                receiving_agency_id: None,
            },
        );
    }

    #[test]
    fn communes_read_their_units_the_province_and_auditors_all() {
        let state = case();
        assert!(read(
            &caller(Role::CommuneOfficer, "", &["vn:31135"]),
            &state,
            0
        ));
        assert!(!read(
            &caller(Role::CommuneOfficer, "", &["vn:31120"]),
            &state,
            0
        ));
        assert!(read(
            &caller(Role::ProvinceOfficer, "vn:92/so-y-te", &[]),
            &state,
            0
        ));
        assert!(read(&caller(Role::Auditor, "", &[]), &state, 0));
        assert!(!read(
            &caller(Role::HotlineOperator, "vn/tong-dai-111", &[]),
            &state,
            0
        ));
        assert!(!read(
            &caller(Role::Administrator, "vn:92/so-y-te", &[]),
            &state,
            0
        ));
    }

    #[test]
    fn an_agency_reads_a_case_only_while_its_referral_lasts() {
        let police = caller(Role::Police, "vn:31135/cong-an", &[]);
        let mut state = case();
        assert!(!read(&police, &state, 0));
        referred(&mut state, "vn:31135/cong-an", Status::Accepted, Some(10));
        assert!(read(&police, &state, 20));
        assert!(!read(
            &caller(Role::Police, "vn:92/cong-an", &[]),
            &state,
            20
        ));
        referred(&mut state, "vn:31135/cong-an", Status::Revoked, Some(10));
        assert!(!read(&police, &state, 20));
        referred(&mut state, "vn:31135/cong-an", Status::Completed, Some(10));
        assert!(read(&police, &state, 10 + READ_AFTER_COMPLETION_MS - 1));
        assert!(!read(&police, &state, 10 + READ_AFTER_COMPLETION_MS));
    }

    #[test]
    fn province_officers_whose_token_names_provinces_read_only_those() {
        let state = case();
        assert!(read(
            &caller(Role::ProvinceOfficer, "", &["vn:92"]),
            &state,
            0
        ));
        assert!(!read(
            &caller(Role::ProvinceOfficer, "", &["vn:01"]),
            &state,
            0
        ));
        assert!(!read(&caller(Role::Auditor, "", &["vn:01"]), &state, 0));
    }

    #[test]
    fn a_case_stored_under_seed_ids_is_read_as_the_official_units_and_agencies() {
        let mut state = case();
        state.responsible_unit_id = "vn-ct.p-ninh-kieu".into();
        state.opened.incident_unit_id = "vn-ct.p-ninh-kieu".into();
        assert!(read(
            &caller(Role::CommuneOfficer, "", &["vn:31135"]),
            &state,
            0
        ));
        assert!(read(
            &caller(Role::ProvinceOfficer, "", &["vn:92"]),
            &state,
            0
        ));
        referred(&mut state, "ct.ca-p-ninh-kieu", Status::Accepted, Some(10));
        assert!(read(
            &caller(Role::Police, "vn:31135/cong-an", &[]),
            &state,
            20
        ));
    }
}
