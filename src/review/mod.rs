//! Review: the moderators' queue between a finding and anything leaving the company.
//!
//! A finding (a verified sample, or a follow-up leakwatch raised itself) waits in the queue
//! until a moderator claims it. A claim is exclusive for `claim_timeout`; within it only the
//! holder may decide. Decisions are `approve`, `reject` or `escalate`, each with a reason.
//! Under the four-eyes rule a finding needs approvals from two different moderators before the
//! police packet is built; the takedown and breach-notice packets follow the first approval.
//!
//! Invariants:
//! - every claim, reveal and decision is a ledger entry naming the moderator, appended before
//!   the call returns; the finding's status in `state` is derived from those entries alone;
//! - claims and decisions are serialised by one lock around "read the finding, append the
//!   entry", so two moderators racing for the queue never hold the same finding (the ledger has
//!   one writer process, so a process-wide lock is enough);
//! - the sample is shown masked (`张*`, `138****5678`, address cut to the district); the
//!   unmasked rows come only from [`Review::reveal`], which records who asked and why.

#[doc(hidden)]
pub mod fixture;
pub mod mask;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::evidence::{Evidence, EvidenceError};
use crate::extract::SampleRow;
use crate::ledger::LedgerError;
use crate::ledger::entry::{EntryBody, LedgerEntry, timestamp};
use crate::state::{CaseView, FindingView, StateError};

pub use mask::{MaskedRow, mask_row};

/// Longest reason accepted for a decision or a reveal.
pub const MAX_REASON: usize = 2000;

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("no finding {0}")]
    NotFound(String),
    /// The request is valid but the finding's state forbids it (claimed by someone else,
    /// already decided, approved twice by one moderator).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Evidence(#[from] EvidenceError),
    #[error("{0}")]
    State(#[from] StateError),
    #[error("{0}")]
    Ledger(#[from] LedgerError),
    #[error("sample of {finding}: {detail}")]
    Sample { finding: String, detail: String },
}

/// A moderator's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Reject,
    Escalate,
}

impl Decision {
    pub fn parse(s: &str) -> Option<Decision> {
        match s {
            "approve" => Some(Decision::Approve),
            "reject" => Some(Decision::Reject),
            "escalate" => Some(Decision::Escalate),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
            Decision::Escalate => "escalate",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ReviewSettings {
    pub claim_timeout: Duration,
    /// Police packets need two approvals from different moderators.
    pub four_eyes: bool,
}

impl ReviewSettings {
    pub fn from_config(config: &crate::config::Config) -> ReviewSettings {
        ReviewSettings {
            claim_timeout: Duration::from_secs(config.review.claim_timeout_s.max(1)),
            four_eyes: config.review.four_eyes,
        }
    }

    pub fn required_approvals(&self) -> u32 {
        if self.four_eyes { 2 } else { 1 }
    }
}

/// What a moderator sees of a finding: everything needed to decide, with PII masked.
#[derive(Debug, Clone, Serialize)]
pub struct FindingCard {
    pub finding: FindingView,
    pub case: Option<CaseView>,
    /// The sample as sold, masked.
    pub sample: Vec<MaskedRow>,
    /// Ledger indexes of the captures behind the finding (the message that carried the sample).
    pub captures: Vec<u64>,
    /// Ledger index of the `extracted` entry the sample came from.
    pub extraction: Option<u64>,
}

/// A decision and the packets it led to.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionOutcome {
    pub finding: FindingView,
    pub packets: Vec<crate::state::PacketView>,
    pub packet_error: Option<String>,
}

pub struct Review {
    ev: Arc<Evidence>,
    settings: ReviewSettings,
    /// Serialises "read the finding, append the entry" (see the module invariants).
    lock: Mutex<()>,
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// True when `f` is claimed by someone other than `moderator` and the claim still runs.
fn held_by_other(f: &FindingView, moderator: &str, now: DateTime<Utc>) -> bool {
    match (&f.claimed_by, f.claim_until.as_deref().and_then(parse_time)) {
        (Some(holder), Some(until)) => holder != moderator && until > now,
        _ => false,
    }
}

fn held_by(f: &FindingView, moderator: &str, now: DateTime<Utc>) -> bool {
    match (&f.claimed_by, f.claim_until.as_deref().and_then(parse_time)) {
        (Some(holder), Some(until)) => holder == moderator && until > now,
        _ => false,
    }
}

fn check_reason(reason: &str) -> Result<&str, ReviewError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(ReviewError::Invalid("a reason is required".into()));
    }
    if reason.len() > MAX_REASON {
        return Err(ReviewError::Invalid(format!(
            "reason is {} bytes; at most {MAX_REASON}",
            reason.len()
        )));
    }
    Ok(reason)
}

fn check_moderator(moderator: &str) -> Result<(), ReviewError> {
    if moderator.trim().is_empty() || moderator.len() > 200 {
        return Err(ReviewError::Invalid(
            "moderator name is empty or too long".into(),
        ));
    }
    Ok(())
}

impl Review {
    pub fn new(ev: Arc<Evidence>, settings: ReviewSettings) -> Review {
        Review {
            ev,
            settings,
            lock: Mutex::new(()),
        }
    }

