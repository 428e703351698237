//! The staff bot: a Telegram bot (teloxide) through which trust-and-safety staff submit groups,
//! look up cases, review findings, and are alerted.
//!
//! - `/submit LINK [note]` (intake, admin) opens a case exactly as the API does: intake, then
//!   the group joins the submitted set and capture starts watching it.
//! - `/case C-…` (any listed chat) answers where a case stands, in counts: no personal data.
//! - `/next` (moderator) claims the next finding for the chat's identity `tg:<name>` and sends
//!   its card — the sample masked — with Approve / Reject / Escalate buttons. A press decides at
//!   once with the reason "via staff bot" (a fixed reason keeps the button one tap; a moderator
//!   who wants to say more uses `/reject F-… <reason>` and friends instead). The press is
//!   answered (`answerCallbackQuery`) and the card's buttons are removed
//!   (`editMessageReplyMarkup`). After an approval the packets it allows are built
//!   (`packets::assemble::build_due`, off the async workers).
//! - Alerts: [`StaffBot::alert`] sends a text to every moderator and admin chat; the bot itself
//!   follows the ledger and alerts on new findings and on filings that failed for good.
//!
//! Invariants: only chats on the allow-list are answered ([`access`]); everyone else gets one
//! polite refusal and nothing else. Every decision and submission is recorded in the ledger
//! under `tg:<name>` by the modules that own them (intake, review). The unmasked sample never
//! reaches Telegram: cards are built from the masked card alone ([`cards`]). The bot token never
//! appears in a log or an error (see `adapters::telegram::api`).

pub mod access;
pub mod cards;
pub mod commands;

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use teloxide::payloads::{AnswerCallbackQuerySetters, SendMessageSetters};
use teloxide::requests::Requester;
use teloxide::types::{
    CallbackQueryId, ChatId, InlineKeyboardButton, InlineKeyboardMarkup, MessageId,
};

use crate::adapters::SubmittedGroups;
use crate::adapters::telegram::api::{
    Backoff, BotApi, BotIdentity, BotToken, Poller, RawUpdate, TelegramError, id_of, wait_after,
};
use crate::capture::CaptureService;
use crate::config::{PacketsConfig, StaffBotConfig};
use crate::evidence::Evidence;
use crate::ledger::entry::EntryBody;
use crate::review::{Decision, Review, ReviewError};
use access::{AccessList, Action, REFUSAL, Refusals, StaffChat, may, needs};
use commands::{BUTTON_REASON, Command};

