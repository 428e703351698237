//! Simulator scenarios: which groups exist, who sells there, what they post, and the synthetic
//! platform orders their samples are drawn from.
//!
//! A scenario is a TOML file (`config/scenarios/*.toml`, documented in `default.toml`). Content
//! is generated from the scenario's seed, so the same scenario always posts the same messages:
//! tests can count on it and the demo looks the same every time. All personal data here is
//! synthetic (random names, numbers in unassigned-looking patterns, invented addresses).

use std::io::Write;
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{path}: cannot read scenario: {message}")]
    Read { path: String, message: String },
    #[error("{path}: invalid scenario: {message}")]
    Invalid { path: String, message: String },
}

pub const DEFAULT_SCENARIO: &str = include_str!("../../config/scenarios/default.toml");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IdStyle {
    Number,
    String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageFormat {
    Array,
    String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    Napcat,
    Lagrange,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub seed: u64,
    pub self_id: i64,
    pub nickname: String,
    #[serde(default = "ids_default")]
    pub ids: IdStyle,
    #[serde(default = "format_default")]
    pub message_format: MessageFormat,
    #[serde(default = "dialect_default")]
    pub history: Dialect,
    /// Messages per second each group posts while it posts.
    #[serde(default = "rate_default")]
    pub rate_per_s: f64,
    /// Messages each group posts on its own before going quiet (0: keep posting).
    #[serde(default)]
    pub messages: u64,
    /// Send an invitation for every group the bot is not in, on each connection, as a staff
    /// member would after submitting the group.
    #[serde(default)]
    pub auto_invite: bool,
    /// Synthetic platform orders the samples are drawn from.
    #[serde(default = "orders_default")]
    pub orders: usize,
    /// Draw samples from this platform-records CSV (the `records import` columns) instead of
    /// generating orders; relative to the working directory.
    #[serde(default)]
    pub records: Option<std::path::PathBuf>,
    #[serde(default)]
    pub faults: Faults,
    pub groups: Vec<GroupSpec>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Drop every connection this often (0: never).
    pub drop_every_ms: u64,
    /// Answer every action this much later.
    pub slow_ms: u64,
    /// Fail every Nth action with retcode 102 (0: never).
    pub error_every: u64,
    /// Media URLs stop working after this long (0: never), as QQ's do within hours.
    pub media_ttl_ms: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    pub id: i64,
    pub name: String,
    #[serde(default = "members_default")]
    pub member_count: u32,
    /// The bot account is already a member (an operator added it by hand).
    #[serde(default)]
    pub bot_member: bool,
    /// Relative weights of what is posted: offer, sample, file, image, chatter.
    #[serde(default = "mix_default")]
    pub mix: [u32; 5],
    pub sellers: Vec<SellerSpec>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SellerSpec {
    pub id: i64,
    pub nickname: String,
    #[serde(default)]
    pub card: String,
    /// Contact handles the seller advertises.
    #[serde(default)]
    pub wechat: String,
    #[serde(default)]
    pub telegram: String,
}

fn ids_default() -> IdStyle {
    IdStyle::Number
}
fn format_default() -> MessageFormat {
    MessageFormat::Array
}
fn dialect_default() -> Dialect {
    Dialect::Napcat
}
fn rate_default() -> f64 {
    2.0
}
fn orders_default() -> usize {
    2000
}
fn members_default() -> u32 {
    300
}
fn mix_default() -> [u32; 5] {
    [3, 3, 1, 1, 4]
}

impl Scenario {
    pub fn load(path: Option<&Path>) -> Result<Scenario, ScenarioError> {
        let (text, source) = match path {
            Some(p) => (
                std::fs::read_to_string(p).map_err(|e| ScenarioError::Read {
                    path: p.display().to_string(),
                    message: e.to_string(),
                })?,
                p.display().to_string(),
            ),
            None => (
                DEFAULT_SCENARIO.to_string(),
                "<embedded default scenario>".to_string(),
            ),
        };
        Scenario::parse(&text, &source)
    }

    pub fn parse(text: &str, source: &str) -> Result<Scenario, ScenarioError> {
        let invalid = |message: String| ScenarioError::Invalid {
            path: source.to_string(),
            message,
        };
        let s: Scenario = toml::from_str(text)
            .map_err(|e| invalid(e.to_string().lines().next().unwrap_or("").to_string()))?;
        if s.groups.is_empty() {
            return Err(invalid("no [[groups]]".into()));
        }
        for g in &s.groups {
            if g.sellers.is_empty() {
                return Err(invalid(format!("group {} has no sellers", g.id)));
            }
            if g.mix.iter().sum::<u32>() == 0 {
                return Err(invalid(format!("group {}: mix is all zero", g.id)));
            }
        }
        if !(s.rate_per_s > 0.0 && s.rate_per_s <= 10_000.0) {
            return Err(invalid("rate_per_s must be in (0, 10000]".into()));
        }
        if let Some(path) = &s.records {
            let orders = read_orders(path).map_err(&invalid)?;
            if orders.is_empty() {
                return Err(invalid(format!("{}: no orders", path.display())));
            }
        }
        Ok(s)
    }
}

/// Read a records CSV (header row with the `Order` columns; extra columns ignored). Rows with
/// a phone that is not 11 digits are skipped: the sampler slices phones.
pub fn read_orders(path: &Path) -> Result<Vec<Order>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut orders = Vec::new();
    for (i, row) in reader.deserialize::<Order>().enumerate() {
        let order = row.map_err(|e| format!("{} line {}: {e}", path.display(), i + 2))?;
        if order.customer_phone.len() == 11
            && order.customer_phone.bytes().all(|b| b.is_ascii_digit())
            && order.created_at.len() >= 16
        {
            orders.push(order);
        }
    }
    Ok(orders)
}

/// One synthetic platform order (the columns of `records import`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub order_id: String,
    pub created_at: String,
    pub city: String,
    pub customer_name: String,
    pub customer_phone: String,
    pub address: String,
    pub merchant_id: String,
    pub rider_id: String,
    pub delivery_partner: String,
}

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "林", "罗", "高",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀英", "霞", "平", "刚", "桂英", "建华", "晓东",
];
const CITIES: &[(&str, &str, &[&str])] = &[
    ("北京市", "北京", &["海淀区", "朝阳区", "西城区", "丰台区"]),
    (
        "上海市",
        "上海",
        &["浦东新区", "徐汇区", "静安区", "闵行区"],
    ),
    ("广东省", "深圳", &["南山区", "福田区", "宝安区", "龙岗区"]),
    ("浙江省", "杭州", &["西湖区", "滨江区", "拱墅区", "余杭区"]),
    ("四川省", "成都", &["武侯区", "锦江区", "高新区", "成华区"]),
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
];
const PARTNERS: &[&str] = &["蜂鸟即配", "达达快送", "顺丰同城", "闪送", "UU跑腿"];
const PLATFORMS: &[&str] = &["美团", "饿了么", "美团外卖", "饿了么"];
const CHATTER: &[&str] = &[
    "有人吗",
    "今天的数据什么时候发",
    "老板靠谱吗",
    "收到了，谢谢",
    "群主在吗",
    "[CQ:face,id=178]",
    "这个价格太贵了吧",
    "昨天的还有吗",
    "私聊",
    "新人报到",
];

