//! The server's mutual TLS transport: every connection on the port, gRPC
//! and HTTP alike, is a TLS session whose client certificate the client CA
//! signed. Handshakes are made here, with tokio-rustls, and only finished
//! sessions are handed to tonic (`serve_with_incoming`): tonic's own
//! `ServerTlsConfig` is fixed when the server starts and drops a refused
//! handshake without a word, where this re-reads rotated certificate files
//! (new handshakes use them, sessions already open go on) and logs every
//! refusal with the peer's address and the reason.
//!
//! Whether a re-read set of files replaces the served one is decided by
//! [`Rotation`], without I/O.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tracing::{info, warn};

use crate::tls::{server_config, Files, Pem};

/// How long a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the certificate files are read again: a rotation is served
/// within this.
const ROTATION_POLL: Duration = Duration::from_secs(1);

/// Handshakes under way at once, at most. Each holds a descriptor until
/// it ends (within HANDSHAKE_TIMEOUT); past this many, the listener stops
/// accepting until one ends, so clients that never finish (a scanner, a
/// flood) queue in the kernel's backlog instead of taking every
/// descriptor the proxies need to reconnect. A reconnect storm of
/// thousands of proxies is served in turn: a handshake takes about a
/// millisecond.
const MAX_HANDSHAKES: usize = 256;

/// The sessions tonic serves: each one a finished handshake.
pub type Sessions = ReceiverStream<Result<TlsStream<TcpStream>, std::io::Error>>;

/// What to do with a set of files read again.
#[derive(Debug)]
pub enum Reload {
    /// As served, or as already refused: nothing to do or say.
    Unchanged,
    /// New files that make a good configuration: serve it.
    Serve(Arc<ServerConfig>),
    /// New files (or a new failure to read them) that cannot serve: say
    /// why, once; the served configuration stays.
    Refuse(String),
}

/// The files served, and the last set refused (so it is said once).
pub struct Rotation {
    serving: Pem,
    refused: Option<Result<Pem, String>>,
}

impl Rotation {
    /// Serving `pem`, which made a good configuration at start.
    pub fn new(serving: Pem) -> Rotation {
        Rotation {
            serving,
            refused: None,
        }
    }

    /// The files were read again (or could not be).
    pub fn on_read(&mut self, read: Result<Pem, String>) -> Reload {
        if read.as_ref() == Ok(&self.serving) {
            // Back to what is served (a rotation undone): a later bad set
            // is said again.
            self.refused = None;
            return Reload::Unchanged;
        }
        if self.refused.as_ref() == Some(&read) {
            return Reload::Unchanged;
        }
        let made = read.clone().and_then(|pem| Ok((server_config(&pem)?, pem)));
        match made {
            Ok((config, pem)) => {
                self.serving = pem;
                self.refused = None;
                Reload::Serve(Arc::new(config))
            }
            Err(e) => {
                self.refused = Some(read);
                Reload::Refuse(e)
            }
        }
    }
}

/// The configuration at start, from `files`; why it cannot be made.
pub fn start(files: &Files) -> Result<(Rotation, Arc<ServerConfig>), String> {
    let pem = files.read()?;
    let config = server_config(&pem)?;
    Ok((Rotation::new(pem), Arc::new(config)))
}

/// Re-reads `files` every [`ROTATION_POLL`], for as long as the server runs,
/// and publishes each configuration [`Rotation`] takes.
pub fn watch_rotation(
    files: Files,
    mut rotation: Rotation,
    serving: watch::Sender<Arc<ServerConfig>>,
) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(ROTATION_POLL).await;
            // Off the runtime's two workers: a hung mount (NFS, a CSI
            // volume) must not stall the xDS streams.
            let reading = files.clone();
            let read = tokio::task::spawn_blocking(move || reading.read())
                .await
                .unwrap_or_else(|e| Err(format!("reading the files failed: {e}")));
            match rotation.on_read(read) {
                Reload::Unchanged => {}
                Reload::Serve(config) => {
                    serving.send_replace(config);
                    info!(
                        "TLS: re-read {}, {} and {}; new connections use them",
                        files.cert.display(),
                        files.key.display(),
                        files.ca.display()
                    );
                }
                Reload::Refuse(e) => {
                    warn!("TLS: the certificate files changed but cannot serve ({e}); the previous ones keep serving")
                }
            }
        }
    });
}

