//! `baove token ...` (keys and tokens) and `baove audit ...` (access log,
//! checkpoints, export bundles and their offline verification).

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use baove_proto::v1::{self as p, audit_service_client::AuditServiceClient};
use baove_security::Role;
use clap::Subcommand;

use crate::channel;

/// `baove token ...`.
#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create an Ed25519 key pair for minting tokens (private key mode 0600;
    /// never overwritten). Services trust the public key
    /// (`auth_public_keys`).
    Keygen {
        /// The private key file to create (PKCS#8 PEM).
        #[arg(long)]
        private: PathBuf,
        /// The public key file to write (SPKI PEM).
        #[arg(long)]
        public: PathBuf,
    },
    /// Mint a token with a private key; prints it (use as BAOVE_TOKEN).
    Issue {
        /// The private key (PKCS#8 PEM).
        #[arg(long, env = "BAOVE_ISSUER_KEY")]
        key: PathBuf,
        /// The user id.
        #[arg(long)]
        user: String,
        /// hotline_operator, commune_officer, province_officer, police,
        /// agency_staff, auditor or administrator.
        #[arg(long)]
        role: String,
        /// The agency id (directory).
        #[arg(long, default_value = "")]
        agency: String,
        /// An administrative unit in scope (commune officers); repeat.
        #[arg(long = "unit")]
        units: Vec<String>,
        /// Hours until it expires.
        #[arg(long, default_value_t = 12)]
        hours: u64,
    },
}

