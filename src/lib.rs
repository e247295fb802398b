//! crmscore: scores CRM customers (churn and more) from ONNX models and a Parquet feature snapshot, over HTTP.

pub mod api;
pub mod api_keys;
pub mod batch;
pub mod batching;
pub mod config;
pub mod durable;
pub mod engagement;
pub mod erasure;
pub mod error;
pub mod explain;
pub mod feedback;
pub mod grpc;
pub mod inference;
pub mod inspect;
pub mod model;
pub mod report;
pub mod scoring;
pub mod shutdown;
pub mod snapshot;
pub mod storage;
pub mod telemetry;
pub mod text;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{ServerHandle, Service};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};

pub use config::Config;
use model::registry::BatchingOverrides;
use model::session::SessionOptions;
use model::{ModelError, ModelRegistry};
use scoring::{AppState, Freshness, Limits};
use snapshot::{ReloadPolicy, SnapshotReloader, SnapshotStore};
use telemetry::Metrics;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    #[error(transparent)]
    Policy(#[from] engagement::PolicyError),
    #[error(transparent)]
    ApiKeys(#[from] api_keys::KeyFileError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Erasure(#[from] erasure::ErasureError),
    /// The outcome log's folder could not be opened or its leftover write-ahead log not recovered.
    #[error("outcome log: {0}")]
    Feedback(#[from] feedback::FeedbackError),
    /// `--models` or `--snapshots` names an object store that cannot be used (a bad URL, or models not mirrored).
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    /// A configuration the server refuses to run with (open admin routes on the network, an empty token).
    #[error("{0}")]
    Unsafe(String),
}

/// Refuses configurations that would expose the admin routes by accident: an empty admin token (which would read
/// as "no token"), and no token on an address other clients can reach unless `--allow-open-admin` says so.
pub fn check_safe(config: &Config) -> Result<(), StartError> {
    match &config.admin_token {
        Some(token) if token.trim().is_empty() => Err(StartError::Unsafe(
            "--admin-token (CRMSCORE_ADMIN_TOKEN) is empty: give a token, or leave it unset to keep the admin \
             routes open on a loopback --bind"
                .into(),
        )),
        None if !config.bind.ip().to_canonical().is_loopback() && !config.allow_open_admin => {
            Err(StartError::Unsafe(format!(
                "refusing to serve open admin routes on {}, which is not a loopback address: set --admin-token \
                 (CRMSCORE_ADMIN_TOKEN), bind to 127.0.0.1, or pass --allow-open-admin to accept the risk",
                config.bind
            )))
        }
        _ => Ok(()),
    }
}

/// A started server: its address and the handles to stop or wait for it.
pub struct RunningServer {
    /// The address it listens on (the real port when the config asked for port 0).
    pub addr: SocketAddr,
    /// Shared state, for tests and benches that look inside.
    pub state: web::Data<AppState>,
    /// The gRPC address, when --grpc-bind asked for one (the real port when it said port 0).
    pub grpc: Option<SocketAddr>,
    grpc_server: Option<grpc::GrpcServer>,
    handle: ServerHandle,
    http: Option<JoinHandle<std::io::Result<()>>>,
    stopping: Arc<AtomicBool>,
}

impl RunningServer {
    /// Blocks until the HTTP server ends (SIGINT/SIGTERM stop it gracefully, as does `stop`), then stops gRPC.
    pub fn wait(mut self) -> std::io::Result<()> {
        let result = match self.http.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("HTTP thread panicked"))),
            None => Ok(()),
        };
        if let Some(grpc) = self.grpc_server.take() {
            grpc.join();
        }
        // Requests are done: what the log holds goes to Parquet before the process ends.
        if let Some(log) = &self.state.feedback {
            log.close();
        }
        self.stopping.store(true, Ordering::Relaxed);
        result
    }

    /// Stops accepting (HTTP and gRPC), lets in-flight requests finish, and waits.
    pub fn stop(mut self) {
        self.state.drain.start();
        self.stopping.store(true, Ordering::Relaxed);
        if let Some(grpc) = &mut self.grpc_server {
            grpc.shutdown();
        }
        let handle = self.handle.clone();
        // ServerHandle::stop is async; a throwaway runtime drives it from plain threads and tests.
        actix_web::rt::System::new().block_on(handle.stop(true));
        let _ = self.wait();
    }
}

