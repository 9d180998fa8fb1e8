//! Gmail API of the sandbox: listing, search, message formats, attachments, sending,
//! labels and history, driven over HTTP with a token from the sandbox's own OAuth flow.

use std::io::Write;

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use patchbay::sandbox::{Sandbox, SandboxConfig};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

const REDIRECT: &str = "http://127.0.0.1:9/callback";
const FULL_SCOPES: &str = "openid email https://www.googleapis.com/auth/gmail.modify \
                           https://www.googleapis.com/auth/gmail.send";

fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

/// Runs the OAuth flow (without PKCE) for `email` and returns an access token.
async fn access_token(sandbox: &Sandbox, email: &str, scopes: &str) -> String {
    let response = client()
        .get(sandbox.urls().google_authorize)
        .query(&[
            ("client_id", "sandbox-google-client"),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
            ("scope", scopes),
            ("state", "s"),
            ("login_hint", email),
        ])
        .send()
        .await
        .expect("authorize request");
    let location = response
        .headers()
        .get("location")
        .and_then(|value| value.to_str().ok())
        .expect("redirect")
        .to_string();
    let url = url::Url::parse(&location).expect("absolute URL");
    let code = url
        .query_pairs()
        .find(|(key, _)| key == "code")
        .map(|(_, value)| value.into_owned())
        .expect("code");
    let body: Value = client()
        .post(sandbox.urls().google_token)
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("client_id", "sandbox-google-client"),
            ("client_secret", "sandbox-google-secret"),
        ])
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("token JSON");
    body["access_token"]
        .as_str()
        .expect("access token")
        .to_string()
}

struct Gmail {
    base: String,
    token: String,
}

