//! Sign-in (a token, or the development sign-in) and sign-out; a session that
//! ended while a Mẫu 01 report was being typed resumes it.

use crate::*;

#[derive(serde::Deserialize)]
pub(crate) struct SignInQuery {
    #[serde(rename = "het-han")]
    expired: Option<String>,
}

pub(crate) async fn sign_in_page(
    State(app): State<Arc<App>>,
    query: axum::extract::Query<SignInQuery>,
) -> Response {
    let csrf = session::random_token();
    let body = sign_in_body(&app, &csrf, query.expired.is_some(), None, &[]);
    let cookie = session::set_cookie(SIGN_IN_COOKIE, &csrf, app.config.secure_cookies, 600);
    (
        [(header::SET_COOKIE, cookie)],
        view::page(tr("Đăng nhập"), None, &body),
    )
        .into_response()
}

/// The prefix of the fields a sign-in form carries back to the form whose
/// post found the session ended (the Mẫu 01 report being typed).
pub(crate) const RESUME: &str = "resume.";

pub(crate) fn sign_in_body(
    app: &App,
    csrf: &str,
    expired: bool,
    problem: Option<&str>,
    resume: &[(String, String)],
) -> Markup {
    let carried = html! {
        @for (name, value) in resume { input type="hidden" name=(format!("{RESUME}{name}")) value=(value); }
    };
    html! {
        @if expired { p.warning #expired { (tr("Phiên làm việc đã hết hạn: hãy đăng nhập lại.")) } }
        @if !resume.is_empty() {
            p.warning #resume { (tr("Thông báo bạn đang nhập chưa được ghi và không bị mất: đăng nhập lại để xem lại và gửi.")) }
        }
        @if let Some(problem) = problem { p.error #problem role="alert" { (problem) } }
        form method="post" action="/dang-nhap" {
            input type="hidden" name=(CSRF_FIELD) value=(csrf);
            input type="hidden" name="mode" value="token";
            (carried)
            div.field {
                label for="token" { (tr("Mã đăng nhập do hệ thống định danh cấp (JWT)")) }
                textarea id="token" name="token" rows="3" autocomplete="off" {}
            }
            button.primary type="submit" { (tr("Đăng nhập")) }
        }
        @if app.dev_issuer.is_some() {
            section.dev #dev-sign-in {
                h2 { (tr("Đăng nhập thử (chỉ trên máy phát triển)")) }
                p.warning { (tr("CHỈ DÙNG TRÊN MÁY CỤC BỘ: trang này tự cấp mã cho bất kỳ ai. Không bao giờ bật ở nơi có dữ liệu thật.")) }
                form method="post" action="/dang-nhap" {
                    input type="hidden" name=(CSRF_FIELD) value=(csrf);
                    input type="hidden" name="mode" value="dev";
                    (carried)
                    div.field { label for="user" { (tr("Người dùng")) } input type="text" id="user" name="user" value="op-17"; }
                    div.field {
                        label for="role" { (tr("Vai trò")) }
                        select id="role" name="role" {
                            @for r in Role::ALL { option value=(r.as_str()) { (view::role_vi(r)) } }
                        }
                    }
                    div.field { label for="agency" { (tr("Cơ quan (mã)")) } input type="text" id="agency" name="agency" value="vn/tong-dai-111"; }
                    div.field { label for="units" { (tr("Đơn vị phụ trách (mã, cách nhau bởi dấu phẩy)")) } input type="text" id="units" name="units"; }
                    button type="submit" { (tr("Đăng nhập thử")) }
                }
            }
        }
    }
}

pub(crate) async fn sign_in(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let Ok(Form(pairs)) = form else {
        return error_page(StatusCode::BAD_REQUEST, tr("Biểu mẫu không đọc được."));
    };
    let form = FormData(pairs);
    let cookie = session::cookie_value(&headers, SIGN_IN_COOKIE).unwrap_or_default();
    if !session::same_secret(form.get(CSRF_FIELD), &cookie) {
        return error_page(
            StatusCode::FORBIDDEN,
            tr(
                "Biểu mẫu đăng nhập thiếu mã bảo vệ hoặc đã quá 10 phút (CSRF): mở lại trang đăng nhập.",
            ),
        );
    }
    let token = match (form.get("mode"), &app.dev_issuer) {
        ("dev", Some(issuer)) => {
            let Some(role) = Role::parse(form.get("role")) else {
                return error_page(StatusCode::BAD_REQUEST, tr("Vai trò không hợp lệ."));
            };
            let units: Vec<String> = form
                .get("units")
                .split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_owned)
                .collect();
            match issuer.issue(
                form.get("user"),
                role,
                form.get("agency"),
                &units,
                DEV_TOKEN_SECS,
            ) {
                Ok(t) => t,
                Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
        ("dev", None) => {
            return error_page(StatusCode::FORBIDDEN, tr("Đăng nhập thử không được bật."));
        }
        _ => form.get("token").to_owned(),
    };
    let claims: Claims = match app.verifier.verify(&token) {
        Ok(c) => c,
        Err(e) => {
            let csrf = session::random_token();
            let body = sign_in_body(
                &app,
                &csrf,
                false,
                Some(&trf("Mã đăng nhập không được chấp nhận: {0}", &[&e])),
                &resumed(&form),
            );
            let cookie = session::set_cookie(SIGN_IN_COOKIE, &csrf, app.config.secure_cookies, 600);
            return (
                StatusCode::UNAUTHORIZED,
                [(header::SET_COOKIE, cookie)],
                view::page(tr("Đăng nhập"), None, &body),
            )
                .into_response();
        }
    };
    let ttl = i64::try_from(claims.exp.saturating_sub(session::now_secs())).unwrap_or(0);
    tracing::info!(user = %claims.sub, role = %claims.role, "signed in");
    let id = app.sessions.open(token, claims);
    let resume = resumed(&form);
    let mut response = match app.sessions.get(&id) {
        // The report whose post found the session ended, shown again with
        // the new session's CSRF token and its own request id (a report
        // that did get recorded is not recorded twice).
        Some(s) if !resume.is_empty() => {
            let notice = html! {
                p.warning #resumed { (tr("Đã đăng nhập lại. Thông báo chưa được ghi: kiểm tra rồi bấm “Ghi thông báo”.")) }
            };
            let form = hotline::form_page(
                &FormData(resume),
                &Errors::default(),
                &hotline::Prompts::default(),
                &s.csrf,
            );
            signed_page(
                &s,
                tr("Tiếp nhận thông báo (Mẫu 01)"),
                &html! { (notice) (form) },
            )
        }
        _ => Redirect::to("/").into_response(),
    };
    let secure = app.config.secure_cookies;
    for cookie in [
        session::set_cookie(SESSION_COOKIE, &id, secure, ttl),
        session::set_cookie(SIGN_IN_COOKIE, "", secure, 0),
    ] {
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// The fields a sign-in form carried back, without their prefix.
pub(crate) fn resumed(form: &FormData) -> Vec<(String, String)> {
    form.0
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(RESUME)?.to_owned(), v.clone())))
        .collect()
}

/// A Mẫu 01 post that found no live session: the sign-in page, carrying
/// what was typed (never the old CSRF token) so nothing is lost.
pub(crate) fn sign_in_resuming(
    app: &App,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
    expired: bool,
) -> Response {
    let Ok(Form(pairs)) = form else {
        return Problem::SignIn { expired }.into_response();
    };
    let carried: Vec<(String, String)> = pairs
        .into_iter()
        .filter(|(k, _)| k != CSRF_FIELD && !k.starts_with(RESUME))
        .collect();
    let csrf = session::random_token();
    let body = sign_in_body(app, &csrf, expired, None, &carried);
    let cookie = session::set_cookie(SIGN_IN_COOKIE, &csrf, app.config.secure_cookies, 600);
    (
        StatusCode::UNAUTHORIZED,
        [(header::SET_COOKIE, cookie)],
        view::page(tr("Đăng nhập"), None, &body),
    )
        .into_response()
}

pub(crate) async fn sign_out(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Page {
    let s = signed(&app, &headers)?;
    posted(&s, form)?;
    if let Some(id) = session::cookie_value(&headers, SESSION_COOKIE) {
        app.sessions.close(&id);
    }
    let cookie = session::set_cookie(SESSION_COOKIE, "", app.config.secure_cookies, 0);
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/dang-nhap")).into_response())
}
