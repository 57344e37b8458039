//! The officers' and auditors' pages: the case list, the case page with its
//! steps' forms and live events, the replay, the export.

use crate::*;

pub(crate) async fn case_list(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    query: Result<axum::extract::Query<cases::ListFilter>, QueryRejection>,
) -> Page {
    let s = signed(&app, &headers)?;
    let axum::extract::Query(filter) = query.map_err(|e| bad_query(&e))?;
    // A national console lists the cases of every province the user may
    // read: each partition's (all asked at once), merged, most urgent
    // first.
    let request = p::ListCasesRequest {
        status: p::CaseStatus::Open as i32,
        officer_id: if filter.mine.is_some() {
            s.claims.sub.clone()
        } else {
            String::new()
        },
        overdue: filter.overdue.is_some(),
        page: Some(p::PageRequest {
            page_size: 200,
            page_token: String::new(),
        }),
        ..p::ListCasesRequest::default()
    };
    let lists =
        futures_util::future::join_all(app.caseworks(&s)?.into_iter().map(|mut casework| {
            let request = request.clone();
            async move { casework.list_cases(request).await }
        }))
        .await;
    let mut cases = Vec::new();
    for list in lists {
        let list = list.map_err(|status| Problem::of(&status))?;
        cases.extend(list.into_inner().cases);
    }
    cases::sort_by_urgency(&mut cases);
    Ok(signed_page(
        &s,
        tr("Hồ sơ vụ việc đang xử lý"),
        &cases::list(&cases, now_secs(), &filter),
    ))
}

/// The case's events, read from WatchCase up to the case's version.
pub(crate) async fn timeline(
    casework: &mut CaseClient,
    case: &p::Case,
) -> Vec<cases::TimelineEntry> {
    let mut entries = Vec::new();
    let Ok(stream) = casework
        .watch_case(p::WatchCaseRequest {
            case_id: case.case_id.clone(),
            from_seq: 1,
        })
        .await
    else {
        return entries;
    };
    let mut stream = stream.into_inner();
    let read = async {
        while let Ok(Some(item)) = stream.message().await {
            let detail = item
                .case_event
                .as_ref()
                .map(cases::event_detail)
                .unwrap_or_default();
            let Some(e) = item.event else { continue };
            let seq = e.seq;
            let actor = e
                .actor
                .map(|a| format!("{} ({})", a.user_id, a.role))
                .unwrap_or_default();
            entries.push(cases::TimelineEntry {
                seq,
                event_type: e.event_type,
                recorded_at_ms: e.recorded_at_unix_ms,
                actor,
                detail,
            });
            if seq >= case.version {
                break;
            }
        }
    };
    // The events up to the version are stored: they come at once.
    let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
    entries
}

/// Shows a case (as it stands, or as it stood after event `as_of` for an
/// auditor), with the form `posted` and its errors when a step was
/// refused.
pub(crate) async fn show_case(
    app: &App,
    s: &Session,
    id: String,
    as_of: Option<u64>,
    posted: Option<(cases::Step, &FormData, &Errors)>,
    seen_version: Option<u64>,
    status: StatusCode,
) -> Page {
    let (channel, found) = app.case_channel(s, &id).await?;
    let mut casework = CaseClient::new(App::authorized(channel.clone(), &s.token)?);
    let current = match found {
        Some(case) => case,
        None => casework
            .get_case(p::GetCaseRequest {
                case_id: id.clone(),
            })
            .await
            .map_err(|status| Problem::of(&status))?
            .into_inner()
            .case
            .unwrap_or_default(),
    };
    let case = match as_of {
        None => current.clone(),
        Some(seq) => casework
            .replay_case(p::ReplayCaseRequest {
                case_id: id.clone(),
                as_of: Some(p::replay_case_request::AsOf::AsOfSeq(seq)),
            })
            .await
            .map_err(|status| Problem::of(&status))?
            .into_inner()
            .case
            .unwrap_or_default(),
    };
    let events = timeline(&mut casework, &current).await;
    let role = s.claims.role;
    let request_id = uuid::Uuid::now_v7().to_string();
    let ctx = cases::PageContext {
        may_act: matches!(role, Role::CommuneOfficer | Role::ProvinceOfficer),
        may_replay: role == Role::Auditor,
        posted,
        request_id: &request_id,
        seen_version,
        csrf: &s.csrf,
    };
    let mut body = cases::page(&case, &events, now_secs(), &ctx, as_of);
    if role == Role::Auditor {
        let audit = audit_of(App::audit_at(channel, s)?, &id).await;
        body = html! { (body) (audit::panel(&id, &audit)) };
    }
    Ok((
        status,
        signed_page(s, &trf("Hồ sơ {0}", &[&case.case_id]), &body),
    )
        .into_response())
}

