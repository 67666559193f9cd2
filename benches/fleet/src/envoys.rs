//! The real Envoys beside the simulated proxies: the shipped
//! `envoy/fleet.yaml` on free ports, each with its own node id and one
//! worker, its xDS cluster on the benchmark's server. Started by the
//! integration harness (killed with the benchmark).

use std::fs;
use std::thread::sleep;
use std::time::{Duration, Instant};

use integration::stage::shipped_on_test_ports;
use integration::{workspace_root, Envoy, HttpClient, Upstream};

/// The stat where Envoy shows the version it applied.
const VERSION_STAT: &str = "extension_config_discovery.http_filter.turnout.version_text";

/// The Envoys and the upstreams their clusters point at.
pub struct RealEnvoys {
    pub envoys: Vec<(String, Envoy)>,
    _upstreams: (Upstream, Upstream),
}

impl RealEnvoys {
    /// Starts `count` Envoys named `envoy-0`… at once; each is ready once
    /// it took its first config from the server on `xds_port`.
    pub fn start(count: usize, xds_port: u16, wasm: &str) -> Result<RealEnvoys, String> {
        let upstreams = (Upstream::start("legacy"), Upstream::start("fastapi"));
        let shipped = fs::read_to_string(workspace_root().join("envoy/fleet.yaml"))
            .map_err(|e| format!("envoy/fleet.yaml: {e}"))?;
        let yaml = shipped_on_test_ports(&shipped, &upstreams.0, &upstreams.1)
            .replace("port_value: 18000", &format!("port_value: {xds_port}"))
            .replace("target/wasm32-wasip1/release/turnout.wasm", wasm);
        let envoys = std::thread::scope(|s| {
            let started: Vec<_> = (0..count)
                .map(|i| {
                    let (node, yaml) = (format!("envoy-{i}"), &yaml);
                    s.spawn(move || {
                        let envoy = Envoy::start_with(yaml, 1, |cmd| {
                            cmd.args(["--service-node", &node]);
                        });
                        (node, envoy)
                    })
                })
                .collect();
            started
                .into_iter()
                .map(|h| h.join().map_err(|_| "an Envoy did not start".to_string()))
                .collect::<Result<Vec<_>, String>>()
        })?;
        Ok(RealEnvoys {
            envoys,
            _upstreams: upstreams,
        })
    }

    pub fn nodes(&self) -> impl Iterator<Item = &str> {
        self.envoys.iter().map(|(node, _)| node.as_str())
    }

    /// Waits until every Envoy applied `version` (its own stat says so).
    pub fn wait_applied(&self, version: &str, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let path = format!("/stats?filter={VERSION_STAT}");
        for (node, envoy) in &self.envoys {
            loop {
                let mut admin = HttpClient::new(envoy.admin_port());
                let answer = admin.request("GET", &path, &[("connection", b"close")]);
                let body = answer
                    .map_err(|e| format!("{node}'s admin: {e}"))?
                    .body_str();
                if body.contains(&format!("\"{version}\""))
                    || body.contains(&format!(": {version}"))
                {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!("{node} did not apply {version}: {body}"));
                }
                sleep(Duration::from_millis(2));
            }
        }
        Ok(())
    }
}
