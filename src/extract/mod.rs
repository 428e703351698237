//! Extraction: turns hostile chat content (message text, attached files, screenshots) from
//! groups that sell stolen food-delivery customer data into structured findings: the *offer*
//! (what is sold, where, at what price, how to reach the seller) and the *sample rows* sellers
//! post as proof (name, phone, address, order time).
//!
//! Everything here treats its input as hostile. Nothing panics on any input; the work is bounded
//! by the input's size (text is analysed up to [`MAX_TEXT_BYTES`], lines up to
//! `MAX_LINE_BYTES`, tables up to [`MAX_TABLE_ROWS`] rows, xlsx archives are checked for zip
//! bombs before anything is inflated); every limit that was hit is reported in
//! [`Extraction::notes`] and [`Extraction::truncated`]; and no file system path is ever built
//! from input (file names are display names only; OCR writes to a private temp file).
//!
//! Results depend on [`EXTRACTOR_VERSION`]: bump it whenever a change would extract something
//! different from the same input, so stored findings can say which extractor produced them.

mod files;
pub(crate) mod geo;
pub(crate) mod normalise;
mod ocr;
mod offers;
mod samples;
mod xlsx;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use files::extract_file;
pub use normalise::{normalise_masked_phone, normalise_phone, to_half_width};
pub use ocr::ocr_image;

/// Version of the extraction rules; bump when results would change.
pub const EXTRACTOR_VERSION: &str = "extract/1";

/// How much of a message's text is analysed. Chat messages are a few hundred bytes; a larger
/// text is a paste or an attack, and its first MiB says what it is.
pub const MAX_TEXT_BYTES: usize = 1 << 20;

/// How many data rows of a table (CSV or xlsx) are read.
pub const MAX_TABLE_ROWS: usize = 100_000;

/// Lines longer than this are cut into pieces of at most this size before pattern matching,
/// which bounds the cost of every regex search (see `normalise::scan_captures`).
const MAX_LINE_BYTES: usize = 4096;

/// What an offer message sells and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Offer {
    /// Normalised labels of what is sold: "外卖", "订单", "快递", "酒店", "医院", ...
    pub data_types: Vec<String>,
    /// Canonical platform names: "美团", "饿了么", "京东", "淘宝", "抖音", ... (美团外卖 -> 美团).
    pub platforms: Vec<String>,
    /// Price per record in fen (1/100 RMB): 0.1元/条 -> 10, 800元1万条 -> 8.
    pub price_per_record_fen: Option<u64>,
    /// The price as matched (in the half-width-folded text).
    pub price_text: Option<String>,
    /// Records on offer: 1万条 -> 10000.
    pub volume_records: Option<u64>,
    /// Records per day: 日更3000+ -> 3000.
    pub daily_volume: Option<u64>,
    /// Normalised freshness: "当天", "实时", "两天内", "三天内", "一周内", "半月内", "一个月内", "历史".
    pub freshness: Option<String>,
    /// Cities named (short form: "深圳").
    pub cities: Vec<String>,
    /// The seller's contacts, in order of appearance.
    pub contacts: Vec<Contact>,
}

/// A way to reach a seller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// "qq" | "wechat" | "telegram"
    pub kind: String,
    /// As written, without a leading '@'.
    pub handle: String,
}

/// One leaked customer record posted as a sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SampleRow {
    pub name: Option<String>,
    /// Full 11-digit mobile, digits only, no +86.
    pub phone: Option<String>,
    /// "138****5678" form.
    pub masked_phone: Option<String>,
    /// The address as written (trimmed).
    pub address: Option<String>,
    pub province: Option<String>,
    pub city: Option<String>,
    pub district: Option<String>,
    /// "MM-DD hh:mm" or "YYYY-MM-DD hh:mm" when recognisable, else as written.
    pub order_time: Option<String>,
    pub amount_fen: Option<u64>,
    /// The row's source text (the line, or the cells joined with tabs).
    pub raw: String,
}

