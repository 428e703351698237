//! Synthetic order records and seller samples with a planted leak, for tests and benchmarks.
//!
//! [`write_records_csv`] streams `n` orders (plus canary records) to a CSV file: customers with
//! realistic Chinese names, mainland mobile numbers and addresses (homes, offices, hospital
//! wards, hotel rooms, internet-café seats) in seven cities; repeat customers; merchants,
//! riders and delivery partners per city. One actor can be planted as the leak: a rider, a
//! partner, or a staff account (which then appears in an access log written next to the
//! records). The orders that actor handled are kept (a bounded reservoir) in the [`Truth`].
//!
//! [`sample`] draws a seller's sample from those orders with the noise real samples have: half
//! the phones masked, some in `+86`/dashed/full-width form, name typos (homophones and
//! look-alike characters), names in pinyin, missing fields, truncated addresses, names glued
//! onto addresses, order times without a year, decoy rows that are nobody's order, and the
//! planted partner's canary records when a partner leaked.
//!
//! Invariants: everything is a pure function of the seed (same seed, same bytes); phones of
//! distinct customers are distinct (an affine bijection of the customer number); canary phones
//! use prefixes no customer has; memory does not grow with `n` beyond the reservoir, so ten
//! million records need no more than a thousand.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use pinyin::ToPinyin;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::normalise::DISTRICTS;
use super::{MatchError, SampleInput};

/// Which actor leaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plant {
    /// No leak: the pool is empty.
    None,
    /// One rider in 北京.
    Rider,
    /// One delivery partner in 上海.
    Partner,
    /// One staff account exporting orders in 广州 (an access log is written beside the records).
    Staff,
}

/// One generated order, in the clear (test data only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruthOrder {
    pub order_id: String,
    pub created_at: i64,
    pub city: String,
    pub name: String,
    /// 11 digits.
    pub phone: String,
    /// As written in the records.
    pub address: String,
    /// District and the rest, without province and city.
    pub address_short: String,
    pub merchant_id: String,
    pub rider_id: String,
    pub delivery_partner: String,
    pub canary_for: Option<String>,
}

/// What the generator planted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truth {
    /// Rows written (orders and canaries).
    pub records: u64,
    /// (kind, id) of the leaking actor: ("rider", ..), ("partner", ..) or ("staff_account", ..).
    pub planted: Option<(String, String)>,
    /// Orders the leaking actor handled (a uniform reservoir of at most [`POOL_CAP`]).
    pub pool: Vec<TruthOrder>,
    /// Every canary record written.
    pub canaries: Vec<TruthOrder>,
    /// The year the orders are in.
    pub year: i32,
    /// The access log, when one was written (`<records>.access.csv`).
    pub access_log: Option<PathBuf>,
}

/// The truth behind a sample, row by row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroundTruth {
    /// The order each row was drawn from; `None` for decoys.
    pub rows: Vec<Option<TruthOrder>>,
    pub planted: Option<(String, String)>,
    /// The partner whose canaries were put in the sample, if any.
    pub canary_partner: Option<String>,
}

/// Most leaked orders kept for sampling.
pub const POOL_CAP: usize = 50_000;
/// Canary records per delivery partner.
pub const CANARIES_PER_PARTNER: usize = 4;
const PARTNERS_PER_CITY: usize = 3;
const STAFF_ACCOUNTS: u64 = 60;

/// 2024-09-01 00:00 +08:00.
const START: i64 = 1_725_120_000;
const DAYS: i64 = 91;
const YEAR: i32 = 2024;

struct City {
    name: &'static str,
    province: Option<&'static str>,
    code: &'static str,
    weight: u32,
}

const CITIES: &[City] = &[
    City {
        name: "北京",
        province: None,
        code: "BJ",
        weight: 20,
    },
    City {
        name: "上海",
        province: None,
        code: "SH",
        weight: 18,
    },
    City {
        name: "广州",
        province: Some("广东省"),
        code: "GZ",
        weight: 14,
    },
    City {
        name: "深圳",
        province: Some("广东省"),
        code: "SZ",
        weight: 14,
    },
    City {
        name: "杭州",
        province: Some("浙江省"),
        code: "HZ",
        weight: 12,
    },
    City {
        name: "成都",
        province: Some("四川省"),
        code: "CD",
        weight: 12,
    },
    City {
        name: "武汉",
        province: Some("湖北省"),
        code: "WH",
        weight: 10,
    },
];

