//! `baove backup`: a service's whole event log, copied while it serves
//! (`AuditService.Backup`), into one file that `baove-<service> restore`
//! reads.

use baove_proto::v1::audit_service_client::AuditServiceClient;

use crate::{channel, status_error};

/// Writes the parts of `AuditService.Backup` to `out`, each
/// length-delimited, aside first; prints what the copy holds and its
/// SHA-256.
pub async fn run(addr: &str, out: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Write as _;

    use anyhow::Context as _;
    use baove_proto::v1::backup_response::Part;
    use prost::Message as _;
    use sha2::Digest as _;

    let mut client = AuditServiceClient::new(channel(addr).await?);
    let mut stream = client
        .backup(baove_proto::v1::BackupRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    let aside = out.with_extension("partial");
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(&aside)
            .with_context(|| format!("cannot create {}", aside.display()))?,
    );
    let mut digest = sha2::Sha256::new();
    let mut manifest = None;
    let mut end = None;
    let mut events = 0u64;
    while let Some(message) = stream.message().await.map_err(status_error)? {
        let bytes = message.encode_length_delimited_to_vec();
        digest.update(&bytes);
        file.write_all(&bytes)?;
        match message.part {
            Some(Part::Manifest(m)) => manifest = Some(m),
            Some(Part::Events(page)) => events += page.events.len() as u64,
            Some(Part::End(e)) => end = Some(e),
            Some(Part::SideEntry(_)) | None => {}
        }
    }
    let (Some(manifest), Some(end)) = (manifest, end) else {
        let _ = std::fs::remove_file(&aside);
        anyhow::bail!("the service ended the backup before its end record; nothing was written");
    };
    if end.events != events {
        let _ = std::fs::remove_file(&aside);
        anyhow::bail!(
            "the service sent {events} events, its end record says {}; nothing was written",
            end.events
        );
    }
    let file = file.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    std::fs::rename(&aside, out)?;
    let checkpoint = manifest.checkpoint.unwrap_or_default();
    out!(
        "{} backup of {}: {} events (positions 1 to {}) and {} side entries",
        out.display(),
        manifest.service,
        end.events,
        checkpoint.global_position,
        end.side_entries
    );
    out!(
        "checkpoint: {} at {} events, root {}, verifier key {}",
        checkpoint.origin,
        checkpoint.tree_size,
        hex::encode(&checkpoint.root_hash),
        checkpoint.verifier_key
    );
    out!("sha256 {}", hex::encode(digest.finalize()));
    Ok(())
}
