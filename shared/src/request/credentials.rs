//! Which credentials a request presents, decided in the order of SPEC §4 (RFC 6749 §2.3).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::Params;
use crate::error::OAuthError;
use crate::grants::client_assertion::{ASSERTION_TYPE, unverified_subject};

/// A client's id and secret as presented; `via_basic` decides the 401's challenge.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    pub client_id: String,
    /// Empty when `secretless`.
    pub client_secret: String,
    pub via_basic: bool,
    /// Only a `client_id` in the body: auth method `none`, for public clients (SPEC §4 rule 4).
    pub secretless: bool,
    /// A `private_key_jwt` assertion (RFC 7523 §2.2): the client authenticates with it alone.
    pub assertion: Option<String>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("via_basic", &self.via_basic)
            .field("secretless", &self.secretless)
            .field("assertion", &self.assertion.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// RFC 7617 user-id and password from a Basic header (no percent-decoding).
#[derive(Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    Client(ClientCredentials),
    /// EmpowerID password shape: the client authenticates in the body (client_secret_post) and
    /// the Basic header carries the resource owner.
    ClientAndBasicUser {
        client: ClientCredentials,
        user: BasicCredentials,
    },
}

impl Presented {
    pub fn client(&self) -> &ClientCredentials {
        match self {
            Self::Client(c) | Self::ClientAndBasicUser { client: c, .. } => c,
        }
    }
}

/// Decodes `Basic <base64(user:password)>` per RFC 7617: base64, UTF-8, split at the first `:`.
/// `None` when the header is not Basic at all; `Some(Err)` when it is Basic but malformed.
pub fn parse_basic(authorization: &str) -> Option<Result<BasicCredentials, ()>> {
    let (scheme, rest) = authorization
        .trim()
        .split_once(' ')
        .unwrap_or((authorization.trim(), ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(rest.trim()).map_err(|_| ());
    let text = decoded.and_then(|bytes| String::from_utf8(bytes).map_err(|_| ()));
    Some(text.and_then(|text| {
        let (user, password) = text.split_once(':').ok_or(())?;
        Ok(BasicCredentials {
            user: user.to_owned(),
            password: password.to_owned(),
        })
    }))
}

/// `application/x-www-form-urlencoded` decoding of one Basic half (RFC 6749 §2.3.1): `+` is a
/// space, `%XX` an octet; malformed escapes or non-UTF-8 results are rejected.
fn form_urldecode(text: &str) -> Result<String, ()> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(())?;
                let hex = std::str::from_utf8(hex).map_err(|_| ())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| ())?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ())
}

