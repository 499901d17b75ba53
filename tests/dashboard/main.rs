//! The Grafana dashboard `deploy/grafana/tower-intercom.json` against what
//! the crate really exports: every component is run under a Prometheus
//! exporter set up as `examples/axum.rs` sets it up (default names,
//! histogram buckets), and the scrape is compared with the dashboard's
//! queries and with the names in `src/metrics.rs`.
//!
//! - The exporter shows exactly the metrics `src/metrics.rs` names, dots
//!   as underscores, counters and gauges by that name, histograms as
//!   `_bucket`, `_sum` and `_count`.
//! - Every query of the dashboard names only series of the scrape, with
//!   their labels (plus `job` and `instance`, which Prometheus adds), and
//!   parses (`promtool check rules`).
//! - Every exported metric has a panel; every panel a title, a description
//!   and the `${datasource}` variable as its data source.
#![cfg(all(
    feature = "metrics",
    feature = "idempotency",
    feature = "inbox-sqlite",
    feature = "client",
    feature = "reload"
))]

mod exercise;
mod promql;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use self::promql::Names;

const DASHBOARD: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/grafana/tower-intercom.json"
));
const METRICS_RS: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/metrics.rs"));
/// Labels Prometheus adds to every series it scrapes.
const TARGET_LABELS: [&str; 2] = ["job", "instance"];

/// The exported series: each sample name (`intercom_inbox_commit_duration_bucket`)
/// with the label names it carries, and each family with its type.
struct Scrape {
    text: String,
    samples: BTreeMap<String, BTreeSet<String>>,
    families: BTreeMap<String, String>,
}

fn scrape() -> &'static Scrape {
    static SCRAPE: OnceLock<Scrape> = OnceLock::new();
    SCRAPE.get_or_init(|| {
        let text = exercise::every_component();
        let mut samples: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut families = BTreeMap::new();
        for line in text.lines() {
            if let Some(family) = line.strip_prefix("# TYPE ") {
                let (name, kind) = family.split_once(' ').unwrap();
                families.insert(name.to_owned(), kind.to_owned());
            } else if !line.starts_with('#') && !line.is_empty() {
                let end = line.find(['{', ' ']).unwrap();
                let labels = samples.entry(line[..end].to_owned()).or_default();
                if line[end..].starts_with('{') {
                    labels.extend(promql::label_names(&line[end + 1..]));
                }
            }
        }
        Scrape {
            text,
            samples,
            families,
        }
    })
}

/// The metric names of `src/metrics.rs` (its `&str` constants), as the
/// exporter writes them by default: dots as underscores.
fn crate_metric_names() -> BTreeSet<String> {
    METRICS_RS
        .lines()
        .filter_map(|line| line.strip_prefix("pub const "))
        .filter_map(|line| line.split_once(": &str = \"").map(|(_, value)| value))
        .map(|value| value.trim_end_matches("\";").replace('.', "_"))
        .collect()
}

/// A panel (rows included) and the queries of its targets.
struct Panel<'a> {
    json: &'a Value,
    title: &'a str,
    queries: Vec<(&'a str, &'a str)>,
}

fn dashboard() -> Value {
    serde_json::from_str(DASHBOARD).expect("the dashboard is JSON")
}

fn panels(dashboard: &Value) -> Vec<Panel<'_>> {
    let mut panels = Vec::new();
    let mut stack: Vec<&Value> = dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(json) = stack.pop() {
        if let Some(nested) = json["panels"].as_array() {
            stack.extend(nested);
        }
        let queries = json["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|target| {
                let expr = target["expr"].as_str().unwrap_or_default();
                (expr, target["legendFormat"].as_str().unwrap_or_default())
            })
            .collect();
        let title = json["title"].as_str().unwrap_or_default();
        panels.push(Panel {
            json,
            title,
            queries,
        });
    }
    panels.sort_by_key(|panel| panel.json["id"].as_u64());
    panels
}

/// Why `expr` (with the legend `legend`) does not fit the scrape: the
/// first name or label it uses that the crate does not export.
fn unexported(expr: &str, legend: &str, scrape: &Scrape) -> Option<String> {
    let Names { metrics, grouping } = promql::names(expr);
    let mut labels: BTreeSet<&str> = TARGET_LABELS.into();
    for (metric, matchers) in &metrics {
        let exported = match scrape.samples.get(metric) {
            Some(exported) => exported,
            None if metric.is_empty() => continue, // a selector by `__name__`
            None => return Some(format!("`{metric}` is not exported")),
        };
        labels.extend(exported.iter().map(String::as_str));
        for label in matchers {
            if !exported.contains(label) && !TARGET_LABELS.contains(&label.as_str()) {
                return Some(format!("`{metric}` has no label `{label}`"));
            }
        }
    }
    if let Some(label) = grouping
        .iter()
        .find(|label| !labels.contains(label.as_str()))
    {
        return Some(format!("no metric of it has the label `{label}`"));
    }
    // The legend can show what the aggregation kept, or any label when
    // nothing was aggregated.
    let shown: BTreeSet<&str> = if grouping.is_empty() {
        labels
    } else {
        grouping.iter().map(String::as_str).collect()
    };
    promql::legend_labels(legend)
        .into_iter()
        .find(|label| !shown.contains(label.as_str()))
        .map(|label| format!("the legend shows `{label}`, which the query does not keep"))
}

