//! The marketplace simulator: a OneBot v11 implementation hosting scripted data-selling groups,
//! so every test and the demo run against the real protocol over real sockets.
//!
//! It speaks forward WebSocket (universal `/`, split `/api` + `/event`), the HTTP API
//! (`POST /<action>`), and can dial a reverse WebSocket. It supports the invite flow, both
//! `get_group_msg_history` dialects, files via `get_group_file_url` / `get_file`, media URLs
//! served from `/media/`, and injected faults (dropped connections, slow answers, retcode
//! errors, expired media, the bot kicked, a group dismissed).
//!
//! A control API under `/_sim/` lets tests and trainers drive it: post messages, send an
//! invitation, inject a fault, read what was posted and what was fetched. It is bound to the
//! same listener and needs the same access token.

pub mod scenario;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::extract::{Path as AxPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use crate::adapters::onebot::cq::{self, Segment};
use crate::adapters::onebot::transport::Frame;
use crate::adapters::onebot::transport::{ax_in, ax_out, tung_in, tung_out};
use scenario::{Dialect, Generator, IdStyle, MessageFormat, PostKind, Scenario};

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("simulator: cannot listen on {addr}: {message}")]
    Listen { addr: String, message: String },
}

struct StoredMessage {
    seq: i64,
    message_id: i64,
    event: Value,
    kind: Option<PostKind>,
    /// The sample rows this message carried (in its text or its file).
    truth: Vec<scenario::TruthRow>,
    posted: Instant,
}

struct GroupState {
    spec: scenario::GroupSpec,
    messages: Vec<StoredMessage>,
    bot_in: bool,
    dismissed: bool,
    /// Flags of invitations sent and not yet answered.
    invites: Vec<String>,
    posted: u64,
}

struct Media {
    bytes: Vec<u8>,
    content_type: &'static str,
    created: Instant,
    name: String,
}

#[derive(Default)]
struct Counters {
    actions: AtomicU64,
    media_requests: AtomicU64,
    connections: AtomicU64,
    drops: AtomicU64,
}

struct Sim {
    scenario: Scenario,
    token: Option<String>,
    base_url: String,
    groups: Mutex<BTreeMap<i64, GroupState>>,
    generator: Mutex<Generator>,
    media: Mutex<HashMap<String, Media>>,
    subscribers: Mutex<Vec<mpsc::UnboundedSender<String>>>,
    faults: Mutex<scenario::Faults>,
    media_expired: std::sync::atomic::AtomicBool,
    kill: watch::Sender<u64>,
    counters: Counters,
    next_flag: AtomicU64,
}

/// One message the simulator posted.
#[derive(Debug, Clone)]
pub struct PostedMessage {
    pub group: i64,
    pub message_id: String,
    /// What it was generated as (`None` for text posted through the control API).
    pub kind: Option<PostKind>,
    pub rows: Vec<scenario::TruthRow>,
    /// When it was posted (for latency measurements).
    pub posted: Instant,
}

