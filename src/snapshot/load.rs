//! Loading one Parquet snapshot (found by `discover`): footer once, schema checked by name, only the needed
//! columns decoded, row groups in parallel straight into the final matrix.

use std::fs::File;
use std::path::Path;

use arrow_schema::{DataType, Schema};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};

use super::decode::{Unit, decode_units};
pub use super::discover::{
    DiscoverOptions, Discovery, PartFile, SUCCESS_MARKER, SnapshotSource, Unservable, discover,
    find_snapshots,
};
use super::{FeatureSnapshot, SnapshotError};
use super::{codec, partition};

/// The id column every snapshot must have.
pub const ID_COLUMN: &str = "customer_id";

fn read_error(path: &Path, e: impl std::fmt::Display) -> SnapshotError {
    SnapshotError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn is_string_type(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, value) => is_string_type(value),
        _ => false,
    }
}

fn is_feature_type(t: &DataType) -> bool {
    t.is_numeric() || *t == DataType::Boolean
}

/// Checks one file's schema by name; returns whether its ids are strings.
fn check_schema(path: &Path, schema: &Schema, columns: &[String]) -> Result<bool, SnapshotError> {
    let column_error = |column: &str, problem: String| SnapshotError::Column {
        path: path.to_path_buf(),
        column: column.to_string(),
        problem,
    };
    let id = schema.field_with_name(ID_COLUMN).map_err(|_| {
        column_error(
            ID_COLUMN,
            "is missing (every snapshot needs a customer id column)".into(),
        )
    })?;
    let string_ids = is_string_type(id.data_type());
    if !string_ids && !id.data_type().is_integer() {
        return Err(column_error(
            ID_COLUMN,
            format!("has type {}, expected a string or integer", id.data_type()),
        ));
    }
    for column in columns {
        let field = schema
            .field_with_name(column)
            .map_err(|_| column_error(column, "is missing (a model needs it)".into()))?;
        if !is_feature_type(field.data_type()) {
            return Err(column_error(
                column,
                format!(
                    "has type {}, expected an integer, float or boolean feature",
                    field.data_type()
                ),
            ));
        }
    }
    Ok(string_ids)
}

/// Reads `source`, keeping `columns` (in that order) as the feature matrix.
pub fn load_snapshot(
    source: &SnapshotSource,
    columns: &[String],
) -> Result<FeatureSnapshot, SnapshotError> {
    load_snapshot_with(source, columns, None)
}

/// Like `load_snapshot`, also reading the list column `owned` (item ids per customer) when the files have it.
pub fn load_snapshot_with(
    source: &SnapshotSource,
    columns: &[String],
    owned: Option<&str>,
) -> Result<FeatureSnapshot, SnapshotError> {
    let opened = open_snapshot(source, columns, owned)?;
    if opened.rows() > u32::MAX as usize {
        return Err(SnapshotError::Invalid {
            path: source.path.clone(),
            message: format!(
                "{} rows is more than this server indexes ({})",
                opened.rows(),
                u32::MAX
            ),
        });
    }
    let mut snapshot = opened.decode(0..opened.units.len())?;
    snapshot.version = source.name.clone();
    Ok(snapshot)
}

/// A snapshot whose footers are read and schemas checked, ready to decode all or some of its row groups.
pub struct OpenedSnapshot {
    source: SnapshotSource,
    columns: Vec<String>,
    metas: Vec<ArrowReaderMetadata>,
    string_ids: bool,
    owned: Option<String>,
    units: Vec<Unit>,
}

