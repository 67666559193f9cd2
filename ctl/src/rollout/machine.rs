//! The rollout controller's decisions, without I/O. A [`Machine`] is told
//! what happened ([`Input`]: the split as read from the config, a scrape,
//! the result of a write, the fleet server's answer) and when, and answers
//! with what to do ([`Action`]: read the config, scrape, write a weight or
//! the rollback, ask the server, sleep, say a line, log a record, finish
//! with an exit outcome). The driver (`mod.rs`, `acks.rs`) does the I/O and
//! feeds each answer back; every decision is made here, so each one is
//! unit-tested on the host (`machine/tests.rs`), as `serve/state.rs` keeps
//! the xDS server's bookkeeping free of I/O.
//!
//! The protocol: each answer is lines, log records and sleeps to carry out
//! in order, then one [`Request`], whose result is the next input, or
//! [`Action::Finish`]. Time is the time since the rollout started, given
//! with every input; the machine never reads a clock.
//!
//! What a step is (see `mod.rs` for the why): the config is checked and the
//! weight written; it settles for one interval, or until every proxy ACKed
//! it when a fleet server serves the config; then it is held, judged every
//! interval over the hold so far, until it passes or fails. The config is
//! read again every [`WATCH`] while waiting: a split that is no longer as
//! the controller left it stops the rollout (exit 4).

mod end;
mod step;
#[cfg(test)]
mod tests;

use std::mem::take;
use std::time::Duration;

use serde_json::Value;

use super::analysis::{Judge, Sides, Tripped};
use super::plan::RolloutPlan;
use super::report::At;
use super::split::Stand;
use crate::fail::Fail;

/// How often the config is re-read for a change someone else made.
pub const WATCH: Duration = Duration::from_millis(200);

/// What happened, answering the machine's last request.
#[derive(Debug)]
pub enum Input {
    /// The config as read again (answers [`Request::ReadConfig`]): the split,
    /// or why the config no longer reads.
    Config(Result<Stand, String>),
    /// The metrics (answers [`Request::Scrape`]), or why they cannot be read.
    Scraped(Result<Reading, String>),
    /// The step's weight written (answers [`Request::SetWeight`]): what the
    /// edit said (`None`: the config said so already) and the split read
    /// back; or the failure, which ends the run as it is.
    WeightSet(Result<(Option<String>, Stand), Fail>),
    /// The rollback written (answers [`Request::RollBack`]): what the edit
    /// said (`None`: it was on already), or why it could not be.
    RolledBack(Result<Option<String>, String>),
    /// The fleet server's answer about the config as it is now (answers
    /// [`Request::AskAcks`]); `Err` when the file is not one it serves.
    Acks(Result<Acks, Fail>),
    /// Whether every proxy took the rollback (answers
    /// [`Request::AskRollbackAcks`]), or why the server cannot be asked.
    RollbackAcks(Result<Taken, String>),
}

/// One scrape, as far as the judgement goes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reading {
    /// The counts since the last good scrape (none at the first).
    pub window: Sides,
    /// The proxies whose guard tripped the split, and whose shadow tripped.
    pub tripped: Tripped,
    /// How many proxies report the split's series.
    pub proxies: usize,
    /// The wall-clock second of the scrape: the sequential test opens a
    /// start point every minute of the wall clock.
    pub unix_s: i64,
}

/// The fleet server's answer for one ask.
#[derive(Clone, Debug, PartialEq)]
pub enum Acks {
    /// Every connected proxy (one at least) ACKed `version`.
    Acked { version: String, nodes: Vec<String> },
    /// Not yet, in the server's words.
    Waiting(String),
    /// The file changed again since it was asked about.
    Superseded,
    /// Proxies refused it: (node, Envoy's message).
    Nacked(Vec<(String, String)>),
    /// The server refused the file: it is not served.
    NotServed(Vec<String>),
    /// The server cannot be asked.
    Unreachable(String),
}

/// The fleet server's answer about the rollback, in its words.
#[derive(Clone, Debug, PartialEq)]
pub struct Taken {
    pub acked: bool,
    pub message: String,
}

/// What to do.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// A line on stdout.
    Say(String),
    /// A record of the decision log: the event and its fields.
    Log(&'static str, Value),
    Sleep(Duration),
    /// I/O whose result is the next input.
    Ask(Request),
    Finish(Outcome),
}

/// I/O whose result is the next [`Input`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Read the config: [`Input::Config`].
    ReadConfig,
    /// Read the metrics: [`Input::Scraped`].
    Scrape,
    /// Write the target's weight (basis points) into the config as last
    /// read (the read judged unchanged), and read the split back:
    /// [`Input::WeightSet`].
    SetWeight(u16),
    /// Write `"rollback": true`: [`Input::RolledBack`].
    RollBack,
    /// Ask the fleet server, for one slice, whether every proxy ACKed the
    /// config as it is now: [`Input::Acks`].
    AskAcks,
    /// Ask the fleet server, waiting a while, whether every proxy took the
    /// rollback: [`Input::RollbackAcks`].
    AskRollbackAcks,
}

