//! The example Prometheus alert rules load and fire as documented:
//! `promtool check rules` and the rule unit tests in
//! `deploy/prometheus/alerts.test.yml`. `promtool` must be on `PATH`
//! (`./scripts/test.sh` installs Debian's `prometheus` package): without it
//! this test fails, it never skips.

use std::process::Command;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus");

fn promtool(args: &[&str]) -> String {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(DIR)
        .output()
        .expect("promtool on PATH (./scripts/test.sh installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn alert_rules_are_valid() {
    let text = promtool(&["check", "rules", "alerts.yml"]);
    assert!(text.contains("SUCCESS: 7 rules found"), "{text}");
}

#[test]
fn alert_rules_fire_as_their_unit_tests_expect() {
    let text = promtool(&["test", "rules", "alerts.test.yml"]);
    assert!(text.contains("SUCCESS"), "{text}");
}
