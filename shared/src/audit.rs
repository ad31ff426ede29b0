//! The audit log and the metrics, in one line per event: a JSON object that CloudWatch reads
//! as Embedded Metric Format (its `_aws` member names the metrics among the fields), written
//! to stdout, which Lambda ships to CloudWatch Logs. No agent, no API call, no second line.
//!
//! Never a secret: events carry ids (client, user, jti, family), scope, error code, source IP
//! and user agent; never a secret, password, code, cookie or token.
//!
//! Metrics (namespace `OAuthProvider`, dimensions kept few: each combination is a custom
//! metric): `TokensIssued{Grant}`, `Refusals{Error}`, `TemporarilyUnavailable{Dependency}`,
//! `Lockouts`, `RotationOutcome{Outcome}`, `HandlerMs`, and for sign-in `CodesIssued`,
//! `LoginFailures`.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

pub const NAMESPACE: &str = "OAuthProvider";

/// What one line records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    TokenIssued,
    TokenRefused,
    /// The authorization endpoint sent a code to a client (the sign-in half of "who got
    /// which token").
    CodeIssued,
    /// The login form refused a username and password.
    LoginFailed,
    /// A dependency failed or timed out: the caller got 503.
    Unavailable,
    /// A failure counter reached the lockout threshold.
    Lockout,
    RotationStep,
}

/// One audit record. `None` fields are left out of the line.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Record<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
    /// `DynamoDB`, `SecretsManager`, `Deadline`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dependency: Option<&'a str>,
    /// `user` or `client` (a lockout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked: Option<&'a str>,
    /// A rotation step's outcome.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handler_ms: Option<f64>,
}

/// A metric's dimension set: its one dimension's name.
type Dimension = Option<&'static [&'static str; 1]>;

/// The EMF metric directives of an event: (metric, unit, dimension).
fn metrics(event: Event, record: &Record) -> Vec<(&'static str, &'static str, Dimension)> {
    let mut out = Vec::new();
    match event {
        Event::TokenIssued => out.push(("TokensIssued", "Count", Some(&["Grant"]))),
        Event::TokenRefused => out.push(("Refusals", "Count", Some(&["Error"]))),
        Event::CodeIssued => out.push(("CodesIssued", "Count", None)),
        Event::LoginFailed => out.push(("LoginFailures", "Count", None)),
        Event::Unavailable => out.push(("TemporarilyUnavailable", "Count", Some(&["Dependency"]))),
        Event::Lockout => out.push(("Lockouts", "Count", None)),
        Event::RotationStep => out.push(("RotationOutcome", "Count", Some(&["Outcome"]))),
    }
    if record.handler_ms.is_some() {
        out.push(("HandlerMs", "Milliseconds", None));
    }
    out
}

/// One EMF metric directive (CloudWatch's `_aws.CloudWatchMetrics[]`).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Directive<'a> {
    namespace: &'static str,
    dimensions: [&'a [&'a str]; 1],
    metrics: [Metric; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Metric {
    name: &'static str,
    unit: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Aws<'a> {
    timestamp: i64,
    cloud_watch_metrics: &'a [Directive<'a>],
}

/// The line for `event` at `now_ms` (epoch milliseconds): the record's fields, then `event`,
/// each metric's dimension and value, then `_aws`. Written straight into one buffer (a
/// `serde_json::Value` tree per request cost allocations on every token).
pub fn line(event: Event, record: &Record, now_ms: i64) -> String {
    let mut out = Vec::with_capacity(512);
    // Serializing these types cannot fail (no maps with non-string keys, no I/O).
    let _ = serde_json::to_writer(&mut out, record);
    out.pop(); // the record's closing brace: the members below join its object
    member(&mut out, "event", &event);
    let mut directives = Vec::new();
    for (name, unit, dimension) in metrics(event, record) {
        // EMF: a dimension is a top-level string member; a metric, a top-level number.
        let value = |set: &[&str; 1]| match set[0] {
            "Grant" => record.grant,
            "Error" => record.error,
            "Dependency" => record.dependency,
            "Outcome" => record.outcome,
            _ => None,
        };
        let dimensions: &[&str] = match dimension.and_then(|set| Some((set, value(set)?))) {
            Some((set, value)) => {
                member(&mut out, set[0], &value);
                set
            }
            None => &[],
        };
        match (name, record.handler_ms) {
            ("HandlerMs", Some(ms)) => member(&mut out, name, &ms),
            _ => member(&mut out, name, &1u8),
        }
        directives.push(Directive {
            namespace: NAMESPACE,
            dimensions: [dimensions],
            metrics: [Metric { name, unit }],
        });
    }
    let aws = Aws {
        timestamp: now_ms,
        cloud_watch_metrics: &directives,
    };
    member(&mut out, "_aws", &aws);
    out.push(b'}');
    String::from_utf8(out).unwrap_or_default()
}

