//! `bundle verify`: every check a stranger needs, from the zip alone.
//!
//! The zip is opened by [`super::safezip`] (hostile input: refused outright when it breaks a
//! rule). Then every file is read exactly once: small files into memory, the entries and their
//! inclusion proofs in lockstep as streams, blobs hashed in parallel. Every check that fails is
//! a [`Problem`] naming the file (and the entry) it concerns; the report lists them all rather
//! than stopping at the first, and the bundle holds only if there are none.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::BundleError;
use super::cms;
use super::format::{self, Manifest, Role};
use super::safezip::{Limits, Member, SafeZip};
use crate::ledger::checkpoint::{self, NoteVerifier};
use crate::ledger::merkle::{self, Hash};

/// Metadata files are read into memory only up to these sizes (larger ones are hashed, and
/// reported); a checkpoint note or a token is never large.
fn retain_cap(name: &str) -> Option<u64> {
    match name {
        format::MANIFEST | format::SUMS | format::CUSTODY | format::CONSISTENCY => Some(256 << 20),
        format::LOG_KEY => Some(4 << 10),
        n if n.starts_with("log/checkpoints/") => Some(64 << 10),
        n if n.starts_with("timestamps/") => Some(crate::timestamp::MAX_RESPONSE_BYTES as u64),
        _ => None,
    }
}
/// All metadata held in memory at once.
const MAX_RETAINED_BYTES: u64 = 1 << 30;
/// Longest line of `entries.jsonl` / `inclusion-proofs.jsonl` (the ledger caps entries at 64 MiB).
const MAX_LINE_BYTES: u64 = 64 << 20;

/// Trust anchors the verifier brings from outside the bundle, and its safety limits.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    pub limits: Limits,
    /// The log key the checkpoints must be signed with (else the bundle's own key is used).
    pub log_key: Option<NoteVerifier>,
    /// TSA root certificates (DER); with any, at least one token must chain to one of them.
    pub tsa_roots: Vec<Vec<u8>>,
    /// Checkpoints (signed notes) obtained elsewhere; one of the same size as a bundled
    /// checkpoint must carry the same root, or the log forked.
    pub known_checkpoints: Vec<String>,
    /// Threads hashing blobs (0: as many as the machine has, up to 4).
    pub threads: usize,
}

