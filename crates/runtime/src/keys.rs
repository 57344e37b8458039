//! The data keys of confidential fields: one per record (an intake report's
//! stream, a case's stream), random, kept wrapped under the service's
//! master key in the `data-keys` side tree of its sled database, outside
//! the hash chain, so that it can be destroyed (erasure).
//!
//! In a cluster (`stream_replicas` > 1) each wrapped key is also written to
//! the service's replicated key-value bucket ([`baove_bus::kv::DATA_KEYS`]
//! for intake, [`baove_bus::kv::CASE_KEYS`] for casework) before the event
//! that needs it is appended (it is acknowledged only once its key is held
//! by the cluster's quorum), and purged there on erasure before the erasure
//! is recorded. A standby's read model takes the key of each record it
//! follows from the bucket before it applies its events
//! ([`KeyStore::prepare`], told by the service what each event means for
//! the key: [`KeyUse`]), and drops the keys of erased records, so it can
//! open what the active opens and take over. The master key must be the
//! same on every process of a service in a cluster.
//!
//! The keys read are also held in memory, unwrapped ([`KeyStore::load`]):
//! the read model and the readers load a page's keys off the async
//! executor first, so that opening a field never waits on sled there.
//!
//! Limits: sled is log-structured, so a destroyed key's old bytes may stay
//! in a segment file until sled reclaims it, and a purged bucket entry's
//! bytes stay in nats-server's files until it compacts them; for erasure
//! that must hold against a copy of the disk, keep the master key in an
//! HSM/KMS and rotate it after erasures (not done here).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv;
use baove_bus::kv::BucketSpec;
use baove_bus::{ASK_WITHIN, ask};
use baove_eventlog::{Envelope, EventLog, StreamId};
use baove_security::seal::{Key, Sealed};
use tokio::sync::{OnceCell, watch};

/// How long a write waits for the bus before it is refused.
const BUS_WAIT: Duration = Duration::from_secs(5);

/// Where data keys live.
pub struct KeyStore {
    tree: baove_eventlog::SideTree,
    master: Key,
    cluster: Option<Cluster>,
    /// The keys read or written so far, unwrapped (none: destroyed or
    /// never made). An erasure overwrites its entry; [`Self::load`] only
    /// adds entries, so a read racing an erasure cannot bring a key back.
    held: Mutex<HashMap<StreamId, Option<Key>>>,
    /// Reads of sled made by [`Self::key`] because the key was not loaded.
    unloaded_reads: AtomicU64,
}

/// The cluster's copy of the keys.
struct Cluster {
    bus: watch::Receiver<Option<baove_bus::Bus>>,
    replicas: usize,
    bucket: BucketSpec,
    store: OnceCell<kv::Store>,
}

/// Where a service keeps its keys in a cluster: the bus as it connects,
/// the number of replicas, the bucket.
pub type ClusterKeys = (watch::Receiver<Option<baove_bus::Bus>>, usize, BucketSpec);

/// What a stored event means for its stream's key ([`KeyStore::prepare`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyUse {
    /// It carries sealed fields: the key must be held to read it.
    Needs,
    /// It records the erasure: the key is dropped.
    Erases,
}

/// The fields of this report were erased (its key destroyed).
#[derive(Debug)]
pub struct Erased;

