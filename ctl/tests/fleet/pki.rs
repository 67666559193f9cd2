//! The certificates of a fleet under mutual TLS, made for each test
//! (integration::pki) and written to its scratch directory: the CA, the
//! server's, an operator's, and each proxy's.

use std::path::{Path, PathBuf};

use integration::pki::Ca;
use integration::scratch_dir;

use super::Server;

/// A proxy's TLS files: its certificate and key, the CA of the server's.
#[derive(Clone)]
pub struct ProxyTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// A fleet's certificates on disk: the CA that signs everyone's, the
/// server's certificate (DNS turnout-server, as fleet-tls.yaml's SNI, and
/// 127.0.0.1, the address `status` dials) and an operator's.
pub struct Pki {
    pub dir: PathBuf,
    pub ca: Ca,
    pub ca_file: PathBuf,
    pub server: (PathBuf, PathBuf),
    pub operator: (PathBuf, PathBuf),
}

impl Pki {
    pub fn new() -> Pki {
        let dir = scratch_dir("fleet-pki");
        let ca = Ca::new("fleet");
        let ca_file = ca.write(&dir, "ca");
        let server = ca
            .leaf(&["turnout-server", "127.0.0.1"])
            .write(&dir, "server");
        let operator = ca.leaf(&["operator"]).write(&dir, "operator");
        Pki {
            dir,
            ca,
            ca_file,
            server,
            operator,
        }
    }

    pub fn serve_args(&self) -> Vec<String> {
        args(&[
            ("--tls-cert", &self.server.0),
            ("--tls-key", &self.server.1),
            ("--client-ca", &self.ca_file),
        ])
    }

    /// `status`'s TLS flags: the operator's certificate, trusting `ca`.
    pub fn operator_args(&self, ca: &Path) -> Vec<String> {
        client_args(&self.operator, ca)
    }

    /// A proxy's files: a certificate of `signer` naming `names`, and the
    /// fleet's CA to check the server's.
    pub fn proxy(&self, file: &str, signer: &Ca, names: &[&str]) -> ProxyTls {
        let (cert, key) = signer.leaf(names).write(&self.dir, file);
        ProxyTls {
            cert,
            key,
            ca: self.ca_file.clone(),
        }
    }

    /// A TLS server on `dir` serving module `wasm`, its `status` calls
    /// made as the operator.
    pub fn server(&self, dir: &Path, wasm: &str) -> Server {
        let operator = self.operator_args(&self.ca_file);
        let build = vec!["--wasm".to_string(), wasm.to_string()];
        Server::start_with(dir, &build, 0, &self.serve_args(), &operator)
    }
}

fn args(pairs: &[(&str, &Path)]) -> Vec<String> {
    pairs
        .iter()
        .flat_map(|(flag, path)| [flag.to_string(), path.to_string_lossy().into_owned()])
        .collect()
}

pub fn client_args((cert, key): &(PathBuf, PathBuf), ca: &Path) -> Vec<String> {
    args(&[("--tls-cert", cert), ("--tls-key", key), ("--ca", ca)])
}
