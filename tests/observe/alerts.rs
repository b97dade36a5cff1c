//! The Prometheus alert rules in docs/prometheus/polystore-alerts.yml: the file has the shape
//! Prometheus loads (`promtool check rules` is not used: Debian's prometheus package is ~100 MB
//! installed), its expressions are balanced, and every metric and label they name is one
//! polystore really emits — checked against a recorder after a workload that exercises each.

use std::collections::BTreeSet;
use std::time::Duration;

use polystore::cache::{Cache, MemoryBackend};
use polystore::observe::{HealthReport, record_health_metrics, record_pool_metrics};
use polystore::prelude::*;
use yaml_rust2::{Yaml, YamlLoader};

use crate::support::Recording;

const RULES: &str = include_str!("../../docs/prometheus/polystore-alerts.yml");

/// One alerting rule as read from the file.
#[derive(Debug)]
struct Rule {
    alert: String,
    expr: String,
    annotations: Vec<String>,
}

/// Reads the file, failing on anything Prometheus would refuse or that a rule must have.
fn rules(text: &str) -> Result<Vec<Rule>, String> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| format!("not YAML: {e}"))?;
    let [doc] = docs.as_slice() else { return Err(format!("{} YAML documents, want 1", docs.len())) };
    let groups = doc["groups"].as_vec().ok_or("no `groups` list")?;
    let mut out: Vec<Rule> = Vec::new();
    let mut group_names = BTreeSet::new();
    for g in groups {
        let name = g["name"].as_str().ok_or("a group without `name`")?;
        if !group_names.insert(name) {
            return Err(format!("two groups named {name}"));
        }
        for rule in g["rules"].as_vec().ok_or_else(|| format!("group {name}: no `rules` list"))? {
            let map = rule.as_hash().ok_or("a rule that is not a mapping")?;
            for key in map.keys() {
                let key = key.as_str().unwrap_or("?");
                if !["alert", "expr", "for", "labels", "annotations", "keep_firing_for"].contains(&key) {
                    return Err(format!("unknown rule key {key:?}"));
                }
            }
            let alert = rule["alert"].as_str().ok_or("a rule without `alert` (only alerting rules here)")?;
            let valid_name = alert.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && alert.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid_name || out.iter().any(|r| r.alert == alert) {
                return Err(format!("alert name {alert:?} is invalid or repeated"));
            }
            let expr = rule["expr"].as_str().ok_or_else(|| format!("{alert}: no `expr` string"))?;
            let duration = rule["for"].as_str().ok_or_else(|| format!("{alert}: no `for` duration"))?;
            let digits = duration.trim_end_matches(|c: char| c.is_ascii_alphabetic());
            let unit = &duration[digits.len()..];
            if digits.is_empty()
                || !digits.chars().all(|c| c.is_ascii_digit())
                || !["ms", "s", "m", "h", "d", "w", "y"].contains(&unit)
            {
                return Err(format!("{alert}: `for: {duration}` is not a Prometheus duration"));
            }
            match rule["labels"]["severity"].as_str() {
                Some("warning" | "critical") => {}
                other => return Err(format!("{alert}: severity {other:?}, want warning or critical")),
            }
            let mut annotations = Vec::new();
            for key in ["summary", "description"] {
                match &rule["annotations"][key] {
                    Yaml::String(s) if !s.trim().is_empty() => annotations.push(s.clone()),
                    _ => return Err(format!("{alert}: no `annotations.{key}`")),
                }
            }
            out.push(Rule { alert: alert.to_owned(), expr: expr.to_owned(), annotations });
        }
    }
    Ok(out)
}

const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan", // operators and literals
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
    "quantile", // aggregations, written `sum by (..) (..)`
];
const LABEL_LISTS: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];

