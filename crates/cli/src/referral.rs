//! `baove referral ...`: a real client of ReferralService for the agency
//! receiving a handoff: its inbox, one referral, each step, a live watch,
//! and the directory changes administrators make.

use anyhow::{Context as _, bail};
use baove_proto::steps::ReferralStepResponse;
use baove_proto::v1::{self as p, referral_service_client::ReferralServiceClient};
use clap::{Args, Subcommand};

use crate::{channel, refusal, status_error};

/// `baove referral ...`
#[derive(Subcommand)]
pub enum Command {
    /// An agency's inbox, newest first.
    Inbox {
        /// The agency id: empty means the token's agency.
        #[arg(long, env = "BAOVE_AGENCY", default_value = "")]
        agency: String,
        /// Only this status (offered, acknowledged, accepted, declined,
        /// outcome_reported, completed, revoked).
        #[arg(long, default_value = "")]
        status: String,
    },
    /// One referral as JSON.
    Show {
        /// The referral id.
        id: String,
    },
    /// Print an agency's new and changed referrals as they happen.
    Watch {
        /// The agency id: empty means the token's agency.
        #[arg(long, env = "BAOVE_AGENCY", default_value = "")]
        agency: String,
        /// Resume from this log position (the last one printed + 1).
        #[arg(long, default_value_t = 0)]
        from: u64,
    },
    /// The agency has seen it.
    Ack(Step),
    /// The agency takes it on.
    Accept(Step),
    /// The agency refuses it (--reason required).
    Decline(Step),
    /// What came of it.
    Outcome {
        #[command(flatten)]
        step: Step,
        /// What came of it.
        #[arg(long)]
        outcome: String,
        /// A reference (police case number...).
        #[arg(long, default_value = "")]
        reference: String,
    },
    /// Done.
    Complete(Step),
    /// The requester withdraws it (--reason required).
    Revoke(Step),
    /// Rename an agency from a date (administrators).
    Rename {
        /// The agency.
        #[arg(long)]
        agency: String,
        /// Its new name.
        #[arg(long)]
        name: String,
        /// First day, YYYY-MM-DD.
        #[arg(long)]
        from: String,
        /// Who: empty means the token's user.
        #[arg(long, env = "BAOVE_USER", default_value = "")]
        user: String,
    },
    /// Merge an agency into its successor from a date (administrators).
    Merge {
        /// The agency that ends.
        #[arg(long)]
        agency: String,
        /// Its successor.
        #[arg(long)]
        into: String,
        /// First day of the successor's responsibility, YYYY-MM-DD.
        #[arg(long)]
        from: String,
        /// Who: empty means the token's user.
        #[arg(long, env = "BAOVE_USER", default_value = "")]
        user: String,
    },
}

/// What every step takes.
#[derive(Args)]
pub struct Step {
    /// The referral id.
    #[arg(long)]
    referral: String,
    /// The referral version you decided on (`baove referral show`).
    #[arg(long)]
    version: u64,
    /// Who takes the step: empty means the token's user.
    #[arg(long, env = "BAOVE_USER", default_value = "")]
    user: String,
    /// Their agency: empty means the token's agency.
    #[arg(long, env = "BAOVE_AGENCY", default_value = "")]
    agency: String,
    /// Why (decline, revoke).
    #[arg(long, default_value = "")]
    reason: String,
    /// Idempotency key: pass the same one to retry safely (default: new).
    #[arg(long)]
    request_id: Option<String>,
}

impl Step {
    fn split(self) -> (Option<p::ReferralHeader>, String) {
        let request_id = self
            .request_id
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        err_out!(
            "request id {request_id} (pass --request-id {request_id} to retry this step safely)"
        );
        let header = p::ReferralHeader {
            request_id,
            referral_id: self.referral,
            expected_version: self.version,
            user_id: self.user,
            agency_id: self.agency,
        };
        (Some(header), self.reason)
    }
}

fn print_referral(r: &p::Referral) {
    out!(
        "{}  {}  v{:<3} {:<17} {}{}  case {}  from {}  to {} ({})  ack due {}  {}",
        r.offered_at
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        r.referral_id,
        r.version,
        enum_name(r.status().as_str_name(), "REFERRAL_STATUS_"),
        if r.urgent { "URGENT " } else { "" },
        if r.escalated { "ESCALATED " } else { "" },
        r.case_id,
        r.from_unit_id,
        r.to_agency_id,
        r.to_agency_name,
        r.ack_due_at
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        match &r.kind {
            Some(p::referral::Kind::Service(service)) => p::RequestedService::try_from(*service)
                .map_or_else(
                    |_| service.to_string(),
                    |s| enum_name(s.as_str_name(), "REQUESTED_SERVICE_")
                ),
            Some(p::referral::Kind::TransferToUnitId(unit)) => format!("transfer to {unit}"),
            None => String::new(),
        },
    );
}

