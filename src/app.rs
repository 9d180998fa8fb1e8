//! Starting and stopping the gateway: the store, the router and the HTTP server.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::http::{AppState, router};
use crate::store;

/// How long requests in flight may run on after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// A running gateway.
pub struct Gateway {
    addr: SocketAddr,
    state: AppState,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Gateway {
    /// Opens the database, binds `config.listen` (port 0 picks a free port) and serves.
    pub async fn start(mut config: Config) -> anyhow::Result<Gateway> {
        let store = store::connect(&config.database_url, config.database_pool_size).await?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|error| anyhow::anyhow!("could not listen on {}: {error}", config.listen))?;
        let addr = listener.local_addr()?;
        // The default public URL follows the listen address, whose port is known
        // only now when it was 0.
        if config.public_url == format!("http://{}", config.listen) {
            config.public_url = format!("http://{addr}");
        }
        let state = AppState::new(config, store)?;
        let app = router(state.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        tracing::info!(
            %addr,
            public_url = %state.config.public_url,
            database = %redact_database_url(&state.config.database_url),
            google = state.config.google.client.is_some(),
            slack = state.config.slack.client.is_some(),
            "gateway listening"
        );
        Ok(Gateway {
            addr,
            state,
            stop: Some(stop),
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, for clients on this machine.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stops accepting connections and waits (at most [`SHUTDOWN_GRACE`]) for
    /// requests in flight.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut self.task).await {
            Ok(_) => tracing::info!("gateway stopped"),
            Err(_) => {
                tracing::warn!("requests still running after the grace period; stopping anyway");
                self.task.abort();
            }
        }
    }

    /// Serves until SIGTERM or Ctrl-C, then shuts down gracefully.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        shutdown_signal().await;
        tracing::info!("shutdown signal received");
        self.shutdown().await;
        Ok(())
    }
}

/// The database URL without its password, for logs.
pub fn redact_database_url(database_url: &str) -> String {
    match url::Url::parse(database_url) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("redacted"));
            url.into()
        }
        Ok(url) => url.into(),
        Err(_) => "(unparsable URL)".to_owned(),
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_password_is_redacted() {
        let redacted = redact_database_url("postgres://pb:hunter2@db.internal:5432/pb");
        assert!(!redacted.contains("hunter2"));
        assert!(redacted.contains("db.internal"));
        assert_eq!(
            redact_database_url("sqlite://patchbay.db"),
            "sqlite://patchbay.db"
        );
    }
}