/// A running simulator.
pub struct Simulator {
    pub addr: SocketAddr,
    sim: Arc<Sim>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Simulator {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Options beyond the scenario.
#[derive(Debug, Clone, Default)]
pub struct SimOptions {
    pub token: Option<String>,
    /// Dial this reverse WebSocket (universal role) and keep it connected.
    pub reverse_url: Option<String>,
    /// Dial this reverse WebSocket with the Event role only (for HTTP API + reverse WS).
    pub reverse_event_url: Option<String>,
    /// Start posting the scenario's messages on a timer.
    pub autopost: bool,
}

impl Simulator {
    pub async fn start(
        listen: &str,
        scenario: Scenario,
        opts: SimOptions,
    ) -> Result<Simulator, SimError> {
        let listener =
            tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|e| SimError::Listen {
                    addr: listen.to_string(),
                    message: e.to_string(),
                })?;
        let addr = listener.local_addr().map_err(|e| SimError::Listen {
            addr: listen.to_string(),
            message: e.to_string(),
        })?;
        let groups = scenario
            .groups
            .iter()
            .map(|g| {
                (
                    g.id,
                    GroupState {
                        spec: g.clone(),
                        messages: Vec::new(),
                        bot_in: g.bot_member,
                        dismissed: false,
                        invites: Vec::new(),
                        posted: 0,
                    },
                )
            })
            .collect();
        let (kill, _) = watch::channel(0);
        let sim = Arc::new(Sim {
            generator: Mutex::new(Generator::new(&scenario)),
            faults: Mutex::new(scenario.faults.clone()),
            scenario,
            token: opts.token.clone(),
            base_url: format!("http://{addr}"),
            groups: Mutex::new(groups),
            media: Mutex::new(HashMap::new()),
            subscribers: Mutex::new(Vec::new()),
            media_expired: std::sync::atomic::AtomicBool::new(false),
            kill,
            counters: Counters::default(),
            next_flag: AtomicU64::new(1),
        });
        let app = Router::new()
            .route("/", get(ws_root))
            .route("/media/{name}", get(media))
            .route("/_sim/stats", get(stats))
            .route("/_sim/messages/{group}", get(messages))
            .route(
                "/_sim/post/{group}",
                post(control_post).layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024)),
            )
            .route("/_sim/burst/{group}", post(control_burst))
            .route("/_sim/invite/{group}", post(control_invite))
            .route("/_sim/fault", post(control_fault))
            .route("/{action}", get(ws_named).post(http_action))
            .with_state(sim.clone());
        let mut tasks = vec![tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        })];
        tasks.push(tokio::spawn(drop_timer(sim.clone())));
        if opts.autopost {
            let ids: Vec<i64> = sim.scenario.groups.iter().map(|g| g.id).collect();
            for id in ids {
                tasks.push(tokio::spawn(autopost(sim.clone(), id)));
            }
        }
        if let Some(url) = opts.reverse_url {
            tasks.push(tokio::spawn(dial_reverse(sim.clone(), url, "Universal")));
        }
        if let Some(url) = opts.reverse_event_url {
            tasks.push(tokio::spawn(dial_reverse(sim.clone(), url, "Event")));
        }
        Ok(Simulator { addr, sim, tasks })
    }

    /// Write the synthetic platform orders as a records CSV.
    pub fn write_orders_csv(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        self.sim
            .generator
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .write_orders_csv(out)
    }

    /// Every message posted so far, with what it was generated as and the sample rows it
    /// carried: the ground truth capture and extraction are measured against.
    pub fn truth(&self) -> Vec<PostedMessage> {
        let groups = self.sim.groups.lock().unwrap_or_else(|p| p.into_inner());
        groups
            .values()
            .flat_map(|g| {
                g.messages.iter().map(move |m| PostedMessage {
                    group: g.spec.id,
                    message_id: m.message_id.to_string(),
                    kind: m.kind,
                    rows: m.truth.clone(),
                    posted: m.posted,
                })
            })
            .collect()
    }

    /// Run until the tasks end (never, unless the listener fails).
    pub async fn wait(mut self) {
        if let Some(server) = self.tasks.first_mut() {
            let _ = server.await;
        }
    }
}

impl Sim {
    fn id(&self, n: i64) -> Value {
        match self.scenario.ids {
            IdStyle::Number => json!(n),
            IdStyle::String => json!(n.to_string()),
        }
    }

