//! The hotline operator's pages: the Mẫu 01 form (every refused field shown
//! beside it, in the user's language, all at once; the form carries its request id,
//! so a retry or a double click never records a second report), the
//! receipt that shows the case number once casework has opened it, and the
//! operator's own recent reports.

use baove_proto::v1 as p;

use crate::i18n::tr;
use maud::{Markup, html};

use crate::form::{Errors, FieldMap, FormData};
use crate::view::{csrf_input, datetime_field, parse_datetime_field};

/// The Mẫu 01 form's field names and the request fields they fill.
pub struct HotlineFields;

impl FieldMap for HotlineFields {
    fn form_field(path: &str) -> &'static str {
        let path = path.strip_prefix("report.").unwrap_or(path);
        let path = path.strip_prefix("facts.").unwrap_or(path);
        match path {
            "channel" => "channel",
            "received_at" | "occurred_at" => "received_at",
            "child.full_name" => "child_name",
            "child.sex" => "child_sex",
            "child.ethnicity" => "child_ethnicity",
            "child.current_condition" => "child_condition",
            "incident_place.address" => "incident_address",
            "narrative" => "narrative",
            "informant" | "informant.consent" => "informant_consent",
            "informant.full_name" => "informant_name",
            "informant.phone" => "informant_phone",
            "informant.relation" => "informant_relation",
            "caregiver.full_name" => "caregiver_name",
            "caregiver.phone" => "caregiver_phone",
            "caregiver.relation" => "caregiver_relation",
            p if p.starts_with("child") => "child_age",
            p if p.starts_with("incident_place") || p == "responsible_unit_id" => "incident_unit",
            p if p.starts_with("concerns") => "abuse",
            _ => "",
        }
    }

    fn rule_vi(form_field: &str) -> Option<&'static str> {
        Some(match form_field {
            "channel" => tr("Chọn kênh tiếp nhận."),
            "received_at" => tr("Thời điểm tiếp nhận không được ở tương lai."),
            "child_name" => tr("Họ tên trẻ tối đa 200 ký tự."),
            "child_age" => tr(
                "Nhập ngày sinh (năm-tháng-ngày, hoặc chỉ năm-tháng, năm) hoặc tuổi ước tính từ 0 đến 17, một trong hai.",
            ),
            "child_sex" => tr("Chọn giới tính của trẻ (có thể chọn “Không rõ”)."),
            "incident_unit" => tr(
                "Chọn xã, phường hoặc đặc khu nơi xảy ra vụ việc trong danh mục đơn vị hành chính.",
            ),
            "abuse" => tr("Cần ít nhất một hình thức xâm hại hoặc phần mô tả sự việc."),
            "informant_consent" => tr(
                "Chỉ ghi thông tin người báo tin khi họ đồng ý: đánh dấu ô đồng ý, hoặc để trống các thông tin đó.",
            ),
            "informant_phone" | "caregiver_phone" => {
                tr("Số điện thoại Việt Nam, ví dụ 0912 345 678 hoặc +84 912 345 678.")
            }
            _ => return None,
        })
    }
}

