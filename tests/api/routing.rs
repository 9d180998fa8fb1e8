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

/// Every execute action, with the user id in the body when `user` is given.
fn every_action(user: Option<&str>) -> Vec<(&'static str, Value)> {
    let mut actions = vec![
        ("gmail/read", json!({})),
        ("gmail/read", json!({"messageId": "18c0000000000001"})),
        ("gmail/sync", json!({"mode": "initial"})),
        (
            "gmail/sync",
            json!({"mode": "incremental", "historyId": "1"}),
        ),
        (
            "gmail/send",
            json!({"to": "eve@example.com", "subject": "s", "body": "b"}),
        ),
        ("slack/message", json!({"channel": "#general", "text": "x"})),
        ("slack/search", json!({"query": "report"})),
    ];
    if let Some(user) = user {
        for (_, body) in &mut actions {
            body["userId"] = json!(user);
        }
    }
    actions
}

#[tokio::test]
async fn isolation_on_every_path() {
    let app = TestApp::spawn().await;
    app.connect("google", Some("alice")).await;
    app.connect("slack", Some("alice")).await;
    app.add_message(&simple_eml("private", "alice only")).await;
    let (_, other_key) = app.new_tenant("Other").await;
    // Expired tokens: a leak would show as a refresh call.
    app.sandbox_control("google/expire-tokens", json!({})).await;
    app.sql("UPDATE connections SET expires_at = '2000-01-01T00:00:00.000000Z'")
        .await;
    app.clear_sandbox_requests().await;

    for (key, user) in [
        (app.key.as_str(), Some("bob")),
        (app.key.as_str(), None),
        (other_key.as_str(), Some("alice")),
        (other_key.as_str(), None),
    ] {
        for (action, body) in every_action(user) {
            let response = app.execute_with_key(key, action, body, None).await;
            let (status, error) = error_code(response).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{action} {user:?}");
            assert_eq!(error["code"], "connection_not_found", "{action} {user:?}");
        }
        for provider in ["google", "slack"] {
            let mut request = app
                .client
                .delete(app.url(&format!("/v1/connections/{provider}")))
                .bearer_auth(key);
            if let Some(user) = user {
                request = request.header("X-User-Id", user);
            }
            let (status, error) = error_code(request.send().await.unwrap()).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{provider} {user:?}");
            assert_eq!(error["code"], "connection_not_found");
        }
    }
    let leaked = app.sandbox_requests("/").await;
    assert!(leaked.is_empty(), "provider called: {leaked:?}");

    let other_list = app
        .client
        .get(app.url("/v1/connections"))
        .bearer_auth(&other_key)
        .header("X-User-Id", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(other_list.json::<Value>().await.unwrap(), json!([]));
    assert_eq!(
        app.connection_status("google", Some("alice")).await,
        "active"
    );
    assert_eq!(
        app.connection_status("slack", Some("alice")).await,
        "active"
    );
    let response = app
        .execute("gmail/read", json!({"userId": "alice"}), None)
        .await;
    assert_eq!(response.status(), StatusCode::OK, "alice still works");
}

#[tokio::test]
async fn same_user_id_in_two_tenants_is_separate() {
    let app = TestApp::spawn().await;
    let (_, other_key) = app.new_tenant("Other").await;
    app.connect_as(
        &app.key,
        "google",
        Some("alice"),
        &[("login_hint", "a1@example.com")],
    )
    .await;
    app.connect_as(
        &other_key,
        "google",
        Some("alice"),
        &[("login_hint", "a2@example.com")],
    )
    .await;

    let mine: Value = app
        .get("/v1/connections", Some("alice"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine.as_array().unwrap().len(), 1);
    assert_eq!(mine[0]["accountName"], "a1@example.com");

    let response = app
        .client
        .delete(app.url("/v1/connections/google"))
        .bearer_auth(&other_key)
        .header("X-User-Id", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.connection_status("google", Some("alice")).await,
        "active"
    );
}

#[tokio::test]
async fn header_user_id_selects_connection() {
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
        None,
        &[("login_hint", "org@example.com")],
    )
    .await;
    app.sandbox_control(
        "gmail/messages",
        json!({"email": "alice@example.com", "eml": simple_eml("for alice", "a")}),
    )
    .await;
    app.sandbox_control(
        "gmail/messages",
        json!({"email": "org@example.com", "eml": simple_eml("for org", "o")}),
    )
    .await;

    for (header, body, subject) in [
        (Some("alice"), json!({}), "for alice"),
        (None, json!({}), "for org"),
        (Some("nobody"), json!({"userId": "alice"}), "for alice"),
    ] {
        let response = app.execute("gmail/read", body, header).await;
        assert_eq!(response.status(), StatusCode::OK, "{header:?}");
        let read: Value = response.json().await.unwrap();
        let messages = read["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 1, "{header:?}");
        assert_eq!(messages[0]["subject"], subject, "{header:?}");
    }
    let response = app.execute("gmail/read", json!({}), Some("bob")).await;
    let (status, error) = error_code(response).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error["code"], "connection_not_found");
}

#[tokio::test]
async fn delete_removes_only_its_owner() {
    let app = TestApp::spawn().await;
    app.connect("google", Some("alice")).await;
    app.connect("google", Some("bob")).await;
    app.connect("google", None).await;

    let response = app.delete("/v1/connections/google", Some("bob")).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.connection_status("google", Some("alice")).await,
        "active"
    );
    assert_eq!(app.connection_status("google", None).await, "active");
    assert!(app.connection_status("google", Some("bob")).await.is_null());

    let response = app.delete("/v1/connections/google", None).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.connection_status("google", Some("alice")).await,
        "active"
    );
    assert!(app.connection_status("google", None).await.is_null());
}
