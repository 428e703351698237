//! Record matching: checks a seller's sample rows against the platform's order records without
//! leakwatch ever holding the platform's customer data in the clear.
//!
//! The flow, and the module that owns each step:
//!
//! - [`normalise`]: phones, masked phones, names (with a toneless pinyin form), addresses
//!   (province / city / district plus fuzzy pieces) and times, folded to one canonical form.
//! - [`blind`]: the [`BlindKey`] and the keyed tokens (HMAC-SHA256, truncated) that replace every
//!   piece of customer data. Only tokens and non-personal order metadata are ever stored.
//! - [`index`]: the on-disk [`LocalIndex`] built from an order-records export (resumable import,
//!   posting arrays + forward table + per-day actor counts, memory-mapped for lookups), and
//!   the optional staff access log.
//! - [`matcher`]: [`Matcher::check`] turns sample rows into tokens, asks a [`RecordSource`] for
//!   candidate orders (a lean [`CandidateSet`]: tokens, time, city) and decides, row by row,
//!   which order (if any) the row describes; only then does it fetch the [`OrderDetails`] (order
//!   id, actors, access events) of the matched orders.
//! - [`attribution`]: ranks the actors (merchant, rider, delivery partner, accounts from the
//!   access log) that handled the matched orders far more often than their base rate.
//! - [`remote`]: the same [`RecordSource`] over HTTP (protocol version 2: candidates, then the
//!   details of the matched orders, then base counts), so the platform can keep the index and
//!   answer token queries itself; plus a reference server.
//! - [`generator`]: synthetic records and seller samples with a planted leak, for tests and the
//!   benchmark.
//!
//! Invariants shared by every file here: no raw name, phone or address is written to disk or
//! sent over the wire by this module; the key is never written by this module; nothing here
//! panics on bad input (errors are [`MatchError`]s, bad rows are reported, never dropped).
//!
//! The types below are both the Rust API and the JSON of the remote protocol (see [`remote`]),
//! except [`CandidateSet`], whose JSON form is defined in [`remote`].

pub mod attribution;
pub mod blind;
pub mod generator;
pub mod index;
pub mod matcher;
pub mod normalise;
pub mod remote;

mod records;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use attribution::MIN_TOUCHED;
pub use blind::{BlindKey, Blinder};
pub use generator::{GroundTruth, Plant, Truth, TruthOrder};
pub use index::{ImportOptions, ImportReport, LocalIndex};
pub use matcher::Matcher;
pub use remote::{RemoteSource, serve_reference};

/// One row of a seller's sample, as the extractor found it. Any field may be missing.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SampleInput {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub masked_phone: Option<String>,
    pub address: Option<String>,
    pub order_time: Option<String>, /* "MM-DD hh:mm" or "YYYY-MM-DD hh:mm" */
}

/// Everything that can go wrong in this module.
#[derive(Debug, thiserror::Error)]
pub enum MatchError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An input file (records, access log) is unusable as a whole: empty, not CSV/JSONL,
    /// required columns missing.
    #[error("{path}: {reason}")]
    Input { path: PathBuf, reason: String },
    /// The index directory is missing, unfinished, damaged or of another format.
    #[error("index {path}: {reason}")]
    Index { path: PathBuf, reason: String },
    /// The key given is not the key the index was built with.
    #[error("index {path} was built with a different key")]
    WrongKey { path: PathBuf },
    /// A key in hex form was malformed.
    #[error("bad blind key: {0}")]
    BadKey(String),
    /// A query was malformed or too large.
    #[error("bad query: {0}")]
    Query(String),
    /// The remote record source failed or answered something unusable.
    #[error("remote record source: {0}")]
    Remote(String),
    /// A background thread of the import stopped unexpectedly.
    #[error("internal: {0}")]
    Internal(String),
}

impl MatchError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        MatchError::Io {
            path: path.into(),
            source,
        }
    }
    pub(crate) fn index(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        MatchError::Index {
            path: path.into(),
            reason: reason.into(),
        }
    }
    pub(crate) fn input(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        MatchError::Input {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// The cores to spread work over: 1 to 8.
pub(crate) fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 8)
    })
}

