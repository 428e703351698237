//! Reads the first worksheet of an .xlsx workbook (Office Open XML SpreadsheetML) from untrusted
//! bytes, row by row, with the zip crate and a streaming XML parser.
//!
//! Why not calamine: it builds on rustc 1.95, but (a) it materialises a sheet as a dense
//! rectangle sized from the cell references, so two cells at A1 and XFD1048576 ask for ~17
//! billion cells and abort the process, and (b) it inflates entries itself, so it cannot bound
//! what an entry that lies about its size inflates to. Here the archive's directory is checked
//! before anything is inflated (entry count, declared sizes, compression ratio), every entry is
//! read through a limit of its declared size, columns and cell text are capped, and rows are
//! handed to the caller one at a time.

use std::borrow::Cow;
use std::io::{Cursor, Read};

use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

/// At most this many entries in the archive (a workbook has a dozen or so).
pub(crate) const MAX_ENTRIES: usize = 1000;
/// At most this many uncompressed bytes per entry and in total.
pub(crate) const MAX_UNCOMPRESSED: usize = 20 << 20;
/// At most this uncompressed:compressed ratio per entry; deflated XML stays far below it.
pub(crate) const MAX_RATIO: u64 = 200;
/// Columns kept per row: sample sheets have a handful; the rest is ignored.
pub(crate) const MAX_COLS: usize = 64;
/// Bytes kept per cell: names, phones and addresses are short, and shared strings could
/// otherwise multiply one long string into every cell.
pub(crate) const MAX_CELL_BYTES: usize = 1024;
/// Shared strings kept; further ones read as empty.
const MAX_SHARED_STRINGS: usize = 1_000_000;

/// Why a workbook was not read at all.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("not a readable zip archive ({0})")]
    NotZip(String),
    #[error("{0} entries over the {MAX_ENTRIES} cap")]
    TooManyEntries(usize),
    #[error("an entry of {} uncompressed over the 20 MB cap", mb(*.0))]
    EntryTooLarge(u64),
    #[error("{} uncompressed in total over the 20 MB cap", mb(*.0))]
    TotalTooLarge(u64),
    #[error("compression ratio over {}:1 (cap {MAX_RATIO}:1)", .0)]
    Ratio(u64),
    #[error("an entry is encrypted")]
    Encrypted,
    #[error("an entry inflates past its declared size")]
    Lying,
    #[error("a part could not be read ({0})")]
    Corrupt(String),
    #[error("no worksheet found")]
    NoWorksheet,
}

/// Sizes for notes, in MiB written as "MB" as people say it, to the nearest tenth.
fn mb(bytes: u64) -> String {
    // Integer rounding: no floating point needed.
    let tenths = (u128::from(bytes) * 10 + (1 << 19)) >> 20;
    let (whole, frac) = (tenths / 10, tenths % 10);
    if frac == 0 {
        format!("{whole} MB")
    } else {
        format!("{whole}.{frac} MB")
    }
}

/// Error text from a library, cut short: it may quote input.
fn short(e: impl std::fmt::Display) -> String {
    let s = e.to_string();
    let (head, cut) = super::normalise::cap_str(&s, 160);
    if cut { format!("{head}…") } else { s }
}

type Archive<'a> = zip::ZipArchive<Cursor<&'a [u8]>>;

/// Opens the archive and applies the zip-bomb guard to its directory, before inflating anything.
fn open_guarded(bytes: &[u8]) -> Result<Archive<'_>, Refusal> {
    let mut zip =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| Refusal::NotZip(short(e)))?;
    if zip.len() > MAX_ENTRIES {
        return Err(Refusal::TooManyEntries(zip.len()));
    }
    let cap = MAX_UNCOMPRESSED as u64;
    let mut total: u64 = 0;
    for i in 0..zip.len() {
        // `by_index_raw` reads the directory and local header only: no decompression.
        let f = zip.by_index_raw(i).map_err(|e| Refusal::NotZip(short(e)))?;
        if f.encrypted() {
            return Err(Refusal::Encrypted);
        }
        let (size, packed) = (f.size(), f.compressed_size());
        if size > cap {
            return Err(Refusal::EntryTooLarge(size));
        }
        total = total.saturating_add(size);
        if total > cap {
            return Err(Refusal::TotalTooLarge(total));
        }
        if size > packed.saturating_mul(MAX_RATIO) {
            return Err(Refusal::Ratio(size / packed.max(1)));
        }
    }
    Ok(zip)
}

