//! Malformed requests: one JSON error shape everywhere, with a request id.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code};

#[tokio::test]
async fn malformed_bodies_are_400() {
    let app = TestApp::spawn().await;
    let cases: Vec<(&str, &str, Option<&str>)> = vec![
        ("{not json", "application/json", None),
        ("[1,2]", "application/json", None),
        (r#"{"mode": 5}"#, "application/json", Some("mode")),
        (
            r#"{"mode": "initial", "maxResults": "100"}"#,
            "application/json",
            Some("maxResults"),
        ),
        (
            r#"{"mode": "initial", "maxResults": 501}"#,
            "application/json",
            Some("maxResults"),
        ),
        (r#"{"mode": "sideways"}"#, "application/json", Some("mode")),
        (
            r#"{"mode": "incremental"}"#,
            "application/json",
            Some("historyId"),
        ),
        (
            r#"{"mode": "initial", "bogus": 1}"#,
            "application/json",
            Some("bogus"),
        ),
    ];
    for (body, content_type, param) in cases {
        let response = app
            .client
            .post(app.url("/v1/execute/gmail/sync"))
            .bearer_auth(&app.key)
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(response.headers().contains_key("x-request-id"));
        let (status, error) = error_code(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error["type"], "invalid_request_error", "{body}");
        assert_eq!(error["code"], "invalid_request", "{body}");
        if let Some(param) = param {
            assert_eq!(error["param"], param, "{body}");
        }
    }
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .post(app.url("/v1/execute/slack/message"))
        .bearer_auth(&app.key)
        .header("Content-Type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    let (status, error) = error_code(response).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(error["code"], "unsupported_media_type");
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let app = TestApp::spawn().await;
    let big = "x".repeat(1024 * 1024 + 10);
    let response = app
        .execute(
            "slack/message",
            json!({"channel": "#general", "text": big}),
            None,
        )
        .await;
    let (status, error) = error_code(response).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error["code"], "payload_too_large");
    // gmail/send accepts more than 1 MiB: the same body size reaches validation.
    let response = app
        .execute(
            "gmail/send",
            json!({"to": "bob@example.com", "subject": "s", "body": big}),
            None,
        )
        .await;
    assert_ne!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn unknown_route_and_method() {
    let app = TestApp::spawn().await;
    let (status, error) = error_code(app.get("/v1/nothing", None).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error["code"], "not_found");
    let (status, error) = error_code(app.get("/v1/execute/gmail/read", None).await).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error["code"], "method_not_allowed");
}

#[tokio::test]
async fn health_needs_no_key() {
    let app = TestApp::spawn().await;
    let response = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["database"], "ok");
}
