//! What the serve modules' unit tests share: a catalog serving `turnout`,
//! and proxies that subscribe to it and answer its pushes.

use std::path::PathBuf;

use super::catalog::{check, Catalog, Ms, Template};
use super::state::{Ask, Subscriptions};

/// `turnout` served at `version` since `at`, from `/d/turnout.json`.
pub fn catalog(version: &str, at: Ms) -> Catalog {
    catalog_of("{}", version, at)
}

/// `turnout` served as `config` (valid) at `version` since `at`.
pub fn catalog_of(config: &str, version: &str, at: Ms) -> Catalog {
    let template = Template::Wasm {
        wasm: "m.wasm".into(),
        runtime: "r".into(),
    };
    let mut c = Catalog::default();
    let (text, plan) = check("turnout", config.as_bytes()).expect("a valid config");
    let resource = template.resource("turnout", &text);
    c.serve(
        "turnout",
        PathBuf::from("/d/turnout.json"),
        version.into(),
        (resource, plan),
        at,
    );
    c
}

/// A new stream from `node` (cluster `fleet`) subscribing to `turnout`
/// at `at`; it is sent what `c` serves.
pub fn subscribe(r: &mut Subscriptions, node: &str, c: &Catalog, at: Ms) -> u64 {
    let id = r.open("ecds", "127.0.0.1:9", at);
    let names = ["turnout".to_string()];
    let ask = Ask {
        node: Some((node, "fleet")),
        names: &names,
        ..Ask::default()
    };
    r.on_request(id, &ask, &c.versions(), at);
    id
}

/// Stream `id` answers the push `nonce` of what `c` serves at `at`: an
/// ACK, or a NACK with `error` (keeping an older version, "old").
pub fn answer(
    r: &mut Subscriptions,
    id: u64,
    c: &Catalog,
    nonce: &str,
    error: Option<&str>,
    at: Ms,
) {
    let names = ["turnout".to_string()];
    let version = match error {
        Some(_) => "old".to_string(),
        None => c.versions()["turnout"].clone(),
    };
    let ask = Ask {
        version_info: &version,
        nonce,
        names: &names,
        error,
        ..Ask::default()
    };
    r.on_request(id, &ask, &c.versions(), at);
}