/// Channels an operator may choose (not POLICE), with Vietnamese names.
pub fn channels() -> [(p::Channel, &'static str); 7] {
    [
        (p::Channel::Phone, tr("Điện thoại 111")),
        (p::Channel::Zalo, "Zalo"),
        (p::Channel::App, tr("Ứng dụng")),
        (p::Channel::Web, "Trang web"),
        (p::Channel::InPerson, tr("Trực tiếp")),
        (p::Channel::Letter, tr("Thư")),
        (p::Channel::Press, tr("Báo chí")),
    ]
}

/// Sexes, with Vietnamese names.
pub fn sexes() -> [(p::Sex, &'static str); 3] {
    [
        (p::Sex::Female, tr("Nữ")),
        (p::Sex::Male, tr("Nam")),
        (p::Sex::Unknown, tr("Không rõ")),
    ]
}

/// Forms of abuse, with their Vietnamese names (Luật Trẻ em Đ4).
pub fn abuse_types() -> [(p::AbuseType, &'static str); 7] {
    [
        (p::AbuseType::Violence, tr("Bạo lực")),
        (p::AbuseType::SexualAbuse, tr("Xâm hại tình dục")),
        (p::AbuseType::Exploitation, tr("Bóc lột")),
        (p::AbuseType::Trafficking, tr("Mua bán")),
        (p::AbuseType::Abandonment, tr("Bỏ rơi")),
        (p::AbuseType::Neglect, tr("Bỏ mặc")),
        (p::AbuseType::Other, tr("Hình thức khác")),
    ]
}

/// The Vietnamese name of a form of abuse.
#[must_use]
pub fn abuse_vi(value: i32) -> &'static str {
    abuse_types()
        .iter()
        .find(|(t, _)| *t as i32 == value)
        .map_or("?", |(_, n)| n)
}

/// The incident unit as typed: an id from the reference data, or words to
/// search for.
#[must_use]
pub fn is_unit_id(text: &str) -> bool {
    text.starts_with("vn:") || text.starts_with("vn-pre2025:")
}

/// The request a posted form makes, with `unit_id` resolved; errors found
/// before asking the service (a number that is not a number, a time that
/// does not parse) come back as field errors.
///
/// # Errors
/// The form's own errors, by field.
pub fn request(form: &FormData, unit_id: &str) -> Result<p::SubmitHotlineReportRequest, Errors> {
    let mut errors = Errors::default();
    let received_at = match form.get("received_at") {
        "" => None,
        text => {
            let parsed = parse_datetime_field(text);
            if parsed.is_none() {
                errors.field(
                    "received_at",
                    tr("Ngày giờ không hợp lệ (ngày/tháng/năm giờ:phút)."),
                );
            }
            parsed
        }
    };
    let age = match (form.get("child_dob"), form.get("child_age")) {
        ("", "") => None,
        (dob, "") => Some(p::child::Age::DateOfBirth(dob.to_owned())),
        ("", years) => match years.parse::<u32>() {
            Ok(y) => Some(p::child::Age::EstimatedAgeYears(y)),
            Err(_) => {
                errors.field(
                    "child_age",
                    tr("Tuổi ước tính phải là một số nguyên, từ 0 đến 17."),
                );
                None
            }
        },
        _ => {
            errors.field(
                "child_age",
                tr("Chỉ nhập một trong hai: ngày sinh hoặc tuổi ước tính."),
            );
            None
        }
    };
    let channel = form.get("channel").parse::<i32>().unwrap_or(0);
    let sex = form.get("child_sex").parse::<i32>().unwrap_or(0);
    let abuse_types = form
        .all("abuse")
        .iter()
        .filter_map(|v| v.parse::<i32>().ok())
        .collect();
    let caregiver = person(form, "caregiver");
    let informant = p::Informant {
        consent: form.checked("informant_consent"),
        full_name: form.get("informant_name").to_owned(),
        phone: form.get("informant_phone").to_owned(),
        relation: form.get("informant_relation").to_owned(),
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(p::SubmitHotlineReportRequest {
        request_id: form.get("request_id").to_owned(),
        report: Some(p::HotlineReport {
            channel,
            operator_id: String::new(),
            facts: Some(p::ReportFacts {
                received_at,
                child: Some(p::Child {
                    full_name: form.get("child_name").to_owned(),
                    age,
                    sex,
                    ethnicity: form.get("child_ethnicity").to_owned(),
                    current_condition: form.get("child_condition").to_owned(),
                }),
                incident_place: Some(p::Place {
                    unit_id: unit_id.to_owned(),
                    address: form.get("incident_address").to_owned(),
                }),
                concerns: Some(p::Concerns {
                    abuse_types,
                    ..p::Concerns::default()
                }),
                narrative: form.get("narrative").to_owned(),
                immediate_danger: form.checked("immediate_danger"),
                caregiver_is_alleged_abuser: form.checked("caregiver_abuser"),
                caregiver,
                ..p::ReportFacts::default()
            }),
            informant: Some(informant),
        }),
    })
}

fn person(form: &FormData, prefix: &str) -> Option<p::Person> {
    let get = |f: &str| form.get(&format!("{prefix}_{f}")).to_owned();
    let person = p::Person {
        full_name: get("name"),
        phone: get("phone"),
        address: String::new(),
        relation: get("relation"),
    };
    (person != p::Person::default()).then_some(person)
}

/// Units to choose from when the typed words matched several.
pub type UnitChoices = Vec<p::UnitMatch>;

/// What the form shows besides the report: the places to choose from when
/// the words typed matched several units, and the duplicate check's
/// warning to confirm.
#[derive(Clone, Debug, Default)]
pub struct Prompts {
    /// Units matching the place typed.
    pub choices: UnitChoices,
    /// The report may be about a child already reported: the cases the
    /// operator may read (possibly none of them).
    pub duplicate: Option<Vec<String>>,
}

/// The Mẫu 01 form, filled with `form` (empty for a new report), with
/// `errors` beside their fields and the `prompts`.
#[must_use]
pub fn form_page(form: &FormData, errors: &Errors, prompts: &Prompts, csrf: &str) -> Markup {
    let choices = &prompts.choices;
    let field_errors = |name: &str| {
        html! {
            @for e in errors.of(name) { p.error id=(format!("{name}-error")) role="alert" { (e) } }
        }
    };
    let text = |name: &'static str, label: &str, hint: &str| {
        let invalid = !errors.of(name).is_empty();
        html! {
            div.field.invalid[invalid] {
                label for=(name) { (label) }
                input type="text" id=(name) name=(name) value=(form.get(name))
                    aria-invalid=[invalid.then_some("true")]
                    aria-describedby=[invalid.then(|| format!("{name}-error"))];
                @if !hint.is_empty() { small { (hint) } }
                (field_errors(name))
            }
        }
    };
    let received = if form.get("received_at").is_empty() {
        datetime_field(time::OffsetDateTime::now_utc())
    } else {
        form.get("received_at").to_owned()
    };
    html! {
        @if !errors.is_empty() {
            div.errors role="alert" #errors {
                p { (tr("Thông báo chưa được ghi. Sửa các mục được đánh dấu rồi gửi lại.")) }
                @for e in &errors.top { p.error { (e) } }
            }
        }
        form method="post" action="/bao-cao/moi" novalidate {
            (csrf_input(csrf))
            input type="hidden" name="request_id" value=(form.get("request_id"));
            @if let Some(cases) = &prompts.duplicate {
                div.warning.box #duplicate-warning role="alert" {
                    p {
                        (tr("Có thể đã có thông báo hoặc hồ sơ về cùng trẻ này (cùng họ tên, tuổi, xã trong 30 ngày). "))
                        (tr("Hỏi lại người báo tin: đây là việc mới, hay thông tin thêm về việc cũ?"))
                    }
                    @if !cases.is_empty() {
                        p { (tr("Hồ sơ bạn đã tiếp nhận: ")) (cases.join(", ")) }
                    }
                    label.check {
                        input type="checkbox" id="confirm_duplicate" name="confirm_duplicate";
                        (tr(" Tôi đã hỏi lại: vẫn ghi thông báo này (hồ sơ sẽ được đánh dấu có thể trùng, không gộp)"))
                    }
                }
            }
            fieldset {
                legend { (tr("Tiếp nhận")) }
                div.field.invalid[!errors.of("channel").is_empty()] {
                    label for="channel" { (tr("Kênh tiếp nhận")) }
                    select id="channel" name="channel" {
                        option value="0" { (tr("— chọn —")) }
                        @for (c, name) in channels() {
                            option value=(c as i32) selected[form.get("channel") == (c as i32).to_string()] { (name) }
                        }
                    }
                    (field_errors("channel"))
                }
                div.field.invalid[!errors.of("received_at").is_empty()] {
                    label for="received_at" { (tr("Thời điểm nhận thông tin (giờ Việt Nam)")) }
                    input type="text" id="received_at" name="received_at" value=(received)
                        inputmode="numeric" placeholder=(tr("ngày/tháng/năm giờ:phút"));
                    (field_errors("received_at"))
                }
            }
            fieldset {
                legend { (tr("Trẻ em")) }
                (text("child_name", tr("Họ và tên trẻ"), tr("Để trống nếu chưa biết.")))
                div.field.invalid[!errors.of("child_age").is_empty()] {
                    label for="child_dob" { (tr("Ngày sinh (năm-tháng-ngày, hoặc năm-tháng, năm)")) }
                    input type="text" id="child_dob" name="child_dob" value=(form.get("child_dob")) placeholder="2016-05-20";
                    label for="child_age" { (tr("hoặc tuổi ước tính")) }
                    input type="number" id="child_age" name="child_age" min="0" max="17" value=(form.get("child_age"))
                        aria-invalid=[(!errors.of("child_age").is_empty()).then_some("true")];
                    (field_errors("child_age"))
                }
                div.field.invalid[!errors.of("child_sex").is_empty()] {
                    label for="child_sex" { (tr("Giới tính")) }
                    select id="child_sex" name="child_sex" {
                        option value="0" { (tr("— chọn —")) }
                        @for (s, name) in sexes() {
                            option value=(s as i32) selected[form.get("child_sex") == (s as i32).to_string()] { (name) }
                        }
                    }
                    (field_errors("child_sex"))
                }
                (text("child_ethnicity", tr("Dân tộc"), ""))
                (text("child_condition", tr("Tình trạng hiện tại của trẻ"), ""))
            }
            fieldset {
                legend { (tr("Nơi xảy ra vụ việc")) }
                div.field.invalid[!errors.of("incident_unit").is_empty()] {
                    label for="incident_unit" { (tr("Xã, phường, đặc khu")) }
                    input type="text" id="incident_unit" name="incident_unit" value=(form.get("incident_unit"))
                        placeholder=(tr("tên đơn vị (có dấu hoặc không) hoặc mã vn:…"));
                    @if !choices.is_empty() {
                        div.choices role="radiogroup" aria-label=(tr("Chọn một đơn vị")) {
                            @for u in choices {
                                label.choice {
                                    input type="radio" name="incident_unit_pick" value=(u.unit_id);
                                    " " (u.label) " (" (u.unit_id) ")"
                                }
                            }
                        }
                    }
                    (field_errors("incident_unit"))
                }
                (text("incident_address", tr("Địa chỉ cụ thể"), ""))
            }
            fieldset {
                legend { (tr("Nội dung")) }
                div.field.invalid[!errors.of("abuse").is_empty()] {
                    span.label { (tr("Hình thức xâm hại")) }
                    @for (t, name) in abuse_types() {
                        label.check {
                            input type="checkbox" name="abuse" value=(t as i32) checked[form.has("abuse", &(t as i32).to_string())];
                            " " (name)
                        }
                    }
                    (field_errors("abuse"))
                }
                div.field.danger {
                    label.check {
                        input type="checkbox" id="immediate_danger" name="immediate_danger" checked[form.checked("immediate_danger")];
                        (tr(" Trẻ đang gặp nguy hiểm ngay (tính mạng, sức khỏe, nhân phẩm): thời hạn 12 giờ"))
                    }
                    label.check {
                        input type="checkbox" id="caregiver_abuser" name="caregiver_abuser" checked[form.checked("caregiver_abuser")];
                        (tr(" Người xâm hại là người đang chăm sóc trẻ: thời hạn 12 giờ"))
                    }
                }
                div.field.invalid[!errors.of("narrative").is_empty()] {
                    label for="narrative" { (tr("Mô tả sự việc")) }
                    textarea id="narrative" name="narrative" rows="5" { (form.get("narrative")) }
                    (field_errors("narrative"))
                }
            }
            fieldset {
                legend { (tr("Người đang chăm sóc trẻ")) }
                (text("caregiver_name", tr("Họ và tên"), ""))
                (text("caregiver_phone", tr("Điện thoại"), ""))
                (text("caregiver_relation", tr("Quan hệ với trẻ"), ""))
            }
            fieldset {
                legend { (tr("Người báo tin")) }
                div.field.invalid[!errors.of("informant_consent").is_empty()] {
                    label.check {
                        input type="checkbox" id="informant_consent" name="informant_consent" checked[form.checked("informant_consent")];
                        (tr(" Người báo tin đồng ý để ghi lại thông tin của họ"))
                    }
                    (field_errors("informant_consent"))
                }
                (text("informant_name", tr("Họ và tên"), ""))
                (text("informant_phone", tr("Điện thoại"), ""))
                (text("informant_relation", tr("Quan hệ với trẻ"), ""))
            }
            button.primary type="submit" { (tr("Ghi thông báo")) }
        }
    }
}

