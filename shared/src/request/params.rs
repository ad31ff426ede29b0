//! Request parameters from `application/x-www-form-urlencoded` (RFC 6749 §3.2) or a flat JSON
//! object of strings (EmpowerID callers).

use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};

use crate::error::OAuthError;

/// Bodies above this are refused before parsing.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Parameters this service reads; only these are checked for repetition, the rest are ignored
/// (RFC 6749 §3.2: unrecognized parameters MUST be ignored).
const KNOWN: [&str; 15] = [
    "grant_type",
    "code",
    "code_verifier",
    "client_id",
    "client_secret",
    "scope",
    "username",
    "password",
    "refresh_token",
    "redirect_uri",
    "token",
    "token_type_hint",
    "access_token",
    // RFC 7521 §4.2 client authentication.
    "client_assertion_type",
    "client_assertion",
];

#[derive(Debug, Default, Clone)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// The value of a known parameter; an empty value counts as absent (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    fn from_pairs(pairs: Vec<(String, String)>) -> Result<Self, OAuthError> {
        // RFC 6749 §3.1: request parameters MUST NOT be included more than once.
        for (i, (name, _)) in pairs.iter().enumerate() {
            if KNOWN.contains(&name.as_str()) && pairs[..i].iter().any(|(k, _)| k == name) {
                return Err(OAuthError::InvalidRequest(
                    "a parameter was sent more than once",
                ));
            }
        }
        let pairs = pairs
            .into_iter()
            .filter(|(k, _)| KNOWN.contains(&k.as_str()))
            .collect();
        Ok(Self { pairs })
    }

    /// Parameters of a query string (GET tokeninfo).
    pub fn from_query(query: &str) -> Result<Self, OAuthError> {
        Self::from_form(query.as_bytes())
    }

    fn from_form(body: &[u8]) -> Result<Self, OAuthError> {
        let pairs = form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Self::from_pairs(pairs)
    }
}

/// Parses a request body by its media type (parameters of Content-Type are ignored).
pub fn parse_body(media_type: Option<&str>, body: &[u8]) -> Result<Params, OAuthError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(OAuthError::InvalidRequest("the request body is too large"));
    }
    match media_type {
        Some("application/x-www-form-urlencoded") => {
            if std::str::from_utf8(body).is_err() {
                return Err(OAuthError::InvalidRequest(
                    "the request body is not valid UTF-8",
                ));
            }
            Params::from_form(body)
        }
        Some("application/json") => {
            let object: FlatObject = serde_json::from_slice(body).map_err(|_| {
                OAuthError::InvalidRequest("the JSON body must be one flat object of string values")
            })?;
            // SPEC §4: a JSON key sent twice is refused whatever the key (a form may repeat
            // an unknown parameter: RFC 6749 §3.2 says to ignore those).
            let pairs = object.0;
            if pairs
                .iter()
                .enumerate()
                .any(|(i, (k, _))| pairs[..i].iter().any(|(seen, _)| seen == k))
            {
                return Err(OAuthError::InvalidRequest(
                    "a parameter was sent more than once",
                ));
            }
            Params::from_pairs(pairs)
        }
        _ => Err(OAuthError::InvalidRequest(
            "the content type must be application/x-www-form-urlencoded or application/json",
        )),
    }
}

/// A JSON object whose values are all strings; keys kept in order, duplicates kept so that
/// `Params` can reject them (serde_json's maps would silently keep the last one).
struct FlatObject(Vec<(String, String)>);

impl<'de> serde::Deserialize<'de> for FlatObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FlatVisitor;
        impl<'de> Visitor<'de> for FlatVisitor {
            type Value = FlatObject;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object of string values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FlatObject, A::Error> {
                let mut pairs = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    let value = map.next_value::<String>()?;
                    pairs.push((key, value));
                }
                Ok(FlatObject(pairs))
            }
        }
        deserializer.deserialize_map(FlatVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");
    const JSON: Option<&str> = Some("application/json");

    #[test]
    fn form_values_are_decoded_and_empty_means_absent() {
        let p = parse_body(
            FORM,
            b"grant_type=password&scope=a+b%20c&redirect_uri=&x=1&x=2",
        )
        .unwrap();
        assert_eq!(p.get("grant_type"), Some("password"));
        assert_eq!(p.get("scope"), Some("a b c"));
        assert_eq!(p.get("redirect_uri"), None);
        assert_eq!(
            p.get("x"),
            None,
            "unknown parameters are ignored, even repeated"
        );
    }

    #[test]
    fn repeated_known_parameter_is_invalid_request() {
        let err = parse_body(FORM, b"grant_type=password&grant_type=password").unwrap_err();
        assert_eq!(err.code(), "invalid_request");
        let err = parse_body(JSON, br#"{"scope":"a","scope":"b"}"#).unwrap_err();
        assert_eq!(err.code(), "invalid_request");
        // In JSON even an unknown key may not repeat (SPEC §4); a form ignores it (§3.2).
        let err = parse_body(JSON, br#"{"grant_type":"password","x":"1","x":"2"}"#).unwrap_err();
        assert_eq!(err.code(), "invalid_request");
        assert!(parse_body(FORM, b"grant_type=password&x=1&x=2").is_ok());
    }

    #[test]
    fn json_must_be_a_flat_object_of_strings() {
        let p = parse_body(
            JSON,
            br#"{"grant_type":"password","client_id":"c","extra":"x"}"#,
        )
        .unwrap();
        assert_eq!(p.get("client_id"), Some("c"));
        for bad in [
            &br#"{"grant_type":1}"#[..],
            br#"["a"]"#,
            br#"{"a":{"b":"c"}}"#,
            b"{",
            b"",
            br#"{"a":null}"#,
        ] {
            assert_eq!(parse_body(JSON, bad).unwrap_err().code(), "invalid_request");
        }
    }

    #[test]
    fn other_media_types_and_oversized_bodies_are_refused() {
        assert!(parse_body(Some("text/plain"), b"grant_type=x").is_err());
        assert!(parse_body(None, b"grant_type=x").is_err());
        let big = vec![b'a'; MAX_BODY_BYTES + 1];
        assert_eq!(
            parse_body(FORM, &big).unwrap_err().description(),
            "the request body is too large"
        );
        assert!(parse_body(FORM, &[0xff, 0xfe]).is_err());
    }
}