/// Whether the server is ready: Ok holds the staleness reason when the snapshot is stale but served (serve
/// policy), Err why it is not (a model folder that failed to load, no model, no snapshot, or a stale one under
/// the refuse policy).
pub fn ready(state: &AppState) -> Result<Option<String>, String> {
    if state.drain.is_draining() {
        return Err("shutting down".into());
    }
    if let Some(reason) = state.models.not_ready_reason() {
        return Err(reason);
    }
    let snapshot = state
        .snapshots
        .current()
        .ok_or_else(|| state.snapshots.not_served_reason())?;
    match state.freshness.stale_reason(&snapshot) {
        Some(reason) if state.freshness.policy == config::StalePolicy::Refuse => Err(reason),
        stale => Ok(stale),
    }
}

/// Loads the models (those that load; with --strict-models, failing fast on any that does not), starts HTTP, and
/// loads the newest snapshot in the background.
pub fn start(config: Config) -> Result<RunningServer, StartError> {
    check_safe(&config)?;
    api::body::BodyPolicy::check(&config).map_err(StartError::Unsafe)?;
    // Files the operator named are checked before the models load, so a typo fails in milliseconds.
    let tls = tls::server_config(config.tls_cert.as_deref(), config.tls_key.as_deref())?;
    let api_keys = match &config.api_keys_file {
        Some(path) => {
            let store = api_keys::KeyStore::open(path)?;
            tracing::info!(file = %path.display(), keys = store.len(), "API keys required");
            Some(store)
        }
        None => None,
    };
    if config.admin_token.is_none() && !config.bind.ip().to_canonical().is_loopback() {
        tracing::warn!(bind = %config.bind, "--allow-open-admin: the admin and repository routes are open to every client");
    }
    // Before anything is served: an unreadable erasure list must stop the start, not serve erased customers.
    let erasures = match config.state_dir.as_deref() {
        Some(dir) if !dir.as_os_str().is_empty() => Some(Arc::new(erasure::Erasures::open(dir)?)),
        _ => None,
    };
    model::runtime::environment(config.onnxruntime_lib.as_deref())?;
    let metrics = Metrics::new();
    metrics.set_build_info(ort::info());
    let overrides = BatchingOverrides {
        max_batch_size: config.max_batch_size,
        max_delay_us: config.max_delay_us,
        queue_capacity: config.queue_capacity,
        workers: config.batch_workers,
        max_tokens: config.max_tokens,
    };
    let device = model::cuda::decide(config.device, &config.cuda_options())
        .map_err(model::ModelError::Library)?;
    let options = SessionOptions {
        device,
        intra_threads: config.intra_threads,
        cuda: config.cuda_options(),
    };
    // Models in an object store are mirrored into a local folder first; the loader reads that folder.
    let model_sync = storage::ModelSync::open(&config.models, config.state_dir.as_deref())?;
    let models_dir = model_sync
        .as_ref()
        .map_or_else(|| config.models.clone(), |s| s.local().to_path_buf());
    let models = match config.strict_models {
        true => ModelRegistry::load(&models_dir, &overrides, &options, &metrics)?,
        false => ModelRegistry::load_available(&models_dir, &overrides, &options, &metrics),
    }
    .with_default_timeout(
        config
            .default_timeout_ms
            .map(std::time::Duration::from_millis),
    );
    let policies = match &config.policy {
        Some(path) if path.exists() => {
            let store =
                engagement::PolicyStore::open(path, &engagement::insights::vocabulary(&models))?;
            tracing::info!(policy = %path.display(), version = %store.current().version, "engagement policy ready");
            Some(store)
        }
        Some(path) => {
            tracing::warn!(policy = %path.display(), "no engagement policy file: insights carry no next best action");
            None
        }
        None => None,
    };
    let mut reloader = SnapshotReloader::new(
        &config.snapshots,
        ReloadPolicy {
            max_row_drop: config.max_row_drop.clamp(0.0, 1.0),
            max_psi: config.max_psi,
        },
    )
    .persisting_in(config.state_dir.as_deref())
    .settling_after(
        config
            .snapshot_settle_seconds
            .map(std::time::Duration::from_secs),
    )
    .accepting_row_drop_once(config.accept_row_drop_once);
    if let Some(erasures) = &erasures {
        reloader = reloader.preparing_with(erasures.prepare());
    }
    let feedback = match config.feedback_dir.as_deref() {
        Some(dir) if !dir.as_os_str().is_empty() => Some(feedback::FeedbackLog::open(
            dir,
            config.feedback_options(),
            metrics.feedback.clone(),
        )?),
        _ => None,
    };
    let state = web::Data::new(AppState {
        engagement: engagement::insights::Engagement::new(policies),
        models,
        snapshots: SnapshotStore::default(),
        metrics,
        limits: Limits {
            max_items: config.max_items_per_request,
            max_body_bytes: config.max_body_bytes,
            max_text_chars: config.max_text_chars,
            max_recommendations: config.max_recommendations,
            max_output_values: config.max_output_values,
        },
        reloader,
        erasures,
        freshness: Freshness {
            max_age: config.max_snapshot_age.map(std::time::Duration::from_secs),
            policy: config.stale_policy,
        },
        admin_token: config.admin_token.clone(),
        drain: Arc::new(shutdown::Drain::default()),
        api_keys,
        feedback_dir: config.feedback_dir.clone(),
        feedback,
        model_sync,
    });
    let stopping = Arc::new(AtomicBool::new(false));
    spawn_watcher(state.clone(), config.poll(), stopping.clone())?;

    let app_state = state.clone();
    let body_policy = api::body::BodyPolicy::new(&config, &state.metrics);
    let access_log = config.access_log;
    let mut server = HttpServer::new(move || {
        let metrics_state = app_state.clone();
        App::new()
            .app_data(app_state.clone())
            .wrap(from_fn(api::body::close_unfinished))
            .wrap_fn(move |req, srv| {
                let started = Instant::now();
                let method = req.method().clone();
                let state = metrics_state.clone();
                let fut = srv.call(req);
                async move {
                    let res = fut.await?;
                    let seconds = started.elapsed().as_secs_f64();
                    // Set by the resource that answered; none when no route matched.
                    let route = res
                        .request()
                        .app_data::<api::RouteLabel>()
                        .map_or("unmatched", |label| label.0);
                    let mut res = res;
                    // Draining: the client opens its next request elsewhere, so no keep-alive reuse races the close.
                    if state.drain.is_draining() {
                        res.response_mut()
                            .head_mut()
                            .set_connection_type(actix_web::http::ConnectionType::Close);
                    }
                    let status = res.status();
                    state.metrics.observe_request(route, method.as_str(), status.as_str(), seconds);
                    // Client errors are the client's business: debug, so a hostile client cannot flood the log.
                    if status.is_client_error() {
                        tracing::debug!(route, method = %method, status = status.as_u16(), "client error");
                    }
                    if access_log {
                        // The route pattern, never the path: ids and query strings stay out of the log.
                        let bytes = match res.response().body().size() {
                            BodySize::Sized(n) => Some(n),
                            BodySize::None => Some(0),
                            BodySize::Stream => None,
                        };
                        tracing::info!(
                            target: "crmscore::access",
                            route,
                            method = %method,
                            status = status.as_u16(),
                            latency_ms = seconds * 1e3,
                            bytes,
                            "request"
                        );
                    }
                    Ok(res)
                }
            })
            // Outside the metrics: the access log counts the bytes of the uncompressed reply.
            .wrap(from_fn(api::compress::compress_large))
            .configure(|cfg| api::configure(cfg, &body_policy))
    });
    if let Some(workers) = config.http_workers {
        server = server.workers(workers.max(1));
    }
    // Our own signal handling: actix stops at once on SIGINT, and never turns readiness off first.
    let grace = std::time::Duration::from_millis(config.shutdown_grace_ms);
    server = server
        .shutdown_signal(shutdown::on_signal(state.drain.clone(), grace))
        .shutdown_timeout(config.shutdown_timeout_s);
    let server = match tls {
        Some(tls) => server.bind_rustls_0_23(config.bind, tls),
        None => server.bind(config.bind),
    }
    .map_err(|source| StartError::Bind {
        addr: config.bind,
        source,
    })?;
    let addr = server.addrs().first().copied().unwrap_or(config.bind);
    let grpc_server = match config.grpc_bind {
        Some(bind) => Some(
            grpc::start(state.clone(), grpc::GrpcOptions::of(&config, bind))
                // The watcher started above would otherwise outlive the failed start.
                .inspect_err(|_| stopping.store(true, Ordering::Relaxed))?,
        ),
        None => None,
    };
    state.metrics.up.set(1);
    let server = server.run();
    let handle = server.handle();
    let http = std::thread::Builder::new()
        .name("http".into())
        .spawn(move || actix_web::rt::System::new().block_on(server))
        .map_err(StartError::Thread)?;
    tracing::info!(%addr, tls = config.tls_cert.is_some(), "listening");
    Ok(RunningServer {
        addr,
        state,
        grpc: grpc_server.as_ref().map(|g| g.addr),
        grpc_server,
        handle,
        http: Some(http),
        stopping,
    })
}

