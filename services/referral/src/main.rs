//! `baove-referral`: see the crate docs of `baove_referral`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    baove_runtime::main(&baove_referral::SPEC, baove_referral::run).await
}
