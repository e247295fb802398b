//! A recommender's item catalogue (items.parquet: one row per score column) and top-k selection over scores.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;

/// One catalogue item.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Item {
    /// Item id, as snapshots' owned-items lists name it.
    pub item_id: String,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Product category.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Price band.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_band: Option<String>,
}

/// The catalogue: items in score-column order, an id index and the popularity order for cold starts.
pub struct Catalogue {
    /// Items, index = score column.
    pub items: Vec<Item>,
    by_id: HashMap<String, u32>,
    /// Item indices, most popular first.
    popular: Vec<u32>,
}

fn strings(batch: &RecordBatch, name: &str) -> Result<Option<Vec<Option<String>>>, String> {
    let Some(column) = batch.column_by_name(name) else {
        return Ok(None);
    };
    let column =
        arrow_cast::cast(column, &DataType::Utf8).map_err(|e| format!("column '{name}': {e}"))?;
    Ok(Some(
        column
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect(),
    ))
}

impl Catalogue {
    /// Reads `path`: `item_id` (required, unique), `name`, `category`, `price_band`, `popularity` (optional).
    pub fn load(path: &Path) -> Result<Catalogue, String> {
        let fail = |e: String| format!("catalogue {}: {e}", path.display());
        let file = File::open(path).map_err(|e| fail(e.to_string()))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.build())
            .map_err(|e| fail(e.to_string()))?;
        let (mut items, mut popularity) = (Vec::new(), Vec::new());
        for batch in reader {
            let batch = batch.map_err(|e| fail(e.to_string()))?;
            let ids = strings(&batch, "item_id")
                .map_err(&fail)?
                .ok_or_else(|| fail("no item_id column".into()))?;
            let names = strings(&batch, "name").map_err(&fail)?;
            let categories = strings(&batch, "category").map_err(&fail)?;
            let bands = strings(&batch, "price_band").map_err(&fail)?;
            let pop = match batch.column_by_name("popularity") {
                Some(c) => {
                    let c =
                        arrow_cast::cast(c, &DataType::Int64).map_err(|e| fail(e.to_string()))?;
                    let c = c.as_primitive::<Int64Type>();
                    (0..c.len())
                        .map(|i| if c.is_null(i) { 0 } else { c.value(i) })
                        .collect()
                }
                None => vec![0; batch.num_rows()],
            };
            let pick =
                |v: &Option<Vec<Option<String>>>, i: usize| v.as_ref().and_then(|v| v[i].clone());
            for (i, id) in ids.into_iter().enumerate() {
                let item_id = id.ok_or_else(|| fail("item_id has nulls".into()))?;
                items.push(Item {
                    item_id,
                    name: pick(&names, i),
                    category: pick(&categories, i),
                    price_band: pick(&bands, i),
                });
            }
            popularity.extend(pop);
        }
        if items.is_empty() {
            return Err(fail("no items".into()));
        }
        let mut by_id = HashMap::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if by_id.insert(item.item_id.clone(), i as u32).is_some() {
                return Err(fail(format!("item_id '{}' appears twice", item.item_id)));
            }
        }
        let mut popular: Vec<u32> = (0..items.len() as u32).collect();
        popular.sort_by_key(|&i| (std::cmp::Reverse(popularity[i as usize]), i));
        Ok(Catalogue {
            items,
            by_id,
            popular,
        })
    }

    /// Number of items (= score columns).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Score column of an item id.
    pub fn index_of(&self, item_id: &str) -> Option<u32> {
        self.by_id.get(item_id).copied()
    }

    /// Item indices, most popular first.
    pub fn popular(&self) -> impl Iterator<Item = u32> + '_ {
        self.popular.iter().copied()
    }

    /// The `k` most popular items not in `excluded`.
    pub fn most_popular(&self, k: usize, excluded: &[u32]) -> Vec<u32> {
        self.popular
            .iter()
            .copied()
            .filter(|i| !excluded.contains(i))
            .take(k)
            .collect()
    }
}

/// The `k` best (index, score) pairs of `scores`, highest first, skipping `excluded` indices: a partial selection
/// (O(n)) and a sort of the k chosen, never a sort of all scores. NaN scores rank last.
pub fn top_k(scores: &[f32], k: usize, excluded: &[u32]) -> Vec<(u32, f32)> {
    top_k_where(scores, k, |i| !excluded.contains(&(i as u32)))
}

/// The `k` best (index, score) pairs of `scores` whose index `keep` accepts, highest first.
pub fn top_k_where(scores: &[f32], k: usize, keep: impl Fn(usize) -> bool) -> Vec<(u32, f32)> {
    let mut candidates: Vec<(u32, f32)> = scores
        .iter()
        .enumerate()
        .filter(|(i, _)| keep(*i))
        .map(|(i, &s)| (i as u32, if s.is_nan() { f32::NEG_INFINITY } else { s }))
        .collect();
    let k = k.min(candidates.len());
    if k == 0 {
        return Vec::new();
    }
    let better = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if k < candidates.len() {
        candidates.select_nth_unstable_by(k - 1, better);
        candidates.truncate(k);
    }
    candidates.sort_unstable_by(better);
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_selects_highest_and_skips_excluded() {
        let scores = [0.1, 0.9, 0.5, f32::NAN, 0.7, 0.9];
        assert_eq!(top_k(&scores, 3, &[]), vec![(1, 0.9), (5, 0.9), (4, 0.7)]);
        assert_eq!(top_k(&scores, 2, &[1, 5]), vec![(4, 0.7), (2, 0.5)]);
        assert_eq!(
            top_k(&scores, 10, &[0, 1, 2, 4, 5]).len(),
            1,
            "k is bounded by what is left"
        );
        assert!(top_k(&scores, 0, &[]).is_empty());
    }
}
