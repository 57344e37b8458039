//! The procedure's other steps on the case page, each a form shown in the
//! phases where the law has it next (Decree 56/2017 Đ27–Đ30): the detailed
//! assessment (Mẫu 03), the plan (Mẫu 04), the chair's decision on it
//! (Mẫu 05: approve or send back), interventions and the review (Mẫu 06),
//! closing (after a review, or an unfounded report or a child needing no
//! support after Mẫu 02/03, always with the chair's decision), reopening,
//! and notes. The form fields are named after the request's fields, so a
//! refused field lands beside its input.

use baove_proto::v1 as p;

use crate::i18n::tr;
use maud::{Markup, html};

use crate::cases::PageContext;
use crate::form::{Errors, FieldMap, FormData};
use crate::view::csrf_input;

/// A step of this module, by its path segment under `/ho-so/<id>/buoc/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Mẫu 03.
    DetailedAssessment,
    /// Mẫu 04.
    DraftPlan,
    /// Mẫu 05, approved.
    ApprovePlan,
    /// Mẫu 05, sent back.
    SendBackPlan,
    /// An intervention of the approved plan.
    Intervention,
    /// Mẫu 06.
    Review,
    /// Closing.
    Close,
    /// Reopening.
    Reopen,
    /// A note.
    Note,
}

/// Every step, in the order the page shows them.
pub const ALL: [Kind; 9] = [
    Kind::DetailedAssessment,
    Kind::DraftPlan,
    Kind::ApprovePlan,
    Kind::SendBackPlan,
    Kind::Intervention,
    Kind::Review,
    Kind::Close,
    Kind::Reopen,
    Kind::Note,
];

/// How many measures the plan form offers.
pub const PLAN_ROWS: usize = 3;

impl Kind {
    /// Its path segment.
    #[must_use]
    pub const fn segment(self) -> &'static str {
        match self {
            Self::DetailedAssessment => "mau-03",
            Self::DraftPlan => "mau-04",
            Self::ApprovePlan => "mau-05-duyet",
            Self::SendBackPlan => "mau-05-tra-lai",
            Self::Intervention => "can-thiep",
            Self::Review => "mau-06",
            Self::Close => "dong",
            Self::Reopen => "mo-lai",
            Self::Note => "ghi-chu",
        }
    }

    /// The step of a path segment.
    #[must_use]
    pub fn parse(segment: &str) -> Option<Self> {
        ALL.into_iter().find(|k| k.segment() == segment)
    }

    /// Its title, in the request's language.
    #[must_use]
    pub fn title(self) -> &'static str {
        match self {
            Self::DetailedAssessment => tr("Đánh giá chi tiết (Mẫu 03)"),
            Self::DraftPlan => tr("Kế hoạch hỗ trợ, can thiệp (Mẫu 04)"),
            Self::ApprovePlan => tr("Phê duyệt kế hoạch (Mẫu 05)"),
            Self::SendBackPlan => tr("Trả lại kế hoạch"),
            Self::Intervention => tr("Ghi nhận can thiệp"),
            Self::Review => tr("Đánh giá lại (Mẫu 06)"),
            Self::Close => tr("Đóng hồ sơ"),
            Self::Reopen => tr("Mở lại hồ sơ"),
            Self::Note => tr("Ghi chú"),
        }
    }

    /// Whether the step is offered in `phase`.
    #[must_use]
    pub fn offered(self, phase: i32) -> bool {
        use p::CasePhase as P;
        let phase = P::try_from(phase).unwrap_or(P::Unspecified);
        match self {
            Self::DetailedAssessment => phase == P::InitiallyAssessed,
            Self::DraftPlan => matches!(
                phase,
                P::DetailedAssessed | P::PlanSentBack | P::ReviewedRiskRemains
            ),
            Self::ApprovePlan | Self::SendBackPlan => phase == P::PlanAwaitingDecision,
            Self::Intervention | Self::Review => phase == P::PlanApproved,
            Self::Close => matches!(
                phase,
                P::InitiallyAssessed | P::DetailedAssessed | P::ReviewedNoRisk
            ),
            Self::Reopen => phase == P::Closed,
            Self::Note => phase != P::Unspecified,
        }
    }
}

/// The request fields of this module's forms: each form field is named
/// after its request field.
pub struct StepFields;