/// One failed check.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// The bundle file at fault, when there is one.
    pub file: Option<String>,
    /// The ledger index of the entry at fault, when there is one.
    pub entry: Option<u64>,
    /// Which check failed: `zip`, `sha256`, `listing`, `manifest`, `log_key`, `signature`,
    /// `checkpoint`, `inclusion_proof`, `consistency_proof`, `entry`, `blob`, `timestamp`,
    /// `custody`, `fork`.
    pub check: &'static str,
    pub detail: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.file, self.entry) {
            (Some(file), Some(e)) => write!(f, "{file} (entry {e}): {}", self.detail),
            (Some(file), None) => write!(f, "{file}: {}", self.detail),
            (None, Some(e)) => write!(f, "entry {e}: {}", self.detail),
            (None, None) => write!(f, "{}", self.detail),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TimestampSummary {
    pub file: String,
    pub checkpoint_size: u64,
    pub tsa: String,
    pub gen_time: Option<String>,
    /// Subject of the certificate whose signature on the token verified.
    pub signer: Option<String>,
    /// True when the signer's certificate chains to a pinned TSA root.
    pub pinned: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub problems: Vec<Problem>,
    pub warnings: Vec<String>,
    pub case: Option<String>,
    pub bundle_id: Option<String>,
    pub created_at: Option<String>,
    pub created_by: Option<String>,
    pub purpose: Option<String>,
    pub files: usize,
    pub bytes: u64,
    pub entries: u64,
    pub checkpoint_size: Option<u64>,
    pub checkpoint_root: Option<String>,
    pub consistency_from: Vec<u64>,
    pub log_key: Option<String>,
    pub log_key_pinned: bool,
    pub timestamps: Vec<TimestampSummary>,
    pub blobs_present: usize,
    pub blobs_withheld: usize,
}

impl VerifyReport {
    fn fail(
        &mut self,
        file: Option<&str>,
        entry: Option<u64>,
        check: &'static str,
        detail: String,
    ) {
        self.problems.push(Problem {
            file: file.map(str::to_string),
            entry,
            check,
            detail,
        });
    }
}

/// What reading one file gave.
struct Facts {
    sha256: Option<String>,
    size: u64,
    bytes: Option<Vec<u8>>,
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
    bytes: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Verify the bundle at `path`. `Err` only when the zip is refused outright (hostile or not a
/// zip) or cannot be opened; every other failure is a problem in the report.
pub fn verify_bundle(path: &Path, opts: &VerifyOptions) -> Result<VerifyReport, BundleError> {
    verify_bundle_with_progress(path, opts, &|_, _| {})
}

/// [`verify_bundle`], calling `progress(done, total)` with bytes hashed as it goes.
pub fn verify_bundle_with_progress(
    path: &Path,
    opts: &VerifyOptions,
    progress: &dyn Fn(u64, u64),
) -> Result<VerifyReport, BundleError> {
    let zip = SafeZip::open(path, opts.limits)?;
    let mut r = VerifyReport::default();
    let members: Vec<&Member> = zip.files().collect();
    r.files = members.len();
    r.bytes = members.iter().map(|m| m.size).sum();
    let mut facts: BTreeMap<String, Facts> = BTreeMap::new();

    // 1. Metadata into memory (within caps); everything else but the entry streams and the
    //    blobs is hashed as it streams by.
    let mut retained = 0u64;
    for m in &members {
        if m.name == format::ENTRIES
            || m.name == format::INCLUSION
            || m.name.starts_with(format::BLOBS_DIR)
        {
            continue;
        }
        let cap = retain_cap(&m.name);
        let keep = cap.is_some_and(|c| m.size <= c) && retained + m.size <= MAX_RETAINED_BYTES;
        if cap.is_some() && !keep {
            r.fail(
                Some(&m.name),
                None,
                "zip",
                format!("{} bytes is too large for this file of a bundle", m.size),
            );
        }
        let mut reader = zip.reader(m);
        let mut hash = Sha256::new();
        let mut kept = Vec::new();
        let mut buf = vec![0u8; 64 << 10];
        let mut size = 0u64;
        let result = loop {
            match reader.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    hash.update(&buf[..n]);
                    size += n as u64;
                    if keep {
                        kept.extend_from_slice(&buf[..n]);
                    }
                }
                Err(e) => break Err(e),
            }
        };
        let f = match result {
            Ok(()) => {
                retained += if keep { size } else { 0 };
                Facts {
                    sha256: Some(hex::encode(hash.finalize())),
                    size,
                    bytes: keep.then_some(kept),
                }
            }
            Err(e) => {
                r.fail(Some(&m.name), None, "zip", format!("cannot be read: {e}"));
                Facts {
                    sha256: None,
                    size: m.size,
                    bytes: None,
                }
            }
        };
        facts.insert(m.name.clone(), f);
    }

    // 2. The manifest and the log: key, checkpoints.
    let manifest = read_manifest(&facts, &mut r);
    if let Some(m) = &manifest {
        r.case = Some(m.case.clone());
        r.bundle_id = Some(m.bundle_id.clone());
        r.created_at = Some(m.created_at.clone());
        r.created_by = Some(m.created_by.clone());
        r.purpose = m.purpose.clone();
        r.blobs_withheld = m.withheld.len();
    }
    let verifier = manifest
        .as_ref()
        .and_then(|_| check_key(&facts, opts, &mut r));
    let checkpoints = match (&manifest, &verifier) {
        (Some(m), Some(v)) => check_checkpoints(m, &facts, v, &mut r),
        _ => BTreeMap::new(),
    };
    let bundled: Option<(u64, Hash)> = manifest.as_ref().and_then(|m| {
        checkpoints
            .get(&m.log.checkpoint_size)
            .map(|root| (m.log.checkpoint_size, *root))
    });
    if let Some((size, root)) = bundled {
        r.checkpoint_size = Some(size);
        r.checkpoint_root = Some(hex::encode(root));
    }

    // 3. Entries and their inclusion proofs, in lockstep.
    let stream = check_entries(&zip, manifest.as_ref(), bundled, &mut facts, &mut r);

    // 4. Blobs, hashed in parallel.
    let blob_members: Vec<&Member> = members
        .iter()
        .copied()
        .filter(|m| m.name.starts_with(format::BLOBS_DIR))
        .collect();
    for (name, result) in hash_members(&zip, &blob_members, opts.threads, r.bytes, progress) {
        match result {
            Ok((sha, size)) => {
                facts.insert(
                    name,
                    Facts {
                        sha256: Some(sha),
                        size,
                        bytes: None,
                    },
                );
            }
            Err(e) => {
                r.fail(Some(&name), None, "zip", format!("cannot be read: {e}"));
                facts.insert(
                    name,
                    Facts {
                        sha256: None,
                        size: 0,
                        bytes: None,
                    },
                );
            }
        }
    }

    // 5. Every file against SHA256SUMS and the manifest's list.
    check_listings(&zip, manifest.as_ref(), &facts, &mut r);

    if let Some(m) = &manifest {
        check_consistency(m, &facts, &checkpoints, &mut r);
        check_blobs(m, &facts, &stream.refs, &mut r);
        if facts.get(format::CUSTODY).and_then(|f| f.bytes.as_deref())
            != Some(format::render_custody(&stream.custody).as_slice())
            && facts.contains_key(format::CUSTODY)
            && stream.complete
        {
            r.fail(
                Some(format::CUSTODY),
                None,
                "custody",
                "does not match the custody log derived from the bundled entries".into(),
            );
        }
        if stream.complete && stream.count != m.entries.count {
            r.fail(
                Some(format::MANIFEST),
                None,
                "manifest",
                format!(
                    "says {} entries, {} holds {}",
                    m.entries.count,
                    format::ENTRIES,
                    stream.count
                ),
            );
        }
        check_timestamps(m, &facts, &checkpoints, opts, &mut r);
        if let Some(v) = &verifier {
            check_known(m, &checkpoints, v, opts, &mut r);
        }
    }
    r.entries = stream.count;
    r.blobs_present = facts
        .keys()
        .filter(|k| k.starts_with(format::BLOBS_DIR))
        .count();

    if opts.log_key.is_none()
        && let Some(k) = &r.log_key
    {
        r.warnings.push(format!(
            "log key not pinned: signatures were checked with the key in the bundle ({k}); compare it with the key leakwatch publishes, or pass --log-key"
        ));
    }
    if r.timestamps.is_empty() {
        r.warnings.push(
            "no RFC 3161 time-stamp in the bundle: the dates rest on the log's own clock".into(),
        );
    } else if opts.tsa_roots.is_empty() {
        r.warnings.push(
            "TSA root not pinned: token signatures were checked with the certificates they carry; pass --tsa-root to check who signed them".into(),
        );
    }
    r.ok = r.problems.is_empty();
    Ok(r)
}

fn read_manifest(facts: &BTreeMap<String, Facts>, r: &mut VerifyReport) -> Option<Manifest> {
    let Some(f) = facts.get(format::MANIFEST) else {
        r.fail(
            Some(format::MANIFEST),
            None,
            "manifest",
            "missing: this is not a leakwatch bundle, or its manifest was removed".into(),
        );
        return None;
    };
    let bytes = f.bytes.as_deref()?;
    #[derive(serde::Deserialize)]
    struct Head {
        format: Option<String>,
        version: Option<u32>,
    }
    let bad = |r: &mut VerifyReport, why: String| {
        r.fail(Some(format::MANIFEST), None, "manifest", why);
        None
    };
    let head: Head = match serde_json::from_slice(bytes) {
        Ok(h) => h,
        Err(e) => return bad(r, format!("is not valid JSON: {e}")),
    };
    if head.format.as_deref() != Some(format::MANIFEST_FORMAT) {
        return bad(
            r,
            format!(
                "format is {:?}, not {:?}",
                head.format,
                format::MANIFEST_FORMAT
            ),
        );
    }
    if head.version != Some(format::MANIFEST_VERSION) {
        return bad(
            r,
            format!(
                "version {:?}: this verifier reads version {}",
                head.version,
                format::MANIFEST_VERSION
            ),
        );
    }
    let m: Manifest = match serde_json::from_slice(bytes) {
        Ok(m) => m,
        Err(e) => return bad(r, format!("does not match format version 1: {e}")),
    };
    if m.pii == format::PiiPolicy::Included && !m.withheld.is_empty() {
        return bad(
            r,
            format!(
                "says personal data is included, yet declares {} blobs withheld",
                m.withheld.len()
            ),
        );
    }
    // Version 1 fixes the layout: the manifest may not point anywhere else.
    let fixed = [
        ("log.key", m.log.key.as_str(), format::LOG_KEY),
        ("entries.file", m.entries.file.as_str(), format::ENTRIES),
        (
            "entries.inclusion_proofs",
            m.entries.inclusion_proofs.as_str(),
            format::INCLUSION,
        ),
        (
            "entries.consistency_proofs",
            m.entries.consistency_proofs.as_str(),
            format::CONSISTENCY,
        ),
        ("custody", m.custody.as_str(), format::CUSTODY),
    ];
    for (field, got, want) in fixed {
        if got != want {
            return bad(r, format!("{field} is {got:?}, version 1 says {want:?}"));
        }
    }
    Some(m)
}

fn check_key(
    facts: &BTreeMap<String, Facts>,
    opts: &VerifyOptions,
    r: &mut VerifyReport,
) -> Option<NoteVerifier> {
    let key = format::LOG_KEY;
    let Some(f) = facts.get(key) else {
        r.fail(Some(key), None, "log_key", "missing".into());
        return opts.log_key.clone();
    };
    let bytes = f.bytes.as_deref()?;
    let parsed = std::str::from_utf8(bytes)
        .map_err(|_| "is not UTF-8 text".to_string())
        .and_then(|t| NoteVerifier::parse(t.trim()).map_err(|e| e.to_string()));
    match (parsed, &opts.log_key) {
        (Ok(v), Some(pinned)) => {
            r.log_key = Some(v.to_vkey_string());
            r.log_key_pinned = true;
            if &v != pinned {
                r.fail(
                    Some(key),
                    None,
                    "log_key",
                    format!(
                        "is {}, not the pinned key {}",
                        v.to_vkey_string(),
                        pinned.to_vkey_string()
                    ),
                );
            }
            Some(pinned.clone())
        }
        (Ok(v), None) => {
            r.log_key = Some(v.to_vkey_string());
            Some(v)
        }
        (Err(e), pinned) => {
            r.fail(
                Some(key),
                None,
                "log_key",
                format!("not a verifier key: {e}"),
            );
            pinned.clone()
        }
    }
}

/// Each bundled checkpoint note: signature, origin, size and root as the manifest says.
/// Returns size -> root of those that hold.
fn check_checkpoints(
    m: &Manifest,
    facts: &BTreeMap<String, Facts>,
    verifier: &NoteVerifier,
    r: &mut VerifyReport,
) -> BTreeMap<u64, Hash> {
    let mut good = BTreeMap::new();
    let sizes: Vec<u64> = m.log.checkpoints.iter().map(|c| c.size).collect();
    let sorted = sizes.windows(2).all(|w| w[0] < w[1]);
    if !sorted || sizes.last() != Some(&m.log.checkpoint_size) {
        r.fail(
            Some(format::MANIFEST),
            None,
            "manifest",
            "log.checkpoints must be sorted by size and end with log.checkpoint_size".into(),
        );
    }
    for c in &m.log.checkpoints {
        let path = c.note.as_str();
        if path != format::checkpoint_path(c.size) {
            r.fail(
                Some(format::MANIFEST),
                None,
                "manifest",
                format!("checkpoint of size {} is named {path:?}", c.size),
            );
            continue;
        }
        let Some(f) = facts.get(path) else {
            r.fail(
                Some(path),
                None,
                "checkpoint",
                "missing (listed in the manifest)".into(),
            );
            continue;
        };
        let Some(bytes) = f.bytes.as_deref() else {
            continue;
        };
        let Ok(note) = std::str::from_utf8(bytes) else {
            r.fail(Some(path), None, "signature", "is not UTF-8 text".into());
            continue;
        };
        match checkpoint::open_checkpoint(note, verifier) {
            Err(e) => r.fail(
                Some(path),
                None,
                "signature",
                format!(
                    "signature by {} does not hold: {e}",
                    verifier.to_vkey_string()
                ),
            ),
            Ok(cp) => {
                if cp.origin != m.log.origin {
                    r.fail(
                        Some(path),
                        None,
                        "checkpoint",
                        format!(
                            "origin {:?} is not the manifest's {:?}",
                            cp.origin, m.log.origin
                        ),
                    );
                } else if cp.size != c.size || hex::encode(cp.root) != c.root {
                    r.fail(
                        Some(path),
                        None,
                        "checkpoint",
                        format!(
                            "holds size {} root {}, the manifest says size {} root {}",
                            cp.size,
                            hex::encode(cp.root),
                            c.size,
                            c.root
                        ),
                    );
                } else {
                    good.insert(cp.size, cp.root);
                }
            }
        }
    }
    good
}

/// What the entry streams yielded.
#[derive(Default)]
struct EntryStream {
    count: u64,
    /// (ledger index, reference) for every blob reference.
    refs: Vec<(u64, format::FoundRef)>,
    custody: Vec<format::CustodyRow>,
    /// False when the streams could not be read to their end.
    complete: bool,
}

fn read_line_capped<R: BufRead>(reader: &mut R, line: &mut Vec<u8>) -> std::io::Result<bool> {
    line.clear();
    let n = reader
        .by_ref()
        .take(MAX_LINE_BYTES + 1)
        .read_until(b'\n', line)?;
    if n == 0 {
        return Ok(false);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    } else if line.len() as u64 > MAX_LINE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a line is longer than {MAX_LINE_BYTES} bytes"),
        ));
    } else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the last line has no final newline",
        ));
    }
    Ok(true)
}

