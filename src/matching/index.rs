//! The local blind index: order records turned into keyed tokens and non-personal metadata,
//! stored as flat binary files in one directory, built by a resumable, parallel import.
//!
//! # Directory layout
//!
//! - `manifest.json`: format version, the key check value, the fingerprint of the records file
//!   (size + SHA-256 of its first MiB), the finished chunks (each with the input byte offset
//!   and line it ends at), the first 1000 skipped rows, the size of the postings file once
//!   built, and the access log if imported. Replaced atomically (write temp, fsync, rename,
//!   fsync directory).
//! - `chunk-NNNNN.lwm`: one file per chunk of input rows (default 1M rows). Written to a temp
//!   file, fsynced, renamed, and only then recorded in the manifest — so a chunk is either
//!   fully there and listed, or ignored and rebuilt.
//! - `postings.lwp`: every order's postings (token → orders), built from the chunk files when
//!   the last one is recorded, written the same way (format in [`postings`]).
//! - `access.lwa`: the access log, if imported.
//!
//! # Chunk file
//!
//! A 16-byte preamble (`LWMCHK01`, version u32 = 7, section count u32 = 8), then `orders` u32,
//! reserved u32, `first_ref` u64, and a table of (offset u64, length u64) per section; all
//! integers little-endian. Sections:
//!
//! | # | section | content |
//! |---|---------|---------|
//! | 0 | forward | one 80-byte record per order (layout at [`FWD_SIZE`]) |
//! | 1 | address | u32 address tokens of all orders, back to back |
//! | 2 | ids     | order id bytes, back to back |
//! | 3 | time | (city u32, created_at i64, merchant u32, rider u32, partner u32) sorted |
//! | 4 | time fences | (city u32, created_at i64) of every 128th time entry |
//! | 5 | dictionary | JSON array of the metadata strings this chunk introduced |
//! | 6 | days | one 32-byte entry per (city, day) with orders, sorted by (city, day): city u32, orders u32, day i64 (UTC, `created_at` div 86400), first count u32, merchants u32, riders u32, partners u32 |
//! | 7 | day counts | (actor id u32, orders u32) per (city, day) entry, from its first count on: its merchants, then riders, then partners, each in order of first appearance in the time section (id 0, no actor, is left out) |
//!
//! Metadata strings (city, merchant, rider, partner ids) are numbered in a dictionary global to
//! the index: id 0 is the empty string, and each chunk lists the strings it added, in order,
//! so opening replays the dictionary chunk by chunk. An order's global reference is the
//! chunk's `first_ref` plus its position in the chunk; an index holds at most 2^32 − 1 orders.
//!
//! # Reading
//!
//! Every file is memory-mapped read-only when the index is opened (the soundness argument is
//! at `map_file`); opening checks that each section lies inside its file and that the
//! fixed-size sections have the sizes the order count implies, and every offset read from a
//! record is checked against its section before use, so a damaged file gives a
//! [`MatchError::Index`], never an out-of-bounds read. Only the fences, a directory of them,
//! dictionaries and small tables are copied into memory, so the heap stays small; the maps are
//! populated at open (every page mapped, read from disk if the page cache lacks it), so checks
//! never stop on a page fault. Opening a 10M-order index whose files are in the page cache
//! takes ~0.1 s; its ~2.3 GB count in the process's resident memory as shared file pages.
//!
//! A token lookup reads one run of the postings file, whatever the number of chunks: it finds
//! its fences through a directory by the token's top bits (tokens are uniform keyed hashes, so
//! a bucket holds one or two fences) and reads one or two blocks of 128 postings; a
//! masked-phone, name or pinyin lookup narrowed to a city then takes the city's part of the
//! run by binary search (those postings are sorted by token, city, order; names and
//! pinyin carry the district key too, so a name narrowed to a district keeps only that
//! district's and the district-less postings of the city's part);
//! [`RecordSource::candidates`] then reads one forward record per candidate straight from the
//! maps into a [`CandidateSet`] (no allocation or system call per order, on every core) and
//! leaves the address tokens in the map, where the matcher reads them only for candidates
//! whose city and district agree with a row; [`RecordSource::details`] reads order ids,
//! metadata strings and access events only for the orders a check matched.
//!
//! Base counts ([`RecordSource::base_counts`]) add up the day sections for every whole UTC day
//! inside the window and scan the time section only for the partial days at either end, so a
//! long window costs one entry per actor and day instead of one per order. Both paths count
//! exactly the same orders: the day sections are built from the time section at import.
//!
//! # Import pipeline
//!
//! One reader thread cuts the input into batches of 4096 rows (stored flat, no allocation per
//! row); worker threads (one per core by default) parse, normalise and blind them; the calling
//! thread merges the batches back in input order into the current chunk (interning metadata
//! strings); a writer thread sorts and writes each finished chunk, after which the calling
//! thread records it in the manifest and reports progress. Memory is bounded by two chunks in
//! flight plus a few batches per thread (about 0.5 GB at the default chunk size). When the
//! last chunk is recorded, the postings file is built from the chunks on every core (see
//! [`postings`]), recorded, and only then is the index complete.
//!
//! # Invariants
//!
//! - No raw name, phone or address is ever written: only tokens (see [`super::blind`]) and
//!   order metadata that is not personal data (order id, time, city, merchant / rider / partner
//!   ids, canary partner). Skip reasons never quote field values.
//! - The key is never written; the manifest holds only its check value, and [`LocalIndex::open`]
//!   refuses another key.
//! - The same records file and chunk size give byte-identical files, whether the import ran in
//!   one go or was interrupted and resumed (rows are processed in parallel but merged in input
//!   order; all sorts are total).
//! - Every input row is counted: imported, or skipped with its line number and reason.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use memmap2::Mmap;

mod postings;
use postings::PostingsReader;
use serde::{Deserialize, Serialize};

use super::blind::{Blinder, PieceHasher, TokenCache};
use super::normalise;
use super::records::{self, ColumnMap, RawBatch, RowReader, SourceInfo};
use super::{
    AccessEvent, ActorCount, ActorRef, BaseCounts, BlindKey, Candidate, CandidateSet, MatchError,
    OrderDetails, RecordSource, Token, TokenQuery, par_runs,
};

/// Rows per chunk by default: about 250 MB of index per chunk, built in memory.
pub const DEFAULT_CHUNK_ROWS: u64 = 1_000_000;
/// Rows per unit of work handed to a worker thread.
const BATCH_ROWS: usize = 4096;
/// Bytes per unit of work at most (rows with huge fields).
const BATCH_BYTES: usize = 8 << 20;
/// One fence per this many entries of a sorted section.
const FENCE: usize = 128;
/// Skipped rows kept with their reasons (the total is always counted).
const MAX_SKIPPED_KEPT: usize = 1000;
/// Orders returned per token when a query does not say.
pub const DEFAULT_LIMIT_PER_TOKEN: u32 = 1000;
/// Most orders returned per token whatever the query says.
pub const MAX_LIMIT_PER_TOKEN: u32 = 100_000;
/// Most tokens in one query.
pub const MAX_QUERY_TOKENS: usize = 100_000;
/// Longest order id or metadata string accepted, in bytes.
const MAX_META_BYTES: usize = 256;

/// Version 2: the order-id hash became non-cryptographic. Version 3: the day sections (per city
/// and day actor counts, for base rates). Version 4: name and pinyin postings carry the order's
/// city. Version 5: so do masked-phone postings. Version 6: name and pinyin postings also
/// carry the district key. Version 7: postings leave the chunk files for one postings file
/// for the whole index. Indexes of another version are refused.
const FORMAT_VERSION: u32 = 7;
const MANIFEST: &str = "manifest.json";
const ACCESS_FILE: &str = "access.lwa";
const CHUNK_MAGIC: &[u8; 8] = b"LWMCHK01";
const ACCESS_MAGIC: &[u8; 8] = b"LWMACC01";

/// Size of one forward record. Layout (little-endian): created_at i64 @0; phone, masked, name,
/// pinyin, district tokens u64 @8..48 (0 = absent); city, merchant, rider, partner, canary
/// dictionary ids u32 @48..68; address offset u32 @68 (in tokens, within the chunk); order id
/// offset u32 @72 (bytes); address length u16 @76; order id length u16 @78.
pub const FWD_SIZE: usize = 80;
const POSTING_SIZE: usize = 12;
/// A masked-phone posting: the order's city id between token and order.
const CITY_POSTING_SIZE: usize = 16;
/// A name or pinyin posting: the order's city id and district key between token and order.
const PLACE_POSTING_SIZE: usize = 20;
const TIME_SIZE: usize = 24;
const TIME_FENCE_SIZE: usize = 12;
const ACCESS_EVENT_SIZE: usize = 36;
const DAY_SIZE: usize = 32;
const DAY_COUNT_SIZE: usize = 8;
/// The day of the day sections: UTC days, `created_at.div_euclid(DAY_SECS)`.
const DAY_SECS: i64 = 86_400;

// Section numbers of a chunk file.
const S_FWD: usize = 0;
const S_ADDR: usize = 1;
const S_IDS: usize = 2;
const S_TIME: usize = 3;
const S_TIME_FENCE: usize = 4;
const S_DICT: usize = 5;
const S_DAYS: usize = 6;
const S_DAY_COUNTS: usize = 7;
const N_SECTIONS: usize = 8;
const CHUNK_HEADER: usize = 8 + 4 + 4 + 4 + 4 + 8 + N_SECTIONS * 16;

// Posting kinds.
const P_PHONE: usize = 0;
const P_MASKED: usize = 1;
const P_NAME: usize = 2;
const P_PINYIN: usize = 3;
const P_OID: usize = 4;
const N_POSTINGS: usize = 5;

/// Whether postings of `kind` carry the order's city.
fn has_city(kind: usize) -> bool {
    kind == P_MASKED || has_district(kind)
}

/// Whether postings of `kind` carry the order's district key (after the city).
fn has_district(kind: usize) -> bool {
    kind == P_NAME || kind == P_PINYIN
}

/// Bytes per posting of `kind`; the local order number is always the last four.
fn posting_size(kind: usize) -> usize {
    if has_district(kind) {
        PLACE_POSTING_SIZE
    } else if has_city(kind) {
        CITY_POSTING_SIZE
    } else {
        POSTING_SIZE
    }
}

/// The district key a posting carries: the low 32 bits of the district token (never 0), or 0
/// for an order without a district. Two districts sharing a key only widen a lookup; the
/// matcher compares the full tokens.
fn district_key(token: u64) -> u32 {
    if token == 0 { 0 } else { (token as u32).max(1) }
}

