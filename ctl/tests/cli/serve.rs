//! `serve` and `status` as far as they go without a fleet (the fleet
//! itself, with real Envoys, is tests/fleet): the usage errors, exit 2.

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
