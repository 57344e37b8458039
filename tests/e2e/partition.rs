//! Partitions (`partition`, a province each) on a three-node NATS cluster:
//! two provinces' intakes, each a pair of `auto` processes, hold a lease
//! each (so both partitions have an active at once, on different
//! processes), publish to their own streams, and hand their reports to
//! their own province's casework only. A report for the other province is
//! refused naming the field and the province. The active of one partition
//! killed, its standby takes over while the other partition's active goes
//! on undisturbed. A partition that is not a province is refused at start.
//! Under the NATS users and permissions made for two partitions
//! (`deploy/nats/partitions.sh`), each partition's three services run and
//! hand a report over. The command line given every process of both
//! partitions sends a report to the one `--province` names, or, without
//! it, to the province the report's commune lies in.

use baove_proto::v1 as p;
use baove_testkit::NatsCluster;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::cluster::{jetstream_of, submit};
use crate::intake::{case_of, hotline, intake_client};
use crate::standby::becomes;
use crate::{Service, auditor, bad_fields};

/// A report from Phường Hoàn Kiếm, Hà Nội (vn:01).
fn hanoi_report(request_id: &str) -> p::SubmitHotlineReportRequest {
    let mut request = hotline(request_id, "Lê Thị Lan");
    let facts = request
        .report
        .as_mut()
        .and_then(|r| r.facts.as_mut())
        .unwrap();
    facts.incident_place = Some(p::Place {
        unit_id: "vn:00070".into(),
        address: "phố Hàng Bạc".into(),
    });
    request
}

/// The env of a process of `partition` on the cluster.
fn partition_env(partition: &str, role: &str) -> Vec<(&'static str, String)> {
    vec![
        ("BAOVE_STREAM_REPLICAS", "3".to_owned()),
        ("BAOVE_ROLE", role.to_owned()),
        ("BAOVE_PARTITION", partition.to_owned()),
    ]
}

/// Whether `service`'s log holds stream `stream_id` (read by an auditor).
async fn holds(service: &Service, stream_id: &str) -> bool {
    let read =
        p::audit_service_client::AuditServiceClient::new(service.channel_as(&auditor()).await)
            .read_stream(p::ReadStreamRequest {
                stream_id: stream_id.to_owned(),
                limit: 1,
                ..Default::default()
            })
            .await;
    match read {
        Ok(events) => !events.into_inner().events.is_empty(),
        Err(status) if status.code() == tonic::Code::NotFound => false,
        Err(status) => panic!("read {stream_id} on {}: {status}", service.name),
    }
}

