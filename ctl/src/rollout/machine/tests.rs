//! Every decision path of the controller, on the host: a simulated world
//! answers the machine's requests as the driver would (the config as a
//! split, the traffic of each interval, the fleet server's answers, and a
//! clock that moves only when the machine sleeps or a request is said to
//! take time), and each test judges the actions the machine answered with.

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::{json, Value};

use super::*;
use crate::rollout::analysis::Side;
use crate::rollout::plan;

mod failure;
mod ramp;
mod server;
mod shadow;

const S: Duration = Duration::from_secs(1);
const CONFIG: &str = "/etc/turnout/users.json";
const STEPS: &str = "[10, 30, 50, 80, 100]";
/// Limits judged on counts only, so that a failure is found in the hold
/// (the sequential test, which can fail a step while it settles, has its
/// own tests).
const LIMITS: &str = r#"{"min_requests": 20, "max_error_rate": 0.01, "max_p99_ms": 500}"#;
/// The contract's analysis, with fewer requests.
const CONTRACT: &str = r#"{"min_requests": 20, "max_error_rate": 0.01, "max_p99_ms": 500,
  "max_p95_ratio": 2.0, "max_error_ratio": 2.0, "alpha": 0.001}"#;

/// A plan for split `users` (`legacy` to `fastapi`): holds of 30 s,
/// intervals of 10 s, and `extra` fields (`, "on_failure": "pause"`).
fn plan_of(steps: &str, analysis: &str, extra: &str) -> RolloutPlan {
    let text = format!(
        r#"{{"config": "{CONFIG}", "split": "users", "target": "fastapi", "steps": {steps},
  "hold_s": 30, "interval_s": 10, "metrics": {{"envoy_admin": ["http://127.0.0.1:9901"]}},
  "analysis": {analysis}{extra}}}"#
    );
    plan::parse(&text).expect("a valid plan")
}

/// The split as the config has it: fastapi at `weight` basis points.
fn stand(weight: u16, rollback: bool) -> Stand {
    let mut json = json!({"name": "users", "match": {"route": "users"}, "stable": "legacy",
        "targets": [{"cluster": "fastapi", "weight": f64::from(weight) / 100.0}]});
    if rollback {
        json["rollback"] = json!(true);
    }
    Stand {
        stable: "legacy".into(),
        weight,
        rollback,
        shadow: None,
        json,
    }
}

/// `responses` with `errors`, every latency at `ms`, in Envoy's buckets.
fn side(responses: u64, errors: u64, ms: f64) -> Side {
    let bounds = [0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0];
    let mut buckets: std::collections::BTreeMap<u64, u64> = bounds
        .iter()
        .map(|&le: &f64| (le.to_bits(), if ms <= le { responses } else { 0 }))
        .collect();
    buckets.insert(f64::INFINITY.to_bits(), responses);
    Side {
        responses,
        errors,
        buckets,
    }
}

/// An interval's reading of two proxies: the target's responses and
/// errors, stable's 900 with none, everything answered in 3 ms.
fn reading(target: u64, errors: u64) -> Reading {
    Reading {
        window: Sides {
            target: side(target, errors, 3.0),
            stable: side(900, 0, 3.0),
            ..Sides::default()
        },
        tripped: Default::default(),
        proxies: 2,
        unix_s: 0,
    }
}

/// What a scrape sees: the target's weight in the config, and the
/// scrape's number (0 at the start).
struct Seen {
    weight: u16,
    n: usize,
}

type Traffic = Box<dyn FnMut(&Seen) -> Result<Reading, String>>;

/// A healthy target: 100 responses an interval, none failed.
fn healthy() -> Traffic {
    Box::new(|_| Ok(reading(100, 0)))
}

/// Runs a rollout of `plan` from the split `at` to its end.
fn run(plan: RolloutPlan, at: Stand, traffic: Traffic) -> World {
    World::new(plan, false, at, traffic).run()
}

/// The world around one rollout, carrying out the machine's requests.
struct World {
    machine: Machine,
    first: Vec<Action>,
    now: Duration,
    /// The config: the split, or why it does not read.
    config: Result<Stand, String>,
    /// Someone else's edit of the config, and when it is made.
    edit: Option<(When, Result<Stand, String>)>,
    traffic: Traffic,
    scrapes: usize,
    /// How long a scrape takes.
    scrape_takes: Duration,
    /// The fleet server's answers to the step's asks, in order; an ask
    /// past the last is ACKed. A `Waiting` takes a slice (1 s).
    acks: VecDeque<Acks>,
    rollback_acks: Result<Taken, String>,
    rollback_acks_take: Duration,
    /// Writes that fail, and how.
    weight_fails: Option<Fail>,
    rollback_fails: Option<String>,
    /// Every action, with the time it was answered at.
    log: Vec<(Duration, Action)>,
    outcome: Option<Outcome>,
    /// Where a run that never ends is cut short.
    until: Option<Duration>,
}

#[derive(Clone, Copy)]
enum When {
    At(Duration),
    /// Once scrape `n` (0 at the start) was answered.
    AfterScrape(usize),
}

