//! Alert delivery: each alert on the `BAOVE_ALERT` stream of one kind
//! (casework delivers `deadline`, referral `referral`) is sent to the
//! webhooks configured for its recipient (the commune unit, the agency),
//! through a durable consumer of the stream, so that a missed 12-hour
//! deadline reaches people and not only a subject nobody reads.
//!
//! Each delivery is an HTTP POST of the alert's JSON, as published, with:
//! - `Baove-Alert-Id`: the alert's id (`alert:<event id>`, the same on every
//!   attempt: the receiver keeps the ids it has seen and drops repeats);
//! - `Baove-Alert-Kind`: `deadline` or `referral`;
//! - `Baove-Timestamp`: the attempt's Unix seconds;
//! - `Baove-Signature`: `sha256=` and the hex HMAC-SHA256, under the
//!   endpoint's secret, of `<timestamp>.<body>` ([`signature`]); the
//!   receiver recomputes it and refuses a stale timestamp.
//!
//! An alert is acknowledged on the stream once every endpoint of its
//! recipient answered 2xx; otherwise it is delivered again after a backoff
//! (1 s doubling to 5 min), to every endpoint, for as long as it takes: at
//! least once, deduplicated by the receiver. A recipient with no endpoint
//! is acknowledged and counted (`outcome="no_endpoint"`). Attempts are
//! counted by kind and outcome ([`DELIVERIES`]); the age of the alert
//! being retried is [`DELIVERY_OLDEST_AGE`], which an alert rule watches.
//!
//! The webhooks file (`alert_webhooks_file`):
//! ```json
//! {"webhooks": [
//!   {"recipient": "vn:31135", "url": "https://ubnd.example/baove-alerts",
//!    "secret_file": "/etc/baove/keys/webhook-vn-31135.secret"},
//!   {"recipient": "*", "url": "https://province.example/alerts",
//!    "secret_file": "/etc/baove/keys/webhook-province.secret"}
//! ]}
//! ```
//! `recipient` is a unit or agency id as in the alert's subject, or `*` for
//! every alert. A secret is at least 32 bytes (it is used as written, ends
//! of lines trimmed).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

/// Delivery attempts, by kind and outcome (`delivered`, `failed`,
/// `no_endpoint`).
pub const DELIVERIES: &str = "baove_alert_deliveries_total";
/// How long the alert now being retried has waited since it was published
/// (0 when none is failing).
pub const DELIVERY_OLDEST_AGE: &str = "baove_alert_delivery_oldest_age_seconds";

/// The shortest secret accepted.
const MIN_SECRET: usize = 32;
/// How long one POST may take.
const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// One endpoint.
#[derive(Clone)]
pub struct Webhook {
    /// Whose alerts: a unit or agency id, or `*`.
    pub recipient: String,
    /// Where they are posted.
    pub url: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("recipient", &self.recipient)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// The configured endpoints.
#[derive(Clone, Debug, Default)]
pub struct Webhooks {
    endpoints: Vec<Webhook>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    webhooks: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    recipient: String,
    url: String,
    secret_file: std::path::PathBuf,
}

impl Webhooks {
    /// Reads the webhooks file at `path` and each secret it names.
    ///
    /// # Errors
    /// When a file cannot be read, does not parse, or an entry breaks a
    /// rule (an http(s) URL, a recipient, a secret of 32 bytes or more);
    /// the error names the file and the entry.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let at = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read alert_webhooks_file {at}: {e}"))?;
        let file: File = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("invalid alert_webhooks_file {at}: {e}"))?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        let mut endpoints = Vec::new();
        for (i, entry) in file.webhooks.into_iter().enumerate() {
            let bad =
                |rule: &str| anyhow::anyhow!("alert_webhooks_file {at}: webhooks[{i}].{rule}");
            if entry.recipient.trim().is_empty() {
                return Err(bad("recipient is required: a unit or agency id, or *"));
            }
            let url = reqwest::Url::parse(&entry.url)
                .map_err(|e| bad(&format!("url is not a URL: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(bad("url must be http or https"));
            }
            let secret_path = base.join(&entry.secret_file);
            let secret = std::fs::read(&secret_path).map_err(|e| {
                bad(&format!(
                    "secret_file {} cannot be read: {e}",
                    secret_path.display()
                ))
            })?;
            let secret = secret.trim_ascii_end().to_vec();
            if secret.len() < MIN_SECRET {
                return Err(bad(&format!(
                    "secret_file {} must hold at least {MIN_SECRET} bytes",
                    secret_path.display()
                )));
            }
            endpoints.push(Webhook {
                recipient: entry.recipient.trim().to_owned(),
                url: entry.url,
                secret,
            });
        }
        Ok(Self { endpoints })
    }

    /// The endpoints of `recipient`.
    pub fn of<'a>(&'a self, recipient: &'a str) -> impl Iterator<Item = &'a Webhook> + 'a {
        self.endpoints
            .iter()
            .filter(move |w| w.recipient == recipient || w.recipient == "*")
    }

