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

/// Raw data rows, not yet parsed into fields (parsing happens on worker threads), stored flat:
/// one byte buffer and one offsets array per batch instead of two allocations per row.
#[derive(Default)]
pub(crate) struct RawBatch {
    buf: Vec<u8>,
    /// End offset in `buf` of each CSV field.
    ends: Vec<u32>,
    rows: Vec<RawSpan>,
}

#[derive(Clone, Copy)]
struct RawSpan {
    line: u64,
    byte_start: u32,
    byte_end: u32,
    /// CSV: index of the row's first field in `ends`, and its field count. JSON: unused.
    first_field: u32,
    fields: u32,
    json: bool,
}

/// One row of a [`RawBatch`].
#[derive(Clone, Copy)]
pub(crate) enum RowView<'a> {
    Csv {
        buf: &'a [u8],
        ends: &'a [u32],
        start: usize,
    },
    Json(&'a [u8]),
}

impl<'a> RowView<'a> {
    /// Field `i` of a CSV row.
    fn csv_field(self, i: usize) -> Option<&'a [u8]> {
        match self {
            RowView::Csv { buf, ends, start } => {
                let s = if i == 0 {
                    start
                } else {
                    *ends.get(i - 1)? as usize
                };
                let e = *ends.get(i)? as usize;
                buf.get(s..e)
            }
            RowView::Json(_) => None,
        }
    }
}

impl RawBatch {
    pub fn len(&self) -> usize {
        self.rows.len()
    }
    /// Bytes held, to bound batches by size as well as by rows.
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }
    /// Row `i`: its line number and a view of it.
    pub fn row(&self, i: usize) -> Option<(u64, RowView<'_>)> {
        let r = self.rows.get(i)?;
        let view = if r.json {
            RowView::Json(self.buf.get(r.byte_start as usize..r.byte_end as usize)?)
        } else {
            let first = r.first_field as usize;
            RowView::Csv {
                buf: &self.buf,
                ends: self.ends.get(first..first + r.fields as usize)?,
                start: r.byte_start as usize,
            }
        };
        Some((r.line, view))
    }
    fn offset(&self) -> Option<u32> {
        u32::try_from(self.buf.len()).ok()
    }
}

/// The fields of a raw row, in the order of `wanted`. Missing optional fields are empty.
/// Errors describe what is wrong without quoting values.
pub(crate) fn fields<'a>(
    row: RowView<'a>,
    map: Option<&ColumnMap>,
    wanted: &[&str],
) -> Result<Vec<Cow<'a, str>>, String> {
    match row {
        RowView::Csv { buf, ends, start } => {
            let map = map.ok_or("CSV row without a header")?;
            if ends.len() != map.width {
                return Err(format!(
                    "wrong number of fields: expected {}, found {}",
                    map.width,
                    ends.len()
                ));
            }
            // One UTF-8 check for the whole row (fields are stored back to back), then each
            // field is a checked sub-slice: a field that splits a character is not valid alone.
            let end = ends.last().map(|e| *e as usize).unwrap_or(start);
            let text = buf
                .get(start..end)
                .and_then(|b| std::str::from_utf8(b).ok());
            let mut out = Vec::with_capacity(wanted.len());
            for (i, name) in wanted.iter().enumerate() {
                match map.idx.get(i).copied().flatten() {
                    Some(j) => {
                        let s = text.and_then(|t| {
                            let fs = if j == 0 { start } else { ends[j - 1] as usize };
                            t.get(fs - start..ends[j] as usize - start)
                        });
                        let s = match s {
                            Some(s) => s,
                            None => {
                                let b = row.csv_field(j).unwrap_or_default();
                                std::str::from_utf8(b)
                                    .map_err(|_| format!("{name} is not valid UTF-8"))?
                            }
                        };
                        out.push(Cow::Borrowed(s));
                    }
                    None => out.push(Cow::Borrowed("")),
                }
            }
            Ok(out)
        }
        RowView::Json(line) => {
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
    Csv {
        r: Box<csv::Reader<BufReader<File>>>,
        rec: csv::ByteRecord,
    },
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
                    inner: Inner::Csv {
                        r: Box::new(rdr),
                        rec: csv::ByteRecord::new(),
                    },
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

    /// Appends the next data row to `batch`; false at the end of the file.
    pub fn next_into(&mut self, batch: &mut RawBatch) -> Result<bool, MatchError> {
        let too_big = || MatchError::input(&self.path, "a batch of rows exceeds 4 GiB");
        match &mut self.inner {
            Inner::Csv { r, rec } => {
                match r.read_byte_record(rec) {
                    Ok(true) => {}
                    Ok(false) => return Ok(false),
                    Err(e) => {
                        return Err(MatchError::input(
                            &self.path,
                            format!("unreadable CSV: {e}"),
                        ));
                    }
                }
                let line = rec.position().map(|p| p.line()).unwrap_or(0) + self.line_base;
                let byte_start = batch.offset().ok_or_else(too_big)?;
                let first_field = u32::try_from(batch.ends.len()).map_err(|_| too_big())?;
                for f in rec.iter() {
                    batch.buf.extend_from_slice(f);
                    let end = batch.offset().ok_or_else(too_big)?;
                    batch.ends.push(end);
                }
                batch.rows.push(RawSpan {
                    line,
                    byte_start,
                    byte_end: batch.offset().ok_or_else(too_big)?,
                    first_field,
                    fields: rec.len() as u32,
                    json: false,
                });
                Ok(true)
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
                    return Ok(false);
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
                let byte_start = batch.offset().ok_or_else(too_big)?;
                batch.buf.extend_from_slice(body);
                batch.rows.push(RawSpan {
                    line: *line,
                    byte_start,
                    byte_end: batch.offset().ok_or_else(too_big)?,
                    first_field: 0,
                    fields: 0,
                    json: true,
                });
                return Ok(true);
            },
        }
    }

    /// Byte offset and line number of the next row (where a resumed reader would start).
    pub fn position(&self) -> (u64, u64) {
        match &self.inner {
            Inner::Csv { r, .. } => {
                let p = r.position();
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
