//! The stats of the contract as wasm metric names, and the layout that
//! lets the request path count by index.
//!
//! A metric `turnout.requests_total.split.users.cluster.fastapi.reason.bucket`
//! shows in Envoy's `/stats` as `wasmcustom.turnout.…`; the `stats_tags` of
//! `envoy/stats_tags.yaml` turn it into
//! `turnout_requests_total{split="users",cluster="fastapi",reason="bucket"}`.
//! Label values are sanitized so the tag regexes can find them: every byte
//! but ASCII letters, digits, `_` and `-` becomes `_` (an Istio cluster
//! `outbound|80||reviews.default.svc.cluster.local` is counted as
//! `outbound_80__reviews_default_svc_cluster_local`).

use crate::decide::Reason;
use crate::plan::{Mode, Plan};
use crate::shadow::{Outcome, Part, ROOT_FIELD};

/// The `split` label of requests that a mode refuses but no split takes.
pub const NO_SPLIT: &str = "_none";

/// A response's `class` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Success,
    Redirect,
    ClientError,
    ServerError,
    /// The stream ended without a response, or the upstream reset it.
    Reset,
}

impl Class {
    pub const ALL: [Class; 5] = [
        Class::Success,
        Class::Redirect,
        Class::ClientError,
        Class::ServerError,
        Class::Reset,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Success => "2xx",
            Class::Redirect => "3xx",
            Class::ClientError => "4xx",
            Class::ServerError => "5xx",
            Class::Reset => "reset",
        }
    }

    /// The class of a finished request from Envoy's `response.code` (0 or
    /// absent when no response was sent) and whether the stream was reset
    /// (by the upstream or the downstream). 1xx finals (a `101` upgrade)
    /// count as success.
    pub fn of(code: Option<u64>, reset: bool) -> Class {
        match code {
            _ if reset => Class::Reset,
            Some(100..=299) => Class::Success,
            Some(300..=399) => Class::Redirect,
            Some(400..=499) => Class::ClientError,
            Some(500..=599) => Class::ServerError,
            _ => Class::Reset,
        }
    }
}

/// Whether Envoy's `response.code_details` says the stream was reset or
/// cut rather than answered (an upstream reset turns into a local 503;
/// this tells it apart from a 503 the upstream sent).
pub fn details_mean_reset(details: &[u8]) -> bool {
    let has = |needle: &[u8]| details.windows(needle.len()).any(|w| w == needle);
    has(b"reset") || has(b"disconnect") || has(b"connection_termination")
}

