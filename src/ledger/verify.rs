//! `ledger verify`: re-check everything the ledger promises, from the bytes on disk.
//!
//! Every entry is re-read (its frame checksum re-checked) and parsed; every blob it references
//! is decrypted and re-hashed; the Merkle tree is recomputed; every checkpoint's signature is
//! checked and consecutive checkpoints are linked by RFC 6962 consistency proofs verified with
//! the independent RFC 9162 algorithm. The first failure is reported with the entry, blob or
//! file it concerns.

use std::collections::BTreeSet;

use sha2::Digest;
use std::path::PathBuf;

use super::merkle::{self, Hash, MerkleTree};
use super::segment::TornTail;
use super::{Ledger, LedgerError};
use crate::blobs::{BlobId, BlobStore};

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{0}")]
    Ledger(#[from] LedgerError),
    #[error("entry {index} references blob {blob}: {reason}")]
    Blob {
        index: u64,
        blob: BlobId,
        reason: String,
    },
    #[error("{path}: {reason}")]
    Checkpoint { path: PathBuf, reason: String },
    #[error("entry {index}: time-stamp token from {tsa}: {reason}")]
    Timestamp {
        index: u64,
        tsa: String,
        reason: String,
    },
    #[error(
        "{segment}: entry {index} (byte {offset}) is incomplete ({reason}), but a signed checkpoint covers {covered} entries"
    )]
    DamagedTail {
        segment: PathBuf,
        offset: u64,
        index: u64,
        reason: String,
        covered: u64,
    },
}

#[derive(Debug)]
pub struct VerifyReport {
    pub entries: u64,
    pub root: Hash,
    pub blobs_checked: usize,
    pub checkpoints: usize,
    /// RFC 3161 tokens re-checked against the checkpoint bytes they cover.
    pub timestamps_checked: usize,
    /// An incomplete record after the last entry, not covered by a checkpoint: the trace of an
    /// interrupted write, cut on the next writable open. Not a failure.
    pub torn_tail: Option<TornTail>,
}

/// Verify the whole ledger. `progress(done, total)` is called as entries are checked.
pub fn verify(
    ledger: &Ledger,
    blobs: &BlobStore,
    progress: &dyn Fn(u64, u64),
) -> Result<VerifyReport, VerifyError> {
    let size = ledger.size();
    let mut tree = MerkleTree::new();
    let mut seen: BTreeSet<BlobId> = BTreeSet::new();
    let mut tokens: Vec<(u64, u64, String, BlobId)> = Vec::new();
    for index in 0..size {
        let bytes = ledger.read_bytes(index)?;
        let entry = super::entry::LedgerEntry::from_bytes(&bytes).map_err(|e| {
            let at = ledger
                .position_of(index)
                .map(|(p, o)| format!(" ({} byte {o})", p.display()))
                .unwrap_or_default();
            LedgerError::BadEntry {
                index,
                reason: format!("{e}{at}"),
            }
        })?;
        tree.push(merkle::leaf_hash(&bytes));
        if let super::entry::EntryBody::Timestamped {
            checkpoint_size,
            tsa,
            token: Some(token),
            ..
        } = &entry.body
        {
            tokens.push((index, *checkpoint_size, tsa.clone(), token.sha256));
        }
        for r in entry.body.blob_refs() {
            if !seen.insert(r.sha256) {
                continue;
            }
            let plain = blobs.get(&r.sha256).map_err(|e| VerifyError::Blob {
                index,
                blob: r.sha256,
                reason: e.to_string(),
            })?;
            if plain.len() as u64 != r.size {
                return Err(VerifyError::Blob {
                    index,
                    blob: r.sha256,
                    reason: format!("entry says {} bytes, blob has {}", r.size, plain.len()),
                });
            }
        }
        if index % 1024 == 0 {
            progress(index, size);
        }
    }
    progress(size, size);

    let checkpoints = super::list_checkpoint_files(ledger.dir())?;
    let mut previous: Option<(u64, Hash)> = None;
    for (_, path) in &checkpoints {
        let sc = ledger
            .read_checkpoint(path)
            .map_err(|e| VerifyError::Checkpoint {
                path: path.clone(),
                reason: match e {
                    LedgerError::BadCheckpoint { reason, .. } => reason,
                    other => other.to_string(),
                },
            })?;
        let cp = &sc.checkpoint;
        let fail = |reason: String| VerifyError::Checkpoint {
            path: path.clone(),
            reason,
        };
        if cp.size > size {
            if let Some(t) = ledger.torn_tail() {
                return Err(VerifyError::DamagedTail {
                    segment: t.segment.clone(),
                    offset: t.offset,
                    index: t.index,
                    reason: t.reason.clone(),
                    covered: cp.size,
                });
            }
            return Err(fail(format!(
                "signed for {} entries but the ledger has only {size}",
                cp.size
            )));
        }
        let root = tree.root_at(cp.size).map_err(|e| fail(e.to_string()))?;
        if root != cp.root {
            return Err(fail(format!(
                "signed root for {} entries does not match the entries on disk: an entry below {} was changed",
                cp.size, cp.size
            )));
        }
        if let Some((old_size, old_root)) = previous {
            let proof = tree
                .consistency_proof(old_size, cp.size)
                .map_err(|e| fail(e.to_string()))?;
            merkle::verify_consistency(old_size, cp.size, &old_root, &cp.root, &proof)
                .map_err(|e| fail(format!("not consistent with checkpoint {old_size}: {e}")))?;
        }
        previous = Some((cp.size, cp.root));
    }
    if let Some((old_size, old_root)) = previous {
        let root = tree.root();
        let proof = tree
            .consistency_proof(old_size, size)
            .map_err(LedgerError::from)?;
        merkle::verify_consistency(old_size, size, &old_root, &root, &proof)
            .map_err(LedgerError::from)?;
    }
    // Each stored time-stamp token must cover the exact bytes of the checkpoint it names.
    for (index, cp_size, tsa, token) in &tokens {
        let fail = |reason: String| VerifyError::Timestamp {
            index: *index,
            tsa: tsa.clone(),
            reason,
        };
        let path = ledger
            .dir()
            .join("checkpoints")
            .join(super::checkpoint_file_name(*cp_size));
        let note = std::fs::read(&path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
        let der = blobs.get(token).map_err(|e| fail(e.to_string()))?;
        let (_, info) =
            crate::timestamp::parse_response(tsa, &der).map_err(|e| fail(e.to_string()))?;
        let digest: [u8; 32] = sha2::Sha256::digest(&note).into();
        crate::timestamp::check_token(tsa, &info, &digest, None)
            .map_err(|e| fail(e.to_string()))?;
    }
    Ok(VerifyReport {
        timestamps_checked: tokens.len(),
        entries: size,
        root: tree.root(),
        blobs_checked: seen.len(),
        checkpoints: checkpoints.len(),
        torn_tail: ledger.torn_tail().cloned(),
    })
}
