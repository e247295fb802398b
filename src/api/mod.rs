//! HTTP routes: thin handlers that validate, call `scoring`, and shape the reply.

mod admin;
mod auth;
mod binary;
pub mod body;
pub mod compress;
mod decisions;
pub mod dto;
mod erasure;
mod health;
mod insights;
mod metrics;
mod model_config;
mod model_stats;
mod non_finite;
pub mod openapi;
mod outcomes;
mod report;
mod repository;
mod score;
mod shape;
mod snapshot_header;
mod snapshot_info;
mod v2;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::{HttpRequest, HttpResponse, Resource, web};

use crate::error::{ApiError, Protocol, ScoreError};

pub(crate) use admin::redact_paths;

/// The route pattern a request matched, as its metrics label: resource data, so reading it after routing costs
/// nothing (`HttpRequest::match_pattern` matches the path again, regexes included).
#[derive(Debug, Clone, Copy)]
pub struct RouteLabel(pub &'static str);

/// Registers every route; request bodies are read under `body`.
pub fn configure(cfg: &mut web::ServiceConfig, body: &body::BodyPolicy) {
    cfg.app_data(body.clone());
    // Within a scope actix tries resources in order and matches a pattern with a parameter by regex: the hot
    // routes (v2 infer, the named /v1 routes) come before the others.
    cfg.service(
        web::scope("/v2")
            .service(resource("/v2/models/{model}/infer").route(web::post().to(v2::post_infer)))
            .service(
                resource("/v2/models/{model}/versions/{version}/infer")
                    .route(web::post().to(v2::post_infer)),
            )
            .service(resource("/v2").route(web::get().to(v2::get_server_metadata)))
            .service(resource("/v2/health/live").route(web::get().to(health::get_live)))
            .service(resource("/v2/health/ready").route(web::get().to(health::get_ready)))
            // Before /v2/models/{model}, which would take "stats" for a model name.
            .service(resource("/v2/models/stats").route(web::get().to(v2::get_all_stats)))
            .service(resource("/v2/models/{model}").route(web::get().to(v2::get_model_metadata)))
            .service(resource("/v2/models/{model}/ready").route(web::get().to(v2::get_model_ready)))
            .service(
                resource("/v2/models/{model}/config").route(web::get().to(v2::get_model_config)),
            )
            .service(resource("/v2/models/{model}/stats").route(web::get().to(v2::get_model_stats)))
            .service(
                resource("/v2/models/{model}/versions/{version}")
                    .route(web::get().to(v2::get_model_metadata)),
            )
            .service(
                resource("/v2/models/{model}/versions/{version}/ready")
                    .route(web::get().to(v2::get_model_ready)),
            )
            .service(
                resource("/v2/models/{model}/versions/{version}/config")
                    .route(web::get().to(v2::get_model_config)),
            )
            .service(
                resource("/v2/models/{model}/versions/{version}/stats")
                    .route(web::get().to(v2::get_model_stats)),
            )
            .service(
                resource("/v2/repository/models/{model}/load")
                    .route(web::post().to(admin::post_model_load)),
            )
            .service(
                resource("/v2/repository/models/{model}/unload")
                    .route(web::post().to(repository::post_model_unload)),
            )
            .service(
                resource("/v2/repository/index").route(web::post().to(repository::post_index)),
            ),
    )
    .service(
        web::scope("/v1")
            .app_data(query_config())
            .service(resource("/v1/churn/score").route(web::post().to(score::post_churn_score)))
            .service(
                resource("/v1/recommendations").route(web::post().to(score::post_recommendations)),
            )
            .service(resource("/v1/sentiment").route(web::post().to(score::post_sentiment)))
            .service(
                resource("/v1/models/{model}/score").route(web::post().to(score::post_model_score)),
            )
            .service(resource("/v1/insights").route(web::post().to(insights::post_insights)))
            .service(
                resource("/v1/customers/{id}/insights")
                    .route(web::get().to(insights::get_customer_insights)),
            )
            .service(
                resource("/v1/customers/{id}").route(web::delete().to(erasure::delete_customer)),
            )
            .service(
                resource("/v1/admin/erasures/lift")
                    .route(web::post().to(erasure::post_erasure_lift)),
            )
            .service(resource("/v1/outcomes").route(web::post().to(outcomes::post_outcomes)))
            .service(resource("/v1/policy").route(web::get().to(insights::get_policy)))
            .service(resource("/v1/snapshot").route(web::get().to(snapshot_info::get_snapshot)))
            .service(
                resource("/v1/admin/snapshot/reload")
                    .route(web::post().to(admin::post_snapshot_reload)),
            )
            .service(resource("/v1/admin/report").route(web::get().to(report::get_report))),
    )
    .service(resource("/metrics").route(web::get().to(metrics::get_metrics)))
    .service(resource("/openapi.json").route(web::get().to(openapi::get_openapi)))
    .default_service(web::to(not_found).wrap(from_fn(auth::require_api_key)));
}

/// A resource at `pattern` (its full path; the scope's prefix is cut off here), labelled for metrics, behind the
/// API-key check (which lets the open routes through), whose wrong-method answer is our JSON 405, not an empty body.
fn resource(
    pattern: &'static str,
) -> Resource<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let within_scope = ["/v1", "/v2"]
        .into_iter()
        .find_map(|scope| pattern.strip_prefix(scope))
        .unwrap_or(pattern);
    web::resource(within_scope)
        .app_data(RouteLabel(pattern))
        .wrap(from_fn(auth::require_api_key))
        .default_service(web::to(method_not_allowed))
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let error = ScoreError::NotFound(format!("no route {} {}", req.method(), req.path()));
    Err(ApiError {
        error,
        protocol: protocol_of(&req),
    })
}

async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let error =
        ScoreError::MethodNotAllowed(format!("{} is not allowed on {}", req.method(), req.path()));
    Err(ApiError {
        error,
        protocol: protocol_of(&req),
    })
}

fn protocol_of(req: &HttpRequest) -> Protocol {
    if req.path().starts_with("/v2") {
        Protocol::V2
    } else {
        Protocol::V1
    }
}

/// A bad query string gets the same envelope as every other error.
fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        ApiError {
            error: ScoreError::BadRequest(format!("bad query string: {err}")),
            protocol: Protocol::V1,
        }
        .into()
    })
}
