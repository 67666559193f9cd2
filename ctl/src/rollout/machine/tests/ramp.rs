//! The paths of a rollout that goes on: the ramp, the holds that are
//! extended (low traffic, a limit not yet beyond noise, metrics that
//! cannot be read), the config watch, the dry run, the restart, and the
//! start and its refusals.

use super::*;

#[test]
fn a_healthy_target_ramps_10_to_100_each_step_passing_after_its_hold() {
    let world = run(plan_of(STEPS, CONTRACT, ""), stand(0, false), healthy());
    assert_eq!(world.outcome(), &Outcome::Done, "{}", world.said());
    let weights = [1000, 3000, 5000, 8000, 10000].map(Request::SetWeight);
    assert_eq!(world.writes(), weights);
    // Each step: settled one interval, then judged at 10, 20 and 30 s of
    // its 30 s hold, passing at the last.
    for (i, w) in [10, 30, 50, 80, 100].iter().enumerate() {
        let head = format!("step {}/5 fastapi {w} % · held ", i + 1);
        let verdicts: Vec<&str> = world.lines_with(&head);
        let ends: Vec<&str> = verdicts
            .iter()
            .map(|l| l.rsplit(" · ").next().unwrap_or_default())
            .collect();
        assert_eq!(ends, ["ok", "ok", "passed"], "{}", world.said());
        assert!(verdicts[2].contains("· held 30s of 30s · 300 req ·"));
    }
    let start = world.lines()[0];
    assert_eq!(
        start,
        "rollout users: fastapi through 10 % → 30 % → 50 % → 80 % → 100 % (stable legacy), judged every 10s on 1 Envoy admin endpoint(s)"
    );
    assert_eq!(
        world.lines().last().copied(),
        Some("rollout users: DONE: fastapi reached 100 % in 3m20s · 2,000 target req · errors 0.00 % (stable 0.00 %)")
    );
    let counts = ["start", "set", "interval", "done"].map(|e| world.records(e).len());
    assert_eq!(counts, [1, 5, 15, 1]);
    let pass = world.records("interval")[2];
    assert_eq!(pass["verdict"], "pass");
    assert_eq!(pass["step"], 1);
    assert_eq!(pass["held_s"], 30);
    assert_eq!(pass["target_figures"]["responses"], 300);
    assert_eq!(pass["guard_tripped"], json!([]));
    assert_eq!(world.records("done")[0]["weight"], 100.0);
}

#[test]
fn the_config_is_read_every_200_ms_while_waiting() {
    let world = run(plan_of("[10]", LIMITS, ""), stand(0, false), healthy());
    // Between the write and the end of the settling interval (10 s): a
    // read at once, then one every 200 ms.
    let asked = world.requests();
    let written = asked
        .iter()
        .position(|(_, r)| *r == Request::SetWeight(1000))
        .expect("written");
    let settled = asked[written..]
        .iter()
        .position(|(_, r)| *r == Request::Scrape)
        .expect("scraped");
    let reads = &asked[written + 1..written + settled];
    assert_eq!(reads.len(), 51);
    assert!(reads.iter().all(|(_, r)| *r == Request::ReadConfig));
    assert!(reads.windows(2).all(|w| w[1].0 - w[0].0 == WATCH));
    // Never a longer sleep, and every scrape right after a read.
    assert!(world.log.iter().all(|(_, a)| match a {
        Action::Sleep(d) => *d <= WATCH,
        _ => true,
    }));
    for (i, (_, r)) in asked.iter().enumerate().skip(1) {
        if *r == Request::Scrape {
            assert_eq!(asked[i - 1].1, Request::ReadConfig);
        }
    }
}

