//! `wrk`: installed when missing, its script (a new user id per request),
//! its runs, and its reports parsed.

use std::io;
use std::path::PathBuf;
use std::process::Command;

/// `wrk` (or `$WRK_BIN`), installed with Debian's apt when it is not on
/// the PATH.
pub fn ensure_wrk() -> PathBuf {
    integration::debian::tool("wrk", "WRK_BIN", "wrk")
}

/// The wrk script: every request carries a new user id (`u<n>`, a counter
/// per wrk thread, prefixed with the thread's number when there are more).
pub const WRK_SCRIPT: &str = r#"local counter = 0
local prefix = "u"
function setup(thread)
  thread:set("id", tostring(math.random(1000000)))
end
function init(args)
  if id ~= nil then prefix = "u" .. id .. "-" end
end
request = function()
  counter = counter + 1
  return wrk.format("GET", "/users", {["x-user-id"] = prefix .. counter})
end
"#;

/// One wrk run's figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WrkResult {
    pub requests: u64,
    pub seconds: f64,
    pub requests_per_second: f64,
    /// Latency percentiles, in microseconds.
    pub p50_us: f64,
    pub p99_us: f64,
    /// Non-2xx/3xx answers plus socket errors.
    pub errors: u64,
}

/// Parses wrk's report (run with `--latency`).
pub fn parse_wrk(text: &str) -> Option<WrkResult> {
    let mut r = WrkResult::default();
    let mut seen = (false, false, false, false);
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", v] => {
                r.p50_us = duration_us(v)?;
                seen.0 = true;
            }
            ["99%", v] => {
                r.p99_us = duration_us(v)?;
                seen.1 = true;
            }
            [n, "requests", "in", s, ..] => {
                r.requests = n.parse().ok()?;
                r.seconds = duration_us(s.trim_end_matches(','))? / 1e6;
                seen.2 = true;
            }
            ["Requests/sec:", v] => {
                r.requests_per_second = v.parse().ok()?;
                seen.3 = true;
            }
            ["Non-2xx", "or", "3xx", "responses:", n] => r.errors += n.parse::<u64>().ok()?,
            ["Socket", "errors:", rest @ ..] => {
                // connect 0, read 0, write 0, timeout 0
                r.errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    (seen == (true, true, true, true)).then_some(r)
}

/// A wrk duration (`512.00us`, `1.23ms`, `2.00s`, `1.5m`) in microseconds.
fn duration_us(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let n: f64 = number.parse().ok()?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => return None,
    };
    Some(n * scale)
}

/// A wrk invocation.
#[derive(Clone, Debug)]
pub struct Wrk {
    pub bin: PathBuf,
    pub script: PathBuf,
    pub threads: u32,
    pub connections: u32,
    pub seconds: u32,
}

impl Wrk {
    /// Runs wrk against `http://127.0.0.1:<port>/users` and parses its report.
    pub fn run(&self, port: u16) -> io::Result<WrkResult> {
        let out = Command::new(&self.bin)
            .args([
                "-t",
                &self.threads.to_string(),
                "-c",
                &self.connections.to_string(),
                "-d",
                &format!("{}s", self.seconds),
                "--latency",
                "-s",
            ])
            .arg(&self.script)
            .arg(format!("http://127.0.0.1:{port}/users"))
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "wrk failed ({}): {text}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        parse_wrk(&text)
            .ok_or_else(|| io::Error::other(format!("cannot read wrk's report:\n{text}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_reports() {
        let report = "Running 10s test @ http://127.0.0.1:1234/users
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.53ms  250.00us   9.87ms   90.00%
    Req/Sec    20.95k     1.20k   22.00k    80.00%
  Latency Distribution
     50%  512.00us
     75%    1.60ms
     90%    1.80ms
     99%    2.50ms
  208516 requests in 10.00s, 25.08MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  20850.86
Transfer/sec:      2.51MB
";
        let r = parse_wrk(report).unwrap();
        assert_eq!(r.requests, 208_516);
        assert_eq!(r.seconds, 10.0);
        assert_eq!(r.requests_per_second, 20850.86);
        assert_eq!((r.p50_us, r.p99_us), (512.0, 2500.0));
        assert_eq!(r.errors, 7);
        assert_eq!(parse_wrk("nothing"), None);
    }
}
