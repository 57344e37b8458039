//! Service configuration: a TOML file, then `BAOVE_*` environment overrides.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Where a service listens, keeps its data and finds NATS.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// gRPC listen address (`BAOVE_LISTEN`), e.g. `127.0.0.1:50051`.
    pub listen: SocketAddr,
    /// Directory of the service's sled database (`BAOVE_DATA_DIR`); created
    /// if missing. Never shared between services.
    pub data_dir: PathBuf,
    /// NATS URL (`BAOVE_NATS_URL`), e.g. `nats://127.0.0.1:4222`; for a
    /// cluster, every node's URL separated by commas.
    pub nats_url: String,
    /// Copies JetStream keeps of each of the service's streams
    /// (`BAOVE_STREAM_REPLICAS`), 1 to 5; default 1 (one nats-server). 3
    /// on a three-node cluster: a publish is then acknowledged once two
    /// nodes stored it, and any one node can be lost.
    #[serde(default = "default_stream_replicas")]
    pub stream_replicas: usize,
    /// `active` (the default), `standby` or `auto` (`BAOVE_ROLE`): a
    /// standby follows the active's log stream into its own log, answers
    /// reads and refuses writes; it runs no consumer, relay, scheduler or
    /// checkpoint; promote it by restarting it as `active`. `auto` is a
    /// standby that becomes the active when it takes the service's lease,
    /// and stops when it loses it (docs/cluster.md).
    #[serde(default)]
    pub role: Role,
    /// The active's gRPC address, which a standby names when it refuses a
    /// write (`BAOVE_ACTIVE_ADDR`, metadata `baove-active`).
    #[serde(default)]
    pub active_addr: Option<String>,
    /// How long shutdown waits for in-flight requests after health went
    /// NOT_SERVING (`BAOVE_DRAIN_SECS`); default 10.
    #[serde(default = "default_drain_secs")]
    pub drain_secs: u64,
    /// sled page cache of the event log, in MiB (`BAOVE_CACHE_MB`); default
    /// 1024. Global-order replay slows sharply once the log outgrows it.
    #[serde(default = "default_cache_mb")]
    pub cache_mb: u64,
    /// Directory of the reference data, `units.json`, `agencies.json` and
    /// (when present) `aliases.json`
    /// (`BAOVE_REFERENCE_DIR`); default `deploy/reference`.
    #[serde(default = "default_reference_dir")]
    pub reference_dir: PathBuf,
    /// intake: first wait before re-publishing a report whose hand-over to
    /// casework has not come back, doubling up to 10 minutes
    /// (`BAOVE_HANDOVER_RETRY_SECS`); default 30.
    #[serde(default = "default_handover_retry_secs")]
    pub handover_retry_secs: u64,
    /// casework: the working-day calendar (`BAOVE_CALENDAR_FILE`); default
    /// `deploy/calendar/vietnam.json`.
    #[serde(default = "default_calendar_file")]
    pub calendar_file: PathBuf,
    /// casework: share of a deadline's time after which the early warning is
    /// raised, 0 to 1 (`BAOVE_DEADLINE_WARN_SHARE`); default 0.75.
    #[serde(default = "default_warn_share")]
    pub deadline_warn_share: f64,
    /// For drills and tests only: a file holding a number of milliseconds
    /// by which this service's clock runs ahead (`BAOVE_CLOCK_OFFSET_FILE`).
    /// Read at each tick; missing or empty means no offset. Never set in
    /// production.
    #[serde(default)]
    pub clock_offset_file: Option<PathBuf>,
    /// Where Prometheus scrapes the service's metrics
    /// (`BAOVE_METRICS_LISTEN`, e.g. `127.0.0.1:9101`); none (the default):
    /// no metrics endpoint. See [`crate::metrics`].
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// A file the service writes its bound gRPC address to once listening
    /// (`BAOVE_ADDR_FILE`): with `listen` on port 0, how a supervisor or a
    /// test learns the port the system chose.
    #[serde(default)]
    pub addr_file: Option<PathBuf>,
    /// Public keys (Ed25519, SPKI PEM files) whose tokens are accepted
    /// (`BAOVE_AUTH_PUBLIC_KEYS`, paths separated by commas). Required:
    /// without a key every call would be refused.
    pub auth_public_keys: Vec<PathBuf>,
    /// intake and casework: the master key (64 hex digits) that wraps the
    /// data keys of a report's confidential fields or a case's private text
    /// (`BAOVE_MASTER_KEY_FILE`).
    #[serde(default)]
    pub master_key_file: Option<PathBuf>,
    /// casework and referral: the key (64 hex digits) that wraps each
    /// referral's data key in the cluster's bucket of referral keys, the
    /// same file on both services (`BAOVE_REFERRAL_KEY_FILE`); it seals a
    /// referral's reasons and outcome ([`crate::referral_keys`]).
    #[serde(default)]
    pub referral_key_file: Option<PathBuf>,
    /// casework and referral: where their alerts are delivered, by webhook
    /// and e-mail (`BAOVE_ALERT_DELIVERY_FILE`, JSON,
    /// [`crate::delivery::Endpoints`]); none: alerts stay on the
    /// `BAOVE_ALERT` stream only.
    #[serde(default)]
    pub alert_delivery_file: Option<PathBuf>,
    /// Seconds between signed checkpoints of the log
    /// (`BAOVE_CHECKPOINT_SECS`); default 300. The signing key is
    /// `checkpoint_key_file`, else `<data_dir>/checkpoint-key.pem`, created
    /// on first start; its public half is in the data directory.
    #[serde(default = "default_checkpoint_secs")]
    pub checkpoint_secs: u64,
    /// The deployment's name in checkpoint origins (`BAOVE_LOG_ORIGIN`):
    /// a service's checkpoints start with `<log_origin>/<service>` and its
    /// signed-note key has that name. Default `baove.local`; a province
    /// sets its own (e.g. `baove.hanoi.gov.vn`) so that witnesses and
    /// auditors tell its logs from another's. No spaces, no `+`.
    #[serde(default = "default_log_origin")]
    pub log_origin: String,
    /// How log lines are written (`BAOVE_LOG_FORMAT`): `text` (default) or
    /// `json`, one object per line for a log collector.
    #[serde(default)]
    pub log_format: crate::telemetry::LogFormat,
    /// Where to export the spans over OTLP/gRPC (`BAOVE_OTLP_ENDPOINT`,
    /// e.g. `http://127.0.0.1:4317`, an OpenTelemetry collector); none: no
    /// export. Only a build with the `otlp` feature exports; another
    /// refuses to start with this set.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// The key that signs checkpoints (`BAOVE_CHECKPOINT_KEY_FILE`, PKCS#8
    /// PEM, made with `baove token keygen`); none: the data directory's own
    /// `checkpoint-key.pem`, created on first start. In a cluster give every
    /// process of a service the same key, so that a witness follows the log
    /// across a failover.
    #[serde(default)]
    pub checkpoint_key_file: Option<PathBuf>,
    /// The service's NATS user (`BAOVE_NATS_USER`); none: connect
    /// anonymously (tests, a server without authorization).
    #[serde(default)]
    pub nats_user: Option<String>,
    /// A file holding that user's password (`BAOVE_NATS_PASSWORD_FILE`).
    #[serde(default)]
    pub nats_password_file: Option<PathBuf>,
    /// casework: the statistics definitions (age groups, small-cell
    /// threshold) (`BAOVE_STATISTICS_FILE`); default
    /// `deploy/statistics/indicators.json`.
    #[serde(default = "default_statistics_file")]
    pub statistics_file: PathBuf,
    /// The longest lifetime (`exp - iat`) of a token accepted, in seconds
    /// (`BAOVE_TOKEN_MAX_LIFETIME_SECS`); default 43200 (12 hours).
    #[serde(default = "default_token_max_lifetime_secs")]
    pub token_max_lifetime_secs: u64,
    /// Calls per second one caller may make, sustained
    /// (`BAOVE_CALLS_PER_SEC`); default 20; 0 turns the limit off.
    #[serde(default = "default_calls_per_sec")]
    pub calls_per_sec: u32,
    /// Calls one caller may make at once before that rate applies
    /// (`BAOVE_CALL_BURST`); default 200.
    #[serde(default = "default_call_burst")]
    pub call_burst: u32,
    /// Live server streams (`WatchCase`, `WatchInbox`, `StreamHistory`)
    /// one caller may hold open (`BAOVE_STREAMS_PER_CALLER`); default 8.
    #[serde(default = "default_streams_per_caller")]
    pub streams_per_caller: usize,
    /// Live server streams in all (`BAOVE_STREAMS_TOTAL`); default 256.
    #[serde(default = "default_streams_total")]
    pub streams_total: usize,
    /// Calls being answered at once in the process; beyond it a call is
    /// refused at once with RESOURCE_EXHAUSTED (`BAOVE_MAX_IN_FLIGHT`);
    /// default 256.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
}

