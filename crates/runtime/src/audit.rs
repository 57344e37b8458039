//! `baove.v1.AuditService` over a service's own event log, and the
//! envelope → proto conversion.

use baove_eventlog::{Envelope, EventLog, Head, StreamId, Verification};
use baove_proto::v1::{
    self, Direction, ReadAllRequest, ReadAllResponse, ReadStreamRequest, ReadStreamResponse,
    StreamHead, VerifyStreamRequest, VerifyStreamResponse, audit_service_server::AuditService,
};

use tonic::{Request, Response, Status};

use crate::auth::caller;
use baove_audit::access::{ACCESS_STREAM, AccessEntry, AccessLog};
use baove_audit::checkpointer::Checkpointer;
use std::sync::Arc;

use crate::private::PrivateText;
use crate::status::from_log;
use baove_audit::checkpoint::{checkpoint_to_proto, envelope_to_proto};

/// Serves `AuditService` on one event log.
#[derive(Clone)]
pub struct AuditApi {
    log: EventLog,
    access: AccessLog,
    checkpoints: Checkpointer,
    side_trees: &'static [&'static str],
    private: Option<Arc<PrivateText>>,
}

/// The `format` of a backup's manifest.
pub const BACKUP_FORMAT: &str = "baove-backup/1";

/// Events per page of a backup.
const BACKUP_PAGE: usize = 500;

impl AuditApi {
    /// The API over `log`, recording reads in `access`, signing with
    /// `checkpoints`.
    #[must_use]
    pub const fn new(log: EventLog, access: AccessLog, checkpoints: Checkpointer) -> Self {
        Self {
            log,
            access,
            checkpoints,
            side_trees: &[],
            private: None,
        }
    }

    /// The same API, with the private text of a case's history opened by
    /// `private` for StreamHistory (casework's cases).
    #[must_use]
    pub fn with_private(mut self, private: Option<Arc<PrivateText>>) -> Self {
        self.private = private;
        self
    }

    /// The same API, with `trees` copied into backups.
    #[must_use]
    pub const fn with_side_trees(mut self, trees: &'static [&'static str]) -> Self {
        self.side_trees = trees;
        self
    }

    /// The tonic service, ready for `add_service`.
    #[must_use]
    pub fn into_server(self) -> v1::audit_service_server::AuditServiceServer<Self> {
        v1::audit_service_server::AuditServiceServer::new(self)
    }
}

fn head_to_proto(head: &Head) -> StreamHead {
    StreamHead {
        stream_id: head.stream.to_string(),
        version: head.version,
        hash: head.hash.0.to_vec(),
    }
}

fn limit(requested: u32) -> Result<usize, Status> {
    crate::request::page_size("limit", requested)
}

/// The events of `stream` in `log` up to the moment `as_of` names (the
/// event with that seq, or every event recorded at or before that
/// instant; all when `None`), and the moment in words for messages.
///
/// # Errors
/// UNAVAILABLE when the log cannot be read.
pub async fn events_as_of(
    log: &EventLog,
    stream: StreamId,
    as_of: Option<v1::replay_case_request::AsOf>,
) -> Result<(Vec<Envelope>, String), Status> {
    let mut events = Vec::new();
    let mut from = 1;
    loop {
        let page = log
            .read_stream(stream, from, 1000)
            .await
            .map_err(|e| from_log(&e))?;
        let Some(last) = page.last() else { break };
        from = last.seq + 1;
        events.extend(page);
    }
    let (cut, moment) = match as_of {
        None => (events.len(), "now".to_owned()),
        Some(v1::replay_case_request::AsOf::AsOfSeq(seq)) => (
            events.iter().take_while(|e| e.seq <= seq).count(),
            format!("seq {seq}"),
        ),
        Some(v1::replay_case_request::AsOf::AsOfTime(at)) => {
            let at_ms = crate::unix_ms(&at);
            // recorded_at never decreases along a stream: the writer stamps
            // each append after the ones before it.
            (
                events
                    .iter()
                    .take_while(|e| e.recorded_at_ms <= at_ms)
                    .count(),
                at.to_string(),
            )
        }
    };
    events.truncate(cut);
    Ok((events, moment))
}

