//! Slack actions through the gateway.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code};

#[tokio::test]
async fn message_is_posted() {
    let app = TestApp::spawn().await;
    app.connect("slack", Some("alice")).await;
    let response = app
        .execute(
            "slack/message",
            json!({"channel": "#general", "text": "hello", "userId": "alice"}),
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["ok"], true);
    assert!(body["ts"].as_str().is_some_and(|ts| ts.contains('.')));
}

#[tokio::test]
async fn not_in_channel_is_rejected() {
    let app = TestApp::spawn().await;
    app.connect("slack", None).await;
    let response = app
        .execute(
            "slack/message",
            json!({"channel": "C0RANDOM", "text": "hi"}),
            None,
        )
        .await;
    let (status, error) = error_code(response).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error["code"], "provider_rejected");
    assert_eq!(error["providerCode"], "not_in_channel");
}

#[tokio::test]
async fn user_without_connection_never_falls_back() {
    let app = TestApp::spawn().await;
    app.connect("slack", None).await;
    let response = app
        .execute(
            "slack/message",
            json!({"channel": "#general", "text": "x"}),
            Some("bob"),
        )
        .await;
    let (status, error) = error_code(response).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error["code"], "connection_not_found");
    assert_eq!(
        app.sandbox_requests("/slack/api/chat.postMessage")
            .await
            .len(),
        0
    );
}

#[tokio::test]
async fn thread_reply_is_posted_in_thread() {
    let app = TestApp::spawn().await;
    app.connect("slack", None).await;
    let response = app
        .execute(
            "slack/message",
            json!({"channel": "#general", "text": "parent"}),
            None,
        )
        .await;
    let parent: Value = response.json().await.unwrap();
    let parent_ts = parent["ts"].as_str().unwrap().to_owned();

    let response = app
        .execute(
            "slack/message",
            json!({"channel": "C0GENERAL", "text": "child", "threadTs": parent_ts}),
            None,
        )
        .await;

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["channel"], "C0GENERAL");
    let posted = app.slack_messages().await;
    let child = posted.iter().find(|m| m["text"] == "child").unwrap();
    assert_eq!(child["thread_ts"], parent_ts);
    assert_eq!(child["channel"], "C0GENERAL");
}

