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
//! keeper), counts each stall, and once it has itself seen one last
//! [`CONFIRMED_AFTER`] ([`StepDowns`]) logs it and asks the stream's
//! leader to step down ([`step_down`]), again while it lasts but at most
//! once per [`STEP_DOWN_EVERY`] per stream: the new leader, elected among
//! the current replicas in well under a second, starts the lagging one's
//! catch-up again. A replica that stalled as its node came back thus gets
//! its first step-down about 10 s after the node's return (25 s after the
//! kill if the node was down for less than 15 s). The same by hand:
//! `nats stream cluster step-down <stream>`.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::stream::ClusterInfo;

use crate::BusError;

/// How long the leader must not have heard from a replica that is not
/// current before it counts as stalled (a node catching up normally talks
/// to the leader all the while).
pub const STALLED_AFTER: Duration = Duration::from_secs(15);

/// How long a process must itself have seen a stall before it asks for a
/// step-down: a node just back is heard by some of its streams' leaders a
/// few seconds before others, and the downtime already counts as unseen.
pub const CONFIRMED_AFTER: Duration = Duration::from_secs(10);

/// The least time between two step-downs of one stream's leader (each
/// costs the stream an election, during which its writes wait).
pub const STEP_DOWN_EVERY: Duration = Duration::from_secs(60);

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

/// Which stalls have lasted, and when each stream's leader was last asked
/// to step down: a replica must be seen stalled for [`CONFIRMED_AFTER`] by
/// this process too (not only unseen by its leader: a node that just came
/// back is heard by some of its streams' leaders a moment before others),
/// and a stall that lasts is not answered by an election every second.
#[derive(Debug, Default)]
pub struct StepDowns {
    since: HashMap<(String, String), std::time::Instant>,
    last: HashMap<String, std::time::Instant>,
}

impl StepDowns {
    /// Of `stalls`, seen at `now`, the streams whose leader to ask now:
    /// those with a replica stalled since at least [`CONFIRMED_AFTER`] ago
    /// (as seen by these calls) and no step-down asked within
    /// [`STEP_DOWN_EVERY`]. Notes each as asked at `now`.
    pub fn to_ask(&mut self, stalls: &[Stall], now: std::time::Instant) -> Vec<String> {
        self.since.retain(|(stream, peer), _| {
            stalls
                .iter()
                .any(|s| s.stream == *stream && s.peer == *peer)
        });
        let mut ask = Vec::new();
        for stall in stalls {
            let since = *self
                .since
                .entry((stall.stream.clone(), stall.peer.clone()))
                .or_insert(now);
            let lasted = now.saturating_duration_since(since) >= CONFIRMED_AFTER;
            let asked_lately = self
                .last
                .get(&stall.stream)
                .is_some_and(|at| now.saturating_duration_since(*at) < STEP_DOWN_EVERY);
            if lasted && !asked_lately && !ask.contains(&stall.stream) {
                self.last.insert(stall.stream.clone(), now);
                ask.push(stall.stream.clone());
            }
        }
        ask
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
    fn given_a_replica_unseen_for_less_than_15_s_then_it_is_not_yet_stalled() {
        let streams = |unseen_s| {
            vec![
                (
                    "KV_BAOVE_LEASES".to_owned(),
                    cluster("n1", vec![peer("n2", true, 0), peer("n3", false, unseen_s)]),
                ),
                (
                    "BAOVE_INTAKE".to_owned(),
                    cluster("n2", vec![peer("n1", true, 0), peer("n3", true, 0)]),
                ),
            ]
        };
        assert_eq!(stalled(&streams(14)), []);
        assert_eq!(stalled(&streams(15)).len(), 1);
    }

    #[test]
    fn given_a_stall_when_it_lasts_10_s_here_then_its_leader_is_asked_once_a_minute() {
        let stall = |stream: &str, peer: &str| Stall {
            stream: stream.into(),
            peer: peer.into(),
            unseen: Duration::from_secs(40),
            lag: Some(7),
        };
        let mut asked = StepDowns::default();
        let t0 = std::time::Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let intake = [stall("BAOVE_INTAKE", "n3")];
        // Seen for the first time: not yet (a node just back).
        assert!(asked.to_ask(&intake, at(0)).is_empty());
        assert!(asked.to_ask(&intake, at(9)).is_empty());
        assert_eq!(asked.to_ask(&intake, at(10)), ["BAOVE_INTAKE"]);
        // Still stalled: not again within the minute, then again.
        assert!(asked.to_ask(&intake, at(11)).is_empty());
        assert!(asked.to_ask(&intake, at(69)).is_empty());
        assert_eq!(asked.to_ask(&intake, at(70)), ["BAOVE_INTAKE"]);
        // A stall that went away starts its 10 s again.
        let leases = [stall("KV_BAOVE_LEASES", "n2")];
        assert!(asked.to_ask(&leases, at(71)).is_empty());
        assert!(asked.to_ask(&[], at(75)).is_empty());
        assert!(asked.to_ask(&leases, at(76)).is_empty());
        assert!(asked.to_ask(&leases, at(85)).is_empty());
        assert_eq!(asked.to_ask(&leases, at(86)), ["KV_BAOVE_LEASES"]);
        // Two replicas of one stream: one step-down.
        let both = [stall("BAOVE_CASE", "n2"), stall("BAOVE_CASE", "n3")];
        assert!(asked.to_ask(&both, at(100)).is_empty());
        assert_eq!(asked.to_ask(&both, at(110)), ["BAOVE_CASE"]);
    }
}
