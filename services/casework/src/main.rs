//! `baove-casework`: see the crate docs of `baove_casework`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    baove_runtime::main(&baove_casework::SPEC, baove_casework::run).await
}
