//! `baove-console`: the web application of baove, in Vietnamese (English
//! by a switch), over the intake, casework and referral gRPC services.
//!
//! The console holds no privileges and stores no case data: every page is
//! made by calling the services with the signed-in user's own token, so the
//! services' permissions, redaction and access log apply unchanged. Pages
//! are rendered on the server (maud, escaped at compile time) and work
//! without JavaScript; the Content-Security-Policy forbids inline script.
//!
//! # Layout
//! - [`config`]: flags and environment.
//! - [`session`]: the session cookie, CSRF tokens.
//! - [`i18n`]: the request's language; every label through `tr`, its
//!   English in `en.txt`.
//! - [`view`]: the layout, Vietnamese names, times in Asia/Ho_Chi_Minh.
//! - [`form`]: posted forms; a service's refusal as messages beside fields.
//! - [`hotline`]: the operator's Mẫu 01 form, receipt and reports.
//! - [`cases`]: the officers' case list and case page with the steps'
//!   forms (Mẫu 02, emergency measures, referral requests).
//! - [`steps`]: the procedure's other steps (Mẫu 03–06, closing, reopening,
//!   notes).
//! - [`referrals`]: the police's and agencies' live inbox.
//! - [`audit`]: the auditor's panel: chain, checkpoint, export, access log.
//! - [`stats`]: the department's Thông tư 13 indicators, chart and CSV.
//! - [`upstream`]: the processes of each service; calls go to the active.
//! - this file: the routes, sign-in, the language switch, security headers
//!   and error pages.

pub mod audit;
pub mod cases;
pub mod config;
pub mod form;
pub mod hotline;
pub mod i18n;
pub mod referrals;
pub mod session;
pub mod stats;
pub mod steps;
pub mod upstream;
pub mod view;

use std::sync::Arc;

use i18n::{tr, trf};
use std::time::Duration;

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use baove_proto::v1 as p;
use baove_security::client::{AuthChannel, Bearer};
use baove_security::{Claims, Issuer, Role, Verifier};
use maud::{Markup, html};

pub use config::Config;
use form::{Errors, FormData};
use session::{CSRF_FIELD, SESSION_COOKIE, SIGN_IN_COOKIE, Session, Sessions};
use view::Viewer;

/// The console's shared state.
pub struct App {
    config: Config,
    verifier: Verifier,
    dev_issuer: Option<Issuer>,
    sessions: Sessions,
    intake: Arc<upstream::Upstream>,
    casework: Arc<upstream::Upstream>,
    referral: Arc<upstream::Upstream>,
}

/// The stylesheet, shipped in the binary.
const CSS: &str = include_str!("../static/console.css");
/// The script of the live parts (no inline script anywhere).
const JS: &str = include_str!("../static/console.js");

/// The Content-Security-Policy of every answer: nothing inline, nothing
/// from elsewhere, no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// A token minted by the development sign-in lives this long (a shift).
const DEV_TOKEN_SECS: u64 = 12 * 3600;

impl App {
    /// The console for `config`: reads the trusted keys (and the
    /// development issuer key when set); connects to the services lazily.
    ///
    /// # Errors
    /// A refused setting, an unreadable key, an invalid service address.
    pub fn new(config: Config) -> anyhow::Result<Arc<Self>> {
        config.check().map_err(anyhow::Error::msg)?;
        let keys = config
            .auth_public_keys
            .iter()
            .map(|path| baove_security::token::read_verifying_key(path))
            .collect::<Result<Vec<_>, _>>()?;
        let dev_issuer = match &config.dev_issuer_key {
            Some(path) => {
                tracing::warn!(
                    "development sign-in is ON: anyone who reaches this console can sign in as anyone"
                );
                Some(Issuer::from_file(path)?)
            }
            None => None,
        };
        Ok(Arc::new(Self {
            verifier: Verifier::new(&keys),
            dev_issuer,
            sessions: Sessions::default(),
            intake: upstream::Upstream::new(&config.intake)?,
            casework: upstream::Upstream::new(&config.casework)?,
            referral: upstream::Upstream::new(&config.referral)?,
            config,
        }))
    }

    fn with_token(up: &upstream::Upstream, token: &str) -> Result<AuthChannel, Problem> {
        let bearer =
            Bearer::new(token, "").map_err(|e| Problem::Page(StatusCode::UNAUTHORIZED, e))?;
        Ok(tonic::service::interceptor::InterceptedService::new(
            up.channel(),
            bearer,
        ))
    }

    fn intake(
        &self,
        s: &Session,
    ) -> Result<p::intake_service_client::IntakeServiceClient<AuthChannel>, Problem> {
        Ok(p::intake_service_client::IntakeServiceClient::new(
            Self::with_token(&self.intake, &s.token)?,
        ))
    }

    fn casework(
        &self,
        s: &Session,
    ) -> Result<p::case_service_client::CaseServiceClient<AuthChannel>, Problem> {
        Ok(p::case_service_client::CaseServiceClient::new(
            Self::with_token(&self.casework, &s.token)?,
        ))
    }

    fn referral(
        &self,
        s: &Session,
    ) -> Result<p::referral_service_client::ReferralServiceClient<AuthChannel>, Problem> {
        Ok(p::referral_service_client::ReferralServiceClient::new(
            Self::with_token(&self.referral, &s.token)?,
        ))
    }