#[tokio::test]
async fn search_uses_user_token() {
    let app = TestApp::spawn().await;
    app.connect("slack", Some("alice")).await;
    let response = app
        .execute(
            "slack/search",
            json!({"query": "quarterly", "userId": "alice", "maxResults": 5}),
            None,
        )
        .await;

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(
        messages[0]["text"],
        "The quarterly report is ready for review."
    );
    assert_eq!(messages[0]["channel"], "C0GENERAL");
    assert!(messages[0]["permalink"].as_str().is_some());
    assert!(messages[0]["ts"].as_str().is_some());
    assert_eq!(
        app.sandbox_requests("/slack/api/search.messages")
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn search_in_channel_and_limits() {
    let app = TestApp::spawn().await;
    app.connect("slack", None).await;
    let response = app
        .execute(
            "slack/search",
            json!({"query": "the", "channel": "random"}),
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["messages"], json!([]), "no message in #random");

    for count in [0, 101] {
        let response = app
            .execute(
                "slack/search",
                json!({"query": "the", "maxResults": count}),
                None,
            )
            .await;
        let (status, error) = error_code(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{count}");
        assert_eq!(error["param"], "maxResults", "{count}");
    }
}

#[tokio::test]
async fn rate_limit_is_429_and_not_retried() {
    let app = TestApp::spawn().await;
    app.connect("slack", None).await;
    app.sandbox_control(
        "faults",
        json!({"path": "/slack/api/chat.postMessage", "status": 429, "retryAfter": 30}),
    )
    .await;

    let response = app
        .execute(
            "slack/message",
            json!({"channel": "#general", "text": "once"}),
            None,
        )
        .await;

    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "30");
    let (_, error) = error_code(response).await;
    assert_eq!(error["code"], "provider_rate_limited");
    assert_eq!(error["type"], "rate_limit_error");
    assert_eq!(
        app.sandbox_requests("/slack/api/chat.postMessage")
            .await
            .len(),
        1,
        "posted once, not retried"
    );
    let posted = app.slack_messages().await;
    assert!(!posted.iter().any(|m| m["text"] == "once"));
    assert_eq!(app.connection_status("slack", None).await, "active");
}

#[tokio::test]
async fn ok_false_answers_are_errors() {
    let app = TestApp::spawn().await;
    app.connect("slack", None).await;
    for (provider_code, status) in [
        ("channel_not_found", StatusCode::UNPROCESSABLE_ENTITY),
        ("msg_too_long", StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        app.sandbox_control(
            "faults",
            json!({"path": "/slack/api/chat.postMessage", "status": 200,
                   "body": {"ok": false, "error": provider_code}}),
        )
        .await;
        let response = app
            .execute(
                "slack/message",
                json!({"channel": "#general", "text": "x"}),
                None,
            )
            .await;
        let (actual, error) = error_code(response).await;
        assert_eq!(actual, status, "{provider_code}");
        assert_eq!(error["code"], "provider_rejected", "{provider_code}");
        assert_eq!(error["providerCode"], provider_code);
    }
    let response = app
        .execute(
            "slack/message",
            json!({"channel": "#nonexistent", "text": "x"}),
            None,
        )
        .await;
    let (status, error) = error_code(response).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error["providerCode"], "channel_not_found");
}

#[tokio::test]
async fn revoking_errors_mark_reauthorization() {
    for provider_code in ["token_revoked", "invalid_auth", "account_inactive"] {
        let app = TestApp::spawn().await;
        app.connect("slack", None).await;
        app.sandbox_control(
            "faults",
            json!({"path": "/slack/api/chat.postMessage", "status": 200,
                   "body": {"ok": false, "error": provider_code}}),
        )
        .await;
        let response = app
            .execute(
                "slack/message",
                json!({"channel": "#general", "text": "x"}),
                None,
            )
            .await;
        let (status, error) = error_code(response).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{provider_code}");
        assert_eq!(error["code"], "reauthorization_required", "{provider_code}");
        assert_eq!(
            app.connection_status("slack", None).await,
            "reauthorization_required",
            "{provider_code}"
        );
    }
}

#[tokio::test]
async fn oversized_content_rejected_before_slack() {
    let app = TestApp::spawn().await;
    app.connect("slack", None).await;
    let blocks: Vec<Value> = (0..51)
        .map(|i| json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("b{i}")}}))
        .collect();
    for (body, param) in [
        (
            json!({"channel": "#general", "text": "x".repeat(40_001)}),
            "text",
        ),
        (json!({"channel": "#general", "blocks": blocks}), "blocks"),
        (json!({"channel": "#general"}), "text"),
        (json!({"text": "x"}), "channel"),
        (
            json!({"channel": "#general", "text": "x", "threadTs": "yesterday"}),
            "threadTs",
        ),
    ] {
        let response = app.execute("slack/message", body, None).await;
        let (status, error) = error_code(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{param}");
        assert_eq!(error["code"], "invalid_request", "{param}");
        assert_eq!(error["param"], param);
    }
    assert!(
        app.sandbox_requests("/slack/api/chat.postMessage")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn unavailable_slack_is_502() {
    let app = TestApp::spawn().await;
    app.connect("slack", None).await;
    app.sandbox_control(
        "faults",
        json!({"path": "/slack/api/chat.postMessage", "status": 503}),
    )
    .await;
    let response = app
        .execute(
            "slack/message",
            json!({"channel": "#general", "text": "x"}),
            None,
        )
        .await;
    let (status, error) = error_code(response).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(error["code"], "provider_unavailable");
    assert_eq!(error["type"], "provider_error");
}

#[tokio::test]
async fn ratelimited_body_never_needs_reauthorization() {
    let app = TestApp::spawn().await;
    app.connect("slack", None).await;
    app.sandbox_control(
        "faults",
        json!({"path": "/slack/api/chat.postMessage", "status": 200,
               "body": {"ok": false, "error": "ratelimited"}}),
    )
    .await;

    let response = app
        .execute(
            "slack/message",
            json!({"channel": "#general", "text": "x"}),
            None,
        )
        .await;

    let (status, error) = error_code(response).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error["code"], "provider_rate_limited");
    assert_eq!(app.connection_status("slack", None).await, "active");
}

#[tokio::test]
async fn search_without_user_scope_is_missing_scope() {
    let app = TestApp::spawn().await;
    app.connect("slack", None).await;
    app.sql("UPDATE connections SET user_scopes = ''").await;
    app.clear_sandbox_requests().await;

    let response = app
        .execute("slack/search", json!({"query": "report"}), None)
        .await;

    let (status, error) = error_code(response).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error["code"], "missing_scope");
    assert!(app.sandbox_requests("/slack/").await.is_empty());
}
