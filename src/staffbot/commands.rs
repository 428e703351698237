//! The staff bot's command language and its button data, parsed without trusting either.
//!
//! Commands: `/submit LINK [note]`, `/case C-…`, `/next`, `/approve|/reject|/escalate F-… [reason]`,
//! `/help` (`/start`). In groups a command may be addressed (`/next@leakwatch_staff_bot`); one
//! addressed to another bot is not ours. Button data is `rv:<a|r|e>:F-<n>` (Telegram allows 64
//! bytes); anything else is refused. Inputs are bounded before they reach intake or review.

use crate::intake::{MAX_LINK, MAX_NOTE};
use crate::review::{Decision, MAX_REASON};

/// The reason recorded for a decision taken with a card's button.
pub const BUTTON_REASON: &str = "via staff bot";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Submit {
        link: String,
        note: Option<String>,
    },
    Case {
        case: String,
    },
    Next,
    Decide {
        finding: String,
        decision: Decision,
        reason: String,
    },
    /// Known command, wrong arguments: the usage line to send back.
    Usage(&'static str),
    Unknown(String),
}

/// A case id as intake makes them (`C-` and ten hex digits).
pub fn valid_case(id: &str) -> bool {
    id.strip_prefix("C-").is_some_and(|h| {
        h.len() == 10
            && h.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    })
}

/// A finding id (`F-` and the ledger index of its entry).
pub fn valid_finding(id: &str) -> bool {
    id.strip_prefix("F-")
        .is_some_and(|n| !n.is_empty() && n.len() <= 20 && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Parse a message. `None`: not a command, or a command addressed to another bot.
pub fn parse(text: &str, bot_username: Option<&str>) -> Option<Command> {
    let text = text.trim();
    let rest = text.strip_prefix('/')?;
    let (head, args) = match rest.split_once(char::is_whitespace) {
        Some((h, a)) => (h, a.trim()),
        None => (rest, ""),
    };
    let name = match head.split_once('@') {
        Some((name, to)) => {
            if bot_username.is_some_and(|me| !me.eq_ignore_ascii_case(to)) {
                return None;
            }
            name
        }
        None => head,
    };
    let name = name.to_ascii_lowercase();
    let mut words = args.splitn(2, char::is_whitespace);
    let first = words.next().unwrap_or("").trim();
    let tail = words.next().map(str::trim).filter(|t| !t.is_empty());
    Some(match name.as_str() {
        "help" | "start" => Command::Help,
        "submit" => {
            if first.is_empty()
                || first.chars().count() > MAX_LINK
                || tail.is_some_and(|t| t.chars().count() > MAX_NOTE)
            {
                Command::Usage(
                    "/submit LINK [note]: a QQ group number, QQ invite link or t.me link; the note is optional (at most 2,000 characters)",
                )
            } else {
                Command::Submit {
                    link: first.to_string(),
                    note: tail.map(str::to_string),
                }
            }
        }
        "case" => {
            if valid_case(first) && tail.is_none() {
                Command::Case {
                    case: first.to_string(),
                }
            } else {
                Command::Usage("/case C-0123456789: the case id intake gave")
            }
        }
        "next" => Command::Next,
        "approve" | "reject" | "escalate" => {
            let decision = Decision::parse(&name).unwrap_or(Decision::Escalate);
            let reason = tail.unwrap_or(BUTTON_REASON);
            if !valid_finding(first) || reason.len() > MAX_REASON {
                Command::Usage(
                    "/approve|/reject|/escalate F-123 [reason]: a finding from /next; the reason is recorded (at most 2,000 bytes)",
                )
            } else {
                Command::Decide {
                    finding: first.to_string(),
                    decision,
                    reason: reason.to_string(),
                }
            }
        }
        other => Command::Unknown(other.chars().take(32).collect()),
    })
}

/// Button data for a decision on a finding.
pub fn button_data(decision: Decision, finding: &str) -> String {
    let d = match decision {
        Decision::Approve => 'a',
        Decision::Reject => 'r',
        Decision::Escalate => 'e',
    };
    format!("rv:{d}:{finding}")
}

/// Read button data back; `None` for anything this bot did not make.
pub fn parse_button(data: &str) -> Option<(Decision, String)> {
    let rest = data.strip_prefix("rv:")?;
    let (d, finding) = rest.split_once(':')?;
    let decision = match d {
        "a" => Decision::Approve,
        "r" => Decision::Reject,
        "e" => Decision::Escalate,
        _ => return None,
    };
    valid_finding(finding).then(|| (decision, finding.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(
            parse("/submit https://t.me/waimai_leaks 卖外卖数据的群", None),
            Some(Command::Submit {
                link: "https://t.me/waimai_leaks".into(),
                note: Some("卖外卖数据的群".into())
            })
        );
        assert_eq!(
            parse("/submit@LW_Staff_Bot 800000001", Some("lw_staff_bot")),
            Some(Command::Submit {
                link: "800000001".into(),
                note: None
            })
        );
        assert_eq!(parse("/next@other_bot", Some("lw_staff_bot")), None);
        assert_eq!(parse("hello /next", None), None);
        assert_eq!(parse("/next", None), Some(Command::Next));
        assert!(matches!(parse("/submit", None), Some(Command::Usage(_))));
        assert!(matches!(
            parse(&format!("/submit {}", "9".repeat(600)), None),
            Some(Command::Usage(_))
        ));
        assert_eq!(
            parse("/case C-0123456789", None),
            Some(Command::Case {
                case: "C-0123456789".into()
            })
        );
        assert!(matches!(
            parse("/case ../../etc", None),
            Some(Command::Usage(_))
        ));
        assert_eq!(
            parse("/reject F-12 test data, not real", None),
            Some(Command::Decide {
                finding: "F-12".into(),
                decision: Decision::Reject,
                reason: "test data, not real".into()
            })
        );
        assert_eq!(
            parse("/approve F-7", None),
            Some(Command::Decide {
                finding: "F-7".into(),
                decision: Decision::Approve,
                reason: BUTTON_REASON.into()
            })
        );
        assert!(matches!(
            parse("/approve F-x", None),
            Some(Command::Usage(_))
        ));
        assert_eq!(
            parse("/HELP", None),
            Some(Command::Help),
            "commands are case-insensitive"
        );
        assert_eq!(parse("/rm -rf", None), Some(Command::Unknown("rm".into())));
    }

    #[test]
    fn buttons_round_trip_and_refuse_the_rest() {
        for d in [Decision::Approve, Decision::Reject, Decision::Escalate] {
            let data = button_data(d, "F-123");
            assert!(data.len() <= 64);
            assert_eq!(parse_button(&data), Some((d, "F-123".into())));
        }
        for bad in [
            "",
            "rv:a:",
            "rv:x:F-1",
            "rv:a:F-1;drop",
            "a:F-1",
            "rv:a:C-0123456789",
        ] {
            assert_eq!(parse_button(bad), None, "{bad}");
        }
    }
}