/// Common surnames with rough relative frequencies.
const SURNAMES: &[(&str, u32)] = &[
    ("王", 72),
    ("李", 71),
    ("张", 67),
    ("刘", 54),
    ("陈", 45),
    ("杨", 31),
    ("黄", 24),
    ("赵", 22),
    ("吴", 20),
    ("周", 20),
    ("徐", 15),
    ("孙", 15),
    ("马", 14),
    ("朱", 13),
    ("胡", 12),
    ("郭", 12),
    ("何", 11),
    ("林", 10),
    ("罗", 10),
    ("高", 10),
    ("郑", 9),
    ("梁", 9),
    ("谢", 8),
    ("宋", 7),
    ("唐", 7),
    ("许", 7),
    ("韩", 6),
    ("冯", 6),
    ("邓", 6),
    ("曹", 6),
    ("彭", 6),
    ("曾", 5),
    ("肖", 5),
    ("田", 5),
    ("董", 5),
    ("袁", 5),
    ("潘", 4),
    ("蒋", 4),
    ("蔡", 4),
    ("余", 4),
    ("杜", 4),
    ("叶", 4),
    ("程", 4),
    ("魏", 4),
    ("苏", 4),
    ("吕", 3),
    ("丁", 3),
    ("沈", 3),
    ("欧阳", 1),
    ("司马", 1),
];

const GIVEN: &[char] = &[
    '伟', '芳', '娜', '敏', '静', '丽', '强', '磊', '军', '洋', '勇', '艳', '杰', '娟', '涛', '明',
    '超', '秀', '霞', '平', '刚', '桂', '英', '华', '红', '玉', '兰', '辉', '建', '玲', '林', '鹏',
    '婷', '文', '欣', '雪', '宇', '云', '志', '波', '斌', '浩', '凯', '鑫', '宁', '佳', '琳', '晨',
    '欢', '瑞', '博', '倩', '颖', '涵', '梓', '轩', '子', '怡', '思', '雨', '萱', '昊', '然', '嘉',
    '俊', '峰', '晓', '海', '天', '一', '诗', '梦', '琪', '家', '豪',
];

/// Homophones (same toneless pinyin) for typos.
const HOMOPHONES: &[(char, char)] = &[
    ('伟', '玮'),
    ('芳', '方'),
    ('静', '靖'),
    ('丽', '莉'),
    ('军', '君'),
    ('杰', '洁'),
    ('洋', '阳'),
    ('勇', '涌'),
    ('艳', '燕'),
    ('涛', '滔'),
    ('明', '鸣'),
    ('超', '潮'),
    ('平', '萍'),
    ('刚', '钢'),
    ('华', '桦'),
    ('辉', '晖'),
    ('建', '健'),
    ('玲', '铃'),
    ('林', '琳'),
    ('婷', '亭'),
    ('文', '雯'),
    ('欣', '新'),
    ('宇', '雨'),
    ('云', '芸'),
    ('志', '智'),
    ('斌', '彬'),
    ('浩', '皓'),
    ('晨', '辰'),
    ('峰', '锋'),
    ('嘉', '佳'),
];

/// Look-alike characters for typos (OCR and hasty copying).
const LOOKALIKES: &[(char, char)] = &[
    ('王', '玉'),
    ('明', '朋'),
    ('天', '夭'),
    ('人', '入'),
    ('大', '太'),
    ('子', '孑'),
    ('玲', '铃'),
    ('晓', '哓'),
    ('海', '悔'),
    ('静', '睁'),
    ('丽', '俪'),
    ('红', '虹'),
    ('宇', '字'),
    ('博', '搏'),
    ('浩', '诰'),
    ('雨', '两'),
    ('梓', '辛'),
    ('思', '恩'),
    ('欣', '忻'),
    ('俊', '峻'),
    ('鹏', '朋'),
    ('瑞', '端'),
    ('凯', '剀'),
    ('然', '燃'),
];

