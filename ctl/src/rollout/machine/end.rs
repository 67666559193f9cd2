//! How a rollout ends: `on_failure` applied (the rollback written, and
//! with a fleet server followed to every proxy), stopped for someone
//! else's change, or done.

use std::time::Duration;
use turnout::guard::judge::Evidence;

use serde_json::json;

use super::{Machine, Outcome, Phase, Request, Taken};
use crate::rollout::analysis::{Failure, Side};
use crate::rollout::plan::OnFailure;
use crate::rollout::report;
use crate::show;

impl Machine {
    /// Applies `on_failure` (a guard trip always rolls back: that proxy
    /// has already, and the fleet follows it) and says so.
    pub(super) fn fail(&mut self, failure: Failure) {
        let why = report::failure(&failure, self.judge.evidence());
        let (head, split) = (self.head(), &self.plan.split);
        let config = self.plan.config.display();
        let rollback = self.plan.on_failure == OnFailure::Rollback
            || matches!(failure, Failure::GuardTripped(_));
        if !rollback {
            self.say(format!(
                "rollout {split}: PAUSED at {head}: {why}. The weight stays; to roll back: turnoutctl rollback {config} {split}"
            ));
            self.log("pause", json!({"step": self.step + 1, "why": why}));
            return self.finish(Outcome::Failed);
        }
        if self.dry_run {
            self.say(format!(
                "rollout {split}: WOULD ROLL BACK at {head}: {why} (dry run: would write \"rollback\": true)"
            ));
            return self.finish(Outcome::Failed);
        }
        self.phase = Phase::RollingBack { why };
        self.ask(Request::RollBack);
    }

    pub(super) fn rolled_back(&mut self, now: Duration, written: Result<Option<String>, String>) {
        let Phase::RollingBack { why } = self.phase.clone() else {
            return self.unexpected("a rollback written");
        };
        let said = match written {
            Ok(said) => said.unwrap_or_else(|| "rollback was already on".into()),
            Err(error) => {
                let (split, step) = (&self.plan.split, self.step + 1);
                let record = json!({"step": step, "why": why, "error": error});
                let config = self.plan.config.display();
                let refused = format!(
                    "{}: {why}; the rollback could NOT be written: {error}\nroll back by hand: turnoutctl rollback {config} {split}",
                    self.head()
                );
                self.log("rollback_failed", record);
                return self.finish(Outcome::Refused(refused));
            }
        };
        self.say(said.clone());
        if self.plan.server.is_some() {
            self.phase = Phase::RollbackAcking {
                why,
                said,
                since: now,
            };
            self.ask(Request::AskRollbackAcks);
        } else {
            self.rolled_back_everywhere(true, &why, &said);
        }
    }

    /// With a fleet server: whether every proxy has the rollback, said
    /// (it is written either way).
    pub(super) fn rollback_acks(&mut self, now: Duration, answer: Result<Taken, String>) {
        let Phase::RollbackAcking { why, said, since } = self.phase.clone() else {
            return self.unexpected("the rollback's ACKs");
        };
        let ms = now.saturating_sub(since).as_millis() as u64;
        let line = match &answer {
            Ok(t) if t.acked => format!("{}, {ms} ms after the write", t.message),
            Ok(t) => format!("NOT every proxy has the rollback: {}", t.message),
            Err(e) => {
                format!("cannot ask the fleet server whether the proxies have the rollback: {e}")
            }
        };
        let acked = matches!(answer, Ok(Taken { acked: true, .. }));
        self.say(line.clone());
        self.log(
            "rollback_acked",
            json!({"acked": acked, "said": line, "ms": ms}),
        );
        self.rolled_back_everywhere(acked, &why, &said);
    }

    fn rolled_back_everywhere(&mut self, everywhere: bool, why: &str, said: &str) {
        let (split, config) = (&self.plan.split, self.plan.config.display());
        let whom = if everywhere {
            format!("Every request of {split} goes to {}", self.expected.stable)
        } else {
            "The rollback is written, but NOT every proxy has it (above): see to those".into()
        };
        let line = format!(
            "rollout {split}: ROLLED BACK at {}: {why}. {whom}; find the cause, then `turnoutctl resume {config} {split}` and run the rollout again.",
            self.head()
        );
        self.say(line);
        let record = json!({"step": self.step + 1, "why": why, "said": said});
        self.log("rollback", record);
        self.finish(Outcome::Failed);
    }

    /// Someone else changed the split: never fight a person.
    pub(super) fn stop(&mut self, what: &str) {
        let p = &self.plan;
        self.say(format!(
            "rollout {}: STOPPED during step {}/{} ({} at {}): someone else changed the split: {what}. \
             The controller does not fight a person: see what they did; to go on, run the rollout again (it carries on from the weight in the config).",
            p.split,
            self.step + 1,
            p.steps.len(),
            p.target,
            show::pct(self.weight.into())
        ));
        self.log("stop", json!({"why": what}));
        self.finish(Outcome::Stopped);
    }

    pub(super) fn done(&mut self, now: Duration) {
        let t = &self.totals;
        let rate = |s: &Side| {
            s.error_rate()
                .map_or("-".into(), |r| format!("{:.2} %", r * 100.0))
        };
        let dry = if self.dry_run {
            " (dry run, nothing written)"
        } else {
            ""
        };
        let copies = match &self.expected.shadow {
            Some(_) => format!(
                " · copies {} · mismatches {}",
                report::count(t.copies.sent()),
                report::mismatches(&t.copies)
            ),
            None => String::new(),
        };
        let line = format!(
            "rollout {}: DONE{dry}: {} reached {} in {} · {} target req · errors {} (stable {}){copies}",
            self.plan.split,
            self.plan.target,
            show::pct(self.weight.into()),
            report::duration(now.as_secs()),
            report::count(t.target.responses),
            rate(&t.target),
            rate(&t.stable)
        );
        let record = json!({"weight": f64::from(self.weight) / 100.0,
            "target_responses": t.target.responses, "seconds": now.as_secs()});
        self.say(line);
        self.log("done", record);
        self.finish(Outcome::Done);
    }
}
