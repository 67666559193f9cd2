//! The decision path on the host, fed exactly what the shell gets from
//! Envoy: the request header map serialized in the proxy-wasm ABI's format,
//! and the matched route's name.

use turnout::decide::RequestFacts;
use turnout::plan::Plan;
use turnout::wire;

/// A configuration like the load benchmark's turnout (pins, force header,
/// header then cookie key), with `splits` splits matched by route name
/// `route-0` … `route-{splits-1}`; the last one is the request's, so a
/// request scans every split before it finds its own.
pub fn config(splits: usize) -> String {
    let splits: Vec<String> = (0..splits)
        .map(|i| {
            format!(
                r#"{{"name": "split-{i}", "match": {{"route": "route-{i}"}}, "stable": "legacy",
                "targets": [{{"cluster": "fastapi", "weight": 50}}],
                "pin": {{"fastapi": ["qa-1", "qa-2"]}}, "force_header": "x-turnout-force"}}"#
            )
        })
        .collect();
    format!(
        r#"{{"version": 1, "user_key": [{{"header": "x-user-id"}}, {{"cookie": "uid"}}],
        "splits": [{}]}}"#,
        splits.join(",")
    )
}

/// The plan of [`config`].
pub fn plan(splits: usize) -> Plan {
    turnout::config::parse(config(splits).as_bytes()).expect("the benchmark config is valid")
}

/// Where a request carries its user key.
#[derive(Clone, Copy, Debug)]
pub enum KeyIn {
    /// `x-user-id: <key>`.
    Header,
    /// A `cookie` header of 20 cookies, `uid=<key>` the last of them.
    Cookie20,
}

/// The request headers of a browser-like request as Envoy's worker holds
/// them when the filter runs (pseudo-headers first, then the client's, then
/// what the connection manager adds), serialized for the ABI.
pub fn request_headers(user: &str, key_in: KeyIn) -> Vec<u8> {
    let mut headers: Vec<(String, String)> = [
        (":authority", "shop.example.com"),
        (":path", "/users/42/orders?page=2"),
        (":method", "GET"),
        (":scheme", "http"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        ("accept", "application/json"),
        ("accept-language", "en-GB,en;q=0.5"),
        ("accept-encoding", "gzip, deflate, br"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect();
    match key_in {
        KeyIn::Header => headers.push(("x-user-id".into(), user.into())),
        KeyIn::Cookie20 => {
            let mut cookies: Vec<String> = (0..19)
                .map(|i| format!("pref{i}=v{i}-0123456789abcdef"))
                .collect();
            cookies.push(format!("uid={user}"));
            headers.push(("cookie".into(), cookies.join("; ")));
        }
    }
    headers.push(("x-forwarded-proto".into(), "http".into()));
    headers.push((
        "x-request-id".into(),
        "6b3a1f0e-9a57-4c1e-8a52-1d2e3f405162".into(),
    ));
    wire::serialize(&headers)
}

/// One request as the shell sees it: the serialized header map and the
/// route name, answered the way `shell::host::Host` answers (a lookup in
/// place, lent out).
pub struct WireRequest<'a> {
    pub headers: &'a [u8],
    pub route_name: &'a [u8],
}

impl RequestFacts for WireRequest<'_> {
    fn route_name(&self) -> Option<&[u8]> {
        Some(self.route_name)
    }
    fn path(&self) -> Option<&[u8]> {
        self.header(":path")
    }
    fn method(&self) -> Option<&[u8]> {
        self.header(":method")
    }
    fn header(&self, name: &str) -> Option<&[u8]> {
        wire::find(self.headers, name.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use turnout::bucket::Bucket;
    use turnout::decide::{evaluate, Reason, Verdict};

    #[test]
    fn the_benchmark_requests_decide_by_their_key() {
        for splits in [1, 50] {
            let plan = plan(splits);
            let active = plan.weights_at(0);
            let route = format!("route-{}", splits - 1);
            for key_in in [KeyIn::Header, KeyIn::Cookie20] {
                let headers = request_headers("user-7", key_in);
                let request = WireRequest {
                    headers: &headers,
                    route_name: route.as_bytes(),
                };
                let Verdict::Route(d) = evaluate(&plan, &active, &request, || 0) else {
                    panic!("no decision for {key_in:?}");
                };
                assert_eq!((d.split, d.reason), (splits - 1, Reason::Bucket));
                let bucket = Bucket::of(format!("split-{}", splits - 1).as_bytes(), b"user-7");
                assert_eq!(d.bucket, Some(bucket));
            }
        }
    }
}
