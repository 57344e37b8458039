//! The hotline operator's pages: the Mẫu 01 form, its submission, the
//! receipt and the operator's recent reports.

use crate::*;

pub(crate) async fn new_report(State(app): State<Arc<App>>, headers: HeaderMap) -> Page {
    let s = signed(&app, &headers)?;
    let form = FormData(vec![(
        "request_id".into(),
        uuid::Uuid::now_v7().to_string(),
    )]);
    let body = hotline::form_page(
        &form,
        &Errors::default(),
        &hotline::Prompts::default(),
        &s.csrf,
    );
    Ok(signed_page(&s, tr("Tiếp nhận thông báo (Mẫu 01)"), &body))
}

pub(crate) async fn submit_report(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Page {
    let s = match signed(&app, &headers) {
        Ok(s) => s,
        Err(Problem::SignIn { expired }) => return Ok(sign_in_resuming(&app, form, expired)),
        Err(other) => return Err(other),
    };
    let form = posted(&s, form)?;
    let again = |status: StatusCode, errors: &Errors, prompts: &hotline::Prompts| {
        let body = hotline::form_page(&form, errors, prompts, &s.csrf);
        (
            status,
            signed_page(&s, tr("Tiếp nhận thông báo (Mẫu 01)"), &body),
        )
            .into_response()
    };
    let mut intake = app.intake(&s)?;
    // The place: a unit picked from the choices, an id, or words to search.
    let typed = form.get("incident_unit");
    let mut unit_id = form.get("incident_unit_pick").to_owned();
    let mut choices = Vec::new();
    let mut errors = Errors::default();
    if unit_id.is_empty() && hotline::is_unit_id(typed) {
        typed.clone_into(&mut unit_id);
    } else if unit_id.is_empty() && !typed.is_empty() {
        match intake
            .search_units(p::SearchUnitsRequest {
                query: typed.to_owned(),
                on: String::new(),
                limit: 10,
            })
            .await
        {
            Ok(found) => {
                let found = found.into_inner().units;
                match found.as_slice() {
                    [only] => unit_id.clone_from(&only.unit_id),
                    [] => {
                        errors.field("incident_unit", tr("Không tìm thấy đơn vị nào có tên này."))
                    }
                    _ => {
                        errors.field(
                            "incident_unit",
                            tr("Có nhiều đơn vị trùng tên: chọn một đơn vị bên dưới."),
                        );
                        choices = found;
                    }
                }
            }
            Err(status) => errors = form::from_status::<hotline::HotlineFields>(&status),
        }
    }
    let request = match hotline::request(&form, &unit_id) {
        Ok(r) => r,
        Err(more) => {
            for (field, messages) in more.fields {
                for m in messages {
                    errors.field(field, m);
                }
            }
            let prompts = hotline::Prompts {
                choices,
                duplicate: None,
            };
            return Ok(again(StatusCode::UNPROCESSABLE_ENTITY, &errors, &prompts));
        }
    };
    let mut prompts = hotline::Prompts {
        choices,
        duplicate: None,
    };
    // A national hotline console (no `--province`) sends a report refused
    // as another province's (`baove-partition`: its commune lies there)
    // on, unchanged, to that province's intake, once.
    let mut routed: Option<String> = None;
    let route = async |status: &tonic::Status, routed: &mut Option<String>| {
        let province = elsewhere(status).filter(|_| routed.is_none())?;
        let there = app.intake_in(&s, &province).await.ok().flatten()?;
        tracing::info!(
            province,
            "report sent on to the intake of the province it is for"
        );
        *routed = Some(province);
        Some(there)
    };
    loop {
        // Before recording: may it be about a child already reported? The
        // operator asks the caller, then confirms. A check that cannot be
        // made never holds a report back: the submit makes the same check
        // and the receipt shows its warning.
        if !form.checked("confirm_duplicate") {
            match intake
                .check_hotline_report(p::CheckHotlineReportRequest {
                    report: request.report.clone(),
                })
                .await
            {
                Ok(check) => {
                    let check = check.into_inner();
                    if check.possible_duplicate {
                        prompts.duplicate = Some(check.possible_duplicate_case_ids);
                        return Ok(again(StatusCode::OK, &errors, &prompts));
                    }
                }
                // A refused report is refused again by the submit, beside
                // its fields, unless another province's intake takes it.
                Err(status) if status.code() == tonic::Code::InvalidArgument => {
                    if let Some(there) = route(&status, &mut routed).await {
                        intake = there;
                        continue;
                    }
                }
                Err(status) => {
                    tracing::warn!(code = ?status.code(), "duplicate check not made; submitting");
                }
            }
        }
        match intake.submit_hotline_report(request.clone()).await {
            Ok(receipt) => {
                let receipt = receipt.into_inner();
                tracing::info!(intake_id = %receipt.intake_id, already = receipt.already_recorded, "report recorded");
                // The receipt is read where the report was recorded.
                let there = routed
                    .map(|province| format!("?tinh={}", province.replace(':', "%3A")))
                    .unwrap_or_default();
                return Ok(
                    Redirect::to(&format!("/bao-cao/{}{there}", receipt.intake_id)).into_response(),
                );
            }
            Err(status) => {
                if let Some(there) = route(&status, &mut routed).await {
                    intake = there;
                    continue;
                }
                let mut refused = form::from_status::<hotline::HotlineFields>(&status);
                // Another province's report where it cannot be sent on (a
                // console of one province, or none of that province's
                // intakes given): said plainly, in place of the rule.
                if let Some(province) = elsewhere(&status) {
                    // By its name ("Thành phố Cần Thơ (vn:92)") when the
                    // refusal gives it.
                    let named = elsewhere_name(&status)
                        .map_or_else(|| province.clone(), |name| format!("{name} ({province})"));
                    refused.fields.insert(
                        "incident_unit",
                        vec![trf(
                            "Xã, phường này thuộc {0}; máy này chỉ ghi thông báo của tỉnh mình: chuyển cuộc gọi hoặc thông báo cho tổng đài, cán bộ của {0}.",
                            &[&named],
                        )],
                    );
                }
                // A place error of the search stays unless the service has its own.
                for (field, messages) in errors.fields {
                    refused.fields.entry(field).or_insert(messages);
                }
                return Ok(again(StatusCode::UNPROCESSABLE_ENTITY, &refused, &prompts));
            }
        }
    }
}

/// The province a refusal names as the one whose partition takes the
/// request unchanged (`baove-partition`), if it reads as a unit id.
fn elsewhere(status: &tonic::Status) -> Option<String> {
    if status.code() != tonic::Code::InvalidArgument {
        return None;
    }
    status
        .metadata()
        .get("baove-partition")
        .and_then(|v| v.to_str().ok())
        .filter(|p| is_province_id(p))
        .map(str::to_owned)
}

/// The name of the province [`elsewhere`] names, when the refusal gives
/// it (`baove-partition-name-bin`).
fn elsewhere_name(status: &tonic::Status) -> Option<String> {
    let name = status
        .metadata()
        .get_bin("baove-partition-name-bin")?
        .to_bytes()
        .ok()?;
    String::from_utf8(name.to_vec())
        .ok()
        .filter(|n| !n.trim().is_empty() && n.chars().count() <= 100)
}

/// Whether `id` reads as a unit id (`vn:92`): what a receipt's `tinh`
/// may name.
fn is_province_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 40
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_' | '.'))
}

