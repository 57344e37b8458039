//! The data keys of referrals, shared by casework and the referral
//! service: one random key per referral, kept wrapped under the referral
//! key (`referral_key_file`, the same file on both services) in the
//! replicated bucket [`baove_bus::kv::REFERRAL_KEYS`], its entry named
//! by the referral's id.
//!
//! A referral's private strings ([`baove_domain::referral::private`]: the
//! request's reason, a decline's or a revocation's reason, an outcome and
//! its reference) are sealed under it, in the case's log and in the
//! referral's, so both services can open them for a reader and neither
//! stores them in clear. casework makes the key when it records the
//! request (the key is in the bucket's quorum before the request is
//! appended) and purges it when the case's private text is erased; the
//! referral service only reads it. Every seal and open reads the bucket,
//! so an erasure holds at once in every process; only while NATS does not
//! answer does a process open with a key it read before
//! ([`crate::private`]). Each question to the bucket waits at most
//! [`baove_bus::ASK_WITHIN`]: while the bucket elects a leader (its NATS
//! node died) nobody answers, and a request or a read gives up after that
//! bound rather than after the client's 10 s.
//!
//! Outside a cluster the bucket has one replica on the one NATS server;
//! the services need NATS anyway to hand referrals to each other.
//!
//! casework also keeps each wrapped key in the `referral-keys` side tree of
//! its sled database, so that its backups carry them: after a restore onto
//! NATS stores that lost the bucket, [`ReferralKeys::sweep`] (run at
//! start) puts back every key the bucket never held, and drops the local
//! copy of every key the bucket says was erased (a purge marker), which is
//! how a process that was not the one erasing loses its copy. An erased
//! key's entry stays in the tree, empty, so that a bucket lost with the
//! NATS stores gets its purge marker back rather than a key.

use std::time::Duration;

use async_nats::jetstream::kv;
use baove_bus::ASK_WITHIN;
use baove_security::seal::Key;
use tokio::sync::{Mutex, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How long a call waits for the bus before it is refused.
const BUS_WAIT: Duration = Duration::from_secs(5);

/// Where referral keys live, for one service.
pub struct ReferralKeys {
    bus: watch::Receiver<Option<baove_bus::Bus>>,
    replicas: usize,
    master: Key,
    makes: bool,
    /// The bucket, once found; forgotten when a call on it fails (the
    /// stream deleted, NATS stores lost), so the next call finds or makes
    /// it again.
    store: Mutex<Option<kv::Store>>,
    local: Option<baove_eventlog::SideTree>,
    /// Referrals whose key [`Self::follow_log`] could not copy from the
    /// bucket yet.
    pending: std::sync::Mutex<Vec<Uuid>>,
}

/// The side tree of casework's sled database that keeps a copy of each
/// wrapped referral key (carried by backups).
pub const LOCAL_TREE: &str = "referral-keys";

impl std::fmt::Debug for ReferralKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReferralKeys")
            .field("replicas", &self.replicas)
            .field("makes", &self.makes)
            .finish_non_exhaustive()
    }
}

/// Why no key to seal with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoKey {
    /// The bucket, sled or the key file failed: try again.
    Unavailable(String),
    /// The referral's text was erased with its case.
    Erased(String),
}

impl std::fmt::Display for NoKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unavailable(m) | Self::Erased(m) => f.write_str(m),
        }
    }
}

/// The associated data a referral's key is wrapped with: it opens only as
/// that referral's.
/// Why a question to the bucket got no answer.
#[derive(Debug)]
enum Unanswered {
    /// Nobody answered within [`ASK_WITHIN`]: the bucket's stream is
    /// electing a leader (its NATS node died). The bucket is there: the
    /// handle is kept, and asking again now would wait as long.
    Silent,
    /// Refused or failed (the message says which): the bucket may be
    /// gone, so the handle is forgotten and the bucket found again.
    Failed(String),
}

impl std::fmt::Display for Unanswered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Silent => write!(
                f,
                "the bucket of referral keys did not answer within {ASK_WITHIN:?} (electing a leader?)"
            ),
            Self::Failed(m) => f.write_str(m),
        }
    }
}

impl From<String> for Unanswered {
    fn from(failed: String) -> Self {
        Self::Failed(failed)
    }
}

