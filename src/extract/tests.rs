//! Tests across the module: the simulator's messages end to end, a precision/recall self-check
//! on generated rows, every file format (including hostile archives), and no-panic properties
//! on arbitrary input.

use super::*;
use std::io::Write;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Messages

#[test]
fn simulator_offer_message() {
    let ex = extract_text(
        "美团外卖数据 0.1元/条 日更3000+ 当天 深圳本地单 姓名+电话+地址 微信:wm_data_888 TG:@wmdata_cn 私聊QQ2100000001",
    );
    assert!(ex.rows.is_empty());
    assert!(!ex.truncated);
    let o = ex.offer.expect("an offer");
    assert_eq!(o.price_per_record_fen, Some(10));
    assert_eq!(o.daily_volume, Some(3000));
    assert_eq!(o.contacts.len(), 3);
}

#[test]
fn simulator_sample_message() {
    let text = "样本：\n张伟 13812345678 北京市海淀区第一人民医院住院部3楼12病房 11-23 06:58\n李娜 138****5678 上海市浦东新区如家酒店501房 10-02 19:20\r\n王芳 +86 150 1234 5678 广东省深圳市南山区网鱼网咖12号机 09-15 12:01\n";
    let ex = extract_text(text);
    assert_eq!(ex.offer, None, "a sample post is not an offer");
    assert_eq!(ex.rows.len(), 3);
    assert_eq!(ex.rows[0].phone.as_deref(), Some("13812345678"));
    assert_eq!(ex.rows[1].masked_phone.as_deref(), Some("138****5678"));
    assert_eq!(ex.rows[2].phone.as_deref(), Some("15012345678"));
    assert_eq!(
        ex.rows[2].raw,
        "王芳 +86 150 1234 5678 广东省深圳市南山区网鱼网咖12号机 09-15 12:01"
    );
    assert!(ex.notes.is_empty());
}

#[test]
fn offer_and_rows_in_one_message() {
    let ex = extract_text(
        "出饿了么外卖数据 一毛一条 1万条起 实时 成都本地单\n样本:\n周杰 139****0001 四川省成都市锦江区汉庭酒店5101房 11-02 08:15",
    );
    let o = ex.offer.expect("an offer");
    assert_eq!(o.platforms, ["饿了么"]);
    assert_eq!(o.volume_records, Some(10_000));
    assert_eq!(ex.rows.len(), 1);
    assert_eq!(ex.rows[0].district.as_deref(), Some("锦江区"));
}

#[test]
fn chatter_gives_nothing() {
    for text in [
        "有人吗",
        "今天的数据什么时候发",
        "这个价格太贵了吧",
        "昨天的还有吗",
        "群主在吗",
        "新人报到",
        "老板靠谱吗",
        "收到了，谢谢",
        "[CQ:face,id=178]",
        "私聊",
        "",
    ] {
        let ex = extract_text(text);
        assert_eq!(ex, Extraction::default(), "{text}");
    }
}

#[test]
fn serialises_round_trip() {
    let ex = extract_text("美团外卖数据 0.1元/条 微信:abc\n张伟 13812345678 北京市海淀区xx路1号");
    let json = serde_json::to_string(&ex).expect("serialise");
    let back: Extraction = serde_json::from_str(&json).expect("deserialise");
    assert_eq!(back, ex);
    assert_eq!(EXTRACTOR_VERSION, "extract/1");
}

// ---------------------------------------------------------------------------------------------
// Precision / recall self-check

/// A tiny deterministic generator (64-bit LCG, high bits).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

struct Expected {
    line: String,
    name: String,
    phone: Option<String>,
    masked: Option<String>,
    address: String,
}

