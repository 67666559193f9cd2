//! Asking a running server: `turnoutctl status`, and the calls the rollout
//! controller makes in-process (`status`, `wait_acked`). Plain HTTP/1.1
//! GETs (`crate::http`), over mutual TLS when the server speaks it: the
//! answers are small JSON documents, and a blocking caller needs no
//! runtime.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::catalog::resource_name;
use super::status::StatusDocument;
use super::wait::{Delivery, WaitAnswer, WaitQuery, Want};
use super::{json_text, version_of};
use crate::fail::Fail;
use crate::http::{self, Failure};
use crate::tls;

/// How long connecting and a plain request may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A server to ask: its address, and this client's TLS when it speaks it.
#[derive(Clone)]
pub struct Endpoint {
    url: http::Url,
    /// As given (`HOST:PORT`), for messages.
    address: String,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Endpoint {
    /// `server` is `HOST:PORT`, optionally `http://HOST:PORT`, or
    /// `https://HOST:PORT` (which wants the TLS files); with `files`, the
    /// server is asked over mutual TLS with this client's certificate.
    pub fn new(server: &str, files: Option<tls::Files>) -> Result<Endpoint, Fail> {
        let (address, https) = match server.strip_prefix("https://") {
            Some(rest) => (rest, true),
            None => (server.trim_start_matches("http://"), false),
        };
        let address = address.trim_end_matches('/');
        if https && files.is_none() {
            return Err(Fail::Usage(format!(
                "{server}: an https:// server wants --tls-cert, --tls-key and --ca"
            )));
        }
        if server.starts_with("http://") && files.is_some() {
            return Err(Fail::Usage(format!(
                "{server}: an http:// server takes no TLS files (give HOST:PORT)"
            )));
        }
        let url = http::Url::parse(&format!("http://{address}"))
            .map_err(|e| Fail::Usage(format!("--server {server:?}: {e}")))?;
        let tls = match files {
            None => None,
            Some(files) => {
                let config = files
                    .read()
                    .and_then(|pem| tls::client_config(&pem))
                    .map_err(|e| Fail::Usage(format!("--tls-cert, --tls-key, --ca: {e}")))?;
                Some(Arc::new(config))
            }
        };
        Ok(Endpoint {
            url,
            address: address.to_string(),
            tls,
        })
    }

    /// `GET path`: the body of a 200 answer.
    fn get(&self, path: &str, timeout: Duration) -> Result<String, Failure> {
        http::get_over(&self.url, path, timeout, self.tls.as_ref()).map_err(|failure| match failure
        {
            // A plain request to a TLS port: the server hangs up or answers
            // with a TLS alert, either way not HTTP.
            Failure::NotHttp(e) if self.tls.is_none() => Failure::Refused(format!(
                "{e}: if it speaks mutual TLS, give --tls-cert, --tls-key and --ca"
            )),
            other => other,
        })
    }
}

/// The status document (see status.rs) of the server.
pub fn status(server: &Endpoint) -> Result<StatusDocument, Failure> {
    let body = server.get("/status", TIMEOUT)?;
    serde_json::from_str(&body).map_err(|e| {
        Failure::Exchange(format!(
            "{}/status: not a status document: {e}",
            server.address
        ))
    })
}

/// Waits up to `timeout` until every proxy subscribed to `want.resource`
/// (at least `want.proxies`) has ACKed `want.version`; what the server
/// says became of it (`delivery`): `Acked`, `Nacked` (a proxy refused it;
/// Envoy's message), `Refused` (the server refused that file),
/// `Superseded` (the file changed again), or `Waiting` (timed out), with
/// the version as the server serves it (a file's bare hash gains the
/// native build's `-native`) and a line for a person. `Err` only when
/// the server cannot be asked.
pub fn wait_acked(
    server: &Endpoint,
    want: &Want,
    timeout: Duration,
) -> Result<WaitAnswer, Failure> {
    let query = serde_urlencoded::to_string(WaitQuery::new(want, timeout))
        .map_err(|e| Failure::Exchange(format!("cannot ask for {}: {e}", want.resource)))?;
    let body = server.get(&format!("/wait?{query}"), timeout + TIMEOUT)?;
    serde_json::from_str(&body)
        .map_err(|e| Failure::Exchange(format!("{}/wait: not a wait answer: {e}", server.address)))
}

/// How `status` ends when the server cannot be asked: 1 when it refused
/// this client (TLS), 2 when it is not there or did not answer.
fn asked(failure: Failure) -> Fail {
    match failure {
        Failure::Refused(e) => Fail::Refused(e),
        Failure::Unreachable(e) | Failure::NotHttp(e) | Failure::Exchange(e) => Fail::Usage(e),
    }
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
    server: &Endpoint,
    json: bool,
    wait: Option<Wait>,
    proxies: usize,
    timeout: Duration,
) -> Result<(), Fail> {
    let Some(wait) = wait else {
        let doc = status(server).map_err(asked)?;
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
    let answer = wait_acked(server, &want, timeout).map_err(asked)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_server_says_so() {
        // Port 1 on loopback: nothing listens there.
        let server = Endpoint::new("127.0.0.1:1", None).unwrap();
        let e = status(&server).unwrap_err();
        assert!(matches!(e, Failure::Unreachable(_)), "{e}");
        assert!(
            e.to_string()
                .starts_with("cannot reach the server at 127.0.0.1:1"),
            "{e}"
        );
    }
}