const fn default_max_in_flight() -> usize {
    256
}

const fn default_token_max_lifetime_secs() -> u64 {
    baove_security::token::DEFAULT_MAX_LIFETIME_SECS
}

const fn default_calls_per_sec() -> u32 {
    20
}

const fn default_call_burst() -> u32 {
    200
}

const fn default_streams_per_caller() -> usize {
    8
}

const fn default_streams_total() -> usize {
    256
}

/// Sets `slot` from the variable `variable` when it is set.
fn number<T: std::str::FromStr>(
    env: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    rule: &'static str,
    slot: &mut Option<T>,
) -> Result<(), ConfigError> {
    if let Some(value) = env(variable) {
        *slot = Some(value.trim().parse().map_err(|_| ConfigError::Env {
            variable,
            value,
            rule,
        })?);
    }
    Ok(())
}

fn default_statistics_file() -> PathBuf {
    PathBuf::from("deploy/statistics/indicators.json")
}

fn default_log_origin() -> String {
    "baove.local".to_owned()
}

const fn default_checkpoint_secs() -> u64 {
    300
}

fn default_calendar_file() -> PathBuf {
    PathBuf::from("deploy/calendar/vietnam.json")
}

const fn default_warn_share() -> f64 {
    0.75
}

fn default_reference_dir() -> PathBuf {
    PathBuf::from("deploy/reference")
}

