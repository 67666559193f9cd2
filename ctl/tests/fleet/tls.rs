//! Mutual TLS end to end: real Envoys from the shipped
//! `envoy/fleet-tls.yaml` and `turnoutctl serve --tls-cert … --tls-key …
//! --client-ca …`, asked by `turnoutctl status --tls-cert … --tls-key …
//! --ca …`. Every certificate is made for the test (integration::pki).

use std::fs;
use std::thread::sleep;
use std::time::{Duration, Instant};

use integration::pki::Ca;
use integration::{workspace_root, Build};

use super::harness::pki::client_args;
use super::harness::{
    config, ctl, setup, start_all, track, until_served, write, Options, Pki, Proxy, ProxyTls,
    Server,
};
use super::{options, wasm};

fn tls_options(tls: ProxyTls, ads: bool) -> Options {
    Options {
        tls: Some(tls),
        ..options(Build::Wasm, ads)
    }
}

/// The node ids the status shows.
fn nodes(server: &Server) -> Vec<String> {
    let status = server.status();
    let proxies = status["proxies"].as_array().cloned().unwrap_or_default();
    proxies
        .iter()
        .map(|p| p["node"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Waits (10 s at most) until the server's log has a line holding every
/// one of `needles`; that line.
fn logged(server: &Server, needles: &[&str]) -> String {
    logged_times(server, needles, 1)
}

/// Waits (10 s at most) until the server's log has `times` lines holding
/// every one of `needles`; the last.
fn logged_times(server: &Server, needles: &[&str], times: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = server.log();
        let found: Vec<&str> = log
            .lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .collect();
        if found.len() >= times {
            return found[times - 1].to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no line with {needles:?} in the server's log:\n{log}"
        );
        sleep(Duration::from_millis(20));
    }
}

#[test]
fn proxies_with_their_certificates_take_every_push_and_a_client_without_one_is_refused() {
    let stage = setup(0);
    let pki = Pki::new();
    let server = pki.server(&stage.dir, &wasm());
    let nodes_tls = [
        ("a", tls_options(pki.proxy("a", &pki.ca, &["a"]), false)),
        ("c", tls_options(pki.proxy("c", &pki.ca, &["c"]), true)),
    ];
    let proxies = start_all(&nodes_tls, &[server.port], &stage.upstreams);
    server.acked(&stage.file, 2);
    write(&stage.file, &config(100, false));
    server.acked(&stage.file, 2);
    until_served(&proxies, "alice", "fastapi");
    let status = server.status();
    for node in ["a", "c"] {
        assert_eq!(track(&status, node)["state"], "acked", "{status:#}");
    }

    // Without a client certificate: no answer, and a line that says why.
    let plain = ctl(&["status", "--server", &server.addr()]);
    assert_eq!(plain.code, 1, "{}{}", plain.stdout, plain.stderr);
    assert!(
        plain
            .stderr
            .contains("if it speaks mutual TLS, give --tls-cert, --tls-key and --ca"),
        "{}",
        plain.stderr
    );
    assert!(plain.stdout.is_empty(), "{}", plain.stdout);
    logged(&server, &["TLS handshake with 127.0.0.1:", "refused"]);

    // Over TLS, trusting the server, but with no certificate of its own.
    let anonymous = get_status_anonymously(server.port, &pki.ca.pem);
    let refusal = anonymous.expect_err("a client without a certificate is let in");
    assert!(refusal.contains("CertificateRequired"), "{refusal}");
    logged(&server, &["refused: peer sent no certificates"]);
}

/// `GET /status` over TLS with no client certificate (rustls, as the
/// server speaks it): the answer, or why there is none.
fn get_status_anonymously(port: u16, ca_pem: &str) -> Result<String, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use std::io::{Read, Write};
    use std::sync::Arc;

    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("the CA is PEM")).expect("a CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").expect("a server name");
    let mut session = rustls::ClientConnection::new(Arc::new(config), name).expect("a session");
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut tls = rustls::Stream::new(&mut session, &mut tcp);
    let request = b"GET /status HTTP/1.1\r\nHost: turnout\r\nConnection: close\r\n\r\n";
    tls.write_all(request).map_err(|e| e.to_string())?;
    let mut answer = String::new();
    tls.read_to_string(&mut answer).map_err(|e| e.to_string())?;
    Ok(answer)
}

#[test]
fn a_proxy_the_ca_did_not_sign_or_that_claims_another_node_id_is_refused_and_never_shown() {
    let stage = setup(0);
    let pki = Pki::new();
    let server = pki.server(&stage.dir, &wasm());
    let a_files = pki.proxy("a", &pki.ca, &["a"]);
    let good = [("a", tls_options(a_files.clone(), false))];
    let _a = start_all(&good, &[server.port], &stage.upstreams);
    server.acked(&stage.file, 1);

    // Not waiting for a config that will not come: the default applies.
    let refused = |tls| Options {
        initial_fetch_timeout: Some("1s"),
        // Envoy says why its stream closed at debug until 30 s have passed.
        envoy_args: vec!["--component-log-level", "config:debug"],
        ..tls_options(tls, false)
    };
    let stranger = pki.proxy("stranger", &Ca::new("another"), &["stranger"]);
    let bad = [("stranger", refused(stranger)), ("b", refused(a_files))];
    let bad: Vec<Proxy> = start_all(&bad, &[server.port], &stage.upstreams);

    let handshake = logged(&server, &["TLS handshake with 127.0.0.1:", "UnknownIssuer"]);
    assert!(
        handshake.contains("refused: invalid peer certificate"),
        "{handshake}"
    );
    logged(
        &server,
        &[
            "refused: node id \"b\" is not a DNS name of the client certificate (it names a)",
            "(ecds)",
        ],
    );
    // Refused again on every retry; never shown, while a is.
    for _ in 0..10 {
        assert_eq!(nodes(&server), ["a"]);
        sleep(Duration::from_millis(100));
    }
    // Envoy was told why: gRPC status 7, PermissionDenied, and the message
    // (percent-encoded, as grpc-message travels and Envoy logs it).
    bad[1].envoy.wait_for_log(
        "closed: 7, node%20id%20%22b%22%20is%20not%20a%20DNS%20name%20of%20the%20client%20certificate",
        Duration::from_secs(10),
    );
}

