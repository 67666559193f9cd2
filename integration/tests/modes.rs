//! Read-only and maintenance modes in the real Envoy: what the filter
//! answers itself (503, `Retry-After`, a body that says why), what it lets
//! through, a split's mode winning over the top level's, and both modes
//! ending when the config is pushed back to normal. The upstreams must never
//! see a request the filter refused.

use integration::stage::{served_by, Stage};
use integration::Build;
use integration::{HttpClient, Response};
use serde_json::Value;

/// Two splits, `users` (route `users`) and `orders` (route `orders`), both
/// from `legacy` to `fastapi` at 50 %. `top`, `users` and `orders` are extra
/// fields of the top level and of each split (each starting with `, `).
fn config(top: &str, users: &str, orders: &str) -> String {
    format!(
        r#"{{"version": 1{top},
        "splits": [
          {{"name": "users", "match": {{"route": "users"}}, "stable": "legacy",
            "targets": [{{"cluster": "fastapi", "weight": 50}}]{users}}},
          {{"name": "orders", "match": {{"route": "orders"}}, "stable": "legacy",
            "targets": [{{"cluster": "fastapi", "weight": 50}}]{orders}}}]}}"#
    )
}

const METHODS: [&str; 8] = [
    "GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE", "GET",
];
const WRITES: [&str; 4] = ["POST", "PUT", "PATCH", "DELETE"];

/// Sends requests and counts those an upstream served, to compare with
/// what the upstreams counted.
struct Probe {
    client: HttpClient,
    served: u64,
}

impl Probe {
    fn new(stage: &Stage) -> Probe {
        Probe {
            client: stage.client(),
            served: 0,
        }
    }

    fn send(&mut self, method: &str, path: &str) -> Response {
        let body: &[u8] = if WRITES.contains(&method) {
            br#"{"name": "x"}"#
        } else {
            b""
        };
        let r = self
            .client
            .send(method, path, &[("x-user-id", "alice")], body);
        self.served += u64::from(served_by(&r).is_some());
        r
    }

    /// `method path` is answered 200 by an upstream.
    fn passes(&mut self, method: &str, path: &str) {
        let r = self.send(method, path);
        assert_eq!(r.status, 200, "{method} {path}: {}", r.body_str());
        assert!(served_by(&r).is_some(), "{method} {path}: {r:?}");
    }

    /// `method path` is answered 503 by the filter itself, with
    /// `Retry-After: retry_after`; returns the answer.
    fn refused(&mut self, method: &str, path: &str, retry_after: &str) -> Response {
        let r = self.send(method, path);
        assert_eq!(r.status, 503, "{method} {path}: {}", r.body_str());
        assert_eq!(served_by(&r), None, "{method} {path} reached an upstream");
        assert_eq!(
            r.header("retry-after").as_deref(),
            Some(retry_after),
            "{method} {path}: {:?}",
            r.headers
        );
        r
    }

    /// Refused by read-only mode: a JSON body that says why.
    fn refused_read_only(&mut self, method: &str, path: &str, retry_after: &str) -> Value {
        let r = self.refused(method, path, retry_after);
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/json"),
            "{method} {path}"
        );
        let body: Value = serde_json::from_slice(&r.body).unwrap_or_else(|e| {
            panic!("{method} {path}: body is not JSON ({e}): {}", r.body_str())
        });
        assert_eq!(body["error"], "read_only", "{body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains("writes"), "{body}");
        body
    }

    /// The upstreams saw exactly the requests this probe had served.
    fn check_upstreams(&self, stage: &Stage) {
        assert_eq!(
            stage.legacy.requests() + stage.fastapi.requests(),
            self.served,
            "the upstreams saw a request the filter answered"
        );
    }
}

