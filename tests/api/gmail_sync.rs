//! A full gmail/sync run: initial over several pages, incremental with added,
//! deleted and read messages, and a reset after Gmail expires the history.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, simple_eml};

async fn sync(app: &TestApp, body: Value) -> Value {
    let response = app.execute("gmail/sync", body, None).await;
    let status = response.status();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

fn ids(page: &Value) -> Vec<String> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Runs an initial sync with pages of two and returns every id and the history id.
/// A message is added after the first page to check that the history id stays fixed.
async fn initial_run(app: &TestApp) -> (BTreeSet<String>, String) {
    let mut seen = BTreeSet::new();
    let mut history_id: Option<String> = None;
    let mut page_token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut body = json!({"mode": "initial", "maxResults": 2});
        if let Some(token) = &page_token {
            body["pageToken"] = json!(token);
        }
        let page = sync(app, body).await;
        pages += 1;
        let page_history = page["historyId"].as_str().unwrap().to_owned();
        assert_eq!(
            history_id.get_or_insert_with(|| page_history.clone()),
            &page_history,
            "page {pages}"
        );
        for id in ids(&page) {
            assert!(seen.insert(id), "page {pages} repeats a message");
        }
        if pages == 1 {
            app.add_message(&simple_eml("arrived mid-run", "x")).await;
        }
        match page["nextPageToken"].as_str() {
            Some(token) => page_token = Some(token.to_owned()),
            None => break,
        }
        assert!(pages < 10, "sync does not end");
    }
    assert_eq!(pages, 3, "five messages in pages of two");
    (seen, history_id.unwrap())
}

/// Runs an incremental sync to its last page and returns every page.
async fn incremental_run(app: &TestApp, history_id: &str) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut page_token: Option<String> = None;
    loop {
        let mut body = json!({"mode": "incremental", "historyId": history_id, "maxResults": 2});
        if let Some(token) = &page_token {
            body["pageToken"] = json!(token);
        }
        let page = sync(app, body).await;
        let next = page["nextPageToken"].as_str().map(str::to_owned);
        pages.push(page);
        match next {
            Some(token) => page_token = Some(token),
            None => break,
        }
        assert!(pages.len() < 10, "sync does not end");
    }
    pages
}

#[tokio::test]
async fn full_sync_run() {
    let app = TestApp::spawn().await;
    app.connect("google", None).await;
    let mut added = Vec::new();
    for n in 0..5 {
        added.push(app.add_message(&simple_eml(&format!("m{n}"), "x")).await);
    }

    let (seen, history_id) = initial_run(&app).await;
    let expected: BTreeSet<String> = added.iter().cloned().collect();
    assert_eq!(seen, expected);

    let new_id = app.add_message(&simple_eml("new", "fresh")).await;
    let deleted_id = added[0].clone();
    app.client
        .delete(app.sandbox_url(&format!("/_sandbox/gmail/messages/{deleted_id}")))
        .send()
        .await
        .unwrap();
    let read_id = added[1].clone();
    app.sandbox_control(&format!("gmail/messages/{read_id}/read"), json!({}))
        .await;

    let pages = incremental_run(&app, &history_id).await;
    assert!(pages.len() >= 2, "history read over several pages");
    let last = pages.last().unwrap();
    let new_history = last["historyId"].as_str().unwrap();
    assert!(
        new_history.parse::<u64>().unwrap() > history_id.parse::<u64>().unwrap(),
        "{new_history} after {history_id}"
    );
    for page in &pages[..pages.len() - 1] {
        assert!(page.get("historyId").is_none_or(Value::is_null), "{page}");
    }
    let messages: Vec<&Value> = pages
        .iter()
        .flat_map(|p| p["messages"].as_array().unwrap())
        .collect();
    // A page without deletions may leave `deletedMessageIds` out.
    let deleted: Vec<&Value> = pages
        .iter()
        .filter_map(|p| p["deletedMessageIds"].as_array())
        .flatten()
        .collect();
    assert!(
        messages.iter().any(|m| m["id"] == new_id.as_str()),
        "new message"
    );
    assert!(
        messages.iter().any(|m| m["subject"] == "arrived mid-run"),
        "message added during the initial run"
    );
    assert!(deleted.contains(&&json!(deleted_id)), "{deleted:?}");
    assert!(!messages.iter().any(|m| m["id"] == deleted_id.as_str()));
    let read = messages.iter().find(|m| m["id"] == read_id.as_str());
    assert_eq!(read.map(|m| &m["isRead"]), Some(&json!(true)));

    // Nothing changed since: an empty incremental run keeps the history id usable.
    let again = incremental_run(&app, new_history).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0]["messages"], json!([]));
}

