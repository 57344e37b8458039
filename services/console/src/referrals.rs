//! The police's and agencies' inbox: the referrals sent to their agency,
//! the acknowledgement deadline counting down, and the step each allows
//! (acknowledge, accept, decline with a reason, report the outcome,
//! complete). The page updates itself live: `console.js` listens to the
//! server-sent events of `/hop-thu/su-kien` (fed by WatchInbox) and
//! reloads the table; without JavaScript, reloading the page shows the
//! same.

use baove_proto::v1 as p;

use crate::i18n::tr;
use maud::{Markup, html};

use crate::cases::{referral_status_vi, service_vi};
use crate::form::{Errors, FieldMap, FormData};
use crate::view::{csrf_input, time_left, when};

/// A step an agency takes on a referral, by its path segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Xác nhận đã nhận.
    Acknowledge,
    /// Nhận xử lý.
    Accept,
    /// Từ chối (with a reason).
    Decline,
    /// Báo kết quả.
    ReportOutcome,
    /// Hoàn thành.
    Complete,
}

impl Action {
    /// The action of a path segment.
    #[must_use]
    pub fn parse(segment: &str) -> Option<Self> {
        Some(match segment {
            "xac-nhan" => Self::Acknowledge,
            "nhan" => Self::Accept,
            "tu-choi" => Self::Decline,
            "ket-qua" => Self::ReportOutcome,
            "hoan-thanh" => Self::Complete,
            _ => return None,
        })
    }

    /// Its path segment.
    #[must_use]
    pub const fn segment(self) -> &'static str {
        match self {
            Self::Acknowledge => "xac-nhan",
            Self::Accept => "nhan",
            Self::Decline => "tu-choi",
            Self::ReportOutcome => "ket-qua",
            Self::Complete => "hoan-thanh",
        }
    }

    /// The steps a referral in `status` allows.
    #[must_use]
    pub fn allowed(status: i32) -> &'static [Self] {
        use p::ReferralStatus as S;
        match S::try_from(status).unwrap_or(S::Unspecified) {
            S::Offered => &[Self::Acknowledge, Self::Decline],
            S::Acknowledged => &[Self::Accept, Self::Decline],
            S::Accepted => &[Self::ReportOutcome],
            S::OutcomeReported => &[Self::Complete],
            _ => &[],
        }
    }
}

/// The inbox forms' fields.
pub struct StepFields;

impl FieldMap for StepFields {
    fn form_field(path: &str) -> &'static str {
        match path {
            "reason" => "reason",
            "outcome" => "outcome",
            _ => "",
        }
    }
    fn rule_vi(form_field: &str) -> Option<&'static str> {
        match form_field {
            "reason" => Some(tr("Ghi lý do từ chối.")),
            "outcome" => Some(tr("Ghi kết quả xử lý.")),
            _ => None,
        }
    }
}

/// The header of a step on a posted form.
#[must_use]
pub fn header(form: &FormData, referral_id: &str) -> p::ReferralHeader {
    p::ReferralHeader {
        request_id: form.get("request_id").to_owned(),
        referral_id: referral_id.to_owned(),
        expected_version: form.get("expected_version").parse().unwrap_or(0),
        user_id: String::new(),
        agency_id: String::new(),
    }
}

