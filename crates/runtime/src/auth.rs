//! Authentication and the role check, in front of every RPC.
//!
//! [`AuthLayer`] wraps the whole gRPC server. For each call it:
//! 1. lets health and reflection through (no token);
//! 2. verifies the bearer token (`authorization: Bearer <jwt>`): missing,
//!    malformed, badly signed or expired → UNAUTHENTICATED;
//! 3. takes one call of the caller's rate ([`crate::limits`]): over it →
//!    RESOURCE_EXHAUSTED;
//! 4. looks the RPC up in the policy table ([`baove_security::policy`]): a
//!    role the table does not list → PERMISSION_DENIED, recorded in the
//!    access log;
//! 5. hands the [`Caller`], the RPC's path ([`rpc`]) and the service's
//!    [`Limits`] to the handler in the request's extensions ([`caller`]),
//!    where the scope of the record is checked.
//!
//! A call it refuses is answered only once its request has been read
//! (`drain`): an answer sent while the client is still sending makes the
//! server reset the stream (HTTP/2 requires it), and a client that loses
//! that race reports the call as UNKNOWN ("transport error: broken pipe")
//! instead of the refusal's own code, so it may not back off or retry as
//! it should.

use std::sync::Arc;
use std::task::{Context, Poll};

use baove_security::policy::Access;
use baove_security::{Caller, Verifier};
use tonic::Status;

use crate::limits::Limits;
use baove_audit::access::AccessLog;

/// What the layer needs: the token verifier, the access log, the
/// service's limits and the reference data (a token's unit and agency ids
/// of the early seed are read as the official ids they map to).
pub struct Gate {
    verifier: Verifier,
    access: AccessLog,
    limits: Arc<Limits>,
    directory: Arc<baove_domain::reference::Directory>,
}

impl Gate {
    /// A gate verifying with `verifier`, recording refusals in `access`,
    /// holding callers to `limits`, reading ids with `directory`.
    #[must_use]
    pub const fn new(
        verifier: Verifier,
        access: AccessLog,
        limits: Arc<Limits>,
        directory: Arc<baove_domain::reference::Directory>,
    ) -> Self {
        Self {
            verifier,
            access,
            limits,
            directory,
        }
    }

    /// The caller of a request to `path` with `headers`, `None` for open
    /// paths, or the status to refuse it with.
    async fn admit(&self, path: &str, headers: &http::HeaderMap) -> Result<Option<Caller>, Status> {
        if baove_security::policy::is_open(path) {
            return Ok(None);
        }
        let value = headers
            .get(http::header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or(""));
        let claims = self.verifier.verify_header(value).map_err(|e| {
            tracing::warn!(rpc = path, error = %e, "unauthenticated call refused");
            Status::unauthenticated(e.to_string())
        })?;
        let mut caller = Caller::from_claims(claims);
        for unit in &mut caller.units {
            *unit = self.directory.canonical_unit(unit).to_owned();
        }
        caller.agency_id = self
            .directory
            .canonical_agency(&caller.agency_id)
            .to_owned();
        caller.purpose = headers
            .get(baove_security::client::PURPOSE_METADATA)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .trim()
            .to_owned();
        if let Err(status) = self.limits.admit_call(&caller) {
            tracing::warn!(rpc = path, user = %caller.user_id, role = %caller.role, "call over the caller's rate refused");
            return Err(status);
        }
        match baove_security::allowed(caller.role, path) {
            Access::Allowed | Access::Open => Ok(Some(caller)),
            Access::Denied => {
                let reason = format!(
                    "role {} may not call {}",
                    caller.role,
                    path.trim_start_matches('/')
                );
                Err(self
                    .access
                    .refuse(&caller, path, None, "rpc", &reason)
                    .await)
            }
        }
    }
}

/// The caller of a request that passed [`AuthLayer`].
///
/// # Errors
/// UNAUTHENTICATED when there is none (the server was built without the
/// layer: refuse rather than serve anonymously).
pub fn caller<T>(request: &tonic::Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("no authenticated caller"))
}

/// The gRPC method path of a call (`/baove.v1.CaseService/GetCase`), as
/// the layer saw it: handlers name their RPC in the access log with it.
#[derive(Clone, Debug)]
pub struct Rpc(pub Arc<str>);

/// The gRPC method path of a request that passed [`AuthLayer`] (empty when
/// there is none: a server built without the layer refuses anyway).
#[must_use]
pub fn rpc<T>(request: &tonic::Request<T>) -> String {
    request
        .extensions()
        .get::<Rpc>()
        .map(|r| r.0.to_string())
        .unwrap_or_default()
}

/// The tower layer of [`Gate`].
#[derive(Clone)]
pub struct AuthLayer {
    gate: Arc<Gate>,
}

