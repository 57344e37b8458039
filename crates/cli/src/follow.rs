//! A channel to one service that follows its active process (issue #14):
//! what lets a command typed at 3 a.m. land while a cluster fails over.
//!
//! Every call is sent to the process chosen at start (the active among
//! `--addr`'s, [`crate::direct_channel`]). When the answer is UNAVAILABLE
//! the call is sent again, with the same bytes (so the same request id:
//! the services make a repeated write a no-op that returns the first
//! answer):
//! - at once to the process the refusal names in `baove-active` (a standby,
//!   or an active that lost its lease, names the lease holder);
//! - and, when several addresses were given, after a pause, to whichever
//!   of them then answers as the active (the active died: a standby takes
//!   its lease over once it went unrenewed for 4 s; a quorum briefly lost).
//!
//! The same holds for an answer that breaks before its first message: its
//! status in the trailers (UNAVAILABLE after the headers, naming the
//! active or not), or its body cut off (the process died, or its
//! connection dropped, after it sent the headers). Nothing of such an
//! answer reached the caller, so it is sent again like a refusal.
//!
//! In a deployment partitioned by province, a refusal whose only fault is
//! the partition (intake refuses a report about a commune of another
//! province, naming that province in `baove-partition`) is sent, unchanged,
//! to the active process of that province's partition among the addresses
//! given, and the channel's later calls go there too; not when
//! `--province` chose the partition (the refusal is then shown as it is).
//! A national hotline operator so needs only every intake's address, not
//! the province of each report. Likewise a call answered NOT_FOUND (a case
//! or referral another partition keeps) is sent, unchanged, to each other
//! address that answers as an active, in the order given, until one
//! answers otherwise (NOT_FOUND writes nothing, so a step is safe to send
//! on); without one, the first answer is returned. Not with `--province`.
//!
//! It gives up after `--wait-active` and returns the last answer as it
//! was. With one address and no `baove-active` in the refusal, the answer
//! is returned at once, as without this channel. Only the start of a call
//! is followed, up to its first message: a watch already streaming that
//! loses its process ends with the error (rerun it, with its `--from`
//! position where it has one).
//!
//! Requests are small (no call of the API streams its request), so each is
//! kept in memory until its answer comes.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::BodyExt as _;
use tonic::body::Body;
use tonic::transport::Channel;
use tower::ServiceExt as _;

/// The header a standby's refusal names the active in.
const ACTIVE: &str = "baove-active";
/// The header a refusal names the partition that takes the request in.
const PARTITION: &str = "baove-partition";

/// The first pause before asking the addresses again; it doubles up to
/// [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(250);
const MAX_PAUSE: Duration = Duration::from_secs(2);

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The channel ([`tower::Service`] of gRPC calls).
#[derive(Clone)]
pub(crate) struct Following {
    addresses: Arc<[String]>,
    current: Arc<Mutex<(String, Channel)>>,
    /// The partition a refusal sent the calls to (`baove-partition`), whose
    /// active is then the one followed.
    routed: Arc<Mutex<Option<String>>>,
    wait: Duration,
}

impl Following {
    /// Calls to `channel` (at `addr`, chosen among `addresses`), followed
    /// for up to `wait`.
    pub(crate) fn new(
        addresses: Vec<String>,
        addr: String,
        channel: Channel,
        wait: Duration,
    ) -> Self {
        Self {
            addresses: addresses.into(),
            current: Arc::new(Mutex::new((addr, channel))),
            routed: Arc::new(Mutex::new(None)),
            wait,
        }
    }