/// `question` to the bucket, bounded by [`ASK_WITHIN`] and asked again
/// ([`baove_bus::ask`]): while the bucket's stream elects a leader nobody
/// answers, and async-nats's own timeout (10 s) would hold a referral's
/// request, or a read of its text, that long though the leader is usually
/// there sooner.
async fn ask<T, E: std::fmt::Display, Q: Future<Output = Result<T, E>>>(
    question: impl FnMut() -> Q,
) -> Result<T, Unanswered> {
    match baove_bus::ask(question).await {
        Some(Ok(answer)) => Ok(answer),
        Some(Err(e)) => Err(Unanswered::Failed(format!(
            "the bucket of referral keys: {e}"
        ))),
        None => Err(Unanswered::Silent),
    }
}

fn wrapping_aad(referral: Uuid) -> Vec<u8> {
    let mut aad = b"baove-referral-key/".to_vec();
    aad.extend_from_slice(referral.as_bytes());
    aad
}

impl ReferralKeys {
    /// The keys as casework holds them (`makes`: it makes the bucket, the
    /// keys and purges them) or as the referral service does (reads only),
    /// wrapped under `master`, on the bus as it connects, the bucket kept
    /// `replicas` times.
    #[must_use]
    pub fn new(
        bus: watch::Receiver<Option<baove_bus::Bus>>,
        replicas: usize,
        master: Key,
        makes: bool,
    ) -> Self {
        Self {
            bus,
            replicas,
            master,
            makes,
            store: Mutex::new(None),
            local: None,
            pending: std::sync::Mutex::default(),
        }
    }

    /// The same, keeping a copy of each wrapped key in `tree` (casework's
    /// [`LOCAL_TREE`]).
    #[must_use]
    pub fn with_local_copy(mut self, tree: baove_eventlog::SideTree) -> Self {
        self.local = Some(tree);
        self
    }

    async fn local_get(&self, referral: Uuid) -> Result<Option<Vec<u8>>, String> {
        let Some(tree) = self.local.clone() else {
            return Ok(None);
        };
        tokio::task::spawn_blocking(move || {
            tree.get(referral.as_bytes())
                .map(|w| w.map(|w| w.to_vec()))
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| format!("key task failed: {e}"))?
    }

    async fn local_put(&self, referral: Uuid, wrapped: Option<Vec<u8>>) -> Result<(), String> {
        let Some(tree) = self.local.clone() else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || {
            // None: erased, kept as an empty value (no key, only the fact
            // that there was one), so that a bucket lost with the NATS
            // stores gets its erasure back too.
            tree.insert(referral.as_bytes(), wrapped.unwrap_or_default())
                .map(drop)
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| format!("key task failed: {e}"))?
    }

    /// The wrapped key of `referral` as the bucket holds it; when the
    /// bucket never held it (stores restored without it) and this process
    /// keeps a copy (casework), that copy, put back first.
    async fn held(&self, referral: Uuid) -> Result<Option<Vec<u8>>, String> {
        let store = self.store().await?;
        match self.held_in(&store, referral).await {
            Ok(held) => Ok(held),
            Err(silent @ Unanswered::Silent) => Err(silent.to_string()),
            Err(Unanswered::Failed(first)) => {
                self.forget().await;
                let store = self
                    .store()
                    .await
                    .map_err(|e| format!("{first}; then {e}"))?;
                self.held_in(&store, referral)
                    .await
                    .map_err(|e| e.to_string())
            }
        }
    }

    async fn held_in(
        &self,
        store: &kv::Store,
        referral: Uuid,
    ) -> Result<Option<Vec<u8>>, Unanswered> {
        let name = referral.to_string();
        let entry = ask(|| store.entry(&name)).await?;
        match entry {
            Some(entry) if entry.operation == kv::Operation::Put => Ok(Some(entry.value.to_vec())),
            // Erased.
            Some(_) => Ok(None),
            None => {
                let copy = self.local_get(referral).await?;
                if copy.as_ref().is_some_and(Vec::is_empty) {
                    // Erased here: the bucket gets its purge marker back.
                    ask(|| store.purge(&name)).await?;
                    return Ok(None);
                }
                let Some(copy) = copy else {
                    if self.makes {
                        // Never made: nothing of it was sealed.
                        return Ok(None);
                    }
                    // casework made it before anything was sealed under
                    // it: the bucket lost it (NATS stores restored
                    // without it), and casework puts it back.
                    return Err(Unanswered::Failed(format!(
                        "the key of referral {referral} is not in the bucket of referral keys (lost with the NATS stores?): casework puts it back from its copy; try again"
                    )));
                };
                let created = baove_bus::ask(|| store.create(&name, copy.clone().into()))
                    .await
                    .ok_or(Unanswered::Silent)?;
                match created {
                    Ok(_) => {
                        tracing::warn!(referral_id = %referral, "the bucket of referral keys had never held this referral's key: put back from casework's copy");
                        Ok(Some(copy))
                    }
                    Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                        Ok(ask(|| store.get(&name)).await?.map(|v| v.to_vec()))
                    }
                    Err(e) => Err(Unanswered::Failed(format!(
                        "the bucket of referral keys: {e}"
                    ))),
                }
            }
        }
    }

