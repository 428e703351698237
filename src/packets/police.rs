//! Police packet: `police-report.json` (machine-readable) and `police-report.pdf`
//! (报案材料, Chinese, A4).
//!
//! The report is filed under 《中华人民共和国刑事诉讼法》第一百一十条 (任何单位和个人发现有
//! 犯罪事实或者犯罪嫌疑人,有权利也有义务向公安机关……报案或者举报) for the offence in
//! 《刑法》第二百五十三条之一. Its severity section applies 法释〔2017〕10号 第五条 (see
//! `tier.rs`), counting the verified distinct customers: 第十一条第三款 lets batch
//! information be counted as seized "但是有证据证明信息不真实或者重复的除外", so only rows
//! confirmed against the platform's records, deduplicated per customer, are counted; the
//! sellers' claimed volume is shown separately as unverified.
//!
//! This is the one packet that carries the unmasked sample rows: the police need them to
//! identify victims and to test the sellers' data against seized material, and providing
//! them is processing "为履行法定职责或者法定义务所必需" (《个人信息保护法》第十三条第一款
//! 第三项). The PDF prints them in an annex table, so the body stays readable however large
//! the sample is.

use std::path::Path;

use serde_json::{Value, json};

use super::common::{self, beijing_time, beijing_time_opt, fen_to_yuan, join_or_none, rfc3339};
use super::model::{PacketInput, Platform};
use super::pdf::{Column, Layout, SIZE_TABLE};
use super::tier::{Tier, group_digits, severity_tier};
use super::{PACKET_VERSION, PacketError, PacketFile};

/// Severity under the three readings the report shows.
struct Severity {
    /// Verified distinct customers, sellers as non-insiders.
    verified: Tier,
    /// Same count if the leak source was an insider (第五条第一款第八项), when one is suspected.
    insider_source: Option<Tier>,
    /// Largest volume a seller claimed, unverified.
    claimed: Option<Tier>,
}

fn severity(input: &PacketInput) -> Severity {
    let records = input.verified.distinct_customers;
    let category = input.data_category;
    let any_insider = input.suspects.iter().any(|s| s.insider);
    let claimed_max = input.offers.iter().filter_map(|o| o.volume_records).max();
    Severity {
        verified: severity_tier(records, category, false),
        insider_source: any_insider.then(|| severity_tier(records, category, true)),
        claimed: claimed_max.map(|n| severity_tier(n, category, false)),
    }
}

fn title(input: &PacketInput, platform: Platform) -> String {
    let group = match &input.group_name {
        Some(n) if !n.trim().is_empty() => format!("“{}”({})", n.trim(), input.group_id),
        _ => input.group_id.clone(),
    };
    format!(
        "关于{}群{}侵犯公民个人信息线索的报案材料",
        platform.name_zh(),
        group
    )
}

pub(crate) fn build(
    input: &PacketInput,
    platform: Platform,
    packet_id: &str,
    font_path: &Path,
) -> Result<Vec<PacketFile>, PacketError> {
    let sev = severity(input);
    let title = title(input, platform);
    let report = report_json(input, platform, packet_id, &title, &sev);
    let mut json_bytes = serde_json::to_vec_pretty(&report)?;
    json_bytes.push(b'\n');
    let pdf = report_pdf(input, platform, packet_id, &title, &sev, font_path)?;
    Ok(vec![
        common::file("police-report.json", "application/json", json_bytes),
        common::file("police-report.pdf", "application/pdf", pdf),
    ])
}

fn tier_json(t: &Tier) -> Value {
    json!({
        "level": t.level,
        "label_zh": t.level.label_zh(),
        "records": t.records,
        "category": t.category,
        "insider": t.insider,
        "serious_threshold": t.serious_threshold,
        "especially_serious_threshold": t.especially_serious_threshold,
        "explanation_zh": t.explanation_zh,
    })
}

