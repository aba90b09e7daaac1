//! The operations dashboard and alarms of template.yaml watch what the code
//! emits: every LlmChat metric they name, under the dimensions they name, is
//! one the functions write (`llmchat::metrics`), and every function's Lambda
//! metrics are on the dashboard and in the throttle alarm.

use std::collections::BTreeSet;

use llmchat::metrics::{self, ReplyMetrics};
use serde_json::Value as Json;
use serde_yaml::Value;

/// (metric, its dimension names sorted) as one series of the namespace.
type Series = (String, Vec<String>);

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).expect("template.yaml is YAML")
}

fn resources_of_type<'a>(doc: &'a Value, kind: &str) -> Vec<(String, &'a Value)> {
    doc["Resources"]
        .as_mapping()
        .expect("resources")
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .map(|(name, r)| (name.as_str().unwrap().to_owned(), r))
        .collect()
}

/// The text of an `!Sub` (or a plain string).
fn sub_text(value: &Value) -> String {
    match value {
        Value::Tagged(tagged) if tagged.tag == "Sub" => tagged.value.as_str().expect("!Sub of a string").to_owned(),
        Value::String(s) => s.clone(),
        other => panic!("not a string or !Sub: {other:?}"),
    }
}

/// Every series the code emits: one line of each kind, captured.
fn emitted() -> BTreeSet<Series> {
    let capture = metrics::capture::start();
    metrics::reply_ended(&ReplyMetrics {
        backend: "ollama",
        model: "m",
        status: "complete",
        time_to_first_token_ms: Some(1),
        tokens_per_second: Some(1.0),
        prompt_tokens: 1,
        completion_tokens: 1,
        thinking_tokens: 1,
    });
    metrics::problem("llm_unavailable", 503);
    metrics::quota_refused("active_replies");
    metrics::backend_error("ollama", "llm_timeout");
    let mut series = BTreeSet::new();
    for line in capture.lines() {
        for directive in line["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
            assert_eq!(directive["Namespace"], metrics::NAMESPACE);
            for set in directive["Dimensions"].as_array().unwrap() {
                let mut dims: Vec<String> = set.as_array().unwrap().iter().map(|d| d.as_str().unwrap().to_owned()).collect();
                dims.sort();
                for metric in directive["Metrics"].as_array().unwrap() {
                    series.insert((metric["Name"].as_str().unwrap().to_owned(), dims.clone()));
                }
            }
        }
    }
    series
}

/// The series of the namespace a dashboard names: in metric arrays
/// (`["LlmChat", name, dim, value, ..., {options}]`) and in SEARCH expressions
/// (`{LlmChat,Dim,...} MetricName="name"`).
fn dashboard_series(body: &Json) -> Vec<Series> {
    let mut found = Vec::new();
    for widget in body["widgets"].as_array().unwrap() {
        for row in widget["properties"]["metrics"].as_array().into_iter().flatten() {
            let row = row.as_array().unwrap();
            if row.first().and_then(Json::as_str) == Some(metrics::NAMESPACE) {
                let plain: Vec<&str> = row.iter().filter_map(Json::as_str).collect();
                let mut dims: Vec<String> = plain[2..].iter().step_by(2).map(|d| d.to_string()).collect();
                dims.sort();
                found.push((plain[1].to_owned(), dims));
            }
            for expression in row.iter().filter_map(|r| r["expression"].as_str()) {
                found.extend(searched_series(expression));
            }
        }
    }
    found
}

fn searched_series(expression: &str) -> Vec<Series> {
    let mut found = Vec::new();
    let mut rest = expression;
    let schema = format!("{{{},", metrics::NAMESPACE);
    while let Some(at) = rest.find(&schema) {
        let after = &rest[at + schema.len()..];
        let close = after.find('}').expect("a closed schema");
        let mut dims: Vec<String> = after[..close].split(',').map(|d| d.trim().to_owned()).collect();
        dims.sort();
        let name_at = after.find("MetricName=\"").expect("a SEARCH names its metric") + "MetricName=\"".len();
        let name: String = after[name_at..].chars().take_while(|c| *c != '"').collect();
        found.push((name, dims));
        rest = &after[close..];
    }
    found
}

