//! The console's pages, built as plain strings. Everything that did not come from this file —
//! chat content, notes, group names, ledger summaries, ids — goes through [`esc`] (text and
//! attribute values; attributes are always double-quoted) or, inside URLs, [`seg`] / [`query`].
//! There is no inline script or style: `console.js` and `console.css` are separate files served
//! from the binary, so the Content-Security-Policy can forbid inline code outright.
//!
//! Pages are pure functions of the data they are given; the handlers in `super::handlers`
//! gather that data (and write the custody entries) first.

use serde_json::Value;

use super::i18n::{Lang, Msg, label};
use super::session::SessionInfo;
use crate::api::tokens::Role;
use crate::extract::SampleRow;
use crate::review::{FindingCard, MaskedRow};
use crate::state::{CaseView, FindingView, PacketView};

/// Text made safe for HTML text and double-quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One URL path segment, percent-encoded (ids come from the ledger, but are still not trusted
/// to be URL-safe).
pub fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One query value, form-encoded.
pub fn query(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// An RFC 3339 time from the ledger as `2026-01-31 08:15:02 UTC`; anything else as it is.
pub fn when(s: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(s) {
        Ok(t) => t
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string(),
        Err(_) => s.to_string(),
    }
}

/// What every page needs: language, who is logged in, where the language switch goes.
pub struct Frame<'a> {
    pub lang: Lang,
    pub user: Option<&'a SessionInfo>,
    /// The current page's path (GET) for the language switch link.
    pub here: &'a str,
}

impl Frame<'_> {
    pub fn t(&self, m: Msg) -> &'static str {
        m.text(self.lang)
    }

    fn role_may(&self, method: &str, path: &str) -> bool {
        let Some(user) = self.user else { return false };
        crate::api::PERMISSIONS
            .iter()
            .find(|p| p.method == method && p.path == path)
            .is_some_and(|p| p.roles.contains(&user.principal.role))
    }

    /// A hidden CSRF field for a form of this session.
    fn csrf_field(&self) -> String {
        match self.user {
            Some(u) => format!(
                r#"<input type="hidden" name="csrf" value="{}">"#,
                esc(&u.csrf)
            ),
            None => String::new(),
        }
    }

    /// A small POST form with one button (claim, refile, ...).
    fn button_form(&self, action: &str, text: &str, attrs: &str) -> String {
        format!(
            r#"<form method="post" action="{}" class="inline">{}<button type="submit" {attrs}>{}</button></form>"#,
            esc(action),
            self.csrf_field(),
            esc(text)
        )
    }
}

