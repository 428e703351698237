//! State is a view: deleting or corrupting the sled directory and restarting gives back the
//! same state, rebuilt from the ledger.

mod common;

use leakwatch::blobs::BlobId;
use leakwatch::evidence::Evidence;
use leakwatch::ledger::entry::{BlobRef, CaptureRecord, EntryBody, LedgerEntry};
use leakwatch::state::RebuildReason;

fn populate(ev: &Evidence) {
    for g in 0..5u32 {
        let case = format!("C-{g}");
        ev.record(&LedgerEntry::new(
            "cli:test",
            EntryBody::CaseOpened {
                case: case.clone(),
                platform: "qq".into(),
                group_id: format!("{}", 700_000 + g),
                link: format!("qq:{}", 700_000 + g),
                note: Some("外卖数据群".into()),
            },
        ))
        .unwrap();
        for m in 0..20u32 {
            let raw = format!("{{\"message_id\":{m},\"raw_message\":\"美团外卖 0.1元/条\"}}");
            let id: BlobId = ev.blobs.put(raw.as_bytes()).unwrap();
            let record = CaptureRecord {
                case: case.clone(),
                platform: "qq".into(),
                group_id: format!("{}", 700_000 + g),
                group_name: Some("外卖数据".into()),
                message_id: m.to_string(),
                message_seq: Some(m as i64),
                sender_id: Some("10001".into()),
                sender_nickname: Some("seller".into()),
                sender_card: None,
                posted_at: None,
                captured_at: "2026-11-28T00:00:00.000000Z".into(),
                adapter: "test".into(),
                leakwatch_version: leakwatch::VERSION.into(),
                account: "20002".into(),
                raw: BlobRef {
                    sha256: id,
                    size: raw.len() as u64,
                    media_type: "application/json".into(),
                    pii: false,
                },
                media: vec![],
            };
            ev.record(&LedgerEntry::new(
                "adapter:test",
                EntryBody::Captured(Box::new(record)),
            ))
            .unwrap();
        }
    }
}

fn open(s: &common::Scratch) -> Evidence {
    Evidence::open(&s.config(), &|_, _| {}).unwrap()
}

#[test]
fn deleted_or_corrupted_state_is_rebuilt_identically() {
    let s = common::Scratch::new("");
    let ev = open(&s);
    assert_eq!(ev.rebuilt, Some(RebuildReason::Missing)); // first run: nothing to open
    populate(&ev);
    let before = ev.state.digest().unwrap();
    assert_eq!(
        ev.state.captures_of_group("qq", "700003").unwrap().len(),
        20
    );
    assert_eq!(
        ev.state.case_for_group("qq", "700002").unwrap().as_deref(),
        Some("C-2")
    );
    drop(ev);

    // A clean reopen neither rebuilds nor changes anything.
    let ev = open(&s);
    assert_eq!(ev.rebuilt, None);
    assert_eq!(ev.state.digest().unwrap(), before);
    drop(ev);

    // Deleted.
    let state_dir = s.data_root().join("state");
    std::fs::remove_dir_all(&state_dir).unwrap();
    let ev = open(&s);
    assert_eq!(ev.rebuilt, Some(RebuildReason::Missing));
    assert_eq!(ev.state.digest().unwrap(), before);
    drop(ev);

    // Corrupted: every file in the sled directory overwritten with garbage.
    for entry in walk(&state_dir) {
        let len = std::fs::metadata(&entry).unwrap().len().max(64) as usize;
        std::fs::write(&entry, vec![0xA5u8; len]).unwrap();
    }
    let ev = open(&s);
    assert!(ev.rebuilt.is_some(), "garbage state was accepted");
    assert_eq!(ev.state.digest().unwrap(), before);
    drop(ev);

    // The command does the same on demand and prints the digest.
    let out = s.ok(&["admin", "rebuild-state"]);
    assert!(out.contains(&before), "{out}");
}

#[test]
fn state_behind_the_ledger_catches_up() {
    let s = common::Scratch::new("");
    let ev = open(&s);
    populate(&ev);
    let digest = ev.state.digest().unwrap();
    let full = ev.state.applied().unwrap();
    drop(ev);
    // Keep an old copy of the state, append more, then put the old state back: it is behind.
    let state_dir = s.data_root().join("state");
    let old = s.dir.path().join("old-state");
    copy_dir(&state_dir, &old);
    let ev = open(&s);
    ev.record(&LedgerEntry::new(
        "cli:test",
        EntryBody::Custody {
            case: "C-1".into(),
            action: "accessed".into(),
            detail: "test".into(),
        },
    ))
    .unwrap();
    let after = ev.state.digest().unwrap();
    assert_ne!(after, digest);
    drop(ev);
    std::fs::remove_dir_all(&state_dir).unwrap();
    std::fs::rename(&old, &state_dir).unwrap();
    let ev = open(&s);
    assert_eq!(ev.rebuilt, None, "a state that is only behind catches up");
    assert_eq!(ev.state.applied().unwrap(), full + 1);
    assert_eq!(ev.state.digest().unwrap(), after);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        let dest = to.join(e.file_name());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}