    /// The bucket's entry of `referral`; on an error the bucket handle is
    /// forgotten, so that the next call finds or makes the bucket again
    /// (not when the bucket did not answer: it is there, electing).
    async fn entry_in(
        &self,
        store: &kv::Store,
        referral: Uuid,
    ) -> Result<Option<kv::Entry>, String> {
        match ask(|| store.entry(referral.to_string())).await {
            Ok(entry) => Ok(entry),
            Err(e) => {
                if matches!(e, Unanswered::Failed(_)) {
                    self.forget().await;
                }
                Err(e.to_string())
            }
        }
    }

    /// Puts back into the bucket each key of this process's copy that the
    /// bucket never held, and drops the copy of each key the bucket says
    /// was erased. Returns how many were put back and dropped.
    ///
    /// # Errors
    /// When the bucket or sled cannot be read or written.
    pub async fn sweep(&self) -> Result<(usize, usize), String> {
        let Some(tree) = self.local.clone() else {
            return Ok((0, 0));
        };
        let store = &self.store().await?;
        let ids: Vec<Uuid> = tokio::task::spawn_blocking(move || {
            tree.iter()
                .keys()
                .filter_map(|k| k.ok().and_then(|k| Uuid::from_slice(&k).ok()))
                .collect()
        })
        .await
        .map_err(|e| format!("key task failed: {e}"))?;
        let (mut restored, mut dropped) = (0, 0);
        for referral in ids {
            let entry = self.entry_in(store, referral).await?;
            match entry {
                Some(entry) if entry.operation == kv::Operation::Put => {}
                Some(_) => {
                    if self
                        .local_get(referral)
                        .await?
                        .is_some_and(|c| !c.is_empty())
                    {
                        self.local_put(referral, None).await?;
                        dropped += 1;
                    }
                }
                None => {
                    if self
                        .held_in(store, referral)
                        .await
                        .map_err(|e| e.to_string())?
                        .is_some()
                    {
                        restored += 1;
                    }
                }
            }
        }
        Ok((restored, dropped))
    }

    async fn store(&self) -> Result<kv::Store, String> {
        let mut held = self.store.lock().await;
        if let Some(store) = held.as_ref() {
            return Ok(store.clone());
        }
        let mut bus = self.bus.clone();
        let bus = tokio::time::timeout(BUS_WAIT, bus.wait_for(Option::is_some))
            .await
            .map_err(|_| "not connected to NATS yet".to_owned())?
            .map_err(|_| "the bus is gone (shutting down)".to_owned())?
            .clone()
            .ok_or("not connected to NATS yet")?;
        let spec = baove_bus::kv::REFERRAL_KEYS;
        let store = if self.makes {
            baove_bus::kv::bucket(&bus.js, spec, self.replicas)
                .await
                .map_err(|e| e.to_string())?
        } else {
            bus.js
                .get_key_value(spec.name)
                .await
                .map_err(|e| format!("bucket {} (casework makes it): {e}", spec.name))?
        };
        *held = Some(store.clone());
        Ok(store)
    }

    async fn forget(&self) {
        *self.store.lock().await = None;
    }

