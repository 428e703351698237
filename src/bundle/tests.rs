//! Unit tests: the format helpers, the hostile-name rules, the PII decision, and an
//! export → verify round trip on a small ledger built in a temporary directory.

use std::path::Path;

use super::format;
use super::safezip::check_name;
use super::*;
use crate::blobs::BlobId;
use crate::config::{Config, EMBEDDED_DEFAULT};
use crate::evidence::Evidence;
use crate::ledger::entry::{BlobRef, CaptureRecord, EntryBody, LedgerEntry};

fn config(dir: &Path) -> Config {
    let mut c = Config::parse(EMBEDDED_DEFAULT, "test").unwrap();
    c.data_root = dir.to_path_buf();
    c
}

fn blob(ev: &Evidence, bytes: &[u8], media: &str) -> BlobRef {
    BlobRef {
        sha256: ev.blobs.put(bytes).unwrap(),
        size: bytes.len() as u64,
        media_type: media.into(),
        pii: true,
    }
}

fn capture(ev: &Evidence, case: &str, id: &str, text: &str, media: Vec<BlobRef>) -> u64 {
    let raw = blob(
        ev,
        format!("{{\"message\":\"{text}\"}}").as_bytes(),
        "application/json",
    );
    let record = CaptureRecord {
        case: case.into(),
        platform: "qq".into(),
        group_id: "800000001".into(),
        group_name: Some("外卖数据".into()),
        message_id: id.into(),
        message_seq: None,
        sender_id: Some("2100000001".into()),
        sender_nickname: None,
        sender_card: None,
        posted_at: None,
        captured_at: "2026-01-01T00:00:00.000000Z".into(),
        adapter: "onebot:test".into(),
        leakwatch_version: crate::VERSION.into(),
        account: "10001".into(),
        raw,
        media,
    };
    ev.record(&LedgerEntry::new(
        "adapter:test",
        EntryBody::Captured(Box::new(record)),
    ))
    .unwrap()
}

/// A case with an offer message, a message carrying sample rows (and its extraction), a
/// picture no one analysed, and an entry of another case.
fn small_case(ev: &Evidence) {
    ev.record(&LedgerEntry::new(
        "cli:test",
        EntryBody::CaseOpened {
            case: "C-1".into(),
            platform: "qq".into(),
            group_id: "800000001".into(),
            link: "qq:800000001".into(),
            note: None,
        },
    ))
    .unwrap();
    capture(ev, "C-1", "1", "美团外卖数据 0.1元/条", vec![]);
    let sample = capture(ev, "C-1", "2", "张三 13812345678 北京市海淀区", vec![]);
    let rows = blob(ev, b"[{\"name\":\"zhang\"}]", "application/json");
    let raw_of_sample = match ev.ledger.read_entry(sample).unwrap().body {
        EntryBody::Captured(c) => c.raw.sha256,
        _ => unreachable!(),
    };
    ev.record(&LedgerEntry::new(
        "extractor",
        EntryBody::Extracted {
            case: "C-1".into(),
            capture: sample,
            source: raw_of_sample,
            extractor: "test".into(),
            offer: None,
            rows: 1,
            rows_blob: Some(rows),
            notes: vec![],
        },
    ))
    .unwrap();
    let picture = blob(ev, b"\x89PNG not really", "image/png");
    capture(ev, "C-1", "3", "看图", vec![picture]);
    capture(ev, "C-2", "9", "another case", vec![]);
}

#[test]
fn names_that_could_escape_are_refused() {
    for bad in [
        "../x",
        "a/../../x",
        "/etc/passwd",
        "a\\b",
        "C:x",
        "a//b",
        "./a",
        "a\u{0}b",
        "",
    ] {
        assert!(check_name(bad).is_err(), "{bad:?}");
    }
    for good in [
        "manifest.json",
        "blobs/ab",
        "log/checkpoints/1.note",
        "dir/",
    ] {
        assert!(check_name(good).is_ok(), "{good:?}");
    }
}

