//! Asking the fleet server, when `turnoutctl serve` serves the config (the
//! plan's `server`), whether every proxy ACKed the file as it is now: for
//! one slice while a step settles (the machine asks again, watching the
//! config in between), and for a while after a rollback. Versions are the
//! server's (`serve::client::of_file`): the file's content's hash, so the
//! controller knows what to wait for without asking (a native server
//! waits for the version it serves that hash as).

use std::time::Duration;

use super::machine::{Acks, Taken};
use super::Driver;
use crate::fail::Fail;
use crate::http::Failure;
use crate::serve::client;
use crate::serve::wait::{Delivery, Want};

/// How long one ask of the fleet server's `/wait` may last: the config is
/// checked between two.
const ACK_SLICE: Duration = Duration::from_secs(1);

/// How long the rollback's ACKs are waited for before saying which proxies
/// do not have it yet.
const ROLLBACK_ACK_TIMEOUT: Duration = Duration::from_secs(30);

impl Driver {
    /// The config as it is now: the version every connected proxy (one at
    /// least) must ACK.
    fn want(&self) -> Result<Want, Fail> {
        let (resource, version) = client::of_file(&self.plan.config)?;
        Ok(Want {
            resource,
            version,
            proxies: 1,
        })
    }

    fn server(&self) -> Result<&client::Endpoint, String> {
        self.server
            .as_ref()
            .ok_or_else(|| "the plan names no fleet server".to_string())
    }

    /// One slice of waiting for every proxy's ACK of the config.
    pub(super) fn ask_acks(&mut self) -> Result<Acks, Fail> {
        let want = self.want()?;
        let server = match self.server() {
            Ok(server) => server,
            Err(e) => return Ok(Acks::Unreachable(e)),
        };
        let answer = match client::wait_acked(server, &want, ACK_SLICE) {
            Ok(answer) => answer,
            // The server refused this client's certificate (or does not
            // hold one it trusts): asking again changes nothing, and a
            // rollout that waited on would wait for ever. It ends, exit 1.
            Err(Failure::Refused(e)) => return Err(Fail::Refused(e)),
            Err(e) => return Ok(Acks::Unreachable(e.to_string())),
        };
        Ok(match answer.delivery {
            Delivery::Acked { nodes } => Acks::Acked {
                version: answer.version,
                nodes,
            },
            Delivery::Nacked { nacks } => {
                Acks::Nacked(nacks.into_iter().map(|n| (n.node, n.message)).collect())
            }
            Delivery::Refused { problems } => Acks::NotServed(problems),
            Delivery::Superseded { .. } => Acks::Superseded,
            Delivery::Waiting { .. } => Acks::Waiting(answer.message),
        })
    }

    /// Whether every proxy took the rollback, in the server's words.
    pub(super) fn ask_rollback_acks(&mut self) -> Result<Taken, String> {
        let want = self.want().map_err(|e| e.to_string())?;
        let answer = client::wait_acked(self.server()?, &want, ROLLBACK_ACK_TIMEOUT)
            .map_err(|e| e.to_string())?;
        Ok(Taken {
            acked: matches!(answer.delivery, Delivery::Acked { .. }),
            message: answer.message,
        })
    }
}
