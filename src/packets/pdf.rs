//! A small flowing-layout engine over `printpdf` for the Chinese police report: A4 pages,
//! headings, wrapped paragraphs, key/value lines, tables that repeat their header on each
//! page, and "第 i 页 / 共 n 页" footers.
//!
//! Font embedding (PDF 1.7, ISO 32000-1 §9.7): printpdf embeds the TrueType face as a
//! `CIDFontType2` descendant of a `Type0` font with `Identity-H` encoding and writes a
//! `ToUnicode` CMap (§9.10.3), which is what lets `pdftotext` and screen readers recover
//! the Chinese text. A `.ttc` collection is accepted: its first face is extracted and
//! embedded as a standalone sfnt, since a `FontFile2` stream must hold a single font.
//! Only printpdf's default features are turned off (no HTML layout); without its
//! `text_layout` feature it embeds the whole face rather than a subset, which costs about
//! 2 MB (compressed) per report but keeps the dependency tree small.
//!
//! Text is measured with the font's own advance widths (`hmtx`), so wrapping does not
//! depend on guessed character widths. printpdf's `SetTextCursor` emits a relative `Td`,
//! so every line gets its own `BT … ET` block to keep positions absolute. printpdf draws
//! resource names and the trailer `/ID` from a process-wide counter, so two builds of
//! the same report differ in those bytes only.

use std::path::Path;

use chrono::{DateTime, Datelike, Timelike, Utc};
use printpdf::{
    Color, Date, FontId, Greyscale, Line, LinePoint, Mm, Offset, Op, ParsedFont, PdfDocument,
    PdfFontHandle, PdfPage, PdfSaveOptions, Point, Pt, TextItem, Time,
};

use super::PacketError;

/// A4 in points (ISO 216: 210 mm × 297 mm).
const PAGE_W: f32 = 595.276;
const PAGE_H: f32 = 841.89;
const MARGIN_X: f32 = 50.0;
const MARGIN_TOP: f32 = 56.0;
const MARGIN_BOTTOM: f32 = 56.0;
const CONTENT_W: f32 = PAGE_W - 2.0 * MARGIN_X;

pub(crate) const SIZE_TITLE: f32 = 16.0;
pub(crate) const SIZE_HEADING: f32 = 12.0;
pub(crate) const SIZE_BODY: f32 = 10.0;
pub(crate) const SIZE_TABLE: f32 = 8.0;
const LEADING: f32 = 1.45;
const CELL_PAD: f32 = 3.0;
/// A table cell longer than this many lines is cut with "…" so one row always fits a page.
const MAX_CELL_LINES: usize = 8;

/// A loaded font plus the metrics needed for measuring text.
struct Metrics {
    units_per_em: f32,
    parsed: ParsedFont,
}

impl Metrics {
    fn advance(&self, c: char) -> f32 {
        let fallback = if c.is_ascii() { 0.5 } else { 1.0 } * self.units_per_em;
        self.parsed
            .lookup_glyph_index(c as u32)
            .and_then(|gid| self.parsed.get_glyph_width(gid))
            .map(f32::from)
            .unwrap_or(fallback)
    }

    fn width(&self, s: &str, size: f32) -> f32 {
        s.chars().map(|c| self.advance(c)).sum::<f32>() * size / self.units_per_em
    }
}

/// Column of a table: header text and share of the content width.
pub(crate) struct Column<'a> {
    pub header: &'a str,
    pub share: f32,
}

/// Flowing document under construction.
pub(crate) struct Layout {
    doc: PdfDocument,
    font: FontId,
    metrics: Metrics,
    pages: Vec<Vec<Op>>,
    /// Baseline cursor, measured from the bottom of the page as PDF does.
    y: f32,
    running_header: String,
}

impl Layout {
    /// Loads the font at `font_path` and starts page 1.
    pub(crate) fn new(
        font_path: &Path,
        title: &str,
        running_header: &str,
    ) -> Result<Layout, PacketError> {
        let err = |reason: String| PacketError::Font {
            path: font_path.display().to_string(),
            reason,
        };
        let bytes = std::fs::read(font_path).map_err(|e| err(e.to_string()))?;
        let mut warnings = Vec::new();
        // Face 0 of a collection, or the only face of a plain .ttf/.otf.
        let parsed = ParsedFont::from_bytes(&bytes, 0, &mut warnings).ok_or_else(|| {
            err(format!(
                "not a usable TrueType/OpenType font ({} warnings)",
                warnings.len()
            ))
        })?;
        // A report whose Chinese renders as boxes is useless; refuse fonts without CJK.
        if "报案材料"
            .chars()
            .any(|c| parsed.lookup_glyph_index(c as u32).is_none())
        {
            return Err(err("font has no glyphs for Chinese (CJK) text".into()));
        }
        let units_per_em = match parsed.units_per_em {
            0 => 1000.0,
            u => f32::from(u),
        };
        let mut doc = PdfDocument::new(title);
        let font = doc.add_font(&parsed);
        let mut layout = Layout {
            doc,
            font,
            metrics: Metrics {
                units_per_em,
                parsed,
            },
            pages: Vec::new(),
            y: 0.0,
            running_header: running_header.to_string(),
        };
        layout.new_page();
        Ok(layout)
    }

