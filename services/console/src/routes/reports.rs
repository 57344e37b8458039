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
    // Before recording: may it be about a child already reported? The
    // operator asks the caller, then confirms. A check that cannot be made
    // never holds a report back: the submit makes the same check and the
    // receipt shows its warning.
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
            // A refused report is refused again by the submit, beside its
            // fields.
            Err(status) if status.code() == tonic::Code::InvalidArgument => {}
            Err(status) => {
                tracing::warn!(code = ?status.code(), "duplicate check not made; submitting");
            }
        }
    }
    match intake.submit_hotline_report(request).await {
        Ok(receipt) => {
            let receipt = receipt.into_inner();
            tracing::info!(intake_id = %receipt.intake_id, already = receipt.already_recorded, "report recorded");
            Ok(Redirect::to(&format!("/bao-cao/{}", receipt.intake_id)).into_response())
        }
        Err(status) => {
            let mut refused = form::from_status::<hotline::HotlineFields>(&status);
            // A place error of the search stays unless the service has its own.
            for (field, messages) in errors.fields {
                refused.fields.entry(field).or_insert(messages);
            }
            Ok(again(StatusCode::UNPROCESSABLE_ENTITY, &refused, &prompts))
        }
    }
}

pub(crate) async fn my_reports(State(app): State<Arc<App>>, headers: HeaderMap) -> Page {
    let s = signed(&app, &headers)?;
    let mut intake = app.intake(&s)?;
    match intake
        .list_intakes(p::ListIntakesRequest {
            page: Some(p::PageRequest {
                page_size: 50,
                page_token: String::new(),
            }),
            ..p::ListIntakesRequest::default()
        })
        .await
    {
        Ok(list) => Ok(signed_page(
            &s,
            tr("Thông báo tôi đã tiếp nhận"),
            &hotline::list(&list.into_inner().intakes),
        )),
        Err(status) => Err(Problem::of(&status)),
    }
}

pub(crate) async fn report_receipt(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Page {
    let s = signed(&app, &headers)?;
    let mut intake = app.intake(&s)?;
    match intake
        .get_intake(p::GetIntakeRequest { intake_id: id })
        .await
    {
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
