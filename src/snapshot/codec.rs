//! Parquet compression codecs: which this build reads, and a refusal naming the column and codec when a file
//! uses another (instead of a "corrupt data" error halfway through decoding).

use std::path::Path;

use parquet::basic::Compression;
use parquet::file::metadata::ParquetMetaData;

use super::SnapshotError;
use super::load::ID_COLUMN;

/// The codecs this build reads, as the refusal lists them.
pub const SUPPORTED: &str = "uncompressed, snappy, gzip, lz4, lz4_raw, brotli and zstd";

/// Whether this build decodes `codec` (every codec of the format but LZO, which the `parquet` crate lacks).
pub fn is_supported(codec: Compression) -> bool {
    match codec {
        Compression::UNCOMPRESSED
        | Compression::SNAPPY
        | Compression::GZIP(_)
        | Compression::LZ4
        | Compression::LZ4_RAW
        | Compression::BROTLI(_)
        | Compression::ZSTD(_) => true,
        Compression::LZO => false,
    }
}

/// Err naming the first column chunk of `customer_id` or `columns` compressed with a codec this build lacks.
pub fn check_codecs(
    path: &Path,
    meta: &ParquetMetaData,
    columns: &[String],
) -> Result<(), SnapshotError> {
    let needed = |root: &str| root == ID_COLUMN || columns.iter().any(|c| c == root);
    for row_group in meta.row_groups() {
        for chunk in row_group.columns() {
            let root = chunk.column_path().parts().first().map(String::as_str);
            if root.is_some_and(needed) && !is_supported(chunk.compression()) {
                return Err(SnapshotError::Column {
                    path: path.to_path_buf(),
                    column: root.unwrap_or_default().to_string(),
                    problem: format!(
                        "is compressed with {}, which this server cannot read (it reads {SUPPORTED}); \
                         write the snapshot with one of those",
                        chunk.compression()
                    ),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parquet::basic::Type as PhysicalType;
    use parquet::file::metadata::{ColumnChunkMetaData, FileMetaData, RowGroupMetaData};
    use parquet::schema::types::{SchemaDescriptor, Type};

    use super::*;

    fn metadata(codec: Compression) -> ParquetMetaData {
        let fields = ["customer_id", "x", "y"]
            .iter()
            .map(|name| {
                Arc::new(
                    Type::primitive_type_builder(name, PhysicalType::INT64)
                        .build()
                        .unwrap(),
                )
            })
            .collect();
        let root = Type::group_type_builder("schema")
            .with_fields(fields)
            .build()
            .unwrap();
        let schema = Arc::new(SchemaDescriptor::new(Arc::new(root)));
        let chunks = (0..3)
            .map(|i| {
                let codec = if i == 2 { codec } else { Compression::SNAPPY };
                ColumnChunkMetaData::builder(schema.column(i))
                    .set_compression(codec)
                    .build()
                    .unwrap()
            })
            .collect();
        let row_group = RowGroupMetaData::builder(schema.clone())
            .set_num_rows(1)
            .set_column_metadata(chunks)
            .build()
            .unwrap();
        let file = FileMetaData::new(1, 1, None, None, schema, None);
        ParquetMetaData::new(file, vec![row_group])
    }

    #[test]
    fn an_unreadable_codec_is_named_only_when_its_column_is_needed() {
        let lzo = metadata(Compression::LZO);
        let path = Path::new("old.parquet");
        assert!(check_codecs(path, &lzo, &["x".into()]).is_ok(), "y unused");
        let err = check_codecs(path, &lzo, &["y".into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("'y'") && err.contains("LZO") && err.contains("zstd"),
            "{err}"
        );
        let gzip = metadata(Compression::GZIP(Default::default()));
        assert!(check_codecs(path, &gzip, &["y".into()]).is_ok());
    }
}
