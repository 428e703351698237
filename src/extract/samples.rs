//! Sample rows: one leaked customer record per line, as sellers paste them to prove their data
//! is real ("张伟 13812345678 北京市海淀区... 11-23 06:58"). A line becomes a [`SampleRow`] when
//! it has a full or masked mobile number plus a name or an address.
//!
//! The line is folded to half-width once; phones, masked phones, times and amounts are found
//! by pattern and cut out; what remains is split on separators and each piece is classified
//! as a name (common-surname table), an address (place markers) or noise. Positions are mapped
//! back to the original line so names and addresses are returned exactly as written.

use regex::Regex;
use std::collections::HashSet;
use std::sync::LazyLock;

use super::SampleRow;
use super::geo;
use super::normalise::{
    ONE, char_at, char_before, find_time, half_width_char, is_han, is_mask_char,
    normalise_masked_phone, normalise_phone, overlaps, parse_decimal, scan_captures,
};

/// Longest line considered as a row. Real rows are well under 200 bytes; longer lines are
/// prose or junk, and skipping them bounds the per-line work.
pub(crate) const MAX_ROW_BYTES: usize = 2048;

/// A full mobile with an optional +86 / 86 prefix and single separators between digits.
static PHONE_RE: LazyLock<Regex> = LazyLock::new(|| {
    // A literal pattern: compiling it cannot fail at run time once the tests pass.
    Regex::new(r"(?:\+?\s*86[\s-]*)?1[3-9][0-9](?:[\x20\t-]?[0-9]){8}")
        .expect("PHONE_RE is a valid literal pattern")
});

/// A masked mobile: three digits, four mask characters, four digits (after half-width folding).
static MASKED_RE: LazyLock<Regex> = LazyLock::new(|| {
    // A literal pattern: compiling it cannot fail at run time once the tests pass.
    Regex::new(r"(?:\+?\s*86[\s-]*)?1[3-9][0-9][\x20\t-]?[*xX×●•#﹡✱★]{4}[\x20\t-]?[0-9]{4}")
        .expect("MASKED_RE is a valid literal pattern")
});

/// An order amount: `¥35.5`, `￥35`, `35.5元`, `35块`.
static AMOUNT_RE: LazyLock<Regex> = LazyLock::new(|| {
    // A literal pattern: compiling it cannot fail at run time once the tests pass.
    Regex::new(r"[¥￥$]\s*(?P<a>[0-9]{1,9}(?:\.[0-9]{1,2})?)|(?P<b>[0-9]{1,9}(?:\.[0-9]{1,2})?)\s*(?:元|块)")
        .expect("AMOUNT_RE is a valid literal pattern")
});

/// Field labels at the start of a piece ("姓名:张三", "电话：138...", "address=...").
static LABEL_RE: LazyLock<Regex> = LazyLock::new(|| {
    // A literal pattern: compiling it cannot fail at run time once the tests pass.
    Regex::new(
        r"(?i)^(?P<l>客户姓名|收货人|收件人|联系人|姓名|名字|客户|name|手机号码|手机号|联系电话|联系方式|电话|手机|号码|phone|mobile|tel|收货地址|详细地址|配送地址|送餐地址|地址|住址|address|addr|下单时间|订单时间|时间|日期|time|date|订单金额|实付|金额|amount)\s*(?P<sep>[:=]?)\s*",
    )
    .expect("LABEL_RE is a valid literal pattern")
});

/// The 300 or so commonest Chinese surnames (single characters).
const SURNAMES: &str = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付傅方白邹孟熊秦邱江尹薛闫阎段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝官封谈匡鞠惠荆乐冀郁胥南班储原栗燕楚鄢劳谌奚皮粟冼蔺楼盘满闻位厉伊仝区郜海阚花权强帅屠豆朴盖练廉禹井祖漆巴丰支卿国狄平计索宣晋相初门云容敬来扈晁芮都普阙浦戈伏鹿薄邸雍辜羊阿乌母裘亓修邰赫杭况那宿鲜印逯隆茹诸战慕危玉银亢嵇公哈湛宾戎勾茅利於呼居揭干但尉冶斯元束檀衣信展阴昝智幸奉植衡富尧闭由";

/// Double surnames, checked before single ones (欧阳 before 欧).
const DOUBLE_SURNAMES: &[&str] = &[
    "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文", "司徒",
    "夏侯", "轩辕", "令狐", "端木", "独孤", "南宫", "西门", "呼延", "澹台", "东郭", "百里", "万俟",
];

