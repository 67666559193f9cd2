//! Plain HTTP on the gRPC port, for people, Prometheus and the rollout
//! controller: every request that is not a gRPC method lands here.
//!
//! - `GET /status`: the status document (JSON, see status.rs);
//! - `GET /metrics`: Prometheus text (see metrics.rs);
//! - `GET /wait?resource=NAME&version=V&proxies=N&timeout_ms=T`: answers
//!   when every subscribed proxy (at least N, default 1) has ACKed version
//!   V of NAME, when one NACKed it, when the server refused that file or
//!   moved on to another version, or after T ms (default 30 000, at most
//!   an hour): a JSON verdict (see wait.rs), status 200 in every case.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use tonic::body::Body;
use tonic::codegen::http::{header, Method, Request, Response, StatusCode};
use tonic::codegen::{BoxFuture, Context, Poll, Service};

use super::hub::{now_ms, Hub};
use super::wait::Want;

#[derive(Clone)]
pub struct Http {
    hub: Arc<Hub>,
}

impl Http {
    pub fn new(hub: Arc<Hub>) -> Http {
        Http { hub }
    }
}

impl<B> Service<Request<B>> for Http {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Response<Body>, Infallible>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let hub = self.hub.clone();
        let get = request.method() == Method::GET;
        let path = request.uri().path().to_string();
        let query = request.uri().query().unwrap_or_default().to_string();
        Box::pin(async move {
            Ok(match (get, path.as_str()) {
                (true, "/status") => status(&hub),
                (true, "/metrics") => metrics(&hub),
                (true, "/wait") => wait(&hub, &query).await,
                (true, _) => text(
                    StatusCode::NOT_FOUND,
                    "not found: try /status, /metrics or /wait\n",
                ),
                (false, _) => text(StatusCode::METHOD_NOT_ALLOWED, "only GET is served\n"),
            })
        })
    }
}

fn status(hub: &Hub) -> Response<Body> {
    let catalog = hub.catalog();
    let doc = super::status::document(&catalog, hub.registry().proxies(), now_ms());
    json(&doc)
}

fn metrics(hub: &Hub) -> Response<Body> {
    let catalog = hub.catalog();
    let body = super::metrics::render(&catalog, &hub.registry());
    reply(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        body,
    )
}

async fn wait(hub: &Hub, query: &str) -> Response<Body> {
    let (want, timeout) = match want(query) {
        Ok(parsed) => parsed,
        Err(e) => return text(StatusCode::BAD_REQUEST, &format!("{e}\n")),
    };
    let verdict = hub.wait(&want, tokio::time::Instant::now() + timeout).await;
    json(&verdict.to_json(&want))
}

/// The query of `GET /wait`. Names and versions need no percent-decoding:
/// served names are `[A-Za-z0-9._-]`, versions hex.
fn want(query: &str) -> Result<(Want, Duration), String> {
    let mut want = Want {
        resource: String::new(),
        version: String::new(),
        proxies: 1,
    };
    let mut timeout_ms: u64 = 30_000;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{key}: {value:?} is not a number"))
        };
        match key {
            "resource" => want.resource = value.to_string(),
            "version" => want.version = value.to_string(),
            "proxies" => want.proxies = number()? as usize,
            "timeout_ms" => timeout_ms = number()?.min(3_600_000),
            _ => return Err(format!("unknown parameter {key:?}")),
        }
    }
    if want.resource.is_empty() || want.version.is_empty() {
        return Err("resource and version are required".into());
    }
    Ok((want, Duration::from_millis(timeout_ms)))
}

fn json(doc: &serde_json::Value) -> Response<Body> {
    reply(StatusCode::OK, "application/json", format!("{doc:#}\n"))
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    reply(status, "text/plain; charset=utf-8", body.to_string())
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut response = Response::new(Body::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_queries() {
        let (w, t) = want("resource=turnout&version=ab12&proxies=3&timeout_ms=500").unwrap();
        assert_eq!(
            (w.resource.as_str(), w.version.as_str(), w.proxies),
            ("turnout", "ab12", 3)
        );
        assert_eq!(t, Duration::from_millis(500));
        let (w, t) = want("version=ab&resource=t").unwrap();
        assert_eq!((w.proxies, t), (1, Duration::from_secs(30)));
        assert!(want("resource=t").unwrap_err().contains("required"));
        assert!(want("resource=t&version=v&proxies=x")
            .unwrap_err()
            .contains("proxies"));
        assert!(want("resource=t&version=v&colour=red")
            .unwrap_err()
            .contains("colour"));
    }
}
