//! More inputs that broke earlier versions: replies, page tokens, ignored
//! fields, malformed Slack responses, shared grants and the command line.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code, simple_eml};

/// Reads the subject of a message in alice's mailbox through the gateway.
async fn subject_of(app: &TestApp, id: &str) -> String {
    let message: Value = app
        .client
        .post(app.url("/v1/execute/gmail/read"))
        .bearer_auth(&app.key)
        .json(&json!({"messageId": id, "userId": "alice"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    message["messages"][0]["subject"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn reply_keeps_parent_subject() {
    let app = TestApp::spawn().await;
    app.connect("google", Some("alice")).await;
    let parent = app.add_message(&simple_eml("Budget 2027", "numbers")).await;
    let body = json!({"to": "bob@example.com", "subject": "Totally different", "body": "ok",
        "inReplyTo": parent, "userId": "alice"});
    let response = app.execute("gmail/send", body, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let sent: Value = response.json().await.unwrap();
    let subject = subject_of(&app, sent["id"].as_str().unwrap()).await;
    assert_eq!(subject, "Re: Budget 2027");
}

#[tokio::test]
async fn reply_with_foreign_thread_is_400() {
    let app = TestApp::spawn().await;
    app.connect("google", Some("alice")).await;
    let parent = app.add_message(&simple_eml("Budget", "numbers")).await;
    let other = app.add_message(&simple_eml("Other topic", "words")).await;
    let body = json!({"to": "bob@example.com", "body": "ok", "inReplyTo": parent,
        "threadId": other, "userId": "alice"});
    let (status, error) = error_code(app.execute("gmail/send", body, None).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["param"], "threadId");
    assert!(
        app.sandbox_requests("/gmail/v1/users/me/messages/send")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn contradictory_fields_are_400() {
    let app = TestApp::spawn().await;
    app.connect("google", Some("alice")).await;
    let cases = [
        (
            "gmail/read",
            json!({"messageId": "abc123", "query": "x", "userId": "alice"}),
            "messageId",
        ),
        (
            "gmail/sync",
            json!({"mode": "initial", "historyId": "123", "userId": "alice"}),
            "historyId",
        ),
        (
            "gmail/sync",
            json!({"mode": "incremental", "historyId": "18446744073709551616", "userId": "alice"}),
            "historyId",
        ),
    ];
    for (action, body, param) in cases {
        let (status, error) = error_code(app.execute(action, body.clone(), None).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error["param"], param, "{body}");
    }
}

#[tokio::test]
async fn altered_gmail_page_token_is_400() {
    let app = TestApp::spawn().await;
    app.connect("google", Some("alice")).await;
    for n in 0..3 {
        app.add_message(&simple_eml(&format!("m{n}"), "body")).await;
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
    let token = first["nextPageToken"].as_str().expect("a second page");
    let mut cursor: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token).unwrap()).unwrap();
    cursor["gmail"] = json!("tampered-token");
    let altered = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&cursor).unwrap());
    let body = json!({"mode": "initial", "pageToken": altered, "userId": "alice"});
    let (status, error) = error_code(app.execute("gmail/sync", body, None).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["param"], "pageToken");
}

#[tokio::test]
async fn malformed_slack_responses_are_502() {
    let app = TestApp::spawn().await;
    app.connect("slack", Some("alice")).await;
    for body in [
        json!("not json"),
        json!({"ok": false}),
        json!({"channel": "C0GENERAL"}),
    ] {
        let fault = json!({"path": "/slack/api/chat.postMessage", "status": 200, "body": body});
        app.sandbox_control("faults", fault).await;
        let message = json!({"channel": "#general", "text": "x", "userId": "alice"});
        let (status, error) = error_code(app.execute("slack/message", message, None).await).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
        assert_eq!(error["code"], "provider_unavailable", "{body}");
    }
}

#[tokio::test]
async fn shared_grant_is_not_revoked() {
    let app = TestApp::spawn().await;
    app.connect("google", Some("bob")).await;
    app.connect("google", Some("carol")).await;
    let response = app.delete("/v1/connections/google", Some("bob")).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(
        app.sandbox_requests("/google/revoke").await.is_empty(),
        "carol shares the grant"
    );
    let response = app
        .execute("gmail/read", json!({"userId": "carol"}), None)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = app.delete("/v1/connections/google", Some("carol")).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.sandbox_requests("/google/revoke").await.len(),
        1,
        "last one revokes"
    );
}

/// Runs the `patchbay` binary on the test database; returns (success, stdout, stderr).
fn patchbay(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_patchbay"))
        .args(args)
        .env("PATCHBAY_DATABASE_URL", &app.database_url)
        .output()
        .expect("patchbay runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn cli_rejects_bad_input() {
    let app = TestApp::spawn().await;
    let (ok, _, stderr) = patchbay(&app, &["tenant", "create", "--name", "a\u{1}b"]);
    assert!(!ok);
    assert!(stderr.contains("control characters"), "{stderr}");
    let (ok, _, stderr) = patchbay(&app, &["key", "list", "--tenant", "ten_nonexistent"]);
    assert!(!ok);
    assert!(stderr.contains("no tenant"), "{stderr}");
    let (ok, _, stderr) = patchbay(
        &app,
        &[
            "tenant",
            "allow-redirect",
            "--tenant",
            &app.tenant_id,
            "https://*.example.com",
        ],
    );
    assert!(!ok);
    assert!(stderr.contains("wildcards"), "{stderr}");
}

#[tokio::test]
async fn cli_creates_and_revokes_keys() {
    let app = TestApp::spawn().await;
    let (ok, stdout, stderr) = patchbay(&app, &["tenant", "create", "--name", "Globex"]);
    assert!(ok, "{stderr}");
    let tenant: Value = serde_json::from_str(&stdout).unwrap();
    let tenant_id = tenant["id"].as_str().unwrap();
    let (ok, stdout, _) = patchbay(
        &app,
        &["key", "create", "--tenant", tenant_id, "--name", "ci"],
    );
    assert!(ok);
    let key: Value = serde_json::from_str(&stdout).unwrap();
    let secret = key["key"].as_str().unwrap();
    assert!(secret.starts_with("pb_live_"));
    assert!(secret.ends_with(key["keyHint"].as_str().unwrap()));
    let list = app
        .client
        .get(app.url("/v1/connections"))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), StatusCode::OK);
    let (ok, stdout, _) = patchbay(&app, &["key", "list", "--tenant", tenant_id]);
    assert!(ok);
    assert!(!stdout.contains(secret), "a listing never shows the key");
    let (ok, _, _) = patchbay(&app, &["key", "revoke", key["id"].as_str().unwrap()]);
    assert!(ok);
    let list = app
        .client
        .get(app.url("/v1/connections"))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn named_inline_text_part_is_read_as_body() {
    let app = TestApp::spawn().await;
    app.connect("google", Some("alice")).await;
    let eml = "From: Bob <bob@example.com>\r\nTo: ada@example.com\r\nSubject: Report\r\n\
        Date: Thu, 03 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
        Content-Type: text/plain; charset=iso-8859-1\r\n\
        Content-Disposition: inline; filename=report.txt\r\n\
        Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=FC=DFe aus dem Bericht\r\n";
    let id = app.add_message(eml).await;
    let body = json!({"messageId": id, "userId": "alice"});
    let read: Value = app
        .execute("gmail/read", body, None)
        .await
        .json()
        .await
        .unwrap();
    let message = &read["messages"][0];
    assert_eq!(
        message["bodyText"].as_str().map(str::trim),
        Some("Grüße aus dem Bericht")
    );
    assert_eq!(message["attachments"][0]["filename"], "report.txt");
    let fetches = app.sandbox_requests("/gmail/v1/users/me/messages/").await;
    assert!(fetches.iter().any(|r| {
        r["path"]
            .as_str()
            .unwrap_or_default()
            .contains("/attachments/")
    }));
}

/// Builds a message whose text parts are all sent inline with a file name, so
/// Gmail serves each only by attachment id.
fn many_named_parts(count: usize) -> String {
    let mut eml = String::from(
        "From: Bob <bob@example.com>\r\nTo: ada@example.com\r\nSubject: Parts\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n",
    );
    for n in 0..count {
        eml.push_str(&format!(
            "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Disposition: inline; filename=\"p{n}.txt\"\r\n\r\npart {n}\r\n"
        ));
    }
    eml.push_str("--b--\r\n");
    eml
}

#[tokio::test]
async fn body_part_fetches_are_capped() {
    let app = TestApp::spawn().await;
    app.connect("google", Some("alice")).await;
    let id = app.add_message(&many_named_parts(40)).await;
    app.clear_sandbox_requests().await;
    let body = json!({"messageId": id, "userId": "alice"});
    let read: Value = app
        .execute("gmail/read", body, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        read["messages"][0]["attachments"].as_array().unwrap().len(),
        40
    );
    let fetches = app.sandbox_requests("/gmail/v1/users/me/messages/").await;
    let attachment_calls = fetches.iter().filter(|r| {
        r["path"]
            .as_str()
            .unwrap_or_default()
            .contains("/attachments/")
    });
    assert_eq!(
        attachment_calls.count(),
        4,
        "at most four body parts per message"
    );
}

#[tokio::test]
async fn failed_body_fetch_keeps_message() {
    let app = TestApp::spawn().await;
    app.connect("google", Some("alice")).await;
    let initial: Value = app
        .execute(
            "gmail/sync",
            json!({"mode": "initial", "userId": "alice"}),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let history_id = initial["historyId"].as_str().unwrap().to_owned();
    let id = app.add_message(&many_named_parts(1)).await;
    let fault = json!({"path": format!("/gmail/v1/users/me/messages/{id}/attachments"),
        "status": 404, "times": 10});
    app.sandbox_control("faults", fault).await;
    let body = json!({"mode": "incremental", "historyId": history_id, "userId": "alice"});
    let page: Value = app
        .execute("gmail/sync", body, None)
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        vec![id.as_str()],
        "the message is delivered, not reported deleted"
    );
    assert!(
        page.get("deletedMessageIds")
            .is_none_or(|d| d.as_array().is_some_and(Vec::is_empty))
    );
    assert_eq!(page["messages"][0]["attachments"][0]["filename"], "p0.txt");
}

#[tokio::test]
async fn slack_delete_revokes_only_user_token() {
    let app = TestApp::spawn().await;
    app.connect("slack", Some("alice")).await;
    let response = app.delete("/v1/connections/slack", Some("alice")).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let revocations = app.sandbox_requests("/slack/api/auth.revoke").await;
    assert_eq!(
        revocations.len(),
        1,
        "the user token; the shared bot token is kept"
    );
}

#[tokio::test]
async fn reply_to_sloppy_message_ids_works() {
    let app = TestApp::spawn().await;
    app.connect("google", Some("alice")).await;
    let parent = "From: Bob <bob@example.com>\r\nTo: ada@example.com\r\nSubject: Budget\r\n\
        Message-ID: <p3@example.com> (sent by foo)\r\nReferences: <abc> <def@example.com>\r\n\
        Content-Type: text/plain\r\n\r\nnumbers\r\n";
    let parent_id = app.add_message(parent).await;
    let body =
        json!({"to": "bob@example.com", "body": "b", "inReplyTo": parent_id, "userId": "alice"});
    let response = app.execute("gmail/send", body, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let sent: Value = response.json().await.unwrap();
    let read = json!({"messageId": sent["id"], "userId": "alice"});
    let message: Value = app
        .execute("gmail/read", read, None)
        .await
        .json()
        .await
        .unwrap();
    let headers = &message["messages"][0]["headers"];
    assert_eq!(headers["In-Reply-To"], "<p3@example.com>");
    assert_eq!(headers["References"], "<def@example.com> <p3@example.com>");
}
