//! The OneBot v11 adapter: leakwatch's way into QQ groups, through NapCat, LLOneBot,
//! Lagrange.OneBot or the built-in simulator.
//!
//! Shape: a connection manager keeps one connection alive in the configured mode
//! (forward WebSocket, reverse WebSocket server, or HTTP API + reverse WebSocket for events),
//! reconnecting with capped exponential backoff and jitter. Every frame that arrives goes to one
//! ordered event processor, which turns it into [`AdapterEvent`]s: it accepts invitations only
//! for submitted groups (OneBot has no "join" action), fetches media at once through the
//! private-address guard, and dedupes messages per group. After every reconnect a backfill
//! pages `get_group_msg_history` back to the last message seen, so a dropped connection loses
//! nothing and delivers nothing twice.
//!
//! Ids are strings throughout (implementations send numbers or strings); actions are sent with
//! numeric ids where the id is numeric, because some implementations insist on numbers.

pub mod cq;
pub mod event;
pub mod transport;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use base64::Engine;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::netguard::{FetchPolicy, GuardedFetcher, HostResolver, SystemResolver};
use super::{
    AdapterError, AdapterEvent, ChatAdapter, ChatMessage, GroupInfo, GroupRef, GroupStatus,
    HistoryCursor, JoinOutcome, MediaItem, MediaKind, Member, Platform, SubmittedGroups,
};
use crate::config::{HistoryDialect, OneBotConfig, OneBotMode};
use event::{MessageParts, Parsed};
use transport::{Frame, FrameSink, Link, Role, ax_in, ax_out, tung_in, tung_out};

/// How many message ids per group the live dedupe remembers; older duplicates are caught by
/// capture's own index.
const SEEN_PER_GROUP: usize = 100_000;
/// How many history pages one backfill may read.
const MAX_HISTORY_PAGES: usize = 400;

/// Capacity of the event channel to capture (back-pressure beyond it).
const EVENT_QUEUE: usize = 1024;

struct SeenSet {
    ids: HashSet<String>,
    order: VecDeque<String>,
    /// The newest message delivered.
    last: Option<HistoryCursor>,
    /// Set when a connection that carried events ended: a backfill is owed from this point
    /// (the newest message delivered *before* the gap, so live messages arriving after a
    /// reconnect can never move it past a message missed in the gap).
    resume: Option<Option<HistoryCursor>>,
    /// Counts gaps, so a backfill that raced with a newer gap does not clear that gap's debt.
    gaps: u64,
}

impl SeenSet {
    fn new() -> SeenSet {
        SeenSet {
            ids: HashSet::new(),
            order: VecDeque::new(),
            last: None,
            resume: None,
            gaps: 0,
        }
    }

    /// True the first time a message id is claimed.
    fn claim(&mut self, id: &str) -> bool {
        if !self.ids.insert(id.to_string()) {
            return false;
        }
        self.order.push_back(id.to_string());
        if self.order.len() > SEEN_PER_GROUP
            && let Some(old) = self.order.pop_front()
        {
            self.ids.remove(&old);
        }
        true
    }

    fn advance(&mut self, seq: Option<i64>, id: &str) {
        let newer = match (&self.last, seq) {
            (None, _) => true,
            (Some(HistoryCursor { seq: Some(a), .. }), Some(b)) => b > *a,
            // Without sequence numbers, arrival order is all there is.
            _ => true,
        };
        if newer {
            self.last = Some(HistoryCursor {
                seq,
                message_id: id.to_string(),
            });
        }
    }
}

struct Core {
    cfg: OneBotConfig,
    link: RwLock<Option<Arc<Link>>>,
    link_up: watch::Sender<u64>,
    frames: mpsc::UnboundedSender<Parsed>,
    events: mpsc::Sender<AdapterEvent>,
    submitted: Arc<SubmittedGroups>,
    self_id: RwLock<Option<String>>,
    seen: Mutex<HashMap<String, SeenSet>>,
    fetcher: GuardedFetcher,
    next_echo: AtomicU64,
}

