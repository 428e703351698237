//! Redaction of victims' personal information from packets that leave for parties with
//! no legal need for it (the chat platform, regulators, the individuals themselves).
//!
//! 《个人信息保护法》第六条 requires processing to be limited to the minimum necessary
//! (最小必要): a takedown request needs counts, not the rows. The builders already never
//! copy `sample_rows`, but free text (timeline notes, evidence descriptions, offer text)
//! comes from moderators and captures and may quote a row. So every string that goes into
//! a non-police file is passed through a [`Scrubber`] holding the exact sample values, and
//! through a mainland mobile-number pattern mask as a second line of defence.

use serde_json::Value;

use super::model::SampleRowFull;

/// What replaces a redacted value.
pub(crate) const REDACTED: &str = "[已遮蔽]";

/// JSON keys whose values are exempt (see the module comment): digests, encodings and
/// timestamps written by this module, the reporter's own details, and identifiers.
const EXEMPT_KEYS: &[&str] = &[
    "hash",
    "payload",
    "sha256",
    "evidence_sha256",
    "bundle_sha256",
    "checkpoint_root",
    "report_id",
    "timestamp",
    "generated_at",
    "posted_at",
    "xarf_version",
    "reporter",
    "sender",
    "processor",
    "contact",
    "affected_organization",
    "url",
    "source_identifier",
    "group_link",
    "group_id",
    "account_id",
    "seller_id",
    "handle",
    "packet_id",
    "finding_id",
    "case_id",
];

/// Exact-match redactor built from the sample rows.
pub(crate) struct Scrubber {
    /// Needles, longest first so that an address is removed before a name inside it.
    needles: Vec<String>,
}

impl Scrubber {
    pub(crate) fn from_rows(rows: &[SampleRowFull]) -> Scrubber {
        let mut needles = Vec::new();
        for r in rows {
            push_needle(&mut needles, &r.name, 2);
            push_needle(&mut needles, &r.address, 4);
            push_needle(&mut needles, &r.phone, 5);
            // Phones are often written with spaces or dashes; also match the bare digits.
            let digits: String = r.phone.chars().filter(|c| c.is_ascii_digit()).collect();
            push_needle(&mut needles, &digits, 5);
        }
        needles.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        needles.dedup();
        Scrubber { needles }
    }

    /// Redacts every needle. Used on whole documents and on identifiers, where a
    /// number-shaped pattern must not be touched (a Telegram user id can be 11 digits).
    pub(crate) fn clean(&self, s: &str) -> String {
        let mut out = s.to_string();
        for n in &self.needles {
            if out.contains(n.as_str()) {
                out = out.replace(n.as_str(), REDACTED);
            }
        }
        out
    }

    /// For free text taken from the input (notes, descriptions, names of groups): the
    /// needles, then any remaining mainland mobile number.
    pub(crate) fn free_text(&self, s: &str) -> String {
        mask_mobile_numbers(&self.clean(s))
    }

    /// Cleans the string values of a JSON document in place, except under
    /// [`EXEMPT_KEYS`] (redacting a coincidental match inside a digest or an e-mail
    /// address would only corrupt it).
    pub(crate) fn clean_json(&self, v: &mut Value) {
        match v {
            Value::String(s) => {
                let cleaned = self.clean(s);
                if cleaned != *s {
                    *s = cleaned;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| self.clean_json(i)),
            Value::Object(map) => {
                for (k, i) in map.iter_mut() {
                    if !EXEMPT_KEYS.contains(&k.as_str()) {
                        self.clean_json(i);
                    }
                }
            }
            _ => {}
        }
    }

    /// First needle found in `bytes`, if any: the final self-check before a file leaves.
    pub(crate) fn leaked_in(&self, bytes: &[u8]) -> Option<&str> {
        self.needles
            .iter()
            .find(|n| contains_bytes(bytes, n.as_bytes()))
            .map(|n| n.as_str())
    }

    /// [`Scrubber::leaked_in`] over a JSON document's string values outside
    /// [`EXEMPT_KEYS`]. Keys are fixed ASCII field names written by this module, so they
    /// are not searched: a sample value such as "name" must not fail a correct document.
    pub(crate) fn leaked_in_json(&self, v: &Value) -> Option<&str> {
        match v {
            Value::String(s) => self.leaked_in(s.as_bytes()),
            Value::Array(items) => items.iter().find_map(|i| self.leaked_in_json(i)),
            Value::Object(map) => map
                .iter()
                .filter(|(k, _)| !EXEMPT_KEYS.contains(&k.as_str()))
                .find_map(|(_, i)| self.leaked_in_json(i)),
            _ => None,
        }
    }
}

impl Scrubber {
    /// [`Scrubber::clean`] over a whole text except the `exempt` values, which are set
    /// aside behind private-use placeholders and put back unchanged.
    pub(crate) fn clean_outside(&self, text: &str, exempt: &[&str]) -> String {
        let exempt = sorted_exempt(exempt);
        let mut protected = text.to_string();
        for (i, e) in exempt.iter().enumerate() {
            protected = protected.replace(e, &placeholder(i));
        }
        let mut out = self.clean(&protected);
        for (i, e) in exempt.iter().enumerate() {
            out = out.replace(&placeholder(i), e);
        }
        out
    }

