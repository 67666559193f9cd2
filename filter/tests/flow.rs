//! The request's flow, driven on the host through a host that records what
//! it is asked: which headers are written and how, when the route cache is
//! cleared, what is counted. The real-Envoy tests prove the behaviour; these
//! pin the flow that both shells share, call by call.

use std::cell::{Cell, RefCell};

use turnout::config::parse;
use turnout::decide::{Decision, PlainRequest, Reason, RequestFacts};
use turnout::flow::{Action, Host, Shared, Stream, Write};
use turnout::plan::{ActiveWeights, Plan};
use turnout::shadow::{Opened, Reply, ShadowPlan, Side};
use turnout::stats::{Class, StatsLayout};

/// A plugin configuration's state, with the guard's observations kept.
struct Config {
    plan: Plan,
    layout: StatsLayout,
    active: ActiveWeights,
    observed: RefCell<Vec<(Decision, Class, Option<u64>)>>,
}

impl Config {
    fn new(json: &str) -> Config {
        let plan = parse(json.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        Config {
            layout: StatsLayout::of(&plan),
            active: plan.weights_at(0),
            plan,
            observed: RefCell::default(),
        }
    }
}

impl Shared for Config {
    fn plan(&self) -> &Plan {
        &self.plan
    }
    fn layout(&self) -> &StatsLayout {
        &self.layout
    }
    fn with_active<R>(&self, f: impl FnOnce(&ActiveWeights) -> R) -> R {
        f(&self.active)
    }
    fn next_u64(&self) -> u64 {
        0x0123_4567_89ab_cdef
    }
    fn observe(&self, decision: &Decision, class: Class, latency_ms: Option<u64>, _now: u64) {
        self.observed
            .borrow_mut()
            .push((*decision, class, latency_ms));
    }
    // These tests configure no shadow: the runtime's copies are tested in
    // tests/runtime.rs and against the real Envoy.
    fn shadow_open(
        &self,
        _: usize,
        _: &ShadowPlan,
        _: (&[u8], &[u8], &str),
        _: bool,
        _: u32,
    ) -> Opened {
        Opened::Stopped
    }
    fn shadow_answer(&self, _: u64, _: Side, _: Reply) {}
}

/// A host that records every call the flow makes, in order.
#[derive(Default)]
struct Recorder {
    request: PlainRequest,
    calls: RefCell<Vec<String>>,
    /// The headers read, in order (each read is a call into Envoy natively).
    reads: RefCell<Vec<String>>,
    counted: RefCell<Vec<usize>>,
    recorded: RefCell<Vec<(usize, u64)>>,
    clock: Cell<u64>,
    code: Option<u64>,
    reset: bool,
}

impl Recorder {
    fn get(headers: &[(&str, &str)]) -> Recorder {
        let mut request = PlainRequest {
            route_name: Some("users".into()),
            path: Some("/users".into()),
            method: Some("GET".into()),
            ..Default::default()
        };
        for (name, value) in headers {
            request
                .headers
                .push((name.to_string(), value.as_bytes().to_vec()));
        }
        Recorder {
            request,
            ..Default::default()
        }
    }

    fn calls(&self) -> Vec<String> {
        self.calls.take()
    }

    fn call(&self, call: String) {
        self.calls.borrow_mut().push(call);
    }
}

impl RequestFacts for Recorder {
    fn route_name(&self) -> Option<&[u8]> {
        self.request.route_name()
    }
    fn path(&self) -> Option<&[u8]> {
        self.request.path()
    }
    fn method(&self) -> Option<&[u8]> {
        self.request.method()
    }
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.reads.borrow_mut().push(name.to_string());
        self.request.header(name)
    }
}

impl Host for Recorder {
    fn set_request_header(&self, name: &str, value: Option<&[u8]>, how: Write) {
        let value = value.map(|v| String::from_utf8_lossy(v).into_owned());
        self.call(format!("request {name} {value:?} {how:?}"));
    }
    fn clear_route_cache(&self) {
        self.call("clear_route_cache".into());
    }
    fn set_response_header(&self, name: &str, value: &[u8]) {
        self.call(format!(
            "response {name} {}",
            String::from_utf8_lossy(value)
        ));
    }
    fn send_local_response(&self, status: u32, headers: &[(&str, &[u8])], body: &[u8]) {
        let names: Vec<&str> = headers.iter().map(|(n, _)| *n).collect();
        let body = String::from_utf8_lossy(body);
        self.call(format!("local {status} {names:?} {body}"));
    }
    fn monotonic_nanos(&self) -> u64 {
        self.clock.get()
    }
    fn response_code(&self) -> Option<u64> {
        self.code
    }
    fn response_details_mean_reset(&self) -> bool {
        self.reset
    }
    fn count(&self, counter: usize) {
        self.counted.borrow_mut().push(counter);
    }
    fn record(&self, histogram: usize, value: u64) {
        self.recorded.borrow_mut().push((histogram, value));
    }
}

const USERS: &str = r#"{"debug": true, "splits": [{"name": "users", "match": {"route": "users"},
    "stable": "legacy", "targets": [{"cluster": "fastapi", "weight": 100}]}]}"#;

/// The traceparent the flow makes from `Config::next_u64`.
const TRACE_ID: &str = "efcdab8967452301efcdab8967452301";

