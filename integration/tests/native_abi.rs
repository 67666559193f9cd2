//! The native module's hand-declared ABI against the pinned Envoy binary:
//! every `envoy_dynamic_module_callback_…` function the module declares
//! (in `native/src/abi/mod.rs`) or links (undefined in the built `.so`)
//! must be exported by Envoy, and every `envoy_dynamic_module_on_…` hook
//! Envoy looks up must be exported by the module. A renamed or dropped
//! symbol is then caught here, not when Envoy refuses to load the module.

use std::collections::BTreeSet;
use std::path::Path;

use integration::{envoy_binary, native_module_dir};
use object::{Object, ObjectSymbol};

/// The dynamic symbols of an ELF file: (defined, undefined).
fn dynamic_symbols(path: &Path) -> (BTreeSet<String>, BTreeSet<String>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = object::File::parse(&*bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (mut defined, mut undefined) = (BTreeSet::new(), BTreeSet::new());
    for symbol in file.dynamic_symbols() {
        let Ok(name) = symbol.name() else { continue };
        if symbol.is_undefined() {
            undefined.insert(name.to_string());
        } else {
            defined.insert(name.to_string());
        }
    }
    (defined, undefined)
}

/// The callbacks `native/src/abi/mod.rs` declares in its `extern` block.
fn declared_callbacks() -> BTreeSet<String> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../native/src/abi/mod.rs");
    let text = std::fs::read_to_string(&source).expect("the ABI module");
    text.split("fn ")
        .skip(1)
        .filter_map(|rest| rest.split('(').next())
        .filter(|name| name.starts_with("envoy_dynamic_module_callback_"))
        .map(str::to_string)
        .collect()
}

#[test]
fn every_callback_the_module_declares_or_links_is_exported_by_envoy() {
    let (envoy, _) = dynamic_symbols(&envoy_binary());
    let module = native_module_dir().join("libturnout_native.so");
    let (exported, linked) = dynamic_symbols(&module);
    let linked: BTreeSet<String> = linked
        .into_iter()
        .filter(|s| s.starts_with("envoy_dynamic_module_"))
        .collect();
    let declared = declared_callbacks();
    assert!(
        declared.len() >= 10,
        "too few declarations found: {declared:?}"
    );
    assert!(
        linked.is_subset(&declared),
        "the module links callbacks the ABI module does not declare: {:?}",
        linked.difference(&declared).collect::<Vec<_>>()
    );
    let missing: Vec<&String> = declared.difference(&envoy).collect();
    assert!(missing.is_empty(), "Envoy 1.40 does not export {missing:?}");

    // The hooks: every one the module exports is one Envoy knows (its
    // name is in Envoy's binary, which looks it up by name), and the
    // module exports the ones an HTTP filter module must.
    let hooks: Vec<&String> = exported
        .iter()
        .filter(|s| s.starts_with("envoy_dynamic_module_on_"))
        .collect();
    assert!(hooks.len() >= 21, "{hooks:?}");
    // Envoy looks hooks up by name: the names are NUL-terminated strings
    // in its binary.
    let envoy_bytes = std::fs::read(envoy_binary()).expect("the Envoy binary");
    let looked_up: BTreeSet<&[u8]> = envoy_bytes
        .split(|b| *b == 0)
        .filter(|s| s.starts_with(b"envoy_dynamic_module_on_"))
        .collect();
    assert!(
        looked_up.len() >= 21,
        "{} hook names in Envoy",
        looked_up.len()
    );
    for hook in hooks {
        assert!(
            looked_up.contains(hook.as_bytes()),
            "Envoy 1.40 never looks up {hook}"
        );
    }
}