fn generate_rows(n: usize) -> Vec<Expected> {
    const SURNAMES: &[&str] = &[
        "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡",
        "郭", "何", "林", "罗", "高", "郑", "梁", "谢", "宋", "唐", "韩", "冯", "邓", "曹", "彭",
        "欧阳", "司马", "诸葛",
    ];
    const GIVEN: &[&str] = &[
        "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛",
        "明", "超", "秀英", "霞", "平", "刚", "桂英", "建华", "晓东", "子涵", "浩然", "一鸣",
        "思琪",
    ];
    const REGIONS: &[&str] = &[
        "北京市海淀区",
        "北京市朝阳区",
        "上海市浦东新区",
        "上海市静安区",
        "广东省深圳市南山区",
        "广东省广州市天河区",
        "浙江省杭州市西湖区",
        "四川省成都市武侯区",
        "江苏省南京市鼓楼区",
        "湖北省武汉市洪山区",
        "深圳市福田区",
        "重庆市渝中区",
    ];
    const PLACES: &[&str] = &[
        "第一人民医院住院部{n}楼{m}病房",
        "中心医院外科{m}床",
        "如家酒店{n}0{m}房",
        "汉庭酒店{n}1{m}房",
        "网鱼网咖{m}号机",
        "星际网吧A区{m}号座",
        "阳光小区{n}栋{m}室",
        "科技园{n}号楼{m}层前台",
        "中关村大街{m}号",
        "幸福路{m}号{n}单元",
        "世纪公寓{n}栋{m}号",
    ];
    const PREFIXES: &[&str] = &[
        "130", "133", "135", "136", "138", "139", "150", "151", "157", "166", "177", "180", "186",
        "187", "188", "191", "199",
    ];
    const SEPS: &[&str] = &[" ", "\t", ",", "，", " | ", "  ", "/"];
    let mut rng = Lcg(0x1eaf_5eed);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        // One name in 50 has a surname outside the extractor's table.
        let surname = if rng.below(50) == 0 {
            "邴"
        } else {
            rng.pick(SURNAMES)
        };
        let name = format!("{surname}{}", rng.pick(GIVEN));
        let digits = format!("{}{:08}", rng.pick(PREFIXES), rng.next() % 100_000_000);
        let place = rng
            .pick(PLACES)
            .replace("{n}", &(1 + rng.below(19)).to_string())
            .replace("{m}", &(1 + rng.below(39)).to_string());
        // One address in six has no region prefix at all.
        let region = if rng.below(6) == 0 {
            ""
        } else {
            rng.pick(REGIONS)
        };
        let address = format!("{region}{place}");
        let (head, mid, tail) = (&digits[..3], &digits[3..7], &digits[7..]);
        let (written, phone, masked) = match rng.below(8) {
            0 | 1 => (digits.clone(), Some(digits.clone()), None),
            2 => (
                format!("{head}****{tail}"),
                None,
                Some(format!("{head}****{tail}")),
            ),
            3 => (
                format!("{head}xxxx{tail}"),
                None,
                Some(format!("{head}****{tail}")),
            ),
            4 => (
                format!("{head}＊＊＊＊{tail}"),
                None,
                Some(format!("{head}****{tail}")),
            ),
            5 => (
                format!("+86 {head} {mid} {tail}"),
                Some(digits.clone()),
                None,
            ),
            6 => (
                digits
                    .chars()
                    .map(|c| char::from_u32(c as u32 + 0xFEE0).unwrap_or(c))
                    .collect(),
                Some(digits.clone()),
                None,
            ),
            _ => (format!("{head}-{mid}-{tail}"), Some(digits.clone()), None),
        };
        let time = match rng.below(4) {
            0 => format!(
                "{:02}-{:02} {:02}:{:02}",
                9 + rng.below(3),
                1 + rng.below(28),
                rng.below(24),
                rng.below(60)
            ),
            1 => format!(
                "2026-{:02}-{:02} {:02}:{:02}",
                9 + rng.below(3),
                1 + rng.below(28),
                rng.below(24),
                rng.below(60)
            ),
            2 => format!("{:02}:{:02}", rng.below(24), rng.below(60)),
            _ => String::new(),
        };
        let sep = *rng.pick(SEPS);
        let mut fields = match rng.below(6) {
            0 => vec![written.clone(), name.clone(), address.clone()],
            1 => vec![
                format!("姓名:{name}"),
                format!("电话:{written}"),
                format!("地址:{address}"),
            ],
            2 => vec![
                format!("收货人：{name}"),
                format!("手机：{written}"),
                format!("收货地址：{address}"),
            ],
            _ => vec![name.clone(), written.clone(), address.clone()],
        };
        if !time.is_empty() {
            fields.push(time);
        }
        if rng.below(6) == 0 {
            fields.push(format!("¥{}.{}", 10 + rng.below(90), rng.below(10)));
        }
        out.push(Expected {
            line: fields.join(sep),
            name,
            phone,
            masked,
            address,
        });
    }
    out
}

