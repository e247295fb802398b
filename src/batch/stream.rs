//! The run's pipeline: scoring threads read and score chunks of the snapshot, a window of one chunk per thread at
//! a time, and hand them in snapshot order to the writer (or the --top list), which reports progress.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use rayon::prelude::*;

use super::columns::Layout;
use super::plan::Target;
use super::rank::TopN;
use super::score::Scorer;
use super::{BatchError, progress, read, write};
use crate::config::RankBy;
use crate::snapshot::load::OpenedSnapshot;

/// What a run streams.
pub struct Work {
    /// Row-group ranges, one per chunk, in snapshot order.
    pub chunks: Vec<Range<usize>>,
    /// The snapshot row each chunk starts at (orders ties in --top).
    pub first_rows: Vec<u64>,
    /// Rows of every chunk together.
    pub total: usize,
}

/// Scores `work` on `threads` threads and writes it to `target` (only the best N with `top`); returns the rows
/// scored, the rows written and the time it took.
pub fn run(
    snapshot: OpenedSnapshot,
    scorer: Scorer,
    layout: Layout,
    work: Work,
    threads: usize,
    top: Option<(usize, RankBy)>,
    target: &Target,
) -> Result<(usize, usize, Duration), BatchError> {
    let Work {
        chunks,
        first_rows,
        total,
    } = work;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("score-{i}"))
        .build()
        .map_err(|e| BatchError::Thread(e.to_string()))?;
    let (sender, receiver) = crossbeam_channel::bounded::<Result<Chunk, BatchError>>(threads);
    let (scorer, snapshot) = (Arc::new(scorer), Arc::new(snapshot));
    let producer = std::thread::Builder::new()
        .name("score-batch".into())
        .spawn({
            let (scorer, snapshot) = (scorer.clone(), snapshot.clone());
            move || {
                pool.install(|| {
                    // Windows of one chunk per thread, sent in order: the output keeps the snapshot's order.
                    for window in chunks.chunks(threads).zip(first_rows.chunks(threads)) {
                        let results: Vec<Result<Chunk, BatchError>> = (window.0.par_iter())
                            .zip(window.1.par_iter())
                            .map(|(units, &first)| {
                                let chunk = read::chunk(&snapshot, units.clone())?;
                                let insights = scorer.score(&chunk)?;
                                let rows = insights.len();
                                Ok(match top {
                                    Some((n, by)) => {
                                        let mut best = TopN::new(n, by);
                                        best.offer(first, insights);
                                        Chunk {
                                            rows,
                                            out: Out::Top(best),
                                        }
                                    }
                                    None => Chunk {
                                        rows,
                                        out: Out::Rows(layout.batch(&insights)?),
                                    },
                                })
                            })
                            .collect();
                        for result in results {
                            let failed = result.is_err();
                            if sender.send(result).is_err() || failed {
                                return;
                            }
                        }
                    }
                })
            }
        })
        .map_err(|e| BatchError::Thread(e.to_string()))?;

    let mut progress = progress::Progress::new(total);
    let mut writer = match top {
        Some(_) => None,
        None => Some(write::PartWriter::create(target, layout.schema())?),
    };
    let mut best = top.map(|(n, by)| TopN::new(n, by));
    let mut rows = 0;
    for result in receiver {
        let chunk = result?;
        rows += chunk.rows;
        match (chunk.out, &mut writer, &mut best) {
            (Out::Rows(batch), Some(w), _) => w.write(&batch)?,
            (Out::Top(list), _, Some(best)) => best.merge(list),
            _ => {}
        }
        progress.advance(chunk.rows);
    }
    let _ = producer.join();
    if rows != total {
        return Err(BatchError::Invalid(format!(
            "scored {rows} of {total} rows: the scoring threads stopped early"
        )));
    }
    progress.finish();
    let written = match (writer, best) {
        (Some(w), _) => w.publish()?,
        (None, Some(best)) => {
            let list = best.finish();
            let mut w = write::PartWriter::create(target, layout.schema())?;
            w.write(&layout.batch(&list)?)?;
            w.publish()?
        }
        (None, None) => 0,
    };
    Ok((rows, written, progress.elapsed()))
}

/// One scored chunk, as the writer takes it.
struct Chunk {
    rows: usize,
    out: Out,
}

enum Out {
    Rows(arrow_array::RecordBatch),
    Top(TopN),
}
