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

mod routes {
    pub(crate) mod cases;
    pub(crate) mod inbox;
    pub(crate) mod reports;
    pub(crate) mod signin;
    pub(crate) mod stats;
}

use routes::{cases::*, inbox::*, reports::*, signin::*, stats::*};

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
    /// The province of each case a national console found: its casework
    /// partition ([`App::case_channel`]).
    case_provinces: upstream::Whereabouts,
}

/// A referral client with the user's token.
type ReferralClient = p::referral_service_client::ReferralServiceClient<AuthChannel>;

/// casework's reporting service with the user's token.
type ReportingClient = p::reporting_service_client::ReportingServiceClient<AuthChannel>;

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
            intake: upstream::Upstream::new(&config.intake, &config.province)?,
            casework: upstream::Upstream::new(&config.casework, &config.province)?,
            referral: upstream::Upstream::new(&config.referral, &config.province)?,
            case_provinces: upstream::Whereabouts::default(),
            config,
        }))
    }

    fn with_token(up: &upstream::Upstream, token: &str) -> Result<AuthChannel, Problem> {
        Self::authorized(up.channel(), token)
    }

    fn authorized(channel: tonic::transport::Channel, token: &str) -> Result<AuthChannel, Problem> {
        let bearer =
            Bearer::new(token, "").map_err(|e| Problem::Page(StatusCode::UNAUTHORIZED, e))?;
        Ok(tonic::service::interceptor::InterceptedService::new(
            channel, bearer,
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

    /// intake in `province`'s partition, for a report refused as that
    /// province's (`baove-partition`) or a receipt read there: `None` when
    /// this console serves one province, or no process given keeps it.
    async fn intake_in(
        &self,
        s: &Session,
        province: &str,
    ) -> Result<Option<p::intake_service_client::IntakeServiceClient<AuthChannel>>, Problem> {
        let Some(channel) = self.intake.channel_in(province).await else {
            return Ok(None);
        };
        Ok(Some(p::intake_service_client::IntakeServiceClient::new(
            Self::authorized(channel, &s.token)?,
        )))
    }

    /// intake in every partition's active ([`upstream::Upstream::actives`]).
    fn intakes(
        &self,
        s: &Session,
    ) -> Result<Vec<p::intake_service_client::IntakeServiceClient<AuthChannel>>, Problem> {
        Self::in_actives(
            &self.intake,
            s,
            p::intake_service_client::IntakeServiceClient::new,
        )
    }

    /// A client (`client`) with the user's token for every partition's
    /// active of `service` ([`upstream::Upstream::actives`]).
    fn in_actives<C>(
        service: &upstream::Upstream,
        s: &Session,
        client: impl Fn(AuthChannel) -> C,
    ) -> Result<Vec<C>, Problem> {
        service
            .actives()
            .into_iter()
            .map(|channel| Ok(client(Self::authorized(channel, &s.token)?)))
            .collect()
    }

    /// casework in every partition's active ([`upstream::Upstream::actives`]).
    fn caseworks(&self, s: &Session) -> Result<Vec<routes::cases::CaseClient>, Problem> {
        Self::in_actives(
            &self.casework,
            s,
            p::case_service_client::CaseServiceClient::new,
        )
    }

    /// The casework process that keeps case `id`, and the case as read
    /// when finding it took a read. The active, when there is one
    /// partition (or this console serves one province); in a national
    /// console over several, the active of the province noted for the case
    /// when it was found before, else every partition's active asked at once
    /// (`GetCase`, a read in the access log of the partition that keeps
    /// it): the one that has it (its province noted for the next call), or
    /// the active whose refusal is then the page's.
    async fn case_channel(
        &self,
        s: &Session,
        id: &str,
    ) -> Result<(tonic::transport::Channel, Option<p::Case>), Problem> {
        let actives = self.casework.actives();
        if actives.len() < 2 {
            return Ok((self.casework.channel(), None));
        }
        if let Some(province) = self.case_provinces.of(id)
            && let Some(channel) = self.casework.channel_in(&province).await
        {
            return Ok((channel, None));
        }
        let asked = futures_util::future::join_all(actives.iter().map(|channel| async {
            let mut client = p::case_service_client::CaseServiceClient::new(Self::authorized(
                channel.clone(),
                &s.token,
            )?);
            Ok::<_, Problem>(
                client
                    .get_case(p::GetCaseRequest {
                        case_id: id.to_owned(),
                    })
                    .await,
            )
        }))
        .await;
        let mut refused = None;
        for (channel, answer) in actives.into_iter().zip(asked) {
            match answer? {
                Ok(found) => {
                    let case = found.into_inner().case.unwrap_or_default();
                    self.case_provinces.note(id, &case.province_id);
                    return Ok((channel, Some(case)));
                }
                Err(status) if status.code() != tonic::Code::NotFound => {
                    refused.get_or_insert(channel);
                }
                Err(_) => {}
            }
        }
        Ok((refused.unwrap_or_else(|| self.casework.channel()), None))
    }

    /// casework where case `id` is kept ([`Self::case_channel`]).
    async fn casework_of(
        &self,
        s: &Session,
        id: &str,
    ) -> Result<routes::cases::CaseClient, Problem> {
        let (channel, _) = self.case_channel(s, id).await?;
        Ok(p::case_service_client::CaseServiceClient::new(
            Self::authorized(channel, &s.token)?,
        ))
    }

    /// referral in every partition's active, each with its process's
    /// index ([`upstream::Upstream::actives_by_index`]).
    fn referrals(&self, s: &Session) -> Result<Vec<(usize, ReferralClient)>, Problem> {
        self.referral
            .actives_by_index()
            .into_iter()
            .map(|(i, channel)| {
                Ok((
                    i,
                    p::referral_service_client::ReferralServiceClient::new(Self::authorized(
                        channel, &s.token,
                    )?),
                ))
            })
            .collect()
    }

    /// casework's reporting in every partition's active
    /// ([`upstream::Upstream::actives`]).
    fn reportings(&self, s: &Session) -> Result<Vec<ReportingClient>, Problem> {
        Self::in_actives(
            &self.casework,
            s,
            p::reporting_service_client::ReportingServiceClient::new,
        )
    }

    /// casework's reporting for one province's CSV: `province`'s
    /// partition in a national console (refused when no process given
    /// keeps it, or when none is named and there are several), else the
    /// active's.
    async fn reporting_in(
        &self,
        s: &Session,
        province: Option<&str>,
    ) -> Result<ReportingClient, Problem> {
        let several = self.casework.actives().len() > 1;
        let channel = match province {
            Some(province) if several => {
                self.casework.channel_in(province).await.ok_or_else(|| {
                    Problem::Page(
                        StatusCode::NOT_FOUND,
                        trf("Không có số liệu của tỉnh {0} ở đây.", &[&province]),
                    )
                })?
            }
            None if several => {
                return Err(Problem::Page(
                    StatusCode::BAD_REQUEST,
                    tr("Tệp CSV là của một tỉnh: chọn tỉnh trong danh sách trên trang thống kê.")
                        .into(),
                ));
            }
            _ => self.casework.channel(),
        };
        Ok(p::reporting_service_client::ReportingServiceClient::new(
            Self::authorized(channel, &s.token)?,
        ))
    }

    /// casework's audit service on `channel` (the process that keeps a
    /// case: [`Self::case_channel`]).
    fn audit_at(
        channel: tonic::transport::Channel,
        s: &Session,
    ) -> Result<routes::cases::AuditClient, Problem> {
        Ok(p::audit_service_client::AuditServiceClient::new(
            Self::authorized(channel, &s.token)?,
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
        .route("/ho-so/canh-bao", get(deadline_events))
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
    let here = here_of(&request);
    i18n::scope(i18n::Context { lang, here }, next.run(request)).await
}

/// The page the language switch comes back to: the address of a GET; for
/// a posted form (its answer is at an address only a post reaches), the
/// page the form was on, as the browser's `Referer` says (sent to this
/// console's own pages: Referrer-Policy same-origin), else `/`.
fn here_of(request: &Request) -> String {
    if request.method() == Method::GET || request.method() == Method::HEAD {
        return request
            .uri()
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    }
    request
        .headers()
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|referer| referer.split_once("://"))
        .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_owned()))
        .unwrap_or_else(|| "/".to_owned())
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

/// A service's live stream as server-sent events: one per message, its id
/// and data from `event` (the id a reconnecting browser sends back as
/// `Last-Event-ID`); the stream ends at the service's first error, and the
/// browser reconnects from the last id it saw.
fn live_events<T: Send + 'static>(
    stream: impl futures_util::Stream<Item = Result<T, tonic::Status>> + Send + 'static,
    event: impl Fn(T) -> (u64, String) + Send + 'static,
) -> Response {
    live_events_named(stream, move |item| {
        let (id, data) = event(item);
        (id.to_string(), data)
    })
}

/// [`live_events`], each event's id given whole (several partitions'
/// positions: [`referrals::seen`]).
fn live_events_named<T: Send + 'static>(
    stream: impl futures_util::Stream<Item = Result<T, tonic::Status>> + Send + 'static,
    mut event: impl FnMut(T) -> (String, String) + Send + 'static,
) -> Response {
    use futures_util::StreamExt as _;
    let events = stream
        .take_while(|item| std::future::ready(item.is_ok()))
        .filter_map(move |item| std::future::ready(item.ok().map(&mut event)))
        .map(|(id, data)| {
            Ok::<_, std::convert::Infallible>(
                axum::response::sse::Event::default().id(id).data(data),
            )
        });
    axum::response::sse::Sse::new(events)
        .keep_alive(axum::response::sse::KeepAlive::default())
        .into_response()
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

fn status_http(status: &tonic::Status) -> StatusCode {
    match status.code() {
        tonic::Code::NotFound => StatusCode::NOT_FOUND,
        tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
        tonic::Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
        _ => StatusCode::BAD_GATEWAY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_posted_form_then_the_switch_comes_back_to_the_page_it_was_on() {
        let request = |method: Method, referer: Option<&str>| {
            let mut r = axum::http::Request::builder()
                .method(method)
                .uri("/ho-so/HS-1/mau-02?x=1");
            if let Some(referer) = referer {
                r = r.header(header::REFERER, referer);
            }
            r.body(axum::body::Body::empty()).unwrap_or_default()
        };
        assert_eq!(
            here_of(&request(Method::GET, None)),
            "/ho-so/HS-1/mau-02?x=1"
        );
        assert_eq!(
            here_of(&request(
                Method::POST,
                Some("http://127.0.0.1:8080/ho-so/HS-1?tai=3")
            )),
            "/ho-so/HS-1?tai=3"
        );
        assert_eq!(here_of(&request(Method::POST, None)), "/");
        assert_eq!(here_of(&request(Method::POST, Some("garbage"))), "/");
    }

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