impl KeyStore {
    /// The store in `log`'s database, wrapping with `master`; with
    /// `cluster` (the bus as it connects, the number of replicas, the
    /// bucket), each key is also kept in the cluster's bucket.
    ///
    /// # Errors
    /// When sled cannot open the tree.
    pub fn open(
        log: &EventLog,
        master: Key,
        cluster: Option<ClusterKeys>,
    ) -> Result<Self, baove_eventlog::Error> {
        Ok(Self {
            tree: log.side_tree("data-keys")?,
            master,
            cluster: cluster.map(|(bus, replicas, bucket)| Cluster {
                bus,
                replicas,
                bucket,
                store: OnceCell::new(),
            }),
            held: Mutex::default(),
            unloaded_reads: AtomicU64::new(0),
        })
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<StreamId, Option<Key>>> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads the keys of `streams` that are not held yet from sled, off the
    /// async executor, so that [`Self::key`] and [`Self::open_sealed`] find
    /// them in memory.
    ///
    /// # Errors
    /// When sled cannot be read. A key that does not unwrap (another master
    /// key) is left out: [`Self::key`] says so for its record alone.
    pub async fn load(self: &Arc<Self>, streams: Vec<StreamId>) -> Result<(), String> {
        let wanted: Vec<StreamId> = {
            let held = self.held();
            streams
                .into_iter()
                .filter(|s| !held.contains_key(s))
                .collect()
        };
        if wanted.is_empty() {
            return Ok(());
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            for stream in wanted {
                let wrapped = this
                    .tree
                    .get(stream.as_bytes())
                    .map_err(|e| e.to_string())?;
                // A key that does not unwrap (another master key) is not
                // held: reading its record says so, and only that record
                // is unreadable; the page goes on.
                let key = match wrapped {
                    None => None,
                    Some(wrapped) => {
                        match Key::unwrap_key(&this.master, stream.as_bytes(), &wrapped) {
                            Ok(key) => Some(key),
                            Err(_) => continue,
                        }
                    }
                };
                this.held().entry(stream).or_insert(key);
            }
            Ok(())
        })
        .await
        .map_err(|e| format!("key task failed: {e}"))?
    }

    /// How many times [`Self::key`] had to read sled because the key had not
    /// been loaded ([`Self::load`]): on the async executor, each is a wait
    /// on sled there.
    #[must_use]
    pub fn unloaded_reads(&self) -> u64 {
        self.unloaded_reads.load(Ordering::Relaxed)
    }

    /// The key of `stream` as sled holds it.
    fn read(&self, stream: StreamId) -> Result<Option<Key>, String> {
        match self
            .tree
            .get(stream.as_bytes())
            .map_err(|e| e.to_string())?
        {
            None => Ok(None),
            Some(wrapped) => Key::unwrap_key(&self.master, stream.as_bytes(), &wrapped)
                .map(Some)
                .map_err(|e| e.to_string()),
        }
    }

    /// The cluster's bucket (none outside a cluster).
    async fn replicated(&self) -> Result<Option<&kv::Store>, String> {
        let Some(cluster) = &self.cluster else {
            return Ok(None);
        };
        cluster
            .store
            .get_or_try_init(|| async {
                let mut bus = cluster.bus.clone();
                let bus = tokio::time::timeout(BUS_WAIT, bus.wait_for(Option::is_some))
                    .await
                    .map_err(|_| "not connected to the cluster's NATS yet".to_owned())?
                    .map_err(|_| "the bus is gone (shutting down)".to_owned())?
                    .clone()
                    .ok_or("not connected to the cluster's NATS yet")?;
                baove_bus::kv::bucket(&bus.js, cluster.bucket, cluster.replicas)
                    .await
                    .map_err(|e| e.to_string())
            })
            .await
            .map(Some)
    }

    /// The key of `stream` for sealing new fields: the one it has, or a new
    /// one. It is written before the event that carries what it seals is
    /// appended: that append's flush makes it durable here. In a cluster the
    /// cluster's bucket decides which key a record has (a process never
    /// replaces a key another process sealed with, nor brings back one an
    /// erasure purged), and the key is in the bucket's quorum before this
    /// returns.
    ///
    /// # Errors
    /// When sled cannot write, or in a cluster the bucket cannot.
    pub async fn key_for_sealing(self: &Arc<Self>, stream: StreamId) -> Result<Key, String> {
        let wrapped = match self.replicated().await? {
            None => self.stored_or_new(stream).await?,
            Some(store) => self.agreed_with_cluster(store, stream).await?,
        };
        self.hold_for_sealing(stream, &wrapped)
    }