#[test]
fn precision_recall_self_check() {
    let expected = generate_rows(500);
    let text: String = expected.iter().map(|e| format!("{}\n", e.line)).collect();
    let ex = extract_text(&text);
    assert_eq!(ex.offer, None);
    let mut by_raw = std::collections::HashMap::new();
    for r in &ex.rows {
        by_raw.insert(r.raw.clone(), r);
    }
    let (mut phones, mut phones_total) = (0, 0);
    let (mut masked, mut masked_total) = (0, 0);
    let (mut names, mut addresses) = (0, 0);
    let mut misses = Vec::new();
    for e in &expected {
        let got = by_raw.get(e.line.trim());
        if e.phone.is_some() {
            phones_total += 1;
            if got.is_some_and(|r| r.phone == e.phone) {
                phones += 1;
            }
        }
        if e.masked.is_some() {
            masked_total += 1;
            if got.is_some_and(|r| r.masked_phone == e.masked) {
                masked += 1;
            }
        }
        if got.is_some_and(|r| r.name.as_deref() == Some(e.name.as_str())) {
            names += 1;
        } else {
            misses.push(format!("name {:?} in {:?}", e.name, e.line));
        }
        if got.is_some_and(|r| r.address.as_deref() == Some(e.address.as_str())) {
            addresses += 1;
        } else {
            misses.push(format!(
                "address {:?} in {:?}: {:?}",
                e.address,
                e.line,
                got.map(|r| &r.address)
            ));
        }
    }
    let rate = |ok: usize, total: usize| ok as f64 / total.max(1) as f64;
    let report = format!(
        "phones {phones}/{phones_total}, masked {masked}/{masked_total}, names {names}/500, addresses {addresses}/500; misses: {misses:#?}"
    );
    assert!(phones_total > 100 && masked_total > 100, "{report}");
    assert!(rate(phones, phones_total) >= 0.98, "{report}");
    assert!(rate(masked, masked_total) >= 0.98, "{report}");
    assert!(rate(names, 500) >= 0.98, "{report}");
    assert!(rate(addresses, 500) >= 0.98, "{report}");
    // Precision: nothing extracted that was not generated.
    assert_eq!(ex.rows.len(), 500, "{report}");
}

// ---------------------------------------------------------------------------------------------
// Files

const SIM_CSV: &str = "姓名,电话,地址,下单时间\n刘强,13912345678,浙江省杭州市西湖区阳光小区5栋302室,2026-10-11T18:30\n陈静,13712345670,四川省成都市高新区科技园3号楼5层前台,2026-09-02T07:05\n";

#[test]
fn csv_with_header() {
    let ex = extract_file("外卖订单样本.csv", SIM_CSV.as_bytes());
    assert_eq!(ex.rows.len(), 2, "{ex:?}");
    let r = &ex.rows[0];
    assert_eq!(r.name.as_deref(), Some("刘强"));
    assert_eq!(r.phone.as_deref(), Some("13912345678"));
    assert_eq!(
        r.address.as_deref(),
        Some("浙江省杭州市西湖区阳光小区5栋302室")
    );
    assert_eq!(r.province.as_deref(), Some("浙江省"));
    assert_eq!(r.city.as_deref(), Some("杭州市"));
    assert_eq!(r.district.as_deref(), Some("西湖区"));
    assert_eq!(r.order_time.as_deref(), Some("2026-10-11 18:30"));
    assert_eq!(
        r.raw,
        "刘强\t13912345678\t浙江省杭州市西湖区阳光小区5栋302室\t2026-10-11T18:30"
    );
    assert_eq!(ex.rows[1].district.as_deref(), Some("高新区"));
    assert_eq!(ex.offer, None);
    assert!(ex.notes.is_empty(), "{:?}", ex.notes);

    // English headers, quoted cells, masked phones, amounts, a row without a phone skipped.
    let csv = "Name,Phone,Address,Time,Amount\n\"Zhang, Wei\",138****5678,\"上海市静安区xx路1号, 3楼\",10-02 19:20,¥35.5\n李四,,北京市海淀区,,\n";
    let ex = extract_file("orders.csv", csv.as_bytes());
    assert_eq!(ex.rows.len(), 1, "{ex:?}");
    assert_eq!(ex.rows[0].name.as_deref(), Some("Zhang, Wei"));
    assert_eq!(ex.rows[0].masked_phone.as_deref(), Some("138****5678"));
    assert_eq!(
        ex.rows[0].address.as_deref(),
        Some("上海市静安区xx路1号, 3楼")
    );
    assert_eq!(ex.rows[0].amount_fen, Some(3550));
    assert_eq!(ex.rows[0].order_time.as_deref(), Some("10-02 19:20"));
    assert_eq!(ex.notes.len(), 1, "{:?}", ex.notes);
}

#[test]
fn csv_without_header_is_read_as_lines() {
    let csv = "刘强,13912345678,浙江省杭州市西湖区阳光小区5栋302室,2026-10-11T18:30\n张伟，138-1234-5678，北京市海淀区中关村大街1号，11-23 06:58\n";
    let ex = extract_file("rows.csv", csv.as_bytes());
    assert_eq!(ex.rows.len(), 2, "{ex:?}");
    assert_eq!(ex.rows[0].name.as_deref(), Some("刘强"));
    assert_eq!(ex.rows[0].order_time.as_deref(), Some("2026-10-11 18:30"));
    assert_eq!(ex.rows[1].phone.as_deref(), Some("13812345678"));
    assert_eq!(
        ex.rows[1].address.as_deref(),
        Some("北京市海淀区中关村大街1号")
    );
}

