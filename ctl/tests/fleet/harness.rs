//! What the fleet tests share: the real `turnoutctl serve` as a child
//! process, Envoys started from the shipped `envoy/fleet.yaml` (the wasm
//! build) or `envoy/fleet-native.yaml` (the native build), and the
//! `turnoutctl status` calls the tests make.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use integration::process::spawn_tied;
use integration::stage::{served_by, shipped_on_test_ports};
use integration::{
    native_module_dir, scratch_dir, workspace_root, Build, Envoy, HttpClient, Upstream,
};
use serde_json::Value;

/// The fleet's certificates (mutual TLS), made for each test.
#[path = "pki.rs"]
pub mod pki;
pub use pki::{Pki, ProxyTls};

/// The split every fleet test pushes: route `users`, legacy is stable,
/// fastapi the target. alice is bucket 201 (salt "users"), bob 4352.
pub fn config(weight: u32, rollback: bool) -> String {
    format!(
        r#"{{"version": 1, "splits": [{{"name": "users", "match": {{"route": "users"}}, "stable": "legacy",
  "targets": [{{"cluster": "fastapi", "weight": {weight}}}], "salt": "users", "rollback": {rollback}}}]}}
"#
    )
}

/// Unix milliseconds now, the unit of the server's status times.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Replaces `path` atomically (temporary file, fsync, rename) and returns
/// the time, in Unix ms, just before the rename: when the push begins.
pub fn write(path: &Path, text: &str) -> u64 {
    let tmp = path.with_file_name(".push.tmp");
    let mut file = File::create(&tmp).expect("create temporary file");
    file.write_all(text.as_bytes()).expect("write");
    file.sync_all().expect("fsync");
    let at = now_ms();
    fs::rename(&tmp, path).expect("rename");
    at
}