/// Appends `"key":value` to the open object in `out`.
fn member(out: &mut Vec<u8>, key: &str, value: &impl Serialize) {
    if out.len() > 1 {
        out.push(b',');
    }
    let _ = serde_json::to_writer(&mut *out, key);
    out.push(b':');
    let _ = serde_json::to_writer(&mut *out, value);
}

static QUIET: AtomicBool = AtomicBool::new(false);

/// No lines from this process (in-process tests and benches, whose stdout is a terminal: the
/// test harness does not capture direct writes). The functions never call it.
pub fn quiet() {
    QUIET.store(true, Ordering::Relaxed);
}

/// Writes the event's line to stdout (CloudWatch Logs on Lambda).
pub fn emit(event: Event, record: &Record) {
    if QUIET.load(Ordering::Relaxed) {
        return;
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default();
    let mut text = line(event, record, now_ms);
    text.push('\n');
    // A lost audit line must not fail the request: stdout is all Lambda offers.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// The 503 metric, where a dependency failure is turned into one.
pub fn unavailable(dependency: &str) {
    emit(
        Event::Unavailable,
        &Record {
            error: Some("temporarily_unavailable"),
            dependency: Some(dependency),
            ..Record::default()
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> serde_json::Value {
        serde_json::from_str(text).expect("one JSON object")
    }

    /// Every metric a directive names is a top-level number and every dimension a top-level
    /// string, as CloudWatch requires of an EMF document.
    fn assert_valid_emf(doc: &serde_json::Value) {
        let aws = &doc["_aws"];
        assert!(aws["Timestamp"].is_i64());
        for directive in aws["CloudWatchMetrics"].as_array().unwrap() {
            assert_eq!(directive["Namespace"], NAMESPACE);
            for set in directive["Dimensions"].as_array().unwrap() {
                for key in set.as_array().unwrap() {
                    assert!(doc[key.as_str().unwrap()].is_string(), "{doc}");
                }
            }
            for metric in directive["Metrics"].as_array().unwrap() {
                assert!(doc[metric["Name"].as_str().unwrap()].is_number(), "{doc}");
            }
        }
    }

    #[test]
    fn an_issued_token_is_an_audit_record_and_two_metrics() {
        let record = Record {
            grant: Some("client_credentials"),
            client_id: Some("app"),
            scope: Some("read"),
            jti: Some("j1"),
            source_ip: Some("203.0.113.9"),
            user_agent: Some("curl/8"),
            handler_ms: Some(0.25),
            ..Record::default()
        };
        let doc = parse(&line(Event::TokenIssued, &record, 1_000));
        assert_valid_emf(&doc);
        assert_eq!(doc["event"], "token_issued");
        assert_eq!(doc["client_id"], "app");
        assert_eq!(doc["Grant"], "client_credentials");
        assert_eq!(doc["TokensIssued"], 1);
        assert_eq!(doc["HandlerMs"], 0.25);
        assert!(doc.get("user_id").is_none(), "absent fields are left out");
    }

    #[test]
    fn the_line_is_exactly_one_emf_document() {
        let record = Record {
            grant: Some("password"),
            user_id: Some("u1"),
            handler_ms: Some(1.5),
            ..Record::default()
        };
        let expected = serde_json::json!({
            "event": "token_issued",
            "grant": "password",
            "user_id": "u1",
            "handler_ms": 1.5,
            "Grant": "password",
            "TokensIssued": 1,
            "HandlerMs": 1.5,
            "_aws": {
                "Timestamp": 7,
                "CloudWatchMetrics": [
                    {"Namespace": NAMESPACE, "Dimensions": [["Grant"]],
                     "Metrics": [{"Name": "TokensIssued", "Unit": "Count"}]},
                    {"Namespace": NAMESPACE, "Dimensions": [[]],
                     "Metrics": [{"Name": "HandlerMs", "Unit": "Milliseconds"}]},
                ],
            },
        });
        assert_eq!(parse(&line(Event::TokenIssued, &record, 7)), expected);
        // No record field at all: still one object, no stray comma.
        let bare = parse(&line(Event::Lockout, &Record::default(), 7));
        assert_eq!(bare["event"], "lockout");
        assert_eq!(bare["Lockouts"], 1);
    }

    #[test]
    fn refusals_unavailability_lockouts_and_rotations_have_their_metric() {
        for (event, record, metric) in [
            (
                Event::TokenRefused,
                Record {
                    error: Some("invalid_client"),
                    ..Record::default()
                },
                "Refusals",
            ),
            (
                Event::Unavailable,
                Record {
                    dependency: Some("DynamoDB"),
                    ..Record::default()
                },
                "TemporarilyUnavailable",
            ),
            (
                Event::Lockout,
                Record {
                    locked: Some("user"),
                    ..Record::default()
                },
                "Lockouts",
            ),
            (
                Event::RotationStep,
                Record {
                    outcome: Some("finished"),
                    ..Record::default()
                },
                "RotationOutcome",
            ),
        ] {
            let doc = parse(&line(event, &record, 0));
            assert_valid_emf(&doc);
            assert_eq!(doc[metric], 1, "{doc}");
        }
    }
}
