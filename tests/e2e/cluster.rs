//! The services on a three-node NATS JetStream cluster (loopback), their
//! streams with 3 replicas (`stream_replicas = 3`, `nats_url` listing every
//! node): reports keep being acknowledged and handed over while the node
//! leading the intake stream is killed (SIGKILL) and brought back; every
//! acknowledged report ends in exactly one case, and the node that died
//! catches up with the others. Whole nodes (a NATS node and a process of
//! each service, all with `role = "auto"`) killed one after the other
//! under continuous load, each brought back before the next (first the
//! machine of each service's active, then machines and moments chosen by a
//! seeded generator): no acknowledged report lost or opened twice, every
//! process of a service ends with the same log, every chain verifies.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use baove_proto::v1::{
    self as p, case_service_client::CaseServiceClient, intake_service_client::IntakeServiceClient,
};
use baove_testkit::NatsCluster;
use baove_testkit::replicas::{leader_of, replicas_current};
use tonic_health::pb::health_check_response::ServingStatus;

use crate::intake::{case_of, hotline, intake_client};
use crate::{Service, province_officer};

/// JetStream through any node of the cluster.
pub async fn jetstream_of(cluster: &NatsCluster) -> jetstream::Context {
    let urls: Vec<String> = cluster
        .nodes
        .iter()
        .map(baove_testkit::NatsServer::url)
        .collect();
    jetstream::new(async_nats::connect(urls.as_slice()).await.unwrap())
}

/// Submits like a real client: the same request id again until it is
/// acknowledged (60 s).
pub async fn submit(intake: &Service, request_id: &str) -> String {
    submit_counting(intake, request_id).await.0
}

