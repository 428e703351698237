//! The bundle's file names and JSON shapes (format version 1, documented in `mod.rs`), and the
//! derivations both the exporter and the verifier make from entry bytes: blob references and
//! the custody log. Keeping them in one place is what makes "the verifier recomputes it and
//! finds the same bytes" a real check.

use serde::{Deserialize, Serialize};

pub const MANIFEST_FORMAT: &str = "leakwatch-evidence-bundle";
pub const MANIFEST_VERSION: u32 = 1;

pub const MANIFEST: &str = "manifest.json";
pub const SUMS: &str = "SHA256SUMS";
pub const README: &str = "README.txt";
pub const CUSTODY: &str = "custody.json";
pub const LOG_KEY: &str = "log/key.vkey";
pub const ENTRIES: &str = "ledger/entries.jsonl";
pub const INCLUSION: &str = "ledger/inclusion-proofs.jsonl";
pub const CONSISTENCY: &str = "ledger/consistency-proofs.json";
pub const BLOBS_DIR: &str = "blobs/";

pub fn checkpoint_path(size: u64) -> String {
    format!("log/checkpoints/{size:020}.note")
}

pub fn blob_path(sha256_hex: &str) -> String {
    format!("{BLOBS_DIR}{sha256_hex}")
}

pub fn token_path(size: u64, n: usize) -> String {
    format!("timestamps/{size:020}-{n}.tsr")
}

