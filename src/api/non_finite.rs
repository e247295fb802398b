//! The bare `NaN` / `Infinity` / `-Infinity` tokens that Python's json module and tritonclient write for float
//! tensors, rewritten so serde_json (which refuses them) can read the body.

use std::borrow::Cow;

/// Each token outside strings and what replaces it: `NaN` is a missing value (`null`); an infinity becomes a
/// finite f64 that no f32 holds, so the tensor check refuses it as out of the float32 range, naming the tensor.
const TOKENS: [(&[u8], &[u8]); 3] = [
    (b"NaN", b"null"),
    (b"-Infinity", b"-1e300"),
    (b"Infinity", b"1e300"),
];

/// The JSON text with every bare NaN / Infinity token outside strings rewritten; borrowed unchanged (no copy) when
/// the body holds none, which one scan for the letters 'N' and 'I' decides for the usual numeric body.
pub fn readable(json: &[u8]) -> Cow<'_, [u8]> {
    if !json.contains(&b'N') && !json.contains(&b'I') {
        return Cow::Borrowed(json);
    }
    let mut out: Option<Vec<u8>> = None;
    let (mut in_string, mut escaped) = (false, false);
    let (mut i, mut copied) = (0, 0);
    while let Some(&b) = json.get(i) {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        let rest = &json[i..];
        let found = TOKENS.iter().find(|(token, _)| {
            rest.starts_with(token) && ends_value(rest.get(token.len()).copied())
        });
        match found {
            Some((token, replacement)) => {
                let out = out.get_or_insert_with(|| Vec::with_capacity(json.len() + 16));
                out.extend_from_slice(&json[copied..i]);
                out.extend_from_slice(replacement);
                i += token.len();
                copied = i;
            }
            None => i += 1,
        }
    }
    match out {
        Some(mut out) => {
            out.extend_from_slice(&json[copied..]);
            Cow::Owned(out)
        }
        None => Cow::Borrowed(json),
    }
}

/// Whether the byte after a token ends a JSON value (so `NaNa` or `Infinityx` stay as they are, and fail to parse).
fn ends_value(next: Option<u8>) -> bool {
    matches!(
        next,
        None | Some(b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> String {
        String::from_utf8(readable(json.as_bytes()).into_owned()).unwrap()
    }

    #[test]
    fn tokens_outside_strings_are_rewritten() {
        assert_eq!(read("[1, NaN, 2]"), "[1, null, 2]");
        assert_eq!(read("[[NaN,NaN],[3]]"), "[[null,null],[3]]");
        assert_eq!(read("[Infinity, -Infinity]"), "[1e300, -1e300]");
        assert_eq!(read(r#"{"a":NaN}"#), r#"{"a":null}"#);
    }

    #[test]
    fn strings_and_plain_bodies_are_left_alone() {
        let plain = br#"{"data": [1.5, 2]}"#;
        assert!(matches!(readable(plain), Cow::Borrowed(_)));
        let texts = r#"{"name": "NaN", "data": ["Infinity \" NaN", "I said \\"]}"#;
        assert_eq!(read(texts), texts);
        assert_eq!(read(r#"["\\", NaN]"#), r#"["\\", null]"#);
        // Not a token on its own: left for serde_json to refuse.
        assert_eq!(read("[NaNa]"), "[NaNa]");
    }

    #[test]
    fn rewritten_bodies_parse_as_missing_and_out_of_range_values() {
        let values: Vec<Option<f64>> =
            serde_json::from_slice(&readable(b"[NaN, Infinity]")).unwrap();
        assert_eq!(values[0], None);
        assert!((values[1].unwrap() as f32).is_infinite());
    }
}
