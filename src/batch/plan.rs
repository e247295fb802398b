//! What one run scores and where it writes: the snapshot's row groups of this shard, and the output's names.

use std::ops::Range;
use std::path::{Path, PathBuf};

/// Where the rows of a run go.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// One Parquet file, published by a rename when complete.
    File(PathBuf),
    /// A folder of part files; `part` is this run's file name in it, `parts` how many make the set.
    Folder {
        /// The folder.
        dir: PathBuf,
        /// This run's part file name.
        part: String,
        /// Parts of the complete set (N of --shard, else 1).
        parts: usize,
    },
}

impl Target {
    /// The target of `output`: a file when it ends in `.parquet` and the run is not a shard, else a folder.
    pub fn of(output: &Path, shard: Option<(usize, usize)>) -> Target {
        let is_file = output
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
        match (shard, is_file) {
            (None, true) => Target::File(output.to_path_buf()),
            (shard, _) => {
                let (i, n) = shard.unwrap_or((0, 1));
                Target::Folder {
                    dir: output.to_path_buf(),
                    part: part_name(i, n),
                    parts: n,
                }
            }
        }
    }
}

/// The file name of part `i` of `n`: the same name whoever writes it, so a retried shard replaces its part.
pub fn part_name(i: usize, n: usize) -> String {
    format!("part-{i:05}-of-{n:05}.parquet")
}

/// The row-group units (indices into the snapshot's row groups, files in order) shard `i` of `n` scores: whole
/// part files when the snapshot has at least `n` of them (a shard then opens only its own files), else
/// contiguous runs of row groups. Together the shards cover every unit once.
pub fn shard_units(unit_files: &[usize], files: usize, (i, n): (usize, usize)) -> Range<usize> {
    let units = unit_files.len();
    if n <= 1 {
        return 0..units;
    }
    if files >= n {
        // Files [i*files/n, (i+1)*files/n), then the units of those files (units are in file order).
        let (first, end) = (i * files / n, (i + 1) * files / n);
        let start = unit_files.partition_point(|&f| f < first);
        let stop = unit_files.partition_point(|&f| f < end);
        return start..stop;
    }
    (i * units / n)..((i + 1) * units / n)
}

/// Groups consecutive units into chunks of about `rows` rows (at least one unit each): a chunk is what one
/// thread reads and scores at a time, so memory stays a few chunks per thread.
pub fn chunks(unit_rows: &[usize], units: Range<usize>, rows: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = units.start;
    let mut acc = 0;
    for u in units.clone() {
        acc += unit_rows[u];
        if acc >= rows {
            out.push(start..u + 1);
            start = u + 1;
            acc = 0;
        }
    }
    if start < units.end {
        out.push(start..units.end);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_every_unit_once() {
        // 3 files of 2, 3 and 1 row groups.
        let files = [0, 0, 1, 1, 1, 2];
        for n in 1..=8 {
            let mut seen = Vec::new();
            for i in 0..n {
                seen.extend(shard_units(&files, 3, (i, n)));
            }
            assert_eq!(seen, (0..6).collect::<Vec<_>>(), "n = {n}");
        }
        // With as many shards as files, a shard owns whole files.
        assert_eq!(shard_units(&files, 3, (1, 3)), 2..5);
    }

    #[test]
    fn targets_and_chunks() {
        assert_eq!(
            Target::of(Path::new("out/scores.parquet"), None),
            Target::File("out/scores.parquet".into())
        );
        assert_eq!(
            Target::of(Path::new("out/scores.parquet"), Some((1, 4))),
            Target::Folder {
                dir: "out/scores.parquet".into(),
                part: "part-00001-of-00004.parquet".into(),
                parts: 4
            }
        );
        assert_eq!(chunks(&[5, 5, 5, 20, 1], 0..5, 10), vec![0..2, 2..4, 4..5]);
        assert_eq!(chunks(&[5, 5], 1..2, 10), vec![1..2]);
    }
}
