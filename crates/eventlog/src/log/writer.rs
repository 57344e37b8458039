//! Opening the database, the writer thread (deciding and writing each
//! group into sled), the sync thread (one write-ahead record per
//! group, one fdatasync per batch of groups) and the checkpoint thread
//! (sled's flush, off the path of the acknowledgements: `log/wal.rs`).

use super::*;
use std::sync::atomic::{AtomicU64, Ordering};

pub(super) enum Job {
    /// An append; `Flush::Shared` lets its flush wait for company
    /// ([`Options::shared_flush_wait`]).
    Append(
        Box<AppendRequest>,
        Flush,
        oneshot::Sender<Result<Appended, Error>>,
    ),
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
    Arc<Mutex<Vec<SideWrite>>>,
);

/// sled's new blob files fsynced, then sled's log file fdatasynced: what
/// makes a sled flush durable (sled's own ends in `sync_file_range`, which
/// neither syncs metadata nor flushes the disk's write cache: sled #1452).
#[derive(Clone)]
pub(crate) struct SledFiles {
    data_file: Arc<File>,
    blobs: Arc<Mutex<super::blobs::Blobs>>,
}

impl SledFiles {
    fn sync_blobs(&self) -> Result<(), String> {
        self.blobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .sync_new()
            .map(drop)
            .map_err(|e| format!("cannot sync sled's blob files: {e}"))
    }

    pub(crate) fn sync(&self) -> Result<(), String> {
        self.sync_blobs()?;
        self.data_file
            .sync_data()
            .map_err(|e| format!("cannot fdatasync sled's file: {e}"))
    }
}

/// Opens sled in `path` and replays into it what the write-ahead files
/// hold past the last checkpoint (`log/wal.rs`): before anything reads the
/// log, sled holds every group that was acknowledged.
pub(crate) fn open_recovered(
    path: &Path,
    cache_capacity: u64,
) -> Result<(Trees, SledFiles, super::wal::Wal), Error> {
    std::fs::create_dir_all(path)?;
    let config = sled::Config::new()
        .path(path)
        // The checkpoints' flushes are the only ones that count; a
        // background flush would add I/O without adding any guarantee.
        .flush_every_ms(None)
        .cache_capacity(cache_capacity);
    let db = open_retrying_lock(&config)?;
    let data_file = Arc::new(File::open(path.join("db"))?);
    File::open(path)?.sync_all()?;
    // What an earlier process left unsynced, before anything reads it as
    // durable.
    let mut blobs = super::blobs::Blobs::new(path);
    blobs.sync_new()?;
    let files = SledFiles {
        data_file,
        blobs: Arc::new(Mutex::new(blobs)),
    };
    let trees = Trees::open(db)?;
    let (wal, replayed) = super::wal::recover(path, &trees, &|| files.sync())?;
    if replayed > 0 {
        tracing::info!(
            path = %path.display(),
            replayed,
            "groups written again from the write-ahead files (the last stop was not a clean close)"
        );
    }
    Ok((trees, files, wal))
}

pub(super) fn open_blocking(path: &Path, options: Options) -> Result<Opened, Error> {
    let (trees, files, wal) = open_recovered(path, options.cache_capacity)?;
    let blobs = files.blobs.clone();
    let last = trees.last_position()?;
    let (jobs, rx) = mpsc::channel(MAX_GROUP);
    let (committed_tx, committed) = watch::channel(last);
    let failed = Arc::new(Mutex::new(None));
    let (to_syncer, from_writer) = std::sync::mpsc::channel();
    let syncs = Arc::new(AtomicU64::new(0));
    let recent = Arc::new(Mutex::new(Recent::default()));
    let side = Arc::new(Mutex::new(Vec::new()));
    let checkpointer = Checkpointer::start(
        trees.db.clone(),
        files.clone(),
        wal.dir().to_owned(),
        failed.clone(),
        options.name,
    )?;
    let mut syncer = Syncer {
        db: trees.db.clone(),
        files,
        wal,
        checkpointer: Some(checkpointer),
        committed: committed_tx,
        failed: failed.clone(),
        syncs: syncs.clone(),
        name: options.name,
        shared_flush_wait: options.shared_flush_wait,
    };
    let syncer = std::thread::Builder::new()
        .name(thread_name(options.name, "sync"))
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
        side: side.clone(),
    };
    let handle = std::thread::Builder::new()
        .name(thread_name(options.name, "write"))
        .spawn(move || {
            writer.run(rx);
            // Dropping the writer closes the syncer's channel: it makes its
            // final checkpoint and ends; wait for it so that the database
            // is released when this thread is joined.
            drop(writer);
            let _ = syncer.join();
        })?;
    Ok((trees, jobs, committed, handle, syncs, recent, blobs, side))
}

/// A log thread's name, `<log>-<role>` (`event-write`, `access-sync`,
/// `event-ckpt`): Linux keeps the first 15 bytes, and `top -H`, `perf` and
/// `/proc/<pid>/task/*/comm` show which log and which of its threads.
fn thread_name(log: &str, role: &str) -> String {
    format!("{log}-{role}")
}

