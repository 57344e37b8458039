//! The transparency log as an outside auditor uses it: `baove witness`
//! (run as a separate process, with its own key and state) cosigns
//! casework's checkpoints while its log grows, the service keeps the
//! witnessed checkpoint, a bundle verifies offline with only the service's
//! and the witness's keys; an older copy of the log put back is refused by
//! the witness (the log shrank) and, when only the witnessed checkpoint is
//! left to say how far the log went, by the service at start.

use std::path::Path;

use baove_proto::v1::{self as p, audit_service_client::AuditServiceClient};
use baove_testkit::NatsServer;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::backup::auditor_cli;
use crate::casework::opened_case;
use crate::intake::System;
use crate::{Service, auditor, copy_dir, output_text as text};

/// `baove witness run` once against `service`.
fn witness_run(
    service: &Service,
    key: &Path,
    log_key: &Path,
    state: &Path,
) -> std::process::Output {
    auditor_cli(
        service,
        &[
            "witness".as_ref(),
            "run".as_ref(),
            "--key".as_ref(),
            key.as_os_str(),
            "--log-key".as_ref(),
            log_key.as_os_str(),
            "--state".as_ref(),
            state.as_os_str(),
        ],
    )
}

/// `baove witness keygen --name thanh-tra.test --out KEY` (the verifier
/// key beside it, `.pub`).
fn witness_keygen(service: &Service, key: &Path) {
    let keygen = auditor_cli(
        service,
        &[
            "witness".as_ref(),
            "keygen".as_ref(),
            "--name".as_ref(),
            "thanh-tra.test".as_ref(),
            "--out".as_ref(),
            key.as_os_str(),
        ],
    );
    assert!(keygen.status.success(), "{}", text(&keygen));
}

async fn fresh_checkpoint(service: &Service) -> p::Checkpoint {
    AuditServiceClient::new(service.channel_as(&auditor()).await)
        .get_checkpoint(p::GetCheckpointRequest { fresh: true })
        .await
        .unwrap()
        .into_inner()
        .checkpoint
        .unwrap()
}

