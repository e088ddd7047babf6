//! The demo chat page and the browser client, embedded in the binary.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;

const INDEX_HTML: &str = include_str!("../static/index.html");
const CLIENT_JS: &str = include_str!("../static/agentwire.js");
const DEMO_JS: &str = include_str!("../static/demo.js");

pub(crate) async fn index() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, "no-cache"),
        ],
        INDEX_HTML,
    )
}

pub(crate) async fn client_js() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (CACHE_CONTROL, "no-cache"),
        ],
        CLIENT_JS,
    )
}

pub(crate) async fn demo_js() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (CACHE_CONTROL, "no-cache"),
        ],
        DEMO_JS,
    )
}