/// Everything extracted from one message or file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Extraction {
    /// Some when the text looks like an offer to sell (or buy) data.
    pub offer: Option<Offer>,
    /// Sample rows: each has a phone or masked phone plus a name or an address.
    pub rows: Vec<SampleRow>,
    /// The input was longer than the analysed cap.
    pub truncated: bool,
    /// Why something was not extracted, and which limits were hit.
    pub notes: Vec<String>,
}

/// Recognises an offer and sample rows in a chat message's text. Only the first
/// [`MAX_TEXT_BYTES`] are analysed; `truncated` and a note say when the text was longer.
pub fn extract_text(text: &str) -> Extraction {
    analyse(text, &Limits::MESSAGE)
}

/// The bounds of one analysis.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Bytes of text looked at for rows (and offers within `offer_bytes`).
    pub text_bytes: usize,
    /// Bytes of non-row text looked at for an offer.
    pub offer_bytes: usize,
    /// Rows kept.
    pub max_rows: usize,
}

impl Limits {
    /// A chat message.
    pub(crate) const MESSAGE: Limits = Limits {
        text_bytes: MAX_TEXT_BYTES,
        offer_bytes: MAX_TEXT_BYTES,
        max_rows: MAX_TABLE_ROWS,
    };
    /// A sample file read as lines: more rows are worth reading, but an offer is still
    /// judged on its first MiB of prose.
    pub(crate) const FILE: Limits = Limits {
        text_bytes: xlsx::MAX_UNCOMPRESSED,
        offer_bytes: MAX_TEXT_BYTES,
        max_rows: MAX_TABLE_ROWS,
    };
}

/// Splits text into lines, and lines longer than [`MAX_LINE_BYTES`] into pieces (on character
/// boundaries), so that no pattern ever runs on more than one bounded piece.
fn bounded_lines(text: &str) -> impl Iterator<Item = &str> {
    text.split(['\n', '\r']).flat_map(|line| {
        let mut rest = line;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let (head, _) = normalise::cap_str(rest, MAX_LINE_BYTES);
            // A first character longer than the cap cannot happen (chars are ≤ 4 bytes), but
            // take it whole rather than loop forever if it did.
            let cut = if head.is_empty() {
                rest.chars().next().map_or(rest.len(), char::len_utf8)
            } else {
                head.len()
            };
            let (piece, tail) = rest.split_at(cut);
            rest = tail;
            Some(piece)
        })
    })
}

/// The shared text pipeline: each bounded line is a sample row or offer prose.
pub(crate) fn analyse(text: &str, limits: &Limits) -> Extraction {
    let mut ex = Extraction::default();
    let (text, cut) = normalise::cap_str(text, limits.text_bytes);
    if cut {
        ex.truncated = true;
        ex.notes.push(format!(
            "text truncated: analysed the first {} bytes only",
            text.len()
        ));
    }
    let mut scan = offers::OfferScan::new();
    let mut offer_budget = limits.offer_bytes;
    let mut rows_capped = false;
    let mut offer_capped = false;
    for line in bounded_lines(text) {
        if line.trim().is_empty() {
            continue;
        }
        if let Some(row) = samples::parse_row(line) {
            if ex.rows.len() < limits.max_rows {
                ex.rows.push(row);
            } else if !rows_capped {
                rows_capped = true;
                ex.truncated = true;
                ex.notes
                    .push(format!("rows capped: kept the first {}", limits.max_rows));
            }
            continue;
        }
        if offer_capped {
            continue;
        }
        if line.len() <= offer_budget {
            offer_budget -= line.len();
            scan.feed(line);
        } else {
            offer_capped = true;
            ex.notes.push(format!(
                "offer analysis stopped after {} bytes of non-row text",
                limits.offer_bytes
            ));
        }
    }
    ex.offer = scan.finish();
    ex
}