/// The first position in `lo..hi` where `below` turns false (`below` must be true for a
/// prefix of the range and false after it).
fn lower_bound(mut lo: usize, mut hi: usize, below: impl Fn(usize) -> bool) -> usize {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if below(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

// Access file sections.
const A_EVENTS: usize = 0;
const A_FENCE: usize = 1;
const A_DICT: usize = 2;
const A_SECTIONS: usize = 3;
const ACCESS_HEADER: usize = 8 + 4 + 4 + 8 + A_SECTIONS * 16;

/// Access-log actor kinds, in the order of their u8 codes.
const ACTOR_KINDS: [&str; 4] = ["staff", "merchant", "rider", "partner"];
const ACTIONS: [&str; 2] = ["view", "export"];

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    /// Data rows read from the file (all runs, when resumed).
    pub rows: u64,
    /// Rows imported (orders, or access events).
    pub imported: u64,
    /// (line, why) of the first 1000 skipped rows.
    pub skipped: Vec<(u64 /*line*/, String /*why*/)>, /* first 1000 kept */
    /// All skipped rows.
    pub skipped_total: u64,
    /// When this run continued an earlier one: the rows that run had already finished.
    pub resumed_from: Option<u64>,
}

/// Tuning for [`LocalIndex::import_with`].
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Input rows per chunk (the unit of resumption). Part of the index's identity: resuming
    /// with another value is refused.
    pub chunk_rows: u64,
    /// Worker threads for parsing and HMAC (the reader and the merging thread come on top).
    pub threads: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            chunk_rows: DEFAULT_CHUNK_ROWS,
            threads: super::cores(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    key_check: String,
    source: SourceInfo,
    chunk_rows: u64,
    chunks: Vec<ChunkInfo>,
    skipped: Vec<(u64, String)>,
    complete: bool,
    /// Size of the postings file, recorded with `complete` once it is built.
    postings_bytes: Option<u64>,
    access_log: Option<AccessInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ChunkInfo {
    file: String,
    first_ref: u64,
    orders: u64,
    rows: u64,
    skipped: u64,
    end_offset: u64,
    end_line: u64,
    bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct AccessInfo {
    file: String,
    source: SourceInfo,
    rows: u64,
    events: u64,
    skipped_total: u64,
    skipped: Vec<(u64, String)>,
    bytes: u64,
}

impl Manifest {
    fn report(&self, resumed_from: Option<u64>) -> ImportReport {
        let rows: u64 = self.chunks.iter().map(|c| c.rows).sum();
        let imported: u64 = self.chunks.iter().map(|c| c.orders).sum();
        ImportReport {
            rows,
            imported,
            skipped: self.skipped.clone(),
            skipped_total: rows - imported,
            resumed_from,
        }
    }
}

fn read_manifest(dir: &Path) -> Result<Option<Manifest>, MatchError> {
    let path = dir.join(MANIFEST);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| MatchError::index(dir, format!("unreadable manifest: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(MatchError::io(path, e)),
    }
}

/// Writes `bytes` to `dir/name` atomically: temp file, fsync, rename, fsync the directory.
fn write_atomic(
    dir: &Path,
    name: &str,
    write: impl FnOnce(&mut BufWriter<&File>) -> std::io::Result<()>,
) -> Result<u64, MatchError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let file = File::create(&tmp).map_err(|e| MatchError::io(&tmp, e))?;
    {
        let mut w = BufWriter::with_capacity(1 << 20, &file);
        write(&mut w).map_err(|e| MatchError::io(&tmp, e))?;
        w.flush().map_err(|e| MatchError::io(&tmp, e))?;
    }
    file.sync_all().map_err(|e| MatchError::io(&tmp, e))?;
    let bytes = file.metadata().map_err(|e| MatchError::io(&tmp, e))?.len();
    drop(file);
    fs::rename(&tmp, &path).map_err(|e| MatchError::io(&path, e))?;
    sync_dir(dir)?;
    Ok(bytes)
}

fn sync_dir(dir: &Path) -> Result<(), MatchError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| MatchError::io(dir, e))
}

fn write_manifest(dir: &Path, m: &Manifest) -> Result<(), MatchError> {
    let bytes = serde_json::to_vec_pretty(m)
        .map_err(|e| MatchError::Internal(format!("manifest serialisation: {e}")))?;
    write_atomic(dir, MANIFEST, |w| w.write_all(&bytes)).map(|_| ())
}

/// An index written by another version of the format: it has to be imported again.
fn other_format(dir: &Path, found: u32) -> MatchError {
    MatchError::index(
        dir,
        format!(
            "index of format version {found}, this build reads version {FORMAT_VERSION}: \
             import the records again into an empty directory"
        ),
    )
}

fn chunk_name(k: usize) -> String {
    format!("chunk-{k:05}.lwm")
}

/// Hash of an order id, for the access-log join. Neither keyed nor cryptographic: order ids
/// are not personal data and are stored in the clear anyway, and a collision only costs an
/// extra read, because the join compares the order ids themselves. Part of the file format.
fn oid_hash(order_id: &str) -> u64 {
    oid_hash_bytes(order_id.as_bytes())
}

fn oid_hash_bytes(order_id: &[u8]) -> u64 {
    let mut h = PieceHasher::default();
    h.write(order_id);
    h.finish().max(1)
}

/// The global dictionary of metadata strings.
#[derive(Default)]
struct Dict {
    ids: HashMap<String, u32, BuildHasherDefault<PieceHasher>>,
    names: Vec<String>,
}

impl Dict {
    fn new() -> Dict {
        let mut d = Dict::default();
        d.names.push(String::new());
        d.ids.insert(String::new(), 0);
        d
    }
    /// The id of `s`, adding it (and recording it in `added`) if new.
    fn intern(&mut self, s: &str, added: &mut Vec<String>) -> u32 {
        if let Some(id) = self.ids.get(s) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.names.push(s.to_string());
        self.ids.insert(s.to_string(), id);
        added.push(s.to_string());
        id
    }
    fn extend(&mut self, added: Vec<String>) {
        for s in added {
            let id = self.names.len() as u32;
            self.ids.entry(s.clone()).or_insert(id);
            self.names.push(s);
        }
    }
    fn name(&self, id: u32) -> &str {
        self.names
            .get(id as usize)
            .map(String::as_str)
            .unwrap_or("")
    }
}

/// One record after parsing and blinding (on a worker thread). Its strings live in the
/// batch's text arena ([`DoneBatch::text`]) and its address tokens in the batch's token arena,
/// so a record costs no allocation of its own.
struct Rec {
    created_at: i64,
    /// (start, end) in the text arena of: order id, city, merchant, rider, partner, canary.
    meta: [(u32, u32); 6],
    /// phone, masked, name, pinyin, district (0 = absent).
    tokens: [u64; 5],
    /// (start, end) in the address-token arena.
    addr: (u32, u32),
}

// Positions in `Rec::meta`.
const M_ORDER: usize = 0;
const M_CITY: usize = 1;

/// Appends `s` to the arena; returns its range.
fn arena_push(text: &mut String, s: &str) -> Result<(u32, u32), String> {
    let start = u32::try_from(text.len()).map_err(|_| "batch text too large")?;
    text.push_str(s);
    let end = u32::try_from(text.len()).map_err(|_| "batch text too large")?;
    Ok((start, end))
}

fn arena_get(text: &str, r: (u32, u32)) -> &str {
    text.get(r.0 as usize..r.1 as usize).unwrap_or("")
}

// Positions of record fields in `records::RECORD_COLUMNS`.
const F_ORDER: usize = 0;
const F_CREATED: usize = 1;
const F_CITY: usize = 2;
const F_NAME: usize = 3;
const F_PHONE: usize = 4;
const F_ADDR: usize = 5;
const F_MERCHANT: usize = 6;
const F_RIDER: usize = 7;
const F_PARTNER: usize = 8;
const F_CANARY: usize = 9;

/// Parses and blinds one record into the batch arenas. An invalid phone, name or address does
/// not skip the row (the order is real; that field is just absent from the index); a missing
/// order id or an unreadable time does, because an order without them cannot be reported or
/// placed in time.
fn process_record(
    row: records::RowView<'_>,
    map: Option<&ColumnMap>,
    blinder: &Blinder,
    cache: &mut TokenCache,
    text: &mut String,
    addr: &mut Vec<u32>,
) -> Result<Rec, String> {
    let f = records::fields(row, map, &records::RECORD_COLUMNS)?;
    let meta = |i: usize| -> Result<&str, String> {
        let v = f[i].trim();
        if v.len() > MAX_META_BYTES {
            return Err(format!(
                "{} longer than {MAX_META_BYTES} bytes",
                records::RECORD_COLUMNS[i]
            ));
        }
        Ok(v)
    };
    let order_id = meta(F_ORDER)?;
    if order_id.is_empty() {
        return Err("order_id is empty".into());
    }
    let created_at = normalise::parse_record_time(&f[F_CREATED])
        .ok_or("created_at is not a time (RFC 3339 or YYYY-MM-DD hh:mm:ss)")?;
    let given = |i: usize| Some(&*f[i]).filter(|s| !s.trim().is_empty());
    let bf = blinder.tokens(given(F_PHONE), None, given(F_NAME), given(F_ADDR), cache);
    let mut city = normalise::canonical_city(meta(F_CITY)?);
    if city.is_empty() {
        city = bf.city.unwrap_or_default();
    }
    let t = &bf.tokens;
    let tok = |x: Option<Token>| x.map(|t| t.0).unwrap_or(0);
    let a0 = u32::try_from(addr.len()).map_err(|_| "batch too large")?;
    addr.extend_from_slice(&t.address);
    let a1 = u32::try_from(addr.len()).map_err(|_| "batch too large")?;
    Ok(Rec {
        created_at,
        meta: [
            arena_push(text, order_id)?,
            arena_push(text, &city)?,
            arena_push(text, meta(F_MERCHANT)?)?,
            arena_push(text, meta(F_RIDER)?)?,
            arena_push(text, meta(F_PARTNER)?)?,
            arena_push(text, meta(F_CANARY)?)?,
        ],
        tokens: [
            tok(t.phone),
            tok(t.masked),
            tok(t.name),
            tok(t.pinyin),
            tok(t.district),
        ],
        addr: (a0, a1),
    })
}

/// A chunk being built in memory.
struct ChunkBuilder {
    fwd: Vec<u8>,
    addr: Vec<u32>,
    ids: Vec<u8>,
    time: Vec<(u32, i64, u32, u32, u32)>,
    dict_added: Vec<String>,
    orders: u32,
    rows: u64,
    skipped: u64,
}

impl ChunkBuilder {
    fn new(capacity: usize) -> ChunkBuilder {
        ChunkBuilder {
            fwd: Vec::with_capacity(capacity * FWD_SIZE),
            addr: Vec::with_capacity(capacity * 16),
            ids: Vec::with_capacity(capacity * 20),
            time: Vec::with_capacity(capacity),
            dict_added: Vec::new(),
            orders: 0,
            rows: 0,
            skipped: 0,
        }
    }

    fn add(&mut self, p: &Rec, text: &str, addr: &[u32], dict: &mut Dict) -> Result<(), String> {
        let address = addr
            .get(p.addr.0 as usize..p.addr.1 as usize)
            .unwrap_or(&[]);
        let order_id = arena_get(text, p.meta[M_ORDER]);
        let addr_off = u32::try_from(self.addr.len()).map_err(|_| "chunk too large")?;
        let id_off = u32::try_from(self.ids.len()).map_err(|_| "chunk too large")?;
        let mut ids = [0u32; 5];
        for (k, id) in ids.iter_mut().enumerate() {
            *id = dict.intern(arena_get(text, p.meta[M_CITY + k]), &mut self.dict_added);
        }
        let [city, merchant, rider, partner, canary] = ids;
        let r = &mut self.fwd;
        r.extend_from_slice(&p.created_at.to_le_bytes());
        for v in p.tokens {
            r.extend_from_slice(&v.to_le_bytes());
        }
        for v in [city, merchant, rider, partner, canary, addr_off, id_off] {
            r.extend_from_slice(&v.to_le_bytes());
        }
        r.extend_from_slice(&(address.len() as u16).to_le_bytes());
        r.extend_from_slice(&(order_id.len() as u16).to_le_bytes());
        self.addr.extend_from_slice(address);
        self.ids.extend_from_slice(order_id.as_bytes());
        self.time
            .push((city, p.created_at, merchant, rider, partner));
        self.orders += 1;
        Ok(())
    }

    /// Sorts and writes the chunk file; returns its size.
    fn write(mut self, dir: &Path, name: &str, first_ref: u64) -> Result<u64, MatchError> {
        if first_ref + u64::from(self.orders) > postings::MAX_ORDERS {
            return Err(MatchError::Internal(format!(
                "an index holds at most {} orders",
                postings::MAX_ORDERS
            )));
        }
        self.time.sort_unstable();
        let dict = serde_json::to_vec(&self.dict_added)
            .map_err(|e| MatchError::Internal(format!("dictionary serialisation: {e}")))?;
        let time_fences: Vec<(u32, i64)> = self
            .time
            .iter()
            .step_by(FENCE)
            .map(|e| (e.0, e.1))
            .collect();
        let (days, day_counts) = day_sections(&self.time)?;
        let mut lens = [0u64; N_SECTIONS];
        lens[S_FWD] = self.fwd.len() as u64;
        lens[S_ADDR] = self.addr.len() as u64 * 4;
        lens[S_IDS] = self.ids.len() as u64;
        lens[S_TIME] = (self.time.len() * TIME_SIZE) as u64;
        lens[S_TIME_FENCE] = (time_fences.len() * TIME_FENCE_SIZE) as u64;
        lens[S_DICT] = dict.len() as u64;
        lens[S_DAYS] = days.len() as u64;
        lens[S_DAY_COUNTS] = day_counts.len() as u64;
        let mut offs = [0u64; N_SECTIONS];
        let mut at = CHUNK_HEADER as u64;
        for k in 0..N_SECTIONS {
            offs[k] = at;
            at += lens[k];
        }
        write_atomic(dir, name, |w| {
            w.write_all(CHUNK_MAGIC)?;
            w.write_all(&FORMAT_VERSION.to_le_bytes())?;
            w.write_all(&(N_SECTIONS as u32).to_le_bytes())?;
            w.write_all(&self.orders.to_le_bytes())?;
            w.write_all(&0u32.to_le_bytes())?;
            w.write_all(&first_ref.to_le_bytes())?;
            for k in 0..N_SECTIONS {
                w.write_all(&offs[k].to_le_bytes())?;
                w.write_all(&lens[k].to_le_bytes())?;
            }
            w.write_all(&self.fwd)?;
            for a in &self.addr {
                w.write_all(&a.to_le_bytes())?;
            }
            w.write_all(&self.ids)?;
            for (city, at, m, r, p) in &self.time {
                w.write_all(&city.to_le_bytes())?;
                w.write_all(&at.to_le_bytes())?;
                w.write_all(&m.to_le_bytes())?;
                w.write_all(&r.to_le_bytes())?;
                w.write_all(&p.to_le_bytes())?;
            }
            for (city, at) in &time_fences {
                w.write_all(&city.to_le_bytes())?;
                w.write_all(&at.to_le_bytes())?;
            }
            w.write_all(&dict)?;
            w.write_all(&days)?;
            w.write_all(&day_counts)
        })
    }
}

/// A batch of raw rows on its way to a worker.
struct WorkBatch {
    seq: u64,
    rows: RawBatch,
    end: (u64, u64),
    ends_chunk: bool,
}

/// A processed batch on its way back: outcomes in input order, with their arenas.
struct DoneBatch {
    seq: u64,
    outcomes: Vec<Result<Rec, (u64, String)>>,
    text: String,
    addr: Vec<u32>,
    end: (u64, u64),
    ends_chunk: bool,
}

enum Msg {
    Done(DoneBatch),
    /// The reader finished after sending this many batches.
    Eof(u64),
    Fatal(MatchError),
}

/// A finished chunk on its way to the writer thread.
struct ChunkJob {
    builder: ChunkBuilder,
    name: String,
    first_ref: u64,
}

/// A chunk handed to the writer whose manifest entry waits for the write to finish.
struct PendingChunk {
    info: ChunkInfo,
    skipped: Vec<(u64, String)>,
}

/// The on-disk blind index, opened for lookups. Thread-safe: its files are memory-mapped
/// read-only and lookups only read the maps.
pub struct LocalIndex {
    dir: PathBuf,
    chunks: Vec<ChunkReader>,
    postings: PostingsReader,
    dict: Dict,
    /// Canonical city name → the dictionary ids of the spellings orders use for it.
    cities: HashMap<String, Vec<u32>>,
    access: Option<AccessReader>,
    orders: u64,
    size: u64,
}

impl std::fmt::Debug for LocalIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalIndex")
            .field("dir", &self.dir)
            .field("chunks", &self.chunks.len())
            .field("orders", &self.orders)
            .finish()
    }
}

