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
//! again every [`WATCH`]; if the split is not as the controller left it,
//! someone else changed it, and the controller stops (exit 4) and says
//! what changed.

mod acks;
mod analysis;
mod metrics;
pub mod plan;
mod report;
mod split;

use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::json;
use turnout::fields::percent_text;

use self::analysis::{Failure, Judge, StepVerdict, Window};
use self::metrics::{Scrape, Source};
use self::plan::{Metrics, OnFailure, Plan};
use self::report::{At, Log};
use self::split::Stand;
use crate::change::Change;
use crate::fail::Fail;
use crate::input::{self, Input};
use crate::{edit, show};

/// How often the config is re-read for a change someone else made.
const WATCH: Duration = Duration::from_millis(200);

pub struct Options {
    pub log: Option<PathBuf>,
    pub dry_run: bool,
}

pub fn run(plan_path: &Path, options: &Options) -> Result<(), Fail> {
    let plan = plan::read(plan_path)?;
    let log = Log::open(options.log.as_deref())?;
    let stand = split::read(&input::read(&plan.config)?, &plan.split, &plan.target)?;
    if stand.rollback {
        return Err(Fail::Refused(format!(
            "{}: rollback is on for {}: find the cause, `turnoutctl resume {} {}`, then run the rollout again (it carries on from {})",
            plan.config.display(),
            plan.split,
            plan.config.display(),
            plan.split,
            show::pct(stand.weight.into())
        )));
    }
    let Some(first) = plan.steps.iter().position(|s| s.weight >= stand.weight) else {
        return Err(Fail::Refused(format!(
            "{}: {} is at {}, above the plan's last step: nothing to do",
            plan.split,
            plan.target,
            show::pct(stand.weight.into())
        )));
    };
    let mut rollout = Rollout {
        source: Source::new(&plan, &stand.stable),
        judge: Judge::new(plan.analysis),
        dry_run: options.dry_run,
        weight: stand.weight,
        step: first,
        expected: stand,
        last: None,
        totals: Window::default(),
        started: Instant::now(),
        log,
        plan,
    };
    rollout.start(first)?;
    for i in first..rollout.plan.steps.len() {
        rollout.step(i)?;
    }
    rollout.done();
    Ok(())
}

struct Rollout {
    plan: Plan,
    source: Source,
    judge: Judge,
    dry_run: bool,
    /// The split as the controller last wrote or read it.
    expected: Stand,
    /// The target's weight: as written, or in a dry run as it would be.
    weight: u16,
    /// The step being set or held.
    step: usize,
    /// The last good scrape, which the next one is counted from.
    last: Option<Scrape>,
    /// Every count since the start, for the summary.
    totals: Window,
    started: Instant,
    log: Log,
}

/// One interval's reading: its counts and the tripped proxies, or why
/// there is none.
type Reading = Result<(Window, Vec<String>), String>;

impl Rollout {
    fn at(&self, i: usize) -> At {
        At {
            step: i,
            steps: self.plan.steps.len(),
            target: self.plan.target.clone(),
            weight: self.plan.steps[i].weight,
        }
    }

    /// Says what is about to happen and takes the first counts; metrics
    /// that cannot be read at all refuse the start (nothing written yet).
    fn start(&mut self, first: usize) -> Result<(), Fail> {
        // The counts are taken from here. Later reads that fail are said
        // and skipped; this one must work, or nothing would be judged.
        let scrape = self.source.scrape().map_err(|e| {
            Fail::Refused(format!("the metrics cannot be read, nothing written: {e}"))
        })?;
        let p = &self.plan;
        let steps: Vec<String> = p.steps.iter().map(|s| show::pct(s.weight.into())).collect();
        let source = match &p.metrics {
            Metrics::Prometheus(url) => format!("Prometheus {url}"),
            Metrics::EnvoyAdmin(urls) => format!("{} Envoy admin endpoint(s)", urls.len()),
        };
        outln!(
            "rollout {}: {} through {} (stable {}), judged every {} on {source}{}",
            p.split,
            p.target,
            steps.join(" → "),
            self.expected.stable,
            report::duration(p.interval_s),
            if self.dry_run {
                "; dry run: nothing is written"
            } else {
                ""
            }
        );
        if first > 0 || self.weight > 0 {
            outln!(
                "{} is at {}: carrying on from step {}/{}",
                p.target,
                show::pct(self.weight.into()),
                first + 1,
                p.steps.len()
            );
        }
        self.log.write(
            "start",
            json!({"split": p.split, "target": p.target, "weight": f64::from(self.weight) / 100.0,
                   "first_step": first + 1, "steps": p.steps.len(), "dry_run": self.dry_run}),
        );
        if scrape.proxies() == 0 {
            outln!(
                "warning: no proxy reports the series of split {} for {} and {} yet (check the names, and that the proxies' stats_tags are envoy/stats_tags.yaml): no data, so steps will hold",
                p.split, self.expected.stable, p.target
            );
        }
        self.last = Some(scrape);
        Ok(())
    }

