//! Liberal reading of Bot API updates: only the fields leakwatch acts on, from the JSON value.
//!
//! Why not teloxide's typed `Update`: one field the typed model does not expect would make a
//! whole update unreadable, and an unreadable update from a watched group is a lost message.
//! Here a missing or odd field costs only that field; the update's exact bytes are kept by the
//! caller whatever this module makes of them. Nothing here does I/O.

use serde_json::Value;

use super::api::id_of;
use crate::adapters::{MediaKind, Sender};

/// A chat as an update names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRef {
    pub id: i64,
    /// `private`, `group`, `supergroup` or `channel`.
    pub kind: String,
    pub title: Option<String>,
    /// The public username, without `@`, lower-cased.
    pub username: Option<String>,
}

impl ChatRef {
    pub fn parse(v: Option<&Value>) -> Option<ChatRef> {
        let v = v?;
        Some(ChatRef {
            id: id_of(v.get("id"))?,
            kind: str_of(v, "type").unwrap_or_default(),
            title: str_of(v, "title"),
            username: str_of(v, "username").map(|u| u.to_ascii_lowercase()),
        })
    }

    pub fn is_private(&self) -> bool {
        self.kind == "private"
    }
}

/// One file a message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub kind: MediaKind,
    /// The Bot API field it came from (`document`, `photo`, `video`, ...).
    pub field: &'static str,
    pub file_id: String,
    pub file_unique_id: Option<String>,
    /// The sender's file name: a label, never a path.
    pub name: Option<String>,
    pub size: Option<u64>,
    pub mime_type: Option<String>,
}

/// What a message update says.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageParts {
    pub chat: ChatRef,
    pub message_id: i64,
    pub date: Option<i64>,
    pub edit_date: Option<i64>,
    pub sender: Sender,
    pub sender_id: Option<i64>,
    /// `text`, else `caption`.
    pub text: Option<String>,
    pub attachments: Vec<Attachment>,
    pub new_members: Vec<i64>,
    pub left_member: Option<i64>,
    /// The group was upgraded to a supergroup with this id (its messages continue there).
    pub migrate_to: Option<i64>,
}

/// The kinds of update the group adapter acts on.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupUpdate {
    /// `message`, `edited_message`, `channel_post`, `edited_channel_post`.
    Message {
        parts: Box<MessageParts>,
        edited: bool,
    },
    /// `my_chat_member`: the bot's own membership changed.
    Membership {
        chat: ChatRef,
        by: Option<i64>,
        status: String,
        is_member: Option<bool>,
    },
    /// Some other kind of update (ignored), named.
    Other(String),
    /// Not readable as an update at all.
    Unreadable(String),
}

fn str_of(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .filter(|s| !s.is_empty())
}

fn u64_of(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

pub fn classify(update: &Value) -> GroupUpdate {
    if !update.is_object() {
        return GroupUpdate::Unreadable("an update that is not a JSON object".into());
    }
    for (key, edited) in [
        ("message", false),
        ("edited_message", true),
        ("channel_post", false),
        ("edited_channel_post", true),
    ] {
        if let Some(m) = update.get(key) {
            return match message_parts(m) {
                Some(parts) => GroupUpdate::Message {
                    parts: Box::new(parts),
                    edited,
                },
                None => GroupUpdate::Unreadable(format!("a {key} without chat or message_id")),
            };
        }
    }
    if let Some(m) = update.get("my_chat_member") {
        let Some(chat) = ChatRef::parse(m.get("chat")) else {
            return GroupUpdate::Unreadable("a my_chat_member without a chat".into());
        };
        let new = m.get("new_chat_member");
        return GroupUpdate::Membership {
            chat,
            by: m.get("from").and_then(|f| id_of(f.get("id"))),
            status: new.and_then(|n| str_of(n, "status")).unwrap_or_default(),
            is_member: new
                .and_then(|n| n.get("is_member"))
                .and_then(Value::as_bool),
        };
    }
    let kind = update
        .as_object()
        .and_then(|o| o.keys().find(|k| *k != "update_id").cloned())
        .unwrap_or_else(|| "empty".into());
    GroupUpdate::Other(kind)
}

pub fn message_parts(m: &Value) -> Option<MessageParts> {
    let chat = ChatRef::parse(m.get("chat"))?;
    let message_id = id_of(m.get("message_id"))?;
    let (sender, sender_id) = sender_of(m);
    let text = str_of(m, "text").or_else(|| str_of(m, "caption"));
    let new_members = m
        .get("new_chat_members")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|u| id_of(u.get("id"))).collect())
        .unwrap_or_default();
    Some(MessageParts {
        chat,
        message_id,
        date: m.get("date").and_then(Value::as_i64),
        edit_date: m.get("edit_date").and_then(Value::as_i64),
        sender,
        sender_id,
        text,
        attachments: attachments(m),
        new_members,
        left_member: m.get("left_chat_member").and_then(|u| id_of(u.get("id"))),
        migrate_to: id_of(m.get("migrate_to_chat_id")),
    })
}

