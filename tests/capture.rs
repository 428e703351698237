//! Capture end to end: `serve` against the simulator over real sockets — intake, joining,
//! capture of every message and media item, extraction measured against what the simulator
//! really posted, crash safety of the real binary, and hostile messages.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use leakwatch::evidence::Evidence;
use leakwatch::ledger::entry::EntryBody;
use leakwatch::simulator::scenario::PostKind;
use serde_json::json;

use common::free_port;

/// A scenario file: both default groups, `messages` each, posted fast.
fn write_scenario(dir: &std::path::Path, messages: u64, rate: f64) -> std::path::PathBuf {
    let text = leakwatch::simulator::scenario::DEFAULT_SCENARIO
        .replace("messages = 40", &format!("messages = {messages}"))
        .replace("rate_per_s = 2.0", &format!("rate_per_s = {rate}"))
        .replace("orders = 3000", "orders = 600");
    let path = dir.join("scenario.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Config for `serve` with the built-in simulator on `sim_port`.
fn serve_config(
    s_dir: &std::path::Path,
    sim_port: u16,
    scenario: &std::path::Path,
    embedded_sim: bool,
) -> String {
    format!(
        "checkpoint_interval_s = 1\n\
         [[adapters.onebot]]\nname = \"qq\"\nmode = \"forward-ws\"\nurl = \"ws://127.0.0.1:{sim_port}/\"\naccess_token = \"t\"\nallow_private_media = true\nreconnect_max_ms = 500\n\
         [capture]\njoin_retry_s = 1\n\
         [api]\nlisten = \"127.0.0.1:{api}\"\n\
         [simulator]\nenabled = {embedded_sim}\nlisten = \"127.0.0.1:{sim_port}\"\ntoken = \"t\"\nsubmit_groups = {embedded_sim}\nimport_records = {embedded_sim}\nscenario = {scenario:?}\n",
        api = free_port(),
    )
    .replace("{s_dir}", &s_dir.display().to_string())
}

/// Every `captured` entry: (group, message id) -> ledger index.
fn captures(ev: &Evidence) -> BTreeMap<(String, String), Vec<u64>> {
    let mut out: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
    for i in 0..ev.ledger.size() {
        if let EntryBody::Captured(c) = ev.ledger.read_entry(i).unwrap().body {
            out.entry((c.group_id.clone(), c.message_id.clone()))
                .or_default()
                .push(i);
        }
    }
    out
}

#[derive(Default)]
struct FieldScore {
    truth: usize,
    extracted: usize,
    correct: usize,
}

impl FieldScore {
    fn add(&mut self, truth: Vec<String>, extracted: Vec<String>) {
        self.truth += truth.len();
        self.extracted += extracted.len();
        let mut pool = truth;
        for e in extracted {
            if let Some(pos) = pool.iter().position(|t| *t == e) {
                pool.swap_remove(pos);
                self.correct += 1;
            }
        }
    }
    fn precision(&self) -> f64 {
        self.correct as f64 / self.extracted.max(1) as f64
    }
    fn recall(&self) -> f64 {
        self.correct as f64 / self.truth.max(1) as f64
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_captures_every_message_with_media_and_extracts_what_was_posted() {
    let sim_port = free_port();
    let s = common::Scratch::new("");
    let scenario = write_scenario(s.dir.path(), 30, 25.0);
    let s = common::Scratch::new(&serve_config(s.dir.path(), sim_port, &scenario, true));
    std::fs::copy(&scenario, s.dir.path().join("scenario.toml")).unwrap();
    let config = s.config();
    let ev = Arc::new(Evidence::open(&config, &|_, _| {}).unwrap());
    let running = leakwatch::service::start(ev.clone(), &config)
        .await
        .unwrap();
    let sim = running.simulator.as_ref().unwrap();

    // Wait until both groups have posted everything and all of it is captured.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let truth = loop {
        let truth = sim.truth();
        let caps = captures(&ev);
        let all_posted = truth.len() == 60;
        let all_captured = truth
            .iter()
            .all(|m| caps.contains_key(&(m.group.to_string(), m.message_id.clone())));
        if all_posted && all_captured {
            break truth;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out: {} posted, {} captured",
            truth.len(),
            caps.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    // Let extraction entries of the last captures land.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Each message exactly once; both groups joined (one by invitation).
    let caps = captures(&ev);
    assert_eq!(caps.len(), 60);
    assert!(
        caps.values().all(|v| v.len() == 1),
        "a message was captured twice"
    );
    for case in ev.state.cases().unwrap() {
        assert_eq!(case.join_status.as_deref(), Some("joined"), "{case:?}");
        assert!(
            case.group_name.is_some(),
            "group snapshot recorded: {case:?}"
        );
    }

    // Media: every image and file preserved as a blob that reads back.
    let mut media_blobs = 0;
    let mut extractions: BTreeMap<u64, Vec<EntryBody>> = BTreeMap::new();
    for i in 0..ev.ledger.size() {
        match ev.ledger.read_entry(i).unwrap().body {
            EntryBody::Captured(c) => {
                assert!(ev.blobs.get(&c.raw.sha256).is_ok());
                for m in &c.media {
                    assert_eq!(ev.blobs.get(&m.sha256).unwrap().len() as u64, m.size);
                    media_blobs += 1;
                }
            }
            b @ EntryBody::Extracted { .. } => {
                let EntryBody::Extracted { capture, .. } = &b else {
                    unreachable!()
                };
                extractions.entry(*capture).or_default().push(b.clone());
            }
            EntryBody::MediaRefused { reason, .. } => panic!("media refused: {reason}"),
            _ => {}
        }
    }
    let posted_media = truth
        .iter()
        .filter(|m| matches!(m.kind, Some(PostKind::File | PostKind::Image)))
        .count();
    assert_eq!(media_blobs, posted_media, "every image and file stored");

    // Offers: every offer message yields an offer with a price and a platform; chatter none.
    let mut rows_score: BTreeMap<&str, FieldScore> = BTreeMap::new();
    for m in &truth {
        let index = caps[&(m.group.to_string(), m.message_id.clone())][0];
        let found = extractions.get(&index).cloned().unwrap_or_default();
        let offers: Vec<serde_json::Value> = found
            .iter()
            .filter_map(|e| match e {
                EntryBody::Extracted { offer: Some(o), .. } => Some(o.clone()),
                _ => None,
            })
            .collect();
        match m.kind {
            Some(PostKind::Offer) => {
                assert_eq!(
                    offers.len(),
                    1,
                    "offer message {} not recognised",
                    m.message_id
                );
                let o = &offers[0];
                assert!(
                    o["price_per_record_fen"]
                        .as_u64()
                        .is_some_and(|p| [8, 10, 15].contains(&p)),
                    "{o}"
                );
                assert!(!o["platforms"].as_array().unwrap().is_empty(), "{o}");
            }
            Some(PostKind::Chatter) => {
                assert!(offers.is_empty(), "chatter taken for an offer: {offers:?}")
            }
            _ => {}
        }
        // Sample rows, field by field, against what was really posted.
        let mut extracted_rows: Vec<leakwatch::extract::SampleRow> = Vec::new();
        for e in &found {
            if let EntryBody::Extracted {
                rows_blob: Some(b), ..
            } = e
            {
                let bytes = ev.blobs.get(&b.sha256).unwrap();
                extracted_rows.extend(
                    serde_json::from_slice::<Vec<leakwatch::extract::SampleRow>>(&bytes).unwrap(),
                );
            }
        }
        let t = &m.rows;
        let pick = |f: &dyn Fn(&leakwatch::extract::SampleRow) -> Option<String>| -> Vec<String> {
            extracted_rows.iter().filter_map(f).collect()
        };
        rows_score.entry("name").or_default().add(
            t.iter().map(|r| r.name.clone()).collect(),
            pick(&|r| r.name.clone()),
        );
        rows_score.entry("phone").or_default().add(
            t.iter().filter_map(|r| r.phone.clone()).collect(),
            pick(&|r| r.phone.clone()),
        );
        rows_score.entry("masked phone").or_default().add(
            t.iter().filter_map(|r| r.masked_phone.clone()).collect(),
            pick(&|r| r.masked_phone.clone()),
        );
        rows_score.entry("address").or_default().add(
            t.iter().map(|r| r.address.clone()).collect(),
            pick(&|r| r.address.clone()),
        );
    }
    for (field, score) in &rows_score {
        eprintln!(
            "extraction {field:>12}: precision {:.3} recall {:.3} ({} of {} true values, {} extracted)",
            score.precision(),
            score.recall(),
            score.correct,
            score.truth,
            score.extracted
        );
        assert!(score.truth > 0, "{field}: the scenario posted none");
        assert!(
            score.precision() >= 0.95 && score.recall() >= 0.95,
            "{field}: below 0.95"
        );
    }

    // Every sample was checked against the platform's records (the simulator's orders, imported
    // as the demo does) and every row of it is a real order: findings with verified counts.
    let findings = ev.state.findings().unwrap();
    assert!(!findings.is_empty(), "no findings");
    assert!(
        findings.iter().any(|f| f
            .offer
            .as_ref()
            .is_some_and(|o| o["price_per_record_fen"].is_u64())),
        "findings carry the group's offer"
    );
    for i in 0..ev.ledger.size() {
        if let EntryBody::Matched {
            rows_checked,
            rows_matched,
            distinct_customers,
            ..
        } = ev.ledger.read_entry(i).unwrap().body
        {
            assert_eq!(
                rows_matched, rows_checked,
                "a real sample row was not verified"
            );
            assert!(distinct_customers >= 1 && distinct_customers <= rows_matched);
        }
    }

    // The ledger verifies, and checkpoints were signed on schedule.
    drop(running);
    let blobs = &ev.blobs;
    let report = leakwatch::ledger::verify::verify(&ev.ledger, blobs, &|_, _| {}).unwrap();
    assert!(report.checkpoints >= 1);
}

/// Run the real binary; returns the child.
fn spawn(s: &common::Scratch, args: &[&str]) -> std::process::Child {
    s.cmd(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn leakwatch")
}

async fn wait_http(url: &str) {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    for _ in 0..200 {
        if client.get(url).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} never came up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_capture_loses_nothing_and_backfills_the_gap() {
    let sim_port = free_port();
    let s0 = common::Scratch::new("");
    let scenario = write_scenario(s0.dir.path(), 1, 1.0);
    let s = common::Scratch::new(&serve_config(s0.dir.path(), sim_port, &scenario, false));
    // The marketplace runs as its own process and outlives the kills.
    let mut sim = spawn(
        &s,
        &[
            "simulate",
            "--listen",
            &format!("127.0.0.1:{sim_port}"),
            "--token",
            "t",
            "--scenario",
            scenario.to_str().unwrap(),
            "--no-autopost",
        ],
    );
    wait_http(&format!(
        "http://127.0.0.1:{sim_port}/_sim/stats?access_token=t"
    ))
    .await;
    // Group B: the bot is already a member.
    s.ok(&["submit", "qq:800000002", "--note", "kill test"]);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let burst = format!(
        "http://127.0.0.1:{sim_port}/_sim/burst/800000002?count=600&per_s=150&access_token=t"
    );
    let mut serve = spawn(&s, &["serve"]);
    assert!(
        http.post(&burst)
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    // While serve holds the ledger, `submit` hands the link to its API.
    wait_http(&format!("http://{}/healthz", s.config().api.listen)).await;
    let out = tokio::task::block_in_place(|| {
        for _ in 0..100 {
            let out = s.run(&[
                "submit",
                "https://qm.qq.com/cgi-bin/qm/qr?k=x&group_code=800000001",
            ]);
            if out.status.success() {
                return String::from_utf8_lossy(&out.stdout).into_owned();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("submit never reached the running server");
    });
    assert!(out.contains("opened for qq:800000001"), "{out}");
    let err = tokio::task::block_in_place(|| s.fails(&["submit", "not a link"]));
    assert!(err.contains("not a QQ group number"), "{err}");
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(700 + round * 300)).await;
        serve.kill().unwrap(); // SIGKILL
        let _ = serve.wait();
        tokio::time::sleep(Duration::from_millis(200)).await;
        serve = spawn(&s, &["serve"]);
    }
    // Wait until all 600 are posted and captured.
    let posted_by = std::time::Instant::now() + Duration::from_secs(60);
    let posted: Vec<String> = loop {
        let v: serde_json::Value = http
            .get(format!(
                "http://127.0.0.1:{sim_port}/_sim/messages/800000002?access_token=t"
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let ids: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["message_id"].as_str().unwrap().to_string())
            .collect();
        if ids.len() >= 600 {
            break ids;
        }
        assert!(
            std::time::Instant::now() < posted_by,
            "the simulator posted only {} of 600 messages in 60 s",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let captured: Vec<String> = loop {
        let dump = s.ok(&["ledger", "dump", "--json"]);
        let ids: Vec<String> = dump
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["kind"] == "captured")
            .map(|v| v["fields"]["message_id"].as_str().unwrap().to_string())
            .collect();
        if ids.len() >= 600 || std::time::Instant::now() > deadline {
            break ids;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    serve.kill().unwrap();
    let _ = serve.wait();
    sim.kill().unwrap();
    let _ = sim.wait();
    let unique: BTreeSet<&String> = captured.iter().collect();
    assert_eq!(unique.len(), captured.len(), "a message was captured twice");
    let posted: BTreeSet<&String> = posted.iter().collect();
    let missing: Vec<_> = posted.difference(&unique).collect();
    assert!(
        missing.is_empty(),
        "{} posted messages never captured, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    assert!(s.ok(&["ledger", "verify"]).starts_with("ok:"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_messages_are_captured_or_refused_with_a_reason_never_a_crash() {
    let sim_port = free_port();
    let s0 = common::Scratch::new("");
    let scenario = write_scenario(s0.dir.path(), 0, 1.0).to_path_buf();
    let text = std::fs::read_to_string(&scenario)
        .unwrap()
        .replace("messages = 0", "messages = 1")
        .replace("rate_per_s = 1", "rate_per_s = 0.001");
    std::fs::write(&scenario, text).unwrap();
    let s = common::Scratch::new(&serve_config(s0.dir.path(), sim_port, &scenario, true));
    let config = s.config();
    let ev = Arc::new(Evidence::open(&config, &|_, _| {}).unwrap());
    let running = leakwatch::service::start(ev.clone(), &config)
        .await
        .unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let post = |body: serde_json::Value| {
        let http = http.clone();
        async move {
            let r = http
                .post(format!(
                    "http://127.0.0.1:{sim_port}/_sim/post/800000002?access_token=t"
                ))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            r.json::<serde_json::Value>().await.unwrap()["message_id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    // Wait for the join to settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let huge = post(json!({"text": "外卖数据 0.1元/条 ".repeat(420_000)})).await; // ~10 MB
    let nested = post(json!({"text": "[CQ:".repeat(100_000) + &"]".repeat(100_000)})).await;
    let traversal = post(json!({"file_name": "../../etc/passwd", "file_base64": "cm9vdDp4OjA6MDo6L3Jvb3Q6L2Jpbi9iYXNoCg=="})).await;
    let bomb = post(json!({"file_name": "样本.xlsx", "file_base64": zip_bomb_base64()})).await;
    let bad_utf8 = post(json!({"file_name": "样本.txt", "file_base64": "/+7/AQLA4Ki4"})).await;
    let ids = [huge, nested, traversal, bomb, bad_utf8];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let caps = captures(&ev);
        if ids
            .iter()
            .all(|id| caps.contains_key(&("800000002".to_string(), id.clone())))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "hostile messages not all captured"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Every hostile file is either extracted or carries a note saying why not.
    let mut notes = Vec::new();
    for i in 0..ev.ledger.size() {
        if let EntryBody::Extracted { notes: n, .. } = ev.ledger.read_entry(i).unwrap().body {
            notes.extend(n);
        }
    }
    assert!(
        notes
            .iter()
            .any(|n| n.contains("xlsx") || n.contains("zip")),
        "zip bomb refused with a note: {notes:?}"
    );
    // Nothing was written outside the data root, and no path came from a message.
    let mut found = Vec::new();
    let mut stack = vec![s.dir.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            if p.file_name().is_some_and(|n| n == "passwd") {
                found.push(p);
            }
        }
    }
    assert!(
        found.is_empty(),
        "a path from a message reached the disk: {found:?}"
    );
    drop(running);
    let report = leakwatch::ledger::verify::verify(&ev.ledger, &ev.blobs, &|_, _| {}).unwrap();
    assert!(report.entries > 5);
}

/// An .xlsx that is a zip bomb: one entry of 200 MB of zeros.
fn zip_bomb_base64() -> String {
    use base64::Engine;
    use std::io::Write;
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        z.start_file("xl/worksheets/sheet1.xml", opts).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..200 {
            z.write_all(&zeros).unwrap();
        }
        z.finish().unwrap();
    }
    base64::engine::general_purpose::STANDARD.encode(buf.into_inner())
}
