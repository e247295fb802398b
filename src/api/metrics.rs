//! Prometheus scrape endpoint.

use std::time::SystemTime;

use actix_web::{HttpResponse, web};

use crate::scoring::AppState;

/// Prometheus text format; gauges that are cheaper to read than to maintain are set here.
pub async fn get_metrics(state: web::Data<AppState>) -> HttpResponse {
    for model in state.models.iter() {
        state
            .metrics
            .set_queue_depth(&model.spec.name, model.queue.depth());
    }
    if let Some(snapshot) = state.snapshots.current() {
        let age = SystemTime::now()
            .duration_since(snapshot.loaded_at)
            .unwrap_or_default();
        state.metrics.snapshot_age.set(age.as_secs_f64());
        state.metrics.snapshot_rows.set(snapshot.rows() as i64);
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
