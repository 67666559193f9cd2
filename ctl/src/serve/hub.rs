//! The server's shared state: the catalog being served (watched by every
//! stream, so a change is pushed at once), every proxy's subscription, and a
//! signal that either changed (what `GET /wait` sleeps on).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use super::catalog::{Catalog, Ms};
use super::state::Subscriptions;
use super::wait::{judge, Delivery, Want};

pub struct Hub {
    catalog: watch::Sender<Arc<Catalog>>,
    subscriptions: Mutex<Subscriptions>,
    changed: watch::Sender<u64>,
}

impl Hub {
    pub fn new(catalog: Catalog) -> Arc<Hub> {
        Arc::new(Hub {
            catalog: watch::Sender::new(Arc::new(catalog)),
            subscriptions: Mutex::new(Subscriptions::default()),
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

    /// The subscriptions, locked. Held briefly, never across an await; a panic
    /// while it was held leaves it as consistent as any single update.
    pub fn subscriptions(&self) -> MutexGuard<'_, Subscriptions> {
        self.subscriptions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Something a waiter may care about changed.
    pub fn touch(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Waits until `want` is final or `deadline`; where it stands either way.
    pub async fn wait(&self, want: &Want, deadline: tokio::time::Instant) -> Delivery {
        let mut changes = self.changed.subscribe();
        loop {
            changes.borrow_and_update();
            let delivery = judge(&self.catalog(), self.subscriptions().proxies(), want);
            if delivery.is_final() {
                return delivery;
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => continue,
                _ => return delivery,
            }
        }
    }
}

pub fn now_ms() -> Ms {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Ms)
}
