//! Referrals: interagency handoffs. A referral is requested on a case (a
//! decision on the case, checked here for consent), offered to the target
//! agency, acknowledged, accepted or declined with a reason, followed to an
//! outcome and completed; the requester may revoke it before acceptance.
//! Each step is an event of the referral's own stream; casework copies each
//! into the case's log so that one case log tells the whole story.
//!
//! Acknowledgement deadline: 2 hours when urgent, 1 working day otherwise;
//! when it passes unacknowledged the referral is escalated, once.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::calendar::Calendar;
use crate::violation::Violations;

/// Schema version of every referral event.
pub const SCHEMA_VERSION: u32 = 1;
/// Two hours: the acknowledgement deadline of an urgent referral.
pub const URGENT_ACK_MS: i64 = 2 * 60 * 60 * 1000;
/// Working days to acknowledge a normal referral.
pub const NORMAL_ACK_WORKING_DAYS: u32 = 1;
/// From this age the child's own consent is needed to share their
/// identifying information (Law on Children Đ6.11, Decree 56 Đ33).
pub const CHILD_CONSENT_AGE: u32 = 7;

/// What is asked of the other agency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ReferralKind {
    /// A service from another agency.
    Refer {
        /// Which service.
        service: Service,
    },
    /// Move responsibility for the case to another commune or province; the
    /// receiving side must accept.
    Transfer {
        /// The unit that takes the case over.
        to_unit_id: String,
    },
}

/// Services one agency asks of another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Service {
    PoliceInvestigation,
    MedicalExamination,
    PsychologicalSupport,
    LegalAid,
    SchoolSupport,
    Shelter,
}

/// How soon.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    /// Acknowledge within 2 hours.
    Urgent,
    /// Acknowledge within 1 working day.
    Normal,
}

/// A legal basis for sharing without consent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegalBasis {
    /// A criminal investigation (Criminal Procedure Code).
    CriminalInvestigation,
    /// An emergency: life or health at serious risk.
    Emergency,
}

/// What the referral shares and on what ground.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sharing {
    /// The child's identifying information (name, birth date, address,
    /// family) goes to the other agency.
    pub identifying: bool,
    /// The child agreed (needed from age 7).
    pub child_consent: bool,
    /// The parent or guardian agreed.
    pub guardian_consent: bool,
    /// A legal basis that allows sharing without consent.
    pub legal_basis: Option<LegalBasis>,
    /// The informant's details (who called 111, their phone) go too. The
    /// consent of the guardian and the child does not cover the neighbour
    /// who reported: this is a separate, recorded choice (a criminal
    /// investigation may need the informant). Absent in events written
    /// before it existed: not shared.
    #[serde(default)]
    pub informant: bool,
}

/// The request, as the case records it (`ReferralRequested` on the case).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferralRequest {
    /// What is asked.
    pub kind: ReferralKind,
    /// The agency asked (as named by the requester; a merged agency's
    /// successor receives it).
    pub to_agency_id: String,
    /// Why.
    pub reason: String,
    /// How soon.
    pub urgency: Urgency,
    /// What is shared, on what ground.
    pub sharing: Sharing,
}

/// Checks a request against the consent rule and its fields.
/// `child_age_years` is the child's age on the case.
///
/// # Errors
/// [`RequestRefusal::Invalid`] for bad fields; [`RequestRefusal::NoConsent`]
/// naming the rule when identifying information would be shared without
/// consent or a legal basis.
pub fn check_request(
    request: &ReferralRequest,
    child_age_years: u32,
) -> Result<(), RequestRefusal> {
    let mut v = Violations::default();
    if request.to_agency_id.trim().is_empty() {
        v.add("to_agency_id", "is required");
    }
    if request.reason.trim().is_empty() {
        v.add(
            "reason",
            "is required: say what the other agency is asked and why",
        );
    }
    if let ReferralKind::Transfer { to_unit_id } = &request.kind
        && to_unit_id.trim().is_empty()
    {
        v.add("to_unit_id", "is required for a transfer");
    }
    if request.sharing.informant && !request.sharing.identifying {
        v.add(
            "shares_informant",
            "needs shares_identifying_information: the informant is shared only with the child's identity",
        );
    }
    v.into_result(()).map_err(RequestRefusal::Invalid)?;
    let s = &request.sharing;
    let consented = s.guardian_consent && (child_age_years < CHILD_CONSENT_AGE || s.child_consent);
    if s.identifying && s.legal_basis.is_none() && !consented {
        return Err(RequestRefusal::NoConsent(format!(
            "sharing the child's identifying information needs the consent of the parent or guardian{} (Law on Children Đ6.11, Decree 56 Đ33), or a legal basis (criminal investigation, emergency)",
            if child_age_years >= CHILD_CONSENT_AGE {
                " and of the child, who is 7 or older"
            } else {
                ""
            }
        )));
    }
    Ok(())
}