fn check_entries(
    zip: &SafeZip,
    manifest: Option<&Manifest>,
    bundled: Option<(u64, Hash)>,
    facts: &mut BTreeMap<String, Facts>,
    r: &mut VerifyReport,
) -> EntryStream {
    let mut out = EntryStream::default();
    let (Some(em), Some(im)) = (zip.get(format::ENTRIES), zip.get(format::INCLUSION)) else {
        for name in [format::ENTRIES, format::INCLUSION] {
            if zip.get(name).is_none() {
                r.fail(Some(name), None, "entry", "missing".into());
            }
        }
        return out;
    };
    let case = manifest.map(|m| m.case.as_str());
    let mut entries = BufReader::with_capacity(
        1 << 20,
        Hashing {
            inner: zip.reader(em),
            hash: Sha256::new(),
            bytes: 0,
        },
    );
    let mut proofs = BufReader::with_capacity(
        1 << 20,
        Hashing {
            inner: zip.reader(im),
            hash: Sha256::new(),
            bytes: 0,
        },
    );
    let (mut e_line, mut p_line) = (Vec::new(), Vec::new());
    let mut last_index: Option<u64> = None;
    let mut line_no = 0u64;
    let mut read_error = false;
    loop {
        line_no += 1;
        let e = read_line_capped(&mut entries, &mut e_line);
        let p = read_line_capped(&mut proofs, &mut p_line);
        let (e, p) = match (e, p) {
            (Ok(e), Ok(p)) => (e, p),
            (Err(err), _) => {
                r.fail(
                    Some(format::ENTRIES),
                    None,
                    "zip",
                    format!("line {line_no}: {err}"),
                );
                read_error = true;
                break;
            }
            (_, Err(err)) => {
                r.fail(
                    Some(format::INCLUSION),
                    None,
                    "zip",
                    format!("line {line_no}: {err}"),
                );
                read_error = true;
                break;
            }
        };
        match (e, p) {
            (false, false) => break,
            (true, false) => {
                r.fail(
                    Some(format::INCLUSION),
                    None,
                    "inclusion_proof",
                    format!("ends at line {line_no}, before {} does", format::ENTRIES),
                );
                break;
            }
            (false, true) => {
                r.fail(
                    Some(format::ENTRIES),
                    None,
                    "entry",
                    format!("ends at line {line_no}, before {} does", format::INCLUSION),
                );
                break;
            }
            (true, true) => {}
        }
        out.count += 1;
        let proof_line: format::InclusionLine = match serde_json::from_slice(&p_line) {
            Ok(l) => l,
            Err(e) => {
                r.fail(
                    Some(format::INCLUSION),
                    None,
                    "inclusion_proof",
                    format!("line {line_no} is not a proof line: {e}"),
                );
                continue;
            }
        };
        let index = proof_line.index;
        if last_index.is_some_and(|l| index <= l) {
            r.fail(
                Some(format::INCLUSION),
                Some(index),
                "inclusion_proof",
                format!("line {line_no}: entries are not in ledger order"),
            );
        }
        last_index = Some(index);
        let leaf = merkle::leaf_hash(&e_line);
        let path: Option<Vec<Hash>> = proof_line
            .proof
            .iter()
            .map(|h| format::hex_to_hash(h))
            .collect();
        match (path, bundled) {
            (None, _) => r.fail(
                Some(format::INCLUSION),
                Some(index),
                "inclusion_proof",
                format!("line {line_no}: a proof hash is not 64 hex digits"),
            ),
            (Some(path), Some((size, root))) => {
                if let Err(e) = merkle::verify_inclusion(index, size, &leaf, &path, &root) {
                    r.fail(
                        Some(format::ENTRIES),
                        Some(index),
                        "inclusion_proof",
                        format!(
                            "line {line_no}: not proven in checkpoint {size} ({e}): the entry's bytes, or its proof in {}, were changed",
                            format::INCLUSION
                        ),
                    );
                }
            }
            (Some(_), None) => {}
        }
        match serde_json::from_slice::<serde_json::Value>(&e_line) {
            Err(e) => r.fail(
                Some(format::ENTRIES),
                Some(index),
                "entry",
                format!("line {line_no} is not JSON: {e}"),
            ),
            Ok(v) => {
                let body_case = v["body"]["case"].as_str();
                if v["v"].as_u64() != Some(1)
                    || !v["at"].is_string()
                    || !v["actor"].is_string()
                    || !v["body"]["kind"].is_string()
                {
                    r.fail(
                        Some(format::ENTRIES),
                        Some(index),
                        "entry",
                        format!("line {line_no} is not a ledger entry of format v1"),
                    );
                } else if case.is_some() && body_case != case {
                    r.fail(
                        Some(format::ENTRIES),
                        Some(index),
                        "entry",
                        format!(
                            "line {line_no} belongs to case {:?}, not the bundle's {:?}",
                            body_case.unwrap_or("-"),
                            case.unwrap_or("-")
                        ),
                    );
                }
                for found in format::blob_refs(&v) {
                    out.refs.push((index, found));
                }
                out.custody.push(format::custody_row(index, &v));
            }
        }
    }
    // Read both to their ends so their hashes cover every byte.
    let ef = drain(entries, format::ENTRIES, read_error, r);
    let pf = drain(proofs, format::INCLUSION, read_error, r);
    facts.insert(format::ENTRIES.into(), ef);
    facts.insert(format::INCLUSION.into(), pf);
    out.complete = !read_error;
    out
}