/// The result of a scoped thread; its panic, if it panicked, passed on to the caller.
pub(crate) fn joined<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
    match h.join() {
        Ok(t) => t,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Maps `items` in runs, one per core (each of at least `min_run` items, so small inputs stay
/// on the calling thread), on scoped threads; the results come back in input order. A panic
/// in a run is passed on to the caller, as if the run had been called there.
pub(crate) fn par_runs<I: Sync, T: Send>(
    items: &[I],
    min_run: usize,
    f: impl Fn(&[I]) -> T + Sync,
) -> Vec<T> {
    let runs = (items.len() / min_run.max(1)).clamp(1, cores());
    if runs == 1 {
        return vec![f(items)];
    }
    let per = items.len().div_ceil(runs);
    let f = &f;
    std::thread::scope(|s| {
        let mut chunks = items.chunks(per);
        let first = chunks.next().unwrap_or(&[]);
        let others: Vec<_> = chunks.map(|run| s.spawn(move || f(run))).collect();
        let mut out = Vec::with_capacity(runs);
        out.push(f(first));
        out.extend(others.into_iter().map(joined));
        out
    })
}

/// A keyed 64-bit token (see [`blind`]). Written as 16 hex digits in JSON, because JSON numbers
/// above 2^53 lose precision in many parsers.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Token(pub u64);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({:016x})", self.0)
    }
}

impl Serialize for Token {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:016x}", self.0))
    }
}

impl<'de> Deserialize<'de> for Token {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.len() != 16 {
            return Err(serde::de::Error::custom("token must be 16 hex digits"));
        }
        u64::from_str_radix(&s, 16)
            .map(Token)
            .map_err(|_| serde::de::Error::custom("token must be 16 hex digits"))
    }
}

/// The tokens of a query: one list per field. A [`RecordSource`] returns every order that has
/// any of them (up to `limit_per_token` orders per token).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenQuery {
    /// Full-phone tokens.
    #[serde(default)]
    pub phone: Vec<Token>,
    /// Masked-phone (first 3 + last 4 digits) tokens.
    #[serde(default)]
    pub masked: Vec<Token>,
    /// Exact-name tokens.
    #[serde(default)]
    pub name: Vec<Token>,
    /// Toneless-pinyin name tokens.
    #[serde(default)]
    pub pinyin: Vec<Token>,
    /// Exact-name tokens narrowed to a city: only orders in that city, or without a city;
    /// and, when the token names a district, in that district or without one.
    #[serde(default)]
    pub name_in_city: Vec<CityToken>,
    /// Pinyin tokens narrowed to a city, as `name_in_city`.
    #[serde(default)]
    pub pinyin_in_city: Vec<CityToken>,
    /// Masked-phone tokens narrowed to a city, as `name_in_city` (never to a district).
    #[serde(default)]
    pub masked_in_city: Vec<CityToken>,
    /// Orders returned per token at most; 0 means the source's default. A token with more
    /// orders than this (a shop's phone, the commonest names) is cut to the lowest order refs.
    #[serde(default)]
    pub limit_per_token: u32,
}

/// A token that only counts in one city: the city's canonical name (as
/// [`normalise::canonical_city`] gives it), which is not personal data; for a name or pinyin
/// token, optionally also in one district (its keyed token).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CityToken {
    pub token: Token,
    pub city: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub district: Option<Token>,
}

/// Longest city name a query may carry, in bytes.
pub const MAX_CITY_BYTES: usize = 64;

impl TokenQuery {
    /// Number of tokens in the query.
    pub fn len(&self) -> usize {
        self.phone.len()
            + self.masked.len()
            + self.name.len()
            + self.pinyin.len()
            + self.name_in_city.len()
            + self.pinyin_in_city.len()
            + self.masked_in_city.len()
    }

