//! The evidence ledger: an append-only, tamper-evident log of every capture and custody event.
//!
//! Invariants (the ones a court relies on):
//! - **Durable before acknowledged.** `append` returns an entry's index only after its bytes are
//!   fsynced. Concurrent appends are batched by one writer thread into a single write + fsync
//!   (group commit), so durability does not cost one fsync per entry.
//! - **Append-only and checked.** Entries are framed and checksummed in segment files
//!   ([`segment`]); a crash can only leave an incomplete tail, which is cut on the next writable
//!   open and kept in `quarantine/`.
//! - **Tamper-evident.** Entry `i` is leaf `i` of an RFC 6962 Merkle tree ([`merkle`]); signed
//!   checkpoints ([`checkpoint`], C2SP tlog-checkpoint notes, Ed25519) commit to the tree's size
//!   and root, so any later change to a covered entry breaks a signature or a proof.
//! - **The source of truth.** Everything in `state` is rebuilt from here.
//!
//! The ledger knows nothing of chat platforms: entries are typed in [`entry`], blobs live in
//! `crate::blobs` and are referenced by hash only.

pub mod checkpoint;
pub mod entry;
pub mod merkle;
pub mod segment;
pub mod verify;

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;

use ed25519_dalek::SigningKey;

use crate::config::Config;
use crate::durable;
use checkpoint::{Checkpoint, NoteSigner, NoteVerifier};
use entry::LedgerEntry;
use merkle::{Hash, MerkleTree};
use segment::{EntryStore, OpenMode, SegmentStore, TornTail};

