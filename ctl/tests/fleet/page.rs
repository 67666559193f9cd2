//! The server's page in a real browser (headless chromium over WebDriver):
//! three real Envoys take a guarded, shadowed split from the real
//! `turnoutctl serve --envoy-admin …`; the page shows what a person watching
//! the migration needs to see, and follows a push by itself. A screenshot
//! is kept at `target/artifacts/fleet-page.png`. The wasm build only: the
//! page is the same for both, and this test's NACK is a module that one
//! proxy cannot find by its relative path.

use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::time::Duration;

use integration::browser::Browser;
use integration::prometheus::{scrape_config, Prometheus};
use integration::{filter_wasm, scratch_dir, target_dir, Behavior, Build, HttpClient};
use serde_json::Value;
use turnout_prometheus::text_samples;

use crate::harness::{
    build_args, served_version, setup, start_all, track, write, Options, Proxy, Server, Stage,
};

/// A node id that is markup: the page must show it as text, and nothing
/// in it may run (an `innerHTML` would run the image's handler).
const MARKUP_NODE: &str =
    "c<script>window.injected=1</script><img src=x onerror=\"window.injected=2\">";

/// How long the page may take to show a change (it refreshes every 2 s).
const SHOWN: Duration = Duration::from_secs(15);

/// Split `users` at `weight` % to fastapi, two users pinned, a guard that
/// trips on half the target's answers failing (after 10), and a shadow
/// copying stable's requests to fastapi.
fn guarded(weight: u32) -> String {
    format!(
        r#"{{"version": 1, "splits": [{{"name": "users", "match": {{"route": "users"}}, "stable": "legacy",
  "targets": [{{"cluster": "fastapi", "weight": {weight}}}], "salt": "users",
  "pin": {{"fastapi": ["qa-1", "qa-2"]}},
  "guard": {{"window_s": 60, "min_requests": 10, "max_error_rate": 0.5}},
  "shadow": {{"cluster": "fastapi"}}}}]}}
"#
    )
}

/// The rows of the page's proxies table, as a person reads them.
fn proxy_rows(browser: &Browser) -> Vec<String> {
    browser.texts("#proxies tbody tr")
}

fn row<'r>(rows: &'r [String], node: &str) -> Option<&'r String> {
    rows.iter().find(|r| r.starts_with(node))
}

fn split_rows(browser: &Browser) -> Vec<String> {
    browser.texts(SPLIT)
}

/// Whether the first element `css` selects shows `what`.
fn first_shows(browser: &Browser, css: &str, what: &str) -> bool {
    browser.texts(css).first().is_some_and(|t| t.contains(what))
}

const SPLIT: &str = "#splits-turnout tbody tr";
const SERVED: &str = "#resources tbody tr";

/// `(compared, mismatched)` copies of split `users`, summed over the
/// proxies' own `/stats/prometheus`.
fn copies(proxies: &[Proxy]) -> (u64, u64) {
    let (mut compared, mut mismatched) = (0, 0);
    for p in proxies {
        let text = p.envoy.prometheus();
        for s in text_samples(&text).filter(|s| s.name == "turnout_shadow_total") {
            let n = s.value as u64;
            match s.label("outcome") {
                Some("match") => compared += n,
                Some("mismatch") => (compared, mismatched) = (compared + n, mismatched + n),
                _ => {}
            }
        }
    }
    (compared, mismatched)
}

fn guard_tripped(proxy: &Proxy) -> bool {
    let text = proxy.envoy.prometheus();
    let tripped = text_samples(&text).any(|s| {
        s.name == "turnout_guard_tripped" && s.label("split") == Some("users") && s.value >= 1.0
    });
    tripped
}

/// Where the server reads the proxies' series for the page.
enum Figures {
    /// `--envoy-admin`, each proxy's.
    Admin,
    /// `--prometheus`, a real one scraping the (one) proxy every 500 ms.
    Prometheus,
}

/// The watched fleet: proxies named `nodes`, each loading the module by a
/// relative path from a directory of its own (so that it can go missing
/// on one, as in main.rs's NACK test), and the server, told where their
/// series are read; every proxy has ACKed `guarded(50)`.
struct Watched {
    stage: Stage,
    /// Each proxy's directory.
    hosts: Vec<PathBuf>,
    proxies: Vec<Proxy>,
    server: Server,
    _prometheus: Option<Prometheus>,
}

