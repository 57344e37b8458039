//! A case's history as a client reads it: each stored event of a case's log
//! with its typed proto message (`CaseEvent` in case.proto), decoded by the
//! domain's own event model so that the proto cannot drift from what is
//! stored; and [`tail`], the one loop that streams the log to a client
//! (WatchCase and WatchInbox live, StreamHistory to the end).

use baove_domain::case::{
    CaseEvent, DeadlineKind,
    procedure::{CloseGrounds, MeasureGrounds, MeasureKind, RiskLevel, RiskRating},
};
use baove_domain::referral::{LegalBasis, ReferralKind, Urgency};
use baove_domain::time::format_date;
use baove_eventlog::{Envelope, EventLog, StreamId};
use baove_proto::v1 as p;
use p::case_event::Event as E;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use uuid::Uuid;

use crate::convert::{
    abuse_type_to_proto, channel_to_proto, concerns_to_proto, referral_step,
    report_status_to_proto, requested_service, setting_to_proto, sex_to_proto,
};
use crate::timestamp;

/// The typed message of a stored event of a case's log; none when the
/// envelope is not a case event this build can decode.
#[must_use]
pub fn case_event_of(envelope: &Envelope) -> Option<p::CaseEvent> {
    CaseEvent::decode(
        &envelope.event_type,
        envelope.schema_version,
        &envelope.payload,
    )
    .ok()
    .map(|event| case_event(&event))
}

/// [`case_event_of`] for a reader: the private text opened by `private`
/// when given ([`crate::private`]).
///
/// # Errors
/// Those of [`crate::private::PrivateText::open`].
pub fn case_event_for_reader(
    envelope: &Envelope,
    private: Option<&crate::private::PrivateText>,
) -> Result<Option<p::CaseEvent>, Status> {
    Ok(match private {
        Some(private) => case_event_of(&private.open(envelope)?),
        None => case_event_of(envelope),
    })
}

/// The proto value of a deadline kind.
#[must_use]
pub const fn deadline_kind_to_proto(kind: DeadlineKind) -> p::DeadlineKind {
    match kind {
        DeadlineKind::Emergency => p::DeadlineKind::Emergency,
        DeadlineKind::PlanDrafted => p::DeadlineKind::PlanDrafted,
        DeadlineKind::PlanApproved => p::DeadlineKind::PlanApproved,
    }
}

fn ratings(ratings: &[RiskRating]) -> Vec<p::RiskRating> {
    ratings
        .iter()
        .map(|r| p::RiskRating {
            factor: r.factor.clone(),
            level: match r.level {
                RiskLevel::High => p::RiskLevel::High,
                RiskLevel::Medium => p::RiskLevel::Medium,
                RiskLevel::Low => p::RiskLevel::Low,
            } as i32,
        })
        .collect()
}

fn abuse_types(types: &[baove_domain::intake::AbuseType]) -> Vec<i32> {
    types.iter().map(|t| abuse_type_to_proto(*t)).collect()
}

fn ids(ids: &[Uuid]) -> Vec<String> {
    ids.iter().map(Uuid::to_string).collect()
}

