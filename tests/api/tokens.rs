//! Token lifecycle against the provider's token endpoint: refresh near expiry,
//! Slack token rotation, transient failures, hanging refreshes, the redirect URI.

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
async fn slack_rotation_refreshes_both_tokens() {
    let sandbox = SandboxConfig {
        slack_token_rotation: true,
        ..short_lived()
    };
    let app = TestApp::spawn_with(sandbox).await;
    app.connect("slack", Some("alice")).await;
    let body = json!({"channel": "#general", "text": "rotated", "userId": "alice"});
    assert_eq!(
        app.execute("slack/message", body.clone(), None)
            .await
            .status(),
        StatusCode::OK
    );
    let search = json!({"query": "rotated", "userId": "alice"});
    assert_eq!(
        app.execute("slack/search", search.clone(), None)
            .await
            .status(),
        StatusCode::OK
    );
    // Each Slack refresh invalidates the refresh token it used: a second round
    // works only if the new refresh tokens were stored.
    assert_eq!(
        app.execute("slack/message", body, None).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.execute("slack/search", search, None).await.status(),
        StatusCode::OK
    );
    let calls = app
        .sandbox_requests("/slack/api/oauth.v2.access")
        .await
        .len();
    assert_eq!(calls, 5, "one code exchange and four refreshes");
    assert_eq!(connection_status(&app, "alice").await, "active");
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
async fn redirect_uri_ignores_forwarded_headers() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/v1/connections/google/authorize"))
        .bearer_auth(&app.key)
        .header("Host", "evil.test")
        .header("X-Forwarded-Host", "evil.test")
        .header("X-Forwarded-Proto", "https")
        .header("Forwarded", "host=evil.test;proto=https")
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    let url = url::Url::parse(body["url"].as_str().unwrap()).unwrap();
    let redirect_uri = url
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .unwrap()
        .1;
    assert_eq!(redirect_uri, app.url("/v1/connections/google/callback"));
}

#[tokio::test]
async fn two_pending_authorizations_both_complete() {
    let app = TestApp::spawn().await;
    let first = app.authorize_url(&app.key, "google", Some("alice")).await;
    let second = app.authorize_url(&app.key, "google", Some("alice")).await;
    let first_callback = app.consent(&first, &[]).await;
    let second_callback = app.consent(&second, &[]).await;
    for callback in [second_callback, first_callback] {
        let response = app.client.get(callback).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let list: Value = app
        .get("/v1/connections", Some("alice"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "the second completion replaced the first"
    );
}

#[tokio::test]
async fn state_of_other_provider_is_rejected() {
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