    pub fn settings(&self) -> &ReviewSettings {
        &self.settings
    }

    pub fn evidence(&self) -> &Arc<Evidence> {
        &self.ev
    }

    /// Open findings in the order they are handed out: escalated first, then oldest first.
    pub fn queue(&self) -> Result<Vec<FindingView>, ReviewError> {
        let mut open: Vec<FindingView> = self
            .ev
            .state
            .findings()?
            .into_iter()
            .filter(FindingView::open)
            .collect();
        open.sort_by_key(|f| (f.status != "escalated", f.matched_entry));
        Ok(open)
    }

    fn finding(&self, id: &str) -> Result<FindingView, ReviewError> {
        self.ev
            .state
            .finding(id)?
            .ok_or_else(|| ReviewError::NotFound(id.to_string()))
    }

    fn append_claim(&self, f: &FindingView, moderator: &str) -> Result<FindingView, ReviewError> {
        let until = Utc::now()
            + chrono::Duration::from_std(self.settings.claim_timeout)
                .unwrap_or_else(|_| chrono::Duration::minutes(30));
        self.ev.record(&LedgerEntry::new(
            moderator,
            EntryBody::ReviewClaimed {
                case: f.case.clone(),
                finding: f.finding.clone(),
                until: timestamp(until),
            },
        ))?;
        self.finding(&f.finding)
    }

    /// Whether `moderator` may take `f` now (open, not held by another, and not waiting for a
    /// second approval that must come from someone else).
    fn claimable(&self, f: &FindingView, moderator: &str, now: DateTime<Utc>) -> bool {
        f.open()
            && !held_by_other(f, moderator, now)
            && !(f.status == "awaiting_second_approval" && f.approvers().contains(&moderator))
    }

    /// Claim the next finding for `moderator`: the one it already holds, else the first
    /// claimable in queue order. `None` when the queue has nothing for it.
    pub fn claim_next(&self, moderator: &str) -> Result<Option<FindingView>, ReviewError> {
        check_moderator(moderator)?;
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let now = Utc::now();
        let queue = self.queue()?;
        if let Some(f) = queue.iter().find(|f| held_by(f, moderator, now)) {
            return Ok(Some(f.clone()));
        }
        match queue.iter().find(|f| self.claimable(f, moderator, now)) {
            Some(f) => self.append_claim(f, moderator).map(Some),
            None => Ok(None),
        }
    }

    /// Claim one finding by id.
    pub fn claim(&self, id: &str, moderator: &str) -> Result<FindingView, ReviewError> {
        check_moderator(moderator)?;
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let f = self.finding(id)?;
        let now = Utc::now();
        if held_by(&f, moderator, now) {
            return Ok(f);
        }
        if !f.open() {
            return Err(ReviewError::Conflict(format!(
                "finding {id} is {} and no longer in the queue",
                f.status
            )));
        }
        if held_by_other(&f, moderator, now) {
            return Err(ReviewError::Conflict(format!(
                "finding {id} is claimed by {} until {}",
                f.claimed_by.as_deref().unwrap_or("?"),
                f.claim_until.as_deref().unwrap_or("?")
            )));
        }
        if !self.claimable(&f, moderator, now) {
            return Err(ReviewError::Conflict(format!(
                "finding {id} needs its second approval from another moderator"
            )));
        }
        self.append_claim(&f, moderator)
    }

