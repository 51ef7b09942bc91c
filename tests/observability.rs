//! The operations kit against the service's own metric catalogue: every metric the Grafana
//! dashboard (`deploy/grafana/stockwatch.json`) and the Prometheus rules
//! (`deploy/prometheus/rules.yml`) use must exist in [`CATALOGUE`], with the labels they
//! select, group or print declared for it and the label values they match on exported by the
//! service. Recording rules are resolved to their sources; histogram `_bucket`, `_sum` and
//! `_count` series to their histogram. Also: every alert carries a severity, a summary, a
//! description and a runbook link whose anchor is a section of `docs/runbook.md`, and has a
//! promtool unit test where it fires and one where it does not.
//!
//! The PromQL reading here is deliberately small (selectors, matchers, grouping clauses): it
//! knows the style of our own files, and promtool checks their syntax.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;
use stockwatch::telemetry::{MetricKind, Metrics, CATALOGUE};

const RUNBOOK_BASE: &str = "https://github.com/retail/stockwatch/blob/main/docs/runbook.md#";

/// Labels Prometheus adds to every scraped series.
const TARGET_LABELS: &[&str] = &["job", "instance"];

/// Label values that only exist at run time (partition numbers, versions): not checked.
const DYNAMIC_LABELS: &[&str] = &["partition", "version", "model_version"];

/// Metrics the dashboard must show (issue 6: throughput by type, rejects by reason, lag, batch
/// duration, produce-to-alert latency, keys and state bytes, alerts by kind and status, open
/// alerts, rolling AUC and Brier, restore duration, transactions, paused partitions).
const DASHBOARD_MUST_SHOW: &[&str] = &[
    "stockwatch_events_consumed_total",
    "stockwatch_events_rejected_total",
    "stockwatch_consumer_lag_messages",
    "stockwatch_batch_duration_seconds",
    "stockwatch_end_to_end_latency_seconds",
    "stockwatch_tracked_keys",
    "stockwatch_state_bytes",
    "stockwatch_alerts_total",
    "stockwatch_open_alerts",
    "stockwatch_model_rolling_auc",
    "stockwatch_model_rolling_brier",
    "stockwatch_restore_duration_seconds",
    "stockwatch_transactions_total",
    "stockwatch_input_partitions_paused",
];