const fn default_handover_retry_secs() -> u64 {
    30
}

const fn default_cache_mb() -> u64 {
    1024
}

/// Whether a process writes its service's log or follows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Writes the log: serves every call, runs consumers and relays.
    #[default]
    Active,
    /// Follows the active's log stream; answers reads, refuses writes.
    Standby,
    /// A standby until it takes the service's lease (when the active's
    /// expires), then the active until it loses it: automatic failover
    /// between the processes of a service (docs/cluster.md).
    Auto,
}

const fn default_stream_replicas() -> usize {
    1
}

const fn default_drain_secs() -> u64 {
    10
}

/// A configuration that could not be loaded; says which file or variable
/// and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for [`Config`].
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said (names the key).
        message: String,
    },
    /// An environment variable does not parse.
    #[error("invalid {variable}={value}: {rule}")]
    Env {
        /// The variable.
        variable: &'static str,
        /// Its value.
        value: String,
        /// What it must be.
        rule: &'static str,
    },
    /// A required setting is in neither the file nor the environment.
    #[error("missing setting {key}: set it in the config file or as {variable}")]
    Missing {
        /// The key in the file.
        key: &'static str,
        /// The environment variable.
        variable: &'static str,
    },
}

/// The file's keys before overrides: everything optional, so that the
/// environment can supply what the file lacks.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Partial {
    listen: Option<SocketAddr>,
    metrics_listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    nats_url: Option<String>,
    stream_replicas: Option<usize>,
    role: Option<Role>,
    active_addr: Option<String>,
    otlp_endpoint: Option<String>,
    drain_secs: Option<u64>,
    cache_mb: Option<u64>,
    reference_dir: Option<PathBuf>,
    handover_retry_secs: Option<u64>,
    calendar_file: Option<PathBuf>,
    deadline_warn_share: Option<f64>,
    clock_offset_file: Option<PathBuf>,
    addr_file: Option<PathBuf>,
    auth_public_keys: Option<Vec<PathBuf>>,
    master_key_file: Option<PathBuf>,
    referral_key_file: Option<PathBuf>,
    alert_delivery_file: Option<PathBuf>,
    checkpoint_secs: Option<u64>,
    log_origin: Option<String>,
    log_format: Option<crate::telemetry::LogFormat>,
    checkpoint_key_file: Option<PathBuf>,
    nats_user: Option<String>,
    nats_password_file: Option<PathBuf>,
    statistics_file: Option<PathBuf>,
    token_max_lifetime_secs: Option<u64>,
    calls_per_sec: Option<u32>,
    call_burst: Option<u32>,
    streams_per_caller: Option<usize>,
    streams_total: Option<usize>,
    max_in_flight: Option<usize>,
}

