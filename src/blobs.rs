//! The blob store: raw captured bytes (message JSON, images, files), content-addressed and
//! encrypted at rest.
//!
//! Invariants:
//! - a blob is named by the SHA-256 of its *original* bytes, so the name a ledger entry records
//!   is the hash a court can recompute from the exported file; the same bytes are stored once;
//! - on disk a blob is `LWB1 ‖ 24-byte nonce ‖ XChaCha20-Poly1305(data key, plaintext)`, with the
//!   hex name as associated data so one blob's file cannot be swapped in for another's;
//! - writes are atomic and durable (temp file, fsync, rename, fsync dir) before `put` returns;
//! - every read decrypts and re-hashes; a mismatch is an error naming the blob.
//!
//! Samples hold victims' personal data, which is why nothing here is ever stored in the clear.
//! `BlobStore` is the narrow interface a later object-store back-end would implement too.

use std::fs;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::durable;

const MAGIC: &[u8; 4] = b"LWB1";
const NONCE_LEN: usize = 24;
const KEYCHECK_FILE: &str = "KEYCHECK";
const KEYCHECK_PLAINTEXT: &[u8] = b"leakwatch data key check v1";

/// A SHA-256 digest naming a blob, shown as 64 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BlobId(pub [u8; 32]);

impl BlobId {
    pub fn of(bytes: &[u8]) -> BlobId {
        BlobId(Sha256::digest(bytes).into())
    }
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
    pub fn parse(text: &str) -> Result<BlobId, BlobError> {
        let bad = || BlobError::BadId(text.chars().take(80).collect());
        if text.len() != 64
            || !text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad());
        }
        let bytes = hex::decode(text).map_err(|_| bad())?;
        let arr: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
        Ok(BlobId(arr))
    }
}

impl std::fmt::Display for BlobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.hex())
    }
}

impl TryFrom<String> for BlobId {
    type Error = BlobError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        BlobId::parse(&s)
    }
}