/// Accepts connections on `listener` and makes each one's handshake with
/// the configuration served at the time; the finished sessions.
pub fn sessions(listener: TcpListener, serving: watch::Receiver<Arc<ServerConfig>>) -> Sessions {
    let (tx, rx) = mpsc::channel(64);
    let permits = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    tokio::spawn(async move {
        loop {
            // The semaphore is never closed: Err cannot happen.
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            match listener.accept().await {
                Ok((tcp, peer)) => {
                    let acceptor = TlsAcceptor::from(serving.borrow().clone());
                    tokio::spawn(handshake(acceptor, tcp, peer, tx.clone(), permit));
                }
                Err(e) => {
                    // Out of descriptors, most likely: wait for some to close.
                    warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            if tx.is_closed() {
                break;
            }
        }
    });
    ReceiverStream::new(rx)
}

/// One handshake, on its own task so a slow client holds up no other.
async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    tx: mpsc::Sender<Result<TlsStream<TcpStream>, std::io::Error>>,
    // Held until the handshake ends, then given back.
    _permit: OwnedSemaphorePermit,
) {
    // gRPC streams are small messages both ways (as TcpIncoming's nodelay).
    let _ = tcp.set_nodelay(true);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(session)) => {
            let _ = tx.send(Ok(session)).await;
        }
        Ok(Err(e)) => warn!("TLS handshake with {peer} refused: {e}"),
        Err(_) => warn!(
            "TLS handshake with {peer} refused: not finished within {}s",
            HANDSHAKE_TIMEOUT.as_secs()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::test_pem;
    use integration::pki::Ca;

    #[test]
    fn the_same_files_change_nothing_and_new_good_files_serve() {
        let ca = Ca::new("fleet");
        let first = test_pem(&ca, &["turnout-server"]);
        let mut rotation = Rotation::new(first.clone());
        assert!(matches!(
            rotation.on_read(Ok(first.clone())),
            Reload::Unchanged
        ));
        let second = test_pem(&ca, &["turnout-server"]);
        assert!(matches!(
            rotation.on_read(Ok(second.clone())),
            Reload::Serve(_)
        ));
        assert!(matches!(rotation.on_read(Ok(second)), Reload::Unchanged));
        // A new client CA alone is a rotation too.
        let other = Ca::new("other");
        let mut widened = first;
        widened.ca.extend_from_slice(other.pem.as_bytes());
        assert!(matches!(rotation.on_read(Ok(widened)), Reload::Serve(_)));
    }

    #[test]
    fn a_bad_rotation_is_said_once_and_the_served_files_stay() {
        let ca = Ca::new("fleet");
        let served = test_pem(&ca, &["turnout-server"]);
        let mut rotation = Rotation::new(served.clone());
        // The certificate was replaced, its key not yet.
        let mut half = served.clone();
        half.cert = test_pem(&ca, &["turnout-server"]).cert;
        match rotation.on_read(Ok(half.clone())) {
            Reload::Refuse(e) => assert!(e.starts_with("the key is not the certificate's"), "{e}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            rotation.on_read(Ok(half.clone())),
            Reload::Unchanged
        ));
        // Unreadable, then readable again as it was.
        let gone = Err("cannot read key.pem: No such file".to_string());
        assert!(
            matches!(rotation.on_read(gone.clone()), Reload::Refuse(e) if e.contains("key.pem"))
        );
        assert!(matches!(rotation.on_read(gone), Reload::Unchanged));
        assert!(matches!(rotation.on_read(Ok(served)), Reload::Unchanged));
        // The same bad set again, after the served one came back: said again.
        assert!(matches!(rotation.on_read(Ok(half)), Reload::Refuse(_)));
    }
}