pub struct OneBotAdapter {
    core: Arc<Core>,
    events: Mutex<Option<mpsc::Receiver<AdapterEvent>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for OneBotAdapter {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl FrameSink for Core {
    fn on_frame(&self, bytes: &[u8], link: Option<&Arc<Link>>) {
        match event::parse_frame(bytes) {
            Parsed::ActionAnswer { echo, value } => {
                if let Some(l) = link {
                    l.deliver(&echo, value);
                }
            }
            parsed => {
                // Unbounded on purpose: the reader must never block, or the answers the
                // processor waits for could not be read (a deadlock).
                let _ = self.frames.send(parsed);
            }
        }
    }
}

impl OneBotAdapter {
    /// Start the adapter: connection manager and event processor run as tokio tasks.
    pub async fn start(
        cfg: OneBotConfig,
        submitted: Arc<SubmittedGroups>,
    ) -> Result<OneBotAdapter, AdapterError> {
        Self::start_with_resolver(cfg, submitted, Arc::new(SystemResolver)).await
    }

    /// As [`OneBotAdapter::start`], with the name resolver used for media URLs (tests).
    pub async fn start_with_resolver(
        cfg: OneBotConfig,
        submitted: Arc<SubmittedGroups>,
        resolver: Arc<dyn HostResolver>,
    ) -> Result<OneBotAdapter, AdapterError> {
        let policy = FetchPolicy {
            allow_private: cfg.allow_private_media,
            max_bytes: cfg.media_max_bytes,
            ..FetchPolicy::default()
        };
        let fetcher = GuardedFetcher::new(policy, resolver)?;
        let (frames_tx, frames_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let (link_up, _) = watch::channel(0u64);
        let core = Arc::new(Core {
            cfg,
            link: RwLock::new(None),
            link_up,
            frames: frames_tx,
            events: events_tx,
            submitted,
            self_id: RwLock::new(None),
            seen: Mutex::new(HashMap::new()),
            fetcher,
            next_echo: AtomicU64::new(1),
        });
        let mut tasks = vec![tokio::spawn(process_frames(core.clone(), frames_rx))];
        match core.cfg.mode {
            OneBotMode::ForwardWs => tasks.push(tokio::spawn(run_forward(core.clone()))),
            OneBotMode::ReverseWs => {
                tasks.push(tokio::spawn(run_reverse_server(core.clone()).await?));
            }
            OneBotMode::Http => {
                let url = core.cfg.url.clone().unwrap_or_default();
                let client = reqwest::Client::builder()
                    .no_proxy()
                    .build()
                    .map_err(|e| AdapterError::Protocol(format!("HTTP client: {e}")))?;
                core.set_link(Arc::new(Link::http(
                    client,
                    &url,
                    core.cfg.access_token.clone(),
                )));
                tasks.push(tokio::spawn(run_reverse_server(core.clone()).await?));
            }
        }
        Ok(OneBotAdapter {
            core,
            events: Mutex::new(Some(events_rx)),
            tasks,
        })
    }

    /// The bot account's own id, once known.
    pub fn self_id(&self) -> Option<String> {
        self.core.self_id()
    }

    /// Call any OneBot action (operators' escape hatch, and tests).
    pub async fn call(&self, action: &str, params: Value) -> Result<Value, AdapterError> {
        self.core.call(action, params).await
    }
}

/// A numeric id as a JSON number when it is one (some implementations reject strings).
fn id_param(id: &str) -> Value {
    id.parse::<i64>()
        .map(Value::from)
        .unwrap_or_else(|_| Value::from(id))
}

impl Core {
    fn self_id(&self) -> Option<String> {
        self.self_id
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_self_id(&self, id: &str) {
        *self.self_id.write().unwrap_or_else(|p| p.into_inner()) = Some(id.to_string());
    }

    fn set_link(&self, link: Arc<Link>) {
        *self.link.write().unwrap_or_else(|p| p.into_inner()) = Some(link);
        self.link_up.send_modify(|n| *n += 1);
    }

    fn clear_link(&self, link: &Arc<Link>) {
        let mut current = self.link.write().unwrap_or_else(|p| p.into_inner());
        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, link)) {
            *current = None;
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.cfg.action_timeout_ms)
    }

    async fn current_link(&self) -> Result<Arc<Link>, AdapterError> {
        let mut up = self.link_up.subscribe();
        let deadline = tokio::time::Instant::now() + self.timeout();
        loop {
            if let Some(l) = self.link.read().unwrap_or_else(|p| p.into_inner()).clone() {
                return Ok(l);
            }
            if tokio::time::timeout_at(deadline, up.changed())
                .await
                .is_err()
            {
                return Err(AdapterError::NotConnected(self.cfg.name.clone()));
            }
        }
    }

    async fn call(&self, action: &str, params: Value) -> Result<Value, AdapterError> {
        let link = self.current_link().await?;
        let echo = self.next_echo.fetch_add(1, Ordering::Relaxed).to_string();
        link.call(action, params, echo, self.timeout()).await
    }

    /// A read-only action, retried with backoff on errors and timeouts (a flaky
    /// implementation must not make a backfill give up at once).
    async fn call_retry(&self, action: &str, params: Value) -> Result<Value, AdapterError> {
        let mut delay = Duration::from_millis(100);
        let mut last = None;
        for _ in 0..5 {
            match self.call(action, params.clone()).await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    tracing::debug!(adapter = %self.cfg.name, "{action} failed, retrying: {e}");
                    last = Some(e);
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
        Err(last.unwrap_or_else(|| AdapterError::NotConnected(self.cfg.name.clone())))
    }

    async fn emit(&self, event: AdapterEvent) {
        let _ = self.events.send(event).await;
    }

    fn group(&self, id: &str) -> GroupRef {
        GroupRef::qq(id)
    }

    fn claim(&self, group_id: &str, message_id: &str) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.entry(group_id.to_string())
            .or_insert_with(SeenSet::new)
            .claim(message_id)
    }

    /// Remember a group the bot is in, so a gap is backfilled even before its first message.
    fn track(&self, group_id: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.entry(group_id.to_string())
            .or_insert_with(SeenSet::new);
    }

    fn advance(&self, group_id: &str, seq: Option<i64>, message_id: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.entry(group_id.to_string())
            .or_insert_with(SeenSet::new)
            .advance(seq, message_id);
    }

    /// Called when a connection that carries actions comes up.
    async fn on_connected(self: &Arc<Self>) {
        self.emit(AdapterEvent::Connected).await;
        if let Ok(info) = self.call_retry("get_login_info", json!({})).await
            && let Some(id) = event::id_of(info.get("user_id"))
        {
            self.set_self_id(&id);
        }
        let core = self.clone();
        tokio::spawn(async move { core.backfill_all().await });
    }

    /// A connection that carried events ended: every group we have heard from is owed a
    /// backfill from the newest message delivered so far (an older debt is kept).
    fn mark_gap(&self) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        for s in seen.values_mut() {
            if s.resume.is_none() {
                s.resume = Some(s.last.clone());
            }
            s.gaps += 1;
        }
    }

    /// After a reconnect: page back through every group owed a backfill, to the point where
    /// its gap began, and deliver what was missed (duplicates are dropped by the claim).
    async fn backfill_all(self: &Arc<Self>) {
        let owed: Vec<(String, Option<HistoryCursor>, u64)> = {
            let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            seen.iter()
                .filter_map(|(g, s)| s.resume.clone().map(|r| (g.clone(), r, s.gaps)))
                .collect()
        };
        for (group_id, cursor, gaps) in owed {
            let group = self.group(&group_id);
            match self.history_parts(&group, cursor.as_ref()).await {
                Ok(parts) => {
                    for p in parts {
                        self.deliver_message(p, true).await;
                    }
                    let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(s) = seen.get_mut(&group_id)
                        && s.gaps == gaps
                    {
                        s.resume = None;
                    }
                }
                Err(e) => {
                    self.emit(AdapterEvent::Problem {
                        message: format!(
                            "backfill of {group} failed (retried on the next connection): {e}"
                        ),
                    })
                    .await
                }
            }
        }
    }

    /// Fetch media, then hand the message on — once per message id.
    async fn deliver_message(&self, parts: MessageParts, from_history: bool) {
        if !self.claim(&parts.group_id, &parts.message_id) {
            return;
        }
        let message = self.complete(parts, from_history).await;
        self.advance(&message.group.id, message.seq, &message.message_id);
        for m in &message.media {
            if let Err(reason) = &m.content {
                self.emit(AdapterEvent::MediaRefused {
                    group: message.group.clone(),
                    message_id: message.message_id.clone(),
                    what: m
                        .name
                        .clone()
                        .or_else(|| m.url.clone())
                        .unwrap_or_else(|| format!("{:?}", m.kind)),
                    reason: reason.clone(),
                })
                .await;
            }
        }
        self.emit(AdapterEvent::Message(Box::new(message))).await;
    }

    /// Turn parsed parts into a message, fetching every media item now.
    async fn complete(&self, parts: MessageParts, from_history: bool) -> ChatMessage {
        let mut media = Vec::new();
        for seg in &parts.segments {
            let kind = match seg.kind.as_str() {
                "image" => MediaKind::Image,
                "file" => MediaKind::File,
                "record" => MediaKind::Record,
                "video" => MediaKind::Video,
                _ => continue,
            };
            media.push(self.fetch_segment(&parts.group_id, kind, seg).await);
        }
        ChatMessage {
            group: self.group(&parts.group_id),
            message_id: parts.message_id,
            seq: parts.seq,
            sender: parts.sender,
            posted_at: parts.time,
            text: cq::plain_text(&parts.segments),
            segments: parts.segments,
            raw: parts.raw,
            media,
            from_history,
        }
    }

    async fn fetch_segment(&self, group_id: &str, kind: MediaKind, seg: &cq::Segment) -> MediaItem {
        let name = seg.get("name").or_else(|| seg.get("file"));
        let file_id = seg.get("file_id");
        let size = seg
            .get("file_size")
            .or_else(|| seg.get("size"))
            .and_then(|s| s.parse().ok());
        let mut item = MediaItem {
            kind,
            name,
            url: seg.get("url").filter(|u| u.starts_with("http")),
            file_id: file_id.clone(),
            size,
            content: Err("not fetched".into()),
        };
        if size.is_some_and(|s| s > self.cfg.media_max_bytes) {
            item.content = Err(format!(
                "declared size {} bytes is over the {}-byte limit",
                size.unwrap_or(0),
                self.cfg.media_max_bytes
            ));
            return item;
        }
        if item.url.is_none() && kind == MediaKind::File {
            match self.file_url(group_id, seg).await {
                Ok(FileSource::Url(u)) => item.url = Some(u),
                Ok(FileSource::Bytes(b)) => {
                    item.content = if b.len() as u64 > self.cfg.media_max_bytes {
                        Err(format!("over the {}-byte limit", self.cfg.media_max_bytes))
                    } else {
                        Ok(b)
                    };
                    return item;
                }
                Err(e) => {
                    item.content = Err(format!("no download URL: {e}"));
                    return item;
                }
            }
        }
        item.content = match &item.url {
            Some(u) => self.fetcher.fetch(u).await.map_err(|e| e.to_string()),
            None => Err("the segment has no URL".into()),
        };
        item
    }

    /// Where a `file` segment's bytes can be had: `get_group_file_url` (NapCat, LLOneBot,
    /// go-cqhttp), else `get_file` (its `url`, or its `base64`).
    async fn file_url(
        &self,
        group_id: &str,
        seg: &cq::Segment,
    ) -> Result<FileSource, AdapterError> {
        let file_id = seg
            .get("file_id")
            .or_else(|| seg.get("file"))
            .ok_or_else(|| AdapterError::Protocol("file segment without file_id".into()))?;
        let mut params = json!({"group_id": id_param(group_id), "file_id": file_id});
        if let Some(busid) = seg.get("busid") {
            params["busid"] = id_param(&busid);
        }
        if let Ok(v) = self.call_retry("get_group_file_url", params).await
            && let Some(u) = v.get("url").and_then(Value::as_str)
        {
            return Ok(FileSource::Url(u.to_string()));
        }
        let v = self
            .call_retry("get_file", json!({"file_id": file_id}))
            .await?;
        if let Some(u) = v.get("url").and_then(Value::as_str) {
            return Ok(FileSource::Url(u.to_string()));
        }
        if let Some(b) = v.get("base64").and_then(Value::as_str) {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b)
                .map_err(|e| AdapterError::Protocol(format!("get_file base64: {e}")))?;
            return Ok(FileSource::Bytes(bytes));
        }
        // A local `file` path on the implementation's machine is never read: a path from a
        // message never becomes a path on our disk.
        Err(AdapterError::Protocol(
            "get_file gave neither url nor base64".into(),
        ))
    }

