//! Tamper detection: flipping any single byte of a segment file, a blob file or a checkpoint
//! makes `ledger verify` fail and name what was damaged.

mod common;

use std::fs;
use std::path::Path;

use leakwatch::evidence;
use leakwatch::ledger::{Ledger, verify};

/// Verify in-process (the same code the command runs), returning the error text on failure.
fn verify_text(config: &leakwatch::config::Config) -> Result<(), String> {
    let ledger = Ledger::open_read_only(config).map_err(|e| e.to_string())?;
    let blobs = evidence::open_blobs(config, false).map_err(|e| e.to_string())?;
    verify::verify(&ledger, &blobs, &|_, _| {})
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn flip(path: &Path, at: usize) -> Vec<u8> {
    let good = fs::read(path).unwrap();
    let mut bad = good.clone();
    bad[at] ^= 0x20;
    fs::write(path, &bad).unwrap();
    good
}

fn small_ledger() -> (common::Scratch, leakwatch::config::Config) {
    let s = common::Scratch::new("");
    s.ok(&[
        "ledger",
        "append-synthetic",
        "--count",
        "24",
        "--threads",
        "1",
        "--blob-every",
        "3",
    ]);
    s.ok(&["ledger", "checkpoint"]);
    let config = s.config();
    assert!(verify_text(&config).is_ok());
    (s, config)
}

#[test]
fn every_flipped_segment_byte_is_caught_and_names_the_entry() {
    let (s, config) = small_ledger();
    let segs = common::segment_files(&s.data_root());
    assert_eq!(segs.len(), 1);
    let seg = &segs[0];
    // Record boundaries, to know which entry each byte belongs to.
    let ledger = Ledger::open_read_only(&config).unwrap();
    let starts: Vec<u64> = (0..ledger.size())
        .map(|i| ledger.position_of(i).unwrap().1)
        .collect();
    drop(ledger);
    let len = fs::metadata(seg).unwrap().len() as usize;
    for at in 0..len {
        let good = flip(seg, at);
        let err = verify_text(&config).expect_err(&format!("flip at byte {at} went unnoticed"));
        let entry = starts.iter().rposition(|&s| s as usize <= at);
        match entry {
            Some(i) => assert!(
                err.contains(&format!("entry {i} ")) || err.contains(&format!("entry {i}:")),
                "byte {at} (entry {i}): {err}"
            ),
            None => assert!(err.contains("segment header"), "byte {at}: {err}"),
        }
        fs::write(seg, good).unwrap();
    }
    assert!(verify_text(&config).is_ok());
}

#[test]
fn every_flipped_blob_byte_is_caught_and_names_the_blob() {
    let (s, config) = small_ledger();
    let blobs = evidence::open_blobs(&config, false).unwrap();
    let ids = blobs.list().unwrap();
    assert_eq!(ids.len(), 8);
    for id in ids.iter().take(2) {
        let path = blobs.path_of(id);
        let len = fs::metadata(&path).unwrap().len() as usize;
        for at in 0..len {
            let good = flip(&path, at);
            let err = verify_text(&config).expect_err("blob flip unnoticed");
            assert!(err.contains(&id.hex()), "byte {at}: {err}");
            fs::write(&path, good).unwrap();
        }
    }
    // A deleted blob is named too, and the command exits non-zero with one line.
    fs::remove_file(blobs.path_of(&ids[3])).unwrap();
    let err = s.fails(&["ledger", "verify"]);
    assert!(
        err.contains(&ids[3].hex()) && err.contains("not found"),
        "{err}"
    );
}

#[test]
fn every_flipped_checkpoint_byte_is_caught() {
    let (s, config) = small_ledger();
    let ledger = Ledger::open_read_only(&config).unwrap();
    let cp = ledger.latest_checkpoint().unwrap().unwrap().path;
    drop(ledger);
    let len = fs::metadata(&cp).unwrap().len() as usize;
    for at in 0..len {
        let good = flip(&cp, at);
        let r = verify_text(&config);
        fs::write(&cp, good).unwrap();
        let err = r.expect_err(&format!("checkpoint flip at {at} unnoticed"));
        assert!(err.contains("checkpoints/"), "byte {at}: {err}");
    }
    // The same damage through the command line: non-zero exit, one line, names the file.
    flip(&cp, 30);
    let err = s.fails(&["ledger", "verify"]);
    assert!(err.contains(&cp.display().to_string()), "{err}");
}

#[test]
fn changed_entry_with_fixed_checksum_is_caught_by_the_signed_root() {
    // An attacker who rewrites an entry and recomputes its frame checksum still breaks the
    // checkpoint: the Merkle root no longer matches the signature.
    let (s, config) = small_ledger();
    let seg = &common::segment_files(&s.data_root())[0];
    let ledger = Ledger::open_read_only(&config).unwrap();
    let (_, off) = ledger.position_of(5).unwrap();
    drop(ledger);
    let mut bytes = fs::read(seg).unwrap();
    let off = off as usize;
    let len = u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap()) as usize;
    let payload = off + 8..off + 8 + len;
    let text = String::from_utf8(bytes[payload.clone()].to_vec()).unwrap();
    let forged = text.replace("synthetic entry", "synthetic entrY");
    assert_ne!(forged, text);
    bytes[payload.clone()].copy_from_slice(forged.as_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&bytes[off..off + 4]);
    h.update(&bytes[payload]);
    bytes[off + 4..off + 8].copy_from_slice(&h.finalize().to_le_bytes());
    fs::write(seg, bytes).unwrap();
    let err = s.fails(&["ledger", "verify"]);
    assert!(err.contains("does not match"), "{err}");
}
