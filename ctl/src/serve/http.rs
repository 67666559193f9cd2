//! Plain HTTP on the gRPC port, for people, Prometheus and the rollout
//! controller: the axum router that the gRPC services join (mod.rs), so
//! every request that is not a gRPC method lands here.
//!
//! - `GET /`: the page people watch, and `GET /page.json`, its data (see
//!   page/);
//! - `GET /status`: the status document (JSON, see status.rs);
//! - `GET /metrics`: Prometheus text (see metrics.rs);
//! - `GET /wait?resource=NAME&version=V&proxies=N&timeout_ms=T`: answers
//!   when every subscribed proxy (at least N, default 1) has ACKed version
//!   V of NAME, when one NACKed it, when the server refused that file or
//!   moved on to another version, or after T ms (default 30 000, at most
//!   an hour): a JSON answer (see wait.rs), status 200 in every case; 400
//!   with a line saying why when the query is wrong. V may be a file's
//!   bare hash: the server waits for the version it serves it as (the
//!   native build's adds `-native`; `Catalog::resolve`).
//!
//! Any other path is a 404, any other method a 405 (a line of text each).

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;

use super::hub::{now_ms, Hub};
use super::json_text;
use super::wait::{WaitQuery, Want};

/// The HTTP routes (these and `page`'s), ready for the gRPC services to
/// be added.
pub fn router(hub: Arc<Hub>, page: Router) -> Router {
    // `any`, not `get`: the method is `get_only`'s to check, as it always
    // was. axum's `get` would also answer HEAD, and its 405s would carry
    // an `Allow` header that the old answers did not.
    Router::new()
        .route("/status", any(status))
        .route("/metrics", any(metrics))
        .route("/wait", any(wait))
        .with_state(hub)
        .merge(page)
        .fallback(not_found)
        // Over the routes above and the fallback, not over the gRPC
        // services added later (their POSTs).
        .layer(middleware::from_fn(get_only))
}

/// GET only, whatever the path: anything else (HEAD too, and a gRPC
/// method that is not served, a POST that falls through) is a 405.
async fn get_only(request: Request, next: Next) -> Response {
    if request.method() != Method::GET {
        return (StatusCode::METHOD_NOT_ALLOWED, "only GET is served\n").into_response();
    }
    next.run(request).await
}

async fn not_found() -> Response {
    let text = "not found: try /, /status, /metrics or /wait\n";
    (StatusCode::NOT_FOUND, text).into_response()
}

async fn status(State(hub): State<Arc<Hub>>) -> Response {
    let catalog = hub.catalog();
    let doc = super::status::document(&catalog, hub.subscriptions().proxies(), now_ms());
    json(json_text(&doc))
}

async fn metrics(State(hub): State<Arc<Hub>>) -> Response {
    let catalog = hub.catalog();
    let body = super::metrics::render(&catalog, &hub.subscriptions());
    let prometheus = "text/plain; version=0.0.4; charset=utf-8";
    ([(header::CONTENT_TYPE, prometheus)], body).into_response()
}

async fn wait(
    State(hub): State<Arc<Hub>>,
    query: Result<Query<WaitQuery>, QueryRejection>,
) -> Response {
    let (mut want, timeout) = match asked(query) {
        Ok(asked) => asked,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    want.version = hub.catalog().resolve(&want.version);
    let delivery = hub.wait(&want, tokio::time::Instant::now() + timeout).await;
    json(json_text(&delivery.answer(&want)))
}

/// What a `/wait` query asks for, or why it cannot be answered: the
/// parameter that failed, as the query's deserializer names it (without
/// axum's preamble), or what `WaitQuery::want` refuses.
fn asked(query: Result<Query<WaitQuery>, QueryRejection>) -> Result<(Want, Duration), String> {
    match query {
        Ok(Query(query)) => query.want(),
        Err(rejection) => Err(rejection
            .source()
            .map_or_else(|| rejection.body_text(), ToString::to_string)),
    }
}

/// A document, written as `json_text` writes it, with a newline.
fn json(text: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], text + "\n").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Uri;

    fn query(text: &str) -> Result<(Want, Duration), String> {
        let uri: Uri = format!("/wait?{text}").parse().unwrap();
        asked(Query::try_from_uri(&uri))
    }

    #[test]
    fn wait_queries() {
        let (w, t) = query("resource=turnout&version=ab12&proxies=3&timeout_ms=500").unwrap();
        assert_eq!(
            (w.resource.as_str(), w.version.as_str(), w.proxies),
            ("turnout", "ab12", 3)
        );
        assert_eq!(t, Duration::from_millis(500));
        let (w, t) = query("version=ab&resource=t").unwrap();
        assert_eq!((w.proxies, t), (1, Duration::from_secs(30)));
        let (_, t) = query("version=ab&resource=t&timeout_ms=99999999999&&").unwrap();
        assert_eq!(t, Duration::from_secs(3_600));
        // The texts of the 400s, as they were before axum read the query.
        assert_eq!(
            query("resource=t").unwrap_err(),
            "resource and version are required"
        );
        assert_eq!(
            query("resource=t&version").unwrap_err(),
            "resource and version are required"
        );
        assert_eq!(
            query("resource=t&version=v&proxies=x").unwrap_err(),
            r#"proxies: "x" is not a number"#
        );
        assert_eq!(
            query("resource=t&version=v&colour=red").unwrap_err(),
            r#"unknown parameter "colour""#
        );
    }

    /// What the client sends (`client::wait_acked`) is what the server reads.
    #[test]
    fn the_clients_query_reads_back() {
        let want = Want {
            resource: "turnout".into(),
            version: "00ff".into(),
            proxies: 2,
        };
        let sent = WaitQuery::new(&want, Duration::from_millis(1_500));
        let text = serde_urlencoded::to_string(&sent).unwrap();
        assert_eq!(
            text,
            "resource=turnout&version=00ff&proxies=2&timeout_ms=1500"
        );
        assert_eq!(query(&text).unwrap(), (want, Duration::from_millis(1_500)));
    }
}
