//! Files posted in chats: decides what a file is from its display name's extension and its
//! first bytes, decodes text (UTF-8, a BOM's encoding, or GB18030 as Chinese Windows tools
//! write it), and reads tables (CSV, xlsx) by their header row. The name is only ever used to
//! read its extension: nothing here touches the file system.

use super::normalise::{
    cap_str, normalise_masked_phone, normalise_phone, normalise_time, to_half_width,
};
use super::samples::{find_masked, find_phone, parse_amount_text, parse_row, plausible_name_cell};
use super::xlsx::{self, MAX_CELL_BYTES, MAX_COLS};
use super::{Extraction, Limits, MAX_TABLE_ROWS, SampleRow, analyse, geo};

/// Cap on the text kept in rows from one table (raw text and addresses): bounds the output of a
/// sheet whose cells all point at one long shared string.
const MAX_OUTPUT_BYTES: usize = 64 << 20;

/// What a file is taken to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Csv,
    Xlsx,
    Image,
    Unsupported(&'static str),
}

/// The lower-cased extension of a display name ("样本.XLSX" -> "xlsx"). Path separators in the
/// name are treated as text: only the part after the last one is looked at.
fn extension(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let (_, ext) = base.rsplit_once('.')?;
    (!ext.is_empty() && ext.len() <= 8 && ext.chars().all(|c| c.is_ascii_alphanumeric()))
        .then(|| ext.to_ascii_lowercase())
}

fn sniff(ext: Option<&str>, bytes: &[u8]) -> Kind {
    let is_image = bytes.starts_with(b"\x89PNG\r\n\x1a\n")
        || bytes.starts_with(b"\xFF\xD8\xFF")
        || bytes.starts_with(b"GIF8")
        || (bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP"));
    if is_image {
        return Kind::Image;
    }
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        return match ext {
            Some("docx" | "pptx" | "zip" | "jar" | "apk" | "odt" | "ods") => {
                Kind::Unsupported("zip-based archive")
            }
            _ => Kind::Xlsx,
        };
    }
    if bytes.starts_with(b"\xD0\xCF\x11\xE0") {
        return Kind::Unsupported("legacy Office (OLE) document");
    }
    if bytes.starts_with(b"%PDF") {
        return Kind::Unsupported("PDF");
    }
    match ext {
        Some("xlsx" | "xlsm") => Kind::Xlsx,
        Some("csv" | "tsv") => Kind::Csv,
        Some("png" | "jpg" | "jpeg" | "gif" | "bmp" | "webp") => Kind::Image,
        Some("xls" | "doc" | "pdf" | "rar" | "7z" | "gz" | "zip" | "exe" | "apk") => {
            Kind::Unsupported("binary format")
        }
        _ => Kind::Text,
    }
}

/// Extracts offers and sample rows from a file's bytes. `name` is a display name: only its
/// extension is read, and only to help decide the format (content sniffing wins). Text and CSV
/// rows are read up to 20 MiB and [`MAX_TABLE_ROWS`] rows, xlsx workbooks after a zip-bomb
/// check (see `xlsx`); images are not read here (use [`super::ocr_image`]).
pub fn extract_file(name: &str, bytes: &[u8]) -> Extraction {
    match sniff(extension(name).as_deref(), bytes) {
        Kind::Xlsx => from_xlsx(bytes),
        Kind::Csv => {
            let (text, mut notes, truncated) = decode(bytes, Limits::FILE.text_bytes);
            let mut ex = from_csv_text(&text);
            ex.truncated |= truncated;
            notes.append(&mut ex.notes);
            ex.notes = notes;
            ex
        }
        Kind::Text => {
            let (text, mut notes, truncated) = decode(bytes, Limits::FILE.text_bytes);
            // A .txt (or nameless) file whose first line is a table header is a CSV.
            let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            let delim = delimiter(first);
            let cells: Vec<String> = first.split(char::from(delim)).map(str::to_string).collect();
            let mut ex = if cells.len() >= 2 && HeaderMap::detect(&cells).is_some() {
                from_csv_text(&text)
            } else {
                analyse(&text, &Limits::FILE)
            };
            ex.truncated |= truncated;
            notes.append(&mut ex.notes);
            ex.notes = notes;
            ex
        }
        Kind::Image => Extraction {
            notes: vec!["image: not extracted from a file upload; OCR it with ocr_image".into()],
            ..Extraction::default()
        },
        Kind::Unsupported(what) => Extraction {
            notes: vec![format!("not extracted: unsupported format ({what})")],
            ..Extraction::default()
        },
    }
}

