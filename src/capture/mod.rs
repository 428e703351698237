//! Capture: turn what the adapters hear into evidence.
//!
//! One router task per adapter takes its event stream; one monitor task per open case joins the
//! group (through the adapter's `JoinOutcome`), snapshots group info and the member list (on a
//! schedule, recorded only when they changed), backfills history from the last captured message,
//! and stops when the bot is removed or the group dismissed — which is recorded, because takedown
//! tracking looks for it.
//!
//! Invariants:
//! - every message is captured once: the dedupe check against the state's capture index and the
//!   append happen under one lock, and live delivery and backfill both go through it;
//! - raw platform JSON and media bytes are stored as encrypted blobs *before* the `captured`
//!   entry that names them is appended (durably) — an acknowledged entry never points at
//!   nothing;
//! - a media item that could not be preserved is recorded with its reason, never dropped
//!   silently;
//! - extraction results are entries of their own that point at the capture, with the
//!   extractor's version, so a better extractor later adds evidence instead of editing it;
//! - a file name from a message is a label, never a path on disk.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::adapters::{
    AdapterEvent, ChatAdapter, ChatMessage, GroupRef, HistoryCursor, JoinOutcome, MediaItem,
    MediaKind, Platform,
};
use crate::blobs::{BlobError, BlobId};
use crate::evidence::{Evidence, EvidenceError};
use crate::extract;
use crate::ledger::entry::{BlobRef, CaptureRecord, EntryBody, LedgerEntry, timestamp};
use crate::state::{CaseView, StateError};

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{0}")]
    Evidence(#[from] EvidenceError),
    #[error("{0}")]
    Blob(#[from] BlobError),
    #[error("{0}")]
    State(#[from] StateError),
    #[error("capture task failed: {0}")]
    Task(String),
}

#[derive(Debug, Clone)]
pub struct CaptureSettings {
    /// Re-snapshot group info and members this often (recorded only when they changed).
    pub snapshot_interval: Duration,
    /// Ask the adapter to join again this often while waiting for an invitation.
    pub join_retry: Duration,
}

impl Default for CaptureSettings {
    fn default() -> Self {
        CaptureSettings {
            snapshot_interval: Duration::from_secs(600),
            join_retry: Duration::from_secs(60),
        }
    }
}

enum Signal {
    Joined,
    MembersChanged,
    Ended,
}

pub struct CaptureService {
    ev: Arc<Evidence>,
    adapters: HashMap<Platform, Arc<dyn ChatAdapter>>,
    settings: CaptureSettings,
    capture_lock: Arc<Mutex<()>>,
    monitors: Mutex<HashMap<GroupRef, mpsc::UnboundedSender<Signal>>>,
    ocr_available: bool,
    /// Checks extracted samples against the platform's records, when a source is configured.
    checker: Option<Arc<crate::sample_check::SampleChecker>>,
    /// Told (group, message id, when) after each message is durably captured (benchmarks).
    observer: Mutex<Option<mpsc::UnboundedSender<(GroupRef, String, std::time::Instant)>>>,
}

fn actor(adapter: &dyn ChatAdapter) -> String {
    format!("adapter:{}", adapter.name())
}

fn media_type(item: &MediaItem) -> String {
    let ext = item
        .name
        .as_deref()
        .and_then(|n| n.rsplit_once('.'))
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match (item.kind, ext.as_str()) {
        (_, "png") => "image/png",
        (_, "jpg" | "jpeg") => "image/jpeg",
        (_, "gif") => "image/gif",
        (_, "txt") => "text/plain",
        (_, "csv") => "text/csv",
        (_, "xlsx") => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        (MediaKind::Image, _) => "image/*",
        (MediaKind::Record, _) => "audio/*",
        (MediaKind::Video, _) => "video/*",
        (MediaKind::File, _) => "application/octet-stream",
    }
    .to_string()
}

impl CaptureService {
    pub fn new(
        ev: Arc<Evidence>,
        adapters: Vec<Arc<dyn ChatAdapter>>,
        settings: CaptureSettings,
        checker: Option<Arc<crate::sample_check::SampleChecker>>,
    ) -> Arc<CaptureService> {
        let ocr_available = extract::ocr_image(&[]).is_some();
        Arc::new(CaptureService {
            ev,
            adapters: adapters.into_iter().map(|a| (a.platform(), a)).collect(),
            settings,
            capture_lock: Arc::new(Mutex::new(())),
            monitors: Mutex::new(HashMap::new()),
            ocr_available,
            checker,
            observer: Mutex::new(None),
        })
    }

    /// Be told of every message once it is durably captured.
    pub fn set_observer(&self, tx: mpsc::UnboundedSender<(GroupRef, String, std::time::Instant)>) {
        *self.observer.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
    }

    /// The adapter serving a platform, if one is configured (tracking probes through it).
    pub fn adapter(&self, platform: Platform) -> Option<Arc<dyn ChatAdapter>> {
        self.adapters.get(&platform).cloned()
    }

    pub fn evidence(&self) -> &Arc<Evidence> {
        &self.ev
    }

    /// Start the routers and a monitor for every open case.
    pub fn start(self: &Arc<Self>) -> Result<Vec<tokio::task::JoinHandle<()>>, CaptureError> {
        let mut tasks = Vec::new();
        for adapter in self.adapters.values() {
            if let Some(events) = adapter.take_events() {
                let svc = self.clone();
                let adapter = adapter.clone();
                tasks.push(tokio::spawn(
                    async move { svc.route(adapter, events).await },
                ));
            }
        }
        for case in self.ev.state.cases()? {
            if case.ended.is_none() {
                self.watch(case);
            }
        }
        Ok(tasks)
    }

    /// Start monitoring a case's group (no-op when a monitor already runs).
    pub fn watch(self: &Arc<Self>, case: CaseView) {
        let group = GroupRef {
            platform: if case.platform == "telegram" {
                Platform::Telegram
            } else {
                Platform::Qq
            },
            id: case.group_id.clone(),
        };
        let mut monitors = self.monitors.lock().unwrap_or_else(|p| p.into_inner());
        if monitors.get(&group).is_some_and(|tx| !tx.is_closed()) {
            return;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        monitors.insert(group.clone(), tx);
        let svc = self.clone();
        tokio::spawn(async move { svc.monitor(case, group, rx).await });
    }

    fn signal(&self, group: &GroupRef, signal: Signal) {
        let monitors = self.monitors.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = monitors.get(group) {
            let _ = tx.send(signal);
        }
    }

    fn case_of(&self, group: &GroupRef) -> Option<CaseView> {
        let case = self
            .ev
            .state
            .case_for_group(group.platform.as_str(), &group.id)
            .ok()??;
        self.ev.state.case(&case).ok()?
    }

    async fn record(&self, actor: &str, body: EntryBody) -> Result<u64, CaptureError> {
        Ok(self.ev.record_async(&LedgerEntry::new(actor, body)).await?)
    }

    /// Consume one adapter's events.
    async fn route(
        self: Arc<Self>,
        adapter: Arc<dyn ChatAdapter>,
        mut events: mpsc::Receiver<AdapterEvent>,
    ) {
        while let Some(event) = events.recv().await {
            match event {
                AdapterEvent::Message(m) => {
                    if let Some(case) = self.case_of(&m.group)
                        && let Err(e) = self.capture(&case.case, &adapter, *m).await
                    {
                        tracing::error!("capture failed: {e}");
                    }
                }
                AdapterEvent::Joined { group, .. } => self.signal(&group, Signal::Joined),
                AdapterEvent::MemberJoined { group, .. }
                | AdapterEvent::MemberLeft { group, .. } => {
                    self.signal(&group, Signal::MembersChanged)
                }
                AdapterEvent::BotRemoved { group, operator } => {
                    self.ended(&adapter, &group, "bot_removed", operator).await;
                }
                AdapterEvent::GroupDismissed { group } => {
                    self.ended(&adapter, &group, "dismissed", None).await;
                }
                AdapterEvent::InviteDeclined { group, inviter } => tracing::info!(
                    %group,
                    inviter = inviter.as_deref().unwrap_or("?"),
                    "declined an invitation to a group nobody submitted"
                ),
                AdapterEvent::Connected => tracing::info!(adapter = adapter.name(), "connected"),
                AdapterEvent::Disconnected { reason } => {
                    tracing::warn!(adapter = adapter.name(), "disconnected: {reason}")
                }
                AdapterEvent::Problem { message } => {
                    tracing::warn!(adapter = adapter.name(), "{message}")
                }
                // Recorded from the message itself, with the capture it belongs to.
                AdapterEvent::MediaRefused { .. } | AdapterEvent::Muted { .. } => {}
            }
        }
    }

    async fn ended(
        &self,
        adapter: &Arc<dyn ChatAdapter>,
        group: &GroupRef,
        reason: &str,
        operator: Option<String>,
    ) {
        if let Some(case) = self.case_of(group)
            && case.ended.is_none()
        {
            let body = EntryBody::GroupEnded {
                case: case.case.clone(),
                platform: group.platform.as_str().into(),
                group_id: group.id.clone(),
                reason: reason.into(),
                operator,
            };
            if let Err(e) = self.record(&actor(adapter.as_ref()), body).await {
                tracing::error!("recording the end of {group} failed: {e}");
            }
        }
        self.signal(group, Signal::Ended);
    }

    async fn monitor(
        self: Arc<Self>,
        case: CaseView,
        group: GroupRef,
        mut signals: mpsc::UnboundedReceiver<Signal>,
    ) {
        let Some(adapter) = self.adapters.get(&group.platform).cloned() else {
            let detail = format!("no {} adapter is configured", group.platform);
            self.join_status(&case.case, &group, "refused", &detail, "system")
                .await;
            return;
        };
        let who = actor(adapter.as_ref());
        // Join: as long as it takes.
        let mut delay = Duration::from_secs(1);
        loop {
            let (status, detail) = match adapter.join(&group).await {
                Ok(JoinOutcome::Joined) => (
                    "joined",
                    "the bot account is a member of the group".to_string(),
                ),
                Ok(JoinOutcome::AwaitingInvite { instructions }) => {
                    ("awaiting_invite", instructions)
                }
                Ok(JoinOutcome::AwaitingApproval) => (
                    "awaiting_approval",
                    "a join request waits for the group's admins".to_string(),
                ),
                Ok(JoinOutcome::Refused(why)) => ("refused", why),
                Err(e) => {
                    tracing::warn!(%group, "join failed, retrying: {e}");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.settings.join_retry);
                    continue;
                }
            };
            self.join_status(&case.case, &group, status, &detail, &who)
                .await;
            if status == "joined" {
                break;
            }
            // Wait for the invitation to be accepted (or a retry).
            match tokio::time::timeout(self.settings.join_retry, signals.recv()).await {
                Ok(Some(Signal::Ended)) | Ok(None) => return,
                _ => continue,
            }
        }
        self.snapshot(&case.case, &group, &adapter).await;
        self.backfill(&case.case, &group, &adapter).await;
        let mut tick = tokio::time::interval(self.settings.snapshot_interval);
        tick.tick().await;
        loop {
            tokio::select! {
                signal = signals.recv() => match signal {
                    Some(Signal::Ended) | None => return,
                    // Re-added after a kick: fill what was missed meanwhile.
                    Some(Signal::Joined) => {
                        self.join_status(&case.case, &group, "joined", "the bot account is a member of the group", &who).await;
                        self.backfill(&case.case, &group, &adapter).await;
                    }
                    Some(Signal::MembersChanged) => self.snapshot(&case.case, &group, &adapter).await,
                },
                _ = tick.tick() => self.snapshot(&case.case, &group, &adapter).await,
            }
        }
    }

    /// Record a join status when it differs from the last one recorded.
    async fn join_status(
        &self,
        case: &str,
        group: &GroupRef,
        status: &str,
        detail: &str,
        who: &str,
    ) {
        let current = self.ev.state.case(case).ok().flatten();
        if current.is_some_and(|c| {
            c.join_status.as_deref() == Some(status) && c.join_detail.as_deref() == Some(detail)
        }) {
            return;
        }
        let body = EntryBody::JoinStatus {
            case: case.into(),
            platform: group.platform.as_str().into(),
            group_id: group.id.clone(),
            status: status.into(),
            detail: detail.into(),
        };
        if let Err(e) = self.record(who, body).await {
            tracing::error!("recording join status failed: {e}");
        }
    }

    /// Snapshot group info and the member list; record only when either changed.
    async fn snapshot(&self, case: &str, group: &GroupRef, adapter: &Arc<dyn ChatAdapter>) {
        let info = match adapter.group_info(group).await {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(%group, "group info failed: {e}");
                return;
            }
        };
        let members = adapter
            .members(group)
            .await
            .ok()
            .and_then(|m| serde_json::to_vec(&m).ok());
        let info_id = BlobId::of(&info.raw);
        let members_id = members.as_deref().map(BlobId::of);
        let last = self
            .ev
            .state
            .case(case)
            .ok()
            .flatten()
            .and_then(|c| c.last_snapshot);
        if last == Some((info_id.hex(), members_id.map(|m| m.hex()))) {
            return;
        }
        let put = |bytes: &[u8], media: &str| -> Result<BlobRef, BlobError> {
            Ok(BlobRef {
                sha256: self.ev.blobs.put(bytes)?,
                size: bytes.len() as u64,
                media_type: media.into(),
                pii: true,
            })
        };
        let (info_ref, members_ref) = match (
            put(&info.raw, "application/json"),
            members
                .as_deref()
                .map(|m| put(m, "application/json"))
                .transpose(),
        ) {
            (Ok(i), Ok(m)) => (i, m),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!("storing a snapshot failed: {e}");
                return;
            }
        };
        let body = EntryBody::GroupSnapshot {
            case: case.into(),
            platform: group.platform.as_str().into(),
            group_id: group.id.clone(),
            name: info.name,
            member_count: info.member_count,
            info: info_ref,
            members: members_ref,
        };
        if let Err(e) = self.record(&actor(adapter.as_ref()), body).await {
            tracing::error!("recording a snapshot failed: {e}");
        }
    }

    /// Capture what the group holds after the last captured message.
    async fn backfill(&self, case: &str, group: &GroupRef, adapter: &Arc<dyn ChatAdapter>) {
        let cursor = self
            .ev
            .state
            .cursor(group.platform.as_str(), &group.id)
            .ok()
            .flatten()
            .map(|c| HistoryCursor {
                seq: c.seq,
                message_id: c.message_id,
            });
        match adapter.history(group, cursor.as_ref()).await {
            Ok(messages) => {
                let through = messages.last().map(|m| (m.message_id.clone(), m.seq));
                let count = messages.len() as u64;
                for m in messages {
                    if let Err(e) = self.capture(case, adapter, m).await {
                        // The watermark must not pass a message that was not preserved.
                        tracing::error!("capture failed; backfill stops here: {e}");
                        return;
                    }
                }
                if let Some((through_message_id, through_seq)) = through {
                    let body = EntryBody::Backfilled {
                        case: case.into(),
                        platform: group.platform.as_str().into(),
                        group_id: group.id.clone(),
                        through_message_id,
                        through_seq,
                        messages: count,
                    };
                    if let Err(e) = self.record(&actor(adapter.as_ref()), body).await {
                        tracing::error!("recording a backfill failed: {e}");
                    }
                }
            }
            Err(e) => tracing::warn!(%group, "history backfill failed: {e}"),
        }
    }

    /// Capture one message (once), with its media and extraction. Returns the `captured` entry's
    /// index, or `None` when it was captured before.
    pub async fn capture(
        &self,
        case: &str,
        adapter: &Arc<dyn ChatAdapter>,
        message: ChatMessage,
    ) -> Result<Option<u64>, CaptureError> {
        let case = case.to_string();
        let adapter_name = match adapter.platform() {
            Platform::Qq => format!("onebot:{}", adapter.name()),
            Platform::Telegram => format!("telegram:{}", adapter.name()),
        };
        let account = adapter.account().unwrap_or_default();
        let who = actor(adapter.as_ref());
        let ev = self.ev.clone();
        let ocr = self.ocr_available;
        let checker = self.checker.clone();
        let lock = self.capture_lock.clone();
        let group = message.group.clone();
        let message_id = message.message_id.clone();
        // Blob writes and ledger appends fsync: keep them off the async workers.
        let result = tokio::task::spawn_blocking(move || {
            let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
            capture_blocking(
                &ev,
                &case,
                &adapter_name,
                &account,
                &who,
                &message,
                ocr,
                checker.as_deref(),
            )
        })
        .await
        .unwrap_or_else(|e| Err(CaptureError::Task(e.to_string())));
        if let Ok(Some(_)) = &result
            && let Some(tx) = self
                .observer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
        {
            let _ = tx.send((group, message_id, std::time::Instant::now()));
        }
        result
    }
}

