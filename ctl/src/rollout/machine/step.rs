//! A step's flow: the start, the check and the write, the settle (one
//! interval, or every proxy's ACK), and the hold's intervals with their
//! verdicts.

use std::time::Duration;

use serde_json::json;

use super::{Acks, Action, Hold, Machine, Outcome, Phase, Reading, Request, Tick, WATCH};
use crate::fail::Fail;
use crate::rollout::analysis::{Failure, Sides, StepVerdict, Tripped};
use crate::rollout::plan::Metrics;
use crate::rollout::report;
use crate::rollout::split::{self, Stand};
use crate::show;

impl Machine {
    /// Refuses to start while the split is rolled back (an operator's
    /// call to undo) or past the plan's last step; else asks for the first
    /// counts. The first step is the lowest at or above the weight in the
    /// config: a restarted rollout carries on from there.
    pub(super) fn begin(&mut self) {
        let (p, stand) = (&self.plan, &self.expected);
        let weight = show::pct(stand.weight.into());
        if stand.rollback {
            let config = p.config.display();
            return self.finish(Outcome::Refused(format!(
                "{config}: rollback is on for {}: find the cause, `turnoutctl resume {config} {}`, then run the rollout again (it carries on from {weight})",
                p.split, p.split
            )));
        }
        let Some(first) = p.steps.iter().position(|s| s.weight >= stand.weight) else {
            return self.finish(Outcome::Refused(format!(
                "{}: {} is at {weight}, above the plan's last step: nothing to do",
                p.split, p.target
            )));
        };
        if let Some(why) = self.shadow_refused() {
            return self.finish(Outcome::Refused(why));
        }
        self.step = first;
        self.phase = Phase::Counting { first };
        self.ask(Request::Scrape);
    }

    /// What in the plan judges a shadow: its gates and a shadow-only step.
    /// Refused (why) on a split with no shadow, since they would judge
    /// nothing; else they set the judge's gates.
    fn shadow_refused(&mut self) -> Option<String> {
        let p = &self.plan;
        let mut uses: Vec<&str> = Vec::new();
        if p.steps.iter().any(|s| s.weight == 0) {
            uses.push("a shadow-only step (weight 0)");
        }
        if p.gates.max_mismatch_rate.is_some() {
            uses.push("analysis.max_mismatch_rate");
        }
        if p.gates.max_shadow_error_rate.is_some() {
            uses.push("analysis.max_shadow_error_rate");
        }
        if uses.is_empty() {
            return None;
        }
        if self.expected.shadow.is_none() {
            return Some(format!(
                "{}: split {} has no shadow, so nothing is copied for {} to judge: add the split's \"shadow\" to the config, or take {} out of the plan; nothing written",
                p.config.display(),
                p.split,
                uses.join(" and "),
                if uses.len() == 1 { "it" } else { "them" },
            ));
        }
        self.judge.shadow = Some(p.gates);
        None
    }

    /// The first scrape: metrics that cannot be read refuse the start
    /// (nothing is written yet; later reads that fail are said and
    /// skipped). Says what is about to happen, and sets the first step.
    fn counted(&mut self, now: Duration, first: usize, reading: Result<Reading, String>) {
        let reading = match reading {
            Ok(r) => r,
            Err(e) => {
                let why = format!("the metrics cannot be read, nothing written: {e}");
                return self.finish(Outcome::Refused(why));
            }
        };
        let p = &self.plan;
        let steps: Vec<String> = p.steps.iter().map(|s| show::pct(s.weight.into())).collect();
        let source = match &p.metrics {
            Metrics::Prometheus(url) => format!("Prometheus {url}"),
            Metrics::EnvoyAdmin(urls) => format!("{} Envoy admin endpoint(s)", urls.len()),
        };
        let dry = if self.dry_run {
            "; dry run: nothing is written"
        } else {
            ""
        };
        let mut lines = vec![format!(
            "rollout {}: {} through {} (stable {}), judged every {} on {source}{dry}",
            p.split,
            p.target,
            steps.join(" → "),
            self.expected.stable,
            report::duration(p.interval_s),
        )];
        if first > 0 || self.weight > 0 {
            lines.push(format!(
                "{} is at {}: carrying on from step {}/{}",
                p.target,
                show::pct(self.weight.into()),
                first + 1,
                p.steps.len()
            ));
        }
        let start = json!({"split": p.split, "target": p.target,
            "weight": f64::from(self.weight) / 100.0, "first_step": first + 1,
            "steps": p.steps.len(), "dry_run": self.dry_run});
        let warning = (reading.proxies == 0).then(|| format!(
            "warning: no proxy reports the series of split {} for {} and {} yet (check the names, and that the proxies' stats_tags are envoy/stats_tags.yaml): no data, so steps will hold",
            p.split, self.expected.stable, p.target
        ));
        if let (Some(gates), Some(shadow)) = (self.judge.shadow, &self.expected.shadow) {
            let limit = |name: &str, l: Option<f64>| {
                l.map(|l| format!("{name} {} %", report::limit_pct(l)))
            };
            let limits: Vec<String> = [
                limit("max_mismatch_rate", gates.max_mismatch_rate),
                limit("max_shadow_error_rate", gates.max_shadow_error_rate),
            ]
            .into_iter()
            .flatten()
            .collect();
            let limits = match limits.is_empty() {
                true => "the shadow's own trip alone (no gate set)".to_string(),
                false => limits.join(", "),
            };
            lines.push(format!(
                "the copies to {shadow} are judged by {limits}, with at least {} compared to pass a shadow-only step",
                p.analysis.min_requests
            ));
        }
        lines.into_iter().for_each(|line| self.say(line));
        self.log("start", start);
        if let Some(warning) = warning {
            self.say(warning);
        }
        self.set(first, now);
    }