/// How the rollout ends.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// The last step passed: exit 0.
    Done,
    /// Rolled back or paused on a failure, said: exit 3.
    Failed,
    /// Someone else changed the split, said: exit 4.
    Stopped,
    /// Nothing to do or nothing written at the start, or the rollback
    /// could not be written: exit 1, with why.
    Refused(String),
    /// A read or a write failed as in any command: its own code and words.
    Error(Fail),
}

impl Outcome {
    /// What `turnoutctl` exits with.
    pub fn into_result(self) -> Result<(), Fail> {
        match self {
            Outcome::Done => Ok(()),
            Outcome::Failed => Err(Fail::Failed(String::new())),
            Outcome::Stopped => Err(Fail::Stopped(String::new())),
            Outcome::Refused(why) => Err(Fail::Refused(why)),
            Outcome::Error(fail) => Err(fail),
        }
    }
}

/// What the machine waits for.
#[derive(Clone, Debug)]
enum Phase {
    /// The first scrape, which the counts start from; then step `first`.
    Counting {
        first: usize,
    },
    /// The config read before the step's weight is written.
    Checking,
    /// The step's weight being written.
    Setting,
    /// Every proxy's ACK of the step: asked since, and the last waiting
    /// line said at.
    Acking {
        since: Duration,
        said: Duration,
    },
    /// Watching the config until `until`, then scraping for `then`.
    Watching {
        until: Duration,
        then: Tick,
    },
    Scraping {
        then: Tick,
    },
    /// The rollback being written, for `why`.
    RollingBack {
        why: String,
    },
    /// The rollback's ACKs, asked at `since`; `said` is the edit's words.
    RollbackAcking {
        why: String,
        said: String,
        since: Duration,
    },
    Over,
}

#[derive(Clone, Copy, Debug)]
enum Tick {
    /// The interval in which the proxies settle on the step, ending at
    /// `end`, which the hold's intervals are counted from.
    Settle { end: Duration },
    /// An interval of the hold.
    Hold,
}

/// The step being held.
#[derive(Debug, Default)]
struct Hold {
    start: Duration,
    /// The end of the interval being waited for.
    next: Duration,
    /// The step's counts so far.
    window: Sides,
}

/// One rollout's decisions.
pub struct Machine {
    plan: RolloutPlan,
    dry_run: bool,
    judge: Judge,
    /// The split as the controller last wrote or read it.
    expected: Stand,
    /// The target's weight: as written, or in a dry run as it would be.
    weight: u16,
    /// The step being set or held.
    step: usize,
    hold: Hold,
    /// Every count since the start, for the summary.
    totals: Sides,
    phase: Phase,
    out: Vec<Action>,
}

impl Machine {
    /// A rollout of `plan` from the split as read (`stand`), and what to do
    /// first: refuse while the split is rolled back or past the last step,
    /// else take the first counts.
    pub fn start(plan: RolloutPlan, dry_run: bool, stand: Stand) -> (Machine, Vec<Action>) {
        let mut machine = Machine {
            judge: Judge::new(plan.analysis),
            weight: stand.weight,
            expected: stand,
            plan,
            dry_run,
            step: 0,
            hold: Hold::default(),
            totals: Sides::default(),
            phase: Phase::Over,
            out: Vec::new(),
        };
        machine.begin();
        let first = take(&mut machine.out);
        (machine, first)
    }

    /// What to do after `input`, at `now` (since the start).
    pub fn on(&mut self, now: Duration, input: Input) -> Vec<Action> {
        match input {
            Input::Config(read) => self.config(now, read),
            Input::Scraped(reading) => self.scraped(now, reading),
            Input::WeightSet(written) => self.weight_set(now, written),
            Input::RolledBack(written) => self.rolled_back(now, written),
            Input::Acks(answer) => self.acks(now, answer),
            Input::RollbackAcks(answer) => self.rollback_acks(now, answer),
        }
        take(&mut self.out)
    }

    fn at(&self, i: usize) -> At {
        At {
            step: i,
            steps: self.plan.steps.len(),
            target: self.plan.target.clone(),
            weight: self.plan.steps[i].weight,
            shadowed: self.expected.shadow.is_some(),
        }
    }

    /// Whether step `i` is shadow-only: every user on stable, the copies
    /// judged.
    fn shadow_only(&self, i: usize) -> bool {
        self.plan.steps[i].weight == 0
    }

    /// `step 2/5 fastapi 30 %`, of the step being set or held.
    fn head(&self) -> String {
        self.at(self.step).head()
    }

    fn ask(&mut self, request: Request) {
        self.out.push(Action::Ask(request));
    }

    fn say(&mut self, line: String) {
        self.out.push(Action::Say(line));
    }

    fn log(&mut self, event: &'static str, fields: Value) {
        self.out.push(Action::Log(event, fields));
    }

    fn finish(&mut self, outcome: Outcome) {
        self.phase = Phase::Over;
        self.out.push(Action::Finish(outcome));
    }

    /// An input the last request did not ask for: the driver's bug, which
    /// ends the run rather than guess.
    fn unexpected(&mut self, what: &str) {
        let why = format!(
            "internal error: the rollout got {what} while {:?}",
            self.phase
        );
        self.finish(Outcome::Error(Fail::Usage(why)));
    }
}