struct ChunkReader {
    path: PathBuf,
    map: Mmap,
    first_ref: u64,
    orders: u32,
    /// (offset, length) of each section, checked at open to lie inside the map.
    sec: [(usize, usize); N_SECTIONS],
    time_fences: Vec<(u32, i64)>,
}

struct AccessReader {
    map: Mmap,
    sec: [(usize, usize); A_SECTIONS],
    fences: Vec<u64>,
    actors: Vec<String>,
}

// Little-endian reads that never panic: a read outside the slice gives 0. Every caller has
// checked its bounds already; this only keeps a bug from becoming a crash.
fn le_bytes<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    at.checked_add(N)
        .and_then(|end| b.get(at..end))
        .and_then(|s| s.try_into().ok())
        .unwrap_or([0u8; N])
}
fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(le_bytes(b, at))
}
fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(le_bytes(b, at))
}
fn le_i64(b: &[u8], at: usize) -> i64 {
    i64::from_le_bytes(le_bytes(b, at))
}
fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(le_bytes(b, at))
}

/// Maps an index file read-only, after checking it holds at least `min_len` bytes (and, when
/// given, exactly the size the manifest recorded).
fn map_file(path: &Path, min_len: usize, expect: Option<u64>) -> Result<Mmap, MatchError> {
    let file = File::open(path).map_err(|e| MatchError::io(path, e))?;
    let size = file.metadata().map_err(|e| MatchError::io(path, e))?.len();
    if let Some(expect) = expect
        && size != expect
    {
        return Err(MatchError::index(
            path,
            format!("size {size} differs from the manifest's {expect}"),
        ));
    }
    if size < min_len as u64 {
        return Err(MatchError::index(path, "file too short"));
    }
    // SAFETY: a map is sound as long as nobody modifies the file while it is mapped. Index
    // files are written once, to a temp file that is fsynced and then renamed into place
    // (`write_atomic`), and never opened for writing again: an import refuses a directory
    // holding another index, a resumed import deletes only files the manifest does not list
    // (unlinking leaves a mapped inode intact), and a new access log is renamed over the old
    // one, which replaces the name, not the mapped inode. The map is read-only and every
    // offset read from the file is checked against the section bounds before use, so a
    // damaged file gives an error, not an out-of-bounds read.
    //
    // `populate` maps every page at open (reading what the page cache lacks), so a check does
    // not pay a page fault for each order it reads: at 10 M orders that is ~0.1 s once at open
    // against tens of thousands of faults in the first check.
    unsafe { memmap2::MmapOptions::new().populate().map(&file) }
        .map_err(|e| MatchError::io(path, e))
}

/// Checks a mapped file's preamble and section table; returns (offset, length) per section,
/// each inside the file. `header` is the fixed part before the table.
fn read_sections<const N: usize>(
    b: &[u8],
    path: &Path,
    magic: &[u8; 8],
    header: usize,
) -> Result<[(usize, usize); N], MatchError> {
    if b.len() < header + N * 16 {
        return Err(MatchError::index(path, "file too short"));
    }
    if b.get(..8) != Some(&magic[..]) {
        return Err(MatchError::index(path, "not a leakwatch index file"));
    }
    if le_u32(b, 8) != FORMAT_VERSION || le_u32(b, 12) as usize != N {
        return Err(MatchError::index(path, "unsupported index format version"));
    }
    let mut sec = [(0usize, 0usize); N];
    for (k, s) in sec.iter_mut().enumerate() {
        let off = usize::try_from(le_u64(b, header + k * 16));
        let len = usize::try_from(le_u64(b, header + k * 16 + 8));
        let (Ok(off), Ok(len)) = (off, len) else {
            return Err(MatchError::index(path, "section outside the file"));
        };
        if off.checked_add(len).is_none_or(|end| end > b.len()) {
            return Err(MatchError::index(
                path,
                "section outside the file (truncated?)",
            ));
        }
        *s = (off, len);
    }
    Ok(sec)
}

/// Section `k` of a mapped file (empty if `k` is not a section: never, for the constants).
fn section<'a>(map: &'a [u8], sec: &[(usize, usize)], k: usize) -> &'a [u8] {
    sec.get(k)
        .and_then(|&(off, len)| map.get(off..off + len))
        .unwrap_or(&[])
}

/// Entries `[lo, hi)` of a section of fixed-size entries (empty when out of range).
fn entries(s: &[u8], size: usize, lo: usize, hi: usize) -> &[u8] {
    s.get(lo * size..hi * size).unwrap_or(&[])
}

/// One entry of the day section: a (city, day) of the chunk, its orders, and where its actor
/// counts are (in entries of the day-counts section: merchants, then riders, then partners).
struct DayEntry {
    city: u32,
    orders: u32,
    day: i64,
    start: u32,
    counts: [u32; 3],
}

fn decode_day(b: &[u8]) -> DayEntry {
    DayEntry {
        city: le_u32(b, 0),
        orders: le_u32(b, 4),
        day: le_i64(b, 8),
        start: le_u32(b, 16),
        counts: [le_u32(b, 20), le_u32(b, 24), le_u32(b, 28)],
    }
}

