//! Segment files: where ledger entries are stored on a POSIX file system.
//!
//! Layout of `ledger/seg-<first index, 20 digits>.log` (format version 1):
//!
//! ```text
//! header  : "LWSEG001" (8 bytes) ‖ first entry index (u64 LE)
//! record* : payload length (u32 LE) ‖ CRC-32 of (length bytes ‖ payload) (u32 LE) ‖ payload
//! ```
//!
//! Invariants:
//! - records are only ever appended; a batch is written with one `pwrite` and one `fdatasync`
//!   and only then counted, so a record that is counted is durable;
//! - a failed write is rolled back (`ftruncate` to the old length); if even that fails, or an
//!   fsync fails (its page-cache state can no longer be trusted), the store refuses every further
//!   append until it is reopened;
//! - on open every record is re-checked. Damage before the tail of the last segment is an error
//!   that names the entry. At the tail, an incomplete record is the normal trace of a crash in the
//!   middle of a write: a writable open moves those bytes to `ledger/quarantine/` (never deletes
//!   them), reports it, and cuts the segment back to the last whole record — unless a signed
//!   checkpoint already covers that entry, in which case it is damage, not a torn write.
//!
//! `EntryStore` is the narrow interface a database back-end would implement instead.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use super::LedgerError;
use crate::durable;

const MAGIC: &[u8; 8] = b"LWSEG001";
const HEADER_LEN: u64 = 16;
const FRAME_LEN: u64 = 8;

/// Storage of the ledger's entry bytes by index. Implementations must make `append_batch`
/// all-or-nothing and durable before it returns.
pub trait EntryStore: Send + Sync {
    /// Number of entries stored.
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Append `records` durably; returns the index of the first one.
    fn append_batch(&self, records: &[&[u8]]) -> Result<u64, LedgerError>;
    /// The bytes of entry `index`, re-checked against their checksum.
    fn read(&self, index: u64) -> Result<Vec<u8>, LedgerError>;
}

/// What a scan found at the end of the last segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub segment: PathBuf,
    pub offset: u64,
    pub bytes: u64,
    /// Index the first incomplete record would have had.
    pub index: u64,
    pub reason: String,
    /// Where the cut bytes were saved (writable opens only).
    pub saved_to: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy)]
pub enum OpenMode {
    /// Never change a file; a torn tail is reported, not cut.
    ReadOnly,
    /// Cut a torn tail, unless it lies below `protected_len` (entries covered by a checkpoint).
    Writable { protected_len: u64 },
}

struct Segment {
    path: PathBuf,
    file: File,
}

#[derive(Clone, Copy)]
struct Location {
    segment: u32,
    offset: u64,
    len: u32,
}

struct WriteState {
    /// Length of the last segment file that holds whole, durable records.
    tail_len: u64,
    poisoned: Option<String>,
}

pub struct SegmentStore {
    dir: PathBuf,
    max_segment_bytes: u64,
    max_entry_bytes: usize,
    segments: RwLock<Vec<Arc<Segment>>>,
    locations: RwLock<Vec<Location>>,
    writer: Mutex<WriteState>,
    writable: bool,
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> LedgerError + '_ {
    move |source| LedgerError::Io {
        path: path.display().to_string(),
        source,
    }
}

pub fn segment_name(first_index: u64) -> String {
    format!("seg-{first_index:020}.log")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    name.strip_prefix("seg-")?
        .strip_suffix(".log")?
        .parse()
        .ok()
}

enum FrameCheck {
    Whole(u32),
    /// Not enough bytes left for the record: a crash while writing it.
    Incomplete(String),
    /// A whole record whose bytes are wrong.
    Damaged(String),
}

fn check_frame(buf: &[u8], at: usize, max_entry: usize) -> FrameCheck {
    let rest = &buf[at..];
    if rest.iter().all(|&b| b == 0) {
        return FrameCheck::Incomplete(format!("{} zero bytes after the last record", rest.len()));
    }
    if rest.len() < FRAME_LEN as usize {
        return FrameCheck::Incomplete(format!(
            "record header cut short ({} of 8 bytes)",
            rest.len()
        ));
    }
    let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
    if len == 0 || len as usize > max_entry {
        return FrameCheck::Damaged(format!("record length {len} is impossible"));
    }
    let end = FRAME_LEN as usize + len as usize;
    if rest.len() < end {
        return FrameCheck::Incomplete(format!(
            "record of {len} bytes cut short ({} bytes present)",
            rest.len() - FRAME_LEN as usize
        ));
    }
    if frame_crc(&rest[..4], &rest[FRAME_LEN as usize..end]) != crc {
        return FrameCheck::Damaged("checksum mismatch".into());
    }
    FrameCheck::Whole(len)
}