/// Stops `service` cleanly and takes its data directory.
async fn stop(service: &mut Service) -> tempfile::TempDir {
    service.terminate();
    assert!(service.exit_status().await.success());
    std::mem::replace(&mut service.data, tempfile::tempdir().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_cosigns_a_growing_log_and_a_log_put_back_shorter_is_refused() {
    let mut system = System::start().await;
    let nats_url = system.nats.url();
    opened_case(&system, "witness-1").await;
    let keys = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let witness_key = keys.path().join("witness.key");
    witness_keygen(&system.casework, &witness_key);
    let witness_pub = keys.path().join("witness.pub");
    // The log's verifier key, as the operator publishes it.
    let log_key = keys.path().join("casework.vkey");
    std::fs::copy(system.casework.data.path().join("eventlog.vkey"), &log_key).unwrap();
    assert!(
        std::fs::read_to_string(&log_key)
            .unwrap()
            .starts_with("baove.local/casework+")
    );

    // First sight: cosigned.
    let first = fresh_checkpoint(&system.casework).await;
    let run = witness_run(&system.casework, &witness_key, &log_key, state.path());
    assert!(run.status.success(), "{}", text(&run));
    assert!(
        text(&run).contains(&format!("at {} events", first.tree_size)),
        "{}",
        text(&run)
    );

    // An older copy of the whole data directory, taken at a clean stop.
    let data = stop(&mut system.casework).await;
    let older = tempfile::tempdir().unwrap();
    copy_dir(data.path(), older.path());
    system.casework = Service::start_in("casework", &nats_url, data);
    system
        .casework
        .wait_health("", ServingStatus::Serving)
        .await;

    // The log grows; the witness checks the consistency proof and cosigns.
    let second = opened_case(&system, "witness-2").await;
    let grown = fresh_checkpoint(&system.casework).await;
    assert!(grown.tree_size > first.tree_size);
    let run = witness_run(&system.casework, &witness_key, &log_key, state.path());
    assert!(run.status.success(), "{}", text(&run));
    assert!(
        text(&run).contains(&format!(
            "keeps a witnessed checkpoint of {} events",
            grown.tree_size
        )),
        "{}",
        text(&run)
    );

    // The service keeps it; an auditor checks it offline with the witness key.
    let witnessed = AuditServiceClient::new(system.casework.channel_as(&auditor()).await)
        .get_checkpoint(p::GetCheckpointRequest { fresh: false })
        .await
        .unwrap()
        .into_inner()
        .witnessed
        .expect("the service keeps the witnessed checkpoint");
    assert_eq!(witnessed.tree_size, grown.tree_size);
    let file = keys.path().join("witnessed.json");
    std::fs::write(
        &file,
        serde_json::to_vec(&baove_audit::checkpoint::checkpoint_from_proto(&witnessed)).unwrap(),
    )
    .unwrap();
    let service_key = system.casework.data.path().join("checkpoint-key.pub.pem");
    let verify = |what: &Path, witness: &Path| {
        auditor_cli(
            &system.casework,
            &[
                "audit".as_ref(),
                "verify".as_ref(),
                what.as_os_str(),
                "--key".as_ref(),
                service_key.as_os_str(),
                "--witness-key".as_ref(),
                witness.as_os_str(),
            ],
        )
    };
    let checked = verify(&file, &witness_pub);
    assert!(checked.status.success(), "{}", text(&checked));
    assert!(
        text(&checked).contains("cosigned by thanh-tra.test"),
        "{}",
        text(&checked)
    );
    // Another witness's key does not pass.
    let stranger = keys.path().join("stranger.pub");
    std::fs::write(
        &stranger,
        baove_audit::checkpoint::verifier_key(
            "stranger",
            &baove_security::token::new_signing_key().verifying_key(),
        ),
    )
    .unwrap();
    let refused = verify(&file, &stranger);
    assert!(!refused.status.success(), "{}", text(&refused));

    // A case's export carries the witnessed checkpoint and verifies with
    // only the two keys; an edit fails.
    let bundle = keys.path().join("case.json");
    let export = auditor_cli(
        &system.casework,
        &[
            "audit".as_ref(),
            "export".as_ref(),
            second.case_id.as_ref(),
            "--out".as_ref(),
            bundle.as_os_str(),
        ],
    );
    assert!(export.status.success(), "{}", text(&export));
    let checked = verify(&bundle, &witness_pub);
    assert!(checked.status.success(), "{}", text(&checked));
    assert!(
        text(&checked).contains("cosigned by thanh-tra.test"),
        "{}",
        text(&checked)
    );
    let edited = std::fs::read_to_string(&bundle)
        .unwrap()
        .replacen("\"seq\": 1", "\"seq\": 2", 1);
    std::fs::write(&bundle, edited).unwrap();
    assert!(!verify(&bundle, &witness_pub).status.success());

    // Its sled files lose the last events (the older log put back) and the
    // kept checkpoint is gone too: the witnessed checkpoint alone refuses
    // the start. (On a bus without the log stream, which would repair it.)
    let data = stop(&mut system.casework).await;
    std::fs::remove_dir_all(data.path().join("eventlog")).unwrap();
    copy_dir(
        &older.path().join("eventlog"),
        &data.path().join("eventlog"),
    );
    std::fs::remove_file(data.path().join("eventlog.checkpoint.json")).unwrap();
    let bare = NatsServer::start().unwrap();
    let (stderr, _) = Service::try_start_in("casework", &bare.url(), data)
        .err()
        .expect("a log shorter than its witnessed checkpoint must not be served");
    assert!(
        stderr.contains("a witness cosigned") && stderr.contains("missing"),
        "{stderr}"
    );

    // The whole older directory put back serves (nothing it holds says
    // more), but the witness, which remembers, refuses and alerts.
    let put_back = Service::start_in("casework", &bare.url(), older);
    put_back.wait_health("", ServingStatus::Serving).await;
    let shorter = fresh_checkpoint(&put_back).await;
    assert!(shorter.tree_size < grown.tree_size);
    let run = witness_run(&put_back, &witness_key, &log_key, state.path());
    assert_eq!(run.status.code(), Some(2), "{}", text(&run));
    assert!(
        text(&run).contains("ALERT") && text(&run).contains("shrank"),
        "{}",
        text(&run)
    );
    // Its state still holds the larger checkpoint.
    let kept: baove_audit::checkpoint::Checkpoint = serde_json::from_slice(
        &std::fs::read(state.path().join("baove.local_casework.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(kept.tree_size, grown.tree_size);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_checkpoint_key_per_service_a_witness_follows_the_log_across_a_failover() {
    let cluster = baove_testkit::NatsCluster::start().unwrap();
    let urls = cluster.urls();
    let keys = tempfile::tempdir().unwrap();
    let shared = keys.path().join("checkpoint-casework.pem");
    baove_security::token::generate_key_pair(
        &shared,
        &keys.path().join("checkpoint-casework.pub.pem"),
    )
    .unwrap();
    let env = [
        ("BAOVE_STREAM_REPLICAS", "3".to_owned()),
        ("BAOVE_ROLE", "auto".to_owned()),
        ("BAOVE_CHECKPOINT_KEY_FILE", shared.display().to_string()),
    ];
    let start = |name: &'static str, env: &[(&str, String)]| {
        Service::start_with(name, &urls, tempfile::tempdir().unwrap(), env)
    };
    let intake = start("intake", &env[..1]);
    let mut first = start("casework", &env);
    crate::standby::becomes(&first, true).await;
    let second = start("casework", &env);
    second.wait_health("", ServingStatus::Serving).await;
    crate::standby::becomes(&second, false).await;
    intake.wait_health("", ServingStatus::Serving).await;
    let report = crate::cluster::submit(&intake, "witness-failover-1").await;
    crate::intake::case_of(&intake, &report).await;

    let witness_key = keys.path().join("witness.key");
    witness_keygen(&first, &witness_key);
    let log_key = first.data.path().join("eventlog.vkey");
    // Both processes name the same verifier key.
    assert_eq!(
        std::fs::read_to_string(&log_key).unwrap(),
        std::fs::read_to_string(second.data.path().join("eventlog.vkey")).unwrap()
    );
    let state = tempfile::tempdir().unwrap();
    let before = fresh_checkpoint(&first).await;
    let run = witness_run(&first, &witness_key, &log_key, state.path());
    assert!(run.status.success(), "{}", text(&run));

    // The active dies; the standby takes over and signs with the same key
    // a tree that extends the one the witness cosigned.
    crate::standby::follows(&first, &second).await;
    first.kill();
    crate::standby::becomes(&second, true).await;
    let report = crate::cluster::submit(&intake, "witness-failover-2").await;
    crate::intake::case_of(&intake, &report).await;
    let after = fresh_checkpoint(&second).await;
    assert!(after.tree_size > before.tree_size);
    let run = witness_run(&second, &witness_key, &log_key, state.path());
    assert!(run.status.success(), "{}", text(&run));
    assert!(
        text(&run).contains(&format!("at {} events", after.tree_size)),
        "{}",
        text(&run)
    );
}