    /// On one node: the wrapped key sled has for `stream`, or a new one,
    /// in one trip to sled, written only if none was there (of two callers
    /// at once, both get the one written first).
    async fn stored_or_new(self: &Arc<Self>, stream: StreamId) -> Result<Vec<u8>, String> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
            let id = stream.as_bytes();
            if let Some(held) = this.tree.get(id).map_err(|e| e.to_string())? {
                return Ok(held.to_vec());
            }
            let new = Key::generate().wrap(&this.master, id);
            match this
                .tree
                .compare_and_swap(id, None::<&[u8]>, Some(new.clone()))
                .map_err(|e| e.to_string())?
            {
                Ok(()) => Ok(new),
                Err(sled::CompareAndSwapError { current, .. }) => {
                    Ok(current.map_or(new, |w| w.to_vec()))
                }
            }
        })
        .await
        .map_err(|e| format!("key task failed: {e}"))?
    }

    /// In a cluster: the wrapped key the cluster's bucket holds for
    /// `stream` (this process's own or a new one created there if none),
    /// also written to sled.
    async fn agreed_with_cluster(
        self: &Arc<Self>,
        store: &kv::Store,
        stream: StreamId,
    ) -> Result<Vec<u8>, String> {
        let this = self.clone();
        let local = tokio::task::spawn_blocking(move || {
            this.tree
                .get(stream.as_bytes())
                .map(|w| w.map(|w| w.to_vec()))
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| format!("key task failed: {e}"))??;
        let new = || Key::generate().wrap(&self.master, stream.as_bytes());
        let unheld = |e: &dyn std::fmt::Display| {
            format!(
                "not acknowledged: the cluster's quorum does not hold the record's data key ({e}); nothing was recorded, retry with the same request_id"
            )
        };
        let key = stream.to_string();
        // Each question bounded and asked again ([`baove_bus::ask`]): while
        // the bucket elects a leader (its NATS node died) nobody answers,
        // and the client's 10 s timeout would hold the report that long
        // though the leader is usually there sooner. Refused after the
        // bound, the report is sent again (its request id makes that
        // safe); a create cut short may still be stored, and the next
        // attempt then finds and uses that key.
        let unanswered = || unheld(&format!("the bucket did not answer within {ASK_WITHIN:?}"));
        let held = ask(|| store.entry(&key))
            .await
            .ok_or_else(unanswered)?
            .map_err(|e| unheld(&e))?;
        let wrapped = match held {
            Some(entry) if entry.operation == kv::Operation::Put => entry.value.to_vec(),
            erased_or_never => {
                // Never held: this process's own key (an attempt
                // that did not reach the bucket) or a new one;
                // erased: always a new one.
                let mine = match (&erased_or_never, &local) {
                    (None, Some(local)) => local.clone(),
                    _ => new(),
                };
                let created = ask(|| store.create(&key, mine.clone().into()))
                    .await
                    .ok_or_else(unanswered)?;
                match created {
                    Ok(_) => mine,
                    // Another process made it meanwhile (or an earlier
                    // asking of this create, answered later): the bucket's.
                    Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                        ask(|| store.get(&key))
                            .await
                            .ok_or_else(unanswered)?
                            .map_err(|e| unheld(&e))?
                            .ok_or_else(|| unheld(&"it vanished"))?
                            .to_vec()
                    }
                    Err(e) => return Err(unheld(&e)),
                }
            }
        };
        if local.as_ref() != Some(&wrapped) {
            let (this, keep) = (self.clone(), wrapped.clone());
            tokio::task::spawn_blocking(move || {
                this.tree
                    .insert(stream.as_bytes(), keep)
                    .map(drop)
                    .map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| format!("key task failed: {e}"))??;
        }
        Ok(wrapped)
    }

    /// The key of `stream` unwrapped from `wrapped`, kept in memory.
    fn hold_for_sealing(&self, stream: StreamId, wrapped: &[u8]) -> Result<Key, String> {
        let key =
            Key::unwrap_key(&self.master, stream.as_bytes(), wrapped).map_err(|e| e.to_string())?;
        self.held().insert(stream, Some(key.clone()));
        Ok(key)
    }

    /// Seals `plaintext` as the one blob of `stream`
    /// ([`Self::key_for_sealing`]).
    ///
    /// # Errors
    /// As [`Self::key_for_sealing`].
    pub async fn seal_new(
        self: &Arc<Self>,
        stream: StreamId,
        plaintext: Vec<u8>,
    ) -> Result<Sealed, String> {
        let key = self.key_for_sealing(stream).await?;
        Ok(key.seal(stream.as_bytes(), &plaintext))
    }

    /// The key of `stream`, if this process holds it (none: never made, or
    /// destroyed): from memory once loaded ([`Self::load`]), else read
    /// from sled here and counted ([`Self::unloaded_reads`]).
    ///
    /// # Errors
    /// When sled cannot be read, or the key does not unwrap (another master
    /// key).
    pub fn key(&self, stream: StreamId) -> Result<Option<Key>, String> {
        if let Some(key) = self.held().get(&stream) {
            return Ok(key.clone());
        }
        self.unloaded_reads.fetch_add(1, Ordering::Relaxed);
        let key = self.read(stream)?;
        self.held().entry(stream).or_insert(key.clone());
        Ok(key)
    }

    /// Opens the blob of `stream`.
    ///
    /// # Errors
    /// [`Erased`] when its key was destroyed; a message when it does not
    /// open (wrong master key, altered blob).
    pub fn open_sealed(
        &self,
        stream: StreamId,
        sealed: &Sealed,
    ) -> Result<Vec<u8>, Result<Erased, String>> {
        match self.key(stream) {
            Ok(Some(key)) => key
                .open(stream.as_bytes(), sealed)
                .map_err(|e| Err(e.to_string())),
            Ok(None) => Err(Ok(Erased)),
            Err(e) => Err(Err(e)),
        }
    }

    /// Destroys the key of `stream`: its sealed fields can no longer be
    /// read anywhere. In a cluster it is purged from the bucket first (a
    /// failure there changes nothing). Durable here with the next append
    /// (the erasure event).
    ///
    /// # Errors
    /// When sled, or in a cluster the bucket, cannot write.
    pub async fn destroy(self: &Arc<Self>, stream: StreamId) -> Result<bool, String> {
        if let Some(store) = self.replicated().await? {
            store
                .purge(stream.to_string())
                .await
                .map_err(|e| format!("the cluster's key bucket refused the purge: {e}"))?;
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let removed = this
                .tree
                .remove(stream.as_bytes())
                .map(|old| old.is_some())
                .map_err(|e| e.to_string());
            this.held().insert(stream, None);
            removed
        })
        .await
        .map_err(|e| format!("erasing task failed: {e}"))?
    }

    /// Before the read model (or a reader) applies `events`: in a cluster,
    /// takes from the bucket the key of each record this process does not
    /// hold yet and needs (`uses`; a standby following the active, or a log
    /// repaired from its stream), and drops the key of each erased record;
    /// then, everywhere, loads the keys the events need into memory
    /// ([`Self::load`]), so that opening them does not read sled.
    ///
    /// # Errors
    /// When the bucket or sled cannot be read or written: the read model
    /// tries the page again.
    pub async fn prepare(
        self: &Arc<Self>,
        events: Vec<Envelope>,
        uses: fn(&Envelope) -> Option<KeyUse>,
    ) -> Result<(), String> {
        let needed: std::collections::HashSet<StreamId> = events
            .iter()
            .filter(|event| uses(event) == Some(KeyUse::Needs))
            .map(|event| event.stream_id)
            .collect();
        self.take_from_cluster(events, uses).await?;
        self.load(needed.into_iter().collect()).await
    }

    /// The cluster's part of [`Self::prepare`].
    async fn take_from_cluster(
        self: &Arc<Self>,
        events: Vec<Envelope>,
        uses: fn(&Envelope) -> Option<KeyUse>,
    ) -> Result<(), String> {
        if self.cluster.is_none() {
            return Ok(());
        }
        let this = self.clone();
        let missing = tokio::task::spawn_blocking(move || {
            let mut missing = Vec::new();
            for event in &events {
                let stream = event.stream_id;
                match uses(event) {
                    Some(KeyUse::Needs)
                        if !missing.contains(&stream)
                            && !this
                                .tree
                                .contains_key(stream.as_bytes())
                                .map_err(|e| e.to_string())? =>
                    {
                        missing.push(stream);
                    }
                    Some(KeyUse::Erases) => {
                        this.tree
                            .remove(stream.as_bytes())
                            .map_err(|e| e.to_string())?;
                        this.held().insert(stream, None);
                        missing.retain(|s| *s != stream);
                    }
                    _ => {}
                }
            }
            Ok::<_, String>(missing)
        })
        .await
        .map_err(|e| format!("key task failed: {e}"))??;
        if missing.is_empty() {
            return Ok(());
        }
        let Some(store) = self.replicated().await? else {
            return Ok(());
        };
        let mut found = Vec::new();
        for stream in missing {
            // None: erased since (purged), or a report sealed before keys
            // were replicated; it then reads as erased, as it would here.
            if let Some(wrapped) = store
                .get(stream.to_string())
                .await
                .map_err(|e| format!("cannot read the cluster's key bucket: {e}"))?
            {
                found.push((stream, wrapped));
            }
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            for (stream, wrapped) in found {
                this.tree
                    .insert(stream.as_bytes(), wrapped.to_vec())
                    .map_err(|e| e.to_string())?;
                // One that does not unwrap is left to `key`, which says so
                // when the record is read.
                match Key::unwrap_key(&this.master, stream.as_bytes(), &wrapped) {
                    Ok(key) => this.held().insert(stream, Some(key)),
                    Err(_) => this.held().remove(&stream),
                };
            }
            Ok(())
        })
        .await
        .map_err(|e| format!("key task failed: {e}"))?
    }
}

