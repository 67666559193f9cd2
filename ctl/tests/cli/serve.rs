//! `serve` and `status` as far as they go without a fleet (the fleet
//! itself, with real Envoys, is tests/fleet): the usage errors, exit 2,
//! TLS flags included.

use crate::{ctl, scratch};

#[test]
fn serve_refuses_a_directory_it_cannot_list_and_an_address_it_cannot_parse() {
    let missing = scratch("serve").join("missing");
    let missing = missing.to_string_lossy();
    let run = ctl(&[
        "serve",
        &missing,
        "--listen",
        "127.0.0.1:0",
        "--wasm",
        "t.wasm",
    ])
    .code(2);
    assert!(run.stderr.contains("cannot list"), "{}", run.stderr);
    let dir = scratch("serve");
    let dir = dir.to_string_lossy();
    let run = ctl(&["serve", &dir, "--listen", "localhost", "--wasm", "t.wasm"]).code(2);
    assert!(
        run.stderr.contains("not an IP:PORT address"),
        "{}",
        run.stderr
    );
}

#[test]
fn serve_takes_exactly_one_of_wasm_and_native() {
    let dir = scratch("serve-build");
    let dir = dir.to_string_lossy();
    let neither = ctl(&["serve", &dir, "--listen", "127.0.0.1:0"]).code(2);
    assert!(
        neither.stderr.contains("--wasm") && neither.stderr.contains("--native"),
        "{}",
        neither.stderr
    );
    let both = ctl(&[
        "serve",
        &dir,
        "--listen",
        "127.0.0.1:0",
        "--native",
        "--wasm",
        "t.wasm",
    ])
    .code(2);
    assert!(
        both.stderr.contains("cannot be used with"),
        "{}",
        both.stderr
    );
    // --native goes as far as --wasm: to the address it cannot parse.
    let run = ctl(&["serve", &dir, "--listen", "localhost", "--native"]).code(2);
    assert!(
        run.stderr.contains("not an IP:PORT address"),
        "{}",
        run.stderr
    );
}

#[test]
fn status_of_a_server_that_is_not_there_exits_2() {
    // Port 1 on loopback: nothing listens there.
    let run = ctl(&["status", "--server", "127.0.0.1:1"]).code(2);
    assert!(
        run.stderr
            .contains("cannot reach the server at 127.0.0.1:1"),
        "{}",
        run.stderr
    );
    // Waiting for a version needs the resource it is a version of.
    // Exit 2 alone would not tell: an unreachable server gives it too.
    let run = ctl(&["status", "--server", "127.0.0.1:1", "--wait-version", "ab"]).code(2);
    assert!(
        run.stderr.contains("required arguments were not provided")
            && run.stderr.contains("--resource"),
        "{}",
        run.stderr
    );
    let run = ctl(&["status", "--server", "127.0.0.1:1", "--wait-file", "x.yaml"]).code(2);
    assert!(
        run.stderr.contains("NAME.json files only"),
        "{}",
        run.stderr
    );
}

#[test]
fn mutual_tls_takes_all_three_files_or_none() {
    let dir = scratch("serve-tls");
    let served = dir.to_string_lossy();
    let serve = [
        "serve",
        &served,
        "--listen",
        "127.0.0.1:0",
        "--wasm",
        "t.wasm",
    ];
    let run = ctl(&[&serve[..], &["--tls-cert", "s.pem"]].concat()).code(2);
    for missing in ["--tls-key", "--client-ca"] {
        assert!(run.stderr.contains(missing), "{}", run.stderr);
    }
    let run = ctl(&[&serve[..], &["--client-ca", "ca.pem", "--tls-key", "s.key"]].concat()).code(2);
    assert!(
        run.stderr.contains("required arguments were not provided")
            && run.stderr.contains("--tls-cert"),
        "{}",
        run.stderr
    );
    let status = ["status", "--server", "127.0.0.1:1"];
    let run = ctl(&[&status[..], &["--ca", "ca.pem"]].concat()).code(2);
    for missing in ["--tls-cert", "--tls-key"] {
        assert!(run.stderr.contains(missing), "{}", run.stderr);
    }
    let run = ctl(&["rollout", "plan.json", "--tls-key", "k.pem"]).code(2);
    assert!(run.stderr.contains("--tls-cert"), "{}", run.stderr);

    // All three, but files that are not there: said before listening.
    let all = [
        "--tls-cert",
        "s.pem",
        "--tls-key",
        "s.key",
        "--client-ca",
        "ca.pem",
    ];
    let run = ctl(&[&serve[..], &all].concat()).code(2);
    assert!(
        run.stderr
            .contains("--tls-cert, --tls-key, --client-ca: cannot read s.pem"),
        "{}",
        run.stderr
    );
    let mine = [
        "--tls-cert",
        "c.pem",
        "--tls-key",
        "c.key",
        "--ca",
        "ca.pem",
    ];
    let run = ctl(&[&status[..], &mine].concat()).code(2);
    assert!(
        run.stderr
            .contains("--tls-cert, --tls-key, --ca: cannot read c.pem"),
        "{}",
        run.stderr
    );
    let run = ctl(&["status", "--server", "https://127.0.0.1:1"]).code(2);
    assert!(
        run.stderr
            .contains("an https:// server wants --tls-cert, --tls-key and --ca"),
        "{}",
        run.stderr
    );
}
