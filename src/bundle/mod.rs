//! Evidence bundles: what legal hands to police and courts, and the offline verifier anyone can
//! run on one.
//!
//! A bundle is one zip file holding a case's ledger entries with RFC 6962 proofs against a
//! signed checkpoint, the blobs those entries name, the RFC 3161 tokens over the checkpoints, and
//! the custody log. Everything in it can be checked without leakwatch's data, keys or
//! configuration: [`export`] writes it, [`verify_bundle`] checks it.
//!
//! # Layout (format version 1)
//!
//! ```text
//! README.txt                            what this is and how to verify it (Chinese and English)
//! manifest.json                         see "Manifest" below
//! SHA256SUMS                            coreutils format, over every other file
//! custody.json                          who did what to the case, when (derived from the entries)
//! log/key.vkey                          the log's signed-note verifier key: <name>+<key id>+<base64 key>
//! log/checkpoints/<size, 20 digits>.note   signed checkpoints (C2SP tlog-checkpoint in a signed note)
//! ledger/entries.jsonl                  the case's entries: line i is the exact stored bytes of one entry
//! ledger/inclusion-proofs.jsonl         line i: {"index":N,"proof":["<hex>",...]} for entry line i
//! ledger/consistency-proofs.json        {"tree_size":N,"proofs":[{"from_size":S,"proof":["<hex>",...]}]}
//! timestamps/<size, 20 digits>-<n>.tsr        an RFC 3161 TimeStampResp (DER) over that checkpoint's note
//! timestamps/<size, 20 digits>-<n>.chain.pem  the certificates the token carries (PEM), when it has any
//! blobs/<sha256>                        a blob's original bytes; the name is their SHA-256 (hex)
//! ```
//!
//! Names are relative, `/`-separated, ASCII; there are no directory entries, links or duplicates.
//! Blobs are *stored* (not deflated), so a verifier's time goes to hashing, not inflating (and
//! random media would not shrink anyway); the JSON and text files are deflated.
//!
//! # What each part proves, and how to check it
//!
//! - **Checkpoint.** `log/checkpoints/N.note` is a C2SP signed note (`src/ledger/checkpoint.rs`):
//!   origin, tree size, base64 RFC 6962 root, a blank line, then `— <key name>
//!   <base64(4-byte key id ‖ Ed25519 signature)>`. The signature covers the text up to and
//!   including the newline before the blank line, under `log/key.vkey` (which a careful verifier
//!   compares with the key leakwatch publishes). The largest checkpoint is *the bundled
//!   checkpoint*; every proof leads to its root.
//! - **Entries.** Line *i* of `ledger/entries.jsonl` (without its `\n`) is the exact bytes of a
//!   ledger entry (format v1, `src/ledger/entry.rs`); its leaf hash is `SHA-256(0x00 ‖ bytes)`.
//!   Line *i* of `ledger/inclusion-proofs.jsonl` gives its ledger index and RFC 6962 audit path
//!   (leaf sibling first, hex); RFC 9162 §2.1.3.2 verifies it against the bundled checkpoint.
//!   Every entry's `body.case` is the manifest's `case`. Entries are in ledger order.
//! - **Consistency.** For every other bundled checkpoint of size S (the first checkpoint that
//!   covered the case, and the latest one carrying a time-stamp), `ledger/consistency-proofs.json`
//!   holds the RFC 6962 consistency proof from S to the bundled checkpoint (RFC 9162 §2.1.4.2):
//!   the log only grew in between.
//! - **Blobs.** A *blob reference* is any JSON object inside an entry's `body` with a `sha256`
//!   (64 lowercase hex digits) and a `size` (integer) — the `BlobRef` shape. Each referenced
//!   blob is either `blobs/<sha256>` (whose SHA-256 and size must match) or listed in the
//!   manifest's `withheld` with the same hash and size. `blobs/` holds nothing else.
//! - **Time.** Each `timestamps/*.tsr` is a TimeStampResp whose token's message imprint is
//!   SHA-256 of the exact bytes of the checkpoint note it names (`data` in the manifest):
//!   `openssl ts -verify -data <note> -in <tsr> -CAfile <TSA root> -untrusted <chain.pem>`.
//! - **Files.** `SHA256SUMS` (`<hex>  <path>` lines, `sha256sum -c`) and the manifest's `files`
//!   both list every file but themselves (the manifest also appears in `SHA256SUMS`).
//! - **Custody.** `custody.json` is derived from the entries and must equal that derivation
//!   byte for byte: a JSON array, pretty-printed with two-space indents and a final newline, of
//!   one object per entry in ledger order with the keys `index`, `at`, `actor`, `kind` and, for
//!   `custody` entries only, `action` and `detail` (the entry's own values).
//!
//! What a bundle cannot prove on its own: that it holds *every* entry of the case (only the log
//! can show that), and — unless the verifier pins the log key, a TSA root or a checkpoint it got
//! elsewhere — that the key in it is the real log's. A log forked after the fact (same size,
//! another root) is caught by a pinned checkpoint of that size (`--known-checkpoint`) or by a
//! pinned TSA root (the fork has no genuine token over its checkpoint).
//!
//! # Manifest (`manifest.json`, version 1)
//!
//! ```json
//! {
//!   "format": "leakwatch-evidence-bundle",
//!   "version": 1,
//!   "bundle_id": "<32 hex digits, random>",
//!   "case": "<case id>",
//!   "created_at": "<RFC 3339 UTC, microseconds>",
//!   "created_by": "<actor, e.g. cli:alice>",
//!   "purpose": "<why it was exported>" | null,
//!   "leakwatch_version": "0.1.0",
//!   "pii": "withheld" | "included",
//!   "log": {
//!     "origin": "<checkpoint origin line>",
//!     "key": "log/key.vkey",
//!     "checkpoint_size": N,
//!     "checkpoints": [{"size": S, "root": "<hex>", "note": "log/checkpoints/….note"}, ...]
//!   },
//!   "entries": {
//!     "file": "ledger/entries.jsonl", "inclusion_proofs": "ledger/inclusion-proofs.jsonl",
//!     "consistency_proofs": "ledger/consistency-proofs.json", "count": K
//!   },
//!   "custody": "custody.json",
//!   "timestamps": [{"checkpoint_size": S, "tsa": "<url>", "gen_time": "<as in the token>" | null,
//!                   "token": "timestamps/….tsr", "chain": "timestamps/….chain.pem" | null,
//!                   "data": "log/checkpoints/….note"}],
//!   "withheld": [{"sha256": "<hex>", "size": B, "media_type": "…", "reason": "…"}],
//!   "files": [{"path": "…", "sha256": "<hex>", "size": B, "role": "<role>"}]
//! }
//! ```
//!
//! Roles: `readme`, `custody`, `log_key`, `checkpoint`, `entries`, `inclusion_proofs`,
//! `consistency_proofs`, `timestamp_token`, `timestamp_chain`, `blob`. A reader rejects a
//! version it does not know and, within version 1, fields it does not know. `checkpoints` is
//! sorted by size and its last element is the bundled checkpoint (`checkpoint_size`).
//!
//! The export itself is a `custody` ledger entry (`action: "bundle_exported"`) naming the
//! bundle's SHA-256, id and purpose, appended once the zip is durably on disk.

