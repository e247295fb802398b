//! Hive partition folders (`key=value/`): parsing their names, typing their values as Spark and pyarrow infer
//! them, and the constant columns they add to every row of the files under them.

use std::path::Path;

use super::SnapshotError;
use super::load::ID_COLUMN;

/// The folder value Spark, Hive, DuckDB, pyarrow and polars write for a null partition value.
pub const HIVE_NULL: &str = "__HIVE_DEFAULT_PARTITION__";

/// One partition value, typed over every value of its key in the snapshot.
#[derive(Debug, Clone, PartialEq)]
pub enum PartitionValue {
    /// `__HIVE_DEFAULT_PARTITION__` or an empty value.
    Null,
    /// Every value of the key is an integer.
    Int(i64),
    /// Every value of the key is a number, some with a fraction or exponent.
    Float(f64),
    /// Anything else (usable to partition, never as a feature or as the customer id).
    Str(String),
}

impl PartitionValue {
    /// The value in the feature matrix: NaN for null; None for a string.
    pub fn as_feature(&self) -> Option<f32> {
        match self {
            PartitionValue::Null => Some(f32::NAN),
            PartitionValue::Int(i) => Some(*i as f32),
            PartitionValue::Float(f) => Some(*f as f32),
            PartitionValue::Str(_) => None,
        }
    }
}

/// The partition values of one file, in folder order (outermost first).
pub type Partition = Vec<(String, PartitionValue)>;

