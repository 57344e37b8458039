//! Logging with tracing. Building the subscriber is separate from installing
//! it, so tests can build one that writes elsewhere.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// How log lines are written (`log_format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event (the default).
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields`, `span`
    /// and `spans` with their fields: the RPC, ids, the correlation id),
    /// for a log collector.
    Json,
}

impl LogFormat {
    /// The format named `text` or `json`.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim() {
            "text" => Some(Self::Text),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
}

/// A subscriber that writes to `sink` in `format`, filtered by `RUST_LOG`
/// (default `info`); text is coloured only when `ansi` (a terminal).
pub fn subscriber<W>(
    sink: W,
    ansi: bool,
    format: LogFormat,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(sink)
        .with_target(false);
    match format {
        LogFormat::Text => Box::new(builder.with_ansi(ansi).finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .with_current_span(true)
                .with_span_list(true)
                .finish(),
        ),
    }
}

/// Installs `subscriber` as the process's global default. Call once, at
/// start-up.
///
/// # Errors
/// When a global subscriber was already installed.
pub fn install(subscriber: impl tracing::Subscriber + Send + Sync) -> anyhow::Result<()> {
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|e| anyhow::anyhow!("failed to install the log subscriber: {e}"))
}
