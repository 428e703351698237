//! Deciding which order, if any, each sample row describes.
//!
//! Each row is blinded with the same key as the index, all rows' tokens go to the
//! [`RecordSource`] in one query, and each row is then decided on the candidates alone:
//!
//! - **full phone** → the orders with that phone token (level `phone`), scored by name and
//!   address agreement; accepted unless both name and address are present and both disagree.
//! - **masked phone** → the orders with that masked token (first 3 + last 4 digits), grouped by
//!   customer (phone token). Accepted only with name and/or address agreement strong enough to
//!   single out one of the customers sharing the mask (levels `masked+name`, `masked+address`,
//!   `masked+name+address`). A row whose address names its city asks only for the orders in
//!   that city (or without a city), as fuzzy rows do below: a customer elsewhere cannot agree
//!   on the address, and counting them against the row only raised its bar (recall on the
//!   10M-record benchmark sample 0.976 → 0.987, precision 1.0 both ways).
//! - **no phone** → orders with the same name or pinyin token whose address also agrees
//!   strongly (level `fuzzy`). A strong address agreement needs the same city and district,
//!   so a row whose address names its city asks only for the orders with that name in that
//!   city and, when it names one, that district (or without them): a common name costs the
//!   orders of one district, not of the whole country, and the customers counted against the
//!   row (below) are the ones that could be it.
//!
//! # Scores (Fellegi–Sunter)
//!
//! A field that agrees adds log2(m/u), one that disagrees adds log2((1−m)/(1−u)) (spread over
//! the disagreement levels below), a missing field adds 0; m = P(agreement | same customer),
//! u = P(agreement | different customers). The values, and why:
//!
//! | field | level | m | u | weight | why |
//! |---|---|---|---|---|---|
//! | phone | equal | 0.98 | 1e-7 | +23.2 | sellers copy numbers; a random other customer shares all 11 digits about once in 10^7 |
//! | masked phone | equal | 0.98 | 2.5e-6 | +18.6 | ~40 live prefixes × 10^4 suffixes |
//! | name | exact | 0.88 | 0.001 | +9.8 | typos, nicknames and pinyin spellings cost 12%; the commonest full names (张伟) are ~0.1–0.2% of people |
//! | name | pinyin only | 0.06 | 0.002 | +4.9 | homophone typos and Latin spellings; pinyin collides about twice as often as characters |
//! | name | different | 0.06 | 0.997 | −4.1 | |
//! | address | strong | 0.80 | 0.0005 | +10.6 | overlap of pieces ≥ 0.8 and numbers compatible: truncation and reformatting keep overlap high; strangers share a building *and* room rarely |
//! | address | partial | 0.12 | 0.01 | +3.6 | overlap ≥ 0.5, or a different room in the same building |
//! | address | different | 0.08 | 0.9895 | −3.6 | another city or district, or little overlap |
//!
//! Address overlap is |A∩B| / min(|A|,|B|) over the text pieces (character bigrams) of the part
//! after the district — the overlap coefficient, not Jaccard, because sellers truncate
//! addresses and extractors glue names onto them, and both leave one set inside the other.
//! Number pieces (room, bed, seat) must be compatible: the smaller set inside the larger.
//!
//! Acceptance thresholds: `phone` needs a score ≥ 23.2 − 5 (one disagreeing field is tolerated,
//! two are not). `masked` and `fuzzy` need the name+address evidence to exceed
//! [`MARGIN_BITS`] + log2(number of customers among the candidates): the prior odds of any one
//! of k customers being the right one are 1/k, so the evidence must overcome log2 k bits before
//! the margin counts; and the best customer must beat the runner-up by 1 bit, or the row is
//! reported as ambiguous.
//!
//! # Repeat customers
//!
//! Among the chosen customer's acceptable orders: when the row has an order time (usually
//! "MM-DD hh:mm", tried in `reference_year` and the year before), the nearest order within ±2
//! days; otherwise the best-scoring order, and among equals the most recent. A customer is
//! counted once (by phone token; a customer without one by order).
//!
//! # How a check runs
//!
//! 1. Blind every row (on every core, each thread with its own token cache).
//! 2. One [`TokenQuery`] for all rows; the source answers a lean [`CandidateSet`]: per order
//!    only its ref, time, city and tokens (the local index leaves the address tokens in its
//!    memory maps until a comparison needs them).
//! 3. Decide every row (on every core) against that set. Candidate positions are indexed by
//!    the query's tokens only; a row's city is compared with the candidates' as a small
//!    integer (each distinct city of the set is canonicalised once); address tokens are read
//!    only for candidates whose city and district agree, and split into text and number pieces
//!    by a binary search (they are sorted, and number pieces have the top bit set), so
//!    evaluating a candidate allocates nothing.
//! 4. Ask the source for the [`OrderDetails`] of the matched orders only (order id, merchant,
//!    rider, partner, canary, access events), then attribute.
//!
//! Invariants: the result does not depend on the order candidates arrive in (they are sorted
//! by order ref); an empty sample is an empty report; rows are never dropped — each input row
//! has exactly one [`RowResult`].

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::hash::BuildHasherDefault;

