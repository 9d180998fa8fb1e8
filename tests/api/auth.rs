//! API keys: every bad key form is a 401, revocation applies at once.

use reqwest::StatusCode;

use crate::helpers::{TestApp, error_code};

#[tokio::test]
async fn bad_keys_are_rejected() {
    let app = TestApp::spawn().await;
    let valid_shape = format!("pb_live_{}", "a".repeat(40));
    let lowercase_scheme = format!("bearer {}", app.key);
    let cases: Vec<Option<String>> = vec![
        None,
        Some(String::new()),
        Some("Bearer".to_owned()),
        Some(format!("Basic {}", app.key)),
        Some(format!("Bearer {valid_shape}")),
        Some(format!("Bearer {}", app.key.to_uppercase())),
        Some(format!("Bearer {}x", app.key)),
        Some("Bearer pb_live_short".to_owned()),
    ];
    for header in cases {
        let mut request = app.client.get(app.url("/v1/connections"));
        if let Some(value) = &header {
            request = request.header("Authorization", value);
        }
        let response = request.send().await.unwrap();
        assert!(response.headers().contains_key("x-request-id"));
        let (status, error) = error_code(response).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{header:?}");
        assert_eq!(error["code"], "invalid_api_key", "{header:?}");
        assert_eq!(error["type"], "authentication_error");
    }
    let response = app
        .client
        .get(app.url("/v1/connections"))
        .header("Authorization", lowercase_scheme)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "scheme is case-insensitive"
    );
}

#[tokio::test]
async fn revoked_key_fails_next_request() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.get("/v1/connections", None).await.status(),
        StatusCode::OK
    );
    let store = app.gateway.state().store.clone();
    let keys = store.list_api_keys(&app.tenant_id).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert!(keys[0].last_used_at.is_some(), "last_used_at recorded");
    assert!(
        store
            .revoke_api_key(&keys[0].id, chrono::Utc::now())
            .await
            .unwrap()
    );
    let (status, error) = error_code(app.get("/v1/connections", None).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error["code"], "invalid_api_key");
}

#[tokio::test]
async fn keys_are_stored_hashed() {
    let app = TestApp::spawn().await;
    let bytes = app.stored_bytes().await;
    let needle = app.key.as_bytes();
    assert!(bytes.len() > 100, "the store holds data");
    assert!(
        !bytes.windows(needle.len()).any(|w| w == needle),
        "API key found in plain text"
    );
}