/// Decodes at most `cap` bytes of text. Returns (text, notes, truncated).
fn decode(bytes: &[u8], cap: usize) -> (String, Vec<String>, bool) {
    let mut notes = Vec::new();
    let truncated = bytes.len() > cap;
    let slice = if truncated { &bytes[..cap] } else { bytes };
    if truncated {
        notes.push(format!(
            "file truncated: read the first {cap} of {} bytes",
            bytes.len()
        ));
    }
    if let Some((enc, bom)) = encoding_rs::Encoding::for_bom(slice) {
        let (text, had_errors) = enc.decode_without_bom_handling(&slice[bom..]);
        if enc != encoding_rs::UTF_8 {
            notes.push(format!("decoded as {}", enc.name()));
        }
        if had_errors {
            notes.push("invalid byte sequences replaced with U+FFFD".into());
        }
        return (text.into_owned(), notes, truncated);
    }
    match std::str::from_utf8(slice) {
        Ok(s) => return (s.to_string(), notes, truncated),
        // A cut through the last character is not an encoding problem.
        Err(e) if truncated && e.error_len().is_none() => {
            return (
                String::from_utf8_lossy(&slice[..e.valid_up_to()]).into_owned(),
                notes,
                truncated,
            );
        }
        Err(_) => {}
    }
    // Mostly UTF-8 with a few bad bytes stays UTF-8; GBK/GB18030 text is invalid UTF-8 almost
    // everywhere. (GB18030 decodes most byte strings, so it must not win on one bad byte.)
    let invalid: usize = slice.utf8_chunks().map(|c| c.invalid().len()).sum();
    if invalid * 50 > slice.len() {
        // When truncated, the cut may split the last character: retry a few bytes shorter.
        for back in 0..4 {
            let Some(part) = slice.get(..slice.len().saturating_sub(back)) else {
                break;
            };
            let (text, had_errors) = encoding_rs::GB18030.decode_without_bom_handling(part);
            if !had_errors {
                notes.push("decoded as GB18030".into());
                return (text.into_owned(), notes, truncated);
            }
            if !truncated {
                break;
            }
        }
    }
    notes.push("invalid UTF-8 replaced with U+FFFD".into());
    (
        String::from_utf8_lossy(slice).into_owned(),
        notes,
        truncated,
    )
}

/// The most frequent of tab, comma and semicolon in a header line (comma when none). Full-width
/// commas do not count: such "CSV" is read line by line, where the row parser splits on them.
fn delimiter(line: &str) -> u8 {
    [b',', b'\t', b';']
        .into_iter()
        .map(|d| (line.bytes().filter(|&b| b == d).count(), d))
        .max_by_key(|&(n, d)| (n, d == b','))
        .filter(|&(n, _)| n > 0)
        .map_or(b',', |(_, d)| d)
}

/// What a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    Name,
    Phone,
    Address,
    Time,
    Amount,
    Province,
    City,
    District,
}

