//! Scope resolution (RFC 6749 §3.3): requested scopes must all be allowed; none requested
//! means the client's defaults.

use crate::error::OAuthError;
use crate::storage::Client;

/// Scopes that describe a user; meaningless (and dropped) for client_credentials.
pub const USER_ONLY_SCOPES: [&str; 3] = ["openid", "profile", "email"];

/// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), space-delimited; duplicates
/// collapse, order is kept.
pub fn parse_scope(text: &str) -> Result<Vec<String>, OAuthError> {
    let mut scopes: Vec<String> = Vec::new();
    for token in text.split(' ').filter(|t| !t.is_empty()) {
        let valid = token
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
        if !valid {
            return Err(OAuthError::InvalidScope("the scope is malformed"));
        }
        if !scopes.iter().any(|s| s == token) {
            scopes.push(token.to_owned());
        }
    }
    Ok(scopes)
}

/// The scopes granted for `requested` (or the defaults), all within the client's allowed set.
pub fn resolve(requested: Option<&str>, client: &Client) -> Result<Vec<String>, OAuthError> {
    match requested {
        Some(text) => {
            let scopes = parse_scope(text)?;
            if scopes.iter().any(|s| !client.allowed_scopes.contains(s)) {
                return Err(OAuthError::InvalidScope(
                    "a requested scope is not allowed for this client",
                ));
            }
            Ok(scopes)
        }
        None => Ok(client
            .default_scopes
            .iter()
            .filter(|s| client.allowed_scopes.contains(s))
            .cloned()
            .collect()),
    }
}

/// Narrowing on refresh (RFC 6749 §6): the requested scope must not exceed the original grant.
pub fn narrow(requested: Option<&str>, granted: &[String]) -> Result<Vec<String>, OAuthError> {
    match requested {
        None => Ok(granted.to_vec()),
        Some(text) => {
            let scopes = parse_scope(text)?;
            if scopes.iter().any(|s| !granted.contains(s)) {
                return Err(OAuthError::InvalidScope(
                    "the requested scope exceeds the original grant",
                ));
            }
            Ok(scopes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::client;

    #[test]
    fn defaults_apply_and_requests_must_be_allowed() {
        let c = client("c", &[]);
        assert_eq!(resolve(None, &c).unwrap(), vec!["read".to_owned()]);
        assert_eq!(
            resolve(Some("write read read"), &c).unwrap(),
            vec!["write", "read"]
        );
        assert_eq!(
            resolve(Some("admin"), &c).unwrap_err().code(),
            "invalid_scope"
        );
        assert_eq!(
            resolve(Some("re\"ad"), &c).unwrap_err().code(),
            "invalid_scope"
        );
    }

    #[test]
    fn refresh_may_only_narrow() {
        let granted = vec!["openid".to_owned(), "read".to_owned()];
        assert_eq!(narrow(Some("read"), &granted).unwrap(), vec!["read"]);
        assert_eq!(narrow(None, &granted).unwrap(), granted);
        assert!(narrow(Some("read write"), &granted).is_err());
    }
}