/// What a sample row really contained: the ground truth extraction is measured against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruthRow {
    pub name: String,
    pub phone: Option<String>,
    pub masked_phone: Option<String>,
    pub address: String,
}

/// Where the simulator looks for a CJK font to draw screenshots with (Debian
/// `fonts-wqy-microhei`). Without it, screenshots carry no text.
pub const SCREENSHOT_FONT: &str = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc";

/// Deterministic content from the scenario's seed.
pub struct Generator {
    rng: StdRng,
    pub orders: Vec<Order>,
    font: Option<fontdue::Font>,
}

fn load_font() -> Option<fontdue::Font> {
    let bytes = std::fs::read(SCREENSHOT_FONT).ok()?;
    fontdue::Font::from_bytes(bytes, fontdue::FontSettings::default()).ok()
}

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.gen_range(0..items.len())]
}

impl Generator {
    pub fn new(scenario: &Scenario) -> Generator {
        if let Some(orders) = scenario
            .records
            .as_deref()
            .and_then(|p| read_orders(p).ok())
        {
            return Generator {
                rng: StdRng::seed_from_u64(scenario.seed ^ 0x5eed),
                orders,
                font: load_font(),
            };
        }
        let mut rng = StdRng::seed_from_u64(scenario.seed);
        let mut orders = Vec::with_capacity(scenario.orders);
        let customers = (scenario.orders / 3).max(1);
        // Customers order repeatedly: the same name, phone and address on several orders.
        let people: Vec<(String, String, String, String)> = (0..customers)
            .map(|_| {
                let name = format!("{}{}", pick(&mut rng, SURNAMES), pick(&mut rng, GIVEN));
                let prefix = pick(
                    &mut rng,
                    &["138", "139", "150", "151", "186", "187", "135", "177"],
                );
                let phone = format!("{prefix}{:08}", rng.gen_range(0..100_000_000u32));
                let (province, city, districts) = pick(&mut rng, CITIES);
                let place = pick(&mut rng, PLACES)
                    .replace("{n}", &rng.gen_range(1..20).to_string())
                    .replace("{m}", &rng.gen_range(1..40).to_string());
                let address = format!("{province}{city}市{}{place}", pick(&mut rng, districts))
                    .replace("北京市北京市", "北京市")
                    .replace("上海市上海市", "上海市");
                (name, phone, address, city.to_string())
            })
            .collect();
        for i in 0..scenario.orders {
            let (name, phone, address, city) = people[rng.gen_range(0..people.len())].clone();
            let day = rng.gen_range(1..=28);
            let month = rng.gen_range(9..=11);
            orders.push(Order {
                order_id: format!("WM{}{:06}", scenario.seed % 1000, i),
                created_at: format!(
                    "2026-{month:02}-{day:02}T{:02}:{:02}:00+08:00",
                    rng.gen_range(6..24),
                    rng.gen_range(0..60)
                ),
                city,
                customer_name: name,
                customer_phone: phone,
                address,
                merchant_id: format!("M{:04}", rng.gen_range(1..60)),
                rider_id: format!("R{:05}", rng.gen_range(1..400)),
                delivery_partner: pick(&mut rng, PARTNERS).to_string(),
            });
        }
        Generator {
            rng: StdRng::seed_from_u64(scenario.seed ^ 0x5eed),
            orders,
            font: load_font(),
        }
    }

