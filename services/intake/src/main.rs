//! `baove-intake`: see the crate docs of `baove_intake`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    baove_runtime::main(&baove_intake::SPEC, baove_intake::run).await
}
