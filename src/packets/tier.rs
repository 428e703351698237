//! Severity tier under 《刑法》第二百五十三条之一 (侵犯公民个人信息罪) as quantified by
//! 法释〔2017〕10号, 《最高人民法院、最高人民检察院关于办理侵犯公民个人信息刑事案件适用法律
//! 若干问题的解释》 (in force 2017-06-01).
//!
//! The quantity rules used here, from 第五条:
//! * 第一款第三项: 行踪轨迹信息、通信内容、征信信息、财产信息 — 五十条以上 is "情节严重";
//! * 第一款第四项: 住宿信息、通信记录、健康生理信息、交易信息等其他可能影响人身、财产安全的
//!   公民个人信息 — 五百条以上;
//! * 第一款第五项: 第三项、第四项规定以外的公民个人信息 — 五千条以上;
//! * 第一款第八项: 将在履行职责或者提供服务过程中获得的公民个人信息出售或者提供给他人,
//!   数量或者数额达到第三项至第七项规定标准一半以上的 — the insider halving (it is item 8 of
//!   article 5, not article 6: 第六条 is the separate, lenient rule for buying ordinary data
//!   for a lawful business, which does not fit sellers in a chat group);
//! * 第二款第三项: "情节特别严重" when 数量或者数额达到前款第三项至第八项规定标准十倍以上 —
//!   so the tenfold applies to the halved insider standard as well.
//!
//! "以上" includes the number itself (《刑法》第九十九条: 本法所称以上、以下、以内,包括本数),
//! hence every comparison below is `>=`.
//!
//! Which category delivery data falls in is a legal judgement, so it is an explicit input.
//! Name + phone + delivery address is, on the plain wording, "其他公民个人信息" (item 5,
//! 5,000 records): it is neither 行踪轨迹 (real-time location) nor, by itself, a record of a
//! transaction. An order history (what was bought, when, for how much) can be argued to be
//! 交易信息 (item 4, 500 records), and some courts have treated parcel/delivery-label data
//! as information that "可能影响人身、财产安全". The default is therefore
//! [`DataCategory::Other`]: it never overstates the tier; the caller may choose
//! [`DataCategory::Transaction`] when the sold rows carry order details and the receiving
//! prosecutor's practice supports it. 第五条第一款第六项 (mixed categories added up
//! proportionally) is not modelled: one finding is assessed under one category.
//!
//! Sources read: the text of 第五条 as reproduced at lawtime.cn/tuwen/124019.html,
//! gudianfeng.com/new/zs6389922.html and flkpz.com (第二款), and the 最高法 commentary at
//! 64365.com/ask/4829005.aspx ("减半计算", "五百条/五千条/五万条" for 情节特别严重).

use serde::{Deserialize, Serialize};

/// Which quantity standard of 法释〔2017〕10号 第五条第一款 the records fall under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataCategory {
    /// 第三项: 行踪轨迹信息、通信内容、征信信息、财产信息 — 50 records.
    Sensitive,
    /// 第四项: 住宿信息、通信记录、健康生理信息、交易信息等 — 500 records.
    Transaction,
    /// 第五项: other personal information (name + phone + address) — 5,000 records.
    #[default]
    Other,
}

impl DataCategory {
    /// The 第五条第一款 standard (records) for a non-insider.
    pub fn base_threshold(self) -> u64 {
        match self {
            DataCategory::Sensitive => 50,
            DataCategory::Transaction => 500,
            DataCategory::Other => 5_000,
        }
    }

    /// Item of 第五条第一款 that defines the category.
    pub fn item_zh(self) -> &'static str {
        match self {
            DataCategory::Sensitive => "第五条第一款第三项",
            DataCategory::Transaction => "第五条第一款第四项",
            DataCategory::Other => "第五条第一款第五项",
        }
    }

    /// Short Chinese description of the category.
    pub fn label_zh(self) -> &'static str {
        match self {
            DataCategory::Sensitive => "行踪轨迹信息、通信内容、征信信息、财产信息",
            DataCategory::Transaction => "住宿信息、通信记录、健康生理信息、交易信息等",
            DataCategory::Other => "第三项、第四项规定以外的其他公民个人信息",
        }
    }
}

/// Which threshold was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TierLevel {
    /// Below the "情节严重" quantity standard.
    BelowThreshold,
    /// 情节严重: 三年以下有期徒刑或者拘役 (《刑法》第二百五十三条之一第一款).
    Serious,
    /// 情节特别严重: 三年以上七年以下有期徒刑.
    EspeciallySerious,
}

impl TierLevel {
    /// The statutory wording.
    pub fn label_zh(self) -> &'static str {
        match self {
            TierLevel::BelowThreshold => "未达到“情节严重”数量标准",
            TierLevel::Serious => "情节严重",
            TierLevel::EspeciallySerious => "情节特别严重",
        }
    }
}

/// Result of [`severity_tier`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    pub level: TierLevel,
    pub records: u64,
    pub category: DataCategory,
    pub insider: bool,
    /// Records needed for 情节严重 as applied (halved for insiders).
    pub serious_threshold: u64,
    /// Records needed for 情节特别严重 as applied (ten times `serious_threshold`).
    pub especially_serious_threshold: u64,
    /// One line of Chinese citing the articles applied.
    pub explanation_zh: String,
}