/// The checkpoint thread: makes sled durable for each full write-ahead
/// file handed to it, then deletes the file (`log/wal.rs`).
pub(super) struct Checkpointer {
    to: std::sync::mpsc::SyncSender<super::wal::Full>,
    busy: Arc<std::sync::atomic::AtomicBool>,
    handle: JoinHandle<()>,
}

impl Checkpointer {
    fn start(
        db: sled::Db,
        files: SledFiles,
        dir: PathBuf,
        failed: Arc<Mutex<Option<String>>>,
        name: &str,
    ) -> Result<Self, Error> {
        let (to, from) = std::sync::mpsc::sync_channel::<super::wal::Full>(1);
        let busy = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let under_way = busy.clone();
        let handle = std::thread::Builder::new()
            .name(thread_name(name, "ckpt"))
            .spawn(move || {
                while let Ok(full) = from.recv() {
                    if failure_of(&failed).is_none()
                        && let Err(e) = super::wal::checkpoint(
                            &db,
                            &|| files.sync(),
                            &dir,
                            (full.last, full.last_position),
                            full.generation,
                        )
                    {
                        set_failure(&failed, &format!("checkpoint failed: {e}"));
                    }
                    under_way.store(false, Ordering::Release);
                }
            })?;
        Ok(Self { to, busy, handle })
    }

    /// Hands `full` over unless a checkpoint is still under way.
    fn offer(&self, wal: &mut super::wal::Wal) -> Result<(), String> {
        if self.busy.load(Ordering::Acquire) {
            return Ok(());
        }
        if let Some(full) = wal.rotate()? {
            self.busy.store(true, Ordering::Release);
            self.to
                .send(full)
                .map_err(|_| "the checkpoint thread is gone".to_owned())?;
        }
        Ok(())
    }

    /// Waits for the checkpoint under way, if any, and ends the thread.
    fn finish(self) {
        drop(self.to);
        let _ = self.handle.join();
    }
}

/// The write path, in three threads, so that deciding and writing the next
/// group overlaps with making the previous one durable, and sled's own
/// flushes stay off it:
/// - the writer takes waiting jobs, decides them against sled (which holds
///   every earlier group, durable or not), writes the group into sled
///   (`wal::commit`, in an order every crash leaves recoverable) and hands
///   its writes to the syncer;
/// - the syncer appends every group handed over so far to the write-ahead
///   file, makes them durable with one fdatasync, and only then answers
///   their callers; every few seconds it starts a new file and hands the
///   full one to
/// - the checkpoint thread, which flushes sled and deletes the file.
///
/// After a failed write or flush all refuse everything (`failed`): what
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
    /// Side-tree writes made since the last group (`SideTree`), carried by
    /// the next group's write-ahead record.
    side: Arc<Mutex<Vec<SideWrite>>>,
}

/// One written group, handed from the writer to the syncer.
pub(super) struct Batch {
    done: Vec<Done>,
    /// What the group wrote, for the write-ahead file (none when nothing).
    writes: Option<super::wal::Writes>,
    /// The group wrote events, which must be made durable now.
    wrote: bool,
    /// Nobody waiting on it is in a hurry: every append in it asked for a
    /// shared flush (`Flush::Shared`; inbox records ask for none), and it
    /// imports nothing and closes nothing, so the syncer may wait a little
    /// for other groups to share its flush.
    unhurried: bool,
    /// The last global position written by it and every group before.
    last_position: u64,
    close: Option<oneshot::Sender<Result<(), Error>>>,
}

