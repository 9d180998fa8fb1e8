//! Access tokens: one refresh per connection however many requests wait, the old
//! refresh token kept, one retry after a 401, and revoked grants.

use reqwest::StatusCode;
use serde_json::json;

use patchbay::sandbox::SandboxConfig;

use crate::helpers::{TestApp, error_code, simple_eml};

/// Expires Google access tokens at the sandbox and in the gateway's database, so
/// the gateway refreshes before its next call.
async fn expire_google_tokens(app: &TestApp) {
    app.sandbox_control("google/expire-tokens", json!({})).await;
    app.sql("UPDATE connections SET expires_at = '2000-01-01T00:00:00.000000Z'")
        .await;
}

#[tokio::test]
async fn concurrent_requests_share_one_refresh() {
    let app = TestApp::spawn().await;
    app.connect("google", Some("alice")).await;
    app.add_message(&simple_eml("hello", "body")).await;
    expire_google_tokens(&app).await;
    // A slow token endpoint keeps the first refresh in flight while the others arrive.
    app.sandbox_control("faults", json!({"path": "/google/token", "delayMs": 300}))
        .await;
    app.clear_sandbox_requests().await;

    let requests = (0..20).map(|_| app.execute("gmail/read", json!({"userId": "alice"}), None));
    let responses = futures::future::join_all(requests).await;

    for response in responses {
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(app.sandbox_requests("/google/token").await.len(), 1);
}

#[tokio::test]
async fn refresh_keeps_old_refresh_token() {
    let app = TestApp::spawn().await;
    app.connect("google", Some("alice")).await;
    app.clear_sandbox_requests().await;

    for round in 0..2 {
        expire_google_tokens(&app).await;
        let response = app
            .execute("gmail/read", json!({"userId": "alice"}), None)
            .await;
        assert_eq!(response.status(), StatusCode::OK, "round {round}");
    }

    assert_eq!(app.sandbox_requests("/google/token").await.len(), 2);
    assert_eq!(
        app.connection_status("google", Some("alice")).await,
        "active"
    );
}

#[tokio::test]
async fn unauthorized_fresh_token_refreshes_once() {
    let app = TestApp::spawn().await;
    app.connect("google", Some("alice")).await;
    app.sandbox_control("google/expire-tokens", json!({})).await;
    app.clear_sandbox_requests().await;

    let response = app
        .execute("gmail/read", json!({"userId": "alice"}), None)
        .await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.sandbox_requests("/google/token").await.len(), 1);
    let lists = app.sandbox_requests("/gmail/v1/users/me/messages").await;
    assert_eq!(lists.len(), 2, "one rejected call and one retry");
}

#[tokio::test]
async fn revoked_google_grant_needs_reauthorization() {
    let app = TestApp::spawn().await;
    app.connect("google", Some("alice")).await;
    app.sandbox_control("google/revoke-grants", json!({})).await;
    expire_google_tokens(&app).await;
    app.clear_sandbox_requests().await;

    let response = app
        .execute("gmail/read", json!({"userId": "alice"}), None)
        .await;
    let (status, error) = error_code(response).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error["code"], "reauthorization_required");
    assert_eq!(error["type"], "connection_error");
    assert_eq!(
        app.connection_status("google", Some("alice")).await,
        "reauthorization_required"
    );

    // The next request fails at once, without another refresh attempt.
    let response = app
        .execute("gmail/read", json!({"userId": "alice"}), None)
        .await;
    let (status, error) = error_code(response).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error["code"], "reauthorization_required");
    assert_eq!(app.sandbox_requests("/google/token").await.len(), 1);
    assert!(app.sandbox_requests("/gmail/").await.is_empty());
}

#[tokio::test]
async fn revoked_google_access_token_needs_reauthorization() {
    let app = TestApp::spawn().await;
    app.connect("google", None).await;
    app.sandbox_control("google/revoke-grants", json!({})).await;

    let response = app.execute("gmail/read", json!({}), None).await;
    let (status, error) = error_code(response).await;

    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error["code"], "reauthorization_required");
    assert_eq!(
        app.connection_status("google", None).await,
        "reauthorization_required"
    );
}

