//! `turnoutctl rollout` end to end: the real controller binary (a child
//! process tied to the test) drives a fleet of two real Envoys that watch
//! one ECDS file, in front of real upstreams, judging the target from a
//! real Prometheus scraping both proxies or from their admin endpoints.
//! Failures come from Envoy's fault filter after turnout (so turnout counts
//! its 503s as the target's), switched on live through the admin runtime
//! layer (`fault.http.abort.abort_percent`).
//!
//! These are smoke tests of the whole: every decision the controller
//! makes (when a step passes, fails, holds longer, stops for someone
//! else's change, waits for ACKs) is unit-tested without I/O in
//! `ctl/src/rollout/machine/tests.rs`. Here real runs check that the
//! pieces meet: a healthy ramp judged through Prometheus, a failing target
//! scraped from the admin endpoints and rolled back, a rollout through
//! the fleet server whose step a proxy NACKs, and a shadowed split whose
//! shadow-only step passes and whose next step fails on mismatches,
//! through Prometheus and through the admin endpoints (the wasm build,
//! which sends the copies). Only outcomes are asserted
//! (exit code, the config left, lines present, where the traffic goes):
//! when within a step a failure is found depends on the machine's load.
//!
//! Times are compressed: holds of 2 s, intervals of 1 s. The figures the
//! issue asks for (time from the failure to the rollback on every proxy,
//! and what the failing target served meanwhile) are printed:
//! `cargo test -p turnoutctl --test rollout -- --nocapture`.

use std::fs;
use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant};

use integration::Upstream;

use integration::{filter_wasm, scratch_dir};
use serde_json::Value;

/// The fleet tests' harness: the real `turnoutctl serve`, and Envoys
/// started from the shipped `envoy/fleet.yaml` that take the config from it.
#[allow(dead_code)]
#[path = "fleet/harness.rs"]
mod served;

#[path = "rollout/harness.rs"]
mod harness;

use harness::*;

