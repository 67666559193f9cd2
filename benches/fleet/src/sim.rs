//! The simulated proxies: each an ECDS stream on its own HTTP/2
//! connection to the server (tonic's client, as Envoy's gRPC client opens
//! one connection per xDS cluster), answering every response as its
//! `Answerer` decides and reconnecting with Envoy's backoff when the
//! stream ends. What they answered is counted in a `Tally` that the
//! benchmark's own thread waits on.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::extension::v3::extension_config_discovery_service_client::ExtensionConfigDiscoveryServiceClient;
use tokio::sync::{mpsc, Semaphore};
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;

use crate::answer::{Answer, Answerer, Backoff};

/// Envoy's `retry_back_off` in `envoy/fleet.yaml`.
const BACKOFF_BASE: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// What every simulated proxy answered last, and on which server.
pub struct Tally {
    counts: Mutex<Counts>,
    changed: Condvar,
}

#[derive(Default)]
struct Counts {
    /// Per proxy: the version it answered last and the server (epoch) it
    /// answered on.
    last: Vec<(Option<String>, Option<u32>)>,
    /// How many proxies answered (ACK or NACK) each version.
    by_version: HashMap<String, usize>,
    /// How many proxies answered on each server.
    by_epoch: HashMap<u32, usize>,
    /// The server now running: one more after each restart.
    epoch: u32,
}

impl Tally {
    pub fn new(proxies: usize) -> Arc<Tally> {
        let counts = Counts {
            last: vec![(None, None); proxies],
            ..Counts::default()
        };
        Arc::new(Tally {
            counts: Mutex::new(counts),
            changed: Condvar::new(),
        })
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The server was replaced: answers from now on are the new one's.
    /// Called once the old server is dead and before the new one starts.
    pub fn next_epoch(&self) -> u32 {
        let mut counts = self.counts();
        counts.epoch += 1;
        counts.epoch
    }

    fn epoch(&self) -> u32 {
        self.counts().epoch
    }

    fn answered(&self, proxy: usize, answer: &Answer, epoch: u32) {
        let version = match answer {
            Answer::Ack { version } | Answer::Nack { version, .. } => version,
        };
        let mut counts = self.counts();
        let Some((last_version, last_epoch)) = counts.last.get(proxy).cloned() else {
            return;
        };
        if last_version.as_deref() != Some(version.as_str()) {
            *counts.by_version.entry(version.clone()).or_default() += 1;
        }
        if last_epoch != Some(epoch) {
            *counts.by_epoch.entry(epoch).or_default() += 1;
        }
        counts.last[proxy] = (Some(version.clone()), Some(epoch));
        drop(counts);
        self.changed.notify_all();
    }

    /// Waits until every proxy answered `version`.
    pub fn wait_version(&self, version: &str, timeout: Duration) -> Result<(), String> {
        self.wait(timeout, |c| c.by_version.get(version).copied().unwrap_or(0))
            .map_err(|n| format!("{n} simulated proxies answered version {version}"))
    }

    /// Waits until every proxy answered on server `epoch`.
    pub fn wait_epoch(&self, epoch: u32, timeout: Duration) -> Result<(), String> {
        self.wait(timeout, |c| c.by_epoch.get(&epoch).copied().unwrap_or(0))
            .map_err(|n| format!("{n} simulated proxies answered the restarted server"))
    }

    /// Waits until `count` reaches every proxy; the count at the timeout.
    fn wait(&self, timeout: Duration, count: impl Fn(&Counts) -> usize) -> Result<(), usize> {
        let deadline = Instant::now() + timeout;
        let mut counts = self.counts();
        loop {
            let n = count(&counts);
            if n >= counts.last.len() {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(n);
            }
            counts = self
                .changed
                .wait_timeout(counts, left)
                .map(|(c, _)| c)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }
}

/// Starts every proxy on `runtime`: at most `opening` connect at once at
/// first (a fleet does not start in one millisecond); after that each
/// reconnects on its own backoff, all together when the server restarts.
pub fn start(
    runtime: &tokio::runtime::Runtime,
    proxies: Vec<Answerer>,
    endpoint: &Endpoint,
    tally: &Arc<Tally>,
    opening: usize,
) {
    let gate = Arc::new(Semaphore::new(opening.max(1)));
    for (index, answerer) in proxies.into_iter().enumerate() {
        let (endpoint, tally, gate) = (endpoint.clone(), tally.clone(), gate.clone());
        runtime.spawn(async move {
            let mut proxy = Proxy {
                index,
                answerer,
                backoff: Backoff::new(BACKOFF_BASE, BACKOFF_MAX, index as u64),
                tally,
            };
            if let Ok(permit) = gate.acquire_owned().await {
                let _ = proxy.stream(&endpoint, Some(permit)).await;
            }
            loop {
                tokio::time::sleep(proxy.backoff.next_wait()).await;
                let _ = proxy.stream(&endpoint, None).await;
            }
        });
    }
}

struct Proxy {
    index: usize,
    answerer: Answerer,
    backoff: Backoff,
    tally: Arc<Tally>,
}

impl Proxy {
    /// One connection and its stream, until either ends. `permit` is let
    /// go once the stream is open.
    async fn stream(
        &mut self,
        endpoint: &Endpoint,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> Result<(), String> {
        // Its own connection: `connect` dials a new one for each channel.
        let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
        let mut client = ExtensionConfigDiscoveryServiceClient::new(channel);
        let (requests, outbound) = mpsc::channel(4);
        requests
            .send(self.answerer.subscribe())
            .await
            .map_err(|e| e.to_string())?;
        let mut responses = client
            .stream_extension_configs(ReceiverStream::new(outbound))
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        // Read once the server answered the stream's opening: the old
        // server is dead before the epoch moves on.
        let epoch = self.tally.epoch();
        drop(permit);
        while let Some(response) = responses.message().await.map_err(|e| e.to_string())? {
            let (answer, request) = self.answerer.answer(&response);
            self.backoff.reset();
            requests.send(request).await.map_err(|e| e.to_string())?;
            self.tally.answered(self.index, &answer, epoch);
        }
        Ok(())
    }
}