    /// Page `get_group_msg_history` backwards until `after` (or the start of what the
    /// implementation keeps); returns parts oldest first, without the cursor message itself.
    async fn history_parts(
        &self,
        group: &GroupRef,
        after: Option<&HistoryCursor>,
    ) -> Result<Vec<MessageParts>, AdapterError> {
        let count = self.cfg.history_page;
        let mut pages: Vec<Vec<MessageParts>> = Vec::new();
        let mut ids: HashSet<String> = HashSet::new();
        let mut anchor: Option<(Option<i64>, String)> = None;
        for _ in 0..MAX_HISTORY_PAGES {
            let mut params = json!({"group_id": id_param(&group.id), "count": count});
            match self.cfg.history {
                HistoryDialect::Napcat => {
                    params["message_seq"] = json!(anchor.as_ref().and_then(|a| a.0).unwrap_or(0));
                    params["reverseOrder"] = json!(false);
                }
                HistoryDialect::Lagrange => {
                    if let Some((_, id)) = &anchor {
                        params["message_id"] = id_param(id);
                    }
                }
            }
            let data = self.call_retry("get_group_msg_history", params).await?;
            let items: Vec<MessageParts> = data
                .get("messages")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| {
                            let raw = serde_json::to_vec(v).unwrap_or_default();
                            event::message_parts(v, &raw)
                        })
                        .collect()
                })
                .unwrap_or_default();
            let fresh: Vec<MessageParts> = items
                .iter()
                .filter(|m| !ids.contains(&m.message_id))
                .cloned()
                .collect();
            if fresh.is_empty() {
                break;
            }
            let mut reached = false;
            let mut page = Vec::new();
            for m in fresh {
                let at_or_before_cursor = match after {
                    Some(c) => {
                        m.message_id == c.message_id
                            || matches!((c.seq, m.seq), (Some(a), Some(b)) if b <= a)
                    }
                    None => false,
                };
                if at_or_before_cursor {
                    reached = true;
                    continue;
                }
                ids.insert(m.message_id.clone());
                page.push(m);
            }
            // The oldest message of this page anchors the next request.
            let oldest = items
                .iter()
                .min_by_key(|m| m.seq.unwrap_or(i64::MAX))
                .or(items.first());
            let next_anchor = oldest.map(|m| (m.seq, m.message_id.clone()));
            pages.push(page);
            if reached || next_anchor == anchor || items.len() < count as usize / 2 {
                break;
            }
            anchor = next_anchor;
            if let Some((Some(seq), _)) = &anchor {
                if *seq <= 1 {
                    break;
                }
                // NapCat includes the anchor message itself: step past it.
                if self.cfg.history == HistoryDialect::Napcat {
                    anchor = Some((Some(seq - 1), String::new()));
                }
            }
        }
        let mut out: Vec<MessageParts> = pages.into_iter().rev().flatten().collect();
        out.sort_by_key(|m| m.seq.unwrap_or(i64::MAX));
        Ok(out)
    }

    async fn handle(self: &Arc<Self>, parsed: Parsed) {
        match parsed {
            Parsed::GroupMessage(parts) => self.deliver_message(parts, false).await,
            Parsed::GroupIncrease {
                group_id,
                user_id,
                self_id,
            } => {
                let group = self.group(&group_id);
                let me = self_id.or_else(|| self.self_id());
                if me.as_deref() == Some(user_id.as_str()) {
                    self.track(&group_id);
                    self.emit(AdapterEvent::Joined {
                        group,
                        how: "the bot account was added to the group".into(),
                    })
                    .await;
                } else {
                    self.emit(AdapterEvent::MemberJoined { group, user_id })
                        .await;
                }
            }
            Parsed::GroupDecrease {
                group_id,
                user_id,
                operator_id,
                sub_type,
                self_id,
            } => {
                let group = self.group(&group_id);
                let me = self_id.or_else(|| self.self_id());
                let event = match sub_type.as_str() {
                    // NapCat reports a dismissed group as `disband`; others as the owner leaving
                    // with the bot's own id.
                    "disband" | "dismiss" => AdapterEvent::GroupDismissed { group },
                    "kick_me" => AdapterEvent::BotRemoved {
                        group,
                        operator: operator_id,
                    },
                    _ if me.as_deref() == Some(user_id.as_str()) => AdapterEvent::BotRemoved {
                        group,
                        operator: operator_id,
                    },
                    _ => AdapterEvent::MemberLeft {
                        group,
                        user_id,
                        kicked: sub_type == "kick",
                    },
                };
                self.emit(event).await;
            }
            Parsed::GroupBan {
                group_id,
                user_id,
                duration,
            } => {
                let group = self.group(&group_id);
                self.emit(AdapterEvent::Muted {
                    group,
                    user_id,
                    duration_s: duration,
                })
                .await;
            }
            Parsed::GroupInvite {
                group_id,
                inviter,
                flag,
                sub_type,
                self_id,
            } => {
                if let Some(id) = self_id {
                    self.set_self_id(&id);
                }
                let group = self.group(&group_id);
                if sub_type != "invite" {
                    return; // someone asking to join a group the bot administers: not ours
                }
                let approve = self.submitted.contains(&group);
                let mut params = json!({"flag": flag, "sub_type": "invite", "type": "invite", "approve": approve});
                if !approve {
                    params["reason"] = json!("not a group this account was asked to watch");
                }
                match self.call("set_group_add_request", params).await {
                    Ok(_) if approve => {
                        self.track(&group_id);
                        self.emit(AdapterEvent::Joined {
                            group,
                            how: format!(
                                "accepted the invitation from {}",
                                inviter.as_deref().unwrap_or("an unknown member")
                            ),
                        })
                        .await
                    }
                    Ok(_) => {
                        self.emit(AdapterEvent::InviteDeclined { group, inviter })
                            .await
                    }
                    Err(e) => {
                        self.emit(AdapterEvent::Problem {
                            message: format!("answering the invitation to {group} failed: {e}"),
                        })
                        .await
                    }
                }
            }
            Parsed::Ignored(_) | Parsed::ActionAnswer { .. } => {}
            Parsed::Other(why) => {
                tracing::debug!(adapter = %self.cfg.name, "unparsed frame: {why}");
            }
        }
    }
}