/// Inflates one entry by name (None when absent), never past its declared size.
fn read_entry(zip: &mut Archive<'_>, name: &str) -> Result<Option<Vec<u8>>, Refusal> {
    let mut f = match zip.by_name(name) {
        Ok(f) => f,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(Refusal::Corrupt(short(e))),
    };
    let declared = f.size();
    let mut buf = Vec::with_capacity(usize::try_from(declared).unwrap_or(0).min(MAX_UNCOMPRESSED));
    // One byte past the declared size is enough to catch a lie.
    (&mut f)
        .take(declared.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| Refusal::Corrupt(short(e)))?;
    if buf.len() as u64 > declared {
        return Err(Refusal::Lying);
    }
    Ok(Some(buf))
}

fn as_text(bytes: &[u8]) -> Cow<'_, str> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    String::from_utf8_lossy(bytes)
}

/// The value of an attribute by local name (`r:id` matches "id").
fn attr(e: &BytesStart<'_>, local: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == local)
        .and_then(|a| {
            a.normalized_value(XmlVersion::Implicit1_0)
                .ok()
                .map(Cow::into_owned)
        })
}

/// The text of a predefined or numeric entity reference.
fn entity(r: &BytesRef<'_>) -> Option<char> {
    if let Ok(Some(c)) = r.resolve_char_ref() {
        return Some(c);
    }
    match &**r {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => None,
    }
}

/// Appends to a cell, stopping at [`MAX_CELL_BYTES`].
fn push_capped(cell: &mut String, s: &str) {
    let room = MAX_CELL_BYTES.saturating_sub(cell.len());
    let (head, _) = super::normalise::cap_str(s, room);
    cell.push_str(head);
}

/// The first worksheet's path inside the archive: workbook.xml's first <sheet>, resolved through
/// the workbook's relationships; else the lowest-numbered xl/worksheets/sheetN.xml.
fn first_sheet_path(zip: &mut Archive<'_>) -> Result<String, Refusal> {
    let mut rid = None;
    if let Some(wb) = read_entry(zip, "xl/workbook.xml")? {
        let text = as_text(&wb);
        let mut r = Reader::from_str(&text);
        loop {
            match r.read_event() {
                Ok(Event::Start(e) | Event::Empty(e)) if e.local_name().as_ref() == "sheet" => {
                    rid = attr(&e, "id");
                    break;
                }
                Ok(Event::Eof) | Err(_) => break,
                _ => {}
            }
        }
    }
    if let Some(rid) = rid
        && let Some(target) = relationship(zip, |id, _| id == rid)?
        && zip.index_for_name(&target).is_some()
    {
        return Ok(target);
    }
    let mut best: Option<(u64, String)> = None;
    for name in zip.file_names() {
        if let Some(stem) = name
            .strip_prefix("xl/worksheets/")
            .and_then(|n| n.strip_suffix(".xml"))
            .filter(|n| !n.contains('/'))
        {
            let n = stem
                .trim_start_matches("sheet")
                .parse::<u64>()
                .unwrap_or(u64::MAX);
            if best
                .as_ref()
                .is_none_or(|(bn, bname)| (n, name) < (*bn, bname.as_str()))
            {
                best = Some((n, name.to_string()));
            }
        }
    }
    best.map(|(_, n)| n).ok_or(Refusal::NoWorksheet)
}

/// The archive path of the first workbook relationship accepted by `pick(id, type)`.
fn relationship(
    zip: &mut Archive<'_>,
    pick: impl Fn(&str, &str) -> bool,
) -> Result<Option<String>, Refusal> {
    let Some(rels) = read_entry(zip, "xl/_rels/workbook.xml.rels")? else {
        return Ok(None);
    };
    let text = as_text(&rels);
    let mut r = Reader::from_str(&text);
    loop {
        match r.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) if e.local_name().as_ref() == "Relationship" => {
                let id = attr(&e, "Id").unwrap_or_default();
                let ty = attr(&e, "Type").unwrap_or_default();
                if pick(&id, &ty)
                    && let Some(target) = attr(&e, "Target")
                {
                    // Targets are relative to xl/ unless absolute; these are names inside the
                    // archive, never file system paths.
                    let path = match target.strip_prefix('/') {
                        Some(abs) => abs.to_string(),
                        None => format!("xl/{}", target.trim_start_matches("./")),
                    };
                    return Ok((!path.contains("..")).then_some(path));
                }
            }
            Ok(Event::Eof) | Err(_) => return Ok(None),
            _ => {}
        }
    }
}