#[test]
fn the_exporter_writes_the_names_of_src_metrics_rs() {
    let scrape = scrape();
    let declared = crate_metric_names();
    let exported: BTreeSet<String> = scrape.families.keys().cloned().collect();
    assert_eq!(
        exported, declared,
        "the scrape's families (left) against src/metrics.rs (right):\n{}",
        scrape.text
    );
    // Each sample belongs to the family whose name is its longest prefix.
    let mut written: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for sample in scrape.samples.keys() {
        let family = scrape
            .families
            .keys()
            .filter(|family| sample.starts_with(family.as_str()))
            .max_by_key(|family| family.len())
            .unwrap_or_else(|| panic!("{sample} belongs to no family"));
        written.entry(family).or_default().insert(sample.clone());
    }
    for (family, kind) in &scrape.families {
        let expected: BTreeSet<String> = match kind.as_str() {
            "histogram" => ["_bucket", "_sum", "_count"]
                .iter()
                .map(|suffix| format!("{family}{suffix}"))
                .collect(),
            "counter" | "gauge" => [family.clone()].into(),
            other => panic!("{family} is a {other}: a summary cannot be aggregated"),
        };
        assert_eq!(written[family.as_str()], expected, "{family} ({kind})");
    }
}

#[test]
fn every_panel_queries_only_what_the_crate_exports() {
    let scrape = scrape();
    let dashboard = dashboard();
    let mut wrong = Vec::new();
    for panel in panels(&dashboard) {
        for (expr, legend) in &panel.queries {
            if let Some(why) = unexported(expr, legend, scrape) {
                wrong.push(format!("{:?}: {why}\n  {expr}", panel.title));
            }
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        let query = variable["query"]["query"].as_str().unwrap_or_default();
        // `label_values(SELECTOR, LABEL)`: the selector is PromQL.
        let selector = query
            .strip_prefix("label_values(")
            .and_then(|rest| rest.rsplit_once(','))
            .map_or(query, |(selector, _)| selector);
        if let Some(why) = unexported(selector, "", scrape) {
            wrong.push(format!("variable {}: {why}\n  {query}", variable["name"]));
        }
    }
    assert!(
        wrong.is_empty(),
        "{}\n\nexported: {:?}",
        wrong.join("\n"),
        scrape.samples
    );
}

#[test]
fn every_exported_metric_has_a_panel() {
    let scrape = scrape();
    let dashboard = dashboard();
    let queried: BTreeSet<String> = panels(&dashboard)
        .iter()
        .flat_map(|panel| &panel.queries)
        .flat_map(|(expr, _)| promql::names(expr).metrics)
        .map(|(metric, _)| metric)
        .collect();
    let missing: Vec<&String> = scrape
        .families
        .keys()
        .filter(|family| {
            ["", "_bucket", "_sum", "_count"]
                .iter()
                .all(|suffix| !queried.contains(&format!("{family}{suffix}")))
        })
        .collect();
    assert!(missing.is_empty(), "no panel shows {missing:?}");
}

#[test]
fn the_dashboard_imports_anywhere_and_explains_each_panel() {
    let dashboard = dashboard();
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    let datasource = variables
        .iter()
        .find(|variable| variable["name"] == "datasource")
        .expect("a datasource variable");
    assert_eq!(datasource["type"], "datasource");
    assert_eq!(datasource["query"], "prometheus");
    assert!(!DASHBOARD.contains("\"__inputs\""));
    let uses_variable = |json: &Value| {
        json["datasource"]["uid"] == "${datasource}" && json["datasource"]["type"] == "prometheus"
    };
    let mut ids = BTreeSet::new();
    for panel in panels(&dashboard) {
        let title = panel.title;
        assert!(!title.is_empty(), "a panel without a title: {}", panel.json);
        assert!(
            ids.insert(panel.json["id"].as_u64().unwrap()),
            "{title}: id"
        );
        let grid = &panel.json["gridPos"];
        let right = grid["x"].as_u64().unwrap() + grid["w"].as_u64().unwrap();
        assert!(right <= 24, "{title}: wider than the grid");
        if panel.json["type"] == "row" {
            continue;
        }
        let description = panel.json["description"].as_str().unwrap_or_default();
        assert!(description.len() > 40, "{title}: no description");
        assert!(uses_variable(panel.json), "{title}: data source");
        assert!(!panel.queries.is_empty(), "{title}: no query");
        for target in panel.json["targets"].as_array().unwrap() {
            assert!(uses_variable(target), "{title}: a target's data source");
        }
    }
    for variable in variables
        .iter()
        .filter(|variable| variable["type"] == "query")
    {
        assert!(uses_variable(variable), "{}", variable["name"]);
    }
}

/// Every query parses: `promtool check rules` on one recording rule per
/// query, Grafana's variables replaced by what they stand for.
#[test]
fn every_panel_query_is_valid_promql() {
    let dashboard = dashboard();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let mut count = 0;
    for panel in panels(&dashboard) {
        for (index, (expr, _)) in panel.queries.iter().enumerate() {
            let expr = expr
                .replace("$__rate_interval", "5m")
                .replace("$job", ".+")
                .replace('\'', "''");
            let id = panel.json["id"].as_u64().unwrap();
            rules.push_str(&format!(
                "      - record: dashboard:panel_{id}_{index}\n        expr: '{expr}'\n"
            ));
            count += 1;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dashboard.yml");
    std::fs::write(&path, &rules).unwrap();
    let output = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .expect("promtool on PATH (./scripts/test.sh installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}\n{rules}");
    assert!(
        text.contains(&format!("SUCCESS: {count} rules found")),
        "{text}"
    );
}