#[cfg(test)]
mod tests {
    //! The keys held in memory, on a real sled log.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use baove_eventlog::{Actor, AppendRequest, ExpectedVersion, NewEvent};
    use uuid::Uuid;

    use super::*;

    /// Appends one event of `event_type` to `stream`; returns it as stored.
    async fn append(log: &EventLog, stream: StreamId, event_type: &str) -> Envelope {
        log.append(AppendRequest {
            stream,
            expected: ExpectedVersion::Any,
            command_id: Uuid::now_v7().to_string(),
            actor: Actor {
                user_id: "operator-1".into(),
                role: "hotline_operator".into(),
                agency_id: String::new(),
            },
            causation_id: String::new(),
            correlation_id: String::new(),
            events: vec![NewEvent::new(event_type, 1, &serde_json::json!({})).unwrap()],
            publish: false,
        })
        .await
        .unwrap();
        log.read_stream(stream, 1, 100)
            .await
            .unwrap()
            .pop()
            .unwrap()
    }

    fn uses(event: &Envelope) -> Option<KeyUse> {
        (event.event_type == "Sealed").then_some(KeyUse::Needs)
    }

    /// The bucket of the failover test, so it never meets a service's.
    const FAILOVER_KEYS: BucketSpec = BucketSpec {
        name: "BAOVE_TEST_FAILOVER_KEYS",
        ttl: None,
        deletes: true,
    };