impl FieldMap for StepFields {
    fn form_field(path: &str) -> &'static str {
        match path {
            "summary" => "summary",
            "needs" => "needs",
            "minutes_ref" => "minutes_ref",
            "meeting_participants" => "meeting_participants",
            "keep_despite_residence_ref" => "keep_despite_residence_ref",
            "decision_ref" => "decision_ref",
            "reason" => "reason",
            "measure_id" => "measure_id",
            "description" => "description",
            "date" => "date",
            "grounds" => "grounds",
            "text" => "text",
            p if p.starts_with("measures") => "measures",
            p if p.starts_with("ratings") => "factor",
            _ => "",
        }
    }
    fn rule_vi(form_field: &str) -> Option<&'static str> {
        Some(match form_field {
            "measures" => tr(
                "Cần ít nhất một biện pháp: nội dung, người chịu trách nhiệm, thời hạn (năm-tháng-ngày).",
            ),
            "factor" => tr("Cần ít nhất một yếu tố nguy cơ có mức đánh giá."),
            "decision_ref" => tr("Ghi số, ngày quyết định của Chủ tịch UBND cấp xã."),
            "grounds" => tr("Chọn căn cứ đóng hồ sơ."),
            "date" => tr("Ngày dạng năm-tháng-ngày, ví dụ 2026-12-02."),
            "meeting_participants" => tr("Ghi tên những người đã họp đánh giá nhu cầu của trẻ."),
            _ => return None,
        })
    }
}

fn header(form: &FormData, case_id: &str) -> Option<p::CommandHeader> {
    Some(p::CommandHeader {
        request_id: form.get("request_id").to_owned(),
        case_id: case_id.to_owned(),
        expected_version: form.get("expected_version").parse().unwrap_or(0),
        officer_id: String::new(),
    })
}

fn ratings(form: &FormData) -> Vec<p::RiskRating> {
    let level = form.get("level").parse().unwrap_or(0);
    if form.get("factor").is_empty() && level == 0 {
        return vec![];
    }
    vec![p::RiskRating {
        factor: form.get("factor").to_owned(),
        level,
    }]
}

/// A request of one of this module's steps.
#[derive(Debug)]
pub enum Request {
    /// RecordDetailedAssessment.
    DetailedAssessment(p::RecordDetailedAssessmentRequest),
    /// DraftPlan.
    DraftPlan(p::DraftPlanRequest),
    /// ApprovePlan.
    ApprovePlan(p::ApprovePlanRequest),
    /// SendBackPlan.
    SendBackPlan(p::SendBackPlanRequest),
    /// RecordIntervention.
    Intervention(p::RecordInterventionRequest),
    /// RecordReview.
    Review(p::RecordReviewRequest),
    /// CloseCase.
    Close(p::CloseCaseRequest),
    /// ReopenCase.
    Reopen(p::ReopenCaseRequest),
    /// AddNote.
    Note(p::AddNoteRequest),
}

/// The request a posted step form makes.
#[must_use]
pub fn request(kind: Kind, form: &FormData, case_id: &str) -> Request {
    let header = header(form, case_id);
    let text = |name: &str| form.get(name).to_owned();
    match kind {
        Kind::DetailedAssessment => {
            Request::DetailedAssessment(p::RecordDetailedAssessmentRequest {
                header,
                summary: text("summary"),
                needs: text("needs"),
                meeting_participants: form
                    .get("meeting_participants")
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect(),
                minutes_ref: text("minutes_ref"),
                confirmed_abuse_types: vec![],
                unconfirmed_abuse_types: vec![],
            })
        }
        Kind::DraftPlan => Request::DraftPlan(p::DraftPlanRequest {
            header,
            measures: (1..=PLAN_ROWS)
                .map(|i| p::PlanMeasure {
                    id: format!("m{i}"),
                    description: text(&format!("measure{i}_description")),
                    responsible: text(&format!("measure{i}_responsible")),
                    due_date: text(&format!("measure{i}_due_date")),
                })
                .filter(|m| {
                    !(m.description.is_empty() && m.responsible.is_empty() && m.due_date.is_empty())
                })
                .collect(),
            keep_despite_residence_ref: text("keep_despite_residence_ref"),
        }),
        Kind::ApprovePlan => Request::ApprovePlan(p::ApprovePlanRequest {
            header,
            decision_ref: text("decision_ref"),
        }),
        Kind::SendBackPlan => Request::SendBackPlan(p::SendBackPlanRequest {
            header,
            reason: text("reason"),
        }),
        Kind::Intervention => Request::Intervention(p::RecordInterventionRequest {
            header,
            measure_id: text("measure_id"),
            description: text("description"),
            date: text("date"),
        }),
        Kind::Review => Request::Review(p::RecordReviewRequest {
            header,
            ratings: ratings(form),
            summary: text("summary"),
        }),
        Kind::Close => Request::Close(p::CloseCaseRequest {
            header,
            reason: text("reason"),
            grounds: form.get("grounds").parse().unwrap_or(0),
            decision_ref: text("decision_ref"),
        }),
        Kind::Reopen => Request::Reopen(p::ReopenCaseRequest {
            header,
            reason: text("reason"),
        }),
        Kind::Note => Request::Note(p::AddNoteRequest {
            header,
            text: text("text"),
        }),
    }
}

