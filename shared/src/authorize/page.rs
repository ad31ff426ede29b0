//! The browser pages of sign-in and logout: login, consent, error, the OAuth 2.0 Form Post
//! Response Mode page, logout confirmation and "signed out".
//!
//! The templates (`shared/templates/authorize/`) are compiled into the binary by askama: nothing
//! is parsed at cold start, and every `{{ value }}` is HTML-escaped (attributes are always
//! quoted). No page needs JavaScript; the form_post page carries one fixed script that submits
//! its form, allowed by its CSP hash, and a `<noscript>` Continue button.
//!
//! Every page has the same security headers ([`html`]): a CSP with `default-src 'none'`, the
//! page's one inline `<style>` (or script) allowed by its SHA-256 hash, `img-src https:` for an
//! operator logo, `frame-ancestors 'none'` and `base-uri 'none'`, but no `form-action` (Chrome and
//! Safari apply it to the redirect after the login POST, w3c/webappsec-csp#8);
//! `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer`, `Cache-Control: no-store`,
//! `X-Content-Type-Options: nosniff`; no CORS headers. No `Cross-Origin-Opener-Policy` either:
//! popup sign-in libraries keep a handle on the window they opened.

use std::sync::LazyLock;

use askama::Template;
use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::http::ApiResponse;

/// The one message of a failed login: unknown user, wrong password, disabled and locked accounts
/// are indistinguishable (SPEC §12).
pub const LOGIN_FAILED: &str = "The username or password is incorrect.";

/// [`error_page`] messages for the authorization endpoint's own errors. None of them repeats
/// anything from the request.
pub mod messages {
    /// Unknown `client_id`, or a `redirect_uri` missing or not registered (never redirected).
    pub const INVALID_CLIENT_OR_REDIRECT_URI: &str = "This sign-in link is not valid: the application is unknown or its redirect address is not registered.";
    /// An unknown, expired or already used login transaction.
    pub const TRANSACTION_EXPIRED: &str = "This sign-in has expired or was already completed. Go back to the application and sign in again.";
    /// A login or consent POST that failed the CSRF checks.
    pub const REQUEST_REJECTED: &str =
        "This sign-in request could not be verified. Go back to the application and sign in again.";
    /// A pushed request (`request_uri`) that is unknown, used, expired or another client's.
    pub const PUSHED_REQUEST_UNUSABLE: &str = "This sign-in link has expired or was already used. Go back to the application and sign in again.";
    /// A logout request whose `post_logout_redirect_uri` or `client_id` does not match.
    pub const INVALID_LOGOUT: &str = "This sign-out link is not valid: the application is unknown or its return address is not registered.";
}

/// Operator branding, from configuration and built once (no rebuild to restyle the pages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branding {
    /// Shown above every page's heading (when there is no logo) and in the window title.
    pub title: String,
    /// An `https://` image URL shown instead of the title text (with the title as its `alt`).
    /// Any other value is ignored.
    pub logo_url: Option<String>,
    /// CSS appended to the built-in style sheet. Operator configuration, not user input, yet
    /// every `<` in it is replaced by the CSS escape `\3c ` (same meaning in a CSS string), so it
    /// can never close the `<style>` element.
    pub extra_css: Option<String>,
}

impl Default for Branding {
    fn default() -> Self {
        Self {
            title: "Sign in".to_owned(),
            logo_url: None,
            extra_css: None,
        }
    }
}

impl Branding {
    /// The logo when it is an absolute `https://` URL with a host and no whitespace or control
    /// characters; `None` otherwise (so a `javascript:` or `http:` URL is dropped, not shown).
    pub fn safe_logo_url(&self) -> Option<&str> {
        let url = self.logo_url.as_deref()?.trim();
        let rest = url
            .get(..8)
            .filter(|scheme| scheme.eq_ignore_ascii_case("https://"))
            .map(|_| &url[8..])?;
        let host_present = rest
            .chars()
            .next()
            .is_some_and(|c| !matches!(c, '/' | '\\' | '?' | '#'));
        let clean = !url.chars().any(|c| c.is_whitespace() || c.is_control());
        (host_present && clean).then_some(url)
    }

