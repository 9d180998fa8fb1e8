//! The user-id routing rules of execute and connection routes, and isolation
//! between users and tenants.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code, simple_eml};

/// The Slack team name of the connection that posted, read back from the sandbox.
async fn post_as(app: &TestApp, body: Value, header: Option<&str>) -> (StatusCode, Value) {
    let response = app.execute("slack/message", body, header).await;
    let status = response.status();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn body_user_id_wins_over_header() {
    let app = TestApp::spawn().await;
    app.connect_as(
        &app.key,
        "google",
        Some("alice"),
        &[("login_hint", "alice@example.com")],
    )
    .await;
    app.connect_as(
        &app.key,
        "google",
        Some("bob"),
        &[("login_hint", "bob@example.com")],
    )
    .await;
    let response = app
        .execute(
            "gmail/sync",
            json!({"mode": "initial", "userId": "alice"}),
            Some("bob"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let profile_calls = app.sandbox_requests("/gmail/v1/users/me/profile").await;
    assert_eq!(profile_calls.len(), 1);
    let list: Value = app.get("/v1/connections", None).await.json().await.unwrap();
    let alice = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["userId"] == "alice")
        .unwrap();
    assert_eq!(alice["accountName"], "alice@example.com");
}

#[tokio::test]
async fn header_only_and_neither() {
    let app = TestApp::spawn().await;
    app.connect("slack", Some("alice")).await;
    let (status, _) = post_as(
        &app,
        json!({"channel": "#general", "text": "a"}),
        Some("alice"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = post_as(&app, json!({"channel": "#general", "text": "b"}), None).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "no org-wide connection exists"
    );
    assert_eq!(body["error"]["code"], "connection_not_found");
    app.connect("slack", None).await;
    let (status, _) = post_as(&app, json!({"channel": "#general", "text": "c"}), None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn invalid_user_ids_are_400() {
    let app = TestApp::spawn().await;
    app.connect("slack", None).await;
    let long = "u".repeat(257);
    for (user, header) in [
        (json!(""), None),
        (json!(null), None),
        (json!(7), None),
        (json!(long), None),
        (json!("tab\there"), None),
    ] {
        let (status, body) = post_as(
            &app,
            json!({"channel": "#general", "text": "x", "userId": user}),
            header,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{user}");
        assert_eq!(body["error"]["param"], "userId", "{user}");
    }
    let response = app
        .client
        .get(app.url("/v1/connections"))
        .bearer_auth(&app.key)
        .header("X-User-Id", "")
        .send()
        .await
        .unwrap();
    let (status, error) = error_code(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["param"], "X-User-Id");
    assert_eq!(
        app.sandbox_requests("/slack/api/chat.postMessage")
            .await
            .len(),
        0
    );
}

#[tokio::test]
async fn other_user_cannot_read_mailbox() {
    let app = TestApp::spawn().await;
    app.connect("google", Some("alice")).await;
    app.add_message(&simple_eml("private", "alice only")).await;
    let response = app
        .execute("gmail/read", json!({"userId": "bob"}), None)
        .await;
    let (status, error) = error_code(response).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error["code"], "connection_not_found");
    let response = app.execute("gmail/read", json!({}), None).await;
    let (status, _) = error_code(response).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "no org-wide fallback to alice"
    );
    assert_eq!(
        app.sandbox_requests("/gmail/").await.len(),
        0,
        "gmail never called"
    );
}

#[tokio::test]
async fn other_tenant_sees_nothing() {
    let app = TestApp::spawn().await;
    app.connect("google", Some("alice")).await;
    app.connect("slack", None).await;
    let (_, other_key) = app.new_tenant("Other").await;

    let list = app
        .client
        .get(app.url("/v1/connections"))
        .bearer_auth(&other_key)
        .send()
        .await
        .unwrap();
    assert_eq!(list.json::<Value>().await.unwrap(), json!([]));

    for (action, body) in [
        ("gmail/read", json!({"userId": "alice"})),
        ("slack/message", json!({"channel": "#general", "text": "x"})),
    ] {
        let response = app.execute_with_key(&other_key, action, body, None).await;
        let (status, error) = error_code(response).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{action}");
        assert_eq!(error["code"], "connection_not_found", "{action}");
    }
    let response = app
        .client
        .delete(app.url("/v1/connections/google"))
        .bearer_auth(&other_key)
        .header("X-User-Id", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let mine: Value = app.get("/v1/connections", None).await.json().await.unwrap();
    assert_eq!(
        mine.as_array().unwrap().len(),
        2,
        "own connections untouched"
    );
}