    /// [`Scrubber::leaked_in`] over a text with the `exempt` values cut out first.
    pub(crate) fn leaked_outside(&self, text: &str, exempt: &[&str]) -> Option<&str> {
        let mut rest = text.to_string();
        for e in sorted_exempt(exempt) {
            rest = rest.replace(e, "\n");
        }
        self.needles
            .iter()
            .find(|n| rest.contains(n.as_str()))
            .map(|n| n.as_str())
    }
}

/// Non-empty exempt values, longest first so that a value containing another is kept whole.
fn sorted_exempt<'a>(exempt: &[&'a str]) -> Vec<&'a str> {
    let mut v: Vec<&str> = exempt
        .iter()
        .map(|e| e.trim())
        .filter(|e| !e.is_empty())
        .collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.len()));
    v.dedup();
    v
}

/// Private-use characters (U+E000–U+F8FF) never occur in names, phones or addresses.
fn placeholder(i: usize) -> String {
    format!("\u{E000}{i}\u{E001}")
}

fn push_needle(needles: &mut Vec<String>, value: &str, min_chars: usize) {
    let v = value.trim();
    let chars = v.chars().count();
    let digits = v.chars().filter(char::is_ascii_digit).count();
    // Short or generic values would redact ordinary words and numbers everywhere: a
    // one-character name, a Latin "Li" inside "Delivery", "14" inside a count. A value made
    // of digits and separators needs phone length; an ASCII one at least four characters.
    let specific = if v
        .chars()
        .all(|c| c.is_ascii_digit() || c.is_ascii_punctuation() || c == ' ')
    {
        digits >= 7
    } else if v.is_ascii() {
        chars >= min_chars.max(4)
    } else {
        chars >= min_chars
    };
    if specific {
        needles.push(v.to_string());
    }
}

fn contains_bytes(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Replaces any standalone run of exactly 11 ASCII digits shaped like a mainland mobile
/// number (1[3-9]xxxxxxxxx, per the MIIT numbering plan) with `[已遮蔽手机号]`.
/// Longer digit runs (order numbers, hashes) are left alone.
pub(crate) fn mask_mobile_numbers(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let run = &chars[start..i];
            let before_ok = start == 0 || !chars[start - 1].is_ascii_alphanumeric();
            let after_ok = i == chars.len() || !chars[i].is_ascii_alphanumeric();
            if run.len() == 11
                && run[0] == '1'
                && ('3'..='9').contains(&run[1])
                && before_ok
                && after_ok
            {
                out.push_str("[已遮蔽手机号]");
            } else {
                out.extend(run.iter());
            }
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// `13812345678` → `138****5678`, the masking used when a phone must be referred to.
#[cfg(test)]
pub(crate) fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() < 7 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, phone: &str, address: &str) -> SampleRowFull {
        SampleRowFull {
            name: name.into(),
            phone: phone.into(),
            masked_phone: mask_phone(phone),
            address: address.into(),
            order_time: None,
        }
    }

    #[test]
    fn scrubs_exact_values_and_stray_mobile_numbers() {
        let s = Scrubber::from_rows(&[row("王小明", "139 0000 1111", "上海市浦东新区世纪大道1号")]);
        let text = "客户王小明(13900001111)住上海市浦东新区世纪大道1号;另见 13712345678 与订单 202405011234567890";
        let cleaned = s.free_text(text);
        assert!(!cleaned.contains("王小明"));
        assert!(!cleaned.contains("13900001111"));
        assert!(!cleaned.contains("世纪大道"));
        assert!(!cleaned.contains("13712345678"));
        assert!(
            cleaned.contains("202405011234567890"),
            "long ids stay: {cleaned}"
        );
        assert!(s.leaked_in(cleaned.as_bytes()).is_none());
        assert_eq!(s.leaked_in("x王小明".as_bytes()), Some("王小明"));
    }

    #[test]
    fn json_strings_are_cleaned_but_keys_kept() {
        let s = Scrubber::from_rows(&[row("李雷", "13800138000", "北京市海淀区中关村")]);
        let mut v = serde_json::json!({"note": ["李雷 13800138000"], "李雷": 1, "hash": "李雷"});
        s.clean_json(&mut v);
        assert_eq!(v["note"][0], format!("{REDACTED} {REDACTED}"));
        assert!(v.get("李雷").is_some());
        assert_eq!(v["hash"], "李雷", "structural values are left alone");
        assert!(s.leaked_in_json(&v).is_none());
        assert!(
            s.leaked_outside("mail 李雷@example.com", &["李雷@example.com"])
                .is_none()
        );
        assert_eq!(s.leaked_outside("李雷 mail", &["mail"]), Some("李雷"));
        assert_eq!(
            s.clean_outside("李雷 李雷@example.com", &["李雷@example.com"]),
            format!("{REDACTED} 李雷@example.com")
        );
        // Identifiers keep number-shaped content; free text does not.
        assert_eq!(s.clean("13712345678"), "13712345678");
        assert_eq!(s.free_text("13712345678"), "[已遮蔽手机号]");
    }

    #[test]
    fn generic_values_are_not_needles() {
        let s = Scrubber::from_rows(&[row("14", "12-34", "Li"), row("Li", "", "2024-04")]);
        assert_eq!(
            s.clean("Delivery 14 items, 2024-04"),
            "Delivery 14 items, 2024-04"
        );
        let s = Scrubber::from_rows(&[row("Wang Fang", "", "")]);
        assert_eq!(s.clean("Wang Fang"), REDACTED);
    }

    #[test]
    fn masks_phone_for_display() {
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(mask_phone("123"), "***");
    }
}