/// A case event as its proto message: every field of the stored payload,
/// enums as proto enums, instants as timestamps, dates as YYYY-MM-DD.
#[must_use]
#[allow(clippy::too_many_lines)] // one arm per event type, nothing else
pub fn case_event(event: &CaseEvent) -> p::CaseEvent {
    let event = match event {
        CaseEvent::Opened(e) => E::CaseOpened(p::CaseOpened {
            case_id: e.case_id.to_string(),
            intake_id: e.intake_id.to_string(),
            intake_event_id: e.intake_event_id.to_string(),
            channel: channel_to_proto(e.channel) as i32,
            received_at: Some(timestamp(e.received_at_ms)),
            incident_unit_id: e.incident_unit_id.clone(),
            residence_unit_id: e.residence_unit_id.clone().unwrap_or_default(),
            concerns: Some(concerns_to_proto(&e.concerns)),
            immediate_danger: e.immediate_danger,
            caregiver_is_alleged_abuser: e.caregiver_is_alleged_abuser,
            outside_child_law: e.outside_child_law,
            possible_duplicate_case_ids: ids(&e.possible_duplicate_case_ids),
            police_case_number: e.police_case_number.clone().unwrap_or_default(),
            follow_up_case_not_found: e
                .follow_up_case_not_found
                .map(|id| id.to_string())
                .unwrap_or_default(),
            child_age_years: e.child_age_years,
            child_sex: e.child_sex.map_or(0, sex_to_proto),
            setting: e.setting.map_or(0, setting_to_proto),
            clock_start: e.clock_start_ms.map(timestamp),
            responsible_unit_id: e.responsible_unit_id.clone().unwrap_or_default(),
            province_id: e.province_id.clone().unwrap_or_default(),
            report_status: report_status_to_proto(e.report_status),
            consent_possible_from: e.consent_possible_from.map(format_date).unwrap_or_default(),
        }),
        CaseEvent::Attached(e) => E::IntakeAttached(p::IntakeAttached {
            intake_id: e.intake_id.to_string(),
            intake_event_id: e.intake_event_id.to_string(),
            channel: channel_to_proto(e.channel) as i32,
            received_at: Some(timestamp(e.received_at_ms)),
            concerns: Some(concerns_to_proto(&e.concerns)),
            immediate_danger: e.immediate_danger,
            caregiver_is_alleged_abuser: e.caregiver_is_alleged_abuser,
            police_case_number: e.police_case_number.clone().unwrap_or_default(),
            clock_start: e.clock_start_ms.map(timestamp),
        }),
        CaseEvent::OfficerAssigned(e) => E::OfficerAssigned(p::OfficerAssigned {
            officer_id: e.officer_id.clone(),
            previous_officer_id: e.previous_officer_id.clone().unwrap_or_default(),
        }),
        CaseEvent::InitialAssessmentRecorded(e) => {
            E::InitialAssessmentRecorded(p::InitialAssessmentRecorded {
                ratings: ratings(&e.ratings),
                emergency_measures_apply: e.emergency_measures_apply,
                summary: e.summary.clone(),
                reassessment: e.reassessment,
                confirmed_abuse_types: abuse_types(&e.verification.confirmed),
                unconfirmed_abuse_types: abuse_types(&e.verification.not_confirmed),
            })
        }
        CaseEvent::EmergencyMeasureRecorded(e) => {
            E::EmergencyMeasureRecorded(p::EmergencyMeasureRecorded {
                kind: match e.kind {
                    MeasureKind::MedicalCare => p::MeasureKind::MedicalCare,
                    MeasureKind::SafeShelter => p::MeasureKind::SafeShelter,
                    MeasureKind::TemporarySeparation => p::MeasureKind::TemporarySeparation,
                    MeasureKind::Other => p::MeasureKind::Other,
                } as i32,
                description: e.description.clone(),
                decision_ref: e.decision_ref.clone(),
                separation: e.separation.as_ref().map(|s| p::Separation {
                    start_date: format_date(s.start_date),
                    end_date: format_date(s.end_date),
                    extension_decision_ref: s.extension_decision_ref.clone().unwrap_or_default(),
                }),
                grounds: e
                    .grounds
                    .map_or(p::MeasureGrounds::Unspecified, |g| match g {
                        MeasureGrounds::AssessedDanger => p::MeasureGrounds::AssessedDanger,
                        MeasureGrounds::ParentsRefusePlan => p::MeasureGrounds::ParentsRefusePlan,
                        MeasureGrounds::AbuseMayContinue => p::MeasureGrounds::AbuseMayContinue,
                    }) as i32,
            })
        }
        CaseEvent::DetailedAssessmentRecorded(e) => {
            E::DetailedAssessmentRecorded(p::DetailedAssessmentRecorded {
                summary: e.summary.clone(),
                needs: e.needs.clone(),
                meeting_participants: e.meeting_participants.clone(),
                minutes_ref: e.minutes_ref.clone(),
                confirmed_abuse_types: abuse_types(&e.verification.confirmed),
                unconfirmed_abuse_types: abuse_types(&e.verification.not_confirmed),
            })
        }
        CaseEvent::PlanDrafted(e) => E::PlanDrafted(p::PlanDrafted {
            plan_no: e.plan_no,
            measures: e
                .measures
                .iter()
                .map(|m| p::PlanMeasure {
                    id: m.id.clone(),
                    description: m.description.clone(),
                    responsible: m.responsible.clone(),
                    due_date: format_date(m.due_date),
                })
                .collect(),
            drafted_by: e.drafted_by.clone().unwrap_or_default(),
            kept_despite_residence: e.kept_despite_residence.clone().unwrap_or_default(),
        }),
        CaseEvent::PlanApproved(e) => E::PlanApproved(p::PlanApproved {
            plan_no: e.plan_no,
            decision_ref: e.decision_ref.clone(),
        }),
        CaseEvent::PlanSentBack(e) => E::PlanSentBack(p::PlanSentBack {
            plan_no: e.plan_no,
            reason: e.reason.clone(),
        }),
        CaseEvent::InterventionRecorded(e) => E::InterventionRecorded(p::InterventionRecorded {
            plan_no: e.plan_no,
            measure_id: e.measure_id.clone(),
            description: e.description.clone(),
            date: format_date(e.date),
        }),
        CaseEvent::ReviewRecorded(e) => E::ReviewRecorded(p::ReviewRecorded {
            ratings: ratings(&e.ratings),
            risk_remains: e.risk_remains,
            summary: e.summary.clone(),
        }),
        CaseEvent::Closed(e) => E::CaseClosed(p::CaseClosed {
            reason: e.reason.clone(),
            grounds: e.grounds.map_or(p::CloseGrounds::Unspecified, |g| match g {
                CloseGrounds::NoRiskAfterReview => p::CloseGrounds::NoRiskAfterReview,
                CloseGrounds::Unfounded => p::CloseGrounds::Unfounded,
                CloseGrounds::NoSupportNeeded => p::CloseGrounds::NoSupportNeeded,
            }) as i32,
            decision_ref: e.decision_ref.clone().unwrap_or_default(),
        }),
        CaseEvent::Reopened(e) => E::CaseReopened(p::CaseReopened {
            reason: e.reason.clone(),
        }),
        CaseEvent::NoteAdded(e) => E::NoteAdded(p::NoteAdded {
            text: e.text.clone(),
        }),
        CaseEvent::DeadlineSet(e) => E::DeadlineSet(p::DeadlineSet {
            id: e.id.clone().unwrap_or_default(),
            kind: deadline_kind_to_proto(e.kind) as i32,
            start_at: Some(timestamp(e.start_ms)),
            due_at: Some(timestamp(e.due_at_ms)),
            warn_at: Some(timestamp(e.warn_at_ms)),
        }),
        CaseEvent::DeadlineMet(e) => E::DeadlineMet(p::DeadlineMet {
            id: e.id.clone().unwrap_or_default(),
            kind: deadline_kind_to_proto(e.kind) as i32,
            late: e.late,
        }),
        CaseEvent::DeadlineWarned(e) => E::DeadlineWarned(p::DeadlineWarned {
            id: e.id.clone().unwrap_or_default(),
            kind: deadline_kind_to_proto(e.kind) as i32,
            due_at: Some(timestamp(e.due_at_ms)),
        }),
        CaseEvent::DeadlineMissed(e) => E::DeadlineMissed(p::DeadlineMissed {
            id: e.id.clone().unwrap_or_default(),
            kind: deadline_kind_to_proto(e.kind) as i32,
            due_at: Some(timestamp(e.due_at_ms)),
        }),
        CaseEvent::DeadlineCleared(e) => E::DeadlineCleared(p::DeadlineCleared {
            id: e.id.clone().unwrap_or_default(),
            kind: deadline_kind_to_proto(e.kind) as i32,
            reason: e.reason.clone(),
        }),
        CaseEvent::ReferralRequested(e) => {
            let request = &e.request;
            E::ReferralRequested(p::ReferralRequested {
                referral_id: e.referral_id.to_string(),
                from_unit_id: e.from_unit_id.clone(),
                to_agency_id: request.to_agency_id.clone(),
                kind: Some(match &request.kind {
                    ReferralKind::Refer { service } => {
                        p::referral_requested::Kind::Service(requested_service(*service) as i32)
                    }
                    ReferralKind::Transfer { to_unit_id } => {
                        p::referral_requested::Kind::TransferToUnitId(to_unit_id.clone())
                    }
                }),
                reason: request.reason.clone(),
                urgent: request.urgency == Urgency::Urgent,
                shares_identifying_information: request.sharing.identifying,
                child_consent: request.sharing.child_consent,
                guardian_consent: request.sharing.guardian_consent,
                legal_basis: request
                    .sharing
                    .legal_basis
                    .map_or(p::LegalBasis::Unspecified, |b| match b {
                        LegalBasis::CriminalInvestigation => p::LegalBasis::CriminalInvestigation,
                        LegalBasis::Emergency => p::LegalBasis::Emergency,
                    }) as i32,
                shares_informant: request.sharing.informant,
            })
        }
        CaseEvent::ReferralStepRecorded(e) => E::ReferralStepRecorded(p::ReferralStepRecorded {
            referral_id: e.referral_id.to_string(),
            step: referral_step(&e.step) as i32,
            by: e.by.clone(),
            agency_id: e.agency_id.clone(),
            detail: e.detail.clone(),
            referral_event_id: e.referral_event_id.to_string(),
            at: e.at_ms.map(timestamp),
            to_agency_id: e.to_agency_id.clone().unwrap_or_default(),
        }),
        CaseEvent::PrivateTextErased(e) => E::PrivateTextErased(p::PrivateTextErased {
            intake_id: e.intake_id.to_string(),
            reason: e.reason.clone(),
        }),
    };
    p::CaseEvent { event: Some(event) }
}

