//! Opening the database, the writer thread (deciding and writing each
//! group in one transaction) and the sync thread (one flush and fdatasync
//! per batch of groups).

use super::*;
use std::sync::atomic::{AtomicU64, Ordering};

pub(super) enum Job {
    Append(Box<AppendRequest>, oneshot::Sender<Result<Appended, Error>>),
    Import(Vec<Envelope>, oneshot::Sender<Result<(), Error>>),
    RecordApplied {
        key: Vec<u8>,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Close(oneshot::Sender<Result<(), Error>>),
}

/// Opens sled, waiting up to 5 s for its file lock: after a log of this
/// process is closed, sled's own I/O threads can hold the database for a
/// moment longer, and a reopen must not fail because of that.
pub(crate) fn open_retrying_lock(config: &sled::Config) -> Result<sled::Db, Error> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match config.open() {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e))
                if e.kind() == std::io::ErrorKind::Other
                    && e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

pub(super) type Opened = (
    Trees,
    mpsc::Sender<Job>,
    watch::Receiver<u64>,
    JoinHandle<()>,
    Arc<AtomicU64>,
    Arc<Mutex<Recent>>,
    Arc<Mutex<super::blobs::Blobs>>,
);

pub(super) fn open_blocking(path: &Path, options: Options) -> Result<Opened, Error> {
    std::fs::create_dir_all(path)?;
    let config = sled::Config::new()
        .path(path)
        // Our own flush after each group is the only one that counts; a
        // background flush would add I/O without adding any guarantee.
        .flush_every_ms(None)
        .cache_capacity(options.cache_capacity);
    let db = open_retrying_lock(&config)?;
    // sled's flush ends in sync_file_range, which neither syncs metadata nor
    // flushes the disk's write cache (sled #1452): fdatasync its log file.
    let data_file = File::open(path.join("db"))?;
    File::open(path)?.sync_all()?;
    // What an earlier process left unsynced, before anything reads it as
    // durable.
    let mut blobs = super::blobs::Blobs::new(path);
    blobs.sync_new()?;
    let blobs = Arc::new(Mutex::new(blobs));
    let trees = Trees::open(db)?;
    let last = trees.last_position()?;
    let (jobs, rx) = mpsc::channel(MAX_GROUP);
    let (committed_tx, committed) = watch::channel(last);
    let failed = Arc::new(Mutex::new(None));
    let (to_syncer, from_writer) = std::sync::mpsc::channel();
    let syncs = Arc::new(AtomicU64::new(0));
    let recent = Arc::new(Mutex::new(Recent::default()));
    let mut syncer = Syncer {
        db: trees.db.clone(),
        data_file,
        committed: committed_tx,
        failed: failed.clone(),
        syncs: syncs.clone(),
        name: options.name,
        blobs: blobs.clone(),
    };
    let syncer = std::thread::Builder::new()
        .name("baove-eventlog-sync".into())
        .spawn(move || syncer.run(&from_writer))?;
    let mut writer = Writer {
        trees: trees.clone(),
        clock: options.clock,
        next_position: last + 1,
        failed,
        to_syncer,
        recent: recent.clone(),
        name: options.name,
        keep_answers: options.keep_answers,
    };
    let handle = std::thread::Builder::new()
        .name("baove-eventlog-writer".into())
        .spawn(move || {
            writer.run(rx);
            // Dropping the writer closes the syncer's channel: it makes its
            // final flush and ends; wait for it so that the database is
            // released when this thread is joined.
            drop(writer);
            let _ = syncer.join();
        })?;
    Ok((trees, jobs, committed, handle, syncs, recent, blobs))
}

/// The write path, in two threads so that deciding and writing the next
/// group overlaps with making the previous one durable:
/// - the writer takes waiting jobs, decides them against sled (which holds
///   every earlier group, durable or not), writes the group in one sled
///   transaction and hands the answers to the syncer;
/// - the syncer takes every group handed over so far, makes them durable
///   with one sled flush + fdatasync, and only then answers their callers.
///
/// After a failed write or flush both refuse everything (`failed`): what
/// reached the disk is then unknown, and no caller may be told otherwise.
pub(super) struct Writer {
    trees: Trees,
    clock: Clock,
    next_position: u64,
    failed: Arc<Mutex<Option<String>>>,
    to_syncer: std::sync::mpsc::Sender<Batch>,
    /// The newest events written, for the tail's readers.
    recent: Arc<Mutex<Recent>>,
    /// The metrics' `log` label.
    name: &'static str,
    /// Whether each append's answer is kept under its command id
    /// ([`Options::keep_answers`]).
    keep_answers: bool,
}

