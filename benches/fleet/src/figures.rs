//! What one run measured, and how it is shown: a table for people and one
//! JSON object per line for scripts (`BENCH-FLEET {…}`). Times are in
//! milliseconds from the file's rename (or from the restarted server's
//! start) to when the server received the answer (`acked_at_ms` in its
//! status), on one machine's clock.

use std::time::Duration;

use serde_json::{json, Value};

use crate::server::Memory;

/// One push, from the rename to the last answer.
#[derive(Clone, Debug, Default)]
pub struct Push {
    pub version: String,
    /// The server read the file (`since_ms`): the directory poll.
    pub read_ms: u64,
    /// The server sent the last response to a simulated proxy.
    pub sims_last_sent_ms: u64,
    pub sims_last_ack_ms: u64,
    /// `None` without real Envoys.
    pub envoys_last_ack_ms: Option<u64>,
    pub answers: Answers,
    /// The server's CPU time from the rename to the last answer.
    pub cpu: Duration,
    /// What the server logged meanwhile.
    pub log_bytes: u64,
    /// The server's VmRSS once every proxy answered, before the status is read.
    pub rss_kib: u64,
}

/// What the server's status shows every proxy did with one version.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Answers {
    /// Proxies told to ACK whose ACK of the version the status shows.
    pub acked: usize,
    /// Proxies told to NACK whose NACK of it, with their message, it shows.
    pub nacked: usize,
    /// Proxies that did something else (or are missing).
    pub wrong: usize,
}

/// The server killed and started again on the same port.
#[derive(Clone, Debug, Default)]
pub struct Restart {
    /// From the new process's start to its "listening" line.
    pub listening_ms: u64,
    /// From the new process's start to the last simulated proxy's ACK.
    pub sims_last_ack_ms: u64,
    pub envoys_last_ack_ms: Option<u64>,
    pub answers: Answers,
    /// The new server's CPU time until every proxy answered.
    pub cpu: Duration,
    pub memory: Memory,
}

/// A whole run.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub proxies: usize,
    pub nacking: usize,
    pub envoys: usize,
    /// `--poll-ms` given to the server, `None`: its default.
    pub poll_ms: Option<u64>,
    /// RLIMIT_NOFILE's soft limit the benchmark ran with.
    pub nofile: u64,
    /// The server's (it raises its own to the hard limit).
    pub server_nofile: String,
    /// From the first connection to every simulated proxy's first answer.
    pub connect_ms: u64,
    /// The server before any proxy connected.
    pub memory_empty: Memory,
    /// Once every proxy took the first config.
    pub memory_connected: Memory,
    /// After the pushes (VmHWM: the most it ever held).
    pub memory_after: Memory,
    /// The server's CPU per second with nothing to push (its poll, HTTP/2 pings).
    pub idle_cpu_per_s: Duration,
    pub pushes: Vec<Push>,
    pub restart: Restart,
}

