//! Plain HTTP/1.1 `GET`, for what turnoutctl asks of other servers:
//! Prometheus' query API and Envoy's admin `/stats/prometheus` (the rollout
//! controller), and `turnoutctl serve`'s `/status` and `/wait` (`status`,
//! and the controller's waits for ACKs). No redirects, and TLS only for
//! `serve` under mutual TLS (the caller gives its rustls client config):
//! the others are reached on a local or cluster-internal port (put a local
//! proxy in front of anything else).
//!
//! The client is hyper's (`hyper::client::conn::http1`), and URLs are read
//! by its `Uri`: both are already linked for tonic, so they add no crate to
//! the tree, where `ureq` would add its own HTTP stack and `url` the IDNA
//! tables. hyper does the framing (`Content-Length`, chunks, the close);
//! what is left here is the blocking shape the callers want (they are plain
//! threads), our error messages, and the checks on a configured address.

use std::fmt;
use std::time::Duration;

use std::sync::Arc;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::header::{ACCEPT_ENCODING, CONNECTION, HOST, USER_AGENT};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::timeout as within;
use tokio_rustls::TlsConnector;

/// A response body larger than this is refused (a full Envoy
/// `/stats/prometheus` is a few hundred KB).
const MAX_BODY: usize = 64 << 20;

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
        let uri: Uri = text
            .parse()
            .map_err(|e| format!("{text:?} is not a URL: {e}"))?;
        match uri.scheme_str() {
            Some(scheme) if scheme.eq_ignore_ascii_case("http") => {}
            Some(scheme) => {
                return Err(format!(
                    "{text:?}: {scheme}:// is not supported; give an http:// address (a local port or a proxy)"
                ))
            }
            None => return Err(format!("{text:?} is not an http:// URL")),
        }
        // `Uri` accepts a user in the authority and drops a fragment;
        // neither has a meaning for a base address.
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
        if uri.query().is_some() || authority.contains('@') || text.contains('#') {
            return Err(format!(
                "{text:?}: give scheme, host, port and path only (no query, fragment or user)"
            ));
        }
        let bracketed = uri.host().unwrap_or_default();
        // `Uri` keeps an IPv6 host's brackets; `Url` holds the address.
        let host = bracketed
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(bracketed);
        if host.is_empty() {
            return Err(format!("{text:?} has no host"));
        }
        // `Uri::port` is `None` for a port that is not a number too, so
        // the port is read from what follows the host.
        let port = match authority
            .strip_prefix(bracketed)
            .and_then(|rest| rest.strip_prefix(':'))
        {
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
            base: uri.path().trim_end_matches('/').to_string(),
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

/// Why a `GET` failed; each with its whole message.
#[derive(Debug)]
pub enum Failure {
    /// No connection: the server is not there (or not in time).
    Unreachable(String),
    /// TLS failed: the server refused this client (its certificate, or a
    /// plain request where it wants TLS), or the server's certificate is
    /// not one the client trusts.
    Refused(String),
    /// Connected, but what came back is not HTTP (as a TLS port answers
    /// a plain request: with a TLS alert, or by hanging up).
    NotHttp(String),
    /// Connected, but the exchange failed or the answer is not usable.
    Exchange(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Unreachable(m)
            | Failure::Refused(m)
            | Failure::NotHttp(m)
            | Failure::Exchange(m) => f.write_str(m),
        }
    }
}

/// `GET base + path_and_query`: the body of a 200, or what went wrong.
/// `timeout` bounds the connect, then the whole exchange (a server that
/// holds the answer, as `/wait` does, needs a timeout longer than its hold).
pub fn get(url: &Url, path_and_query: &str, timeout: Duration) -> Result<String, String> {
    get_over(url, path_and_query, timeout, None).map_err(|f| f.to_string())
}

/// [`get`], over TLS with `tls` when given (the server's certificate
/// checked for the URL's host: a DNS name or an IP address).
pub fn get_over(
    url: &Url,
    path_and_query: &str,
    timeout: Duration,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<String, Failure> {
    // One small runtime a call: the callers are plain threads that ask a
    // few times a second at most, and a runtime of one thread costs far
    // less to build than the request it carries.
    let scheme = if tls.is_some() { "https" } else { "http" };
    let shown = format!("{scheme}://{}{}", url.authority(), url.base);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Exchange(format!("GET {shown}{path_and_query}: no runtime: {e}")))?;
    let authority = url.authority();
    runtime
        .block_on(connect(url, path_and_query, timeout, tls))
        .map_err(|failure| match failure {
            Failure::Unreachable(e) => Failure::Unreachable(format!(
                "cannot reach the server at {authority} (GET {path_and_query}): {e}"
            )),
            Failure::Refused(e) => {
                Failure::Refused(format!("TLS with the server at {authority} failed: {e}"))
            }
            Failure::NotHttp(e) => Failure::NotHttp(format!(
                "the server at {authority} answered GET {path_and_query} with no HTTP ({e})"
            )),
            Failure::Exchange(e) => Failure::Exchange(format!("GET {shown}{path_and_query}: {e}")),
        })
}