#[test]
fn a_routed_request_is_written_counted_echoed_and_observed() {
    let config = Config::new(USERS);
    let mut host = Recorder::get(&[("x-user-id", "alice")]);
    host.clock.set(5_000_000);
    let mut stream = Stream::default();
    assert_eq!(stream.on_request_headers(&config, &host), Action::Continue);
    assert_eq!(
        host.calls(),
        [
            format!("request traceparent Some(\"00-{TRACE_ID}-efcdab8967452301-01\") Add"),
            "request x-turnout-cluster Some(\"fastapi\") Set".to_string(),
            "clear_route_cache".to_string(),
        ]
    );
    let layout = &config.layout;
    assert_eq!(host.counted.take(), [layout.request(0, 1, Reason::Bucket)]);
    stream.on_response_headers(&config, &host);
    assert_eq!(
        host.calls(),
        [
            format!("response x-trace-id {TRACE_ID}"),
            "response x-turnout-decision split=users; cluster=fastapi; reason=bucket; bucket=201"
                .to_string(),
        ]
    );
    host.clock.set(47_000_000);
    host.code = Some(200);
    stream.on_done(&config, &host);
    assert_eq!(host.counted.take(), [layout.response(0, 1, Class::Success)]);
    assert_eq!(host.recorded.take(), [(layout.latency(0, 1), 42)]);
    let observed = config.observed.take();
    assert_eq!(observed.len(), 1);
    assert_eq!((observed[0].1, observed[0].2), (Class::Success, Some(42)));
}

#[test]
fn a_client_never_picks_its_cluster() {
    // Taken by a split: set, which replaces the inbound value (the
    // shells' `Set`; real Envoy proves it for both builds).
    let config = Config::new(USERS);
    let host = Recorder::get(&[("x-user-id", "alice"), ("x-turnout-cluster", "legacy")]);
    Stream::default().on_request_headers(&config, &host);
    assert!(host
        .calls()
        .contains(&"request x-turnout-cluster Some(\"fastapi\") Set".to_string()));
    // Taken by no split: removed, and the route matched again.
    let mut host = Recorder::get(&[("x-turnout-cluster", "fastapi")]);
    host.request.route_name = Some("other".into());
    let mut stream = Stream::default();
    assert_eq!(stream.on_request_headers(&config, &host), Action::Continue);
    let calls = host.calls();
    assert_eq!(
        calls[1..],
        [
            "request x-turnout-cluster None Replace".to_string(),
            "clear_route_cache".to_string()
        ]
    );
    // A request no split takes is neither counted nor observed.
    host.code = Some(200);
    stream.on_done(&config, &host);
    assert!(host.counted.take().is_empty());
    assert!(config.observed.take().is_empty());
}

#[test]
fn a_mode_answers_locally_and_the_response_is_not_touched() {
    let config = Config::new(
        r#"{"mode": "read_only", "splits": [{"name": "users", "match": {"route": "users"},
        "stable": "legacy", "targets": []}]}"#,
    );
    let mut host = Recorder::get(&[]);
    host.request.method = Some("POST".into());
    let mut stream = Stream::default();
    assert_eq!(stream.on_request_headers(&config, &host), Action::Stop);
    let calls = host.calls();
    let local = calls.last().map(String::as_str).unwrap_or_default();
    assert!(
        local.starts_with(r#"local 503 ["retry-after", "content-type", "x-trace-id"]"#),
        "{calls:?}"
    );
    let layout = &config.layout;
    assert_eq!(
        host.counted.take(),
        [layout
            .rejected(Some(0), turnout::plan::Mode::ReadOnly)
            .unwrap_or(usize::MAX)]
    );
    stream.on_response_headers(&config, &host);
    assert!(host.calls().is_empty());
}

#[test]
fn a_503_is_5xx_unless_the_stream_was_reset() {
    let config = Config::new(USERS);
    for (code, reset, class) in [
        (Some(503), false, Class::ServerError),
        (Some(503), true, Class::Reset),
        (None, false, Class::Reset),
        (Some(404), true, Class::ClientError),
    ] {
        let mut host = Recorder::get(&[("x-user-id", "alice")]);
        let mut stream = Stream::default();
        stream.on_request_headers(&config, &host);
        host.counted.take();
        (host.code, host.reset) = (code, reset);
        stream.on_done(&config, &host);
        assert_eq!(
            host.counted.take(),
            [config.layout.response(0, 1, class)],
            "{code:?} {reset}"
        );
        // A clock that reads 0 records no latency, and the guard hears so.
        assert!(host.recorded.take().is_empty());
        assert_eq!(config.observed.take()[0].2, None);
    }
}

/// Natively each read is a call into Envoy: a routed request reads each
/// header it needs once, in this order, and never the decision header it
/// is about to set.
#[test]
fn a_routed_request_reads_each_header_once() {
    let config = Config::new(
        r#"{"user_key": [{"header": "x-user-id"}, {"cookie": "uid"}],
        "splits": [{"name": "users", "match": {"route": "users"}, "stable": "legacy",
        "targets": [{"cluster": "fastapi", "weight": 50}],
        "pin": {"fastapi": ["qa-1"]}, "force_header": "x-turnout-force"}]}"#,
    );
    let host = Recorder::get(&[("x-user-id", "alice")]);
    Stream::default().on_request_headers(&config, &host);
    assert_eq!(
        host.reads.take(),
        ["x-user-id", "x-turnout-force", "traceparent", "tracestate"]
    );
    // A valid inbound traceparent is kept: nothing more to read.
    let host = Recorder::get(&[
        ("x-user-id", "alice"),
        (
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
    ]);
    Stream::default().on_request_headers(&config, &host);
    assert_eq!(
        host.reads.take(),
        ["x-user-id", "x-turnout-force", "traceparent"]
    );
}