pub fn chain_path(size: u64, n: usize) -> String {
    format!("timestamps/{size:020}-{n}.chain.pem")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Readme,
    Custody,
    LogKey,
    Checkpoint,
    Entries,
    InclusionProofs,
    ConsistencyProofs,
    TimestampToken,
    TimestampChain,
    Blob,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiPolicy {
    Withheld,
    Included,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub bundle_id: String,
    pub case: String,
    pub created_at: String,
    pub created_by: String,
    pub purpose: Option<String>,
    pub leakwatch_version: String,
    pub pii: PiiPolicy,
    pub log: LogSection,
    pub entries: EntriesSection,
    pub custody: String,
    pub timestamps: Vec<TimestampRef>,
    pub withheld: Vec<WithheldBlob>,
    pub files: Vec<FileRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    pub origin: String,
    pub key: String,
    pub checkpoint_size: u64,
    pub checkpoints: Vec<CheckpointRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointRef {
    pub size: u64,
    /// Hex of the RFC 6962 root the note carries (in base64).
    pub root: String,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntriesSection {
    pub file: String,
    pub inclusion_proofs: String,
    pub consistency_proofs: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimestampRef {
    pub checkpoint_size: u64,
    pub tsa: String,
    pub gen_time: Option<String>,
    pub token: String,
    pub chain: Option<String>,
    pub data: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WithheldBlob {
    pub sha256: String,
    pub size: u64,
    pub media_type: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRef {
    pub path: String,
    pub sha256: String,
    pub size: u64,
    pub role: Role,
}

/// One line of `ledger/inclusion-proofs.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionLine {
    pub index: u64,
    pub proof: Vec<String>,
}

/// `ledger/consistency-proofs.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyFile {
    pub tree_size: u64,
    pub proofs: Vec<ConsistencyProof>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyProof {
    pub from_size: u64,
    pub proof: Vec<String>,
}

/// One row of `custody.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustodyRow {
    pub index: u64,
    pub at: String,
    pub actor: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub action: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub detail: Option<String>,
}

/// The custody row of an entry, from its JSON alone (so kinds added later need no code here).
pub fn custody_row(index: u64, entry: &serde_json::Value) -> CustodyRow {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let body = &entry["body"];
    let kind = text(&body["kind"]);
    let custody = kind == "custody";
    CustodyRow {
        index,
        at: text(&entry["at"]),
        actor: text(&entry["actor"]),
        action: custody.then(|| text(&body["action"])),
        detail: custody.then(|| text(&body["detail"])),
        kind,
    }
}

/// The bytes of `custody.json` for these rows.
pub fn render_custody(rows: &[CustodyRow]) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(rows).unwrap_or_default();
    out.push(b'\n');
    out
}

/// A blob reference found in an entry: any object with a 64-hex `sha256` and an integer `size`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundRef {
    pub sha256: String,
    pub size: u64,
    pub media_type: String,
}

pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Every blob reference inside an entry's `body`, in document order.
pub fn blob_refs(entry: &serde_json::Value) -> Vec<FoundRef> {
    fn walk(v: &serde_json::Value, out: &mut Vec<FoundRef>) {
        match v {
            serde_json::Value::Object(map) => {
                if let (Some(serde_json::Value::String(sha)), Some(size)) =
                    (map.get("sha256"), map.get("size").and_then(|s| s.as_u64()))
                    && is_sha256_hex(sha)
                {
                    out.push(FoundRef {
                        sha256: sha.clone(),
                        size,
                        media_type: map
                            .get("media_type")
                            .and_then(|m| m.as_str())
                            .unwrap_or_default()
                            .to_string(),
                    });
                }
                for value in map.values() {
                    walk(value, out);
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&entry["body"], &mut out);
    out
}

/// `SHA256SUMS` in the coreutils text format: `<hex>  <path>` per line.
pub fn render_sums(files: &[(String, String)]) -> Vec<u8> {
    let mut out = String::new();
    for (path, sha) in files {
        out.push_str(sha);
        out.push_str("  ");
        out.push_str(path);
        out.push('\n');
    }
    out.into_bytes()
}

/// One line of `SHA256SUMS`: line number, lowercase hex, path.
pub type SumsLine = (usize, String, String);

/// Parses `SHA256SUMS`, or says which line is malformed and why.
pub fn parse_sums(bytes: &[u8]) -> Result<Vec<SumsLine>, (usize, String)> {
    let text = std::str::from_utf8(bytes).map_err(|_| (0, "is not UTF-8 text".to_string()))?;
    let mut out = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        let n = i + 1;
        if line.is_empty() {
            // Only the end of the file may be empty (the final newline).
            if text.split('\n').skip(i).any(|l| !l.is_empty()) {
                return Err((n, "empty line".into()));
            }
            continue;
        }
        let (hex, rest) = line
            .split_at_checked(64)
            .ok_or((n, "too short".to_string()))?;
        let hex = hex.to_ascii_lowercase();
        if !is_sha256_hex(&hex) {
            return Err((n, "does not start with 64 hex digits".into()));
        }
        let path = rest
            .strip_prefix("  ")
            .or_else(|| rest.strip_prefix(" *"))
            .ok_or((
                n,
                "the hash is not followed by two spaces (or ' *')".to_string(),
            ))?;
        if path.is_empty() {
            return Err((n, "names no file".into()));
        }
        out.push((n, hex, path.to_string()));
    }
    if !text.is_empty() && !text.ends_with('\n') {
        return Err((text.split('\n').count(), "no final newline".into()));
    }
    Ok(out)
}

/// Hex helpers for proofs.
pub fn hashes_to_hex(hashes: &[[u8; 32]]) -> Vec<String> {
    hashes.iter().map(hex::encode).collect()
}

pub fn hex_to_hash(s: &str) -> Option<[u8; 32]> {
    if !is_sha256_hex(s) {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// The DER of every `CERTIFICATE` block in a PEM text (anything else is skipped).
pub fn pem_to_ders(text: &str) -> Result<Vec<Vec<u8>>, String> {
    use base64::Engine;
    let mut out = Vec::new();
    let mut body: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line == "-----BEGIN CERTIFICATE-----" {
            body = Some(String::new());
        } else if line == "-----END CERTIFICATE-----" {
            let b = body.take().ok_or("END without BEGIN")?;
            out.push(
                base64::engine::general_purpose::STANDARD
                    .decode(b.as_bytes())
                    .map_err(|e| format!("bad base64 in a certificate: {e}"))?,
            );
        } else if let Some(b) = &mut body {
            b.push_str(line);
        }
    }
    if body.is_some() {
        return Err("a certificate block is not closed".into());
    }
    Ok(out)
}