/// `PREFIX_SOME_NAME` as `some_name`.
fn enum_name(name: &str, prefix: &str) -> String {
    name.trim_start_matches(prefix).to_lowercase()
}

fn done<R: ReferralStepResponse>(
    result: Result<tonic::Response<R>, tonic::Status>,
) -> anyhow::Result<()> {
    let r = result.map_err(|s| refusal(&s))?.into_inner();
    let again = if r.already_applied() {
        " (already applied)"
    } else {
        ""
    };
    out!(
        "referral now {} at version {}{again}",
        enum_name(r.status().as_str_name(), "REFERRAL_STATUS_"),
        r.version()
    );
    Ok(())
}

/// Runs `baove referral ...` against `addr`.
///
/// # Errors
/// A refused step (with the rule or the fields), an unknown referral, an
/// unreachable service.
pub async fn run(addr: &str, command: Command) -> anyhow::Result<()> {
    let mut c = ReferralServiceClient::new(channel(addr).await?);
    match command {
        Command::Inbox { agency, status } => {
            let status = if status.trim().is_empty() {
                p::ReferralStatus::Unspecified
            } else {
                p::ReferralStatus::from_str_name(&format!(
                    "REFERRAL_STATUS_{}",
                    status.trim().to_uppercase()
                ))
                .with_context(|| format!("--status {status}: not a referral status"))?
            };
            let inbox = c
                .list_inbox(p::ListInboxRequest {
                    agency_id: agency,
                    status: status as i32,
                    page: None,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            inbox.referrals.iter().for_each(print_referral);
            Ok(())
        }
        Command::Show { id } => {
            let r = c
                .get_referral(p::GetReferralRequest { referral_id: id })
                .await
                .map_err(status_error)?
                .into_inner()
                .referral
                .unwrap_or_default();
            crate::intake::print_json(&r)
        }
        Command::Watch { agency, from } => {
            let mut stream = c
                .watch_inbox(p::WatchInboxRequest {
                    agency_id: agency,
                    from_position: from,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            while let Some(update) = stream.message().await.map_err(status_error)? {
                print!(
                    "#{} {}  ",
                    update.position,
                    enum_name(update.step().as_str_name(), "REFERRAL_STEP_")
                );
                if let Some(r) = &update.referral {
                    print_referral(r);
                }
            }
            Ok(())
        }
        Command::Ack(step) => {
            let (header, reason) = step.split();
            drop(reason);
            done(c.acknowledge(p::AcknowledgeRequest { header }).await)
        }
        Command::Accept(step) => {
            let (header, reason) = step.split();
            drop(reason);
            done(c.accept(p::AcceptRequest { header }).await)
        }
        Command::Decline(step) => {
            let (header, reason) = step.split();
            done(c.decline(p::DeclineRequest { header, reason }).await)
        }
        Command::Outcome {
            step,
            outcome,
            reference,
        } => {
            let (header, _) = step.split();
            done(
                c.report_outcome(p::ReportOutcomeRequest {
                    header,
                    outcome,
                    reference,
                })
                .await,
            )
        }
        Command::Complete(step) => {
            let (header, reason) = step.split();
            drop(reason);
            done(c.complete(p::CompleteRequest { header }).await)
        }
        Command::Revoke(step) => {
            let (header, reason) = step.split();
            done(c.revoke(p::RevokeRequest { header, reason }).await)
        }
        Command::Rename {
            agency,
            name,
            from,
            user,
        } => {
            if name.trim().is_empty() {
                bail!("--name is required");
            }
            let r = c
                .rename_agency(p::RenameAgencyRequest {
                    request_id: uuid::Uuid::now_v7().to_string(),
                    agency_id: agency,
                    name,
                    effective_date: from,
                    user_id: user,
                })
                .await
                .map_err(|s| refusal(&s))?;
            out!(
                "renamed{}",
                if r.into_inner().already_applied {
                    " (already applied)"
                } else {
                    ""
                }
            );
            Ok(())
        }
        Command::Merge {
            agency,
            into,
            from,
            user,
        } => {
            let r = c
                .merge_agency(p::MergeAgencyRequest {
                    request_id: uuid::Uuid::now_v7().to_string(),
                    agency_id: agency,
                    into_agency_id: into,
                    effective_date: from,
                    user_id: user,
                })
                .await
                .map_err(|s| refusal(&s))?;
            out!(
                "merged{}",
                if r.into_inner().already_applied {
                    " (already applied)"
                } else {
                    ""
                }
            );
            Ok(())
        }
    }
}
