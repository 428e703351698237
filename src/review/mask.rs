//! Masking of sample rows for screens: enough for a moderator to judge a sample (is it a
//! delivery address, a hospital ward, a plausible mobile number?) and nothing that identifies
//! the customer. The rule: name → family name + `*` per further character; phone → first 3 and
//! last 4 digits; address → cut after the district.

use serde::Serialize;

use crate::extract::SampleRow;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MaskedRow {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
    pub order_time: Option<String>,
}

/// `张伟` → `张*`, `欧阳娜娜` → `欧***`, `Zhang Wei` → `Z********`.
pub fn mask_name(name: &str) -> String {
    let mut chars = name.trim().chars();
    match chars.next() {
        Some(first) => {
            let rest = chars.count().max(1);
            format!("{first}{}", "*".repeat(rest))
        }
        None => String::new(),
    }
}

/// `13812345678` → `138****5678`; a number already masked keeps its shape; anything shorter
/// than 7 digits becomes all stars.
pub fn mask_phone(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().filter(|c| c.is_ascii_digit()).collect();
    if phone.contains('*') && digits.len() <= 7 {
        let head: String = digits.iter().take(3).collect();
        let tail: String = digits.iter().skip(3).collect();
        return format!("{head}****{tail}");
    }
    if digits.len() < 7 {
        return "*".repeat(digits.len().max(4));
    }
    let head: String = digits[..3].iter().collect();
    let tail: String = digits[digits.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

/// The address cut after the district (`广东省深圳市南山区…`); without a parsed district,
/// the city, else nothing but a mark that there was one.
pub fn mask_address(row: &SampleRow) -> Option<String> {
    row.address.as_ref()?;
    let parts: Vec<&str> = [&row.province, &row.city, &row.district]
        .iter()
        .filter_map(|p| p.as_deref())
        .filter(|p| !p.is_empty())
        .collect();
    let mut out = String::new();
    for p in parts {
        if !out.ends_with(p) {
            out.push_str(p);
        }
    }
    out.push('…');
    Some(out)
}

pub fn mask_row(row: &SampleRow) -> MaskedRow {
    let phone = row
        .phone
        .as_deref()
        .or(row.masked_phone.as_deref())
        .map(mask_phone);
    MaskedRow {
        name: row.name.as_deref().map(mask_name),
        phone,
        address: mask_address(row),
        order_time: row.order_time.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_only_the_family_name() {
        assert_eq!(mask_name("张伟"), "张*");
        assert_eq!(mask_name(" 欧阳娜娜 "), "欧***");
        assert_eq!(mask_name("李"), "李*");
        assert_eq!(mask_name(""), "");
    }

    #[test]
    fn phones_keep_three_and_four_digits() {
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(mask_phone("138****5678"), "138****5678");
        assert_eq!(mask_phone("123"), "****");
    }

    #[test]
    fn addresses_stop_at_the_district() {
        let row = SampleRow {
            name: Some("张伟".into()),
            phone: Some("13812345678".into()),
            address: Some("广东省深圳市南山区科技园南区8栋1203".into()),
            province: Some("广东省".into()),
            city: Some("深圳市".into()),
            district: Some("南山区".into()),
            ..SampleRow::default()
        };
        let m = mask_row(&row);
        assert_eq!(m.address.as_deref(), Some("广东省深圳市南山区…"));
        assert_eq!(m.name.as_deref(), Some("张*"));
        assert_eq!(m.phone.as_deref(), Some("138****5678"));
        let shown = serde_json::to_string(&m).unwrap();
        assert!(
            !shown.contains("科技园") && !shown.contains("12345678") && !shown.contains("张伟")
        );
    }
}
