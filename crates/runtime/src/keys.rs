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
//! Limits: sled is log-structured, so a destroyed key's old bytes may stay
//! in a segment file until sled reclaims it, and a purged bucket entry's
//! bytes stay in nats-server's files until it compacts them; for erasure
//! that must hold against a copy of the disk, keep the master key in an
//! HSM/KMS and rotate it after erasures (not done here).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use baove_bus::kv::BucketSpec;
use baove_eventlog::{Envelope, EventLog, StreamId};
use baove_security::seal::{Key, Sealed};
use tokio::sync::{OnceCell, watch};

/// How long a write waits for the bus before it is refused.
const BUS_WAIT: Duration = Duration::from_secs(5);

/// Where data keys live.
pub struct KeyStore {
    tree: sled::Tree,
    master: Key,
    cluster: Option<Cluster>,
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
        })
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
        let wrapped = match self.replicated().await? {
            None => local.clone().unwrap_or_else(new),
            Some(store) => {
                let unheld = |e: &dyn std::fmt::Display| {
                    format!(
                        "not acknowledged: the cluster's quorum does not hold the record's data key ({e}); nothing was recorded, retry with the same request_id"
                    )
                };
                let key = stream.to_string();
                let held = store.entry(&key).await.map_err(|e| unheld(&e))?;
                match held {
                    Some(entry) if entry.operation == kv::Operation::Put => entry.value.to_vec(),
                    erased_or_never => {
                        // Never held: this process's own key (an attempt
                        // that did not reach the bucket) or a new one;
                        // erased: always a new one.
                        let mine = match (&erased_or_never, &local) {
                            (None, Some(local)) => local.clone(),
                            _ => new(),
                        };
                        match store.create(&key, mine.clone().into()).await {
                            Ok(_) => mine,
                            // Another process made it meanwhile: theirs.
                            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => store
                                .get(&key)
                                .await
                                .map_err(|e| unheld(&e))?
                                .ok_or_else(|| unheld(&"it vanished"))?
                                .to_vec(),
                            Err(e) => return Err(unheld(&e)),
                        }
                    }
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
        Key::unwrap_key(&self.master, stream.as_bytes(), &wrapped).map_err(|e| e.to_string())
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
    /// destroyed).
    ///
    /// # Errors
    /// When sled cannot be read, or the key does not unwrap (another master
    /// key).
    pub fn key(&self, stream: StreamId) -> Result<Option<Key>, String> {
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
            this.tree
                .remove(stream.as_bytes())
                .map(|old| old.is_some())
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| format!("erasing task failed: {e}"))?
    }

    /// Before the read model applies `events` (in a cluster): takes from
    /// the bucket the key of each record this process does not hold yet
    /// and needs (`uses`; a standby following the active, or a log repaired
    /// from its stream), and drops the key of each erased record. Outside a
    /// cluster nothing.
    ///
    /// # Errors
    /// When the bucket or sled cannot be read or written: the read model
    /// tries the page again.
    pub async fn prepare(
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
            }
            Ok(())
        })
        .await
        .map_err(|e| format!("key task failed: {e}"))?
    }
}
