//! A stream's replicas in a cluster, as its leader reports them: which one
//! has stalled, and the remedy, a step-down of the stream's leader.
//!
//! nats-server 2.9 can leave a replica that came back with its node behind
//! for good: the node is up and its other replicas are current, but this
//! stream's leader has not heard from it for minutes and it lags thousands
//! of messages (seen after a whole-machine kill, docs/cluster.md). The
//! stream keeps its quorum, but one more node lost would lose it. A replica
//! is **stalled** when the leader reports it not current, not offline and
//! unseen for [`STALLED_AFTER`], while its node is current in another of
//! the streams looked at (so the node runs). The active of each service
//! looks at its own streams and buckets every second (the runtime's stream
//! keeper), logs and counts each stall, and asks the stream's leader to
//! step down ([`step_down`]) at most once per [`STEP_DOWN_EVERY`] per
//! stream: the new leader, elected among the current replicas in well under
//! a second, starts the lagging one's catch-up again. The same by hand:
//! `nats stream cluster step-down <stream>`.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::stream::ClusterInfo;

use crate::BusError;

/// How long the leader must not have heard from a replica that is not
/// current before it counts as stalled (a node catching up normally talks
/// to the leader all the while).
pub const STALLED_AFTER: Duration = Duration::from_secs(30);

/// The least time between two step-downs of one stream's leader.
pub const STEP_DOWN_EVERY: Duration = Duration::from_secs(300);

/// Gauge: replicas of the service's streams stalled now.
pub const REPLICAS_STALLED: &str = "baove_nats_replicas_stalled";

/// Counter: step-downs of a stream's leader asked for, by stream.
pub const LEADER_STEP_DOWNS: &str = "baove_nats_leader_step_downs_total";

/// A stalled replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stall {
    /// The stream (a bucket's is `KV_<bucket>`).
    pub stream: String,
    /// The server holding the replica.
    pub peer: String,
    /// Since when the leader has not heard from it.
    pub unseen: Duration,
    /// How many operations it is behind, as the leader counts.
    pub lag: Option<u64>,
}

/// Of `streams` (each stream's name and cluster info), the replicas that
/// stalled (see the module's doc).
#[must_use]
pub fn stalled(streams: &[(String, ClusterInfo)]) -> Vec<Stall> {
    // The nodes seen running: each stream's leader and its current replicas.
    let mut running: HashMap<&str, Vec<&str>> = HashMap::new();
    for (stream, cluster) in streams {
        let up = cluster.leader.iter().map(String::as_str).chain(
            cluster
                .replicas
                .iter()
                .filter(|r| r.current && !r.offline)
                .map(|r| r.name.as_str()),
        );
        for node in up {
            running.entry(node).or_default().push(stream.as_str());
        }
    }
    let mut stalls = Vec::new();
    for (stream, cluster) in streams {
        for replica in &cluster.replicas {
            let elsewhere = running
                .get(replica.name.as_str())
                .is_some_and(|s| s.iter().any(|s| *s != stream.as_str()));
            if !replica.current && !replica.offline && replica.active >= STALLED_AFTER && elsewhere
            {
                stalls.push(Stall {
                    stream: stream.clone(),
                    peer: replica.name.clone(),
                    unseen: replica.active,
                    lag: replica.lag,
                });
            }
        }
    }
    stalls
}

/// Asks the leader of `stream` to step down (the cluster elects another
/// among the current replicas).
///
/// # Errors
/// When JetStream refuses (no such stream, not clustered, no other replica
/// current) or does not answer.
pub async fn step_down(js: &async_nats::jetstream::Context, stream: &str) -> Result<(), BusError> {
    use async_nats::jetstream::response::Response;
    // nats-server takes an empty object (not `null`) as an empty request.
    let answer: Response<serde_json::Value> = js
        .request(
            format!("STREAM.LEADER.STEPDOWN.{stream}"),
            &serde_json::json!({}),
        )
        .await
        .map_err(|e| BusError::Unavailable(format!("step-down of {stream}'s leader: {e}")))?;
    match answer {
        Response::Ok(_) => Ok(()),
        Response::Err { error } => Err(BusError::JetStream(format!(
            "step-down of {stream}'s leader refused: {error}"
        ))),
    }
}

