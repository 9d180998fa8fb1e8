//! gmail/send through the sandbox, read back with gmail/read: encoded subjects,
//! reply threading, attachments, the upload endpoint and Gmail's size limit.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code};

/// Sends `body` and returns the response body.
async fn send(app: &TestApp, body: Value) -> Value {
    let response = app.execute("gmail/send", body, None).await;
    let status = response.status();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

/// Reads one message of the sandbox mailbox through the gateway.
async fn read_message(app: &TestApp, id: &str) -> Value {
    let response = app
        .execute("gmail/read", json!({"messageId": id}), None)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["messages"][0].clone()
}

#[tokio::test]
async fn non_ascii_subject_arrives_intact() {
    let app = TestApp::spawn().await;
    app.connect("google", None).await;
    let subject = "Status — 東京オフィスの四半期報告書について、来週の会議で確認します 🎉 Grüße";

    let sent = send(
        &app,
        json!({"to": "Jürgen Groß <juergen@example.de>", "subject": subject,
               "body": "Grüße — 本文\nzweite Zeile"}),
    )
    .await;

    let message = read_message(&app, sent["id"].as_str().unwrap()).await;
    assert_eq!(message["subject"], subject);
    assert_eq!(message["to"][0]["name"], "Jürgen Groß");
    assert_eq!(message["to"][0]["email"], "juergen@example.de");
    let text = message["bodyText"].as_str().unwrap();
    assert!(text.contains("Grüße — 本文"), "{text}");
    assert!(
        sent["labelIds"]
            .as_array()
            .unwrap()
            .contains(&json!("SENT"))
    );
}

#[tokio::test]
async fn reply_is_threaded() {
    let app = TestApp::spawn().await;
    app.connect("google", None).await;
    let parent_eml = "From: Bob <bob@example.com>\r\nTo: ada@example.com\r\n\
        Subject: Re: Budget\r\nDate: Thu, 03 Dec 2026 10:00:00 +0000\r\n\
        Message-ID: <parent-1@example.com>\r\nReferences: <root-0@example.com>\r\n\
        Content-Type: text/plain; charset=utf-8\r\n\r\nNumbers?\r\n";
    let parent_id = app.add_message(parent_eml).await;
    let parent = read_message(&app, &parent_id).await;

    let sent = send(
        &app,
        json!({"to": "bob@example.com", "subject": "Re: Budget", "body": "Here.",
               "inReplyTo": parent_id}),
    )
    .await;

    assert_eq!(sent["threadId"], parent["threadId"]);
    let reply = read_message(&app, sent["id"].as_str().unwrap()).await;
    assert_eq!(reply["subject"], "Re: Budget", "Re: once");
    assert_eq!(reply["threadId"], parent["threadId"]);
    assert_eq!(reply["headers"]["In-Reply-To"], "<parent-1@example.com>");
    let references = reply["headers"]["References"].as_str().unwrap();
    assert!(references.contains("<root-0@example.com>"), "{references}");
    assert!(
        references.ends_with("<parent-1@example.com>"),
        "{references}"
    );
}

#[tokio::test]
async fn reply_adds_re_prefix() {
    let app = TestApp::spawn().await;
    app.connect("google", None).await;
    let parent_eml = "From: Bob <bob@example.com>\r\nTo: ada@example.com\r\n\
        Subject: Budget\r\nMessage-ID: <p2@example.com>\r\n\r\nNumbers?\r\n";
    let parent_id = app.add_message(parent_eml).await;

    let sent = send(
        &app,
        json!({"to": "bob@example.com", "subject": "Budget", "body": "Here.",
               "inReplyTo": parent_id}),
    )
    .await;

    let reply = read_message(&app, sent["id"].as_str().unwrap()).await;
    assert_eq!(reply["subject"], "Re: Budget");
    assert_eq!(reply["headers"]["In-Reply-To"], "<p2@example.com>");
    assert_eq!(reply["headers"]["References"], "<p2@example.com>");
}

#[tokio::test]
async fn reply_to_unknown_message_is_rejected() {
    let app = TestApp::spawn().await;
    app.connect("google", None).await;
    let response = app
        .execute(
            "gmail/send",
            json!({"to": "bob@example.com", "subject": "s", "body": "b",
                   "inReplyTo": "18cdeadbeef00000"}),
            None,
        )
        .await;
    let (status, error) = error_code(response).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["code"], "provider_rejected");
    assert!(
        app.sandbox_requests("/gmail/v1/users/me/messages/send")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn attachments_arrive() {
    let app = TestApp::spawn().await;
    app.connect("google", None).await;
    let pdf = b"%PDF-1.4\n% test document\n".repeat(20);

    let sent = send(
        &app,
        json!({"to": ["bob@example.com", "carol@example.com"], "subject": "Report",
               "body": "See attached.", "html": "<p>See <b>attached</b>.</p>",
               "attachments": [{"filename": "Prüfbericht März.pdf",
                                "mimeType": "application/pdf",
                                "contentBase64": STANDARD.encode(&pdf)}]}),
    )
    .await;

    let message = read_message(&app, sent["id"].as_str().unwrap()).await;
    assert_eq!(message["to"].as_array().unwrap().len(), 2);
    assert!(
        message["bodyText"]
            .as_str()
            .unwrap()
            .contains("See attached.")
    );
    assert!(
        message["bodyHtml"]
            .as_str()
            .unwrap()
            .contains("<b>attached</b>")
    );
    let attachments = message["attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 1);
    assert_eq!(attachments[0]["filename"], "Prüfbericht März.pdf");
    assert_eq!(attachments[0]["mimeType"], "application/pdf");
    assert_eq!(attachments[0]["size"], pdf.len());
}

#[tokio::test]
async fn large_message_uses_upload_endpoint() {
    let app = TestApp::spawn().await;
    app.connect("google", None).await;
    let content = vec![0x5a_u8; 6 * 1024 * 1024];

    let sent = send(
        &app,
        json!({"to": "bob@example.com", "subject": "Big", "body": "b",
               "attachments": [{"filename": "big.bin", "mimeType": "application/octet-stream",
                                "contentBase64": STANDARD.encode(&content)}]}),
    )
    .await;

    assert_eq!(
        app.sandbox_requests("/upload/gmail/v1/users/me/messages/send")
            .await
            .len(),
        1
    );
    assert!(
        app.sandbox_requests("/gmail/v1/users/me/messages/send")
            .await
            .is_empty()
    );
    let message = read_message(&app, sent["id"].as_str().unwrap()).await;
    assert_eq!(message["attachments"][0]["size"], content.len());
}

#[tokio::test]
async fn message_over_limit_is_rejected_before_sending() {
    let app = TestApp::spawn().await;
    app.connect("google", None).await;
    // 28 MiB of content is about 38 MB once base64-encoded in the message, over
    // Gmail's 35 MB limit, while the JSON request stays under the 40 MiB body limit.
    let content = vec![0x5a_u8; 28 * 1024 * 1024];
    app.clear_sandbox_requests().await;

    let response = app
        .execute(
            "gmail/send",
            json!({"to": "bob@example.com", "subject": "Huge", "body": "b",
                   "attachments": [{"filename": "huge.bin",
                                    "mimeType": "application/octet-stream",
                                    "contentBase64": STANDARD.encode(&content)}]}),
            None,
        )
        .await;

    let (status, error) = error_code(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["code"], "invalid_request");
    assert!(app.sandbox_requests("/upload/").await.is_empty());
    assert!(app.sandbox_requests("/gmail/").await.is_empty());
}

#[tokio::test]
async fn invalid_send_inputs_are_400() {
    let app = TestApp::spawn().await;
    app.connect("google", None).await;
    for (body, param) in [
        (json!({"subject": "s", "body": "b"}), "to"),
        (
            json!({"to": "not an address", "subject": "s", "body": "b"}),
            "to",
        ),
        (
            json!({"to": "bob@example.com", "subject": "s", "body": "b",
                   "attachments": [{"filename": "x", "mimeType": "text/plain",
                                    "contentBase64": "***"}]}),
            "attachments",
        ),
    ] {
        let response = app.execute("gmail/send", body, None).await;
        let (status, error) = error_code(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{param}: {error}");
        assert!(
            error["param"]
                .as_str()
                .is_some_and(|p| p.starts_with(param)),
            "{param}: {error}"
        );
    }
    assert!(app.sandbox_requests("/gmail/").await.is_empty());
}

#[tokio::test]
async fn header_injection_is_neutralized() {
    let app = TestApp::spawn().await;
    app.connect("google", None).await;

    let sent = send(
        &app,
        json!({"to": "bob@example.com", "subject": "a\r\nBcc: eve@evil.test", "body": "b"}),
    )
    .await;

    let message = read_message(&app, sent["id"].as_str().unwrap()).await;
    assert!(
        message["headers"].get("Bcc").is_none(),
        "{}",
        message["headers"]
    );
    assert_eq!(message["bcc"], json!([]));
    let subject = message["subject"].as_str().unwrap();
    assert!(subject.starts_with('a'), "{subject}");
    assert!(!subject.contains(['\r', '\n']), "{subject}");
}

#[tokio::test]
async fn reply_subject_prefix_variants() {
    let app = TestApp::spawn().await;
    app.connect("google", None).await;
    for (parent_subject, expected) in [
        ("RE: Budget", "RE: Budget"),
        ("re: Budget", "re: Budget"),
        ("Fwd: Budget", "Re: Fwd: Budget"),
        ("Grüße aus Köln", "Re: Grüße aus Köln"),
        ("Reisekosten", "Re: Reisekosten"),
    ] {
        let parent_eml = format!(
            "From: Bob <bob@example.com>\r\nTo: ada@example.com\r\n\
             Subject: {parent_subject}\r\nMessage-ID: <{}@example.com>\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\r\nx\r\n",
            uuid::Uuid::new_v4()
        );
        let parent_id = app.add_message(&parent_eml).await;

        let sent = send(
            &app,
            json!({"to": "bob@example.com", "subject": parent_subject, "body": "y",
                   "inReplyTo": parent_id}),
        )
        .await;

        let reply = read_message(&app, sent["id"].as_str().unwrap()).await;
        assert_eq!(reply["subject"], expected, "{parent_subject}");
    }
}

#[tokio::test]
async fn display_names_with_commas_survive() {
    let app = TestApp::spawn().await;
    app.connect("google", None).await;

    let sent = send(
        &app,
        json!({"to": ["\"Doe, Jane\" <jane@example.com>", "bob@example.com"],
               "cc": "Ünal Çelik <unal@example.com>", "subject": "s", "body": "b"}),
    )
    .await;

    let message = read_message(&app, sent["id"].as_str().unwrap()).await;
    let to = message["to"].as_array().unwrap();
    assert_eq!(to.len(), 2);
    assert_eq!(to[0]["name"], "Doe, Jane");
    assert_eq!(to[0]["email"], "jane@example.com");
    assert_eq!(to[1]["email"], "bob@example.com");
    assert_eq!(message["cc"][0]["name"], "Ünal Çelik");
    assert_eq!(message["cc"][0]["email"], "unal@example.com");
}

#[tokio::test]
async fn body_over_40_mib_is_413() {
    let app = TestApp::spawn().await;
    app.connect("google", None).await;
    let content = "A".repeat(41 * 1024 * 1024);
    app.clear_sandbox_requests().await;

    let response = app
        .execute(
            "gmail/send",
            json!({"to": "bob@example.com", "subject": "s", "body": "b",
                   "attachments": [{"filename": "a.bin", "mimeType": "application/octet-stream",
                                    "contentBase64": content}]}),
            None,
        )
        .await;

    let (status, error) = error_code(response).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error["code"], "payload_too_large");
    assert!(app.sandbox_requests("/").await.is_empty());
}
