//! A fake Telegram Bot API server for the end-to-end tests, on 127.0.0.1 only.
//!
//! It implements the methods leakwatch uses — `getMe`, `getUpdates` (long poll with timeout and
//! offsets), `sendMessage`, `answerCallbackQuery`, `editMessageReplyMarkup`, `getFile`, file
//! downloads (`/file/bot<token>/<path>`), `getChat`, `getChatMember`, `getChatMemberCount`,
//! `leaveChat` — with answers shaped like Telegram's. A test pushes updates into it and reads
//! back every call the bot made. It stops when dropped.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::{Value, json};

#[derive(Default)]
struct Inner {
    next_update_id: i64,
    /// Pushed updates not yet confirmed by an offset.
    updates: VecDeque<Value>,
    /// Every call but getUpdates: (method, params).
    calls: Vec<(String, Value)>,
    /// The offset of every getUpdates call, in order.
    offsets: Vec<i64>,
    /// Fail this many coming getUpdates calls with a 502.
    fail_get_updates: u32,
    /// getChat answers, by "<id>" and by "@username" (lower-case).
    chats: HashMap<String, Value>,
    member_counts: HashMap<i64, u64>,
    /// getChatMember status, by (chat id, user id).
    member_status: HashMap<(i64, i64), String>,
    /// file_id -> (file_path, bytes, file_size answered by getFile).
    files: HashMap<String, (String, Vec<u8>, u64)>,
    next_message_id: i64,
    /// Every request body received, as text.
    bodies: Vec<String>,
}

struct Shared {
    token: String,
    me: Value,
    inner: Mutex<Inner>,
    notify: tokio::sync::Notify,
}