pub const SEED_FILE: &str = "log-ed25519.seed";
pub const VKEY_FILE: &str = "log-ed25519.vkey";

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{segment}: entry {index} (byte {offset}) is damaged: {reason}")]
    Corrupt {
        index: u64,
        segment: String,
        offset: u64,
        reason: String,
    },
    #[error("entry {index} does not exist (the ledger has {size} entries)")]
    NoSuchEntry { index: u64, size: u64 },
    #[error("entry of {size} bytes is over the {max}-byte limit (or empty)")]
    EntryTooLarge { size: usize, max: usize },
    #[error("entry {index}: {reason}")]
    BadEntry { index: u64, reason: String },
    #[error("the ledger was opened read-only")]
    ReadOnly,
    #[error("the ledger refuses appends after a storage failure until it is reopened: {0}")]
    Poisoned(String),
    #[error("append failed: {0}")]
    AppendFailed(String),
    #[error("{path}: ledger is in use by another leakwatch process (stop it, or let it do this)")]
    Locked { path: String },
    #[error("{path}: missing key file; {detail}")]
    MissingKey { path: String, detail: String },
    #[error("{path}: bad key file: {detail}")]
    BadKey { path: String, detail: String },
    #[error("{path}: {reason}")]
    BadCheckpoint { path: String, reason: String },
    #[error("merkle proof: {0}")]
    Proof(#[from] merkle::ProofError),
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> LedgerError + '_ {
    move |source| LedgerError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Tuning for how appends reach the disk.
#[derive(Debug, Clone, Copy)]
pub struct AppendPolicy {
    /// Batch concurrent appends into one fsync (on in production; off only to measure its worth).
    pub group_commit: bool,
    /// The most entries one batch may hold.
    pub max_batch: usize,
}

impl Default for AppendPolicy {
    fn default() -> Self {
        AppendPolicy {
            group_commit: true,
            max_batch: 4096,
        }
    }
}

type AppendResult = Result<u64, LedgerError>;

struct AppendRequest {
    bytes: Vec<u8>,
    leaf: Hash,
    reply: tokio::sync::oneshot::Sender<AppendResult>,
}

/// A signed checkpoint as stored in `ledger/checkpoints/`.
#[derive(Debug, Clone)]
pub struct SignedCheckpoint {
    pub checkpoint: Checkpoint,
    pub note: String,
    pub path: PathBuf,
}

pub struct Ledger {
    dir: PathBuf,
    store: Arc<SegmentStore>,
    tree: Arc<RwLock<MerkleTree>>,
    origin: String,
    verifier: NoteVerifier,
    signer: Option<NoteSigner>,
    entry_max_bytes: usize,
    sender: Option<mpsc::Sender<AppendRequest>>,
    writer: Option<JoinHandle<()>>,
    /// Held for the life of a writable ledger: one appending process at a time.
    _lock: Option<File>,
    torn_tail: Option<TornTail>,
}

impl Ledger {
    /// Open for appending: takes the lock, loads (or on a new ledger creates) the signing key,
    /// cuts a torn tail, and starts the writer thread.
    pub fn open(config: &Config, policy: AppendPolicy) -> Result<Ledger, LedgerError> {
        let dir = config.ledger_dir();
        durable::create_dir_all_synced(&dir).map_err(io_at(&dir))?;
        let lock = take_lock(&dir)?;
        let checkpoints_before = list_checkpoint_files(&dir)?;
        let has_segments = fs::read_dir(&dir)
            .map_err(io_at(&dir))?
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("seg-"));
        let signer = load_or_create_signer(config, has_segments || !checkpoints_before.is_empty())?;
        let verifier = signer.verifier();
        let protected_len = checkpoints_before
            .last()
            .map(|(size, _)| *size)
            .unwrap_or(0);
        let (store, torn) = SegmentStore::open(
            &dir,
            OpenMode::Writable { protected_len },
            config.ledger.segment_max_bytes,
            config.ledger.entry_max_bytes,
        )?;
        if let Some(t) = &torn {
            tracing::warn!(
                segment = %t.segment.display(),
                offset = t.offset,
                bytes = t.bytes,
                saved_to = %t.saved_to.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
                "ledger: cut a torn tail left by an interrupted write ({})",
                t.reason
            );
        }
        let store = Arc::new(store);
        let tree = Arc::new(RwLock::new(build_tree(store.as_ref())?));
        let (sender, receiver) = mpsc::channel();
        let writer = {
            let store = store.clone();
            let tree = tree.clone();
            std::thread::Builder::new()
                .name("ledger-writer".into())
                .spawn(move || writer_loop(receiver, store, tree, policy))
                .map_err(io_at(&dir))?
        };
        let ledger = Ledger {
            dir,
            store,
            tree,
            origin: config.ledger.origin.clone(),
            verifier,
            signer: Some(signer),
            entry_max_bytes: config.ledger.entry_max_bytes,
            sender: Some(sender),
            writer: Some(writer),
            _lock: Some(lock),
            torn_tail: torn,
        };
        ledger.check_checkpoints_against_tree()?;
        Ok(ledger)
    }

    /// Open without changing anything (verify, dump, proof): no lock, no key creation, a torn
    /// tail is reported in [`Ledger::torn_tail`] but left in place.
    pub fn open_read_only(config: &Config) -> Result<Ledger, LedgerError> {
        let dir = config.ledger_dir();
        let verifier = load_verifier(config)?;
        let (store, torn) = SegmentStore::open(
            &dir,
            OpenMode::ReadOnly,
            config.ledger.segment_max_bytes,
            config.ledger.entry_max_bytes,
        )?;
        let tree = build_tree(&store)?;
        Ok(Ledger {
            dir,
            store: Arc::new(store),
            tree: Arc::new(RwLock::new(tree)),
            origin: config.ledger.origin.clone(),
            verifier,
            signer: None,
            entry_max_bytes: config.ledger.entry_max_bytes,
            sender: None,
            writer: None,
            _lock: None,
            torn_tail: torn,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.torn_tail.as_ref()
    }

    pub fn verifier(&self) -> &NoteVerifier {
        &self.verifier
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Number of entries (the tree size).
    pub fn size(&self) -> u64 {
        self.read_tree().size()
    }

    pub fn root(&self) -> Hash {
        self.read_tree().root()
    }

    pub fn root_at(&self, size: u64) -> Result<Hash, LedgerError> {
        Ok(self.read_tree().root_at(size)?)
    }

    pub fn leaf_hash(&self, index: u64) -> Option<Hash> {
        self.read_tree().leaf(index)
    }

    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, LedgerError> {
        Ok(self.read_tree().inclusion_proof(index, size)?)
    }

    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, LedgerError> {
        Ok(self.read_tree().consistency_proof(old, new)?)
    }

    fn read_tree(&self) -> std::sync::RwLockReadGuard<'_, MerkleTree> {
        self.tree.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The stored bytes of entry `index`.
    pub fn read_bytes(&self, index: u64) -> Result<Vec<u8>, LedgerError> {
        self.store.read(index)
    }

    pub fn read_entry(&self, index: u64) -> Result<LedgerEntry, LedgerError> {
        let bytes = self.store.read(index)?;
        LedgerEntry::from_bytes(&bytes).map_err(|e| LedgerError::BadEntry {
            index,
            reason: e.to_string(),
        })
    }

    /// Where entry `index` sits on disk (segment file, byte offset), for error messages.
    pub fn position_of(&self, index: u64) -> Option<(PathBuf, u64)> {
        self.store.position_of(index)
    }

    fn prepare(
        &self,
        entry: &LedgerEntry,
    ) -> Result<(mpsc::Sender<AppendRequest>, Vec<u8>), LedgerError> {
        let sender = self.sender.clone().ok_or(LedgerError::ReadOnly)?;
        let bytes = entry.to_bytes();
        if bytes.len() > self.entry_max_bytes {
            return Err(LedgerError::EntryTooLarge {
                size: bytes.len(),
                max: self.entry_max_bytes,
            });
        }
        Ok((sender, bytes))
    }

    fn submit(
        sender: &mpsc::Sender<AppendRequest>,
        bytes: Vec<u8>,
    ) -> Result<tokio::sync::oneshot::Receiver<AppendResult>, LedgerError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let leaf = merkle::leaf_hash(&bytes);
        sender
            .send(AppendRequest { bytes, leaf, reply })
            .map_err(|_| LedgerError::AppendFailed("ledger writer has stopped".into()))?;
        Ok(rx)
    }

    /// Append an entry and return its index once it is durable. Blocking: from async code use
    /// [`Ledger::append_async`].
    pub fn append(&self, entry: &LedgerEntry) -> Result<u64, LedgerError> {
        let (sender, bytes) = self.prepare(entry)?;
        Self::submit(&sender, bytes)?
            .blocking_recv()
            .map_err(|_| LedgerError::AppendFailed("ledger writer has stopped".into()))?
    }

    pub async fn append_async(&self, entry: &LedgerEntry) -> Result<u64, LedgerError> {
        let (sender, bytes) = self.prepare(entry)?;
        Self::submit(&sender, bytes)?
            .await
            .map_err(|_| LedgerError::AppendFailed("ledger writer has stopped".into()))?
    }

    /// Signed checkpoints on disk, oldest first.
    pub fn checkpoints(&self) -> Result<Vec<SignedCheckpoint>, LedgerError> {
        list_checkpoint_files(&self.dir)?
            .into_iter()
            .map(|(_, path)| self.read_checkpoint(&path))
            .collect()
    }

    pub fn latest_checkpoint(&self) -> Result<Option<SignedCheckpoint>, LedgerError> {
        match list_checkpoint_files(&self.dir)?.last() {
            Some((_, path)) => Ok(Some(self.read_checkpoint(path)?)),
            None => Ok(None),
        }
    }

    fn read_checkpoint(&self, path: &Path) -> Result<SignedCheckpoint, LedgerError> {
        let note = fs::read_to_string(path).map_err(io_at(path))?;
        let bad = |reason: String| LedgerError::BadCheckpoint {
            path: path.display().to_string(),
            reason,
        };
        let cp =
            checkpoint::open_checkpoint(&note, &self.verifier).map_err(|e| bad(e.to_string()))?;
        if cp.origin != self.origin {
            return Err(bad(format!(
                "origin {:?} is not this log's origin {:?}",
                cp.origin, self.origin
            )));
        }
        let expected = checkpoint_file_name(cp.size);
        if path.file_name().map(|n| n.to_string_lossy().into_owned()) != Some(expected.clone()) {
            return Err(bad(format!(
                "holds tree size {} but is not named {expected}",
                cp.size
            )));
        }
        Ok(SignedCheckpoint {
            checkpoint: cp,
            note,
            path: path.to_path_buf(),
        })
    }

    /// Sign a checkpoint over the current tree and store it. When the latest checkpoint already
    /// covers every entry it is returned as it is.
    pub fn sign_checkpoint(&self) -> Result<SignedCheckpoint, LedgerError> {
        let signer = self.signer.as_ref().ok_or(LedgerError::ReadOnly)?;
        let (size, root) = {
            let t = self.read_tree();
            (t.size(), t.root())
        };
        if let Some(latest) = self.latest_checkpoint()?
            && latest.checkpoint.size == size
        {
            return Ok(latest);
        }
        let cp = Checkpoint {
            origin: self.origin.clone(),
            size,
            root,
            extensions: Vec::new(),
        };
        let note = signer.sign(&cp);
        let cdir = self.dir.join("checkpoints");
        durable::create_dir_all_synced(&cdir).map_err(io_at(&cdir))?;
        let path = cdir.join(checkpoint_file_name(size));
        durable::write_atomic(&path, note.as_bytes(), 0o644).map_err(io_at(&path))?;
        Ok(SignedCheckpoint {
            checkpoint: cp,
            note,
            path,
        })
    }

    /// Every stored checkpoint must be signed by our key and match the tree we hold.
    fn check_checkpoints_against_tree(&self) -> Result<(), LedgerError> {
        let tree = self.read_tree();
        for sc in self.checkpoints()? {
            let cp = &sc.checkpoint;
            let ok = cp.size <= tree.size() && tree.root_at(cp.size).ok() == Some(cp.root);
            if !ok {
                return Err(LedgerError::BadCheckpoint {
                    path: sc.path.display().to_string(),
                    reason: format!(
                        "signed root for {} entries does not match the ledger (it has {} entries)",
                        cp.size,
                        tree.size()
                    ),
                });
            }
        }
        Ok(())
    }

    /// Stop the writer after it has finished every queued append.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.sender = None;
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn writer_loop(
    receiver: mpsc::Receiver<AppendRequest>,
    store: Arc<SegmentStore>,
    tree: Arc<RwLock<MerkleTree>>,
    policy: AppendPolicy,
) {
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        if policy.group_commit {
            while batch.len() < policy.max_batch {
                match receiver.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
        }
        let records: Vec<&[u8]> = batch.iter().map(|r| r.bytes.as_slice()).collect();
        match store.append_batch(&records) {
            Ok(first_index) => {
                {
                    let mut t = tree.write().unwrap_or_else(|p| p.into_inner());
                    for r in &batch {
                        t.push(r.leaf);
                    }
                }
                for (i, r) in batch.into_iter().enumerate() {
                    let _ = r.reply.send(Ok(first_index + i as u64));
                }
            }
            Err(e) => {
                let why = e.to_string();
                tracing::error!("ledger append failed: {why}");
                for r in batch {
                    let _ = r.reply.send(Err(LedgerError::AppendFailed(why.clone())));
                }
            }
        }
    }
}

fn build_tree(store: &dyn EntryStore) -> Result<MerkleTree, LedgerError> {
    let mut tree = MerkleTree::new();
    for i in 0..store.len() {
        tree.push(merkle::leaf_hash(&store.read(i)?));
    }
    Ok(tree)
}

pub fn checkpoint_file_name(size: u64) -> String {
    format!("{size:020}.note")
}

/// `(tree size, path)` of every checkpoint file, smallest first.
fn list_checkpoint_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>, LedgerError> {
    let cdir = dir.join("checkpoints");
    let mut out = Vec::new();
    if !cdir.is_dir() {
        return Ok(out);
    }
    for e in fs::read_dir(&cdir).map_err(io_at(&cdir))?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(size) = name
            .strip_suffix(".note")
            .and_then(|s| s.parse::<u64>().ok())
        {
            out.push((size, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn take_lock(dir: &Path) -> Result<File, LedgerError> {
    let path = dir.join("LOCK");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_at(&path))?;
    // SAFETY: flock on a file descriptor we own; no memory is shared with the call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(LedgerError::Locked {
            path: path.display().to_string(),
        });
    }
    Ok(file)
}

fn load_or_create_signer(config: &Config, ledger_exists: bool) -> Result<NoteSigner, LedgerError> {
    let keys = config.keys_dir();
    let seed_path = keys.join(SEED_FILE);
    let name = &config.ledger.key_name;
    let signer = match read_signer(&seed_path, name)? {
        Some(signer) => signer,
        None => {
            if ledger_exists {
                return Err(LedgerError::MissingKey {
                    path: seed_path.display().to_string(),
                    detail: "the ledger already has entries or checkpoints signed with it; restore the key from backup".into(),
                });
            }
            durable::create_dir_all_synced(&keys).map_err(io_at(&keys))?;
            let signer = NoteSigner::generate(name).map_err(|e| LedgerError::BadKey {
                path: seed_path.display().to_string(),
                detail: e.to_string(),
            })?;
            durable::write_atomic(
                &seed_path,
                hex::encode(signer.seed_bytes()).as_bytes(),
                0o600,
            )
            .map_err(io_at(&seed_path))?;
            tracing::info!(key = %signer.verifier().to_vkey_string(), "ledger: created a new checkpoint signing key");
            signer
        }
    };
    let vkey_path = keys.join(VKEY_FILE);
    let vkey = format!("{}\n", signer.verifier().to_vkey_string());
    if fs::read_to_string(&vkey_path).ok().as_deref() != Some(vkey.as_str()) {
        durable::write_atomic(&vkey_path, vkey.as_bytes(), 0o644).map_err(io_at(&vkey_path))?;
    }
    Ok(signer)
}

/// The public key, for read-only use: from the `.vkey` file, or derived from the seed. Writes
/// nothing.
fn load_verifier(config: &Config) -> Result<NoteVerifier, LedgerError> {
    let keys = config.keys_dir();
    let vkey_path = keys.join(VKEY_FILE);
    match fs::read_to_string(&vkey_path) {
        Ok(text) => NoteVerifier::parse(text.trim()).map_err(|e| LedgerError::BadKey {
            path: vkey_path.display().to_string(),
            detail: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            match read_signer(&keys.join(SEED_FILE), &config.ledger.key_name)? {
                Some(signer) => Ok(signer.verifier()),
                None => Err(LedgerError::MissingKey {
                    path: vkey_path.display().to_string(),
                    detail: "no log key found (has this ledger been created yet?)".into(),
                }),
            }
        }
        Err(e) => Err(io_at(&vkey_path)(e)),
    }
}

/// The signing key from its seed file, or `None` when the file does not exist.
fn read_signer(seed_path: &Path, name: &str) -> Result<Option<NoteSigner>, LedgerError> {
    let text = match fs::read_to_string(seed_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_at(seed_path)(e)),
    };
    let bad = |detail: &str| LedgerError::BadKey {
        path: seed_path.display().to_string(),
        detail: detail.to_string(),
    };
    let bytes = hex::decode(text.trim()).map_err(|_| bad("expected 64 hex digits"))?;
    let seed: [u8; 32] = bytes
        .try_into()
        .map_err(|_| bad("expected 64 hex digits"))?;
    NoteSigner::new(name, SigningKey::from_bytes(&seed))
        .map(Some)
        .map_err(|e| bad(&e.to_string()))
}