    /// Decide a finding the moderator holds.
    pub fn decide(
        &self,
        id: &str,
        moderator: &str,
        decision: Decision,
        reason: &str,
    ) -> Result<FindingView, ReviewError> {
        check_moderator(moderator)?;
        let reason = check_reason(reason)?;
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let f = self.finding(id)?;
        if !f.open() {
            return Err(ReviewError::Conflict(format!(
                "finding {id} is already {}",
                f.status
            )));
        }
        if !held_by(&f, moderator, Utc::now()) {
            return Err(ReviewError::Conflict(format!(
                "claim finding {id} before deciding it (or the claim expired)"
            )));
        }
        if decision == Decision::Approve && f.approvers().contains(&moderator) {
            return Err(ReviewError::Conflict(format!(
                "{moderator} already approved {id}; the second approval must come from another moderator"
            )));
        }
        self.ev.record(&LedgerEntry::new(
            moderator,
            EntryBody::ReviewDecided {
                case: f.case.clone(),
                finding: f.finding.clone(),
                decision: decision.as_str().into(),
                reason: reason.to_string(),
                required_approvals: self.settings.required_approvals(),
            },
        ))?;
        self.finding(id)
    }

    /// [`Review::decide`], then build the packets the decision allows (see
    /// [`crate::packets::assemble::build_due`]). The decision stands even when a packet cannot be
    /// built; the error is returned beside it, and building is retried by the next call.
    pub fn decide_and_build(
        &self,
        id: &str,
        moderator: &str,
        decision: Decision,
        reason: &str,
        packets: &crate::config::PacketsConfig,
    ) -> Result<DecisionOutcome, ReviewError> {
        let finding = self.decide(id, moderator, decision, reason)?;
        let (packets, packet_error) =
            match crate::packets::assemble::build_due(&self.ev, id, packets, moderator) {
                Ok(p) => (p, None),
                Err(e) => {
                    tracing::error!(finding = id, "packets not built: {e}");
                    (Vec::new(), Some(e.to_string()))
                }
            };
        Ok(DecisionOutcome {
            finding,
            packets,
            packet_error,
        })
    }

    /// The card a moderator reviews: masked sample, counts, suspects, capture links.
    pub fn card(&self, id: &str) -> Result<FindingCard, ReviewError> {
        let f = self.finding(id)?;
        let case = self.ev.state.case(&f.case)?;
        let sample = self.sample_rows(&f)?;
        Ok(FindingCard {
            sample: sample.rows.iter().map(mask_row).collect(),
            captures: sample.capture.into_iter().collect(),
            extraction: sample.extraction,
            finding: f,
            case,
        })
    }

    /// The unmasked sample: only with a reason, and recorded before it is returned.
    pub fn reveal(
        &self,
        id: &str,
        moderator: &str,
        reason: &str,
    ) -> Result<Vec<SampleRow>, ReviewError> {
        check_moderator(moderator)?;
        let reason = check_reason(reason)?;
        let f = self.finding(id)?;
        let rows = self.sample_rows(&f)?.rows;
        self.ev.record(&LedgerEntry::new(
            moderator,
            EntryBody::PiiRevealed {
                case: f.case.clone(),
                finding: f.finding.clone(),
                reason: reason.to_string(),
            },
        ))?;
        Ok(rows)
    }

    /// The sample rows behind a finding (decrypted), with the extraction and capture entries.
    pub fn sample_rows(&self, f: &FindingView) -> Result<Sample, ReviewError> {
        sample_rows(&self.ev, f)
    }
}

/// The sample behind a finding.
#[derive(Debug, Default)]
pub struct Sample {
    pub rows: Vec<SampleRow>,
    /// The `extracted` entry the rows came from, and the `captured` entry it analysed.
    pub extraction: Option<u64>,
    pub capture: Option<u64>,
}

/// The sample rows of a finding: matched entry → extracted entry → rows blob.
pub fn sample_rows(ev: &Evidence, f: &FindingView) -> Result<Sample, ReviewError> {
    if f.kind != "verified_sample" {
        return Ok(Sample::default());
    }
    let bad = |detail: String| ReviewError::Sample {
        finding: f.finding.clone(),
        detail,
    };
    let matched = ev.ledger.read_entry(f.matched_entry)?;
    let EntryBody::Matched { extraction, .. } = matched.body else {
        return Err(bad(format!(
            "entry {} is not a match result",
            f.matched_entry
        )));
    };
    let Some(extraction) = extraction else {
        return Ok(Sample::default());
    };
    let extracted = ev.ledger.read_entry(extraction)?;
    let EntryBody::Extracted {
        rows_blob, capture, ..
    } = extracted.body
    else {
        return Err(bad(format!("entry {extraction} is not an extraction")));
    };
    let rows = match rows_blob {
        Some(b) => {
            let bytes = ev.blobs.get(&b.sha256).map_err(EvidenceError::from)?;
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("rows blob: {e}")))?
        }
        None => Vec::new(),
    };
    Ok(Sample {
        rows,
        extraction: Some(extraction),
        capture: Some(capture),
    })
}

#[cfg(test)]
mod tests;