/// Median and 99th percentile (nearest rank: of 50 pushes, the worst).
pub fn median_p99(values: &[u64]) -> (u64, u64) {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    if sorted.is_empty() {
        return (0, 0);
    }
    let rank = |p: f64| {
        let r = (p * sorted.len() as f64).ceil() as usize;
        sorted[r.clamp(1, sorted.len()) - 1]
    };
    (rank(0.5), rank(0.99))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Report {
    fn column(&self, each: impl Fn(&Push) -> Option<u64>) -> Option<(u64, u64)> {
        let values: Vec<u64> = self.pushes.iter().filter_map(each).collect();
        (!values.is_empty()).then(|| median_p99(&values))
    }

    /// (what, median, p99) of each per-push time.
    fn times(&self) -> Vec<(&'static str, Option<(u64, u64)>)> {
        vec![
            (
                "rename → read by the server",
                self.column(|p| Some(p.read_ms)),
            ),
            (
                "rename → last response sent to a simulated proxy",
                self.column(|p| Some(p.sims_last_sent_ms)),
            ),
            (
                "rename → last simulated proxy's ACK",
                self.column(|p| Some(p.sims_last_ack_ms)),
            ),
            (
                "rename → last real Envoy's ACK",
                self.column(|p| p.envoys_last_ack_ms),
            ),
            (
                "rename → last ACK of all",
                self.column(|p| Some(p.sims_last_ack_ms.max(p.envoys_last_ack_ms.unwrap_or(0)))),
            ),
        ]
    }

    fn cpu_per_push(&self) -> Duration {
        let total: Duration = self.pushes.iter().map(|p| p.cpu).sum();
        total / (self.pushes.len().max(1) as u32)
    }

    fn log_per_push(&self) -> u64 {
        let total: u64 = self.pushes.iter().map(|p| p.log_bytes).sum();
        total / (self.pushes.len().max(1) as u64)
    }

    /// The table people read.
    pub fn table(&self) -> String {
        let poll = self
            .poll_ms
            .map_or("the server's default".to_string(), |ms| format!("{ms} ms"));
        let mut out = format!(
            "fleet: {} simulated proxies ({} NACKing) + {} real Envoys, {} pushes, directory poll {poll}, RLIMIT_NOFILE {} (the server's {})\n\n",
            self.proxies,
            self.nacking,
            self.envoys,
            self.pushes.len(),
            self.nofile,
            self.server_nofile
        );
        out += "| per push, ms | median | p99 |\n| --- | ---: | ---: |\n";
        for (what, figures) in self.times() {
            if let Some((median, p99)) = figures {
                out += &format!("| {what} | {median} | {p99} |\n");
            }
        }
        let r = &self.restart;
        out += &format!(
            "\n| server | |\n| --- | ---: |\n\
             | CPU per push (rename → last answer), ms | {:.1} |\n\
             | CPU per second idle, ms | {:.1} |\n\
             | log per push, bytes | {} |\n\
             | memory, no proxy: VmRSS MiB | {:.1} |\n\
             | memory, {} streams: VmRSS MiB | {:.1} |\n\
             | memory after the pushes: VmRSS / VmHWM MiB | {:.1} / {:.1} |\n\
             | first connection of every simulated proxy → all answered, ms | {} |\n\
             | restart: start → listening, ms | {} |\n\
             | restart: start → last simulated proxy's ACK, ms | {} |\n\
             | restart: start → last real Envoy's ACK, ms | {} |\n\
             | restart: CPU until every proxy answered, ms | {:.1} |\n\
             | restart: VmRSS / VmHWM MiB | {:.1} / {:.1} |\n",
            ms(self.cpu_per_push()),
            ms(self.idle_cpu_per_s),
            self.log_per_push(),
            mib(self.memory_empty.rss_kib),
            self.proxies + self.envoys,
            mib(self.memory_connected.rss_kib),
            mib(self.memory_after.rss_kib),
            mib(self.memory_after.hwm_kib),
            self.connect_ms,
            r.listening_ms,
            r.sims_last_ack_ms,
            r.envoys_last_ack_ms.map_or("-".into(), |v| v.to_string()),
            ms(r.cpu),
            mib(r.memory.rss_kib),
            mib(r.memory.hwm_kib),
        );
        out
    }

    /// One JSON object per push, then the summary, each on its own line.
    pub fn json_lines(&self) -> Vec<Value> {
        let mut lines: Vec<Value> = self
            .pushes
            .iter()
            .enumerate()
            .map(|(i, p)| {
                json!({
                    "kind": "push", "push": i + 1, "version": p.version,
                    "read_ms": p.read_ms, "sims_last_sent_ms": p.sims_last_sent_ms,
                    "sims_last_ack_ms": p.sims_last_ack_ms, "envoys_last_ack_ms": p.envoys_last_ack_ms,
                    "acked": p.answers.acked, "nacked": p.answers.nacked, "wrong": p.answers.wrong,
                    "cpu_ms": ms(p.cpu), "log_bytes": p.log_bytes, "rss_kib": p.rss_kib,
                })
            })
            .collect();
        let times: serde_json::Map<String, Value> = self
            .times()
            .into_iter()
            .filter_map(|(what, f)| {
                f.map(|(m, p)| (what.to_string(), json!({"median_ms": m, "p99_ms": p})))
            })
            .collect();
        let r = &self.restart;
        lines.push(json!({
            "kind": "summary", "proxies": self.proxies, "nacking": self.nacking, "envoys": self.envoys,
            "pushes": self.pushes.len(), "poll_ms": self.poll_ms, "nofile": self.nofile, "server_nofile": self.server_nofile,
            "times": times, "cpu_per_push_ms": ms(self.cpu_per_push()),
            "idle_cpu_per_s_ms": ms(self.idle_cpu_per_s), "log_bytes_per_push": self.log_per_push(),
            "rss_empty_kib": self.memory_empty.rss_kib, "rss_connected_kib": self.memory_connected.rss_kib,
            "rss_after_kib": self.memory_after.rss_kib, "hwm_after_kib": self.memory_after.hwm_kib,
            "connect_ms": self.connect_ms,
            "restart": {
                "listening_ms": r.listening_ms, "sims_last_ack_ms": r.sims_last_ack_ms,
                "envoys_last_ack_ms": r.envoys_last_ack_ms, "acked": r.answers.acked,
                "nacked": r.answers.nacked, "wrong": r.answers.wrong, "cpu_ms": ms(r.cpu),
                "rss_kib": r.memory.rss_kib, "hwm_kib": r.memory.hwm_kib,
            },
        }));
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_p99_are_nearest_ranks() {
        let fifty: Vec<u64> = (1..=50).rev().collect();
        assert_eq!(median_p99(&fifty), (25, 50));
        let hundred_and_one: Vec<u64> = (0..=100).collect();
        assert_eq!(median_p99(&hundred_and_one), (50, 99));
        assert_eq!(median_p99(&[7]), (7, 7));
        assert_eq!(median_p99(&[]), (0, 0));
    }
}