    /// [`Self::sweep`] once the bus answers, tried again every 5 s until it
    /// succeeds; then every 5 s checks that the bucket is still there, and
    /// when it is gone (deleted, NATS stores lost) makes it again and
    /// sweeps, so that the referral service finds the keys again without
    /// waiting for casework to need one; every 5 s also takes the copies
    /// [`Self::follow_log`] could not take yet. Until `cancel` fires
    /// (casework runs it from start).
    pub async fn keep_bucket(self: std::sync::Arc<Self>, cancel: CancellationToken) {
        let mut swept = false;
        loop {
            if swept {
                let present = match self.store().await {
                    // Not answered: electing a leader, not gone; asked
                    // again in 5 s.
                    Ok(store) => ask(|| store.status())
                        .await
                        .map_or_else(|e| matches!(e, Unanswered::Silent), |_| true),
                    Err(_) => false,
                };
                if !present {
                    tracing::warn!("the bucket of referral keys is gone: making it again");
                    self.forget().await;
                    swept = false;
                }
            }
            if !swept {
                match self.sweep().await {
                    Ok((0, 0)) => swept = true,
                    Ok((restored, dropped)) => {
                        tracing::info!(
                            restored,
                            dropped,
                            "referral keys: put back those the bucket had never held, dropped the copies of erased ones"
                        );
                        swept = true;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "referral keys not checked against the bucket yet; trying again")
                    }
                }
            }
            let pending = std::mem::take(
                &mut *self
                    .pending
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            if !pending.is_empty() {
                // Put back in `pending` by `follow_log` if it fails again.
                if let Err(e) = self.follow_log(pending, Vec::new()).await {
                    tracing::warn!(error = %e, "referral keys not copied yet");
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
    }

    /// The key of `referral` for sealing: the one it has, or (casework
    /// only) a new one, in the bucket's quorum before this returns.
    ///
    /// # Errors
    /// When the bucket cannot be read or written, the key does not unwrap
    /// (another referral key file); [`NoKey::Erased`] when the referral
    /// service finds the key erased with the case.
    pub async fn for_sealing(&self, referral: Uuid) -> Result<Key, NoKey> {
        let name = referral.to_string();
        let unheld = |e: &dyn std::fmt::Display| {
            format!(
                "the referral's data key is not held by NATS ({e}); nothing was recorded, retry with the same request_id"
            )
        };
        let held = self
            .held(referral)
            .await
            .map_err(|e| NoKey::Unavailable(unheld(&e)))?;
        let store = self.store().await.map_err(NoKey::Unavailable)?;
        let wrapped = match held {
            Some(wrapped) => wrapped,
            None if !self.makes => {
                return Err(NoKey::Erased(format!(
                    "the text of referral {referral} was erased with its case: no more text can be written on it"
                )));
            }
            None => {
                let mine = Key::generate().wrap(&self.master, &wrapping_aad(referral));
                // Bounded as each question ([`ask`]); a create cut short
                // and stored after is found by the retried request, and
                // its key used, never replaced.
                let created = baove_bus::ask(|| store.create(&name, mine.clone().into()))
                    .await
                    .ok_or_else(|| NoKey::Unavailable(unheld(&Unanswered::Silent)))?;
                match created {
                    Ok(_) => mine,
                    // Made meanwhile (a retried request): theirs.
                    Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                        ask(|| store.get(&name))
                            .await
                            .map_err(|e| NoKey::Unavailable(unheld(&e)))?
                            .ok_or_else(|| NoKey::Unavailable(unheld(&"it was erased meanwhile")))?
                            .to_vec()
                    }
                    Err(e) => return Err(NoKey::Unavailable(unheld(&e))),
                }
            }
        };
        // The copy casework's backups carry; durable with the append that
        // follows (the same sled database).
        if self.local.is_some()
            && self
                .local_get(referral)
                .await
                .map_err(NoKey::Unavailable)?
                .as_ref()
                != Some(&wrapped)
        {
            self.local_put(referral, Some(wrapped.clone()))
                .await
                .map_err(NoKey::Unavailable)?;
        }
        Key::unwrap_key(&self.master, &wrapping_aad(referral), &wrapped).map_err(|e| {
            NoKey::Unavailable(format!(
                "the data key of referral {referral} does not unwrap: {e}"
            ))
        })
    }

    /// The key of `referral` (none: erased with its case, or never made).
    ///
    /// # Errors
    /// When the bucket cannot be read, or the key does not unwrap (another
    /// referral key file).
    /// While this process is not connected to NATS it fails at once rather
    /// than wait for NATS (a page of an inbox would otherwise wait once per
    /// referral).
    pub async fn key(&self, referral: Uuid) -> Result<Option<Key>, String> {
        let connected = self.bus.borrow().as_ref().is_some_and(|bus| {
            bus.js.client().connection_state() == async_nats::connection::State::Connected
        });
        if !connected {
            return Err("not connected to NATS".into());
        }
        let Some(wrapped) = self.held(referral).await? else {
            return Ok(None);
        };
        Key::unwrap_key(&self.master, &wrapping_aad(referral), &wrapped)
            .map(Some)
            .map_err(|e| format!("the data key of referral {referral} does not unwrap: {e}"))
    }

    /// The bucket's entry of each of `referrals`: its wrapped key, or an
    /// empty value for one erased; none for one the bucket never held.
    async fn copies_of(&self, referrals: &[Uuid]) -> Result<Vec<(Uuid, Vec<u8>)>, String> {
        let mut found = Vec::new();
        if referrals.is_empty() {
            return Ok(found);
        }
        let store = self.store().await?;
        for referral in referrals {
            let entry = self.entry_in(&store, *referral).await?;
            match entry {
                Some(entry) if entry.operation == kv::Operation::Put => {
                    found.push((*referral, entry.value.to_vec()));
                }
                // Erased: only the fact of it.
                Some(_) => found.push((*referral, Vec::new())),
                None => {}
            }
        }
        Ok(found)
    }

    /// Keeps this process's copy (casework's [`LOCAL_TREE`]) in step with
    /// the case log it follows, one page at a time: takes from the bucket
    /// the wrapped key of each referral in `requested` it holds no copy of
    /// (a standby following the active, a log rebuilt from its stream),
    /// then marks each of `erased` as erased here (an empty copy), so that
    /// this process's backups carry the key of every referral its log
    /// holds and none that the case's erasure destroyed. A key the bucket
    /// says was erased is copied as erased; one the bucket never held is
    /// left to the copy of the process that made it ([`Self::sweep`]). The
    /// active made its copy before it appended the request, so it reads
    /// only sled here.
    ///
    /// A copy the bucket cannot give now (NATS away) does not hold the
    /// caller up: it is taken by [`Self::keep_bucket`] once the bucket
    /// answers, or on the next start, when the read model follows the log
    /// again.
    ///
    /// # Errors
    /// When sled cannot be read or written: the caller tries the page again.
    pub async fn follow_log(&self, requested: Vec<Uuid>, erased: Vec<Uuid>) -> Result<(), String> {
        let Some(tree) = self.local.clone() else {
            return Ok(());
        };
        let missing = {
            let tree = tree.clone();
            tokio::task::spawn_blocking(move || {
                let mut missing = Vec::new();
                for referral in requested {
                    if !missing.contains(&referral)
                        && !tree
                            .contains_key(referral.as_bytes())
                            .map_err(|e| e.to_string())?
                    {
                        missing.push(referral);
                    }
                }
                Ok::<_, String>(missing)
            })
            .await
            .map_err(|e| format!("key task failed: {e}"))??
        };
        let found = match self.copies_of(&missing).await {
            Ok(found) => found,
            Err(e) => {
                // Not worth stopping the read model for: the copies are
                // taken when the bucket answers ([`Self::keep_bucket`]).
                tracing::warn!(error = %e, referrals = missing.len(), "referral keys not copied from the bucket yet; trying again in 5 s");
                self.pending
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .extend(missing);
                Vec::new()
            }
        };
        tokio::task::spawn_blocking(move || {
            for (referral, wrapped) in found {
                // Only where there is no copy yet: an erasure written
                // meanwhile stays.
                tree.compare_and_swap(referral.as_bytes(), None::<&[u8]>, Some(wrapped))
                    .map_err(|e| e.to_string())?
                    .ok();
            }
            for referral in erased {
                tree.insert(referral.as_bytes(), Vec::new())
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        })
        .await
        .map_err(|e| format!("key task failed: {e}"))?
    }

    /// Destroys the key of `referral` (casework, on the erasure of its
    /// case's text): every string sealed under it reads as erased, in
    /// both services.
    ///
    /// # Errors
    /// When the bucket refuses the purge.
    pub async fn destroy(&self, referral: Uuid) -> Result<(), String> {
        let store = self.store().await?;
        match ask(|| store.purge(referral.to_string())).await {
            Ok(_) => {}
            Err(silent @ Unanswered::Silent) => {
                return Err(format!("the purge was not acknowledged: {silent}"));
            }
            Err(Unanswered::Failed(first)) => {
                self.forget().await;
                let store = self.store().await?;
                ask(|| store.purge(referral.to_string()))
                    .await
                    .map_err(|e| format!("the purge was refused: {first}; then {e}"))?;
            }
        }
        self.local_put(referral, None).await
    }
}

#[cfg(test)]
mod tests {
    //! Against a real nats-server and a real sled tree.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use super::*;

    struct Kit {
        nats: baove_testkit::NatsServer,
        js: async_nats::jetstream::Context,
        bus: watch::Receiver<Option<baove_bus::Bus>>,
        master: Key,
        tree: baove_eventlog::SideTree,
        _log: (tempfile::TempDir, baove_eventlog::EventLog),
    }

    /// The local copy's side tree in a log of its own (a process's).
    async fn local_tree() -> (
        baove_eventlog::SideTree,
        (tempfile::TempDir, baove_eventlog::EventLog),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let log = baove_eventlog::EventLog::open(dir.path()).await.unwrap();
        (log.side_tree(LOCAL_TREE).unwrap(), (dir, log))
    }

    async fn kit() -> Kit {
        let nats = baove_testkit::NatsServer::start().unwrap();
        let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
        let (_, bus) = watch::channel(Some(baove_bus::Bus {
            js: js.clone(),
            health: baove_bus::BusHealth::default(),
            replicas: 1,
        }));
        let (tree, log) = local_tree().await;
        Kit {
            nats,
            js,
            bus,
            master: Key::generate(),
            tree,
            _log: log,
        }
    }

    impl Kit {
        fn casework(&self, tree: baove_eventlog::SideTree) -> Arc<ReferralKeys> {
            Arc::new(
                ReferralKeys::new(self.bus.clone(), 1, self.master.clone(), true)
                    .with_local_copy(tree),
            )
        }

        fn referral(&self) -> ReferralKeys {
            ReferralKeys::new(self.bus.clone(), 1, self.master.clone(), false)
        }
    }

    #[tokio::test]
    async fn given_a_key_casework_made_when_the_referral_service_reads_it_then_it_is_the_same_and_it_cannot_make_one()
     {
        let kit = kit().await;
        let casework = kit.casework(kit.tree.clone());
        let id = Uuid::now_v7();
        let key = casework.for_sealing(id).await.unwrap();
        // Asked again (a retried request): the same key.
        assert_eq!(casework.for_sealing(id).await.unwrap().id(), key.id());
        assert_eq!(
            kit.referral().key(id).await.unwrap().unwrap().id(),
            key.id()
        );
        // A key the bucket never held is one it lost, for the referral
        // service: refused (try again), never shown as erased.
        let unknown = Uuid::now_v7();
        let lost = kit.referral().key(unknown).await.unwrap_err();
        assert!(lost.contains("not in the bucket"), "{lost}");
        let refused = kit.referral().for_sealing(unknown).await.unwrap_err();
        assert!(
            matches!(&refused, NoKey::Unavailable(m) if m.contains("not in the bucket")),
            "{refused}"
        );
        // The copy backups carry.
        assert!(kit.tree.get(id.as_bytes()).unwrap().is_some());
    }

    #[tokio::test]
    async fn given_nats_stores_restored_without_the_bucket_when_casework_sweeps_then_its_keys_are_back_but_erased_ones_are_not()
     {
        let kit = kit().await;
        let casework = kit.casework(kit.tree.clone());
        let (kept, erased) = (Uuid::now_v7(), Uuid::now_v7());
        let key = casework.for_sealing(kept).await.unwrap();
        casework.for_sealing(erased).await.unwrap();
        // A standby's copy, made before the erasure.
        let (standby_tree, _standby_log) = local_tree().await;
        for (k, v) in kit.tree.iter().map(Result::unwrap) {
            standby_tree.insert(k, v).unwrap();
        }
        casework.destroy(erased).await.unwrap();
        assert!(kit.referral().key(erased).await.unwrap().is_none());
        // Nothing more is written on an erased referral.
        assert!(matches!(
            kit.referral().for_sealing(erased).await,
            Err(NoKey::Erased(_))
        ));
        // Only the fact of the erasure stays.
        assert!(kit.tree.get(erased.as_bytes()).unwrap().unwrap().is_empty());

        // The standby's sweep drops its copy of the erased key and keeps
        // the other: the bucket's purge marker says which.
        let standby = kit.casework(standby_tree.clone());
        assert_eq!(standby.sweep().await.unwrap(), (0, 1));
        assert!(
            standby_tree
                .get(erased.as_bytes())
                .unwrap()
                .unwrap()
                .is_empty()
        );
        assert!(
            !standby_tree
                .get(kept.as_bytes())
                .unwrap()
                .unwrap()
                .is_empty()
        );
        assert_eq!(standby.sweep().await.unwrap(), (0, 0));

        // The bucket is lost with the NATS stores; casework's copy (as a
        // backup restores it) puts it back, and the referral service reads
        // the same key again.
        kit.js
            .delete_stream(format!("KV_{}", baove_bus::kv::REFERRAL_KEYS.name))
            .await
            .unwrap();
        let restored = kit.casework(kit.tree.clone());
        assert_eq!(restored.sweep().await.unwrap(), (1, 0));
        assert_eq!(
            kit.referral().key(kept).await.unwrap().unwrap().id(),
            key.id()
        );
        // The erased key stays erased: its purge marker is back.
        assert!(kit.referral().key(erased).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn given_a_standby_following_the_log_when_requests_and_an_erasure_pass_then_its_copy_holds_the_keys_and_the_erasure()
     {
        let mut kit = kit().await;
        let active = kit.casework(kit.tree.clone());
        let (kept, erased_before, later) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        active.for_sealing(kept).await.unwrap();
        active.for_sealing(erased_before).await.unwrap();
        active.destroy(erased_before).await.unwrap();
        let (standby_tree, _standby_log) = local_tree().await;
        let standby = kit.casework(standby_tree.clone());
        // A page with the three requests, one of them for a key the bucket
        // never held (made by nobody yet).
        let unknown = Uuid::now_v7();
        standby
            .follow_log(vec![kept, erased_before, unknown], vec![])
            .await
            .unwrap();
        assert_eq!(
            standby_tree.get(kept.as_bytes()).unwrap(),
            kit.tree.get(kept.as_bytes()).unwrap(),
            "the active's wrapped key"
        );
        assert!(
            standby_tree
                .get(erased_before.as_bytes())
                .unwrap()
                .unwrap()
                .is_empty(),
            "an erased key is copied as erased"
        );
        assert!(standby_tree.get(unknown.as_bytes()).unwrap().is_none());

        // A later request, then the case's erasure, in one page.
        active.for_sealing(later).await.unwrap();
        active.destroy(later).await.unwrap();
        standby
            .follow_log(vec![later], vec![kept, later])
            .await
            .unwrap();
        for erased in [kept, later] {
            assert!(
                standby_tree
                    .get(erased.as_bytes())
                    .unwrap()
                    .unwrap()
                    .is_empty()
            );
        }

        // A copy held is never asked of the bucket again: the active
        // follows its own log with NATS gone.
        let fresh = Uuid::now_v7();
        active.for_sealing(fresh).await.unwrap();
        kit.nats.kill();
        active.follow_log(vec![kept, later], vec![]).await.unwrap();
        standby.follow_log(vec![kept], vec![]).await.unwrap();
        // A copy the bucket cannot give now does not hold the standby's
        // read model up: it is taken once NATS is back.
        standby.follow_log(vec![fresh], vec![]).await.unwrap();
        assert!(standby_tree.get(fresh.as_bytes()).unwrap().is_none());
        kit.nats.restart().unwrap();
        let cancel = CancellationToken::new();
        let keeper = tokio::spawn(standby.clone().keep_bucket(cancel.clone()));
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while standby_tree.get(fresh.as_bytes()).unwrap() != kit.tree.get(fresh.as_bytes()).unwrap()
        {
            assert!(std::time::Instant::now() < deadline, "never copied");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        cancel.cancel();
        keeper.await.unwrap();
    }

    #[tokio::test]
    async fn given_nats_gone_when_a_referral_is_read_then_a_key_read_before_still_opens_and_an_unread_one_is_unavailable()
     {
        let mut kit = kit().await;
        let casework = kit.casework(kit.tree.clone());
        let (read_before, never_read) = (Uuid::now_v7(), Uuid::now_v7());
        let key = casework.for_sealing(read_before).await.unwrap();
        let other = casework.for_sealing(never_read).await.unwrap();
        let sealed = |key: &Key, id: Uuid| {
            crate::private::seal_text(
                key,
                baove_eventlog::StreamId::from_uuid(id),
                "reason",
                "không đúng địa bàn",
            )
        };
        let (mut a, mut b) = (sealed(&key, read_before), sealed(&other, never_read));
        let private = crate::private::PrivateText::for_referrals(Arc::new(kit.referral()));
        let mut first = a.clone();
        private
            .open_referral_strings(read_before, vec![("reason", &mut first)])
            .await
            .unwrap();
        assert_eq!(first, "không đúng địa bàn");

        kit.nats.kill();
        private
            .open_referral_strings(read_before, vec![("reason", &mut a)])
            .await
            .unwrap();
        assert_eq!(a, "không đúng địa bàn");
        let refused = private
            .open_referral_strings(never_read, vec![("reason", &mut b)])
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
        assert!(b.starts_with("sealed:"), "nothing opened: {b}");
        // Once the client knows it is disconnected, a read does not wait
        // for NATS.
        let keys = kit.referral();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let refused = keys.key(never_read).await.unwrap_err();
            if refused == "not connected to NATS" {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{refused}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A referral's text read, and a new referral's key asked for, as the
    /// node leading the bucket dies: the read (of a referral read before)
    /// right after the kill and, meanwhile, the new key again 100 ms after
    /// each refusal (as a client sends the request again), until given. Prints
    /// how long after the kill each answered (figures, not asserted:
    /// [`ASK_WITHIN`] says what they were before and after the bucket's
    /// questions were bounded).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn given_referral_keys_in_a_three_node_bucket_when_its_leaders_node_dies_then_a_read_answers_and_a_new_referral_gets_its_key()
     {
        let mut nats = baove_testkit::NatsCluster::start().unwrap();
        let cancel = CancellationToken::new();
        let js = async_nats::jetstream::new(
            baove_bus::connect(&nats.urls(), "referral-keys-failover", &cancel, None)
                .await
                .unwrap(),
        );
        let (_tx, bus) = watch::channel(Some(baove_bus::Bus {
            js: js.clone(),
            health: baove_bus::BusHealth::default(),
            replicas: 3,
        }));
        let (tree, _log) = local_tree().await;
        let master = Key::generate();
        let casework =
            ReferralKeys::new(bus.clone(), 3, master.clone(), true).with_local_copy(tree);
        let private = crate::private::PrivateText::for_referrals(Arc::new(ReferralKeys::new(
            bus,
            3,
            master.clone(),
            false,
        )));
        let before = Uuid::now_v7();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let key = loop {
            match casework.for_sealing(before).await {
                Ok(key) => break key,
                Err(e) => assert!(std::time::Instant::now() < deadline, "no bucket: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let sealed = crate::private::seal_text(
            &key,
            baove_eventlog::StreamId::from_uuid(before),
            "reason",
            "không đúng địa bàn",
        );
        let mut first = sealed.clone();
        private
            .open_referral_strings(before, vec![("reason", &mut first)])
            .await
            .unwrap();
        let bucket = format!("KV_{}", baove_bus::kv::REFERRAL_KEYS.name);
        let leader = baove_testkit::replicas::replicas_current(&js, &bucket)
            .await
            .pop()
            .unwrap();

        nats.node_named(&leader).unwrap().kill();
        let killed = std::time::Instant::now();
        // Both at once, so that neither figure waits for the other.
        let reading = async {
            let mut read = sealed.clone();
            private
                .open_referral_strings(before, vec![("reason", &mut read)])
                .await
                .unwrap();
            assert_eq!(read, "không đúng địa bàn");
            killed.elapsed()
        };
        let referral = Uuid::now_v7();
        let asking = async {
            let mut refused = 0;
            loop {
                match casework.for_sealing(referral).await {
                    Ok(key) => break (key, refused, killed.elapsed()),
                    Err(NoKey::Unavailable(e)) => {
                        assert!(
                            e.contains("nothing was recorded")
                                && killed.elapsed() < Duration::from_secs(60),
                            "{e}"
                        );
                        refused += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        };
        let (read_after, (key, refused, given_after)) = tokio::join!(reading, asking);
        println!(
            "referral keys: a referral's text read {:.2} s after {leader} (the bucket's leader) was killed; a new referral got its key {:.2} s after, after {refused} refusals",
            read_after.as_secs_f64(),
            given_after.as_secs_f64()
        );
        // The key given is the one the bucket holds (a create cut short by
        // the bound and stored after is found, never replaced).
        let wrapped = js
            .get_key_value(baove_bus::kv::REFERRAL_KEYS.name)
            .await
            .unwrap()
            .get(referral.to_string())
            .await
            .unwrap()
            .expect("the bucket holds the referral's key");
        let held = Key::unwrap_key(&master, &wrapping_aad(referral), &wrapped).unwrap();
        assert_eq!(held.id(), key.id());
        cancel.cancel();
    }
}