impl Config {
    /// Loads `file` (if given), then applies the `BAOVE_*` variable of each
    /// key (`BAOVE_LISTEN`, `BAOVE_DATA_DIR`, `BAOVE_NATS_URL`,
    /// `BAOVE_STREAM_REPLICAS`, `BAOVE_ROLE`, `BAOVE_ACTIVE_ADDR`,
    /// `BAOVE_DRAIN_SECS`, `BAOVE_CACHE_MB`, `BAOVE_REFERENCE_DIR`,
    /// `BAOVE_HANDOVER_RETRY_SECS`, `BAOVE_CALENDAR_FILE`,
    /// `BAOVE_DEADLINE_WARN_SHARE`, `BAOVE_CLOCK_OFFSET_FILE`,
    /// `BAOVE_ADDR_FILE`, `BAOVE_METRICS_LISTEN`, `BAOVE_AUTH_PUBLIC_KEYS`,
    /// `BAOVE_MASTER_KEY_FILE`, `BAOVE_REFERRAL_KEY_FILE`, `BAOVE_ALERT_DELIVERY_FILE`,
    /// `BAOVE_CHECKPOINT_SECS`, `BAOVE_LOG_ORIGIN`, `BAOVE_LOG_FORMAT`,
    /// `BAOVE_OTLP_ENDPOINT`,
    /// `BAOVE_CHECKPOINT_KEY_FILE`, `BAOVE_NATS_USER`, `BAOVE_NATS_PASSWORD_FILE`,
    /// `BAOVE_STATISTICS_FILE`, `BAOVE_TOKEN_MAX_LIFETIME_SECS`,
    /// `BAOVE_CALLS_PER_SEC`, `BAOVE_CALL_BURST`, `BAOVE_STREAMS_PER_CALLER`,
    /// `BAOVE_STREAMS_TOTAL`, `BAOVE_MAX_IN_FLIGHT`) from the process
    /// environment.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, key or variable at fault.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with(file, |name| std::env::var(name).ok())
    }

    /// As [`Config::load`], reading variables through `env`.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn load_with(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut partial = match file {
            None => Partial::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })?
            }
        };
        if let Some(value) = env("BAOVE_LISTEN") {
            partial.listen = Some(value.parse().map_err(|_| ConfigError::Env {
                variable: "BAOVE_LISTEN",
                value,
                rule: "must be a socket address such as 127.0.0.1:50051",
            })?);
        }
        if let Some(value) = env("BAOVE_METRICS_LISTEN") {
            partial.metrics_listen = Some(value.parse().map_err(|_| ConfigError::Env {
                variable: "BAOVE_METRICS_LISTEN",
                value,
                rule: "must be a socket address such as 127.0.0.1:9101",
            })?);
        }
        if let Some(value) = env("BAOVE_DATA_DIR") {
            partial.data_dir = Some(value.into());
        }
        if let Some(value) = env("BAOVE_NATS_URL") {
            partial.nats_url = Some(value);
        }
        if let Some(value) = env("BAOVE_STREAM_REPLICAS") {
            partial.stream_replicas = Some(value.parse().map_err(|_| ConfigError::Env {
                variable: "BAOVE_STREAM_REPLICAS",
                value,
                rule: "must be a whole number from 1 to 5",
            })?);
        }
        if let Some(value) = env("BAOVE_ROLE") {
            partial.role = Some(match value.trim() {
                "active" => Role::Active,
                "standby" => Role::Standby,
                "auto" => Role::Auto,
                _ => {
                    return Err(ConfigError::Env {
                        variable: "BAOVE_ROLE",
                        value,
                        rule: "must be active, standby or auto",
                    });
                }
            });
        }
        if let Some(value) = env("BAOVE_ACTIVE_ADDR") {
            partial.active_addr = Some(value);
        }
        if let Some(value) = env("BAOVE_OTLP_ENDPOINT") {
            partial.otlp_endpoint = Some(value);
        }
        if let Some(value) = env("BAOVE_DRAIN_SECS") {
            partial.drain_secs = Some(value.parse().map_err(|_| ConfigError::Env {
                variable: "BAOVE_DRAIN_SECS",
                value,
                rule: "must be a whole number of seconds",
            })?);
        }
        if let Some(value) = env("BAOVE_CACHE_MB") {
            partial.cache_mb = Some(value.parse().map_err(|_| ConfigError::Env {
                variable: "BAOVE_CACHE_MB",
                value,
                rule: "must be a whole number of MiB",
            })?);
        }
        if let Some(value) = env("BAOVE_REFERENCE_DIR") {
            partial.reference_dir = Some(value.into());
        }
        if let Some(value) = env("BAOVE_HANDOVER_RETRY_SECS") {
            partial.handover_retry_secs = Some(value.parse().map_err(|_| ConfigError::Env {
                variable: "BAOVE_HANDOVER_RETRY_SECS",
                value,
                rule: "must be a whole number of seconds",
            })?);
        }
        if let Some(value) = env("BAOVE_CALENDAR_FILE") {
            partial.calendar_file = Some(value.into());
        }
        if let Some(value) = env("BAOVE_DEADLINE_WARN_SHARE") {
            partial.deadline_warn_share = Some(value.parse().map_err(|_| ConfigError::Env {
                variable: "BAOVE_DEADLINE_WARN_SHARE",
                value,
                rule: "must be a number from 0 to 1",
            })?);
        }
        if let Some(value) = env("BAOVE_CLOCK_OFFSET_FILE") {
            partial.clock_offset_file = Some(value.into());
        }
        if let Some(value) = env("BAOVE_ADDR_FILE") {
            partial.addr_file = Some(value.into());
        }
        if let Some(value) = env("BAOVE_AUTH_PUBLIC_KEYS") {
            partial.auth_public_keys = Some(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(PathBuf::from)
                    .collect(),
            );
        }
        if let Some(value) = env("BAOVE_MASTER_KEY_FILE") {
            partial.master_key_file = Some(value.into());
        }
        if let Some(value) = env("BAOVE_REFERRAL_KEY_FILE") {
            partial.referral_key_file = Some(value.into());
        }
        if let Some(value) = env("BAOVE_ALERT_DELIVERY_FILE") {
            partial.alert_delivery_file = Some(value.into());
        }
        if let Some(value) = env("BAOVE_STATISTICS_FILE") {
            partial.statistics_file = Some(value.into());
        }
        if let Some(value) = env("BAOVE_NATS_USER") {
            partial.nats_user = Some(value);
        }
        if let Some(value) = env("BAOVE_NATS_PASSWORD_FILE") {
            partial.nats_password_file = Some(value.into());
        }
        if let Some(value) = env("BAOVE_LOG_ORIGIN") {
            partial.log_origin = Some(value);
        }
        if let Some(value) = env("BAOVE_LOG_FORMAT") {
            partial.log_format = Some(crate::telemetry::LogFormat::parse(&value).ok_or(
                ConfigError::Env {
                    variable: "BAOVE_LOG_FORMAT",
                    value,
                    rule: "must be text or json",
                },
            )?);
        }
        if let Some(value) = env("BAOVE_CHECKPOINT_KEY_FILE") {
            partial.checkpoint_key_file = Some(value.into());
        }
        if let Some(value) = env("BAOVE_CHECKPOINT_SECS") {
            partial.checkpoint_secs = Some(value.parse().map_err(|_| ConfigError::Env {
                variable: "BAOVE_CHECKPOINT_SECS",
                value,
                rule: "must be a whole number of seconds",
            })?);
        }
        number(
            &env,
            "BAOVE_TOKEN_MAX_LIFETIME_SECS",
            "must be a whole number of seconds",
            &mut partial.token_max_lifetime_secs,
        )?;
        number(
            &env,
            "BAOVE_CALLS_PER_SEC",
            "must be a whole number of calls a second (0: no limit)",
            &mut partial.calls_per_sec,
        )?;
        number(
            &env,
            "BAOVE_CALL_BURST",
            "must be a whole number of calls",
            &mut partial.call_burst,
        )?;
        number(
            &env,
            "BAOVE_STREAMS_PER_CALLER",
            "must be a whole number of streams",
            &mut partial.streams_per_caller,
        )?;
        number(
            &env,
            "BAOVE_STREAMS_TOTAL",
            "must be a whole number of streams",
            &mut partial.streams_total,
        )?;
        number(
            &env,
            "BAOVE_MAX_IN_FLIGHT",
            "must be a whole number of calls",
            &mut partial.max_in_flight,
        )?;
        let deadline_warn_share = partial
            .deadline_warn_share
            .unwrap_or_else(default_warn_share);
        if !(0.0..=1.0).contains(&deadline_warn_share) {
            return Err(ConfigError::Env {
                variable: "deadline_warn_share (BAOVE_DEADLINE_WARN_SHARE)",
                value: deadline_warn_share.to_string(),
                rule: "must be a number from 0 to 1",
            });
        }
        let log_origin = partial.log_origin.unwrap_or_else(default_log_origin);
        if log_origin.is_empty()
            || log_origin
                .chars()
                .any(|c| c.is_whitespace() || c == '+' || c.is_control())
        {
            return Err(ConfigError::Env {
                variable: "log_origin (BAOVE_LOG_ORIGIN)",
                value: log_origin,
                rule: "must be a non-empty name without spaces or '+' (it names the checkpoints' signing key)",
            });
        }
        let stream_replicas = partial
            .stream_replicas
            .unwrap_or_else(default_stream_replicas);
        if !(1..=5).contains(&stream_replicas) {
            return Err(ConfigError::Env {
                variable: "stream_replicas (BAOVE_STREAM_REPLICAS)",
                value: stream_replicas.to_string(),
                rule: "must be a whole number from 1 to 5 (JetStream keeps at most 5 copies)",
            });
        }
        Ok(Self {
            listen: partial.listen.ok_or(ConfigError::Missing {
                key: "listen",
                variable: "BAOVE_LISTEN",
            })?,
            data_dir: partial.data_dir.ok_or(ConfigError::Missing {
                key: "data_dir",
                variable: "BAOVE_DATA_DIR",
            })?,
            nats_url: partial.nats_url.ok_or(ConfigError::Missing {
                key: "nats_url",
                variable: "BAOVE_NATS_URL",
            })?,
            stream_replicas,
            role: partial.role.unwrap_or_default(),
            active_addr: partial.active_addr.filter(|a| !a.trim().is_empty()),
            otlp_endpoint: partial.otlp_endpoint.filter(|a| !a.trim().is_empty()),
            drain_secs: partial.drain_secs.unwrap_or_else(default_drain_secs),
            cache_mb: partial.cache_mb.unwrap_or_else(default_cache_mb),
            reference_dir: partial.reference_dir.unwrap_or_else(default_reference_dir),
            handover_retry_secs: partial
                .handover_retry_secs
                .unwrap_or_else(default_handover_retry_secs),
            calendar_file: partial.calendar_file.unwrap_or_else(default_calendar_file),
            deadline_warn_share,
            clock_offset_file: partial.clock_offset_file,
            addr_file: partial.addr_file,
            metrics_listen: partial.metrics_listen,
            auth_public_keys: partial
                .auth_public_keys
                .filter(|keys| !keys.is_empty())
                .ok_or(ConfigError::Missing {
                    key: "auth_public_keys",
                    variable: "BAOVE_AUTH_PUBLIC_KEYS",
                })?,
            master_key_file: partial.master_key_file,
            referral_key_file: partial.referral_key_file,
            alert_delivery_file: partial.alert_delivery_file,
            checkpoint_secs: partial
                .checkpoint_secs
                .unwrap_or_else(default_checkpoint_secs)
                .max(1),
            log_origin,
            log_format: partial.log_format.unwrap_or_default(),
            checkpoint_key_file: partial.checkpoint_key_file,
            nats_user: partial.nats_user.filter(|u| !u.trim().is_empty()),
            nats_password_file: partial.nats_password_file,
            statistics_file: partial
                .statistics_file
                .unwrap_or_else(default_statistics_file),
            token_max_lifetime_secs: partial
                .token_max_lifetime_secs
                .unwrap_or_else(default_token_max_lifetime_secs),
            calls_per_sec: partial.calls_per_sec.unwrap_or_else(default_calls_per_sec),
            call_burst: partial.call_burst.unwrap_or_else(default_call_burst),
            streams_per_caller: partial
                .streams_per_caller
                .unwrap_or_else(default_streams_per_caller)
                .max(1),
            streams_total: partial
                .streams_total
                .unwrap_or_else(default_streams_total)
                .max(1),
            max_in_flight: partial
                .max_in_flight
                .unwrap_or_else(default_max_in_flight)
                .max(1),
        })
    }

    /// The call and stream limits of [`Config`].
    #[must_use]
    pub const fn limits(&self) -> crate::limits::LimitSettings {
        crate::limits::LimitSettings {
            calls_per_sec: self.calls_per_sec,
            call_burst: self.call_burst,
            streams_per_caller: self.streams_per_caller,
            streams_total: self.streams_total,
            max_in_flight: self.max_in_flight,
        }
    }

    /// Loads the reference data from [`Config::reference_dir`].
    ///
    /// # Errors
    /// When a file cannot be read or does not parse; names the file.
    pub fn directory(&self) -> anyhow::Result<baove_domain::reference::Directory> {
        let read = |name: &str| {
            let path = self.reference_dir.join(name);
            std::fs::read_to_string(&path)
                .map_err(|e| anyhow::anyhow!("cannot read reference data {}: {e}", path.display()))
        };
        let aliases = if self.reference_dir.join("aliases.json").exists() {
            read("aliases.json")?
        } else {
            "{}".to_owned()
        };
        baove_domain::reference::Directory::parse(&read("units.json")?, &read("agencies.json")?)
            .and_then(|d| d.with_aliases(&aliases))
            .map_err(|e| {
                anyhow::anyhow!(
                    "invalid reference data in {}: {e}",
                    self.reference_dir.display()
                )
            })
    }

    /// Loads the working-day calendar from [`Config::calendar_file`].
    ///
    /// # Errors
    /// When the file cannot be read or does not parse; names the file.
    pub fn calendar(&self) -> anyhow::Result<baove_domain::calendar::Calendar> {
        let path = &self.calendar_file;
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read calendar {}: {e}", path.display()))?;
        baove_domain::calendar::Calendar::parse(&text)
            .map_err(|e| anyhow::anyhow!("invalid calendar {}: {e}", path.display()))
    }

    /// The endpoints of [`Config::alert_delivery_file`], if set.
    ///
    /// # Errors
    /// When the file or a secret it names cannot be read or is invalid;
    /// names the file and the entry.
    pub fn alert_endpoints(&self) -> anyhow::Result<Option<crate::delivery::Endpoints>> {
        self.alert_delivery_file
            .as_deref()
            .map(crate::delivery::Endpoints::load)
            .transpose()
    }

    /// Loads the statistics definitions from [`Config::statistics_file`].
    ///
    /// # Errors
    /// When the file cannot be read or does not parse; names the file.
    pub fn statistics(&self) -> anyhow::Result<baove_domain::stats::Definitions> {
        let path = &self.statistics_file;
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!("cannot read statistics definitions {}: {e}", path.display())
        })?;
        baove_domain::stats::Definitions::parse(&text)
            .map_err(|e| anyhow::anyhow!("invalid statistics definitions {}: {e}", path.display()))
    }

    /// The service's clock (Unix ms): the system clock, ahead by the offset
    /// in [`Config::clock_offset_file`] when that is set.
    #[must_use]
    pub fn clock(&self) -> baove_eventlog::Clock {
        let system = baove_eventlog::Options::default().clock;
        match self.clock_offset_file.clone() {
            None => system,
            Some(path) => {
                tracing::warn!(file = %path.display(), "clock offset file set: this service's clock can be moved (drills and tests only)");
                std::sync::Arc::new(move || {
                    let offset = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|text| text.trim().parse::<i64>().ok())
                        .unwrap_or(0);
                    system().saturating_add(offset)
                })
            }
        }
    }

    /// The NATS credentials: the user and the password read from its file.
    ///
    /// # Errors
    /// When a user is set without a readable password file.
    pub fn nats_credentials(&self) -> anyhow::Result<Option<baove_bus::Credentials>> {
        let Some(user) = &self.nats_user else {
            return Ok(None);
        };
        let path = self.nats_password_file.as_ref().ok_or_else(|| {
            anyhow::anyhow!(
                "nats_user is set but nats_password_file (BAOVE_NATS_PASSWORD_FILE) is not"
            )
        })?;
        let password = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!("cannot read the NATS password {}: {e}", path.display())
        })?;
        Ok(Some(baove_bus::Credentials {
            user: user.clone(),
            password: password.trim().to_owned(),
        }))
    }

    /// [`Config::drain_secs`] as a duration.
    #[must_use]
    pub const fn drain(&self) -> Duration {
        Duration::from_secs(self.drain_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn environment_overrides_the_file() {
        let f = file(
            "listen = \"127.0.0.1:1\"\ndata_dir = \"/a\"\nnats_url = \"nats://x:1\"\nauth_public_keys = [\"/k.pem\"]\n",
        );
        let config = Config::load_with(Some(f.path()), |name| {
            (name == "BAOVE_LISTEN").then(|| "127.0.0.1:2".to_owned())
        })
        .unwrap();
        assert_eq!(config.listen.port(), 2);
        assert_eq!(config.data_dir, PathBuf::from("/a"));
        assert_eq!(config.drain_secs, 10);
    }

    #[test]
    fn log_format_and_origin_have_defaults_and_bad_values_are_named() {
        let f = file(
            "listen = \"127.0.0.1:1\"\ndata_dir = \"/a\"\nnats_url = \"nats://x:1\"\nauth_public_keys = [\"/k.pem\"]\nlog_format = \"json\"\n",
        );
        let with = |name: &'static str, value: &'static str| {
            Config::load_with(Some(f.path()), move |n| {
                (n == name).then(|| value.to_owned())
            })
        };
        let config = with("NONE", "").unwrap();
        assert_eq!(config.log_format, crate::telemetry::LogFormat::Json);
        assert_eq!(config.log_origin, "baove.local");
        assert_eq!(
            with("BAOVE_LOG_FORMAT", "text").unwrap().log_format,
            crate::telemetry::LogFormat::Text
        );
        let bad = with("BAOVE_LOG_FORMAT", "xml").unwrap_err().to_string();
        assert!(
            bad.contains("BAOVE_LOG_FORMAT") && bad.contains("text or json"),
            "{bad}"
        );
        let bad = with("BAOVE_LOG_ORIGIN", "tỉnh a+b")
            .unwrap_err()
            .to_string();
        assert!(
            bad.contains("BAOVE_LOG_ORIGIN") && bad.contains("'+'"),
            "{bad}"
        );
    }

    #[test]
    fn stream_replicas_default_to_one_and_must_be_one_to_five() {
        let f = file(
            "listen = \"127.0.0.1:1\"\ndata_dir = \"/a\"\nnats_url = \"nats://x:1\"\nauth_public_keys = [\"/k.pem\"]\n",
        );
        let with = |value: &'static str| {
            Config::load_with(Some(f.path()), move |name| {
                (name == "BAOVE_STREAM_REPLICAS").then(|| value.to_owned())
            })
        };
        assert_eq!(
            Config::load_with(Some(f.path()), |_| None)
                .unwrap()
                .stream_replicas,
            1
        );
        assert_eq!(with("3").unwrap().stream_replicas, 3);
        for bad in ["0", "6", "three"] {
            let err = with(bad).unwrap_err().to_string();
            assert!(
                err.contains("BAOVE_STREAM_REPLICAS") && err.contains("1 to 5"),
                "{err}"
            );
        }
    }

    #[test]
    fn errors_name_the_key_or_variable() {
        let f = file("listen = \"127.0.0.1:1\"\ndata_dir = \"/a\"\n");
        let err = Config::load_with(Some(f.path()), |_| None).unwrap_err();
        assert!(
            err.to_string().contains("nats_url") && err.to_string().contains("BAOVE_NATS_URL"),
            "{err}"
        );
        let err = Config::load_with(Some(f.path()), |n| {
            (n == "BAOVE_LISTEN").then(|| "nowhere".into())
        })
        .unwrap_err();
        assert!(err.to_string().contains("BAOVE_LISTEN=nowhere"), "{err}");
        let f = file("listen = \"127.0.0.1:1\"\nlisten_port = 3\n");
        let err = Config::load_with(Some(f.path()), |_| None).unwrap_err();
        assert!(err.to_string().contains("listen_port"), "{err}");
    }

    /// Each key is written in several places (this file's structs, the
    /// environment, `load`'s list of variables, the README's table): a key
    /// missing from one of them fails here, named.
    #[test]
    fn every_key_has_its_variable_in_load_and_its_docs_and_a_readme_row() {
        let source = include_str!("config.rs");
        let readme = include_str!("../../../README.md");
        let partial = source
            .split("struct Partial {")
            .nth(1)
            .and_then(|rest| rest.split("\n}").next())
            .unwrap();
        let keys: Vec<&str> = partial
            .lines()
            .filter_map(|line| line.trim().split_once(':'))
            .map(|(key, _)| key.trim())
            .collect();
        assert!(keys.len() > 30, "{keys:?}");
        let load_docs = source
            .split("/// Loads `file` (if given)")
            .nth(1)
            .and_then(|rest| rest.split("pub fn load(").next())
            .unwrap();
        let mut missing = Vec::new();
        for key in keys {
            let variable = format!("BAOVE_{}", key.to_uppercase());
            // Read as env("BAOVE_X") or number(&env, "BAOVE_X", ...).
            if !source.contains(&format!("\"{variable}\"")) {
                missing.push(format!("{key}: {variable} is not read"));
            }
            if !load_docs.contains(&format!("`{variable}`")) {
                missing.push(format!(
                    "{key}: {variable} is not in load's list of variables"
                ));
            }
            if !readme.contains(&format!("| `{key}` | `{variable}` |")) {
                missing.push(format!(
                    "{key}: the README's configuration table has no row for it"
                ));
            }
        }
        assert!(missing.is_empty(), "{missing:#?}");
    }
}
