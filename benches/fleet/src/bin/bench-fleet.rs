//! `cargo bench-fleet [--proxies N] [--envoys N] [--pushes N] …`: the
//! fleet benchmark (see the library's doc and BENCHMARKS.md). Prints the
//! table, then one `BENCH-FLEET {json}` line per push and a summary.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use turnout_bench_fleet::{run, Options};

/// The real `turnoutctl serve` pushing to simulated ECDS proxies beside real Envoys.
#[derive(Parser, Debug)]
#[command(name = "bench-fleet")]
struct Cli {
    /// Simulated proxies, each an ECDS stream on its own HTTP/2 connection.
    #[arg(long, default_value_t = 1000)]
    proxies: usize,
    /// Real Envoys (envoy/fleet.yaml) beside them.
    #[arg(long, default_value_t = 3)]
    envoys: usize,
    /// Pushes timed (at least 1).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    pushes: u64,
    /// Every K-th simulated proxy NACKs every push (0: none).
    #[arg(long, default_value_t = 100)]
    nack_every: usize,
    /// The server's --poll-ms (default: the server's own default, what an operator gets).
    #[arg(long)]
    poll_ms: Option<u64>,
    /// Simulated proxies connecting at once at the start.
    #[arg(long, default_value_t = 64)]
    opening: usize,
    /// Milliseconds of quiet between two pushes.
    #[arg(long, default_value_t = 300)]
    gap_ms: u64,
    /// Build turnoutctl in the test profile instead of release.
    #[arg(long)]
    debug_server: bool,
    /// Run this turnoutctl binary instead of building one (e.g. a build with symbols for perf).
    #[arg(long)]
    turnoutctl: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let options = Options {
        proxies: cli.proxies,
        envoys: cli.envoys,
        pushes: cli.pushes as usize,
        nack_every: cli.nack_every,
        poll_ms: cli.poll_ms,
        release: !cli.debug_server,
        turnoutctl: cli.turnoutctl,
        opening: cli.opening,
        gap: Duration::from_millis(cli.gap_ms),
        timeout: Duration::from_secs(60),
    };
    match run(&options) {
        Ok(report) => {
            println!("{}", report.table());
            for line in report.json_lines() {
                println!("BENCH-FLEET {line}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench-fleet: {e}");
            ExitCode::FAILURE
        }
    }
}