/// The whole days inside `[from, to]` (both inclusive): first and last day number, the first
/// second of the first and the last second of the last. `None` when no whole day fits.
fn whole_days(from: i64, to: i64) -> Option<(i64, i64, i64, i64)> {
    let first = from.div_euclid(DAY_SECS) + i64::from(from.rem_euclid(DAY_SECS) != 0);
    let last = to.div_euclid(DAY_SECS) - i64::from(to.rem_euclid(DAY_SECS) != DAY_SECS - 1);
    if first > last {
        return None;
    }
    let start = first.checked_mul(DAY_SECS)?;
    let end = last.checked_mul(DAY_SECS)?.checked_add(DAY_SECS - 1)?;
    Some((first, last, start, end))
}

/// The day sections of a chunk, from its time entries sorted by (city, time): per (city, day)
/// a [`DAY_SIZE`]-byte entry, and per actor kind the (actor id, orders) pairs of that day, in
/// the order the actors first appear. Id 0 (no actor) is not counted, as in the time-section
/// scan. Counting goes through an array indexed by actor id, so a chunk costs one pass.
fn day_sections(time: &[(u32, i64, u32, u32, u32)]) -> Result<(Vec<u8>, Vec<u8>), MatchError> {
    let too_large = || MatchError::Internal("chunk too large for its day counts".into());
    let max_id = time
        .iter()
        .map(|e| e.2.max(e.3).max(e.4))
        .max()
        .unwrap_or(0);
    let mut count = vec![0u32; max_id as usize + 1];
    let mut seen: Vec<u32> = Vec::new();
    let mut days = Vec::new();
    let mut counts = Vec::new();
    let mut written: u32 = 0;
    let mut rest = time;
    while let Some(&(city, at, ..)) = rest.first() {
        let day = at.div_euclid(DAY_SECS);
        let len = rest
            .iter()
            .position(|e| e.0 != city || e.1.div_euclid(DAY_SECS) != day)
            .unwrap_or(rest.len());
        let (group, tail) = rest.split_at(len);
        rest = tail;
        let start = written;
        let mut n = [0u32; 3];
        for (k, n) in n.iter_mut().enumerate() {
            seen.clear();
            for e in group {
                let id = [e.2, e.3, e.4][k];
                if id == 0 {
                    continue;
                }
                if let Some(c) = count.get_mut(id as usize) {
                    if *c == 0 {
                        seen.push(id);
                    }
                    *c += 1;
                }
            }
            for id in &seen {
                let orders = count.get_mut(*id as usize).map_or(0, std::mem::take);
                counts.extend_from_slice(&id.to_le_bytes());
                counts.extend_from_slice(&orders.to_le_bytes());
            }
            *n = u32::try_from(seen.len()).map_err(|_| too_large())?;
            written = written.checked_add(*n).ok_or_else(too_large)?;
        }
        let orders = u32::try_from(group.len()).map_err(|_| too_large())?;
        days.extend_from_slice(&city.to_le_bytes());
        days.extend_from_slice(&orders.to_le_bytes());
        days.extend_from_slice(&day.to_le_bytes());
        days.extend_from_slice(&start.to_le_bytes());
        for v in n {
            days.extend_from_slice(&v.to_le_bytes());
        }
    }
    Ok((days, counts))
}

impl ChunkReader {
    fn open(path: &Path, expect_bytes: u64) -> Result<(ChunkReader, Vec<String>), MatchError> {
        let map = map_file(path, CHUNK_HEADER, Some(expect_bytes))?;
        let sec = read_sections::<N_SECTIONS>(&map, path, CHUNK_MAGIC, 32)?;
        let orders = le_u32(&map, 16);
        let first_ref = le_u64(&map, 24);
        let n = orders as usize;
        let len = |k: usize| sec.get(k).map_or(0, |s| s.1);
        let bad = Some(len(S_FWD)) != n.checked_mul(FWD_SIZE)
            || Some(len(S_TIME)) != n.checked_mul(TIME_SIZE)
            || len(S_TIME_FENCE) % TIME_FENCE_SIZE != 0
            || len(S_DAYS) % DAY_SIZE != 0
            || len(S_DAY_COUNTS) % DAY_COUNT_SIZE != 0;
        if bad {
            return Err(MatchError::index(path, "inconsistent section sizes"));
        }
        let time_fences = section(&map, &sec, S_TIME_FENCE)
            .chunks_exact(TIME_FENCE_SIZE)
            .map(|b| (le_u32(b, 0), le_i64(b, 4)))
            .collect();
        let dict: Vec<String> = serde_json::from_slice(section(&map, &sec, S_DICT))
            .map_err(|e| MatchError::index(path, format!("bad dictionary: {e}")))?;
        Ok((
            ChunkReader {
                path: path.to_path_buf(),
                map,
                first_ref,
                orders,
                sec,
                time_fences,
            },
            dict,
        ))
    }

    fn section(&self, k: usize) -> &[u8] {
        section(&self.map, &self.sec, k)
    }

    /// Calls `f` with each of this chunk's postings of `kind`, in order of the orders, as the
    /// postings file holds them: (token, city, district key, ref). Orders without the token
    /// have none; every order has an order-id hash.
    fn each_posting(
        &self,
        kind: usize,
        mut f: impl FnMut(postings::Posting),
    ) -> Result<(), MatchError> {
        let fwd = self.section(S_FWD);
        let ids = self.section(S_IDS);
        for (local, e) in (0..self.orders).zip(fwd.chunks_exact(FWD_SIZE)) {
            let token = if kind == P_OID {
                let (at, len) = (le_u32(e, 72) as usize, le_u16(e, 78) as usize);
                let id = ids
                    .get(at..at + len)
                    .ok_or_else(|| MatchError::index(&self.path, "order id outside its section"))?;
                oid_hash_bytes(id)
            } else {
                le_u64(e, 8 + 8 * kind)
            };
            if token == 0 {
                continue;
            }
            let city = if has_city(kind) { le_u32(e, 48) } else { 0 };
            let district = if has_district(kind) {
                district_key(le_u64(e, 40))
            } else {
                0
            };
            // The import refuses more orders than a u32 holds.
            let r = (self.first_ref + u64::from(local)) as u32;
            f((token, city, district, r));
        }
        Ok(())
    }

    fn forward(&self, local: u32) -> Result<Fwd, MatchError> {
        let at = local as usize * FWD_SIZE;
        self.section(S_FWD)
            .get(at..at + FWD_SIZE)
            .map(decode_fwd)
            .ok_or_else(|| MatchError::index(&self.path, "order outside the forward section"))
    }

    /// The address tokens of an order, as little-endian u32s.
    fn address(&self, f: &Fwd) -> Result<&[u8], MatchError> {
        let start = f.addr_off as usize * 4;
        self.section(S_ADDR)
            .get(start..start + f.addr_len as usize * 4)
            .ok_or_else(|| MatchError::index(&self.path, "address tokens outside their section"))
    }

    fn order_id(&self, f: &Fwd) -> Result<&str, MatchError> {
        let start = f.id_off as usize;
        let b = self
            .section(S_IDS)
            .get(start..start + f.id_len as usize)
            .ok_or_else(|| MatchError::index(&self.path, "order id outside its section"))?;
        std::str::from_utf8(b).map_err(|_| MatchError::index(&self.path, "order id is not UTF-8"))
    }

    /// Counts orders per actor in the time window (and city), into `counts`: whole days from
    /// the day sections, the partial days at either end from the time section.
    fn count_window(
        &self,
        city: Option<u32>,
        from: i64,
        to: i64,
        counts: &mut WindowCounts,
    ) -> Result<(), MatchError> {
        if from > to {
            return Ok(());
        }
        let days = self.section(S_DAYS);
        let n_days = days.len() / DAY_SIZE;
        let day = |i: usize| decode_day(entries(days, DAY_SIZE, i, i + 1));
        let cities: Vec<u32> = match city {
            Some(c) => vec![c],
            None => {
                // Every city of the chunk has day entries (sorted by city).
                let mut all: Vec<u32> = (0..n_days).map(|i| day(i).city).collect();
                all.dedup();
                all
            }
        };
        for c in cities {
            let Some((first, last, start, end)) = whole_days(from, to) else {
                self.scan_time(c, from, to, counts)?;
                continue;
            };
            let lo = lower_bound(0, n_days, |i| {
                let e = day(i);
                (e.city, e.day) < (c, first)
            });
            for i in lo..n_days {
                let e = day(i);
                if e.city != c || e.day > last {
                    break;
                }
                self.add_day(&e, counts)?;
            }
            if from < start {
                self.scan_time(c, from, start - 1, counts)?;
            }
            if end < to {
                self.scan_time(c, end + 1, to, counts)?;
            }
        }
        Ok(())
    }

    /// Adds one (city, day) entry's counts.
    fn add_day(&self, e: &DayEntry, counts: &mut WindowCounts) -> Result<(), MatchError> {
        let all = self.section(S_DAY_COUNTS);
        counts.total += u64::from(e.orders);
        let mut at = e.start as usize;
        for (k, n) in e.counts.iter().enumerate() {
            let n = *n as usize;
            let b = all
                .get(at * DAY_COUNT_SIZE..(at + n) * DAY_COUNT_SIZE)
                .ok_or_else(|| MatchError::index(&self.path, "day counts outside their section"))?;
            for x in b.chunks_exact(DAY_COUNT_SIZE) {
                counts.add(k, le_u32(x, 0), u64::from(le_u32(x, 4)), &self.path)?;
            }
            at += n;
        }
        Ok(())
    }

    /// Counts the orders of city `c` in `[from, to]` from the time section.
    fn scan_time(
        &self,
        c: u32,
        from: i64,
        to: i64,
        counts: &mut WindowCounts,
    ) -> Result<(), MatchError> {
        let time = self.section(S_TIME);
        let n = time.len() / TIME_SIZE;
        let f = &self.time_fences;
        let lo = f.partition_point(|x| *x < (c, from)).saturating_sub(1) * FENCE;
        let hi = (f.partition_point(|x| *x <= (c, to)) * FENCE).min(n);
        if lo >= hi {
            return Ok(());
        }
        for e in entries(time, TIME_SIZE, lo, hi).chunks_exact(TIME_SIZE) {
            let at = le_i64(e, 4);
            if le_u32(e, 0) != c || at < from || at > to {
                continue;
            }
            counts.total += 1;
            for (k, v) in [le_u32(e, 12), le_u32(e, 16), le_u32(e, 20)]
                .into_iter()
                .enumerate()
            {
                if v != 0 {
                    counts.add(k, v, 1, &self.path)?;
                }
            }
        }
        Ok(())
    }
}

/// Per-actor counts for one base-rate query, indexed by dictionary id.
struct WindowCounts {
    total: u64,
    /// merchant, rider, partner
    by_kind: [Vec<u64>; 3],
    /// Size of the dictionary: ids at or beyond it are damage, not actors.
    ids: usize,
}

impl WindowCounts {
    fn add(&mut self, kind: usize, id: u32, n: u64, path: &Path) -> Result<(), MatchError> {
        let i = id as usize;
        if i >= self.ids {
            return Err(MatchError::index(path, "actor id outside the dictionary"));
        }
        let Some(v) = self.by_kind.get_mut(kind) else {
            return Ok(());
        };
        if v.len() <= i {
            v.resize(i + 1, 0);
        }
        if let Some(x) = v.get_mut(i) {
            *x += n;
        }
        Ok(())
    }
}

