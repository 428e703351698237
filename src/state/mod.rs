//! State: the queryable views later stages need (cases, groups, captures by group), kept in
//! sled trees.
//!
//! Invariant: state is a *view* of the ledger. It is changed only by [`State::apply`] of a
//! ledger entry, it records how many entries it has applied and the Merkle root at that size,
//! and it can always be thrown away and rebuilt. On open it is rebuilt automatically when it is
//! missing, cannot be opened, is ahead of the ledger, or was built from a different ledger; when
//! it is merely behind it catches up. Applying an entry twice leaves the same state (no
//! counters are stored, only keys), so a crash between an apply and the `applied` mark is
//! harmless.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ledger::entry::{EntryBody, LedgerEntry};
use crate::ledger::{Ledger, LedgerError};

const META_APPLIED: &[u8] = b"applied";
const META_ROOT: &[u8] = b"root";
const TREES: [&str; 8] = [
    "meta",
    "cases",
    "groups",
    "captures",
    "case_entries",
    "cursors",
    "findings",
    "packets",
];

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: state store: {message}")]
    Store { path: String, message: String },
    #[error("{0}")]
    Ledger(#[from] LedgerError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// A case as intake opened it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseView {
    pub case: String,
    pub platform: String,
    pub group_id: String,
    pub link: String,
    pub note: Option<String>,
    pub opened_at: String,
    pub opened_by: String,
    /// Ledger index of the `case_opened` entry.
    pub opened_entry: u64,
    /// The latest join status (`joined`, `awaiting_invite`, ...) and its detail.
    #[serde(default)]
    pub join_status: Option<String>,
    #[serde(default)]
    pub join_detail: Option<String>,
    #[serde(default)]
    pub group_name: Option<String>,
    #[serde(default)]
    pub member_count: Option<u64>,
    /// SHA-256 of the latest group-info and member-list blobs (to record snapshots on change).
    #[serde(default)]
    pub last_snapshot: Option<(String, Option<String>)>,
    /// Why the group stopped being watched (`bot_removed`, `dismissed`), if it did.
    #[serde(default)]
    pub ended: Option<String>,
    /// The latest offer extracted from the group (price, volume, platforms, ...).
    #[serde(default)]
    pub last_offer: Option<serde_json::Value>,
    /// Takedown tracking, once a takedown was filed.
    #[serde(default)]
    pub tracking: TrackingView,
}

/// A finding: a verified sample from a watched group, waiting for review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingView {
    /// `F-<ledger index of the matched entry>`.
    pub finding: String,
    pub case: String,
    pub matched_entry: u64,
    pub rows_checked: u64,
    pub rows_matched: u64,
    pub distinct_customers: u64,
    pub distinct_orders: u64,
    pub first_order_at: Option<String>,
    pub last_order_at: Option<String>,
    pub canary_partners: Vec<String>,
    pub suspects: Vec<String>,
    /// The group's latest offer when the sample was verified.
    pub offer: Option<serde_json::Value>,
    /// `new`, `escalated`, `awaiting_second_approval`, `approved` or `rejected`.
    pub status: String,
    pub created_at: String,
    /// `verified_sample` (from a match) or the reason leakwatch raised it (`takedown_ignored`).
    #[serde(default = "verified_sample")]
    pub kind: String,
    /// For raised findings: what happened, and the packet or finding it follows up.
    #[serde(default)]
    pub detail: Option<String>,
    /// The moderator holding the finding and until when (RFC 3339); a decision releases it.
    #[serde(default)]
    pub claimed_by: Option<String>,
    #[serde(default)]
    pub claim_until: Option<String>,
    #[serde(default)]
    pub decisions: Vec<DecisionView>,
    /// Approvals needed before the police packet (2 under the four-eyes rule).
    #[serde(default)]
    pub required_approvals: u32,
    /// Moderators who saw the unmasked sample.
    #[serde(default)]
    pub reveals: Vec<String>,
    /// Ids of the packets built from it.
    #[serde(default)]
    pub packets: Vec<String>,
}

