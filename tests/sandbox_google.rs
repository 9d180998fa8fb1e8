//! Google OAuth of the sandbox, driven over HTTP as the gateway drives it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use patchbay::sandbox::{Sandbox, SandboxConfig};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const REDIRECT: &str = "http://127.0.0.1:9/v1/connections/google/callback";
const VERIFIER: &str = "a-verifier-of-at-least-forty-three-characters-0123456789";
const SCOPES: &str = "openid email profile https://www.googleapis.com/auth/gmail.modify \
                      https://www.googleapis.com/auth/gmail.send";

fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

fn challenge() -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER.as_bytes()))
}

/// Calls the consent endpoint and returns the query of the redirect target.
async fn authorize(sandbox: &Sandbox, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let challenge = challenge();
    let mut query = vec![
        ("client_id", "sandbox-google-client"),
        ("response_type", "code"),
        ("redirect_uri", REDIRECT),
        ("scope", SCOPES),
        ("state", "state-123"),
        ("access_type", "offline"),
        ("prompt", "consent"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    query.extend_from_slice(extra);
    let response = client()
        .get(sandbox.urls().google_authorize)
        .query(&query)
        .send()
        .await
        .expect("authorize request");
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response
        .headers()
        .get("location")
        .and_then(|value| value.to_str().ok())
        .expect("redirect location")
        .to_string();
    assert!(location.starts_with(REDIRECT), "redirects to {location}");
    let url = url::Url::parse(&location).expect("absolute location");
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

async fn token_request(sandbox: &Sandbox, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let response = client()
        .post(sandbox.urls().google_token)
        .form(form)
        .send()
        .await
        .expect("token request");
    let status = response.status();
    (status, response.json().await.expect("JSON body"))
}

async fn exchange(sandbox: &Sandbox, code: &str) -> (StatusCode, Value) {
    token_request(
        sandbox,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_id", "sandbox-google-client"),
            ("client_secret", "sandbox-google-secret"),
            ("code_verifier", VERIFIER),
        ],
    )
    .await
}

async fn refresh(sandbox: &Sandbox, refresh_token: &str) -> (StatusCode, Value) {
    token_request(
        sandbox,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", "sandbox-google-client"),
            ("client_secret", "sandbox-google-secret"),
        ],
    )
    .await
}

async fn profile_status(sandbox: &Sandbox, access_token: &str) -> (StatusCode, Value) {
    let response = client()
        .get(format!("{}/gmail/v1/users/me/profile", sandbox.base_url()))
        .bearer_auth(access_token)
        .send()
        .await
        .expect("profile request");
    let status = response.status();
    (status, response.json().await.expect("JSON body"))
}

async fn connect(sandbox: &Sandbox) -> Value {
    let redirect = authorize(sandbox, &[]).await;
    let code = param(&redirect, "code").expect("code");
    let (status, body) = exchange(sandbox, code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn decode_jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("JWT payload");
    let bytes = URL_SAFE_NO_PAD.decode(payload).expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

#[tokio::test]
async fn authorization_code_flow() {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let redirect = authorize(&sandbox, &[]).await;
    assert_eq!(param(&redirect, "state"), Some("state-123"));
    let granted = param(&redirect, "scope").expect("scope").to_string();
    assert!(granted.contains("https://www.googleapis.com/auth/userinfo.email"));
    assert!(granted.contains("https://www.googleapis.com/auth/gmail.modify"));

    let code = param(&redirect, "code").expect("code");
    let (status, body) = exchange(&sandbox, code).await;
    assert_eq!(status, StatusCode::OK);
    let access = body["access_token"].as_str().expect("access token");
    assert!(access.starts_with("ya29."));
    assert!(
        body["refresh_token"]
            .as_str()
            .expect("refresh token")
            .starts_with("1//")
    );
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], granted.as_str());

    let claims = decode_jwt_claims(body["id_token"].as_str().expect("id token"));
    assert_eq!(claims["email"], "ada@example.com");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["aud"], "sandbox-google-client");
    assert_eq!(claims["iss"], "https://accounts.google.com");
    assert!(claims["sub"].as_str().is_some_and(|sub| !sub.is_empty()));

    let (status, profile) = profile_status(&sandbox, access).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(profile["emailAddress"], "ada@example.com");
    assert!(profile["historyId"].as_str().is_some());

    // A code works once.
    let (status, body) = exchange(&sandbox, code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": "invalid_grant", "error_description": "Bad Request"})
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn refresh_omits_refresh_token() {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let tokens = connect(&sandbox).await;
    let refresh_token = tokens["refresh_token"].as_str().expect("refresh token");

    let (status, body) = refresh(&sandbox, refresh_token).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.get("refresh_token").is_none());
    let new_access = body["access_token"].as_str().expect("access token");
    assert_ne!(Some(new_access), tokens["access_token"].as_str());
    assert_eq!(profile_status(&sandbox, new_access).await.0, StatusCode::OK);

    let (status, body) = refresh(&sandbox, "1//unknown").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn code_exchange_errors() {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");

    let code = param(&authorize(&sandbox, &[]).await, "code")
        .expect("code")
        .to_string();
    let (status, body) = token_request(
        &sandbox,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", "sandbox-google-client"),
            ("client_secret", "sandbox-google-secret"),
            (
                "code_verifier",
                "wrong-verifier-wrong-verifier-wrong-verifier",
            ),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");

    let code = param(&authorize(&sandbox, &[]).await, "code")
        .expect("code")
        .to_string();
    let (status, body) = token_request(
        &sandbox,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:9/other"),
            ("client_id", "sandbox-google-client"),
            ("client_secret", "sandbox-google-secret"),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "redirect_uri_mismatch");

    let (status, body) = token_request(
        &sandbox,
        &[
            ("grant_type", "authorization_code"),
            ("code", "4/0whatever"),
            ("redirect_uri", REDIRECT),
            ("client_id", "sandbox-google-client"),
            ("client_secret", "wrong"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"error": "invalid_client", "error_description": "Unauthorized"})
    );

    let (status, body) = token_request(
        &sandbox,
        &[
            ("grant_type", "password"),
            ("client_id", "sandbox-google-client"),
            ("client_secret", "sandbox-google-secret"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "unsupported_grant_type");

    let (status, body) = token_request(&sandbox, &[("code", "x")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn client_credentials_in_basic_auth() {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let code = param(&authorize(&sandbox, &[]).await, "code")
        .expect("code")
        .to_string();
    let response = client()
        .post(sandbox.urls().google_token)
        .basic_auth("sandbox-google-client", Some("sandbox-google-secret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), StatusCode::OK);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn consent_knobs() {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");

    let denied = authorize(&sandbox, &[("sandbox_deny", "access_denied")]).await;
    assert_eq!(param(&denied, "error"), Some("access_denied"));
    assert_eq!(param(&denied, "state"), Some("state-123"));
    assert_eq!(param(&denied, "code"), None);

    let narrowed = authorize(
        &sandbox,
        &[(
            "sandbox_scopes",
            "openid email https://www.googleapis.com/auth/gmail.send",
        )],
    )
    .await;
    let scope = param(&narrowed, "scope").expect("scope");
    assert!(!scope.contains("gmail.modify"));
    let (_, tokens) = exchange(&sandbox, param(&narrowed, "code").expect("code")).await;
    assert!(
        !tokens["scope"]
            .as_str()
            .expect("scope")
            .contains("gmail.modify")
    );
    // gmail.send alone does not allow reading the mailbox.
    let response = client()
        .get(format!("{}/gmail/v1/users/me/messages", sandbox.base_url()))
        .bearer_auth(tokens["access_token"].as_str().expect("token"))
        .send()
        .await
        .expect("list request");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["status"], "PERMISSION_DENIED");
    assert_eq!(
        body["error"]["errors"][0]["reason"],
        "insufficientPermissions"
    );

    let other = authorize(&sandbox, &[("login_hint", "grace@example.com")]).await;
    let (_, tokens) = exchange(&sandbox, param(&other, "code").expect("code")).await;
    let claims = decode_jwt_claims(tokens["id_token"].as_str().expect("id token"));
    assert_eq!(claims["email"], "grace@example.com");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn consent_page_rejects_bad_requests() {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[("client_id", "unknown-client")], "invalid_client"),
        (&[("response_type", "token")], "unsupported_response_type"),
        (
            &[("scope", "https://www.googleapis.com/auth/drive")],
            "invalid_scope",
        ),
        (&[("code_challenge_method", "plain")], "invalid_request"),
    ];
    for (overrides, expected) in cases {
        let mut query: Vec<(&str, &str)> = vec![
            ("client_id", "sandbox-google-client"),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
            ("scope", "email"),
            ("state", "s"),
            ("code_challenge", "abc"),
            ("code_challenge_method", "S256"),
        ];
        for (key, value) in overrides.iter() {
            query.retain(|(k, _)| k != key);
            query.push((key, value));
        }
        let response = client()
            .get(sandbox.urls().google_authorize)
            .query(&query)
            .send()
            .await
            .expect("authorize request");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{expected}");
        assert!(response.headers().get("location").is_none());
        let page = response.text().await.expect("HTML page");
        assert!(page.contains(&format!("Error 400: {expected}")), "{page}");
    }

    let response = client()
        .get(sandbox.urls().google_authorize)
        .query(&[
            ("client_id", "sandbox-google-client"),
            ("response_type", "code"),
        ])
        .send()
        .await
        .expect("authorize request");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn revoke_ends_the_grant() {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let tokens = connect(&sandbox).await;
    let access = tokens["access_token"].as_str().expect("access token");
    let refresh_token = tokens["refresh_token"].as_str().expect("refresh token");

    let response = client()
        .post(sandbox.urls().google_revoke)
        .form(&[("token", refresh_token)])
        .send()
        .await
        .expect("revoke request");
    assert_eq!(response.status(), StatusCode::OK);

    let (status, body) = profile_status(&sandbox, access).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
    assert_eq!(
        refresh(&sandbox, refresh_token).await.0,
        StatusCode::BAD_REQUEST
    );

    let response = client()
        .post(format!(
            "{}?token={refresh_token}",
            sandbox.urls().google_revoke
        ))
        .send()
        .await
        .expect("revoke request");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(
        body,
        json!({"error": "invalid_token", "error_description": "Token expired or revoked"})
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn control_expires_and_revokes() {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let tokens = connect(&sandbox).await;
    let access = tokens["access_token"].as_str().expect("access token");
    let refresh_token = tokens["refresh_token"].as_str().expect("refresh token");
    let control = format!("{}/_sandbox/google", sandbox.base_url());

    let response = client()
        .post(format!("{control}/expire-tokens"))
        .json(&json!({"email": "ada@example.com"}))
        .send()
        .await
        .expect("control request");
    assert_eq!(response.status(), StatusCode::OK);
    let (status, body) = profile_status(&sandbox, access).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["errors"][0]["reason"], "authError");
    assert_eq!(body["error"]["errors"][0]["message"], "Invalid Credentials");

    let (status, refreshed) = refresh(&sandbox, refresh_token).await;
    assert_eq!(status, StatusCode::OK);
    let fresh = refreshed["access_token"].as_str().expect("access token");
    assert_eq!(profile_status(&sandbox, fresh).await.0, StatusCode::OK);

    client()
        .post(format!("{control}/revoke-grants"))
        .send()
        .await
        .expect("control request");
    assert_eq!(
        profile_status(&sandbox, fresh).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = refresh(&sandbox, refresh_token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["error_description"],
        "Token has been expired or revoked."
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn short_ttl_tokens_expire() {
    let config = SandboxConfig {
        access_token_ttl: 1,
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::start(config).await.expect("sandbox");
    let tokens = connect(&sandbox).await;
    assert_eq!(tokens["expires_in"], 1);
    let access = tokens["access_token"].as_str().expect("access token");
    assert_eq!(profile_status(&sandbox, access).await.0, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        profile_status(&sandbox, access).await.0,
        StatusCode::UNAUTHORIZED
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn missing_token_is_401() {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let response = client()
        .get(format!("{}/gmail/v1/users/me/profile", sandbox.base_url()))
        .send()
        .await
        .expect("profile request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().get("www-authenticate").is_some());
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], 401);
    assert_eq!(body["error"]["errors"][0]["locationType"], "header");
    sandbox.shutdown().await;
}
