//! Normalisation: folds every way a seller or a platform export may write a phone, a masked
//! phone, a name, an address or a time into one canonical form, so that the keyed tokens of
//! [`super::blind`] agree whenever the underlying values do.
//!
//! Invariants: every function here is total (returns `None` / an empty result instead of
//! panicking, whatever the input — a property test checks this); full-width forms are folded to
//! half-width first; the same function is used on the sample side and on the records side, so
//! any imperfection (a polyphonic character read the "wrong" way, an unknown district) is at
//! least the same imperfection on both sides.

use std::borrow::Cow;

use chrono::NaiveDate;
use pinyin::ToPinyin;

/// Offset of China Standard Time from UTC, assumed for times written without a zone.
pub const CHINA_OFFSET_SECS: i64 = 8 * 3600;

/// Longest name (in characters) considered; longer strings are prose, not names.
const MAX_NAME_CHARS: usize = 64;
/// Most address pieces kept per address: real addresses have 10–30; the cap bounds the work
/// on junk and the size of each forward record.
pub const MAX_ADDRESS_PIECES: usize = 64;

// Character classes are shared with extraction, so a phone the extractor accepts is read the
// same way here.
pub use crate::extract::normalise::{half_width_char, is_han};
use crate::extract::normalise::{is_mask_char, is_mobile};

/// [`half_width_char`] over a string; borrows when nothing changes (the common case in
/// platform exports, which keeps the import fast).
pub fn half_width(s: &str) -> Cow<'_, str> {
    // Full-width forms are U+FF01–U+FF5E (UTF-8 lead byte EF) and U+3000 (lead byte E3): a
    // byte scan rules most strings out without decoding them.
    if !s.bytes().any(|b| b == 0xEF || b == 0xE3) {
        return Cow::Borrowed(s);
    }
    if s.chars().any(|c| half_width_char(c) != c) {
        Cow::Owned(s.chars().map(half_width_char).collect())
    } else {
        Cow::Borrowed(s)
    }
}

/// Separators that may appear inside a written phone number.
fn is_phone_separator(c: char) -> bool {
    matches!(c, ' ' | '-' | '\t' | '(' | ')' | '.' | '\u{a0}' | '_' | '/')
}

/// A full phone as 11 ASCII digits, without allocating (the import calls this per record).
pub fn phone_digits(s: &str) -> Option<[u8; 11]> {
    let mut digits = [0u8; 16];
    let mut n = 0;
    for c in s.trim().chars().map(half_width_char) {
        match c {
            '0'..='9' => {
                if n == digits.len() {
                    return None;
                }
                digits[n] = c as u8;
                n += 1;
            }
            '+' if n == 0 => {}
            c if is_phone_separator(c) => {}
            _ => return None,
        }
    }
    let d = &digits[..n];
    let d = match d {
        [b'0', b'0', b'8', b'6', rest @ ..] if rest.len() == 11 => rest,
        [b'8', b'6', rest @ ..] if rest.len() == 11 => rest,
        _ => d,
    };
    let mut out = [0u8; 11];
    if d.len() != 11 || d[0] != b'1' || !(b'3'..=b'9').contains(&d[1]) {
        return None;
    }
    out.copy_from_slice(d);
    Some(out)
}

/// A full phone as 11 digits: strips `+86` / `86` / `0086`, spaces, dashes and brackets and
/// folds full-width digits. `None` when it is not a mainland mobile number.
pub fn normalise_phone(s: &str) -> Option<String> {
    phone_digits(s).map(|d| d.iter().map(|b| char::from(*b)).collect())
}

/// A masked mobile number: the first three and last four digits, the only parts a masked
/// phone like `138****5678` still shows.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MaskedPhone {
    pub first3: String,
    pub last4: String,
}

impl MaskedPhone {
    /// The masked form of a normalised 11-digit phone.
    pub fn of_phone(phone: &str) -> Option<MaskedPhone> {
        if !is_mobile(phone) {
            return None;
        }
        Some(MaskedPhone {
            first3: phone.get(..3)?.to_string(),
            last4: phone.get(7..)?.to_string(),
        })
    }
}