fn verified_sample() -> String {
    "verified_sample".into()
}

impl FindingView {
    /// Distinct moderators who approved it.
    pub fn approvers(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for d in &self.decisions {
            if d.decision == "approve" && !out.contains(&d.moderator.as_str()) {
                out.push(&d.moderator);
            }
        }
        out
    }

    /// Still waiting for a moderator (new, escalated, or one approval short).
    pub fn open(&self) -> bool {
        matches!(
            self.status.as_str(),
            "new" | "escalated" | "awaiting_second_approval"
        )
    }
}

/// One moderator decision on a finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionView {
    pub moderator: String,
    pub decision: String,
    pub reason: String,
    pub at: String,
    pub entry: u64,
}

/// A packet built from an approved finding, and how its filing stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PacketView {
    pub packet_id: String,
    pub case: String,
    pub finding: String,
    pub kind: String,
    pub version: u32,
    pub built_entry: u64,
    pub built_at: String,
    pub files: Vec<crate::ledger::entry::PacketFileRef>,
    /// One per recipient, in the order filing started.
    pub filings: Vec<FilingView>,
}

impl PacketView {
    /// `unfiled`, `filing`, `filed` (every recipient), `failed` (any recipient gave up).
    pub fn filing_status(&self) -> &'static str {
        if self.filings.is_empty() {
            "unfiled"
        } else if self.filings.iter().any(|f| f.status == "failed") {
            "failed"
        } else if self.filings.iter().all(|f| f.status == "filed") {
            "filed"
        } else {
            "filing"
        }
    }
}

/// Filing of one packet to one recipient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilingView {
    pub channel: String,
    pub recipient: String,
    /// `retrying`, `filed` or `failed`.
    pub status: String,
    pub attempts: u32,
    pub message_id: Option<String>,
    pub last_answer: String,
    pub updated_at: String,
}

/// Whether a group came down after its takedown was filed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TrackingView {
    /// When the first takedown packet of the case was filed.
    pub takedown_filed_at: Option<String>,
    pub last_probe_at: Option<String>,
    /// `still_up`, `gone` or `unknown`.
    pub last_result: Option<String>,
    pub probes: u64,
    pub gone_at: Option<String>,
    /// When a `takedown_ignored` finding was raised.
    pub escalated_at: Option<String>,
}

/// Where the next history backfill of a group starts: the newest message of the last completed
/// backfill. Only a completed backfill moves it — live captures do not, so a crash between
/// them can never make a later backfill skip a gap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureCursor {
    pub seq: Option<i64>,
    pub message_id: String,
    pub index: u64,
}

/// Why the state was rebuilt on open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebuildReason {
    Missing,
    Unreadable(String),
    Ahead { applied: u64, ledger: u64 },
    Diverged { applied: u64 },
    Requested,
}

impl std::fmt::Display for RebuildReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RebuildReason::Missing => write!(f, "state store was missing"),
            RebuildReason::Unreadable(why) => write!(f, "state store could not be opened ({why})"),
            RebuildReason::Ahead { applied, ledger } => write!(
                f,
                "state store had applied {applied} entries but the ledger has {ledger}"
            ),
            RebuildReason::Diverged { applied } => write!(
                f,
                "state store was built from a different ledger (root at {applied} entries differs)"
            ),
            RebuildReason::Requested => write!(f, "rebuild requested"),
        }
    }
}

pub struct State {
    db: sled::Db,
    dir: PathBuf,
    meta: sled::Tree,
    cases: sled::Tree,
    groups: sled::Tree,
    captures: sled::Tree,
    case_entries: sled::Tree,
    cursors: sled::Tree,
    findings: sled::Tree,
    packets: sled::Tree,
}

fn store_err(dir: &Path) -> impl Fn(sled::Error) -> StateError + '_ {
    move |e| StateError::Store {
        path: dir.display().to_string(),
        message: e.to_string(),
    }
}