fn report_json(
    input: &PacketInput,
    platform: Platform,
    packet_id: &str,
    title: &str,
    sev: &Severity,
) -> Value {
    let v = &input.verified;
    let r = &input.reporter;
    json!({
        "version": PACKET_VERSION,
        "packet_id": packet_id,
        "title": title,
        "finding_id": input.finding_id,
        "case_id": input.case_id,
        "generated_at": rfc3339(&input.generated_at),
        "legal_basis": [
            "《中华人民共和国刑法》第二百五十三条之一",
            "法释〔2017〕10号 第五条、第十一条",
            "《中华人民共和国刑事诉讼法》第一百一十条",
        ],
        "group": {
            "platform": platform.slug(),
            "group_id": input.group_id,
            "group_name": input.group_name,
            "group_link": input.group_link,
            "member_count": input.member_count,
        },
        "seller_accounts": input.sellers,
        "offers": input.offers,
        "timeline": input.timeline,
        "verification": {
            "rows_checked": v.rows_checked,
            "rows_matched": v.rows_matched,
            "distinct_customers": v.distinct_customers,
            "distinct_orders": v.distinct_orders,
            "first_order_at": v.first_order_at.as_ref().map(rfc3339),
            "last_order_at": v.last_order_at.as_ref().map(rfc3339),
            "data_types": v.data_types,
            "victims_by_data_type": v.data_types.iter().map(|t| json!({
                "data_type": t,
                "distinct_customers": v.distinct_customers,
            })).collect::<Vec<_>>(),
            "canary_partners": v.canary_partners,
        },
        "severity": {
            "data_category": input.data_category,
            "verified": tier_json(&sev.verified),
            "if_insider_source": sev.insider_source.as_ref().map(tier_json),
            "claimed_volume_unverified": sev.claimed.as_ref().map(tier_json),
        },
        "suspected_sources": input.suspects,
        "sample_rows_unmasked": input.sample_rows,
        "evidence": input.evidence,
        "evidence_bundle": input.bundle,
        "reporter": {
            "org_name_zh": r.org_name_zh,
            "org_name_en": r.org_name_en,
            "unified_social_credit_code": r.unified_social_credit_code,
            "contact_email": r.contact_email,
            "phone": r.phone,
            "address": r.address,
        },
        "approvals": input.approvals,
    })
}

