//! A fleet end to end: three real Envoys started from the shipped
//! `envoy/fleet.yaml` (or `envoy/fleet-native.yaml`) take turnout's config
//! over gRPC from the real `turnoutctl serve --wasm …` (or `--native`), and
//! `turnoutctl status` says what each did with every push. Every test runs
//! once per build, as `wasm::NAME` and `native::NAME`. Users: alice is
//! bucket 201 of salt "users" (fastapi from weight 3 up), bob 4352.

mod builds;
mod harness;
mod page;
mod replicas;
mod tls;

use std::os::unix::fs::symlink;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::sleep;
use std::time::Duration;

use builds::a_proxy_of_the_other_build_nacks_and_keeps_its_default;
use harness::{
    build_args, config, ctl, median_worst, now_ms, served_version, setup, track, until_served,
    write, Fleet, Options, Proxy, Server,
};
use integration::stage::served_by;
use integration::{filter_wasm, native_module_dir, scratch_dir, Build, HttpClient};
use replicas::when_the_replica_a_proxy_is_on_dies_it_takes_the_next_push_from_the_other;

integration::for_each_build!(
    a_push_reaches_every_proxy_and_how_fast,
    a_proxy_that_cannot_load_the_module_nacks_alone_and_keeps_its_config,
    when_the_server_dies_the_fleet_keeps_serving_and_takes_the_current_version_when_it_returns,
    a_rollback_under_load_reaches_every_proxy_and_no_later_request_reaches_the_canary,
    an_envoy_that_starts_while_the_server_is_down_serves_stable_then_takes_the_config,
    when_the_replica_a_proxy_is_on_dies_it_takes_the_next_push_from_the_other,
    a_proxy_of_the_other_build_nacks_and_keeps_its_default,
);

/// Pushes timed by `a_push_reaches_every_proxy_and_how_fast` (BENCHMARKS.md
/// section 6): 20, or `TURNOUT_FLEET_PUSHES` if more.
fn pushes() -> usize {
    let asked = std::env::var("TURNOUT_FLEET_PUSHES")
        .ok()
        .and_then(|n| n.parse().ok());
    asked.unwrap_or(20).max(20)
}

/// The wasm module's path (built on first use; the native tests never ask).
fn wasm() -> String {
    filter_wasm().to_string_lossy().into_owned()
}

/// `turnoutctl serve`'s arguments for `build`, the module by its full path.
fn serving(build: Build) -> Vec<String> {
    match build {
        Build::Wasm => build_args(build, &wasm()),
        Build::Native => build_args(build, ""),
    }
}

