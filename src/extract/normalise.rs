//! Normalisation helpers shared by the extractors and by other modules: folding full-width
//! characters to half-width, mainland mobile numbers (full and masked), decimal and Chinese
//! numerals, and order times. Every function here is total: hostile input yields `None`,
//! never a panic, and the work done is bounded by the input's length.

use regex::{Captures, Regex};
use std::sync::LazyLock;

/// Longest string the phone normalisers look at. A phone number with a country code and
/// separators fits in far less; refusing longer input keeps callers from feeding whole
/// messages through a per-field helper.
const MAX_PHONE_INPUT: usize = 64;

/// Folds full-width ASCII variants (U+FF01..U+FF5E) and the ideographic space (U+3000) to
/// their half-width forms. Every other character is kept, so the result has exactly as many
/// characters as the input: callers rely on that to map positions back to the original text.
pub fn to_half_width(s: &str) -> String {
    s.chars().map(half_width_char).collect()
}

/// The single-character form of [`to_half_width`].
pub fn half_width_char(c: char) -> char {
    match c {
        '\u{3000}' => ' ',
        // The full-width block mirrors ASCII 0x21..0x7E at a fixed offset.
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(u32::from(c) - 0xFEE0).unwrap_or(c),
        _ => c,
    }
}

/// A full mainland mobile number, digits only and without the country code:
/// `"+86 138-1234-5678"`, `"１３８１２３４５６７８"`, `"138 1234 5678"`, `"8613812345678"` and
/// `"008613812345678"` all give `"13812345678"`.
///
/// Only mobiles (`1[3-9]` followed by nine digits) are accepted. Landlines such as
/// `010-12345678` are deliberately refused: sellers' sample rows carry the customer's mobile,
/// and a landline is far more often a shop's or a hospital's number than a victim's.
/// Order ids, 12-digit numbers and anything with letters are refused too.
pub fn normalise_phone(s: &str) -> Option<String> {
    let s = s.trim();
    if s.is_empty() || s.len() > MAX_PHONE_INPUT {
        return None;
    }
    let mut digits = String::with_capacity(16);
    let mut plus = false;
    for c in s.chars().map(half_width_char) {
        match c {
            '0'..='9' => digits.push(c),
            '+' if digits.is_empty() && !plus => plus = true,
            ' ' | '\t' | '-' | '.' | '(' | ')' => {}
            _ => return None,
        }
    }
    let local = match digits.len() {
        // A leading '+' promises a country code, so a bare 11-digit number after it is wrong.
        11 if !plus => digits.as_str(),
        13 => digits.strip_prefix("86")?,
        15 if !plus => digits.strip_prefix("0086")?,
        _ => return None,
    };
    is_mobile(local).then(|| local.to_string())
}

/// True for exactly eleven ASCII digits that form a mainland mobile number.
pub(crate) fn is_mobile(d: &str) -> bool {
    let b = d.as_bytes();
    b.len() == 11
        && b.iter().all(u8::is_ascii_digit)
        && b[0] == b'1'
        && (b'3'..=b'9').contains(&b[1])
}

/// Characters sellers use to hide the middle four digits.
pub(crate) fn is_mask_char(c: char) -> bool {
    matches!(
        c,
        '*' | 'x' | 'X' | '×' | '●' | '•' | '#' | '﹡' | '✱' | '★' | '?' | '＊' | '○'
    )
}

/// A masked mobile number in the normalised `138****5678` form (three digits, four stars,
/// four digits). Accepts full-width stars, `x`/`X` and other common mask characters, dashes
/// and spaces, and a `+86` prefix. A number with a different count of hidden digits is refused:
/// it cannot be compared with a full number position by position.
pub fn normalise_masked_phone(s: &str) -> Option<String> {
    let s = s.trim();
    if s.is_empty() || s.len() > MAX_PHONE_INPUT {
        return None;
    }
    let mut chars: Vec<char> = Vec::with_capacity(16);
    let mut plus = false;
    for c in s.chars().map(half_width_char) {
        match c {
            '+' if chars.is_empty() && !plus => plus = true,
            ' ' | '\t' | '-' => {}
            c if c.is_ascii_digit() || is_mask_char(c) => chars.push(c),
            _ => return None,
        }
    }
    let body: &[char] = match chars.len() {
        11 if !plus => &chars,
        13 if chars[0] == '8' && chars[1] == '6' => &chars[2..],
        _ => return None,
    };
    let ok = body[0] == '1'
        && ('3'..='9').contains(&body[1])
        && body[2].is_ascii_digit()
        && body[3..7].iter().all(|&c| is_mask_char(c))
        && body[7..].iter().all(char::is_ascii_digit);
    ok.then(|| {
        let head: String = body[..3].iter().collect();
        let tail: String = body[7..].iter().collect();
        format!("{head}****{tail}")
    })
}

