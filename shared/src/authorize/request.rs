//! The authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3, OIDC Core §3.1.2.1), checked in
//! the order of SPEC §12: first whether the client and its redirect URI can be trusted at all
//! (if not, an error page: never redirect to an unverified URI, RFC 9700 §4.1.3), then
//! everything else, answered by redirecting the error to the client (RFC 6749 §4.1.2.1).

use super::pkce;
use crate::grants::scope::parse_scope;
use crate::storage::{Client, GrantType};

/// Parameters of an authorization request, in order, repeats kept (a repeated parameter is
/// itself an error, RFC 6749 §3.1).
pub struct RawRequest {
    pairs: Vec<(String, String)>,
}

impl RawRequest {
    /// From a query string or an `application/x-www-form-urlencoded` body (OIDC Core §3.1.2.1
    /// allows both GET and POST).
    pub fn from_form(bytes: &[u8]) -> Self {
        Self {
            pairs: form_urlencoded::parse(bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        }
    }

    /// The value of `name`; empty counts as absent (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    fn repeated(&self, name: &str) -> bool {
        self.pairs.iter().filter(|(k, _)| k == name).count() > 1
    }

    /// All the parameters as a form again, repeats and order kept.
    pub fn encoded(&self) -> String {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.extend_pairs(&self.pairs);
        form.finish()
    }

    /// The parameters named in `kept` as a form again, repeats and order kept.
    pub fn encoded_only(&self, kept: &[&str]) -> String {
        let mut form = form_urlencoded::Serializer::new(String::new());
        for (name, value) in &self.pairs {
            if kept.contains(&name.as_str()) {
                form.append_pair(name, value);
            }
        }
        form.finish()
    }

    pub fn any_repeated(&self) -> bool {
        self.pairs
            .iter()
            .enumerate()
            .any(|(i, (k, _))| self.pairs[..i].iter().any(|(seen, _)| seen == k))
    }
}

/// How the authorization response travels (OAuth 2.0 Multiple Response Type Encoding §2.1,
/// Form Post Response Mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseMode {
    Query,
    FormPost,
}

/// Where a response (code or error) goes once the redirect URI is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyTo {
    pub redirect_uri: String,
    /// Echoed exactly (RFC 6749 §4.1.2).
    pub state: Option<String>,
    pub mode: ResponseMode,
}

/// OIDC Core §3.1.2.1 `prompt`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prompt {
    pub none: bool,
    pub login: bool,
    pub consent: bool,
}

/// A request that passed every check that needs no session.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    pub client: Client,
    pub reply: ReplyTo,
    pub scopes: Vec<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    /// RFC 9449 §10: the thumbprint of the DPoP key the code may be redeemed with.
    pub dpop_jkt: Option<String>,
    pub prompt: Prompt,
    /// Seconds; `Some(0)` asks for a fresh login (OIDC Core §3.1.2.1).
    pub max_age: Option<i64>,
    pub id_token_hint: Option<String>,
    pub login_hint: Option<String>,
}

/// RFC 6749 §4.1.2.1 and OIDC Core §3.1.2.6 error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizeError {
    InvalidRequest(&'static str),
    UnauthorizedClient,
    AccessDenied,
    UnsupportedResponseType,
    InvalidScope,
    LoginRequired,
    ConsentRequired,
    RequestNotSupported,
    RequestUriNotSupported,
    TemporarilyUnavailable,
}

impl AuthorizeError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::AccessDenied => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::LoginRequired => "login_required",
            Self::ConsentRequired => "consent_required",
            Self::RequestNotSupported => "request_not_supported",
            Self::RequestUriNotSupported => "request_uri_not_supported",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }

    pub fn description(&self) -> &'static str {
        match self {
            Self::InvalidRequest(why) => why,
            Self::UnauthorizedClient => "the client may not use the authorization code grant",
            Self::AccessDenied => "the user denied the request",
            Self::UnsupportedResponseType => "only response_type=code is supported",
            Self::InvalidScope => "a requested scope is not allowed for this client",
            Self::LoginRequired => "the user must sign in",
            Self::ConsentRequired => "the user must consent",
            Self::RequestNotSupported => "request objects are not supported",
            Self::RequestUriNotSupported => "request_uri is not supported",
            Self::TemporarilyUnavailable => "the service is temporarily unavailable",
        }
    }
}

