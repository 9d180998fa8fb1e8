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