/// A healthy target goes through every step, judged through a Prometheus
/// that scrapes both proxies; at the end every proxy sends every user to
/// it, and the decision log has every write and verdict.
#[test]
fn prometheus_healthy_target_ramps_10_to_100() {
    let fleet = Fleet::start(CONFIG, [None, None], true);
    let log = fleet.dir.join("decisions.jsonl");
    let plan = fleet.plan(STEPS, ANALYSIS, "rollback");
    let started = Instant::now();
    let controller = Controller::start(&plan, &["--log", &log.to_string_lossy()]);
    let (code, output) = controller.finish(RUN_TIMEOUT);
    println!("healthy run: {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(code, 0, "{output}");
    assert_eq!(
        passed_steps(&output),
        [
            "step 1/5 fastapi 10 %",
            "step 2/5 fastapi 30 %",
            "step 3/5 fastapi 50 %",
            "step 4/5 fastapi 80 %",
            "step 5/5 fastapi 100 %"
        ]
    );
    assert!(
        output.contains("rollout users: DONE: fastapi reached 100 %"),
        "{output}"
    );
    assert_eq!(fleet.split(), (100.0, false));
    // Every proxy has applied the last step: new users all go to fastapi.
    sleep(Duration::from_millis(300));
    let after = Instant::now();
    sleep(Duration::from_millis(500));
    let answers = fleet.traffic.answers();
    for proxy in 0..2 {
        let late: Vec<&Answer> = answers
            .iter()
            .filter(|a| a.proxy == proxy && a.at > after)
            .collect();
        assert!(!late.is_empty());
        assert!(
            late.iter()
                .all(|a| a.cluster == "fastapi" && a.status == 200),
            "proxy {proxy}"
        );
    }
    // The decision log: one JSON object per line, the writes and verdicts.
    let text = fs::read_to_string(&log).expect("read the decision log");
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let events = |name: &str| records.iter().filter(|r| r["event"] == name).count();
    assert_eq!(
        (events("start"), events("set"), events("done")),
        (1, 5, 1),
        "{text}"
    );
    let passes: Vec<&Value> = records.iter().filter(|r| r["verdict"] == "pass").collect();
    assert_eq!(passes.len(), 5, "{text}");
    for pass in passes {
        assert!(
            pass["target_figures"]["responses"]
                .as_u64()
                .expect("responses")
                >= 20,
            "{pass}"
        );
        assert!(pass["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
}

/// The target starts failing (10 % 503) once step 2 is written, judged
/// from both proxies' admin endpoints: the controller rolls the split
/// back, and every proxy sends everyone to legacy. Printed: the time from
/// the failure to the last proxy's rollback, and what the target served
/// (and failed) meanwhile. When the failure is found (while step 2
/// settles or in its hold, or even a step later on a stalled machine) is
/// measured, not asserted; which phase finds what is unit-tested.
#[test]
fn envoy_admin_failing_target_is_rolled_back() {
    let fleet = Fleet::start(
        CONFIG,
        [Some(fastapi_fault(0)), Some(fastapi_fault(0))],
        false,
    );
    let plan = fleet.plan(STEPS, ANALYSIS, "rollback");
    let controller = Controller::start(&plan, &[]);
    controller.wait_for_line("step 2/5 fastapi 30 %: set:", RUN_TIMEOUT);
    let failed_at = fleet.fail_fastapi(10);
    let (code, output) = controller.finish(RUN_TIMEOUT);
    assert_eq!(code, 3, "{output}");
    // Rolled back at the step it was found in, which the file keeps.
    let weight = rolled_back_weight(&output);
    assert!(weight >= 30.0, "{output}");
    assert!(!output.contains("DONE"), "{output}");
    assert_eq!(fleet.split(), (weight, true));
    // Each proxy's first answer with reason rollback; none to fastapi after.
    sleep(Duration::from_millis(500));
    let answers = fleet.traffic.answers();
    let mut last_rollback = failed_at;
    for proxy in 0..2 {
        let mine: Vec<&Answer> = answers.iter().filter(|a| a.proxy == proxy).collect();
        let first = mine
            .iter()
            .position(|a| a.at > failed_at && a.reason == "rollback")
            .unwrap_or_else(|| panic!("proxy {proxy} never rolled back"));
        assert!(
            mine[first..].iter().all(|a| a.cluster == "legacy"),
            "proxy {proxy}"
        );
        last_rollback = last_rollback.max(mine[first].at);
    }
    let during: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.at > failed_at && a.at <= last_rollback && a.cluster == "fastapi")
        .collect();
    let errors = during.iter().filter(|a| a.status == 503).count();
    let judged = output
        .lines()
        .filter(|l| l.starts_with("step 2/5 fastapi 30 % · held"))
        .count();
    println!(
        "envoy_admin: failure at step 2 → rollback on every proxy in {:.2} s (judged intervals of step 2: {judged}); the target served {} requests meanwhile ({errors} of them 503)",
        (last_rollback - failed_at).as_secs_f64(),
        during.len()
    );
}

/// Through `turnoutctl serve` (plan field `server`), to two proxies that
/// load the module by a relative path, each from its own directory as on
/// two hosts: each step's hold starts once both proxies ACKed the step.
/// Then proxy b loses its module during step 1's hold, NACKs step 2, and
/// the rollout stops there with `on_failure` applied: the rollback is
/// written, proxy a takes it, and b (which NACKs it too) keeps step 1.
#[test]
fn through_the_fleet_server_holds_start_at_the_acks_and_a_nack_rolls_back() {
    let stage = served::setup(0);
    served::write(&stage.file, CONFIG);
    let hosts: Vec<PathBuf> = ["a", "b"]
        .iter()
        .map(|node| {
            let dir = scratch_dir(&format!("rollout-host-{node}"));
            std::os::unix::fs::symlink(filter_wasm(), dir.join("turnout.wasm"))
                .expect("symlink the module");
            dir
        })
        .collect();
    let nodes: Vec<(&str, served::Options)> = ["a", "b"]
        .into_iter()
        .zip(&hosts)
        .map(|(node, dir)| {
            let options = served::Options {
                cwd: Some(dir.clone()),
                wasm: "turnout.wasm".into(),
                ..served::Options::default()
            };
            (node, options)
        })
        .collect();
    let fleet = served::Fleet::start(
        stage,
        &served::build_args(integration::Build::Wasm, "turnout.wasm"),
        &nodes,
    );
    let file = fleet.stage.file.clone();
    let ports = fleet
        .proxies
        .iter()
        .map(|p| p.envoy.listener_port("turnout"))
        .collect();
    let traffic = Traffic::start(ports);
    let admins: Vec<String> = fleet
        .proxies
        .iter()
        .map(|p| format!("\"http://127.0.0.1:{}\"", p.envoy.admin_port()))
        .collect();
    let plan = fleet.stage.dir.join("plan.json");
    fs::write(
        &plan,
        format!(
            r#"{{"config": {}, "split": "users", "target": "fastapi", "steps": [10, 30, 50],
  "hold_s": {HOLD_S}, "interval_s": {INTERVAL_S}, "metrics": {{"envoy_admin": [{}]}},
  "analysis": {ANALYSIS}, "on_failure": "rollback", "server": "{}"}}"#,
            serde_json::to_string(&file.to_string_lossy()).expect("a string"),
            admins.join(", "),
            fleet.server.addr()
        ),
    )
    .expect("write the plan");

    let controller = Controller::start(&plan, &[]);
    controller.wait_for_line("step 1/3 fastapi 10 % · held", RUN_TIMEOUT);
    fs::remove_file(hosts[1].join("turnout.wasm")).expect("remove b's module");
    let (code, output) = controller.finish(RUN_TIMEOUT);
    assert_eq!(code, 3, "{output}");
    let lines: Vec<&str> = output.lines().collect();
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in\n{output}"))
    };
    // Step 1: written, ACKed by both, then held.
    let set = at("step 1/3 fastapi 10 %: set:");
    let acked = at("step 1/3 fastapi 10 %: ACKed by all 2 connected proxies (");
    let held = at("step 1/3 fastapi 10 % · held");
    assert!(set < acked && acked < held, "{output}");
    // Step 2: NACKed by b, with Envoy's message; rolled back, never held.
    assert!(
        output.contains("ROLLED BACK at step 2/3 fastapi 30 %: NACKed by b: "),
        "{output}"
    );
    assert!(output.contains("turnout.wasm"), "Envoy's message: {output}");
    assert!(!output.contains("step 2/3 fastapi 30 % · held"), "{output}");
    assert!(
        output.contains("NOT every proxy has the rollback"),
        "{output}"
    );
    let text = fs::read_to_string(&file).expect("read the config");
    let doc: Value = serde_json::from_str(&text).expect("the config is JSON");
    assert_eq!(doc["splits"][0]["rollback"], true);
    assert_eq!(doc["splits"][0]["targets"][0]["weight"], 30);
    // a took the rollback; b still serves step 1 (10 %), as it ACKed it:
    // one in ten of its new users still reaches fastapi (waited for, not
    // counted in a fixed window: a loaded machine sends less traffic).
    sleep(Duration::from_millis(300));
    let after = Instant::now();
    let deadline = after + Duration::from_secs(10);
    let late = || -> Vec<Answer> {
        let answers = traffic.answers().into_iter();
        answers.filter(|a| a.at > after).collect()
    };
    while !late()
        .iter()
        .any(|a| a.proxy == 1 && a.cluster == "fastapi" && a.reason == "bucket")
    {
        assert!(Instant::now() < deadline, "b sent no new user to fastapi");
        sleep(Duration::from_millis(50));
    }
    let from_a: Vec<Answer> = late().into_iter().filter(|a| a.proxy == 0).collect();
    assert!(!from_a.is_empty());
    assert!(from_a.iter().all(|a| a.reason == "rollback"));
}

