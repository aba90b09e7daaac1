//! Metrics for operators, as CloudWatch Embedded Metric Format lines in the
//! function's own log output (no calls to CloudWatch). Namespace `LlmChat`.
//!
//! The use cases and the HTTP layer report what happened through the functions
//! here; this module alone knows the EMF shape. Each report is one JSON object
//! on one line of stdout: CloudWatch Logs extracts the metrics named in its
//! `_aws` member, and the rest of the line (`level`, `message`, the values) reads
//! as an ordinary log line. Dimensions are kept few and low in cardinality
//! (backend, status, code, quota): a model, session or owner is never one.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

/// The CloudWatch namespace of every metric here.
pub const NAMESPACE: &str = "LlmChat";

/// Every metric this module emits, with its unit: what the dashboard and the
/// alarms in `template.yaml` may name (a test holds them to it).
pub const METRICS: &[(&str, &str)] = &[
    ("TimeToFirstToken", "Milliseconds"),
    ("TokensPerSecond", "Count/Second"),
    ("PromptTokens", "Count"),
    ("CompletionTokens", "Count"),
    ("ThinkingTokens", "Count"),
    ("Replies", "Count"),
    ("Problems", "Count"),
    ("QuotaRefusals", "Count"),
    ("BackendErrors", "Count"),
];

/// How a reply ended, for the reply metrics.
#[derive(Debug, Clone)]
pub struct ReplyMetrics<'a> {
    /// The backend that generated it (`ollama`, `llamacpp`, ...).
    pub backend: &'a str,
    /// The model as the backend knows it.
    pub model: &'a str,
    /// The reply's final status: `complete`, `incomplete`, `failed`, `cancelled`.
    pub status: &'a str,
    /// From the model call to the first piece of thinking or text; `None` when none came.
    pub time_to_first_token_ms: Option<u64>,
    /// Completion tokens per second from the first piece to the end; `None` when not measurable.
    pub tokens_per_second: Option<f64>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub thinking_tokens: u64,
}

/// A reply ended (any status).
///
/// Its speed and token counts by backend (and over all backends), its count
/// by status (and by backend and status). The model is a plain member of the
/// line, for log queries, not a dimension.
pub fn reply_ended(metrics: &ReplyMetrics<'_>) {
    let mut line = Line::new("reply ended");
    let backend = dimension(metrics.backend);
    let status = dimension(metrics.status);
    line.member("Backend", backend.into()).member("Status", status.into()).member("model", metrics.model.into());

    let mut speed = Vec::new();
    if let Some(ms) = metrics.time_to_first_token_ms {
        speed.push(("TimeToFirstToken", Value::from(ms)));
    }
    if let Some(rate) = metrics.tokens_per_second.filter(|r| r.is_finite() && *r >= 0.0) {
        speed.push(("TokensPerSecond", Value::from(rate)));
    }
    speed.push(("PromptTokens", metrics.prompt_tokens.into()));
    speed.push(("CompletionTokens", metrics.completion_tokens.into()));
    speed.push(("ThinkingTokens", metrics.thinking_tokens.into()));
    line.directive(&[&[], &["Backend"]], speed);
    line.directive(&[&[], &["Status"], &["Backend", "Status"]], vec![("Replies", 1.into())]);
    line.emit();
}

/// A problem was answered to a client (any route, any status).
pub fn problem(code: &str, status: u16) {
    let mut line = Line::new("problem answered");
    line.member("Code", dimension(code).into())
        .member("StatusClass", format!("{}xx", status / 100).into())
        .member("status", status.into());
    line.directive(&[&["Code"], &["StatusClass"]], vec![("Problems", 1.into())]);
    line.emit();
}

/// A send was refused by a quota (`quota` names it: `active_replies`, `requests_per_minute`, ...).
pub fn quota_refused(quota: &str) {
    let mut line = Line::new("quota refused");
    line.member("Quota", dimension(quota).into());
    line.directive(&[&["Quota"]], vec![("QuotaRefusals", 1.into())]);
    line.emit();
}