use super::attribution;
use super::blind::{ADDRESS_NUMBER_BIT, Blinder, PieceHasher, TokenCache};
use super::normalise;
use super::{
    BlindKey, CanaryHit, Candidate, CandidateSet, CityToken, MatchError, MatchReport, OrderDetails,
    RecordSource, RowResult, SampleInput, Token, TokenQuery, joined, par_runs,
};

/// Safety margin, in bits, that masked and fuzzy evidence must exceed beyond log2(candidate
/// customers): 5 bits is odds of 32:1 before the count of candidates is considered.
pub const MARGIN_BITS: f64 = 5.0;
/// Fuzzy rows have no phone at all, so they get a wider margin.
pub const FUZZY_MARGIN_BITS: f64 = 8.0;
/// Tokens per query sent to the source (the local index accepts up to 100,000; smaller
/// queries bound the memory of one answer).
pub const QUERY_TOKENS: usize = 20_000;
/// How far an order time may be from the row's time and still pick that order.
pub const TIME_TOLERANCE_SECS: i64 = 2 * 86_400;

fn weight(m: f64, u: f64) -> f64 {
    (m / u).log2()
}

/// The weights of the table in the module documentation.
struct Weights {
    phone: f64,
    masked: f64,
    name_exact: f64,
    name_pinyin: f64,
    name_differs: f64,
    addr_strong: f64,
    addr_partial: f64,
    addr_differs: f64,
}

fn weights() -> Weights {
    Weights {
        phone: weight(0.98, 1e-7),
        masked: weight(0.98, 2.5e-6),
        name_exact: weight(0.88, 0.001),
        name_pinyin: weight(0.06, 0.002),
        name_differs: weight(0.06, 0.997),
        addr_strong: weight(0.80, 0.0005),
        addr_partial: weight(0.12, 0.01),
        addr_differs: weight(0.08, 0.9895),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameAgree {
    Missing,
    Exact,
    Pinyin,
    Differs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AddrAgree {
    Missing,
    Strong,
    Partial,
    Differs,
}

/// A sample row in token form.
struct RowQuery {
    phone: Option<Token>,
    masked: Option<Token>,
    name: Option<Token>,
    pinyin: Option<Token>,
    district: Option<Token>,
    city: Option<String>,
    /// Address text tokens and number tokens, each sorted.
    addr_text: Vec<u32>,
    addr_num: Vec<u32>,
    times: Vec<i64>,
}

impl RowQuery {
    fn has_address(&self) -> bool {
        !self.addr_text.is_empty() || self.district.is_some()
    }
}

fn split_address(tokens: &[u32]) -> (Vec<u32>, Vec<u32>) {
    let (num, text): (Vec<u32>, Vec<u32>) =
        tokens.iter().partition(|t| *t & ADDRESS_NUMBER_BIT != 0);
    (text, num)
}

/// Size of the intersection of two sorted slices.
fn intersection(a: &[u32], b: &[u32]) -> usize {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                n += 1;
                i += 1;
                j += 1;
            }
        }
    }
    n
}

/// A candidate set's cities as small integers: one id per distinct canonical name, so an
/// evaluation compares two integers instead of canonicalising a string.
struct CityIds {
    /// Per city of the set (by position): the id of its canonical name, [`NO_CITY`] for "".
    of_set: Vec<u32>,
    /// Canonical name → id.
    ids: HashMap<String, u32>,
}

/// An order without a city: never contradicts a row's city.
const NO_CITY: u32 = u32::MAX;
/// A row's city that no candidate is in.
const OTHER_CITY: u32 = u32::MAX - 1;