/// One decoded forward record.
struct Fwd {
    created_at: i64,
    tokens: [u64; 5],
    city: u32,
    merchant: u32,
    rider: u32,
    partner: u32,
    canary: u32,
    addr_off: u32,
    id_off: u32,
    addr_len: u16,
    id_len: u16,
}

fn decode_fwd(b: &[u8]) -> Fwd {
    Fwd {
        created_at: le_i64(b, 0),
        tokens: [
            le_u64(b, 8),
            le_u64(b, 16),
            le_u64(b, 24),
            le_u64(b, 32),
            le_u64(b, 40),
        ],
        city: le_u32(b, 48),
        merchant: le_u32(b, 52),
        rider: le_u32(b, 56),
        partner: le_u32(b, 60),
        canary: le_u32(b, 64),
        addr_off: le_u32(b, 68),
        id_off: le_u32(b, 72),
        addr_len: le_u16(b, 76),
        id_len: le_u16(b, 78),
    }
}

fn opt_token(v: u64) -> Option<Token> {
    (v != 0).then_some(Token(v))
}

/// Candidates materialised by one thread: `city` is a position in `cities` (dictionary ids)
/// until the parts are joined into a [`CandidateSet`].
struct LeanPart {
    orders: Vec<Candidate>,
    cities: Vec<u32>,
}

/// What the import loop needs besides the rows.
struct ImportRun<'a> {
    dir: &'a Path,
    blinder: &'a Blinder,
    opts: &'a ImportOptions,
    progress: &'a dyn Fn(u64, u64),
}

impl LocalIndex {
    /// Deletes the index in `dir` when it is of another format version, holds no access log,
    /// and was imported from exactly `records` (same size and first MiB), so that the same
    /// records can be imported again; `Ok(true)` when it did. An outdated index of other
    /// records is left alone and reported as an error; a current one is kept (`Ok(false)`).
    pub fn discard_outdated(dir: &Path, records: &Path) -> Result<bool, MatchError> {
        let Some(m) = read_manifest(dir)? else {
            return Ok(false);
        };
        if m.format == FORMAT_VERSION {
            return Ok(false);
        }
        if m.access_log.is_some() || records::inspect(records)? != m.source {
            return Err(other_format(dir, m.format));
        }
        fs::remove_dir_all(dir).map_err(|e| MatchError::io(dir, e))?;
        Ok(true)
    }

    /// Import records into `dir` (see the module documentation for the files), with the
    /// default options. Resumes an interrupted import of the same file; returns at once, with
    /// the stored report, when the same file was already imported.
    pub fn import(
        dir: &Path,
        key: &BlindKey,
        records: &Path,
        progress: &dyn Fn(u64, u64),
    ) -> Result<ImportReport, MatchError> {
        LocalIndex::import_with(dir, key, records, progress, &ImportOptions::default())
    }

    /// [`LocalIndex::import`] with explicit options.
    pub fn import_with(
        dir: &Path,
        key: &BlindKey,
        records: &Path,
        progress: &dyn Fn(u64, u64),
        opts: &ImportOptions,
    ) -> Result<ImportReport, MatchError> {
        if opts.chunk_rows == 0 {
            return Err(MatchError::Query("chunk_rows must be at least 1".into()));
        }
        fs::create_dir_all(dir).map_err(|e| MatchError::io(dir, e))?;
        let source = records::inspect(records)?;
        let key_check = key.check_value();
        let mut manifest = match read_manifest(dir)? {
            Some(m) => {
                if m.format != FORMAT_VERSION {
                    return Err(other_format(dir, m.format));
                }
                if m.key_check != key_check {
                    return Err(MatchError::WrongKey {
                        path: dir.to_path_buf(),
                    });
                }
                if m.source != source {
                    return Err(MatchError::index(
                        dir,
                        "holds an index of another records file; use an empty directory",
                    ));
                }
                if m.chunk_rows != opts.chunk_rows {
                    return Err(MatchError::index(
                        dir,
                        format!("was started with chunks of {} rows", m.chunk_rows),
                    ));
                }
                if m.complete && m.postings_bytes.is_some() {
                    let rows = m.report(None).rows;
                    return Ok(m.report(Some(rows)));
                }
                // Complete without a postings file (a damaged manifest): read no row again,
                // build the postings file.
                Manifest {
                    complete: false,
                    postings_bytes: None,
                    ..m
                }
            }
            None => {
                if fs::read_dir(dir)
                    .map_err(|e| MatchError::io(dir, e))?
                    .next()
                    .is_some()
                {
                    return Err(MatchError::index(
                        dir,
                        "directory is not empty and has no manifest",
                    ));
                }
                Manifest {
                    format: FORMAT_VERSION,
                    key_check,
                    source: source.clone(),
                    chunk_rows: opts.chunk_rows,
                    chunks: Vec::new(),
                    skipped: Vec::new(),
                    complete: false,
                    postings_bytes: None,
                    access_log: None,
                }
            }
        };
        remove_strays(dir, &manifest)?;
        // Replay the dictionary of finished chunks so ids continue where they stopped.
        let mut dict = Dict::new();
        for c in &manifest.chunks {
            let (_, added) = ChunkReader::open(&dir.join(&c.file), c.bytes)?;
            dict.extend(added);
        }
        let resume = manifest.chunks.last().map(|c| (c.end_offset, c.end_line));
        let resumed_from = resume.map(|_| manifest.report(None).rows);
        let reader = RowReader::open(
            records,
            source.format,
            &records::RECORD_COLUMNS,
            records::RECORD_REQUIRED,
            resume,
        )?;
        let blinder = Blinder::new(key);
        let run = ImportRun {
            dir,
            blinder: &blinder,
            opts,
            progress,
        };
        run.pipeline(reader, source.size, &mut manifest, &mut dict)?;
        let chunks = manifest
            .chunks
            .iter()
            .map(|c| {
                let (reader, _) = ChunkReader::open(&dir.join(&c.file), c.bytes)?;
                if reader.first_ref != c.first_ref || u64::from(reader.orders) != c.orders {
                    return Err(MatchError::index(
                        &reader.path,
                        "chunk does not match the manifest",
                    ));
                }
                Ok(reader)
            })
            .collect::<Result<Vec<_>, _>>()?;
        manifest.postings_bytes = Some(postings::build(dir, &chunks)?);
        drop(chunks);
        manifest.complete = true;
        write_manifest(dir, &manifest)?;
        (progress)(source.size, source.size);
        Ok(manifest.report(resumed_from))
    }

    /// Imports an access log (`order_id, actor_kind, actor_id, action, at`) into an index whose
    /// records import has finished, replacing any earlier access log. Rows naming an order not
    /// in the index are skipped and reported.
    pub fn import_access_log(dir: &Path, log: &Path) -> Result<ImportReport, MatchError> {
        let mut manifest = read_manifest(dir)?
            .ok_or_else(|| MatchError::index(dir, "no index here (no manifest)"))?;
        if !manifest.complete {
            return Err(MatchError::index(
                dir,
                "records import not finished; run it again first",
            ));
        }
        let index = LocalIndex::open_inner(dir, &manifest)?;
        let source = records::inspect(log)?;
        let mut reader = RowReader::open(log, source.format, &records::ACCESS_COLUMNS, 5, None)?;
        let mut actors = Dict::new();
        let mut added = Vec::new();
        // (ref, kind, actor, action, access time, order time, city)
        let mut events: Vec<(u64, u8, u32, u8, i64, i64, u32)> = Vec::new();
        let mut report = ImportReport::default();
        let skip = |report: &mut ImportReport, line: u64, why: String| {
            report.skipped_total += 1;
            if report.skipped.len() < MAX_SKIPPED_KEPT {
                report.skipped.push((line, why));
            }
        };
        let mut refs = Vec::new();
        loop {
            let mut one = RawBatch::default();
            if !reader.next_into(&mut one)? {
                break;
            }
            let Some((line, row)) = one.row(0) else {
                break;
            };
            report.rows += 1;
            let parsed = (|| -> Result<(String, u8, String, u8, i64), String> {
                let f = records::fields(row, reader.map.as_ref(), &records::ACCESS_COLUMNS)?;
                let order_id = f[0].trim().to_string();
                if order_id.is_empty() {
                    return Err("order_id is empty".into());
                }
                let kind = ACTOR_KINDS
                    .iter()
                    .position(|k| k.eq_ignore_ascii_case(f[1].trim()))
                    .ok_or("actor_kind is not staff, merchant, rider or partner")?;
                let actor = f[2].trim().to_string();
                if actor.is_empty() || actor.len() > MAX_META_BYTES {
                    return Err("actor_id is empty or too long".into());
                }
                let action = ACTIONS
                    .iter()
                    .position(|a| a.eq_ignore_ascii_case(f[3].trim()))
                    .ok_or("action is not view or export")?;
                let at = normalise::parse_record_time(&f[4]).ok_or("at is not a time")?;
                Ok((order_id, kind as u8, actor, action as u8, at))
            })();
            let (order_id, kind, actor, action, at) = match parsed {
                Ok(p) => p,
                Err(why) => {
                    skip(&mut report, line, why);
                    continue;
                }
            };
            refs.clear();
            index.lookup(P_OID, oid_hash(&order_id), usize::MAX, &mut refs);
            let mut found = false;
            for r in &refs {
                let (chunk, local) = index.locate(*r)?;
                let fwd = chunk.forward(local)?;
                if chunk.order_id(&fwd)? == order_id {
                    let a = actors.intern(&actor, &mut added);
                    events.push((*r, kind, a, action, at, fwd.created_at, fwd.city));
                    found = true;
                }
            }
            if found {
                report.imported += 1;
            } else {
                skip(&mut report, line, "order_id is not in the index".into());
            }
        }
        events.sort_unstable();
        events.dedup();
        let dict = serde_json::to_vec(&actors.names)
            .map_err(|e| MatchError::Internal(format!("dictionary serialisation: {e}")))?;
        let fences: Vec<u64> = events.iter().step_by(FENCE).map(|e| e.0).collect();
        let lens = [
            (events.len() * ACCESS_EVENT_SIZE) as u64,
            fences.len() as u64 * 8,
            dict.len() as u64,
        ];
        let mut offs = [0u64; A_SECTIONS];
        let mut at = ACCESS_HEADER as u64;
        for k in 0..A_SECTIONS {
            offs[k] = at;
            at += lens[k];
        }
        let bytes = write_atomic(dir, ACCESS_FILE, |w| {
            w.write_all(ACCESS_MAGIC)?;
            w.write_all(&FORMAT_VERSION.to_le_bytes())?;
            w.write_all(&(A_SECTIONS as u32).to_le_bytes())?;
            w.write_all(&(events.len() as u64).to_le_bytes())?;
            for k in 0..A_SECTIONS {
                w.write_all(&offs[k].to_le_bytes())?;
                w.write_all(&lens[k].to_le_bytes())?;
            }
            for (r, kind, actor, action, at, order_at, city) in &events {
                w.write_all(&r.to_le_bytes())?;
                w.write_all(&order_at.to_le_bytes())?;
                w.write_all(&at.to_le_bytes())?;
                w.write_all(&city.to_le_bytes())?;
                w.write_all(&actor.to_le_bytes())?;
                w.write_all(&[*kind, *action, 0, 0])?;
            }
            for f in &fences {
                w.write_all(&f.to_le_bytes())?;
            }
            w.write_all(&dict)
        })?;
        manifest.access_log = Some(AccessInfo {
            file: ACCESS_FILE.into(),
            source,
            rows: report.rows,
            events: events.len() as u64,
            skipped_total: report.skipped_total,
            skipped: report.skipped.clone(),
            bytes,
        });
        write_manifest(dir, &manifest)?;
        Ok(report)
    }