/// `baove audit ...`.
#[derive(Subcommand)]
pub enum AuditCommand {
    /// The access log of the service at --addr: who read what, refusals.
    Access {
        /// Only entries about this case.
        #[arg(long, default_value = "")]
        case: String,
        /// Only entries of this user.
        #[arg(long, default_value = "")]
        user: String,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// The newest signed checkpoint of the service's log.
    Checkpoint {
        /// Sign a new one now.
        #[arg(long)]
        fresh: bool,
        /// Also keep it in this file (JSON), for `baove audit check-log`.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check that the service's log still is what a kept checkpoint signed:
    /// reads the whole log (ReadAll), checks every event's hash and chain,
    /// recomputes the Merkle tree's root over the checkpoint's first events
    /// and compares.
    /// Exit 1 if the log was rewritten.
    CheckLog {
        /// The checkpoint file (from `baove audit checkpoint --out`).
        checkpoint: PathBuf,
        /// The service's trusted checkpoint public key (SPKI PEM).
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Export a case as a self-contained bundle (events, a signed
    /// checkpoint, the inclusion proof).
    Export {
        /// The case (stream) id.
        case: String,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify offline, with no server, an exported bundle or a checkpoint
    /// file (`audit checkpoint --out`); exit 1 on any edit or a missing
    /// witness cosignature.
    Verify {
        /// The bundle or checkpoint file.
        bundle: PathBuf,
        /// The service's trusted checkpoint public key (SPKI PEM, e.g.
        /// `<data_dir>/checkpoint-key.pub.pem`); without it the file's
        /// own key is used and its fingerprint printed to compare.
        #[arg(long)]
        key: Option<PathBuf>,
        /// A witness's verifier key (`<name>+<id>+<base64>`, or a file
        /// holding it, from `baove witness keygen`); the checkpoint must be
        /// cosigned by every one given.
        #[arg(long = "witness-key")]
        witness_keys: Vec<String>,
    },
}

/// Runs a `token` command.
pub fn token(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Keygen { private, public } => {
            baove_security::token::generate_key_pair(&private, &public)?;
            out!(
                "private key {} (keep it secret), public key {} (give it to the services as auth_public_keys)",
                private.display(),
                public.display()
            );
            Ok(())
        }
        TokenCommand::Issue {
            key,
            user,
            role,
            agency,
            units,
            hours,
        } => {
            let Some(role) = Role::parse(&role) else {
                bail!(
                    "--role {role:?} is not a role: one of {}",
                    Role::ALL.map(Role::as_str).join(", ")
                );
            };
            if user.trim().is_empty() {
                bail!("--user is required");
            }
            let token = baove_security::Issuer::from_file(&key)?
                .issue(
                    user.trim(),
                    role,
                    agency.trim(),
                    &units,
                    hours.saturating_mul(3600),
                )
                .context("cannot sign the token")?;
            out!("{token}");
            Ok(())
        }
    }
}

/// Runs an `audit` command against `addr` (or offline for `verify`).
pub async fn audit(addr: &str, command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify {
            bundle,
            key,
            witness_keys,
        } => verify(&bundle, key.as_deref(), &witness_keys),
        AuditCommand::Access { case, user, limit } => {
            let mut client = AuditServiceClient::new(channel(addr).await?);
            let entries = client
                .list_access(p::ListAccessRequest {
                    case_id: case,
                    user_id: user,
                    limit,
                    before_seq: 0,
                })
                .await
                .map_err(|s| crate::refusal(&s))?
                .into_inner()
                .entries;
            for e in entries {
                let actor = e.actor.unwrap_or_default();
                out!(
                    "{}ms {:<8} {} ({} {}) {} {} purpose={:?}{}",
                    e.recorded_at_unix_ms,
                    e.outcome,
                    actor.user_id,
                    actor.role,
                    actor.agency_id,
                    e.rpc,
                    e.subject,
                    e.purpose,
                    if e.reason.is_empty() {
                        String::new()
                    } else {
                        format!(" reason={:?}", e.reason)
                    }
                );
            }
            Ok(())
        }
        AuditCommand::CheckLog { checkpoint, key } => {
            let text = std::fs::read(&checkpoint)
                .with_context(|| format!("cannot read {}", checkpoint.display()))?;
            let checkpoint: baove_audit::checkpoint::Checkpoint = serde_json::from_slice(&text)
                .with_context(|| format!("{} is not a checkpoint", checkpoint.display()))?;
            let trusted = key
                .as_deref()
                .map(baove_security::token::read_verifying_key)
                .transpose()?;
            let mut client = AuditServiceClient::new(channel(addr).await?);
            let mut events = Vec::new();
            let mut from = 1;
            while from <= checkpoint.global_position {
                let page = client
                    .read_all(p::ReadAllRequest {
                        from_position: from,
                        limit: 1000,
                    })
                    .await
                    .map_err(|s| crate::refusal(&s))?
                    .into_inner();
                if page.events.is_empty() {
                    break;
                }
                for e in &page.events {
                    events.push(
                        baove_audit::checkpoint::envelope_from_proto(e)
                            .map_err(|e| anyhow::anyhow!(e))?,
                    );
                }
                from = page.next_position;
            }
            match checkpoint.check_log(events, trusted.as_ref()) {
                Ok(()) => {
                    out!(
                        "OK: the log up to position {} is what {} signed",
                        checkpoint.global_position,
                        checkpoint.service
                    );
                    Ok(())
                }
                Err(reason) => bail!("{reason}"),
            }
        }
        AuditCommand::Checkpoint { fresh, out } => {
            let mut client = AuditServiceClient::new(channel(addr).await?);
            let c = client
                .get_checkpoint(p::GetCheckpointRequest { fresh })
                .await
                .map_err(|s| crate::refusal(&s))?
                .into_inner()
                .checkpoint
                .unwrap_or_default();
            if let Some(out) = out {
                let kept = baove_audit::checkpoint::checkpoint_from_proto(&c);
                std::fs::write(&out, serde_json::to_vec_pretty(&kept)?)
                    .with_context(|| format!("cannot write {}", out.display()))?;
            }
            out!(
                "{} origin {} tree size {} root {} signed {}ms key {}",
                c.service,
                c.origin,
                c.tree_size,
                hex::encode(&c.root_hash),
                c.signed_at_unix_ms,
                c.verifier_key
            );
            for line in c.note.lines() {
                out!("  {line}");
            }
            Ok(())
        }
        AuditCommand::Export { case, out } => {
            let mut client = AuditServiceClient::new(channel(addr).await?);
            let bundle = client
                .export_case(p::ExportCaseRequest { case_id: case })
                .await
                .map_err(|s| crate::refusal(&s))?
                .into_inner()
                .bundle_json;
            std::fs::write(&out, bundle)
                .with_context(|| format!("cannot write {}", out.display()))?;
            out!(
                "wrote {}; check it with `baove audit verify {}`",
                out.display(),
                out.display()
            );
            Ok(())
        }
    }
}

fn verify(
    path: &std::path::Path,
    key: Option<&std::path::Path>,
    witness_keys: &[String],
) -> anyhow::Result<()> {
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let json: serde_json::Value = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a bundle or a checkpoint (JSON)", path.display()))?;
    let witness_keys = witness_keys
        .iter()
        .map(|k| crate::witness::key_text(k))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let trusted = key
        .map(baove_security::token::read_verifying_key)
        .transpose()?;
    if json.get("format").is_none() {
        let checkpoint: baove_audit::checkpoint::Checkpoint = serde_json::from_value(json)
            .with_context(|| format!("{} is not a checkpoint", path.display()))?;
        let checked = checkpoint
            .verify(trusted.as_ref())
            .and_then(|key| Ok((key, checkpoint.witnessed_by(&witness_keys)?)));
        return match checked {
            Ok((key, witnesses)) => {
                out!(
                    "OK: checkpoint of {} at {} events (root {}) signed by {}{}",
                    checkpoint.origin,
                    checkpoint.tree_size,
                    checkpoint.root_hash,
                    hex::encode(key.as_bytes()),
                    cosigned_by(&witnesses)
                );
                Ok(())
            }
            Err(reason) => bail!("the checkpoint does NOT verify: {reason}"),
        };
    }
    let bundle: baove_audit::checkpoint::Bundle = serde_json::from_value(json)
        .with_context(|| format!("{} is not a baove export bundle", path.display()))?;
    match bundle.verify(trusted.as_ref(), &witness_keys) {
        Ok(v) => {
            out!(
                "OK: stream {} ({} events, head {}) is under the checkpoint signed by {} at position {}{}",
                v.stream_id,
                v.events,
                v.head_hash,
                v.service,
                v.global_position,
                cosigned_by(&v.witnesses)
            );
            if trusted.is_none() {
                out!(
                    "note: checked with the bundle's own key {}; pass --key to check it is the service's",
                    v.public_key
                );
            }
            Ok(())
        }
        Err(reason) => bail!("the bundle does NOT verify: {reason}"),
    }
}

fn cosigned_by(witnesses: &[String]) -> String {
    if witnesses.is_empty() {
        String::new()
    } else {
        format!(", cosigned by {}", witnesses.join(", "))
    }
}