    /// The first thing wrong with the query that its size does not already say: a city name
    /// longer than [`MAX_CITY_BYTES`], or a masked phone narrowed to a district.
    pub fn problem(&self) -> Option<String> {
        let long = self
            .name_in_city
            .iter()
            .chain(&self.pinyin_in_city)
            .chain(&self.masked_in_city)
            .find(|t| t.city.len() > MAX_CITY_BYTES)
            .map(|t| format!("a city of {} bytes; at most {MAX_CITY_BYTES}", t.city.len()));
        long.or_else(|| {
            self.masked_in_city
                .iter()
                .any(|t| t.district.is_some())
                .then(|| "masked_in_city takes no district; only names and pinyin do".into())
        })
    }
    /// True when the query has no token at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Splits the query into queries of at most `max` tokens each (at least one token each),
    /// keeping `limit_per_token`. The union of their answers is the answer to the whole query,
    /// because the limit applies per token.
    pub fn split(&self, max: usize) -> Vec<TokenQuery> {
        let max = max.max(1);
        let empty = || TokenQuery {
            limit_per_token: self.limit_per_token,
            ..TokenQuery::default()
        };
        let mut out = Vec::new();
        let mut cur = empty();
        // Which field of a query each list fills.
        type Field = fn(&mut TokenQuery) -> &mut Vec<Token>;
        let lists: [(&Vec<Token>, Field); 4] = [
            (&self.phone, |x| &mut x.phone),
            (&self.masked, |x| &mut x.masked),
            (&self.name, |x| &mut x.name),
            (&self.pinyin, |x| &mut x.pinyin),
        ];
        for (src, field) in lists {
            for t in src {
                if cur.len() >= max {
                    out.push(std::mem::replace(&mut cur, empty()));
                }
                field(&mut cur).push(*t);
            }
        }
        type CityField = fn(&mut TokenQuery) -> &mut Vec<CityToken>;
        let lists: [(&Vec<CityToken>, CityField); 3] = [
            (&self.name_in_city, |x| &mut x.name_in_city),
            (&self.pinyin_in_city, |x| &mut x.pinyin_in_city),
            (&self.masked_in_city, |x| &mut x.masked_in_city),
        ];
        for (src, field) in lists {
            for t in src {
                if cur.len() >= max {
                    out.push(std::mem::replace(&mut cur, empty()));
                }
                field(&mut cur).push(t.clone());
            }
        }
        if !cur.is_empty() {
            out.push(cur);
        }
        out
    }
}

/// The keyed tokens of one order, as stored in the index.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OrderTokens {
    pub phone: Option<Token>,
    pub masked: Option<Token>,
    pub name: Option<Token>,
    pub pinyin: Option<Token>,
    pub district: Option<Token>,
    /// Address piece tokens, sorted and distinct. The top bit marks number pieces
    /// (room / bed / seat numbers); see [`blind`].
    #[serde(default)]
    pub address: Vec<u32>,
}

/// One access-log event on an order: an account that viewed or exported it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AccessEvent {
    /// "staff", "merchant", "rider" or "partner" (the kind of account, from the log).
    pub actor_kind: String,
    pub actor_id: String,
    /// "view" or "export".
    pub action: String,
    /// When, unix seconds.
    pub at: i64,
}

/// A candidate order, as much of it as deciding needs: reference, time, city and tokens. Its
/// address tokens and city name are kept by the [`CandidateSet`] it belongs to, so a candidate
/// costs no allocation of its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Candidate {
    /// The source's internal reference, stable for one index.
    pub order_ref: u64,
    /// Unix seconds.
    pub created_at: i64,
    /// Position of the order's city in [`CandidateSet::cities`].
    pub city: u32,
    /// In a mapped set, the source file the address tokens are in.
    chunk: u32,
    pub phone: Option<Token>,
    pub masked: Option<Token>,
    pub name: Option<Token>,
    pub pinyin: Option<Token>,
    pub district: Option<Token>,
    /// Where the set keeps the order's address tokens, and how many there are: (start,
    /// length) in the token array of an owned set, or in the `chunk`'s tokens of a mapped one.
    address: (u32, u32),
}

/// The answer to a [`TokenQuery`] (step 1 of the lookup): candidate orders sorted by
/// `order_ref`, each once, with the city names of all of them stored once.
///
/// Address tokens are either owned by the set (all orders' tokens back to back: a remote
/// answer) or borrowed from the source's memory-mapped index, read only when a row's
/// comparison gets that far (most candidates are ruled out on city or district first). The
/// lifetime is the source's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CandidateSet<'a> {
    cities: Vec<String>,
    orders: Vec<Candidate>,
    address: Addresses<'a>,
}