/// Applies the order of SPEC §4 to the Authorization header and the body.
pub fn presented_credentials(
    authorization: Option<&str>,
    params: &Params,
) -> Result<Presented, OAuthError> {
    let body_id = params.get("client_id");
    let body_secret = params.get("client_secret");
    let basic = authorization.map(parse_basic);

    // private_key_jwt (RFC 7521 §4.2, RFC 7523 §2.2): the assertion names the client.
    let assertion_type = params.get("client_assertion_type");
    let assertion = params.get("client_assertion");
    if assertion_type.is_some() || assertion.is_some() {
        // RFC 6749 §2.3: a client MUST NOT use more than one authentication method.
        if basic.is_some() || body_secret.is_some() {
            return Err(OAuthError::InvalidRequest(
                "client credentials were sent in more than one way",
            ));
        }
        match assertion_type {
            Some(ASSERTION_TYPE) => {}
            Some(_) => {
                return Err(OAuthError::InvalidRequest(
                    "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ));
            }
            None => {
                return Err(OAuthError::InvalidRequest(
                    "client_assertion_type is required with client_assertion",
                ));
            }
        }
        let assertion = assertion.ok_or(OAuthError::InvalidRequest(
            "client_assertion is required with client_assertion_type",
        ))?;
        let unauthenticated = OAuthError::InvalidClient {
            basic_challenge: false,
        };
        let subject = unverified_subject(assertion);
        // RFC 7521 §4.2: a client_id, when sent, identifies the assertion's subject.
        let client_id = match (body_id, subject) {
            (Some(id), Some(subject)) if id != subject => return Err(unauthenticated),
            (_, None) => return Err(unauthenticated),
            (_, Some(subject)) => subject,
        };
        return Ok(Presented::Client(ClientCredentials {
            client_id,
            client_secret: String::new(),
            via_basic: false,
            secretless: false,
            assertion: Some(assertion.to_owned()),
        }));
    }

    // 1. EmpowerID: Basic + password grant + client in the body + no user in the body.
    let empowerid_shape = params.get("grant_type") == Some("password")
        && body_id.is_some()
        && body_secret.is_some()
        && params.get("username").is_none()
        && params.get("password").is_none();
    if let (Some(Some(user)), true) = (&basic, empowerid_shape) {
        let user = user
            .clone()
            .map_err(|_| OAuthError::InvalidRequest("the Basic credentials are malformed"))?;
        let client = ClientCredentials {
            client_id: body_id.unwrap_or_default().to_owned(),
            client_secret: body_secret.unwrap_or_default().to_owned(),
            via_basic: false,
            secretless: false,
            assertion: None,
        };
        return Ok(Presented::ClientAndBasicUser { client, user });
    }

    match basic {
        // 2. client_secret_basic (RFC 6749 §2.3.1).
        Some(Some(decoded)) => {
            let unauthenticated = OAuthError::InvalidClient {
                basic_challenge: true,
            };
            let raw = decoded.map_err(|_| unauthenticated)?;
            let client_id = form_urldecode(&raw.user).map_err(|_| unauthenticated)?;
            let client_secret = form_urldecode(&raw.password).map_err(|_| unauthenticated)?;
            // RFC 6749 §2.3: a client MUST NOT use more than one authentication method.
            if body_secret.is_some() {
                return Err(OAuthError::InvalidRequest(
                    "client credentials were sent in more than one way",
                ));
            }
            if body_id.is_some_and(|id| id != client_id) {
                return Err(OAuthError::InvalidRequest(
                    "client_id in the body differs from the Basic credentials",
                ));
            }
            if client_id.is_empty() {
                return Err(unauthenticated);
            }
            Ok(Presented::Client(ClientCredentials {
                client_id,
                client_secret,
                via_basic: true,
                secretless: false,
                assertion: None,
            }))
        }
        // 4. Another scheme (Bearer, Digest…) is not client authentication.
        Some(None) => Err(OAuthError::InvalidClient {
            basic_challenge: true,
        }),
        // 3. client_secret_post.
        None => match (body_id, body_secret) {
            (Some(id), Some(secret)) => Ok(Presented::Client(ClientCredentials {
                client_id: id.to_owned(),
                client_secret: secret.to_owned(),
                via_basic: false,
                secretless: false,
                assertion: None,
            })),
            // 4. Only a client_id: auth method `none`, which only a public client may use.
            (Some(id), None) => Ok(Presented::Client(ClientCredentials {
                client_id: id.to_owned(),
                client_secret: String::new(),
                via_basic: false,
                secretless: true,
                assertion: None,
            })),
            // 5. No client authentication at all.
            _ => Err(OAuthError::InvalidClient {
                basic_challenge: true,
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::parse_body;

    fn form(body: &str) -> Params {
        parse_body(Some("application/x-www-form-urlencoded"), body.as_bytes()).unwrap()
    }

    fn basic(user_pass: &str) -> String {
        format!("Basic {}", STANDARD.encode(user_pass))
    }

    #[test]
    fn basic_halves_are_form_urldecoded() {
        let p = form("grant_type=client_credentials");
        let got = presented_credentials(Some(&basic("my%20id:s%3Acr+t")), &p).unwrap();
        assert_eq!(got.client().client_id, "my id");
        assert_eq!(got.client().client_secret, "s:cr t");
        assert!(got.client().via_basic);
    }

    #[test]
    fn secret_may_contain_colons_split_is_at_the_first() {
        let got = presented_credentials(Some(&basic("id:a:b")), &form("grant_type=x")).unwrap();
        assert_eq!(got.client().client_secret, "a:b");
    }

    #[test]
    fn empowerid_shape_puts_the_user_in_basic_without_percent_decoding() {
        let p = form("grant_type=password&client_id=c&client_secret=s&redirect_uri=");
        let got = presented_credentials(Some(&basic("alice@x.org:p%41ss:word")), &p).unwrap();
        match got {
            Presented::ClientAndBasicUser { client, user } => {
                assert_eq!(client.client_id, "c");
                assert!(!client.via_basic);
                assert_eq!(user.user, "alice@x.org");
                assert_eq!(user.password, "p%41ss:word");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn password_grant_with_user_in_body_uses_basic_for_the_client() {
        let p = form("grant_type=password&username=u&password=p");
        let got = presented_credentials(Some(&basic("cid:sec")), &p).unwrap();
        assert_eq!(
            got,
            Presented::Client(ClientCredentials {
                client_id: "cid".into(),
                client_secret: "sec".into(),
                via_basic: true,
                secretless: false,
                assertion: None,
            })
        );
    }

    #[test]
    fn two_credential_sources_are_invalid_request() {
        let p = form("grant_type=client_credentials&client_secret=s");
        assert_eq!(
            presented_credentials(Some(&basic("c:s")), &p)
                .unwrap_err()
                .code(),
            "invalid_request"
        );
        let p = form("grant_type=client_credentials&client_id=other");
        assert_eq!(
            presented_credentials(Some(&basic("c:s")), &p)
                .unwrap_err()
                .code(),
            "invalid_request"
        );
        let p = form("grant_type=client_credentials&client_id=c");
        assert!(
            presented_credentials(Some(&basic("c:s")), &p).is_ok(),
            "an equal body client_id is allowed"
        );
    }

    #[test]
    fn missing_or_malformed_client_authentication_is_invalid_client() {
        let p = form("grant_type=client_credentials");
        for header in [
            None,
            Some("Bearer abc"),
            Some("Basic !!!"),
            Some("Basic Y29sb25sZXNz"),
            Some("Basic JUc6eA=="),
        ] {
            let err = presented_credentials(header, &p).unwrap_err();
            assert_eq!(
                err,
                OAuthError::InvalidClient {
                    basic_challenge: true
                },
                "{header:?}"
            );
        }
        // A client_id alone is auth method `none`: whether that is enough is the client's
        // registration's business (only public clients), not the parser's.
        let p = form("grant_type=authorization_code&client_id=c");
        let got = presented_credentials(None, &p).unwrap();
        assert!(got.client().secretless && got.client().client_id == "c");
    }

    #[test]
    fn post_credentials_are_taken_verbatim() {
        let p = form("grant_type=client_credentials&client_id=c&client_secret=s%2B");
        let got = presented_credentials(None, &p).unwrap();
        assert_eq!(got.client().client_secret, "s+");
        assert!(!got.client().via_basic);
    }
}
