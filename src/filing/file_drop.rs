//! File-drop filing: the packet written as a directory, for a person or another system (a
//! shared folder, an SFTP outbox) to pick up.
//!
//! Layout, under the route's `dir`:
//!
//! ```text
//! <packet_id>/
//!   body.txt        the body text, UTF-8
//!   <attachment>…   each file, under a sanitised name
//!   manifest.json   what is there (below)
//! ```
//!
//! `manifest.json` (version 1):
//!
//! ```json
//! { "version": 1, "packet_id": "...", "kind": "...", "subject": "...",
//!   "files": [ { "name": "body.txt", "original_name": null,
//!                "content_type": "text/plain; charset=utf-8", "size": 123, "sha256": "<hex>" },
//!              { "name": "report.pdf", "original_name": "report.pdf", ... } ] }
//! ```
//!
//! `name` is the file's name in the directory, `original_name` the attachment's name as given
//! (`null` for `body.txt`). The manifest holds no time, so the same packet always gives the same
//! bytes: filing it again finds an identical directory and succeeds with the same receipt, while
//! a directory with anything else in it is a conflict and is left untouched.
//!
//! Writing is all-or-nothing: everything goes into a hidden temporary directory next to the
//! final one, each file is fsynced, the temporary directory is fsynced and renamed into place,
//! and the parent is fsynced so the rename survives a crash.
//!
//! Attachment names never become paths: each character outside `[A-Za-z0-9._-]` becomes `_`,
//! leading dots are removed (no `..`, no hidden files), the length is capped, and clashes (with
//! each other, or with `body.txt` / `manifest.json`, ignoring case) get a `-2`, `-3`… suffix.

use std::collections::HashSet;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{FileDropRoute, Filer, FilingError, FilingReceipt, FilingRequest, sha256_hex};
use crate::durable::{create_dir_all_synced, sync_dir};

/// `version` of the manifest this module writes.
pub const MANIFEST_VERSION: u32 = 1;
const BODY_NAME: &str = "body.txt";
const MANIFEST_NAME: &str = "manifest.json";
/// Longest file name we write, in bytes; well under every file system's 255.
const MAX_NAME_BYTES: usize = 100;
/// Longest tail kept as an extension when a name is shortened.
const MAX_EXTENSION_BYTES: usize = 16;

/// Writes packets into a directory; built from a [`FileDropRoute`].
pub struct FileDropFiler {
    dir: PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    version: u32,
    packet_id: String,
    kind: String,
    subject: String,
    files: Vec<ManifestFile>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ManifestFile {
    name: String,
    original_name: Option<String>,
    content_type: String,
    size: u64,
    sha256: String,
}

/// A file as it will be written.
struct PlannedFile<'a> {
    name: String,
    bytes: &'a [u8],
}

impl FileDropFiler {
    /// Checks the route; creates nothing until the first filing.
    pub fn new(route: &FileDropRoute) -> Result<FileDropFiler, FilingError> {
        if route.dir.as_os_str().is_empty() {
            return Err(FilingError::Config("dir is empty".into()));
        }
        Ok(FileDropFiler {
            dir: route.dir.clone(),
        })
    }

    fn target(&self) -> String {
        format!("file_drop {}", self.dir.display())
    }

    fn storage(&self, path: &Path, source: std::io::Error) -> FilingError {
        FilingError::Storage {
            target: self.target(),
            path: path.to_path_buf(),
            source,
        }
    }

    fn conflict(&self, path: &Path, detail: String) -> FilingError {
        FilingError::Conflict {
            target: self.target(),
            path: path.to_path_buf(),
            detail,
        }
    }

