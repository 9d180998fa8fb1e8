//! Fake Slack Web API (`/slack/api/{method}`): token checks, `chat.postMessage`,
//! `search.messages`, `conversations.list`, `conversations.join`, `auth.test` and
//! `auth.revoke`, plus the workspace state they share with `slack_oauth`.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::params;
use super::slack_oauth;
use super::state::{SharedState, random_digits};

/// Slack's limit on `text`, in characters.
const MAX_TEXT_CHARS: usize = 40_000;
/// Slack's limit on the number of blocks in one message.
const MAX_BLOCKS: usize = 50;
/// Block types that `chat.postMessage` accepts in a message (Slack's Block Kit reference
/// lists `input` and `file` as usable in messages as well).
const MESSAGE_BLOCK_TYPES: [&str; 10] = [
    "section",
    "divider",
    "image",
    "actions",
    "context",
    "input",
    "header",
    "file",
    "rich_text",
    "video",
];

/// App id in every sandbox token response.
pub const APP_ID: &str = "A0SANDBOX01";

/// A fixed channel of every sandbox workspace.
#[derive(Debug, Clone, Copy)]
pub struct Channel {
    pub id: &'static str,
    pub name: &'static str,
    /// Whether the app's bot user is a member when the workspace is created.
    pub bot_is_member: bool,
    pub purpose: &'static str,
}

pub const CHANNELS: &[Channel] = &[
    Channel {
        id: "C0GENERAL",
        name: "general",
        bot_is_member: true,
        purpose: "Company-wide announcements and work-based matters",
    },
    Channel {
        id: "C0RANDOM",
        name: "random",
        bot_is_member: false,
        purpose: "Non-work banter and water cooler conversation",
    },
];

/// A sandbox workspace.
#[derive(Debug, Clone)]
pub struct Team {
    pub id: String,
    pub name: String,
    pub bot_user_id: String,
    pub bot_id: String,
    /// The user who installs the app and owns the user token.
    pub user_id: String,
    pub user_name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Bot,
    User,
}