    fn new_page(&mut self) {
        self.pages.push(Vec::new());
        let header = self.running_header.clone();
        let y = PAGE_H - 30.0;
        self.text_at(MARGIN_X, y, &header, 7.5);
        self.rule(MARGIN_X, PAGE_W - MARGIN_X, y - 5.0, 0.4);
        self.y = PAGE_H - MARGIN_TOP;
    }

    fn ops(&mut self) -> &mut Vec<Op> {
        if self.pages.is_empty() {
            self.pages.push(Vec::new());
        }
        let last = self.pages.len() - 1;
        &mut self.pages[last]
    }

    /// Starts a new page unless `height` more points fit above the bottom margin.
    fn ensure(&mut self, height: f32) {
        if self.y - height < MARGIN_BOTTOM {
            self.new_page();
        }
    }

    /// One line of text with its baseline at (`x`, `y`).
    fn text_at(&mut self, x: f32, y: f32, text: &str, size: f32) {
        if text.is_empty() {
            return;
        }
        let font = self.font.clone();
        self.ops().extend([
            Op::StartTextSection,
            Op::SetFont {
                font: PdfFontHandle::External(font),
                size: Pt(size),
            },
            Op::SetTextCursor {
                pos: Point { x: Pt(x), y: Pt(y) },
            },
            Op::ShowText {
                items: vec![TextItem::Text(text.to_string())],
            },
            Op::EndTextSection,
        ]);
    }

    fn rule(&mut self, x0: f32, x1: f32, y: f32, thickness: f32) {
        self.line(x0, y, x1, y, thickness);
    }

    fn line(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, thickness: f32) {
        self.ops().extend([
            Op::SetOutlineColor {
                col: Color::Greyscale(Greyscale {
                    percent: 0.0,
                    icc_profile: None,
                }),
            },
            Op::SetOutlineThickness { pt: Pt(thickness) },
            Op::DrawLine {
                line: Line {
                    points: vec![
                        LinePoint {
                            p: Point {
                                x: Pt(x0),
                                y: Pt(y0),
                            },
                            bezier: false,
                        },
                        LinePoint {
                            p: Point {
                                x: Pt(x1),
                                y: Pt(y1),
                            },
                            bezier: false,
                        },
                    ],
                    is_closed: false,
                },
            },
        ]);
    }

    /// Breaks `text` into lines no wider than `max_w` at `size`. CJK text may break
    /// between any two characters; Latin words are kept whole when they fit a line.
    pub(crate) fn wrap(&self, text: &str, max_w: f32, size: f32) -> Vec<String> {
        let scale = size / self.metrics.units_per_em;
        let mut lines = Vec::new();
        for para in text.split('\n') {
            let mut line = String::new();
            let mut line_w = 0.0f32;
            // Byte index in `line` after the last break opportunity (a space or a CJK
            // character), so that a Latin word running over the edge moves down whole.
            let mut break_at: Option<usize> = None;
            for c in sanitize(para).chars() {
                let w = self.metrics.advance(c) * scale;
                while line_w + w > max_w && !line.is_empty() {
                    if c == ' ' {
                        break;
                    }
                    match break_at.take() {
                        Some(i) if i > 0 && i < line.len() => {
                            let rest = line.split_off(i);
                            lines.push(line.trim_end().to_string());
                            line = rest;
                        }
                        _ => lines.push(std::mem::take(&mut line).trim_end().to_string()),
                    }
                    line_w = self.metrics.width(&line, size);
                }
                if c == ' ' && line_w + w > max_w {
                    // A space at the edge becomes the line break itself.
                    lines.push(std::mem::take(&mut line).trim_end().to_string());
                    line_w = 0.0;
                    break_at = None;
                    continue;
                }
                line.push(c);
                line_w += w;
                if c == ' ' || !c.is_ascii() {
                    break_at = Some(line.len());
                }
            }
            lines.push(line.trim_end().to_string());
        }
        lines
    }