/// What the auditor's panel shows: each part asked on its own, of the
/// casework process that keeps the case.
pub(crate) async fn audit_of(mut client: AuditClient, case_id: &str) -> audit::Audit {
    let chain = client
        .verify_stream(p::VerifyStreamRequest {
            stream_id: case_id.to_owned(),
        })
        .await
        .map(tonic::Response::into_inner)
        .map_err(|e| form::code_vi(&e));
    let checkpoint = client
        .get_checkpoint(p::GetCheckpointRequest { fresh: false })
        .await
        .map_err(|e| form::code_vi(&e))
        .and_then(|r| {
            r.into_inner()
                .checkpoint
                .ok_or_else(|| tr("chưa có").to_owned())
        })
        .map(|c| {
            let checked = audit::check_signature(&c);
            (c, checked)
        });
    let access = client
        .list_access(p::ListAccessRequest {
            case_id: case_id.to_owned(),
            limit: 50,
            ..p::ListAccessRequest::default()
        })
        .await
        .map(|r| r.into_inner().entries)
        .map_err(|e| form::code_vi(&e));
    audit::Audit {
        chain,
        checkpoint,
        access,
    }
}

#[derive(serde::Deserialize)]
pub(crate) struct CaseQuery {
    /// Replay: the case as it stood after this event.
    tai: Option<u64>,
}

pub(crate) async fn case_page(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<axum::extract::Query<CaseQuery>, QueryRejection>,
) -> Page {
    let s = signed(&app, &headers)?;
    let query = query.map_err(|e| bad_query(&e))?;
    show_case(&app, &s, id, query.tai, None, None, StatusCode::OK).await
}