    fn routed(&self) -> Option<String> {
        self.routed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The partition whose processes are followed: the one a refusal sent
    /// the calls to, else `--province`'s, else any.
    fn partition(&self) -> String {
        self.routed()
            .or_else(|| crate::province().map(str::to_owned))
            .unwrap_or_default()
    }

    /// Whether a refusal naming `province`'s partition is sent there: not
    /// when `--province` chose the partition, nor with one address, nor
    /// when the calls were already sent there.
    async fn route(&self, province: &str) -> bool {
        if crate::province().is_some()
            || self.addresses.len() < 2
            || self.routed().as_deref() == Some(province)
        {
            return false;
        }
        let addresses: Vec<&str> = self.addresses.iter().map(String::as_str).collect();
        let Ok((addr, channel)) = crate::active_in(&addresses, province).await else {
            return false;
        };
        err_out!(
            "this is for province {province}'s partition: sent, unchanged, to its process at {addr}"
        );
        *self.routed.lock().unwrap_or_else(PoisonError::into_inner) = Some(province.to_owned());
        self.moved_to(addr, channel);
        true
    }

    fn current(&self) -> (String, Channel) {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn moved_to(&self, addr: String, channel: Channel) {
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = (addr, channel);
    }

    /// Sends `head` with `body` until an answer other than UNAVAILABLE, or
    /// until the wait is over.
    async fn follow(
        self,
        head: http::request::Parts,
        body: bytes::Bytes,
    ) -> Result<http::Response<Body>, Error> {
        let deadline = Instant::now() + self.wait;
        let mut pause = FIRST_PAUSE;
        let mut told = false;
        loop {
            let (addr, channel) = self.current();
            let request = again(&head, &body);
            let answer = match channel.oneshot(request).await {
                Ok(response) => first_message(response).await,
                Err(e) => Err(Error::from(e)),
            };
            let named = match &answer {
                Ok(response) => match refusal(response) {
                    None => {
                        let (province, missing) = (elsewhere(response), not_found(response));
                        if let Some(province) = province
                            && self.route(&province).await
                        {
                            continue;
                        }
                        if missing {
                            return self.found_elsewhere(&head, &body, &addr, answer).await;
                        }
                        return answer;
                    }
                    Some(named) => named,
                },
                Err(_) => None,
            };
            let several = self.addresses.len() > 1;
            let elsewhere = named.as_deref().filter(|a| *a != addr);
            if Instant::now() >= deadline || (!several && elsewhere.is_none()) {
                return answer;
            }
            if !told {
                err_out!(
                    "{addr} is not the active process now; following the service's active for up to {} s (the same request is sent again: it is stored once)",
                    self.wait.as_secs()
                );
                told = true;
            }
            if let Some(active) = elsewhere
                && let Ok(channel) = crate::connect(active).await
            {
                self.moved_to(active.to_owned(), channel);
                continue;
            }
            tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
            pause = (pause * 2).min(MAX_PAUSE);
            let addresses: Vec<&str> = self.addresses.iter().map(String::as_str).collect();
            if let Ok((addr, channel)) = crate::active_in(&addresses, &self.partition()).await {
                self.moved_to(addr, channel);
            }
        }
    }
}

impl Following {
    /// The answer of another partition's active to a call the process at
    /// `addr` answered NOT_FOUND (`answer`): each other address that
    /// answers as an active, in the order given, until one answers
    /// otherwise; else `answer`. Not with `--province`, nor with one
    /// address. Later calls stay where they were.
    async fn found_elsewhere(
        &self,
        head: &http::request::Parts,
        body: &bytes::Bytes,
        addr: &str,
        answer: Result<http::Response<Body>, Error>,
    ) -> Result<http::Response<Body>, Error> {
        if crate::province().is_some() || self.addresses.len() < 2 {
            return answer;
        }
        for other in self.addresses.iter().filter(|a| a.as_str() != addr) {
            let Ok(channel) = crate::connect(other).await else {
                continue;
            };
            if !crate::serving(&channel, "baove.active".into()).await {
                continue;
            }
            let Ok(response) = channel.oneshot(again(head, body)).await else {
                continue;
            };
            if let Ok(found) = first_message(response).await
                && !not_found(&found)
            {
                err_out!(
                    "not kept by the process at {addr}: answered by another partition's, at {other}"
                );
                return Ok(found);
            }
        }
        answer
    }
}

/// The request `head` with `body`, to send (again).
fn again(head: &http::request::Parts, body: &bytes::Bytes) -> http::Request<Body> {
    let mut request = http::Request::new(Body::new(http_body_util::Full::new(body.clone())));
    *request.method_mut() = head.method.clone();
    *request.uri_mut() = head.uri.clone();
    *request.version_mut() = head.version;
    *request.headers_mut() = head.headers.clone();
    request
}

/// Whether `response` is a NOT_FOUND refusal.
fn not_found(response: &http::Response<Body>) -> bool {
    response
        .headers()
        .get("grpc-status")
        .is_some_and(|s| s.as_bytes() == b"5")
}

/// `response` once its body's first frame came: with the body as it was
/// (that frame, then the rest), or, when that frame is the trailers (no
/// message), as the same answer in gRPC's trailers-only form (the
/// trailers in the headers, an empty body), so that a refusal in the
/// trailers reads as one in the headers. An error before the first frame
/// (the body cut off) is the call's error.
async fn first_message(response: http::Response<Body>) -> Result<http::Response<Body>, Error> {
    let (mut head, mut body) = response.into_parts();
    let first = match body.frame().await {
        None => return Ok(http::Response::from_parts(head, Body::empty())),
        Some(Err(e)) => return Err(Error::from(e)),
        Some(Ok(frame)) => frame,
    };
    let first = match first.into_trailers() {
        Ok(trailers) => {
            head.headers.extend(trailers);
            return Ok(http::Response::from_parts(head, Body::empty()));
        }
        Err(data) => data,
    };
    let rest = http_body_util::BodyStream::new(body);
    let whole = futures_util::StreamExt::chain(
        futures_util::stream::once(std::future::ready(Ok(first))),
        rest,
    );
    Ok(http::Response::from_parts(
        head,
        Body::new(http_body_util::StreamBody::new(whole)),
    ))
}

/// The address a refusal names as the active (`Some(None)` when it names
/// none), or `None` when `response` is not an UNAVAILABLE refusal.
fn refusal(response: &http::Response<Body>) -> Option<Option<String>> {
    let headers = response.headers();
    let unavailable = headers
        .get("grpc-status")
        .is_some_and(|s| s.as_bytes() == b"14");
    if !unavailable {
        return None;
    }
    Some(
        headers
            .get(ACTIVE)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned),
    )
}

/// The province a refusal names as the one whose partition takes the
/// request (`baove-partition`), when `response` is an INVALID_ARGUMENT
/// refusal naming one.
fn elsewhere(response: &http::Response<Body>) -> Option<String> {
    let headers = response.headers();
    let invalid = headers
        .get("grpc-status")
        .is_some_and(|s| s.as_bytes() == b"3");
    if !invalid {
        return None;
    }
    headers
        .get(PARTITION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
}

impl tower::Service<http::Request<Body>> for Following {
    type Response = http::Response<Body>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        // Each call waits for its channel's readiness itself (`oneshot`).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let (head, body) = request.into_parts();
            let body = body.collect().await?.to_bytes();
            this.follow(head, body).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Following, refusal};
    use std::time::Duration;
    use tonic::body::Body;
    use tonic_health::ServingStatus;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    /// A process that answers every call the same way.
    #[derive(Clone)]
    enum Fake {
        /// Every answer breaks after its headers: UNAVAILABLE in the
        /// trailers (naming `active`, if any), or its body cut off.
        Breaking { active: Option<String>, cut: bool },
        /// A process of another partition: refuses every call as intake
        /// refuses a report about another province, naming the partition
        /// that takes it.
        OtherProvince { takes: &'static str },
    }

    impl tonic::server::NamedService for Fake {
        const NAME: &'static str = "grpc.health.v1.Health";
    }

    impl tower::Service<http::Request<Body>> for Fake {
        type Response = http::Response<Body>;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<Body>) -> Self::Future {
            let (active, cut) = match self {
                Self::Breaking { active, cut } => (active, *cut),
                Self::OtherProvince { takes } => {
                    let mut status = tonic::Status::invalid_argument("lies in another province");
                    status
                        .metadata_mut()
                        .insert(super::PARTITION, takes.parse().unwrap());
                    return std::future::ready(Ok(status.into_http()));
                }
            };
            let frame = if cut {
                Err(tonic::Status::internal("the process died"))
            } else {
                let mut trailers = http::HeaderMap::new();
                trailers.insert("grpc-status", http::HeaderValue::from_static("14"));
                trailers.insert(
                    "grpc-message",
                    http::HeaderValue::from_static("not the active"),
                );
                if let Some(active) = active {
                    trailers.insert(super::ACTIVE, active.parse().unwrap());
                }
                Ok(http_body::Frame::trailers(trailers))
            };
            // The headers go first; the body breaks a moment later. This
            // is the process's behaviour, not a wait on the test's side: a
            // break sent with the headers would reach the client as a
            // failed call, which the old code retried too, so a late
            // scheduler can only make the test weaker, never fail it.
            let body = http_body_util::StreamBody::new(futures_util::stream::once(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                frame
            }));
            let mut response = http::Response::new(Body::new(body));
            response.headers_mut().insert(
                "content-type",
                http::HeaderValue::from_static("application/grpc"),
            );
            std::future::ready(Ok(response))
        }
    }

