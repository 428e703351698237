//! The console's words in English and Chinese. Every string a page shows comes from here, so
//! a screen cannot be half translated: [`Msg`] is one enum whose every variant carries both
//! texts (the compiler refuses a variant without them), and codes that come from the ledger
//! (statuses, entry kinds, packet kinds) are labelled by [`label`], falling back to the code.
//!
//! The language of a request is, in order: `?lang=zh|en` (which also sets the `lw_lang`
//! cookie), the `lw_lang` cookie, the browser's `Accept-Language`, English.

/// A language the console speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Zh,
}

impl Lang {
    pub fn parse(s: &str) -> Option<Lang> {
        match s.trim().to_ascii_lowercase().as_str() {
            "en" => Some(Lang::En),
            "zh" | "zh-cn" => Some(Lang::Zh),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }

    /// The `<html lang>` value.
    pub fn html_lang(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
        }
    }

    /// The other language, offered by the switch link.
    pub fn other(self) -> Lang {
        match self {
            Lang::En => Lang::Zh,
            Lang::Zh => Lang::En,
        }
    }

    /// The language's own name, as the switch link shows it.
    pub fn own_name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Zh => "中文",
        }
    }

    /// The preferred of zh / en in an `Accept-Language` header (highest q wins, earlier on a
    /// tie); English when neither is named.
    pub fn from_accept_language(header: &str) -> Lang {
        let mut best: Option<(f32, Lang)> = None;
        for part in header.split(',') {
            let mut pieces = part.split(';');
            let tag = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = pieces
                .filter_map(|p| p.trim().strip_prefix("q="))
                .filter_map(|q| q.parse::<f32>().ok())
                .next()
                .unwrap_or(1.0);
            let lang = if tag == "zh" || tag.starts_with("zh-") {
                Lang::Zh
            } else if tag == "en" || tag.starts_with("en-") {
                Lang::En
            } else {
                continue;
            };
            if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
        best.map(|(_, l)| l).unwrap_or(Lang::En)
    }
}

macro_rules! messages {
    ($($name:ident => ($en:expr, $zh:expr),)*) => {
        /// A fixed string of the console, in both languages.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Msg { $($name,)* }

        impl Msg {
            /// Every message (for the completeness test).
            pub const ALL: &'static [Msg] = &[$(Msg::$name,)*];

            pub fn text(self, lang: Lang) -> &'static str {
                let (en, zh) = match self { $(Msg::$name => ($en, $zh),)* };
                match lang {
                    Lang::En => en,
                    Lang::Zh => zh,
                }
            }
        }
    };
}

