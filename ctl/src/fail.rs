//! How a command ends when it does not succeed, and the exit code each way
//! gets: scripts and CI jobs tell "the config is wrong" (1) from "the
//! command was wrong" (2), and a rollout that failed (3) from one that a
//! person stopped (4), without reading the text.

use std::fmt;

#[derive(Debug, PartialEq, Eq)]
pub enum Fail {
    /// Exit 1: the input is invalid or the change is refused. The message
    /// (possibly empty, when the command already printed its report) says why.
    Refused(String),
    /// Exit 2: the command cannot be carried out as given (a file that
    /// cannot be read, an argument that names nothing).
    Usage(String),
    /// Exit 3: a rollout's target failed its analysis; rolled back or paused.
    Failed(String),
    /// Exit 4: a rollout stopped because someone else changed its split.
    Stopped(String),
}

impl Fail {
    pub fn code(&self) -> u8 {
        match self {
            Fail::Refused(_) => 1,
            Fail::Usage(_) => 2,
            Fail::Failed(_) => 3,
            Fail::Stopped(_) => 4,
        }
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fail::Refused(m) | Fail::Usage(m) | Fail::Failed(m) | Fail::Stopped(m) => {
                f.write_str(m)
            }
        }
    }
}