    /// Write the synthetic orders as a records CSV (the `records import` format).
    pub fn write_orders_csv(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let mut w = csv::Writer::from_writer(out);
        for o in &self.orders {
            w.serialize(o).map_err(std::io::Error::other)?;
        }
        w.flush()
    }

    fn order(&mut self) -> Order {
        let i = self.rng.gen_range(0..self.orders.len());
        self.orders[i].clone()
    }

    /// A sample row as sellers post them: masked or full phone, name, address, `MM-DD hh:mm`.
    fn sample_row(&mut self) -> (String, TruthRow) {
        let o = self.order();
        let masked = format!("{}****{}", &o.customer_phone[..3], &o.customer_phone[7..]);
        let is_masked = self.rng.gen_bool(0.5);
        let phone = if is_masked {
            masked.clone()
        } else if self.rng.gen_bool(0.2) {
            format!(
                "+86 {} {} {}",
                &o.customer_phone[..3],
                &o.customer_phone[3..7],
                &o.customer_phone[7..]
            )
        } else {
            o.customer_phone.clone()
        };
        let truth = TruthRow {
            name: o.customer_name.clone(),
            phone: (!is_masked).then(|| o.customer_phone.clone()),
            masked_phone: is_masked.then_some(masked),
            address: o.address.clone(),
        };
        let when = format!(
            "{}-{} {}",
            &o.created_at[5..7],
            &o.created_at[8..10],
            &o.created_at[11..16]
        );
        (
            format!("{} {} {} {}", o.customer_name, phone, o.address, when),
            truth,
        )
    }