    /// The contents of the pages' one `<style>` element: the built-in sheet, then the operator's
    /// extra CSS with every `<` escaped.
    pub fn style(&self) -> String {
        let mut style = String::from(BASE_CSS.trim_end());
        if let Some(extra) = self.extra_css.as_deref().filter(|s| !s.trim().is_empty()) {
            style.push('\n');
            style.push_str(&extra.replace('<', "\\3c "));
        }
        style
    }
}

/// The built-in style sheet (system font stack, a centred card, a visible focus ring).
const BASE_CSS: &str = include_str!("../../templates/authorize/page.css");

/// The form_post page's only script. `HTMLFormElement.prototype.submit` is called directly so
/// that a field named `submit` cannot shadow the method.
const FORM_POST_SCRIPT: &str = "HTMLFormElement.prototype.submit.call(document.forms[0]);";

/// `'sha256-…'` of [`FORM_POST_SCRIPT`], computed once.
static FORM_POST_SCRIPT_HASH: LazyLock<String> = LazyLock::new(|| csp_hash(FORM_POST_SCRIPT));

/// A CSP hash source (CSP3 §2.3.1: standard base64 with padding) for an inline element's text.
fn csp_hash(text: &str) -> String {
    let digest = digest::digest(&digest::SHA256, text.as_bytes());
    format!("'sha256-{}'", STANDARD.encode(digest.as_ref()))
}

/// The CSP of the branded pages: only their own `<style>` and https images.
fn page_csp(style: &str) -> String {
    format!(
        "default-src 'none'; style-src {}; img-src https:; frame-ancestors 'none'; base-uri 'none'",
        csp_hash(style)
    )
}

/// The CSP of the form_post page: only its own script.
fn form_post_csp() -> String {
    format!(
        "default-src 'none'; script-src {}; frame-ancestors 'none'; base-uri 'none'",
        FORM_POST_SCRIPT_HASH.as_str()
    )
}

/// An HTML response with the security headers every page carries. A template that fails to
/// render (only a formatter error can make it) answers a bare 500 page.
fn html(status: u16, csp: String, rendered: askama::Result<String>) -> ApiResponse {
    let (status, body) = match rendered {
        Ok(body) => (status, body),
        Err(error) => {
            tracing::error!(%error, "page template failed to render");
            (
                500,
                "<!DOCTYPE html><html lang=\"en\"><title>Error</title><p>Something went wrong.</p></html>"
                    .to_owned(),
            )
        }
    };
    ApiResponse {
        status,
        headers: vec![("content-type", "text/html; charset=utf-8".to_owned())],
        body,
    }
    .header("content-security-policy", csp)
    .header("x-frame-options", "DENY")
    .header("referrer-policy", "no-referrer")
    .header("x-content-type-options", "nosniff")
    .no_store()
}

/// What the shared layout (`base.html`) shows.
struct Layout<'a> {
    title: &'a str,
    logo_url: Option<&'a str>,
    style: &'a str,
}

/// Renders a branded page: the layout's style and its CSP hash come from the same string.
fn branded(
    status: u16,
    branding: &Branding,
    render: impl FnOnce(Layout<'_>) -> askama::Result<String>,
) -> ApiResponse {
    let style = branding.style();
    let layout = Layout {
        title: &branding.title,
        logo_url: branding.safe_logo_url(),
        style: &style,
    };
    html(status, page_csp(&style), render(layout))
}

#[derive(Template)]
#[template(path = "authorize/login.html")]
struct LoginTemplate<'a> {
    layout: Layout<'a>,
    client_name: &'a str,
    login_action: &'a str,
    transaction: &'a str,
    csrf_token: &'a str,
    login_hint: Option<&'a str>,
    failed: bool,
    failed_message: &'a str,
}

