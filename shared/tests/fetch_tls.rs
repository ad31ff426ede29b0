//! The HTTPS adapter over TLS, as in production: a loopback host whose certificate comes from
//! a test authority that the system trust store (`SSL_CERT_FILE`) is told about, and a host
//! it is not told about.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use shared::fetch::HttpsFetcher;
use shared::grants::client_jwks::JwksFetcher;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, pki_types};

const JWKS: &str = r#"{"keys":[]}"#;

struct Authority {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn authority() -> Authority {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let pem = params.self_signed(&key).unwrap().pem();
    Authority {
        pem,
        issuer: Issuer::new(params, key),
    }
}

/// A TLS host for `localhost` with a certificate of `authority`; its `/jwks.json` URL.
async fn tls_host(authority: &Authority) -> String {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &authority.issuer)
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                let mut request = [0u8; 4096];
                let _ = tls.read(&mut request).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{JWKS}",
                    JWKS.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    format!("https://localhost:{port}/jwks.json")
}

#[tokio::test]
async fn https_to_a_trusted_host_is_fetched_and_to_an_unknown_authority_is_not() {
    let trusted = authority();
    let bundle = std::env::temp_dir().join(format!("oauth-fetch-tls-{}.pem", std::process::id()));
    std::fs::write(&bundle, &trusted.pem).unwrap();
    // SAFETY: the only test of this process, before any thread reads the environment.
    unsafe { std::env::set_var("SSL_CERT_FILE", &bundle) };

    let fetcher = HttpsFetcher::new();
    let url = tls_host(&trusted).await;
    assert_eq!(
        fetcher.fetch(&url).await.map_err(|e| e.0).as_deref(),
        Ok(JWKS)
    );

    let stranger = tls_host(&authority()).await;
    let error = fetcher.fetch(&stranger).await.unwrap_err().0;
    assert!(error.contains("request failed"), "{error}");
    std::fs::remove_file(bundle).unwrap();
}
