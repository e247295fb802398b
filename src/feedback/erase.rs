//! Erasure of one customer's rows from the write-ahead log and the Parquet day files (each affected file rewritten
//! under a temp name and renamed over it). The offline entry point is for a stopped server; a running one goes
//! through `FeedbackLog::erase_customer`, which the writer serialises with its appends.

use std::path::{Path, PathBuf};

use super::FeedbackError;
use super::compact::{day_dir, days, parts};
use super::table::Kind;
use super::wal;
use crate::erasure::rewrite::{self, FileOutcome};

/// What an erasure rewrote, for the audit log (paths and counts only).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ErasedFiles {
    /// Every file rewritten (write-ahead log segments and Parquet parts), with the rows removed from it.
    pub files: Vec<(PathBuf, usize)>,
    /// Rows removed in all.
    pub rows_removed: usize,
}

impl ErasedFiles {
    fn add(&mut self, other: ErasedFiles) {
        self.files.extend(other.files);
        self.rows_removed += other.rows_removed;
    }
}

/// Removes every outcome and decision row of `customer_id` under `dir` (server stopped).
pub fn erase_customer(dir: &Path, customer_id: &str) -> Result<ErasedFiles, FeedbackError> {
    let mut erased = erase_wal(dir, customer_id)?;
    erased.add(erase_parquet(dir, customer_id)?);
    Ok(erased)
}

/// Rewrites the write-ahead log segments that hold rows of `customer_id` without them (a torn tail goes too).
pub fn erase_wal(dir: &Path, customer_id: &str) -> Result<ErasedFiles, FeedbackError> {
    let mut erased = ErasedFiles::default();
    for n in wal::segments(dir)? {
        let read = wal::read_segment(dir, n)?;
        let before = read.rows.len();
        let kept: Vec<_> = read
            .rows
            .into_iter()
            .filter(|r| r.customer_id() != Some(customer_id))
            .collect();
        if kept.len() < before {
            wal::rewrite_segment(dir, n, &kept)?;
            erased
                .files
                .push((wal::segment_path(dir, n), before - kept.len()));
            erased.rows_removed += before - kept.len();
        }
    }
    Ok(erased)
}

/// Rewrites the Parquet parts that hold rows of `customer_id` without them.
pub fn erase_parquet(dir: &Path, customer_id: &str) -> Result<ErasedFiles, FeedbackError> {
    let mut erased = ErasedFiles::default();
    for kind in [Kind::Outcomes, Kind::Decisions] {
        for day in days(dir, kind)? {
            for part in parts(&day_dir(dir, kind, &day))? {
                // The generic rewrite: only files holding the customer are read whole and replaced atomically.
                match rewrite::remove_customer_rows(&part, customer_id)
                    .map_err(|e| FeedbackError::Corrupt(e.to_string()))?
                {
                    FileOutcome::Rewritten(done) => {
                        erased.rows_removed += done.rows_removed;
                        erased.files.push((part, done.rows_removed));
                    }
                    FileOutcome::Untouched | FileOutcome::NoIdColumn => {}
                }
            }
        }
    }
    Ok(erased)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feedback::compact;
    use crate::feedback::event::{DecisionRow, OutcomeRow, Row};

    fn outcome(id: &str, customer: &str) -> Row {
        Row::Outcome(OutcomeRow::sample(
            id,
            customer,
            "churned",
            1_796_043_900_000_000,
        ))
    }

    #[test]
    fn a_customer_leaves_the_wal_and_the_parquet_others_stay() {
        let dir = std::env::temp_dir().join(format!("crmscore-erase-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let decision = Row::Decision(DecisionRow {
            decision_id: "d".into(),
            customer_id: Some("C1".into()),
            decided_at: 1_796_043_900_000_000,
            ..Default::default()
        });
        compact::compact(
            &dir,
            &mut vec![outcome("a", "C1"), outcome("b", "C2"), decision],
        )
        .unwrap();
        compact::compact(&dir, &mut vec![outcome("c", "C3")]).unwrap();
        let mut seg = wal::Segment::create(&dir, 4).unwrap();
        let mut bytes = Vec::new();
        wal::encode(&[outcome("d", "C1"), outcome("e", "C2")], &mut bytes).unwrap();
        seg.append_durably(&bytes).unwrap();

        let erased = erase_customer(&dir, "C1").unwrap();
        assert_eq!(erased.rows_removed, 3);
        assert_eq!(erased.files.len(), 3, "{:?}", erased.files);
        let ids = compact::day_ids(&dir, Kind::Outcomes, "2026-11-30").unwrap();
        assert_eq!(ids, ["b", "c"].map(String::from).into());
        assert!(
            compact::day_ids(&dir, Kind::Decisions, "2026-11-30")
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            wal::read_segment(&dir, 4).unwrap().rows,
            vec![outcome("e", "C2")]
        );
        assert_eq!(erase_customer(&dir, "C1").unwrap(), ErasedFiles::default());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