/// One rescan of the API keys file, the snapshots path, then the model folders (a new model version or folder is
/// checked against the snapshot just served; a removed folder's model is unloaded).
pub fn rescan(state: &AppState) {
    // First: a cheap read, not to be held up by a long snapshot load.
    if let Some(keys) = &state.api_keys {
        api_keys::reload(keys, &state.metrics.api_keys);
    }
    let columns = state.models.feature_columns();
    let owned = state.models.owned_column();
    let scorer = churn_scorer(state);
    state.reloader.reload_once(
        &state.snapshots,
        &columns,
        owned.as_deref(),
        &state.metrics,
        scorer.as_ref().map(|s| s as &dyn snapshot::SampleScorer),
    );
    if let Some(sync) = &state.model_sync
        && let Err(error) = sync.sync()
    {
        tracing::error!(%error, "models not mirrored from the object store; the served models stay");
    }
    let reloaded = state
        .models
        .reload_changed(&|spec| provide_columns(state, spec), &state.metrics);
    if let Some(snapshot) = &state.snapshots.current() {
        state.models.prepare_explainers(snapshot);
    }
    reload_policy(state, !reloaded.is_empty());
}

/// The churn model as the drift check's scorer, when it is served and tabular.
pub fn churn_scorer(state: &AppState) -> Option<model::sample_scores::ModelScorer> {
    state
        .models
        .get("churn")
        .and_then(model::sample_scores::ModelScorer::of)
}

