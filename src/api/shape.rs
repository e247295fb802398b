//! Heavy reply shaping (top-k over many customers, large JSON encodes) runs off the HTTP workers: an actix worker
//! serves many connections on one thread, so one big reply built there would stall every small request behind it.

use std::sync::OnceLock;

use tokio::sync::Semaphore;

use crate::error::ScoreError;

/// Work (output values or items shaped) below which a reply is built on the worker: the hand-off to another
/// thread costs more than building it.
pub const INLINE_WORK: usize = 20_000;

/// At most half the cores shape big replies at once, so small requests keep the rest.
fn shapers() -> &'static Semaphore {
    static SHAPERS: OnceLock<Semaphore> = OnceLock::new();
    SHAPERS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Semaphore::new((cores / 2).max(1))
    })
}

/// Runs `shape` on the worker when `work` is small, else on the blocking pool behind the shapers' semaphore
/// (waiting for a permit does not block the worker).
pub async fn run<T: Send + 'static>(
    work: usize,
    shape: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ScoreError> {
    if work < INLINE_WORK {
        return Ok(shape());
    }
    let _permit = shapers()
        .acquire()
        .await
        .map_err(|_| ScoreError::Internal("the reply shapers are closed".into()))?;
    actix_web::web::block(shape)
        .await
        .map_err(|e| ScoreError::Internal(format!("building the reply failed: {e}")))
}

/// Encodes a reply body as JSON bytes.
pub fn json<T: serde::Serialize>(body: &T) -> Result<Vec<u8>, ScoreError> {
    serde_json::to_vec(body).map_err(|e| ScoreError::Internal(format!("encoding the reply: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn small_work_stays_on_the_worker_and_big_work_leaves_it() {
        let here = std::thread::current().id();
        let small = run(10, move || std::thread::current().id()).await.unwrap();
        assert_eq!(small, here);
        let big = run(INLINE_WORK, move || std::thread::current().id())
            .await
            .unwrap();
        assert_ne!(big, here);
    }
}
