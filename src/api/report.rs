//! The model report route: `crmscore report` over HTTP, read-only, behind the admin token.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use utoipa::IntoParams;

use super::admin::is_admin;
use crate::error::{ApiError, ScoreError, V1Error};
use crate::report::{DEFAULT_BINS, DEFAULT_MIN_GROUP, Report, ReportError, ReportOptions};
use crate::scoring::AppState;

/// Query of the report route.
// Numbers arrive as text and are parsed by hand, so that a bad value's error names its parameter.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// The model whose decisions are judged (default churn).
    model: Option<String>,
    /// Also report per value of this column of the served snapshot.
    by: Option<String>,
    /// Equal-width score bins of the reliability table and ECE, 1 to 1000 (default 10).
    #[param(value_type = Option<usize>)]
    bins: Option<String>,
    /// Labelled customers a group needs to be judged (default 50).
    #[param(value_type = Option<usize>)]
    min_group: Option<String>,
}

fn number(value: Option<&String>, name: &str, default: usize) -> Result<usize, ScoreError> {
    match value {
        None => Ok(default),
        Some(text) => text.parse().map_err(|_| {
            ScoreError::BadRequest(format!(
                "query parameter '{name}' must be a whole number, got '{text}'"
            ))
        }),
    }
}

/// The report's options from the query string and the server's folders.
fn options(req: &HttpRequest, state: &AppState) -> Result<ReportOptions, ScoreError> {
    let query = web::Query::<ReportQuery>::from_query(req.query_string())
        .map_err(|e| ScoreError::BadRequest(format!("bad query string: {e}")))?
        .into_inner();
    let bins = number(query.bins.as_ref(), "bins", DEFAULT_BINS)?;
    if bins == 0 || bins > crate::report::MAX_BINS {
        return Err(ScoreError::BadRequest(format!(
            "query parameter 'bins' must be between 1 and {}, got {bins}",
            crate::report::MAX_BINS
        )));
    }
    let min_group = number(query.min_group.as_ref(), "min_group", DEFAULT_MIN_GROUP)?;
    let model = query.model.as_deref().unwrap_or("churn");
    if model.is_empty() {
        return Err(ScoreError::BadRequest(
            "query parameter 'model' must not be empty".into(),
        ));
    }
    let feedback_dir = match &state.feedback_dir {
        Some(dir) if !dir.as_os_str().is_empty() => dir.clone(),
        _ => {
            return Err(ScoreError::NotFound(
                "no decisions are recorded: --feedback-dir is empty".into(),
            ));
        }
    };
    let by = match query.by {
        None => None,
        Some(column) if column.is_empty() => {
            return Err(ScoreError::BadRequest(
                "query parameter 'by' must name a snapshot column".into(),
            ));
        }
        Some(column) => {
            let snapshot = state.snapshots.current().ok_or_else(|| {
                ScoreError::NotReady(format!(
                    "no snapshot is served to read column '{column}' from"
                ))
            })?;
            Some((column, snapshot.source.clone()))
        }
    };
    Ok(ReportOptions {
        feedback_dir,
        model: model.to_string(),
        by,
        bins,
        min_group,
    })
}

fn http_error(error: ReportError) -> ScoreError {
    match error {
        ReportError::MissingFolder(_) => {
            ScoreError::NotFound(format!("no decisions recorded yet: {error}"))
        }
        ReportError::NoDecisions { .. } => ScoreError::NotFound(error.to_string()),
        ReportError::UnknownColumn { .. } => {
            ScoreError::BadRequest(format!("query parameter 'by': {error}"))
        }
        ReportError::BadOption(_) => ScoreError::BadRequest(error.to_string()),
        ReportError::Read { .. } | ReportError::Snapshot(_) => {
            ScoreError::Internal(error.to_string())
        }
    }
}

/// Report on a model
///
/// Joins the model's logged decisions to the outcomes that followed (the decision's own churned/retained
/// outcome, else the customer's first one after it) and reports, overall and per value of a column of the served
/// snapshot: customers scored, labelled, mean score, churn rate, ROC AUC, expected calibration error with its
/// reliability table, and the rate of each chosen action. Groups with too few labelled customers are marked.
#[utoipa::path(get, path = "/v1/admin/report", tag = "v1 admin", params(ReportQuery),
    responses(
        (status = 200, description = "The report", body = Report),
        (status = 400, description = "A bad query parameter, or an unknown column", body = V1Error),
        (status = 404, description = "No decisions of the model are recorded", body = V1Error),
        (status = 503, description = "No snapshot is served to group by, or the server is shutting down", body = V1Error),
    ))]
pub async fn get_report(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if !is_admin(&req, &state) {
        return Err(ScoreError::Unauthorized.into());
    }
    let options = options(&req, &state)?;
    // Reading the logs is file work: off the actix worker.
    let report = web::block(move || crate::report::build_report(&options))
        .await
        .map_err(|_| ScoreError::NotReady("the server is shutting down".into()))?
        .map_err(http_error)?;
    Ok(HttpResponse::Ok().json(report))
}
