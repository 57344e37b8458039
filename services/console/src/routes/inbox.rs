//! The police's and agencies' referral inbox, live, and its steps.

use crate::*;

/// The agency's inbox (its first 200 referrals) and the referral log's
/// position it reflects (the live updates start after it).
pub(crate) async fn inbox_of(app: &App, s: &Session) -> Result<(Vec<p::Referral>, u64), Problem> {
    let inbox = app
        .referral(s)?
        .list_inbox(p::ListInboxRequest {
            agency_id: s.claims.agency.clone(),
            status: 0,
            page: Some(p::PageRequest {
                page_size: 200,
                page_token: String::new(),
            }),
        })
        .await
        .map_err(|status| Problem::of(&status))?
        .into_inner();
    Ok((inbox.referrals, inbox.position))
}

pub(crate) async fn inbox(State(app): State<Arc<App>>, headers: HeaderMap) -> Page {
    let s = signed(&app, &headers)?;
    let (referrals, position) = inbox_of(&app, &s).await?;
    Ok(signed_page(
        &s,
        tr("Hộp thư chuyển gửi"),
        &referrals::page(&referrals, position, now_secs(), &s.csrf, None),
    ))
}

pub(crate) async fn inbox_table(State(app): State<Arc<App>>, headers: HeaderMap) -> Page {
    let s = signed(&app, &headers)?;
    let (referrals, _) = inbox_of(&app, &s).await?;
    Ok(referrals::table(&referrals, now_secs(), &s.csrf, None).into_response())
}

/// Server-sent events: one `referral` event per change to the agency's
/// inbox (WatchInbox) after the position the page's list showed (`tu`),
/// carrying only the referral id, with the change's log position as its
/// id so that a reconnecting browser resumes after it (never the whole
/// history again); the page then reloads its table through the user's own
/// session.
pub(crate) async fn inbox_events(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    query: axum::extract::Query<EventsQuery>,
) -> Page {
    let s = signed(&app, &headers)?;
    let stream = app
        .referral(&s)?
        .watch_inbox(p::WatchInboxRequest {
            agency_id: s.claims.agency.clone(),
            from_position: resume_from(&query, &headers),
        })
        .await
        .map_err(|status| Problem::of(&status))?
        .into_inner();
    Ok(live_events(stream, |m| {
        (
            m.position,
            m.referral.map(|r| r.referral_id).unwrap_or_default(),
        )
    }))
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
    let mut client = app.referral(&s)?;
    let header = Some(referrals::header(&form, &id));
    let outcome = match action {
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
    };
    match outcome {
        Ok(()) => Ok(Redirect::to("/hop-thu").into_response()),
        Err(status) => {
            let errors = form::from_status::<referrals::StepFields>(&status);
            let (referrals, position) = inbox_of(&app, &s).await?;
            let body = referrals::page(
                &referrals,
                position,
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
