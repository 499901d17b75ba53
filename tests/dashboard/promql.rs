//! What a PromQL expression names, found by a small lexer: enough for the
//! dashboard's queries (selectors, functions, aggregations with `by`,
//! ranges, numbers, Grafana's `$variables`), not a full parser (`promtool`
//! checks the syntax).

/// The names an expression uses.
#[derive(Debug, Default)]
pub struct Names {
    /// Each metric selected, with the label names its matchers use; a
    /// selector without a metric name (`{__name__=~"…"}`) has an empty one.
    pub metrics: Vec<(String, Vec<String>)>,
    /// The label names of `by`, `without`, `on`, `ignoring`,
    /// `group_left` and `group_right`.
    pub grouping: Vec<String>,
}

const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];
const GROUPINGS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
const KEYWORDS: &[&str] = &[
    "and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "Inf", "NaN",
];

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The index after the string literal starting at `start`.
fn skip_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() && chars[i] != quote {
        i += if chars[i] == '\\' && quote != '`' {
            2
        } else {
            1
        };
    }
    i + 1
}

/// The index of the first `close` at or after `start`, outside strings.
fn find(chars: &[char], start: usize, close: char) -> usize {
    let mut i = start;
    while i < chars.len() && chars[i] != close {
        i = if matches!(chars[i], '"' | '\'' | '`') {
            skip_string(chars, i)
        } else {
            i + 1
        };
    }
    i
}

fn skip_spaces(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() && chars[i].is_whitespace() {
        i += 1;
    }
    i
}

/// The label names of matchers or of a sample's labels
/// (`a="x",b!~"y"`, up to the closing brace).
pub fn label_names(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    while i < chars.len() && chars[i] != '}' {
        i = skip_spaces(&chars, i);
        let start = i;
        while i < chars.len() && is_name(chars[i]) {
            i += 1;
        }
        if i > start {
            names.push(chars[start..i].iter().collect());
        }
        // The operator, the value, the comma.
        while i < chars.len() && !matches!(chars[i], '"' | '\'' | '`' | '}') {
            i += 1;
        }
        if i < chars.len() && chars[i] != '}' {
            i = skip_string(&chars, i);
        }
        i = skip_spaces(&chars, i);
        if i < chars.len() && chars[i] == ',' {
            i += 1;
        }
    }
    names
}

/// The labels a Grafana legend shows (`{{outcome}} {{ secret }}`).
pub fn legend_labels(legend: &str) -> Vec<String> {
    legend
        .split("{{")
        .skip(1)
        .filter_map(|part| part.split_once("}}"))
        .map(|(label, _)| label.trim().to_owned())
        .collect()
}

/// The metrics, matchers and groupings of `expr`.
pub fn names(expr: &str) -> Names {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Names::default();
    // The metric just read, whose matchers may follow.
    let mut last_metric: Option<usize> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if matches!(c, '"' | '\'' | '`') {
            i = skip_string(&chars, i);
            last_metric = None;
        } else if c == '{' {
            let end = find(&chars, i, '}');
            let text: String = chars[i + 1..end.min(chars.len())].iter().collect();
            let labels = label_names(&text);
            match last_metric.take() {
                Some(metric) => names.metrics[metric].1.extend(labels),
                None => names.metrics.push((String::new(), labels)),
            }
            i = end + 1;
        } else if c == '[' {
            // A range or subquery: durations and variables only.
            i = find(&chars, i, ']') + 1;
            last_metric = None;
        } else if c == '$' {
            // A Grafana variable outside a string: `$name` or `${name}`.
            i += 1;
            if chars.get(i) == Some(&'{') {
                i = find(&chars, i, '}') + 1;
            } else {
                while i < chars.len() && is_name(chars[i]) {
                    i += 1;
                }
            }
            last_metric = None;
        } else if c.is_ascii_digit() || c == '.' {
            // A number or a duration (`0.99`, `1e3`, `5m`).
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            last_metric = None;
        } else if is_name_start(c) {
            let start = i;
            while i < chars.len() && is_name(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = skip_spaces(&chars, i);
            last_metric = None;
            if GROUPINGS.contains(&word.as_str()) {
                if chars.get(next) == Some(&'(') {
                    let end = find(&chars, next, ')');
                    let list: String = chars[next + 1..end.min(chars.len())].iter().collect();
                    names.grouping.extend(
                        list.split(',')
                            .map(str::trim)
                            .filter(|label| !label.is_empty())
                            .map(str::to_owned),
                    );
                    i = end + 1;
                }
            } else if chars.get(next) != Some(&'(')
                && !AGGREGATIONS.contains(&word.as_str())
                && !KEYWORDS.contains(&word.as_str())
            {
                names.metrics.push((word, Vec::new()));
                last_metric = Some(names.metrics.len() - 1);
            }
        } else {
            // An operator, a comma or a parenthesis.
            i += 1;
            last_metric = None;
        }
    }
    names
}

#[test]
fn names_of_a_quantile_query() {
    let expr = r#"histogram_quantile(0.99, sum by (le, outcome) (rate(a_bucket{job=~"$job", outcome!="x,y}"}[$__rate_interval])))"#;
    let names = names(expr);
    assert_eq!(
        names.metrics,
        [(
            "a_bucket".to_owned(),
            vec!["job".to_owned(), "outcome".to_owned()]
        )]
    );
    assert_eq!(names.grouping, ["le", "outcome"]);
}

#[test]
fn names_of_arithmetic_offsets_and_bare_selectors() {
    let names = names(r#"max(a) > 90 * 86400 or b unless c offset 10m and {__name__=~"d.+"}"#);
    let metrics: Vec<&str> = names.metrics.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(metrics, ["a", "b", "c", ""]);
    assert_eq!(names.metrics[3].1, ["__name__"]);
    assert_eq!(legend_labels("{{a}}, x {{ b }}"), ["a", "b"]);
}
