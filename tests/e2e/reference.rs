//! Reference data end to end (official unit codes, the 2025 reform): a
//! 2024 incident in a former Hậu Giang ward is recorded under that ward,
//! handled by its successor commune of Cần Thơ and counted under each as
//! the period asks; a report from Hà Nội is routed to Hà Nội; a split
//! commune needs the successor of the address; the search box finds units
//! typed without diacritics.

use baove_proto::v1::{
    self as p, GetCaseRequest, GetIntakeRequest, SearchUnitsRequest,
    case_service_client::CaseServiceClient, intake_service_client::IntakeServiceClient,
    reporting_service_client::ReportingServiceClient,
};
use baove_security::Role;
use tonic_types::StatusExt;

use crate::Identity;
use crate::intake::{System, case_of, hotline};

/// Phường I, thành phố Vị Thanh, tỉnh Hậu Giang (until 30 June 2025).
const FORMER_WARD: &str = "vn-pre2025:31318";
/// Phường Vị Thanh, thành phố Cần Thơ: its successor.
const SUCCESSOR: &str = "vn:31321";

fn at(seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos: 0 }
}

/// 2024-11-02T00:00Z and 2024-06-01T03:00Z.
const NOV_2024: i64 = 1_730_505_600;
const JUN_2024: i64 = 1_717_210_800;

fn former_ward_report(
    request_id: &str,
    name: &str,
    received: Option<i64>,
) -> p::SubmitHotlineReportRequest {
    let mut request = hotline(request_id, name);
    let facts = request.report.as_mut().unwrap().facts.as_mut().unwrap();
    facts.incident_place.as_mut().unwrap().unit_id = FORMER_WARD.into();
    facts.occurred_at = Some(at(received.unwrap_or(NOV_2024)));
    facts.report_status = p::ReportStatus::Abused as i32;
    if let Some(received) = received {
        facts.received_at = Some(at(received));
    }
    request
}

/// The facts of a recorded hotline report.
fn recorded_facts(intake: p::Intake) -> p::ReportFacts {
    match intake.report {
        Some(p::intake::Report::Hotline(report)) => report.facts.unwrap(),
        other => panic!("not a hotline report: {other:?}"),
    }
}