const ROADS: &[&str] = &[
    "中山路",
    "人民路",
    "解放路",
    "建设路",
    "和平街",
    "文化路",
    "新华街",
    "光明路",
    "长江路",
    "黄河路",
    "学院路",
    "科技路",
    "青年路",
    "滨江大道",
    "幸福大街",
    "朝阳北路",
    "东风路",
];
const COMPLEX_A: &[&str] = &[
    "阳光",
    "翠苑",
    "锦绣",
    "金地",
    "万科",
    "碧桂园",
    "龙湖",
    "保利",
    "绿城",
    "融创",
    "华润",
    "世纪",
    "枫林",
    "紫荆",
    "东方",
];
const COMPLEX_B: &[&str] = &[
    "花园", "家园", "新村", "公寓", "小区", "名苑", "华府", "嘉园",
];
const OFFICE_A: &[&str] = &[
    "腾飞", "国贸", "金融", "创新", "软件", "数码", "环球", "中心",
];
const OFFICE_B: &[&str] = &["大厦", "科技园", "广场", "中心", "写字楼"];
const HOSPITALS: &[&str] = &[
    "第一人民医院",
    "中医院",
    "妇幼保健院",
    "儿童医院",
    "肿瘤医院",
    "协和医院",
    "中心医院",
    "第三人民医院",
];
const HOTELS: &[&str] = &[
    "如家酒店",
    "汉庭酒店",
    "全季酒店",
    "锦江之星",
    "7天酒店",
    "亚朵酒店",
];
const CAFES: &[&str] = &["网鱼网咖", "极速网咖", "星际网咖", "火狐电竞馆"];

/// Prefixes of customers' phones. Canaries use 166/167, which no customer has.
const PREFIXES: &[u32] = &[
    130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 150, 151, 152, 153, 155, 156, 157, 158, 159,
    180, 181, 182, 183, 184, 185, 186, 187, 188, 189, 173, 175, 176, 177, 178,
];
const CANARY_PREFIXES: &[u32] = &[166, 167];

/// splitmix64: derives independent seeds from (seed, purpose, number).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn rng_for(seed: u64, purpose: u64, n: u64) -> StdRng {
    StdRng::seed_from_u64(mix(mix(seed ^ purpose.wrapping_mul(0x1000_0000_01B3)) ^ n))
}

fn pick<'a, T>(rng: &mut StdRng, xs: &'a [T]) -> &'a T {
    &xs[rng.gen_range(0..xs.len())]
}

fn weighted_city(rng: &mut StdRng) -> usize {
    let total: u32 = CITIES.iter().map(|c| c.weight).sum();
    let mut x = rng.gen_range(0..total);
    for (i, c) in CITIES.iter().enumerate() {
        if x < c.weight {
            return i;
        }
        x -= c.weight;
    }
    0
}

fn random_name(rng: &mut StdRng) -> String {
    let total: u32 = SURNAMES.iter().map(|s| s.1).sum();
    let mut x = rng.gen_range(0..total);
    let mut surname = SURNAMES[0].0;
    for (s, w) in SURNAMES {
        if x < *w {
            surname = s;
            break;
        }
        x -= w;
    }
    let mut name = surname.to_string();
    let len = if rng.gen_bool(0.3) { 1 } else { 2 };
    for _ in 0..len {
        name.push(*pick(rng, GIVEN));
    }
    name
}

fn districts(city: usize) -> &'static [&'static str] {
    DISTRICTS
        .iter()
        .find(|(c, _)| *c == CITIES[city].name)
        .map(|(_, d)| *d)
        .unwrap_or(&[])
}

