//! Asking a running server: `turnoutctl status`, and the calls the rollout
//! controller makes in-process (`status`, `wait_acked`). Plain HTTP/1.1
//! GETs (`crate::http`): the answers are small JSON documents, and a
//! blocking caller needs no runtime.

use std::path::Path;
use std::time::Duration;

use super::catalog::resource_name;
use super::status::StatusDocument;
use super::wait::{Delivery, WaitAnswer, WaitQuery, Want};
use super::{json_text, version_of};
use crate::fail::Fail;
use crate::http;

/// How long connecting and a plain request may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The status document (see status.rs) of the server at `server`
/// (`HOST:PORT`, optionally with `http://`).
pub fn status(server: &str) -> Result<StatusDocument, String> {
    let body = get(server, "/status", TIMEOUT)?;
    serde_json::from_str(&body).map_err(|e| format!("{server}/status: not a status document: {e}"))
}

/// Waits up to `timeout` until every proxy subscribed to `want.resource`
/// (at least `want.proxies`) has ACKed `want.version`; what the server
/// says became of it (`delivery`): `Acked`, `Nacked` (a proxy refused it;
/// Envoy's message), `Refused` (the server refused that file),
/// `Superseded` (the file changed again), or `Waiting` (timed out), with
/// the version as the server serves it (a file's bare hash gains the
/// native build's `-native`) and a line for a person. `Err` only when
/// the server cannot be asked.
pub fn wait_acked(server: &str, want: &Want, timeout: Duration) -> Result<WaitAnswer, String> {
    let query = serde_urlencoded::to_string(WaitQuery::new(want, timeout))
        .map_err(|e| format!("cannot ask for {}: {e}", want.resource))?;
    let body = get(server, &format!("/wait?{query}"), timeout + TIMEOUT)?;
    serde_json::from_str(&body).map_err(|e| format!("{server}/wait: not a wait answer: {e}"))
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

/// `turnoutctl status`: the table (or `--json`), or with a wait, its outcome.
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
            outln!("{}", json_text(&doc));
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
    let answer = wait_acked(server, &want, timeout).map_err(Fail::Usage)?;
    if json {
        outln!("{}", json_text(&answer));
    }
    match answer.delivery {
        Delivery::Acked { .. } => {
            if !json {
                outln!("{}", answer.message);
            }
            Ok(())
        }
        _ => Err(Fail::Refused(answer.message)),
    }
}

/// The resource a file in the served directory stands for, and its
/// content's hash (`version_of`): the version it is served as, or (native
/// build) what the server turns into it when asked to wait for it.
pub fn of_file(path: &Path) -> Result<(String, String), Fail> {
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

/// `GET path` on `server` (`HOST:PORT`, optionally with `http://`); the
/// body of a 200 answer.
fn get(server: &str, path: &str, timeout: Duration) -> Result<String, String> {
    let host = server.trim_start_matches("http://").trim_end_matches('/');
    let url = http::Url::parse(&format!("http://{host}"))
        .map_err(|e| format!("--server {server:?}: {e}"))?;
    http::get(&url, path, timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

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
