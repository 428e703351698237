//! Input model for packet generation.
//!
//! The caller (the service that owns the evidence ledger and the finding state) fills a
//! [`PacketInput`] once a moderator has approved a finding; every packet builder reads
//! only this struct, so what a packet can reveal is bounded by what is put here.
//! `sample_rows` carries UNMASKED customer data: only the police packet may print it
//! (the police are the one recipient with a legal basis to receive it, 《个人信息保护法》
//! 第十三条第一款第三项 "为履行法定职责或者法定义务所必需"); the takedown and breach-notice
//! builders never read the raw fields and additionally scrub their output against them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::tier::DataCategory;

/// Everything a packet may say about one approved finding.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PacketInput {
    pub finding_id: String,
    pub case_id: String,
    /// `"qq"` or `"telegram"` (case-insensitive); anything else is rejected because the
    /// takedown letter is addressed per platform.
    pub platform: String,
    pub group_id: String,
    pub group_name: Option<String>,
    /// Invite or public link of the group, as captured.
    pub group_link: String,
    pub member_count: Option<u64>,
    pub sellers: Vec<SellerAccount>,
    pub offers: Vec<OfferSummary>,
    pub timeline: Vec<TimelineItem>,
    pub verified: Verification,
    pub suspects: Vec<SuspectSummary>,
    /// UNMASKED sample rows; police packet only.
    pub sample_rows: Vec<SampleRowFull>,
    pub evidence: Vec<EvidenceRef>,
    pub bundle: Option<BundleRef>,
    pub reporter: Reporter,
    pub approvals: Vec<Approval>,
    /// Which quantity threshold of 法释〔2017〕10号 第五条 applies to the sold records.
    /// Defaults to [`DataCategory::Other`] (the 5,000-record threshold) — see `tier.rs`
    /// for why that is the conservative reading for name + phone + delivery address.
    #[serde(default)]
    pub data_category: DataCategory,
    /// Time the packet is generated; used for ids and as the PDF creation date, so that
    /// rebuilding the same input yields the same ids and identical JSON/text files.
    pub generated_at: DateTime<Utc>,
}

/// A chat account that offered the data.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SellerAccount {
    /// Platform account id (QQ number, Telegram user id or @username).
    pub id: String,
    pub nickname: Option<String>,
    /// Group card (群名片) shown in the group, when it differs from the nickname.
    pub card: Option<String>,
    /// Off-platform contacts the seller advertised.
    #[serde(default)]
    pub contacts: Vec<Contact>,
}

/// One advertised contact handle.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Contact {
    /// `"wechat"`, `"telegram"`, `"qq"` or another free-form kind.
    pub kind: String,
    pub handle: String,
}

/// One sales offer seen in the group.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OfferSummary {
    /// Seller account id, when the offer could be attributed.
    pub seller_id: Option<String>,
    /// Price per record in fen (1/100 yuan), as advertised.
    pub price_per_record_fen: Option<u64>,
    /// Total records offered.
    pub volume_records: Option<u64>,
    /// Records offered per day ("日出").
    pub daily_volume: Option<u64>,
    /// Advertised freshness, e.g. "当日", "3天内".
    pub freshness: Option<String>,
    /// Data types named in the offer, e.g. ["姓名","手机号","地址"].
    #[serde(default)]
    pub data_types: Vec<String>,
    /// Delivery platforms named in the offer.
    #[serde(default)]
    pub platforms_named: Vec<String>,
    #[serde(default)]
    pub cities: Vec<String>,
    pub posted_at: Option<DateTime<Utc>>,
    /// Ledger index of the capture entry holding the message.
    pub capture_entry_index: u64,
    /// SHA-256 (hex) of the captured message evidence.
    pub evidence_sha256: String,
}

/// One event of the finding's history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimelineItem {
    pub at: DateTime<Utc>,
    pub what: String,
    pub ledger_index: Option<u64>,
}

