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
//!   posting arrays + forward table), and the optional staff access log.
//! - [`matcher`]: [`Matcher::check`] turns sample rows into tokens, asks a [`RecordSource`] for
//!   candidate orders and decides, row by row, which order (if any) the row describes.
//! - [`attribution`]: ranks the actors (merchant, rider, delivery partner, accounts from the
//!   access log) that handled the matched orders far more often than their base rate.
//! - [`remote`]: the same [`RecordSource`] over HTTP, so the platform can keep the index and
//!   answer token queries itself; plus a reference server.
//! - [`generator`]: synthetic records and seller samples with a planted leak, for tests and the
//!   benchmark.
//!
//! Invariants shared by every file here: no raw name, phone or address is written to disk or
//! sent over the wire by this module; the key is never written by this module; nothing here
//! panics on bad input (errors are [`MatchError`]s, bad rows are reported, never dropped).
//!
//! The types below are both the Rust API and the JSON of the remote protocol (see [`remote`]).

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
    /// Orders returned per token at most; 0 means the source's default. A token with more
    /// orders than this (a shop's phone, the commonest names) is cut to the lowest order refs.
    #[serde(default)]
    pub limit_per_token: u32,
}

impl TokenQuery {
    /// Number of tokens in the query.
    pub fn len(&self) -> usize {
        self.phone.len() + self.masked.len() + self.name.len() + self.pinyin.len()
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

/// A candidate order: its reference, non-personal metadata, tokens and access events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The source's internal reference, stable for one index.
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
    pub tokens: OrderTokens,
    #[serde(default)]
    pub access: Vec<AccessEvent>,
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
pub trait RecordSource: Send + Sync {
    /// Candidate orders for the tokens of one or more sample rows.
    fn candidates(&self, query: &TokenQuery) -> Result<Vec<Candidate>, MatchError>;
    /// Order counts per actor (and in total) within a city and time window, for attribution
    /// base rates. `from` and `to` are unix seconds, both inclusive.
    fn base_counts(&self, city: Option<&str>, from: i64, to: i64)
    -> Result<BaseCounts, MatchError>;
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
