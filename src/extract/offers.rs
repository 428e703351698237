//! Offers: recognises a message that sells (or buys) leaked customer data and pulls out what a
//! reviewer needs to act on it: what is sold, from which platforms, the price per record,
//! volumes, freshness, cities and the seller's contacts. Input is folded to half-width first,
//! and every pattern runs on one bounded line at a time (see `MAX_LINE_BYTES` in the module
//! root), so hostile input costs linear time.

use regex::{Captures, Regex};
use std::collections::HashSet;
use std::sync::LazyLock;

use super::normalise::{
    ONE, char_at, char_before, is_han, overlaps, parse_cn_int, parse_number, quantity_unit,
    scan_captures, to_half_width,
};
use super::{Contact, Offer, geo};

/// Cap on each list in an offer (platforms, cities, contacts...): a message naming more is
/// spam, and the first ones are the informative ones.
const MAX_LIST: usize = 16;

/// Compiles a literal pattern. Every pattern in this file is a constant that the tests compile,
/// so a failure here is a programming error caught before release.
fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("a literal pattern from offers.rs")
}

/// A price per record or per batch: `0.1元/条`, `一毛一条`, `800元1万条`, `5分一条`, `1块5一条`.
static PRICE_A: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?x)
        (?P<cur>[¥￥$]\s*)?
        (?P<amt>[0-9]{1,9}(?:\.[0-9]{1,4})?|[零〇一二两三四五六七八九十百千]{1,6})
        \s*(?P<unit>元钱|元|块钱|块|圆|毛钱|毛|角钱|角|分钱|分|rmb|RMB|r|R)?
        (?P<sub>[0-9]|[一二两三四五六七八九])??
        \s*(?P<sep>/|每|一共|共|=)?
        \s*(?P<qn>[0-9]{1,9}(?:\.[0-9]{1,3})?|[一二两三四五六七八九十百千万]{1,6})?
        \s*(?P<qu>万|千|百|[wWkK])?
        \s*(?:条|单)")
});

/// A batch price written quantity first: `1万条800元`, `1万条/800元`.
static PRICE_B: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?x)
        (?P<qn>[0-9]{1,9}(?:\.[0-9]{1,3})?|[一二两三四五六七八九十百千万]{1,6})?
        \s*(?P<qu>万|千|百|[wWkK])?
        \s*条\s*(?:/|=|:|共|只要|仅需|仅|要)?\s*
        (?P<cur>[¥￥$]\s*)?
        (?P<amt>[0-9]{1,9}(?:\.[0-9]{1,4})?|[零〇一二两三四五六七八九十百千]{1,6})
        \s*(?P<unit>元钱|元|块钱|块|圆|rmb|RMB)?")
});

/// A per-record price written label first: `单价0.1`, `每条1毛`, `一条0.1元`.
static PRICE_C: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?x)
        (?:每条|一条|单条|单价|条价)\s*[:=]?\s*
        (?P<cur>[¥￥$]\s*)?
        (?P<amt>[0-9]{1,9}(?:\.[0-9]{1,4})?|[零〇一二两三四五六七八九十]{1,3})
        (?:\s*(?P<unit>元钱|元|块钱|块|圆|毛钱|毛|角钱|角|分钱|分)(?P<sub>[0-9]|[一二两三四五六七八九])?)?")
});

/// A bare small amount that only means "per record" in an offer's context: `¥0.1`, `1毛`,
/// `两毛`, `0.1元`. Weak on its own; see `finish`.
static PRICE_D: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?x)
        (?P<cur>[¥￥$])\s*(?P<amt>[0-9]{1,9}(?:\.[0-9]{1,4})?)
      | (?P<amt2>[0-9]{1,9}(?:\.[0-9]{1,4})?|[一二两三四五六七八九十]{1,3})\s*(?P<unit2>毛钱|毛|角钱|角)
        (?P<sub2>[0-9]|[一二两三四五六七八九])?
      | (?P<amt3>[0-9]{1,9}\.[0-9]{1,4})\s*(?:元|块)")
});

/// A daily volume, label first: `日更3000+`, `每天1万`, `日出5000条`.
static DAILY_PRE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?x)
        (?:日更新?|日出|日产|日均|日量|每天|每日|天更|一天|单日)\s*[:=]?\s*
        (?:约|大概|稳定|可达|能出|能|有|出|更新?)?\s*
        (?P<qn>[0-9]{1,9}(?:\.[0-9]{1,3})?|[一二两三四五六七八九十百千万]{1,6})
        \s*(?P<qu>万|千|百|[wWkK])?\s*(?:条|单)?\s*\+?")
});

/// A daily volume, number first: `3000条/天`, `5000单每天`.
static DAILY_POST: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?x)
        (?P<qn>[0-9]{1,9}(?:\.[0-9]{1,3})?|[一二两三四五六七八九十百千万]{1,6})
        \s*(?P<qu>万|千|百|[wWkK])?\s*(?:条|单)?\s*\+?\s*(?:/|每|一)\s*(?:天|日)")
});