fn repo_file(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// A small PromQL reader.

/// A label matcher `name op "value"`.
#[derive(Debug, Clone)]
struct Matcher {
    label: String,
    op: String,
    value: String,
}

/// What one expression uses.
#[derive(Debug, Default)]
struct Uses {
    /// Metric selectors (name, matchers), in order.
    selectors: Vec<(String, Vec<Matcher>)>,
    /// Labels named in `by`, `without`, `on`, `ignoring`, `group_left`, `group_right`, in order.
    grouping: Vec<String>,
    /// Whether the expression computes a histogram quantile (which drops `le`).
    quantile: bool,
}

const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "atan2",
];
const GROUPING: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Reads the selectors and grouping labels of a PromQL expression.
fn parse_promql(expr: &str) -> Uses {
    let s: Vec<char> = expr.chars().collect();
    let mut uses = Uses::default();
    let mut i = 0;
    let skip_ws = |mut j: usize| {
        while j < s.len() && s[j].is_whitespace() {
            j += 1;
        }
        j
    };
    while i < s.len() {
        let c = s[i];
        if c == '"' || c == '\'' || c == '`' {
            // A string outside a selector (a function argument): skip it.
            i += 1;
            while i < s.len() && s[i] != c {
                i += if s[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '[' {
            // A range or subquery duration (may hold a Grafana variable).
            while i < s.len() && s[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c == '$' {
            // A Grafana variable.
            i += 1;
            while i < s.len() && is_ident(s[i]) {
                i += 1;
            }
        } else if c.is_ascii_digit() || (c == '.' && i + 1 < s.len() && s[i + 1].is_ascii_digit()) {
            // A number (1e6, 0.99).
            while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == '.') {
                i += 1;
            }
        } else if is_ident_start(c) {
            let start = i;
            while i < s.len() && is_ident(s[i]) {
                i += 1;
            }
            let word: String = s[start..i].iter().collect();
            let next = skip_ws(i);
            let lower = word.to_ascii_lowercase();
            if GROUPING.contains(&lower.as_str()) {
                if next < s.len() && s[next] == '(' {
                    let end = next + s[next..].iter().position(|&c| c == ')').expect("closing )");
                    let list: String = s[next + 1..end].iter().collect();
                    uses.grouping.extend(
                        list.split(',')
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .map(str::to_owned),
                    );
                    i = end + 1;
                }
            } else if KEYWORDS.contains(&lower.as_str()) || lower == "inf" || lower == "nan" {
                // An operator or a constant.
            } else if (next < s.len() && s[next] == '(') || followed_by_grouping(&s, next) {
                if word == "histogram_quantile" {
                    uses.quantile = true;
                }
                // A function or an aggregation; its arguments are read as we go.
            } else {
                let mut matchers = Vec::new();
                if next < s.len() && s[next] == '{' {
                    let end = next + s[next..].iter().position(|&c| c == '}').expect("closing }");
                    let body: String = s[next + 1..end].iter().collect();
                    matchers = parse_matchers(&body);
                    i = end + 1;
                }
                uses.selectors.push((word, matchers));
            }
        } else {
            i += 1;
        }
    }
    uses
}

/// Whether `by` or `without` starts at `at` (`sum by (job) (x)`: `sum` is an aggregation).
fn followed_by_grouping(s: &[char], at: usize) -> bool {
    ["by", "without"].iter().any(|kw| {
        let end = at + kw.len();
        end < s.len()
            && s[at..end]
                .iter()
                .collect::<String>()
                .eq_ignore_ascii_case(kw)
            && !is_ident(s[end])
    })
}

/// `a="x", b=~"y|z"` → matchers (values hold no comma or quote in our files).
fn parse_matchers(body: &str) -> Vec<Matcher> {
    body.split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(|m| {
            let op_at = m
                .find(['=', '!'])
                .unwrap_or_else(|| panic!("matcher {m:?}"));
            let label = m[..op_at].trim().to_owned();
            let rest = &m[op_at..];
            let op_len =
                if rest.starts_with("=~") || rest.starts_with("!~") || rest.starts_with("!=") {
                    2
                } else {
                    1
                };
            let value = rest[op_len..].trim().trim_matches('"').to_owned();
            Matcher {
                label,
                op: rest[..op_len].to_owned(),
                value,
            }
        })
        .collect()
}

#[test]
fn promql_reader_finds_selectors_matchers_and_grouping() {
    let u = parse_promql(
        r#"histogram_quantile(0.99, sum by (job, le) (rate(x_bucket{job=~"$job", a="b"}[$__rate_interval])))
           > 1e6 and on (job) y:z:w unless sum(m) without(instance) / count(up == 1)"#,
    );
    let names: Vec<&str> = u.selectors.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["x_bucket", "y:z:w", "m", "up"]);
    assert_eq!(u.grouping, ["job", "le", "job", "instance"]);
    assert!(u.quantile);
    let m = &u.selectors[0].1;
    assert_eq!((m[0].label.as_str(), m[0].op.as_str()), ("job", "=~"));
    assert_eq!((m[1].label.as_str(), m[1].value.as_str()), ("a", "b"));
}

// ---------------------------------------------------------------------------------------------
// The catalogue, the service's label values, recording rules.

/// Resolves series names to the catalogue and knows what labels each carries.
struct Names {
    catalogue: BTreeMap<&'static str, (MetricKind, Vec<&'static str>)>,
    /// Recording rule name → its expression.
    recorded: BTreeMap<String, String>,
    /// (metric family, label) → values the service exports (label children are created at
    /// start for every bounded label).
    values: BTreeMap<(String, String), BTreeSet<String>>,
}

/// A resolved series name: the catalogue metrics behind it, and the labels it carries.
#[derive(Debug)]
struct Resolved {
    sources: BTreeSet<String>,
    labels: BTreeSet<String>,
}

impl Names {
    fn new(recorded: BTreeMap<String, String>) -> Self {
        let catalogue = CATALOGUE
            .iter()
            .map(|(n, k, l)| (*n, (*k, l.to_vec())))
            .collect();
        let text = Metrics::new("test-model")
            .expect("metrics")
            .encode()
            .expect("encode");
        let mut values: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((name, rest)) = line.split_once('{') else {
                continue;
            };
            let body = &rest[..rest.find('}').expect("closing }")];
            for m in parse_matchers(body) {
                values
                    .entry((name.to_owned(), m.label))
                    .or_default()
                    .insert(m.value);
            }
        }
        Names {
            catalogue,
            recorded,
            values,
        }
    }

    /// The catalogue metrics and labels behind a series name, or why it is unknown.
    fn resolve(&self, name: &str) -> Result<Resolved, String> {
        let with_target = |labels: &[&str]| -> BTreeSet<String> {
            labels
                .iter()
                .chain(TARGET_LABELS)
                .map(|l| l.to_string())
                .collect()
        };
        if name == "up" {
            return Ok(Resolved {
                sources: BTreeSet::new(),
                labels: with_target(&[]),
            });
        }
        if let Some((kind, labels)) = self.catalogue.get(name) {
            if *kind == MetricKind::Histogram {
                return Err(format!(
                    "{name} is a histogram: select {name}_bucket, _sum or _count"
                ));
            }
            return Ok(Resolved {
                sources: BTreeSet::from([name.to_owned()]),
                labels: with_target(labels),
            });
        }
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix) {
                if let Some((MetricKind::Histogram, labels)) = self.catalogue.get(base) {
                    let mut labels = with_target(labels);
                    if suffix == "_bucket" {
                        labels.insert("le".to_owned());
                    }
                    return Ok(Resolved {
                        sources: BTreeSet::from([base.to_owned()]),
                        labels,
                    });
                }
            }
        }
        if let Some(expr) = self.recorded.get(name) {
            let uses = parse_promql(expr);
            let mut sources = BTreeSet::new();
            let mut inner = BTreeSet::new();
            for (n, _) in &uses.selectors {
                let r = self
                    .resolve(n)
                    .map_err(|e| format!("recording rule {name}: {e}"))?;
                sources.extend(r.sources);
                inner.extend(r.labels);
            }
            // Our recording rules aggregate once, outermost: the first grouping clause is the
            // labels they keep (minus `le` under a quantile); a plain ratio keeps its inputs'.
            let mut labels: BTreeSet<String> = match uses.grouping.first() {
                Some(_) => {
                    let first = expr.find(" by (").map(|at| {
                        let list = &expr[at + 5..];
                        list[..list.find(')').expect("closing )")].to_owned()
                    });
                    first
                        .map(|l| l.split(',').map(|x| x.trim().to_owned()).collect())
                        .unwrap_or(inner)
                }
                None => inner,
            };
            if uses.quantile {
                labels.remove("le");
            }
            return Ok(Resolved { sources, labels });
        }
        Err(format!(
            "{name} is not in the metric catalogue (src/telemetry/metrics.rs) nor a recording rule"
        ))
    }

    /// Problems with one expression (empty: fine). `legend` labels are those a legend or an
    /// annotation prints.
    fn check(&self, what: &str, expr: &str, printed: &[String]) -> (Vec<String>, BTreeSet<String>) {
        let uses = parse_promql(expr);
        let mut errors = Vec::new();
        let mut sources = BTreeSet::new();
        let mut available: BTreeSet<String> = BTreeSet::new();
        if uses.selectors.is_empty() {
            errors.push(format!("{what}: no metric in {expr:?}"));
        }
        for (name, matchers) in &uses.selectors {
            let r = match self.resolve(name) {
                Ok(r) => r,
                Err(e) => {
                    errors.push(format!("{what}: {e}"));
                    continue;
                }
            };
            for m in matchers {
                if !r.labels.contains(&m.label) {
                    errors.push(format!(
                        "{what}: {name} has no label {:?} (labels: {:?})",
                        m.label, r.labels
                    ));
                    continue;
                }
                // A literal value of a bounded label must be one the service exports.
                let literal = (m.op == "=" || m.op == "!=") && !m.value.contains('$');
                if literal && !DYNAMIC_LABELS.contains(&m.label.as_str()) {
                    for src in &r.sources {
                        if let Some(known) = self.values.get(&(src.clone(), m.label.clone())) {
                            if !known.contains(&m.value) {
                                errors.push(format!(
                                    "{what}: {src} has no {}={:?} (the service exports {known:?})",
                                    m.label, m.value
                                ));
                            }
                        }
                    }
                }
            }
            sources.extend(r.sources);
            available.extend(r.labels);
        }
        for l in uses.grouping.iter().chain(printed) {
            if !available.contains(l) {
                errors.push(format!(
                    "{what}: label {l:?} is carried by none of its metrics (labels: {available:?}) in {expr:?}"
                ));
            }
        }
        (errors, sources)
    }
}

