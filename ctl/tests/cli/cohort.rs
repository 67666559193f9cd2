//! `cohort`: counts per cluster and the move matrix of proposed weights,
//! checked against the bucketing function itself.

use turnout::bucket::Bucket;

use crate::{ctl, file, scratch, users_config};

fn users() -> Vec<String> {
    let mut users: Vec<String> = ["alice", "bob", "qa-1", "qa-2"]
        .into_iter()
        .map(String::from)
        .collect();
    users.extend((0..500).map(|i| format!("user-{i}")));
    users
}

fn bucket(user: &str) -> u16 {
    Bucket::of(b"users", user.as_bytes()).0
}

fn pinned(user: &str) -> bool {
    user.starts_with("qa-")
}

/// The numbers of the row that starts with `label`, after `from` (a line
/// index) in `out`.
fn row(out: &str, from: &str, label: &str) -> Vec<usize> {
    let after = out
        .split_once(from)
        .unwrap_or_else(|| panic!("no {from:?} in:\n{out}"))
        .1;
    let line = after
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no {label} row in:\n{out}"));
    line.trim_start()[label.len()..]
        .split_whitespace()
        .filter_map(|t| t.parse().ok())
        .collect()
}

fn run(args: &[&str]) -> crate::Run {
    let dir = scratch("cohort");
    let config = file(&dir, "c.json", &users_config("25", ""));
    // A blank line and a repeated user are not counted twice.
    let list = users().join("\n") + "\n\nalice\r\n";
    let users = file(&dir, "users.txt", &list);
    let mut all = vec!["cohort", config.as_str(), "--users", users.as_str()];
    all.extend_from_slice(args);
    ctl(&all)
}

#[test]
fn counts_users_per_cluster_pins_as_pins() {
    let out = run(&[]).code(0).stdout;
    let users = users();
    assert!(
        out.starts_with(&format!("split users: {} users", users.len())),
        "{out}"
    );
    let to_new = users
        .iter()
        .filter(|u| !pinned(u) && bucket(u) < 2500)
        .count();
    let stable = users.len() - 2 - to_new;
    // users, share (two tokens: "24.80 %" has no number after the %), bucket, pin
    assert_eq!(
        row(&out, "split users", "legacy (stable)"),
        [stable, stable, 0]
    );
    assert_eq!(row(&out, "split users", "fastapi"), [to_new + 2, to_new, 2]);
    assert_eq!((bucket("alice"), bucket("bob")), (201, 4352));
}

#[test]
fn raising_a_target_only_moves_users_into_it() {
    let out = run(&["--set", "users.fastapi=50"]).code(0).stdout;
    let users = users();
    let keyed: Vec<&String> = users.iter().filter(|u| !pinned(u)).collect();
    let movers = keyed
        .iter()
        .filter(|u| (2500..5000).contains(&bucket(u)))
        .count();
    let stay_legacy = keyed.iter().filter(|u| bucket(u) >= 5000).count();
    let stay_new = keyed.iter().filter(|u| bucket(u) < 2500).count() + 2;
    assert!(out.contains("with users.fastapi=50:\n"), "{out}");
    assert_eq!(row(&out, "moves", "legacy"), [stay_legacy, movers]);
    assert_eq!(row(&out, "moves", "fastapi"), [0, stay_new]);
    assert!(
        out.contains(&format!(
            "{movers} of {} users move ({:.2} %): legacy → fastapi {movers}\n",
            users.len(),
            movers as f64 * 100.0 / users.len() as f64
        )),
        "{out}"
    );
}

#[test]
fn lowering_a_target_only_moves_users_out_of_it() {
    let out = run(&["--set", "users.fastapi=10", "--split", "users"])
        .code(0)
        .stdout;
    let movers = users()
        .iter()
        .filter(|u| !pinned(u) && (1000..2500).contains(&bucket(u)))
        .count();
    assert_eq!(row(&out, "moves", "legacy")[1], 0);
    assert_eq!(row(&out, "moves", "fastapi")[0], movers);
}

#[test]
fn proposals_that_would_not_validate_are_refused() {
    let run = run(&["--set", "users.fastapi=140"]).code(1);
    assert!(
        run.stderr
            .contains("\nsplits[0].targets[0].weight: 140 is not between 0 and 100\n"),
        "{}",
        run.stderr
    );
    let run = self::run(&["--set", "users.legacy=10"]).code(1);
    assert!(run.stderr.contains("\"legacy\" is the stable cluster"));
    self::run(&["--set", "orders.fastapi=10"]).code(2);
    self::run(&["--set", "users.fastapi"]).code(2);
    self::run(&["--split", "orders"]).code(2);
}