    /// Width of `text` at `size`, for tests of the wrapping.
    #[cfg(test)]
    pub(crate) fn measure(&self, text: &str, size: f32) -> f32 {
        self.metrics.width(text, size)
    }

    /// Document title, centred.
    pub(crate) fn title(&mut self, text: &str) {
        for l in self.wrap(text, CONTENT_W, SIZE_TITLE) {
            self.ensure(SIZE_TITLE * LEADING);
            let w = self.metrics.width(&l, SIZE_TITLE);
            let x = MARGIN_X + ((CONTENT_W - w) / 2.0).max(0.0);
            let y = self.y - SIZE_TITLE;
            self.text_at(x, y, &l, SIZE_TITLE);
            self.y -= SIZE_TITLE * LEADING;
        }
        self.y -= 6.0;
    }

    /// Section heading; kept with at least two body lines below it.
    pub(crate) fn heading(&mut self, text: &str) {
        self.y -= 6.0;
        self.ensure(SIZE_HEADING * LEADING + 2.0 * SIZE_BODY * LEADING);
        let y = self.y - SIZE_HEADING;
        self.text_at(MARGIN_X, y, text, SIZE_HEADING);
        self.y -= SIZE_HEADING * LEADING + 2.0;
    }

    /// Wrapped body paragraph.
    pub(crate) fn paragraph(&mut self, text: &str) {
        self.paragraph_sized(text, SIZE_BODY, 0.0);
    }

    /// Wrapped paragraph at `size`, indented by `indent` points.
    pub(crate) fn paragraph_sized(&mut self, text: &str, size: f32, indent: f32) {
        for l in self.wrap(text, CONTENT_W - indent, size) {
            self.ensure(size * LEADING);
            let y = self.y - size;
            self.text_at(MARGIN_X + indent, y, &l, size);
            self.y -= size * LEADING;
        }
    }

    /// "key:value" with the value wrapped under itself.
    pub(crate) fn kv(&mut self, key: &str, value: &str) {
        let key = format!("{key}:");
        let key_w = self.metrics.width(&key, SIZE_BODY).min(CONTENT_W / 3.0);
        let lines = self.wrap(value, CONTENT_W - key_w, SIZE_BODY);
        for (i, l) in lines.iter().enumerate() {
            self.ensure(SIZE_BODY * LEADING);
            let y = self.y - SIZE_BODY;
            if i == 0 {
                self.text_at(MARGIN_X, y, &key, SIZE_BODY);
            }
            self.text_at(MARGIN_X + key_w, y, l, SIZE_BODY);
            self.y -= SIZE_BODY * LEADING;
        }
    }

    /// Continues on a fresh page unless the current one is still empty.
    pub(crate) fn page_break(&mut self) {
        if self.y < PAGE_H - MARGIN_TOP {
            self.new_page();
        }
    }

    /// Vertical gap.
    pub(crate) fn gap(&mut self, points: f32) {
        self.y -= points;
    }

    /// Table with ruled rows; the header repeats on every page the table spans.
    pub(crate) fn table<I>(&mut self, columns: &[Column<'_>], rows: I)
    where
        I: IntoIterator<Item = Vec<String>>,
    {
        let total: f32 = columns
            .iter()
            .map(|c| c.share.max(0.0))
            .sum::<f32>()
            .max(f32::EPSILON);
        let widths: Vec<f32> = columns
            .iter()
            .map(|c| CONTENT_W * c.share.max(0.0) / total)
            .collect();
        let line_h = SIZE_TABLE * LEADING;
        let headers: Vec<String> = columns.iter().map(|c| c.header.to_string()).collect();
        let header_cells = self.cells(&headers, &widths);
        let header_h = row_height(&header_cells, line_h);
        let mut seg_top = self.start_table_segment(&header_cells, &widths, header_h, line_h);
        for row in rows {
            let cells = self.cells(&row, &widths);
            let h = row_height(&cells, line_h);
            if self.y - h < MARGIN_BOTTOM {
                self.close_table_segment(seg_top, &widths);
                self.new_page();
                seg_top = self.start_table_segment(&header_cells, &widths, header_h, line_h);
            }
            self.draw_row(&cells, &widths, line_h);
            self.y -= h;
            self.rule(MARGIN_X, MARGIN_X + CONTENT_W, self.y, 0.3);
        }
        self.close_table_segment(seg_top, &widths);
        self.y -= 6.0;
    }

    fn cells(&self, row: &[String], widths: &[f32]) -> Vec<Vec<String>> {
        widths
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let text = row.get(i).map(String::as_str).unwrap_or("");
                let mut lines = self.wrap(text, (w - 2.0 * CELL_PAD).max(SIZE_TABLE), SIZE_TABLE);
                if lines.len() > MAX_CELL_LINES {
                    lines.truncate(MAX_CELL_LINES);
                    if let Some(last) = lines.last_mut() {
                        last.pop();
                        last.push('…');
                    }
                }
                lines
            })
            .collect()
    }