    pub fn offer(&mut self, seller: &SellerSpec) -> String {
        let platform = *pick(&mut self.rng, PLATFORMS);
        let price = *pick(
            &mut self.rng,
            &[
                "0.1元/条",
                "一毛一条",
                "1毛",
                "¥0.1",
                "800元1万条",
                "0.15元/条",
            ],
        );
        let volume = *pick(
            &mut self.rng,
            &["日更3000+", "1万条起", "日更5000", "量大从优，2万条"],
        );
        let fresh = *pick(&mut self.rng, &["当天", "实时", "三天内", "当日新鲜"]);
        let (_, city, _) = *pick(&mut self.rng, CITIES);
        let mut contact = String::new();
        if !seller.wechat.is_empty() {
            contact.push_str(&format!(" 微信:{}", seller.wechat));
        }
        if !seller.telegram.is_empty() {
            contact.push_str(&format!(" TG:@{}", seller.telegram));
        }
        format!(
            "{platform}外卖数据 {price} {volume} {fresh} {city}本地单 姓名+电话+地址{contact} 私聊QQ{}",
            seller.id
        )
    }

    pub fn sample_text(&mut self) -> (String, Vec<TruthRow>) {
        let n = self.rng.gen_range(3..7);
        let (rows, truth): (Vec<String>, Vec<TruthRow>) = (0..n).map(|_| self.sample_row()).unzip();
        (format!("样本：\n{}", rows.join("\n")), truth)
    }

    pub fn chatter(&mut self) -> String {
        pick(&mut self.rng, CHATTER).to_string()
    }

    /// A sample file: (display name, bytes, MIME type, the rows it holds).
    pub fn sample_file(&mut self) -> (String, Vec<u8>, &'static str, Vec<TruthRow>) {
        let n = self.rng.gen_range(8..20);
        let rows: Vec<Order> = (0..n).map(|_| self.order()).collect();
        let full = |o: &Order| TruthRow {
            name: o.customer_name.clone(),
            phone: Some(o.customer_phone.clone()),
            masked_phone: None,
            address: o.address.clone(),
        };
        match self.rng.gen_range(0..3) {
            0 => {
                let (text, truth): (Vec<String>, Vec<TruthRow>) =
                    (0..n).map(|_| self.sample_row()).unzip();
                (
                    "样本数据.txt".into(),
                    text.join("\n").into_bytes(),
                    "text/plain",
                    truth,
                )
            }
            1 => {
                let mut csv = String::from("姓名,电话,地址,下单时间\n");
                for o in &rows {
                    csv.push_str(&format!(
                        "{},{},{},{}\n",
                        o.customer_name,
                        o.customer_phone,
                        o.address,
                        &o.created_at[..16]
                    ));
                }
                (
                    "外卖订单样本.csv".into(),
                    csv.into_bytes(),
                    "text/csv",
                    rows.iter().map(full).collect(),
                )
            }
            _ => {
                let mut table = vec![vec![
                    "姓名".to_string(),
                    "电话".into(),
                    "地址".into(),
                    "下单时间".into(),
                ]];
                for o in &rows {
                    table.push(vec![
                        o.customer_name.clone(),
                        o.customer_phone.clone(),
                        o.address.clone(),
                        o.created_at[..16].to_string(),
                    ]);
                }
                (
                    "订单样本.xlsx".into(),
                    xlsx(&table),
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    rows.iter().map(full).collect(),
                )
            }
        }
    }

    /// A screenshot of sample rows, as sellers post them: a real PNG with the rows drawn in a
    /// CJK font (so OCR has something to read), with the rows as truth. Without the font, a
    /// plain image and no rows.
    pub fn screenshot(&mut self) -> (Vec<u8>, Vec<TruthRow>) {
        let Some(font) = self.font.clone() else {
            let shade = self.rng.gen_range(180..250u8);
            return (png(&vec![shade; 64 * 48], 64, 48), Vec::new());
        };
        let n = self.rng.gen_range(2..5);
        let (lines, truth): (Vec<String>, Vec<TruthRow>) = (0..n)
            .map(|_| {
                // Screenshots show full numbers: masked ones are too short for OCR to be sure of.
                let o = self.order();
                let when = format!(
                    "{}-{} {}",
                    &o.created_at[5..7],
                    &o.created_at[8..10],
                    &o.created_at[11..16]
                );
                let line = format!(
                    "{} {} {} {}",
                    o.customer_name, o.customer_phone, o.address, when
                );
                let row = TruthRow {
                    name: o.customer_name.clone(),
                    phone: Some(o.customer_phone.clone()),
                    masked_phone: None,
                    address: o.address.clone(),
                };
                (line, row)
            })
            .unzip();
        (render_lines(&font, &lines, 30.0), truth)
    }