/// The inbox table (also served alone, for the live update).
#[must_use]
pub fn table(
    referrals: &[p::Referral],
    now: i64,
    csrf: &str,
    errors: Option<(&str, &Errors)>,
) -> Markup {
    html! {
        div #inbox {
            @if referrals.is_empty() { p { (tr("Hộp thư trống.")) } }
            @else {
                table {
                    thead { tr { th { (tr("Chuyển gửi")) } th { (tr("Từ")) } th { (tr("Đề nghị")) } th { (tr("Tình trạng")) } th { (tr("Hạn xác nhận")) } th { (tr("Việc cần làm")) } } }
                    tbody {
                        @for r in referrals {
                            @let offered = r.status == p::ReferralStatus::Offered as i32;
                            @let due = r.ack_due_at.as_ref().map_or(0, |t| t.seconds);
                            tr id=(format!("ref-{}", r.referral_id)) class=[(offered && due < now).then_some("overdue")] {
                                td {
                                    (r.referral_id) br; (tr("hồ sơ ")) (r.case_id)
                                    @if r.urgent { " " span.badge { (tr("khẩn")) } }
                                    @if r.escalated { " " span.badge { (tr("đã báo cấp trên")) } }
                                }
                                td { (r.from_unit_id) br; (when(r.offered_at.as_ref())) }
                                td {
                                    @match &r.kind { Some(p::referral::Kind::Service(sv)) => (service_vi(*sv)), Some(p::referral::Kind::TransferToUnitId(u)) => { (tr("nhận hồ sơ chuyển từ ")) (u) }, None => "" }
                                    br; small { (r.reason) }
                                }
                                td.status { (referral_status_vi(r.status)) }
                                td { @if offered { strong { (time_left(due, now)) } br; (when(r.ack_due_at.as_ref())) } }
                                td {
                                    @if let Some((id, e)) = errors { @if id == r.referral_id { @for m in &e.top { p.error role="alert" { (m) } } } }
                                    @for action in Action::allowed(r.status) { (step_form(r, *action, csrf, errors)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn step_form(
    r: &p::Referral,
    action: Action,
    csrf: &str,
    errors: Option<(&str, &Errors)>,
) -> Markup {
    let errors = errors
        .filter(|(id, _)| *id == r.referral_id)
        .map(|(_, e)| e);
    let field_errors = |name: &str| {
        html! { @if let Some(e) = errors { @for m in e.of(name) { p.error role="alert" { (m) } } } }
    };
    let request_id = uuid::Uuid::now_v7().to_string();
    html! {
        form.step method="post" action=(format!("/hop-thu/{}/{}", r.referral_id, action.segment())) {
            (csrf_input(csrf))
            input type="hidden" name="request_id" value=(request_id);
            input type="hidden" name="expected_version" value=(r.version);
            @match action {
                Action::Acknowledge => button.primary type="submit" { (tr("Xác nhận đã nhận")) },
                Action::Accept => button.primary type="submit" { (tr("Nhận xử lý")) },
                Action::Complete => button.primary type="submit" { (tr("Hoàn thành")) },
                Action::Decline => {
                    label for=(format!("reason-{}", r.referral_id)) { (tr("Lý do từ chối")) }
                    input type="text" id=(format!("reason-{}", r.referral_id)) name="reason";
                    (field_errors("reason"))
                    button type="submit" { (tr("Từ chối")) }
                }
                Action::ReportOutcome => {
                    label for=(format!("outcome-{}", r.referral_id)) { (tr("Kết quả")) }
                    input type="text" id=(format!("outcome-{}", r.referral_id)) name="outcome";
                    label for=(format!("reference-{}", r.referral_id)) { (tr("Số hồ sơ, văn bản")) }
                    input type="text" id=(format!("reference-{}", r.referral_id)) name="reference";
                    (field_errors("outcome"))
                    button.primary type="submit" { (tr("Báo kết quả")) }
                }
            }
        }
    }
}

/// Where an inbox's list stood: for each referral partition it was read
/// from, its active process (by its index among the processes given) and
/// the position of its log the list reflects.
pub type Positions = Vec<(usize, u64)>;

/// The inbox page: the table, live from the change after `positions` (the
/// referral log's position the list reflects; in a national console over
/// several partitions, each partition's: [`seen`]).
#[must_use]
pub fn page(
    referrals: &[p::Referral],
    positions: &[(usize, u64)],
    now: i64,
    csrf: &str,
    errors: Option<(&str, &Errors)>,
) -> Markup {
    let from = match positions {
        [(_, position)] => (position + 1).to_string(),
        several => seen(several),
    };
    html! {
        p.live #live data-events=(format!("/hop-thu/su-kien?tu={from}")) data-fragment="/hop-thu/bang" data-target="inbox" data-every="60" {
            (tr("Hộp thư tự cập nhật khi có chuyển gửi mới."))
        }
        (table(referrals, now, csrf, errors))
    }
}

/// The positions of several partitions' logs seen so far, as the live
/// updates' start (`tu`) and each update's id: `i:position` for each
/// partition's active `i`, comma-separated.
#[must_use]
pub fn seen(positions: &[(usize, u64)]) -> String {
    positions
        .iter()
        .map(|(i, position)| format!("{i}:{position}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The positions [`seen`] wrote; `None` when `text` is not of that form.
#[must_use]
pub fn parse_seen(text: &str) -> Option<Positions> {
    text.split(',')
        .map(|part| {
            let (i, position) = part.trim().split_once(':')?;
            Some((i.parse().ok()?, position.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_several_partitions_positions_then_they_read_back_as_written() {
        let positions = vec![(0, 41), (3, 7)];
        assert_eq!(seen(&positions), "0:41,3:7");
        assert_eq!(parse_seen(&seen(&positions)), Some(positions.clone()));
        for garbled in ["", "41", "0:41,", "0:x", "a:1", "0:41;3:7"] {
            assert_eq!(parse_seen(garbled), None, "{garbled:?}");
        }
        let html = page(&[], &positions, 200, "tok", None).into_string();
        assert!(
            html.contains(r#"data-events="/hop-thu/su-kien?tu=0:41,3:7""#),
            "{html}"
        );
    }

    #[test]
    fn given_a_referral_status_then_only_its_next_steps_are_offered() {
        use p::ReferralStatus as S;
        assert_eq!(
            Action::allowed(S::Offered as i32),
            [Action::Acknowledge, Action::Decline]
        );
        assert_eq!(
            Action::allowed(S::Acknowledged as i32),
            [Action::Accept, Action::Decline]
        );
        assert_eq!(Action::allowed(S::Accepted as i32), [Action::ReportOutcome]);
        assert!(Action::allowed(S::Completed as i32).is_empty());
        for a in [
            Action::Acknowledge,
            Action::Accept,
            Action::Decline,
            Action::ReportOutcome,
            Action::Complete,
        ] {
            assert_eq!(Action::parse(a.segment()), Some(a));
        }
        assert_eq!(Action::parse("xoa"), None);
    }

    #[test]
    fn given_an_offered_referral_past_its_acknowledgement_time_then_its_row_is_overdue() {
        let r = p::Referral {
            referral_id: "r-1".into(),
            status: p::ReferralStatus::Offered as i32,
            ack_due_at: Some(prost_types::Timestamp {
                seconds: 100,
                nanos: 0,
            }),
            version: 3,
            ..p::Referral::default()
        };
        let html = table(&[r], 200, "tok", None).into_string();
        assert!(html.contains(r#"class="overdue""#), "{html}");
        assert!(html.contains("quá hạn"));
        assert!(html.contains(r#"action="/hop-thu/r-1/xac-nhan""#));
        assert!(html.contains(r#"name="expected_version" value="3""#));
    }

    #[test]
    fn given_the_list_at_a_log_position_then_the_live_updates_start_after_it() {
        let html = page(&[], &[(2, 41)], 200, "tok", None).into_string();
        assert!(
            html.contains(r#"data-events="/hop-thu/su-kien?tu=42""#),
            "{html}"
        );
    }
}
