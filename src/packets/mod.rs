//! Packets produced after a moderator approves a finding: a takedown request to the chat
//! platform, a police report, and breach-notice data.
//!
//! * [`PacketKind::Takedown`] — `takedown.json` in the XARF v4 shape (xarf/xarf-spec,
//!   `schemas/v4/xarf-core.json` + `types/content-exposed-data.json`) and a bilingual
//!   `letter.txt`. Legal basis: 《个人信息保护法》第十条, 《网络安全法》第四十七条 (the
//!   operator must stop transmission, remove, keep records and report), 《刑法》第二百五十三条
//!   之一. Contains counts only, never sample rows (最小必要, 个保法第六条).
//! * [`PacketKind::Police`] — `police-report.json` and `police-report.pdf` (A4, Chinese,
//!   CJK font embedded with a ToUnicode map so the text can be extracted). Filed under
//!   《刑事诉讼法》第一百一十条 (any organisation discovering a crime may report it); it is the
//!   only packet that carries the unmasked sample rows.
//! * [`PacketKind::BreachNotice`] — `breach-notice.json` and `breach-notice.txt` with the
//!   three items 《个人信息保护法》第五十七条 requires in a notice.
//!
//! [`build`] is pure apart from reading the font file. The JSON and text files are
//! byte-identical for the same input, so their SHA-256 can be re-derived later; the PDF is
//! not, because printpdf names its font resources and the trailer `/ID` from a
//! process-wide counter — the digest recorded in `Packet.files` is the one that counts.

pub mod assemble;
mod breach;
mod common;
pub mod model;
mod pdf;
mod police;
mod scrub;
mod takedown;
pub mod tier;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use model::{
    ActorKind, Approval, BundleRef, Contact, EvidenceRef, OfferSummary, PacketInput, Reporter,
    SampleRowFull, SellerAccount, SuspectSummary, TimelineItem, Verification,
};
pub use takedown::{XARF_VERSION, validate_xarf_v4};
pub use tier::{DataCategory, Tier, TierLevel, severity_tier};

/// Version of the packet formats written here; every JSON file carries it.
pub const PACKET_VERSION: u32 = 1;

/// Documented default for the CJK font (Debian package `fonts-wqy-microhei`). A `.ttc`
/// collection is accepted; its first face ("WenQuanYi Micro Hei") is embedded. The
/// caller passes the configured path to [`build`]; only the police packet reads it.
pub const DEFAULT_FONT_PATH: &str = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc";

/// Which packet to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PacketKind {
    Takedown,
    Police,
    BreachNotice,
}

impl PacketKind {
    /// Stable lower-case name used in ids.
    pub fn slug(self) -> &'static str {
        match self {
            PacketKind::Takedown => "takedown",
            PacketKind::Police => "police",
            PacketKind::BreachNotice => "breach-notice",
        }
    }
}

/// One file of a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketFile {
    pub name: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
    /// Lower-case hex SHA-256 of `bytes`.
    pub sha256: String,
}

/// A finished packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub kind: PacketKind,
    /// Deterministic id, `lw-<kind>-<16 hex>`.
    pub id: String,
    pub files: Vec<PacketFile>,
    /// One line for logs and the moderator UI.
    pub summary: String,
}

/// Why a packet could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PacketError {
    /// Packets are only produced for approved findings.
    #[error("finding {0} has no moderator approval")]
    NotApproved(String),
    #[error("invalid input field {field}: {reason}")]
    InvalidInput { field: &'static str, reason: String },
    #[error("font {path}: {reason}")]
    Font { path: String, reason: String },
    #[error("JSON encoding failed: {0}")]
    Json(#[from] serde_json::Error),
    /// A self-check on the finished output failed; this is a bug, not bad input.
    #[error("internal check failed: {0}")]
    Internal(String),
}

/// Builds one packet for an approved finding. `font_path` is read only for
/// [`PacketKind::Police`] (see [`DEFAULT_FONT_PATH`]).
pub fn build(
    kind: PacketKind,
    input: &PacketInput,
    font_path: &Path,
) -> Result<Packet, PacketError> {
    let platform = validate(input)?;
    let id = common::packet_id(
        kind,
        &input.finding_id,
        &input.case_id,
        &common::rfc3339(&input.generated_at),
    );
    let files = match kind {
        PacketKind::Takedown => takedown::build(input, platform, &id)?,
        PacketKind::Police => police::build(input, platform, &id, font_path)?,
        PacketKind::BreachNotice => breach::build(input, platform, &id)?,
    };
    let summary = format!(
        "{} packet {} for {} group {} (finding {}, {} verified customers): {}",
        kind.slug(),
        id,
        platform.slug(),
        input.group_id,
        input.finding_id,
        input.verified.distinct_customers,
        files
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    // The manifest of digests is only as good as its agreement with the bytes.
    for f in &files {
        if common::sha256_hex(&f.bytes) != f.sha256 {
            return Err(PacketError::Internal(format!(
                "digest mismatch for {}",
                f.name
            )));
        }
    }
    Ok(Packet {
        kind,
        id,
        files,
        summary,
    })
}

/// Checks shared by all packet kinds.
fn validate(input: &PacketInput) -> Result<model::Platform, PacketError> {
    if input.approvals.is_empty() {
        return Err(PacketError::NotApproved(input.finding_id.clone()));
    }
    let platform =
        model::Platform::parse(&input.platform).ok_or_else(|| PacketError::InvalidInput {
            field: "platform",
            reason: format!("{:?} is neither \"qq\" nor \"telegram\"", input.platform),
        })?;
    for (field, value) in [
        ("finding_id", &input.finding_id),
        ("case_id", &input.case_id),
        ("group_id", &input.group_id),
    ] {
        if value.trim().is_empty() {
            return Err(PacketError::InvalidInput {
                field,
                reason: "empty".into(),
            });
        }
    }
    // Evidence lists promise SHA-256 values; a malformed one would mislead the recipient.
    for e in &input.evidence {
        if !common::is_sha256_hex(&e.sha256) {
            return Err(PacketError::InvalidInput {
                field: "evidence.sha256",
                reason: format!("ledger entry {} has {:?}", e.ledger_index, e.sha256),
            });
        }
    }
    for o in &input.offers {
        if !common::is_sha256_hex(&o.evidence_sha256) {
            return Err(PacketError::InvalidInput {
                field: "offers.evidence_sha256",
                reason: format!(
                    "capture entry {} has {:?}",
                    o.capture_entry_index, o.evidence_sha256
                ),
            });
        }
    }
    if let Some(b) = &input.bundle
        && !common::is_sha256_hex(&b.bundle_sha256)
    {
        return Err(PacketError::InvalidInput {
            field: "bundle.bundle_sha256",
            reason: format!("{:?} is not 64 hex digits", b.bundle_sha256),
        });
    }
    if input.verified.rows_matched > input.verified.rows_checked {
        return Err(PacketError::InvalidInput {
            field: "verified.rows_matched",
            reason: "more rows matched than checked".into(),
        });
    }
    Ok(platform)
}

#[cfg(test)]
mod tests;