    fn authorized(&self, headers: &HeaderMap, query: &HashMap<String, String>) -> bool {
        let Some(expected) = &self.token else {
            return true;
        };
        let given = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("Token "))
            })
            .map(str::to_string)
            .or_else(|| query.get("access_token").cloned());
        given.as_deref() == Some(expected.as_str())
    }

    fn broadcast(&self, event: &Value) {
        let text = event.to_string();
        let mut subs = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        subs.retain(|s| s.send(text.clone()).is_ok());
    }

    fn store_media(&self, name: &str, bytes: Vec<u8>, content_type: &'static str) -> String {
        let key = format!("{:016x}", rand::random::<u64>());
        self.media.lock().unwrap_or_else(|p| p.into_inner()).insert(
            key.clone(),
            Media {
                bytes,
                content_type,
                created: Instant::now(),
                name: name.to_string(),
            },
        );
        key
    }

    /// Post one message to a group: stored in its history, and sent live if the bot is in it.
    fn post(&self, group_id: i64, kind: PostKind, text: Option<String>) -> Option<(i64, i64)> {
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        let g = groups.get_mut(&group_id)?;
        if g.dismissed {
            return None;
        }
        let mut generator = self.generator.lock().unwrap_or_else(|p| p.into_inner());
        let seller = g.spec.sellers[generator.index(g.spec.sellers.len())].clone();
        let mut truth = Vec::new();
        let generated = text.is_none().then_some(kind);
        let segments: Vec<Segment> = match (kind, text) {
            (_, Some(t)) => cq::parse_cq(&t),
            (PostKind::Offer, None) => vec![Segment::text(&generator.offer(&seller))],
            (PostKind::Sample, None) => {
                let (text, rows) = generator.sample_text();
                truth = rows;
                vec![Segment::text(&text)]
            }
            (PostKind::Chatter, None) => cq::parse_cq(&generator.chatter()),
            (PostKind::File, None) => {
                let (name, bytes, ctype, rows) = generator.sample_file();
                truth = rows;
                let size = bytes.len();
                let key = self.store_media(&name, bytes, ctype);
                vec![Segment {
                    kind: "file".into(),
                    data: [
                        ("file".to_string(), json!(name)),
                        ("file_id".to_string(), json!(format!("/{key}"))),
                        ("file_size".to_string(), json!(size)),
                        ("busid".to_string(), json!(102)),
                    ]
                    .into_iter()
                    .collect(),
                }]
            }
            (PostKind::Image, None) => {
                let (bytes, rows) = generator.screenshot();
                truth = rows;
                let size = bytes.len();
                let key = self.store_media("screenshot.png", bytes, "image/png");
                vec![
                    Segment::text("今天的单子截图"),
                    Segment {
                        kind: "image".into(),
                        data: [
                            ("file".to_string(), json!(format!("{key}.png"))),
                            (
                                "url".to_string(),
                                json!(format!("{}/media/{key}", self.base_url)),
                            ),
                            ("file_size".to_string(), json!(size)),
                        ]
                        .into_iter()
                        .collect(),
                    },
                ]
            }
        };
        drop(generator);
        let seq = g.messages.len() as i64 + 1;
        // NapCat-style message ids: not the sequence number, and stable.
        let message_id = ((group_id
            .wrapping_mul(31)
            .wrapping_add(seq.wrapping_mul(2_654_435_761)))
            & 0x7fff_ffff)
            + 1;
        let message = match self.scenario.message_format {
            MessageFormat::Array => serde_json::to_value(&segments).unwrap_or(Value::Null),
            MessageFormat::String => json!(cq::to_cq(&segments)),
        };
        let mut event = json!({
            "time": chrono::Utc::now().timestamp(),
            "self_id": self.id(self.scenario.self_id),
            "post_type": "message",
            "message_type": "group",
            "sub_type": "normal",
            "message_id": self.id(message_id),
            "group_id": self.id(group_id),
            "user_id": self.id(seller.id),
            "anonymous": null,
            "message": message,
            "raw_message": cq::to_cq(&segments),
            "font": 0,
            "message_format": match self.scenario.message_format { MessageFormat::Array => "array", MessageFormat::String => "string" },
            "sender": {"user_id": self.id(seller.id), "nickname": seller.nickname, "card": seller.card, "role": "member"},
        });
        if self.scenario.history == Dialect::Napcat {
            event["message_seq"] = json!(seq);
            event["real_id"] = self.id(message_id);
        }
        g.messages.push(StoredMessage {
            seq,
            message_id,
            event: event.clone(),
            kind: generated,
            truth,
            posted: Instant::now(),
        });
        g.posted += 1;
        let live = g.bot_in;
        drop(groups);
        if live {
            self.broadcast(&event);
        }
        Some((seq, message_id))
    }

    fn notice(
        &self,
        group_id: i64,
        notice_type: &str,
        sub_type: &str,
        user_id: i64,
        operator: i64,
    ) -> Value {
        json!({
            "time": chrono::Utc::now().timestamp(),
            "self_id": self.id(self.scenario.self_id),
            "post_type": "notice",
            "notice_type": notice_type,
            "sub_type": sub_type,
            "group_id": self.id(group_id),
            "user_id": self.id(user_id),
            "operator_id": self.id(operator),
        })
    }

    fn invite(&self, group_id: i64) -> bool {
        let flag = format!("inv-{}", self.next_flag.fetch_add(1, Ordering::Relaxed));
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        let Some(g) = groups.get_mut(&group_id) else {
            return false;
        };
        if g.bot_in || g.dismissed {
            return false;
        }
        g.invites.push(flag.clone());
        let inviter = g.spec.sellers[0].id + 7;
        drop(groups);
        self.broadcast(&json!({
            "time": chrono::Utc::now().timestamp(),
            "self_id": self.id(self.scenario.self_id),
            "post_type": "request",
            "request_type": "group",
            "sub_type": "invite",
            "group_id": self.id(group_id),
            "user_id": self.id(inviter),
            "comment": "",
            "flag": flag,
        }));
        true
    }

    /// Answer one action. `None` data with a retcode means failure.
    async fn action(&self, action: &str, params: &Value) -> Value {
        self.counters.actions.fetch_add(1, Ordering::Relaxed);
        let (slow, error_every) = {
            let f = self.faults.lock().unwrap_or_else(|p| p.into_inner());
            (f.slow_ms, f.error_every)
        };
        if slow > 0 {
            tokio::time::sleep(Duration::from_millis(slow)).await;
        }
        let n = self.counters.actions.load(Ordering::Relaxed);
        if error_every > 0 && n.is_multiple_of(error_every) {
            return failed(102, "simulated failure");
        }
        let gid = params.get("group_id").and_then(as_i64);
        match action {
            "get_login_info" => ok(
                json!({"user_id": self.id(self.scenario.self_id), "nickname": self.scenario.nickname}),
            ),
            "get_status" => ok(json!({"online": true, "good": true})),
            "get_version_info" => ok(
                json!({"app_name": "leakwatch-simulator", "app_version": crate::VERSION, "protocol_version": "v11"}),
            ),
            "get_group_list" => {
                let groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
                let list: Vec<Value> = groups
                    .values()
                    .filter(|g| g.bot_in && !g.dismissed)
                    .map(|g| json!({"group_id": self.id(g.spec.id), "group_name": g.spec.name, "member_count": g.spec.member_count, "max_member_count": 500}))
                    .collect();
                ok(json!(list))
            }
            "get_group_info" => {
                let groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
                match gid.and_then(|id| groups.get(&id)) {
                    Some(g) if !g.dismissed => ok(
                        json!({"group_id": self.id(g.spec.id), "group_name": g.spec.name, "member_count": g.spec.member_count, "max_member_count": 500}),
                    ),
                    _ => failed(100, "群不存在"),
                }
            }
            "get_group_member_list" => {
                let groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
                match gid.and_then(|id| groups.get(&id)) {
                    Some(g) if g.bot_in && !g.dismissed => {
                        let mut members: Vec<Value> = g
                            .spec
                            .sellers
                            .iter()
                            .map(|s| json!({"group_id": self.id(g.spec.id), "user_id": self.id(s.id), "nickname": s.nickname, "card": s.card, "role": "admin", "join_time": 1_760_000_000, "last_sent_time": chrono::Utc::now().timestamp()}))
                            .collect();
                        members.push(json!({"group_id": self.id(g.spec.id), "user_id": self.id(self.scenario.self_id), "nickname": self.scenario.nickname, "card": "", "role": "member"}));
                        ok(json!(members))
                    }
                    _ => failed(100, "not a member of this group"),
                }
            }
            "get_group_msg_history" => {
                let count = params
                    .get("count")
                    .and_then(as_i64)
                    .unwrap_or(20)
                    .clamp(1, 500) as usize;
                let groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
                let Some(g) = gid.and_then(|id| groups.get(&id)) else {
                    return failed(100, "群不存在");
                };
                if !g.bot_in || g.dismissed {
                    return failed(100, "not a member of this group");
                }
                // Both dialects answer the `count` messages ending at the anchor (inclusive),
                // oldest first; no anchor means the newest.
                let end = match self.scenario.history {
                    Dialect::Napcat => match params.get("message_seq").and_then(as_i64) {
                        Some(s) if s > 0 => {
                            g.messages.iter().position(|m| m.seq == s).map(|i| i + 1)
                        }
                        _ => Some(g.messages.len()),
                    },
                    Dialect::Lagrange => match params.get("message_id").and_then(as_i64) {
                        Some(id) if id != 0 => g
                            .messages
                            .iter()
                            .position(|m| m.message_id == id)
                            .map(|i| i + 1),
                        _ => Some(g.messages.len()),
                    },
                };
                let Some(end) = end else {
                    return failed(1200, "消息不存在");
                };
                let start = end.saturating_sub(count);
                let page: Vec<Value> = g.messages[start..end]
                    .iter()
                    .map(|m| m.event.clone())
                    .collect();
                ok(json!({"messages": page}))
            }
            "get_msg" => {
                let id = params.get("message_id").and_then(as_i64);
                let groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
                let found = groups
                    .values()
                    .flat_map(|g| g.messages.iter())
                    .find(|m| Some(m.message_id) == id);
                match found {
                    Some(m) => ok(m.event.clone()),
                    None => failed(1200, "消息不存在"),
                }
            }
            "get_group_file_url" | "get_file" => {
                let file_id = params.get("file_id").and_then(Value::as_str).unwrap_or("");
                let key = file_id.trim_start_matches('/');
                let media = self.media.lock().unwrap_or_else(|p| p.into_inner());
                match media.get(key) {
                    Some(m) => ok(
                        json!({"url": format!("{}/media/{key}", self.base_url), "file_name": m.name, "file_size": m.bytes.len()}),
                    ),
                    None => failed(404, "file not found"),
                }
            }
            "set_group_add_request" => {
                let flag = params
                    .get("flag")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let approve = params
                    .get("approve")
                    .and_then(Value::as_bool)
                    .unwrap_or(true);
                let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
                let Some(g) = groups.values_mut().find(|g| g.invites.contains(&flag)) else {
                    return failed(100, "no such request");
                };
                g.invites.retain(|f| f != &flag);
                if approve {
                    g.bot_in = true;
                    let id = g.spec.id;
                    drop(groups);
                    let n = self.notice(id, "group_increase", "invite", self.scenario.self_id, 0);
                    self.broadcast(&n);
                }
                ok(Value::Null)
            }
            _ => failed(1404, "unsupported action"),
        }
    }
}

fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn ok(data: Value) -> Value {
    json!({"status": "ok", "retcode": 0, "data": data})
}

fn failed(retcode: i64, message: &str) -> Value {
    json!({"status": "failed", "retcode": retcode, "data": null, "message": message, "wording": message})
}

#[derive(Clone, Copy, PartialEq)]
enum SockRole {
    Universal,
    Api,
    Event,
}

async fn ws_root(
    s: State<Arc<Sim>>,
    h: HeaderMap,
    q: Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    upgrade(s, h, q, ws, SockRole::Universal)
}

/// `GET /api` and `GET /event`: the split forward WebSocket.
async fn ws_named(
    s: State<Arc<Sim>>,
    AxPath(name): AxPath<String>,
    h: HeaderMap,
    q: Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    match name.as_str() {
        "api" => upgrade(s, h, q, ws, SockRole::Api),
        "event" => upgrade(s, h, q, ws, SockRole::Event),
        _ => (StatusCode::NOT_FOUND, "no such endpoint").into_response(),
    }
}

fn upgrade(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
    role: SockRole,
) -> Response {
    if !sim.authorized(&headers, &q) {
        return (StatusCode::UNAUTHORIZED, "bad or missing access token").into_response();
    }
    ws.on_upgrade(move |socket| serve_socket(sim, socket, role))
}

