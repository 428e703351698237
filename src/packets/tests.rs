//! Tests for packet building. The PDF tests run poppler-utils (`pdftotext`, `pdftoppm`,
//! `pdfinfo`) and need the CJK font from `fonts-wqy-microhei`; when either is missing they
//! FAIL with an install hint instead of skipping, because a police report whose text
//! cannot be extracted must never pass unnoticed.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::Value;

use super::*;

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_714_500_000 + secs, 0)
        .single()
        .unwrap_or_else(Utc::now)
}

fn sha(c: char) -> String {
    c.to_string().repeat(64)
}

fn row(i: usize) -> SampleRowFull {
    let phone = format!("139{:08}", 10_000_000 + i);
    SampleRowFull {
        name: format!("测试{}号", i),
        masked_phone: scrub::mask_phone(&phone),
        phone,
        address: format!(
            "上海市浦东新区样例路{}弄{}号{}室",
            i % 900 + 1,
            i % 50 + 1,
            100 + i % 700
        ),
        order_time: Some(t(i as i64 * 60)),
    }
}

fn fixture(rows: usize) -> PacketInput {
    PacketInput {
        finding_id: "F-2024-0042".into(),
        case_id: "C-2024-0007".into(),
        platform: "qq".into(),
        group_id: "736451920".into(),
        group_name: Some("外卖数据当日新鲜".into()),
        group_link: "https://qm.qq.com/q/AbCdEf123".into(),
        member_count: Some(412),
        sellers: vec![SellerAccount {
            id: "2876543210".into(),
            nickname: Some("数据老王".into()),
            card: Some("诚信出数据".into()),
            contacts: vec![Contact {
                kind: "wechat".into(),
                handle: "wx_data_888".into(),
            }],
        }],
        offers: vec![OfferSummary {
            seller_id: Some("2876543210".into()),
            price_per_record_fen: Some(50),
            volume_records: Some(60_000),
            daily_volume: Some(3_000),
            freshness: Some("当日".into()),
            data_types: vec!["姓名".into(), "手机号".into(), "地址".into()],
            platforms_named: vec!["某外卖平台".into()],
            cities: vec!["上海".into()],
            posted_at: Some(t(-86_400)),
            capture_entry_index: 17,
            evidence_sha256: sha('a'),
        }],
        timeline: vec![
            TimelineItem {
                at: t(-86_400),
                what: "群内发布出售信息".into(),
                ledger_index: Some(17),
            },
            TimelineItem {
                // A moderator note quoting a row: must never reach the takedown or notice.
                at: t(-3_600),
                what: format!("样本核验完成,例如 {} {}", row(0).name, row(0).phone),
                ledger_index: Some(18),
            },
        ],
        verified: Verification {
            rows_checked: 6_000,
            rows_matched: 5_400,
            distinct_customers: 5_321,
            distinct_orders: 5_390,
            first_order_at: Some(t(-30 * 86_400)),
            last_order_at: Some(t(-86_400)),
            data_types: vec!["姓名".into(), "手机号".into(), "收货地址".into()],
            canary_partners: vec!["合作方甲".into()],
        },
        suspects: vec![SuspectSummary {
            actor_kind: ActorKind::Merchant,
            actor_id: "M-88231".into(),
            touched: 4_980,
            lift: 37.5,
            insider: true,
            evidence_indices: vec![19],
        }],
        sample_rows: (0..rows).map(row).collect(),
        evidence: vec![
            EvidenceRef {
                ledger_index: 17,
                kind: "capture".into(),
                sha256: sha('a'),
                description: "群消息截获".into(),
            },
            EvidenceRef {
                ledger_index: 19,
                kind: "suspect-analysis".into(),
                sha256: sha('b'),
                description: format!("访问分析,含 {}", row(1).address),
            },
        ],
        bundle: Some(BundleRef {
            checkpoint_size: 1_024,
            checkpoint_root: "q2V5cm9vdGhhc2g=".into(),
            bundle_sha256: sha('c'),
        }),
        reporter: Reporter {
            org_name_zh: "示例外卖平台安全中心".into(),
            org_name_en: "Example Delivery Security".into(),
            contact_email: "security@delivery.example.com".into(),
            phone: "400-000-0000".into(),
            address: "北京市朝阳区示例大厦".into(),
            unified_social_credit_code: Some("91110000000000000X".into()),
        },
        approvals: vec![Approval {
            moderator: "mod-zhang".into(),
            at: t(0),
            reason: "样本核验属实".into(),
        }],
        data_category: DataCategory::Other,
        generated_at: t(600),
    }
}