/// Fixed-point scale used for prices and quantities: values are carried as value × 10^4 so
/// that `0.15元` and `1.5万` stay exact without floating point.
pub(crate) const ONE: u128 = 10_000;

/// Parses `digits[.digits]` (ASCII) into value × [`ONE`], rounding half up past four decimals.
pub(crate) fn parse_decimal(s: &str) -> Option<u128> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    // Twelve integer digits is far beyond any price or volume; the cap keeps u128 math safe.
    if int.is_empty() || int.len() > 12 || frac.len() > 12 {
        return None;
    }
    if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut v: u128 = int.parse::<u128>().ok()?.checked_mul(ONE)?;
    let mut place = ONE / 10;
    for (i, b) in frac.bytes().enumerate() {
        let d = u128::from(b - b'0');
        if i < 4 {
            v += d * place;
            place /= 10;
        } else {
            if d >= 5 {
                v += 1;
            }
            break;
        }
    }
    Some(v)
}

/// The value of one Chinese digit character (`零〇一二两三四五六七八九`).
pub(crate) fn cn_digit(c: char) -> Option<u64> {
    Some(match c {
        '零' | '〇' => 0,
        '一' => 1,
        '二' | '两' => 2,
        '三' => 3,
        '四' => 4,
        '五' => 5,
        '六' => 6,
        '七' => 7,
        '八' => 8,
        '九' => 9,
        _ => return None,
    })
}

/// Parses a Chinese integer numeral: `一` 1, `十五` 15, `八百` 800, `三千` 3000, `一万` 10000,
/// `两万` 20000, `一千零五` 1005, and the colloquial `三千五` 3500 / `一万五` 15000 / `一百五` 150.
/// A bare `万` means ten thousand (as in `800元/万条`). Overflow and malformed numerals give None.
pub(crate) fn parse_cn_int(s: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut section: u64 = 0;
    let mut num: Option<u64> = None;
    let mut last_unit: u64 = 0;
    let mut zero_seen = false;
    let mut any = false;
    for c in s.chars() {
        any = true;
        if let Some(d) = cn_digit(c) {
            if d == 0 {
                zero_seen = true;
                continue;
            }
            if num.is_some() {
                // Two digits in a row (`一二`) is not a number in this notation.
                return None;
            }
            num = Some(d);
            continue;
        }
        let unit: u64 = match c {
            '十' => 10,
            '百' => 100,
            '千' => 1000,
            '万' => 10_000,
            _ => return None,
        };
        if unit == 10_000 {
            let before = total.checked_add(section)?.checked_add(num.unwrap_or(0))?;
            total = if before == 0 {
                10_000
            } else {
                before.checked_mul(10_000)?
            };
            section = 0;
        } else {
            let n = num.unwrap_or(1);
            section = section.checked_add(n.checked_mul(unit)?)?;
        }
        num = None;
        last_unit = unit;
        zero_seen = false;
    }
    if !any {
        return None;
    }
    if let Some(n) = num {
        // `三千五` means 3500: a trailing digit right after a unit counts one unit lower.
        let add = if !zero_seen && last_unit >= 100 {
            n.checked_mul(last_unit / 10)?
        } else {
            n
        };
        section = section.checked_add(add)?;
    }
    total.checked_add(section)
}

/// An ASCII decimal or a Chinese numeral, as value × [`ONE`].
pub(crate) fn parse_number(s: &str) -> Option<u128> {
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        parse_decimal(s)
    } else {
        parse_cn_int(s).map(|v| u128::from(v) * ONE)
    }
}