/// Why a referral request was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestRefusal {
    /// Bad fields.
    Invalid(Violations),
    /// The consent rule (FAILED_PRECONDITION).
    NoConsent(String),
}

/// The acknowledgement deadline of a referral offered at `offered_ms`.
#[must_use]
pub fn ack_due(urgency: Urgency, offered_ms: i64, calendar: &Calendar) -> i64 {
    match urgency {
        Urgency::Urgent => offered_ms + URGENT_ACK_MS,
        Urgency::Normal => calendar.working_days_after(offered_ms, NORMAL_ACK_WORKING_DAYS),
    }
}

/// The referral's events (stream = referral id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "step")]
pub enum ReferralEvent {
    /// Offered to the target agency's inbox.
    Offered {
        /// The referral.
        referral_id: Uuid,
        /// The case.
        case_id: Uuid,
        /// The commune handling the case.
        from_unit_id: String,
        /// The agency that receives it (the successor if the one asked was
        /// merged).
        to_agency_id: String,
        /// The request as the case recorded it.
        request: ReferralRequest,
        /// When it must be acknowledged, Unix ms.
        ack_due_at_ms: i64,
        /// The supervising agency alerted on escalation, if any.
        supervisor_agency_id: Option<String>,
    },
    /// Seen by the agency.
    Acknowledged {
        /// The case, so that the step carries its own case (absent in
        /// steps written before it did: the referral's case).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        case_id: Option<Uuid>,
        /// Who.
        by: String,
    },
    /// Taken on.
    Accepted {
        /// The case, so that the step carries its own case (absent in
        /// steps written before it did: the referral's case).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        case_id: Option<Uuid>,
        /// Who.
        by: String,
    },
    /// Refused, with the reason; back to the requester's side.
    Declined {
        /// The case, so that the step carries its own case (absent in
        /// steps written before it did: the referral's case).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        case_id: Option<Uuid>,
        /// Who.
        by: String,
        /// Why.
        reason: String,
    },
    /// The outcome (for the police: criminal case opened or not).
    OutcomeReported {
        /// The case, so that the step carries its own case (absent in
        /// steps written before it did: the referral's case).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        case_id: Option<Uuid>,
        /// Who.
        by: String,
        /// What came of it.
        outcome: String,
        /// A reference (the police case number...).
        reference: String,
    },
    /// Done.
    Completed {
        /// The case, so that the step carries its own case (absent in
        /// steps written before it did: the referral's case).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        case_id: Option<Uuid>,
        /// Who.
        by: String,
    },
    /// Withdrawn by the requester before acceptance.
    Revoked {
        /// The case, so that the step carries its own case (absent in
        /// steps written before it did: the referral's case).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        case_id: Option<Uuid>,
        /// Who.
        by: String,
        /// Why.
        reason: String,
    },
    /// Not acknowledged in time; the supervising agency was alerted.
    Escalated {
        /// The case, so that the step carries its own case (absent in
        /// steps written before it did: the referral's case).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        case_id: Option<Uuid>,
        /// The deadline that passed.
        ack_due_at_ms: i64,
    },
}

impl ReferralEvent {
    /// The case the referral belongs to, when the event says (every event
    /// since steps carry it; the offer always).
    #[must_use]
    pub const fn case_id(&self) -> Option<Uuid> {
        match self {
            Self::Offered { case_id, .. } => Some(*case_id),
            Self::Acknowledged { case_id, .. }
            | Self::Accepted { case_id, .. }
            | Self::Declined { case_id, .. }
            | Self::OutcomeReported { case_id, .. }
            | Self::Completed { case_id, .. }
            | Self::Revoked { case_id, .. }
            | Self::Escalated { case_id, .. } => *case_id,
        }
    }

    /// The stored event type name. Never changes for a variant.
    #[must_use]
    pub const fn event_type(&self) -> &'static str {
        match self {
            Self::Offered { .. } => "ReferralOffered",
            Self::Acknowledged { .. } => "ReferralAcknowledged",
            Self::Accepted { .. } => "ReferralAccepted",
            Self::Declined { .. } => "ReferralDeclined",
            Self::OutcomeReported { .. } => "ReferralOutcomeReported",
            Self::Completed { .. } => "ReferralCompleted",
            Self::Revoked { .. } => "ReferralRevoked",
            Self::Escalated { .. } => "ReferralEscalated",
        }
    }
}

