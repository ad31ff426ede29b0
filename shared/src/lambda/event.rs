//! API Gateway HTTP API events (payload format 2.0, which Lambda function URLs share) read
//! straight into an `ApiRequest`, and `ApiResponse`s written in the shape those services expect.
//!
//! Only the fields an endpoint uses are read; serde skips the rest of the event without building
//! it. Header names and values go from the event's bytes into the `HeaderMap` without an
//! intermediate map. (lambda_http, used before, parsed each event as a REST event first, then
//! again in full as an HTTP API event, then built an `http::Request` from it: 9.3 µs of CPU per
//! event and response in a hot loop against 3.0 µs here, see bench/README.md.)

use std::borrow::Cow;
use std::fmt;

use base64::Engine;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::error::OAuthError;
use crate::http::{ApiRequest, ApiResponse};

/// The parts of a payload-format-2.0 event the endpoints read. A REST API (1.0) event has no
/// `requestContext.http` and is refused as not this function's input.
#[derive(Debug)]
pub struct HttpApiEvent(EventFields);

/// The runtime logs a refused event's error and returns it to the invoker: serde's own message
/// would quote the offending value (a header, the body), so it is replaced by one that does not.
impl<'de> Deserialize<'de> for HttpApiEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        EventFields::deserialize(deserializer)
            .map(HttpApiEvent)
            .map_err(|_| {
                de::Error::custom("not an API Gateway HTTP API event (payload format 2.0)")
            })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventFields {
    #[serde(default, deserialize_with = "null_as_default")]
    raw_path: String,
    #[serde(default, deserialize_with = "null_as_default")]
    raw_query_string: String,
    /// HTTP API sends request cookies here, not in `headers`.
    #[serde(default, deserialize_with = "null_as_default")]
    cookies: Vec<String>,
    #[serde(default, deserialize_with = "header_map")]
    headers: HeaderMap,
    request_context: RequestContext,
    #[serde(default)]
    body: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    is_base64_encoded: bool,
}