/// Classifies `records` of `category` under 法释〔2017〕10号 第五条; `insider` applies the
/// halving of 第五条第一款第八项.
pub fn severity_tier(records: u64, category: DataCategory, insider: bool) -> Tier {
    let base = category.base_threshold();
    // Item 8 says "一半以上"; every base standard is even, so the half is exact.
    let serious_threshold = if insider { base / 2 } else { base };
    let especially_serious_threshold = serious_threshold.saturating_mul(10);
    let level = if records >= especially_serious_threshold {
        TierLevel::EspeciallySerious
    } else if records >= serious_threshold {
        TierLevel::Serious
    } else {
        TierLevel::BelowThreshold
    };
    let basis = if insider {
        format!(
            "法释〔2017〕10号{}、第五条第一款第八项(履职或提供服务中获得,标准减半)",
            category.item_zh()
        )
    } else {
        format!("法释〔2017〕10号{}", category.item_zh())
    };
    let explanation_zh = match level {
        TierLevel::BelowThreshold => format!(
            "涉及{}条“{}”,未达到{}规定的“情节严重”标准{}条。",
            group_digits(records),
            category.label_zh(),
            basis,
            group_digits(serious_threshold)
        ),
        TierLevel::Serious => format!(
            "涉及{}条“{}”,达到{}规定的“情节严重”标准{}条,未达到第五条第二款第三项“情节特别严重”标准{}条。",
            group_digits(records),
            category.label_zh(),
            basis,
            group_digits(serious_threshold),
            group_digits(especially_serious_threshold)
        ),
        TierLevel::EspeciallySerious => format!(
            "涉及{}条“{}”,达到法释〔2017〕10号第五条第二款第三项规定的“情节特别严重”标准{}条(即{}所定标准{}条的十倍)。",
            group_digits(records),
            category.label_zh(),
            group_digits(especially_serious_threshold),
            basis,
            group_digits(serious_threshold)
        ),
    };
    Tier {
        level,
        records,
        category,
        insider,
        serious_threshold,
        especially_serious_threshold,
        explanation_zh,
    }
}

/// `12345` → `"12,345"`; the documents use grouped digits so counts are read right.
pub(crate) fn group_digits(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(records: u64, category: DataCategory, insider: bool) -> TierLevel {
        severity_tier(records, category, insider).level
    }

    #[test]
    fn thresholds_for_each_category_just_below_at_and_above() {
        use TierLevel::*;
        for (category, serious) in [
            (DataCategory::Sensitive, 50u64),
            (DataCategory::Transaction, 500),
            (DataCategory::Other, 5_000),
        ] {
            let especially = serious * 10;
            assert_eq!(level(0, category, false), BelowThreshold);
            assert_eq!(level(serious - 1, category, false), BelowThreshold);
            assert_eq!(level(serious, category, false), Serious);
            assert_eq!(level(serious + 1, category, false), Serious);
            assert_eq!(level(especially - 1, category, false), Serious);
            assert_eq!(level(especially, category, false), EspeciallySerious);
            assert_eq!(level(especially + 1, category, false), EspeciallySerious);
            let t = severity_tier(serious, category, false);
            assert_eq!(t.serious_threshold, serious);
            assert_eq!(t.especially_serious_threshold, especially);
        }
    }

    #[test]
    fn insider_thresholds_are_halved_including_the_tenfold_level() {
        use TierLevel::*;
        for (category, serious) in [
            (DataCategory::Sensitive, 25u64),
            (DataCategory::Transaction, 250),
            (DataCategory::Other, 2_500),
        ] {
            let especially = serious * 10;
            assert_eq!(level(serious - 1, category, true), BelowThreshold);
            assert_eq!(level(serious, category, true), Serious);
            assert_eq!(level(serious + 1, category, true), Serious);
            assert_eq!(level(especially - 1, category, true), Serious);
            assert_eq!(level(especially, category, true), EspeciallySerious);
            assert_eq!(level(especially + 1, category, true), EspeciallySerious);
            let t = severity_tier(0, category, true);
            assert_eq!(
                (t.serious_threshold, t.especially_serious_threshold),
                (serious, especially)
            );
        }
        // The same count can be below the standard for an outsider yet serious for an insider.
        assert_eq!(level(2_600, DataCategory::Other, false), BelowThreshold);
        assert_eq!(level(2_600, DataCategory::Other, true), Serious);
    }

    #[test]
    fn explanation_cites_the_applied_articles() {
        let t = severity_tier(5_000, DataCategory::Other, false);
        assert!(
            t.explanation_zh.contains("情节严重"),
            "{}",
            t.explanation_zh
        );
        assert!(t.explanation_zh.contains("第五条第一款第五项"));
        assert!(t.explanation_zh.contains("5,000"));
        assert!(!t.explanation_zh.contains('\n'));
        let t = severity_tier(25_000, DataCategory::Other, true);
        assert!(t.explanation_zh.contains("情节特别严重"));
        assert!(t.explanation_zh.contains("第五条第一款第八项"));
        assert!(t.explanation_zh.contains("第五条第二款第三项"));
        let t = severity_tier(49, DataCategory::Sensitive, false);
        assert!(t.explanation_zh.contains("未达到"));
        assert!(t.explanation_zh.contains("第五条第一款第三项"));
    }

    #[test]
    fn extreme_counts_do_not_overflow() {
        let t = severity_tier(u64::MAX, DataCategory::Other, false);
        assert_eq!(t.level, TierLevel::EspeciallySerious);
        assert_eq!(group_digits(1_234_567), "1,234,567");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(0), "0");
    }

    #[test]
    fn default_category_is_other() {
        assert_eq!(DataCategory::default(), DataCategory::Other);
    }
}
