//! The image `turnoutctl image push` uploads: the wasm module in the *oci*
//! variant of the Wasm image specification (solo-io/wasm, spec/spec.md),
//! the layout Istio's and Envoy Gateway's fetchers read (both
//! `pkg/wasm/imagefetcher.go`, `extractOCIArtifactImage`).
//!
//! Those fetchers demand exactly two layers and take the one whose media
//! type is `application/vnd.module.wasm.content.layer.v1+wasm`, read as is
//! (uncompressed): an image with the wasm layer alone is refused ("number
//! of layers must be 2 but got 1"). The specification's second layer is the
//! runtime config (`application/vnd.module.wasm.config.v1+json`), which is
//! also the manifest's config. Pure: bytes in, bytes and digests out, so
//! the same module always gives the same manifest and the same digest.

use oci_client::manifest::{OciDescriptor, OciImageManifest};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;

/// The media type of the layer that holds the module.
pub const WASM_LAYER: &str = "application/vnd.module.wasm.content.layer.v1+wasm";
/// The media type of the runtime config (the manifest's config and a layer).
pub const WASM_CONFIG: &str = "application/vnd.module.wasm.config.v1+json";
/// The manifest's own media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The runtime config: the target runtime and the proxy-wasm ABI the
/// module exports (`proxy_abi_version_0_2_1`). No timestamps: a rebuild of
/// the same module must give the same image digest.
const RUNTIME_CONFIG: &str =
    r#"{"type":"envoy_proxy","abiVersions":["proxy_abi_version_0_2_1"],"config":{}}"#;

/// One blob to upload, with its digest (`sha256:…`).
pub struct Blob {
    pub data: Vec<u8>,
    pub digest: String,
}

impl Blob {
    fn new(data: Vec<u8>) -> Blob {
        let digest = sha256(&data);
        Blob { data, digest }
    }
}

/// Everything pushed for one module: the blobs, then the manifest's bytes.
pub struct Image {
    pub module: Blob,
    pub config: Blob,
    /// The manifest as sent; its digest is the image's digest.
    pub manifest: Vec<u8>,
    pub digest: String,
}

/// Why a file is not a module to push.
#[derive(Debug, PartialEq, Eq)]
pub struct NotAModule;

/// Lays out `module` as the image. Refuses bytes that do not start with
/// the wasm magic number and version 1 (`\0asm\x01\0\0\0`): Istio's agent
/// refuses such a download anyway, after the push and in production.
pub fn wasm_image(module: Vec<u8>) -> Result<Image, NotAModule> {
    if !module.starts_with(b"\0asm\x01\0\0\0") {
        return Err(NotAModule);
    }
    let module = Blob::new(module);
    let config = Blob::new(RUNTIME_CONFIG.as_bytes().to_vec());
    let manifest = OciImageManifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_string()),
        config: descriptor(WASM_CONFIG, &config, None),
        // The config layer first, as the specification's example.
        layers: vec![
            descriptor(WASM_CONFIG, &config, Some("runtime-config.json")),
            descriptor(WASM_LAYER, &module, Some("plugin.wasm")),
        ],
        subject: None,
        artifact_type: None,
        annotations: None,
    };
    // Serialising derived structs of strings and integers cannot fail.
    let manifest = serde_json::to_vec(&manifest).unwrap_or_default();
    let digest = sha256(&manifest);
    Ok(Image {
        module,
        config,
        manifest,
        digest,
    })
}

fn descriptor(media_type: &str, blob: &Blob, title: Option<&str>) -> OciDescriptor {
    OciDescriptor {
        media_type: media_type.to_string(),
        digest: blob.digest.clone(),
        size: blob.data.len() as i64,
        urls: None,
        artifact_type: None,
        annotations: title.map(|t| {
            BTreeMap::from([("org.opencontainers.image.title".to_string(), t.to_string())])
        }),
    }
}

/// `sha256:` and the lowercase hex of the bytes' SHA-256.
pub fn sha256(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for byte in hash.iter() {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module() -> Vec<u8> {
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        m.extend_from_slice(b"rest of a module");
        m
    }

    #[test]
    fn two_layers_the_module_uncompressed_and_the_runtime_config() {
        let image = wasm_image(module()).expect("a module");
        let doc: serde_json::Value = serde_json::from_slice(&image.manifest).expect("JSON");
        assert_eq!(doc["schemaVersion"], 2);
        assert_eq!(doc["mediaType"], OCI_MANIFEST);
        assert_eq!(doc["config"]["mediaType"], WASM_CONFIG);
        assert_eq!(doc["config"]["digest"], image.config.digest);
        let layers = doc["layers"].as_array().expect("layers");
        assert_eq!(layers.len(), 2, "Istio's fetcher wants exactly two");
        assert_eq!(layers[1]["mediaType"], WASM_LAYER);
        assert_eq!(layers[1]["digest"], sha256(&module()));
        assert_eq!(layers[1]["size"], module().len());
        assert_eq!(image.module.data, module());
        assert_eq!(image.digest, sha256(&image.manifest));
    }

    #[test]
    fn the_same_module_gives_the_same_digest() {
        let a = wasm_image(module()).expect("a module");
        let b = wasm_image(module()).expect("a module");
        assert_eq!(a.digest, b.digest);
        let mut other = module();
        other.push(0);
        assert_ne!(wasm_image(other).expect("a module").digest, a.digest);
    }

    #[test]
    fn refuses_what_is_not_a_wasm_module() {
        assert_eq!(wasm_image(b"ELF...".to_vec()).err(), Some(NotAModule));
        assert_eq!(wasm_image(Vec::new()).err(), Some(NotAModule));
    }

    #[test]
    fn sha256_is_the_known_digest() {
        assert_eq!(
            sha256(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
