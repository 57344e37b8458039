//! `baove witness`: an independent witness of a service's transparency log
//! (the province's inspectorate, the Department of Justice runs it).
//!
//! `keygen` makes the witness's signed-note key pair. `run` asks the
//! service at `--addr` for its newest checkpoint, checks the service's
//! signature with the log's verifier key it was given (never the one the
//! service sends), and compares it with the newest checkpoint it accepted
//! before (kept in `--state`): a smaller tree, another root for the same
//! size, or a larger tree without a valid consistency proof
//! (`AuditService.ProveConsistency`) is refused with an `ALERT` line on
//! stderr and exit status 2, and nothing is signed. A consistent one is
//! cosigned (the witness's signed-note signature added to the note), kept
//! as the new state, and handed back to the service
//! (`AuditService.AddCosignature`). With `--every` it keeps doing so.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use baove_audit::checkpoint::{Checkpoint, Witness, checkpoint_from_proto, checkpoint_to_proto};
use baove_proto::v1 as p;
use baove_proto::v1::audit_service_client::AuditServiceClient;
use clap::Subcommand;

/// `baove witness ...`.
#[derive(Subcommand)]
pub enum Command {
    /// Make the witness's key pair: the signer key (secret) in `--out`, the
    /// verifier key (give it to auditors) in `--out`.pub and printed.
    Keygen {
        /// The witness's name in its signatures (no spaces or '+'), e.g.
        /// `thanh-tra.hanoi.gov.vn`.
        #[arg(long)]
        name: String,
        /// The signer key file to write (mode 0600).
        #[arg(long)]
        out: PathBuf,
    },
    /// Witness the log of the service at `--addr` once (or every `--every`
    /// seconds). Exit 2 after an alert.
    Run {
        /// The witness's signer key file (`baove witness keygen`).
        #[arg(long)]
        key: PathBuf,
        /// The log's signed-note verifier key (`<origin>+<id>+<base64>`,
        /// from the service's `<log dir>.vkey`), or a file holding it.
        #[arg(long)]
        log_key: String,
        /// The directory where the newest accepted checkpoint of each log
        /// is kept.
        #[arg(long)]
        state: PathBuf,
        /// Keep witnessing every this many seconds.
        #[arg(long)]
        every: Option<u64>,
    },
}

/// Runs a `witness` command.
pub async fn run(addr: &str, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Keygen { name, out } => {
            let key = baove_security::token::new_signing_key();
            let signer = baove_audit::checkpoint::signer_key(&name, &key);
            let verifier = baove_audit::checkpoint::verifier_key(&name, &key.verifying_key());
            Witness::new(&verifier, &signer).map_err(|e| anyhow::anyhow!("--name: {e}"))?;
            baove_security::token::write_new_secret(&out, format!("{signer}\n").as_bytes())?;
            let public = out.with_extension("pub");
            std::fs::write(&public, format!("{verifier}\n"))
                .with_context(|| format!("cannot write {}", public.display()))?;
            out!("{verifier}");
            out!(
                "signer key in {} (keep it secret); verifier key above and in {} (give it to auditors: baove audit verify --witness-key)",
                out.display(),
                public.display()
            );
            Ok(())
        }
        Command::Run {
            key,
            log_key,
            state,
            every,
        } => {
            let signer = std::fs::read_to_string(&key)
                .with_context(|| format!("cannot read the witness key {}", key.display()))?;
            let log_key = key_text(&log_key)?;
            let witness = Witness::new(&log_key, &signer).map_err(|e| anyhow::anyhow!(e))?;
            std::fs::create_dir_all(&state)
                .with_context(|| format!("cannot create {}", state.display()))?;
            let Some(every) = every else {
                return match once(addr, &witness, &state).await {
                    Err(e) if e.is::<Alert>() => {
                        err_out!("{e}");
                        std::process::exit(2);
                    }
                    other => other,
                };
            };
            let mut alerted = false;
            loop {
                if let Err(e) = once(addr, &witness, &state).await {
                    err_out!("{e:#}");
                    alerted |= e.is::<Alert>();
                }
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(every.max(1))) => {}
                    _ = tokio::signal::ctrl_c() => {
                        if alerted {
                            std::process::exit(2);
                        }
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// A refusal: the log shrank or was rewritten, or is not the log's.
#[derive(Debug)]
struct Alert(String);

impl std::fmt::Display for Alert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Alert {}

/// A verifier key given inline or as a file.
pub(crate) fn key_text(given: &str) -> anyhow::Result<String> {
    let path = Path::new(given);
    if !given.contains('+') && path.exists() {
        return Ok(std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .trim()
            .to_owned());
    }
    Ok(given.trim().to_owned())
}

/// One round: fetch, check, cosign, keep, hand back.
async fn once(addr: &str, witness: &Witness, state: &Path) -> anyhow::Result<()> {
    let file = state.join(format!("{}.json", witness.origin().replace('/', "_")));
    let accepted: Option<Checkpoint> = match std::fs::read(&file) {
        Ok(text) => Some(
            serde_json::from_slice(&text)
                .with_context(|| format!("the witness state {} is damaged", file.display()))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => bail!("cannot read the witness state {}: {e}", file.display()),
    };
    let mut client = AuditServiceClient::new(crate::channel(addr).await?);
    let newest = client
        .get_checkpoint(p::GetCheckpointRequest { fresh: false })
        .await;
    let newest = match newest {
        Err(s) if s.code() == tonic::Code::NotFound => client
            .get_checkpoint(p::GetCheckpointRequest { fresh: true })
            .await
            .map_err(|s| crate::refusal(&s))?,
        other => other.map_err(|s| crate::refusal(&s))?,
    };
    let checkpoint = checkpoint_from_proto(
        &newest
            .into_inner()
            .checkpoint
            .context("the service sent no checkpoint")?,
    );
    let alert = |reason: String| {
        anyhow::Error::new(Alert(format!(
            "ALERT: witness refuses the checkpoint of {} at {addr}: {reason}",
            witness.origin()
        )))
    };
    let needs = witness
        .needs(accepted.as_ref(), &checkpoint)
        .map_err(|r| alert(r.to_string()))?;
    let proof = match needs {
        None => Vec::new(),
        Some((old_size, new_size)) => client
            .prove_consistency(p::ProveConsistencyRequest { old_size, new_size })
            .await
            .map_err(|s| {
                alert(format!(
                    "no consistency proof from {old_size} to {new_size}: {}",
                    s.message()
                ))
            })?
            .into_inner()
            .hashes
            .into_iter()
            .map(|h| <[u8; 32]>::try_from(h.as_slice()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| alert("a consistency proof hash is not 32 bytes".into()))?,
    };
    let cosigned = witness
        .accept(accepted.as_ref(), &checkpoint, &proof)
        .map_err(|r| alert(r.to_string()))?;
    let aside = file.with_extension("json.tmp");
    std::fs::write(&aside, serde_json::to_vec_pretty(&cosigned)?)
        .with_context(|| format!("cannot write {}", aside.display()))?;
    std::fs::File::open(&aside)?.sync_all()?;
    std::fs::rename(&aside, &file)?;
    let kept = client
        .add_cosignature(p::AddCosignatureRequest {
            checkpoint: Some(checkpoint_to_proto(&cosigned)),
        })
        .await
        .map_err(|s| crate::refusal(&s))?
        .into_inner()
        .tree_size;
    out!(
        "cosigned {} at {} events (root {}); the service keeps a witnessed checkpoint of {} events",
        witness.origin(),
        cosigned.tree_size,
        cosigned.root_hash,
        kept
    );
    Ok(())
}
