//! Reading a bundle's zip as hostile input.
//!
//! The central directory is parsed here, not by a general zip library, so that every rule is
//! checked before a single byte is inflated and nothing a library would silently tolerate gets
//! through (the `zip` crate, for one, keeps only the last of two members with the same name):
//!
//! - at most [`Limits::max_files`] members, counted from the end-of-central-directory record
//!   before the directory is read; a directory of at most 256 MiB;
//! - names: UTF-8, relative, `/`-separated, no `..` / `.` / empty components, no backslash,
//!   colon or control characters, at most 1024 bytes; no two names equal (or equal but for
//!   case, which collide when unpacked on many file systems); no name both a file and a folder;
//! - no symbolic links or other special files (Unix mode in the external attributes), no
//!   encryption, only stored and deflated members;
//! - the total uncompressed size at most [`Limits::max_bytes`]; a deflated member over 1 MiB
//!   may not claim more than 100 times its compressed size (zip bombs); a stored member's two
//!   sizes agree;
//! - every local header names the same file as its directory record, members do not overlap
//!   (the overlapping-member bomb) and lie before the directory;
//! - reading a member never yields more than its declared size, and a deflated member must
//!   inflate to exactly that size with the declared CRC-32. Stored members are not CRC-checked
//!   here: every file's SHA-256 is checked by the verifier, which subsumes it.
//!
//! The archive must start at offset 0 (no self-extractor prefix) and span one disk.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::BundleError;

/// Default cap on the number of members: far above a real case's (entries are packed into one
/// file; a member per blob), far below what would exhaust memory.
pub const DEFAULT_MAX_FILES: usize = 65_536;
/// Default cap on the total uncompressed size.
pub const DEFAULT_MAX_BYTES: u64 = 64 << 30;
/// A deflated member larger than this must not claim more than `MAX_RATIO` times its
/// compressed size.
const RATIO_FLOOR: u64 = 1 << 20;
const MAX_RATIO: u64 = 100;
const MAX_CENTRAL_DIRECTORY: u64 = 256 << 20;
const MAX_NAME_BYTES: usize = 1024;

const EOCD_SIG: u32 = 0x0605_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const LOCAL_SIG: u32 = 0x0403_4b50;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_files: usize,
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_files: DEFAULT_MAX_FILES,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Stored,
    Deflated,
}

/// One member of the archive, as its central directory record describes it.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    pub size: u64,
    pub compressed: u64,
    pub method: Method,
    pub crc32: u32,
    header_offset: u64,
    data_offset: u64,
    pub is_dir: bool,
}

/// An opened, checked archive. Members can be read concurrently (positional reads).
pub struct SafeZip {
    file: File,
    members: Vec<Member>,
    by_name: HashMap<String, usize>,
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

impl SafeZip {
    pub fn open(path: &Path, limits: Limits) -> Result<SafeZip, BundleError> {
        let shown = path.display().to_string();
        let refuse = |reason: String| BundleError::Refused {
            path: shown.clone(),
            reason,
        };
        let file = File::open(path).map_err(super::io_at(path))?;
        let meta = file.metadata().map_err(super::io_at(path))?;
        if !meta.is_file() {
            return Err(refuse("not a regular file".into()));
        }
        let parsed = parse(&file, meta.len(), limits).map_err(refuse)?;
        Ok(SafeZip {
            file,
            by_name: parsed
                .iter()
                .enumerate()
                .map(|(i, m)| (m.name.clone(), i))
                .collect(),
            members: parsed,
        })
    }

    /// Every member that is a file (directory entries are accepted but carry nothing).
    pub fn files(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| !m.is_dir)
    }

    pub fn get(&self, name: &str) -> Option<&Member> {
        self.by_name
            .get(name)
            .and_then(|&i| self.members.get(i))
            .filter(|m| !m.is_dir)
    }

    /// A reader of the member's original bytes. It fails (`InvalidData`) rather than yield more
    /// or fewer bytes than declared, or bytes whose CRC-32 is wrong (deflated members).
    pub fn reader<'a>(&'a self, m: &Member) -> MemberReader<'a> {
        let raw = Positional {
            file: &self.file,
            pos: m.data_offset,
            end: m.data_offset.saturating_add(m.compressed),
        };
        let inner: Box<dyn Read + Send + 'a> = match m.method {
            Method::Stored => Box::new(raw),
            Method::Deflated => Box::new(flate2::read::DeflateDecoder::new_with_buf(
                raw,
                vec![0u8; 64 * 1024],
            )),
        };
        MemberReader {
            inner,
            remaining: m.size,
            crc: (m.method == Method::Deflated).then(crc32fast::Hasher::new),
            expected_crc: m.crc32,
            done: false,
        }
    }
}

