//! Takedown packet: an XARF v4 report (`takedown.json`) and a bilingual letter
//! (`letter.txt`) asking the chat platform to remove the group and preserve its data.
//!
//! Format. "XARF v4" is the JSON format specified in the xarf/xarf-spec repository
//! (`schemas/v4/xarf-core.json`, draft 2020-12): snake_case fields with `xarf_version`
//! "4.x.y". The PascalCase shape (`Version`, `ReporterInfo`, `Report`, `Samples`) belongs to
//! the earlier abusix/xarf schemas, whose versions are "1"–"3"; there is no "Version":"4"
//! in that lineage, so the v4 spec is followed here. Required by `xarf-core.json`:
//! `xarf_version`, `report_id` (uuid), `timestamp` (date-time), `reporter` and `sender`
//! (each exactly `org`, `contact` (email), `domain` (hostname)), `source_identifier`,
//! `category`, `type`. The category/type chosen is `content` / `exposed_data`
//! (`types/content-exposed-data.json`: personal data offered for sale is exposed data, and
//! no v4 type is closer), which adds `url` (`types/content-base.json`), `data_types`
//! (non-empty, enumerated) and `exposure_method` (enumerated; `intentional_leak`, since the
//! data is deliberately offered, not misconfigured). Evidence items may hold only
//! `content_type`, `payload` (base64), `description` (≤500), `hash` (`sha256:<hex>`),
//! `size`; at most 50 items. The core allows additional top-level properties, which carry
//! `leakwatch_packet_version` and the `leakwatch` block.
//!
//! Privacy. No sample rows, masked or not, and no victim identifiers: only counts
//! (《个人信息保护法》第六条, minimum necessary). Every string is also passed through the
//! sample-row scrubber, and the finished files are checked once more before returning.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::common::{self, base64_encode, rfc3339};
use super::model::{PacketInput, Platform};
use super::scrub::Scrubber;
use super::tier::{group_digits, severity_tier};
use super::{PACKET_VERSION, PacketError, PacketFile};

/// XARF schema version written in `xarf_version`.
pub const XARF_VERSION: &str = "4.0.0";

/// `data_types` enum of `types/content-exposed-data.json`.
const XARF_DATA_TYPES: &[&str] = &[
    "personal_information",
    "credentials",
    "financial",
    "medical",
    "government_id",
    "email_addresses",
    "phone_numbers",
    "api_keys",
    "database_dumps",
    "source_code",
    "internal_documents",
    "customer_data",
    "employee_data",
    "intellectual_property",
    "other",
];

/// `exposure_method` enum of `types/content-exposed-data.json`.
const XARF_EXPOSURE_METHODS: &[&str] = &[
    "misconfigured_server",
    "open_directory",
    "database_exposure",
    "git_repository",
    "backup_file",
    "log_file",
    "cloud_storage",
    "paste_site",
    "forum_post",
    "ransomware_leak",
    "intentional_leak",
    "other",
];

/// `category` enum of `xarf-core.json`.
const XARF_CATEGORIES: &[&str] = &[
    "messaging",
    "content",
    "copyright",
    "connection",
    "vulnerability",
    "infrastructure",
    "reputation",
];

/// `evidence.maxItems` in `xarf-core.json`.
const XARF_MAX_EVIDENCE: usize = 50;

pub(crate) fn build(
    input: &PacketInput,
    platform: Platform,
    packet_id: &str,
) -> Result<Vec<PacketFile>, PacketError> {
    let scrubber = Scrubber::from_rows(&input.sample_rows);
    let mut report = xarf_report(input, platform, packet_id, &scrubber)?;
    scrubber.clean_json(&mut report);
    let errors = validate_xarf_v4(&report);
    if !errors.is_empty() {
        return Err(PacketError::Internal(format!(
            "takedown.json fails XARF v4 checks: {}",
            errors.join("; ")
        )));
    }
    if let Some(n) = scrubber.leaked_in_json(&report) {
        return Err(PacketError::Internal(format!(
            "takedown.json still contains a sample value ({} bytes)",
            n.len()
        )));
    }
    let mut json_bytes = serde_json::to_vec_pretty(&report)?;
    json_bytes.push(b'\n');
    let exempt = exempt_values(input, packet_id);
    let letter = scrubber.clean_outside(&letter(input, platform, packet_id, &scrubber), &exempt);
    if let Some(n) = scrubber.leaked_outside(&letter, &exempt) {
        return Err(PacketError::Internal(format!(
            "letter.txt still contains a sample value ({} bytes)",
            n.len()
        )));
    }
    Ok(vec![
        common::file("takedown.json", "application/json", json_bytes),
        common::file(
            "letter.txt",
            "text/plain; charset=utf-8",
            letter.into_bytes(),
        ),
    ])
}