    /// Decides the directory's content: the files and the manifest's bytes.
    fn plan<'a>(
        &self,
        req: &'a FilingRequest,
    ) -> Result<(Vec<PlannedFile<'a>>, Vec<u8>), FilingError> {
        let mut taken: HashSet<String> = [BODY_NAME, MANIFEST_NAME]
            .iter()
            .map(|n| n.to_string())
            .collect();
        let mut files = vec![PlannedFile {
            name: BODY_NAME.into(),
            bytes: req.body_text.as_bytes(),
        }];
        let mut listed = vec![ManifestFile {
            name: BODY_NAME.into(),
            original_name: None,
            content_type: "text/plain; charset=utf-8".into(),
            size: req.body_text.len() as u64,
            sha256: sha256_hex(req.body_text.as_bytes()),
        }];
        for (index, attachment) in req.attachments.iter().enumerate() {
            let name = unique_name(
                sanitise_attachment_name(&attachment.name, index + 1),
                &mut taken,
            );
            listed.push(ManifestFile {
                name: name.clone(),
                original_name: Some(attachment.name.clone()),
                content_type: attachment.content_type.clone(),
                size: attachment.bytes.len() as u64,
                sha256: sha256_hex(&attachment.bytes),
            });
            files.push(PlannedFile {
                name,
                bytes: &attachment.bytes,
            });
        }
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            packet_id: req.packet_id.clone(),
            kind: req.kind.clone(),
            subject: req.subject.clone(),
            files: listed,
        };
        let mut bytes =
            serde_json::to_vec_pretty(&manifest).map_err(|e| FilingError::InvalidRequest {
                packet_id: req.packet_id.clone(),
                detail: format!("cannot encode manifest.json: {e}"),
            })?;
        bytes.push(b'\n');
        Ok((files, bytes))
    }

    fn receipt(&self, packet_dir: &Path, files: &[PlannedFile], manifest: &[u8]) -> FilingReceipt {
        let total: usize = files.iter().map(|f| f.bytes.len()).sum();
        FilingReceipt {
            channel: "file_drop".into(),
            recipient: self.recipient(),
            message_id: Some(packet_dir.display().to_string()),
            server_answer: format!(
                "stored {} files ({total} bytes) and manifest.json (sha256 {})",
                files.len(),
                sha256_hex(manifest)
            ),
        }
    }

    /// An existing packet directory is fine only if it holds exactly what we would write.
    fn check_existing(
        &self,
        packet_dir: &Path,
        files: &[PlannedFile],
        manifest: &[u8],
    ) -> Result<(), FilingError> {
        let meta = fs::symlink_metadata(packet_dir).map_err(|e| self.storage(packet_dir, e))?;
        if !meta.is_dir() {
            return Err(self.conflict(packet_dir, "not a directory".into()));
        }
        let manifest_path = packet_dir.join(MANIFEST_NAME);
        match fs::read(&manifest_path) {
            Ok(existing) if existing == manifest => {}
            Ok(_) => return Err(self.conflict(packet_dir, "manifest.json differs".into())),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(self.conflict(packet_dir, "no manifest.json".into()));
            }
            Err(e) => return Err(self.storage(&manifest_path, e)),
        }
        let mut expected: HashSet<&str> = files.iter().map(|f| f.name.as_str()).collect();
        expected.insert(MANIFEST_NAME);
        let entries = fs::read_dir(packet_dir).map_err(|e| self.storage(packet_dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| self.storage(packet_dir, e))?;
            let name = entry.file_name();
            if !name.to_str().is_some_and(|n| expected.contains(n)) {
                return Err(self.conflict(
                    packet_dir,
                    format!("unexpected entry {:?}", name.to_string_lossy()),
                ));
            }
        }
        for file in files {
            let path = packet_dir.join(&file.name);
            match fs::read(&path) {
                Ok(existing) if existing == file.bytes => {}
                Ok(_) => return Err(self.conflict(packet_dir, format!("{} differs", file.name))),
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    return Err(self.conflict(packet_dir, format!("{} is missing", file.name)));
                }
                Err(e) => return Err(self.storage(&path, e)),
            }
        }
        Ok(())
    }

    fn write_temp_dir(
        &self,
        temp: &Path,
        files: &[PlannedFile],
        manifest: &[u8],
    ) -> Result<(), FilingError> {
        DirBuilder::new()
            .mode(0o750)
            .create(temp)
            .map_err(|e| self.storage(temp, e))?;
        let manifest_file = PlannedFile {
            name: MANIFEST_NAME.into(),
            bytes: manifest,
        };
        for file in files.iter().chain(std::iter::once(&manifest_file)) {
            let path = temp.join(&file.name);
            let write = || -> std::io::Result<()> {
                let mut out = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o640)
                    .open(&path)?;
                out.write_all(file.bytes)?;
                out.sync_all()
            };
            write().map_err(|e| self.storage(&path, e))?;
        }
        sync_dir(temp).map_err(|e| self.storage(temp, e))
    }
}

