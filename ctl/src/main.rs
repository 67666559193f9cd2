//! turnoutctl: the operator's command line for turnout, on the filter's own
//! pure core (`turnout::config`, `bucket`, `decide`, `schedule`), so that
//! it accepts and refuses exactly what Envoy's filter does, and predicts
//! exactly where Envoy sends each user.
//!
//! Exit codes: 0 done, 1 refused or invalid (the config, or the change),
//! 2 usage (the command line, or a file that cannot be read); `rollout`
//! also 3 (rolled back or paused on a failure) and 4 (stopped: someone
//! else changed the split).

/// `println!` that does not panic when stdout is closed early, as in
/// `turnoutctl cohort … | head`: the rest of the output is dropped.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `print!`, likewise.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

mod change;
mod check;
mod cli;
mod cohort;
mod ecds;
mod edit;
mod explain;
mod fail;
mod http;
mod image;
mod input;
mod jsontext;
mod moves;
mod rollout;
mod scrape;
mod serve;
mod shadow;
mod show;
mod tls;
mod write;

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;

use crate::cli::{Cli, Command, ImageCommand};

use crate::change::Change;
use crate::fail::Fail;

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(fail) => {
            let message = fail.to_string();
            if !message.is_empty() {
                eprintln!("turnoutctl: {message}");
            }
            ExitCode::from(fail.code())
        }
    }
}

fn run(command: Command) -> Result<(), Fail> {
    match command {
        Command::Check { config, at, json } => check::run(&config, at.unwrap_or_else(now), json),
        Command::Explain {
            config,
            user,
            route,
            path,
            method,
            headers,
            cookies,
            query,
            at,
            json,
        } => {
            let ask = explain::Ask {
                user,
                route,
                path,
                method,
                headers,
                cookies,
                query,
                at: at.unwrap_or_else(now),
                json,
            };
            explain::run(&input::read(&config)?, &ask)
        }
        Command::Cohort {
            config,
            users,
            split,
            sets,
            at,
        } => cohort::run(
            &input::read(&config)?,
            &users,
            split.as_deref(),
            &sets,
            at.unwrap_or_else(now),
        ),
        Command::SetWeight {
            ecds_file,
            split,
            cluster,
            weight,
        } => edit::run(
            &ecds_file,
            &Change::Weight {
                split,
                cluster,
                weight,
            },
            now(),
        ),
        Command::Rollback { ecds_file, split } => {
            edit::run(&ecds_file, &Change::Rollback { split, on: true }, now())
        }
        Command::Resume { ecds_file, split } => {
            edit::run(&ecds_file, &Change::Rollback { split, on: false }, now())
        }
        Command::Rollout {
            plan,
            log,
            dry_run,
            tls,
        } => rollout::run(
            &plan,
            &rollout::Options {
                log,
                dry_run,
                tls: tls.files(),
            },
        ),
        Command::Shadow {
            config,
            prometheus,
            envoy_admin,
        } => match scrape::Source::from_flags(prometheus, envoy_admin) {
            Some(source) => shadow::run(&config, &source),
            None => Err(Fail::Usage("give --prometheus or --envoy-admin".into())),
        },
        Command::Ecds {
            config,
            wasm,
            native: _,
            name,
            runtime,
            output,
        } => ecds::run(&config, &template(wasm, runtime), &name, output.as_deref()),
        Command::Serve {
            dir,
            listen,
            wasm,
            native: _,
            runtime,
            poll_ms,
            prometheus,
            envoy_admin,
            tls,
        } => serve::run(
            &dir,
            serve::Listen {
                addr: listen,
                tls: tls.files(),
            },
            template(wasm, runtime),
            Duration::from_millis(poll_ms),
            scrape::Source::from_flags(prometheus, envoy_admin),
        ),
        Command::Status {
            server,
            json,
            wait_version,
            resource,
            wait_file,
            proxies,
            timeout,
            tls,
        } => {
            let server = serve::client::Endpoint::new(&server, tls.files())?;
            let wait = match (wait_version, resource, wait_file) {
                (Some(version), Some(resource), _) => {
                    Some(serve::client::Wait::Version { resource, version })
                }
                (_, _, Some(file)) => Some(serve::client::Wait::File(file)),
                _ => None,
            };
            let timeout = Duration::try_from_secs_f64(timeout)
                .map_err(|_| Fail::Usage(format!("--timeout {timeout}: not a duration")))?;
            serve::client::run(&server, json, wait, proxies, timeout)
        }
        Command::Image {
            command:
                ImageCommand::Push {
                    reference,
                    wasm,
                    insecure,
                },
        } => image::run(&reference, &wasm, insecure),
    }
}

/// The build `--wasm PATH` or `--native` (clap lets exactly one through)
/// names: without a wasm path, the native build.
fn template(wasm: Option<String>, runtime: String) -> ecds::Template {
    match wasm {
        Some(wasm) => ecds::Template::Wasm { wasm, runtime },
        None => ecds::Template::Native,
    }
}

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
