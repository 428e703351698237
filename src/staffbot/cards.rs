//! The texts the staff bot sends: review cards, case summaries, alerts.
//!
//! Invariant: nothing here can show a victim's personal data. A card is built from a
//! [`FindingCard`], whose sample is already masked ([`crate::review::MaskedRow`]); summaries and
//! alerts use counts, ids and statuses only (never a case's free-text note). Texts are plain
//! (no parse mode), so a group title chosen by a seller cannot inject markup, and each is cut
//! below Telegram's 4,096-character limit.

use serde_json::Value;

use crate::review::FindingCard;
use crate::state::{CaseView, FindingView, PacketView};

/// Longest text sent in one message (Telegram allows 4,096).
pub const MAX_TEXT: usize = 3900;
/// Sample rows shown on a card.
const CARD_ROWS: usize = 5;

/// Cut `text` to `max` characters, marking the cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A line of text from a seller or a platform, made safe for one line of a message.
fn label(text: &str, max: usize) -> String {
    clip(
        &text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>(),
        max,
    )
}

fn yuan(fen: u64) -> String {
    format!("¥{}.{:02}", fen / 100, fen % 100)
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|s| label(s, 20))
                .take(6)
                .collect()
        })
        .unwrap_or_default()
}

/// One line on what the group offers (price, volume, platforms, data, freshness, cities).
pub fn offer_line(offer: &Value) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(p) = offer.get("price_per_record_fen").and_then(Value::as_u64) {
        parts.push(format!("{} per record", yuan(p)));
    }
    if let Some(v) = offer.get("volume_records").and_then(Value::as_u64) {
        parts.push(format!("{v} records"));
    }
    if let Some(v) = offer.get("daily_volume").and_then(Value::as_u64) {
        parts.push(format!("{v} a day"));
    }
    for key in ["platforms", "data_types", "cities"] {
        let v = strings(offer, key);
        if !v.is_empty() {
            parts.push(v.join("/"));
        }
    }
    if let Some(f) = offer.get("freshness").and_then(Value::as_str) {
        parts.push(label(f, 20));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

fn group_line(case: Option<&CaseView>) -> String {
    match case {
        Some(c) => {
            let name = c
                .group_name
                .as_deref()
                .map(|n| format!(" \"{}\"", label(n, 60)))
                .unwrap_or_default();
            format!("{} {}:{}{name}", c.case, c.platform, label(&c.group_id, 80))
        }
        None => "no case on record".into(),
    }
}

/// The review card: what a moderator needs to decide, with the sample masked.
pub fn card_text(card: &FindingCard) -> String {
    let f = &card.finding;
    let mut lines = vec![
        format!("Finding {} ({})", f.finding, f.kind),
        format!("Case {}", group_line(card.case.as_ref())),
        format!(
            "Status: {}{}",
            f.status,
            match (&f.claimed_by, &f.claim_until) {
                (Some(by), Some(until)) => format!(", claimed by {by} until {until}"),
                _ => String::new(),
            }
        ),
    ];
    if f.kind == "verified_sample" {
        lines.push(format!(
            "Sample: {} rows checked, {} matched the platform's records: {} customers, {} orders",
            f.rows_checked, f.rows_matched, f.distinct_customers, f.distinct_orders
        ));
        if let (Some(a), Some(b)) = (&f.first_order_at, &f.last_order_at) {
            lines.push(format!("Orders from {a} to {b}"));
        }
    } else if let Some(d) = &f.detail {
        lines.push(format!("Raised: {}", label(d, 300)));
    }
    if let Some(o) = f.offer.as_ref().and_then(offer_line) {
        lines.push(format!("Offer: {o}"));
    }
    if !f.suspects.is_empty() {
        lines.push(format!(
            "Suspected source: {}",
            f.suspects
                .iter()
                .take(5)
                .map(|s| label(s, 60))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    if !f.canary_partners.is_empty() {
        lines.push(format!(
            "Canary records of: {}",
            f.canary_partners
                .iter()
                .take(5)
                .map(|s| label(s, 40))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let approvals = f.approvers();
    if !approvals.is_empty() {
        lines.push(format!(
            "Approved so far by: {} ({} needed)",
            approvals.join(", "),
            f.required_approvals
        ));
    }
    if !card.sample.is_empty() {
        lines.push(format!(
            "Sample as sold, masked ({} of {} rows):",
            card.sample.len().min(CARD_ROWS),
            card.sample.len()
        ));
        for (i, row) in card.sample.iter().take(CARD_ROWS).enumerate() {
            let cells: Vec<String> = [&row.name, &row.phone, &row.address, &row.order_time]
                .into_iter()
                .flatten()
                .map(|c| label(c, 60))
                .collect();
            lines.push(format!("{}. {}", i + 1, cells.join(" · ")));
        }
    }
    if !card.captures.is_empty() {
        lines.push(format!(
            "Evidence: capture entry {}{}",
            card.captures
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            card.extraction
                .map(|e| format!(", extraction entry {e}"))
                .unwrap_or_default()
        ));
    }
    lines.push(format!(
        "Decide with the buttons (reason recorded: \"{}\"), or give your own: /reject {} <reason>",
        super::commands::BUTTON_REASON,
        f.finding
    ));
    clip(&lines.join("\n"), MAX_TEXT)
}

/// `/case`: where a case stands, in counts.
pub fn case_summary(case: &CaseView, findings: &[FindingView], packets: &[PacketView]) -> String {
    let mut lines = vec![
        format!("Case {}", group_line(Some(case))),
        format!(
            "Opened {} by {}",
            case.opened_at,
            label(&case.opened_by, 60)
        ),
        format!(
            "Watching: {}",
            match &case.ended {
                Some(why) => format!("ended ({why})"),
                None => "yes".into(),
            }
        ),
        format!(
            "Join: {}",
            case.join_status.as_deref().unwrap_or("not attempted yet")
        ),
    ];
    if case.join_status.as_deref() != Some("joined")
        && let Some(detail) = &case.join_detail
    {
        lines.push(format!("  {}", label(detail, 600)));
    }
    if let Some(n) = case.member_count {
        lines.push(format!("Members: {n}"));
    }
    if let Some(o) = case.last_offer.as_ref().and_then(offer_line) {
        lines.push(format!("Latest offer: {o}"));
    }
    let mut by_status: std::collections::BTreeMap<&str, usize> = Default::default();
    for f in findings {
        *by_status.entry(f.status.as_str()).or_default() += 1;
    }
    lines.push(format!(
        "Findings: {}{}",
        findings.len(),
        if by_status.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                by_status
                    .iter()
                    .map(|(s, n)| format!("{n} {s}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    ));
    lines.push(format!(
        "Customers in verified samples: {}",
        findings.iter().map(|f| f.distinct_customers).sum::<u64>()
    ));
    if !packets.is_empty() {
        lines.push(format!(
            "Packets: {}",
            packets
                .iter()
                .map(|p| format!("{} {} ({})", p.kind, p.packet_id, p.filing_status()))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let t = &case.tracking;
    if let Some(filed) = &t.takedown_filed_at {
        lines.push(format!(
            "Takedown filed {filed}; {} probes, last: {}{}",
            t.probes,
            t.last_result.as_deref().unwrap_or("none yet"),
            t.gone_at
                .as_ref()
                .map(|g| format!("; gone since {g}"))
                .unwrap_or_default()
        ));
    }
    clip(&lines.join("\n"), MAX_TEXT)
}

/// Alert: a new finding waits for review.
pub fn finding_alert(f: &FindingView, case: Option<&CaseView>) -> String {
    let what = if f.kind == "verified_sample" {
        format!(
            "{} of {} sample rows matched real orders ({} customers)",
            f.rows_matched, f.rows_checked, f.distinct_customers
        )
    } else {
        format!("raised: {}", label(&f.kind, 40))
    };
    clip(
        &format!(
            "New finding {} in case {}: {what}. Send /next to review.",
            f.finding,
            group_line(case)
        ),
        MAX_TEXT,
    )
}

/// Alert: sending a packet failed for good.
pub fn filing_failure_alert(
    case: &str,
    packet: &str,
    channel: &str,
    recipient: &str,
    attempts: u32,
) -> String {
    clip(
        &format!(
            "Filing failed: packet {packet} (case {case}) could not be sent by {} to {} after {attempts} attempts.",
            label(channel, 40),
            label(recipient, 120)
        ),
        MAX_TEXT,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_and_labels() {
        assert_eq!(clip("abc", 5), "abc");
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(label("a\nb\u{7}c", 10), "a b c");
        assert_eq!(yuan(10), "¥0.10");
        assert_eq!(yuan(1250), "¥12.50");
        let o = serde_json::json!({"price_per_record_fen": 10, "volume_records": 10000, "platforms": ["美团"], "data_types": ["外卖"], "freshness": "当天"});
        assert_eq!(
            offer_line(&o).unwrap(),
            "¥0.10 per record, 10000 records, 美团, 外卖, 当天"
        );
        assert_eq!(offer_line(&serde_json::json!({})), None);
    }
}