/// A volume on offer: `1万条`, `2万条`, `3000条`, `10w单`.
static VOLUME: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?x)
        (?P<qn>[0-9]{1,9}(?:\.[0-9]{1,3})?|[一二两三四五六七八九十百千万]{1,6})
        \s*(?P<qu>万|千|百|[wWkK])?\s*\+?\s*(?:条|单|份)")
});

static FRESHNESS: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?xi)
        当日新鲜|当天|当日|今日|今天|24\s*小时内?|24\s*h内?|实时|秒出|秒发|即时
      | 昨天|昨日|隔天|隔日|次日|48\s*小时内?
      | 一周内|1周内|一星期内|本周|半个?月内|一个?月内|1个?月内|本月|当月
      | (?P<n>[0-9]{1,2}|[一二两三四五六七八九十]{1,2})\s*(?:天|日)内
      | 历史单?|老单|旧单")
});

static PLATFORM: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)美团外卖|美团|大众点评|饿了么|饿了吗|饿么|eleme|ele\.me|京东|淘宝|天猫|拼多多|抖音|快手|小红书|携程|去哪儿|飞猪|顺丰|中通|圆通|韵达|申通|极兔|菜鸟|闪送|达达|滴滴|货拉拉|盒马|唯品会|苏宁|蜂鸟",
    )
});

static DATA_TYPE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"外卖|订单|快递|物流|酒店|开房|宾馆|医院|患者|病人|住院|网购|电商|贷款|网贷|股民|车主|房产|业主|学生|宝妈|母婴|保险|医美|游戏|棋牌|彩票",
    )
});

/// Selling words, or a trade verb right before what is traded (`出美团数据`, `收外卖单`).
static SELL: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?x)
        出售|有货|货源|一手|量大从优|长期供应|稳定供应|长期合作|支持验|可验|包验|诚信|担保
      | 私聊|私信|欢迎咨询|批发|代发|求购|回收
      | (?:出|卖|售|收|供)(?:各类|各种|大量|全国|本地|一手|新鲜|最新|实时|当天|当日)?
        (?:美团|饿了么|京东|淘宝|抖音|外卖|订单|快递|酒店|医院|数据|资料|料子|单子|信息)")
});

/// Words that make a platform name about data rather than about a meal.
static DATA_WORD: LazyLock<Regex> = LazyLock::new(|| re(r"数据|资料|信息|料子|名单|单"));

/// A description of the record's fields: `姓名+电话+地址`, `三要素`.
static FIELDS: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:姓名|名字|电话|手机|地址|号码)\s*[+/、和]\s*(?:姓名|名字|电话|手机|地址|号码)|[三四五]要素",
    )
});

static QQ: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)(?P<p>qq|扣扣|企鹅|q号)\s*(?:号码|号)?\s*[:=]?\s*(?P<h>[1-9][0-9]{4,11})")
});

static WECHAT: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)(?P<p>加\s?(?:微信|vx|wx|v)|微信号?|威信|薇信|徽信|v信|wei\s?xin|wechat|vx|wx|\+\s?v|v)\s*(?:号)?\s*(?P<sep>[:=]?)\s*@?(?P<h>[A-Za-z0-9][A-Za-z0-9_-]{1,29})",
    )
});

static TELEGRAM: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)(?P<p>telegram|tg|电报|纸飞机|飞机)\s*(?:号|账号)?\s*[:=]?\s*(?P<at>@?)(?P<h>[A-Za-z][A-Za-z0-9_]{2,31})",
    )
});

static TME: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)(?:https?://)?(?:t|telegram)\.me/@?(?P<h>[A-Za-z][A-Za-z0-9_]{2,31})")
});

/// t.me paths that are not user names.
const TME_RESERVED: &[&str] = &[
    "joinchat",
    "addstickers",
    "addemoji",
    "addlist",
    "share",
    "proxy",
    "socks",
    "setlanguage",
    "iv",
    "login",
    "c",
    "s",
];

#[derive(Debug, Clone)]
struct Price {
    start: usize,
    end: usize,
    fen: u64,
    /// Prices that mention records (条) are offers on their own; bare amounts are not.
    strong: bool,
}

/// Fen per unit and per sub-unit ("1块5" = 150, "1毛5" = 15) for a currency word.
fn unit_fen(unit: Option<&str>) -> (u128, u128) {
    match unit {
        Some("毛" | "毛钱" | "角" | "角钱") => (10, 1),
        Some("分" | "分钱") => (1, 0),
        _ => (100, 10),
    }
}

/// Amount in fen × ONE from an amount, its currency word and a sub-unit digit.
fn amount(amt: &str, unit: Option<&str>, sub: Option<&str>) -> Option<u128> {
    let a = parse_number(amt)?;
    let (per_unit, per_sub) = unit_fen(unit);
    let mut f = a.checked_mul(per_unit)?;
    if let Some(s) = sub {
        if per_sub == 0 {
            return None;
        }
        f = f.checked_add(parse_number(s)?.checked_mul(per_sub)?)?;
    }
    (f > 0).then_some(f)
}

