//! Token lifecycle against the provider's token endpoint: refresh near expiry,
//! transient failures, revocation, hanging refreshes; and a state that a wrong
//! callback must not consume.

use reqwest::StatusCode;
use serde_json::{Value, json};

use patchbay::sandbox::SandboxConfig;

use crate::helpers::{TestApp, error_code};

/// Access tokens that live 60 seconds are always within the 5-minute refresh
/// margin, so every request refreshes first.
fn short_lived() -> SandboxConfig {
    SandboxConfig {
        access_token_ttl: 60,
        ..SandboxConfig::default()
    }
}

async fn connection_status(app: &TestApp, user: &str) -> Value {
    let list: Value = app
        .get("/v1/connections", Some(user))
        .await
        .json()
        .await
        .unwrap();
    list[0]["status"].clone()
}

#[tokio::test]
async fn token_near_expiry_is_refreshed_first() {
    let app = TestApp::spawn_with(short_lived()).await;
    app.connect("google", Some("alice")).await;
    let response = app
        .execute("gmail/read", json!({"userId": "alice"}), None)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let token_calls = app.sandbox_requests("/google/token").await;
    assert_eq!(token_calls.len(), 2, "code exchange, then one refresh");
    // Google answers a refresh without refresh_token: the old one is kept and works again.
    let response = app
        .execute("gmail/read", json!({"userId": "alice"}), None)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.sandbox_requests("/google/token").await.len(), 3);
}

#[tokio::test]
async fn token_endpoint_5xx_is_retried() {
    let app = TestApp::spawn_with(short_lived()).await;
    app.connect("google", Some("alice")).await;
    let fault = json!({"path": "/google/token", "status": 503, "times": 2});
    app.sandbox_control("faults", fault).await;
    let response = app
        .execute("gmail/read", json!({"userId": "alice"}), None)
        .await;
    assert_eq!(response.status(), StatusCode::OK, "third attempt succeeds");
    assert_eq!(app.sandbox_requests("/google/token").await.len(), 4);
}

#[tokio::test]
async fn token_endpoint_down_is_not_revocation() {
    let app = TestApp::spawn_with(short_lived()).await;
    app.connect("google", Some("alice")).await;
    let fault = json!({"path": "/google/token", "status": 500, "times": 10});
    app.sandbox_control("faults", fault).await;
    let response = app
        .execute("gmail/read", json!({"userId": "alice"}), None)
        .await;
    let (status, error) = error_code(response).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(error["code"], "provider_unavailable");
    assert_eq!(connection_status(&app, "alice").await, "active");
    let refresh_calls = app.sandbox_requests("/google/token").await.len() - 1;
    assert_eq!(refresh_calls, 4, "one try and three retries, then no loop");
}

#[tokio::test]
async fn invalid_grant_requires_reauthorization() {
    let app = TestApp::spawn_with(short_lived()).await;
    app.connect("google", Some("alice")).await;
    app.sandbox_control("google/revoke-grants", json!({})).await;
    for _ in 0..2 {
        let response = app
            .execute("gmail/read", json!({"userId": "alice"}), None)
            .await;
        let (status, error) = error_code(response).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(error["code"], "reauthorization_required");
    }
    assert_eq!(
        connection_status(&app, "alice").await,
        "reauthorization_required"
    );
    let refresh_calls = app.sandbox_requests("/google/token").await.len() - 1;
    assert_eq!(refresh_calls, 1, "a revoked grant is not retried");
    // Connecting again makes the connection usable.
    app.connect("google", Some("alice")).await;
    assert_eq!(connection_status(&app, "alice").await, "active");
}

#[tokio::test]
async fn hanging_refresh_releases_every_waiter() {
    let app = TestApp::spawn_with(short_lived()).await;
    app.connect("google", Some("alice")).await;
    // Every attempt hangs, so retries cannot help and the 15-second deadline applies.
    let fault = json!({"path": "/google/token", "delayMs": 60_000, "times": 10});
    app.sandbox_control("faults", fault).await;
    let first = app.execute("gmail/read", json!({"userId": "alice"}), None);
    let second = app.execute("gmail/read", json!({"userId": "alice"}), None);
    let (first, second) = tokio::join!(first, second);
    for response in [first, second] {
        let (status, error) = error_code(response).await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(error["code"], "provider_timeout");
    }
    // The stuck call does not block the connection: the next request refreshes anew.
    let cleared = app
        .client
        .delete(app.sandbox_url("/_sandbox/faults"))
        .send()
        .await
        .unwrap();
    assert!(cleared.status().is_success());
    let response = app
        .execute("gmail/read", json!({"userId": "alice"}), None)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn crossed_state_is_not_consumed() {
    let app = TestApp::spawn().await;
    let consent = app.authorize_url(&app.key, "google", Some("alice")).await;
    let callback = app.consent(&consent, &[]).await;
    let crossed = callback.replace("/google/callback", "/slack/callback");
    let response = app
        .client
        .get(&crossed)
        .header("Accept", "application/json")
        .send()
        .await;
    let (status, error) = error_code(response.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["code"], "invalid_state");
    // The state still works where it belongs: the crossed attempt did not consume it.
    let response = app.client.get(&callback).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}
