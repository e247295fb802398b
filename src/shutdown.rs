//! Graceful shutdown: on SIGTERM or SIGINT readiness turns 503 at once and replies carry `Connection: close`; the
//! listener keeps accepting for --shutdown-grace-ms (so a load balancer or Kubernetes `preStop` takes the replica
//! out first), then stops accepting and lets every accepted request finish.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Whether the server is draining; shared by readiness, the reply middleware and the signal task.
#[derive(Debug, Default)]
pub struct Drain {
    draining: AtomicBool,
}

impl Drain {
    /// Marks the server as draining; true the first time.
    pub fn start(&self) -> bool {
        !self.draining.swap(true, Ordering::SeqCst)
    }

    /// Whether a shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// Resolves once SIGTERM or SIGINT arrives (both mean the same graceful stop), after marking `drain` and waiting
/// out `grace`; the HTTP server then stops accepting and finishes in-flight requests.
pub async fn on_signal(drain: std::sync::Arc<Drain>, grace: Duration) {
    let signal = wait_for_signal().await;
    drain.start();
    tracing::info!(
        signal,
        grace_ms = grace.as_millis() as u64,
        "shutting down: readiness is 503; accepting until the grace period ends, then draining"
    );
    actix_web::rt::time::sleep(grace).await;
    tracing::info!("grace period over: no new connections; finishing in-flight requests");
}

#[cfg(unix)]
async fn wait_for_signal() -> &'static str {
    use actix_web::rt::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install the SIGTERM/SIGINT handlers; stop the server with SIGKILL");
        return std::future::pending().await;
    };
    std::future::poll_fn(|cx| {
        if term.poll_recv(cx).is_ready() {
            return std::task::Poll::Ready("SIGTERM");
        }
        if int.poll_recv(cx).is_ready() {
            return std::task::Poll::Ready("SIGINT");
        }
        std::task::Poll::Pending
    })
    .await
}

#[cfg(not(unix))]
async fn wait_for_signal() -> &'static str {
    let _ = actix_web::rt::signal::ctrl_c().await;
    "ctrl-c"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draining_starts_once() {
        let drain = Drain::default();
        assert!(!drain.is_draining());
        assert!(drain.start());
        assert!(!drain.start());
        assert!(drain.is_draining());
    }
}