/// The holder's address of lease `key`, if held.
async fn lease_holder(leases: &async_nats::jetstream::kv::Store, key: &str) -> Option<String> {
    baove_bus::lease::holder(leases, key)
        .await
        .unwrap()
        .and_then(|h| h.split(' ').next().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_provinces_have_an_active_each_their_own_streams_and_cases_and_fail_over_apart() {
    let cluster = NatsCluster::start().unwrap();
    let urls = cluster.urls();
    let start = |name: &'static str, partition: &str, role: &str| {
        Service::start_with(
            name,
            &urls,
            tempfile::tempdir().unwrap(),
            &partition_env(partition, role),
        )
    };
    // Cần Thơ's intake first takes its lease on one process, Hà Nội's on
    // another; the second process of each partition finds its lease held.
    let mut can_tho = start("intake", "vn:92", "auto");
    becomes(&can_tho, true).await;
    let ha_noi = start("intake", "vn:01", "auto");
    becomes(&ha_noi, true).await;
    let can_tho_standby = start("intake", "vn:92", "auto");
    let ha_noi_standby = start("intake", "vn:01", "auto");
    for standby in [&can_tho_standby, &ha_noi_standby] {
        standby.wait_health("", ServingStatus::Serving).await;
        becomes(standby, false).await;
    }
    let casework_can_tho = start("casework", "vn:92", "active");
    let casework_ha_noi = start("casework", "vn:01", "active");
    for s in [&casework_can_tho, &casework_ha_noi] {
        s.wait_health("", ServingStatus::Serving).await;
    }
    // One lease per (service, partition), each held by its own process.
    let js = jetstream_of(&cluster).await;
    let leases = baove_bus::lease::bucket(&js, 3).await.unwrap();
    assert_eq!(
        lease_holder(&leases, "intake.vn-92").await.as_deref(),
        Some(can_tho.addr.as_str())
    );
    assert_eq!(
        lease_holder(&leases, "intake.vn-01").await.as_deref(),
        Some(ha_noi.addr.as_str())
    );
    assert_eq!(lease_holder(&leases, "intake").await, None);

    // Each report goes to its own province's intake, and from there to
    // that province's casework only.
    let in_can_tho = submit(&can_tho, "partition-can-tho-1").await;
    let refused = intake_client(&can_tho)
        .await
        .submit_hotline_report(hanoi_report("partition-ha-noi-1"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    assert_eq!(
        bad_fields(&refused),
        ["report.facts.incident_place.unit_id"]
    );
    assert!(
        refused.message().contains("province vn:01"),
        "{}",
        refused.message()
    );
    // Named apart, for a client that knows Hà Nội's processes to send it
    // there unchanged.
    assert_eq!(
        refused
            .metadata()
            .get("baove-partition")
            .and_then(|v| v.to_str().ok()),
        Some("vn:01")
    );
    let in_ha_noi = intake_client(&ha_noi)
        .await
        .submit_hotline_report(hanoi_report("partition-ha-noi-1"))
        .await
        .unwrap()
        .into_inner()
        .intake_id;
    let can_tho_case = case_of(&can_tho, &in_can_tho).await;
    let ha_noi_case = case_of(&ha_noi, &in_ha_noi).await;
    assert!(holds(&casework_can_tho, &can_tho_case).await);
    assert!(!holds(&casework_ha_noi, &can_tho_case).await);
    assert!(holds(&casework_ha_noi, &ha_noi_case).await);
    assert!(!holds(&casework_can_tho, &ha_noi_case).await);

    // The command line, given every process of both partitions, sends a
    // report where `--province` says. Without it, to the first active it
    // finds (Hà Nội's), which refuses it naming the report's province, and
    // then, unchanged, to that province's active: a national hotline
    // operator need not know the province. With `--province` naming
    // another, the refusal is shown as it is.
    let every = [&ha_noi, &ha_noi_standby, &can_tho, &can_tho_standby]
        .map(|s| s.addr.clone())
        .join(",");
    let cli = |province: &str| {
        std::process::Command::new(crate::bin_dir().join("baove"))
            .args(["intake", "submit", "--file"])
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../deploy/examples/hotline-report.json"
            ))
            .env("BAOVE_ADDR", &every)
            .env("BAOVE_PROVINCE", province)
            .env("BAOVE_TOKEN", crate::hotline_operator("op-17").token())
            .output()
            .unwrap()
    };
    let refused = cli("vn:01");
    assert!(!refused.status.success());
    assert!(
        crate::output_text(&refused).contains("lies in province vn:92"),
        "{}",
        crate::output_text(&refused)
    );
    let receipt = |sent: &std::process::Output| {
        assert!(sent.status.success(), "{}", crate::output_text(sent));
        String::from_utf8_lossy(&sent.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("recorded intake "))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no receipt in {}", crate::output_text(sent)))
            .to_owned()
    };
    let routed = cli("");
    assert!(
        crate::output_text(&routed).contains(&format!(
            "province vn:92's partition: sent, unchanged, to its process at {}",
            can_tho.addr
        )),
        "{}",
        crate::output_text(&routed)
    );
    let by_routing = receipt(&routed);
    let routed_case = case_of(&can_tho, &by_routing).await;
    assert!(holds(&casework_can_tho, &routed_case).await);
    assert!(!holds(&casework_ha_noi, &routed_case).await);
    // The same file (its request id, the file's hash) sent where
    // `--province` says: the report recorded once, its first receipt.
    assert_eq!(receipt(&cli("vn:92")), by_routing);

    // Every stream is the partition's own; none of the unpartitioned names
    // was made.
    for (name, partition) in [
        ("BAOVE_INTAKE", "VN_92"),
        ("BAOVE_INTAKE", "VN_01"),
        ("BAOVE_INTAKE_LOG", "VN_92"),
        ("BAOVE_INTAKE_LOG", "VN_01"),
        ("BAOVE_CASE", "VN_92"),
        ("BAOVE_CASE_LOG", "VN_01"),
    ] {
        let mut stream = js.get_stream(format!("{name}_{partition}")).await.unwrap();
        let info = stream.info().await.unwrap();
        assert!(info.state.messages > 0, "{name}_{partition} is empty");
        assert!(
            js.get_stream(name).await.is_err(),
            "{name} was made without a partition"
        );
    }

    // Cần Thơ's active dies: its standby takes the lease and the reports,
    // and Hà Nội's active, holding its own lease, is not disturbed.
    can_tho.kill();
    becomes(&can_tho_standby, true).await;
    assert_eq!(
        lease_holder(&leases, "intake.vn-92").await.as_deref(),
        Some(can_tho_standby.addr.as_str())
    );
    assert_eq!(
        ha_noi.health("baove.active").await,
        Some(ServingStatus::Serving)
    );
    assert_eq!(
        lease_holder(&leases, "intake.vn-01").await.as_deref(),
        Some(ha_noi.addr.as_str())
    );
    let after = submit(&can_tho_standby, "partition-can-tho-2").await;
    let after_case = case_of(&can_tho_standby, &after).await;
    assert!(holds(&casework_can_tho, &after_case).await);
    // The first report survived the failover, on the new active.
    assert_eq!(case_of(&can_tho_standby, &in_can_tho).await, can_tho_case);
}

#[test]
fn a_partition_that_is_not_a_province_is_refused_at_start_naming_the_setting() {
    let refused = Service::try_start_in_with(
        "casework",
        "nats://127.0.0.1:1",
        tempfile::tempdir().unwrap(),
        &[("BAOVE_PARTITION", "vn:31135".to_owned())],
    )
    .err()
    .expect("casework started with a commune as its partition")
    .0;
    assert!(
        refused.contains("partition (BAOVE_PARTITION)") && refused.contains("province vn:92"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_nats_users_made_for_two_partitions_each_province_hands_its_reports_over() {
    let made = std::process::Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/nats/partitions.sh"
    ))
    .args(["vn:92", "vn:01"])
    .stdin(std::fs::File::open(crate::security::AUTHORIZATION).unwrap())
    .output()
    .unwrap();
    assert!(made.status.success(), "{}", crate::output_text(&made));
    let secrets = tempfile::tempdir().unwrap();
    let (config, users) =
        crate::security::with_passwords(String::from_utf8(made.stdout).unwrap(), secrets.path());
    let nats = baove_testkit::NatsServer::start_with_config(&config).unwrap();
    let start = |name: &'static str, partition: &str| {
        let (_, file) = &users[name];
        Service::start_with(
            name,
            &nats.url(),
            tempfile::tempdir().unwrap(),
            &[
                ("BAOVE_PARTITION", partition.to_owned()),
                ("BAOVE_NATS_USER", name.to_owned()),
                ("BAOVE_NATS_PASSWORD_FILE", file.display().to_string()),
            ],
        )
    };
    let mut services = Vec::new();
    for partition in ["vn:92", "vn:01"] {
        for name in ["intake", "casework", "referral"] {
            services.push(start(name, partition));
        }
    }
    // Every part on the bus (streams, relays, consumers) makes progress:
    // nothing a partition does was refused.
    for service in &services {
        service
            .wait_health("baove.bus", ServingStatus::Serving)
            .await;
    }
    let (can_tho, ha_noi) = (&services[0], &services[3]);
    let in_can_tho = submit(can_tho, "users-can-tho-1").await;
    let in_ha_noi = intake_client(ha_noi)
        .await
        .submit_hotline_report(hanoi_report("users-ha-noi-1"))
        .await
        .unwrap()
        .into_inner()
        .intake_id;
    assert!(holds(&services[1], &case_of(can_tho, &in_can_tho).await).await);
    assert!(holds(&services[4], &case_of(ha_noi, &in_ha_noi).await).await);
}