    /// Sets and holds step `i`: `Ok` when it passed.
    fn step(&mut self, i: usize) -> Result<(), Fail> {
        self.step = i;
        if self.weight != self.plan.steps[i].weight {
            self.set_weight(i)?;
        } else {
            outln!("{}: already there; holding it", self.at(i).head());
        }
        let next = self.settle(i)?;
        self.hold(i, next)
    }

    /// Until the proxies have the weight: every connected proxy's ACK
    /// when a fleet server serves the config, else one interval (the
    /// proxies watching the file apply it within milliseconds). The counts
    /// until then mix two weights, so only the sequential test (whose
    /// batches may hold any weights) is judged. Returns when it ended.
    fn settle(&mut self, i: usize) -> Result<Instant, Fail> {
        let end = match self.plan.server.clone() {
            Some(server) => {
                if let Err(failure) = self.delivered(i, &server)? {
                    return Err(self.fail(i, failure));
                }
                Instant::now()
            }
            None => Instant::now() + Duration::from_secs(self.plan.interval_s),
        };
        if self.tick(end)?.is_ok() {
            if let Some(failure) = self.judge.failure(&Window::default(), &[]) {
                return Err(self.fail(i, failure));
            }
        }
        Ok(end)
    }

    /// Holds step `i`, judging every interval from `next` on, until it
    /// passes (`Ok`) or fails.
    fn hold(&mut self, i: usize, mut next: Instant) -> Result<(), Fail> {
        let interval = Duration::from_secs(self.plan.interval_s);
        let start = Instant::now();
        let mut hold = Window::default();
        loop {
            next = (next + interval).max(Instant::now());
            let reading = self.tick(next)?;
            let held_s = start.elapsed().as_secs_f64().round() as u64;
            match reading {
                Ok((delta, tripped)) => {
                    hold.add(&delta);
                    match self.judged(i, held_s, &hold, &tripped) {
                        StepVerdict::Pass => return Ok(()),
                        StepVerdict::Fail(failure) => return Err(self.fail(i, failure)),
                        StepVerdict::Ok
                        | StepVerdict::LowTraffic { .. }
                        | StepVerdict::Unsettled(_) => {}
                    }
                }
                Err(e) => {
                    let at = self.at(i);
                    let hold_s = self.plan.steps[i].hold_s;
                    let unjudged = "metrics unavailable, not judged";
                    outln!(
                        "{}: {e}",
                        report::interval(&at, held_s, hold_s, &hold, unjudged)
                    );
                    self.log
                        .write("no_metrics", json!({"step": i + 1, "error": e}));
                }
            }
        }
    }

    /// The verdict of an interval of the hold, said and logged.
    fn judged(&mut self, i: usize, held_s: u64, hold: &Window, tripped: &[String]) -> StepVerdict {
        let hold_s = self.plan.steps[i].hold_s;
        let verdict = self.judge.verdict(hold, tripped, held_s >= hold_s);
        let evidence = self.judge.evidence();
        let why = report::verdict(&verdict, evidence);
        let at = self.at(i);
        outln!("{}", report::interval(&at, held_s, hold_s, hold, &why));
        self.log
            .interval(&at, held_s, hold_s, hold, tripped, evidence, &verdict, &why);
        verdict
    }

