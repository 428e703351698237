//! The Telegram adapter: leakwatch's way into Telegram groups, as a Bot API bot that staff add
//! to the groups intake submitted.
//!
//! What the Bot API allows shapes everything here. A bot cannot join by link, so `join` answers
//! [`JoinOutcome::AwaitingInvite`] with instructions ("add @bot to the group"), and the group
//! counts as joined once the bot sees itself added (`my_chat_member`) or any message from it.
//! A bot cannot read history, so [`ChatAdapter::history`] returns nothing: every message the
//! bot sees is delivered live, at once. It cannot list members either (`members` is an error,
//! so capture records group info alone). With privacy mode on (BotFather's default) a bot sees
//! only commands in groups: `getMe` tells, and the adapter warns.
//!
//! One task long-polls `getUpdates` and handles each batch in order before asking for the next,
//! so an update is confirmed to Telegram (by the next offset) only after it was handed to
//! capture; the offset survives failed polls, which are retried with capped backoff (or
//! Telegram's `retry_after`). The offset is not kept across restarts: after one, Telegram
//! delivers again what was never confirmed (capture dedupes). A crash between hand-off and the
//! durable append loses that update: the Bot API has no history to backfill it from.
//!
//! Which chats are captured: only submitted ones. A chat maps to a submitted group by its public
//! username (`@name`), or — for a group submitted by private invite link (`+hash`) — by the
//! primary invite link `getChat` shows to administrators. The bot leaves any other group or
//! channel it is added to or hears from (and reports `InviteDeclined`): holding messages of
//! groups nobody asked to watch is personal data leakwatch has no reason to keep. Private chats
//! with the bot are ignored.
//!
//! Media (photos, documents, video, audio) are fetched at once through `getFile` and the Bot
//! API's file URL, built from the configured `api_url` — never from message content — with the
//! smaller of `media_max_bytes` and the Bot API's 20 MB limit; what cannot be fetched becomes a
//! `media_refused` entry with its reason. Edits are captured as messages of their own
//! (`<id>:edit:<edit_date>`), so the first version stays in evidence.

pub mod api;
pub mod update;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use super::onebot::cq::{self, Segment};
use super::{
    AdapterError, AdapterEvent, ChatAdapter, ChatMessage, GroupInfo, GroupRef, GroupStatus,
    HistoryCursor, JoinOutcome, MediaItem, Member, Platform, SubmittedGroups,
};
use crate::config::TelegramConfig;
use api::{
    BOT_API_FILE_LIMIT, Backoff, BotApi, BotIdentity, BotToken, ChatKey, Poller, RawUpdate,
    TelegramError, over_cap, wait_after,
};
use update::{Attachment, ChatRef, GroupUpdate, MessageParts};

/// The update kinds asked for.
const ALLOWED_UPDATES: &[&str] = &[
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "my_chat_member",
];
/// Capacity of the event channel to capture (back-pressure beyond it).
const EVENT_QUEUE: usize = 1024;
/// Message ids remembered per chat for the live dedupe.
const SEEN_PER_CHAT: usize = 20_000;
/// Chats remembered as declined (their later messages are dropped without another lookup).
const DECLINED_MAX: usize = 10_000;

impl From<TelegramError> for AdapterError {
    fn from(e: TelegramError) -> AdapterError {
        match e {
            TelegramError::Api {
                method,
                code,
                description,
            } => AdapterError::Action {
                action: method,
                retcode: code,
                message: description,
            },
            other => AdapterError::Protocol(other.to_string()),
        }
    }
}

struct ChatState {
    group: GroupRef,
    joined: bool,
}

#[derive(Default)]
struct Chats {
    by_id: HashMap<i64, ChatState>,
    by_group: HashMap<GroupRef, i64>,
    declined: HashSet<i64>,
}