    fn start_table_segment(
        &mut self,
        header_cells: &[Vec<String>],
        widths: &[f32],
        header_h: f32,
        line_h: f32,
    ) -> f32 {
        self.ensure(header_h + line_h + 2.0 * CELL_PAD);
        let top = self.y;
        self.rule(MARGIN_X, MARGIN_X + CONTENT_W, top, 0.8);
        self.draw_row(header_cells, widths, line_h);
        self.y -= header_h;
        self.rule(MARGIN_X, MARGIN_X + CONTENT_W, self.y, 0.8);
        top
    }

    fn close_table_segment(&mut self, top: f32, widths: &[f32]) {
        let mut x = MARGIN_X;
        self.line(x, top, x, self.y, 0.3);
        for w in widths {
            x += w;
            self.line(x, top, x, self.y, 0.3);
        }
    }

    fn draw_row(&mut self, cells: &[Vec<String>], widths: &[f32], line_h: f32) {
        let mut x = MARGIN_X;
        for (lines, w) in cells.iter().zip(widths) {
            for (i, l) in lines.iter().enumerate() {
                let y = self.y - CELL_PAD - SIZE_TABLE - i as f32 * line_h;
                self.text_at(x + CELL_PAD, y, l, SIZE_TABLE);
            }
            x += w;
        }
    }

    /// Adds page footers, sets the document dates, and serialises the PDF.
    pub(crate) fn finish(mut self, created: &DateTime<Utc>) -> Vec<u8> {
        let total = self.pages.len();
        let footers: Vec<String> = (1..=total)
            .map(|i| format!("第 {i} 页 / 共 {total} 页"))
            .collect();
        for (i, footer) in footers.iter().enumerate() {
            let w = self.metrics.width(footer, 8.0);
            let font = self.font.clone();
            if let Some(ops) = self.pages.get_mut(i) {
                ops.extend([
                    Op::StartTextSection,
                    Op::SetFont {
                        font: PdfFontHandle::External(font),
                        size: Pt(8.0),
                    },
                    Op::SetTextCursor {
                        pos: Point {
                            x: Pt((PAGE_W - w) / 2.0),
                            y: Pt(28.0),
                        },
                    },
                    Op::ShowText {
                        items: vec![TextItem::Text(footer.clone())],
                    },
                    Op::EndTextSection,
                ]);
            }
        }
        let when = pdf_date(created);
        let info = &mut self.doc.metadata.info;
        info.creation_date = when;
        info.modification_date = when;
        info.metadata_date = when;
        info.producer = "leakwatch packets".to_string();
        info.creator = "leakwatch".to_string();
        let pages: Vec<PdfPage> = std::mem::take(&mut self.pages)
            .into_iter()
            .map(|ops| PdfPage::new(Mm(210.0), Mm(297.0), ops))
            .collect();
        let mut warnings = Vec::new();
        self.doc
            .with_pages(pages)
            .save(&PdfSaveOptions::default(), &mut warnings)
    }
}

fn row_height(cells: &[Vec<String>], line_h: f32) -> f32 {
    let lines = cells.iter().map(Vec::len).max().unwrap_or(1).max(1);
    lines as f32 * line_h + 2.0 * CELL_PAD
}

/// Control characters (tabs, carriage returns, NULs from captures) have no glyphs.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn pdf_date(t: &DateTime<Utc>) -> printpdf::OffsetDateTime {
    let clamp_u8 = |v: u32| u8::try_from(v).unwrap_or(0);
    printpdf::OffsetDateTime::new_in_offset(
        Date {
            year: t.year(),
            month: clamp_u8(t.month()),
            day: clamp_u8(t.day()),
        },
        Time {
            hour: clamp_u8(t.hour()),
            minute: clamp_u8(t.minute()),
            second: clamp_u8(t.second()),
            millisecond: 0,
        },
        Offset {
            hours: 0,
            minutes: 0,
            seconds: 0,
            milliseconds: 0,
        },
    )
}