impl Filer for FileDropFiler {
    fn channel(&self) -> &str {
        "file_drop"
    }

    fn recipient(&self) -> String {
        self.dir.display().to_string()
    }

    fn file(&self, req: &FilingRequest) -> Result<FilingReceipt, FilingError> {
        // The packet id is the directory name: validate() restricts it to a safe charset.
        req.validate()?;
        let (files, manifest) = self.plan(req)?;
        let packet_dir = self.dir.join(&req.packet_id);
        create_dir_all_synced(&self.dir).map_err(|e| self.storage(&self.dir, e))?;
        if fs::symlink_metadata(&packet_dir).is_ok() {
            self.check_existing(&packet_dir, &files, &manifest)?;
            return Ok(self.receipt(&packet_dir, &files, &manifest));
        }
        let temp = self.dir.join(format!(
            ".{}.tmp-{}-{:08x}",
            req.packet_id,
            std::process::id(),
            rand::random::<u32>()
        ));
        let written = self
            .write_temp_dir(&temp, &files, &manifest)
            .and_then(|()| {
                // rename(2) replaces only an empty directory, so a packet that appeared
                // meanwhile is never overwritten; it is compared below instead.
                fs::rename(&temp, &packet_dir).map_err(|e| self.storage(&packet_dir, e))
            });
        if let Err(error) = written {
            let _ = fs::remove_dir_all(&temp);
            if fs::symlink_metadata(&packet_dir).is_ok() {
                self.check_existing(&packet_dir, &files, &manifest)?;
                return Ok(self.receipt(&packet_dir, &files, &manifest));
            }
            return Err(error);
        }
        sync_dir(&self.dir).map_err(|e| self.storage(&self.dir, e))?;
        Ok(self.receipt(&packet_dir, &files, &manifest))
    }
}

/// A file name made only of `[A-Za-z0-9._-]`, not starting with `.`, `_` or `-`, at most 100
/// bytes with its extension kept. A name with nothing usable left (say, all CJK) becomes
/// `attachment-<index>` plus its extension; the original stays in the manifest.
pub fn sanitise_attachment_name(name: &str, index: usize) -> String {
    let mut mapped = String::with_capacity(name.len());
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
            c
        } else {
            '_'
        };
        // Collapse runs of '_' so "a / b" reads as "a_b".
        if !(c == '_' && mapped.ends_with('_')) {
            mapped.push(c);
        }
    }
    // The extension is split off first, so that a name like "截图.png" keeps ".png".
    let (stem, extension) = split_extension(&mapped);
    // No leading '.' (hidden, "." and ".."), '-' (read as an option) or '_' (left by a '/').
    let stem = stem
        .trim_start_matches(['.', '_', '-'])
        .trim_end_matches(['.', '_']);
    let stem = if stem.bytes().any(|b| b.is_ascii_alphanumeric()) {
        stem.to_string()
    } else {
        format!("attachment-{index}")
    };
    // All ASCII now, so byte truncation keeps whole characters.
    let room = MAX_NAME_BYTES - extension.len();
    let stem = stem[..stem.len().min(room)].trim_end_matches(['.', '_']);
    format!("{stem}{extension}")
}

/// `(stem, ".ext")` when the name ends in a short alphanumeric extension, else `(name, "")`.
fn split_extension(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(dot)
            if dot > 0
                && name.len() - dot > 1
                && name.len() - dot <= MAX_EXTENSION_BYTES
                && name[dot + 1..].bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            name.split_at(dot)
        }
        _ => (name, ""),
    }
}

