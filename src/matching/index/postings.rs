//! Postings: for each token, the orders that carry it, in one file for the whole index.
//!
//! # File
//!
//! A 16-byte preamble (`LWMPST01`, version u32 = 7, section count u32 = 10), then `first_ref`
//! u64 and `orders` u64 (the order refs the file covers), and a table of (offset u64, length
//! u64) per section; all integers little-endian. Sections 0–4 are the postings of phone,
//! masked phone, name, pinyin and order-id hash; sections 5–9 their fences (the token of every
//! [`FENCE`]th posting). Entries:
//!
//! | kind | entry | sorted by |
//! |---|---|---|
//! | phone, order-id hash | token u64, ref u32 | token, ref |
//! | masked phone | token u64, city u32, ref u32 | token, city, ref |
//! | name, pinyin | token u64, city u32, district key u32, ref u32 | token, city, ref |
//!
//! `ref` is the order's global reference, so an index holds at most 2^32 − 1 orders.
//!
//! # One file for the index, built at the end of an import
//!
//! The chunk files hold everything a posting says (each forward record has the order's
//! tokens and city, and its order id), so an import writes only the chunks and, once the
//! last one is recorded, [`build`]s this file from them. Until then the index cannot be
//! opened; an import interrupted while building it builds it again from the same chunks, so
//! resuming costs no chunk, and the file is the same bytes either way.
//!
//! A lookup reads one run per token, whatever the number of chunks: on the 10M-order
//! benchmark, a 5,000-row check asks 5,100 tokens, which per-chunk postings made 51,000
//! cache-missing block reads (one per token and chunk); one file took ~10 ms off the check.
//!
//! Building sorts one posting kind at a time: gathered from the forward records on every
//! core, placed in buckets by the token's top bits (a counting sort: tokens are uniform
//! keyed hashes), and each bucket sorted; a writer thread writes a kind while the next is
//! sorted. At 10M orders this takes ~2–3 s of the import (see the README) and ~0.9 GB.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use memmap2::Mmap;

use super::{
    ChunkReader, FENCE, FORMAT_VERSION, N_POSTINGS, entries, has_city, has_district, le_u32,
    le_u64, lower_bound, map_file, posting_size, read_sections, section, sync_dir,
};
use crate::matching::{MatchError, cores, joined, par_runs};

const MAGIC: &[u8; 8] = b"LWMPST01";
/// Postings sections, then fence sections.
const N_SECTIONS: usize = 2 * N_POSTINGS;
const HEADER: usize = 8 + 4 + 4 + 8 + 8;
const HEADER_LEN: usize = HEADER + N_SECTIONS * 16;
/// The postings file of an index.
pub(super) const FILE: &str = "postings.lwp";

/// The most orders an index can hold: refs are stored as u32.
pub(super) const MAX_ORDERS: u64 = u32::MAX as u64;

/// One posting in memory: token, city, district key, ref (city and district are 0 for kinds
/// that do not carry them).
pub(super) type Posting = (u64, u32, u32, u32);

fn encode(kind: usize, p: &Posting, out: &mut Vec<u8>) {
    out.extend_from_slice(&p.0.to_le_bytes());
    if has_city(kind) {
        out.extend_from_slice(&p.1.to_le_bytes());
    }
    if has_district(kind) {
        out.extend_from_slice(&p.2.to_le_bytes());
    }
    out.extend_from_slice(&p.3.to_le_bytes());
}

/// The header of a postings file with `counts[k]` postings of kind k, its sections back to
/// back after it.
fn header(first_ref: u64, orders: u64, counts: &[usize; N_POSTINGS]) -> Vec<u8> {
    let mut lens = [0u64; N_SECTIONS];
    for (k, n) in counts.iter().enumerate() {
        lens[k] = (n * posting_size(k)) as u64;
        lens[N_POSTINGS + k] = n.div_ceil(FENCE) as u64 * 8;
    }
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    h.extend_from_slice(&(N_SECTIONS as u32).to_le_bytes());
    h.extend_from_slice(&first_ref.to_le_bytes());
    h.extend_from_slice(&orders.to_le_bytes());
    let mut at = HEADER_LEN as u64;
    for len in lens {
        h.extend_from_slice(&at.to_le_bytes());
        h.extend_from_slice(&len.to_le_bytes());
        at += len;
    }
    h
}