impl TokenKind {
    pub fn name(self) -> &'static str {
        match self {
            TokenKind::Bot => "bot",
            TokenKind::User => "user",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Token {
    pub team_id: String,
    pub kind: TokenKind,
    pub scopes: Vec<String>,
    /// Set for rotating tokens only.
    pub expires_at: Option<Instant>,
    pub revoked: bool,
    /// Set by the control API to expire a rotating token early.
    pub expired: bool,
}

/// A refresh token of token rotation. Each one works once.
#[derive(Debug, Clone)]
pub struct RefreshGrant {
    pub team_id: String,
    pub kind: TokenKind,
    pub scopes: Vec<String>,
    pub used: bool,
}

/// An authorization code waiting for `oauth.v2.access`.
#[derive(Debug, Clone)]
pub struct Code {
    pub client_id: String,
    pub redirect_uri: Option<String>,
    pub team_id: String,
    pub bot_scopes: Vec<String>,
    pub user_scopes: Vec<String>,
    pub created: Instant,
    pub used: bool,
}

/// A message in a channel.
#[derive(Debug, Clone)]
pub struct Message {
    pub team_id: String,
    pub channel_id: String,
    pub ts: String,
    pub text: String,
    pub blocks: Option<Value>,
    pub thread_ts: Option<String>,
    pub user: String,
    pub username: String,
    pub bot_id: Option<String>,
}

/// Workspaces, tokens and messages.
#[derive(Debug)]
pub struct SlackState {
    pub teams: Vec<Team>,
    pub codes: HashMap<String, Code>,
    pub tokens: HashMap<String, Token>,
    pub refresh_tokens: HashMap<String, RefreshGrant>,
    pub messages: Vec<Message>,
    /// (team id, channel id) pairs the bot has joined beyond the initial ones.
    pub bot_joined: HashSet<(String, String)>,
    last_ts_micros: i64,
}

impl SlackState {
    pub fn new(default_team: &str) -> SlackState {
        let mut state = SlackState {
            teams: Vec::new(),
            codes: HashMap::new(),
            tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            messages: Vec::new(),
            bot_joined: HashSet::new(),
            last_ts_micros: 0,
        };
        state.team_by_name(default_team);
        state
    }

    /// Returns the workspace with this name, creating it (with a few seeded messages in
    /// #general) if needed.
    pub fn team_by_name(&mut self, name: &str) -> Team {
        if let Some(team) = self.teams.iter().find(|team| team.name == name) {
            return team.clone();
        }
        let number = random_digits(10);
        let team = Team {
            id: format!("T{number}"),
            name: name.to_string(),
            bot_user_id: format!("U0BOT{}", random_digits(6)),
            bot_id: format!("B{}", random_digits(10)),
            user_id: format!("U{}", random_digits(10)),
            user_name: "ada".to_string(),
        };
        self.teams.push(team.clone());
        self.seed_messages(&team);
        team
    }

    pub fn team(&self, id: &str) -> Option<&Team> {
        self.teams.iter().find(|team| team.id == id)
    }

    fn seed_messages(&mut self, team: &Team) {
        let seeds = [
            "Welcome to the sandbox workspace!",
            "The quarterly report is ready for review.",
            "Standup moves to 10:30 tomorrow.",
        ];
        for text in seeds {
            let ts = self.next_ts();
            self.messages.push(Message {
                team_id: team.id.clone(),
                channel_id: "C0GENERAL".to_string(),
                ts,
                text: text.to_string(),
                blocks: None,
                thread_ts: None,
                user: team.user_id.clone(),
                username: team.user_name.clone(),
                bot_id: None,
            });
        }
    }

    /// Returns a message timestamp (`seconds.microseconds`) later than every earlier one.
    pub fn next_ts(&mut self) -> String {
        let now = chrono::Utc::now().timestamp_micros();
        self.last_ts_micros = now.max(self.last_ts_micros + 1);
        format_ts(self.last_ts_micros)
    }

    fn bot_is_member(&self, team_id: &str, channel: &Channel) -> bool {
        channel.bot_is_member
            || self
                .bot_joined
                .contains(&(team_id.to_string(), channel.id.to_string()))
    }
}

fn format_ts(micros: i64) -> String {
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// A Slack error: HTTP 200 with `{"ok": false, "error": …}` plus any extra fields.
#[derive(Debug)]
pub struct SlackError {
    pub error: String,
    pub extra: Map<String, Value>,
}

impl SlackError {
    pub fn new(error: &str) -> SlackError {
        SlackError {
            error: error.to_string(),
            extra: Map::new(),
        }
    }
}

impl IntoResponse for SlackError {
    fn into_response(self) -> Response {
        let mut body = self.extra;
        body.insert("ok".to_string(), Value::Bool(false));
        body.insert("error".to_string(), Value::String(self.error));
        (StatusCode::OK, Json(Value::Object(body))).into_response()
    }
}

/// Arguments of a Web API call, from the JSON body, the form body or the query string.
pub struct Arguments {
    values: Map<String, Value>,
    /// Set when a JSON body came without `charset=utf-8`, so Slack adds a `missing_charset` warning.
    missing_charset: bool,
    /// A `token` argument; Slack ignores it in JSON bodies.
    form_token: Option<String>,
}

impl Arguments {
    fn parse(
        headers: &HeaderMap,
        query: Option<&str>,
        body: &[u8],
    ) -> Result<Arguments, SlackError> {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let mut values = Map::new();
        let mut form_token = None;
        let mut missing_charset = false;
        if content_type.starts_with("application/json") {
            if !body.is_empty() {
                let parsed: Value =
                    serde_json::from_slice(body).map_err(|_| SlackError::new("invalid_json"))?;
                values = parsed
                    .as_object()
                    .cloned()
                    .ok_or_else(|| SlackError::new("invalid_json"))?;
            }
            missing_charset = !content_type.contains("charset=utf-8");
        } else {
            for (key, value) in params::pairs(body) {
                values.entry(key).or_insert(Value::String(value));
            }
            form_token = values
                .get("token")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        for (key, value) in params::pairs(query.unwrap_or_default().as_bytes()) {
            if key == "token" {
                form_token.get_or_insert(value);
            } else {
                values.entry(key).or_insert(Value::String(value));
            }
        }
        Ok(Arguments {
            values,
            missing_charset,
            form_token,
        })
    }

    /// Returns an argument as text; JSON numbers and booleans are written out.
    pub fn text(&self, name: &str) -> Option<String> {
        match self.values.get(name)? {
            Value::String(text) => Some(text.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    fn number(&self, name: &str) -> Option<i64> {
        self.text(name).and_then(|value| value.trim().parse().ok())
    }

    fn flag(&self, name: &str) -> bool {
        matches!(self.text(name).as_deref(), Some("true" | "1"))
    }
}

/// The caller of a Web API method.
struct Caller {
    token: String,
    grant: Token,
    team: Team,
}

impl Caller {
    fn require_scope(&self, needed: &[&str]) -> Result<(), SlackError> {
        if self
            .grant
            .scopes
            .iter()
            .any(|scope| needed.contains(&scope.as_str()))
        {
            return Ok(());
        }
        let mut error = SlackError::new("missing_scope");
        error.extra.insert(
            "needed".to_string(),
            json!(needed.first().copied().unwrap_or_default()),
        );
        error
            .extra
            .insert("provided".to_string(), json!(self.grant.scopes.join(",")));
        Err(error)
    }
}

fn authenticate(
    state: &SharedState,
    headers: &HeaderMap,
    args: &Arguments,
) -> Result<Caller, SlackError> {
    let token = params::bearer_token(headers)
        .or_else(|| args.form_token.clone())
        .ok_or_else(|| SlackError::new("not_authed"))?;
    let inner = state.lock();
    let grant = inner
        .slack
        .tokens
        .get(&token)
        .cloned()
        .ok_or_else(|| SlackError::new("invalid_auth"))?;
    if grant.revoked {
        return Err(SlackError::new("token_revoked"));
    }
    let past_expiry = grant.expires_at.is_some_and(|at| at <= Instant::now());
    if grant.expired || past_expiry {
        return Err(SlackError::new("token_expired"));
    }
    let team = inner
        .slack
        .team(&grant.team_id)
        .cloned()
        .ok_or_else(|| SlackError::new("account_inactive"))?;
    Ok(Caller { token, grant, team })
}

/// `POST|GET /slack/api/{method}`.
pub async fn web_api(
    State(state): State<SharedState>,
    Path(method): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let args = match Arguments::parse(&headers, query.as_deref(), &body) {
        Ok(args) => args,
        Err(error) => return error.into_response(),
    };
    if method == "oauth.v2.access" {
        return slack_oauth::access(&state, &headers, &args).into_response();
    }
    let result = match method.as_str() {
        "chat.postMessage" => post_message(&state, &headers, &args),
        "search.messages" => search_messages(&state, &headers, &args),
        "conversations.list" => list_conversations(&state, &headers, &args),
        "conversations.join" => join_conversation(&state, &headers, &args),
        "auth.test" => auth_test(&state, &headers, &args),
        "auth.revoke" => auth_revoke(&state, &headers, &args),
        _ => {
            let body = json!({"ok": false, "error": "unknown_method", "req_method": method});
            return (StatusCode::NOT_FOUND, Json(body)).into_response();
        }
    };
    match result {
        Ok(mut body) => {
            if args.missing_charset {
                body["warning"] = json!("missing_charset");
                body["response_metadata"] = json!({"warnings": ["missing_charset"]});
            }
            (StatusCode::OK, Json(body)).into_response()
        }
        Err(error) => error.into_response(),
    }
}

fn find_channel(reference: &str) -> Option<&'static Channel> {
    let name = reference.trim().trim_start_matches('#');
    CHANNELS
        .iter()
        .find(|channel| channel.id == reference.trim() || channel.name == name)
}

/// Reads `blocks`, which is a JSON array, or in form bodies a string holding one.
fn parse_blocks(args: &Arguments) -> Result<Option<Value>, SlackError> {
    let blocks = match args.values.get("blocks") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(text)) if text.trim().is_empty() => return Ok(None),
        Some(Value::String(text)) => {
            serde_json::from_str(text).map_err(|_| SlackError::new("invalid_blocks_format"))?
        }
        Some(other) => other.clone(),
    };
    let list = blocks
        .as_array()
        .ok_or_else(|| SlackError::new("invalid_blocks_format"))?;
    let well_formed = list.iter().all(|block| {
        block
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|kind| MESSAGE_BLOCK_TYPES.contains(&kind))
    });
    if list.len() > MAX_BLOCKS || !well_formed {
        return Err(SlackError::new("invalid_blocks"));
    }
    Ok((!list.is_empty()).then_some(blocks))
}

fn post_message(
    state: &SharedState,
    headers: &HeaderMap,
    args: &Arguments,
) -> Result<Value, SlackError> {
    let caller = authenticate(state, headers, args)?;
    caller.require_scope(&["chat:write", "chat:write:bot", "chat:write:user"])?;
    let channel = args
        .text("channel")
        .as_deref()
        .and_then(find_channel)
        .ok_or_else(|| SlackError::new("channel_not_found"))?;
    let blocks = parse_blocks(args)?;
    let text = args.text("text").unwrap_or_default();
    if text.is_empty() && blocks.is_none() && args.text("attachments").is_none() {
        return Err(SlackError::new("no_text"));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(SlackError::new("msg_too_long"));
    }
    let thread_ts = args.text("thread_ts").filter(|ts| !ts.is_empty());

    let mut inner = state.lock();
    let slack = &mut inner.slack;
    let team = &caller.team;
    if caller.grant.kind == TokenKind::Bot && !slack.bot_is_member(&team.id, channel) {
        return Err(SlackError::new("not_in_channel"));
    }
    if let Some(parent) = &thread_ts {
        let exists = slack
            .messages
            .iter()
            .any(|m| m.team_id == team.id && m.channel_id == channel.id && &m.ts == parent);
        // NOTE: Slack documents no error for an unknown thread_ts; the sandbox rejects it
        // so that tests notice a wrong thread.
        if !exists {
            return Err(SlackError::new("thread_not_found"));
        }
    }
    let (user, username, bot_id) = match caller.grant.kind {
        TokenKind::Bot => (
            team.bot_user_id.clone(),
            "patchbay".to_string(),
            Some(team.bot_id.clone()),
        ),
        TokenKind::User => (team.user_id.clone(), team.user_name.clone(), None),
    };
    let ts = slack.next_ts();
    let message = Message {
        team_id: team.id.clone(),
        channel_id: channel.id.to_string(),
        ts: ts.clone(),
        text,
        blocks,
        thread_ts,
        user,
        username,
        bot_id,
    };
    let rendered = message_json(&message);
    slack.messages.push(message);
    Ok(json!({"ok": true, "channel": channel.id, "ts": ts, "message": rendered}))
}

/// Renders a stored message as the `message` object of `chat.postMessage`.
pub fn message_json(message: &Message) -> Value {
    let mut out = json!({
        "type": "message",
        "text": message.text,
        "user": message.user,
        "ts": message.ts,
        "team": message.team_id,
    });
    if let Some(bot_id) = &message.bot_id {
        out["bot_id"] = json!(bot_id);
        out["app_id"] = json!(APP_ID);
    }
    if let Some(blocks) = &message.blocks {
        out["blocks"] = blocks.clone();
    }
    if let Some(thread_ts) = &message.thread_ts {
        out["thread_ts"] = json!(thread_ts);
    }
    out
}

/// The filters of a `search.messages` query: `in:#channel`, `from:@name` and free words.
struct SearchFilter {
    channel: Option<String>,
    from: Option<String>,
    words: Vec<String>,
}

impl SearchFilter {
    fn parse(query: &str) -> SearchFilter {
        let mut filter = SearchFilter {
            channel: None,
            from: None,
            words: Vec::new(),
        };
        for token in query.split_whitespace() {
            let lower = token.to_lowercase();
            if let Some(channel) = lower.strip_prefix("in:") {
                let channel = channel.trim_start_matches("<#").trim_end_matches('>');
                let channel = channel.split('|').next().unwrap_or_default();
                filter.channel = Some(channel.trim_start_matches('#').to_string());
            } else if let Some(user) = lower.strip_prefix("from:") {
                filter.from = Some(user.trim_start_matches('@').to_string());
            } else {
                filter.words.push(lower.trim_matches('"').to_string());
            }
        }
        filter
    }

    fn matches(&self, message: &Message) -> bool {
        let channel = CHANNELS.iter().find(|c| c.id == message.channel_id);
        let channel_ok = self.channel.as_ref().is_none_or(|wanted| {
            channel.is_some_and(|c| c.name == wanted.as_str() || c.id.eq_ignore_ascii_case(wanted))
        });
        let from_ok = self.from.as_ref().is_none_or(|wanted| {
            message.username.to_lowercase() == *wanted || message.user.eq_ignore_ascii_case(wanted)
        });
        let text = message.text.to_lowercase();
        channel_ok && from_ok && self.words.iter().all(|word| text.contains(word.as_str()))
    }
}

fn search_messages(
    state: &SharedState,
    headers: &HeaderMap,
    args: &Arguments,
) -> Result<Value, SlackError> {
    let caller = authenticate(state, headers, args)?;
    if caller.grant.kind != TokenKind::User {
        return Err(SlackError::new("not_allowed_token_type"));
    }
    caller.require_scope(&["search:read"])?;
    let query = args
        .text("query")
        .filter(|q| !q.trim().is_empty())
        .ok_or_else(|| SlackError::new("no_query"))?;
    let count = args.number("count").unwrap_or(20).clamp(1, 100);
    let page = args.number("page").unwrap_or(1).clamp(1, 100);
    let ascending = args.text("sort_dir").as_deref() == Some("asc");

    let filter = SearchFilter::parse(&query);
    let inner = state.lock();
    let mut found: Vec<&Message> = inner
        .slack
        .messages
        .iter()
        .filter(|message| message.team_id == caller.team.id && filter.matches(message))
        .collect();
    // Both `score` and `timestamp` sort by time here, because the sandbox has no relevance.
    found.sort_by_key(|message| ts_key(&message.ts));
    if !ascending {
        found.reverse();
    }
    let total = i64::try_from(found.len()).unwrap_or(i64::MAX);
    let skip = usize::try_from((page - 1) * count).unwrap_or(usize::MAX);
    let take = usize::try_from(count).unwrap_or(20);
    let matches: Vec<Value> = found
        .iter()
        .skip(skip)
        .take(take)
        .map(|message| search_match(state, message))
        .collect();
    let pages = if total == 0 {
        0
    } else {
        (total + count - 1) / count
    };
    let first = if total == 0 {
        0
    } else {
        (page - 1) * count + 1
    };
    let last = (page * count).min(total);
    Ok(json!({
        "ok": true,
        "query": query,
        "messages": {
            "total": total,
            "matches": matches,
            "paging": {"count": count, "total": total, "page": page, "pages": pages},
            "pagination": {
                "total_count": total,
                "page": page,
                "per_page": count,
                "page_count": pages,
                "first": first,
                "last": last,
            },
        },
    }))
}

/// Orders `seconds.microseconds` timestamps numerically.
fn ts_key(ts: &str) -> (i64, i64) {
    let (seconds, micros) = ts.split_once('.').unwrap_or((ts, "0"));
    (seconds.parse().unwrap_or(0), micros.parse().unwrap_or(0))
}

fn search_match(state: &SharedState, message: &Message) -> Value {
    let channel_name = CHANNELS
        .iter()
        .find(|c| c.id == message.channel_id)
        .map(|c| c.name)
        .unwrap_or_default();
    json!({
        "iid": uuid::Uuid::new_v4().to_string(),
        "team": message.team_id,
        "type": "message",
        "user": message.user,
        "username": message.username,
        "ts": message.ts,
        "text": message.text,
        "permalink": permalink(state, message),
        "channel": {
            "id": message.channel_id,
            "name": channel_name,
            "is_channel": true,
            "is_group": false,
            "is_im": false,
            "is_mpim": false,
            "is_private": false,
            "is_shared": false,
            "is_ext_shared": false,
            "is_org_shared": false,
        },
    })
}

/// Builds a permalink in Slack's form (`…/archives/C…/p<ts without dot>`) on the sandbox's own host.
pub fn permalink(state: &SharedState, message: &Message) -> String {
    format!(
        "{}/slack/archives/{}/p{}",
        state.base_url,
        message.channel_id,
        message.ts.replace('.', "")
    )
}

fn list_conversations(
    state: &SharedState,
    headers: &HeaderMap,
    args: &Arguments,
) -> Result<Value, SlackError> {
    let caller = authenticate(state, headers, args)?;
    caller.require_scope(&["channels:read", "groups:read", "im:read", "mpim:read"])?;
    let limit = args.number("limit").unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(SlackError::new("invalid_limit"));
    }
    let offset = match args.text("cursor").filter(|c| !c.is_empty()) {
        Some(cursor) => decode_cursor(&cursor).ok_or_else(|| SlackError::new("invalid_cursor"))?,
        None => 0,
    };
    let types = args
        .text("types")
        .unwrap_or_else(|| "public_channel".to_string());
    let public_wanted = types.split(',').any(|t| t.trim() == "public_channel");

    let inner = state.lock();
    let listed: Vec<&Channel> = if public_wanted {
        CHANNELS.iter().collect()
    } else {
        Vec::new()
    };
    let take = usize::try_from(limit).unwrap_or(100);
    let channels: Vec<Value> = listed
        .iter()
        .skip(offset)
        .take(take)
        .map(|channel| {
            let is_member = caller.grant.kind == TokenKind::User
                || inner.slack.bot_is_member(&caller.team.id, channel);
            channel_json(channel, &caller.team, is_member)
        })
        .collect();
    let next_cursor = if offset + take < listed.len() {
        encode_cursor(offset + take)
    } else {
        String::new()
    };
    Ok(json!({"ok": true, "channels": channels, "response_metadata": {"next_cursor": next_cursor}}))
}

fn encode_cursor(offset: usize) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("offset:{offset}"))
}