/// Connects (and makes the TLS handshake), then [`exchange`].
async fn connect(
    url: &Url,
    path_and_query: &str,
    timeout: Duration,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<String, Failure> {
    let stream = within(timeout, TcpStream::connect((url.host.as_str(), url.port)))
        .await
        .map_err(|_| Failure::Unreachable("connection timed out".into()))?
        .map_err(|e| Failure::Unreachable(e.to_string()))?;
    let Some(config) = tls else {
        return exchange(stream, url, path_and_query, timeout).await;
    };
    let name = ServerName::try_from(url.host.clone())
        .map_err(|e| Failure::Exchange(format!("{:?} is not a host name: {e}", url.host)))?;
    let handshake = TlsConnector::from(config.clone()).connect(name, stream);
    let session = within(timeout, handshake)
        .await
        .map_err(|_| Failure::Refused("no TLS handshake within the timeout".into()))?
        .map_err(|e| Failure::Refused(tls_failure(&e).unwrap_or_else(|| e.to_string())))?;
    exchange(session, url, path_and_query, timeout).await
}

/// One request on its own connection (`Connection: close`).
async fn exchange<Io>(
    io: Io,
    url: &Url,
    path_and_query: &str,
    timeout: Duration,
) -> Result<String, Failure>
where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let answer = async {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| failed(&e))?;
        // The connection is driven beside the request; it ends with the
        // response, as the server closes it.
        tokio::spawn(connection);
        let request = Request::get(format!("{}{path_and_query}", url.base))
            .header(HOST, url.authority())
            .header(USER_AGENT, "turnoutctl")
            .header(ACCEPT_ENCODING, "identity")
            .header(CONNECTION, "close")
            .body(Empty::<Bytes>::new())
            .map_err(|e| failed(&e))?;
        let response = sender.send_request(request).await.map_err(|e| {
            if e.is_parse() || e.is_incomplete_message() {
                Failure::NotHttp(e.to_string())
            } else {
                failed(&e)
            }
        })?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| failed(&*e))?
            .to_bytes();
        let body = String::from_utf8(body.to_vec())
            .map_err(|_| Failure::Exchange("the body is not UTF-8".into()))?;
        if status != 200 {
            let first: String = body.chars().take(200).collect();
            return Err(Failure::Exchange(format!(
                "status {status}: {}",
                first.trim()
            )));
        }
        Ok(body)
    };
    within(timeout, answer)
        .await
        .map_err(|_| Failure::Exchange(format!("no whole answer within {timeout:?}")))?
}

/// An exchange's error: `Refused` when TLS is why (the server's alert
/// after the handshake, as TLS 1.3 sends a refusal of the client's
/// certificate), `Exchange` otherwise.
fn failed(error: &(dyn std::error::Error + 'static)) -> Failure {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(why) = e.downcast_ref::<std::io::Error>().and_then(tls_failure) {
            return Failure::Refused(why);
        }
        cause = e.source();
    }
    Failure::Exchange(error.to_string())
}

/// What TLS says went wrong, when it is TLS: the other side's alert (its
/// refusal of this client's certificate), or our refusal of its.
fn tls_failure(error: &std::io::Error) -> Option<String> {
    let tls = error.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(match tls {
        rustls::Error::AlertReceived(_) => format!("it refused this client ({tls})"),
        rustls::Error::InvalidCertificate(_) => {
            format!("its certificate is not one this client trusts ({tls})")
        }
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

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
            "http://x/#top",
            "http://user@x:1",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Url::parse("https://p:9090").unwrap_err(),
            "\"https://p:9090\": https:// is not supported; give an http:// address (a local port or a proxy)"
        );
    }

    /// A server on a loopback port that answers one connection with `raw`
    /// and hands back the request it read.
    fn answer_once(raw: &'static [u8]) -> (Url, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap() == 1 {
                head.push(byte[0]);
            }
            stream.write_all(raw).unwrap();
            String::from_utf8(head).unwrap()
        });
        let url = Url::parse(&format!("http://127.0.0.1:{port}/base")).unwrap();
        (url, server)
    }

    #[test]
    fn responses_are_deframed() {
        let t = Duration::from_secs(5);
        let (url, server) =
            answer_once(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello and more");
        assert_eq!(get(&url, "/x?q=1", t).unwrap(), "hello");
        let head = server.join().unwrap().to_ascii_lowercase();
        assert!(head.starts_with("get /base/x?q=1 http/1.1\r\n"), "{head}");
        assert!(head.contains("\r\nconnection: close\r\n"), "{head}");

        let (url, _) = answer_once(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
        assert_eq!(get(&url, "/", t).unwrap(), "hello world");
        // Framed by the close.
        let (url, _) = answer_once(b"HTTP/1.0 200 OK\r\n\r\nuntil the end");
        assert_eq!(get(&url, "/", t).unwrap(), "until the end");

        let (url, _) = answer_once(b"HTTP/1.0 503 Service Unavailable\r\n\r\nbusy");
        let e = get(&url, "/", t).unwrap_err();
        assert!(e.ends_with("/base/: status 503: busy"), "{e}");
        let (url, _) = answer_once(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort");
        assert!(get(&url, "/", t).is_err());
        let (url, _) =
            answer_once(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel");
        assert!(get(&url, "/", t).is_err());
        let (url, _) = answer_once(b"garbage\r\n\r\n");
        assert!(get(&url, "/", t).is_err());
        let (url, _) = answer_once(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n\xff\xfe");
        assert!(get(&url, "/", t)
            .unwrap_err()
            .ends_with("the body is not UTF-8"));
    }

    #[test]
    fn an_unreachable_server_says_so() {
        // Port 1 on loopback: nothing listens there.
        let url = Url::parse("http://127.0.0.1:1").unwrap();
        let e = get(&url, "/status", Duration::from_secs(5)).unwrap_err();
        assert!(
            e.starts_with("cannot reach the server at 127.0.0.1:1 (GET /status): "),
            "{e}"
        );
    }
}