/// Emulators (cargo lambda, sam local) send `null` for what API Gateway leaves out.
fn null_as_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(
    deserializer: D,
) -> Result<T, D::Error> {
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestContext {
    #[serde(default)]
    domain_name: Option<String>,
    http: HttpContext,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HttpContext {
    method: String,
    #[serde(default)]
    source_ip: Option<String>,
}

/// A header name or value that is not valid HTTP is dropped, as a proxy would (API Gateway
/// already refuses most of them); the rest of the request stands.
fn header_map<'de, D: Deserializer<'de>>(deserializer: D) -> Result<HeaderMap, D::Error> {
    struct HeaderMapVisitor;

    impl<'de> Visitor<'de> for HeaderMapVisitor {
        type Value = HeaderMap;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map of header names to strings")
        }

        fn visit_unit<E: de::Error>(self) -> Result<HeaderMap, E> {
            Ok(HeaderMap::new())
        }

        fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<HeaderMap, A::Error> {
            let mut headers = HeaderMap::with_capacity(entries.size_hint().unwrap_or(16));
            while let Some((name, value)) = entries.next_entry::<Cow<'de, str>, Cow<'de, str>>()? {
                let (Ok(name), Ok(value)) = (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(&value),
                ) else {
                    continue;
                };
                headers.append(name, value);
            }
            Ok(headers)
        }
    }

    deserializer.deserialize_any(HeaderMapVisitor)
}

impl HttpApiEvent {
    /// The request, or the 400 to answer when the event's method is not an HTTP method or its
    /// body is not the base64 it claims (API Gateway sends neither; a direct invoke may).
    pub fn into_api_request(self) -> Result<ApiRequest, ApiResponse> {
        let HttpApiEvent(event) = self;
        let method = http::Method::from_bytes(event.request_context.http.method.as_bytes())
            .map_err(|_| {
                OAuthError::InvalidRequest("the request method is not an HTTP method")
                    .into_response()
            })?;
        let body = match event.body {
            None => Vec::new(),
            Some(body) if event.is_base64_encoded => base64::engine::general_purpose::STANDARD
                .decode(body)
                .map_err(|_| {
                    OAuthError::InvalidRequest("the request body could not be decoded")
                        .into_response()
                })?,
            Some(body) => body.into_bytes(),
        };
        let mut headers = event.headers;
        if !event.cookies.is_empty()
            && let Ok(cookie) = HeaderValue::from_str(&event.cookies.join("; "))
        {
            headers.insert(http::header::COOKIE, cookie);
        }
        Ok(ApiRequest {
            method,
            path: event.raw_path,
            query: Some(event.raw_query_string).filter(|q| !q.is_empty()),
            headers,
            body,
            domain_name: event.request_context.domain_name,
            source_ip: event.request_context.http.source_ip,
        })
    }
}

/// An `ApiResponse` as payload format 2.0 returns it: `Set-Cookie` values in `cookies` (a
/// JSON object cannot repeat a header), any other repeated header joined with ", " (RFC 9110
/// §5.3).
#[derive(Debug)]
pub struct HttpApiResponse(pub ApiResponse);

impl Serialize for HttpApiResponse {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Headers<'a>(&'a [(&'static str, String)]);
        impl Serialize for Headers<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(None)?;
                for (i, (name, value)) in self.0.iter().enumerate() {
                    let first = !self.0[..i]
                        .iter()
                        .any(|(n, _)| n.eq_ignore_ascii_case(name));
                    if name.eq_ignore_ascii_case("set-cookie") || !first {
                        continue;
                    }
                    let repeats = self.0[i + 1..]
                        .iter()
                        .filter(|(n, _)| n.eq_ignore_ascii_case(name));
                    let mut joined = Cow::Borrowed(value.as_str());
                    for (_, more) in repeats {
                        let joined = joined.to_mut();
                        joined.push_str(", ");
                        joined.push_str(more);
                    }
                    map.serialize_entry(name, &joined)?;
                }
                map.end()
            }
        }

        let response = &self.0;
        let cookies: Vec<&str> = response
            .headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, value)| value.as_str())
            .collect();
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("statusCode", &response.status)?;
        map.serialize_entry("headers", &Headers(&response.headers))?;
        // Always present, if empty: cargo lambda reads responses into a type that requires it.
        map.serialize_entry("cookies", &cookies)?;
        map.serialize_entry("body", &response.body)?;
        map.serialize_entry("isBase64Encoded", &false)?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: serde_json::Value) -> Result<ApiRequest, ApiResponse> {
        serde_json::from_value::<HttpApiEvent>(json)
            .expect("an HTTP API event")
            .into_api_request()
    }

    #[test]
    fn an_http_api_event_becomes_the_request_the_endpoints_read() {
        let request = event(crate::testing::http_api_event_json()).expect("a request");
        assert_eq!(request.method, http::Method::POST);
        assert_eq!(request.path, "/oauth/v2/token");
        assert_eq!(request.query.as_deref(), Some("a=1&b=two%20words"));
        assert_eq!(request.body, b"grant_type=client_credentials&scope=read");
        assert_eq!(
            request.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(request.header("cookie"), Some("sid=abc; theme=dark"));
        let forwarded: Vec<_> = request.headers.get_all("x-forwarded-for").iter().collect();
        assert_eq!(forwarded, ["198.51.100.7, 203.0.113.9"]);
        assert_eq!(request.domain_name.as_deref(), Some("id.example.com"));
        assert_eq!(request.source_ip.as_deref(), Some("198.51.100.7"));
    }

    #[test]
    fn a_plain_body_null_fields_and_a_bad_header_are_read_as_sent() {
        let mut json = crate::testing::http_api_event_json();
        json["isBase64Encoded"] = false.into();
        json["body"] = "grant_type=password".into();
        json["headers"]["bad header"] = "x".into();
        let request = event(json.clone()).expect("a request");
        assert_eq!(request.body, b"grant_type=password");
        assert!(request.header("content-type").is_some());

        json.as_object_mut().unwrap().remove("body");
        for absent in ["cookies", "headers", "rawQueryString", "isBase64Encoded"] {
            json[absent] = serde_json::Value::Null;
        }
        let request = event(json).expect("a request");
        assert!(request.body.is_empty() && request.headers.is_empty() && request.query.is_none());
    }

    #[test]
    fn a_body_that_is_not_the_base64_it_claims_is_a_clear_400() {
        let mut json = crate::testing::http_api_event_json();
        json["body"] = "not base64!".into();
        let response = event(json).expect_err("a 400");
        assert_eq!(response.status, 400);
        assert!(response.body.contains("invalid_request"));
    }

    #[test]
    fn a_method_that_is_not_an_http_method_is_a_clear_400_not_a_get() {
        let mut json = crate::testing::http_api_event_json();
        json["requestContext"]["http"]["method"] = "PO ST".into();
        let response = event(json).expect_err("a 400");
        assert_eq!(response.status, 400);
        assert!(
            response.body.contains("not an HTTP method"),
            "{}",
            response.body
        );
    }

    #[test]
    fn a_rest_api_event_is_not_this_functions_input() {
        let rest = serde_json::json!({
            "resource": "/oauth/v2/token", "path": "/oauth/v2/token", "httpMethod": "POST",
            "headers": {}, "requestContext": {"identity": {"sourceIp": "198.51.100.7"}},
            "body": null, "isBase64Encoded": false,
        });
        assert!(serde_json::from_value::<HttpApiEvent>(rest).is_err());
    }

    #[test]
    fn a_refused_event_is_not_quoted_in_the_error() {
        let mut json = crate::testing::http_api_event_json();
        json["headers"] = "authorization: Basic czNjcjN0".into();
        let bytes = serde_json::to_vec(&json).unwrap();
        let error = serde_json::from_slice::<HttpApiEvent>(&bytes).expect_err("refused");
        assert!(!error.to_string().contains("czNjcjN0"), "{error}");
        assert!(error.to_string().contains("payload format 2.0"), "{error}");
    }

    #[test]
    fn a_response_puts_cookies_apart_and_joins_repeated_headers() {
        let response = ApiResponse::json(302, &serde_json::json!({}))
            .header("set-cookie", "sid=1; Secure")
            .header("vary", "origin")
            .header("Set-Cookie", "csrf=2; Secure")
            .header("vary", "cookie");
        let json = serde_json::to_value(HttpApiResponse(response)).unwrap();
        assert_eq!(json["statusCode"], 302);
        assert_eq!(
            json["cookies"],
            serde_json::json!(["sid=1; Secure", "csrf=2; Secure"])
        );
        assert_eq!(json["headers"]["vary"], "origin, cookie");
        assert_eq!(json["headers"]["content-type"], "application/json");
        assert!(json["headers"].get("set-cookie").is_none());
        assert_eq!(json["body"], "{}");
        assert_eq!(json["isBase64Encoded"], false);

        let json = serde_json::to_value(HttpApiResponse(ApiResponse::empty(200))).unwrap();
        assert_eq!(json["cookies"], serde_json::json!([]));
        assert_eq!(json["body"], "");
    }
}