/// The login page, 200, also after a failed login (`failed`: the form again, with the one
/// generic [`LOGIN_FAILED`] alert).
///
/// `<form method="post" action="{login_action}">` with hidden `transaction` and `csrf_token`,
/// `username` (`autocomplete="username"`, prefilled with `login_hint`: pass the submitted
/// username there to keep it after a failure) and `password` (`autocomplete="current-password"`,
/// never prefilled). The username has the focus, or the password when the username is prefilled.
pub fn login_page(
    branding: &Branding,
    client_name: &str,
    login_action: &str,
    transaction: &str,
    csrf_token: &str,
    login_hint: Option<&str>,
    failed: bool,
) -> ApiResponse {
    let login_hint = login_hint.filter(|hint| !hint.is_empty());
    branded(200, branding, |layout| {
        LoginTemplate {
            layout,
            client_name,
            login_action,
            transaction,
            csrf_token,
            login_hint,
            failed,
            failed_message: LOGIN_FAILED,
        }
        .render()
    })
}

/// One line of the consent list.
struct ScopeLine<'a> {
    name: &'a str,
    description: Option<&'static str>,
}

/// What a standard scope lets the client do, in the words of the consent page.
fn scope_description(scope: &str) -> Option<&'static str> {
    Some(match scope {
        "openid" => "Sign you in with your account",
        "profile" => "See your profile: name, username, picture and locale",
        "email" => "See your email address",
        "address" => "See your postal address",
        "phone" => "See your phone number",
        "offline_access" => "Keep access to your data while you are signed out",
        _ => return None,
    })
}

#[derive(Template)]
#[template(path = "authorize/consent.html")]
struct ConsentTemplate<'a> {
    layout: Layout<'a>,
    client_name: &'a str,
    scopes: Vec<ScopeLine<'a>>,
    action: &'a str,
    transaction: &'a str,
    csrf_token: &'a str,
}

/// The consent page, 200: "{client_name} wants to:" and the scopes (standard OIDC scopes in
/// words, others as they are), then one form POSTing to `action` with hidden `transaction` and
/// `csrf_token` and two buttons, `decision=allow` and `decision=deny`.
pub fn consent_page(
    branding: &Branding,
    client_name: &str,
    scopes: &[String],
    action: &str,
    transaction: &str,
    csrf_token: &str,
) -> ApiResponse {
    let scopes = scopes
        .iter()
        .map(|name| ScopeLine {
            name,
            description: scope_description(name),
        })
        .collect();
    branded(200, branding, |layout| {
        ConsentTemplate {
            layout,
            client_name,
            scopes,
            action,
            transaction,
            csrf_token,
        }
        .render()
    })
}

#[derive(Template)]
#[template(path = "authorize/error.html")]
struct ErrorTemplate<'a> {
    layout: Layout<'a>,
    message: &'a str,
}

/// The error page, 400, for what must not redirect (an unknown client or an unregistered
/// redirect_uri). `message` is shown escaped; take it from [`messages`], never from the request.
pub fn error_page(branding: &Branding, message: &str) -> ApiResponse {
    branded(400, branding, |layout| {
        ErrorTemplate { layout, message }.render()
    })
}

#[derive(Template)]
#[template(path = "authorize/form_post.html")]
struct FormPostTemplate<'a> {
    redirect_uri: &'a str,
    params: &'a [(&'a str, &'a str)],
    script: &'static str,
}

/// The OAuth 2.0 Form Post Response Mode page, 200: a form POSTing `params` (code or error,
/// state, iss…) as hidden fields to the registered `redirect_uri`, submitted by the page's one
/// script (allowed by its hash), or by the `<noscript>` Continue button without JavaScript.
pub fn form_post(redirect_uri: &str, params: &[(&str, &str)]) -> ApiResponse {
    let page = FormPostTemplate {
        redirect_uri,
        params,
        script: FORM_POST_SCRIPT,
    };
    html(200, form_post_csp(), page.render())
}

#[derive(Template)]
#[template(path = "authorize/logout_confirm.html")]
struct LogoutConfirmTemplate<'a> {
    layout: Layout<'a>,
    action: &'a str,
    hidden: &'a [(&'a str, &'a str)],
}

/// The logout confirmation page, 200 (RP-Initiated Logout without a valid `id_token_hint`):
/// "Sign out of {branding.title}?" and a form POSTing `hidden` (csrf token, state, …) to `action`.
pub fn logout_confirm_page(
    branding: &Branding,
    action: &str,
    hidden: &[(&str, &str)],
) -> ApiResponse {
    branded(200, branding, |layout| {
        LogoutConfirmTemplate {
            layout,
            action,
            hidden,
        }
        .render()
    })
}

