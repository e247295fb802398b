//! Prometheus scrape endpoint.

use actix_web::{HttpResponse, web};

use crate::scoring::AppState;

/// Prometheus metrics
///
/// Prometheus text format; gauges that are cheaper to read than to maintain are set here.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format", body = String,
        content_type = "text/plain; version=0.0.4; charset=utf-8")))]
pub async fn get_metrics(state: web::Data<AppState>) -> HttpResponse {
    for model in state.models.all() {
        state
            .metrics
            .set_queue_depth(&model.spec.name, model.queue.depth());
    }
    if let Some(snapshot) = state.snapshots.current() {
        state.metrics.snapshot_age.set(snapshot.age().as_secs_f64());
        state.metrics.snapshot_rows.set(snapshot.rows() as i64);
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