impl std::fmt::Display for MaskedPhone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}****{}", self.first3, self.last4)
    }
}

/// A masked phone such as `138****5678`, `+86 138-xxxx-5678` or `138●●●●5678` (3 to 6 mask
/// characters), or a full phone (which is masked here). `None` otherwise.
pub fn normalise_masked_phone(s: &str) -> Option<MaskedPhone> {
    if let Some(p) = normalise_phone(s) {
        return MaskedPhone::of_phone(&p);
    }
    // Digits and mask characters only, separators dropped, country prefix dropped.
    let mut compact: Vec<char> = Vec::with_capacity(16);
    for c in s.trim().chars().map(half_width_char) {
        if c.is_ascii_digit() || is_mask_char(c) {
            compact.push(c);
        } else if c == '+' && compact.is_empty() || is_phone_separator(c) {
            continue;
        } else {
            return None;
        }
        if compact.len() > 20 {
            return None;
        }
    }
    let mut body: &[char] = &compact;
    for p in [&['0', '0', '8', '6'][..], &['8', '6'][..]] {
        if body.starts_with(p) && body.get(p.len()) == Some(&'1') && body.len() >= p.len() + 10 {
            body = &body[p.len()..];
            break;
        }
    }
    if body.len() < 10 {
        return None;
    }
    let (head, tail) = (&body[..3], &body[body.len() - 4..]);
    let masks = &body[3..body.len() - 4];
    let all_digits = |cs: &[char]| cs.iter().all(char::is_ascii_digit);
    if !all_digits(head)
        || !all_digits(tail)
        || !(3..=6).contains(&masks.len())
        || !masks.iter().all(|c| is_mask_char(*c))
        || head[0] != '1'
        || !('3'..='9').contains(&head[1])
    {
        return None;
    }
    Some(MaskedPhone {
        first3: head.iter().collect(),
        last4: tail.iter().collect(),
    })
}

/// A normalised name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormName {
    /// Half-width, trimmed, inner whitespace collapsed: for display only, never stored.
    pub display: String,
    /// What the exact-name token is computed over: the Han characters when there are any
    /// (`·` and spaces dropped), else the lowercase Latin letters.
    pub key: String,
    /// Toneless lowercase pinyin without spaces (`ü` written `v`), Latin letters kept as they
    /// are: `张伟`, `Zhang Wei` and `zhangwei` all give `zhangwei`.
    pub pinyin: String,
}

/// Normalises a name. `None` when nothing name-like remains.
pub fn normalise_name(s: &str) -> Option<NormName> {
    let folded = half_width(s.trim());
    if folded.chars().count() > MAX_NAME_CHARS {
        return None;
    }
    let display = folded.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut han = String::new();
    let mut latin = String::new();
    let mut py = String::new();
    for c in display.chars() {
        if is_han(c) {
            han.push(c);
            match c.to_pinyin() {
                Some(p) => py.extend(p.plain().chars().map(|c| if c == 'ü' { 'v' } else { c })),
                None => py.push(c),
            }
        } else if c.is_ascii_alphabetic() {
            let l = c.to_ascii_lowercase();
            latin.push(l);
            py.push(l);
        }
    }
    let key = if !han.is_empty() {
        han
    } else if latin.len() >= 2 {
        latin
    } else {
        return None;
    };
    Some(NormName {
        display,
        key,
        pinyin: py,
    })
}

/// Province-level divisions: one table, shared with extraction so the two cannot drift.
use crate::extract::geo::PROVINCES;

/// The four municipalities: province and city at once.
const MUNICIPALITIES: &[&str] = &["北京", "天津", "上海", "重庆"];

