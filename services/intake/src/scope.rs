//! Who may read a report, and how much of it: a pure function of the
//! caller, the report and the directory (and, for an agency, what the
//! referrals of the report's case share), so that the rule is in one place
//! and unit-tested (the API records each read and refusal in the access
//! log around it).

use baove_domain::reference::Directory;
use baove_eventlog::Actor;
use baove_security::{Caller, Role};
use uuid::Uuid;

use crate::view::{Row, Shared};

/// The hotline's agency id in the reference data: the agency a hotline
/// operator's records carry when the token names none.
pub const HOTLINE_AGENCY: &str = "vn/tong-dai-111";

/// Who `caller` is when recording a report: user, role and agency (the
/// hotline's agency for an operator whose token names none).
#[must_use]
pub fn acting(caller: &Caller) -> Actor {
    Actor {
        user_id: caller.user_id.clone(),
        role: caller.role.as_str().to_owned(),
        agency_id: if caller.agency_id.is_empty() && caller.role == Role::HotlineOperator {
            HOTLINE_AGENCY.into()
        } else {
            caller.agency_id.clone()
        },
    }
}

/// Whether `actor` is `caller` acting as [`acting`] says, compared in
/// place: the access checks ask it of every row they look at.
#[must_use]
pub fn logged_by(caller: &Caller, actor: &Actor) -> bool {
    let agency = if caller.agency_id.is_empty() && caller.role == Role::HotlineOperator {
        HOTLINE_AGENCY
    } else {
        caller.agency_id.as_str()
    };
    actor.user_id == caller.user_id
        && actor.role == caller.role.as_str()
        && actor.agency_id == agency
}

