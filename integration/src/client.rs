//! A keep-alive HTTP/1.1 client for 127.0.0.1, over one `TcpStream`, that
//! sends header values as raw bytes (tests send non-UTF-8 on purpose) and
//! shows the response exactly as Envoy sent it. No HTTP crate: the point is
//! to control every byte on the wire.

use crate::http;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// A response: status, headers in order (names lowercased, values raw), body
/// (de-chunked).
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header called `name` (case-insensitive), lossily as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.header_bytes(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// The first header called `name` (case-insensitive), raw.
    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        http::find(&self.headers, name)
    }

    /// Every header called `name` (case-insensitive), lossily as text.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    /// The body, lossily as text.
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client for `127.0.0.1:<port>` that reuses its connection and opens a
/// new one when the server has closed it.
pub struct HttpClient {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
    timeout: Duration,
}

impl HttpClient {
    /// A client for `127.0.0.1:port`; it connects on the first request.
    pub fn new(port: u16) -> HttpClient {
        HttpClient {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            conn: None,
            timeout: Duration::from_secs(30),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// How long a connect, read or write may block before failing (30 s by
    /// default, so a test that waits on a broken proxy fails, not hangs).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
        self.conn = None;
    }

    /// Closes the connection; the next request opens a new one (which may
    /// land on another Envoy worker).
    pub fn close(&mut self) {
        self.conn = None;
    }

    /// Sends a request without a body. A `host` header is added unless one
    /// is given; header values are sent byte for byte.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &[u8])],
    ) -> io::Result<Response> {
        self.request_with_body(method, path, headers, &[])
    }

    /// Sends a request with `body` (framed by Content-Length, which is sent
    /// whenever the body is non-empty or the method usually carries one).
    pub fn request_with_body(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
    ) -> io::Result<Response> {
        let mut msg = format!("{method} {path} HTTP/1.1\r\n").into_bytes();
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
            msg.extend_from_slice(format!("host: 127.0.0.1:{}\r\n", self.port()).as_bytes());
        }
        for (name, value) in headers {
            msg.extend_from_slice(name.as_bytes());
            msg.extend_from_slice(b": ");
            msg.extend_from_slice(value);
            msg.extend_from_slice(b"\r\n");
        }
        if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
            msg.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
        }
        msg.extend_from_slice(b"\r\n");
        msg.extend_from_slice(body);

        let reused = self.conn.is_some();
        match self.exchange(&msg, method == "HEAD") {
            // The server closed an idle keep-alive connection just before
            // (or while) we sent: nothing was answered, so send it again once.
            Err((e, false)) if reused && is_stale(&e) => {
                self.exchange(&msg, method == "HEAD").map_err(|(e, _)| e)
            }
            other => other.map_err(|(e, _)| e),
        }
    }

    /// `GET path` with text headers; panics with context on an IO error.
    pub fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Response {
        let raw: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
        self.request("GET", path, &raw)
            .unwrap_or_else(|e| panic!("GET 127.0.0.1:{}{path} failed: {e}", self.port()))
    }

    /// `method path` with text headers and a body; panics on an IO error.
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let raw: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
        self.request_with_body(method, path, &raw, body)
            .unwrap_or_else(|e| panic!("{method} 127.0.0.1:{}{path} failed: {e}", self.port()))
    }

    /// One request/response on the current (or a new) connection. The error
    /// says whether any byte of a response had arrived.
    fn exchange(&mut self, msg: &[u8], head_only: bool) -> Result<Response, (io::Error, bool)> {
        let mut answered = false;
        let result = self.try_exchange(msg, head_only, &mut answered);
        if result.is_err() {
            self.conn = None;
        }
        result.map_err(|e| (e, answered))
    }

    fn try_exchange(
        &mut self,
        msg: &[u8],
        head_only: bool,
        answered: &mut bool,
    ) -> io::Result<Response> {
        if self.conn.is_none() {
            let stream = TcpStream::connect_timeout(&self.addr, self.timeout)?;
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(self.timeout))?;
            stream.set_write_timeout(Some(self.timeout))?;
            self.conn = Some(BufReader::new(stream));
        }
        let conn = self.conn.as_mut().expect("connected above");
        conn.get_mut().write_all(msg)?;
        *answered = !conn.fill_buf()?.is_empty();
        let head = loop {
            let head = http::read_head(conn)?.ok_or_else(|| {
                io::Error::new(
                    ErrorKind::UnexpectedEof,
                    "connection closed before a response",
                )
            })?;
            // Skip interim responses (100 Continue and the like).
            if !head
                .start_line
                .split(' ')
                .nth(1)
                .unwrap_or("")
                .starts_with('1')
            {
                break head;
            }
        };
        let status = head
            .start_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .filter(|_| head.start_line.starts_with("HTTP/1."))
            .ok_or_else(|| http::invalid(&format!("bad status line {:?}", head.start_line)))?;
        let close =
            head.has_token("connection", "close") || head.start_line.starts_with("HTTP/1.0");
        let body = if head_only || status == 204 || status == 304 {
            Vec::new()
        } else {
            match head.framing()? {
                Some(framing) => http::read_body(conn, framing)?,
                None => {
                    // Delimited by the server closing the connection.
                    let mut body = Vec::new();
                    conn.read_to_end(&mut body)?;
                    self.conn = None;
                    body
                }
            }
        };
        if close {
            self.conn = None;
        }
        Ok(Response {
            status,
            headers: head.headers,
            body,
        })
    }
}

fn is_stale(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::UnexpectedEof
            | ErrorKind::BrokenPipe
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
    )
}

/// `GET path` on an admin port, on a fresh connection: status and body.
/// Panics with context on an IO error.
pub fn admin_get(port: u16, path: &str) -> (u16, String) {
    try_admin_get(port, path)
        .unwrap_or_else(|e| panic!("admin GET 127.0.0.1:{port}{path} failed: {e}"))
}

pub(crate) fn try_admin_get(port: u16, path: &str) -> io::Result<(u16, String)> {
    let mut client = HttpClient::new(port);
    client.set_timeout(Duration::from_secs(10));
    let resp = client.request("GET", path, &[("connection", b"close")])?;
    Ok((resp.status, resp.body_str()))
}
