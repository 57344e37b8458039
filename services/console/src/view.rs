//! What every page shares: the layout (who is signed in, the menu for the
//! role, the language switch), times written the Vietnamese way in
//! Asia/Ho_Chi_Minh (in English too), and the names of roles, steps and
//! enum values.

use baove_security::{Claims, Role};

use crate::i18n::{self, tr, trf};
use maud::{DOCTYPE, Markup, html};
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset, macros::format_description};

use crate::session::CSRF_FIELD;

/// Vietnam's offset (Asia/Ho_Chi_Minh has had no daylight saving since 1975).
pub const VIETNAM: UtcOffset = match UtcOffset::from_hms(7, 0, 0) {
    Ok(o) => o,
    Err(_) => UtcOffset::UTC,
};

/// `dd/mm/yyyy HH:MM`, Vietnam time; empty for no time.
#[must_use]
pub fn when(ts: Option<&prost_types::Timestamp>) -> String {
    let Some(ts) = ts else { return String::new() };
    OffsetDateTime::from_unix_timestamp(ts.seconds)
        .ok()
        .map(|t| t.to_offset(VIETNAM))
        .and_then(|t| {
            t.format(format_description!("[day]/[month]/[year] [hour]:[minute]"))
                .ok()
        })
        .unwrap_or_default()
}

/// An instant as a form shows it: `dd/mm/yyyy HH:MM`, Vietnam time (a
/// text field, not the browser's date picker, which writes dates the way
/// the browser's own locale does).
#[must_use]
pub fn datetime_field(t: OffsetDateTime) -> String {
    t.to_offset(VIETNAM)
        .format(format_description!("[day]/[month]/[year] [hour]:[minute]"))
        .unwrap_or_default()
}

/// Parses a form's date and time as Vietnam time: `dd/mm/yyyy HH:MM` (the
/// day and month may have one digit), or ISO `yyyy-mm-ddTHH:MM`.
#[must_use]
pub fn parse_datetime_field(text: &str) -> Option<prost_types::Timestamp> {
    let text = text.trim();
    let t = PrimitiveDateTime::parse(
        text,
        format_description!(
            "[day padding:none]/[month padding:none]/[year] [hour padding:none]:[minute]"
        ),
    )
    .or_else(|_| {
        PrimitiveDateTime::parse(
            text,
            format_description!("[year]-[month]-[day]T[hour]:[minute]"),
        )
    })
    .ok()?
    .assume_offset(VIETNAM);
    Some(prost_types::Timestamp {
        seconds: t.unix_timestamp(),
        nanos: 0,
    })
}

/// Time left until `due` from `now` (Unix seconds), in the request's language:
/// "còn 11 giờ 58 phút", "quá hạn 2 giờ 5 phút".
#[must_use]
pub fn time_left(due: i64, now: i64) -> String {
    let late = due < now;
    let secs = (due - now).abs();
    let (days, hours, minutes) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (late, days > 0) {
        (false, true) => trf("còn {0} ngày {1} giờ", &[&days, &hours]),
        (false, false) => trf("còn {0} giờ {1} phút", &[&hours, &minutes]),
        (true, true) => trf("quá hạn {0} ngày {1} giờ", &[&days, &hours]),
        (true, false) => trf("quá hạn {0} giờ {1} phút", &[&hours, &minutes]),
    }
}

/// A role's name, in the request's language.
#[must_use]
pub fn role_vi(role: Role) -> &'static str {
    match role {
        Role::HotlineOperator => tr("Điện thoại viên Tổng đài 111"),
        Role::CommuneOfficer => tr("Cán bộ bảo vệ trẻ em cấp xã"),
        Role::ProvinceOfficer => tr("Cán bộ cấp tỉnh"),
        Role::Police => tr("Công an"),
        Role::AgencyStaff => tr("Cán bộ cơ quan, tổ chức"),
        Role::Auditor => tr("Thanh tra, kiểm tra"),
        Role::Administrator => tr("Quản trị danh mục"),
    }
}

/// The link to the page in the other language: `/ngon-ngu?chon=<tag>&ve=<this page>`
/// sets the `lang` cookie and comes back here.
#[must_use]
pub fn language_switch() -> Markup {
    let other = i18n::current().other();
    let back = serde_urlencoded::to_string([("chon", other.tag()), ("ve", &i18n::here())])
        .unwrap_or_default();
    html! {
        a.lang #lang-switch href=(format!("/ngon-ngu?{back}")) lang=(other.tag()) hreflang=(other.tag()) {
            (other.own_name())
        }
    }
}