/// Reads a hashed stream to its end; its facts (no hash if it could not be read whole).
fn drain<R: Read>(
    mut reader: BufReader<Hashing<R>>,
    name: &str,
    read_error: bool,
    r: &mut VerifyReport,
) -> Facts {
    let drained = std::io::copy(&mut reader, &mut std::io::sink());
    let h = reader.into_inner();
    let size = h.bytes;
    match drained {
        Ok(_) if !read_error => Facts {
            sha256: Some(hex::encode(h.hash.finalize())),
            size,
            bytes: None,
        },
        Ok(_) => Facts {
            sha256: None,
            size,
            bytes: None,
        },
        Err(e) => {
            r.fail(Some(name), None, "zip", format!("cannot be read: {e}"));
            Facts {
                sha256: None,
                size,
                bytes: None,
            }
        }
    }
}

/// A member's SHA-256 (hex) and size, or why it could not be read.
type HashResult = Result<(String, u64), String>;

/// SHA-256 and size of each member, read by `threads` workers. `progress` is called from
/// this thread only, with the bytes hashed so far out of `total`.
fn hash_members(
    zip: &SafeZip,
    members: &[&Member],
    threads: usize,
    total: u64,
    progress: &dyn Fn(u64, u64),
) -> Vec<(String, HashResult)> {
    let threads = match threads {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(4),
        n => n,
    }
    .min(members.len().max(1));
    let next = AtomicUsize::new(0);
    let done = AtomicU64::new(0);
    let results: Mutex<Vec<(String, HashResult)>> = Mutex::new(Vec::new());
    let work = |report: Option<&dyn Fn(u64, u64)>| {
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(m) = members.get(i) else { break };
            let mut reader = zip.reader(m);
            let mut h = Sha256::new();
            let mut size = 0u64;
            let result = loop {
                match reader.read(&mut buf) {
                    Ok(0) => break Ok((hex::encode(h.finalize()), size)),
                    Ok(n) => {
                        h.update(&buf[..n]);
                        size += n as u64;
                        let so_far = done.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
                        if let Some(p) = report {
                            p(so_far, total);
                        }
                    }
                    Err(e) => break Err(e.to_string()),
                }
            };
            results
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((m.name.clone(), result));
        }
    };
    std::thread::scope(|s| {
        for _ in 1..threads {
            s.spawn(|| work(None));
        }
        work(Some(progress));
    });
    results.into_inner().unwrap_or_else(|p| p.into_inner())
}

