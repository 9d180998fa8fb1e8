//! Several gateway instances on one PostgreSQL database. Each instance has its own
//! pool and its own in-memory state; they share only the database. On SQLite
//! (one process per file) these tests return at once.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use patchbay::sandbox::SandboxConfig;

use crate::helpers::{TestApp, error_code};

async fn postgres_app() -> Option<TestApp> {
    postgres_app_with(SandboxConfig::default()).await
}

async fn postgres_app_with(sandbox: SandboxConfig) -> Option<TestApp> {
    let app = TestApp::spawn_with(sandbox).await;
    if app.is_postgres() {
        Some(app)
    } else {
        eprintln!("skipped: set PATCHBAY_TEST_DATABASE_URL to a PostgreSQL database");
        None
    }
}

#[tokio::test]
async fn callback_completes_on_other_instance() {
    let Some(app) = postgres_app().await else {
        return;
    };
    let second = app.another_instance().await;
    let consent = app.authorize_url(&app.key, "google", Some("alice")).await;
    let callback = app.consent(&consent, &[]).await;
    let first_base = app.gateway.base_url();
    let moved = callback.replace(&first_base, &second.base_url());
    assert_ne!(moved, callback, "callback points at the first instance");
    let response = app.client.get(&moved).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let list: Value = app
        .get("/v1/connections", Some("alice"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "first instance sees the connection"
    );
}

#[tokio::test]
async fn revoked_key_rejected_by_other_instance() {
    let Some(app) = postgres_app().await else {
        return;
    };
    let second = app.another_instance().await;
    let on_second = |key: String| {
        let client = app.client.clone();
        let url = format!("{}/v1/connections", second.base_url());
        async move { client.get(url).bearer_auth(key).send().await.unwrap() }
    };
    assert_eq!(on_second(app.key.clone()).await.status(), StatusCode::OK);
    let keys = app
        .gateway
        .state()
        .store
        .list_api_keys(&app.tenant_id)
        .await
        .unwrap();
    let revoked = app
        .gateway
        .state()
        .store
        .revoke_api_key(&keys[0].id, chrono::Utc::now());
    assert!(revoked.await.unwrap());
    let (status, error) = error_code(on_second(app.key.clone()).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error["code"], "invalid_api_key");
}

/// Marks every Google access token expired, in the gateway and at the sandbox.
async fn expire_google(app: &TestApp) {
    app.sql("UPDATE connections SET expires_at = '2000-01-01T00:00:00Z'")
        .await;
    app.sandbox_control("google/expire-tokens", json!({})).await;
}

#[tokio::test]
async fn refresh_storm_over_two_instances_refreshes_once() {
    let Some(app) = postgres_app().await else {
        return;
    };
    let second = app.another_instance().await;
    app.connect("google", Some("alice")).await;
    expire_google(&app).await;
    let bases = [app.gateway.base_url(), second.base_url()];
    let mut requests = Vec::new();
    for index in 0..200 {
        let url = format!("{}/v1/execute/gmail/read", bases[index % 2]);
        let request = app
            .client
            .post(url)
            .bearer_auth(&app.key)
            .json(&json!({"userId": "alice"}));
        requests.push(tokio::spawn(async move {
            request.send().await.unwrap().status()
        }));
    }
    for request in requests {
        assert_eq!(request.await.unwrap(), StatusCode::OK);
    }
    let refreshes = app.sandbox_requests("/google/token").await.len() - 1;
    assert_eq!(
        refreshes, 1,
        "one refresh call for 200 requests on two instances"
    );
}

#[tokio::test]
async fn rotated_refresh_token_is_never_reused() {
    let sandbox = SandboxConfig {
        slack_token_rotation: true,
        ..SandboxConfig::default()
    };
    let Some(app) = postgres_app_with(sandbox).await else {
        return;
    };
    let second = app.another_instance().await;
    app.connect("slack", Some("alice")).await;
    app.sql("UPDATE connections SET expires_at = '2000-01-01T00:00:00Z'")
        .await;
    app.sandbox_control("slack/expire-tokens", json!({})).await;
    let bases = [app.gateway.base_url(), second.base_url()];
    let mut requests = Vec::new();
    for index in 0..40 {
        let url = format!("{}/v1/execute/slack/message", bases[index % 2]);
        let body = json!({"channel": "#general", "text": format!("m{index}"), "userId": "alice"});
        let request = app.client.post(url).bearer_auth(&app.key).json(&body);
        requests.push(tokio::spawn(async move {
            request.send().await.unwrap().status()
        }));
    }
    for request in requests {
        assert_eq!(request.await.unwrap(), StatusCode::OK);
    }
    let list: Value = app
        .get("/v1/connections", Some("alice"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        list[0]["status"], "active",
        "no instance tried a rotated-away token"
    );
    let token_calls = app
        .sandbox_requests("/slack/api/oauth.v2.access")
        .await
        .len();
    assert_eq!(token_calls, 2, "the code exchange and exactly one refresh");
}

#[tokio::test]
async fn crashed_lock_holder_does_not_block() {
    let Some(app) = postgres_app().await else {
        return;
    };
    app.connect("google", Some("alice")).await;
    expire_google(&app).await;

    // Another "instance" takes the row lock and then dies without releasing it.
    let holder = sqlx::PgPool::connect(&app.database_url).await.unwrap();
    let mut tx = holder.begin().await.unwrap();
    let (pid,): (i32,) = sqlx::query_as("SELECT pg_backend_pid()")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    sqlx::query("SELECT id FROM connections FOR UPDATE")
        .execute(&mut *tx)
        .await
        .unwrap();

    let waiting = app.execute("gmail/read", json!({"userId": "alice"}), None);
    let killer = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let admin = sqlx::PgPool::connect(&app.database_url).await.unwrap();
        sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .execute(&admin)
            .await
            .unwrap();
    };
    let (response, ()) = tokio::join!(waiting, killer);
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "served once the dead holder's lock is gone"
    );
    drop(tx);
}
