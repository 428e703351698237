//! Opening the data root: the ledger, the blob store and the state, with their keys.
//!
//! This is the one place that knows how the parts under `evidence/` fit together; commands and
//! the server open an [`Evidence`] and use its parts.

use std::path::Path;

use crate::blobs::{BlobError, BlobStore, DataKey};
use crate::config::Config;
use crate::durable;
use crate::ledger::entry::LedgerEntry;
use crate::ledger::{AppendPolicy, Ledger, LedgerError};
use crate::state::{RebuildReason, State, StateError};

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("{0}")]
    Ledger(#[from] LedgerError),
    #[error("{0}")]
    Blob(#[from] BlobError),
    #[error("{0}")]
    State(#[from] StateError),
    #[error("{path}: {detail}")]
    Key { path: String, detail: String },
}

pub struct Evidence {
    pub ledger: Ledger,
    pub blobs: BlobStore,
    pub state: State,
    /// Set when the state had to be rebuilt on open, and why.
    pub rebuilt: Option<RebuildReason>,
    /// Serialises applying entries to the state, so it always applies them in ledger order.
    apply_lock: std::sync::Mutex<()>,
    /// Where exported bundles are kept (`<data_root>/bundles`).
    pub bundles_dir: std::path::PathBuf,
}

impl Evidence {
    /// Open everything for writing (one process at a time holds the ledger).
    pub fn open(config: &Config, progress: &dyn Fn(u64, u64)) -> Result<Evidence, EvidenceError> {
        let ledger = Ledger::open(config, AppendPolicy::default())?;
        let blobs = open_blobs(config, true)?;
        let (state, rebuilt) = State::open(&config.state_dir(), &ledger, progress)?;
        Ok(Evidence {
            ledger,
            blobs,
            state,
            rebuilt,
            apply_lock: std::sync::Mutex::new(()),
            bundles_dir: config.bundles_dir(),
        })
    }

    /// Append `entry` durably, then bring the state up to date; returns the entry's index.
    /// Blocking: from async code use [`Evidence::record_async`].
    pub fn record(&self, entry: &LedgerEntry) -> Result<u64, EvidenceError> {
        let index = self.ledger.append(entry)?;
        self.apply_new()?;
        Ok(index)
    }

    pub async fn record_async(&self, entry: &LedgerEntry) -> Result<u64, EvidenceError> {
        let index = self.ledger.append_async(entry).await?;
        self.apply_new()?;
        Ok(index)
    }

    fn apply_new(&self) -> Result<(), EvidenceError> {
        let _guard = self.apply_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.state.catch_up(&self.ledger, &|_, _| {})?;
        Ok(())
    }
}

/// Open the blob store. With `create`, a store that is still empty gets a new data key file
/// (mode 0600) when none is configured; a store that already holds blobs never does.
pub fn open_blobs(config: &Config, create: bool) -> Result<BlobStore, EvidenceError> {
    let key = load_data_key(config, create)?;
    Ok(BlobStore::open(
        &config.blobs_dir(),
        &key,
        config.blobs.max_bytes,
    )?)
}

fn load_data_key(config: &Config, create: bool) -> Result<DataKey, EvidenceError> {
    let blobs_dir = config.blobs_dir();
    let may_create = create && BlobStore::is_empty_dir(&blobs_dir);
    let why = format!(
        "the blobs in {} cannot be read without their data key",
        blobs_dir.display()
    );
    let bytes = load_secret_key(
        &config.blobs.key_env,
        &config.data_key_file(),
        may_create,
        &why,
    )?;
    Ok(DataKey::new(bytes))
}

/// A 32-byte secret from environment variable `env` (64 hex digits), else from `path`. When
/// neither exists and `may_create` is set, a new random key is written to `path` (mode 0600);
/// otherwise the error says `why_needed`. The key itself never appears in an error or a log.
pub fn load_secret_key(
    env: &str,
    path: &Path,
    may_create: bool,
    why_needed: &str,
) -> Result<[u8; 32], EvidenceError> {
    let parse = |text: &str| -> Option<[u8; 32]> { hex::decode(text.trim()).ok()?.try_into().ok() };
    if let Ok(text) = std::env::var(env) {
        return parse(&text).ok_or_else(|| EvidenceError::Key {
            path: format!("environment variable {env}"),
            detail: "expected 64 hex digits (a 32-byte key)".into(),
        });
    }
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text).ok_or_else(|| EvidenceError::Key {
            path: path.display().to_string(),
            detail: "bad key file: expected 64 hex digits (a 32-byte key)".into(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !may_create {
                return Err(EvidenceError::Key {
                    path: path.display().to_string(),
                    detail: format!("missing key file and {env} is not set; {why_needed}"),
                });
            }
            let mut key = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
            let io = |source: std::io::Error| EvidenceError::Key {
                path: path.display().to_string(),
                detail: source.to_string(),
            };
            if let Some(parent) = path.parent() {
                durable::create_dir_all_synced(parent).map_err(io)?;
            }
            durable::write_atomic(path, hex::encode(key).as_bytes(), 0o600).map_err(io)?;
            tracing::info!(path = %path.display(), "created a new key");
            Ok(key)
        }
        Err(e) => Err(EvidenceError::Key {
            path: path.display().to_string(),
            detail: e.to_string(),
        }),
    }
}
