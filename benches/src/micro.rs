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
    serialize(&headers)
}

/// A header map in the proxy-wasm ABI's serialization: a `u32` count, the
/// `(name length, value length)` pairs, then each name and value with a NUL.
pub fn serialize(headers: &[(String, String)]) -> Vec<u8> {
    let len = |s: &String| u32::try_from(s.len()).expect("a header fits in u32");
    let count = u32::try_from(headers.len()).expect("few headers");
    let mut out = count.to_le_bytes().to_vec();
    for (n, v) in headers {
        out.extend(len(n).to_le_bytes());
        out.extend(len(v).to_le_bytes());
    }
    for (n, v) in headers {
        out.extend(n.as_bytes());
        out.push(0);
        out.extend(v.as_bytes());
        out.push(0);
    }
    out
}

/// One request as the shell sees it: the serialized header map and the
/// route name, answered the way `shell::host::Host` answers (a lookup in
/// place, copied out).
pub struct WireRequest<'a> {
    pub headers: &'a [u8],
    pub route_name: &'a [u8],
}

impl RequestFacts for WireRequest<'_> {
    fn route_name(&mut self) -> Option<Vec<u8>> {
        Some(self.route_name.to_vec())
    }
    fn path(&mut self) -> Option<Vec<u8>> {
        self.header(":path")
    }
    fn method(&mut self) -> Option<Vec<u8>> {
        self.header(":method")
    }
    fn header(&mut self, name: &str) -> Option<Vec<u8>> {
        wire::find(self.headers, name.as_bytes()).map(<[u8]>::to_vec)
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
                let mut request = WireRequest {
                    headers: &headers,
                    route_name: route.as_bytes(),
                };
                let Verdict::Route(d) = evaluate(&plan, &active, &mut request, || 0) else {
                    panic!("no decision for {key_in:?}");
                };
                assert_eq!((d.split, d.reason), (splits - 1, Reason::Bucket));
                let bucket = Bucket::of(format!("split-{}", splits - 1).as_bytes(), b"user-7");
                assert_eq!(d.bucket, Some(bucket));
            }
        }
    }
}

/// A proposal for `turnout::keys::cookie` (the core's, not changed here):
/// the same result, but a pair is looked at only if it starts with the
/// name, so the 19 other cookies of a 20-cookie header cost a byte compare
/// each instead of two trims and a search for `=`. Assumes what the config
/// guarantees of a cookie name: a token (no `=`, `;`, space or tab).
/// Measured beside the core's in `micro/decide.rs` (`parts/cookie20_*`).
pub fn cookie_by_prefix<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let is_space = |b: &u8| *b == b' ' || *b == b'\t';
    let mut rest = header;
    loop {
        let end = find_semicolon(rest);
        let pair = &rest[..end];
        if let Some(value) = (|| {
            let start = pair.iter().position(|b| !is_space(b))?;
            let after_name = pair[start..].strip_prefix(name)?;
            let after = &after_name[after_name.iter().position(|b| !is_space(b))?..];
            let value = after.strip_prefix(b"=")?;
            let from = value
                .iter()
                .position(|b| !is_space(b))
                .unwrap_or(value.len());
            let to = value
                .iter()
                .rposition(|b| !is_space(b))
                .map_or(from, |e| e + 1);
            let value = &value[from..to.max(from)];
            Some(match value {
                [b'"', inner @ .., b'"'] => inner,
                _ => value,
            })
        })() {
            return Some(value);
        }
        if end == rest.len() {
            return None;
        }
        rest = &rest[end + 1..];
    }
}

/// The index of the first `;` in `bytes` (or its length), eight bytes at a
/// time.
fn find_semicolon(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let pattern = ONES * u64::from(b';');
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[at..at + 8]);
        let x = u64::from_le_bytes(word) ^ pattern;
        let found = x.wrapping_sub(ONES) & !x & HIGHS;
        if found != 0 {
            return at + (found.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    at + bytes[at..]
        .iter()
        .position(|&b| b == b';')
        .unwrap_or(bytes.len() - at)
}

#[cfg(test)]
mod proposal_tests {
    use super::cookie_by_prefix;
    use turnout::keys::cookie;

    #[test]
    fn the_prefix_cookie_finder_agrees_with_the_core() {
        let headers: &[&[u8]] = &[
            b"uid=42",
            b"a=1; uid=42; b=2",
            b"a=1;uid=42",
            b"  uid = 42 ;",
            b"uid=\"42\"",
            b"uid=a=b",
            b"xuid=1; uidx=2; UID=3",
            b"uid=first; uid=second",
            b"garbage; ;;=; =x; uid=7",
            b"",
            b";;;;",
            b"uid",
            b"uid=",
            b"uid=\"",
            b"uid\t=\t\"x\"\t",
            b"uidx=1; uid =2",
            b"a=\xff\xfe; uid=\xc3\x28",
            b"u=1; ui=2; uid",
            b"uid ; uid=3",
        ];
        for h in headers {
            for name in [&b"uid"[..], b"a", b"u"] {
                assert_eq!(
                    cookie_by_prefix(h, name),
                    cookie(h, name),
                    "{:?} {:?}",
                    String::from_utf8_lossy(h),
                    String::from_utf8_lossy(name)
                );
            }
        }
    }
}
