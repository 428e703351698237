//! Parsing OneBot v11 events (and history items) into typed values.
//!
//! Implementations disagree, so this parser is liberal in what it reads and strict in what it
//! promises: ids may be numbers or strings (both become strings), `message` may be a segment
//! array or a CQ-code string, `sender` and most fields may be missing, unknown segment types
//! are kept verbatim. Nothing here panics or fails on odd input: an event that cannot be
//! understood becomes [`Parsed::Other`] with a reason. OneBot v11 spec: `event/message.md`,
//! `event/notice.md`, `event/request.md`, `event/meta.md`.

use serde_json::Value;

use super::cq::{self, Segment};
use crate::adapters::Sender;

/// The largest frame we parse (an event or an action answer). Chat content is hostile input.
/// QQ itself caps messages far below this; the cap only keeps a hostile implementation from
/// exhausting memory.
pub const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

/// A group message with everything but its media bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageParts {
    pub group_id: String,
    pub message_id: String,
    pub seq: Option<i64>,
    pub sender: Sender,
    pub time: Option<i64>,
    pub segments: Vec<Segment>,
    pub raw: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    GroupMessage(MessageParts),
    GroupIncrease {
        group_id: String,
        user_id: String,
        self_id: Option<String>,
    },
    GroupDecrease {
        group_id: String,
        user_id: String,
        operator_id: Option<String>,
        sub_type: String,
        self_id: Option<String>,
    },
    GroupBan {
        group_id: String,
        user_id: String,
        duration: i64,
    },
    GroupInvite {
        group_id: String,
        inviter: Option<String>,
        flag: String,
        sub_type: String,
        self_id: Option<String>,
    },
    /// Heartbeats, lifecycle, private messages and other things capture does not need.
    Ignored(String),
    /// An action's answer (carries `echo`), not an event.
    ActionAnswer {
        echo: String,
        value: Value,
    },
    Other(String),
}

/// An id that may arrive as a number or a string.
pub fn id_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() && s.len() <= 64 => Some(s.clone()),
        _ => None,
    }
}

fn int_of(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn str_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Parse one frame as received from the implementation.
pub fn parse_frame(bytes: &[u8]) -> Parsed {
    if bytes.len() > MAX_FRAME_BYTES {
        return Parsed::Other(format!("frame of {} bytes is over the limit", bytes.len()));
    }
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => return Parsed::Other(format!("not JSON: {e}")),
    };
    parse_value(&value, bytes)
}

/// Parse an already-decoded event; `raw` is kept as the evidence bytes.
pub fn parse_value(value: &Value, raw: &[u8]) -> Parsed {
    let Some(obj) = value.as_object() else {
        return Parsed::Other("frame is not a JSON object".into());
    };
    let post_type = obj.get("post_type").and_then(Value::as_str);
    if post_type.is_none()
        && let Some(echo) = str_of(obj.get("echo"))
    {
        return Parsed::ActionAnswer {
            echo,
            value: value.clone(),
        };
    }
    let self_id = id_of(obj.get("self_id"));
    match post_type {
        Some("message") | Some("message_sent") => {
            match obj.get("message_type").and_then(Value::as_str) {
                Some("group") | None if obj.contains_key("group_id") => {
                    match message_parts(value, raw) {
                        Some(m) => Parsed::GroupMessage(m),
                        None => {
                            Parsed::Other("group message without group_id or message_id".into())
                        }
                    }
                }
                Some(other) => Parsed::Ignored(format!("{other} message")),
                None => Parsed::Ignored("message without a type".into()),
            }
        }
        Some("notice") => {
            let group_id = id_of(obj.get("group_id"));
            let user_id = id_of(obj.get("user_id"));
            let notice = obj.get("notice_type").and_then(Value::as_str).unwrap_or("");
            match (notice, group_id, user_id) {
                ("group_increase", Some(group_id), Some(user_id)) => Parsed::GroupIncrease {
                    group_id,
                    user_id,
                    self_id,
                },
                ("group_decrease", Some(group_id), user_id) => Parsed::GroupDecrease {
                    group_id,
                    user_id: user_id.unwrap_or_default(),
                    operator_id: id_of(obj.get("operator_id")),
                    sub_type: str_of(obj.get("sub_type")).unwrap_or_default(),
                    self_id,
                },
                ("group_ban", Some(group_id), Some(user_id)) => Parsed::GroupBan {
                    group_id,
                    user_id,
                    duration: int_of(obj.get("duration")).unwrap_or(0),
                },
                (other, _, _) => Parsed::Ignored(format!("notice {other}")),
            }
        }
        Some("request") => {
            let kind = obj
                .get("request_type")
                .and_then(Value::as_str)
                .unwrap_or("");
            match (kind, id_of(obj.get("group_id")), str_of(obj.get("flag"))) {
                ("group", Some(group_id), Some(flag)) => Parsed::GroupInvite {
                    group_id,
                    inviter: id_of(obj.get("user_id")),
                    flag,
                    sub_type: str_of(obj.get("sub_type")).unwrap_or_default(),
                    self_id,
                },
                (other, _, _) => Parsed::Ignored(format!("request {other}")),
            }
        }
        Some("meta_event") => Parsed::Ignored("meta event".into()),
        Some(other) => Parsed::Other(format!("unknown post_type {other:?}")),
        None => Parsed::Other("frame has neither post_type nor echo".into()),
    }
}