/// A postings file, memory-mapped.
pub(super) struct PostingsReader {
    path: PathBuf,
    map: Mmap,
    sec: [(usize, usize); N_SECTIONS],
    pub(super) first_ref: u64,
    pub(super) orders: u64,
    fences: Vec<Vec<u64>>,
    /// Per posting kind, a directory of the fences by the token's top `bits` bits: the fences
    /// whose tokens start with bits `b` are `dir[b]..dir[b + 1]`.
    dirs: Vec<(u32, Vec<u32>)>,
}

impl PostingsReader {
    /// Maps and checks the postings file at `path`, which the manifest says is `bytes` long.
    pub(super) fn open(path: &Path, bytes: u64) -> Result<PostingsReader, MatchError> {
        let map = map_file(path, HEADER_LEN, Some(bytes))?;
        let sec = read_sections::<N_SECTIONS>(&map, path, MAGIC, HEADER)?;
        let first_ref = le_u64(&map, 16);
        let orders = le_u64(&map, 24);
        let len = |k: usize| sec.get(k).map_or(0, |s| s.1);
        let bad = (0..N_POSTINGS).any(|k| {
            let n = len(k) / posting_size(k);
            len(k) % posting_size(k) != 0 || len(N_POSTINGS + k) != n.div_ceil(FENCE) * 8
        }) || first_ref
            .checked_add(orders)
            .is_none_or(|end| end > MAX_ORDERS);
        if bad {
            return Err(MatchError::index(path, "inconsistent section sizes"));
        }
        let fences: Vec<Vec<u64>> = (0..N_POSTINGS)
            .map(|k| {
                section(&map, &sec, N_POSTINGS + k)
                    .chunks_exact(8)
                    .map(|b| le_u64(b, 0))
                    .collect()
            })
            .collect();
        let dirs = fences
            .iter()
            .map(|f| {
                let bits = dir_bits(f.len());
                (bits, fence_directory(f, bits))
            })
            .collect();
        Ok(PostingsReader {
            path: path.to_path_buf(),
            map,
            sec,
            first_ref,
            orders,
            fences,
            dirs,
        })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    fn postings(&self, kind: usize) -> &[u8] {
        section(&self.map, &self.sec, kind)
    }

    /// The postings of `token` in posting `kind`: a run of whole entries (empty if none).
    fn run(&self, kind: usize, token: u64) -> &[u8] {
        let (Some(f), Some((bits, dir))) = (self.fences.get(kind), self.dirs.get(kind)) else {
            return &[];
        };
        let size = posting_size(kind);
        let post = self.postings(kind);
        let n = post.len() / size;
        // Entries equal to `token` start at the earliest in the block before the first fence
        // that is >= token, and end before the first block whose fence is > token.
        let (below, not_above) = fence_bounds(f, dir, *bits, token);
        let lo = below.saturating_sub(1) * FENCE;
        let hi = (not_above * FENCE).min(n);
        if lo >= hi {
            return &[];
        }
        // Postings are sorted by token first: find the first with `token`, take the run.
        // Tokens are uniform (keyed hashes), so interpolating between the fences around the
        // block lands within a few entries of it; walking from there reads one or two cache
        // lines where a binary search would miss the cache at every probe.
        let block = entries(post, size, lo, hi);
        let m = block.len() / size;
        let key = |i: usize| le_u64(block, i * size);
        let first = f.get(lo / FENCE).copied().unwrap_or(0);
        let last = f.get(hi.div_ceil(FENCE)).copied().unwrap_or(u64::MAX);
        let span = u128::from(last.saturating_sub(first)) + 1;
        let guess = u128::from(token.saturating_sub(first)) * m as u128 / span;
        let mut a = (guess as usize).min(m.saturating_sub(1));
        if key(a) < token {
            while a < m && key(a) < token {
                a += 1;
            }
        } else {
            while a > 0 && key(a - 1) >= token {
                a -= 1;
            }
        }
        let mut b = a;
        while b < m && key(b) == token {
            b += 1;
        }
        block.get(a * size..b * size).unwrap_or(&[])
    }

    /// Refs of the orders with `token` in posting `kind`, appended to `out`: the lowest
    /// `limit - out.len()` of them at most.
    pub(super) fn lookup(&self, kind: usize, token: u64, limit: usize, out: &mut Vec<u64>) {
        let size = posting_size(kind);
        let run = self.run(kind, token);
        let room = limit.saturating_sub(out.len());
        let refs = run
            .chunks_exact(size)
            .map(|e| u64::from(le_u32(e, size - 4)));
        if has_city(kind) {
            // Sorted by city, then order: the lowest orders may be anywhere in the run.
            let start = out.len();
            out.extend(refs);
            if let Some(found) = out.get_mut(start..) {
                found.sort_unstable();
            }
            out.truncate(start + room);
        } else {
            out.extend(refs.take(room));
        }
    }

    /// As [`PostingsReader::lookup`], only the orders whose city id is one of `cities` (`kind`
    /// must carry cities) and, when `district` is given and `kind` carries districts, whose
    /// district key is that one or 0 (no district).
    pub(super) fn lookup_in_cities(
        &self,
        kind: usize,
        token: u64,
        cities: &[u32],
        district: Option<u32>,
        limit: usize,
        out: &mut Vec<u64>,
    ) {
        if !has_city(kind) {
            return;
        }
        let size = posting_size(kind);
        let run = self.run(kind, token);
        let n = run.len() / size;
        let city_at = |i: usize| le_u32(run, i * size + 8);
        // Orders without a district (key 0) never contradict a row's district.
        let district = district.filter(|_| has_district(kind));
        let in_district = |e: &[u8]| district.is_none_or(|d| [0, d].contains(&le_u32(e, 12)));
        let start = out.len();
        for &city in cities {
            // The run is sorted by city, then order; the city's part is filtered by district.
            let lo = lower_bound(0, n, |i| city_at(i) < city);
            let hi = lower_bound(lo, n, |i| city_at(i) <= city);
            let part = run.get(lo * size..hi * size).unwrap_or(&[]);
            out.extend(
                part.chunks_exact(size)
                    .filter(|e| in_district(e))
                    .map(|e| u64::from(le_u32(e, size - 4))),
            );
        }
        // The lowest orders of all the cities together, as a plain lookup would keep.
        if let Some(found) = out.get_mut(start..) {
            found.sort_unstable();
        }
        out.truncate(limit.max(start));
    }
}

/// Bits of the fence directory for `fences` fences: about one fence per bucket, between 4
/// and 20 bits (16 buckets to 4 MiB of directory).
fn dir_bits(fences: usize) -> u32 {
    fences.max(16).ilog2().min(20)
}

/// The fence directory of `fences` (sorted) by the top `bits` bits: entry `b` is the first
/// fence whose top bits are `b` or more.
fn fence_directory(fences: &[u64], bits: u32) -> Vec<u32> {
    let buckets = 1usize << bits;
    let mut dir = Vec::with_capacity(buckets + 1);
    let mut i = 0usize;
    for b in 0..=buckets {
        while i < fences.len() && ((fences[i] >> (64 - bits)) as usize) < b {
            i += 1;
        }
        dir.push(i as u32);
    }
    dir
}

/// The number of fences below `token`, and of fences not above it: `f.partition_point(|x| *x <
/// token)` and `f.partition_point(|x| *x <= token)`, searching only the token's bucket of the
/// directory `dir` (fences before it are smaller than the token, fences after it larger).
fn fence_bounds(f: &[u64], dir: &[u32], bits: u32, token: u64) -> (usize, usize) {
    let b = (token >> (64 - bits)) as usize;
    let (b0, b1) = match (dir.get(b), dir.get(b + 1)) {
        (Some(&b0), Some(&b1)) if b0 <= b1 => (b0 as usize, b1 as usize),
        _ => (0, f.len()),
    };
    let bucket = f.get(b0..b1).unwrap_or(&[]);
    let below = b0 + bucket.partition_point(|x| *x < token);
    // Unless a fence equals the token (rare), the fences above it start at the same place.
    let not_above = match f.get(below) {
        Some(x) if *x == token => b0 + bucket.partition_point(|x| *x <= token),
        _ => below,
    };
    (below, not_above)
}

/// Builds `dir/`[`FILE`] from `chunks` (every chunk of the index, in ref order), written
/// atomically; returns its size. One posting kind at a time: memory is one kind's postings
/// twice (gathered and sorted, 24 bytes each) and two kinds encoded, ~0.9 GB at 10M orders.
pub(super) fn build(dir: &Path, chunks: &[ChunkReader]) -> Result<u64, MatchError> {
    let mut orders = 0u64;
    for c in chunks {
        if c.first_ref != orders {
            return Err(MatchError::index(
                &c.path,
                "chunk does not follow the previous chunk's orders",
            ));
        }
        orders += u64::from(c.orders);
    }
    if orders > MAX_ORDERS {
        return Err(MatchError::index(
            dir,
            format!("more than {MAX_ORDERS} orders"),
        ));
    }
    let tmp = dir.join(format!("{FILE}.tmp"));
    let path = dir.join(FILE);
    let file = File::create(&tmp).map_err(|e| MatchError::io(&tmp, e))?;
    let io = |e| MatchError::io(&tmp, e);
    let mut counts = [0usize; N_POSTINGS];
    // Sections in file order: the postings of each kind, then the fences of each kind; the
    // header, which needs the counts, last. A writer thread writes one kind while the next
    // is sorted (writing is bound by the disk, sorting by the cores); two buffers take turns.
    let mut fences: Vec<u8> = Vec::new();
    let mut out = &file;
    out.write_all(&[0u8; HEADER_LEN]).map_err(io)?;
    std::thread::scope(|s| -> Result<(), MatchError> {
        let (full_tx, full_rx) = mpsc::sync_channel::<Vec<u8>>(1);
        let (empty_tx, empty_rx) = mpsc::channel::<Vec<u8>>();
        let file = &file;
        let writer = s.spawn(move || -> std::io::Result<()> {
            let mut out = file;
            for bytes in full_rx {
                out.write_all(&bytes)?;
                // The builder may have stopped on an error: nobody to give it back to.
                let _ = empty_tx.send(bytes);
            }
            Ok(())
        });
        let mut bufs = SortBuffers::default();
        let mut spare = vec![Vec::new(), Vec::new()];
        let built = (|| -> Result<(), MatchError> {
            for (kind, count) in counts.iter_mut().enumerate() {
                sorted_postings(chunks, kind, &mut bufs)?;
                let sorted = &bufs.out;
                *count = sorted.len();
                for p in sorted.iter().step_by(FENCE) {
                    fences.extend_from_slice(&p.0.to_le_bytes());
                }
                let mut bytes = match spare.pop() {
                    Some(b) => b,
                    None => empty_rx
                        .recv()
                        .map_err(|_| MatchError::Internal("postings writer stopped".into()))?,
                };
                bytes.clear();
                bytes.reserve(sorted.len() * posting_size(kind));
                for p in sorted {
                    encode(kind, p, &mut bytes);
                }
                full_tx
                    .send(bytes)
                    .map_err(|_| MatchError::Internal("postings writer stopped".into()))?;
            }
            full_tx
                .send(std::mem::take(&mut fences))
                .map_err(|_| MatchError::Internal("postings writer stopped".into()))
        })();
        drop(full_tx);
        let written = joined(writer).map_err(io);
        // A write error explains why the builder stopped: report it first.
        written.and(built)
    })?;
    let head = header(0, orders, &counts);
    file.write_all_at(&head, 0).map_err(io)?;
    file.sync_all().map_err(io)?;
    let bytes = file.metadata().map_err(io)?.len();
    drop(file);
    fs::rename(&tmp, &path).map_err(|e| MatchError::io(&path, e))?;
    sync_dir(dir)?;
    Ok(bytes)
}

/// Buffers reused for every posting kind, so their pages are faulted in once.
#[derive(Default)]
struct SortBuffers {
    /// Per core, the postings of its share of the chunks, in ref order.
    gathered: Vec<Vec<Posting>>,
    /// The sorted postings.
    out: Vec<Posting>,
}

/// The chunks' postings of `kind` into `bufs.out`, sorted by token, city, ref (unique within
/// a kind: an order has one token of each kind), on every core:
///
/// 1. each core gathers the postings of its share of the chunks from their forward records;
/// 2. a counting sort by the token's top bits places them in buckets (tokens are uniform
///    hashes, so a bucket gets about a thousand postings), each core filling a share of the
///    buckets from all the gathered postings;
/// 3. each core sorts its buckets with [`sort_bucket`].
fn sorted_postings(
    chunks: &[ChunkReader],
    kind: usize,
    bufs: &mut SortBuffers,
) -> Result<(), MatchError> {
    let cores = cores();
    let per_core = chunks.len().div_ceil(cores).max(1);
    bufs.gathered.resize_with(cores, Vec::new);
    std::thread::scope(|s| -> Result<(), MatchError> {
        let handles: Vec<_> = chunks
            .chunks(per_core)
            .zip(bufs.gathered.iter_mut())
            .map(|(run, v)| {
                v.clear();
                s.spawn(move || -> Result<(), MatchError> {
                    for c in run {
                        c.each_posting(kind, |p| v.push(p))?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            joined(h)?;
        }
        Ok(())
    })?;
    for v in bufs
        .gathered
        .iter_mut()
        .skip(chunks.len().div_ceil(per_core))
    {
        v.clear();
    }
    let gathered = &bufs.gathered;
    let n: usize = gathered.iter().map(Vec::len).sum();
    let bits = (n / 1024).max(1).ilog2().min(16);
    let buckets = 1usize << bits;
    // The top `bits` bits (none when `bits` is 0).
    let bucket = move |t: u64| (t >> (63 - bits) >> 1) as usize;
    let counts = par_runs(gathered, 1, |run| {
        let mut c = vec![0usize; buckets];
        for p in run.iter().flatten() {
            if let Some(x) = c.get_mut(bucket(p.0)) {
                *x += 1;
            }
        }
        c
    });
    // starts[b]: where bucket b begins; starts[buckets] = n.
    let mut starts = vec![0usize; buckets + 1];
    for c in counts {
        for (s, x) in starts.iter_mut().skip(1).zip(c) {
            *s += x;
        }
    }
    for b in 1..starts.len() {
        starts[b] += starts[b - 1];
    }
    let at = |b: usize| starts.get(b).copied().unwrap_or(n);
    // Bucket ranges of the cores: each ends at the first bucket start at or after its share.
    let mut cuts = vec![0usize];
    for k in 1..cores {
        cuts.push(starts.partition_point(|&x| x < n * k / cores).min(buckets));
    }
    cuts.push(buckets);
    let fill = |part: &mut [Posting], lo: usize, hi: usize| {
        let offset = at(lo);
        let mut next: Vec<usize> = (lo..hi).map(at).collect();
        for p in gathered.iter().flatten() {
            if let Some(i) = bucket(p.0).checked_sub(lo).and_then(|i| next.get_mut(i)) {
                if let Some(slot) = part.get_mut(*i - offset) {
                    *slot = *p;
                }
                *i += 1;
            }
        }
        let mut scratch = Vec::new();
        for b in lo..hi {
            if let Some(part) = part.get_mut(at(b) - offset..at(b + 1) - offset) {
                sort_bucket(part, bits, &mut scratch);
            }
        }
    };
    bufs.out.clear();
    bufs.out.resize(n, (0, 0, 0, 0));
    std::thread::scope(|s| {
        let mut rest: &mut [Posting] = &mut bufs.out;
        let mut parts = Vec::new();
        for w in cuts.windows(2) {
            let (part, tail) = std::mem::take(&mut rest).split_at_mut(at(w[1]) - at(w[0]));
            rest = tail;
            parts.push((part, w[0], w[1]));
        }
        // This thread takes the first range, a thread each the others.
        let mut parts = parts.into_iter();
        let first = parts.next();
        let fill = &fill;
        for (part, lo, hi) in parts {
            s.spawn(move || fill(part, lo, hi));
        }
        if let Some((part, lo, hi)) = first {
            fill(part, lo, hi);
        }
    });
    Ok(())
}

/// Sorts one bucket of postings (tokens sharing their top `bits` bits) by token, city, ref:
/// a counting sort by the next 8 bits of the token into `scratch`, then the few postings in
/// each of those 256 parts sorted by the whole key, and copied back.
fn sort_bucket(b: &mut [Posting], bits: u32, scratch: &mut Vec<Posting>) {
    let key = |p: &Posting| (p.0, p.1, p.3);
    if b.len() <= 64 {
        b.sort_unstable_by_key(key);
        return;
    }
    let shift = 56 - bits;
    let digit = |p: &Posting| ((p.0 >> shift) & 0xff) as usize;
    let mut starts = [0usize; 257];
    for p in b.iter() {
        starts[digit(p) + 1] += 1;
    }
    for d in 1..257 {
        starts[d] += starts[d - 1];
    }
    scratch.clear();
    scratch.resize(b.len(), (0, 0, 0, 0));
    let mut next = starts;
    for p in b.iter() {
        let d = digit(p);
        if let Some(slot) = scratch.get_mut(next[d]) {
            *slot = *p;
        }
        next[d] += 1;
    }
    for w in starts.windows(2) {
        if let Some(part) = scratch.get_mut(w[0]..w[1]) {
            part.sort_unstable_by_key(key);
        }
    }
    b.copy_from_slice(scratch);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::generator::{self, Plant};
    use crate::matching::{BlindKey, ImportOptions, LocalIndex};

    /// The postings file holds exactly the postings of the chunks' orders, each kind sorted
    /// by token, city, ref: the bucketed sort gives what a plain sort of everything gives.
    #[test]
    fn postings_file_is_every_chunks_postings_sorted() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let records = tmp.path().join("r.csv");
        generator::write_records_csv(&records, 20_000, 9, Plant::None).expect("generate");
        let dir = tmp.path().join("i");
        let opts = ImportOptions {
            chunk_rows: 3_000,
            threads: 2,
        };
        let key = BlindKey::new([3; 32]);
        LocalIndex::import_with(&dir, &key, &records, &|_, _| {}, &opts).expect("import");
        let mut chunks = Vec::new();
        for k in 0.. {
            let path = dir.join(super::super::chunk_name(k));
            let Ok(meta) = fs::metadata(&path) else { break };
            chunks.push(ChunkReader::open(&path, meta.len()).expect("chunk").0);
        }
        assert!(chunks.len() >= 7, "{} chunks", chunks.len());
        let orders: u64 = chunks.iter().map(|c| u64::from(c.orders)).sum();
        let path = dir.join(FILE);
        let bytes = fs::metadata(&path).expect("postings").len();
        let file = PostingsReader::open(&path, bytes).expect("open");
        assert_eq!((file.first_ref, file.orders), (0, orders));
        for kind in 0..N_POSTINGS {
            let mut expected = Vec::new();
            for c in &chunks {
                c.each_posting(kind, |p| expected.push(p))
                    .expect("postings");
            }
            expected.sort_unstable_by_key(|p| (p.0, p.1, p.3));
            let mut encoded = Vec::new();
            for p in &expected {
                encode(kind, p, &mut encoded);
            }
            assert!(expected.len() > 10_000, "kind {kind}: {}", expected.len());
            assert!(
                file.postings(kind) == encoded.as_slice(),
                "kind {kind} differs"
            );
            let fences: Vec<u64> = expected.iter().step_by(FENCE).map(|p| p.0).collect();
            assert_eq!(file.fences[kind], fences, "kind {kind} fences");
        }
    }

    #[test]
    fn bucket_sort_equals_a_plain_sort() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut scratch = Vec::new();
        for (bits, n) in [
            (0u32, 10usize),
            (0, 5_000),
            (4, 3_000),
            (13, 1_200),
            (16, 65),
        ] {
            // Tokens sharing their top `bits` bits, some repeated with other cities and refs.
            let top = rng.r#gen::<u64>() >> (64 - bits.max(1)) << (64 - bits.max(1));
            let top = if bits == 0 { 0 } else { top };
            let mut v: Vec<Posting> = (0..n)
                .map(|i| {
                    let low = if bits == 0 {
                        rng.r#gen()
                    } else {
                        rng.r#gen::<u64>() >> bits
                    };
                    let t = if i % 7 == 0 { top | 12345 } else { top | low };
                    (t, rng.gen_range(0..4), rng.r#gen(), i as u32)
                })
                .collect();
            let mut expected = v.clone();
            expected.sort_unstable_by_key(|p| (p.0, p.1, p.3));
            sort_bucket(&mut v, bits, &mut scratch);
            assert_eq!(v, expected, "{bits} bits, {n} postings");
        }
    }

    #[test]
    fn fence_directory_finds_what_a_full_search_finds() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for n in [0usize, 1, 2, 100, 9000, 80_000] {
            let bits = dir_bits(n);
            let bucket = |b: u64| b << (64 - bits);
            let mut f: Vec<u64> = (0..n).map(|_| rng.r#gen()).collect();
            // Repeated fences (a token with many postings), and fences on bucket edges.
            f.extend([bucket(5), bucket(5), bucket(6) - 1, 0, u64::MAX, u64::MAX]);
            f.sort_unstable();
            let dir = fence_directory(&f, bits);
            let mut probes: Vec<u64> = (0..2000).map(|_| rng.r#gen()).collect();
            probes.extend(f.iter().copied().step_by(7));
            probes.extend([0, 1, bucket(5) - 1, bucket(6), u64::MAX - 1, u64::MAX]);
            for t in probes {
                assert_eq!(
                    fence_bounds(&f, &dir, bits, t),
                    (
                        f.partition_point(|x| *x < t),
                        f.partition_point(|x| *x <= t)
                    ),
                    "token {t:#x} among {} fences",
                    f.len()
                );
            }
        }
    }
}
