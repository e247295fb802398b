//! Compaction: rows into Parquet day folders `KIND/date=YYYY-MM-DD/part-NNNNN.parquet`, published atomically
//! (written as `.part-NNNNN.parquet.tmp`, fsynced, renamed, folder fsynced), and `_SUCCESS` once a day is over.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::FeedbackError;
use super::event::{Row, day_of};
use super::table::{self, Kind};
use super::wal::sync_dir;

/// Rows per Parquet row group.
const ROW_GROUP_ROWS: usize = 65_536;

/// The folder of `kind`'s rows recorded on UTC day `day`.
pub fn day_dir(dir: &Path, kind: Kind, day: &str) -> PathBuf {
    dir.join(kind.folder()).join(format!("date={day}"))
}

/// The days that have a folder under `kind`, oldest first.
pub fn days(dir: &Path, kind: Kind) -> Result<Vec<String>, FeedbackError> {
    let root = dir.join(kind.folder());
    let entries = match std::fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(FeedbackError::io("reading", &root, e)),
    };
    let mut days: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            Some(
                e.file_name()
                    .into_string()
                    .ok()?
                    .strip_prefix("date=")?
                    .to_string(),
            )
        })
        .collect();
    days.sort();
    Ok(days)
}

/// The published part files of a day folder, in part order (temp and marker files excluded).
pub fn parts(day_dir: &Path) -> Result<Vec<PathBuf>, FeedbackError> {
    let entries = match std::fs::read_dir(day_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(FeedbackError::io("reading", day_dir, e)),
    };
    let mut parts: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| part_number(p).is_some())
        .collect();
    parts.sort();
    Ok(parts)
}

fn part_number(path: &Path) -> Option<u32> {
    let name = path.file_name()?.to_str()?;
    name.strip_prefix("part-")?
        .strip_suffix(".parquet")?
        .parse()
        .ok()
}

/// Removes half-written files (`.part-*.tmp`) a crash left in the day folders; readers never saw them.
pub fn remove_temps(dir: &Path) -> Result<usize, FeedbackError> {
    let mut removed = 0;
    for kind in [Kind::Outcomes, Kind::Decisions] {
        for day in days(dir, kind)? {
            let folder = day_dir(dir, kind, &day);
            let entries =
                std::fs::read_dir(&folder).map_err(|e| FeedbackError::io("reading", &folder, e))?;
            for entry in entries.filter_map(Result::ok) {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with(".part-") && name.ends_with(".tmp") {
                    let path = entry.path();
                    std::fs::remove_file(&path)
                        .map_err(|e| FeedbackError::io("removing", &path, e))?;
                    removed += 1;
                }
            }
        }
    }
    Ok(removed)
}

/// Reads every batch of a Parquet file (all columns, or only `column`).
pub fn read_file(path: &Path, column: Option<&str>) -> Result<Vec<RecordBatch>, FeedbackError> {
    let file = File::open(path).map_err(|e| FeedbackError::io("opening", path, e))?;
    let corrupt = |e: parquet::errors::ParquetError| {
        FeedbackError::Corrupt(format!("reading {}: {e}", path.display()))
    };
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(corrupt)?;
    if let Some(column) = column {
        let mask = ProjectionMask::columns(builder.parquet_schema(), [column]);
        builder = builder.with_projection(mask);
    }
    let reader = builder.build().map_err(corrupt)?;
    reader
        .map(|b| b.map_err(|e| FeedbackError::Corrupt(format!("reading {}: {e}", path.display()))))
        .collect()
}

/// The ids (event or decision ids) already published in a day folder.
pub fn day_ids(dir: &Path, kind: Kind, day: &str) -> Result<HashSet<String>, FeedbackError> {
    let mut ids = HashSet::new();
    for part in parts(&day_dir(dir, kind, day))? {
        for batch in read_file(&part, Some(kind.id_column()))? {
            ids.extend(
                table::text_column(&batch, kind.id_column())?
                    .into_iter()
                    .flatten(),
            );
        }
    }
    Ok(ids)
}

/// Writes `batch` to `path` atomically: a dot-named temp file beside it, fsynced, renamed, folder fsynced.
pub fn publish(path: &Path, batch: &RecordBatch) -> Result<(), FeedbackError> {
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build();
    crate::durable::replace_with(path, |file| {
        let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props))
            .map_err(std::io::Error::other)?;
        writer.write(batch).map_err(std::io::Error::other)?;
        writer.finish().map_err(std::io::Error::other).map(drop)
    })
    .map_err(|e| FeedbackError::io("writing", path, e))
}

/// Creates `folder` (and its parents) and makes its entry durable in its parent.
fn create_folder(folder: &Path) -> Result<(), FeedbackError> {
    if folder.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(folder).map_err(|e| FeedbackError::io("creating", folder, e))?;
    let mut at = folder;
    // The day folder's entry lives in KIND/, KIND's in the feedback folder: both must survive a crash.
    for _ in 0..2 {
        match at.parent() {
            Some(parent) => {
                sync_dir(parent)?;
                at = parent;
            }
            None => break,
        }
    }
    Ok(())
}

