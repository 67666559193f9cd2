//! Which build of turnout a test runs: the proxy-wasm module or the native
//! dynamic module. Both read the same configuration and must behave alike,
//! so behavioural tests take the build as a parameter.

use std::path::{Path, PathBuf};

use crate::bootstrap::{
    ecds_resource, native_ecds_resource, native_filter_ecds, native_filter_inline,
    wasm_filter_ecds, wasm_filter_inline,
};
use crate::envoy::{Envoy, StartError};
use crate::native::native_module_dir;
use crate::wasm::filter_wasm;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Build {
    /// `target/wasm32-wasip1/release/turnout.wasm` in Envoy's V8.
    Wasm,
    /// `target/release/libturnout_native.so`, an Envoy dynamic module.
    Native,
}

impl Build {
    pub const ALL: [Build; 2] = [Build::Wasm, Build::Native];

    /// The prefix Envoy's `/stats` puts before turnout's metric names
    /// (`wasmcustom.turnout.requests_total.…`).
    pub fn stats_namespace(self) -> &'static str {
        match self {
            Build::Wasm => "wasmcustom",
            Build::Native => "dynamicmodulescustom",
        }
    }

    /// The HTTP filter entry with `config_json` inline.
    pub fn filter_inline(self, config_json: &str) -> String {
        match self {
            Build::Wasm => wasm_filter_inline(&filter_wasm(), config_json),
            Build::Native => native_filter_inline(config_json),
        }
    }

    /// The HTTP filter entry `name` configured by ECDS from `file`.
    pub fn filter_ecds(self, name: &str, watched_dir: &Path, file: &Path) -> String {
        match self {
            Build::Wasm => wasm_filter_ecds(name, watched_dir, file),
            Build::Native => native_filter_ecds(name, watched_dir, file),
        }
    }

    /// An ECDS resource file's content for filter `name`.
    pub fn ecds_resource(self, name: &str, config_json: &str) -> String {
        match self {
            Build::Wasm => ecds_resource(name, &filter_wasm(), config_json),
            Build::Native => native_ecds_resource(name, config_json),
        }
    }

    /// The directory Envoy must search for dynamic modules, if any.
    pub fn modules(self) -> Option<PathBuf> {
        match self {
            Build::Wasm => None,
            Build::Native => Some(native_module_dir()),
        }
    }

    /// Starts Envoy able to load this build.
    pub fn start_envoy(self, bootstrap_yaml: &str, concurrency: u32) -> Envoy {
        self.try_start_envoy(bootstrap_yaml, concurrency)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_start_envoy(
        self,
        bootstrap_yaml: &str,
        concurrency: u32,
    ) -> Result<Envoy, StartError> {
        Envoy::try_start_with_modules(bootstrap_yaml, concurrency, self.modules().as_deref())
    }
}

/// Declares each named test function, which takes a [`Build`], as two
/// tests: `wasm::<name>` and `native::<name>`.
#[macro_export]
macro_rules! for_each_build {
    ($($test:ident),+ $(,)?) => {
        mod wasm {
            $( #[test] fn $test() { super::$test($crate::Build::Wasm) } )+
        }
        mod native {
            $( #[test] fn $test() { super::$test($crate::Build::Native) } )+
        }
    };
}
