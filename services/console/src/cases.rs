//! The officers' pages: their cases with deadlines by time left (overdue
//! first), and a case: phase, deadlines, referrals, the timeline of events
//! with who did what, and the next step's form. A step carries the case
//! version the officer saw: when someone else acted first the service
//! answers ABORTED and the page shows the case as it is now, never
//! overwriting.

use baove_proto::v1 as p;

use crate::i18n::{tr, trf};
use maud::{Markup, html};

use crate::form::{Errors, FieldMap, FormData};
use crate::view::{csrf_input, time_left, when};

/// The Vietnamese name of a phase: the step of Decree 56 that comes next.
#[must_use]
pub fn phase_vi(phase: i32) -> &'static str {
    use p::CasePhase as P;
    match P::try_from(phase).unwrap_or(P::Unspecified) {
        P::AwaitingInitialAssessment => tr("Chờ đánh giá ban đầu (Mẫu 02)"),
        P::InitiallyAssessed => tr("Đã đánh giá ban đầu; chờ đánh giá chi tiết (Mẫu 03)"),
        P::DetailedAssessed => tr("Đã đánh giá chi tiết; chờ lập kế hoạch (Mẫu 04)"),
        P::PlanAwaitingDecision => tr("Kế hoạch chờ Chủ tịch UBND xã phê duyệt (Mẫu 05)"),
        P::PlanSentBack => tr("Kế hoạch bị trả lại; lập lại"),
        P::PlanApproved => tr("Kế hoạch đã phê duyệt; đang can thiệp, chờ đánh giá (Mẫu 06)"),
        P::ReviewedRiskRemains => tr("Đánh giá lại: còn nguy cơ; lập kế hoạch mới"),
        P::ReviewedNoRisk => tr("Đánh giá lại: hết nguy cơ; có thể đóng"),
        P::Closed => tr("Đã đóng"),
        P::Unspecified => "?",
    }
}

/// The Vietnamese name of a deadline.
#[must_use]
pub fn deadline_vi(kind: i32) -> &'static str {
    use p::DeadlineKind as K;
    match K::try_from(kind).unwrap_or(K::Unspecified) {
        K::Emergency => tr("Can thiệp khẩn cấp trong 12 giờ"),
        K::PlanDrafted => tr("Lập kế hoạch trong 5 ngày làm việc"),
        K::PlanApproved => tr("Phê duyệt kế hoạch trong 7 ngày làm việc"),
        K::Unspecified => "?",
    }
}

