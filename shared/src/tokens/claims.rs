//! Claim names and the OIDC Core §5.4 mapping from scopes to standard claims.

use std::collections::BTreeMap;

/// Names a custom claim may never use: they are set by the service (RFC 7519 §4.1, RFC 9068
/// §2.2, OIDC Core §2) and a custom value would spoof them.
/// `username` is RFC 7662's member name, `acr`/`amr` OIDC Core §2, `cnf` RFC 7800, `act`/
/// `may_act` RFC 8693, the hashes OIDC Core §3.1.3.6 and §3.3.2.11.
pub const REGISTERED: [&str; 23] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "client_id",
    "scope",
    "auth_time",
    "azp",
    "nonce",
    "sid",
    "typ",
    "username",
    "acr",
    "amr",
    "cnf",
    "act",
    "may_act",
    "at_hash",
    "c_hash",
    "s_hash",
];

/// OIDC Core §5.4: claims each scope releases to the id_token and userinfo.
const PROFILE: [&str; 14] = [
    "name",
    "family_name",
    "given_name",
    "middle_name",
    "nickname",
    "preferred_username",
    "profile",
    "picture",
    "website",
    "gender",
    "birthdate",
    "zoneinfo",
    "locale",
    "updated_at",
];
const EMAIL: [&str; 2] = ["email", "email_verified"];
const ADDRESS: [&str; 1] = ["address"];
const PHONE: [&str; 2] = ["phone_number", "phone_number_verified"];

/// Scopes this service understands beyond the clients' own.
pub const OIDC_SCOPES: [&str; 6] = [
    "openid",
    "profile",
    "email",
    "address",
    "phone",
    "offline_access",
];

pub fn is_registered(name: &str) -> bool {
    REGISTERED.contains(&name)
}

/// A standard OIDC claim: released only through id_token and userinfo, by scope.
pub fn is_standard(name: &str) -> bool {
    PROFILE.contains(&name)
        || EMAIL.contains(&name)
        || ADDRESS.contains(&name)
        || PHONE.contains(&name)
}

fn released_by(scope: &str) -> &'static [&'static str] {
    match scope {
        "profile" => &PROFILE,
        "email" => &EMAIL,
        "address" => &ADDRESS,
        "phone" => &PHONE,
        _ => &[],
    }
}

/// Stored claim text to JSON: `*_verified` and `updated_at` have non-string types in OIDC, and
/// `address` is a JSON object (OIDC Core §5.1.1): stored JSON text of an object is that object,
/// any other text its `formatted` member.
fn typed(name: &str, value: &str) -> serde_json::Value {
    if name == "address" {
        return match serde_json::from_str::<serde_json::Value>(value) {
            Ok(object @ serde_json::Value::Object(_)) => object,
            _ => serde_json::json!({ "formatted": value }),
        };
    }
    if name.ends_with("_verified")
        && let Ok(b) = value.parse::<bool>()
    {
        return b.into();
    }
    if name == "updated_at"
        && let Ok(n) = value.parse::<i64>()
    {
        return n.into();
    }
    value.into()
}

/// The standard claims the granted scopes release, with `preferred_username` from the username.
pub fn standard_claims(
    scopes: &[String],
    username: &str,
    claims: &BTreeMap<String, String>,
) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    for scope in scopes {
        for name in released_by(scope) {
            if let Some(value) = claims.get(*name) {
                out.insert((*name).to_owned(), typed(name, value));
            }
        }
    }
    if scopes.iter().any(|s| s == "profile") {
        out.entry("preferred_username".to_owned())
            .or_insert_with(|| username.into());
    }
    out
}

/// Custom (non-standard, non-registered) claims: these go into access tokens.
pub fn custom_claims(claims: &BTreeMap<String, String>) -> BTreeMap<String, serde_json::Value> {
    claims
        .iter()
        .filter(|(k, _)| !is_registered(k) && !is_standard(k))
        .map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> BTreeMap<String, String> {
        [
            ("email", "a@x.org"),
            ("email_verified", "true"),
            ("name", "Alice"),
            ("dept", "ops"),
            ("sub", "spoof"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn scopes_release_only_their_claims() {
        let email_only = standard_claims(&["openid".into(), "email".into()], "alice", &claims());
        assert_eq!(email_only.get("email"), Some(&"a@x.org".into()));
        assert_eq!(email_only.get("email_verified"), Some(&true.into()));
        assert!(!email_only.contains_key("name"));
        assert!(!email_only.contains_key("preferred_username"));
        let profile = standard_claims(&["profile".into()], "alice", &claims());
        assert_eq!(profile.get("preferred_username"), Some(&"alice".into()));
        assert_eq!(profile.get("name"), Some(&"Alice".into()));
    }

    #[test]
    fn address_is_a_json_object() {
        let scopes = ["address".to_owned()];
        let structured = BTreeMap::from([(
            "address".to_owned(),
            r#"{"street_address":"1 Main St","locality":"Springfield"}"#.to_owned(),
        )]);
        let released = standard_claims(&scopes, "alice", &structured);
        assert_eq!(released["address"]["locality"], "Springfield");
        let plain = BTreeMap::from([("address".to_owned(), "1 Main St".to_owned())]);
        let released = standard_claims(&scopes, "alice", &plain);
        assert_eq!(
            released["address"],
            serde_json::json!({"formatted": "1 Main St"})
        );
    }

    #[test]
    fn custom_claims_exclude_standard_and_registered_names() {
        let custom = custom_claims(&claims());
        assert_eq!(custom.len(), 1);
        assert_eq!(custom.get("dept"), Some(&"ops".into()));
    }
}