/// Key of a group in the `groups` and `captures` trees.
pub fn group_key(platform: &str, group_id: &str) -> String {
    format!("{platform}:{group_id}")
}

impl State {
    /// Open the state in `dir`, rebuilding or catching up from `ledger` as needed.
    pub fn open(
        dir: &Path,
        ledger: &Ledger,
        progress: &dyn Fn(u64, u64),
    ) -> Result<(State, Option<RebuildReason>), StateError> {
        let existed = dir.join("conf").exists() || dir.join("db").exists();
        let opened = if existed {
            Self::open_raw(dir)
        } else {
            Err(StateError::Store {
                path: dir.display().to_string(),
                message: "missing".into(),
            })
        };
        let reason = match opened {
            Err(_) if !existed => RebuildReason::Missing,
            Err(e) => RebuildReason::Unreadable(e.to_string()),
            Ok(state) => {
                let applied = state.applied()?;
                let size = ledger.size();
                let reason = if applied > size {
                    Some(RebuildReason::Ahead {
                        applied,
                        ledger: size,
                    })
                } else if state.stored_root()? != Some(ledger.root_at(applied)?) && applied > 0 {
                    Some(RebuildReason::Diverged { applied })
                } else {
                    None
                };
                match reason {
                    None => {
                        state.catch_up(ledger, progress)?;
                        return Ok((state, None));
                    }
                    Some(r) => {
                        drop(state);
                        r
                    }
                }
            }
        };
        if reason == RebuildReason::Missing && ledger.size() == 0 {
            tracing::debug!("state: created a new, empty state store");
        } else {
            tracing::warn!("state: rebuilding from the ledger: {reason}");
        }
        let state = Self::rebuild(dir, ledger, progress)?;
        Ok((state, Some(reason)))
    }

