//! The measurements behind `leakwatch bench`. Benchmarks, not tests: they report figures and
//! assert nothing about speed, so a busy machine can never make them fail.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{Config, EMBEDDED_DEFAULT};
use crate::ledger::entry::{EntryBody, LedgerEntry};
use crate::ledger::{AppendPolicy, Ledger, LedgerError, merkle};

#[derive(Debug, Clone)]
pub struct IngestFigures {
    pub threads: usize,
    pub entry_bytes: usize,
    pub group_commit: Rate,
    pub fsync_each: Rate,
    /// Leaf hashing of entry-sized inputs, MB/s.
    pub hash_entry_mb_s: f64,
    /// SHA-256 over 1 MiB buffers, MB/s (compare with `openssl speed sha256`).
    pub hash_bulk_mb_s: f64,
}

#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub entries: u64,
    pub elapsed: Duration,
}

impl Rate {
    pub fn per_second(&self) -> f64 {
        self.entries as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn bench_config(dir: &Path) -> Result<Config, LedgerError> {
    let mut config = Config::parse(EMBEDDED_DEFAULT, "<embedded default config>")
        .map_err(|e| LedgerError::AppendFailed(e.to_string()))?;
    config.data_root = dir.to_path_buf();
    Ok(config)
}

fn synthetic(seq: u64, payload: &str) -> LedgerEntry {
    LedgerEntry::new(
        "bench",
        EntryBody::Synthetic {
            seq,
            payload: payload.to_string(),
            blob: None,
        },
    )
}

/// Append `entries` entries from `threads` threads into a fresh ledger under `dir`, with the
/// given policy; returns the rate of durable appends.
fn append_rate(
    dir: &Path,
    policy: AppendPolicy,
    entries: u64,
    threads: usize,
    payload: &str,
) -> Result<Rate, LedgerError> {
    let ledger = Arc::new(Ledger::open(&bench_config(dir)?, policy)?);
    let per_thread = entries / threads as u64;
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let ledger = ledger.clone();
            let payload = payload.to_string();
            std::thread::spawn(move || -> Result<(), LedgerError> {
                for i in 0..per_thread {
                    ledger.append(&synthetic(t as u64 * per_thread + i, &payload))?;
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join()
            .map_err(|_| LedgerError::AppendFailed("bench thread panicked".into()))??;
    }
    Ok(Rate {
        entries: per_thread * threads as u64,
        elapsed: start.elapsed(),
    })
}

fn hash_rate(chunk: usize, total: usize) -> f64 {
    let buf = vec![0x5au8; chunk];
    let rounds = (total / chunk).max(1);
    let start = Instant::now();
    let mut acc = 0u8;
    for _ in 0..rounds {
        acc ^= merkle::leaf_hash(&buf)[0];
    }
    std::hint::black_box(acc);
    (rounds * chunk) as f64 / start.elapsed().as_secs_f64().max(1e-9) / 1e6
}

/// Durable appends per second with group commit versus one fsync per append, and entry hashing
/// throughput. Uses (and removes) fresh ledgers under `dir`.
pub fn ingest(dir: &Path, entries: u64, threads: usize) -> Result<IngestFigures, LedgerError> {
    let payload = "美团外卖数据 0.1元/条 日更3000+ ".repeat(8);
    let io = |source| LedgerError::Io {
        path: dir.display().to_string(),
        source,
    };
    let run = |name: &str, policy: AppendPolicy, n: u64| -> Result<Rate, LedgerError> {
        let sub = dir.join(name);
        let _ = std::fs::remove_dir_all(&sub);
        let rate = append_rate(&sub, policy, n, threads, &payload);
        let _ = std::fs::remove_dir_all(&sub);
        rate
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let group_commit = run("group-commit", AppendPolicy::default(), entries)?;
    let fsync_each = run(
        "fsync-each",
        AppendPolicy {
            group_commit: false,
            max_batch: 1,
        },
        // one fsync per entry is slow: a tenth of the entries gives a stable rate sooner
        (entries / 10).max(threads as u64),
    )?;
    let entry_bytes = synthetic(0, &payload).to_bytes().len();
    Ok(IngestFigures {
        threads,
        entry_bytes,
        group_commit,
        fsync_each,
        hash_entry_mb_s: hash_rate(entry_bytes, 256 << 20),
        hash_bulk_mb_s: hash_rate(1 << 20, 512 << 20),
    })
}

/// OneBot event parsing: events per second for segment arrays and for CQ-code strings.
#[derive(Debug, Clone)]
pub struct ParseFigures {
    pub events: u64,
    pub array_per_s: f64,
    pub cq_string_per_s: f64,
}

pub fn parse_events(events: u64) -> ParseFigures {
    use crate::adapters::onebot::event::{Parsed, parse_frame};
    let text = "美团外卖数据 0.1元/条 日更3000+ 当天 深圳本地单 微信:wm_data_888";
    let array = serde_json::json!({
        "post_type": "message", "message_type": "group", "group_id": 800000001, "message_id": 12345,
        "message_seq": 77, "user_id": 2100000001, "time": 1_764_000_000,
        "sender": {"user_id": 2100000001, "nickname": "数据老王", "card": "出外卖单"},
        "message": [{"type": "text", "data": {"text": text}}, {"type": "image", "data": {"file": "a.png", "url": "http://example.invalid/a.png"}}],
    })
    .to_string()
    .into_bytes();
    let mut cq = serde_json::from_slice::<serde_json::Value>(&array).unwrap_or_default();
    cq["message"] = serde_json::json!(format!(
        "{text}[CQ:image,file=a.png,url=http://example.invalid/a.png]"
    ));
    let cq = cq.to_string().into_bytes();
    let rate = |frame: &[u8]| {
        let start = Instant::now();
        let mut ok = 0u64;
        for _ in 0..events {
            if matches!(parse_frame(frame), Parsed::GroupMessage(_)) {
                ok += 1;
            }
        }
        std::hint::black_box(ok);
        events as f64 / start.elapsed().as_secs_f64().max(1e-9)
    };
    ParseFigures {
        events,
        array_per_s: rate(&array),
        cq_string_per_s: rate(&cq),
    }
}

/// Extraction throughput: sample rows per second from text and from an xlsx file.
#[derive(Debug, Clone)]
pub struct ExtractFigures {
    pub text_rows_per_s: f64,
    pub xlsx_rows_per_s: f64,
    pub rows: usize,
}

pub fn extraction(rows: usize) -> ExtractFigures {
    let scenario = match crate::simulator::scenario::Scenario::load(None) {
        Ok(s) => s,
        Err(_) => {
            return ExtractFigures {
                text_rows_per_s: 0.0,
                xlsx_rows_per_s: 0.0,
                rows: 0,
            };
        }
    };
    let generator = crate::simulator::scenario::Generator::new(&scenario);
    let orders: Vec<_> = generator.orders.iter().cycle().take(rows).collect();
    let text: String = orders
        .iter()
        .map(|o| {
            format!(
                "{} {} {} {}\n",
                o.customer_name,
                o.customer_phone,
                o.address,
                &o.created_at[5..16]
            )
        })
        .collect();
    let start = Instant::now();
    let found = crate::extract::extract_text(&text).rows.len();
    let text_rate = found as f64 / start.elapsed().as_secs_f64().max(1e-9);
    let mut csv = String::from("姓名,电话,地址,下单时间\n");
    for o in &orders {
        csv.push_str(&format!(
            "{},{},{},{}\n",
            o.customer_name,
            o.customer_phone,
            o.address,
            &o.created_at[..16]
        ));
    }
    let xlsx = crate::simulator::scenario::xlsx_from_csv(&csv);
    let start = Instant::now();
    let found_x = crate::extract::extract_file("bench.xlsx", &xlsx).rows.len();
    let xlsx_rate = found_x as f64 / start.elapsed().as_secs_f64().max(1e-9);
    ExtractFigures {
        text_rows_per_s: text_rate,
        xlsx_rows_per_s: xlsx_rate,
        rows: found.min(found_x),
    }
}

/// End to end: simulator → OneBot adapter (forward WebSocket, loopback) → capture → durable
/// ledger entry, under a burst.
#[derive(Debug, Clone)]
pub struct CaptureFigures {
    pub messages: usize,
    pub per_s: f64,
    pub p50: Duration,
    pub p99: Duration,
}

pub async fn capture(dir: &Path, messages: u64) -> Result<CaptureFigures, String> {
    use crate::adapters::onebot::OneBotAdapter;
    use crate::adapters::{ChatAdapter, SubmittedGroups};
    use crate::simulator::{SimOptions, Simulator};
    let _ = std::fs::remove_dir_all(dir);
    let mut config = bench_config(dir).map_err(|e| e.to_string())?;
    let scenario_text = crate::simulator::scenario::DEFAULT_SCENARIO
        .replace("auto_invite = true", "auto_invite = false");
    let scenario = crate::simulator::scenario::Scenario::parse(&scenario_text, "bench")
        .map_err(|e| e.to_string())?;
    let sim = Simulator::start(
        "127.0.0.1:0",
        scenario,
        SimOptions {
            token: Some("bench".into()),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    let ob_text = format!(
        "[[adapters.onebot]]\nname = \"bench\"\nmode = \"forward-ws\"\nurl = \"ws://{}/\"\naccess_token = \"bench\"\n",
        sim.addr
    );
    config.adapters = Config::parse(&ob_text, "bench")
        .map_err(|e| e.to_string())?
        .adapters;
    let ev =
        Arc::new(crate::evidence::Evidence::open(&config, &|_, _| {}).map_err(|e| e.to_string())?);
    let sub =
        tokio::task::block_in_place(|| crate::intake::submit(&ev, "qq:800000002", None, "bench"))
            .map_err(|e| e.to_string())?;
    let submitted = Arc::new(SubmittedGroups::default());
    let adapter = OneBotAdapter::start(config.adapters.onebot[0].clone(), submitted)
        .await
        .map_err(|e| e.to_string())?;
    let adapter: Arc<dyn ChatAdapter> = Arc::new(adapter);
    let svc =
        crate::capture::CaptureService::new(ev.clone(), vec![adapter], Default::default(), None);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    svc.set_observer(tx);
    let _tasks = svc.start().map_err(|e| e.to_string())?;
    if let Ok(Some(case)) = ev.state.case(&sub.case) {
        svc.watch(case);
    }
    // Let the join settle, then burst.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    client
        .post(format!(
            "http://{}/_sim/burst/800000002?count={messages}&per_s=5000&access_token=bench",
            sim.addr
        ))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let mut done = std::collections::HashMap::new();
    while (done.len() as u64) < messages {
        match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
            Ok(Some((_, id, at))) => {
                done.insert(id, at);
            }
            _ => break,
        }
    }
    let elapsed = start.elapsed();
    let mut latencies: Vec<Duration> = sim
        .truth()
        .into_iter()
        .filter_map(|m| {
            done.get(&m.message_id)
                .map(|at| at.saturating_duration_since(m.posted))
        })
        .collect();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or_default()
    };
    let figures = CaptureFigures {
        messages: done.len(),
        per_s: done.len() as f64 / elapsed.as_secs_f64().max(1e-9),
        p50: pct(0.50),
        p99: pct(0.99),
    };
    drop(svc);
    let _ = std::fs::remove_dir_all(dir);
    Ok(figures)
}

/// Matching at scale: import rate and index size for generated records, and the time to check
/// a sample once the index is open.
#[derive(Debug, Clone)]
pub struct MatchFigures {
    pub records: u64,
    pub import: Duration,
    pub index_bytes: u64,
    pub sample_rows: usize,
    /// Opening the index (mapping and populating its files).
    pub open: Duration,
    /// The first check after opening.
    pub check: Duration,
    /// Further checks of the same sample: fastest, median, slowest.
    pub repeat: [Duration; 3],
    pub rows_matched: u64,
    pub peak_rss_bytes: Option<u64>,
}

/// Peak resident memory of this process (Linux `VmHWM`).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Checks of the same sample after the first one, for the steady-state figure.
const REPEAT_CHECKS: usize = 9;

pub fn matching(dir: &Path, records: u64, sample_rows: usize) -> Result<MatchFigures, String> {
    use crate::matching::generator::{self, Plant};
    use crate::matching::{BlindKey, LocalIndex, Matcher};
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let csv = dir.join("records.csv");
    let truth = generator::write_records_csv(&csv, records, 42, Plant::Partner)
        .map_err(|e| e.to_string())?;
    let key = BlindKey::generate();
    let index_dir = dir.join("index");
    let start = Instant::now();
    let report =
        LocalIndex::import(&index_dir, &key, &csv, &|_, _| {}).map_err(|e| e.to_string())?;
    let import = start.elapsed();
    let _ = std::fs::remove_file(&csv);
    // A partner leak: its pool of leaked orders is large enough for a full-size sample (a
    // rider's is not at 10 M records), so every row asked for is checked.
    let (rows, _) = generator::sample(&truth, sample_rows, 43);
    if rows.len() < sample_rows {
        return Err(format!(
            "the generated leak has only {} rows for a sample of {sample_rows}; generate more records",
            rows.len()
        ));
    }
    let start = Instant::now();
    let index = LocalIndex::open(&index_dir, &key).map_err(|e| e.to_string())?;
    let open = start.elapsed();
    let matcher = Matcher::new(&index, &key);
    let start = Instant::now();
    let result = matcher
        .check(&rows, truth.year)
        .map_err(|e| e.to_string())?;
    let check = start.elapsed();
    let mut again = Vec::new();
    for _ in 0..REPEAT_CHECKS {
        let start = Instant::now();
        let r = matcher
            .check(&rows, truth.year)
            .map_err(|e| e.to_string())?;
        again.push(start.elapsed());
        if r != result {
            return Err("a repeated check gave another report".into());
        }
    }
    again.sort();
    let repeat = [
        again.first().copied().unwrap_or_default(),
        again.get(again.len() / 2).copied().unwrap_or_default(),
        again.last().copied().unwrap_or_default(),
    ];
    let figures = MatchFigures {
        records: report.imported,
        import,
        index_bytes: index.size_bytes(),
        sample_rows: rows.len(),
        open,
        check,
        repeat,
        rows_matched: result.rows_matched,
        peak_rss_bytes: peak_rss(),
    };
    drop(index);
    let _ = std::fs::remove_dir_all(dir);
    Ok(figures)
}

/// API load: `wrk` on loopback against the case list and the review queue.
#[derive(Debug, Clone)]
pub struct ApiLoadFigures {
    pub seconds: u64,
    pub connections: u32,
    pub requests: u64,
    pub requests_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Non-2xx/3xx answers plus socket errors (connect, read, write, timeout).
    pub errors: u64,
    /// Resident memory of this process (the server) after warm-up and at the end, bytes.
    pub rss_after_warmup: u64,
    pub rss_end: u64,
}

fn current_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?.to_string();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// wrk's latency figures ("1.23ms", "850.00us", "1.02s") in milliseconds.
fn wrk_ms(s: &str) -> Option<f64> {
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| s.split_at(i))?;
    let v: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => v / 1000.0,
        "ms" => v,
        "s" => v * 1000.0,
        "m" => v * 60_000.0,
        _ => return None,
    })
}

/// Parse wrk's `--latency` report.
pub fn parse_wrk(out: &str) -> Result<(u64, f64, f64, f64, u64), String> {
    let mut requests = None;
    let mut rps = None;
    let (mut p50, mut p99) = (None, None);
    let mut errors = 0u64;
    for line in out.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", v] => p50 = wrk_ms(v),
            ["99%", v] => p99 = wrk_ms(v),
            ["Requests/sec:", v] => rps = v.parse().ok(),
            ["Non-2xx", "or", "3xx", "responses:", n] => errors += n.parse::<u64>().unwrap_or(0),
            [n, "requests", "in", ..] => requests = n.parse().ok(),
            ["Socket", "errors:", rest @ ..] => {
                errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>()
            }
            _ => {}
        }
    }
    match (requests, rps, p50, p99) {
        (Some(n), Some(r), Some(a), Some(b)) => Ok((n, r, a, b, errors)),
        _ => Err(format!("unexpected wrk output:\n{out}")),
    }
}

