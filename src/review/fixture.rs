//! A verified-sample finding seeded straight into an evidence store: a case, the captured
//! message, its extracted rows (one fictitious customer) and a match result. For tests of the
//! review, packet, filing and staff surfaces that should not wait for a full capture run.

use chrono::Utc;

use crate::adapters::{GroupRef, Platform};
use crate::evidence::{Evidence, EvidenceError};
use crate::extract::SampleRow;
use crate::ledger::entry::{BlobRef, EntryBody, LedgerEntry, timestamp};

/// A QQ group's case with one captured sample that matched `customers` customers; returns the
/// finding id.
pub fn seed_finding(ev: &Evidence, group: &str, customers: u64) -> Result<String, EvidenceError> {
    seed_finding_in(ev, &GroupRef::qq(group), None, customers).map(|(_, f)| f)
}

/// The same for any group: the case (opened with `note` unless it exists) and the finding id.
/// Each call adds a new captured message, so one case can carry several findings.
pub fn seed_finding_in(
    ev: &Evidence,
    group: &GroupRef,
    note: Option<&str>,
    customers: u64,
) -> Result<(String, String), EvidenceError> {
    let case = crate::intake::case_id(group);
    let platform = group.platform.to_string();
    let record = |body| ev.record(&LedgerEntry::new("test", body));
    if ev.state.case(&case)?.is_none() {
        let link = match group.platform {
            Platform::Telegram => format!("https://t.me/{}", group.id.trim_start_matches('@')),
            Platform::Qq => format!("qq:{}", group.id),
        };
        record(EntryBody::CaseOpened {
            case: case.clone(),
            platform: platform.clone(),
            group_id: group.id.clone(),
            link,
            note: note.map(str::to_string),
        })?;
    }
    let raw = br#"{"message":"sample"}"#;
    let raw_ref = BlobRef {
        sha256: ev.blobs.put(raw)?,
        size: raw.len() as u64,
        media_type: "application/json".into(),
        pii: true,
    };
    let capture = record(EntryBody::Captured(Box::new(
        crate::ledger::entry::CaptureRecord {
            case: case.clone(),
            platform,
            group_id: group.id.clone(),
            group_name: Some("外卖数据".into()),
            message_id: ev.ledger.size().to_string(),
            message_seq: Some(1),
            sender_id: Some("20001".into()),
            sender_nickname: Some("seller".into()),
            sender_card: None,
            posted_at: None,
            captured_at: timestamp(Utc::now()),
            adapter: "test".into(),
            leakwatch_version: "test".into(),
            account: "3000000001".into(),
            raw: raw_ref.clone(),
            media: vec![],
        },
    )))?;
    let rows = vec![SampleRow {
        name: Some("张伟".into()),
        phone: Some("13812345678".into()),
        address: Some("广东省深圳市南山区科技园8栋1203".into()),
        province: Some("广东省".into()),
        city: Some("深圳市".into()),
        district: Some("南山区".into()),
        ..SampleRow::default()
    }];
    let bytes = serde_json::to_vec(&rows).unwrap_or_default();
    let rows_ref = BlobRef {
        sha256: ev.blobs.put(&bytes)?,
        size: bytes.len() as u64,
        media_type: "application/json".into(),
        pii: true,
    };
    let extraction = record(EntryBody::Extracted {
        case: case.clone(),
        capture,
        source: raw_ref.sha256,
        extractor: "test".into(),
        offer: Some(serde_json::json!({"data_types": ["外卖"], "price_per_record_fen": 10})),
        rows: 1,
        rows_blob: Some(rows_ref.clone()),
        notes: vec![],
    })?;
    let report = br#"{}"#;
    let report_ref = BlobRef {
        sha256: ev.blobs.put(report)?,
        size: 2,
        media_type: "application/json".into(),
        pii: true,
    };
    let matched = record(EntryBody::Matched {
        case: Some(case.clone()),
        extraction: Some(extraction),
        input: rows_ref.sha256,
        source: "local".into(),
        matcher: "test".into(),
        rows_checked: 1,
        rows_matched: 1,
        distinct_customers: customers,
        distinct_orders: customers,
        first_order_at: None,
        last_order_at: None,
        canary_partners: vec![],
        suspects: vec![],
        report: report_ref,
    })?;
    Ok((case, format!("F-{matched}")))
}