#[tokio::test]
async fn stale_history_resets_to_initial() {
    let app = TestApp::spawn().await;
    app.connect("google", None).await;
    for n in 0..3 {
        app.add_message(&simple_eml(&format!("m{n}"), "x")).await;
    }
    let first = sync(&app, json!({"mode": "initial"})).await;
    let history_id = first["historyId"].as_str().unwrap().to_owned();
    app.add_message(&simple_eml("later", "x")).await;
    app.sandbox_control("gmail/history/expire", json!({})).await;
    app.clear_sandbox_requests().await;

    let page = sync(
        &app,
        json!({"mode": "incremental", "historyId": history_id, "maxResults": 2}),
    )
    .await;

    assert_eq!(page["resetReason"], "history_expired");
    assert_eq!(page["messages"].as_array().unwrap().len(), 2);
    let token = page["nextPageToken"].as_str().unwrap().to_owned();
    let history_calls = app.sandbox_requests("/gmail/v1/users/me/history").await;
    assert_eq!(history_calls.len(), 1, "no loop on the stale id");

    let rest = sync(
        &app,
        json!({"mode": "incremental", "historyId": history_id, "pageToken": token}),
    )
    .await;
    assert_eq!(rest["messages"].as_array().unwrap().len(), 2);
    assert!(rest.get("nextPageToken").is_none_or(Value::is_null));
    let fresh = rest["historyId"].as_str().unwrap();
    let after = incremental_run(&app, fresh).await;
    assert!(after[0].get("resetReason").is_none_or(Value::is_null));
}

#[tokio::test]
async fn message_deleted_between_list_and_get_is_skipped() {
    let app = TestApp::spawn().await;
    app.connect("google", None).await;
    let keep = app.add_message(&simple_eml("keep", "x")).await;
    let gone = app.add_message(&simple_eml("gone", "x")).await;
    app.sandbox_control(
        "faults",
        json!({"path": format!("/gmail/v1/users/me/messages/{gone}"), "status": 404}),
    )
    .await;

    let page = sync(&app, json!({"mode": "initial"})).await;

    assert_eq!(ids(&page), vec![keep]);
}

#[tokio::test]
async fn sync_period_limits_initial_run() {
    let app = TestApp::spawn().await;
    app.connect("google", None).await;
    let old = "From: bob@example.com\r\nTo: ada@example.com\r\nSubject: old\r\n\
               Date: Mon, 05 Jan 2026 10:00:00 +0000\r\n\r\nx\r\n";
    let old_id = app.add_message(old).await;
    let recent_id = app.add_message(&simple_eml("recent", "x")).await;

    let short = sync(&app, json!({"mode": "initial", "syncPeriodDays": 90})).await;
    let long = sync(&app, json!({"mode": "initial", "syncPeriodDays": 3650})).await;

    assert_eq!(ids(&short), vec![recent_id.clone()]);
    assert_eq!(ids(&long), vec![recent_id, old_id]);
}

#[tokio::test]
async fn added_then_deleted_is_only_deleted() {
    let app = TestApp::spawn().await;
    app.connect("google", None).await;
    app.add_message(&simple_eml("first", "x")).await;
    let start = sync(&app, json!({"mode": "initial"})).await;
    let history_id = start["historyId"].as_str().unwrap().to_owned();
    let short_lived = app.add_message(&simple_eml("short-lived", "x")).await;
    app.client
        .delete(app.sandbox_url(&format!("/_sandbox/gmail/messages/{short_lived}")))
        .send()
        .await
        .unwrap();

    let pages = incremental_run(&app, &history_id).await;

    let messages: Vec<&Value> = pages
        .iter()
        .flat_map(|p| p["messages"].as_array().unwrap())
        .collect();
    assert!(messages.is_empty(), "{messages:?}");
    let deleted: Vec<&Value> = pages
        .iter()
        .filter_map(|p| p["deletedMessageIds"].as_array())
        .flatten()
        .collect();
    assert_eq!(deleted, [&json!(short_lived)]);
}

#[tokio::test]
async fn invalid_history_id_is_400() {
    let app = TestApp::spawn().await;
    app.connect("google", None).await;
    for history_id in [json!("abc"), json!(""), json!(12), json!("-5")] {
        let response = app
            .execute(
                "gmail/sync",
                json!({"mode": "incremental", "historyId": history_id}),
                None,
            )
            .await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{history_id}");
        assert_eq!(body["error"]["param"], "historyId", "{history_id}");
    }
    let response = app
        .execute(
            "gmail/sync",
            json!({"mode": "initial", "pageToken": "not-a-token"}),
            None,
        )
        .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["param"], "pageToken");
    assert!(
        app.sandbox_requests("/gmail/v1/users/me/history")
            .await
            .is_empty()
    );
}
