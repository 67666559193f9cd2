//! `turnoutctl image push` against a real registry (the CNCF distribution
//! registry, Debian's `docker-registry`, on loopback), read back by a
//! reader written apart from the pusher: the registry's HTTP API (OCI
//! distribution spec) over a raw HTTP/1.1 client, and the layer choice of
//! Istio's fetcher (istio/istio pkg/wasm/imagefetcher.go, the same in
//! Envoy Gateway's internal/wasm/imagefetcher.go) written out below.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use integration::{filter_wasm, scratch_dir, HttpClient, Registry};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

const REPOSITORY: &str = "platform/turnout";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const WASM_LAYER: &str = "application/vnd.module.wasm.content.layer.v1+wasm";
const WASM_CONFIG: &str = "application/vnd.module.wasm.config.v1+json";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// `turnoutctl image push REF --wasm FILE [extra]`, with no credentials
/// from the environment or the tester's own docker config unless given.
fn push(reference: &str, wasm: &Path, extra: &[&str], env: &[(&str, &str)]) -> Run {
    let empty_config = scratch_dir("docker-config");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_turnoutctl"));
    cmd.args(["image", "push", reference, "--wasm"])
        .arg(wasm)
        .args(extra)
        .env("DOCKER_CONFIG", &empty_config)
        .env_remove("TURNOUT_REGISTRY_USERNAME")
        .env_remove("TURNOUT_REGISTRY_PASSWORD");
    for (name, value) in env {
        cmd.env(name, value);
    }
    let out = cmd.output().expect("run turnoutctl");
    let run = Run {
        code: out.status.code().expect("exited"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!(
        "turnoutctl image push {reference} {extra:?}: exit {}\n{}{}",
        run.code, run.stdout, run.stderr
    );
    run
}

fn sha256(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// `Authorization: Basic …` for the reader.
fn basic(user: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

/// GET on the registry's API; the body, after checking the status is 200.
fn get(registry: &Registry, path: &str, headers: &[(&str, &str)]) -> (Vec<u8>, Option<String>) {
    let mut client = HttpClient::new(registry.port);
    let response = client.get(path, headers);
    assert_eq!(response.status, 200, "GET {path}: {}", response.body_str());
    (
        response.body.clone(),
        response.header("docker-content-digest"),
    )
}

/// The wasm layer's digest, chosen as Istio's fetcher chooses: first the
/// *compat* variant (the last layer a tar+gzip), then the *oci* variant
/// (exactly two layers, one of them the wasm layer, read uncompressed).
fn istio_wasm_layer(manifest: &Value) -> Result<String, String> {
    let layers = manifest["layers"].as_array().ok_or("no layers")?;
    let last = layers
        .last()
        .ok_or("number of layers must be greater than zero")?;
    if last["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip" {
        return Err("a compat image: the module would be plugin.wasm in a tar.gz".into());
    }
    if layers.len() != 2 {
        return Err(format!(
            "number of layers must be 2 but got {}",
            layers.len()
        ));
    }
    layers
        .iter()
        .find(|l| l["mediaType"] == WASM_LAYER)
        .and_then(|l| l["digest"].as_str())
        .map(str::to_string)
        .ok_or_else(|| format!("could not find the layer of type {WASM_LAYER}"))
}

/// Reads the tag back and checks what Istio's fetcher would get: the
/// manifest's media types, its digest (what the command printed), and a
/// wasm layer byte-identical to the module.
fn assert_pulled(
    registry: &Registry,
    tag: &str,
    module: &[u8],
    printed: &str,
    auth: &[(&str, &str)],
) {
    let mut headers = vec![("accept", OCI_MANIFEST)];
    headers.extend_from_slice(auth);
    let (manifest_bytes, header_digest) = get(
        registry,
        &format!("/v2/{REPOSITORY}/manifests/{tag}"),
        &headers,
    );
    let digest = sha256(&manifest_bytes);
    assert_eq!(
        header_digest.as_deref(),
        Some(digest.as_str()),
        "Docker-Content-Digest"
    );
    assert_eq!(
        printed, digest,
        "the digest printed is the manifest's, which Istio checks"
    );
    let manifest: Value = serde_json::from_slice(&manifest_bytes).expect("manifest JSON");
    assert_eq!(manifest["mediaType"], OCI_MANIFEST);
    assert_eq!(manifest["config"]["mediaType"], WASM_CONFIG);
    let layer = istio_wasm_layer(&manifest).expect("Istio's fetcher finds the module");
    let (blob, _) = get(registry, &format!("/v2/{REPOSITORY}/blobs/{layer}"), auth);
    assert!(
        blob == module,
        "the wasm layer is the module, byte for byte ({} bytes, module {})",
        blob.len(),
        module.len()
    );
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .expect("config digest");
    let (config, _) = get(
        registry,
        &format!("/v2/{REPOSITORY}/blobs/{config_digest}"),
        auth,
    );
    let config: Value = serde_json::from_slice(&config).expect("runtime config JSON");
    assert_eq!(config["type"], "envoy_proxy");
}

/// The printed lines: the digest first, and Istio's sha256 field without prefix.
fn printed_digest(run: &Run) -> String {
    let digest = run.stdout.lines().next().unwrap_or_default().to_string();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "first line: {digest:?}"
    );
    let hex = &digest["sha256:".len()..];
    assert!(
        run.stdout.contains(&format!("sha256: {hex}")),
        "the WasmPlugin's sha256 line"
    );
    assert!(
        run.stdout.contains(&format!("@{digest}")),
        "the pinned url line"
    );
    digest
}

/// One line on stderr, and it says `why`.
fn assert_refused(run: &Run, why: &str) {
    assert_eq!(run.code, 1, "exit 1");
    assert!(
        run.stdout.is_empty(),
        "nothing printed on stdout: {}",
        run.stdout
    );
    assert_eq!(run.stderr.lines().count(), 1, "one line: {}", run.stderr);
    assert!(run.stderr.contains(why), "{why:?} in {:?}", run.stderr);
}

fn module() -> (PathBuf, Vec<u8>) {
    let path = filter_wasm();
    let bytes = fs::read(&path).expect("read turnout.wasm");
    (path, bytes)
}

#[test]
fn the_pushed_image_is_what_istio_reads_and_the_printed_digest_is_the_tags() {
    let (wasm, bytes) = module();
    let registry = Registry::open();
    let reference = format!("{}/{REPOSITORY}:0.1.0", registry.address());
    let run = push(&reference, &wasm, &["--insecure"], &[]);
    assert_eq!(run.code, 0);
    let digest = printed_digest(&run);
    assert_pulled(&registry, "0.1.0", &bytes, &digest, &[]);

    // The same module pushed again (an oci:// reference, another tag) is
    // the same image: the digest depends on the module alone.
    let again = push(
        &format!("oci://{}/{REPOSITORY}:again", registry.address()),
        &wasm,
        &["--insecure"],
        &[],
    );
    assert_eq!(again.code, 0);
    assert_eq!(printed_digest(&again), digest);
}

#[test]
fn plain_http_needs_insecure_and_an_unreachable_registry_is_said() {
    let (wasm, _) = module();
    let registry = Registry::open();
    let reference = format!("{}/{REPOSITORY}:0.1.0", registry.address());
    let run = push(&reference, &wasm, &[], &[]);
    assert_refused(&run, "speaks plain HTTP, not HTTPS: pass --insecure");

    let closed = format!("127.0.0.1:{}", registry.port);
    drop(registry);
    let run = push(
        &format!("{closed}/{REPOSITORY}:0.1.0"),
        &wasm,
        &["--insecure"],
        &[],
    );
    assert_refused(&run, &format!("cannot connect to the registry {closed}"));
}

#[test]
fn credentials_the_registry_refuses_fail_and_a_docker_config_login_pushes() {
    let (wasm, bytes) = module();
    let registry = Registry::with_users(&[("ci", "right-password")]);
    let reference = format!("{}/{REPOSITORY}:0.1.0", registry.address());

    let anonymous = push(&reference, &wasm, &["--insecure"], &[]);
    assert_refused(&anonymous, "wants credentials to push to platform/turnout");

    let wrong = [
        ("TURNOUT_REGISTRY_USERNAME", "ci"),
        ("TURNOUT_REGISTRY_PASSWORD", "wrong"),
    ];
    let run = push(&reference, &wasm, &["--insecure"], &wrong);
    assert_refused(&run, "refused the credentials of user \"ci\" from TURNOUT_REGISTRY_USERNAME/TURNOUT_REGISTRY_PASSWORD");

    // `docker login`'s file: auths.<registry>.auth = base64(user:password).
    let config_dir = scratch_dir("docker-login");
    let auth = base64::engine::general_purpose::STANDARD.encode("ci:right-password");
    let config = serde_json::json!({"auths": {registry.address(): {"auth": auth}}});
    fs::write(config_dir.join("config.json"), config.to_string()).expect("write config.json");
    let docker_config = config_dir.to_string_lossy().into_owned();
    let run = push(
        &reference,
        &wasm,
        &["--insecure"],
        &[("DOCKER_CONFIG", &docker_config)],
    );
    assert_eq!(run.code, 0);
    let digest = printed_digest(&run);
    let authorization = basic("ci", "right-password");
    assert_pulled(
        &registry,
        "0.1.0",
        &bytes,
        &digest,
        &[("authorization", &authorization)],
    );
}

/// A CA, and a certificate it signed for 127.0.0.1: (CA PEM, chain PEM, key PEM).
fn certificates() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    let key = KeyPair::generate().expect("registry key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let certificate = params
        .signed_by(&key, &issuer)
        .expect("registry certificate");
    (ca.pem(), certificate.pem(), key.serialize_pem())
}

#[test]
fn https_is_the_default_and_an_untrusted_certificate_is_said() {
    let (wasm, _) = module();
    let (ca, certificate, key) = certificates();
    let registry = Registry::with_tls(&certificate, &key);
    let reference = format!("{}/{REPOSITORY}:0.1.0", registry.address());

    // Not a plain HTTP registry (its "400: HTTP request to an HTTPS server"
    // is not a registry's answer): the certificate is what is wrong.
    let run = push(&reference, &wasm, &[], &[]);
    assert_refused(
        &run,
        &format!("cannot connect to the registry {}", registry.address()),
    );
    assert!(
        run.stderr.to_lowercase().contains("certificate"),
        "{}",
        run.stderr
    );

    // Trusted (the system's roots, which SSL_CERT_FILE replaces): pushed over HTTPS.
    let ca_file = scratch_dir("ca").join("ca.pem");
    fs::write(&ca_file, ca).expect("write the CA");
    let ca_file = ca_file.to_string_lossy().into_owned();
    let run = push(&reference, &wasm, &[], &[("SSL_CERT_FILE", &ca_file)]);
    assert_eq!(run.code, 0);
    printed_digest(&run);
    let manifest_path = format!("/v2/{REPOSITORY}/manifests/0.1.0");
    let log = registry.log();
    assert!(
        log.contains(&manifest_path),
        "the push reached the registry:\n{log}"
    );
}