/// The parts of a group message event or history item.
pub fn message_parts(value: &Value, raw: &[u8]) -> Option<MessageParts> {
    let obj = value.as_object()?;
    let group_id = id_of(obj.get("group_id"))?;
    let message_id = id_of(obj.get("message_id")).or_else(|| id_of(obj.get("real_id")))?;
    let sender_obj = obj.get("sender").and_then(Value::as_object);
    let sender = Sender {
        id: id_of(obj.get("user_id")).or_else(|| sender_obj.and_then(|s| id_of(s.get("user_id")))),
        nickname: sender_obj.and_then(|s| str_of(s.get("nickname"))),
        card: sender_obj
            .and_then(|s| str_of(s.get("card")))
            .filter(|c| !c.is_empty()),
        role: sender_obj.and_then(|s| str_of(s.get("role"))),
    };
    // `message_format` says which form `message` has; when absent the value's shape does.
    let raw_text = obj
        .get("auto_escape")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let segments = match obj.get("message") {
        Some(m) => cq::parse_message(m, raw_text),
        None => obj
            .get("raw_message")
            .map(|m| cq::parse_message(m, false))
            .unwrap_or_default(),
    };
    Some(MessageParts {
        group_id,
        message_id,
        seq: int_of(obj.get("message_seq")).or_else(|| int_of(obj.get("real_seq"))),
        sender,
        time: int_of(obj.get("time")),
        segments,
        raw: raw.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_and_string_ids_agree() {
        let a = br#"{"post_type":"message","message_type":"group","group_id":123,"message_id":-5,"user_id":42,"message":"hi","time":1700000000,"self_id":9}"#;
        let b = br#"{"post_type":"message","message_type":"group","group_id":"123","message_id":"-5","user_id":"42","message":[{"type":"text","data":{"text":"hi"}}],"time":"1700000000","self_id":"9"}"#;
        let (Parsed::GroupMessage(x), Parsed::GroupMessage(y)) = (parse_frame(a), parse_frame(b))
        else {
            panic!("not messages");
        };
        assert_eq!(x.group_id, y.group_id);
        assert_eq!(x.message_id, "-5");
        assert_eq!(x.sender.id.as_deref(), Some("42"));
        assert_eq!(x.segments, y.segments);
        assert_eq!(x.time, Some(1_700_000_000));
        assert_eq!(y.time, Some(1_700_000_000));
        assert_eq!(x.raw, a.to_vec());
    }

    #[test]
    fn missing_sender_and_cq_string() {
        let f = br#"{"post_type":"message","message_type":"group","group_id":1,"message_id":2,"message":"0.1&#91;yuan&#93;[CQ:image,file=a.jpg,url=http://x/a.jpg]"}"#;
        let Parsed::GroupMessage(m) = parse_frame(f) else {
            panic!()
        };
        assert_eq!(m.sender, Sender::default());
        assert_eq!(m.segments.len(), 2);
        assert_eq!(m.segments[0].get("text").as_deref(), Some("0.1[yuan]"));
        assert_eq!(m.segments[1].kind, "image");
    }

    #[test]
    fn notices_requests_and_answers() {
        let kick = br#"{"post_type":"notice","notice_type":"group_decrease","sub_type":"kick_me","group_id":7,"user_id":9,"operator_id":1,"self_id":9}"#;
        assert!(
            matches!(parse_frame(kick), Parsed::GroupDecrease { sub_type, .. } if sub_type == "kick_me")
        );
        let invite = br#"{"post_type":"request","request_type":"group","sub_type":"invite","group_id":7,"user_id":5,"flag":"f1","self_id":9}"#;
        assert!(matches!(parse_frame(invite), Parsed::GroupInvite { flag, .. } if flag == "f1"));
        let ans = br#"{"status":"ok","retcode":0,"data":null,"echo":"17"}"#;
        assert!(matches!(parse_frame(ans), Parsed::ActionAnswer { echo, .. } if echo == "17"));
        assert!(matches!(parse_frame(b"[1,2]"), Parsed::Other(_)));
        assert!(matches!(parse_frame(b"\xff"), Parsed::Other(_)));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = parse_frame(&bytes);
        }

        #[test]
        fn arbitrary_message_events_never_panic(
            gid in proptest::prelude::any::<i64>(),
            text in ".{0,200}",
            sender in proptest::option::of(".{0,20}"),
        ) {
            let mut v = serde_json::json!({"post_type":"message","message_type":"group","group_id":gid,"message_id":text.clone(),"message":text});
            if let Some(s) = sender { v["sender"] = serde_json::json!({"nickname": s, "user_id": s}); }
            let bytes = serde_json::to_vec(&v).unwrap();
            let _ = parse_frame(&bytes);
        }
    }
}