impl AuditApi {
    /// The log holding `stream`: the access log's own database for
    /// [`ACCESS_STREAM`], the service's log for every other stream.
    fn log_of(&self, stream: StreamId) -> &EventLog {
        if stream == ACCESS_STREAM {
            self.access.log()
        } else {
            &self.log
        }
    }
}

fn stream_id(text: &str) -> Result<StreamId, Status> {
    StreamId::parse("stream_id", text).map_err(|e| from_log(&e))
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    type BackupStream = tokio_stream::wrappers::ReceiverStream<Result<v1::BackupResponse, Status>>;

    async fn backup(
        &self,
        request: Request<v1::BackupRequest>,
    ) -> Result<Response<Self::BackupStream>, Status> {
        use v1::backup_response::Part;
        let permit = crate::limits::open_stream(&request)?;
        let caller = caller(&request)?;
        self.access
            .read(&caller, "AuditService/Backup", None, "log")
            .await?;
        let taken_at_unix_ms = self.checkpoints.now_ms();
        // Signed at the log's position now: the copy ends exactly there.
        let checkpoint = self
            .checkpoints
            .sign_now()
            .await
            .map_err(|e| from_log(&e))?;
        let end = checkpoint.global_position;
        let manifest = v1::BackupManifest {
            format: BACKUP_FORMAT.to_owned(),
            service: checkpoint.service.clone(),
            checkpoint: Some(checkpoint_to_proto(&checkpoint)),
            taken_at_unix_ms,
        };
        let log = self.log.clone();
        let side_trees = self.side_trees;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let _permit = permit;
            let send = |part| {
                let tx = tx.clone();
                async move {
                    tx.send(Ok(v1::BackupResponse { part: Some(part) }))
                        .await
                        .is_ok()
                }
            };
            if !send(Part::Manifest(manifest)).await {
                return;
            }
            let mut next = 1;
            while next <= end {
                let want =
                    usize::try_from(end - next + 1).map_or(BACKUP_PAGE, |n| n.min(BACKUP_PAGE));
                let page = match log.read_all(next, want).await {
                    Ok(page) if !page.is_empty() => page,
                    Ok(_) => {
                        let _ = tx
                            .send(Err(Status::data_loss(format!(
                                "the log ends before position {next}, which its checkpoint covers"
                            ))))
                            .await;
                        return;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(from_log(&e))).await;
                        return;
                    }
                };
                next += page.len() as u64;
                // In messages a client accepts (a page of large events
                // would pass its limit and end the backup).
                let mut events: Vec<_> = page.iter().map(envelope_to_proto).collect();
                while !events.is_empty() {
                    let rest = events.split_off(crate::request::fitting(&events));
                    if !send(Part::Events(v1::BackupEvents { events })).await {
                        return;
                    }
                    events = rest;
                }
            }
            let mut side_entries = 0u64;
            for name in side_trees {
                let tree = match log.side_tree(name) {
                    Ok(tree) => tree,
                    Err(e) => {
                        let _ = tx.send(Err(from_log(&e))).await;
                        return;
                    }
                };
                let (entries_tx, mut entries) = tokio::sync::mpsc::channel(256);
                let reader = tokio::task::spawn_blocking(move || {
                    for item in tree.iter() {
                        let entry = item.map_err(|e| e.to_string());
                        let failed = entry.is_err();
                        if entries_tx.blocking_send(entry).is_err() || failed {
                            return;
                        }
                    }
                });
                while let Some(entry) = entries.recv().await {
                    let (key, value) = match entry {
                        Ok(entry) => entry,
                        Err(e) => {
                            let _ = tx
                                .send(Err(Status::unavailable(format!(
                                    "cannot read the side tree {name}: {e}"
                                ))))
                                .await;
                            return;
                        }
                    };
                    side_entries += 1;
                    let entry = v1::BackupSideEntry {
                        tree: (*name).to_owned(),
                        key: key.to_vec(),
                        value: value.to_vec(),
                    };
                    if !send(Part::SideEntry(entry)).await {
                        return;
                    }
                }
                let _ = reader.await;
            }
            tracing::info!(events = end, side_entries, "backup sent");
            let _ = send(Part::End(v1::BackupEnd {
                events: end,
                side_entries,
            }))
            .await;
        });
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }

    type VerifyAllStream =
        tokio_stream::wrappers::ReceiverStream<Result<v1::VerifyAllResponse, Status>>;

    async fn verify_all(
        &self,
        request: Request<v1::VerifyAllRequest>,
    ) -> Result<Response<Self::VerifyAllStream>, Status> {
        let permit = crate::limits::open_stream(&request)?;
        let log = self.log.clone();
        let checkpoints = self.checkpoints.clone();
        let total = log.stream_count().await.map_err(|e| from_log(&e))? as u64;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            let _permit = permit;
            let mut checked = 0u64;
            let mut after = None;
            let mut broken = Vec::new();
            loop {
                let heads = match log.heads(after, 100).await {
                    Ok(heads) => heads,
                    Err(e) => {
                        let _ = tx.send(Err(from_log(&e))).await;
                        return;
                    }
                };
                let Some(last) = heads.last() else { break };
                after = Some(last.stream);
                for head in &heads {
                    checked += 1;
                    match log.verify(head.stream).await {
                        Ok(Verification::Broken {
                            first_bad_seq,
                            reason,
                        }) => {
                            tracing::error!(stream = %head.stream, first_bad_seq, reason, "hash chain does not verify");
                            count_broken_chain();
                            broken.push(v1::BrokenStream {
                                stream_id: head.stream.to_string(),
                                first_bad_seq,
                                reason,
                            });
                        }
                        Ok(_) => {}
                        Err(e) => {
                            let _ = tx.send(Err(from_log(&e))).await;
                            return;
                        }
                    }
                }
                let progress = v1::VerifyAllResponse {
                    checked,
                    total,
                    broken: std::mem::take(&mut broken),
                    done: false,
                    kept_checkpoint_problem: String::new(),
                };
                if tx.send(Ok(progress)).await.is_err() {
                    return;
                }
            }
            // The log against the checkpoint kept outside its sled files.
            let kept_checkpoint_problem = match checkpoints.check_kept().await {
                Ok(_) => String::new(),
                Err(problem) => {
                    tracing::error!(error = %format!("{problem:#}"), "the log does not match its kept checkpoint");
                    format!("{problem:#}")
                }
            };
            let _ = tx
                .send(Ok(v1::VerifyAllResponse {
                    checked,
                    total,
                    broken,
                    done: true,
                    kept_checkpoint_problem,
                }))
                .await;
        });
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }

    async fn read_stream(
        &self,
        request: Request<ReadStreamRequest>,
    ) -> Result<Response<ReadStreamResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let stream = stream_id(&request.stream_id)?;
        let limit = limit(request.limit)?;
        self.access
            .read(
                &caller,
                "AuditService/ReadStream",
                Some(*stream.as_uuid()),
                &format!("stream:{stream}"),
            )
            .await?;
        let log = self.log_of(stream);
        let head = log
            .head(stream)
            .await
            .map_err(|e| from_log(&e))?
            .ok_or_else(|| Status::not_found(format!("stream {stream} has no events")))?;
        let events = match request.direction() {
            Direction::Backward => {
                let from = (request.from_seq != 0).then_some(request.from_seq);
                log.read_stream_backward(stream, from, limit).await
            }
            Direction::Unspecified | Direction::Forward => {
                log.read_stream(stream, request.from_seq, limit).await
            }
        }
        .map_err(|e| from_log(&e))?;
        let mut events: Vec<_> = events.iter().map(envelope_to_proto).collect();
        // A page past what a client accepts ends early: the reader goes on
        // from its last seq (the head says where the stream ends).
        events.truncate(crate::request::fitting(&events));
        Ok(Response::new(ReadStreamResponse {
            events,
            head: Some(head_to_proto(&head)),
        }))
    }

    async fn read_all(
        &self,
        request: Request<ReadAllRequest>,
    ) -> Result<Response<ReadAllResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        self.access
            .read(&caller, "AuditService/ReadAll", None, "log")
            .await?;
        let limit = limit(request.limit)?;
        let last_position = self.log.last_position();
        let from = request.from_position.max(1);
        let events = self
            .log
            .read_all(from, limit)
            .await
            .map_err(|e| from_log(&e))?;
        let mut events: Vec<_> = events.iter().map(envelope_to_proto).collect();
        // A page past what a client accepts ends early: next_position says
        // where to go on.
        events.truncate(crate::request::fitting(&events));
        let next_position = events.last().map_or(from, |e| e.global_position + 1);
        Ok(Response::new(ReadAllResponse {
            events,
            next_position,
            last_position,
        }))
    }

    type StreamHistoryStream =
        tokio_stream::wrappers::ReceiverStream<Result<v1::StreamHistoryResponse, Status>>;

    async fn stream_history(
        &self,
        request: Request<v1::StreamHistoryRequest>,
    ) -> Result<Response<Self::StreamHistoryStream>, Status> {
        let caller = caller(&request)?;
        let permit = crate::limits::open_stream(&request)?;
        let request = request.into_inner();
        let stream = StreamId::parse("case_id", &request.case_id).map_err(|e| from_log(&e))?;
        if self
            .log
            .head(stream)
            .await
            .map_err(|e| from_log(&e))?
            .is_none()
        {
            return Err(Status::not_found(format!("case {stream} has no events")));
        }
        self.access
            .read(
                &caller,
                "AuditService/StreamHistory",
                Some(*stream.as_uuid()),
                &format!("case:{stream}"),
            )
            .await?;
        let private = self.private.clone();
        let rx = crate::history::tail(
            self.log.clone(),
            crate::history::OneStream {
                stream,
                private: self.private.clone(),
                item: move |event: &baove_eventlog::Envelope| {
                    Ok(v1::StreamHistoryResponse {
                        event: Some(envelope_to_proto(event)),
                        case_event: crate::history::case_event_for_reader(
                            event,
                            private.as_deref(),
                        )?,
                    })
                },
            },
            request.from_seq,
            crate::history::Until::End,
            permit,
        );
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }

    async fn list_access(
        &self,
        request: Request<v1::ListAccessRequest>,
    ) -> Result<Response<v1::ListAccessResponse>, Status> {
        let request = request.into_inner();
        let limit = limit(request.limit)?;
        let case = match request.case_id.trim() {
            "" => None,
            text => Some(*stream_id(text)?.as_uuid()),
        };
        let user = request.user_id.trim().to_owned();
        let mut entries = Vec::new();
        let mut from = (request.before_seq > 0).then(|| request.before_seq - 1);
        if from == Some(0) {
            return Ok(Response::new(v1::ListAccessResponse::default()));
        }
        // The access log is one stream: scanned backward and filtered. A
        // province's reads fit; an index per case and user would come with
        // a projection if it ever does not.
        let mut next_before_seq = 0;
        'scan: loop {
            let page = self
                .access
                .log()
                .read_stream_backward(ACCESS_STREAM, from, 1000)
                .await
                .map_err(|e| from_log(&e))?;
            let Some(last) = page.last() else { break };
            for event in &page {
                let Ok(entry) = serde_json::from_str::<AccessEntry>(&event.payload) else {
                    continue;
                };
                if case.is_some_and(|c| entry.case_id != Some(c))
                    || (!user.is_empty() && event.actor.user_id != user)
                {
                    continue;
                }
                if entries.len() == limit {
                    next_before_seq = event.seq + 1;
                    break 'scan;
                }
                entries.push(v1::AccessEntry {
                    seq: event.seq,
                    actor: Some(v1::Actor {
                        user_id: event.actor.user_id.clone(),
                        role: event.actor.role.clone(),
                        agency_id: event.actor.agency_id.clone(),
                    }),
                    recorded_at_unix_ms: event.recorded_at_ms,
                    outcome: entry.outcome,
                    rpc: entry.rpc,
                    case_id: entry.case_id.map(|c| c.to_string()).unwrap_or_default(),
                    subject: entry.subject,
                    purpose: entry.purpose,
                    reason: entry.reason,
                });
            }
            match last.seq.checked_sub(1).filter(|s| *s > 0) {
                Some(seq) => from = Some(seq),
                None => break,
            }
        }
        Ok(Response::new(v1::ListAccessResponse {
            entries,
            next_before_seq,
        }))
    }

    async fn get_checkpoint(
        &self,
        request: Request<v1::GetCheckpointRequest>,
    ) -> Result<Response<v1::GetCheckpointResponse>, Status> {
        let checkpoint = if request.into_inner().fresh {
            self.checkpoints
                .sign_now()
                .await
                .map_err(|e| from_log(&e))?
        } else {
            self.checkpoints
                .latest()
                .await
                .map_err(|e| from_log(&e))?
                .ok_or_else(|| Status::not_found("no checkpoint signed yet: ask with fresh"))?
        };
        let witnessed = self.checkpoints.witnessed().await.map_err(|e| {
            tracing::error!(error = %format!("{e:#}"), "cannot read the witnessed checkpoint");
            Status::internal(format!("{e:#}"))
        })?;
        Ok(Response::new(v1::GetCheckpointResponse {
            checkpoint: Some(checkpoint_to_proto(&checkpoint)),
            witnessed: witnessed.as_ref().map(checkpoint_to_proto),
        }))
    }

    async fn prove_inclusion(
        &self,
        request: Request<v1::ProveInclusionRequest>,
    ) -> Result<Response<v1::ProveInclusionResponse>, Status> {
        let v1::ProveInclusionRequest {
            position,
            tree_size,
        } = request.into_inner();
        let tree_size = if tree_size == 0 {
            self.log.last_position()
        } else {
            tree_size
        };
        let hashes = self
            .log
            .prove_inclusion(position, tree_size)
            .await
            .map_err(|e| from_log(&e))?;
        let event = self
            .log
            .read_all(position, 1)
            .await
            .map_err(|e| from_log(&e))?
            .into_iter()
            .find(|e| e.global_position == position)
            .ok_or_else(|| Status::not_found(format!("no event at position {position}")))?;
        Ok(Response::new(v1::ProveInclusionResponse {
            tree_size,
            hashes: hashes.iter().map(|h| h.0.to_vec()).collect(),
            event: Some(envelope_to_proto(&event)),
        }))
    }

    async fn prove_consistency(
        &self,
        request: Request<v1::ProveConsistencyRequest>,
    ) -> Result<Response<v1::ProveConsistencyResponse>, Status> {
        let v1::ProveConsistencyRequest { old_size, new_size } = request.into_inner();
        let hashes = self
            .log
            .prove_consistency(old_size, new_size)
            .await
            .map_err(|e| from_log(&e))?;
        Ok(Response::new(v1::ProveConsistencyResponse {
            hashes: hashes.iter().map(|h| h.0.to_vec()).collect(),
        }))
    }

    async fn add_cosignature(
        &self,
        request: Request<v1::AddCosignatureRequest>,
    ) -> Result<Response<v1::AddCosignatureResponse>, Status> {
        let checkpoint = request
            .into_inner()
            .checkpoint
            .ok_or_else(|| Status::invalid_argument("checkpoint: required"))?;
        let checkpoint = baove_audit::checkpoint::checkpoint_from_proto(&checkpoint);
        let tree_size = self
            .checkpoints
            .add_cosignature(&checkpoint)
            .await
            .map_err(|problem| {
                tracing::warn!(%problem, "a witnessed checkpoint was refused");
                Status::failed_precondition(format!("checkpoint: {problem}"))
            })?;
        Ok(Response::new(v1::AddCosignatureResponse { tree_size }))
    }

    async fn export_case(
        &self,
        request: Request<v1::ExportCaseRequest>,
    ) -> Result<Response<v1::ExportCaseResponse>, Status> {
        use baove_audit::checkpoint::{BUNDLE_FORMAT, Bundle};
        let caller = caller(&request)?;
        let stream =
            StreamId::parse("case_id", &request.into_inner().case_id).map_err(|e| from_log(&e))?;
        self.access
            .read(
                &caller,
                "AuditService/ExportCase",
                Some(*stream.as_uuid()),
                &format!("case:{stream}"),
            )
            .await?;
        let mut events = Vec::new();
        let mut from = 1;
        loop {
            let page = self
                .log
                .read_stream(stream, from, 1000)
                .await
                .map_err(|e| from_log(&e))?;
            let Some(last) = page.last() else { break };
            from = last.seq + 1;
            events.extend(page);
        }
        let Some(last_position) = events.last().map(|e| e.global_position) else {
            return Err(Status::not_found(format!("stream {stream} has no events")));
        };
        // The newest witnessed checkpoint when it covers the whole stream
        // (the auditor can then check the witnesses too), else a fresh one.
        let witnessed = self.checkpoints.witnessed().await.ok().flatten();
        let checkpoint = match witnessed {
            Some(w) if w.tree_size >= last_position && !w.note.is_empty() => w,
            _ => self
                .checkpoints
                .sign_now()
                .await
                .map_err(|e| from_log(&e))?,
        };
        events.retain(|e| e.global_position <= checkpoint.tree_size);
        let mut proofs = Vec::with_capacity(events.len());
        for event in &events {
            let proof = self
                .log
                .prove_inclusion(event.global_position, checkpoint.tree_size)
                .await
                .map_err(|e| from_log(&e))?;
            proofs.push(proof.iter().map(|h| hex::encode(h.0)).collect());
        }
        let bundle = Bundle {
            format: BUNDLE_FORMAT.to_owned(),
            stream_id: stream.to_string(),
            events,
            checkpoint,
            proofs,
        };
        let bundle_json = serde_json::to_vec_pretty(&bundle)
            .map_err(|e| Status::internal(format!("cannot encode the bundle: {e}")))?;
        Ok(Response::new(v1::ExportCaseResponse { bundle_json }))
    }

    async fn verify_stream(
        &self,
        request: Request<VerifyStreamRequest>,
    ) -> Result<Response<VerifyStreamResponse>, Status> {
        let stream = stream_id(&request.into_inner().stream_id)?;
        let response = match self
            .log_of(stream)
            .verify(stream)
            .await
            .map_err(|e| from_log(&e))?
        {
            Verification::NoStream => {
                return Err(Status::not_found(format!("stream {stream} has no events")));
            }
            Verification::Intact(head) => VerifyStreamResponse {
                intact: true,
                head: Some(head_to_proto(&head)),
                first_bad_seq: 0,
                reason: String::new(),
            },
            Verification::Broken {
                first_bad_seq,
                reason,
            } => {
                tracing::error!(stream = %stream, first_bad_seq, reason, "hash chain does not verify");
                count_broken_chain();
                VerifyStreamResponse {
                    intact: false,
                    head: None,
                    first_bad_seq,
                    reason,
                }
            }
        };
        Ok(Response::new(response))
    }
}

/// Counts a chain an audit found broken
/// ([`baove_bus::CHAIN_FAILURES`]`{check="audit"}`).
fn count_broken_chain() {
    metrics::counter!(baove_bus::CHAIN_FAILURES, "check" => "audit").increment(1);
}
