//! Grouping customers by one snapshot column (any type): read `customer_id` and that column, then split the
//! scored customers by its value, nulls and customers the snapshot lacks in groups of their own.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_schema::DataType;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::join::Scored;
use super::{ReportError, name_of};
use crate::snapshot::find_snapshots;
use crate::snapshot::load::ID_COLUMN;

/// The group of customers whose value is missing.
pub const NULL_GROUP: &str = "null";
/// The group of customers scored but absent from the snapshot.
pub const ABSENT_GROUP: &str = "not_in_snapshot";

/// One snapshot column's value per customer.
#[derive(Debug)]
pub struct GroupColumn {
    /// The column.
    pub column: String,
    /// Name of the snapshot file or folder it was read from.
    pub snapshot: String,
    /// Distinct values as text.
    values: Vec<String>,
    /// Customer id (as text) → index into `values`, None for null.
    of: HashMap<String, Option<u32>>,
    /// Integer columns sort their groups by number, the others by text.
    numeric: bool,
}

fn read_error(path: &Path, e: impl std::fmt::Display) -> ReportError {
    ReportError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

impl GroupColumn {
    /// Reads `column` of the snapshot at `path` (a Parquet file or a part folder with `_SUCCESS`; a folder of
    /// snapshots gives its newest).
    pub fn read(path: &Path, column: &str) -> Result<GroupColumn, ReportError> {
        let source = find_snapshots(path)?
            .into_iter()
            .next()
            .ok_or_else(|| read_error(path, "no complete snapshot there"))?;
        let mut group = GroupColumn {
            column: column.to_string(),
            snapshot: name_of(&source.path),
            values: Vec::new(),
            of: HashMap::new(),
            numeric: false,
        };
        let mut index: HashMap<String, u32> = HashMap::new();
        for file in source.files.iter().map(|f| &f.path) {
            let opened = File::open(file).map_err(|e| read_error(file, e))?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(opened)
                .map_err(|e| read_error(file, format!("not a readable Parquet file: {e}")))?;
            let schema = builder.schema().clone();
            let Ok(position) = schema.index_of(column) else {
                let available: Vec<&str> = schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .filter(|name| *name != ID_COLUMN)
                    .collect();
                return Err(ReportError::UnknownColumn {
                    column: column.to_string(),
                    snapshot: group.snapshot.clone(),
                    available: available.join(", "),
                });
            };
            let id_position = schema
                .index_of(ID_COLUMN)
                .map_err(|_| read_error(file, format!("column '{ID_COLUMN}' is missing")))?;
            let data_type = schema.field(position).data_type();
            group.numeric = data_type.is_integer();
            let mask = ProjectionMask::roots(builder.parquet_schema(), [id_position, position]);
            let reader = builder
                .with_projection(mask)
                .build()
                .map_err(|e| read_error(file, e))?;
            for batch in reader {
                let batch = batch.map_err(|e| read_error(file, format!("corrupt data: {e}")))?;
                let as_text = |name: &str| {
                    let array = batch
                        .column_by_name(name)
                        .ok_or_else(|| read_error(file, format!("column '{name}' is missing")))?;
                    arrow_cast::cast(array, &DataType::Utf8).map_err(|e| {
                        ReportError::BadOption(format!(
                            "column '{name}' cannot be grouped by (type {}): {e}",
                            array.data_type()
                        ))
                    })
                };
                let ids = as_text(ID_COLUMN)?;
                let values = as_text(column)?;
                let (ids, values) = (ids.as_string::<i32>(), values.as_string::<i32>());
                for row in 0..batch.num_rows() {
                    if ids.is_null(row) {
                        continue;
                    }
                    let value = values.is_valid(row).then(|| {
                        let text = values.value(row);
                        match index.get(text) {
                            Some(&i) => i,
                            None => {
                                let i = group.values.len() as u32;
                                group.values.push(text.to_string());
                                index.insert(text.to_string(), i);
                                i
                            }
                        }
                    });
                    group.of.insert(ids.value(row).to_string(), value);
                }
            }
        }
        Ok(group)
    }

    /// The group of one customer.
    fn group_of(&self, customer_id: &str) -> &str {
        match self.of.get(customer_id) {
            Some(Some(i)) => &self.values[*i as usize],
            Some(None) => NULL_GROUP,
            None => ABSENT_GROUP,
        }
    }

    /// The scored customers split by group, groups in the column's order (numbers by value), then `null`, then
    /// `not_in_snapshot`; empty groups are left out.
    pub fn split<'s>(&self, scored: &'s [Scored]) -> Vec<(String, Vec<&'s Scored>)> {
        let mut groups: HashMap<&str, Vec<&Scored>> = HashMap::new();
        for s in scored {
            groups
                .entry(self.group_of(&s.customer_id))
                .or_default()
                .push(s);
        }
        let mut groups: Vec<(String, Vec<&Scored>)> = groups
            .into_iter()
            .map(|(name, members)| (name.to_string(), members))
            .collect();
        let numeric = self.numeric;
        groups.sort_by(|(a, _), (b, _)| sort_key(a, numeric).cmp(&sort_key(b, numeric)));
        groups
    }
}

/// Values first (by number when the column is an integer one), then `null`, then `not_in_snapshot`.
fn sort_key(name: &str, numeric: bool) -> (u8, i128, &str) {
    match name {
        NULL_GROUP => (1, 0, name),
        ABSENT_GROUP => (2, 0, name),
        _ if numeric => (0, name.parse().unwrap_or(0), name),
        _ => (0, 0, name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(id: &str) -> Scored {
        Scored {
            customer_id: id.into(),
            score: 0.5,
            action: None,
            label: None,
        }
    }

    #[test]
    fn splits_in_value_order_with_null_and_absent_last() {
        let column = GroupColumn {
            column: "band".into(),
            snapshot: "s.parquet".into(),
            values: vec!["10".into(), "9".into()],
            of: HashMap::from([
                ("a".to_string(), Some(0)),
                ("b".to_string(), Some(1)),
                ("c".to_string(), None),
                ("d".to_string(), Some(0)),
            ]),
            numeric: true,
        };
        let scored: Vec<Scored> = ["a", "b", "c", "d", "x"].into_iter().map(scored).collect();
        let split: Vec<(String, usize)> = column
            .split(&scored)
            .into_iter()
            .map(|(name, members)| (name, members.len()))
            .collect();
        assert_eq!(
            split,
            [
                ("9".to_string(), 1),
                ("10".to_string(), 2),
                ("null".to_string(), 1),
                ("not_in_snapshot".to_string(), 1)
            ]
        );
    }
}