/// A hidden CSRF field for a form.
#[must_use]
pub fn csrf_input(csrf: &str) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(csrf); }
}

/// Who is signed in, for the layout.
pub struct Viewer<'a> {
    /// The token's claims.
    pub claims: &'a Claims,
    /// The session's CSRF token (for the sign-out form).
    pub csrf: &'a str,
}

/// The menu of a role: (path, label).
#[must_use]
pub fn menu(role: Role) -> Vec<(&'static str, &'static str)> {
    match role {
        Role::HotlineOperator => vec![
            ("/bao-cao/moi", tr("Tiếp nhận thông báo (Mẫu 01)")),
            ("/bao-cao", tr("Thông báo tôi đã tiếp nhận")),
        ],
        Role::CommuneOfficer | Role::ProvinceOfficer | Role::Auditor => vec![
            ("/ho-so", tr("Hồ sơ vụ việc")),
            ("/thong-ke", tr("Thống kê (Thông tư 13)")),
        ],
        Role::Police | Role::AgencyStaff => vec![("/hop-thu", tr("Hộp thư chuyển gửi"))],
        Role::Administrator => vec![],
    }
}

/// A whole page: title, who is signed in (role, agency, units) with the
/// sign-out button, the role's menu, then `body`.
#[must_use]
pub fn page(title: &str, viewer: Option<&Viewer<'_>>, body: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(i18n::current().tag()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · baove" }
                link rel="stylesheet" href="/static/console.css";
                script src="/static/console.js" defer {}
            }
            body {
                header {
                    a.brand href="/" { (tr("baove · Bảo vệ trẻ em")) }
                    (language_switch())
                    @if let Some(v) = viewer {
                        div.who #who {
                            span.user { (v.claims.sub) }
                            " · " span.role { (role_vi(v.claims.role)) }
                            @if !v.claims.agency.is_empty() { " · " span.agency { (v.claims.agency) } }
                            @if !v.claims.units.is_empty() { " · " span.units { (v.claims.units.join(", ")) } }
                            " · " span.session-end title=(tr("Phiên đăng nhập kết thúc lúc này: lưu việc đang làm trước đó")) {
                                (tr("phiên đến ")) (when(Some(&prost_types::Timestamp { seconds: i64::try_from(v.claims.exp).unwrap_or(i64::MAX), nanos: 0 })))
                            }
                            form.inline method="post" action="/dang-xuat" {
                                (csrf_input(v.csrf))
                                button type="submit" { (tr("Đăng xuất")) }
                            }
                        }
                        nav {
                            @for (href, label) in menu(v.claims.role) {
                                a href=(href) { (label) }
                            }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_an_instant_then_it_is_written_in_vietnam_time_day_first() {
        // 2026-12-01T17:30:00Z is 02/12/2026 00:30 in Hà Nội.
        let ts = prost_types::Timestamp {
            seconds: 1_796_146_200,
            nanos: 0,
        };
        assert_eq!(when(Some(&ts)), "02/12/2026 00:30");
        assert_eq!(when(None), "");
        for typed in ["02/12/2026 00:30", "2/12/2026 0:30", "2026-12-02T00:30"] {
            let back = parse_datetime_field(typed).unwrap_or_default();
            assert_eq!(back.seconds, ts.seconds, "{typed}");
        }
        assert_eq!(parse_datetime_field("02/12/2026"), None);
        assert_eq!(
            parse_datetime_field("12/31/2026 10:00"),
            None,
            "no month 31"
        );
        let shown =
            OffsetDateTime::from_unix_timestamp(ts.seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        assert_eq!(datetime_field(shown), "02/12/2026 00:30");
    }

    #[test]
    fn given_a_due_time_then_the_time_left_reads_in_vietnamese() {
        assert_eq!(time_left(3600 * 11 + 58 * 60, 0), "còn 11 giờ 58 phút");
        assert_eq!(time_left(0, 2 * 3600 + 5 * 60), "quá hạn 2 giờ 5 phút");
        assert_eq!(time_left(86_400 * 5 + 3600, 0), "còn 5 ngày 1 giờ");
    }
}