/// Where a [`CandidateSet`] keeps its address tokens.
#[derive(Clone, PartialEq)]
enum Addresses<'a> {
    /// All orders' tokens back to back.
    Owned(Vec<u32>),
    /// The source's files' address tokens (little-endian u32s, in its memory), by chunk.
    Mapped(Vec<&'a [u8]>),
}

impl fmt::Debug for Addresses<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addresses::Owned(all) => write!(f, "Owned({} tokens)", all.len()),
            // Not the mapped bytes themselves: they are whole index sections.
            Addresses::Mapped(chunks) => write!(f, "Mapped({} chunks)", chunks.len()),
        }
    }
}

impl Default for Addresses<'_> {
    fn default() -> Self {
        Addresses::Owned(Vec::new())
    }
}

/// Address tokens a candidate has at most when they are decoded without allocating (an
/// address has at most [`normalise::MAX_ADDRESS_PIECES`] pieces).
const INLINE_TOKENS: usize = 64;

impl Candidate {
    /// Records where a mapped set finds the order's address tokens: `len` tokens from `start`
    /// in the address tokens of chunk `chunk` (see [`CandidateSet::mapped`]).
    pub(crate) fn mapped(mut self, chunk: u32, start: u32, len: u32) -> Candidate {
        self.chunk = chunk;
        self.address = (start, len);
        self
    }
}