/// Positional reads of one byte range of the file.
struct Positional<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for Positional<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.end.saturating_sub(self.pos);
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the zip file ends inside this member",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

pub struct MemberReader<'a> {
    inner: Box<dyn Read + Send + 'a>,
    remaining: u64,
    crc: Option<crc32fast::Hasher>,
    expected_crc: u32,
    done: bool,
}

fn invalid(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_string())
}

impl Read for MemberReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.remaining == 0 {
            // Declared size reached: the stream must end here, and the CRC must hold.
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? != 0 {
                return Err(invalid("holds more bytes than its declared size"));
            }
            if let Some(h) = self.crc.take()
                && h.finalize() != self.expected_crc
            {
                return Err(invalid("CRC-32 does not match (damaged inside the zip)"));
            }
            self.done = true;
            return Ok(0);
        }
        let want = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(invalid("ends before its declared size"));
        }
        if let Some(h) = &mut self.crc {
            h.update(&buf[..n]);
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

fn read_exact_at(file: &File, len: usize, at: u64) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, at)
        .map_err(|e| format!("cannot read {len} bytes at offset {at}: {e}"))?;
    Ok(buf)
}

struct Directory {
    entries: u64,
    size: u64,
    offset: u64,
    /// Where the directory must end (the zip64 record or the end record).
    end: u64,
}

/// Finds the end-of-central-directory record (and its zip64 form) from the end of the file.
fn find_directory(file: &File, len: u64) -> Result<Directory, String> {
    if len < 22 {
        return Err("not a zip file (too short)".into());
    }
    let tail_len = len.min(22 + 65_535);
    let tail = read_exact_at(file, tail_len as usize, len - tail_len)?;
    // The record is 22 bytes plus a comment that must reach exactly to the end of the file.
    let mut at = None;
    for pos in (0..=tail.len() - 22).rev() {
        if le32(&tail, pos) == EOCD_SIG && pos + 22 + le16(&tail, pos + 20) as usize == tail.len() {
            at = Some(pos);
            break;
        }
    }
    let Some(pos) = at else {
        return Err("not a zip file (no end-of-central-directory record)".into());
    };
    let eocd_offset = len - tail_len + pos as u64;
    let e = &tail[pos..];
    let (disk, cd_disk) = (le16(e, 4), le16(e, 6));
    let (on_disk, total) = (le16(e, 8), le16(e, 10));
    let (size, offset) = (le32(e, 12), le32(e, 16));
    if disk != 0 || cd_disk != 0 || on_disk != total {
        return Err("multi-disk archives are not bundles".into());
    }
    let zip64 = total == 0xFFFF || size == 0xFFFF_FFFF || offset == 0xFFFF_FFFF;
    if !zip64 {
        return Ok(Directory {
            entries: total.into(),
            size: size.into(),
            offset: offset.into(),
            end: eocd_offset,
        });
    }
    if eocd_offset < 20 {
        return Err("zip64 archive without its locator".into());
    }
    let loc = read_exact_at(file, 20, eocd_offset - 20)?;
    if le32(&loc, 0) != ZIP64_LOCATOR_SIG || le32(&loc, 4) != 0 || le32(&loc, 16) > 1 {
        return Err("zip64 archive without a valid locator".into());
    }
    let z_offset = le64(&loc, 8);
    if z_offset > eocd_offset.saturating_sub(20 + 56) {
        return Err("zip64 end record lies outside the file".into());
    }
    let z = read_exact_at(file, 56, z_offset)?;
    if le32(&z, 0) != ZIP64_EOCD_SIG {
        return Err("zip64 end record not found where the locator points".into());
    }
    if le32(&z, 16) != 0 || le32(&z, 20) != 0 || le64(&z, 24) != le64(&z, 32) {
        return Err("multi-disk archives are not bundles".into());
    }
    Ok(Directory {
        entries: le64(&z, 32),
        size: le64(&z, 40),
        offset: le64(&z, 48),
        end: z_offset,
    })
}

