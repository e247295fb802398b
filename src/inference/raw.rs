//! The raw tensor layout shared by Triton's binary data extension (HTTP) and gRPC `raw_input_contents` /
//! `raw_output_contents`: little-endian elements in row-major order, BYTES as 4-byte length-prefixed strings.

use super::InputValues;
use crate::error::ScoreError;

/// Bytes per element of a fixed-size v2 datatype; None for BYTES (length-prefixed) and unknown names.
pub fn element_size(datatype: &str) -> Option<usize> {
    Some(match datatype {
        "BOOL" | "INT8" | "UINT8" => 1,
        "INT16" | "UINT16" | "FP16" => 2,
        "INT32" | "UINT32" | "FP32" => 4,
        "INT64" | "UINT64" | "FP64" => 8,
        _ => return None,
    })
}

/// The number of elements a shape holds; Err when a dimension is negative or the product overflows.
pub fn element_count(name: &str, shape: &[i64]) -> Result<usize, ScoreError> {
    shape.iter().try_fold(1usize, |n, &d| {
        usize::try_from(d)
            .ok()
            .and_then(|d| n.checked_mul(d))
            .ok_or_else(|| {
                ScoreError::BadRequest(format!(
                    "input '{name}' shape {shape:?} is not a valid tensor shape"
                ))
            })
    })
}

/// Decodes one tensor's raw bytes: numbers become f32 (NaN stays NaN: a missing value), BYTES become UTF-8 texts.
/// The size must match shape × datatype exactly.
pub fn decode(
    name: &str,
    datatype: &str,
    shape: &[i64],
    bytes: &[u8],
) -> Result<InputValues, ScoreError> {
    let bad = |msg: String| ScoreError::BadRequest(format!("input '{name}': {msg}"));
    let count = element_count(name, shape)?;
    if datatype == "BYTES" {
        return decode_bytes(count, bytes)
            .map(InputValues::Texts)
            .map_err(bad);
    }
    let size = element_size(datatype).ok_or_else(|| {
        bad(format!(
            "datatype '{datatype}' is not a v2 datatype this server reads"
        ))
    })?;
    let expected = count.saturating_mul(size);
    if bytes.len() != expected {
        return Err(bad(format!(
            "shape {shape:?} of {datatype} needs {expected} bytes ({count} elements × {size}), got {}",
            bytes.len()
        )));
    }
    let values = bytes.chunks_exact(size).map(|c| number(datatype, c));
    Ok(InputValues::Numbers(values.collect()))
}

/// One little-endian element as f32 (`chunk` has the datatype's size).
fn number(datatype: &str, c: &[u8]) -> f32 {
    let b = |n: usize| c.get(n).copied().unwrap_or(0);
    let b2 = [b(0), b(1)];
    let b4 = [b(0), b(1), b(2), b(3)];
    let b8 = [b(0), b(1), b(2), b(3), b(4), b(5), b(6), b(7)];
    match datatype {
        "BOOL" | "UINT8" => f32::from(b(0)),
        "INT8" => f32::from(b(0) as i8),
        "INT16" => f32::from(i16::from_le_bytes(b2)),
        "UINT16" => f32::from(u16::from_le_bytes(b2)),
        "FP16" => f16_to_f32(u16::from_le_bytes(b2)),
        "INT32" => i32::from_le_bytes(b4) as f32,
        "UINT32" => u32::from_le_bytes(b4) as f32,
        "FP32" => f32::from_le_bytes(b4),
        "INT64" => i64::from_le_bytes(b8) as f32,
        "UINT64" => u64::from_le_bytes(b8) as f32,
        _ => f64::from_le_bytes(b8) as f32,
    }
}

/// IEEE 754 half precision to f32 (subnormals, infinities and NaN included).
fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((h >> 10) & 0x1f);
    let fraction = f32::from(h & 0x3ff);
    match exponent {
        0 => sign * fraction * 2f32.powi(-24),
        31 if fraction == 0.0 => sign * f32::INFINITY,
        31 => f32::NAN,
        e => sign * (1.0 + fraction / 1024.0) * 2f32.powi(e - 15),
    }
}

