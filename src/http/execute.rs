//! `POST /v1/execute/…`: parse and check the body, pick the connection by the
//! user-id rules, and run the action.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ApiError;
use super::extract::{HeaderUserId, JsonObject, Tenant, parse_body, take_execute_user_id};
use crate::Provider;
use crate::execute::{Connection, gmail, slack, sync};

/// Body limit of `gmail/send`, whose attachments travel base64-encoded in the JSON.
pub const SEND_BODY_LIMIT: usize = 40 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/slack/message", post(slack_message))
        .route("/slack/search", post(slack_search))
        .route("/gmail/read", post(gmail_read))
        .route("/gmail/send", post(gmail_send))
        .route("/gmail/sync", post(gmail_sync))
}

/// The checked input of an execute request and the connection it runs on.
struct Prepared<T> {
    input: T,
    connection: Connection,
}

/// Execute inputs check their fields before any connection is looked up, so that
/// a bad request is a 400 whether or not the connection exists.
trait CheckInput: DeserializeOwned {
    fn check(&self) -> Result<(), ApiError>;
}

impl CheckInput for slack::MessageInput {
    fn check(&self) -> Result<(), ApiError> {
        self.validate()
    }
}

impl CheckInput for slack::SearchInput {
    fn check(&self) -> Result<(), ApiError> {
        self.validate().map(drop)
    }
}

impl CheckInput for gmail::ReadInput {
    fn check(&self) -> Result<(), ApiError> {
        self.check_limits().map(drop)
    }
}

impl CheckInput for gmail::SendInput {
    fn check(&self) -> Result<(), ApiError> {
        self.check_fields().map(drop)
    }
}

impl CheckInput for sync::SyncInput {
    fn check(&self) -> Result<(), ApiError> {
        sync::SyncInput::check(self)
    }
}

async fn prepare<T: CheckInput>(
    state: &AppState,
    tenant: &Tenant,
    provider: Provider,
    header: HeaderUserId,
    mut body: serde_json::Map<String, serde_json::Value>,
) -> Result<Prepared<T>, ApiError> {
    let user_id = take_execute_user_id(&mut body, header)?;
    let input = parse_body::<T>(body)?;
    input.check()?;
    let connection =
        Connection::resolve(state, &tenant.tenant_id, provider, user_id.as_deref()).await?;
    Ok(Prepared { input, connection })
}

async fn slack_message(
    State(state): State<AppState>,
    tenant: Tenant,
    header: HeaderUserId,
    JsonObject(body): JsonObject,
) -> Result<Json<slack::MessageOutput>, ApiError> {
    let Prepared { input, connection } =
        prepare::<slack::MessageInput>(&state, &tenant, Provider::Slack, header, body).await?;
    Ok(Json(
        slack::post_message(&state, &connection, &input).await?,
    ))
}

async fn slack_search(
    State(state): State<AppState>,
    tenant: Tenant,
    header: HeaderUserId,
    JsonObject(body): JsonObject,
) -> Result<Json<slack::SearchOutput>, ApiError> {
    let Prepared { input, connection } =
        prepare::<slack::SearchInput>(&state, &tenant, Provider::Slack, header, body).await?;
    Ok(Json(slack::search(&state, &connection, &input).await?))
}

async fn gmail_read(
    State(state): State<AppState>,
    tenant: Tenant,
    header: HeaderUserId,
    JsonObject(body): JsonObject,
) -> Result<Json<gmail::MessagesOutput>, ApiError> {
    let Prepared { input, connection } =
        prepare::<gmail::ReadInput>(&state, &tenant, Provider::Google, header, body).await?;
    Ok(Json(gmail::read(&state, &connection, &input).await?))
}

async fn gmail_send(
    State(state): State<AppState>,
    tenant: Tenant,
    header: HeaderUserId,
    JsonObject(body): JsonObject<SEND_BODY_LIMIT>,
) -> Result<Json<gmail::SendOutput>, ApiError> {
    let Prepared { input, connection } =
        prepare::<gmail::SendInput>(&state, &tenant, Provider::Google, header, body).await?;
    Ok(Json(gmail::send(&state, &connection, &input).await?))
}

async fn gmail_sync(
    State(state): State<AppState>,
    tenant: Tenant,
    header: HeaderUserId,
    JsonObject(body): JsonObject,
) -> Result<Json<sync::SyncOutput>, ApiError> {
    let Prepared { input, connection } =
        prepare::<sync::SyncInput>(&state, &tenant, Provider::Google, header, body).await?;
    Ok(Json(sync::sync(&state, &connection, &input).await?))
}