/// The receipt of a recorded report, with its case once casework opened
/// it; until then the page reloads itself every 3 seconds.
#[must_use]
pub fn receipt(intake: &p::Intake) -> Markup {
    let opened = !intake.case_id.is_empty();
    html! {
        @if !opened { meta http-equiv="refresh" content="3"; }
        dl.receipt #receipt {
            dt { (tr("Mã tiếp nhận")) } dd #intake-id { (intake.intake_id) }
            dt { (tr("Ghi lúc")) } dd { (crate::view::when(intake.recorded_at.as_ref())) }
            dt { (tr("Hồ sơ vụ việc")) }
            dd #case-id {
                @if opened { (intake.case_id) } @else { (tr("đang chuyển cho cấp xã…")) }
            }
        }
        @if intake.possible_duplicate {
            p.warning #duplicate {
                (tr("Có thể trùng với một vụ việc hoặc thông báo đã có về cùng trẻ. Cán bộ xử lý sẽ đối chiếu; không gộp tự động."))
            }
        }
        @if intake.outside_child_law {
            p.warning { (tr("Trẻ 16–17 tuổi: hỗ trợ chung, thời hạn 12 giờ vẫn áp dụng.")) }
        }
        p { a href="/bao-cao/moi" { (tr("Tiếp nhận thông báo mới")) } }
    }
}