fn sender_of(m: &Value) -> (Sender, Option<i64>) {
    // An anonymous admin or a channel posts as a chat (`sender_chat`); `from` is then a
    // placeholder account.
    if let Some(c) = m.get("sender_chat")
        && let Some(id) = id_of(c.get("id"))
    {
        return (
            Sender {
                id: Some(id.to_string()),
                nickname: str_of(c, "title"),
                card: str_of(c, "username").map(|u| format!("@{u}")),
                role: Some("sender_chat".into()),
            },
            Some(id),
        );
    }
    let Some(from) = m.get("from") else {
        return (Sender::default(), None);
    };
    let id = id_of(from.get("id"));
    let name = [str_of(from, "first_name"), str_of(from, "last_name")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    (
        Sender {
            id: id.map(|i| i.to_string()),
            nickname: (!name.is_empty()).then_some(name),
            card: str_of(from, "username").map(|u| format!("@{u}")),
            role: from
                .get("is_bot")
                .and_then(Value::as_bool)
                .filter(|b| *b)
                .map(|_| "bot".into()),
        },
        id,
    )
}

fn attachment(kind: MediaKind, field: &'static str, v: &Value) -> Option<Attachment> {
    Some(Attachment {
        kind,
        field,
        file_id: str_of(v, "file_id")?,
        file_unique_id: str_of(v, "file_unique_id"),
        name: str_of(v, "file_name").map(|n| n.chars().take(255).collect()),
        size: u64_of(v, "file_size"),
        mime_type: str_of(v, "mime_type"),
    })
}

fn attachments(m: &Value) -> Vec<Attachment> {
    let mut out = Vec::new();
    // `photo` is one picture in several sizes: keep the largest (the original).
    if let Some(sizes) = m.get("photo").and_then(Value::as_array)
        && let Some(best) = sizes.iter().max_by_key(|p| {
            (
                u64_of(p, "width").unwrap_or(0) * u64_of(p, "height").unwrap_or(0),
                u64_of(p, "file_size").unwrap_or(0),
            )
        })
        && let Some(a) = attachment(MediaKind::Image, "photo", best)
    {
        out.push(a);
    }
    for (field, kind) in [
        ("document", MediaKind::File),
        ("video", MediaKind::Video),
        ("animation", MediaKind::Video),
        ("video_note", MediaKind::Video),
        ("audio", MediaKind::Record),
        ("voice", MediaKind::Record),
    ] {
        // An animation is also sent as `document` for old clients: keep one copy.
        if field == "document" && m.get("animation").is_some() {
            continue;
        }
        if let Some(a) = m.get(field).and_then(|v| attachment(kind, field, v)) {
            out.push(a);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_membership_and_other_updates() {
        let u = json!({"update_id": 5, "message": {
            "message_id": 17, "date": 1700000000,
            "chat": {"id": -1001234, "type": "supergroup", "title": "外卖数据", "username": "WaiMai_Leaks"},
            "from": {"id": 42, "is_bot": false, "first_name": "卖", "last_name": "家", "username": "seller"},
            "caption": "样本", "document": {"file_id": "F1", "file_unique_id": "U1", "file_name": "../样本.csv", "file_size": 120}
        }});
        let GroupUpdate::Message { parts, edited } = classify(&u) else {
            panic!()
        };
        assert!(!edited);
        assert_eq!(parts.chat.username.as_deref(), Some("waimai_leaks"));
        assert_eq!(parts.message_id, 17);
        assert_eq!(parts.text.as_deref(), Some("样本"));
        assert_eq!(parts.sender.nickname.as_deref(), Some("卖 家"));
        assert_eq!(parts.sender.card.as_deref(), Some("@seller"));
        assert_eq!(parts.attachments.len(), 1);
        assert_eq!(parts.attachments[0].name.as_deref(), Some("../样本.csv"));
        assert_eq!(parts.attachments[0].kind, MediaKind::File);

        let photo = json!({"message_id": 1, "chat": {"id": "-5", "type": "group"}, "photo": [
            {"file_id": "small", "width": 90, "height": 90, "file_size": 1000},
            {"file_id": "big", "width": 1280, "height": 960, "file_size": 90000},
            {"file_id": "mid", "width": 320, "height": 240}
        ]});
        let p = message_parts(&photo).unwrap();
        assert_eq!(p.chat.id, -5, "string ids are read too");
        assert_eq!(p.attachments[0].file_id, "big");

        let m = json!({"update_id": 6, "my_chat_member": {
            "chat": {"id": -1001234, "type": "supergroup"}, "from": {"id": 42},
            "old_chat_member": {"status": "left", "user": {"id": 1}},
            "new_chat_member": {"status": "member", "user": {"id": 1}}
        }});
        assert_eq!(
            classify(&m),
            GroupUpdate::Membership {
                chat: ChatRef {
                    id: -1001234,
                    kind: "supergroup".into(),
                    title: None,
                    username: None
                },
                by: Some(42),
                status: "member".into(),
                is_member: None
            }
        );
        assert_eq!(
            classify(&json!({"update_id": 7, "poll": {}})),
            GroupUpdate::Other("poll".into())
        );
        assert!(matches!(
            classify(&json!({"update_id": 8, "message": {"text": "no chat"}})),
            GroupUpdate::Unreadable(_)
        ));
        assert!(matches!(classify(&json!([1])), GroupUpdate::Unreadable(_)));
    }

    #[test]
    fn anonymous_admins_post_as_the_chat() {
        let m = json!({"message_id": 3, "chat": {"id": -7, "type": "supergroup"},
            "from": {"id": 1087968824, "is_bot": true, "first_name": "Group"},
            "sender_chat": {"id": -7, "title": "卖数据群", "type": "supergroup"}, "text": "hi"});
        let p = message_parts(&m).unwrap();
        assert_eq!(p.sender.id.as_deref(), Some("-7"));
        assert_eq!(p.sender.role.as_deref(), Some("sender_chat"));
    }
}