impl World {
    fn new(plan: RolloutPlan, dry_run: bool, at: Stand, traffic: Traffic) -> World {
        let (machine, first) = Machine::start(plan, dry_run, at.clone());
        World {
            machine,
            first,
            now: Duration::ZERO,
            config: Ok(at),
            edit: None,
            traffic,
            scrapes: 0,
            scrape_takes: Duration::ZERO,
            acks: VecDeque::new(),
            rollback_acks: Ok(Taken {
                acked: true,
                message: "users version v9: ACKed by all 2 subscribed proxies (a, b)".into(),
            }),
            rollback_acks_take: Duration::from_millis(15),
            weight_fails: None,
            rollback_fails: None,
            log: Vec::new(),
            outcome: None,
            until: None,
        }
    }

    /// Runs the rollout to its end (a simulated day at most).
    fn run(mut self) -> World {
        let mut actions = take(&mut self.first);
        loop {
            let mut request = None;
            for action in actions {
                match &action {
                    Action::Sleep(d) => self.now += *d,
                    Action::Ask(r) => request = Some(*r),
                    _ => {}
                }
                self.log.push((self.now, action));
            }
            if let Some((_, Action::Finish(_))) = self.log.last() {
                if let Some((_, Action::Finish(outcome))) = self.log.pop() {
                    self.outcome = Some(outcome);
                }
                return self;
            }
            match self.until {
                Some(until) if self.now >= until => return self,
                Some(_) => {}
                None => assert!(self.now < 86_400 * S, "no end in a day:\n{}", self.said()),
            }
            let request = request.expect("each answer ends with a request or the end");
            let input = self.answer(request);
            actions = self.machine.on(self.now, input);
        }
    }

    fn answer(&mut self, request: Request) -> Input {
        match request {
            Request::ReadConfig => {
                let due = |when: &When| match *when {
                    When::At(at) => self.now >= at,
                    When::AfterScrape(n) => self.scrapes > n,
                };
                if self.edit.as_ref().is_some_and(|(when, _)| due(when)) {
                    self.config = self.edit.take().expect("just seen").1;
                }
                Input::Config(self.config.clone())
            }
            Request::Scrape => {
                let weight = self.config.as_ref().map_or(0, |s| s.weight);
                let n = self.scrapes;
                self.scrapes += 1;
                self.now += self.scrape_takes;
                let read = (self.traffic)(&Seen { weight, n });
                Input::Scraped(read.map(|mut r| {
                    if n == 0 {
                        // As the driver's: the counts start here.
                        r.window = Sides::default();
                    }
                    r.unix_s = 1_700_000_000 + self.now.as_secs() as i64;
                    r
                }))
            }
            Request::SetWeight(weight) => Input::WeightSet(match self.weight_fails.take() {
                Some(fail) => Err(fail),
                None => {
                    let before = self.config.clone().expect("a config that reads");
                    let mut after = stand(weight, before.rollback);
                    after.json = before.json.clone();
                    after.shadow = before.shadow.clone();
                    after.json["targets"][0]["weight"] = json!(f64::from(weight) / 100.0);
                    self.config = Ok(after.clone());
                    let said = format!("users: fastapi {} → {}", before.weight, weight);
                    Ok((Some(said), after))
                }
            }),
            Request::RollBack => Input::RolledBack(match self.rollback_fails.take() {
                Some(e) => Err(e),
                None => {
                    if let Ok(s) = &mut self.config {
                        s.rollback = true;
                        s.json["rollback"] = json!(true);
                    }
                    Ok(Some("users: rollback false → true".into()))
                }
            }),
            Request::AskAcks => {
                let answer = self.acks.pop_front().unwrap_or(Acks::Acked {
                    version: "v1".into(),
                    nodes: vec!["a".into(), "b".into()],
                });
                if matches!(answer, Acks::Waiting(_)) {
                    self.now += S;
                }
                Input::Acks(Ok(answer))
            }
            Request::AskRollbackAcks => {
                self.now += self.rollback_acks_take;
                Input::RollbackAcks(self.rollback_acks.clone())
            }
        }
    }

    fn outcome(&self) -> &Outcome {
        self.outcome.as_ref().expect("ran to the end")
    }

    /// Every line said, in order.
    fn lines(&self) -> Vec<&str> {
        let said = self.log.iter().filter_map(|(_, a)| match a {
            Action::Say(line) => Some(line.as_str()),
            _ => None,
        });
        said.collect()
    }

    fn said(&self) -> String {
        self.lines().join("\n")
    }

    /// The lines that contain `needle`.
    fn lines_with(&self, needle: &str) -> Vec<&str> {
        let lines = self.lines().into_iter();
        lines.filter(|l| l.contains(needle)).collect()
    }

    fn requests(&self) -> Vec<(Duration, Request)> {
        let asked = self.log.iter().filter_map(|(at, a)| match a {
            Action::Ask(r) => Some((*at, *r)),
            _ => None,
        });
        asked.collect()
    }

    /// The writes asked for.
    fn writes(&self) -> Vec<Request> {
        let all = self.requests().into_iter().map(|(_, r)| r);
        all.filter(|r| matches!(r, Request::SetWeight(_) | Request::RollBack))
            .collect()
    }

    /// The log records of `event`.
    fn records(&self, event: &str) -> Vec<&Value> {
        let records = self.log.iter().filter_map(|(_, a)| match a {
            Action::Log(e, fields) if *e == event => Some(fields),
            _ => None,
        });
        records.collect()
    }
}
