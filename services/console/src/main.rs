//! `baove-console`: see the crate docs of `baove_console`.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = baove_console::Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    baove_console::run(config).await
}
