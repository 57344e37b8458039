//! The police's and agencies' referral inbox, live, and its steps.

use crate::*;

/// How many referrals the inbox shows: the newest offered.
const INBOX: u32 = 200;

/// The agency's inbox (its newest [`INBOX`] referrals; a national
/// console's, of every partition, merged) and where each partition's
/// referral log stood (the live updates start after it).
pub(crate) async fn inbox_of(
    app: &App,
    s: &Session,
) -> Result<(Vec<p::Referral>, referrals::Positions), Problem> {
    let mut referrals = Vec::new();
    let mut positions = Vec::new();
    // Every partition's asked at once.
    let inboxes = futures_util::future::join_all(app.referrals(s)?.into_iter().map(
        |(i, mut client)| async move { (i, client.list_inbox(list_request(s, INBOX)).await) },
    ))
    .await;
    for (i, inbox) in inboxes {
        let inbox = inbox.map_err(|status| Problem::of(&status))?.into_inner();
        referrals.extend(inbox.referrals);
        positions.push((i, inbox.position));
    }
    if positions.len() > 1 {
        let offered = |r: &p::Referral| r.offered_at.map(|t| (t.seconds, t.nanos));
        referrals.sort_by_key(|r| std::cmp::Reverse(offered(r)));
        referrals.truncate(INBOX as usize);
    }
    Ok((referrals, positions))
}

fn list_request(s: &Session, page_size: u32) -> p::ListInboxRequest {
    p::ListInboxRequest {
        agency_id: s.claims.agency.clone(),
        status: 0,
        page: Some(p::PageRequest {
            page_size,
            page_token: String::new(),
        }),
    }
}

pub(crate) async fn inbox(State(app): State<Arc<App>>, headers: HeaderMap) -> Page {
    let s = signed(&app, &headers)?;
    let (referrals, positions) = inbox_of(&app, &s).await?;
    Ok(signed_page(
        &s,
        tr("Hộp thư chuyển gửi"),
        &referrals::page(&referrals, &positions, now_secs(), &s.csrf, None),
    ))
}

pub(crate) async fn inbox_table(State(app): State<Arc<App>>, headers: HeaderMap) -> Page {
    let s = signed(&app, &headers)?;
    let (referrals, _) = inbox_of(&app, &s).await?;
    Ok(referrals::table(&referrals, now_secs(), &s.csrf, None).into_response())
}

#[derive(serde::Deserialize)]
pub(crate) struct InboxEventsQuery {
    /// The first position to tell about (one partition), or the positions
    /// seen of several ([`referrals::seen`]).
    tu: Option<String>,
}

