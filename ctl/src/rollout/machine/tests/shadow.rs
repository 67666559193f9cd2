//! A split with a shadow: the shadow-only step (passed, held on low copy
//! traffic), the gates (a step held then failed on mismatches beyond
//! noise, paused or rolled back; 1 mismatch in 40 no failure; the shadow
//! error rate), a tripped shadow, and the refusals at the start.

use super::*;
use crate::rollout::analysis::Copies;

/// Gates of 1 % mismatches and 5 % failed copies, beside the error rate.
const GATES: &str = r#"{"min_requests": 20, "max_error_rate": 0.01,
  "max_mismatch_rate": 0.01, "max_shadow_error_rate": 0.05}"#;
const SHADOW_FIRST: &str = "[0, 50]";

/// The split at `weight`, shadowed to fastapi.
fn shadowed(weight: u16) -> Stand {
    let mut at = stand(weight, false);
    at.json["shadow"] = json!({"cluster": "fastapi"});
    at.shadow = Some("fastapi".into());
    at
}

/// An interval: the target's share of 100 requests (none at weight 0),
/// and the copies of the rest.
fn copied(weight: u16, copies: Copies) -> Reading {
    let mut r = reading(if weight == 0 { 0 } else { 100 }, 0);
    r.window.copies = copies;
    r
}

fn copies(matched: u64, mismatched: u64, failed: u64) -> Copies {
    Copies {
        matched,
        mismatched,
        failed,
    }
}

/// Every copy matching: `n` an interval.
fn matching(n: u64) -> Traffic {
    Box::new(move |seen| Ok(copied(seen.weight, copies(n, 0, 0))))
}

/// The verdicts (the line's last part) of step `head`'s intervals.
fn verdicts<'w>(world: &'w World, head: &str) -> Vec<&'w str> {
    let lines = world.lines_with(&format!("{head} · held "));
    let ends = lines
        .iter()
        .map(|l| l.rsplit(" · ").next().unwrap_or_default());
    ends.collect()
}

#[test]
fn a_shadow_only_step_passes_on_matching_copies_then_the_ramp_starts() {
    let world = run(plan_of(SHADOW_FIRST, GATES, ""), shadowed(0), matching(100));
    assert_eq!(world.outcome(), &Outcome::Done, "{}", world.said());
    // Step 1 is the config's 0 already: nothing written before step 2.
    assert_eq!(world.writes(), [Request::SetWeight(5000)]);
    let lines = world.lines();
    assert_eq!(
        lines[..3],
        [
            "rollout users: fastapi through 0 % → 50 % (stable legacy), judged every 10s on 1 Envoy admin endpoint(s)",
            "the copies to fastapi are judged by max_mismatch_rate 1 %, max_shadow_error_rate 5 %, with at least 20 compared to pass a shadow-only step",
            "step 1/2 fastapi 0 %: already there; holding it",
        ]
    );
    // Judged on the copies alone: the target has no responses.
    assert_eq!(
        world.lines_with("step 1/2 fastapi 0 % · held 30s")[0],
        "step 1/2 fastapi 0 % · held 30s of 30s · 0 req · errors - (stable 0.00 %) · p99 - (stable 5.0 ms) · copies 300 · mismatches 0.00 % · passed"
    );
    assert_eq!(
        verdicts(&world, "step 2/2 fastapi 50 %"),
        ["ok", "ok", "passed"]
    );
    assert!(
        lines[lines.len() - 1].ends_with("· copies 800 · mismatches 0.00 %"),
        "{}",
        world.said()
    );
    let pass = world.records("interval")[2];
    assert_eq!(pass["copy_figures"]["compared"], 300);
    assert_eq!(pass["shadow_tripped"], json!([]));
}

