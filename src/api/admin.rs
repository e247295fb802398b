//! Operator routes: force a snapshot rescan, (re)load a model version. Behind the admin token when one is set.

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::dto::ModelRef;
use crate::error::{ApiError, ScoreError, V1Error, V2Error};
use crate::model::registry::ModelReload;
use crate::scoring::AppState;
use crate::snapshot::ReloadOutcome;

pub(super) fn authorize(req: &HttpRequest, state: &AppState) -> Result<(), ScoreError> {
    if is_admin(req, state) {
        Ok(())
    } else {
        Err(ScoreError::Unauthorized)
    }
}

/// Whether the caller holds the admin token (everyone does when none is configured: the server starts that way
/// only on a loopback bind or with --allow-open-admin). The comparison takes the same time wherever the tokens
/// differ.
pub(crate) fn is_admin(req: &HttpRequest, state: &AppState) -> bool {
    let Some(token) = &state.admin_token else {
        return true;
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    given.is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `text` with every path cut to its last component (`/srv/data/snap.parquet: bad` → `snap.parquet: bad`), for
/// callers without the admin token: file names stay useful, the server's folder layout is not revealed.
pub(crate) fn redact_paths(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        if token.contains(['/', '\\']) {
            let trimmed = token.trim_end_matches(['/', '\\']);
            let last = trimmed.rsplit(['/', '\\']).next().unwrap_or("");
            out.push_str(last);
        } else {
            out.push_str(token);
        }
        token.clear();
    };
    for c in text.chars() {
        if c.is_whitespace()
            || matches!(
                c,
                '\'' | '"' | '`' | ',' | ';' | '(' | ')' | '[' | ']' | '='
            )
        {
            flush(&mut token, &mut out);
            out.push(c);
        } else {
            token.push(c);
        }
    }
    flush(&mut token, &mut out);
    out
}

/// [`redact_paths`] unless the caller may see paths.
pub(crate) fn paths_for(admin: bool, text: &str) -> String {
    if admin {
        text.to_string()
    } else {
        redact_paths(text)
    }
}

fn shutting_down<E>(_: E) -> ScoreError {
    ScoreError::NotReady("the server is shutting down".into())
}

/// Query of the snapshot reload route.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReloadQuery {
    /// Take a snapshot the row-drop guard would refuse (a deliberate shrink), and retry refused ones.
    #[serde(default)]
    accept_row_drop: bool,
    /// Take a snapshot the --max-psi drift guard would refuse (a deliberate change), and retry refused ones.
    #[serde(default)]
    accept_drift: bool,
}

/// Reply of the snapshot reload route.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReloadReply {
    /// `loaded` (a newer snapshot now serves) or `unchanged`.
    pub outcome: &'static str,
    /// The served snapshot's version (null when none is served).
    pub snapshot: Option<String>,
    /// Rows of the snapshot just loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<usize>,
    /// Seconds the load took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
}

/// Reload the snapshot
///
/// Rescan the snapshots path now; 200 when the newest snapshot serves, 422 naming it when it is refused (now or
/// earlier, unchanged since).
#[utoipa::path(post, path = "/v1/admin/snapshot/reload", tag = "v1 admin", params(ReloadQuery),
    responses(
        (status = 200, description = "The newest snapshot serves", body = ReloadReply),
        (status = 400, description = "Bad query string", body = V1Error),
        (status = 422, description = "The newest snapshot was refused; the served one stays", body = V1Error),
        (status = 503, description = "No complete snapshot, or the server is shutting down", body = V1Error),
    ))]
pub async fn post_snapshot_reload(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let query = web::Query::<ReloadQuery>::from_query(req.query_string())
        .map_err(|e| ScoreError::BadRequest(format!("bad query string: {e}")))?
        .into_inner();
    if query.accept_row_drop {
        tracing::warn!(
            "admin snapshot reload with accept_row_drop=true: the row-drop guard is skipped once"
        );
    }
    if query.accept_drift {
        tracing::warn!(
            "admin snapshot reload with accept_drift=true: the --max-psi drift guard is skipped once"
        );
    }
    let s = state.clone();
    let outcome = web::block(move || {
        let columns = s.models.feature_columns();
        let owned = s.models.owned_column();
        let scorer = crate::churn_scorer(&s);
        s.reloader.reload(
            &s.snapshots,
            &columns,
            owned.as_deref(),
            &s.metrics,
            crate::snapshot::Waivers {
                row_drop: query.accept_row_drop,
                drift: query.accept_drift,
            },
            scorer
                .as_ref()
                .map(|s| s as &dyn crate::snapshot::SampleScorer),
        )
    })
    .await
    .map_err(shutting_down)?;
    let served = state.snapshots.current().map(|s| s.version.clone());
    match outcome {
        ReloadOutcome::Loaded {
            version,
            rows,
            seconds,
        } => Ok(HttpResponse::Ok().json(ReloadReply {
            outcome: "loaded",
            snapshot: Some(version),
            rows: Some(rows),
            seconds: Some(seconds),
        })),
        ReloadOutcome::Unchanged => Ok(HttpResponse::Ok().json(ReloadReply {
            outcome: "unchanged",
            snapshot: served,
            rows: None,
            seconds: None,
        })),
        ReloadOutcome::Rejected { source, error } => Err(ScoreError::SnapshotRejected(format!(
            "snapshot {source} was refused: {error}; still serving {}",
            served.as_deref().unwrap_or("nothing")
        ))
        .into()),
        ReloadOutcome::Missing => {
            Err(ScoreError::NotReady("no complete snapshot in the snapshots path".into()).into())
        }
    }
}

/// Load a model
///
/// Triton's explicit model control: load the folder's current files as a new version and swap it in; on failure
/// the served version stays and the reason is returned.
#[utoipa::path(post, path = "/v2/repository/models/{model}/load", tag = "v2 repository",
    params(("model" = String, Path, description = "Model name (its folder)", example = "churn")),
    responses(
        (status = 200, description = "The version now served", body = ModelRef),
        (status = 400, description = "The folder's files do not load; the served version stays", body = V2Error),
        (status = 404, description = "No such model folder", body = V2Error),
        (status = 503, description = "The server is shutting down", body = V2Error),
    ))]
pub async fn post_model_load(
    req: HttpRequest,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state).map_err(ApiError::v2)?;
    let name = name.into_inner();
    if !state.models.has_folder(&name) {
        return Err(ApiError::v2(ScoreError::UnknownModel(name)));
    }
    let s = state.clone();
    let outcome = web::block(move || {
        let provide = |spec: &crate::model::ModelSpec| crate::provide_columns(&s, spec);
        s.models.reload(&name, &provide, &s.metrics)
    })
    .await
    .map_err(|e| ApiError::v2(shutting_down(e)))?;
    match outcome {
        ModelReload::Loaded(m) => Ok(HttpResponse::Ok().json(ModelRef {
            name: &m.spec.name,
            version: &m.spec.version,
        })),
        ModelReload::Failed(e) => Err(ApiError::v2(ScoreError::ModelLoad(e.to_string()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cut_to_file_names() {
        assert_eq!(
            redact_paths("cannot read '/srv/data/snap.parquet': no such file (os error 2)"),
            "cannot read 'snap.parquet': no such file (os error 2)"
        );
        assert_eq!(redact_paths("/srv/models/churn/"), "churn");
        assert_eq!(
            redact_paths("C:\\data\\x.parquet, rows=3"),
            "x.parquet, rows=3"
        );
        assert_eq!(
            redact_paths("no paths here: 10 rows"),
            "no paths here: 10 rows"
        );
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }
}
