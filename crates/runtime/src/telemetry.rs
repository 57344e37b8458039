//! Logging with tracing, and (with the `otlp` feature and `otlp_endpoint`)
//! the spans exported over OTLP to an OpenTelemetry collector. Building the
//! subscriber is separate from installing it, so tests can build one that
//! writes elsewhere.

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry};

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
    layered(vec![fmt_layer(sink, ansi, format)])
}

/// As [`subscriber`], and with `otlp_endpoint` every span also exported
/// over OTLP/gRPC (the `otlp` feature), as the resource `service`; the
/// spans are flushed when the returned [`Exporting`] is dropped.
///
/// # Errors
/// When the exporter cannot be made, or `otlp_endpoint` is set in a build
/// without the `otlp` feature (which exports nothing: refused rather than
/// silently dropped).
pub fn subscriber_exporting<W>(
    sink: W,
    ansi: bool,
    format: LogFormat,
    otlp_endpoint: Option<&str>,
    service: &'static str,
) -> anyhow::Result<(Box<dyn tracing::Subscriber + Send + Sync>, Exporting)>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let mut layers = vec![fmt_layer(sink, ansi, format)];
    let exporting = match otlp_endpoint {
        None => Exporting::default(),
        Some(endpoint) => {
            let (layer, exporting) = otlp::layer(endpoint, service)?;
            layers.push(layer);
            exporting
        }
    };
    Ok((layered(layers), exporting))
}

/// A layer of the subscriber.
type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// `layers` over a registry, filtered by `RUST_LOG` (default `info`).
fn layered(layers: Vec<BoxedLayer>) -> Box<dyn tracing::Subscriber + Send + Sync> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    Box::new(Registry::default().with(layers.with_filter(filter)))
}

/// The log lines, to `sink` in `format`.
fn fmt_layer<W>(sink: W, ansi: bool, format: LogFormat) -> BoxedLayer
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(sink)
        .with_target(false);
    match format {
        LogFormat::Text => layer.with_ansi(ansi).boxed(),
        LogFormat::Json => layer
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .boxed(),
    }
}

/// The OTLP export while it runs: dropping it flushes the spans not yet
/// sent and stops the exporter.
#[derive(Default)]
pub struct Exporting {
    #[cfg(feature = "otlp")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for Exporting {
    fn drop(&mut self) {
        #[cfg(feature = "otlp")]
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("the last spans could not be exported: {e}");
        }
    }
}

#[cfg(feature = "otlp")]
mod otlp {
    //! The spans, exported over OTLP/gRPC (tonic) in batches from a
    //! background thread.

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig as _;
    use tracing_subscriber::Layer as _;

    use super::{BoxedLayer, Exporting};

    /// A layer exporting every span to `endpoint` as the resource
    /// `service`.
    pub fn layer(endpoint: &str, service: &'static str) -> anyhow::Result<(BoxedLayer, Exporting)> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .map_err(|e| anyhow::anyhow!("cannot export spans to {endpoint}: {e}"))?;
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name(service)
                    .build(),
            )
            .build();
        let tracer = provider.tracer("baove");
        Ok((
            tracing_opentelemetry::layer().with_tracer(tracer).boxed(),
            Exporting {
                provider: Some(provider),
            },
        ))
    }
}

#[cfg(not(feature = "otlp"))]
mod otlp {
    use super::{BoxedLayer, Exporting};

    /// Refuses: this build exports nothing.
    pub fn layer(
        _endpoint: &str,
        _service: &'static str,
    ) -> anyhow::Result<(BoxedLayer, Exporting)> {
        anyhow::bail!(
            "otlp_endpoint (BAOVE_OTLP_ENDPOINT) is set, but this build exports no spans: build the services with `--features otlp`, or unset it"
        )
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

#[cfg(test)]
mod tests {
    #[cfg(not(feature = "otlp"))]
    #[test]
    fn given_an_otlp_endpoint_in_a_build_without_the_feature_then_start_is_refused() {
        let refused = super::subscriber_exporting(
            std::io::sink,
            false,
            super::LogFormat::Text,
            Some("http://127.0.0.1:4317"),
            "intake",
        )
        .err()
        .expect("refused")
        .to_string();
        assert!(
            refused.contains("otlp_endpoint") && refused.contains("--features otlp"),
            "{refused}"
        );
        assert!(
            super::subscriber_exporting(
                std::io::sink,
                false,
                super::LogFormat::Json,
                None,
                "intake"
            )
            .is_ok()
        );
    }
}
