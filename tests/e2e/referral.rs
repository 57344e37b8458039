//! Referrals end to end: the police flow into the case's history, consent,
//! declines, escalation with an alert, an agency merger, and a referral
//! service killed mid-flow with NATS restarted.

use std::time::{Duration, Instant};

use baove_proto::v1::{self as p, referral_service_client::ReferralServiceClient};
use futures_util::StreamExt;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::Service;
use crate::casework::{Officer, opened_case};
use crate::intake::System;

const POLICE: &str = "vn:31135/cong-an";

pub struct Full {
    pub system: System,
    pub referral: Service,
}

pub async fn start() -> Full {
    start_with(&[]).await
}

/// The three services, referral with more environment (`referral_env`).
pub async fn start_with(referral_env: &[(&str, String)]) -> Full {
    let system = System::start().await;
    let referral = Service::start_with(
        "referral",
        &system.nats.url(),
        tempfile::tempdir().unwrap(),
        referral_env,
    );
    referral.wait_health("", ServingStatus::Serving).await;
    Full { system, referral }
}

pub fn police_request(
    o: &mut Officer,
    legal_basis: p::LegalBasis,
    urgent: bool,
) -> p::RequestReferralRequest {
    p::RequestReferralRequest {
        header: o.header(),
        service: p::RequestedService::PoliceInvestigation as i32,
        to_agency_id: POLICE.into(),
        reason: "dấu hiệu tội phạm bạo lực".into(),
        urgent,
        shares_identifying_information: true,
        legal_basis: legal_basis as i32,
        ..Default::default()
    }
}

pub async fn referral_client(s: &Service) -> ReferralServiceClient<crate::AuthChannel> {
    ReferralServiceClient::new(s.channel().await)
}