    /// Which kind of post comes next, by the group's mix weights.
    pub fn next_kind(&mut self, mix: &[u32; 5]) -> PostKind {
        let total: u32 = mix.iter().sum();
        let mut x = self.rng.gen_range(0..total.max(1));
        for (i, w) in mix.iter().enumerate() {
            if x < *w {
                return [
                    PostKind::Offer,
                    PostKind::Sample,
                    PostKind::File,
                    PostKind::Image,
                    PostKind::Chatter,
                ][i];
            }
            x -= w;
        }
        PostKind::Chatter
    }

    pub fn index(&mut self, len: usize) -> usize {
        self.rng.gen_range(0..len.max(1))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PostKind {
    Offer,
    Sample,
    File,
    Image,
    Chatter,
}

/// An .xlsx workbook holding a CSV's cells (benchmarks and tests).
pub fn xlsx_from_csv(csv: &str) -> Vec<u8> {
    let rows: Vec<Vec<String>> = csv
        .lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    xlsx(&rows)
}

/// A minimal .xlsx workbook (Office Open XML) with inline strings.
fn xlsx(rows: &[Vec<String>]) -> Vec<u8> {
    fn esc(s: &str) -> String {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    }
    let mut sheet = String::from(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#,
    );
    for (r, row) in rows.iter().enumerate() {
        sheet.push_str(&format!(r#"<row r="{}">"#, r + 1));
        for (c, cell) in row.iter().enumerate() {
            let col = (b'A' + c as u8) as char;
            sheet.push_str(&format!(
                r#"<c r="{col}{}" t="inlineStr"><is><t>{}</t></is></c>"#,
                r + 1,
                esc(cell)
            ));
        }
        sheet.push_str("</row>");
    }
    sheet.push_str("</sheetData></worksheet>");
    let files: [(&str, String); 5] = [
        ("[Content_Types].xml", r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>"#.into()),
        ("_rels/.rels", r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#.into()),
        ("xl/workbook.xml", r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>"#.into()),
        ("xl/_rels/workbook.xml.rels", r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#.into()),
        ("xl/worksheets/sheet1.xml", sheet),
    ];
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(zip::DateTime::default());
        for (name, body) in files {
            if z.start_file(name, opts).is_err() || z.write_all(body.as_bytes()).is_err() {
                return Vec::new();
            }
        }
        if z.finish().is_err() {
            return Vec::new();
        }
    }
    buf.into_inner()
}

/// Draw lines of text, dark on white, into a grey-scale PNG.
fn render_lines(font: &fontdue::Font, lines: &[String], px: f32) -> Vec<u8> {
    let line_height = (px * 1.6) as usize;
    let margin = 20usize;
    let width = lines
        .iter()
        .map(|l| {
            l.chars()
                .map(|c| font.metrics(c, px).advance_width.ceil() as usize)
                .sum::<usize>()
        })
        .max()
        .unwrap_or(0)
        + 2 * margin;
    let height = lines.len() * line_height + 2 * margin;
    let mut pixels = vec![255u8; width * height];
    for (i, line) in lines.iter().enumerate() {
        let baseline = margin + i * line_height + px as usize;
        let mut pen = margin as f32;
        for c in line.chars() {
            let (m, bitmap) = font.rasterize(c, px);
            let left = pen as i64 + m.xmin as i64;
            let top = baseline as i64 - m.height as i64 - m.ymin as i64;
            for y in 0..m.height {
                for x in 0..m.width {
                    let (px_x, px_y) = (left + x as i64, top + y as i64);
                    if px_x >= 0 && px_y >= 0 && (px_x as usize) < width && (px_y as usize) < height
                    {
                        let at = px_y as usize * width + px_x as usize;
                        pixels[at] = pixels[at].min(255 - bitmap[y * m.width + x]);
                    }
                }
            }
            pen += m.advance_width;
        }
    }
    png(&pixels, width as u32, height as u32)
}

/// A grey-scale PNG, encoded by hand with stored (uncompressed) deflate blocks: PNG spec §11,
/// RFC 1950/1951.
fn png(pixels: &[u8], width: u32, height: u32) -> Vec<u8> {
    let mut raw = Vec::with_capacity(((width + 1) * height) as usize);
    for row in pixels.chunks(width.max(1) as usize).take(height as usize) {
        raw.push(0); // filter: none
        raw.extend_from_slice(row);
    }
    let mut z = vec![0x78, 0x01];
    for (i, chunk) in raw.chunks(65_535).enumerate() {
        let last = (i + 1) * 65_535 >= raw.len();
        z.push(u8::from(last));
        let len = chunk.len() as u16;
        z.extend_from_slice(&len.to_le_bytes());
        z.extend_from_slice(&(!len).to_le_bytes());
        z.extend_from_slice(chunk);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in &raw {
        a = (a + byte as u32) % 65_521;
        b = (b + a) % 65_521;
    }
    z.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8; 4], data: &[u8]| {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut h = crc32fast::Hasher::new();
        h.update(kind);
        h.update(data);
        out.extend_from_slice(&h.finalize().to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit grey, no interlace
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &z);
    chunk(b"IEND", &[]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_scenario_parses_and_generates_deterministically() {
        let s = Scenario::load(None).unwrap();
        let mut a = Generator::new(&s);
        let mut b = Generator::new(&s);
        assert_eq!(a.orders, b.orders);
        assert_eq!(a.sample_text(), b.sample_text());
        let (text, truth) = a.sample_text();
        assert_eq!(text.lines().count(), truth.len() + 1);
        let seller = &s.groups[0].sellers[0];
        let offer = a.offer(seller);
        assert!(offer.contains("外卖"), "{offer}");
    }

    #[test]
    fn samples_can_come_from_a_records_file() {
        let s = Scenario::load(None).unwrap();
        let g = Generator::new(&s);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records.csv");
        let mut f = std::fs::File::create(&path).unwrap();
        g.write_orders_csv(&mut f).unwrap();
        drop(f);
        let text = DEFAULT_SCENARIO.replace(
            "orders = 3000",
            &format!("orders = 10\nrecords = {:?}", path),
        );
        let s2 = Scenario::parse(&text, "t").unwrap();
        let mut g2 = Generator::new(&s2);
        assert_eq!(g2.orders, g.orders);
        let (_, rows) = g2.sample_text();
        assert!(rows.iter().all(|r| {
            g.orders
                .iter()
                .any(|o| o.customer_name == r.name && o.address == r.address)
        }));
    }

    #[test]
    fn generated_files_are_real_formats() {
        let p = png(&[200; 100], 10, 10);
        assert_eq!(&p[..8], b"\x89PNG\r\n\x1a\n");
        let x = xlsx(&[vec!["姓名".into(), "电话".into()]]);
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(x)).unwrap();
        assert!(zip.by_name("xl/worksheets/sheet1.xml").is_ok());
    }

    #[test]
    fn bad_scenarios_are_refused_with_the_file_named() {
        let err = Scenario::parse(
            "seed = 1\nself_id = 1\nnickname = \"x\"\ngroups = []\n",
            "s.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("s.toml: invalid scenario"), "{err}");
    }
}

#[cfg(test)]
mod ocr_tests {
    use super::*;

    /// With the font and tesseract installed (as `.ci/run` installs them), the screenshots the
    /// simulator posts can be read back by OCR and their phones extracted.
    #[test]
    fn screenshots_are_readable_by_ocr() {
        let s = Scenario::load(None).unwrap();
        let mut g = Generator::new(&s);
        if g.font.is_none() {
            panic!("{SCREENSHOT_FONT} is missing: install fonts-wqy-microhei (.ci/run does)");
        }
        let (png, truth) = g.screenshot();
        let text = match crate::extract::ocr_image(&png) {
            Some(Ok(t)) => t,
            other => panic!(
                "OCR unavailable or failed ({other:?}): install tesseract-ocr-chi-sim (.ci/run does)"
            ),
        };
        let rows = crate::extract::extract_text(&text).rows;
        let phones: Vec<String> = rows.iter().filter_map(|r| r.phone.clone()).collect();
        let found = truth
            .iter()
            .filter(|t| t.phone.as_ref().is_some_and(|p| phones.contains(p)))
            .count();
        assert!(
            found * 2 >= truth.len(),
            "OCR found {found} of {} phones in {text:?}",
            truth.len()
        );
    }
}