/// Why a name may not appear in a bundle, if it may not.
pub fn check_name(name: &str) -> Result<(), String> {
    let shown = || format!("{:?}", name.chars().take(120).collect::<String>());
    if name.is_empty() {
        return Err("a member has an empty name".into());
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "member name {} is longer than {MAX_NAME_BYTES} bytes",
            shown()
        ));
    }
    if name.starts_with('/') {
        return Err(format!("member {} has an absolute path", shown()));
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_control() || matches!(c, '\\' | ':'))
    {
        return Err(format!(
            "member {} contains {:?}, which no bundle name holds (path tricks on some systems)",
            shown(),
            c
        ));
    }
    let body = name.strip_suffix('/').unwrap_or(name);
    for part in body.split('/') {
        match part {
            ".." => {
                return Err(format!(
                    "member {} leaves the bundle's folder (path traversal)",
                    shown()
                ));
            }
            "." | "" => return Err(format!("member {} has an empty or '.' component", shown())),
            _ => {}
        }
    }
    Ok(())
}

fn parse(file: &File, len: u64, limits: Limits) -> Result<Vec<Member>, String> {
    let dir = find_directory(file, len)?;
    let max = limits.max_files as u64;
    if dir.entries > max {
        return Err(format!(
            "the zip holds {} members; a bundle may hold at most {max} (raise with --max-files)",
            dir.entries
        ));
    }
    if dir.size > MAX_CENTRAL_DIRECTORY {
        return Err(format!(
            "central directory of {} bytes is over the {MAX_CENTRAL_DIRECTORY}-byte limit",
            dir.size
        ));
    }
    if dir.offset.checked_add(dir.size).is_none_or(|e| e > dir.end) {
        return Err("central directory lies outside the file".into());
    }
    let cd = read_exact_at(file, dir.size as usize, dir.offset)?;
    let mut members = Vec::with_capacity(dir.entries as usize);
    let mut at = 0usize;
    for n in 0..dir.entries {
        let m = parse_central(&cd, &mut at).map_err(|e| format!("member {}: {e}", n + 1))?;
        members.push(m);
    }
    if at != cd.len() {
        return Err("central directory size does not match its records".into());
    }

    // Names: unique, also ignoring case; no file that is also a folder.
    let mut exact: HashSet<&str> = HashSet::new();
    let mut folded: HashMap<String, &str> = HashMap::new();
    for m in &members {
        if !exact.insert(&m.name) {
            return Err(format!("duplicate member name {:?}", m.name));
        }
        let key = m.name.to_lowercase();
        if let Some(other) = folded.insert(key, &m.name) {
            return Err(format!(
                "member names {:?} and {:?} differ only in case",
                other, m.name
            ));
        }
    }
    let files: HashSet<&str> = members
        .iter()
        .filter(|m| !m.is_dir)
        .map(|m| m.name.as_str())
        .collect();
    for name in &files {
        let mut prefix = *name;
        while let Some((parent, _)) = prefix.rsplit_once('/') {
            if files.contains(parent) {
                return Err(format!("{parent:?} is both a file and a folder"));
            }
            prefix = parent;
        }
    }

    // Sizes: the bomb guards, before anything is inflated.
    let mut total: u64 = 0;
    for m in &members {
        if m.is_dir && m.size != 0 {
            return Err(format!("folder entry {:?} carries data", m.name));
        }
        match m.method {
            Method::Stored if m.size != m.compressed => {
                return Err(format!(
                    "stored member {:?} declares two different sizes",
                    m.name
                ));
            }
            Method::Deflated
                if m.size > RATIO_FLOOR && m.size / m.compressed.max(1) > MAX_RATIO =>
            {
                return Err(format!(
                    "member {:?} claims {} bytes from {} compressed (ratio over {MAX_RATIO}: a zip bomb)",
                    m.name, m.size, m.compressed
                ));
            }
            _ => {}
        }
        total = total.saturating_add(m.size);
        if total > limits.max_bytes {
            return Err(format!(
                "the members add up to more than {} bytes uncompressed (raise with --max-bytes)",
                limits.max_bytes
            ));
        }
    }

    // Local headers: same name and method as the directory says; members in order, apart.
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.sort_by_key(|&i| members[i].header_offset);
    for (k, &i) in order.iter().enumerate() {
        let next_start = order
            .get(k + 1)
            .map(|&j| members[j].header_offset)
            .unwrap_or(dir.offset);
        let m = &mut members[i];
        if m.header_offset >= dir.offset {
            return Err(format!("member {:?} starts inside the directory", m.name));
        }
        let head = read_exact_at(file, 30, m.header_offset)?;
        if le32(&head, 0) != LOCAL_SIG {
            return Err(format!("member {:?} has no local header", m.name));
        }
        let local_method = le16(&head, 8);
        let (n, x) = (le16(&head, 26) as u64, le16(&head, 28) as u64);
        let local_name = read_exact_at(file, n as usize, m.header_offset + 30)?;
        if local_name != m.name.as_bytes() {
            return Err(format!(
                "member {:?}: its local header names {:?} (two names for one file)",
                m.name,
                String::from_utf8_lossy(&local_name)
            ));
        }
        let expected = if m.method == Method::Stored { 0 } else { 8 };
        if local_method != expected {
            return Err(format!(
                "member {:?}: local header and directory disagree on compression",
                m.name
            ));
        }
        m.data_offset = m.header_offset + 30 + n + x;
        let end = m.data_offset.saturating_add(m.compressed);
        if end > next_start {
            return Err(format!(
                "member {:?} overlaps the next member (overlapping-member zip bomb)",
                m.name
            ));
        }
    }
    Ok(members)
}