/// Result of checking the sample against the platform's own order records.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Verification {
    pub rows_checked: u64,
    pub rows_matched: u64,
    /// Distinct real customers among matched rows: the victim count.
    pub distinct_customers: u64,
    pub distinct_orders: u64,
    pub first_order_at: Option<DateTime<Utc>>,
    pub last_order_at: Option<DateTime<Utc>>,
    /// Data types confirmed in matched rows, e.g. ["姓名","手机号","收货地址"].
    #[serde(default)]
    pub data_types: Vec<String>,
    /// Partners whose canary (planted) records appeared in the sample.
    #[serde(default)]
    pub canary_partners: Vec<String>,
}

/// Kind of actor a suspected leak source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    Merchant,
    Rider,
    Partner,
    Staff,
}

impl ActorKind {
    /// Chinese label used in the Chinese documents.
    pub fn label_zh(self) -> &'static str {
        match self {
            ActorKind::Merchant => "商家",
            ActorKind::Rider => "骑手",
            ActorKind::Partner => "合作方",
            ActorKind::Staff => "内部员工",
        }
    }
}

/// An actor whose access pattern makes it a suspected source of the leak.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SuspectSummary {
    pub actor_kind: ActorKind,
    pub actor_id: String,
    /// Matched sample rows this actor had access to.
    pub touched: u64,
    /// How much more often this actor touched leaked rows than chance would predict.
    pub lift: f64,
    /// Whether the actor obtained the data while performing duties or providing
    /// services (法释〔2017〕10号 第五条第一款第八项 halves the thresholds then).
    pub insider: bool,
    /// Ledger indices of the evidence supporting the suspicion.
    #[serde(default)]
    pub evidence_indices: Vec<u64>,
}

/// One sample row as sold, UNMASKED.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SampleRowFull {
    pub name: String,
    pub phone: String,
    pub masked_phone: String,
    pub address: String,
    pub order_time: Option<DateTime<Utc>>,
}

/// A ledger entry that backs the finding.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EvidenceRef {
    pub ledger_index: u64,
    /// e.g. "capture", "screenshot", "verification", "suspect-analysis".
    pub kind: String,
    /// SHA-256 of the preserved artefact, 64 hex digits.
    pub sha256: String,
    pub description: String,
}

/// Reference to the signed evidence bundle (transparency-log checkpoint).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BundleRef {
    pub checkpoint_size: u64,
    /// Merkle root of the checkpoint, base64 as in the checkpoint note.
    pub checkpoint_root: String,
    pub bundle_sha256: String,
}

/// The organisation filing the packets (the platform's security team).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Reporter {
    pub org_name_zh: String,
    pub org_name_en: String,
    pub contact_email: String,
    pub phone: String,
    pub address: String,
    /// 统一社会信用代码, when the reporter wants it on the police report.
    pub unified_social_credit_code: Option<String>,
}

/// A moderator's approval of the finding.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Approval {
    pub moderator: String,
    pub at: DateTime<Utc>,
    pub reason: String,
}

/// Platforms a packet can be addressed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Platform {
    Qq,
    Telegram,
}

impl Platform {
    pub(crate) fn parse(s: &str) -> Option<Platform> {
        match s.trim().to_ascii_lowercase().as_str() {
            "qq" => Some(Platform::Qq),
            "telegram" | "tg" => Some(Platform::Telegram),
            _ => None,
        }
    }

    pub(crate) fn slug(self) -> &'static str {
        match self {
            Platform::Qq => "qq",
            Platform::Telegram => "telegram",
        }
    }

    pub(crate) fn name_zh(self) -> &'static str {
        match self {
            Platform::Qq => "QQ",
            Platform::Telegram => "Telegram",
        }
    }

    pub(crate) fn operator_zh(self) -> &'static str {
        match self {
            Platform::Qq => "深圳市腾讯计算机系统有限公司(QQ)",
            Platform::Telegram => "Telegram Messenger Inc.",
        }
    }

    pub(crate) fn operator_en(self) -> &'static str {
        match self {
            Platform::Qq => "Tencent (QQ)",
            Platform::Telegram => "Telegram Messenger Inc.",
        }
    }
}