/// One WebSocket, whichever side dialled: events out (unless API-only), actions in (unless
/// event-only), closed when a drop fault fires.
async fn session<St, Si, M, E1, E2>(
    sim: Arc<Sim>,
    mut stream: St,
    mut sink: Si,
    role: SockRole,
    to_message: fn(String) -> M,
    to_frame: fn(M) -> Frame,
) where
    St: futures_util::Stream<Item = Result<M, E1>> + Unpin + Send,
    Si: futures_util::Sink<M, Error = E2> + Unpin + Send + 'static,
    M: Send + 'static,
{
    sim.counters.connections.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    if role != SockRole::Api {
        let _ = tx.send(json!({"time": chrono::Utc::now().timestamp(), "self_id": sim.id(sim.scenario.self_id), "post_type": "meta_event", "meta_event_type": "lifecycle", "sub_type": "connect"}).to_string());
        sim.subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(tx.clone());
        if sim.scenario.auto_invite {
            let pending: Vec<i64> = {
                let groups = sim.groups.lock().unwrap_or_else(|p| p.into_inner());
                groups
                    .values()
                    .filter(|g| !g.bot_in && !g.dismissed)
                    .map(|g| g.spec.id)
                    .collect()
            };
            let s2 = sim.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                for id in pending {
                    s2.invite(id);
                }
            });
        }
    }
    let mut kill = sim.kill.subscribe();
    let writer = tokio::spawn(async move {
        while let Some(text) = rx.recv().await {
            if sink.send(to_message(text)).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    loop {
        tokio::select! {
            _ = kill.changed() => break,
            frame = stream.next() => match frame.map(|r| r.map(to_frame)) {
                Some(Ok(Frame::Data(bytes))) if role != SockRole::Event => {
                    let Ok(req) = serde_json::from_slice::<Value>(&bytes) else { continue };
                    let sim = sim.clone();
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        let action = req.get("action").and_then(Value::as_str).unwrap_or("").to_string();
                        let params = req.get("params").cloned().unwrap_or(Value::Null);
                        let mut answer = sim.action(&action, &params).await;
                        if let Some(echo) = req.get("echo") {
                            answer["echo"] = echo.clone();
                        }
                        let _ = tx.send(answer.to_string());
                    });
                }
                Some(Ok(Frame::Close)) | None | Some(Err(_)) => break,
                _ => {}
            }
        }
    }
    drop(tx);
    writer.abort();
}

