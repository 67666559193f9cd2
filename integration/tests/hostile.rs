//! Hostile requests through the real Envoy, and what happens when the wasm
//! VM cannot serve.
//!
//! Every hostile request gets a sane decision that the core predicts
//! (`turnout::bucket::Bucket::of` on the exact bytes that arrived) and a
//! normal response, or is refused by Envoy itself before the filter runs
//! (431 for heads over Envoy's limits); Envoy's log stays free of wasm
//! failures. The decisions are listed in SECURITY.md ("Hostile input").
//!
//! The failure-policy tests load a fixture filter that traps on request
//! (`integration/wasm-fixtures/panicky`), since turnout must never trap,
//! and show what Envoy 1.40 does under each `failure_policy`.
//!
//! The trust tests put turnout behind `jwt_authn` and show that the
//! SECURITY.md recipe (strip client headers, then let the auth filter set
//! the key) leaves a client no way to choose its key or force a cluster.

use std::time::{Duration, Instant};

use integration::stage::{bootstrap, served_by, upstream_saw, Stage, DECISION_HEADER};
use integration::Build;
use integration::{build_wasm_package, wasm_filter_inline, Envoy, HttpClient, Response, Upstream};
use turnout::bucket::Bucket;

/// The design's split at 50 %, every key source, pins, the force header,
/// and the debug header that shows each decision.
const CONFIG: &str = r#"{"version": 1, "debug": true,
    "user_key": [{"header": "x-user-id"}, {"cookie": "uid"}, {"query": "uid"}],
    "splits": [{"name": "users", "match": {"route": "users"}, "stable": "legacy",
        "targets": [{"cluster": "fastapi", "weight": 50}], "salt": "users",
        "pin": {"fastapi": ["qa-1"]}, "force_header": "x-turnout-force"}]}"#;

/// A decision as the debug header shows it.
#[derive(Debug, PartialEq, Eq)]
struct Shown {
    cluster: String,
    reason: String,
    bucket: Option<u16>,
}

/// What the core predicts for a request keyed by exactly `key`.
fn keyed(key: &[u8]) -> Shown {
    let bucket = Bucket::of(b"users", key).0;
    Shown {
        cluster: if bucket < 5000 { "fastapi" } else { "legacy" }.into(),
        reason: "bucket".into(),
        bucket: Some(bucket),
    }
}

fn anonymous() -> Shown {
    Shown {
        cluster: "legacy".into(),
        reason: "anonymous".into(),
        bucket: None,
    }
}

/// Sends a request that Envoy must serve: a 200 from the upstream the
/// decision names, with the decision header the upstream saw matching it.
fn decided(client: &mut HttpClient, path: &str, headers: &[(&str, &[u8])]) -> (Shown, Response) {
    let r = client
        .request("GET", path, headers)
        .unwrap_or_else(|e| panic!("GET {}: {e}", short(path)));
    assert_eq!(r.status, 200, "{}: {}", short(path), r.body_str());
    let text = r
        .header("x-turnout-decision")
        .unwrap_or_else(|| panic!("no decision header: {:?}", r.headers));
    let field = |name: &str| {
        text.split("; ")
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_string)
    };
    let shown = Shown {
        cluster: field("cluster").expect("a cluster"),
        reason: field("reason").expect("a reason"),
        bucket: field("bucket").map(|b| b.parse().expect("a bucket number")),
    };
    assert_eq!(field("split").as_deref(), Some("users"));
    assert_eq!(served_by(&r).as_deref(), Some(shown.cluster.as_str()));
    assert!(upstream_saw(&r, DECISION_HEADER, &shown.cluster));
    (shown, r)
}

fn short(s: &str) -> String {
    if s.len() > 60 {
        format!("{}… ({} bytes)", &s[..60], s.len())
    } else {
        s.to_string()
    }
}

/// The lines of an Envoy log that show a wasm failure: a trap or panic, a
/// failed `proxy_on_*` call, or anything the wasm subsystem logged at error
/// or above. Refused configurations are not failures.
fn wasm_failures(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            let l_lower = l.to_ascii_lowercase();
            (l.contains("][wasm]") && (l.contains("][error]") || l.contains("][critical]")))
                || l_lower.contains("panicked")
                || l.contains("unreachable")
                || (l.contains("Function: proxy_on") && l.contains("failed"))
                || l.contains("turnout: panic caught")
                || l.contains("the filter failed")
        })
        .filter(|l| !l.contains("configuration refused"))
        .collect()
}

