//! The OAuth flow's edges: redirect origins, denied consent, state bound to its
//! provider, unconfigured providers, partial grants and parallel authorizations.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code};

const ORIGIN: &str = "https://app.example.com";

/// GET authorize with `redirect_after` and an optional user.
async fn authorize_with_redirect(
    app: &TestApp,
    provider: &str,
    redirect_after: &str,
    user: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .client
        .get(app.url(&format!("/v1/connections/{provider}/authorize")))
        .query(&[("redirect_after", redirect_after)])
        .bearer_auth(&app.key);
    if let Some(user) = user {
        request = request.header("X-User-Id", user);
    }
    request.send().await.unwrap()
}

async fn allow_origin(app: &TestApp) {
    app.gateway
        .state()
        .store
        .add_redirect_origin(&app.tenant_id, ORIGIN)
        .await
        .unwrap();
}

#[tokio::test]
async fn redirect_after_gets_connected() {
    let app = TestApp::spawn().await;
    allow_origin(&app).await;
    let response = authorize_with_redirect(
        &app,
        "google",
        "https://app.example.com/done?x=1",
        Some("alice"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let callback = app.consent(body["url"].as_str().unwrap(), &[]).await;

    let response = app.client.get(&callback).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::FOUND);
    let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(location.origin().ascii_serialization(), ORIGIN);
    assert_eq!(location.path(), "/done");
    let query: Vec<(String, String)> = location.query_pairs().into_owned().collect();
    assert!(
        query.contains(&("x".to_owned(), "1".to_owned())),
        "{query:?}"
    );
    assert!(
        query.contains(&("connected".to_owned(), "google".to_owned())),
        "{query:?}"
    );
    assert_eq!(
        app.connection_status("google", Some("alice")).await,
        "active"
    );
}

#[tokio::test]
async fn look_alike_origins_are_rejected() {
    let app = TestApp::spawn().await;
    allow_origin(&app).await;
    for redirect in [
        "https://app.example.com.evil.test/x",
        "https://app.example.com@evil.test/x",
        "https://user@app.example.com/x",
        "http://app.example.com/x",
        "https://app.example.com:8443/x",
        "https://evil.test/https://app.example.com",
        "//app.example.com/x",
        "/relative",
        "javascript:alert(1)",
        "ftp://app.example.com/x",
        "https://APP.example.com.evil.test/",
    ] {
        let response = authorize_with_redirect(&app, "google", redirect, None).await;
        let (status, error) = error_code(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{redirect}");
        assert_eq!(error["code"], "invalid_redirect", "{redirect}");
    }
    let response =
        authorize_with_redirect(&app, "google", "https://app.example.com/ok", None).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn other_tenants_origin_is_rejected() {
    let app = TestApp::spawn().await;
    allow_origin(&app).await;
    let (_, other_key) = app.new_tenant("Other").await;
    let response = app
        .client
        .get(app.url("/v1/connections/google/authorize"))
        .query(&[("redirect_after", "https://app.example.com/")])
        .bearer_auth(&other_key)
        .send()
        .await
        .unwrap();
    let (status, error) = error_code(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["code"], "invalid_redirect");
}

#[tokio::test]
async fn denied_consent_redirects_with_error() {
    let app = TestApp::spawn().await;
    allow_origin(&app).await;
    for provider in ["google", "slack"] {
        let response =
            authorize_with_redirect(&app, provider, "https://app.example.com/done", None).await;
        let body: Value = response.json().await.unwrap();
        let callback = app
            .consent(
                body["url"].as_str().unwrap(),
                &[("sandbox_deny", "access_denied")],
            )
            .await;

        let response = app.client.get(&callback).send().await.unwrap();

        assert_eq!(response.status(), StatusCode::FOUND, "{provider}");
        let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
        let query: Vec<(String, String)> = location.query_pairs().into_owned().collect();
        assert!(
            query.contains(&("error".to_owned(), "access_denied".to_owned())),
            "{provider}: {query:?}"
        );
        assert!(
            !query.iter().any(|(name, _)| name == "connected"),
            "{provider}"
        );
    }
    let list: Value = app.get("/v1/connections", None).await.json().await.unwrap();
    assert_eq!(list, json!([]), "nothing stored");
}

#[tokio::test]
async fn denied_consent_without_redirect_shows_page() {
    let app = TestApp::spawn().await;
    let response = app
        .connect_as(
            &app.key,
            "google",
            None,
            &[("sandbox_deny", "access_denied")],
        )
        .await;
    assert_ne!(response.status(), StatusCode::FOUND);
    assert!(!response.status().is_server_error());
    let list: Value = app.get("/v1/connections", None).await.json().await.unwrap();
    assert_eq!(list, json!([]), "nothing stored");
}

#[tokio::test]
async fn state_of_other_provider_is_rejected() {
    let app = TestApp::spawn().await;
    let consent = app.authorize_url(&app.key, "google", Some("alice")).await;
    let callback = app.consent(&consent, &[]).await;
    let swapped = callback.replace(
        "/connections/google/callback",
        "/connections/slack/callback",
    );
    assert_ne!(swapped, callback);

    let response = app
        .client
        .get(&swapped)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    let (status, error) = error_code(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["code"], "invalid_state");
    let list: Value = app.get("/v1/connections", None).await.json().await.unwrap();
    assert_eq!(list, json!([]), "nothing stored");
}

#[tokio::test]
async fn unknown_and_missing_state_are_rejected() {
    let app = TestApp::spawn().await;
    for (query, code) in [
        ("state=forged&code=4/0abc", "invalid_state"),
        ("code=4/0abc", "invalid_state"),
        ("", "invalid_state"),
    ] {
        let response = app
            .client
            .get(app.url(&format!("/v1/connections/google/callback?{query}")))
            .header("Accept", "application/json")
            .send()
            .await
            .unwrap();
        let (status, error) = error_code(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(error["code"], code, "{query}");
    }
    assert!(app.sandbox_requests("/google/token").await.is_empty());
}

#[tokio::test]
async fn expired_state_json_is_invalid_state() {
    let app = TestApp::spawn().await;
    let consent = app.authorize_url(&app.key, "slack", None).await;
    let callback = app.consent(&consent, &[]).await;
    app.sql("UPDATE oauth_states SET expires_at = '2000-01-01T00:00:00.000000Z'")
        .await;
    let response = app
        .client
        .get(&callback)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    let (status, error) = error_code(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["code"], "invalid_state");
    assert!(
        app.sandbox_requests("/slack/api/oauth.v2.access")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn two_pending_authorizations_complete() {
    let app = TestApp::spawn().await;
    let first = app.authorize_url(&app.key, "google", Some("alice")).await;
    let second = app.authorize_url(&app.key, "google", Some("alice")).await;
    let first = app.consent(&first, &[]).await;
    let second = app.consent(&second, &[]).await;
    assert_eq!(
        app.client.get(&second).send().await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        app.client.get(&first).send().await.unwrap().status(),
        StatusCode::OK
    );
    let list: Value = app.get("/v1/connections", None).await.json().await.unwrap();
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "one connection, replaced"
    );
}

#[tokio::test]
async fn unconfigured_provider_is_rejected() {
    let app = TestApp::spawn_configured(Default::default(), |config| {
        config.slack.client = None;
    })
    .await;
    let (status, error) = error_code(app.get("/v1/connections/slack/authorize", None).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["code"], "provider_not_configured");
    assert_eq!(error["type"], "invalid_request_error");
    let response = app.get("/v1/connections/google/authorize", None).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn redirect_uri_ignores_forwarded_headers() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/v1/connections/slack/authorize"))
        .bearer_auth(&app.key)
        .header("Host", "evil.test")
        .header("X-Forwarded-Host", "evil.test")
        .header("X-Forwarded-Proto", "https")
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    let url = url::Url::parse(body["url"].as_str().unwrap()).unwrap();
    let redirect_uri = url
        .query_pairs()
        .find(|(name, _)| name == "redirect_uri")
        .map(|(_, value)| value.into_owned());
    assert_eq!(
        redirect_uri.as_deref(),
        Some(app.url("/v1/connections/slack/callback").as_str())
    );
}

#[tokio::test]
async fn partial_grant_gives_missing_scope() {
    let app = TestApp::spawn().await;
    let response = app
        .connect_as(
            &app.key,
            "google",
            Some("alice"),
            &[(
                "sandbox_scopes",
                "openid email https://www.googleapis.com/auth/gmail.send",
            )],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let list: Value = app
        .get("/v1/connections", Some("alice"))
        .await
        .json()
        .await
        .unwrap();
    let scopes = list[0]["scopes"].as_str().unwrap().to_owned();
    assert!(!scopes.contains("gmail.modify"), "{scopes}");
    app.clear_sandbox_requests().await;

    for (action, body) in [
        ("gmail/read", json!({"userId": "alice"})),
        ("gmail/sync", json!({"userId": "alice", "mode": "initial"})),
    ] {
        let response = app.execute(action, body, None).await;
        let (status, error) = error_code(response).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{action}");
        assert_eq!(error["code"], "missing_scope", "{action}");
    }
    assert!(
        app.sandbox_requests("/gmail/").await.is_empty(),
        "Gmail never called"
    );

    let response = app
        .execute(
            "gmail/send",
            json!({"userId": "alice", "to": "bob@example.com", "subject": "s", "body": "b"}),
            None,
        )
        .await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "gmail.send suffices to send"
    );
}

#[tokio::test]
async fn send_without_send_scope_is_missing_scope() {
    let app = TestApp::spawn().await;
    app.connect_as(
        &app.key,
        "google",
        None,
        &[(
            "sandbox_scopes",
            "openid email https://www.googleapis.com/auth/gmail.readonly",
        )],
    )
    .await;
    app.clear_sandbox_requests().await;
    let response = app
        .execute(
            "gmail/send",
            json!({"to": "bob@example.com", "subject": "s", "body": "b"}),
            None,
        )
        .await;
    let (status, error) = error_code(response).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error["code"], "missing_scope");
    assert!(app.sandbox_requests("/gmail/").await.is_empty());
    assert!(app.sandbox_requests("/upload/").await.is_empty());

    let response = app.execute("gmail/read", json!({}), None).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "gmail.readonly suffices to read"
    );
}
