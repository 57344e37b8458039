//! `baove case ...`: a real client of CaseService: show, list, watch, and
//! one command per step of the procedure, each printing the case's new
//! version.

use anyhow::{Context as _, bail};
use baove_proto::steps::CaseStepResponse;
use baove_proto::v1::{self as p, case_service_client::CaseServiceClient};
use clap::{Args, Subcommand};

use crate::{channel, refusal, status_error};

/// `baove case ...`
#[derive(Subcommand)]
pub enum Command {
    /// Show one case as JSON (state, plan, deadlines).
    Show {
        /// The case id.
        id: String,
    },
    /// List cases, newest opened first.
    List {
        /// Only this commune (incident unit id).
        #[arg(long)]
        unit: Option<String>,
        /// Only `open` or `closed`.
        #[arg(long)]
        status: Option<String>,
        /// Only this officer's.
        #[arg(long)]
        officer: Option<String>,
        /// Only cases with a missed deadline not yet met.
        #[arg(long)]
        overdue: bool,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// A page token printed by a previous list.
        #[arg(long, default_value = "")]
        page: String,
    },
    /// Print the case's events as they happen (Ctrl-C to stop).
    Watch {
        /// The case id.
        id: String,
        /// First seq to print.
        #[arg(long, default_value_t = 1)]
        from: u64,
    },
    /// Assign or reassign the responsible officer.
    Assign {
        #[command(flatten)]
        step: Step,
        /// The officer now responsible.
        #[arg(long)]
        to: String,
    },
    /// Record the initial assessment (Mẫu 02).
    Assess {
        #[command(flatten)]
        step: Step,
        /// A rated factor, `factor=high|medium|low` (repeat).
        #[arg(long = "rating", required = true)]
        ratings: Vec<String>,
        /// Emergency measures apply.
        #[arg(long)]
        emergency: bool,
        /// Summary.
        #[arg(long, default_value = "")]
        summary: String,
        /// A form of abuse the verification confirmed (violence,
        /// sexual-abuse, exploitation, trafficking, abandonment, neglect,
        /// other; repeat): 0101 counts the child once one is confirmed.
        #[arg(long = "confirmed")]
        confirmed: Vec<String>,
        /// A form of abuse reported and found untrue (repeat).
        #[arg(long = "unconfirmed")]
        unconfirmed: Vec<String>,
    },
    /// Record an emergency measure with the chair's decision.
    Emergency {
        #[command(flatten)]
        step: Step,
        /// medical-care, safe-shelter, temporary-separation or other.
        #[arg(long)]
        kind: String,
        /// What was done.
        #[arg(long)]
        description: String,
        /// The decision's reference.
        #[arg(long)]
        decision: String,
        /// Separation: first day (YYYY-MM-DD).
        #[arg(long)]
        from: Option<String>,
        /// Separation: last day (YYYY-MM-DD).
        #[arg(long)]
        until: Option<String>,
        /// Separation: the extension decision, beyond 15 days.
        #[arg(long, default_value = "")]
        extension: String,
        /// assessed-danger, parents-refuse-plan or abuse-may-continue (Đ32).
        #[arg(long, default_value = "assessed-danger")]
        grounds: String,
    },
    /// Record the detailed assessment and needs meeting (Mẫu 03).
    Detailed {
        #[command(flatten)]
        step: Step,
        /// Summary.
        #[arg(long)]
        summary: String,
        /// The child's needs.
        #[arg(long, default_value = "")]
        needs: String,
        /// A participant of the needs meeting (repeat).
        #[arg(long = "participant", required = true)]
        participants: Vec<String>,
        /// The minutes' reference.
        #[arg(long)]
        minutes: String,
        /// A form of abuse the verification confirmed (violence,
        /// sexual-abuse, exploitation, trafficking, abandonment, neglect,
        /// other; repeat): 0101 counts the child once one is confirmed.
        #[arg(long = "confirmed")]
        confirmed: Vec<String>,
        /// A form of abuse reported and found untrue (repeat).
        #[arg(long = "unconfirmed")]
        unconfirmed: Vec<String>,
    },
    /// Draft a plan (Mẫu 04).
    Plan {
        #[command(flatten)]
        step: Step,
        /// A measure, `id|description|responsible|YYYY-MM-DD` (repeat).
        #[arg(long = "measure", required = true)]
        measures: Vec<String>,
    },
    /// The chair approves the plan (Mẫu 05).
    Approve {
        #[command(flatten)]
        step: Step,
        /// The decision's reference.
        #[arg(long)]
        decision: String,
    },
    /// The chair sends the plan back.
    SendBack {
        #[command(flatten)]
        step: Step,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Record an intervention against a plan measure.
    Intervene {
        #[command(flatten)]
        step: Step,
        /// The measure id.
        #[arg(long)]
        measure: String,
        /// What was done.
        #[arg(long)]
        description: String,
        /// When (YYYY-MM-DD).
        #[arg(long)]
        date: String,
    },
    /// Record a review (Mẫu 06).
    Review {
        #[command(flatten)]
        step: Step,
        /// A rated factor, `factor=high|medium|low` (repeat).
        #[arg(long = "rating", required = true)]
        ratings: Vec<String>,
        /// Summary.
        #[arg(long, default_value = "")]
        summary: String,
    },
    /// Close the case.
    Close {
        #[command(flatten)]
        step: Step,
        /// Why.
        #[arg(long)]
        reason: String,
        /// no-risk-after-review, unfounded or no-support-needed.
        #[arg(long, default_value = "no-risk-after-review")]
        grounds: String,
        /// The commune chair's decision (number and date).
        #[arg(long)]
        decision: String,
    },
    /// Reopen a closed case.
    Reopen {
        #[command(flatten)]
        step: Step,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Refer the case to another agency, or transfer it to another commune.
    Refer {
        #[command(flatten)]
        step: Step,
        /// The agency asked.
        #[arg(long)]
        to: String,
        /// police-investigation, medical-examination, psychological-support,
        /// legal-aid, school-support or shelter (or use --transfer-to).
        #[arg(long)]
        service: Option<String>,
        /// Transfer the case to this commune (unit id).
        #[arg(long)]
        transfer_to: Option<String>,
        /// Why.
        #[arg(long)]
        reason: String,
        /// Acknowledge within 2 hours (else 1 working day).
        #[arg(long)]
        urgent: bool,
        /// The child's identifying information is shared.
        #[arg(long)]
        identifying: bool,
        /// The informant's details are shared too (with --identifying).
        #[arg(long)]
        informant: bool,
        /// The child (7 or older) agreed.
        #[arg(long)]
        child_consent: bool,
        /// The parent or guardian agreed.
        #[arg(long)]
        guardian_consent: bool,
        /// criminal-investigation or emergency: share without consent.
        #[arg(long)]
        legal_basis: Option<String>,
    },
    /// Add a note.
    Note {
        #[command(flatten)]
        step: Step,
        /// The note.
        #[arg(long)]
        text: String,
    },
}

/// What every step takes.
#[derive(Args)]
pub struct Step {
    /// The case id.
    #[arg(long = "case")]
    case_id: String,
    /// The case version you decided on (`baove case show` prints it).
    #[arg(long)]
    version: u64,
    /// Who takes the step: empty means the token's user (another's id is
    /// refused).
    #[arg(long, env = "BAOVE_OFFICER", default_value = "")]
    officer: String,
    /// Idempotency key: pass the same one to retry safely (default: new).
    #[arg(long)]
    request_id: Option<String>,
}

impl Step {
    fn header(self) -> Option<p::CommandHeader> {
        let request_id = self
            .request_id
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        err_out!(
            "request id {request_id} (pass --request-id {request_id} to retry this step safely)"
        );
        Some(p::CommandHeader {
            request_id,
            case_id: self.case_id,
            expected_version: self.version,
            officer_id: self.officer,
        })
    }
}

/// Forms of abuse named on the command line (`sexual-abuse`), as proto
/// values.
fn abuse_types(flag: &str, names: &[String]) -> anyhow::Result<Vec<i32>> {
    names
        .iter()
        .map(|name| {
            p::AbuseType::from_str_name(&format!(
                "ABUSE_TYPE_{}",
                name.to_uppercase().replace('-', "_")
            ))
            .map(|t| t as i32)
            .with_context(|| {
                format!(
                    "{flag} {name}: violence, sexual-abuse, exploitation, trafficking, abandonment, neglect or other"
                )
            })
        })
        .collect()
}

fn ratings(raw: &[String]) -> anyhow::Result<Vec<p::RiskRating>> {
    raw.iter()
        .map(|r| {
            let (factor, level) = r
                .rsplit_once('=')
                .with_context(|| format!("--rating {r:?}: write factor=high|medium|low"))?;
            let level = match level.trim() {
                "high" => p::RiskLevel::High,
                "medium" => p::RiskLevel::Medium,
                "low" => p::RiskLevel::Low,
                other => bail!("--rating {r:?}: level must be high, medium or low, not {other:?}"),
            };
            Ok(p::RiskRating {
                factor: factor.trim().to_owned(),
                level: level as i32,
            })
        })
        .collect()
}

fn done<R: CaseStepResponse>(
    case_id: &str,
    result: Result<tonic::Response<R>, tonic::Status>,
) -> anyhow::Result<()> {
    let response = result.map_err(|s| refusal(&s))?.into_inner();
    if response.already_applied() {
        out!(
            "already applied: case {case_id} is at version {}",
            response.version()
        );
    } else {
        out!(
            "case {case_id} now at version {} ({})",
            response.version(),
            response.event_types().join(", ")
        );
    }
    Ok(())
}

/// Runs `baove case ...` against `addr`.
///
/// # Errors
/// A refused step (with the rule or the fields), an unknown case, an
/// unreachable service.
pub async fn run(addr: &str, command: Command) -> anyhow::Result<()> {
    let mut client = CaseServiceClient::new(channel(addr).await?);
    match command {
        Command::Show { id } => {
            let case = client
                .get_case(p::GetCaseRequest { case_id: id })
                .await
                .map_err(status_error)?
                .into_inner()
                .case
                .context("casework answered without the case")?;
            crate::intake::print_json(&case)
        }
        Command::List {
            unit,
            status,
            officer,
            overdue,
            limit,
            page,
        } => {
            let status = match status.as_deref() {
                None => p::CaseStatus::Unspecified,
                Some("open") => p::CaseStatus::Open,
                Some("closed") => p::CaseStatus::Closed,
                Some(other) => bail!("--status must be open or closed, not {other}"),
            };
            let response = client
                .list_cases(p::ListCasesRequest {
                    incident_unit_id: unit.unwrap_or_default(),
                    status: status as i32,
                    officer_id: officer.unwrap_or_default(),
                    overdue,
                    page: Some(p::PageRequest {
                        page_size: limit,
                        page_token: page,
                    }),
                    ..Default::default()
                })
                .await
                .map_err(status_error)?
                .into_inner();
            for c in &response.cases {
                out!(
                    "{}  {}  v{:<3} {:<28} {}{}{}  next due {}",
                    c.opened_at
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    c.case_id,
                    c.version,
                    c.phase()
                        .as_str_name()
                        .trim_start_matches("CASE_PHASE_")
                        .to_lowercase(),
                    if c.overdue { "OVERDUE " } else { "" },
                    if c.immediate_danger { "DANGER " } else { "" },
                    c.incident_unit_id,
                    c.next_due_at
                        .as_ref()
                        .map_or_else(|| "-".to_owned(), ToString::to_string),
                );
            }
            if !response.next_page_token.is_empty() {
                out!("more: --page {}", response.next_page_token);
            }
            Ok(())
        }
        Command::Watch { id, from } => {
            let mut stream = client
                .watch_case(p::WatchCaseRequest {
                    case_id: id,
                    from_seq: from,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            while let Some(item) = stream.message().await.map_err(status_error)? {
                if let Some(event) = &item.event {
                    crate::print_event(event);
                }
            }
            Ok(())
        }
        Command::Assign { step, to } => {
            let id = step.case_id.clone();
            done(
                &id,
                client
                    .assign_officer(p::AssignOfficerRequest {
                        header: step.header(),
                        assignee_id: to,
                    })
                    .await,
            )
        }
        Command::Assess {
            step,
            ratings: raw,
            emergency,
            summary,
            confirmed,
            unconfirmed,
        } => {
            let id = step.case_id.clone();
            let request = p::RecordInitialAssessmentRequest {
                ratings: ratings(&raw)?,
                emergency_measures_apply: emergency,
                summary,
                header: step.header(),
                confirmed_abuse_types: abuse_types("--confirmed", &confirmed)?,
                unconfirmed_abuse_types: abuse_types("--unconfirmed", &unconfirmed)?,
            };
            done(&id, client.record_initial_assessment(request).await)
        }
        Command::Emergency {
            step,
            kind,
            description,
            decision,
            from,
            until,
            extension,
            grounds,
        } => {
            let id = step.case_id.clone();
            let kind = p::MeasureKind::from_str_name(&format!(
                "MEASURE_KIND_{}",
                kind.to_uppercase().replace('-', "_")
            ))
            .with_context(|| {
                format!("--kind {kind}: medical-care, safe-shelter, temporary-separation or other")
            })?;
            let separation = match (from, until) {
                (Some(start_date), Some(end_date)) => Some(p::Separation {
                    start_date,
                    end_date,
                    extension_decision_ref: extension,
                }),
                (None, None) => None,
                _ => bail!("a separation needs both --from and --until"),
            };
            let grounds = p::MeasureGrounds::from_str_name(&format!(
                "MEASURE_GROUNDS_{}",
                grounds.to_uppercase().replace('-', "_")
            ))
            .with_context(|| {
                format!("--grounds {grounds}: assessed-danger, parents-refuse-plan or abuse-may-continue")
            })?;
            let request = p::RecordEmergencyMeasureRequest {
                kind: kind as i32,
                description,
                decision_ref: decision,
                separation,
                header: step.header(),
                grounds: grounds as i32,
            };
            done(&id, client.record_emergency_measure(request).await)
        }
        Command::Detailed {
            step,
            summary,
            needs,
            participants,
            minutes,
            confirmed,
            unconfirmed,
        } => {
            let id = step.case_id.clone();
            let request = p::RecordDetailedAssessmentRequest {
                summary,
                needs,
                meeting_participants: participants,
                minutes_ref: minutes,
                header: step.header(),
                confirmed_abuse_types: abuse_types("--confirmed", &confirmed)?,
                unconfirmed_abuse_types: abuse_types("--unconfirmed", &unconfirmed)?,
            };
            done(&id, client.record_detailed_assessment(request).await)
        }
        Command::Plan { step, measures } => {
            let id = step.case_id.clone();
            let measures = measures
                .iter()
                .map(|m| {
                    let parts: Vec<&str> = m.split('|').collect();
                    let [id, description, responsible, due_date] = parts.as_slice() else {
                        bail!("--measure {m:?}: write id|description|responsible|YYYY-MM-DD");
                    };
                    Ok(p::PlanMeasure {
                        id: (*id).to_owned(),
                        description: (*description).to_owned(),
                        responsible: (*responsible).to_owned(),
                        due_date: (*due_date).to_owned(),
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            done(
                &id,
                client
                    .draft_plan(p::DraftPlanRequest {
                        header: step.header(),
                        measures,
                        keep_despite_residence_ref: String::new(),
                    })
                    .await,
            )
        }
        Command::Approve { step, decision } => {
            let id = step.case_id.clone();
            done(
                &id,
                client
                    .approve_plan(p::ApprovePlanRequest {
                        header: step.header(),
                        decision_ref: decision,
                    })
                    .await,
            )
        }
        Command::SendBack { step, reason } => {
            let id = step.case_id.clone();
            done(
                &id,
                client
                    .send_back_plan(p::SendBackPlanRequest {
                        header: step.header(),
                        reason,
                    })
                    .await,
            )
        }
        Command::Intervene {
            step,
            measure,
            description,
            date,
        } => {
            let id = step.case_id.clone();
            let request = p::RecordInterventionRequest {
                measure_id: measure,
                description,
                date,
                header: step.header(),
            };
            done(&id, client.record_intervention(request).await)
        }
        Command::Review {
            step,
            ratings: raw,
            summary,
        } => {
            let id = step.case_id.clone();
            let request = p::RecordReviewRequest {
                ratings: ratings(&raw)?,
                summary,
                header: step.header(),
            };
            done(&id, client.record_review(request).await)
        }
        Command::Close {
            step,
            reason,
            grounds,
            decision,
        } => {
            let id = step.case_id.clone();
            let grounds = p::CloseGrounds::from_str_name(&format!(
                "CLOSE_GROUNDS_{}",
                grounds.to_uppercase().replace('-', "_")
            ))
            .with_context(|| {
                format!("--grounds {grounds}: no-risk-after-review, unfounded or no-support-needed")
            })?;
            done(
                &id,
                client
                    .close_case(p::CloseCaseRequest {
                        header: step.header(),
                        reason,
                        grounds: grounds as i32,
                        decision_ref: decision,
                    })
                    .await,
            )
        }
        Command::Reopen { step, reason } => {
            let id = step.case_id.clone();
            done(
                &id,
                client
                    .reopen_case(p::ReopenCaseRequest {
                        header: step.header(),
                        reason,
                    })
                    .await,
            )
        }
        Command::Refer {
            step,
            to,
            service,
            transfer_to,
            reason,
            urgent,
            identifying,
            informant,
            child_consent,
            guardian_consent,
            legal_basis,
        } => {
            let id = step.case_id.clone();
            let service = match service {
                None => p::RequestedService::Unspecified,
                Some(name) => p::RequestedService::from_str_name(&format!(
                    "REQUESTED_SERVICE_{}",
                    name.to_uppercase().replace('-', "_")
                ))
                .with_context(|| format!("--service {name}: unknown service"))?,
            };
            let legal_basis = match legal_basis {
                None => p::LegalBasis::Unspecified,
                Some(name) => p::LegalBasis::from_str_name(&format!(
                    "LEGAL_BASIS_{}",
                    name.to_uppercase().replace('-', "_")
                ))
                .with_context(|| {
                    format!("--legal-basis {name}: criminal-investigation or emergency")
                })?,
            };
            let request = p::RequestReferralRequest {
                header: step.header(),
                service: service as i32,
                transfer_to_unit_id: transfer_to.unwrap_or_default(),
                to_agency_id: to,
                reason,
                urgent,
                shares_identifying_information: identifying,
                shares_informant: informant,
                child_consent,
                guardian_consent,
                legal_basis: legal_basis as i32,
            };
            let r = client
                .request_referral(request)
                .await
                .map_err(|s| refusal(&s))?
                .into_inner();
            out!(
                "case {id} now at version {}; referral {}",
                r.version,
                r.referral_id
            );
            Ok(())
        }
        Command::Note { step, text } => {
            let id = step.case_id.clone();
            done(
                &id,
                client
                    .add_note(p::AddNoteRequest {
                        header: step.header(),
                        text,
                    })
                    .await,
            )
        }
    }
}
