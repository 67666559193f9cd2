//! `cargo bench-load`'s options, read by clap's derive: their spelling and
//! meaning are the ones BENCHMARKS.md and the README quote (`--cycles 20`,
//! `--only a,b,c`, `--extra NAME=floor:WORDS`, …), so runs written down
//! there can be run again as written. The binary's own doc says what each
//! one is for.

use std::path::PathBuf;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};

use crate::{Extra, ExtraModule, UpstreamKind};

/// What a run is asked to do, read and checked.
#[derive(Clone, Debug)]
pub struct Options {
    pub cycles: u32,
    pub slice_seconds: u32,
    pub connections: u32,
    pub threads: u32,
    pub warmup: u32,
    pub upstream: UpstreamKind,
    pub memory_requests: u64,
    pub proxy_core: usize,
    pub load_core: usize,
    pub extras: Vec<Extra>,
    /// Listener names of the built-in variants to run (with `native`);
    /// `None`: all of them.
    pub only: Option<Vec<String>>,
    /// Share of a core other processes may take during a slice.
    pub max_other: f64,
    pub retries: u32,
    /// Bootstrap resamples for the intervals.
    pub resamples: usize,
}

/// The command line as typed. An option given twice counts the last time
/// (`--extra` adds one each time), as the hand-written loop before did.
#[derive(Parser, Debug)]
#[command(
    name = "bench-load",
    about = "turnout side by side with Envoy's own split, the floor filter and Lua \
             (see benches/load/src/bin/bench-load.rs and BENCHMARKS.md)",
    args_override_self = true
)]
struct Cli {
    /// Cycles: each runs one slice of every variant (at least 1).
    #[arg(long, alias = "rounds", default_value_t = 25)]
    cycles: u32,
    /// Seconds of wrk per slice (at least 1).
    #[arg(long, alias = "seconds", default_value_t = 2)]
    slice_seconds: u32,
    /// wrk's connections.
    #[arg(long, default_value_t = 32)]
    connections: u32,
    /// wrk's threads.
    #[arg(long, default_value_t = 1)]
    threads: u32,
    /// Seconds of wrk on each listener before the cycles.
    #[arg(long, default_value_t = 2)]
    warmup: u32,
    /// The upstreams: `harness` (the test harness's) or `envoy` (an Envoy
    /// answering with `direct_response`).
    #[arg(long, default_value = "harness", value_parser = upstream)]
    upstream: UpstreamKind,
    /// Requests through turnout between the two memory readings.
    #[arg(long, default_value_t = 100_000)]
    memory_requests: u64,
    /// The core Envoy is pinned to.
    #[arg(long, default_value_t = 0)]
    proxy_core: usize,
    /// The core wrk, the upstreams and this process are pinned to.
    #[arg(long, default_value_t = 1)]
    load_core: usize,
    /// A slice during which other processes took more than this share of a
    /// core, in whole percent, is measured again.
    #[arg(long = "max-other-percent", default_value_t = 25)]
    max_other_percent: u64,
    /// How many times a busy slice is measured again.
    #[arg(long, default_value_t = 3)]
    retries: u32,
    /// Bootstrap resamples of the cycles.
    #[arg(long, default_value_t = 10_000)]
    bootstrap: usize,
    /// Only these variants (and (a)), comma-separated: letters a b c c' d e
    /// or listener names.
    #[arg(long, value_name = "VARIANTS", allow_hyphen_values = true)]
    only: Option<String>,
    /// An extra listener: NAME=floor:WORDS, NAME=turnout:PATH,
    /// NAME=native:PATH, NAME=config:JSON, NAME=native-config:JSON,
    /// NAME=bare or NAME=native-floor (repeatable).
    #[arg(long, value_name = "NAME=SPEC", allow_hyphen_values = true, value_parser = extra)]
    extra: Vec<(String, ExtraArg)>,
}

