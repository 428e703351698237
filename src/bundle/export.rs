//! `bundle export`: a case's entries, proofs, checkpoints, time-stamps and blobs into one zip,
//! then a `custody` entry recording who exported it and the zip's SHA-256.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use zip::CompressionMethod;
use zip::write::SimpleFileOptions;

use super::format::{self, FileRef, Manifest, Role};
use super::{BundleError, io_at};
use crate::blobs::BlobId;
use crate::durable;
use crate::evidence::Evidence;
use crate::ledger::SignedCheckpoint;
use crate::ledger::entry::{BlobRef, EntryBody, LedgerEntry, timestamp};

/// Who exports, why, and whether personal data goes in.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The exporter as a ledger actor (`cli:alice`, later `token:<owner>`).
    pub actor: String,
    /// Why the bundle is made (e.g. "police report, 浦东分局 case 2026-118").
    pub purpose: Option<String>,
    /// Put PII-bearing blobs in (see [`pii_bearing_blobs`]); otherwise they are listed as
    /// withheld with their hashes. Roles will decide this once they exist.
    pub include_pii: bool,
}

#[derive(Debug, Clone)]
pub struct ExportReport {
    pub path: PathBuf,
    /// SHA-256 of the zip file, hex (as recorded in the custody entry).
    pub sha256: String,
    pub bundle_id: String,
    pub bytes: u64,
    pub files: usize,
    pub entries: u64,
    pub blobs: usize,
    pub withheld: usize,
    pub checkpoint_size: u64,
    /// True when no stored checkpoint covered the case and one was signed for the bundle.
    pub fresh_checkpoint: bool,
    pub timestamps: usize,
    /// Ledger index of the `custody` entry recording the export.
    pub custody_index: u64,
}

/// One stored time-stamp token and what it covers.
struct StoredToken {
    checkpoint_size: u64,
    tsa: String,
    token: BlobRef,
    chain: Option<BlobRef>,
    gen_time: Option<String>,
}

/// Which of a case's blobs hold victims' personal data, each with the reason. The one place
/// this is decided; a bundle made without `include_pii` withholds exactly these.
///
/// A blob is PII-bearing when it is
/// 1. the rows of an `extracted` entry (sample rows: names, phones, addresses);
/// 2. the blob an extraction found sample rows in (its `source`);
/// 3. the raw message JSON or any media item of a capture in which an extraction found rows;
/// 4. a media item (picture, file) whose content was not analysed — an extraction note says
///    "not extracted" (no OCR, unsupported format) or no extraction of it exists — since it may
///    be a screenshot or file of sample rows;
/// 5. the report of a `matched` entry (order ids of real customers).
///
/// Everything else — offers and chatter, group info and member lists (the sellers' side), the
/// time-stamp tokens — goes in.
pub fn pii_bearing_blobs(entries: &[(u64, EntryBody)]) -> BTreeMap<BlobId, String> {
    let mut pii: BTreeMap<BlobId, String> = BTreeMap::new();
    let mut mark = |id: BlobId, why: String| {
        pii.entry(id).or_insert(why);
    };
    let mut captures_with_rows: BTreeSet<u64> = BTreeSet::new();
    let mut analysed: BTreeSet<BlobId> = BTreeSet::new();
    for (_, body) in entries {
        match body {
            EntryBody::Extracted {
                capture,
                source,
                rows,
                rows_blob,
                notes,
                ..
            } => {
                if let Some(b) = rows_blob {
                    mark(b.sha256, "sample rows extracted from a message".into());
                }
                if *rows > 0 {
                    mark(*source, format!("holds {rows} sample rows"));
                    captures_with_rows.insert(*capture);
                }
                match notes.iter().find(|n| n.starts_with("not extracted")) {
                    Some(note) => mark(
                        *source,
                        format!("content not analysed ({note}); treated as personal data"),
                    ),
                    None => {
                        analysed.insert(*source);
                    }
                }
            }
            EntryBody::Matched { report, .. } => {
                mark(
                    report.sha256,
                    "match report: order ids of real customers".into(),
                );
            }
            _ => {}
        }
    }
    for (index, body) in entries {
        if let EntryBody::Captured(c) = body {
            if captures_with_rows.contains(index) {
                for b in std::iter::once(&c.raw).chain(c.media.iter()) {
                    mark(b.sha256, "part of a message carrying sample rows".into());
                }
            }
            for m in &c.media {
                if !analysed.contains(&m.sha256) {
                    mark(
                        m.sha256,
                        "media content not analysed; treated as personal data".into(),
                    );
                }
            }
        }
    }
    pii
}

