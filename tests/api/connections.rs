//! Connections: the OAuth flow, listing, deleting, state handling, redirects.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestApp, error_code};

#[tokio::test]
async fn google_flow_stores_user_connection() {
    let app = TestApp::spawn().await;
    let response = app.connect("google", Some("alice")).await;
    let page = response.text().await.unwrap();
    assert!(page.contains("connected"), "{page}");

    let list: Value = app
        .get("/v1/connections", Some("alice"))
        .await
        .json()
        .await
        .unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["provider"], "google");
    assert_eq!(list[0]["userId"], "alice");
    assert_eq!(list[0]["accountName"], "ada@example.com");
    assert_eq!(list[0]["status"], "active");
    let scopes = list[0]["scopes"].as_str().unwrap();
    assert!(
        scopes.contains("https://www.googleapis.com/auth/gmail.send"),
        "{scopes}"
    );

    let text = serde_json::to_string(&list).unwrap();
    assert!(!text.contains("ya29"), "token leaked into the listing");
    assert!(
        app.get("/v1/connections", Some("bob"))
            .await
            .json::<Value>()
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn authorize_url_has_pkce_and_scopes() {
    let app = TestApp::spawn().await;
    let url = url::Url::parse(&app.authorize_url(&app.key, "google", None).await).unwrap();
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["access_type"], "offline");
    assert_eq!(query["prompt"], "consent");
    assert_eq!(query["include_granted_scopes"], "true");
    assert!(
        query["state"].len() >= 22,
        "state carries at least 128 bits"
    );
    assert_eq!(
        query["redirect_uri"],
        app.url("/v1/connections/google/callback")
    );
    assert!(query["scope"].contains("https://www.googleapis.com/auth/gmail.modify"));
}

#[tokio::test]
async fn state_works_once() {
    let app = TestApp::spawn().await;
    let consent = app.authorize_url(&app.key, "google", Some("alice")).await;
    let callback = app.consent(&consent, &[]).await;
    let first = app.client.get(&callback).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let replay = app
        .client
        .get(&callback)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    let (status, error) = error_code(replay).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["code"], "invalid_state");
}

#[tokio::test]
async fn expired_state_is_rejected() {
    let app = TestApp::spawn().await;
    let consent = app.authorize_url(&app.key, "google", Some("alice")).await;
    let callback = app.consent(&consent, &[]).await;
    app.sql("UPDATE oauth_states SET expires_at = '2000-01-01T00:00:00.000000Z'")
        .await;
    let response = app.client.get(&callback).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let page = response.text().await.unwrap();
    assert!(page.contains("start the connection again"), "{page}");
    let list: Value = app.get("/v1/connections", None).await.json().await.unwrap();
    assert!(list.as_array().unwrap().is_empty(), "nothing stored");
}

#[tokio::test]
async fn delete_removes_and_revokes() {
    let app = TestApp::spawn().await;
    app.connect("google", Some("alice")).await;
    let response = app.delete("/v1/connections/google", Some("alice")).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.await_sandbox_requests("/google/revoke", 1).await.len(),
        1
    );
    let (status, error) =
        error_code(app.delete("/v1/connections/google", Some("alice")).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error["code"], "connection_not_found");
}

#[tokio::test]
async fn unknown_provider_is_404() {
    let app = TestApp::spawn().await;
    for path in [
        "/v1/connections/github/authorize",
        "/v1/connections/Google/authorize",
    ] {
        let (status, error) = error_code(app.get(path, None).await).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(error["code"], "unknown_provider", "{path}");
    }
}

#[tokio::test]
async fn tokens_are_encrypted_at_rest() {
    let app = TestApp::spawn().await;
    app.connect("google", Some("alice")).await;
    app.connect("slack", Some("alice")).await;
    let bytes = app.stored_bytes().await;
    assert!(
        bytes.windows(3).any(|w| w == b"v1."),
        "ciphertexts are stored"
    );
    for marker in ["ya29.", "1//", "xoxb-", "xoxp-"] {
        let needle = marker.as_bytes();
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "{marker} found in plain text"
        );
    }
}

#[tokio::test]
async fn delete_survives_failed_revoke() {
    let app = TestApp::spawn().await;
    app.connect("google", Some("alice")).await;
    app.connect("slack", Some("alice")).await;
    app.sandbox_control(
        "faults",
        serde_json::json!({"path": "/google/revoke", "status": 503, "times": 10}),
    )
    .await;
    app.sandbox_control(
        "faults",
        serde_json::json!({"path": "/slack/api/auth.revoke", "status": 500, "times": 10}),
    )
    .await;

    for provider in ["google", "slack"] {
        let path = format!("/v1/connections/{provider}");
        let response = app.delete(&path, Some("alice")).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "{provider}");
        assert!(
            app.connection_status(provider, Some("alice"))
                .await
                .is_null()
        );
    }
    assert!(
        !app.await_sandbox_requests("/slack/api/auth.revoke", 1)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn list_shows_user_and_org_connections() {
    let app = TestApp::spawn().await;
    app.connect("google", Some("alice")).await;
    app.connect("slack", None).await;

    let all: Value = app.get("/v1/connections", None).await.json().await.unwrap();
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 2);
    let slack = all.iter().find(|c| c["provider"] == "slack").unwrap();
    assert!(slack["userId"].is_null());
    assert_eq!(slack["accountName"], "Sandbox Team");
    assert!(slack["connectedAt"].as_str().is_some());

    let alice: Value = app
        .get("/v1/connections", Some("alice"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(alice.as_array().unwrap().len(), 1);
    assert_eq!(alice[0]["provider"], "google");
}
