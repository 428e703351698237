//! The filing dispatcher inside `serve`: sends every packet on record along the routes its
//! kind has in `[filing]`, and writes each attempt and each outcome to the ledger.
//!
//! Invariants:
//! - state drives it: a packet/recipient pair with no final `filing_finished` entry is due, so a
//!   restart resumes an interrupted filing (attempt numbers continue);
//! - every attempt is a `filing_attempted` entry with the server's answer, appended before the
//!   next attempt starts; the end is a `filing_finished` entry, `filed` or `failed` — a failure
//!   is a visible state, never a silent drop;
//! - a failed filing is tried again only on request ([`Dispatcher::refile`]);
//! - a kind without routes is reported once per packet in the log and shows as `unfiled`.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::{Attachment, Attempt, FilingConfig, FilingRequest, Outcome, file_with_retry};
use crate::evidence::Evidence;
use crate::ledger::entry::{EntryBody, LedgerEntry};
use crate::packets::assemble::packet_files;
use crate::state::PacketView;

/// How often the dispatcher looks for due packets without being woken.
const SWEEP: Duration = Duration::from_secs(30);

pub struct Dispatcher {
    ev: Arc<Evidence>,
    cfg: FilingConfig,
    wake: Notify,
    /// Packets whose failed filings should be tried again.
    refile: Mutex<BTreeSet<String>>,
    /// Packets already reported as having no route (logged once).
    unrouted: Mutex<BTreeSet<String>>,
    /// Serialises sweeps, so a wake during a sweep cannot file one packet twice at once.
    sweeping: tokio::sync::Mutex<()>,
}

/// Subject line of a packet's e-mail / webhook document.
fn subject(p: &PacketView) -> String {
    let what = match p.kind.as_str() {
        "takedown" => "删除违法群组请求 / takedown request",
        "police" => "涉嫌侵犯公民个人信息犯罪线索 / police report",
        _ => "个人信息泄露通知资料 / breach-notice data",
    };
    format!("[leakwatch] {what}: case {} ({})", p.case, p.packet_id)
}

impl Dispatcher {
    pub fn new(ev: Arc<Evidence>, cfg: FilingConfig) -> Arc<Dispatcher> {
        Arc::new(Dispatcher {
            ev,
            cfg,
            wake: Notify::new(),
            refile: Mutex::new(BTreeSet::new()),
            unrouted: Mutex::new(BTreeSet::new()),
            sweeping: tokio::sync::Mutex::new(()),
        })
    }

    /// Look for due packets now (after a packet was built).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Try the failed filings of a packet again.
    pub fn refile(&self, packet_id: &str) {
        self.refile
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(packet_id.to_string());
        self.wake();
    }

    /// Run until the task is aborted.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                me.sweep().await;
                tokio::select! {
                    _ = me.wake.notified() => {}
                    _ = tokio::time::sleep(SWEEP) => {}
                }
            }
        })
    }

    /// File everything due, one recipient at a time.
    pub async fn sweep(self: &Arc<Self>) {
        let _one = self.sweeping.lock().await;
        let packets = match self.ev.state.packets() {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("filing: cannot list packets: {e}");
                return;
            }
        };
        for p in packets {
            // Settled packets cost nothing per sweep: no filers are built for them.
            let refile = self
                .refile
                .lock()
                .unwrap_or_else(|x| x.into_inner())
                .contains(&p.packet_id);
            match p.filing_status() {
                "filed" => continue,
                "failed" if !refile => continue,
                _ => {}
            }
            let me = self.clone();
            let id = p.packet_id.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || me.file_packet(&p)).await {
                tracing::error!(packet = %id, "filing task failed: {e}");
            }
        }
    }

    fn file_packet(&self, p: &PacketView) {
        let filers = match self.cfg.filers_for(&p.kind) {
            Ok(f) => f,
            Err(e) => {
                let first = self
                    .unrouted
                    .lock()
                    .unwrap_or_else(|x| x.into_inner())
                    .insert(p.packet_id.clone());
                if first {
                    tracing::warn!(packet = %p.packet_id, "packet not filed: {e}");
                }
                return;
            }
        };
        let refile = self
            .refile
            .lock()
            .unwrap_or_else(|x| x.into_inner())
            .remove(&p.packet_id);
        let mut request: Option<FilingRequest> = None;
        for filer in filers {
            let (channel, recipient) = (filer.channel().to_string(), filer.recipient());
            let done = p
                .filings
                .iter()
                .find(|f| f.channel == channel && f.recipient == recipient);
            let first_attempt = match done {
                Some(f) if f.status == "filed" => continue,
                Some(f) if f.status == "failed" && !refile => continue,
                Some(f) => f.attempts + 1,
                None => 1,
            };
            if request.is_none() {
                request = match self.request(p) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        tracing::error!(packet = %p.packet_id, "cannot read packet files: {e}");
                        return;
                    }
                };
            }
            let Some(req) = &request else { return };
            let record = |body: EntryBody| {
                if let Err(e) = self.ev.record(&LedgerEntry::new("system:filing", body)) {
                    tracing::error!(packet = %p.packet_id, "cannot record filing: {e}");
                }
            };
            let mut last_attempt = first_attempt - 1;
            let outcome = file_with_retry(
                filer.as_ref(),
                req,
                &self.cfg.retry,
                &std::thread::sleep,
                &mut |a: &Attempt| {
                    last_attempt = first_attempt - 1 + a.number;
                    let (ok, retryable, message_id, answer) = match &a.result {
                        Ok(r) => (true, false, r.message_id.clone(), r.server_answer.clone()),
                        Err(f) => (false, f.retryable, None, f.message.clone()),
                    };
                    record(EntryBody::FilingAttempted {
                        case: p.case.clone(),
                        packet_id: p.packet_id.clone(),
                        channel: channel.clone(),
                        recipient: recipient.clone(),
                        attempt: last_attempt,
                        ok,
                        retryable,
                        message_id,
                        answer,
                    });
                },
            );
            let (status, message_id) = match &outcome {
                Outcome::Filed(r) => ("filed", r.message_id.clone()),
                Outcome::Failed { last_error, .. } => {
                    tracing::warn!(packet = %p.packet_id, %channel, "filing failed: {last_error}");
                    ("failed", None)
                }
            };
            record(EntryBody::FilingFinished {
                case: p.case.clone(),
                packet_id: p.packet_id.clone(),
                channel: channel.clone(),
                recipient: recipient.clone(),
                status: status.into(),
                attempts: last_attempt,
                message_id,
            });
        }
    }

    fn request(
        &self,
        p: &PacketView,
    ) -> Result<FilingRequest, crate::packets::assemble::AssembleError> {
        let files = packet_files(&self.ev, p)?;
        let body_text = files
            .iter()
            .find(|(name, _, _)| name.ends_with(".txt"))
            .map(|(_, _, b)| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_else(|| subject(p));
        Ok(FilingRequest {
            packet_id: p.packet_id.clone(),
            kind: p.kind.clone(),
            subject: subject(p),
            body_text,
            attachments: files
                .into_iter()
                .map(|(name, content_type, bytes)| Attachment {
                    name,
                    content_type,
                    bytes,
                })
                .collect(),
        })
    }
}
