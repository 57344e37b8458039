//! Posted forms and their errors: the fields as posted (kept to show the
//! form again), and the mapping from a service's refusal (a gRPC status,
//! with its `BadRequest` field violations) to messages beside each field,
//! in the request's language.

use std::collections::BTreeMap;

use crate::i18n::tr;

use tonic::{Code, Status};
use tonic_types::StatusExt as _;

/// A posted `application/x-www-form-urlencoded` body, in order (a
/// checkbox group posts one pair per box ticked).
#[derive(Clone, Debug, Default)]
pub struct FormData(pub Vec<(String, String)>);

impl FormData {
    /// The first value of `name`, trimmed; empty when absent.
    #[must_use]
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.trim())
    }

    /// Every value of `name`.
    #[must_use]
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether checkbox `name` was ticked (any value posted).
    #[must_use]
    pub fn checked(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    /// Whether `name` posted `value` (a ticked box of a group, a chosen
    /// option).
    #[must_use]
    pub fn has(&self, name: &str, value: &str) -> bool {
        self.0.iter().any(|(k, v)| k == name && v == value)
    }
}

/// What to show on a refused form: messages at its top, and messages
/// beside fields (by the form's field name).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Errors {
    /// Not about one field.
    pub top: Vec<String>,
    /// By form field name.
    pub fields: BTreeMap<&'static str, Vec<String>>,
}

impl Errors {
    /// No error at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.top.is_empty() && self.fields.is_empty()
    }

    /// Adds a message beside `field`.
    pub fn field(&mut self, field: &'static str, message: impl Into<String>) {
        self.fields.entry(field).or_default().push(message.into());
    }

    /// The messages beside `field`.
    #[must_use]
    pub fn of(&self, field: &str) -> &[String] {
        self.fields.get(field).map_or(&[], Vec::as_slice)
    }
}

/// How one form names the service's fields: the form field for a
/// violation's field path ("" when none: shown at the top), and the rule of
/// a form field in the request's language (None: the service's own words).
pub trait FieldMap {
    /// The form field showing errors of the request field `path`.
    fn form_field(path: &str) -> &'static str;
    /// The rule of a form field, in the request's language.
    fn rule_vi(form_field: &str) -> Option<&'static str>;
}

/// A refusal, as the user reads it: every field violation beside its field
/// (all at once), anything else at the top, in the request's language.
#[must_use]
pub fn from_status<M: FieldMap>(status: &Status) -> Errors {
    let mut errors = Errors::default();
    if let Some(bad) = status.get_details_bad_request() {
        for v in bad.field_violations {
            let field = M::form_field(&v.field);
            if field.is_empty() {
                errors.top.push(format!("{}: {}", v.field, v.description));
            } else {
                let text = M::rule_vi(field).map_or_else(
                    || v.description.clone(),
                    |rule| format!("{rule} ({})", v.description),
                );
                if !errors.of(field).contains(&text) {
                    errors.field(field, text);
                }
            }
        }
        if !errors.is_empty() {
            return errors;
        }
    }
    errors.top.push(code_vi(status));
    errors
}

/// A refusal that is not about a field, in the request's language, with
/// the service's own words after it.
#[must_use]
pub fn code_vi(status: &Status) -> String {
    let what = match status.code() {
        Code::Unauthenticated => tr("Phiên đăng nhập không còn hiệu lực: hãy đăng nhập lại."),
        Code::PermissionDenied => tr("Vai trò hoặc phạm vi của bạn không cho phép việc này."),
        Code::NotFound => tr("Không tìm thấy (hoặc bạn không có quyền xem)."),
        Code::Aborted => {
            tr("Hồ sơ vừa được người khác cập nhật: xem thay đổi bên dưới rồi quyết định lại.")
        }
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => tr(
            "Hệ thống tạm thời không trả lời. Hãy bấm gửi lại: cùng một biểu mẫu không bao giờ được ghi hai lần.",
        ),
        Code::ResourceExhausted => tr("Quá nhiều yêu cầu cùng lúc: chờ vài giây rồi gửi lại."),
        Code::FailedPrecondition => {
            tr("Bước này chưa thể thực hiện ở giai đoạn hiện tại của hồ sơ.")
        }
        Code::InvalidArgument => tr("Có thông tin chưa hợp lệ."),
        Code::DataLoss => tr("Dữ liệu lưu trữ bị lỗi: báo ngay cho kỹ thuật viên trực."),
        _ => tr("Lỗi hệ thống: báo cho kỹ thuật viên trực."),
    };
    if status.message().is_empty() {
        what.to_owned()
    } else {
        format!("{what} ({})", status.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::{ErrorDetails, FieldViolation};

    struct Map;
    impl FieldMap for Map {
        fn form_field(path: &str) -> &'static str {
            match path {
                "a.age" => "age",
                "a.phone" | "a.phone2" => "phone",
                _ => "",
            }
        }
        fn rule_vi(form_field: &str) -> Option<&'static str> {
            (form_field == "age").then_some("Tuổi từ 0 đến 17.")
        }
    }

    #[test]
    fn given_field_violations_then_each_is_shown_beside_its_field_at_once() {
        let status = Status::with_error_details(
            Code::InvalidArgument,
            "2 problems",
            ErrorDetails::with_bad_request(vec![
                FieldViolation::new("a.age", "must be 0 to 17"),
                FieldViolation::new("a.phone", "not a phone"),
                FieldViolation::new("a.other", "unknown"),
            ]),
        );
        let errors = from_status::<Map>(&status);
        assert_eq!(errors.of("age"), ["Tuổi từ 0 đến 17. (must be 0 to 17)"]);
        assert_eq!(errors.of("phone"), ["not a phone"]);
        assert_eq!(errors.top, ["a.other: unknown"]);
    }

    #[test]
    fn given_an_unavailable_service_then_the_user_is_told_a_retry_is_safe() {
        let errors = from_status::<Map>(&Status::unavailable("no quorum"));
        assert!(errors.fields.is_empty());
        assert_eq!(errors.top.len(), 1);
        assert!(errors.top[0].contains("gửi lại"), "{:?}", errors.top);
        assert!(errors.top[0].contains("no quorum"));
    }

    #[test]
    fn given_a_form_then_values_checkboxes_and_groups_read_back() {
        let form = FormData(vec![
            ("name".into(), "  Lan ".into()),
            ("abuse".into(), "1".into()),
            ("abuse".into(), "6".into()),
            ("danger".into(), "on".into()),
        ]);
        assert_eq!(form.get("name"), "Lan");
        assert_eq!(form.get("missing"), "");
        assert_eq!(form.all("abuse"), ["1", "6"]);
        assert!(form.has("abuse", "6") && !form.has("abuse", "2"));
        assert!(form.checked("danger") && !form.checked("consent"));
    }
}