#[test]
fn txt_files() {
    let txt = "张伟 13812345678 北京市海淀区第一人民医院住院部3楼12病房 11-23 06:58\n李娜 138****5678 上海市浦东新区如家酒店501房 10-02 19:20\n";
    let ex = extract_file("样本数据.txt", txt.as_bytes());
    assert_eq!(ex.rows.len(), 2);
    assert_eq!(ex, extract_text(txt), "a .txt reads like a message");

    // A .txt that is really a CSV with a header.
    let ex = extract_file("样本数据.txt", SIM_CSV.as_bytes());
    assert_eq!(ex.rows.len(), 2);
    assert_eq!(ex.rows[0].order_time.as_deref(), Some("2026-10-11 18:30"));

    // GB18030/GBK as Chinese Windows tools write it.
    let (gbk, _, _) = encoding_rs::GBK.encode(txt);
    let ex = extract_file("样本.txt", &gbk);
    assert_eq!(ex.rows.len(), 2, "{ex:?}");
    assert_eq!(ex.rows[0].name.as_deref(), Some("张伟"));
    assert_eq!(ex.notes, ["decoded as GB18030"]);

    // UTF-16 with a BOM.
    let mut utf16 = vec![0xFF, 0xFE];
    for u in txt.encode_utf16() {
        utf16.extend_from_slice(&u.to_le_bytes());
    }
    let ex = extract_file("样本.txt", &utf16);
    assert_eq!(ex.rows.len(), 2, "{ex:?}");

    // A UTF-8 BOM is not part of the first name.
    let ex = extract_file("样本.txt", format!("\u{feff}{txt}").as_bytes());
    assert_eq!(ex.rows[0].name.as_deref(), Some("张伟"));
}

#[test]
fn invalid_utf8_txt_is_replaced_not_fatal() {
    let mut bytes = "张伟 13812345678 北京市海淀区xx路1号\n".as_bytes().to_vec();
    bytes.extend_from_slice(&[0xFF, 0xFE, 0xFD, 0x80, b'\n']);
    bytes.extend_from_slice("李娜 138****5678 上海市浦东新区如家酒店501房\n".as_bytes());
    let ex = extract_file("bad.txt", &bytes);
    assert_eq!(ex.rows.len(), 2, "{ex:?}");
    assert_eq!(ex.notes, ["invalid UTF-8 replaced with U+FFFD"]);
    let ex = extract_file("bad.txt", &[0xFF; 4096]);
    assert!(ex.rows.is_empty());
}

#[test]
fn file_names_are_display_names_only() {
    // Treated as a nameless text file: its bytes are read, never the path it names.
    let ex = extract_file("../../etc/passwd", b"root:x:0:0:root:/root:/bin/bash\n");
    assert_eq!(ex.offer, None);
    assert!(ex.rows.is_empty());
    let ex = extract_file(
        "../../etc/passwd",
        "张伟 13812345678 北京市海淀区xx路1号".as_bytes(),
    );
    assert_eq!(ex.rows.len(), 1);
    let ex = extract_file("/dev/zero", b"");
    assert_eq!(ex, Extraction::default());
    let ex = extract_file("C:\\Windows\\x.xlsx", b"not a zip");
    assert!(
        ex.notes[0].starts_with("xlsx refused: not a readable zip archive"),
        "{ex:?}"
    );
}