enum FileSource {
    Url(String),
    Bytes(Vec<u8>),
}

/// The one ordered consumer of incoming frames.
async fn process_frames(core: Arc<Core>, mut frames: mpsc::UnboundedReceiver<Parsed>) {
    while let Some(parsed) = frames.recv().await {
        core.handle(parsed).await;
    }
}

/// Capped exponential backoff with jitter, so many adapters do not reconnect in lock-step.
struct Backoff {
    attempt: u32,
    cap: Duration,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let base = Duration::from_millis(200).saturating_mul(1u32 << self.attempt.min(16));
        self.attempt += 1;
        let d = base.min(self.cap);
        d.mul_f64(0.5 + rand::random::<f64>() * 0.5)
    }
    fn reset(&mut self) {
        self.attempt = 0;
    }
}

fn ws_request(
    url: &str,
    token: Option<&str>,
) -> Result<tokio_tungstenite::tungstenite::handshake::client::Request, AdapterError> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = url
        .into_client_request()
        .map_err(|e| AdapterError::Protocol(format!("{url}: {e}")))?;
    if let Some(t) = token {
        let value = format!("Bearer {t}").parse().map_err(|_| {
            AdapterError::Protocol("access_token is not a valid header value".into())
        })?;
        req.headers_mut().insert("Authorization", value);
    }
    Ok(req)
}