    /// A report's key asked for as its node dies: the bucket's leader is
    /// killed, then a new record asks for its key, again 100 ms after each
    /// refusal (as a hotline client sends a report again), until given. Prints
    /// how long after the kill (a figure, not asserted: `ASK_WITHIN` says
    /// what it was before and after the bucket's questions were bounded).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn given_keys_in_a_three_node_bucket_when_its_leaders_node_dies_then_a_new_record_gets_its_key()
     {
        let mut nats = baove_testkit::NatsCluster::start().unwrap();
        let cancel = tokio_util::sync::CancellationToken::new();
        let js = async_nats::jetstream::new(
            baove_bus::connect(&nats.urls(), "keys-failover", &cancel, None)
                .await
                .unwrap(),
        );
        let bus = baove_bus::Bus {
            js: js.clone(),
            health: baove_bus::BusHealth::default(),
            replicas: 3,
        };
        let (_tx, rx) = watch::channel(Some(bus));
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path()).await.unwrap();
        let master = Key::generate();
        let keys =
            Arc::new(KeyStore::open(&log, master.clone(), Some((rx, 3, FAILOVER_KEYS))).unwrap());
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while keys.key_for_sealing(StreamId::new()).await.is_err() {
            assert!(std::time::Instant::now() < deadline, "no bucket");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let leader =
            baove_testkit::replicas::replicas_current(&js, &format!("KV_{}", FAILOVER_KEYS.name))
                .await
                .pop()
                .unwrap();

        nats.node_named(&leader).unwrap().kill();
        let killed = std::time::Instant::now();
        let mut refused = 0;
        let stream = StreamId::new();
        let key = loop {
            match keys.key_for_sealing(stream).await {
                Ok(key) => break key,
                Err(e) => {
                    assert!(
                        e.contains("not acknowledged")
                            && killed.elapsed() < Duration::from_secs(60),
                        "{e}"
                    );
                    refused += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        println!(
            "data keys: a new record got its key {:.2} s after {leader} (the bucket's leader) was killed, after {refused} refusals",
            killed.elapsed().as_secs_f64()
        );
        // The key given is the one the bucket holds (a create cut short by
        // the bound and stored after is found, never replaced).
        let wrapped = js
            .get_key_value(FAILOVER_KEYS.name)
            .await
            .unwrap()
            .get(stream.to_string())
            .await
            .unwrap()
            .expect("the bucket holds the record's key");
        let held = Key::unwrap_key(&master, stream.as_bytes(), &wrapped).unwrap();
        assert_eq!(held.id(), key.id());
        cancel.cancel();
    }

    #[tokio::test]
    async fn given_keys_made_before_a_restart_when_a_page_is_prepared_then_opening_reads_no_sled() {
        let dir = tempfile::tempdir().unwrap();
        let master = Key::generate();
        let (a, b) = (
            StreamId::from_uuid(Uuid::now_v7()),
            StreamId::from_uuid(Uuid::now_v7()),
        );
        let (sealed_a, sealed_b, page) = {
            let log = EventLog::open(dir.path().join("log")).await.unwrap();
            let keys = Arc::new(KeyStore::open(&log, master.clone(), None).unwrap());
            let sealed_a = keys.seal_new(a, b"Nguyen Van A".to_vec()).await.unwrap();
            let sealed_b = keys.seal_new(b, b"Tran Thi B".to_vec()).await.unwrap();
            let page = vec![
                append(&log, a, "Sealed").await,
                append(&log, b, "Sealed").await,
            ];
            log.close().await.unwrap();
            (sealed_a, sealed_b, page)
        };

        // Given the store opened again, nothing held in memory.
        let log = EventLog::open(dir.path().join("log")).await.unwrap();
        let keys = Arc::new(KeyStore::open(&log, master, None).unwrap());
        // When the page is prepared, then both open from memory.
        keys.prepare(page, uses).await.unwrap();
        assert_eq!(keys.open_sealed(a, &sealed_a).unwrap(), b"Nguyen Van A");
        assert_eq!(keys.open_sealed(b, &sealed_b).unwrap(), b"Tran Thi B");
        assert_eq!(keys.unloaded_reads(), 0);

        // A key asked for without preparing is read from sled, and counted.
        let unknown = StreamId::from_uuid(Uuid::now_v7());
        assert!(keys.key(unknown).unwrap().is_none());
        assert_eq!(keys.unloaded_reads(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn given_one_record_when_many_ask_its_key_at_once_then_all_seal_with_the_one_stored() {
        let dir = tempfile::tempdir().unwrap();
        let master = Key::generate();
        let log = EventLog::open(dir.path().join("log")).await.unwrap();
        let keys = Arc::new(KeyStore::open(&log, master.clone(), None).unwrap());
        for _ in 0..20 {
            let stream = StreamId::from_uuid(Uuid::now_v7());
            let asked: Vec<_> = (0..8)
                .map(|_| {
                    let keys = keys.clone();
                    tokio::spawn(async move { keys.key_for_sealing(stream).await.unwrap() })
                })
                .collect();
            let mut sealed = Vec::new();
            for ask in asked {
                sealed.push(ask.await.unwrap().seal(stream.as_bytes(), b"Nguyen Van A"));
            }
            // Whoever asked, what they sealed opens with the key sled
            // keeps, also in a store that holds nothing in memory yet.
            let fresh = KeyStore::open(&log, master.clone(), None).unwrap();
            for blob in &sealed {
                assert_eq!(fresh.open_sealed(stream, blob).unwrap(), b"Nguyen Van A");
            }
            // And asked again, the same key.
            let again = keys.key_for_sealing(stream).await.unwrap();
            assert_eq!(
                again.open(stream.as_bytes(), &sealed[0]).unwrap(),
                b"Nguyen Van A"
            );
        }
    }

    #[tokio::test]
    async fn given_a_held_key_when_destroyed_then_it_is_gone_from_memory_and_a_later_load_does_not_bring_it_back()
     {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path().join("log")).await.unwrap();
        let keys = Arc::new(KeyStore::open(&log, Key::generate(), None).unwrap());
        let stream = StreamId::from_uuid(Uuid::now_v7());
        let sealed = keys.seal_new(stream, b"Le Van C".to_vec()).await.unwrap();
        assert_eq!(keys.open_sealed(stream, &sealed).unwrap(), b"Le Van C");

        assert!(keys.destroy(stream).await.unwrap());
        assert!(matches!(keys.open_sealed(stream, &sealed), Err(Ok(Erased))));
        keys.load(vec![stream]).await.unwrap();
        assert!(keys.key(stream).unwrap().is_none());
        assert_eq!(keys.unloaded_reads(), 0);
    }

    #[tokio::test]
    async fn given_a_key_wrapped_under_another_master_when_its_page_is_prepared_then_the_others_open_and_only_it_is_refused()
     {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path().join("log")).await.unwrap();
        let keys = Arc::new(KeyStore::open(&log, Key::generate(), None).unwrap());
        let (good, foreign) = (
            StreamId::from_uuid(Uuid::now_v7()),
            StreamId::from_uuid(Uuid::now_v7()),
        );
        let sealed = keys.seal_new(good, b"Pham Van D".to_vec()).await.unwrap();
        let other_master = Key::generate();
        keys.tree
            .insert(
                foreign.as_bytes(),
                Key::generate().wrap(&other_master, foreign.as_bytes()),
            )
            .unwrap();
        let page = vec![
            append(&log, foreign, "Sealed").await,
            append(&log, good, "Sealed").await,
        ];
        keys.prepare(page, uses).await.unwrap();
        assert_eq!(keys.open_sealed(good, &sealed).unwrap(), b"Pham Van D");
        assert!(matches!(keys.open_sealed(foreign, &sealed), Err(Err(_))));
    }
}
