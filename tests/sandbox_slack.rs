//! Slack OAuth and Web API of the sandbox, driven over HTTP as the gateway drives them.

use patchbay::sandbox::{Sandbox, SandboxConfig};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

const REDIRECT: &str = "http://127.0.0.1:9/v1/connections/slack/callback";

fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

/// Calls the install page and returns the redirect's query pairs.
async fn authorize(sandbox: &Sandbox, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut query = vec![
        ("client_id", "sandbox-slack-client"),
        ("scope", "chat:write,channels:read,channels:join"),
        ("user_scope", "search:read"),
        ("redirect_uri", REDIRECT),
        ("state", "st"),
    ];
    query.extend_from_slice(extra);
    let response = client()
        .get(sandbox.urls().slack_authorize)
        .query(&query)
        .send()
        .await
        .expect("authorize request");
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response
        .headers()
        .get("location")
        .and_then(|value| value.to_str().ok())
        .expect("location")
        .to_string();
    let url = url::Url::parse(&location).expect("absolute URL");
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn api(
    sandbox: &Sandbox,
    method: &str,
    token: Option<&str>,
    body: Value,
) -> (StatusCode, Value) {
    let mut request = client()
        .post(format!("{}/{method}", sandbox.urls().slack_api))
        .header("content-type", "application/json; charset=utf-8")
        .body(body.to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("Slack request");
    let status = response.status();
    (status, response.json().await.expect("JSON body"))
}

async fn access(sandbox: &Sandbox, form: &[(&str, &str)]) -> Value {
    client()
        .post(format!("{}/oauth.v2.access", sandbox.urls().slack_api))
        .form(form)
        .send()
        .await
        .expect("oauth.v2.access")
        .json()
        .await
        .expect("JSON body")
}

async fn install(sandbox: &Sandbox) -> Value {
    let redirect = authorize(sandbox, &[]).await;
    let code = param(&redirect, "code").expect("code");
    access(
        sandbox,
        &[
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_id", "sandbox-slack-client"),
            ("client_secret", "sandbox-slack-secret"),
        ],
    )
    .await
}

fn bot_token(answer: &Value) -> String {
    answer["access_token"]
        .as_str()
        .expect("bot token")
        .to_string()
}

fn user_token(answer: &Value) -> String {
    answer["authed_user"]["access_token"]
        .as_str()
        .expect("user token")
        .to_string()
}

#[tokio::test]
async fn oauth_install() {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let redirect = authorize(&sandbox, &[]).await;
    assert_eq!(param(&redirect, "state"), Some("st"));
    let code = param(&redirect, "code").expect("code").to_string();
    let answer = access(
        &sandbox,
        &[
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", "sandbox-slack-client"),
            ("client_secret", "sandbox-slack-secret"),
        ],
    )
    .await;
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["token_type"], "bot");
    assert_eq!(answer["scope"], "chat:write,channels:read,channels:join");
    assert!(bot_token(&answer).starts_with("xoxb-"));
    assert!(
        answer["bot_user_id"]
            .as_str()
            .is_some_and(|id| id.starts_with('U'))
    );
    assert_eq!(answer["team"]["name"], "Sandbox Team");
    assert_eq!(answer["enterprise"], Value::Null);
    assert_eq!(answer["is_enterprise_install"], false);
    assert_eq!(answer["authed_user"]["scope"], "search:read");
    assert_eq!(answer["authed_user"]["token_type"], "user");
    assert!(user_token(&answer).starts_with("xoxp-"));
    assert!(answer.get("refresh_token").is_none());

    let again = access(
        &sandbox,
        &[
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", "sandbox-slack-client"),
            ("client_secret", "sandbox-slack-secret"),
        ],
    )
    .await;
    assert_eq!(again, json!({"ok": false, "error": "invalid_code"}));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn oauth_errors() {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let code = param(&authorize(&sandbox, &[]).await, "code")
        .expect("code")
        .to_string();
    let cases = [
        (
            "invalid_client_id",
            [
                ("client_id", "other"),
                ("client_secret", "sandbox-slack-secret"),
                ("redirect_uri", REDIRECT),
            ],
        ),
        (
            "bad_client_secret",
            [
                ("client_id", "sandbox-slack-client"),
                ("client_secret", "nope"),
                ("redirect_uri", REDIRECT),
            ],
        ),
        (
            "bad_redirect_uri",
            [
                ("client_id", "sandbox-slack-client"),
                ("client_secret", "sandbox-slack-secret"),
                ("redirect_uri", "http://127.0.0.1:9/x"),
            ],
        ),
    ];
    for (expected, fields) in cases {
        let mut form = fields.to_vec();
        form.push(("code", &code));
        let answer = access(&sandbox, &form).await;
        assert_eq!(answer, json!({"ok": false, "error": expected}));
    }

    let denied = authorize(&sandbox, &[("sandbox_deny", "access_denied")]).await;
    assert_eq!(param(&denied, "error"), Some("access_denied"));
    assert_eq!(param(&denied, "code"), None);

    let response = client()
        .get(sandbox.urls().slack_authorize)
        .query(&[
            ("client_id", "unknown"),
            ("scope", "chat:write"),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .expect("authorize request");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn token_rotation() {
    let config = SandboxConfig {
        slack_token_rotation: true,
        access_token_ttl: 43_200,
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::start(config).await.expect("sandbox");
    let answer = install(&sandbox).await;
    assert!(bot_token(&answer).starts_with("xoxe.xoxb-1-"));
    assert_eq!(answer["expires_in"], 43_200);
    let bot_refresh = answer["refresh_token"]
        .as_str()
        .expect("bot refresh token")
        .to_string();
    assert!(bot_refresh.starts_with("xoxe-1-"));
    assert!(user_token(&answer).starts_with("xoxe.xoxp-1-"));
    assert_eq!(answer["authed_user"]["expires_in"], 43_200);
    assert!(answer["authed_user"]["refresh_token"].as_str().is_some());

    let refresh_form = |token: String| {
        vec![
            ("grant_type", "refresh_token".to_string()),
            ("refresh_token", token),
            ("client_id", "sandbox-slack-client".to_string()),
            ("client_secret", "sandbox-slack-secret".to_string()),
        ]
    };
    let form = refresh_form(bot_refresh.clone());
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refreshed = access(&sandbox, &form).await;
    assert_eq!(refreshed["ok"], true, "{refreshed}");
    assert_eq!(refreshed["token_type"], "bot");
    let new_refresh = refreshed["refresh_token"]
        .as_str()
        .expect("new refresh token");
    assert_ne!(new_refresh, bot_refresh);
    let new_bot = bot_token(&refreshed);
    let (_, posted) = api(
        &sandbox,
        "chat.postMessage",
        Some(&new_bot),
        json!({"channel": "C0GENERAL", "text": "hi"}),
    )
    .await;
    assert_eq!(posted["ok"], true);

    // The old refresh token stops working once used.
    let again = access(&sandbox, &form).await;
    assert_eq!(
        again,
        json!({"ok": false, "error": "invalid_refresh_token"})
    );

    client()
        .post(format!(
            "{}/_sandbox/slack/expire-tokens",
            sandbox.base_url()
        ))
        .send()
        .await
        .expect("control request");
    let (_, expired) = api(
        &sandbox,
        "chat.postMessage",
        Some(&new_bot),
        json!({"channel": "C0GENERAL", "text": "hi"}),
    )
    .await;
    assert_eq!(expired, json!({"ok": false, "error": "token_expired"}));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn post_message_rules() {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let bot = bot_token(&install(&sandbox).await);

    let (status, posted) = api(
        &sandbox,
        "chat.postMessage",
        Some(&bot),
        json!({"channel": "#general", "text": "Deploy done"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(posted["ok"], true);
    assert_eq!(posted["channel"], "C0GENERAL");
    let ts = posted["ts"].as_str().expect("ts").to_string();
    assert_eq!(posted["message"]["text"], "Deploy done");
    assert_eq!(posted["message"]["ts"], ts.as_str());

    let (_, reply) = api(
        &sandbox,
        "chat.postMessage",
        Some(&bot),
        json!({"channel": "general", "text": "details", "thread_ts": ts}),
    )
    .await;
    assert_eq!(reply["ok"], true);
    assert_eq!(reply["message"]["thread_ts"], ts.as_str());

    let blocks: Vec<Value> = (0..51).map(|_| json!({"type": "divider"})).collect();
    let long_text = "x".repeat(40_001);
    let cases = [
        (
            json!({"channel": "C0RANDOM", "text": "hi"}),
            "not_in_channel",
        ),
        (
            json!({"channel": "#nope", "text": "hi"}),
            "channel_not_found",
        ),
        (json!({"channel": "C0GENERAL"}), "no_text"),
        (
            json!({"channel": "C0GENERAL", "text": long_text}),
            "msg_too_long",
        ),
        (
            json!({"channel": "C0GENERAL", "blocks": blocks}),
            "invalid_blocks",
        ),
        (
            json!({"channel": "C0GENERAL", "blocks": "{not json"}),
            "invalid_blocks_format",
        ),
        (
            json!({"channel": "C0GENERAL", "text": "x", "thread_ts": "1.000001"}),
            "thread_not_found",
        ),
    ];
    for (body, expected) in cases {
        let (status, answer) = api(&sandbox, "chat.postMessage", Some(&bot), body).await;
        assert_eq!(status, StatusCode::OK, "{expected}");
        assert_eq!(answer["ok"], false, "{expected}");
        assert_eq!(answer["error"], expected);
    }

    // After joining, the bot may post in #random.
    let (_, joined) = api(
        &sandbox,
        "conversations.join",
        Some(&bot),
        json!({"channel": "C0RANDOM"}),
    )
    .await;
    assert_eq!(joined["ok"], true);
    let (_, posted) = api(
        &sandbox,
        "chat.postMessage",
        Some(&bot),
        json!({"channel": "C0RANDOM", "text": "hello"}),
    )
    .await;
    assert_eq!(posted["ok"], true);

    // Form bodies work too, with blocks as a JSON string.
    let response = client()
        .post(format!("{}/chat.postMessage", sandbox.urls().slack_api))
        .form(&[
            ("token", bot.as_str()),
            ("channel", "C0GENERAL"),
            (
                "blocks",
                r#"[{"type":"section","text":{"type":"mrkdwn","text":"*hi*"}}]"#,
            ),
        ])
        .send()
        .await
        .expect("form post");
    let answer: Value = response.json().await.expect("JSON");
    assert_eq!(answer["ok"], true, "{answer}");

    let listed: Value = client()
        .get(format!(
            "{}/_sandbox/slack/messages?channel=C0GENERAL",
            sandbox.base_url()
        ))
        .send()
        .await
        .expect("control request")
        .json()
        .await
        .expect("JSON");
    let deploys = listed
        .as_array()
        .map(|list| list.iter().filter(|m| m["text"] == "Deploy done").count());
    assert_eq!(deploys, Some(1));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn auth_failures() {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let answer = install(&sandbox).await;
    let bot = bot_token(&answer);
    let body = json!({"channel": "C0GENERAL", "text": "hi"});

    let (_, missing) = api(&sandbox, "chat.postMessage", None, body.clone()).await;
    assert_eq!(missing, json!({"ok": false, "error": "not_authed"}));
    let (_, unknown) = api(
        &sandbox,
        "chat.postMessage",
        Some("xoxb-unknown"),
        body.clone(),
    )
    .await;
    assert_eq!(unknown, json!({"ok": false, "error": "invalid_auth"}));

    let (_, scope) = api(
        &sandbox,
        "chat.postMessage",
        Some(&user_token(&answer)),
        body.clone(),
    )
    .await;
    assert_eq!(scope["error"], "missing_scope");
    assert_eq!(scope["needed"], "chat:write");
    assert_eq!(scope["provided"], "search:read");

    let (_, revoked) = api(&sandbox, "auth.revoke", Some(&bot), json!({})).await;
    assert_eq!(revoked, json!({"ok": true, "revoked": true}));
    let (_, after) = api(&sandbox, "chat.postMessage", Some(&bot), body.clone()).await;
    assert_eq!(after, json!({"ok": false, "error": "token_revoked"}));

    let user = user_token(&answer);
    client()
        .post(format!("{}/_sandbox/slack/revoke", sandbox.base_url()))
        .json(&json!({"team": "Sandbox Team"}))
        .send()
        .await
        .expect("control request");
    let (_, search) = api(
        &sandbox,
        "search.messages",
        Some(&user),
        json!({"query": "x"}),
    )
    .await;
    assert_eq!(search, json!({"ok": false, "error": "token_revoked"}));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn search_and_list() {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let answer = install(&sandbox).await;
    let bot = bot_token(&answer);
    let user = user_token(&answer);
    for text in [
        "Release 1.2 shipped",
        "Release notes are in the wiki",
        "lunch?",
    ] {
        api(
            &sandbox,
            "chat.postMessage",
            Some(&bot),
            json!({"channel": "C0GENERAL", "text": text}),
        )
        .await;
    }

    let (_, found) = api(
        &sandbox,
        "search.messages",
        Some(&user),
        json!({"query": "release", "count": 1}),
    )
    .await;
    assert_eq!(found["ok"], true, "{found}");
    assert_eq!(found["query"], "release");
    assert_eq!(found["messages"]["total"], 2);
    assert_eq!(found["messages"]["paging"]["pages"], 2);
    assert_eq!(found["messages"]["pagination"]["per_page"], 1);
    let first = &found["messages"]["matches"][0];
    assert_eq!(first["type"], "message");
    assert_eq!(first["text"], "Release notes are in the wiki");
    assert_eq!(first["channel"]["id"], "C0GENERAL");
    assert_eq!(first["channel"]["name"], "general");
    assert!(
        first["permalink"]
            .as_str()
            .is_some_and(|link| link.contains("/archives/C0GENERAL/p"))
    );
    assert!(first["username"].as_str().is_some());

    let (_, filtered) = api(
        &sandbox,
        "search.messages",
        Some(&user),
        json!({"query": "release in:#random"}),
    )
    .await;
    assert_eq!(filtered["messages"]["total"], 0);

    let (_, bot_search) = api(
        &sandbox,
        "search.messages",
        Some(&bot),
        json!({"query": "release"}),
    )
    .await;
    assert_eq!(
        bot_search,
        json!({"ok": false, "error": "not_allowed_token_type"})
    );
    let (_, no_query) = api(&sandbox, "search.messages", Some(&user), json!({})).await;
    assert_eq!(no_query["error"], "no_query");

    let (_, listed) = api(&sandbox, "conversations.list", Some(&bot), json!({})).await;
    assert_eq!(listed["ok"], true);
    assert_eq!(listed["response_metadata"]["next_cursor"], "");
    let channels = listed["channels"].as_array().cloned().unwrap_or_default();
    assert_eq!(channels.len(), 2);
    let general = channels
        .iter()
        .find(|c| c["id"] == "C0GENERAL")
        .expect("general");
    assert_eq!(general["is_member"], true);
    let random = channels
        .iter()
        .find(|c| c["id"] == "C0RANDOM")
        .expect("random");
    assert_eq!(random["is_member"], false);

    let (_, paged) = api(
        &sandbox,
        "conversations.list",
        Some(&bot),
        json!({"limit": 1}),
    )
    .await;
    let cursor = paged["response_metadata"]["next_cursor"]
        .as_str()
        .expect("cursor")
        .to_string();
    assert!(!cursor.is_empty());
    let (_, rest) = api(
        &sandbox,
        "conversations.list",
        Some(&bot),
        json!({"limit": 1, "cursor": cursor}),
    )
    .await;
    assert_eq!(rest["channels"][0]["id"], "C0RANDOM");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn json_without_charset_warns() {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let bot = bot_token(&install(&sandbox).await);
    let response = client()
        .post(format!("{}/chat.postMessage", sandbox.urls().slack_api))
        .bearer_auth(&bot)
        .header("content-type", "application/json")
        .body(json!({"channel": "C0GENERAL", "text": "hi"}).to_string())
        .send()
        .await
        .expect("post");
    let answer: Value = response.json().await.expect("JSON");
    assert_eq!(answer["ok"], true);
    assert_eq!(answer["warning"], "missing_charset");
    sandbox.shutdown().await;
}