/// The filter is still alive and deciding, and nothing failed in wasm.
fn assert_healthy(stage: &Stage) {
    let mut client = stage.client();
    assert_eq!(
        decided(&mut client, "/users", &[("x-user-id", b"alice")]).0,
        keyed(b"alice")
    );
    // The log is flushed every 10 ms.
    std::thread::sleep(Duration::from_millis(50));
    let log = stage.envoy.log();
    let failures = wasm_failures(&log);
    assert!(
        failures.is_empty(),
        "wasm failures in Envoy's log:\n{}",
        failures.join("\n")
    );
}

fn non_utf8_bytes_in_every_header_the_filter_reads(build: Build) {
    let stage = Stage::inline_with(build, CONFIG, 2);
    let mut client = stage.client();
    let key: &[u8] = b"\xff\xfe\xc3\x28user\x80\xa0";

    // A user key that is not UTF-8 is hashed as the bytes it is.
    let (shown, r) = decided(&mut client, "/users", &[("x-user-id", key)]);
    assert_eq!(shown, keyed(key));
    // (The test upstream echoes headers lossily as UTF-8.)
    assert!(upstream_saw(&r, "x-user-id", &String::from_utf8_lossy(key)));

    // The same bytes as a cookie value.
    let mut cookie = b"theme=\xff\xff; uid=".to_vec();
    cookie.extend_from_slice(key);
    cookie.extend_from_slice(b"; x=\xc0");
    assert_eq!(
        decided(&mut client, "/users", &[("cookie", &cookie)]).0,
        keyed(key)
    );

    // A force header that is not UTF-8 names no cluster: ignored.
    for force in [&b"\xfffastapi"[..], b"fastapi\xff", b"\xc3\xa9"] {
        let headers = [("x-user-id", &b"bob"[..]), ("x-turnout-force", force)];
        assert_eq!(decided(&mut client, "/users", &headers).0, keyed(b"bob"));
    }
    // ... while a clean one still works on the same connection.
    let forced = [
        ("x-user-id", &b"bob"[..]),
        ("x-turnout-force", &b"fastapi"[..]),
    ];
    assert_eq!(decided(&mut client, "/users", &forced).0.reason, "force");

    // A traceparent that is not UTF-8 is invalid: replaced by a new one.
    let mut tp = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0".to_vec();
    tp.push(0xff);
    let (_, r) = decided(
        &mut client,
        "/users",
        &[("x-user-id", b"bob"), ("traceparent", &tp)],
    );
    let trace_id = r.header("x-trace-id").expect("a trace id");
    assert_eq!(trace_id.len(), 32);
    assert_ne!(trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    let sent = format!("traceparent: 00-{trace_id}-");
    assert!(r.body_str().contains(&sent), "{}", r.body_str());
    assert_healthy(&stage);
}

fn an_8_kib_user_key_is_hashed_as_is(build: Build) {
    let stage = Stage::inline_with(build, CONFIG, 1);
    let mut client = stage.client();
    for len in [8 * 1024, 16 * 1024] {
        let key: Vec<u8> = (0..len).map(|i| b"abcdefghij-0123456789"[i % 21]).collect();
        let (shown, _) = decided(&mut client, "/users", &[("x-user-id", &key)]);
        assert_eq!(shown, keyed(&key), "a {len}-byte key");
        // Sticky, like any key.
        assert_eq!(
            decided(&mut client, "/users", &[("x-user-id", &key)]).0,
            shown
        );
    }
    assert_healthy(&stage);
}

fn two_hundred_malformed_cookies_and_the_key_is_still_found(build: Build) {
    let stage = Stage::inline_with(build, CONFIG, 1);
    let mut client = stage.client();
    let junk: Vec<String> = (0..200)
        .map(|i| match i % 5 {
            0 => format!("junk{i}"),
            1 => "=".to_string(),
            2 => format!("=v{i}"),
            3 => format!("uidx{i}=no"),
            _ => format!("c{i}=\"{i}"),
        })
        .collect();
    let cookie = format!("{}; uid=carol; uid=second", junk.join("; "));
    assert_eq!(
        decided(&mut client, "/users", &[("cookie", cookie.as_bytes())]).0,
        keyed(b"carol")
    );
    // Only junk: no key, so the anonymous rule (stable).
    let only_junk = junk.join(";");
    assert_eq!(
        decided(&mut client, "/users", &[("cookie", only_junk.as_bytes())]).0,
        anonymous()
    );
    // A quoted value loses its quotes; an empty one is no key.
    assert_eq!(
        decided(&mut client, "/users", &[("cookie", b"uid=\"carol\"")]).0,
        keyed(b"carol")
    );
    assert_eq!(
        decided(&mut client, "/users", &[("cookie", b"uid=; uid=dave")]).0,
        anonymous()
    );
    assert_healthy(&stage);
}

fn empty_and_duplicated_user_headers(build: Build) {
    let stage = Stage::inline_with(build, CONFIG, 1);
    let mut client = stage.client();
    // Empty: no key from the header; the next source (cookie) is used.
    assert_eq!(
        decided(&mut client, "/users", &[("x-user-id", b"")]).0,
        anonymous()
    );
    let empty_then_cookie = [("x-user-id", &b""[..]), ("cookie", &b"uid=erin"[..])];
    assert_eq!(
        decided(&mut client, "/users", &empty_then_cookie).0,
        keyed(b"erin")
    );
    let blank = [("x-user-id", &b"   "[..])];
    assert_eq!(
        decided(&mut client, "/users", &blank).0,
        anonymous(),
        "OWS is trimmed by Envoy"
    );

    // Two x-user-id headers: Envoy keeps both (it does not join them), and
    // turnout reads the first. The upstream sees both.
    let two = [("x-user-id", &b"frank"[..]), ("x-user-id", &b"grace"[..])];
    let (shown, r) = decided(&mut client, "/users", &two);
    assert_eq!(shown, keyed(b"frank"));
    assert!(upstream_saw(&r, "x-user-id", "frank") && upstream_saw(&r, "x-user-id", "grace"));
    // Empty first, then a value: the first is empty, so no key from the
    // header; turnout does not look at later values of the same header,
    // and with no cookie or query key the request is anonymous.
    let empty_first = [("x-user-id", &b""[..]), ("x-user-id", &b"grace"[..])];
    assert_eq!(decided(&mut client, "/users", &empty_first).0, anonymous());
    // Two cookie headers over HTTP/1.1 (RFC 6265 §5.4 says a client sends
    // one): Envoy keeps both and turnout reads the first, so a uid only in
    // the second is not found. (HTTP/2 cookie crumbs are joined by Envoy's
    // codec into one header before any filter runs.)
    let two_cookies = [("cookie", &b"a=1"[..]), ("cookie", &b"uid=heidi"[..])];
    let (shown, r) = decided(&mut client, "/users", &two_cookies);
    assert_eq!(shown, anonymous());
    assert!(upstream_saw(&r, "cookie", "a=1") && upstream_saw(&r, "cookie", "uid=heidi"));
    let uid_first = [("cookie", &b"uid=heidi"[..]), ("cookie", &b"uid=ivy"[..])];
    assert_eq!(
        decided(&mut client, "/users", &uid_first).0,
        keyed(b"heidi")
    );
    assert_healthy(&stage);
}

fn force_headers_with_separators_or_junk_are_ignored(build: Build) {
    let stage = Stage::inline_with(build, CONFIG, 1);
    let mut client = stage.client();
    let junk_5k: Vec<u8> = (0..5 * 1024)
        .map(|i| b"fastapi,; \t=legacy"[i % 18])
        .collect();
    let cases: Vec<&[u8]> = vec![
        b"fastapi, legacy",
        b"fastapi,fastapi",
        b"fastapi;q=1",
        b"fastapi legacy",
        b"\"fastapi\"",
        b"FASTAPI",
        b"fast\tapi",
        &junk_5k,
    ];
    for force in cases {
        let headers = [("x-user-id", &b"ivan"[..]), ("x-turnout-force", force)];
        assert_eq!(
            decided(&mut client, "/users", &headers).0,
            keyed(b"ivan"),
            "force {:?}",
            String::from_utf8_lossy(&force[..force.len().min(40)])
        );
        // Without a key: the anonymous rule, not the force.
        assert_eq!(
            decided(&mut client, "/users", &[("x-turnout-force", force)]).0,
            anonymous()
        );
    }
    // Envoy trims surrounding whitespace from values: this one forces.
    let padded = [
        ("x-user-id", &b"ivan"[..]),
        ("x-turnout-force", &b"fastapi\t "[..]),
    ];
    assert_eq!(decided(&mut client, "/users", &padded).0.reason, "force");
    // Two force headers: the first is read; a valid second one is ignored.
    let two = [
        ("x-turnout-force", &b"nope"[..]),
        ("x-turnout-force", &b"fastapi"[..]),
    ];
    assert_eq!(decided(&mut client, "/users", &two).0, anonymous());
    assert_healthy(&stage);
}

fn long_paths_and_queries_up_to_envoys_limits(build: Build) {
    let stage = Stage::inline_with(build, CONFIG, 1);
    let mut client = stage.client();
    // A query near Envoy's 60 KiB header limit: the key is found at its end.
    let filler = "a=".to_string() + &"x".repeat(50 * 1024);
    let path = format!("/users?{filler}&uid=judy");
    let (shown, _) = decided(&mut client, &path, &[]);
    assert_eq!(shown, keyed(b"judy"));
    // A long percent-encoded key is decoded, then hashed.
    let encoded_key = "%E2%9C%93".repeat(2000);
    let path = format!("/users?uid={encoded_key}");
    assert_eq!(
        decided(&mut client, &path, &[]).0,
        keyed("✓".repeat(2000).as_bytes())
    );
    // A long path with no query and no key: anonymous.
    let path = format!("/users/{}", "p/".repeat(20 * 1024));
    assert_eq!(decided(&mut client, &path, &[]).0, anonymous());

    // Over the limit: Envoy answers 431 itself; neither the filter nor an
    // upstream sees the request.
    let before = (stage.legacy.requests(), stage.fastapi.requests());
    let path = format!("/users?uid=kim&{}", "b".repeat(61 * 1024));
    let r = client.request("GET", &path, &[]).expect("an answer");
    assert_eq!(r.status, 431, "{:?}", r.headers);
    assert_eq!(r.header("x-turnout-decision"), None);
    let huge_header = vec![b'k'; 61 * 1024];
    let r = client
        .request("GET", "/users", &[("x-user-id", &huge_header)])
        .expect("an answer");
    assert_eq!(r.status, 431);
    // More than Envoy's 100 headers: refused too.
    let many: Vec<(String, Vec<u8>)> = (0..120)
        .map(|i| (format!("x-h{i}"), b"v".to_vec()))
        .collect();
    let many: Vec<(&str, &[u8])> = many
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    let r = client.request("GET", "/users", &many).expect("an answer");
    assert_eq!(r.status, 431);
    assert_eq!((stage.legacy.requests(), stage.fastapi.requests()), before);
    assert_healthy(&stage);
}

fn control_bytes_and_an_inbound_decision_header(build: Build) {
    let stage = Stage::inline_with(build, CONFIG, 1);
    let mut client = stage.client();
    // Control bytes (other than a tab) in a header value: Envoy's HTTP/1
    // codec refuses the request with 400 before any filter runs.
    for value in [&b"a\x01b"[..], b"a\x7fb", b"a\x00b"] {
        let r = client
            .request("GET", "/users", &[("x-user-id", value)])
            .expect("an answer");
        assert_eq!(r.status, 400, "{value:?}");
        assert_eq!(r.header("x-turnout-decision"), None);
        assert_eq!(served_by(&r), None);
        client.close();
    }
    // A tab inside a value is legal: hashed with the rest.
    let tabbed = &b"tab\tinside"[..];
    assert_eq!(
        decided(&mut client, "/users", &[("x-user-id", tabbed)]).0,
        keyed(tabbed)
    );
    // A client-sent decision header, even a hostile one, never picks.
    let leo = keyed(b"leo");
    let other = if leo.cluster == "legacy" {
        "fastapi"
    } else {
        "legacy"
    };
    for forged in [other.as_bytes(), b"fastapi\xff", b""] {
        let headers = [("x-user-id", &b"leo"[..]), (DECISION_HEADER, forged)];
        assert_eq!(decided(&mut client, "/users", &headers).0, leo);
    }
    // Twice: every inbound copy is replaced by the one decision ...
    let twice = [
        (DECISION_HEADER, other.as_bytes()),
        ("x-user-id", b"leo"),
        (DECISION_HEADER, other.as_bytes()),
    ];
    let (shown, r) = decided(&mut client, "/users", &twice);
    assert_eq!(shown, leo);
    assert!(
        !upstream_saw(&r, DECISION_HEADER, other),
        "{}",
        r.body_str()
    );
    // ... and on a route no split takes, every copy is removed.
    let r = client.request("GET", "/other", &twice).expect("an answer");
    assert_eq!((r.status, served_by(&r).as_deref()), (200, Some("legacy")));
    assert!(!r.body_str().contains(DECISION_HEADER), "{}", r.body_str());
    assert_healthy(&stage);
}

// ---------------------------------------------------------------------
// Failure policy: a VM that traps.

/// Envoy with the trapping fixture as its wasm filter (one worker per
/// `concurrency`), a `PluginConfig` policy line (`failure_policy:
/// FAIL_OPEN`, ...) added to the filter's `config`, and the stage's routes.
fn panicky_envoy(policy: Option<&str>, concurrency: u32) -> (Envoy, Upstream, Upstream) {
    let wasm = build_wasm_package("turnout-test-panicky");
    let (legacy, fastapi) = (Upstream::start("legacy"), Upstream::start("fastapi"));
    let mut filter = wasm_filter_inline(&wasm, "");
    if let Some(policy) = policy {
        let line = filter
            .lines()
            .find(|l| l.trim_start().starts_with("root_id:"))
            .expect("a root_id line")
            .to_string();
        let pad = &line[..line.len() - line.trim_start().len()];
        filter = filter.replacen(&line, &format!("{line}\n{pad}{policy}"), 1);
    }
    let envoy = Envoy::start(&bootstrap(&filter, &legacy, &fastapi), concurrency);
    (envoy, legacy, fastapi)
}

/// Status, upstream and the fixture's VM id the upstream saw.
fn probe(
    client: &mut HttpClient,
    path: &str,
    headers: &[(&str, &[u8])],
) -> (u16, Option<String>, Option<String>) {
    let r = client.request("GET", path, headers).expect("an answer");
    let vm = r
        .body_str()
        .lines()
        .find_map(|l| l.strip_prefix("x-panicky-vm: ").map(str::to_string));
    (r.status, served_by(&r), vm)
}

const PANIC: (&str, &[u8]) = ("x-panic", b"1");

fn trap_logged(envoy: &Envoy) {
    envoy.wait_for_log(
        "Function: proxy_on_request_headers failed: Uncaught RuntimeError: unreachable",
        Duration::from_secs(5),
    );
}

#[test]
fn fail_closed_is_the_default_and_a_trapped_vm_answers_503_to_everything() {
    for policy in [None, Some("failure_policy: FAIL_CLOSED")] {
        let (envoy, legacy, fastapi) = panicky_envoy(policy, 1);
        let mut client = envoy.client("main");
        let (status, served, vm) = probe(&mut client, "/users", &[]);
        assert_eq!(
            (status, served.as_deref()),
            (200, Some("fastapi")),
            "{policy:?}"
        );
        assert!(vm.is_some());
        // The trap: the request that caused it is answered 503 by Envoy.
        assert_eq!(probe(&mut client, "/users", &[PANIC]), (503, None, None));
        trap_logged(&envoy);
        // From then on the worker's VM is dead: every request through the
        // filter is refused, routed by turnout or not, and stays refused.
        let before = (legacy.requests(), fastapi.requests());
        let until = Instant::now() + Duration::from_millis(2500);
        while Instant::now() < until {
            assert_eq!(
                probe(&mut client, "/users", &[]),
                (503, None, None),
                "{policy:?}"
            );
            assert_eq!(
                probe(&mut client, "/other", &[]),
                (503, None, None),
                "{policy:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // A forged decision header gets nowhere either.
        let forged = [(DECISION_HEADER, &b"fastapi"[..])];
        assert_eq!(probe(&mut client, "/users", &forged).0, 503);
        assert_eq!((legacy.requests(), fastapi.requests()), before);
    }
}

#[test]
fn after_a_trap_fail_closed_recovers_with_the_next_plugin_config() {
    use integration::{ecds_resource, ecds_stat, scratch_dir, wasm_filter_ecds, write_atomically};
    let wasm = build_wasm_package("turnout-test-panicky");
    let (legacy, fastapi) = (Upstream::start("legacy"), Upstream::start("fastapi"));
    let dir = scratch_dir("ecds");
    let file = dir.join("panicky.yaml");
    write_atomically(&file, &ecds_resource("panicky", &wasm, "first"));
    let filter = wasm_filter_ecds("panicky", &dir, &file);
    let envoy = Envoy::start(&bootstrap(&filter, &legacy, &fastapi), 1);
    let mut client = envoy.client("main");
    let (status, _, first_vm) = probe(&mut client, "/users", &[]);
    assert_eq!(status, 200);
    assert_eq!(probe(&mut client, "/users", &[PANIC]).0, 503);
    trap_logged(&envoy);
    assert_eq!(probe(&mut client, "/users", &[]).0, 503);
    // A changed plugin configuration (an ECDS push, a WasmPlugin edit)
    // builds a new VM: served again.
    write_atomically(&file, &ecds_resource("panicky", &wasm, "second"));
    envoy.wait_for_stat(
        &ecds_stat("panicky", "update_success"),
        |n| n >= 2,
        Duration::from_secs(10),
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let (served, vm) = loop {
        let (status, served, vm) = probe(&mut client, "/users", &[]);
        if status == 200 {
            break (served, vm);
        }
        assert!(Instant::now() < deadline, "still {status} after the push");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(served.as_deref(), Some("fastapi"));
    assert!(
        vm.is_some() && vm != first_vm,
        "a new VM: {vm:?} vs {first_vm:?}"
    );
}

#[test]
fn fail_open_skips_the_filter_so_a_client_could_pick_its_cluster() {
    for policy in ["failure_policy: FAIL_OPEN", "fail_open: true"] {
        let (envoy, _legacy, _fastapi) = panicky_envoy(Some(policy), 1);
        let mut client = envoy.client("main");
        assert_eq!(probe(&mut client, "/users", &[]).0, 200);
        assert_eq!(probe(&mut client, "/users", &[PANIC]), (503, None, None));
        trap_logged(&envoy);
        // The filter is skipped: no decision header, so a cluster_header
        // route has no cluster (503 from the router) ...
        assert_eq!(
            probe(&mut client, "/users", &[]),
            (503, None, None),
            "{policy}"
        );
        // ... other routes pass without it ...
        assert_eq!(
            probe(&mut client, "/other", &[]),
            (200, Some("legacy".into()), None)
        );
        // ... and nothing strips a client's own decision header: it picks.
        let forged = [(DECISION_HEADER, &b"fastapi"[..])];
        assert_eq!(
            probe(&mut client, "/users", &forged),
            (200, Some("fastapi".into()), None)
        );
        if policy.starts_with("fail_open") {
            envoy.wait_for_log(
                "Using deprecated option 'envoy.extensions.wasm.v3.PluginConfig.fail_open'",
                Duration::from_secs(1),
            );
        }
    }
}

#[test]
fn fail_reload_replaces_the_vm_after_a_backoff() {
    let (envoy, _legacy, _fastapi) = panicky_envoy(Some("failure_policy: FAIL_RELOAD"), 1);
    let mut client = envoy.client("main");
    let (status, _, first_vm) = probe(&mut client, "/users", &[]);
    assert_eq!(status, 200);
    let trapped = Instant::now();
    assert_eq!(probe(&mut client, "/users", &[PANIC]), (503, None, None));
    trap_logged(&envoy);
    // Refused (503) while the reload backs off, then served by a new VM.
    let mut refused = 0;
    let (served_at, new_vm) = loop {
        let (status, served, vm) = probe(&mut client, "/users", &[]);
        if status == 200 {
            assert_eq!(served.as_deref(), Some("fastapi"));
            break (trapped.elapsed(), vm);
        }
        assert_eq!(status, 503);
        refused += 1;
        assert!(
            trapped.elapsed() < Duration::from_secs(10),
            "no reload in 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_ne!(new_vm, first_vm, "served by a new VM");
    assert!(new_vm.is_some());
    let success = envoy.wait_for_stat(
        "wasm.turnout.vm_reload_success",
        |v| v >= 1,
        Duration::from_secs(5),
    );
    eprintln!(
        "FAIL_RELOAD: served again by a new VM {:.0} ms after the trap, {refused} requests \
         refused meanwhile (vm_reload_success {success}, vm_reload_backoff {:?})",
        served_at.as_secs_f64() * 1000.0,
        envoy.stat("wasm.turnout.vm_reload_backoff")
    );
    // A second trap is survived the same way.
    assert_eq!(probe(&mut client, "/users", &[PANIC]).0, 503);
    let deadline = Instant::now() + Duration::from_secs(10);
    while probe(&mut client, "/users", &[]).0 != 200 {
        assert!(Instant::now() < deadline, "no second reload");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------
// Trust: the user key comes from an auth filter, never from the client.

/// An HS256 key and a token for `sub: alice` signed with it (no `exp`:
/// jwt_authn checks expiry only when the claim is present). Test material.
const JWKS: &str = r#"{"keys":[{"kty":"oct","alg":"HS256","kid":"test","k":"dHVybm91dC10ZXN0LXNlY3JldC1ub3QtZm9yLXByb2R1Y3Rpb24tMDEyMzQ1Njc4OQ"}]}"#;
const ALICE_JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InRlc3QifQ.eyJpc3MiOiJodHRwczovL2lzc3Vlci50ZXN0Iiwic3ViIjoiYWxpY2UifQ.U4CxmCe_9NN4t0ws7Yo0c11npYOYThkVt856WWDxsa8";

/// The SECURITY.md recipe: a header_mutation filter removes what clients
/// must not set, then jwt_authn writes the verified `sub` claim into
/// x-user-id, then turnout reads it.
const STRIP_CLIENT_HEADERS: &str = r#"name: envoy.filters.http.header_mutation
typed_config:
  "@type": type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation
  mutations:
    request_mutations:
    - remove: x-user-id
    - remove: x-turnout-force"#;

fn jwt_authn() -> String {
    format!(
        r#"name: envoy.filters.http.jwt_authn
typed_config:
  "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
  providers:
    test:
      issuer: https://issuer.test
      local_jwks:
        inline_string: {}
      claim_to_headers:
      - header_name: x-user-id
        claim_name: sub
  rules:
  - match: {{prefix: /}}
    requires:
      requires_any:
        requirements:
        - provider_name: test
        - allow_missing: {{}}"#,
        integration::bootstrap::quote(JWKS)
    )
}

/// The same removals at the connection manager, before route matching and
/// every HTTP filter (`early_header_mutation_extensions`).
const EARLY_STRIP: &str = r#"early_header_mutation_extensions:
- name: strip-client-identity
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation
    mutations:
    - remove: x-user-id
    - remove: x-turnout-force"#;

#[derive(Clone, Copy, Debug)]
enum Strip {
    Nothing,
    HeaderMutationFilter,
    EarlyHeaderMutation,
}

fn auth_stage(strip: Strip) -> (Envoy, Upstream, Upstream) {
    use integration::{Bootstrap, Listener, Route, RouteAction};
    let (legacy, fastapi) = (Upstream::start("legacy"), Upstream::start("fastapi"));
    let mut listener = Listener::new("main");
    if let Strip::HeaderMutationFilter = strip {
        listener = listener.filter(STRIP_CLIENT_HEADERS);
    }
    let mut yaml = Bootstrap::new()
        .listener(
            listener
                .filter(&jwt_authn())
                .filter(&wasm_filter_inline(&integration::filter_wasm(), CONFIG))
                .route(Route::new(
                    "users",
                    "/users",
                    RouteAction::ClusterHeader(DECISION_HEADER.into()),
                )),
        )
        .cluster("legacy", legacy.port())
        .cluster("fastapi", fastapi.port())
        .to_yaml();
    if let Strip::EarlyHeaderMutation = strip {
        let line = yaml
            .lines()
            .find(|l| l.trim_start().starts_with("stat_prefix:"))
            .expect("the HCM's stat_prefix")
            .to_string();
        let pad = &line[..line.len() - line.trim_start().len()];
        let early: Vec<String> = EARLY_STRIP.lines().map(|l| format!("{pad}{l}")).collect();
        yaml = yaml.replacen(&line, &format!("{line}\n{}", early.join("\n")), 1);
    }
    (Envoy::start(&yaml, 1), legacy, fastapi)
}

#[test]
fn the_user_key_comes_from_the_verified_token_when_client_headers_are_stripped() {
    for strip in [Strip::HeaderMutationFilter, Strip::EarlyHeaderMutation] {
        stripped_at_the_edge(strip);
    }
}

fn stripped_at_the_edge(strip: Strip) {
    let (envoy, _legacy, _fastapi) = auth_stage(strip);
    let mut client = envoy.client("main");
    let bearer = format!("Bearer {ALICE_JWT}");
    let auth = ("authorization", bearer.as_bytes());
    // The verified claim is the key.
    assert_eq!(decided(&mut client, "/users", &[auth]).0, keyed(b"alice"));
    // A forged x-user-id is removed before jwt_authn sets the real one.
    let forged = [("x-user-id", &b"mallory"[..]), auth];
    let (shown, r) = decided(&mut client, "/users", &forged);
    assert_eq!(shown, keyed(b"alice"));
    assert!(!r.body_str().contains("mallory"), "{}", r.body_str());
    // Without a token, a forged key is gone: anonymous, not mallory.
    let forged = [("x-user-id", &b"mallory"[..])];
    assert_eq!(decided(&mut client, "/users", &forged).0, anonymous());
    // The force header is stripped at the edge too.
    let force = [("x-turnout-force", &b"fastapi"[..]), auth];
    assert_eq!(
        decided(&mut client, "/users", &force).0,
        keyed(b"alice"),
        "{strip:?}"
    );
    // A bad token is refused by jwt_authn before turnout runs.
    let bad = format!("Bearer {}x", ALICE_JWT);
    let r = client
        .request("GET", "/users", &[("authorization", bad.as_bytes())])
        .expect("an answer");
    assert_eq!(r.status, 401);
    std::thread::sleep(Duration::from_millis(50));
    let log = envoy.log();
    assert!(wasm_failures(&log).is_empty(), "{:?}", wasm_failures(&log));
}

#[test]
fn jwt_authn_sanitizes_its_claim_header_but_nothing_strips_the_force_header() {
    // Without the header_mutation filter. Envoy 1.40's jwt_authn replaces
    // x-user-id with the verified claim when a token is there ...
    let (envoy, _legacy, _fastapi) = auth_stage(Strip::Nothing);
    let mut client = envoy.client("main");
    let bearer = format!("Bearer {ALICE_JWT}");
    let forged = [
        ("x-user-id", &b"mallory"[..]),
        ("authorization", bearer.as_bytes()),
    ];
    let (shown, r) = decided(&mut client, "/users", &forged);
    assert_eq!(shown, keyed(b"alice"));
    assert!(!upstream_saw(&r, "x-user-id", "mallory"));
    // ... and removes a client's x-user-id from a request it lets through
    // without a token (allow_missing): a claim header is never the client's.
    let forged = [("x-user-id", &b"mallory"[..])];
    assert_eq!(decided(&mut client, "/users", &forged).0, anonymous());
    // The force header is no claim: nothing removes it, and any client
    // picks its cluster with it.
    let force = [
        ("x-turnout-force", &b"fastapi"[..]),
        ("authorization", bearer.as_bytes()),
    ];
    assert_eq!(decided(&mut client, "/users", &force).0.reason, "force");
    let force = [("x-turnout-force", &b"fastapi"[..])];
    assert_eq!(decided(&mut client, "/users", &force).0.reason, "force");
}

integration::for_each_build!(
    non_utf8_bytes_in_every_header_the_filter_reads,
    an_8_kib_user_key_is_hashed_as_is,
    two_hundred_malformed_cookies_and_the_key_is_still_found,
    empty_and_duplicated_user_headers,
    force_headers_with_separators_or_junk_are_ignored,
    long_paths_and_queries_up_to_envoys_limits,
    control_bytes_and_an_inbound_decision_header,
);