fn header_col(cell: &str) -> Option<Col> {
    let h = to_half_width(cell.trim().trim_start_matches('\u{feff}')).to_lowercase();
    let h = h.trim_matches(|c: char| c.is_whitespace() || matches!(c, '*' | ':' | '"'));
    if h.is_empty() || h.chars().count() > 24 {
        return None;
    }
    let has = |words: &[&str]| words.iter().any(|w| h.contains(w));
    // Ids first: "订单号码" or "order_id" is not a phone.
    if has(&["单号", "编号", "order_id", "orderid"]) || h == "id" || h.ends_with("_id") {
        return None;
    }
    Some(
        if has(&["电话", "手机", "号码", "phone", "mobile", "tel"]) {
            Col::Phone
        } else if has(&["地址", "住址", "address", "addr"]) {
            Col::Address
        } else if has(&["时间", "日期", "time", "date", "created"]) {
            Col::Time
        } else if has(&["金额", "实付", "价格", "amount", "price", "total"]) {
            Col::Amount
        } else if ["省", "省份", "province"].contains(&h) || h.contains("province") {
            Col::Province
        } else if ["市", "城市", "city"].contains(&h) || h.contains("city") {
            Col::City
        } else if ["区", "区县", "县区", "district"].contains(&h) || h.contains("district") {
            Col::District
        } else if has(&[
            "姓名",
            "名字",
            "收货人",
            "收件人",
            "联系人",
            "客户",
            "用户",
            "name",
        ]) {
            Col::Name
        } else {
            return None;
        },
    )
}

/// Column positions from a header row.
#[derive(Debug, Default, Clone)]
struct HeaderMap {
    name: Option<usize>,
    phone: Option<usize>,
    address: Option<usize>,
    time: Option<usize>,
    amount: Option<usize>,
    province: Option<usize>,
    city: Option<usize>,
    district: Option<usize>,
}

impl HeaderMap {
    /// A header has at least two recognised columns, one of them a name, phone or address.
    fn detect(cells: &[String]) -> Option<HeaderMap> {
        let mut h = HeaderMap::default();
        let mut found = 0;
        for (i, cell) in cells.iter().enumerate().take(MAX_COLS) {
            let Some(col) = header_col(cell) else {
                continue;
            };
            let slot = match col {
                Col::Name => &mut h.name,
                Col::Phone => &mut h.phone,
                Col::Address => &mut h.address,
                Col::Time => &mut h.time,
                Col::Amount => &mut h.amount,
                Col::Province => &mut h.province,
                Col::City => &mut h.city,
                Col::District => &mut h.district,
            };
            // The first column of a kind wins (customer_name before merchant_name).
            if slot.is_none() {
                *slot = Some(i);
                found += 1;
            }
        }
        (found >= 2 && (h.name.is_some() || h.phone.is_some() || h.address.is_some())).then_some(h)
    }
}

/// An Excel date serial (days since 1899-12-30, fraction = time of day) as "YYYY-MM-DD hh:mm".
fn excel_serial(v: &str) -> Option<String> {
    let f: f64 = v.trim().parse().ok()?;
    // 1954..2119: the range where a number in a time column is a date, not something else.
    if !(20_000.0..80_000.0).contains(&f) {
        return None;
    }
    // In range above, so the conversions below are exact enough and cannot overflow.
    let total_minutes = (f * 1440.0).round() as i64;
    let (days, minutes) = (
        total_minutes.div_euclid(1440),
        total_minutes.rem_euclid(1440),
    );
    // Civil-from-days (proleptic Gregorian), counted from 1970-01-01 = serial 25569.
    let z = days - 25_569 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    Some(format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        minutes / 60,
        minutes % 60
    ))
}

/// Collects rows from a table, one row at a time.
struct TableSink {
    ex: Extraction,
    /// None until the first non-empty row; then Some(header) or Some(None) for no header.
    header: Option<Option<HeaderMap>>,
    serial_dates: bool,
    seen: usize,
    skipped: usize,
    output: usize,
}

impl TableSink {
    fn new(serial_dates: bool) -> Self {
        TableSink {
            ex: Extraction::default(),
            header: None,
            serial_dates,
            seen: 0,
            skipped: 0,
            output: 0,
        }
    }