fn font() -> PathBuf {
    let p = PathBuf::from(DEFAULT_FONT_PATH);
    assert!(
        p.exists(),
        "CJK font {DEFAULT_FONT_PATH} is missing: install it with `apt-get install -y fonts-wqy-microhei`"
    );
    p
}

/// Runs a poppler-utils binary; a missing binary fails the test with an install hint.
fn poppler(bin: &str, args: &[&str]) -> std::process::Output {
    match Command::new(bin).args(args).output() {
        Ok(out) => out,
        Err(e) => panic!(
            "`{bin}` could not be run ({e}): install poppler-utils (`apt-get install -y poppler-utils`)"
        ),
    }
}

fn file<'a>(p: &'a Packet, name: &str) -> &'a PacketFile {
    match p.files.iter().find(|f| f.name == name) {
        Some(f) => f,
        None => panic!(
            "{name} missing from {:?}",
            p.files.iter().map(|f| &f.name).collect::<Vec<_>>()
        ),
    }
}

fn json_of(f: &PacketFile) -> Value {
    match serde_json::from_slice(&f.bytes) {
        Ok(v) => v,
        Err(e) => panic!("{} is not JSON: {e}", f.name),
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn build_ok(kind: PacketKind, input: &PacketInput) -> Packet {
    match build(kind, input, &font()) {
        Ok(p) => p,
        Err(e) => panic!("{kind:?} failed: {e}"),
    }
}

fn write_tmp(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("leakwatch-packets-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("cannot create {}: {e}", dir.display());
    }
    let p = dir.join(name);
    if let Err(e) = std::fs::write(&p, bytes) {
        panic!("cannot write {}: {e}", p.display());
    }
    p
}

fn pdftotext(pdf: &Path, pages: Option<(u32, u32)>) -> String {
    let path = pdf.to_string_lossy().to_string();
    let mut args: Vec<String> = Vec::new();
    if let Some((f, l)) = pages {
        args.extend(["-f".into(), f.to_string(), "-l".into(), l.to_string()]);
    }
    args.extend([path, "-".into()]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = poppler("pdftotext", &argv);
    assert!(
        out.status.success(),
        "pdftotext failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn pdf_pages(pdf: &Path) -> u32 {
    let out = poppler("pdfinfo", &[&pdf.to_string_lossy()]);
    assert!(out.status.success(), "pdfinfo failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            l.strip_prefix("Pages:")
                .map(|v| v.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0)
}

#[test]
fn every_file_digest_matches_and_json_is_versioned() {
    let input = fixture(20);
    for kind in [
        PacketKind::Takedown,
        PacketKind::Police,
        PacketKind::BreachNotice,
    ] {
        let p = build_ok(kind, &input);
        assert_eq!(p.kind, kind);
        assert!(p.id.starts_with(&format!("lw-{}-", kind.slug())));
        assert!(p.summary.contains(&input.finding_id));
        for f in &p.files {
            assert_eq!(f.sha256, common::sha256_hex(&f.bytes), "{}", f.name);
            if f.name.ends_with(".json") {
                let v = json_of(f);
                let version = v
                    .get("version")
                    .or_else(|| v.get("leakwatch_packet_version"))
                    .and_then(Value::as_u64);
                assert_eq!(version, Some(u64::from(PACKET_VERSION)), "{}", f.name);
            }
        }
    }
}

#[test]
fn takedown_json_is_valid_xarf_v4() {
    let p = build_ok(PacketKind::Takedown, &fixture(20));
    let v = json_of(file(&p, "takedown.json"));
    let errors = validate_xarf_v4(&v);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(v["xarf_version"], XARF_VERSION);
    assert_eq!(v["category"], "content");
    assert_eq!(v["type"], "exposed_data");
    assert_eq!(v["source_identifier"], "qq:group:736451920");
    assert_eq!(v["url"], "https://qm.qq.com/q/AbCdEf123");
    assert_eq!(v["reporter"]["domain"], "delivery.example.com");
    assert_eq!(v["record_count"], 5_321);
    assert_eq!(v["leakwatch_packet_version"], 1);
    // Evidence is referenced by SHA-256 of the preserved originals, inside the payload.
    let evidence = v["evidence"].as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(evidence, 3, "two ledger refs + one offer capture");
    assert_eq!(v["timestamp"], common::rfc3339(&t(-86_400)));
}

#[test]
fn takedown_contains_no_sample_pii() {
    let input = fixture(50);
    let p = build_ok(PacketKind::Takedown, &input);
    for f in &p.files {
        for r in &input.sample_rows {
            for needle in [&r.name, &r.phone, &r.address, &r.masked_phone] {
                assert!(!contains(&f.bytes, needle), "{} leaks {needle}", f.name);
            }
        }
        // And no mainland mobile number at all.
        let text = String::from_utf8_lossy(&f.bytes);
        assert_eq!(
            scrub::mask_mobile_numbers(&text),
            text,
            "{} has a phone number",
            f.name
        );
    }
    let letter = String::from_utf8_lossy(&file(&p, "letter.txt").bytes).to_string();
    for want in [
        "736451920",
        "《中华人民共和国个人信息保护法》第十条",
        "第二百五十三条之一",
        "第四十七条",
        "保全",
        "Personal Information Protection Law",
        "Article 253-1",
        "preserve",
        "5,321",
    ] {
        assert!(letter.contains(want), "letter lacks {want}");
    }
}

#[test]
fn takedown_caps_evidence_at_the_xarf_limit() {
    let mut input = fixture(0);
    input.evidence = (0..120)
        .map(|i| EvidenceRef {
            ledger_index: i,
            kind: "capture".into(),
            sha256: sha('d'),
            description: "x".repeat(2_000),
        })
        .collect();
    let p = build_ok(PacketKind::Takedown, &input);
    let v = json_of(file(&p, "takedown.json"));
    assert!(validate_xarf_v4(&v).is_empty());
    assert_eq!(v["evidence"].as_array().map(Vec::len), Some(50));
    assert_eq!(v["leakwatch"]["evidence_items_omitted"], 71);
}

#[test]
fn police_pdf_has_extractable_chinese_and_renders() {
    let input = fixture(30);
    let p = build_ok(PacketKind::Police, &input);
    let pdf = file(&p, "police-report.pdf");
    assert!(pdf.bytes.starts_with(b"%PDF"), "not a PDF");
    assert_eq!(pdf.media_type, "application/pdf");
    let path = write_tmp("police.pdf", &pdf.bytes);
    let text = pdftotext(&path, None);
    let squashed: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    for want in [
        "关于QQ群“外卖数据当日新鲜”(736451920)侵犯公民个人信息线索的报案材料",
        "基本情况",
        "出售信息",
        "样本核验结果",
        "危害程度",
        "疑似泄露源",
        "证据清单(SHA-256)",
        "报案单位",
        "5,321人",
        "情节严重",
        "第五条第一款第五项",
        "第1页/共",
        &row(29).name,
        &row(29).phone,
    ] {
        let want: String = want.chars().filter(|c| !c.is_whitespace()).collect();
        assert!(
            squashed.contains(&want),
            "pdftotext output lacks {want}:\n{text}"
        );
    }
    // The insider reading (a merchant flagged as insider) halves the standard: 5,321 ≥ 2,500.
    assert!(squashed.contains("第五条第一款第八项"));

    let prefix = path.with_extension("");
    let out = poppler(
        "pdftoppm",
        &[
            "-png",
            "-r",
            "50",
            "-f",
            "1",
            "-l",
            "1",
            &path.to_string_lossy(),
            &prefix.to_string_lossy(),
        ],
    );
    assert!(
        out.status.success(),
        "pdftoppm failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = prefix.parent().map(Path::to_path_buf).unwrap_or_default();
    let stem = prefix
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let rendered = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(Result::ok).any(|e| {
                let n = e.file_name().to_string_lossy().to_string();
                n.starts_with(&stem)
                    && n.ends_with(".png")
                    && e.metadata().map(|m| m.len() > 1000).unwrap_or(false)
            })
        })
        .unwrap_or(false);
    assert!(
        rendered,
        "pdftoppm produced no page image in {}",
        dir.display()
    );
}

#[test]
fn police_json_carries_tier_victims_and_unmasked_samples() {
    let input = fixture(5);
    let p = build_ok(PacketKind::Police, &input);
    let v = json_of(file(&p, "police-report.json"));
    assert_eq!(v["severity"]["verified"]["level"], "serious");
    assert_eq!(v["severity"]["verified"]["serious_threshold"], 5_000);
    assert_eq!(
        v["severity"]["if_insider_source"]["serious_threshold"],
        2_500
    );
    assert_eq!(
        v["severity"]["claimed_volume_unverified"]["level"],
        "especially_serious"
    );
    assert_eq!(
        v["verification"]["victims_by_data_type"][2]["data_type"],
        "收货地址"
    );
    assert_eq!(
        v["verification"]["victims_by_data_type"][2]["distinct_customers"],
        5_321
    );
    assert_eq!(v["sample_rows_unmasked"][4]["phone"], row(4).phone);
    assert_eq!(v["suspected_sources"][0]["actor_id"], "M-88231");
    assert_eq!(v["evidence_bundle"]["bundle_sha256"], sha('c'));
}

#[test]
fn police_pdf_paginates_ten_thousand_sample_rows() {
    let input = fixture(10_000);
    let p = build_ok(PacketKind::Police, &input);
    let pdf = file(&p, "police-report.pdf");
    let path = write_tmp("police-10k.pdf", &pdf.bytes);
    let pages = pdf_pages(&path);
    assert!(pages > 100, "only {pages} pages for 10,000 rows");
    let last = pdftotext(&path, Some((pages, pages)));
    let squashed: String = last.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(
        squashed.contains(&row(9_999).name),
        "last page lacks the last row"
    );
    assert!(squashed.contains(&format!("第{pages}页/共{pages}页")));
    // The header repeats on continuation pages.
    assert!(squashed.contains("收货地址"));
}

#[test]
fn breach_notice_has_every_pipl_article_57_item() {
    let input = fixture(20);
    let p = build_ok(PacketKind::BreachNotice, &input);
    let v = json_of(file(&p, "breach-notice.json"));
    for key in breach::ART57_KEYS {
        let ok = match &v[key] {
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
            _ => false,
        };
        assert!(ok, "breach-notice.json lacks {key}");
    }
    assert_eq!(v["version"], 1);
    assert_eq!(
        v["legal_basis"],
        "《中华人民共和国个人信息保护法》第五十七条"
    );
    assert_eq!(v["contact"]["email"], "security@delivery.example.com");
    assert_eq!(v["scope"]["affected_individuals"], 5_321);
    assert_eq!(v["information_types"][2], "收货地址");
    let text = String::from_utf8_lossy(&file(&p, "breach-notice.txt").bytes).to_string();
    for want in [
        "信息种类",
        "原因",
        "危害",
        "补救措施",
        "减轻危害",
        "联系方式",
        "第五十七条",
        "96110",
    ] {
        assert!(text.contains(want), "breach-notice.txt lacks {want}");
    }
    for f in &p.files {
        for r in &input.sample_rows {
            for needle in [&r.name, &r.phone, &r.address] {
                assert!(!contains(&f.bytes, needle), "{} leaks {needle}", f.name);
            }
        }
        assert!(!contains(&f.bytes, "M-88231"), "{} names a suspect", f.name);
    }
}

#[test]
fn builds_are_reproducible() {
    let input = fixture(10);
    for kind in [
        PacketKind::Takedown,
        PacketKind::Police,
        PacketKind::BreachNotice,
    ] {
        let a = build_ok(kind, &input);
        let b = build_ok(kind, &input);
        assert_eq!(a.id, b.id);
        for (fa, fb) in a.files.iter().zip(&b.files) {
            // printpdf's resource names come from a process-wide counter; see pdf.rs.
            if fa.media_type != "application/pdf" {
                assert_eq!(fa, fb, "{} differs between two builds", fa.name);
            }
        }
    }
    let mut later = fixture(10);
    later.generated_at += Duration::seconds(1);
    assert_ne!(
        build_ok(PacketKind::Takedown, &input).id,
        build_ok(PacketKind::Takedown, &later).id
    );
}

#[test]
fn rejects_unapproved_or_malformed_input() {
    let mut input = fixture(1);
    input.approvals.clear();
    assert!(matches!(
        build(PacketKind::Takedown, &input, &font()),
        Err(PacketError::NotApproved(_))
    ));
    let mut input = fixture(1);
    input.platform = "wechat".into();
    assert!(matches!(
        build(PacketKind::Police, &input, &font()),
        Err(PacketError::InvalidInput {
            field: "platform",
            ..
        })
    ));
    let mut input = fixture(1);
    input.evidence[0].sha256 = "not-a-hash".into();
    assert!(matches!(
        build(PacketKind::BreachNotice, &input, &font()),
        Err(PacketError::InvalidInput { .. })
    ));
    let mut input = fixture(1);
    input.reporter.contact_email = "nobody".into();
    assert!(matches!(
        build(PacketKind::Takedown, &input, &font()),
        Err(PacketError::InvalidInput {
            field: "reporter.contact_email",
            ..
        })
    ));
}

#[test]
fn missing_font_only_matters_for_police() {
    let input = fixture(1);
    let nowhere = Path::new("/nonexistent/font.ttf");
    assert!(matches!(
        build(PacketKind::Police, &input, nowhere),
        Err(PacketError::Font { .. })
    ));
    assert!(build(PacketKind::Takedown, &input, nowhere).is_ok());
    assert!(build(PacketKind::BreachNotice, &input, nowhere).is_ok());
}

#[test]
fn empty_and_extreme_inputs_build() {
    let mut empty = fixture(0);
    empty.group_name = None;
    empty.group_link = String::new();
    empty.member_count = None;
    empty.sellers.clear();
    empty.offers.clear();
    empty.timeline.clear();
    empty.verified = Verification::default();
    empty.suspects.clear();
    empty.evidence.clear();
    empty.bundle = None;
    empty.reporter.unified_social_credit_code = None;
    let mut huge = fixture(3);
    huge.platform = "Telegram".into();
    huge.group_link = "t.me/+not a uri".into();
    huge.verified.rows_checked = u64::MAX;
    huge.verified.rows_matched = u64::MAX;
    huge.verified.distinct_customers = u64::MAX;
    huge.offers[0].volume_records = Some(u64::MAX);
    huge.offers[0].price_per_record_fen = Some(u64::MAX);
    huge.suspects[0].lift = f64::NAN;
    huge.sample_rows[0].address = "很长的地址".repeat(400);
    huge.sample_rows[1].name = "\t\u{0}\u{1F600}".into();
    huge.group_name = Some("群".repeat(300));
    for input in [&empty, &huge] {
        for kind in [
            PacketKind::Takedown,
            PacketKind::Police,
            PacketKind::BreachNotice,
        ] {
            let p = build_ok(kind, input);
            if kind == PacketKind::Takedown {
                let v = json_of(file(&p, "takedown.json"));
                assert!(
                    validate_xarf_v4(&v).is_empty(),
                    "{:?}",
                    validate_xarf_v4(&v)
                );
            }
        }
    }
    let p = build_ok(PacketKind::Takedown, &huge);
    let v = json_of(file(&p, "takedown.json"));
    assert!(
        v["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("urn:leakwatch:telegram-group:"))
    );
}

#[test]
fn wrapping_respects_width_and_keeps_every_character() {
    let layout = match pdf::Layout::new(&font(), "t", "h") {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    };
    let text = "上海市浦东新区样例路100弄5号 verification-of-a-very-long-latin-word and words 中文混排 SHA-256 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n第二段";
    for max_w in [40.0f32, 90.0, 200.0] {
        let lines = layout.wrap(text, max_w, 8.0);
        for l in &lines {
            assert!(
                layout.measure(l, 8.0) <= max_w + 0.01 || l.chars().count() == 1,
                "{l:?} wider than {max_w}"
            );
        }
        let joined: String = lines
            .concat()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let want: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        assert_eq!(joined, want, "characters lost at width {max_w}");
    }
    // Latin words that fit are not split.
    let lines = layout.wrap("alpha beta gamma delta epsilon", 60.0, 8.0);
    assert!(
        lines.iter().all(|l| l
            .split(' ')
            .all(|w| "alpha beta gamma delta epsilon".split(' ').any(|x| x == w))),
        "{lines:?}"
    );
}

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z0-9@._ -]{0,20}",
        "\\PC{0,40}",
        Just("13912345678".to_string()),
    ]
}

prop_compose! {
    fn arb_input()(
        group in arb_text(),
        name in proptest::option::of(arb_text()),
        link in arb_text(),
        counts in proptest::array::uniform4(any::<u64>()),
        notes in proptest::collection::vec(arb_text(), 0..4),
        rows in proptest::collection::vec((arb_text(), arb_text(), arb_text()), 0..6),
        insider in any::<bool>(),
        category in prop_oneof![Just(DataCategory::Sensitive), Just(DataCategory::Transaction), Just(DataCategory::Other)],
    ) -> PacketInput {
        let mut input = fixture(0);
        input.group_id = format!("g{group}");
        input.group_name = name;
        input.group_link = link;
        input.verified.rows_checked = counts[0].max(counts[1]);
        input.verified.rows_matched = counts[0].min(counts[1]);
        input.verified.distinct_customers = counts[2];
        input.verified.distinct_orders = counts[3];
        input.timeline = notes.into_iter().enumerate().map(|(i, what)| TimelineItem { at: t(i as i64), what, ledger_index: None }).collect();
        input.sample_rows = rows.into_iter().map(|(name, phone, address)| SampleRowFull { masked_phone: scrub::mask_phone(&phone), name, phone, address, order_time: None }).collect();
        input.suspects[0].insider = insider;
        input.data_category = category;
        input
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn text_packets_never_panic_and_never_leak(input in arb_input()) {
        for kind in [PacketKind::Takedown, PacketKind::BreachNotice] {
            let p = build(kind, &input, Path::new("/unused"));
            prop_assert!(p.is_ok(), "{:?}", p.err());
            if let Ok(p) = p {
                for f in &p.files {
                    for r in &input.sample_rows {
                        for v in [&r.name, &r.address] {
                            if v.trim().chars().count() >= 4 && !v.is_ascii() {
                                prop_assert!(!contains(&f.bytes, v.trim()), "{} leaks {:?}", f.name, v);
                            }
                        }
                    }
                }
                if kind == PacketKind::Takedown {
                    let v = json_of(file(&p, "takedown.json"));
                    prop_assert!(validate_xarf_v4(&v).is_empty());
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    #[test]
    fn police_never_panics(input in arb_input()) {
        let p = build(PacketKind::Police, &input, &font());
        prop_assert!(p.is_ok(), "{:?}", p.err());
    }
}