static SURNAME_SET: LazyLock<HashSet<char>> = LazyLock::new(|| SURNAMES.chars().collect());

/// Words that start with a surname character but are not names (row headers, offer words).
const NOT_NAMES: &[&str] = &[
    "样本", "数据", "姓名", "电话", "地址", "时间", "金额", "备注", "客户", "用户", "骑手", "商家",
    "手机", "号码", "高价", "高端", "金牌", "明天", "明日", "包月", "包邮", "全国", "安全", "方便",
    "关注", "常用", "程序", "成功", "马上", "白天", "黄金", "万条", "万单", "单价", "单号", "单子",
    "和平", "海量", "全部", "平台", "平时", "江湖", "国内", "都是", "都有", "来电", "信息", "时时",
    "实时", "文件", "原价", "原始", "强烈", "欧美", "宁可", "宣传", "计划", "利润",
];

/// A name piece may not end in an administrative or building marker (王府井街 is a street).
const NAME_BAD_LAST: &str = "省市区县镇乡村路街巷弄号栋幢楼层室房床";

/// Single characters that mark an address piece.
const ADDRESS_CHARS: &str =
    "省市区县镇乡村路街道巷弄号栋幢楼层室房床座苑园院厦馆店场站城寓舍庄坊湾港";

/// Multi-character address markers whose characters are not markers on their own.
const ADDRESS_WORDS: &[&str] = &[
    "网吧", "网咖", "单元", "前台", "门口", "机位", "宿舍", "公司",
];

/// Piece separators inside a row (after half-width folding).
fn is_separator(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t' | ',' | '|' | '/' | ';' | '、' | '【' | '】' | '[' | ']' | '\u{a0}'
    ) || c.is_whitespace()
}

/// Which field a label names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Name,
    Phone,
    Address,
    Time,
    Amount,
}

fn label_field(label: &str) -> Field {
    match label.to_ascii_lowercase().as_str() {
        "客户姓名" | "收货人" | "收件人" | "联系人" | "姓名" | "名字" | "客户" | "name" => {
            Field::Name
        }
        "手机号码" | "手机号" | "联系电话" | "联系方式" | "电话" | "手机" | "号码" | "phone"
        | "mobile" | "tel" => Field::Phone,
        "下单时间" | "订单时间" | "时间" | "日期" | "time" | "date" => Field::Time,
        "订单金额" | "实付" | "金额" | "amount" => Field::Amount,
        _ => Field::Address,
    }
}

/// The half-width form of `raw` and, for every byte offset of it, the byte offset in `raw`.
/// Folding maps characters one to one, so any span of the folded text maps back exactly.
fn fold_with_map(raw: &str) -> (String, Vec<usize>) {
    let mut norm = String::with_capacity(raw.len());
    let mut map = Vec::with_capacity(raw.len() + 1);
    for (i, c) in raw.char_indices() {
        let h = half_width_char(c);
        for _ in 0..h.len_utf8() {
            map.push(i);
        }
        norm.push(h);
    }
    map.push(raw.len());
    (norm, map)
}

fn glued_left(s: &str, i: usize) -> bool {
    char_before(s, i).is_some_and(|c| c.is_ascii_alphanumeric())
}

fn glued_right_digit(s: &str, i: usize) -> bool {
    char_at(s, i).is_some_and(|c| c.is_ascii_digit() || is_mask_char(c))
}

/// The first full mobile in `s` (half-width) that is not glued to letters or more digits.
pub(crate) fn find_phone(s: &str) -> Option<(usize, usize, String)> {
    scan_captures(&PHONE_RE, s, 1, |caps| {
        let m = caps.get(0)?;
        if glued_left(s, m.start()) || glued_right_digit(s, m.end()) {
            return None;
        }
        normalise_phone(m.as_str())
    })
    .into_iter()
    .next()
}

/// The first masked mobile in `s` (half-width) that is not glued to letters or digits.
pub(crate) fn find_masked(s: &str) -> Option<(usize, usize, String)> {
    scan_captures(&MASKED_RE, s, 1, |caps| {
        let m = caps.get(0)?;
        if glued_left(s, m.start()) || char_at(s, m.end()).is_some_and(|c| c.is_ascii_digit()) {
            return None;
        }
        normalise_masked_phone(m.as_str())
    })
    .into_iter()
    .next()
}