/// Text of a named group.
fn group<'h>(caps: &Captures<'h>, name: &str) -> Option<&'h str> {
    caps.name(name).map(|m| m.as_str())
}

/// A sub-unit digit ("1毛5") is one only when no word goes on after it: in "0.1元一手货源" the
/// 一 belongs to 一手.
fn sub_ends_cleanly(s: &str, end: usize) -> bool {
    char_at(s, end).is_none_or(|c| !is_han(c) || "条分一每钱".contains(c))
}

/// Quantity in records from the `qn` and `qu` groups (1 when absent).
fn quantity(caps: &Captures<'_>) -> Option<u128> {
    let n = match caps.name("qn") {
        Some(m) => parse_number(m.as_str())?,
        None => ONE,
    };
    let u = caps.name("qu").map_or(1, |m| quantity_unit(m.as_str()));
    let q = n.checked_mul(u)? / ONE;
    (q >= 1).then_some(q)
}

/// Per-record fen from an amount (fen × ONE) and a quantity, rounded half up. Prices that
/// round to zero or exceed 1000 元 a record are not data prices and are refused.
fn per_record(fen_scaled: u128, qty: u128) -> Option<u64> {
    let div = qty.checked_mul(ONE)?;
    let v = fen_scaled.checked_add(div / 2)? / div;
    u64::try_from(v)
        .ok()
        .filter(|&v| (1..=100_000).contains(&v))
}

fn glued_number(s: &str, i: usize) -> bool {
    char_before(s, i).is_some_and(|c| c.is_ascii_digit() || c == '.')
}

/// Every price in `s`, strongest patterns first, without overlaps.
fn find_prices(s: &str) -> Vec<Price> {
    let mut out: Vec<Price> = Vec::new();
    // Each finding carries its own end: a trailing sub-unit digit may be dropped from it.
    let mut add = |found: Vec<(usize, usize, (u64, bool, usize))>| {
        for (start, _, (fen, strong, end)) in found {
            let spans: Vec<(usize, usize)> = out.iter().map(|p| (p.start, p.end)).collect();
            if !overlaps(&spans, start, end) {
                out.push(Price {
                    start,
                    end,
                    fen,
                    strong,
                });
            }
        }
    };
    add(scan_captures(&PRICE_A, s, MAX_LIST, |c| {
        let m = c.get(0)?;
        if glued_number(s, m.start()) {
            return None;
        }
        let unit = group(c, "unit");
        let has_cur = c.name("cur").is_some() || unit.is_some();
        let bare_slash =
            group(c, "sep") == Some("/") && c.name("qn").is_none() && c.name("qu").is_none();
        if !has_cur && !bare_slash {
            return None;
        }
        let mut sub = group(c, "sub");
        let qu = group(c, "qu").map_or(1, quantity_unit);
        let n = match group(c, "qn") {
            None => ONE,
            Some(q) => match parse_number(q) {
                Some(n) => n,
                // "一毛五一条": the pattern read 五一 as the quantity; it is a sub-unit, then 一.
                None if sub.is_none() && unit.is_some() => {
                    let first = q.chars().next()?;
                    let (head, rest) = q.split_at(first.len_utf8());
                    sub = Some(head);
                    if rest.is_empty() {
                        ONE
                    } else {
                        parse_number(rest)?
                    }
                }
                None => return None,
            },
        };
        let qty = n.checked_mul(qu)? / ONE;
        if qty == 0 {
            return None;
        }
        let fen = amount(group(c, "amt")?, unit, sub)?;
        // A batch is at least a yuan: "¥0.1 1万条起" is a record price next to a minimum order.
        if qty > 1 && fen < 100 * ONE {
            return None;
        }
        Some((per_record(fen, qty)?, true, m.end()))
    }));
    add(scan_captures(&PRICE_B, s, MAX_LIST, |c| {
        let m = c.get(0)?;
        if glued_number(s, m.start()) || (c.name("qn").is_none() && c.name("qu").is_none()) {
            return None;
        }
        if c.name("cur").is_none() && c.name("unit").is_none() {
            return None;
        }
        let qty = quantity(c)?;
        let fen = amount(group(c, "amt")?, group(c, "unit"), None)?;
        // A batch price is at least a yuan; "1万条 5毛" is two separate facts, not a price.
        if qty < 2 || fen < 100 * ONE {
            return None;
        }
        Some((per_record(fen, qty)?, true, m.end()))
    }));
    add(scan_captures(&PRICE_C, s, MAX_LIST, |c| {
        let m = c.get(0)?;
        let amt = c.name("amt")?;
        let unit = c.name("unit");
        if c.name("cur").is_none() && unit.is_none() && !amt.as_str().contains('.') {
            return None;
        }
        if char_at(s, amt.end()).is_some_and(|ch| ch.is_ascii_digit()) {
            return None;
        }
        let (sub, end) = match (c.name("sub"), unit) {
            (Some(sb), Some(u)) if !sub_ends_cleanly(s, sb.end()) => (None, u.end()),
            (sb, _) => (sb.map(|x| x.as_str()), m.end()),
        };
        let fen = amount(amt.as_str(), unit.map(|u| u.as_str()), sub)?;
        Some((per_record(fen, 1)?, true, end))
    }));
    add(scan_captures(&PRICE_D, s, MAX_LIST, |c| {
        let m = c.get(0)?;
        if glued_number(s, m.start()) || char_at(s, m.end()).is_some_and(|ch| ch.is_ascii_digit()) {
            return None;
        }
        let (fen, end) = if c.name("cur").is_some() {
            (amount(group(c, "amt")?, None, None)?, m.end())
        } else if let Some(unit) = c.name("unit2") {
            let (sub, end) = match c.name("sub2") {
                Some(sb) if !sub_ends_cleanly(s, sb.end()) => (None, unit.end()),
                sb => (sb.map(|x| x.as_str()), m.end()),
            };
            (amount(group(c, "amt2")?, Some(unit.as_str()), sub)?, end)
        } else {
            (amount(group(c, "amt3")?, None, None)?, m.end())
        };
        let v = per_record(fen, 1)?;
        // Bare amounts below one yuan only: "¥800" is a batch total, not a record price.
        (v < 100).then_some((v, false, end))
    }));
    out.sort_by_key(|p| (!p.strong, p.start));
    out
}