#[allow(clippy::too_many_arguments)]
fn capture_blocking(
    ev: &Evidence,
    case: &str,
    adapter_name: &str,
    account: &str,
    who: &str,
    m: &ChatMessage,
    ocr: bool,
    checker: Option<&crate::sample_check::SampleChecker>,
) -> Result<Option<u64>, CaptureError> {
    let platform = m.group.platform.as_str();
    if ev
        .state
        .capture_of(platform, &m.group.id, &m.message_id)?
        .is_some()
    {
        return Ok(None);
    }
    let captured_at = timestamp(chrono::Utc::now());
    let raw = BlobRef {
        sha256: ev.blobs.put(&m.raw)?,
        size: m.raw.len() as u64,
        media_type: "application/json".into(),
        pii: true,
    };
    let mut media = Vec::new();
    let mut refused = Vec::new();
    for item in &m.media {
        let what = item
            .name
            .clone()
            .or_else(|| item.url.clone())
            .unwrap_or_else(|| format!("{:?}", item.kind).to_lowercase());
        match &item.content {
            Ok(bytes) => match ev.blobs.put(bytes) {
                Ok(id) => media.push((
                    item,
                    BlobRef {
                        sha256: id,
                        size: bytes.len() as u64,
                        media_type: media_type(item),
                        pii: true,
                    },
                )),
                Err(e) => refused.push((what, e.to_string())),
            },
            Err(reason) => refused.push((what, reason.clone())),
        }
    }
    let group_name = ev.state.case(case)?.and_then(|c| c.group_name);
    let record = CaptureRecord {
        case: case.into(),
        platform: platform.into(),
        group_id: m.group.id.clone(),
        group_name,
        message_id: m.message_id.clone(),
        message_seq: m.seq,
        sender_id: m.sender.id.clone(),
        sender_nickname: m.sender.nickname.clone(),
        sender_card: m.sender.card.clone(),
        posted_at: m
            .posted_at
            .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
            .map(timestamp),
        captured_at,
        adapter: adapter_name.into(),
        leakwatch_version: crate::VERSION.into(),
        account: account.into(),
        raw: raw.clone(),
        media: media.iter().map(|(_, r)| r.clone()).collect(),
    };
    let index = ev.record(&LedgerEntry::new(
        who,
        EntryBody::Captured(Box::new(record)),
    ))?;
    for (what, reason) in refused {
        ev.record(&LedgerEntry::new(
            who,
            EntryBody::MediaRefused {
                case: case.into(),
                platform: platform.into(),
                group_id: m.group.id.clone(),
                message_id: m.message_id.clone(),
                what: what.chars().take(300).collect(),
                reason: reason.chars().take(500).collect(),
            },
        ))?;
    }
    // Extraction: the message text, then every preserved file and picture.
    record_extraction(
        ev,
        case,
        index,
        raw.sha256,
        extract::extract_text(&m.text),
        checker,
    )?;
    for (item, blob) in &media {
        let Ok(bytes) = &item.content else { continue };
        let extraction = match item.kind {
            MediaKind::File => extract::extract_file(item.name.as_deref().unwrap_or(""), bytes),
            MediaKind::Image if ocr => match extract::ocr_image(bytes) {
                Some(Ok(text)) => extract::extract_text(&text),
                Some(Err(e)) => note(format!("not extracted: OCR failed: {e}")),
                None => note("not extracted: OCR unavailable".into()),
            },
            MediaKind::Image => {
                note("not extracted: OCR unavailable (tesseract is not installed)".into())
            }
            _ => continue,
        };
        record_extraction(ev, case, index, blob.sha256, extraction, checker)?;
    }
    Ok(Some(index))
}

