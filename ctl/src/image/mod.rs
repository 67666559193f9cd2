//! `turnoutctl image push REF --wasm FILE [--insecure]`: uploads the wasm
//! module to an OCI registry as the image Istio's `WasmPlugin` and Envoy
//! Gateway's `EnvoyExtensionPolicy` pull (layout.rs), and prints the
//! image's digest as the registry reports it for the tag, with where to
//! put it. The upload is oci-client's (the ORAS project's Rust client):
//! it answers the registry's Bearer and Basic challenges as docker does.
//!
//! HTTPS only, unless `--insecure` (then plain HTTP). Every failure the
//! registry causes is exit 1 and one line (refusal.rs); a file or a
//! reference that cannot be used is exit 2.

mod credentials;
mod layout;
mod refusal;

use std::path::Path;
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};

use crate::fail::Fail;
use credentials::Credentials;
use layout::Image;
use refusal::Attempt;

/// Pushes `wasm` to `reference` and prints the digest.
pub fn run(reference: &str, wasm: &Path, insecure: bool) -> Result<(), Fail> {
    let target = parse_reference(reference)?;
    let module = std::fs::read(wasm)
        .map_err(|e| Fail::Usage(format!("cannot read {}: {e}", wasm.display())))?;
    let image = layout::wasm_image(module).map_err(|_| {
        Fail::Refused(format!(
            "{} is not a wasm module (no \\0asm header): build it with \
             `cargo build --release --target wasm32-wasip1 -p turnout`",
            wasm.display()
        ))
    })?;
    let credentials = credentials::find(target.resolve_registry()).map_err(Fail::Usage)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Fail::Usage(format!("cannot start the I/O runtime: {e}")))?;
    let digest = runtime.block_on(push(&target, &image, &credentials, insecure))?;
    // The contract prints the registry's digest for the tag; a script pins
    // it. If it is not the manifest just pushed, someone moved the tag
    // meanwhile (or the registry rewrote the manifest): pinning it would
    // pin their image, so nothing is printed for a script to take.
    if digest != image.digest {
        return Err(Fail::Refused(format!(
            "the registry reports {digest} for the tag, not the {} just pushed: \
             someone pushed the tag since, or the registry rewrote the manifest; \
             pin {} by digest, or push again",
            image.digest, image.digest
        )));
    }
    print_digest(&target, &image, &digest);
    Ok(())
}

/// `registry/repository:tag`, an `oci://` prefix allowed (as in a
/// `WasmPlugin`'s url).
fn parse_reference(text: &str) -> Result<Reference, Fail> {
    let bare = text.strip_prefix("oci://").unwrap_or(text);
    let reference: Reference = bare
        .parse()
        .map_err(|e| Fail::Usage(format!("{text:?} is not an image reference: {e}")))?;
    if reference.digest().is_some() {
        return Err(Fail::Usage(format!(
            "{text:?} names a digest: push to a tag (registry/repository:tag); the digest is printed after the push"
        )));
    }
    Ok(reference)
}

async fn push(
    target: &Reference,
    image: &Image,
    credentials: &Credentials,
    insecure: bool,
) -> Result<String, Fail> {
    // reqwest is built without a default crypto provider; the process
    // picks ring. Already installed (a second push in one process) is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Client::new(ClientConfig {
        protocol: if insecure {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        connect_timeout: Some(Duration::from_secs(10)),
        read_timeout: Some(Duration::from_secs(60)),
        ..ClientConfig::default()
    });
    let auth = match credentials {
        Credentials::Anonymous => RegistryAuth::Anonymous,
        Credentials::Basic {
            username, password, ..
        } => RegistryAuth::Basic(username.clone(), password.clone()),
    };
    let attempt = Attempt {
        registry: target.resolve_registry(),
        repository: target.repository(),
        credentials,
    };
    let uploaded = upload(&client, target, image, &auth).await;
    match uploaded {
        Ok(digest) => Ok(digest),
        Err(OciDistributionError::RequestError(e))
            if !insecure && e.is_connect() && speaks_plain_http(attempt.registry).await =>
        {
            Err(Fail::Refused(refusal::plain_http(attempt.registry)))
        }
        Err(err) => Err(Fail::Refused(refusal::explain(&err, &attempt))),
    }
}

/// The blobs, the manifest, then the digest the registry now gives the
/// tag (a HEAD on it): what a fetcher resolving the tag will see.
async fn upload(
    client: &Client,
    target: &Reference,
    image: &Image,
    auth: &RegistryAuth,
) -> Result<String, OciDistributionError> {
    client.auth(target, auth, RegistryOperation::Push).await?;
    for blob in [&image.config, &image.module] {
        client
            .push_blob(target, blob.data.clone(), &blob.digest)
            .await?;
    }
    let content_type = hyper::header::HeaderValue::from_static(layout::OCI_MANIFEST);
    client
        .push_manifest_raw(target, image.manifest.clone(), content_type)
        .await?;
    client.fetch_manifest_digest(target, auth).await
}

/// Whether `registry` answers the registry API's `GET /v2/` over plain
/// HTTP (200, or 401 asking for credentials): what a TLS handshake with a
/// plain HTTP registry fails on, told apart from a closed port and from an
/// HTTPS server's "400: client sent an HTTP request to an HTTPS server".
async fn speaks_plain_http(registry: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = if registry.contains(':') {
        registry.to_string()
    } else {
        format!("{registry}:443")
    };
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(&address).await.ok()?;
        let request = format!("GET /v2/ HTTP/1.1\r\nHost: {registry}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        // "HTTP/1.1 200" or "HTTP/1.1 401": the status line's first 12 bytes.
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.ok()?;
        Some(head.starts_with(b"HTTP/1.") && (head.ends_with(b" 200") || head.ends_with(b" 401")))
    };
    tokio::time::timeout(Duration::from_secs(5), probe)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// The digest alone on the first line (for scripts), then where it goes.
fn print_digest(target: &Reference, image: &Image, digest: &str) {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    let name = format!("{}/{}", target.resolve_registry(), target.repository());
    let tagged = format!("{name}:{}", target.tag().unwrap_or("latest"));
    outln!("{digest}");
    outln!(
        "pushed {tagged}: the module ({} bytes, {}) as a wasm OCI image",
        image.module.data.len(),
        image.module.digest
    );
    outln!("Istio WasmPlugin:      url: oci://{tagged}");
    outln!("                       sha256: {hex}   (the image digest, without \"sha256:\")");
    outln!("  or pin by the url:   url: oci://{name}@{digest}");
    outln!("Envoy Gateway:         code.image.url: {tagged}");
    outln!("                       code.image.sha256: {hex}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_may_carry_oci_scheme_but_not_a_digest() {
        let r =
            parse_reference("oci://127.0.0.1:5000/platform/turnout:0.1.0").expect("a reference");
        assert_eq!(r.resolve_registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "platform/turnout");
        assert_eq!(r.tag(), Some("0.1.0"));
        let digest = format!("r.example/turnout@sha256:{}", "0".repeat(64));
        let Err(Fail::Usage(why)) = parse_reference(&digest) else {
            panic!("a digest reference is a usage error");
        };
        assert!(why.contains("push to a tag"), "{why}");
        assert!(matches!(
            parse_reference("UPPER/Case:x"),
            Err(Fail::Usage(_))
        ));
    }
}