#[test]
fn images_and_unsupported_formats_are_noted() {
    let ex = extract_file("shot.jpg", b"\x89PNG\r\n\x1a\n....");
    assert!(ex.notes[0].contains("ocr_image"), "{ex:?}");
    let ex = extract_file("old.xls", b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1");
    assert!(ex.notes[0].starts_with("not extracted"), "{ex:?}");
    let ex = extract_file("doc.pdf", b"%PDF-1.7");
    assert!(ex.notes[0].starts_with("not extracted"), "{ex:?}");
}

/// Writes a workbook with the zip crate: either inline strings or a shared string table.
fn build_xlsx(rows: &[Vec<&str>], shared: bool) -> Vec<u8> {
    fn esc(s: &str) -> String {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    }
    let mut strings: Vec<String> = Vec::new();
    let mut sheet = String::from(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#,
    );
    for (r, row) in rows.iter().enumerate() {
        sheet.push_str(&format!(r#"<row r="{}">"#, r + 1));
        for (c, cell) in row.iter().enumerate() {
            let col = char::from(b'A' + c as u8);
            let reference = format!("{col}{}", r + 1);
            if cell.chars().all(|ch| ch.is_ascii_digit()) && !cell.is_empty() {
                // Numbers as numbers, as Excel stores a phone typed into a cell.
                sheet.push_str(&format!(r#"<c r="{reference}"><v>{cell}</v></c>"#));
            } else if shared {
                let i = strings.len();
                strings.push(esc(cell));
                sheet.push_str(&format!(r#"<c r="{reference}" t="s"><v>{i}</v></c>"#));
            } else {
                sheet.push_str(&format!(
                    r#"<c r="{reference}" t="inlineStr"><is><t>{}</t></is></c>"#,
                    esc(cell)
                ));
            }
        }
        sheet.push_str("</row>");
    }
    sheet.push_str("</sheetData></worksheet>");
    let mut files: Vec<(&str, String)> = vec![
        ("[Content_Types].xml", r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/></Types>"#.into()),
        ("_rels/.rels", r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#.into()),
        ("xl/workbook.xml", r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="订单" sheetId="1" r:id="rId7"/><sheet name="Other" sheetId="2" r:id="rId1"/></sheets></workbook>"#.into()),
        ("xl/_rels/workbook.xml.rels", r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId7" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet2.xml"/><Relationship Id="rId9" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>"#.into()),
        // The workbook's first sheet is sheet2.xml (rId7); sheet1.xml is a decoy.
        ("xl/worksheets/sheet1.xml", r#"<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>decoy</t></is></c></row></sheetData></worksheet>"#.into()),
        ("xl/worksheets/sheet2.xml", sheet),
    ];
    if shared {
        let mut sst = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="{0}" uniqueCount="{0}">"#,
            strings.len()
        );
        for (i, s) in strings.iter().enumerate() {
            // Alternate plain and rich-text entries (runs plus a phonetic run that is skipped).
            if i % 2 == 0 {
                sst.push_str(&format!("<si><t>{s}</t></si>"));
            } else {
                sst.push_str(&format!(
                    r#"<si><r><rPr><b/></rPr><t xml:space="preserve">{s}</t></r><rPh sb="0" eb="1"><t>ピン</t></rPh></si>"#
                ));
            }
        }
        sst.push_str("</sst>");
        files.push(("xl/sharedStrings.xml", sst));
    }
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, body) in files {
            z.start_file(name, opts).expect("start entry");
            z.write_all(body.as_bytes()).expect("write entry");
        }
        z.finish().expect("finish zip");
    }
    buf.into_inner()
}

fn sim_table() -> Vec<Vec<&'static str>> {
    vec![
        vec!["姓名", "电话", "地址", "下单时间"],
        vec![
            "刘强",
            "13912345678",
            "浙江省杭州市西湖区阳光小区5栋302室",
            "2026-10-11T18:30",
        ],
        vec![
            "王秀英",
            "15012345678",
            "广东省深圳市南山区网鱼网咖12号机",
            "2026-09-15T12:01",
        ],
        vec![
            "赵敏",
            "138****5678",
            "上海市浦东新区如家酒店501房 & 前台",
            "2026-11-23T06:58",
        ],
    ]
}

fn check_sim_table(ex: &Extraction) {
    assert_eq!(ex.rows.len(), 3, "{ex:?}");
    assert!(ex.notes.is_empty(), "{:?}", ex.notes);
    let r = &ex.rows[0];
    assert_eq!(r.name.as_deref(), Some("刘强"));
    assert_eq!(r.phone.as_deref(), Some("13912345678"));
    assert_eq!(
        r.address.as_deref(),
        Some("浙江省杭州市西湖区阳光小区5栋302室")
    );
    assert_eq!(r.district.as_deref(), Some("西湖区"));
    assert_eq!(r.order_time.as_deref(), Some("2026-10-11 18:30"));
    assert_eq!(ex.rows[1].name.as_deref(), Some("王秀英"));
    assert_eq!(ex.rows[1].city.as_deref(), Some("深圳市"));
    assert_eq!(ex.rows[2].masked_phone.as_deref(), Some("138****5678"));
    assert_eq!(
        ex.rows[2].address.as_deref(),
        Some("上海市浦东新区如家酒店501房 & 前台")
    );
}

#[test]
fn xlsx_inline_strings() {
    let bytes = build_xlsx(&sim_table(), false);
    check_sim_table(&extract_file("订单样本.xlsx", &bytes));
    // Content sniffing: the same bytes under a misleading name.
    check_sim_table(&extract_file("样本", &bytes));
}

#[test]
fn xlsx_shared_strings() {
    let bytes = build_xlsx(&sim_table(), true);
    check_sim_table(&extract_file("订单样本.xlsx", &bytes));
}

#[test]
fn xlsx_without_header_reads_rows_as_lines() {
    let rows = vec![
        vec![
            "刘强",
            "13912345678",
            "浙江省杭州市西湖区阳光小区5栋302室",
            "10-11 18:30",
        ],
        vec!["备注", "", "", ""],
    ];
    let ex = extract_file("x.xlsx", &build_xlsx(&rows, true));
    assert_eq!(ex.rows.len(), 1, "{ex:?}");
    assert_eq!(ex.rows[0].order_time.as_deref(), Some("10-11 18:30"));
    assert_eq!(
        ex.rows[0].raw,
        "刘强\t13912345678\t浙江省杭州市西湖区阳光小区5栋302室\t10-11 18:30"
    );
}

#[test]
fn corrupt_xlsx_is_refused_with_a_note() {
    let good = build_xlsx(&sim_table(), false);
    for bad in [
        good[..good.len() / 2].to_vec(),
        b"PK\x03\x04garbage".to_vec(),
        {
            // Flip bytes in the middle of the compressed data.
            let mut b = good.clone();
            for i in (200..b.len().min(1200)).step_by(7) {
                b[i] ^= 0x5A;
            }
            b
        },
    ] {
        let ex = extract_file("x.xlsx", &bad);
        assert!(ex.rows.len() <= 3);
        assert!(
            ex.notes.iter().any(|n| n.starts_with("xlsx")),
            "{:?}",
            ex.notes
        );
    }
}

/// A zip archive written by hand, so that entries can declare any sizes.
/// Entries: (name, method 0 stored / 8 deflated, declared uncompressed size, data).
fn raw_zip(entries: &[(&str, u16, u32, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for &(name, method, size, data) in entries {
        let offset = out.len() as u32;
        let len = data.len() as u32;
        // The CRC is left 0: these archives are refused before anything is inflated or checked.
        let common = |v: &mut Vec<u8>| {
            v.extend_from_slice(&20u16.to_le_bytes()); // version needed
            v.extend_from_slice(&0u16.to_le_bytes()); // flags
            v.extend_from_slice(&method.to_le_bytes());
            v.extend_from_slice(&0u32.to_le_bytes()); // time, date
            v.extend_from_slice(&0u32.to_le_bytes()); // crc
            v.extend_from_slice(&len.to_le_bytes());
            v.extend_from_slice(&size.to_le_bytes());
            v.extend_from_slice(&(name.len() as u16).to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes()); // extra
        };
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        common(&mut out);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes()); // version made by
        common(&mut central);
        central.extend_from_slice(&[0; 8]); // comment len, disk, internal attrs, external attrs (part)
        central.extend_from_slice(&[0; 2]); // external attrs (rest)
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]); // disk numbers
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// A raw deflate stream (fixed Huffman codes) that inflates to `1 + 258 * repeats` zero bytes:
/// one literal zero, then copies of length 258 at distance 1.
fn zeros_deflate(repeats: usize) -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        acc: u64,
        n: u32,
    }
    impl Bits {
        fn put(&mut self, v: u64, len: u32) {
            self.acc |= v << self.n;
            self.n += len;
            while self.n >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.n -= 8;
            }
        }
        /// Huffman codes go most significant bit first.
        fn code(&mut self, code: u64, len: u32) {
            let mut rev = 0;
            for i in 0..len {
                rev |= ((code >> i) & 1) << (len - 1 - i);
            }
            self.put(rev, len);
        }
    }
    let mut b = Bits {
        out: Vec::with_capacity(repeats * 13 / 8 + 16),
        acc: 0,
        n: 0,
    };
    b.put(1, 1); // final block
    b.put(1, 2); // fixed Huffman
    b.code(0x30, 8); // literal 0
    for _ in 0..repeats {
        b.code(0xC5, 8); // length code 285 = 258
        b.code(0, 5); // distance code 0 = 1
    }
    b.code(0, 7); // end of block
    b.put(0, 7); // flush
    b.out
}

/// 406,424 copies: 104,857,393 bytes, i.e. 100 MB of zeros.
const BOMB_REPEATS: usize = 406_424;

#[test]
fn zip_bomb_declared_is_refused_quickly() {
    let data = zeros_deflate(BOMB_REPEATS);
    let size = (1 + 258 * BOMB_REPEATS) as u32;
    let bomb = raw_zip(&[
        ("xl/workbook.xml", 0, 0, b""),
        ("xl/worksheets/sheet1.xml", 8, size, &data),
    ]);
    let started = Instant::now();
    let ex = extract_file("bomb.xlsx", &bomb);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(ex.rows.is_empty());
    assert_eq!(
        ex.notes,
        ["xlsx refused: an entry of 100 MB uncompressed over the 20 MB cap"]
    );
}

#[test]
fn zip_bomb_lying_about_its_size_is_refused_quickly() {
    // Declares 1000 bytes, inflates to 100 MB: the directory looks harmless.
    let data = zeros_deflate(BOMB_REPEATS);
    let bomb = raw_zip(&[("xl/worksheets/sheet1.xml", 8, 1000, &data)]);
    let started = Instant::now();
    let ex = extract_file("bomb.xlsx", &bomb);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(ex.rows.is_empty());
    assert_eq!(ex.notes.len(), 1, "{:?}", ex.notes);
    assert_eq!(
        ex.notes,
        ["xlsx refused: an entry inflates past its declared size"]
    );
}

#[test]
fn zip_guard_limits() {
    // Declared over 200:1 while under the size caps (fixed-Huffman zeros reach ~159:1 for
    // real; the directory's claim is what the guard judges, before inflating).
    let data = zeros_deflate(4000);
    let ex = extract_file("r.xlsx", &raw_zip(&[("a.xml", 8, 2_000_000, &data)]));
    assert_eq!(ex.notes.len(), 1);
    assert!(
        ex.notes[0].starts_with("xlsx refused: compression ratio"),
        "{:?}",
        ex.notes
    );

    // Many small entries adding up past the total cap.
    let names: Vec<String> = (0..30).map(|i| format!("x{i}.xml")).collect();
    let entries: Vec<(&str, u16, u32, &[u8])> = names
        .iter()
        .map(|n| (n.as_str(), 8u16, 1u32 << 20, data.as_slice()))
        .collect();
    let ex = extract_file("t.xlsx", &raw_zip(&entries));
    assert_eq!(
        ex.notes,
        ["xlsx refused: 21 MB uncompressed in total over the 20 MB cap"]
    );

    // Too many entries.
    let names: Vec<String> = (0..1001).map(|i| format!("e{i}")).collect();
    let entries: Vec<(&str, u16, u32, &[u8])> = names
        .iter()
        .map(|n| (n.as_str(), 0u16, 0u32, &b""[..]))
        .collect();
    let ex = extract_file("m.xlsx", &raw_zip(&entries));
    assert_eq!(ex.notes, ["xlsx refused: 1001 entries over the 1000 cap"]);

    // A valid archive with no worksheet.
    let ex = extract_file("n.xlsx", &raw_zip(&[("hello.txt", 0, 2, b"hi")]));
    assert_eq!(ex.notes, ["xlsx refused: no worksheet found"]);
}

#[test]
fn xlsx_hostile_sheets() {
    // Cells at the far corner of the sheet, huge shared-string fan-out, unknown entities.
    let long = "长".repeat(100_000);
    let mut sheet = String::from("<worksheet><sheetData>");
    sheet.push_str(r#"<row r="1"><c r="A1" t="inlineStr"><is><t>姓名</t></is></c><c r="B1" t="inlineStr"><is><t>电话</t></is></c><c r="XFD1048576"><v>1</v></c></row>"#);
    for r in 2..2000 {
        sheet.push_str(&format!(
            r#"<row r="{r}"><c r="A{r}" t="s"><v>0</v></c><c r="B{r}" t="s"><v>999999</v></c><c t="inlineStr"><is><t>&bogus;&#x4E2D;&#0;</t></is></c></row>"#
        ));
    }
    sheet.push_str("</sheetData></worksheet>");
    let sst = format!("<sst><si><t>{long}</t></si></sst>");
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, body) in [
            ("xl/worksheets/sheet1.xml", sheet),
            ("xl/sharedStrings.xml", sst),
        ] {
            z.start_file(name, opts).expect("start");
            z.write_all(body.as_bytes()).expect("write");
        }
        z.finish().expect("finish");
    }
    let started = Instant::now();
    let ex = extract_file("h.xlsx", &buf.into_inner());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(ex.rows.is_empty());
    assert_eq!(ex.notes.len(), 1, "{:?}", ex.notes);
}

// ---------------------------------------------------------------------------------------------
// Hostile text

#[test]
fn ten_megabytes_of_text_is_capped_and_fast() {
    let row = "张伟 13812345678 北京市海淀区第一人民医院住院部3楼12病房 11-23 06:58\n";
    let text = row.repeat(10 * (1 << 20) / row.len() + 1);
    assert!(text.len() > 10 << 20);
    let started = Instant::now();
    let ex = extract_text(&text);
    let took = started.elapsed();
    assert!(ex.truncated);
    assert_eq!(ex.notes.len(), 1);
    assert!(ex.notes[0].starts_with("text truncated"), "{:?}", ex.notes);
    let expected = (MAX_TEXT_BYTES / row.len()) as f64;
    assert!(
        (ex.rows.len() as f64) >= expected * 0.99,
        "{} rows",
        ex.rows.len()
    );
    assert!(took < Duration::from_secs(30), "{took:?}");
}

#[test]
fn hostile_shapes_do_not_blow_up() {
    let cases: Vec<String> = vec![
        "[".repeat(1 << 20),
        "1万条".repeat(100_000),
        "13812345678".repeat(50_000),
        "138****5678 ".repeat(50_000),
        "张伟 ".repeat(100_000),
        "0.1元/条 微信:abc TG:@abcdef QQ123456 ".repeat(20_000),
        "一".repeat(300_000),
        "\n".repeat(1 << 20),
        "9".repeat(1 << 20),
        "北京市海淀区".repeat(100_000),
        "¥".repeat(300_000),
    ];
    for text in &cases {
        let started = Instant::now();
        let ex = extract_text(text);
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(30),
            "{took:?} on {:?}",
            &text[..20]
        );
        assert!(ex.rows.len() <= MAX_TABLE_ROWS);
        if let Some(o) = &ex.offer {
            assert!(o.contacts.len() <= 16 && o.cities.len() <= 16);
        }
    }
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn chatty() -> impl Strategy<Value = String> {
        // Fragments that exercise every pattern, glued in random order with random noise.
        let pieces = prop::sample::select(vec![
            "张伟",
            "欧阳",
            "13812345678",
            "+86 150 1234 5678",
            "138****5678",
            "１３８",
            "＊",
            "元",
            "条",
            "万",
            "毛",
            "分",
            "一",
            "两",
            "0.1",
            "800",
            "/",
            "日更",
            "每天",
            "当天",
            "实时",
            "三天内",
            "微信:",
            "VX ",
            "QQ",
            "扣扣",
            "TG:@",
            "t.me/",
            "飞机@",
            "北京市",
            "海淀区",
            "深圳",
            "医院",
            "病房",
            "3楼",
            "11-23 06:58",
            "2026-10-11T18:30",
            "¥35.5",
            "姓名:",
            "地址：",
            "美团外卖",
            "饿了么",
            "出",
            "收",
            " ",
            "\t",
            ",",
            "，",
            "|",
            "\n",
            ":",
            "@",
            "x",
            "*",
        ]);
        (
            prop::collection::vec(pieces, 0..60),
            prop::collection::vec(any::<char>(), 0..40),
        )
            .prop_map(|(ps, noise)| {
                let mut s: String = ps.concat();
                for (i, c) in noise.into_iter().enumerate() {
                    if i % 2 == 0 {
                        s.push(c);
                    } else {
                        s.insert(0, c);
                    }
                }
                s
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn extract_text_never_panics(s in chatty()) {
            let ex = extract_text(&s);
            for r in &ex.rows {
                prop_assert!(r.phone.is_some() || r.masked_phone.is_some());
                prop_assert!(r.name.is_some() || r.address.is_some());
                if let Some(p) = &r.phone {
                    let again = normalise_phone(p);
                    prop_assert_eq!(again.as_deref(), Some(p.as_str()));
                }
            }
        }

        #[test]
        fn extract_text_never_panics_on_any_string(s in any::<String>()) {
            let _ = extract_text(&s);
        }

        #[test]
        fn extract_file_never_panics(
            name in prop::sample::select(vec!["a.txt", "a.csv", "a.xlsx", "a", "../../etc/passwd", "a.png", ""]),
            prefix in prop::sample::select(vec![&b""[..], b"PK\x03\x04", b"\xEF\xBB\xBF", b"\xFF\xFE", b"PK\x05\x06"]),
            body in prop::collection::vec(any::<u8>(), 0..2000),
        ) {
            let mut bytes = prefix.to_vec();
            bytes.extend_from_slice(&body);
            let _ = extract_file(name, &bytes);
        }

        #[test]
        fn mutated_xlsx_never_panics(
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..12),
            shared in any::<bool>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = build_xlsx(&sim_table(), shared);
            for (at, v) in flips {
                let i = at.index(bytes.len());
                bytes[i] = v;
            }
            let _ = extract_file("m.xlsx", &bytes);
            let keep = cut.index(bytes.len());
            let _ = extract_file("m.xlsx", &bytes[..keep]);
        }

        #[test]
        fn phone_normalisers_never_panic(s in any::<String>()) {
            if let Some(p) = normalise_phone(&s) {
                prop_assert_eq!(p.len(), 11);
            }
            if let Some(p) = normalise_masked_phone(&s) {
                prop_assert_eq!(p.len(), 11);
                prop_assert_eq!(&p[3..7], "****");
            }
            let h = to_half_width(&s);
            prop_assert_eq!(h.chars().count(), s.chars().count());
        }
    }
}