pub struct FakeTg {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeTg {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn ok(result: Value) -> Response {
    Json(json!({"ok": true, "result": result}))
}

#[allow(non_snake_case)]
fn Json(v: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn err(code: u16, description: &str) -> Response {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST),
        [("content-type", "application/json")],
        json!({"ok": false, "error_code": code, "description": description}).to_string(),
    )
        .into_response()
}

impl FakeTg {
    /// Start a fake for a bot with `token`, user id `bot_id` and `username`.
    pub async fn start(token: &str, bot_id: i64, username: &str) -> FakeTg {
        let shared = Arc::new(Shared {
            token: token.to_string(),
            me: json!({
                "id": bot_id, "is_bot": true, "first_name": "leakwatch", "username": username,
                "can_join_groups": true, "can_read_all_group_messages": true,
                "supports_inline_queries": false, "can_connect_to_business": false,
                "has_main_web_app": false
            }),
            inner: Mutex::new(Inner {
                next_update_id: 1000,
                next_message_id: 5000,
                ..Default::default()
            }),
            notify: tokio::sync::Notify::new(),
        });
        let app = Router::new()
            .route("/{bot}/{method}", any(method))
            .route("/file/{bot}/{*path}", get(file))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeTg { addr, shared, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.inner.lock().unwrap()
    }

    /// Queue an update (`{"message": {...}}` etc.); returns its update_id.
    pub fn push(&self, mut update: Value) -> i64 {
        let id = {
            let mut inner = self.inner();
            inner.next_update_id += 1;
            let id = inner.next_update_id;
            update["update_id"] = json!(id);
            inner.updates.push_back(update);
            id
        };
        self.shared.notify.notify_waiters();
        id
    }

    /// Make `getChat` know a chat (by id, and by its username when it has one).
    pub fn add_chat(&self, chat: Value) {
        let mut inner = self.inner();
        inner
            .chats
            .insert(chat["id"].as_i64().unwrap().to_string(), chat.clone());
        if let Some(u) = chat["username"].as_str() {
            inner
                .chats
                .insert(format!("@{}", u.to_ascii_lowercase()), chat.clone());
        }
    }

    /// Forget a chat: `getChat` answers "chat not found" from now on.
    pub fn remove_chat(&self, id: i64) {
        let mut inner = self.inner();
        inner.chats.retain(|_, c| c["id"].as_i64() != Some(id));
    }

    pub fn set_member_count(&self, chat: i64, n: u64) {
        self.inner().member_counts.insert(chat, n);
    }

    pub fn set_member_status(&self, chat: i64, user: i64, status: &str) {
        self.inner()
            .member_status
            .insert((chat, user), status.to_string());
    }

    /// Serve a file: `getFile(file_id)` answers `file_path` and `declared_size`.
    pub fn add_file(&self, file_id: &str, path: &str, bytes: Vec<u8>, declared_size: u64) {
        self.inner().files.insert(
            file_id.to_string(),
            (path.to_string(), bytes, declared_size),
        );
    }

    pub fn fail_get_updates(&self, n: u32) {
        self.inner().fail_get_updates = n;
    }

    /// The params of every call of `method` so far.
    pub fn calls(&self, method: &str) -> Vec<Value> {
        self.inner()
            .calls
            .iter()
            .filter(|(m, _)| m == method)
            .map(|(_, p)| p.clone())
            .collect()
    }

    /// getUpdates failures still to come.
    pub fn failures_left(&self) -> u32 {
        self.inner().fail_get_updates
    }

    pub fn offsets(&self) -> Vec<i64> {
        self.inner().offsets.clone()
    }

    /// Every request body received so far, joined.
    pub fn all_bodies(&self) -> String {
        self.inner().bodies.join("\n")
    }

    /// Updates pushed and not yet confirmed.
    pub fn pending(&self) -> usize {
        self.inner().updates.len()
    }

    /// Wait (up to `secs`) for a call of `method` whose params satisfy `pred`.
    pub async fn wait_call(&self, method: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(p) = self.calls(method).into_iter().find(|p| pred(p)) {
                return p;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for a {method} call; calls so far: {:?}",
                self.inner()
                    .calls
                    .iter()
                    .map(|(m, p)| format!("{m} {p}"))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

const METHODS: &[&str] = &[
    "getMe",
    "getUpdates",
    "sendMessage",
    "answerCallbackQuery",
    "editMessageReplyMarkup",
    "getFile",
    "getChat",
    "getChatMember",
    "getChatMemberCount",
    "leaveChat",
];

fn chat_for_message(chat_id: &Value) -> Value {
    let id = chat_id
        .as_i64()
        .or_else(|| chat_id.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0);
    if id > 0 {
        json!({"id": id, "type": "private", "first_name": "Staff"})
    } else {
        json!({"id": id, "type": "supergroup", "title": "Staff"})
    }
}

fn params_of(body: &[u8]) -> Value {
    if body.is_empty() {
        return json!({});
    }
    serde_json::from_slice(body)
        .unwrap_or_else(|_| json!({"_unparsed": String::from_utf8_lossy(body)}))
}

fn chat_key(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.starts_with('@') => s.to_ascii_lowercase(),
        Value::String(s) => s.clone(),
        _ => String::new(),
    }
}

async fn method(
    State(shared): State<Arc<Shared>>,
    Path((bot, method)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if bot != format!("bot{}", shared.token) {
        return err(401, "Unauthorized");
    }
    // Bot API method names are case-insensitive (teloxide sends `GetMe`): record them in the
    // documented spelling.
    let method = METHODS
        .iter()
        .find(|m| m.eq_ignore_ascii_case(&method))
        .map(|m| m.to_string())
        .unwrap_or(method);
    let params = params_of(&body);
    {
        let mut inner = shared.inner.lock().unwrap();
        inner
            .bodies
            .push(String::from_utf8_lossy(&body).into_owned());
        if method != "getUpdates" && method != "sendMessage" {
            inner.calls.push((method.clone(), params.clone()));
        }
    }
    match method.as_str() {
        "getMe" => ok(shared.me.clone()),
        "getUpdates" => get_updates(&shared, &params).await,
        "sendMessage" | "editMessageReplyMarkup" => {
            let mut inner = shared.inner.lock().unwrap();
            let message_id = match params["message_id"].as_i64() {
                Some(id) => id,
                None => {
                    inner.next_message_id += 1;
                    inner.next_message_id
                }
            };
            let mut m = json!({
                "message_id": message_id,
                "date": chrono::Utc::now().timestamp(),
                "chat": chat_for_message(&params["chat_id"]),
                "from": shared.me,
                "text": params["text"].as_str().unwrap_or("card"),
            });
            if params.get("reply_markup").is_some() {
                m["reply_markup"] = params["reply_markup"].clone();
            }
            if method == "sendMessage" {
                // Recorded with the id it was given, so a test can press its buttons.
                let mut recorded = params.clone();
                recorded["_message_id"] = json!(message_id);
                inner.calls.push((method.clone(), recorded));
            }
            ok(m)
        }
        "answerCallbackQuery" | "leaveChat" => ok(json!(true)),
        "getChat" => {
            let inner = shared.inner.lock().unwrap();
            match inner.chats.get(&chat_key(&params["chat_id"])) {
                Some(c) => ok(c.clone()),
                None => err(400, "Bad Request: chat not found"),
            }
        }
        "getChatMemberCount" => {
            let inner = shared.inner.lock().unwrap();
            let id = params["chat_id"].as_i64().unwrap_or(0);
            match inner.member_counts.get(&id) {
                Some(n) => ok(json!(n)),
                None => err(400, "Bad Request: chat not found"),
            }
        }
        "getChatMember" => {
            let inner = shared.inner.lock().unwrap();
            let chat = inner
                .chats
                .get(&chat_key(&params["chat_id"]))
                .and_then(|c| c["id"].as_i64());
            let user = params["user_id"].as_i64().unwrap_or(0);
            match chat {
                None => err(400, "Bad Request: chat not found"),
                Some(c) => {
                    let status = inner
                        .member_status
                        .get(&(c, user))
                        .cloned()
                        .unwrap_or_else(|| "left".into());
                    ok(
                        json!({"status": status, "user": {"id": user, "is_bot": true, "first_name": "leakwatch"}}),
                    )
                }
            }
        }
        "getFile" => {
            let inner = shared.inner.lock().unwrap();
            let id = params["file_id"].as_str().unwrap_or("");
            match inner.files.get(id) {
                Some((path, _, size)) => ok(json!({
                    "file_id": id, "file_unique_id": format!("u-{id}"),
                    "file_size": size, "file_path": path
                })),
                None => err(400, "Bad Request: invalid file_id"),
            }
        }
        _ => err(404, "Not Found: method not found"),
    }
}

async fn get_updates(shared: &Arc<Shared>, params: &Value) -> Response {
    let offset = params["offset"].as_i64().unwrap_or(0);
    let timeout = params["timeout"].as_u64().unwrap_or(0).min(10);
    let limit = params["limit"].as_u64().unwrap_or(100).clamp(1, 100) as usize;
    {
        let mut inner = shared.inner.lock().unwrap();
        inner.offsets.push(offset);
        if inner.fail_get_updates > 0 {
            inner.fail_get_updates -= 1;
            return (StatusCode::BAD_GATEWAY, "bad gateway").into_response();
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    loop {
        let notified = shared.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut inner = shared.inner.lock().unwrap();
            // An offset confirms every update below it (Bot API: getUpdates).
            inner
                .updates
                .retain(|u| u["update_id"].as_i64().unwrap_or(0) >= offset);
            let batch: Vec<Value> = inner.updates.iter().take(limit).cloned().collect();
            if !batch.is_empty() {
                return ok(Value::Array(batch));
            }
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return ok(json!([]));
        }
    }
}

async fn file(
    State(shared): State<Arc<Shared>>,
    Path((bot, path)): Path<(String, String)>,
) -> Response {
    if bot != format!("bot{}", shared.token) {
        return err(401, "Unauthorized");
    }
    let inner = shared.inner.lock().unwrap();
    match inner.files.values().find(|(p, _, _)| *p == path) {
        Some((_, bytes, _)) => (StatusCode::OK, bytes.clone()).into_response(),
        None => err(404, "Not Found"),
    }
}

/// A group chat object as updates and getChat carry it.
pub fn group_chat(id: i64, title: &str, username: Option<&str>) -> Value {
    let mut c = json!({"id": id, "type": "supergroup", "title": title});
    if let Some(u) = username {
        c["username"] = json!(u);
    }
    c
}

pub fn user(id: i64, first_name: &str) -> Value {
    json!({"id": id, "is_bot": false, "first_name": first_name, "username": format!("u{id}")})
}

/// A `message` update with text.
pub fn text_message(chat: &Value, message_id: i64, from: &Value, text: &str) -> Value {
    json!({"message": {
        "message_id": message_id, "date": 1767225600 + message_id,
        "chat": chat, "from": from, "text": text
    }})
}

/// A `message` update carrying a document.
pub fn document_message(
    chat: &Value,
    message_id: i64,
    from: &Value,
    file_id: &str,
    file_name: &str,
    file_size: Option<u64>,
    caption: &str,
) -> Value {
    let mut doc = json!({"file_id": file_id, "file_unique_id": format!("u-{file_id}"), "file_name": file_name, "mime_type": "text/csv"});
    if let Some(s) = file_size {
        doc["file_size"] = json!(s);
    }
    json!({"message": {
        "message_id": message_id, "date": 1767225600 + message_id,
        "chat": chat, "from": from, "document": doc, "caption": caption
    }})
}

/// `my_chat_member`: the bot's status in `chat` changed to `status`, by `by`.
pub fn my_chat_member(chat: &Value, bot_id: i64, by: &Value, old: &str, status: &str) -> Value {
    json!({"my_chat_member": {
        "chat": chat, "from": by, "date": 1767225600,
        "old_chat_member": {"status": old, "user": {"id": bot_id, "is_bot": true, "first_name": "leakwatch"}},
        "new_chat_member": {"status": status, "user": {"id": bot_id, "is_bot": true, "first_name": "leakwatch"}}
    }})
}

/// A `callback_query`: `from` pressed a button with `data` on message `message_id` in `chat_id`.
pub fn callback(id: &str, chat_id: i64, message_id: i64, from: &Value, data: &str) -> Value {
    json!({"callback_query": {
        "id": id, "from": from, "chat_instance": "ci-1", "data": data,
        "message": {"message_id": message_id, "date": 1767225600,
                    "chat": chat_for_message(&json!(chat_id)), "text": "card"}
    }})
}