/// After a step: to the case; when refused, the case as it is now with
/// the form kept and the errors beside it (an ABORTED step shows what
/// someone else did first; nothing is resubmitted for the officer).
pub(crate) async fn after_step<T>(
    app: &App,
    s: &Session,
    id: String,
    step: cases::Step,
    form: &FormData,
    outcome: Result<T, tonic::Status>,
    errors_of: fn(&tonic::Status) -> Errors,
) -> Page {
    match outcome {
        Ok(_) => Ok(Redirect::to(&format!("/ho-so/{id}")).into_response()),
        Err(status) => {
            let errors = errors_of(&status);
            let seen = (status.code() == tonic::Code::Aborted)
                .then(|| form.get("expected_version").parse().ok())
                .flatten();
            show_case(
                app,
                s,
                id,
                None,
                Some((step, form, &errors)),
                seen,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

/// A casework client with the user's token.
pub(crate) type CaseClient = p::case_service_client::CaseServiceClient<AuthChannel>;

/// casework's audit service with the user's token.
pub(crate) type AuditClient = p::audit_service_client::AuditServiceClient<AuthChannel>;

/// One step posted on a case page: the session and CSRF checked, `call`
/// made with the posted form, then [`after_step`].
pub(crate) async fn case_step<T>(
    app: &App,
    headers: &HeaderMap,
    id: &str,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
    step: cases::Step,
    errors_of: fn(&tonic::Status) -> Errors,
    call: impl AsyncFnOnce(&mut CaseClient, &FormData) -> Result<T, tonic::Status>,
) -> Page {
    let s = signed(app, headers)?;
    let form = posted(&s, form)?;
    let outcome = call(&mut app.casework_of(&s, id).await?, &form).await;
    after_step(app, &s, id.to_owned(), step, &form, outcome, errors_of).await
}

pub(crate) async fn record_assessment(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Page {
    let step = cases::Step::InitialAssessment;
    case_step(
        &app,
        &headers,
        &id,
        form,
        step,
        form::from_status::<cases::AssessmentFields>,
        async |c: &mut CaseClient, f: &FormData| {
            c.record_initial_assessment(cases::assessment_request(f, &id))
                .await
        },
    )
    .await
}

pub(crate) async fn record_measure(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Page {
    let step = cases::Step::EmergencyMeasure;
    case_step(
        &app,
        &headers,
        &id,
        form,
        step,
        form::from_status::<cases::MeasureFields>,
        async |c: &mut CaseClient, f: &FormData| {
            c.record_emergency_measure(cases::measure_request(f, &id))
                .await
        },
    )
    .await
}

pub(crate) async fn request_referral(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Page {
    let step = cases::Step::Referral;
    case_step(
        &app,
        &headers,
        &id,
        form,
        step,
        form::from_status::<cases::ReferralFields>,
        async |c: &mut CaseClient, f: &FormData| {
            c.request_referral(cases::referral_request(f, &id)).await
        },
    )
    .await
}

#[derive(serde::Deserialize)]
pub(crate) struct EventsQuery {
    /// The first seq (case) or log position (inbox) to tell about.
    pub(crate) tu: Option<u64>,
}

/// Where a server-sent event stream starts: after the last event the
/// browser saw (`Last-Event-ID`, sent when it reconnects, each event's id
/// being its seq or position), else at `tu` from the page, else at 1.
pub(crate) fn resume_from(query: &EventsQuery, headers: &HeaderMap) -> u64 {
    resume_or(query, headers, 1)
}

/// As [`resume_from`], with `otherwise` when neither says.
fn resume_or(query: &EventsQuery, headers: &HeaderMap, otherwise: u64) -> u64 {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or_else(
            || query.tu.unwrap_or(otherwise),
            |seen| seen.saturating_add(1),
        )
}

/// Server-sent events: one per deadline alert (a warning or a miss:
/// WatchDeadlines) of a case the user may read, raised from now on (or
/// after the last the browser saw), carrying only its position; the case
/// list then reloads itself at once rather than at its next minute.
pub(crate) async fn deadline_events(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    query: axum::extract::Query<EventsQuery>,
) -> Page {
    let s = signed(&app, &headers)?;
    let caseworks = app.caseworks(&s)?;
    // Positions are each partition's own: a national console over several
    // watches each from now on (a reconnected list reloads itself anyway).
    let from_position = if caseworks.len() > 1 {
        0
    } else {
        resume_or(&query, &headers, 0)
    };
    let mut streams = Vec::new();
    for mut casework in caseworks {
        let stream = casework
            .watch_deadlines(p::WatchDeadlinesRequest { from_position })
            .await
            .map_err(|status| Problem::of(&status))?
            .into_inner();
        streams.push(stream);
    }
    Ok(live_events(
        futures_util::stream::select_all(streams),
        |alert| (alert.position, alert.position.to_string()),
    ))
}

/// Server-sent events: one per new event of the case (WatchCase from the
/// version the page shows), carrying only its seq; the page then reloads
/// its parts through the user's own session.
pub(crate) async fn case_events(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: axum::extract::Query<EventsQuery>,
) -> Page {
    let s = signed(&app, &headers)?;
    let stream = app
        .casework_of(&s, &id)
        .await?
        .watch_case(p::WatchCaseRequest {
            case_id: id,
            from_seq: resume_from(&query, &headers),
        })
        .await
        .map_err(|status| Problem::of(&status))?
        .into_inner();
    Ok(live_events(stream, |m| {
        let seq = m.event.map_or(0, |e| e.seq);
        (seq, seq.to_string())
    }))
}

pub(crate) async fn record_step(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((id, step)): Path<(String, String)>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Page {
    use steps::Request as R;
    let Some(kind) = steps::Kind::parse(&step) else {
        return Err(Problem::Page(
            StatusCode::NOT_FOUND,
            tr("Không có bước này.").into(),
        ));
    };
    let step = cases::Step::Other(kind);
    case_step(
        &app,
        &headers,
        &id,
        form,
        step,
        form::from_status::<steps::StepFields>,
        async |c: &mut CaseClient, f: &FormData| match steps::request(kind, f, &id) {
            R::DetailedAssessment(r) => c.record_detailed_assessment(r).await.map(|_| ()),
            R::DraftPlan(r) => c.draft_plan(r).await.map(|_| ()),
            R::ApprovePlan(r) => c.approve_plan(r).await.map(|_| ()),
            R::SendBackPlan(r) => c.send_back_plan(r).await.map(|_| ()),
            R::Intervention(r) => c.record_intervention(r).await.map(|_| ()),
            R::Review(r) => c.record_review(r).await.map(|_| ()),
            R::Close(r) => c.close_case(r).await.map(|_| ()),
            R::Reopen(r) => c.reopen_case(r).await.map(|_| ()),
            R::Note(r) => c.add_note(r).await.map(|_| ()),
        },
    )
    .await
}

/// The case's export bundle, as a file to keep and check offline.
pub(crate) async fn export_case(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Page {
    let s = signed(&app, &headers)?;
    let (channel, _) = app.case_channel(&s, &id).await?;
    let bundle = App::audit_at(channel, &s)?
        .export_case(p::ExportCaseRequest {
            case_id: id.clone(),
        })
        .await
        .map_err(|status| Problem::of(&status))?
        .into_inner()
        .bundle_json;
    let file = format!(
        "attachment; filename=\"ho-so-{}.json\"",
        id.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::CONTENT_DISPOSITION, file),
        ],
        bundle,
    )
        .into_response())
}