#[test]
fn a_shadow_only_step_with_few_copies_is_held_longer() {
    let analysis = GATES.replace("\"min_requests\": 20", "\"min_requests\": 100");
    let world = run(
        plan_of(SHADOW_FIRST, &analysis, ""),
        shadowed(0),
        matching(7),
    );
    assert_eq!(world.outcome(), &Outcome::Done, "{}", world.said());
    let step_1 = verdicts(&world, "step 1/2 fastapi 0 %");
    assert_eq!(step_1[..2], ["ok", "ok"]);
    assert_eq!(step_1[2], "low traffic: 21 of 100 copies, hold extended");
    // 7 an interval: 15 intervals to reach 100.
    assert_eq!(step_1.len(), 15);
    assert_eq!(step_1[14], "passed");
}

/// Matching copies at 0 %; from 50 % on, 3 of every 100 compared differ:
/// 3 % against 1 %, beyond noise only after about 525.
fn mismatching_at_step_2() -> Traffic {
    Box::new(|seen| match seen.weight {
        0 => Ok(copied(0, copies(100, 0, 0))),
        w => Ok(copied(w, copies(97, 3, 0))),
    })
}

#[test]
fn mismatches_hold_the_step_then_fail_it_beyond_noise_and_roll_back() {
    let world = run(
        plan_of(SHADOW_FIRST, GATES, ""),
        shadowed(0),
        mismatching_at_step_2(),
    );
    assert_eq!(world.outcome(), &Outcome::Failed);
    assert_eq!(
        world.writes(),
        [Request::SetWeight(5000), Request::RollBack]
    );
    let step_2 = verdicts(&world, "step 2/2 fastapi 50 %");
    let held =
        "mismatch_rate 3.00 % > 1 % (9 of 300 compared), not yet beyond noise: hold extended";
    assert_eq!(
        step_2[..4],
        [
            "ok",
            "ok",
            held,
            "mismatch_rate 3.00 % > 1 % (12 of 400 compared), not yet beyond noise: hold extended"
        ]
    );
    let why = "mismatch_rate 3.00 % > 1 % (18 of 600 compared)";
    assert_eq!(
        step_2.last().copied(),
        Some(format!("FAILED: {why}").as_str())
    );
    assert_eq!(
        world.lines().last().copied(),
        Some(format!("rollout users: ROLLED BACK at step 2/2 fastapi 50 %: {why}. Every request of users goes to legacy; find the cause, then `turnoutctl resume /etc/turnout/users.json users` and run the rollout again.").as_str())
    );
    // In the decision log too.
    assert_eq!(world.records("rollback")[0]["why"], why);
    let extended = world.records("interval");
    let extended = extended.iter().filter(|r| r["verdict"] == "extend");
    assert_eq!(extended.count(), 3);
}

