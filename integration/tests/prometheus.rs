use integration::prometheus::run_promtool;

#[test]
fn rules_pass_promtool_check() {
    let out = run_promtool(&["check", "rules", "envoy/prometheus-rules.yaml"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{}", String::from_utf8_lossy(&out.stdout));
}
