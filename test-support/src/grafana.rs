//! The Grafana dashboard (`deploy/grafana/image-classification.json`) as the tests that tie its
//! queries to the metric names each binary exports read it: the API's test checks the API's
//! names, the worker's test the `worker_*` ones.

use std::collections::BTreeSet;

/// The dashboard's text.
pub fn dashboard() -> String {
    let path = crate::paths::repo().join("deploy/grafana/image-classification.json");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every panel query of the dashboard.
pub fn queries() -> Vec<String> {
    let dash: serde_json::Value = serde_json::from_str(&dashboard()).expect("valid JSON");
    let mut exprs = Vec::new();
    for panel in dash["panels"].as_array().expect("panels") {
        for t in panel["targets"].as_array().expect("targets") {
            exprs.push(t["expr"].as_str().expect("expr").to_owned());
        }
    }
    exprs
}

/// The metric names the queries use (a histogram's `_bucket`, `_count` and `_sum` series
/// counted under its name; PromQL functions and Grafana variables left out).
pub fn queried_metrics() -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for expr in queries() {
        for token in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if !token.contains('_') || ["histogram_quantile", "__rate_interval"].contains(&token) {
                continue;
            }
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| token.strip_suffix(s))
                .unwrap_or(token);
            used.insert(base.to_owned());
        }
    }
    used
}
