//! The referral read model: every referral's state and the agency
//! directory with its changes, folded from referral's log and kept in
//! memory. It serves inboxes and tells the escalation scheduler what is due.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use baove_domain::event::StoredEvent as _;
use baove_domain::reference::Directory;
use baove_domain::reference::DirectoryEvent;
use baove_domain::referral::{self as r, ReferralEvent, ReferralState};
use baove_eventlog::{Envelope, EventLog};
use baove_runtime::projection::Follower;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The stream of directory changes in referral's log.
pub const DIRECTORY_STREAM: Uuid = Uuid::from_u128(0x6261_6f76_652d_6469_7265_6374_6f72_7900);

/// One referral in the model.
#[derive(Clone, Debug)]
pub struct Row {
    /// Its state.
    pub state: ReferralState,
    /// Its version.
    pub version: u64,
    /// When offered, Unix ms.
    pub offered_at_ms: i64,
    /// The receiving agency's name when offered.
    pub to_agency_name: String,
    /// The agency the requester named.
    pub requested_agency_id: String,
    /// The last reason or outcome given, as stored (sealed under the
    /// referral's key since referral text is sealed: opened for a reader).
    pub last_detail: Detail,
    /// Global position of its last event.
    pub position: u64,
    /// Its last step's stored name.
    pub last_step: String,
}

/// The last reason or outcome given on a referral, each string as stored
/// with its path in its event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Detail {
    /// None yet.
    #[default]
    None,
    /// A decline's or a revocation's reason (`reason`).
    Reason(String),
    /// An outcome (`outcome`) and its reference (`reference`).
    Outcome {
        /// What came of it.
        outcome: String,
        /// The police case number, or the like.
        reference: String,
    },
}

impl Detail {
    /// Each string with its path in its event, to be opened in place.
    pub fn strings_mut(&mut self) -> Vec<(&'static str, &mut String)> {
        match self {
            Self::None => Vec::new(),
            Self::Reason(reason) => vec![("reason", reason)],
            Self::Outcome { outcome, reference } => {
                vec![("outcome", outcome), ("reference", reference)]
            }
        }
    }

    /// As a reader sees it: the reason, or the outcome with its reference.
    #[must_use]
    pub fn text(&self) -> String {
        match self {
            Self::None => String::new(),
            Self::Reason(reason) => reason.clone(),
            Self::Outcome { outcome, reference } => format!("{outcome} ({reference})"),
        }
    }
}

/// The model.
pub struct Referrals {
    rows: RwLock<HashMap<Uuid, Row>>,
    directory: RwLock<Directory>,
    follower: Follower,
}

impl Referrals {
    /// A model over the reference directory loaded from files.
    #[must_use]
    pub fn new(directory: Directory) -> Arc<Self> {
        Arc::new(Self {
            rows: RwLock::default(),
            directory: RwLock::new(directory),
            follower: Follower::named("referrals"),
        })
    }

