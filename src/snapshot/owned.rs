//! Owned-item lists (the recommender's list column): read per row group into a row-group-local table of
//! distinct item ids, then joined in row order under one table, sized once.

use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;

use super::decode::column;
use super::{OwnedItems, SnapshotError};

/// One unit's owned items: per-row counts and values as indices into a unit-local table of distinct ids.
pub(super) struct OwnedChunk {
    counts: Vec<u32>,
    values: Vec<u32>,
    dict: Vec<Box<str>>,
    lookup: hashbrown::HashMap<Box<str>, u32>,
}

impl OwnedChunk {
    pub(super) fn with_rows(rows: usize) -> OwnedChunk {
        OwnedChunk {
            counts: Vec::with_capacity(rows),
            values: Vec::new(),
            dict: Vec::new(),
            lookup: hashbrown::HashMap::new(),
        }
    }

    pub(super) fn collect(
        &mut self,
        path: &Path,
        batch: &RecordBatch,
        name: &str,
    ) -> Result<(), SnapshotError> {
        let array = column(path, batch, name)?;
        let target = DataType::List(Arc::new(arrow_schema::Field::new_list_field(
            DataType::Utf8,
            true,
        )));
        let list = arrow_cast::cast(array, &target).map_err(|e| SnapshotError::Column {
            path: path.to_path_buf(),
            column: name.to_string(),
            problem: format!("cannot be read as a list of item ids: {e}"),
        })?;
        let list = list.as_list::<i32>();
        let offsets = list.value_offsets();
        let values = list.values().as_string::<i32>();
        let first = offsets.first().copied().unwrap_or(0) as usize;
        let last = offsets.last().copied().unwrap_or(0) as usize;
        self.values.reserve(last - first);
        for r in 0..list.len() {
            if list.is_null(r) {
                self.counts.push(0);
                continue;
            }
            let (start, end) = (offsets[r] as usize, offsets[r + 1] as usize);
            let mut count = 0;
            for i in start..end {
                if values.is_null(i) {
                    continue;
                }
                let id = values.value(i);
                let index = match self.lookup.get(id) {
                    Some(&index) => index,
                    None => {
                        let index = self.dict.len() as u32;
                        self.dict.push(id.into());
                        self.lookup.insert(id.into(), index);
                        index
                    }
                };
                self.values.push(index);
                count += 1;
            }
            self.counts.push(count);
        }
        Ok(())
    }
}

/// Joins units' owned items in row order under one table of distinct ids, sized once (each unit's lists are
/// copied once, and freed as soon as they are).
pub(super) fn merge_owned(
    snapshot: &Path,
    chunks: impl Iterator<Item = OwnedChunk>,
    rows: usize,
) -> Result<OwnedItems, SnapshotError> {
    let chunks: Vec<OwnedChunk> = chunks.collect();
    let total: usize = chunks.iter().map(|c| c.values.len()).sum();
    if total > u32::MAX as usize {
        return Err(SnapshotError::Invalid {
            path: snapshot.to_path_buf(),
            message: format!(
                "{total} owned items in all is more than this server indexes ({})",
                u32::MAX
            ),
        });
    }
    let mut merged = OwnedItems {
        offsets: Vec::with_capacity(rows + 1),
        values: Vec::with_capacity(total),
        dict: Vec::new(),
    };
    merged.offsets.push(0);
    let mut global: hashbrown::HashMap<Box<str>, u32> = hashbrown::HashMap::new();
    for chunk in chunks {
        let remap: Vec<u32> = chunk
            .dict
            .into_iter()
            .map(|id| {
                let next = merged.dict.len() as u32;
                *global.entry(id).or_insert_with_key(|id| {
                    merged.dict.push(id.to_string());
                    next
                })
            })
            .collect();
        let mut taken = 0;
        for count in chunk.counts {
            let count = count as usize;
            merged.values.extend(
                chunk.values[taken..taken + count]
                    .iter()
                    .map(|&v| remap[v as usize]),
            );
            taken += count;
            // At most u32::MAX in all: checked above.
            merged.offsets.push(merged.values.len() as u32);
        }
    }
    Ok(merged)
}
