//! Connecting with retries.

use std::time::Duration;

use async_nats::Event;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::BusError;

/// Connects to `url` (one NATS URL, or several of one cluster separated by
/// commas) as client `name`, retrying with backoff (0.25 s doubling
/// to 5 s) until it succeeds or `cancel` fires. Once connected the client
/// reconnects on its own, forever; `connected`, if given, follows the
/// connection (true while connected), for health reporting.
///
/// # Errors
/// [`BusError::Cancelled`] when cancelled before a connection was made;
/// [`BusError::Unavailable`] for a URL that can never work (malformed).
pub async fn connect(
    url: &str,
    name: &str,
    cancel: &CancellationToken,
    connected: Option<watch::Sender<bool>>,
) -> Result<async_nats::Client, BusError> {
    connect_as(url, name, None, cancel, connected).await
}

/// A NATS user and password (the service's credentials in the deploy
/// configuration; NATS permissions then limit what it may publish).
#[derive(Clone)]
pub struct Credentials {
    /// The user.
    pub user: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ..)", self.user)
    }
}

/// The inbox prefix of NATS user `user`: `_INBOX_<user>`. The server's
/// authorization lets each user subscribe to its own prefix only (see
/// `deploy/nats/authorization.conf.in`).
#[must_use]
pub fn inbox_prefix(user: &str) -> String {
    format!("_INBOX_{user}")
}

/// As [`connect`], authenticating with `credentials` when given.
///
/// # Errors
/// As [`connect`].
pub async fn connect_as(
    url: &str,
    name: &str,
    credentials: Option<Credentials>,
    cancel: &CancellationToken,
    connected: Option<watch::Sender<bool>>,
) -> Result<async_nats::Client, BusError> {
    let mut delay = Duration::from_millis(250);
    let mut attempt = 1u32;
    loop {
        let state = connected.clone();
        let options = match credentials.clone() {
            // Replies (JetStream acks, pulled messages) come to an inbox
            // only this user may subscribe to (`_INBOX_<user>.>`): no
            // other service can read them.
            Some(c) => {
                async_nats::ConnectOptions::with_user_and_password(c.user.clone(), c.password)
                    .custom_inbox_prefix(inbox_prefix(&c.user))
            }
            None => async_nats::ConnectOptions::new(),
        };
        let options = options
            .name(name)
            .connection_timeout(Duration::from_secs(2))
            .max_reconnects(None)
            .event_callback(move |event| {
                let state = state.clone();
                async move {
                    match event {
                        Event::Connected => tracing::info!("nats connected"),
                        Event::Disconnected => tracing::warn!("nats connection lost; reconnecting"),
                        ref other => tracing::debug!(event = %other, "nats event"),
                    }
                    if let Some(state) = state {
                        match event {
                            Event::Connected => state.send_replace(true),
                            Event::Disconnected | Event::Closed => state.send_replace(false),
                            _ => false,
                        };
                    }
                }
            });
        // Several servers of one cluster, separated by commas: the client
        // tries them in turn and, once connected, learns the others.
        let servers: Vec<&str> = url
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        match options.connect(servers.as_slice()).await {
            Ok(client) => {
                tracing::info!(url, attempt, "connected to nats");
                if let Some(state) = &connected {
                    state.send_replace(true);
                }
                return Ok(client);
            }
            Err(e) if matches!(e.kind(), async_nats::ConnectErrorKind::ServerParse) => {
                return Err(BusError::Unavailable(format!("bad nats url {url}: {e}")));
            }
            Err(e) => {
                tracing::warn!(url, attempt, error = %e, retry_in_ms = delay.as_millis() as u64, "nats not reachable yet");
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return Err(BusError::Cancelled),
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
        attempt += 1;
    }
}
