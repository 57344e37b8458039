//! Casework end to end: the procedure over gRPC, refusals naming the rule,
//! racing officers, and a missed 12-hour deadline that raises an alert.

use std::time::{Duration, Instant};

use baove_proto::v1::{self as p, case_service_client::CaseServiceClient};
use futures_util::StreamExt;

use crate::intake::{System, case_of, hotline, intake_client};

pub struct Officer {
    pub client: CaseServiceClient<crate::AuthChannel>,
    /// The commune chair, who approves plans (not the officer who drafts
    /// them).
    pub chair: CaseServiceClient<crate::AuthChannel>,
    pub case_id: String,
    pub version: u64,
    pub n: u32,
}

impl Officer {
    /// A header for the chair's step: the chair acts in their own name.
    pub fn chair_header(&mut self) -> Option<p::CommandHeader> {
        self.header().map(|h| p::CommandHeader {
            officer_id: String::new(),
            ..h
        })
    }

    pub fn header(&mut self) -> Option<p::CommandHeader> {
        self.n += 1;
        Some(p::CommandHeader {
            request_id: format!("{}-{}", self.case_id, self.n),
            case_id: self.case_id.clone(),
            expected_version: self.version,
            officer_id: "cb-ninh-kieu-1".into(),
        })
    }

    /// Takes the answer of a step: on success the case's new version.
    pub fn took<R: baove_proto::steps::CaseStepResponse>(
        &mut self,
        result: Result<tonic::Response<R>, tonic::Status>,
    ) -> Result<Vec<String>, tonic::Status> {
        let response = result?.into_inner();
        self.version = response.version();
        Ok(response.event_types().to_vec())
    }

