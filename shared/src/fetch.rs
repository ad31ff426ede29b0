//! The outbound HTTPS adapter of the `JwksFetcher` port: a GET of a client's `jwks_uri`, with
//! a deadline, a size cap and no redirects, on the hyper + rustls stack the AWS SDK links.
//!
//! The TLS client (and its reading of the system's root certificates) is built on the first
//! fetch, so functions whose clients register no `jwks_uri` pay nothing at cold start.

use std::time::Duration;

use futures_util::future::BoxFuture;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_rustls::{ConfigBuilderExt, HttpsConnector};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::OnceCell;

use crate::grants::client_jwks::{FetchError, JwksFetcher};

/// The whole fetch (connect, TLS, response) must finish within this: a token request waits
/// for it.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest JWKS accepted; a dozen RSA keys are ~6 KB.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;

type HttpsClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

#[derive(Default)]
pub struct HttpsFetcher {
    client: OnceCell<Result<HttpsClient, FetchError>>,
}

impl HttpsFetcher {
    pub fn new() -> Self {
        Self::default()
    }

    async fn client(&self) -> Result<&HttpsClient, FetchError> {
        let built = self.client.get_or_init(|| async { build_client() }).await;
        built.as_ref().map_err(Clone::clone)
    }

    async fn get(&self, uri: &str) -> Result<String, FetchError> {
        let client = self.client().await?;
        let request = http::Request::get(uri)
            .header(
                http::header::ACCEPT,
                "application/jwk-set+json, application/json",
            )
            .header(http::header::USER_AGENT, "oauth-lambda-jwks-fetch")
            .body(Empty::new())
            .map_err(|_| FetchError("the jwks_uri is not a valid URL".into()))?;
        let response = client
            .request(request)
            .await
            .map_err(|e| FetchError(format!("the request failed: {e}")))?;
        // Redirects are not followed: the registered URI is where the keys are.
        if response.status() != http::StatusCode::OK {
            return Err(FetchError(format!("answered {}", response.status())));
        }
        let declared = response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|length| length > MAX_JWKS_BYTES) {
            return Err(too_large());
        }
        let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|e| match e.downcast::<http_body_util::LengthLimitError>() {
                Ok(_) => too_large(),
                Err(e) => FetchError(format!("the response broke off: {e}")),
            })?
            .to_bytes();
        String::from_utf8(body.to_vec()).map_err(|_| FetchError("the body is not UTF-8".into()))
    }
}

fn too_large() -> FetchError {
    FetchError(format!("the body is over {MAX_JWKS_BYTES} bytes"))
}

fn build_client() -> Result<HttpsClient, FetchError> {
    // `http` is reachable only for loopback URIs (`client_jwks::validate_jwks_uri`).
    tls_client(None).map_err(|e| FetchError(format!("no TLS client: {e}")))
}

/// An HTTP/1.1 client on the hyper + rustls (aws-lc-rs) stack the AWS SDK links, trusting the
/// platform's roots (`SSL_CERT_FILE` too, as the SDK does); `http` URIs pass in the clear.
pub(crate) fn tls_client<B>(
    connect_timeout: Option<Duration>,
) -> Result<Client<HttpsConnector<HttpConnector>, B>, rustls::Error>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
{
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| {
            builder
                .with_native_roots()
                .map_err(|e| rustls::Error::General(e.to_string()))
        })?
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(connect_timeout);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

impl JwksFetcher for HttpsFetcher {
    fn fetch<'a>(&'a self, uri: &'a str) -> BoxFuture<'a, Result<String, FetchError>> {
        Box::pin(async move {
            tokio::time::timeout(FETCH_TIMEOUT, self.get(uri))
                .await
                .unwrap_or_else(|_| Err(FetchError(format!("no answer in {FETCH_TIMEOUT:?}"))))
        })
    }
}
