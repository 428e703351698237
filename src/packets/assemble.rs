//! From an approved finding to packets on record: gathers a [`PacketInput`] from the ledger,
//! the blobs and the state, builds the packet, stores each file as an encrypted blob and
//! appends a `packet_built` entry. This is the only place packets meet the evidence store;
//! the builders themselves stay pure.
//!
//! Rules:
//! - a packet is built only for a finding the state shows approved (once for takedown and the
//!   breach notice, after the approvals the rule requires for the police packet);
//! - one packet per kind per finding: a second call returns the packet already on record;
//! - the police packet is the only one holding the unmasked sample, so its blobs are marked
//!   PII (withheld from bundles unless the exporter may see PII).

use std::collections::BTreeSet;

use base64::Engine;
use chrono::{DateTime, Utc};

use super::{ActorKind, Contact, DataCategory};
use super::{
    Approval, BundleRef, EvidenceRef, OfferSummary, PACKET_VERSION, PacketError, PacketInput,
    PacketKind, Reporter, SampleRowFull, SellerAccount, SuspectSummary, TimelineItem, Verification,
    build,
};
use crate::config::PacketsConfig;
use crate::evidence::{Evidence, EvidenceError};
use crate::ledger::LedgerError;
use crate::ledger::entry::{BlobRef, EntryBody, LedgerEntry, PacketFileRef};
use crate::matching::MatchReport;
use crate::review::{ReviewError, sample_rows};
use crate::state::{FindingView, PacketView, StateError};