/// Where [`tail`] stops.
#[derive(Clone, Debug)]
pub enum Until {
    /// At the stream's end (a history).
    End,
    /// Never: after the end it waits for new events (a watch) until the
    /// client goes, or `stopping` is cancelled, when the client is told
    /// that `service` is shutting down and to watch again.
    Live {
        /// The service's shutdown.
        stopping: CancellationToken,
        /// Its name, for that message.
        service: &'static str,
    },
}

/// One page of a [`Feed`]: what to send, and where the next page starts.
#[derive(Debug)]
pub struct Page<T> {
    /// The items to send, in order (none when the page held nothing for
    /// this client).
    pub items: Vec<T>,
    /// Where the next page starts: the page's start itself when the log
    /// had nothing new there.
    pub next: u64,
}

/// What [`tail`] pages through and sends: a stream's events by seq
/// ([`OneStream`]), or the whole log by position, filtered (an agency's
/// inbox).
pub trait Feed: Send + 'static {
    /// What the client gets.
    type Item: Send + 'static;

    /// The page of the log from `next` (a seq or a position) on.
    ///
    /// # Errors
    /// The status that ends the client's stream.
    fn page(
        &mut self,
        log: &EventLog,
        next: u64,
    ) -> impl std::future::Future<Output = Result<Page<Self::Item>, Status>> + Send;
}

