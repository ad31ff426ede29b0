//! Browser sign-in (RFC 6749 §4.1, RFC 7636, OIDC Core §3.1): what the authorization endpoint
//! and the code exchange share. So far: PKCE and authorization codes; the endpoint, login page,
//! sessions and logout follow (issue #12).

pub mod code;
pub mod page;
pub mod pkce;
pub mod pushed;
pub mod request;
