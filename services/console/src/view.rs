//! What every page shares: the layout (who is signed in, the menu for the
//! role), times written the Vietnamese way in Asia/Ho_Chi_Minh, and the
//! Vietnamese names of roles, steps and enum values.

use baove_security::{Claims, Role};
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

/// Time left until `due` from `now` (Unix seconds), in Vietnamese words:
/// "còn 11 giờ 58 phút", "quá hạn 2 giờ 5 phút".
#[must_use]
pub fn time_left(due: i64, now: i64) -> String {
    let (word, secs) = if due >= now {
        ("còn", due - now)
    } else {
        ("quá hạn", now - due)
    };
    let (days, hours, minutes) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    if days > 0 {
        format!("{word} {days} ngày {hours} giờ")
    } else {
        format!("{word} {hours} giờ {minutes} phút")
    }
}

/// A role's name in Vietnamese.
#[must_use]
pub const fn role_vi(role: Role) -> &'static str {
    match role {
        Role::HotlineOperator => "Điện thoại viên Tổng đài 111",
        Role::CommuneOfficer => "Cán bộ bảo vệ trẻ em cấp xã",
        Role::ProvinceOfficer => "Cán bộ cấp tỉnh",
        Role::Police => "Công an",
        Role::AgencyStaff => "Cán bộ cơ quan, tổ chức",
        Role::Auditor => "Thanh tra, kiểm tra",
        Role::Administrator => "Quản trị danh mục",
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
            ("/bao-cao/moi", "Tiếp nhận thông báo (Mẫu 01)"),
            ("/bao-cao", "Thông báo tôi đã tiếp nhận"),
        ],
        Role::CommuneOfficer | Role::ProvinceOfficer | Role::Auditor => vec![
            ("/ho-so", "Hồ sơ vụ việc"),
            ("/thong-ke", "Thống kê (Thông tư 13)"),
        ],
        Role::Police | Role::AgencyStaff => vec![("/hop-thu", "Hộp thư chuyển gửi")],
        Role::Administrator => vec![],
    }
}

/// A whole page: title, who is signed in (role, agency, units) with the
/// sign-out button, the role's menu, then `body`.
#[must_use]
pub fn page(title: &str, viewer: Option<&Viewer<'_>>, body: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="vi" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · baove" }
                link rel="stylesheet" href="/static/console.css";
                script src="/static/console.js" defer {}
            }
            body {
                header {
                    a.brand href="/" { "baove · Bảo vệ trẻ em" }
                    @if let Some(v) = viewer {
                        div.who #who {
                            span.user { (v.claims.sub) }
                            " · " span.role { (role_vi(v.claims.role)) }
                            @if !v.claims.agency.is_empty() { " · " span.agency { (v.claims.agency) } }
                            @if !v.claims.units.is_empty() { " · " span.units { (v.claims.units.join(", ")) } }
                            " · " span.session-end title="Phiên đăng nhập kết thúc lúc này: lưu việc đang làm trước đó" {
                                "phiên đến " (when(Some(&prost_types::Timestamp { seconds: i64::try_from(v.claims.exp).unwrap_or(i64::MAX), nanos: 0 })))
                            }
                            form.inline method="post" action="/dang-xuat" {
                                (csrf_input(v.csrf))
                                button type="submit" { "Đăng xuất" }
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
