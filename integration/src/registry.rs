//! The CNCF distribution registry (Debian's `docker-registry` package), on
//! 127.0.0.1 and a free port, storing in a scratch directory, optionally
//! behind htpasswd (bcrypt) Basic authentication or serving HTTPS: the
//! registry the image tests push to. Killed on drop.

use crate::debian;
use crate::paths::scratch_dir;
use crate::process::spawn_tied;
use crate::prometheus::free_port;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::net::{Ipv4Addr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running registry.
pub struct Registry {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Registry {
    /// Starts a registry over plain HTTP that lets anyone push.
    pub fn open() -> Registry {
        Registry::start(&[], None)
    }

    /// Starts a registry over plain HTTP that takes only these users (name,
    /// password).
    pub fn with_users(users: &[(&str, &str)]) -> Registry {
        assert!(!users.is_empty(), "a registry with auth needs a user");
        Registry::start(users, None)
    }

    /// Starts a registry over HTTPS that lets anyone push, with this
    /// certificate chain and key (PEM).
    pub fn with_tls(certificate_pem: &str, key_pem: &str) -> Registry {
        Registry::start(&[], Some((certificate_pem, key_pem)))
    }

    fn start(users: &[(&str, &str)], tls: Option<(&str, &str)>) -> Registry {
        let bin = debian::tool("docker-registry", "TURNOUT_REGISTRY_BIN", "docker-registry");
        let dir = scratch_dir("registry");
        let port = free_port();
        let mut http = format!("http:\n  addr: 127.0.0.1:{port}\n  secret: turnout-tests\n");
        if let Some((certificate, key)) = tls {
            let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
            fs::write(&cert_path, certificate).expect("write the certificate");
            fs::write(&key_path, key).expect("write the key");
            let _ = write!(
                http,
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert_path.display(),
                key_path.display()
            );
        }
        let auth = if users.is_empty() {
            String::new()
        } else {
            let htpasswd = dir.join("htpasswd");
            fs::write(&htpasswd, htpasswd_lines(users)).expect("write htpasswd");
            format!(
                "auth:\n  htpasswd:\n    realm: turnout-tests\n    path: {}\n",
                htpasswd.display()
            )
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n{http}{auth}",
            dir.join("storage").display()
        );
        let config_path = dir.join("config.yml");
        fs::write(&config_path, config).expect("write the registry's config");
        let log = File::create(dir.join("registry.log")).expect("create the registry's log");
        let mut cmd = Command::new(&bin);
        cmd.arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log's handle"))
            .stderr(log);
        let child = spawn_tied(cmd).unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let mut registry = Registry { child, port, dir };
        registry.wait_until_listening();
        registry
    }

    /// `127.0.0.1:PORT`, the registry part of an image reference.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The registry's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the registry exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "the registry did not listen within 30 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "registry log kept in {}\n{}",
                self.dir.display(),
                self.log()
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// `name:bcrypt-hash` lines, as `htpasswd -B` writes them: the only hash
/// the distribution registry accepts. Cost 4, the least bcrypt allows:
/// these passwords guard nothing.
fn htpasswd_lines(users: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (name, password) in users {
        let hash = bcrypt::hash(password, 4).expect("bcrypt a test password");
        let _ = writeln!(out, "{name}:{hash}");
    }
    out
}
