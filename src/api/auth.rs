//! The API-key check of the HTTP front door: a resource middleware over `api_keys::KeyStore::check`.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{http::header, web};

use super::{RouteLabel, protocol_of};
use crate::error::ApiError;
use crate::scoring::AppState;

/// Whether a route pattern takes no API key: the probes (load balancers and orchestrators call them without
/// credentials), and the admin and repository routes, which take the admin token instead.
pub fn is_open(pattern: &str) -> bool {
    matches!(pattern, "/v2/health/live" | "/v2/health/ready")
        || pattern.starts_with("/v1/admin/")
        // Erasure takes the admin token, which travels in the same header an API key would.
        || pattern == "/v1/customers/{id}"
        || pattern.starts_with("/v2/repository/")
}

/// Lets a request through when no keys are configured, its route is open, or it presents a valid API key
/// (counted by key name); otherwise answers 401 in the route's error envelope. Unmatched paths need a key too,
/// so a caller without one learns nothing about which routes exist.
pub async fn require_api_key(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let Some((keys, metrics)) = state
        .as_ref()
        .and_then(|s| Some((s.api_keys.as_ref()?, &s.metrics.api_keys)))
    else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    // The resource's pattern, set before its middleware runs; none on the not-found route.
    if req
        .app_data::<RouteLabel>()
        .is_some_and(|label| is_open(label.0))
    {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match keys.check(authorization) {
        Ok(name) => {
            metrics.requests.with_label_values(&[name.as_str()]).inc();
            Ok(next.call(req).await?.map_into_left_body())
        }
        Err(refused) => {
            metrics
                .rejected
                .with_label_values(&[refused.reason()])
                .inc();
            let error = ApiError {
                error: refused.into(),
                protocol: protocol_of(req.request()),
            };
            Ok(req.error_response(error).map_into_right_body())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_open;

    #[test]
    fn only_probes_and_admin_routes_are_open() {
        for open in [
            "/v2/health/live",
            "/v2/health/ready",
            "/v1/admin/snapshot/reload",
            "/v2/repository/models/{model}/load",
        ] {
            assert!(is_open(open), "{open}");
        }
        for keyed in [
            "/v2",
            "/v2/models/{model}/infer",
            "/v1/churn/score",
            "/v1/snapshot",
            "/metrics",
            "/openapi.json",
            "/v2/health",
        ] {
            assert!(!is_open(keyed), "{keyed}");
        }
    }
}
