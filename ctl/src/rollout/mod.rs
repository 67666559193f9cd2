//! `turnoutctl rollout PLAN.json`: drives one split's target through the
//! plan's steps while it is healthy, and rolls the split back the moment
//! it is not.
//!
//! Each step: write the weight (the same validated, atomic edit as
//! `set-weight`), let it settle for one interval (the proxies watching the
//! file apply it within milliseconds; the counts of that interval mix the
//! old weight and the new), then hold it, judging the target against the
//! stable cluster every `interval_s` over the hold so far (see
//! [`analysis`]). A failure applies `on_failure` at once; a hold that is
//! over advances if the target had `min_requests` responses in it, and
//! goes on, saying so, if not. A guard that tripped on any proxy always
//! rolls the split back: that proxy already has, and the fleet follows it.
//!
//! With a fleet server (`turnoutctl serve`, the plan's `server`), a step
//! settles until every connected proxy ACKed it instead (see [`acks`]).
//!
//! Nothing is kept but the config: where the split stands is read from it
//! (a restarted rollout carries on from the weight there), and it is read
//! again every [`machine::WATCH`]; if the split is not as the controller
//! left it, someone else changed it, and the controller stops (exit 4) and
//! says what changed.
//!
//! Every decision is the [`machine`]'s, made without I/O; this module is
//! the driver that carries its actions out: it sleeps, scrapes, reads and
//! edits the config, asks the fleet server, prints and logs.

pub use self::analysis::Side;
mod acks;
mod analysis;
mod machine;
mod metrics;
pub mod plan;
mod report;
mod split;

use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Instant;

use self::machine::{Action, Input, Machine, Reading, Request};
use self::metrics::{Scrape, Source};
use self::plan::RolloutPlan;
use self::report::Log;
use crate::change::Change;
use crate::edit;
use crate::fail::Fail;
use crate::input::{self, Input as Config};
use crate::serve::client::Endpoint;

pub struct Options {
    pub log: Option<PathBuf>,
    pub dry_run: bool,
    /// This client's TLS files, for a plan's `server` that speaks mutual TLS.
    pub tls: Option<crate::tls::Files>,
}

pub fn run(plan_path: &Path, options: &Options) -> Result<(), Fail> {
    let plan = plan::read(plan_path)?;
    let server = match (&plan.server, &options.tls) {
        (Some(address), tls) => Some(Endpoint::new(address, tls.clone())?),
        (None, Some(_)) => {
            return Err(Fail::Usage(
                "--tls-cert, --tls-key, --ca: the plan names no server to ask".into(),
            ))
        }
        (None, None) => None,
    };
    let mut log = Log::open(options.log.as_deref())?;
    let stand = split::read(&input::read(&plan.config)?, &plan.split, &plan.target)?;
    let started = Instant::now();
    let mut driver = Driver {
        source: Source::new(&plan, &stand.stable, stand.shadow.as_deref()),
        last: None,
        config: None,
        server,
        plan: plan.clone(),
    };
    let (mut machine, mut actions) = Machine::start(plan, options.dry_run, stand);
    loop {
        let mut answer = None;
        for action in actions {
            match action {
                Action::Say(line) => outln!("{line}"),
                Action::Log(event, fields) => log.write(event, fields),
                Action::Sleep(d) => sleep(d),
                Action::Finish(outcome) => return outcome.into_result(),
                Action::Ask(request) => answer = Some(driver.perform(request)),
            }
        }
        let Some(input) = answer else {
            // The machine always ends an answer with a request or the end.
            return Err(Fail::Usage(
                "internal error: the rollout asked for nothing".into(),
            ));
        };
        actions = machine.on(started.elapsed(), input);
    }
}

/// The I/O the machine asks for.
struct Driver {
    plan: RolloutPlan,
    source: Source,
    /// The last good scrape, which the next one is counted from.
    last: Option<Scrape>,
    /// The config as last read: a step's weight is written into the
    /// version the machine just judged unchanged.
    config: Option<Config>,
    /// The plan's fleet server, with this client's TLS if it speaks it.
    server: Option<Endpoint>,
}

impl Driver {
    /// Carries out a request; its result.
    fn perform(&mut self, request: Request) -> Input {
        match request {
            Request::ReadConfig => Input::Config(self.read_config().map_err(|e| e.to_string())),
            Request::Scrape => Input::Scraped(self.scrape()),
            Request::SetWeight(weight) => Input::WeightSet(self.set_weight(weight)),
            Request::RollBack => Input::RolledBack(self.roll_back()),
            Request::AskAcks => Input::Acks(self.ask_acks()),
            Request::AskRollbackAcks => Input::RollbackAcks(self.ask_rollback_acks()),
        }
    }

    fn read_config(&mut self) -> Result<split::Stand, Fail> {
        let config = input::read(&self.plan.config)?;
        let stand = split::read(&config, &self.plan.split, &self.plan.target)?;
        self.config = Some(config);
        Ok(stand)
    }

    /// The metrics now, counted from the last good scrape.
    fn scrape(&mut self) -> Result<Reading, String> {
        let scrape = self.source.scrape()?;
        let window = match &self.last {
            Some(last) => scrape.since(last, self.plan.analysis.errors),
            // The first good read: the counts start here.
            None => Default::default(),
        };
        let reading = Reading {
            window,
            tripped: scrape.tripped.clone(),
            proxies: scrape.proxies(),
            unix_s: crate::now(),
        };
        self.last = Some(scrape);
        Ok(reading)
    }

    /// Writes the weight into the config as last read, and reads the
    /// split back.
    fn set_weight(&mut self, weight: u16) -> Result<(Option<String>, split::Stand), Fail> {
        let config = match self.config.take() {
            Some(config) => config,
            None => input::read(&self.plan.config)?,
        };
        let change = Change::Weight {
            split: self.plan.split.clone(),
            cluster: self.plan.target.clone(),
            weight: turnout::fields::percent_text(weight.into()),
        };
        let said = edit::apply(&config, &change, crate::now())?;
        let stand = self.read_config()?;
        Ok((said, stand))
    }

    fn roll_back(&mut self) -> Result<Option<String>, String> {
        let change = Change::Rollback {
            split: self.plan.split.clone(),
            on: true,
        };
        input::read(&self.plan.config)
            .and_then(|config| edit::apply(&config, &change, crate::now()))
            .map_err(|e| e.to_string())
    }
}