/// Yuan text (`35.5`) to fen, rounding half up.
pub(crate) fn yuan_to_fen(s: &str) -> Option<u64> {
    let v = parse_decimal(s)?;
    u64::try_from((v * 100 + ONE / 2) / ONE).ok()
}

/// The first order amount in `s` outside `avoid`, in fen.
fn find_amount(s: &str, avoid: &[(usize, usize)]) -> Option<(usize, usize, u64)> {
    scan_captures(&AMOUNT_RE, s, 1, |caps| {
        let m = caps.get(0)?;
        if overlaps(avoid, m.start(), m.end()) {
            return None;
        }
        if let Some(a) = caps.name("a") {
            if char_at(s, a.end()).is_some_and(|c| c.is_ascii_digit()) {
                return None;
            }
            return yuan_to_fen(a.as_str());
        }
        let b = caps.name("b")?;
        if char_before(s, b.start()).is_some_and(|c| c.is_ascii_digit() || c == '.') {
            return None;
        }
        yuan_to_fen(b.as_str())
    })
    .into_iter()
    .next()
}

/// An amount written in a labelled piece or a cell: `35.5`, `¥35.5`, `35.5元`.
pub(crate) fn parse_amount_text(s: &str) -> Option<u64> {
    let t: String = s.trim().chars().map(half_width_char).collect();
    if t.len() > 32 {
        return None;
    }
    let t = t.trim_start_matches(['¥', '￥', '$']).trim();
    let t = t.trim_end_matches(['元', '块']).trim();
    yuan_to_fen(t)
}

/// True when `t` looks like a person's name: 2–4 Han characters starting with a common surname
/// (or a double surname), optionally masked (`张*`, `李**`, `王某某`).
pub(crate) fn looks_like_name(t: &str) -> bool {
    let chars: Vec<char> = t.chars().collect();
    if !(2..=4).contains(&chars.len()) {
        return false;
    }
    let surname_len = if chars.len() >= 3 && DOUBLE_SURNAMES.iter().any(|d| t.starts_with(d)) {
        2
    } else if SURNAME_SET.contains(&chars[0]) {
        1
    } else {
        return false;
    };
    let given = &chars[surname_len..];
    let masked = given
        .iter()
        .any(|&c| c == '*' || c == '某' || c == 'x' || c == 'X');
    let all_ok = given
        .iter()
        .all(|&c| is_han(c) || (masked && (c == '*' || c == '某' || c == 'x' || c == 'X')));
    if !all_ok {
        return false;
    }
    let last = chars[chars.len() - 1];
    !NAME_BAD_LAST.contains(last)
        && !NOT_NAMES.contains(&t)
        && !geo::is_place_name(t)
        && !ADDRESS_WORDS.iter().any(|w| t.contains(w))
}

/// True when `t` looks like (part of) an address: at least three characters, two of them Han,
/// and a place marker, or a leading province / city name followed by a number somewhere
/// ("深圳南山科技园" has 园; "北京本地单" in an offer is not an address).
pub(crate) fn looks_like_address(t: &str) -> bool {
    let n = t.chars().count();
    if !(3..=300).contains(&n) {
        return false;
    }
    if t.chars().filter(|&c| is_han(c)).count() < 2 {
        return false;
    }
    t.chars().any(|c| ADDRESS_CHARS.contains(c))
        || ADDRESS_WORDS.iter().any(|w| t.contains(w))
        || (geo::starts_with_place(t) && t.chars().any(|c| c.is_ascii_digit()))
}

/// A name written in a labelled piece or a name column: kept as written when short and free of
/// digits (a name column holding a phone is a shifted column, not a name).
pub(crate) fn plausible_name_cell(t: &str) -> bool {
    let n = t.chars().count();
    (1..=20).contains(&n)
        && !t.chars().any(|c| c.is_ascii_digit())
        && t.chars().any(char::is_alphabetic)
}

#[derive(Debug, Clone, Copy)]
struct Piece {
    start: usize,
    end: usize,
    /// Pieces in different segments are separated by a phone, time or amount: an address
    /// never spans one of those.
    segment: usize,
}

