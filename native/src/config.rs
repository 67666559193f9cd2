//! One filter configuration as Envoy applied it: the core's [`Runtime`]
//! over the native ABI, shared by every worker's streams. Envoy gives a
//! dynamic module's configuration no timer, so the runtime is driven by
//! the requests ([`Cadence::ByRequests`]).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use turnout::plan::Plan;
use turnout::runtime::{Cadence, ConfigHost, Level, MetricKind, Runtime};
use turnout::watch::SharedStore;

use crate::abi::{self, ConfigEnvoy, ConfigHandle, LogLevel, MetricId};
use crate::host::monotonic_nanos;

/// What a configuration shares with its streams.
pub type FilterConfig = Runtime<Native>;

/// Parses `text` with the core's parser and defines its metrics. `None`
/// refuses it, with the reason logged in the wasm build's words.
pub fn configure(envoy: &ConfigEnvoy<'_>, text: &[u8]) -> Option<FilterConfig> {
    #[cfg(feature = "test-panic")]
    crate::filter::test_panic_in_config(text);
    let native = Native {
        envoy: envoy.handle(),
    };
    let seed = getrandom::u64().unwrap_or(0x9e37_79b9_7f4a_7c15);
    Runtime::configure(text, native, Cadence::ByRequests, seed)
}

/// Envoy as a configuration reaches it natively. The guard's record is
/// the process's own memory: the workers share it, as the wasm build's
/// VMs share Envoy's shared data.
pub struct Native {
    envoy: ConfigHandle,
}

impl ConfigHost for Native {
    type Metric = MetricId;

    fn define(&self, kind: MetricKind, name: &str) -> Option<MetricId> {
        self.envoy.define(kind, name)
    }

    fn set_gauge(&self, gauge: MetricId, value: u64) {
        self.envoy.set_gauge(gauge, value);
    }

    fn increment(&self, counter: MetricId, by: u64) {
        self.envoy.increment(counter, by);
    }

    fn record(&self, histogram: MetricId, value: u64) {
        self.envoy.record(histogram, value);
    }

    /// Copies must outlive the user's stream; a dynamic module can only
    /// send such requests from Envoy's main thread (docs/shadow-callouts.md),
    /// which this build does not do yet: a shadow is refused, by name,
    /// rather than accepted and never sent.
    fn refuses(&self, plan: &Plan) -> Option<String> {
        let split = plan.splits.iter().position(|s| s.shadow.is_some())?;
        Some(format!(
            "splits[{split}].shadow: not sent by the native build yet (the wasm build sends copies)"
        ))
    }

    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        abi::log(level, &format!("turnout: {message}"));
    }

    fn unix_now(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }

    fn monotonic_nanos(&self) -> u64 {
        monotonic_nanos()
    }
}

/// A record's bytes and its version.
type Record = (Vec<u8>, u32);

/// The guard's records for the whole process, by key, with a version for
/// compare-and-swap: they outlive a configuration, so a push that leaves
/// a tripped split unchanged finds its trip.
static RECORDS: Mutex<Option<HashMap<String, Record>>> = Mutex::new(None);

impl SharedStore for Native {
    fn get(&self, key: &str) -> Option<Record> {
        let records = RECORDS.lock().unwrap_or_else(PoisonError::into_inner);
        let found = records.as_ref().and_then(|r| r.get(key)).cloned();
        Some(found.unwrap_or_default())
    }

    fn set(&self, key: &str, value: &[u8], cas: u32) -> Option<bool> {
        let mut records = RECORDS.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = records
            .get_or_insert_with(HashMap::new)
            .entry(key.to_string())
            .or_default();
        if entry.1 != cas {
            return Some(false);
        }
        *entry = (value.to_vec(), cas.wrapping_add(1));
        Some(true)
    }
}
