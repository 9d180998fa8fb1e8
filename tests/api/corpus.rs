//! The `.eml` corpus in `tests/fixtures/eml`, loaded into the sandbox mailbox
//! and read back through `gmail/read`, against `expected.json`.

use std::path::PathBuf;

use patchbay::sandbox::SandboxConfig;
use reqwest::StatusCode;
use serde_json::{Map, Value, json};

use crate::helpers::TestApp;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eml")
}

/// Loads one file as the whole mailbox and returns the one message `gmail/read` returns.
async fn read_through_gateway(name: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(corpus_dir().join(name), dir.path().join(name)).unwrap();
    let config = SandboxConfig {
        mailbox: Some(dir.path().to_path_buf()),
        ..SandboxConfig::default()
    };
    let app = TestApp::spawn_with(config).await;
    app.connect("google", None).await;
    let response = app
        .execute("gmail/read", json!({"query": "", "maxResults": 10}), None)
        .await;
    assert_eq!(response.status(), StatusCode::OK, "{name}");
    let mut body: Value = response.json().await.unwrap();
    let messages = body["messages"].as_array_mut().unwrap();
    assert_eq!(messages.len(), 1, "{name}: one message in the mailbox");
    messages.remove(0)
}

/// Whether `value` is an RFC 3339 time within the last ten minutes.
fn is_recent(value: &Value) -> bool {
    value
        .as_str()
        .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
        .is_some_and(|time| {
            let age = chrono::Utc::now().signed_duration_since(time);
            age >= chrono::Duration::zero() && age < chrono::Duration::minutes(10)
        })
}

/// Differences between a message and its expectation, one line each.
fn mismatches(name: &str, expected: &Value, message: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let mut check = |field: &str, ok: bool, actual: &Value| {
        if !ok {
            found.push(format!("{name}: {field} is {actual}"));
        }
    };
    for field in ["subject", "from", "to", "cc"] {
        if let Some(want) = expected.get(field) {
            check(field, &message[field] == want, &message[field]);
        }
    }
    match expected.get("date") {
        // Without a Date header the gateway gives Gmail's internalDate, which the sandbox
        // sets to the time it loaded the file.
        Some(Value::Null) => check("date", is_recent(&message["date"]), &message["date"]),
        Some(want) => check("date", &message["date"] == want, &message["date"]),
        None => {}
    }
    for (field, key) in [
        ("bodyText", "bodyTextContains"),
        ("bodyHtml", "bodyHtmlContains"),
    ] {
        let actual = &message[field];
        match expected.get(key) {
            Some(Value::String(part)) => check(
                field,
                actual
                    .as_str()
                    .is_some_and(|text| text.contains(part.as_str())),
                actual,
            ),
            Some(Value::Null) => check(field, actual.is_null(), actual),
            _ => {}
        }
    }
    let attachments: Vec<Value> = message["attachments"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|a| json!({"filename": a["filename"], "mimeType": a["mimeType"]}))
        .collect();
    let want_attachments = expected.get("attachments").cloned().unwrap_or(json!([]));
    check(
        "attachments",
        json!(attachments) == want_attachments,
        &message["attachments"],
    );
    let ids_present = message["attachments"]
        .as_array()
        .is_some_and(|list| list.iter().all(|a| a["attachmentId"].is_string()));
    check("attachmentId", ids_present, &message["attachments"]);
    if let Some(headers) = expected.get("headers").and_then(Value::as_object) {
        for (header, value) in headers {
            let actual = &message["headers"][header];
            check(&format!("header {header}"), actual == value, actual);
        }
    }
    found
}

#[tokio::test]
async fn corpus_reads_as_expected() {
    let text = std::fs::read_to_string(corpus_dir().join("expected.json")).unwrap();
    let expected: Map<String, Value> = serde_json::from_str(&text).unwrap();
    assert!(expected.len() >= 30, "corpus has {} files", expected.len());

    let mut failures = Vec::new();
    for (name, expectation) in &expected {
        let message = read_through_gateway(name).await;
        failures.extend(mismatches(name, expectation, &message));
    }

    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