#[test]
fn mismatches_beyond_noise_pause_with_on_failure_pause() {
    let plan = plan_of(SHADOW_FIRST, GATES, r#", "on_failure": "pause""#);
    let world = run(plan, shadowed(0), mismatching_at_step_2());
    assert_eq!(world.outcome(), &Outcome::Failed);
    assert_eq!(world.writes(), [Request::SetWeight(5000)]);
    let why = "mismatch_rate 3.00 % > 1 % (18 of 600 compared)";
    assert_eq!(world.records("pause"), [&json!({"step": 2, "why": why})]);
    assert!(world.lines().last().is_some_and(|l| l.starts_with(&format!(
        "rollout users: PAUSED at step 2/2 fastapi 50 %: {why}. The weight stays"
    ))));
}

#[test]
fn one_mismatch_in_40_is_not_a_failure() {
    // Step 1 sees 40 copies in its first interval, one of them differing
    // (2.5 % against 1 %), then 20 matching copies an interval.
    let traffic: Traffic = Box::new(|seen| match seen.n {
        2 => Ok(copied(0, copies(39, 1, 0))),
        _ => Ok(copied(seen.weight, copies(20, 0, 0))),
    });
    let world = run(plan_of(SHADOW_FIRST, GATES, ""), shadowed(0), traffic);
    assert_eq!(world.outcome(), &Outcome::Done, "{}", world.said());
    // Not failed; held at the end while over 1 % as measured, passed
    // once it is not.
    let held = "mismatch_rate 1.25 % > 1 % (1 of 80 compared), not yet beyond noise: hold extended";
    assert_eq!(
        verdicts(&world, "step 1/2 fastapi 0 %"),
        ["ok", "ok", held, "passed"]
    );
    let first = world.lines_with("step 1/2 fastapi 0 % · held 10s");
    assert!(
        first[0].ends_with("· copies 40 · mismatches 2.50 % · ok"),
        "{first:?}"
    );
    assert!(world.lines_with("FAILED").is_empty(), "{}", world.said());
}

#[test]
fn failed_copies_over_the_shadow_error_rate_fail_the_step() {
    // Half the copies time out or get no answer: compared ones all match.
    let traffic: Traffic = Box::new(|seen| Ok(copied(seen.weight, copies(50, 0, 50))));
    let world = run(plan_of(SHADOW_FIRST, GATES, ""), shadowed(0), traffic);
    assert_eq!(world.outcome(), &Outcome::Failed);
    let why = "shadow_error_rate 50.00 % > 5 % (50 of 100 copies)";
    assert_eq!(
        verdicts(&world, "step 1/2 fastapi 0 %"),
        [format!("FAILED: {why}").as_str()]
    );
    // A shadow-only step rolled back: nothing was sent to the target.
    assert_eq!(world.writes(), [Request::RollBack]);
    assert_eq!(world.records("rollback")[0]["why"], why);
}

#[test]
fn a_tripped_shadow_fails_the_step_with_on_failure() {
    let plan = plan_of(SHADOW_FIRST, GATES, r#", "on_failure": "pause""#);
    let traffic: Traffic = Box::new(|seen| {
        let mut r = copied(seen.weight, copies(100, 0, 0));
        if seen.weight > 0 {
            r.tripped.shadow = vec!["http://127.0.0.1:9902".into()];
        }
        Ok(r)
    });
    let world = run(plan, shadowed(0), traffic);
    assert_eq!(world.outcome(), &Outcome::Failed);
    let why = "shadow tripped on http://127.0.0.1:9902: the copies stopped, too many failed";
    // Paused, as the plan says: a tripped shadow is not a tripped guard,
    // which rolls back whatever the plan says.
    assert_eq!(world.writes(), [Request::SetWeight(5000)]);
    assert_eq!(world.records("pause"), [&json!({"step": 2, "why": why})]);
    let interval = world.records("interval");
    let last = interval.last().expect("an interval");
    assert_eq!(last["shadow_tripped"], json!(["http://127.0.0.1:9902"]));
}

#[test]
fn a_plan_that_judges_copies_is_refused_on_a_split_without_a_shadow() {
    let refused = |plan: RolloutPlan| {
        let world = run(plan, stand(0, false), matching(100));
        assert!(
            world.requests().is_empty(),
            "nothing asked, nothing written"
        );
        match world.outcome() {
            Outcome::Refused(why) => why.clone(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        refused(plan_of(SHADOW_FIRST, LIMITS, "")),
        "/etc/turnout/users.json: split users has no shadow, so nothing is copied for a shadow-only step (weight 0) to judge: add the split's \"shadow\" to the config, or take it out of the plan; nothing written"
    );
    assert_eq!(
        refused(plan_of(STEPS, GATES, "")),
        "/etc/turnout/users.json: split users has no shadow, so nothing is copied for analysis.max_mismatch_rate and analysis.max_shadow_error_rate to judge: add the split's \"shadow\" to the config, or take them out of the plan; nothing written"
    );
    // A plan that judges no copies runs on a shadowed split: its lines
    // show the copies, its mismatches judge nothing.
    let world = run(
        plan_of("[10]", LIMITS, ""),
        shadowed(0),
        mismatching_at_step_2(),
    );
    assert_eq!(world.outcome(), &Outcome::Done, "{}", world.said());
    assert!(
        world
            .lines_with("· copies 300 · mismatches 3.00 % · passed")
            .len()
            == 1
    );
}