/// The part of an address after the district, of a given kind.
fn place(rng: &mut StdRng, city: usize, kind: u32) -> String {
    match kind {
        0 => format!(
            "{}{}号{}{}{}号楼{}单元{}{:02}室",
            pick(rng, ROADS),
            rng.gen_range(1..300),
            pick(rng, COMPLEX_A),
            pick(rng, COMPLEX_B),
            rng.gen_range(1..30),
            rng.gen_range(1..7),
            rng.gen_range(1..34),
            rng.gen_range(1..5)
        ),
        1 => format!(
            "{}{}号{}{}{}座{}层{}室",
            pick(rng, ROADS),
            rng.gen_range(1..300),
            pick(rng, OFFICE_A),
            pick(rng, OFFICE_B),
            pick(rng, &['A', 'B', 'C', 'D']),
            rng.gen_range(1..40),
            rng.gen_range(1..30)
        ),
        2 => format!(
            "{}市{}住院部{}号楼{}楼{}床",
            CITIES[city].name,
            pick(rng, HOSPITALS),
            rng.gen_range(1..8),
            rng.gen_range(2..20),
            rng.gen_range(1..60)
        ),
        3 => format!(
            "{}({}店){}{:02}房",
            pick(rng, HOTELS),
            pick(rng, ROADS),
            rng.gen_range(2..25),
            rng.gen_range(1..40)
        ),
        _ => format!(
            "{}({}店){}区{}号机",
            pick(rng, CAFES),
            pick(rng, ROADS),
            pick(rng, &['A', 'B', 'C', 'D', 'E']),
            rng.gen_range(1..120)
        ),
    }
}

/// A full address: (as written, without province and city).
fn render_address(
    rng: &mut StdRng,
    city: usize,
    kind: u32,
    with_province: bool,
) -> (String, String) {
    let c = &CITIES[city];
    let ds = districts(city);
    let district = if ds.is_empty() { "" } else { *pick(rng, ds) };
    let short = format!("{district}{}", place(rng, city, kind));
    let full = match (c.province, with_province) {
        (Some(p), true) => format!("{p}{}市{short}", c.name),
        _ => format!("{}市{short}", c.name),
    };
    (full, short)
}

struct Customer {
    name: String,
    phone: String,
    city: usize,
    home: (String, String),
    away: (String, String),
}

/// Customer `id`, derived from the seed alone (no table is kept).
fn customer(seed: u64, id: u64) -> Customer {
    let mut rng = rng_for(seed, 1, id);
    let p = PREFIXES.len() as u64;
    let prefix = PREFIXES[(id % p) as usize];
    // An affine map with a multiplier coprime to 10^8 is a bijection on 8-digit bodies, so
    // distinct customers never share a phone.
    let body = ((id / p)
        .wrapping_mul(7_919_233)
        .wrapping_add(mix(seed) % 100_000_000))
        % 100_000_000;
    let city = weighted_city(&mut rng);
    let with_province = rng.gen_bool(0.7);
    let home_kind = if rng.gen_bool(0.8) { 0 } else { 1 };
    let away_kind = rng.gen_range(2..5);
    Customer {
        name: random_name(&mut rng),
        phone: format!("{prefix}{body:08}"),
        city,
        home: render_address(&mut rng, city, home_kind, with_province),
        away: render_address(&mut rng, city, away_kind, with_province),
    }
}

/// Civil date from days since 1970-01-01 (proleptic Gregorian).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day, hour, minute, second) in +08:00.
fn local_parts(t: i64) -> (i64, u32, u32, u32, u32, u32) {
    let l = t + 8 * 3600;
    let (y, m, d) = civil(l.div_euclid(86_400));
    let s = l.rem_euclid(86_400) as u32;
    (y, m, d, s / 3600, s / 60 % 60, s % 60)
}

fn format_time(t: i64, rfc3339: bool) -> String {
    let (y, mo, d, h, mi, s) = local_parts(t);
    if rfc3339 {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}+08:00")
    } else {
        format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
    }
}

fn order_time(rng: &mut StdRng, i: u64, n: u64) -> i64 {
    let day = (i as i64 * DAYS) / n.max(1) as i64;
    let tod = match rng.gen_range(0..10) {
        0..=3 => rng.gen_range(37_800..48_600),
        4..=7 => rng.gen_range(59_400..73_800),
        _ => rng.gen_range(0..86_400),
    };
    START + day * 86_400 + tod
}

/// Everything sized from `n`.
struct Scale {
    customers: u64,
    merchants: Vec<u64>,
    riders: Vec<u64>,
}