    pub async fn case(&mut self) -> p::Case {
        self.client
            .get_case(p::GetCaseRequest {
                case_id: self.case_id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .case
            .unwrap()
    }
}

fn rating(level: p::RiskLevel) -> Vec<p::RiskRating> {
    vec![p::RiskRating {
        factor: "cha dượng bạo lực".into(),
        level: level as i32,
    }]
}

fn measures() -> Vec<p::PlanMeasure> {
    vec![p::PlanMeasure {
        id: "m1".into(),
        description: "tư vấn tâm lý hằng tuần".into(),
        responsible: "Trung tâm Công tác xã hội".into(),
        due_date: "2027-01-31".into(),
    }]
}

impl Officer {
    /// The usual officer (province scope) on `case_id` at `casework`.
    pub async fn of(casework: &crate::Service, case_id: &str) -> Self {
        let mut officer = Self {
            client: CaseServiceClient::new(casework.channel().await),
            chair: CaseServiceClient::new(
                casework
                    .channel_as(&crate::province_officer("chu-tich-ninh-kieu"))
                    .await,
            ),
            case_id: case_id.to_owned(),
            version: 0,
            n: 0,
        };
        officer.version = officer.case().await.version;
        officer
    }
}

pub async fn opened_case(system: &System, request_id: &str) -> Officer {
    let mut intake = intake_client(&system.intake).await;
    let receipt = intake
        .submit_hotline_report(hotline(request_id, "Nguyễn Thị Bé"))
        .await
        .unwrap()
        .into_inner();
    let case_id = case_of(&system.intake, &receipt.intake_id).await;
    Officer::of(&system.casework, &case_id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_case_when_walked_through_the_procedure_then_out_of_order_steps_are_refused_naming_the_rule()
 {
    let system = System::start().await;
    let mut o = opened_case(&system, "walk-1").await;
    let case = o.case().await;
    assert_eq!(case.phase(), p::CasePhase::AwaitingInitialAssessment);
    assert_eq!(case.deadlines.len(), 3, "12 hours, 5 and 7 working days");

    // Out of order: a plan before any assessment.
    let header = o.header();
    let refused = o
        .client
        .draft_plan(p::DraftPlanRequest {
            header,
            measures: measures(),
            keep_despite_residence_ref: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert!(
        refused
            .message()
            .contains("a plan (Mẫu 04) is drafted after the detailed assessment"),
        "{}",
        refused.message()
    );

    let header = o.header();
    o.took(
        o.client
            .clone()
            .assign_officer(p::AssignOfficerRequest {
                header,
                assignee_id: "cb-ninh-kieu-2".into(),
            })
            .await,
    )
    .unwrap();
    let header = o.header();
    let request = p::RecordInitialAssessmentRequest {
        header,
        ratings: rating(p::RiskLevel::High),
        emergency_measures_apply: true,
        summary: "nguy cơ cao".into(),
        ..Default::default()
    };
    o.took(o.client.clone().record_initial_assessment(request).await)
        .unwrap();
    let header = o.header();
    let request = p::RecordEmergencyMeasureRequest {
        header,
        kind: p::MeasureKind::TemporarySeparation as i32,
        description: "tạm thời cách ly khỏi cha dượng".into(),
        decision_ref: "QĐ 03/QĐ-UBND".into(),
        separation: Some(p::Separation {
            start_date: "2026-11-29".into(),
            end_date: "2026-12-13".into(),
            extension_decision_ref: String::new(),
        }),
        grounds: p::MeasureGrounds::Unspecified as i32,
    };
    let events = o
        .took(o.client.clone().record_emergency_measure(request).await)
        .unwrap();
    assert_eq!(events, ["EmergencyMeasureRecorded", "DeadlineMet"]);
    let header = o.header();
    let request = p::RecordDetailedAssessmentRequest {
        header,
        summary: "đánh giá chi tiết".into(),
        needs: "tâm lý".into(),
        meeting_participants: vec!["cán bộ xã".into()],
        minutes_ref: "BB-01".into(),
        ..Default::default()
    };
    o.took(o.client.clone().record_detailed_assessment(request).await)
        .unwrap();
    let header = o.header();
    o.took(
        o.client
            .clone()
            .draft_plan(p::DraftPlanRequest {
                header,
                measures: measures(),
                keep_despite_residence_ref: String::new(),
            })
            .await,
    )
    .unwrap();
    let header = o.header();
    o.took(
        o.client
            .clone()
            .send_back_plan(p::SendBackPlanRequest {
                header,
                reason: "thiếu hỗ trợ học tập".into(),
            })
            .await,
    )
    .unwrap();
    let header = o.header();
    let refused = o
        .client
        .clone()
        .record_intervention(p::RecordInterventionRequest {
            header,
            measure_id: "m1".into(),
            description: "buổi 1".into(),
            date: "2026-12-01".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        refused.message(),
        "the plan must be approved before interventions are recorded"
    );
    let header = o.header();
    o.took(
        o.client
            .clone()
            .draft_plan(p::DraftPlanRequest {
                header,
                measures: measures(),
                keep_despite_residence_ref: String::new(),
            })
            .await,
    )
    .unwrap();
    let header = o.chair_header();
    o.took(
        o.chair
            .clone()
            .approve_plan(p::ApprovePlanRequest {
                header,
                decision_ref: "QĐ 12/QĐ-UBND".into(),
            })
            .await,
    )
    .unwrap();
    let header = o.header();
    let request = p::RecordInterventionRequest {
        header,
        measure_id: "m1".into(),
        description: "buổi 1".into(),
        date: "2026-12-01".into(),
    };
    o.took(o.client.clone().record_intervention(request).await)
        .unwrap();
    let header = o.header();
    o.took(
        o.client
            .clone()
            .record_review(p::RecordReviewRequest {
                header,
                ratings: rating(p::RiskLevel::Medium),
                summary: "còn nguy cơ".into(),
            })
            .await,
    )
    .unwrap();
    let header = o.header();
    let refused = o
        .client
        .clone()
        .close_case(p::CloseCaseRequest {
            header,
            reason: "xong".into(),
            grounds: p::CloseGrounds::NoRiskAfterReview as i32,
            decision_ref: "QĐ 30/QĐ-UBND".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    // Re-plan after the review, approve, review again, close.
    let header = o.header();
    o.took(
        o.client
            .clone()
            .draft_plan(p::DraftPlanRequest {
                header,
                measures: measures(),
                keep_despite_residence_ref: String::new(),
            })
            .await,
    )
    .unwrap();
    let header = o.chair_header();
    o.took(
        o.chair
            .clone()
            .approve_plan(p::ApprovePlanRequest {
                header,
                decision_ref: "QĐ 15/QĐ-UBND".into(),
            })
            .await,
    )
    .unwrap();
    let header = o.header();
    o.took(
        o.client
            .clone()
            .record_review(p::RecordReviewRequest {
                header,
                ratings: rating(p::RiskLevel::Low),
                summary: "hết nguy cơ".into(),
            })
            .await,
    )
    .unwrap();
    let header = o.header();
    o.took(
        o.client
            .clone()
            .close_case(p::CloseCaseRequest {
                header,
                reason: "không còn nguy cơ".into(),
                grounds: p::CloseGrounds::NoRiskAfterReview as i32,
                decision_ref: "QĐ 30/QĐ-UBND".into(),
            })
            .await,
    )
    .unwrap();

    let case = o.case().await;
    assert_eq!(case.status, p::CaseStatus::Closed as i32);
    assert_eq!(case.phase(), p::CasePhase::Closed);
    assert_eq!(case.plan_no, 3);
    assert_eq!(case.officer_id, "cb-ninh-kieu-2");
    assert_eq!(case.version, o.version);
    assert!(
        case.deadlines
            .iter()
            .all(|d| d.state() != p::DeadlineState::Open),
        "{:?}",
        case.deadlines
    );

    // An auditor replays the case as it stood after its first append
    // (opened, deadlines set) and as it stands now.
    let mut audit = CaseServiceClient::new(system.casework.channel_as(&crate::auditor()).await);
    let replay = |seq: u64| p::ReplayCaseRequest {
        case_id: o.case_id.clone(),
        as_of: Some(p::replay_case_request::AsOf::AsOfSeq(seq)),
    };
    let early = audit
        .replay_case(replay(4))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert_eq!(
        (early.version, early.phase(), early.status),
        (
            4,
            p::CasePhase::AwaitingInitialAssessment,
            p::CaseStatus::Open as i32
        )
    );
    let late = audit
        .replay_case(replay(case.version))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert_eq!(late, case);
    // Only auditors replay.
    let refused = o.client.replay_case(replay(1)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);

    // The same request again: the first answer, nothing applied twice.
    o.n -= 1;
    let header = Some(p::CommandHeader {
        expected_version: 1,
        ..o.header().unwrap()
    });
    let again = o
        .client
        .clone()
        .close_case(p::CloseCaseRequest {
            header,
            reason: "x".into(),
            grounds: p::CloseGrounds::NoRiskAfterReview as i32,
            decision_ref: "QĐ 30/QĐ-UBND".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(again.already_applied);
    assert_eq!(o.case().await.version, case.version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_two_officers_with_the_same_version_then_one_wins_and_the_other_gets_aborted_with_the_current_version()
 {
    let system = System::start().await;
    let mut first = opened_case(&system, "race-1").await;
    let mut second = Officer {
        client: first.client.clone(),
        chair: first.chair.clone(),
        case_id: first.case_id.clone(),
        version: first.version,
        n: 100,
    };
    let (h1, h2) = (first.header(), second.header());
    let (mut c1, mut c2) = (first.client.clone(), second.client.clone());
    // Assigning is a decision, not bookkeeping: the second must look again.
    let a = c1.assign_officer(p::AssignOfficerRequest {
        header: h1,
        assignee_id: "cb-ninh-kieu-2".into(),
    });
    let b = c2.assign_officer(p::AssignOfficerRequest {
        header: h2,
        assignee_id: "cb-ninh-kieu-3".into(),
    });
    let (a, b) = tokio::join!(a, b);
    let (won, lost) = match (a, b) {
        (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w.into_inner(), l),
        other => panic!("exactly one must win: {other:?}"),
    };
    assert_eq!(lost.code(), tonic::Code::Aborted);
    assert_eq!(
        lost.metadata()
            .get("baove-current-version")
            .unwrap()
            .to_str()
            .unwrap(),
        won.version.to_string()
    );
    assert!(
        lost.message()
            .contains(&format!("at version {}", won.version)),
        "{}",
        lost.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_follow_up_reporting_danger_on_an_open_case_then_it_gets_its_own_12_hour_clock_and_one_measure_meets_both()
 {
    let system = System::start().await;
    let mut o = opened_case(&system, "second-clock-1").await;
    let first = o.case().await;
    assert_eq!(
        first
            .deadlines
            .iter()
            .filter(|d| d.kind == p::DeadlineKind::Emergency as i32)
            .count(),
        1
    );
    // A neighbour calls again two hours later: the child is in danger now.
    let mut follow_up = hotline("second-clock-2", "Nguyễn Thị Bé");
    if let Some(facts) = follow_up.report.as_mut().and_then(|r| r.facts.as_mut()) {
        facts.follow_up_case_id = o.case_id.clone();
        facts.immediate_danger = true;
    }
    let receipt = intake_client(&system.intake)
        .await
        .submit_hotline_report(follow_up)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(case_of(&system.intake, &receipt.intake_id).await, o.case_id);
    let case = o.case().await;
    let clocks: Vec<&p::Deadline> = case
        .deadlines
        .iter()
        .filter(|d| d.kind == p::DeadlineKind::Emergency as i32)
        .collect();
    assert_eq!(clocks.len(), 2, "{:?}", case.deadlines);
    assert!(clocks.iter().any(|d| d.id == "emergency-2"));
    // One emergency measure meets both clocks.
    o.version = case.version;
    let h = o.header();
    let mut c = o.client.clone();
    o.took(
        c.record_initial_assessment(p::RecordInitialAssessmentRequest {
            header: h,
            ratings: rating(p::RiskLevel::High),
            emergency_measures_apply: true,
            summary: "nguy cơ cao".into(),
            ..Default::default()
        })
        .await,
    )
    .unwrap();
    let h = o.header();
    let events = o
        .took(
            c.record_emergency_measure(p::RecordEmergencyMeasureRequest {
                header: h,
                kind: p::MeasureKind::SafeShelter as i32,
                description: "đưa trẻ đến nơi an toàn".into(),
                decision_ref: "QĐ 04/QĐ-UBND".into(),
                separation: None,
                grounds: p::MeasureGrounds::Unspecified as i32,
            })
            .await,
        )
        .unwrap();
    assert_eq!(
        events,
        ["EmergencyMeasureRecorded", "DeadlineMet", "DeadlineMet"]
    );
    assert!(
        o.case()
            .await
            .deadlines
            .iter()
            .filter(|d| d.kind == p::DeadlineKind::Emergency as i32)
            .all(|d| d.state() == p::DeadlineState::Met)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_report_found_unfounded_at_mau_02_then_the_case_closes_by_the_chairs_decision_without_a_plan()
 {
    let system = System::start().await;
    let mut o = opened_case(&system, "unfounded-1").await;
    let h = o.header();
    let mut c = o.client.clone();
    o.took(
        c.record_initial_assessment(p::RecordInitialAssessmentRequest {
            header: h,
            ratings: rating(p::RiskLevel::Low),
            emergency_measures_apply: false,
            summary: "xác minh: không có dấu hiệu xâm hại".into(),
            ..Default::default()
        })
        .await,
    )
    .unwrap();
    // The grounds and the chair's decision are required.
    let h = o.header();
    let missing = c
        .close_case(p::CloseCaseRequest {
            header: h,
            reason: "tin báo không đúng sự thật".into(),
            grounds: p::CloseGrounds::Unspecified as i32,
            decision_ref: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::InvalidArgument);
    assert!(missing.message().contains("grounds"), "{missing:?}");
    let h = o.header();
    let events = o
        .took(
            c.close_case(p::CloseCaseRequest {
                header: h,
                reason: "tin báo không đúng sự thật".into(),
                grounds: p::CloseGrounds::Unfounded as i32,
                decision_ref: "QĐ 31/QĐ-UBND ngày 01/12/2026".into(),
            })
            .await,
        )
        .unwrap();
    assert_eq!(events[0], "CaseClosed");
    let case = o.case().await;
    assert_eq!(case.phase(), p::CasePhase::Closed);
    assert_eq!(case.plan_no, 0, "no plan was invented to close it");
    assert!(
        case.deadlines
            .iter()
            .all(|d| d.state() != p::DeadlineState::Open)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_only_a_deadline_warning_and_a_note_since_her_version_then_an_officers_step_is_decided_again_and_accepted()
 {
    let system = System::start().await;
    let mut officer = opened_case(&system, "bookkeeping-1").await;
    let decided_on = officer.version;
    // The scheduler warns of the 12-hour deadline (at 9 hours)...
    system.casework.move_clock(9 * 3_600_000 + 30 * 60_000);
    let deadline = Instant::now() + Duration::from_secs(30);
    while officer.case().await.deadlines.iter().all(|d| !d.warned) {
        assert!(Instant::now() < deadline, "no warning appended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ...and a colleague adds a note.
    let mut colleague = Officer {
        client: officer.client.clone(),
        chair: officer.chair.clone(),
        case_id: officer.case_id.clone(),
        version: officer.case().await.version,
        n: 100,
    };
    let h = colleague.header();
    let mut c = colleague.client.clone();
    colleague
        .took(
            c.add_note(p::AddNoteRequest {
                header: h,
                text: "đã gọi cho mẹ".into(),
            })
            .await,
        )
        .unwrap();
    assert!(colleague.version >= decided_on + 2);
    // The officer's assessment, decided on the version before both, is
    // accepted: nothing it depends on changed.
    officer.version = decided_on;
    let h = officer.header();
    let mut c = officer.client.clone();
    let types = officer
        .took(
            c.record_initial_assessment(p::RecordInitialAssessmentRequest {
                header: h,
                ratings: rating(p::RiskLevel::High),
                emergency_measures_apply: false,
                summary: String::new(),
                ..Default::default()
            })
            .await,
        )
        .unwrap();
    assert!(
        types.contains(&"InitialAssessmentRecorded".to_owned()),
        "{types:?}"
    );
    assert!(officer.version > colleague.version);
    assert_eq!(
        officer.case().await.phase(),
        p::CasePhase::InitiallyAssessed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_immediate_danger_when_the_clock_passes_12_hours_then_the_miss_is_recorded_once_and_alerted()
 {
    let metrics = format!("127.0.0.1:{}", baove_testkit::free_port().unwrap());
    let system = System::start_with(&[("BAOVE_METRICS_LISTEN", metrics.clone())]).await;
    let client = async_nats::connect(system.nats.url()).await.unwrap();
    let mut alerts = client.subscribe("baove.alert.deadline.>").await.unwrap();
    let mut o = opened_case(&system, "late-1").await;
    let case = o.case().await;
    let emergency = case
        .deadlines
        .iter()
        .find(|d| d.kind == p::DeadlineKind::Emergency as i32)
        .unwrap()
        .clone();
    let received = case.received_at.unwrap();
    let due = emergency.due_at.unwrap();
    assert_eq!(
        due.seconds - received.seconds,
        12 * 3600,
        "12 hours from when the information was received"
    );
    assert!(!emergency.missed);

    // Thirteen hours later, nobody acted.
    system.casework.move_clock(13 * 3_600_000);
    let deadline = Instant::now() + Duration::from_secs(30);
    let alert = loop {
        let message = tokio::time::timeout(Duration::from_secs(30), alerts.next())
            .await
            .expect("no alert within 30 s")
            .unwrap();
        let alert: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
        if alert["missed"] == true && alert["kind"] == "emergency" {
            assert_eq!(message.subject.as_str(), "baove.alert.deadline.vn:31135");
            break alert;
        }
        assert!(Instant::now() < deadline);
    };
    assert_eq!(alert["case_id"], o.case_id.as_str());
    let case = o.case().await;
    let emergency = case
        .deadlines
        .iter()
        .find(|d| d.kind == p::DeadlineKind::Emergency as i32)
        .unwrap();
    assert!(emergency.missed);
    assert!(
        !emergency.warned,
        "past due at once: a miss, not a late warning"
    );
    // The on-call engineer sees it in the metrics.
    let page = crate::metrics::scrape(&metrics);
    assert_eq!(
        crate::metrics::sample(&page, "baove_deadlines_missed_total{kind=\"emergency\"}"),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        crate::metrics::sample(&page, "baove_consumer_pending{consumer=\"casework\"}"),
        Some(0.0),
        "casework has read intake's report: {page}"
    );

    // A restart and more ticks: still exactly one DeadlineMissed for it. To
    // know the restarted scheduler has looked at this case, move the clock
    // past the plan deadline's warning time and wait for that warning.
    let nats_url = system.nats.url();
    let mut system = system;
    system.casework.kill_and_restart(&nats_url);
    system
        .casework
        .wait_health(
            "",
            tonic_health::pb::health_check_response::ServingStatus::Serving,
        )
        .await;
    let plan = case
        .deadlines
        .iter()
        .find(|d| d.kind == p::DeadlineKind::PlanDrafted as i32)
        .unwrap();
    let real_now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let warn_ms = plan.warn_at.unwrap().seconds * 1000;
    system.casework.move_clock(warn_ms - real_now_ms + 60_000);
    o.client = CaseServiceClient::new(system.casework.channel().await);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let case = o.case().await;
        if case
            .deadlines
            .iter()
            .any(|d| d.kind == p::DeadlineKind::PlanDrafted as i32 && d.warned)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted scheduler never warned about the plan"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let events = crate::stored_events(&system.casework, &o.case_id).await;
    let missed: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == "DeadlineMissed" && e.payload_json.contains("\"emergency\""))
        .collect();
    assert_eq!(
        missed.len(),
        1,
        "{:?}",
        events.iter().map(|e| &e.event_type).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_watcher_when_steps_are_taken_then_it_sees_them_live_and_resumes_after_a_disconnect()
 {
    let system = System::start().await;
    let mut o = opened_case(&system, "watch-1").await;
    let mut watch = o
        .client
        .watch_case(p::WatchCaseRequest {
            case_id: o.case_id.clone(),
            from_seq: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    let mut typed = Vec::new();
    while seen.len() < o.version as usize {
        let item = watch.next().await.unwrap().unwrap();
        let event = item.event.unwrap();
        seen.push((event.seq, event.event_type));
        typed.push(item.case_event.and_then(|e| e.event));
    }
    assert_eq!(seen[0], (1, "CaseOpened".to_owned()));
    // The history is typed: the opening event's message names the case.
    match &typed[0] {
        Some(p::case_event::Event::CaseOpened(opened)) => {
            assert_eq!(opened.case_id, o.case_id);
            assert!(opened.received_at.is_some());
        }
        other => panic!("CaseOpened came as {other:?}"),
    }
    assert!(
        typed.iter().all(Option::is_some),
        "an event came without its typed message: {seen:?}"
    );
    let header = o.header();
    o.took(
        o.client
            .clone()
            .add_note(p::AddNoteRequest {
                header,
                text: "đã gọi cho mẹ".into(),
            })
            .await,
    )
    .unwrap();
    let live = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("no live event")
        .unwrap()
        .unwrap();
    match live.case_event.and_then(|e| e.event) {
        Some(p::case_event::Event::NoteAdded(note)) => assert_eq!(note.text, "đã gọi cho mẹ"),
        other => panic!("the note came as {other:?}"),
    }
    let live = live.event.unwrap();
    assert_eq!(
        (live.seq, live.event_type.as_str()),
        (o.version, "NoteAdded")
    );
    drop(watch);

    // Reconnect from the next seq: only what came after.
    let header = o.header();
    o.took(
        o.client
            .clone()
            .assign_officer(p::AssignOfficerRequest {
                header,
                assignee_id: "cb-2".into(),
            })
            .await,
    )
    .unwrap();
    let mut resumed = o
        .client
        .watch_case(p::WatchCaseRequest {
            case_id: o.case_id.clone(),
            from_seq: live.seq + 1,
        })
        .await
        .unwrap()
        .into_inner();
    let next = resumed.next().await.unwrap().unwrap();
    match next.case_event.and_then(|e| e.event) {
        Some(p::case_event::Event::OfficerAssigned(assigned)) => {
            assert_eq!(assigned.officer_id, "cb-2");
        }
        other => panic!("the assignment came as {other:?}"),
    }
    let next = next.event.unwrap();
    assert_eq!(
        (next.seq, next.event_type.as_str()),
        (live.seq + 1, "OfficerAssigned")
    );

    // And the list shows the case under its officer.
    let listed = o
        .client
        .list_cases(p::ListCasesRequest {
            officer_id: "cb-2".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed
            .cases
            .iter()
            .map(|c| c.case_id.as_str())
            .collect::<Vec<_>>(),
        [o.case_id.as_str()]
    );
    assert!(!listed.cases[0].overdue);
    let unknown = o
        .client
        .watch_case(p::WatchCaseRequest {
            case_id: uuid::Uuid::now_v7().to_string(),
            from_seq: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    // Shutdown ends the watch (the client is told to come back) instead of
    // draining on it, and the service exits cleanly.
    let mut system = system;
    system.casework.terminate();
    let ended = tokio::time::timeout(Duration::from_secs(5), resumed.next())
        .await
        .expect("the watch outlived shutdown");
    assert!(
        matches!(&ended, Some(Err(status)) if status.code() == tonic::Code::Unavailable)
            || ended.is_none(),
        "{ended:?}"
    );
    assert!(system.casework.exit_status().await.success());
}

impl Officer {
    /// Takes the case through the whole procedure to closing.
    async fn close_after_the_procedure(&mut self) {
        let mut c = self.client.clone();
        let h = self.header();
        let r = p::RecordInitialAssessmentRequest {
            header: h,
            ratings: rating(p::RiskLevel::High),
            emergency_measures_apply: false,
            summary: String::new(),
            ..Default::default()
        };
        self.took(c.record_initial_assessment(r).await).unwrap();
        let h = self.header();
        let r = p::RecordDetailedAssessmentRequest {
            header: h,
            summary: "đánh giá".into(),
            needs: String::new(),
            meeting_participants: vec!["cán bộ xã".into()],
            minutes_ref: "BB-2".into(),
            ..Default::default()
        };
        self.took(c.record_detailed_assessment(r).await).unwrap();
        let h = self.header();
        self.took(
            c.draft_plan(p::DraftPlanRequest {
                header: h,
                measures: measures(),
                keep_despite_residence_ref: String::new(),
            })
            .await,
        )
        .unwrap();
        let h = self.chair_header();
        let mut chair = self.chair.clone();
        self.took(
            chair
                .approve_plan(p::ApprovePlanRequest {
                    header: h,
                    decision_ref: "QĐ 20".into(),
                })
                .await,
        )
        .unwrap();
        let h = self.header();
        self.took(
            c.record_review(p::RecordReviewRequest {
                header: h,
                ratings: rating(p::RiskLevel::Low),
                summary: String::new(),
            })
            .await,
        )
        .unwrap();
        let h = self.header();
        self.took(
            c.close_case(p::CloseCaseRequest {
                header: h,
                reason: "hết nguy cơ".into(),
                grounds: p::CloseGrounds::NoRiskAfterReview as i32,
                decision_ref: "QĐ 30/QĐ-UBND".into(),
            })
            .await,
        )
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_an_open_case_about_the_same_child_then_a_new_report_is_flagged_until_the_case_closes()
 {
    let system = System::start().await;
    let mut first = opened_case(&system, "dup-1").await;
    let mut intake = intake_client(&system.intake).await;
    let second = intake
        .submit_hotline_report(hotline("dup-2", "NGUYEN THI BE"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        second.possible_duplicate_case_ids,
        [first.case_id.clone()],
        "same child, same commune, open case"
    );
    // Flagged, never merged: the second report opens its own case.
    let second_case = case_of(&system.intake, &second.intake_id).await;
    assert_ne!(second_case, first.case_id);

    first.close_after_the_procedure().await;
    let mut second_officer = Officer {
        client: first.client.clone(),
        chair: first.chair.clone(),
        case_id: second_case,
        version: 0,
        n: 500,
    };
    second_officer.version = second_officer.case().await.version;
    second_officer.close_after_the_procedure().await;
    // intake hears of the closings over NATS and notes them in its log.
    let mut audit = baove_proto::v1::audit_service_client::AuditServiceClient::new(
        system.intake.channel_as(&crate::auditor()).await,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all = audit
            .read_all(p::ReadAllRequest {
                from_position: 1,
                limit: 1000,
            })
            .await
            .unwrap()
            .into_inner();
        if all
            .events
            .iter()
            .filter(|e| e.event_type == "CaseStatusNoted")
            .count()
            == 2
        {
            break;
        }
        assert!(Instant::now() < deadline, "intake never noted the closings");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let third = intake
        .submit_hotline_report(hotline("dup-3", "Nguyễn Thị Bé"))
        .await
        .unwrap()
        .into_inner();
    assert!(
        third.possible_duplicate_case_ids.is_empty(),
        "closed cases are not candidates: {:?}",
        third.possible_duplicate_case_ids
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_bytes_altered_on_disk_then_verify_names_the_case_and_seq() {
    let mut system = System::start().await;
    let o = opened_case(&system, "tamper").await;
    let mut audit = baove_proto::v1::audit_service_client::AuditServiceClient::new(
        system.casework.channel_as(&crate::auditor()).await,
    );
    let progress = verify_all(&mut audit).await;
    assert_eq!(
        (progress.0, progress.1.len()),
        (progress.2, 0),
        "a fresh log verifies"
    );

    // Stop casework, change one byte of the case's second event on disk,
    // start it again on the same data.
    system.casework.terminate();
    assert!(system.casework.exit_status().await.success());
    {
        let path = system.casework.data.path().join("eventlog");
        let db = sled::open(&path).unwrap();
        let events = db.open_tree(baove_eventlog::layout::EVENTS).unwrap();
        let stream = baove_eventlog::StreamId::parse("case", &o.case_id).unwrap();
        let key = baove_eventlog::layout::event_key(stream, 2);
        let mut value = events.get(key).unwrap().unwrap().to_vec();
        let at = value.len() / 2;
        value[at] ^= 0x01;
        events.insert(key, value).unwrap();
        db.flush().unwrap();
    }
    let nats_url = system.nats.url();
    let data = std::mem::replace(&mut system.casework.data, tempfile::tempdir().unwrap());
    let metrics = format!("127.0.0.1:{}", baove_testkit::free_port().unwrap());
    system.casework = crate::Service::start_with(
        "casework",
        &nats_url,
        data,
        &[("BAOVE_METRICS_LISTEN", metrics.clone())],
    );
    system
        .casework
        .wait_health(
            "",
            tonic_health::pb::health_check_response::ServingStatus::Serving,
        )
        .await;
    let failures = "baove_chain_verification_failures_total{check=\"audit\"}";
    assert_eq!(
        crate::metrics::sample(&crate::metrics::scrape(&metrics), failures),
        Some(0.0)
    );
    let mut audit = baove_proto::v1::audit_service_client::AuditServiceClient::new(
        system.casework.channel_as(&crate::auditor()).await,
    );
    let (_, broken, _) = verify_all(&mut audit).await;
    assert_eq!(broken.len(), 1, "{broken:?}");
    assert_eq!(
        (broken[0].stream_id.as_str(), broken[0].first_bad_seq),
        (o.case_id.as_str(), 2)
    );
    let one = audit
        .verify_stream(p::VerifyStreamRequest {
            stream_id: o.case_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!one.intact);
    assert_eq!(one.first_bad_seq, 2);
    // Each check that found it broken is counted, for the alert
    // ChainVerificationFailed.
    assert_eq!(
        crate::metrics::sample(&crate::metrics::scrape(&metrics), failures),
        Some(2.0)
    );
}

/// Runs VerifyAll to the end: (checked, broken streams, total).
pub async fn verify_all(
    audit: &mut baove_proto::v1::audit_service_client::AuditServiceClient<crate::AuthChannel>,
) -> (u64, Vec<p::BrokenStream>, u64) {
    let mut stream = audit
        .verify_all(p::VerifyAllRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut broken = Vec::new();
    while let Some(progress) = stream.next().await {
        let progress = progress.unwrap();
        broken.extend(progress.broken);
        if progress.done {
            return (progress.checked, broken, progress.total);
        }
    }
    panic!("VerifyAll ended without its last message");
}

/// One request a webhook receiver got: its headers and body.
type Received = (axum::http::HeaderMap, bytes::Bytes);

/// A webhook receiver on a free loopback port, as a commune's system would
/// run one: it keeps every request, and answers 503 to the first
/// `refuse_first` of them (down for a moment), 200 after.
async fn webhook_receiver(
    refuse_first: usize,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<Received>>>) {
    use axum::http::StatusCode;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Received>::new()));
    let kept = seen.clone();
    let app = axum::Router::new().route(
        "/alerts",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: bytes::Bytes| {
            let kept = kept.clone();
            async move {
                let mut all = kept.lock().unwrap();
                all.push((headers, body));
                if all.len() <= refuse_first {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/alerts", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

/// The requests of `seen` about the missed emergency deadline of `case_id`.
fn missed_of(seen: &std::sync::Mutex<Vec<Received>>, case_id: &str) -> Vec<Received> {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|(_, body)| {
            let alert: serde_json::Value = serde_json::from_slice(body).unwrap();
            alert["case_id"] == case_id && alert["kind"] == "emergency" && alert["missed"] == true
        })
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_webhooks_and_an_address_for_the_commune_when_a_12_hour_deadline_is_missed_then_each_gets_the_alert_once_signed_even_after_failures()
 {
    // The commune's own system is down twice; the province's is up; the
    // commune's mail server is busy once.
    let (flaky, flaky_seen) = webhook_receiver(2).await;
    let (steady, steady_seen) = webhook_receiver(0).await;
    let sink = baove_testkit::smtp::SmtpSink::start(1).unwrap();
    let config = tempfile::tempdir().unwrap();
    let secret = "c2f1e0d9b8a7968574635241302f1e0d-uy-ban-ninh-kieu";
    std::fs::write(
        config.path().join("ninh-kieu.secret"),
        format!("{secret}\n"),
    )
    .unwrap();
    std::fs::write(
        config.path().join("province.secret"),
        "province-secret-of-at-least-32-bytes",
    )
    .unwrap();
    let delivery = config.path().join("delivery.json");
    std::fs::write(
        &delivery,
        serde_json::json!({
            "smtp": {"host": "127.0.0.1", "port": sink.port(), "security": "none",
                     "from": "baove <canh-bao@cantho.example.gov.vn>"},
            "endpoints": [
                {"recipient": "vn:31135", "webhook": flaky, "secret_file": "ninh-kieu.secret"},
                {"recipient": "vn:31135", "email": "tre-em@ninhkieu.example.gov.vn"},
                {"recipient": "*", "webhook": steady, "secret_file": "province.secret"}
            ]
        })
        .to_string(),
    )
    .unwrap();
    let metrics = format!("127.0.0.1:{}", baove_testkit::free_port().unwrap());
    let system = System::start_with(&[
        ("BAOVE_ALERT_DELIVERY_FILE", delivery.display().to_string()),
        ("BAOVE_METRICS_LISTEN", metrics.clone()),
    ])
    .await;
    let o = opened_case(&system, "webhook-1").await;

    // Thirteen hours later, nobody acted: the miss is alerted.
    system.casework.move_clock(13 * 3_600_000);
    let deadline = Instant::now() + Duration::from_secs(60);
    let attempts = loop {
        let attempts = missed_of(&flaky_seen, &o.case_id);
        // Taken by every endpoint: nothing is being retried any more.
        let settled = crate::metrics::sample(
            &crate::metrics::scrape(&metrics),
            "baove_alert_delivery_oldest_age_seconds{kind=\"deadline\"}",
        ) == Some(0.0);
        if attempts.len() >= 3 && settled {
            break attempts;
        }
        assert!(
            Instant::now() < deadline,
            "the missed deadline was not taken by every endpoint: {} attempts at the commune's webhook",
            attempts.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let header = |h: &axum::http::HeaderMap, name: &str| {
        h.get(name)
            .unwrap_or_else(|| panic!("no {name}"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    // Two refusals, then taken: the same alert id each time, so the
    // receiver can drop a repeat; each attempt signed with the commune's
    // secret, which another secret does not reproduce.
    assert_eq!(attempts.len(), 3, "nothing more once it was taken");
    let id = header(&attempts[0].0, "baove-alert-id");
    assert!(id.starts_with("alert:"), "{id}");
    for (headers, body) in &attempts {
        assert_eq!(header(headers, "baove-alert-id"), id);
        assert_eq!(header(headers, "baove-alert-kind"), "deadline");
        let timestamp: u64 = header(headers, "baove-timestamp").parse().unwrap();
        assert_eq!(
            header(headers, "baove-signature"),
            baove_runtime::delivery::signature(secret.as_bytes(), timestamp, body),
            "signed with the commune's secret over the timestamp and body"
        );
        assert_ne!(
            header(headers, "baove-signature"),
            baove_runtime::delivery::signature(b"another secret", timestamp, body)
        );
    }
    // The province's webhook got it once, not again with each retry for
    // the commune's; the mail server, busy once, got it once.
    let steady_got = missed_of(&steady_seen, &o.case_id);
    assert_eq!(steady_got.len(), 1);
    assert_eq!(header(&steady_got[0].0, "baove-alert-id"), id);
    let mails = sink.accepted();
    assert_eq!(sink.refused(), 1);
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].to, ["tre-em@ninhkieu.example.gov.vn"]);
    assert_eq!(mails[0].from, "canh-bao@cantho.example.gov.vn");
    assert!(
        mails[0]
            .data
            .contains(&format!("Message-ID: <{}@baove>", id.replace(':', "."))),
        "{}",
        mails[0].data
    );
    assert!(!mails[0].data.contains("Nguyễn"), "no name in an alert");
    let page = crate::metrics::scrape(&metrics);
    let count = |channel: &str, outcome: &str| {
        crate::metrics::sample(
            &page,
            &format!(
                "baove_alert_deliveries_total{{kind=\"deadline\",channel=\"{channel}\",outcome=\"{outcome}\"}}"
            ),
        )
    };
    assert_eq!(count("webhook", "failed"), Some(2.0), "{page}");
    assert_eq!(count("email", "failed"), Some(1.0), "{page}");
    assert!(
        count("webhook", "delivered").is_some_and(|n| n >= 2.0),
        "{page}"
    );
    assert!(
        count("email", "delivered").is_some_and(|n| n >= 1.0),
        "{page}"
    );
}

/// The report `request_id` about a child in danger in `unit`, received
/// `hours_ago` hours ago, and its case.
async fn case_in(system: &System, request_id: &str, unit: &str, hours_ago: i64) -> String {
    let mut request = hotline(request_id, "Lê Thị Thu");
    let facts = request
        .report
        .as_mut()
        .and_then(|r| r.facts.as_mut())
        .unwrap();
    facts.incident_place.as_mut().unwrap().unit_id = unit.into();
    facts.received_at.as_mut().unwrap().seconds -= hours_ago * 3600;
    let receipt = intake_client(&system.intake)
        .await
        .submit_hotline_report(request)
        .await
        .unwrap()
        .into_inner();
    case_of(&system.intake, &receipt.intake_id).await
}

/// Takes alerts from `alerts` (60 s at most) until one for `case_id` with
/// `missed`; returns them all.
async fn alerts_until(
    alerts: &mut tonic::Streaming<p::WatchDeadlinesResponse>,
    case_id: &str,
    missed: bool,
) -> Vec<p::WatchDeadlinesResponse> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let next = tokio::time::timeout_at(deadline.into(), alerts.next())
            .await
            .unwrap_or_else(|_| panic!("no alert for {case_id} within 60 s: {seen:?}"))
            .expect("the alert stream ended")
            .expect("an alert");
        let done = next.case_id == case_id && next.missed == missed;
        seen.push(next);
        if done {
            return seen;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_officers_watching_deadlines_when_cases_are_warned_and_missed_then_each_is_alerted_of_the_cases_in_scope()
 {
    let system = System::start().await;
    // Cái Khế's case reported an hour before Ninh Kiều's: its 12-hour
    // deadline is warned and missed first.
    let elsewhere = case_in(&system, "alert-cai-khe", "vn:31120", 2).await;
    let ours = case_in(&system, "alert-ninh-kieu", "vn:31135", 1).await;
    let watch = |identity: crate::Identity| {
        let casework = &system.casework;
        async move {
            CaseServiceClient::new(casework.channel_as(&identity).await)
                .watch_deadlines(p::WatchDeadlinesRequest { from_position: 0 })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let mut commune = watch(crate::Identity::new(
        "cb-ninh-kieu-1",
        baove_security::Role::CommuneOfficer,
        "",
        &["vn:31135"],
    ))
    .await;
    let mut province = watch(crate::province_officer("so-yt-1")).await;

    // 10.5 hours on: Cái Khế's deadline missed (past due at once: no
    // warning), Ninh Kiều's warned.
    system.casework.move_clock(10 * 3_600_000 + 1_800_000);
    let first = alerts_until(&mut province, &elsewhere, true).await;
    // 11.5 hours on: Ninh Kiều's missed too.
    system.casework.move_clock(11 * 3_600_000 + 1_800_000);
    let mut all = first;
    if !all.iter().any(|a| a.case_id == ours && a.missed) {
        all.extend(alerts_until(&mut province, &ours, true).await);
    }
    for (case, missed) in [(&elsewhere, true), (&ours, false), (&ours, true)] {
        assert!(
            all.iter().any(|a| &a.case_id == case
                && a.missed == missed
                && a.kind == p::DeadlineKind::Emergency as i32
                && a.due_at.is_some()),
            "the province officer was not alerted of {case} missed={missed}: {all:?}"
        );
    }
    // The commune officer of Ninh Kiều: her case's warning and miss, and
    // nothing of Cái Khế's, though its alerts came first in the log.
    let hers = alerts_until(&mut commune, &ours, true).await;
    assert!(
        hers.iter()
            .all(|a| a.case_id == ours && a.responsible_unit_id == "vn:31135"),
        "{hers:?}"
    );
    assert!(hers.iter().any(|a| !a.missed), "the warning: {hers:?}");
    let before_hers = all
        .iter()
        .filter(|a| a.case_id == elsewhere)
        .map(|a| a.position)
        .max()
        .unwrap();
    assert!(
        hers.last().unwrap().position > before_hers,
        "Cái Khế's alerts precede her miss in the log, so a leak would have shown"
    );
    // A hotline operator may not watch.
    let refused = CaseServiceClient::new(
        system
            .casework
            .channel_as(&crate::hotline_operator("op-17"))
            .await,
    )
    .watch_deadlines(p::WatchDeadlinesRequest { from_position: 0 })
    .await
    .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
}

/// Given risk ratings each within their limit but together past what one
/// event may hold once sealed, when the officer records the assessment,
/// then it is refused naming a rating's text (not a `payload` she never
/// sent), nothing is recorded, and the same step with shorter text lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_an_assessment_too_long_to_store_when_recorded_then_the_refusal_names_its_text_and_nothing_changes()
 {
    let system = System::start().await;
    let mut o = opened_case(&system, "too-long-1").await;
    let before = o.case().await;
    // 30 ratings of 2,000 characters (about 6 KB of UTF-8 each).
    let factor = "cha dượng đánh đập thường xuyên; ".repeat(60);
    let ratings: Vec<p::RiskRating> = (0..30)
        .map(|i| p::RiskRating {
            factor: format!("{i:02} {}", &factor),
            level: p::RiskLevel::High as i32,
        })
        .collect();
    let header = o.header();
    let refused = o
        .client
        .clone()
        .record_initial_assessment(p::RecordInitialAssessmentRequest {
            header,
            ratings,
            emergency_measures_apply: false,
            summary: "nguy cơ cao".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    let fields = crate::bad_fields(&refused);
    assert_eq!(fields, ["ratings[0].factor"], "{}", refused.message());
    assert!(
        refused.message().contains("InitialAssessmentRecorded")
            && refused.message().contains("64 KiB"),
        "{}",
        refused.message()
    );
    let after = o.case().await;
    assert_eq!(after.version, before.version, "nothing was recorded");
    assert_eq!(after.phase(), p::CasePhase::AwaitingInitialAssessment);

    let header = o.header();
    let events = o
        .took(
            o.client
                .clone()
                .record_initial_assessment(p::RecordInitialAssessmentRequest {
                    header,
                    ratings: rating(p::RiskLevel::High),
                    emergency_measures_apply: false,
                    summary: "nguy cơ cao".into(),
                    ..Default::default()
                })
                .await,
        )
        .unwrap();
    assert!(
        events.contains(&"InitialAssessmentRecorded".to_owned()),
        "{events:?}"
    );
}