    /// Waits until `deadline` (watching the config), then reads the
    /// metrics and feeds the interval to the sequential test.
    fn tick(&mut self, deadline: Instant) -> Result<Reading, Fail> {
        self.wait_until(deadline)?;
        let scrape = match self.source.scrape() {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        let delta = match &self.last {
            Some(last) => scrape.since(last, self.plan.analysis.errors),
            // The first good read: the counts start here.
            None => Window::default(),
        };
        self.judge.fold(crate::now(), &delta);
        self.totals.add(&delta);
        let tripped = scrape.tripped.clone();
        self.last = Some(scrape);
        Ok(Ok((delta, tripped)))
    }

    fn wait_until(&mut self, deadline: Instant) -> Result<(), Fail> {
        loop {
            self.unchanged()?;
            let now = Instant::now();
            if now >= deadline {
                return Ok(());
            }
            sleep(WATCH.min(deadline - now));
        }
    }

    /// The config, read now, if the split is as the controller left it;
    /// else the stop, said.
    fn unchanged(&mut self) -> Result<Input, Fail> {
        let read = input::read(&self.plan.config).and_then(|input| {
            Ok((
                split::read(&input, &self.plan.split, &self.plan.target)?,
                input,
            ))
        });
        match read {
            Ok((now, input)) => {
                let changes = split::changes(&self.expected.json, &now.json);
                if changes.is_empty() {
                    Ok(input)
                } else {
                    Err(self.stop(&changes.join("; ")))
                }
            }
            Err(e) => Err(self.stop(&format!("the config no longer reads as before: {e}"))),
        }
    }

    fn stop(&mut self, what: &str) -> Fail {
        let p = &self.plan;
        outln!(
            "rollout {}: STOPPED during step {}/{} ({} at {}): someone else changed the split: {what}. \
             The controller does not fight a person: see what they did; to go on, run the rollout again (it carries on from the weight in the config).",
            p.split,
            self.step + 1,
            p.steps.len(),
            p.target,
            show::pct(self.weight.into())
        );
        self.log.write("stop", json!({"why": what}));
        Fail::Stopped(String::new())
    }

    fn set_weight(&mut self, i: usize) -> Result<(), Fail> {
        let weight = self.plan.steps[i].weight;
        let input = self.unchanged()?;
        let from = show::pct(self.weight.into());
        self.weight = weight;
        let head = self.at(i).head();
        if self.dry_run {
            outln!(
                "{head}: dry run: would set {} {from} → {}",
                self.plan.target,
                show::pct(weight.into())
            );
            return Ok(());
        }
        let change = Change::Weight {
            split: self.plan.split.clone(),
            cluster: self.plan.target.clone(),
            weight: percent_text(weight.into()),
        };
        let said = edit::apply(&input, &change, crate::now())?;
        self.expected = split::read(
            &input::read(&self.plan.config)?,
            &self.plan.split,
            &self.plan.target,
        )?;
        let said = said.unwrap_or_else(|| "unchanged".into());
        outln!("{head}: set: {said}");
        self.log.write(
            "set",
            json!({"step": i + 1, "weight": f64::from(weight) / 100.0, "said": said}),
        );
        Ok(())
    }

    /// Applies `on_failure` (a guard trip always rolls back) and says so.
    fn fail(&mut self, i: usize, failure: Failure) -> Fail {
        let why = report::failure(&failure, self.judge.evidence());
        let head = self.at(i).head();
        let split = self.plan.split.clone();
        let config = self.plan.config.display().to_string();
        let rollback = self.plan.on_failure == OnFailure::Rollback
            || matches!(failure, Failure::GuardTripped(_));
        if !rollback {
            outln!(
                "rollout {split}: PAUSED at {head}: {why}. The weight stays; to roll back: turnoutctl rollback {config} {split}"
            );
            self.log.write("pause", json!({"step": i + 1, "why": why}));
            return Fail::Failed(String::new());
        }
        if self.dry_run {
            outln!(
                "rollout {split}: WOULD ROLL BACK at {head}: {why} (dry run: would write \"rollback\": true)"
            );
            return Fail::Failed(String::new());
        }
        let change = Change::Rollback {
            split: split.clone(),
            on: true,
        };
        let written = input::read(&self.plan.config)
            .and_then(|input| edit::apply(&input, &change, crate::now()));
        let said = match written {
            Ok(said) => said.unwrap_or_else(|| "rollback was already on".into()),
            Err(e) => {
                let error = e.to_string();
                self.log.write(
                    "rollback_failed",
                    json!({"step": i + 1, "why": why, "error": error}),
                );
                return Fail::Refused(format!(
                    "{head}: {why}; the rollback could NOT be written: {error}\nroll back by hand: turnoutctl rollback {config} {split}"
                ));
            }
        };
        outln!("{said}");
        let everywhere = match self.plan.server.clone() {
            Some(server) => self.rollback_delivered(&server),
            None => true,
        };
        let whom = if everywhere {
            format!("Every request of {split} goes to {}", self.expected.stable)
        } else {
            "The rollback is written, but NOT every proxy has it (above): see to those".into()
        };
        outln!(
            "rollout {split}: ROLLED BACK at {head}: {why}. {whom}; find the cause, then `turnoutctl resume {config} {split}` and run the rollout again."
        );
        self.log
            .write("rollback", json!({"step": i + 1, "why": why, "said": said}));
        Fail::Failed(String::new())
    }

    fn done(&mut self) {
        let t = &self.totals;
        outln!(
            "rollout {}: DONE{}: {} reached {} in {} · {} target req · errors {} (stable {})",
            self.plan.split,
            if self.dry_run {
                " (dry run, nothing written)"
            } else {
                ""
            },
            self.plan.target,
            show::pct(self.weight.into()),
            report::duration(self.started.elapsed().as_secs()),
            report::count(t.target.responses),
            report::rate(&t.target),
            report::rate(&t.stable)
        );
        self.log.write(
            "done",
            json!({"weight": f64::from(self.weight) / 100.0, "target_responses": t.target.responses,
                   "seconds": self.started.elapsed().as_secs()}),
        );
    }
}
