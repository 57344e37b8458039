//! The officers' pages: their cases with deadlines by time left (overdue
//! first), and a case: phase, deadlines, referrals, the timeline of events
//! with who did what, and the next step's form. A step carries the case
//! version the officer saw: when someone else acted first the service
//! answers ABORTED and the page shows the case as it is now, never
//! overwriting.

use baove_proto::v1 as p;
use maud::{Markup, html};

use crate::form::{Errors, FieldMap, FormData};
use crate::view::{csrf_input, time_left, when};

/// The Vietnamese name of a phase: the step of Decree 56 that comes next.
#[must_use]
pub fn phase_vi(phase: i32) -> &'static str {
    use p::CasePhase as P;
    match P::try_from(phase).unwrap_or(P::Unspecified) {
        P::AwaitingInitialAssessment => "Chờ đánh giá ban đầu (Mẫu 02)",
        P::InitiallyAssessed => "Đã đánh giá ban đầu; chờ đánh giá chi tiết (Mẫu 03)",
        P::DetailedAssessed => "Đã đánh giá chi tiết; chờ lập kế hoạch (Mẫu 04)",
        P::PlanAwaitingDecision => "Kế hoạch chờ Chủ tịch UBND xã phê duyệt (Mẫu 05)",
        P::PlanSentBack => "Kế hoạch bị trả lại; lập lại",
        P::PlanApproved => "Kế hoạch đã phê duyệt; đang can thiệp, chờ đánh giá (Mẫu 06)",
        P::ReviewedRiskRemains => "Đánh giá lại: còn nguy cơ; lập kế hoạch mới",
        P::ReviewedNoRisk => "Đánh giá lại: hết nguy cơ; có thể đóng",
        P::Closed => "Đã đóng",
        P::Unspecified => "?",
    }
}

/// The Vietnamese name of a deadline.
#[must_use]
pub fn deadline_vi(kind: i32) -> &'static str {
    use p::DeadlineKind as K;
    match K::try_from(kind).unwrap_or(K::Unspecified) {
        K::Emergency => "Can thiệp khẩn cấp trong 12 giờ",
        K::PlanDrafted => "Lập kế hoạch trong 5 ngày làm việc",
        K::PlanApproved => "Phê duyệt kế hoạch trong 7 ngày làm việc",
        K::Unspecified => "?",
    }
}

/// The Vietnamese name of a stored event type, for the timeline.
#[must_use]
pub fn event_vi(event_type: &str) -> &str {
    match event_type {
        "CaseOpened" => "Mở hồ sơ từ thông báo (Mẫu 01)",
        "IntakeAttached" => "Bổ sung thông báo mới",
        "OfficerAssigned" => "Phân công cán bộ",
        "InitialAssessmentRecorded" => "Đánh giá ban đầu (Mẫu 02)",
        "EmergencyMeasureRecorded" => "Biện pháp khẩn cấp",
        "DetailedAssessmentRecorded" => "Đánh giá chi tiết (Mẫu 03)",
        "PlanDrafted" => "Lập kế hoạch (Mẫu 04)",
        "PlanApproved" => "Phê duyệt kế hoạch (Mẫu 05)",
        "PlanSentBack" => "Trả lại kế hoạch",
        "InterventionRecorded" => "Can thiệp",
        "ReviewRecorded" => "Đánh giá lại (Mẫu 06)",
        "CaseClosed" => "Đóng hồ sơ",
        "CaseReopened" => "Mở lại hồ sơ",
        "NoteAdded" => "Ghi chú",
        "DeadlineSet" => "Bắt đầu tính thời hạn",
        "DeadlineMet" => "Đáp ứng thời hạn",
        "DeadlineWarned" => "Cảnh báo sắp hết thời hạn",
        "DeadlineMissed" => "Quá thời hạn",
        "DeadlineCleared" => "Thời hạn không còn áp dụng",
        "ReferralRequested" => "Đề nghị chuyển gửi",
        "ReferralStepRecorded" => "Cập nhật chuyển gửi",
        other => other,
    }
}

/// Cases in the order an officer works them: overdue first, then by the
/// soonest open deadline, then those without one (newest first, as
/// listed).
pub fn sort_by_urgency(cases: &mut [p::CaseSummary]) {
    cases.sort_by_key(|c| {
        (
            !c.overdue,
            c.next_due_at.as_ref().map_or(i64::MAX, |t| t.seconds),
        )
    });
}

/// How urgent a deadline `due` is at `now`: a CSS class.
#[must_use]
pub fn urgency(due: i64, now: i64) -> &'static str {
    if due < now {
        "overdue"
    } else if due - now <= 2 * 3600 {
        "due-soon"
    } else {
        "due-later"
    }
}

