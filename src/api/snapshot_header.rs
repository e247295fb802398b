//! The `x-snapshot-version` reply header: which snapshot's data answered a scoring or insights request.

use actix_web::HttpResponseBuilder;
use actix_web::http::header::HeaderValue;

/// The reply header naming the snapshot whose data answered, so a client behind a load balancer can tell
/// which data (and, across replicas, which replica's version) it got.
pub const SNAPSHOT_HEADER: &str = "x-snapshot-version";

/// Adds [`SNAPSHOT_HEADER`] with `version`, the version of the snapshot the request read (taken once per
/// request, so it is the one that answered even when a swap happens meanwhile). A version that is not a valid
/// header value (a control character in a file name) is sent percent-encoded.
pub fn insert(response: &mut HttpResponseBuilder, version: &str) {
    match HeaderValue::from_str(version) {
        Ok(value) => response.insert_header((SNAPSHOT_HEADER, value)),
        Err(_) => response.insert_header((SNAPSHOT_HEADER, percent_encoded(version))),
    };
}

/// `text` with every byte outside printable ASCII (and `%`) written as `%XX`.
fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'%' => "%25".to_string(),
            0x20..=0x7e => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::percent_encoded;

    #[test]
    fn a_version_that_is_no_header_value_is_sent_percent_encoded() {
        assert_eq!(percent_encoded("a.parquet"), "a.parquet");
        assert_eq!(percent_encoded("données 100%"), "donn%C3%A9es 100%25");
        assert_eq!(percent_encoded("a\nb"), "a%0Ab");
    }
}