    fn reporting(
        &self,
        s: &Session,
    ) -> Result<p::reporting_service_client::ReportingServiceClient<AuthChannel>, Problem> {
        Ok(p::reporting_service_client::ReportingServiceClient::new(
            Self::with_token(&self.casework, &s.token)?,
        ))
    }

    fn audit(
        &self,
        s: &Session,
    ) -> Result<p::audit_service_client::AuditServiceClient<AuthChannel>, Problem> {
        Ok(p::audit_service_client::AuditServiceClient::new(
            Self::with_token(&self.casework, &s.token)?,
        ))
    }
}

/// The routes, with the security headers on every answer.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/ngon-ngu", get(choose_language))
        .route("/dang-nhap", get(sign_in_page).post(sign_in))
        .route("/dang-xuat", post(sign_out))
        .route("/bao-cao/moi", get(new_report).post(submit_report))
        .route("/bao-cao", get(my_reports))
        .route("/bao-cao/{id}", get(report_receipt))
        .route("/ho-so", get(case_list))
        .route("/ho-so/{id}", get(case_page))
        .route("/ho-so/{id}/mau-02", post(record_assessment))
        .route("/ho-so/{id}/khan-cap", post(record_measure))
        .route("/ho-so/{id}/chuyen-gui", post(request_referral))
        .route("/ho-so/{id}/buoc/{step}", post(record_step))
        .route("/ho-so/{id}/xuat", get(export_case))
        .route("/ho-so/{id}/su-kien", get(case_events))
        .route("/thong-ke", get(statistics))
        .route("/thong-ke/csv", get(statistics_csv))
        .route("/hop-thu", get(inbox))
        .route("/hop-thu/bang", get(inbox_table))
        .route("/hop-thu/su-kien", get(inbox_events))
        .route("/hop-thu/{id}/{action}", post(referral_step))
        .route(
            "/static/console.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS) }),
        )
        .route(
            "/static/console.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    JS,
                )
            }),
        )
        .fallback(|| async { error_page(StatusCode::NOT_FOUND, tr("Không có trang này.")) })
        .layer(middleware::from_fn(guard))
        .layer(middleware::from_fn(language))
        .with_state(app)
}

/// Binds, writes the address file, serves until SIGTERM or Ctrl-C.
///
/// # Errors
/// A refused setting, a key that cannot be read, an address in use.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let listen = config.listen;
    let addr_file = config.addr_file.clone();
    let app = App::new(config)?;
    // Which process of each service is active, before the first page.
    for up in [&app.intake, &app.casework, &app.referral] {
        up.refresh().await;
        up.watch();
    }
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let bound = listener.local_addr()?;
    if let Some(path) = addr_file {
        std::fs::write(path, bound.to_string())?;
    }
    tracing::info!(%bound, "console listening: http://{bound}/");
    axum::serve(listener, router(app))
        .with_graceful_shutdown(async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                () = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
        })
        .await?;
    Ok(())
}

/// Runs the request in its language (the `lang` cookie; Vietnamese
/// without one), with its path for the language switch.
async fn language(request: Request, next: Next) -> Response {
    let lang = session::cookie_value(request.headers(), i18n::LANG_COOKIE)
        .and_then(|tag| i18n::Lang::parse(&tag))
        .unwrap_or_default();
    let here = request
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    i18n::scope(i18n::Context { lang, here }, next.run(request)).await
}

#[derive(serde::Deserialize)]
struct LanguageQuery {
    chon: String,
    #[serde(default)]
    ve: String,
}

/// The language switch: keeps the choice in the `lang` cookie (a year) and
/// goes back to the page it came from (a path of this console only).
async fn choose_language(
    State(app): State<Arc<App>>,
    query: Result<axum::extract::Query<LanguageQuery>, QueryRejection>,
) -> Page {
    let axum::extract::Query(query) = query.map_err(|e| bad_query(&e))?;
    let Some(lang) = i18n::Lang::parse(&query.chon) else {
        return Err(Problem::Page(
            StatusCode::BAD_REQUEST,
            trf("Không có ngôn ngữ “{0}”: chọn vi hoặc en.", &[&query.chon]),
        ));
    };
    let back = local_path(&query.ve);
    let cookie = session::set_cookie(
        i18n::LANG_COOKIE,
        lang.tag(),
        app.config.secure_cookies,
        365 * 86_400,
    );
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to(back)).into_response())
}

/// `path` when it is a path of this console (`/…`, not `//host` nor
/// `/\host`, which browsers read as another site); `/` otherwise.
fn local_path(path: &str) -> &str {
    let local = path.starts_with('/')
        && !path.starts_with("//")
        && !path.starts_with("/\\")
        && !path.chars().any(char::is_control);
    if local { path } else { "/" }
}

