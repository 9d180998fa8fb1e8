//! The gateway's life around its database and its process: a database that is
//! down gives 503 and the gateway recovers by itself; SIGTERM drains requests.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use patchbay::app::Gateway;
use patchbay::config::Config;
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::helpers::{TestApp, error_code};

/// A TCP forwarder to PostgreSQL that can be taken down and brought back on the
/// same port, cutting every connection it carried.
struct Outage {
    addr: SocketAddr,
    target: SocketAddr,
    tasks: Option<JoinSet<()>>,
}

impl Outage {
    async fn new(target: SocketAddr) -> Outage {
        let probe = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        Outage {
            addr,
            target,
            tasks: None,
        }
    }

    async fn up(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        let target = self.target;
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let mut links = JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                links.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        self.tasks = Some(tasks);
    }

    /// Stops listening and cuts every forwarded connection.
    async fn down(&mut self) {
        if let Some(mut tasks) = self.tasks.take() {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
    }
}

#[tokio::test]
async fn database_outage_gives_503_then_recovers() {
    let app = TestApp::spawn().await;
    if !app.is_postgres() {
        eprintln!("skipped: set PATCHBAY_TEST_DATABASE_URL to a PostgreSQL database");
        return;
    }
    let mut outage = Outage::new("127.0.0.1:5432".parse().unwrap()).await;
    let url = app
        .database_url
        .replacen(":5432/", &format!(":{}/", outage.addr.port()), 1);
    assert_ne!(url, app.database_url, "the test database is on port 5432");
    let config = Config {
        database_url: url,
        ..app.config.clone()
    };

    // Down at start-up: the gateway starts anyway and answers 503.
    let gateway = Gateway::start(config)
        .await
        .expect("starts without its database");
    let connections = format!("{}/v1/connections", gateway.base_url());
    let health = format!("{}/health", gateway.base_url());
    let response = app
        .client
        .get(&connections)
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    let (status, error) = error_code(response).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error["code"], "database_unavailable");
    let response = app.client.get(&health).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);

    // Back: served again without a restart.
    outage.up().await;
    let response = app
        .client
        .get(&connections)
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // Gone while running, then back.
    outage.down().await;
    let response = app
        .client
        .get(&connections)
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    outage.up().await;
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..3 {
        let response = app
            .client
            .get(&connections)
            .bearer_auth(&app.key)
            .send()
            .await
            .unwrap();
        status = response.status();
        if status == StatusCode::OK {
            break;
        }
    }
    assert_eq!(
        status,
        StatusCode::OK,
        "recovered after the database came back"
    );
    gateway.shutdown().await;
}

/// The environment that configures `patchbay serve` like the test gateway.
fn serve_env(config: &Config, listen: SocketAddr) -> Vec<(String, String)> {
    let mut env = vec![
        ("PATCHBAY_LISTEN".to_owned(), listen.to_string()),
        ("PATCHBAY_PUBLIC_URL".to_owned(), config.public_url.clone()),
        (
            "PATCHBAY_DATABASE_URL".to_owned(),
            config.database_url.clone(),
        ),
        (
            "PATCHBAY_ENCRYPTION_KEY".to_owned(),
            config.encryption_key.to_base64().expose_secret().to_owned(),
        ),
        (
            "PATCHBAY_GOOGLE_AUTHORIZE_URL".to_owned(),
            config.google.authorize_url.clone(),
        ),
        (
            "PATCHBAY_GOOGLE_TOKEN_URL".to_owned(),
            config.google.token_url.clone(),
        ),
        (
            "PATCHBAY_GOOGLE_REVOKE_URL".to_owned(),
            config.google.revoke_url.clone(),
        ),
        (
            "PATCHBAY_GOOGLE_API_URL".to_owned(),
            config.google.api_url.clone(),
        ),
        (
            "PATCHBAY_SLACK_AUTHORIZE_URL".to_owned(),
            config.slack.authorize_url.clone(),
        ),
        (
            "PATCHBAY_SLACK_API_URL".to_owned(),
            config.slack.api_url.clone(),
        ),
    ];
    for (prefix, provider) in [("GOOGLE", &config.google), ("SLACK", &config.slack)] {
        if let Some(client) = &provider.client {
            env.push((
                format!("PATCHBAY_{prefix}_CLIENT_ID"),
                client.client_id.clone(),
            ));
            env.push((
                format!("PATCHBAY_{prefix}_CLIENT_SECRET"),
                client.client_secret.expose_secret().to_owned(),
            ));
        }
    }
    env
}

#[tokio::test]
async fn sigterm_finishes_requests_in_flight() {
    let app = TestApp::spawn().await;
    app.connect("slack", Some("alice")).await;
    let probe = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listen = probe.local_addr().unwrap();
    drop(probe);
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_patchbay"))
        .arg("serve")
        .envs(serve_env(&app.config, listen))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("patchbay serve starts");
    let base = format!("http://{listen}");
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(response) = app.client.get(format!("{base}/health")).send().await {
            ready = response.status() == StatusCode::OK;
            if ready {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "patchbay serve answered /health");

    // The next postMessage is held for 1.5 s at the sandbox, so it is in flight
    // when the signal arrives.
    let fault = json!({"path": "/slack/api/chat.postMessage", "delayMs": 1500, "times": 1});
    app.sandbox_control("faults", fault).await;
    let request = app
        .client
        .post(format!("{base}/v1/execute/slack/message"))
        .bearer_auth(&app.key)
        .json(&json!({"channel": "#general", "text": "in flight", "userId": "alice"}))
        .send();
    let in_flight = tokio::spawn(request);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = child.id().expect("child pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());

    let response = in_flight
        .await
        .unwrap()
        .expect("request in flight is answered");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["ok"], true);
    let exit = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
    let status = exit.expect("exits after draining").unwrap();
    assert!(status.success(), "exit status {status:?}");
}