impl CityIds {
    fn new(set: &CandidateSet<'_>) -> CityIds {
        let mut ids: HashMap<String, u32> = HashMap::new();
        let of_set = set
            .cities()
            .iter()
            .map(|raw| {
                if raw.is_empty() {
                    return NO_CITY;
                }
                let next = ids.len() as u32;
                *ids.entry(normalise::canonical_city(raw)).or_insert(next)
            })
            .collect();
        CityIds { of_set, ids }
    }

    /// The id of a row's city (already canonical).
    fn of_row(&self, city: &str) -> u32 {
        self.ids.get(city).copied().unwrap_or(OTHER_CITY)
    }

    fn of(&self, c: &Candidate) -> u32 {
        self.of_set.get(c.city as usize).copied().unwrap_or(NO_CITY)
    }
}

/// What every evaluation of one sample refers to.
struct Ctx<'a> {
    set: &'a CandidateSet<'a>,
    by: &'a CandidateMaps,
    cities: &'a CityIds,
    w: &'a Weights,
}

fn compare_name(r: &RowQuery, c: &Candidate) -> NameAgree {
    let (Some(rn), Some(cn)) = (r.name, c.name) else {
        return NameAgree::Missing;
    };
    if rn == cn {
        NameAgree::Exact
    } else if r.pinyin.is_some() && r.pinyin == c.pinyin {
        NameAgree::Pinyin
    } else {
        NameAgree::Differs
    }
}

/// `row_city`: the id of the row's city, when it names one (see [`CityIds`]).
fn compare_address(r: &RowQuery, row_city: Option<u32>, x: &Ctx<'_>, c: &Candidate) -> AddrAgree {
    if !r.has_address() || (x.set.address_len(c) == 0 && c.district.is_none()) {
        return AddrAgree::Missing;
    }
    if let Some(rc) = row_city {
        let cc = x.cities.of(c);
        if cc != NO_CITY && cc != rc {
            return AddrAgree::Differs;
        }
    }
    if let (Some(a), Some(b)) = (r.district, c.district)
        && a != b
    {
        return AddrAgree::Differs;
    }
    if r.addr_text.len() < 2 {
        // Too little text to compare; a district alone proves nothing.
        return AddrAgree::Missing;
    }
    x.set.with_address(c, |address| compare_pieces(r, address))
}

/// The address comparison proper, once city and district agree: overlap of the text pieces,
/// compatibility of the number pieces.
fn compare_pieces(r: &RowQuery, address: &[u32]) -> AddrAgree {
    // Tokens are sorted and number pieces have the top bit set: they are the suffix.
    let (ct, cn) = address.split_at(address.partition_point(|t| t & ADDRESS_NUMBER_BIT == 0));
    if ct.is_empty() {
        return AddrAgree::Missing;
    }
    let overlap = intersection(&r.addr_text, ct) as f64 / r.addr_text.len().min(ct.len()) as f64;
    let numbers_ok = r.addr_num.is_empty()
        || cn.is_empty()
        || intersection(&r.addr_num, cn) == r.addr_num.len().min(cn.len());
    if overlap >= 0.8 && numbers_ok {
        AddrAgree::Strong
    } else if overlap >= 0.5 {
        AddrAgree::Partial
    } else {
        AddrAgree::Differs
    }
}

/// One candidate order evaluated against one row.
#[derive(Clone, Copy)]
struct Eval {
    order: usize,
    name: NameAgree,
    addr: AddrAgree,
    /// Name + address weight.
    evidence: f64,
}

impl Eval {
    fn name_agrees(&self) -> bool {
        matches!(self.name, NameAgree::Exact | NameAgree::Pinyin)
    }
    fn addr_agrees(&self) -> bool {
        matches!(self.addr, AddrAgree::Strong | AddrAgree::Partial)
    }
}

/// How a row was (or was not) decided.
struct Decision {
    order: Option<usize>,
    level: Option<String>,
    score: f64,
    agreed: Vec<String>,
    note: Option<String>,
    customer: Option<(u8, u64)>,
}

impl Decision {
    fn none(note: impl Into<String>) -> Decision {
        Decision {
            order: None,
            level: None,
            score: 0.0,
            agreed: Vec::new(),
            note: Some(note.into()),
            customer: None,
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Phone,
    Masked,
    Fuzzy,
}

/// Checks sample rows against a record source.
pub struct Matcher<'a> {
    source: &'a dyn RecordSource,
    key: &'a BlindKey,
}

impl<'a> Matcher<'a> {
    pub fn new(source: &'a dyn RecordSource, key: &'a BlindKey) -> Matcher<'a> {
        Matcher { source, key }
    }
}

