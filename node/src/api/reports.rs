//! Period reports (JSON and CSV) and the incremental counters behind dashboards.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use motcua_schema::report::{Period, compute};
use motcua_schema::timestamp::parse_date;
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, AppState, Staff, blocking};

#[derive(Deserialize)]
pub(super) struct ReportQuery {
    from: String,
    to: String,
    unit: Option<String>,
    format: Option<String>,
}

fn period(from: &str, to: &str) -> Result<Period, ApiError> {
    let from = parse_date(from).ok_or_else(|| ApiError::bad_request("from must be YYYY-MM-DD"))?;
    let to = parse_date(to).ok_or_else(|| ApiError::bad_request("to must be YYYY-MM-DD"))?;
    Period::new(from, to).map_err(|e| ApiError::bad_request(e.to_string()))
}

pub(super) async fn report(
    State(state): State<AppState>,
    _staff: Staff,
    query: Result<Query<ReportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    let period = period(&q.from, &q.to)?;
    let units = q.unit.filter(|u| !u.is_empty()).map(|u| vec![u]);
    let scope = units
        .as_ref()
        .map_or_else(|| state.unit_name.to_string(), |u| u[0].clone());
    let p = period.clone();
    let (summaries, ratings) =
        blocking(move || Ok(state.shared.store.report_inputs(units.as_deref(), &p)?)).await?;
    let report = compute(&scope, &period, &summaries, &ratings);
    match q.format.as_deref().unwrap_or("json") {
        "json" => Ok(Json(report).into_response()),
        "csv" => Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"bao-cao-{}-{}.csv\"", q.from, q.to),
                ),
            ],
            report.to_csv(),
        )
            .into_response()),
        other => Err(ApiError::bad_request(format!(
            "unknown format {other}; use json or csv"
        ))),
    }
}

#[derive(Deserialize)]
pub(super) struct CounterQuery {
    from: String,
    to: String,
    unit: Option<String>,
}

pub(super) async fn counters(
    State(state): State<AppState>,
    _staff: Staff,
    query: Result<Query<CounterQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = query?;
    let period = period(&q.from, &q.to)?;
    let unit = q.unit.filter(|u| !u.is_empty());
    let sums = blocking(move || {
        Ok(state
            .shared
            .store
            .counter_sums(unit.as_deref(), period.from, period.to)?)
    })
    .await?;
    Ok(Json(json!({ "counters": sums })))
}