/// What an `--extra` names, before anything is built for it.
#[derive(Clone, Debug)]
enum ExtraArg {
    Module(ExtraModule),
    /// The native floor: turnout-native built with `--features floor`.
    NativeFloor,
    /// The floor without the SDK (`benches/floor-bare`).
    Bare,
}

fn upstream(value: &str) -> Result<UpstreamKind, String> {
    match value {
        "envoy" => Ok(UpstreamKind::Envoy),
        "harness" => Ok(UpstreamKind::Harness),
        _ => Err("--upstream is envoy or harness".into()),
    }
}

/// `NAME=SPEC`: the name is what comes before the first `=`.
fn extra(value: &str) -> Result<(String, ExtraArg), String> {
    let usage = "--extra NAME=floor:WORDS, NAME=turnout:PATH, NAME=native:PATH, NAME=config:JSON, NAME=native-config:JSON, NAME=bare or NAME=native-floor";
    let (name, spec) = value.split_once('=').ok_or(usage)?;
    let kind = if let Some(words) = spec.strip_prefix("floor:") {
        ExtraArg::Module(ExtraModule::Floor(words.replace(',', " ")))
    } else if let Some(path) = spec.strip_prefix("turnout:") {
        ExtraArg::Module(ExtraModule::Turnout(path.into()))
    } else if let Some(json) = spec.strip_prefix("config:") {
        ExtraArg::Module(ExtraModule::Config(json.into()))
    } else if let Some(json) = spec.strip_prefix("native-config:") {
        ExtraArg::Module(ExtraModule::NativeConfig(json.into()))
    } else if let Some(path) = spec.strip_prefix("native:") {
        ExtraArg::Module(ExtraModule::Native(path.into()))
    } else if spec == "native-floor" {
        ExtraArg::NativeFloor
    } else if spec == "bare" {
        ExtraArg::Bare
    } else {
        return Err(usage.into());
    };
    Ok((name.to_string(), kind))
}

/// A variant's listener name from its letter (or its name).
pub fn listener_of(word: &str) -> Option<&'static str> {
    Some(match word {
        "a" | "native" => "native",
        "b" | "turnout" => "turnout",
        "c" | "floor" => "floor",
        "c'" | "c2" | "floor_clear" => "floor_clear",
        "d" | "lua" => "lua",
        "e" | "turnout_native" => "turnout_native",
        _ => return None,
    })
}

impl Options {
    /// This process's options; on a mistake, clap's message and exit
    /// status 2 (`--help` prints them all).
    pub fn from_args() -> Options {
        Options::parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }

    /// The options of a command line (`args[0]` is the program). The
    /// modules `--extra NAME=bare` and `NAME=native-floor` name are built
    /// here.
    pub fn parse_from<I, T>(args: I) -> Result<Options, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let cli = Cli::try_parse_from(args)?;
        let extras: Vec<Extra> = cli
            .extra
            .into_iter()
            .map(|(name, kind)| Extra {
                name,
                module: match kind {
                    ExtraArg::Module(module) => module,
                    ExtraArg::NativeFloor => ExtraModule::Native(native_floor()),
                    ExtraArg::Bare => {
                        ExtraModule::Bare(integration::build_wasm_package("turnout-floor-bare"))
                    }
                },
            })
            .collect();
        // --only's words as listener names; an extra's name is allowed
        // (extras run anyway).
        let only = match cli.only {
            None => None,
            Some(words) => {
                let mut names = Vec::new();
                for word in words.split(',').map(str::trim).filter(|w| !w.is_empty()) {
                    match listener_of(word) {
                        Some(name) => names.push(name.to_string()),
                        None if extras.iter().any(|e| e.name == word) => {}
                        None => {
                            return Err(Cli::command().error(
                                ErrorKind::InvalidValue,
                                format!("--only takes a b c c' d e (or native turnout floor floor_clear lua turnout_native), not {word:?}"),
                            ))
                        }
                    }
                }
                Some(names)
            }
        };
        Ok(Options {
            cycles: cli.cycles.max(1),
            slice_seconds: cli.slice_seconds.max(1),
            connections: cli.connections,
            threads: cli.threads,
            warmup: cli.warmup,
            upstream: cli.upstream,
            memory_requests: cli.memory_requests,
            proxy_core: cli.proxy_core,
            load_core: cli.load_core,
            extras,
            only,
            max_other: cli.max_other_percent as f64 / 100.0,
            retries: cli.retries,
            resamples: cli.bootstrap,
        })
    }
}