/// `name`, or `name-2`, `name-3`… (before the extension) when already taken, ignoring case.
fn unique_name(name: String, taken: &mut HashSet<String>) -> String {
    let (stem, extension) = split_extension(&name);
    let mut candidate = name.clone();
    let mut n = 2;
    while !taken.insert(candidate.to_ascii_lowercase()) {
        let suffix = format!("-{n}");
        let room = MAX_NAME_BYTES.saturating_sub(extension.len() + suffix.len());
        candidate = format!("{}{suffix}{extension}", &stem[..stem.len().min(room)]);
        n += 1;
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filing::Attachment;
    use crate::filing::test_support::request;

    fn filer(dir: &Path) -> FileDropFiler {
        FileDropFiler::new(&FileDropRoute {
            kind: "police".into(),
            dir: dir.to_path_buf(),
        })
        .unwrap()
    }

    fn manifest(dir: &Path) -> serde_json::Value {
        serde_json::from_slice(&fs::read(dir.join(MANIFEST_NAME)).unwrap()).unwrap()
    }

    #[test]
    fn layout_and_manifest() {
        let root = tempfile::tempdir().unwrap();
        let outbox = root.path().join("outbox");
        let req = request("lw-police-0123456789abcdef");

        let receipt = filer(&outbox).file(&req).unwrap();

        let packet = outbox.join(&req.packet_id);
        assert_eq!(receipt.channel, "file_drop");
        assert_eq!(
            receipt.message_id.as_deref(),
            Some(packet.to_str().unwrap())
        );
        assert_eq!(
            fs::read_to_string(packet.join("body.txt")).unwrap(),
            req.body_text
        );
        for attachment in &req.attachments {
            assert_eq!(
                fs::read(packet.join(&attachment.name)).unwrap(),
                attachment.bytes
            );
        }
        let mut names: Vec<_> = fs::read_dir(&packet)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["body.txt", "evidence.json", "manifest.json", "report.pdf"]
        );
        // Nothing left behind but the packet.
        assert_eq!(fs::read_dir(&outbox).unwrap().count(), 1);

        let m = manifest(&packet);
        assert_eq!(m["version"], 1);
        assert_eq!(m["packet_id"], req.packet_id.as_str());
        assert_eq!(m["kind"], "police");
        let files = m["files"].as_array().unwrap();
        assert_eq!(files.len(), 3);
        assert_eq!(files[0]["name"], "body.txt");
        assert!(files[0]["original_name"].is_null());
        for (entry, attachment) in files[1..].iter().zip(&req.attachments) {
            assert_eq!(entry["name"], attachment.name.as_str());
            assert_eq!(entry["original_name"], attachment.name.as_str());
            assert_eq!(entry["size"], attachment.bytes.len());
            assert_eq!(entry["sha256"], sha256_hex(&attachment.bytes).as_str());
            assert_eq!(entry["content_type"], attachment.content_type.as_str());
        }
    }

    #[test]
    fn hostile_names_stay_inside_the_packet_directory() {
        let root = tempfile::tempdir().unwrap();
        let outbox = root.path().join("outbox");
        let long = format!("{}.pdf", "x".repeat(5000));
        let hostile = [
            "../../etc/passwd",
            "/abs",
            "a\0b",
            long.as_str(),
            "..",
            ".",
            "",
            "body.txt",
            "MANIFEST.json",
            "evidence.json",
            "Evidence.JSON",
            "报案材料.pdf",
            "..\\..\\windows\\win.ini",
            "line\nbreak\r.txt",
            "-rf",
        ];
        let mut req = request("lw-police-1");
        req.attachments = hostile
            .iter()
            .enumerate()
            .map(|(i, name)| Attachment {
                name: name.to_string(),
                content_type: "application/octet-stream".into(),
                bytes: vec![i as u8; i + 1],
            })
            .collect();

        filer(&outbox).file(&req).unwrap();

        // Only the packet directory appeared, and it holds only plain files with safe names.
        assert_eq!(fs::read_dir(&outbox).unwrap().count(), 1);
        assert!(!root.path().join("etc").exists());
        let packet = outbox.join(&req.packet_id);
        let m = manifest(&packet);
        let files = m["files"].as_array().unwrap();
        assert_eq!(files.len(), hostile.len() + 1);
        let mut seen = HashSet::new();
        for (i, entry) in files.iter().enumerate().skip(1) {
            let name = entry["name"].as_str().unwrap();
            assert!(seen.insert(name.to_ascii_lowercase()), "duplicate {name}");
            assert!(!name.is_empty() && name.len() <= MAX_NAME_BYTES, "{name}");
            assert!(!name.starts_with(['.', '-', '_']), "{name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
                "{name}"
            );
            assert_eq!(entry["original_name"], hostile[i - 1]);
            let path = packet.join(name);
            assert_eq!(path.parent(), Some(packet.as_path()));
            assert!(fs::symlink_metadata(&path).unwrap().is_file());
            assert_eq!(fs::read(&path).unwrap(), vec![(i - 1) as u8; i]);
        }
        let names: Vec<&str> = files.iter().map(|f| f["name"].as_str().unwrap()).collect();
        assert_eq!(names[1], "etc_passwd");
        assert_eq!(names[2], "abs");
        assert_eq!(names[3], "a_b");
        assert!(names[4].ends_with(".pdf") && names[4].len() == MAX_NAME_BYTES);
        assert_eq!(names[8], "body-2.txt");
        assert_eq!(names[9], "MANIFEST-2.json");
        assert_eq!(names[11], "Evidence-2.JSON");
        assert_eq!(names[12], "attachment-12.pdf");
        assert_eq!(names[15], "rf");
        // body.txt and manifest.json are ours, untouched by the attachments named like them.
        assert_eq!(
            fs::read_to_string(packet.join("body.txt")).unwrap(),
            req.body_text
        );
    }

    #[test]
    fn filing_again_is_idempotent() {
        let root = tempfile::tempdir().unwrap();
        let req = request("lw-police-2");
        let filer = filer(root.path());
        let first = filer.file(&req).unwrap();
        let second = filer.file(&req).unwrap();
        assert_eq!(first, second);
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 1);
    }

    #[test]
    fn existing_directory_with_other_content_is_a_conflict() {
        let root = tempfile::tempdir().unwrap();
        let filer = filer(root.path());
        let req = request("lw-police-3");
        filer.file(&req).unwrap();
        let packet = root.path().join(&req.packet_id);
        let before = fs::read(packet.join("manifest.json")).unwrap();

        let mut changed = req.clone();
        changed.attachments[1].bytes = b"{}".to_vec();
        let error = filer.file(&changed).err().unwrap();
        assert!(matches!(error, FilingError::Conflict { .. }), "{error:?}");
        assert!(!error.retryable());
        assert!(error.to_string().contains("lw-police-3"), "{error}");
        assert_eq!(fs::read(packet.join("manifest.json")).unwrap(), before);

        // Same manifest, but a file was altered on disk.
        fs::write(packet.join("report.pdf"), b"tampered").unwrap();
        let error = filer.file(&req).err().unwrap();
        assert!(error.to_string().contains("report.pdf differs"), "{error}");

        // A directory someone else made.
        let foreign = request("lw-police-4");
        fs::create_dir(root.path().join(&foreign.packet_id)).unwrap();
        let error = filer.file(&foreign).err().unwrap();
        assert!(error.to_string().contains("no manifest.json"), "{error}");
    }

    #[test]
    fn unsafe_packet_id_is_refused_before_touching_disk() {
        let root = tempfile::tempdir().unwrap();
        let outbox = root.path().join("outbox");
        let mut req = request("lw-police-5");
        req.packet_id = "../escape".into();
        let error = filer(&outbox).file(&req).err().unwrap();
        assert!(matches!(error, FilingError::InvalidRequest { .. }));
        assert!(!outbox.exists());
        assert!(!root.path().join("escape").exists());
    }

    #[test]
    fn sanitiser_examples() {
        assert_eq!(sanitise_attachment_name("report.pdf", 1), "report.pdf");
        assert_eq!(
            sanitise_attachment_name("my report (final).pdf", 1),
            "my_report_final.pdf"
        );
        assert_eq!(
            sanitise_attachment_name("../../etc/passwd", 1),
            "etc_passwd"
        );
        assert_eq!(sanitise_attachment_name("..", 3), "attachment-3");
        assert_eq!(sanitise_attachment_name("截图.png", 2), "attachment-2.png");
        assert_eq!(sanitise_attachment_name(".bashrc", 1), "bashrc");
        assert_eq!(
            sanitise_attachment_name("archive.tar.gz", 1),
            "archive.tar.gz"
        );
    }
}
