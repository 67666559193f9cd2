//! The fleet server's ACKs, when `turnoutctl serve` serves the config
//! (the plan's `server`): a step's hold starts once every connected proxy
//! has ACKed the file as the controller wrote it, a NACK fails the step,
//! and a rollback is followed until every proxy has it (or said not to).
//! Versions are the server's (`serve::client::of_file`): the file's
//! content, so the controller knows what to wait for without asking.

use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::json;

use super::analysis::Failure;
use super::{Rollout, WATCH};
use crate::fail::Fail;
use crate::serve::client;
use crate::serve::wait::{Delivery, Want};

/// How long one ask of the fleet server's `/wait` may last: the config is
/// checked between two.
const ACK_SLICE: Duration = Duration::from_secs(1);

/// How long the rollback's ACKs are waited for before saying which proxies
/// do not have it yet.
const ROLLBACK_ACK_TIMEOUT: Duration = Duration::from_secs(30);

impl Rollout {
    /// Waits until every proxy connected to the fleet `server` (one at
    /// least) has ACKed the config as it is now; a NACK, or a file the
    /// server refuses, is the step's failure. Watches the config meanwhile,
    /// and says every interval what it is waiting for.
    pub(super) fn delivered(
        &mut self,
        i: usize,
        server: &str,
    ) -> Result<Result<(), Failure>, Fail> {
        let start = Instant::now();
        let interval = Duration::from_secs(self.plan.interval_s);
        let mut said = start;
        loop {
            self.unchanged()?;
            let (resource, version) = client::of_file(&self.plan.config)?;
            let want = Want {
                resource,
                version,
                proxies: 1,
            };
            let answer = client::wait_acked(server, &want, ACK_SLICE);
            let head = self.at(i).head();
            let news = match answer {
                Ok(Delivery::Acked { nodes }) => {
                    let ms = start.elapsed().as_millis() as u64;
                    outln!(
                        "{head}: ACKed by all {} connected proxies ({}) in {ms} ms",
                        nodes.len(),
                        nodes.join(", ")
                    );
                    self.log.write(
                        "acked",
                        json!({"step": i + 1, "version": want.version, "nodes": nodes, "ms": ms}),
                    );
                    return Ok(Ok(()));
                }
                Ok(Delivery::Nacked { nacks }) => {
                    let nacks = nacks.into_iter().map(|n| (n.node, n.message)).collect();
                    return Ok(Err(Failure::Nacked(nacks)));
                }
                Ok(Delivery::Refused { problems }) => return Ok(Err(Failure::NotServed(problems))),
                // The file changed again: whose change, `unchanged` says.
                Ok(Delivery::Superseded { .. }) => continue,
                Ok(waiting) => waiting.message(&want),
                Err(e) => {
                    sleep(WATCH);
                    format!("cannot ask the fleet server: {e}")
                }
            };
            if said.elapsed() >= interval {
                outln!("{head}: hold not started, waiting for every proxy's ACK: {news}");
                said = Instant::now();
            }
        }
    }

    /// After a rollback written for a fleet server: whether every proxy
    /// has it, said (the rollback is written either way).
    pub(super) fn rollback_delivered(&mut self, server: &str) -> bool {
        let start = Instant::now();
        let answer = client::of_file(&self.plan.config)
            .map_err(|e| e.to_string())
            .and_then(|(resource, version)| {
                let want = Want {
                    resource,
                    version,
                    proxies: 1,
                };
                let verdict = client::wait_acked(server, &want, ROLLBACK_ACK_TIMEOUT)?;
                Ok((
                    verdict.message(&want),
                    matches!(verdict, Delivery::Acked { .. }),
                ))
            });
        let ms = start.elapsed().as_millis() as u64;
        let said = match &answer {
            Ok((message, true)) => format!("{message}, {ms} ms after the write"),
            Ok((message, false)) => format!("NOT every proxy has the rollback: {message}"),
            Err(e) => {
                format!("cannot ask the fleet server whether the proxies have the rollback: {e}")
            }
        };
        outln!("{said}");
        let acked = matches!(answer, Ok((_, true)));
        self.log.write(
            "rollback_acked",
            json!({"acked": acked, "said": said, "ms": ms}),
        );
        acked
    }
}
