//! Plain HTTP/1.1 `GET` over a `TcpStream`, for what turnoutctl asks of
//! other servers: Prometheus' query API and Envoy's admin
//! `/stats/prometheus` (the rollout controller), and `turnoutctl serve`'s
//! `/status` and `/wait` (`status`, and the controller's waits for ACKs).
//! One request per connection (`Connection: close`); the body is framed by
//! `Content-Length`, by chunks or by the close. No TLS and no redirects:
//! these servers are reached on a local or cluster-internal port (put a
//! local proxy in front of anything else). A whole HTTP client crate would
//! bring an async runtime or a TLS stack for a few small requests a second.

use std::fmt;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// A response body larger than this is refused (a full Envoy
/// `/stats/prometheus` is a few hundred KB).
const MAX_BODY: u64 = 64 << 20;

/// An `http://host[:port][/base]` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    /// The path prefix, without a trailing `/` (`""` for the root).
    pub base: String,
}

impl Url {
    /// Parses `http://host[:port][/base]`; IPv6 hosts in brackets.
    pub fn parse(text: &str) -> Result<Url, String> {
        let rest = match text.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => {
                return Err(format!(
                    "{text:?}: {scheme}:// is not supported; give an http:// address (a local port or a proxy)"
                ))
            }
            None => return Err(format!("{text:?} is not an http:// URL")),
        };
        if rest.contains(['?', '#', '@']) {
            return Err(format!(
                "{text:?}: give scheme, host, port and path only (no query, fragment or user)"
            ));
        }
        let (authority, base) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (host, after) = v6
                    .split_once(']')
                    .ok_or_else(|| format!("{text:?}: unclosed [ in the host"))?;
                (host, after.strip_prefix(':'))
            }
            None => match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        if host.is_empty() {
            return Err(format!("{text:?} has no host"));
        }
        let port = match port {
            None => 80,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| format!("{text:?}: {p:?} is not a port"))?,
        };
        Ok(Url {
            host: host.to_string(),
            port,
            base: base.to_string(),
        })
    }

    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority(), self.base)
    }
}

/// `GET base + path_and_query`: the body of a 200, or what went wrong.
/// `timeout` bounds the connect and each read (a server that holds the
/// answer, as `/wait` does, needs a timeout longer than its hold).
pub fn get(url: &Url, path_and_query: &str, timeout: Duration) -> Result<String, String> {
    let target = format!("{}{path_and_query}", url.base);
    let fail = |what: String| format!("GET {url}{path_and_query}: {what}");
    let mut stream = connect(url, timeout).map_err(|e| {
        format!(
            "cannot reach the server at {} (GET {path_and_query}): {e}",
            url.authority()
        )
    })?;
    let raw = exchange(&mut stream, url, &target, timeout).map_err(|e| fail(e.to_string()))?;
    let (status, body) = parse_response(&raw).map_err(fail)?;
    let body = String::from_utf8(body).map_err(|_| fail("the body is not UTF-8".into()))?;
    if status != 200 {
        let first: String = body.chars().take(200).collect();
        return Err(fail(format!("status {status}: {}", first.trim())));
    }
    Ok(body)
}

/// A connection to the first of the host's addresses that takes one.
fn connect(url: &Url, timeout: Duration) -> std::io::Result<TcpStream> {
    let mut last = None;
    let mut stream = None;
    for addr in (url.host.as_str(), url.port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    match (stream, last) {
        (Some(s), _) => Ok(s),
        (None, Some(e)) => Err(e),
        (None, None) => Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "the host has no address",
        )),
    }
}

/// Sends the request and reads until the server closes the connection.
fn exchange(
    stream: &mut TcpStream,
    url: &Url,
    target: &str,
    timeout: Duration,
) -> std::io::Result<Vec<u8>> {
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let request = format!(
        "GET {target} HTTP/1.1\r\nhost: {}\r\nuser-agent: turnoutctl\r\naccept-encoding: identity\r\nconnection: close\r\n\r\n",
        url.authority()
    );
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.take(MAX_BODY).read_to_end(&mut raw)?;
    Ok(raw)
}

/// The status and the de-framed body of a whole response.
fn parse_response(raw: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("the response ended inside its head")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "the response head is not text")?;
    let body = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|s| s.get(2..5))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    };
    if header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        return Ok((status, dechunk(body)?));
    }
    match header("content-length") {
        Some(n) => {
            let n: usize = n.parse().map_err(|_| format!("bad content-length {n:?}"))?;
            let body = body
                .get(..n)
                .ok_or("the body is shorter than its content-length")?;
            Ok((status, body.to_vec()))
        }
        None => Ok((status, body.to_vec())),
    }
}

/// The data of a chunked body.
fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("a chunk size line is cut")?;
        let line = std::str::from_utf8(&body[..line_end]).map_err(|_| "bad chunk size")?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = body.get(..size).ok_or("a chunk is cut")?;
        out.extend_from_slice(chunk);
        body = body.get(size + 2..).ok_or("a chunk is cut")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_and_without_port_and_base() {
        let u = Url::parse("http://127.0.0.1:9090").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.base.as_str()),
            ("127.0.0.1", 9090, "")
        );
        let u = Url::parse("HTTP://prom.internal/prometheus/").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.base.as_str()),
            ("prom.internal", 80, "/prometheus")
        );
        assert_eq!(u.to_string(), "http://prom.internal:80/prometheus");
        let u = Url::parse("http://[::1]:9901").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9901));
        assert_eq!(u.to_string(), "http://[::1]:9901");
        for bad in [
            "https://x:1",
            "127.0.0.1:9090",
            "http://:80",
            "http://x:0",
            "http://x:port",
            "http://x/?q=1",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn responses_are_deframed() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello and more";
        assert_eq!(parse_response(r).unwrap(), (200, b"hello".to_vec()));
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        assert_eq!(parse_response(r).unwrap(), (200, b"hello world".to_vec()));
        let r = b"HTTP/1.0 503 Service Unavailable\r\n\r\nbusy";
        assert_eq!(parse_response(r).unwrap(), (503, b"busy".to_vec()));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort").is_err());
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")
                .is_err()
        );
        assert!(parse_response(b"garbage").is_err());
    }
}