async fn connect(
    core: &Core,
    url: &str,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    AdapterError,
> {
    let req = ws_request(url, core.cfg.access_token.as_deref())?;
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(event::MAX_FRAME_BYTES))
        .max_frame_size(Some(event::MAX_FRAME_BYTES));
    let (ws, _) = tokio::time::timeout(
        core.timeout(),
        tokio_tungstenite::connect_async_with_config(req, Some(config), false),
    )
    .await
    .map_err(|_| AdapterError::NotConnected(format!("{url}: connect timed out")))?
    .map_err(|e| AdapterError::NotConnected(format!("{url}: {e}")))?;
    Ok(ws)
}

/// Run one WebSocket connection: install its action link (if it carries actions), start the
/// post-connect work, pump frames until it closes, then withdraw the link.
async fn serve_socket<St, Si, M, E1, E2>(
    core: &Arc<Core>,
    stream: St,
    sink: Si,
    role: Role,
    to_message: fn(String) -> M,
    to_frame: fn(M) -> Frame,
) -> String
where
    St: futures_util::Stream<Item = Result<M, E1>> + Unpin + Send,
    Si: futures_util::Sink<M, Error = E2> + Unpin + Send + 'static,
    M: Send + 'static,
    E1: std::fmt::Display,
{
    let frames: Arc<dyn FrameSink> = core.clone();
    let mut installed: Option<Arc<Link>> = None;
    // In HTTP mode the actions link is permanent: an event socket coming up is the reconnect.
    let announce =
        role.carries_actions() || (core.cfg.mode == OneBotMode::Http && role.carries_events());
    let reason = transport::pump(stream, sink, role, to_message, to_frame, frames, |link| {
        if let Some(l) = &link {
            core.set_link(l.clone());
        }
        installed = link;
        if announce {
            let c = core.clone();
            tokio::spawn(async move { c.on_connected().await });
        }
    })
    .await;
    if let Some(l) = &installed {
        core.clear_link(l);
    }
    if role.carries_events() {
        core.mark_gap();
    }
    reason
}