/// Security headers on every answer; a cross-site post (an `Origin` that is
/// not this host) is refused before any handler runs.
async fn guard(request: Request, next: Next) -> Response {
    if request.method() == Method::POST && !same_origin(request.headers()) {
        return error_page(
            StatusCode::FORBIDDEN,
            tr("Biểu mẫu được gửi từ một trang khác: đã từ chối."),
        );
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        // same-origin, not no-referrer: under no-referrer browsers send
        // `Origin: null` with the console's own form posts.
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Whether a post's `Origin` (when the browser sent one) is this host.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| !host.is_empty() && rest == host)
}

/// A page for a refusal or a failure: the status, a message, a way back.
/// Never a stack trace.
fn error_page(status: StatusCode, message: &str) -> Response {
    let body = html! {
        p.error #problem role="alert" { (message) }
        p { a href="/" { (tr("Về trang chính")) } }
    };
    (status, view::page(tr("Không thực hiện được"), None, &body)).into_response()
}

/// The signed-in session of a request, or a redirect to sign in.
fn signed(app: &App, headers: &HeaderMap) -> Result<Session, Problem> {
    let id = session::cookie_value(headers, SESSION_COOKIE);
    id.as_deref()
        .and_then(|id| app.sessions.get(id))
        .ok_or(Problem::SignIn {
            expired: id.is_some(),
        })
}

/// Why a request gets no page of its own: not signed in (or the session
/// ended), or a refusal shown as a page.
#[derive(Debug)]
pub enum Problem {
    /// To the sign-in page; `expired` says the session had ended.
    SignIn {
        /// A session cookie came, its session is gone.
        expired: bool,
    },
    /// A page with this status and message.
    Page(StatusCode, String),
}

impl Problem {
    fn of(status: &tonic::Status) -> Self {
        Self::Page(status_http(status), form::code_vi(status))
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn { expired: true } => Redirect::to("/dang-nhap?het-han=1").into_response(),
            Self::SignIn { expired: false } => Redirect::to("/dang-nhap").into_response(),
            Self::Page(status, message) => error_page(status, &message),
        }
    }
}

/// A posted form of a signed-in session, its CSRF token checked.
fn posted(
    session: &Session,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<FormData, Problem> {
    let Ok(Form(pairs)) = form else {
        return Err(Problem::Page(
            StatusCode::BAD_REQUEST,
            tr("Biểu mẫu không đọc được.").into(),
        ));
    };
    let form = FormData(pairs);
    if !session::same_secret(form.get(CSRF_FIELD), &session.csrf) {
        return Err(Problem::Page(
            StatusCode::FORBIDDEN,
            tr("Biểu mẫu thiếu mã bảo vệ hoặc mã đã hết hạn (CSRF): mở lại trang rồi gửi lại.")
                .into(),
        ));
    }
    Ok(form)
}

fn viewer(s: &Session) -> Viewer<'_> {
    Viewer {
        claims: &s.claims,
        csrf: &s.csrf,
    }
}

fn signed_page(s: &Session, title: &str, body: &Markup) -> Response {
    view::page(title, Some(&viewer(s)), body).into_response()
}

/// A query string that does not read: a page naming the parameter.
fn bad_query(e: &QueryRejection) -> Problem {
    Problem::Page(
        StatusCode::BAD_REQUEST,
        trf(
            "Địa chỉ trang có tham số không hợp lệ: {0}",
            &[&e.body_text()],
        ),
    )
}

/// A page, or why there is none.
type Page = Result<Response, Problem>;

fn now_secs() -> i64 {
    i64::try_from(session::now_secs()).unwrap_or(i64::MAX)
}

async fn home(State(app): State<Arc<App>>, headers: HeaderMap) -> Page {
    let s = signed(&app, &headers)?;
    let body = html! {
        p { (tr("Xin chào ")) strong { (s.claims.sub) } (tr(". Chọn việc cần làm:")) }
        ul {
            @for (href, label) in view::menu(s.claims.role) { li { a href=(href) { (label) } } }
        }
        @if view::menu(s.claims.role).is_empty() {
            p { (tr("Các trang cho vai trò này đang được xây dựng; dùng công cụ dòng lệnh `baove`.")) }
        }
    };
    Ok(signed_page(&s, tr("Trang chính"), &body))
}

#[derive(serde::Deserialize)]
struct SignInQuery {
    #[serde(rename = "het-han")]
    expired: Option<String>,
}

async fn sign_in_page(
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
const RESUME: &str = "resume.";

fn sign_in_body(
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

async fn sign_in(
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
fn resumed(form: &FormData) -> Vec<(String, String)> {
    form.0
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(RESUME)?.to_owned(), v.clone())))
        .collect()
}

