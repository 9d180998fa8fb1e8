//! Control API of the sandbox: the request log, injected faults and latency.

use std::time::{Duration, Instant};

use patchbay::sandbox::{Sandbox, SandboxConfig};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

async fn requests(sandbox: &Sandbox) -> Vec<Value> {
    client()
        .get(format!("{}/_sandbox/requests", sandbox.base_url()))
        .send()
        .await
        .expect("control request")
        .json()
        .await
        .expect("JSON list")
}

async fn add_fault(sandbox: &Sandbox, fault: Value) {
    let response = client()
        .post(format!("{}/_sandbox/faults", sandbox.base_url()))
        .json(&fault)
        .send()
        .await
        .expect("control request");
    assert_eq!(response.status(), StatusCode::OK);
}

async fn post_token(sandbox: &Sandbox) -> reqwest::Response {
    client()
        .post(sandbox.urls().google_token)
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "1//x")])
        .send()
        .await
        .expect("token request")
}

#[tokio::test]
async fn requests_are_recorded_in_order() {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    client()
        .get(format!(
            "{}/gmail/v1/users/me/profile?fields=emailAddress",
            sandbox.base_url()
        ))
        .send()
        .await
        .expect("request");
    post_token(&sandbox).await;

    let log = requests(&sandbox).await;
    assert_eq!(log.len(), 2);
    assert_eq!(log[0]["method"], "GET");
    assert_eq!(log[0]["path"], "/gmail/v1/users/me/profile");
    assert_eq!(log[0]["query"], "fields=emailAddress");
    assert!(log[0]["at"].as_str().is_some_and(|at| at.ends_with('Z')));
    assert_eq!(log[1]["method"], "POST");
    assert_eq!(log[1]["path"], "/google/token");
    assert_eq!(log[1]["query"], Value::Null);
    assert!(log[1].get("body").is_none());

    let response = client()
        .delete(format!("{}/_sandbox/requests", sandbox.base_url()))
        .send()
        .await
        .expect("control request");
    assert!(response.status().is_success());
    assert!(requests(&sandbox).await.is_empty());
    sandbox.shutdown().await;
}

#[tokio::test]
async fn fault_answers_given_times() {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    add_fault(
        &sandbox,
        json!({"path": "/google/token", "status": 503, "times": 2}),
    )
    .await;

    for _ in 0..2 {
        let response = post_token(&sandbox).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body: Value = response.json().await.expect("JSON");
        assert!(body["error"].is_string());
    }
    // The third request is served normally: an unknown refresh token is invalid_grant.
    let response = post_token(&sandbox).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // Faulted requests are recorded too.
    assert_eq!(requests(&sandbox).await.len(), 3);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn slack_rate_limit_fault() {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    add_fault(
        &sandbox,
        json!({"path": "/slack/api/chat.postMessage", "status": 429, "retryAfter": 30}),
    )
    .await;
    let response = client()
        .post(format!("{}/chat.postMessage", sandbox.urls().slack_api))
        .json(&json!({"channel": "C0GENERAL", "text": "hi"}))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok());
    assert_eq!(retry_after, Some("30"));
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body, json!({"ok": false, "error": "ratelimited"}));

    // Nothing was posted.
    let posted: Value = client()
        .get(format!(
            "{}/_sandbox/slack/messages?channel=C0GENERAL",
            sandbox.base_url()
        ))
        .send()
        .await
        .expect("control request")
        .json()
        .await
        .expect("JSON");
    let hi_count = posted
        .as_array()
        .map(|list| list.iter().filter(|m| m["text"] == "hi").count());
    assert_eq!(hi_count, Some(0));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn fault_with_custom_body_and_delay() {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    add_fault(
        &sandbox,
        json!({"path": "/gmail/", "status": 500, "delayMs": 200, "body": {"custom": true}}),
    )
    .await;
    let started = Instant::now();
    let response = client()
        .get(format!("{}/gmail/v1/users/me/profile", sandbox.base_url()))
        .send()
        .await
        .expect("request");
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body, json!({"custom": true}));

    add_fault(
        &sandbox,
        json!({"path": "/gmail/", "status": 503, "times": 5}),
    )
    .await;
    let cleared = client()
        .delete(format!("{}/_sandbox/faults", sandbox.base_url()))
        .send()
        .await
        .expect("control request");
    assert!(cleared.status().is_success());
    let response = client()
        .get(format!("{}/gmail/v1/users/me/profile", sandbox.base_url()))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn gmail_fault_has_google_shape() {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    add_fault(
        &sandbox,
        json!({"path": "/gmail/v1/users/me/history", "status": 429}),
    )
    .await;
    let response = client()
        .get(format!(
            "{}/gmail/v1/users/me/history?startHistoryId=1",
            sandbox.base_url()
        ))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], 429);
    assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(body["error"]["errors"][0]["reason"], "rateLimitExceeded");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn latency_is_added_to_api_calls() {
    let config = SandboxConfig {
        latency_ms: 150,
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::start(config).await.expect("sandbox");
    let started = Instant::now();
    client()
        .get(format!("{}/gmail/v1/users/me/profile", sandbox.base_url()))
        .send()
        .await
        .expect("request");
    assert!(started.elapsed() >= Duration::from_millis(150));

    let started = Instant::now();
    requests(&sandbox).await;
    assert!(started.elapsed() < Duration::from_millis(150));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn invalid_fault_is_rejected() {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let response = client()
        .post(format!("{}/_sandbox/faults", sandbox.base_url()))
        .json(&json!({"path": "google/token", "status": 503}))
        .send()
        .await
        .expect("control request");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("JSON");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("path")));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn urls_point_at_the_sandbox() {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let base = sandbox.base_url();
    assert_eq!(base, format!("http://127.0.0.1:{}", sandbox.addr().port()));
    let urls = sandbox.urls();
    assert_eq!(urls.google_api, base);
    assert_eq!(urls.slack_api, format!("{base}/slack/api"));
    assert_eq!(urls.google_token, format!("{base}/google/token"));
    sandbox.shutdown().await;
}