/// Whether `caller` may read `row`: `None` not at all, else what of its
/// confidential fields is shared.
///
/// Whoever recorded a report (hotline operators, police, officers) reads
/// it back whole; commune officers the reports of their units (responsible,
/// incident or residence), province officers those of their provinces (all
/// when the token names none); police and agency staff the reports of a
/// case referred to their agency, with what that referral shares
/// (`referral_to`: the case's referral to the caller's agency, if it
/// grants access now); auditors all, redacted; nobody else.
#[must_use]
pub fn visibility(
    caller: &Caller,
    row: &Row,
    directory: &Directory,
    referral_to: impl FnOnce(Uuid) -> Option<Shared>,
) -> Option<Shared> {
    let all = Shared {
        identity: true,
        informant: true,
    };
    match caller.role {
        // Whoever received and recorded a report reads it back.
        Role::HotlineOperator | Role::Police | Role::CommuneOfficer | Role::ProvinceOfficer
            if logged_by(caller, &row.logged_by) =>
        {
            Some(all)
        }
        Role::Police | Role::AgencyStaff => row.handed_over.and_then(|(case, _)| referral_to(case)),
        Role::CommuneOfficer | Role::ProvinceOfficer => {
            ([row.responsible_unit(), row.incident_unit_id.as_str()]
                .into_iter()
                .chain(row.residence_unit_id.as_deref())
                .any(|unit| baove_runtime::auth::covers(caller, directory, unit)))
            .then_some(all)
        }
        Role::Auditor => Some(Shared {
            identity: false,
            informant: false,
        }),
        Role::HotlineOperator | Role::Administrator => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::view::Confidentiality;
    use baove_domain::intake::IntakeEvent;
    use baove_testkit::fixtures::caller;

    const WARD: &str = "vn:31135";

    fn directory() -> Directory {
        baove_testkit::fixtures::directory()
    }

    /// A hotline report of the stored fixture (incident in the seed's id of
    /// the ward), recorded by operator `op-17`, handed over to case 8.
    fn row() -> Row {
        let stored: serde_json::Value = serde_json::from_str(include_str!(
            "../../../crates/domain/tests/stored/IntakeRecorded.hotline.v1.json"
        ))
        .unwrap();
        let IntakeEvent::Recorded(recorded) =
            IntakeEvent::decode("IntakeRecorded", 1, &stored["payload"].to_string()).unwrap()
        else {
            panic!("not a recorded report")
        };
        let mut row = Row::new(
            &recorded,
            Confidentiality::Readable,
            Actor {
                user_id: "op-17".into(),
                role: "hotline_operator".into(),
                agency_id: HOTLINE_AGENCY.into(),
            },
        );
        row.position = 1;
        row.version = 1;
        row.handed_over = Some((Uuid::from_u128(8), 0));
        row
    }

    fn sees(caller: &Caller) -> Option<Shared> {
        visibility(caller, &row(), &directory(), |_| None)
    }

    const ALL: Option<Shared> = Some(Shared {
        identity: true,
        informant: true,
    });

    #[test]
    fn given_callers_and_actors_when_compared_in_place_then_only_the_same_whole_identity_matches() {
        let callers = [
            caller("op-17", Role::HotlineOperator, "", &[]),
            caller("op-17", Role::HotlineOperator, HOTLINE_AGENCY, &[]),
            caller("op-17", Role::HotlineOperator, "vn/other", &[]),
            caller("op-17", Role::Police, "vn/ca-hn", &[]),
            caller("op-18", Role::Police, "vn/ca-hn", &[]),
            caller("op-17", Role::CommuneOfficer, "", &[WARD]),
        ];
        for who in &callers {
            for actor in callers.iter().map(acting) {
                assert_eq!(
                    logged_by(who, &actor),
                    acting(who) == actor,
                    "{who:?} against {actor:?}"
                );
            }
        }
        // The hotline's agency stands for an operator's empty one.
        assert!(logged_by(&callers[0], &acting(&callers[1])));
        assert!(!logged_by(&callers[2], &acting(&callers[0])));
    }

    #[test]
    fn given_a_report_when_its_operator_reads_it_back_then_whole_and_another_operator_not_at_all() {
        assert_eq!(sees(&caller("op-17", Role::HotlineOperator, "", &[])), ALL);
        assert_eq!(sees(&caller("op-18", Role::HotlineOperator, "", &[])), None);
        // The same user id in another agency is someone else.
        assert_eq!(
            sees(&caller(
                "op-17",
                Role::HotlineOperator,
                "vn:92/tong-dai",
                &[]
            )),
            None
        );
    }

    #[test]
    fn given_a_report_when_officers_read_it_then_those_covering_its_units_do_whole() {
        assert_eq!(
            sees(&caller("cb-1", Role::CommuneOfficer, "", &[WARD])),
            ALL
        );
        assert_eq!(
            sees(&caller("cb-2", Role::CommuneOfficer, "", &["vn:31120"])),
            None
        );
        assert_eq!(
            sees(&caller("so-1", Role::ProvinceOfficer, "", &["vn:92"])),
            ALL
        );
        assert_eq!(
            sees(&caller("so-2", Role::ProvinceOfficer, "", &["vn:01"])),
            None
        );
        assert_eq!(sees(&caller("so-3", Role::ProvinceOfficer, "", &[])), ALL);
    }

    #[test]
    fn given_a_report_when_an_agency_or_an_auditor_reads_it_then_only_what_is_shared() {
        let police = caller("ca-1", Role::Police, "vn:31135/cong-an", &[]);
        assert_eq!(sees(&police), None, "no referral to the police");
        let shared = Shared {
            identity: true,
            informant: false,
        };
        let mut asked = None;
        let seen = visibility(&police, &row(), &directory(), |case| {
            asked = Some(case);
            Some(shared)
        });
        assert_eq!(seen, Some(shared));
        assert_eq!(asked, Some(Uuid::from_u128(8)), "the report's case");
        // A report not yet handed over has no referral.
        let mut waiting = row();
        waiting.handed_over = None;
        assert_eq!(
            visibility(&police, &waiting, &directory(), |_| Some(shared)),
            None
        );
        assert_eq!(
            sees(&caller("kt-1", Role::Auditor, "", &[])),
            Some(Shared {
                identity: false,
                informant: false
            })
        );
        assert_eq!(sees(&caller("ad-1", Role::Administrator, "", &[])), None);
    }
}
