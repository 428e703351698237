//! Takedown tracking: once a takedown packet is filed, the group is probed on a schedule until
//! it is gone. Each probe is evidence — the adapter's answer is a blob and a `tracking_probed`
//! entry (`still_up`, `gone`, `unknown`). A group still up `escalate_after_days` after the
//! filing raises a `takedown_ignored` finding (once), which goes to the review queue: re-file
//! or escalate to police.
//!
//! A group the capture monitor already saw end (`group_ended`, e.g. the owner dismissed it) is
//! still probed once, so the "gone" rests on the platform's own answer as well.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::adapters::{GroupRef, GroupStatus, Platform};
use crate::capture::CaptureService;
use crate::config::TrackingConfig;
use crate::evidence::{Evidence, EvidenceError};
use crate::ledger::entry::{BlobRef, EntryBody, LedgerEntry};
use crate::state::CaseView;

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Cases whose takedown was filed and whose group is not known gone yet.
pub fn due(ev: &Evidence) -> Result<Vec<CaseView>, EvidenceError> {
    Ok(ev
        .state
        .cases()
        .map_err(EvidenceError::from)?
        .into_iter()
        .filter(|c| c.tracking.takedown_filed_at.is_some() && c.tracking.gone_at.is_none())
        .collect())
}

/// Probe one case's group and record the answer; raise the escalation when it is overdue.
pub async fn probe_case(
    ev: &Arc<Evidence>,
    capture: &CaptureService,
    cfg: &TrackingConfig,
    case: &CaseView,
) -> Result<String, EvidenceError> {
    let platform = if case.platform == "telegram" {
        Platform::Telegram
    } else {
        Platform::Qq
    };
    let group = GroupRef {
        platform,
        id: case.group_id.clone(),
    };
    let (result, detail) = match capture.adapter(platform) {
        None => (
            "unknown",
            format!("no {} adapter configured", case.platform),
        ),
        Some(adapter) => match adapter.probe(&group).await {
            Ok(GroupStatus::Gone) => ("gone", "the platform reports the group gone".to_string()),
            Ok(GroupStatus::NotMember) => (
                "unknown",
                "the bot account is no longer a member; the group may still exist".to_string(),
            ),
            Ok(GroupStatus::Active { member_count }) => (
                "still_up",
                format!(
                    "the group is active ({} members)",
                    member_count.map_or("?".to_string(), |n| n.to_string())
                ),
            ),
            Err(e) => ("unknown", format!("probe failed: {e}")),
        },
    };
    let at = Utc::now();
    let answer = serde_json::json!({
        "case": case.case,
        "platform": case.platform,
        "group_id": case.group_id,
        "probed_at": crate::ledger::entry::timestamp(at),
        "result": result,
        "detail": detail,
    });
    let bytes = serde_json::to_vec(&answer).unwrap_or_default();
    let evidence = BlobRef {
        sha256: ev.blobs.put(&bytes)?,
        size: bytes.len() as u64,
        media_type: "application/json".into(),
        pii: false,
    };
    ev.record_async(&LedgerEntry::new(
        "system:tracking",
        EntryBody::TrackingProbed {
            case: case.case.clone(),
            result: result.into(),
            detail: detail.clone(),
            evidence,
        },
    ))
    .await?;
    let filed = case
        .tracking
        .takedown_filed_at
        .as_deref()
        .and_then(parse_time);
    let overdue = filed.is_some_and(|f| {
        (at - f).num_milliseconds() as f64 >= cfg.escalate_after_days * 86_400_000.0
    });
    if result == "still_up" && overdue && case.tracking.escalated_at.is_none() {
        ev.record_async(&LedgerEntry::new(
            "system:tracking",
            EntryBody::FindingRaised {
                case: case.case.clone(),
                reason: "takedown_ignored".into(),
                detail: format!(
                    "group still up {:.1} days after the takedown was filed: re-file or escalate to police",
                    cfg.escalate_after_days
                ),
                about: None,
            },
        ))
        .await?;
    }
    Ok(result.to_string())
}

/// Probe every due case every `probe_interval_s`, until the task is aborted.
pub fn spawn(
    ev: Arc<Evidence>,
    capture: Arc<CaptureService>,
    cfg: TrackingConfig,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let interval = Duration::from_secs(cfg.probe_interval_s.max(1));
        loop {
            match due(&ev) {
                Ok(cases) => {
                    for case in cases {
                        if let Err(e) = probe_case(&ev, &capture, &cfg, &case).await {
                            tracing::warn!(case = %case.case, "tracking probe not recorded: {e}");
                        }
                    }
                }
                Err(e) => tracing::warn!("tracking: {e}"),
            }
            tokio::time::sleep(interval).await;
        }
    })
}