#[test]
fn low_traffic_extends_the_hold_and_says_so() {
    let traffic: Traffic = Box::new(|_| Ok(reading(3, 0)));
    let world = run(plan_of("[10]", LIMITS, ""), stand(0, false), traffic);
    assert_eq!(world.outcome(), &Outcome::Done);
    let extended: Vec<&str> = world.lines_with(", hold extended");
    let have: Vec<&str> = extended
        .iter()
        .map(|l| l.rsplit(" · ").next().unwrap_or_default())
        .collect();
    assert_eq!(
        have,
        [9, 12, 15, 18].map(|n| format!("low traffic: {n} of 20 req, hold extended"))
    );
    let passed = world.lines_with("· passed");
    assert_eq!(passed.len(), 1);
    assert!(
        passed[0].contains("held 1m10s of 30s · 21 req"),
        "{}",
        passed[0]
    );
    let verdicts: Vec<&Value> = world
        .records("interval")
        .iter()
        .map(|r| &r["verdict"])
        .collect();
    let extend = json!("extend");
    let (ok, pass) = (json!("ok"), json!("pass"));
    assert_eq!(
        verdicts,
        [&ok, &ok, &extend, &extend, &extend, &extend, &pass]
    );
}

#[test]
fn over_a_limit_within_noise_extends_the_hold_until_the_evidence_says() {
    // 3 errors in 120 (2.5 % against 1 %) could be a 1 % target's luck:
    // neither a pass nor a failure. More traffic at 0 % settles it.
    let traffic: Traffic = Box::new(|seen| match seen.n {
        0..=4 => Ok(reading(40, 1)),
        _ => Ok(reading(200, 0)),
    });
    let world = run(plan_of("[10]", LIMITS, ""), stand(0, false), traffic);
    assert_eq!(world.outcome(), &Outcome::Done, "{}", world.said());
    assert!(world.writes().iter().all(|w| *w != Request::RollBack));
    let ends: Vec<String> = world
        .lines_with("· held ")
        .iter()
        .map(|l| l.rsplit(" · ").next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        ends,
        [
            "ok",
            "ok",
            "error_rate 2.50 % > 1 %, not yet beyond noise: hold extended",
            "passed"
        ]
    );
}

#[test]
fn metrics_unavailable_in_an_interval_are_said_and_skipped() {
    // The settling interval's scrape and the hold's first fail.
    let traffic: Traffic = Box::new(|seen| match seen.n {
        1 | 2 => Err("cannot reach the server at 127.0.0.1:9901".into()),
        _ => Ok(reading(100, 0)),
    });
    let world = run(plan_of("[10]", LIMITS, ""), stand(0, false), traffic);
    assert_eq!(world.outcome(), &Outcome::Done);
    // Said in the hold only.
    assert_eq!(
        world.lines_with("metrics unavailable"),
        ["step 1/1 fastapi 10 % · held 10s of 30s · 0 req · errors - (stable -) · p99 - (stable -) · metrics unavailable, not judged: cannot reach the server at 127.0.0.1:9901"]
    );
    let error = json!({"step": 1, "error": "cannot reach the server at 127.0.0.1:9901"});
    assert_eq!(world.records("no_metrics"), [&error]);
    assert_eq!(world.lines_with("· passed").len(), 1);
    assert!(world.lines_with("· passed")[0].contains("· held 30s of 30s · 200 req"));
}

#[test]
fn a_dry_run_judges_and_never_writes() {
    let world = World::new(
        plan_of("[10, 30]", LIMITS, ""),
        true,
        stand(0, false),
        healthy(),
    )
    .run();
    assert_eq!(world.outcome(), &Outcome::Done);
    assert_eq!(world.writes(), []);
    assert!(world.lines()[0].ends_with("; dry run: nothing is written"));
    let would = world.lines_with(": dry run: would set fastapi ");
    assert_eq!(
        would,
        [
            "step 1/2 fastapi 10 %: dry run: would set fastapi 0 % → 10 %",
            "step 2/2 fastapi 30 %: dry run: would set fastapi 10 % → 30 %"
        ]
    );
    assert!(world.lines().last().is_some_and(|l| l.starts_with(
        "rollout users: DONE (dry run, nothing written): fastapi reached 30 % in 1m20s"
    )));
    assert_eq!(world.records("set"), Vec::<&Value>::new());

    let failing: Traffic = Box::new(|_| Ok(reading(100, 50)));
    let world = World::new(
        plan_of("[10, 30]", LIMITS, ""),
        true,
        stand(0, false),
        failing,
    )
    .run();
    assert_eq!(world.outcome(), &Outcome::Failed);
    assert_eq!(world.writes(), []);
    assert_eq!(
        world.lines().last().copied(),
        Some("rollout users: WOULD ROLL BACK at step 1/2 fastapi 10 %: error_rate 50.00 % > 1 % (dry run: would write \"rollback\": true)")
    );
}