struct SeenIds {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl SeenIds {
    fn claim(&mut self, id: &str) -> bool {
        if !self.ids.insert(id.to_string()) {
            return false;
        }
        self.order.push_back(id.to_string());
        if self.order.len() > SEEN_PER_CHAT
            && let Some(old) = self.order.pop_front()
        {
            self.ids.remove(&old);
        }
        true
    }
}

struct Core {
    cfg: TelegramConfig,
    api: Arc<BotApi>,
    events: mpsc::Sender<AdapterEvent>,
    submitted: Arc<SubmittedGroups>,
    me: RwLock<Option<BotIdentity>>,
    chats: Mutex<Chats>,
    seen: Mutex<HashMap<i64, SeenIds>>,
}

pub struct TelegramAdapter {
    core: Arc<Core>,
    events: Mutex<Option<mpsc::Receiver<AdapterEvent>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for TelegramAdapter {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl TelegramAdapter {
    /// Start the adapter: one task long-polls the Bot API. Fails only on a bad `api_url`;
    /// an unreachable API is retried in the background.
    pub fn start(
        cfg: TelegramConfig,
        token: BotToken,
        submitted: Arc<SubmittedGroups>,
    ) -> Result<TelegramAdapter, TelegramError> {
        let api = Arc::new(BotApi::new(&cfg.api_url, token)?);
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let core = Arc::new(Core {
            cfg,
            api,
            events: events_tx,
            submitted,
            me: RwLock::new(None),
            chats: Mutex::new(Chats::default()),
            seen: Mutex::new(HashMap::new()),
        });
        let tasks = vec![tokio::spawn(run(core.clone()))];
        Ok(TelegramAdapter {
            core,
            events: Mutex::new(Some(events_rx)),
            tasks,
        })
    }

    /// The bot's username, once `getMe` answered.
    pub fn username(&self) -> Option<String> {
        self.core.me().and_then(|m| m.username)
    }
}

/// The long-polling loop: who am I, then updates forever.
async fn run(core: Arc<Core>) {
    let mut backoff = Backoff::new(Duration::from_millis(core.cfg.reconnect_max_ms));
    let mut last_problem = String::new();
    loop {
        match core.api.get_me().await {
            Ok(me) => {
                if !me.reads_all_group_messages {
                    core.emit(AdapterEvent::Problem {
                        message: "the Telegram bot has privacy mode on: in groups it sees only commands and replies. Disable it with @BotFather (/setprivacy), or make the bot an administrator".into(),
                    })
                    .await;
                }
                *core.me.write().unwrap_or_else(|p| p.into_inner()) = Some(me);
                break;
            }
            Err(e) => {
                let message = format!("getMe failed (retrying): {e}");
                if message != last_problem {
                    core.emit(AdapterEvent::Problem {
                        message: message.clone(),
                    })
                    .await;
                    last_problem = message;
                }
                tokio::time::sleep(wait_after(&e, &mut backoff)).await;
            }
        }
    }
    backoff.reset();
    let mut poller = Poller::new(core.api.clone(), core.cfg.poll_timeout_s, ALLOWED_UPDATES);
    let mut up: Option<bool> = None;
    loop {
        match poller.poll().await {
            Ok(updates) => {
                backoff.reset();
                if up != Some(true) {
                    up = Some(true);
                    core.emit(AdapterEvent::Connected).await;
                }
                for u in updates {
                    core.handle(u).await;
                }
            }
            Err(e) => {
                if up != Some(false) {
                    up = Some(false);
                    core.emit(AdapterEvent::Disconnected {
                        reason: e.to_string(),
                    })
                    .await;
                } else {
                    tracing::debug!(adapter = %core.cfg.name, "getUpdates failed again: {e}");
                }
                tokio::time::sleep(wait_after(&e, &mut backoff)).await;
            }
        }
    }
}

fn present(status: &str, is_member: Option<bool>) -> bool {
    matches!(status, "member" | "administrator" | "creator")
        || (status == "restricted" && is_member != Some(false))
}

/// `+hash` of an invite link (`https://t.me/+hash`, `https://t.me/joinchat/hash`).
fn invite_hash(link: &str) -> Option<String> {
    let norm = crate::intake::normalise_link(link).ok()?;
    (norm.group.platform == Platform::Telegram && norm.group.id.starts_with('+'))
        .then_some(norm.group.id)
}

impl Core {
    fn me(&self) -> Option<BotIdentity> {
        self.me.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn emit(&self, event: AdapterEvent) {
        let _ = self.events.send(event).await;
    }

    fn map_chat(&self, chat_id: i64, group: &GroupRef) {
        let mut chats = self.chats.lock().unwrap_or_else(|p| p.into_inner());
        chats.declined.remove(&chat_id);
        chats.by_group.insert(group.clone(), chat_id);
        chats.by_id.entry(chat_id).or_insert_with(|| ChatState {
            group: group.clone(),
            joined: false,
        });
    }

    fn mapped(&self, chat_id: i64) -> Option<GroupRef> {
        let chats = self.chats.lock().unwrap_or_else(|p| p.into_inner());
        chats.by_id.get(&chat_id).map(|c| c.group.clone())
    }

    /// Mark a chat joined; true when it was not before.
    fn set_joined(&self, chat_id: i64, joined: bool) -> bool {
        let mut chats = self.chats.lock().unwrap_or_else(|p| p.into_inner());
        match chats.by_id.get_mut(&chat_id) {
            Some(c) if c.joined != joined => {
                c.joined = joined;
                true
            }
            _ => false,
        }
    }

    fn joined_chat_of(&self, group: &GroupRef) -> Option<(i64, bool)> {
        let chats = self.chats.lock().unwrap_or_else(|p| p.into_inner());
        let id = *chats.by_group.get(group)?;
        Some((id, chats.by_id.get(&id).is_some_and(|c| c.joined)))
    }

    /// How to address a group with the Bot API: its chat id once known, else a public
    /// group's `@username`.
    fn key_for(&self, group: &GroupRef) -> Result<ChatKey, AdapterError> {
        if let Some((id, _)) = self.joined_chat_of(group) {
            return Ok(ChatKey::Id(id));
        }
        match group.id.strip_prefix('@') {
            Some(name) => Ok(ChatKey::Username(name.to_string())),
            None => Err(AdapterError::Protocol(format!(
                "{group} is a private invite link and the bot has not been added to its group yet, so its chat id is unknown"
            ))),
        }
    }

    /// The submitted group a chat belongs to, looking it up when it is new. `Ok(None)`: not
    /// submitted. `Err`: could not tell (the lookup failed).
    async fn group_of(&self, chat: &ChatRef, fresh: bool) -> Result<Option<GroupRef>, String> {
        if let Some(g) = self.mapped(chat.id) {
            return Ok(Some(g));
        }
        if !fresh
            && self
                .chats
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .declined
                .contains(&chat.id)
        {
            return Ok(None);
        }
        if let Some(name) = &chat.username {
            let g = GroupRef::telegram(format!("@{name}"));
            if self.submitted.contains(&g) {
                self.map_chat(chat.id, &g);
                return Ok(Some(g));
            }
        }
        // A private group submitted by invite link: only its primary invite link (shown to
        // administrators) ties the chat to the link.
        let info = match self.api.get_chat(&ChatKey::Id(chat.id)).await {
            Ok(info) => info,
            // Telegram's own answer (no such chat, no access): nothing ties it to a link.
            Err(TelegramError::Api { .. }) => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        let mut candidates = Vec::new();
        if let Some(name) = info.value.get("username").and_then(Value::as_str) {
            candidates.push(GroupRef::telegram(format!(
                "@{}",
                name.to_ascii_lowercase()
            )));
        }
        if let Some(hash) = info
            .value
            .get("invite_link")
            .and_then(Value::as_str)
            .and_then(invite_hash)
        {
            candidates.push(GroupRef::telegram(hash));
        }
        for g in candidates {
            if self.submitted.contains(&g) {
                self.map_chat(chat.id, &g);
                return Ok(Some(g));
            }
        }
        Ok(None)
    }

    /// Leave a chat nobody submitted, and say so.
    async fn decline(&self, chat: &ChatRef, by: Option<i64>) {
        {
            let mut chats = self.chats.lock().unwrap_or_else(|p| p.into_inner());
            if chats.declined.len() >= DECLINED_MAX {
                chats.declined.clear();
            }
            if !chats.declined.insert(chat.id) {
                return;
            }
        }
        if let Err(e) = self.api.leave_chat(chat.id).await {
            self.emit(AdapterEvent::Problem {
                message: format!("leaving chat {} (not submitted) failed: {e}", chat.id),
            })
            .await;
        }
        let id = match &chat.username {
            Some(u) => format!("@{u}"),
            None => chat.id.to_string(),
        };
        self.emit(AdapterEvent::InviteDeclined {
            group: GroupRef::telegram(id),
            inviter: by.map(|b| b.to_string()),
        })
        .await;
    }

    fn claim(&self, chat_id: i64, message_id: &str) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.entry(chat_id)
            .or_insert_with(|| SeenIds {
                ids: HashSet::new(),
                order: VecDeque::new(),
            })
            .claim(message_id)
    }

    async fn handle(&self, u: RawUpdate) {
        match update::classify(&u.value) {
            GroupUpdate::Message { parts, edited } => self.on_message(*parts, edited, u.raw).await,
            GroupUpdate::Membership {
                chat,
                by,
                status,
                is_member,
            } => self.on_membership(chat, by, &status, is_member).await,
            GroupUpdate::Other(kind) => {
                tracing::debug!(adapter = %self.cfg.name, "ignored a {kind} update")
            }
            GroupUpdate::Unreadable(why) => {
                self.emit(AdapterEvent::Problem {
                    message: format!(
                        "update {}: {why}",
                        u.update_id.map(|i| i.to_string()).unwrap_or("?".into())
                    ),
                })
                .await
            }
        }
    }

    async fn on_membership(
        &self,
        chat: ChatRef,
        by: Option<i64>,
        status: &str,
        is_member: Option<bool>,
    ) {
        if chat.is_private() {
            return; // a user blocked or unblocked the bot
        }
        if present(status, is_member) {
            match self.group_of(&chat, true).await {
                Ok(Some(group)) => {
                    if self.set_joined(chat.id, true) {
                        self.emit(AdapterEvent::Joined {
                            group,
                            how: format!(
                                "the bot was added to the chat ({status}){}",
                                by.map(|b| format!(" by user {b}")).unwrap_or_default()
                            ),
                        })
                        .await;
                    }
                }
                Ok(None) => self.decline(&chat, by).await,
                Err(e) => {
                    self.emit(AdapterEvent::Problem {
                        message: format!(
                            "the bot was added to chat {}, but whether it was submitted is unknown: {e}",
                            chat.id
                        ),
                    })
                    .await
                }
            }
        } else if let Some(group) = self.mapped(chat.id) {
            self.set_joined(chat.id, false);
            let me = self.me().map(|m| m.id);
            self.emit(AdapterEvent::BotRemoved {
                group,
                operator: by.filter(|b| Some(*b) != me).map(|b| b.to_string()),
            })
            .await;
        }
    }

    async fn on_message(&self, parts: MessageParts, edited: bool, raw: Vec<u8>) {
        if parts.chat.is_private() {
            return;
        }
        let group = match self.group_of(&parts.chat, false).await {
            Ok(Some(g)) => g,
            Ok(None) => return self.decline(&parts.chat, parts.sender_id).await,
            Err(e) => {
                return self
                    .emit(AdapterEvent::Problem {
                        message: format!(
                            "a message from chat {} was not captured: whether the chat was submitted is unknown: {e}",
                            parts.chat.id
                        ),
                    })
                    .await;
            }
        };
        if let Some(new_id) = parts.migrate_to {
            // The group became a supergroup: its messages continue under the new id.
            self.map_chat(new_id, &group);
            self.set_joined(new_id, true);
        }
        if self.set_joined(parts.chat.id, true) {
            self.emit(AdapterEvent::Joined {
                group: group.clone(),
                how: "the bot sees messages from the group".into(),
            })
            .await;
        }
        let me = self.me().map(|m| m.id);
        for user in &parts.new_members {
            if Some(*user) != me {
                self.emit(AdapterEvent::MemberJoined {
                    group: group.clone(),
                    user_id: user.to_string(),
                })
                .await;
            }
        }
        if let Some(user) = parts.left_member.filter(|u| Some(*u) != me) {
            self.emit(AdapterEvent::MemberLeft {
                group: group.clone(),
                user_id: user.to_string(),
                kicked: parts.sender_id.is_some_and(|s| s != user),
            })
            .await;
        }
        let message_id = match (edited, parts.edit_date) {
            (true, Some(at)) => format!("{}:edit:{at}", parts.message_id),
            (true, None) => format!("{}:edit", parts.message_id),
            (false, _) => parts.message_id.to_string(),
        };
        if !self.claim(parts.chat.id, &message_id) {
            return;
        }
        let message = self.complete(group, message_id, parts, raw).await;
        for m in &message.media {
            if let Err(reason) = &m.content {
                self.emit(AdapterEvent::MediaRefused {
                    group: message.group.clone(),
                    message_id: message.message_id.clone(),
                    what: m.name.clone().unwrap_or_else(|| format!("{:?}", m.kind)),
                    reason: reason.clone(),
                })
                .await;
            }
        }
        self.emit(AdapterEvent::Message(Box::new(message))).await;
    }

    /// Build the message, fetching every attachment now.
    async fn complete(
        &self,
        group: GroupRef,
        message_id: String,
        parts: MessageParts,
        raw: Vec<u8>,
    ) -> ChatMessage {
        let mut segments = Vec::new();
        if let Some(t) = &parts.text {
            segments.push(Segment::text(t));
        }
        let mut media = Vec::new();
        for a in &parts.attachments {
            segments.push(attachment_segment(a));
            media.push(self.fetch(a).await);
        }
        if segments.is_empty() {
            let what = if !parts.new_members.is_empty() {
                "new_chat_members"
            } else if parts.left_member.is_some() {
                "left_chat_member"
            } else {
                "service"
            };
            segments.push(Segment {
                kind: what.into(),
                data: BTreeMap::new(),
            });
        }
        ChatMessage {
            group,
            message_id,
            seq: Some(parts.message_id),
            sender: parts.sender,
            posted_at: parts.edit_date.or(parts.date),
            text: cq::plain_text(&segments),
            segments,
            raw,
            media,
            from_history: false,
        }
    }

    async fn fetch(&self, a: &Attachment) -> MediaItem {
        let cap = self.cfg.media_max_bytes.min(BOT_API_FILE_LIMIT);
        let content = match a.size {
            Some(size) if size > cap => {
                Err(format!("{} (declared in the message)", over_cap(size, cap)))
            }
            _ => self.api.download(&a.file_id, cap).await,
        };
        MediaItem {
            kind: a.kind,
            name: a.name.clone(),
            url: None,
            file_id: Some(a.file_id.clone()),
            size: a.size,
            content,
        }
    }
}

fn attachment_segment(a: &Attachment) -> Segment {
    let kind = match a.kind {
        super::MediaKind::Image => "image",
        super::MediaKind::File => "file",
        super::MediaKind::Record => "record",
        super::MediaKind::Video => "video",
    };
    let mut data = BTreeMap::new();
    data.insert("file_id".to_string(), Value::from(a.file_id.clone()));
    data.insert("telegram_field".to_string(), Value::from(a.field));
    let optional = [
        ("file_unique_id", a.file_unique_id.clone().map(Value::from)),
        ("name", a.name.clone().map(Value::from)),
        ("file_size", a.size.map(Value::from)),
        ("mime_type", a.mime_type.clone().map(Value::from)),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            data.insert(k.to_string(), v);
        }
    }
    Segment {
        kind: kind.into(),
        data,
    }
}

#[async_trait::async_trait]
impl ChatAdapter for TelegramAdapter {
    fn name(&self) -> &str {
        &self.core.cfg.name
    }

    fn platform(&self) -> Platform {
        Platform::Telegram
    }

    fn account(&self) -> Option<String> {
        self.core.me().map(|m| m.id.to_string())
    }

    /// The same links intake accepts (`t.me/name`, `t.me/+hash`, `@name`, ...).
    fn resolve(&self, link: &str) -> Result<GroupRef, AdapterError> {
        match crate::intake::normalise_link(link) {
            Ok(n) if n.group.platform == Platform::Telegram => Ok(n.group),
            _ => Err(AdapterError::BadLink(link.chars().take(200).collect())),
        }
    }

    async fn join(&self, group: &GroupRef) -> Result<JoinOutcome, AdapterError> {
        self.core.submitted.add(group.clone());
        if let Some((_, true)) = self.core.joined_chat_of(group) {
            return Ok(JoinOutcome::Joined);
        }
        // A public group can be looked up now, so its messages are recognised by id at once;
        // and after a restart the bot may be in it already.
        if let Some(name) = group.id.strip_prefix('@')
            && let Ok(info) = self
                .core
                .api
                .get_chat(&ChatKey::Username(name.to_string()))
                .await
            && let Some(id) = api::id_of(info.value.get("id"))
        {
            self.core.map_chat(id, group);
            if let Some(me) = self.core.me()
                && let Ok((status, is_member)) =
                    self.core.api.member_status(&ChatKey::Id(id), me.id).await
                && present(&status, is_member)
            {
                self.core.set_joined(id, true);
                return Ok(JoinOutcome::Joined);
            }
        }
        let bot = match self.core.me().and_then(|m| m.username) {
            Some(u) => format!("@{u}"),
            None => "the leakwatch bot".into(),
        };
        let instructions = match group.id.strip_prefix('@') {
            Some(name) => format!(
                "A Telegram bot cannot join a group by link. Have a member of https://t.me/{name} add {bot} to the group; it sees messages from then on (nothing posted before). Turn the bot's privacy mode off with @BotFather (/setprivacy) or make it an administrator, or it sees only commands."
            ),
            None => format!(
                "A Telegram bot cannot join a group by link, and this is a private invite link ({}), which the Bot API cannot look up. Have a member add {bot} to the group as an administrator: the group is recognised by its primary invite link, which only administrators can read. The bot sees messages from then on (nothing posted before).",
                group.id
            ),
        };
        Ok(JoinOutcome::AwaitingInvite { instructions })
    }

    async fn group_info(&self, group: &GroupRef) -> Result<GroupInfo, AdapterError> {
        let key = self.core.key_for(group)?;
        let info = self.core.api.get_chat(&key).await?;
        let id = api::id_of(info.value.get("id"));
        let member_count = match id {
            Some(id) => self.core.api.member_count(id).await.ok(),
            None => None,
        };
        Ok(GroupInfo {
            group: group.clone(),
            name: info
                .value
                .get("title")
                .and_then(Value::as_str)
                .map(str::to_string),
            member_count,
            max_member_count: None,
            raw: info.raw,
        })
    }

    /// The Bot API cannot list a group's members.
    async fn members(&self, _group: &GroupRef) -> Result<Vec<Member>, AdapterError> {
        Err(AdapterError::Protocol(
            "the Telegram Bot API cannot list a group's members".into(),
        ))
    }

    /// Always empty: a bot cannot read what was posted before it saw it, and everything it
    /// saw was delivered live at once.
    async fn history(
        &self,
        _group: &GroupRef,
        _after: Option<&HistoryCursor>,
    ) -> Result<Vec<ChatMessage>, AdapterError> {
        Ok(Vec::new())
    }

    /// `getChat`: "chat not found" (deleted, or banned by Telegram) is `Gone`; a bot that was
    /// kicked or is no longer a member is `NotMember` — sellers remove bots all the time, and
    /// that is not a takedown.
    async fn probe(&self, group: &GroupRef) -> Result<GroupStatus, AdapterError> {
        let key = self.core.key_for(group)?;
        let not_member =
            |d: &str| d.contains("kicked") || d.contains("not a member") || d.contains("forbidden");
        let info = match self.core.api.get_chat(&key).await {
            Ok(i) => i,
            Err(e) => {
                return match e.api_description() {
                    Some(d)
                        if d.contains("chat not found")
                            || d.contains("was deleted")
                            || d.contains("deactivated") =>
                    {
                        Ok(GroupStatus::Gone)
                    }
                    Some(d) if not_member(&d) => Ok(GroupStatus::NotMember),
                    _ => Err(e.into()),
                };
            }
        };
        let chat_id = api::id_of(info.value.get("id"));
        let Some(me) = self.core.me() else {
            return Err(AdapterError::NotConnected(self.core.cfg.name.clone()));
        };
        match self.core.api.member_status(&key, me.id).await {
            Ok((status, is_member)) if present(&status, is_member) => {
                let member_count = match chat_id {
                    Some(id) => self.core.api.member_count(id).await.ok(),
                    None => None,
                };
                Ok(GroupStatus::Active { member_count })
            }
            Ok(_) => Ok(GroupStatus::NotMember),
            Err(e) => match e.api_description() {
                Some(d) if not_member(&d) || d.contains("user not found") => {
                    Ok(GroupStatus::NotMember)
                }
                _ => Err(e.into()),
            },
        }
    }

    fn take_events(&self) -> Option<mpsc::Receiver<AdapterEvent>> {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_statuses() {
        assert!(present("member", None));
        assert!(present("administrator", None));
        assert!(present("creator", None));
        assert!(present("restricted", Some(true)));
        assert!(!present("restricted", Some(false)));
        assert!(!present("left", None));
        assert!(!present("kicked", None));
    }

    #[test]
    fn invite_links_give_their_hash() {
        assert_eq!(
            invite_hash("https://t.me/+AbCdEfGhIjKl").as_deref(),
            Some("+AbCdEfGhIjKl")
        );
        assert_eq!(
            invite_hash("https://t.me/joinchat/AbCdEfGhIjKl").as_deref(),
            Some("+AbCdEfGhIjKl")
        );
        assert_eq!(invite_hash("https://t.me/public_name"), None);
        assert_eq!(invite_hash("nonsense"), None);
    }

    #[test]
    fn seen_ids_claim_once_and_stay_bounded() {
        let mut s = SeenIds {
            ids: HashSet::new(),
            order: VecDeque::new(),
        };
        assert!(s.claim("1"));
        assert!(!s.claim("1"));
        for i in 0..(SEEN_PER_CHAT + 5) {
            s.claim(&format!("x{i}"));
        }
        assert!(s.ids.len() <= SEEN_PER_CHAT);
    }

    #[test]
    fn attachments_become_segments_with_their_label() {
        let a = Attachment {
            kind: super::super::MediaKind::File,
            field: "document",
            file_id: "F1".into(),
            file_unique_id: None,
            name: Some("样本.csv".into()),
            size: Some(10),
            mime_type: None,
        };
        let seg = attachment_segment(&a);
        assert_eq!(seg.kind, "file");
        assert_eq!(cq::plain_text(&[seg]), "[file:样本.csv]");
    }
}
