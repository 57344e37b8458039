//! Logging with tracing. Building the subscriber is separate from installing
//! it, so tests can build one that writes elsewhere.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// A subscriber that writes human-readable lines to `sink`, filtered by
/// `RUST_LOG` (default `info`), coloured only when `ansi` (a terminal).
pub fn subscriber<W>(sink: W, ansi: bool) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(sink)
        .with_ansi(ansi)
        .with_target(false)
        .finish()
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