mod cms;
mod export;
mod format;
mod safezip;
mod verify;

#[cfg(test)]
mod tests;

pub use export::{ExportOptions, ExportReport, export, pii_bearing_blobs};

/// Export `case` into the data root's `bundles/` directory as `<case>-<UTC time>.zip` (the
/// API, the console and police packets use this; the command line writes where it is told).
pub fn export_to_store(
    ev: &crate::evidence::Evidence,
    bundles_dir: &std::path::Path,
    case: &str,
    opts: &ExportOptions,
) -> Result<ExportReport, BundleError> {
    crate::durable::create_dir_all_synced(bundles_dir).map_err(|e| BundleError::Io {
        path: bundles_dir.display().to_string(),
        source: e,
    })?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let out = bundles_dir.join(format!("{case}-{stamp}.zip"));
    export(ev, case, &out, opts, &|_, _| {})
}

/// True for a file name `export_to_store` could have made (`C-<hex>-<stamp>.zip`): the only
/// names the download routes accept, so a request can never name another path.
pub fn is_stored_bundle_name(name: &str) -> bool {
    name.len() <= 80
        && name.starts_with("C-")
        && name.ends_with(".zip")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
        && !name.contains("..")
}

/// The case a stored bundle belongs to (`C-<10 hex>`).
pub fn case_of_stored_bundle(name: &str) -> Option<&str> {
    is_stored_bundle_name(name)
        .then(|| name.get(..12))
        .flatten()
}
pub use format::{MANIFEST_FORMAT, MANIFEST_VERSION};
pub use safezip::{DEFAULT_MAX_BYTES, DEFAULT_MAX_FILES, Limits};
pub use verify::{
    Problem, TimestampSummary, VerifyOptions, VerifyReport, extract_to, verify_bundle,
    verify_bundle_with_progress,
};

use crate::blobs::BlobError;
use crate::evidence::EvidenceError;
use crate::ledger::LedgerError;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{0}: no such case (no ledger entry names it)")]
    NoSuchCase(String),
    #[error("{path}: already exists; choose another name (a bundle is never overwritten)")]
    OutputExists { path: String },
    #[error("{0}")]
    Ledger(#[from] LedgerError),
    #[error("{0}")]
    Blob(#[from] BlobError),
    #[error("{0}")]
    Evidence(#[from] EvidenceError),
    #[error("entry {index} references blob {blob}: {reason}")]
    MissingBlob {
        index: u64,
        blob: String,
        reason: String,
    },
    #[error("{blob}: the entries say {expected} bytes, the blob store holds {actual}")]
    BlobSize {
        blob: String,
        expected: u64,
        actual: u64,
    },
    #[error("entry {index}: {reason}")]
    BadEntry { index: u64, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: writing the zip failed: {reason}")]
    Zip { path: String, reason: String },
    /// The file is not a bundle this verifier will read (hostile or broken zip).
    #[error("{path}: refused: {reason}")]
    Refused { path: String, reason: String },
    #[error("{0}")]
    BadOption(String),
}

pub(crate) fn io_at(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> BundleError + '_ {
    move |source| BundleError::Io {
        path: path.display().to_string(),
        source,
    }
}
