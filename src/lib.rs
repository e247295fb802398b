//! crmscore: scores CRM customers (churn and more) from ONNX models and a Parquet feature snapshot, over HTTP.

pub mod api;
pub mod batching;
pub mod config;
pub mod error;
pub mod inspect;
pub mod model;
pub mod scoring;
pub mod snapshot;
pub mod telemetry;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use actix_web::dev::{ServerHandle, Service};
use actix_web::{App, HttpServer, web};

pub use config::Config;
use model::registry::BatchingOverrides;
use model::session::SessionOptions;
use model::{ModelError, ModelRegistry};
use scoring::{AppState, Limits};
use snapshot::SnapshotStore;
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
}

/// A started server: its address and the handles to stop or wait for it.
pub struct RunningServer {
    /// The address it listens on (the real port when the config asked for port 0).
    pub addr: SocketAddr,
    /// Shared state, for tests and benches that look inside.
    pub state: web::Data<AppState>,
    handle: ServerHandle,
    http: Option<JoinHandle<std::io::Result<()>>>,
    stopping: Arc<AtomicBool>,
}

impl RunningServer {
    /// Blocks until the HTTP server ends (SIGINT/SIGTERM stop it gracefully, as does `stop`).
    pub fn wait(mut self) -> std::io::Result<()> {
        let result = match self.http.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("HTTP thread panicked"))),
            None => Ok(()),
        };
        self.stopping.store(true, Ordering::Relaxed);
        result
    }

    /// Stops accepting, lets in-flight requests finish, and waits.
    pub fn stop(self) {
        self.stopping.store(true, Ordering::Relaxed);
        let handle = self.handle.clone();
        // ServerHandle::stop is async; a throwaway runtime drives it from plain threads and tests.
        actix_web::rt::System::new().block_on(handle.stop(true));
        let _ = self.wait();
    }
}

/// Whether the server can answer snapshot requests; Err holds the reason.
pub fn ready(state: &AppState) -> Result<(), String> {
    if state.snapshots.current().is_some() {
        return Ok(());
    }
    Err(match state.snapshots.last_error() {
        Some(e) => format!("no snapshot is served yet; last attempt failed: {e}"),
        None => "no snapshot is served yet (loading, or none complete in the snapshots folder)"
            .to_string(),
    })
}

/// Loads the models (failing fast on any mismatch), starts HTTP, and loads the newest snapshot in the background.
pub fn start(config: Config) -> Result<RunningServer, StartError> {
    model::runtime::environment(config.onnxruntime_lib.as_deref())?;
    let metrics = Metrics::new();
    let overrides = BatchingOverrides {
        max_batch_size: config.max_batch_size,
        max_delay_us: config.max_delay_us,
        queue_capacity: config.queue_capacity,
        workers: config.batch_workers,
    };
    let options = SessionOptions {
        device: config.device,
        intra_threads: config.intra_threads,
    };
    let models = ModelRegistry::load(&config.models, &overrides, &options, &metrics)?;
    let state = web::Data::new(AppState {
        models,
        snapshots: SnapshotStore::default(),
        metrics,
        limits: Limits {
            max_items: config.max_items_per_request,
            max_body_bytes: config.max_body_bytes,
        },
    });
    let stopping = Arc::new(AtomicBool::new(false));
    spawn_first_snapshot_load(&config, state.clone(), stopping.clone())?;

    let app_state = state.clone();
    let max_body = config.max_body_bytes;
    let mut server = HttpServer::new(move || {
        let metrics_state = app_state.clone();
        App::new()
            .app_data(app_state.clone())
            .wrap_fn(move |req, srv| {
                let started = Instant::now();
                let route = req
                    .match_pattern()
                    .unwrap_or_else(|| "unmatched".to_string());
                let method = req.method().to_string();
                let state = metrics_state.clone();
                let fut = srv.call(req);
                async move {
                    let res = fut.await?;
                    let seconds = started.elapsed().as_secs_f64();
                    state
                        .metrics
                        .observe_request(&route, &method, res.status().as_u16(), seconds);
                    Ok(res)
                }
            })
            .configure(|cfg| api::configure(cfg, max_body))
    });
    if let Some(workers) = config.http_workers {
        server = server.workers(workers.max(1));
    }
    let server = server
        .bind(config.bind)
        .map_err(|source| StartError::Bind {
            addr: config.bind,
            source,
        })?;
    let addr = server.addrs().first().copied().unwrap_or(config.bind);
    let server = server.run();
    let handle = server.handle();
    let http = std::thread::Builder::new()
        .name("http".into())
        .spawn(move || actix_web::rt::System::new().block_on(server))
        .map_err(StartError::Thread)?;
    tracing::info!(%addr, "listening");
    Ok(RunningServer {
        addr,
        state,
        handle,
        http: Some(http),
        stopping,
    })
}

/// Polls the snapshots folder until a complete snapshot loads (newest first; a bad one is skipped and reported).
fn spawn_first_snapshot_load(
    config: &Config,
    state: web::Data<AppState>,
    stopping: Arc<AtomicBool>,
) -> Result<(), StartError> {
    let dir = config.snapshots.clone();
    let poll = config.snapshot_poll();
    let columns = state.models.feature_columns();
    std::thread::Builder::new()
        .name("snapshot-load".into())
        .spawn(move || {
            let mut last_logged = None;
            while !stopping.load(Ordering::Relaxed) {
                match load_newest(&dir, &columns, &state) {
                    Ok(true) => return,
                    Ok(false) => {}
                    Err(message) => {
                        if last_logged.as_ref() != Some(&message) {
                            tracing::error!(error = %message, "snapshot not loaded; the server stays not ready");
                            last_logged = Some(message.clone());
                        }
                        state.snapshots.set_error(Some(message));
                    }
                }
                std::thread::sleep(poll);
            }
        })
        .map_err(StartError::Thread)?;
    Ok(())
}

/// Tries the complete snapshots newest first; Ok(true) once one is installed, Ok(false) when there is none yet.
fn load_newest(
    dir: &std::path::Path,
    columns: &[String],
    state: &AppState,
) -> Result<bool, String> {
    let sources = snapshot::find_snapshots(dir).map_err(|e| e.to_string())?;
    let mut errors = Vec::new();
    for source in &sources {
        let started = Instant::now();
        match snapshot::load_snapshot(source, columns) {
            Ok(loaded) => {
                let seconds = started.elapsed().as_secs_f64();
                tracing::info!(
                    snapshot = %loaded.version, rows = loaded.rows(), seconds, "snapshot loaded"
                );
                state.metrics.snapshot_load_seconds.observe(seconds);
                state.metrics.snapshot_loads.inc();
                state.metrics.snapshot_rows.set(loaded.rows() as i64);
                state.snapshots.install(loaded);
                return Ok(true);
            }
            Err(e) => {
                state.metrics.snapshot_load_failures.inc();
                errors.push(e.to_string());
            }
        }
    }
    if errors.is_empty() {
        Ok(false)
    } else {
        Err(errors.join("; "))
    }
}
