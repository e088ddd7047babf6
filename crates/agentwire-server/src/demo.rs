//! The demo chat page and the browser client, embedded in the binary.
//!
//! Every response carries security headers: a Content-Security-Policy without `unsafe-inline`
//! (scripts only from this origin; the page's one inline `<style>` block allowed by its
//! SHA-256, computed from the embedded page so it follows edits), `nosniff`, and
//! `frame-ancestors 'none'` / `X-Frame-Options: DENY` against clickjacking.

use std::sync::OnceLock;

use axum::http::HeaderValue;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::Digest as _;

const INDEX_HTML: &str = include_str!("../static/index.html");
const CLIENT_JS: &str = include_str!("../static/agentwire.js");
const DEMO_JS: &str = include_str!("../static/demo.js");

/// The page's Content-Security-Policy: its inline `<style>` blocks by hash, nothing else inline.
fn content_security_policy() -> &'static HeaderValue {
    static CSP: OnceLock<HeaderValue> = OnceLock::new();
    CSP.get_or_init(|| {
        let styles: String = INDEX_HTML
            .split("<style>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</style>").map(|(css, _)| css))
            .map(|css| {
                let digest = sha2::Sha256::digest(css.as_bytes());
                let hash = base64::engine::general_purpose::STANDARD.encode(digest);
                format!(" 'sha256-{hash}'")
            })
            .collect();
        let policy = format!(
            "default-src 'self'; script-src 'self'; style-src 'self'{styles}; img-src 'self' data:; \
             connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        );
        HeaderValue::from_str(&policy).expect("the policy is ASCII")
    })
}

fn with_headers(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (CONTENT_SECURITY_POLICY, content_security_policy().clone()),
            (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        ],
        body,
    )
        .into_response()
}

pub(crate) async fn index() -> Response {
    with_headers("text/html; charset=utf-8", INDEX_HTML)
}

pub(crate) async fn client_js() -> Response {
    with_headers("text/javascript; charset=utf-8", CLIENT_JS)
}

pub(crate) async fn demo_js() -> Response {
    with_headers("text/javascript; charset=utf-8", DEMO_JS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_the_page_style_by_hash_and_nothing_inline() {
        let csp = content_security_policy().to_str().unwrap();
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(csp.contains("script-src 'self';"), "{csp}");
        let inline_styles = INDEX_HTML.matches("<style>").count();
        assert_eq!(csp.matches("'sha256-").count(), inline_styles, "{csp}");
        // No inline script or event handler that the policy would block.
        assert!(!INDEX_HTML.contains("<script>"));
        assert!(!INDEX_HTML.contains(" onclick="));
        assert!(
            !INDEX_HTML.contains(" style=\""),
            "an inline style attribute would be blocked"
        );
    }
}
