//! Breach-notice packet: `breach-notice.json` (for the department performing personal
//! information protection duties) and `breach-notice.txt` (Chinese, for individuals).
//!
//! 《中华人民共和国个人信息保护法》第五十七条第一款: on a (possible) leak the processor must
//! take remedial measures at once and notify the department and the individuals; the
//! notice must contain (一) 信息种类、原因和可能造成的危害, (二) 采取的补救措施和个人可以
//! 采取的减轻危害的措施, (三) 个人信息处理者的联系方式. 第二款 lets the processor skip
//! notifying individuals only where its measures effectively avoid harm — data already
//! being sold cannot be recalled, so `notify_individuals` is always true here and the
//! reason is recorded. Text of art. 57 read at personalinformationprotectionlaw.com
//! (PIPL/article-57) and ahdhf.com/law/twsy/15115.html (条文主旨与理解).
//!
//! The remedial measures are worded as done ("已…") because this packet is built from the
//! same approval as the takedown and police packets; the caller sends it after those two.
//!
//! The notice carries no sample rows and no suspect identifiers (those are personal
//! information of the suspects, and the investigation is the police's); strings are
//! scrubbed against the sample rows like the takedown packet.

use serde_json::{Value, json};

use super::common::{self, beijing_time_opt, join_or_none, rfc3339};
use super::model::{ActorKind, PacketInput, Platform};
use super::scrub::Scrubber;
use super::tier::group_digits;
use super::{PACKET_VERSION, PacketError, PacketFile};

/// Keys of `breach-notice.json` that carry the 第五十七条 items, in article order.
pub(crate) const ART57_KEYS: [&str; 6] = [
    "information_types",
    "cause",
    "possible_harm",
    "remedial_measures",
    "individual_measures",
    "contact",
];

pub(crate) fn build(
    input: &PacketInput,
    platform: Platform,
    packet_id: &str,
) -> Result<Vec<PacketFile>, PacketError> {
    let scrubber = Scrubber::from_rows(&input.sample_rows);
    let notice = Notice::from_input(input, platform);
    let mut json = notice.to_json(input, packet_id);
    scrubber.clean_json(&mut json);
    // Every item 第五十七条 lists must be present and non-empty in what is sent.
    for key in ART57_KEYS {
        let present = match json.get(key) {
            Some(Value::String(s)) => !s.trim().is_empty(),
            Some(Value::Array(a)) => !a.is_empty(),
            Some(Value::Object(o)) => !o.is_empty(),
            _ => false,
        };
        if !present {
            return Err(PacketError::Internal(format!("breach notice lacks {key}")));
        }
    }
    if scrubber.leaked_in_json(&json).is_some() {
        return Err(PacketError::Internal(
            "breach-notice.json still contains a sample value".into(),
        ));
    }
    let mut json_bytes = serde_json::to_vec_pretty(&json)?;
    json_bytes.push(b'\n');
    // The text is made of this module's wording, counts and the reporter's details only;
    // it is cleaned anyway so that no coincidence can slip through.
    let r = &input.reporter;
    let exempt = [
        r.org_name_zh.as_str(),
        r.contact_email.as_str(),
        r.phone.as_str(),
        r.address.as_str(),
        packet_id,
    ];
    let text = scrubber.clean_outside(&notice.to_text(input, packet_id), &exempt);
    if scrubber.leaked_outside(&text, &exempt).is_some() {
        return Err(PacketError::Internal(
            "breach-notice.txt still contains a sample value".into(),
        ));
    }
    Ok(vec![
        common::file("breach-notice.json", "application/json", json_bytes),
        common::file(
            "breach-notice.txt",
            "text/plain; charset=utf-8",
            text.into_bytes(),
        ),
    ])
}

/// The article 57 content, assembled once for both renderings.
struct Notice {
    information_types: Vec<String>,
    cause: String,
    possible_harm: Vec<String>,
    remedial_measures: Vec<String>,
    individual_measures: Vec<String>,
}