/// The multiplier of a quantity unit (`万`/`w` ten thousand, `千`/`k` thousand, `百` hundred).
pub(crate) fn quantity_unit(s: &str) -> u128 {
    match s {
        "万" | "w" | "W" => 10_000,
        "千" | "k" | "K" => 1000,
        "百" => 100,
        _ => 1,
    }
}

/// Dates and times as sellers write them. Alternatives are tried left to right at the same
/// start, so the longest form (date and time) wins over a date or a time alone.
static TIME_RE: LazyLock<Regex> = LazyLock::new(|| {
    // A literal pattern: compiling it cannot fail at run time once the tests pass.
    Regex::new(
        r"(?x)
        (?P<y>[0-9]{4})[-/.年](?P<mo>[0-9]{1,2})[-/.月](?P<d>[0-9]{1,2})日?(?:[T\x20]+|\s*)
            (?P<h>[0-9]{1,2})[:时点](?P<mi>[0-9]{2})(?::[0-9]{2}(?:\.[0-9]{1,9})?)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?
      | (?P<y2>[0-9]{4})[-/.年](?P<mo2>[0-9]{1,2})[-/.月](?P<d2>[0-9]{1,2})日?
      | (?P<mo3>[0-9]{1,2})[-/月](?P<d3>[0-9]{1,2})日?(?:T|\s*)(?P<h3>[0-9]{1,2})[:时点](?P<mi3>[0-9]{2})(?::[0-9]{2})?
      | (?P<h4>[0-9]{1,2}):(?P<mi4>[0-9]{2})(?::[0-9]{2})?",
    )
    .expect("TIME_RE is a valid literal pattern")
});

/// How many rejected candidates a scan retries before giving up. Retrying one character after
/// a rejected match stops a bad candidate from hiding a good one inside it; the cap keeps a
/// hostile line from turning that into quadratic work.
pub(crate) const MAX_ATTEMPTS: usize = 256;

/// Calls `accept` on successive matches of `re` in `hay`; after a rejection the search resumes
/// one character after the rejected match's start. Returns every accepted match with its span.
pub(crate) fn scan_captures<T>(
    re: &Regex,
    hay: &str,
    limit: usize,
    mut accept: impl FnMut(&Captures<'_>) -> Option<T>,
) -> Vec<(usize, usize, T)> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut attempts = 0;
    while pos <= hay.len() && attempts < MAX_ATTEMPTS && out.len() < limit {
        attempts += 1;
        let Some(caps) = re.captures_at(hay, pos) else {
            break;
        };
        let Some(m) = caps.get(0) else {
            break;
        };
        if let Some(v) = accept(&caps) {
            out.push((m.start(), m.end(), v));
            pos = if m.end() > m.start() {
                m.end()
            } else {
                next_boundary(hay, m.end())
            };
        } else {
            pos = next_boundary(hay, m.start());
        }
    }
    out
}

/// The byte index of the character after the one at `i` (or `len + 1` at the end, which stops
/// the scan loops).
pub(crate) fn next_boundary(s: &str, i: usize) -> usize {
    match s.get(i..).and_then(|rest| rest.chars().next()) {
        Some(c) => i + c.len_utf8(),
        None => s.len() + 1,
    }
}

/// The character just before byte `i`, if any.
pub(crate) fn char_before(s: &str, i: usize) -> Option<char> {
    s.get(..i).and_then(|h| h.chars().next_back())
}

/// The character starting at byte `i`, if any.
pub(crate) fn char_at(s: &str, i: usize) -> Option<char> {
    s.get(i..).and_then(|t| t.chars().next())
}

fn num_in(caps: &Captures<'_>, name: &str, lo: u32, hi: u32) -> Option<u32> {
    let v: u32 = caps.name(name)?.as_str().parse().ok()?;
    (lo..=hi).contains(&v).then_some(v)
}

