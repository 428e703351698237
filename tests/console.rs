//! The web console end to end in a real browser: the `serve` binary with the simulator finds
//! verified samples; headless Chromium, driven over W3C WebDriver (`chromedriver`), logs in as
//! intake and submits a group through the form, as two moderators works the queue with the
//! keyboard (four-eyes, "submit & next"), and as legal reads the case and downloads a packet
//! file. Around the browser, plain HTTP checks what a browser would hide: a POST without the
//! CSRF token is refused and changes nothing, the security headers and cookie flags, the login
//! limit. Screenshots of the main pages go to `target/test-artifacts/console/`.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::header::{CACHE_CONTROL, CONTENT_DISPOSITION, COOKIE, LOCATION};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use common::webdriver::{Browser, ChromeDriver};

fn artifacts_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp; artifacts sit beside it.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(|p| p.join("test-artifacts").join("console"))
        .unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Save a screenshot of the whole current page (the window grown to the page's height, within
/// reason); it must be a real PNG.
async fn shot(b: &Browser, name: &str) {
    let height = b
        .execute(
            "return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight);",
            json!([]),
        )
        .await
        .as_u64()
        .unwrap_or(900);
    b.set_window(1280, (height + 140).clamp(900, 4000)).await;
    let png = b.screenshot().await;
    b.set_window(1280, 900).await;
    assert!(
        png.len() > 1000 && png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "screenshot {name} is not a PNG"
    );
    let path = artifacts_dir().join(format!("{name}.png"));
    std::fs::write(&path, &png).unwrap();
    println!("screenshot: {}", path.display());
}

/// No run of digits as long as a mobile number: a masked page never shows a full phone.
fn longest_digit_run(text: &str) -> usize {
    text.split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or(0)
}

struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let Ok(resp) = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
        else {
            return (0, Value::Null);
        };
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

async fn login(b: &Browser, base: &str, token: &str, lands_on: &str) {
    b.goto(&format!("{base}/ui/login")).await;
    b.wait_page("login", 10).await;
    let field = b.wait("#token", 5).await;
    b.send_keys(&field, token).await;
    b.click(&b.wait("#login-button", 5).await).await;
    b.wait_page(lands_on, 15).await;
}

async fn logout(b: &Browser) {
    b.click(&b.wait("#logout", 5).await).await;
    b.wait_page("login", 10).await;
}

/// The finding on the card shown now.
async fn card_finding(b: &Browser) -> String {
    b.text(&b.wait("#finding-id", 10).await).await
}

/// Type a reason, leave the field, press a shortcut key; wait for the next page.
async fn decide_with_key(b: &Browser, key: &str, reason: &str, before: &str) {
    b.send_keys(&b.wait("#reason", 5).await, reason).await;
    // Focus leaves the text field (as a user clicking the page would), so the key is a shortcut.
    b.click(&b.wait("h1", 5).await).await;
    b.press(key).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(done) = b.find("#done").await
            && b.text(&done).await.contains(before)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no \"submit & next\" after pressing {key}: {}",
            b.body_text().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_headless_chromium_intake_review_and_legal() {
    let started = Instant::now();
    let s0 = common::Scratch::new("");
    let drop_dir = s0.dir.path().join("drop");
    let (s, _sim_port, api_port) = common::simulator_scratch(
        5,
        &format!(
            "[review]\nfour_eyes = true\n\
         [filing.retry]\nattempts = 2\ninitial_backoff_ms = 100\nmax_backoff_ms = 200\n\
         [[filing.routes]]\nkind = \"takedown\"\nchannel = \"file_drop\"\ndir = {d1:?}\n\
         [[filing.routes]]\nkind = \"police\"\nchannel = \"file_drop\"\ndir = {d2:?}\n\
         [[filing.routes]]\nkind = \"breach_notice\"\nchannel = \"file_drop\"\ndir = {d3:?}\n",
            d1 = drop_dir.join("takedown"),
            d2 = drop_dir.join("police"),
            d3 = drop_dir.join("breach_notice"),
        ),
    );
    let ivy = common::create_token(&s, "intake", "ivy");
    let alice = common::create_token(&s, "moderator", "alice");
    let bob = common::create_token(&s, "moderator", "bob");
    let lena = common::create_token(&s, "legal", "lena");
    let _serve = common::ChildGuard(
        s.cmd(&["serve"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{api_port}");
    let api = Api {
        base: base.clone(),
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
    };
    // A client that shows redirects instead of following them, for the checks around the browser.
    let raw = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    common::wait_for("the server", 30, async || {
        let r = raw.get(format!("{base}/healthz")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;

    let driver = ChromeDriver::start().await;
    let b = driver.browser().await;

    // `/` leads to the login page; a wrong token is refused.
    b.goto(&format!("{base}/")).await;
    b.wait_page("login", 10).await;
    shot(&b, "01-login").await;
    b.send_keys(&b.wait("#token", 5).await, "lw_moderator_not-a-token")
        .await;
    b.click(&b.wait("#login-button", 5).await).await;
    let err = b.wait("#login-error", 10).await;
    assert!(b.text(&err).await.contains("not valid"));
    b.wait_page("login", 5).await;

    // Intake submits a new QQ group through the form; the note is chat-like hostile text.
    login(&b, &base, &ivy, "intake").await;
    let cookie = b.cookie("lw_session").await.expect("session cookie");
    assert_eq!(cookie["httpOnly"], true, "{cookie}");
    assert_eq!(cookie["sameSite"], "Strict", "{cookie}");
    assert_eq!(
        cookie["secure"], false,
        "loopback default: not Secure (plain HTTP)"
    );
    let hostile = "<script>alert(1)</script>";
    b.send_keys(&b.wait("#link", 5).await, "800000777").await;
    b.send_keys(&b.wait("#note", 5).await, hostile).await;
    b.click(&b.wait("#intake-submit", 5).await).await;
    let link = b.wait("#intake-case", 10).await;
    let intake_case = b.text(&link).await;
    assert!(intake_case.starts_with("C-"), "{intake_case}");
    b.click(&link).await;
    b.wait_page("case", 10).await;
    // Shown as text (escaped), never run: an alert would fail every later WebDriver call.
    assert_eq!(b.text(&b.wait("#case-note", 5).await).await, hostile);
    let source = b.source().await;
    assert!(!source.contains(hostile), "the note is escaped in the page");
    assert!(source.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    // Intake may not open the review queue.
    b.goto(&format!("{base}/ui/review")).await;
    b.wait_page("message", 10).await;
    logout(&b).await;

    // Findings arrive from the simulator's groups.
    let queue = common::wait_for("two findings in the review queue", 120, async || {
        let (st, v) = api.get("/api/v1/review/queue", &alice).await;
        let q = v["queue"].as_array()?.clone();
        (st == 200 && q.len() >= 2).then_some(q)
    })
    .await;
    assert!(queue.iter().all(|f| f["status"] == "new"));

    // Moderator A: the queue, `n` claims, the card is masked, `a` approves and the next
    // finding is claimed and shown.
    login(&b, &base, &alice, "review-queue").await;
    b.click(&b.wait("h1", 5).await).await;
    b.press("n").await;
    b.wait_page("review-card", 10).await;
    let first = card_finding(&b).await;
    let sample = b.text(&b.wait("#sample", 5).await).await;
    assert!(sample.contains("****"), "masked phones: {sample}");
    let page = b.body_text().await;
    assert!(
        longest_digit_run(&page) < 11,
        "no full phone number on the card:\n{page}"
    );
    shot(&b, "04-review-card").await;
    decide_with_key(&b, "a", "orders are real and fresh", &first).await;
    b.wait_page("review-card", 10).await;
    let second = card_finding(&b).await;
    assert_ne!(second, first, "submit & next shows another finding");
    let done = b.text(&b.wait("#done", 5).await).await;
    assert!(done.contains("approve"), "{done}");

    // A POST without (or with a wrong) CSRF token is refused and changes nothing.
    let alice_cookie = b.cookie("lw_session").await.unwrap()["value"]
        .as_str()
        .unwrap()
        .to_string();
    for form in [
        vec![("decision", "approve"), ("reason", "forged")],
        vec![
            ("decision", "approve"),
            ("reason", "forged"),
            ("csrf", "00"),
        ],
    ] {
        let r = raw
            .post(format!("{base}/ui/review/{second}/decision"))
            .header(COOKIE, format!("lw_session={alice_cookie}"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "POST without a valid CSRF token");
    }
    // With the page's own token the same POST passes the gate; review then wants a reason.
    let csrf = b
        .attr(&b.wait("#decision-form input[name=csrf]", 5).await, "value")
        .await
        .unwrap();
    let r = raw
        .post(format!("{base}/ui/review/{second}/decision"))
        .header(COOKIE, format!("lw_session={alice_cookie}"))
        .form(&[("decision", "approve"), ("reason", " "), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        400,
        "the token is accepted, the empty reason is not"
    );
    let (_, card) = api.get(&format!("/api/v1/findings/{second}"), &alice).await;
    assert_eq!(card["finding"]["status"], "new", "nothing changed");
    assert_eq!(card["finding"]["decisions"], json!([]));

    // Reveal needs a reason, is on record, and shows the rows once.
    b.send_keys(&b.wait("#reveal-reason", 5).await, "check the ward number")
        .await;
    b.click(&b.wait("#reveal", 5).await).await;
    let revealed = b.wait("#revealed", 10).await;
    assert!(!b.text(&revealed).await.is_empty());
    b.goto(&format!("{base}/ui/review/{second}")).await;
    b.wait_page("review-card", 10).await;
    assert!(b.find("#revealed").await.is_none(), "shown once");
    let (_, card) = api.get(&format!("/api/v1/findings/{second}"), &alice).await;
    assert_eq!(card["finding"]["reveals"], json!(["moderator:alice"]));

    // The security headers, on a page with case data.
    let r = raw
        .get(format!("{base}/ui/review/{second}"))
        .header(COOKIE, format!("lw_session={alice_cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h[CACHE_CONTROL], "no-store");

    // Chinese, chosen with ?lang=zh (and kept in a cookie), then back to English.
    b.goto(&format!("{base}/ui/review?lang=zh")).await;
    b.wait_page("review-card", 10).await;
    let zh = b.body_text().await;
    assert!(
        zh.contains("审核") && zh.contains("批准") && zh.contains("退出登录"),
        "{zh}"
    );
    let html = b.wait("html", 5).await;
    assert_eq!(b.attr(&html, "lang").await.as_deref(), Some("zh-CN"));
    shot(&b, "05-review-card-zh").await;
    b.goto(&format!("{base}/ui/cases")).await;
    b.wait_page("cases", 10).await;
    assert!(b.body_text().await.contains("案件"), "the choice is kept");
    b.click(&b.wait("#lang-switch", 5).await).await;
    b.wait_page("cases", 10).await;
    assert!(b.body_text().await.contains("Cases"));
    logout(&b).await;

    // Moderator B gives the first finding its second approval.
    login(&b, &base, &bob, "review-queue").await;
    b.click(&b.wait("h1", 5).await).await;
    b.press("n").await;
    b.wait_page("review-card", 10).await;
    assert_eq!(
        card_finding(&b).await,
        first,
        "B is handed the finding waiting for its second approval"
    );
    decide_with_key(&b, "a", "confirmed, second pair of eyes", &first).await;
    let (_, card) = api.get(&format!("/api/v1/findings/{first}"), &bob).await;
    assert_eq!(card["finding"]["status"], "approved");
    let case = card["finding"]["case"].as_str().unwrap().to_string();
    logout(&b).await;

    // Legal: cases, the case with its packets, a packet file, the packets page.
    let packets = common::wait_for("three packets filed", 60, async || {
        let (_, v) = api.get("/api/v1/packets", &lena).await;
        let list = v["packets"].as_array()?.clone();
        let mine: Vec<Value> = list
            .into_iter()
            .filter(|p| p["packet"]["finding"] == first.as_str())
            .collect();
        (mine.len() == 3 && mine.iter().all(|p| p["filing_status"] == "filed")).then_some(mine)
    })
    .await;
    login(&b, &base, &lena, "cases").await;
    shot(&b, "02-cases").await;
    b.click(
        &b.wait(&format!("a.case-link[href=\"/ui/cases/{case}\"]"), 5)
            .await,
    )
    .await;
    b.wait_page("case", 10).await;
    assert_eq!(b.find_all("#case-packets tr.packet").await.len(), 3);
    assert!(
        b.find("#bundle-link").await.is_some(),
        "legal sees the bundle link"
    );
    let timeline = b.text(&b.wait("#timeline", 5).await).await;
    assert!(timeline.contains("review decision"), "{timeline}");
    shot(&b, "03-case-detail").await;
    let file_link = b.wait("#case-packets a.packet-file", 5).await;
    let href = b.attr(&file_link, "href").await.unwrap();
    let lena_cookie = b.cookie("lw_session").await.unwrap()["value"]
        .as_str()
        .unwrap()
        .to_string();
    let r = raw
        .get(format!("{base}{href}"))
        .header(COOKIE, format!("lw_session={lena_cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{href}");
    assert!(
        r.headers()[CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("attachment"),
    );
    let bytes = r.bytes().await.unwrap();
    let name = href.rsplit('/').next().unwrap();
    let on_record = packets
        .iter()
        .flat_map(|p| p["packet"]["files"].as_array().unwrap().clone())
        .find(|f| f["name"] == name)
        .unwrap();
    assert_eq!(
        hex::encode(Sha256::digest(&bytes)),
        on_record["blob"]["sha256"].as_str().unwrap(),
        "the download is the packet file on record"
    );
    // The evidence bundle behind the bundle link downloads and verifies offline.
    let bundle_href = b
        .attr(&b.wait("#bundle-link", 5).await, "href")
        .await
        .unwrap();
    let r = raw
        .get(format!("{base}{bundle_href}"))
        .header(COOKIE, format!("lw_session={lena_cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{bundle_href}");
    let zip = r.bytes().await.unwrap();
    let zip_path = s.dir.path().join("console-bundle.zip");
    std::fs::write(&zip_path, &zip).unwrap();
    let out = s.run(&["bundle", "verify", zip_path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "downloaded bundle verifies: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    b.goto(&format!("{base}/ui/packets")).await;
    b.wait_page("packets", 10).await;
    assert!(b.body_text().await.contains("filed"));
    shot(&b, "06-packets").await;
    // Legal may not open the review queue; nor may anyone without a session.
    b.goto(&format!("{base}/ui/review")).await;
    b.wait_page("message", 10).await;
    let r = raw.get(format!("{base}/ui/cases")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()[LOCATION]
            .to_str()
            .unwrap()
            .starts_with("/ui/login")
    );

    // Every page read above is on record under the reader's name, as API reads are.
    let (_, c) = api.get(&format!("/api/v1/cases/{case}"), &lena).await;
    let lines = c["timeline"].as_array().unwrap();
    let by = |actor: &str, kind: &str| {
        lines
            .iter()
            .any(|l| l["actor"] == actor && l["kind"] == kind)
    };
    assert!(
        by("legal:lena", "custody"),
        "case read and file download recorded"
    );
    assert!(by("moderator:alice", "custody"), "card read recorded");
    assert!(by("moderator:alice", "review_decided"));
    assert!(by("moderator:bob", "review_decided"));
    let (_, c) = api
        .get(&format!("/api/v1/cases/{intake_case}"), &lena)
        .await;
    assert_eq!(c["case"]["opened_by"], "intake:ivy");
    assert!(
        c["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["actor"] == "intake:ivy" && l["kind"] == "custody")
    );

    // Failed logins are limited per address: after ten a minute, even a good token waits.
    let login_form = async || {
        let r = raw.get(format!("{base}/ui/login")).send().await.unwrap();
        let cookie = r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let html = r.text().await.unwrap();
        let value = html
            .split("name=\"login_csrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .to_string();
        (cookie, value)
    };
    let mut statuses = Vec::new();
    for _ in 0..11 {
        let (cookie, value) = login_form().await;
        let r = raw
            .post(format!("{base}/ui/login"))
            .header(COOKIE, cookie)
            .form(&[("login_csrf", value.as_str()), ("token", "lw_legal_wrong")])
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 401 || *s == 429));
    let (cookie, value) = login_form().await;
    let r = raw
        .post(format!("{base}/ui/login"))
        .header(COOKIE, cookie)
        .form(&[("login_csrf", value.as_str()), ("token", lena.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        429,
        "throttled addresses wait even with a good token"
    );

    drop(b);
    drop(driver);
    println!(
        "console test: {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        artifacts_dir().display()
    );
}