messages! {
    AppName => ("leakwatch console", "leakwatch 控制台"),
    NavCases => ("Cases", "案件"),
    NavIntake => ("Submit a group", "提交群组"),
    NavReview => ("Review queue", "审核队列"),
    NavPackets => ("Packets", "报送材料"),
    Logout => ("Log out", "退出登录"),
    SignedInAs => ("Signed in as", "当前用户"),
    LoginTitle => ("Log in", "登录"),
    LoginToken => ("Access token", "访问令牌"),
    LoginHelp => (
        "Paste the token an admin created for you (leakwatch admin token create). The session ends after 8 hours, or 30 minutes without use.",
        "粘贴管理员为您创建的令牌（leakwatch admin token create）。会话在 8 小时后或闲置 30 分钟后结束。"
    ),
    LoginButton => ("Log in", "登录"),
    LoginFailed => ("That token is not valid (or was revoked).", "令牌无效（或已被吊销）。"),
    LoginThrottled => (
        "Too many failed logins from this address; wait a minute and try again.",
        "此地址登录失败次数过多，请一分钟后再试。"
    ),
    InsecureCookie => (
        "This console marks its session cookie Secure, but this page came over plain HTTP: the browser will not send the cookie back. Use HTTPS, or set [api] secure_cookies = false.",
        "本控制台的会话 Cookie 带有 Secure 标记，但此页面经由明文 HTTP 访问，浏览器不会回传该 Cookie。请使用 HTTPS，或设置 [api] secure_cookies = false。"
    ),
    FormExpired => (
        "This form has expired or did not come from this console. Reload the page and try again; nothing was changed.",
        "表单已过期或并非来自本控制台。请刷新页面后重试；未做任何更改。"
    ),
    Forbidden => ("Your role may not open this page.", "您的角色无权访问此页面。"),
    NotFound => ("Not found.", "未找到。"),
    ErrorTitle => ("Something went wrong", "出错了"),
    Back => ("Back", "返回"),
    CasesTitle => ("Cases", "案件"),
    NoCases => ("No cases yet.", "暂无案件。"),
    Case => ("Case", "案件"),
    Platform => ("Platform", "平台"),
    Group => ("Group", "群组"),
    GroupName => ("Group name", "群名称"),
    Members => ("Members", "成员数"),
    JoinStatus => ("Join status", "加群状态"),
    Opened => ("Opened", "立案时间"),
    OpenedBy => ("Opened by", "提交人"),
    Note => ("Note", "备注"),
    Link => ("Link", "链接"),
    Ended => ("Stopped watching", "停止监控"),
    LatestOffer => ("Latest offer", "最新售卖信息"),
    Tracking => ("Takedown tracking", "下架跟踪"),
    TrackingNone => ("No takedown filed yet.", "尚未提交下架请求。"),
    TakedownFiled => ("Takedown filed", "下架请求提交于"),
    LastProbe => ("Last probe", "最近探测"),
    Probes => ("Probes", "探测次数"),
    GoneAt => ("Group gone", "群已消失于"),
    EscalatedAt => ("Escalated", "已升级于"),
    Timeline => ("Timeline", "时间线"),
    TimelineCut => ("Showing the latest entries only:", "仅显示最新条目："),
    Index => ("Entry", "条目"),
    At => ("Time", "时间"),
    Actor => ("Actor", "操作者"),
    Kind => ("Kind", "类型"),
    What => ("What (ledger summary)", "内容（账本摘要）"),
    Findings => ("Findings", "发现"),
    NoFindings => ("No findings yet.", "暂无发现。"),
    Finding => ("Finding", "发现"),
    Status => ("Status", "状态"),
    Customers => ("Customers", "受害客户"),
    Orders => ("Orders", "订单"),
    RowsMatched => ("Rows matched", "匹配行数"),
    OrderSpan => ("Orders between", "订单时间范围"),
    Suspects => ("Suspected sources", "疑似泄露源"),
    Canaries => ("Canary hits", "蜜罐命中"),
    Offer => ("Offer", "售卖信息"),
    Sample => ("Sample (masked)", "样本（已脱敏）"),
    SampleNone => ("No sample rows.", "无样本行。"),
    Name => ("Name", "姓名"),
    Phone => ("Phone", "手机号"),
    Address => ("Address", "地址"),
    OrderTime => ("Order time", "下单时间"),
    Detail => ("Detail", "详情"),
    Packets => ("Packets", "报送材料"),
    NoPackets => ("No packets yet.", "暂无报送材料。"),
    Packet => ("Packet", "材料"),
    Version => ("Version", "版本"),
    Built => ("Built", "生成时间"),
    Filing => ("Filing", "报送状态"),
    Recipients => ("Recipients", "接收方"),
    Attempts => ("attempts", "次尝试"),
    Files => ("Files", "文件"),
    Refile => ("File again", "重新报送"),
    Bundle => ("Evidence bundle (zip)", "证据包（zip）"),
    BundleHelp => (
        "Entries, proofs, blobs and the custody log, verifiable offline.",
        "包含账本条目、证明、原始数据和保管记录，可离线验证。"
    ),
    BundleUnavailable => (
        "Evidence bundles are not available in this build.",
        "此版本尚不支持导出证据包。"
    ),
    IntakeTitle => ("Submit a group", "提交群组"),
    IntakeHelp => (
        "A QQ group number, a QQ invite link or a t.me link. A group already known goes into its existing case.",
        "QQ 群号、QQ 邀请链接或 t.me 链接。已知群组会归入其已有案件。"
    ),
    IntakeLink => ("Group link or number", "群链接或群号"),
    IntakeNote => ("Note (optional)", "备注（可选）"),
    Submit => ("Submit", "提交"),
    CaseOpened => ("Case opened:", "已立案："),
    CaseExisting => ("Added to the existing case:", "已归入现有案件："),
    ReviewTitle => ("Review queue", "审核队列"),
    QueueOpen => ("Open findings in the queue:", "队列中待审核的发现："),
    ClaimNext => ("Claim next", "领取下一条"),
    QueueEmpty => ("Nothing in the queue for you right now.", "目前队列中没有您可审核的发现。"),
    Claim => ("Claim", "领取"),
    ClaimedBy => ("Claimed by", "领取人"),
    Until => ("until", "截至"),
    YouHold => ("You hold this finding", "您已领取此发现"),
    NotYours => (
        "You do not hold this finding; claim it to decide.",
        "您尚未领取此发现；领取后才能审核。"
    ),
    Closed => ("This finding is no longer in the queue.", "此发现已不在队列中。"),
    Reason => ("Reason (recorded with the decision)", "理由（将与决定一并记录）"),
    Approve => ("Approve", "批准"),
    Reject => ("Reject", "驳回"),
    Escalate => ("Escalate", "升级"),
    SubmitNext => (
        "Deciding claims the next finding and shows it.",
        "提交决定后将自动领取并显示下一条。"
    ),
    Reveal => ("Reveal unmasked sample", "查看未脱敏样本"),
    RevealReason => ("Why you need to see it (recorded)", "查看原因（将被记录）"),
    Revealed => (
        "Unmasked rows: this view is on record and shown once; reloading does not show it again.",
        "未脱敏数据：本次查看已记录且只显示一次，刷新后不再显示。"
    ),
    Decisions => ("Decisions", "审核决定"),
    Captures => ("Capture entries", "取证条目"),
    Shortcuts => (
        "Keys: a approve · r reject · e escalate (type the reason first; the next finding follows) · n claim the next finding",
        "快捷键：a 批准 · r 驳回 · e 升级（请先填写理由，随后自动进入下一条）· n 领取下一条"
    ),
    ReasonFirst => ("Type a reason first.", "请先填写理由。"),
    DecisionRecorded => ("decision recorded", "决定已记录"),
    PacketsBuilt => ("packets built", "份材料已生成"),
    PacketsFailed => (
        "packets could not be built yet (see the server log; the next decision retries)",
        "材料暂未能生成（请查看服务器日志；下次决定时会重试）"
    ),
    Download => ("download", "下载"),
    OfferDataTypes => ("Data types", "数据类型"),
    OfferPlatforms => ("Platforms", "平台"),
    OfferPrice => ("Price per record", "单价（每条）"),
    OfferVolume => ("Records offered", "出售数量（条）"),
    OfferDaily => ("Records per day", "日更（条）"),
    OfferFreshness => ("Freshness", "新鲜度"),
    OfferCities => ("Cities", "城市"),
    OfferContacts => ("Seller contacts", "卖家联系方式"),
    OfferPriceText => ("Price as written", "原文价格"),
}