#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    #[error("no finding {0}")]
    NotFound(String),
    #[error("finding {finding} is {status}: packets are built only from approved findings")]
    NotApproved { finding: String, status: String },
    #[error("{0}")]
    Packet(#[from] PacketError),
    #[error("{0}")]
    Evidence(#[from] EvidenceError),
    #[error("{0}")]
    State(#[from] StateError),
    #[error("{0}")]
    Ledger(#[from] LedgerError),
    #[error("{0}")]
    Review(#[from] ReviewError),
    #[error("evidence bundle for the police packet: {0}")]
    Bundle(#[from] crate::bundle::BundleError),
}

/// Which packets a finding's status allows: takedown and breach notice after the first
/// approval, police once every required approval is in.
pub fn kinds_allowed(f: &FindingView) -> Vec<PacketKind> {
    let approvals = f.approvers().len() as u32;
    if approvals == 0 || f.status == "rejected" {
        return Vec::new();
    }
    let mut kinds = vec![PacketKind::Takedown];
    if f.kind == "verified_sample" {
        kinds.push(PacketKind::BreachNotice);
    }
    if f.status == "approved" && approvals >= f.required_approvals.max(1) {
        kinds.push(PacketKind::Police);
    }
    kinds
}

/// The `packet_kind` string of a kind in ledger entries.
pub fn kind_name(kind: PacketKind) -> &'static str {
    match kind {
        PacketKind::Takedown => "takedown",
        PacketKind::Police => "police",
        PacketKind::BreachNotice => "breach_notice",
    }
}

/// Build every packet the finding's approvals allow and that is not on record yet.
pub fn build_due(
    ev: &Evidence,
    finding: &str,
    cfg: &PacketsConfig,
    actor: &str,
) -> Result<Vec<PacketView>, AssembleError> {
    let f = ev
        .state
        .finding(finding)?
        .ok_or_else(|| AssembleError::NotFound(finding.to_string()))?;
    let mut out = Vec::new();
    for kind in kinds_allowed(&f) {
        out.push(build_and_record(ev, finding, kind, cfg, actor)?);
    }
    Ok(out)
}

/// Build one packet for an approved finding and put it on record (or return the one there).
pub fn build_and_record(
    ev: &Evidence,
    finding: &str,
    kind: PacketKind,
    cfg: &PacketsConfig,
    actor: &str,
) -> Result<PacketView, AssembleError> {
    let f = ev
        .state
        .finding(finding)?
        .ok_or_else(|| AssembleError::NotFound(finding.to_string()))?;
    if !kinds_allowed(&f).contains(&kind) {
        return Err(AssembleError::NotApproved {
            finding: finding.to_string(),
            status: if kind == PacketKind::Police && f.status == "awaiting_second_approval" {
                "waiting for its second approval".into()
            } else {
                f.status.clone()
            },
        });
    }
    for id in &f.packets {
        if let Some(p) = ev.state.packet(id)?
            && p.kind == kind_name(kind)
        {
            return Ok(p);
        }
    }
    // The police get the evidence bundle with the packet: exported now (with the sample, as
    // the police packet carries it anyway), referenced by checkpoint and SHA-256.
    let bundle = if kind == PacketKind::Police {
        let opts = crate::bundle::ExportOptions {
            actor: actor.to_string(),
            purpose: Some(format!("police report for finding {}", f.finding)),
            include_pii: true,
        };
        let r = crate::bundle::export_to_store(ev, &ev.bundles_dir, &f.case, &opts)?;
        let checkpoint = ev
            .ledger
            .checkpoints()?
            .into_iter()
            .find(|c| c.checkpoint.size == r.checkpoint_size)
            .map(|c| c.checkpoint);
        checkpoint.map(|c| (c, r.sha256))
    } else {
        None
    };
    let input = packet_input(ev, &f, cfg, bundle)?;
    let packet = build(kind, &input, &cfg.font)?;
    let mut files = Vec::with_capacity(packet.files.len());
    for file in &packet.files {
        let id = ev.blobs.put(&file.bytes).map_err(EvidenceError::from)?;
        files.push(PacketFileRef {
            name: file.name.clone(),
            blob: BlobRef {
                sha256: id,
                size: file.bytes.len() as u64,
                media_type: file.media_type.clone(),
                pii: kind == PacketKind::Police,
            },
        });
    }
    ev.record(&LedgerEntry::new(
        actor,
        EntryBody::PacketBuilt {
            case: f.case.clone(),
            finding: f.finding.clone(),
            packet_id: packet.id.clone(),
            packet_kind: kind_name(kind).into(),
            version: PACKET_VERSION,
            files,
        },
    ))?;
    ev.state
        .packet(&packet.id)?
        .ok_or_else(|| AssembleError::NotFound(packet.id.clone()))
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn data_category(name: &str) -> DataCategory {
    match name {
        "sensitive" => DataCategory::Sensitive,
        "transaction" => DataCategory::Transaction,
        _ => DataCategory::Other,
    }
}

/// Attribution kind (`rider`, `staff_account`, ...) → packet actor kind.
fn actor_kind(kind: &str) -> ActorKind {
    match kind {
        "merchant" => ActorKind::Merchant,
        "rider" => ActorKind::Rider,
        "partner" => ActorKind::Partner,
        _ => ActorKind::Staff,
    }
}

/// Everything the packet builders may say about a finding.
pub fn packet_input(
    ev: &Evidence,
    f: &FindingView,
    cfg: &PacketsConfig,
    bundle: Option<(crate::ledger::checkpoint::Checkpoint, String)>,
) -> Result<PacketInput, AssembleError> {
    let case = ev
        .state
        .case(&f.case)?
        .ok_or_else(|| AssembleError::NotFound(f.case.clone()))?;
    let sample = sample_rows(ev, f)?;
    let (rows, extraction) = (sample.rows, sample.extraction);
    let mut sellers: Vec<SellerAccount> = Vec::new();
    let mut offers = Vec::new();
    let mut timeline = Vec::new();
    let mut evidence = Vec::new();
    let mut seen_sellers = BTreeSet::new();
    let mut report: Option<MatchReport> = None;
    for index in ev.state.entries_of_case(&f.case)? {
        let entry = ev.ledger.read_entry(index)?;
        let at = parse_time(&entry.at).unwrap_or_else(Utc::now);
        let mut note = |what: String| {
            timeline.push(TimelineItem {
                at,
                what,
                ledger_index: Some(index),
            })
        };
        match &entry.body {
            EntryBody::CaseOpened { link, .. } => note(format!("立案 / case opened for {link}")),
            EntryBody::JoinStatus { status, .. } => {
                note(format!("入群状态 / join status: {status}"))
            }
            EntryBody::Extracted {
                capture,
                offer: Some(offer),
                ..
            } => {
                let Ok(EntryBody::Captured(c)) = ev.ledger.read_entry(*capture).map(|e| e.body)
                else {
                    continue;
                };
                let o: crate::extract::Offer =
                    serde_json::from_value(offer.clone()).unwrap_or_default();
                if let Some(id) = &c.sender_id
                    && seen_sellers.insert(id.clone())
                {
                    sellers.push(SellerAccount {
                        id: id.clone(),
                        nickname: c.sender_nickname.clone(),
                        card: c.sender_card.clone(),
                        contacts: o
                            .contacts
                            .iter()
                            .map(|k| Contact {
                                kind: k.kind.clone(),
                                handle: k.handle.clone(),
                            })
                            .collect(),
                    });
                }
                offers.push(OfferSummary {
                    seller_id: c.sender_id.clone(),
                    price_per_record_fen: o.price_per_record_fen,
                    volume_records: o.volume_records,
                    daily_volume: o.daily_volume,
                    freshness: o.freshness.clone(),
                    data_types: o.data_types.clone(),
                    platforms_named: o.platforms.clone(),
                    cities: o.cities.clone(),
                    posted_at: c.posted_at.as_deref().and_then(parse_time),
                    capture_entry_index: *capture,
                    evidence_sha256: c.raw.sha256.hex(),
                });
                evidence.push(EvidenceRef {
                    ledger_index: *capture,
                    kind: "capture".into(),
                    sha256: c.raw.sha256.hex(),
                    description: "出售信息的群消息原文 / the group message offering the data"
                        .into(),
                });
                note(format!("发现出售信息 / offer captured (entry {capture})"));
            }
            EntryBody::Matched {
                report: r,
                rows_matched,
                distinct_customers,
                ..
            } if index == f.matched_entry => {
                evidence.push(EvidenceRef {
                    ledger_index: index,
                    kind: "verification".into(),
                    sha256: r.sha256.hex(),
                    description:
                        "样本与平台订单记录比对结果 / sample checked against order records".into(),
                });
                if let Ok(bytes) = ev.blobs.get(&r.sha256) {
                    report = serde_json::from_slice(&bytes).ok();
                }
                note(format!(
                    "样本核验 / sample verified: {rows_matched} rows, {distinct_customers} customers"
                ));
            }
            EntryBody::ReviewDecided {
                finding, decision, ..
            } if *finding == f.finding => note(format!("审核 / review: {decision}")),
            EntryBody::FilingFinished {
                packet_id, status, ..
            } => note(format!("报送 / packet {packet_id}: {status}")),
            EntryBody::TrackingProbed { result, .. } => note(format!("群状态 / group: {result}")),
            EntryBody::GroupEnded { reason, .. } => {
                note(format!("群已停止 / group ended: {reason}"))
            }
            _ => {}
        }
    }
    if let (Some(x), Some(capture)) = (extraction, sample_capture(ev, extraction)?) {
        evidence.push(EvidenceRef {
            ledger_index: capture.0,
            kind: "sample".into(),
            sha256: capture.1,
            description: format!(
                "含样本的群消息 (extraction entry {x}) / the message carrying the sample"
            ),
        });
    }
    let mut data_types = Vec::new();
    if rows.iter().any(|r| r.name.is_some()) {
        data_types.push("姓名".to_string());
    }
    if rows
        .iter()
        .any(|r| r.phone.is_some() || r.masked_phone.is_some())
    {
        data_types.push("手机号".to_string());
    }
    if rows.iter().any(|r| r.address.is_some()) {
        data_types.push("收货地址".to_string());
    }
    let suspects = report
        .as_ref()
        .map(|r| {
            r.attribution
                .iter()
                .take(5)
                .map(|s| SuspectSummary {
                    actor_kind: actor_kind(&s.actor_kind),
                    actor_id: s.actor_id.clone(),
                    touched: s.touched,
                    lift: if s.lift.is_finite() { s.lift } else { 0.0 },
                    // Every actor in the chain (merchant, rider, delivery partner, platform
                    // staff) receives the data while providing the service: 第五条第一款第八项.
                    insider: true,
                    evidence_indices: vec![f.matched_entry],
                })
                .collect()
        })
        .unwrap_or_default();
    let bundle = bundle.map(|(c, sha)| BundleRef {
        checkpoint_size: c.size,
        checkpoint_root: base64::engine::general_purpose::STANDARD.encode(c.root),
        bundle_sha256: sha,
    });
    let approvals = f
        .decisions
        .iter()
        .filter(|d| d.decision == "approve")
        .map(|d| Approval {
            moderator: d.moderator.clone(),
            at: parse_time(&d.at).unwrap_or_else(Utc::now),
            reason: d.reason.clone(),
        })
        .collect();
    Ok(PacketInput {
        finding_id: f.finding.clone(),
        case_id: f.case.clone(),
        platform: case.platform.clone(),
        group_id: case.group_id.clone(),
        group_name: case.group_name.clone(),
        group_link: case.link.clone(),
        member_count: case.member_count,
        sellers,
        offers,
        timeline,
        verified: Verification {
            rows_checked: f.rows_checked,
            rows_matched: f.rows_matched,
            distinct_customers: f.distinct_customers,
            distinct_orders: f.distinct_orders,
            first_order_at: f.first_order_at.as_deref().and_then(parse_time),
            last_order_at: f.last_order_at.as_deref().and_then(parse_time),
            data_types,
            canary_partners: f.canary_partners.clone(),
        },
        suspects,
        sample_rows: rows
            .iter()
            .map(|r| SampleRowFull {
                name: r.name.clone().unwrap_or_default(),
                phone: r.phone.clone().unwrap_or_default(),
                masked_phone: r.masked_phone.clone().unwrap_or_default(),
                address: r.address.clone().unwrap_or_default(),
                order_time: None,
            })
            .collect(),
        evidence,
        bundle,
        reporter: Reporter {
            org_name_zh: cfg.org_name_zh.clone(),
            org_name_en: cfg.org_name_en.clone(),
            contact_email: cfg.contact_email.clone(),
            phone: cfg.phone.clone(),
            address: cfg.address.clone(),
            unified_social_credit_code: cfg.unified_social_credit_code.clone(),
        },
        approvals,
        data_category: data_category(&cfg.data_category),
        generated_at: Utc::now(),
    })
}

/// The capture (index, raw SHA-256) an extraction analysed.
fn sample_capture(
    ev: &Evidence,
    extraction: Option<u64>,
) -> Result<Option<(u64, String)>, AssembleError> {
    let Some(x) = extraction else { return Ok(None) };
    let EntryBody::Extracted { capture, .. } = ev.ledger.read_entry(x)?.body else {
        return Ok(None);
    };
    match ev.ledger.read_entry(capture)?.body {
        EntryBody::Captured(c) => Ok(Some((capture, c.raw.sha256.hex()))),
        _ => Ok(None),
    }
}

/// The files of a packet on record, decrypted (for filing).
pub fn packet_files(
    ev: &Evidence,
    p: &PacketView,
) -> Result<Vec<(String, String, Vec<u8>)>, AssembleError> {
    let mut out = Vec::new();
    for f in &p.files {
        let bytes = ev.blobs.get(&f.blob.sha256).map_err(EvidenceError::from)?;
        out.push((f.name.clone(), f.blob.media_type.clone(), bytes));
    }
    Ok(out)
}