#[test]
fn sums_round_trip_and_reject_malformed_lines() {
    let sums = format::render_sums(&[("a b".into(), "0".repeat(64))]);
    let parsed = format::parse_sums(&sums).unwrap();
    assert_eq!(parsed, vec![(1, "0".repeat(64), "a b".to_string())]);
    assert!(format::parse_sums(b"xyz  a\n").is_err());
    assert!(format::parse_sums(format!("{} a\n", "0".repeat(64)).as_bytes()).is_err());
    assert!(format::parse_sums(format!("{}  a", "0".repeat(64)).as_bytes()).is_err());
}

#[test]
fn blob_refs_are_found_generically() {
    let v = serde_json::json!({"body": {"kind": "future_kind", "nested": [{"sha256": "a".repeat(64), "size": 3, "media_type": "x"}], "other": {"sha256": "not hex", "size": 1}}});
    let refs = format::blob_refs(&v);
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].size, 3);
}

#[test]
fn export_then_verify_round_trip_with_pii_withheld() {
    let dir = tempfile::tempdir().unwrap();
    let ev = Evidence::open(&config(&dir.path().join("evidence")), &|_, _| {}).unwrap();
    small_case(&ev);
    let out = dir.path().join("c1.zip");
    let opts = ExportOptions {
        actor: "cli:test".into(),
        purpose: Some("unit test".into()),
        include_pii: false,
    };
    let report = export(&ev, "C-1", &out, &opts, &|_, _| {}).unwrap();
    // The sample message, its rows, and the unanalysed picture are withheld.
    assert_eq!(report.withheld, 3, "{report:?}");
    assert_eq!(report.blobs, 2);
    assert!(report.fresh_checkpoint);
    let verified = verify_bundle(&out, &VerifyOptions::default()).unwrap();
    assert!(verified.ok, "{}", verified.render(&out));
    assert_eq!(verified.entries, 5);
    assert_eq!(verified.blobs_withheld, 3);

    // The export is a custody entry naming the bundle's hash.
    let entry = ev.ledger.read_entry(report.custody_index).unwrap();
    match entry.body {
        EntryBody::Custody {
            case,
            action,
            detail,
        } => {
            assert_eq!((case.as_str(), action.as_str()), ("C-1", "bundle_exported"));
            let d: serde_json::Value = serde_json::from_str(&detail).unwrap();
            assert_eq!(d["sha256"], report.sha256);
            assert_eq!(d["purpose"], "unit test");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(entry.actor, "cli:test");

    // A second bundle, with personal data, holds the first export's custody entry too.
    let out2 = dir.path().join("c1-pii.zip");
    let opts = ExportOptions {
        include_pii: true,
        ..opts
    };
    let report2 = export(&ev, "C-1", &out2, &opts, &|_, _| {}).unwrap();
    assert_eq!(report2.withheld, 0);
    assert_eq!(report2.entries, 6);
    let verified = verify_bundle(&out2, &VerifyOptions::default()).unwrap();
    assert!(verified.ok, "{}", verified.render(&out2));

    // Never overwritten; unknown cases are named.
    assert!(matches!(
        export(&ev, "C-1", &out2, &opts, &|_, _| {}),
        Err(BundleError::OutputExists { .. })
    ));
    assert!(matches!(
        export(&ev, "C-404", &dir.path().join("x.zip"), &opts, &|_, _| {}),
        Err(BundleError::NoSuchCase(_))
    ));
}

#[test]
fn pii_rules_mark_rows_their_message_and_unanalysed_media() {
    let id = |b: &[u8]| BlobId::of(b);
    let r = |b: &[u8]| BlobRef {
        sha256: id(b),
        size: b.len() as u64,
        media_type: "x".into(),
        pii: true,
    };
    let rec = |raw: &[u8], media: Vec<BlobRef>| {
        EntryBody::Captured(Box::new(CaptureRecord {
            case: "C".into(),
            platform: "qq".into(),
            group_id: "1".into(),
            group_name: None,
            message_id: "1".into(),
            message_seq: None,
            sender_id: None,
            sender_nickname: None,
            sender_card: None,
            posted_at: None,
            captured_at: String::new(),
            adapter: String::new(),
            leakwatch_version: String::new(),
            account: String::new(),
            raw: r(raw),
            media,
        }))
    };
    let extracted =
        |capture: u64, source: &[u8], rows: u64, notes: Vec<String>| EntryBody::Extracted {
            case: "C".into(),
            capture,
            source: id(source),
            extractor: String::new(),
            offer: None,
            rows,
            rows_blob: (rows > 0).then(|| r(b"rows")),
            notes,
        };
    let entries = vec![
        (1, rec(b"offer", vec![])),
        (2, extracted(1, b"offer", 0, vec![])),
        (3, rec(b"sample msg", vec![r(b"sample.xlsx")])),
        (4, extracted(3, b"sample.xlsx", 5, vec![])),
        (5, rec(b"pic msg", vec![r(b"pic")])),
        (
            6,
            extracted(5, b"pic", 0, vec!["not extracted: OCR unavailable".into()]),
        ),
        (7, rec(b"price list", vec![r(b"prices.txt")])),
        (8, extracted(7, b"prices.txt", 0, vec![])),
    ];
    let pii = pii_bearing_blobs(&entries);
    for b in [&b"rows"[..], b"sample msg", b"sample.xlsx", b"pic"] {
        assert!(pii.contains_key(&id(b)), "{}", String::from_utf8_lossy(b));
    }
    for b in [&b"offer"[..], b"pic msg", b"price list", b"prices.txt"] {
        assert!(!pii.contains_key(&id(b)), "{}", String::from_utf8_lossy(b));
    }
}

#[test]
fn zip64_and_deflated_members_read_back_and_damage_is_caught() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.zip");
    {
        // large_file forces zip64 records.
        let file = std::fs::File::create(&path).unwrap();
        let mut z = zip::ZipWriter::new(file);
        let deflated = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        z.start_file("a/deflated.txt", deflated).unwrap();
        z.write_all(&b"hello ".repeat(1000)).unwrap();
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        z.start_file("b", stored).unwrap();
        z.write_all(b"stored bytes").unwrap();
        z.finish().unwrap();
    }
    let zip = super::safezip::SafeZip::open(&path, Limits::default()).unwrap();
    let read = |name: &str| {
        let m = zip.get(name).unwrap().clone();
        let mut out = Vec::new();
        zip.reader(&m).read_to_end(&mut out).unwrap();
        out
    };
    assert_eq!(read("a/deflated.txt"), b"hello ".repeat(1000));
    assert_eq!(read("b"), b"stored bytes");

    // A deflated member whose bytes were damaged fails its CRC (or inflation).
    let mut bytes = std::fs::read(&path).unwrap();
    let header = bytes.windows(4).position(|w| w == b"PK\x03\x04").unwrap();
    let name_len = u16::from_le_bytes([bytes[header + 26], bytes[header + 27]]) as usize;
    let extra_len = u16::from_le_bytes([bytes[header + 28], bytes[header + 29]]) as usize;
    let at = header + 30 + name_len + extra_len + 3;
    bytes[at] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let zip = super::safezip::SafeZip::open(&path, Limits::default()).unwrap();
    let m = zip.get("a/deflated.txt").unwrap().clone();
    let mut out = Vec::new();
    assert!(zip.reader(&m).read_to_end(&mut out).is_err());
}

#[test]
fn a_member_inflating_past_its_declared_size_is_stopped() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lying.zip");
    let mut bytes = {
        let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        z.start_file("custody.json", opts).unwrap();
        z.write_all(&vec![0u8; 1 << 20]).unwrap();
        z.finish().unwrap().into_inner()
    };
    // Claim 100 bytes in both the local header and the directory record.
    let local = bytes.windows(4).position(|w| w == b"PK\x03\x04").unwrap();
    bytes[local + 22..local + 26].copy_from_slice(&100u32.to_le_bytes());
    let central = bytes.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    bytes[central + 24..central + 28].copy_from_slice(&100u32.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let zip = super::safezip::SafeZip::open(&path, Limits::default()).unwrap();
    let m = zip.get("custody.json").unwrap().clone();
    let mut out = Vec::new();
    let err = zip.reader(&m).read_to_end(&mut out).unwrap_err();
    assert!(err.to_string().contains("declared size"), "{err}");
    assert!(out.len() <= 100);
    // The verifier reports it against the file instead of reading on.
    let report = verify_bundle(&path, &VerifyOptions::default()).unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.file.as_deref() == Some("custody.json") && p.detail.contains("declared")),
        "{:?}",
        report.problems
    );
}