/// How long the receiving agency may still read the case after it
/// completed the referral: 30 days, to answer questions and finish its
/// own records. Then its access ends.
pub const READ_AFTER_COMPLETION_MS: i64 = 30 * 24 * 60 * 60 * 1000;

/// Whether a referral in `status` (since `since_ms`, when known) lets the
/// receiving agency read the case and the report behind it at `now_ms`:
/// while it is offered, acknowledged, accepted or in progress; not once it
/// is declined or revoked; after completion for
/// [`READ_AFTER_COMPLETION_MS`] (not at all when the completion's time is
/// unknown).
#[must_use]
pub fn grants_access(status: Status, since_ms: Option<i64>, now_ms: i64) -> bool {
    match status {
        Status::Offered | Status::Acknowledged | Status::Accepted | Status::OutcomeReported => true,
        Status::Declined | Status::Revoked => false,
        Status::Completed => {
            since_ms.is_some_and(|at| now_ms < at.saturating_add(READ_AFTER_COMPLETION_MS))
        }
    }
}

/// The status a referral reaches with the step stored as `event_type`;
/// `None` for a step that does not change it (an escalation) or an
/// unknown name.
#[must_use]
pub fn status_after(event_type: &str) -> Option<Status> {
    Some(match event_type {
        "ReferralOffered" => Status::Offered,
        "ReferralAcknowledged" => Status::Acknowledged,
        "ReferralAccepted" => Status::Accepted,
        "ReferralDeclined" => Status::Declined,
        "ReferralOutcomeReported" => Status::OutcomeReported,
        "ReferralCompleted" => Status::Completed,
        "ReferralRevoked" => Status::Revoked,
        _ => return None,
    })
}

impl crate::event::StoredEvent for ReferralEvent {
    const EVENT_TYPES: &'static [&'static str] = &[
        "ReferralOffered",
        "ReferralAcknowledged",
        "ReferralAccepted",
        "ReferralDeclined",
        "ReferralOutcomeReported",
        "ReferralCompleted",
        "ReferralRevoked",
        "ReferralEscalated",
    ];

    fn event_type(&self) -> &'static str {
        Self::event_type(self)
    }

    fn schema_version(&self) -> u32 {
        SCHEMA_VERSION
    }

    /// The payload carries its step as a tag (`"step": "offered"`); it must
    /// agree with the stored name.
    fn decode(
        event_type: &str,
        schema_version: u32,
        payload: &str,
    ) -> Result<Self, crate::event::DecodeError> {
        use crate::event::DecodeError;
        if !Self::EVENT_TYPES.contains(&event_type) {
            return Err(DecodeError::UnknownType(event_type.to_owned()));
        }
        // A step whose private strings are sealed has version 1's shape.
        if schema_version != SCHEMA_VERSION
            && !private::is_sealed_version(event_type, schema_version)
        {
            return Err(DecodeError::UnknownVersion {
                event_type: event_type.to_owned(),
                version: schema_version,
            });
        }
        let event: Self = crate::event::payload_as(event_type, schema_version, payload)?;
        if Self::event_type(&event) != event_type {
            return Err(DecodeError::Payload {
                event_type: event_type.to_owned(),
                version: schema_version,
                reason: format!("the payload is a {}", Self::event_type(&event)),
            });
        }
        Ok(event)
    }

    fn payload(&self) -> serde_json::Value {
        crate::event::to_payload(self)
    }
}

/// Where a referral stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// In the target's inbox, not yet seen.
    Offered,
    /// Seen.
    Acknowledged,
    /// Taken on.
    Accepted,
    /// Refused.
    Declined,
    /// Outcome reported.
    OutcomeReported,
    /// Done.
    Completed,
    /// Withdrawn.
    Revoked,
}

/// A referral's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReferralState {
    /// The referral.
    pub referral_id: Uuid,
    /// The case.
    pub case_id: Uuid,
    /// The requesting commune.
    pub from_unit_id: String,
    /// The receiving agency.
    pub to_agency_id: String,
    /// The request.
    pub request: ReferralRequest,
    /// Status.
    pub status: Status,
    /// Acknowledgement deadline.
    pub ack_due_at_ms: i64,
    /// Escalated already.
    pub escalated: bool,
    /// Who to alert on escalation.
    pub supervisor_agency_id: Option<String>,
}

impl crate::event::Aggregate for ReferralState {
    type Event = ReferralEvent;
    const KIND: &'static str = "referral";
    const FIRST_EVENT: &'static str = "ReferralOffered";

    fn apply(state: Option<Self>, event: &ReferralEvent) -> Option<Self> {
        apply(state, event)
    }

    fn case_id(&self) -> Uuid {
        self.case_id
    }

    fn correlation_id(&self) -> String {
        self.case_id.to_string()
    }
}