/// The series of the namespace an alarm names, directly or in its metric math.
fn alarm_series(alarm: &Value) -> Vec<Series> {
    let props = &alarm["Properties"];
    let mut metrics_named: Vec<&Value> = vec![props];
    for query in props["Metrics"].as_sequence().into_iter().flatten() {
        metrics_named.push(&query["MetricStat"]["Metric"]);
    }
    metrics_named
        .into_iter()
        .filter(|m| m["Namespace"].as_str() == Some(metrics::NAMESPACE))
        .map(|m| {
            let mut dims: Vec<String> =
                m["Dimensions"].as_sequence().into_iter().flatten().map(|d| d["Name"].as_str().unwrap().to_owned()).collect();
            dims.sort();
            (m["MetricName"].as_str().unwrap().to_owned(), dims)
        })
        .collect()
}

#[test]
fn the_dashboard_and_alarms_watch_only_series_the_code_emits() {
    let emitted = emitted();
    let doc = template();
    let dashboards = resources_of_type(&doc, "AWS::CloudWatch::Dashboard");
    assert_eq!(dashboards.len(), 1, "one operations dashboard");
    // The body is JSON once CloudFormation has put its values in.
    let text = sub_text(&dashboards[0].1["Properties"]["DashboardBody"]);
    let mut body_text = String::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("${") {
        body_text.push_str(&rest[..at]);
        body_text.push('1');
        rest = &rest[at + rest[at..].find('}').unwrap() + 1..];
    }
    body_text.push_str(rest);
    let body: Json = serde_json::from_str(&body_text).expect("the dashboard body is JSON");

    let on_dashboard = dashboard_series(&body);
    let names: BTreeSet<&str> = on_dashboard.iter().map(|(n, _)| n.as_str()).collect();
    for (metric, _) in metrics::METRICS {
        assert!(names.contains(metric), "the dashboard shows {metric}");
    }
    let alarms = resources_of_type(&doc, "AWS::CloudWatch::Alarm");
    let in_alarms: Vec<Series> = alarms.iter().flat_map(|(_, a)| alarm_series(a)).collect();
    assert!(in_alarms.iter().any(|(n, _)| n == "TimeToFirstToken") && in_alarms.iter().any(|(n, _)| n == "Problems"));
    for series in on_dashboard.iter().chain(&in_alarms) {
        assert!(emitted.contains(series), "{series:?} is watched but never emitted; emitted: {emitted:?}");
    }
}

#[test]
fn every_function_is_on_the_dashboard_and_in_the_throttle_alarm() {
    let doc = template();
    let functions: Vec<String> = resources_of_type(&doc, "AWS::Serverless::Function").into_iter().map(|(name, _)| name).collect();
    assert!(functions.len() >= 7);
    let dashboard = sub_text(&resources_of_type(&doc, "AWS::CloudWatch::Dashboard")[0].1["Properties"]["DashboardBody"]);
    let throttles = &doc["Resources"]["LambdaThrottlesAlarm"]["Properties"]["Metrics"];
    let alarmed: Vec<String> = throttles
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|q| ref_name(&q["MetricStat"]["Metric"]["Dimensions"][0]["Value"]))
        .collect();
    for function in &functions {
        for metric in ["Errors", "Throttles"] {
            let row = format!("[\"AWS/Lambda\", \"{metric}\", \"FunctionName\", \"${{{function}}}\"]");
            assert!(dashboard.contains(&row), "the dashboard shows {metric} of {function}");
        }
        assert!(alarmed.contains(function), "the throttle alarm watches {function}");
    }
}

/// The resource a `!Ref` names.
fn ref_name(value: &Value) -> Option<String> {
    match value {
        Value::Tagged(tagged) if tagged.tag == "Ref" => tagged.value.as_str().map(str::to_owned),
        _ => None,
    }
}
