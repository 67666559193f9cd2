//! `turnoutctl shadow` against the real Envoy, each build: the report read
//! from the proxy's admin endpoint counts what the proxy counted, with the
//! field that differs named.

use std::process::Command;
use std::time::{Duration, Instant};

use integration::stage::Stage;
use integration::{scratch_dir, Build};

const CONFIG: &str = r#"{"splits": [{"name": "users", "match": {"route": "users"},
    "stable": "legacy", "targets": [{"cluster": "fastapi", "weight": 0}],
    "shadow": {"cluster": "fastapi", "noise": true}}]}"#;

#[test]
fn reports_what_the_wasm_proxy_counted() {
    reports_what_the_proxy_counted(Build::Wasm);
}

#[test]
fn reports_what_the_native_proxy_counted() {
    reports_what_the_proxy_counted(Build::Native);
}

fn reports_what_the_proxy_counted(build: Build) {
    let stage = Stage::inline_with(build, CONFIG, 1);
    stage
        .legacy
        .answer("/users/1", 200, r#"{"at":{n},"price":2}"#, Duration::ZERO);
    stage
        .fastapi
        .answer("/users/1", 200, r#"{"at":{n},"price":3}"#, Duration::ZERO);
    stage
        .legacy
        .answer("/users/2", 200, r#"{"id":2}"#, Duration::ZERO);
    stage
        .fastapi
        .answer("/users/2", 200, r#"{"id":2.0}"#, Duration::ZERO);
    let mut client = stage.client();
    for _ in 0..5 {
        for path in ["/users/1", "/users/2"] {
            assert_eq!(client.get(path, &[("x-user-id", "u")]).status, 200);
        }
    }
    let stat = |o: &str| {
        let name = format!(
            "{}.turnout.shadow_total.split.users.cluster.fastapi.outcome.{o}",
            stage.build.stats_namespace()
        );
        stage.envoy.stat(&name).unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while stat("match") + stat("mismatch") < 10 {
        assert!(Instant::now() < deadline, "copies not settled");
        std::thread::sleep(Duration::from_millis(50));
    }
    let dir = scratch_dir("ctl-shadow");
    let config = dir.join("config.json");
    std::fs::write(&config, CONFIG).expect("write config");
    let admin = format!("http://127.0.0.1:{}", stage.envoy.admin_port());
    // Histograms reach /stats/prometheus at Envoy's stats flush (1 s here).
    let report = || {
        let out = Command::new(env!("CARGO_BIN_EXE_turnoutctl"))
            .args(["shadow", &config.to_string_lossy(), "--envoy-admin", &admin])
            .output()
            .expect("run turnoutctl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut text = report();
    while text.contains("copies p50 -") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        text = report();
    }
    assert!(
        text.starts_with("users → fastapi: 10 compared · mismatch 50.00 %"),
        "{text}"
    );
    let price = text.lines().find(|l| l.trim_start().starts_with("/price"));
    assert!(price.is_some_and(|l| l.ends_with("50.00 %")), "{text}");
    assert!(
        text.contains("noise (not counted as mismatches): /at (5)"),
        "{text}"
    );
    assert!(
        !text.lines().any(|l| l.trim_start().starts_with("/at ")),
        "{text}"
    );
}
