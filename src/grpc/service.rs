//! The methods of `inference.GRPCInferenceService`: each goes through [`InferenceService::answer`] (admission and
//! the request metric) to a plain function over the shared state; protobuf shapes come from `convert`.

use std::future::Future;
use std::time::{Duration, Instant};

use actix_web::web;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use super::proto::grpc_inference_service_server::GrpcInferenceService;
use super::proto::*;
use super::status::{self, status};
use super::{convert, describe};
use crate::error::ScoreError;
use crate::inference;
use crate::model::ModelHandle;
use crate::scoring::{self, AppState};

/// The gRPC service over the server's shared state (models, queues, snapshot, metrics).
pub struct InferenceService {
    state: web::Data<AppState>,
}

impl InferenceService {
    /// A service answering from `state`.
    pub fn new(state: web::Data<AppState>) -> InferenceService {
        InferenceService { state }
    }

    /// Every request passes here before it is answered: with --api-keys-file, every RPC but the two server
    /// probes needs `authorization: Bearer <key>` metadata, checked and counted exactly as on HTTP.
    fn admit<T>(&self, route: &'static str, request: &Request<T>) -> Result<(), Status> {
        let Some(keys) = &self.state.api_keys else {
            return Ok(());
        };
        if OPEN_RPCS.contains(&route) {
            return Ok(());
        }
        let authorization = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let metrics = &self.state.metrics.api_keys;
        match keys.check(authorization) {
            Ok(name) => {
                metrics.requests.with_label_values(&[name.as_str()]).inc();
                Ok(())
            }
            Err(refused) => {
                metrics
                    .rejected
                    .with_label_values(&[refused.reason()])
                    .inc();
                Err(status::status(&refused.into()))
            }
        }
    }

    /// Admits `request`, answers it with `handle`, and records it like an HTTP request: route `route` (e.g.
    /// `grpc:ModelInfer`), method POST (gRPC rides on HTTP/2 POST), status the gRPC code's name.
    async fn answer<'s, Req, Reply, Fut>(
        &'s self,
        route: &'static str,
        request: Request<Req>,
        handle: impl FnOnce(&'s AppState, Request<Req>) -> Fut,
    ) -> Result<Response<Reply>, Status>
    where
        Fut: Future<Output = Result<Reply, Status>>,
    {
        let mut observed = Observed {
            metrics: &self.state.metrics,
            route,
            started: Instant::now(),
            done: false,
        };
        let answered = match self.admit(route, &request) {
            Ok(()) => handle(&self.state, request).await,
            Err(refused) => Err(refused),
        };
        let code = answered
            .as_ref()
            .map_or_else(Status::code, |_| tonic::Code::Ok);
        observed.record(code);
        if let Err(error) = &answered {
            tracing::debug!(
                route,
                code = status::label(code),
                message = error.message(),
                "gRPC error"
            );
        }
        answered.map(Response::new)
    }

    /// Answers an RPC of Triton's protocol that this server does not serve: UNIMPLEMENTED, saying why.
    async fn unserved<Req, Reply>(
        &self,
        route: &'static str,
        request: Request<Req>,
        why: &'static str,
    ) -> Result<Response<Reply>, Status> {
        let rpc = route.trim_start_matches("grpc:");
        self.answer(route, request, |_, _| async move {
            Err(status::unimplemented(rpc, why))
        })
        .await
    }
}

/// Records one request metric when the call is answered, or CANCELLED when its future is dropped unanswered (the
/// client went away, or the transport cut the call at its `grpc-timeout`).
struct Observed<'m> {
    metrics: &'m crate::telemetry::Metrics,
    route: &'static str,
    started: Instant,
    done: bool,
}

impl Observed<'_> {
    fn record(&mut self, code: tonic::Code) {
        let seconds = self.started.elapsed().as_secs_f64();
        self.metrics
            .observe_request(self.route, "POST", status::label(code), seconds);
        self.done = true;
    }
}

impl Drop for Observed<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.record(tonic::Code::Cancelled);
        }
    }
}

/// The served model `name`; a non-empty `version` must be the served one.
fn served_model(
    state: &AppState,
    name: &str,
    version: &str,
) -> Result<std::sync::Arc<ModelHandle>, ScoreError> {
    let model = scoring::find_model(&state.models, name, None)?;
    if !version.is_empty() && version != model.spec.version {
        return Err(ScoreError::NotFound(format!(
            "model '{name}' has no version '{version}'; the served version is '{}'",
            model.spec.version
        )));
    }
    Ok(model)
}