/// When each stream's leader was last asked to step down, so that a stall
/// that lasts is not answered by an election every second.
#[derive(Debug, Default)]
pub struct StepDowns {
    last: HashMap<String, std::time::Instant>,
}

impl StepDowns {
    /// Whether `stream`'s leader may be asked now (none asked within
    /// [`STEP_DOWN_EVERY`]); if so, notes it asked at `now`.
    pub fn may_ask(&mut self, stream: &str, now: std::time::Instant) -> bool {
        match self.last.get(stream) {
            Some(at) if now.saturating_duration_since(*at) < STEP_DOWN_EVERY => false,
            _ => {
                self.last.insert(stream.to_owned(), now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_nats::jetstream::stream::PeerInfo;

    fn peer(name: &str, current: bool, unseen_s: u64) -> PeerInfo {
        PeerInfo {
            name: name.to_owned(),
            current,
            active: Duration::from_secs(unseen_s),
            offline: false,
            lag: Some(if current { 0 } else { 2510 }),
        }
    }

    fn cluster(leader: &str, replicas: Vec<PeerInfo>) -> ClusterInfo {
        ClusterInfo {
            leader: Some(leader.to_owned()),
            replicas,
            ..ClusterInfo::default()
        }
    }

    #[test]
    fn given_a_replica_unseen_for_75_s_on_a_node_current_elsewhere_then_it_is_stalled() {
        let streams = vec![
            (
                "KV_BAOVE_INTAKE_KEYS".to_owned(),
                cluster("n1", vec![peer("n2", true, 0), peer("n3", false, 75)]),
            ),
            (
                "BAOVE_INTAKE".to_owned(),
                cluster("n2", vec![peer("n1", true, 0), peer("n3", true, 0)]),
            ),
        ];
        assert_eq!(
            stalled(&streams),
            [Stall {
                stream: "KV_BAOVE_INTAKE_KEYS".into(),
                peer: "n3".into(),
                unseen: Duration::from_secs(75),
                lag: Some(2510),
            }]
        );
    }

    #[test]
    fn given_a_replica_catching_up_or_a_node_down_then_nothing_is_stalled() {
        // Catching up: not current, but the leader hears from it.
        let catching_up = vec![
            (
                "BAOVE_CASE".to_owned(),
                cluster("n1", vec![peer("n2", true, 0), peer("n3", false, 1)]),
            ),
            (
                "BAOVE_CASE_LOG".to_owned(),
                cluster("n2", vec![peer("n1", true, 0), peer("n3", true, 0)]),
            ),
        ];
        assert_eq!(stalled(&catching_up), []);
        // Down: unseen in every stream; stepping down would not bring it
        // back, and costs an election.
        let down = vec![
            (
                "BAOVE_CASE".to_owned(),
                cluster("n1", vec![peer("n2", true, 0), peer("n3", false, 90)]),
            ),
            (
                "BAOVE_CASE_LOG".to_owned(),
                cluster("n2", vec![peer("n1", true, 0), peer("n3", false, 90)]),
            ),
        ];
        assert_eq!(stalled(&down), []);
        // Reported offline by the group.
        let mut offline = peer("n3", false, 90);
        offline.offline = true;
        let marked = vec![
            (
                "BAOVE_CASE".to_owned(),
                cluster("n1", vec![peer("n2", true, 0), offline]),
            ),
            (
                "BAOVE_CASE_LOG".to_owned(),
                cluster("n3", vec![peer("n1", true, 0), peer("n2", true, 0)]),
            ),
        ];
        assert_eq!(stalled(&marked), []);
    }

    #[test]
    fn given_a_step_down_asked_then_the_same_stream_waits_five_minutes() {
        let mut asked = StepDowns::default();
        let now = std::time::Instant::now();
        assert!(asked.may_ask("BAOVE_INTAKE", now));
        assert!(!asked.may_ask("BAOVE_INTAKE", now + Duration::from_secs(299)));
        assert!(asked.may_ask("KV_BAOVE_LEASES", now + Duration::from_secs(1)));
        assert!(asked.may_ask("BAOVE_INTAKE", now + STEP_DOWN_EVERY));
    }
}