/// Why a request was refused, and how the refusal is delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The client or its redirect URI cannot be trusted: an error page, status 400.
    Page(&'static str),
    /// Redirected to the client (with `error`, `state` and `iss`, RFC 9207).
    Redirect(ReplyTo, AuthorizeError),
}

/// RFC 9700 §4.1.3: the redirect URI matches a registered one exactly, except that a loopback
/// IP literal redirect may use any port (RFC 8252 §7.3: native apps get an ephemeral port).
pub fn redirect_registered(client: &Client, presented: &str) -> bool {
    client
        .redirect_uris
        .iter()
        .any(|registered| registered == presented || loopback_equal(registered, presented))
}

fn loopback_equal(registered: &str, presented: &str) -> bool {
    let without_port = |uri: &str| -> Option<(String, String)> {
        let rest = uri.strip_prefix("http://")?;
        let (authority, path) = rest
            .find(['/', '?'])
            .map_or((rest, ""), |i| (&rest[..i], &rest[i..]));
        let host = match authority.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => authority,
        };
        matches!(host, "127.0.0.1" | "[::1]").then(|| (host.to_owned(), path.to_owned()))
    };
    match (without_port(registered), without_port(presented)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// Step 1: the client and the redirect URI. `client` is the record `client_id` names.
pub fn trusted_reply(raw: &RawRequest, client: Option<&Client>) -> Result<ReplyTo, Refusal> {
    let untrusted = Refusal::Page(super::page::messages::INVALID_CLIENT_OR_REDIRECT_URI);
    if raw.repeated("client_id") || raw.repeated("redirect_uri") {
        return Err(untrusted);
    }
    let (Some(client), Some(redirect_uri)) = (client, raw.get("redirect_uri")) else {
        return Err(untrusted);
    };
    if !client.enabled || !redirect_registered(client, redirect_uri) {
        return Err(untrusted);
    }
    // From here on errors go back to the client; in the mode it asked for, when that mode
    // is one we speak (an unknown one is itself an error, answered by query).
    let mode = match raw.get("response_mode") {
        Some("form_post") => ResponseMode::FormPost,
        _ => ResponseMode::Query,
    };
    Ok(ReplyTo {
        redirect_uri: redirect_uri.to_owned(),
        state: raw.get("state").map(str::to_owned),
        mode,
    })
}

/// Steps 2 and on: everything that needs no session, in SPEC §12's order.
pub fn validate(
    raw: &RawRequest,
    client: &Client,
    reply: ReplyTo,
) -> Result<AuthorizationRequest, Refusal> {
    let refuse = |error| Err(Refusal::Redirect(reply.clone(), error));
    if raw.get("response_type").is_none() {
        return refuse(AuthorizeError::InvalidRequest("response_type is required"));
    }
    if raw.any_repeated() {
        return refuse(AuthorizeError::InvalidRequest(
            "a parameter was sent more than once",
        ));
    }
    if raw.get("response_type") != Some("code") {
        return refuse(AuthorizeError::UnsupportedResponseType);
    }
    if !client.allows_grant(GrantType::AuthorizationCode) {
        return refuse(AuthorizeError::UnauthorizedClient);
    }
    match raw.get("response_mode") {
        None | Some("query") | Some("form_post") => {}
        Some(_) => {
            return refuse(AuthorizeError::InvalidRequest(
                "response_mode must be query or form_post",
            ));
        }
    }
    let scopes = match raw.get("scope") {
        Some(text) => match parse_scope(text) {
            Ok(scopes) if scopes.iter().all(|s| client.allowed_scopes.contains(s)) => scopes,
            _ => return refuse(AuthorizeError::InvalidScope),
        },
        None => client
            .default_scopes
            .iter()
            .filter(|s| client.allowed_scopes.contains(s))
            .cloned()
            .collect(),
    };
    // RFC 7636 §4.3/§4.4.1, OAuth 2.1: S256 only (an absent method means `plain`).
    let code_challenge = match (raw.get("code_challenge"), raw.get("code_challenge_method")) {
        (Some(challenge), Some(pkce::S256)) if pkce::is_challenge(challenge) => {
            Some(challenge.to_owned())
        }
        (Some(_), _) => {
            return refuse(AuthorizeError::InvalidRequest(
                "code_challenge must be an S256 challenge with code_challenge_method=S256",
            ));
        }
        (None, Some(_)) => {
            return refuse(AuthorizeError::InvalidRequest(
                "code_challenge_method without code_challenge",
            ));
        }
        (None, None) if client.pkce_required || client.public => {
            return refuse(AuthorizeError::InvalidRequest(
                "PKCE is required: send code_challenge and code_challenge_method=S256",
            ));
        }
        (None, None) => None,
    };
    // RFC 9449 §10: the code is bound to this key; a thumbprint is a base64url SHA-256.
    let dpop_jkt = match raw.get("dpop_jkt") {
        Some(jkt) if is_thumbprint(jkt) => Some(jkt.to_owned()),
        Some(_) => {
            return refuse(AuthorizeError::InvalidRequest(
                "dpop_jkt must be the base64url SHA-256 JWK thumbprint of the DPoP key",
            ));
        }
        None => None,
    };
    let mut prompt = Prompt::default();
    for value in raw.get("prompt").unwrap_or_default().split(' ') {
        match value {
            "" => {}
            "none" => prompt.none = true,
            "login" => prompt.login = true,
            "consent" => prompt.consent = true,
            // Nothing to select among: one account per browser session.
            "select_account" => {}
            _ => return refuse(AuthorizeError::InvalidRequest("unknown prompt value")),
        }
    }
    // OIDC Core §3.1.2.1: none with any other value is an error.
    if prompt.none && (prompt.login || prompt.consent) {
        return refuse(AuthorizeError::InvalidRequest(
            "prompt=none cannot be combined with other values",
        ));
    }
    let max_age = match raw.get("max_age") {
        None => None,
        Some(text) => match text.parse::<i64>() {
            Ok(seconds) if seconds >= 0 => Some(seconds),
            _ => {
                return refuse(AuthorizeError::InvalidRequest(
                    "max_age must be a non-negative integer",
                ));
            }
        },
    };
    // OIDC Core §6: request objects are not offered (discovery says so).
    if raw.get("request").is_some() {
        return refuse(AuthorizeError::RequestNotSupported);
    }
    if raw.get("request_uri").is_some() {
        return refuse(AuthorizeError::RequestUriNotSupported);
    }
    Ok(AuthorizationRequest {
        client: client.clone(),
        reply,
        scopes,
        nonce: raw.get("nonce").map(str::to_owned),
        code_challenge,
        dpop_jkt,
        prompt,
        max_age,
        id_token_hint: raw.get("id_token_hint").map(str::to_owned),
        login_hint: raw.get("login_hint").map(str::to_owned),
    })
}

/// An RFC 7638 SHA-256 thumbprint as base64url: 43 characters of its alphabet.
pub fn is_thumbprint(text: &str) -> bool {
    text.len() == 43
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The redirect URI with the response's parameters added to its query (RFC 6749 §4.1.2,
/// keeping any query the registered URI has, §3.1.2).
pub fn redirect_with(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        query.append_pair(name, value);
    }
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    format!("{redirect_uri}{separator}{}", query.finish())
}

/// The error's parameters: `error`, `error_description`, `state` when sent, `iss` (RFC 9207).
pub fn error_params<'a>(
    reply: &'a ReplyTo,
    error: &AuthorizeError,
    issuer: &'a str,
) -> Vec<(&'static str, &'a str)> {
    let mut params = vec![
        ("error", error.code()),
        ("error_description", error.description()),
    ];
    if let Some(state) = &reply.state {
        params.push(("state", state));
    }
    params.push(("iss", issuer));
    params
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{REDIRECT_URI, client};

    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn web() -> Client {
        let mut web = client("web", &[GrantType::AuthorizationCode]);
        web.redirect_uris.push("http://127.0.0.1:8400/cb".into());
        web
    }

    fn query(extra: &str) -> RawRequest {
        let base = format!(
            "client_id=web&redirect_uri={}&state=s%201&code_challenge={CHALLENGE}&code_challenge_method=S256",
            form_urlencoded::byte_serialize(REDIRECT_URI.as_bytes()).collect::<String>()
        );
        RawRequest::from_form(format!("{base}&{extra}").as_bytes())
    }

    fn check(raw: &RawRequest, client: &Client) -> Result<AuthorizationRequest, Refusal> {
        let reply = trusted_reply(raw, Some(client))?;
        validate(raw, client, reply)
    }

    fn error_of(result: Result<AuthorizationRequest, Refusal>) -> &'static str {
        match result {
            Err(Refusal::Redirect(reply, error)) => {
                assert_eq!(reply.state.as_deref(), Some("s 1"), "state echoed exactly");
                error.code()
            }
            Err(Refusal::Page(_)) => "page",
            Ok(_) => "ok",
        }
    }

    #[test]
    fn a_good_request_passes_with_its_parameters() {
        let request = check(
            &query("response_type=code&scope=openid%20email&nonce=n&prompt=login&max_age=0"),
            &web(),
        )
        .unwrap();
        assert_eq!(request.scopes, ["openid", "email"]);
        assert_eq!(request.code_challenge.as_deref(), Some(CHALLENGE));
        assert_eq!(request.max_age, Some(0));
        assert!(request.prompt.login && !request.prompt.none);
        assert_eq!(request.reply.mode, ResponseMode::Query);
    }

    #[test]
    fn dpop_jkt_is_kept_when_it_is_a_thumbprint() {
        let jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
        let request = check(
            &query(&format!("response_type=code&dpop_jkt={jkt}")),
            &web(),
        )
        .unwrap();
        assert_eq!(request.dpop_jkt.as_deref(), Some(jkt));
        for bad in [
            "abc",
            &format!("{jkt}A"),
            "0ZcOCORZNYy+DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
        ] {
            let raw = query(&format!(
                "response_type=code&dpop_jkt={}",
                form_urlencoded::byte_serialize(bad.as_bytes()).collect::<String>()
            ));
            assert_eq!(error_of(check(&raw, &web())), "invalid_request", "{bad:?}");
        }
    }

    #[test]
    fn an_untrusted_client_or_redirect_gets_a_page_never_a_redirect() {
        let raw = query("response_type=code");
        assert!(matches!(trusted_reply(&raw, None), Err(Refusal::Page(_))));
        let mut other = web();
        other.redirect_uris = vec!["https://elsewhere.example/cb".into()];
        assert!(matches!(
            trusted_reply(&raw, Some(&other)),
            Err(Refusal::Page(_))
        ));
        let missing = RawRequest::from_form(b"client_id=web&response_type=code");
        assert!(matches!(
            trusted_reply(&missing, Some(&web())),
            Err(Refusal::Page(_))
        ));
        let twice = RawRequest::from_form(
            format!(
                "client_id=web&client_id=web&redirect_uri={}",
                form_urlencoded::byte_serialize(REDIRECT_URI.as_bytes()).collect::<String>()
            )
            .as_bytes(),
        );
        assert!(matches!(
            trusted_reply(&twice, Some(&web())),
            Err(Refusal::Page(_))
        ));
        let mut disabled = web();
        disabled.enabled = false;
        assert!(matches!(
            trusted_reply(&raw, Some(&disabled)),
            Err(Refusal::Page(_))
        ));
    }

    #[test]
    fn loopback_redirects_may_differ_in_port_only() {
        let client = web();
        assert!(redirect_registered(&client, "http://127.0.0.1:51234/cb"));
        assert!(redirect_registered(&client, "http://127.0.0.1/cb"));
        assert!(!redirect_registered(
            &client,
            "http://127.0.0.1:51234/other"
        ));
        assert!(!redirect_registered(&client, "http://localhost:8400/cb"));
        assert!(!redirect_registered(&client, "https://app.example.com/cb/"));
        assert!(!redirect_registered(
            &client,
            "https://app.example.com:444/cb"
        ));
    }

    #[test]
    fn every_later_error_redirects_in_the_spec_order() {
        let client = web();
        let cases = [
            ("", "invalid_request"),
            ("response_type=code&response_type=code", "invalid_request"),
            ("response_type=code&state=again", "invalid_request"),
            ("response_type=token", "unsupported_response_type"),
            (
                "response_type=code&response_mode=fragment",
                "invalid_request",
            ),
            ("response_type=code&scope=admin", "invalid_scope"),
            ("response_type=code&prompt=none%20login", "invalid_request"),
            ("response_type=code&prompt=bogus", "invalid_request"),
            ("response_type=code&max_age=-1", "invalid_request"),
            ("response_type=code&request=eyJ", "request_not_supported"),
            (
                "response_type=code&request_uri=urn:x",
                "request_uri_not_supported",
            ),
        ];
        for (extra, expected) in cases {
            let got = match check(&query(extra), &client) {
                // `state=again` repeats state: the echoed one is the first.
                Err(Refusal::Redirect(_, error)) => error.code(),
                other => error_of(other),
            };
            assert_eq!(got, expected, "{extra}");
        }
        let mut no_grant = web();
        no_grant.grants = vec![GrantType::ClientCredentials];
        assert_eq!(
            error_of(check(&query("response_type=code"), &no_grant)),
            "unauthorized_client"
        );
    }

    #[test]
    fn pkce_is_s256_and_required_unless_a_confidential_client_opted_out() {
        let client = web();
        let without = RawRequest::from_form(
            format!(
                "response_type=code&client_id=web&state=s%201&redirect_uri={}",
                form_urlencoded::byte_serialize(REDIRECT_URI.as_bytes()).collect::<String>()
            )
            .as_bytes(),
        );
        assert_eq!(error_of(check(&without, &client)), "invalid_request");
        let mut optional = web();
        optional.pkce_required = false;
        assert!(check(&without, &optional).unwrap().code_challenge.is_none());
        let plain = RawRequest::from_form(
            format!(
                "response_type=code&client_id=web&state=s%201&redirect_uri={}&code_challenge={CHALLENGE}",
                form_urlencoded::byte_serialize(REDIRECT_URI.as_bytes()).collect::<String>()
            )
            .as_bytes(),
        );
        assert_eq!(
            error_of(check(&plain, &client)),
            "invalid_request",
            "absent = plain"
        );
        assert_eq!(error_of(check(&plain, &optional)), "invalid_request");
    }

    #[test]
    fn errors_keep_the_registered_query_and_carry_state_and_iss() {
        let reply = ReplyTo {
            redirect_uri: "https://app.example.com/cb?tenant=a".into(),
            state: Some("x y".into()),
            mode: ResponseMode::Query,
        };
        let params = error_params(&reply, &AuthorizeError::LoginRequired, "https://id/oauth");
        let url = redirect_with(&reply.redirect_uri, &params);
        assert!(url.starts_with("https://app.example.com/cb?tenant=a&error=login_required&"));
        assert!(url.contains("state=x+y") && url.contains("iss=https%3A%2F%2Fid%2Foauth"));
    }
}