/// One written group, handed from the writer to the syncer.
pub(super) struct Batch {
    done: Vec<Done>,
    /// The group wrote something that must be flushed.
    wrote: bool,
    /// The last global position written by it and every group before.
    last_position: u64,
    close: Option<oneshot::Sender<Result<(), Error>>>,
}

pub(super) struct Syncer {
    db: sled::Db,
    data_file: File,
    committed: watch::Sender<u64>,
    failed: Arc<Mutex<Option<String>>>,
    /// How many flushes (sled flush + fdatasync) it made.
    syncs: Arc<AtomicU64>,
    /// The metrics' `log` label.
    name: &'static str,
    /// sled's blob files, synced before each flush (`log/blobs.rs`).
    blobs: Arc<Mutex<super::blobs::Blobs>>,
}

pub(super) fn failure_of(failed: &Mutex<Option<String>>) -> Option<String> {
    failed
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

pub(super) fn set_failure(failed: &Mutex<Option<String>>, error: &str) {
    let mut slot = failed
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if slot.is_none() {
        tracing::error!(error, "event log write failed; refusing further appends");
        *slot = Some(error.to_owned());
    }
}

impl Syncer {
    fn run(&mut self, from_writer: &std::sync::mpsc::Receiver<Batch>) {
        while let Ok(first) = from_writer.recv() {
            let mut batches = vec![first];
            batches.extend(from_writer.try_iter());
            let close_requested = batches.iter().any(|b| b.close.is_some());
            let must_sync = close_requested || batches.iter().any(|b| b.wrote);
            let failure = failure_of(&self.failed).or_else(|| {
                if must_sync {
                    self.sync().err().inspect(|e| set_failure(&self.failed, e))
                } else {
                    None
                }
            });
            // A fresh error per caller: none may count its append as
            // acknowledged when its group's write or flush failed.
            let outcome = || match &failure {
                None => Ok(()),
                Some(e) => Err(Error::Storage(format!("write failed: {e}"))),
            };
            let last_position = batches.iter().map(|b| b.last_position).max().unwrap_or(0);
            // Published before any caller hears back: a caller that reads
            // `last_position` (or waits on the watch) right after its
            // append is acknowledged must see its own append.
            if failure.is_none() {
                self.committed
                    .send_if_modified(|p| std::mem::replace(p, (*p).max(last_position)) != *p);
            }
            let mut close = None;
            for batch in batches {
                for item in batch.done {
                    match item {
                        Done::Append(reply, result) => {
                            let _ = reply.send(result.and_then(|a| outcome().map(|()| a)));
                        }
                        Done::Record(reply, result) => {
                            let _ = reply.send(result.and_then(|()| outcome()));
                        }
                    }
                }
                if batch.close.is_some() {
                    close = batch.close;
                }
            }
            if let Some(reply) = close {
                let _ = reply.send(outcome());
            }
        }
        if let Err(e) = self.sync() {
            tracing::error!(error = %e, "event log final flush failed");
        }
    }

    /// sled's new blob files fsynced (before the flush makes durable the
    /// log messages that point to them), sled flush, then fdatasync of
    /// sled's log file. The error is kept as text because it is reported
    /// to every caller of the groups.
    fn sync(&self) -> Result<(), String> {
        let started = std::time::Instant::now();
        self.blobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .sync_new()
            .map_err(|e| format!("cannot sync sled's blob files: {e}"))?;
        self.db.flush().map_err(|e| e.to_string())?;
        self.data_file.sync_data().map_err(|e| e.to_string())?;
        self.syncs.fetch_add(1, Ordering::Relaxed);
        metrics::histogram!(SYNC_SECONDS, "log" => self.name).record(started.elapsed());
        Ok(())
    }
}

pub(super) enum Done {
    Append(
        oneshot::Sender<Result<Appended, Error>>,
        Result<Appended, Error>,
    ),
    Record(oneshot::Sender<Result<(), Error>>, Result<(), Error>),
}

/// What one group commit writes, decided append by append against the
/// stored state plus what earlier appends of the same group decided.
#[derive(Default)]
pub(super) struct Group {
    /// (`events` key, envelope bytes, global position, publish)
    events: Vec<([u8; 24], Vec<u8>, u64, bool)>,
    /// The same events, decoded, in the same order.
    envelopes: Vec<Envelope>,
    heads: HashMap<StreamId, (u64, ChainHash)>,
    commands: HashMap<String, Appended>,
    inbox: Vec<Vec<u8>>,
}

impl Group {
    fn is_empty(&self) -> bool {
        self.events.is_empty() && self.inbox.is_empty()
    }
}

impl Writer {
    fn run(&mut self, mut rx: mpsc::Receiver<Job>) {
        let mut close = None;
        while close.is_none() {
            let Some(first) = rx.blocking_recv() else {
                break;
            };
            let mut jobs = vec![first];
            while jobs.len() < MAX_GROUP
                && let Ok(job) = rx.try_recv()
            {
                jobs.push(job);
            }
            let mut group = Group::default();
            let mut done = Vec::with_capacity(jobs.len());
            let mut written = Vec::new();
            for job in jobs {
                match job {
                    Job::Append(request, reply) => {
                        let result = self.decide(&request, &mut group);
                        done.push(Done::Append(reply, result));
                    }
                    Job::Import(envelopes, reply) => {
                        let result = self.decide_import(&envelopes, &mut group);
                        done.push(Done::Record(reply, result));
                    }
                    // Answered once written, without waiting for the
                    // flush (see `EventLog::record_applied`).
                    Job::RecordApplied { key, reply } => match self.refuse_if_failed() {
                        Ok(()) => {
                            group.inbox.push(key);
                            written.push(reply);
                        }
                        Err(e) => done.push(Done::Record(reply, Err(e))),
                    },
                    // Jobs after a Close in the same group are answered
                    // too; later ones find the channel closed.
                    Job::Close(reply) => close = Some(reply),
                }
            }
            #[allow(clippy::cast_precision_loss)]
            metrics::histogram!(GROUP_SIZE, "log" => self.name)
                .record((done.len() + written.len()) as f64);
            if !group.is_empty() {
                match self.commit(&group) {
                    Ok(()) => {
                        self.next_position += group.events.len() as u64;
                        // Before the syncer moves the commit watch: a
                        // follower woken for a position finds it here.
                        self.recent
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .extend(std::mem::take(&mut group.envelopes));
                        metrics::counter!(APPENDED, "log" => self.name)
                            .increment(group.events.len() as u64);
                    }
                    // Answered by the syncer, which sees the failure.
                    Err(e) => set_failure(&self.failed, &e),
                }
            }
            // Inbox records are answered here, once in sled; they become
            // durable with the next flush, which only a group with events
            // (or the close) asks for.
            for reply in written {
                let _ = reply.send(self.refuse_if_failed());
            }
            let batch = Batch {
                done,
                wrote: !group.events.is_empty(),
                last_position: self.next_position - 1,
                close: close.take(),
            };
            let closing = batch.close.is_some();
            if self.to_syncer.send(batch).is_err() || closing {
                break;
            }
        }
        rx.close();
    }

    /// Writes the whole group in one sled transaction: after a crash either
    /// all of it is there or none, across every tree.
    fn commit(&self, group: &Group) -> Result<(), String> {
        let t = &self.trees;
        let heads: Vec<([u8; 16], [u8; 40])> = group
            .heads
            .iter()
            .map(|(stream, (version, hash))| {
                (*stream.as_bytes(), layout::encode_head(*version, *hash))
            })
            .collect();
        let mut commands = Vec::with_capacity(group.commands.len());
        for (id, appended) in &group.commands {
            commands.push((
                id.as_bytes(),
                serde_json::to_vec(appended).map_err(|e| e.to_string())?,
            ));
        }
        (
            &t.events,
            &t.global,
            &t.heads,
            &t.commands,
            &t.outbox,
            &t.inbox,
        )
            .transaction(
                |(events, global, heads_tree, commands_tree, outbox, inbox)| {
                    for (key, bytes, position, publish) in &group.events {
                        let position = position.to_be_bytes();
                        events.insert(&key[..], bytes.as_slice())?;
                        global.insert(&position[..], &key[..])?;
                        if *publish {
                            outbox.insert(&position[..], &key[..])?;
                        }
                    }
                    for (stream, head) in &heads {
                        heads_tree.insert(&stream[..], &head[..])?;
                    }
                    for (id, record) in &commands {
                        commands_tree.insert(*id, record.as_slice())?;
                    }
                    for key in &group.inbox {
                        inbox.insert(key.as_slice(), &[][..])?;
                    }
                    Ok(())
                },
            )
            .map_err(|e: sled::transaction::TransactionError<()>| format!("{e:?}"))
    }

    fn refuse_if_failed(&self) -> Result<(), Error> {
        match &failure_of(&self.failed) {
            Some(reason) => Err(Error::Storage(format!(
                "log stopped after a failed write: {reason}"
            ))),
            None => Ok(()),
        }
    }

    /// Checks that `envelopes` continue the log (stored state plus the group
    /// so far) and adds them to the group; on the first that does not,
    /// adds nothing.
    fn decide_import(&self, envelopes: &[Envelope], group: &mut Group) -> Result<(), Error> {
        self.refuse_if_failed()?;
        let t = &self.trees;
        let mut heads: HashMap<StreamId, (u64, ChainHash)> = HashMap::new();
        let mut commands: HashMap<String, Appended> = HashMap::new();
        let mut rows = Vec::with_capacity(envelopes.len());
        let first = self.next_position + group.events.len() as u64;
        for (position, e) in (first..).zip(envelopes) {
            let at = |rule: String| {
                Error::Corrupt(format!(
                    "event at global position {} ({} seq {}): {rule}",
                    e.global_position, e.stream_id, e.seq
                ))
            };
            if e.global_position != position {
                return Err(at(format!("the log's next position is {position}")));
            }
            let (version, prev) = match heads.get(&e.stream_id).or(group.heads.get(&e.stream_id)) {
                Some(head) => *head,
                None => t
                    .head(e.stream_id)?
                    .map_or((0, ChainHash::GENESIS), |h| (h.version, h.hash)),
            };
            if e.seq != version + 1 {
                return Err(at(format!("the stream's next seq is {}", version + 1)));
            }
            if e.prev_hash != prev {
                return Err(at("prev_hash is not the stream's head hash".into()));
            }
            if e.compute_hash() != e.hash {
                return Err(at("hash does not match the event's content".into()));
            }
            if self.keep_answers && !e.command_id.is_empty() {
                let known = match commands
                    .get(&e.command_id)
                    .or(group.commands.get(&e.command_id))
                {
                    Some(a) => Some(a.clone()),
                    None => t
                        .commands
                        .get(e.command_id.as_bytes())?
                        .map(|stored| {
                            serde_json::from_slice::<Appended>(&stored).map_err(|err| {
                                Error::Corrupt(format!("command record {}: {err}", e.command_id))
                            })
                        })
                        .transpose()?,
                };
                match known {
                    // The command's next event: its answer grows.
                    Some(mut a)
                        if a.stream == e.stream_id && a.last_position + 1 == e.global_position =>
                    {
                        a.last_seq = e.seq;
                        a.last_position = e.global_position;
                        a.head_hash = e.hash;
                        commands.insert(e.command_id.clone(), a);
                    }
                    Some(_) => {}
                    None => {
                        commands.insert(
                            e.command_id.clone(),
                            Appended {
                                stream: e.stream_id,
                                first_seq: e.seq,
                                last_seq: e.seq,
                                first_position: e.global_position,
                                last_position: e.global_position,
                                head_hash: e.hash,
                                replayed: false,
                            },
                        );
                    }
                }
            }
            heads.insert(e.stream_id, (e.seq, e.hash));
            rows.push((
                layout::event_key(e.stream_id, e.seq),
                e.encode_stored()?,
                e.global_position,
                false,
            ));
        }
        group.events.extend(rows);
        group.envelopes.extend(envelopes.iter().cloned());
        group.heads.extend(heads);
        group.commands.extend(commands);
        Ok(())
    }

    /// Decides one append against the stored state and the group so far;
    /// adds its writes to the group when accepted.
    fn decide(&self, request: &AppendRequest, group: &mut Group) -> Result<Appended, Error> {
        self.refuse_if_failed()?;
        validate(request)?;
        let t = &self.trees;
        let known = match group.commands.get(&request.command_id) {
            Some(first) => Some(first.clone()),
            None if !self.keep_answers => None,
            None => t
                .commands
                .get(request.command_id.as_bytes())?
                .map(|stored| {
                    serde_json::from_slice::<Appended>(&stored).map_err(|e| {
                        Error::Corrupt(format!("command record {}: {e}", request.command_id))
                    })
                })
                .transpose()?,
        };
        if let Some(mut first) = known {
            if first.stream != request.stream {
                return Err(Error::CommandIdReused {
                    command_id: request.command_id.clone(),
                    stream: first.stream,
                });
            }
            first.replayed = true;
            return Ok(first);
        }
        let (version, mut prev) = match group.heads.get(&request.stream) {
            Some(head) => *head,
            None => t
                .head(request.stream)?
                .map_or((0, ChainHash::GENESIS), |h| (h.version, h.hash)),
        };
        let ok = match request.expected {
            ExpectedVersion::NoStream => version == 0,
            ExpectedVersion::Exact(v) => version == v,
            ExpectedVersion::Any => true,
        };
        if !ok {
            return Err(Error::Conflict {
                stream: request.stream,
                expected: request.expected.to_string(),
                current: version,
            });
        }
        let recorded_at_ms = (self.clock)();
        let first_position = self.next_position + group.events.len() as u64;
        let mut rows = Vec::with_capacity(request.events.len());
        let mut decoded = Vec::with_capacity(request.events.len());
        for (i, event) in (0u64..).zip(&request.events) {
            let mut envelope = Envelope {
                event_id: Uuid::now_v7(),
                stream_id: request.stream,
                seq: version + 1 + i,
                global_position: first_position + i,
                event_type: event.event_type.clone(),
                schema_version: event.schema_version,
                recorded_at_ms,
                actor: request.actor.clone(),
                command_id: request.command_id.clone(),
                causation_id: request.causation_id.clone(),
                correlation_id: request.correlation_id.clone(),
                payload: event.payload.clone(),
                prev_hash: prev,
                hash: ChainHash::GENESIS,
            };
            envelope.hash = envelope.compute_hash();
            prev = envelope.hash;
            rows.push((
                layout::event_key(request.stream, envelope.seq),
                envelope.encode_stored()?,
                envelope.global_position,
                request.publish,
            ));
            decoded.push(envelope);
        }
        let count = rows.len() as u64;
        let appended = Appended {
            stream: request.stream,
            first_seq: version + 1,
            last_seq: version + count,
            first_position,
            last_position: first_position + count - 1,
            head_hash: prev,
            replayed: false,
        };
        group.events.extend(rows);
        group.envelopes.extend(decoded);
        group
            .heads
            .insert(request.stream, (appended.last_seq, prev));
        if self.keep_answers {
            group
                .commands
                .insert(request.command_id.clone(), appended.clone());
        }
        Ok(appended)
    }
}

pub(super) fn validate(request: &AppendRequest) -> Result<(), Error> {
    let short = |field: &'static str, value: &str, required: bool| {
        if required && value.is_empty() {
            return Err(Error::InvalidArgument {
                field,
                rule: "is required".into(),
            });
        }
        if value.len() > MAX_FIELD_BYTES {
            return Err(Error::InvalidArgument {
                field,
                rule: format!("must be at most {MAX_FIELD_BYTES} bytes"),
            });
        }
        Ok(())
    };
    short("command_id", &request.command_id, true)?;
    short("actor.user_id", &request.actor.user_id, true)?;
    short("actor.role", &request.actor.role, true)?;
    short("actor.agency_id", &request.actor.agency_id, false)?;
    short("causation_id", &request.causation_id, false)?;
    short("correlation_id", &request.correlation_id, false)?;
    if request.events.is_empty() || request.events.len() > MAX_EVENTS_PER_APPEND {
        return Err(Error::InvalidArgument {
            field: "events",
            rule: format!("must hold 1 to {MAX_EVENTS_PER_APPEND} events"),
        });
    }
    Ok(())
}
