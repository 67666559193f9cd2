//! The server's page, for people who watch a migration on a screen: `GET /`
//! is one HTML file (inline CSS and script, compiled into the binary, no
//! asset fetched from anywhere) that fetches `GET /page.json` every two
//! seconds and shows it: what each resource serves, each proxy's state
//! (ACKed, behind, NACKed with Envoy's message, disconnected), each split's
//! weights, rollback and pins, and, when the server knows where the
//! proxies' metrics are (`--prometheus` or `--envoy-admin`), whether a
//! guard tripped and the shadow's mismatch rate.
//!
//! The document is made in `document.rs` and `splits.rs` without I/O; the
//! figures from the proxies' metrics are read in `figures.rs`, when the
//! page asks, never on the xDS path.

mod document;
mod figures;
mod splits;

use std::sync::{Arc, LazyLock};

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;

pub use figures::FigureReader;

use super::hub::{now_ms, Hub};
use super::json_text;

/// The page itself: written by hand, read in one sitting.
const PAGE: &str = include_str!("page.html");

/// What the page's response allows: its own inline style, its one inline
/// script named by its hash (so no other script runs, even one that got
/// into the page some other way), and fetching from the server that
/// served it; nothing from elsewhere (no font, image or script from
/// outside, no frame).
static POLICY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; script-src '{}'; style-src 'unsafe-inline'; \
         connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'",
        script_hash(PAGE)
    )
});

/// `sha256-BASE64` of the page's inline script, as a Content-Security-
/// Policy names it: the bytes between `<script>` and `</script>`.
fn script_hash(page: &str) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let body = page
        .split_once("<script>")
        .and_then(|(_, rest)| rest.split_once("</script>"))
        .map_or("", |(script, _)| script);
    let digest = Sha256::digest(body.as_bytes());
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

#[derive(Clone)]
struct Page {
    hub: Arc<Hub>,
    figures: Arc<FigureReader>,
}

/// `GET /` and `GET /page.json`, for the HTTP router to merge.
pub fn routes(hub: Arc<Hub>, figures: FigureReader) -> Router {
    Router::new()
        .route("/", any(page))
        .route("/page.json", any(data))
        .with_state(Page {
            hub,
            figures: Arc::new(figures),
        })
}

async fn page() -> Response {
    let headers = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CONTENT_SECURITY_POLICY, POLICY.as_str()),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    (headers, PAGE).into_response()
}

async fn data(State(page): State<Page>) -> Response {
    // Read first: the subscriptions' lock is not held across an await.
    let figures = page.figures.figures().await;
    let catalog = page.hub.catalog();
    let doc = {
        let subs = page.hub.subscriptions();
        document::document(
            &catalog,
            subs.proxies(),
            subs.departed.iter(),
            &figures,
            now_ms(),
        )
    };
    let headers = [
        (header::CONTENT_TYPE, "application/json"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    (headers, json_text(&doc) + "\n").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_lets_the_pages_one_script_run_and_no_other() {
        // The CSP hash of `alert(1)`, as a browser computes it (by Python's
        // hashlib and base64, not this code).
        assert_eq!(
            script_hash("<p><script>alert(1)</script>"),
            "sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI="
        );
        assert_eq!(PAGE.matches("<script").count(), 1, "one inline script");
        assert!(POLICY.contains(&format!("script-src '{}';", script_hash(PAGE))));
        assert!(!POLICY.contains("script-src 'unsafe-inline'"));
    }
}