/// Through a fleet server that speaks mutual TLS (the plan's `server` is
/// `https://…`): refused as a usage error without the controller's TLS
/// files; with them, each step's hold starts at the proxy's ACK, asked over
/// TLS with the operator's certificate, and the rollout reaches its end.
#[test]
fn through_a_fleet_server_over_mutual_tls_the_controller_asks_with_its_certificate() {
    let stage = served::setup(0);
    served::write(&stage.file, CONFIG);
    let pki = served::Pki::new();
    let wasm = filter_wasm().to_string_lossy().into_owned();
    let server = pki.server(&stage.dir, &wasm);
    let a = served::Options {
        tls: Some(pki.proxy("a", &pki.ca, &["a"])),
        wasm: wasm.clone(),
        ..served::Options::default()
    };
    let proxies = served::start_all(&[("a", a)], &[server.port], &stage.upstreams);
    server.acked(&stage.file, 1);
    let _traffic = Traffic::start(vec![proxies[0].envoy.listener_port("turnout")]);
    let plan = stage.dir.join("plan.json");
    fs::write(
        &plan,
        format!(
            r#"{{"config": {}, "split": "users", "target": "fastapi", "steps": [10, 30],
  "hold_s": {HOLD_S}, "interval_s": {INTERVAL_S},
  "metrics": {{"envoy_admin": ["http://127.0.0.1:{}"]}},
  "analysis": {ANALYSIS}, "on_failure": "rollback", "server": "https://{}"}}"#,
            serde_json::to_string(&stage.file.to_string_lossy()).expect("a string"),
            proxies[0].envoy.admin_port(),
            server.addr()
        ),
    )
    .expect("write the plan");
    let plan_text = plan.to_string_lossy().into_owned();

    let bare = served::ctl(&["rollout", &plan_text]);
    assert_eq!(bare.code, 2, "{}{}", bare.stdout, bare.stderr);
    assert!(
        bare.stderr
            .contains("an https:// server wants --tls-cert, --tls-key and --ca"),
        "{}",
        bare.stderr
    );

    // An operator whose certificate another CA signed: the server refuses
    // it at the handshake, and the controller ends (exit 1) instead of
    // asking again for ever.
    let stranger = integration::pki::Ca::new("another CA");
    let stranger_files = stranger.leaf(&["operator"]).write(&stage.dir, "stranger");
    let stranger = served::pki::client_args(&stranger_files, &pki.ca_file);
    let stranger: Vec<&str> = stranger.iter().map(String::as_str).collect();
    let (code, output) = Controller::start(&plan, &stranger).finish(RUN_TIMEOUT);
    assert_eq!(code, 1, "{output}");
    assert!(!output.contains("ACKed"), "{output}");
    // It had written step 1 before it asked: back to the start, in bytes
    // of a version the server never served (CONFIG's own version is one
    // it served before, which a wait would take for superseded if the
    // server had not read the file again yet).
    served::write(&stage.file, &format!("{CONFIG}\n"));
    server.acked(&stage.file, 1);

    let operator = pki.operator_args(&pki.ca_file);
    let operator: Vec<&str> = operator.iter().map(String::as_str).collect();
    let (code, output) = Controller::start(&plan, &operator).finish(RUN_TIMEOUT);
    assert_eq!(code, 0, "{output}");
    for step in ["step 1/2 fastapi 10 %", "step 2/2 fastapi 30 %"] {
        let acked = format!("{step}: ACKed by all 1 connected proxies (");
        assert!(output.contains(&acked), "{acked:?} in\n{output}");
    }
}