/// Reads the footers of `source`'s files and checks their schemas for `columns` (and the list column `owned`,
/// used only when every file has it), with the messages of the server's loader; refuses a snapshot without rows.
pub fn open_snapshot(
    source: &SnapshotSource,
    columns: &[String],
    owned: Option<&str>,
) -> Result<OpenedSnapshot, SnapshotError> {
    let mut metas = Vec::with_capacity(source.files.len());
    let mut string_ids = None;
    for (i, part) in source.files.iter().enumerate() {
        let path = &part.path;
        let meta = read_footer(source, i)?;
        // Hive partition columns come from the file's folders, not from the file; codecs checked up front.
        let own_columns = partition::file_columns(path, &part.partition, columns)?;
        let strings = check_schema(path, meta.schema(), &own_columns)?;
        codec::check_codecs(path, meta.metadata(), &own_columns)?;
        if let Some(name) = owned
            && let Ok(field) = meta.schema().field_with_name(name)
            && !matches!(
                field.data_type(),
                DataType::List(_) | DataType::LargeList(_)
            )
        {
            return Err(SnapshotError::Column {
                path: path.clone(),
                column: name.to_string(),
                problem: format!(
                    "has type {}, expected a list of item ids",
                    field.data_type()
                ),
            });
        }
        if *string_ids.get_or_insert(strings) != strings {
            return Err(SnapshotError::Invalid {
                path: path.clone(),
                message: format!(
                    "{ID_COLUMN} is a string in some part files and an integer in others"
                ),
            });
        }
        metas.push(meta);
    }
    let string_ids = string_ids.unwrap_or(true);
    // Every part must have the owned-items column for it to be used; otherwise nothing is excluded (logged).
    let owned = owned.filter(|name| {
        metas
            .iter()
            .all(|m| m.schema().field_with_name(name).is_ok())
    });

    let units: Vec<Unit> = metas
        .iter()
        .enumerate()
        .flat_map(|(file, meta)| {
            meta.metadata()
                .row_groups()
                .iter()
                .enumerate()
                .map(move |(row_group, rg)| Unit {
                    file,
                    row_group,
                    rows: rg.num_rows().max(0) as usize,
                })
        })
        .collect();
    let opened = OpenedSnapshot {
        source: source.clone(),
        columns: columns.to_vec(),
        metas,
        string_ids,
        owned: owned.map(str::to_string),
        units,
    };
    if opened.rows() == 0 {
        return Err(SnapshotError::Invalid {
            path: source.path.clone(),
            message: "the snapshot has no rows".into(),
        });
    }
    Ok(opened)
}

impl OpenedSnapshot {
    /// Rows of every file together.
    pub fn rows(&self) -> usize {
        self.units.iter().map(|u| u.rows).sum()
    }

    /// Rows of each row group of each file, in file then row-group order.
    pub fn unit_rows(&self) -> Vec<usize> {
        self.units.iter().map(|u| u.rows).collect()
    }

    /// The file of row-group unit `unit` (files in order, then their row groups).
    pub fn unit_file(&self, unit: usize) -> Option<usize> {
        self.units.get(unit).map(|u| u.file)
    }

    /// The snapshot this was opened from.
    pub fn source(&self) -> &SnapshotSource {
        &self.source
    }

    /// The Arrow schema of the first file.
    pub fn schema(&self) -> Option<&Schema> {
        self.metas.first().map(|m| m.schema().as_ref())
    }

    /// Decodes row-group units `range` (in [`OpenedSnapshot::unit_rows`] order) into a snapshot of their rows
    /// alone, row groups in parallel; its version is `source name#first-last`.
    pub fn decode(&self, range: std::ops::Range<usize>) -> Result<FeatureSnapshot, SnapshotError> {
        let source = &self.source;
        let (matrix, index, owned) = decode_units(
            source,
            &self.metas,
            &self.units[range.clone()],
            &self.columns,
            self.owned.as_deref(),
            self.string_ids,
        )?;
        let mut snapshot = FeatureSnapshot::new(
            format!("{}#{}-{}", source.name, range.start, range.end),
            source.path.clone(),
            self.columns.clone(),
            matrix,
            index,
        );
        snapshot.produced_at = source.modified;
        snapshot.owned = owned;
        Ok(snapshot)
    }
}

/// Reads the footer of part `file` of `source`: from the local file, or from the remote object's last bytes.
fn read_footer(source: &SnapshotSource, file: usize) -> Result<ArrowReaderMetadata, SnapshotError> {
    let path = &source.files[file].path;
    let options = ArrowReaderOptions::new();
    let meta = match &source.remote {
        None => {
            let local = File::open(path).map_err(|e| read_error(path, e))?;
            ArrowReaderMetadata::load(&local, options)
        }
        Some(remote) => {
            let footer = remote.footer(file)?;
            ArrowReaderMetadata::load(&footer, options)
        }
    };
    meta.map_err(|e| read_error(path, format!("not a readable Parquet file: {e}")))
}