fn frame_crc(len_bytes: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(len_bytes);
    h.update(payload);
    h.finalize()
}

fn encode_frame(out: &mut Vec<u8>, payload: &[u8]) {
    let len = (payload.len() as u32).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&frame_crc(&len, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

impl SegmentStore {
    /// Open (and in writable mode create) the segment files in `dir`, re-checking every record.
    pub fn open(
        dir: &Path,
        mode: OpenMode,
        max_segment_bytes: u64,
        max_entry_bytes: usize,
    ) -> Result<(SegmentStore, Option<TornTail>), LedgerError> {
        let writable = matches!(mode, OpenMode::Writable { .. });
        if writable {
            durable::create_dir_all_synced(dir).map_err(io_at(dir))?;
        }
        let mut names: Vec<(u64, PathBuf)> = Vec::new();
        if dir.is_dir() {
            for e in fs::read_dir(dir).map_err(io_at(dir))? {
                let e = e.map_err(io_at(dir))?;
                if let Some(first) = parse_segment_name(&e.file_name().to_string_lossy()) {
                    names.push((first, e.path()));
                }
            }
        }
        names.sort();

        let mut segments = Vec::new();
        let mut locations: Vec<Location> = Vec::new();
        let mut torn = None;
        let mut tail_len = 0;
        let count = names.len();
        for (n, (first, path)) in names.into_iter().enumerate() {
            let is_last = n + 1 == count;
            let buf = fs::read(&path).map_err(io_at(&path))?;
            if first != locations.len() as u64 {
                return Err(LedgerError::Corrupt {
                    index: locations.len() as u64,
                    segment: path.display().to_string(),
                    offset: 0,
                    reason: format!(
                        "segment starts at entry {first}, but the previous segments end at entry {}",
                        locations.len()
                    ),
                });
            }
            let mut header = MAGIC.to_vec();
            header.extend_from_slice(&first.to_le_bytes());
            if is_last && buf.len() < HEADER_LEN as usize && header.starts_with(&buf) {
                // A crash while a new segment was being started: it holds no entry yet.
                if writable {
                    fs::remove_file(&path).map_err(io_at(&path))?;
                    durable::sync_dir(dir).map_err(io_at(dir))?;
                }
                continue;
            }
            if buf.len() < HEADER_LEN as usize
                || &buf[..8] != MAGIC
                || buf[8..16] != first.to_le_bytes()
            {
                return Err(LedgerError::Corrupt {
                    index: first,
                    segment: path.display().to_string(),
                    offset: 0,
                    reason: "bad segment header".into(),
                });
            }
            let mut at = HEADER_LEN as usize;
            while at < buf.len() {
                let index = locations.len() as u64;
                match check_frame(&buf, at, max_entry_bytes) {
                    FrameCheck::Whole(len) => {
                        locations.push(Location {
                            segment: segments.len() as u32,
                            offset: at as u64 + FRAME_LEN,
                            len,
                        });
                        at += FRAME_LEN as usize + len as usize;
                    }
                    FrameCheck::Incomplete(reason) if is_last => {
                        torn = Some(TornTail {
                            segment: path.clone(),
                            offset: at as u64,
                            bytes: (buf.len() - at) as u64,
                            index,
                            reason,
                            saved_to: None,
                        });
                        break;
                    }
                    FrameCheck::Incomplete(reason) | FrameCheck::Damaged(reason) => {
                        return Err(LedgerError::Corrupt {
                            index,
                            segment: path.display().to_string(),
                            offset: at as u64,
                            reason,
                        });
                    }
                }
            }
            let file = OpenOptions::new()
                .read(true)
                .write(writable)
                .open(&path)
                .map_err(io_at(&path))?;
            tail_len = at as u64;
            segments.push(Arc::new(Segment { path, file }));
        }

        if let (Some(t), OpenMode::Writable { protected_len }) = (&mut torn, mode) {
            if t.index < protected_len {
                return Err(LedgerError::Corrupt {
                    index: t.index,
                    segment: t.segment.display().to_string(),
                    offset: t.offset,
                    reason: format!(
                        "{}, but a signed checkpoint covers {protected_len} entries: this is damage, not a torn write; restore the segment from backup",
                        t.reason
                    ),
                });
            }
            t.saved_to = Some(quarantine_and_cut(dir, t)?);
        }

        let store = SegmentStore {
            dir: dir.to_path_buf(),
            max_segment_bytes,
            max_entry_bytes,
            segments: RwLock::new(segments),
            locations: RwLock::new(locations),
            writer: Mutex::new(WriteState {
                tail_len,
                poisoned: None,
            }),
            writable,
        };
        if writable && store.segments_read().is_empty() {
            store.start_segment(0)?;
            store.lock_writer().tail_len = HEADER_LEN;
        }
        Ok((store, torn))
    }

    fn segments_read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<Segment>>> {
        self.segments.read().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_writer(&self) -> std::sync::MutexGuard<'_, WriteState> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn start_segment(&self, first_index: u64) -> Result<(), LedgerError> {
        let path = self.dir.join(segment_name(first_index));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_at(&path))?;
        let mut header = Vec::with_capacity(HEADER_LEN as usize);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&first_index.to_le_bytes());
        let written = file
            .write_all_at(&header, 0)
            .and_then(|_| file.sync_all())
            .and_then(|_| durable::sync_dir(&self.dir));
        if let Err(e) = written {
            // Leave no half-made segment behind (a full disk must not break the next open).
            let _ = fs::remove_file(&path);
            return Err(io_at(&path)(e));
        }
        self.segments
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::new(Segment { path, file }));
        Ok(())
    }

    /// Paths of the segment files, in order.
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.segments_read()
            .iter()
            .map(|s| s.path.clone())
            .collect()
    }

    /// The segment file holding entry `index` and the byte offset of its record header.
    pub fn position_of(&self, index: u64) -> Option<(PathBuf, u64)> {
        let loc = *self
            .locations
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(index as usize)?;
        let seg = self.segments_read().get(loc.segment as usize)?.clone();
        Some((seg.path.clone(), loc.offset - FRAME_LEN))
    }
}