fn scale(n: u64) -> Scale {
    let total: u64 = CITIES.iter().map(|c| u64::from(c.weight)).sum();
    let per = |min: u64, all: u64| -> Vec<u64> {
        CITIES
            .iter()
            .map(|c| (all * u64::from(c.weight) / total).max(min))
            .collect()
    };
    Scale {
        customers: (n * 2 / 5).max(200),
        merchants: per(10, n / 150),
        riders: per(6, n / 2500),
    }
}

fn partner_id(city: usize, k: usize) -> String {
    format!("P{}{}", CITIES[city].code, k + 1)
}

fn rider_id(city: usize, r: u64) -> String {
    format!("R{}{:05}", CITIES[city].code, r)
}

/// Writes `n` generated orders (plus canaries) to `path` as CSV with the records header, and
/// for [`Plant::Staff`] an access log to `<path>.access.csv`.
pub fn write_records_csv(
    path: &Path,
    n: u64,
    seed: u64,
    plant: Plant,
) -> Result<Truth, MatchError> {
    let sc = scale(n);
    let file = File::create(path).map_err(|e| MatchError::io(path, e))?;
    let mut w = csv::WriterBuilder::new().from_writer(BufWriter::with_capacity(1 << 20, file));
    let io = |e: csv::Error| MatchError::input(path, format!("writing: {e}"));
    w.write_record([
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
    ])
    .map_err(io)?;
    let access_path = (plant == Plant::Staff).then(|| {
        let mut p = path.as_os_str().to_owned();
        p.push(".access.csv");
        PathBuf::from(p)
    });
    let mut access = match &access_path {
        Some(p) => {
            let f = File::create(p).map_err(|e| MatchError::io(p, e))?;
            let mut a = csv::Writer::from_writer(BufWriter::new(f));
            a.write_record(["order_id", "actor_kind", "actor_id", "action", "at"])
                .map_err(io)?;
            Some(a)
        }
        None => None,
    };
    let planted = match plant {
        Plant::None => None,
        Plant::Rider => Some(("rider".to_string(), rider_id(0, mix(seed) % sc.riders[0]))),
        Plant::Partner => Some((
            "partner".to_string(),
            partner_id(1, (mix(seed) % PARTNERS_PER_CITY as u64) as usize),
        )),
        Plant::Staff => Some((
            "staff_account".to_string(),
            format!("S{:04}", mix(seed) % STAFF_ACCOUNTS),
        )),
    };
    let mut truth = Truth {
        records: 0,
        planted: planted.clone(),
        pool: Vec::new(),
        canaries: Vec::new(),
        year: YEAR,
        access_log: access_path.clone(),
    };
    let mut rng = rng_for(seed, 2, 0);
    let mut pool_seen = 0u64;
    let total_canaries = (CITIES.len() * PARTNERS_PER_CITY * CANARIES_PER_PARTNER) as u64;
    let stride = (n / (total_canaries + 1)).max(1);
    let mut canaries_written = 0u64;
    let mut serial = mix(seed) % 1_000_000;
    for i in 0..n {
        let created = order_time(&mut rng, i, n);
        if i % stride == stride / 2 && canaries_written < total_canaries {
            let k = canaries_written as usize;
            let city = k / (PARTNERS_PER_CITY * CANARIES_PER_PARTNER);
            let partner = partner_id(city, (k / CANARIES_PER_PARTNER) % PARTNERS_PER_CITY);
            let mut crng = rng_for(seed, 3, canaries_written);
            let kind = crng.gen_range(0..5);
            let (address, address_short) = render_address(&mut crng, city, kind, true);
            let o = TruthOrder {
                order_id: order_id(created, serial),
                created_at: created,
                city: CITIES[city].name.to_string(),
                name: random_name(&mut crng),
                phone: format!(
                    "{}{:08}",
                    CANARY_PREFIXES[k % CANARY_PREFIXES.len()],
                    mix(seed ^ canaries_written) % 100_000_000
                ),
                address,
                address_short,
                merchant_id: format!(
                    "M{}{:05}",
                    CITIES[city].code,
                    crng.gen_range(0..sc.merchants[city])
                ),
                // Canaries are planted in the partner's data feed; no rider ever carries them.
                rider_id: String::new(),
                delivery_partner: partner.clone(),
                canary_for: Some(partner),
            };
            serial += 1;
            write_order(&mut w, &o, &mut rng).map_err(io)?;
            truth.records += 1;
            truth.canaries.push(o);
            canaries_written += 1;
        }
        let regular = rng.gen_bool(0.4);
        let cid = if regular {
            rng.gen_range(0..(sc.customers / 10).max(1))
        } else {
            rng.gen_range(0..sc.customers)
        };
        let cust = customer(seed, cid);
        let city = cust.city;
        let r = rng.gen_range(0..sc.riders[city]);
        let partner = partner_id(city, (r % PARTNERS_PER_CITY as u64) as usize);
        let (address, address_short) = if rng.gen_bool(0.2) {
            cust.away
        } else {
            cust.home
        };
        let o = TruthOrder {
            order_id: order_id(created, serial),
            created_at: created,
            city: CITIES[city].name.to_string(),
            name: cust.name,
            phone: cust.phone,
            address,
            address_short,
            merchant_id: format!(
                "M{}{:05}",
                CITIES[city].code,
                rng.gen_range(0..sc.merchants[city])
            ),
            rider_id: rider_id(city, r),
            delivery_partner: partner,
            canary_for: None,
        };
        serial += 1;
        write_order(&mut w, &o, &mut rng).map_err(io)?;
        truth.records += 1;
        let mut leaked = match (&planted, plant) {
            (Some((_, id)), Plant::Rider) => o.rider_id == *id,
            (Some((_, id)), Plant::Partner) => o.delivery_partner == *id,
            _ => false,
        };
        if let Some(a) = access.as_mut() {
            // Background: staff look at about 3% of orders; the planted account exports a
            // third of 广州's orders.
            if rng.gen_bool(0.03) {
                let staff = format!("S{:04}", rng.gen_range(0..STAFF_ACCOUNTS));
                let at = format_time(created + rng.gen_range(600..86_400), false);
                a.write_record([o.order_id.as_str(), "staff", &staff, "view", &at])
                    .map_err(io)?;
            }
            if let Some((_, id)) = &planted
                && city == 2
                && rng.gen_bool(0.33)
            {
                let at = format_time(created + rng.gen_range(600..86_400), false);
                a.write_record([o.order_id.as_str(), "staff", id, "export", &at])
                    .map_err(io)?;
                leaked = true;
            }
        }
        if leaked {
            // Reservoir sampling keeps a uniform sample of the leaked orders in bounded memory.
            pool_seen += 1;
            if truth.pool.len() < POOL_CAP {
                truth.pool.push(o);
            } else {
                let j = rng.gen_range(0..pool_seen);
                if (j as usize) < POOL_CAP {
                    truth.pool[j as usize] = o;
                }
            }
        }
    }
    w.flush().map_err(|e| MatchError::io(path, e))?;
    if let (Some(mut a), Some(p)) = (access, access_path) {
        a.flush().map_err(|e| MatchError::io(p, e))?;
    }
    Ok(truth)
}