/// Server-sent events: one `referral` event per change to the agency's
/// inbox (WatchInbox) after the position the page's list showed (`tu`),
/// carrying only the referral id, with the change's log position as its
/// id so that a reconnecting browser resumes after it (never the whole
/// history again); the page then reloads its table through the user's own
/// session. A national console over several partitions watches each, and
/// each event's id says where every one of them stands
/// ([`referrals::seen`]); a partition whose active is another process
/// than the page's is watched from its list's position now.
pub(crate) async fn inbox_events(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    query: Result<axum::extract::Query<InboxEventsQuery>, QueryRejection>,
) -> Page {
    use futures_util::StreamExt as _;
    let s = signed(&app, &headers)?;
    let axum::extract::Query(query) = query.map_err(|e| bad_query(&e))?;
    let told = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .or(query.tu.as_deref().map(str::trim));
    let watch = |from_position| p::WatchInboxRequest {
        agency_id: s.claims.agency.clone(),
        from_position,
    };
    let mut clients = app.referrals(&s)?;
    if clients.len() == 1 {
        let (_, mut client) = clients.remove(0);
        let tu = match query.tu.as_deref().map(str::trim) {
            None => None,
            Some(tu) => Some(tu.parse::<u64>().map_err(|e| {
                Problem::Page(
                    StatusCode::BAD_REQUEST,
                    trf(
                        "Địa chỉ trang có tham số không hợp lệ: {0}",
                        &[&format!("tu: {e}")],
                    ),
                )
            })?),
        };
        let from = resume_from(&EventsQuery { tu }, &headers);
        let stream = client
            .watch_inbox(watch(from))
            .await
            .map_err(|status| Problem::of(&status))?
            .into_inner();
        return Ok(live_events(stream, |m| {
            (
                m.position,
                m.referral.map(|r| r.referral_id).unwrap_or_default(),
            )
        }));
    }
    let known: std::collections::HashMap<usize, u64> = told
        .and_then(referrals::parse_seen)
        .unwrap_or_default()
        .into_iter()
        .collect();
    let mut seen = std::collections::BTreeMap::new();
    let mut streams = Vec::new();
    for (i, mut client) in clients {
        let at = match known.get(&i) {
            Some(&at) => at,
            None => {
                client
                    .list_inbox(list_request(&s, 1))
                    .await
                    .map_err(|status| Problem::of(&status))?
                    .into_inner()
                    .position
            }
        };
        seen.insert(i, at);
        let stream = client
            .watch_inbox(watch(at.saturating_add(1)))
            .await
            .map_err(|status| Problem::of(&status))?
            .into_inner();
        streams.push(stream.map(move |item| item.map(|m| (i, m))).boxed());
    }
    Ok(live_events_named(
        futures_util::stream::select_all(streams),
        move |(i, m)| {
            seen.insert(i, m.position);
            let positions: Vec<(usize, u64)> = seen.iter().map(|(&i, &p)| (i, p)).collect();
            (
                referrals::seen(&positions),
                m.referral.map(|r| r.referral_id).unwrap_or_default(),
            )
        },
    ))
}

pub(crate) async fn referral_step(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Page {
    use referrals::Action;
    let s = signed(&app, &headers)?;
    let form = posted(&s, form)?;
    let Some(action) = Action::parse(&action) else {
        return Err(Problem::Page(
            StatusCode::NOT_FOUND,
            tr("Không có thao tác này.").into(),
        ));
    };
    // In a national console, the partition that has the referral: each
    // partition's active in turn until one knows it (a step on a referral
    // another partition has is refused NOT_FOUND, and writes nothing).
    let mut outcome = Err(tonic::Status::not_found(format!("referral {id} not found")));
    for (_, mut client) in app.referrals(&s)? {
        outcome = referral_call(&mut client, action, &form, &id).await;
        if !matches!(&outcome, Err(status) if status.code() == tonic::Code::NotFound) {
            break;
        }
    }
    match outcome {
        Ok(()) => Ok(Redirect::to("/hop-thu").into_response()),
        Err(status) => {
            let errors = form::from_status::<referrals::StepFields>(&status);
            let (referrals, positions) = inbox_of(&app, &s).await?;
            let body = referrals::page(
                &referrals,
                &positions,
                now_secs(),
                &s.csrf,
                Some((&id, &errors)),
            );
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                signed_page(&s, tr("Hộp thư chuyển gửi"), &body),
            )
                .into_response())
        }
    }
}

/// The step `action` on referral `id`, as posted in `form`.
async fn referral_call(
    client: &mut ReferralClient,
    action: referrals::Action,
    form: &FormData,
    id: &str,
) -> Result<(), tonic::Status> {
    use referrals::Action;
    let header = Some(referrals::header(form, id));
    match action {
        Action::Acknowledge => client
            .acknowledge(p::AcknowledgeRequest { header })
            .await
            .map(|_| ()),
        Action::Accept => client.accept(p::AcceptRequest { header }).await.map(|_| ()),
        Action::Decline => client
            .decline(p::DeclineRequest {
                header,
                reason: form.get("reason").to_owned(),
            })
            .await
            .map(|_| ()),
        Action::ReportOutcome => client
            .report_outcome(p::ReportOutcomeRequest {
                header,
                outcome: form.get("outcome").to_owned(),
                reference: form.get("reference").to_owned(),
            })
            .await
            .map(|_| ()),
        Action::Complete => client
            .complete(p::CompleteRequest { header })
            .await
            .map(|_| ()),
    }
}
