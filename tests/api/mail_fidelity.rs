//! Message shapes that real mail clients send, read back through `gmail/read`, and
//! sandbox responses that must match what Gmail and Slack return.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code, simple_eml};

/// Adds `eml` to a fresh mailbox and returns the one message `gmail/read` returns.
async fn read_one(eml: &str) -> Value {
    let app = TestApp::spawn().await;
    app.connect("google", None).await;
    app.add_message(eml).await;
    let response = app.execute("gmail/read", json!({"query": ""}), None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body: Value = response.json().await.unwrap();
    let messages = body["messages"].as_array_mut().unwrap();
    assert_eq!(messages.len(), 1);
    messages.remove(0)
}

fn attachment_names(message: &Value) -> Vec<String> {
    message["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|attachment| attachment["filename"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn unpadded_base64_snippet_decodes() {
    let eml = "From: a@example.com\r\nTo: b@example.com\r\nSubject: accents\r\n\
               Content-Type: text/plain; charset=utf-8\r\n\
               Content-Transfer-Encoding: base64\r\n\r\nw6nDqA\r\n";
    let message = read_one(eml).await;
    assert_eq!(message["snippet"], "éè");
    assert_eq!(message["bodyText"], "éè");
}

#[tokio::test]
async fn text_around_inline_image_kept() {
    let eml = "From: a@example.com\r\nTo: b@example.com\r\nSubject: photo\r\n\
               MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"m\"\r\n\r\n\
               --m\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nfirst\r\n\
               --m\r\nContent-Type: image/png; name=photo.png\r\n\
               Content-Disposition: inline; filename=photo.png\r\n\
               Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n\
               --m\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nsecond after image\r\n\
               --m--\r\n";
    let message = read_one(eml).await;
    let text = message["bodyText"].as_str().unwrap();
    assert!(text.starts_with("first"), "bodyText {text:?}");
    assert!(text.contains("\n\nsecond after image"), "bodyText {text:?}");
    assert_eq!(attachment_names(&message), vec!["photo.png"]);
}

#[tokio::test]
async fn calendar_invite_is_attachment() {
    let eml = "From: a@example.com\r\nTo: b@example.com\r\nSubject: Invitation\r\n\
               MIME-Version: 1.0\r\nContent-Type: text/calendar; charset=utf-8; method=REQUEST\r\n\r\n\
               BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n";
    let message = read_one(eml).await;
    assert_eq!(message["bodyText"], Value::Null);
    assert_eq!(attachment_names(&message), vec!["invite.ics"]);
    assert_eq!(message["attachments"][0]["mimeType"], "text/calendar");
    assert!(message["attachments"][0]["attachmentId"].is_string());
}

#[tokio::test]
async fn encoded_word_before_quoted_name() {
    let eml = "From: =?utf-8?Q?Andr=C3=A9?= \"Q. Public\" <aq@example.com>\r\n\
               To: b@example.com\r\nSubject: name\r\n\r\nhello\r\n";
    let message = read_one(eml).await;
    assert_eq!(message["from"]["name"], "André Q. Public");
    assert_eq!(message["from"]["email"], "aq@example.com");
}

#[tokio::test]
async fn reply_with_other_subject_not_threaded() {
    let app = TestApp::spawn().await;
    app.connect("google", None).await;
    let parent = simple_eml("Plans", "first");
    let parent_id = parent
        .split("Message-ID: ")
        .nth(1)
        .and_then(|rest| rest.split("\r\n").next())
        .unwrap()
        .to_owned();
    app.add_message(&parent).await;
    let unrelated = format!(
        "From: c@example.com\r\nTo: ada@example.com\r\nSubject: Invoice 42\r\n\
         In-Reply-To: {parent_id}\r\nReferences: {parent_id}\r\n\r\nunrelated\r\n"
    );
    app.add_message(&unrelated).await;
    let reply = format!(
        "From: c@example.com\r\nTo: ada@example.com\r\nSubject: Re: Plans\r\n\
         In-Reply-To: {parent_id}\r\n\r\nreply\r\n"
    );
    app.add_message(&reply).await;

    let body: Value = app
        .execute("gmail/read", json!({"query": "", "maxResults": 10}), None)
        .await
        .json()
        .await
        .unwrap();
    let thread_of = |subject: &str| {
        body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|message| message["subject"] == subject)
            .map(|message| message["threadId"].clone())
            .unwrap()
    };
    assert_eq!(thread_of("Re: Plans"), thread_of("Plans"));
    assert_ne!(thread_of("Invoice 42"), thread_of("Plans"));
}

#[tokio::test]
async fn unknown_slack_block_rejected() {
    let app = TestApp::spawn().await;
    app.connect("slack", None).await;
    let posted_before = app.slack_messages().await.len();
    let response = app
        .execute(
            "slack/message",
            json!({"channel": "C0GENERAL", "text": "hi", "blocks": [{"type": "bogus"}]}),
            None,
        )
        .await;
    let (status, error) = error_code(response).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error["code"], "provider_rejected");
    assert_eq!(error["providerCode"], "invalid_blocks");
    assert_eq!(app.slack_messages().await.len(), posted_before);
}