/// Every file against `SHA256SUMS` and the manifest's `files`, and each file's role.
fn check_listings(
    zip: &SafeZip,
    manifest: Option<&Manifest>,
    facts: &BTreeMap<String, Facts>,
    r: &mut VerifyReport,
) {
    let actual = |name: &str| facts.get(name).and_then(|f| f.sha256.clone());
    let manifest_ok = manifest.is_some();
    let listed: HashMap<&str, &format::FileRef> = manifest
        .map(|m| m.files.iter().map(|f| (f.path.as_str(), f)).collect())
        .unwrap_or_default();

    // SHA256SUMS.
    let mut in_sums: BTreeSet<String> = BTreeSet::new();
    match facts.get(format::SUMS).and_then(|f| f.bytes.as_deref()) {
        None if !facts.contains_key(format::SUMS) => r.fail(
            Some(format::SUMS),
            None,
            "sha256",
            "missing: the bundle has no SHA256SUMS".into(),
        ),
        None => {}
        Some(bytes) => match format::parse_sums(bytes) {
            Err((line, why)) => r.fail(
                Some(format::SUMS),
                None,
                "sha256",
                format!("line {line}: {why}"),
            ),
            Ok(lines) => {
                for (line, sha, path) in lines {
                    if !in_sums.insert(path.clone()) {
                        r.fail(
                            Some(format::SUMS),
                            None,
                            "sha256",
                            format!("line {line}: {path} is listed twice"),
                        );
                        continue;
                    }
                    if path == format::SUMS {
                        r.fail(
                            Some(format::SUMS),
                            None,
                            "sha256",
                            format!("line {line}: lists itself"),
                        );
                        continue;
                    }
                    if zip.get(&path).is_none() {
                        let shown_in_manifest = listed.contains_key(path.as_str());
                        if shown_in_manifest || path == format::MANIFEST {
                            r.fail(
                                Some(&path),
                                None,
                                "sha256",
                                "missing from the bundle (listed in SHA256SUMS)".into(),
                            );
                        } else {
                            r.fail(
                                Some(format::SUMS),
                                None,
                                "sha256",
                                format!("line {line}: lists {path:?}, which is not in the bundle"),
                            );
                        }
                        continue;
                    }
                    match actual(&path) {
                        Some(a) if a == sha => {}
                        Some(a) => {
                            // Who is wrong: the file or the line? The manifest decides, if it
                            // itself matches its line.
                            let manifest_agrees = path != format::MANIFEST
                                && manifest_ok
                                && listed.get(path.as_str()).is_some_and(|f| f.sha256 == a);
                            if manifest_agrees {
                                r.fail(
                                    Some(format::SUMS),
                                    None,
                                    "sha256",
                                    format!("line {line}: wrong hash for {path} (the file and the manifest agree on {a})"),
                                );
                            } else {
                                r.fail(
                                    Some(&path),
                                    None,
                                    "sha256",
                                    format!("has SHA-256 {a}, but {} says {sha}", format::SUMS),
                                );
                            }
                        }
                        None => {}
                    }
                }
            }
        },
    }
    for m in zip.files() {
        if m.name != format::SUMS && facts.contains_key(format::SUMS) && !in_sums.contains(&m.name)
        {
            r.fail(
                Some(&m.name),
                None,
                "listing",
                format!("is not listed in {}", format::SUMS),
            );
        }
    }

    // The manifest's list and roles.
    let Some(m) = manifest else { return };
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for f in &m.files {
        if !seen.insert(&f.path) {
            r.fail(
                Some(format::MANIFEST),
                None,
                "manifest",
                format!("lists {} twice", f.path),
            );
            continue;
        }
        if let Err(why) = expected_role(&f.path).and_then(|role| {
            if role == f.role {
                Ok(())
            } else {
                Err(format!("has role {:?}, its path says {role:?}", f.role))
            }
        }) {
            r.fail(Some(&f.path), None, "manifest", why);
        }
        if zip.get(&f.path).is_none() {
            if !in_sums.contains(&f.path) {
                r.fail(
                    Some(&f.path),
                    None,
                    "listing",
                    "missing from the bundle (listed in the manifest)".into(),
                );
            }
            continue;
        }
        let Some(fact) = facts.get(&f.path) else {
            continue;
        };
        match &fact.sha256 {
            Some(a) if *a != f.sha256 || fact.size != f.size => {
                // Already reported against SHA256SUMS when the two disagree with the file;
                // report here only what that check could not see.
                let sums_caught = r
                    .problems
                    .iter()
                    .any(|p| p.file.as_deref() == Some(f.path.as_str()) && p.check == "sha256");
                if !sums_caught {
                    r.fail(
                        Some(&f.path),
                        None,
                        "listing",
                        format!(
                            "has SHA-256 {a} ({} bytes), the manifest says {} ({} bytes)",
                            fact.size, f.sha256, f.size
                        ),
                    );
                }
            }
            _ => {}
        }
    }
    for file in zip.files() {
        if file.name != format::MANIFEST
            && file.name != format::SUMS
            && !seen.contains(file.name.as_str())
        {
            r.fail(
                Some(&file.name),
                None,
                "listing",
                "is not listed in the manifest".into(),
            );
        }
    }
}