/// Forward WebSocket: keep a connection to the implementation, reconnecting forever.
async fn run_forward(core: Arc<Core>) {
    let mut backoff = Backoff {
        attempt: 0,
        cap: Duration::from_millis(core.cfg.reconnect_max_ms),
    };
    loop {
        let result = match (&core.cfg.url, &core.cfg.api_url, &core.cfg.event_url) {
            (Some(url), _, _) => match connect(&core, url).await {
                Ok(ws) => {
                    backoff.reset();
                    let (sink, stream) = ws.split();
                    Ok(serve_socket(&core, stream, sink, Role::Universal, tung_out, tung_in).await)
                }
                Err(e) => Err(e),
            },
            (None, Some(api), Some(ev)) => {
                match (connect(&core, api).await, connect(&core, ev).await) {
                    (Ok(api_ws), Ok(ev_ws)) => {
                        backoff.reset();
                        let (api_sink, api_stream) = api_ws.split();
                        let (ev_sink, ev_stream) = ev_ws.split();
                        // Either socket closing ends both: reconnect them together. The event
                        // socket's future may be dropped unfinished, so mark the gap here.
                        let ended = tokio::select! {
                            r = serve_socket(&core, api_stream, api_sink, Role::Api, tung_out, tung_in) => format!("api: {r}"),
                            r = serve_socket(&core, ev_stream, ev_sink, Role::Event, tung_out, tung_in) => format!("event: {r}"),
                        };
                        core.mark_gap();
                        Ok(ended)
                    }
                    (Err(e), _) | (_, Err(e)) => Err(e),
                }
            }
            _ => Err(AdapterError::Protocol(
                "forward-ws needs url, or api_url and event_url".into(),
            )),
        };
        let reason = match result {
            Ok(r) => r,
            Err(e) => e.to_string(),
        };
        core.emit(AdapterEvent::Disconnected { reason }).await;
        tokio::time::sleep(backoff.next()).await;
    }
}

