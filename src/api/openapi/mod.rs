//! The OpenAPI 3.1 document of the HTTP API (v1 and v2), built from the handlers' annotations and the wire types
//! they serialize, served at `GET /openapi.json`.

mod schemas;

use std::sync::OnceLock;

use actix_web::HttpResponse;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref, RefOr, Required};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use super::auth::is_open;
use super::{
    admin, erasure, health, insights, metrics, outcomes, report, repository, score, snapshot_info,
    v2,
};
use crate::error::{V1Error, V2Error};

/// The document's root: every route's handler, and the finishing touches of [`Finish`].
#[derive(OpenApi)]
#[openapi(
    info(
        title = "crmscore",
        description = "Real-time CRM scoring: churn, recommendations, sentiment, segments and insights from ONNX \
                       models (/v1), and the KServe v2 / Triton inference protocol (/v2)."
    ),
    paths(
        score::post_churn_score,
        score::post_recommendations,
        score::post_sentiment,
        score::post_model_score,
        insights::post_insights,
        insights::get_customer_insights,
        insights::get_policy,
        outcomes::post_outcomes,
        snapshot_info::get_snapshot,
        admin::post_snapshot_reload,
        erasure::delete_customer,
        erasure::post_erasure_lift,
        report::get_report,
        v2::get_server_metadata,
        health::get_live,
        health::get_ready,
        v2::get_all_stats,
        v2::get_model_metadata,
        v2::get_model_ready,
        v2::get_model_config,
        v2::get_model_stats,
        v2::post_infer,
        repository::post_index,
        repository::post_model_unload,
        admin::post_model_load,
        metrics::get_metrics,
        get_openapi,
    ),
    components(schemas(V1Error, V2Error)),
    modifiers(&Finish),
    tags(
        (name = "v1", description = "Domain scoring"),
        (name = "v1 engagement", description = "Insights and the engagement policy"),
        (name = "v1 feedback", description = "Outcomes recorded for retraining"),
        (name = "v1 admin", description = "Operator routes (admin token)"),
        (name = "v2", description = "KServe Open Inference Protocol v2 and Triton's extensions"),
        (name = "v2 repository", description = "Triton's model repository extension (admin token)"),
        (name = "health", description = "Probes (no credentials)"),
        (name = "operations", description = "Metrics and this document"),
    )
)]
struct ApiDoc;

/// The document as served.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document
///
/// This OpenAPI document (for Swagger UI, client generators and validators).
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = serde_json::Value)))]
pub async fn get_openapi() -> HttpResponse {
    static JSON: OnceLock<String> = OnceLock::new();
    let json = JSON.get_or_init(|| {
        document()
            .to_pretty_json()
            .unwrap_or_else(|e| format!(r#"{{"error": "cannot render the document: {e}"}}"#))
    });
    HttpResponse::Ok()
        .content_type("application/json")
        .body(json.as_str())
}

/// What every route shares, added to the annotated operations so each handler lists only its own answers: the
/// versioned copies of the v2 model routes, security, 401, the errors of reading a body, `Retry-After`.
struct Finish;

/// The v2 model routes that also answer under `/versions/{version}` (the same handlers).
const VERSIONED: [&str; 5] = ["", "/ready", "/config", "/stats", "/infer"];

impl Modify for Finish {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.security_schemes.insert(
            "bearer".into(),
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key (--api-keys-file) on the scoring and metadata routes; the admin token \
                         (--admin-token) on /v1/admin and /v2/repository routes",
                    ))
                    .build(),
            ),
        );
        let paths = &mut openapi.paths.paths;
        for suffix in VERSIONED {
            let plain = format!("/v2/models/{{model}}{suffix}");
            if let Some(item) = paths.get(&plain) {
                let versioned = versioned(item.clone());
                paths.insert(
                    format!("/v2/models/{{model}}/versions/{{version}}{suffix}"),
                    versioned,
                );
            }
        }
        for (path, item) in paths.iter_mut() {
            let envelope = match path.starts_with("/v2") {
                true => V2Error::name(),
                false => V1Error::name(),
            };
            for op in operations(item) {
                finish(path, op, &envelope);
            }
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.post,
        &mut item.put,
        &mut item.delete,
        &mut item.patch,
        &mut item.head,
        &mut item.options,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// A plain v2 model route's item as its `/versions/{version}` twin.
fn versioned(mut item: PathItem) -> PathItem {
    for op in operations(&mut item) {
        let version = ParameterBuilder::new()
            .name("version")
            .parameter_in(ParameterIn::Path)
            .required(Required::True)
            .description(Some(
                "Model version: only the served one is found (the manifest's `version`)",
            ))
            .schema(Some(String::schema()))
            .build();
        let parameters = op.parameters.get_or_insert_with(Vec::new);
        let at = parameters
            .iter()
            .position(|p| p.name == "model")
            .map_or(0, |i| i + 1);
        parameters.insert(at, version);
        op.operation_id = op.operation_id.take().map(|id| format!("{id}_version"));
        op.summary = op.summary.take().map(|s| format!("{s} (version)"));
    }
    item
}

/// Adds the shared answers to one operation of `path`.
fn finish(path: &str, op: &mut Operation, envelope: &str) {
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(envelope)))
                    .build(),
            )
            .build()
    };
    let responses = &mut op.responses.responses;
    let mut add = |status: &str, description: &str| {
        responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(error(description)));
    };
    let probe = matches!(path, "/v2/health/live" | "/v2/health/ready");
    if probe {
        // An empty requirement: no credentials.
        op.security = Some(vec![SecurityRequirement::default()]);
    } else {
        op.security = Some(vec![SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
        let credential = match is_open(path) {
            true => "The admin token is missing or wrong (when --admin-token is set)",
            false => "The API key is missing or invalid (when --api-keys-file is set)",
        };
        add("401", credential);
    }
    if op.request_body.is_some() {
        add("400", "The body is not valid JSON for this route");
        add("408", "The body did not arrive in time");
        add("413", "The body is larger than the server's limit");
        add("415", "Unsupported content type or content encoding");
        add(
            "503",
            "The server is reading too many request bodies at once; retry shortly",
        );
    }
    if let Some(RefOr::T(busy)) = op.responses.responses.get_mut("503") {
        busy.headers.insert(
            "Retry-After".into(),
            HeaderBuilder::new()
                .schema(u64::schema())
                .description(Some(
                    "Seconds to wait before retrying (queue full, not ready, body budget exceeded)",
                ))
                .build(),
        );
    }
}
