//! The paths of a rollout that ends early: a failing target rolled back
//! or paused, a guard trip, the sequential test while a step settles,
//! someone else's change, and writes that fail.

use super::*;

/// Healthy at 10 %, failing `errors` of 100 from 30 % on.
fn failing_from_step_2(errors: u64) -> Traffic {
    Box::new(move |seen| match seen.weight {
        w if w < 3000 => Ok(reading(100, 0)),
        _ => Ok(reading(100, errors)),
    })
}

#[test]
fn a_target_failing_at_step_2_is_rolled_back() {
    let world = run(
        plan_of(STEPS, LIMITS, ""),
        stand(0, false),
        failing_from_step_2(20),
    );
    assert_eq!(world.outcome(), &Outcome::Failed);
    let writes = [
        Request::SetWeight(1000),
        Request::SetWeight(3000),
        Request::RollBack,
    ];
    assert_eq!(world.writes(), writes);
    let lines = world.lines();
    let n = lines.len();
    assert_eq!(
        lines[n - 3..],
        [
            "step 2/5 fastapi 30 % · held 10s of 30s · 100 req · errors 20.00 % (stable 0.00 %) · p99 5.0 ms (stable 5.0 ms) · FAILED: error_rate 20.00 % > 1 %",
            "users: rollback false → true",
            "rollout users: ROLLED BACK at step 2/5 fastapi 30 %: error_rate 20.00 % > 1 %. Every request of users goes to legacy; find the cause, then `turnoutctl resume /etc/turnout/users.json users` and run the rollout again.",
        ]
    );
    let rollback = world.records("rollback");
    assert_eq!(
        rollback,
        [
            &json!({"step": 2, "why": "error_rate 20.00 % > 1 %", "said": "users: rollback false → true"})
        ]
    );
    assert_eq!(
        world.records("interval").last().map(|r| &r["verdict"]),
        Some(&json!("fail"))
    );
}