/// The case list.
#[must_use]
pub fn list(cases: &[p::CaseSummary], now: i64) -> Markup {
    html! {
        @if cases.is_empty() { p { "Không có hồ sơ nào trong phạm vi của bạn." } }
        @else {
            table #cases {
                thead { tr { th { "Hồ sơ" } th { "Giai đoạn" } th { "Thời hạn gần nhất" } th { "Mở lúc" } th { "Cán bộ" } } }
                tbody {
                    @for c in cases {
                        @let due = c.next_due_at.as_ref().map(|t| t.seconds);
                        tr class=(due.map_or("", |d| urgency(d, now))) {
                            td {
                                a href=(format!("/ho-so/{}", c.case_id)) { (c.case_id) }
                                @if c.immediate_danger { " " span.badge { "nguy hiểm ngay" } }
                            }
                            td { (phase_vi(c.phase)) }
                            td.due {
                                @if let Some(d) = due {
                                    (when(c.next_due_at.as_ref())) br; strong { (time_left(d, now)) }
                                } @else { "—" }
                            }
                            td { (when(c.opened_at.as_ref())) }
                            td { (c.officer_id) }
                        }
                    }
                }
            }
        }
    }
}

/// One event of the timeline.
#[derive(Clone, Debug)]
pub struct TimelineEntry {
    /// Its seq in the case's log.
    pub seq: u64,
    /// The stored type.
    pub event_type: String,
    /// When recorded, Unix ms.
    pub recorded_at_ms: i64,
    /// Who: user id and role.
    pub actor: String,
}

/// The Mẫu 02 form's fields.
pub struct AssessmentFields;

impl FieldMap for AssessmentFields {
    fn form_field(path: &str) -> &'static str {
        match path {
            p if p.starts_with("ratings") => "factor",
            "summary" => "summary",
            p if p.contains("abuse_types") => "confirmed",
            _ => "",
        }
    }
    fn rule_vi(form_field: &str) -> Option<&'static str> {
        match form_field {
            "factor" => Some("Cần ít nhất một yếu tố nguy cơ có mức đánh giá."),
            _ => None,
        }
    }
}

/// The RecordInitialAssessment request of a posted Mẫu 02 form.
#[must_use]
pub fn assessment_request(form: &FormData, case_id: &str) -> p::RecordInitialAssessmentRequest {
    let factor = form.get("factor");
    let level = form.get("level").parse::<i32>().unwrap_or(0);
    p::RecordInitialAssessmentRequest {
        header: Some(p::CommandHeader {
            request_id: form.get("request_id").to_owned(),
            case_id: case_id.to_owned(),
            expected_version: form.get("expected_version").parse().unwrap_or(0),
            officer_id: String::new(),
        }),
        ratings: if factor.is_empty() && level == 0 {
            vec![]
        } else {
            vec![p::RiskRating {
                factor: factor.to_owned(),
                level,
            }]
        },
        emergency_measures_apply: form.get("emergency") == "yes",
        summary: form.get("summary").to_owned(),
        confirmed_abuse_types: form
            .all("confirmed")
            .iter()
            .filter_map(|v| v.parse().ok())
            .collect(),
        unconfirmed_abuse_types: vec![],
    }
}

