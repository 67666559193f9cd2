//! A real browser for tests that look at a page as a person would: Debian's
//! `chromium`, headless, driven over WebDriver by Debian's `chromedriver`
//! (package `chromium-driver`), both installed with `apt-get` once when
//! absent. The WebDriver client is `fantoccini`; its async calls are
//! wrapped here in plain blocking ones, as the tests are plain threads.
//!
//! chromedriver listens on a free loopback port (it takes local
//! connections only) in a process group of its own, with the browser it
//! starts: dropping the `Browser` ends the session and kills the group,
//! also while a test unwinds.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

use crate::client::try_admin_get;
use crate::debian::tool;
use crate::envoy::poll;
use crate::paths::scratch_dir;
use crate::process::spawn_tied;
use crate::prometheus::free_port;

/// How long one WebDriver command may take (a page load included).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The browser window: wide enough for the tables, tall enough that a
/// screenshot holds a fleet's page.
const WINDOW: (u32, u32) = (1400, 1000);

pub struct Browser {
    runtime: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    log: PathBuf,
}

impl Browser {
    /// chromium (`CHROMIUM_BIN` overrides) under chromedriver
    /// (`CHROMEDRIVER_BIN`), headless, with a blank page open. `--no-sandbox`
    /// and `--disable-dev-shm-usage`: a container has neither user
    /// namespaces for the sandbox nor a /dev/shm of any size.
    pub fn start() -> Browser {
        let chromium = tool("chromium", "CHROMIUM_BIN", "chromium");
        let chromedriver = tool("chromedriver", "CHROMEDRIVER_BIN", "chromium-driver");
        let dir = scratch_dir("browser");
        let chromium = tied(&chromium, &dir);
        let log = dir.join("chromedriver.log");
        let port = free_port();
        let mut cmd = Command::new(chromedriver);
        cmd.arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(dir.join("stderr.txt")).expect("create chromedriver's stderr"));
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let driver = spawn_tied(cmd).unwrap_or_else(|e| panic!("cannot start chromedriver: {e}"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the WebDriver client");
        let mut browser = Browser {
            runtime,
            client: None,
            driver,
            log,
        };
        let ready = poll(Duration::from_secs(20), || {
            match try_admin_get(port, "/status") {
                Ok((200, body)) if body.contains("\"ready\":true") => Some(()),
                _ => None,
            }
        });
        if ready.is_none() {
            panic!("chromedriver is not ready after 20 s:\n{}", browser.log());
        }
        let (width, height) = WINDOW;
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--disable-gpu", "--disable-crash-reporter", "--disable-breakpad",
                         format!("--window-size={width},{height}"),
                         format!("--user-data-dir={}", dir.join("profile").display())],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let connected = browser.runtime.block_on(async {
            ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities)
                .connect(&url)
                .await
        });
        match connected {
            Ok(client) => browser.client = Some(client),
            Err(e) => panic!("no WebDriver session: {e}\n{}", browser.log()),
        }
        browser
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("a session until dropped")
    }

    /// Runs one WebDriver command, or panics saying which.
    fn run<T, E: std::fmt::Display>(
        &self,
        what: &str,
        command: impl std::future::Future<Output = Result<T, E>>,
    ) -> T {
        // The timer is made inside the runtime: it needs its clock.
        let bounded = async { tokio::time::timeout(COMMAND_TIMEOUT, command).await };
        match self.runtime.block_on(bounded) {
            Ok(Ok(value)) => value,
            Ok(Err(e)) => panic!("{what}: {e}"),
            Err(_) => panic!("{what}: no answer within {COMMAND_TIMEOUT:?}"),
        }
    }

    /// Loads `url` and waits for its document.
    pub fn open(&self, url: &str) {
        self.run(&format!("open {url}"), self.client().goto(url));
    }

    /// The text a person sees in each element that `css` selects (its
    /// `innerText`: as rendered, hidden parts left out). Read in one
    /// script, so that a page that redraws itself meanwhile cannot leave
    /// half the elements stale.
    pub fn texts(&self, css: &str) -> Vec<String> {
        let script =
            "return Array.from(document.querySelectorAll(arguments[0]), e => e.innerText);";
        let found = self.run(css, self.client().execute(script, vec![json!(css)]));
        let texts = found.as_array().map(Vec::as_slice).unwrap_or_default();
        texts
            .iter()
            .map(|t| t.as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Runs `script` (a function body: `return …;`) in the page.
    pub fn eval(&self, script: &str) -> Value {
        self.run(script, self.client().execute(script, Vec::new()))
    }

    /// Waits until `done` holds for the page as it is; panics with `what`
    /// and the page's text after `timeout`.
    pub fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&Browser) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        while !done(self) {
            if Instant::now() >= deadline {
                let shown = self.texts("body").join("\n");
                panic!("the page never showed {what} within {timeout:?}; it shows:\n{shown}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A PNG of the window, written to `path`.
    pub fn screenshot(&self, path: &Path) {
        let png = self.run("screenshot", self.client().screenshot());
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).expect("create the screenshot's directory");
        }
        fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// chromedriver's log (the browser's start, the commands).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The browser as chromedriver should start it: through util-linux's
/// `setpriv --pdeathsig KILL`, so that it dies with chromedriver even when
/// the test process is killed and no `Drop` runs (chromedriver itself dies
/// with the test, `spawn_tied`). Without `setpriv`, the browser as it is.
fn tied(chromium: &Path, dir: &Path) -> PathBuf {
    let Some(setpriv) = crate::debian::find("setpriv") else {
        return chromium.to_path_buf();
    };
    let script = dir.join("chromium");
    let text = format!(
        "#!/bin/sh\nexec '{}' --pdeathsig KILL '{}' \"$@\"\n",
        setpriv.display(),
        chromium.display()
    );
    fs::write(&script, text).expect("write the browser's wrapper");
    let executable = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    fs::set_permissions(&script, executable).expect("make the wrapper executable");
    script
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends the session: chromedriver closes the browser.
        if let Some(client) = self.client.take() {
            let close =
                async { tokio::time::timeout(Duration::from_secs(5), client.close()).await };
            let _ = self.runtime.block_on(close);
        }
        // Then the group: chromedriver, and a browser that did not close.
        // SAFETY: kill has no memory effects; the group is chromedriver's
        // own (process_group(0) made its pid the group id).
        unsafe {
            libc::kill(-(self.driver.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.driver.wait();
    }
}