fn decode_cursor(cursor: &str) -> Option<usize> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(cursor)
        .ok()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_prefix("offset:")?
        .parse()
        .ok()
}

fn channel_json(channel: &Channel, team: &Team, is_member: bool) -> Value {
    json!({
        "id": channel.id,
        "name": channel.name,
        "name_normalized": channel.name,
        "is_channel": true,
        "is_group": false,
        "is_im": false,
        "is_mpim": false,
        "is_private": false,
        "is_archived": false,
        "is_general": channel.name == "general",
        "is_shared": false,
        "is_ext_shared": false,
        "is_org_shared": false,
        "is_member": is_member,
        "created": 1_700_000_000,
        "creator": team.user_id,
        "context_team_id": team.id,
        "num_members": 2,
        "topic": {"value": "", "creator": "", "last_set": 0},
        "purpose": {"value": channel.purpose, "creator": team.user_id, "last_set": 1_700_000_000},
    })
}

fn join_conversation(
    state: &SharedState,
    headers: &HeaderMap,
    args: &Arguments,
) -> Result<Value, SlackError> {
    let caller = authenticate(state, headers, args)?;
    caller.require_scope(&["channels:join", "channels:write"])?;
    let channel = args
        .text("channel")
        .as_deref()
        .and_then(find_channel)
        .ok_or_else(|| SlackError::new("channel_not_found"))?;
    let mut inner = state.lock();
    if caller.grant.kind == TokenKind::Bot {
        inner
            .slack
            .bot_joined
            .insert((caller.team.id.clone(), channel.id.to_string()));
    }
    Ok(json!({"ok": true, "channel": channel_json(channel, &caller.team, true)}))
}