/// The call's `grpc-timeout` (the client's deadline), if it sent one: 1 to 8 digits and a unit (H, M, S, m, u, n).
pub fn grpc_timeout(metadata: &MetadataMap) -> Result<Option<Duration>, ScoreError> {
    let Some(value) = metadata.get("grpc-timeout") else {
        return Ok(None);
    };
    let bad = || {
        ScoreError::BadRequest(format!(
            "grpc-timeout {value:?} is not 1 to 8 digits followed by a unit (H, M, S, m, u or n)"
        ))
    };
    let text = value.to_str().map_err(|_| bad())?;
    let split = text.len().checked_sub(1).ok_or_else(bad)?;
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let timeout = match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return Err(bad()),
    };
    Ok(Some(timeout))
}

/// Whole milliseconds of a timeout, rounded up so a sub-millisecond deadline is not "none".
fn millis(timeout: Duration) -> u64 {
    u64::try_from(timeout.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

async fn model_infer(
    state: &AppState,
    request: Request<ModelInferRequest>,
) -> Result<ModelInferResponse, Status> {
    // The deadline counts from arrival, like HTTP's x-request-timeout-ms.
    let timeout = grpc_timeout(request.metadata()).map_err(|e| status(&e))?;
    let deadline = scoring::deadline(state, timeout.map(millis));
    let request = request.into_inner();
    let model =
        served_model(state, &request.model_name, &request.model_version).map_err(|e| status(&e))?;
    let call = convert::infer_call(request.inputs, request.raw_input_contents, request.outputs)
        .map_err(|e| status(&e))?;
    let inferred = inference::infer(state, model, call, deadline)
        .await
        .map_err(|e| status(&e))?;
    Ok(convert::infer_response(&inferred, request.id))
}

/// RPCs answered without an API key: the probes, like `/v2/health/live` and `/v2/health/ready` on HTTP.
const OPEN_RPCS: [&str; 2] = ["grpc:ServerLive", "grpc:ServerReady"];

#[tonic::async_trait]
impl GrpcInferenceService for InferenceService {
    type ModelStreamInferStream =
        tonic::codegen::tokio_stream::Empty<Result<ModelStreamInferResponse, Status>>;

    async fn server_live(
        &self,
        request: Request<ServerLiveRequest>,
    ) -> Result<Response<ServerLiveResponse>, Status> {
        self.answer("grpc:ServerLive", request, |_, _| async {
            Ok(ServerLiveResponse { live: true })
        })
        .await
    }

    async fn server_ready(
        &self,
        request: Request<ServerReadyRequest>,
    ) -> Result<Response<ServerReadyResponse>, Status> {
        self.answer("grpc:ServerReady", request, |state, _| async move {
            Ok(ServerReadyResponse {
                ready: crate::ready(state).is_ok(),
            })
        })
        .await
    }

    async fn model_ready(
        &self,
        request: Request<ModelReadyRequest>,
    ) -> Result<Response<ModelReadyResponse>, Status> {
        // As Triton: an unknown model or version is not ready (false), not an error.
        self.answer("grpc:ModelReady", request, |state, request| async move {
            let r = request.get_ref();
            let ready = served_model(state, &r.name, &r.version).is_ok();
            Ok(ModelReadyResponse { ready })
        })
        .await
    }

    async fn server_metadata(
        &self,
        request: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        self.answer("grpc:ServerMetadata", request, |_, _| async {
            Ok(ServerMetadataResponse {
                name: "crmscore".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                extensions: vec![],
            })
        })
        .await
    }

    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        self.answer("grpc:ModelMetadata", request, |state, request| async move {
            let r = request.get_ref();
            let model = served_model(state, &r.name, &r.version).map_err(|e| status(&e))?;
            Ok(describe::model_metadata(&model))
        })
        .await
    }

    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        self.answer("grpc:ModelInfer", request, model_infer).await
    }

    async fn model_config(
        &self,
        request: Request<ModelConfigRequest>,
    ) -> Result<Response<ModelConfigResponse>, Status> {
        self.answer("grpc:ModelConfig", request, |state, request| async move {
            let r = request.get_ref();
            let model = served_model(state, &r.name, &r.version).map_err(|e| status(&e))?;
            Ok(ModelConfigResponse {
                config: Some(describe::model_config(&model)),
            })
        })
        .await
    }

    async fn model_stream_infer(
        &self,
        request: Request<Streaming<ModelInferRequest>>,
    ) -> Result<Response<Self::ModelStreamInferStream>, Status> {
        let why = "streaming inference is not supported; call ModelInfer";
        self.unserved("grpc:ModelStreamInfer", request, why).await
    }

    async fn model_statistics(
        &self,
        request: Request<ModelStatisticsRequest>,
    ) -> Result<Response<ModelStatisticsResponse>, Status> {
        let why = "per-model counters and latencies are on GET /metrics (Prometheus)";
        self.unserved("grpc:ModelStatistics", request, why).await
    }

    async fn repository_index(
        &self,
        request: Request<RepositoryIndexRequest>,
    ) -> Result<Response<RepositoryIndexResponse>, Status> {
        let why = "the repository is the --models folder; its models are listed over HTTP";
        self.unserved("grpc:RepositoryIndex", request, why).await
    }

    async fn repository_model_load(
        &self,
        request: Request<RepositoryModelLoadRequest>,
    ) -> Result<Response<RepositoryModelLoadResponse>, Status> {
        let why = "models reload when their folder changes, or over the HTTP admin routes";
        self.unserved("grpc:RepositoryModelLoad", request, why)
            .await
    }

    async fn repository_model_unload(
        &self,
        request: Request<RepositoryModelUnloadRequest>,
    ) -> Result<Response<RepositoryModelUnloadResponse>, Status> {
        let why = "models are managed over the HTTP admin routes";
        self.unserved("grpc:RepositoryModelUnload", request, why)
            .await
    }

    async fn system_shared_memory_status(
        &self,
        request: Request<SystemSharedMemoryStatusRequest>,
    ) -> Result<Response<SystemSharedMemoryStatusResponse>, Status> {
        let why = "shared memory is not supported; send tensors in the request";
        self.unserved("grpc:SystemSharedMemoryStatus", request, why)
            .await
    }

    async fn system_shared_memory_register(
        &self,
        request: Request<SystemSharedMemoryRegisterRequest>,
    ) -> Result<Response<SystemSharedMemoryRegisterResponse>, Status> {
        let why = "shared memory is not supported; send tensors in the request";
        self.unserved("grpc:SystemSharedMemoryRegister", request, why)
            .await
    }

    async fn system_shared_memory_unregister(
        &self,
        request: Request<SystemSharedMemoryUnregisterRequest>,
    ) -> Result<Response<SystemSharedMemoryUnregisterResponse>, Status> {
        let why = "shared memory is not supported; send tensors in the request";
        self.unserved("grpc:SystemSharedMemoryUnregister", request, why)
            .await
    }

    async fn cuda_shared_memory_status(
        &self,
        request: Request<CudaSharedMemoryStatusRequest>,
    ) -> Result<Response<CudaSharedMemoryStatusResponse>, Status> {
        let why = "CUDA shared memory is not supported; send tensors in the request";
        self.unserved("grpc:CudaSharedMemoryStatus", request, why)
            .await
    }

    async fn cuda_shared_memory_register(
        &self,
        request: Request<CudaSharedMemoryRegisterRequest>,
    ) -> Result<Response<CudaSharedMemoryRegisterResponse>, Status> {
        let why = "CUDA shared memory is not supported; send tensors in the request";
        self.unserved("grpc:CudaSharedMemoryRegister", request, why)
            .await
    }

    async fn cuda_shared_memory_unregister(
        &self,
        request: Request<CudaSharedMemoryUnregisterRequest>,
    ) -> Result<Response<CudaSharedMemoryUnregisterResponse>, Status> {
        let why = "CUDA shared memory is not supported; send tensors in the request";
        self.unserved("grpc:CudaSharedMemoryUnregister", request, why)
            .await
    }

    async fn trace_setting(
        &self,
        request: Request<TraceSettingRequest>,
    ) -> Result<Response<TraceSettingResponse>, Status> {
        let why = "tracing is set with RUST_LOG and --log-format at start";
        self.unserved("grpc:TraceSetting", request, why).await
    }

    async fn log_settings(
        &self,
        request: Request<LogSettingsRequest>,
    ) -> Result<Response<LogSettingsResponse>, Status> {
        let why = "logging is set with RUST_LOG and --log-format at start";
        self.unserved("grpc:LogSettings", request, why).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout(value: &'static str) -> Result<Option<Duration>, ScoreError> {
        let mut metadata = MetadataMap::new();
        metadata.insert("grpc-timeout", value.parse().unwrap());
        grpc_timeout(&metadata)
    }

    #[test]
    fn grpc_timeouts_parse_in_every_unit() {
        assert_eq!(grpc_timeout(&MetadataMap::new()).unwrap(), None);
        assert_eq!(timeout("250m").unwrap(), Some(Duration::from_millis(250)));
        assert_eq!(timeout("2S").unwrap(), Some(Duration::from_secs(2)));
        assert_eq!(timeout("1H").unwrap(), Some(Duration::from_secs(3600)));
        assert_eq!(
            timeout("99999999u").unwrap(),
            Some(Duration::from_micros(99_999_999))
        );
        assert_eq!(millis(timeout("1500u").unwrap().unwrap()), 2, "rounded up");
        assert_eq!(millis(timeout("1n").unwrap().unwrap()), 1);
        for bad in ["", "m", "123", "123456789m", "12x", "-1m", "1.5S"] {
            assert!(timeout(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
