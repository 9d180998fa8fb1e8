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