/// A backend failed a request (`code`: `llm_unavailable`, `llm_timeout`, `llm_busy`, `llm_error`, `model_not_found`).
pub fn backend_error(backend: &str, code: &str) {
    let mut line = Line::new("backend error");
    line.member("Backend", dimension(backend).into()).member("Code", dimension(code).into());
    line.directive(&[&["Backend", "Code"]], vec![("BackendErrors", 1.into())]);
    line.emit();
}

/// A dimension value as CloudWatch takes it: not empty, at most 255 characters.
fn dimension(value: &str) -> String {
    match value.trim() {
        "" => "unknown".to_owned(),
        v => v.chars().take(255).collect(),
    }
}

fn unit_of(metric: &str) -> &'static str {
    METRICS.iter().find(|(name, _)| *name == metric).map_or("None", |(_, unit)| unit)
}

/// One EMF document under construction: the root's members and its directives.
struct Line {
    root: Map<String, Value>,
    directives: Vec<Value>,
}

impl Line {
    fn new(message: &str) -> Self {
        let mut root = Map::new();
        root.insert("level".into(), "INFO".into());
        root.insert("message".into(), message.into());
        Line { root, directives: Vec::new() }
    }

    fn member(&mut self, name: &str, value: Value) -> &mut Self {
        self.root.insert(name.into(), value);
        self
    }

    /// Metrics (each also a member of the root) reported under these dimension sets.
    fn directive(&mut self, dimensions: &[&[&str]], metrics: Vec<(&str, Value)>) {
        let definitions: Vec<Value> = metrics.iter().map(|(name, _)| json!({"Name": name, "Unit": unit_of(name)})).collect();
        for (name, value) in metrics {
            self.root.insert(name.into(), value);
        }
        self.directives.push(json!({"Namespace": NAMESPACE, "Dimensions": dimensions, "Metrics": definitions}));
    }

    fn text(mut self) -> String {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let aws = json!({"Timestamp": now_ms, "CloudWatchMetrics": self.directives});
        self.root.insert("_aws".into(), aws);
        let mut text = Value::Object(self.root).to_string();
        text.push('\n');
        text
    }

    fn emit(self) {
        let text = self.text();
        #[cfg(any(test, feature = "testing"))]
        if capture::record(&text) {
            return;
        }
        write_line(&text);
    }
}