    /// Opens a finished index. Refuses a key other than the one it was built with.
    pub fn open(dir: &Path, key: &BlindKey) -> Result<LocalIndex, MatchError> {
        let manifest = read_manifest(dir)?
            .ok_or_else(|| MatchError::index(dir, "no index here (no manifest)"))?;
        if manifest.format != FORMAT_VERSION {
            return Err(other_format(dir, manifest.format));
        }
        if manifest.key_check != key.check_value() {
            return Err(MatchError::WrongKey {
                path: dir.to_path_buf(),
            });
        }
        if !manifest.complete {
            return Err(MatchError::index(
                dir,
                "import not finished: run the import again on the same file to resume it",
            ));
        }
        LocalIndex::open_inner(dir, &manifest)
    }

    fn open_inner(dir: &Path, manifest: &Manifest) -> Result<LocalIndex, MatchError> {
        let mut dict = Dict::new();
        let mut chunks = Vec::with_capacity(manifest.chunks.len());
        let mut size = fs::metadata(dir.join(MANIFEST))
            .map_err(|e| MatchError::io(dir.join(MANIFEST), e))?
            .len();
        let mut next_ref = 0u64;
        for c in &manifest.chunks {
            let (reader, added) = ChunkReader::open(&dir.join(&c.file), c.bytes)?;
            if reader.first_ref != next_ref || u64::from(reader.orders) != c.orders {
                return Err(MatchError::index(
                    &reader.path,
                    "chunk does not match the manifest",
                ));
            }
            next_ref += c.orders;
            size += c.bytes;
            dict.extend(added);
            chunks.push(reader);
        }
        let postings_bytes = manifest
            .postings_bytes
            .ok_or_else(|| MatchError::index(dir, "import not finished: no postings file"))?;
        let postings = PostingsReader::open(&dir.join(postings::FILE), postings_bytes)?;
        if postings.first_ref != 0 || postings.orders != next_ref {
            return Err(MatchError::index(
                postings.path(),
                "postings do not match the manifest",
            ));
        }
        size += postings_bytes;
        let access = match &manifest.access_log {
            Some(a) => {
                size += a.bytes;
                Some(AccessReader::open(&dir.join(&a.file))?)
            }
            None => None,
        };
        // Every order is in one (city, day) entry, so these are all the cities orders name.
        let mut city_ids: BTreeSet<u32> = BTreeSet::new();
        for c in &chunks {
            let mut last = None;
            for e in c.section(S_DAYS).chunks_exact(DAY_SIZE) {
                let city = le_u32(e, 0);
                if last != Some(city) {
                    city_ids.insert(city);
                    last = Some(city);
                }
            }
        }
        let mut cities: HashMap<String, Vec<u32>> = HashMap::new();
        for id in city_ids.into_iter().filter(|id| *id != 0) {
            cities
                .entry(normalise::canonical_city(dict.name(id)))
                .or_default()
                .push(id);
        }
        Ok(LocalIndex {
            dir: dir.to_path_buf(),
            chunks,
            postings,
            dict,
            cities,
            access,
            orders: next_ref,
            size,
        })
    }

    /// Orders in the index.
    pub fn orders(&self) -> u64 {
        self.orders
    }

    /// Bytes of all index files.
    pub fn size_bytes(&self) -> u64 {
        self.size
    }

    /// The index directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Order refs with `token` in posting `kind`, up to `limit` in `out` in all.
    fn lookup(&self, kind: usize, token: u64, limit: usize, out: &mut Vec<u64>) {
        self.postings.lookup(kind, token, limit, out);
    }

    /// As [`LocalIndex::lookup`], only orders in the city whose canonical name is `city`, or
    /// with no city (an order without one never contradicts a row's city).
    fn lookup_in_city(
        &self,
        kind: usize,
        token: u64,
        (city, district): (&str, Option<u32>),
        limit: usize,
        out: &mut Vec<u64>,
    ) {
        // Id 0 is the empty string: orders without a city.
        let mut ids = vec![0u32];
        ids.extend(self.cities.get(city).into_iter().flatten());
        self.postings
            .lookup_in_cities(kind, token, &ids, district, limit, out);
    }

    fn locate(&self, order_ref: u64) -> Result<(&ChunkReader, u32), MatchError> {
        self.locate_at(order_ref).map(|(c, _, local)| (c, local))
    }

    /// The chunk holding `order_ref`, its position, and the order's number within it.
    fn locate_at(&self, order_ref: u64) -> Result<(&ChunkReader, usize, u32), MatchError> {
        let i = self.chunks.partition_point(|c| c.first_ref <= order_ref);
        let (i, c) = i
            .checked_sub(1)
            .and_then(|i| Some((i, self.chunks.get(i)?)))
            .ok_or_else(|| MatchError::Query(format!("no order ref {order_ref}")))?;
        let local = order_ref - c.first_ref;
        if local >= u64::from(c.orders) {
            return Err(MatchError::Query(format!("no order ref {order_ref}")));
        }
        Ok((c, i, local as u32))
    }

    /// The decision data of the orders `refs` (sorted), read straight from the maps, no
    /// allocation per order: one forward record each, and where its address tokens are (read
    /// later, if a comparison needs them). `room`: orders to reserve space for, more than
    /// `refs` when the other runs are to be appended to this one.
    fn lean(&self, refs: &[u64], room: usize) -> Result<LeanPart, MatchError> {
        let mut orders = Vec::with_capacity(room.max(refs.len()));
        let mut cities: Vec<u32> = Vec::new();
        let mut city_pos: HashMap<u32, u32, BuildHasherDefault<PieceHasher>> = HashMap::default();
        // In batches: first touch every forward record of the batch (independent loads, so
        // the CPU overlaps their cache misses), then decode them from the cache.
        const BATCH: usize = 16;
        for batch in refs.chunks(BATCH) {
            let mut touched = 0u8;
            for &order_ref in batch {
                if let Ok((c, _, local)) = self.locate_at(order_ref) {
                    let at = local as usize * FWD_SIZE;
                    let fwd = c.section(S_FWD);
                    touched ^= fwd.get(at).copied().unwrap_or(0)
                        ^ fwd.get(at + FWD_SIZE - 1).copied().unwrap_or(0);
                }
            }
            std::hint::black_box(touched);
            for &order_ref in batch {
                let (c, chunk, local) = self.locate_at(order_ref)?;
                let f = c.forward(local)?;
                // Checked here, read later.
                c.address(&f)?;
                let city = *city_pos.entry(f.city).or_insert_with(|| {
                    cities.push(f.city);
                    (cities.len() - 1) as u32
                });
                let candidate = Candidate {
                    order_ref,
                    created_at: f.created_at,
                    city,
                    phone: opt_token(f.tokens[0]),
                    masked: opt_token(f.tokens[1]),
                    name: opt_token(f.tokens[2]),
                    pinyin: opt_token(f.tokens[3]),
                    district: opt_token(f.tokens[4]),
                    ..Candidate::default()
                };
                orders.push(candidate.mapped(chunk as u32, f.addr_off, u32::from(f.addr_len)));
            }
        }
        Ok(LeanPart { orders, cities })
    }

    /// The [`CandidateSet`] of the orders `refs` (sorted, distinct), materialised on every
    /// core; its address tokens stay in the maps. The first run reserves room for all (address
    /// space only until written), so the others are appended to it without copying it.
    fn materialise(&self, refs: &[u64]) -> Result<CandidateSet<'_>, MatchError> {
        let parts = par_runs(refs, 4096, |run| {
            let first = std::ptr::eq(run.as_ptr(), refs.as_ptr());
            self.lean(run, if first { refs.len() } else { 0 })
        });
        let mut orders: Vec<Candidate> = Vec::new();
        let mut cities: Vec<String> = Vec::new();
        for part in parts {
            let part = part?;
            // This run's city positions → the set's.
            let to_set: Vec<u32> = part
                .cities
                .iter()
                .map(|id| {
                    let name = self.dict.name(*id);
                    match cities.iter().position(|c| c == name) {
                        Some(p) => p as u32,
                        None => {
                            cities.push(name.to_string());
                            (cities.len() - 1) as u32
                        }
                    }
                })
                .collect();
            let mut part_orders = part.orders;
            for c in &mut part_orders {
                c.city = to_set.get(c.city as usize).copied().unwrap_or(0);
            }
            if orders.is_empty() {
                orders = part_orders;
            } else {
                orders.extend_from_slice(&part_orders);
            }
        }
        let chunks = self.chunks.iter().map(|c| c.section(S_ADDR)).collect();
        Ok(CandidateSet::mapped(cities, orders, chunks))
    }

    /// The details of one order: its id, metadata strings and access events.
    fn order_details(&self, order_ref: u64) -> Result<OrderDetails, MatchError> {
        let (c, local) = self.locate(order_ref)?;
        let f = c.forward(local)?;
        let access = match &self.access {
            Some(a) => a.events_of(order_ref),
            None => Vec::new(),
        };
        let canary = self.dict.name(f.canary);
        Ok(OrderDetails {
            order_ref,
            order_id: c.order_id(&f)?.to_string(),
            created_at: f.created_at,
            city: self.dict.name(f.city).to_string(),
            merchant_id: self.dict.name(f.merchant).to_string(),
            rider_id: self.dict.name(f.rider).to_string(),
            delivery_partner: self.dict.name(f.partner).to_string(),
            canary_for: (!canary.is_empty()).then(|| canary.to_string()),
            access,
        })
    }
}

impl AccessReader {
    fn open(path: &Path) -> Result<AccessReader, MatchError> {
        let map = map_file(path, ACCESS_HEADER, None)?;
        let sec = read_sections::<A_SECTIONS>(&map, path, ACCESS_MAGIC, 24)?;
        let events = le_u64(&map, 16);
        let len = |k: usize| sec.get(k).map_or(0, |s| s.1 as u64);
        if Some(len(A_EVENTS)) != events.checked_mul(ACCESS_EVENT_SIZE as u64)
            || len(A_FENCE) % 8 != 0
        {
            return Err(MatchError::index(path, "inconsistent section sizes"));
        }
        let fences = section(&map, &sec, A_FENCE)
            .chunks_exact(8)
            .map(|b| le_u64(b, 0))
            .collect();
        let actors: Vec<String> = serde_json::from_slice(section(&map, &sec, A_DICT))
            .map_err(|e| MatchError::index(path, format!("bad dictionary: {e}")))?;
        Ok(AccessReader {
            map,
            sec,
            fences,
            actors,
        })
    }

