//! Alert delivery: each alert on the `BAOVE_ALERT` stream of one kind
//! (casework delivers `deadline`, referral `referral`) is sent to the
//! endpoints configured for its recipient (the commune unit, the agency):
//! webhooks and e-mail addresses, through a durable consumer of the stream,
//! so that a missed 12-hour deadline reaches people and not only a subject
//! nobody reads.
//!
//! A webhook gets an HTTP POST of the alert's JSON, as published, with:
//! - `Baove-Alert-Id`: the alert's id (`alert:<event id>`, the same on every
//!   attempt: the receiver keeps the ids it has seen and drops repeats);
//! - `Baove-Alert-Kind`: `deadline` or `referral`;
//! - `Baove-Timestamp`: the attempt's Unix seconds;
//! - `Baove-Signature`: `sha256=` and the hex HMAC-SHA256, under the
//!   endpoint's secret, of `<timestamp>.<body>` ([`signature`]); the
//!   receiver recomputes it and refuses a stale timestamp.
//!
//! An e-mail address gets a plain-text message over SMTP (the `smtp`
//! server of the file) saying what is due or missed and for which case, the
//! alert's JSON below, and `Message-ID: <alert id>@baove` (a repeat has the
//! same one). Alerts carry ids, units and times, never a name.
//!
//! An alert is acknowledged on the stream once every endpoint of its
//! recipient took it (2xx, or the SMTP server accepted it); until then it
//! is delivered again after a backoff (1 s doubling to 5 min) to the
//! endpoints that have not taken it yet, for as long as it takes: at least
//! once per endpoint (a restart in between may repeat one; the id tells).
//! A recipient with no endpoint is acknowledged and counted
//! (`outcome="no_endpoint"`). Attempts are counted by kind, channel and
//! outcome ([`DELIVERIES`]); the age of the alert being retried is
//! [`DELIVERY_OLDEST_AGE`], which an alert rule watches.
//!
//! The delivery file (`alert_delivery_file`; secret and password files
//! relative to it):
//! ```json
//! {"smtp": {"host": "mail.example.gov.vn", "port": 587, "security": "starttls",
//!           "from": "baove <canh-bao@example.gov.vn>",
//!           "user": "canh-bao", "password_file": "smtp.password"},
//!  "endpoints": [
//!   {"recipient": "vn:31135", "webhook": "https://ubnd.example/baove-alerts",
//!    "secret_file": "webhook-vn-31135.secret"},
//!   {"recipient": "vn:31135", "email": "tre-em@ninhkieu.example.gov.vn"},
//!   {"recipient": "*", "webhook": "https://province.example/alerts",
//!    "secret_file": "webhook-province.secret"}
//! ]}
//! ```
//! `recipient` is a unit or agency id as in the alert's subject, or `*` for
//! every alert. A webhook secret is at least 32 bytes (used as written, the
//! end of line trimmed). `security` is `starttls` (default), `tls` or
//! `none` (a relay on the same host only). `smtp` is needed once an
//! endpoint is an e-mail address.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::Deserialize;
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

/// Delivery attempts, by kind, channel (`webhook`, `email`) and outcome
/// (`delivered`, `failed`; `no_endpoint` with channel `none`).
pub const DELIVERIES: &str = "baove_alert_deliveries_total";
/// How long the alert now being retried has waited since it was published
/// (0 when none is failing).
pub const DELIVERY_OLDEST_AGE: &str = "baove_alert_delivery_oldest_age_seconds";

/// The shortest webhook secret accepted.
const MIN_SECRET: usize = 32;
/// How long one POST or one SMTP exchange may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Where one endpoint's alerts go.
#[derive(Clone)]
pub enum Target {
    /// A webhook: its URL and its secret.
    Webhook {
        /// Where alerts are posted.
        url: String,
        /// The HMAC key.
        secret: Vec<u8>,
    },
    /// An e-mail address.
    Email(lettre::message::Mailbox),
}

/// One endpoint.
#[derive(Clone)]
pub struct Endpoint {
    /// Whose alerts: a unit or agency id, or `*`.
    pub recipient: String,
    /// Where they go.
    pub target: Target,
}

