//! A named HTTP/1.1 test backend on 127.0.0.1 that answers every request
//! with its own name and the request headers it received, so a test can see
//! which cluster Envoy chose and what the filter added (decision header,
//! `traceparent`, ...). It can also be told to fail, hang or reset.

use crate::http;
use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// How an upstream answers. Per request, a header `x-test-status: <code>`
/// overrides the status and `x-test-delay-ms: <ms>` adds a delay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behavior {
    /// 200 with the echo body.
    Ok,
    /// This status with the echo body.
    Status(u16),
    /// Close the connection without answering (Envoy sees a reset).
    Reset,
    /// Wait, then answer 200.
    Delay(Duration),
}

/// A canned JSON answer for one path (see [`Upstream::answer`]).
#[derive(Clone, Debug)]
struct Canned {
    status: u16,
    body: String,
    delay: Duration,
    /// Requests answered so far (`{n}` in the body).
    served: u64,
}

struct Shared {
    name: String,
    behavior: Mutex<Behavior>,
    requests: AtomicU64,
    /// Requests marked `x-turnout-shadow: 1` (a shadow's copies).
    copies: AtomicU64,
    /// Canned answers by path (without the query).
    canned: Mutex<HashMap<String, Canned>>,
    /// The bodies of the copies received, in order.
    copy_bodies: Mutex<Vec<Vec<u8>>>,
    stopped: AtomicBool,
    /// Open connections, so that `Drop` can shut them down.
    conns: Mutex<HashMap<u64, TcpStream>>,
}

/// A running test backend; stops when dropped.
pub struct Upstream {
    shared: Arc<Shared>,
    port: u16,
    acceptor: Option<JoinHandle<()>>,
}

impl Upstream {
    /// Starts an upstream called `name` that answers 200.
    pub fn start(name: &str) -> Upstream {
        Upstream::start_with(name, Behavior::Ok)
    }

    /// Starts an upstream called `name` that answers as `behavior` says.
    pub fn start_with(name: &str, behavior: Behavior) -> Upstream {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        Upstream::serve_on(listener, name, behavior)
    }

    /// Starts an upstream called `name` that answers 200 on the fixed port
    /// `127.0.0.1:port` (for `cargo demo`, whose Envoy config names its
    /// ports). Fails if the port is taken.
    pub fn start_on(name: &str, port: u16) -> std::io::Result<Upstream> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
        Ok(Upstream::serve_on(listener, name, Behavior::Ok))
    }

    fn serve_on(listener: TcpListener, name: &str, behavior: Behavior) -> Upstream {
        let port = listener.local_addr().expect("local addr").port();
        let shared = Arc::new(Shared {
            name: name.to_string(),
            behavior: Mutex::new(behavior),
            requests: AtomicU64::new(0),
            copies: AtomicU64::new(0),
            canned: Mutex::new(HashMap::new()),
            copy_bodies: Mutex::new(Vec::new()),
            stopped: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
        });
        let accept_shared = shared.clone();
        let acceptor = thread::Builder::new()
            .name(format!("upstream-{name}"))
            .spawn(move || accept_loop(listener, accept_shared))
            .expect("spawn upstream thread");
        Upstream {
            shared,
            port,
            acceptor: Some(acceptor),
        }
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Requests received so far (counted before answering, so also those
    /// answered by a reset).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Requests received marked `x-turnout-shadow: 1`.
    pub fn copies(&self) -> u64 {
        self.shared.copies.load(Ordering::SeqCst)
    }

    /// The bodies of the copies received (requests marked
    /// `x-turnout-shadow: 1`), in order.
    pub fn copy_bodies(&self) -> Vec<Vec<u8>> {
        self.shared
            .copy_bodies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Answers `path` (without its query) with `status` and the JSON
    /// `body` after `delay`, instead of the echo. `{n}` in the body is the
    /// number of requests this path was answered before (a field that
    /// changes on every call).
    pub fn answer(&self, path: &str, status: u16, body: &str, delay: Duration) {
        let canned = Canned {
            status,
            body: body.to_string(),
            delay,
            served: 0,
        };
        self.shared
            .canned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.to_string(), canned);
    }

    /// Changes how later requests are answered.
    pub fn set_behavior(&self, behavior: Behavior) {
        *self
            .shared
            .behavior
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = behavior;
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        // Wake the blocked accept() with a connection of our own; join only
        // if that worked, so that drop can never hang.
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        if TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
            if let Some(acceptor) = self.acceptor.take() {
                let _ = acceptor.join();
            }
        }
        for conn in self
            .shared
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
        {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut next_id = 0u64;
    for stream in listener.incoming() {
        if shared.stopped.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let id = next_id;
        next_id += 1;
        if let Ok(clone) = stream.try_clone() {
            shared
                .conns
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id, clone);
        }
        let conn_shared = shared.clone();
        let spawned = thread::Builder::new()
            .name(format!("upstream-{}-{id}", shared.name))
            .spawn(move || {
                serve(stream, &conn_shared);
                conn_shared
                    .conns
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id);
            });
        if spawned.is_err() {
            shared
                .conns
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        }
    }
}