/// Builds the normalised time text from one TIME_RE match, or None when a field is out of range.
fn time_from_caps(caps: &Captures<'_>) -> Option<String> {
    if caps.name("y").is_some() {
        let y = num_in(caps, "y", 1990, 2100)?;
        let mo = num_in(caps, "mo", 1, 12)?;
        let d = num_in(caps, "d", 1, 31)?;
        let h = num_in(caps, "h", 0, 23)?;
        let mi = num_in(caps, "mi", 0, 59)?;
        return Some(format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}"));
    }
    if caps.name("y2").is_some() {
        let y = num_in(caps, "y2", 1990, 2100)?;
        let mo = num_in(caps, "mo2", 1, 12)?;
        let d = num_in(caps, "d2", 1, 31)?;
        return Some(format!("{y:04}-{mo:02}-{d:02}"));
    }
    if caps.name("mo3").is_some() {
        let mo = num_in(caps, "mo3", 1, 12)?;
        let d = num_in(caps, "d3", 1, 31)?;
        let h = num_in(caps, "h3", 0, 23)?;
        let mi = num_in(caps, "mi3", 0, 59)?;
        return Some(format!("{mo:02}-{d:02} {h:02}:{mi:02}"));
    }
    let h = num_in(caps, "h4", 0, 23)?;
    let mi = num_in(caps, "mi4", 0, 59)?;
    Some(format!("{h:02}:{mi:02}"))
}

/// The first recognisable date/time in `s` (half-width text) as (start, end, normalised), where
/// normalised is `YYYY-MM-DD hh:mm`, `MM-DD hh:mm`, `YYYY-MM-DD` or `hh:mm`. Matches glued to
/// other digits (inside an order id or a phone) are skipped, and so are spans overlapping `avoid`.
pub(crate) fn find_time(s: &str, avoid: &[(usize, usize)]) -> Option<(usize, usize, String)> {
    scan_captures(&TIME_RE, s, 1, |caps| {
        let m = caps.get(0)?;
        if char_before(s, m.start()).is_some_and(|c| c.is_ascii_digit())
            || char_at(s, m.end()).is_some_and(|c| c.is_ascii_digit())
            || overlaps(avoid, m.start(), m.end())
        {
            return None;
        }
        time_from_caps(caps)
    })
    .into_iter()
    .next()
}

/// Normalises a time written on its own (a CSV or spreadsheet cell): see [`find_time`].
pub(crate) fn normalise_time(s: &str) -> Option<String> {
    let s = to_half_width(s.trim());
    if s.len() > 64 {
        return None;
    }
    find_time(&s, &[]).map(|(_, _, t)| t)
}

/// True when [start, end) intersects any of `spans`.
pub(crate) fn overlaps(spans: &[(usize, usize)], start: usize, end: usize) -> bool {
    spans.iter().any(|&(s, e)| start < e && s < end)
}

/// True for CJK ideographs (the unified block, extension A, extension B and the compatibility
/// block).
pub fn is_han(c: char) -> bool {
    matches!(c as u32, 0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0xF900..=0xFAFF)
}