impl Matcher<'_> {
    /// Checks `rows`; `reference_year` places order times written without a year (see the
    /// module documentation).
    pub fn check(
        &self,
        rows: &[SampleInput],
        reference_year: i32,
    ) -> Result<MatchReport, MatchError> {
        let blinder = Blinder::new(self.key);
        let queries: Vec<RowQuery> = par_runs(rows, 512, |run| {
            let mut cache = TokenCache::default();
            run.iter()
                .map(|r| row_query(&blinder, &mut cache, r, reference_year))
                .collect::<Vec<_>>()
        })
        .into_iter()
        .flatten()
        .collect();
        let mut q = TokenQuery::default();
        for r in &queries {
            // Only orders in the row's city (or without one) can agree on the address, and a
            // masked or fuzzy row is accepted on the customers that could be it, so a row that
            // names its city asks for those only; a fuzzy row, which needs a strong address
            // agreement, also only for its district (or none). A full phone is asked for
            // everywhere.
            let in_city = |token: Token| {
                r.city.as_ref().map(|city| CityToken {
                    token,
                    city: city.clone(),
                    district: None,
                })
            };
            let in_district = |token: Token| {
                in_city(token).map(|t| CityToken {
                    district: r.district,
                    ..t
                })
            };
            match mode(r) {
                Some(Mode::Phone) => q.phone.extend(r.phone),
                Some(Mode::Masked) => match r.masked.and_then(in_city) {
                    Some(t) => q.masked_in_city.push(t),
                    None => q.masked.extend(r.masked),
                },
                Some(Mode::Fuzzy) => {
                    match r.name.and_then(in_district) {
                        Some(t) => q.name_in_city.push(t),
                        None => q.name.extend(r.name),
                    }
                    match r.pinyin.and_then(in_district) {
                        Some(t) => q.pinyin_in_city.push(t),
                        None => q.pinyin.extend(r.pinyin),
                    }
                }
                None => {}
            }
        }
        for v in [&mut q.phone, &mut q.masked, &mut q.name, &mut q.pinyin] {
            v.sort_unstable();
            v.dedup();
        }
        for v in [
            &mut q.masked_in_city,
            &mut q.name_in_city,
            &mut q.pinyin_in_city,
        ] {
            v.sort_unstable();
            v.dedup();
        }
        let mut parts = Vec::new();
        for part in q.split(QUERY_TOKENS) {
            parts.push(self.source.candidates(&part)?);
        }
        let set = CandidateSet::merge(parts)?;
        let by = CandidateMaps::new(set.orders(), &q);
        let cities = CityIds::new(&set);
        let w = weights();
        let ctx = Ctx {
            set: &set,
            by: &by,
            cities: &cities,
            w: &w,
        };
        let decisions = decide_all(&queries, &ctx);

        // Step 2: the details of the matched orders only.
        let cands = set.orders();
        let refs: Vec<u64> = decisions
            .iter()
            .filter(|d| d.level.is_some())
            .filter_map(|d| d.order.and_then(|o| cands.get(o)).map(|c| c.order_ref))
            .collect::<BTreeSet<u64>>()
            .into_iter()
            .collect();
        let details = if refs.is_empty() {
            Vec::new()
        } else {
            self.source.details(&refs)?
        };
        if details.len() != refs.len() || details.iter().zip(&refs).any(|(d, r)| d.order_ref != *r)
        {
            return Err(MatchError::Internal(
                "the record source answered with other orders than the ones asked for".into(),
            ));
        }
        let details_of = |o: usize| -> Option<&OrderDetails> {
            let r = cands.get(o)?.order_ref;
            refs.binary_search(&r).ok().and_then(|i| details.get(i))
        };

        let mut report = MatchReport {
            rows_checked: rows.len() as u64,
            ..MatchReport::default()
        };
        let mut customers: BTreeSet<(u8, u64)> = BTreeSet::new();
        for (i, d) in decisions.into_iter().enumerate() {
            if let (Some(_), Some(level)) = (d.order, &d.level) {
                report.rows_matched += 1;
                *report.by_level.entry(level.clone()).or_insert(0) += 1;
                customers.extend(d.customer);
            }
            report.rows.push(RowResult {
                row: i as u64,
                order_id: d.order.and_then(&details_of).map(|o| o.order_id.clone()),
                level: d.level,
                score: (d.score * 1000.0).round() / 1000.0,
                agreed: d.agreed,
                note: d.note,
            });
        }
        // Sorted by order ref, as `refs`.
        let orders: Vec<&OrderDetails> = details.iter().collect();
        report.distinct_customers = customers.len() as u64;
        report.distinct_orders = orders.len() as u64;
        let ids: BTreeSet<&str> = orders.iter().map(|c| c.order_id.as_str()).collect();
        report.order_ids = ids.into_iter().map(str::to_string).collect();
        report.first_order_at = orders.iter().map(|c| c.created_at).min();
        report.last_order_at = orders.iter().map(|c| c.created_at).max();
        let mut hits: Vec<CanaryHit> = orders
            .iter()
            .filter_map(|c| {
                c.canary_for.as_ref().map(|p| CanaryHit {
                    order_id: c.order_id.clone(),
                    partner: p.clone(),
                })
            })
            .collect();
        hits.sort_by(|a, b| (&a.order_id, &a.partner).cmp(&(&b.order_id, &b.partner)));
        report.attribution = attribution::attribute(&orders, &hits, self.source)?;
        report.canary_hits = hits;
        Ok(report)
    }
}