impl Notice {
    fn from_input(input: &PacketInput, platform: Platform) -> Notice {
        let v = &input.verified;
        let information_types = if v.data_types.is_empty() {
            vec![
                "姓名".to_string(),
                "手机号".to_string(),
                "收货地址".to_string(),
            ]
        } else {
            v.data_types.clone()
        };
        let has_address = information_types.iter().any(|t| t.contains("地址"));
        let has_phone = information_types
            .iter()
            .any(|t| t.contains("手机") || t.contains("电话"));

        let mut kinds: Vec<(ActorKind, usize)> = Vec::new();
        for s in &input.suspects {
            match kinds.iter_mut().find(|(k, _)| *k == s.actor_kind) {
                Some((_, n)) => *n += 1,
                None => kinds.push((s.actor_kind, 1)),
            }
        }
        let source = if kinds.is_empty() {
            "泄露途径正在调查中。".to_string()
        } else {
            format!(
                "初步分析显示泄露可能与{}的数据访问有关,具体途径正在调查,并已报请公安机关侦查。",
                kinds
                    .iter()
                    .map(|(k, n)| format!("{}名{}", n, k.label_zh()))
                    .collect::<Vec<_>>()
                    .join("、")
            )
        };
        let cause = format!(
            "我们在{}群组中发现有人出售外卖订单中的用户个人信息。经与订单记录比对,出售样本中{}条属实,涉及{}名用户、{}笔订单(下单时间{}至{})。{}",
            platform.name_zh(),
            group_digits(v.rows_matched),
            group_digits(v.distinct_customers),
            group_digits(v.distinct_orders),
            beijing_time_opt(v.first_order_at.as_ref()),
            beijing_time_opt(v.last_order_at.as_ref()),
            source
        );

        let mut possible_harm = vec![
            "冒充外卖平台、商家、骑手或客服,以退款、理赔、订单异常等名义实施电信网络诈骗"
                .to_string(),
        ];
        if has_phone {
            possible_harm.push("骚扰电话、垃圾短信及精准营销".to_string());
        }
        if has_address {
            possible_harm.push("收货地址被用于上门骚扰、跟踪等,危及人身和财产安全".to_string());
        }
        possible_harm.push("与其他渠道泄露的信息拼接后被用于更多违法犯罪活动".to_string());

        let mut remedial_measures = vec![
            format!(
                "已固定并保全出售证据,向{}提交删除群组、封禁出售账号并保全数据的请求",
                platform.name_zh()
            ),
            "已向公安机关报案并提供核验结果".to_string(),
            "对受影响用户的订单启用或延长隐私号(号码保护)措施,收货信息对外展示继续脱敏".to_string(),
        ];
        if !input.suspects.is_empty() {
            remedial_measures
                .push("已限制疑似泄露源相关账号的订单数据访问权限并开展内部调查".to_string());
        }
        if !v.canary_partners.is_empty() {
            remedial_measures.push(format!(
                "已通知{}家出现标记记录的合作方排查其数据处理环节",
                v.canary_partners.len()
            ));
        }
        remedial_measures.push("持续监测相关群组与渠道的后续出售行为".to_string());

        let individual_measures = vec![
            "警惕自称平台、商家、骑手或客服的来电和短信,退款、理赔只通过官方App办理".to_string(),
            "不向任何人透露短信验证码、银行卡密码,不点击陌生链接,不下载陌生App,不进行屏幕共享"
                .to_string(),
            "如遇疑似诈骗,可拨打110报警或拨打96110反诈专线咨询".to_string(),
            "可在App中开启号码保护,并视情况修改收货信息".to_string(),
            "如需查询本人信息是否受影响或有疑问,请通过下方联系方式与我们联系".to_string(),
        ];

        Notice {
            information_types,
            cause,
            possible_harm,
            remedial_measures,
            individual_measures,
        }
    }

    fn to_json(&self, input: &PacketInput, packet_id: &str) -> Value {
        let r = &input.reporter;
        let v = &input.verified;
        json!({
            "version": PACKET_VERSION,
            "packet_id": packet_id,
            "legal_basis": "《中华人民共和国个人信息保护法》第五十七条",
            "finding_id": input.finding_id,
            "case_id": input.case_id,
            "generated_at": rfc3339(&input.generated_at),
            "processor": {
                "name_zh": r.org_name_zh,
                "name_en": r.org_name_en,
                "unified_social_credit_code": r.unified_social_credit_code,
            },
            "scope": {
                "affected_individuals": v.distinct_customers,
                "affected_orders": v.distinct_orders,
                "verified_rows": v.rows_matched,
                "first_order_at": v.first_order_at.as_ref().map(rfc3339),
                "last_order_at": v.last_order_at.as_ref().map(rfc3339),
            },
            "information_types": self.information_types,
            "cause": self.cause,
            "possible_harm": self.possible_harm,
            "remedial_measures": self.remedial_measures,
            "individual_measures": self.individual_measures,
            "contact": {
                "organisation": r.org_name_zh,
                "email": r.contact_email,
                "phone": r.phone,
                "address": r.address,
            },
            "notify_department": true,
            "notify_individuals": true,
            "notify_individuals_reason": "信息已在聊天群组中出售,已采取的措施无法有效避免危害,依第五十七条第二款应当通知个人",
        })
    }

    fn to_text(&self, input: &PacketInput, packet_id: &str) -> String {
        let r = &input.reporter;
        let bullet = |items: &[String]| {
            items
                .iter()
                .enumerate()
                .map(|(i, s)| format!("{}. {}", i + 1, s))
                .collect::<Vec<_>>()
                .join("\n")
        };
        format!(
            "个人信息泄露通知\n\n尊敬的用户:\n\n依据《中华人民共和国个人信息保护法》第五十七条,现将涉及您的个人信息泄露事件告知如下。\n\n一、泄露的信息种类\n{}\n\n二、泄露原因\n{}\n\n三、可能造成的危害\n{}\n\n四、我们已采取的补救措施\n{}\n\n五、您可以采取的减轻危害的措施\n{}\n\n六、联系方式\n{}\n电话:{}\n邮箱:{}\n地址:{}\n\n给您带来的困扰,我们深表歉意。\n\n{}\n通知编号:{}\n",
            join_or_none(&self.information_types, "、"),
            self.cause,
            bullet(&self.possible_harm),
            bullet(&self.remedial_measures),
            bullet(&self.individual_measures),
            r.org_name_zh,
            r.phone,
            r.contact_email,
            r.address,
            r.org_name_zh,
            packet_id
        )
    }
}
