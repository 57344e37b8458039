//! Intake end to end: reports become cases, whatever fails in between.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use baove_proto::v1::{
    self as p, GetCaseRequest, GetIntakeRequest, IntakeStatus, ListIntakesRequest, ReadAllRequest,
    SubmitHotlineReportRequest, SubmitPoliceNotificationRequest,
    audit_service_client::AuditServiceClient, case_service_client::CaseServiceClient,
    intake_service_client::IntakeServiceClient,
};
use baove_testkit::NatsServer;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_types::StatusExt;

use crate::Service;

pub fn now() -> prost_types::Timestamp {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    prost_types::Timestamp {
        seconds: i64::try_from(since.as_secs()).unwrap() - 60,
        nanos: 0,
    }
}

pub fn facts(name: &str) -> p::ReportFacts {
    p::ReportFacts {
        received_at: Some(now()),
        child: Some(p::Child {
            full_name: name.into(),
            age: Some(p::child::Age::EstimatedAgeYears(9)),
            sex: p::Sex::Female as i32,
            ..Default::default()
        }),
        incident_place: Some(p::Place {
            unit_id: "vn:31135".into(),
            address: "hẻm 51, đường 3/2".into(),
        }),
        concerns: Some(p::Concerns {
            abuse_types: vec![p::AbuseType::Violence as i32],
            ..Default::default()
        }),
        narrative: "Hàng xóm nghe tiếng trẻ khóc và tiếng đánh đập lúc 2 giờ sáng".into(),
        immediate_danger: true,
        setting: p::AbuseSetting::Home as i32,
        ..Default::default()
    }
}

pub fn hotline(request_id: &str, name: &str) -> SubmitHotlineReportRequest {
    SubmitHotlineReportRequest {
        request_id: request_id.into(),
        report: Some(p::HotlineReport {
            channel: p::Channel::Phone as i32,
            operator_id: "op-17".into(),
            facts: Some(facts(name)),
            informant: Some(p::Informant {
                consent: true,
                full_name: "Trần Thị Cúc".into(),
                phone: "0903 111 222".into(),
                relation: "hàng xóm".into(),
            }),
        }),
    }
}

pub struct System {
    pub nats: NatsServer,
    pub intake: Service,
    pub casework: Service,
}

impl System {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// The system with more environment for casework (`casework_env`).
    pub async fn start_with(casework_env: &[(&str, String)]) -> Self {
        let nats = NatsServer::start().unwrap();
        let intake = Service::start("intake", &nats.url());
        let casework = Service::start_with(
            "casework",
            &nats.url(),
            tempfile::tempdir().unwrap(),
            casework_env,
        );
        for s in [&intake, &casework] {
            s.wait_health("", ServingStatus::Serving).await;
        }
        Self {
            nats,
            intake,
            casework,
        }
    }
}

pub async fn intake_client(s: &Service) -> IntakeServiceClient<crate::AuthChannel> {
    IntakeServiceClient::new(s.channel().await)
}

