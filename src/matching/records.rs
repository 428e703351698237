//! Reading the platform's files: order records and access logs, as CSV (with a header row) or
//! JSONL (one object per line). Detects the format, maps the header, and yields rows with their
//! line numbers and the byte offset just past them, which is what a resumed import seeks to.
//!
//! Invariants: a row is never dropped here — every data row is either yielded or turned into
//! an error for the caller to report with its line number; errors never quote field values
//! (they may be customer data, and skip reasons are stored in the manifest); the byte offset
//! after a row is always the start of the next row, so seeking there and reading on gives
//! exactly the rows not yet read.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::MatchError;

/// Columns of an order-records file; the first nine are required.
pub(crate) const RECORD_COLUMNS: [&str; 10] = [
    "order_id",
    "created_at",
    "city",
    "customer_name",
    "customer_phone",
    "address",
    "merchant_id",
    "rider_id",
    "delivery_partner",
    "canary_for",
];
pub(crate) const RECORD_REQUIRED: usize = 9;

/// Columns of an access log; all required.
pub(crate) const ACCESS_COLUMNS: [&str; 5] = ["order_id", "actor_kind", "actor_id", "action", "at"];

/// How much of the head of a file is hashed to recognise it again on resume.
const HEAD_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Format {
    Csv,
    Jsonl,
}

/// What identifies an input file across runs: its size and the SHA-256 of its first MiB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SourceInfo {
    pub size: u64,
    pub head_sha256: String,
    pub format: Format,
}

/// Fingerprints and sniffs a file. Errors when it is empty (or only whitespace).
pub(crate) fn inspect(path: &Path) -> Result<SourceInfo, MatchError> {
    let mut f = File::open(path).map_err(|e| MatchError::io(path, e))?;
    let size = f.metadata().map_err(|e| MatchError::io(path, e))?.len();
    let mut head = Vec::with_capacity(HEAD_BYTES.min(size) as usize);
    (&mut f)
        .take(HEAD_BYTES)
        .read_to_end(&mut head)
        .map_err(|e| MatchError::io(path, e))?;
    let body = head
        .strip_prefix(b"\xEF\xBB\xBF".as_slice())
        .unwrap_or(&head);
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let format = match first {
        None => return Err(MatchError::input(path, "file is empty")),
        Some(b'{') => Format::Jsonl,
        Some(_) => Format::Csv,
    };
    Ok(SourceInfo {
        size,
        head_sha256: hex::encode(Sha256::digest(&head)),
        format,
    })
}

/// Where each wanted column is in a CSV row.
#[derive(Debug, Clone)]
pub(crate) struct ColumnMap {
    /// Index in the row of each wanted column (by position in the wanted list).
    pub idx: Vec<Option<usize>>,
    /// Number of fields the header has; rows with another count are malformed.
    pub width: usize,
}

/// One raw data row, not yet parsed into fields (parsing happens on worker threads).
pub(crate) enum RawRow {
    Csv(csv::ByteRecord),
    Json(Vec<u8>),
}

/// The fields of a raw row, in the order of `wanted`. Missing optional fields are empty.
/// Errors describe what is wrong without quoting values.
pub(crate) fn fields<'a>(
    row: &'a RawRow,
    map: Option<&ColumnMap>,
    wanted: &[&str],
) -> Result<Vec<Cow<'a, str>>, String> {
    match row {
        RawRow::Csv(rec) => {
            let map = map.ok_or("CSV row without a header")?;
            if rec.len() != map.width {
                return Err(format!(
                    "wrong number of fields: expected {}, found {}",
                    map.width,
                    rec.len()
                ));
            }
            let mut out = Vec::with_capacity(wanted.len());
            for (i, name) in wanted.iter().enumerate() {
                match map.idx.get(i).copied().flatten() {
                    Some(j) => {
                        let b = rec.get(j).unwrap_or_default();
                        let s = std::str::from_utf8(b)
                            .map_err(|_| format!("{name} is not valid UTF-8"))?;
                        out.push(Cow::Borrowed(s));
                    }
                    None => out.push(Cow::Borrowed("")),
                }
            }
            Ok(out)
        }
        RawRow::Json(line) => {
            let v: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(line)
                .map_err(|e| format!("not a JSON object (column {})", e.column()))?;
            let mut out = Vec::with_capacity(wanted.len());
            for name in wanted {
                let s = match v.get(*name) {
                    None | Some(serde_json::Value::Null) => Cow::Borrowed(""),
                    Some(serde_json::Value::String(s)) => Cow::Owned(s.clone()),
                    Some(serde_json::Value::Number(n)) => Cow::Owned(n.to_string()),
                    Some(serde_json::Value::Bool(b)) => Cow::Owned(b.to_string()),
                    Some(_) => return Err(format!("{name} is not a string")),
                };
                out.push(s);
            }
            Ok(out)
        }
    }
}

/// Reads rows from a byte offset on, keeping line numbers and the offset after each row.
pub(crate) struct RowReader {
    path: PathBuf,
    inner: Inner,
    /// Byte offset the reader started at.
    base_offset: u64,
    /// Line number of the line the reader started at, minus one.
    line_base: u64,
    /// Header mapping (CSV only).
    pub map: Option<ColumnMap>,
}

enum Inner {
    Csv(Box<csv::Reader<BufReader<File>>>),
    Jsonl {
        r: BufReader<File>,
        offset: u64,
        line: u64,
        buf: Vec<u8>,
    },
}