    fn events(&self) -> &[u8] {
        section(&self.map, &self.sec, A_EVENTS)
    }

    fn decode(&self, e: &[u8]) -> (u64, i64, i64, u32, u32, u8, u8) {
        (
            le_u64(e, 0),
            le_i64(e, 8),
            le_i64(e, 16),
            le_u32(e, 24),
            le_u32(e, 28),
            le_bytes::<1>(e, 32)[0],
            le_bytes::<1>(e, 33)[0],
        )
    }

    fn events_of(&self, order_ref: u64) -> Vec<AccessEvent> {
        let all = self.events();
        let n = all.len() / ACCESS_EVENT_SIZE;
        let lo = self
            .fences
            .partition_point(|x| *x < order_ref)
            .saturating_sub(1)
            * FENCE;
        let hi = (self.fences.partition_point(|x| *x <= order_ref) * FENCE).min(n);
        if lo >= hi {
            return Vec::new();
        }
        let mut out = Vec::new();
        for e in entries(all, ACCESS_EVENT_SIZE, lo, hi).chunks_exact(ACCESS_EVENT_SIZE) {
            let (r, _, at, _, actor, kind, action) = self.decode(e);
            if r == order_ref {
                out.push(AccessEvent {
                    actor_kind: ACTOR_KINDS
                        .get(kind as usize)
                        .copied()
                        .unwrap_or("staff")
                        .to_string(),
                    actor_id: self.actors.get(actor as usize).cloned().unwrap_or_default(),
                    action: ACTIONS
                        .get(action as usize)
                        .copied()
                        .unwrap_or("view")
                        .to_string(),
                    at,
                });
            }
        }
        out
    }

    /// Distinct orders per account in the window (and city), keyed by (kind code, actor id).
    fn count_window(&self, city: Option<u32>, from: i64, to: i64) -> BTreeMap<(u8, u32), u64> {
        let mut counts = BTreeMap::new();
        let mut last: Option<(u64, u8, u32)> = None;
        for e in self.events().chunks_exact(ACCESS_EVENT_SIZE) {
            let (r, order_at, _, c, actor, kind, _) = self.decode(e);
            if city.is_some_and(|x| x != c) || order_at < from || order_at > to {
                continue;
            }
            // Events are sorted by (ref, kind, actor, ...): repeats of one account on one
            // order are adjacent, and an order counts once per account.
            if last == Some((r, kind, actor)) {
                continue;
            }
            last = Some((r, kind, actor));
            *counts.entry((kind, actor)).or_insert(0) += 1;
        }
        counts
    }
}

/// Deletes temp files and chunk files the manifest does not list (left by an interrupted run:
/// a chunk renamed into place whose manifest update never happened is rebuilt identically),
/// and a postings file the manifest does not record (the import builds it again).
fn remove_strays(dir: &Path, m: &Manifest) -> Result<(), MatchError> {
    let mut listed: BTreeSet<String> = m.chunks.iter().map(|c| c.file.clone()).collect();
    if m.postings_bytes.is_some() {
        listed.insert(postings::FILE.to_string());
    }
    for entry in fs::read_dir(dir).map_err(|e| MatchError::io(dir, e))? {
        let entry = entry.map_err(|e| MatchError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let index_file =
            (name.starts_with("chunk-") && name.ends_with(".lwm")) || name == postings::FILE;
        let stray = name.ends_with(".tmp") || (index_file && !listed.contains(&name));
        if stray {
            fs::remove_file(entry.path()).map_err(|e| MatchError::io(entry.path(), e))?;
        }
    }
    Ok(())
}

impl ImportRun<'_> {
    /// Reader thread → worker threads → this thread, which merges batches in input order into
    /// chunks → writer thread, which sorts and writes each chunk file; this thread then records
    /// the chunk in the manifest. Workers never wait for a chunk to be sorted and written.
    fn pipeline(
        &self,
        mut reader: RowReader,
        total: u64,
        manifest: &mut Manifest,
        dict: &mut Dict,
    ) -> Result<(), MatchError> {
        let chunk_rows = self.opts.chunk_rows;
        let threads = self.opts.threads.max(1);
        let map = reader.map.clone();
        let stop = AtomicBool::new(false);
        let dir = self.dir;
        std::thread::scope(|s| -> Result<(), MatchError> {
            // Receivers live inside this closure so that an early return or a panic here (the
            // progress callback may panic) drops them, which unblocks and ends every thread.
            let (work_tx, work_rx) = mpsc::sync_channel::<WorkBatch>(threads * 2);
            let work_rx = Arc::new(Mutex::new(work_rx));
            let (res_tx, res_rx) = mpsc::sync_channel::<Msg>(threads * 4);
            let (chunk_tx, chunk_rx) = mpsc::sync_channel::<ChunkJob>(1);
            let (written_tx, written_rx) = mpsc::channel::<Result<u64, MatchError>>();
            {
                let res_tx = res_tx.clone();
                let stop = &stop;
                s.spawn(move || {
                    let mut seq = 0u64;
                    let mut in_chunk = 0u64;
                    let mut rows = RawBatch::default();
                    loop {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        let got = match reader.next_into(&mut rows) {
                            Ok(g) => g,
                            Err(e) => {
                                let _ = res_tx.send(Msg::Fatal(e));
                                return;
                            }
                        };
                        let at_end = !got;
                        if got {
                            in_chunk += 1;
                        }
                        // A chunk ends after `chunk_rows` rows, or at the end of the file; the
                        // batch that ends it may be empty when the file ends right after a full
                        // batch.
                        let ends_chunk = in_chunk == chunk_rows || (at_end && in_chunk > 0);
                        if ends_chunk || rows.len() >= BATCH_ROWS || rows.bytes() >= BATCH_BYTES {
                            let batch = WorkBatch {
                                seq,
                                rows: std::mem::take(&mut rows),
                                end: reader.position(),
                                ends_chunk,
                            };
                            seq += 1;
                            if ends_chunk {
                                in_chunk = 0;
                            }
                            if work_tx.send(batch).is_err() {
                                return;
                            }
                        }
                        if at_end {
                            let _ = res_tx.send(Msg::Eof(seq));
                            return;
                        }
                    }
                });
            }
            for _ in 0..threads {
                let work_rx = Arc::clone(&work_rx);
                let res_tx = res_tx.clone();
                let blinder = self.blinder.clone();
                let map = map.clone();
                s.spawn(move || {
                    let mut cache = TokenCache::default();
                    loop {
                        let batch = {
                            let Ok(rx) = work_rx.lock() else { return };
                            match rx.recv() {
                                Ok(b) => b,
                                Err(_) => return,
                            }
                        };
                        let n = batch.rows.len();
                        let mut text = String::with_capacity(n * 48);
                        let mut addr = Vec::with_capacity(n * 20);
                        let mut outcomes = Vec::with_capacity(n);
                        for i in 0..n {
                            let Some((line, row)) = batch.rows.row(i) else {
                                continue;
                            };
                            let o = process_record(
                                row,
                                map.as_ref(),
                                &blinder,
                                &mut cache,
                                &mut text,
                                &mut addr,
                            )
                            .map_err(|why| (line, why));
                            outcomes.push(o);
                        }
                        let done = DoneBatch {
                            seq: batch.seq,
                            outcomes,
                            text,
                            addr,
                            end: batch.end,
                            ends_chunk: batch.ends_chunk,
                        };
                        if res_tx.send(Msg::Done(done)).is_err() {
                            return;
                        }
                    }
                });
            }
            s.spawn(move || {
                for job in chunk_rx {
                    let r = job.builder.write(dir, &job.name, job.first_ref);
                    if written_tx.send(r).is_err() {
                        return;
                    }
                }
            });
            drop(res_tx);
            let result = self.merge(&res_rx, chunk_tx, &written_rx, total, manifest, dict);
            if result.is_err() {
                stop.store(true, Ordering::Relaxed);
            }
            drop(res_rx);
            result
        })
    }

    fn merge(
        &self,
        res_rx: &mpsc::Receiver<Msg>,
        chunk_tx: mpsc::SyncSender<ChunkJob>,
        written_rx: &mpsc::Receiver<Result<u64, MatchError>>,
        total: u64,
        manifest: &mut Manifest,
        dict: &mut Dict,
    ) -> Result<(), MatchError> {
        let capacity = self.opts.chunk_rows.min(DEFAULT_CHUNK_ROWS) as usize;
        let mut pending: BTreeMap<u64, DoneBatch> = BTreeMap::new();
        let mut next = 0u64;
        let mut eof: Option<u64> = None;
        let mut builder = ChunkBuilder::new(capacity);
        let mut skipped_kept: Vec<(u64, String)> = Vec::new();
        let mut kept_total = manifest.skipped.len();
        let mut inflight: std::collections::VecDeque<PendingChunk> = Default::default();
        let mut next_ref: u64 = manifest.chunks.iter().map(|c| c.orders).sum();
        while let Ok(msg) = res_rx.recv() {
            match msg {
                Msg::Fatal(e) => return Err(e),
                Msg::Eof(n) => eof = Some(n),
                Msg::Done(d) => {
                    pending.insert(d.seq, d);
                }
            }
            while let Some(d) = pending.remove(&next) {
                next += 1;
                for outcome in &d.outcomes {
                    builder.rows += 1;
                    let skipped = match outcome {
                        Ok(rec) => match builder.add(rec, &d.text, &d.addr, dict) {
                            Ok(()) => None,
                            // The line is lost with the arena; chunk overflow is not a row fault
                            // anyway, so report it as an error instead.
                            Err(why) => return Err(MatchError::Internal(why)),
                        },
                        Err((line, why)) => Some((*line, why.clone())),
                    };
                    if let Some(s) = skipped {
                        builder.skipped += 1;
                        if kept_total < MAX_SKIPPED_KEPT {
                            skipped_kept.push(s);
                            kept_total += 1;
                        }
                    }
                }
                if d.ends_chunk {
                    let full = std::mem::replace(&mut builder, ChunkBuilder::new(capacity));
                    let k = manifest.chunks.len() + inflight.len();
                    let name = chunk_name(k);
                    let first_ref = next_ref;
                    let info = ChunkInfo {
                        file: name.clone(),
                        first_ref,
                        orders: u64::from(full.orders),
                        rows: full.rows,
                        skipped: full.skipped,
                        end_offset: d.end.0,
                        end_line: d.end.1,
                        bytes: 0,
                    };
                    next_ref += info.orders;
                    inflight.push_back(PendingChunk {
                        info,
                        skipped: std::mem::take(&mut skipped_kept),
                    });
                    let job = ChunkJob {
                        builder: full,
                        name,
                        first_ref,
                    };
                    chunk_tx
                        .send(job)
                        .map_err(|_| MatchError::Internal("chunk writer stopped".into()))?;
                }
                while let Ok(w) = written_rx.try_recv() {
                    self.record_chunk(w?, &mut inflight, manifest)?;
                }
                (self.progress)(d.end.0, total);
            }
        }
        drop(chunk_tx);
        while !inflight.is_empty() {
            let w = written_rx
                .recv()
                .map_err(|_| MatchError::Internal("chunk writer stopped".into()))?;
            self.record_chunk(w?, &mut inflight, manifest)?;
        }
        match eof {
            Some(n) if n == next && pending.is_empty() => Ok(()),
            _ => Err(MatchError::Internal(
                "import stopped before reading the whole file (a worker thread failed)".into(),
            )),
        }
    }

    /// The writer finished the oldest chunk in flight: record it in the manifest.
    fn record_chunk(
        &self,
        bytes: u64,
        inflight: &mut std::collections::VecDeque<PendingChunk>,
        manifest: &mut Manifest,
    ) -> Result<(), MatchError> {
        let mut p = inflight
            .pop_front()
            .ok_or_else(|| MatchError::Internal("chunk written but none in flight".into()))?;
        p.info.bytes = bytes;
        manifest.chunks.push(p.info);
        manifest.skipped.extend(p.skipped);
        write_manifest(self.dir, manifest)
    }
}