/// Waits (up to 30 s) for the referral to reach `agency`'s inbox, asking
/// again after UNAVAILABLE as a client does (a referral service started
/// again answers so for a referral whose key it has not read from NATS
/// until it is connected).
pub async fn in_inbox(
    client: &mut ReferralServiceClient<crate::AuthChannel>,
    agency: &str,
    id: &str,
) -> p::Referral {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed = client
            .list_inbox(p::ListInboxRequest {
                agency_id: agency.into(),
                ..Default::default()
            })
            .await;
        let inbox = match listed {
            Ok(inbox) => inbox.into_inner(),
            Err(status) if status.code() == tonic::Code::Unavailable => {
                assert!(Instant::now() < deadline, "{agency}'s inbox: {status}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(status) => panic!("{agency}'s inbox: {status}"),
        };
        if let Some(found) = inbox.referrals.into_iter().find(|r| r.referral_id == id) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "referral {id} never reached {agency}'s inbox"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Requests a police referral as an officer would: on ABORTED (a referral
/// step landed on the case meanwhile), reload the version and try again.
pub async fn request_reloading(o: &mut Officer) -> p::RequestReferralResponse {
    for _ in 0..10 {
        o.version = o.case().await.version;
        let request = police_request(o, p::LegalBasis::CriminalInvestigation, false);
        match o.client.request_referral(request).await {
            Ok(r) => return r.into_inner(),
            Err(status) if status.code() == tonic::Code::Aborted => continue,
            Err(status) => panic!("{status:?}"),
        }
    }
    panic!("the case kept moving");
}

pub struct Agent {
    pub client: ReferralServiceClient<crate::AuthChannel>,
    pub referral_id: String,
    pub version: u64,
    pub agency: String,
    pub n: u32,
}

impl Agent {
    pub fn header(&mut self) -> Option<p::ReferralHeader> {
        self.n += 1;
        Some(p::ReferralHeader {
            request_id: format!("{}-{}", self.referral_id, self.n),
            referral_id: self.referral_id.clone(),
            expected_version: self.version,
            // Who acts is the token's: the header may leave it empty.
            user_id: String::new(),
            agency_id: self.agency.clone(),
        })
    }

    /// Takes the answer of a step: on success the referral's status, as
    /// `ReferralStatus`'s value name without its prefix, in lowercase.
    pub fn took<R: baove_proto::steps::ReferralStepResponse>(
        &mut self,
        r: Result<tonic::Response<R>, tonic::Status>,
    ) -> Result<String, tonic::Status> {
        let r = r?.into_inner();
        self.version = r.version();
        Ok(status_name(r.status()))
    }
}

/// `REFERRAL_STATUS_REVOKED` as `revoked`.
pub fn status_name(status: p::ReferralStatus) -> String {
    status
        .as_str_name()
        .trim_start_matches("REFERRAL_STATUS_")
        .to_lowercase()
}

/// The case's referral steps, in the case's own log order.
async fn case_trail(full: &Full, case_id: &str) -> Vec<(String, String)> {
    crate::stored_events(&full.system.casework, case_id)
        .await
        .into_iter()
        .filter(|e| e.event_type.starts_with("Referral"))
        .map(|e| {
            let payload: serde_json::Value = serde_json::from_str(&e.payload_json).unwrap();
            let step = payload["step"].as_str().unwrap_or(&e.event_type).to_owned();
            (step, e.actor.unwrap_or_default().user_id)
        })
        .collect()
}

async fn wait_trail(full: &Full, case_id: &str, last: &str) -> Vec<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let trail = case_trail(full, case_id).await;
        if trail.last().is_some_and(|(step, _)| step == last) {
            return trail;
        }
        assert!(Instant::now() < deadline, "case trail stuck at {trail:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_police_flow_shows_every_step_in_the_case_history() {
    let full = start().await;
    let mut o = opened_case(&full.system, "police-flow").await;

    // No consent and no legal basis: refused, nothing recorded or shared.
    let request = police_request(&mut o, p::LegalBasis::Unspecified, false);
    let refused = o.client.request_referral(request).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert!(
        refused.message().contains("consent"),
        "{}",
        refused.message()
    );
    assert!(o.case().await.referrals.is_empty());

    let request = police_request(&mut o, p::LegalBasis::CriminalInvestigation, false);
    let requested = o
        .client
        .request_referral(request)
        .await
        .unwrap()
        .into_inner();
    o.version = requested.version;
    let mut police = referral_client(&full.referral).await;
    let offered = in_inbox(&mut police, POLICE, &requested.referral_id).await;
    assert_eq!(offered.status(), p::ReferralStatus::Offered);
    assert_eq!(offered.to_agency_name, "Công an phường Ninh Kiều");
    let mut agent = Agent {
        client: police.clone(),
        referral_id: offered.referral_id.clone(),
        version: offered.version,
        agency: POLICE.into(),
        n: 0,
    };

    let h = agent.header();
    let early = agent
        .client
        .accept(p::AcceptRequest { header: h })
        .await
        .unwrap_err();
    assert_eq!(early.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        early.message(),
        "acknowledge the referral before accepting it"
    );
    let h = agent.header();
    let mut c = agent.client.clone();
    assert_eq!(
        agent
            .took(c.acknowledge(p::AcknowledgeRequest { header: h }).await)
            .unwrap(),
        "acknowledged"
    );
    let h = agent.header();
    assert_eq!(
        agent
            .took(c.accept(p::AcceptRequest { header: h }).await)
            .unwrap(),
        "accepted"
    );
    let h = agent.header();
    let outcome = p::ReportOutcomeRequest {
        header: h,
        outcome: "đã khởi tố vụ án".into(),
        reference: "VA-2026/77".into(),
    };
    assert_eq!(
        agent.took(c.report_outcome(outcome).await).unwrap(),
        "outcome_reported"
    );
    let h = agent.header();
    assert_eq!(
        agent
            .took(c.complete(p::CompleteRequest { header: h }).await)
            .unwrap(),
        "completed"
    );

    let trail = wait_trail(&full, &o.case_id, "ReferralCompleted").await;
    let steps: Vec<&str> = trail.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        steps,
        [
            "ReferralRequested",
            "ReferralOffered",
            "ReferralAcknowledged",
            "ReferralAccepted",
            "ReferralOutcomeReported",
            "ReferralCompleted"
        ]
    );
    assert_eq!(trail[0].1, "cb-ninh-kieu-1", "the officer requested it");
    assert_eq!(trail[3].1, "ca-301", "the police officer accepted it");
    let case = o.case().await;
    assert_eq!(case.referrals[0].last_step(), p::ReferralStep::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decline_needs_a_reason_and_returns_the_referral_to_the_requester() {
    let full = start().await;
    let mut o = opened_case(&full.system, "decline").await;
    let request = police_request(&mut o, p::LegalBasis::Emergency, true);
    let requested = o
        .client
        .request_referral(request)
        .await
        .unwrap()
        .into_inner();
    let mut police = referral_client(&full.referral).await;
    let offered = in_inbox(&mut police, POLICE, &requested.referral_id).await;
    let mut agent = Agent {
        client: police.clone(),
        referral_id: offered.referral_id,
        version: offered.version,
        agency: POLICE.into(),
        n: 0,
    };
    let mut c = agent.client.clone();
    let h = agent.header();
    let bare = c
        .decline(p::DeclineRequest {
            header: h,
            reason: "  ".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bare.code(), tonic::Code::InvalidArgument);
    // Another agency cannot act on it.
    let mut other = Agent {
        agency: "vn:92/so-y-te".into(),
        ..Agent {
            client: c.clone(),
            referral_id: agent.referral_id.clone(),
            version: agent.version,
            agency: String::new(),
            n: 50,
        }
    };
    let h = other.header();
    let denied = c
        .acknowledge(p::AcknowledgeRequest { header: h })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    let h = agent.header();
    let decline = |header| p::DeclineRequest {
        header,
        reason: "không thuộc địa bàn".into(),
    };
    assert_eq!(
        agent.took(c.decline(decline(h.clone())).await).unwrap(),
        "declined"
    );
    // Sent again (a lost answer), the decline answers what it did, and
    // appends nothing; its request id on another referral is refused,
    // naming the field, rather than answered with this one's outcome.
    let again = c.decline(decline(h.clone())).await.unwrap().into_inner();
    assert!(again.already_applied);
    assert_eq!(
        (again.version, status_name(again.status())),
        (agent.version, "declined".to_owned())
    );
    let mut elsewhere = h.unwrap();
    elsewhere.referral_id = uuid::Uuid::now_v7().to_string();
    let reused = c.decline(decline(Some(elsewhere))).await.unwrap_err();
    assert_eq!(reused.code(), tonic::Code::InvalidArgument, "{reused:?}");
    assert!(
        reused.message().contains("header.request_id"),
        "{}",
        reused.message()
    );
    wait_trail(&full, &o.case_id, "ReferralDeclined").await;
    let got = c
        .get_referral(p::GetReferralRequest {
            referral_id: agent.referral_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert_eq!(got.last_detail, "không thuộc địa bàn");
    // In the case's log the step's detail (the reason) is sealed under the
    // case's key; the case's history, read by whoever may read the case,
    // has it.
    let stored = crate::stored_events(&full.system.casework, &o.case_id).await;
    let declined_at = stored
        .iter()
        .position(|e| {
            e.event_type == "ReferralStepRecorded" && e.payload_json.contains("ReferralDeclined")
        })
        .unwrap();
    assert!(
        !stored[declined_at].payload_json.contains("địa bàn"),
        "{}",
        stored[declined_at].payload_json
    );
    assert_eq!(stored[declined_at].schema_version, 2);
    let mut history = p::audit_service_client::AuditServiceClient::new(
        full.system.casework.channel_as(&crate::auditor()).await,
    )
    .stream_history(p::StreamHistoryRequest {
        case_id: o.case_id.clone(),
        from_seq: stored[declined_at].seq,
    })
    .await
    .unwrap()
    .into_inner();
    let read = history.next().await.unwrap().unwrap().case_event.unwrap();
    let Some(p::case_event::Event::ReferralStepRecorded(step)) = read.event else {
        panic!("{read:?}")
    };
    assert!(
        step.detail.contains("không thuộc địa bàn"),
        "{}",
        step.detail
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacknowledged_urgent_referral_is_escalated_once_with_one_alert() {
    let metrics = format!("127.0.0.1:{}", baove_testkit::free_port().unwrap());
    let mut full = start_with(&[("BAOVE_METRICS_LISTEN", metrics.clone())]).await;
    let client = async_nats::connect(full.system.nats.url()).await.unwrap();
    let mut alerts = client.subscribe("baove.alert.referral.>").await.unwrap();
    let mut o = opened_case(&full.system, "escalate").await;
    let request = police_request(&mut o, p::LegalBasis::CriminalInvestigation, true);
    let requested = o
        .client
        .request_referral(request)
        .await
        .unwrap()
        .into_inner();
    let mut police = referral_client(&full.referral).await;
    in_inbox(&mut police, POLICE, &requested.referral_id).await;

    full.referral.move_clock(3 * 3_600_000);
    let message = tokio::time::timeout(Duration::from_secs(30), alerts.next())
        .await
        .expect("no alert")
        .unwrap();
    assert_eq!(
        message.subject.as_str(),
        "baove.alert.referral.vn:92/cong-an",
        "the supervising agency"
    );
    let alert: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(alert["referral_id"], requested.referral_id.as_str());
    // The on-call engineer sees the escalation and the offer still waiting.
    let page = crate::metrics::scrape(&metrics);
    assert_eq!(
        crate::metrics::sample(&page, "baove_referrals_escalated_total"),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        crate::metrics::sample(&page, "baove_referrals_awaiting_acknowledgement"),
        Some(1.0),
        "{page}"
    );

    // After a restart, still one escalation.
    let url = full.system.nats.url();
    full.referral.kill_and_restart(&url);
    full.referral.wait_health("", ServingStatus::Serving).await;
    full.referral.move_clock(4 * 3_600_000);
    wait_trail(&full, &o.case_id, "ReferralEscalated").await;
    let mut police = referral_client(&full.referral).await;
    let got = police
        .get_referral(p::GetReferralRequest {
            referral_id: requested.referral_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert!(got.escalated);
    let events = crate::stored_events(&full.referral, &requested.referral_id).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.event_type == "ReferralEscalated")
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_merger_new_referrals_reach_the_successor_and_old_ones_keep_the_old_name() {
    let full = start().await;
    let mut o = opened_case(&full.system, "merger").await;
    let request = police_request(&mut o, p::LegalBasis::CriminalInvestigation, false);
    let before = o
        .client
        .request_referral(request)
        .await
        .unwrap()
        .into_inner();
    o.version = before.version;
    // The province's department reads every inbox; the administrator
    // changes the directory (and reads no case content).
    let mut department = ReferralServiceClient::new(
        full.referral
            .channel_as(&crate::province_officer("so-yt-1"))
            .await,
    );
    in_inbox(&mut department, POLICE, &before.referral_id).await;

    let today = {
        let (y, m, d) = crate::vietnam_today();
        format!("{y:04}-{m:02}-{d:02}")
    };
    ReferralServiceClient::new(
        full.referral
            .channel_as(&crate::Identity::new(
                "admin-1",
                baove_security::Role::Administrator,
                "vn:92/so-y-te",
                &[],
            ))
            .await,
    )
    .merge_agency(p::MergeAgencyRequest {
        request_id: "merge-1".into(),
        agency_id: POLICE.into(),
        into_agency_id: "vn:92/cong-an".into(),
        effective_date: today,
        user_id: "admin-1".into(),
    })
    .await
    .unwrap();
    // The offer's step is recorded on the case meanwhile: the officer
    // decides on the case as it is now.
    let after = request_reloading(&mut o).await;
    let reached = in_inbox(&mut department, "vn:92/cong-an", &after.referral_id).await;
    assert_eq!(reached.requested_agency_id, POLICE);
    assert_eq!(reached.to_agency_name, "Công an thành phố Cần Thơ");
    let old = department
        .get_referral(p::GetReferralRequest {
            referral_id: before.referral_id,
        })
        .await
        .unwrap()
        .into_inner()
        .referral
        .unwrap();
    assert_eq!(
        (old.to_agency_id.as_str(), old.to_agency_name.as_str()),
        (POLICE, "Công an phường Ninh Kiều")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referral_killed_and_nats_restarted_mid_flow_loses_and_duplicates_nothing() {
    let mut full = start().await;
    let mut o = opened_case(&full.system, "chaos").await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(request_reloading(&mut o).await.referral_id);
    }
    let url = full.system.nats.url();
    full.referral.kill_and_restart(&url);
    full.system.nats.restart().unwrap();
    full.referral.wait_health("", ServingStatus::Serving).await;
    let mut police = referral_client(&full.referral).await;
    for id in &ids {
        in_inbox(&mut police, POLICE, id).await;
    }
    let inbox = police
        .list_inbox(p::ListInboxRequest {
            agency_id: POLICE.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(inbox.referrals.len(), 3, "each referral offered once");
    // Each offer is in the case's history exactly once.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let offered = case_trail(&full, &o.case_id)
            .await
            .into_iter()
            .filter(|(s, _)| s == "ReferralOffered")
            .count();
        if offered == 3 {
            break;
        }
        assert!(offered < 3, "an offer recorded twice");
        assert!(
            Instant::now() < deadline,
            "offers missing from the case: {offered}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agency_watching_its_inbox_sees_offers_live_resumes_and_sees_a_revocation() {
    let full = start().await;
    let mut o = opened_case(&full.system, "watch-inbox").await;
    let mut police = referral_client(&full.referral).await;
    let mut watch = police
        .watch_inbox(p::WatchInboxRequest {
            agency_id: POLICE.into(),
            from_position: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let first = request_reloading(&mut o).await;
    let update = tokio::time::timeout(Duration::from_secs(30), watch.next())
        .await
        .expect("no live offer")
        .unwrap()
        .unwrap();
    assert_eq!(update.step(), p::ReferralStep::Offered);
    assert_eq!(
        update.referral.as_ref().unwrap().referral_id,
        first.referral_id
    );
    drop(watch);

    // While the agency is away: the requester revokes.
    let offered = in_inbox(&mut police, POLICE, &first.referral_id).await;
    let mut requester = Agent {
        client: ReferralServiceClient::new(
            full.referral
                .channel_as(&crate::province_officer("so-yt-1"))
                .await,
        ),
        referral_id: first.referral_id.clone(),
        version: offered.version,
        agency: String::new(),
        n: 0,
    };
    let h = requester.header();
    let mut c = requester.client.clone();
    assert_eq!(
        requester
            .took(
                c.revoke(p::RevokeRequest {
                    header: h,
                    reason: "gia đình đã tự trình báo".into()
                })
                .await
            )
            .unwrap(),
        "revoked"
    );

    // Back: resume after the last position seen.
    let mut resumed = police
        .watch_inbox(p::WatchInboxRequest {
            agency_id: POLICE.into(),
            from_position: update.position + 1,
        })
        .await
        .unwrap()
        .into_inner();
    let next = tokio::time::timeout(Duration::from_secs(30), resumed.next())
        .await
        .expect("no update")
        .unwrap()
        .unwrap();
    assert_eq!(next.step(), p::ReferralStep::Revoked);
    assert_eq!(next.referral.unwrap().status(), p::ReferralStatus::Revoked);
    wait_trail(&full, &o.case_id, "ReferralRevoked").await;
}

/// The text of every message JetStream keeps in stream `name`.
async fn stream_text(nats_url: &str, name: &str) -> String {
    let js = async_nats::jetstream::new(async_nats::connect(nats_url).await.unwrap());
    let mut stream = js.get_stream(name).await.unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut all = String::new();
    for seq in 1..=last {
        let message = stream.get_raw_message(seq).await.unwrap();
        all.push_str(&String::from_utf8_lossy(&message.payload));
        all.push('\n');
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_referrals_reasons_and_outcome_are_sealed_in_both_logs_and_on_nats_read_by_its_parties_and_erased_with_the_case()
 {
    const REASON: &str = "dấu hiệu tội phạm bạo lực";
    const OUTCOME: &str = "đã khởi tố bị can Nguyễn Văn Bính";
    const REFERENCE: &str = "VA-2026/9137";
    let full = start().await;
    let mut o = opened_case(&full.system, "sealed-referral").await;
    let request = police_request(&mut o, p::LegalBasis::CriminalInvestigation, false);
    assert_eq!(request.reason, REASON);
    let requested = o
        .client
        .request_referral(request)
        .await
        .unwrap()
        .into_inner();
    let mut police = referral_client(&full.referral).await;
    // The receiving agency reads why the child is handed to it.
    let offered = in_inbox(&mut police, POLICE, &requested.referral_id).await;
    assert_eq!(offered.reason, REASON);
    let mut agent = Agent {
        client: police.clone(),
        referral_id: offered.referral_id.clone(),
        version: offered.version,
        agency: POLICE.into(),
        n: 0,
    };
    let mut c = police.clone();
    let h = agent.header();
    agent
        .took(c.acknowledge(p::AcknowledgeRequest { header: h }).await)
        .unwrap();
    let h = agent.header();
    agent
        .took(c.accept(p::AcceptRequest { header: h }).await)
        .unwrap();
    let h = agent.header();
    let outcome = p::ReportOutcomeRequest {
        header: h,
        outcome: OUTCOME.into(),
        reference: REFERENCE.into(),
    };
    assert_eq!(
        agent.took(c.report_outcome(outcome).await).unwrap(),
        "outcome_reported"
    );
    wait_trail(&full, &o.case_id, "ReferralOutcomeReported").await;
    let read = |mut c: ReferralServiceClient<crate::AuthChannel>, id: String| async move {
        c.get_referral(p::GetReferralRequest { referral_id: id })
            .await
            .unwrap()
            .into_inner()
            .referral
            .unwrap()
    };
    let got = read(c.clone(), agent.referral_id.clone()).await;
    assert_eq!(got.reason, REASON);
    assert_eq!(got.last_detail, format!("{OUTCOME} ({REFERENCE})"));

    // At rest: neither log, nor either NATS stream, holds any of it in
    // clear.
    let case_log = crate::stored_events(&full.system.casework, &o.case_id).await;
    let referral_log = crate::stored_events(&full.referral, &agent.referral_id).await;
    assert!(referral_log.len() >= 4, "{referral_log:?}");
    let nats = full.system.nats.url();
    let streams = [
        stream_text(&nats, "BAOVE_CASE").await,
        stream_text(&nats, "BAOVE_REFERRAL").await,
    ];
    let stored_text = case_log
        .iter()
        .chain(&referral_log)
        .map(|e| e.payload_json.as_str())
        .chain(streams.iter().map(String::as_str));
    for text in stored_text {
        for secret in [REASON, "tội phạm", OUTCOME, "Nguyễn Văn Bính", REFERENCE] {
            assert!(!text.contains(secret), "{secret:?} in clear: {text}");
        }
    }
    for step in ["ReferralOffered", "ReferralOutcomeReported"] {
        let stored = referral_log.iter().find(|e| e.event_type == step).unwrap();
        assert_eq!(stored.schema_version, 2, "{step}");
        assert!(stored.payload_json.contains("sealed:"), "{step}");
    }
    let request_at = case_log
        .iter()
        .position(|e| e.event_type == "ReferralRequested")
        .unwrap();
    assert_eq!(case_log[request_at].schema_version, 2);
    // The case's history, read by whoever may read the case, has the
    // request's reason and the outcome opened.
    let history = |from_seq: u64| {
        let casework = &full.system.casework;
        let case_id = o.case_id.clone();
        async move {
            let mut stream = p::audit_service_client::AuditServiceClient::new(
                casework.channel_as(&crate::auditor()).await,
            )
            .stream_history(p::StreamHistoryRequest { case_id, from_seq })
            .await
            .unwrap()
            .into_inner();
            let mut read = Vec::new();
            while let Some(Ok(item)) = tokio::time::timeout(Duration::from_secs(2), stream.next())
                .await
                .ok()
                .flatten()
            {
                read.push(item.case_event.unwrap());
            }
            read
        }
    };
    let read_case = history(case_log[request_at].seq).await;
    let texts: Vec<String> = read_case
        .iter()
        .filter_map(|e| match &e.event {
            Some(p::case_event::Event::ReferralRequested(r)) => Some(r.reason.clone()),
            Some(p::case_event::Event::ReferralStepRecorded(s)) => Some(s.detail.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(texts[0], REASON, "{texts:?}");
    assert!(
        texts
            .iter()
            .any(|t| t.contains(OUTCOME) && t.contains(REFERENCE)),
        "{texts:?}"
    );

    // Erasing the case's reports erases the referral's text too, in the
    // referral service as in the case.
    p::intake_service_client::IntakeServiceClient::new(
        full.system
            .intake
            .channel_as(&crate::province_officer("so-yt-1"))
            .await,
    )
    .erase_case(p::EraseCaseRequest {
        request_id: "erase-sealed-referral".into(),
        case_id: o.case_id.clone(),
        reason: "yêu cầu xóa của người giám hộ".into(),
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let erased = loop {
        let got = read(c.clone(), agent.referral_id.clone()).await;
        if got.reason == "[erased]" {
            break got;
        }
        assert_eq!(got.reason, REASON, "neither the text nor erased");
        assert!(
            Instant::now() < deadline,
            "the referral's text was never erased"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(erased.last_detail, "[erased] ([erased])");
    let read_case = history(case_log[request_at].seq).await;
    let Some(p::case_event::Event::ReferralRequested(request)) = &read_case[0].event else {
        panic!("{:?}", read_case[0])
    };
    assert_eq!(request.reason, "[erased]");
}