/// The page around `body`: head, navigation (by role), language switch, logout.
pub fn document(f: &Frame, page: &str, title: &str, body: &str) -> String {
    let mut nav = String::new();
    if let Some(user) = f.user {
        let links: [(&str, Msg); 4] = [
            ("/ui/cases", Msg::NavCases),
            ("/ui/intake", Msg::NavIntake),
            ("/ui/review", Msg::NavReview),
            ("/ui/packets", Msg::NavPackets),
        ];
        for (href, m) in links {
            if f.role_may("GET", href) {
                nav.push_str(&format!(
                    r#"<a href="{href}" class="nav-{}">{}</a>"#,
                    href.trim_start_matches("/ui/"),
                    f.t(m)
                ));
            }
        }
        nav.push_str(&format!(
            r#"<span class="who">{} <strong id="actor">{}</strong></span>"#,
            f.t(Msg::SignedInAs),
            esc(&user.principal.actor())
        ));
        nav.push_str(&f.button_form("/ui/logout", f.t(Msg::Logout), r#"id="logout""#));
    }
    let other = f.lang.other();
    format!(
        r#"<!doctype html>
<html lang="{html_lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · leakwatch</title>
<link rel="stylesheet" href="/ui/static/console.css">
<script src="/ui/static/console.js" defer></script>
</head>
<body data-page="{page}">
<header><span class="brand">{app}</span><nav>{nav}</nav><a class="lang" id="lang-switch" href="{switch}?lang={other_code}" lang="{other_html}">{other_name}</a></header>
<main>
<h1>{title}</h1>
{body}
</main>
</body>
</html>
"#,
        html_lang = f.lang.html_lang(),
        title = esc(title),
        page = esc(page),
        app = f.t(Msg::AppName),
        switch = esc(f.here),
        other_code = other.code(),
        other_html = other.html_lang(),
        other_name = other.own_name(),
    )
}

/// A page that only says something (an error, a refusal), with a way back.
pub fn message_page(f: &Frame, title: &str, message: &str, back: &str) -> String {
    let body = format!(
        r#"<p class="error" id="message">{}</p><p><a href="{}">{}</a></p>"#,
        esc(message),
        esc(back),
        f.t(Msg::Back)
    );
    document(f, "message", title, &body)
}

/// The login form. `login_csrf` is the double-submit value also set as a cookie.
pub fn login(
    f: &Frame,
    error: Option<Msg>,
    login_csrf: &str,
    next: &str,
    insecure: bool,
) -> String {
    let mut body = String::new();
    if insecure {
        body.push_str(&format!(
            r#"<p class="warning" id="insecure">{}</p>"#,
            f.t(Msg::InsecureCookie)
        ));
    }
    if let Some(e) = error {
        body.push_str(&format!(
            r#"<p class="error" id="login-error">{}</p>"#,
            f.t(e)
        ));
    }
    body.push_str(&format!(
        r#"<form method="post" action="/ui/login" id="login-form" class="stack">
<input type="hidden" name="login_csrf" value="{csrf}">
<input type="hidden" name="next" value="{next}">
<label for="token">{token}</label>
<input type="password" id="token" name="token" autocomplete="off" required autofocus>
<p class="help">{help}</p>
<button type="submit" id="login-button">{button}</button>
</form>"#,
        csrf = esc(login_csrf),
        next = esc(next),
        token = f.t(Msg::LoginToken),
        help = f.t(Msg::LoginHelp),
        button = f.t(Msg::LoginButton),
    ));
    document(f, "login", f.t(Msg::LoginTitle), &body)
}

fn opt(s: Option<&str>) -> String {
    s.map(esc).unwrap_or_else(|| "—".into())
}

fn status_badge(lang: Lang, code: &str) -> String {
    format!(
        r#"<span class="status status-{}">{}</span>"#,
        esc(code),
        esc(label(lang, code))
    )
}

pub fn cases_list(f: &Frame, cases: &[CaseView]) -> String {
    let mut body = String::new();
    if cases.is_empty() {
        body.push_str(&format!("<p>{}</p>", f.t(Msg::NoCases)));
    } else {
        body.push_str(&format!(
            r#"<table id="cases"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>"#,
            f.t(Msg::Case),
            f.t(Msg::Group),
            f.t(Msg::GroupName),
            f.t(Msg::JoinStatus),
            f.t(Msg::Opened),
            f.t(Msg::Note),
            f.t(Msg::Tracking),
        ));
        for c in cases {
            body.push_str(&format!(
                r#"<tr><td><a class="case-link" href="/ui/cases/{}">{}</a></td><td>{}:{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                seg(&c.case),
                esc(&c.case),
                esc(&c.platform),
                esc(&c.group_id),
                opt(c.group_name.as_deref()),
                c.join_status
                    .as_deref()
                    .map(|s| status_badge(f.lang, s))
                    .unwrap_or_else(|| "—".into()),
                esc(&when(&c.opened_at)),
                opt(c.note.as_deref()),
                match (&c.tracking.last_result, &c.tracking.takedown_filed_at) {
                    (Some(r), _) => status_badge(f.lang, r),
                    (None, Some(at)) => format!("{} {}", f.t(Msg::TakedownFiled), esc(&when(at))),
                    (None, None) => "—".into(),
                },
            ));
        }
        body.push_str("</tbody></table>");
    }
    document(f, "cases", f.t(Msg::CasesTitle), &body)
}

fn fen(v: u64) -> String {
    format!("¥{}.{:02}", v / 100, v % 100)
}

/// An extracted offer (JSON from the ledger) as a definition list.
pub fn offer(f: &Frame, offer: &Value) -> String {
    let Some(map) = offer.as_object() else {
        return format!("<p>{}</p>", esc(&offer.to_string()));
    };
    let mut out = String::from(r#"<dl class="offer">"#);
    for (k, v) in map {
        let name = match k.as_str() {
            "data_types" => f.t(Msg::OfferDataTypes),
            "platforms" => f.t(Msg::OfferPlatforms),
            "price_per_record_fen" => f.t(Msg::OfferPrice),
            "price_text" => f.t(Msg::OfferPriceText),
            "volume_records" => f.t(Msg::OfferVolume),
            "daily_volume" => f.t(Msg::OfferDaily),
            "freshness" => f.t(Msg::OfferFreshness),
            "cities" => f.t(Msg::OfferCities),
            "contacts" => f.t(Msg::OfferContacts),
            other => other,
        };
        let value = match (k.as_str(), v) {
            (_, Value::Null) => continue,
            ("price_per_record_fen", Value::Number(n)) => {
                n.as_u64().map(fen).unwrap_or_else(|| n.to_string())
            }
            (_, Value::Array(items)) if items.is_empty() => continue,
            (_, Value::Array(items)) => items
                .iter()
                .map(|i| match i {
                    Value::String(s) => s.clone(),
                    Value::Object(o) => format!(
                        "{}: {}",
                        o.get("kind").and_then(Value::as_str).unwrap_or("?"),
                        o.get("handle").and_then(Value::as_str).unwrap_or("?")
                    ),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join("、"),
            (_, Value::String(s)) => s.clone(),
            (_, other) => other.to_string(),
        };
        out.push_str(&format!("<dt>{}</dt><dd>{}</dd>", esc(name), esc(&value)));
    }
    out.push_str("</dl>");
    out
}

fn masked_table(f: &Frame, rows: &[MaskedRow]) -> String {
    if rows.is_empty() {
        return format!("<p>{}</p>", f.t(Msg::SampleNone));
    }
    let mut out = format!(
        r#"<table class="sample"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>"#,
        f.t(Msg::Name),
        f.t(Msg::Phone),
        f.t(Msg::Address),
        f.t(Msg::OrderTime)
    );
    for r in rows {
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            opt(r.name.as_deref()),
            opt(r.phone.as_deref()),
            opt(r.address.as_deref()),
            opt(r.order_time.as_deref()),
        ));
    }
    out.push_str("</tbody></table>");
    out
}

fn revealed_table(f: &Frame, rows: &[SampleRow]) -> String {
    let mut out = format!(
        r#"<div class="revealed" id="revealed"><p class="warning">{}</p><table class="sample"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>"#,
        f.t(Msg::Revealed),
        f.t(Msg::Name),
        f.t(Msg::Phone),
        f.t(Msg::Address),
        f.t(Msg::OrderTime)
    );
    for r in rows {
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            opt(r.name.as_deref()),
            opt(r.phone.as_deref().or(r.masked_phone.as_deref())),
            opt(r.address.as_deref()),
            opt(r.order_time.as_deref()),
        ));
    }
    out.push_str("</tbody></table></div>");
    out
}

/// The facts of a finding both the case page and the review card show.
fn finding_facts(f: &Frame, x: &FindingView) -> String {
    let span = match (&x.first_order_at, &x.last_order_at) {
        (Some(a), Some(b)) => format!("{} – {}", esc(&when(a)), esc(&when(b))),
        _ => "—".into(),
    };
    let list = |v: &[String]| {
        if v.is_empty() {
            "—".to_string()
        } else {
            esc(&v.join("、"))
        }
    };
    let mut out = format!(
        r#"<dl class="facts"><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{} · {}</dd><dt>{}</dt><dd class="customers">{}</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}/{}</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd class="suspects">{}</dd><dt>{}</dt><dd>{}</dd>"#,
        f.t(Msg::Case),
        format_args!(
            r#"<a href="/ui/cases/{}">{}</a>"#,
            seg(&x.case),
            esc(&x.case)
        ),
        f.t(Msg::Status),
        status_badge(f.lang, &x.status),
        esc(label(f.lang, &x.kind)),
        f.t(Msg::Customers),
        x.distinct_customers,
        f.t(Msg::Orders),
        x.distinct_orders,
        f.t(Msg::RowsMatched),
        x.rows_matched,
        x.rows_checked,
        f.t(Msg::OrderSpan),
        span,
        f.t(Msg::Suspects),
        list(&x.suspects),
        f.t(Msg::Canaries),
        list(&x.canary_partners),
    );
    if let Some(d) = &x.detail {
        out.push_str(&format!("<dt>{}</dt><dd>{}</dd>", f.t(Msg::Detail), esc(d)));
    }
    out.push_str("</dl>");
    if !x.decisions.is_empty() {
        out.push_str(&format!(
            r#"<h3>{}</h3><ul class="decisions">"#,
            f.t(Msg::Decisions)
        ));
        for d in &x.decisions {
            out.push_str(&format!(
                "<li>{} · {} · {} — {}</li>",
                esc(&when(&d.at)),
                esc(&d.moderator),
                esc(label(f.lang, &d.decision)),
                esc(&d.reason)
            ));
        }
        out.push_str("</ul>");
    }
    out
}

/// A packet table (case page and packets page); file links only for roles that may download.
pub fn packets_table(f: &Frame, packets: &[PacketView], refile: bool) -> String {
    if packets.is_empty() {
        return format!("<p>{}</p>", f.t(Msg::NoPackets));
    }
    let download = f.role_may("GET", "/ui/packets/{packet}/files/{name}");
    let mut out = format!(
        r#"<table class="packets"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>"#,
        f.t(Msg::Packet),
        f.t(Msg::Kind),
        f.t(Msg::Case),
        f.t(Msg::Built),
        f.t(Msg::Filing),
        f.t(Msg::Recipients),
        f.t(Msg::Files),
    );
    for p in packets {
        let status = p.filing_status();
        let recipients: Vec<String> = p
            .filings
            .iter()
            .map(|r| {
                format!(
                    "{} → {}: {} ({} {}){}",
                    esc(&r.channel),
                    esc(&r.recipient),
                    esc(label(f.lang, &r.status)),
                    r.attempts,
                    f.t(Msg::Attempts),
                    r.message_id
                        .as_deref()
                        .map(|m| format!(" <code>{}</code>", esc(m)))
                        .unwrap_or_default()
                )
            })
            .collect();
        let files: Vec<String> = p
            .files
            .iter()
            .map(|file| {
                if download {
                    format!(
                        r#"<a class="packet-file" href="/ui/packets/{}/files/{}" download>{}</a>"#,
                        seg(&p.packet_id),
                        seg(&file.name),
                        esc(&file.name)
                    )
                } else {
                    esc(&file.name)
                }
            })
            .collect();
        let mut status_cell = status_badge(f.lang, status);
        if refile && status == "failed" && f.role_may("POST", "/ui/packets/{packet}/file") {
            status_cell.push(' ');
            status_cell.push_str(&f.button_form(
                &format!("/ui/packets/{}/file", seg(&p.packet_id)),
                f.t(Msg::Refile),
                r#"class="refile""#,
            ));
        }
        out.push_str(&format!(
            r#"<tr class="packet" data-kind="{kind}"><td><code>{id}</code> v{version}</td><td>{kind_label}</td><td><a href="/ui/cases/{case_seg}">{case}</a></td><td>{built}</td><td>{status_cell}</td><td>{recipients}</td><td>{files}</td></tr>"#,
            kind = esc(&p.kind),
            id = esc(&p.packet_id),
            version = p.version,
            kind_label = esc(label(f.lang, &p.kind)),
            case_seg = seg(&p.case),
            case = esc(&p.case),
            built = esc(&when(&p.built_at)),
            recipients = if recipients.is_empty() {
                "—".into()
            } else {
                recipients.join("<br>")
            },
            files = files.join("<br>"),
        ));
    }
    out.push_str("</tbody></table>");
    out
}

pub fn packets_page(f: &Frame, packets: &[PacketView]) -> String {
    document(
        f,
        "packets",
        f.t(Msg::NavPackets),
        &packets_table(f, packets, true),
    )
}

/// Everything the case page shows, gathered (and its reads recorded) by the handler.
pub struct CasePage {
    pub case: CaseView,
    /// `api::routes::timeline_line` values, oldest first.
    pub timeline: Vec<Value>,
    /// Timeline lines left out (only the latest are shown).
    pub timeline_cut: usize,
    /// Findings, with the masked sample when the reader's role may see review cards.
    pub findings: Vec<(FindingView, Option<Vec<MaskedRow>>)>,
    pub packets: Vec<PacketView>,
}

pub fn case_page(f: &Frame, d: &CasePage) -> String {
    let c = &d.case;
    let mut body = format!(
        r#"<dl class="facts" id="case-facts"><dt>{}</dt><dd id="case-id">{}</dd><dt>{}</dt><dd>{}:{}</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd id="case-note">{}</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{} {}</dd><dt>{}</dt><dd>{}</dd>"#,
        f.t(Msg::Case),
        esc(&c.case),
        f.t(Msg::Group),
        esc(&c.platform),
        esc(&c.group_id),
        f.t(Msg::GroupName),
        opt(c.group_name.as_deref()),
        f.t(Msg::Link),
        esc(&c.link),
        f.t(Msg::Note),
        opt(c.note.as_deref()),
        f.t(Msg::Opened),
        esc(&when(&c.opened_at)),
        f.t(Msg::OpenedBy),
        esc(&c.opened_by),
        f.t(Msg::JoinStatus),
        c.join_status
            .as_deref()
            .map(|s| status_badge(f.lang, s))
            .unwrap_or_else(|| "—".into()),
        opt(c.join_detail.as_deref()),
        f.t(Msg::Members),
        c.member_count
            .map(|n| n.to_string())
            .unwrap_or_else(|| "—".into()),
    );
    if let Some(ended) = &c.ended {
        body.push_str(&format!(
            "<dt>{}</dt><dd>{}</dd>",
            f.t(Msg::Ended),
            esc(ended)
        ));
    }
    body.push_str("</dl>");

    if f.role_may("GET", "/ui/cases/{case}/bundle") {
        body.push_str(&format!(
            r#"<p class="bundle"><a id="bundle-link" href="/ui/cases/{}/bundle">{}</a> <span class="help">{}</span></p>"#,
            seg(&c.case),
            f.t(Msg::Bundle),
            f.t(Msg::BundleHelp)
        ));
    }

    // Packets first: what legal comes for; then tracking, the offer, findings, the timeline.
    body.push_str(&format!(
        r#"<h2>{}</h2><div id="case-packets">{}</div>"#,
        f.t(Msg::Packets),
        packets_table(f, &d.packets, true)
    ));

    if let Some(o) = &c.last_offer {
        body.push_str(&format!(
            "<h2>{}</h2>{}",
            f.t(Msg::LatestOffer),
            offer(f, o)
        ));
    }

    body.push_str(&format!(
        r#"<h2>{}</h2><div id="tracking">"#,
        f.t(Msg::Tracking)
    ));
    let t = &c.tracking;
    match &t.takedown_filed_at {
        None => body.push_str(&format!("<p>{}</p>", f.t(Msg::TrackingNone))),
        Some(filed) => {
            body.push_str(&format!(
                r#"<dl class="facts"><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{} {}</dd><dt>{}</dt><dd>{}</dd>"#,
                f.t(Msg::TakedownFiled),
                esc(&when(filed)),
                f.t(Msg::LastProbe),
                opt(t.last_probe_at.as_deref().map(when).as_deref()),
                t.last_result
                    .as_deref()
                    .map(|s| status_badge(f.lang, s))
                    .unwrap_or_default(),
                f.t(Msg::Probes),
                t.probes,
            ));
            for (m, v) in [
                (Msg::GoneAt, &t.gone_at),
                (Msg::EscalatedAt, &t.escalated_at),
            ] {
                if let Some(v) = v {
                    body.push_str(&format!("<dt>{}</dt><dd>{}</dd>", f.t(m), esc(&when(v))));
                }
            }
            body.push_str("</dl>");
        }
    }
    body.push_str("</div>");

    body.push_str(&format!(
        r#"<h2>{}</h2><div id="findings">"#,
        f.t(Msg::Findings)
    ));
    if d.findings.is_empty() {
        body.push_str(&format!("<p>{}</p>", f.t(Msg::NoFindings)));
    }
    let review = f.role_may("GET", "/ui/review/{finding}");
    for (x, sample) in &d.findings {
        let title = if review {
            format!(
                r#"<a href="/ui/review/{}">{}</a>"#,
                seg(&x.finding),
                esc(&x.finding)
            )
        } else {
            esc(&x.finding)
        };
        // One line per finding; its facts, offer and masked sample fold out (no script).
        body.push_str(&format!(
            r#"<details class="finding" data-finding="{}"><summary>{} {} · {} · {} {} · {} {}</summary>{}"#,
            esc(&x.finding),
            f.t(Msg::Finding),
            title,
            status_badge(f.lang, &x.status),
            x.distinct_customers,
            f.t(Msg::Customers),
            x.distinct_orders,
            f.t(Msg::Orders),
            finding_facts(f, x)
        ));
        if let Some(rows) = sample {
            body.push_str(&format!(
                "<h4>{}</h4>{}",
                f.t(Msg::Sample),
                masked_table(f, rows)
            ));
        }
        if let Some(o) = &x.offer {
            body.push_str(&format!("<h4>{}</h4>{}", f.t(Msg::Offer), offer(f, o)));
        }
        body.push_str("</details>");
    }
    body.push_str("</div>");

    body.push_str(&format!(r#"<h2>{}</h2>"#, f.t(Msg::Timeline)));
    if d.timeline_cut > 0 {
        body.push_str(&format!(
            r#"<p class="help">{} {} / {}</p>"#,
            f.t(Msg::TimelineCut),
            d.timeline.len(),
            d.timeline.len() + d.timeline_cut
        ));
    }
    body.push_str(&format!(
        r#"<table id="timeline"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>"#,
        f.t(Msg::Index),
        f.t(Msg::At),
        f.t(Msg::Actor),
        f.t(Msg::Kind),
        f.t(Msg::What)
    ));
    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or("").to_string();
    for line in &d.timeline {
        let kind = s(line, "kind");
        body.push_str(&format!(
            r#"<tr data-kind="{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            esc(&kind),
            line["index"].as_u64().unwrap_or(0),
            esc(&when(&s(line, "at"))),
            esc(&s(line, "actor")),
            esc(label(f.lang, &kind)),
            esc(&s(line, "what")),
        ));
    }
    body.push_str("</tbody></table>");
    document(f, "case", &format!("{} {}", f.t(Msg::Case), c.case), &body)
}

pub fn intake(f: &Frame, opened: Option<(&str, bool)>, error: Option<&str>) -> String {
    let mut body = String::new();
    if let Some((case, new_case)) = opened {
        body.push_str(&format!(
            r#"<p class="notice" id="intake-result">{} <a id="intake-case" href="/ui/cases/{}">{}</a></p>"#,
            f.t(if new_case {
                Msg::CaseOpened
            } else {
                Msg::CaseExisting
            }),
            seg(case),
            esc(case)
        ));
    }
    if let Some(e) = error {
        body.push_str(&format!(
            r#"<p class="error" id="intake-error">{}</p>"#,
            esc(e)
        ));
    }
    body.push_str(&format!(
        r#"<form method="post" action="/ui/intake" id="intake-form" class="stack">{csrf}
<label for="link">{link}</label>
<input type="text" id="link" name="link" required maxlength="{max_link}" autocomplete="off">
<p class="help">{help}</p>
<label for="note">{note}</label>
<textarea id="note" name="note" rows="3" maxlength="{max_note}"></textarea>
<button type="submit" id="intake-submit">{submit}</button>
</form>"#,
        csrf = f.csrf_field(),
        link = f.t(Msg::IntakeLink),
        help = f.t(Msg::IntakeHelp),
        note = f.t(Msg::IntakeNote),
        submit = f.t(Msg::Submit),
        max_link = crate::intake::MAX_LINK,
        max_note = crate::intake::MAX_NOTE,
    ));
    document(f, "intake", f.t(Msg::IntakeTitle), &body)
}

/// A note after "submit & next": which finding was decided how, and what it built.
pub struct DoneNotice {
    pub finding: String,
    pub decision: crate::review::Decision,
    pub packets: usize,
    pub packet_error: bool,
}

fn done_notice(f: &Frame, n: &DoneNotice) -> String {
    let mut text = format!(
        "{}: {} — {}",
        n.finding,
        label(f.lang, n.decision.as_str()),
        f.t(Msg::DecisionRecorded)
    );
    if n.packets > 0 {
        text.push_str(&format!("; {} {}", n.packets, f.t(Msg::PacketsBuilt)));
    }
    if n.packet_error {
        text.push_str(&format!("; {}", f.t(Msg::PacketsFailed)));
    }
    format!(r#"<p class="notice" id="done">{}</p>"#, esc(&text))
}

fn claim_next_form(f: &Frame) -> String {
    format!(
        r#"<form method="post" action="/ui/review/next" class="inline" id="claim-next-form">{}<button type="submit" id="claim-next">{} <kbd>n</kbd></button></form>"#,
        f.csrf_field(),
        f.t(Msg::ClaimNext)
    )
}

pub fn review_queue(f: &Frame, queue: &[FindingView], done: Option<&DoneNotice>) -> String {
    let mut body = String::new();
    if let Some(n) = done {
        body.push_str(&done_notice(f, n));
    }
    body.push_str(&format!(
        r#"<p>{} <strong id="queue-count">{}</strong></p>"#,
        f.t(Msg::QueueOpen),
        queue.len()
    ));
    if queue.is_empty() {
        body.push_str(&format!(
            r#"<p id="queue-empty">{}</p>"#,
            f.t(Msg::QueueEmpty)
        ));
    } else {
        body.push_str(&claim_next_form(f));
        body.push_str(&format!(
            r#"<table id="queue"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>"#,
            f.t(Msg::Finding),
            f.t(Msg::Status),
            f.t(Msg::Case),
            f.t(Msg::Customers),
            f.t(Msg::ClaimedBy)
        ));
        for x in queue {
            body.push_str(&format!(
                r#"<tr><td><a href="/ui/review/{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                seg(&x.finding),
                esc(&x.finding),
                status_badge(f.lang, &x.status),
                esc(&x.case),
                x.distinct_customers,
                opt(x.claimed_by.as_deref()),
            ));
        }
        body.push_str("</tbody></table>");
    }
    body.push_str(&format!(
        r#"<p class="help shortcuts">{}</p>"#,
        f.t(Msg::Shortcuts)
    ));
    document(f, "review-queue", f.t(Msg::ReviewTitle), &body)
}

/// How the viewer stands to the finding on the card.
pub enum Hold {
    /// The viewer holds the claim: the decision form is shown.
    Mine,
    /// Open, but not held by the viewer (perhaps by someone else until a time).
    Open { holder: Option<(String, String)> },
    /// Decided; no longer in the queue.
    Closed,
}

pub struct CardPage<'a> {
    pub card: &'a FindingCard,
    pub hold: Hold,
    pub queue_len: usize,
    pub done: Option<DoneNotice>,
    pub revealed: Option<&'a [SampleRow]>,
}

pub fn review_card(f: &Frame, d: &CardPage) -> String {
    let x = &d.card.finding;
    let fid = seg(&x.finding);
    let mut body = String::new();
    if let Some(n) = &d.done {
        body.push_str(&done_notice(f, n));
    }
    body.push_str(&format!(
        r#"<p class="card-head"><span class="finding-id" id="finding-id">{}</span> · {} <strong id="queue-count">{}</strong></p>"#,
        esc(&x.finding),
        f.t(Msg::QueueOpen),
        d.queue_len
    ));
    match &d.hold {
        Hold::Mine => body.push_str(&format!(
            r#"<p class="notice" id="hold">{}{}</p>"#,
            f.t(Msg::YouHold),
            x.claim_until
                .as_deref()
                .map(|u| format!(" ({} {})", f.t(Msg::Until), esc(&when(u))))
                .unwrap_or_default()
        )),
        Hold::Open { holder } => {
            body.push_str(&format!(
                r#"<p class="warning" id="hold">{}"#,
                f.t(Msg::NotYours)
            ));
            if let Some((who, until)) = holder {
                body.push_str(&format!(
                    " {} {} {} {}",
                    f.t(Msg::ClaimedBy),
                    esc(who),
                    f.t(Msg::Until),
                    esc(&when(until))
                ));
            }
            body.push_str("</p>");
            body.push_str(&f.button_form(
                &format!("/ui/review/{fid}/claim"),
                f.t(Msg::Claim),
                r#"id="claim""#,
            ));
        }
        Hold::Closed => body.push_str(&format!(
            r#"<p class="notice" id="hold">{}</p>"#,
            f.t(Msg::Closed)
        )),
    }

    // The sample first: it is what the moderator judges; the facts and the offer beside it.
    body.push_str(r#"<div class="card" id="card">"#);
    body.push_str(&format!(
        r#"<h3>{}</h3><div id="sample">{}</div>"#,
        f.t(Msg::Sample),
        masked_table(f, &d.card.sample)
    ));
    if let Some(rows) = d.revealed {
        body.push_str(&revealed_table(f, rows));
    }
    body.push_str(&format!(
        r#"<div class="cols"><div>{}</div>"#,
        finding_facts(f, x)
    ));
    if let Some(o) = &x.offer {
        body.push_str(&format!(
            "<div><h3>{}</h3>{}</div>",
            f.t(Msg::Offer),
            offer(f, o)
        ));
    }
    body.push_str("</div>");
    if !d.card.captures.is_empty() {
        let list: Vec<String> = d.card.captures.iter().map(|i| format!("#{i}")).collect();
        body.push_str(&format!(
            "<p class=\"help\">{}: {}</p>",
            f.t(Msg::Captures),
            list.join(", ")
        ));
    }
    body.push_str("</div>");

    if matches!(d.hold, Hold::Mine) {
        body.push_str(&format!(
            r#"<form method="post" action="/ui/review/{fid}/decision" id="decision-form" class="stack">{csrf}
<label for="reason">{reason}</label>
<textarea id="reason" name="reason" rows="2" required maxlength="2000"></textarea>
<p class="hint" id="reason-hint" hidden>{reason_first}</p>
<div class="buttons">
<button type="submit" name="decision" value="approve" data-decision="approve" id="approve">{approve} <kbd>a</kbd></button>
<button type="submit" name="decision" value="reject" data-decision="reject" id="reject">{reject} <kbd>r</kbd></button>
<button type="submit" name="decision" value="escalate" data-decision="escalate" id="escalate">{escalate} <kbd>e</kbd></button>
</div>
<p class="help">{submit_next}</p>
</form>"#,
            csrf = f.csrf_field(),
            reason = f.t(Msg::Reason),
            reason_first = f.t(Msg::ReasonFirst),
            approve = f.t(Msg::Approve),
            reject = f.t(Msg::Reject),
            escalate = f.t(Msg::Escalate),
            submit_next = f.t(Msg::SubmitNext),
        ));
    }
    if x.kind == "verified_sample" && d.revealed.is_none() {
        body.push_str(&format!(
            r#"<form method="post" action="/ui/review/{fid}/reveal" id="reveal-form" class="stack reveal">{csrf}
<label for="reveal-reason">{why}</label>
<input type="text" id="reveal-reason" name="reason" required maxlength="2000" autocomplete="off">
<button type="submit" id="reveal">{reveal}</button>
</form>"#,
            csrf = f.csrf_field(),
            why = f.t(Msg::RevealReason),
            reveal = f.t(Msg::Reveal),
        ));
    }
    // While the moderator holds this finding, "next" would only return it again.
    if !matches!(d.hold, Hold::Mine) {
        body.push_str(&claim_next_form(f));
    }
    body.push_str(&format!(
        r#"<p class="help shortcuts">{}</p>"#,
        f.t(Msg::Shortcuts)
    ));
    document(
        f,
        "review-card",
        &format!("{} {}", f.t(Msg::Finding), x.finding),
        &body,
    )
}

/// Whether a role may see masked samples on the case page (the same roles that may read a
/// finding card through the API).
pub fn role_reads_cards(role: Role) -> bool {
    crate::api::PERMISSIONS
        .iter()
        .find(|p| p.method == "GET" && p.path == "/api/v1/findings/{finding}")
        .is_some_and(|p| p.roles.contains(&role))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::tokens::Principal;

    fn case(note: &str) -> CaseView {
        CaseView {
            case: "C-0123456789".into(),
            platform: "qq".into(),
            group_id: "800000777".into(),
            link: "qq:800000777".into(),
            note: Some(note.into()),
            opened_at: "2026-01-01T00:00:00Z".into(),
            opened_by: "intake:ivy".into(),
            opened_entry: 1,
            join_status: None,
            join_detail: None,
            group_name: Some("<b>群</b>".into()),
            member_count: None,
            last_snapshot: None,
            ended: None,
            last_offer: Some(
                serde_json::json!({"price_per_record_fen": 10, "cities": ["深圳", "<i>"]}),
            ),
            tracking: Default::default(),
        }
    }

    #[test]
    fn chat_content_and_notes_are_escaped_everywhere() {
        assert_eq!(
            esc(r#"<script>alert("x")</script>&'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
        let user = SessionInfo {
            principal: Principal {
                owner: "lena".into(),
                role: Role::Legal,
                token_id: "x".into(),
            },
            csrf: "c".repeat(64),
        };
        let f = Frame {
            lang: Lang::En,
            user: Some(&user),
            here: "/ui/cases/C-0123456789",
        };
        let page = case_page(
            &f,
            &CasePage {
                case: case("<script>alert(1)</script>"),
                timeline: vec![
                    serde_json::json!({"index": 3, "at": "t", "actor": "<img src=x>", "kind": "captured", "what": "<svg onload=1>"}),
                ],
                timeline_cut: 0,
                findings: vec![],
                packets: vec![],
            },
        );
        for raw in ["<script>alert", "<b>群", "<img src", "<svg", "<i>"] {
            assert!(!page.contains(raw), "{raw} must be escaped");
        }
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("¥0.10"));
        assert!(
            page.contains(r#"id="bundle-link""#),
            "legal sees the bundle link"
        );
        assert!(
            page.contains(&"c".repeat(64)),
            "logout form carries the CSRF token"
        );
        // The only scripts are the console's own file.
        assert_eq!(page.matches("<script").count(), 1);
    }

    #[test]
    fn urls_are_encoded() {
        assert_eq!(seg("F-12"), "F-12");
        assert_eq!(seg("a/b?c"), "a%2Fb%3Fc");
        assert_eq!(seg("报告.pdf"), "%E6%8A%A5%E5%91%8A.pdf");
        assert_eq!(query("/ui/cases?x=1"), "%2Fui%2Fcases%3Fx%3D1");
    }

    #[test]
    fn pages_follow_the_language() {
        let f = Frame {
            lang: Lang::Zh,
            user: None,
            here: "/ui/login",
        };
        let page = login(&f, Some(Msg::LoginFailed), "x", "/ui/", false);
        assert!(page.contains(r#"<html lang="zh-CN">"#));
        assert!(page.contains("令牌无效"));
        assert!(page.contains(r#"href="/ui/login?lang=en""#));
    }
}
