//! The arithmetic of `cargo bench-instr`: instructions per request per
//! variant from callgrind's dumps (`callgrind`), what each adds over
//! Envoy's own split, the ratios the issue asks for, how well two passes
//! agree, and the per-call table. Pure functions of parsed dumps; the
//! driver (`src/bin/bench-instr.rs`) runs Envoy and prints.

use crate::callgrind::Profile;

/// One variant's window in one pass: its dump and how many requests ran.
#[derive(Clone, Debug)]
pub struct Window {
    pub requests: u64,
    pub profile: Profile,
}

impl Window {
    /// Every instruction Envoy ran in the window (all its threads), per
    /// request.
    pub fn per_request(&self) -> f64 {
        per(self.profile.total, self.requests)
    }
}

/// `cost` over `requests` (0 when no request ran).
pub fn per(cost: u64, requests: u64) -> f64 {
    if requests == 0 {
        0.0
    } else {
        cost as f64 / requests as f64
    }
}

/// How far apart two measurements of one thing are, as a share of their
/// mean: |a − b| / ((a + b) / 2).
pub fn disagreement(a: f64, b: f64) -> f64 {
    let mean = (a + b) / 2.0;
    if mean == 0.0 {
        0.0
    } else {
        (a - b).abs() / mean
    }
}

/// What `variant` adds over `base` per request, and what `other` adds:
/// their ratio ((e − a) / (d − a)); `None` when `other` adds nothing.
pub fn ratio_of_added(variant: f64, other: f64, base: f64) -> Option<f64> {
    let other = other - base;
    (other > 0.0).then(|| (variant - base) / other)
}

/// One row of the per-call table: a function Envoy exports to modules
/// (`envoy_dynamic_module_callback_…`) or one of the module's own.
#[derive(Clone, Debug, PartialEq)]
pub struct CallRow {
    pub name: String,
    /// `envoy` for Envoy's callbacks, the module's file name otherwise.
    pub object: String,
    pub inclusive_per_request: f64,
    pub calls_per_request: f64,
}

/// Envoy's dynamic-module callbacks and the functions of any object whose
/// file name contains `module`, by inclusive instructions per request,
/// the `top` largest. Functions that did not run are left out.
pub fn call_table(window: &Window, module: &str, top: usize) -> Vec<CallRow> {
    let mut rows: Vec<CallRow> = window
        .profile
        .functions
        .iter()
        .filter(|f| f.inclusive > 0)
        .filter_map(|f| {
            let file = f.object.rsplit('/').next().unwrap_or(&f.object);
            let object = if file.contains(module) {
                file.to_string()
            } else if f.name.starts_with("envoy_dynamic_module_callback_") {
                "envoy".to_string()
            } else {
                return None;
            };
            Some(CallRow {
                name: f.name.clone(),
                object,
                inclusive_per_request: per(f.inclusive, window.requests),
                calls_per_request: per(f.calls, window.requests),
            })
        })
        .collect();
    rows.sort_by(|a, b| b.inclusive_per_request.total_cmp(&a.inclusive_per_request));
    rows.truncate(top);
    rows
}

/// `name` without the ABI's long prefixes, for a table.
pub fn short_name(name: &str) -> &str {
    name.strip_prefix("envoy_dynamic_module_callback_")
        .or_else(|| name.strip_prefix("envoy_dynamic_module_"))
        .unwrap_or(name)
}

/// Instructions with thousands separators, to one decimal of a thousand
/// (`265.4 k`) or whole below a thousand.
pub fn thousands(value: f64) -> String {
    if value.abs() >= 1000.0 {
        format!("{:.1} k", value / 1000.0)
    } else {
        format!("{value:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::callgrind::FunctionCost;

    fn function(object: &str, name: &str, inclusive: u64, calls: u64) -> FunctionCost {
        FunctionCost {
            object: object.into(),
            name: name.into(),
            self_cost: 0,
            inclusive,
            calls,
        }
    }

    #[test]
    fn ratios_and_agreement() {
        assert_eq!(per(265_400_000, 1000), 265_400.0);
        assert_eq!(per(5, 0), 0.0);
        let r = ratio_of_added(310_300.0, 295_600.0, 265_400.0).unwrap();
        assert!((r - 44_900.0 / 30_200.0).abs() < 1e-12);
        assert_eq!(ratio_of_added(1.0, 10.0, 10.0), None);
        assert!((disagreement(100.0, 101.0) - 1.0 / 100.5).abs() < 1e-12);
        assert_eq!(disagreement(0.0, 0.0), 0.0);
    }

    #[test]
    fn the_table_keeps_callbacks_and_module_functions_largest_first() {
        let window = Window {
            requests: 10,
            profile: Profile {
                event: "Ir".into(),
                total: 1_000_000,
                self_total: 1_000_000,
                functions: vec![
                    function(
                        "/e/envoy",
                        "envoy_dynamic_module_callback_http_get_header",
                        15_000,
                        30,
                    ),
                    function("/e/envoy", "0x0000000004de9450", 900_000, 10),
                    function(
                        "/t/libturnout_native.so",
                        "envoy_dynamic_module_on_http_filter_request_headers",
                        67_000,
                        10,
                    ),
                    function("/t/libturnout_native.so", "0x12", 0, 0),
                    function(
                        "/t/libturnout_native_floor.so",
                        "envoy_dynamic_module_on_http_filter_new",
                        500,
                        10,
                    ),
                ],
            },
        };
        let rows = call_table(&window, "libturnout_native", 10);
        let names: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (short_name(&r.name), r.object.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("on_http_filter_request_headers", "libturnout_native.so"),
                ("http_get_header", "envoy"),
                ("on_http_filter_new", "libturnout_native_floor.so"),
            ]
        );
        assert_eq!(
            (rows[1].inclusive_per_request, rows[1].calls_per_request),
            (1500.0, 3.0)
        );
        assert_eq!(call_table(&window, "libturnout_native", 1).len(), 1);
        assert_eq!(thousands(265_412.0), "265.4 k");
        assert_eq!(thousands(412.4), "412");
    }
}