impl Endpoint {
    /// The channel, for metrics and logs.
    #[must_use]
    pub const fn channel(&self) -> &'static str {
        match self.target {
            Target::Webhook { .. } => "webhook",
            Target::Email(_) => "email",
        }
    }

    /// Where, without the secret.
    #[must_use]
    pub fn address(&self) -> String {
        match &self.target {
            Target::Webhook { url, .. } => url.clone(),
            Target::Email(mailbox) => mailbox.email.to_string(),
        }
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("recipient", &self.recipient)
            .field("channel", &self.channel())
            .field("address", &self.address())
            .finish_non_exhaustive()
    }
}

/// The SMTP server e-mail alerts are sent through.
#[derive(Clone)]
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: lettre::message::Mailbox,
}

/// The configured endpoints, and the SMTP server when some are e-mail.
#[derive(Clone, Default)]
pub struct Endpoints {
    endpoints: Vec<Endpoint>,
    smtp: Option<Smtp>,
}

impl std::fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoints")
            .field("endpoints", &self.endpoints)
            .field("smtp", &self.smtp.as_ref().map(|s| s.from.to_string()))
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    smtp: Option<SmtpEntry>,
    endpoints: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SmtpEntry {
    host: String,
    port: Option<u16>,
    #[serde(default)]
    security: Security,
    from: String,
    user: Option<String>,
    password_file: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Security {
    #[default]
    Starttls,
    Tls,
    None,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    recipient: String,
    webhook: Option<String>,
    secret_file: Option<std::path::PathBuf>,
    email: Option<String>,
}

impl Endpoints {
    /// Reads the delivery file at `path` and each secret it names.
    ///
    /// # Errors
    /// When a file cannot be read, does not parse, or an entry breaks a
    /// rule (a recipient; either an http(s) webhook with a secret of 32
    /// bytes or more, or an e-mail address, with `smtp` set); the error
    /// names the file and the entry.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let at = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read alert_delivery_file {at}: {e}"))?;
        let file: File = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("invalid alert_delivery_file {at}: {e}"))?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        let read = |field: &str, file: &Path| {
            let full = base.join(file);
            std::fs::read(&full)
                .map(|bytes| bytes.trim_ascii_end().to_vec())
                .map_err(|e| {
                    anyhow::anyhow!(
                        "alert_delivery_file {at}: {field} {} cannot be read: {e}",
                        full.display()
                    )
                })
        };
        let smtp = match file.smtp {
            None => None,
            Some(entry) => Some(
                smtp(entry, &read)
                    .map_err(|e| anyhow::anyhow!("alert_delivery_file {at}: smtp.{e}"))?,
            ),
        };
        let mut endpoints = Vec::new();
        for (i, entry) in file.endpoints.into_iter().enumerate() {
            let bad =
                |rule: &str| anyhow::anyhow!("alert_delivery_file {at}: endpoints[{i}].{rule}");
            if entry.recipient.trim().is_empty() {
                return Err(bad("recipient is required: a unit or agency id, or *"));
            }
            let target = match (entry.webhook, entry.email) {
                (Some(url), None) => {
                    let parsed = reqwest::Url::parse(&url)
                        .map_err(|e| bad(&format!("webhook is not a URL: {e}")))?;
                    if !matches!(parsed.scheme(), "http" | "https") {
                        return Err(bad("webhook must be an http or https URL"));
                    }
                    let file = entry
                        .secret_file
                        .ok_or_else(|| bad("secret_file is required with a webhook"))?;
                    let secret = read(&format!("endpoints[{i}].secret_file"), &file)?;
                    if secret.len() < MIN_SECRET {
                        return Err(bad(&format!(
                            "secret_file {} must hold at least {MIN_SECRET} bytes",
                            base.join(&file).display()
                        )));
                    }
                    Target::Webhook { url, secret }
                }
                (None, Some(email)) => {
                    if smtp.is_none() {
                        return Err(bad("email needs the file's smtp server"));
                    }
                    Target::Email(
                        email
                            .parse()
                            .map_err(|e| bad(&format!("email is not an address: {e}")))?,
                    )
                }
                _ => return Err(bad("must have either webhook (with secret_file) or email")),
            };
            endpoints.push(Endpoint {
                recipient: entry.recipient.trim().to_owned(),
                target,
            });
        }
        Ok(Self { endpoints, smtp })
    }

    /// The endpoints of `recipient`, with their index (the same for the
    /// life of the process).
    pub fn of<'a>(
        &'a self,
        recipient: &'a str,
    ) -> impl Iterator<Item = (usize, &'a Endpoint)> + 'a {
        self.endpoints
            .iter()
            .enumerate()
            .filter(move |(_, e)| e.recipient == recipient || e.recipient == "*")
    }
}