/// Folds one event. No logic: [`decide`] already checked.
#[must_use]
pub fn apply(state: Option<ReferralState>, event: &ReferralEvent) -> Option<ReferralState> {
    if let ReferralEvent::Offered {
        referral_id,
        case_id,
        from_unit_id,
        to_agency_id,
        request,
        ack_due_at_ms,
        supervisor_agency_id,
    } = event
    {
        return Some(ReferralState {
            referral_id: *referral_id,
            case_id: *case_id,
            from_unit_id: from_unit_id.clone(),
            to_agency_id: to_agency_id.clone(),
            request: request.clone(),
            status: Status::Offered,
            ack_due_at_ms: *ack_due_at_ms,
            escalated: false,
            supervisor_agency_id: supervisor_agency_id.clone(),
        });
    }
    let mut state = state?;
    match event {
        ReferralEvent::Offered { .. } => {}
        ReferralEvent::Acknowledged { .. } => state.status = Status::Acknowledged,
        ReferralEvent::Accepted { .. } => state.status = Status::Accepted,
        ReferralEvent::Declined { .. } => state.status = Status::Declined,
        ReferralEvent::OutcomeReported { .. } => state.status = Status::OutcomeReported,
        ReferralEvent::Completed { .. } => state.status = Status::Completed,
        ReferralEvent::Revoked { .. } => state.status = Status::Revoked,
        ReferralEvent::Escalated { .. } => state.escalated = true,
    }
    Some(state)
}

/// A step on a referral, by someone of the receiving agency (or, for
/// revoking, the requester).
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Command {
    Acknowledge,
    Accept,
    Decline { reason: String },
    ReportOutcome { outcome: String, reference: String },
    Complete,
    Revoke { reason: String },
}

pub use crate::event::Refusal;

/// Decides a step by `by` (user id).
///
/// # Errors
/// [`Refusal::Invalid`] for bad fields, [`Refusal::NotAllowed`] naming the
/// rule for a step out of order.
pub fn decide(state: &ReferralState, command: Command, by: &str) -> Result<ReferralEvent, Refusal> {
    use Status as S;
    let by = by.to_owned();
    let case_id = Some(state.case_id);
    let not = |rule: &str| Err(Refusal::NotAllowed(rule.to_owned()));
    let required = |field: &str, value: &str, rule: &str| {
        if value.trim().is_empty() {
            Err(Refusal::Invalid(Violations::one(field, rule)))
        } else {
            Ok(())
        }
    };
    match command {
        Command::Acknowledge => match state.status {
            S::Offered => Ok(ReferralEvent::Acknowledged { by, case_id }),
            _ => not("only a referral still offered can be acknowledged"),
        },
        Command::Accept => match state.status {
            S::Acknowledged => Ok(ReferralEvent::Accepted { by, case_id }),
            S::Offered => not("acknowledge the referral before accepting it"),
            _ => not("only an acknowledged referral can be accepted"),
        },
        Command::Decline { reason } => {
            required(
                "reason",
                &reason,
                "a decline needs the reason, for the requester",
            )?;
            match state.status {
                S::Offered | S::Acknowledged => Ok(ReferralEvent::Declined {
                    by,
                    reason,
                    case_id,
                }),
                _ => not("only a referral not yet accepted can be declined"),
            }
        }
        Command::ReportOutcome { outcome, reference } => {
            required("outcome", &outcome, "is required")?;
            match state.status {
                S::Accepted | S::OutcomeReported => Ok(ReferralEvent::OutcomeReported {
                    by,
                    case_id,
                    outcome,
                    reference,
                }),
                _ => not("an outcome is reported on an accepted referral"),
            }
        }
        Command::Complete => match state.status {
            S::OutcomeReported => Ok(ReferralEvent::Completed { by, case_id }),
            _ => not("report the outcome before completing the referral"),
        },
        Command::Revoke { reason } => {
            required("reason", &reason, "is required")?;
            match state.status {
                S::Offered | S::Acknowledged => Ok(ReferralEvent::Revoked {
                    by,
                    reason,
                    case_id,
                }),
                _ => not("a referral can be revoked only before it is accepted"),
            }
        }
    }
}

/// The escalation due at `now_ms`, if any: not yet acknowledged (still
/// offered), past its deadline, not escalated before.
#[must_use]
pub fn due_escalation(state: &ReferralState, now_ms: i64) -> Option<ReferralEvent> {
    (state.status == Status::Offered && !state.escalated && now_ms >= state.ack_due_at_ms)
        .then_some(ReferralEvent::Escalated {
            case_id: Some(state.case_id),
            ack_due_at_ms: state.ack_due_at_ms,
        })
}

pub mod private;

#[cfg(test)]
mod tests;