/// A file to put in the zip: small ones in memory, blobs read from the store and inclusion
/// proofs computed as they are written.
enum Content {
    Bytes(Vec<u8>),
    Blob(BlobId),
    InclusionProofs { indexes: Vec<u64>, size: u64 },
}

struct Planned {
    path: String,
    role: Role,
    content: Content,
    size: u64,
}

/// Export `case` from `ev` into a new zip at `out`, then record the export in the ledger.
/// `progress(done, total)` counts bytes written.
pub fn export(
    ev: &Evidence,
    case: &str,
    out: &Path,
    opts: &ExportOptions,
    progress: &dyn Fn(u64, u64),
) -> Result<ExportReport, BundleError> {
    if out.exists() {
        return Err(BundleError::OutputExists {
            path: out.display().to_string(),
        });
    }
    // 1. The case's entries (every kind that names it), what they reference, and the stored
    //    time-stamp tokens. Only what the bundle needs is kept in memory.
    let size_now = ev.ledger.size();
    let mut indexes: Vec<u64> = Vec::new();
    let mut typed: Vec<(u64, EntryBody)> = Vec::new();
    let mut entries_jsonl = Vec::new();
    let mut custody_rows = Vec::new();
    let mut refs: BTreeMap<String, (u64, format::FoundRef)> = BTreeMap::new();
    let mut tokens: Vec<StoredToken> = Vec::new();
    for index in 0..size_now {
        let bytes = ev.ledger.read_bytes(index)?;
        let entry = LedgerEntry::from_bytes(&bytes).map_err(|e| BundleError::BadEntry {
            index,
            reason: e.to_string(),
        })?;
        if let EntryBody::Timestamped {
            checkpoint_size,
            tsa,
            token: Some(token),
            chain,
            gen_time,
            ..
        } = &entry.body
        {
            tokens.push(StoredToken {
                checkpoint_size: *checkpoint_size,
                tsa: tsa.clone(),
                token: token.clone(),
                chain: chain.clone(),
                gen_time: gen_time.clone(),
            });
        }
        if entry.body.case() != Some(case) {
            continue;
        }
        if bytes.contains(&b'\n') {
            return Err(BundleError::BadEntry {
                index,
                reason: "holds a newline byte, so it cannot be one line of entries.jsonl".into(),
            });
        }
        // The same generic reading of the bytes the verifier makes.
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| BundleError::BadEntry {
                index,
                reason: e.to_string(),
            })?;
        custody_rows.push(format::custody_row(index, &value));
        for r in format::blob_refs(&value) {
            refs.entry(r.sha256.clone()).or_insert((index, r));
        }
        entries_jsonl.extend_from_slice(&bytes);
        entries_jsonl.push(b'\n');
        indexes.push(index);
        typed.push((index, entry.body));
    }
    let (Some(&first_index), Some(&last_index)) = (indexes.first(), indexes.last()) else {
        return Err(BundleError::NoSuchCase(case.to_string()));
    };

    // 2. The bundled checkpoint covers every case entry; sign one if the latest does not.
    let mut checkpoints = ev.ledger.checkpoints()?;
    let (bundled, fresh) = match checkpoints.last() {
        Some(c) if c.checkpoint.size > last_index => (c.clone(), false),
        _ => {
            let c = ev.ledger.sign_checkpoint()?;
            if checkpoints.last().map(|l| l.checkpoint.size) != Some(c.checkpoint.size) {
                checkpoints.push(c.clone());
            }
            (c, true)
        }
    };
    let n = bundled.checkpoint.size;
    let stamped: BTreeSet<u64> = tokens.iter().map(|t| t.checkpoint_size).collect();
    let covering =
        |c: &&SignedCheckpoint| c.checkpoint.size > first_index && c.checkpoint.size <= n;
    let mut chosen: BTreeMap<u64, SignedCheckpoint> = BTreeMap::new();
    // The first checkpoint that covered the case, the latest one with a time-stamp, and the
    // bundled one.
    if let Some(c) = checkpoints.iter().find(covering) {
        chosen.insert(c.checkpoint.size, c.clone());
    }
    if let Some(c) = checkpoints
        .iter()
        .rev()
        .filter(covering)
        .find(|c| stamped.contains(&c.checkpoint.size))
    {
        chosen.insert(c.checkpoint.size, c.clone());
    }
    chosen.insert(n, bundled.clone());

    // 3. Proofs: inclusion proofs are computed as they are written (see `write_zip`).
    let mut consistency = format::ConsistencyFile {
        tree_size: n,
        proofs: Vec::new(),
    };
    for &size in chosen.keys().filter(|&&s| s < n) {
        consistency.proofs.push(format::ConsistencyProof {
            from_size: size,
            proof: format::hashes_to_hex(&ev.ledger.consistency_proof(size, n)?),
        });
    }

    // 4. Blobs: every reference, included or withheld.
    let pii = pii_bearing_blobs(&typed);
    drop(typed);
    let mut withheld = Vec::new();
    let mut planned_blobs = Vec::new();
    for (hex, (index, r)) in &refs {
        let id = BlobId::parse(hex)?;
        if !opts.include_pii
            && let Some(reason) = pii.get(&id)
        {
            withheld.push(format::WithheldBlob {
                sha256: hex.clone(),
                size: r.size,
                media_type: r.media_type.clone(),
                reason: reason.clone(),
            });
            continue;
        }
        if !ev.blobs.contains(&id) {
            return Err(BundleError::MissingBlob {
                index: *index,
                blob: hex.clone(),
                reason: "not in the blob store (run `leakwatch ledger verify`)".into(),
            });
        }
        planned_blobs.push(Planned {
            path: format::blob_path(hex),
            role: Role::Blob,
            content: Content::Blob(id),
            size: r.size,
        });
    }

    // 5. Time-stamps over the chosen checkpoints, with the exact bytes they cover.
    let mut planned = Vec::new();
    let mut ts_refs = Vec::new();
    let mut per_size: BTreeMap<u64, usize> = BTreeMap::new();
    for t in tokens
        .iter()
        .filter(|t| chosen.contains_key(&t.checkpoint_size))
    {
        let k = per_size.entry(t.checkpoint_size).or_insert(0);
        let token_path = format::token_path(t.checkpoint_size, *k);
        let tsr = ev.blobs.get(&t.token.sha256)?;
        planned.push(Planned {
            path: token_path.clone(),
            role: Role::TimestampToken,
            size: tsr.len() as u64,
            content: Content::Bytes(tsr),
        });
        let chain = match &t.chain {
            Some(c) => {
                let pem = ev.blobs.get(&c.sha256)?;
                let p = format::chain_path(t.checkpoint_size, *k);
                planned.push(Planned {
                    path: p.clone(),
                    role: Role::TimestampChain,
                    size: pem.len() as u64,
                    content: Content::Bytes(pem),
                });
                Some(p)
            }
            None => None,
        };
        ts_refs.push(format::TimestampRef {
            checkpoint_size: t.checkpoint_size,
            tsa: t.tsa.clone(),
            gen_time: t.gen_time.clone(),
            token: token_path,
            chain,
            data: format::checkpoint_path(t.checkpoint_size),
        });
        *k += 1;
    }

    // 6. The rest of the layout.
    let bundle_id = format!("{:032x}", rand::random::<u128>());
    let created_at = timestamp(chrono::Utc::now());
    let vkey = format!("{}\n", ev.ledger.verifier().to_vkey_string());
    let mut small = vec![
        Planned::bytes(format::LOG_KEY, Role::LogKey, vkey.into_bytes()),
        Planned::bytes(format::ENTRIES, Role::Entries, entries_jsonl),
        Planned {
            path: format::INCLUSION.into(),
            role: Role::InclusionProofs,
            size: 0,
            content: Content::InclusionProofs { indexes, size: n },
        },
        Planned::bytes(
            format::CONSISTENCY,
            Role::ConsistencyProofs,
            serde_json::to_vec_pretty(&consistency).unwrap_or_default(),
        ),
        Planned::bytes(
            format::CUSTODY,
            Role::Custody,
            format::render_custody(&custody_rows),
        ),
    ];
    let mut checkpoint_refs = Vec::new();
    for (size, c) in &chosen {
        let path = format::checkpoint_path(*size);
        small.push(Planned::bytes(
            &path,
            Role::Checkpoint,
            c.note.as_bytes().to_vec(),
        ));
        checkpoint_refs.push(format::CheckpointRef {
            size: *size,
            root: hex::encode(c.checkpoint.root),
            note: path,
        });
    }
    let readme = readme_text(&ReadmeFacts {
        case,
        bundle_id: &bundle_id,
        created_at: &created_at,
        created_by: &opts.actor,
        purpose: opts.purpose.as_deref(),
        checkpoint: &bundled,
        entries: custody_rows.len(),
        blobs: planned_blobs.len(),
        withheld: withheld.len(),
        timestamps: &ts_refs,
        out,
    });
    let mut all = vec![Planned::bytes(
        format::README,
        Role::Readme,
        readme.into_bytes(),
    )];
    all.extend(small);
    all.extend(planned);
    all.extend(planned_blobs);

    // 7. Write the zip next to its final name, durably, then move it into place.
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bundle.zip".into());
    let tmp = dir.join(format!(
        ".{name}.partial-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let manifest_base = Manifest {
        format: format::MANIFEST_FORMAT.into(),
        version: format::MANIFEST_VERSION,
        bundle_id: bundle_id.clone(),
        case: case.to_string(),
        created_at,
        created_by: opts.actor.clone(),
        purpose: opts.purpose.clone(),
        leakwatch_version: crate::VERSION.into(),
        pii: if opts.include_pii {
            format::PiiPolicy::Included
        } else {
            format::PiiPolicy::Withheld
        },
        log: format::LogSection {
            origin: bundled.checkpoint.origin.clone(),
            key: format::LOG_KEY.into(),
            checkpoint_size: n,
            checkpoints: checkpoint_refs,
        },
        entries: format::EntriesSection {
            file: format::ENTRIES.into(),
            inclusion_proofs: format::INCLUSION.into(),
            consistency_proofs: format::CONSISTENCY.into(),
            count: custody_rows.len() as u64,
        },
        custody: format::CUSTODY.into(),
        timestamps: ts_refs.clone(),
        withheld: withheld.clone(),
        files: Vec::new(),
    };
    let written = write_zip(ev, &tmp, all, manifest_base, progress);
    let files = match written {
        Ok(files) => files,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    if let Err(e) = fs::rename(&tmp, out).and_then(|_| durable::sync_dir(&dir)) {
        let _ = fs::remove_file(&tmp);
        return Err(io_at(out)(e));
    }

    // 8. The export is itself evidence: who, which case, which bytes.
    let (sha256, bytes) = match sha256_of_file(out) {
        Ok(v) => v,
        Err(e) => {
            let _ = fs::remove_file(out);
            return Err(e);
        }
    };
    let detail = serde_json::json!({
        "sha256": sha256,
        "bundle_id": bundle_id,
        "purpose": opts.purpose,
        "file": name,
        "bytes": bytes,
        "entries": custody_rows.len(),
        "checkpoint_size": n,
        "pii": if opts.include_pii { "included" } else { "withheld" },
        "withheld_blobs": withheld.len(),
    })
    .to_string();
    let entry = LedgerEntry::new(
        &opts.actor,
        EntryBody::Custody {
            case: case.to_string(),
            action: "bundle_exported".into(),
            detail,
        },
    );
    let custody_index = match ev.record(&entry) {
        Ok(i) => i,
        Err(e) => {
            // An unrecorded bundle must not be left behind.
            let _ = fs::remove_file(out);
            return Err(e.into());
        }
    };
    Ok(ExportReport {
        path: out.to_path_buf(),
        sha256,
        bundle_id,
        bytes,
        files,
        entries: custody_rows.len() as u64,
        blobs: refs.len() - withheld.len(),
        withheld: withheld.len(),
        checkpoint_size: n,
        fresh_checkpoint: fresh,
        timestamps: ts_refs.len(),
        custody_index,
    })
}

impl Planned {
    fn bytes(path: &str, role: Role, bytes: Vec<u8>) -> Planned {
        Planned {
            path: path.to_string(),
            role,
            size: bytes.len() as u64,
            content: Content::Bytes(bytes),
        }
    }
}

/// Writes every planned file, then `manifest.json` and `SHA256SUMS`; returns the file count.
fn write_zip(
    ev: &Evidence,
    tmp: &Path,
    files: Vec<Planned>,
    mut manifest: Manifest,
    progress: &dyn Fn(u64, u64),
) -> Result<usize, BundleError> {
    let zip_err = |e: zip::result::ZipError| BundleError::Zip {
        path: tmp.display().to_string(),
        reason: e.to_string(),
    };
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(io_at(tmp))?;
    let mut zip = zip::ZipWriter::new(BufWriter::with_capacity(1 << 20, file));
    let when = zip_time();
    let options = |method: CompressionMethod, size: u64| {
        SimpleFileOptions::default()
            .compression_method(method)
            .unix_permissions(0o644)
            .last_modified_time(when)
            .large_file(size >= u32::MAX as u64)
    };
    let total: u64 = files.iter().map(|f| f.size).sum();
    let mut done = 0u64;
    let mut sums: Vec<(String, String)> = Vec::new();
    for f in files {
        let (bytes, sha) = match f.content {
            Content::Bytes(b) => {
                let sha = hex::encode(Sha256::digest(&b));
                (b, sha)
            }
            // `get` decrypts and re-hashes: the bytes are the ones the ledger names.
            Content::Blob(id) => (ev.blobs.get(&id)?, id.hex()),
            Content::InclusionProofs { indexes, size } => {
                // Size unknown until written: allow zip64 in case it passes 4 GiB.
                zip.start_file(
                    f.path.as_str(),
                    options(CompressionMethod::Deflated, u64::MAX),
                )
                .map_err(zip_err)?;
                let mut hash = Sha256::new();
                let mut written = 0u64;
                for index in indexes {
                    let line = format::InclusionLine {
                        index,
                        proof: format::hashes_to_hex(&ev.ledger.inclusion_proof(index, size)?),
                    };
                    let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
                    bytes.push(b'\n');
                    hash.update(&bytes);
                    written += bytes.len() as u64;
                    zip.write_all(&bytes).map_err(io_at(tmp))?;
                }
                let sha = hex::encode(hash.finalize());
                manifest.files.push(FileRef {
                    path: f.path.clone(),
                    sha256: sha.clone(),
                    size: written,
                    role: f.role,
                });
                sums.push((f.path, sha));
                continue;
            }
        };
        if bytes.len() as u64 != f.size {
            return Err(BundleError::BlobSize {
                blob: f.path.clone(),
                expected: f.size,
                actual: bytes.len() as u64,
            });
        }
        let method = if f.role == Role::Blob {
            CompressionMethod::Stored
        } else {
            CompressionMethod::Deflated
        };
        zip.start_file(f.path.as_str(), options(method, f.size))
            .map_err(zip_err)?;
        zip.write_all(&bytes).map_err(io_at(tmp))?;
        manifest.files.push(FileRef {
            path: f.path.clone(),
            sha256: sha.clone(),
            size: f.size,
            role: f.role,
        });
        sums.push((f.path, sha));
        done += f.size;
        progress(done, total);
    }
    let manifest_bytes = {
        let mut m = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
        m.push(b'\n');
        m
    };
    sums.insert(
        0,
        (
            format::MANIFEST.to_string(),
            hex::encode(Sha256::digest(&manifest_bytes)),
        ),
    );
    for (path, bytes) in [
        (format::MANIFEST, manifest_bytes),
        (format::SUMS, format::render_sums(&sums)),
    ] {
        zip.start_file(
            path,
            options(CompressionMethod::Deflated, bytes.len() as u64),
        )
        .map_err(zip_err)?;
        zip.write_all(&bytes).map_err(io_at(tmp))?;
    }
    let count = sums.len() + 1;
    let writer = zip.finish().map_err(zip_err)?;
    let file = writer
        .into_inner()
        .map_err(|e| io_at(tmp)(e.into_error()))?;
    file.sync_all().map_err(io_at(tmp))?;
    Ok(count)
}

fn zip_time() -> zip::DateTime {
    use chrono::{Datelike, Timelike};
    let now = chrono::Utc::now();
    zip::DateTime::from_date_and_time(
        u16::try_from(now.year()).unwrap_or(1980),
        now.month() as u8,
        now.day() as u8,
        now.hour() as u8,
        now.minute() as u8,
        now.second() as u8,
    )
    .unwrap_or_default()
}

pub(crate) fn sha256_of_file(path: &Path) -> Result<(String, u64), BundleError> {
    let mut f = File::open(path).map_err(io_at(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io_at(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex::encode(h.finalize()), total))
}

struct ReadmeFacts<'a> {
    case: &'a str,
    bundle_id: &'a str,
    created_at: &'a str,
    created_by: &'a str,
    purpose: Option<&'a str>,
    checkpoint: &'a SignedCheckpoint,
    entries: usize,
    blobs: usize,
    withheld: usize,
    timestamps: &'a [format::TimestampRef],
    out: &'a Path,
}

fn readme_text(f: &ReadmeFacts<'_>) -> String {
    let zip_name = f
        .out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bundle.zip".into());
    let size = f.checkpoint.checkpoint.size;
    let root = hex::encode(f.checkpoint.checkpoint.root);
    let purpose = f.purpose.unwrap_or("-");
    let note = format::checkpoint_path(size);
    let mut openssl = String::new();
    for t in f.timestamps {
        let untrusted = t
            .chain
            .as_deref()
            .map(|c| format!(" -untrusted {c}"))
            .unwrap_or_default();
        openssl.push_str(&format!(
            "    openssl ts -verify -data {} -in {} -CAfile <TSA-root.pem>{untrusted}\n",
            t.data, t.token
        ));
    }
    if openssl.is_empty() {
        openssl
            .push_str("    (本证据包没有时间戳令牌 / this bundle carries no time-stamp token)\n");
    }
    format!(
        "leakwatch 证据包 / leakwatch evidence bundle
===========================================

案件 Case:                {case}
证据包编号 Bundle id:      {id}
生成时间 Created (UTC):    {created}
导出人 Exported by:        {by}
用途 Purpose:             {purpose}
日志检查点 Checkpoint:     {size} 条日志记录 entries, root {root}
本案条目 Case entries:     {entries}
原始文件 Blobs:            {blobs} 已包含 included, {withheld} 未包含 withheld (个人信息 personal data)

—— 中文 ——

这是什么
  本证据包收录 leakwatch 证据日志中属于本案件的全部条目（采集的群消息、抽取结果、比对结果、
  监管记录等），每条都附有 RFC 6962 默克尔包含证明，证明它在经签名的日志检查点之中；
  还有从本案第一个检查点到该检查点的一致性证明、日志公钥、这些条目所引用的原始文件
  （blobs/ 目录，文件名即其 SHA-256）、RFC 3161 可信时间戳以及监管链记录（custody.json）。
  含有受害人个人信息的原始文件若未包含，则在 manifest.json 的 withheld 中列出其哈希与大小。
  格式说明见 manifest.json 及 leakwatch 源码 src/bundle/mod.rs。

如何验证
  1. 用 leakwatch（无需任何其他数据）：
       leakwatch bundle verify {zip}
     可加 --log-key <日志公钥文件> 与 --tsa-root <时间戳机构根证书> 以固定信任锚。
  2. 不用 leakwatch：解压后在本目录执行
       sha256sum -c SHA256SUMS
     核对每个文件的哈希；条目与证明可按 RFC 6962 / RFC 9162 自行验证。
  3. 时间戳（需时间戳机构的根证书）：
{openssl}  检查点 {note} 的签名可用任何 C2SP signed-note 实现与 log/key.vkey 验证，
  并请与 leakwatch 公布的公钥比对。

—— English ——

What this is
  Every ledger entry of this case (captured messages, extractions, matches, custody events),
  each with an RFC 6962 inclusion proof against a signed log checkpoint; a consistency proof
  from the case's first checkpoint to it; the log's public key; the original bytes of every
  blob the entries reference (blobs/, named by their SHA-256); the RFC 3161 time-stamp tokens
  over the checkpoints; and the custody log (custody.json). Blobs holding victims' personal
  data that were not included are listed under \"withheld\" in manifest.json with their hash
  and size. The format is documented in manifest.json and in leakwatch's src/bundle/mod.rs.

How to verify
  1. With leakwatch (it needs nothing but this file):
       leakwatch bundle verify {zip}
     Add --log-key <published log key file> and --tsa-root <TSA root certificate> to pin the
     trust anchors.
  2. Without leakwatch: unzip, then in the unpacked folder
       sha256sum -c SHA256SUMS
     checks every file; entries and proofs can be checked with any RFC 6962 / RFC 9162 code.
  3. The time-stamps (you need the TSA's root certificate):
{openssl}  The checkpoint {note} verifies with any C2SP signed-note implementation under
  log/key.vkey; compare that key with the one leakwatch publishes.
",
        case = f.case,
        id = f.bundle_id,
        created = f.created_at,
        by = f.created_by,
        entries = f.entries,
        blobs = f.blobs,
        withheld = f.withheld,
        zip = zip_name,
    )
}