/// Reverse WebSocket: the implementation connects to us. Returns the server task.
async fn run_reverse_server(
    core: Arc<Core>,
) -> Result<impl std::future::Future<Output = ()> + Send + 'static, AdapterError> {
    use axum::extract::ws::WebSocketUpgrade;
    use axum::extract::{Query, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::get;

    let listen = core.cfg.listen.clone().unwrap_or_default();
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| AdapterError::Protocol(format!("reverse WebSocket on {listen}: {e}")))?;

    async fn accept(
        State((core, path_role)): State<(Arc<Core>, Option<Role>)>,
        headers: HeaderMap,
        Query(query): Query<HashMap<String, String>>,
        ws: WebSocketUpgrade,
    ) -> axum::response::Response {
        // OneBot v11 ws-reverse: `Authorization: Bearer <token>` (or `Token <token>`), or the
        // `access_token` query parameter; `X-Self-ID` names the bot account.
        if let Some(expected) = core.cfg.access_token.as_deref() {
            let given = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("Token "))
                })
                .map(str::to_string)
                .or_else(|| query.get("access_token").cloned());
            if given.as_deref() != Some(expected) {
                return (StatusCode::UNAUTHORIZED, "bad or missing access token").into_response();
            }
        }
        let Some(self_id) = headers
            .get("x-self-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
        else {
            return (StatusCode::BAD_REQUEST, "missing X-Self-ID").into_response();
        };
        let role = path_role.unwrap_or_else(|| {
            match headers.get("x-client-role").and_then(|v| v.to_str().ok()) {
                Some(r) if r.eq_ignore_ascii_case("api") => Role::Api,
                Some(r) if r.eq_ignore_ascii_case("event") => Role::Event,
                _ => Role::Universal,
            }
        });
        // In HTTP mode actions go over HTTP: a universal socket only brings events.
        let role = if core.cfg.mode == OneBotMode::Http {
            Role::Event
        } else {
            role
        };
        core.set_self_id(&self_id);
        ws.max_message_size(event::MAX_FRAME_BYTES)
            .on_upgrade(move |socket| async move {
                let (sink, stream) = socket.split();
                let reason = serve_socket(&core, stream, sink, role, ax_out, ax_in).await;
                core.emit(AdapterEvent::Disconnected { reason }).await;
            })
    }

    let app = axum::Router::new()
        .route("/", get(accept).with_state((core.clone(), None)))
        .route("/ws", get(accept).with_state((core.clone(), None)))
        .route(
            "/onebot/v11/ws",
            get(accept).with_state((core.clone(), None)),
        )
        .route(
            "/api",
            get(accept).with_state((core.clone(), Some(Role::Api))),
        )
        .route(
            "/event",
            get(accept).with_state((core.clone(), Some(Role::Event))),
        );
    Ok(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("reverse WebSocket server stopped: {e}");
        }
    })
}

#[async_trait::async_trait]
impl ChatAdapter for OneBotAdapter {
    fn name(&self) -> &str {
        &self.core.cfg.name
    }

    fn platform(&self) -> Platform {
        Platform::Qq
    }

    fn account(&self) -> Option<String> {
        self.core.self_id()
    }

    fn resolve(&self, link: &str) -> Result<GroupRef, AdapterError> {
        resolve_qq_link(link).ok_or_else(|| AdapterError::BadLink(link.chars().take(200).collect()))
    }

    async fn join(&self, group: &GroupRef) -> Result<JoinOutcome, AdapterError> {
        // From now on an invitation to this group is accepted.
        self.core.submitted.add(group.clone());
        let list = self.core.call_retry("get_group_list", json!({})).await?;
        let member = list.as_array().is_some_and(|a| {
            a.iter()
                .any(|g| event::id_of(g.get("group_id")).as_deref() == Some(group.id.as_str()))
        });
        if member {
            self.core.track(&group.id);
            return Ok(JoinOutcome::Joined);
        }
        let account = self
            .core
            .self_id()
            .unwrap_or_else(|| "the bot account".into());
        Ok(JoinOutcome::AwaitingInvite {
            instructions: format!(
                "OneBot cannot join a group by itself. Have a member of QQ group {} invite QQ account {account}: leakwatch accepts the invitation because the group was submitted. Or add the account by hand; capture starts when it sees itself join.",
                group.id
            ),
        })
    }

    async fn group_info(&self, group: &GroupRef) -> Result<GroupInfo, AdapterError> {
        let v = self
            .core
            .call_retry(
                "get_group_info",
                json!({"group_id": id_param(&group.id), "no_cache": true}),
            )
            .await?;
        Ok(GroupInfo {
            group: group.clone(),
            name: v
                .get("group_name")
                .and_then(Value::as_str)
                .map(str::to_string),
            member_count: v.get("member_count").and_then(Value::as_u64),
            max_member_count: v.get("max_member_count").and_then(Value::as_u64),
            raw: serde_json::to_vec(&v).unwrap_or_default(),
        })
    }

