//! One filter configuration as Envoy applied it: the core's [`Runtime`]
//! over the native ABI, shared by every worker's streams. Envoy gives a
//! dynamic module's configuration no timer, so the runtime is driven by
//! the requests ([`Cadence::ByRequests`]).
//!
//! Envoy 1.40 freezes a dynamic module configuration's metrics when
//! `config_new` returns (defining one later answers `Frozen`), but the
//! shadow's field counters are named by fields first seen in answers.
//! So `config_new` defines `turnout.shadow_field_total` and
//! `turnout.shadow_noise_total` as counters labelled `split` and `field`,
//! and a field's counter is a series of them: Envoy names it
//! `turnout.shadow_field_total.split.S.field.F`, the name the wasm build
//! defines, and exports it to Prometheus with the same two labels.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use turnout::runtime::{Cadence, ConfigHost, Level, MetricKind, Runtime};
use turnout::stats;
use turnout::watch::SharedStore;

use crate::abi::{self, ConfigEnvoy, ConfigHandle, LogLevel, MetricId};
use crate::host::monotonic_nanos;
use crate::shadow::Copies;

/// What a configuration shares with its streams.
pub type FilterConfig = Runtime<Native>;

/// Parses `text` with the core's parser and defines its metrics. `None`
/// refuses it, with the reason logged in the wasm build's words.
pub fn configure(envoy: &ConfigEnvoy<'_>, text: &[u8]) -> Option<FilterConfig> {
    #[cfg(feature = "test-panic")]
    crate::filter::test_panic_in_config(text);
    let labels = ["split", "field"];
    let native = Native {
        envoy: envoy.handle(),
        copies: Copies::new(envoy.scheduler()),
        field_totals: [
            envoy.define_labelled_counter(stats::SHADOW_FIELD_TOTAL, &labels),
            envoy.define_labelled_counter(stats::SHADOW_NOISE_TOTAL, &labels),
        ],
        series: Mutex::new(Vec::new()),
    };
    let seed = getrandom::u64().unwrap_or(0x9e37_79b9_7f4a_7c15);
    Runtime::configure(text, native, Cadence::ByRequests, seed)
}

/// Envoy as a configuration reaches it natively. The guard's record is
/// the process's own memory: the workers share it, as the wasm build's
/// VMs share Envoy's shared data.
pub struct Native {
    envoy: ConfigHandle,
    /// The shadow's requests on their way through the main thread.
    pub copies: Copies,
    /// `turnout.shadow_field_total` and `…_noise_total`, labelled `split`
    /// and `field` (`None`: Envoy would not define it).
    field_totals: [Option<MetricId>; 2],
    /// The label values of each field series handed out, by
    /// [`Metric::Series`] index.
    series: Mutex<Vec<[Vec<u8>; 2]>>,
}

/// A metric as the runtime holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Defined by name in `config_new`.
    Named(MetricId),
    /// A series of a labelled counter: its label values are
    /// `Native::series[index]`.
    Series { counter: MetricId, index: usize },
}

impl ConfigHost for Native {
    type Metric = Metric;

    fn define(&self, kind: MetricKind, name: &str) -> Option<Metric> {
        self.envoy.define(kind, name).map(Metric::Named)
    }

    /// A series of the labelled counters `config_new` defined: Envoy
    /// defines no metric after it.
    fn define_field(&self, noise: bool, split: &str, field: &str) -> Option<Metric> {
        let counter = self.field_totals[usize::from(noise)]?;
        let (split, field) = stats::shadow_field_labels(split, field);
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        series.push([split.into_bytes(), field.into_bytes()]);
        Some(Metric::Series {
            counter,
            index: series.len() - 1,
        })
    }

    fn set_gauge(&self, gauge: Metric, value: u64) {
        if let Metric::Named(id) = gauge {
            self.envoy.set_gauge(id, value);
        }
    }

    fn increment(&self, counter: Metric, by: u64) {
        match counter {
            Metric::Named(id) => self.envoy.increment(id, by),
            Metric::Series { counter, index } => {
                let series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some([split, field]) = series.get(index) {
                    self.envoy.increment_labelled(
                        counter,
                        &[split.as_slice(), field.as_slice()],
                        by,
                    );
                }
            }
        }
    }

    fn record(&self, histogram: Metric, value: u64) {
        if let Metric::Named(id) = histogram {
            self.envoy.record(id, value);
        }
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
