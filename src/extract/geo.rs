//! Built-in place tables: China's provinces, the largest cities (with their provinces), and the
//! parsing of a written address into province / city / district. The tables are small on
//! purpose: they serve recognition of offers ("深圳本地单") and a best-effort split of sample
//! addresses, not a gazetteer.

use regex::Regex;
use std::sync::LazyLock;

use super::normalise::char_at;

/// (full name, short name). Municipalities carry 市, autonomous regions their full title.
pub(crate) const PROVINCES: &[(&str, &str)] = &[
    ("北京市", "北京"),
    ("天津市", "天津"),
    ("上海市", "上海"),
    ("重庆市", "重庆"),
    ("河北省", "河北"),
    ("山西省", "山西"),
    ("辽宁省", "辽宁"),
    ("吉林省", "吉林"),
    ("黑龙江省", "黑龙江"),
    ("江苏省", "江苏"),
    ("浙江省", "浙江"),
    ("安徽省", "安徽"),
    ("福建省", "福建"),
    ("江西省", "江西"),
    ("山东省", "山东"),
    ("河南省", "河南"),
    ("湖北省", "湖北"),
    ("湖南省", "湖南"),
    ("广东省", "广东"),
    ("海南省", "海南"),
    ("四川省", "四川"),
    ("贵州省", "贵州"),
    ("云南省", "云南"),
    ("陕西省", "陕西"),
    ("甘肃省", "甘肃"),
    ("青海省", "青海"),
    ("台湾省", "台湾"),
    ("内蒙古自治区", "内蒙古"),
    ("广西壮族自治区", "广西"),
    ("西藏自治区", "西藏"),
    ("宁夏回族自治区", "宁夏"),
    ("新疆维吾尔自治区", "新疆"),
    ("香港特别行政区", "香港"),
    ("澳门特别行政区", "澳门"),
];

/// Municipalities are both province and city: "北京市海淀区" is 北京市 / 北京市 / 海淀区.
const MUNICIPALITIES: &[&str] = &["北京市", "天津市", "上海市", "重庆市"];

/// The ~75 largest cities by population and economy, as (short name, province full name).
/// 中山 and 吉林 (city) are left out on purpose: as substrings they are far more often a road
/// name (中山路) or the province.
pub(crate) const CITIES: &[(&str, &str)] = &[
    ("北京", "北京市"),
    ("上海", "上海市"),
    ("天津", "天津市"),
    ("重庆", "重庆市"),
    ("广州", "广东省"),
    ("深圳", "广东省"),
    ("东莞", "广东省"),
    ("佛山", "广东省"),
    ("珠海", "广东省"),
    ("惠州", "广东省"),
    ("汕头", "广东省"),
    ("江门", "广东省"),
    ("湛江", "广东省"),
    ("成都", "四川省"),
    ("绵阳", "四川省"),
    ("杭州", "浙江省"),
    ("宁波", "浙江省"),
    ("温州", "浙江省"),
    ("绍兴", "浙江省"),
    ("嘉兴", "浙江省"),
    ("金华", "浙江省"),
    ("台州", "浙江省"),
    ("南京", "江苏省"),
    ("苏州", "江苏省"),
    ("无锡", "江苏省"),
    ("常州", "江苏省"),
    ("南通", "江苏省"),
    ("徐州", "江苏省"),
    ("扬州", "江苏省"),
    ("盐城", "江苏省"),
    ("武汉", "湖北省"),
    ("襄阳", "湖北省"),
    ("宜昌", "湖北省"),
    ("长沙", "湖南省"),
    ("西安", "陕西省"),
    ("郑州", "河南省"),
    ("洛阳", "河南省"),
    ("济南", "山东省"),
    ("青岛", "山东省"),
    ("烟台", "山东省"),
    ("潍坊", "山东省"),
    ("临沂", "山东省"),
    ("淄博", "山东省"),
    ("合肥", "安徽省"),
    ("芜湖", "安徽省"),
    ("福州", "福建省"),
    ("厦门", "福建省"),
    ("泉州", "福建省"),
    ("南昌", "江西省"),
    ("赣州", "江西省"),
    ("沈阳", "辽宁省"),
    ("大连", "辽宁省"),
    ("长春", "吉林省"),
    ("哈尔滨", "黑龙江省"),
    ("大庆", "黑龙江省"),
    ("石家庄", "河北省"),
    ("唐山", "河北省"),
    ("保定", "河北省"),
    ("太原", "山西省"),
    ("呼和浩特", "内蒙古自治区"),
    ("包头", "内蒙古自治区"),
    ("南宁", "广西壮族自治区"),
    ("柳州", "广西壮族自治区"),
    ("昆明", "云南省"),
    ("贵阳", "贵州省"),
    ("遵义", "贵州省"),
    ("海口", "海南省"),
    ("三亚", "海南省"),
    ("兰州", "甘肃省"),
    ("西宁", "青海省"),
    ("银川", "宁夏回族自治区"),
    ("乌鲁木齐", "新疆维吾尔自治区"),
    ("拉萨", "西藏自治区"),
    ("香港", "香港特别行政区"),
    ("澳门", "澳门特别行政区"),
];