fn order_id(created: i64, serial: u64) -> String {
    let (y, m, d, ..) = local_parts(created);
    format!("{y:04}{m:02}{d:02}{:010}", serial % 10_000_000_000)
}

/// Writes one order, with the formatting variety real exports have.
fn write_order<W: Write>(
    w: &mut csv::Writer<W>,
    o: &TruthOrder,
    rng: &mut StdRng,
) -> Result<(), csv::Error> {
    let phone = match rng.gen_range(0..100) {
        0..=2 => format!("+86 {} {} {}", &o.phone[..3], &o.phone[3..7], &o.phone[7..]),
        3..=5 => format!("{}-{}-{}", &o.phone[..3], &o.phone[3..7], &o.phone[7..]),
        _ => o.phone.clone(),
    };
    let created = format_time(o.created_at, rng.gen_bool(0.1));
    w.write_record([
        o.order_id.as_str(),
        &created,
        &o.city,
        &o.name,
        &phone,
        &o.address,
        &o.merchant_id,
        &o.rider_id,
        &o.delivery_partner,
        o.canary_for.as_deref().unwrap_or(""),
    ])
}

fn full_width_digits(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '0'..='9' => char::from_u32(c as u32 + 0xFEE0).unwrap_or(c),
            _ => c,
        })
        .collect()
}