/// The events of one stream, by seq, each mapped by `item`.
pub struct OneStream<F> {
    /// The stream.
    pub stream: StreamId,
    /// What each event becomes (an error ends the client's stream).
    pub item: F,
    /// The keys of the private text `item` opens, made ready for each page
    /// ([`crate::private::PrivateText::ready`]).
    pub private: Option<std::sync::Arc<crate::private::PrivateText>>,
}

/// Events read per page of one stream.
const STREAM_PAGE: usize = 256;

impl<T, F> Feed for OneStream<F>
where
    T: Send + 'static,
    F: Fn(&Envelope) -> Result<T, Status> + Send + Sync + 'static,
{
    type Item = T;

    async fn page(&mut self, log: &EventLog, next: u64) -> Result<Page<T>, Status> {
        // Only what a reader may be shown: in a cluster, what the cluster
        // stored (docs/cluster.md, "Reads during a loss of quorum").
        let readable = log.readable_position();
        let mut events = log
            .read_stream(self.stream, next, STREAM_PAGE)
            .await
            .map_err(|e| crate::status::from_log(&e))?;
        events.retain(|e| e.global_position <= readable);
        if let Some(private) = &self.private {
            private.ready(&events).await?;
        }
        Ok(Page {
            next: events.last().map_or(next, |e| e.seq + 1),
            items: events.iter().map(&self.item).collect::<Result<_, _>>()?,
        })
    }
}