/// Writes `rows` as one new part file per (kind, recorded day), taking each group out of `rows` once its file
/// is durable (so a retry after a failure does not write a group twice); returns the files published.
pub fn compact(dir: &Path, rows: &mut Vec<Row>) -> Result<Vec<PathBuf>, FeedbackError> {
    let mut groups: BTreeMap<(Kind, String), Vec<&Row>> = BTreeMap::new();
    for row in rows.iter() {
        groups
            .entry((Kind::of(row), day_of(row.recorded_at())))
            .or_default()
            .push(row);
    }
    let mut published = Vec::new();
    let mut done = HashSet::new();
    let mut result = Ok(());
    for ((kind, day), group) in groups {
        match publish_group(dir, kind, &day, &group) {
            Ok(path) => {
                published.push(path);
                done.insert((kind, day));
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if !done.is_empty() {
        rows.retain(|r| !done.contains(&(Kind::of(r), day_of(r.recorded_at()))));
    }
    result.map(|()| published)
}

fn publish_group(
    dir: &Path,
    kind: Kind,
    day: &str,
    rows: &[&Row],
) -> Result<PathBuf, FeedbackError> {
    let folder = day_dir(dir, kind, day);
    create_folder(&folder)?;
    let next = parts(&folder)?
        .iter()
        .filter_map(|p| part_number(p))
        .max()
        .map_or(0, |n| n + 1);
    let path = folder.join(format!("part-{next:05}.parquet"));
    publish(&path, &table::to_batch(kind, rows)?)?;
    Ok(path)
}

/// Marks every day folder before `today` (UTC, `YYYY-MM-DD`) that has no `_SUCCESS` yet as complete; the caller
/// has compacted everything recorded before today. Returns the days closed.
pub fn close_days(dir: &Path, today: &str) -> Result<Vec<String>, FeedbackError> {
    let mut closed = Vec::new();
    for kind in [Kind::Outcomes, Kind::Decisions] {
        for day in days(dir, kind)? {
            let folder = day_dir(dir, kind, &day);
            let marker = folder.join("_SUCCESS");
            if day.as_str() < today && !marker.exists() {
                File::create(&marker)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| FeedbackError::io("creating", &marker, e))?;
                sync_dir(&folder)?;
                closed.push(format!("{}/{day}", kind.folder()));
            }
        }
    }
    Ok(closed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feedback::event::{DecisionRow, OutcomeRow};

    pub(crate) fn outcome(id: &str, customer: &str, recorded_at: i64) -> Row {
        Row::Outcome(OutcomeRow {
            event_id: id.into(),
            customer_id: customer.into(),
            decision_id: Some("d1".into()),
            action: "call".into(),
            item_id: None,
            channel: Some("phone".into()),
            outcome: "retained".into(),
            occurred_at: recorded_at - 5,
            recorded_at,
            note: None,
        })
    }

    #[test]
    fn rows_land_in_day_folders_as_numbered_parts_that_read_back() {
        let tmp = std::env::temp_dir().join(format!("crmscore-compact-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let day1 = 1_796_043_900_000_000; // 2026-11-30
        let day2 = day1 + 86_400_000_000;
        let decision = Row::Decision(DecisionRow {
            decision_id: "d1".into(),
            decided_at: day1,
            route: "insights".into(),
            score: Some(0.5),
            ..Default::default()
        });
        let rows = vec![
            outcome("a", "C1", day1),
            outcome("b", "C2", day2),
            decision.clone(),
        ];
        let files = compact(&tmp, &mut rows.clone()).unwrap();
        assert_eq!(files.len(), 3);
        compact(&tmp, &mut rows[..1].to_vec()).unwrap();
        let folder = day_dir(&tmp, Kind::Outcomes, "2026-11-30");
        let names: Vec<_> = parts(&folder).unwrap();
        assert!(names[1].ends_with("part-00001.parquet"), "{names:?}");
        assert_eq!(
            day_ids(&tmp, Kind::Outcomes, "2026-11-30").unwrap().len(),
            1
        );
        let back = read_file(&files[2], None).unwrap();
        assert_eq!(
            table::from_batch(Kind::Decisions, &back[0]).unwrap(),
            vec![decision]
        );
        let back = read_file(&names[0], None).unwrap();
        assert_eq!(
            table::from_batch(Kind::Outcomes, &back[0]).unwrap(),
            rows[..1].to_vec()
        );
        assert_eq!(close_days(&tmp, "2026-12-01").unwrap().len(), 2);
        assert!(folder.join("_SUCCESS").exists());
        assert!(
            !day_dir(&tmp, Kind::Outcomes, "2026-12-01")
                .join("_SUCCESS")
                .exists()
        );
        assert!(close_days(&tmp, "2026-12-01").unwrap().is_empty());
        std::fs::write(folder.join(".part-00002.parquet.tmp"), b"half").unwrap();
        assert_eq!(remove_temps(&tmp).unwrap(), 1);
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