/// A quantity from `qn`/`qu` groups as a plain count.
fn count(caps: &Captures<'_>) -> Option<u64> {
    u64::try_from(quantity(caps)?).ok()
}

fn find_daily(s: &str) -> Vec<(usize, usize, u64)> {
    let mut out = scan_captures(&DAILY_PRE, s, 4, |c| count(c).filter(|&v| v >= 10));
    for (a, b, v) in scan_captures(&DAILY_POST, s, 4, |c| {
        let m = c.get(0)?;
        if glued_number(s, m.start()) {
            return None;
        }
        count(c).filter(|&v| v >= 10)
    }) {
        let spans: Vec<(usize, usize)> = out.iter().map(|&(s, e, _)| (s, e)).collect();
        if !overlaps(&spans, a, b) {
            out.push((a, b, v));
        }
    }
    out.sort_by_key(|&(s, _, _)| s);
    out
}

/// The first volume of at least 100 records outside `taken` (prices and daily volumes).
fn find_volume(s: &str, taken: &[(usize, usize)]) -> Option<u64> {
    scan_captures(&VOLUME, s, 1, |c| {
        let m = c.get(0)?;
        if glued_number(s, m.start()) || overlaps(taken, m.start(), m.end()) {
            return None;
        }
        count(c).filter(|&v| v >= 100)
    })
    .into_iter()
    .next()
    .map(|(_, _, v)| v)
}

/// Freshness, normalised to 当天 / 实时 / 两天内 / 三天内 / 一周内 / 半月内 / 一个月内 / 历史
/// (or "N天内" for other day counts).
fn find_freshness(s: &str) -> Option<String> {
    let caps = FRESHNESS.captures(s)?;
    let m = caps.get(0)?;
    if let Some(n) = caps.name("n") {
        let days = if n.as_str().starts_with(|c: char| c.is_ascii_digit()) {
            n.as_str().parse::<u64>().ok()?
        } else {
            parse_cn_int(n.as_str())?
        };
        return Some(match days {
            0 | 1 => "当天".to_string(),
            2 => "两天内".to_string(),
            3 => "三天内".to_string(),
            7 => "一周内".to_string(),
            15 => "半月内".to_string(),
            30 => "一个月内".to_string(),
            d => format!("{d}天内"),
        });
    }
    let t = m.as_str().to_lowercase();
    let label = if t.starts_with("24")
        || ["当日新鲜", "当天", "当日", "今日", "今天"].contains(&t.as_str())
    {
        "当天"
    } else if ["实时", "秒出", "秒发", "即时"].contains(&t.as_str()) {
        "实时"
    } else if t.starts_with("48") || ["昨天", "昨日", "隔天", "隔日", "次日"].contains(&t.as_str())
    {
        "两天内"
    } else if ["一周内", "1周内", "一星期内", "本周"].contains(&t.as_str()) {
        "一周内"
    } else if t.starts_with('半') {
        "半月内"
    } else if t.contains('月') {
        "一个月内"
    } else {
        "历史"
    };
    Some(label.to_string())
}

fn platform_label(m: &str) -> String {
    let lower = m.to_lowercase();
    match lower.as_str() {
        "美团外卖" => "美团".to_string(),
        "饿了吗" | "饿么" | "eleme" | "ele.me" => "饿了么".to_string(),
        _ => m.to_string(),
    }
}