impl AuthLayer {
    /// The layer of `gate`.
    #[must_use]
    pub fn new(gate: Gate) -> Self {
        Self {
            gate: Arc::new(gate),
        }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            gate: self.gate.clone(),
        }
    }
}

/// The service [`AuthLayer`] makes.
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    gate: Arc<Gate>,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// The most of a refused call's request [`drain`] reads: any unary request
/// of the API is far smaller.
const DRAIN_BYTES: usize = 1024 * 1024;

/// The longest [`drain`] waits for the rest of a refused call's request.
const DRAIN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads the request of a call about to be refused to its end (at most
/// [`DRAIN_BYTES`], for at most [`DRAIN_WAIT`]), so that the refusal is
/// answered on a stream the client has finished sending. Answered
/// earlier, the server must reset the stream (RFC 9113, 8.1), and a
/// client still writing its request (hyper's, as tonic's clients use)
/// can fail the call with "broken pipe" (UNKNOWN) before it reads the
/// refusal: measured with `baove bench reads` under one caller's flood of
/// RESOURCE_EXHAUSTED, 17 of 173,745 refused calls ended that way.
async fn drain<B>(body: B)
where
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use http_body_util::BodyExt as _;
    let limited = http_body_util::Limited::new(body, DRAIN_BYTES);
    // Too large, too slow or broken: answer anyway; the stream is then
    // reset, which is all an early answer would have done.
    let _ = tokio::time::timeout(DRAIN_WAIT, limited.collect()).await;
}

impl<S, B> tower::Service<http::Request<B>> for AuthService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The service that was polled ready handles this call; a clone
        // stays for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let gate = self.gate.clone();
        // One span per RPC; handlers' spans and log lines nest under it.
        let span = tracing::info_span!(
            "rpc",
            rpc = %request.uri().path(),
            user = tracing::field::Empty,
            role = tracing::field::Empty
        );
        let inner_span = span.clone();
        Box::pin(tracing::Instrument::instrument(
            async move {
                let path = request.uri().path().to_owned();
                match gate.admit(&path, request.headers()).await {
                    Ok(Some(caller)) => {
                        inner_span.record("user", caller.user_id.as_str());
                        inner_span.record("role", caller.role.as_str());
                        let _place = match gate.limits.enter() {
                            Ok(place) => place,
                            Err(status) => {
                                tracing::warn!(rpc = path, "call refused: too many in flight");
                                drain(request.into_body()).await;
                                return Ok(status.into_http());
                            }
                        };
                        request.extensions_mut().insert(caller);
                        request.extensions_mut().insert(Rpc(path.as_str().into()));
                        request.extensions_mut().insert(gate.limits.clone());
                        let started = std::time::Instant::now();
                        let response = inner.call(request).await;
                        if let Ok(response) = &response {
                            let code = response
                                .headers()
                                .get("grpc-status")
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| v.parse::<i32>().ok())
                                .map_or(tonic::Code::Ok, tonic::Code::from);
                            record_call(&path, code, Some(started.elapsed()));
                        }
                        response
                    }
                    Ok(None) => inner.call(request).await,
                    Err(status) => {
                        record_call(&path, status.code(), None);
                        drain(request.into_body()).await;
                        Ok(status.into_http())
                    }
                }
            },
            span,
        ))
    }
}

/// Counts a call in the metrics ([`crate::metrics`]): by its path when the
/// policy table knows it, as `unknown` otherwise (a caller must not grow
/// the labels without end); how long it took when it was served.
fn record_call(path: &str, code: tonic::Code, took: Option<std::time::Duration>) {
    let method = if baove_security::policy::POLICY
        .iter()
        .any(|(known, _)| *known == path)
    {
        path.to_owned()
    } else {
        "unknown".to_owned()
    };
    metrics::counter!(
        crate::metrics::GRPC_REQUESTS,
        "method" => method.clone(),
        "code" => format!("{code:?}")
    )
    .increment(1);
    if let Some(took) = took {
        metrics::histogram!(crate::metrics::GRPC_DURATION, "method" => method)
            .record(took.as_secs_f64());
    }
}

/// Whether `caller`'s scope covers records of `unit_id` (an official id or
/// an alias), with the provinces it belongs to then and now
/// ([`Caller::covers_unit`]).
#[must_use]
pub fn covers(
    caller: &Caller,
    directory: &baove_domain::reference::Directory,
    unit_id: &str,
) -> bool {
    let unit = directory.canonical_unit(unit_id);
    caller.covers_unit(unit, &directory.provinces_of(unit))
}

/// Whether agency ids `a` and `b` name the same agency (official ids or
/// aliases of the early seed); an empty id names none.
#[must_use]
pub fn same_agency(directory: &baove_domain::reference::Directory, a: &str, b: &str) -> bool {
    !a.is_empty() && directory.canonical_agency(a) == directory.canonical_agency(b)
}