/// One alternation of every city name: a single linear pass finds them all.
static CITY_RE: LazyLock<Regex> = LazyLock::new(|| {
    let alts: Vec<String> = CITIES.iter().map(|(c, _)| regex::escape(c)).collect();
    // Built from the constant table above: it cannot fail once the tests pass.
    Regex::new(&alts.join("|")).expect("CITY_RE is built from a constant table")
});

/// After a city name these mean a street named after the city (上海的南京路), not the city.
const ROAD_AFTER: &[&str] = &[
    "路", "街", "大道", "大街", "巷", "东路", "西路", "南路", "北路", "中路",
];

/// City names (short form, as in the table) mentioned in `text`, in order of first mention.
pub(crate) fn find_cities(text: &str, out: &mut Vec<String>, cap: usize) {
    for m in CITY_RE.find_iter(text) {
        if out.len() >= cap {
            return;
        }
        let rest = &text[m.end()..];
        // A trailing 市 is the city itself, even when a road marker follows (北京市路...).
        if !rest.starts_with('市') && ROAD_AFTER.iter().any(|r| rest.starts_with(r)) {
            continue;
        }
        let name = m.as_str();
        if !out.iter().any(|c| c == name) {
            out.push(name.to_string());
        }
    }
}

/// True when `name` is a known province or city name (short or full): such a token is a place,
/// not a person, even when its first character is a common surname (海口, 金华).
pub(crate) fn is_place_name(name: &str) -> bool {
    PROVINCES.iter().any(|(f, s)| *f == name || *s == name)
        || CITIES
            .iter()
            .any(|(c, _)| *c == name || name.strip_suffix('市') == Some(*c))
}

/// True when `s` starts with a province or city name: a strong sign of an address.
pub(crate) fn starts_with_place(s: &str) -> bool {
    PROVINCES.iter().any(|(_, short)| s.starts_with(short))
        || CITIES.iter().any(|(c, _)| s.starts_with(c))
}

/// Suffixes that end a residential or institutional area, never an administrative district.
const NOT_DISTRICT: &[&str] = &[
    "小区",
    "社区",
    "园区",
    "校区",
    "厂区",
    "景区",
    "院区",
    "街区",
    "商区",
    "营区",
    "病区",
    "住院区",
];

/// Suffixes that end a shop, never a city.
const NOT_CITY: &[&str] = &["超市", "菜市", "街市", "集市", "夜市"];

/// Splits an address into (province, city, district) where the written form allows it:
/// "北京市海淀区..." -> 北京市 / 北京市 / 海淀区, "广东省深圳市南山区..." -> 广东省 / 深圳市 / 南山区,
/// "深圳市南山区..." -> 广东省 / 深圳市 / 南山区 (province from the city table).
pub(crate) fn parse_region(address: &str) -> (Option<String>, Option<String>, Option<String>) {
    let mut rest = address.trim_start();
    let mut province: Option<&str> = None;
    let mut city: Option<String> = None;

    for (full, short) in PROVINCES {
        if let Some(r) = rest.strip_prefix(full) {
            province = Some(full);
            rest = r.trim_start();
            break;
        }
        if let Some(r) = rest.strip_prefix(short) {
            province = Some(full);
            rest = r.strip_prefix('省').unwrap_or(r).trim_start();
            break;
        }
    }

    if let Some(p) = province.filter(|p| MUNICIPALITIES.contains(p)) {
        city = Some(p.to_string());
        // "北京市北京市海淀区" and "上海上海市" appear in careless exports.
        let short = p.trim_end_matches('市');
        if let Some(r) = rest.strip_prefix(p).or_else(|| rest.strip_prefix(short)) {
            rest = r.strip_prefix('市').unwrap_or(r);
        }
        rest = rest.trim_start();
    } else {
        for (short, prov) in CITIES {
            if let Some(r) = rest.strip_prefix(short) {
                city = Some(format!("{short}市"));
                rest = r.strip_prefix('市').unwrap_or(r).trim_start();
                if province.is_none() {
                    province = Some(prov);
                }
                break;
            }
        }
        if city.is_none() && province.is_some() {
            // A city outside the table: "X市", "X自治州", "X地区" or "X盟" right after the province.
            if let Some((c, r)) = leading_unit(rest, &["自治州", "地区", "市", "盟"], 2, 6)
                && !NOT_CITY.iter().any(|s| c.ends_with(s))
            {
                city = Some(c.to_string());
                rest = r.trim_start();
            }
        }
    }

    let mut district = None;
    let units: &[&str] = if city.is_some() {
        &["区", "县", "旗", "市"]
    } else {
        &["区", "县", "旗"]
    };
    if let Some((d, _)) = leading_unit(rest, units, 2, 7)
        && !NOT_DISTRICT.iter().any(|s| d.ends_with(s))
    {
        district = Some(d.to_string());
    }
    (province.map(str::to_string), city, district)
}