fn typo(rng: &mut StdRng, name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    if chars.len() < 2 {
        return name.to_string();
    }
    // Mostly in the given name, where copying errors land; the surname is too familiar.
    let pos = if rng.gen_bool(0.15) {
        0
    } else {
        rng.gen_range(1..chars.len())
    };
    let c = chars[pos];
    let homophone = HOMOPHONES.iter().find_map(|(a, b)| {
        if *a == c {
            Some(*b)
        } else if *b == c {
            Some(*a)
        } else {
            None
        }
    });
    let lookalike = LOOKALIKES.iter().find_map(|(a, b)| {
        if *a == c {
            Some(*b)
        } else if *b == c {
            Some(*a)
        } else {
            None
        }
    });
    let replacement = match (homophone, lookalike) {
        (Some(h), Some(l)) => {
            if rng.gen_bool(0.5) {
                h
            } else {
                l
            }
        }
        (Some(h), None) => h,
        (None, Some(l)) => l,
        (None, None) => *pick(rng, GIVEN),
    };
    let mut out = chars;
    out[pos] = replacement;
    out.into_iter().collect()
}

/// "Zhang Wei" for 张伟.
fn latin_name(name: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    let chars: Vec<char> = name.chars().collect();
    let split = if chars.len() > 3 { 2 } else { 1 };
    for part in [
        &chars[..split.min(chars.len())],
        &chars[split.min(chars.len())..],
    ] {
        let mut s = String::new();
        for c in part {
            match c.to_pinyin() {
                Some(p) => s.push_str(p.plain()),
                None => s.push(*c),
            }
        }
        let mut cs = s.chars();
        if let Some(f) = cs.next() {
            parts.push(f.to_uppercase().chain(cs).collect());
        }
    }
    parts.join(" ")
}

/// Cuts the address after its last number's predecessor ("…2单元1203室" → "…2单元").
fn truncate_address(a: &str) -> String {
    let chars: Vec<char> = a.chars().collect();
    let mut i = chars.len();
    while i > 0 && !chars[i - 1].is_ascii_digit() {
        i -= 1;
    }
    while i > 0 && chars[i - 1].is_ascii_digit() {
        i -= 1;
    }
    if i < chars.len() / 2 {
        return a.to_string();
    }
    chars[..i].iter().collect()
}

fn masked_display(rng: &mut StdRng, phone: &str) -> String {
    let mask = *pick(rng, &["****", "****", "xxxx", "●●●●"]);
    format!("{}{mask}{}", &phone[..3], &phone[7..])
}

fn phone_display(rng: &mut StdRng, phone: &str) -> String {
    match rng.gen_range(0..10) {
        0 => format!("+86 {}", phone),
        1 => format!("{}-{}-{}", &phone[..3], &phone[3..7], &phone[7..]),
        2 => full_width_digits(phone),
        _ => phone.to_string(),
    }
}

fn sample_time(rng: &mut StdRng, t: i64) -> Option<String> {
    let (y, mo, d, h, mi, _) = local_parts(t);
    match rng.gen_range(0..100) {
        0..=69 => Some(format!("{mo:02}-{d:02} {h:02}:{mi:02}")),
        70..=81 => Some(format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}")),
        _ => None,
    }
}