/// Serves requests on one keep-alive connection until either side closes.
fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let mut conn = BufReader::new(stream);
    while !shared.stopped.load(Ordering::SeqCst) {
        let Ok(Some(head)) = http::read_head(&mut conn) else {
            return;
        };
        // Read the request body so the next request parses (a copy's is kept).
        let body = match head.framing() {
            Ok(Some(framing)) => http::read_body(&mut conn, framing),
            Ok(None) => Ok(Vec::new()),
            Err(e) => Err(e),
        };
        let Ok(body) = body else { return };
        if shared.stopped.load(Ordering::SeqCst) {
            return;
        }
        shared.requests.fetch_add(1, Ordering::SeqCst);
        if head.get("x-turnout-shadow") == Some(&b"1"[..]) {
            shared.copies.fetch_add(1, Ordering::SeqCst);
            let mut bodies = shared.copy_bodies.lock().unwrap_or_else(|e| e.into_inner());
            bodies.push(body);
        }
        if let Some(answer) = canned(shared, &head) {
            thread::sleep(answer.delay);
            if conn.get_mut().write_all(&answer.bytes).is_err() {
                return;
            }
            continue;
        }

        let behavior = *shared.behavior.lock().unwrap_or_else(|e| e.into_inner());
        let mut status = 200;
        match behavior {
            Behavior::Ok => {}
            Behavior::Status(s) => status = s,
            Behavior::Delay(d) => thread::sleep(d),
            Behavior::Reset => {
                let _ = conn.get_ref().shutdown(Shutdown::Both);
                return;
            }
        }
        if let Some(s) = header_number(&head, "x-test-status") {
            status = s as u16;
        }
        if let Some(ms) = header_number(&head, "x-test-delay-ms") {
            thread::sleep(Duration::from_millis(ms));
        }

        let close = head.has_token("connection", "close");
        let mut body = format!("{}\n", shared.name);
        for (name, value) in &head.headers {
            body.push_str(&format!("{name}: {}\n", String::from_utf8_lossy(value)));
        }
        let mut resp = format!(
            "HTTP/1.1 {status} {}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nx-upstream: {}\r\n{}\r\n",
            reason(status),
            body.len(),
            shared.name,
            if close { "connection: close\r\n" } else { "" },
        )
        .into_bytes();
        if !head.start_line.starts_with("HEAD ") {
            resp.extend_from_slice(body.as_bytes());
        }
        if conn.get_mut().write_all(&resp).is_err() || close {
            return;
        }
    }
}

/// A canned answer's delay and bytes, if the request's path has one.
struct Answer {
    delay: Duration,
    bytes: Vec<u8>,
}

fn canned(shared: &Shared, head: &http::Head) -> Option<Answer> {
    let target = head.start_line.split(' ').nth(1)?;
    let path = target.split('?').next()?;
    let mut canned = shared.canned.lock().unwrap_or_else(|e| e.into_inner());
    let answer = canned.get_mut(path)?;
    let body = answer.body.replace("{n}", &answer.served.to_string());
    answer.served += 1;
    let mut bytes = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-upstream: {}\r\n\r\n",
        answer.status,
        reason(answer.status),
        body.len(),
        shared.name,
    )
    .into_bytes();
    if !head.start_line.starts_with("HEAD ") {
        bytes.extend_from_slice(body.as_bytes());
    }
    Some(Answer {
        delay: answer.delay,
        bytes,
    })
}

fn header_number(head: &http::Head, name: &str) -> Option<u64> {
    std::str::from_utf8(head.get(name)?)
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Test",
    }
}