    /// Whether no endpoint is configured.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }
}

/// `sha256=` and the hex HMAC-SHA256 under `secret` of
/// `<timestamp>.<body>`: the `Baove-Signature` header.
#[must_use]
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The wait before attempt `delivered + 1` of an alert: 1 s, doubling, at
/// most 5 min.
#[must_use]
pub fn backoff(delivered: i64) -> Duration {
    let exponent = u32::try_from(delivered.clamp(1, 20) - 1).unwrap_or(0);
    Duration::from_secs(1u64 << exponent).min(MAX_BACKOFF)
}

/// Delivers the alerts of `kind` (`baove.alert.<kind>.<recipient>`) to
/// `webhooks` through the durable consumer `durable` until `cancel`; a
/// consumer that breaks is made again after a pause. Without webhooks
/// (none configured) it returns at once.
pub async fn run(
    bus: baove_bus::Bus,
    kind: &'static str,
    durable: String,
    webhooks: Option<Arc<Webhooks>>,
    cancel: CancellationToken,
) {
    let Some(webhooks) = webhooks else { return };
    let http = match reqwest::Client::builder().timeout(POST_TIMEOUT).build() {
        Ok(http) => http,
        Err(e) => {
            tracing::error!(error = %e, "cannot make the webhook client: alerts are not delivered");
            return;
        }
    };
    loop {
        match deliver(&bus, kind, &durable, &webhooks, &http, &cancel).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, durable = %durable, "alert delivery interrupted; starting it again");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

/// One life of the delivery consumer.
async fn deliver(
    bus: &baove_bus::Bus,
    kind: &'static str,
    durable: &str,
    webhooks: &Webhooks,
    http: &reqwest::Client,
    cancel: &CancellationToken,
) -> anyhow::Result<()> {
    let stream = bus
        .js
        .get_stream(baove_bus::ALERT.name)
        .await
        .map_err(|e| anyhow::anyhow!("get stream {}: {e}", baove_bus::ALERT.name))?;
    let prefix = format!("{}.{kind}.", baove_bus::ALERT.prefix);
    let consumer = stream
        .get_or_create_consumer(
            durable,
            pull::Config {
                durable_name: Some(durable.to_owned()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                deliver_policy: jetstream::consumer::DeliverPolicy::All,
                filter_subject: format!("{prefix}>"),
                // Longer than every endpoint's timeout together, so an
                // alert is not handed out again while it is being posted.
                ack_wait: Duration::from_secs(120),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("consumer {durable}: {e}"))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| anyhow::anyhow!("pull: {e}"))?;
    tracing::info!(
        durable,
        kind,
        endpoints = webhooks.endpoints.len(),
        "alert delivery started"
    );
    loop {
        let message = tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            next = messages.next() => match next {
                None => anyhow::bail!("the consumer's messages ended"),
                Some(message) => message.map_err(|e| anyhow::anyhow!("pull: {e}"))?,
            },
        };
        let recipient = message
            .subject
            .as_str()
            .strip_prefix(&prefix)
            .unwrap_or_default()
            .to_owned();
        let id = message
            .headers
            .as_ref()
            .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
            .map_or_else(String::new, |v| v.as_str().to_owned());
        let (delivered, published_ms) = message.info().map_or((1, None), |info| {
            (
                info.delivered,
                i64::try_from(info.published.unix_timestamp_nanos() / 1_000_000).ok(),
            )
        });
        let endpoints: Vec<&Webhook> = webhooks.of(&recipient).collect();
        let mut failed = 0usize;
        if endpoints.is_empty() {
            metrics::counter!(DELIVERIES, "kind" => kind, "outcome" => "no_endpoint").increment(1);
        }
        for endpoint in &endpoints {
            match post(http, endpoint, kind, &id, &message.payload).await {
                Ok(()) => {
                    metrics::counter!(DELIVERIES, "kind" => kind, "outcome" => "delivered")
                        .increment(1);
                }
                Err(e) => {
                    failed += 1;
                    metrics::counter!(DELIVERIES, "kind" => kind, "outcome" => "failed")
                        .increment(1);
                    tracing::warn!(
                        alert = %id,
                        recipient = %recipient,
                        url = %endpoint.url,
                        attempt = delivered,
                        error = %e,
                        "alert not delivered; it is sent again"
                    );
                }
            }
        }
        if failed == 0 {
            metrics::gauge!(DELIVERY_OLDEST_AGE, "kind" => kind).set(0.0);
            message
                .ack()
                .await
                .map_err(|e| anyhow::anyhow!("ack: {e}"))?;
        } else {
            if let Some(published_ms) = published_ms {
                let now_ms = i64::try_from(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_millis(),
                )
                .unwrap_or(i64::MAX);
                #[allow(clippy::cast_precision_loss)]
                let age = (now_ms - published_ms).max(0) as f64 / 1000.0;
                metrics::gauge!(DELIVERY_OLDEST_AGE, "kind" => kind).set(age);
            }
            message
                .ack_with(AckKind::Nak(Some(backoff(delivered))))
                .await
                .map_err(|e| anyhow::anyhow!("nak: {e}"))?;
        }
    }
}

/// Posts `body` to `endpoint`, signed.
async fn post(
    http: &reqwest::Client,
    endpoint: &Webhook,
    kind: &str,
    id: &str,
    body: &[u8],
) -> Result<(), String> {
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let response = http
        .post(&endpoint.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("Baove-Alert-Id", id)
        .header("Baove-Alert-Kind", kind)
        .header("Baove-Timestamp", timestamp.to_string())
        .header(
            "Baove-Signature",
            signature(&endpoint.secret, timestamp, body),
        )
        .body(body.to_vec())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("answered {}", response.status()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn given_a_key_a_time_and_a_body_then_the_signature_is_what_a_receiver_computes() {
        // Computed apart, as a receiver in Python would:
        // hmac.new(b"Jefe", b'1764633600.{"case_id":"x"}', hashlib.sha256).hexdigest()
        assert_eq!(
            signature(b"Jefe", 1_764_633_600, br#"{"case_id":"x"}"#),
            "sha256=6c680713e3f1d0c05a91ad33dec04e9657b2b188ca5e8f3dfcf9bb89eaec9461"
        );
        // The time is signed with the body: another time, another
        // signature; another key too.
        assert_ne!(signature(b"k", 1, b"{}"), signature(b"k", 2, b"{}"));
        assert_ne!(signature(b"k", 1, b"{}"), signature(b"l", 1, b"{}"));
    }

    #[test]
    fn given_attempts_then_the_wait_doubles_from_one_second_up_to_five_minutes() {
        let waits: Vec<u64> = (1..=11).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(backoff(0).as_secs(), 1);
    }

    fn file(dir: &Path, json: &str, secret: &str) -> std::path::PathBuf {
        std::fs::write(dir.join("s.secret"), secret).unwrap();
        let path = dir.join("webhooks.json");
        std::fs::write(&path, json).unwrap();
        path
    }

    #[test]
    fn given_a_webhooks_file_then_each_endpoint_is_found_by_recipient_and_bad_entries_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let secret = "0123456789abcdef0123456789abcdef\n";
        let ok = file(
            dir.path(),
            r#"{"webhooks":[
                {"recipient":"vn:31135","url":"https://ubnd.example/a","secret_file":"s.secret"},
                {"recipient":"*","url":"http://127.0.0.1:9/all","secret_file":"s.secret"}]}"#,
            secret,
        );
        let webhooks = Webhooks::load(&ok).unwrap();
        let urls = |r: &str| webhooks.of(r).map(|w| w.url.clone()).collect::<Vec<_>>();
        assert_eq!(
            urls("vn:31135"),
            ["https://ubnd.example/a", "http://127.0.0.1:9/all"]
        );
        assert_eq!(urls("vn:31186"), ["http://127.0.0.1:9/all"]);
        // The secret is not shown.
        assert!(!format!("{webhooks:?}").contains("0123456789"));

        for (json, secret, names) in [
            (
                r#"{"webhooks":[{"recipient":"vn:1","url":"ftp://x/","secret_file":"s.secret"}]}"#,
                secret,
                "webhooks[0].url must be http or https",
            ),
            (
                r#"{"webhooks":[{"recipient":" ","url":"https://x/","secret_file":"s.secret"}]}"#,
                secret,
                "webhooks[0].recipient is required",
            ),
            (
                r#"{"webhooks":[{"recipient":"vn:1","url":"https://x/","secret_file":"s.secret"}]}"#,
                "short\n",
                "at least 32 bytes",
            ),
            (
                r#"{"webhooks":[{"recipient":"vn:1","url":"https://x/","secret_file":"none"}]}"#,
                secret,
                "webhooks[0].secret_file",
            ),
            (r#"{"hooks":[]}"#, secret, "invalid alert_webhooks_file"),
        ] {
            let path = file(dir.path(), json, secret);
            let err = Webhooks::load(&path).unwrap_err().to_string();
            assert!(err.contains(names), "{err}");
            assert!(err.contains("webhooks.json"), "{err}");
        }
    }
}