const ALLOWED_UPDATES: &[&str] = &["message", "callback_query"];
/// How often the ledger is read for new findings and failed filings.
const ALERT_POLL: Duration = Duration::from_secs(2);
/// Alerts sent per round; the rest are summed up in one line.
const ALERTS_PER_ROUND: usize = 5;
/// Ledger entries read per round (a large backlog is worked through over several rounds).
const ENTRIES_PER_ROUND: u64 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum StaffBotError {
    #[error("staff bot: {0}")]
    Telegram(#[from] TelegramError),
    #[error("staff bot: {0}")]
    Evidence(#[from] crate::evidence::EvidenceError),
    #[error("staff bot: {0}")]
    State(#[from] crate::state::StateError),
    #[error("staff bot: {0}")]
    Ledger(#[from] crate::ledger::LedgerError),
}

/// What the staff bot works with.
pub struct StaffDeps {
    /// Capture (and through it the evidence store): a submitted group is watched at once.
    pub capture: Arc<CaptureService>,
    /// The groups whose invitations adapters accept.
    pub submitted: Arc<SubmittedGroups>,
    /// The review queue (shared with every other review surface, for its one lock).
    pub review: Arc<Review>,
    pub packets: PacketsConfig,
}

struct Inner {
    api: Arc<BotApi>,
    cfg: StaffBotConfig,
    access: AccessList,
    deps: StaffDeps,
    me: RwLock<Option<BotIdentity>>,
    refusals: Mutex<Refusals>,
}

pub struct StaffBot {
    inner: Arc<Inner>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for StaffBot {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl StaffBot {
    /// Start polling and following the ledger. Fails only on a bad `api_url`; an unreachable
    /// API is retried in the background.
    pub fn start(
        cfg: StaffBotConfig,
        token: BotToken,
        deps: StaffDeps,
    ) -> Result<StaffBot, StaffBotError> {
        let api = Arc::new(BotApi::new(&cfg.api_url, token)?);
        let start_at = deps.capture.evidence().ledger.size();
        let inner = Arc::new(Inner {
            api,
            access: AccessList::from_config(&cfg.chats),
            cfg,
            deps,
            me: RwLock::new(None),
            refusals: Mutex::new(Refusals::default()),
        });
        let tasks = vec![
            tokio::spawn(run(inner.clone())),
            tokio::spawn(follow_ledger(inner.clone(), start_at)),
        ];
        Ok(StaffBot { inner, tasks })
    }

    /// Send `text` to every moderator and admin chat; returns how many received it.
    pub async fn alert(&self, text: &str) -> usize {
        self.inner.alert(text).await
    }
}

async fn run(inner: Arc<Inner>) {
    let mut backoff = Backoff::new(Duration::from_millis(inner.cfg.reconnect_max_ms));
    loop {
        match inner.api.get_me().await {
            Ok(me) => {
                *inner.me.write().unwrap_or_else(|p| p.into_inner()) = Some(me);
                break;
            }
            Err(e) => {
                tracing::warn!("staff bot: getMe failed (retrying): {e}");
                tokio::time::sleep(wait_after(&e, &mut backoff)).await;
            }
        }
    }
    backoff.reset();
    let mut poller = Poller::new(inner.api.clone(), inner.cfg.poll_timeout_s, ALLOWED_UPDATES);
    loop {
        match poller.poll().await {
            Ok(updates) => {
                backoff.reset();
                for u in updates {
                    inner.handle(u).await;
                }
            }
            Err(e) => {
                tracing::warn!("staff bot: getUpdates failed (retrying): {e}");
                tokio::time::sleep(wait_after(&e, &mut backoff)).await;
            }
        }
    }
}

/// Follow the ledger from `from` on and alert on new findings and failed filings.
async fn follow_ledger(inner: Arc<Inner>, mut from: u64) {
    loop {
        tokio::time::sleep(ALERT_POLL).await;
        let ev = inner.deps.capture.evidence().clone();
        match tokio::task::spawn_blocking(move || collect_alerts(&ev, from)).await {
            Ok(Ok((alerts, next))) => {
                from = next;
                let extra = alerts.len().saturating_sub(ALERTS_PER_ROUND);
                for a in alerts.iter().take(ALERTS_PER_ROUND) {
                    inner.alert(a).await;
                }
                if extra > 0 {
                    inner
                        .alert(&format!(
                            "…and {extra} more alerts (new findings or failed filings). /next works through the queue."
                        ))
                        .await;
                }
            }
            Ok(Err(e)) => tracing::warn!("staff bot: reading the ledger for alerts failed: {e}"),
            Err(e) => tracing::warn!("staff bot: alert task failed: {e}"),
        }
    }
}

/// Alerts for entries `from..` that the state has applied; returns them and where to go on.
fn collect_alerts(ev: &Evidence, from: u64) -> Result<(Vec<String>, u64), StaffBotError> {
    let upto = ev
        .state
        .applied()?
        .min(ev.ledger.size())
        .min(from.saturating_add(ENTRIES_PER_ROUND));
    let mut alerts = Vec::new();
    for i in from..upto {
        match ev.ledger.read_entry(i)?.body {
            EntryBody::Matched { .. } | EntryBody::FindingRaised { .. } => {
                if let Some(f) = ev.state.finding(&format!("F-{i}"))? {
                    let case = ev.state.case(&f.case)?;
                    alerts.push(cards::finding_alert(&f, case.as_ref()));
                }
            }
            EntryBody::FilingFinished {
                case,
                packet_id,
                channel,
                recipient,
                status,
                attempts,
                ..
            } if status == "failed" => alerts.push(cards::filing_failure_alert(
                &case, &packet_id, &channel, &recipient, attempts,
            )),
            _ => {}
        }
    }
    Ok((alerts, upto.max(from)))
}

fn keyboard(finding: &str) -> InlineKeyboardMarkup {
    InlineKeyboardMarkup::new([[
        InlineKeyboardButton::callback(
            "Approve",
            commands::button_data(Decision::Approve, finding),
        ),
        InlineKeyboardButton::callback("Reject", commands::button_data(Decision::Reject, finding)),
        InlineKeyboardButton::callback(
            "Escalate",
            commands::button_data(Decision::Escalate, finding),
        ),
    ]])
}

fn past(decision: Decision) -> &'static str {
    match decision {
        Decision::Approve => "approved",
        Decision::Reject => "rejected",
        Decision::Escalate => "escalated",
    }
}

fn help_text(chat: &StaffChat) -> String {
    let mut lines = vec![format!(
        "leakwatch staff bot. This chat acts as tg:{} ({}).",
        chat.name,
        chat.role.as_str()
    )];
    if may(chat.role, Action::Submit) {
        lines.push("/submit LINK [note] — open a case for a QQ group or t.me link".into());
    }
    lines.push("/case C-0123456789 — where a case stands".into());
    if may(chat.role, Action::Review) {
        lines.push("/next — claim the next finding and get its card".into());
        lines.push("/approve|/reject|/escalate F-123 [reason] — decide with a reason".into());
    }
    lines.join("\n")
}

impl Inner {
    fn bot_username(&self) -> Option<String> {
        self.me
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(|m| m.username.clone())
    }

    /// Send a text (plain, clipped); one retry after Telegram's flood control.
    async fn send(&self, chat: i64, text: &str, markup: Option<InlineKeyboardMarkup>) -> bool {
        let text = cards::clip(text, cards::MAX_TEXT);
        for attempt in 0..2 {
            let mut req = self.api.bot().send_message(ChatId(chat), text.clone());
            if let Some(m) = &markup {
                req = req.reply_markup(m.clone());
            }
            match req.await {
                Ok(_) => return true,
                Err(e) => {
                    let e = self.api.from_request("sendMessage", e);
                    match e {
                        TelegramError::RetryAfter { seconds, .. }
                            if attempt == 0 && seconds <= 30 =>
                        {
                            tokio::time::sleep(Duration::from_secs(seconds)).await;
                        }
                        _ => {
                            tracing::warn!("staff bot: sending to chat {chat} failed: {e}");
                            return false;
                        }
                    }
                }
            }
        }
        false
    }

    async fn alert(&self, text: &str) -> usize {
        let mut sent = 0;
        for chat in self.access.alert_targets() {
            if self.send(chat, text, None).await {
                sent += 1;
            }
        }
        sent
    }

    async fn answer_callback(&self, id: &str, text: &str, alert: bool) {
        let text = cards::clip(text, 190);
        let req = self
            .api
            .bot()
            .answer_callback_query(CallbackQueryId(id.to_string()))
            .text(text)
            .show_alert(alert);
        if let Err(e) = req.await {
            tracing::warn!(
                "staff bot: answering a button press failed: {}",
                self.api.from_request("answerCallbackQuery", e)
            );
        }
    }

    async fn remove_buttons(&self, chat: i64, message_id: i64) {
        let Ok(mid) = i32::try_from(message_id) else {
            return;
        };
        if let Err(e) = self
            .api
            .bot()
            .edit_message_reply_markup(ChatId(chat), MessageId(mid))
            .await
        {
            tracing::warn!(
                "staff bot: removing a card's buttons failed: {}",
                self.api.from_request("editMessageReplyMarkup", e)
            );
        }
    }

    fn evidence(&self) -> Arc<Evidence> {
        self.deps.capture.evidence().clone()
    }

    async fn handle(self: &Arc<Self>, u: RawUpdate) {
        if let Some(m) = u.value.get("message") {
            self.on_message(m).await;
        } else if let Some(cb) = u.value.get("callback_query") {
            self.on_button(cb).await;
        }
    }

    async fn on_message(self: &Arc<Self>, m: &Value) {
        let Some(chat_id) = m.get("chat").and_then(|c| id_of(c.get("id"))) else {
            return;
        };
        let Some(text) = m.get("text").and_then(Value::as_str) else {
            return;
        };
        let Some(command) = commands::parse(text, self.bot_username().as_deref()) else {
            return;
        };
        let Some(staff) = self.access.get(chat_id).cloned() else {
            let tell = self
                .refusals
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .should_refuse(chat_id, Instant::now());
            if tell {
                self.send(chat_id, REFUSAL, None).await;
            }
            return;
        };
        let needed = match &command {
            Command::Submit { .. } => Action::Submit,
            Command::Next | Command::Decide { .. } => Action::Review,
            Command::Case { .. } => Action::CaseSummary,
            Command::Help | Command::Usage(_) | Command::Unknown(_) => Action::Help,
        };
        if !may(staff.role, needed) {
            let text = format!(
                "That needs {}; this chat is registered as {}. /help lists what it may do.",
                needs(needed),
                staff.role.as_str()
            );
            self.send(chat_id, &text, None).await;
            return;
        }
        match command {
            Command::Help => {
                self.send(chat_id, &help_text(&staff), None).await;
            }
            Command::Usage(usage) => {
                self.send(chat_id, &format!("Usage: {usage}"), None).await;
            }
            Command::Unknown(name) => {
                self.send(
                    chat_id,
                    &format!("Unknown command /{name}. /help lists what this chat may do."),
                    None,
                )
                .await;
            }
            Command::Submit { link, note } => self.submit(&staff, link, note).await,
            Command::Case { case } => self.case(&staff, case).await,
            Command::Next => self.next(&staff).await,
            Command::Decide {
                finding,
                decision,
                reason,
            } => {
                let text = self.decide(&staff, &finding, decision, &reason).await;
                self.send(chat_id, &text.message, None).await;
            }
        }
    }

    /// `/submit`: as `POST /api/v1/cases` does it.
    async fn submit(&self, staff: &StaffChat, link: String, note: Option<String>) {
        let ev = self.evidence();
        let actor = staff.actor();
        let result = tokio::task::spawn_blocking(move || {
            crate::intake::submit(&ev, &link, note.as_deref(), &actor)
        })
        .await;
        let text = match result {
            Ok(Ok(sub)) => {
                self.deps.submitted.add(sub.group.clone());
                if let Ok(Some(case)) = self.deps.capture.evidence().state.case(&sub.case) {
                    self.deps.capture.watch(case);
                }
                if sub.new_case {
                    format!(
                        "Case {} opened for {}. /case {} shows how the bot gets in and what it finds.",
                        sub.case, sub.group, sub.case
                    )
                } else {
                    format!(
                        "{} already has case {}; this submission was added to it.",
                        sub.group, sub.case
                    )
                }
            }
            Ok(Err(e)) => format!("Not submitted: {e}"),
            Err(e) => {
                tracing::error!("staff bot: submit task failed: {e}");
                "Not submitted: an internal error (logged). Try again.".into()
            }
        };
        self.send(staff.id, &text, None).await;
    }

    async fn case(&self, staff: &StaffChat, case: String) {
        let ev = self.evidence();
        let result =
            tokio::task::spawn_blocking(move || -> Result<Option<String>, StaffBotError> {
                let Some(view) = ev.state.case(&case)? else {
                    return Ok(None);
                };
                let findings: Vec<_> = ev
                    .state
                    .findings()?
                    .into_iter()
                    .filter(|f| f.case == case)
                    .collect();
                let packets: Vec<_> = ev
                    .state
                    .packets()?
                    .into_iter()
                    .filter(|p| p.case == case)
                    .collect();
                Ok(Some(cards::case_summary(&view, &findings, &packets)))
            })
            .await;
        let text = match result {
            Ok(Ok(Some(t))) => t,
            Ok(Ok(None)) => "No such case.".into(),
            Ok(Err(e)) => {
                tracing::error!("{e}");
                "Reading the case failed (logged).".into()
            }
            Err(e) => {
                tracing::error!("staff bot: case task failed: {e}");
                "Reading the case failed (logged).".into()
            }
        };
        self.send(staff.id, &text, None).await;
    }

    /// `/next`: claim and send the card.
    async fn next(&self, staff: &StaffChat) {
        let review = self.deps.review.clone();
        let moderator = staff.actor();
        let result = tokio::task::spawn_blocking(move || match review.claim_next(&moderator)? {
            Some(f) => review.card(&f.finding).map(Some),
            None => Ok(None),
        })
        .await;
        match result {
            Ok(Ok(Some(card))) => {
                let markup = keyboard(&card.finding.finding);
                self.send(staff.id, &cards::card_text(&card), Some(markup))
                    .await;
            }
            Ok(Ok(None)) => {
                self.send(staff.id, "Nothing in the review queue for you.", None)
                    .await;
            }
            Ok(Err(e)) => {
                tracing::warn!("staff bot: /next for {}: {e}", staff.actor());
                self.send(
                    staff.id,
                    &format!("Could not get the next finding: {e}"),
                    None,
                )
                .await;
            }
            Err(e) => {
                tracing::error!("staff bot: /next task failed: {e}");
                self.send(staff.id, "Could not get the next finding (logged).", None)
                    .await;
            }
        }
    }

    /// Record a decision; after an approval, build the packets it allows in the background.
    async fn decide(
        self: &Arc<Self>,
        staff: &StaffChat,
        finding: &str,
        decision: Decision,
        reason: &str,
    ) -> Decided {
        let review = self.deps.review.clone();
        let moderator = staff.actor();
        let (f, r) = (finding.to_string(), reason.to_string());
        let result =
            tokio::task::spawn_blocking(move || review.decide(&f, &moderator, decision, &r)).await;
        match result {
            Ok(Ok(view)) => {
                if decision == Decision::Approve {
                    self.build_packets(staff.clone(), finding.to_string());
                }
                Decided {
                    done: true,
                    stale: true,
                    message: format!(
                        "{finding} {} by {}; it is now {}.",
                        past(decision),
                        staff.actor(),
                        view.status
                    ),
                }
            }
            Ok(Err(
                e @ (ReviewError::Conflict(_) | ReviewError::NotFound(_) | ReviewError::Invalid(_)),
            )) => Decided {
                done: false,
                stale: true,
                message: format!("Not recorded: {e}. /next gives a fresh card."),
            },
            Ok(Err(e)) => {
                tracing::error!("staff bot: decision on {finding} failed: {e}");
                Decided {
                    done: false,
                    stale: false,
                    message: "Not recorded: the evidence store failed (logged). Try again.".into(),
                }
            }
            Err(e) => {
                tracing::error!("staff bot: decision task failed: {e}");
                Decided {
                    done: false,
                    stale: false,
                    message: "Not recorded: an internal error (logged). Try again.".into(),
                }
            }
        }
    }

    fn build_packets(self: &Arc<Self>, staff: StaffChat, finding: String) {
        let inner = self.clone();
        tokio::spawn(async move {
            let ev = inner.evidence();
            let cfg = inner.deps.packets.clone();
            let actor = staff.actor();
            let f = finding.clone();
            let built = tokio::task::spawn_blocking(move || {
                crate::packets::assemble::build_due(&ev, &f, &cfg, &actor)
            })
            .await;
            let text = match built {
                Ok(Ok(packets)) if packets.is_empty() => return,
                Ok(Ok(packets)) => format!(
                    "Packets built for {finding}: {}.",
                    packets
                        .iter()
                        .map(|p| format!("{} {}", p.kind, p.packet_id))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Ok(Err(e)) => {
                    tracing::error!("staff bot: packets for {finding}: {e}");
                    format!("Building the packets for {finding} failed: {e}")
                }
                Err(e) => {
                    tracing::error!("staff bot: packet task failed: {e}");
                    format!("Building the packets for {finding} failed (logged).")
                }
            };
            inner.send(staff.id, &text, None).await;
        });
    }

    /// A card's button.
    async fn on_button(self: &Arc<Self>, cb: &Value) {
        let Some(id) = cb
            .get("id")
            .and_then(Value::as_str)
            .filter(|i| i.len() <= 128)
        else {
            return;
        };
        let message = cb.get("message");
        let chat_id = message
            .and_then(|m| m.get("chat"))
            .and_then(|c| id_of(c.get("id")));
        let message_id = message.and_then(|m| id_of(m.get("message_id")));
        let Some(staff) = chat_id.and_then(|c| self.access.get(c)).cloned() else {
            self.answer_callback(id, REFUSAL, true).await;
            return;
        };
        if !may(staff.role, Action::Review) {
            self.answer_callback(id, "Review needs the moderator role.", true)
                .await;
            return;
        }
        let Some((decision, finding)) = cb
            .get("data")
            .and_then(Value::as_str)
            .and_then(commands::parse_button)
        else {
            self.answer_callback(id, "This button is not one of leakwatch's.", true)
                .await;
            return;
        };
        let outcome = self.decide(&staff, &finding, decision, BUTTON_REASON).await;
        self.answer_callback(id, &outcome.message, !outcome.done)
            .await;
        if outcome.stale
            && let Some(mid) = message_id
        {
            self.remove_buttons(staff.id, mid).await;
        }
        if outcome.done {
            self.send(staff.id, &outcome.message, None).await;
        }
    }
}

/// How a decision went, for the reply.
struct Decided {
    done: bool,
    /// The card's buttons no longer apply (decided, or the finding moved on).
    stale: bool,
    message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StaffRole;

    #[test]
    fn help_lists_what_the_role_may_do() {
        let chat = |role| StaffChat {
            id: 1,
            role,
            name: "x".into(),
        };
        let h = help_text(&chat(StaffRole::Intake));
        assert!(h.contains("/submit") && !h.contains("/next"));
        let h = help_text(&chat(StaffRole::Moderator));
        assert!(!h.contains("/submit") && h.contains("/next"));
        let h = help_text(&chat(StaffRole::Legal));
        assert!(h.contains("/case") && !h.contains("/next") && !h.contains("/submit"));
    }

    #[test]
    fn the_keyboard_carries_the_three_decisions() {
        let k = keyboard("F-42");
        let json = serde_json::to_value(&k).unwrap();
        let data: Vec<&str> = json["inline_keyboard"][0]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["callback_data"].as_str().unwrap())
            .collect();
        assert_eq!(data, vec!["rv:a:F-42", "rv:r:F-42", "rv:e:F-42"]);
    }
}