impl<'a> CandidateSet<'a> {
    /// A set whose address tokens stay in the source's memory: the tokens of an order are
    /// `address` tokens from `address.0` on in `chunks[chunk]` (little-endian u32s), as
    /// [`Candidate::mapped`] records them. `orders` must be sorted by ref, each once, and
    /// their cities positions in `cities`.
    pub(crate) fn mapped(
        cities: Vec<String>,
        orders: Vec<Candidate>,
        chunks: Vec<&'a [u8]>,
    ) -> CandidateSet<'a> {
        CandidateSet {
            cities,
            orders,
            address: Addresses::Mapped(chunks),
        }
    }

    /// The candidates, sorted by `order_ref`.
    pub fn orders(&self) -> &[Candidate] {
        &self.orders
    }
    /// Number of candidates.
    pub fn len(&self) -> usize {
        self.orders.len()
    }
    /// True when no order carries any token of the query.
    pub fn is_empty(&self) -> bool {
        self.orders.is_empty()
    }
    /// The city names candidates refer to by position ("" for an order without a city).
    pub fn cities(&self) -> &[String] {
        &self.cities
    }
    /// The city of `c` ("" when unknown).
    pub fn city(&self, c: &Candidate) -> &str {
        self.cities
            .get(c.city as usize)
            .map(String::as_str)
            .unwrap_or("")
    }
    /// How many address tokens `c` has (without reading them).
    pub fn address_len(&self, c: &Candidate) -> usize {
        c.address.1 as usize
    }
    /// The address tokens of `c`: sorted, distinct, number pieces (top bit set) last.
    pub fn address(&self, c: &Candidate) -> Cow<'_, [u32]> {
        self.with_address(c, |tokens| match &self.address {
            Addresses::Owned(all) => {
                let (start, len) = (c.address.0 as usize, c.address.1 as usize);
                Cow::Borrowed(all.get(start..start + len).unwrap_or(&[]))
            }
            Addresses::Mapped(_) => Cow::Owned(tokens.to_vec()),
        })
    }

    /// Calls `f` with the address tokens of `c`, decoding mapped tokens into a buffer on the
    /// stack (no allocation for any real address).
    pub(crate) fn with_address<R>(&self, c: &Candidate, f: impl FnOnce(&[u32]) -> R) -> R {
        let (start, len) = (c.address.0 as usize, c.address.1 as usize);
        match &self.address {
            Addresses::Owned(all) => f(all.get(start..start + len).unwrap_or(&[])),
            Addresses::Mapped(chunks) => {
                let bytes = chunks
                    .get(c.chunk as usize)
                    .and_then(|all| all.get(start * 4..(start + len) * 4))
                    .unwrap_or(&[]);
                let decode = |b: &[u8]| <[u8; 4]>::try_from(b).map_or(0, u32::from_le_bytes);
                if bytes.len() / 4 <= INLINE_TOKENS {
                    let mut buf = [0u32; INLINE_TOKENS];
                    let mut n = 0;
                    for (slot, b) in buf.iter_mut().zip(bytes.chunks_exact(4)) {
                        *slot = decode(b);
                        n += 1;
                    }
                    f(buf.get(..n).unwrap_or(&[]))
                } else {
                    let all: Vec<u32> = bytes.chunks_exact(4).map(decode).collect();
                    f(&all)
                }
            }
        }
    }

    /// The position of city `name`, added if new. Cities are few, so a scan is enough.
    pub fn add_city(&mut self, name: &str) -> u32 {
        match self.cities.iter().position(|c| c == name) {
            Some(i) => i as u32,
            None => {
                self.cities.push(name.to_string());
                (self.cities.len() - 1) as u32
            }
        }
    }

    /// Appends `c` with its address tokens (`c.city` must come from [`CandidateSet::add_city`]).
    /// Callers append in `order_ref` order, or call [`CandidateSet::merge`] afterwards. A set
    /// borrowing its tokens from a source's memory takes a copy of them first.
    pub fn push(&mut self, mut c: Candidate, address: &[u32]) -> Result<(), MatchError> {
        if let Addresses::Mapped(_) = self.address {
            let mut owned = Vec::new();
            let orders = self.orders.clone();
            for o in &orders {
                self.with_address(o, |t| owned.push(t.to_vec()));
            }
            self.orders.clear();
            self.address = Addresses::Owned(Vec::new());
            for (o, t) in orders.into_iter().zip(owned) {
                self.push(o, &t)?;
            }
        }
        let Addresses::Owned(all) = &mut self.address else {
            return Err(MatchError::Internal("candidate set still mapped".into()));
        };
        let too_large = || MatchError::Query("candidate answer too large".into());
        let start = u32::try_from(all.len()).map_err(|_| too_large())?;
        let len = u32::try_from(address.len()).map_err(|_| too_large())?;
        start.checked_add(len).ok_or_else(too_large)?;
        c.address = (start, len);
        c.chunk = 0;
        all.extend_from_slice(address);
        self.orders.push(c);
        Ok(())
    }

    /// The union of several answers (parts of one split query), sorted by `order_ref`, each
    /// order once (the first answer's copy). A single sorted answer is returned as it is.
    pub fn merge(mut parts: Vec<CandidateSet<'a>>) -> Result<CandidateSet<'a>, MatchError> {
        if parts.len() == 1
            && parts
                .first()
                .is_some_and(|p| p.orders.is_sorted_by(|a, b| a.order_ref < b.order_ref))
            && let Some(only) = parts.pop()
        {
            return Ok(only);
        }
        // (ref, part, position); a stable sort keeps the first part's copy first.
        let mut all: Vec<(u64, usize, usize)> = parts
            .iter()
            .enumerate()
            .flat_map(|(p, s)| {
                s.orders
                    .iter()
                    .enumerate()
                    .map(move |(i, c)| (c.order_ref, p, i))
            })
            .collect();
        all.sort_by_key(|e| e.0);
        all.dedup_by_key(|e| e.0);
        let mut out = CandidateSet::default();
        for (_, p, i) in all {
            let (Some(part), Some(c)) = (parts.get(p), parts.get(p).and_then(|s| s.orders.get(i)))
            else {
                continue;
            };
            let mut c = *c;
            c.city = out.add_city(part.city(&c));
            part.with_address(&c, |tokens| out.push(c, tokens))?;
        }
        Ok(out)
    }
}

/// A matched order's non-personal details (step 2 of the lookup): what the report and
/// attribution need, fetched only for the orders finally matched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderDetails {
    /// The source's internal reference, as in [`Candidate::order_ref`].
    pub order_ref: u64,
    pub order_id: String,
    /// Unix seconds.
    pub created_at: i64,
    pub city: String,
    pub merchant_id: String,
    pub rider_id: String,
    pub delivery_partner: String,
    /// The partner a planted canary record was issued to.
    pub canary_for: Option<String>,
    #[serde(default)]
    pub access: Vec<AccessEvent>,
}

/// An actor by kind and id, as in [`ActorCount`] and [`Suspect`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ActorRef {
    pub actor_kind: String,
    pub actor_id: String,
}