    /// Step `i`: its weight written (after a look at the config), or
    /// held as it is when the config has it already.
    fn set(&mut self, i: usize, now: Duration) {
        self.step = i;
        if self.weight != self.plan.steps[i].weight {
            self.phase = Phase::Checking;
            self.ask(Request::ReadConfig);
        } else {
            self.say(format!("{}: already there; holding it", self.head()));
            self.settle(now);
        }
    }

    /// The config read again: unchanged, the machine goes on with what it
    /// was waiting for; changed or unreadable, it stops.
    pub(super) fn config(&mut self, now: Duration, read: Result<Stand, String>) {
        let changed = match read {
            Ok(stand) => split::changes(&self.expected.json, &stand.json).join("; "),
            Err(e) => format!("the config no longer reads as before: {e}"),
        };
        if !changed.is_empty() {
            return self.stop(&changed);
        }
        match self.phase {
            Phase::Checking => self.write_weight(now),
            Phase::Acking { .. } => self.ask(Request::AskAcks),
            Phase::Watching { until, then } if now >= until => {
                self.phase = Phase::Scraping { then };
                self.ask(Request::Scrape);
            }
            Phase::Watching { until, .. } => {
                self.out.push(Action::Sleep(WATCH.min(until - now)));
                self.ask(Request::ReadConfig);
            }
            _ => self.unexpected("the config"),
        }
    }

    /// The config is as left: the step's weight, written, or in a dry run
    /// said.
    fn write_weight(&mut self, now: Duration) {
        let weight = self.plan.steps[self.step].weight;
        let from = show::pct(self.weight.into());
        self.weight = weight;
        if self.dry_run {
            let to = show::pct(weight.into());
            let line = format!(
                "{}: dry run: would set {} {from} → {to}",
                self.head(),
                self.plan.target
            );
            self.say(line);
            return self.settle(now);
        }
        self.phase = Phase::Setting;
        self.ask(Request::SetWeight(weight));
    }

    pub(super) fn weight_set(
        &mut self,
        now: Duration,
        written: Result<(Option<String>, Stand), Fail>,
    ) {
        if !matches!(self.phase, Phase::Setting) {
            return self.unexpected("a weight written");
        }
        let (said, stand) = match written {
            Ok(w) => w,
            Err(fail) => return self.finish(Outcome::Error(fail)),
        };
        self.expected = stand;
        let said = said.unwrap_or_else(|| "unchanged".into());
        self.say(format!("{}: set: {said}", self.head()));
        let weight = f64::from(self.weight) / 100.0;
        self.log(
            "set",
            json!({"step": self.step + 1, "weight": weight, "said": said}),
        );
        self.settle(now);
    }

    /// Until the proxies have the weight: every connected proxy's ACK when
    /// a fleet server serves the config, else one interval (the proxies
    /// watching the file apply it within milliseconds). The counts until
    /// then mix two weights, so only the sequential test (whose batches
    /// may hold any weights) is judged on them.
    fn settle(&mut self, now: Duration) {
        if self.plan.server.is_some() {
            self.phase = Phase::Acking {
                since: now,
                said: now,
            };
            self.ask(Request::ReadConfig);
        } else {
            let end = now + self.interval();
            self.watch(end, Tick::Settle { end });
        }
    }

    /// Watches the config (a first read now, then every [`WATCH`]) until
    /// `until`, then scrapes.
    fn watch(&mut self, until: Duration, then: Tick) {
        self.phase = Phase::Watching { until, then };
        self.ask(Request::ReadConfig);
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(self.plan.interval_s)
    }

    pub(super) fn scraped(&mut self, now: Duration, reading: Result<Reading, String>) {
        let then = match self.phase {
            Phase::Counting { first } => return self.counted(now, first, reading),
            Phase::Scraping { then } => then,
            _ => return self.unexpected("a scrape"),
        };
        if let Ok(r) = &reading {
            self.judge.fold(r.unix_s, &r.window);
            self.totals.add(&r.window);
        }
        match then {
            Tick::Settle { end } => self.settled(now, end, reading.is_ok()),
            Tick::Hold => self.judged(now, reading),
        }
    }