    /// Build a fresh state beside `dir` from the whole ledger, then swap it in.
    pub fn rebuild(
        dir: &Path,
        ledger: &Ledger,
        progress: &dyn Fn(u64, u64),
    ) -> Result<State, StateError> {
        let fresh = dir.with_extension("rebuilding");
        let io = |p: &Path, source| StateError::Io {
            path: p.display().to_string(),
            source,
        };
        if fresh.exists() {
            std::fs::remove_dir_all(&fresh).map_err(|e| io(&fresh, e))?;
        }
        {
            let state = Self::open_raw(&fresh)?;
            state.catch_up(ledger, progress)?;
            state.db.flush().map_err(store_err(&fresh))?;
        }
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| io(dir, e))?;
        }
        std::fs::rename(&fresh, dir).map_err(|e| io(dir, e))?;
        Self::open_raw(dir)
    }

    fn open_raw(dir: &Path) -> Result<State, StateError> {
        // The state is only ever opened behind the ledger's exclusive lock, so a held sled lock
        // can only be our own instance that was just dropped (sled releases its file lock from a
        // background thread): wait for it briefly rather than mistaking it for damage.
        let mut attempt = 0;
        let db = loop {
            // sled can panic on some kinds of on-disk damage instead of returning an error; a
            // damaged view must lead to a rebuild, never to a crash.
            let opened = std::panic::catch_unwind(|| sled::Config::new().path(dir).open());
            match opened {
                Ok(Ok(db)) => break db,
                Ok(Err(e)) if attempt < 100 && e.to_string().contains("could not acquire lock") => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Ok(Err(e)) => return Err(store_err(dir)(e)),
                Err(_) => {
                    return Err(StateError::Store {
                        path: dir.display().to_string(),
                        message: "store panicked while opening (damaged files)".into(),
                    });
                }
            }
        };
        let tree = |name: &str| db.open_tree(name).map_err(store_err(dir));
        Ok(State {
            meta: tree("meta")?,
            cases: tree("cases")?,
            groups: tree("groups")?,
            captures: tree("captures")?,
            case_entries: tree("case_entries")?,
            cursors: tree("cursors")?,
            findings: tree("findings")?,
            packets: tree("packets")?,
            dir: dir.to_path_buf(),
            db,
        })
    }

    /// Number of ledger entries applied.
    pub fn applied(&self) -> Result<u64, StateError> {
        let v = self.meta.get(META_APPLIED).map_err(store_err(&self.dir))?;
        Ok(v.and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }

    fn stored_root(&self) -> Result<Option<[u8; 32]>, StateError> {
        let v = self.meta.get(META_ROOT).map_err(store_err(&self.dir))?;
        Ok(v.and_then(|b| <[u8; 32]>::try_from(b.as_ref()).ok()))
    }

    /// Apply every ledger entry this state has not seen yet.
    pub fn catch_up(
        &self,
        ledger: &Ledger,
        progress: &dyn Fn(u64, u64),
    ) -> Result<u64, StateError> {
        let size = ledger.size();
        let start = self.applied()?;
        for index in start..size {
            let entry = ledger.read_entry(index)?;
            self.apply(index, &entry)?;
            if index % 1024 == 0 {
                progress(index, size);
            }
        }
        if size > start {
            self.mark_applied(size, &ledger.root_at(size)?)?;
        }
        progress(size, size);
        Ok(size - start)
    }

    /// Apply entry `index`. Applying the same entries again, in ledger order, gives the same
    /// state.
    pub fn apply(&self, index: u64, entry: &LedgerEntry) -> Result<(), StateError> {
        let err = store_err(&self.dir);
        let idx = index.to_be_bytes();
        if let Some(case) = entry.body.case() {
            self.link_to_case(case, index)?;
        }
        match &entry.body {
            EntryBody::CaseOpened {
                case,
                platform,
                group_id,
                link,
                note,
            } => {
                let view = CaseView {
                    case: case.clone(),
                    platform: platform.clone(),
                    group_id: group_id.clone(),
                    link: link.clone(),
                    note: note.clone(),
                    opened_at: entry.at.clone(),
                    opened_by: entry.actor.clone(),
                    opened_entry: index,
                    join_status: None,
                    join_detail: None,
                    group_name: None,
                    member_count: None,
                    last_snapshot: None,
                    ended: None,
                    last_offer: None,
                    tracking: TrackingView::default(),
                };
                self.put_case(&view)?;
                self.groups
                    .insert(group_key(platform, group_id).as_bytes(), case.as_bytes())
                    .map_err(&err)?;
            }
            EntryBody::Captured(c) => {
                let mut key = group_key(&c.platform, &c.group_id).into_bytes();
                key.push(0);
                key.extend_from_slice(c.message_id.as_bytes());
                // First capture of a message wins; a re-delivery does not move it.
                self.captures
                    .compare_and_swap(key, None as Option<&[u8]>, Some(&idx[..]))
                    .map_err(&err)?
                    .ok();
                self.update_case(&c.case, |v| {
                    if v.group_name.is_none() {
                        v.group_name = c.group_name.clone();
                    }
                })?;
            }
            EntryBody::Backfilled {
                platform,
                group_id,
                through_message_id,
                through_seq,
                ..
            } => {
                let cursor = CaptureCursor {
                    seq: *through_seq,
                    message_id: through_message_id.clone(),
                    index,
                };
                self.cursors
                    .insert(
                        group_key(platform, group_id).as_bytes(),
                        serde_json::to_vec(&cursor).unwrap_or_default(),
                    )
                    .map_err(&err)?;
            }
            EntryBody::JoinStatus {
                case,
                status,
                detail,
                ..
            } => {
                self.update_case(case, |v| {
                    v.join_status = Some(status.clone());
                    v.join_detail = Some(detail.clone());
                })?;
            }
            EntryBody::GroupSnapshot {
                case,
                name,
                member_count,
                info,
                members,
                ..
            } => {
                self.update_case(case, |v| {
                    v.group_name = name.clone().or(v.group_name.take());
                    v.member_count = *member_count;
                    v.last_snapshot =
                        Some((info.sha256.hex(), members.as_ref().map(|m| m.sha256.hex())));
                })?;
            }
            EntryBody::GroupEnded { case, reason, .. } => {
                self.update_case(case, |v| v.ended = Some(reason.clone()))?;
            }
            EntryBody::Matched {
                case: Some(case),
                rows_checked,
                rows_matched,
                distinct_customers,
                distinct_orders,
                first_order_at,
                last_order_at,
                canary_partners,
                suspects,
                ..
            } if *rows_matched > 0 => {
                let offer = self.case(case)?.and_then(|c| c.last_offer);
                let view = FindingView {
                    offer,
                    finding: format!("F-{index}"),
                    case: case.clone(),
                    matched_entry: index,
                    rows_checked: *rows_checked,
                    rows_matched: *rows_matched,
                    distinct_customers: *distinct_customers,
                    distinct_orders: *distinct_orders,
                    first_order_at: first_order_at.clone(),
                    last_order_at: last_order_at.clone(),
                    canary_partners: canary_partners.clone(),
                    suspects: suspects.clone(),
                    status: "new".into(),
                    created_at: entry.at.clone(),
                    kind: verified_sample(),
                    detail: None,
                    claimed_by: None,
                    claim_until: None,
                    decisions: Vec::new(),
                    required_approvals: 0,
                    reveals: Vec::new(),
                    packets: Vec::new(),
                };
                self.put_finding(&view)?;
            }
            EntryBody::FindingRaised {
                case,
                reason,
                detail,
                about,
            } => {
                let offer = self.case(case)?.and_then(|c| c.last_offer);
                let view = FindingView {
                    offer,
                    finding: format!("F-{index}"),
                    case: case.clone(),
                    matched_entry: index,
                    rows_checked: 0,
                    rows_matched: 0,
                    distinct_customers: 0,
                    distinct_orders: 0,
                    first_order_at: None,
                    last_order_at: None,
                    canary_partners: Vec::new(),
                    suspects: Vec::new(),
                    status: "new".into(),
                    created_at: entry.at.clone(),
                    kind: reason.clone(),
                    detail: Some(match about {
                        Some(a) => format!("{detail} (follows up {a})"),
                        None => detail.clone(),
                    }),
                    claimed_by: None,
                    claim_until: None,
                    decisions: Vec::new(),
                    required_approvals: 0,
                    reveals: Vec::new(),
                    packets: Vec::new(),
                };
                self.put_finding(&view)?;
                if reason == "takedown_ignored" {
                    self.update_case(case, |v| v.tracking.escalated_at = Some(entry.at.clone()))?;
                }
            }
            EntryBody::ReviewClaimed { finding, until, .. } => {
                self.update_finding(finding, |f| {
                    f.claimed_by = Some(entry.actor.clone());
                    f.claim_until = Some(until.clone());
                })?;
            }
            EntryBody::PiiRevealed { finding, .. } => {
                self.update_finding(finding, |f| {
                    if !f.reveals.contains(&entry.actor) {
                        f.reveals.push(entry.actor.clone());
                    }
                })?;
            }
            EntryBody::ReviewDecided {
                finding,
                decision,
                reason,
                required_approvals,
                ..
            } => {
                self.update_finding(finding, |f| {
                    if f.decisions.iter().any(|d| d.entry == index) {
                        return;
                    }
                    f.decisions.push(DecisionView {
                        moderator: entry.actor.clone(),
                        decision: decision.clone(),
                        reason: reason.clone(),
                        at: entry.at.clone(),
                        entry: index,
                    });
                    f.required_approvals = *required_approvals;
                    f.claimed_by = None;
                    f.claim_until = None;
                    f.status = match decision.as_str() {
                        "approve" if f.approvers().len() as u32 >= (*required_approvals).max(1) => {
                            "approved".into()
                        }
                        "approve" => "awaiting_second_approval".into(),
                        "reject" => "rejected".into(),
                        _ => "escalated".into(),
                    };
                })?;
            }
            EntryBody::PacketBuilt {
                case,
                finding,
                packet_id,
                packet_kind,
                version,
                files,
            } => {
                let view = PacketView {
                    packet_id: packet_id.clone(),
                    case: case.clone(),
                    finding: finding.clone(),
                    kind: packet_kind.clone(),
                    version: *version,
                    built_entry: index,
                    built_at: entry.at.clone(),
                    files: files.clone(),
                    filings: Vec::new(),
                };
                self.put_packet(&view)?;
                self.update_finding(finding, |f| {
                    if !f.packets.contains(packet_id) {
                        f.packets.push(packet_id.clone());
                    }
                })?;
            }
            EntryBody::FilingAttempted {
                packet_id,
                channel,
                recipient,
                attempt,
                message_id,
                answer,
                ..
            } => {
                self.update_packet(packet_id, |p| {
                    let f = p.filing_mut(channel, recipient, &entry.at);
                    // A later attempt (a retry, or a re-file after a failure) reopens it.
                    if *attempt > f.attempts {
                        f.attempts = *attempt;
                        f.status = "retrying".into();
                        f.message_id = message_id.clone().or(f.message_id.take());
                        f.last_answer = answer.clone();
                        f.updated_at = entry.at.clone();
                    }
                })?;
            }
            EntryBody::FilingFinished {
                case,
                packet_id,
                channel,
                recipient,
                status,
                attempts,
                message_id,
            } => {
                let mut takedown = false;
                self.update_packet(packet_id, |p| {
                    takedown = p.kind == "takedown";
                    let f = p.filing_mut(channel, recipient, &entry.at);
                    f.status = status.clone();
                    f.attempts = *attempts;
                    f.message_id = message_id.clone().or(f.message_id.take());
                    f.updated_at = entry.at.clone();
                })?;
                if takedown && status == "filed" {
                    self.update_case(case, |v| {
                        if v.tracking.takedown_filed_at.is_none() {
                            v.tracking.takedown_filed_at = Some(entry.at.clone());
                        }
                    })?;
                }
            }
            EntryBody::TrackingProbed { case, result, .. } => {
                self.update_case(case, |v| {
                    let t = &mut v.tracking;
                    t.probes += 1;
                    t.last_probe_at = Some(entry.at.clone());
                    t.last_result = Some(result.clone());
                    if result == "gone" && t.gone_at.is_none() {
                        t.gone_at = Some(entry.at.clone());
                    }
                })?;
            }
            EntryBody::Extracted {
                case,
                offer: Some(offer),
                ..
            } => {
                self.update_case(case, |v| v.last_offer = Some(offer.clone()))?;
            }
            EntryBody::Custody { .. }
            | EntryBody::Matched { .. }
            | EntryBody::MediaRefused { .. }
            | EntryBody::Extracted { .. }
            | EntryBody::Timestamped { .. }
            | EntryBody::Synthetic { .. } => {}
        }
        Ok(())
    }

    fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        tree: &sled::Tree,
        key: &str,
    ) -> Result<Option<T>, StateError> {
        let v = tree.get(key.as_bytes()).map_err(store_err(&self.dir))?;
        Ok(v.and_then(|b| serde_json::from_slice(&b).ok()))
    }

    fn put_json<T: Serialize>(
        &self,
        tree: &sled::Tree,
        key: &str,
        view: &T,
    ) -> Result<(), StateError> {
        tree.insert(key.as_bytes(), serde_json::to_vec(view).unwrap_or_default())
            .map_err(store_err(&self.dir))?;
        Ok(())
    }

    /// Read-modify-write of one view; a missing view is left missing.
    fn update_json<T: Serialize + serde::de::DeserializeOwned>(
        &self,
        tree: &sled::Tree,
        key: &str,
        change: impl FnOnce(&mut T),
    ) -> Result<(), StateError> {
        if let Some(mut view) = self.get_json::<T>(tree, key)? {
            change(&mut view);
            self.put_json(tree, key, &view)?;
        }
        Ok(())
    }

    fn all_json<T: serde::de::DeserializeOwned>(
        &self,
        tree: &sled::Tree,
    ) -> Result<Vec<T>, StateError> {
        let mut out = Vec::new();
        for kv in tree.iter() {
            let (_, v) = kv.map_err(store_err(&self.dir))?;
            if let Ok(x) = serde_json::from_slice(&v) {
                out.push(x);
            }
        }
        Ok(out)
    }

    fn put_finding(&self, view: &FindingView) -> Result<(), StateError> {
        self.put_json(&self.findings, &view.finding, view)
    }

    fn update_finding(
        &self,
        finding: &str,
        change: impl FnOnce(&mut FindingView),
    ) -> Result<(), StateError> {
        self.update_json(&self.findings, finding, change)
    }

    pub fn finding(&self, finding: &str) -> Result<Option<FindingView>, StateError> {
        self.get_json(&self.findings, finding)
    }

    fn put_packet(&self, view: &PacketView) -> Result<(), StateError> {
        self.put_json(&self.packets, &view.packet_id, view)
    }

    fn update_packet(
        &self,
        packet: &str,
        change: impl FnOnce(&mut PacketView),
    ) -> Result<(), StateError> {
        self.update_json(&self.packets, packet, change)
    }

    pub fn packet(&self, packet: &str) -> Result<Option<PacketView>, StateError> {
        self.get_json(&self.packets, packet)
    }

    /// Every packet, in the order they were built.
    pub fn packets(&self) -> Result<Vec<PacketView>, StateError> {
        let mut out: Vec<PacketView> = self.all_json(&self.packets)?;
        out.sort_by_key(|p| p.built_entry);
        Ok(out)
    }

    fn put_case(&self, view: &CaseView) -> Result<(), StateError> {
        self.put_json(&self.cases, &view.case, view)
    }

    fn update_case(
        &self,
        case: &str,
        change: impl FnOnce(&mut CaseView),
    ) -> Result<(), StateError> {
        self.update_json(&self.cases, case, change)
    }

    /// Distinct messages captured.
    pub fn capture_count(&self) -> Result<u64, StateError> {
        Ok(self.captures.len() as u64)
    }

    /// Every finding, oldest first.
    pub fn findings(&self) -> Result<Vec<FindingView>, StateError> {
        let mut out: Vec<FindingView> = self.all_json(&self.findings)?;
        out.sort_by_key(|f| f.matched_entry);
        Ok(out)
    }

    /// Where the next backfill of a group starts (see [`CaptureCursor`]).
    pub fn cursor(
        &self,
        platform: &str,
        group_id: &str,
    ) -> Result<Option<CaptureCursor>, StateError> {
        let v = self
            .cursors
            .get(group_key(platform, group_id).as_bytes())
            .map_err(store_err(&self.dir))?;
        Ok(v.and_then(|b| serde_json::from_slice(&b).ok()))
    }

    fn link_to_case(&self, case: &str, index: u64) -> Result<(), StateError> {
        let mut key = case.as_bytes().to_vec();
        key.push(0);
        key.extend_from_slice(&index.to_be_bytes());
        self.case_entries
            .insert(key, &[][..])
            .map_err(store_err(&self.dir))?;
        Ok(())
    }

    fn mark_applied(&self, size: u64, root: &[u8; 32]) -> Result<(), StateError> {
        let err = store_err(&self.dir);
        self.meta.insert(META_ROOT, &root[..]).map_err(&err)?;
        self.meta
            .insert(META_APPLIED, &size.to_be_bytes()[..])
            .map_err(&err)?;
        Ok(())
    }

    pub fn flush(&self) -> Result<(), StateError> {
        self.db.flush().map_err(store_err(&self.dir))?;
        Ok(())
    }

    pub fn case(&self, case: &str) -> Result<Option<CaseView>, StateError> {
        self.get_json(&self.cases, case)
    }

    pub fn cases(&self) -> Result<Vec<CaseView>, StateError> {
        self.all_json(&self.cases)
    }

    /// The case that watches a group, if any (intake dedupes on this).
    pub fn case_for_group(
        &self,
        platform: &str,
        group_id: &str,
    ) -> Result<Option<String>, StateError> {
        let v = self
            .groups
            .get(group_key(platform, group_id).as_bytes())
            .map_err(store_err(&self.dir))?;
        Ok(v.map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// Ledger index of the capture of a message, if it was captured (capture dedupes on this).
    pub fn capture_of(
        &self,
        platform: &str,
        group_id: &str,
        message_id: &str,
    ) -> Result<Option<u64>, StateError> {
        let mut key = group_key(platform, group_id).into_bytes();
        key.push(0);
        key.extend_from_slice(message_id.as_bytes());
        let v = self.captures.get(key).map_err(store_err(&self.dir))?;
        Ok(v.and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
            .map(u64::from_be_bytes))
    }

    /// Ledger indexes of the captures of a group, in message-id order.
    pub fn captures_of_group(
        &self,
        platform: &str,
        group_id: &str,
    ) -> Result<Vec<u64>, StateError> {
        let mut prefix = group_key(platform, group_id).into_bytes();
        prefix.push(0);
        let mut out = Vec::new();
        for kv in self.captures.scan_prefix(prefix) {
            let (_, v) = kv.map_err(store_err(&self.dir))?;
            if let Ok(b) = <[u8; 8]>::try_from(v.as_ref()) {
                out.push(u64::from_be_bytes(b));
            }
        }
        Ok(out)
    }

    /// Ledger indexes of every entry about a case, in ledger order.
    pub fn entries_of_case(&self, case: &str) -> Result<Vec<u64>, StateError> {
        let mut prefix = case.as_bytes().to_vec();
        prefix.push(0);
        let mut out = Vec::new();
        for kv in self.case_entries.scan_prefix(&prefix) {
            let (k, _) = kv.map_err(store_err(&self.dir))?;
            if let Ok(b) = <[u8; 8]>::try_from(&k[prefix.len()..]) {
                out.push(u64::from_be_bytes(b));
            }
        }
        Ok(out)
    }

    /// SHA-256 over every tree's keys and values in order: two states with the same digest hold
    /// the same views. `admin rebuild-state` prints it so a rebuild can be compared.
    pub fn digest(&self) -> Result<String, StateError> {
        let mut h = Sha256::new();
        for name in TREES {
            let tree = self.db.open_tree(name).map_err(store_err(&self.dir))?;
            h.update((name.len() as u64).to_be_bytes());
            h.update(name.as_bytes());
            for kv in tree.iter() {
                let (k, v) = kv.map_err(store_err(&self.dir))?;
                h.update((k.len() as u64).to_be_bytes());
                h.update(&k);
                h.update((v.len() as u64).to_be_bytes());
                h.update(&v);
            }
        }
        Ok(hex::encode(h.finalize()))
    }
}

impl PacketView {
    fn filing_mut(&mut self, channel: &str, recipient: &str, at: &str) -> &mut FilingView {
        let pos = self
            .filings
            .iter()
            .position(|f| f.channel == channel && f.recipient == recipient);
        let i = match pos {
            Some(i) => i,
            None => {
                self.filings.push(FilingView {
                    channel: channel.to_string(),
                    recipient: recipient.to_string(),
                    status: "retrying".into(),
                    attempts: 0,
                    message_id: None,
                    last_answer: String::new(),
                    updated_at: at.to_string(),
                });
                self.filings.len() - 1
            }
        };
        &mut self.filings[i]
    }
}