/// As [`submit`]; also how many attempts were refused.
async fn submit_counting(intake: &Service, request_id: &str) -> (String, u32) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut refused = 0;
    loop {
        match intake_client(intake)
            .await
            .submit_hotline_report(hotline(request_id, "Đinh Thị Hoa"))
            .await
        {
            Ok(receipt) => return (receipt.into_inner().intake_id, refused),
            Err(status) => {
                refused += 1;
                assert!(
                    Instant::now() < deadline,
                    "{request_id} never acknowledged: {status}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_three_node_cluster_a_dead_nats_node_loses_no_report_and_catches_up() {
    let mut cluster = NatsCluster::start().unwrap();
    let env = [("BAOVE_STREAM_REPLICAS", "3".to_owned())];
    let urls = cluster.urls();
    let intake = Service::start_with("intake", &urls, tempfile::tempdir().unwrap(), &env);
    let casework = Service::start_with("casework", &urls, tempfile::tempdir().unwrap(), &env);
    let referral = Service::start_with("referral", &urls, tempfile::tempdir().unwrap(), &env);
    for s in [&intake, &casework, &referral] {
        s.wait_health("", ServingStatus::Serving).await;
    }
    let js = jetstream_of(&cluster).await;
    for name in [
        "BAOVE_INTAKE",
        "BAOVE_CASE",
        "BAOVE_REFERRAL",
        "BAOVE_ALERT",
    ] {
        let info = leader_of(&js, name).await;
        assert_eq!(info.config.num_replicas, 3, "{name} is replicated 3 times");
        assert_eq!(
            replicas_current(&js, name).await.len(),
            3,
            "{name} lives on all three nodes"
        );
    }

    let mut intake_ids = Vec::new();
    let mut killed = None;
    let mut killed_at = None;
    for i in 0..45 {
        if i == 15 {
            // The node leading the intake stream dies, as a machine does.
            let leader = leader_of(&js, "BAOVE_INTAKE")
                .await
                .cluster
                .unwrap()
                .leader
                .unwrap();
            cluster.node_named(&leader).unwrap().kill();
            killed = Some(leader);
            killed_at = Some(Instant::now());
        }
        if i == 30 {
            let name = killed.clone().unwrap();
            cluster.node_named(&name).unwrap().restart().unwrap();
        }
        let (intake_id, refused) = submit_counting(&intake, &format!("cluster-{i}")).await;
        if let Some(at) = killed_at.take() {
            // A figure, not an assertion: how long writes waited for the
            // stream's new leader.
            println!(
                "first report acknowledged {:?} after the leader was killed ({refused} attempts refused before)",
                at.elapsed()
            );
        }
        intake_ids.push(intake_id);
    }
    let killed = killed.unwrap();
    let new_leader = leader_of(&js, "BAOVE_INTAKE")
        .await
        .cluster
        .unwrap()
        .leader
        .unwrap();
    println!("intake stream leader killed: {killed}; leader now: {new_leader}");

    // Every acknowledged report was handed over, each to its own case.
    let mut cases = HashSet::new();
    for intake_id in &intake_ids {
        cases.insert(case_of(&intake, intake_id).await);
    }
    assert_eq!(cases.len(), intake_ids.len(), "one case per report");
    let mut officer =
        CaseServiceClient::new(casework.channel_as(&province_officer("so-yt-1")).await);
    let mut listed = HashSet::new();
    let mut page_token = String::new();
    loop {
        let page = officer
            .list_cases(p::ListCasesRequest {
                page: Some(p::PageRequest {
                    page_size: 1000,
                    page_token: page_token.clone(),
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        listed.extend(page.cases.into_iter().map(|c| c.case_id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(listed, cases, "casework opened no other case");

    // The node that died holds the streams again, caught up.
    for name in [
        "BAOVE_INTAKE",
        "BAOVE_CASE",
        "BAOVE_INTAKE_LOG",
        "BAOVE_CASE_LOG",
    ] {
        let holders = replicas_current(&js, name).await;
        assert!(
            holders.contains(&killed),
            "{name} is back on {killed}: {holders:?}"
        );
    }
    // And every service's parts run again (consumers, relays, streams).
    for s in [&intake, &casework, &referral] {
        s.wait_health("baove.bus", ServingStatus::Serving).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_quorum_writes_are_refused_reads_answer_and_a_retry_succeeds_once_it_returns() {
    let mut cluster = NatsCluster::start().unwrap();
    // As deployed (deploy/cluster): the active holds the service's lease.
    let env = [
        ("BAOVE_STREAM_REPLICAS", "3".to_owned()),
        ("BAOVE_ROLE", "auto".to_owned()),
    ];
    let mut intake = Service::start_with(
        "intake",
        &cluster.urls(),
        tempfile::tempdir().unwrap(),
        &env,
    );
    intake.wait_health("", ServingStatus::Serving).await;
    crate::standby::becomes(&intake, true).await;
    let js = jetstream_of(&cluster).await;
    replicas_current(&js, "BAOVE_INTAKE_LOG").await;
    let first = submit(&intake, "quorum-0").await;

    // Two of three nodes die: JetStream has no quorum.
    cluster.nodes[1].kill();
    cluster.nodes[2].kill();
    let refused = intake_client(&intake)
        .await
        .submit_hotline_report(hotline("quorum-1", "Mai Văn Tú"))
        .await
        .expect_err("acknowledged without a quorum");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused}");
    assert!(
        refused.message().contains("not acknowledged"),
        "{}",
        refused.message()
    );
    // Reads still answer.
    let read = IntakeServiceClient::new(intake.channel_as(&province_officer("so-yt-1")).await)
        .get_intake(p::GetIntakeRequest {
            intake_id: first.clone(),
        })
        .await;
    assert!(read.is_ok(), "{read:?}");
    // Unable to renew its lease, the active takes no writes.
    crate::standby::becomes(&intake, false).await;

    // The quorum returns; the same process renews its lease on its term
    // (nobody took it) and takes writes again, without a restart; the
    // client's retry of the same request succeeds, and the report exists
    // once.
    cluster.nodes[1].restart().unwrap();
    cluster.nodes[2].restart().unwrap();
    crate::standby::becomes(&intake, true).await;
    assert!(
        intake.exited().is_none(),
        "the active stopped instead of renewing its lease: {:?}",
        intake.exited()
    );
    let second = submit(&intake, "quorum-1").await;
    assert_ne!(second, first);
    let again = submit(&intake, "quorum-1").await;
    assert_eq!(again, second, "the retry is the same report");
    let listed = IntakeServiceClient::new(intake.channel_as(&province_officer("so-yt-1")).await)
        .list_intakes(p::ListIntakesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.intakes.len(), 2, "{listed:?}");
}

/// How many officers were assigned in the history of case `case_id` that
/// `casework` sends an auditor (`AuditService.StreamHistory`, to its end).
async fn assignments_in_history(casework: &Service, case_id: &str) -> usize {
    use futures_util::StreamExt as _;
    p::audit_service_client::AuditServiceClient::new(casework.channel_as(&crate::auditor()).await)
        .stream_history(p::StreamHistoryRequest {
            case_id: case_id.to_owned(),
            from_seq: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .filter(|item| {
            let assigned =
                item.as_ref().unwrap().event.as_ref().unwrap().event_type == "OfficerAssigned";
            std::future::ready(assigned)
        })
        .count()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_quorum_a_refused_step_is_not_shown_until_the_cluster_stores_it() {
    let mut cluster = NatsCluster::start().unwrap();
    let env = [("BAOVE_STREAM_REPLICAS", "3".to_owned())];
    let urls = cluster.urls();
    let intake = Service::start_with("intake", &urls, tempfile::tempdir().unwrap(), &env);
    let casework = Service::start_with("casework", &urls, tempfile::tempdir().unwrap(), &env);
    for s in [&intake, &casework] {
        s.wait_health("", ServingStatus::Serving).await;
    }
    let case_id = case_of(&intake, &submit(&intake, "shown-0").await).await;
    let mut officer = crate::casework::Officer::of(&casework, &case_id).await;
    let assign = |header: Option<p::CommandHeader>, assignee: &str| p::AssignOfficerRequest {
        header,
        assignee_id: assignee.into(),
    };
    let header = officer.header();
    let assigned = officer
        .client
        .assign_officer(assign(header, "cb-truoc"))
        .await;
    officer.took(assigned).unwrap();
    // What the officer's list shows of the case (the read model).
    let listed = |officer_id: &'static str| {
        let casework = &casework;
        async move {
            CaseServiceClient::new(casework.channel_as(&province_officer("so-yt-1")).await)
                .list_cases(p::ListCasesRequest {
                    officer_id: officer_id.into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .cases
                .len()
        }
    };
    assert_eq!(listed("cb-truoc").await, 1);

    // Two of three nodes die. The step (it seals no text, so it needs
    // nothing of the cluster before it is written) is written on
    // casework's disk, and refused: the cluster cannot store it.
    cluster.nodes[1].kill();
    cluster.nodes[2].kill();
    let header = officer.header();
    let refused = officer
        .client
        .assign_officer(assign(header.clone(), "cb-khi-mat-da-so"))
        .await
        .expect_err("acknowledged without a quorum");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused}");
    let on_disk = crate::stored_events(&casework, &case_id).await;
    assert_eq!(
        on_disk.last().map(|e| e.event_type.as_str()),
        Some("OfficerAssigned")
    );
    // Neither the case page, nor the list, nor the case's history shows it.
    assert_eq!(assignments_in_history(&casework, &case_id).await, 1);
    assert_eq!(
        officer.case().await.officer_id,
        "cb-truoc",
        "a step refused for want of a quorum is shown on the case page"
    );
    assert_eq!(listed("cb-truoc").await, 1);
    assert_eq!(
        listed("cb-khi-mat-da-so").await,
        0,
        "a step refused for want of a quorum is shown in the list"
    );

    // The quorum returns: the step reaches the cluster, the officer's
    // retry (same request id) is answered, and both show it.
    cluster.nodes[1].restart().unwrap();
    cluster.nodes[2].restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match officer
            .client
            .assign_officer(assign(header.clone(), "cb-khi-mat-da-so"))
            .await
        {
            Ok(answer) => {
                officer.took(Ok(answer)).unwrap();
                break;
            }
            Err(status) => {
                assert!(Instant::now() < deadline, "the retry was refused: {status}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    assert_eq!(officer.case().await.officer_id, "cb-khi-mat-da-so");
    assert_eq!(assignments_in_history(&casework, &case_id).await, 2);
    let deadline = Instant::now() + Duration::from_secs(10);
    while listed("cb-khi-mat-da-so").await != 1 {
        assert!(Instant::now() < deadline, "the list never shows the step");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One machine of the three: its NATS node (by index in the cluster) and a
/// process of each service, every one with `role = "auto"`. What each
/// process writes on stderr (errors, unless `TEST_LOG` says more) is kept
/// in `logs`, a file per start, for whoever reads a failure.
struct Node {
    nats: usize,
    processes: Vec<Service>,
    logs: std::path::PathBuf,
    starts: usize,
    /// Processes that stopped by themselves and were started again.
    self_stops: usize,
}

impl Node {
    fn start(nats: usize, urls: &str, logs: &std::path::Path) -> Self {
        let mut node = Self {
            nats,
            processes: Vec::new(),
            logs: logs.to_owned(),
            starts: 0,
            self_stops: 0,
        };
        for name in ["intake", "casework", "referral"] {
            // A port it keeps across restarts (outside the ephemeral range,
            // which parallel tests draw from).
            let listen = format!("127.0.0.1:{}", baove_testkit::lasting_port().unwrap());
            let process = node.launch(name, urls, tempfile::tempdir().unwrap(), Some(listen));
            node.processes.push(process);
        }
        node
    }

    /// Starts `baove-<name>` on `data` with three replicas and `role =
    /// "auto"`, on `listen` when given (its own port again).
    fn launch(
        &mut self,
        name: &'static str,
        urls: &str,
        data: tempfile::TempDir,
        listen: Option<String>,
    ) -> Service {
        let mut env = vec![
            ("BAOVE_STREAM_REPLICAS", "3".to_owned()),
            ("BAOVE_ROLE", "auto".to_owned()),
            // Kept in its file, for a failure to show what it did.
            ("RUST_LOG", "info".to_owned()),
        ];
        if let Some(listen) = listen {
            env.push(("BAOVE_LISTEN", listen));
        }
        self.starts += 1;
        let log = self
            .logs
            .join(format!("node{}-{name}-{}.log", self.nats, self.starts));
        Service::launch(name, urls, data, &env, Some(&log)).unwrap_or_else(|(status, _)| {
            panic!(
                "baove-{name} on node {} exited ({status}) before listening: {}",
                self.nats,
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        })
    }

    /// Starts process `k` again on its data directory and its port, as a
    /// supervisor (systemd `Restart=always`) does.
    fn relaunch(&mut self, k: usize, urls: &str) {
        let old = &mut self.processes[k];
        old.kill();
        let listen = old.addr.trim_start_matches("http://").to_owned();
        let data = std::mem::replace(&mut old.data, tempfile::tempdir().unwrap());
        let name = old.name;
        self.processes[k] = self.launch(name, urls, data, Some(listen));
    }

    /// The services whose lease a process of this machine holds now.
    async fn leases(&self) -> Vec<&'static str> {
        let mut held = Vec::new();
        for process in &self.processes {
            if process.health("baove.active").await == Some(ServingStatus::Serving) {
                held.push(process.name);
            }
        }
        held
    }

    /// The machine dies: its NATS node and its processes, SIGKILL.
    fn kill(&mut self, cluster: &mut NatsCluster) {
        cluster.nodes[self.nats].kill();
        for process in &mut self.processes {
            process.kill();
        }
    }

    /// The machine comes back: its NATS node on its store, each process on
    /// its data directory and its port.
    fn restart(&mut self, cluster: &mut NatsCluster, urls: &str) {
        cluster.nodes[self.nats].restart().unwrap();
        for k in 0..self.processes.len() {
            self.relaunch(k, urls);
        }
    }

    /// Starts again each process that stopped by itself (one that lost its
    /// lease, or found its log parted from the cluster's, stops so that a
    /// supervisor starts it again).
    fn supervise(&mut self, urls: &str) {
        for k in 0..self.processes.len() {
            if self.processes[k].exited().is_some() {
                self.relaunch(k, urls);
                self.self_stops += 1;
            }
        }
    }
}

/// Waits (90 s from `killed`, when machine `down` died) until the hotline
/// clients have had `2 * NODE_CLIENTS` more reports acknowledged than
/// `before`, the supervisor doing its rounds over the machines that are up
/// meanwhile: a survivor that stops by itself (it lost its lease to
/// another candidate, or found its log parted from the cluster's) is
/// started again, as systemd's `Restart=on-failure` does. The time from
/// the death to the first acknowledgement.
async fn until_acknowledged(
    nodes: &mut [Node],
    urls: &str,
    counted: &mut tokio::sync::watch::Receiver<usize>,
    before: usize,
    killed: Instant,
    down: usize,
    what: &str,
) -> Duration {
    let mut first = None;
    loop {
        let now = *counted.borrow_and_update();
        if now > before {
            first.get_or_insert_with(|| killed.elapsed());
        }
        if now >= before + 2 * NODE_CLIENTS {
            return first.unwrap_or_default();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(90),
            "no report acknowledged within 90 s of {what}"
        );
        supervise(nodes, urls, Some(down));
        // Woken by the next acknowledgement (so the figure is when it
        // came), or after 100 ms for the supervisor's next round.
        let _ = tokio::time::timeout(Duration::from_millis(100), counted.changed()).await;
    }
}

/// The supervisor's round over every machine that is up.
fn supervise(nodes: &mut [Node], urls: &str, down: Option<usize>) {
    for (n, node) in nodes.iter_mut().enumerate() {
        if Some(n) != down {
            node.supervise(urls);
        }
    }
}

/// Waits (90 s) until every process serves, the supervisor starting again
/// meanwhile whatever stops by itself.
async fn all_serving(nodes: &mut [Node], urls: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        supervise(nodes, urls, None);
        let mut waiting = Vec::new();
        for process in nodes.iter().flat_map(|n| &n.processes) {
            let health = process.health("").await;
            if health != Some(ServingStatus::Serving) {
                waiting.push(format!("{} at {}: {health:?}", process.name, process.addr));
            }
        }
        if waiting.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not serving after 90 s: {waiting:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The machine whose process of `service` holds its lease, waiting (60 s)
/// for one; meanwhile the supervisor starts again what stops on the
/// machines that are up (all but `down`).
async fn active_of(nodes: &mut [Node], urls: &str, service: &str, down: Option<usize>) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        supervise(nodes, urls, down);
        for (n, node) in nodes.iter().enumerate() {
            for process in node.processes.iter().filter(|p| p.name == service) {
                if process.health("baove.active").await == Some(ServingStatus::Serving) {
                    return n;
                }
            }
        }
        assert!(Instant::now() < deadline, "no {service} took the lease");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The streams (and key-value buckets) whose leader is the NATS node
/// `server`, as far as the cluster answers now.
async fn led_by(js: &jetstream::Context, server: &str) -> Vec<String> {
    let mut led = Vec::new();
    for name in stream_names(js).await {
        if let Ok(mut stream) = js.get_stream(&name).await
            && let Ok(info) = stream.info().await
            && info
                .cluster
                .as_ref()
                .and_then(|c| c.leader.as_deref())
                .is_some_and(|leader| leader == server)
        {
            led.push(name);
        }
    }
    led
}

/// The name of every stream (and key-value bucket) of the cluster, asked
/// again (for 60 s) while the cluster's meta group, which answers, elects
/// a leader (a node just came back, or died).
async fn stream_names(js: &jetstream::Context) -> Vec<String> {
    use futures_util::TryStreamExt as _;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match js.stream_names().try_collect().await {
            Ok(names) => return names,
            Err(e) => assert!(
                Instant::now() < deadline,
                "the cluster never listed its streams: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Hotline clients submitting at once through the whole-node test.
const NODE_CLIENTS: usize = 3;

/// The seed of the whole-node test's random kills and how many there are:
/// `BAOVE_NODE_LOSS_SEED` (default a fixed one, so that every run kills
/// the same way) and `BAOVE_NODE_LOSS_ROUNDS` (default 3; more, by hand,
/// for a failover figure over many kills).
fn random_schedule() -> (u64, usize) {
    let read = |name: &str, default: u64| {
        std::env::var(name).map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v}: must be a whole number"))
        })
    };
    (
        read("BAOVE_NODE_LOSS_SEED", 0x00ba_07e0_0014),
        usize::try_from(read("BAOVE_NODE_LOSS_ROUNDS", 3)).unwrap(),
    )
}

// Not in the main run: beside the other tests on a 2-core machine it
// failed about one run in two (a hand-over or the intake service not back
// within its deadlines; issue #14's note). deploy/local/test.sh runs it
// alone after the rest, so CI runs it; by hand: `cargo test -p baove-e2e
// --test e2e -- --ignored cluster::whole_nodes`; with
// `BAOVE_NODE_LOSS_ROUNDS=20` (and another `BAOVE_NODE_LOSS_SEED`) it
// kills more machines at random and prints the failover figure of each.
#[ignore = "run alone by deploy/local/test.sh after the suite: load-sensitive beside it (issue #14 note)"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_nodes_killed_one_after_another_under_load_lose_no_acknowledged_report_and_end_identical()
 {
    use std::collections::HashMap;

    let mut cluster = NatsCluster::start().unwrap();
    let urls = cluster.urls();
    let logs_dir = std::env::temp_dir().join(format!("baove-node-loss-{}", std::process::id()));
    std::fs::create_dir_all(&logs_dir).unwrap();
    println!("each process's stderr: {}", logs_dir.display());
    let mut nodes: Vec<Node> = (0..3).map(|n| Node::start(n, &urls, &logs_dir)).collect();
    for node in &nodes {
        for process in &node.processes {
            process.wait_health("", ServingStatus::Serving).await;
        }
    }
    for service in ["intake", "casework", "referral"] {
        active_of(&mut nodes, &urls, service, None).await;
    }
    let js = jetstream_of(&cluster).await;

    // Hotline clients, each given the three intake processes' addresses
    // (their ports stay across restarts): a refused or failed call is sent
    // again, with the same request id, to the next one, until
    // acknowledged; new reports until told to stop.
    let mut channels = Vec::new();
    for node in &nodes {
        channels.push(node.processes[0].channel().await);
    }
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let (acknowledged, mut counted) = tokio::sync::watch::channel(0_usize);
    let mut clients = Vec::new();
    for c in 0..NODE_CLIENTS {
        let channels = channels.clone();
        let acknowledged = acknowledged.clone();
        let stopping = stopping.clone();
        clients.push(tokio::spawn(async move {
            let mut receipts = Vec::new();
            let mut refused: HashMap<String, u32> = HashMap::new();
            let mut at = c;
            for i in 0.. {
                if *stopping.borrow() {
                    break;
                }
                let request_id = format!("node-loss-{c}-{i}");
                let intake_id =
                    crate::standby::submit_rotating(&channels, &mut at, &request_id, &mut refused)
                        .await;
                acknowledged.send_modify(|n| *n += 1);
                receipts.push((request_id, intake_id));
            }
            (receipts, refused)
        }));
    }

    // Three rounds: the machine holding intake's lease, then casework's,
    // then referral's, dies while the load goes on; the load must go on
    // (the next reports acknowledged by the survivors) before the machine
    // comes back and rejoins, and the next round starts.
    let mut figures = Vec::new();
    for service in ["intake", "casework", "referral"] {
        let victim = active_of(&mut nodes, &urls, service, None).await;
        let before = *counted.borrow();
        nodes[victim].kill(&mut cluster);
        let killed = Instant::now();
        // To read beside the processes' logs, which are stamped in UTC.
        let killed_at = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let survivor = active_of(&mut nodes, &urls, service, Some(victim)).await;
        let took_lease = killed.elapsed();
        let what = format!("the {service} machine's death");
        until_acknowledged(
            &mut nodes,
            &urls,
            &mut counted,
            before,
            killed,
            victim,
            &what,
        )
        .await;
        figures.push(format!(
            "machine of the active {service} (node {victim}) killed at {killed_at}: node {survivor} took the lease after {took_lease:?}; {} more reports acknowledged {:?} after the kill",
            2 * NODE_CLIENTS,
            killed.elapsed()
        ));
        nodes[victim].restart(&mut cluster, &urls);
        all_serving(&mut nodes, &urls).await;
        // Its NATS node holds every stream and bucket again, current,
        // before another machine may die (two of three must hold each).
        for name in stream_names(&js).await {
            replicas_current(&js, &name).await;
        }
    }

    // Then machines chosen at random, killed at a random moment: the one
    // before is back and its NATS node current again (so that one machine
    // at a time is lost), but its processes may still be starting or
    // catching up, and the victim may be that same machine again.
    let (seed, rounds) = random_schedule();
    println!("random rounds: {rounds}, seed {seed} (BAOVE_NODE_LOSS_SEED, BAOVE_NODE_LOSS_ROUNDS)");
    let mut rng = crate::Lcg(seed);
    for round in 0..rounds {
        let victim = usize::try_from(rng.below(3)).unwrap();
        let wait = Duration::from_millis(rng.below(6_000));
        // The random moment itself (no condition to wait for), the
        // supervisor doing its rounds meanwhile.
        let until = Instant::now() + wait;
        while Instant::now() < until {
            supervise(&mut nodes, &urls, None);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let leases = nodes[victim].leases().await;
        let led = led_by(&js, cluster.nodes[nodes[victim].nats].name()).await;
        nodes[victim].kill(&mut cluster);
        let killed = Instant::now();
        let before = *counted.borrow();
        let what = format!("node {victim}'s death (random round {round})");
        let first = until_acknowledged(
            &mut nodes,
            &urls,
            &mut counted,
            before,
            killed,
            victim,
            &what,
        )
        .await;
        figures.push(format!(
            "random round {round}: node {victim}, holding the lease of {leases:?} and leading {led:?}, killed {wait:?} after the machine before was back: the next report acknowledged {:?} after the kill, {} more {:?} after it",
            first,
            2 * NODE_CLIENTS,
            killed.elapsed()
        ));
        nodes[victim].restart(&mut cluster, &urls);
        for name in stream_names(&js).await {
            replicas_current(&js, &name).await;
        }
    }
    stop.send(true).unwrap();
    let mut receipts = Vec::new();
    let mut refused: HashMap<String, u32> = HashMap::new();
    for client in clients {
        let (theirs, refusals) = client.await.expect("a hotline client failed");
        receipts.extend(theirs);
        for (code, n) in refusals {
            *refused.entry(code).or_default() += n;
        }
    }
    for line in &figures {
        println!("{line}");
    }
    println!(
        "whole-node loss: {} reports acknowledged; calls refused or failed meanwhile, by code and message: {refused:?}",
        receipts.len()
    );

    // Every report acknowledged once, each its own.
    let intake_ids: HashSet<&String> = receipts.iter().map(|(_, id)| id).collect();
    assert_eq!(
        intake_ids.len(),
        receipts.len(),
        "a report id was given twice"
    );
    // The system settles: a supervisor starts again whatever stops by
    // itself (a process that finds its log parted from the cluster's stops
    // to set its unacknowledged events aside), until every process of each
    // service holds the same log (none lost an event, none holds one the
    // others lack), casework has a case for every acknowledged report, and
    // intake has heard of each (its own IntakeHandedOver), within 240 s.
    let deadline = Instant::now() + Duration::from_secs(240);
    let logs = loop {
        supervise(&mut nodes, &urls, None);
        let (why, stuck) = match settled(&nodes, &intake_ids).await {
            Ok(logs) => break logs,
            Err(why) => why,
        };
        if Instant::now() >= deadline {
            let files: Vec<_> = std::fs::read_dir(&logs_dir)
                .unwrap()
                .map(|entry| entry.unwrap().path())
                .collect();
            let stuck: Vec<&str> = stuck.iter().take(3).map(String::as_str).collect();
            panic!(
                "not settled within 240 s: {why}\nwhat each process logged of {stuck:?}:\n{}",
                crate::lines_naming(&files, &stuck)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!(
        "processes that stopped by themselves and were started again, in all: {}",
        nodes.iter().map(|n| n.self_stops).sum::<usize>()
    );
    // No process told the engineer on call of a loss there was not: a
    // process back from a dead machine takes what it missed from the log
    // stream, and its data keys from the cluster's buckets.
    for entry in std::fs::read_dir(&logs_dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("side trees are not on the log stream"),
            "{}: {text}",
            path.display()
        );
    }
    // Every chain of every process verifies.
    for node in &nodes {
        for process in &node.processes {
            let mut audit = p::audit_service_client::AuditServiceClient::new(
                process.channel_as(&crate::auditor()).await,
            );
            let (checked, broken, total) = crate::casework::verify_all(&mut audit).await;
            assert!(
                broken.is_empty() && checked == total,
                "{} at {}: {broken:?}",
                process.name,
                process.addr
            );
        }
    }
    // Each acknowledged report is recorded once, and became exactly one
    // case; casework opened no other.
    let recorded: Vec<&String> = logs[0]
        .iter()
        .filter(|e| e.event_type == "IntakeRecorded")
        .map(|e| &e.stream_id)
        .collect();
    let recorded_set: HashSet<&String> = recorded.iter().copied().collect();
    assert_eq!(
        recorded.len(),
        recorded_set.len(),
        "a report recorded twice"
    );
    assert_eq!(
        recorded_set, intake_ids,
        "the reports recorded are those acknowledged"
    );
    let opened: Vec<String> = logs[1]
        .iter()
        .filter(|e| e.event_type == "CaseOpened")
        .filter_map(opened_for)
        .collect();
    let opened_set: HashSet<&String> = opened.iter().collect();
    assert_eq!(
        opened.len(),
        opened_set.len(),
        "a report opened as two cases"
    );
    assert_eq!(
        opened_set, intake_ids,
        "casework opened a case for no other report"
    );
}

/// The intake a `CaseOpened` event names.
fn opened_for(event: &p::EventEnvelope) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(&event.payload_json).ok()?["intake_id"]
        .as_str()
        .map(str::to_owned)
}

/// The logs of intake, casework and referral once every process of each
/// holds the same one, casework opened a case for each of `acknowledged`
/// and intake recorded each hand-over; else what is not so yet.
/// Err: why not, and the reports still waiting (none when the processes
/// differ or do not answer).
async fn settled(
    nodes: &[Node],
    acknowledged: &HashSet<&String>,
) -> Result<Vec<Vec<p::EventEnvelope>>, (String, Vec<String>)> {
    let mut logs = Vec::new();
    for (k, service) in ["intake", "casework", "referral"].into_iter().enumerate() {
        let mut first: Option<Vec<p::EventEnvelope>> = None;
        for node in nodes {
            let process = &node.processes[k];
            let log = crate::standby::read_whole_log(process).await.map_err(|e| {
                (
                    format!("{service} at {} does not answer: {e}", process.addr),
                    Vec::new(),
                )
            })?;
            match &first {
                None => first = Some(log),
                Some(theirs) if *theirs == log => {}
                Some(theirs) => {
                    return Err((
                        format!(
                            "{service} processes hold different logs ({} and {} events)",
                            theirs.len(),
                            log.len()
                        ),
                        Vec::new(),
                    ));
                }
            }
        }
        logs.extend(first);
    }
    let opened: HashSet<String> = logs[1]
        .iter()
        .filter(|e| e.event_type == "CaseOpened")
        .filter_map(opened_for)
        .collect();
    let handed: HashSet<&String> = logs[0]
        .iter()
        .filter(|e| e.event_type == "IntakeHandedOver")
        .map(|e| &e.stream_id)
        .collect();
    let no_case: Vec<&&String> = acknowledged
        .iter()
        .filter(|id| !opened.contains(**id))
        .collect();
    let not_heard: Vec<&&String> = acknowledged
        .iter()
        .filter(|id| !handed.contains(*id))
        .collect();
    if no_case.is_empty() && not_heard.is_empty() {
        Ok(logs)
    } else {
        let stuck = no_case
            .iter()
            .chain(&not_heard)
            .map(|id| (**id).clone())
            .collect();
        Err((
            format!(
                "acknowledged reports without a case: {no_case:?}; whose case intake has not heard of: {not_heard:?}"
            ),
            stuck,
        ))
    }
}