    /// The settling interval is over: fails on the sequential test alone
    /// (the only judgement mixed weights allow), else the hold begins,
    /// its intervals counted from `end`. A failed scrape is not said here:
    /// the hold's first interval says it if it lasts.
    fn settled(&mut self, now: Duration, end: Duration, read: bool) {
        if read {
            let (none, shadow_only) = (Tripped::default(), self.shadow_only(self.step));
            if let Some(failure) = self.judge.failure(&Sides::default(), &none, shadow_only) {
                return self.fail(failure);
            }
        }
        self.hold = Hold {
            start: now,
            next: end,
            window: Sides::default(),
        };
        self.next_interval(now);
    }

    /// Waits for the next interval of the hold: on the grid of the settle's
    /// end, or now when a slow scrape overran it.
    fn next_interval(&mut self, now: Duration) {
        self.hold.next = (self.hold.next + self.interval()).max(now);
        self.watch(self.hold.next, Tick::Hold);
    }

    /// An interval of the hold: its verdict said and logged, then the next
    /// step, the failure, or another interval.
    fn judged(&mut self, now: Duration, reading: Result<Reading, String>) {
        let i = self.step;
        let hold_s = self.plan.steps[i].hold_s;
        let held_s = now.saturating_sub(self.hold.start).as_secs_f64().round() as u64;
        let at = self.at(i);
        let reading = match reading {
            Ok(r) => r,
            Err(e) => {
                let unjudged = "metrics unavailable, not judged";
                let line = report::interval(&at, held_s, hold_s, &self.hold.window, unjudged);
                self.say(format!("{line}: {e}"));
                self.log("no_metrics", json!({"step": i + 1, "error": e}));
                return self.next_interval(now);
            }
        };
        self.hold.window.add(&reading.window);
        let hold = &self.hold.window;
        let shadow_only = self.shadow_only(i);
        let verdict = self
            .judge
            .verdict(hold, &reading.tripped, held_s >= hold_s, shadow_only);
        let evidence = self.judge.evidence();
        let why = report::verdict(&verdict, evidence);
        let line = report::interval(&at, held_s, hold_s, hold, &why);
        let record = report::interval_record(
            &at,
            (held_s, hold_s),
            hold,
            &reading.tripped,
            evidence,
            &verdict,
            &why,
        );
        self.say(line);
        self.log("interval", record);
        match verdict {
            StepVerdict::Pass if i + 1 < self.plan.steps.len() => self.set(i + 1, now),
            StepVerdict::Pass => self.done(now),
            StepVerdict::Fail(failure) => self.fail(failure),
            StepVerdict::Ok
            | StepVerdict::LowTraffic { .. }
            | StepVerdict::LowCopies { .. }
            | StepVerdict::Unsettled(_)
            | StepVerdict::GateUnsettled(_) => self.next_interval(now),
        }
    }

    /// The fleet server's answer while the step settles: the hold starts
    /// at every proxy's ACK; a NACK, or a file the server refuses, fails
    /// the step; otherwise it asks again, saying every interval what it
    /// waits for.
    pub(super) fn acks(&mut self, now: Duration, answer: Result<Acks, Fail>) {
        let Phase::Acking { since, said } = self.phase else {
            return self.unexpected("the fleet server's ACKs");
        };
        let head = self.head();
        let (news, at) = match answer {
            Err(fail) => return self.finish(Outcome::Error(fail)),
            Ok(Acks::Acked { version, nodes }) => {
                let ms = now.saturating_sub(since).as_millis() as u64;
                let all = nodes.join(", ");
                let line = format!(
                    "{head}: ACKed by all {} connected proxies ({all}) in {ms} ms",
                    nodes.len()
                );
                self.say(line);
                let record =
                    json!({"step": self.step + 1, "version": version, "nodes": nodes, "ms": ms});
                self.log("acked", record);
                // The settling interval ends now: one look at the config,
                // then the counts the hold starts from.
                return self.watch(now, Tick::Settle { end: now });
            }
            Ok(Acks::Nacked(nacks)) => return self.fail(Failure::Nacked(nacks)),
            Ok(Acks::NotServed(problems)) => return self.fail(Failure::NotServed(problems)),
            // The file changed again: whose change, the next read says.
            Ok(Acks::Superseded) => return self.ask(Request::ReadConfig),
            Ok(Acks::Waiting(news)) => (news, now),
            Ok(Acks::Unreachable(e)) => {
                // The server answers in a slice when it can; when it
                // cannot, this keeps the asks from spinning.
                self.out.push(Action::Sleep(WATCH));
                (format!("cannot ask the fleet server: {e}"), now + WATCH)
            }
        };
        let mut said = said;
        if at.saturating_sub(said) >= self.interval() {
            self.say(format!(
                "{head}: hold not started, waiting for every proxy's ACK: {news}"
            ));
            said = at;
        }
        self.phase = Phase::Acking { since, said };
        self.ask(Request::ReadConfig);
    }
}