/// Values of the letter that are the reporter's details or identifiers (see `scrub.rs`).
fn exempt_values<'a>(input: &'a PacketInput, packet_id: &'a str) -> Vec<&'a str> {
    let r = &input.reporter;
    let mut v = vec![
        r.org_name_zh.as_str(),
        r.org_name_en.as_str(),
        r.contact_email.as_str(),
        r.phone.as_str(),
        r.address.as_str(),
        input.group_id.as_str(),
        input.group_link.as_str(),
        input.case_id.as_str(),
        packet_id,
    ];
    v.extend(input.sellers.iter().map(|s| s.id.as_str()));
    v
}

/// Domain part of the reporter's email, required as `reporter.domain`.
fn reporter_domain(email: &str) -> Result<String, PacketError> {
    let bad = |reason: &str| PacketError::InvalidInput {
        field: "reporter.contact_email",
        reason: format!("{email:?}: {reason}"),
    };
    let (local, domain) = email.trim().rsplit_once('@').ok_or_else(|| bad("no @"))?;
    if local.is_empty() {
        return Err(bad("empty local part"));
    }
    let domain = domain.to_ascii_lowercase();
    if !is_hostname(&domain) {
        return Err(bad("domain is not a hostname"));
    }
    Ok(domain)
}

/// Earliest time the abuse was observed: what XARF calls the incident `timestamp`.
fn incident_time(input: &PacketInput) -> DateTime<Utc> {
    input
        .offers
        .iter()
        .filter_map(|o| o.posted_at)
        .chain(input.timeline.iter().map(|t| t.at))
        .min()
        .unwrap_or(input.generated_at)
}

/// The group's link when it is a URI, else a URN naming it (XARF `url` is `format: uri`).
fn group_uri(input: &PacketInput, platform: Platform) -> String {
    let link = input.group_link.trim();
    if is_uri(link) {
        link.to_string()
    } else {
        format!(
            "urn:leakwatch:{}-group:{}",
            platform.slug(),
            percent_encode(input.group_id.trim())
        )
    }
}

/// Maps Chinese data-type labels to the XARF `data_types` enum.
fn xarf_data_types(labels: &[String]) -> Vec<&'static str> {
    let mut out = vec!["customer_data", "personal_information"];
    if labels
        .iter()
        .any(|l| l.contains("手机") || l.contains("电话"))
    {
        out.push("phone_numbers");
    }
    if labels.iter().any(|l| l.contains("身份证")) {
        out.push("government_id");
    }
    if labels.iter().any(|l| l.contains("邮箱")) {
        out.push("email_addresses");
    }
    out
}

/// Maps Chinese data-type labels to free-form English field names.
fn sensitive_fields(labels: &[String]) -> Vec<String> {
    labels
        .iter()
        .map(|l| {
            let l = l.trim();
            if l.contains("姓名") || l == "名字" {
                "name".to_string()
            } else if l.contains("手机") || l.contains("电话") {
                "phone".to_string()
            } else if l.contains("地址") {
                "delivery_address".to_string()
            } else if l.contains("订单") || l.contains("下单") {
                "order_details".to_string()
            } else {
                l.to_string()
            }
        })
        .collect()
}