#[tokio::test]
async fn revoked_slack_token_needs_reauthorization() {
    let app = TestApp::spawn().await;
    app.connect("slack", Some("alice")).await;
    app.sandbox_control("slack/revoke", json!({})).await;

    let response = app
        .execute(
            "slack/message",
            json!({"channel": "#general", "text": "hi", "userId": "alice"}),
            None,
        )
        .await;
    let (status, error) = error_code(response).await;

    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error["code"], "reauthorization_required");
    assert_eq!(
        app.connection_status("slack", Some("alice")).await,
        "reauthorization_required"
    );
    let posted = app.slack_messages().await;
    assert!(!posted.iter().any(|m| m["text"] == "hi"), "nothing posted");
}

#[tokio::test]
async fn reconnecting_restores_active_status() {
    let app = TestApp::spawn().await;
    app.connect("google", Some("alice")).await;
    app.sandbox_control("google/revoke-grants", json!({})).await;
    let response = app
        .execute("gmail/read", json!({"userId": "alice"}), None)
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    app.connect("google", Some("alice")).await;

    assert_eq!(
        app.connection_status("google", Some("alice")).await,
        "active"
    );
    let response = app
        .execute("gmail/read", json!({"userId": "alice"}), None)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn slack_rotation_refreshes_both_tokens() {
    let config = SandboxConfig {
        slack_token_rotation: true,
        ..SandboxConfig::default()
    };
    let app = TestApp::spawn_with(config).await;
    app.connect("slack", None).await;

    for round in 0..2 {
        app.sandbox_control("slack/expire-tokens", json!({})).await;
        app.sql(
            "UPDATE connections SET expires_at = '2000-01-01T00:00:00.000000Z', \
             user_expires_at = '2000-01-01T00:00:00.000000Z'",
        )
        .await;
        app.clear_sandbox_requests().await;

        let response = app
            .execute(
                "slack/message",
                json!({"channel": "#general", "text": format!("round {round}")}),
                None,
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK, "round {round}");
        let response = app
            .execute("slack/search", json!({"query": "quarterly"}), None)
            .await;
        assert_eq!(response.status(), StatusCode::OK, "round {round}");

        // Slack refresh tokens work once: the second round only passes when the
        // first stored the new refresh token of each pair.
        let refreshes = app.sandbox_requests("/slack/api/oauth.v2.access").await;
        assert_eq!(refreshes.len(), 2, "round {round}: bot and user token");
    }
    assert_eq!(app.connection_status("slack", None).await, "active");
}

#[tokio::test]
async fn concurrent_requests_on_revoked_grant() {
    let app = TestApp::spawn().await;
    app.connect("google", None).await;
    app.sandbox_control("google/revoke-grants", json!({})).await;
    expire_google_tokens(&app).await;
    app.sandbox_control("faults", json!({"path": "/google/token", "delayMs": 300}))
        .await;
    app.clear_sandbox_requests().await;

    let requests = (0..10).map(|_| app.execute("gmail/read", json!({}), None));
    let responses = futures::future::join_all(requests).await;

    for response in responses {
        let (status, error) = error_code(response).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(error["code"], "reauthorization_required");
    }
    assert_eq!(app.sandbox_requests("/google/token").await.len(), 1);
    assert!(app.sandbox_requests("/gmail/").await.is_empty());
}

#[tokio::test]
async fn rate_limited_refresh_is_429() {
    let app = TestApp::spawn().await;
    app.connect("google", None).await;
    expire_google_tokens(&app).await;
    app.sandbox_control(
        "faults",
        json!({"path": "/google/token", "status": 429, "retryAfter": 5}),
    )
    .await;

    let response = app.execute("gmail/read", json!({}), None).await;

    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "5");
    let (_, error) = error_code(response).await;
    assert_eq!(error["code"], "provider_rate_limited");
    assert_eq!(app.connection_status("google", None).await, "active");

    let response = app.execute("gmail/read", json!({}), None).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the next request refreshes"
    );
}
