//! Asking a running server: `turnoutctl status`, and the calls the rollout
//! controller makes in-process (`status`, `wait_acked`). Plain HTTP/1.1
//! GETs over a std `TcpStream`: the answers are small JSON documents, and
//! a blocking caller needs no runtime.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::catalog::resource_name;
use super::version_of;
use super::wait::{Verdict, Want};
use crate::fail::Fail;

/// How long connecting and a plain request may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The status document (see status.rs) of the server at `server`
/// (`HOST:PORT`, optionally with `http://`).
pub fn status(server: &str) -> Result<Value, String> {
    let body = get(server, "/status", TIMEOUT)?;
    serde_json::from_str(&body).map_err(|e| format!("{server}/status: not JSON: {e}"))
}

/// Waits up to `timeout` until every proxy subscribed to `want.resource`
/// (at least `want.proxies`) has ACKed `want.version`; the server's
/// verdict: `Acked`, `Nacked` (a proxy refused it; Envoy's message),
/// `Refused` (the server refused that file), `Superseded` (the file changed
/// again), or `Waiting` (timed out). `Err` only when the server cannot be
/// asked.
pub fn wait_acked(server: &str, want: &Want, timeout: Duration) -> Result<Verdict, String> {
    let path = format!(
        "/wait?resource={}&version={}&proxies={}&timeout_ms={}",
        want.resource,
        want.version,
        want.proxies,
        timeout.as_millis()
    );
    let body = get(server, &path, timeout + TIMEOUT)?;
    let doc: Value =
        serde_json::from_str(&body).map_err(|e| format!("{server}/wait: not JSON: {e}"))?;
    Verdict::from_json(&doc)
}

/// What `turnoutctl status` waits for, if anything.
pub enum Wait {
    Version {
        resource: String,
        version: String,
    },
    /// The version the server will serve for this file as it is now.
    File(std::path::PathBuf),
}

/// `turnoutctl status`: the table (or `--json`), or with a wait, its verdict.
pub fn run(
    server: &str,
    json: bool,
    wait: Option<Wait>,
    proxies: usize,
    timeout: Duration,
) -> Result<(), Fail> {
    let Some(wait) = wait else {
        let doc = status(server).map_err(Fail::Usage)?;
        if json {
            outln!("{doc:#}");
        } else {
            out!("{}", super::status::table(&doc));
        }
        return Ok(());
    };
    let (resource, version) = match wait {
        Wait::Version { resource, version } => (resource, version),
        Wait::File(path) => of_file(&path)?,
    };
    let want = Want {
        resource,
        version,
        proxies,
    };
    let verdict = wait_acked(server, &want, timeout).map_err(Fail::Usage)?;
    if json {
        outln!("{:#}", verdict.to_json(&want));
    }
    match verdict {
        Verdict::Acked { .. } => {
            if !json {
                outln!("{}", verdict.message(&want));
            }
            Ok(())
        }
        other => Err(Fail::Refused(other.message(&want))),
    }
}

/// The resource and version a file in the served directory stands for.
fn of_file(path: &Path) -> Result<(String, String), Fail> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let resource = resource_name(&name).ok_or_else(|| {
        Fail::Usage(format!(
            "{}: the server serves NAME.json files only",
            path.display()
        ))
    })?;
    let bytes = std::fs::read(path)
        .map_err(|e| Fail::Usage(format!("cannot read {}: {e}", path.display())))?;
    Ok((resource.to_string(), version_of(&bytes)))
}

/// `GET path` on `server`; the body of a 200 answer.
fn get(server: &str, path: &str, timeout: Duration) -> Result<String, String> {
    let host = server.trim_start_matches("http://").trim_end_matches('/');
    let fail = |e: std::io::Error| format!("cannot reach the server at {host}: {e}");
    let addr = host
        .to_socket_addrs()
        .map_err(fail)?
        .next()
        .ok_or_else(|| format!("{host}: no address"))?;
    let mut conn = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(fail)?;
    conn.set_read_timeout(Some(timeout)).map_err(fail)?;
    conn.set_write_timeout(Some(TIMEOUT)).map_err(fail)?;
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"
    )
    .map_err(fail)?;
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).map_err(fail)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{host}{path}: not an HTTP answer"))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let code = head.split(' ').nth(1).unwrap_or_default();
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    let body = String::from_utf8_lossy(&body).into_owned();
    match code {
        "200" => Ok(body),
        _ => Err(format!("{host}{path}: HTTP {code}: {}", body.trim())),
    }
}

/// A chunked body's content (chunk extensions and trailers ignored).
fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let line = String::from_utf8_lossy(&rest[..eol]);
        let size =
            usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        let data = &rest[eol + 2..];
        if size == 0 || data.len() < size {
            break;
        }
        out.extend_from_slice(&data[..size]);
        rest = data[size..].strip_prefix(b"\r\n").unwrap_or(&data[size..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(
            dechunk(b"4\r\nab\"c\r\n3;x=y\r\n{}\n\r\n0\r\n\r\n"),
            b"ab\"c{}\n"
        );
    }

    #[test]
    fn an_unreachable_server_says_so() {
        // Port 1 on loopback: nothing listens there.
        let e = status("127.0.0.1:1").unwrap_err();
        assert!(
            e.starts_with("cannot reach the server at 127.0.0.1:1"),
            "{e}"
        );
    }
}
