//! Service configuration: a TOML file, then `BAOVE_*` environment overrides.
//!
//! Every setting is one row of the key table below ([`KEYS`]): its key in
//! the file, its variable, which services read it, its default (or that it
//! is required) and the rule a variable's value must follow. The
//! [`Config`] struct, the file's parser and the environment's overrides are
//! all made from that table; the README's configuration table is checked
//! against it by a test. To add a setting, add a row.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Services that read a key (for [`Key::services`]): all three.
pub const ALL_SERVICES: &[&str] = &["intake", "casework", "referral"];

/// One row of the key table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    /// The key in the TOML file.
    pub name: &'static str,
    /// The environment variable that overrides it.
    pub variable: &'static str,
    /// The services that read it ([`ALL_SERVICES`] for all).
    pub services: &'static [&'static str],
}

/// A value as a variable gives it: `None` when the text does not parse.
trait FromVariable: Sized {
    fn from_variable(text: &str) -> Option<Self>;
}

macro_rules! parsed_from_variable {
    ($($ty:ty),*) => {$(
        impl FromVariable for $ty {
            fn from_variable(text: &str) -> Option<Self> {
                text.trim().parse().ok()
            }
        }
    )*};
}
parsed_from_variable!(SocketAddr, u32, u64, usize, f64);

impl FromVariable for String {
    fn from_variable(text: &str) -> Option<Self> {
        Some(text.to_owned())
    }
}

impl FromVariable for PathBuf {
    fn from_variable(text: &str) -> Option<Self> {
        Some(text.into())
    }
}

/// Paths separated by commas.
impl FromVariable for Vec<PathBuf> {
    fn from_variable(text: &str) -> Option<Self> {
        Some(
            text.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .collect(),
        )
    }
}

impl FromVariable for Role {
    fn from_variable(text: &str) -> Option<Self> {
        match text.trim() {
            "active" => Some(Self::Active),
            "standby" => Some(Self::Standby),
            "auto" => Some(Self::Auto),
            _ => None,
        }
    }
}

impl FromVariable for crate::telemetry::LogFormat {
    fn from_variable(text: &str) -> Option<Self> {
        Self::parse(text)
    }
}

impl<T: FromVariable> FromVariable for Option<T> {
    fn from_variable(text: &str) -> Option<Self> {
        T::from_variable(text).map(Some)
    }
}

/// Makes [`Config`], the file's parser, the environment's overrides and
/// [`KEYS`] from one table. A row:
/// `/// docs` `key: Type, "BAOVE_KEY", services, default, "rule";` where
/// the default is `required`, `optional` (an `Option`, none) or
/// `default(expression)`, and the rule says what the variable's value must
/// be (`""` for text, which always parses).
macro_rules! key_table {
    (@value $value:expr, $key:ident, $variable:literal, required) => {
        $value.ok_or(ConfigError::Missing {
            key: stringify!($key),
            variable: $variable,
        })?
    };
    (@value $value:expr, $key:ident, $variable:literal, optional) => {
        $value.flatten()
    };
    (@value $value:expr, $key:ident, $variable:literal, default($default:expr)) => {
        $value.unwrap_or_else(|| $default)
    };
    ($(
        $(#[doc = $doc:literal])*
        $key:ident: $ty:ty, $variable:literal, $services:expr,
            $default:ident $(($default_value:expr))?, $rule:literal;
    )*) => {
        /// Where a service listens, keeps its data and finds NATS: one
        /// field per row of the key table ([`KEYS`]).
        #[derive(Clone, Debug, PartialEq)]
        pub struct Config {
            $(
                $(#[doc = $doc])*
                pub $key: $ty,
            )*
            /// The keys set in the file or the environment.
            set: Vec<&'static str>,
        }

        /// The file's keys before overrides: everything optional, so that
        /// the environment can supply what the file lacks.
        #[derive(Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Partial {
            $(
                #[serde(default)]
                $key: Option<$ty>,
            )*
        }

        /// Every key: its name, its variable, the services that read it.
        pub const KEYS: &[Key] = &[$(Key {
            name: stringify!($key),
            variable: $variable,
            services: $services,
        }),*];

        impl Partial {
            /// Applies each key's variable, when set, over the file's value.
            fn override_from(
                &mut self,
                env: &impl Fn(&str) -> Option<String>,
            ) -> Result<(), ConfigError> {
                $(
                    if let Some(value) = env($variable) {
                        self.$key = Some(<$ty as FromVariable>::from_variable(&value).ok_or(
                            ConfigError::Env {
                                variable: $variable,
                                value,
                                rule: $rule,
                            },
                        )?);
                    }
                )*
                Ok(())
            }

            /// The keys that have a value.
            fn set(&self) -> Vec<&'static str> {
                let mut set = Vec::new();
                $(
                    if self.$key.is_some() {
                        set.push(stringify!($key));
                    }
                )*
                set
            }

            /// The configuration: defaults for what is unset; refuses a
            /// missing required key.
            fn complete(self) -> Result<Config, ConfigError> {
                let set = self.set();
                Ok(Config {
                    $($key: key_table!(@value self.$key, $key, $variable,
                        $default $(($default_value))?),)*
                    set,
                })
            }
        }
    };
}