/// `key=value` of a partition folder name, the value percent-decoded as writers encode it; None otherwise.
pub fn parse_segment(name: &str) -> Option<(String, String)> {
    let (key, value) = name.split_once('=')?;
    if key.is_empty() || key.starts_with(['.', '_']) {
        return None;
    }
    Some((percent_decode(key), percent_decode(value)))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The inferred type of one partition key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum KeyType {
    /// Only nulls.
    Null,
    Int,
    Float,
    Str,
}

fn is_null(raw: &str) -> bool {
    raw.is_empty() || raw == HIVE_NULL
}

fn type_of(raw: &str) -> KeyType {
    if is_null(raw) {
        KeyType::Null
    } else if raw.parse::<i64>().is_ok() {
        KeyType::Int
    } else if raw
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
        && raw.parse::<f64>().is_ok()
    {
        KeyType::Float
    } else {
        KeyType::Str
    }
}

fn typed(raw: &str, key_type: KeyType) -> PartitionValue {
    if is_null(raw) {
        return PartitionValue::Null;
    }
    match key_type {
        KeyType::Int => raw
            .parse()
            .map_or(PartitionValue::Null, PartitionValue::Int),
        KeyType::Float => raw
            .parse()
            .map_or(PartitionValue::Null, PartitionValue::Float),
        KeyType::Null | KeyType::Str => PartitionValue::Str(raw.to_string()),
    }
}

fn keys_of(raw: &[(String, String)]) -> String {
    if raw.is_empty() {
        return "(none)".into();
    }
    raw.iter()
        .map(|(k, _)| format!("{k}="))
        .collect::<Vec<_>>()
        .join("/")
}

/// Types the raw `key=value` folders of every file: each key's values are integers when all are, numbers when
/// all are, strings otherwise (nulls fit any type). Err when the files do not share the same keys in the same
/// order, or a key repeats.
pub fn type_partitions(raw: &[Vec<(String, String)>]) -> Result<Vec<Partition>, String> {
    let Some(first) = raw.first() else {
        return Ok(Vec::new());
    };
    for (i, (key, _)) in first.iter().enumerate() {
        if first[..i].iter().any(|(k, _)| k == key) {
            return Err(format!("partition key '{key}' repeats in one path"));
        }
    }
    if let Some(other) = raw
        .iter()
        .find(|r| r.len() != first.len() || r.iter().zip(first).any(|(a, b)| a.0 != b.0))
    {
        return Err(format!(
            "part files sit under different partition folders ({} and {})",
            keys_of(first),
            keys_of(other)
        ));
    }
    let types: Vec<KeyType> = (0..first.len())
        .map(|k| {
            raw.iter()
                .map(|r| type_of(&r[k].1))
                .max()
                .unwrap_or(KeyType::Null)
        })
        .collect();
    Ok(raw
        .iter()
        .map(|r| {
            r.iter()
                .zip(&types)
                .map(|((key, value), &t)| (key.clone(), typed(value, t)))
                .collect()
        })
        .collect())
}

/// The columns of `columns` that the file at `path` must hold itself: all but those its partition folders give.
/// Err when a partition key is the customer id, or a string partition column is asked for as a feature.
pub fn file_columns(
    path: &Path,
    partition: &Partition,
    columns: &[String],
) -> Result<Vec<String>, SnapshotError> {
    let column_error = |column: &str, problem: &str| SnapshotError::Column {
        path: path.to_path_buf(),
        column: column.to_string(),
        problem: problem.to_string(),
    };
    if partition.iter().any(|(k, _)| k == ID_COLUMN) {
        return Err(column_error(
            ID_COLUMN,
            "is a partition folder key; customer ids must be a column inside the files",
        ));
    }
    let mut own = Vec::with_capacity(columns.len());
    for column in columns {
        match partition.iter().find(|(k, _)| k == column) {
            Some((_, value)) if value.as_feature().is_none() => {
                return Err(column_error(
                    column,
                    "is a partition folder key with text values; a feature must be numeric",
                ));
            }
            Some(_) => {}
            None => own.push(column.clone()),
        }
    }
    Ok(own)
}

/// Writes `value` into column `c` of every row of the row-major `dst` (a partition column: constant per file).
pub fn fill_column(dst: &mut [f32], c: usize, width: usize, value: &PartitionValue) {
    let v = value.as_feature().unwrap_or(f32::NAN);
    dst.iter_mut().skip(c).step_by(width).for_each(|d| *d = v);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[&[(&str, &str)]]) -> Vec<Vec<(String, String)>> {
        pairs
            .iter()
            .map(|r| {
                r.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn segments_parse_and_decode() {
        assert_eq!(
            parse_segment("seg=x%20y%2Fz"),
            Some(("seg".into(), "x y/z".into()))
        );
        assert_eq!(parse_segment("n="), Some(("n".into(), String::new())));
        assert_eq!(parse_segment("a=b=c"), Some(("a".into(), "b=c".into())));
        assert_eq!(parse_segment("part-0.parquet"), None);
        assert_eq!(parse_segment("=x"), None);
        assert_eq!(parse_segment("_temporary=1"), None);
        assert_eq!(percent_decode("100%"), "100%");
    }

    #[test]
    fn keys_are_typed_over_all_their_values() {
        let typed = type_partitions(&raw(&[
            &[("i", "1"), ("f", "2"), ("s", "7"), ("n", HIVE_NULL)],
            &[("i", "-3"), ("f", "2.5"), ("s", "a"), ("n", "")],
            &[("i", HIVE_NULL), ("f", "1e3"), ("s", "8"), ("n", HIVE_NULL)],
        ]))
        .unwrap();
        use PartitionValue::*;
        assert_eq!(
            typed[0],
            vec![
                ("i".into(), Int(1)),
                ("f".into(), Float(2.0)),
                ("s".into(), Str("7".into())),
                ("n".into(), Null)
            ]
        );
        assert_eq!(typed[1][0].1, Int(-3));
        assert_eq!(typed[2][0].1, Null);
        assert_eq!(typed[2][1].1, Float(1000.0));
        assert_eq!(typed[1][2].1, Str("a".into()));
        // "inf" and "NaN" parse as floats in Rust but are words, as Spark and pyarrow read them.
        let words = type_partitions(&raw(&[&[("w", "inf")], &[("w", "1")]])).unwrap();
        assert_eq!(words[1][0].1, Str("1".into()));
    }

    #[test]
    fn mixed_keys_are_refused() {
        let err = type_partitions(&raw(&[&[("a", "1")], &[("b", "1")]])).unwrap_err();
        assert!(err.contains("a= and b="), "{err}");
        let err = type_partitions(&raw(&[&[("a", "1")], &[]])).unwrap_err();
        assert!(err.contains("(none)"), "{err}");
        let err = type_partitions(&raw(&[&[("a", "1"), ("a", "2")]])).unwrap_err();
        assert!(err.contains("repeats"), "{err}");
    }

    #[test]
    fn partition_columns_stand_in_for_file_columns() {
        let path = Path::new("p");
        let part = vec![
            ("seg".to_string(), PartitionValue::Str("a".into())),
            ("tier".to_string(), PartitionValue::Int(2)),
        ];
        let columns = vec!["x".to_string(), "tier".to_string()];
        assert_eq!(file_columns(path, &part, &columns).unwrap(), vec!["x"]);
        let err = file_columns(path, &part, &["seg".to_string()]).unwrap_err();
        assert!(err.to_string().contains("text values"), "{err}");
        let ids = vec![(ID_COLUMN.to_string(), PartitionValue::Int(1))];
        assert!(file_columns(path, &ids, &columns).is_err());
        let mut dst = vec![0.0; 6];
        fill_column(&mut dst, 1, 2, &PartitionValue::Int(2));
        assert_eq!(dst, vec![0.0, 2.0, 0.0, 2.0, 0.0, 2.0]);
        fill_column(&mut dst, 0, 2, &PartitionValue::Null);
        assert!(dst[0].is_nan() && dst[4].is_nan());
    }
}
