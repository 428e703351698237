//! The ledger entry format (version 1).
//!
//! An entry is one JSON object, stored as the exact bytes that were hashed:
//!
//! ```json
//! {"v":1,"at":"2026-11-28T15:00:00.000000Z","actor":"cli:alice","body":{"kind":"case_opened",...}}
//! ```
//!
//! - `v`: format version; a reader rejects versions it does not know.
//! - `at`: when leakwatch recorded the entry, UTC, always microsecond precision with `Z`.
//! - `actor`: who caused it (`system`, `cli:<user>`, `token:<owner>`, `adapter:<name>`).
//! - `body`: the event, tagged by `kind` (snake case). Kinds are only ever added, never changed.
//!
//! Canonical bytes: the writer serialises typed structs (fixed field order, no maps with
//! unordered keys, no floats), so the same entry always produces the same bytes. Verifiers never
//! re-serialise: the Merkle leaf is `SHA-256(0x00 ‖ stored bytes)` (RFC 6962 §2.1).
//! Raw captured bytes never go in an entry: they go to the blob store and the entry names them
//! by SHA-256 (`BlobRef`). Entries carry no unmasked personal data.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::blobs::BlobId;

pub const ENTRY_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerEntry {
    pub v: u32,
    pub at: String,
    pub actor: String,
    pub body: EntryBody,
}

/// A reference from an entry to bytes in the blob store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobRef {
    pub sha256: BlobId,
    pub size: u64,
    /// e.g. `application/json`, `image/jpeg`, `text/csv`.
    pub media_type: String,
    /// True when the bytes may hold victims' personal data (samples, files, screenshots).
    pub pii: bool,
}

/// One file of a packet, kept as a blob.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PacketFileRef {
    pub name: String,
    pub blob: BlobRef,
}

