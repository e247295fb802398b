//! The KServe v2 gRPC front door (Triton's `inference.GRPCInferenceService`) on `--grpc-bind`: its own tokio
//! runtime and thread, the HTTP server's shared state, stopped together with it.

pub mod convert;
pub mod describe;
pub mod proto;
mod service;
pub mod status;

use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use actix_web::web;
use tokio::sync::oneshot;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::StartError;
use crate::scoring::AppState;
use proto::grpc_inference_service_server::GrpcInferenceServiceServer;
pub use service::InferenceService;

/// How long in-flight calls and open connections get to finish once the server stops (actix's default for HTTP):
/// a client that never answers the shutdown handshake cannot hold the process.
const GRACE: Duration = Duration::from_secs(30);

/// How the gRPC server runs.
#[derive(Debug, Clone, Copy)]
pub struct GrpcOptions {
    /// Address to listen on (port 0: any free port).
    pub bind: SocketAddr,
    /// Threads of its tokio runtime.
    pub threads: usize,
    /// Largest request message accepted, in bytes (as --max-body-bytes for HTTP).
    pub max_message_bytes: usize,
}

impl GrpcOptions {
    /// The options `config` gives a server on `bind`: --http-workers threads (default: one per core), and
    /// --max-body-bytes as the largest request message.
    pub fn of(config: &crate::Config, bind: SocketAddr) -> GrpcOptions {
        GrpcOptions {
            bind,
            threads: config
                .http_workers
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            max_message_bytes: config.max_body_bytes,
        }
    }
}

/// A started gRPC server: its address, and the handles to stop it.
pub struct GrpcServer {
    /// The address it listens on (the real port when port 0 was asked for).
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl GrpcServer {
    /// Stops accepting; in-flight calls get up to 30 s to finish (clients get GOAWAY). Returns at once; `join`
    /// waits.
    pub fn shutdown(&mut self) {
        if let Some(signal) = self.shutdown.take() {
            let _ = signal.send(());
        }
    }

    /// Shuts down (if not yet) and waits until the server has ended.
    pub fn join(mut self) {
        self.shutdown();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the gRPC thread panicked");
        }
    }
}

/// Binds `options.bind` and serves the v2 gRPC service on `state` from a thread of its own.
pub fn start(state: web::Data<AppState>, options: GrpcOptions) -> Result<GrpcServer, StartError> {
    let bind_error = |source| StartError::Bind {
        addr: options.bind,
        source,
    };
    // Bound here, not in the thread, so a taken port fails `start` with the address in the message.
    let listener = std::net::TcpListener::bind(options.bind).map_err(bind_error)?;
    listener.set_nonblocking(true).map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.threads.max(1))
        .thread_name("grpc-worker")
        .enable_all()
        .build()
        .map_err(StartError::Thread)?;
    let service = GrpcInferenceServiceServer::new(InferenceService::new(state))
        .max_decoding_message_size(options.max_message_bytes);
    let (shutdown, stopped) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("grpc".into())
        .spawn(move || {
            let served = runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
                let (drain, draining) = oneshot::channel::<()>();
                let serve = Server::builder().serve_with_incoming_shutdown(service, incoming, async {
                    let _ = draining.await;
                });
                tokio::pin!(serve);
                tokio::select! {
                    served = &mut serve => served,
                    // Dropping the sender (a server dropped without `join`) stops it too.
                    _ = stopped => {
                        let _ = drain.send(());
                        tokio::time::timeout(GRACE, serve).await.unwrap_or_else(|_| {
                            tracing::warn!(grace = ?GRACE, "gRPC connections still open after the grace period; closing them");
                            Ok(())
                        })
                    }
                }
                .map_err(std::io::Error::other)
            });
            if let Err(error) = served {
                tracing::error!(%error, "the gRPC server stopped with an error");
            }
        })
        .map_err(StartError::Thread)?;
    tracing::info!(%addr, "gRPC listening");
    Ok(GrpcServer {
        addr,
        shutdown: Some(shutdown),
        thread: Some(thread),
    })
}