/// Major cities: (full name, short name, province short name).
const CITIES: &[(&str, &str, &str)] = &[
    ("北京市", "北京", "北京"),
    ("天津市", "天津", "天津"),
    ("上海市", "上海", "上海"),
    ("重庆市", "重庆", "重庆"),
    ("广州市", "广州", "广东"),
    ("深圳市", "深圳", "广东"),
    ("东莞市", "东莞", "广东"),
    ("佛山市", "佛山", "广东"),
    ("珠海市", "珠海", "广东"),
    ("杭州市", "杭州", "浙江"),
    ("宁波市", "宁波", "浙江"),
    ("温州市", "温州", "浙江"),
    ("南京市", "南京", "江苏"),
    ("苏州市", "苏州", "江苏"),
    ("无锡市", "无锡", "江苏"),
    ("成都市", "成都", "四川"),
    ("武汉市", "武汉", "湖北"),
    ("长沙市", "长沙", "湖南"),
    ("西安市", "西安", "陕西"),
    ("郑州市", "郑州", "河南"),
    ("济南市", "济南", "山东"),
    ("青岛市", "青岛", "山东"),
    ("合肥市", "合肥", "安徽"),
    ("福州市", "福州", "福建"),
    ("厦门市", "厦门", "福建"),
    ("南昌市", "南昌", "江西"),
    ("沈阳市", "沈阳", "辽宁"),
    ("大连市", "大连", "辽宁"),
    ("长春市", "长春", "吉林"),
    ("哈尔滨市", "哈尔滨", "黑龙江"),
    ("石家庄市", "石家庄", "河北"),
    ("太原市", "太原", "山西"),
    ("昆明市", "昆明", "云南"),
    ("贵阳市", "贵阳", "贵州"),
    ("南宁市", "南宁", "广西"),
    ("海口市", "海口", "海南"),
    ("兰州市", "兰州", "甘肃"),
    ("西宁市", "西宁", "青海"),
    ("银川市", "银川", "宁夏"),
    ("乌鲁木齐市", "乌鲁木齐", "新疆"),
    ("呼和浩特市", "呼和浩特", "内蒙古"),
    ("拉萨市", "拉萨", "西藏"),
];

/// Districts of the cities leakwatch sees most: (city short name, district full names).
pub(crate) const DISTRICTS: &[(&str, &[&str])] = &[
    (
        "北京",
        &[
            "东城区",
            "西城区",
            "朝阳区",
            "海淀区",
            "丰台区",
            "石景山区",
            "通州区",
            "昌平区",
            "大兴区",
            "顺义区",
            "房山区",
            "门头沟区",
        ],
    ),
    (
        "上海",
        &[
            "黄浦区",
            "徐汇区",
            "长宁区",
            "静安区",
            "普陀区",
            "虹口区",
            "杨浦区",
            "浦东新区",
            "闵行区",
            "宝山区",
            "嘉定区",
            "松江区",
        ],
    ),
    (
        "广州",
        &[
            "越秀区",
            "海珠区",
            "荔湾区",
            "天河区",
            "白云区",
            "黄埔区",
            "番禺区",
            "花都区",
        ],
    ),
    (
        "深圳",
        &[
            "福田区",
            "罗湖区",
            "南山区",
            "宝安区",
            "龙岗区",
            "龙华区",
            "盐田区",
            "光明区",
        ],
    ),
    (
        "杭州",
        &[
            "上城区",
            "拱墅区",
            "西湖区",
            "滨江区",
            "萧山区",
            "余杭区",
            "临平区",
        ],
    ),
    (
        "成都",
        &[
            "锦江区",
            "青羊区",
            "金牛区",
            "武侯区",
            "成华区",
            "双流区",
            "郫都区",
        ],
    ),
    (
        "武汉",
        &[
            "江岸区",
            "江汉区",
            "硚口区",
            "汉阳区",
            "武昌区",
            "洪山区",
            "青山区",
        ],
    ),
];

/// Characters that, right after a short place name, show it is part of a street or landmark
/// name ("北京路" in Guangzhou, "朝阳门") rather than the place itself.
fn is_street_marker(c: char) -> bool {
    matches!(
        c,
        '路' | '街' | '道' | '巷' | '桥' | '里' | '门' | '大' | '湖'
    )
}