pub(super) struct Syncer {
    db: sled::Db,
    files: SledFiles,
    wal: super::wal::Wal,
    checkpointer: Option<Checkpointer>,
    committed: watch::Sender<u64>,
    failed: Arc<Mutex<Option<String>>>,
    /// How many times it made groups durable (one fdatasync each).
    syncs: Arc<AtomicU64>,
    /// The metrics' `log` label.
    name: &'static str,
    /// [`Options::shared_flush_wait`].
    shared_flush_wait: std::time::Duration,
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
            // Only unhurried groups to make durable: wait a little for
            // another group to share the fdatasync, and stop waiting as soon
            // as one comes whose callers are in a hurry.
            if batches.iter().any(|b| b.wrote) && batches.iter().all(|b| b.unhurried) {
                let until = std::time::Instant::now() + self.shared_flush_wait;
                while let Some(left) = until.checked_duration_since(std::time::Instant::now())
                    && let Ok(next) = from_writer.recv_timeout(left)
                {
                    batches.push(next);
                    batches.extend(from_writer.try_iter());
                    if batches.iter().any(|b| !b.unhurried) {
                        break;
                    }
                }
            }
            let close_requested = batches.iter().any(|b| b.close.is_some());
            let must_sync = close_requested || batches.iter().any(|b| b.wrote);
            let failure = failure_of(&self.failed).or_else(|| {
                self.write(&mut batches, must_sync)
                    .err()
                    .inspect(|e| set_failure(&self.failed, e))
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
                // The last checkpoint before the close is answered: once
                // closed, sled's files hold the whole log.
                let last = self.finish();
                let _ = reply.send(outcome().and(last));
                return;
            }
            if failure.is_none()
                && self.wal.is_full()
                && let Some(checkpointer) = &self.checkpointer
                && let Err(e) = checkpointer.offer(&mut self.wal)
            {
                set_failure(&self.failed, &e);
            }
        }
        if let Err(e) = self.finish() {
            tracing::error!(error = %e, "event log final checkpoint failed");
        }
    }

    /// Appends the batches' writes to the write-ahead file and, when
    /// `must_sync`, makes them durable: sled's new blob files fsynced (a
    /// record's events may sit in one; `log/blobs.rs`), then one fdatasync
    /// of the file. The error is kept as text because it is reported to
    /// every caller of the groups.
    fn write(&mut self, batches: &mut [Batch], must_sync: bool) -> Result<(), String> {
        for batch in batches.iter_mut() {
            if let Some(writes) = batch.writes.take() {
                self.wal.append(&writes)?;
            }
        }
        if must_sync {
            let started = std::time::Instant::now();
            self.files.sync_blobs()?;
            self.wal.sync()?;
            self.syncs.fetch_add(1, Ordering::Relaxed);
            metrics::histogram!(SYNC_SECONDS, "log" => self.name).record(started.elapsed());
        }
        Ok(())
    }

    /// The last checkpoint (after the one under way): sled's files hold
    /// every group, and no write-ahead file is left.
    fn finish(&mut self) -> Result<(), Error> {
        if let Some(checkpointer) = self.checkpointer.take() {
            checkpointer.finish();
        }
        if let Some(e) = failure_of(&self.failed) {
            return Err(Error::Storage(format!("write failed: {e}")));
        }
        let last = (self.wal.last(), self.wal.last_position());
        let dir = self.wal.dir().to_owned();
        super::wal::checkpoint(&self.db, &|| self.files.sync(), &dir, last, u64::MAX)
            .map_err(|e| Error::Storage(format!("the final checkpoint failed: {e}")))
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
            let mut unhurried = true;
            for job in jobs {
                match job {
                    Job::Append(request, flush, reply) => {
                        unhurried &= flush == Flush::Shared;
                        let result = self.decide(&request, &mut group);
                        done.push(Done::Append(reply, result));
                    }
                    Job::Import(envelopes, reply) => {
                        unhurried = false;
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
            let mut writes = None;
            if !group.is_empty() || self.has_side_writes() {
                match self.commit(&mut group) {
                    Ok(w) => {
                        self.next_position += group.events.len() as u64;
                        // Before the syncer moves the commit watch: a
                        // follower woken for a position finds it here.
                        self.recent
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .extend(std::mem::take(&mut group.envelopes));
                        metrics::counter!(APPENDED, "log" => self.name)
                            .increment(group.events.len() as u64);
                        writes = Some(w);
                    }
                    // Answered by the syncer, which sees the failure.
                    Err(e) => set_failure(&self.failed, &e),
                }
            }
            // Inbox records are answered here, once in sled; they become
            // durable with the next fdatasync, which only a group with
            // events (or the close) asks for.
            for reply in written {
                let _ = reply.send(self.refuse_if_failed());
            }
            let batch = Batch {
                done,
                writes,
                wrote: !group.events.is_empty(),
                unhurried: unhurried && close.is_none(),
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

    fn has_side_writes(&self) -> bool {
        !self
            .side
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_empty()
    }

    /// Writes the whole group into sled (`wal::commit`: after a crash the
    /// write-ahead record completes it, or opening cuts it away when its
    /// record was never written) and returns what it wrote, with the
    /// side-tree writes made since the last group, for the write-ahead
    /// file.
    fn commit(&self, group: &mut Group) -> Result<super::wal::Writes, String> {
        let mut writes = super::wal::Writes {
            events: group
                .events
                .iter_mut()
                .map(|(key, bytes, position, publish)| {
                    (key.to_vec(), std::mem::take(bytes), *position, *publish)
                })
                .collect(),
            heads: group
                .heads
                .iter()
                .map(|(stream, (version, hash))| {
                    (
                        stream.as_bytes().to_vec(),
                        layout::encode_head(*version, *hash).to_vec(),
                    )
                })
                .collect(),
            commands: Vec::with_capacity(group.commands.len()),
            inbox: std::mem::take(&mut group.inbox),
            side: Vec::new(),
        };
        for (id, appended) in &group.commands {
            writes.commands.push((
                id.as_bytes().to_vec(),
                serde_json::to_vec(appended).map_err(|e| e.to_string())?,
            ));
        }
        super::wal::commit(&self.trees, &writes)?;
        // Taken after the group's write, each in sled before it was
        // queued: a replay writes them after the group's events, which for
        // a side tree (keys of its own, no order with the events) is the
        // same state.
        writes.side = std::mem::take(
            &mut *self
                .side
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        Ok(writes)
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