    /// Takes one row; false means stop reading.
    fn push(&mut self, mut cells: Vec<String>) -> bool {
        if cells.iter().all(|c| c.trim().is_empty()) {
            return true;
        }
        cells.truncate(MAX_COLS);
        for c in &mut cells {
            if c.len() > MAX_CELL_BYTES {
                let keep = cap_str(c, MAX_CELL_BYTES).0.len();
                c.truncate(keep);
            }
        }
        let header = match &self.header {
            Some(h) => h.clone(),
            None => {
                let h = HeaderMap::detect(&cells);
                self.header = Some(h.clone());
                if h.is_some() {
                    return true;
                }
                None
            }
        };
        self.seen += 1;
        if self.seen > MAX_TABLE_ROWS {
            self.ex.truncated = true;
            self.ex.notes.push(format!(
                "table truncated: read the first {MAX_TABLE_ROWS} rows"
            ));
            return false;
        }
        let row = match &header {
            Some(h) => self.row_from_cells(h, &cells),
            None => parse_row(&joined(&cells)),
        };
        let Some(row) = row else {
            self.skipped += 1;
            return true;
        };
        self.output += row.raw.len() + row.address.as_ref().map_or(0, String::len);
        if self.output > MAX_OUTPUT_BYTES {
            self.ex.truncated = true;
            self.ex.notes.push(format!(
                "table truncated: row text over the {} MB output cap",
                MAX_OUTPUT_BYTES >> 20
            ));
            return false;
        }
        self.ex.rows.push(row);
        true
    }

    /// A row from the header's columns; falls back to reading the joined cells as a line when
    /// the columns do not give a phone plus a name or an address (shifted or merged columns).
    fn row_from_cells(&self, h: &HeaderMap, cells: &[String]) -> Option<SampleRow> {
        let get = |i: Option<usize>| {
            i.and_then(|i| cells.get(i))
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
        };
        let raw = joined(cells);
        let mut phone = None;
        let mut masked = None;
        if let Some(p) = get(h.phone) {
            phone = normalise_phone(p);
            if phone.is_none() {
                masked = normalise_masked_phone(p);
            }
            if phone.is_none() && masked.is_none() {
                // "电话:138..." or two numbers in one cell.
                let folded = to_half_width(p);
                phone = find_phone(&folded).map(|x| x.2);
                masked = find_masked(&folded).map(|x| x.2);
            }
        }
        let name = get(h.name)
            .filter(|n| plausible_name_cell(n))
            .map(str::to_string);
        let address = get(h.address).map(str::to_string);
        let valid = (phone.is_some() || masked.is_some()) && (name.is_some() || address.is_some());
        if !valid {
            return parse_row(&raw);
        }
        let order_time = get(h.time).map(|t| {
            normalise_time(t)
                .or_else(|| self.serial_dates.then(|| excel_serial(t)).flatten())
                .unwrap_or_else(|| t.to_string())
        });
        let amount_fen = get(h.amount).and_then(parse_amount_text);
        let (mut province, mut city, mut district) = match &address {
            Some(a) => geo::parse_region(a),
            None => (None, None, None),
        };
        if let Some(p) = get(h.province) {
            province = Some(p.to_string());
        }
        if let Some(c) = get(h.city) {
            city = Some(c.to_string());
        }
        if let Some(d) = get(h.district) {
            district = Some(d.to_string());
        }
        Some(SampleRow {
            name,
            phone,
            masked_phone: masked,
            address,
            province,
            city,
            district,
            order_time,
            amount_fen,
            raw,
        })
    }

    fn finish(mut self) -> Extraction {
        if self.skipped > 0 && self.header.as_ref().is_some_and(Option::is_some) {
            self.ex.notes.push(format!(
                "{} table rows without a phone plus a name or address were skipped",
                self.skipped
            ));
        }
        self.ex
    }
}

/// Cells joined with tabs, trailing empty cells left out.
fn joined(cells: &[String]) -> String {
    let end = cells
        .iter()
        .rposition(|c| !c.trim().is_empty())
        .map_or(0, |i| i + 1);
    cells[..end].join("\t")
}