/// Strips `full` or (when not followed by a street marker) `short` from the start of `s`.
/// `short` must be a prefix of `full`.
fn strip_place<'a>(s: &'a str, full: &str, short: &str) -> Option<&'a str> {
    // Cheap first-character test before any comparison: almost every table entry fails here
    // (a first-byte test would not do: most Han characters share a handful of lead bytes).
    if s.chars().next() != short.chars().next() {
        return None;
    }
    if let Some(r) = s.strip_prefix(full) {
        return Some(r);
    }
    let r = s.strip_prefix(short)?;
    match r.chars().next() {
        Some(c) if is_street_marker(c) => None,
        _ => Some(r),
    }
}

/// A district's key: its name without the trailing 区/县 (both sides write "海淀" and
/// "海淀区").
fn district_key(full: &str) -> &str {
    let trimmed = full.trim_end_matches(['区', '县']);
    if trimmed.chars().count() >= 2 {
        trimmed
    } else {
        full
    }
}

/// The canonical short name of a city: half-width, trimmed, without 市.
pub fn canonical_city(s: &str) -> String {
    let f = half_width(s.trim());
    let t = f.trim_end_matches('市').trim();
    t.to_string()
}

/// A parsed address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormAddress {
    /// Province short name, when written.
    pub province: Option<String>,
    /// City short name, when written (or implied by a municipality or a known district).
    pub city: Option<String>,
    /// District key (see [`district_key`]): "海淀" for "海淀区".
    pub district: Option<String>,
    /// What follows the district: street, building, room; half-width, no spaces.
    pub rest: String,
    /// Fuzzy-comparison pieces of `rest` (see [`piece_text`] for the packing), in order of
    /// appearance, distinct, at most [`MAX_ADDRESS_PIECES`].
    pub pieces: Vec<u64>,
}

/// Tag bits of a packed address piece.
const PIECE_TEXT: u64 = 1 << 62;
const PIECE_NUMBER: u64 = 2 << 62;
const PIECE_TAG_MASK: u64 = 3 << 62;

/// True for a number piece (room, bed, seat, building number).
pub fn piece_is_number(piece: u64) -> bool {
    piece & PIECE_TAG_MASK == PIECE_NUMBER
}

/// The text a packed piece stands for. Pieces are packed into a u64 (two 21-bit characters for
/// a character bigram or unigram, or the value of a number) so the import can cache their
/// tokens without allocating; this is what the token is computed over.
pub fn piece_text(piece: u64) -> String {
    if piece_is_number(piece) {
        format!("#{}", piece & !PIECE_TAG_MASK)
    } else {
        let c1 = char::from_u32(((piece >> 21) & 0x1F_FFFF) as u32);
        let c2 = char::from_u32((piece & 0x1F_FFFF) as u32);
        let mut s = String::new();
        s.extend(c1);
        if let Some(c) = c2.filter(|c| *c != '\0') {
            s.push(c);
        }
        s
    }
}