impl RowReader {
    /// Opens `path`, reads (for CSV) the header and checks it has the required columns, then
    /// positions the reader at `resume` (offset, line) if given, else right after the header.
    pub fn open(
        path: &Path,
        format: Format,
        wanted: &[&str],
        required: usize,
        resume: Option<(u64, u64)>,
    ) -> Result<RowReader, MatchError> {
        let mut file = File::open(path).map_err(|e| MatchError::io(path, e))?;
        match format {
            Format::Csv => {
                let (map, after_header) = read_header(path, &mut file, wanted, required)?;
                let (offset, line) = resume.unwrap_or(after_header);
                file.seek(SeekFrom::Start(offset))
                    .map_err(|e| MatchError::io(path, e))?;
                let rdr = csv::ReaderBuilder::new()
                    .has_headers(false)
                    .flexible(true)
                    .from_reader(BufReader::with_capacity(1 << 20, file));
                Ok(RowReader {
                    path: path.to_path_buf(),
                    inner: Inner::Csv(Box::new(rdr)),
                    base_offset: offset,
                    line_base: line.saturating_sub(1),
                    map: Some(map),
                })
            }
            Format::Jsonl => {
                let (offset, line) = resume.unwrap_or((0, 1));
                file.seek(SeekFrom::Start(offset))
                    .map_err(|e| MatchError::io(path, e))?;
                Ok(RowReader {
                    path: path.to_path_buf(),
                    inner: Inner::Jsonl {
                        r: BufReader::with_capacity(1 << 20, file),
                        offset,
                        line: line.saturating_sub(1),
                        buf: Vec::new(),
                    },
                    base_offset: offset,
                    line_base: line.saturating_sub(1),
                    map: None,
                })
            }
        }
    }

    /// The next data row and its (1-based) line number, or `None` at the end.
    pub fn next_row(&mut self) -> Result<Option<(u64, RawRow)>, MatchError> {
        match &mut self.inner {
            Inner::Csv(rdr) => {
                let mut rec = csv::ByteRecord::new();
                match rdr.read_byte_record(&mut rec) {
                    Ok(true) => {
                        let line = rec.position().map(|p| p.line()).unwrap_or(0) + self.line_base;
                        Ok(Some((line, RawRow::Csv(rec))))
                    }
                    Ok(false) => Ok(None),
                    Err(e) => Err(MatchError::input(
                        &self.path,
                        format!("unreadable CSV: {e}"),
                    )),
                }
            }
            Inner::Jsonl {
                r,
                offset,
                line,
                buf,
            } => loop {
                buf.clear();
                let n = r
                    .read_until(b'\n', buf)
                    .map_err(|e| MatchError::io(&self.path, e))?;
                if n == 0 {
                    return Ok(None);
                }
                *offset += n as u64;
                *line += 1;
                let all: &[u8] = buf;
                let body = if *line == 1 {
                    all.strip_prefix(b"\xEF\xBB\xBF".as_slice()).unwrap_or(all)
                } else {
                    all
                };
                if body.iter().all(u8::is_ascii_whitespace) {
                    // Blank lines separate nothing in JSONL; they are not rows.
                    continue;
                }
                return Ok(Some((*line, RawRow::Json(body.to_vec()))));
            },
        }
    }

    /// Byte offset and line number of the next row (where a resumed reader would start).
    pub fn position(&self) -> (u64, u64) {
        match &self.inner {
            Inner::Csv(rdr) => {
                let p = rdr.position();
                (self.base_offset + p.byte(), self.line_base + p.line())
            }
            Inner::Jsonl { offset, line, .. } => (*offset, *line + 1),
        }
    }
}

/// Reads the CSV header and maps the wanted columns (case-insensitive, trimmed, BOM dropped).
/// Returns the map and the (offset, line) of the first data row.
fn read_header(
    path: &Path,
    file: &mut File,
    wanted: &[&str],
    required: usize,
) -> Result<(ColumnMap, (u64, u64)), MatchError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(BufReader::new(&mut *file));
    let mut header = csv::ByteRecord::new();
    let ok = rdr
        .read_byte_record(&mut header)
        .map_err(|e| MatchError::input(path, format!("not a CSV file: {e}")))?;
    if !ok {
        return Err(MatchError::input(path, "file is empty"));
    }
    let names: Vec<String> = header
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let f = if i == 0 {
                f.strip_prefix(b"\xEF\xBB\xBF".as_slice()).unwrap_or(f)
            } else {
                f
            };
            String::from_utf8_lossy(f).trim().to_ascii_lowercase()
        })
        .collect();
    let idx: Vec<Option<usize>> = wanted
        .iter()
        .map(|w| names.iter().position(|n| n == w))
        .collect();
    let missing: Vec<&str> = wanted
        .iter()
        .zip(&idx)
        .take(required)
        .filter(|(_, i)| i.is_none())
        .map(|(w, _)| *w)
        .collect();
    if !missing.is_empty() {
        // The "header" may really be a data row: do not quote it.
        return Err(MatchError::input(
            path,
            format!(
                "not a CSV file with the expected header: missing column(s) {}",
                missing.join(", ")
            ),
        ));
    }
    let p = rdr.position();
    Ok((
        ColumnMap {
            idx,
            width: header.len(),
        },
        (p.byte(), p.line()),
    ))
}
