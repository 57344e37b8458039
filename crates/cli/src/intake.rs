//! `baove intake ...`: a real client of IntakeService. Request files are the proto3 JSON of the request
//! message (field names as in `proto/baove/v1/intake.proto`, enums by name,
//! times in RFC 3339), read through the published descriptors.

use anyhow::{Context as _, bail};
use baove_proto::v1::{
    GetIntakeRequest, IntakeStatus, ListIntakesRequest, PageRequest, RecordReceivedReportRequest,
    SearchUnitsRequest, SubmitHotlineReportRequest, SubmitPoliceNotificationRequest,
    intake_service_client::IntakeServiceClient,
};
use clap::Subcommand;
use prost::{Message, Name};
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use sha2::{Digest, Sha256};

use crate::{channel, refusal, status_error};

/// `baove intake ...`
#[derive(Subcommand)]
pub enum Command {
    /// Submit a report from a JSON file: a SubmitHotlineReportRequest
    /// (`{"report": ...}`) or a SubmitPoliceNotificationRequest
    /// (`{"notification": ...}`). Without a request_id the file's SHA-256
    /// is used, so submitting the same file again returns the same intake.
    Submit {
        /// The JSON file (`-` for standard input).
        #[arg(long)]
        file: String,
        /// A report (`{"report": ...}`) the caller received directly, in
        /// person or by phone at the commune or the Department
        /// (RecordReceivedReport: for commune and province officers; the
        /// receiver recorded is the token's user).
        #[arg(long)]
        received: bool,
    },
    /// Show one intake as JSON.
    Show {
        /// The intake id.
        id: String,
    },
    /// List intakes, newest received first.
    List {
        /// Only `recorded` or `handed-over`.
        #[arg(long)]
        status: Option<String>,
        /// Only this incident unit id.
        #[arg(long)]
        unit: Option<String>,
        /// Only this channel (phone, zalo, app, web, in-person, letter, press, police).
        #[arg(long)]
        channel: Option<String>,
        /// Child's name contains these words (case and diacritics ignored).
        #[arg(long)]
        name: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// A page token printed by a previous list.
        #[arg(long, default_value = "")]
        page: String,
    },
    /// Find an administrative unit for a report's place by name, typed
    /// with or without diacritics ("ninh kieu"): one line per unit, its id
    /// first (for `unit_id`), then its name with district and province.
    Units {
        /// Words of the name.
        query: String,
        /// Names and ranking as on this day (YYYY-MM-DD), e.g. the day the
        /// incident happened; default today.
        #[arg(long, default_value = "")]
        on: String,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Erase the confidential fields of every report of a case (a lawful
    /// deletion request, the end of retention): province officers only.
    /// Cannot be undone.
    Erase {
        /// The case id.
        #[arg(long)]
        case: String,
        /// The legal ground.
        #[arg(long)]
        reason: String,
        /// Idempotency key (default: new).
        #[arg(long)]
        request_id: Option<String>,
    },
}

/// The first `n` of `ids`, and how many more there are.
fn some_of(ids: &[String], n: usize) -> String {
    let shown = ids.iter().take(n).cloned().collect::<Vec<_>>().join(", ");
    match ids.len().checked_sub(n) {
        Some(more) if more > 0 => format!("{shown} (and {more} more: `baove case list`)"),
        _ => shown,
    }
}

pub(crate) fn pool() -> anyhow::Result<DescriptorPool> {
    DescriptorPool::decode(baove_proto::FILE_DESCRIPTOR_SET)
        .context("the built-in proto descriptors do not decode")
}

/// Parses proto3 JSON into message `T`.
pub(crate) fn from_json<T: Message + Name + Default>(
    pool: &DescriptorPool,
    json: &str,
) -> anyhow::Result<T> {
    let name = T::full_name();
    let name = name.as_str();
    let descriptor = pool
        .get_message_by_name(name)
        .with_context(|| format!("unknown message {name}"))?;
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let message = DynamicMessage::deserialize(descriptor, &mut deserializer)
        .with_context(|| format!("not a valid {name}"))?;
    deserializer
        .end()
        .with_context(|| format!("not a valid {name}"))?;
    T::decode(message.encode_to_vec().as_slice()).context("re-encoding the request")
}

/// Prints message `value` as proto3 JSON (read through the descriptor
/// its type names, [`Name::full_name`]).
pub fn print_json<T: Message + Name>(value: &T) -> anyhow::Result<()> {
    let pool = pool()?;
    let name = T::full_name();
    let name = name.as_str();
    let descriptor = pool
        .get_message_by_name(name)
        .with_context(|| format!("unknown message {name}"))?;
    let message = DynamicMessage::decode(descriptor, value.encode_to_vec().as_slice())?;
    let mut out = serde_json::Serializer::pretty(std::io::stdout().lock());
    message.serialize_with_options(
        &mut out,
        &SerializeOptions::new().use_proto_field_name(true),
    )?;
    out!();
    Ok(())
}

fn print_receipt(receipt: &baove_proto::v1::SubmitHotlineReportResponse) {
    let again = if receipt.already_recorded {
        " (already recorded: this is the first receipt)"
    } else {
        ""
    };
    out!("recorded intake {}{again}", receipt.intake_id);
    if let Some(at) = &receipt.recorded_at {
        out!("recorded at {}", rfc3339(at));
    }
    if receipt.outside_child_law {
        out!(
            "note: the child is 16 or 17, outside the Law on Children; casework routes it as general support"
        );
    }
    if !receipt.possible_duplicate_case_ids.is_empty() {
        out!(
            "possible duplicate of case(s): {}",
            some_of(&receipt.possible_duplicate_case_ids, 10)
        );
    } else if receipt.possible_duplicate {
        out!(
            "possible duplicate of an earlier report: the officers handling it will see the pairing"
        );
    }
}

/// A report file without `received_at` was received now: fills it in and
/// says so (the operator types the report while the call goes on).
fn received_now(facts: &mut baove_proto::v1::ReportFacts) {
    if facts.received_at.is_none() {
        let now = prost_types::Timestamp::from(std::time::SystemTime::now());
        out!("received_at not in the file: now, {now}");
        facts.received_at = Some(now);
    }
}

fn rfc3339(ts: &prost_types::Timestamp) -> String {
    ts.to_string()
}

/// Runs `baove intake ...` against `addr`.
///
/// # Errors
/// A refused request (with its fields), an unreachable service, a bad file.
pub async fn run(addr: &str, command: Command) -> anyhow::Result<()> {
    let pool = pool()?;
    match command {
        Command::Submit { file, received } => {
            let text = if file == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading standard input")?
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("reading {file}"))?
            };
            let value: serde_json::Value =
                serde_json::from_str(&text).with_context(|| format!("{file} is not JSON"))?;
            let default_id = format!(
                "file-sha256:{}",
                hex::encode(&Sha256::digest(text.as_bytes())[..16])
            );
            let mut client = IntakeServiceClient::new(channel(addr).await?);
            if received && value.get("notification").is_some() {
                anyhow::bail!(
                    "--received records a report received directly ({{\"report\": ...}}), not a police notification"
                );
            }
            let receipt = if value.get("notification").is_some() {
                let mut request: SubmitPoliceNotificationRequest = from_json(&pool, &text)?;
                if request.request_id.is_empty() {
                    request.request_id = default_id;
                }
                if let Some(facts) = request.notification.as_mut().and_then(|n| n.facts.as_mut()) {
                    received_now(facts);
                }
                client.submit_police_notification(request).await.map(|r| {
                    r.map(|n| baove_proto::v1::SubmitHotlineReportResponse {
                        intake_id: n.intake_id,
                        recorded_at: n.recorded_at,
                        already_recorded: n.already_recorded,
                        possible_duplicate_case_ids: n.possible_duplicate_case_ids,
                        outside_child_law: n.outside_child_law,
                        possible_duplicate: n.possible_duplicate,
                    })
                })
            } else {
                let mut request: SubmitHotlineReportRequest = from_json(&pool, &text)?;
                if request.request_id.is_empty() {
                    request.request_id = default_id;
                }
                if let Some(facts) = request.report.as_mut().and_then(|r| r.facts.as_mut()) {
                    received_now(facts);
                }
                if received {
                    client
                        .record_received_report(RecordReceivedReportRequest {
                            request_id: request.request_id,
                            report: request.report,
                        })
                        .await
                        .map(|r| {
                            r.map(|n| baove_proto::v1::SubmitHotlineReportResponse {
                                intake_id: n.intake_id,
                                recorded_at: n.recorded_at,
                                already_recorded: n.already_recorded,
                                possible_duplicate_case_ids: n.possible_duplicate_case_ids,
                                outside_child_law: n.outside_child_law,
                                possible_duplicate: n.possible_duplicate,
                            })
                        })
                } else {
                    client.submit_hotline_report(request).await
                }
            };
            print_receipt(&receipt.map_err(|s| refusal(&s))?.into_inner());
            Ok(())
        }
        Command::Erase {
            case,
            reason,
            request_id,
        } => {
            let mut client = IntakeServiceClient::new(channel(addr).await?);
            let erased = client
                .erase_case(baove_proto::v1::EraseCaseRequest {
                    request_id: request_id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
                    case_id: case.clone(),
                    reason,
                })
                .await
                .map_err(|s| refusal(&s))?
                .into_inner();
            out!(
                "erased the confidential fields of case {case}: intakes {}",
                erased.intake_ids.join(", ")
            );
            Ok(())
        }
        Command::Units { query, on, limit } => {
            let mut client = IntakeServiceClient::new(channel(addr).await?);
            let found = client
                .search_units(SearchUnitsRequest { query, on, limit })
                .await
                .map_err(status_error)?
                .into_inner()
                .units;
            if found.is_empty() {
                out!("no unit found");
            }
            for unit in found {
                let ended = if unit.valid_to.is_empty() {
                    String::new()
                } else if unit.successor_unit_ids.is_empty() {
                    format!(" (until {})", unit.valid_to)
                } else {
                    format!(
                        " (until {}; now {})",
                        unit.valid_to,
                        unit.successor_unit_ids.join(", ")
                    )
                };
                out!("{:<18} {}{ended}", unit.unit_id, unit.label);
            }
            Ok(())
        }
        Command::Show { id } => {
            let mut client = IntakeServiceClient::new(channel(addr).await?);
            let intake = client
                .get_intake(GetIntakeRequest { intake_id: id })
                .await
                .map_err(status_error)?
                .into_inner()
                .intake
                .unwrap_or_default();
            print_json(&intake)
        }
        Command::List {
            status,
            unit,
            channel: by_channel,
            name,
            limit,
            page,
        } => {
            let status = match status.as_deref() {
                None => IntakeStatus::Unspecified,
                Some("recorded") => IntakeStatus::Recorded,
                Some("handed-over") => IntakeStatus::HandedOver,
                Some(other) => bail!("--status must be recorded or handed-over, not {other}"),
            };
            let channel_value = match by_channel {
                None => 0,
                Some(name) => {
                    let proto_name = format!("CHANNEL_{}", name.to_uppercase().replace('-', "_"));
                    baove_proto::v1::Channel::from_str_name(&proto_name)
                        .with_context(|| format!("unknown channel {name}"))?
                        as i32
                }
            };
            let mut client = IntakeServiceClient::new(channel(addr).await?);
            let response = client
                .list_intakes(ListIntakesRequest {
                    status: status as i32,
                    incident_unit_id: unit.unwrap_or_default(),
                    channel: channel_value,
                    child_name: name.unwrap_or_default(),
                    page: Some(PageRequest {
                        page_size: limit,
                        page_token: page,
                    }),
                    ..Default::default()
                })
                .await
                .map_err(status_error)?
                .into_inner();
            for i in &response.intakes {
                let status = IntakeStatus::try_from(i.status).map_or("?", |s| s.as_str_name());
                let chan =
                    baove_proto::v1::Channel::try_from(i.channel).map_or("?", |c| c.as_str_name());
                out!(
                    "{}  {}  {:<26} {:<16} {}{}  {}  {}",
                    i.received_at.as_ref().map(rfc3339).unwrap_or_default(),
                    i.intake_id,
                    status,
                    chan,
                    if i.immediate_danger { "DANGER " } else { "" },
                    if i.child_name.is_empty() {
                        "(name unknown)"
                    } else {
                        &i.child_name
                    },
                    i.incident_unit_id,
                    i.case_id,
                );
            }
            if !response.next_page_token.is_empty() {
                out!("more: --page {}", response.next_page_token);
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::some_of;

    #[test]
    fn a_long_list_of_possible_duplicates_is_cut_to_the_first_ten_with_a_count() {
        let ids: Vec<String> = (0..300).map(|i| format!("case-{i}")).collect();
        let shown = some_of(&ids, 10);
        assert!(shown.starts_with("case-0, case-1,"), "{shown}");
        assert!(shown.contains("case-9 (and 290 more"), "{shown}");
        assert!(!shown.contains("case-10,"), "{shown}");
        assert_eq!(some_of(&ids[..3], 10), "case-0, case-1, case-2");
    }
}