fn report_pdf(
    input: &PacketInput,
    platform: Platform,
    packet_id: &str,
    title: &str,
    sev: &Severity,
    font_path: &Path,
) -> Result<Vec<u8>, PacketError> {
    let v = &input.verified;
    let r = &input.reporter;
    let header = format!(
        "{} · 案件编号 {} · 报告编号 {}",
        r.org_name_zh, input.case_id, packet_id
    );
    let mut doc = Layout::new(font_path, title, &header)?;
    doc.title(title);
    doc.paragraph(&format!(
        "{}公安局(分局):\n我单位在日常安全监测中发现,{}群组中有人出售我单位外卖平台用户的个人信息。经比对,其出售的样本与我单位订单记录相符。根据《中华人民共和国刑事诉讼法》第一百一十条的规定,现将有关线索报告如下,请依法审查立案。",
        "________",
        platform.name_zh()
    ));
    doc.gap(4.0);

    doc.heading("一、基本情况");
    doc.kv("平台", platform.name_zh());
    doc.kv("群号/ID", &input.group_id);
    doc.kv("群名称", input.group_name.as_deref().unwrap_or("未知"));
    doc.kv("群链接", &input.group_link);
    doc.kv(
        "成员数",
        &input
            .member_count
            .map(group_digits)
            .unwrap_or_else(|| "未知".into()),
    );
    doc.kv("线索编号", &input.finding_id);
    doc.kv("生成时间", &beijing_time(&input.generated_at));
    if !input.sellers.is_empty() {
        doc.paragraph("出售账号:");
        doc.table(
            &[
                Column {
                    header: "账号ID",
                    share: 2.0,
                },
                Column {
                    header: "昵称",
                    share: 2.0,
                },
                Column {
                    header: "群名片",
                    share: 2.0,
                },
                Column {
                    header: "群外联系方式",
                    share: 4.0,
                },
            ],
            input.sellers.iter().map(|s| {
                vec![
                    s.id.clone(),
                    s.nickname.clone().unwrap_or_default(),
                    s.card.clone().unwrap_or_default(),
                    s.contacts
                        .iter()
                        .map(|c| format!("{}:{}", c.kind, c.handle))
                        .collect::<Vec<_>>()
                        .join(";"),
                ]
            }),
        );
    }
    if !input.timeline.is_empty() {
        doc.paragraph("经过:");
        doc.table(
            &[
                Column {
                    header: "时间(北京时间)",
                    share: 2.6,
                },
                Column {
                    header: "事件",
                    share: 6.0,
                },
                Column {
                    header: "存证序号",
                    share: 1.4,
                },
            ],
            input.timeline.iter().map(|t| {
                vec![
                    beijing_time(&t.at).replace("(北京时间)", ""),
                    t.what.clone(),
                    t.ledger_index.map(|i| i.to_string()).unwrap_or_default(),
                ]
            }),
        );
    }

    doc.heading("二、出售信息");
    if input.offers.is_empty() {
        doc.paragraph("未记录到具体出售报价。");
    }
    for (i, o) in input.offers.iter().enumerate() {
        doc.paragraph(&format!("报价{}:", i + 1));
        doc.kv("发布时间", &beijing_time_opt(o.posted_at.as_ref()));
        doc.kv("发布账号", o.seller_id.as_deref().unwrap_or("未识别"));
        doc.kv(
            "单价",
            &o.price_per_record_fen
                .map(|f| format!("{}/条", fen_to_yuan(f)))
                .unwrap_or_else(|| "未标明".into()),
        );
        doc.kv(
            "数量",
            &format!(
                "{}条;日供量{}条",
                o.volume_records
                    .map(group_digits)
                    .unwrap_or_else(|| "未标明".into()),
                o.daily_volume
                    .map(group_digits)
                    .unwrap_or_else(|| "未标明".into())
            ),
        );
        doc.kv("新鲜度", o.freshness.as_deref().unwrap_or("未标明"));
        doc.kv("数据类型", &join_or_none(&o.data_types, "、"));
        doc.kv("涉及平台", &join_or_none(&o.platforms_named, "、"));
        doc.kv("涉及城市", &join_or_none(&o.cities, "、"));
        doc.kv(
            "存证",
            &format!(
                "存证序号{},SHA-256 {}",
                o.capture_entry_index, o.evidence_sha256
            ),
        );
        doc.gap(3.0);
    }

    doc.heading("三、样本核验结果");
    let rate = if v.rows_checked > 0 {
        format!(
            "{:.1}%",
            v.rows_matched as f64 * 100.0 / v.rows_checked as f64
        )
    } else {
        "—".into()
    };
    doc.kv("核验样本", &format!("{}条", group_digits(v.rows_checked)));
    doc.kv(
        "与订单记录相符",
        &format!("{}条(符合率{})", group_digits(v.rows_matched), rate),
    );
    doc.kv(
        "受害用户",
        &format!("{}人", group_digits(v.distinct_customers)),
    );
    doc.kv(
        "涉及订单",
        &format!("{}笔", group_digits(v.distinct_orders)),
    );
    doc.kv(
        "订单时间范围",
        &format!(
            "{} 至 {}",
            beijing_time_opt(v.first_order_at.as_ref()),
            beijing_time_opt(v.last_order_at.as_ref())
        ),
    );
    doc.kv("信息类型", &join_or_none(&v.data_types, "、"));
    if !v.data_types.is_empty() {
        doc.table(
            &[
                Column {
                    header: "信息类型",
                    share: 1.0,
                },
                Column {
                    header: "受害用户数(人)",
                    share: 1.0,
                },
            ],
            v.data_types
                .iter()
                .map(|t| vec![t.clone(), group_digits(v.distinct_customers)]),
        );
    }
    if !v.canary_partners.is_empty() {
        doc.kv("出现标记记录的合作方", &v.canary_partners.join("、"));
    }
    doc.paragraph(&format!(
        "样本明细(共{}条,未遮蔽)见附件一,仅供公安机关办案使用。",
        group_digits(input.sample_rows.len() as u64)
    ));

    doc.heading("四、危害程度");
    doc.paragraph(&format!(
        "按经核验的受害用户数{}人计:{}。",
        group_digits(sev.verified.records),
        sev.verified.level.label_zh()
    ));
    doc.paragraph_sized(&sev.verified.explanation_zh, SIZE_TABLE + 1.0, 12.0);
    if let Some(t) = &sev.insider_source {
        doc.paragraph(&format!(
            "如查实信息系内部人员在履行职责或提供服务过程中获得后出售或提供:{}。",
            t.level.label_zh()
        ));
        doc.paragraph_sized(&t.explanation_zh, SIZE_TABLE + 1.0, 12.0);
    }
    if let Some(t) = &sev.claimed {
        doc.paragraph(&format!(
            "出售方声称可提供{}条(未经核验),如查获数量属实:{}。",
            group_digits(t.records),
            t.level.label_zh()
        ));
        doc.paragraph_sized(&t.explanation_zh, SIZE_TABLE + 1.0, 12.0);
    }
    doc.paragraph(
        "依据:《中华人民共和国刑法》第二百五十三条之一;《最高人民法院、最高人民检察院关于办理侵犯公民个人信息刑事案件适用法律若干问题的解释》(法释〔2017〕10号)第五条、第十一条。条数按与订单记录核验相符并按用户去重后的数量计算。",
    );

    doc.heading("五、疑似泄露源");
    if input.suspects.is_empty() {
        doc.paragraph("尚未确定疑似泄露源。");
    } else {
        doc.table(
            &[
                Column {
                    header: "类型",
                    share: 1.2,
                },
                Column {
                    header: "标识",
                    share: 2.6,
                },
                Column {
                    header: "接触样本(条)",
                    share: 1.4,
                },
                Column {
                    header: "关联度(lift)",
                    share: 1.4,
                },
                Column {
                    header: "内部人员",
                    share: 1.0,
                },
                Column {
                    header: "证据(存证序号)",
                    share: 2.4,
                },
            ],
            input.suspects.iter().map(|s| {
                vec![
                    s.actor_kind.label_zh().to_string(),
                    s.actor_id.clone(),
                    group_digits(s.touched),
                    if s.lift.is_finite() {
                        format!("{:.2}", s.lift)
                    } else {
                        "—".into()
                    },
                    if s.insider { "是" } else { "否" }.to_string(),
                    s.evidence_indices
                        .iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join("、"),
                ]
            }),
        );
        doc.paragraph_sized(
            "关联度为该主体接触泄露样本的比例相对随机预期的倍数,仅为侦查线索,不构成对其违法的认定。",
            SIZE_TABLE + 1.0,
            0.0,
        );
    }

    doc.heading("六、证据清单(SHA-256)");
    if input.evidence.is_empty() {
        doc.paragraph("无单列证据。");
    } else {
        doc.table(
            &[
                Column {
                    header: "存证序号",
                    share: 1.1,
                },
                Column {
                    header: "类型",
                    share: 1.4,
                },
                Column {
                    header: "SHA-256",
                    share: 4.6,
                },
                Column {
                    header: "说明",
                    share: 2.9,
                },
            ],
            input.evidence.iter().map(|e| {
                vec![
                    e.ledger_index.to_string(),
                    e.kind.clone(),
                    e.sha256.clone(),
                    e.description.clone(),
                ]
            }),
        );
    }
    match &input.bundle {
        Some(b) => {
            doc.kv("证据包SHA-256", &b.bundle_sha256);
            doc.kv("检查点大小", &b.checkpoint_size.to_string());
            doc.kv("检查点根", &b.checkpoint_root);
        }
        None => doc.paragraph("证据包:未附。"),
    }
    doc.paragraph_sized(
        "上述证据原件由报案单位以只追加存证账本保全,可按存证序号调取并以SHA-256核对完整性。",
        SIZE_TABLE + 1.0,
        0.0,
    );

    doc.heading("七、报案单位");
    doc.kv("名称", &format!("{}({})", r.org_name_zh, r.org_name_en));
    if let Some(code) = &r.unified_social_credit_code {
        doc.kv("统一社会信用代码", code);
    }
    doc.kv("地址", &r.address);
    doc.kv("联系电话", &r.phone);
    doc.kv("电子邮箱", &r.contact_email);
    for a in &input.approvals {
        doc.kv(
            "审核",
            &format!(
                "{} 于 {} 批准:{}",
                a.moderator,
                beijing_time(&a.at),
                a.reason
            ),
        );
    }
    doc.gap(18.0);
    doc.paragraph("报案单位(盖章):                              日期:");

    // The annex can run to hundreds of pages; it starts on its own page so the signed
    // body ends cleanly.
    doc.page_break();
    doc.heading("附件一:样本明细(未遮蔽,仅供公安机关办案使用)");
    if input.sample_rows.is_empty() {
        doc.paragraph("无样本。");
    } else {
        doc.table(
            &[
                Column {
                    header: "序号",
                    share: 0.8,
                },
                Column {
                    header: "姓名",
                    share: 1.3,
                },
                Column {
                    header: "手机号",
                    share: 1.9,
                },
                Column {
                    header: "收货地址",
                    share: 4.2,
                },
                Column {
                    header: "下单时间(北京时间)",
                    share: 2.2,
                },
            ],
            input.sample_rows.iter().enumerate().map(|(i, s)| {
                vec![
                    (i + 1).to_string(),
                    s.name.clone(),
                    s.phone.clone(),
                    s.address.clone(),
                    s.order_time
                        .as_ref()
                        .map(|t| beijing_time(t).replace("(北京时间)", ""))
                        .unwrap_or_default(),
                ]
            }),
        );
    }
    Ok(doc.finish(&input.generated_at))
}