    async fn members(&self, group: &GroupRef) -> Result<Vec<Member>, AdapterError> {
        let v = self
            .core
            .call_retry(
                "get_group_member_list",
                json!({"group_id": id_param(&group.id)}),
            )
            .await?;
        let s = |m: &Value, k: &str| {
            m.get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
                .filter(|x| !x.is_empty())
        };
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| {
                        Some(Member {
                            user_id: event::id_of(m.get("user_id"))?,
                            nickname: s(m, "nickname"),
                            card: s(m, "card"),
                            role: s(m, "role"),
                            join_time: m.get("join_time").and_then(Value::as_i64),
                            last_sent_time: m.get("last_sent_time").and_then(Value::as_i64),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn history(
        &self,
        group: &GroupRef,
        after: Option<&HistoryCursor>,
    ) -> Result<Vec<ChatMessage>, AdapterError> {
        let parts = self.core.history_parts(group, after).await?;
        let mut out = Vec::with_capacity(parts.len());
        for p in parts {
            self.core.claim(&p.group_id, &p.message_id);
            self.core.advance(&p.group_id, p.seq, &p.message_id);
            out.push(self.core.complete(p, true).await);
        }
        Ok(out)
    }

    async fn probe(&self, group: &GroupRef) -> Result<GroupStatus, AdapterError> {
        let list = self.core.call_retry("get_group_list", json!({})).await?;
        let member = list.as_array().is_some_and(|a| {
            a.iter()
                .any(|g| event::id_of(g.get("group_id")).as_deref() == Some(group.id.as_str()))
        });
        match self
            .core
            .call(
                "get_group_info",
                json!({"group_id": id_param(&group.id), "no_cache": true}),
            )
            .await
        {
            Ok(v) if member => Ok(GroupStatus::Active {
                member_count: v.get("member_count").and_then(Value::as_u64),
            }),
            Ok(_) => Ok(GroupStatus::NotMember),
            Err(AdapterError::Action { .. }) => Ok(GroupStatus::Gone),
            Err(e) => Err(e),
        }
    }

    fn take_events(&self) -> Option<mpsc::Receiver<AdapterEvent>> {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// A QQ group number (5–12 digits), `qq:<number>`, or a QQ group invite link
/// (`https://qm.qq.com/cgi-bin/qm/qr?...&group_code=<number>`, `mqqapi://...group_code=...`,
/// `https://jq.qq.com/?_wv=...&k=...` cannot be resolved offline and is refused).
pub fn resolve_qq_link(link: &str) -> Option<GroupRef> {
    let s = link.trim();
    let digits = |x: &str| -> Option<String> {
        let x = x.trim();
        (x.len() >= 5
            && x.len() <= 12
            && x.bytes().all(|b| b.is_ascii_digit())
            && !x.starts_with('0'))
        .then(|| x.to_string())
    };
    if let Some(id) = digits(s) {
        return Some(GroupRef::qq(id));
    }
    if let Some(rest) = s.strip_prefix("qq:").or_else(|| s.strip_prefix("QQ:")) {
        return digits(rest).map(GroupRef::qq);
    }
    let url = url::Url::parse(s).ok()?;
    let host_ok = match url.scheme() {
        "https" | "http" => url
            .host_str()
            .is_some_and(|h| h == "qm.qq.com" || h.ends_with(".qq.com")),
        "mqqapi" => true,
        _ => false,
    };
    if !host_ok {
        return None;
    }
    url.query_pairs()
        .find(|(k, _)| k == "group_code" || k == "groupUin" || k == "uin")
        .and_then(|(_, v)| digits(&v))
        .map(GroupRef::qq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qq_links() {
        assert_eq!(
            resolve_qq_link("123456789"),
            Some(GroupRef::qq("123456789"))
        );
        assert_eq!(
            resolve_qq_link(" qq:80000001 "),
            Some(GroupRef::qq("80000001"))
        );
        assert_eq!(
            resolve_qq_link("https://qm.qq.com/cgi-bin/qm/qr?k=abc&group_code=80000001&authKey=x"),
            Some(GroupRef::qq("80000001"))
        );
        assert_eq!(
            resolve_qq_link(
                "mqqapi://card/show_pslcard?src_type=internal&uin=80000002&card_type=group"
            ),
            Some(GroupRef::qq("80000002"))
        );
        for bad in [
            "",
            "1234",
            "0123456",
            "12345678901234",
            "https://evil.example/?group_code=80000001",
            "t.me/foo",
            "qq:abc",
            "file:///etc/passwd",
        ] {
            assert_eq!(resolve_qq_link(bad), None, "{bad}");
        }
    }

    #[test]
    fn seen_set_claims_once_and_is_bounded() {
        let mut s = SeenSet::new();
        assert!(s.claim("a"));
        assert!(!s.claim("a"));
        for i in 0..(SEEN_PER_GROUP + 10) {
            s.claim(&i.to_string());
        }
        assert!(s.ids.len() <= SEEN_PER_GROUP);
        s.advance(Some(5), "x");
        s.advance(Some(3), "y");
        assert_eq!(s.last.as_ref().map(|c| c.message_id.as_str()), Some("x"));
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let mut b = Backoff {
            attempt: 0,
            cap: Duration::from_secs(2),
        };
        let first = b.next();
        assert!(first <= Duration::from_millis(200) && first >= Duration::from_millis(100));
        for _ in 0..30 {
            assert!(b.next() <= Duration::from_secs(2));
        }
        b.reset();
        assert!(b.next() <= Duration::from_millis(200));
    }
}