impl Gmail {
    async fn connect(sandbox: &Sandbox) -> Gmail {
        Gmail {
            base: sandbox.base_url(),
            token: access_token(sandbox, "ada@example.com", FULL_SCOPES).await,
        }
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> (StatusCode, Value) {
        let response = client()
            .get(format!("{}/gmail/v1/users/me/{path}", self.base))
            .query(query)
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("Gmail request");
        let status = response.status();
        (status, response.json().await.expect("JSON body"))
    }

    async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let response = client()
            .post(format!("{}/gmail/v1/users/me/{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .expect("Gmail request");
        let status = response.status();
        (status, response.json().await.expect("JSON body"))
    }

    /// Adds a message through the control API and returns its id.
    async fn add(&self, eml: &str) -> String {
        let body: Value = client()
            .post(format!("{}/_sandbox/gmail/messages", self.base))
            .json(&json!({"eml": eml}))
            .send()
            .await
            .expect("control request")
            .json()
            .await
            .expect("control JSON");
        body["id"].as_str().expect("message id").to_string()
    }

    async fn list_ids(&self, query: &[(&str, &str)]) -> Vec<String> {
        let (status, body) = self.get("messages", query).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        ids(&body["messages"])
    }
}

fn ids(messages: &Value) -> Vec<String> {
    messages
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|m| m["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn eml(subject: &str, date: &str, body: &str) -> String {
    format!(
        "From: Grace Hopper <grace@example.com>\r\nTo: ada@example.com\r\nSubject: {subject}\r\n\
         Date: {date}\r\nMessage-ID: <{}@example.com>\r\n\r\n{body}\r\n",
        subject.replace(' ', ".")
    )
}

#[tokio::test]
async fn list_search_and_paging() {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let gmail = Gmail::connect(&sandbox).await;
    let old = gmail
        .add(&eml(
            "Old news",
            "Mon, 02 Jan 2023 10:00:00 +0000",
            "archive",
        ))
        .await;
    let mid = gmail
        .add(&eml(
            "Budget plan",
            "Wed, 01 Mar 2023 10:00:00 +0000",
            "numbers",
        ))
        .await;
    let new = gmail
        .add(&eml(
            "Fresh update",
            "Sat, 01 Apr 2023 10:00:00 +0000",
            "budget ok",
        ))
        .await;

    assert_eq!(
        gmail.list_ids(&[]).await,
        vec![new.clone(), mid.clone(), old.clone()]
    );
    assert_eq!(
        gmail.list_ids(&[("q", "budget")]).await,
        vec![new.clone(), mid.clone()]
    );
    assert_eq!(
        gmail.list_ids(&[("q", "subject:budget")]).await,
        vec![mid.clone()]
    );
    assert_eq!(
        gmail.list_ids(&[("q", "after:2023/02/01 -fresh")]).await,
        vec![mid.clone()]
    );
    assert_eq!(
        gmail.list_ids(&[("q", "before:1672704000")]).await,
        vec![old.clone()]
    );
    assert_eq!(
        gmail.list_ids(&[("q", "from:grace is:unread")]).await.len(),
        3
    );
    assert!(gmail.list_ids(&[("q", "is:read")]).await.is_empty());

    let (_, empty) = gmail
        .get("messages", &[("q", "nothing-matches-this")])
        .await;
    assert!(empty.get("messages").is_none());
    assert_eq!(empty["resultSizeEstimate"], 0);

    let (_, first) = gmail.get("messages", &[("maxResults", "2")]).await;
    assert_eq!(ids(&first["messages"]), vec![new.clone(), mid.clone()]);
    let token = first["nextPageToken"]
        .as_str()
        .expect("next page token")
        .to_string();
    // A message arriving between pages does not shift the next page.
    gmail
        .add(&eml(
            "Late arrival",
            "Sun, 02 Apr 2023 10:00:00 +0000",
            "late",
        ))
        .await;
    let (_, second) = gmail
        .get("messages", &[("maxResults", "2"), ("pageToken", &token)])
        .await;
    assert_eq!(ids(&second["messages"]), vec![old]);
    assert!(second.get("nextPageToken").is_none());

    let (status, body) = gmail.get("messages", &[("pageToken", "%%%")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn label_filters_and_trash() {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let gmail = Gmail::connect(&sandbox).await;
    let inbox = gmail
        .add(&eml("Inbox one", "Mon, 02 Jan 2023 10:00:00 +0000", "a"))
        .await;
    let binned: Value = client()
        .post(format!("{}/_sandbox/gmail/messages", gmail.base))
        .json(&json!({"eml": eml("Binned", "Mon, 02 Jan 2023 11:00:00 +0000", "b"), "labelIds": ["TRASH"]}))
        .send()
        .await
        .expect("control request")
        .json()
        .await
        .expect("JSON");
    let binned = binned["id"].as_str().expect("id").to_string();

    assert_eq!(gmail.list_ids(&[]).await, vec![inbox.clone()]);
    assert_eq!(
        gmail
            .list_ids(&[("labelIds", "INBOX"), ("labelIds", "UNREAD")])
            .await,
        vec![inbox.clone()]
    );
    assert_eq!(
        gmail.list_ids(&[("includeSpamTrash", "true")]).await,
        vec![binned.clone(), inbox.clone()]
    );
    assert_eq!(gmail.list_ids(&[("q", "in:trash")]).await, vec![binned]);
    sandbox.shutdown().await;
}

const WITH_ATTACHMENT: &str = "From: grace@example.com\r\nTo: ada@example.com\r\n\
Subject: =?utf-8?Q?Pr=C3=BCfbericht?=\r\nDate: Mon, 02 Jan 2023 10:00:00 +0000\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
Gr=FC=DFe aus K=F6ln\r\n--b\r\n\
Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"bericht.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n";

#[tokio::test]
async fn message_formats_and_attachment() {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let gmail = Gmail::connect(&sandbox).await;
    let id = gmail.add(WITH_ATTACHMENT).await;

    let (status, full) = gmail.get(&format!("messages/{id}"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(full["id"], id.as_str());
    assert_eq!(full["threadId"], id.as_str());
    assert_eq!(full["labelIds"], json!(["INBOX", "UNREAD"]));
    assert_eq!(full["internalDate"], "1672653600000");
    assert_eq!(full["snippet"], "Grüße aus Köln");
    assert!(full["historyId"].as_str().is_some());
    assert!(full["sizeEstimate"].as_u64().is_some_and(|size| size > 100));
    let payload = &full["payload"];
    assert_eq!(payload["mimeType"], "multipart/mixed");
    let subject = payload["headers"]
        .as_array()
        .and_then(|headers| headers.iter().find(|h| h["name"] == "Subject"))
        .expect("Subject header");
    assert_eq!(subject["value"], "Prüfbericht");
    let text = URL_SAFE
        .decode(
            payload["parts"][0]["body"]["data"]
                .as_str()
                .expect("text data"),
        )
        .expect("base64url");
    assert_eq!(text, b"Gr\xfc\xdfe aus K\xf6ln".to_vec());

    let pdf = &payload["parts"][1];
    assert_eq!(pdf["filename"], "bericht.pdf");
    let attachment_id = pdf["body"]["attachmentId"].as_str().expect("attachment id");
    let (status, attachment) = gmail
        .get(&format!("messages/{id}/attachments/{attachment_id}"), &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(attachment["size"], 9);
    let data = URL_SAFE
        .decode(attachment["data"].as_str().expect("data"))
        .expect("base64url");
    assert_eq!(data, b"%PDF-1.4\n".to_vec());

    let (_, metadata) = gmail
        .get(
            &format!("messages/{id}"),
            &[
                ("format", "metadata"),
                ("metadataHeaders", "subject"),
                ("metadataHeaders", "From"),
            ],
        )
        .await;
    let names: Vec<&str> = metadata["payload"]["headers"]
        .as_array()
        .map(|headers| headers.iter().filter_map(|h| h["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, vec!["From", "Subject"]);
    assert!(metadata["payload"].get("parts").is_none());

    let (_, minimal) = gmail
        .get(&format!("messages/{id}"), &[("format", "minimal")])
        .await;
    assert!(minimal.get("payload").is_none());
    assert_eq!(minimal["snippet"], full["snippet"]);

    let (_, raw) = gmail
        .get(&format!("messages/{id}"), &[("format", "raw")])
        .await;
    let bytes = URL_SAFE
        .decode(raw["raw"].as_str().expect("raw"))
        .expect("base64url");
    assert_eq!(bytes, WITH_ATTACHMENT.as_bytes().to_vec());

    let (status, body) = gmail.get("messages/0123456789abcdef", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["status"], "NOT_FOUND");
    assert_eq!(body["error"]["errors"][0]["reason"], "notFound");
    let (status, _) = gmail
        .get(&format!("messages/{id}"), &[("format", "weird")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    sandbox.shutdown().await;
}

fn raw_field(message: &str) -> String {
    URL_SAFE_NO_PAD.encode(message)
}

#[tokio::test]
async fn send_threads_and_delivers() {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let gmail = Gmail::connect(&sandbox).await;
    let grace = Gmail {
        base: sandbox.base_url(),
        token: access_token(&sandbox, "grace@example.com", FULL_SCOPES).await,
    };
    let parent = gmail
        .add("From: grace@example.com\r\nTo: ada@example.com\r\nSubject: Plans\r\nMessage-ID: <plans@example.com>\r\n\r\nShall we?\r\n")
        .await;

    let reply = "From: ada@example.com\r\nTo: grace@example.com\r\nSubject: Re: Plans\r\n\
                 In-Reply-To: <plans@example.com>\r\nReferences: <plans@example.com>\r\n\r\nYes!\r\n";
    let (status, sent) = gmail
        .post(
            "messages/send",
            &json!({"raw": raw_field(reply), "threadId": parent}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    assert_eq!(sent["threadId"], parent.as_str());
    assert_eq!(sent["labelIds"], json!(["SENT"]));

    // Without matching references Gmail starts a new thread even with threadId.
    let unrelated = "To: grace@example.com\r\nSubject: Something else\r\n\r\nhi\r\n";
    let (_, other) = gmail
        .post(
            "messages/send",
            &json!({"raw": raw_field(unrelated), "threadId": parent}),
        )
        .await;
    assert_ne!(other["threadId"], parent.as_str());

    // The recipient is a sandbox account too and receives the message.
    let received = grace.list_ids(&[("q", "subject:plans")]).await;
    assert_eq!(received.len(), 1);
    let stored: Value = gmail
        .get(
            &format!("messages/{}", sent["id"].as_str().expect("id")),
            &[("format", "raw")],
        )
        .await
        .1;
    let raw = String::from_utf8(
        URL_SAFE
            .decode(stored["raw"].as_str().expect("raw"))
            .expect("b64"),
    )
    .expect("utf8");
    assert!(raw.contains("Message-ID: <"), "Gmail adds a Message-ID");
    assert!(raw.contains("Date: "), "Gmail adds a Date");

    let to_self = "To: Ada <ada@example.com>\r\nSubject: Note to self\r\n\r\nremember\r\n";
    let (_, own) = gmail
        .post("messages/send", &json!({"raw": raw_field(to_self)}))
        .await;
    assert_eq!(own["labelIds"], json!(["SENT", "INBOX", "UNREAD"]));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn send_rejects_bad_messages() {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let gmail = Gmail::connect(&sandbox).await;
    let cases = [
        (
            json!({"raw": raw_field("Subject: none\r\n\r\nhi")}),
            "Recipient address required",
        ),
        (
            json!({"raw": raw_field("To: nobody\r\n\r\nhi")}),
            "Invalid To header",
        ),
        (
            json!({}),
            "'raw' RFC822 payload message string or uploading message via /upload/* URL required",
        ),
        (
            json!({"raw": "***"}),
            "Invalid value at 'message.raw' (TYPE_BYTES), Base64 decoding failed",
        ),
    ];
    for (body, message) in cases {
        let (status, error) = gmail.post("messages/send", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{message}");
        assert_eq!(error["error"]["message"], message);
        assert_eq!(error["error"]["errors"][0]["reason"], "invalidArgument");
    }
    let (status, _) = gmail
        .post("messages/send", &json!({"raw": raw_field("To: b@example.com\r\n\r\nhi"), "threadId": "0123456789abcdef"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn upload_endpoint_sends() {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let gmail = Gmail::connect(&sandbox).await;
    let upload = format!("{}/upload/gmail/v1/users/me/messages/send", gmail.base);
    let message = "To: bob@example.com\r\nSubject: Big\r\n\r\nlarge body\r\n";

    let response = client()
        .post(format!("{upload}?uploadType=media"))
        .bearer_auth(&gmail.token)
        .header("content-type", "message/rfc822")
        .body(message)
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status(), StatusCode::OK);
    let sent: Value = response.json().await.expect("JSON");
    assert_eq!(sent["labelIds"], json!(["SENT"]));

    let multipart = format!(
        "--sep\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{{}}\r\n--sep\r\n\
         Content-Type: message/rfc822\r\n\r\n{message}\r\n--sep--\r\n"
    );
    let response = client()
        .post(format!("{upload}?uploadType=multipart"))
        .bearer_auth(&gmail.token)
        .header("content-type", "multipart/related; boundary=sep")
        .body(multipart)
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status(), StatusCode::OK);

    let response = client()
        .post(format!("{upload}?uploadType=media"))
        .bearer_auth(&gmail.token)
        .header("content-type", "text/plain")
        .body(message)
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // 36 MB of body: over Gmail's 35 MB limit.
    let mut big = message.as_bytes().to_vec();
    big.resize(36 * 1024 * 1024, b'a');
    let response = client()
        .post(format!("{upload}?uploadType=media"))
        .bearer_auth(&gmail.token)
        .header("content-type", "message/rfc822")
        .body(big)
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn modify_and_history() {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let gmail = Gmail::connect(&sandbox).await;
    let (_, profile) = gmail.get("profile", &[]).await;
    let start = profile["historyId"]
        .as_str()
        .expect("history id")
        .to_string();

    let first = gmail
        .add(&eml("One", "Mon, 02 Jan 2023 10:00:00 +0000", "1"))
        .await;
    let second = gmail
        .add(&eml("Two", "Mon, 02 Jan 2023 11:00:00 +0000", "2"))
        .await;
    let (status, modified) = gmail
        .post(
            &format!("messages/{first}/modify"),
            &json!({"removeLabelIds": ["UNREAD"], "addLabelIds": ["STARRED"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(modified["labelIds"], json!(["INBOX", "STARRED"]));
    client()
        .delete(format!("{}/_sandbox/gmail/messages/{second}", gmail.base))
        .send()
        .await
        .expect("control request");

    // Five changes: two added, one label added, one label removed, one deleted.
    let mut records = Vec::new();
    let mut page_token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut query = vec![("startHistoryId", start.as_str()), ("maxResults", "2")];
        if let Some(token) = &page_token {
            query.push(("pageToken", token));
        }
        let (status, page) = gmail.get("history", &query).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages += 1;
        records.extend(page["history"].as_array().cloned().unwrap_or_default());
        match page["nextPageToken"].as_str() {
            Some(token) => page_token = Some(token.to_string()),
            None => {
                let (_, now) = gmail.get("profile", &[]).await;
                assert_eq!(page["historyId"], now["historyId"]);
                break;
            }
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(records.len(), 5);
    assert_eq!(
        records[0]["messagesAdded"][0]["message"]["id"],
        first.as_str()
    );
    assert_eq!(
        records[1]["messagesAdded"][0]["message"]["id"],
        second.as_str()
    );
    assert_eq!(records[2]["labelsAdded"][0]["labelIds"], json!(["STARRED"]));
    assert_eq!(
        records[3]["labelsRemoved"][0]["labelIds"],
        json!(["UNREAD"])
    );
    assert_eq!(
        records[4]["messagesDeleted"][0]["message"]["id"],
        second.as_str()
    );

    let (_, added_only) = gmail
        .get(
            "history",
            &[
                ("startHistoryId", start.as_str()),
                ("historyTypes", "messageAdded"),
            ],
        )
        .await;
    assert_eq!(added_only["history"].as_array().map(Vec::len), Some(2));

    client()
        .post(format!("{}/_sandbox/gmail/history/expire", gmail.base))
        .send()
        .await
        .expect("control request");
    let (status, body) = gmail
        .get("history", &[("startHistoryId", start.as_str())])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["status"], "NOT_FOUND");
    assert_eq!(body["error"]["errors"][0]["reason"], "notFound");

    let (status, body) = gmail.get("history", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn mailbox_folder_is_loaded() {
    let folder = tempfile::tempdir().expect("temp dir");
    let files = [
        (
            "b.eml",
            eml("Second file", "Tue, 03 Jan 2023 10:00:00 +0000", "b"),
        ),
        (
            "a.eml",
            "X-Sandbox-Labels: INBOX,STARRED\r\n".to_string()
                + &eml("First file", "Mon, 02 Jan 2023 10:00:00 +0000", "a"),
        ),
        ("notes.txt", "not a message".to_string()),
        ("empty.eml", String::new()),
    ];
    for (name, content) in files {
        let mut file = std::fs::File::create(folder.path().join(name)).expect("create file");
        file.write_all(content.as_bytes()).expect("write file");
    }
    let config = SandboxConfig {
        mailbox: Some(folder.path().to_path_buf()),
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::start(config).await.expect("sandbox");
    let gmail = Gmail::connect(&sandbox).await;
    let listed = gmail.list_ids(&[]).await;
    assert_eq!(listed.len(), 2);
    let starred = gmail.list_ids(&[("q", "is:starred")]).await;
    assert_eq!(starred.len(), 1);
    let (_, message) = gmail
        .get(&format!("messages/{}", starred[0]), &[("format", "raw")])
        .await;
    let raw = URL_SAFE
        .decode(message["raw"].as_str().expect("raw"))
        .expect("base64url");
    assert!(!String::from_utf8_lossy(&raw).contains("X-Sandbox-Labels"));
    assert_eq!(message["labelIds"], json!(["INBOX", "STARRED"]));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn other_users_mailbox_is_forbidden() {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let gmail = Gmail::connect(&sandbox).await;
    let response = client()
        .get(format!(
            "{}/gmail/v1/users/grace@example.com/profile",
            gmail.base
        ))
        .bearer_auth(&gmail.token)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = client()
        .get(format!(
            "{}/gmail/v1/users/ada@example.com/profile",
            gmail.base
        ))
        .bearer_auth(&gmail.token)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn quota_limits_requests() {
    let config = SandboxConfig {
        gmail_quota: true,
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::start(config).await.expect("sandbox");
    let gmail = Gmail::connect(&sandbox).await;
    // messages.send costs 100 units of the 250 per second, so the third send in a burst fails.
    let message = json!({"raw": raw_field("To: b@example.com\r\n\r\nhi")});
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(gmail.post("messages/send", &message).await);
    }
    assert_eq!(statuses[0].0, StatusCode::OK);
    assert_eq!(statuses[1].0, StatusCode::OK);
    assert_eq!(statuses[2].0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        statuses[2].1["error"]["errors"][0]["reason"],
        "rateLimitExceeded"
    );
    assert_eq!(statuses[2].1["error"]["status"], "RESOURCE_EXHAUSTED");
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    assert_eq!(
        gmail.post("messages/send", &message).await.0,
        StatusCode::OK
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn quota_limits_concurrent_requests() {
    let config = SandboxConfig {
        gmail_quota: true,
        latency_ms: 300,
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::start(config).await.expect("sandbox");
    let gmail = Gmail::connect(&sandbox).await;
    // Twelve profile reads cost 12 units, well inside the per-second quota, but only ten may
    // run at once.
    let calls = (0..12).map(|_| gmail.get("profile", &[]));
    let results = futures::future::join_all(calls).await;
    let limited = results
        .iter()
        .filter(|(status, _)| *status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    let served = results
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .count();
    assert_eq!(limited, 2);
    assert_eq!(served, 10);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn control_marks_message_read() {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let gmail = Gmail::connect(&sandbox).await;
    let id = gmail
        .add(&eml("Unread", "Mon, 02 Jan 2023 10:00:00 +0000", "x"))
        .await;
    let response = client()
        .post(format!("{}/_sandbox/gmail/messages/{id}/read", gmail.base))
        .send()
        .await
        .expect("control request");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(gmail.list_ids(&[("q", "is:unread")]).await.is_empty());
    assert_eq!(gmail.list_ids(&[("q", "is:read")]).await, vec![id]);

    let response = client()
        .post(format!(
            "{}/_sandbox/gmail/messages/0000000000000000/read",
            gmail.base
        ))
        .send()
        .await
        .expect("control request");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    sandbox.shutdown().await;
}
