//! Inputs that broke earlier versions, each with the exact request that did.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code, simple_eml};

#[tokio::test]
async fn second_401_after_refresh_keeps_connection() {
    let app = TestApp::spawn().await;
    app.connect("google", Some("alice")).await;
    let fault = json!({"path": "/gmail/v1/users/me/messages", "status": 401, "times": 2});
    app.sandbox_control("faults", fault).await;
    let body = json!({"userId": "alice", "maxResults": 1});
    let (status, error) = error_code(app.execute("gmail/read", body.clone(), None).await).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(error["code"], "provider_unavailable");
    assert_eq!(
        app.connection_status("google", Some("alice")).await,
        "active"
    );
    let response = app.execute("gmail/read", body, None).await;
    assert_eq!(response.status(), StatusCode::OK, "the grant still works");
}

/// Runs a whole connect flow while the token endpoint returns `body` with status 200.
async fn connect_with_token_answer(app: &TestApp, provider: &str, path: &str, body: Value) {
    let fault = json!({"path": path, "status": 200, "times": 1, "body": body});
    app.sandbox_control("faults", fault).await;
    let consent = app.authorize_url(&app.key, provider, Some("alice")).await;
    let callback = app.consent(&consent, &[]).await;
    let response = app
        .client
        .get(callback)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    let (status, error) = error_code(response).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{provider}");
    assert_eq!(error["code"], "provider_unavailable", "{provider}");
}