/// A row for a real order, with noise.
fn noisy_row(rng: &mut StdRng, o: &TruthOrder) -> SampleInput {
    let mut s = SampleInput::default();
    match rng.gen_range(0..100) {
        0..=49 => s.masked_phone = Some(masked_display(rng, &o.phone)),
        50..=94 => s.phone = Some(phone_display(rng, &o.phone)),
        _ => {}
    }
    s.name = match rng.gen_range(0..100) {
        0..=6 => None,
        7..=12 => Some(typo(rng, &o.name)),
        13..=16 => Some(latin_name(&o.name)),
        _ => Some(o.name.clone()),
    };
    s.address = match rng.gen_range(0..100) {
        0..=6 => None,
        7..=16 => Some(o.address_short.clone()),
        17..=21 => Some(truncate_address(&o.address)),
        22..=24 => Some(full_width_digits(&o.address)),
        _ => Some(o.address.clone()),
    };
    if rng.gen_range(0..100) < 3
        && let (Some(n), Some(a)) = (s.name.take(), s.address.as_ref())
    {
        // The extractor glued the name onto the address.
        s.address = Some(format!("{n} {a}"));
    }
    s.order_time = sample_time(rng, o.created_at);
    s
}

/// A decoy: a plausible row that is nobody's order.
fn decoy_row(rng: &mut StdRng) -> SampleInput {
    let phone = format!(
        "{}{:08}",
        pick(rng, PREFIXES),
        rng.gen_range(0..100_000_000u64)
    );
    let city = weighted_city(rng);
    let kind = rng.gen_range(0..5);
    let (address, _) = render_address(rng, city, kind, true);
    let t = START + rng.gen_range(0..DAYS * 86_400);
    let mut s = SampleInput {
        name: Some(random_name(rng)),
        address: Some(address),
        order_time: sample_time(rng, t),
        ..SampleInput::default()
    };
    if rng.gen_bool(0.5) {
        s.masked_phone = Some(masked_display(rng, &phone));
    } else {
        s.phone = Some(phone);
    }
    s
}

/// Draws a seller's sample of `n_rows` rows: about 10% decoys, the planted partner's canaries
/// (up to 3) when a partner leaked, the rest distinct leaked orders with noise; shuffled.
pub fn sample(truth: &Truth, n_rows: usize, seed: u64) -> (Vec<SampleInput>, GroundTruth) {
    let mut rng = rng_for(seed, 4, 0);
    let decoys = n_rows / 10;
    let canary_partner = match &truth.planted {
        Some((kind, id)) if kind == "partner" => Some(id.clone()),
        _ => None,
    };
    let canaries: Vec<&TruthOrder> = truth
        .canaries
        .iter()
        .filter(|c| c.canary_for.is_some() && c.canary_for == canary_partner)
        .take(3)
        .collect();
    let real = n_rows
        .saturating_sub(decoys + canaries.len())
        .min(truth.pool.len());
    let mut idx: Vec<usize> = (0..truth.pool.len()).collect();
    idx.shuffle(&mut rng);
    let mut rows: Vec<(SampleInput, Option<TruthOrder>)> = Vec::with_capacity(n_rows);
    for &i in idx.iter().take(real) {
        let o = &truth.pool[i];
        rows.push((noisy_row(&mut rng, o), Some(o.clone())));
    }
    for c in &canaries {
        // Sellers show canaries like any row: they cannot tell them apart.
        rows.push((noisy_row(&mut rng, c), Some((*c).clone())));
    }
    for _ in 0..decoys {
        rows.push((decoy_row(&mut rng), None));
    }
    rows.shuffle(&mut rng);
    let (inputs, truths): (Vec<SampleInput>, Vec<Option<TruthOrder>>) = rows.into_iter().unzip();
    (
        inputs,
        GroundTruth {
            rows: truths,
            planted: truth.planted.clone(),
            canary_partner: (!canaries.is_empty()).then_some(canary_partner).flatten(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(local_parts(START), (2024, 9, 1, 0, 0, 0));
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(19_782), (2024, 2, 29));
    }

    #[test]
    fn customers_have_distinct_phones() {
        let mut seen = std::collections::HashSet::new();
        for id in 0..20_000 {
            assert!(seen.insert(customer(7, id).phone));
        }
    }

    #[test]
    fn noise_helpers() {
        assert_eq!(latin_name("张伟"), "Zhang Wei");
        assert_eq!(latin_name("欧阳娜娜"), "Ouyang Nana");
        assert_eq!(
            truncate_address("北京市海淀区中关村大街27号院3号楼2单元1203室"),
            "北京市海淀区中关村大街27号院3号楼2单元"
        );
        assert_eq!(full_width_digits("a1"), "a１");
    }
}