/// Copy the torn bytes to `quarantine/`, then cut the segment back to its last whole record.
fn quarantine_and_cut(dir: &Path, torn: &TornTail) -> Result<PathBuf, LedgerError> {
    let qdir = dir.join("quarantine");
    durable::create_dir_all_synced(&qdir).map_err(io_at(&qdir))?;
    let seg_name = torn
        .segment
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let saved = qdir.join(format!(
        "{seg_name}.at-{}.{}.torn",
        torn.offset,
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ")
    ));
    let bytes = fs::read(&torn.segment).map_err(io_at(&torn.segment))?;
    let tail = bytes.get(torn.offset as usize..).unwrap_or(&[]);
    durable::write_atomic(&saved, tail, 0o600).map_err(io_at(&saved))?;
    let file = OpenOptions::new()
        .write(true)
        .open(&torn.segment)
        .map_err(io_at(&torn.segment))?;
    file.set_len(torn.offset).map_err(io_at(&torn.segment))?;
    file.sync_all().map_err(io_at(&torn.segment))?;
    Ok(saved)
}

impl EntryStore for SegmentStore {
    fn len(&self) -> u64 {
        self.locations
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .len() as u64
    }

    fn append_batch(&self, records: &[&[u8]]) -> Result<u64, LedgerError> {
        if !self.writable {
            return Err(LedgerError::ReadOnly);
        }
        for r in records {
            if r.is_empty() || r.len() > self.max_entry_bytes {
                return Err(LedgerError::EntryTooLarge {
                    size: r.len(),
                    max: self.max_entry_bytes,
                });
            }
        }
        let mut w = self.lock_writer();
        if let Some(why) = &w.poisoned {
            return Err(LedgerError::Poisoned(why.clone()));
        }
        let first_index = self.len();
        let batch_len: u64 = records.iter().map(|r| FRAME_LEN + r.len() as u64).sum();
        if w.tail_len > HEADER_LEN && w.tail_len + batch_len > self.max_segment_bytes {
            self.start_segment(first_index)?;
            w.tail_len = HEADER_LEN;
        }
        let seg = match self.segments_read().last() {
            Some(s) => s.clone(),
            None => return Err(LedgerError::Poisoned("no segment open".into())),
        };
        let mut buf = Vec::with_capacity(batch_len as usize);
        for r in records {
            encode_frame(&mut buf, r);
        }
        if let Err(e) = seg.file.write_all_at(&buf, w.tail_len) {
            // Roll back the partial write so the next batch does not land after garbage.
            if let Err(e2) = seg
                .file
                .set_len(w.tail_len)
                .and_then(|_| seg.file.sync_data())
            {
                w.poisoned = Some(format!(
                    "{}: write failed ({e}) and could not be rolled back ({e2})",
                    seg.path.display()
                ));
            }
            return Err(io_at(&seg.path)(e));
        }
        if let Err(e) = seg.file.sync_data() {
            // After a failed fsync the kernel may have dropped the dirty pages: nothing written
            // since the last good fsync can be trusted, so stop until a reopen re-checks the file.
            w.poisoned = Some(format!("{}: fsync failed: {e}", seg.path.display()));
            return Err(io_at(&seg.path)(e));
        }
        let seg_idx = (self.segments_read().len() - 1) as u32;
        let mut locs = self.locations.write().unwrap_or_else(|p| p.into_inner());
        let mut offset = w.tail_len;
        for r in records {
            locs.push(Location {
                segment: seg_idx,
                offset: offset + FRAME_LEN,
                len: r.len() as u32,
            });
            offset += FRAME_LEN + r.len() as u64;
        }
        w.tail_len = offset;
        Ok(first_index)
    }