/// The native floor module, built if needed.
fn native_floor() -> PathBuf {
    integration::native_floor_module_dir().join("libturnout_native.so")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        Options::parse_from(std::iter::once("bench-load").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let o = parse(&[]).unwrap();
        assert_eq!(
            (
                o.cycles,
                o.slice_seconds,
                o.connections,
                o.threads,
                o.warmup
            ),
            (25, 2, 32, 1, 2)
        );
        assert_eq!(o.upstream, UpstreamKind::Harness);
        assert_eq!(
            (o.memory_requests, o.proxy_core, o.load_core),
            (100_000, 0, 1)
        );
        assert_eq!((o.max_other, o.retries, o.resamples), (0.25, 3, 10_000));
        assert!(o.extras.is_empty() && o.only.is_none());
    }

    #[test]
    fn every_option_is_read_as_documented() {
        let o = parse(&[
            "--rounds",
            "7",
            "--seconds",
            "0",
            "--connections",
            "8",
            "--threads",
            "2",
            "--warmup",
            "1",
            "--upstream",
            "envoy",
            "--memory-requests",
            "1000",
            "--proxy-core",
            "1",
            "--load-core",
            "0",
            "--max-other-percent",
            "40",
            "--retries",
            "1",
            "--bootstrap",
            "500",
            "--cycles",
            "9",
        ])
        .unwrap();
        // The last --cycles counts; 0 seconds is 1.
        assert_eq!(
            (o.cycles, o.slice_seconds, o.connections, o.threads),
            (9, 1, 8, 2)
        );
        assert_eq!((o.warmup, o.upstream), (1, UpstreamKind::Envoy));
        assert_eq!((o.memory_requests, o.proxy_core, o.load_core), (1000, 1, 0));
        assert_eq!((o.max_other, o.retries, o.resamples), (0.4, 1, 500));
    }

    #[test]
    fn extras_keep_their_name_and_spec() {
        let json = r#"{"version": 1, "splits": [{"name": "a=b"}]}"#;
        let config = format!("bypath=config:{json}");
        let o = parse(&[
            "--extra",
            "rn=floor:route_name*50,echo",
            "--extra",
            "old=turnout:/m/turnout.wasm",
            "--extra",
            &config,
            "--extra",
            "before=native:/m/libturnout_native.so",
            "--extra",
            "nc=native-config:{}",
            "--only",
            "a, b,c',bypath",
        ])
        .unwrap();
        let got: Vec<String> = o
            .extras
            .iter()
            .map(|e| format!("{} {:?}", e.name, e.module))
            .collect();
        assert_eq!(
            got,
            [
                r#"rn Floor("route_name*50 echo")"#.to_string(),
                r#"old Turnout("/m/turnout.wasm")"#.into(),
                format!("bypath Config({json:?})"),
                r#"before Native("/m/libturnout_native.so")"#.into(),
                r#"nc NativeConfig("{}")"#.into(),
            ]
        );
        // An extra's name in --only is allowed and runs anyway.
        assert_eq!(o.only.unwrap(), ["native", "turnout", "floor_clear"]);
    }

    #[test]
    fn mistakes_are_usage_errors() {
        for args in [
            &["--extra", "nothing"][..],
            &["--extra", "x=lua:foo"],
            &["--only", "a,z"],
            &["--upstream", "nginx"],
            &["--cycles", "many"],
            &["--cycles", "-1"],
            &["--unknown", "1"],
            &["--cycles"],
        ] {
            let e = parse(args).map(|_| ()).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
        }
    }
}
