//! The server's shared state: the catalog being served (watched by every
//! stream, so a change is pushed at once), the registry of proxies, and a
//! signal that either changed (what `GET /wait` sleeps on).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use super::catalog::{Catalog, Ms};
use super::state::Registry;
use super::wait::{judge, Verdict, Want};

pub struct Hub {
    catalog: watch::Sender<Arc<Catalog>>,
    registry: Mutex<Registry>,
    changed: watch::Sender<u64>,
}

impl Hub {
    pub fn new(catalog: Catalog) -> Arc<Hub> {
        Arc::new(Hub {
            catalog: watch::Sender::new(Arc::new(catalog)),
            registry: Mutex::new(Registry::default()),
            changed: watch::Sender::new(0),
        })
    }

    /// Serves `catalog` from now on: every stream sees it.
    pub fn publish(&self, catalog: Catalog) {
        self.catalog.send_replace(Arc::new(catalog));
        self.touch();
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.borrow().clone()
    }

    pub fn watch_catalog(&self) -> watch::Receiver<Arc<Catalog>> {
        self.catalog.subscribe()
    }

    /// The registry, locked. Held briefly, never across an await; a panic
    /// while it was held leaves it as consistent as any single update.
    pub fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Something a waiter may care about changed.
    pub fn touch(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Waits until `want` is final or `deadline`; the verdict either way.
    pub async fn wait(&self, want: &Want, deadline: tokio::time::Instant) -> Verdict {
        let mut changes = self.changed.subscribe();
        loop {
            changes.borrow_and_update();
            let verdict = judge(&self.catalog(), self.registry().proxies(), want);
            if verdict.is_final() {
                return verdict;
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => continue,
                _ => return verdict,
            }
        }
    }
}

pub fn now_ms() -> Ms {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Ms)
}

/// `ms` as RFC 3339 UTC with milliseconds: `2026-12-01T09:00:00.250Z`.
pub fn time(ms: Ms) -> String {
    let secs = crate::show::rfc3339((ms / 1000) as i64);
    format!("{}.{:03}Z", secs.trim_end_matches('Z'), ms % 1000)
}

/// One line on the server's log (stderr), with the time.
pub fn log(message: &str) {
    eprintln!("{} turnoutctl serve: {message}", time(now_ms()));
}