    fn read(&self, index: u64) -> Result<Vec<u8>, LedgerError> {
        // The read guard must be gone before anything else takes the lock: a second read
        // lock on this thread, with the writer queued in between, deadlocks both.
        let found = self
            .locations
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(index as usize)
            .copied();
        let loc = found.ok_or_else(|| LedgerError::NoSuchEntry {
            index,
            size: self.len(),
        })?;
        let seg = self.segments_read()[loc.segment as usize].clone();
        let mut buf = vec![0u8; FRAME_LEN as usize + loc.len as usize];
        let start = loc.offset - FRAME_LEN;
        seg.file
            .read_exact_at(&mut buf, start)
            .map_err(io_at(&seg.path))?;
        match check_frame(&buf, 0, self.max_entry_bytes) {
            FrameCheck::Whole(len) if len == loc.len => Ok(buf.split_off(FRAME_LEN as usize)),
            FrameCheck::Whole(_) => Err(LedgerError::Corrupt {
                index,
                segment: seg.path.display().to_string(),
                offset: start,
                reason: "record length changed since open".into(),
            }),
            FrameCheck::Incomplete(reason) | FrameCheck::Damaged(reason) => {
                Err(LedgerError::Corrupt {
                    index,
                    segment: seg.path.display().to_string(),
                    offset: start,
                    reason,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_w(dir: &Path, protected: u64) -> (SegmentStore, Option<TornTail>) {
        SegmentStore::open(
            dir,
            OpenMode::Writable {
                protected_len: protected,
            },
            4096,
            1024,
        )
        .unwrap()
    }

    #[test]
    fn append_read_reopen_and_roll_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (s, torn) = open_w(dir.path(), 0);
        assert!(torn.is_none());
        let payloads: Vec<Vec<u8>> = (0..100)
            .map(|i| format!("entry {i} {}", "x".repeat(i)).into_bytes())
            .collect();
        for chunk in payloads.chunks(7) {
            let refs: Vec<&[u8]> = chunk.iter().map(|p| p.as_slice()).collect();
            s.append_batch(&refs).unwrap();
        }
        assert_eq!(s.len(), 100);
        assert!(
            s.segment_paths().len() > 1,
            "segments should roll at 4096 bytes"
        );
        drop(s);
        let (s, torn) = open_w(dir.path(), 0);
        assert!(torn.is_none());
        for (i, p) in payloads.iter().enumerate() {
            assert_eq!(&s.read(i as u64).unwrap(), p);
        }
    }

    /// Readers and the writer at once, bounded in count and time. A reader that took the
    /// location lock twice (once for the entry, once for the size) deadlocked with a writer
    /// queued between the two; the watchdog turns such a hang into a failure.
    #[test]
    fn reads_during_appends_never_deadlock() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = open_w(dir.path(), 0);
        s.append_batch(&[b"first"]).unwrap();
        let s = Arc::new(s);
        let (done, finished) = std::sync::mpsc::channel();
        let mut threads = Vec::new();
        for _ in 0..3 {
            let (s, done) = (s.clone(), done.clone());
            threads.push(std::thread::spawn(move || {
                for i in 0..20_000u64 {
                    assert_eq!(s.read(0).unwrap(), b"first");
                    // A read past the end names the size (the path that took the lock twice).
                    assert!(s.read(u64::MAX - i).is_err());
                }
                let _ = done.send(());
            }));
        }
        let writer = {
            let (s, done) = (s.clone(), done.clone());
            std::thread::spawn(move || {
                for _ in 0..2_000 {
                    s.append_batch(&[b"more"]).unwrap();
                }
                let _ = done.send(());
            })
        };
        for _ in 0..4 {
            finished
                .recv_timeout(std::time::Duration::from_secs(60))
                .expect("readers and writer deadlocked");
        }
        writer.join().unwrap();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(s.len(), 2_001);
    }

    #[test]
    fn torn_tail_is_quarantined_and_cut_unless_protected() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = open_w(dir.path(), 0);
        s.append_batch(&[b"one", b"two", b"three"]).unwrap();
        let path = s.segment_paths()[0].clone();
        drop(s);
        let full = fs::read(&path).unwrap();
        // cut in the middle of the last record, as a crash mid-write would
        fs::write(&path, &full[..full.len() - 2]).unwrap();

        // read-only: reported, untouched
        let (ro, torn) = SegmentStore::open(dir.path(), OpenMode::ReadOnly, 4096, 1024).unwrap();
        assert_eq!(ro.len(), 2);
        assert_eq!(torn.unwrap().index, 2);
        assert_eq!(fs::read(&path).unwrap().len(), full.len() - 2);

        // protected by a checkpoint over 3 entries: refused
        let err = SegmentStore::open(
            dir.path(),
            OpenMode::Writable { protected_len: 3 },
            4096,
            1024,
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("entry 2"), "{err}");

        // writable: cut and saved
        let (s, torn) = open_w(dir.path(), 2);
        let torn = torn.unwrap();
        let saved = fs::read(torn.saved_to.unwrap()).unwrap();
        assert_eq!(saved, &full[torn.offset as usize..full.len() - 2]);
        assert_eq!(s.len(), 2);
        assert_eq!(s.append_batch(&[b"four"]).unwrap(), 2);
        drop(s);
        let (s, torn) = open_w(dir.path(), 0);
        assert!(torn.is_none());
        assert_eq!(s.read(2).unwrap(), b"four");
    }

    #[test]
    fn damage_in_the_middle_names_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = open_w(dir.path(), 0);
        s.append_batch(&[b"alpha", b"bravo", b"charlie"]).unwrap();
        let (path, off) = s.position_of(1).unwrap();
        drop(s);
        let mut bytes = fs::read(&path).unwrap();
        bytes[off as usize + 9] ^= 0x40;
        fs::write(&path, &bytes).unwrap();
        let err = SegmentStore::open(dir.path(), OpenMode::ReadOnly, 4096, 1024)
            .err()
            .unwrap();
        let text = err.to_string();
        assert!(
            text.contains("entry 1") && text.contains("checksum"),
            "{text}"
        );
    }

    #[test]
    fn oversized_entry_refused_and_nothing_written() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = open_w(dir.path(), 0);
        let big = vec![1u8; 2000];
        assert!(matches!(
            s.append_batch(&[b"ok", &big]),
            Err(LedgerError::EntryTooLarge { .. })
        ));
        assert_eq!(s.len(), 0);
    }
}