/// A shadowed split through `[0, 50]`: the shadow-only step passes on
/// copies that match (both sides answer `/users` alike); once step 2 is
/// written, the new side answers a field differently, so the copies of
/// stable's requests mismatch, and step 2 (held long enough that it cannot
/// pass before the change lands) fails on them: rolled back at 50 %.
fn shadow_only_step_passes_then_mismatches_roll_back(prometheus: bool) {
    let fleet = Fleet::start(SHADOWED, [None, None], prometheus);
    let (legacy, fastapi) = fleet.upstreams();
    let answer = |upstream: &Upstream, name: &str| {
        let body = format!(r#"{{"id": 7, "name": "{name}", "tags": ["a", "b"]}}"#);
        upstream.answer("/users", 200, &body, Duration::ZERO);
    };
    answer(legacy, "ada");
    answer(fastapi, "ada");
    let analysis = r#"{"min_requests": 20, "max_error_rate": 0.01, "max_p99_ms": 5000,
      "max_mismatch_rate": 0.01, "max_shadow_error_rate": 0.05}"#;
    let plan = fleet.plan(r#"[0, {"weight": 50, "hold_s": 20}]"#, analysis, "rollback");
    let log = fleet.dir.join("shadow-decisions.jsonl");
    let controller = Controller::start(&plan, &["--log", &log.to_string_lossy()]);
    controller.wait_for_line("step 2/2 fastapi 50 %: set:", RUN_TIMEOUT);
    answer(fastapi, "Ada");
    let (code, output) = controller.finish(RUN_TIMEOUT);
    assert_eq!(code, 3, "{output}");
    // Step 1: every user on legacy, judged on the copies alone, passed.
    assert_eq!(passed_steps(&output), ["step 1/2 fastapi 0 %"], "{output}");
    let passed = output
        .lines()
        .find(|l| l.starts_with("step 1/2 fastapi 0 % · held") && l.ends_with("· passed"))
        .expect("step 1 passed");
    assert!(passed.contains(" · 0 req · "), "{passed}");
    assert!(passed.contains(" · mismatches 0.00 % · passed"), "{passed}");
    // Step 2: failed on the mismatches, with the figures, and rolled back.
    let failed = output
        .lines()
        .find(|l| l.starts_with("step 2/2 fastapi 50 % · held") && l.contains("· FAILED: "))
        .unwrap_or_else(|| panic!("no failed interval in\n{output}"));
    assert!(failed.contains("· FAILED: mismatch_rate "), "{failed}");
    assert!(failed.contains(" compared)"), "{failed}");
    assert!(
        output.contains("rollout users: ROLLED BACK at step 2/2 fastapi 50 %: mismatch_rate "),
        "{output}"
    );
    assert_eq!(fleet.split(), (50.0, true));
    // The decision log has the failure's figures.
    let text = fs::read_to_string(&log).expect("read the decision log");
    let rollback: Value = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("a JSON line"))
        .find(|r| r["event"] == "rollback")
        .unwrap_or_else(|| panic!("no rollback record in\n{text}"));
    let why = rollback["why"].as_str().expect("why");
    assert!(
        why.starts_with("mismatch_rate ") && why.ends_with(" compared)"),
        "{why}"
    );
}

#[test]
fn prometheus_shadow_only_step_passes_then_mismatches_roll_back() {
    shadow_only_step_passes_then_mismatches_roll_back(true);
}

#[test]
fn envoy_admin_shadow_only_step_passes_then_mismatches_roll_back() {
    shadow_only_step_passes_then_mismatches_roll_back(false);
}
