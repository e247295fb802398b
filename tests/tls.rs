//! TLS over a real socket: a test CA signs a certificate for 127.0.0.1 and localhost, the server serves it, and
//! clients trusting only that CA speak HTTP/1.1 (ureq) and HTTP/2 (curl, when it has HTTP/2); plain HTTP on the
//! TLS port fails, and missing, wrong or half-given TLS files refuse start-up naming the file.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use crmscore::{Config, RunningServer};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};

/// A test CA and a server certificate it signed, as PEM files in a temporary folder.
struct Pki {
    dir: TempDir,
    ca_der: Vec<u8>,
}

impl Pki {
    fn new(tag: &str) -> Pki {
        let dir = TempDir::new(tag);
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "crmscore test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

        let server_key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let cert = params.signed_by(&server_key, &*ca).unwrap();

        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("server.pem"), cert.pem()).unwrap();
        std::fs::write(
            dir.path().join("server-key.pem"),
            server_key.serialize_pem(),
        )
        .unwrap();
        Pki {
            ca_der: ca.der().to_vec(),
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn config(&self, cert: Option<&str>, key: Option<&str>) -> Config {
        let mut cfg = config(&sample_snapshot());
        cfg.tls_cert = cert.map(|name| self.path(name));
        cfg.tls_key = key.map(|name| self.path(name));
        cfg
    }

    /// An HTTPS client that trusts only the test CA.
    fn agent(&self) -> ureq::Agent {
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .root_certs(RootCerts::Specific(Arc::new(vec![
                Certificate::from_der(&self.ca_der).to_owned(),
            ])))
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .build();
        ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into()
    }
}

fn https(server: &RunningServer, host: &str, path: &str) -> String {
    format!("https://{host}:{}{path}", server.addr.port())
}

fn start_error(cfg: Config) -> String {
    match crmscore::start(cfg) {
        Err(e) => e.to_string(),
        Ok(server) => {
            server.stop();
            panic!("the server started")
        }
    }
}

/// Whether the installed curl speaks HTTP/2 (None: no curl at all).
fn curl_has_http2() -> Option<bool> {
    let out = Command::new("curl").arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    Some(
        text.lines()
            .any(|l| l.starts_with("Features:") && l.split_whitespace().any(|f| f == "HTTP2")),
    )
}

/// `curl --http2` trusting only the test CA: (status, HTTP version, body).
fn curl_http2(ca: &Path, url: &str, body: Option<&str>) -> (String, String, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--http2", "--max-time", "60", "--cacert"])
        .arg(ca)
        .args(["-w", "\n%{http_code} %{http_version}"]);
    if let Some(body) = body {
        cmd.args(["-H", "content-type: application/json", "--data", body]);
    }
    let out = cmd.arg(url).output().expect("curl runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "curl failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (body, trailer) = stdout.rsplit_once('\n').expect("curl wrote the trailer");
    let (status, version) = trailer.split_once(' ').expect("status and version");
    (status.to_string(), version.to_string(), body.to_string())
}

#[test]
fn serves_http1_and_http2_over_tls_to_clients_trusting_the_ca() {
    let pki = Pki::new("tls");
    let server = crmscore::start(pki.config(Some("server.pem"), Some("server-key.pem")))
        .expect("server starts with TLS");
    let agent = pki.agent();

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut resp = agent
            .get(https(&server, "127.0.0.1", "/v2/health/ready"))
            .call()
            .expect("HTTPS request with the test CA succeeds");
        if resp.status() == 200 {
            assert_eq!(resp.version(), ureq::http::Version::HTTP_11);
            break;
        }
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        assert!(Instant::now() < deadline, "not ready over TLS: {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut resp = agent
        .post(https(&server, "127.0.0.1", "/v1/churn/score"))
        .header("content-type", "application/json")
        .send(r#"{"customer_ids": ["nobody"]}"#)
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.body_mut().read_to_string().unwrap();
    assert!(body.contains("unknown_customer"), "{body}");

    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let plain = plain
        .get(format!("http://{}/v2/health/live", server.addr))
        .call();
    if let Ok(resp) = plain {
        panic!("plain HTTP on the TLS port was answered {}", resp.status());
    }

    match curl_has_http2() {
        Some(true) => {
            let ca = pki.path("ca.pem");
            let (status, version, body) =
                curl_http2(&ca, &https(&server, "localhost", "/v2/health/live"), None);
            assert_eq!((status.as_str(), version.as_str()), ("200", "2"), "{body}");
            let (status, version, body) = curl_http2(
                &ca,
                &https(&server, "localhost", "/v1/churn/score"),
                Some(r#"{"customer_ids": ["nobody"]}"#),
            );
            assert_eq!((status.as_str(), version.as_str()), ("200", "2"), "{body}");
            assert!(body.contains("unknown_customer"), "{body}");
        }
        Some(false) => println!("SKIPPED the HTTP/2 part: the installed curl has no HTTP2 feature"),
        None => println!("SKIPPED the HTTP/2 part: no curl installed"),
    }
    server.stop();
}

#[test]
fn missing_wrong_or_half_given_tls_files_refuse_start_up() {
    let pki = Pki::new("tls-bad");
    let message = start_error(pki.config(Some("server.pem"), None));
    assert!(message.contains("--tls-key"), "{message}");
    let message = start_error(pki.config(None, Some("server-key.pem")));
    assert!(message.contains("--tls-cert"), "{message}");

    let message = start_error(pki.config(Some("server.pem"), Some("nowhere.pem")));
    assert!(
        message.contains("private key") && message.contains("nowhere.pem"),
        "{message}"
    );
    let message = start_error(pki.config(Some("nowhere.pem"), Some("server-key.pem")));
    assert!(
        message.contains("certificate") && message.contains("nowhere.pem"),
        "{message}"
    );

    // A certificate where the key belongs, and the other way round.
    let message = start_error(pki.config(Some("server.pem"), Some("ca.pem")));
    assert!(
        message.contains("ca.pem") && message.contains("PRIVATE KEY"),
        "{message}"
    );
    let message = start_error(pki.config(Some("server-key.pem"), Some("server-key.pem")));
    assert!(
        message.contains("certificate file") && message.contains("CERTIFICATE"),
        "{message}"
    );

    // A key that is not the certificate's.
    std::fs::write(
        pki.path("other-key.pem"),
        KeyPair::generate().unwrap().serialize_pem(),
    )
    .unwrap();
    let message = start_error(pki.config(Some("server.pem"), Some("other-key.pem")));
    assert!(message.contains("do not go together"), "{message}");
}