/// The leading run of Han characters of `s` that ends at the first of `units`, when that run
/// (unit included) has between `min` and `max` characters. Returns (unit text, rest of `s`).
fn leading_unit<'a>(
    s: &'a str,
    units: &[&str],
    min: usize,
    max: usize,
) -> Option<(&'a str, &'a str)> {
    let mut chars = 0;
    let mut i = 0;
    while chars < max {
        let c = char_at(s, i)?;
        if !super::normalise::is_han(c) {
            return None;
        }
        // Only a unit after at least one name character ends the run ("区" alone is nothing).
        if chars >= 1 {
            for u in units {
                if s[i..].starts_with(u) {
                    let end = i + u.len();
                    let n = chars + u.chars().count();
                    if n >= min && n <= max {
                        return Some((&s[..end], &s[end..]));
                    }
                }
            }
        }
        chars += 1;
        i += c.len_utf8();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(a: &str) -> (Option<String>, Option<String>, Option<String>) {
        parse_region(a)
    }

    fn some(p: &str, c: &str, d: &str) -> (Option<String>, Option<String>, Option<String>) {
        let f = |s: &str| (!s.is_empty()).then(|| s.to_string());
        (f(p), f(c), f(d))
    }

    #[test]
    fn regions_parse() {
        assert_eq!(
            region("北京市海淀区第一人民医院住院部3楼12病房"),
            some("北京市", "北京市", "海淀区")
        );
        assert_eq!(
            region("上海市浦东新区如家酒店501房"),
            some("上海市", "上海市", "浦东新区")
        );
        assert_eq!(
            region("广东省深圳市南山区网鱼网咖12号机"),
            some("广东省", "深圳市", "南山区")
        );
        assert_eq!(
            region("浙江省杭州市西湖区阳光小区5栋302室"),
            some("浙江省", "杭州市", "西湖区")
        );
        assert_eq!(
            region("深圳市福田区华强北"),
            some("广东省", "深圳市", "福田区")
        );
        assert_eq!(
            region("四川成都高新区天府三街"),
            some("四川省", "成都市", "高新区")
        );
        assert_eq!(
            region("江苏省苏州市昆山市花桥镇"),
            some("江苏省", "苏州市", "昆山市")
        );
        assert_eq!(
            region("湖南省岳阳市岳阳楼区"),
            some("湖南省", "岳阳市", "岳阳楼区")
        );
        assert_eq!(region("杭州市阳光小区5栋"), some("浙江省", "杭州市", ""));
        assert_eq!(region("北京海淀区"), some("北京市", "北京市", "海淀区"));
        assert_eq!(region("阳光小区5栋302室"), some("", "", ""));
        assert_eq!(region(""), some("", "", ""));
        assert_eq!(region("广东省沃尔玛超市"), some("广东省", "", ""));
    }

    #[test]
    fn cities_found_in_order_without_street_names() {
        let mut out = Vec::new();
        find_cities("深圳本地单 上海南京路 杭州、深圳、北京市", &mut out, 16);
        assert_eq!(out, ["深圳", "上海", "杭州", "北京"]);
        assert!(is_place_name("海口"));
        assert!(is_place_name("金华市"));
        assert!(!is_place_name("张伟"));
    }
}