/// What a turnoutctl run printed and how it exited.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn ctl(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_turnoutctl"))
        .args(args)
        .output()
        .expect("run turnoutctl");
    Run {
        code: out.status.code().expect("exited"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The real server, killed when dropped (also while a test unwinds, when
/// its log is shown).
pub struct Server {
    child: Child,
    pub port: u16,
    log: PathBuf,
    /// What `status` calls add to `--server`: a client's TLS files.
    client: Vec<String>,
}

/// `turnoutctl serve`'s arguments for `build`: `--wasm PATH` (the module
/// as the proxies see it), or `--native`.
pub fn build_args(build: Build, wasm: &str) -> Vec<String> {
    match build {
        Build::Wasm => vec!["--wasm".into(), wasm.into()],
        Build::Native => vec!["--native".into()],
    }
}

impl Server {
    /// `turnoutctl serve dir --listen 127.0.0.1:port BUILD_ARGS` (port 0:
    /// any free one; `build_args`), ready once it logs where it listens.
    pub fn start(dir: &Path, build_args: &[String], port: u16) -> Server {
        Server::start_with(dir, build_args, port, &[], &[])
    }

    /// Like `start`, with more arguments for `serve` (`serve_args`) and
    /// for every `status` call (`client_args`).
    pub fn start_with(
        dir: &Path,
        build_args: &[String],
        port: u16,
        serve_args: &[String],
        client_args: &[String],
    ) -> Server {
        let log = scratch_dir("fleet-server").join("server.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_turnoutctl"));
        cmd.arg("serve")
            .arg(dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(build_args)
            .args(serve_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("create the server log"));
        let child = spawn_tied(cmd).expect("start turnoutctl serve");
        let mut server = Server {
            child,
            port,
            log,
            client: client_args.to_vec(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        server.port = loop {
            let found = server.log().lines().find_map(|l| {
                let rest = l.split("listening on 127.0.0.1:").nth(1)?;
                rest.split(' ').next()?.parse::<u16>().ok()
            });
            if let Some(port) = found {
                break port;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("turnoutctl serve exited ({status}):\n{}", server.log());
            }
            assert!(
                Instant::now() < deadline,
                "the server did not start:\n{}",
                server.log()
            );
            sleep(Duration::from_millis(10));
        };
        server
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: the server gets no chance to say goodbye to its streams.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `turnoutctl status --server ADDR` with this server's client
    /// arguments, then `args`.
    pub fn ask(&self, args: &[&str]) -> Run {
        let addr = self.addr();
        let mut all = vec!["status", "--server", &addr];
        all.extend(self.client.iter().map(String::as_str));
        all.extend(args);
        ctl(&all)
    }

    /// Replaces what `status` calls add to `--server`.
    pub fn set_client(&mut self, client_args: &[String]) {
        self.client = client_args.to_vec();
    }

    /// `GET /status`.
    pub fn status(&self) -> Value {
        let run = self.ask(&["--json"]);
        assert_eq!(run.code, 0, "status: {}", run.stderr);
        serde_json::from_str(&run.stdout).expect("status --json is JSON")
    }

    /// The status, once `done` holds for it (panics after 10 s).
    pub fn status_until(&self, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let status = self.status();
            if done(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the status did not get there: {status:#}"
            );
            sleep(Duration::from_millis(20));
        }
    }

    /// `GET /metrics`, read with the harness's own HTTP client.
    pub fn metrics(&self) -> String {
        let response = HttpClient::new(self.port).get("/metrics", &[]);
        assert_eq!(response.status, 200);
        response.body_str()
    }

    /// `turnoutctl status --wait-file file --proxies n`: its run.
    pub fn wait_file(&self, file: &Path, proxies: usize) -> Run {
        let file = file.to_string_lossy();
        let n = proxies.to_string();
        self.ask(&["--wait-file", &file, "--proxies", &n, "--timeout", "20"])
    }

    /// Like `wait_file`, and it must succeed.
    pub fn acked(&self, file: &Path, proxies: usize) {
        let run = self.wait_file(file, proxies);
        assert_eq!(
            run.code,
            0,
            "{}{}\n--- server log ---\n{}",
            run.stdout,
            run.stderr,
            self.log()
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- turnoutctl serve log ---\n{}", self.log());
        }
        self.kill();
    }
}

/// How a test proxy is started.
#[derive(Clone)]
pub struct Options {
    /// Which bootstrap: envoy/fleet.yaml or envoy/fleet-native.yaml.
    pub build: Build,
    /// Subscribe over ADS instead of the ECDS service.
    pub ads: bool,
    /// Envoy's working directory (a relative module path is resolved there).
    pub cwd: Option<PathBuf>,
    /// The wasm module path in the bootstrap's default_config.
    pub wasm: String,
    /// The native build's module directory
    /// (`ENVOY_DYNAMIC_MODULES_SEARCH_PATH`); the release build's if `None`.
    pub modules: Option<PathBuf>,
    /// Replaces the bootstrap's initial_fetch_timeout.
    pub initial_fetch_timeout: Option<&'static str>,
    /// Mutual TLS: the shipped envoy/fleet-tls.yaml with these files.
    pub tls: Option<ProxyTls>,
    /// More arguments for Envoy (`--component-log-level config:debug`).
    pub envoy_args: Vec<&'static str>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            build: Build::Wasm,
            ads: false,
            cwd: None,
            wasm: String::new(),
            modules: None,
            initial_fetch_timeout: None,
            tls: None,
            envoy_args: Vec::new(),
        }
    }
}

/// One Envoy of the fleet, with its node id.
pub struct Proxy {
    pub node: String,
    pub envoy: Envoy,
}

impl Proxy {
    /// Envoy from its build's shipped fleet bootstrap, its ports made free
    /// or pointed at the test's upstreams and servers (`xds_ports`: one
    /// endpoint of the xDS cluster each), node id `node`, one worker.
    pub fn start(
        node: &str,
        xds_ports: &[u16],
        upstreams: &(Upstream, Upstream),
        options: &Options,
    ) -> Proxy {
        let yaml = fleet_yaml(xds_ports, upstreams, options);
        let modules = match options.build {
            Build::Wasm => None,
            Build::Native => Some(options.modules.clone().unwrap_or_else(native_module_dir)),
        };
        let envoy = Envoy::start_with(&yaml, 1, |cmd| {
            cmd.args(["--service-node", node]).args(&options.envoy_args);
            if let Some(dir) = &options.cwd {
                cmd.current_dir(dir);
            }
            if let Some(dir) = &modules {
                cmd.env("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", dir);
            }
        });
        Proxy {
            node: node.to_string(),
            envoy,
        }
    }

    /// The upstream that served `user` on route `users` (`None`: Envoy
    /// answered itself), asserting a 200 when an upstream did.
    pub fn serves(&self, user: &str) -> Option<String> {
        let response = self
            .envoy
            .client("turnout")
            .get("/users", &[("x-user-id", user)]);
        let by = served_by(&response);
        if by.is_some() {
            assert_eq!(response.status, 200, "{}", response.body_str());
        }
        by
    }

    /// The ECDS subscription's stat `name` in this Envoy (text stats too).
    pub fn ecds_stat(&self, name: &str) -> String {
        let key = format!("extension_config_discovery.http_filter.turnout.{name}: ");
        let stats = self.envoy.stats();
        let value = stats.lines().find_map(|l| l.strip_prefix(key.as_str()));
        value.unwrap_or_default().trim_matches('"').to_string()
    }
}

/// Starts proxies named `nodes` at once (each waits for its first config).
pub fn start_all(
    nodes: &[(&str, Options)],
    xds_ports: &[u16],
    upstreams: &(Upstream, Upstream),
) -> Vec<Proxy> {
    std::thread::scope(|s| {
        let started: Vec<_> = nodes
            .iter()
            .map(|(node, options)| {
                s.spawn(move || Proxy::start(node, xds_ports, upstreams, options))
            })
            .collect();
        started
            .into_iter()
            .map(|h| h.join().expect("an Envoy started"))
            .collect()
    })
}

/// The shipped bootstrap of a fleet proxy of `build` (with mutual TLS:
/// envoy/fleet-tls.yaml, a wasm proxy's).
pub fn shipped_fleet_yaml(build: Build, tls: bool) -> String {
    let path = match (build, tls) {
        (Build::Wasm, false) => "envoy/fleet.yaml",
        (Build::Wasm, true) => "envoy/fleet-tls.yaml",
        (Build::Native, false) => "envoy/fleet-native.yaml",
        (Build::Native, true) => panic!("the TLS fleet tests run the wasm build"),
    };
    fs::read_to_string(workspace_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The commented-out second endpoint of the shipped bootstraps' xDS
/// cluster: a second replica, once uncommented.
const SECOND_REPLICA: &str =
    "        # - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 18001}}}";

/// The shipped fleet bootstrap of `options.build` with the test's ports
/// (one or two servers, the second as the bootstrap's comment says),
/// module path and TLS files.
pub fn fleet_yaml(
    xds_ports: &[u16],
    (legacy, fastapi): &(Upstream, Upstream),
    options: &Options,
) -> String {
    let shipped = shipped_fleet_yaml(options.build, options.tls.is_some());
    let mut yaml = shipped_on_test_ports(&shipped, legacy, fastapi);
    if let [_, second] = xds_ports {
        assert!(yaml.contains(SECOND_REPLICA), "the second replica's line");
        yaml = yaml.replace(
            SECOND_REPLICA,
            &SECOND_REPLICA
                .replace("# - ", "- ")
                .replace("port_value: 18001", &format!("port_value: {second}")),
        );
    }
    let mut yaml = yaml
        .replace(
            "port_value: 18000",
            &format!("port_value: {}", xds_ports[0]),
        )
        .replace("target/wasm32-wasip1/release/turnout.wasm", &options.wasm);
    if let Some(timeout) = options.initial_fetch_timeout {
        yaml = yaml.replace(
            "initial_fetch_timeout: 5s",
            &format!("initial_fetch_timeout: {timeout}"),
        );
    }
    if let Some(tls) = &options.tls {
        for (shipped, file) in [
            ("certs/proxy.pem", &tls.cert),
            ("certs/proxy.key", &tls.key),
            ("certs/ca.pem", &tls.ca),
        ] {
            assert!(yaml.contains(shipped), "the TLS bootstrap names {shipped}");
            yaml = yaml.replace(shipped, &file.to_string_lossy());
        }
    }
    if options.ads {
        // As the bootstrap's own comment says to.
        let start = yaml
            .find("                api_config_source:")
            .expect("api_config_source");
        let end = yaml
            .find("              default_config:")
            .expect("default_config");
        yaml.replace_range(start..end, "                ads: {}\n");
        yaml.push_str(
            "dynamic_resources:\n  ads_config: {api_type: GRPC, transport_api_version: V3, \
             grpc_services: [{envoy_grpc: {cluster_name: turnout_xds}}]}\n",
        );
    }
    assert_ne!(yaml, shipped);
    yaml
}

/// What a fleet test runs on: the upstreams, and the served directory
/// with `turnout.json` holding `config(weight, false)`.
pub struct Stage {
    pub upstreams: (Upstream, Upstream),
    pub dir: PathBuf,
    pub file: PathBuf,
}

pub fn setup(weight: u32) -> Stage {
    let upstreams = (Upstream::start("legacy"), Upstream::start("fastapi"));
    let dir = scratch_dir("fleet-dir");
    let file = dir.join("turnout.json");
    write(&file, &config(weight, false));
    Stage {
        upstreams,
        dir,
        file,
    }
}

/// A stage, its server (serving with `build_args`) and its proxies, every
/// one of which has ACKed the first config.
pub struct Fleet {
    pub stage: Stage,
    pub server: Server,
    pub proxies: Vec<Proxy>,
}

impl Fleet {
    pub fn start(stage: Stage, build_args: &[String], nodes: &[(&str, Options)]) -> Fleet {
        let server = Server::start(&stage.dir, build_args, 0);
        let proxies = start_all(nodes, &[server.port], &stage.upstreams);
        server.acked(&stage.file, nodes.len());
        Fleet {
            stage,
            server,
            proxies,
        }
    }
}

/// The status row of `node`'s subscription to `turnout`.
pub fn track<'a>(status: &'a Value, node: &str) -> &'a Value {
    let proxy = status["proxies"]
        .as_array()
        .and_then(|all| all.iter().find(|p| p["node"] == node))
        .unwrap_or_else(|| panic!("{node} is not in the status: {status:#}"));
    &proxy["resources"][0]
}

/// The version the server serves for `turnout`.
pub fn served_version(status: &Value) -> String {
    status["resources"][0]["version"]
        .as_str()
        .expect("a served version")
        .to_string()
}

/// Sends `user`'s request to every proxy until each is served by `want`;
/// the time (Unix ms) at which each was first seen doing so.
pub fn until_served(proxies: &[Proxy], user: &str, want: &str) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen: Vec<Option<u64>> = vec![None; proxies.len()];
    while seen.iter().any(Option::is_none) {
        for (i, p) in proxies.iter().enumerate() {
            if seen[i].is_none() && p.serves(user).as_deref() == Some(want) {
                seen[i] = Some(now_ms());
            }
        }
        assert!(
            Instant::now() < deadline,
            "not every proxy serves {user} from {want}: {seen:?}"
        );
    }
    seen.into_iter().flatten().collect()
}

/// Median and worst of `values`, sorted in place.
pub fn median_worst(values: &mut [u64]) -> (u64, u64) {
    values.sort_unstable();
    (values[values.len() / 2], values[values.len() - 1])
}