    /// Serves `service` on a free loopback port; its address.
    async fn serve<S>(service: S) -> String
    where
        S: tower::Service<
                http::Request<Body>,
                Response = http::Response<Body>,
                Error = std::convert::Infallible,
            > + tonic::server::NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        addr
    }

    /// A process that answers as the active.
    async fn active() -> String {
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("baove.active", ServingStatus::Serving)
            .await;
        serve(health).await
    }

    async fn following(addresses: &[&String]) -> Following {
        Following::new(
            addresses.iter().map(|a| (*a).clone()).collect(),
            addresses[0].clone(),
            crate::connect(addresses[0]).await.unwrap(),
            Duration::from_secs(20),
        )
    }

    async fn ask(channel: Following) -> Result<i32, tonic::Status> {
        HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: "baove.active".into(),
            })
            .await
            .map(|answer| answer.into_inner().status)
    }

    #[tokio::test]
    async fn given_unavailable_in_the_trailers_naming_the_active_then_the_call_is_sent_there() {
        let active = active().await;
        let refusing = serve(Fake::Breaking {
            active: Some(active.clone()),
            cut: false,
        })
        .await;
        let answer = ask(following(&[&refusing]).await).await.unwrap();
        assert_eq!(answer, ServingStatus::Serving as i32);
    }

    #[tokio::test]
    async fn given_an_answer_cut_off_after_its_headers_then_the_call_is_sent_to_the_active() {
        let active = active().await;
        let cut = serve(Fake::Breaking {
            active: None,
            cut: true,
        })
        .await;
        let answer = ask(following(&[&cut, &active]).await).await.unwrap();
        assert_eq!(answer, ServingStatus::Serving as i32);
    }

    #[tokio::test]
    async fn given_unavailable_in_the_trailers_with_no_other_process_then_it_is_returned_as_it_was()
    {
        let refusing = serve(Fake::Breaking {
            active: None,
            cut: false,
        })
        .await;
        let refused = ask(following(&[&refusing]).await).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
        assert_eq!(refused.message(), "not the active");
    }

    /// The active process of `province`'s partition.
    async fn active_of_partition(province: &str) -> String {
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("baove.active", ServingStatus::Serving)
            .await;
        reporter
            .set_service_status(
                format!("baove.partition.{province}"),
                ServingStatus::Serving,
            )
            .await;
        serve(health).await
    }

    #[tokio::test]
    async fn given_a_refusal_naming_the_partition_that_takes_it_then_it_is_sent_to_that_partitions_active()
     {
        let ha_noi = serve(Fake::OtherProvince { takes: "vn:92" }).await;
        let other = active_of_partition("vn:01").await;
        let can_tho = active_of_partition("vn:92").await;
        let channel = following(&[&ha_noi, &other, &can_tho]).await;
        let answer = ask(channel.clone()).await.unwrap();
        assert_eq!(answer, ServingStatus::Serving as i32);
        assert_eq!(channel.current().0, can_tho);
        assert_eq!(channel.routed().as_deref(), Some("vn:92"));
    }

    #[tokio::test]
    async fn given_a_refusal_naming_a_partition_none_of_the_addresses_keeps_then_it_is_returned_as_it_was()
     {
        let ha_noi = serve(Fake::OtherProvince { takes: "vn:92" }).await;
        let other = active_of_partition("vn:01").await;
        let refused = ask(following(&[&ha_noi, &other]).await).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
        // With one address there is nowhere else to send it.
        let refused = ask(following(&[&ha_noi]).await).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    }

    /// A process SERVING or not on each health name of `names`; a name not
    /// listed is NOT_FOUND there.
    async fn process(names: &[(&str, ServingStatus)]) -> String {
        let (reporter, health) = tonic_health::server::health_reporter();
        for (name, status) in names {
            reporter.set_service_status(*name, *status).await;
        }
        serve(health).await
    }

    async fn ask_about(channel: Following, record: &str) -> Result<i32, tonic::Status> {
        HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: record.into(),
            })
            .await
            .map(|answer| answer.into_inner().status)
    }

    #[tokio::test]
    async fn given_not_found_then_the_other_partitions_actives_are_asked_and_not_a_standby() {
        use ServingStatus::{NotServing, Serving};
        // Hà Nội's active does not know the record ("case-x"); Cần Thơ's
        // standby, given before Cần Thơ's active, would answer otherwise
        // if it were asked.
        let ha_noi = process(&[("baove.active", Serving)]).await;
        let can_tho_standby = process(&[("case-x", NotServing)]).await;
        let can_tho = process(&[("baove.active", Serving), ("case-x", Serving)]).await;
        let channel = following(&[&ha_noi, &can_tho_standby, &can_tho]).await;
        let answer = ask_about(channel.clone(), "case-x").await.unwrap();
        assert_eq!(answer, Serving as i32);
        assert_eq!(
            channel.current().0,
            ha_noi,
            "later calls stay where they were"
        );
        // Kept nowhere: the first answer, as it was.
        let missing = ask_about(channel, "case-y").await.unwrap_err();
        assert_eq!(missing.code(), tonic::Code::NotFound, "{missing:?}");
        // One address: nowhere else to ask.
        let alone = ask_about(following(&[&ha_noi]).await, "case-x")
            .await
            .unwrap_err();
        assert_eq!(alone.code(), tonic::Code::NotFound, "{alone:?}");
    }

    #[test]
    fn given_a_partition_named_on_another_refusal_than_invalid_argument_then_it_is_not_followed() {
        assert_eq!(
            super::elsewhere(&answer(&[
                ("grpc-status", "3"),
                ("baove-partition", "vn:92")
            ])),
            Some("vn:92".to_owned())
        );
        assert_eq!(
            super::elsewhere(&answer(&[
                ("grpc-status", "7"),
                ("baove-partition", "vn:92")
            ])),
            None
        );
        assert_eq!(super::elsewhere(&answer(&[("grpc-status", "3")])), None);
    }

    fn answer(headers: &[(&'static str, &str)]) -> http::Response<Body> {
        let mut response = http::Response::new(Body::empty());
        for (k, v) in headers {
            response
                .headers_mut()
                .insert(*k, http::HeaderValue::from_str(v).unwrap());
        }
        response
    }

    #[test]
    fn given_a_standbys_refusal_then_the_active_it_names_is_followed() {
        let named = refusal(&answer(&[
            ("grpc-status", "14"),
            ("baove-active", "http://b:1"),
        ]));
        assert_eq!(named, Some(Some("http://b:1".to_owned())));
    }

    #[test]
    fn given_unavailable_without_an_active_then_it_is_a_refusal_naming_none() {
        assert_eq!(
            refusal(&answer(&[("grpc-status", "14"), ("baove-active", " ")])),
            Some(None)
        );
    }

    #[test]
    fn given_any_other_answer_then_it_is_returned_as_it_is() {
        // An answer with its status in the trailers (a success), and a
        // refusal of another kind, even naming an address.
        assert_eq!(refusal(&answer(&[])), None);
        assert_eq!(
            refusal(&answer(&[
                ("grpc-status", "9"),
                ("baove-active", "http://b:1")
            ])),
            None
        );
    }
}