fn expected_role(path: &str) -> Result<Role, String> {
    Ok(match path {
        format::README => Role::Readme,
        format::CUSTODY => Role::Custody,
        format::LOG_KEY => Role::LogKey,
        format::ENTRIES => Role::Entries,
        format::INCLUSION => Role::InclusionProofs,
        format::CONSISTENCY => Role::ConsistencyProofs,
        p if p.starts_with("log/checkpoints/") && p.ends_with(".note") => Role::Checkpoint,
        p if p.starts_with("timestamps/") && p.ends_with(".tsr") => Role::TimestampToken,
        p if p.starts_with("timestamps/") && p.ends_with(".chain.pem") => Role::TimestampChain,
        p if p
            .strip_prefix(format::BLOBS_DIR)
            .is_some_and(format::is_sha256_hex) =>
        {
            Role::Blob
        }
        _ => return Err("is not a file a version 1 bundle holds".into()),
    })
}

fn check_consistency(
    m: &Manifest,
    facts: &BTreeMap<String, Facts>,
    checkpoints: &BTreeMap<u64, Hash>,
    r: &mut VerifyReport,
) {
    let path = format::CONSISTENCY;
    let Some(bytes) = facts.get(path).and_then(|f| f.bytes.as_deref()) else {
        if !facts.contains_key(path) {
            r.fail(Some(path), None, "consistency_proof", "missing".into());
        }
        return;
    };
    let file: format::ConsistencyFile = match serde_json::from_slice(bytes) {
        Ok(f) => f,
        Err(e) => {
            r.fail(
                Some(path),
                None,
                "consistency_proof",
                format!("not valid: {e}"),
            );
            return;
        }
    };
    let n = m.log.checkpoint_size;
    if file.tree_size != n {
        r.fail(
            Some(path),
            None,
            "consistency_proof",
            format!(
                "proves growth to size {}, the bundled checkpoint is {n}",
                file.tree_size
            ),
        );
        return;
    }
    let Some(new_root) = checkpoints.get(&n) else {
        return;
    };
    let proofs: BTreeMap<u64, &format::ConsistencyProof> =
        file.proofs.iter().map(|p| (p.from_size, p)).collect();
    for p in &file.proofs {
        if !m.log.checkpoints.iter().any(|c| c.size == p.from_size) || p.from_size >= n {
            r.fail(
                Some(path),
                None,
                "consistency_proof",
                format!(
                    "holds a proof from size {}, which is no bundled checkpoint below {n}",
                    p.from_size
                ),
            );
        }
    }
    for c in m.log.checkpoints.iter().filter(|c| c.size < n) {
        let Some(old_root) = checkpoints.get(&c.size) else {
            continue;
        };
        let Some(p) = proofs.get(&c.size) else {
            r.fail(
                Some(path),
                None,
                "consistency_proof",
                format!("no proof from checkpoint {} to {n}", c.size),
            );
            continue;
        };
        let hashes: Option<Vec<Hash>> = p.proof.iter().map(|h| format::hex_to_hash(h)).collect();
        let result = match hashes {
            None => Err("a proof hash is not 64 hex digits".to_string()),
            Some(h) => merkle::verify_consistency(c.size, n, old_root, new_root, &h)
                .map_err(|e| e.to_string()),
        };
        match result {
            Ok(()) => r.consistency_from.push(c.size),
            Err(e) => r.fail(
                Some(path),
                None,
                "consistency_proof",
                format!(
                    "checkpoint {} does not extend to checkpoint {n}: {e}",
                    c.size
                ),
            ),
        }
    }
}