/// The operator's recent reports.
#[must_use]
pub fn list(intakes: &[p::IntakeSummary]) -> Markup {
    html! {
        @if intakes.is_empty() { p { (tr("Chưa có thông báo nào.")) } }
        @else {
            table #intakes {
                thead { tr { th { (tr("Mã tiếp nhận")) } th { (tr("Nhận lúc")) } th { (tr("Trẻ")) } th { (tr("Nguy hiểm")) } th { (tr("Hồ sơ")) } } }
                tbody {
                    @for i in intakes {
                        tr {
                            td { a href=(format!("/bao-cao/{}", i.intake_id)) { (i.intake_id) } }
                            td { (crate::view::when(i.received_at.as_ref())) }
                            td { @if i.child_name.is_empty() { (tr("(không rõ)")) } @else { (i.child_name) } }
                            td { @if i.immediate_danger { strong { (tr("Có")) } } @else { (tr("Không")) } }
                            td { (i.case_id) }
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

    fn form(pairs: &[(&str, &str)]) -> FormData {
        FormData(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn given_the_services_field_paths_then_each_lands_on_its_form_field() {
        for (path, field) in [
            ("report.channel", "channel"),
            ("report.facts.received_at", "received_at"),
            ("report.facts.child.estimated_age_years", "child_age"),
            ("report.facts.child.date_of_birth", "child_age"),
            ("report.facts.incident_place.unit_id", "incident_unit"),
            ("report.facts.responsible_unit_id", "incident_unit"),
            ("report.informant.consent", "informant_consent"),
            ("report.facts.concerns", "abuse"),
            ("report.facts.caregiver.phone", "caregiver_phone"),
            ("report.operator_id", ""),
        ] {
            assert_eq!(HotlineFields::form_field(path), field, "{path}");
        }
    }

    #[test]
    fn given_a_filled_form_then_the_request_carries_each_field() {
        let filled = form(&[
            ("request_id", "r-1"),
            ("channel", "1"),
            ("received_at", "02/12/2026 03:10"),
            ("child_name", "Lê Thị Mai"),
            ("child_age", "9"),
            ("child_sex", "2"),
            ("abuse", "1"),
            ("abuse", "6"),
            ("immediate_danger", "on"),
            ("informant_consent", "on"),
            ("informant_phone", "0903 111 222"),
        ]);
        let request = request(&filled, "vn:31135").unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(request.request_id, "r-1");
        let report = request.report.unwrap_or_default();
        assert_eq!(report.channel, p::Channel::Phone as i32);
        let facts = report.facts.unwrap_or_default();
        let child = facts.child.unwrap_or_default();
        assert_eq!(child.age, Some(p::child::Age::EstimatedAgeYears(9)));
        assert_eq!(child.sex, p::Sex::Female as i32);
        assert_eq!(facts.incident_place.unwrap_or_default().unit_id, "vn:31135");
        assert_eq!(facts.concerns.unwrap_or_default().abuse_types, [1, 6]);
        assert!(facts.immediate_danger && !facts.caregiver_is_alleged_abuser);
        assert_eq!(facts.caregiver, None);
        assert_eq!(facts.received_at.map(|t| t.seconds), Some(1_796_155_800));
        let informant = report.informant.unwrap_or_default();
        assert!(informant.consent);
        assert_eq!(informant.phone, "0903 111 222");
    }

    #[test]
    fn given_an_age_that_is_not_a_number_and_a_bad_time_then_both_are_field_errors() {
        let errors = request(
            &form(&[("child_age", "chín"), ("received_at", "hôm qua")]),
            "",
        )
        .unwrap_err();
        assert_eq!(
            errors.fields.keys().copied().collect::<Vec<_>>(),
            ["child_age", "received_at"]
        );
        let both = request(&form(&[("child_age", "9"), ("child_dob", "2016")]), "").unwrap_err();
        assert_eq!(both.of("child_age").len(), 1);
    }

    #[test]
    fn given_errors_then_the_form_shows_each_beside_its_field_and_keeps_the_values() {
        let mut errors = Errors::default();
        errors.field("child_age", "tuổi sai");
        errors.field("informant_consent", "cần đồng ý");
        let filled = form(&[("request_id", "r-7"), ("child_name", "<b>Mai</b>")]);
        let html = form_page(&filled, &errors, &Prompts::default(), "tok").into_string();
        assert!(!html.contains("duplicate-warning"));
        let warned = Prompts {
            duplicate: Some(vec!["c-9".into()]),
            ..Prompts::default()
        };
        let again = form_page(&filled, &Errors::default(), &warned, "tok").into_string();
        assert!(again.contains(r#"id="confirm_duplicate""#) && again.contains("c-9"));
        assert!(html.contains(r#"id="child_age-error""#), "{html}");
        assert!(html.contains(r#"id="informant_consent-error""#));
        assert!(html.contains(r#"value="r-7""#), "the request id is kept");
        assert!(html.contains("&lt;b&gt;Mai&lt;/b&gt;"), "escaped");
        assert!(html.contains(r#"name="csrf" value="tok""#));
    }
}