/// A label value as it appears in a metric name.
pub fn sanitize(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A body field's `field` label: the folded JSON pointer as it is
/// (`/items/*/price`: Envoy keeps `/`, `*` and `~` in a metric's name and
/// in the Prometheus label), but every byte outside ASCII letters, digits
/// and `_-/*~` written `_` as in every other label (a key `a.b` is
/// counted as `/a_b`: a dot would cut the name), and the empty pointer
/// (the whole body) as `_root`. Labels of fields never start with `_`, so
/// neither `_root` nor `_other` can be a field's.
pub fn shadow_field_label(field: &str) -> String {
    if field.is_empty() {
        return ROOT_FIELD.to_string();
    }
    field
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_-/*~".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The `turnout_shadow_field_total` counter of a split's field (a label,
/// or a pointer made one).
pub fn shadow_field_counter(split: &str, field: &str) -> String {
    let (split, field) = shadow_field_labels(split, field);
    format!("{SHADOW_FIELD_TOTAL}.split.{split}.field.{field}")
}

/// The `turnout_shadow_noise_total` counter of a split's field.
pub fn shadow_noise_counter(split: &str, field: &str) -> String {
    let (split, field) = shadow_field_labels(split, field);
    format!("{SHADOW_NOISE_TOTAL}.split.{split}.field.{field}")
}

/// The metric names of the field counters, before their labels.
pub const SHADOW_FIELD_TOTAL: &str = "turnout.shadow_field_total";
pub const SHADOW_NOISE_TOTAL: &str = "turnout.shadow_noise_total";

/// The `split` and `field` label values of a split's field counter, as
/// its name writes them.
pub fn shadow_field_labels(split: &str, field: &str) -> (String, String) {
    (sanitize(split), field_label_of(field))
}

/// A label as it is (`_other`, `_root`), a pointer as its label.
fn field_label_of(field: &str) -> String {
    if field.starts_with('_') {
        sanitize(field)
    } else {
        shadow_field_label(field)
    }
}

/// Every metric a plan defines, in the order the request path indexes them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatsLayout {
    /// Counter names: per split, per cluster, the reasons then the classes;
    /// then per split (and [`NO_SPLIT`]) the two modes' rejections; then
    /// the shadows' (see `add_shadows`).
    pub counters: Vec<String>,
    /// Histogram names: per split, per cluster, the latency; then per
    /// split with a shadow, its copies' latency.
    pub histograms: Vec<String>,
    /// Gauge names: per split, the guard state; then per split with a
    /// shadow, its `shadow_tripped`. All start at 0.
    pub gauges: Vec<String>,
    /// Gauge names and values: per split, per cluster, whether it is the
    /// split's stable cluster (1) or a target (0). Alerts on "the new side"
    /// need it: which cluster is stable is not a label of the counters.
    pub stable_info: Vec<(String, bool)>,
    /// Where each split's first counter and histogram are.
    split_base: Vec<(usize, usize)>,
    rejected_base: usize,
    /// Per split, where its shadow's series are, if it has a shadow.
    shadow_base: Vec<Option<ShadowBase>>,
}

/// A shadowed split's first `shadow_total` counter (the
/// `shadow_mismatch_total` ones follow), its `shadow_latency_ms` histogram
/// and its `shadow_tripped` gauge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ShadowBase {
    counter: usize,
    histogram: usize,
    gauge: usize,
}

const PER_CLUSTER: usize = Reason::ALL.len() + Class::ALL.len();
const MODES: [Mode; 2] = [Mode::ReadOnly, Mode::Maintenance];

impl StatsLayout {
    pub fn of(plan: &Plan) -> StatsLayout {
        let mut layout = StatsLayout::default();
        for split in &plan.splits {
            layout
                .split_base
                .push((layout.counters.len(), layout.histograms.len()));
            let s = sanitize(&split.name);
            let first_info = layout.stable_info.len();
            for cluster in &split.clusters {
                let c = sanitize(cluster);
                for reason in Reason::ALL {
                    layout.counters.push(format!(
                        "turnout.requests_total.split.{s}.cluster.{c}.reason.{}",
                        reason.as_str()
                    ));
                }
                for class in Class::ALL {
                    layout.counters.push(format!(
                        "turnout.responses_total.split.{s}.cluster.{c}.class.{}",
                        class.as_str()
                    ));
                }
                layout
                    .histograms
                    .push(format!("turnout.latency_ms.split.{s}.cluster.{c}"));
                layout.stable_info.push((
                    format!("turnout.stable_cluster_info.split.{s}.cluster.{c}"),
                    layout.stable_info.len() == first_info,
                ));
            }
            layout
                .gauges
                .push(format!("turnout.guard_tripped.split.{s}"));
        }
        layout.rejected_base = layout.counters.len();
        let splits = plan.splits.iter().map(|s| sanitize(&s.name));
        for s in splits.chain(std::iter::once(NO_SPLIT.to_string())) {
            for mode in MODES {
                layout.counters.push(format!(
                    "turnout.rejected_total.split.{s}.mode.{}",
                    mode.as_str()
                ));
            }
        }
        layout.add_shadows(plan);
        layout
    }

    /// The shadows' series, after every other (so a plan without a shadow
    /// defines exactly what it did before shadows existed, and a gauge's
    /// index below the split count is still that split's guard):
    /// per shadowed split, its `shadow_total` counters by outcome, its
    /// `shadow_mismatch_total` counters by part, its latency histogram and
    /// its `shadow_tripped` gauge. The field series are defined as fields
    /// are seen (`shadow::FieldTable`).
    fn add_shadows(&mut self, plan: &Plan) {
        for split in &plan.splits {
            let Some(shadow) = &split.shadow else {
                self.shadow_base.push(None);
                continue;
            };
            self.shadow_base.push(Some(ShadowBase {
                counter: self.counters.len(),
                histogram: self.histograms.len(),
                gauge: self.gauges.len(),
            }));
            let (s, c) = (sanitize(&split.name), sanitize(&shadow.cluster));
            for outcome in Outcome::ALL {
                self.counters.push(format!(
                    "turnout.shadow_total.split.{s}.cluster.{c}.outcome.{}",
                    outcome.as_str()
                ));
            }
            for part in Part::ALL {
                self.counters.push(format!(
                    "turnout.shadow_mismatch_total.split.{s}.cluster.{c}.part.{}",
                    part.as_str()
                ));
            }
            self.histograms
                .push(format!("turnout.shadow_latency_ms.split.{s}.cluster.{c}"));
            self.gauges
                .push(format!("turnout.shadow_tripped.split.{s}"));
        }
    }

    fn shadow(&self, split: usize) -> Option<ShadowBase> {
        self.shadow_base.get(split).copied().flatten()
    }

    /// The `shadow_total` counter of a copy's outcome; `None` when the
    /// split has no shadow.
    pub fn shadow_outcome(&self, split: usize, outcome: Outcome) -> Option<usize> {
        Some(self.shadow(split)?.counter + outcome as usize)
    }

    /// The `shadow_mismatch_total` counter of a differing part.
    pub fn shadow_mismatch(&self, split: usize, part: Part) -> Option<usize> {
        Some(self.shadow(split)?.counter + Outcome::ALL.len() + part as usize)
    }

    /// The `shadow_latency_ms` histogram of a split's copies.
    pub fn shadow_latency(&self, split: usize) -> Option<usize> {
        Some(self.shadow(split)?.histogram)
    }

    /// The `shadow_tripped` gauge of a split (an index into `gauges`).
    pub fn shadow_tripped(&self, split: usize) -> Option<usize> {
        Some(self.shadow(split)?.gauge)
    }

    /// The `requests_total` counter of a decision.
    pub fn request(&self, split: usize, cluster: usize, reason: Reason) -> usize {
        self.split_base[split].0 + cluster * PER_CLUSTER + reason as usize
    }

    /// The `responses_total` counter of a finished request.
    pub fn response(&self, split: usize, cluster: usize, class: Class) -> usize {
        self.split_base[split].0 + cluster * PER_CLUSTER + Reason::ALL.len() + class as usize
    }

    /// The latency histogram of a split's cluster.
    pub fn latency(&self, split: usize, cluster: usize) -> usize {
        self.split_base[split].1 + cluster
    }

    /// The `rejected_total` counter of a mode's answer (`split` `None`:
    /// the request matched no split).
    pub fn rejected(&self, split: Option<usize>, mode: Mode) -> Option<usize> {
        let row = split.unwrap_or(self.split_base.len());
        let col = MODES.iter().position(|m| *m == mode)?;
        Some(self.rejected_base + row * MODES.len() + col)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    #[test]
    fn names_follow_the_contract() {
        let plan = parse(
            br#"{"splits": [
            {"name": "users", "match": {"route": "users"}, "stable": "legacy", "targets": [{"cluster": "fastapi", "weight": 5}]},
            {"name": "v1.orders", "match": {"prefix": "/o"}, "stable": "outbound|80||orders.ns.svc.cluster.local", "targets": []}]}"#,
        )
        .unwrap();
        let layout = StatsLayout::of(&plan);
        let counter = |i: usize| layout.counters[i].as_str();
        assert_eq!(
            counter(layout.request(0, 1, Reason::Bucket)),
            "turnout.requests_total.split.users.cluster.fastapi.reason.bucket"
        );
        assert_eq!(
            counter(layout.request(0, 0, Reason::Anonymous)),
            "turnout.requests_total.split.users.cluster.legacy.reason.anonymous"
        );
        assert_eq!(
            counter(layout.response(0, 1, Class::Reset)),
            "turnout.responses_total.split.users.cluster.fastapi.class.reset"
        );
        assert_eq!(
            counter(layout.response(1, 0, Class::ServerError)),
            "turnout.responses_total.split.v1_orders.cluster.outbound_80__orders_ns_svc_cluster_local.class.5xx"
        );
        assert_eq!(
            layout.histograms[layout.latency(0, 1)],
            "turnout.latency_ms.split.users.cluster.fastapi"
        );
        assert_eq!(
            layout.gauges,
            [
                "turnout.guard_tripped.split.users",
                "turnout.guard_tripped.split.v1_orders"
            ]
        );
        assert_eq!(
            counter(layout.rejected(Some(1), Mode::Maintenance).unwrap()),
            "turnout.rejected_total.split.v1_orders.mode.maintenance"
        );
        assert_eq!(
            counter(layout.rejected(None, Mode::ReadOnly).unwrap()),
            "turnout.rejected_total.split._none.mode.read_only"
        );
        assert_eq!(layout.rejected(None, Mode::Normal), None);
        // Every index is distinct and in range.
        let mut all: Vec<usize> = (0..2)
            .flat_map(|c| Reason::ALL.map(|r| layout.request(0, c, r)))
            .chain((0..2).flat_map(|c| Class::ALL.map(|k| layout.response(0, c, k))))
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 22);
        assert_eq!(layout.counters.len(), 3 * 11 + 3 * 2);
    }

    #[test]
    fn classes() {
        assert_eq!(Class::of(Some(200), false), Class::Success);
        assert_eq!(Class::of(Some(101), false), Class::Success);
        assert_eq!(Class::of(Some(302), false), Class::Redirect);
        assert_eq!(Class::of(Some(404), false), Class::ClientError);
        assert_eq!(Class::of(Some(503), false), Class::ServerError);
        assert_eq!(Class::of(Some(503), true), Class::Reset);
        assert_eq!(Class::of(Some(0), false), Class::Reset);
        assert_eq!(Class::of(None, false), Class::Reset);
        assert!(details_mean_reset(
            b"upstream_reset_before_response_started{remote_reset}"
        ));
        assert!(details_mean_reset(b"downstream_remote_disconnect"));
        assert!(!details_mean_reset(b"via_upstream"));
    }
}