/// Cuts `s` to at most `max` bytes on a character boundary; the flag says whether it was cut.
pub(crate) fn cap_str(s: &str, max: usize) -> (&str, bool) {
    if s.len() <= max {
        return (s, false);
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    (&s[..end], true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_width_folds_full_width_and_keeps_char_count() {
        let s = "１３８＊＊＊＊５６７８，ＱＱ：１２３　ａ";
        let h = to_half_width(s);
        assert_eq!(h, "138****5678,QQ:123 a");
        assert_eq!(h.chars().count(), s.chars().count());
        assert_eq!(to_half_width("张伟 北京"), "张伟 北京");
    }

    #[test]
    fn phones_normalise() {
        for (input, want) in [
            ("13812345678", "13812345678"),
            ("+86 138-1234-5678", "13812345678"),
            ("１３８１２３４５６７８", "13812345678"),
            ("138 1234 5678", "13812345678"),
            ("8613812345678", "13812345678"),
            ("+8613812345678", "13812345678"),
            ("0086 138 1234 5678", "13812345678"),
            ("(+86) 150 1234 5678", "15012345678"),
            ("＋８６ １５０－１２３４－５６７８", "15012345678"),
            ("  19912345678  ", "19912345678"),
            ("138.1234.5678", "13812345678"),
        ] {
            assert_eq!(normalise_phone(input).as_deref(), Some(want), "{input}");
        }
    }

    #[test]
    fn non_phones_are_refused() {
        // Decision: only mainland mobiles count. Landlines, order ids, 12-digit numbers,
        // numbers with the wrong prefix or letters, and masked numbers are not phones.
        for input in [
            "010-12345678",
            "0755-88889999",
            "01012345678",
            "12812345678",
            "10012345678",
            "138123456789",
            "1381234567",
            "WM123000001",
            "202611230001",
            "+13812345678",
            "138****5678",
            "86138123456",
            "13812345678a",
            "",
            "电话13812345678",
        ] {
            assert_eq!(normalise_phone(input), None, "{input}");
        }
        assert_eq!(normalise_phone(&"1".repeat(10_000)), None);
    }

    #[test]
    fn masked_phones_normalise() {
        for input in [
            "138****5678",
            "138＊＊＊＊5678",
            "138xxxx5678",
            "138XXXX5678",
            "138-****-5678",
            "138 **** 5678",
            "+86 138****5678",
            "１３８＊＊＊＊５６７８",
            "138●●●●5678",
        ] {
            assert_eq!(
                normalise_masked_phone(input).as_deref(),
                Some("138****5678"),
                "{input}"
            );
        }
        for input in [
            "138***5678",
            "138*****5678",
            "13812345678",
            "128****5678",
            "138****567",
            "abc****5678",
            "",
        ] {
            assert_eq!(normalise_masked_phone(input), None, "{input}");
        }
    }

    #[test]
    fn decimals_and_chinese_numbers() {
        assert_eq!(parse_decimal("0.1"), Some(1000));
        assert_eq!(parse_decimal("0.15"), Some(1500));
        assert_eq!(parse_decimal("800"), Some(8_000_000));
        assert_eq!(parse_decimal("1.23456"), Some(12346));
        assert_eq!(parse_decimal("1.x"), None);
        assert_eq!(parse_decimal(""), None);
        assert_eq!(parse_decimal("9999999999999"), None);
        for (s, v) in [
            ("一", 1),
            ("两", 2),
            ("十", 10),
            ("十五", 15),
            ("二十", 20),
            ("八百", 800),
            ("三千", 3000),
            ("三千五", 3500),
            ("一百五", 150),
            ("一万", 10_000),
            ("两万", 20_000),
            ("十万", 100_000),
            ("一万五", 15_000),
            ("一万五千", 15_000),
            ("一千零五", 1005),
            ("万", 10_000),
        ] {
            assert_eq!(parse_cn_int(s), Some(v), "{s}");
        }
        assert_eq!(parse_cn_int("一二"), None);
        assert_eq!(parse_cn_int("万万万万万万万"), None);
        assert_eq!(parse_cn_int(""), None);
        assert_eq!(parse_number("1.5"), Some(15_000));
        assert_eq!(parse_number("五"), Some(50_000));
    }

    #[test]
    fn times_normalise() {
        for (input, want) in [
            ("11-23 06:58", "11-23 06:58"),
            ("2026-11-23 06:58", "2026-11-23 06:58"),
            ("2026-10-11T18:30", "2026-10-11 18:30"),
            ("2026-10-11T18:30:00+08:00", "2026-10-11 18:30"),
            ("2026/10/11 18:30:59", "2026-10-11 18:30"),
            ("2026年10月11日 8:05", "2026-10-11 08:05"),
            ("10月2日 19:20", "10-02 19:20"),
            ("10-11T18:30", "10-11 18:30"),
            ("06:58", "06:58"),
            ("2026-10-11", "2026-10-11"),
        ] {
            assert_eq!(normalise_time(input).as_deref(), Some(want), "{input}");
        }
        for input in ["13-40 25:61", "99:99", "abc", "123:456"] {
            assert_eq!(normalise_time(input), None, "{input}");
        }
    }

    #[test]
    fn cap_str_respects_char_boundaries() {
        let s = "张伟abc";
        assert_eq!(cap_str(s, 4), ("张", true));
        assert_eq!(cap_str(s, 100), (s, false));
        assert_eq!(cap_str(s, 0), ("", true));
    }
}