/// Streams `feed` from `from` to a client, page by page; [`Until::Live`]
/// then waits for each move of what a reader may be shown
/// ([`EventLog::subscribe_readable`]: each commit, or in a cluster each
/// position the cluster stored) and sends what it added. An error
/// ends the stream with its status. The one loop behind WatchCase,
/// StreamHistory and WatchInbox; the caller holds the stream's permit in
/// `hold` for as long as the loop runs.
pub fn tail<D, H>(
    log: EventLog,
    mut feed: D,
    from: u64,
    until: Until,
    hold: H,
) -> mpsc::Receiver<Result<D::Item, Status>>
where
    D: Feed,
    H: Send + 'static,
{
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let _hold = hold;
        let mut committed = log.subscribe_readable();
        let mut next = from.max(1);
        loop {
            committed.borrow_and_update();
            match feed.page(&log, next).await {
                Ok(page) => {
                    for item in page.items {
                        if tx.send(Ok(item)).await.is_err() {
                            return;
                        }
                    }
                    if page.next > next {
                        next = page.next;
                        continue;
                    }
                }
                Err(status) => {
                    let _ = tx.send(Err(status)).await;
                    return;
                }
            }
            let Until::Live { stopping, service } = &until else {
                return;
            };
            if !crate::projection::wait_for_commit(&mut committed, &tx, stopping, service).await {
                return;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;
    use baove_domain::event::StoredEvent;

    /// Keys whose stored values are enum names (they become proto enum
    /// numbers, so their text does not reach the message).
    const ENUM_KEYS: &[&str] = &[
        "channel",
        "kind",
        "level",
        "sex",
        "child_sex",
        "setting",
        "abuse_types",
        "sexual_abuse_forms",
        "special_circumstances",
        "grounds",
        "step",
        "report_status",
        "legal_basis",
        "urgency",
        "service",
        "cause",
        "outcome",
        "confirmed",
        "not_confirmed",
    ];

    /// Every leaf of a stored payload that must reach the typed message:
    /// each text as its quoted form, each number under its key (instants,
    /// `*_ms`, as timestamp seconds), each as the forms it may take in
    /// the message's debug text.
    fn leaves(key: &str, value: &serde_json::Value, out: &mut Vec<Vec<String>>) {
        match value {
            serde_json::Value::String(text) if !text.is_empty() && !ENUM_KEYS.contains(&key) => {
                out.push(vec![format!("{text:?}")]);
            }
            serde_json::Value::Number(n) => {
                let n = n.as_i64().unwrap();
                out.push(match key.strip_suffix("_ms") {
                    Some(_) => vec![format!("seconds: {}", n.div_euclid(1000))],
                    None => vec![format!("{key}: {n}"), format!("{key}: Some({n})")],
                });
            }
            serde_json::Value::Array(items) if !ENUM_KEYS.contains(&key) => {
                for item in items {
                    leaves(key, item, out);
                }
            }
            serde_json::Value::Object(fields) => {
                for (k, v) in fields {
                    leaves(k, v, out);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn given_every_stored_case_event_when_typed_then_its_message_is_its_type_and_holds_every_value()
    {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../domain/tests/stored");
        let mut typed = std::collections::BTreeSet::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let stored: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let event_type = stored["event_type"].as_str().unwrap();
            if !CaseEvent::EVENT_TYPES.contains(&event_type) {
                continue;
            }
            let version = u32::try_from(stored["schema_version"].as_u64().unwrap()).unwrap();
            let event =
                CaseEvent::decode(event_type, version, &stored["payload"].to_string()).unwrap();
            let message = case_event(&event).event.unwrap();
            let shown = format!("{message:?}");
            assert!(
                shown.starts_with(&format!("{event_type}(")),
                "{}: typed as {shown}",
                path.display()
            );
            let mut expected = Vec::new();
            leaves("", &stored["payload"], &mut expected);
            for leaf in expected {
                assert!(
                    leaf.iter().any(|form| shown.contains(form)),
                    "{}: {leaf:?} is not in the typed message {shown}",
                    path.display()
                );
            }
            typed.insert(event_type.to_owned());
        }
        assert_eq!(typed.len(), CaseEvent::EVENT_TYPES.len(), "{typed:?}");
    }

    /// Appends `n` events to `stream`.
    async fn append(log: &EventLog, stream: StreamId, n: usize) {
        let note = baove_eventlog::NewEvent::new("Noted", 1, &serde_json::json!({})).unwrap();
        log.append(baove_eventlog::AppendRequest {
            stream,
            expected: baove_eventlog::ExpectedVersion::Any,
            command_id: format!("test:{}", Uuid::now_v7()),
            actor: baove_eventlog::Actor::system("test"),
            causation_id: String::new(),
            correlation_id: String::new(),
            events: vec![note; n],
            publish: false,
        })
        .await
        .unwrap();
    }

    /// The whole log by position, keeping one stream's events: most pages
    /// hold nothing for the client, as an agency's inbox does.
    struct Only(StreamId);

    impl Feed for Only {
        type Item = u64;

        async fn page(&mut self, log: &EventLog, next: u64) -> Result<Page<u64>, Status> {
            let events = log.read_all(next, 50).await.unwrap();
            Ok(Page {
                next: events.last().map_or(next, |e| e.global_position + 1),
                items: events
                    .iter()
                    .filter(|e| e.stream_id == self.0)
                    .map(|e| e.global_position)
                    .collect(),
            })
        }
    }

    #[tokio::test]
    async fn given_a_stream_longer_than_a_page_then_a_history_sends_every_event_from_the_seq_asked_and_ends()
     {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path()).await.unwrap();
        let stream = StreamId::from_uuid(Uuid::now_v7());
        append(&log, stream, 600).await;
        let feed = OneStream {
            stream,
            item: |e: &Envelope| Ok(e.seq),
            private: None,
        };
        let mut rx = tail(log, feed, 5, Until::End, ());
        let mut seqs = Vec::new();
        while let Some(seq) = rx.recv().await {
            seqs.push(seq.unwrap());
        }
        assert_eq!(seqs, (5..=600).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn given_pages_with_nothing_for_the_client_then_a_watch_reads_past_them_and_sends_what_comes_live()
     {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path()).await.unwrap();
        let (other, mine) = (
            StreamId::from_uuid(Uuid::now_v7()),
            StreamId::from_uuid(Uuid::now_v7()),
        );
        append(&log, other, 300).await;
        append(&log, mine, 1).await;
        let stopping = CancellationToken::new();
        let live = Until::Live {
            stopping: stopping.clone(),
            service: "test",
        };
        let mut rx = tail(log.clone(), Only(mine), 1, live, ());
        assert_eq!(rx.recv().await.unwrap().unwrap(), 301);
        append(&log, other, 120).await;
        append(&log, mine, 2).await;
        assert_eq!(rx.recv().await.unwrap().unwrap(), 422);
        assert_eq!(rx.recv().await.unwrap().unwrap(), 423);
        stopping.cancel();
        let goodbye = rx.recv().await.unwrap().unwrap_err();
        assert_eq!(goodbye.code(), tonic::Code::Unavailable);
        assert!(rx.recv().await.is_none());
    }
}