/// `{{ $labels.x }}` (annotations) and `{{x}}` (Grafana legends) → label names.
fn printed_labels(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(at) = rest.find("{{") {
        let Some(end) = rest[at..].find("}}") else {
            break;
        };
        let inner = rest[at + 2..at + end].trim();
        if let Some(l) = inner.strip_prefix("$labels.") {
            out.push(l.trim().to_owned());
        } else if !inner.starts_with('$') && inner.chars().all(is_ident) {
            out.push(inner.to_owned());
        }
        rest = &rest[at + end + 2..];
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The files.

#[derive(Debug, serde::Deserialize)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(Debug, serde::Deserialize)]
struct RuleGroup {
    rules: Vec<Rule>,
}

#[derive(Debug, serde::Deserialize)]
struct Rule {
    record: Option<String>,
    alert: Option<String>,
    expr: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

fn rules() -> Vec<Rule> {
    let file: RuleFile =
        serde_norway::from_str(&repo_file("deploy/prometheus/rules.yml")).expect("rules.yml");
    file.groups.into_iter().flat_map(|g| g.rules).collect()
}

fn recorded(rules: &[Rule]) -> BTreeMap<String, String> {
    rules
        .iter()
        .filter_map(|r| r.record.clone().map(|n| (n, r.expr.clone())))
        .collect()
}

/// Every (what, expression, printed labels) of the dashboard: panel targets (rows nest
/// panels) and template variable queries.
fn dashboard_exprs(dash: &Value) -> Vec<(String, String, Vec<String>)> {
    fn panels(list: &Value, out: &mut Vec<(String, String, Vec<String>)>) {
        for p in list.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("?");
            for t in p["targets"].as_array().into_iter().flatten() {
                let expr = t["expr"].as_str().unwrap_or_default();
                let legend = t["legendFormat"].as_str().unwrap_or_default();
                out.push((
                    format!("panel {title:?} target {}", t["refId"]),
                    expr.to_owned(),
                    printed_labels(legend),
                ));
            }
            panels(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    panels(&dash["panels"], &mut out);
    for v in dash["templating"]["list"].as_array().into_iter().flatten() {
        let q = match &v["query"] {
            Value::String(s) => s.clone(),
            Value::Object(o) => o
                .get("query")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            _ => continue,
        };
        // label_values(selector, label): the label must be on the selected metric.
        if let Some(args) = q
            .strip_prefix("label_values(")
            .and_then(|a| a.strip_suffix(')'))
        {
            let (selector, label) = args.rsplit_once(',').expect("label_values(metric, label)");
            out.push((
                format!("variable {}", v["name"]),
                selector.trim().to_owned(),
                vec![label.trim().to_owned()],
            ));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn rules_use_only_catalogued_metrics_and_labels() {
    let rules = rules();
    let names = Names::new(recorded(&rules));
    let mut errors = Vec::new();
    for r in &rules {
        let what = r
            .record
            .as_ref()
            .map(|n| format!("recording rule {n}"))
            .or_else(|| r.alert.as_ref().map(|n| format!("alert {n}")))
            .expect("record or alert");
        let printed: Vec<String> = r
            .annotations
            .values()
            .flat_map(|a| printed_labels(a))
            .collect();
        // Labels the rule itself attaches may be printed too.
        let printed: Vec<String> = printed
            .into_iter()
            .filter(|l| !r.labels.contains_key(l))
            .collect();
        errors.extend(names.check(&what, &r.expr, &printed).0);
    }
    assert!(errors.is_empty(), "rules.yml:\n{}", errors.join("\n"));
}

#[test]
fn dashboard_uses_only_catalogued_metrics_and_labels() {
    let rules = rules();
    let names = Names::new(recorded(&rules));
    let dash: Value =
        serde_json::from_str(&repo_file("deploy/grafana/stockwatch.json")).expect("dashboard");
    let exprs = dashboard_exprs(&dash);
    assert!(exprs.len() > 20, "dashboard targets not found");
    let mut errors = Vec::new();
    let mut shown = BTreeSet::new();
    for (what, expr, printed) in &exprs {
        let (e, sources) = names.check(what, expr, printed);
        errors.extend(e);
        shown.extend(sources);
    }
    for m in DASHBOARD_MUST_SHOW {
        if !shown.contains(*m) {
            errors.push(format!("the dashboard shows no {m}"));
        }
    }
    // The data source is a variable, so the dashboard imports into any Grafana.
    let vars: Vec<&str> = dash["templating"]["list"]
        .as_array()
        .expect("templating")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert!(vars.contains(&"datasource"), "no datasource variable");
    fn datasources(list: &Value, errors: &mut Vec<String>) {
        for p in list.as_array().into_iter().flatten() {
            if p["type"] != "row" && p["datasource"]["uid"] != "${datasource}" {
                errors.push(format!("panel {} does not use ${{datasource}}", p["title"]));
            }
            datasources(&p["panels"], errors);
        }
    }
    datasources(&dash["panels"], &mut errors);
    assert!(errors.is_empty(), "stockwatch.json:\n{}", errors.join("\n"));
}

/// GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn alerts_are_labelled_annotated_and_in_the_runbook() {
    let runbook = repo_file("docs/runbook.md");
    let sections: BTreeSet<String> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(anchor)
        .collect();
    let mut errors = Vec::new();
    let mut alerts = BTreeSet::new();
    for r in rules().iter() {
        let Some(name) = &r.alert else { continue };
        alerts.insert(name.clone());
        match r.labels.get("severity").map(String::as_str) {
            Some("critical" | "warning" | "info") => {}
            other => errors.push(format!("{name}: severity {other:?}")),
        }
        for key in ["summary", "description", "runbook_url"] {
            if r.annotations.get(key).is_none_or(|v| v.trim().is_empty()) {
                errors.push(format!("{name}: no {key} annotation"));
            }
        }
        match r
            .annotations
            .get("runbook_url")
            .and_then(|u| u.strip_prefix(RUNBOOK_BASE))
        {
            Some(a) if sections.contains(a) => {}
            Some(a) => errors.push(format!(
                "{name}: runbook anchor #{a} is no `## ` section of docs/runbook.md"
            )),
            None => errors.push(format!(
                "{name}: runbook_url does not start with {RUNBOOK_BASE}"
            )),
        }
        if anchor(name)
            != r.annotations["runbook_url"]
                .rsplit('#')
                .next()
                .unwrap_or_default()
        {
            errors.push(format!(
                "{name}: runbook section should be named after the alert"
            ));
        }
    }
    assert!(alerts.len() >= 8, "alerts not found: {alerts:?}");
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn every_alert_has_a_firing_and_a_silent_promtool_test() {
    let tests: serde_norway::Value =
        serde_norway::from_str(&repo_file("deploy/prometheus/rules_test.yml")).expect("tests");
    let (mut fires, mut silent) = (BTreeSet::new(), BTreeSet::new());
    for t in tests["tests"].as_sequence().expect("tests") {
        for case in t["alert_rule_test"].as_sequence().into_iter().flatten() {
            let name = case["alertname"].as_str().expect("alertname").to_owned();
            let expected = case["exp_alerts"].as_sequence().map_or(0, Vec::len);
            if expected > 0 {
                fires.insert(name);
            } else {
                silent.insert(name);
            }
        }
    }
    for r in rules() {
        let Some(name) = r.alert else { continue };
        assert!(
            fires.contains(&name),
            "{name}: no promtool test where it fires"
        );
        assert!(
            silent.contains(&name),
            "{name}: no promtool test where it stays silent"
        );
    }
}