fn xarf_report(
    input: &PacketInput,
    platform: Platform,
    packet_id: &str,
    scrubber: &Scrubber,
) -> Result<Value, PacketError> {
    let domain = reporter_domain(&input.reporter.contact_email)?;
    let org = truncate_chars(
        if input.reporter.org_name_en.trim().is_empty() {
            input.reporter.org_name_zh.trim()
        } else {
            input.reporter.org_name_en.trim()
        },
        200,
    );
    if org.is_empty() {
        return Err(PacketError::InvalidInput {
            field: "reporter.org_name_en",
            reason: "empty".into(),
        });
    }
    let contact = json!({
        "org": org,
        "contact": input.reporter.contact_email.trim(),
        "domain": domain,
    });
    let v = &input.verified;
    let generated = rfc3339(&input.generated_at);
    let report_id = common::uuid_v4_layout(&common::digest_parts(&[
        "xarf-report",
        &input.finding_id,
        &input.case_id,
        &generated,
    ]));
    let group_name = input.group_name.as_deref().map(|n| scrubber.free_text(n));
    let group_label = group_name.clone().unwrap_or_else(|| input.group_id.clone());
    let description = truncate_chars(
        &format!(
            "{} group \"{}\" (id {}) offers stolen food-delivery customer records (name, phone, delivery address) for sale. {} sample rows were checked against the order records of {}: {} matched, {} distinct real customers affected. Request: remove the group, suspend the seller accounts, and preserve all group data for the police.",
            platform.name_zh(),
            group_label,
            input.group_id,
            group_digits(v.rows_checked),
            org,
            group_digits(v.rows_matched),
            group_digits(v.distinct_customers)
        ),
        1000,
    );

    let mut evidence = Vec::new();
    let refs = input
        .evidence
        .iter()
        .map(|e| {
            (
                e.ledger_index,
                e.kind.clone(),
                e.sha256.as_str(),
                scrubber.free_text(&e.description),
            )
        })
        .chain(input.offers.iter().map(|o| {
            (
                o.capture_entry_index,
                "offer-capture".to_string(),
                o.evidence_sha256.as_str(),
                "captured sales offer".to_string(),
            )
        }));
    let mut omitted = 0usize;
    for (index, kind, sha, desc) in refs {
        if evidence.len() == XARF_MAX_EVIDENCE {
            omitted += 1;
            continue;
        }
        // The payload is a reference, not the artefact: the artefact (a chat capture) is
        // itself full of personal data and stays in the reporter's ledger.
        let payload = serde_json::to_vec(&json!({
            "ledger_index": index,
            "kind": kind,
            "sha256": sha,
        }))?;
        evidence.push(json!({
            "content_type": "application/json",
            "description": truncate_chars(&format!("Reference to preserved evidence, ledger entry {index} ({kind}): {desc}"), 500),
            "payload": base64_encode(&payload),
            "hash": format!("sha256:{}", common::sha256_hex(&payload)),
            "size": payload.len(),
        }));
    }

    let sellers: Vec<Value> = input
        .sellers
        .iter()
        .map(|s| {
            json!({
                "account_id": s.id,
                "nickname": s.nickname.as_deref().map(|n| scrubber.free_text(n)),
                "group_card": s.card.as_deref().map(|c| scrubber.free_text(c)),
                "advertised_contacts": s.contacts.iter().map(|c| json!({"kind": c.kind, "handle": c.handle})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let offers: Vec<Value> = input
        .offers
        .iter()
        .map(|o| {
            json!({
                "seller_id": o.seller_id,
                "posted_at": o.posted_at.as_ref().map(rfc3339),
                "price_per_record_fen": o.price_per_record_fen,
                "volume_records": o.volume_records,
                "daily_volume": o.daily_volume,
                "freshness": o.freshness.as_deref().map(|f| scrubber.free_text(f)),
                "data_types": o.data_types,
                "platforms_named": o.platforms_named,
                "cities": o.cities,
                "capture_ledger_index": o.capture_entry_index,
                "evidence_sha256": o.evidence_sha256,
            })
        })
        .collect();
    let tier = severity_tier(v.distinct_customers, input.data_category, false);

    let mut leakwatch = Map::new();
    leakwatch.insert("packet_id".into(), json!(packet_id));
    leakwatch.insert("finding_id".into(), json!(input.finding_id));
    leakwatch.insert("case_id".into(), json!(input.case_id));
    leakwatch.insert("generated_at".into(), json!(generated));
    leakwatch.insert(
        "group".into(),
        json!({
            "platform": platform.slug(),
            "group_id": input.group_id,
            "group_name": group_name,
            "group_link": input.group_link,
            "member_count": input.member_count,
        }),
    );
    leakwatch.insert("seller_accounts".into(), Value::Array(sellers));
    leakwatch.insert("offers".into(), Value::Array(offers));
    leakwatch.insert(
        "verification_counts".into(),
        json!({
            "rows_checked": v.rows_checked,
            "rows_matched": v.rows_matched,
            "distinct_customers": v.distinct_customers,
            "distinct_orders": v.distinct_orders,
            "data_types": v.data_types,
        }),
    );
    leakwatch.insert(
        "severity".into(),
        json!({"level": tier.level, "explanation_zh": tier.explanation_zh}),
    );
    leakwatch.insert(
        "requested_actions".into(),
        json!([
            "remove_group",
            "suspend_seller_accounts",
            "preserve_group_content_member_list_and_account_registration_data_for_law_enforcement",
            "report_to_competent_authority",
        ]),
    );
    leakwatch.insert(
        "legal_basis".into(),
        json!([
            "《中华人民共和国个人信息保护法》第十条",
            "《中华人民共和国网络安全法》第四十七条",
            "《中华人民共和国刑法》第二百五十三条之一",
        ]),
    );
    leakwatch.insert("evidence_items_omitted".into(), json!(omitted));
    if let Some(b) = &input.bundle {
        leakwatch.insert(
            "evidence_bundle".into(),
            json!({
                "checkpoint_size": b.checkpoint_size,
                "checkpoint_root": b.checkpoint_root,
                "bundle_sha256": b.bundle_sha256,
            }),
        );
    }

    let mut report = Map::new();
    report.insert("xarf_version".into(), json!(XARF_VERSION));
    report.insert("report_id".into(), json!(report_id));
    report.insert("timestamp".into(), json!(rfc3339(&incident_time(input))));
    report.insert("reporter".into(), contact.clone());
    report.insert("sender".into(), contact);
    report.insert(
        "source_identifier".into(),
        json!(format!(
            "{}:group:{}",
            platform.slug(),
            input.group_id.trim()
        )),
    );
    report.insert("category".into(), json!("content"));
    report.insert("type".into(), json!("exposed_data"));
    report.insert("url".into(), json!(group_uri(input, platform)));
    report.insert("data_types".into(), json!(xarf_data_types(&v.data_types)));
    report.insert("exposure_method".into(), json!("intentional_leak"));
    report.insert("record_count".into(), json!(v.distinct_customers));
    report.insert("affected_organization".into(), json!(org));
    report.insert(
        "sensitive_fields".into(),
        json!(sensitive_fields(&v.data_types)),
    );
    report.insert("encryption_status".into(), json!("unencrypted"));
    report.insert("accessibility".into(), json!("requires_payment"));
    report.insert("discovery_source".into(), json!("breach_monitoring"));
    report.insert("verification_method".into(), json!("manual"));
    report.insert("evidence_source".into(), json!("researcher_analysis"));
    report.insert("evidence".into(), Value::Array(evidence));
    if v.rows_checked > 0 {
        let confidence = (v.rows_matched as f64 / v.rows_checked as f64).clamp(0.0, 1.0);
        report.insert(
            "confidence".into(),
            json!((confidence * 1000.0).round() / 1000.0),
        );
    }
    report.insert("description".into(), json!(description));
    report.insert(
        "tags".into(),
        json!([
            format!("platform:{}", platform.slug()),
            "data:food-delivery-customers",
            "leakwatch:takedown",
        ]),
    );
    report.insert("leakwatch_packet_version".into(), json!(PACKET_VERSION));
    report.insert("leakwatch".into(), Value::Object(leakwatch));
    Ok(Value::Object(report))
}

fn letter(input: &PacketInput, platform: Platform, packet_id: &str, scrubber: &Scrubber) -> String {
    let v = &input.verified;
    let r = &input.reporter;
    let group_name = input
        .group_name
        .as_deref()
        .map(|n| scrubber.free_text(n))
        .unwrap_or_else(|| "(未知群名)".to_string());
    let sellers: Vec<String> = input
        .sellers
        .iter()
        .map(|s| match &s.nickname {
            Some(n) => format!("{} ({})", s.id, scrubber.free_text(n)),
            None => s.id.clone(),
        })
        .collect();
    let sellers_line = common::join_or_none(&sellers, "; ");
    let offered: u64 = input
        .offers
        .iter()
        .filter_map(|o| o.volume_records)
        .fold(0u64, u64::saturating_add);
    let data_types = common::join_or_none(&v.data_types, "、");
    let member = input
        .member_count
        .map(group_digits)
        .unwrap_or_else(|| "未知".into());
    let incident = common::beijing_time(&incident_time(input));
    let mut s = String::new();
    s.push_str(&format!(
        "致:{}\n事由:请求删除出售外卖平台用户个人信息的{}群组并保全相关数据\n报告编号:{}\n案件编号:{}\n\n",
        platform.operator_zh(),
        platform.name_zh(),
        packet_id,
        input.case_id
    ));
    s.push_str(&format!(
        "一、涉事群组\n平台:{}\n群号/ID:{}\n群名称:{}\n链接:{}\n成员数:{}\n首次发现:{}\n出售账号:{}\n\n",
        platform.name_zh(),
        input.group_id,
        group_name,
        input.group_link,
        member,
        incident,
        sellers_line
    ));
    s.push_str(&format!(
        "二、出售内容\n该群内有账号公开兜售外卖平台用户个人信息(包含:{}),共发现{}条出售信息,声称数量合计{}条。\n我方对群内流出的样本{}条与我方订单记录进行了比对,其中{}条属实,涉及真实用户{}人、订单{}笔。为保护用户,本函不附任何样本内容。\n\n",
        data_types,
        input.offers.len(),
        group_digits(offered),
        group_digits(v.rows_checked),
        group_digits(v.rows_matched),
        group_digits(v.distinct_customers),
        group_digits(v.distinct_orders)
    ));
    s.push_str(
        "三、法律依据\n1.《中华人民共和国个人信息保护法》第十条:任何组织、个人不得非法收集、使用、加工、传输他人个人信息,不得非法买卖、提供或者公开他人个人信息。\n2.《中华人民共和国刑法》第二百五十三条之一:违反国家有关规定,向他人出售或者提供公民个人信息,情节严重的,构成侵犯公民个人信息罪。\n3.《中华人民共和国网络安全法》第四十七条:网络运营者发现法律、行政法规禁止发布或者传输的信息的,应当立即停止传输该信息,采取消除等处置措施,防止信息扩散,保存有关记录,并向有关主管部门报告。\n\n",
    );
    s.push_str(
        "四、请求事项\n1.解散或封禁上述群组,删除其中出售个人信息的消息;\n2.封禁上述出售账号;\n3.在删除前完整保全该群组的聊天记录、成员列表及出售账号的注册与登录信息,以备公安机关依法调取(我方已同时向公安机关报案);\n4.依法向有关主管部门报告。\n\n",
    );
    s.push_str(&format!(
        "机器可读报告见随附 takedown.json(XARF v4 格式),其中证据以 SHA-256 摘要引用,原件由我方保全。\n\n报告单位:{} / {}\n电话:{}\n邮箱:{}\n地址:{}\n\n",
        r.org_name_zh, r.org_name_en, r.phone, r.contact_email, r.address
    ));
    s.push_str("----------------------------------------\n\n");
    s.push_str(&format!(
        "To: {}\nSubject: Removal of a {} group selling food-delivery customers' personal data, and preservation of its data\nReport ID: {}\nCase ID: {}\n\n",
        platform.operator_en(),
        platform.name_zh(),
        packet_id,
        input.case_id
    ));
    s.push_str(&format!(
        "1. The group\nPlatform: {}\nGroup ID: {}\nGroup name: {}\nLink: {}\nMembers: {}\nFirst observed: {}\nSelling accounts: {}\n\n",
        platform.name_zh(),
        input.group_id,
        group_name,
        input.group_link,
        input
            .member_count
            .map(group_digits)
            .unwrap_or_else(|| "unknown".into()),
        rfc3339(&incident_time(input)),
        if sellers.is_empty() { "none identified".to_string() } else { sellers.join("; ") }
    ));
    s.push_str(&format!(
        "2. What is sold\nAccounts in the group advertise personal data of our customers (name, phone number, delivery address) for sale (offers captured: {}; records claimed in total: {}). We checked {} sample rows leaked in the group against our order records: {} are genuine, belonging to {} distinct real customers ({} orders). No sample data is attached, to protect those customers.\n\n",
        input.offers.len(),
        group_digits(offered),
        group_digits(v.rows_checked),
        group_digits(v.rows_matched),
        group_digits(v.distinct_customers),
        group_digits(v.distinct_orders)
    ));
    s.push_str(
        "3. Legal basis\nSelling personal information is prohibited by Article 10 of the Personal Information Protection Law of the PRC (PIPL) and, where the circumstances are serious, is the crime of infringing citizens' personal information under Article 253-1 of the PRC Criminal Law. Article 47 of the PRC Cybersecurity Law requires network operators to stop the transmission of such information, remove it, keep records and report to the competent authorities. The data subjects reside in the PRC.\n\n",
    );
    s.push_str(
        "4. Requested actions\n(1) Remove the group and the sales messages; (2) suspend the selling accounts; (3) before removal, preserve the group's message history, member list and the selling accounts' registration and login data for the police, to whom we have reported the case; (4) report to the competent authorities as required.\n\n",
    );
    s.push_str(&format!(
        "The machine-readable report is attached as takedown.json (XARF v4); evidence is referenced by SHA-256 and the originals are preserved by us.\n\nContact: {} / {}\nPhone: {}\nEmail: {}\nAddress: {}\n",
        r.org_name_en, r.org_name_zh, r.phone, r.contact_email, r.address
    ));
    s
}

/// Checks `report` against the XARF v4 rules this packet relies on (see the module
/// comment for the list and its source files). Returns one message per violation.
pub fn validate_xarf_v4(report: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let Some(obj) = report.as_object() else {
        return vec!["report is not a JSON object".into()];
    };
    for field in [
        "xarf_version",
        "report_id",
        "timestamp",
        "reporter",
        "sender",
        "source_identifier",
        "category",
        "type",
    ] {
        if !obj.contains_key(field) {
            errors.push(format!("missing required field {field}"));
        }
    }
    let string = |field: &str| obj.get(field).and_then(Value::as_str);
    if let Some(v) = obj.get("xarf_version") {
        match v.as_str() {
            Some(s) if is_semver_4(s) => {}
            _ => errors.push(format!(
                "xarf_version {v} does not match ^4\\.[0-9]+\\.[0-9]+$"
            )),
        }
    }
    if let Some(v) = obj.get("report_id")
        && !v.as_str().is_some_and(is_uuid)
    {
        errors.push(format!("report_id {v} is not a UUID"));
    }
    if let Some(v) = obj.get("timestamp")
        && v.as_str()
            .is_none_or(|s| DateTime::parse_from_rfc3339(s).is_err())
    {
        errors.push(format!("timestamp {v} is not an RFC 3339 date-time"));
    }
    for party in ["reporter", "sender"] {
        if let Some(v) = obj.get(party) {
            check_contact(party, v, &mut errors);
        }
    }
    if let Some(v) = obj.get("source_identifier")
        && v.as_str().is_none_or(|s| s.trim().is_empty())
    {
        errors.push("source_identifier must be a non-empty string".into());
    }
    if let Some(v) = obj.get("category")
        && !v.as_str().is_some_and(|s| XARF_CATEGORIES.contains(&s))
    {
        errors.push(format!("category {v} is not in the XARF v4 enum"));
    }
    if obj.get("type").is_some_and(|v| !v.is_string()) {
        errors.push("type must be a string".into());
    }
    if string("category") == Some("content") {
        match string("url") {
            Some(u) if is_uri(u) => {}
            _ => errors.push("content reports require url (format uri)".into()),
        }
    }
    if string("type") == Some("exposed_data") {
        if string("category") != Some("content") {
            errors.push("exposed_data belongs to category content".into());
        }
        match obj.get("data_types").and_then(Value::as_array) {
            Some(items) if !items.is_empty() => {
                for i in items {
                    if !i.as_str().is_some_and(|s| XARF_DATA_TYPES.contains(&s)) {
                        errors.push(format!("data_types item {i} is not in the enum"));
                    }
                }
            }
            _ => errors.push("exposed_data requires a non-empty data_types array".into()),
        }
        if !string("exposure_method").is_some_and(|s| XARF_EXPOSURE_METHODS.contains(&s)) {
            errors.push("exposed_data requires exposure_method from the enum".into());
        }
        if let Some(rc) = obj.get("record_count")
            && !rc.is_u64()
        {
            errors.push("record_count must be a non-negative integer".into());
        }
        if obj
            .get("sample_records")
            .and_then(Value::as_array)
            .is_some_and(|a| a.len() > 5)
        {
            errors.push("sample_records has more than 5 items".into());
        }
    }
    if let Some(ev) = obj.get("evidence") {
        match ev.as_array() {
            Some(items) => {
                if items.len() > XARF_MAX_EVIDENCE {
                    errors.push(format!(
                        "evidence has {} items, max {XARF_MAX_EVIDENCE}",
                        items.len()
                    ));
                }
                for (i, item) in items.iter().enumerate() {
                    check_evidence(i, item, &mut errors);
                }
            }
            None => errors.push("evidence must be an array".into()),
        }
    }
    if let Some(d) = obj.get("description")
        && d.as_str().is_none_or(|s| s.chars().count() > 1000)
    {
        errors.push("description must be a string of at most 1000 characters".into());
    }
    if let Some(c) = obj.get("confidence")
        && !c.as_f64().is_some_and(|x| (0.0..=1.0).contains(&x))
    {
        errors.push("confidence must be a number in [0, 1]".into());
    }
    if let Some(tags) = obj.get("tags") {
        match tags.as_array() {
            Some(items) if items.len() <= 20 => {
                for t in items {
                    if !t.as_str().is_some_and(is_tag) {
                        errors.push(format!("tag {t} does not match namespace:predicate"));
                    }
                }
            }
            _ => errors.push("tags must be an array of at most 20 items".into()),
        }
    }
    errors
}

fn check_contact(party: &str, v: &Value, errors: &mut Vec<String>) {
    let Some(c) = v.as_object() else {
        errors.push(format!("{party} must be an object"));
        return;
    };
    for k in c.keys() {
        if !matches!(k.as_str(), "org" | "contact" | "domain") {
            errors.push(format!("{party} has additional property {k}"));
        }
    }
    match c.get("org").and_then(Value::as_str) {
        Some(o) if !o.is_empty() && o.chars().count() <= 200 => {}
        _ => errors.push(format!(
            "{party}.org must be a string of 1..=200 characters"
        )),
    }
    if !c
        .get("contact")
        .and_then(Value::as_str)
        .is_some_and(is_email)
    {
        errors.push(format!("{party}.contact must be an email address"));
    }
    if !c
        .get("domain")
        .and_then(Value::as_str)
        .is_some_and(is_hostname)
    {
        errors.push(format!("{party}.domain must be a hostname"));
    }
}

fn check_evidence(i: usize, item: &Value, errors: &mut Vec<String>) {
    let Some(e) = item.as_object() else {
        errors.push(format!("evidence[{i}] must be an object"));
        return;
    };
    for k in e.keys() {
        if !matches!(
            k.as_str(),
            "content_type" | "description" | "payload" | "hash" | "size"
        ) {
            errors.push(format!("evidence[{i}] has additional property {k}"));
        }
    }
    if !e.get("content_type").is_some_and(Value::is_string) {
        errors.push(format!("evidence[{i}].content_type is required"));
    }
    if !e
        .get("payload")
        .and_then(Value::as_str)
        .is_some_and(is_base64)
    {
        errors.push(format!("evidence[{i}].payload must be base64"));
    }
    if let Some(d) = e.get("description")
        && d.as_str().is_none_or(|s| s.chars().count() > 500)
    {
        errors.push(format!("evidence[{i}].description exceeds 500 characters"));
    }
    if let Some(h) = e.get("hash")
        && !h.as_str().is_some_and(is_evidence_hash)
    {
        errors.push(format!("evidence[{i}].hash must be algorithm:hex"));
    }
    if let Some(s) = e.get("size")
        && s.as_u64().is_none_or(|n| n > 5_242_880)
    {
        errors.push(format!("evidence[{i}].size must be 0..=5242880"));
    }
}

fn is_semver_4(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && parts[0] == "4"
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn is_email(s: &str) -> bool {
    match s.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && !local.contains(char::is_whitespace) && is_hostname(domain)
        }
        None => false,
    }
}

/// RFC 1123 host name with at least one dot (an organisation domain).
fn is_hostname(s: &str) -> bool {
    s.len() <= 253
        && s.contains('.')
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// RFC 3986 absolute URI: a scheme, ':', and no spaces.
fn is_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut sb = scheme.bytes();
    sb.next().is_some_and(|b| b.is_ascii_alphabetic())
        && sb.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        && !rest.is_empty()
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn is_base64(s: &str) -> bool {
    s.len().is_multiple_of(4)
        && s.trim_end_matches('=')
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

fn is_evidence_hash(s: &str) -> bool {
    match s.split_once(':') {
        Some((alg, hex)) => {
            matches!(alg, "md5" | "sha1" | "sha256" | "sha512")
                && !hex.is_empty()
                && hex.bytes().all(|b| b.is_ascii_hexdigit())
        }
        None => false,
    }
}

/// `^[a-z0-9][a-z0-9_+-]*:[a-z0-9][a-z0-9_+-.]*$` from `xarf-core.json`.
fn is_tag(s: &str) -> bool {
    let Some((ns, pred)) = s.split_once(':') else {
        return false;
    };
    let ok = |part: &str, extra: &[u8]| {
        let mut b = part.bytes();
        b.next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && b.all(|c| {
                c.is_ascii_lowercase()
                    || c.is_ascii_digit()
                    || b"_+-".contains(&c)
                    || extra.contains(&c)
            })
    };
    ok(ns, b"") && ok(pred, b".")
}

fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validator_rejects_missing_and_malformed_fields() {
        let errors = validate_xarf_v4(&json!({"xarf_version": "3"}));
        assert!(
            errors
                .iter()
                .any(|e| e.contains("missing required field report_id"))
        );
        assert!(errors.iter().any(|e| e.contains("xarf_version")));
        let errors = validate_xarf_v4(&json!({
            "xarf_version": "4.0.0",
            "report_id": "550e8400-e29b-41d4-a716-446655440000",
            "timestamp": "2024-01-15T14:30:25Z",
            "reporter": {"org": "A", "contact": "a@example.com", "domain": "example.com", "x": 1},
            "sender": {"org": "A", "contact": "nope", "domain": "example.com"},
            "source_identifier": "qq:group:1",
            "category": "content",
            "type": "exposed_data",
            "url": "not a uri",
            "data_types": [],
            "exposure_method": "leaked",
            "evidence": [{"content_type": "text/plain"}],
            "tags": ["Bad Tag"],
        }));
        for want in [
            "reporter has additional property x",
            "sender.contact",
            "url",
            "data_types",
            "exposure_method",
            "evidence[0].payload",
            "tag",
        ] {
            assert!(
                errors.iter().any(|e| e.contains(want)),
                "{want} not in {errors:?}"
            );
        }
    }

    #[test]
    fn format_predicates() {
        assert!(is_uri("https://t.me/joinchat/abc"));
        assert!(is_uri("urn:leakwatch:qq-group:123"));
        assert!(!is_uri("qm.qq.com/abc"));
        assert!(is_hostname("example.com"));
        assert!(!is_hostname("localhost"));
        assert!(is_tag("platform:qq"));
        assert!(is_tag("data:food-delivery-customers"));
        assert!(!is_tag("Platform:qq"));
        assert!(is_evidence_hash(&format!("sha256:{}", "ab".repeat(32))));
        assert_eq!(percent_encode("a b/1"), "a%20b%2F1");
        assert_eq!(truncate_chars("一二三四", 3), "一二…");
    }
}