/// Splits `norm` into pieces, skipping `spans` (sorted, non-overlapping) and separators.
fn pieces(norm: &str, spans: &[(usize, usize)]) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut segment = 0;
    let mut cur: Option<usize> = None;
    let mut k = 0;
    let mut in_span = false;
    for (i, c) in norm.char_indices() {
        while k < spans.len() && spans[k].1 <= i {
            k += 1;
        }
        let inside = k < spans.len() && spans[k].0 <= i;
        if inside {
            if let Some(s) = cur.take() {
                out.push(Piece {
                    start: s,
                    end: i,
                    segment,
                });
            }
            if !in_span {
                segment += 1;
                in_span = true;
            }
            continue;
        }
        in_span = false;
        if is_separator(c) {
            if let Some(s) = cur.take() {
                out.push(Piece {
                    start: s,
                    end: i,
                    segment,
                });
            }
            continue;
        }
        if cur.is_none() {
            cur = Some(i);
        }
    }
    if let Some(s) = cur {
        out.push(Piece {
            start: s,
            end: norm.len(),
            segment,
        });
    }
    out
}

/// Parses one line as a sample row; None when it is not one.
pub(crate) fn parse_row(line: &str) -> Option<SampleRow> {
    let raw = line.trim();
    if raw.is_empty() || raw.len() > MAX_ROW_BYTES {
        return None;
    }
    // Cheap reject for chatter and prose: a row needs at least seven digits (a masked phone).
    let digits = raw
        .chars()
        .filter(|&c| half_width_char(c).is_ascii_digit())
        .count();
    if digits < 7 {
        return None;
    }
    let (norm, map) = fold_with_map(raw);
    let phone = find_phone(&norm);
    let masked = find_masked(&norm);
    if phone.is_none() && masked.is_none() {
        return None;
    }
    let mut spans: Vec<(usize, usize)> = Vec::with_capacity(4);
    if let Some((s, e, _)) = &phone {
        spans.push((*s, *e));
    }
    if let Some((s, e, _)) = &masked
        && !overlaps(&spans, *s, *e)
    {
        spans.push((*s, *e));
    }
    let mut order_time = None;
    if let Some((s, e, t)) = find_time(&norm, &spans) {
        spans.push((s, e));
        order_time = Some(t);
    }
    let mut amount_fen = None;
    if let Some((s, e, a)) = find_amount(&norm, &spans) {
        spans.push((s, e));
        amount_fen = Some(a);
    }
    spans.sort_unstable();

    let pieces = pieces(&norm, &spans);
    let mut name: Option<(usize, usize)> = None;
    // (piece index, start, end, segment) of every address-like piece.
    let mut addr: Vec<(usize, usize, usize, usize)> = Vec::new();
    let mut pending: Option<Field> = None;
    for (pi, p) in pieces.iter().enumerate() {
        let mut start = p.start;
        let mut text = &norm[p.start..p.end];
        let mut forced = pending.take();
        if let Some(caps) = LABEL_RE.captures(text)
            && let (Some(l), Some(all)) = (caps.name("l"), caps.get(0))
        {
            // A bare word without a colon is a label only when it is the whole piece
            // ("地址 北京市..."); otherwise "客户张三" would lose its first characters.
            let has_sep = caps.name("sep").is_some_and(|m| !m.as_str().is_empty());
            if has_sep || all.end() == text.len() {
                let field = label_field(l.as_str());
                start += all.end();
                text = &text[all.end()..];
                if text.is_empty() {
                    pending = Some(field);
                    continue;
                }
                forced = Some(field);
            }
        }
        match forced {
            Some(Field::Name) => {
                if name.is_none() && plausible_name_cell(text) {
                    name = Some((start, p.end));
                }
            }
            Some(Field::Address) => addr.push((pi, start, p.end, p.segment)),
            Some(Field::Time) => {
                if order_time.is_none() {
                    order_time = find_time(text, &[]).map(|(_, _, t)| t);
                }
            }
            Some(Field::Amount) => {
                if amount_fen.is_none() {
                    amount_fen = parse_amount_text(text);
                }
            }
            Some(Field::Phone) => {}
            None => {
                if name.is_none() && looks_like_name(text) {
                    name = Some((start, p.end));
                } else if looks_like_address(text) {
                    addr.push((pi, start, p.end, p.segment));
                }
            }
        }
    }

    // Fallback for rare surnames: a short Han piece that opens the line is the name.
    if name.is_none()
        && let Some(p) = pieces.first()
    {
        let t = &norm[p.start..p.end];
        let n = t.chars().count();
        if (2..=3).contains(&n)
            && t.chars().all(is_han)
            && !NOT_NAMES.contains(&t)
            && !looks_like_address(t)
            && !geo::is_place_name(t)
        {
            name = Some((p.start, p.end));
        }
    }

    // Adjacent address pieces (same segment, consecutive) form one address; keep the longest.
    let mut best: Option<(usize, usize)> = None;
    let mut i = 0;
    while i < addr.len() {
        let (mut last_pi, start, mut end, seg) = addr[i];
        let mut j = i + 1;
        while j < addr.len() && addr[j].0 == last_pi + 1 && addr[j].3 == seg {
            last_pi = addr[j].0;
            end = addr[j].2;
            j += 1;
        }
        if best.is_none_or(|(bs, be)| end - start > be - bs) {
            best = Some((start, end));
        }
        i = j;
    }

    let orig = |(s, e): (usize, usize)| -> Option<String> {
        let (os, oe) = (*map.get(s)?, *map.get(e)?);
        let t = raw.get(os..oe)?.trim();
        (!t.is_empty()).then(|| t.to_string())
    };
    let name = name.and_then(orig);
    let address = best.and_then(orig);
    if name.is_none() && address.is_none() {
        return None;
    }
    let (province, city, district) = match &address {
        Some(a) => geo::parse_region(a),
        None => (None, None, None),
    };
    Some(SampleRow {
        name,
        phone: phone.map(|p| p.2),
        masked_phone: masked.map(|m| m.2),
        address,
        province,
        city,
        district,
        order_time,
        amount_fen,
        raw: raw.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(line: &str) -> SampleRow {
        match parse_row(line) {
            Some(r) => r,
            None => panic!("no row from {line:?}"),
        }
    }

    #[test]
    fn simulator_rows_extract_fully() {
        let r = row("张伟 13812345678 北京市海淀区第一人民医院住院部3楼12病房 11-23 06:58");
        assert_eq!(r.name.as_deref(), Some("张伟"));
        assert_eq!(r.phone.as_deref(), Some("13812345678"));
        assert_eq!(r.masked_phone, None);
        assert_eq!(
            r.address.as_deref(),
            Some("北京市海淀区第一人民医院住院部3楼12病房")
        );
        assert_eq!(r.province.as_deref(), Some("北京市"));
        assert_eq!(r.city.as_deref(), Some("北京市"));
        assert_eq!(r.district.as_deref(), Some("海淀区"));
        assert_eq!(r.order_time.as_deref(), Some("11-23 06:58"));
        assert_eq!(r.amount_fen, None);
        assert_eq!(
            r.raw,
            "张伟 13812345678 北京市海淀区第一人民医院住院部3楼12病房 11-23 06:58"
        );

        let r = row("李娜 138****5678 上海市浦东新区如家酒店501房 10-02 19:20");
        assert_eq!(r.name.as_deref(), Some("李娜"));
        assert_eq!(r.phone, None);
        assert_eq!(r.masked_phone.as_deref(), Some("138****5678"));
        assert_eq!(r.address.as_deref(), Some("上海市浦东新区如家酒店501房"));
        assert_eq!(r.province.as_deref(), Some("上海市"));
        assert_eq!(r.city.as_deref(), Some("上海市"));
        assert_eq!(r.district.as_deref(), Some("浦东新区"));
        assert_eq!(r.order_time.as_deref(), Some("10-02 19:20"));

        let r = row("王芳 +86 150 1234 5678 广东省深圳市南山区网鱼网咖12号机 09-15 12:01");
        assert_eq!(r.name.as_deref(), Some("王芳"));
        assert_eq!(r.phone.as_deref(), Some("15012345678"));
        assert_eq!(
            r.address.as_deref(),
            Some("广东省深圳市南山区网鱼网咖12号机")
        );
        assert_eq!(r.province.as_deref(), Some("广东省"));
        assert_eq!(r.city.as_deref(), Some("深圳市"));
        assert_eq!(r.district.as_deref(), Some("南山区"));
        assert_eq!(r.order_time.as_deref(), Some("09-15 12:01"));
    }

    #[test]
    fn separators_labels_and_amounts() {
        let r = row("刘强,13912345678,浙江省杭州市西湖区阳光小区5栋302室,2026-10-11T18:30");
        assert_eq!(r.name.as_deref(), Some("刘强"));
        assert_eq!(r.phone.as_deref(), Some("13912345678"));
        assert_eq!(
            r.address.as_deref(),
            Some("浙江省杭州市西湖区阳光小区5栋302室")
        );
        assert_eq!(r.order_time.as_deref(), Some("2026-10-11 18:30"));

        let r =
            row("姓名:张三 电话:13812345678 地址:四川省成都市武侯区中心医院外科12床 金额:¥35.5");
        assert_eq!(r.name.as_deref(), Some("张三"));
        assert_eq!(r.phone.as_deref(), Some("13812345678"));
        assert_eq!(
            r.address.as_deref(),
            Some("四川省成都市武侯区中心医院外科12床")
        );
        assert_eq!(r.amount_fen, Some(3550));

        let r = row("欧阳娜娜｜１３８＊＊＊＊５６７８｜广东省深圳市福田区汉庭酒店316房｜35.5元");
        assert_eq!(r.name.as_deref(), Some("欧阳娜娜"));
        assert_eq!(r.masked_phone.as_deref(), Some("138****5678"));
        assert_eq!(
            r.address.as_deref(),
            Some("广东省深圳市福田区汉庭酒店316房")
        );
        assert_eq!(r.amount_fen, Some(3550));

        let r = row("赵敏，138-1234-5678，浙江省 杭州市 滨江区 星际网吧A区3号座");
        assert_eq!(r.name.as_deref(), Some("赵敏"));
        assert_eq!(r.phone.as_deref(), Some("13812345678"));
        assert_eq!(
            r.address.as_deref(),
            Some("浙江省 杭州市 滨江区 星际网吧A区3号座")
        );
        assert_eq!(r.district.as_deref(), Some("滨江区"));

        let r =
            row("收货人：孙桂英\t手机：+86 186 0000 1111\t地址： 上海市闵行区科技园3号楼5层前台");
        assert_eq!(r.name.as_deref(), Some("孙桂英"));
        assert_eq!(r.phone.as_deref(), Some("18600001111"));
        assert_eq!(r.address.as_deref(), Some("上海市闵行区科技园3号楼5层前台"));

        // A masked name and a time in Chinese notation.
        let r = row("张* 177xxxx0001 深圳市南山区阳光小区5栋 10月2日 19:20");
        assert_eq!(r.name.as_deref(), Some("张*"));
        assert_eq!(r.masked_phone.as_deref(), Some("177****0001"));
        assert_eq!(r.province.as_deref(), Some("广东省"));
        assert_eq!(r.order_time.as_deref(), Some("10-02 19:20"));

        // Rare surname: the first short Han piece of the line is taken as the name.
        let r = row("邴小雨 13812345678");
        assert_eq!(r.name.as_deref(), Some("邴小雨"));
    }

    #[test]
    fn not_rows() {
        for line in [
            "有人吗",
            "今天的数据什么时候发",
            "这个价格太贵了吧",
            "昨天的还有吗",
            "群主在吗",
            "新人报到",
            "美团外卖数据 0.1元/条 日更3000+ 当天 深圳本地单 姓名+电话+地址 微信:wm_data_888 TG:@wmdata_cn 私聊QQ2100000001",
            "13812345678",
            "订单号 WM13812345678 北京市海淀区",
            "138123456789 张伟 北京市海淀区",
            "座机 010-12345678 张伟 北京市海淀区",
            "美团外卖数据 联系13812345678 北京本地单",
            "",
        ] {
            assert_eq!(parse_row(line), None, "{line}");
        }
        assert_eq!(
            parse_row(&format!("张伟 13812345678 {}", "北".repeat(3000))),
            None
        );
    }

    #[test]
    fn names_and_addresses_classify() {
        for n in ["张伟", "欧阳娜娜", "李秀英", "王*", "赵某某", "司马光"] {
            assert!(looks_like_name(n), "{n}");
        }
        for n in [
            "海淀区",
            "北京",
            "样本",
            "美团外卖",
            "张",
            "王府井大街",
            "12345",
            "海口",
        ] {
            assert!(!looks_like_name(n), "{n}");
        }
        for a in [
            "北京市海淀区",
            "如家酒店501房",
            "网鱼网咖12号机",
            "5栋302室",
            "深圳南山科技园",
            "上海浦东A12",
        ] {
            assert!(looks_like_address(a), "{a}");
        }
        for a in ["张伟", "abc", "外卖数据", "ab号", "北京本地单"] {
            assert!(!looks_like_address(a), "{a}");
        }
    }
}