/// The metric names and label names a PromQL expression uses; fails on unbalanced brackets or
/// an unterminated string.
fn scan(expr: &str) -> Result<(BTreeSet<String>, BTreeSet<String>), String> {
    let b = expr.as_bytes();
    let (mut metrics, mut labels) = (BTreeSet::new(), BTreeSet::new());
    let mut stack = Vec::new();
    let ident = |i: usize| {
        let mut j = i;
        while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b':') {
            j += 1;
        }
        j
    };
    let next_char = |mut j: usize| {
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        (j, b.get(j).copied())
    };
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' | b'\'' => {
                let close = expr[i + 1..].find(c as char).ok_or("an unterminated string")?;
                i += close + 2;
            }
            b'(' => {
                stack.push(b')');
                i += 1;
            }
            b'[' => {
                let close = expr[i..].find(']').ok_or("an unclosed [")?;
                i += close + 1;
            }
            b'{' => {
                // Matchers: `name op "value"`, comma-separated.
                let close = expr[i..].find('}').ok_or("an unclosed {")? + i;
                for part in expr[i + 1..close].split(',').filter(|p| !p.trim().is_empty()) {
                    let op = part.find(['=', '!']).ok_or_else(|| format!("a matcher without operator {part:?}"))?;
                    let name = part[..op].trim();
                    let value = part[op..].trim_start_matches(['=', '!', '~']).trim();
                    let quoted = value.len() >= 2 && value.starts_with('"') && value.ends_with('"');
                    if name.is_empty() || !quoted {
                        return Err(format!("a bad matcher {part:?}"));
                    }
                    labels.insert(name.to_owned());
                }
                i = close + 1;
            }
            b')' => {
                if stack.pop() != Some(b')') {
                    return Err("an unbalanced )".into());
                }
                i += 1;
            }
            b']' | b'}' => return Err(format!("an unbalanced {}", c as char)),
            c if c.is_ascii_digit() || c == b'.' => {
                i = ident(i + 1).max(i + 1);
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let end = ident(i);
                let word = &expr[i..end];
                let (after, next) = next_char(end);
                if LABEL_LISTS.contains(&word) && next == Some(b'(') {
                    let close = expr[after..].find(')').ok_or("an unclosed label list")? + after;
                    for l in expr[after + 1..close].split(',').map(str::trim).filter(|l| !l.is_empty()) {
                        labels.insert(l.to_owned());
                    }
                    i = close + 1;
                } else if next == Some(b'(') || KEYWORDS.contains(&word) || LABEL_LISTS.contains(&word) {
                    i = end; // a function, or an operator keyword
                } else {
                    metrics.insert(word.to_owned());
                    i = end;
                }
            }
            _ => i += 1,
        }
    }
    if !stack.is_empty() {
        return Err("an unclosed (".into());
    }
    Ok((metrics, labels))
}

/// `polystore.db.errors` as Prometheus shows it: `polystore_db_errors`.
fn prometheus_name(name: &str) -> String {
    name.replace('.', "_")
}

