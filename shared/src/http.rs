//! HTTP-shaped request and response types, independent of Lambda, so that every endpoint can
//! be driven from unit tests, property tests and benchmarks without an event.

use http::HeaderMap;

/// An incoming request as the endpoints see it.
#[derive(Debug, Clone, Default)]
pub struct ApiRequest {
    pub method: http::Method,
    pub path: String,
    /// Raw query string without `?`.
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// `requestContext.domainName` of the API Gateway event, used to derive the issuer when
    /// `ISSUER` is unset (never the Host header, which the caller controls).
    pub domain_name: Option<String>,
    /// `requestContext` source IP (for the audit log).
    pub source_ip: Option<String>,
}

impl ApiRequest {
    /// First value of a header as UTF-8, if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Media type of `Content-Type`, lower-cased, parameters dropped.
    pub fn media_type(&self) -> Option<String> {
        self.header("content-type").map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl ApiResponse {
    pub fn json(status: u16, body: &impl serde::Serialize) -> Self {
        let body = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned());
        Self {
            status,
            headers: vec![
                ("content-type", "application/json".to_owned()),
                ("x-content-type-options", "nosniff".to_owned()),
            ],
            body,
        }
    }

    /// A response without a body (RFC 7009 §2.2 revocation, RFC 6750 §3.1 bare challenges).
    pub fn empty(status: u16) -> Self {
        Self {
            status,
            headers: vec![],
            body: String::new(),
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// RFC 6749 §5.1: responses carrying tokens or credentials must not be cached.
    pub fn no_store(self) -> Self {
        self.header("cache-control", "no-store")
            .header("pragma", "no-cache")
    }

    /// Public, cacheable metadata (discovery documents, JWKS).
    pub fn public_cacheable(self, max_age: u64) -> Self {
        self.header("cache-control", format!("public, max-age={max_age}"))
            .header("access-control-allow-origin", "*")
    }

    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn not_found() -> Self {
        Self::json(404, &serde_json::json!({"error": "not_found"}))
    }

    pub fn method_not_allowed(allow: &'static str) -> Self {
        Self::json(405, &serde_json::json!({"error": "method_not_allowed"})).header("allow", allow)
    }
}