async fn serve_socket(sim: Arc<Sim>, socket: WebSocket, role: SockRole) {
    let (sink, stream) = socket.split();
    session(sim, stream, sink, role, ax_out, ax_in).await;
}

/// HTTP API: `POST /<action>` with the parameters as a JSON body.
async fn http_action(
    State(sim): State<Arc<Sim>>,
    AxPath(action): AxPath<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    if !sim.authorized(&headers, &q) {
        return (StatusCode::UNAUTHORIZED, "bad or missing access token").into_response();
    }
    let params: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body).unwrap_or(json!({}))
    };
    Json(sim.action(&action, &params).await).into_response()
}

async fn media(State(sim): State<Arc<Sim>>, AxPath(name): AxPath<String>) -> Response {
    sim.counters.media_requests.fetch_add(1, Ordering::Relaxed);
    let ttl = sim
        .faults
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .media_ttl_ms;
    let media = sim.media.lock().unwrap_or_else(|p| p.into_inner());
    let expired_all = sim.media_expired.load(Ordering::Relaxed);
    match media.get(&name) {
        Some(m)
            if !expired_all && (ttl == 0 || m.created.elapsed() < Duration::from_millis(ttl)) =>
        {
            ([("content-type", m.content_type)], m.bytes.clone()).into_response()
        }
        // QQ answers an expired media URL with an error, not the bytes.
        Some(_) => (StatusCode::NOT_FOUND, "expired").into_response(),
        None => (StatusCode::NOT_FOUND, "no such media").into_response(),
    }
}

fn control_auth(sim: &Sim, headers: &HeaderMap, q: &HashMap<String, String>) -> Option<Response> {
    (!sim.authorized(headers, q))
        .then(|| (StatusCode::UNAUTHORIZED, "bad or missing access token").into_response())
}

async fn stats(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = control_auth(&sim, &headers, &q) {
        return r;
    }
    let groups = sim.groups.lock().unwrap_or_else(|p| p.into_inner());
    let g: BTreeMap<String, Value> = groups
        .values()
        .map(|g| (g.spec.id.to_string(), json!({"messages": g.messages.len(), "bot_in": g.bot_in, "dismissed": g.dismissed, "pending_invites": g.invites.len()})))
        .collect();
    Json(json!({
        "groups": g,
        "actions": sim.counters.actions.load(Ordering::Relaxed),
        "media_requests": sim.counters.media_requests.load(Ordering::Relaxed),
        "connections": sim.counters.connections.load(Ordering::Relaxed),
        "drops": sim.counters.drops.load(Ordering::Relaxed),
    }))
    .into_response()
}