fn province(user: &str, code: &str) -> Identity {
    Identity::new(
        user,
        Role::ProvinceOfficer,
        &format!("{code}/so-y-te"),
        &[code],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2024_incident_in_a_former_hau_giang_ward_opens_a_case_for_its_successor_and_counts_under_each_by_period()
 {
    let system = System::start().await;
    let mut intake = IntakeServiceClient::new(system.intake.channel().await);
    // Reported now about November 2024, and a report received in June 2024.
    let late = intake
        .submit_hotline_report(former_ward_report("ref-late", "Lê Thị Hoa", None))
        .await
        .unwrap()
        .into_inner();
    let then = intake
        .submit_hotline_report(former_ward_report(
            "ref-2024",
            "Trần Văn Bình",
            Some(JUN_2024),
        ))
        .await
        .unwrap()
        .into_inner();
    let recorded = intake
        .get_intake(GetIntakeRequest {
            intake_id: late.intake_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .intake
        .unwrap();
    let facts = recorded_facts(recorded);
    assert_eq!(facts.incident_place.unwrap().unit_id, FORMER_WARD);
    assert_eq!(facts.responsible_unit_id, SUCCESSOR);
    assert_eq!(facts.province_id, "vn:92");

    let case_id = case_of(&system.intake, &late.intake_id).await;
    let case_2024 = case_of(&system.intake, &then.intake_id).await;
    // 0101 counts confirmed abuse: Mẫu 02 confirms both.
    for case in [&case_id, &case_2024] {
        crate::reporting::verify(&system.casework, case, p::AbuseType::Violence, true).await;
    }
    // The successor's commune officer handles it; a Cần Thơ province
    // officer sees it.
    for reader in [
        Identity::new(
            "ub-vt-1",
            Role::CommuneOfficer,
            "vn:31321/ubnd",
            &[SUCCESSOR],
        ),
        province("so-yt-ct", "vn:92"),
    ] {
        let mut cases = CaseServiceClient::new(system.casework.channel_as(&reader).await);
        let case = cases
            .get_case(GetCaseRequest {
                case_id: case_id.clone(),
            })
            .await
            .unwrap_or_else(|e| panic!("{} refused: {e}", reader.user))
            .into_inner()
            .case
            .unwrap();
        assert_eq!(case.incident_unit_id, FORMER_WARD);
        assert_eq!(case.responsible_unit_id, SUCCESSOR);
        assert_eq!(case.province_id, "vn:92");
        assert_eq!(case.report_status, p::ReportStatus::Abused as i32);
        assert_eq!(case.confirmed_abuse_types, [p::AbuseType::Violence as i32]);
    }

    let mut reporting = ReportingServiceClient::new(
        system
            .casework
            .channel_as(&province("so-yt-ct", "vn:92"))
            .await,
    );
    let unit_rows = |table: &p::IndicatorTable| -> Vec<(String, u64)> {
        table
            .rows
            .iter()
            .filter(|r| r.indicator == "0101" && r.dimension == "unit")
            .map(|r| (r.key.clone(), r.value))
            .collect()
    };
    let (y, m, d) = crate::vietnam_today();
    for (period, expected) in [
        // 2024: the report received then, under the ward of its time.
        ("2024".to_owned(), vec![(FORMER_WARD.to_owned(), 1)]),
        // Up to today: both, under the successor.
        (
            format!("2024-01-01..{y:04}-{m:02}-{d:02}"),
            vec![(SUCCESSOR.to_owned(), 2)],
        ),
    ] {
        let table = reporting
            .get_indicators(p::GetIndicatorsRequest {
                period: period.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .table
            .unwrap();
        assert_eq!(unit_rows(&table), expected, "{period}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_from_ha_noi_is_routed_to_ha_noi_and_a_split_commune_needs_the_successor_of_the_address()
 {
    let system = System::start().await;
    let mut intake = IntakeServiceClient::new(system.intake.channel().await);
    let mut request = hotline("ref-hanoi", "Phạm Thị Cúc");
    let facts = request.report.as_mut().unwrap().facts.as_mut().unwrap();
    facts.incident_place.as_mut().unwrap().unit_id = "vn:00070".into(); // Phường Hoàn Kiếm
    let receipt = intake
        .submit_hotline_report(request)
        .await
        .unwrap()
        .into_inner();
    let case_id = case_of(&system.intake, &receipt.intake_id).await;
    let mut hanoi = CaseServiceClient::new(
        system
            .casework
            .channel_as(&province("so-yt-hn", "vn:01"))
            .await,
    );
    let case = hanoi
        .get_case(GetCaseRequest {
            case_id: case_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert_eq!(
        (case.responsible_unit_id.as_str(), case.province_id.as_str()),
        ("vn:00070", "vn:01")
    );
    // Cần Thơ's department does not see Hà Nội's case.
    let mut can_tho = CaseServiceClient::new(
        system
            .casework
            .channel_as(&province("so-yt-ct", "vn:92"))
            .await,
    );
    let refused = can_tho
        .get_case(GetCaseRequest { case_id })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");

    // Xã Tân Long of Phụng Hiệp (Hậu Giang) was split between Xã Thạnh Hòa
    // and the new Xã Tân Long.
    let mut request = former_ward_report("ref-split", "Võ Văn Dũng", None);
    let facts = request.report.as_mut().unwrap().facts.as_mut().unwrap();
    facts.incident_place.as_mut().unwrap().unit_id = "vn-pre2025:31438".into();
    let refused = intake
        .submit_hotline_report(request.clone())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    let violations = refused.get_details_bad_request().unwrap().field_violations;
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(violations[0].field, "report.facts.responsible_unit_id");
    assert!(
        violations[0].description.contains("vn:31408"),
        "{violations:?}"
    );
    assert!(
        violations[0].description.contains("vn:31741"),
        "{violations:?}"
    );
    let facts = request.report.as_mut().unwrap().facts.as_mut().unwrap();
    facts.responsible_unit_id = "vn:31741".into();
    let receipt = intake
        .submit_hotline_report(request)
        .await
        .unwrap()
        .into_inner();
    let recorded = intake
        .get_intake(GetIntakeRequest {
            intake_id: receipt.intake_id,
        })
        .await
        .unwrap()
        .into_inner()
        .intake
        .unwrap();
    assert_eq!(recorded_facts(recorded).responsible_unit_id, "vn:31741");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_box_finds_units_typed_without_diacritics_with_their_province_and_successors() {
    let system = System::start().await;
    let mut intake = IntakeServiceClient::new(system.intake.channel().await);
    let search = |query: &str, on: &str| SearchUnitsRequest {
        query: query.into(),
        on: on.into(),
        limit: 5,
    };
    let found = intake
        .search_units(search("ninh kieu", ""))
        .await
        .unwrap()
        .into_inner()
        .units;
    assert_eq!(found[0].unit_id, "vn:31135");
    assert_eq!(found[0].label, "Phường Ninh Kiều, Thành phố Cần Thơ");
    assert_eq!(found[0].province_id, "vn:92");
    // A former ward, found by its name and district, with its successor.
    let found = intake
        .search_units(search("phuong i vi thanh", ""))
        .await
        .unwrap()
        .into_inner()
        .units;
    let ward = found.iter().find(|u| u.unit_id == FORMER_WARD).unwrap();
    assert_eq!(ward.label, "Phường I, Thành phố Vị Thanh, Tỉnh Hậu Giang");
    assert_eq!(ward.valid_to, "2025-06-30");
    assert_eq!(ward.successor_unit_ids, [SUCCESSOR]);
    // As on a day before the reform: in force then, no successor.
    let found = intake
        .search_units(search("phuong i vi thanh", "2024-11-02"))
        .await
        .unwrap()
        .into_inner()
        .units;
    let ward = found.iter().find(|u| u.unit_id == FORMER_WARD).unwrap();
    assert!(ward.successor_unit_ids.is_empty());
    let refused = intake.search_units(search(" ", "")).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    let violations = refused.get_details_bad_request().unwrap().field_violations;
    assert_eq!(violations[0].field, "query");
}