#[derive(Template)]
#[template(path = "authorize/signed_out.html")]
struct SignedOutTemplate<'a> {
    layout: Layout<'a>,
}

/// The "You are signed out" page, 200 (logout without a `post_logout_redirect_uri`).
pub fn signed_out_page(branding: &Branding) -> ApiResponse {
    branded(200, branding, |layout| {
        SignedOutTemplate { layout }.render()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn branding() -> Branding {
        Branding {
            title: "Example Corp".to_owned(),
            logo_url: None,
            extra_css: None,
        }
    }

    fn login(hint: Option<&str>, failed: bool) -> ApiResponse {
        login_page(
            &branding(),
            "Demo App",
            "/oauth/v2/authorize/login",
            "tx-123",
            "csrf-456",
            hint,
            failed,
        )
    }

    fn every_page() -> Vec<(&'static str, ApiResponse)> {
        let scopes = vec!["openid".to_owned(), "read".to_owned()];
        vec![
            ("login", login(None, false)),
            ("login failed", login(Some("alice"), true)),
            (
                "consent",
                consent_page(&branding(), "Demo App", &scopes, "/c", "tx", "csrf"),
            ),
            (
                "error",
                error_page(&branding(), messages::INVALID_CLIENT_OR_REDIRECT_URI),
            ),
            (
                "form_post",
                form_post("https://app.example/cb", &[("code", "abc"), ("state", "s")]),
            ),
            (
                "logout confirm",
                logout_confirm_page(&branding(), "/oauth/v2/logout", &[("csrf_token", "c")]),
            ),
            ("signed out", signed_out_page(&branding())),
        ]
    }

    /// The text between `open` and the next `close`.
    fn between<'a>(body: &'a str, open: &str, close: &str) -> &'a str {
        let start = body.find(open).expect("open tag") + open.len();
        let len = body[start..].find(close).expect("close tag");
        &body[start..start + len]
    }

    fn csp(page: &ApiResponse) -> &str {
        page.header_value("content-security-policy").expect("csp")
    }

    #[test]
    fn every_page_has_the_security_headers() {
        for (name, page) in every_page() {
            let header = |h: &str| {
                page.header_value(h)
                    .unwrap_or_else(|| panic!("{name}: {h}"))
            };
            assert_eq!(header("content-type"), "text/html; charset=utf-8", "{name}");
            assert_eq!(header("x-frame-options"), "DENY", "{name}");
            assert_eq!(header("referrer-policy"), "no-referrer", "{name}");
            assert_eq!(header("cache-control"), "no-store", "{name}");
            assert_eq!(header("x-content-type-options"), "nosniff", "{name}");
            let csp = csp(&page);
            assert!(csp.starts_with("default-src 'none'; "), "{name}: {csp}");
            for directive in ["frame-ancestors 'none'", "base-uri 'none'"] {
                assert!(csp.contains(directive), "{name}: {csp}");
            }
            for absent in ["form-action", "unsafe-inline", "unsafe-eval", "*"] {
                assert!(!csp.contains(absent), "{name}: {csp}");
            }
            assert!(
                page.headers
                    .iter()
                    .all(|(h, _)| !h.to_ascii_lowercase().starts_with("access-control-")),
                "{name}: no CORS"
            );
            assert!(
                page.body.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"),
                "{name}"
            );
            assert!(page.body.contains("name=\"viewport\""), "{name}");
            let expected = if name == "error" { 400 } else { 200 };
            assert_eq!(page.status, expected, "{name}");
        }
    }

    #[test]
    fn branded_pages_allow_only_their_own_style_by_hash() {
        for (name, page) in every_page() {
            if name == "form_post" {
                continue;
            }
            let style = between(&page.body, "<style>", "</style>");
            assert!(
                style.contains(":focus-visible"),
                "{name}: a visible focus ring"
            );
            assert!(
                csp(&page).contains(&format!("style-src {};", csp_hash(style))),
                "{name}: {}",
                csp(&page)
            );
            assert!(!page.body.contains("<script"), "{name}: no JavaScript");
            assert!(
                !page.body.contains(" style="),
                "{name}: no style attributes"
            );
            assert_eq!(page.body.matches("<h1>").count(), 1, "{name}: one h1");
        }
    }

    #[test]
    fn login_form_contract() {
        let page = login(None, false);
        assert_eq!(page.status, 200);
        let body = &page.body;
        assert!(body.contains("<h1>Sign in to Demo App</h1>"), "{body}");
        assert!(body.contains("<form method=\"post\" action=\"/oauth/v2/authorize/login\">"));
        assert!(body.contains("<input type=\"hidden\" name=\"transaction\" value=\"tx-123\">"));
        assert!(body.contains("<input type=\"hidden\" name=\"csrf_token\" value=\"csrf-456\">"));
        let username = between(body, "<input id=\"username\"", ">");
        assert!(username.contains("name=\"username\""));
        assert!(username.contains("autocomplete=\"username\""));
        assert!(username.contains("autofocus"), "focus on the username");
        assert!(!username.contains("value="));
        let password = between(body, "<input id=\"password\"", ">");
        assert!(password.contains("type=\"password\""));
        assert!(password.contains("name=\"password\""));
        assert!(password.contains("autocomplete=\"current-password\""));
        assert!(!password.contains("autofocus") && !password.contains("value="));
        assert!(
            body.contains("<label for=\"username\">") && body.contains("<label for=\"password\">")
        );
        assert!(body.contains("<button type=\"submit\">Sign in</button>"));
        // Focus order: hidden fields, username, password, then the button, all in one form.
        let order = [
            "<form",
            "name=\"transaction\"",
            "id=\"username\"",
            "id=\"password\"",
            "<button",
            "</form>",
        ]
        .map(|s| body.find(s).unwrap_or_else(|| panic!("{s}")));
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
        assert_eq!(body.matches("<form").count(), 1);
        assert_eq!(body.matches("<input").count(), 4);
        assert!(!body.contains("role=\"alert\""));
    }

    #[test]
    fn login_hint_prefills_the_username_and_moves_the_focus_to_the_password() {
        let page = login(Some("alice@example.com"), false);
        let username = between(&page.body, "<input id=\"username\"", ">");
        assert!(
            username.contains("value=\"alice@example.com\"") && !username.contains("autofocus")
        );
        let password = between(&page.body, "<input id=\"password\"", ">");
        assert!(password.contains("autofocus"));
        // An empty hint is no hint.
        let page = login(Some(""), false);
        assert!(between(&page.body, "<input id=\"username\"", ">").contains("autofocus"));
    }

    #[test]
    fn login_hint_is_escaped() {
        let hint = "\"><script>alert(1)</script><input name=\"password\" value='x";
        let page = login(Some(hint), false);
        let body = &page.body;
        assert!(!body.contains("<script"), "{body}");
        assert!(!body.contains("\"><"), "{body}");
        assert!(
            body.contains("value=\"&#34;&#62;&#60;script&#62;alert(1)&#60;/script&#62;"),
            "{body}"
        );
        assert_eq!(body.matches("<input").count(), 4, "no injected input");
        assert_eq!(body.matches("name=\"password\"").count(), 1);
    }

    #[test]
    fn every_value_on_the_login_page_is_escaped() {
        let page = login_page(
            &Branding {
                title: "<b>Corp</b>".to_owned(),
                ..branding()
            },
            "<i>App</i>",
            "/login?a=1&b=\"2\"",
            "t\"x",
            "c'<",
            None,
            false,
        );
        let body = &page.body;
        for raw in ["<b>", "<i>", "b=\"2\"", "t\"x", "c'<"] {
            assert!(!body.contains(raw), "{raw} in {body}");
        }
        assert!(
            body.contains("action=\"/login?a=1&#38;b=&#34;2&#34;\""),
            "{body}"
        );
        assert!(body.contains("Sign in to &#60;i&#62;App&#60;/i&#62;"));
    }

    #[test]
    fn failed_login_shows_only_the_generic_alert() {
        let page = login(Some("alice"), true);
        assert_eq!(page.status, 200);
        let body = &page.body;
        assert_eq!(
            body.matches("<p class=\"error\" id=\"login-error\" role=\"alert\">The username or password is incorrect.</p>").count(),
            1,
            "{body}"
        );
        assert_eq!(body.matches("role=\"alert\"").count(), 1);
        assert!(
            between(body, "<input id=\"username\"", ">")
                .contains("aria-describedby=\"login-error\"")
        );
        assert!(between(body, "<input id=\"password\"", ">").contains("autofocus"));
        // No other failure wording exists, and the page is the same whatever the reason.
        for word in ["locked", "disabled", "unknown", "not found", "attempts"] {
            assert!(!body.to_ascii_lowercase().contains(word), "{word}");
        }
        assert_eq!(body, &login(Some("alice"), true).body);
    }

    #[test]
    fn the_password_is_never_rendered() {
        let password = between(
            &login(Some("alice"), true).body,
            "<input id=\"password\"",
            ">",
        )
        .to_owned();
        assert!(!password.contains("value"), "{password}");
    }

    #[test]
    fn extra_css_cannot_close_the_style_element() {
        for css in [
            "body{color:red}</style><script>alert(1)</script>",
            "</STYLE ><img src=x>",
            "<</style>",
            "a::after{content:\"</\"}",
        ] {
            let page = signed_out_page(&Branding {
                extra_css: Some(css.to_owned()),
                ..branding()
            });
            let body = &page.body;
            assert_eq!(
                body.to_ascii_lowercase().matches("</style").count(),
                1,
                "{body}"
            );
            assert!(
                !body.contains("<script") && !body.contains("<img"),
                "{body}"
            );
            let style = between(body, "<style>", "</style>");
            assert!(!style.contains('<'), "{style}");
            assert!(csp(&page).contains(&csp_hash(style)));
        }
        let page = signed_out_page(&Branding {
            extra_css: Some("main{border-radius:0}".to_owned()),
            ..branding()
        });
        assert!(between(&page.body, "<style>", "</style>").ends_with("\nmain{border-radius:0}"));
    }

    #[test]
    fn only_an_https_logo_is_shown() {
        let with_logo = |url: &str| {
            signed_out_page(&Branding {
                logo_url: Some(url.to_owned()),
                ..branding()
            })
            .body
        };
        let body = with_logo("https://cdn.example/logo.svg?v=1&x=2");
        assert!(
            body.contains("<img class=\"logo\" src=\"https://cdn.example/logo.svg?v=1&#38;x=2\" alt=\"Example Corp\">"),
            "{body}"
        );
        assert!(!body.contains("class=\"brand\""));
        for bad in [
            "http://cdn.example/logo.png",
            "javascript:alert(1)",
            "data:image/png;base64,AAAA",
            "//cdn.example/logo.png",
            "https:///logo.png",
            "https://",
            "https://cdn.example/a b.png",
            "/logo.png",
        ] {
            let body = with_logo(bad);
            assert!(!body.contains("<img"), "{bad}: {body}");
            assert!(
                body.contains("<p class=\"brand\">Example Corp</p>"),
                "{bad}"
            );
        }
        assert!(with_logo("HTTPS://cdn.example/l.png").contains("<img"));
    }

    #[test]
    fn consent_lists_scopes_and_offers_allow_and_deny() {
        let scopes = ["openid", "email", "offline_access", "<b>custom</b>"].map(String::from);
        let page = consent_page(&branding(), "Demo App", &scopes, "/consent", "tx", "csrf");
        let body = &page.body;
        assert!(body.contains("<h1>Demo App wants to:</h1>"), "{body}");
        assert!(body.contains("<li>Sign you in with your account</li>"));
        assert!(body.contains("<li>See your email address</li>"));
        assert!(body.contains("<li>Keep access to your data while you are signed out</li>"));
        assert!(body.contains("<li><code>&#60;b&#62;custom&#60;/b&#62;</code></li>"));
        assert_eq!(body.matches("<li>").count(), 4);
        assert!(body.contains("<form method=\"post\" action=\"/consent\">"));
        assert!(body.contains("<input type=\"hidden\" name=\"transaction\" value=\"tx\">"));
        assert!(body.contains("<input type=\"hidden\" name=\"csrf_token\" value=\"csrf\">"));
        assert!(body.contains("name=\"decision\" value=\"allow\">Allow</button>"));
        assert!(body.contains("name=\"decision\" value=\"deny\">Deny</button>"));
        assert_eq!(body.matches("<form").count(), 1);
        for scope in ["profile", "address", "phone"] {
            assert!(scope_description(scope).is_some());
        }
    }

    #[test]
    fn error_page_is_400_with_the_generic_message_escaped() {
        let page = error_page(&branding(), messages::INVALID_CLIENT_OR_REDIRECT_URI);
        assert_eq!(page.status, 400);
        assert!(page.body.contains(
            "<p>This sign-in link is not valid: the application is unknown or its redirect address is not registered.</p>"
        ));
        assert!(!page.body.contains("<form"));
        let page = error_page(&branding(), "<script>x</script>");
        assert!(!page.body.contains("<script") && page.body.contains("&#60;script&#62;"));
    }

    #[test]
    fn form_post_escapes_values_and_allows_only_its_own_script() {
        let page = form_post(
            "https://app.example/cb?x=1&y=\"2\"",
            &[
                ("code", "abc"),
                ("state", "\"><script>alert(1)</script>"),
                ("iss", "https://id.example/oauth"),
                ("submit", "x"),
            ],
        );
        assert_eq!(page.status, 200);
        let body = &page.body;
        assert!(
            body.contains(
                "<form method=\"post\" action=\"https://app.example/cb?x=1&#38;y=&#34;2&#34;\">"
            ),
            "{body}"
        );
        assert!(body.contains("<input type=\"hidden\" name=\"code\" value=\"abc\">"));
        assert!(body.contains("<input type=\"hidden\" name=\"state\" value=\"&#34;&#62;&#60;script&#62;alert(1)&#60;/script&#62;\">"));
        assert!(
            body.contains(
                "<input type=\"hidden\" name=\"iss\" value=\"https://id.example/oauth\">"
            )
        );
        assert!(
            body.contains("<noscript>")
                && body.contains("<button type=\"submit\">Continue</button></noscript>")
        );
        // Exactly one script, the fixed one, and the CSP names exactly its hash.
        assert_eq!(body.matches("<script").count(), 1, "{body}");
        let script = between(body, "<script>", "</script>");
        assert_eq!(script, FORM_POST_SCRIPT);
        let csp = csp(&page);
        assert_eq!(
            csp,
            format!(
                "default-src 'none'; script-src {}; frame-ancestors 'none'; base-uri 'none'",
                csp_hash(script)
            )
        );
        assert!(!csp.contains("style-src") && !csp.contains("img-src"));
    }

    #[test]
    fn csp_hash_is_the_standard_base64_sha256() {
        // echo -n 'alert(1)' | openssl dgst -sha256 -binary | base64
        assert_eq!(
            csp_hash("alert(1)"),
            "'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI='"
        );
    }

    #[test]
    fn logout_pages() {
        let page = logout_confirm_page(
            &branding(),
            "/oauth/v2/logout",
            &[("csrf_token", "c\"1"), ("state", "s<1>")],
        );
        assert_eq!(page.status, 200);
        let body = &page.body;
        assert!(
            body.contains("<h1>Sign out of Example Corp?</h1>"),
            "{body}"
        );
        assert!(body.contains("<form method=\"post\" action=\"/oauth/v2/logout\">"));
        assert!(body.contains("<input type=\"hidden\" name=\"csrf_token\" value=\"c&#34;1\">"));
        assert!(body.contains("<input type=\"hidden\" name=\"state\" value=\"s&#60;1&#62;\">"));
        assert!(body.contains("<button type=\"submit\">Sign out</button>"));
        let page = signed_out_page(&branding());
        assert!(page.body.contains("<h1>You are signed out</h1>"));
        assert!(!page.body.contains("<form"));
    }
}