    fn apply(&self, envelope: &Envelope) {
        if DirectoryEvent::EVENT_TYPES.contains(&envelope.event_type.as_str()) {
            match DirectoryEvent::decode(
                &envelope.event_type,
                envelope.schema_version,
                &envelope.payload,
            ) {
                Ok(DirectoryEvent::AgencyChanged(change)) => {
                    let mut directory = self
                        .directory
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if let Err(e) = directory.apply_change(&change) {
                        tracing::error!(error = %e, "stored directory change does not apply");
                    }
                }
                Err(e) => tracing::error!(error = %e, "undecodable AgencyChanged"),
            }
            return;
        }
        let event = match <ReferralEvent as baove_domain::event::StoredEvent>::decode(
            &envelope.event_type,
            envelope.schema_version,
            &envelope.payload,
        ) {
            Ok(event) => event,
            Err(e) => {
                tracing::error!(event_id = %envelope.event_id, error = %e, "undecodable referral event");
                return;
            }
        };
        let mut rows = self
            .rows
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let id = *envelope.stream_id.as_uuid();
        let previous = rows.remove(&id);
        let detail = match &event {
            ReferralEvent::Declined { reason, .. } | ReferralEvent::Revoked { reason, .. } => {
                Some(Detail::Reason(reason.clone()))
            }
            ReferralEvent::OutcomeReported {
                outcome, reference, ..
            } => Some(Detail::Outcome {
                outcome: outcome.clone(),
                reference: reference.clone(),
            }),
            _ => None,
        };
        let Some(state) = r::apply(previous.as_ref().map(|row| row.state.clone()), &event) else {
            return;
        };
        let row = match previous {
            Some(mut row) => {
                row.state = state;
                row.version = envelope.seq;
                row.position = envelope.global_position;
                row.last_step = envelope.event_type.clone();
                if let Some(detail) = detail {
                    row.last_detail = detail;
                }
                row
            }
            None => {
                let on = baove_domain::time::vietnam_date(envelope.recorded_at_ms);
                let name = self
                    .directory
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .agency_name(&state.to_agency_id, on)
                    .unwrap_or_default()
                    .to_owned();
                Row {
                    requested_agency_id: state.request.to_agency_id.clone(),
                    state,
                    version: envelope.seq,
                    offered_at_ms: envelope.recorded_at_ms,
                    to_agency_name: name,
                    last_detail: Detail::None,
                    position: envelope.global_position,
                    last_step: envelope.event_type.clone(),
                }
            }
        };
        rows.insert(id, row);
    }

    /// Folds the log, then follows it until `cancel` fires.
    pub async fn follow(self: Arc<Self>, log: EventLog, cancel: CancellationToken) {
        self.follower
            .follow(&log, &cancel, |envelope| self.apply(envelope))
            .await;
    }

    /// Waits until the model has applied the log up to `position`.
    ///
    /// # Errors
    /// When it does not catch up in time (see [`Follower::wait_for`]).
    pub async fn wait_for(&self, position: u64) -> Result<(), baove_runtime::projection::Behind> {
        self.follower.wait_for(position).await
    }

    /// How many referrals wait for the receiving agency's acknowledgement.
    #[must_use]
    pub fn awaiting_acknowledgement(&self) -> usize {
        self.rows
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .filter(|row| row.state.status == r::Status::Offered)
            .count()
    }

    /// One referral.
    #[must_use]
    pub fn get(&self, id: Uuid) -> Option<Row> {
        self.rows
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&id)
            .cloned()
    }

    /// An agency's referrals, newest offered first, after `after`
    /// (offered at, id); and the next cursor.
    #[must_use]
    pub fn inbox(
        &self,
        agency_id: &str,
        status: Option<r::Status>,
        after: Option<(i64, Uuid)>,
        limit: usize,
    ) -> (Vec<Row>, Option<(i64, Uuid)>) {
        let rows = self
            .rows
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let directory = self
            .directory
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut matching: Vec<&Row> = rows
            .values()
            .filter(|row| {
                baove_runtime::auth::same_agency(&directory, agency_id, &row.state.to_agency_id)
            })
            .filter(|row| status.is_none_or(|s| s == row.state.status))
            .filter(|row| {
                after.is_none_or(|cursor| (row.offered_at_ms, row.state.referral_id) < cursor)
            })
            .collect();
        matching.sort_unstable_by_key(|row| {
            std::cmp::Reverse((row.offered_at_ms, row.state.referral_id))
        });
        let more = matching.len() > limit;
        let page: Vec<Row> = matching.into_iter().take(limit).cloned().collect();
        let next = if more {
            page.last()
                .map(|row| (row.offered_at_ms, row.state.referral_id))
        } else {
            None
        };
        (page, next)
    }

    /// Referrals whose acknowledgement deadline passed unescalated.
    #[must_use]
    pub fn due_escalations(&self, now_ms: i64) -> Vec<Uuid> {
        self.rows
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .filter(|row| r::due_escalation(&row.state, now_ms).is_some())
            .map(|row| row.state.referral_id)
            .collect()
    }

    /// Runs `f` on the directory as it stands (file plus changes).
    pub fn with_directory<T>(&self, f: impl FnOnce(&Directory) -> T) -> T {
        f(&self
            .directory
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}