fn row_query(b: &Blinder, cache: &mut TokenCache, r: &SampleInput, year: i32) -> RowQuery {
    let nonempty = |s: &Option<String>| {
        s.as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string)
    };
    let f = b.tokens(
        nonempty(&r.phone).as_deref(),
        nonempty(&r.masked_phone).as_deref(),
        nonempty(&r.name).as_deref(),
        nonempty(&r.address).as_deref(),
        cache,
    );
    let (addr_text, addr_num) = split_address(&f.tokens.address);
    RowQuery {
        phone: f.tokens.phone,
        masked: f.tokens.masked,
        name: f.tokens.name,
        pinyin: f.tokens.pinyin,
        district: f.tokens.district,
        city: f.city,
        addr_text,
        addr_num,
        times: r
            .order_time
            .as_deref()
            .map(|t| normalise::parse_sample_time(t, year))
            .unwrap_or_default(),
    }
}

fn mode(r: &RowQuery) -> Option<Mode> {
    if r.phone.is_some() {
        Some(Mode::Phone)
    } else if r.masked.is_some() {
        Some(Mode::Masked)
    } else if r.name.is_some() && r.has_address() {
        Some(Mode::Fuzzy)
    } else {
        None
    }
}

/// Decides every row, on every core when there are enough rows to pay for a thread.
fn decide_all(queries: &[RowQuery], x: &Ctx<'_>) -> Vec<Decision> {
    par_runs(queries, 256, |run| {
        run.iter().map(|r| decide(r, x)).collect::<Vec<_>>()
    })
    .into_iter()
    .flatten()
    .collect()
}

type TokenMap = HashMap<Token, Vec<usize>, BuildHasherDefault<PieceHasher>>;

/// Candidate positions (ascending) by token, for the tokens of the query only: a row looks up
/// only its own tokens, and the query holds every row's.
struct CandidateMaps {
    phone: TokenMap,
    masked: TokenMap,
    name: TokenMap,
    pinyin: TokenMap,
}

impl CandidateMaps {
    /// Two maps per thread: full and masked phones on a second thread, names and pinyin here.
    fn new(cands: &[Candidate], q: &TokenQuery) -> CandidateMaps {
        type Field = fn(&Candidate) -> Option<Token>;
        let build = |tokens: &[Token], field: Field| -> TokenMap {
            let mut map: TokenMap = tokens.iter().map(|t| (*t, Vec::new())).collect();
            for (i, c) in cands.iter().enumerate() {
                if let Some(v) = field(c).and_then(|t| map.get_mut(&t)) {
                    v.push(i);
                }
            }
            map
        };
        // A token asked for in a city and the same token asked for without one (or in another
        // city) share a list; each row keeps only the candidates its own city allows (see
        // `decide`).
        let all = |plain: &[Token], in_city: &[CityToken]| -> Vec<Token> {
            let mut v: Vec<Token> = plain.to_vec();
            v.extend(in_city.iter().map(|t| t.token));
            v
        };
        let phones = || {
            (
                build(&q.phone, |c| c.phone),
                build(&all(&q.masked, &q.masked_in_city), |c| c.masked),
            )
        };
        let ((phone, masked), name, pinyin) = std::thread::scope(|s| {
            let other = s.spawn(phones);
            let name = build(&all(&q.name, &q.name_in_city), |c| c.name);
            let pinyin = build(&all(&q.pinyin, &q.pinyin_in_city), |c| c.pinyin);
            let both = joined(other);
            (both, name, pinyin)
        });
        CandidateMaps {
            phone,
            masked,
            name,
            pinyin,
        }
    }