/// The whole line in one `write_all` on the locked stdout: the JSON log lines
/// (tracing's writer takes the same lock per line) never interleave with it.
#[cfg(not(any(test, feature = "testing")))]
fn write_line(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// In test builds a line nobody captures goes through `print!`, which the test
/// harness keeps out of the way (shown only for a failed test).
#[cfg(any(test, feature = "testing"))]
fn write_line(text: &str) {
    let _ = std::io::stdout().flush();
    print!("{text}");
}

/// Test support: the lines this thread emits while a [`Capture`] lives are
/// kept for the test instead of written out.
#[cfg(any(test, feature = "testing"))]
pub mod capture {
    use std::cell::RefCell;

    use serde_json::Value;

    thread_local! {
        static LINES: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
    }

    /// Keeps this thread's metric lines until dropped. Async tests on a
    /// current-thread runtime (`#[tokio::test]`'s default) see the lines of
    /// every task they spawn.
    pub struct Capture(());

    /// Starts capturing this thread's metric lines.
    pub fn start() -> Capture {
        LINES.with(|l| *l.borrow_mut() = Some(Vec::new()));
        Capture(())
    }

    impl Capture {
        /// The lines so far, as written (each ends with a newline).
        pub fn texts(&self) -> Vec<String> {
            LINES.with(|l| l.borrow().clone().unwrap_or_default())
        }

        /// The lines so far, parsed.
        pub fn lines(&self) -> Vec<Value> {
            self.texts().iter().map(|t| serde_json::from_str(t).expect("a metric line is JSON")).collect()
        }

        /// The parsed lines that report `metric`.
        pub fn reporting(&self, metric: &str) -> Vec<Value> {
            self.lines().into_iter().filter(|l| l.get(metric).is_some()).collect()
        }
    }

    impl Drop for Capture {
        fn drop(&mut self) {
            LINES.with(|l| *l.borrow_mut() = None);
        }
    }

    /// Keeps `text` when this thread captures; false when it does not.
    pub(super) fn record(text: &str) -> bool {
        LINES.with(|l| match l.borrow_mut().as_mut() {
            Some(lines) => {
                lines.push(text.to_owned());
                true
            }
            None => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// The EMF specification as a JSON Schema (written from AWS's published
    /// "Specification: Embedded metric format").
    const SCHEMA: &str = include_str!("metrics/emf.schema.json");

    /// The schema, completed with what JSON Schema cannot say in general: that
    /// every name this document's directives reference is a member of its root
    /// (a dimension's a string, a metric's a number or an array of numbers).
    fn schema_for(document: &Value) -> Value {
        let mut schema: Value = serde_json::from_str(SCHEMA).unwrap();
        let mut required = std::collections::BTreeSet::new();
        let mut targets = serde_json::Map::new();
        let directives = document.pointer("/_aws/CloudWatchMetrics").and_then(Value::as_array).cloned().unwrap_or_default();
        for directive in &directives {
            let sets = directive["Dimensions"].as_array().cloned().unwrap_or_default();
            for name in sets.iter().filter_map(Value::as_array).flatten().filter_map(Value::as_str) {
                required.insert(name.to_owned());
                targets.insert(name.to_owned(), json!({"$ref": "#/$defs/dimensionTarget"}));
            }
            let metrics = directive["Metrics"].as_array().cloned().unwrap_or_default();
            for name in metrics.iter().filter_map(|m| m["Name"].as_str()) {
                required.insert(name.to_owned());
                targets.insert(name.to_owned(), json!({"$ref": "#/$defs/metricTarget"}));
            }
        }
        schema["allOf"] = json!([{"required": required, "properties": targets}]);
        schema
    }

    /// The schema's complaints about `document`; none when it is valid EMF.
    fn violations(document: &Value) -> Vec<String> {
        let schema = schema_for(document);
        let validator = jsonschema::draft202012::new(&schema).expect("the EMF schema is a valid JSON Schema");
        validator.iter_errors(document).map(|e| format!("{} at {}", e, e.instance_path())).collect()
    }

    fn assert_valid_emf(text: &str) {
        assert!(text.ends_with('\n') && text.matches('\n').count() == 1, "one line: {text:?}");
        let document: Value = serde_json::from_str(text).expect("a JSON object");
        let problems = violations(&document);
        assert!(problems.is_empty(), "{problems:?}\n{document}");
    }

    fn reply(ttft: Option<u64>, rate: Option<f64>) -> ReplyMetrics<'static> {
        ReplyMetrics {
            backend: "ollama",
            model: "smollm2:135m",
            status: "complete",
            time_to_first_token_ms: ttft,
            tokens_per_second: rate,
            prompt_tokens: 31,
            completion_tokens: 12,
            thinking_tokens: 5,
        }
    }

    /// One line from each function, as written.
    fn one_of_each() -> Vec<String> {
        let capture = capture::start();
        reply_ended(&reply(Some(240), Some(41.5)));
        reply_ended(&reply(None, None));
        problem("llm_unavailable", 503);
        quota_refused("tokens_per_day");
        backend_error("llamacpp", "llm_timeout");
        capture.texts()
    }

    #[test]
    fn every_line_is_valid_emf() {
        let texts = one_of_each();
        assert_eq!(texts.len(), 5);
        for text in &texts {
            assert_valid_emf(text);
        }
    }

    #[test]
    fn a_reply_carries_its_figures_under_backend_and_status() {
        let capture = capture::start();
        reply_ended(&reply(Some(240), Some(41.5)));
        let line = &capture.lines()[0];
        assert_eq!(line["TimeToFirstToken"], 240);
        assert_eq!(line["TokensPerSecond"], 41.5);
        assert_eq!((line["PromptTokens"].as_u64(), line["CompletionTokens"].as_u64(), line["ThinkingTokens"].as_u64()), (Some(31), Some(12), Some(5)));
        assert_eq!(line["Replies"], 1);
        assert_eq!((line["Backend"].as_str(), line["Status"].as_str(), line["model"].as_str()), (Some("ollama"), Some("complete"), Some("smollm2:135m")));
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "reply ended");
        let directives = line["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        assert!(directives.iter().all(|d| d["Namespace"] == NAMESPACE));
        assert_eq!(directives[0]["Dimensions"], json!([[], ["Backend"]]));
        assert_eq!(directives[0]["Metrics"][0], json!({"Name": "TimeToFirstToken", "Unit": "Milliseconds"}));
        assert_eq!(directives[0]["Metrics"][1], json!({"Name": "TokensPerSecond", "Unit": "Count/Second"}));
        assert_eq!(directives[1]["Dimensions"], json!([[], ["Status"], ["Backend", "Status"]]));
        assert_eq!(directives[1]["Metrics"], json!([{"Name": "Replies", "Unit": "Count"}]));
        let names: Vec<&str> = directives.iter().flat_map(|d| d["Metrics"].as_array().unwrap()).filter_map(|m| m["Name"].as_str()).collect();
        assert!(!names.contains(&"model") && !line["_aws"].to_string().contains("model"), "the model is no dimension");
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let stamp = line["_aws"]["Timestamp"].as_u64().unwrap();
        assert!(stamp <= now_ms && now_ms - stamp < 60_000, "a timestamp in milliseconds: {stamp}");
    }

    #[test]
    fn figures_not_measured_are_left_out_not_zero() {
        let capture = capture::start();
        reply_ended(&ReplyMetrics { status: "failed", ..reply(None, Some(f64::NAN)) });
        let line = &capture.lines()[0];
        assert!(line.get("TimeToFirstToken").is_none() && line.get("TokensPerSecond").is_none(), "{line}");
        let named = line["_aws"].to_string();
        assert!(!named.contains("TimeToFirstToken") && !named.contains("TokensPerSecond"), "{named}");
        assert_eq!(line["Status"], "failed");
        assert_eq!(line["Replies"], 1);
    }

    #[test]
    fn problems_count_by_code_and_status_class() {
        let capture = capture::start();
        problem("llm_unavailable", 503);
        problem("not_found", 404);
        let lines = capture.lines();
        assert_eq!((lines[0]["Code"].as_str(), lines[0]["StatusClass"].as_str(), lines[0]["status"].as_u64()), (Some("llm_unavailable"), Some("5xx"), Some(503)));
        assert_eq!((lines[1]["Code"].as_str(), lines[1]["StatusClass"].as_str()), (Some("not_found"), Some("4xx")));
        assert_eq!(lines[0]["Problems"], 1);
        assert_eq!(lines[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["Code"], ["StatusClass"]]));
    }

    #[test]
    fn quota_refusals_and_backend_errors_name_what_they_count() {
        let capture = capture::start();
        quota_refused("active_replies");
        backend_error("", "llm_busy");
        let lines = capture.lines();
        assert_eq!((lines[0]["Quota"].as_str(), lines[0]["QuotaRefusals"].as_u64()), (Some("active_replies"), Some(1)));
        assert_eq!(lines[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["Quota"]]));
        assert_eq!((lines[1]["Backend"].as_str(), lines[1]["Code"].as_str()), (Some("unknown"), Some("llm_busy")), "an empty dimension value is refused by CloudWatch");
        assert_eq!(lines[1]["BackendErrors"], 1);
        assert_eq!(lines[1]["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["Backend", "Code"]]));
    }

    #[test]
    fn every_unit_is_a_cloudwatch_unit_and_every_metric_is_listed() {
        for text in one_of_each() {
            let line: Value = serde_json::from_str(&text).unwrap();
            for directive in line["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
                for metric in directive["Metrics"].as_array().unwrap() {
                    let name = metric["Name"].as_str().unwrap();
                    assert!(METRICS.iter().any(|(n, u)| *n == name && metric["Unit"] == *u), "{name} is in METRICS with its unit");
                }
            }
        }
    }

    /// The schema is no rubber stamp: each way a line can break the
    /// specification is refused.
    #[test]
    fn the_schema_refuses_documents_that_break_the_specification() {
        let good: Value = serde_json::from_str(&one_of_each()[0]).unwrap();
        assert!(violations(&good).is_empty());
        type Breakage = Box<dyn Fn(&mut Value)>;
        let breakages: Vec<(&str, Breakage)> = vec![
            ("no _aws", Box::new(|d| _ = d.as_object_mut().unwrap().remove("_aws"))),
            ("no Timestamp", Box::new(|d| _ = d["_aws"].as_object_mut().unwrap().remove("Timestamp"))),
            ("a Timestamp in text", Box::new(|d| d["_aws"]["Timestamp"] = json!("2026-01-01T00:00:00Z"))),
            ("a fractional Timestamp", Box::new(|d| d["_aws"]["Timestamp"] = json!(1.5))),
            ("no namespace", Box::new(|d| _ = d["_aws"]["CloudWatchMetrics"][0].as_object_mut().unwrap().remove("Namespace"))),
            ("an empty namespace", Box::new(|d| d["_aws"]["CloudWatchMetrics"][0]["Namespace"] = json!(""))),
            ("a referenced metric missing", Box::new(|d| _ = d.as_object_mut().unwrap().remove("PromptTokens"))),
            ("a referenced dimension missing", Box::new(|d| _ = d.as_object_mut().unwrap().remove("Backend"))),
            ("a metric value in text", Box::new(|d| d["CompletionTokens"] = json!("12"))),
            ("a metric value null", Box::new(|d| d["TimeToFirstToken"] = Value::Null)),
            ("a metric array with text", Box::new(|d| d["Replies"] = json!([1, "2"]))),
            ("a metric array of 101 values", Box::new(|d| d["Replies"] = json!(vec![1; 101]))),
            ("a dimension value as a number", Box::new(|d| d["Status"] = json!(200))),
            ("an empty dimension value", Box::new(|d| d["Status"] = json!(""))),
            ("an unknown unit", Box::new(|d| d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] = json!("Millis"))),
            ("a storage resolution of 5", Box::new(|d| d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["StorageResolution"] = json!(5))),
            ("a metric without a name", Box::new(|d| _ = d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0].as_object_mut().unwrap().remove("Name"))),
            ("a member the directive does not define", Box::new(|d| d["_aws"]["CloudWatchMetrics"][0]["Period"] = json!(60))),
            ("no dimension sets at all", Box::new(|d| d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = json!([]))),
            ("a dimension set of 31 keys", Box::new(|d| {
                let keys: Vec<String> = (0..31).map(|i| format!("D{i}")).collect();
                for k in &keys {
                    d[k.as_str()] = json!("x");
                }
                d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = json!([keys]);
            })),
            ("101 metrics in one directive", Box::new(|d| {
                let metrics: Vec<Value> = (0..101).map(|i| json!({"Name": format!("M{i}")})).collect();
                for i in 0..101 {
                    d[format!("M{i}").as_str()] = json!(i);
                }
                d["_aws"]["CloudWatchMetrics"][0]["Metrics"] = json!(metrics);
            })),
        ];
        for (what, break_it) in breakages {
            let mut bad = good.clone();
            break_it(&mut bad);
            assert!(!violations(&bad).is_empty(), "the schema accepted a document with {what}: {bad}");
        }
        // And the limits themselves are allowed: 30 keys, 100 metrics, 100 values, a resolution of 1.
        let mut edge = good.clone();
        let keys: Vec<String> = (0..30).map(|i| format!("D{i}")).collect();
        for k in &keys {
            edge[k.as_str()] = json!("x");
        }
        edge["_aws"]["CloudWatchMetrics"][1]["Dimensions"] = json!([keys]);
        edge["Replies"] = json!(vec![1.5; 100]);
        edge["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["StorageResolution"] = json!(1);
        assert!(violations(&edge).is_empty(), "{:?}", violations(&edge));
    }
}