#[test]
fn on_failure_pause_keeps_the_weight() {
    let plan = plan_of(STEPS, LIMITS, r#", "on_failure": "pause""#);
    let world = run(plan, stand(0, false), failing_from_step_2(20));
    assert_eq!(world.outcome(), &Outcome::Failed);
    assert_eq!(
        world.writes(),
        [Request::SetWeight(1000), Request::SetWeight(3000)]
    );
    assert_eq!(
        world.lines().last().copied(),
        Some("rollout users: PAUSED at step 2/5 fastapi 30 %: error_rate 20.00 % > 1 %. The weight stays; to roll back: turnoutctl rollback /etc/turnout/users.json users")
    );
    let pause = json!({"step": 2, "why": "error_rate 20.00 % > 1 %"});
    assert_eq!(world.records("pause"), [&pause]);
}

#[test]
fn a_guard_trip_on_any_proxy_rolls_back_even_with_pause() {
    let plan = plan_of(STEPS, LIMITS, r#", "on_failure": "pause""#);
    // Healthy counts, but one proxy's guard tripped in step 1's hold.
    let traffic: Traffic = Box::new(|seen| {
        let mut r = reading(100, 0);
        if seen.n >= 2 {
            r.tripped.guard = vec!["http://127.0.0.1:9902".into()];
        }
        Ok(r)
    });
    let world = run(plan, stand(0, false), traffic);
    assert_eq!(world.outcome(), &Outcome::Failed);
    assert_eq!(
        world.writes(),
        [Request::SetWeight(1000), Request::RollBack]
    );
    assert!(world.lines_with("PAUSED").is_empty(), "{}", world.said());
    let failed = world.lines_with("· FAILED: guard tripped on http://127.0.0.1:9902");
    assert_eq!(failed.len(), 1, "{}", world.said());
    assert!(failed[0].starts_with("step 1/5 fastapi 10 % · held 10s of 30s"));
    let interval = world.records("interval")[0];
    assert_eq!(interval["guard_tripped"], json!(["http://127.0.0.1:9902"]));
}

#[test]
fn the_sequential_test_can_fail_a_step_while_it_settles() {
    // 20 % errors against stable's none: the error ratio's evidence is
    // beyond 1/alpha in the settling interval's counts already, before
    // any interval of the hold (the CI run that found it there).
    let traffic: Traffic = Box::new(|seen| {
        let mut r = reading(300, 0);
        if seen.weight >= 3000 {
            r.window.target.errors = 60;
            r.window.stable.errors = 1;
        }
        Ok(r)
    });
    let world = run(plan_of(STEPS, CONTRACT, ""), stand(0, false), traffic);
    assert_eq!(world.outcome(), &Outcome::Failed);
    assert!(world.lines_with("step 2/5 fastapi 30 % · held").is_empty());
    let summary = world.lines_with("ROLLED BACK at step 2/5 fastapi 30 %: error_ratio: the error rate is over 2x stable's (sequential test, evidence e^");
    assert_eq!(summary.len(), 1, "{}", world.said());
}

#[test]
fn someone_elses_rollback_stops_it_at_once_saying_what_changed() {
    let mut world = World::new(
        plan_of(STEPS, LIMITS, ""),
        false,
        stand(0, false),
        healthy(),
    );
    // During step 2's hold (written at 40 s, settled at 50 s).
    let edited = 55 * S + Duration::from_millis(30);
    world.edit = Some((When::At(edited), Ok(stand(3000, true))));
    let world = world.run();
    assert_eq!(world.outcome(), &Outcome::Stopped);
    assert!(world.now - edited <= WATCH, "{:?}", world.now);
    assert_eq!(
        world.writes(),
        [Request::SetWeight(1000), Request::SetWeight(3000)]
    );
    assert_eq!(
        world.lines().last().copied(),
        Some("rollout users: STOPPED during step 2/5 (fastapi at 30 %): someone else changed the split: rollback: (absent) → true. The controller does not fight a person: see what they did; to go on, run the rollout again (it carries on from the weight in the config).")
    );
    assert_eq!(
        world.records("stop"),
        [&json!({"why": "rollback: (absent) → true"})]
    );
}

#[test]
fn a_change_seen_before_a_write_is_never_overwritten() {
    let mut world = World::new(
        plan_of(STEPS, LIMITS, ""),
        false,
        stand(0, false),
        healthy(),
    );
    // Set by hand right after step 1 passed (its hold's last scrape, the
    // fourth), before step 2 is written.
    world.edit = Some((When::AfterScrape(4), Ok(stand(2000, false))));
    let world = world.run();
    assert_eq!(world.outcome(), &Outcome::Stopped);
    assert_eq!(world.writes(), [Request::SetWeight(1000)]);
    let stop = world.lines_with("STOPPED during step 2/5 (fastapi at 10 %)");
    assert_eq!(stop.len(), 1, "{}", world.said());
    assert!(stop[0].contains("changed the split: targets[0].weight: 10.0 → 20.0."));
}

#[test]
fn a_config_that_no_longer_reads_stops_it() {
    let mut world = World::new(
        plan_of(STEPS, LIMITS, ""),
        false,
        stand(0, false),
        healthy(),
    );
    let broken = Err("/etc/turnout/users.json: not valid JSON".to_string());
    world.edit = Some((When::At(15 * S), broken));
    let world = world.run();
    assert_eq!(world.outcome(), &Outcome::Stopped);
    let stop = world.lines_with("STOPPED during step 1/5 (fastapi at 10 %): someone else changed the split: the config no longer reads as before: /etc/turnout/users.json: not valid JSON.");
    assert_eq!(stop.len(), 1, "{}", world.said());
}

#[test]
fn a_rollback_that_cannot_be_written_says_how_to_by_hand() {
    let mut world = World::new(
        plan_of(STEPS, LIMITS, ""),
        false,
        stand(0, false),
        failing_from_step_2(50),
    );
    world.rollback_fails = Some("cannot write /etc/turnout/users.json: disk full".into());
    let world = world.run();
    let why = "step 2/5 fastapi 30 %: error_rate 50.00 % > 1 %; the rollback could NOT be written: cannot write /etc/turnout/users.json: disk full\nroll back by hand: turnoutctl rollback /etc/turnout/users.json users";
    assert_eq!(world.outcome(), &Outcome::Refused(why.into()));
    assert!(world.lines_with("ROLLED BACK").is_empty());
    assert_eq!(world.records("rollback_failed").len(), 1);
}

#[test]
fn a_weight_that_cannot_be_written_ends_the_run_with_the_edit_s_error() {
    let mut world = World::new(
        plan_of(STEPS, LIMITS, ""),
        false,
        stand(0, false),
        healthy(),
    );
    world.weight_fails = Some(Fail::Usage("cannot write /etc/turnout/users.json".into()));
    let world = world.run();
    let fail = Fail::Usage("cannot write /etc/turnout/users.json".into());
    assert_eq!(world.outcome(), &Outcome::Error(fail));
    assert!(world.lines_with(": set:").is_empty());
}

#[test]
fn an_answer_the_machine_did_not_ask_for_ends_the_run() {
    let (mut machine, first) = Machine::start(plan_of("[10]", LIMITS, ""), false, stand(0, false));
    assert_eq!(first, [Action::Ask(Request::Scrape)]);
    let actions = machine.on(Duration::ZERO, Input::RolledBack(Ok(None)));
    assert!(matches!(
        actions.as_slice(),
        [Action::Finish(Outcome::Error(Fail::Usage(why)))] if why.starts_with("internal error: the rollout got a rollback written while Counting")
    ));
}