/// The canonical record of one captured message (see the capture issue for how it is filled).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureRecord {
    pub case: String,
    /// `qq` or `telegram`.
    pub platform: String,
    pub group_id: String,
    pub group_name: Option<String>,
    pub message_id: String,
    pub message_seq: Option<i64>,
    pub sender_id: Option<String>,
    pub sender_nickname: Option<String>,
    pub sender_card: Option<String>,
    /// The platform's own timestamp of the message, RFC 3339.
    pub posted_at: Option<String>,
    /// Our UTC clock when the bytes arrived, RFC 3339.
    pub captured_at: String,
    /// Which adapter instance received it, e.g. `onebot:qq-1`.
    pub adapter: String,
    pub leakwatch_version: String,
    /// The collecting account (the bot's own id on the platform).
    pub account: String,
    /// The raw platform JSON exactly as received.
    pub raw: BlobRef,
    /// Images and files fetched with the message.
    pub media: Vec<BlobRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum EntryBody {
    /// Intake opened a case for a group link.
    CaseOpened {
        case: String,
        platform: String,
        group_id: String,
        link: String,
        note: Option<String>,
    },
    /// A message (and its media) was captured.
    Captured(Box<CaptureRecord>),
    /// A custody event on a case: who accessed, exported or handed on what.
    Custody {
        case: String,
        action: String,
        detail: String,
    },
    /// Where the bot account stands with the group: `joined`, `awaiting_invite`,
    /// `awaiting_approval` or `refused`, with the adapter's words.
    JoinStatus {
        case: String,
        platform: String,
        group_id: String,
        status: String,
        detail: String,
    },
    /// Group info and member list exactly as the platform gave them (blobs), with the figures
    /// read from them.
    GroupSnapshot {
        case: String,
        platform: String,
        group_id: String,
        name: Option<String>,
        member_count: Option<u64>,
        info: BlobRef,
        members: Option<BlobRef>,
    },
    /// The group is no longer watched: `bot_removed` or `dismissed`. Takedown tracking looks
    /// for this.
    GroupEnded {
        case: String,
        platform: String,
        group_id: String,
        reason: String,
        operator: Option<String>,
    },
    /// A history backfill finished: everything the platform held up to `through` is captured.
    /// The next backfill (after a restart) starts here.
    Backfilled {
        case: String,
        platform: String,
        group_id: String,
        through_message_id: String,
        through_seq: Option<i64>,
        messages: u64,
    },
    /// A picture or file that could not be preserved, and why (expired URL, over the size cap,
    /// refused address).
    MediaRefused {
        case: String,
        platform: String,
        group_id: String,
        message_id: String,
        what: String,
        reason: String,
    },
    /// What an extractor found in one captured blob. A rerun with a better extractor is a new
    /// entry, never an edit. Sample rows hold victims' data, so they are an encrypted blob.
    Extracted {
        case: String,
        /// Ledger index of the `captured` entry analysed.
        capture: u64,
        /// The blob analysed (the raw message or a media item).
        source: BlobId,
        extractor: String,
        /// The offer as extracted (`extract::Offer` as JSON: price, volume, platforms, ...).
        offer: Option<serde_json::Value>,
        rows: u64,
        rows_blob: Option<BlobRef>,
        notes: Vec<String>,
    },
    /// Sample rows were checked against the platform's order records. The full report (order
    /// ids, per-row results, suspects with their evidence) is a blob; the figures police and
    /// reviewers need first are here. Inputs are named by hash; the blind-index key never
    /// appears.
    Matched {
        /// The case, when the sample came from a captured group (`None` for `leakwatch match`).
        case: Option<String>,
        /// The `extracted` entry the rows came from, if any.
        extraction: Option<u64>,
        /// SHA-256 of the sample (rows blob or the file checked).
        input: BlobId,
        /// `local` or the remote lookup's URL.
        source: String,
        matcher: String,
        rows_checked: u64,
        rows_matched: u64,
        distinct_customers: u64,
        distinct_orders: u64,
        first_order_at: Option<String>,
        last_order_at: Option<String>,
        canary_partners: Vec<String>,
        /// The leading suspects, `kind:id` with lift, strongest first.
        suspects: Vec<String>,
        report: BlobRef,
    },
    /// An RFC 3161 time-stamp over a signed checkpoint, or why the TSA failed.
    Timestamped {
        checkpoint_size: u64,
        tsa: String,
        /// The TimeStampResp DER (`.tsr`).
        token: Option<BlobRef>,
        /// The TSA's certificates from the token, concatenated PEM.
        chain: Option<BlobRef>,
        gen_time: Option<String>,
        error: Option<String>,
    },
    /// A moderator took a finding from the review queue (the entry's actor). Nobody else may
    /// decide it before `until` (RFC 3339) unless the claim is released by a decision.
    ReviewClaimed {
        case: String,
        finding: String,
        until: String,
    },
    /// A moderator (the actor) was shown the unmasked sample of a finding, and why.
    PiiRevealed {
        case: String,
        finding: String,
        reason: String,
    },
    /// A moderator's (the actor's) decision on a finding: `approve`, `reject` or `escalate`.
    /// `required_approvals` is the rule in force when it was taken (2 under four-eyes), so the
    /// finding's status is a function of the ledger alone.
    ReviewDecided {
        case: String,
        finding: String,
        decision: String,
        reason: String,
        required_approvals: u32,
    },
    /// A packet built from an approved finding; each file is a blob.
    PacketBuilt {
        case: String,
        finding: String,
        packet_id: String,
        /// `takedown`, `police` or `breach_notice`.
        packet_kind: String,
        version: u32,
        files: Vec<PacketFileRef>,
    },
    /// One attempt at sending a packet to one recipient, with the server's answer.
    FilingAttempted {
        case: String,
        packet_id: String,
        channel: String,
        recipient: String,
        attempt: u32,
        ok: bool,
        retryable: bool,
        message_id: Option<String>,
        answer: String,
    },
    /// Sending a packet to one recipient ended: `filed` or `failed` (retries exhausted or a
    /// permanent refusal).
    FilingFinished {
        case: String,
        packet_id: String,
        channel: String,
        recipient: String,
        status: String,
        attempts: u32,
        message_id: Option<String>,
    },
    /// Takedown tracking asked the platform about the group: `still_up`, `gone` or `unknown`.
    /// The adapter's answer is kept as evidence.
    TrackingProbed {
        case: String,
        result: String,
        detail: String,
        evidence: BlobRef,
    },
    /// A finding leakwatch raised itself, e.g. `takedown_ignored`: a group still up long after
    /// its takedown was filed (re-file or escalate to police).
    FindingRaised {
        case: String,
        reason: String,
        detail: String,
        /// The packet or finding it follows up.
        about: Option<String>,
    },
    /// Written only by `ledger append-synthetic` and benchmarks, to exercise the log.
    Synthetic {
        seq: u64,
        payload: String,
        blob: Option<BlobRef>,
    },
}