/// The hotline report of intake `intake_id`, as `GetIntake` returns it.
async fn hotline_report_of(
    intake: &mut IntakeServiceClient<crate::AuthChannel>,
    intake_id: &str,
) -> p::HotlineReport {
    let got = intake
        .get_intake(GetIntakeRequest {
            intake_id: intake_id.to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
        .intake
        .unwrap();
    let Some(p::intake::Report::Hotline(report)) = got.report else {
        panic!("not a hotline report")
    };
    report
}

/// Waits (up to 60 s) until the intake is handed over; returns its case id.
pub async fn case_of(intake: &Service, intake_id: &str) -> String {
    try_case_of(intake, intake_id)
        .await
        .unwrap_or_else(|status| panic!("{status}"))
}

/// As [`case_of`], or what intake last said of the report when it was not
/// handed over within 60 s.
pub async fn try_case_of(intake: &Service, intake_id: &str) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Any report, whoever logged it: as the province's department.
        let mut client = IntakeServiceClient::new(
            intake
                .channel_as(&crate::province_officer("so-ldtbxh-1"))
                .await,
        );
        let last = match client
            .get_intake(GetIntakeRequest {
                intake_id: intake_id.into(),
            })
            .await
        {
            Ok(found) => {
                let found = found.into_inner().intake.unwrap();
                if found.status == IntakeStatus::HandedOver as i32 {
                    assert!(!found.case_id.is_empty());
                    assert!(found.handed_over_at.is_some());
                    return Ok(found.case_id);
                }
                format!("status {:?}", IntakeStatus::try_from(found.status))
            }
            Err(status) => format!("{:?}: {}", status.code(), status.message()),
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "intake {intake_id} not handed over within 60 s; intake last said: {last}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every case event in casework's log: (event type, intake id named).
async fn case_events(casework: &Service) -> Vec<(String, String)> {
    let mut audit = AuditServiceClient::new(casework.channel_as(&crate::auditor()).await);
    let all = audit
        .read_all(ReadAllRequest {
            from_position: 1,
            limit: 1000,
        })
        .await
        .unwrap()
        .into_inner();
    all.events
        .into_iter()
        .map(|e| {
            let payload: serde_json::Value = serde_json::from_str(&e.payload_json).unwrap();
            (
                e.event_type,
                payload["intake_id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_hotline_report_and_a_police_notification_then_each_becomes_a_case() {
    let system = System::start().await;
    let mut intake = intake_client(&system.intake).await;

    let receipt = intake
        .submit_hotline_report(hotline("call-1", "Nguyễn Thị Bé"))
        .await
        .unwrap()
        .into_inner();
    assert!(!receipt.already_recorded);
    assert!(receipt.recorded_at.is_some());

    let notification = SubmitPoliceNotificationRequest {
        request_id: "police-1".into(),
        notification: Some(p::PoliceNotification {
            police_agency_id: "vn:31135/cong-an".into(),
            officer_id: "ca-301".into(),
            officer_name: "Lê Văn Dũng".into(),
            case_number: "BB-2026/118".into(),
            offence: Some(p::Offence {
                article: "146".into(),
                description: "Dâm ô đối với người dưới 16 tuổi".into(),
            }),
            occurred_at: Some(now()),
            criminal_proceedings_opened: true,
            support_needed: "tư vấn tâm lý".into(),
            facts: Some(facts("Lê Văn Tú")),
            police_received_at: None,
        }),
    };
    let police = IntakeServiceClient::new(
        system
            .intake
            .channel_as(&crate::police("ca-301", "vn:31135/cong-an"))
            .await,
    )
    .submit_police_notification(notification)
    .await
    .unwrap()
    .into_inner();

    let mut cases = CaseServiceClient::new(system.casework.channel().await);
    for (intake_id, police_number) in [
        (&receipt.intake_id, None),
        (&police.intake_id, Some("BB-2026/118")),
    ] {
        let case_id = case_of(&system.intake, intake_id).await;
        let case = cases
            .get_case(GetCaseRequest {
                case_id: case_id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .case
            .unwrap();
        assert_eq!(case.intake_ids, std::slice::from_ref(intake_id));
        assert_eq!(case.incident_unit_id, "vn:31135");
        assert!(case.immediate_danger);
        assert_eq!(
            case.police_case_numbers.first().map(String::as_str),
            police_number
        );
    }

    // The report reads back normalised, and the list finds it without diacritics.
    let report = hotline_report_of(&mut intake, &receipt.intake_id).await;
    assert_eq!(report.informant.unwrap().phone, "+84903111222");
    let listed = intake
        .list_intakes(ListIntakesRequest {
            child_name: "nguyen thi be".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed
            .intakes
            .iter()
            .map(|i| i.intake_id.as_str())
            .collect::<Vec<_>>(),
        [receipt.intake_id.as_str()]
    );
    // The hotline operator lists what they logged; the department all.
    let mut department = IntakeServiceClient::new(
        system
            .intake
            .channel_as(&crate::province_officer("so-yt-1"))
            .await,
    );
    let police_only = department
        .list_intakes(ListIntakesRequest {
            channel: p::Channel::Police as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(police_only.intakes.len(), 1);
    assert_eq!(police_only.intakes[0].intake_id, police.intake_id);
    drop(system);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_several_bad_fields_then_all_come_back_and_nothing_is_stored() {
    let system = System::start().await;
    let mut intake = intake_client(&system.intake).await;
    let mut request = hotline("bad-1", "Phạm Văn Khang");
    let report = request.report.as_mut().unwrap();
    report.channel = 0;
    let facts = report.facts.as_mut().unwrap();
    facts.child.as_mut().unwrap().age = Some(p::child::Age::EstimatedAgeYears(21));
    facts.incident_place.as_mut().unwrap().unit_id = "vn:99998".into();
    facts.received_at = Some(prost_types::Timestamp {
        seconds: now().seconds + 86_400,
        nanos: 0,
    });
    report.informant.as_mut().unwrap().consent = false;

    let status = intake.submit_hotline_report(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let fields = crate::bad_fields(&status);
    assert_eq!(
        fields,
        [
            "report.channel",
            "report.facts.received_at",
            "report.facts.child.estimated_age_years",
            "report.facts.incident_place.unit_id",
            "report.informant.consent",
        ]
    );
    let listed = intake
        .list_intakes(ListIntakesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.intakes.is_empty(), "nothing stored");
    let mut audit = AuditServiceClient::new(system.intake.channel_as(&crate::auditor()).await);
    // The log holds nothing (the reads above are in the access log, a log
    // of its own).
    let all = audit
        .read_all(ReadAllRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        all.events.is_empty(),
        "{:?}",
        all.events.iter().map(|e| &e.event_type).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_the_same_request_id_twice_then_one_intake_and_one_case() {
    let system = System::start().await;
    let mut intake = intake_client(&system.intake).await;
    let first = intake
        .submit_hotline_report(hotline("double-click", "Võ Thị Mai"))
        .await
        .unwrap()
        .into_inner();
    let second = intake
        .submit_hotline_report(hotline("double-click", "Võ Thị Mai"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.intake_id, second.intake_id);
    assert!(second.already_recorded);
    case_of(&system.intake, &first.intake_id).await;
    // A client key shaped like the service's own command ids is just a new
    // key: it neither replays nor reveals the hand-over of that intake.
    let shaped = intake
        .submit_hotline_report(hotline(
            &format!("handover:{}", first.intake_id),
            "Võ Thị Mai",
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!shaped.already_recorded);
    assert_ne!(shaped.intake_id, first.intake_id);
    let listed = intake
        .list_intakes(ListIntakesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed.intakes.len(),
        2,
        "the double click made one intake, the other key another"
    );
    case_of(&system.intake, &shaped.intake_id).await;
    let opened: Vec<_> = case_events(&system.casework)
        .await
        .into_iter()
        .filter(|(t, i)| t == "CaseOpened" && *i == first.intake_id)
        .collect();
    assert_eq!(opened.len(), 1, "one case for the double click");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_nats_down_while_submitting_then_reports_are_kept_and_each_reaches_casework_once() {
    let mut system = System::start().await;
    system
        .intake
        .wait_health("baove.bus", ServingStatus::Serving)
        .await;
    system.nats.stop();
    let mut intake = intake_client(&system.intake).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let receipt = intake
            .submit_hotline_report(hotline(&format!("offline-{i}"), &format!("Trẻ số {i}")))
            .await
            .unwrap();
        ids.push(receipt.into_inner().intake_id);
    }
    system.nats.restart().unwrap();
    for id in &ids {
        case_of(&system.intake, id).await;
    }
    let opened: Vec<String> = case_events(&system.casework)
        .await
        .into_iter()
        .filter(|(t, _)| t == "CaseOpened")
        .map(|(_, i)| i)
        .collect();
    assert_eq!(opened.len(), 5, "{opened:?}");
    assert_eq!(
        opened.iter().collect::<HashSet<_>>(),
        ids.iter().collect::<HashSet<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_services_killed_mid_flight_then_every_acknowledged_report_is_in_exactly_one_case() {
    let mut system = System::start().await;
    let mut ids = Vec::new();
    {
        let mut intake = intake_client(&system.intake).await;
        for i in 0..3 {
            ids.push(
                intake
                    .submit_hotline_report(hotline(&format!("k-{i}"), "Đỗ Văn Nam"))
                    .await
                    .unwrap()
                    .into_inner()
                    .intake_id,
            );
        }
    }
    // intake dies right after replying; casework dies while consuming.
    let nats_url = system.nats.url();
    system.intake.kill_and_restart(&nats_url);
    system.casework.kill_and_restart(&nats_url);
    system.intake.wait_health("", ServingStatus::Serving).await;
    {
        let mut intake = intake_client(&system.intake).await;
        for i in 3..5 {
            ids.push(
                intake
                    .submit_hotline_report(hotline(&format!("k-{i}"), "Đỗ Văn Nam"))
                    .await
                    .unwrap()
                    .into_inner()
                    .intake_id,
            );
        }
    }
    system.casework.kill_and_restart(&nats_url);

    for id in &ids {
        case_of(&system.intake, id).await;
    }
    let opened: Vec<String> = case_events(&system.casework)
        .await
        .into_iter()
        .filter(|(t, _)| t == "CaseOpened")
        .map(|(_, i)| i)
        .collect();
    assert_eq!(opened.len(), ids.len(), "one case per report: {opened:?}");
    assert_eq!(
        opened.iter().collect::<HashSet<_>>(),
        ids.iter().collect::<HashSet<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_jetstream_loses_its_store_before_casework_reads_then_intake_republishes_and_one_case_opens()
 {
    let mut system = System::start().await;
    system.casework.kill(); // not reading yet
    let mut intake = intake_client(&system.intake).await;
    let receipt = intake
        .submit_hotline_report(hotline("lost-1", "Huỳnh Văn Lộc"))
        .await
        .unwrap()
        .into_inner();
    // Wait until the relay's publish was acknowledged by JetStream...
    let client = async_nats::connect(system.nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut stream) = js.get_stream("BAOVE_INTAKE").await
            && stream.info().await.unwrap().state.messages == 1
        {
            break;
        }
        assert!(Instant::now() < deadline, "report never reached JetStream");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ...then the server loses everything it had acknowledged.
    system.nats.restart_empty().unwrap();
    system.casework.kill_and_restart(&system.nats.url());

    let case_id = case_of(&system.intake, &receipt.intake_id).await;
    let opened: Vec<(String, String)> = case_events(&system.casework)
        .await
        .into_iter()
        .filter(|(t, _)| t == "CaseOpened")
        .collect();
    assert_eq!(opened, [("CaseOpened".to_owned(), receipt.intake_id)]);
    assert!(!case_id.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_walk_in_at_the_commune_then_the_officer_records_mau_01_and_a_case_opens() {
    let system = System::start().await;
    let officer = crate::Identity::new(
        "cb-ninh-kieu-7",
        baove_security::Role::CommuneOfficer,
        "vn:31135/ubnd",
        &["vn:31135"],
    );
    let mut report = hotline("walk-in-1", "Trương Thị Nga").report.unwrap();
    report.channel = p::Channel::InPerson as i32;
    report.operator_id = String::new();
    let receipt = IntakeServiceClient::new(system.intake.channel_as(&officer).await)
        .record_received_report(p::RecordReceivedReportRequest {
            request_id: "walk-in-1".into(),
            report: Some(report.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    let case_id = case_of(&system.intake, &receipt.intake_id).await;
    assert!(!case_id.is_empty());
    let recorded = IntakeServiceClient::new(system.intake.channel_as(&officer).await)
        .get_intake(GetIntakeRequest {
            intake_id: receipt.intake_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .intake
        .unwrap();
    assert_eq!(recorded.channel, p::Channel::InPerson as i32);
    let Some(p::intake::Report::Hotline(as_recorded)) = recorded.report else {
        panic!("a Mẫu 01 report")
    };
    assert_eq!(as_recorded.operator_id, "cb-ninh-kieu-7", "who received it");
    // A retry returns the first receipt; a hotline operator may not use it.
    let again = IntakeServiceClient::new(system.intake.channel_as(&officer).await)
        .record_received_report(p::RecordReceivedReportRequest {
            request_id: "walk-in-1".into(),
            report: Some(report.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.intake_id, receipt.intake_id);
    assert!(again.already_recorded);
    let refused = IntakeServiceClient::new(system.intake.channel().await)
        .record_received_report(p::RecordReceivedReportRequest {
            request_id: "walk-in-2".into(),
            report: Some(report),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);

    // The same from the command line: `baove intake submit --received`.
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/examples/hotline-report.json"
    );
    let cli = |args: &[&str]| {
        std::process::Command::new(crate::bin_dir().join("baove"))
            .args(args)
            .env("BAOVE_ADDR", &system.intake.addr)
            .env("BAOVE_TOKEN", officer.token())
            .output()
            .unwrap()
    };
    let out = cli(&["intake", "submit", "--received", "--file", file]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let intake_id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("recorded intake "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no receipt in {stdout}"))
        .to_owned();
    let by_cli = IntakeServiceClient::new(system.intake.channel_as(&officer).await)
        .get_intake(GetIntakeRequest { intake_id })
        .await
        .unwrap()
        .into_inner()
        .intake
        .unwrap();
    let Some(p::intake::Report::Hotline(as_recorded)) = by_cli.report else {
        panic!("a Mẫu 01 report")
    };
    assert_eq!(as_recorded.operator_id, "cb-ninh-kieu-7", "who received it");
    // A police notification is not a report received at the commune.
    let police = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/examples/police-notification.json"
    );
    let out = cli(&["intake", "submit", "--received", "--file", police]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a police notification"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The officer follows the case from the command line: `baove case
    // show` prints the case (it printed casework's answer as if it were
    // the case, and failed to decode it).
    let out = cli(&["case", "show", &case_id, "--addr", &system.casework.addr]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(shown["case_id"], case_id.as_str(), "{stdout}");
    assert_eq!(shown["incident_unit_id"], "vn:31135", "{stdout}");
    // The place's unit id, typed without diacritics: `baove intake units`.
    let out = cli(&["intake", "units", "ninh kieu", "--limit", "3"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.lines().next().is_some_and(
            |l| l.starts_with("vn:31135") && l.ends_with("Phường Ninh Kiều, Thành phố Cần Thơ")
        ),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_birth_year_only_then_the_child_counts_as_the_youngest_she_may_be_and_the_year_is_kept()
 {
    let system = System::start().await;
    let mut intake = IntakeServiceClient::new(system.intake.channel().await);
    // Born "in" the year that makes her 16 by 31 December of this year:
    // she may still be 15, so the Law on Children applies.
    let (year, _, _) = crate::vietnam_today();
    let born = (year - 16).to_string();
    let mut request = hotline("birth-year", "Hồ Thị Mai");
    let child = request
        .report
        .as_mut()
        .unwrap()
        .facts
        .as_mut()
        .unwrap()
        .child
        .as_mut()
        .unwrap();
    child.age = Some(p::child::Age::DateOfBirth(born.clone()));
    let receipt = intake
        .submit_hotline_report(request)
        .await
        .unwrap()
        .into_inner();
    assert!(!receipt.outside_child_law);
    let recorded = intake
        .get_intake(GetIntakeRequest {
            intake_id: receipt.intake_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .intake
        .unwrap();
    let Some(p::intake::Report::Hotline(report)) = recorded.report else {
        panic!("a hotline report")
    };
    assert_eq!(
        report.facts.unwrap().child.unwrap().age,
        Some(p::child::Age::DateOfBirth(born))
    );
    let case_id = case_of(&system.intake, &receipt.intake_id).await;
    let case = CaseServiceClient::new(system.casework.channel().await)
        .get_case(GetCaseRequest { case_id })
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert!(!case.outside_child_law);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_recorded_report_when_the_operator_checks_another_about_the_same_child_then_it_is_flagged_and_nothing_is_recorded()
 {
    let system = System::start().await;
    let mut intake = intake_client(&system.intake).await;
    let first = intake
        .submit_hotline_report(hotline("check-1", "Đỗ Thị Hoa"))
        .await
        .unwrap()
        .into_inner();
    let first_case = case_of(&system.intake, &first.intake_id).await;
    let check = |name: &str| p::CheckHotlineReportRequest {
        report: hotline("unused", name).report,
    };
    // The same child, with and without diacritics: flagged, with the case
    // the operator logged herself.
    let same = intake
        .check_hotline_report(check("Do Thi Hoa"))
        .await
        .unwrap()
        .into_inner();
    assert!(same.possible_duplicate);
    assert_eq!(same.possible_duplicate_case_ids, vec![first_case]);
    let other = intake
        .check_hotline_report(check("Trần Văn Nam"))
        .await
        .unwrap()
        .into_inner();
    assert!(!other.possible_duplicate && other.possible_duplicate_case_ids.is_empty());
    // A report that would be refused is refused the same way, every field.
    let mut bad = check("Đỗ Thị Hoa");
    bad.report.as_mut().unwrap().channel = 0;
    let refused = intake.check_hotline_report(bad).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    let fields = crate::bad_fields(&refused);
    assert_eq!(fields, ["report.channel"]);
    // Nothing was recorded by the checks; each is in the access log.
    let listed = intake
        .list_intakes(ListIntakesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.intakes.len(), 1);
    let entries = AuditServiceClient::new(system.intake.channel_as(&crate::auditor()).await)
        .list_access(p::ListAccessRequest {
            user_id: "op-17".into(),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let checks = entries
        .iter()
        .filter(|e| e.rpc == "IntakeService/CheckHotlineReport" && e.outcome == "read")
        .count();
    assert_eq!(checks, 2, "{entries:?}");
    assert!(
        entries
            .iter()
            .all(|e| !e.subject.contains("Hoa") && !e.subject.contains("Nam")),
        "no name in the access log: {entries:?}"
    );
    drop(system);
}

/// `len` characters of Vietnamese text: a sentence, repeated and cut (not
/// at a space, which normalising would trim).
pub fn vietnamese(len: usize) -> String {
    let mut text: String =
        "Bé bị đánh nhiều lần, người mẹ kể rằng việc này xảy ra từ tháng trước. "
            .chars()
            .cycle()
            .take(len)
            .collect();
    if text.ends_with(' ') {
        text.pop();
        text.push('.');
    }
    text
}

/// `len` characters each three bytes long in UTF-8 ("ệ"): the most a
/// field within its limit in Vietnamese may take.
fn widest(len: usize) -> String {
    "ệ".repeat(len)
}

/// A hotline report whose every text field holds `text(its limit)`.
pub fn at_every_limit(request_id: &str, text: fn(usize) -> String) -> SubmitHotlineReportRequest {
    let mut request = hotline(request_id, &text(200));
    let report = request.report.as_mut().unwrap();
    let informant = report.informant.as_mut().unwrap();
    informant.full_name = text(200);
    informant.relation = text(200);
    let facts = report.facts.as_mut().unwrap();
    let child = facts.child.as_mut().unwrap();
    child.ethnicity = text(100);
    child.current_condition = text(4000);
    facts.incident_place.as_mut().unwrap().address = text(500);
    facts.residence_place = Some(p::Place {
        unit_id: "vn:31135".into(),
        address: text(500),
    });
    facts.narrative = text(8000);
    facts.actions_taken = text(4000);
    facts.likely_consequence = text(4000);
    facts.concerns.as_mut().unwrap().injury = Some(p::Injury {
        cause: p::InjuryCause::Fall as i32,
        outcome: p::InjuryOutcome::NotDisabled as i32,
        detail: text(500),
    });
    let person = || p::Person {
        full_name: text(200),
        phone: "0912 345 678".into(),
        address: text(500),
        relation: text(200),
    };
    facts.father = Some(p::Person {
        relation: String::new(),
        ..person()
    });
    facts.mother = Some(p::Person {
        relation: String::new(),
        ..person()
    });
    facts.caregiver = Some(person());
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_report_filled_to_every_documented_limit_then_it_is_recorded_and_reads_back_whole()
{
    let system = System::start().await;
    let mut intake = intake_client(&system.intake).await;

    // Every field within its limit but each character three bytes: too
    // large to store as one event. Refused naming the report, not as a
    // fault of the service, and nothing is stored.
    let status = intake
        .submit_hotline_report(at_every_limit("widest-1", widest))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status}");
    let violations = status.get_details_bad_request().unwrap().field_violations;
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(violations[0].field, "report");
    assert!(
        violations[0].description.contains("facts.narrative"),
        "{violations:?}"
    );
    let listed = intake
        .list_intakes(ListIntakesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.intakes.is_empty(), "nothing stored");

    // Vietnamese as typed, every field at its limit: recorded whole.
    let request = at_every_limit("long-1", vietnamese);
    let sent = request
        .report
        .as_ref()
        .and_then(|r| r.facts.clone())
        .unwrap();

    let receipt = intake
        .submit_hotline_report(request)
        .await
        .unwrap_or_else(|status| panic!("a report within every limit was refused: {status}"))
        .into_inner();
    let report = hotline_report_of(&mut intake, &receipt.intake_id).await;
    let facts = report.facts.unwrap();
    assert_eq!(facts.narrative, sent.narrative);
    assert_eq!(facts.likely_consequence, sent.likely_consequence);
    assert_eq!(
        facts.caregiver.unwrap().address,
        sent.caregiver.unwrap().address
    );
    // How much of an event's room it takes (printed: the limit's doc cites it).
    let mut audit = AuditServiceClient::new(system.intake.channel_as(&crate::auditor()).await);
    let stored = audit
        .read_stream(p::ReadStreamRequest {
            stream_id: receipt.intake_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    println!(
        "a report at every limit: {} bytes of payload",
        stored[0].payload_json.len()
    );
    // And it reaches casework whole.
    case_of(&system.intake, &receipt.intake_id).await;
}
