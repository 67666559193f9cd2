//! Mutual TLS material for the fleet server and its clients: the three
//! files each side is given (its certificate chain, its private key, the CA
//! that signs the other side's certificates), read together as a [`Pem`],
//! and the rustls configurations made from those bytes without I/O, so a
//! rotated set is judged whole before anything serves with it.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// ALPN: gRPC (HTTP/2) first, then HTTP/1.1 for `curl` and the clients'
/// GETs on the same port.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Where one side's TLS files are, as its three flags name them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Files {
    /// This side's certificate chain (PEM), its own certificate first.
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The CA certificates (PEM, one or more) that sign the other side's.
    pub ca: PathBuf,
}

/// The three files' bytes, read at one moment.
#[derive(Clone, PartialEq, Eq)]
pub struct Pem {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
    pub ca: Vec<u8>,
}

impl fmt::Debug for Pem {
    /// Without the key's bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pem({} bytes of certificates)", self.cert.len())
    }
}

impl Files {
    /// All three given, or none; what is missing otherwise (clap enforces
    /// this for the command line, and this says so for other callers).
    pub fn given(
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        ca: Option<PathBuf>,
    ) -> Option<Files> {
        Some(Files {
            cert: cert?,
            key: key?,
            ca: ca?,
        })
    }

    pub fn read(&self) -> Result<Pem, String> {
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
        };
        Ok(Pem {
            cert: read(&self.cert)?,
            key: read(&self.key)?,
            ca: read(&self.ca)?,
        })
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// The server's side: its certificate and key, and client certificates
/// required, signed by the CA.
pub fn server_config(pem: &Pem) -> Result<ServerConfig, String> {
    let roots = roots(&pem.ca)?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| format!("the client CA cannot verify certificates: {e}"))?;
    let (chain, key) = certified(pem)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| format!("the key is not the certificate's: {e}"))?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// A client's side: its certificate and key, and the server's certificate
/// checked against the CA (and against the name or address dialled).
pub fn client_config(pem: &Pem) -> Result<ClientConfig, String> {
    let roots = roots(&pem.ca)?;
    let (chain, key) = certified(pem)?;
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| format!("the key is not the certificate's: {e}"))
}

/// The certificate chain and its key, both parsed.
fn certified(pem: &Pem) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let chain = certificates(&pem.cert, "the certificate file")?;
    let key = PrivateKeyDer::from_pem_slice(&pem.key)
        .map_err(|e| format!("the key file holds no private key: {e}"))?;
    Ok((chain, key))
}

/// The CA's certificates as trust anchors.
fn roots(ca: &[u8]) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca, "the CA file")? {
        roots
            .add(cert)
            .map_err(|e| format!("the CA file holds a certificate that is not a CA: {e}"))?;
    }
    Ok(roots)
}

fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what} is not PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{what} holds no certificate"));
    }
    Ok(certs)
}

/// The DNS names of a certificate's subject alternative names (wildcards
/// included as written); none if it cannot be parsed.
pub fn dns_names(cert: &CertificateDer<'_>) -> Vec<String> {
    match webpki::EndEntityCert::try_from(cert) {
        Ok(parsed) => parsed.valid_dns_names().map(str::to_string).collect(),
        Err(_) => Vec::new(),
    }
}

/// The three files' bytes for a leaf of `ca` named `names`, trusting `ca`.
#[cfg(test)]
pub fn test_pem(ca: &integration::pki::Ca, names: &[&str]) -> Pem {
    let leaf = ca.leaf(names);
    Pem {
        cert: leaf.cert.into_bytes(),
        key: leaf.key.into_bytes(),
        ca: ca.pem.clone().into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use integration::pki::Ca;

    #[test]
    fn both_sides_are_made_from_matching_files() {
        let ca = Ca::new("fleet");
        let pem = test_pem(&ca, &["turnout-server", "127.0.0.1"]);
        let server = server_config(&pem).unwrap();
        assert_eq!(
            server.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert!(client_config(&pem).is_ok());
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused() {
        let ca = Ca::new("fleet");
        let mut pem = test_pem(&ca, &["a"]);
        pem.key = test_pem(&ca, &["a"]).key;
        let e = server_config(&pem).unwrap_err();
        assert!(e.starts_with("the key is not the certificate's"), "{e}");
        assert!(client_config(&pem).is_err());
    }

    #[test]
    fn files_that_are_not_pem_say_which() {
        let ca = Ca::new("fleet");
        let good = test_pem(&ca, &["a"]);
        let empty = Pem {
            cert: Vec::new(),
            ..good.clone()
        };
        assert_eq!(
            server_config(&empty).unwrap_err(),
            "the certificate file holds no certificate"
        );
        let no_key = Pem {
            key: b"nothing".to_vec(),
            ..good.clone()
        };
        assert!(server_config(&no_key)
            .unwrap_err()
            .starts_with("the key file holds no private key"));
        let no_ca = Pem {
            ca: good.key.clone(),
            ..good
        };
        assert_eq!(
            server_config(&no_ca).unwrap_err(),
            "the CA file holds no certificate"
        );
    }

    #[test]
    fn dns_names_are_read_from_the_certificate() {
        let ca = Ca::new("fleet");
        let pem = test_pem(&ca, &["a.fleet", "127.0.0.1", "*.b.fleet"]);
        let cert = CertificateDer::from_pem_slice(&pem.cert).unwrap();
        assert_eq!(dns_names(&cert), ["a.fleet", "*.b.fleet"]);
        assert!(dns_names(&CertificateDer::from(vec![1, 2, 3])).is_empty());
    }
}