fn watched(nodes: &[&str], figures: Figures) -> Watched {
    let stage = setup(0);
    write(&stage.file, &guarded(50));
    let nodes: Vec<(&str, Options)> = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let cwd = scratch_dir(&format!("fleet-page-host-{i}"));
            symlink(filter_wasm(), cwd.join("turnout.wasm")).expect("symlink the module");
            let options = Options {
                cwd: Some(cwd),
                wasm: "turnout.wasm".into(),
                initial_fetch_timeout: Some("1s"),
                ..Options::default()
            };
            (*node, options)
        })
        .collect();
    // The proxies first (the server is told where their series are), on a
    // port the server takes next: they connect when it is up.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let proxies = start_all(&nodes, &[port], &stage.upstreams);
    let (figure_args, prometheus) = match figures {
        Figures::Admin => {
            let each = proxies.iter().flat_map(|p| {
                let url = format!("http://127.0.0.1:{}", p.envoy.admin_port());
                ["--envoy-admin".to_string(), url]
            });
            (each.collect::<Vec<_>>(), None)
        }
        Figures::Prometheus => {
            let admin = proxies[0].envoy.admin_port();
            let every = Duration::from_millis(500);
            let config = scrape_config(admin, "/stats/prometheus", &[], every);
            let prometheus = Prometheus::start(&config);
            let url = format!("http://127.0.0.1:{}", prometheus.port());
            (vec!["--prometheus".to_string(), url], Some(prometheus))
        }
    };
    let mut args = build_args(Build::Wasm, "turnout.wasm");
    args.extend(figure_args);
    let server = Server::start(&stage.dir, &args, port);
    server.acked(&stage.file, nodes.len());
    let hosts = nodes.into_iter().filter_map(|(_, o)| o.cwd).collect();
    Watched {
        stage,
        hosts,
        proxies,
        server,
        _prometheus: prometheus,
    }
}

/// fastapi fails until proxy a's guard trips, while the shadow copies
/// stable's requests to it (500 where legacy answers 200); what the page
/// should then say of the copies, from the proxies' own counts.
fn trip_a_and_copy(fleet: &Watched) -> String {
    let fastapi = &fleet.stage.upstreams.1;
    fastapi.set_behavior(Behavior::Status(500));
    let a = &fleet.proxies[0];
    let mut client = a.envoy.client("turnout");
    for i in 0.. {
        client.get("/users", &[("x-user-id", &format!("user-{i}"))]);
        if i % 10 == 9 && guard_tripped(a) {
            break;
        }
        assert!(i < 1_000, "a's guard did not trip");
    }
    fastapi.set_behavior(Behavior::Ok);
    // Copies are answered after their requests: wait for the counts to settle.
    let mut counted = copies(&fleet.proxies);
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = copies(&fleet.proxies);
        if now == counted {
            break;
        }
        counted = now;
    }
    let (compared, mismatched) = counted;
    assert!(compared > 0 && mismatched > 0, "{counted:?}");
    format!(
        "mismatch {:.2} % of {compared} compared",
        mismatched as f64 * 100.0 / compared as f64
    )
}

/// Pushes `guarded(20)` with the third proxy's module gone: a and b take
/// it, the third NACKs. The new version, and Envoy's message.
fn push_that_the_third_refuses(fleet: &Watched) -> (String, String) {
    let missing = fleet.hosts[2].join("turnout.wasm");
    std::fs::remove_file(&missing).expect("remove the third proxy's module");
    write(&fleet.stage.file, &guarded(20));
    let run = fleet.server.wait_file(&fleet.stage.file, 3);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let status = fleet
        .server
        .status_until(|s| ["a", "b"].iter().all(|n| track(s, n)["state"] == "acked"));
    let second = served_version(&status);
    let message = track(&status, MARKUP_NODE)["nack"]["message"]
        .as_str()
        .expect("Envoy's message")
        .to_string();
    assert!(message.contains("turnout.wasm"), "{message}");
    (second, message)
}