pub(crate) async fn my_reports(State(app): State<Arc<App>>, headers: HeaderMap) -> Page {
    let s = signed(&app, &headers)?;
    // A national console lists the operator's reports of every province:
    // each partition's newest, merged, newest first.
    let request = p::ListIntakesRequest {
        page: Some(p::PageRequest {
            page_size: MY_REPORTS,
            page_token: String::new(),
        }),
        ..p::ListIntakesRequest::default()
    };
    let pages = futures_util::future::join_all(app.intakes(&s)?.into_iter().map(|mut intake| {
        let request = request.clone();
        async move { intake.list_intakes(request).await }
    }))
    .await;
    let mut intakes = Vec::new();
    for page in pages {
        let page = page.map_err(|status| Problem::of(&status))?;
        intakes.extend(page.into_inner().intakes);
    }
    let at = |i: &p::IntakeSummary| i.received_at.map(|t| (t.seconds, t.nanos));
    intakes.sort_by_key(|i| std::cmp::Reverse(at(i)));
    intakes.truncate(MY_REPORTS as usize);
    Ok(signed_page(
        &s,
        tr("Thông báo tôi đã tiếp nhận"),
        &hotline::list(&intakes),
    ))
}

/// How many of the operator's newest reports the list shows.
const MY_REPORTS: u32 = 50;

#[derive(serde::Deserialize)]
pub(crate) struct ReceiptQuery {
    /// The province whose intake recorded the report, when a national
    /// console sent it there (`submit_report`).
    tinh: Option<String>,
}

pub(crate) async fn report_receipt(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<axum::extract::Query<ReceiptQuery>, QueryRejection>,
) -> Page {
    let s = signed(&app, &headers)?;
    let axum::extract::Query(query) = query.map_err(|e| bad_query(&e))?;
    let there = match query.tinh.as_deref().filter(|p| is_province_id(p)) {
        Some(province) => app.intake_in(&s, province).await?,
        None => None,
    };
    // Else each partition's active in turn (a national console's list
    // links every province's reports alike).
    let intakes = match there {
        Some(there) => vec![there],
        None => app.intakes(&s)?,
    };
    let mut found = Err(tonic::Status::not_found(format!("intake {id} not found")));
    for mut intake in intakes {
        found = intake
            .get_intake(p::GetIntakeRequest {
                intake_id: id.clone(),
            })
            .await;
        if !matches!(&found, Err(status) if status.code() == tonic::Code::NotFound) {
            break;
        }
    }
    match found {
        Ok(found) => {
            let found = found.into_inner().intake.unwrap_or_default();
            Ok(signed_page(
                &s,
                tr("Đã ghi thông báo"),
                &hotline::receipt(&found),
            ))
        }
        Err(status) => Err(Problem::of(&status)),
    }
}
