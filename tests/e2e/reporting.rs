//! Statistics end to end: figures from real reports, the same position
//! giving the same bytes after more reports, the projection equal to a
//! recomputation from scratch, and small cells per role.

use baove_proto::v1::{
    self as p, intake_service_client::IntakeServiceClient,
    reporting_service_client::ReportingServiceClient,
};
use baove_security::Role;

use crate::intake::{System, case_of, hotline};
use crate::{Identity, province_officer};

/// This year in Vietnam: the period the reports of the test fall in (a
/// test running across New Year's Eve in Vietnam would see two; it asks
/// both years and adds them).
fn periods() -> Vec<String> {
    let (y, _, _) = crate::vietnam_today();
    vec![(y - 1).to_string(), y.to_string()]
}

fn cell(table: &p::IndicatorTable, indicator: &str, dimension: &str, key: &str) -> p::IndicatorRow {
    table
        .rows
        .iter()
        .find(|r| r.indicator == indicator && r.dimension == dimension && r.key == key)
        .cloned()
        .unwrap_or_else(|| panic!("no cell {indicator}/{dimension}/{key}"))
}

/// Mẫu 02 on `case_id` finding `form` confirmed (or untrue): 0101 counts
/// a child once a form is confirmed.
pub async fn verify(casework: &crate::Service, case_id: &str, form: p::AbuseType, confirmed: bool) {
    let mut o = crate::casework::Officer::of(casework, case_id).await;
    let header = o.header();
    let (confirmed_abuse_types, unconfirmed_abuse_types) = if confirmed {
        (vec![form as i32], vec![])
    } else {
        (vec![], vec![form as i32])
    };
    let request = p::RecordInitialAssessmentRequest {
        header,
        ratings: vec![p::RiskRating {
            factor: "bạo lực".into(),
            level: p::RiskLevel::High as i32,
        }],
        emergency_measures_apply: false,
        summary: "đã xác minh".into(),
        confirmed_abuse_types,
        unconfirmed_abuse_types,
    };
    o.took(o.client.clone().record_initial_assessment(request).await)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figures_come_from_the_reports_and_a_stated_position_gives_the_same_bytes_later() {
    let system = System::start().await;
    let mut intake = IntakeServiceClient::new(system.intake.channel().await);
    let mut cases = Vec::new();
    for (i, name) in ["Lê Thị Hoa", "Trần Văn Bình", "Phạm Thị Cúc"]
        .iter()
        .enumerate()
    {
        let receipt = intake
            .submit_hotline_report(hotline(&format!("stats-{i}"), name))
            .await
            .unwrap()
            .into_inner();
        cases.push(case_of(&system.intake, &receipt.intake_id).await);
    }
    let department = province_officer("so-yt-1");
    let mut reporting = ReportingServiceClient::new(system.casework.channel_as(&department).await);
    let ask = |period: &str, at: u64| p::GetIndicatorsRequest {
        period: period.into(),
        as_of_position: at,
        ..Default::default()
    };
    // Both years' tables as they are now.
    let tables = |reporting: &mut ReportingServiceClient<crate::AuthChannel>| {
        let mut reporting = reporting.clone();
        async move {
            let mut tables = Vec::new();
            for period in periods() {
                tables.push(
                    reporting
                        .get_indicators(ask(&period, 0))
                        .await
                        .unwrap()
                        .into_inner()
                        .table
                        .unwrap(),
                );
            }
            tables
        }
    };
    let total = |tables: &[p::IndicatorTable], indicator: &str| -> u64 {
        tables
            .iter()
            .map(|t| cell(t, indicator, "total", "total").value)
            .sum()
    };
    // Reported, not verified: beside 0101, not in it.
    let before = tables(&mut reporting).await;
    assert_eq!(
        (total(&before, "0101"), total(&before, "0101-unconfirmed")),
        (0, 3)
    );
    for case_id in &cases {
        verify(&system.casework, case_id, p::AbuseType::Violence, true).await;
    }
    // Three girls aged 9, violence, reported by phone, this year.
    let mut first = tables(&mut reporting).await;
    let abused = total(&first, "0101");
    for table in &first {
        assert_eq!(cell(table, "0101", "sex", "male").value, 0);
        assert_eq!(
            cell(table, "0101", "setting", "home").value,
            cell(table, "0101", "total", "total").value
        );
    }
    assert_eq!(abused, 3);
    let this_year = first.pop().unwrap();
    let position = this_year.as_of_position;
    assert!(position > 0);
    let period = this_year.period.clone();

    // The projection equals a recomputation from scratch at its position.
    let rebuilt = reporting
        .get_indicators(ask(&period, position))
        .await
        .unwrap()
        .into_inner()
        .table
        .unwrap();
    assert_eq!(rebuilt, this_year);

    let export = |at: u64| {
        let mut reporting = reporting.clone();
        let period = period.clone();
        async move {
            reporting
                .export_indicators({
                    let asked = ask(&period, at);
                    p::ExportIndicatorsRequest {
                        period: asked.period,
                        unit_id: asked.unit_id,
                        as_of_position: asked.as_of_position,
                        compare_previous_year: asked.compare_previous_year,
                    }
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let before = export(position).await;
    assert!(
        before.csv.starts_with("\u{feff}".as_bytes()),
        "a BOM for spreadsheets"
    );
    let text = String::from_utf8(before.csv.clone()).unwrap();
    assert!(
        text.contains("Số trẻ em bị xâm hại") && text.contains("Abused children"),
        "{text}"
    );

    // More reports later: the same position still gives the same bytes;
    // now gives more.
    let receipt = intake
        .submit_hotline_report(hotline("stats-3", "Võ Văn Dũng"))
        .await
        .unwrap()
        .into_inner();
    let unfounded = case_of(&system.intake, &receipt.intake_id).await;
    // Its report is found untrue: neither in 0101 nor beside it.
    verify(&system.casework, &unfounded, p::AbuseType::Violence, false).await;
    let again = export(position).await;
    assert_eq!(again.csv, before.csv);
    assert_eq!(again.as_of_position, position);
    let now = reporting
        .get_indicators(ask(&period, 0))
        .await
        .unwrap()
        .into_inner()
        .table
        .unwrap();
    assert!(now.as_of_position > position);
    assert_eq!(
        cell(&now, "reports", "total", "total").value,
        cell(&this_year, "reports", "total", "total").value + 1
    );
    for indicator in ["0101", "0101-unconfirmed"] {
        assert_eq!(
            cell(&now, indicator, "total", "total").value,
            cell(&this_year, indicator, "total", "total").value,
            "{indicator}"
        );
    }

    // A position beyond the log is refused, naming the field.
    let beyond = reporting
        .get_indicators(ask(&period, now.as_of_position + 1_000_000))
        .await
        .unwrap_err();
    assert_eq!(beyond.code(), tonic::Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_counts_of_children_are_hidden_from_communes_not_from_the_department_or_auditors() {
    let system = System::start().await;
    let mut intake = IntakeServiceClient::new(system.intake.channel().await);
    for i in 0..2 {
        let receipt = intake
            .submit_hotline_report(hotline(&format!("small-{i}"), "Đỗ Thị Lan"))
            .await
            .unwrap()
            .into_inner();
        let case_id = case_of(&system.intake, &receipt.intake_id).await;
        verify(&system.casework, &case_id, p::AbuseType::Violence, true).await;
    }
    let period = periods().pop().unwrap();
    let ask = |who: Identity, period: String, unit: &str| {
        let casework = &system.casework;
        let unit_id = unit.to_owned();
        async move {
            ReportingServiceClient::new(casework.channel_as(&who).await)
                .get_indicators(p::GetIndicatorsRequest {
                    period,
                    unit_id,
                    ..Default::default()
                })
                .await
        }
    };
    let commune = Identity::new("cb-1", Role::CommuneOfficer, "", &["vn:31135"]);
    let seen_by_commune = ask(commune.clone(), period.clone(), "vn:31135")
        .await
        .unwrap()
        .into_inner()
        .table
        .unwrap();
    let hidden = cell(&seen_by_commune, "0101", "total", "total");
    assert!(seen_by_commune.small_cells_suppressed);
    assert!(hidden.suppressed && hidden.value == 0, "{hidden:?}");
    // A commune officer sees their own units only: not the province's
    // table (broken down by commune), not another commune's.
    for unit in ["", "vn:31120"] {
        let refused = ask(commune.clone(), period.clone(), unit)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{unit:?}");
        assert!(refused.message().contains("own units"), "{refused:?}");
    }
    for who in [province_officer("so-yt-1"), crate::auditor()] {
        let mut total = 0;
        for period in periods() {
            let shown = cell(
                &ask(who.clone(), period, "")
                    .await
                    .unwrap()
                    .into_inner()
                    .table
                    .unwrap(),
                "0101",
                "total",
                "total",
            );
            assert!(!shown.suppressed);
            total += shown.value;
        }
        assert_eq!(total, 2);
    }
    // Hotline operators get no statistics.
    let refused = ReportingServiceClient::new(
        system
            .casework
            .channel_as(&crate::hotline_operator("op-17"))
            .await,
    )
    .get_indicators(p::GetIndicatorsRequest {
        period,
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
}