fn note(text: String) -> extract::Extraction {
    extract::Extraction {
        notes: vec![text],
        ..Default::default()
    }
}

fn record_extraction(
    ev: &Evidence,
    case: &str,
    capture: u64,
    source: BlobId,
    ex: extract::Extraction,
    checker: Option<&crate::sample_check::SampleChecker>,
) -> Result<(), CaptureError> {
    if ex.offer.is_none() && ex.rows.is_empty() && ex.notes.is_empty() {
        return Ok(());
    }
    let rows_blob = if ex.rows.is_empty() {
        None
    } else {
        let bytes = serde_json::to_vec(&ex.rows).unwrap_or_default();
        Some(BlobRef {
            sha256: ev.blobs.put(&bytes)?,
            size: bytes.len() as u64,
            media_type: "application/json".into(),
            pii: true,
        })
    };
    let rows = ex.rows;
    let mut notes = ex.notes;
    if ex.truncated {
        notes.push("input longer than the extractor's cap: only its start was analysed".into());
    }
    let extraction = ev.record(&LedgerEntry::new(
        "extractor",
        EntryBody::Extracted {
            case: case.into(),
            capture,
            source,
            extractor: extract::EXTRACTOR_VERSION.into(),
            offer: ex.offer.and_then(|o| serde_json::to_value(o).ok()),
            rows: rows.len() as u64,
            rows_blob: rows_blob.clone(),
            notes,
        },
    ))?;
    // Verify the sample against the platform's records at once: a verified sample is a finding.
    if let (Some(checker), Some(input)) = (checker, rows_blob) {
        match checker.check_and_record(
            ev,
            "matcher",
            Some(case),
            Some(extraction),
            input.sha256,
            &rows,
        ) {
            Ok((_, report)) => tracing::info!(
                case,
                rows = report.rows_checked,
                matched = report.rows_matched,
                customers = report.distinct_customers,
                "sample checked against the records"
            ),
            Err(e) => tracing::warn!(case, "checking a sample failed: {e}"),
        }
    }
    Ok(())
}