async fn messages(
    State(sim): State<Arc<Sim>>,
    AxPath(group): AxPath<i64>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = control_auth(&sim, &headers, &q) {
        return r;
    }
    let groups = sim.groups.lock().unwrap_or_else(|p| p.into_inner());
    match groups.get(&group) {
        Some(g) => Json(json!(
            g.messages
                .iter()
                .map(|m| json!({"seq": m.seq, "message_id": m.message_id.to_string()}))
                .collect::<Vec<_>>()
        ))
        .into_response(),
        None => (StatusCode::NOT_FOUND, "no such group").into_response(),
    }
}

#[derive(Deserialize)]
struct PostBody {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    kind: Option<PostKind>,
    /// Post a file with this name and these bytes (base64) instead.
    #[serde(default)]
    file_name: Option<String>,
    #[serde(default)]
    file_base64: Option<String>,
}

async fn control_post(
    State(sim): State<Arc<Sim>>,
    AxPath(group): AxPath<i64>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    Json(body): Json<PostBody>,
) -> Response {
    if let Some(r) = control_auth(&sim, &headers, &q) {
        return r;
    }
    let text = match (body.file_name, body.file_base64) {
        (Some(name), Some(b64)) => {
            use base64::Engine;
            let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(b64) else {
                return (StatusCode::BAD_REQUEST, "file_base64 is not base64").into_response();
            };
            let size = bytes.len();
            let key = sim.store_media(&name, bytes, "application/octet-stream");
            Some(cq::to_cq(&[Segment {
                kind: "file".into(),
                data: [
                    ("file".to_string(), json!(name)),
                    ("file_id".to_string(), json!(format!("/{key}"))),
                    ("file_size".to_string(), json!(size)),
                    ("busid".to_string(), json!(102)),
                ]
                .into_iter()
                .collect(),
            }]))
        }
        _ => body.text,
    };
    match sim.post(group, body.kind.unwrap_or(PostKind::Chatter), text) {
        Some((seq, id)) => Json(json!({"seq": seq, "message_id": id.to_string()})).into_response(),
        None => (StatusCode::NOT_FOUND, "no such group, or dismissed").into_response(),
    }
}

#[derive(Deserialize)]
struct BurstQuery {
    count: u64,
    #[serde(default)]
    per_s: Option<f64>,
    #[serde(default)]
    access_token: Option<String>,
}

/// Post `count` generated messages at `per_s` (in the background); answers at once.
async fn control_burst(
    State(sim): State<Arc<Sim>>,
    AxPath(group): AxPath<i64>,
    headers: HeaderMap,
    Query(b): Query<BurstQuery>,
) -> Response {
    let q: HashMap<String, String> = b
        .access_token
        .iter()
        .map(|t| ("access_token".to_string(), t.clone()))
        .collect();
    if let Some(r) = control_auth(&sim, &headers, &q) {
        return r;
    }
    let count = b.count.min(100_000);
    let gap = Duration::from_secs_f64(1.0 / b.per_s.unwrap_or(200.0).clamp(1.0, 100_000.0));
    tokio::spawn(async move {
        for _ in 0..count {
            let mix = {
                let groups = sim.groups.lock().unwrap_or_else(|p| p.into_inner());
                groups.get(&group).map(|g| g.spec.mix)
            };
            let Some(mix) = mix else { return };
            let kind = sim
                .generator
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .next_kind(&mix);
            let kind = if matches!(kind, PostKind::File | PostKind::Image) {
                PostKind::Offer
            } else {
                kind
            };
            if sim.post(group, kind, None).is_none() {
                return;
            }
            tokio::time::sleep(gap).await;
        }
    });
    Json(json!({"posting": count})).into_response()
}