    /// The candidates with `token` in `map` (none for a token outside the query).
    fn get<'a>(&self, map: &'a TokenMap, token: Option<Token>) -> &'a [usize] {
        token.and_then(|t| map.get(&t)).map_or(&[], Vec::as_slice)
    }
}

fn customer_of(c: &Candidate) -> (u8, u64) {
    match c.phone {
        Some(t) => (0, t.0),
        None => (1, c.order_ref),
    }
}

fn evaluate(r: &RowQuery, row_city: Option<u32>, x: &Ctx<'_>, order: usize) -> Option<Eval> {
    let c = x.set.orders().get(order)?;
    let w = x.w;
    let name = compare_name(r, c);
    let addr = compare_address(r, row_city, x, c);
    let wn = match name {
        NameAgree::Missing => 0.0,
        NameAgree::Exact => w.name_exact,
        NameAgree::Pinyin => w.name_pinyin,
        NameAgree::Differs => w.name_differs,
    };
    let wa = match addr {
        AddrAgree::Missing => 0.0,
        AddrAgree::Strong => w.addr_strong,
        AddrAgree::Partial => w.addr_partial,
        AddrAgree::Differs => w.addr_differs,
    };
    Some(Eval {
        order,
        name,
        addr,
        evidence: wn + wa,
    })
}

