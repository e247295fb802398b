//! Building the object-store client for a URL: credentials and endpoint from each cloud's standard environment
//! (and instance or workload identity, which `object_store` resolves), bounded retries with exponential backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ObjectStore, ObjectStoreScheme, RetryConfig};
use url::Url;

use super::StorageError;

/// Retries of one request on a transient error (5xx, throttling, a dropped connection) inside the client.
pub const CLIENT_RETRIES: usize = 4;

/// The retry policy of every request: 4 retries, backoff from 100 ms doubling up to 5 s, at most 60 s in all.
pub fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
        max_retries: CLIENT_RETRIES,
        retry_timeout: Duration::from_secs(60),
    }
}

/// A client and the object path a URL names inside it.
#[derive(Debug, Clone)]
pub struct Located {
    /// The client of the URL's bucket or container (shared by every URL of that bucket).
    pub store: Arc<dyn ObjectStore>,
    /// The path inside the bucket (no leading or trailing `/`).
    pub path: ObjectPath,
    /// `scheme://bucket`, to name objects in messages.
    pub root: String,
}

impl Located {
    /// The URL of `path` (an object or prefix of this store), for messages and versions.
    pub fn url_of(&self, path: &ObjectPath) -> String {
        format!("{}/{}", self.root, path)
    }
}

/// Whether an endpoint is plain HTTP on this machine (a local S3-compatible server in tests and development).
fn is_loopback_http(endpoint: &str) -> bool {
    let Some(rest) = endpoint.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    let host = host
        .rsplit_once(':')
        .filter(|(h, port)| !h.is_empty() && port.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn s3(url: &str) -> Result<Arc<dyn ObjectStore>, object_store::Error> {
    let mut builder = AmazonS3Builder::from_env()
        .with_url(url)
        .with_retry(retry_config());
    // AWS_ENDPOINT_URL / AWS_ENDPOINT are read by from_env; plain HTTP needs AWS_ALLOW_HTTP=true, except on
    // loopback, where there is nothing to intercept.
    let endpoint = std::env::var("AWS_ENDPOINT_URL_S3")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .or_else(|_| std::env::var("AWS_ENDPOINT"))
        .unwrap_or_default();
    if is_loopback_http(&endpoint) {
        builder = builder.with_allow_http(true);
    }
    Ok(Arc::new(builder.build()?))
}

fn build(scheme: &ObjectStoreScheme, url: &Url) -> Result<Arc<dyn ObjectStore>, String> {
    // The TLS stack (rustls without a bundled provider) uses ring; a provider installed earlier stays.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let text = url.as_str();
    let built: Result<Arc<dyn ObjectStore>, object_store::Error> = match scheme {
        ObjectStoreScheme::AmazonS3 => s3(text),
        ObjectStoreScheme::GoogleCloudStorage => GoogleCloudStorageBuilder::from_env()
            .with_url(text)
            .with_retry(retry_config())
            .build()
            .map(|s| Arc::new(s) as Arc<dyn ObjectStore>),
        ObjectStoreScheme::MicrosoftAzure => MicrosoftAzureBuilder::from_env()
            .with_url(text)
            .with_retry(retry_config())
            .build()
            .map(|s| Arc::new(s) as Arc<dyn ObjectStore>),
        ObjectStoreScheme::Local => Ok(Arc::new(LocalFileSystem::new())),
        other => return Err(format!("{other:?} URLs are not supported")),
    };
    built.map_err(|e| e.to_string())
}

/// The client for `url` and the path it names; clients are built once per bucket and reused (connections and
/// credentials are cached by the client).
pub fn locate(url: &str) -> Result<Located, StorageError> {
    static CLIENTS: Mutex<Option<HashMap<String, Arc<dyn ObjectStore>>>> = Mutex::new(None);
    let refused = |message: String| StorageError::Url {
        url: url.to_string(),
        message,
    };
    let parsed = Url::parse(url).map_err(|e| refused(e.to_string()))?;
    let (scheme, path) = ObjectStoreScheme::parse(&parsed).map_err(|e| refused(e.to_string()))?;
    let root = match scheme {
        ObjectStoreScheme::Local => "file://".to_string(),
        _ => format!(
            "{}://{}",
            parsed.scheme(),
            parsed.host_str().unwrap_or_default()
        ),
    };
    let mut clients = CLIENTS.lock().unwrap_or_else(|p| p.into_inner());
    let clients = clients.get_or_insert_with(HashMap::new);
    let store = match clients.get(&root) {
        Some(store) => store.clone(),
        None => {
            let store = build(&scheme, &parsed).map_err(refused)?;
            clients.insert(root.clone(), store.clone());
            store
        }
    };
    Ok(Located { store, path, root })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_allowed_on_loopback_only() {
        for yes in [
            "http://127.0.0.1:9000",
            "http://localhost:5000/",
            "http://[::1]:80",
        ] {
            assert!(is_loopback_http(yes), "{yes}");
        }
        for no in [
            "https://127.0.0.1:9000",
            "http://minio.internal:9000",
            "http://10.0.0.1",
            "",
        ] {
            assert!(!is_loopback_http(no), "{no}");
        }
    }

    #[test]
    fn urls_name_a_bucket_and_a_path() {
        let located = locate("file:///tmp/crmscore-storage-test/snapshots/").unwrap();
        assert_eq!(located.path.as_ref(), "tmp/crmscore-storage-test/snapshots");
        assert_eq!(
            located.url_of(&located.path),
            "file:///tmp/crmscore-storage-test/snapshots"
        );
        let err = locate("ftp://host/x").unwrap_err().to_string();
        assert!(err.starts_with("ftp://host/x: "), "{err}");
    }
}