/// A Mẫu 01 post that found no live session: the sign-in page, carrying
/// what was typed (never the old CSRF token) so nothing is lost.
fn sign_in_resuming(
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

async fn sign_out(
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

async fn new_report(State(app): State<Arc<App>>, headers: HeaderMap) -> Page {
    let s = signed(&app, &headers)?;
    let form = FormData(vec![(
        "request_id".into(),
        uuid::Uuid::now_v7().to_string(),
    )]);
    let body = hotline::form_page(
        &form,
        &Errors::default(),
        &hotline::Prompts::default(),
        &s.csrf,
    );
    Ok(signed_page(&s, tr("Tiếp nhận thông báo (Mẫu 01)"), &body))
}

async fn submit_report(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Page {
    let s = match signed(&app, &headers) {
        Ok(s) => s,
        Err(Problem::SignIn { expired }) => return Ok(sign_in_resuming(&app, form, expired)),
        Err(other) => return Err(other),
    };
    let form = posted(&s, form)?;
    let again = |status: StatusCode, errors: &Errors, prompts: &hotline::Prompts| {
        let body = hotline::form_page(&form, errors, prompts, &s.csrf);
        (
            status,
            signed_page(&s, tr("Tiếp nhận thông báo (Mẫu 01)"), &body),
        )
            .into_response()
    };
    let mut intake = app.intake(&s)?;
    // The place: a unit picked from the choices, an id, or words to search.
    let typed = form.get("incident_unit");
    let mut unit_id = form.get("incident_unit_pick").to_owned();
    let mut choices = Vec::new();
    let mut errors = Errors::default();
    if unit_id.is_empty() && hotline::is_unit_id(typed) {
        typed.clone_into(&mut unit_id);
    } else if unit_id.is_empty() && !typed.is_empty() {
        match intake
            .search_units(p::SearchUnitsRequest {
                query: typed.to_owned(),
                on: String::new(),
                limit: 10,
            })
            .await
        {
            Ok(found) => {
                let found = found.into_inner().units;
                match found.as_slice() {
                    [only] => unit_id.clone_from(&only.unit_id),
                    [] => {
                        errors.field("incident_unit", tr("Không tìm thấy đơn vị nào có tên này."))
                    }
                    _ => {
                        errors.field(
                            "incident_unit",
                            tr("Có nhiều đơn vị trùng tên: chọn một đơn vị bên dưới."),
                        );
                        choices = found;
                    }
                }
            }
            Err(status) => errors = form::from_status::<hotline::HotlineFields>(&status),
        }
    }
    let request = match hotline::request(&form, &unit_id) {
        Ok(r) => r,
        Err(more) => {
            for (field, messages) in more.fields {
                for m in messages {
                    errors.field(field, m);
                }
            }
            let prompts = hotline::Prompts {
                choices,
                duplicate: None,
            };
            return Ok(again(StatusCode::UNPROCESSABLE_ENTITY, &errors, &prompts));
        }
    };
    let mut prompts = hotline::Prompts {
        choices,
        duplicate: None,
    };
    // Before recording: may it be about a child already reported? The
    // operator asks the caller, then confirms. A check that cannot be made
    // never holds a report back: the submit makes the same check and the
    // receipt shows its warning.
    if !form.checked("confirm_duplicate") {
        match intake
            .check_hotline_report(p::CheckHotlineReportRequest {
                report: request.report.clone(),
            })
            .await
        {
            Ok(check) => {
                let check = check.into_inner();
                if check.possible_duplicate {
                    prompts.duplicate = Some(check.possible_duplicate_case_ids);
                    return Ok(again(StatusCode::OK, &errors, &prompts));
                }
            }
            // A refused report is refused again by the submit, beside its
            // fields.
            Err(status) if status.code() == tonic::Code::InvalidArgument => {}
            Err(status) => {
                tracing::warn!(code = ?status.code(), "duplicate check not made; submitting");
            }
        }
    }
    match intake.submit_hotline_report(request).await {
        Ok(receipt) => {
            let receipt = receipt.into_inner();
            tracing::info!(intake_id = %receipt.intake_id, already = receipt.already_recorded, "report recorded");
            Ok(Redirect::to(&format!("/bao-cao/{}", receipt.intake_id)).into_response())
        }
        Err(status) => {
            let mut refused = form::from_status::<hotline::HotlineFields>(&status);
            // A place error of the search stays unless the service has its own.
            for (field, messages) in errors.fields {
                refused.fields.entry(field).or_insert(messages);
            }
            Ok(again(StatusCode::UNPROCESSABLE_ENTITY, &refused, &prompts))
        }
    }
}

async fn my_reports(State(app): State<Arc<App>>, headers: HeaderMap) -> Page {
    let s = signed(&app, &headers)?;
    let mut intake = app.intake(&s)?;
    match intake
        .list_intakes(p::ListIntakesRequest {
            page: Some(p::PageRequest {
                page_size: 50,
                page_token: String::new(),
            }),
            ..p::ListIntakesRequest::default()
        })
        .await
    {
        Ok(list) => Ok(signed_page(
            &s,
            tr("Thông báo tôi đã tiếp nhận"),
            &hotline::list(&list.into_inner().intakes),
        )),
        Err(status) => Err(Problem::of(&status)),
    }
}

async fn report_receipt(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Page {
    let s = signed(&app, &headers)?;
    let mut intake = app.intake(&s)?;
    match intake
        .get_intake(p::GetIntakeRequest { intake_id: id })
        .await
    {
        Ok(found) => {
            let found = found.into_inner().intake.unwrap_or_default();
            Ok(signed_page(
                &s,
                tr("Đã ghi thông báo"),
                &hotline::receipt(&found),
            ))
        }
        Err(status) => Err(Problem::of(&status)),
    }
}

fn status_http(status: &tonic::Status) -> StatusCode {
    match status.code() {
        tonic::Code::NotFound => StatusCode::NOT_FOUND,
        tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
        tonic::Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
        _ => StatusCode::BAD_GATEWAY,
    }
}

async fn case_list(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    query: Result<axum::extract::Query<cases::ListFilter>, QueryRejection>,
) -> Page {
    let s = signed(&app, &headers)?;
    let axum::extract::Query(filter) = query.map_err(|e| bad_query(&e))?;
    let mut casework = app.casework(&s)?;
    match casework
        .list_cases(p::ListCasesRequest {
            status: p::CaseStatus::Open as i32,
            officer_id: if filter.mine.is_some() {
                s.claims.sub.clone()
            } else {
                String::new()
            },
            overdue: filter.overdue.is_some(),
            page: Some(p::PageRequest {
                page_size: 200,
                page_token: String::new(),
            }),
            ..p::ListCasesRequest::default()
        })
        .await
    {
        Ok(list) => {
            let mut cases = list.into_inner().cases;
            cases::sort_by_urgency(&mut cases);
            Ok(signed_page(
                &s,
                tr("Hồ sơ vụ việc đang xử lý"),
                &cases::list(&cases, now_secs(), &filter),
            ))
        }
        Err(status) => Err(Problem::of(&status)),
    }
}

/// The case's events, read from WatchCase up to the case's version.
async fn timeline(casework: &mut CaseClient, case: &p::Case) -> Vec<cases::TimelineEntry> {
    let mut entries = Vec::new();
    let Ok(stream) = casework
        .watch_case(p::WatchCaseRequest {
            case_id: case.case_id.clone(),
            from_seq: 1,
        })
        .await
    else {
        return entries;
    };
    let mut stream = stream.into_inner();
    let read = async {
        while let Ok(Some(item)) = stream.message().await {
            let detail = item
                .case_event
                .as_ref()
                .map(cases::event_detail)
                .unwrap_or_default();
            let Some(e) = item.event else { continue };
            let seq = e.seq;
            let actor = e
                .actor
                .map(|a| format!("{} ({})", a.user_id, a.role))
                .unwrap_or_default();
            entries.push(cases::TimelineEntry {
                seq,
                event_type: e.event_type,
                recorded_at_ms: e.recorded_at_unix_ms,
                actor,
                detail,
            });
            if seq >= case.version {
                break;
            }
        }
    };
    // The events up to the version are stored: they come at once.
    let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
    entries
}

/// Shows a case (as it stands, or as it stood after event `as_of` for an
/// auditor), with the form `posted` and its errors when a step was
/// refused.
async fn show_case(
    app: &App,
    s: &Session,
    id: String,
    as_of: Option<u64>,
    posted: Option<(cases::Step, &FormData, &Errors)>,
    seen_version: Option<u64>,
    status: StatusCode,
) -> Page {
    let mut casework = app.casework(s)?;
    let current = casework
        .get_case(p::GetCaseRequest {
            case_id: id.clone(),
        })
        .await
        .map_err(|status| Problem::of(&status))?
        .into_inner()
        .case
        .unwrap_or_default();
    let case = match as_of {
        None => current.clone(),
        Some(seq) => casework
            .replay_case(p::ReplayCaseRequest {
                case_id: id.clone(),
                as_of: Some(p::replay_case_request::AsOf::AsOfSeq(seq)),
            })
            .await
            .map_err(|status| Problem::of(&status))?
            .into_inner()
            .case
            .unwrap_or_default(),
    };
    let events = timeline(&mut casework, &current).await;
    let role = s.claims.role;
    let request_id = uuid::Uuid::now_v7().to_string();
    let ctx = cases::PageContext {
        may_act: matches!(role, Role::CommuneOfficer | Role::ProvinceOfficer),
        may_replay: role == Role::Auditor,
        posted,
        request_id: &request_id,
        seen_version,
        csrf: &s.csrf,
    };
    let mut body = cases::page(&case, &events, now_secs(), &ctx, as_of);
    if role == Role::Auditor {
        let audit = audit_of(app, s, &id).await?;
        body = html! { (body) (audit::panel(&id, &audit)) };
    }
    Ok((
        status,
        signed_page(s, &trf("Hồ sơ {0}", &[&case.case_id]), &body),
    )
        .into_response())
}

/// What the auditor's panel shows: each part asked on its own.
async fn audit_of(app: &App, s: &Session, case_id: &str) -> Result<audit::Audit, Problem> {
    let mut client = app.audit(s)?;
    let chain = client
        .verify_stream(p::VerifyStreamRequest {
            stream_id: case_id.to_owned(),
        })
        .await
        .map(tonic::Response::into_inner)
        .map_err(|e| form::code_vi(&e));
    let checkpoint = client
        .get_checkpoint(p::GetCheckpointRequest { fresh: false })
        .await
        .map_err(|e| form::code_vi(&e))
        .and_then(|r| {
            r.into_inner()
                .checkpoint
                .ok_or_else(|| tr("chưa có").to_owned())
        })
        .map(|c| {
            let checked = audit::check_signature(&c);
            (c, checked)
        });
    let access = client
        .list_access(p::ListAccessRequest {
            case_id: case_id.to_owned(),
            limit: 50,
            ..p::ListAccessRequest::default()
        })
        .await
        .map(|r| r.into_inner().entries)
        .map_err(|e| form::code_vi(&e));
    Ok(audit::Audit {
        chain,
        checkpoint,
        access,
    })
}

#[derive(serde::Deserialize)]
struct CaseQuery {
    /// Replay: the case as it stood after this event.
    tai: Option<u64>,
}

async fn case_page(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<axum::extract::Query<CaseQuery>, QueryRejection>,
) -> Page {
    let s = signed(&app, &headers)?;
    let query = query.map_err(|e| bad_query(&e))?;
    show_case(&app, &s, id, query.tai, None, None, StatusCode::OK).await
}

/// After a step: to the case; when refused, the case as it is now with
/// the form kept and the errors beside it (an ABORTED step shows what
/// someone else did first; nothing is resubmitted for the officer).
async fn after_step<T>(
    app: &App,
    s: &Session,
    id: String,
    step: cases::Step,
    form: &FormData,
    outcome: Result<T, tonic::Status>,
    errors_of: fn(&tonic::Status) -> Errors,
) -> Page {
    match outcome {
        Ok(_) => Ok(Redirect::to(&format!("/ho-so/{id}")).into_response()),
        Err(status) => {
            let errors = errors_of(&status);
            let seen = (status.code() == tonic::Code::Aborted)
                .then(|| form.get("expected_version").parse().ok())
                .flatten();
            show_case(
                app,
                s,
                id,
                None,
                Some((step, form, &errors)),
                seen,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

/// A casework client with the user's token.
type CaseClient = p::case_service_client::CaseServiceClient<AuthChannel>;

/// One step posted on a case page: the session and CSRF checked, `call`
/// made with the posted form, then [`after_step`].
async fn case_step<T>(
    app: &App,
    headers: &HeaderMap,
    id: &str,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
    step: cases::Step,
    errors_of: fn(&tonic::Status) -> Errors,
    call: impl AsyncFnOnce(&mut CaseClient, &FormData) -> Result<T, tonic::Status>,
) -> Page {
    let s = signed(app, headers)?;
    let form = posted(&s, form)?;
    let outcome = call(&mut app.casework(&s)?, &form).await;
    after_step(app, &s, id.to_owned(), step, &form, outcome, errors_of).await
}

async fn record_assessment(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Page {
    let step = cases::Step::InitialAssessment;
    case_step(
        &app,
        &headers,
        &id,
        form,
        step,
        form::from_status::<cases::AssessmentFields>,
        async |c: &mut CaseClient, f: &FormData| {
            c.record_initial_assessment(cases::assessment_request(f, &id))
                .await
        },
    )
    .await
}

async fn record_measure(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Page {
    let step = cases::Step::EmergencyMeasure;
    case_step(
        &app,
        &headers,
        &id,
        form,
        step,
        form::from_status::<cases::MeasureFields>,
        async |c: &mut CaseClient, f: &FormData| {
            c.record_emergency_measure(cases::measure_request(f, &id))
                .await
        },
    )
    .await
}

async fn request_referral(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Page {
    let step = cases::Step::Referral;
    case_step(
        &app,
        &headers,
        &id,
        form,
        step,
        form::from_status::<cases::ReferralFields>,
        async |c: &mut CaseClient, f: &FormData| {
            c.request_referral(cases::referral_request(f, &id)).await
        },
    )
    .await
}

#[derive(serde::Deserialize)]
struct EventsQuery {
    /// The first seq (case) or log position (inbox) to tell about.
    tu: Option<u64>,
}

/// Where a server-sent event stream starts: after the last event the
/// browser saw (`Last-Event-ID`, sent when it reconnects, each event's id
/// being its seq or position), else at `tu` from the page, else at 1.
fn resume_from(query: &EventsQuery, headers: &HeaderMap) -> u64 {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or_else(|| query.tu.unwrap_or(1), |seen| seen.saturating_add(1))
}

/// Server-sent events: one per new event of the case (WatchCase from the
/// version the page shows), carrying only its seq; the page then reloads
/// its parts through the user's own session.
async fn case_events(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: axum::extract::Query<EventsQuery>,
) -> Page {
    use futures_util::StreamExt as _;
    let s = signed(&app, &headers)?;
    let stream = app
        .casework(&s)?
        .watch_case(p::WatchCaseRequest {
            case_id: id,
            from_seq: resume_from(&query, &headers),
        })
        .await
        .map_err(|status| Problem::of(&status))?
        .into_inner();
    let events = stream
        .take_while(|item| std::future::ready(item.is_ok()))
        .map(|item| {
            let seq = item.ok().and_then(|m| m.event).map_or(0, |e| e.seq);
            Ok::<_, std::convert::Infallible>(
                axum::response::sse::Event::default()
                    .id(seq.to_string())
                    .data(seq.to_string()),
            )
        });
    Ok(axum::response::sse::Sse::new(events)
        .keep_alive(axum::response::sse::KeepAlive::default())
        .into_response())
}

async fn record_step(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((id, step)): Path<(String, String)>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Page {
    use steps::Request as R;
    let Some(kind) = steps::Kind::parse(&step) else {
        return Err(Problem::Page(
            StatusCode::NOT_FOUND,
            tr("Không có bước này.").into(),
        ));
    };
    let step = cases::Step::Other(kind);
    case_step(
        &app,
        &headers,
        &id,
        form,
        step,
        form::from_status::<steps::StepFields>,
        async |c: &mut CaseClient, f: &FormData| match steps::request(kind, f, &id) {
            R::DetailedAssessment(r) => c.record_detailed_assessment(r).await.map(|_| ()),
            R::DraftPlan(r) => c.draft_plan(r).await.map(|_| ()),
            R::ApprovePlan(r) => c.approve_plan(r).await.map(|_| ()),
            R::SendBackPlan(r) => c.send_back_plan(r).await.map(|_| ()),
            R::Intervention(r) => c.record_intervention(r).await.map(|_| ()),
            R::Review(r) => c.record_review(r).await.map(|_| ()),
            R::Close(r) => c.close_case(r).await.map(|_| ()),
            R::Reopen(r) => c.reopen_case(r).await.map(|_| ()),
            R::Note(r) => c.add_note(r).await.map(|_| ()),
        },
    )
    .await
}

/// The case's export bundle, as a file to keep and check offline.
async fn export_case(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Page {
    let s = signed(&app, &headers)?;
    let bundle = app
        .audit(&s)?
        .export_case(p::ExportCaseRequest {
            case_id: id.clone(),
        })
        .await
        .map_err(|status| Problem::of(&status))?
        .into_inner()
        .bundle_json;
    let file = format!(
        "attachment; filename=\"ho-so-{}.json\"",
        id.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::CONTENT_DISPOSITION, file),
        ],
        bundle,
    )
        .into_response())
}

#[derive(serde::Deserialize)]
struct StatsQuery {
    ky: Option<String>,
    #[serde(rename = "don-vi")]
    don_vi: Option<String>,
}

/// The Thông tư 13 indicators of a period (default: this year so far),
/// with the year before.
async fn statistics(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    query: Result<axum::extract::Query<StatsQuery>, QueryRejection>,
) -> Page {
    let s = signed(&app, &headers)?;
    let query = query.map_err(|e| bad_query(&e))?;
    let this_year = time::OffsetDateTime::now_utc()
        .to_offset(view::VIETNAM)
        .year();
    let period = query
        .ky
        .clone()
        .filter(|k| !k.trim().is_empty())
        .unwrap_or_else(|| this_year.to_string());
    let unit = query.don_vi.clone().unwrap_or_default();
    let answer = app
        .reporting(&s)?
        .get_indicators(p::GetIndicatorsRequest {
            period: period.trim().to_owned(),
            unit_id: unit.trim().to_owned(),
            as_of_position: 0,
            compare_previous_year: true,
        })
        .await;
    let body = match answer {
        Ok(found) => {
            let t = found.into_inner().table.unwrap_or_default();
            let csv = format!(
                "/thong-ke/csv?{}",
                serde_urlencoded::to_string([("ky", &period), ("don-vi", &unit)])
                    .unwrap_or_default()
            );
            html! {
                (stats::query_form(&period, &unit))
                p { a #csv href=(csv) download { (tr("Tải CSV")) } }
                (stats::chart(&t))
                (stats::table(&t))
            }
        }
        Err(status) => {
            let errors = form::from_status::<NoFields>(&status);
            html! {
                (stats::query_form(&period, &unit))
                div.errors role="alert" #errors { @for e in &errors.top { p.error { (e) } } }
            }
        }
    };
    Ok(signed_page(
        &s,
        tr("Thống kê bảo vệ trẻ em (Thông tư 13/2021)"),
        &body,
    ))
}

/// A form without fields of its own: every violation at the top.
struct NoFields;

impl form::FieldMap for NoFields {
    fn form_field(_: &str) -> &'static str {
        ""
    }
    fn rule_vi(_: &str) -> Option<&'static str> {
        None
    }
}

async fn statistics_csv(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    query: Result<axum::extract::Query<StatsQuery>, QueryRejection>,
) -> Page {
    let s = signed(&app, &headers)?;
    let query = query.map_err(|e| bad_query(&e))?;
    let export = app
        .reporting(&s)?
        .export_indicators(p::ExportIndicatorsRequest {
            period: query.ky.clone().unwrap_or_default().trim().to_owned(),
            unit_id: query.don_vi.clone().unwrap_or_default().trim().to_owned(),
            as_of_position: 0,
            compare_previous_year: true,
        })
        .await
        .map_err(|status| Problem::of(&status))?
        .into_inner();
    let name = export.file_name.replace(
        |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '.',
        "_",
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        export.csv,
    )
        .into_response())
}

/// The inbox of the signed-in user's agency.
/// The agency's inbox (its first 200 referrals) and the referral log's
/// position it reflects (the live updates start after it).
async fn inbox_of(app: &App, s: &Session) -> Result<(Vec<p::Referral>, u64), Problem> {
    let inbox = app
        .referral(s)?
        .list_inbox(p::ListInboxRequest {
            agency_id: s.claims.agency.clone(),
            status: 0,
            page: Some(p::PageRequest {
                page_size: 200,
                page_token: String::new(),
            }),
        })
        .await
        .map_err(|status| Problem::of(&status))?
        .into_inner();
    Ok((inbox.referrals, inbox.position))
}

async fn inbox(State(app): State<Arc<App>>, headers: HeaderMap) -> Page {
    let s = signed(&app, &headers)?;
    let (referrals, position) = inbox_of(&app, &s).await?;
    Ok(signed_page(
        &s,
        tr("Hộp thư chuyển gửi"),
        &referrals::page(&referrals, position, now_secs(), &s.csrf, None),
    ))
}

async fn inbox_table(State(app): State<Arc<App>>, headers: HeaderMap) -> Page {
    let s = signed(&app, &headers)?;
    let (referrals, _) = inbox_of(&app, &s).await?;
    Ok(referrals::table(&referrals, now_secs(), &s.csrf, None).into_response())
}

/// Server-sent events: one `referral` event per change to the agency's
/// inbox (WatchInbox) after the position the page's list showed (`tu`),
/// carrying only the referral id, with the change's log position as its
/// id so that a reconnecting browser resumes after it (never the whole
/// history again); the page then reloads its table through the user's own
/// session.
async fn inbox_events(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    query: axum::extract::Query<EventsQuery>,
) -> Page {
    use futures_util::StreamExt as _;
    let s = signed(&app, &headers)?;
    let stream = app
        .referral(&s)?
        .watch_inbox(p::WatchInboxRequest {
            agency_id: s.claims.agency.clone(),
            from_position: resume_from(&query, &headers),
        })
        .await
        .map_err(|status| Problem::of(&status))?
        .into_inner();
    let events = stream
        .take_while(|item| std::future::ready(item.is_ok()))
        .map(|item| {
            let (position, id) = item.ok().map_or((0, String::new()), |m| {
                (
                    m.position,
                    m.referral.map(|r| r.referral_id).unwrap_or_default(),
                )
            });
            Ok::<_, std::convert::Infallible>(
                axum::response::sse::Event::default()
                    .id(position.to_string())
                    .data(id),
            )
        });
    Ok(axum::response::sse::Sse::new(events)
        .keep_alive(axum::response::sse::KeepAlive::default())
        .into_response())
}

async fn referral_step(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Page {
    use referrals::Action;
    let s = signed(&app, &headers)?;
    let form = posted(&s, form)?;
    let Some(action) = Action::parse(&action) else {
        return Err(Problem::Page(
            StatusCode::NOT_FOUND,
            tr("Không có thao tác này.").into(),
        ));
    };
    let mut client = app.referral(&s)?;
    let header = Some(referrals::header(&form, &id));
    let outcome = match action {
        Action::Acknowledge => client
            .acknowledge(p::AcknowledgeRequest { header })
            .await
            .map(|_| ()),
        Action::Accept => client.accept(p::AcceptRequest { header }).await.map(|_| ()),
        Action::Decline => client
            .decline(p::DeclineRequest {
                header,
                reason: form.get("reason").to_owned(),
            })
            .await
            .map(|_| ()),
        Action::ReportOutcome => client
            .report_outcome(p::ReportOutcomeRequest {
                header,
                outcome: form.get("outcome").to_owned(),
                reference: form.get("reference").to_owned(),
            })
            .await
            .map(|_| ()),
        Action::Complete => client
            .complete(p::CompleteRequest { header })
            .await
            .map(|_| ()),
    };
    match outcome {
        Ok(()) => Ok(Redirect::to("/hop-thu").into_response()),
        Err(status) => {
            let errors = form::from_status::<referrals::StepFields>(&status);
            let (referrals, position) = inbox_of(&app, &s).await?;
            let body = referrals::page(
                &referrals,
                position,
                now_secs(),
                &s.csrf,
                Some((&id, &errors)),
            );
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                signed_page(&s, tr("Hộp thư chuyển gửi"), &body),
            )
                .into_response())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_page_to_come_back_to_then_only_this_consoles_own_paths_are_followed() {
        assert_eq!(local_path("/ho-so/HS-1?tai=3"), "/ho-so/HS-1?tai=3");
        for elsewhere in [
            "",
            "https://example.org/",
            "//example.org/",
            "/\\example.org/",
            "/a\r\nSet-Cookie: x=1",
            "ho-so",
        ] {
            assert_eq!(local_path(elsewhere), "/", "{elsewhere:?}");
        }
    }

    #[test]
    fn given_a_reconnecting_browser_then_the_events_resume_after_the_last_it_saw() {
        let query = |tu| EventsQuery { tu };
        let mut headers = HeaderMap::new();
        // First connection: where the page said, else the start.
        assert_eq!(resume_from(&query(Some(42)), &headers), 42);
        assert_eq!(resume_from(&query(None), &headers), 1);
        // A reconnection names the last event's id (its seq or position).
        headers.insert("last-event-id", HeaderValue::from_static("57"));
        assert_eq!(resume_from(&query(Some(42)), &headers), 58);
        // An id that is not a number is ignored.
        headers.insert("last-event-id", HeaderValue::from_static("x"));
        assert_eq!(resume_from(&query(Some(42)), &headers), 42);
    }

    #[test]
    fn given_a_post_then_only_a_same_host_origin_or_none_passes() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(
            same_origin(&headers),
            "no Origin: a form post from an old browser"
        );
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&headers));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&headers));
        headers.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&headers));
    }
}
