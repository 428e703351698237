//! Chat adapters: how leakwatch gets into groups and hears what is posted there.
//!
//! [`ChatAdapter`] is what every platform offers the capture pipeline: resolve a submitted link
//! into a [`GroupRef`], `join` it (reporting honestly what it is waiting for, since neither QQ
//! bots nor Telegram bots can join by link), group info and members, history, media, `probe`,
//! and one stream of [`AdapterEvent`]s taken once by the capture task.
//!
//! Invariants:
//! - events are delivered through a bounded channel with back-pressure, never a lossy
//!   broadcast: a slow consumer slows the adapter down, it does not lose messages;
//! - every message carries its raw platform JSON exactly as received, and its media bytes
//!   fetched at once (QQ media URLs expire within hours) through the private-address guard;
//! - an adapter dedupes messages per group by message id, so a reconnect backfill never
//!   delivers a message twice.
//!
//! Implementations: `onebot` (QQ through OneBot v11), `telegram` (a Bot API bot staff add to
//! the group; no history, no member list). The trait is object safe
//! (`Arc<dyn ChatAdapter>`), chosen by config. Adapters know nothing of matching or review.

pub mod netguard;
pub mod onebot;
pub mod telegram;

use std::fmt;

use serde::{Deserialize, Serialize};

use onebot::cq::Segment;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Qq,
    Telegram,
}

impl Platform {
    pub fn as_str(&self) -> &'static str {
        match self {
            Platform::Qq => "qq",
            Platform::Telegram => "telegram",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A group on a platform: the QQ group number, or a Telegram chat id / public username.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupRef {
    pub platform: Platform,
    pub id: String,
}

impl GroupRef {
    pub fn qq(id: impl Into<String>) -> GroupRef {
        GroupRef {
            platform: Platform::Qq,
            id: id.into(),
        }
    }

    /// A Telegram group as intake names it: `@username` or `+invitehash`.
    pub fn telegram(id: impl Into<String>) -> GroupRef {
        GroupRef {
            platform: Platform::Telegram,
            id: id.into(),
        }
    }
}

impl fmt::Display for GroupRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.platform, self.id)
    }
}

/// What `join` achieved, or what it is waiting for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinOutcome {
    /// The bot account is in the group.
    Joined,
    /// Someone must invite the bot account (or join it by hand); the instructions say how.
    AwaitingInvite {
        instructions: String,
    },
    /// A join request was sent and waits for the group's admins.
    AwaitingApproval,
    Refused(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupInfo {
    pub group: GroupRef,
    pub name: Option<String>,
    pub member_count: Option<u64>,
    pub max_member_count: Option<u64>,
    /// The platform's answer exactly as received.
    pub raw: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub user_id: String,
    pub nickname: Option<String>,
    pub card: Option<String>,
    pub role: Option<String>,
    pub join_time: Option<i64>,
    pub last_sent_time: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sender {
    pub id: Option<String>,
    pub nickname: Option<String>,
    pub card: Option<String>,
    pub role: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Image,
    File,
    Record,
    Video,
}

/// A picture or file attached to a message, with its bytes fetched at once.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaItem {
    pub kind: MediaKind,
    /// The file name the sender gave (display only: never used as a path on disk).
    pub name: Option<String>,
    pub url: Option<String>,
    pub file_id: Option<String>,
    pub size: Option<u64>,
    /// The bytes, or why they could not be fetched (expired URL, over the cap, refused address).
    pub content: Result<Vec<u8>, String>,
}

/// One message as the platform delivered it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    pub group: GroupRef,
    pub message_id: String,
    /// The group-wide sequence number, where the platform has one (QQ `message_seq`).
    pub seq: Option<i64>,
    pub sender: Sender,
    /// The platform's timestamp (unix seconds).
    pub posted_at: Option<i64>,
    pub segments: Vec<Segment>,
    /// Plain text with markers for non-text segments.
    pub text: String,
    /// The raw JSON of the event (or history item) exactly as received.
    pub raw: Vec<u8>,
    pub media: Vec<MediaItem>,
    /// Delivered by a history backfill rather than live.
    pub from_history: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AdapterEvent {
    Message(Box<ChatMessage>),
    MemberJoined {
        group: GroupRef,
        user_id: String,
    },
    MemberLeft {
        group: GroupRef,
        user_id: String,
        kicked: bool,
    },
    /// The bot account joined (accepted invite, or an operator added it by hand).
    Joined {
        group: GroupRef,
        how: String,
    },
    /// An invite for a group nobody submitted was declined.
    InviteDeclined {
        group: GroupRef,
        inviter: Option<String>,
    },
    /// The bot account was removed from the group.
    BotRemoved {
        group: GroupRef,
        operator: Option<String>,
    },
    GroupDismissed {
        group: GroupRef,
    },
    Muted {
        group: GroupRef,
        user_id: String,
        duration_s: i64,
    },
    /// A media item could not be preserved (over the size cap, refused address, expired URL).
    MediaRefused {
        group: GroupRef,
        message_id: String,
        what: String,
        reason: String,
    },
    Connected,
    Disconnected {
        reason: String,
    },
    /// Something the adapter could not make sense of (kept for the operator, never fatal).
    Problem {
        message: String,
    },
}

/// The last message captured from a group: history pages back until it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryCursor {
    pub seq: Option<i64>,
    pub message_id: String,
}