fn decide(r: &RowQuery, x: &Ctx<'_>) -> Decision {
    let (cands, by, w) = (x.set.orders(), x.by, x.w);
    let Some(m) = mode(r) else {
        return Decision::none(
            "nothing to match on: no phone, no masked phone, no name with an address",
        );
    };
    // The row's city (and district), as it asked: the same token elsewhere, fetched for
    // other rows, is none of this row's business.
    let in_city = |v: &mut Vec<usize>, district: Option<Token>| {
        if let Some(city) = r.city.as_deref() {
            let rc = x.cities.of_row(city);
            v.retain(|&i| {
                cands.get(i).is_some_and(|c| {
                    let cc = x.cities.of(c);
                    (cc == NO_CITY || cc == rc)
                        && (district.is_none() || c.district.is_none() || c.district == district)
                })
            });
        }
    };
    let pool: Cow<'_, [usize]> = match m {
        Mode::Phone => Cow::Borrowed(by.get(&by.phone, r.phone)),
        Mode::Masked if r.city.is_none() => Cow::Borrowed(by.get(&by.masked, r.masked)),
        Mode::Masked => {
            let mut v = by.get(&by.masked, r.masked).to_vec();
            in_city(&mut v, None);
            Cow::Owned(v)
        }
        Mode::Fuzzy => {
            let mut v = by.get(&by.name, r.name).to_vec();
            v.extend_from_slice(by.get(&by.pinyin, r.pinyin));
            v.sort_unstable();
            v.dedup();
            in_city(&mut v, r.district);
            Cow::Owned(v)
        }
    };
    if pool.is_empty() {
        return Decision::none(match m {
            Mode::Phone => "no order with this phone",
            Mode::Masked => "no order with this masked phone",
            Mode::Fuzzy => "no order with this name",
        });
    }
    // Group by customer (customers ascending, each one's orders in pool order).
    let row_city = r.city.as_deref().map(|c| x.cities.of_row(c));
    let mut evaluated: Vec<((u8, u64), Eval)> = pool
        .iter()
        .filter_map(|&i| Some((customer_of(cands.get(i)?), evaluate(r, row_city, x, i)?)))
        .collect();
    evaluated.sort_by_key(|(customer, _)| *customer);
    let groups: Vec<&[((u8, u64), Eval)]> = evaluated.chunk_by(|a, b| a.0 == b.0).collect();
    let k = groups.len() as f64;
    let base = match m {
        Mode::Phone => w.phone,
        Mode::Masked => w.masked,
        Mode::Fuzzy => 0.0,
    };
    let acceptable = |e: &Eval| -> bool {
        match m {
            Mode::Phone => base + e.evidence >= w.phone - 5.0,
            Mode::Masked => {
                (e.name_agrees() || e.addr_agrees()) && e.evidence >= MARGIN_BITS + k.log2()
            }
            Mode::Fuzzy => {
                e.name_agrees()
                    && e.addr == AddrAgree::Strong
                    && e.evidence >= FUZZY_MARGIN_BITS + k.log2()
            }
        }
    };
    // Best acceptable evidence per customer.
    let mut ranked: Vec<((u8, u64), f64)> = groups
        .iter()
        .filter_map(|group| {
            let cust = group.first()?.0;
            group
                .iter()
                .map(|(_, e)| e)
                .filter(|e| acceptable(e))
                .map(|e| e.evidence)
                .fold(None, |acc: Option<f64>, x| {
                    Some(acc.map_or(x, |a| a.max(x)))
                })
                .map(|best| (cust, best))
        })
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let Some(&(customer, best)) = ranked.first() else {
        return Decision::none(match m {
            Mode::Phone => "phone found, but both name and address disagree".to_string(),
            Mode::Masked => format!(
                "masked phone matches {} customer(s), none agreeing enough on name or address",
                groups.len()
            ),
            Mode::Fuzzy => format!(
                "{} customer(s) with this name, none with a matching address",
                groups.len()
            ),
        });
    };
    if m != Mode::Phone
        && let Some(&(_, second)) = ranked.get(1)
        && second > best - 1.0
    {
        return Decision::none(format!(
            "ambiguous: {} customers agree about equally",
            ranked.len()
        ));
    }
    let evals: Vec<Eval> = groups
        .iter()
        .find(|g| g.first().is_some_and(|(c, _)| *c == customer))
        .map(|g| {
            g.iter()
                .map(|(_, e)| *e)
                .filter(|e| acceptable(e))
                .collect()
        })
        .unwrap_or_default();
    let (chosen, by_time) = choose_order(&evals, cands, &r.times);
    let Some(e) = chosen else {
        return Decision::none("no acceptable order");
    };
    let mut agreed: Vec<String> = Vec::new();
    match m {
        Mode::Phone => agreed.push("phone".into()),
        Mode::Masked => agreed.push("masked_phone".into()),
        Mode::Fuzzy => {}
    }
    match e.name {
        NameAgree::Exact => agreed.push("name".into()),
        NameAgree::Pinyin => agreed.push("name_pinyin".into()),
        _ => {}
    }
    match e.addr {
        AddrAgree::Strong => agreed.push("address".into()),
        AddrAgree::Partial => agreed.push("address_partial".into()),
        _ => {}
    }
    if by_time {
        agreed.push("time".into());
    }
    let level = match m {
        Mode::Phone => "phone".to_string(),
        Mode::Fuzzy => "fuzzy".to_string(),
        Mode::Masked => {
            let mut l = String::from("masked");
            if e.name_agrees() {
                l.push_str("+name");
            }
            if e.addr_agrees() {
                l.push_str("+address");
            }
            l
        }
    };
    let note = (!r.times.is_empty() && !by_time)
        .then(|| "no order of this customer within 2 days of the row's time; chose the best-agreeing, most recent".to_string());
    Decision {
        order: Some(e.order),
        level: Some(level),
        score: base + e.evidence,
        agreed,
        note,
        customer: Some(customer),
    }
}

/// The order for a repeat customer: nearest to the row's time within the tolerance, else the
/// best-scoring, most recent. Returns the choice and whether the time picked it.
fn choose_order(evals: &[Eval], cands: &[Candidate], times: &[i64]) -> (Option<Eval>, bool) {
    if !times.is_empty() {
        let gap = |e: &Eval| {
            times
                .iter()
                .map(|t| (cands[e.order].created_at - t).abs())
                .min()
                .unwrap_or(i64::MAX)
        };
        let best = evals.iter().min_by(|a, b| {
            gap(a)
                .cmp(&gap(b))
                .then(cands[b.order].order_ref.cmp(&cands[a.order].order_ref))
        });
        if let Some(e) = best
            && gap(e) <= TIME_TOLERANCE_SECS
        {
            return (Some(*e), true);
        }
    }
    let best = evals.iter().max_by(|a, b| {
        a.evidence
            .total_cmp(&b.evidence)
            .then(cands[a.order].created_at.cmp(&cands[b.order].created_at))
            .then(cands[a.order].order_ref.cmp(&cands[b.order].order_ref))
    });
    (best.copied(), false)
}
