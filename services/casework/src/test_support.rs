//! What the unit tests of several modules build alike.

use baove_domain::case::CaseOpened;
use baove_domain::intake::{Channel, Concerns};
use uuid::Uuid;

/// Case `case_id` opened on the phoned report `intake_id` from `unit`,
/// received at `received` (ms): a child of 9, in immediate danger or not.
pub fn opened(
    case_id: Uuid,
    intake_id: Uuid,
    unit: &str,
    danger: bool,
    received: i64,
) -> CaseOpened {
    CaseOpened {
        case_id,
        intake_id,
        intake_event_id: Uuid::now_v7(),
        channel: Channel::Phone,
        received_at_ms: received,
        incident_unit_id: unit.into(),
        residence_unit_id: None,
        concerns: Concerns::default(),
        immediate_danger: danger,
        caregiver_is_alleged_abuser: false,
        outside_child_law: false,
        possible_duplicate_case_ids: vec![],
        police_case_number: None,
        follow_up_case_not_found: None,
        child_age_years: Some(9),
        child_sex: None,
        setting: None,
        clock_start_ms: None,
        responsible_unit_id: None,
        province_id: None,
        report_status: Default::default(),
        consent_possible_from: None,
    }
}