impl From<BlobId> for String {
    fn from(id: BlobId) -> String {
        id.hex()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob {id}: not found in {dir}")]
    NotFound { id: BlobId, dir: String },
    #[error("blob {id} ({path}): cannot be decrypted — damaged file or wrong data key")]
    Decrypt { id: BlobId, path: String },
    #[error("blob {id} ({path}): content hash is {actual}, not its name")]
    HashMismatch {
        id: BlobId,
        path: String,
        actual: BlobId,
    },
    #[error("blob {id} ({path}): not a leakwatch blob file (bad header)")]
    BadHeader { id: BlobId, path: String },
    #[error("blob of {size} bytes is over the {max}-byte limit")]
    TooLarge { size: u64, max: u64 },
    #[error("{0:?} is not a blob id (64 lowercase hex digits)")]
    BadId(String),
    #[error(
        "{path}: the data key does not open this blob store (wrong LEAKWATCH_DATA_KEY or key file?)"
    )]
    WrongKey { path: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BlobError + '_ {
    move |source| BlobError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The 32-byte key that encrypts blobs. Debug output never shows it.
#[derive(Clone)]
pub struct DataKey([u8; 32]);

impl DataKey {
    pub fn new(bytes: [u8; 32]) -> DataKey {
        DataKey(bytes)
    }
    pub fn generate() -> DataKey {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        DataKey(k)
    }
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    /// Parse 64 hex digits (surrounding white space ignored).
    pub fn from_hex(text: &str) -> Option<DataKey> {
        let bytes = hex::decode(text.trim()).ok()?;
        Some(DataKey(bytes.try_into().ok()?))
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

pub struct BlobStore {
    dir: PathBuf,
    cipher: XChaCha20Poly1305,
    max_bytes: u64,
}

impl BlobStore {
    /// Open (creating if needed) the store in `dir`. A store written under another key is
    /// refused at once, before any blob is read.
    pub fn open(dir: &Path, key: &DataKey, max_bytes: u64) -> Result<BlobStore, BlobError> {
        durable::create_dir_all_synced(dir).map_err(io_err(dir))?;
        let store = BlobStore {
            dir: dir.to_path_buf(),
            cipher: XChaCha20Poly1305::new((&key.0).into()),
            max_bytes,
        };
        let check = dir.join(KEYCHECK_FILE);
        match fs::read(&check) {
            Ok(sealed) => {
                let opened = store.open_sealed(&sealed, b"keycheck");
                if opened.as_deref() != Some(KEYCHECK_PLAINTEXT) {
                    return Err(BlobError::WrongKey {
                        path: check.display().to_string(),
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let sealed = store.seal(KEYCHECK_PLAINTEXT, b"keycheck")?;
                durable::write_atomic(&check, &sealed, 0o600).map_err(io_err(&check))?;
            }
            Err(e) => return Err(io_err(&check)(e)),
        }
        Ok(store)
    }

    /// True when no blob has been stored yet (the key check file alone does not count).
    pub fn is_empty_dir(dir: &Path) -> bool {
        match fs::read_dir(dir) {
            Ok(entries) => entries.flatten().all(|e| e.file_name() == KEYCHECK_FILE),
            Err(_) => true,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path_of(&self, id: &BlobId) -> PathBuf {
        let hex = id.hex();
        self.dir.join(&hex[..2]).join(hex)
    }

    pub fn contains(&self, id: &BlobId) -> bool {
        self.path_of(id).is_file()
    }

    /// Store `bytes`, durably, and return their id. Storing the same bytes again is a no-op.
    pub fn put(&self, bytes: &[u8]) -> Result<BlobId, BlobError> {
        if bytes.len() as u64 > self.max_bytes {
            return Err(BlobError::TooLarge {
                size: bytes.len() as u64,
                max: self.max_bytes,
            });
        }
        let id = BlobId::of(bytes);
        let path = self.path_of(&id);
        if path.is_file() {
            return Ok(id);
        }
        let sealed = self.seal(bytes, id.hex().as_bytes())?;
        let parent = path.parent().unwrap_or(&self.dir);
        durable::create_dir_all_synced(parent).map_err(io_err(parent))?;
        durable::write_atomic(&path, &sealed, 0o600).map_err(io_err(&path))?;
        Ok(id)
    }

    /// Read, decrypt and re-hash a blob.
    pub fn get(&self, id: &BlobId) -> Result<Vec<u8>, BlobError> {
        let path = self.path_of(id);
        let sealed = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BlobError::NotFound {
                    id: *id,
                    dir: self.dir.display().to_string(),
                });
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let shown = path.display().to_string();
        if sealed.len() < MAGIC.len() + NONCE_LEN || &sealed[..4] != MAGIC {
            return Err(BlobError::BadHeader {
                id: *id,
                path: shown,
            });
        }
        let plain = self
            .open_sealed(&sealed, id.hex().as_bytes())
            .ok_or_else(|| BlobError::Decrypt {
                id: *id,
                path: shown.clone(),
            })?;
        let actual = BlobId::of(&plain);
        if actual != *id {
            return Err(BlobError::HashMismatch {
                id: *id,
                path: shown,
                actual,
            });
        }
        Ok(plain)
    }

    /// Every blob id present on disk, sorted.
    pub fn list(&self) -> Result<Vec<BlobId>, BlobError> {
        let mut ids = Vec::new();
        for fan in fs::read_dir(&self.dir)
            .map_err(io_err(&self.dir))?
            .flatten()
        {
            if !fan.path().is_dir() {
                continue;
            }
            for f in fs::read_dir(fan.path())
                .map_err(io_err(&fan.path()))?
                .flatten()
            {
                if let Ok(id) = BlobId::parse(&f.file_name().to_string_lossy()) {
                    ids.push(id);
                }
            }
        }
        ids.sort();
        Ok(ids)
    }

    fn seal(&self, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>, BlobError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad })
            .map_err(|_| BlobError::TooLarge {
                size: plain.len() as u64,
                max: self.max_bytes,
            })?;
        let mut out = Vec::with_capacity(4 + NONCE_LEN + ct.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    fn open_sealed(&self, sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < 4 + NONCE_LEN || &sealed[..4] != MAGIC {
            return None;
        }
        let nonce = XNonce::from_slice(&sealed[4..4 + NONCE_LEN]);
        self.cipher
            .decrypt(
                nonce,
                Payload {
                    msg: &sealed[4 + NONCE_LEN..],
                    aad,
                },
            )
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> BlobStore {
        BlobStore::open(dir, &DataKey::new([7; 32]), 1 << 20).unwrap()
    }

    #[test]
    fn round_trip_dedupe_and_no_plaintext_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let secret = "张三 13812345678 北京市海淀区".as_bytes();
        let a = s.put(secret).unwrap();
        let b = s.put(secret).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, BlobId::of(secret));
        assert_eq!(s.get(&a).unwrap(), secret);
        assert_eq!(s.list().unwrap(), vec![a]);
        let raw = fs::read(s.path_of(&a)).unwrap();
        assert!(!raw.windows(11).any(|w| w == b"13812345678"));
    }

    #[test]
    fn every_flipped_byte_is_caught_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let id = s.put(b"sample rows").unwrap();
        let path = s.path_of(&id);
        let good = fs::read(&path).unwrap();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            fs::write(&path, &bad).unwrap();
            let err = s.get(&id).unwrap_err().to_string();
            assert!(err.contains(&id.hex()), "byte {i}: {err}");
        }
    }

    #[test]
    fn wrong_key_is_refused_on_open() {
        let dir = tempfile::tempdir().unwrap();
        store(dir.path()).put(b"x").unwrap();
        let err = BlobStore::open(dir.path(), &DataKey::new([8; 32]), 1 << 20)
            .err()
            .unwrap();
        assert!(matches!(err, BlobError::WrongKey { .. }), "{err}");
    }

    #[test]
    fn swapped_blob_files_are_caught() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let a = s.put(b"a").unwrap();
        let b = s.put(b"b").unwrap();
        fs::copy(s.path_of(&a), s.path_of(&b)).unwrap();
        assert!(matches!(s.get(&b), Err(BlobError::Decrypt { .. })));
    }

    #[test]
    fn over_the_cap_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(dir.path(), &DataKey::new([7; 32]), 4).unwrap();
        assert!(matches!(s.put(b"12345"), Err(BlobError::TooLarge { .. })));
        assert!(s.list().unwrap().is_empty());
    }
}