key_table! {
    /// gRPC listen address (`BAOVE_LISTEN`), e.g. `127.0.0.1:50051`.
    listen: SocketAddr, "BAOVE_LISTEN", ALL_SERVICES, required,
        "must be a socket address such as 127.0.0.1:50051";
    /// Where Prometheus scrapes the service's metrics
    /// (`BAOVE_METRICS_LISTEN`, e.g. `127.0.0.1:9101`); none (the default):
    /// no metrics endpoint. See [`crate::metrics`].
    metrics_listen: Option<SocketAddr>, "BAOVE_METRICS_LISTEN", ALL_SERVICES, optional,
        "must be a socket address such as 127.0.0.1:9101";
    /// Directory of the service's sled database (`BAOVE_DATA_DIR`); created
    /// if missing. Never shared between services.
    data_dir: PathBuf, "BAOVE_DATA_DIR", ALL_SERVICES, required, "";
    /// NATS URL (`BAOVE_NATS_URL`), e.g. `nats://127.0.0.1:4222`; for a
    /// cluster, every node's URL separated by commas.
    nats_url: String, "BAOVE_NATS_URL", ALL_SERVICES, required, "";
    /// Copies JetStream keeps of each of the service's streams
    /// (`BAOVE_STREAM_REPLICAS`), 1 to 5; default 1 (one nats-server). 3
    /// on a three-node cluster: a publish is then acknowledged once two
    /// nodes stored it, and any one node can be lost.
    stream_replicas: usize, "BAOVE_STREAM_REPLICAS", ALL_SERVICES, default(1),
        "must be a whole number from 1 to 5";
    /// `active` (the default), `standby` or `auto` (`BAOVE_ROLE`): a
    /// standby follows the active's log stream into its own log, answers
    /// reads and refuses writes; it runs no consumer, relay, scheduler or
    /// checkpoint; promote it by restarting it as `active`. `auto` is a
    /// standby that becomes the active when it takes the service's lease,
    /// and stops when it loses it (docs/cluster.md).
    role: Role, "BAOVE_ROLE", ALL_SERVICES, default(Role::Active),
        "must be active, standby or auto";
    /// The active's gRPC address, which a standby names when it refuses a
    /// write (`BAOVE_ACTIVE_ADDR`, metadata `baove-active`).
    active_addr: Option<String>, "BAOVE_ACTIVE_ADDR", ALL_SERVICES, optional, "";
    /// The province whose records this process keeps (`BAOVE_PARTITION`,
    /// its unit id in the reference data, e.g. `vn:92`); none (the
    /// default): one partition holding every province. Its streams and its
    /// lease are that partition's own, so each province has its own active
    /// (docs/cluster.md, "Partitions"); intake refuses a report for another
    /// province. Every process of one service and partition sets the same.
    partition: Option<String>, "BAOVE_PARTITION", ALL_SERVICES, optional, "";
    /// How long shutdown waits for in-flight requests after health went
    /// NOT_SERVING (`BAOVE_DRAIN_SECS`); default 10.
    drain_secs: u64, "BAOVE_DRAIN_SECS", ALL_SERVICES, default(10),
        "must be a whole number of seconds";
    /// sled page cache of the event log, in MiB (`BAOVE_CACHE_MB`); default
    /// 1024. Global-order replay slows sharply once the log outgrows it.
    cache_mb: u64, "BAOVE_CACHE_MB", ALL_SERVICES, default(1024),
        "must be a whole number of MiB";
    /// Directory of the reference data, `units.json`, `agencies.json` and
    /// (when present) `aliases.json` (`BAOVE_REFERENCE_DIR`); default
    /// `deploy/reference`.
    reference_dir: PathBuf, "BAOVE_REFERENCE_DIR", ALL_SERVICES,
        default(PathBuf::from("deploy/reference")), "";
    /// intake: first wait before re-publishing a report whose hand-over to
    /// casework has not come back, doubling up to 10 minutes
    /// (`BAOVE_HANDOVER_RETRY_SECS`); default 30.
    handover_retry_secs: u64, "BAOVE_HANDOVER_RETRY_SECS", &["intake"], default(30),
        "must be a whole number of seconds";
    /// casework and referral: the working-day calendar
    /// (`BAOVE_CALENDAR_FILE`); default `deploy/calendar/vietnam.json`.
    calendar_file: PathBuf, "BAOVE_CALENDAR_FILE", &["casework", "referral"],
        default(PathBuf::from("deploy/calendar/vietnam.json")), "";
    /// casework: share of a deadline's time after which the early warning is
    /// raised, 0 to 1 (`BAOVE_DEADLINE_WARN_SHARE`); default 0.75.
    deadline_warn_share: f64, "BAOVE_DEADLINE_WARN_SHARE", &["casework"], default(0.75),
        "must be a number from 0 to 1";
    /// For drills and tests only: a file holding a number of milliseconds
    /// by which this service's clock runs ahead (`BAOVE_CLOCK_OFFSET_FILE`).
    /// Read at each tick; missing or empty means no offset. Never set in
    /// production.
    clock_offset_file: Option<PathBuf>, "BAOVE_CLOCK_OFFSET_FILE", ALL_SERVICES, optional, "";
    /// A file the service writes its bound gRPC address to once listening
    /// (`BAOVE_ADDR_FILE`): with `listen` on port 0, how a supervisor or a
    /// test learns the port the system chose.
    addr_file: Option<PathBuf>, "BAOVE_ADDR_FILE", ALL_SERVICES, optional, "";
    /// Public keys (Ed25519, SPKI PEM files) whose tokens are accepted
    /// (`BAOVE_AUTH_PUBLIC_KEYS`, paths separated by commas). Required:
    /// without a key every call would be refused.
    auth_public_keys: Vec<PathBuf>, "BAOVE_AUTH_PUBLIC_KEYS", ALL_SERVICES, required, "";
    /// intake and casework: the master key (64 hex digits) that wraps the
    /// data keys of a report's confidential fields or a case's private text
    /// (`BAOVE_MASTER_KEY_FILE`).
    master_key_file: Option<PathBuf>, "BAOVE_MASTER_KEY_FILE", &["intake", "casework"],
        optional, "";
    /// casework and referral: the key (64 hex digits) that wraps each
    /// referral's data key in the cluster's bucket of referral keys, the
    /// same file on both services (`BAOVE_REFERRAL_KEY_FILE`); it seals a
    /// referral's reasons and outcome ([`crate::referral_keys`]).
    referral_key_file: Option<PathBuf>, "BAOVE_REFERRAL_KEY_FILE", &["casework", "referral"],
        optional, "";
    /// casework and referral: where their alerts are delivered, by webhook
    /// and e-mail (`BAOVE_ALERT_DELIVERY_FILE`, JSON,
    /// [`crate::delivery::Endpoints`]); none: alerts stay on the
    /// `BAOVE_ALERT` stream only.
    alert_delivery_file: Option<PathBuf>, "BAOVE_ALERT_DELIVERY_FILE",
        &["casework", "referral"], optional, "";
    /// Seconds between signed checkpoints of the log
    /// (`BAOVE_CHECKPOINT_SECS`); default 300. The signing key is
    /// `checkpoint_key_file`, else `<data_dir>/checkpoint-key.pem`, created
    /// on first start; its public half is in the data directory.
    checkpoint_secs: u64, "BAOVE_CHECKPOINT_SECS", ALL_SERVICES, default(300),
        "must be a whole number of seconds";
    /// The key that signs checkpoints (`BAOVE_CHECKPOINT_KEY_FILE`, PKCS#8
    /// PEM, made with `baove token keygen`); none: the data directory's own
    /// `checkpoint-key.pem`, created on first start. In a cluster give every
    /// process of a service the same key, so that a witness follows the log
    /// across a failover.
    checkpoint_key_file: Option<PathBuf>, "BAOVE_CHECKPOINT_KEY_FILE", ALL_SERVICES,
        optional, "";
    /// How log lines are written (`BAOVE_LOG_FORMAT`): `text` (default) or
    /// `json`, one object per line for a log collector.
    log_format: crate::telemetry::LogFormat, "BAOVE_LOG_FORMAT", ALL_SERVICES,
        default(crate::telemetry::LogFormat::Text), "must be text or json";
    /// Where to export the spans over OTLP/gRPC (`BAOVE_OTLP_ENDPOINT`,
    /// e.g. `http://127.0.0.1:4317`, an OpenTelemetry collector); none: no
    /// export. Only a build with the `otlp` feature exports; another
    /// refuses to start with this set.
    otlp_endpoint: Option<String>, "BAOVE_OTLP_ENDPOINT", ALL_SERVICES, optional, "";
    /// The deployment's name in checkpoint origins (`BAOVE_LOG_ORIGIN`):
    /// a service's checkpoints start with `<log_origin>/<service>` and its
    /// signed-note key has that name. Default `baove.local`; a province
    /// sets its own (e.g. `baove.hanoi.gov.vn`) so that witnesses and
    /// auditors tell its logs from another's. No spaces, no `+`.
    log_origin: String, "BAOVE_LOG_ORIGIN", ALL_SERVICES,
        default("baove.local".to_owned()), "";
    /// casework: the statistics definitions (age groups, small-cell
    /// threshold) (`BAOVE_STATISTICS_FILE`); default
    /// `deploy/statistics/indicators.json`.
    statistics_file: PathBuf, "BAOVE_STATISTICS_FILE", &["casework"],
        default(PathBuf::from("deploy/statistics/indicators.json")), "";
    /// The longest lifetime (`exp - iat`) of a token accepted, in seconds
    /// (`BAOVE_TOKEN_MAX_LIFETIME_SECS`); default 43200 (12 hours).
    token_max_lifetime_secs: u64, "BAOVE_TOKEN_MAX_LIFETIME_SECS", ALL_SERVICES,
        default(baove_security::token::DEFAULT_MAX_LIFETIME_SECS),
        "must be a whole number of seconds";
    /// Calls per second one caller may make, sustained
    /// (`BAOVE_CALLS_PER_SEC`); default 20; 0 turns the limit off.
    calls_per_sec: u32, "BAOVE_CALLS_PER_SEC", ALL_SERVICES, default(20),
        "must be a whole number of calls a second (0: no limit)";
    /// Calls one caller may make at once before that rate applies
    /// (`BAOVE_CALL_BURST`); default 200.
    call_burst: u32, "BAOVE_CALL_BURST", ALL_SERVICES, default(200),
        "must be a whole number of calls";
    /// Live server streams (`WatchCase`, `WatchInbox`, `StreamHistory`)
    /// one caller may hold open (`BAOVE_STREAMS_PER_CALLER`); default 8.
    streams_per_caller: usize, "BAOVE_STREAMS_PER_CALLER", ALL_SERVICES, default(8),
        "must be a whole number of streams";
    /// Live server streams in all (`BAOVE_STREAMS_TOTAL`); default 256.
    streams_total: usize, "BAOVE_STREAMS_TOTAL", ALL_SERVICES, default(256),
        "must be a whole number of streams";
    /// Calls being answered at once in the process; beyond it a call is
    /// refused at once with RESOURCE_EXHAUSTED (`BAOVE_MAX_IN_FLIGHT`);
    /// default 256.
    max_in_flight: usize, "BAOVE_MAX_IN_FLIGHT", ALL_SERVICES, default(256),
        "must be a whole number of calls";
    /// The service's NATS user (`BAOVE_NATS_USER`); none: connect
    /// anonymously (tests, a server without authorization).
    nats_user: Option<String>, "BAOVE_NATS_USER", ALL_SERVICES, optional, "";
    /// A file holding that user's password (`BAOVE_NATS_PASSWORD_FILE`).
    nats_password_file: Option<PathBuf>, "BAOVE_NATS_PASSWORD_FILE", ALL_SERVICES,
        optional, "";
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
    /// A standby until it takes the service's lease (when the active
    /// stopped renewing it), then the active until it loses it: automatic failover
    /// between the processes of a service (docs/cluster.md).
    Auto,
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

impl Config {
    /// Loads `file` (if given), then applies the variable of each key in
    /// [`KEYS`] (`BAOVE_` and the key in capitals, e.g. `BAOVE_LISTEN`)
    /// from the process environment.
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
        let mut partial: Partial = match file {
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
        partial.override_from(&env)?;
        partial.complete()?.checked()
    }

    /// Refuses values outside their key's range and drops empty texts; some
    /// counts have a floor of 1.
    fn checked(mut self) -> Result<Self, ConfigError> {
        if !(0.0..=1.0).contains(&self.deadline_warn_share) {
            return Err(ConfigError::Env {
                variable: "deadline_warn_share (BAOVE_DEADLINE_WARN_SHARE)",
                value: self.deadline_warn_share.to_string(),
                rule: "must be a number from 0 to 1",
            });
        }
        if self.log_origin.is_empty()
            || self
                .log_origin
                .chars()
                .any(|c| c.is_whitespace() || c == '+' || c.is_control())
        {
            return Err(ConfigError::Env {
                variable: "log_origin (BAOVE_LOG_ORIGIN)",
                value: self.log_origin,
                rule: "must be a non-empty name without spaces or '+' (it names the checkpoints' signing key)",
            });
        }
        if let Some(partition) = self.partition.as_ref().filter(|p| !p.trim().is_empty())
            && baove_bus::partition::Partition::new(partition).is_err()
        {
            return Err(ConfigError::Env {
                variable: "partition (BAOVE_PARTITION)",
                value: partition.clone(),
                rule: "must be a province's unit id such as vn:92 (ASCII letters, digits, ':', '-' and '_', at most 32 characters)",
            });
        }
        if !(1..=5).contains(&self.stream_replicas) {
            return Err(ConfigError::Env {
                variable: "stream_replicas (BAOVE_STREAM_REPLICAS)",
                value: self.stream_replicas.to_string(),
                rule: "must be a whole number from 1 to 5 (JetStream keeps at most 5 copies)",
            });
        }
        if self.auth_public_keys.is_empty() {
            return Err(ConfigError::Missing {
                key: "auth_public_keys",
                variable: "BAOVE_AUTH_PUBLIC_KEYS",
            });
        }
        let not_blank = |text: &String| !text.trim().is_empty();
        self.active_addr = self.active_addr.filter(not_blank);
        self.partition = self.partition.filter(not_blank);
        self.otlp_endpoint = self.otlp_endpoint.filter(not_blank);
        self.nats_user = self.nats_user.filter(not_blank);
        self.checkpoint_secs = self.checkpoint_secs.max(1);
        self.streams_per_caller = self.streams_per_caller.max(1);
        self.streams_total = self.streams_total.max(1);
        self.max_in_flight = self.max_in_flight.max(1);
        Ok(self)
    }

    /// The keys set (in the file or the environment) that `service` does
    /// not read: a setting the operator meant for another service, or put
    /// in the wrong file. The service warns of each at start.
    #[must_use]
    pub fn unread_keys(&self, service: &str) -> Vec<&'static str> {
        KEYS.iter()
            .filter(|key| self.set.contains(&key.name) && !key.services.contains(&service))
            .map(|key| key.name)
            .collect()
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

    /// The partition this process keeps ([`Config::partition`]), checked
    /// against the reference data `directory`: it must name a province
    /// there (a unit with no parent) that has not ended (whose records
    /// now go to its successor).
    ///
    /// # Errors
    /// When it names no unit, a unit below a province, or a province that
    /// has ended; the message names the setting, the value and the rule.
    pub fn partition_in(
        &self,
        directory: &baove_domain::reference::Directory,
    ) -> anyhow::Result<Option<baove_bus::partition::Partition>> {
        let Some(id) = &self.partition else {
            return Ok(None);
        };
        match directory.province_of(id) {
            Some(province) if province.id == *id && !province.successors.is_empty() => {
                anyhow::bail!(
                    "partition (BAOVE_PARTITION) {id:?} must be a province in force: {id} has ended, and its reports go to {}; set partition to that",
                    province.successors.join(" or ")
                )
            }
            Some(province) if province.id == *id => Ok(Some(
                baove_bus::partition::Partition::new(id)
                    .map_err(|e| anyhow::anyhow!("partition (BAOVE_PARTITION) {id:?} {e}"))?,
            )),
            Some(province) => anyhow::bail!(
                "partition (BAOVE_PARTITION) {id:?} must be a province's unit id: {id} lies in province {}; set partition = {:?}",
                province.id,
                province.id
            ),
            None => anyhow::bail!(
                "partition (BAOVE_PARTITION) {id:?} must be a province's unit id: no such unit in the reference data {}",
                self.reference_dir.display()
            ),
        }
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
    fn given_a_partition_then_only_a_province_in_force_is_taken_and_a_refusal_names_the_rule() {
        let f = file(&format!(
            "listen = \"127.0.0.1:1\"\ndata_dir = \"/a\"\nnats_url = \"nats://x:1\"\nauth_public_keys = [\"/k.pem\"]\nreference_dir = \"{}/../../deploy/reference\"\n",
            env!("CARGO_MANIFEST_DIR")
        ));
        let with = |partition: &'static str| {
            let config = Config::load_with(Some(f.path()), move |n| {
                (n == "BAOVE_PARTITION").then(|| partition.to_owned())
            })
            .unwrap();
            let directory = config.directory().unwrap();
            config
                .partition_in(&directory)
                .map(|p| p.map(|p| p.token().to_owned()))
                .map_err(|e| e.to_string())
        };
        assert_eq!(with("vn:92"), Ok(Some("vn-92".to_owned())));
        assert_eq!(with(""), Ok(None));
        let commune = with("vn:31135").unwrap_err();
        assert!(commune.contains("lies in province vn:92"), "{commune}");
        let ended = with("vn-pre2025:93").unwrap_err();
        assert!(
            ended.contains("has ended") && ended.contains("vn:92"),
            "{ended}"
        );
        let unknown = with("vn:999").unwrap_err();
        assert!(unknown.contains("no such unit"), "{unknown}");
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

    /// The key table is the one list of keys; each has the variable its
    /// name gives and a README row that names the services reading it
    /// when not all do. A key missing from the README fails here, named.
    #[test]
    fn every_key_has_its_variable_and_a_readme_row_naming_its_services() {
        let readme = include_str!("../../../README.md");
        assert!(KEYS.len() > 30, "{KEYS:?}");
        let mut wrong = Vec::new();
        for key in KEYS {
            let variable = format!("BAOVE_{}", key.name.to_uppercase());
            if key.variable != variable {
                wrong.push(format!("{}: its variable must be {variable}", key.name));
            }
            let row = format!("| `{}` | `{}` | ", key.name, key.variable);
            let Some(meaning) = readme
                .lines()
                .find_map(|line| line.strip_prefix(row.as_str()))
            else {
                wrong.push(format!(
                    "{}: the README's configuration table has no row for it",
                    key.name
                ));
                continue;
            };
            let names_services = ALL_SERVICES.iter().any(|s| meaning.starts_with(s));
            if key.services == ALL_SERVICES {
                if names_services {
                    wrong.push(format!(
                        "{}: every service reads it, the README row names one",
                        key.name
                    ));
                }
            } else {
                let services = key.services.join(" and ");
                if !(meaning.starts_with(&format!("{services}:"))
                    || meaning.starts_with(&format!("{services},")))
                {
                    wrong.push(format!(
                        "{}: the README row must start with \"{services}\"",
                        key.name
                    ));
                }
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn given_keys_another_service_reads_when_loaded_then_they_are_named_as_unread() {
        let f = file(
            "listen = \"127.0.0.1:1\"\ndata_dir = \"/a\"\nnats_url = \"nats://x:1\"\nauth_public_keys = [\"/k.pem\"]\nmaster_key_file = \"/m.key\"\n",
        );
        let config = Config::load_with(Some(f.path()), |name| {
            (name == "BAOVE_DEADLINE_WARN_SHARE").then(|| "0.5".to_owned())
        })
        .unwrap();
        assert_eq!(config.master_key_file, Some(PathBuf::from("/m.key")));
        assert_eq!(config.metrics_listen, None);
        assert_eq!(config.unread_keys("intake"), ["deadline_warn_share"]);
        assert_eq!(config.unread_keys("casework"), Vec::<&str>::new());
        assert_eq!(
            config.unread_keys("referral"),
            ["deadline_warn_share", "master_key_file"]
        );
    }

    #[test]
    fn every_variable_is_read_and_a_malformed_one_is_named_with_its_rule() {
        let f = file(
            "listen = \"127.0.0.1:1\"\ndata_dir = \"/a\"\nnats_url = \"nats://x:1\"\nauth_public_keys = [\"/k.pem\"]\n",
        );
        for key in KEYS {
            let read = std::cell::Cell::new(false);
            let _ = Config::load_with(Some(f.path()), |name| {
                read.set(read.get() || name == key.variable);
                None
            });
            assert!(read.get(), "{} is not read", key.variable);
        }
        let err = Config::load_with(Some(f.path()), |name| {
            (name == "BAOVE_CACHE_MB").then(|| "lots".to_owned())
        })
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "invalid BAOVE_CACHE_MB=lots: must be a whole number of MiB"
        );
    }

    /// The shipped configuration files (`deploy/*/<service>.toml`) load,
    /// and set no key their service does not read.
    #[test]
    fn every_shipped_config_file_loads_and_sets_only_keys_its_service_reads() {
        let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
        let mut checked = 0;
        for dir in std::fs::read_dir(&deploy).unwrap() {
            let dir = dir.unwrap().path();
            for service in ALL_SERVICES {
                let path = dir.join(format!("{service}.toml"));
                if !path.exists() {
                    continue;
                }
                let config = Config::load_with(Some(&path), |_| None)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert_eq!(
                    config.unread_keys(service),
                    Vec::<&str>::new(),
                    "{}",
                    path.display()
                );
                checked += 1;
            }
        }
        assert!(
            checked >= 9,
            "only {checked} files found under {}",
            deploy.display()
        );
    }
}