/// Splits the rest of an address into pieces: character bigrams of each text run (a run of
/// one character gives that character) and the value of each digit run. Numbers are kept apart
/// because two hospital beds or hotel rooms differ only in them.
fn address_pieces(rest: &str) -> Vec<u64> {
    let mut pieces: Vec<u64> = Vec::with_capacity(24);
    let mut run: Vec<char> = Vec::with_capacity(16);
    let mut number: Option<u64> = None;
    fn push(pieces: &mut Vec<u64>, p: u64) {
        if pieces.len() < MAX_ADDRESS_PIECES && !pieces.contains(&p) {
            pieces.push(p);
        }
    }
    fn flush_run(pieces: &mut Vec<u64>, run: &mut Vec<char>) {
        match run.len() {
            0 => {}
            1 => push(pieces, PIECE_TEXT | (u64::from(run[0]) << 21)),
            _ => {
                for w in run.windows(2) {
                    push(
                        pieces,
                        PIECE_TEXT | (u64::from(w[0]) << 21) | u64::from(w[1]),
                    );
                }
            }
        }
        run.clear();
    }
    // Numbers longer than 18 digits keep their last 18 (they still fit the 62 value bits).
    const NUMBER_LIMIT: u64 = 1_000_000_000_000_000_000;
    for c in rest.chars() {
        if let Some(d) = c.to_digit(10).filter(|_| c.is_ascii_digit()) {
            flush_run(&mut pieces, &mut run);
            let v = number.unwrap_or(0);
            number = Some((v % (NUMBER_LIMIT / 10)) * 10 + u64::from(d));
        } else {
            if let Some(v) = number.take() {
                push(&mut pieces, PIECE_NUMBER | v);
            }
            if is_han(c) {
                run.push(c);
            } else if c.is_ascii_alphabetic() {
                run.push(c.to_ascii_lowercase());
            } else if c.is_alphabetic() {
                run.push(c.to_lowercase().next().unwrap_or(c));
            } else {
                flush_run(&mut pieces, &mut run);
            }
        }
    }
    if let Some(v) = number.take() {
        push(&mut pieces, PIECE_NUMBER | v);
    }
    flush_run(&mut pieces, &mut run);
    pieces
}

/// A district written without a table entry: 1–4 Han characters ending in 区 or 县.
fn generic_district(s: &str) -> Option<(String, &str)> {
    for (i, (pos, c)) in s.char_indices().enumerate() {
        if i > 5 {
            return None;
        }
        if (c == '区' || c == '县') && i >= 1 {
            let name = &s[..pos + c.len_utf8()];
            return Some((district_key(name).to_string(), &s[pos + c.len_utf8()..]));
        }
        if !is_han(c) {
            return None;
        }
    }
    None
}

/// Parses an address: province, city and district from the built-in tables (with a generic
/// fallback for districts), then pieces of the remainder. `None` when nothing remains.
pub fn normalise_address(s: &str) -> Option<NormAddress> {
    let folded = half_width(s);
    let compact: Cow<'_, str> = if folded.chars().any(char::is_whitespace) {
        Cow::Owned(folded.chars().filter(|c| !c.is_whitespace()).collect())
    } else {
        Cow::Borrowed(&folded)
    };
    if compact.is_empty() {
        return None;
    }
    let mut rest: &str = &compact;
    let mut province: Option<&'static str> = None;
    let mut city: Option<String> = None;
    for (full, short) in PROVINCES {
        if let Some(r) = strip_place(rest, full, short) {
            province = Some(short);
            rest = r;
            break;
        }
    }
    if let Some(p) = province
        && MUNICIPALITIES.contains(&p)
    {
        city = Some(p.to_string());
        // "北京市北京市朝阳区" and "上海市市辖区" occur in exports.
        if let Some((full, _)) = PROVINCES.iter().find(|(_, short)| *short == p)
            && let Some(r) = strip_place(rest, full, p)
        {
            rest = r;
        }
        rest = rest.strip_prefix("市辖区").unwrap_or(rest);
    } else {
        for (full, c, p) in CITIES {
            if province.is_some_and(|pv| pv != *p) {
                continue;
            }
            if let Some(r) = strip_place(rest, full, c) {
                city = Some((*c).to_string());
                rest = r;
                break;
            }
        }
        if city.is_none() && province.is_some() {
            // A city outside the table: up to 4 Han characters and 市.
            if let Some((pos, _)) = rest.char_indices().take(5).find(|(_, c)| *c == '市')
                && pos > 0
                && rest[..pos].chars().all(is_han)
            {
                city = Some(rest[..pos].to_string());
                rest = &rest[pos + '市'.len_utf8()..];
            }
        }
    }
    let mut district: Option<String> = None;
    let table_for = |c: &str| DISTRICTS.iter().find(|(tc, _)| *tc == c).map(|(_, d)| *d);
    match city.as_deref().and_then(table_for) {
        Some(districts) => {
            let first = rest.chars().next();
            for d in districts.iter().filter(|d| d.chars().next() == first) {
                let key = district_key(d);
                if let Some(r) = strip_place(rest, d, key) {
                    district = Some(key.to_string());
                    rest = r;
                    break;
                }
            }
        }
        None if city.is_none() && province.is_none() => {
            // No city written: a district that only one known city has implies the city.
            let mut found: Vec<(&str, &str, &str)> = Vec::new();
            for (c, districts) in DISTRICTS {
                for d in districts.iter() {
                    let key = district_key(d);
                    if strip_place(rest, d, key).is_some() {
                        found.push((c, d, key));
                    }
                }
            }
            if let [(c, d, key)] = found.as_slice() {
                rest = strip_place(rest, d, key).unwrap_or(rest);
                city = Some((*c).to_string());
                district = Some((*key).to_string());
            }
        }
        None => {}
    }
    if district.is_none()
        && (city.is_some() || province.is_some())
        && let Some((d, r)) = generic_district(rest)
    {
        district = Some(d);
        rest = r;
    }
    let pieces = address_pieces(rest);
    if pieces.is_empty() && district.is_none() && city.is_none() {
        return None;
    }
    Some(NormAddress {
        province: province.map(str::to_string),
        city,
        district,
        rest: rest.to_string(),
        pieces,
    })
}