#[test]
fn a_restart_carries_on_from_the_weight_in_the_config() {
    let world = run(plan_of(STEPS, LIMITS, ""), stand(3000, false), healthy());
    assert_eq!(world.outcome(), &Outcome::Done);
    assert_eq!(
        world.lines()[1..3],
        [
            "fastapi is at 30 %: carrying on from step 2/5",
            "step 2/5 fastapi 30 %: already there; holding it"
        ]
    );
    assert!(world.lines_with("step 1/5").is_empty());
    let weights = [5000, 8000, 10000].map(Request::SetWeight);
    assert_eq!(world.writes(), weights);
    let start = world.records("start")[0];
    assert_eq!(
        (&start["first_step"], &start["weight"]),
        (&json!(2), &json!(30.0))
    );

    // Between two steps: on to the next one up.
    let world = run(plan_of(STEPS, LIMITS, ""), stand(2000, false), healthy());
    assert_eq!(
        world.lines()[1],
        "fastapi is at 20 %: carrying on from step 2/5"
    );
    assert_eq!(world.writes()[0], Request::SetWeight(3000));
}

#[test]
fn the_start_is_refused_while_rolled_back_or_past_the_last_step() {
    let refused = |at: Stand| {
        let world = run(plan_of("[10, 30, 50]", LIMITS, ""), at, healthy());
        assert_eq!((world.requests().len(), world.lines().len()), (0, 0));
        match world.outcome {
            Some(Outcome::Refused(why)) => why,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        refused(stand(3000, true)),
        "/etc/turnout/users.json: rollback is on for users: find the cause, `turnoutctl resume /etc/turnout/users.json users`, then run the rollout again (it carries on from 30 %)"
    );
    assert_eq!(
        refused(stand(6000, false)),
        "users: fastapi is at 60 %, above the plan's last step: nothing to do"
    );
}

#[test]
fn metrics_unreadable_at_the_start_refuse_it_and_none_reported_warn() {
    let down: Traffic = Box::new(|_| Err("cannot reach the server at 127.0.0.1:1".into()));
    let world = run(plan_of(STEPS, LIMITS, ""), stand(0, false), down);
    let why = "the metrics cannot be read, nothing written: cannot reach the server at 127.0.0.1:1";
    assert_eq!(world.outcome(), &Outcome::Refused(why.into()));
    assert_eq!(world.requests(), [(Duration::ZERO, Request::Scrape)]);
    assert_eq!(world.lines().len(), 0);

    // No proxy reports the split: said at the start, and a step with no
    // data holds (an hour on, still), never passing, never failing.
    let unseen: Traffic = Box::new(|_| Ok(Reading::default()));
    let mut world = World::new(plan_of("[10]", LIMITS, ""), false, stand(0, false), unseen);
    world.until = Some(3600 * S);
    let world = world.run();
    assert_eq!(
        world.lines()[1],
        "warning: no proxy reports the series of split users for legacy and fastapi yet (check the names, and that the proxies' stats_tags are envoy/stats_tags.yaml): no data, so steps will hold"
    );
    assert_eq!(world.outcome, None);
    assert_eq!(world.writes(), [Request::SetWeight(1000)]);
    let last = world.lines().last().copied().unwrap_or_default();
    assert!(
        last.ends_with("low traffic: 0 of 20 req, hold extended"),
        "{last}"
    );
}

#[test]
fn slow_scrapes_keep_the_intervals_on_their_grid() {
    let mut world = World::new(
        plan_of("[10]", LIMITS, ""),
        false,
        stand(0, false),
        healthy(),
    );
    world.scrape_takes = 3 * S;
    let world = world.run();
    // Written at 3 s (after the first scrape), settled at 13 s, then every
    // 10 s from there, not 10 s after each scrape's answer.
    let scrapes: Vec<Duration> = world
        .requests()
        .into_iter()
        .filter(|(_, r)| *r == Request::Scrape)
        .map(|(at, _)| at)
        .collect();
    assert_eq!(scrapes, [0, 13, 23, 33, 43].map(|s| s * S));
    let held: Vec<&str> = world.lines_with("· held 30s of 30s ·");
    assert_eq!(held.len(), 1, "{}", world.said());
}
