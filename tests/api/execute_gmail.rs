//! Gmail actions through the gateway.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, simple_eml};

#[tokio::test]
async fn read_returns_decoded_messages() {
    let app = TestApp::spawn().await;
    app.connect("google", Some("alice")).await;
    app.add_message(&simple_eml("Quarterly report", "Numbers inside"))
        .await;
    let response = app
        .execute("gmail/read", json!({"userId": "alice"}), None)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["subject"], "Quarterly report");
    assert_eq!(messages[0]["from"]["email"], "bob@example.com");
    assert!(
        messages[0]["bodyText"]
            .as_str()
            .unwrap()
            .contains("Numbers inside")
    );
    assert_eq!(messages[0]["isRead"], false);
}

#[tokio::test]
async fn read_defaults_to_unread() {
    let app = TestApp::spawn().await;
    app.connect("google", None).await;
    let read_id = app.add_message(&simple_eml("seen", "x")).await;
    let unread_id = app.add_message(&simple_eml("new", "y")).await;
    app.sandbox_control(&format!("gmail/messages/{read_id}/read"), json!({}))
        .await;

    let body: Value = app
        .execute("gmail/read", json!({}), None)
        .await
        .json()
        .await
        .unwrap();
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["id"], unread_id.as_str());

    let body: Value = app
        .execute("gmail/read", json!({"query": "subject:seen"}), None)
        .await
        .json()
        .await
        .unwrap();
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["id"], read_id.as_str());
    assert_eq!(messages[0]["isRead"], true);
}

#[tokio::test]
async fn read_respects_max_results_and_order() {
    let app = TestApp::spawn().await;
    app.connect("google", None).await;
    for n in 0..4 {
        let eml = format!(
            "From: bob@example.com\r\nTo: ada@example.com\r\nSubject: n{n}\r\n\
             Date: Thu, 0{} Dec 2026 10:00:00 +0000\r\n\r\nx\r\n",
            n + 1
        );
        app.add_message(&eml).await;
    }

    let body: Value = app
        .execute("gmail/read", json!({"maxResults": 2}), None)
        .await
        .json()
        .await
        .unwrap();

    let subjects: Vec<&Value> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["subject"])
        .collect();
    assert_eq!(subjects, [&json!("n3"), &json!("n2")], "newest first");
}