impl RecordSource for LocalIndex {
    fn candidates(&self, query: &TokenQuery) -> Result<CandidateSet<'_>, MatchError> {
        if query.len() > MAX_QUERY_TOKENS {
            return Err(MatchError::Query(format!(
                "{} tokens in one query; at most {MAX_QUERY_TOKENS}",
                query.len()
            )));
        }
        if let Some(problem) = query.problem() {
            return Err(MatchError::Query(problem));
        }
        let limit = match query.limit_per_token {
            0 => DEFAULT_LIMIT_PER_TOKEN,
            n => n.min(MAX_LIMIT_PER_TOKEN),
        } as usize;
        // (kind, token, the canonical city and district key when narrowed to them).
        type Lookup<'q> = (usize, u64, Option<(&'q str, Option<u32>)>);
        let mut lookups: Vec<Lookup<'_>> = Vec::with_capacity(query.len());
        for (kind, tokens) in [
            (P_PHONE, &query.phone),
            (P_MASKED, &query.masked),
            (P_NAME, &query.name),
            (P_PINYIN, &query.pinyin),
        ] {
            lookups.extend(tokens.iter().map(|t| (kind, t.0, None)));
        }
        for (kind, tokens) in [
            (P_MASKED, &query.masked_in_city),
            (P_NAME, &query.name_in_city),
            (P_PINYIN, &query.pinyin_in_city),
        ] {
            lookups.extend(tokens.iter().map(|t| {
                let district = t.district.map(|d| district_key(d.0));
                (kind, t.token.0, Some((t.city.as_str(), district)))
            }));
        }
        lookups.sort_unstable();
        lookups.dedup();
        let runs = par_runs(&lookups, 256, |run| {
            let mut refs = Vec::new();
            for &(kind, token, city) in run {
                let start = refs.len();
                match city {
                    None => self.lookup(kind, token, start + limit, &mut refs),
                    Some(place) => {
                        self.lookup_in_city(kind, token, place, start + limit, &mut refs)
                    }
                }
            }
            refs
        });
        let mut refs: Vec<u64> = runs.into_iter().flatten().collect();
        refs.sort_unstable();
        refs.dedup();
        // Only a damaged postings file names an order the index does not hold.
        if refs.last().is_some_and(|r| *r >= self.orders) {
            return Err(MatchError::index(
                self.postings.path(),
                "postings name an order the index does not hold",
            ));
        }
        self.materialise(&refs)
    }

    fn details(&self, refs: &[u64]) -> Result<Vec<OrderDetails>, MatchError> {
        let runs = par_runs(refs, 1024, |run| {
            run.iter()
                .map(|r| self.order_details(*r))
                .collect::<Result<Vec<_>, _>>()
        });
        let mut out = Vec::with_capacity(refs.len());
        for run in runs {
            out.extend(run?);
        }
        Ok(out)
    }

    fn base_counts(
        &self,
        city: Option<&str>,
        from: i64,
        to: i64,
        only: Option<&[ActorRef]>,
    ) -> Result<BaseCounts, MatchError> {
        let mut out = BaseCounts {
            city: city.map(str::to_string),
            from,
            to,
            total: 0,
            actors: Vec::new(),
        };
        let city_id = match city {
            Some(c) => match self.dict.ids.get(normalise::canonical_city(c).as_str()) {
                Some(id) => Some(*id),
                None => return Ok(out),
            },
            None => None,
        };
        let mut counts = WindowCounts {
            total: 0,
            by_kind: [Vec::new(), Vec::new(), Vec::new()],
            ids: self.dict.names.len(),
        };
        for c in &self.chunks {
            c.count_window(city_id, from, to, &mut counts)?;
        }
        out.total = counts.total;
        const KINDS: [&str; 3] = ["merchant", "rider", "partner"];
        let wanted: Option<BTreeSet<(&str, &str)>> = only.map(|list| {
            list.iter()
                .map(|a| (a.actor_kind.as_str(), a.actor_id.as_str()))
                .collect()
        });
        let count = |k: usize, id: u32| counts.by_kind[k].get(id as usize).copied().unwrap_or(0);
        match &wanted {
            Some(wanted) => {
                for (kind, id) in wanted {
                    let Some(k) = KINDS.iter().position(|x| x == kind) else {
                        continue;
                    };
                    let n = self.dict.ids.get(*id).map_or(0, |d| count(k, *d));
                    if n > 0 {
                        out.actors.push(ActorCount {
                            actor_kind: (*kind).to_string(),
                            actor_id: (*id).to_string(),
                            orders: n,
                        });
                    }
                }
            }
            None => {
                for (k, kind) in KINDS.iter().enumerate() {
                    for (id, n) in counts.by_kind[k].iter().enumerate() {
                        if *n > 0 {
                            out.actors.push(ActorCount {
                                actor_kind: (*kind).to_string(),
                                actor_id: self.dict.name(id as u32).to_string(),
                                orders: *n,
                            });
                        }
                    }
                }
            }
        }
        if let Some(a) = &self.access {
            for ((kind, actor), n) in a.count_window(city_id, from, to) {
                let kind = account_kind(ACTOR_KINDS.get(kind as usize).copied().unwrap_or("staff"));
                let id = a.actors.get(actor as usize).map_or("", String::as_str);
                if wanted
                    .as_ref()
                    .is_some_and(|w| !w.contains(&(kind.as_str(), id)))
                {
                    continue;
                }
                out.actors.push(ActorCount {
                    actor_kind: kind,
                    actor_id: id.to_string(),
                    orders: n,
                });
            }
        }
        out.actors
            .sort_by(|a, b| (&a.actor_kind, &a.actor_id).cmp(&(&b.actor_kind, &b.actor_id)));
        Ok(out)
    }
}

/// The attribution kind of an access-log account: "staff_account", "merchant_account", ...
pub fn account_kind(log_kind: &str) -> String {
    format!("{log_kind}_account")
}

/// The state of the index in `dir` for operators (the records API): whether it exists and is
/// complete, orders, chunks, rows skipped, the access log. Counts only; no token, no key.
pub fn status(dir: &Path) -> Result<serde_json::Value, MatchError> {
    let Some(m) = read_manifest(dir)? else {
        return Ok(serde_json::json!({"present": false}));
    };
    let orders: u64 = m.chunks.iter().map(|c| c.orders).sum();
    let rows: u64 = m.chunks.iter().map(|c| c.rows).sum();
    let skipped: u64 = m.chunks.iter().map(|c| c.skipped).sum();
    let postings = m.postings_bytes.unwrap_or(0);
    let bytes: u64 = m.chunks.iter().map(|c| c.bytes).sum::<u64>() + postings;
    Ok(serde_json::json!({
        "present": true,
        "format": m.format,
        // An index written by an older leakwatch must be re-imported before it can be opened.
        "format_current": m.format == FORMAT_VERSION,
        "complete": m.complete,
        "orders": orders,
        "rows_read": rows,
        "rows_skipped": skipped,
        "chunks": m.chunks.len(),
        "index_bytes": bytes,
        "access_log_events": m.access_log.as_ref().map(|a| a.events),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_days_cover_exactly_the_full_days_of_a_window() {
        let d = DAY_SECS;
        // Aligned on both ends: every day whole.
        assert_eq!(
            whole_days(10 * d, 12 * d - 1),
            Some((10, 11, 10 * d, 12 * d - 1))
        );
        // Partial at both ends.
        assert_eq!(
            whole_days(10 * d + 1, 13 * d - 2),
            Some((11, 11, 11 * d, 12 * d - 1))
        );
        // Less than a day, or no whole day inside.
        assert_eq!(whole_days(10 * d + 5, 11 * d + 5), None);
        assert_eq!(whole_days(7, 7), None);
        // Negative times and the extremes of i64 neither panic nor overflow.
        assert_eq!(whole_days(-d, -1), Some((-1, -1, -d, -1)));
        let (first, last, start, end) = whole_days(i64::MIN, i64::MAX).expect("days");
        assert!(first < last && start < 0 && end > 0);
        assert_eq!((start.rem_euclid(d), end.rem_euclid(d)), (0, d - 1));
        assert!(whole_days(i64::MAX - 5, i64::MAX).is_none());
    }

    #[test]
    fn day_sections_count_each_order_once_per_city_and_day() {
        let d = DAY_SECS;
        // (city, created_at, merchant, rider, partner), sorted as in a chunk.
        let time = vec![
            (1, 0, 5, 7, 9),
            (1, 10, 5, 0, 9),
            (1, d, 6, 7, 9),
            (2, -1, 5, 7, 0),
        ];
        let (days, counts) = day_sections(&time).expect("sections");
        let entries: Vec<DayEntry> = days.chunks_exact(DAY_SIZE).map(decode_day).collect();
        let pairs: Vec<(u32, u32)> = counts
            .chunks_exact(DAY_COUNT_SIZE)
            .map(|b| (le_u32(b, 0), le_u32(b, 4)))
            .collect();
        let summary: Vec<(u32, i64, u32, u32, [u32; 3])> = entries
            .iter()
            .map(|e| (e.city, e.day, e.orders, e.start, e.counts))
            .collect();
        assert_eq!(
            summary,
            vec![
                (1, 0, 2, 0, [1, 1, 1]),
                (1, 1, 1, 3, [1, 1, 1]),
                (2, -1, 1, 6, [1, 1, 0]),
            ]
        );
        assert_eq!(
            pairs,
            vec![
                (5, 2),
                (7, 1),
                (9, 2),
                (6, 1),
                (7, 1),
                (9, 1),
                (5, 1),
                (7, 1)
            ]
        );
    }
}
