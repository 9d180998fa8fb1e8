//! A gateway on a fresh SQLite file and a sandbox, both on loopback port 0, and
//! HTTP helpers that drive them as a client would.

use std::path::PathBuf;

use patchbay::app::Gateway;
use patchbay::config::Config;
use patchbay::crypto::EncryptionKey;
use patchbay::quickstart::sandbox_gateway_config;
use patchbay::sandbox::{Sandbox, SandboxConfig};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

pub struct TestApp {
    pub gateway: Gateway,
    /// The gateway's configuration, for starting more instances on its database.
    pub config: Config,
    pub sandbox: Sandbox,
    /// Client that does not follow redirects, so tests can see each hop.
    pub client: reqwest::Client,
    pub tenant_id: String,
    pub key: String,
    pub database_url: String,
    pub db_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(SandboxConfig::default()).await
    }

    pub async fn spawn_with(sandbox_config: SandboxConfig) -> TestApp {
        Self::spawn_configured(sandbox_config, |_| {}).await
    }

    /// Spawns with a sandbox configuration and a change to the gateway's configuration,
    /// such as removing a provider's OAuth client.
    pub async fn spawn_configured(
        sandbox_config: SandboxConfig,
        change: impl FnOnce(&mut Config),
    ) -> TestApp {
        let sandbox_config = SandboxConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..sandbox_config
        };
        let sandbox = Sandbox::start(sandbox_config.clone())
            .await
            .expect("sandbox starts");
        let dir = tempfile::tempdir().expect("temp dir");
        let db_path = dir.path().join("gateway.db");
        let database_url = match std::env::var("PATCHBAY_TEST_DATABASE_URL") {
            Ok(url) if url.starts_with("postgres") => fresh_postgres_schema(&url).await,
            _ => format!("sqlite://{}", db_path.display()),
        };
        let config = sandbox_gateway_config(
            "127.0.0.1:0".parse().unwrap(),
            &database_url,
            &EncryptionKey::generate(),
            &sandbox_config,
            &sandbox.urls(),
        )
        .expect("config");
        let mut config = config;
        change(&mut config);
        let gateway = Gateway::start(config.clone())
            .await
            .expect("gateway starts");
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let mut app = TestApp {
            gateway,
            config,
            sandbox,
            client,
            tenant_id: String::new(),
            key: String::new(),
            database_url,
            db_path,
            _dir: dir,
        };
        let (tenant_id, key) = app.new_tenant("Acme").await;
        app.tenant_id = tenant_id;
        app.key = key;
        app
    }

    /// Starts another gateway instance on the same database and providers.
    pub async fn another_instance(&self) -> Gateway {
        // Behind one load balancer every instance has the same public URL, so the
        // redirect_uri matches whichever instance handles the callback.
        let public_url = self.gateway.state().config.public_url.clone();
        let config = Config {
            public_url,
            ..self.config.clone()
        };
        Gateway::start(config).await.expect("second gateway starts")
    }

    /// Creates another tenant with its own API key.
    pub async fn new_tenant(&self, name: &str) -> (String, String) {
        let store = self.gateway.state().store.clone();
        let tenant = store.create_tenant(name).await.unwrap();
        let created = patchbay::cli::create_api_key(store.as_ref(), &tenant.id, None)
            .await
            .unwrap();
        (tenant.id, created["key"].as_str().unwrap().to_owned())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway.base_url())
    }

    pub fn sandbox_url(&self, path: &str) -> String {
        format!("{}{path}", self.sandbox.base_url())
    }

    /// GET with this app's key and an optional `X-User-Id`.
    pub async fn get(&self, path: &str, user: Option<&str>) -> Response {
        let mut request = self.client.get(self.url(path)).bearer_auth(&self.key);
        if let Some(user) = user {
            request = request.header("X-User-Id", user);
        }
        request.send().await.unwrap()
    }

    pub async fn delete(&self, path: &str, user: Option<&str>) -> Response {
        let mut request = self.client.delete(self.url(path)).bearer_auth(&self.key);
        if let Some(user) = user {
            request = request.header("X-User-Id", user);
        }
        request.send().await.unwrap()
    }

    /// POST /v1/execute/{action} with this app's key.
    pub async fn execute(&self, action: &str, body: Value, user_header: Option<&str>) -> Response {
        self.execute_with_key(&self.key, action, body, user_header)
            .await
    }

    pub async fn execute_with_key(
        &self,
        key: &str,
        action: &str,
        body: Value,
        user_header: Option<&str>,
    ) -> Response {
        let mut request = self
            .client
            .post(self.url(&format!("/v1/execute/{action}")))
            .bearer_auth(key)
            .json(&body);
        if let Some(user) = user_header {
            request = request.header("X-User-Id", user);
        }
        request.send().await.unwrap()
    }

    /// Starts an authorization and returns the consent URL.
    pub async fn authorize_url(&self, key: &str, provider: &str, user: Option<&str>) -> String {
        let mut request = self
            .client
            .get(self.url(&format!("/v1/connections/{provider}/authorize")))
            .bearer_auth(key);
        if let Some(user) = user {
            request = request.header("X-User-Id", user);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "authorize failed");
        let body: Value = response.json().await.unwrap();
        body["url"]
            .as_str()
            .expect("url in authorize answer")
            .to_owned()
    }

    /// Follows a consent URL at the sandbox (with extra sandbox knobs such as
    /// `login_hint`) and returns the callback URL it redirects to.
    pub async fn consent(&self, consent_url: &str, extra: &[(&str, &str)]) -> String {
        let mut url = url::Url::parse(consent_url).unwrap();
        for (name, value) in extra {
            url.query_pairs_mut().append_pair(name, value);
        }
        let response = self.client.get(url).send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::FOUND,
            "sandbox consent did not redirect"
        );
        response.headers()["location"].to_str().unwrap().to_owned()
    }

    /// Runs the whole flow (authorize, consent, callback) and returns the callback response.
    pub async fn connect_as(
        &self,
        key: &str,
        provider: &str,
        user: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Response {
        let consent_url = self.authorize_url(key, provider, user).await;
        let callback = self.consent(&consent_url, extra).await;
        self.client.get(callback).send().await.unwrap()
    }

    pub async fn connect(&self, provider: &str, user: Option<&str>) -> Response {
        let response = self.connect_as(&self.key, provider, user, &[]).await;
        assert_eq!(response.status(), StatusCode::OK, "callback failed");
        response
    }

    /// Requests the sandbox received whose path starts with `prefix`.
    pub async fn sandbox_requests(&self, prefix: &str) -> Vec<Value> {
        let all: Value = self
            .client
            .get(self.sandbox_url("/_sandbox/requests"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        all.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["path"].as_str().is_some_and(|p| p.starts_with(prefix)))
            .cloned()
            .collect()
    }

    /// Returns the requests with this path prefix, waiting (up to 5 s) until there
    /// are at least `count`, for calls the gateway makes after it has responded.
    pub async fn await_sandbox_requests(&self, prefix: &str, count: usize) -> Vec<Value> {
        for _ in 0..100 {
            let requests = self.sandbox_requests(prefix).await;
            if requests.len() >= count {
                return requests;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        self.sandbox_requests(prefix).await
    }

    /// POST to the sandbox control API.
    pub async fn sandbox_control(&self, path: &str, body: Value) -> Value {
        let response = self
            .client
            .post(self.sandbox_url(&format!("/_sandbox/{path}")))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "sandbox control {path} failed"
        );
        response.json().await.unwrap_or(Value::Null)
    }

    /// Messages posted to the sandbox Slack, each with its `channel` id.
    pub async fn slack_messages(&self) -> Vec<Value> {
        let all: Value = self
            .client
            .get(self.sandbox_url("/_sandbox/slack/messages"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        all.as_array().unwrap().clone()
    }

    /// Forgets the requests the sandbox has recorded so far.
    pub async fn clear_sandbox_requests(&self) {
        let response = self
            .client
            .delete(self.sandbox_url("/_sandbox/requests"))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "clearing requests failed");
    }

    /// Returns the `status` of this tenant's connection of `provider` for `user`.
    pub async fn connection_status(&self, provider: &str, user: Option<&str>) -> Value {
        let list: Value = self
            .get("/v1/connections", None)
            .await
            .json()
            .await
            .unwrap();
        let user = user.map_or(Value::Null, |user| json!(user));
        list.as_array()
            .unwrap()
            .iter()
            .find(|c| c["provider"] == provider && c["userId"] == user)
            .map_or(Value::Null, |c| c["status"].clone())
    }

    /// Adds a message to a sandbox mailbox; returns its Gmail id.
    pub async fn add_message(&self, eml: &str) -> String {
        let answer = self
            .sandbox_control("gmail/messages", json!({ "eml": eml }))
            .await;
        answer["id"].as_str().unwrap().to_owned()
    }

    pub fn is_postgres(&self) -> bool {
        self.database_url.starts_with("postgres")
    }

    /// Runs one SQL statement on the gateway's database.
    pub async fn sql(&self, statement: &str) {
        if self.is_postgres() {
            let pool = sqlx::PgPool::connect(&self.database_url).await.unwrap();
            sqlx::query(statement).execute(&pool).await.unwrap();
            pool.close().await;
        } else {
            let pool = sqlx::SqlitePool::connect(&self.database_url).await.unwrap();
            sqlx::query(statement).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }

    /// Everything the database stores, as bytes to search for secrets: the SQLite
    /// file and its write-ahead log, or every row of every table as JSON text.
    pub async fn stored_bytes(&self) -> Vec<u8> {
        if !self.is_postgres() {
            let mut bytes = std::fs::read(&self.db_path).unwrap();
            bytes.extend(std::fs::read(self.db_path.with_extension("db-wal")).unwrap_or_default());
            return bytes;
        }
        let pool = sqlx::PgPool::connect(&self.database_url).await.unwrap();
        let mut bytes = Vec::new();
        for table in [
            "tenants",
            "api_keys",
            "oauth_states",
            "connections",
            "tenant_redirect_origins",
        ] {
            let rows: Vec<(String,)> =
                sqlx::query_as(&format!("SELECT row_to_json(t)::text FROM {table} t"))
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            for (row,) in rows {
                bytes.extend(row.into_bytes());
            }
        }
        pool.close().await;
        bytes
    }
}

/// Creates a schema of its own for one test in the PostgreSQL database of the run,
/// and returns a URL whose connections use it.
async fn fresh_postgres_schema(run_url: &str) -> String {
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let pool = sqlx::PgPool::connect(run_url)
        .await
        .expect("PostgreSQL reachable");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let separator = if run_url.contains('?') { '&' } else { '?' };
    format!("{run_url}{separator}options=-c%20search_path%3D{schema}")
}

/// Returns the status and the `error` object of an error response.
pub async fn error_code(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body["error"].clone())
}

/// Builds a small RFC 5322 message.
pub fn simple_eml(subject: &str, body: &str) -> String {
    format!(
        "From: Bob Example <bob@example.com>\r\nTo: ada@example.com\r\nSubject: {subject}\r\n\
         Date: Thu, 03 Dec 2026 10:00:00 +0000\r\nMessage-ID: <{}@example.com>\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n",
        uuid::Uuid::new_v4()
    )
}