/// Grounds for closing, in the request's language.
pub fn close_grounds() -> [(p::CloseGrounds, &'static str); 3] {
    [
        (
            p::CloseGrounds::NoRiskAfterReview,
            tr("Đánh giá lại (Mẫu 06): không còn nguy cơ"),
        ),
        (
            p::CloseGrounds::Unfounded,
            tr("Thông báo không có cơ sở (sau Mẫu 02 hoặc Mẫu 03)"),
        ),
        (
            p::CloseGrounds::NoSupportNeeded,
            tr("Trẻ không cần hỗ trợ (sau Mẫu 02 hoặc Mẫu 03)"),
        ),
    ]
}

/// A labelled input; its id is the step's segment and the field's name, so
/// that two forms of one page never share an id.
fn field(
    prefix: &str,
    errors: &Errors,
    name: &str,
    label: &str,
    value: &str,
    area: bool,
) -> Markup {
    let id = format!("{prefix}-{name}");
    html! {
        div.field.invalid[!errors.of(name).is_empty()] {
            label for=(id) { (label) }
            @if area { textarea id=(id) name=(name) rows="2" { (value) } }
            @else { input type="text" id=(id) name=(name) value=(value); }
            @for e in errors.of(name) { p.error id=(format!("{id}-error")) role="alert" { (e) } }
        }
    }
}

/// The forms of the steps offered in the case's phase.
#[must_use]
pub fn forms(case: &p::Case, ctx: &PageContext<'_>) -> Markup {
    html! {
        @for kind in ALL {
            @if kind.offered(case.phase) {
                @let (form, errors) = ctx.step_form(kind);
                section.step id=(format!("step-{}", kind.segment())) {
                    h2 { (kind.title()) }
                    @if !errors.top.is_empty() {
                        div.errors role="alert" { @for e in &errors.top { p.error { (e) } } }
                    }
                    form method="post" action=(format!("/ho-so/{}/buoc/{}", case.case_id, kind.segment())) {
                        (csrf_input(ctx.csrf))
                        input type="hidden" name="request_id" value=(form.get("request_id"));
                        input type="hidden" name="expected_version" value=(case.version);
                        (fields(kind, case, &form, &errors))
                        button.primary type="submit" { (kind.title()) }
                    }
                }
            }
        }
    }
}

fn fields(kind: Kind, case: &p::Case, form: &FormData, errors: &Errors) -> Markup {
    let prefix = kind.segment();
    match kind {
        Kind::DetailedAssessment => html! {
            (field(prefix, errors, "summary", tr("Kết quả đánh giá"), form.get("summary"), true))
            (field(prefix, errors, "needs", tr("Nhu cầu của trẻ"), form.get("needs"), true))
            (field(prefix, errors, "meeting_participants", tr("Người tham gia họp (cách nhau bởi dấu phẩy)"), form.get("meeting_participants"), false))
            (field(prefix, errors, "minutes_ref", tr("Biên bản họp (số, ngày)"), form.get("minutes_ref"), false))
        },
        Kind::DraftPlan => html! {
            @for e in errors.of("measures") { p.error id=(format!("{prefix}-measures-error")) role="alert" { (e) } }
            @for i in 1..=PLAN_ROWS {
                fieldset {
                    legend { (tr("Biện pháp ")) (i) }
                    (field(prefix, errors, &format!("measure{i}_description"), tr("Nội dung"), form.get(&format!("measure{i}_description")), false))
                    (field(prefix, errors, &format!("measure{i}_responsible"), tr("Người, cơ quan thực hiện"), form.get(&format!("measure{i}_responsible")), false))
                    (field(prefix, errors, &format!("measure{i}_due_date"), tr("Thời hạn (năm-tháng-ngày)"), form.get(&format!("measure{i}_due_date")), false))
                }
            }
            (field(prefix, errors, "keep_despite_residence_ref", tr("Quyết định giữ hồ sơ tại xã này dù trẻ cư trú nơi khác (nếu có)"), form.get("keep_despite_residence_ref"), false))
        },
        Kind::ApprovePlan => html! {
            p { (tr("Người phê duyệt phải khác người lập kế hoạch.")) }
            (field(prefix, errors, "decision_ref", tr("Quyết định phê duyệt của Chủ tịch UBND xã (số, ngày)"), form.get("decision_ref"), false))
        },
        Kind::SendBackPlan | Kind::Reopen => html! {
            (field(prefix, errors, "reason", tr("Lý do"), form.get("reason"), true))
        },
        Kind::Intervention => html! {
            div.field.invalid[!errors.of("measure_id").is_empty()] {
                label for=(format!("{prefix}-measure_id")) { (tr("Biện pháp của kế hoạch")) }
                select id=(format!("{prefix}-measure_id")) name="measure_id" {
                    @for m in &case.plan_measures {
                        option value=(m.id) selected[form.get("measure_id") == m.id] { (m.id) ": " (m.description) }
                    }
                }
                @for e in errors.of("measure_id") { p.error role="alert" { (e) } }
            }
            (field(prefix, errors, "description", tr("Đã làm gì"), form.get("description"), true))
            (field(prefix, errors, "date", tr("Ngày (năm-tháng-ngày)"), form.get("date"), false))
        },
        Kind::Review => html! {
            (field(prefix, errors, "factor", tr("Yếu tố nguy cơ"), form.get("factor"), false))
            div.field {
                label for=(format!("{prefix}-level")) { (tr("Mức độ")) }
                select id=(format!("{prefix}-level")) name="level" {
                    option value="0" { (tr("— chọn —")) }
                    @for (level, name) in [(p::RiskLevel::High, tr("Cao")), (p::RiskLevel::Medium, tr("Trung bình")), (p::RiskLevel::Low, tr("Thấp"))] {
                        option value=(level as i32) selected[form.get("level") == (level as i32).to_string()] { (name) }
                    }
                }
            }
            (field(prefix, errors, "summary", tr("Kết luận"), form.get("summary"), true))
        },
        Kind::Close => html! {
            div.field.invalid[!errors.of("grounds").is_empty()] {
                label for=(format!("{prefix}-grounds")) { (tr("Căn cứ")) }
                select id=(format!("{prefix}-grounds")) name="grounds" {
                    @for (g, name) in close_grounds() {
                        option value=(g as i32) selected[form.get("grounds") == (g as i32).to_string()] { (name) }
                    }
                }
                @for e in errors.of("grounds") { p.error role="alert" { (e) } }
            }
            (field(prefix, errors, "reason", tr("Lý do"), form.get("reason"), true))
            (field(prefix, errors, "decision_ref", tr("Quyết định của Chủ tịch UBND xã (số, ngày)"), form.get("decision_ref"), false))
        },
        Kind::Note => html! {
            (field(prefix, errors, "text", tr("Ghi chú"), form.get("text"), true))
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> FormData {
        FormData(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn given_a_phase_then_the_steps_the_law_has_next_are_offered() {
        use p::CasePhase as P;
        let offered = |phase: P| -> Vec<Kind> {
            ALL.into_iter()
                .filter(|k| k.offered(phase as i32))
                .collect()
        };
        assert_eq!(
            offered(P::InitiallyAssessed),
            [Kind::DetailedAssessment, Kind::Close, Kind::Note]
        );
        assert_eq!(
            offered(P::DetailedAssessed),
            [Kind::DraftPlan, Kind::Close, Kind::Note]
        );
        assert_eq!(
            offered(P::PlanAwaitingDecision),
            [Kind::ApprovePlan, Kind::SendBackPlan, Kind::Note]
        );
        assert_eq!(
            offered(P::PlanApproved),
            [Kind::Intervention, Kind::Review, Kind::Note]
        );
        assert_eq!(offered(P::ReviewedNoRisk), [Kind::Close, Kind::Note]);
        assert_eq!(offered(P::Closed), [Kind::Reopen, Kind::Note]);
        for k in ALL {
            assert_eq!(Kind::parse(k.segment()), Some(k));
        }
    }

    #[test]
    fn given_a_plan_form_then_only_filled_rows_become_measures_with_their_ids() {
        let posted = form(&[
            ("request_id", "r"),
            ("expected_version", "9"),
            ("measure1_description", "Tư vấn tâm lý"),
            ("measure1_responsible", "Trung tâm CTXH"),
            ("measure1_due_date", "2026-12-20"),
            ("measure3_description", "Hỗ trợ học tập"),
        ]);
        let Request::DraftPlan(plan) = request(Kind::DraftPlan, &posted, "c") else {
            panic!("not a plan");
        };
        let ids: Vec<&str> = plan.measures.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["m1", "m3"]);
        assert_eq!(plan.header.map(|h| h.expected_version), Some(9));
    }

    #[test]
    fn given_a_refused_plan_then_its_measure_errors_land_beside_the_measures() {
        assert_eq!(StepFields::form_field("measures[0].due_date"), "measures");
        assert_eq!(StepFields::form_field("ratings"), "factor");
        assert_eq!(StepFields::form_field("header.request_id"), "");
    }
}
