//! TLS for the HTTP server: the PEM certificate chain and private key as a rustls config (ring provider).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why the TLS files cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("--tls-cert and --tls-key go together: give both (HTTPS) or neither (plain HTTP)")]
    Incomplete,
    #[error("cannot use TLS certificate file {path}: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("cannot use TLS private key file {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("TLS certificate {cert} and key {key} do not go together: {reason}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

/// The server's TLS config from `--tls-cert` and `--tls-key`: None for plain HTTP (neither given), an error when
/// only one is given or a file cannot be read or used. ALPN (h2, http/1.1) is added by actix-web at bind time.
pub fn server_config(
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<Option<ServerConfig>, TlsError> {
    match (cert, key) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => load(cert, key).map(Some),
        _ => Err(TlsError::Incomplete),
    }
}

fn load(cert_path: &Path, key_path: &Path) -> Result<ServerConfig, TlsError> {
    let cert_error = |reason: String| TlsError::Cert {
        path: cert_path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| cert_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(cert_error("no PEM CERTIFICATE block in it".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| TlsError::Key {
        path: key_path.to_path_buf(),
        reason: match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "no PEM PRIVATE KEY block (PKCS#8, PKCS#1 or SEC1) in it".into()
            }
            other => other.to_string(),
        },
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| TlsError::Mismatch {
            cert: cert_path.to_path_buf(),
            key: key_path.to_path_buf(),
            reason: e.to_string(),
        })
}