fn read_only_refuses_writes_with_a_503_that_says_why_and_lets_reads_through(build: Build) {
    let top = r#", "mode": "read_only", "retry_after_s": 17"#;
    let mut stage = Stage::ecds_with(build, &config(top, "", ""), 2);
    let mut probe = Probe::new(&stage);
    // `/` matches no split: the top-level mode applies to it too.
    for path in ["/users", "/orders", "/", "/users/42?x=1"] {
        for method in WRITES {
            let body = probe.refused_read_only(method, path, "17");
            let split = match path {
                "/orders" => Value::from("orders"),
                "/" => Value::Null,
                _ => Value::from("users"),
            };
            assert_eq!(body["split"], split, "{method} {path}: {body}");
        }
        for method in ["GET", "HEAD", "OPTIONS"] {
            probe.passes(method, path);
        }
    }
    probe.check_upstreams(&stage);

    stage.push(&config("", "", ""));
    for path in ["/users", "/orders", "/"] {
        for method in METHODS {
            probe.passes(method, path);
        }
    }
    probe.check_upstreams(&stage);
}

fn maintenance_answers_every_request_but_allow_paths_with_the_configured_body(build: Build) {
    let body = "Down for the cutover. Back at 10:00 UTC.";
    let top = format!(
        r#", "mode": "maintenance", "retry_after_s": 120,
        "allow_paths": ["/healthz", "/users/healthz"], "maintenance_body": "{body}""#
    );
    let mut stage = Stage::ecds_with(build, &config(&top, "", ""), 2);
    let mut probe = Probe::new(&stage);
    for path in [
        "/users",
        "/orders",
        "/",
        "/healthz/x",
        "/healthzz",
        "/users/42",
    ] {
        for method in METHODS {
            let r = probe.refused(method, path, "120");
            if method != "HEAD" {
                assert_eq!(r.body_str(), body, "{method} {path}");
            }
        }
    }
    // Health checks pass: `/healthz` by the plain route, `/users/healthz`
    // through the split (a query does not change the path).
    for path in ["/healthz", "/healthz?probe=1", "/users/healthz"] {
        for method in ["GET", "HEAD", "POST"] {
            probe.passes(method, path);
        }
    }
    probe.check_upstreams(&stage);

    stage.push(&config("", "", ""));
    for path in ["/users", "/orders", "/", "/healthz"] {
        for method in METHODS {
            probe.passes(method, path);
        }
    }
    probe.check_upstreams(&stage);
}

fn a_splits_mode_wins_over_the_top_level_one(build: Build) {
    // Top level in maintenance; `users` normal, `orders` read-only with its
    // own Retry-After.
    let top = r#", "mode": "maintenance", "retry_after_s": 60"#;
    let mut stage = Stage::ecds_with(
        build,
        &config(
            top,
            r#", "mode": "normal""#,
            r#", "mode": "read_only", "retry_after_s": 5"#,
        ),
        2,
    );
    let mut probe = Probe::new(&stage);
    for method in METHODS {
        probe.passes(method, "/users");
    }
    for method in ["GET", "HEAD"] {
        probe.passes(method, "/orders");
    }
    for method in WRITES {
        let body = probe.refused_read_only(method, "/orders", "5");
        assert_eq!(body["split"], "orders", "{body}");
    }
    // No split takes `/`: the top-level maintenance, with the default body.
    let r = probe.refused("GET", "/", "60");
    let default: Value = serde_json::from_slice(&r.body).expect("default body is JSON");
    assert_eq!(default["error"], "maintenance", "{default}");
    probe.check_upstreams(&stage);

    // The other way round: top level normal, `users` in maintenance (the
    // top level's Retry-After is inherited).
    stage.push(&config(
        r#", "retry_after_s": 45"#,
        r#", "mode": "maintenance""#,
        "",
    ));
    for method in METHODS {
        probe.refused(method, "/users", "45");
        probe.passes(method, "/orders");
        probe.passes(method, "/");
    }
    probe.check_upstreams(&stage);

    // Back to normal everywhere.
    stage.push(&config("", "", ""));
    for path in ["/users", "/orders", "/"] {
        for method in METHODS {
            probe.passes(method, path);
        }
    }
    probe.check_upstreams(&stage);
}

integration::for_each_build!(
    read_only_refuses_writes_with_a_503_that_says_why_and_lets_reads_through,
    maintenance_answers_every_request_but_allow_paths_with_the_configured_body,
    a_splits_mode_wins_over_the_top_level_one,
);