/// Makes sure the served snapshot has the columns `spec` needs besides the served models' (re-reading it with
/// them if not), so a model added or fixed at run time can serve; Err says why it cannot.
pub fn provide_columns(state: &AppState, spec: &model::ModelSpec) -> Result<(), String> {
    let mut columns = state.models.feature_columns();
    for column in spec.feature_columns() {
        if !columns.contains(column) {
            columns.push(column.clone());
        }
    }
    let owned = state
        .models
        .owned_column()
        .or_else(|| spec.owned_column().map(str::to_string));
    state
        .reloader
        .widen(&state.snapshots, &columns, owned.as_deref())
}

/// Loads a changed policy file (or, after a model reload changed what expressions may name, the same file
/// again); a refused file keeps the served policy, with the reason in the log, a metric and `/v1/policy`.
fn reload_policy(state: &AppState, models_changed: bool) {
    let Some(store) = &state.engagement.policies else {
        return;
    };
    let vocabulary = engagement::insights::vocabulary(&state.models);
    let outcome = match models_changed {
        true => Some(store.reload(&vocabulary)),
        false => store.reload_if_changed(&vocabulary),
    };
    match outcome {
        None => {}
        Some(Ok(policy)) => {
            state.metrics.policy_loads.inc();
            tracing::info!(version = %policy.version, "engagement policy loaded");
        }
        Some(Err(error)) => {
            state.metrics.policy_load_failures.inc();
            tracing::error!(%error, "engagement policy refused; the served policy stays");
        }
    }
    // A bad edit that is reverted clears the error without a load: read the state rather than the event.
    let refused = store.status().last_error.is_some();
    state.metrics.policy_stale.set(i64::from(refused));
}

/// Rescans every `poll` until the server stops: new snapshots and model versions are picked up without a restart.
fn spawn_watcher(
    state: web::Data<AppState>,
    poll: std::time::Duration,
    stopping: Arc<AtomicBool>,
) -> Result<(), StartError> {
    std::thread::Builder::new()
        .name("watcher".into())
        .spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                rescan(&state);
                std::thread::sleep(poll);
            }
        })
        .map_err(StartError::Thread)?;
    Ok(())
}
