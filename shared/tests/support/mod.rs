//! An in-process token service on the in-memory store: real parsing, grants, keys and signing,
//! no I/O. The fixtures are `shared::testing`'s, shared with the benches and fuzz targets.

#![allow(dead_code)]

pub use shared::testing::*;

use shared::endpoints::authorize::LOGIN_PATH;
use shared::endpoints::token::TokenService;
use shared::endpoints::tokeninfo::TokenInfoService;
use shared::http::{ApiRequest, ApiResponse};
use shared::keys::Alg;
use shared::storage::memory::MemoryStore;

pub fn all_keys() -> StaticKeys {
    key_set(&Alg::ALL)
}

pub fn token_service(alg: Alg, password_hash: &str) -> TokenService<MemoryStore, StaticKeys> {
    TokenService::new(config(alg, &[]), store(password_hash), all_keys())
}

/// The tokeninfo function over the same store records as a token service's.
pub fn tokeninfo_service(
    alg: Alg,
    store: MemoryStore,
) -> TokenInfoService<MemoryStore, StaticKeys> {
    TokenInfoService::new(config(alg, &[]), store, all_keys())
}

/// The hidden value `name` of the page's form.
pub fn hidden(page: &ApiResponse, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .body
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {}", page.body))
        + marker.len();
    let end = page.body[start..].find('"').unwrap() + start;
    page.body[start..end].to_owned()
}

pub fn login_form(page: &ApiResponse, password: &str, site: &str) -> ApiRequest {
    login_form_as(page, USERNAME, password, site)
}

pub fn login_form_as(page: &ApiResponse, username: &str, password: &str, site: &str) -> ApiRequest {
    let body = format!(
        "transaction={}&csrf_token={}&username={username}&password={}",
        hidden(page, "transaction"),
        hidden(page, "csrf_token"),
        form_urlencoded::byte_serialize(password.as_bytes()).collect::<String>()
    );
    post(
        LOGIN_PATH,
        "application/x-www-form-urlencoded",
        &body,
        &[("sec-fetch-site", site)],
    )
}

/// The query parameters of a 303's Location, which must go to the registered redirect URI.
pub fn redirected(response: &ApiResponse) -> std::collections::HashMap<String, String> {
    assert_eq!(response.status, 303, "{}", response.body);
    let location = response.header_value("location").unwrap();
    let query = location
        .strip_prefix(&format!("{REDIRECT_URI}?"))
        .unwrap_or_else(|| panic!("redirected elsewhere: {location}"));
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}