/// Groups intake has submitted: the only groups whose invitations the bot accepts.
#[derive(Debug, Default)]
pub struct SubmittedGroups {
    groups: std::sync::RwLock<std::collections::HashSet<GroupRef>>,
}

impl SubmittedGroups {
    pub fn add(&self, group: GroupRef) {
        self.groups
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(group);
    }
    pub fn contains(&self, group: &GroupRef) -> bool {
        self.groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(group)
    }
}

/// Does the group still exist, and is the bot still in it? (Takedown tracking asks this.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupStatus {
    Active { member_count: Option<u64> },
    NotMember,
    Gone,
}

#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    #[error("{0:?} is not a group link this adapter understands")]
    BadLink(String),
    #[error("not connected to the {0} implementation")]
    NotConnected(String),
    #[error("action {action} failed: retcode {retcode}: {message}")]
    Action {
        action: String,
        retcode: i64,
        message: String,
    },
    #[error("action {action}: no answer within {timeout_ms} ms")]
    Timeout { action: String, timeout_ms: u64 },
    #[error("{0}")]
    Protocol(String),
    #[error("{0}")]
    Fetch(#[from] netguard::FetchError),
}

/// The platform side of capture. Object safe: adapters are held as `Arc<dyn ChatAdapter>`.
#[async_trait::async_trait]
pub trait ChatAdapter: Send + Sync {
    /// The configured instance name (`qq-1`).
    fn name(&self) -> &str;
    fn platform(&self) -> Platform;
    /// The bot account's own id on the platform (the collecting account), once known.
    fn account(&self) -> Option<String>;
    /// Turn a submitted link into a group reference, or say why it is not one.
    fn resolve(&self, link: &str) -> Result<GroupRef, AdapterError>;
    /// Get the bot account into the group, or say what it waits for.
    async fn join(&self, group: &GroupRef) -> Result<JoinOutcome, AdapterError>;
    async fn group_info(&self, group: &GroupRef) -> Result<GroupInfo, AdapterError>;
    async fn members(&self, group: &GroupRef) -> Result<Vec<Member>, AdapterError>;
    /// Messages after `after` (all the platform still has when `None`), oldest first, with
    /// their media fetched. Messages already delivered live may be included: callers dedupe.
    async fn history(
        &self,
        group: &GroupRef,
        after: Option<&HistoryCursor>,
    ) -> Result<Vec<ChatMessage>, AdapterError>;
    async fn probe(&self, group: &GroupRef) -> Result<GroupStatus, AdapterError>;
    /// The event stream. There is one consumer: the first call gets it, later calls `None`.
    fn take_events(&self) -> Option<tokio::sync::mpsc::Receiver<AdapterEvent>>;
}