/// Date and time fields read from text.
struct DateTimeParts {
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    /// Offset east of UTC, seconds; `None` when the text had no zone.
    offset: Option<i64>,
}

fn to_unix(p: &DateTimeParts) -> Option<i64> {
    let dt =
        NaiveDate::from_ymd_opt(p.year, p.month, p.day)?.and_hms_opt(p.hour, p.minute, p.second)?;
    Some(dt.and_utc().timestamp() - p.offset.unwrap_or(CHINA_OFFSET_SECS))
}

/// A tiny cursor over ASCII bytes for the date parsers.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn number(&mut self, min: usize, max: usize) -> Option<u32> {
        let start = self.i;
        while self.i < self.b.len() && self.b[self.i].is_ascii_digit() && self.i - start < max {
            self.i += 1;
        }
        if self.i - start < min {
            return None;
        }
        let mut v: u32 = 0;
        for &c in &self.b[start..self.i] {
            v = v * 10 + u32::from(c - b'0');
        }
        Some(v)
    }
    fn one_of(&mut self, set: &[u8]) -> Option<u8> {
        let c = *self.b.get(self.i)?;
        if set.contains(&c) {
            self.i += 1;
            Some(c)
        } else {
            None
        }
    }
    fn done(&self) -> bool {
        self.i >= self.b.len()
    }
}

/// An order record's time: RFC 3339 (`2024-11-23T06:58:00+08:00`, `...Z`), or
/// `YYYY-MM-DD hh:mm[:ss[.fff]]` (also with `/` or `T`), taken as +08:00 when no zone is given.
/// Unix seconds.
pub fn parse_record_time(s: &str) -> Option<i64> {
    let t = half_width(s.trim());
    let mut c = Cursor {
        b: t.as_bytes(),
        i: 0,
    };
    let year = c.number(4, 4)? as i32;
    let sep = c.one_of(b"-/")?;
    let month = c.number(1, 2)?;
    c.one_of(&[sep])?;
    let day = c.number(1, 2)?;
    c.one_of(b" T")?;
    while c.one_of(b" ").is_some() {}
    let hour = c.number(1, 2)?;
    c.one_of(b":")?;
    let minute = c.number(2, 2)?;
    let mut second = 0;
    if c.one_of(b":").is_some() {
        second = c.number(2, 2)?;
        if c.one_of(b".,").is_some() {
            c.number(1, 9)?;
        }
    }
    while c.one_of(b" ").is_some() {}
    let offset = if c.done() {
        None
    } else if c.one_of(b"Zz").is_some() {
        Some(0)
    } else {
        let sign = if c.one_of(b"+-")? == b'-' { -1 } else { 1 };
        let oh = i64::from(c.number(2, 2)?);
        c.one_of(b":");
        let om = i64::from(c.number(2, 2)?);
        if oh > 23 || om > 59 {
            return None;
        }
        Some(sign * (oh * 3600 + om * 60))
    };
    if !c.done() {
        return None;
    }
    to_unix(&DateTimeParts {
        year,
        month,
        day,
        hour,
        minute,
        second,
        offset,
    })
}