/// The Vietnamese name of a stored event type, for the timeline.
#[must_use]
pub fn event_vi(event_type: &str) -> &str {
    match event_type {
        "CaseOpened" => tr("Mở hồ sơ từ thông báo (Mẫu 01)"),
        "IntakeAttached" => tr("Bổ sung thông báo mới"),
        "OfficerAssigned" => tr("Phân công cán bộ"),
        "InitialAssessmentRecorded" => tr("Đánh giá ban đầu (Mẫu 02)"),
        "EmergencyMeasureRecorded" => tr("Biện pháp khẩn cấp"),
        "DetailedAssessmentRecorded" => tr("Đánh giá chi tiết (Mẫu 03)"),
        "PlanDrafted" => tr("Lập kế hoạch (Mẫu 04)"),
        "PlanApproved" => tr("Phê duyệt kế hoạch (Mẫu 05)"),
        "PlanSentBack" => tr("Trả lại kế hoạch"),
        "InterventionRecorded" => tr("Can thiệp"),
        "ReviewRecorded" => tr("Đánh giá lại (Mẫu 06)"),
        "CaseClosed" => tr("Đóng hồ sơ"),
        "CaseReopened" => tr("Mở lại hồ sơ"),
        "NoteAdded" => tr("Ghi chú"),
        "DeadlineSet" => tr("Bắt đầu tính thời hạn"),
        "DeadlineMet" => tr("Đáp ứng thời hạn"),
        "DeadlineWarned" => tr("Cảnh báo sắp hết thời hạn"),
        "DeadlineMissed" => tr("Quá thời hạn"),
        "DeadlineCleared" => tr("Thời hạn không còn áp dụng"),
        "ReferralRequested" => tr("Đề nghị chuyển gửi"),
        "ReferralStepRecorded" => tr("Cập nhật chuyển gửi"),
        "PrivateTextErased" => tr("Xoá thông tin riêng tư"),
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

/// The case list's filters (a GET form: they stay in the address).
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct ListFilter {
    /// Only the cases assigned to me.
    #[serde(rename = "cua-toi", default)]
    pub mine: Option<String>,
    /// Only cases with a missed deadline not yet met.
    #[serde(rename = "qua-han", default)]
    pub overdue: Option<String>,
}

impl ListFilter {
    /// The query string of these filters ("" for none).
    #[must_use]
    pub fn query(&self) -> String {
        let mut parts = Vec::new();
        if self.mine.is_some() {
            parts.push("cua-toi=1");
        }
        if self.overdue.is_some() {
            parts.push("qua-han=1");
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    }
}

/// The case list, with its filters; it reloads itself every minute (the
/// time left, new cases).
#[must_use]
pub fn list(cases: &[p::CaseSummary], now: i64, filter: &ListFilter) -> Markup {
    html! {
        form.filters method="get" action="/ho-so" {
            label.check { input type="checkbox" id="cua-toi" name="cua-toi" value="1" checked[filter.mine.is_some()]; (tr(" Chỉ hồ sơ tôi phụ trách")) }
            label.check { input type="checkbox" id="qua-han" name="qua-han" value="1" checked[filter.overdue.is_some()]; (tr(" Chỉ hồ sơ quá hạn")) }
            button type="submit" { (tr("Lọc")) }
        }
        p.live data-fragment=(format!("/ho-so{}", filter.query())) data-target="cases" data-every="60" data-events="/ho-so/canh-bao" {
            (tr("Danh sách tự cập nhật mỗi phút, và ngay khi có cảnh báo thời hạn."))
        }
        @if cases.is_empty() { p #cases { (tr("Không có hồ sơ nào khớp trong phạm vi của bạn.")) } }
        @else {
            table #cases {
                thead { tr { th { (tr("Hồ sơ")) } th { (tr("Giai đoạn")) } th { (tr("Thời hạn gần nhất")) } th { (tr("Mở lúc")) } th { (tr("Cán bộ")) } } }
                tbody {
                    @for c in cases {
                        @let due = c.next_due_at.as_ref().map(|t| t.seconds);
                        tr id=(format!("case-{}", c.case_id)) class=(if c.overdue { "overdue" } else { due.map_or("", |d| urgency(d, now)) }) {
                            td {
                                a href=(format!("/ho-so/{}", c.case_id)) { (c.case_id) }
                                @if c.immediate_danger { " " span.badge { (tr("nguy hiểm ngay")) } }
                                @if c.overdue { " " span.badge.missed { (tr("trễ hạn")) } }
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

/// What an event of the timeline did, in a few Vietnamese words: which
/// deadline, which measure, to which agency, on what ground (empty when
/// the event's name says it all).
#[must_use]
pub fn event_detail(event: &p::CaseEvent) -> String {
    use p::case_event::Event as E;
    let measure = |kind: i32| {
        measures()
            .iter()
            .find(|(k, _)| *k as i32 == kind)
            .map_or("?", |(_, n)| n)
    };
    match &event.event {
        Some(E::DeadlineSet(d)) => trf(
            "{0}, hạn {1}",
            &[&deadline_vi(d.kind), &when(d.due_at.as_ref())],
        ),
        Some(E::DeadlineMet(d)) => format!(
            "{}{}",
            deadline_vi(d.kind),
            if d.late { tr(", trễ hạn") } else { "" }
        ),
        Some(E::DeadlineWarned(d)) => deadline_vi(d.kind).to_owned(),
        Some(E::DeadlineMissed(d)) => deadline_vi(d.kind).to_owned(),
        Some(E::DeadlineCleared(d)) => deadline_vi(d.kind).to_owned(),
        Some(E::OfficerAssigned(a)) => trf("cho {0}", &[&a.officer_id]),
        Some(E::InitialAssessmentRecorded(a)) => {
            if a.emergency_measures_apply {
                tr("cần can thiệp khẩn cấp").to_owned()
            } else {
                tr("không cần can thiệp khẩn cấp").to_owned()
            }
        }
        Some(E::EmergencyMeasureRecorded(m)) => {
            trf("{0}, quyết định {1}", &[&measure(m.kind), &m.decision_ref])
        }
        Some(E::ReferralRequested(r)) => trf("đến {0}", &[&r.to_agency_id]),
        Some(E::ReferralStepRecorded(r)) => {
            format!("{}: {}", r.agency_id, referral_step_vi(r.step))
        }
        Some(E::CaseClosed(c)) => trf("quyết định {0}", &[&c.decision_ref]),
        Some(E::PrivateTextErased(e)) => trf("căn cứ: {0}", &[&e.reason]),
        Some(E::NoteAdded(n)) => private_text(&n.text).to_owned(),
        _ => String::new(),
    }
}

/// A case's private text as the service gave it: opened, or erased.
fn private_text(text: &str) -> &str {
    if text == "[erased]" {
        tr("(đã xoá theo quyết định xoá thông tin)")
    } else {
        text
    }
}

/// The Vietnamese name of a step of a referral.
#[must_use]
pub fn referral_step_vi(step: i32) -> &'static str {
    use p::ReferralStep as S;
    match S::try_from(step).unwrap_or(S::Unspecified) {
        S::Requested => tr("đề nghị"),
        S::Offered => tr("đã gửi"),
        S::Acknowledged => tr("xác nhận đã nhận"),
        S::Accepted => tr("nhận xử lý"),
        S::Declined => tr("từ chối"),
        S::OutcomeReported => tr("báo kết quả"),
        S::Completed => tr("hoàn thành"),
        S::Revoked => tr("thu hồi"),
        S::Escalated => tr("báo cấp trên (quá hạn xác nhận)"),
        S::Unspecified => "?",
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
    /// What it did ([`event_detail`]).
    pub detail: String,
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
            "factor" => Some(tr("Cần ít nhất một yếu tố nguy cơ có mức đánh giá.")),
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

/// Kinds of emergency measure (Đ31), in the request's language.
pub fn measures() -> [(p::MeasureKind, &'static str); 4] {
    [
        (p::MeasureKind::MedicalCare, tr("Chăm sóc y tế")),
        (
            p::MeasureKind::SafeShelter,
            tr("Bố trí nơi tạm trú an toàn"),
        ),
        (
            p::MeasureKind::TemporarySeparation,
            tr("Tạm thời cách ly trẻ khỏi người xâm hại (Mẫu 07)"),
        ),
        (p::MeasureKind::Other, tr("Biện pháp khác")),
    ]
}

/// Grounds of an emergency measure, in the request's language.
pub fn grounds() -> [(p::MeasureGrounds, &'static str); 3] {
    [
        (
            p::MeasureGrounds::AssessedDanger,
            tr("Đánh giá ban đầu xác định cần can thiệp khẩn cấp"),
        ),
        (
            p::MeasureGrounds::ParentsRefusePlan,
            tr("Cha mẹ, người chăm sóc từ chối kế hoạch (Đ32)"),
        ),
        (
            p::MeasureGrounds::AbuseMayContinue,
            tr("Cha mẹ, người chăm sóc có thể tiếp tục xâm hại (Đ32)"),
        ),
    ]
}

/// Services a referral may ask for, in the request's language.
pub fn services() -> [(p::RequestedService, &'static str); 6] {
    [
        (
            p::RequestedService::PoliceInvestigation,
            tr("Điều tra (Công an)"),
        ),
        (
            p::RequestedService::MedicalExamination,
            tr("Khám, chữa bệnh"),
        ),
        (
            p::RequestedService::PsychologicalSupport,
            tr("Hỗ trợ tâm lý"),
        ),
        (p::RequestedService::LegalAid, tr("Trợ giúp pháp lý")),
        (p::RequestedService::SchoolSupport, tr("Hỗ trợ học tập")),
        (p::RequestedService::Shelter, tr("Nơi ở an toàn")),
    ]
}

/// The Vietnamese name of a requested service.
#[must_use]
pub fn service_vi(value: i32) -> &'static str {
    services()
        .iter()
        .find(|(s, _)| *s as i32 == value)
        .map_or("?", |(_, n)| n)
}

/// The emergency-measure form's fields.
pub struct MeasureFields;

impl FieldMap for MeasureFields {
    fn form_field(path: &str) -> &'static str {
        match path {
            "kind" => "measure_kind",
            "description" => "measure_description",
            "decision_ref" => "decision_ref",
            p if p.starts_with("separation") => "separation",
            "grounds" => "grounds",
            _ => "",
        }
    }
    fn rule_vi(form_field: &str) -> Option<&'static str> {
        match form_field {
            "measure_kind" => Some(tr("Chọn biện pháp.")),
            "separation" => Some(tr(
                "Cách ly tạm thời cần ngày bắt đầu và kết thúc (năm-tháng-ngày), tối đa 15 ngày nếu không có quyết định gia hạn.",
            )),
            _ => None,
        }
    }
}

/// The RecordEmergencyMeasure request of a posted form.
#[must_use]
pub fn measure_request(form: &FormData, case_id: &str) -> p::RecordEmergencyMeasureRequest {
    let kind = form.get("measure_kind").parse().unwrap_or(0);
    let separation = (kind == p::MeasureKind::TemporarySeparation as i32).then(|| p::Separation {
        start_date: form.get("separation_start").to_owned(),
        end_date: form.get("separation_end").to_owned(),
        extension_decision_ref: String::new(),
    });
    p::RecordEmergencyMeasureRequest {
        header: Some(header(form, case_id)),
        kind,
        description: form.get("measure_description").to_owned(),
        decision_ref: form.get("decision_ref").to_owned(),
        separation,
        grounds: form.get("grounds").parse().unwrap_or(0),
    }
}

/// The referral form's fields.
pub struct ReferralFields;

impl FieldMap for ReferralFields {
    fn form_field(path: &str) -> &'static str {
        match path {
            "service" | "kind" => "service",
            "to_agency_id" => "to_agency_id",
            "reason" => "reason",
            "child_consent"
            | "guardian_consent"
            | "legal_basis"
            | "shares_identifying_information" => "consent",
            "shares_informant" => "shares_informant",
            _ => "",
        }
    }
    fn rule_vi(form_field: &str) -> Option<&'static str> {
        match form_field {
            "consent" => Some(consent_rule()),
            "to_agency_id" => Some(tr("Mã cơ quan trong danh mục, ví dụ vn:31135/cong-an.")),
            _ => None,
        }
    }
}

/// The consent rule, as the referral form explains it.
pub fn consent_rule() -> &'static str {
    tr(
        "Chia sẻ thông tin nhận dạng của trẻ cần sự đồng ý của cha mẹ hoặc người giám hộ, và của chính trẻ nếu trẻ từ đủ 7 tuổi (tính theo ngày chuyển gửi), trừ khi có căn cứ pháp lý: điều tra hình sự, hoặc tình huống khẩn cấp đe dọa tính mạng, sức khỏe.",
    )
}

/// The RequestReferral request of a posted form.
#[must_use]
pub fn referral_request(form: &FormData, case_id: &str) -> p::RequestReferralRequest {
    p::RequestReferralRequest {
        header: Some(header(form, case_id)),
        service: form.get("service").parse().unwrap_or(0),
        transfer_to_unit_id: String::new(),
        to_agency_id: form.get("to_agency_id").to_owned(),
        reason: form.get("reason").to_owned(),
        urgent: form.checked("urgent"),
        shares_identifying_information: form.checked("shares_identifying_information"),
        child_consent: form.checked("child_consent"),
        guardian_consent: form.checked("guardian_consent"),
        legal_basis: form.get("legal_basis").parse().unwrap_or(0),
        shares_informant: form.checked("shares_informant"),
    }
}

fn header(form: &FormData, case_id: &str) -> p::CommandHeader {
    p::CommandHeader {
        request_id: form.get("request_id").to_owned(),
        case_id: case_id.to_owned(),
        expected_version: form.get("expected_version").parse().unwrap_or(0),
        officer_id: String::new(),
    }
}

/// Which form of the case page was posted (its errors are shown beside
/// it, its values kept).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Mẫu 02.
    InitialAssessment,
    /// An emergency measure.
    EmergencyMeasure,
    /// A referral request.
    Referral,
    /// One of [`crate::steps`].
    Other(crate::steps::Kind),
}

/// What the case page shows besides the case: who looks (may they act,
/// may they replay), the form posted and its errors.
pub struct PageContext<'a> {
    /// The officer may take steps (not an auditor).
    pub may_act: bool,
    /// The auditor's replay links.
    pub may_replay: bool,
    /// The form posted, if any, and what was refused.
    pub posted: Option<(Step, &'a FormData, &'a Errors)>,
    /// A fresh request id for each form not posted.
    pub request_id: &'a str,
    /// The version the refused step was decided on, when someone else
    /// acted first: later events are marked new.
    pub seen_version: Option<u64>,
    /// The session's CSRF token.
    pub csrf: &'a str,
}

impl Step {
    /// The id of the page section holding its form.
    #[must_use]
    pub fn section(self) -> String {
        match self {
            Self::InitialAssessment => "assessment".into(),
            Self::EmergencyMeasure => "emergency".into(),
            Self::Referral => "referral".into(),
            Self::Other(kind) => format!("step-{}", kind.segment()),
        }
    }
}

impl PageContext<'_> {
    /// The values and errors of a [`crate::steps`] form.
    #[must_use]
    pub fn step_form(&self, kind: crate::steps::Kind) -> (FormData, Errors) {
        self.form(Step::Other(kind))
    }

    fn form(&self, step: Step) -> (FormData, Errors) {
        match self.posted {
            Some((posted, form, errors)) if posted == step => (form.clone(), errors.clone()),
            _ => (
                FormData(vec![("request_id".into(), self.request_id.to_owned())]),
                Errors::default(),
            ),
        }
    }
}

fn field_errors(errors: &Errors, name: &str) -> Markup {
    html! { @for e in errors.of(name) { p.error id=(format!("{name}-error")) role="alert" { (e) } } }
}

fn top_errors(errors: &Errors, id: &str) -> Markup {
    html! {
        @if !errors.top.is_empty() {
            div.errors role="alert" id=(id) { @for e in &errors.top { p.error { (e) } } }
        }
    }
}

fn emergency_form(case: &p::Case, ctx: &PageContext<'_>) -> Markup {
    let (form, errors) = ctx.form(Step::EmergencyMeasure);
    html! {
        section #emergency {
            h2 { (tr("Biện pháp can thiệp khẩn cấp (Đ31, Đ32)")) }
            (top_errors(&errors, "emergency-errors"))
            form method="post" action=(format!("/ho-so/{}/khan-cap", case.case_id)) {
                (csrf_input(ctx.csrf))
                input type="hidden" name="request_id" value=(form.get("request_id"));
                input type="hidden" name="expected_version" value=(case.version);
                div.field {
                    label for="measure_kind" { (tr("Biện pháp")) }
                    select id="measure_kind" name="measure_kind" {
                        option value="0" { (tr("— chọn —")) }
                        @for (k, name) in measures() {
                            option value=(k as i32) selected[form.get("measure_kind") == (k as i32).to_string()] { (name) }
                        }
                    }
                    (field_errors(&errors, "measure_kind"))
                }
                div.field {
                    label for="grounds" { (tr("Căn cứ")) }
                    select id="grounds" name="grounds" {
                        @for (g, name) in grounds() {
                            option value=(g as i32) selected[form.get("grounds") == (g as i32).to_string()] { (name) }
                        }
                    }
                    (field_errors(&errors, "grounds"))
                }
                div.field {
                    label for="measure_description" { (tr("Đã làm gì")) }
                    textarea id="measure_description" name="measure_description" rows="2" { (form.get("measure_description")) }
                    (field_errors(&errors, "measure_description"))
                }
                div.field {
                    label for="decision_ref" { (tr("Quyết định của Chủ tịch UBND xã (số, ngày)")) }
                    input type="text" id="decision_ref" name="decision_ref" value=(form.get("decision_ref"));
                    (field_errors(&errors, "decision_ref"))
                }
                div.field {
                    label for="separation_start" { (tr("Cách ly từ ngày (năm-tháng-ngày)")) }
                    input type="text" id="separation_start" name="separation_start" value=(form.get("separation_start"));
                    label for="separation_end" { (tr("đến ngày")) }
                    input type="text" id="separation_end" name="separation_end" value=(form.get("separation_end"));
                    (field_errors(&errors, "separation"))
                }
                button.primary type="submit" { (tr("Ghi biện pháp khẩn cấp")) }
            }
        }
    }
}

fn referral_form(case: &p::Case, ctx: &PageContext<'_>) -> Markup {
    let (form, errors) = ctx.form(Step::Referral);
    let agency = if form.get("to_agency_id").is_empty() {
        format!("{}/cong-an", case.responsible_unit_id)
    } else {
        form.get("to_agency_id").to_owned()
    };
    html! {
        section #referral {
            h2 { (tr("Đề nghị chuyển gửi")) }
            (top_errors(&errors, "referral-errors"))
            form method="post" action=(format!("/ho-so/{}/chuyen-gui", case.case_id)) {
                (csrf_input(ctx.csrf))
                input type="hidden" name="request_id" value=(form.get("request_id"));
                input type="hidden" name="expected_version" value=(case.version);
                div.field {
                    label for="service" { (tr("Đề nghị")) }
                    select id="service" name="service" {
                        @for (sv, name) in services() {
                            option value=(sv as i32) selected[form.get("service") == (sv as i32).to_string()] { (name) }
                        }
                    }
                    (field_errors(&errors, "service"))
                }
                div.field {
                    label for="to_agency_id" { (tr("Cơ quan nhận (mã)")) }
                    input type="text" id="to_agency_id" name="to_agency_id" value=(agency);
                    (field_errors(&errors, "to_agency_id"))
                }
                div.field {
                    label for="reason" { (tr("Lý do")) }
                    textarea id="reason" name="reason" rows="2" { (form.get("reason")) }
                    (field_errors(&errors, "reason"))
                }
                label.check { input type="checkbox" id="urgent" name="urgent" checked[form.checked("urgent")]; (tr(" Khẩn: xác nhận trong 2 giờ (không khẩn: 1 ngày làm việc)")) }
                fieldset {
                    legend { (tr("Chia sẻ thông tin")) }
                    p.rule #consent-rule { (consent_rule()) }
                    label.check { input type="checkbox" id="shares_identifying_information" name="shares_identifying_information" checked[form.checked("shares_identifying_information")]; (tr(" Chia sẻ thông tin nhận dạng của trẻ")) }
                    label.check { input type="checkbox" id="guardian_consent" name="guardian_consent" checked[form.checked("guardian_consent")]; (tr(" Cha mẹ, người giám hộ đã đồng ý")) }
                    label.check { input type="checkbox" id="child_consent" name="child_consent" checked[form.checked("child_consent")]; (tr(" Trẻ (từ đủ 7 tuổi) đã đồng ý")) }
                    div.field {
                        label for="legal_basis" { (tr("Hoặc căn cứ pháp lý")) }
                        select id="legal_basis" name="legal_basis" {
                            option value="0" { (tr("Không có: cần sự đồng ý")) }
                            option value=(p::LegalBasis::CriminalInvestigation as i32) selected[form.get("legal_basis") == (p::LegalBasis::CriminalInvestigation as i32).to_string()] { (tr("Điều tra hình sự")) }
                            option value=(p::LegalBasis::Emergency as i32) selected[form.get("legal_basis") == (p::LegalBasis::Emergency as i32).to_string()] { (tr("Khẩn cấp: tính mạng, sức khỏe bị đe dọa")) }
                        }
                    }
                    label.check { input type="checkbox" id="shares_informant" name="shares_informant" checked[form.checked("shares_informant")]; (tr(" Chia sẻ cả thông tin người báo tin (quyết định riêng)")) }
                    (field_errors(&errors, "consent"))
                    (field_errors(&errors, "shares_informant"))
                }
                button.primary type="submit" { (tr("Gửi đề nghị chuyển gửi")) }
            }
        }
    }
}

/// The Vietnamese name of a referral's status.
#[must_use]
pub fn referral_status_vi(status: i32) -> &'static str {
    use p::ReferralStatus as S;
    match S::try_from(status).unwrap_or(S::Unspecified) {
        S::Offered => tr("đã gửi, chờ xác nhận"),
        S::Acknowledged => tr("đã xác nhận nhận"),
        S::Accepted => tr("đã nhận xử lý"),
        S::Declined => tr("bị từ chối"),
        S::OutcomeReported => tr("đã báo kết quả"),
        S::Completed => tr("hoàn thành"),
        S::Revoked => tr("đã thu hồi"),
        S::Unspecified => "?",
    }
}

/// The case page: the case (as it is, or as it stood at `as_of` for an
/// auditor's replay), its deadlines, referrals, the next steps' forms, the
/// timeline.
#[must_use]
pub fn page(
    case: &p::Case,
    timeline: &[TimelineEntry],
    now: i64,
    ctx: &PageContext<'_>,
    as_of: Option<u64>,
) -> Markup {
    let (form, errors) = ctx.form(Step::InitialAssessment);
    let open = case.status == p::CaseStatus::Open as i32;
    html! {
        @if as_of.is_none() {
            p.live #live data-events=(format!("/ho-so/{}/su-kien?tu={}", case.case_id, case.version + 1))
                data-fragment=(format!("/ho-so/{}", case.case_id)) data-target="case deadlines referrals timeline" data-every="60" {
                (tr("Trang tự cập nhật khi hồ sơ có diễn biến mới."))
            }
        }
        @if let Some((step, _, errors)) = ctx.posted {
            @if !errors.is_empty() {
                p.errors #refused role="alert" {
                    (tr("Bước này chưa được ghi: ")) a href=(format!("#{}", step.section())) { (tr("xem lý do bên cạnh biểu mẫu")) } "."
                }
            }
        }
        @if let Some(seen) = ctx.seen_version {
            p.warning #stale role="alert" {
                (tr("Bạn đã quyết định trên phiên bản ")) (seen) (tr("; hồ sơ nay ở phiên bản ")) (case.version)
                (tr(". Các diễn biến mới được đánh dấu bên dưới: xem lại rồi gửi lại."))
            }
        }
        @if let Some(seq) = as_of {
            p.warning #as-of {
                (tr("Hồ sơ như tại sự kiện #")) (seq) (tr(" (phiên bản ")) (case.version) "). "
                a href=(format!("/ho-so/{}", case.case_id)) { (tr("Xem hiện tại")) }
            }
        }
        dl.case #case {
            dt { (tr("Giai đoạn")) } dd #phase { (phase_vi(case.phase)) }
            dt { (tr("Xã chịu trách nhiệm")) } dd { (case.responsible_unit_id) }
            dt { (tr("Nhận thông tin lúc")) } dd { (when(case.received_at.as_ref())) }
            dt { (tr("Cán bộ phụ trách")) } dd { @if case.officer_id.is_empty() { (tr("chưa phân công")) } @else { (case.officer_id) } }
            @if case.immediate_danger { dt { (tr("Nguy hiểm")) } dd.danger { (tr("Trẻ đang gặp nguy hiểm ngay")) } }
            @if case.caregiver_is_alleged_abuser { dt { (tr("Người chăm sóc")) } dd.danger { (tr("là người bị tố cáo xâm hại")) } }
            @if !case.possible_duplicate_case_ids.is_empty() {
                dt { (tr("Có thể trùng")) } dd { (case.possible_duplicate_case_ids.join(", ")) }
            }
            dt { (tr("Phiên bản")) } dd #version { (case.version) }
        }
        h2 { (tr("Thời hạn")) }
        @if case.deadlines.is_empty() { p #deadlines { (tr("Không có thời hạn.")) } }
        @else {
            table #deadlines {
                thead { tr { th { (tr("Thời hạn")) } th { (tr("Hạn chót")) } th { (tr("Tình trạng")) } } }
                tbody {
                    @for d in &case.deadlines {
                        @let due = d.due_at.as_ref().map_or(0, |t| t.seconds);
                        @let running = d.state == p::DeadlineState::Open as i32;
                        tr class=(if running { urgency(due, now) } else { "closed" }) {
                            td { (deadline_vi(d.kind)) }
                            td { (when(d.due_at.as_ref())) }
                            td {
                                @if running { strong { (time_left(due, now)) } }
                                @else if d.state == p::DeadlineState::Met as i32 {
                                    @if d.missed { (tr("đã thực hiện, trễ hạn")) } @else { (tr("đã thực hiện đúng hạn")) }
                                } @else { (tr("không còn áp dụng")) }
                            }
                        }
                    }
                }
            }
        }
        h2 { (tr("Chuyển gửi")) }
        @if case.referrals.is_empty() { p #referrals { (tr("Chưa có.")) } } @else {
            table #referrals {
                thead { tr { th { (tr("Mã")) } th { (tr("Cơ quan")) } th { (tr("Đề nghị")) } th { (tr("Tình trạng")) } } }
                tbody {
                    @for r in &case.referrals {
                        tr {
                            td { (r.referral_id) }
                            td { (r.to_agency_id) }
                            td { @match &r.kind { Some(p::case_referral::Kind::Service(sv)) => (service_vi(*sv)), Some(p::case_referral::Kind::TransferToUnitId(u)) => { (tr("chuyển hồ sơ cho ")) (u) }, None => "" } }
                            td { (referral_status_vi(r.status)) }
                        }
                    }
                }
            }
        }
        @if ctx.may_act && open && as_of.is_none() {
            @if case.phase == p::CasePhase::AwaitingInitialAssessment as i32 {
                section #assessment {
                    h2 { (tr("Đánh giá ban đầu (Mẫu 02)")) }
                    (top_errors(&errors, "errors"))
                    form method="post" action=(format!("/ho-so/{}/mau-02", case.case_id)) {
                        (csrf_input(ctx.csrf))
                        input type="hidden" name="request_id" value=(form.get("request_id"));
                        input type="hidden" name="expected_version" value=(case.version);
                        div.field {
                            label for="factor" { (tr("Yếu tố nguy cơ")) }
                            input type="text" id="factor" name="factor" value=(form.get("factor"));
                            label for="level" { (tr("Mức độ")) }
                            select id="level" name="level" {
                                option value="0" { (tr("— chọn —")) }
                                @for (level, name) in [(p::RiskLevel::High, tr("Cao")), (p::RiskLevel::Medium, tr("Trung bình")), (p::RiskLevel::Low, tr("Thấp"))] {
                                    option value=(level as i32) selected[form.get("level") == (level as i32).to_string()] { (name) }
                                }
                            }
                            (field_errors(&errors, "factor"))
                        }
                        fieldset {
                            legend { (tr("Cần áp dụng biện pháp khẩn cấp?")) }
                            label.check { input type="radio" name="emergency" value="yes" checked; (tr(" Có: thời hạn 12 giờ tiếp tục chạy")) }
                            label.check { input type="radio" name="emergency" value="no"; (tr(" Không")) }
                        }
                        div.field {
                            label for="summary" { (tr("Tóm tắt")) }
                            textarea id="summary" name="summary" rows="3" { (form.get("summary")) }
                            (field_errors(&errors, "summary"))
                        }
                        button.primary type="submit" { (tr("Ghi đánh giá ban đầu")) }
                    }
                }
            } @else {
                (emergency_form(case, ctx))
            }
            (referral_form(case, ctx))
        }
        @if ctx.may_act && as_of.is_none() {
            (crate::steps::forms(case, ctx))
        }
        h2 { (tr("Diễn biến")) }
        ol.timeline #timeline {
            @for e in timeline {
                @let new = ctx.seen_version.is_some_and(|v| e.seq > v);
                li data-seq=(e.seq) class=[as_of.is_some_and(|a| e.seq > a).then_some("after").or(new.then_some("new"))] {
                    @if new { span.badge { (tr("mới")) } " " }
                    span.seq { "#" (e.seq) } " "
                    time { (when(Some(&prost_types::Timestamp { seconds: e.recorded_at_ms.div_euclid(1000), nanos: 0 }))) } " · "
                    strong { (event_vi(&e.event_type)) }
                    @if !e.detail.is_empty() { ": " span.detail { (e.detail) } }
                    " · " (e.actor)
                    @if ctx.may_replay {
                        " · " a.replay href=(format!("/ho-so/{}?tai={}", case.case_id, e.seq)) { (tr("hồ sơ tại đây")) }
                        @if e.seq > 1 {
                            " · " a.replay-before href=(format!("/ho-so/{}?tai={}", case.case_id, e.seq - 1)) { (tr("ngay trước")) }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_shows_its_text_and_an_erased_one_says_it_was_erased() {
        let note = |text: &str| p::CaseEvent {
            event: Some(p::case_event::Event::NoteAdded(p::NoteAdded {
                text: text.into(),
            })),
        };
        assert_eq!(event_detail(&note("đã gọi cho mẹ")), "đã gọi cho mẹ");
        let erased = event_detail(&note("[erased]"));
        assert!(erased.contains("đã xoá"), "{erased}");
        assert!(!erased.contains("[erased]"), "{erased}");
    }

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
    fn given_a_case_casework_found_overdue_then_its_row_says_so_whatever_the_consoles_clock() {
        // Due in an hour by the console's clock, missed by casework's.
        let html = list(
            &[
                summary("missed", true, Some(3_600)),
                summary("fine", false, Some(3_600)),
            ],
            0,
            &ListFilter::default(),
        )
        .into_string();
        assert!(
            html.contains(r#"<tr id="case-missed" class="overdue">"#),
            "{html}"
        );
        assert!(
            html.contains(r#"<tr id="case-fine" class="due-soon">"#),
            "{html}"
        );
        assert_eq!(html.matches("trễ hạn").count(), 1, "{html}");
        assert!(html.contains(r#"data-events="/ho-so/canh-bao""#), "{html}");
    }

    #[test]
    fn given_a_deadline_then_its_urgency_follows_the_time_left() {
        assert_eq!(urgency(100, 200), "overdue");
        assert_eq!(urgency(200 + 2 * 3600, 200), "due-soon");
        assert_eq!(urgency(201 + 2 * 3600, 200), "due-later");
    }

    #[test]
    fn given_events_then_the_timeline_says_which_deadline_measure_and_step() {
        use p::case_event::Event as E;
        let set = p::CaseEvent {
            event: Some(E::DeadlineMet(p::DeadlineMet {
                kind: p::DeadlineKind::Emergency as i32,
                late: true,
                ..p::DeadlineMet::default()
            })),
        };
        assert_eq!(
            event_detail(&set),
            "Can thiệp khẩn cấp trong 12 giờ, trễ hạn"
        );
        let measure = p::CaseEvent {
            event: Some(E::EmergencyMeasureRecorded(p::EmergencyMeasureRecorded {
                kind: p::MeasureKind::SafeShelter as i32,
                decision_ref: "QĐ 1".into(),
                ..p::EmergencyMeasureRecorded::default()
            })),
        };
        assert_eq!(
            event_detail(&measure),
            "Bố trí nơi tạm trú an toàn, quyết định QĐ 1"
        );
        assert_eq!(event_detail(&p::CaseEvent::default()), "");
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