/// The case page.
#[must_use]
pub fn page(
    case: &p::Case,
    timeline: &[TimelineEntry],
    now: i64,
    csrf: &str,
    form: &FormData,
    errors: &Errors,
) -> Markup {
    let field_errors = |name: &str| {
        html! { @for e in errors.of(name) { p.error id=(format!("{name}-error")) role="alert" { (e) } } }
    };
    html! {
        dl.case #case {
            dt { "Giai đoạn" } dd #phase { (phase_vi(case.phase)) }
            dt { "Xã chịu trách nhiệm" } dd { (case.responsible_unit_id) }
            dt { "Nhận thông tin lúc" } dd { (when(case.received_at.as_ref())) }
            dt { "Cán bộ phụ trách" } dd { @if case.officer_id.is_empty() { "chưa phân công" } @else { (case.officer_id) } }
            @if case.immediate_danger { dt { "Nguy hiểm" } dd.danger { "Trẻ đang gặp nguy hiểm ngay" } }
            @if case.caregiver_is_alleged_abuser { dt { "Người chăm sóc" } dd.danger { "là người bị tố cáo xâm hại" } }
            @if !case.possible_duplicate_case_ids.is_empty() {
                dt { "Có thể trùng" } dd { (case.possible_duplicate_case_ids.join(", ")) }
            }
            dt { "Phiên bản" } dd { (case.version) }
        }
        h2 { "Thời hạn" }
        @if case.deadlines.is_empty() { p { "Không có thời hạn." } }
        @else {
            table #deadlines {
                thead { tr { th { "Thời hạn" } th { "Hạn chót" } th { "Tình trạng" } } }
                tbody {
                    @for d in &case.deadlines {
                        @let due = d.due_at.as_ref().map_or(0, |t| t.seconds);
                        @let open = d.state == p::DeadlineState::Open as i32;
                        tr class=(if open { urgency(due, now) } else { "closed" }) {
                            td { (deadline_vi(d.kind)) }
                            td { (when(d.due_at.as_ref())) }
                            td {
                                @if open { strong { (time_left(due, now)) } }
                                @else if d.state == p::DeadlineState::Met as i32 {
                                    @if d.missed { "đã thực hiện, trễ hạn" } @else { "đã thực hiện đúng hạn" }
                                } @else { "không còn áp dụng" }
                            }
                        }
                    }
                }
            }
        }
        @if !case.referrals.is_empty() {
            h2 { "Chuyển gửi" }
            ul #referrals {
                @for r in &case.referrals { li { (r.referral_id) " → " (r.to_agency_id) } }
            }
        }
        @if case.phase == p::CasePhase::AwaitingInitialAssessment as i32 {
            h2 { "Đánh giá ban đầu (Mẫu 02)" }
            @if !errors.is_empty() {
                div.errors role="alert" #errors { @for e in &errors.top { p.error { (e) } } }
            }
            form method="post" action=(format!("/ho-so/{}/mau-02", case.case_id)) {
                (csrf_input(csrf))
                input type="hidden" name="request_id" value=(form.get("request_id"));
                input type="hidden" name="expected_version" value=(case.version);
                div.field {
                    label for="factor" { "Yếu tố nguy cơ" }
                    input type="text" id="factor" name="factor" value=(form.get("factor"));
                    label for="level" { "Mức độ" }
                    select id="level" name="level" {
                        option value="0" { "— chọn —" }
                        option value=(p::RiskLevel::High as i32) { "Cao" }
                        option value=(p::RiskLevel::Medium as i32) { "Trung bình" }
                        option value=(p::RiskLevel::Low as i32) { "Thấp" }
                    }
                    (field_errors("factor"))
                }
                fieldset {
                    legend { "Cần áp dụng biện pháp khẩn cấp?" }
                    label.check { input type="radio" name="emergency" value="yes" checked; " Có: thời hạn 12 giờ tiếp tục chạy" }
                    label.check { input type="radio" name="emergency" value="no"; " Không" }
                }
                div.field {
                    label for="summary" { "Tóm tắt" }
                    textarea id="summary" name="summary" rows="3" { (form.get("summary")) }
                    (field_errors("summary"))
                }
                button.primary type="submit" { "Ghi đánh giá ban đầu" }
            }
        }
        h2 { "Diễn biến" }
        ol.timeline #timeline {
            @for e in timeline {
                li {
                    span.seq { "#" (e.seq) } " "
                    time { (when(Some(&prost_types::Timestamp { seconds: e.recorded_at_ms.div_euclid(1000), nanos: 0 }))) } " · "
                    strong { (event_vi(&e.event_type)) } " · " (e.actor)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(id: &str, overdue: bool, due: Option<i64>) -> p::CaseSummary {
        p::CaseSummary {
            case_id: id.into(),
            overdue,
            next_due_at: due.map(|seconds| prost_types::Timestamp { seconds, nanos: 0 }),
            ..p::CaseSummary::default()
        }
    }

    #[test]
    fn given_cases_then_overdue_come_first_then_the_soonest_deadline() {
        let mut cases = vec![
            summary("none", false, None),
            summary("later", false, Some(900)),
            summary("overdue", true, Some(100)),
            summary("soon", false, Some(500)),
        ];
        sort_by_urgency(&mut cases);
        let order: Vec<&str> = cases.iter().map(|c| c.case_id.as_str()).collect();
        assert_eq!(order, ["overdue", "soon", "later", "none"]);
    }

    #[test]
    fn given_a_deadline_then_its_urgency_follows_the_time_left() {
        assert_eq!(urgency(100, 200), "overdue");
        assert_eq!(urgency(200 + 2 * 3600, 200), "due-soon");
        assert_eq!(urgency(201 + 2 * 3600, 200), "due-later");
    }

    #[test]
    fn given_a_posted_assessment_then_the_request_carries_the_version_seen() {
        let form = FormData(vec![
            ("request_id".into(), "r-2".into()),
            ("expected_version".into(), "4".into()),
            ("factor".into(), "bị đánh".into()),
            ("level".into(), "1".into()),
            ("emergency".into(), "yes".into()),
        ]);
        let request = assessment_request(&form, "c-1");
        let header = request.header.unwrap_or_default();
        assert_eq!(
            (header.case_id.as_str(), header.expected_version),
            ("c-1", 4)
        );
        assert_eq!(request.ratings.len(), 1);
        assert!(request.emergency_measures_apply);
        let empty = assessment_request(&FormData::default(), "c-1");
        assert!(empty.ratings.is_empty(), "no invented rating");
    }
}