/// Proxies a, b and c of `build`, c over ADS if `ads`.
fn three(build: Build, ads: bool) -> [(&'static str, Options); 3] {
    [
        ("a", options(build, false)),
        ("b", options(build, false)),
        ("c", options(build, ads)),
    ]
}

fn options(build: Build, ads: bool) -> Options {
    Options {
        build,
        ads,
        wasm: match build {
            Build::Wasm => wasm(),
            Build::Native => String::new(),
        },
        ..Options::default()
    }
}

fn a_push_reaches_every_proxy_and_how_fast(build: Build) {
    let Fleet {
        stage,
        server,
        proxies,
    } = Fleet::start(setup(0), &serving(build), &three(build, true));
    let file = stage.file.clone();
    let status = server.status();
    let apis: Vec<&str> = (0..3)
        .map(|i| status["proxies"][i]["api"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        apis.iter().filter(|a| **a == "ads").count(),
        1,
        "{status:#}"
    );
    for p in &proxies {
        assert_eq!(p.serves("alice").as_deref(), Some("legacy"), "{}", p.node);
        // What Envoy applied is the server's version: the content's hash.
        assert_eq!(
            p.ecds_stat("version_text"),
            served_version(&status),
            "{}",
            p.node
        );
    }

    // Per push, from the rename: the server has read the file (its poll),
    // the last proxy ACKed, the last proxy serves the new decision.
    let (mut to_read, mut to_ack, mut to_serve) = (Vec::new(), Vec::new(), Vec::new());
    let pushes = pushes();
    for push in 0..pushes {
        let (weight, want) = if push % 2 == 0 {
            (100, "fastapi")
        } else {
            (0, "legacy")
        };
        let renamed = write(&file, &config(weight, false));
        let serving = until_served(&proxies, "alice", want);
        server.acked(&file, 3);
        let status = server.status();
        let version = served_version(&status);
        let acks: Vec<u64> = proxies
            .iter()
            .map(|p| {
                let t = track(&status, &p.node);
                assert_eq!(t["acked_version"], version.as_str(), "{}: {t:#}", p.node);
                t["acked_at_ms"].as_u64().expect("an ACK time")
            })
            .collect();
        let read = status["resources"][0]["since_ms"].as_u64().expect("since");
        to_read.push(read.saturating_sub(renamed));
        to_ack.push(acks.iter().max().unwrap_or(&0).saturating_sub(renamed));
        to_serve.push(serving.iter().max().unwrap_or(&0).saturating_sub(renamed));
    }
    let figures = [
        ("read by the server", to_read),
        ("last ACK", to_ack),
        ("last proxy serving it", to_serve),
    ];
    for (what, mut times) in figures {
        let (median, worst) = median_worst(&mut times);
        eprintln!(
            "fleet of 3 ({build:?}), {pushes} pushes, rename to {what}: median {median} ms, worst {worst} ms"
        );
    }

    // Both builds' bootstraps show the same series (the native one by its
    // runtime flag and the stats tags).
    let series = r#"turnout_requests_total{split="users",cluster="fastapi",reason="bucket"} "#;
    for p in &proxies {
        let prometheus = p.envoy.prometheus();
        let shown = prometheus.lines().any(|l| l.starts_with(series));
        assert!(shown, "{}: {prometheus}", p.node);
    }

    let metrics = server.metrics();
    let version = served_version(&server.status());
    for want in [
        "turnout_xds_proxies 3\n".to_string(),
        "turnout_xds_proxies_behind{resource=\"turnout\"} 0\n".into(),
        format!("turnout_xds_acked_version_info{{node=\"c\",cluster=\"turnout-fleet\",resource=\"turnout\",version=\"{version}\"}} 1\n"),
        format!("turnout_xds_pushes_total{{resource=\"turnout\"}} {}\n", 3 * (pushes + 1)),
    ] {
        assert!(metrics.contains(&want), "{want} not in\n{metrics}");
    }
    assert!(!metrics.contains("turnout_xds_nacks_total{"), "{metrics}");
}

/// The module of `build` as each host has it: its file name in the host's
/// directory, and the file it links to.
fn module_file(build: Build) -> (&'static str, std::path::PathBuf) {
    match build {
        Build::Wasm => ("turnout.wasm", filter_wasm()),
        Build::Native => (
            "libturnout_native.so",
            native_module_dir().join("libturnout_native.so"),
        ),
    }
}

fn a_proxy_that_cannot_load_the_module_nacks_alone_and_keeps_its_config(build: Build) {
    let stage = setup(0);
    let file = stage.file.clone();
    let (module, built) = module_file(build);
    // The module in each Envoy's own directory (the wasm build's by a
    // relative path, the native build's on the search path), as on three
    // hosts; then it goes missing on one.
    let nodes: Vec<(&str, Options)> = ["a", "b", "c"]
        .into_iter()
        .map(|node| {
            let cwd = scratch_dir(&format!("fleet-host-{node}"));
            symlink(&built, cwd.join(module)).expect("symlink the module");
            let options = Options {
                build,
                modules: Some(cwd.clone()),
                cwd: Some(cwd),
                wasm: "turnout.wasm".into(),
                ..Options::default()
            };
            (node, options)
        })
        .collect();
    // Bound, not `..`: the stage's upstreams must outlive the requests.
    let Fleet {
        stage: _stage,
        server,
        proxies,
    } = Fleet::start(stage, &build_args(build, "turnout.wasm"), &nodes);
    let before = served_version(&server.status());

    let missing = nodes[2].1.cwd.as_ref().expect("c's directory").join(module);
    std::fs::remove_file(&missing).expect("remove c's module");
    write(&file, &config(100, false));
    let run = server.wait_file(&file, 3);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("NACKed by c: "), "{}", run.stderr);
    // The wait ends at the first NACK; a and b answer on their own time.
    let status =
        server.status_until(|s| ["a", "b"].iter().all(|n| track(s, n)["state"] == "acked"));
    let after = served_version(&status);
    for node in ["a", "b"] {
        assert_eq!(track(&status, node)["state"], "acked", "{status:#}");
        assert_eq!(track(&status, node)["acked_version"], after.as_str());
    }
    let c = track(&status, "c");
    assert_eq!(c["state"], "nacked", "{status:#}");
    assert_eq!(
        c["acked_version"],
        before.as_str(),
        "c still has the old version"
    );
    assert_eq!(c["nack"]["version"], after.as_str());
    let message = c["nack"]["message"].as_str().unwrap_or_default();
    let names_the_module = match build {
        Build::Wasm => "turnout.wasm",
        Build::Native => "turnout_native",
    };
    assert!(
        message.contains(names_the_module),
        "Envoy's own message: {message}"
    );
    assert!(
        run.stderr.contains(message),
        "the wait shows Envoy's message: {}",
        run.stderr
    );
    eprintln!("c's NACK: {message}");
    assert_eq!(proxies[2].ecds_stat("update_rejected"), "1");
    let served: Vec<Option<String>> = proxies.iter().map(|p| p.serves("alice")).collect();
    assert_eq!(
        served,
        [
            Some("fastapi".into()),
            Some("fastapi".into()),
            Some("legacy".into())
        ]
    );
    let metrics = server.metrics();
    assert!(
        metrics.contains("turnout_xds_nacks_total{node=\"c\",resource=\"turnout\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("turnout_xds_proxies_behind{resource=\"turnout\"} 1\n"),
        "{metrics}"
    );

    // A file the filter refuses is not served: nothing moves, and both the
    // wait and the status say why.
    write(&file, &config(140, false));
    let run = server.wait_file(&file, 3);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let why = "splits[0].targets[0].weight: 140 is not between 0 and 100";
    assert!(
        run.stderr.contains("the server refused the file") && run.stderr.contains(why),
        "{}",
        run.stderr
    );
    let status = server.status();
    assert_eq!(
        served_version(&status),
        after,
        "the old version stays served"
    );
    assert_eq!(status["resources"][0]["refused"]["problems"][0], why);
    assert!(server.log().contains(why));
    let table = ctl(&["status", "--server", &server.addr()]).stdout;
    assert!(table.contains(why) && table.contains("nacked"), "{table}");

    // The module is back on c: the next push reaches all three.
    symlink(&built, &missing).expect("restore c's module");
    write(&file, &config(50, false));
    server.acked(&file, 3);
    for p in &proxies {
        assert_eq!(p.serves("alice").as_deref(), Some("fastapi"), "{}", p.node);
    }
}

fn when_the_server_dies_the_fleet_keeps_serving_and_takes_the_current_version_when_it_returns(
    build: Build,
) {
    let Fleet {
        stage,
        mut server,
        proxies,
    } = Fleet::start(setup(100), &serving(build), &three(build, true));
    let (dir, file) = (&stage.dir, &stage.file);
    let first = served_version(&server.status());
    let pids: Vec<u32> = proxies.iter().map(|p| p.envoy.pid()).collect();

    server.kill();
    // Changed while the server is away: nobody gets it yet.
    write(file, &config(0, false));
    sleep(Duration::from_millis(300));
    for p in &proxies {
        for _ in 0..5 {
            assert_eq!(
                p.serves("alice").as_deref(),
                Some("fastapi"),
                "{} keeps its config",
                p.node
            );
        }
    }

    let back = Server::start(dir, &serving(build), server.port);
    back.acked(file, 3);
    let status = back.status();
    assert_ne!(served_version(&status), first);
    for p in &proxies {
        let proxy = status["proxies"]
            .as_array()
            .and_then(|all| all.iter().find(|x| x["node"] == p.node.as_str()));
        let proxy = proxy.unwrap_or_else(|| panic!("{} reconnected: {status:#}", p.node));
        assert_eq!(
            proxy["initial_version"],
            first.as_str(),
            "{} said what it had",
            p.node
        );
        assert_eq!(p.serves("alice").as_deref(), Some("legacy"), "{}", p.node);
    }
    let now: Vec<u32> = proxies.iter().map(|p| p.envoy.pid()).collect();
    assert_eq!(now, pids, "no Envoy restarted");
    for p in &proxies {
        assert_eq!(
            p.ecds_stat("update_success"),
            "2",
            "{}: applied the first and the current",
            p.node
        );
    }
}

fn a_rollback_under_load_reaches_every_proxy_and_no_later_request_reaches_the_canary(build: Build) {
    let Fleet {
        stage,
        server,
        proxies,
    } = Fleet::start(setup(50), &serving(build), &three(build, false));
    let file = &stage.file;

    let stop = AtomicBool::new(false);
    let (answers, last_ack) = std::thread::scope(|s| {
        let load: Vec<_> = proxies
            .iter()
            .map(|p| {
                let (port, stop) = (p.envoy.listener_port("turnout"), &stop);
                s.spawn(move || {
                    let mut client = HttpClient::new(port);
                    let mut seen = Vec::new();
                    for i in 0.. {
                        if stop.load(Ordering::Relaxed) || i == 100_000 {
                            break;
                        }
                        let user = format!("user-{}", i % 1000);
                        let sent = now_ms();
                        let r = client.get("/users", &[("x-user-id", &user)]);
                        seen.push((sent, r.status, served_by(&r)));
                    }
                    seen
                })
            })
            .collect();
        sleep(Duration::from_millis(700));
        let run = ctl(&["rollback", &file.to_string_lossy(), "users"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        server.acked(file, 3);
        let status = server.status();
        let last_ack = (0..3)
            .filter_map(|i| status["proxies"][i]["resources"][0]["acked_at_ms"].as_u64())
            .max()
            .expect("ACK times");
        sleep(Duration::from_millis(700));
        stop.store(true, Ordering::Relaxed);
        let answers: Vec<_> = load
            .into_iter()
            .flat_map(|h| h.join().expect("load thread"))
            .collect();
        (answers, last_ack)
    });

    let canary = |a: &(u64, u16, Option<String>)| a.2.as_deref() == Some("fastapi");
    let before = answers
        .iter()
        .filter(|a| a.0 < last_ack && canary(a))
        .count();
    let after: Vec<_> = answers.iter().filter(|a| a.0 > last_ack).collect();
    assert!(
        answers.iter().all(|a| a.1 == 200),
        "every request answered 200"
    );
    assert!(before > 0, "the canary served before the rollback");
    assert!(
        after.len() > 10,
        "requests were sent after the last ACK: {}",
        after.len()
    );
    assert_eq!(
        after.iter().filter(|a| canary(a)).count(),
        0,
        "a request sent after the last ACK reached fastapi"
    );
    eprintln!(
        "rollback under load ({build:?}): {} requests, {before} to fastapi before the last ACK, {} sent after it, all to legacy",
        answers.len(),
        after.len()
    );
}

fn an_envoy_that_starts_while_the_server_is_down_serves_stable_then_takes_the_config(build: Build) {
    let stage = setup(100);
    // A port nothing listens on (yet).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let options = Options {
        initial_fetch_timeout: Some("1s"),
        ..options(build, false)
    };
    let proxy = Proxy::start("lonely", &[port], &stage.upstreams, &options);
    // After initial_fetch_timeout: the default config, every user on the
    // stable cluster, answered (not 500).
    assert_eq!(proxy.ecds_stat("init_fetch_timeout"), "1");
    for user in ["alice", "bob", "qa-1"] {
        assert_eq!(proxy.serves(user).as_deref(), Some("legacy"), "{user}");
    }

    let server = Server::start(&stage.dir, &serving(build), port);
    server.acked(&stage.file, 1);
    until_served(std::slice::from_ref(&proxy), "alice", "fastapi");
}
