//! The HTTP API: router, shared state, middleware and handlers.

mod connections;
pub mod error;
mod execute;
pub mod extract;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::LatencyUnit;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::config::Config;
use crate::crypto::TokenCipher;
use crate::oauth::refresh::Refresher;
use crate::providers::google::quota::GmailQuota;
use crate::store::Store;
use error::ApiError;

/// Response header that carries the id of each request.
pub static REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// State shared by every handler.
#[derive(Clone)]
pub struct AppState(Arc<AppInner>);

pub struct AppInner {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub cipher: TokenCipher,
    /// Client for every provider call, with connect and overall timeouts.
    pub http: reqwest::Client,
    pub refresher: Refresher,
    /// Gmail quota pacing per connection, shared by every request of this process.
    pub gmail_quota: GmailQuota,
}

impl std::ops::Deref for AppState {
    type Target = AppInner;

    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl AppState {
    pub fn new(config: Config, store: Arc<dyn Store>) -> anyhow::Result<Self> {
        let cipher = TokenCipher::new(&config.encryption_key, &[]);
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(config.provider_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("patchbay/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(AppState(Arc::new(AppInner {
            store,
            cipher,
            http,
            refresher: Refresher::default(),
            gmail_quota: GmailQuota::new(config.gmail_quota_units_per_second),
            config,
        })))
    }
}

/// Builds the gateway's router with all middleware.
pub fn router(state: AppState) -> Router {
    Router::new()
        .nest("/v1/connections", connections::router())
        .nest("/v1/execute", execute::router())
        .route("/health", get(health))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(CatchPanicLayer::custom(|_panic| {
            tracing::error!("a handler panicked");
            ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()
        }))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(
                    DefaultOnResponse::new()
                        .level(Level::INFO)
                        .latency_unit(LatencyUnit::Micros),
                )
                .on_failure(()),
        )
        .layer(middleware::from_fn(assign_request_id))
}

/// The span of one request: method, path, request id, and the tenant once known.
fn request_span(request: &Request) -> tracing::Span {
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map(|id| id.0.as_str())
        .unwrap_or_default();
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id,
        tenant_id = tracing::field::Empty,
    )
}

/// The id of one request, echoed in `X-Request-Id`.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Gives every request a fresh id and puts it on the response, errors included.
async fn assign_request_id(mut request: Request, next: Next) -> Response {
    let id = format!("req_{}", uuid::Uuid::new_v4().simple());
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert(REQUEST_ID_HEADER.clone(), value);
    }
    response
}

async fn not_found(request: Request) -> ApiError {
    ApiError::NotFound(format!("{} {}", request.method(), request.uri().path()))
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::MethodNotAllowed(request.method().to_string())
}

/// Reports whether the database responds. Needs no API key.
async fn health(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => axum::Json(serde_json::json!({"status": "ok", "database": "ok"})).into_response(),
        Err(error) => {
            tracing::warn!(error = %error, "health check: database unavailable");
            let body = serde_json::json!({"status": "unavailable", "database": "unavailable"});
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
        }
    }
}