fn auth_test(
    state: &SharedState,
    headers: &HeaderMap,
    args: &Arguments,
) -> Result<Value, SlackError> {
    let caller = authenticate(state, headers, args)?;
    let team = &caller.team;
    let mut body = json!({
        "ok": true,
        "url": format!("{}/slack/", state.base_url),
        "team": team.name,
        "team_id": team.id,
        "is_enterprise_install": false,
    });
    match caller.grant.kind {
        TokenKind::Bot => {
            body["user"] = json!("patchbay");
            body["user_id"] = json!(team.bot_user_id);
            body["bot_id"] = json!(team.bot_id);
        }
        TokenKind::User => {
            body["user"] = json!(team.user_name);
            body["user_id"] = json!(team.user_id);
        }
    }
    Ok(body)
}

fn auth_revoke(
    state: &SharedState,
    headers: &HeaderMap,
    args: &Arguments,
) -> Result<Value, SlackError> {
    let caller = authenticate(state, headers, args)?;
    if args.flag("test") {
        return Ok(json!({"ok": true, "revoked": false}));
    }
    let mut inner = state.lock();
    if let Some(token) = inner.slack.tokens.get_mut(&caller.token) {
        token.revoked = true;
    }
    Ok(json!({"ok": true, "revoked": true}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_arguments(blocks: Value) -> Arguments {
        let mut values = Map::new();
        values.insert("blocks".to_string(), blocks);
        Arguments {
            values,
            missing_charset: false,
            form_token: None,
        }
    }

    #[test]
    fn blocks_need_known_type() {
        let rejected = [
            json!([{"type": "bogus"}]),
            json!([{"text": {"type": "plain_text", "text": "no type"}}]),
            json!([{"type": 7}]),
            json!([{"type": "divider"}, {"type": "Section"}]),
            json!(["divider"]),
        ];
        for blocks in rejected {
            let error = parse_blocks(&block_arguments(blocks.clone())).err();
            assert_eq!(
                error.map(|error| error.error),
                Some("invalid_blocks".to_string()),
                "blocks {blocks}"
            );
        }
        for kind in MESSAGE_BLOCK_TYPES {
            let blocks = json!([{ "type": kind }]);
            let parsed = parse_blocks(&block_arguments(blocks.clone()));
            assert!(matches!(parsed, Ok(Some(_))), "blocks {blocks}");
        }
    }

    #[test]
    fn channel_lookup_by_id_and_name() {
        assert_eq!(find_channel("C0GENERAL").map(|c| c.name), Some("general"));
        assert_eq!(find_channel("#random").map(|c| c.id), Some("C0RANDOM"));
        assert_eq!(find_channel("random").map(|c| c.id), Some("C0RANDOM"));
        assert!(find_channel("#nope").is_none());
    }

    #[test]
    fn timestamps_increase() {
        let mut state = SlackState::new("Team");
        let first = state.next_ts();
        let second = state.next_ts();
        assert!(ts_key(&second) > ts_key(&first));
        assert_eq!(
            first.split_once('.').map(|(_, micros)| micros.len()),
            Some(6)
        );
    }

    #[test]
    fn search_filter_reads_operators() {
        let filter = SearchFilter::parse("in:#general from:@ada Report");
        assert_eq!(filter.channel.as_deref(), Some("general"));
        assert_eq!(filter.from.as_deref(), Some("ada"));
        assert_eq!(filter.words, vec!["report"]);
    }

    #[test]
    fn cursor_round_trip() {
        assert_eq!(decode_cursor(&encode_cursor(7)), Some(7));
        assert_eq!(decode_cursor("garbage"), None);
    }
}