async fn control_invite(
    State(sim): State<Arc<Sim>>,
    AxPath(group): AxPath<i64>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = control_auth(&sim, &headers, &q) {
        return r;
    }
    Json(json!({"sent": sim.invite(group)})).into_response()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FaultBody {
    drop_now: Option<bool>,
    drop_every_ms: Option<u64>,
    slow_ms: Option<u64>,
    error_every: Option<u64>,
    media_ttl_ms: Option<u64>,
    expire_media: Option<bool>,
    kick: Option<i64>,
    dismiss: Option<i64>,
}

async fn control_fault(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    Json(f): Json<FaultBody>,
) -> Response {
    if let Some(r) = control_auth(&sim, &headers, &q) {
        return r;
    }
    {
        let mut faults = sim.faults.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = f.drop_every_ms {
            faults.drop_every_ms = v;
        }
        if let Some(v) = f.slow_ms {
            faults.slow_ms = v;
        }
        if let Some(v) = f.error_every {
            faults.error_every = v;
        }
        if let Some(v) = f.media_ttl_ms {
            faults.media_ttl_ms = v;
        }
    }
    if let Some(v) = f.expire_media {
        sim.media_expired.store(v, Ordering::Relaxed);
    }
    if let Some(group) = f.kick {
        let was_in = {
            let mut groups = sim.groups.lock().unwrap_or_else(|p| p.into_inner());
            groups
                .get_mut(&group)
                .map(|g| std::mem::replace(&mut g.bot_in, false))
                .unwrap_or(false)
        };
        if was_in {
            announce_bot_gone(&sim, group, "kick_me");
        }
    }
    if let Some(group) = f.dismiss {
        let was_in = {
            let mut groups = sim.groups.lock().unwrap_or_else(|p| p.into_inner());
            groups.get_mut(&group).map(|g| {
                g.dismissed = true;
                g.bot_in
            })
        };
        if was_in == Some(true) {
            announce_bot_gone(&sim, group, "disband");
        }
    }
    if f.drop_now == Some(true) {
        drop_all(&sim);
    }
    Json(json!({"ok": true})).into_response()
}

/// Tell every connected client the bot left `group` (`kick_me`: removed by the owner;
/// `disband`: the owner dismissed the group), as a OneBot `group_decrease` notice.
fn announce_bot_gone(sim: &Sim, group: i64, sub_type: &str) {
    let owner = sim
        .scenario
        .groups
        .iter()
        .find(|g| g.id == group)
        .and_then(|g| g.sellers.first())
        .map(|s| s.id)
        .unwrap_or(0);
    let n = sim.notice(
        group,
        "group_decrease",
        sub_type,
        sim.scenario.self_id,
        owner,
    );
    sim.broadcast(&n);
}

fn drop_all(sim: &Sim) {
    sim.counters.drops.fetch_add(1, Ordering::Relaxed);
    sim.subscribers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
    sim.kill.send_modify(|n| *n += 1);
}

/// The `drop_every_ms` fault: close every connection on a timer.
async fn drop_timer(sim: Arc<Sim>) {
    loop {
        let every = sim
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drop_every_ms;
        if every == 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        tokio::time::sleep(Duration::from_millis(every)).await;
        if sim
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drop_every_ms
            > 0
        {
            drop_all(&sim);
        }
    }
}

/// Post the scenario's messages on a timer, by each group's mix.
async fn autopost(sim: Arc<Sim>, group: i64) {
    let gap = Duration::from_secs_f64(1.0 / sim.scenario.rate_per_s);
    let limit = sim.scenario.messages;
    let mix = sim
        .scenario
        .groups
        .iter()
        .find(|g| g.id == group)
        .map(|g| g.mix)
        .unwrap_or([1, 1, 1, 1, 1]);
    let mut posted = 0u64;
    while limit == 0 || posted < limit {
        tokio::time::sleep(gap).await;
        let kind = sim
            .generator
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next_kind(&mix);
        if sim.post(group, kind, None).is_none() {
            return;
        }
        posted += 1;
    }
}

/// Dial leakwatch's reverse WebSocket and keep it up, as NapCat does in reverse mode.
async fn dial_reverse(sim: Arc<Sim>, url: String, role: &'static str) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    loop {
        let req = url.as_str().into_client_request().ok().map(|mut r| {
            let h = r.headers_mut();
            if let Ok(v) = sim.scenario.self_id.to_string().parse() {
                h.insert("X-Self-ID", v);
            }
            if let Ok(v) = role.parse() {
                h.insert("X-Client-Role", v);
            }
            if let Some(t) = &sim.token
                && let Ok(v) = format!("Bearer {t}").parse()
            {
                h.insert("Authorization", v);
            }
            r
        });
        if let Some(req) = req
            && let Ok((ws, _)) = tokio_tungstenite::connect_async(req).await
        {
            let role = if role == "Event" {
                SockRole::Event
            } else {
                SockRole::Universal
            };
            let (sink, stream) = ws.split();
            session(sim.clone(), stream, sink, role, tung_out, tung_in).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