/// A CSV: by its header when it has one, otherwise line by line as text.
fn from_csv_text(text: &str) -> Extraction {
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let delim = delimiter(first);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delim)
        .from_reader(text.as_bytes());
    let mut sink = TableSink::new(false);
    let mut records = reader.records();
    // Peek at the first non-empty record: without a header the lines are read as text.
    let mut first_cells = None;
    for rec in records.by_ref() {
        match rec {
            Ok(r) => {
                let cells: Vec<String> = r.iter().take(MAX_COLS).map(str::to_string).collect();
                if cells.iter().any(|c| !c.trim().is_empty()) {
                    first_cells = Some(cells);
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let Some(first_cells) = first_cells else {
        return analyse(text, &Limits::FILE);
    };
    if HeaderMap::detect(&first_cells).is_none() {
        return analyse(text, &Limits::FILE);
    }
    sink.push(first_cells);
    for (n, rec) in records.enumerate() {
        match rec {
            Ok(r) => {
                let cells: Vec<String> = r.iter().take(MAX_COLS).map(str::to_string).collect();
                if !sink.push(cells) {
                    break;
                }
            }
            Err(e) => {
                let msg = e.to_string();
                let (msg, _) = cap_str(&msg, 160);
                sink.ex
                    .notes
                    .push(format!("csv: stopped at record {} ({msg})", n + 2));
                break;
            }
        }
    }
    sink.finish()
}

fn from_xlsx(bytes: &[u8]) -> Extraction {
    let mut sink = TableSink::new(true);
    let result = xlsx::read_first_sheet(bytes, &mut |cells| sink.push(cells));
    let mut notes = match result {
        Ok(notes) => notes,
        Err(refusal) => vec![format!("xlsx refused: {refusal}")],
    };
    let mut ex = sink.finish();
    notes.append(&mut ex.notes);
    ex.notes = notes;
    ex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_are_read_from_display_names_only() {
        assert_eq!(extension("样本.XLSX").as_deref(), Some("xlsx"));
        assert_eq!(extension("../../etc/passwd"), None);
        assert_eq!(extension("a/b.c/readme"), None);
        assert_eq!(extension("x.tar.gz").as_deref(), Some("gz"));
        assert_eq!(extension("noext"), None);
        assert_eq!(extension("weird.名字"), None);
    }

    #[test]
    fn header_columns() {
        let cells = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let h = HeaderMap::detect(&cells(&["姓名", "电话", "地址", "下单时间"]));
        assert!(h.is_some_and(|h| h.name == Some(0)
            && h.phone == Some(1)
            && h.address == Some(2)
            && h.time == Some(3)));
        let h = HeaderMap::detect(&cells(&[
            "order_id",
            "created_at",
            "city",
            "customer_name",
            "customer_phone",
            "address",
        ]));
        assert!(h.is_some_and(|h| h.time == Some(1)
            && h.city == Some(2)
            && h.name == Some(3)
            && h.phone == Some(4)
            && h.address == Some(5)));
        assert!(HeaderMap::detect(&cells(&["张伟", "13812345678", "北京市海淀区"])).is_none());
        assert!(HeaderMap::detect(&cells(&["Name", "Phone"])).is_some());
        assert!(HeaderMap::detect(&cells(&["订单号码", "备注"])).is_none());
    }

    #[test]
    fn excel_serials() {
        assert_eq!(
            excel_serial("46306.7708333").as_deref(),
            Some("2026-10-11 18:30")
        );
        assert_eq!(excel_serial("25569").as_deref(), Some("1970-01-01 00:00"));
        assert_eq!(excel_serial("13812345678"), None);
        assert_eq!(excel_serial("abc"), None);
    }

    #[test]
    fn delimiters() {
        assert_eq!(delimiter("姓名,电话,地址"), b',');
        assert_eq!(delimiter("姓名\t电话\t地址"), b'\t');
        assert_eq!(delimiter("姓名;电话;地址"), b';');
        assert_eq!(delimiter("姓名，电话，地址"), b',');
        assert_eq!(delimiter("nothing"), b',');
    }
}