fn data_type_label(m: &str) -> String {
    match m {
        "物流" => "快递",
        "开房" | "宾馆" => "酒店",
        "患者" | "病人" | "住院" => "医院",
        "网购" => "电商",
        "网贷" => "贷款",
        "业主" => "房产",
        "宝妈" => "母婴",
        "棋牌" => "游戏",
        other => other,
    }
    .to_string()
}

fn push_labels(re: &Regex, s: &str, label: fn(&str) -> String, out: &mut Vec<String>) {
    for m in re.find_iter(s) {
        if out.len() >= MAX_LIST {
            return;
        }
        let l = label(m.as_str());
        if !out.contains(&l) {
            out.push(l);
        }
    }
}

/// True when an ASCII prefix such as `vx` or `tg` is glued to a preceding ASCII word.
fn ascii_glued(s: &str, p: &regex::Match<'_>) -> bool {
    p.as_str().is_ascii() && char_before(s, p.start()).is_some_and(|c| c.is_ascii_alphanumeric())
}

/// Contacts in `s` with their positions.
fn find_contacts(s: &str) -> Vec<(usize, Contact)> {
    let mut out: Vec<(usize, Contact)> = Vec::new();
    let contact = |kind: &str, handle: &str| Contact {
        kind: kind.to_string(),
        handle: handle.to_string(),
    };
    for (start, _, h) in scan_captures(&QQ, s, MAX_LIST, |c| {
        let p = c.name("p")?;
        let h = c.name("h")?;
        if ascii_glued(s, &p) || char_at(s, h.end()).is_some_and(|ch| ch.is_ascii_digit()) {
            return None;
        }
        Some(h.as_str().to_string())
    }) {
        out.push((start, contact("qq", &h)));
    }
    for (start, _, h) in scan_captures(&WECHAT, s, MAX_LIST, |c| {
        let p = c.name("p")?;
        let h = c.name("h")?;
        if ascii_glued(s, &p)
            || char_at(s, h.end()).is_some_and(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        {
            return None;
        }
        // A bare "V" is a WeChat prefix only with a colon ("V:abc"), never in running text.
        if p.as_str().eq_ignore_ascii_case("v")
            && c.name("sep").is_none_or(|m| m.as_str().is_empty())
        {
            return None;
        }
        // "vxabc" could be a word; an ASCII prefix glued to its handle needs a digit ("vx123456").
        if p.as_str().is_ascii()
            && h.start() == p.end()
            && !h.as_str().starts_with(|ch: char| ch.is_ascii_digit())
        {
            return None;
        }
        Some(h.as_str().trim_end_matches(['-', '_']).to_string())
    }) {
        if h.chars().count() >= 2 {
            out.push((start, contact("wechat", &h)));
        }
    }
    for (start, _, h) in scan_captures(&TELEGRAM, s, MAX_LIST, |c| {
        let p = c.name("p")?;
        let h = c.name("h")?;
        let at = c.name("at").is_some_and(|m| !m.as_str().is_empty());
        if ascii_glued(s, &p)
            || char_at(s, h.end()).is_some_and(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        {
            return None;
        }
        if p.as_str().is_ascii() && h.start() == p.end() && !at {
            return None;
        }
        Some(h.as_str().to_string())
    }) {
        out.push((start, contact("telegram", &h)));
    }
    for (start, _, h) in scan_captures(&TME, s, MAX_LIST, |c| {
        let m = c.get(0)?;
        let h = c.name("h")?;
        if char_before(s, m.start()).is_some_and(|ch| ch.is_ascii_alphanumeric() || ch == '.')
            || char_at(s, h.end()).is_some_and(|ch| ch.is_ascii_alphanumeric() || ch == '_')
            || TME_RESERVED.contains(&h.as_str().to_ascii_lowercase().as_str())
        {
            return None;
        }
        Some(h.as_str().to_string())
    }) {
        out.push((start, contact("telegram", &h)));
    }
    out.sort_by_key(|(p, _)| *p);
    out
}

/// Accumulates offer evidence line by line; `finish` decides whether it is an offer.
#[derive(Debug, Default)]
pub(crate) struct OfferScan {
    offer: Offer,
    strong_price: bool,
    sell: bool,
    data_word: bool,
    fields: bool,
    contact_keys: HashSet<(String, String)>,
}

impl OfferScan {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Feeds one line (the caller bounds its length).
    pub(crate) fn feed(&mut self, line: &str) {
        let s = to_half_width(line);
        let o = &mut self.offer;
        push_labels(&PLATFORM, &s, platform_label, &mut o.platforms);
        push_labels(&DATA_TYPE, &s, data_type_label, &mut o.data_types);
        geo::find_cities(&s, &mut o.cities, MAX_LIST);

        let prices = find_prices(&s);
        let mut taken: Vec<(usize, usize)> = prices.iter().map(|p| (p.start, p.end)).collect();
        if let Some(p) = prices.first()
            && (o.price_per_record_fen.is_none() || (p.strong && !self.strong_price))
        {
            o.price_per_record_fen = Some(p.fen);
            o.price_text = s.get(p.start..p.end).map(|t| t.trim().to_string());
            self.strong_price = p.strong;
        }

        let daily = find_daily(&s);
        taken.extend(daily.iter().map(|&(a, b, _)| (a, b)));
        if o.daily_volume.is_none() {
            o.daily_volume = daily.first().map(|&(_, _, v)| v);
        }
        if o.volume_records.is_none() {
            o.volume_records = find_volume(&s, &taken);
        }
        if o.freshness.is_none() {
            o.freshness = find_freshness(&s);
        }
        for (_, c) in find_contacts(&s) {
            if o.contacts.len() >= MAX_LIST {
                break;
            }
            if self
                .contact_keys
                .insert((c.kind.clone(), c.handle.to_lowercase()))
            {
                o.contacts.push(c);
            }
        }
        self.sell |= SELL.is_match(&s);
        self.data_word |= DATA_WORD.is_match(&s);
        self.fields |= FIELDS.is_match(&s);
    }

    /// The offer, when the evidence says the text sells data: a price that mentions records;
    /// or any price plus data, a volume, a contact or a selling word; or data (a data type, a
    /// platform named with 数据/单, or a field list) plus a selling word, a volume or a contact;
    /// or data named as data (外卖数据, 姓名+电话) with a freshness. A freshness word next to a
    /// mere data type is chatter ("今天美团外卖送得好慢").
    pub(crate) fn finish(self) -> Option<Offer> {
        let o = self.offer;
        let price = o.price_per_record_fen.is_some();
        let quantity = o.volume_records.is_some() || o.daily_volume.is_some();
        let contact = !o.contacts.is_empty();
        let named_data =
            (self.data_word && !(o.data_types.is_empty() && o.platforms.is_empty())) || self.fields;
        let data = !o.data_types.is_empty() || named_data;
        let is_offer = self.strong_price
            || (price && (data || quantity || contact || self.sell))
            || (data && (self.sell || quantity || contact))
            || (named_data && o.freshness.is_some());
        is_offer.then_some(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(text: &str) -> Option<Offer> {
        let mut scan = OfferScan::new();
        for line in text.lines() {
            scan.feed(line);
        }
        scan.finish()
    }

    fn must(text: &str) -> Offer {
        match offer(text) {
            Some(o) => o,
            None => panic!("no offer in {text:?}"),
        }
    }

    fn c(kind: &str, handle: &str) -> Contact {
        Contact {
            kind: kind.into(),
            handle: handle.into(),
        }
    }

    #[test]
    fn simulator_offers_extract_fully() {
        let o = must(
            "美团外卖数据 0.1元/条 日更3000+ 当天 深圳本地单 姓名+电话+地址 微信:wm_data_888 TG:@wmdata_cn 私聊QQ2100000001",
        );
        assert_eq!(o.data_types, ["外卖"]);
        assert_eq!(o.platforms, ["美团"]);
        assert_eq!(o.price_per_record_fen, Some(10));
        assert_eq!(o.price_text.as_deref(), Some("0.1元/条"));
        assert_eq!(o.volume_records, None);
        assert_eq!(o.daily_volume, Some(3000));
        assert_eq!(o.freshness.as_deref(), Some("当天"));
        assert_eq!(o.cities, ["深圳"]);
        assert_eq!(
            o.contacts,
            [
                c("wechat", "wm_data_888"),
                c("telegram", "wmdata_cn"),
                c("qq", "2100000001")
            ]
        );

        let o = must("饿了么外卖数据 一毛一条 1万条起 实时 成都本地单");
        assert_eq!(o.data_types, ["外卖"]);
        assert_eq!(o.platforms, ["饿了么"]);
        assert_eq!(o.price_per_record_fen, Some(10));
        assert_eq!(o.price_text.as_deref(), Some("一毛一条"));
        assert_eq!(o.volume_records, Some(10_000));
        assert_eq!(o.daily_volume, None);
        assert_eq!(o.freshness.as_deref(), Some("实时"));
        assert_eq!(o.cities, ["成都"]);
        assert!(o.contacts.is_empty());

        let o = must("美团外卖数据 800元1万条 量大从优，2万条 当日新鲜 杭州本地单");
        assert_eq!(o.data_types, ["外卖"]);
        assert_eq!(o.platforms, ["美团"]);
        assert_eq!(o.price_per_record_fen, Some(8));
        assert_eq!(o.price_text.as_deref(), Some("800元1万条"));
        assert_eq!(o.volume_records, Some(20_000));
        assert_eq!(o.freshness.as_deref(), Some("当天"));
        assert_eq!(o.cities, ["杭州"]);
    }

    #[test]
    fn every_simulator_variant_is_an_offer() {
        let prices = [
            "0.1元/条",
            "一毛一条",
            "1毛",
            "¥0.1",
            "800元1万条",
            "0.15元/条",
        ];
        let want = [10, 10, 10, 10, 8, 15];
        let volumes = ["日更3000+", "1万条起", "日更5000", "量大从优，2万条"];
        let fresh = [
            ("当天", "当天"),
            ("实时", "实时"),
            ("三天内", "三天内"),
            ("当日新鲜", "当天"),
        ];
        let volume_want = [
            (None, Some(3000)),
            (Some(10_000), None),
            (None, Some(5000)),
            (Some(20_000), None),
        ];
        // The simulator's sellers: WeChat and Telegram, WeChat only, neither.
        let sellers: [(&str, Vec<Contact>); 3] = [
            (
                " 微信:wm_data_888 TG:@wmdata_cn 私聊QQ2100000001",
                vec![
                    c("wechat", "wm_data_888"),
                    c("telegram", "wmdata_cn"),
                    c("qq", "2100000001"),
                ],
            ),
            (
                " 微信:dzdd_2026 私聊QQ2100000003",
                vec![c("wechat", "dzdd_2026"), c("qq", "2100000003")],
            ),
            (" 私聊QQ2100000002", vec![c("qq", "2100000002")]),
        ];
        let mut n = 0;
        for (platform, canonical) in [("美团", "美团"), ("饿了么", "饿了么"), ("美团外卖", "美团")]
        {
            for (price, fen) in prices.iter().zip(want) {
                for (volume, (records, daily)) in volumes.iter().zip(volume_want) {
                    for (f, f_norm) in fresh {
                        for city in ["北京", "上海", "深圳", "杭州", "成都"] {
                            let (contact, contacts) = &sellers[n % sellers.len()];
                            n += 1;
                            let text = format!(
                                "{platform}外卖数据 {price} {volume} {f} {city}本地单 姓名+电话+地址{contact}"
                            );
                            let o = must(&text);
                            assert_eq!(o.data_types, ["外卖"], "{text}");
                            assert_eq!(o.platforms, [canonical], "{text}");
                            assert_eq!(o.price_per_record_fen, Some(fen), "{text}");
                            assert_eq!(o.price_text.as_deref(), Some(*price), "{text}");
                            assert_eq!(o.volume_records, records, "{text}");
                            assert_eq!(o.daily_volume, daily, "{text}");
                            assert_eq!(o.freshness.as_deref(), Some(f_norm), "{text}");
                            assert_eq!(o.cities, [city], "{text}");
                            assert_eq!(&o.contacts, contacts, "{text}");
                        }
                    }
                }
            }
        }
    }

    /// (text, price fen, volume, daily volume, freshness)
    type Form = (
        &'static str,
        Option<u64>,
        Option<u64>,
        Option<u64>,
        Option<&'static str>,
    );

    #[test]
    fn price_volume_freshness_forms() {
        let forms: &[Form] = &[
            ("0.1元/条", Some(10), None, None, None),
            ("一毛一条", Some(10), None, None, None),
            ("1毛", Some(10), None, None, None),
            ("¥0.1", Some(10), None, None, None),
            ("￥0.1", Some(10), None, None, None),
            ("800元1万条", Some(8), None, None, None),
            ("0.15元/条", Some(15), None, None, None),
            ("两毛", Some(20), None, None, None),
            ("5分一条", Some(5), None, None, None),
            ("五分一条", Some(5), None, None, None),
            ("0.1元一条", Some(10), None, None, None),
            ("0.1元每条", Some(10), None, None, None),
            ("0.1/条", Some(10), None, None, None),
            ("¥0.1/条", Some(10), None, None, None),
            ("0.2r/条", Some(20), None, None, None),
            ("800元/万条", Some(8), None, None, None),
            ("八百元一万条", Some(8), None, None, None),
            ("80元/千条", Some(8), None, None, None),
            ("8元/百条", Some(8), None, None, None),
            ("1万条800元", Some(8), None, None, None),
            ("¥0.1 1万条起", Some(10), Some(10_000), None, None),
            ("1毛 1万条起", Some(10), Some(10_000), None, None),
            ("1块5一条", Some(150), None, None, None),
            ("一块钱一条", Some(100), None, None, None),
            ("1毛5一条", Some(15), None, None, None),
            ("一毛五一条", Some(15), None, None, None),
            ("两毛五", Some(25), None, None, None),
            ("0.1元一手货源", Some(10), None, None, None),
            ("单价0.12 一手", Some(12), None, None, None),
            ("每条1毛一手", Some(10), None, None, None),
            ("一毛五", Some(15), None, None, None),
            ("3毛/条", Some(30), None, None, None),
            ("单价0.12", Some(12), None, None, None),
            ("每条1毛", Some(10), None, None, None),
            ("0.1元", Some(10), None, None, None),
            ("1500元/1.5万条", Some(10), None, None, None),
            ("1万条起", None, Some(10_000), None, None),
            ("2万条", None, Some(20_000), None, None),
            ("3000条", None, Some(3000), None, None),
            ("10w条", None, Some(100_000), None, None),
            ("三千条", None, Some(3000), None, None),
            ("5000单", None, Some(5000), None, None),
            ("日更3000+", None, None, Some(3000), None),
            ("日更5000", None, None, Some(5000), None),
            ("每天1万", None, None, Some(10_000), None),
            ("每日3000条", None, None, Some(3000), None),
            ("日出两万", None, None, Some(20_000), None),
            ("3000条/天", None, None, Some(3000), None),
            ("当天", None, None, None, Some("当天")),
            ("当日", None, None, None, Some("当天")),
            ("今日", None, None, None, Some("当天")),
            ("当日新鲜", None, None, None, Some("当天")),
            ("实时", None, None, None, Some("实时")),
            ("秒出", None, None, None, Some("实时")),
            ("三天内", None, None, None, Some("三天内")),
            ("3天内", None, None, None, Some("三天内")),
            ("一周内", None, None, None, Some("一周内")),
            ("7天内", None, None, None, Some("一周内")),
            ("一个月内", None, None, None, Some("一个月内")),
            ("5天内", None, None, None, Some("5天内")),
            ("24小时内", None, None, None, Some("当天")),
            ("昨日", None, None, None, Some("两天内")),
        ];
        assert!(forms.len() >= 40);
        for &(form, price, volume, daily, fresh) in forms {
            // Wrapped in an offer so the weak forms count too.
            let text = format!("出美团外卖数据 {form} 私聊");
            let o = must(&text);
            assert_eq!(o.price_per_record_fen, price, "price of {form}");
            assert_eq!(o.volume_records, volume, "volume of {form}");
            assert_eq!(o.daily_volume, daily, "daily of {form}");
            assert_eq!(o.freshness.as_deref(), fresh, "freshness of {form}");
            if price.is_some() {
                assert!(o.price_text.is_some(), "{form}");
            }
        }
    }

    #[test]
    fn contacts_forms() {
        for (text, want) in [
            ("QQ2100000001", c("qq", "2100000001")),
            ("私聊QQ:123456", c("qq", "123456")),
            ("扣扣123456", c("qq", "123456")),
            ("qq：123456", c("qq", "123456")),
            ("微信:abc", c("wechat", "abc")),
            ("VX abc", c("wechat", "abc")),
            ("wx:abc", c("wechat", "abc")),
            ("加V abc", c("wechat", "abc")),
            ("加vx: wm_88", c("wechat", "wm_88")),
            ("vx123456", c("wechat", "123456")),
            ("V:meituan_666", c("wechat", "meituan_666")),
            ("v： abc", c("wechat", "abc")),
            ("TG:@name", c("telegram", "name")),
            ("t.me/name", c("telegram", "name")),
            ("https://t.me/wmdata_cn", c("telegram", "wmdata_cn")),
            ("飞机@name", c("telegram", "name")),
            ("纸飞机: @seller_01", c("telegram", "seller_01")),
        ] {
            let found: Vec<Contact> = find_contacts(&to_half_width(text))
                .into_iter()
                .map(|(_, c)| c)
                .collect();
            assert_eq!(found, [want], "{text}");
        }
        for text in [
            "TV:abc",
            "v abc",
            "vxabc",
            "stg:@abc",
            "t.me/joinchat",
            "QQ1234",
            "微信同号",
            "wxyz",
        ] {
            assert!(find_contacts(text).is_empty(), "{text}");
        }
    }

    #[test]
    fn chatter_is_not_an_offer() {
        for text in [
            "有人吗",
            "今天的数据什么时候发",
            "这个价格太贵了吧",
            "昨天的还有吗",
            "群主在吗",
            "新人报到",
            "老板靠谱吗",
            "收到了，谢谢",
            "私聊",
            "[CQ:face,id=178]",
            "美团的外卖到了没",
            "等3分钟",
            "今天美团外卖送得好慢",
            "刚点了饿了么，35块",
            "这批数据多少钱一条",
            "有没有人要外卖单",
        ] {
            assert_eq!(offer(text), None, "{text}");
        }
    }

    #[test]
    fn trading_without_price_is_an_offer() {
        let o = must("出饿了么订单数据，日更5000，需要的私聊 VX: eleme_88");
        assert_eq!(o.platforms, ["饿了么"]);
        assert_eq!(o.data_types, ["订单"]);
        assert_eq!(o.daily_volume, Some(5000));
        assert_eq!(o.contacts, [c("wechat", "eleme_88")]);
        let o = must("美团外卖数据 当天");
        assert_eq!(o.freshness.as_deref(), Some("当天"));
        let o = must("求购饿了么数据 要新鲜的");
        assert_eq!(o.platforms, ["饿了么"]);
        let o = must("收外卖数据 全国都要 t.me/buyer_x");
        assert_eq!(o.contacts, [c("telegram", "buyer_x")]);
    }
}