/// The shared string table (plain text of each <si>, phonetic runs left out).
fn shared_strings(zip: &mut Archive<'_>, notes: &mut Vec<String>) -> Result<Vec<String>, Refusal> {
    let path = relationship(zip, |_, ty| ty.ends_with("/sharedStrings"))?
        .unwrap_or_else(|| "xl/sharedStrings.xml".to_string());
    let Some(bytes) = read_entry(zip, &path)? else {
        return Ok(Vec::new());
    };
    let text = as_text(&bytes);
    let mut r = Reader::from_str(&text);
    let mut out: Vec<String> = Vec::new();
    let mut cur: Option<String> = None;
    let mut in_t = false;
    let mut in_phonetic = false;
    loop {
        match r.read_event() {
            Ok(Event::Start(e)) => match e.local_name().as_ref() {
                "si" => cur = Some(String::new()),
                "t" => in_t = true,
                "rPh" => in_phonetic = true,
                _ => {}
            },
            Ok(Event::Empty(e)) if e.local_name().as_ref() == "si" => out.push(String::new()),
            Ok(Event::End(e)) => match e.local_name().as_ref() {
                "si" => {
                    out.push(cur.take().unwrap_or_default());
                    if out.len() >= MAX_SHARED_STRINGS {
                        notes.push(format!(
                            "xlsx: shared strings capped at {MAX_SHARED_STRINGS}"
                        ));
                        break;
                    }
                }
                "t" => in_t = false,
                "rPh" => in_phonetic = false,
                _ => {}
            },
            Ok(Event::Text(t)) => {
                if let (true, false, Some(c)) = (in_t, in_phonetic, cur.as_mut()) {
                    push_capped(c, &t);
                }
            }
            Ok(Event::CData(t)) => {
                if let (true, false, Some(c)) = (in_t, in_phonetic, cur.as_mut()) {
                    push_capped(c, &t);
                }
            }
            Ok(Event::GeneralRef(g)) => {
                if let (true, false, Some(c), Some(ch)) =
                    (in_t, in_phonetic, cur.as_mut(), entity(&g))
                {
                    push_capped(c, ch.encode_utf8(&mut [0; 4]));
                }
            }
            Ok(Event::Eof) => break,
            Err(e) => {
                notes.push(format!(
                    "xlsx: shared strings unreadable after {} entries ({})",
                    out.len(),
                    short(e)
                ));
                break;
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Column index (A = 0) from a cell reference such as "C12"; None past three letters.
fn column_of(reference: &str) -> Option<usize> {
    let mut col: usize = 0;
    let mut letters = 0;
    for b in reference.bytes() {
        if b.is_ascii_alphabetic() {
            letters += 1;
            if letters > 3 {
                return None;
            }
            col = col * 26 + usize::from(b.to_ascii_uppercase() - b'A') + 1;
        } else {
            break;
        }
    }
    (letters > 0).then(|| col - 1)
}

/// Number cells as people read them: "1.3812345678E10" is the phone 13812345678.
fn numeric_text(v: &str) -> String {
    let t = v.trim();
    if t.contains(['E', 'e'])
        && let Ok(f) = t.parse::<f64>()
        && f.is_finite()
        && f.fract() == 0.0
        && f.abs() < 1e15
    {
        // Exact: an integral f64 below 1e15 converts to i64 without loss.
        return format!("{}", f as i64);
    }
    t.strip_suffix(".0").unwrap_or(t).to_string()
}

#[derive(Debug, Default)]
struct Cell {
    col: usize,
    kind: String,
    text: String,
    in_value: bool,
    in_text: bool,
    in_phonetic: bool,
}

/// Reads the workbook's first sheet and calls `on_row` with each row's cells (at most
/// [`MAX_COLS`], each at most [`MAX_CELL_BYTES`]); `on_row` returns false to stop. Returns notes
/// about anything skipped; a refusal means nothing was read.
pub(crate) fn read_first_sheet(
    bytes: &[u8],
    on_row: &mut dyn FnMut(Vec<String>) -> bool,
) -> Result<Vec<String>, Refusal> {
    let mut notes = Vec::new();
    let mut zip = open_guarded(bytes)?;
    let sheet_path = first_sheet_path(&mut zip)?;
    let shared = shared_strings(&mut zip, &mut notes)?;
    let Some(sheet) = read_entry(&mut zip, &sheet_path)? else {
        return Err(Refusal::NoWorksheet);
    };
    let text = as_text(&sheet);
    let mut r = Reader::from_str(&text);
    let mut row: Option<Vec<String>> = None;
    let mut next_col = 0;
    let mut cell: Option<Cell> = None;
    let mut rows_done = 0usize;
    loop {
        let ev = match r.read_event() {
            Ok(ev) => ev,
            Err(e) => {
                notes.push(format!(
                    "xlsx: worksheet XML broken after {rows_done} rows ({}); kept the rows before it",
                    short(e)
                ));
                break;
            }
        };
        match ev {
            Event::Start(e) => match e.local_name().as_ref() {
                "row" => {
                    row = Some(Vec::new());
                    next_col = 0;
                }
                "c" => {
                    let col = attr(&e, "r")
                        .and_then(|r| column_of(&r))
                        .unwrap_or(next_col);
                    cell = Some(Cell {
                        col,
                        kind: attr(&e, "t").unwrap_or_default(),
                        ..Cell::default()
                    });
                }
                "v" => {
                    if let Some(c) = cell.as_mut() {
                        c.in_value = true;
                    }
                }
                "t" => {
                    if let Some(c) = cell.as_mut() {
                        c.in_text = true;
                    }
                }
                "rPh" => {
                    if let Some(c) = cell.as_mut() {
                        c.in_phonetic = true;
                    }
                }
                _ => {}
            },
            Event::Empty(e) if e.local_name().as_ref() == "c" => {
                let col = attr(&e, "r")
                    .and_then(|r| column_of(&r))
                    .unwrap_or(next_col);
                next_col = col.saturating_add(1);
            }
            Event::Text(t) => {
                if let Some(c) = cell.as_mut()
                    && (c.in_value || (c.in_text && !c.in_phonetic))
                {
                    push_capped(&mut c.text, &t);
                }
            }
            Event::CData(t) => {
                if let Some(c) = cell.as_mut()
                    && (c.in_value || (c.in_text && !c.in_phonetic))
                {
                    push_capped(&mut c.text, &t);
                }
            }
            Event::GeneralRef(g) => {
                if let Some(c) = cell.as_mut()
                    && (c.in_value || (c.in_text && !c.in_phonetic))
                    && let Some(ch) = entity(&g)
                {
                    push_capped(&mut c.text, ch.encode_utf8(&mut [0; 4]));
                }
            }
            Event::End(e) => match e.local_name().as_ref() {
                "v" => {
                    if let Some(c) = cell.as_mut() {
                        c.in_value = false;
                    }
                }
                "t" => {
                    if let Some(c) = cell.as_mut() {
                        c.in_text = false;
                    }
                }
                "rPh" => {
                    if let Some(c) = cell.as_mut() {
                        c.in_phonetic = false;
                    }
                }
                "c" => {
                    if let Some(c) = cell.take() {
                        next_col = c.col.saturating_add(1);
                        let value = match c.kind.as_str() {
                            "s" => c
                                .text
                                .trim()
                                .parse::<usize>()
                                .ok()
                                .and_then(|i| shared.get(i).cloned())
                                .unwrap_or_default(),
                            "b" => if c.text.trim() == "1" {
                                "TRUE"
                            } else {
                                "FALSE"
                            }
                            .to_string(),
                            "" | "n" => numeric_text(&c.text),
                            _ => c.text,
                        };
                        if let Some(row) = row.as_mut()
                            && c.col < MAX_COLS
                        {
                            if row.len() <= c.col {
                                row.resize(c.col + 1, String::new());
                            }
                            row[c.col] = value;
                        }
                    }
                }
                "row" => {
                    if let Some(cells) = row.take() {
                        rows_done += 1;
                        if !on_row(cells) {
                            break;
                        }
                    }
                }
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(column_of("A1"), Some(0));
        assert_eq!(column_of("c12"), Some(2));
        assert_eq!(column_of("AA3"), Some(26));
        assert_eq!(column_of("XFD1048576"), Some(16383));
        assert_eq!(column_of("ABCD1"), None);
        assert_eq!(column_of("12"), None);
        assert_eq!(numeric_text("1.3812345678E10"), "13812345678");
        assert_eq!(numeric_text("13812345678"), "13812345678");
        assert_eq!(numeric_text("35.5"), "35.5");
        assert_eq!(numeric_text("35.0"), "35");
        assert_eq!(mb(100 << 20), "100 MB");
        assert_eq!(mb((20 << 20) + (1 << 19)), "20.5 MB");
    }

    #[test]
    fn garbage_is_refused_not_panicking() {
        for bytes in [
            &b""[..],
            b"PK\x03\x04",
            b"PK\x05\x06",
            b"not a zip at all",
            &[0u8; 100],
        ] {
            let mut rows = 0;
            let r = read_first_sheet(bytes, &mut |_| {
                rows += 1;
                true
            });
            assert!(r.is_err(), "{bytes:?}");
            assert_eq!(rows, 0);
        }
    }
}