fn parse_central(cd: &[u8], at: &mut usize) -> Result<Member, String> {
    let h = cd
        .get(*at..*at + 46)
        .ok_or("central directory ends early")?;
    if le32(h, 0) != CENTRAL_SIG {
        return Err("bad central directory record".into());
    }
    let made_by = le16(h, 4);
    let flags = le16(h, 8);
    let method = le16(h, 10);
    let crc32 = le32(h, 16);
    let mut compressed = u64::from(le32(h, 20));
    let mut size = u64::from(le32(h, 24));
    let (n, x, c) = (
        le16(h, 28) as usize,
        le16(h, 30) as usize,
        le16(h, 32) as usize,
    );
    let disk = le16(h, 34);
    let external = le32(h, 38);
    let mut header_offset = u64::from(le32(h, 42));
    let var = cd
        .get(*at + 46..*at + 46 + n + x + c)
        .ok_or("central directory ends early")?;
    *at += 46 + n + x + c;
    let name_bytes = &var[..n];
    let extra = &var[n..n + x];
    let name = std::str::from_utf8(name_bytes)
        .map_err(|_| {
            format!(
                "name {:?} is not UTF-8",
                String::from_utf8_lossy(name_bytes)
            )
        })?
        .to_string();
    check_name(&name)?;
    if flags & 0x0001 != 0 || flags & 0x0040 != 0 {
        return Err(format!("{name:?} is encrypted"));
    }
    let method = match method {
        0 => Method::Stored,
        8 => Method::Deflated,
        other => return Err(format!("{name:?} uses compression method {other}")),
    };
    // Unix mode in the high half of the external attributes (when made on Unix).
    if made_by >> 8 == 3 {
        let kind = (external >> 16) & 0o170_000;
        match kind {
            0o120_000 => return Err(format!("{name:?} is a symbolic link")),
            0 | 0o100_000 | 0o040_000 => {}
            _ => return Err(format!("{name:?} is a special file (mode {kind:o})")),
        }
    }
    // Zip64 extended information (APPNOTE 4.5.3): only the fields saturated above, in order.
    let mut e = extra;
    while e.len() >= 4 {
        let (id, len) = (le16(e, 0), le16(e, 2) as usize);
        let data = e.get(4..4 + len).ok_or("malformed extra field")?;
        if id == 0x0001 {
            let mut k = 0;
            let mut next = |what: &str| -> Result<u64, String> {
                let v = data
                    .get(k..k + 8)
                    .map(|b| le64(b, 0))
                    .ok_or(format!("zip64 field {what} missing"))?;
                k += 8;
                Ok(v)
            };
            if size == 0xFFFF_FFFF {
                size = next("size")?;
            }
            if compressed == 0xFFFF_FFFF {
                compressed = next("compressed size")?;
            }
            if header_offset == 0xFFFF_FFFF {
                header_offset = next("offset")?;
            }
        }
        e = &e[4 + len..];
    }
    if disk != 0 && disk != 0xFFFF {
        return Err(format!("{name:?} lies on another disk"));
    }
    let is_dir = name.ends_with('/');
    Ok(Member {
        name,
        size,
        compressed,
        method,
        crc32,
        header_offset,
        data_offset: 0,
        is_dir,
    })
}