#[tokio::test]
async fn malformed_token_answer_stores_nothing() {
    let app = TestApp::spawn().await;
    app.connect("slack", Some("alice")).await;
    connect_with_token_answer(
        &app,
        "slack",
        "/slack/api/oauth.v2.access",
        json!({"ok": true}),
    )
    .await;
    let google_answer = json!({"access_token": "", "expires_in": -5});
    connect_with_token_answer(&app, "google", "/google/token", google_answer).await;
    let list: Value = app
        .get("/v1/connections", Some("alice"))
        .await
        .json()
        .await
        .unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "only the earlier Slack connection exists");
    assert_eq!(list[0]["provider"], "slack");
    assert_eq!(
        list[0]["accountName"], "Sandbox Team",
        "the working connection was kept"
    );
    let response = app
        .execute(
            "slack/message",
            json!({"channel": "#general", "text": "still", "userId": "alice"}),
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn locked_sqlite_database_is_503() {
    let app = TestApp::spawn().await;
    if app.is_postgres() {
        return;
    }
    let pool = sqlx::SqlitePool::connect(&app.database_url).await.unwrap();
    let mut holder = pool.acquire().await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let (status, error) = error_code(
        app.get("/v1/connections/google/authorize", Some("alice"))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error["code"], "database_unavailable");
    sqlx::query("ROLLBACK").execute(&mut *holder).await.unwrap();
}

#[tokio::test]
async fn huge_query_is_400() {
    let app = TestApp::spawn().await;
    app.connect("google", Some("alice")).await;
    app.connect("slack", Some("alice")).await;
    let query = "a".repeat(900_000);
    for action in ["gmail/read", "slack/search"] {
        let body = json!({"query": query, "userId": "alice"});
        let (status, error) = error_code(app.execute(action, body, None).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{action}");
        assert_eq!(error["param"], "query", "{action}");
    }
}

#[tokio::test]
async fn slack_ok_without_ts_is_502() {
    let app = TestApp::spawn().await;
    app.connect("slack", Some("alice")).await;
    let fault = json!({"path": "/slack/api/chat.postMessage", "status": 200, "body": {"ok": true}});
    app.sandbox_control("faults", fault).await;
    let body = json!({"channel": "#general", "text": "x", "userId": "alice"});
    let (status, error) = error_code(app.execute("slack/message", body, None).await).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(error["code"], "provider_unavailable");
}

#[tokio::test]
async fn malformed_message_ids_from_gmail_are_not_fetched() {
    let app = TestApp::spawn().await;
    app.connect("google", Some("alice")).await;
    let list = json!({"messages": [{"id": "../../profile"}, {"id": "a?format=raw#"}]});
    let fault = json!({"path": "/gmail/v1/users/me/messages", "status": 200, "body": list});
    app.sandbox_control("faults", fault).await;
    app.clear_sandbox_requests().await;
    let (status, error) = error_code(
        app.execute("gmail/read", json!({"userId": "alice"}), None)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(error["code"], "provider_unavailable");
    let paths: Vec<String> = app
        .sandbox_requests("/")
        .await
        .iter()
        .map(|r| r["path"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        !paths
            .iter()
            .any(|p| p.ends_with("/profile") || p.contains("/messages/a")),
        "{paths:?}"
    );
}

#[tokio::test]
async fn slack_code_error_keeps_provider_code() {
    let app = TestApp::spawn().await;
    let fault = json!({"path": "/slack/api/oauth.v2.access", "status": 200,
        "body": {"ok": false, "error": "invalid_code"}});
    app.sandbox_control("faults", fault).await;
    let consent = app.authorize_url(&app.key, "slack", Some("alice")).await;
    let callback = app.consent(&consent, &[]).await;
    let response = app
        .client
        .get(callback)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    let (status, error) = error_code(response).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error["providerCode"], "invalid_code");
}

#[tokio::test]
async fn gmail_redirect_is_502() {
    let app = TestApp::spawn().await;
    app.connect("google", Some("alice")).await;
    let fault = json!({"path": "/gmail/v1/users/me/messages", "status": 302, "times": 1});
    app.sandbox_control("faults", fault).await;
    let (status, error) = error_code(
        app.execute("gmail/read", json!({"userId": "alice"}), None)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(error["code"], "provider_unavailable");
}

#[tokio::test]
async fn page_token_of_other_user_is_rejected() {
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
    for n in 0..3 {
        let eml =
            simple_eml(&format!("m{n}"), "body").replace("ada@example.com", "alice@example.com");
        app.sandbox_control(
            "gmail/messages",
            json!({"email": "alice@example.com", "eml": eml}),
        )
        .await;
    }
    let first: Value = app
        .execute(
            "gmail/sync",
            json!({"mode": "initial", "maxResults": 1, "userId": "alice"}),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let token = first["nextPageToken"]
        .as_str()
        .expect("alice has a second page");
    let body = json!({"mode": "initial", "pageToken": token, "userId": "bob"});
    let (status, error) = error_code(app.execute("gmail/sync", body, None).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["param"], "pageToken");
}

#[tokio::test]
async fn duplicate_user_id_keys_are_rejected() {
    let app = TestApp::spawn().await;
    app.connect("slack", Some("alice")).await;
    let response = app
        .client
        .post(app.url("/v1/execute/slack/message"))
        .bearer_auth(&app.key)
        .header("Content-Type", "application/json")
        .body(r##"{"channel":"#general","text":"x","userId":"bob","userId":"alice"}"##)
        .send()
        .await
        .unwrap();
    let (status, error) = error_code(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("duplicate field userId")
    );
    assert!(
        app.slack_messages().await.iter().all(|m| m["text"] != "x"),
        "nothing posted"
    );
}

#[tokio::test]
async fn callback_without_code_keeps_state() {
    let app = TestApp::spawn().await;
    let consent = app.authorize_url(&app.key, "google", Some("alice")).await;
    let callback = app.consent(&consent, &[]).await;
    let mut stripped = url::Url::parse(&callback).unwrap();
    let state: Vec<(String, String)> = stripped
        .query_pairs()
        .filter(|(k, _)| k == "state")
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    stripped.set_query(None);
    stripped.query_pairs_mut().extend_pairs(state);
    let response = app
        .client
        .get(stripped)
        .header("Accept", "application/json")
        .send()
        .await;
    let (status, error) = error_code(response.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["param"], "code");
    let response = app.client.get(&callback).send().await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the state was not used up"
    );
}

#[tokio::test]
async fn outcome_parameter_replaces_existing_one() {
    let app = TestApp::spawn().await;
    let origin = "https://app.example.com";
    app.gateway
        .state()
        .store
        .add_redirect_origin(&app.tenant_id, origin)
        .await
        .unwrap();
    let response = app
        .client
        .get(app.url("/v1/connections/google/authorize"))
        .query(&[(
            "redirect_after",
            "https://app.example.com/done?connected=slack&tab=2",
        )])
        .bearer_auth(&app.key)
        .header("X-User-Id", "alice")
        .send()
        .await
        .unwrap();
    let consent: Value = response.json().await.unwrap();
    let callback = app.consent(consent["url"].as_str().unwrap(), &[]).await;
    let response = app.client.get(callback).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let url = url::Url::parse(&location).unwrap();
    let connected: Vec<String> = url
        .query_pairs()
        .filter(|(k, _)| k == "connected")
        .map(|(_, v)| v.into_owned())
        .collect();
    assert_eq!(connected, vec!["google".to_owned()]);
    assert!(
        url.query_pairs().any(|(k, v)| k == "tab" && v == "2"),
        "{location}"
    );
}
