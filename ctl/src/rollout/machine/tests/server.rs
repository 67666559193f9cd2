//! The paths through a fleet server (the plan's `server`): holds that
//! start at every proxy's ACK, NACKs, a server that waits or cannot be
//! reached, and the rollback followed to every proxy.

use super::*;

fn served(steps: &str) -> RolloutPlan {
    plan_of(steps, LIMITS, r#", "server": "127.0.0.1:7000""#)
}

fn nodes(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

const MISSING: &str = "Failed to load Wasm module due to a missing import: turnout.wasm";

#[test]
fn a_nack_fails_the_step_with_envoys_message_and_the_rollback_is_followed() {
    let mut world = World::new(served("[10, 30, 50]"), false, stand(0, false), healthy());
    world.acks = VecDeque::from([
        Acks::Acked {
            version: "v1".into(),
            nodes: nodes(&["a", "b"]),
        },
        Acks::Nacked(vec![("b".into(), MISSING.into())]),
    ]);
    let nacked = format!("users version v3: NACKed by b: {MISSING}");
    world.rollback_acks = Ok(Taken {
        acked: false,
        message: nacked.clone(),
    });
    let world = world.run();
    assert_eq!(world.outcome(), &Outcome::Failed);
    let writes = [
        Request::SetWeight(1000),
        Request::SetWeight(3000),
        Request::RollBack,
    ];
    assert_eq!(world.writes(), writes);
    // Step 1: written, ACKed, then held (no settling interval: the ACKs
    // are the settle).
    let lines = world.lines();
    let at = |needle: &str| lines.iter().position(|l| l.contains(needle));
    let set = at("step 1/3 fastapi 10 %: set:");
    let acked = at("step 1/3 fastapi 10 %: ACKed by all 2 connected proxies (a, b) in 0 ms");
    let held = at("step 1/3 fastapi 10 % · held 10s of 30s");
    assert!(
        set < acked && acked < held && set.is_some(),
        "{}",
        world.said()
    );
    // Step 2: never held.
    assert!(world.lines_with("step 2/3 fastapi 30 % · held").is_empty());
    assert_eq!(
        lines[lines.len() - 3..],
        [
            "users: rollback false → true",
            &format!("NOT every proxy has the rollback: {nacked}"),
            &format!("rollout users: ROLLED BACK at step 2/3 fastapi 30 %: NACKed by b: {MISSING}. The rollback is written, but NOT every proxy has it (above): see to those; find the cause, then `turnoutctl resume /etc/turnout/users.json users` and run the rollout again."),
        ]
    );
    let acked = json!({"step": 1, "version": "v1", "nodes": ["a", "b"], "ms": 0});
    assert_eq!(world.records("acked"), [&acked]);
    let followed = json!({"acked": false, "said": format!("NOT every proxy has the rollback: {nacked}"), "ms": 15});
    assert_eq!(world.records("rollback_acked"), [&followed]);
}

#[test]
fn the_acks_waited_for_are_said_every_interval_and_the_hold_starts_at_the_last() {
    let mut world = World::new(served("[10]"), false, stand(0, false), healthy());
    let waiting = "users version v1: timed out: 1 of 2 proxies ACKed; not ACKed by b";
    world.acks = (0..25).map(|_| Acks::Waiting(waiting.into())).collect();
    let world = world.run();
    assert_eq!(world.outcome(), &Outcome::Done);
    let line = format!(
        "step 1/1 fastapi 10 %: hold not started, waiting for every proxy's ACK: {waiting}"
    );
    assert_eq!(world.lines_with("hold not started"), [&line, &line]);
    let acked = world.lines_with(": ACKed by all 2 connected proxies (a, b) in 25000 ms");
    assert_eq!(acked.len(), 1, "{}", world.said());
    // At the ACKs, one look at the config and the counts: no interval.
    let asked = world.requests();
    let last_ask = asked.iter().rposition(|(_, r)| *r == Request::AskAcks);
    let next: Vec<(Duration, Request)> = asked[last_ask.expect("asked") + 1..][..2].to_vec();
    let at = 25 * S;
    assert_eq!(next, [(at, Request::ReadConfig), (at, Request::Scrape)]);
}

#[test]
fn an_unreachable_server_is_asked_again_after_a_pause_and_said() {
    let mut world = World::new(served("[10]"), false, stand(0, false), healthy());
    let down = "cannot reach the server at 127.0.0.1:7000 (GET /wait): connection refused";
    world.acks = (0..60).map(|_| Acks::Unreachable(down.into())).collect();
    let world = world.run();
    assert_eq!(world.outcome(), &Outcome::Done);
    // 200 ms between two asks: 60 of them take 12 s, one line at 10 s.
    let line = format!("step 1/1 fastapi 10 %: hold not started, waiting for every proxy's ACK: cannot ask the fleet server: {down}");
    assert_eq!(world.lines_with("hold not started"), [&line]);
    assert_eq!(world.lines_with("in 12000 ms").len(), 1, "{}", world.said());
}

#[test]
fn a_superseded_version_is_asked_again_and_a_refused_file_fails_the_step() {
    let mut world = World::new(served("[10]"), false, stand(0, false), healthy());
    world.acks = VecDeque::from([Acks::Superseded]);
    let world = world.run();
    assert_eq!(world.outcome(), &Outcome::Done);
    let asks: Vec<Request> = world.requests().into_iter().map(|(_, r)| r).collect();
    let acks = [Request::AskAcks, Request::ReadConfig, Request::AskAcks];
    assert!(asks.windows(3).any(|w| w == acks), "{asks:?}");
    assert!(world.lines_with("hold not started").is_empty());

    let mut world = World::new(served("[10]"), false, stand(0, false), healthy());
    let problem = "splits[0].targets[0].weight: 140 is not between 0 and 100";
    world.acks = VecDeque::from([Acks::NotServed(vec![problem.into()])]);
    let world = world.run();
    assert_eq!(world.outcome(), &Outcome::Failed);
    let summary = format!("ROLLED BACK at step 1/1 fastapi 10 %: the fleet server refused the config, it is not served: {problem}. Every request");
    assert_eq!(world.lines_with(&summary).len(), 1, "{}", world.said());
}

#[test]
fn a_rollback_every_proxy_took_is_said_with_its_time() {
    let tripped: Traffic = Box::new(|seen| {
        let mut r = reading(100, 0);
        if seen.n >= 2 {
            r.tripped.guard = vec!["a".into()];
        }
        Ok(r)
    });
    let world = World::new(served("[10]"), false, stand(0, false), tripped).run();
    assert_eq!(world.outcome(), &Outcome::Failed);
    let lines = world.lines();
    assert_eq!(
        lines[lines.len() - 2..],
        [
            "users version v9: ACKed by all 2 subscribed proxies (a, b), 15 ms after the write",
            "rollout users: ROLLED BACK at step 1/1 fastapi 10 %: guard tripped on a. Every request of users goes to legacy; find the cause, then `turnoutctl resume /etc/turnout/users.json users` and run the rollout again."
        ]
    );
    assert_eq!(world.records("rollback_acked")[0]["acked"], true);

    // A server that cannot be asked: the rollback is written, not known
    // to be everywhere.
    let tripped: Traffic = Box::new(|_| {
        let mut r = reading(100, 0);
        r.tripped.guard = vec!["a".into()];
        Ok(r)
    });
    let mut world = World::new(served("[10]"), false, stand(0, false), tripped);
    world.rollback_acks = Err("cannot reach the server at 127.0.0.1:7000".into());
    let world = world.run();
    let lines = world.lines();
    assert_eq!(
        lines[lines.len() - 2],
        "cannot ask the fleet server whether the proxies have the rollback: cannot reach the server at 127.0.0.1:7000"
    );
    assert!(lines[lines.len() - 1].contains("The rollback is written, but NOT every proxy has it"));
}

#[test]
fn a_config_the_server_does_not_serve_ends_the_run_with_the_error() {
    let (mut machine, _) = Machine::start(served("[10]"), false, stand(0, false));
    let mut on = |input| machine.on(Duration::ZERO, input);
    assert_eq!(
        on(Input::Scraped(Ok(reading(0, 0)))).last(),
        Some(&Action::Ask(Request::ReadConfig))
    );
    let written = Ok((None, stand(1000, false)));
    assert_eq!(
        on(Input::Config(Ok(stand(0, false)))),
        [Action::Ask(Request::SetWeight(1000))]
    );
    assert_eq!(
        on(Input::WeightSet(written)).last(),
        Some(&Action::Ask(Request::ReadConfig))
    );
    assert_eq!(
        on(Input::Config(Ok(stand(1000, false)))),
        [Action::Ask(Request::AskAcks)]
    );
    let fail = Fail::Usage("users.txt: the server serves NAME.json files only".into());
    let end = on(Input::Acks(Err(fail)));
    let fail = Fail::Usage("users.txt: the server serves NAME.json files only".into());
    assert_eq!(end, [Action::Finish(Outcome::Error(fail))]);
}
