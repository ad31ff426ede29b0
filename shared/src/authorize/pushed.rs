//! Pushed authorization requests (RFC 9126): the client posts its authorization parameters to
//! the token function, authenticated, and sends the browser with only `client_id` and the
//! `request_uri` it got back. Nothing in the browser's URL can then be changed or read.

use super::request::{AuthorizeError, RawRequest, Refusal, trusted_reply, validate};
use crate::crypto::{random_secret, sha256_b64};
use crate::storage::{Client, PushedRequest};

/// RFC 9126 §2.2: the `request_uri` a push answers.
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";
/// How long a pushed request may wait for the browser (RFC 9126 §2.2 suggests 5 to 600 s; a
/// client redirects the browser right after pushing).
pub const LIFETIME_SECONDS: i64 = 60;

/// What is kept of a push: the authorization request's parameters (what `validate` and the
/// sign-in read). Anything else, client authentication above all, is not stored.
const AUTHORIZATION_PARAMETERS: [&str; 15] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "dpop_jkt",
    "response_mode",
    "prompt",
    "max_age",
    "id_token_hint",
    "login_hint",
    "request",
];

/// A push that was accepted: the record to store and the `request_uri` to answer.
pub struct Pushed {
    pub record: PushedRequest,
    pub request_uri: String,
}

/// Checks the pushed parameters of an authenticated `client` as the authorization endpoint
/// checks a request (RFC 9126 §2.1), and makes its single-use reference. `proof_jkt`: the
/// thumbprint of the push's DPoP proof, which binds the code when `dpop_jkt` was not sent
/// (RFC 9449 §10.1; the caller refused a `dpop_jkt` of another key).
pub fn push(
    raw: &RawRequest,
    client: &Client,
    proof_jkt: Option<&str>,
    now: i64,
) -> Result<Pushed, AuthorizeError> {
    // RFC 9126 §2.1: a pushed request cannot point at another one.
    if raw.get("request_uri").is_some() {
        return Err(AuthorizeError::InvalidRequest(
            "request_uri cannot be pushed",
        ));
    }
    if raw
        .get("client_id")
        .is_some_and(|id| id != client.client_id)
    {
        return Err(AuthorizeError::InvalidRequest(
            "client_id is not the authenticated client",
        ));
    }
    // The same checks, in the same order, as at the authorization endpoint; with the client
    // authenticated, an untrusted redirect URI is an error to it rather than a page.
    let mut parameters = raw.encoded_only(&AUTHORIZATION_PARAMETERS);
    let mut form = form_urlencoded::Serializer::new(parameters);
    if raw.get("client_id").is_none() {
        form.append_pair("client_id", &client.client_id);
    }
    if let (Some(jkt), None) = (proof_jkt, raw.get("dpop_jkt")) {
        form.append_pair("dpop_jkt", jkt);
    }
    parameters = form.finish();
    let as_sent = RawRequest::from_form(parameters.as_bytes());
    match trusted_reply(&as_sent, Some(client)).and_then(|reply| validate(&as_sent, client, reply))
    {
        Ok(_) => {}
        Err(Refusal::Page(_)) => {
            return Err(AuthorizeError::InvalidRequest(
                "client_id or redirect_uri is missing, repeated or not registered for this client",
            ));
        }
        Err(Refusal::Redirect(_, error)) => return Err(error),
    }
    let reference = random_secret();
    Ok(Pushed {
        record: PushedRequest {
            reference_hash: sha256_b64(reference.as_bytes()),
            client_id: client.client_id.clone(),
            parameters,
            exp: now + LIFETIME_SECONDS,
        },
        request_uri: format!("{REQUEST_URI_PREFIX}{reference}"),
    })
}

/// The stored key of a `request_uri` we issued; `None` for any other value.
pub fn reference_hash(request_uri: &str) -> Option<String> {
    let reference = request_uri.strip_prefix(REQUEST_URI_PREFIX)?;
    (reference.len() == 43).then(|| sha256_b64(reference.as_bytes()))
}

/// The parameters a taken pushed request stands for (RFC 9126 §4; RFC 9101 §6.3: only the
/// pushed parameters count).
pub fn parameters_of(pushed: &PushedRequest) -> RawRequest {
    RawRequest::from_form(pushed.parameters.as_bytes())
}
