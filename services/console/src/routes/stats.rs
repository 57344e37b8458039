//! The department's statistics: the indicator table, the chart, the CSV.

use crate::*;

#[derive(serde::Deserialize)]
pub(crate) struct StatsQuery {
    ky: Option<String>,
    #[serde(rename = "don-vi")]
    don_vi: Option<String>,
    /// The province whose CSV (a national console's link per province).
    tinh: Option<String>,
}

/// The Thông tư 13 indicators of a period (default: this year so far),
/// with the year before. A national console over several provinces'
/// caseworks shows their sum ([`stats::national`]), with each province's
/// CSV.
pub(crate) async fn statistics(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    query: Result<axum::extract::Query<StatsQuery>, QueryRejection>,
) -> Page {
    let s = signed(&app, &headers)?;
    let query = query.map_err(|e| bad_query(&e))?;
    let this_year = time::OffsetDateTime::now_utc()
        .to_offset(view::VIETNAM)
        .year();
    let period = query
        .ky
        .clone()
        .filter(|k| !k.trim().is_empty())
        .unwrap_or_else(|| this_year.to_string());
    let unit = query.don_vi.clone().unwrap_or_default();
    let request = p::GetIndicatorsRequest {
        period: period.trim().to_owned(),
        unit_id: unit.trim().to_owned(),
        as_of_position: 0,
        compare_previous_year: true,
    };
    // Every partition's asked at once; one refusal is the page's.
    let answers =
        futures_util::future::join_all(app.reportings(&s)?.into_iter().map(|mut reporting| {
            let request = request.clone();
            async move { reporting.get_indicators(request).await }
        }))
        .await;
    let mut tables = Vec::new();
    let mut answer = Ok(());
    for found in answers {
        match found {
            Ok(found) => tables.push(found.into_inner().table.unwrap_or_default()),
            Err(status) => {
                answer = Err(status);
                break;
            }
        }
    }
    let body = match answer {
        Ok(()) if tables.len() > 1 => {
            let t = stats::national(&tables);
            html! {
                (stats::query_form(&period, &unit))
                (stats::national_note(&tables, &period, &unit))
                (stats::chart(&t))
                (stats::table(&t))
            }
        }
        Ok(()) => {
            let t = tables.pop().unwrap_or_default();
            let csv = format!(
                "/thong-ke/csv?{}",
                serde_urlencoded::to_string([("ky", &period), ("don-vi", &unit)])
                    .unwrap_or_default()
            );
            html! {
                (stats::query_form(&period, &unit))
                p { a #csv href=(csv) download { (tr("Tải CSV")) } }
                (stats::chart(&t))
                (stats::table(&t))
            }
        }
        Err(status) => {
            let errors = form::from_status::<NoFields>(&status);
            html! {
                (stats::query_form(&period, &unit))
                div.errors role="alert" #errors { @for e in &errors.top { p.error { (e) } } }
            }
        }
    };
    Ok(signed_page(
        &s,
        tr("Thống kê bảo vệ trẻ em (Thông tư 13/2021)"),
        &body,
    ))
}

/// A form without fields of its own: every violation at the top.
pub(crate) struct NoFields;

impl form::FieldMap for NoFields {
    fn form_field(_: &str) -> &'static str {
        ""
    }
    fn rule_vi(_: &str) -> Option<&'static str> {
        None
    }
}

pub(crate) async fn statistics_csv(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    query: Result<axum::extract::Query<StatsQuery>, QueryRejection>,
) -> Page {
    let s = signed(&app, &headers)?;
    let query = query.map_err(|e| bad_query(&e))?;
    let province = query
        .tinh
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty());
    let export = app
        .reporting_in(&s, province)
        .await?
        .export_indicators(p::ExportIndicatorsRequest {
            period: query.ky.clone().unwrap_or_default().trim().to_owned(),
            unit_id: query.don_vi.clone().unwrap_or_default().trim().to_owned(),
            as_of_position: 0,
            compare_previous_year: true,
        })
        .await
        .map_err(|status| Problem::of(&status))?
        .into_inner();
    let name = export.file_name.replace(
        |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '.',
        "_",
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        export.csv,
    )
        .into_response())
}