#[test]
fn the_page_shows_each_proxy_each_split_a_guard_trip_and_a_nack_and_follows_a_push() {
    let mut fleet = watched(&["a", "b", MARKUP_NODE], Figures::Admin);
    let first = served_version(&fleet.server.status());

    let browser = Browser::start();
    let origin = format!("http://{}", fleet.server.addr());
    browser.open(&format!("{origin}/"));
    browser.wait_until("three ACKed proxies", SHOWN, |b| {
        let rows = proxy_rows(b);
        rows.len() == 3 && rows.iter().all(|r| r.contains("ACKed"))
    });
    let served = browser.texts(SERVED);
    assert!(
        served.len() == 1 && served[0].contains(&first) && served[0].contains("3 ACKed"),
        "{served:?}"
    );
    // The node id shows as it was sent, and nothing in it ran.
    let rows = proxy_rows(&browser);
    assert!(row(&rows, MARKUP_NODE).is_some(), "{rows:#?}");
    assert_eq!(browser.eval("return window.injected === undefined"), true);
    let split = split_rows(&browser);
    assert_eq!(split.len(), 1, "{split:?}");
    for shown in [
        "users",
        "legacy",
        "fastapi 50 %",
        "not tripped",
        "shadow to fastapi",
    ] {
        assert!(split[0].contains(shown), "{shown} not in {:?}", split[0]);
    }
    let cells = browser.texts("#splits-turnout tbody td");
    assert_eq!(
        (cells[3].as_str(), cells[4].as_str()),
        ("no", "2"),
        "rollback, pins"
    );

    // A push that the third proxy cannot load: it NACKs with Envoy's
    // message; the page follows without being reloaded.
    browser.eval("window.stayed = true; return null");
    let (second, message) = push_that_the_third_refuses(&fleet);
    browser.wait_until("the NACK and the new version", SHOWN, |b| {
        let rows = proxy_rows(b);
        let shows = |node: &str, what: &str| row(&rows, node).is_some_and(|r| r.contains(what));
        shows("a", "ACKed")
            && shows("b", "ACKed")
            && shows(MARKUP_NODE, "NACKed")
            && shows(MARKUP_NODE, &message)
            && first_shows(b, SERVED, &second)
    });
    let rows = proxy_rows(&browser);
    let nacked = row(&rows, MARKUP_NODE).expect("the third proxy's row");
    assert!(nacked.contains(&format!("keeps {first}")), "{nacked}");
    for node in ["a", "b"] {
        let acked = row(&rows, node).expect("a row");
        assert!(acked.contains(&format!("has {second}")), "{acked}");
    }
    let served = browser.texts(SERVED);
    assert!(served[0].contains("2 ACKed · 1 NACKed"), "{served:?}");
    browser.wait_until("the new weight", SHOWN, |b| {
        first_shows(b, SPLIT, "fastapi 20 %")
    });

    // Then fastapi fails: proxy a's guard trips, the shadow's copies differ.
    let mismatch = trip_a_and_copy(&fleet);
    browser.wait_until("the guard's trip and the mismatch rate", SHOWN, |b| {
        first_shows(b, SPLIT, "tripped on 1 proxy") && first_shows(b, SPLIT, &mismatch)
    });
    eprintln!("the page shows: {}", split_rows(&browser)[0]);

    assert_eq!(
        browser.eval("return window.stayed === true"),
        true,
        "reloaded"
    );
    assert_eq!(browser.eval("return window.injected === undefined"), true);
    // Nothing was fetched but the page and its data, from the server.
    let fetched = browser.eval("return performance.getEntriesByType('resource').map(e => e.name)");
    let fetched = fetched.as_array().expect("a list");
    assert!(!fetched.is_empty());
    assert!(
        fetched.iter().all(|u| u
            .as_str()
            .is_some_and(|u| u.starts_with(&format!("{origin}/page.json")))),
        "{fetched:?}"
    );

    let shot: PathBuf = target_dir().join("artifacts").join("fleet-page.png");
    browser.screenshot(&shot);
    eprintln!("screenshot of the page: {}", shot.display());

    // b goes away: it shows as disconnected with what it kept, and as its
    // admin endpoint no longer answers, the page says the figures are not
    // to be had rather than show a sum without it.
    drop(fleet.proxies.remove(1));
    browser.wait_until("b disconnected, the figures unread", SHOWN, |b| {
        let rows = proxy_rows(b);
        let gone = row(&rows, "b").is_some_and(|r| {
            r.contains("disconnected") && r.contains(&format!("had {second} when it left"))
        });
        gone && first_shows(b, "#figures", "The last read failed")
    });
    let served = browser.texts(SERVED);
    assert!(
        served[0].contains("1 ACKed · 1 NACKed · 1 disconnected"),
        "{served:?}"
    );
    let split = split_rows(&browser);
    assert!(
        split[0].contains("unknown: the metrics could not be read"),
        "{split:?}"
    );
}

/// The page's data: `GET /page.json`.
fn page_json(server: &Server) -> Value {
    let response = HttpClient::new(server.port).get("/page.json", &[]);
    assert_eq!(response.status, 200);
    serde_json::from_str(&response.body_str()).expect("page.json is JSON")
}

/// The same figures through a real Prometheus (what a fleet runs), read by
/// the server's `--prometheus` as `turnoutctl shadow` reads it.
#[test]
fn the_page_reads_a_guard_trip_and_the_mismatch_rate_from_prometheus() {
    let fleet = watched(&["a"], Figures::Prometheus);
    let doc = page_json(&fleet.server);
    let split = &doc["resources"][0]["splits"][0];
    assert_eq!(split["guard"], "not tripped", "{doc:#}");
    let mismatch = trip_a_and_copy(&fleet);
    let deadline = std::time::Instant::now() + SHOWN;
    loop {
        let doc = page_json(&fleet.server);
        let split = &doc["resources"][0]["splits"][0];
        let shadow = split["shadow"]["mismatch"].as_str().unwrap_or_default();
        if split["guard"] == "tripped on 1 proxy" && shadow.starts_with(&mismatch) {
            let source = doc["figures"]["source"].as_str().unwrap_or_default();
            assert!(
                source.contains("from Prometheus at http://127.0.0.1:"),
                "{source}"
            );
            assert_eq!(split["guard_tripped"], true);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the page's data never showed the trip and {mismatch}: {doc:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