pub async fn api_load(
    dir: &Path,
    seconds: u64,
    connections: u32,
) -> Result<ApiLoadFigures, String> {
    let _ = std::fs::remove_dir_all(dir);
    let mut config = bench_config(dir).map_err(|e| e.to_string())?;
    config.simulator.enabled = false;
    config.matching.auto = false;
    config.api.listen = "127.0.0.1:0".into();
    config.filing.routes.clear();
    let ev =
        Arc::new(crate::evidence::Evidence::open(&config, &|_, _| {}).map_err(|e| e.to_string())?);
    // A realistic page: 60 cases, each with a finding waiting for review.
    let ev2 = ev.clone();
    tokio::task::spawn_blocking(move || -> Result<(), String> {
        for i in 0..60 {
            crate::review::fixture::seed_finding(&ev2, &format!("9{i:05}"), 10 + i)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })
    .await
    .map_err(|e| e.to_string())??;
    let token = crate::api::tokens::TokenStore::new(&config.keys_dir())
        .create(crate::api::tokens::Role::Admin, "bench")
        .map_err(|e| e.to_string())?
        .0;
    let running = crate::service::start(ev.clone(), &config)
        .await
        .map_err(|e| e.to_string())?;
    let script = dir.join("load.lua");
    std::fs::write(
        &script,
        format!(
            "local paths = {{\"/api/v1/cases\", \"/api/v1/review/queue\"}}\nlocal i = 0\nrequest = function()\n  i = i + 1\n  return wrk.format(\"GET\", paths[(i % 2) + 1], {{[\"Authorization\"] = \"Bearer {token}\"}})\nend\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    let url = format!("http://{}", running.api_addr);
    // Warm-up, then the measured run.
    let run = |secs: u64| {
        tokio::process::Command::new("wrk")
            .args([
                "-t2",
                &format!("-c{connections}"),
                &format!("-d{secs}s"),
                "--latency",
                "-s",
            ])
            .arg(&script)
            .arg(&url)
            .output()
    };
    run(1)
        .await
        .map_err(|e| format!("wrk: {e} (install the wrk package)"))?;
    let rss_after_warmup = current_rss();
    let out = run(seconds).await.map_err(|e| format!("wrk: {e}"))?;
    let rss_end = current_rss();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (requests, requests_per_s, p50_ms, p99_ms, errors) = parse_wrk(&text)?;
    drop(running);
    drop(ev);
    let _ = std::fs::remove_dir_all(dir);
    Ok(ApiLoadFigures {
        seconds,
        connections,
        requests,
        requests_per_s,
        p50_ms,
        p99_ms,
        errors,
        rss_after_warmup,
        rss_end,
    })
}

/// `bench verify`: bundle verification throughput against `openssl dgst -sha256` over the
/// same files, unpacked, in the same run.
#[derive(Debug, Clone)]
pub struct VerifyFigures {
    /// Uncompressed bytes in the bundle (what both sides hash).
    pub bytes: u64,
    pub files: usize,
    pub blobs: usize,
    pub entries: u64,
    /// Hashing threads `bundle verify` used by default.
    pub threads: usize,
    /// Best of two warm runs each.
    pub ours: Duration,
    pub ours_one_thread: Duration,
    /// `None` when openssl is not installed.
    pub openssl: Option<Duration>,
}

/// Fills `buf` with xorshift noise (incompressible, fast, no RNG crate in the hot loop).
fn fill_noise(buf: &mut [u8], seed: &mut u64) {
    for chunk in buf.chunks_mut(8) {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let bytes = seed.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

/// Builds a case whose blobs add up to `size_mb` MB in a fresh data root under `dir`, exports
/// it, unpacks it, then times `bundle verify` (default threads and one thread) and
/// `openssl dgst -sha256` on the unpacked files, warm, best of two each. Removes `dir`.
pub fn verify(
    dir: &Path,
    size_mb: u64,
    progress: &dyn Fn(u64, u64),
) -> Result<VerifyFigures, String> {
    use crate::bundle::{ExportOptions, Limits, VerifyOptions};
    use crate::ledger::entry::{BlobRef, CaptureRecord};

    let work = dir.join("verify-bench");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let result = (|| -> Result<VerifyFigures, String> {
        let total = size_mb.saturating_mul(1_000_000);
        let chunk = (total / 32).clamp(64 << 10, 32 << 20);
        let mut config = bench_config(&work.join("evidence")).map_err(|e| e.to_string())?;
        config.blobs.max_bytes = config.blobs.max_bytes.max(chunk + 1);
        let ev = crate::evidence::Evidence::open(&config, &|_, _| {}).map_err(|e| e.to_string())?;
        let case = "BENCH-1";
        let record = |body: EntryBody| {
            ev.record(&LedgerEntry::new("bench", body))
                .map_err(|e| e.to_string())
        };
        record(EntryBody::CaseOpened {
            case: case.into(),
            platform: "qq".into(),
            group_id: "800000001".into(),
            link: "qq:800000001".into(),
            note: Some("bench verify".into()),
        })?;
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut buf = vec![0u8; chunk as usize];
        let mut made = 0u64;
        let mut n = 0u64;
        while made < total {
            let len = chunk.min(total - made) as usize;
            fill_noise(&mut buf[..len], &mut seed);
            let put = |bytes: &[u8], media: &str| -> Result<BlobRef, String> {
                Ok(BlobRef {
                    sha256: ev.blobs.put(bytes).map_err(|e| e.to_string())?,
                    size: bytes.len() as u64,
                    media_type: media.into(),
                    pii: false,
                })
            };
            let file = put(&buf[..len], "application/octet-stream")?;
            let raw_json =
                format!("{{\"message_id\":{n},\"message\":\"[CQ:file,file=data-{n}.bin]\"}}");
            let raw = put(raw_json.as_bytes(), "application/json")?;
            record(EntryBody::Captured(Box::new(CaptureRecord {
                case: case.into(),
                platform: "qq".into(),
                group_id: "800000001".into(),
                group_name: Some("bench".into()),
                message_id: n.to_string(),
                message_seq: Some(n as i64),
                sender_id: Some("2100000001".into()),
                sender_nickname: None,
                sender_card: None,
                posted_at: None,
                captured_at: crate::ledger::entry::timestamp(chrono::Utc::now()),
                adapter: "bench".into(),
                leakwatch_version: crate::VERSION.into(),
                account: "10001".into(),
                raw,
                media: vec![file],
            })))?;
            made += len as u64;
            n += 1;
            progress(made, total.saturating_mul(2));
        }
        let zip = work.join("bench.zip");
        let opts = ExportOptions {
            actor: "bench".into(),
            purpose: Some("bench verify".into()),
            include_pii: true,
        };
        let exported = crate::bundle::export(&ev, case, &zip, &opts, &|done, all| {
            progress(total + done * total / all.max(1), total.saturating_mul(2))
        })
        .map_err(|e| e.to_string())?;
        drop(ev);
        // The data root is no longer needed: free its space before unpacking.
        let _ = std::fs::remove_dir_all(work.join("evidence"));
        let unpacked = work.join("unpacked");
        crate::bundle::extract_to(&zip, &unpacked, Limits::default()).map_err(|e| e.to_string())?;
        let mut files: Vec<String> = Vec::new();
        let mut stack = vec![unpacked.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).map_err(|e| e.to_string())?.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if let Ok(rel) = p.strip_prefix(&unpacked) {
                    files.push(rel.display().to_string());
                }
            }
        }
        files.sort();
        let bytes: u64 = files
            .iter()
            .filter_map(|f| std::fs::metadata(unpacked.join(f)).ok())
            .map(|m| m.len())
            .sum();

        let ours = |threads: usize| -> Result<Duration, String> {
            let start = Instant::now();
            let report = crate::bundle::verify_bundle(
                &zip,
                &VerifyOptions {
                    threads,
                    ..VerifyOptions::default()
                },
            )
            .map_err(|e| e.to_string())?;
            let took = start.elapsed();
            if !report.ok {
                return Err(format!(
                    "the generated bundle does not verify: {}",
                    report
                        .problems
                        .first()
                        .map(|p| p.to_string())
                        .unwrap_or_default()
                ));
            }
            Ok(took)
        };
        let openssl = || -> Option<Duration> {
            let start = Instant::now();
            let out = std::process::Command::new("openssl")
                .args(["dgst", "-sha256", "-r"])
                .args(&files)
                .current_dir(&unpacked)
                .stdout(std::process::Stdio::null())
                .status()
                .ok()?;
            out.success().then(|| start.elapsed())
        };
        let mut best = [Duration::MAX; 3];
        let mut have_openssl = true;
        for _ in 0..2 {
            if let Some(t) = openssl() {
                best[0] = best[0].min(t);
            } else {
                have_openssl = false;
            }
            best[1] = best[1].min(ours(0)?);
            best[2] = best[2].min(ours(1)?);
        }
        Ok(VerifyFigures {
            bytes,
            files: files.len(),
            blobs: exported.blobs,
            entries: exported.entries,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .min(4),
            ours: best[1],
            ours_one_thread: best[2],
            openssl: have_openssl.then_some(best[0]),
        })
    })();
    let _ = std::fs::remove_dir_all(&work);
    let _ = std::fs::remove_dir(dir);
    result
}