/// The SMTP server of `entry`; errors name the field.
fn smtp(
    entry: SmtpEntry,
    read: &dyn Fn(&str, &Path) -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<Smtp> {
    if entry.host.trim().is_empty() {
        anyhow::bail!("host is required");
    }
    let from: lettre::message::Mailbox = entry
        .from
        .parse()
        .map_err(|e| anyhow::anyhow!("from is not an address: {e}"))?;
    let host = entry.host.trim();
    let builder = match entry.security {
        Security::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
            .map_err(|e| anyhow::anyhow!("host: {e}"))?,
        Security::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
            .map_err(|e| anyhow::anyhow!("host: {e}"))?,
        Security::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
    };
    let mut builder = builder.timeout(Some(SEND_TIMEOUT));
    if let Some(port) = entry.port {
        builder = builder.port(port);
    }
    match (entry.user, entry.password_file) {
        (Some(user), Some(file)) => {
            let password = String::from_utf8(read("smtp.password_file", &file)?)
                .map_err(|_| anyhow::anyhow!("password_file is not UTF-8"))?;
            builder = builder.credentials(
                lettre::transport::smtp::authentication::Credentials::new(user, password),
            );
        }
        (None, None) => {}
        _ => anyhow::bail!("user and password_file go together"),
    }
    Ok(Smtp {
        transport: builder.build(),
        from,
    })
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

/// The subject and text of the e-mail for an alert of `kind` (its JSON
/// `alert`): what is due or missed, for which case, in Vietnamese, then the
/// JSON. Alerts hold no name, so neither does the e-mail.
#[must_use]
pub fn email_text(kind: &str, alert: &serde_json::Value, body: &[u8]) -> (String, String) {
    let field = |name: &str| match &alert[name] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    let case = field("case_id");
    let (subject, lead) = if kind == "referral" {
        (
            format!("[baove] Chuyển gửi chưa được xác nhận: hồ sơ {case}"),
            format!(
                "Chuyển gửi {} của hồ sơ {case} chưa được {} xác nhận; hạn xác nhận {}. Đã báo cơ quan cấp trên.",
                field("referral_id"),
                field("not_acknowledged_by"),
                field("due")
            ),
        )
    } else if alert["missed"] == true {
        (
            format!("[baove] ĐÃ QUÁ HẠN ({}): hồ sơ {case}", field("kind")),
            format!(
                "Hồ sơ {case} đã quá hạn {} lúc {}. Việc phải làm ngay: {}.",
                field("kind"),
                field("due"),
                field("satisfied_by")
            ),
        )
    } else {
        (
            format!("[baove] Sắp đến hạn ({}): hồ sơ {case}", field("kind")),
            format!(
                "Hồ sơ {case} sắp đến hạn {} lúc {}. Việc phải làm: {}.",
                field("kind"),
                field("due"),
                field("satisfied_by")
            ),
        )
    };
    let text = format!(
        "{lead}\n\nMở hồ sơ trong baove để xem và xử lý.\n\n{}\n",
        String::from_utf8_lossy(body)
    );
    (subject, text)
}

/// Delivers the alerts of `kind` on the alert stream `stream`
/// (`baove.alert.<kind>.<recipient>`, or a partition's) to
/// `endpoints` through the durable consumer `durable` until `cancel`; a
/// consumer that breaks is made again after a pause. Without endpoints
/// (none configured) it returns at once.
pub async fn run(
    bus: baove_bus::Bus,
    stream: baove_bus::StreamSpec,
    kind: &'static str,
    durable: String,
    endpoints: Option<Arc<Endpoints>>,
    cancel: CancellationToken,
) {
    let Some(endpoints) = endpoints else { return };
    let http = match reqwest::Client::builder().timeout(SEND_TIMEOUT).build() {
        Ok(http) => http,
        Err(e) => {
            tracing::error!(error = %e, "cannot make the webhook client: alerts are not delivered");
            return;
        }
    };
    // Which endpoints took which alert (by alert id), until it is
    // acknowledged: a retry goes only to the others.
    let mut taken = HashMap::new();
    loop {
        let feed = Feed {
            alerts: stream,
            kind,
            durable: &durable,
        };
        match deliver(&bus, feed, &endpoints, &http, &mut taken, &cancel).await {
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

/// What one delivery reads: the alerts of `kind` on the alert stream
/// `alerts`, through the durable consumer `durable`.
#[derive(Clone, Copy)]
struct Feed<'a> {
    alerts: baove_bus::StreamSpec,
    kind: &'static str,
    durable: &'a str,
}

/// One life of the delivery consumer.
async fn deliver(
    bus: &baove_bus::Bus,
    feed: Feed<'_>,
    endpoints: &Endpoints,
    http: &reqwest::Client,
    taken: &mut HashMap<String, HashSet<usize>>,
    cancel: &CancellationToken,
) -> anyhow::Result<()> {
    let Feed {
        alerts,
        kind,
        durable,
    } = feed;
    let stream = bus
        .js
        .get_stream(alerts.name)
        .await
        .map_err(|e| anyhow::anyhow!("get stream {}: {e}", alerts.name))?;
    let prefix = format!("{}.{kind}.", alerts.prefix);
    let consumer = stream
        .get_or_create_consumer(
            durable,
            pull::Config {
                durable_name: Some(durable.to_owned()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                deliver_policy: jetstream::consumer::DeliverPolicy::All,
                filter_subject: format!("{prefix}>"),
                // Longer than every endpoint's timeout together, so an
                // alert is not handed out again while it is being sent.
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
        endpoints = endpoints.endpoints.len(),
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
        let mine: Vec<(usize, &Endpoint)> = endpoints.of(&recipient).collect();
        if mine.is_empty() {
            metrics::counter!(DELIVERIES, "kind" => kind, "channel" => "none", "outcome" => "no_endpoint")
                .increment(1);
        }
        let done = taken.entry(id.clone()).or_default();
        let pending: Vec<(usize, &Endpoint)> = mine
            .iter()
            .filter(|(i, _)| !done.contains(i))
            .copied()
            .collect();
        for (index, endpoint) in pending {
            let sent = match &endpoint.target {
                Target::Webhook { url, secret } => {
                    post(http, url, secret, kind, &id, &message.payload).await
                }
                Target::Email(to) => {
                    send_mail(endpoints.smtp.as_ref(), to, kind, &id, &message.payload).await
                }
            };
            let outcome = if sent.is_ok() { "delivered" } else { "failed" };
            metrics::counter!(DELIVERIES, "kind" => kind, "channel" => endpoint.channel(), "outcome" => outcome)
                .increment(1);
            match sent {
                Ok(()) => {
                    done.insert(index);
                }
                Err(e) => tracing::warn!(
                    alert = %id,
                    recipient = %recipient,
                    channel = endpoint.channel(),
                    address = %endpoint.address(),
                    attempt = delivered,
                    error = %e,
                    "alert not delivered; it is sent again"
                ),
            }
        }
        if mine.iter().all(|(i, _)| done.contains(i)) {
            taken.remove(&id);
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

/// Posts `body` to `url`, signed with `secret`.
async fn post(
    http: &reqwest::Client,
    url: &str,
    secret: &[u8],
    kind: &str,
    id: &str,
    body: &[u8],
) -> Result<(), String> {
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let response = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("Baove-Alert-Id", id)
        .header("Baove-Alert-Kind", kind)
        .header("Baove-Timestamp", timestamp.to_string())
        .header("Baove-Signature", signature(secret, timestamp, body))
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

/// Sends the alert `body` to `to` through `smtp`.
async fn send_mail(
    smtp: Option<&Smtp>,
    to: &lettre::message::Mailbox,
    kind: &str,
    id: &str,
    body: &[u8],
) -> Result<(), String> {
    let smtp = smtp.ok_or("no smtp server configured")?;
    let alert: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let (subject, text) = email_text(kind, &alert, body);
    let message = lettre::Message::builder()
        .from(smtp.from.clone())
        .to(to.clone())
        .subject(subject)
        .message_id(Some(format!("<{}@baove>", id.replace(':', "."))))
        .header(lettre::message::header::ContentType::TEXT_PLAIN)
        .body(text)
        .map_err(|e| e.to_string())?;
    smtp.transport
        .send(message)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
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
        let path = dir.join("delivery.json");
        std::fs::write(&path, json).unwrap();
        path
    }

    #[test]
    fn given_a_delivery_file_then_each_endpoint_is_found_by_recipient_and_bad_entries_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let secret = "0123456789abcdef0123456789abcdef\n";
        let ok = file(
            dir.path(),
            r#"{"smtp": {"host": "127.0.0.1", "port": 2525, "security": "none", "from": "baove <canh-bao@example.gov.vn>"},
                "endpoints": [
                {"recipient":"vn:31135","webhook":"https://ubnd.example/a","secret_file":"s.secret"},
                {"recipient":"vn:31135","email":"tre-em@ninhkieu.example.gov.vn"},
                {"recipient":"*","webhook":"http://127.0.0.1:9/all","secret_file":"s.secret"}]}"#,
            secret,
        );
        let endpoints = Endpoints::load(&ok).unwrap();
        let to = |r: &str| {
            endpoints
                .of(r)
                .map(|(i, e)| format!("{i} {} {}", e.channel(), e.address()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            to("vn:31135"),
            [
                "0 webhook https://ubnd.example/a",
                "1 email tre-em@ninhkieu.example.gov.vn",
                "2 webhook http://127.0.0.1:9/all"
            ]
        );
        assert_eq!(to("vn:31186"), ["2 webhook http://127.0.0.1:9/all"]);
        // The secret is not shown.
        assert!(!format!("{endpoints:?}").contains("0123456789"));

        for (json, secret, names) in [
            (
                r#"{"endpoints":[{"recipient":"vn:1","webhook":"ftp://x/","secret_file":"s.secret"}]}"#,
                secret,
                "endpoints[0].webhook must be an http or https URL",
            ),
            (
                r#"{"endpoints":[{"recipient":" ","webhook":"https://x/","secret_file":"s.secret"}]}"#,
                secret,
                "endpoints[0].recipient is required",
            ),
            (
                r#"{"endpoints":[{"recipient":"vn:1","webhook":"https://x/","secret_file":"s.secret"}]}"#,
                "short\n",
                "at least 32 bytes",
            ),
            (
                r#"{"endpoints":[{"recipient":"vn:1","webhook":"https://x/","secret_file":"none"}]}"#,
                secret,
                "endpoints[0].secret_file",
            ),
            (
                r#"{"endpoints":[{"recipient":"vn:1","webhook":"https://x/"}]}"#,
                secret,
                "endpoints[0].secret_file is required with a webhook",
            ),
            (
                r#"{"endpoints":[{"recipient":"vn:1","email":"a@b.vn"}]}"#,
                secret,
                "endpoints[0].email needs the file's smtp server",
            ),
            (
                r#"{"smtp":{"host":"h","from":"x"},"endpoints":[]}"#,
                secret,
                "smtp.from is not an address",
            ),
            (
                r#"{"smtp":{"host":"h","from":"a@b.vn"},"endpoints":[{"recipient":"vn:1","email":"not an address"}]}"#,
                secret,
                "endpoints[0].email is not an address",
            ),
            (
                r#"{"endpoints":[{"recipient":"vn:1"}]}"#,
                secret,
                "endpoints[0].must have either webhook",
            ),
            (r#"{"hooks":[]}"#, secret, "invalid alert_delivery_file"),
        ] {
            let path = file(dir.path(), json, secret);
            let err = Endpoints::load(&path).unwrap_err().to_string();
            assert!(err.contains(names), "{err}");
            assert!(err.contains("delivery.json"), "{err}");
        }
    }

    #[test]
    fn given_a_missed_deadline_then_the_email_says_so_and_carries_the_alert() {
        let body = br#"{"case_id":"c-1","kind":"emergency","missed":true,"due":"14:05 02/12/2026","satisfied_by":"an emergency measure","unit_id":"vn:31135"}"#;
        let alert: serde_json::Value = serde_json::from_slice(body).unwrap();
        let (subject, text) = email_text("deadline", &alert, body);
        assert_eq!(subject, "[baove] ĐÃ QUÁ HẠN (emergency): hồ sơ c-1");
        assert!(
            text.starts_with("Hồ sơ c-1 đã quá hạn emergency lúc 14:05 02/12/2026."),
            "{text}"
        );
        assert!(text.contains(std::str::from_utf8(body).unwrap()), "{text}");
        let warned = serde_json::json!({"case_id": "c-1", "missed": false, "kind": "plan_drafted"});
        assert!(
            email_text("deadline", &warned, b"{}")
                .0
                .starts_with("[baove] Sắp đến hạn")
        );
        let escalated = serde_json::json!({"case_id": "c-1", "referral_id": "r-1", "not_acknowledged_by": "vn:31135/cong-an"});
        let (subject, text) = email_text("referral", &escalated, b"{}");
        assert!(
            subject.contains("Chuyển gửi chưa được xác nhận"),
            "{subject}"
        );
        assert!(text.contains("vn:31135/cong-an"), "{text}");
    }
}