/// Orders per actor, for attribution base rates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorCount {
    /// "merchant", "rider", "partner", or "<kind>_account" for access-log accounts
    /// ("staff_account", "merchant_account", ...).
    pub actor_kind: String,
    pub actor_id: String,
    /// Distinct orders in the window that this actor handled (or, for accounts, viewed or
    /// exported).
    pub orders: u64,
}

/// Order counts in one city (or all) and time window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseCounts {
    pub city: Option<String>,
    pub from: i64,
    pub to: i64,
    /// All orders in the window.
    pub total: u64,
    /// Per actor, sorted by (kind, id).
    pub actors: Vec<ActorCount>,
}

/// Where candidate orders and base counts come from: the local index or the platform's
/// service. Both see only tokens.
///
/// A lookup has two steps, so that only the orders finally matched cost more than their
/// tokens: [`RecordSource::candidates`] returns the lean [`CandidateSet`] that deciding needs
/// (tens of thousands of orders for a large sample), then [`RecordSource::details`] returns the
/// ids, actors and access events of the matched few.
pub trait RecordSource: Send + Sync {
    /// Candidate orders for the tokens of one or more sample rows.
    fn candidates(&self, query: &TokenQuery) -> Result<CandidateSet<'_>, MatchError>;
    /// The details of the orders `refs` (refs from [`RecordSource::candidates`]), one per ref,
    /// in the order given. An unknown ref is an error.
    fn details(&self, refs: &[u64]) -> Result<Vec<OrderDetails>, MatchError>;
    /// Order counts per actor (and in total) within a city and time window, for attribution
    /// base rates. `from` and `to` are unix seconds, both inclusive. With `only`, the answer
    /// lists just those actors (a city has thousands; attribution needs the few the matched
    /// orders touched); the total still counts every order.
    fn base_counts(
        &self,
        city: Option<&str>,
        from: i64,
        to: i64,
        only: Option<&[ActorRef]>,
    ) -> Result<BaseCounts, MatchError>;
}

/// The verdict on one sample row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RowResult {
    /// Position of the row in the input (0-based).
    pub row: u64,
    /// The order the row was matched to.
    pub order_id: Option<String>,
    /// "phone", "masked+name", "masked+address", "masked+name+address" or "fuzzy".
    pub level: Option<String>,
    /// Fellegi–Sunter log2 likelihood ratio of the chosen order (see [`matcher`]).
    pub score: f64,
    /// Fields that agreed with the chosen order: of "phone", "masked_phone", "name",
    /// "name_pinyin", "address", "time".
    pub agreed: Vec<String>,
    /// Why a row was not matched (or anything notable about the match).
    pub note: Option<String>,
}

/// An order planted as a canary that turned up in the sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryHit {
    pub order_id: String,
    /// The partner the canary record was issued to.
    pub partner: String,
}

/// An actor that handled the matched orders more often than its base rate explains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suspect {
    pub actor_kind: String,
    pub actor_id: String,
    /// Matched orders this actor handled.
    pub touched: u64,
    /// touched / matched orders.
    pub share: f64,
    /// Its share of all orders in the same cities and time window.
    pub base_share: f64,
    /// share / base_share.
    pub lift: f64,
    /// Matched order ids it handled (evidence), sorted.
    pub orders: Vec<String>,
    /// −log10 of the binomial tail probability of touching this many matched orders by chance
    /// (see [`attribution`]); the ranking score. Always finite, so reports round-trip JSON.
    pub score: f64,
    /// True when a canary record issued to this actor was in the sample; such suspects rank
    /// first whatever their score.
    pub canary: bool,
}

/// The result of checking a sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MatchReport {
    pub rows_checked: u64,
    pub rows_matched: u64,
    pub by_level: BTreeMap<String, u64>,
    /// Per input row: matched order id (if any), level, score, agreed fields.
    pub rows: Vec<RowResult>,
    pub distinct_customers: u64,
    pub distinct_orders: u64,
    /// Distinct matched order ids, sorted.
    pub order_ids: Vec<String>,
    pub first_order_at: Option<i64>,
    pub last_order_at: Option<i64>,
    /// Order id + the partner it was issued to.
    pub canary_hits: Vec<CanaryHit>,
    /// Ranked, most suspicious first.
    pub attribution: Vec<Suspect>,
}