/// A sample row's order time, which sellers usually write without a year: `11-23 06:58`,
/// `2024-11-23 06:58`, `11/23 06:58`, `11月23日 06:58`, optionally with seconds, or a date
/// alone (taken as noon). Without a year, the date is tried in `reference_year` and the year
/// before (a sample seen in January often shows December orders). Returns every valid
/// reading, as unix seconds (+08:00); empty when the text is not a time.
pub fn parse_sample_time(s: &str, reference_year: i32) -> Vec<i64> {
    let t = half_width(s.trim());
    let mut groups: Vec<(u32, usize)> = Vec::with_capacity(6);
    let mut cur: Option<(u32, usize)> = None;
    for c in t.chars() {
        if let Some(d) = c.to_digit(10).filter(|_| c.is_ascii_digit()) {
            let (v, n) = cur.unwrap_or((0, 0));
            if n >= 4 {
                return Vec::new();
            }
            cur = Some((v * 10 + d, n + 1));
        } else {
            if let Some(g) = cur.take() {
                groups.push(g);
            }
            if !matches!(
                c,
                '-' | '/' | '.' | ':' | ' ' | 'T' | '月' | '日' | '号' | '年' | '时' | '分' | '秒'
            ) {
                return Vec::new();
            }
        }
        if groups.len() > 6 {
            return Vec::new();
        }
    }
    groups.extend(cur);
    let (years, rest): (Vec<i32>, &[(u32, usize)]) = match groups.first() {
        Some((y, 4)) => (vec![*y as i32], &groups[1..]),
        Some(_) => (
            vec![reference_year, reference_year.saturating_sub(1)],
            &groups[..],
        ),
        None => return Vec::new(),
    };
    if rest.iter().any(|(_, n)| *n > 2) {
        return Vec::new();
    }
    let v: Vec<u32> = rest.iter().map(|(v, _)| *v).collect();
    let (month, day, hour, minute, second) = match v.as_slice() {
        [mo, d] => (*mo, *d, 12, 0, 0),
        [mo, d, h, mi] => (*mo, *d, *h, *mi, 0),
        [mo, d, h, mi, s] => (*mo, *d, *h, *mi, *s),
        _ => return Vec::new(),
    };
    years
        .into_iter()
        .filter_map(|year| {
            to_unix(&DateTimeParts {
                year,
                month,
                day,
                hour,
                minute,
                second,
                offset: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones() {
        for s in [
            "13812345678",
            "+86 138 1234 5678",
            "86-138-1234-5678",
            "００８６１３８１２３４５６７８",
            "１３８１２３４５６７８",
            " (138) 1234-5678 ",
        ] {
            assert_eq!(normalise_phone(s).as_deref(), Some("13812345678"), "{s}");
        }
        for s in [
            "12812345678",
            "1381234567",
            "138123456789",
            "abc",
            "",
            "+",
            "010-12345678",
        ] {
            assert_eq!(normalise_phone(s), None, "{s}");
        }
    }

    #[test]
    fn masked_phones() {
        let m = MaskedPhone {
            first3: "138".into(),
            last4: "5678".into(),
        };
        for s in [
            "138****5678",
            "+86 138-xxxx-5678",
            "138●●●●5678",
            "１３８＊＊＊＊５６７８",
            "13812345678",
            "86138****5678",
        ] {
            assert_eq!(normalise_masked_phone(s), Some(m.clone()), "{s}");
        }
        for s in [
            "138**5678",
            "138****567",
            "abc****5678",
            "238****5678",
            "****",
        ] {
            assert_eq!(normalise_masked_phone(s), None, "{s}");
        }
        assert_eq!(m.to_string(), "138****5678");
    }

    #[test]
    fn names_and_pinyin() {
        let a = normalise_name(" 张伟 ").expect("han name");
        assert_eq!(a.key, "张伟");
        assert_eq!(a.pinyin, "zhangwei");
        for s in ["Zhang Wei", "zhangwei", "ZHANG  WEI", "Ｚｈａｎｇ Ｗｅｉ"] {
            let b = normalise_name(s).expect("latin name");
            assert_eq!(b.pinyin, "zhangwei", "{s}");
        }
        assert_eq!(
            normalise_name("吕布").map(|n| n.pinyin).as_deref(),
            Some("lvbu")
        );
        assert_eq!(normalise_name("  "), None);
        assert_eq!(normalise_name("1"), None);
        // A homophone typo keeps the pinyin.
        assert_eq!(
            normalise_name("张玮").map(|n| n.pinyin),
            normalise_name("张伟").map(|n| n.pinyin)
        );
    }

    #[test]
    fn addresses() {
        let a = normalise_address("北京市海淀区中关村大街27号院3号楼2单元1203室").expect("addr");
        assert_eq!(a.province.as_deref(), Some("北京"));
        assert_eq!(a.city.as_deref(), Some("北京"));
        assert_eq!(a.district.as_deref(), Some("海淀"));
        assert_eq!(a.rest, "中关村大街27号院3号楼2单元1203室");
        let texts: Vec<String> = a.pieces.iter().map(|p| piece_text(*p)).collect();
        assert!(texts.contains(&"中关".to_string()));
        assert!(texts.contains(&"#1203".to_string()));
        assert!(texts.contains(&"室".to_string()));

        let b = normalise_address("广东省深圳市南山区科技园B座12层").expect("addr");
        assert_eq!(b.city.as_deref(), Some("深圳"));
        assert_eq!(b.district.as_deref(), Some("南山"));
        let c = normalise_address("深圳南山区科技园Ｂ座１２层").expect("addr");
        assert_eq!(c.city.as_deref(), Some("深圳"));
        assert_eq!(c.pieces, b.pieces);
        let d = normalise_address("海淀区中关村大街27号").expect("addr");
        assert_eq!(d.city.as_deref(), Some("北京"));
        // A street named after another city is not that city.
        let e = normalise_address("广州市越秀区北京路步行街10号").expect("addr");
        assert_eq!(e.city.as_deref(), Some("广州"));
        assert!(e.rest.starts_with("北京路"));
        let f = normalise_address("浙江省温州市鹿城区五马街1号").expect("addr");
        assert_eq!(f.district.as_deref(), Some("鹿城"));
        assert_eq!(normalise_address("   "), None);
    }

    #[test]
    fn times() {
        let t = parse_record_time("2024-11-23 06:58:00").expect("time");
        assert_eq!(parse_record_time("2024-11-23T06:58:00+08:00"), Some(t));
        assert_eq!(parse_record_time("2024-11-22T22:58:00Z"), Some(t));
        assert_eq!(parse_record_time("2024/11/23 06:58"), Some(t));
        assert_eq!(parse_record_time("2024-11-23 06:58:00.123"), Some(t));
        for bad in [
            "2024-13-01 00:00:00",
            "yesterday",
            "",
            "2024-11-23",
            "2024-02-30 10:00",
        ] {
            assert_eq!(parse_record_time(bad), None, "{bad}");
        }
        let s = parse_sample_time("11-23 06:58", 2024);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0], t);
        assert_eq!(parse_sample_time("2024-11-23 06:58", 2020), vec![t]);
        assert_eq!(parse_sample_time("11月23日 06:58", 2024)[0], t);
        assert_eq!(parse_sample_time("02-29 10:00", 2024).len(), 1);
        assert!(parse_sample_time("hello", 2024).is_empty());
    }
}
