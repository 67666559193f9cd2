//! The shadow's requests, natively: a worker queues them, Envoy's main
//! thread sends them and hands their answers to the core.
//!
//! A copy must outlive the user's stream, which a stream's own callout
//! does not (Envoy cancels it when the stream ends), and a configuration's
//! callout may only be sent from Envoy's main thread (docs/shadow-callouts.md).
//! So, in order:
//!
//! 1. on a worker, the core's flow asks [`Copies::queue`] for each side of
//!    a pair (`flow::Host::dispatch`): the request is copied into a
//!    [`Job`] on this configuration's bounded queue, and the first job
//!    into an empty queue commits an event to the configuration's
//!    scheduler;
//! 2. on the main thread, `on_http_filter_config_scheduled` runs
//!    [`Copies::send`]: it drains the queue and sends each job as a
//!    configuration callout, remembering its id; one Envoy refuses at once
//!    (an unknown cluster, no healthy host) is answered at once as no
//!    answer;
//! 3. on the main thread, `on_http_filter_config_http_callout_done` runs
//!    [`Copies::answered`], which hands the answer to the core's
//!    `Runtime::shadow_answer`: the pair's last answer settles it.
//!
//! When the configuration goes (`config_destroy`), Envoy cancels its
//! callouts without a word: [`Copies::abandon`] answers every job still
//! queued or in flight as no answer, so each pair is still counted (the
//! copy's side as `error`, or `skipped` when stable's side is the one
//! lost), never silently dropped.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use turnout::flow::Dispatch;
use turnout::flow::Shared as _;
use turnout::shadow::{Reply, Side};

use crate::abi::{CalloutAnswer, MainThread, Scheduler};
use crate::config::FilterConfig;
use crate::host::monotonic_nanos;

/// The scheduler event that says "the queue has jobs".
pub const JOBS_QUEUED: u64 = 1;

/// The most jobs waiting for the main thread, over every split: past it a
/// side is refused, and counted as no answer. The core's `max_in_flight`
/// (per split, 256 by default, up to three sides a pair) bounds them
/// first; this bounds the memory a stalled main thread can pin.
pub const MAX_QUEUED: usize = 4096;

/// One side of a pair, owned, on its way to the main thread.
struct Job {
    cluster: String,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    body: Vec<u8>,
    timeout_ms: u64,
    pair: u64,
    side: Side,
    /// When the worker queued it (the module's monotonic clock, ns): the
    /// copy's latency runs from here, as the wasm build's runs from its
    /// dispatch.
    queued_ns: u64,
}

/// A sent callout waiting for its answer.
struct Waiting {
    pair: u64,
    side: Side,
    queued_ns: u64,
}

/// A configuration's shadow requests between the workers and the main
/// thread.
pub struct Copies {
    /// `None`: Envoy gave no scheduler, so nothing can reach the main
    /// thread, and every side is refused (counted as no answer).
    scheduler: Option<Scheduler>,
    queue: Mutex<Vec<Job>>,
    /// Callouts sent, by Envoy's id (main thread only; locked all the
    /// same, since `config_destroy` may run elsewhere).
    waiting: Mutex<HashMap<u64, Waiting>>,
}

impl Copies {
    pub fn new(scheduler: Option<Scheduler>) -> Copies {
        Copies {
            scheduler,
            queue: Mutex::new(Vec::new()),
            waiting: Mutex::new(HashMap::new()),
        }
    }

    /// A worker's side of a pair, queued for the main thread; `false` if
    /// it cannot be sent (no scheduler, the queue is full), and then the
    /// core counts it as no answer.
    pub fn queue(&self, request: &Dispatch<'_>, pair: u64, side: Side) -> bool {
        let Some(scheduler) = &self.scheduler else {
            return false;
        };
        let job = Job {
            cluster: request.cluster.to_string(),
            headers: request
                .headers
                .iter()
                .map(|(n, v)| (n.to_vec(), v.to_vec()))
                .collect(),
            body: request.body.to_vec(),
            // 0 would mean no timeout to Envoy: a copy always has one.
            timeout_ms: u64::from(request.timeout_ms.max(1)),
            pair,
            side,
            queued_ns: monotonic_nanos(),
        };
        let was_empty = {
            let mut queue = lock(&self.queue);
            if queue.len() >= MAX_QUEUED {
                return false;
            }
            queue.push(job);
            queue.len() == 1
        };
        // One event per batch: a drain empties the queue at once, so the
        // next job into it commits again, and none waits unseen.
        if was_empty {
            scheduler.commit(JOBS_QUEUED);
        }
        true
    }

    /// Main thread: sends every queued job as a callout of `envoy`.
    pub fn send(&self, config: &FilterConfig, envoy: &MainThread<'_>) {
        let jobs = std::mem::take(&mut *lock(&self.queue));
        for job in jobs {
            match envoy.http_callout(
                job.cluster.as_bytes(),
                &job.headers,
                &job.body,
                job.timeout_ms,
            ) {
                Ok(id) => {
                    let waiting = Waiting {
                        pair: job.pair,
                        side: job.side,
                        queued_ns: job.queued_ns,
                    };
                    lock(&self.waiting).insert(id, waiting);
                }
                // Refused at once (unknown cluster, no healthy host):
                // no hook will follow, so it is answered here.
                Err(_) => config.shadow_answer(job.pair, job.side, Reply::none()),
            }
        }
    }

    /// Main thread: the answer to callout `id` (`None`: it was reset or
    /// went over the response buffer limit), for the core to settle.
    pub fn answered(&self, config: &FilterConfig, id: u64, answer: Option<CalloutAnswer>) {
        // An id this configuration did not send is not ours to answer.
        let Some(waiting) = lock(&self.waiting).remove(&id) else {
            return;
        };
        let reply = match answer {
            Some(CalloutAnswer { headers, body }) => {
                let now = monotonic_nanos();
                let latency_ms =
                    (now >= waiting.queued_ns).then(|| (now - waiting.queued_ns) / 1_000_000);
                Reply::of(headers, body, latency_ms)
            }
            None => Reply::none(),
        };
        config.shadow_answer(waiting.pair, waiting.side, reply);
    }

    /// The configuration is going, and Envoy cancels its callouts with no
    /// answer: every side still queued or in flight is answered as none,
    /// so its pair is counted rather than lost.
    pub fn abandon(&self, config: &FilterConfig) {
        let jobs = std::mem::take(&mut *lock(&self.queue));
        let waiting = std::mem::take(&mut *lock(&self.waiting));
        let sides = jobs
            .into_iter()
            .map(|j| (j.pair, j.side))
            .chain(waiting.into_values().map(|w| (w.pair, w.side)));
        for (pair, side) in sides {
            config.shadow_answer(pair, side, Reply::none());
        }
    }
}

/// A lock whose holder panicked is still good: each update under these
/// locks is a single push, insert or take.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
