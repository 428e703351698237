//! Who may talk to the staff bot, and what each may do.
//!
//! The unit of access is the chat: only chat ids on the `[[staffbot.chats]]` allow-list are
//! answered, each with one role and one name (its actions are recorded in the ledger as
//! `tg:<name>`). In a group chat on the list, every member of that group acts as that name.
//! Any other chat gets one polite refusal (at most once a minute, so a stranger cannot make
//! the bot spam on their behalf) and nothing else: no case ids, no counts, no errors.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::config::{StaffChatConfig, StaffRole};

/// All a chat that is not on the allow-list is ever told.
pub const REFUSAL: &str = "Sorry, this bot only answers registered staff chats. Ask a leakwatch admin to add this chat if it should be one.";

/// A refused chat is told again only after this long.
const REFUSE_EVERY: Duration = Duration::from_secs(60);
/// Refused chats remembered at once (older ones are forgotten first).
const REFUSALS_KEPT: usize = 10_000;

/// What a staff chat asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Submit,
    Review,
    CaseSummary,
    Help,
}

/// Which roles may do what: `/submit` needs intake or admin, review needs moderator; every
/// listed chat may read case summaries and help.
pub fn may(role: StaffRole, action: Action) -> bool {
    match action {
        Action::Submit => matches!(role, StaffRole::Intake | StaffRole::Admin),
        Action::Review => role == StaffRole::Moderator,
        Action::CaseSummary | Action::Help => true,
    }
}

/// What an action needs, for the message that refuses it.
pub fn needs(action: Action) -> &'static str {
    match action {
        Action::Submit => "the intake or admin role",
        Action::Review => "the moderator role",
        Action::CaseSummary | Action::Help => "a registered chat",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffChat {
    pub id: i64,
    pub role: StaffRole,
    pub name: String,
}

impl StaffChat {
    /// The actor recorded in the ledger for this chat's actions.
    pub fn actor(&self) -> String {
        format!("tg:{}", self.name)
    }
}

#[derive(Debug, Clone, Default)]
pub struct AccessList {
    chats: HashMap<i64, StaffChat>,
}

impl AccessList {
    pub fn from_config(chats: &[StaffChatConfig]) -> AccessList {
        AccessList {
            chats: chats
                .iter()
                .map(|c| {
                    (
                        c.id,
                        StaffChat {
                            id: c.id,
                            role: c.role,
                            name: c.name.clone(),
                        },
                    )
                })
                .collect(),
        }
    }

    pub fn get(&self, chat_id: i64) -> Option<&StaffChat> {
        self.chats.get(&chat_id)
    }

    /// The chats that receive alerts: moderators and admins, in id order.
    pub fn alert_targets(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self
            .chats
            .values()
            .filter(|c| matches!(c.role, StaffRole::Moderator | StaffRole::Admin))
            .map(|c| c.id)
            .collect();
        ids.sort_unstable();
        ids
    }
}

/// When each refused chat was last told.
#[derive(Debug, Default)]
pub struct Refusals {
    last: HashMap<i64, Instant>,
}

impl Refusals {
    /// True when `chat` should be sent the refusal now.
    pub fn should_refuse(&mut self, chat: i64, now: Instant) -> bool {
        if self
            .last
            .get(&chat)
            .is_some_and(|t| now.duration_since(*t) < REFUSE_EVERY)
        {
            return false;
        }
        if self.last.len() >= REFUSALS_KEPT {
            self.last
                .retain(|_, t| now.duration_since(*t) < REFUSE_EVERY);
            if self.last.len() >= REFUSALS_KEPT {
                self.last.clear();
            }
        }
        self.last.insert(chat, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles() {
        assert!(may(StaffRole::Intake, Action::Submit));
        assert!(may(StaffRole::Admin, Action::Submit));
        assert!(!may(StaffRole::Moderator, Action::Submit));
        assert!(!may(StaffRole::Legal, Action::Submit));
        assert!(may(StaffRole::Moderator, Action::Review));
        for r in [StaffRole::Intake, StaffRole::Legal, StaffRole::Admin] {
            assert!(!may(r, Action::Review), "{r:?}");
            assert!(may(r, Action::CaseSummary));
        }
    }

    #[test]
    fn allow_list_and_alert_targets() {
        let cfg = |id, role, name: &str| StaffChatConfig {
            id,
            role,
            name: name.into(),
        };
        let list = AccessList::from_config(&[
            cfg(3, StaffRole::Admin, "root"),
            cfg(1, StaffRole::Intake, "ivy"),
            cfg(-2, StaffRole::Moderator, "mods"),
            cfg(4, StaffRole::Legal, "lex"),
        ]);
        assert_eq!(list.get(-2).unwrap().actor(), "tg:mods");
        assert!(list.get(5).is_none());
        assert_eq!(list.alert_targets(), vec![-2, 3]);
    }

    #[test]
    fn refusals_are_rate_limited() {
        let mut r = Refusals::default();
        let t0 = Instant::now();
        assert!(r.should_refuse(7, t0));
        assert!(!r.should_refuse(7, t0 + Duration::from_secs(5)));
        assert!(r.should_refuse(8, t0));
        assert!(r.should_refuse(7, t0 + Duration::from_secs(61)));
        for i in 0..(REFUSALS_KEPT as i64 + 10) {
            r.should_refuse(1000 + i, t0);
        }
        assert!(r.last.len() <= REFUSALS_KEPT);
    }
}