fn check_blobs(
    m: &Manifest,
    facts: &BTreeMap<String, Facts>,
    refs: &[(u64, format::FoundRef)],
    r: &mut VerifyReport,
) {
    let withheld: BTreeMap<&str, &format::WithheldBlob> =
        m.withheld.iter().map(|w| (w.sha256.as_str(), w)).collect();
    let mut referenced: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for (index, found) in refs {
        let path = format::blob_path(&found.sha256);
        match referenced.get(found.sha256.as_str()) {
            Some((_, size)) if *size != found.size => {
                r.fail(
                    Some(format::ENTRIES),
                    Some(*index),
                    "blob",
                    format!(
                        "names blob {} with size {}, another entry with {size}",
                        found.sha256, found.size
                    ),
                );
                continue;
            }
            Some(_) => continue,
            None => {
                referenced.insert(found.sha256.as_str(), (*index, found.size));
            }
        }
        match (facts.get(&path), withheld.get(found.sha256.as_str())) {
            (Some(f), w) => {
                if w.is_some() {
                    r.fail(
                        Some(format::MANIFEST),
                        None,
                        "blob",
                        format!(
                            "declares {} withheld, but {path} is in the bundle",
                            found.sha256
                        ),
                    );
                }
                if let Some(sha) = &f.sha256
                    && (*sha != found.sha256 || f.size != found.size)
                {
                    r.fail(
                        Some(&path),
                        Some(*index),
                        "blob",
                        format!(
                            "entry {index} names these bytes by SHA-256 {} ({} bytes); the file has {sha} ({} bytes)",
                            found.sha256, found.size, f.size
                        ),
                    );
                }
            }
            (None, Some(w)) => {
                if w.size != found.size {
                    r.fail(
                        Some(format::MANIFEST),
                        Some(*index),
                        "blob",
                        format!(
                            "withheld blob {} is {} bytes, the entry says {}",
                            w.sha256, w.size, found.size
                        ),
                    );
                }
            }
            (None, None) => r.fail(
                Some(&path),
                Some(*index),
                "blob",
                "referenced by the entry but neither in the bundle nor declared withheld".into(),
            ),
        }
    }
    for name in facts.keys().filter(|k| k.starts_with(format::BLOBS_DIR)) {
        let sha = &name[format::BLOBS_DIR.len()..];
        if !referenced.contains_key(sha) {
            r.fail(
                Some(name),
                None,
                "blob",
                "is referenced by no entry in the bundle".into(),
            );
        }
    }
    for w in &m.withheld {
        if !referenced.contains_key(w.sha256.as_str()) {
            r.fail(
                Some(format::MANIFEST),
                None,
                "blob",
                format!(
                    "declares blob {} withheld, but no entry references it",
                    w.sha256
                ),
            );
        }
    }
}

fn check_timestamps(
    m: &Manifest,
    facts: &BTreeMap<String, Facts>,
    checkpoints: &BTreeMap<u64, Hash>,
    opts: &VerifyOptions,
    r: &mut VerifyReport,
) {
    let roots = &opts.tsa_roots;
    let mut pinned_ok = false;
    for t in &m.timestamps {
        let file = t.token.as_str();
        if t.data != format::checkpoint_path(t.checkpoint_size)
            || !m
                .log
                .checkpoints
                .iter()
                .any(|c| c.size == t.checkpoint_size)
        {
            r.fail(
                Some(format::MANIFEST),
                None,
                "timestamp",
                format!(
                    "{file} covers {:?}, which is not a bundled checkpoint",
                    t.data
                ),
            );
            continue;
        }
        let (Some(der), Some(note)) = (
            facts.get(file).and_then(|f| f.bytes.as_deref()),
            facts.get(&t.data).and_then(|f| f.bytes.as_deref()),
        ) else {
            if !facts.contains_key(file) {
                r.fail(
                    Some(file),
                    None,
                    "timestamp",
                    "missing (listed in the manifest)".into(),
                );
            }
            continue;
        };
        let info = match crate::timestamp::parse_response(&t.tsa, der) {
            Ok((_, info)) => info,
            Err(e) => {
                r.fail(
                    Some(file),
                    None,
                    "timestamp",
                    format!("not a valid time-stamp response: {e}"),
                );
                continue;
            }
        };
        let digest: [u8; 32] = Sha256::digest(note).into();
        if crate::timestamp::check_token(&t.tsa, &info, &digest, None).is_err() {
            r.fail(
                Some(file),
                None,
                "timestamp",
                format!(
                    "does not cover the bytes of {} (message imprint differs)",
                    t.data
                ),
            );
            continue;
        }
        if t.gen_time.as_deref().is_some_and(|g| g != info.gen_time) {
            r.fail(
                Some(format::MANIFEST),
                None,
                "timestamp",
                format!(
                    "gives {file} the time {:?}, the token says {}",
                    t.gen_time, info.gen_time
                ),
            );
        }
        let mut extra = Vec::new();
        if let Some(chain) = &t.chain {
            match facts.get(chain).and_then(|f| f.bytes.as_deref()) {
                Some(pem) => match std::str::from_utf8(pem)
                    .map_err(|_| "not UTF-8".to_string())
                    .and_then(format::pem_to_ders)
                {
                    Ok(ders) => extra = ders,
                    Err(e) => r.fail(
                        Some(chain),
                        None,
                        "timestamp",
                        format!("not a PEM certificate chain: {e}"),
                    ),
                },
                None => {
                    if !facts.contains_key(chain.as_str()) {
                        r.fail(
                            Some(chain),
                            None,
                            "timestamp",
                            "missing (listed in the manifest)".into(),
                        );
                    }
                }
            }
        }
        match cms::verify_token(der, &extra, roots, &info.gen_time) {
            Err(e) => r.fail(
                Some(file),
                None,
                "timestamp",
                format!("signature does not hold: {e}"),
            ),
            Ok(v) => {
                if v.pinned && checkpoints.contains_key(&t.checkpoint_size) {
                    pinned_ok = true;
                }
                if !roots.is_empty() && !v.pinned {
                    r.warnings.push(format!(
                        "{file}: signed by {}, which does not chain to a pinned TSA root{}",
                        v.signer,
                        v.chain_error.map(|e| format!(" ({e})")).unwrap_or_default()
                    ));
                }
                r.timestamps.push(TimestampSummary {
                    file: file.to_string(),
                    checkpoint_size: t.checkpoint_size,
                    tsa: t.tsa.clone(),
                    gen_time: Some(info.gen_time.clone()),
                    signer: Some(v.signer),
                    pinned: v.pinned,
                });
            }
        }
    }
    if !roots.is_empty() && !pinned_ok {
        r.fail(
            None,
            None,
            "timestamp",
            "no time-stamp token in the bundle chains to the pinned TSA root".into(),
        );
    }
}

