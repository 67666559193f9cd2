//! A request its split's shadow copies, through the request's callbacks:
//! sampled and opened at its headers, its body gathered (up to
//! `max_body_bytes`) and the copy sent when the body is complete, and, for
//! a write, the user's own answer handed in as stable's (a write is never
//! sent to stable twice): its status and headers, not its body, which the
//! wasm build could only read by entering the VM for every response body
//! of every request. Each side's answer goes to the runtime's book,
//! which settles the pair; whatever this stream still owes the pair when
//! it ends (a body never finished, a response cut) is answered as lost, so
//! every sampled request is counted once.

use super::{Dispatch, Host, Shared, Write};
use crate::decide::Verdict;
use crate::shadow::{self, Book, Opened, Reply, Side, SHADOW_HEADER};

type OwnedHeaders = Vec<(Vec<u8>, Vec<u8>)>;

/// One copied request's state between its callbacks.
#[derive(Clone, Debug)]
pub struct Copying {
    pair: u64,
    split: usize,
    noise: bool,
    /// A method with side effects (a dual write): sent to the new side
    /// only; stable's answer is the user's.
    write: bool,
    /// The request body that may be gathered.
    limit: usize,
    headers: OwnedHeaders,
    body: Vec<u8>,
    /// The copy went out, or was given up: no more request body wanted.
    sent: bool,
    /// A write's stable side was answered.
    answered: bool,
}

/// Copies the request if its split's shadow samples it; `None` when not.
/// Sends the copy at once when the request has no body.
pub fn start(
    shared: &impl Shared,
    host: &impl Host,
    verdict: &Verdict<'_>,
    trace_id: &[u8; 32],
) -> Option<Box<Copying>> {
    let plan = shared.plan();
    // A client never marks a real request as a copy: the new side may
    // skip side effects (e-mails, payments) for copies.
    if host.header(SHADOW_HEADER).is_some() {
        host.set_request_header(SHADOW_HEADER, None, Write::Replace);
    }
    let method = host.method().unwrap_or_default();
    let draw = || (shared.next_u64() % 10_000) as u16;
    let (split, shadow) = shadow::sample(plan, verdict, method, draw)?;
    let trace = std::str::from_utf8(trace_id).unwrap_or_default();
    let path = host.path().unwrap_or_default();
    let noise = shadow.noise_for(method);
    let Opened::Pair(pair) =
        shared.shadow_open(split, shadow, (method, path, trace), noise, host.worker())
    else {
        return None;
    };
    let traceparent = format!("00-{trace}-{:016x}-01", shared.next_u64());
    // Envoy frames the copy's body itself, and an `x-envoy-*` header would
    // steer its router (timeouts, retries) as the client asked.
    let drop = [
        plan.decision_header.as_str(),
        "traceparent",
        "tracestate",
        "content-length",
    ];
    let mut headers: OwnedHeaders = shadow::copy_headers(&host.request_headers(), &drop)
        .into_iter()
        .filter(|(name, _)| !name.to_ascii_lowercase().starts_with(b"x-envoy-"))
        .map(|(n, v)| (n.to_vec(), v.to_vec()))
        .collect();
    headers.push((b"traceparent".to_vec(), traceparent.into_bytes()));
    let mut copying = Copying {
        pair,
        split,
        noise,
        write: !shadow::is_safe_method(method),
        limit: shadow.max_body_bytes as usize,
        headers,
        body: Vec::new(),
        sent: false,
        answered: false,
    };
    if !host.request_has_body() {
        copying.send(shared, host);
    }
    Some(Box::new(copying))
}

impl Copying {
    /// Whether the request body's chunks are wanted.
    pub fn wants_request_body(&self) -> bool {
        !self.sent
    }

    /// A chunk of the request body: gathered, and the copy sent with the
    /// last; a body over `max_body_bytes` is not copied (`skipped`).
    pub fn request_body(
        &mut self,
        shared: &impl Shared,
        host: &impl Host,
        chunk: &[u8],
        end: bool,
    ) {
        if self.sent {
            return;
        }
        if self.body.len() + chunk.len() > self.limit {
            self.give_up(shared);
            return;
        }
        self.body.extend_from_slice(chunk);
        if end {
            self.send(shared, host);
        }
    }

    /// Whether the user's answer is wanted: a write's stable side.
    pub fn wants_response(&self) -> bool {
        self.write && !self.answered
    }

    /// The user's answer's headers: stable's answer to a write.
    pub fn response_headers(&mut self, shared: &impl Shared, host: &impl Host) {
        if !self.wants_response() {
            return;
        }
        let headers = host.response_headers();
        let headers = headers
            .iter()
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect();
        self.answered = true;
        let reply = Reply::of(headers, Vec::new(), None);
        shared.shadow_answer(self.pair, Side::Stable, reply);
    }

    /// The stream has ended: what it still owed the pair will not come.
    pub fn end(self, shared: &impl Shared) {
        if !self.sent {
            let mut copying = self;
            copying.give_up(shared);
        } else if self.write && !self.answered {
            shared.shadow_answer(self.pair, Side::Stable, Reply::none());
        }
    }

    /// The sides this stream sends: a write only to the new side.
    fn sides(&self) -> &'static [Side] {
        if self.write {
            &[Side::Copy]
        } else {
            Book::sides(self.noise)
        }
    }

    /// Sends the sides; one the host could not send is answered as lost.
    fn send(&mut self, shared: &impl Shared, host: &impl Host) {
        self.sent = true;
        let plan = shared.plan();
        let Some(split) = plan.splits.get(self.split) else {
            return;
        };
        let Some(shadow) = &split.shadow else { return };
        let headers: Vec<(&[u8], &[u8])> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_slice(), v.as_slice()))
            .collect();
        for &side in self.sides() {
            let cluster = match side {
                Side::Copy => shadow.cluster.as_str(),
                Side::Stable | Side::Noise => split.clusters[0].as_str(),
            };
            let request = Dispatch {
                cluster,
                headers: &headers,
                body: &self.body,
                timeout_ms: shadow.timeout_ms,
            };
            if !host.dispatch(&request, self.pair, side) {
                shared.shadow_answer(self.pair, side, Reply::none());
            }
        }
        self.body = Vec::new();
    }

    /// Not sent: every side of the pair is answered as lost, so the pair
    /// is counted `skipped`.
    fn give_up(&mut self, shared: &impl Shared) {
        self.sent = true;
        self.answered = true;
        self.body = Vec::new();
        for &side in Book::sides(self.noise) {
            shared.shadow_answer(self.pair, side, Reply::none());
        }
    }
}