#[test]
fn rotated_server_files_serve_new_handshakes_and_keep_connected_proxies() {
    let stage = setup(0);
    let pki = Pki::new();
    // The proxy trusts the current CA and the next one, as a rotation of
    // the server's CA is rolled out.
    let next_ca = Ca::new("next");
    let a_files = pki.proxy("a", &pki.ca, &["a"]);
    let bundle = pki.dir.join("both.pem");
    fs::write(&bundle, format!("{}{}", pki.ca.pem, next_ca.pem)).expect("write the bundle");
    let a_tls = ProxyTls {
        ca: bundle,
        ..a_files
    };
    let mut server = pki.server(&stage.dir, &wasm());
    let proxies = start_all(
        &[("a", tls_options(a_tls, false))],
        &[server.port],
        &stage.upstreams,
    );
    server.acked(&stage.file, 1);
    let before = server.status()["proxies"][0].clone();
    let (server_cert, server_key) = pki.server.clone();

    // A certificate whose key is not there yet: refused, the old one serves.
    let next = next_ca.leaf(&["turnout-server", "127.0.0.1"]);
    fs::write(&server_cert, &next.cert).expect("rotate the certificate");
    logged(
        &server,
        &["cannot serve", "the key is not the certificate's"],
    );
    assert_eq!(nodes(&server), ["a"]);

    // Its key: served to new handshakes.
    fs::write(&server_key, &next.key).expect("rotate the key");
    logged_times(&server, &["TLS: re-read", "new connections use them"], 1);
    let old_trust = ctl_status(&server, &pki.operator_args(&pki.ca_file));
    assert_eq!(old_trust.code, 1, "{}", old_trust.stderr);
    assert!(
        old_trust
            .stderr
            .contains("its certificate is not one this client trusts"),
        "{}",
        old_trust.stderr
    );
    let next_ca_file = next_ca.write(&pki.dir, "next-ca");
    server.set_client(&pki.operator_args(&next_ca_file));
    assert_eq!(nodes(&server), ["a"]);

    // A new client CA: an operator it signs is let in from now on.
    let other_ca = Ca::new("operators");
    let other = other_ca.leaf(&["operator-2"]).write(&pki.dir, "operator-2");
    let other_args = client_args(&other, &next_ca_file);
    assert_eq!(ctl_status(&server, &other_args).code, 1);
    let client_cas = format!("{}{}", pki.ca.pem, other_ca.pem);
    fs::write(&pki.ca_file, client_cas).expect("rotate the client CA");
    logged_times(&server, &["TLS: re-read", "new connections use them"], 2);
    let let_in = ctl_status(&server, &other_args);
    assert_eq!(let_in.code, 0, "{}", let_in.stderr);

    // The proxy never noticed: the next push is ACKed on the same stream.
    write(&stage.file, &config(100, false));
    server.acked(&stage.file, 1);
    until_served(&proxies, "alice", "fastapi");
    let after = server.status()["proxies"][0].clone();
    for same in ["stream", "peer", "connected_at_ms"] {
        assert_eq!(before[same], after[same], "{before:#}\n{after:#}");
    }
    assert_eq!(
        proxies[0]
            .envoy
            .stat("cluster.turnout_xds.upstream_cx_total"),
        Some(1)
    );
}

/// `turnoutctl status --server ADDR` with these TLS flags.
fn ctl_status(server: &Server, tls: &[String]) -> super::harness::Run {
    let addr = server.addr();
    let mut all = vec!["status", "--server", addr.as_str()];
    all.extend(tls.iter().map(String::as_str));
    ctl(&all)
}

#[test]
fn fleet_tls_yaml_is_fleet_yaml_with_a_tls_transport_socket() {
    let read = |name: &str| fs::read_to_string(workspace_root().join(name)).expect(name);
    let (plain, tls) = (read("envoy/fleet.yaml"), read("envoy/fleet-tls.yaml"));
    let body = |yaml: &str| yaml[yaml.find("\nnode:").expect("a node")..].to_string();
    let socket_start = tls
        .find("    transport_socket:\n")
        .expect("a transport socket");
    let socket_end = socket_start
        + tls[socket_start..]
            .find("    typed_extension_protocol_options:")
            .expect("the xDS cluster's protocol options");
    let mut without = tls.clone();
    without.replace_range(socket_start..socket_end, "");
    assert_eq!(body(&without), body(&plain));
    let socket = &tls[socket_start..socket_end];
    for needed in [
        "UpstreamTlsContext",
        "sni: turnout-server",
        "certificate_chain: {filename: certs/proxy.pem}",
        "private_key: {filename: certs/proxy.key}",
        "trusted_ca: {filename: certs/ca.pem}",
        "matcher: {exact: turnout-server}",
    ] {
        assert!(socket.contains(needed), "{needed}");
    }
}