/// Checkpoints the verifier got elsewhere: one of a bundled size must carry the same root.
fn check_known(
    m: &Manifest,
    checkpoints: &BTreeMap<u64, Hash>,
    verifier: &NoteVerifier,
    opts: &VerifyOptions,
    r: &mut VerifyReport,
) {
    for (i, note) in opts.known_checkpoints.iter().enumerate() {
        let cp = match checkpoint::open_checkpoint(note, verifier) {
            Ok(cp) => cp,
            Err(e) => {
                r.fail(
                    None,
                    None,
                    "fork",
                    format!(
                        "known checkpoint {}: does not verify under the log key: {e}",
                        i + 1
                    ),
                );
                continue;
            }
        };
        if cp.origin != m.log.origin {
            r.fail(
                None,
                None,
                "fork",
                format!(
                    "known checkpoint {}: origin {:?} is another log's",
                    i + 1,
                    cp.origin
                ),
            );
            continue;
        }
        match checkpoints.get(&cp.size) {
            Some(root) if *root == cp.root => {}
            Some(root) => r.fail(
                Some(&format::checkpoint_path(cp.size)),
                None,
                "fork",
                format!(
                    "the log forked: this checkpoint of size {} has root {}, the known checkpoint of the same size has root {}",
                    cp.size,
                    hex::encode(root),
                    hex::encode(cp.root)
                ),
            ),
            None => r.warnings.push(format!(
                "known checkpoint {} (size {}) is not one of the bundled checkpoints ({}); it could not be compared",
                i + 1,
                cp.size,
                checkpoints.keys().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")
            )),
        }
    }
}

/// Unpack every file of a checked bundle into `dir` (which must not exist yet), for tools
/// that want plain files (`sha256sum -c`, `openssl ts -verify`). Refuses what `verify` refuses.
pub fn extract_to(path: &Path, dir: &Path, limits: Limits) -> Result<usize, BundleError> {
    let zip = SafeZip::open(path, limits)?;
    std::fs::create_dir(dir).map_err(super::io_at(dir))?;
    let mut count = 0;
    for m in zip.files() {
        let target = dir.join(&m.name);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(super::io_at(parent))?;
        }
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)
            .map_err(super::io_at(&target))?;
        std::io::copy(&mut zip.reader(m), &mut out).map_err(super::io_at(&target))?;
        count += 1;
    }
    Ok(count)
}

impl VerifyReport {
    /// The human report: a few lines, then OK or each problem.
    pub fn render(&self, path: &Path) -> String {
        let mut out = String::new();
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
        out.push_str(&format!(
            "bundle {}: case {}, bundle {}, created {} by {}{}\n",
            path.display(),
            opt(&self.case),
            opt(&self.bundle_id),
            opt(&self.created_at),
            opt(&self.created_by),
            self.purpose
                .as_ref()
                .map(|p| format!(" (purpose: {p})"))
                .unwrap_or_default()
        ));
        out.push_str(&format!(
            "  files       : {} ({} bytes) against SHA256SUMS and the manifest\n",
            self.files, self.bytes
        ));
        if let (Some(size), Some(root)) = (self.checkpoint_size, &self.checkpoint_root) {
            out.push_str(&format!(
                "  entries     : {}, each with an inclusion proof in checkpoint {size} (root {root})\n",
                self.entries
            ));
        } else {
            out.push_str(&format!("  entries     : {}\n", self.entries));
        }
        if !self.consistency_from.is_empty() {
            out.push_str(&format!(
                "  consistency : checkpoint {} -> {}\n",
                self.consistency_from
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                self.checkpoint_size.unwrap_or(0)
            ));
        }
        if let Some(k) = &self.log_key {
            out.push_str(&format!(
                "  log key     : {k} ({})\n",
                if self.log_key_pinned {
                    "pinned"
                } else {
                    "from the bundle, not pinned"
                }
            ));
        }
        for t in &self.timestamps {
            out.push_str(&format!(
                "  time-stamp  : checkpoint {} at {} by {} ({})\n",
                t.checkpoint_size,
                t.gen_time.as_deref().unwrap_or("?"),
                t.signer.as_deref().unwrap_or("?"),
                if t.pinned {
                    "chains to the pinned TSA root"
                } else {
                    "TSA not pinned"
                }
            ));
        }
        out.push_str(&format!(
            "  blobs       : {} present, {} withheld\n",
            self.blobs_present, self.blobs_withheld
        ));
        for w in &self.warnings {
            out.push_str(&format!("  note: {w}\n"));
        }
        if self.ok {
            out.push_str("OK: every hash, proof, signature and time-stamp holds\n");
        } else {
            for p in &self.problems {
                out.push_str(&format!("FAIL {p}\n"));
            }
            out.push_str(&format!(
                "FAILED: {} problem{}\n",
                self.problems.len(),
                if self.problems.len() == 1 { "" } else { "s" }
            ));
        }
        out
    }
}