/// Labels for codes the ledger and state use (statuses, entry kinds, packet kinds); unknown
/// codes are shown as they are.
pub fn label(lang: Lang, code: &str) -> &str {
    const LABELS: &[(&str, &str, &str)] = &[
        // finding statuses and kinds
        ("new", "new", "新建"),
        ("escalated", "escalated", "已升级"),
        (
            "awaiting_second_approval",
            "awaiting second approval",
            "待第二人批准",
        ),
        ("approved", "approved", "已批准"),
        ("rejected", "rejected", "已驳回"),
        ("approve", "approve", "批准"),
        ("reject", "reject", "驳回"),
        ("escalate", "escalate", "升级"),
        ("verified_sample", "verified sample", "已验证样本"),
        ("takedown_ignored", "takedown ignored", "下架请求被忽视"),
        // packets and filing
        ("takedown", "takedown request", "下架请求"),
        ("police", "police report", "报案材料"),
        ("breach_notice", "breach notice", "泄露通知"),
        ("unfiled", "not filed", "未报送"),
        ("filing", "filing", "报送中"),
        ("filed", "filed", "已报送"),
        ("failed", "failed", "报送失败"),
        ("retrying", "retrying", "重试中"),
        // joining and tracking
        ("joined", "joined", "已入群"),
        ("awaiting_invite", "awaiting invitation", "等待邀请"),
        ("still_up", "still up", "仍存在"),
        ("gone", "gone", "已消失"),
        ("unknown", "unknown", "未知"),
        // ledger entry kinds
        ("case_opened", "case opened", "立案"),
        ("captured", "captured", "捕获"),
        ("custody", "custody", "保管记录"),
        ("join_status", "join status", "加群状态"),
        ("group_snapshot", "group snapshot", "群快照"),
        ("group_ended", "group ended", "群结束"),
        ("backfilled", "history backfilled", "补录历史"),
        ("media_refused", "media not preserved", "媒体未保存"),
        ("extracted", "extracted", "提取"),
        ("timestamped", "time-stamped", "可信时间戳"),
        ("matched", "sample checked", "样本核验"),
        ("review_claimed", "claimed for review", "领取审核"),
        ("pii_revealed", "unmasked sample viewed", "查看未脱敏数据"),
        ("review_decided", "review decision", "审核决定"),
        ("packet_built", "packet built", "材料生成"),
        ("filing_attempted", "filing attempted", "报送尝试"),
        ("filing_finished", "filing finished", "报送结束"),
        ("tracking_probed", "group probed", "跟踪探测"),
        ("finding_raised", "finding raised", "提出发现"),
        ("synthetic", "synthetic", "合成条目"),
    ];
    match LABELS.iter().find(|(c, _, _)| *c == code) {
        Some((_, en, zh)) => match lang {
            Lang::En => en,
            Lang::Zh => zh,
        },
        None => code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has_cjk(s: &str) -> bool {
        s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
    }

    #[test]
    fn every_message_has_both_languages() {
        for m in Msg::ALL {
            let (en, zh) = (m.text(Lang::En), m.text(Lang::Zh));
            assert!(!en.trim().is_empty() && !zh.trim().is_empty(), "{m:?}");
            assert!(has_cjk(zh), "{m:?} has no Chinese text: {zh}");
            assert!(!has_cjk(en), "{m:?} has Chinese in its English text: {en}");
        }
    }

    #[test]
    fn language_is_negotiated_from_accept_language() {
        assert_eq!(
            Lang::from_accept_language("zh-CN,zh;q=0.9,en;q=0.8"),
            Lang::Zh
        );
        assert_eq!(
            Lang::from_accept_language("en-US,en;q=0.9,zh;q=0.8"),
            Lang::En
        );
        assert_eq!(Lang::from_accept_language("de,zh;q=0.5"), Lang::Zh);
        assert_eq!(
            Lang::from_accept_language("en;q=0.2, zh-TW;q=0.7"),
            Lang::Zh
        );
        assert_eq!(Lang::from_accept_language("fr"), Lang::En);
        assert_eq!(Lang::from_accept_language(""), Lang::En);
        assert_eq!(Lang::parse("ZH"), Some(Lang::Zh));
        assert_eq!(Lang::parse("de"), None);
    }

    #[test]
    fn codes_are_labelled_in_both_languages() {
        assert_eq!(label(Lang::Zh, "awaiting_second_approval"), "待第二人批准");
        assert_eq!(label(Lang::En, "filed"), "filed");
        assert_eq!(label(Lang::Zh, "no_such_code"), "no_such_code");
    }
}