impl EntryBody {
    /// The case an entry belongs to, if any.
    pub fn case(&self) -> Option<&str> {
        match self {
            EntryBody::CaseOpened { case, .. }
            | EntryBody::Custody { case, .. }
            | EntryBody::JoinStatus { case, .. }
            | EntryBody::GroupSnapshot { case, .. }
            | EntryBody::GroupEnded { case, .. }
            | EntryBody::Backfilled { case, .. }
            | EntryBody::MediaRefused { case, .. }
            | EntryBody::Extracted { case, .. }
            | EntryBody::ReviewClaimed { case, .. }
            | EntryBody::PiiRevealed { case, .. }
            | EntryBody::ReviewDecided { case, .. }
            | EntryBody::PacketBuilt { case, .. }
            | EntryBody::FilingAttempted { case, .. }
            | EntryBody::FilingFinished { case, .. }
            | EntryBody::TrackingProbed { case, .. }
            | EntryBody::FindingRaised { case, .. } => Some(case),
            EntryBody::Captured(c) => Some(&c.case),
            EntryBody::Matched { case, .. } => case.as_deref(),
            EntryBody::Timestamped { .. } | EntryBody::Synthetic { .. } => None,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            EntryBody::CaseOpened { .. } => "case_opened",
            EntryBody::Captured(_) => "captured",
            EntryBody::Custody { .. } => "custody",
            EntryBody::JoinStatus { .. } => "join_status",
            EntryBody::GroupSnapshot { .. } => "group_snapshot",
            EntryBody::GroupEnded { .. } => "group_ended",
            EntryBody::Backfilled { .. } => "backfilled",
            EntryBody::MediaRefused { .. } => "media_refused",
            EntryBody::Extracted { .. } => "extracted",
            EntryBody::Timestamped { .. } => "timestamped",
            EntryBody::Matched { .. } => "matched",
            EntryBody::ReviewClaimed { .. } => "review_claimed",
            EntryBody::PiiRevealed { .. } => "pii_revealed",
            EntryBody::ReviewDecided { .. } => "review_decided",
            EntryBody::PacketBuilt { .. } => "packet_built",
            EntryBody::FilingAttempted { .. } => "filing_attempted",
            EntryBody::FilingFinished { .. } => "filing_finished",
            EntryBody::TrackingProbed { .. } => "tracking_probed",
            EntryBody::FindingRaised { .. } => "finding_raised",
            EntryBody::Synthetic { .. } => "synthetic",
        }
    }

    /// Every blob this entry depends on; `ledger verify` checks each one.
    pub fn blob_refs(&self) -> Vec<&BlobRef> {
        match self {
            EntryBody::Captured(c) => std::iter::once(&c.raw).chain(c.media.iter()).collect(),
            EntryBody::Synthetic { blob: Some(b), .. } => vec![b],
            EntryBody::GroupSnapshot { info, members, .. } => {
                std::iter::once(info).chain(members.iter()).collect()
            }
            EntryBody::Extracted { rows_blob, .. } => rows_blob.iter().collect(),
            EntryBody::Matched { report, .. } => vec![report],
            EntryBody::PacketBuilt { files, .. } => files.iter().map(|f| &f.blob).collect(),
            EntryBody::TrackingProbed { evidence, .. } => vec![evidence],
            EntryBody::Timestamped { token, chain, .. } => {
                token.iter().chain(chain.iter()).collect()
            }
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error("entry is not valid JSON of format v{ENTRY_VERSION}: {0}")]
    Malformed(String),
    #[error("entry has format version {0}, this build reads only v{ENTRY_VERSION}")]
    UnknownVersion(u32),
}

impl LedgerEntry {
    pub fn new(actor: &str, body: EntryBody) -> LedgerEntry {
        LedgerEntry {
            v: ENTRY_VERSION,
            at: timestamp(Utc::now()),
            actor: actor.to_string(),
            body,
        }
    }

    /// The canonical bytes: what is stored and hashed.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising a typed struct without maps cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<LedgerEntry, EntryError> {
        #[derive(Deserialize)]
        struct VersionOnly {
            v: u32,
        }
        let version: VersionOnly =
            serde_json::from_slice(bytes).map_err(|e| EntryError::Malformed(e.to_string()))?;
        if version.v != ENTRY_VERSION {
            return Err(EntryError::UnknownVersion(version.v));
        }
        serde_json::from_slice(bytes).map_err(|e| EntryError::Malformed(e.to_string()))
    }
}

/// RFC 3339, UTC, microseconds, `Z`: one fixed shape so timestamps compare as strings.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_and_are_stable() {
        let e = LedgerEntry {
            v: 1,
            at: "2026-11-28T15:00:00.000000Z".into(),
            actor: "cli:alice".into(),
            body: EntryBody::CaseOpened {
                case: "C-1".into(),
                platform: "qq".into(),
                group_id: "123456".into(),
                link: "qq:123456".into(),
                note: None,
            },
        };
        let bytes = e.to_bytes();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            r#"{"v":1,"at":"2026-11-28T15:00:00.000000Z","actor":"cli:alice","body":{"kind":"case_opened","case":"C-1","platform":"qq","group_id":"123456","link":"qq:123456","note":null}}"#
        );
        let back = LedgerEntry::from_bytes(&bytes).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.to_bytes(), bytes);
    }

    #[test]
    fn unknown_version_and_kind_are_refused() {
        let v2 = br#"{"v":2,"at":"x","actor":"a","body":{"kind":"custody","case":"c","action":"a","detail":"d"}}"#;
        assert!(matches!(
            LedgerEntry::from_bytes(v2),
            Err(EntryError::UnknownVersion(2))
        ));
        let odd = br#"{"v":1,"at":"x","actor":"a","body":{"kind":"nope"}}"#;
        assert!(matches!(
            LedgerEntry::from_bytes(odd),
            Err(EntryError::Malformed(_))
        ));
    }

    #[test]
    fn timestamp_shape_is_fixed() {
        let t = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(timestamp(t), "2026-01-02T03:04:05.000000Z");
    }
}