/// `count` BYTES elements, each a little-endian u32 length and that many UTF-8 bytes, and nothing after.
fn decode_bytes(count: usize, mut bytes: &[u8]) -> Result<Vec<String>, String> {
    let mut texts = Vec::with_capacity(count.min(bytes.len() / 4));
    for i in 0..count {
        let Some((len, rest)) = bytes.split_first_chunk::<4>() else {
            return Err(format!(
                "BYTES element {i} is truncated: its 4-byte length prefix is cut off"
            ));
        };
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return Err(format!(
                "BYTES element {i} says {len} bytes but only {} remain",
                rest.len()
            ));
        }
        let (text, rest) = rest.split_at(len);
        let text = std::str::from_utf8(text)
            .map_err(|e| format!("BYTES element {i} is not UTF-8 text: {e}"))?;
        texts.push(text.to_string());
        bytes = rest;
    }
    if !bytes.is_empty() {
        return Err(format!(
            "{} bytes follow the last of its {count} BYTES elements",
            bytes.len()
        ));
    }
    Ok(texts)
}

/// Appends f32 values as raw little-endian FP32 bytes.
pub fn encode_f32(values: &[f32], out: &mut Vec<u8>) {
    out.reserve(values.len() * 4);
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_of_every_width_decode() {
        let fp64: Vec<u8> = [1.5f64, f64::NAN]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let InputValues::Numbers(v) = decode("x", "FP64", &[1, 2], &fp64).unwrap() else {
            panic!("numbers expected")
        };
        assert_eq!(v[0], 1.5);
        assert!(v[1].is_nan());
        let int64: Vec<u8> = [-3i64, 7].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            decode("x", "INT64", &[2], &int64).unwrap(),
            InputValues::Numbers(vec![-3.0, 7.0])
        );
        // 1.0, -2.0 and 0.5 in half precision.
        let fp16: Vec<u8> = [0x3c00u16, 0xc000, 0x3800]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(
            decode("x", "FP16", &[3], &fp16).unwrap(),
            InputValues::Numbers(vec![1.0, -2.0, 0.5])
        );
        let mut fp32 = Vec::new();
        encode_f32(&[0.25, -1.0], &mut fp32);
        assert_eq!(
            decode("x", "FP32", &[2], &fp32).unwrap(),
            InputValues::Numbers(vec![0.25, -1.0])
        );
    }

    #[test]
    fn sizes_that_disagree_with_the_shape_are_refused() {
        let err = decode("feats", "FP32", &[2, 2], &[0; 12])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("'feats'") && err.contains("needs 16 bytes"),
            "{err}"
        );
        assert!(decode("x", "FP32", &[-1, 2], &[]).is_err());
        assert!(decode("x", "COMPLEX", &[1], &[0; 4]).is_err());
        assert!(decode("x", "FP32", &[i64::MAX, i64::MAX], &[]).is_err());
    }

    #[test]
    fn bytes_elements_are_length_prefixed() {
        let mut raw = Vec::new();
        for text in ["great service", "ça va"] {
            raw.extend_from_slice(&(text.len() as u32).to_le_bytes());
            raw.extend_from_slice(text.as_bytes());
        }
        assert_eq!(
            decode("text", "BYTES", &[2], &raw).unwrap(),
            InputValues::Texts(vec!["great service".into(), "ça va".into()])
        );
        let truncated = decode("text", "BYTES", &[2], &raw[..raw.len() - 1]).unwrap_err();
        assert!(truncated.to_string().contains("element 1"), "{truncated}");
        let short_prefix = decode("text", "BYTES", &[1], &[5, 0]).unwrap_err();
        assert!(
            short_prefix.to_string().contains("length prefix"),
            "{short_prefix}"
        );
        let trailing = decode("text", "BYTES", &[1], &raw).unwrap_err();
        assert!(trailing.to_string().contains("follow"), "{trailing}");
        let not_utf8 = decode("text", "BYTES", &[1], &[1, 0, 0, 0, 0xff]).unwrap_err();
        assert!(not_utf8.to_string().contains("UTF-8"), "{not_utf8}");
    }
}