#[test]
fn the_scanner_finds_metrics_and_labels_and_rejects_broken_expressions() {
    let (m, l) =
        scan(r#"sum by (a, b) (rate(x_total{c="1", d!~"x|y"}[5m])) / ignoring (e) group_left y_count > 0.5 and z"#)
            .unwrap();
    assert_eq!(m.into_iter().collect::<Vec<_>>(), ["x_total", "y_count", "z"]);
    assert_eq!(l.into_iter().collect::<Vec<_>>(), ["a", "b", "c", "d", "e"]);
    for broken in ["sum(rate(x[5m])", "x{a=\"1\"", "rate(x[5m]))", "x{a}", "x{a=\"1}"] {
        assert!(scan(broken).is_err(), "{broken}");
    }
    assert!(
        rules("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: x > 1\n        for: 5 minutes\n")
            .is_err()
    );
    assert!(rules("groups:\n  - name: g\n    rules:\n      - record: r\n        expr: x\n").is_err());
}

#[tokio::test]
async fn the_alert_rules_are_well_formed_and_name_only_metrics_polystore_emits() {
    let rules = rules(RULES).unwrap_or_else(|e| panic!("docs/prometheus/polystore-alerts.yml: {e}"));

    // What the library emits: a workload on PostgreSQL that makes every metric the rules use
    // appear (a slow statement, a failed one, transactions, cached reads, pool and health
    // gauges), read back from a recorder.
    #[derive(Model, Debug, Clone, PartialEq)]
    #[model(table = "obs_alert_rows", cache(ttl = "1m"))]
    struct AlertRow {
        #[model(primary_key)]
        id: i64,
        #[model(unique)]
        code: String,
    }
    let test_db = polystore_tests::pg().await;
    let db =
        test_db.db().clone().with_slow_query_threshold(Duration::ZERO).with_cache(
            Cache::builder(MemoryBackend::new(1 << 20)).namespace(polystore_tests::unique_name("obs")).build(),
        );
    db.create_all(&[AlertRow::SCHEMA]).await.unwrap();
    let rec = Recording::start();
    AlertRow { id: 1, code: "a".into() }.insert(&db).await.unwrap();
    assert!(AlertRow { id: 2, code: "a".into() }.insert(&db).await.is_err());
    AlertRow::get_cached(&db, 1).await.unwrap();
    AlertRow::get_cached(&db, 1).await.unwrap();
    let mut tx = db.begin().await.unwrap();
    assert!(AlertRow { id: 3, code: "a".into() }.insert(&mut tx).await.is_err());
    assert!(tx.commit().await.is_err());
    record_pool_metrics(&db, "main").unwrap();
    let health = db.health(Duration::from_secs(5)).await;
    // No replica runs here: the lag gauge comes from a replica's report, as a standby's
    // health() gives it.
    let replica = HealthReport { replication_lag_ms: Some(10.0), ..health.clone() };
    record_health_metrics(&[health, replica]);
    let emitted = rec.snapshot().names_and_labels();
    test_db.cleanup().await;

    let mut known_metrics = BTreeSet::new();
    let mut known_labels: BTreeSet<String> = ["le".to_owned()].into();
    for (name, labels) in &emitted {
        let base = prometheus_name(name);
        if polystore::observe::names::HISTOGRAMS.contains(&name.as_str()) {
            for suffix in ["_bucket", "_sum", "_count"] {
                known_metrics.insert(format!("{base}{suffix}"));
            }
        } else {
            known_metrics.insert(base);
        }
        known_labels.extend(labels.iter().map(|l| prometheus_name(l)));
    }

    let mut used = BTreeSet::new();
    for rule in &rules {
        let (metrics, labels) = scan(&rule.expr).unwrap_or_else(|e| panic!("{}: {e} in {}", rule.alert, rule.expr));
        assert!(!metrics.is_empty(), "{}: no metric", rule.alert);
        for m in &metrics {
            assert!(
                known_metrics.contains(m),
                "{}: `{m}` is not a metric polystore emits; it emits {known_metrics:?}",
                rule.alert
            );
        }
        let in_annotations = rule.annotations.iter().flat_map(|a| {
            a.split("$labels.").skip(1).map(|rest| {
                rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).next().unwrap_or("").to_owned()
            })
        });
        for l in labels.iter().cloned().chain(in_annotations) {
            assert!(
                known_labels.contains(&l),
                "{}: label `{l}` is not one polystore emits ({known_labels:?})",
                rule.alert
            );
        }
        used.extend(metrics);
    }
    // What the issue asks the rules to watch.
    for needed in [
        "polystore_db_slow_statements",
        "polystore_db_errors",
        "db_client_connection_count",
        "db_client_connection_max",
        "polystore_cache_hits",
        "polystore_cache_misses",
        "polystore_replication_lag",
    ] {
        assert!(used.contains(needed), "no rule watches {needed}");
    }
}
