//! Integration tests of the matching module: generated records with a planted leak go through
//! the import, the index, the matcher (locally and over the reference server) and attribution;
//! malformed inputs, wrong keys and interrupted imports are checked; a property test shows
//! normalisation is total; an ignored test measures import and matching at ten million records.
//!
//! Invariants the tests rely on: the generator is deterministic per seed, so every threshold
//! here is checked on the same data each run.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use proptest::prelude::*;

use super::generator::{self, Plant};
use super::index::ImportOptions;
use super::normalise;
use super::*;

fn key() -> BlindKey {
    BlindKey::new(*b"leakwatch matching test key 0001")
}

fn no_progress(_: u64, _: u64) {}

/// A runtime for the reference server.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// order_id → normalised phone, read straight from the records file (the test's oracle).
fn oracle(records: &Path) -> HashMap<String, String> {
    oracle_for(records, None)
}

/// [`oracle`] restricted to some order ids (ten million entries would not fit comfortably).
fn oracle_for(records: &Path, only: Option<&HashSet<&str>>) -> HashMap<String, String> {
    let mut r = csv::Reader::from_path(records).expect("records readable");
    let mut m = HashMap::new();
    for rec in r.records() {
        let rec = rec.expect("record");
        if only.is_some_and(|o| !o.contains(&rec[0])) {
            continue;
        }
        m.insert(
            rec[0].to_string(),
            normalise::normalise_phone(&rec[4]).unwrap_or_default(),
        );
    }
    m
}

struct Quality {
    tp: u64,
    fp: u64,
    fn_: u64,
}

impl Quality {
    fn precision(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fp).max(1) as f64
    }
    fn recall(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fn_).max(1) as f64
    }
}

/// Precision and recall over rows with a full or masked phone. A match is right when the
/// matched order's customer (phone) is the row's customer.
fn quality(
    rows: &[SampleInput],
    gt: &GroundTruth,
    report: &MatchReport,
    oracle: &HashMap<String, String>,
) -> Quality {
    let mut q = Quality {
        tp: 0,
        fp: 0,
        fn_: 0,
    };
    for (i, row) in rows.iter().enumerate() {
        if row.phone.is_none() && row.masked_phone.is_none() {
            continue;
        }
        let res = &report.rows[i];
        match (&res.order_id, &gt.rows[i]) {
            (Some(oid), Some(t)) => {
                if oracle.get(oid) == Some(&t.phone) {
                    q.tp += 1;
                } else {
                    q.fp += 1;
                    q.fn_ += 1;
                    eprintln!("wrong customer: row {i} {row:?} -> {res:?}");
                }
            }
            (Some(_), None) => {
                q.fp += 1;
                eprintln!("decoy matched: row {i} {row:?} -> {res:?}");
            }
            (None, Some(_)) => {
                q.fn_ += 1;
                if q.fn_ <= 20 {
                    eprintln!("missed: row {i} {row:?} -> {res:?}");
                }
            }
            (None, None) => {}
        }
    }
    q
}

fn import_default(dir: &Path, records: &Path) -> ImportReport {
    LocalIndex::import(dir, &key(), records, &no_progress).expect("import")
}

/// Every file under `dir`, concatenated per file.
fn index_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<(PathBuf, Vec<u8>)> = fs::read_dir(dir)
        .expect("dir")
        .map(|e| {
            let p = e.expect("entry").path();
            let b = fs::read(&p).expect("read");
            (p, b)
        })
        .collect();
    out.sort();
    out
}

/// The needles (each at least 4 bytes) that occur in `hay`. One hash lookup per byte of `hay`
/// on the needles' 4-byte prefixes, so hundreds of needles cost one pass.
fn find_any<'a>(hay: &[u8], needles: &'a [String]) -> Vec<&'a str> {
    let mut by_prefix: HashMap<[u8; 4], Vec<&'a str>> = HashMap::new();
    for n in needles {
        let b = n.as_bytes();
        assert!(b.len() >= 4, "needle too short to be meaningful");
        by_prefix
            .entry([b[0], b[1], b[2], b[3]])
            .or_default()
            .push(n);
    }
    // A first filter on the first two bytes keeps the hash lookups rare (debug builds are slow).
    let mut first2 = vec![false; 1 << 16];
    for p in by_prefix.keys() {
        first2[usize::from(p[0]) << 8 | usize::from(p[1])] = true;
    }
    let mut found = Vec::new();
    for i in 0..hay.len().saturating_sub(3) {
        if !first2[usize::from(hay[i]) << 8 | usize::from(hay[i + 1])] {
            continue;
        }
        if let Some(ns) = by_prefix.get(&[hay[i], hay[i + 1], hay[i + 2], hay[i + 3]]) {
            for n in ns {
                if hay[i..].starts_with(n.as_bytes()) {
                    found.push(*n);
                }
            }
        }
    }
    found
}

struct Scenario {
    _tmp: tempfile::TempDir,
    records: PathBuf,
    index_dir: PathBuf,
    truth: Truth,
    rows: Vec<SampleInput>,
    gt: GroundTruth,
}

fn scenario(plant: Plant, n: u64, rows: usize, seed: u64) -> Scenario {
    let tmp = tempfile::tempdir().expect("tempdir");
    let records = tmp.path().join("orders.csv");
    let t = Instant::now();
    let truth = generator::write_records_csv(&records, n, seed, plant).expect("generate");
    eprintln!(
        "{plant:?}: generated {} records in {:.1}s",
        truth.records,
        t.elapsed().as_secs_f64()
    );
    let index_dir = tmp.path().join("index");
    let t = Instant::now();
    let report = import_default(&index_dir, &records);
    eprintln!("{plant:?}: imported in {:.1}s", t.elapsed().as_secs_f64());
    assert_eq!(report.rows, truth.records);
    assert_eq!(report.imported, truth.records, "{:?}", report.skipped);
    if let Some(log) = &truth.access_log {
        let r = LocalIndex::import_access_log(&index_dir, log).expect("access log");
        assert_eq!(r.skipped_total, 0, "{:?}", r.skipped);
    }
    let (rows, gt) = generator::sample(&truth, rows, seed + 1);
    Scenario {
        _tmp: tmp,
        records,
        index_dir,
        truth,
        rows,
        gt,
    }
}

fn check_quality(s: &Scenario, report: &MatchReport) {
    let q = quality(&s.rows, &s.gt, report, &oracle(&s.records));
    eprintln!(
        "tp {} fp {} fn {} precision {:.4} recall {:.4} by_level {:?}",
        q.tp,
        q.fp,
        q.fn_,
        q.precision(),
        q.recall(),
        report.by_level
    );
    assert!(q.precision() >= 0.99, "precision {}", q.precision());
    assert!(q.recall() >= 0.95, "recall {}", q.recall());
    assert_eq!(report.rows.len(), s.rows.len());
    assert!(report.distinct_customers <= report.rows_matched);
    assert!(report.distinct_orders <= report.rows_matched);
    assert_eq!(report.order_ids.len() as u64, report.distinct_orders);
}

#[test]
fn rider_leak_is_matched_and_attributed_locally_and_remotely_without_pii_at_rest() {
    let s = scenario(Plant::Rider, 200_000, 2_000, 11);
    let k = key();
    let index = Arc::new(LocalIndex::open(&s.index_dir, &k).expect("open"));
    assert_eq!(index.orders(), s.truth.records);
    let t = Instant::now();
    let report = Matcher::new(&*index, &k)
        .check(&s.rows, s.truth.year)
        .expect("check");
    eprintln!("checked in {:.1}s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    check_quality(&s, &report);
    eprintln!("oracle in {:.1}s", t.elapsed().as_secs_f64());
    let planted = s.truth.planted.clone().expect("planted");
    let top = &report.attribution[0];
    assert_eq!(
        (top.actor_kind.clone(), top.actor_id.clone()),
        planted,
        "{:?}",
        &report.attribution[..3.min(report.attribution.len())]
    );
    assert!(top.lift > 10.0 && top.touched >= MIN_TOUCHED);
    assert!(report.canary_hits.is_empty());

    // No raw phone, name or address from the records in any index file.
    let files = index_files(&s.index_dir);
    let mut needles: Vec<String> = Vec::new();
    for o in s
        .truth
        .pool
        .iter()
        .take(150)
        .chain(s.truth.canaries.iter().take(20))
    {
        needles.push(o.phone.clone());
        needles.push(o.name.clone());
        needles.push(o.address.clone());
        needles.push(o.address_short.clone());
    }
    assert!(needles.len() >= 400);
    // The search itself works: it finds a needle planted in a copy of a file.
    let mut probe = files[0].1.clone();
    probe.extend_from_slice(needles[1].as_bytes());
    assert_eq!(find_any(&probe, &needles), vec![needles[1].as_str()]);
    for (path, bytes) in &files {
        let found = find_any(bytes, &needles);
        assert!(
            found.is_empty(),
            "{} contains {} raw values",
            path.display(),
            found.len()
        );
    }

    // The same report through the reference server.
    let rt = runtime();
    let (addr, handle) = rt
        .block_on(serve_reference(
            Arc::clone(&index),
            "127.0.0.1:0",
            "test-token",
        ))
        .expect("serve");
    assert!(addr.ip().is_loopback());
    // Constructed inside the runtime, as a service would: safe, the client is built lazily.
    let remote = rt
        .block_on(async { RemoteSource::new(&format!("http://{addr}"), "test-token") })
        .expect("client");
    let remote_report = Matcher::new(&remote, &k)
        .check(&s.rows, s.truth.year)
        .expect("remote check");
    assert_eq!(remote_report, report);
    // Details of an order the index does not have: the server refuses the request.
    match remote.details(&[u64::MAX]) {
        Err(MatchError::Remote(m)) => assert!(m.contains("400"), "{m}"),
        other => panic!("expected 400, got {other:?}"),
    }
    let wrong = RemoteSource::new(&format!("http://{addr}"), "wrong").expect("client");
    match Matcher::new(&wrong, &k).check(&s.rows[..5], s.truth.year) {
        Err(MatchError::Remote(m)) => assert!(m.contains("401"), "{m}"),
        other => panic!("expected 401, got {other:?}"),
    }
    assert!(RemoteSource::new("not a url", "t").is_err());
    assert!(RemoteSource::new("ftp://127.0.0.1/", "t").is_err());
    drop(remote);
    drop(wrong);
    handle.abort();
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
}

#[test]
fn partner_leak_is_attributed_and_its_canary_reported() {
    let s = scenario(Plant::Partner, 200_000, 2_000, 23);
    let k = key();
    let index = LocalIndex::open(&s.index_dir, &k).expect("open");
    let report = Matcher::new(&index, &k)
        .check(&s.rows, s.truth.year)
        .expect("check");
    check_quality(&s, &report);
    let planted = s.truth.planted.clone().expect("planted");
    let partner = s.gt.canary_partner.clone().expect("canaries in the sample");
    assert_eq!(partner, planted.1);
    assert!(!report.canary_hits.is_empty());
    assert!(report.canary_hits.iter().all(|h| h.partner == partner));
    let top = &report.attribution[0];
    assert_eq!((top.actor_kind.clone(), top.actor_id.clone()), planted);
    assert!(top.canary);
    // Without the canary flag the partner would still lead on its numbers alone.
    let best_other = report
        .attribution
        .iter()
        .skip(1)
        .map(|s| s.score)
        .fold(0.0, f64::max);
    assert!(
        top.score > best_other,
        "{:?}",
        &report.attribution[..3.min(report.attribution.len())]
    );
}

#[test]
fn staff_account_leak_is_attributed_from_the_access_log() {
    let s = scenario(Plant::Staff, 60_000, 800, 37);
    let k = key();
    let index = LocalIndex::open(&s.index_dir, &k).expect("open");
    let report = Matcher::new(&index, &k)
        .check(&s.rows, s.truth.year)
        .expect("check");
    check_quality(&s, &report);
    let top = &report.attribution[0];
    assert_eq!(
        (top.actor_kind.clone(), top.actor_id.clone()),
        s.truth.planted.clone().expect("planted")
    );
}

#[test]
fn repeat_customer_order_is_chosen_by_time() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let records = tmp.path().join("r.csv");
    fs::write(
        &records,
        "order_id,created_at,city,customer_name,customer_phone,address,merchant_id,rider_id,delivery_partner\n\
         A1,2024-11-01 12:00:00,北京,张伟,13812345678,北京市海淀区中关村大街27号院3号楼2单元1203室,M1,R1,P1\n\
         A2,2024-11-20 18:30:00,北京,张伟,13812345678,北京市海淀区中关村大街27号院3号楼2单元1203室,M1,R2,P1\n\
         A3,2023-11-23 06:58:00,北京,张伟,+86 138 1234 5678,北京市海淀区中关村大街27号院3号楼2单元1203室,M2,R3,P1\n\
         B1,2024-11-23 07:00:00,上海,李娜,13912345678,上海市浦东新区世纪大道100号,M3,R4,P2\n",
    )
    .expect("write");
    import_default(&tmp.path().join("i"), &records);
    let k = key();
    let index = LocalIndex::open(&tmp.path().join("i"), &k).expect("open");
    let m = Matcher::new(&index, &k);
    let row = |phone: &str, time: Option<&str>| SampleInput {
        name: Some("张伟".into()),
        phone: Some(phone.into()),
        order_time: time.map(str::to_string),
        ..SampleInput::default()
    };
    let rows = vec![
        row("13812345678", Some("11-23 06:58")), // last year's order, found via reference_year - 1
        row("13812345678", Some("11-21 10:00")), // within 2 days of A2
        row("13812345678", None),                // most recent: A2
        SampleInput {
            name: Some("Zhang Wei".into()),
            masked_phone: Some("138****5678".into()),
            address: Some("海淀区中关村大街27号院3号楼".into()),
            order_time: Some("11-01 12:00".into()),
            ..SampleInput::default()
        },
        SampleInput {
            name: Some("李娜".into()),
            address: Some("上海市浦东新区世纪大道100号".into()),
            ..SampleInput::default()
        },
        SampleInput {
            name: Some("李娜".into()),
            masked_phone: Some("139****0000".into()),
            ..SampleInput::default()
        },
    ];
    let r = m.check(&rows, 2024).expect("check");
    let ids: Vec<Option<&str>> = r.rows.iter().map(|x| x.order_id.as_deref()).collect();
    assert_eq!(
        ids,
        vec![
            Some("A3"),
            Some("A2"),
            Some("A2"),
            Some("A1"),
            Some("B1"),
            None
        ]
    );
    assert_eq!(r.rows[3].level.as_deref(), Some("masked+name+address"));
    assert_eq!(r.rows[4].level.as_deref(), Some("fuzzy"));
    assert!(r.rows[0].agreed.contains(&"time".to_string()));
    assert_eq!(r.rows_matched, 5);
    assert_eq!(
        r.distinct_customers, 2,
        "one customer, counted once, plus 李娜"
    );
    assert_eq!(r.distinct_orders, 4);
    assert_eq!(r.order_ids, vec!["A1", "A2", "A3", "B1"]);
    assert_eq!(r.by_level.get("phone"), Some(&3));
    // Fewer than MIN_TOUCHED orders per actor, except the partner P1 (3 orders) whose base
    // share equals its share: nobody stands out.
    assert!(
        r.attribution
            .iter()
            .all(|s| s.lift > 1.0 && s.touched >= MIN_TOUCHED)
    );
}

/// A name asked for in a city: only that city's orders and orders without a city, the lowest
/// refs first under a limit, across chunks; the plain lookup still sees every city; a fuzzy
/// row's answer does not depend on which other rows share the sample.
/// An index of `rows` (CSV lines after the header) in chunks of three orders, so that one
/// token's orders are spread over chunks.
fn small_index(rows: &str) -> (tempfile::TempDir, LocalIndex) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let records = tmp.path().join("r.csv");
    let csv = format!(
        "order_id,created_at,city,customer_name,customer_phone,address,merchant_id,rider_id,delivery_partner\n{rows}"
    );
    fs::write(&records, csv).expect("write");
    let dir = tmp.path().join("i");
    LocalIndex::import_with(
        &dir,
        &key(),
        &records,
        &no_progress,
        &ImportOptions {
            chunk_rows: 3,
            threads: 2,
        },
    )
    .expect("import");
    let index = LocalIndex::open(&dir, &key()).expect("open");
    (tmp, index)
}

/// The order ids `q` finds, sorted.
fn order_ids(index: &LocalIndex, q: &TokenQuery) -> Vec<String> {
    let set = index.candidates(q).expect("candidates");
    let refs: Vec<u64> = set.orders().iter().map(|c| c.order_ref).collect();
    let mut ids: Vec<String> = index
        .details(&refs)
        .expect("details")
        .into_iter()
        .map(|d| d.order_id)
        .collect();
    ids.sort();
    ids
}

/// Serves `index` through the reference server, asserts that each of `queries` finds the same
/// orders remotely as locally, runs `more` against the client, and hands the index back.
fn same_answers_remotely(
    index: LocalIndex,
    queries: &[TokenQuery],
    more: impl FnOnce(&RemoteSource),
) -> LocalIndex {
    let index = Arc::new(index);
    let rt = runtime();
    let (addr, handle) = rt
        .block_on(serve_reference(Arc::clone(&index), "127.0.0.1:0", "t"))
        .expect("serve");
    let remote = RemoteSource::new(&format!("http://{addr}"), "t").expect("client");
    let refs =
        |set: CandidateSet<'_>| -> Vec<u64> { set.orders().iter().map(|c| c.order_ref).collect() };
    for q in queries {
        assert_eq!(
            refs(remote.candidates(q).expect("remote")),
            refs(index.candidates(q).expect("local")),
            "{q:?}"
        );
    }
    more(&remote);
    drop(remote);
    handle.abort();
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    Arc::try_unwrap(index).unwrap_or_else(|_| panic!("server gone"))
}

#[test]
fn names_are_looked_up_in_the_rows_city() {
    // 王芳 in three cities (two spellings of Hangzhou) and once without a city.
    let mut rows = String::new();
    for (id, city, addr) in [
        ("H1", "杭州", "西湖区文三路90号东部软件园1号楼301室"),
        ("S1", "上海", "浦东新区世纪大道100号"),
        ("H2", "杭州市", "西湖区文三路90号东部软件园1号楼301室"),
        ("N1", "", "文三路90号东部软件园1号楼301室"),
        ("S2", "上海", "浦东新区世纪大道200号"),
        ("H3", "杭州", "拱墅区莫干山路100号"),
        ("B1", "北京", "海淀区中关村大街27号"),
    ] {
        rows.push_str(&format!(
            "{id},2024-11-01 12:00:00,{city},王芳,,{addr},M1,R1,P1\n"
        ));
    }
    let (_tmp, index) = small_index(&rows);
    let k = key();
    let name = normalise::normalise_name("王芳").expect("name");
    let (token, pinyin) = Blinder::new(&k).name(&name);
    let ids = |q: &TokenQuery| order_ids(&index, q);
    let in_city = |city: &str, limit: u32| TokenQuery {
        name_in_city: vec![CityToken {
            token,
            city: normalise::canonical_city(city),
            district: None,
        }],
        limit_per_token: limit,
        ..TokenQuery::default()
    };
    assert_eq!(ids(&in_city("杭州", 0)), ["H1", "H2", "H3", "N1"]);
    assert_eq!(ids(&in_city("上海市", 0)), ["N1", "S1", "S2"]);
    assert_eq!(
        ids(&in_city("广州", 0)),
        ["N1"],
        "only the order without a city"
    );
    // The lowest refs (input order) of the city's orders, wherever their chunk.
    assert_eq!(ids(&in_city("杭州", 2)), ["H1", "H2"]);
    assert_eq!(ids(&in_city("杭州", 3)), ["H1", "H2", "N1"]);
    // Narrowed to a district too: its orders and those without a district (N1).
    let district = |d: &str| Some(Blinder::new(&k).district(d));
    let in_district = |city: &str, d: &str, limit: u32| TokenQuery {
        name_in_city: vec![CityToken {
            token,
            city: normalise::canonical_city(city),
            district: district(d),
        }],
        limit_per_token: limit,
        ..TokenQuery::default()
    };
    assert_eq!(ids(&in_district("杭州", "西湖", 0)), ["H1", "H2", "N1"]);
    assert_eq!(ids(&in_district("杭州", "拱墅", 0)), ["H3", "N1"]);
    assert_eq!(ids(&in_district("杭州", "滨江", 0)), ["N1"]);
    assert_eq!(ids(&in_district("上海", "浦东新", 0)), ["N1", "S1", "S2"]);
    assert_eq!(ids(&in_district("杭州", "西湖", 1)), ["H1"]);
    let plain = TokenQuery {
        name: vec![token],
        limit_per_token: 3,
        ..TokenQuery::default()
    };
    assert_eq!(ids(&plain), ["H1", "H2", "S1"]);
    let pinyin_only = TokenQuery {
        pinyin_in_city: vec![CityToken {
            token: pinyin,
            city: normalise::canonical_city("北京"),
            district: None,
        }],
        ..TokenQuery::default()
    };
    assert_eq!(ids(&pinyin_only), ["B1", "N1"]);
    // A city name no city has this long is refused, not looked up.
    let long = TokenQuery {
        name_in_city: vec![CityToken {
            token,
            city: "市".repeat(30),
            district: None,
        }],
        ..TokenQuery::default()
    };
    assert!(matches!(index.candidates(&long), Err(MatchError::Query(m)) if m.contains("at most")));

    // The reference server answers city queries as the index does, and refuses the long city.
    let index = same_answers_remotely(
        index,
        &[
            in_city("杭州", 0),
            in_city("杭州", 2),
            in_district("杭州", "西湖", 0),
            pinyin_only.clone(),
        ],
        |remote| match remote.candidates(&long) {
            Err(MatchError::Remote(m)) => {
                assert!(m.contains("400") && m.contains("at most"), "{m}")
            }
            other => panic!("expected 400, got {other:?}"),
        },
    );

    // A fuzzy row in Hangzhou decides the same alone and next to a row with the same name
    // and no city (whose plain lookup brings the other cities' orders into the set).
    let m = Matcher::new(&index, &k);
    let hangzhou = SampleInput {
        name: Some("王芳".into()),
        address: Some("杭州市拱墅区莫干山路100号".into()),
        ..SampleInput::default()
    };
    let cityless = SampleInput {
        name: Some("王芳".into()),
        address: Some("世纪大道100号".into()),
        ..SampleInput::default()
    };
    // Nobody of that name lives here: the note counts only the customers who could be the
    // row, those of that city and district or without them (N1).
    let elsewhere = SampleInput {
        address: Some("杭州市滨江区江南大道1号".into()),
        ..hangzhou.clone()
    };
    let alone = m
        .check(&[hangzhou.clone(), elsewhere.clone()], 2024)
        .expect("check");
    let both = m
        .check(&[hangzhou, elsewhere, cityless], 2024)
        .expect("check");
    assert_eq!(alone.rows[0].order_id.as_deref(), Some("H3"));
    assert_eq!(alone.rows[1].order_id, None);
    assert!(
        alone.rows[1]
            .note
            .as_deref()
            .is_some_and(|n| n.starts_with("1 customer(s)")),
        "{:?}",
        alone.rows[1]
    );
    assert_eq!(alone.rows[..2], both.rows[..2]);
}

#[test]
fn masked_phones_are_looked_up_in_the_rows_city() {
    // Seven customers share the mask 138****5678: two in Hangzhou, four in Shanghai (all
    // named 张伟), one without a city.
    let mut rows = String::new();
    for (id, city, name, phone, addr) in [
        ("S1", "上海", "张伟", "13811005678", "浦东新区世纪大道100号"),
        (
            "H1",
            "杭州",
            "张伟",
            "13811115678",
            "西湖区文三路90号东部软件园1号楼301室",
        ),
        (
            "S2",
            "上海市",
            "张伟",
            "13822005678",
            "浦东新区世纪大道200号",
        ),
        ("S3", "上海", "张伟", "13833005678", "黄浦区南京东路1号"),
        ("N1", "", "王芳", "13833335678", "文三路100号"),
        ("H2", "杭州", "李娜", "13822225678", "拱墅区莫干山路100号"),
        ("S4", "上海", "张伟", "13844005678", "徐汇区漕溪北路1号"),
    ] {
        rows.push_str(&format!(
            "{id},2024-11-01 12:00:00,{city},{name},{phone},{addr},M1,R1,P1\n"
        ));
    }
    let (_tmp, index) = small_index(&rows);
    let k = key();
    let mask = normalise::normalise_masked_phone("138****5678").expect("mask");
    let token = Blinder::new(&k).masked(&mask);
    let ids = |q: &TokenQuery| order_ids(&index, q);
    let in_city = |city: &str, limit: u32| TokenQuery {
        masked_in_city: vec![CityToken {
            token,
            city: normalise::canonical_city(city),
            district: None,
        }],
        limit_per_token: limit,
        ..TokenQuery::default()
    };
    assert_eq!(ids(&in_city("杭州", 0)), ["H1", "H2", "N1"]);
    assert_eq!(ids(&in_city("上海市", 0)), ["N1", "S1", "S2", "S3", "S4"]);
    assert_eq!(ids(&in_city("广州", 0)), ["N1"]);
    // The lowest refs of the city's orders, wherever their chunk.
    assert_eq!(ids(&in_city("上海", 2)), ["S1", "S2"]);
    let plain = TokenQuery {
        masked: vec![token],
        ..TokenQuery::default()
    };
    assert_eq!(ids(&plain).len(), 7);
    // A masked phone is never narrowed to a district (a customer's other addresses count).
    let mut with_district = in_city("杭州", 0);
    with_district.masked_in_city[0].district = Some(Blinder::new(&k).district("西湖"));
    assert!(
        matches!(index.candidates(&with_district), Err(MatchError::Query(m)) if m.contains("no district"))
    );

    // The reference server answers as the index does.
    let index = same_answers_remotely(
        index,
        &[in_city("杭州", 0), in_city("上海", 2), plain.clone()],
        |_| {},
    );

    // A masked row in Hangzhou is weighed against the customers who could be it: the three
    // with the mask there or without a city, whatever other rows bring into the set.
    let m = Matcher::new(&index, &k);
    let found = SampleInput {
        name: Some("张伟".into()),
        masked_phone: Some("138****5678".into()),
        address: Some("杭州市西湖区文三路90号东部软件园1号楼301室".into()),
        ..SampleInput::default()
    };
    let stranger = SampleInput {
        name: Some("赵六".into()),
        address: Some("杭州市滨江区江南大道1号".into()),
        ..found.clone()
    };
    // No city: every customer with the mask counts.
    let cityless = SampleInput {
        address: None,
        ..stranger.clone()
    };
    let alone = m
        .check(&[found.clone(), stranger.clone()], 2024)
        .expect("check");
    let all = m.check(&[found, stranger, cityless], 2024).expect("check");
    assert_eq!(alone.rows[0].order_id.as_deref(), Some("H1"));
    assert_eq!(alone.rows[0].level.as_deref(), Some("masked+name+address"));
    assert_eq!(alone.rows[1].order_id, None);
    let note = |r: &RowResult| r.note.clone().unwrap_or_default();
    assert!(
        note(&alone.rows[1]).starts_with("masked phone matches 3 customer(s)"),
        "{:?}",
        alone.rows[1]
    );
    assert_eq!(alone.rows[..2], all.rows[..2]);
    assert!(
        note(&all.rows[2]).starts_with("masked phone matches 7 customer(s)"),
        "{:?}",
        all.rows[2]
    );
}

#[test]
fn an_outdated_index_of_the_same_records_is_discarded_and_no_other() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let records = tmp.path().join("r.csv");
    let other = tmp.path().join("other.csv");
    generator::write_records_csv(&records, 300, 1, Plant::None).expect("generate");
    generator::write_records_csv(&other, 300, 2, Plant::None).expect("generate");
    let dir = tmp.path().join("i");
    assert!(!LocalIndex::discard_outdated(&dir, &records).expect("no index"));
    import_default(&dir, &records);
    assert!(!LocalIndex::discard_outdated(&dir, &records).expect("current"));
    assert!(
        dir.join("manifest.json").exists(),
        "a current index is kept"
    );
    // Make it an index of an older format.
    let path = dir.join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_slice(&fs::read(&path).expect("manifest")).expect("json");
    m["format"] = serde_json::json!(5);
    fs::write(&path, serde_json::to_vec(&m).expect("json")).expect("write");
    assert!(LocalIndex::open(&dir, &key()).is_err());
    // Of other records: left alone, with the reason.
    match LocalIndex::discard_outdated(&dir, &other) {
        Err(MatchError::Index { reason, .. }) => {
            assert!(reason.contains("format version 5"), "{reason}")
        }
        r => panic!("expected an index error, got {r:?}"),
    }
    assert!(path.exists());
    // Of these records: removed, and imported again.
    assert!(LocalIndex::discard_outdated(&dir, &records).expect("discard"));
    assert!(!dir.exists());
    import_default(&dir, &records);
    assert!(LocalIndex::open(&dir, &key()).is_ok());
}

#[test]
fn empty_sample_gives_an_empty_report() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let records = tmp.path().join("r.csv");
    generator::write_records_csv(&records, 500, 1, Plant::None).expect("generate");
    import_default(&tmp.path().join("i"), &records);
    let k = key();
    let index = LocalIndex::open(&tmp.path().join("i"), &k).expect("open");
    let r = Matcher::new(&index, &k).check(&[], 2024).expect("check");
    assert_eq!(r, MatchReport::default());
    // Rows with nothing to match on are reported, not dropped.
    let r = Matcher::new(&index, &k)
        .check(&[SampleInput::default()], 2024)
        .expect("check");
    assert_eq!(r.rows_checked, 1);
    assert_eq!(r.rows_matched, 0);
    assert!(r.rows[0].note.is_some());
}

const HEADER: &str = "order_id,created_at,city,customer_name,customer_phone,address,merchant_id,rider_id,delivery_partner,canary_for\n";

#[test]
fn malformed_rows_are_skipped_with_line_numbers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let records = tmp.path().join("bad.csv");
    let mut body = HEADER.as_bytes().to_vec();
    body.extend_from_slice(
        "O1,2024-11-01 12:00:00,北京,张伟,13812345678,北京市海淀区中关村大街1号,M1,R1,P1,\n"
            .as_bytes(),
    ); // line 2 ok
    body.extend_from_slice(b"O2,2024-11-01 12:00:00,x,y\n"); // line 3 wrong column count
    body.extend_from_slice("O3,yesterday,北京,王芳,13912345678,地址,M1,R1,P1,\n".as_bytes()); // line 4 bad date
    body.extend_from_slice(
        ",2024-11-01 12:00:00,北京,王芳,13912345678,地址,M1,R1,P1,\n".as_bytes(),
    ); // line 5 no id
    body.extend_from_slice(b"O5,2024-11-01 12:00:00,\xff\xfe,a,13912345678,b,M1,R1,P1,\n"); // line 6 bad UTF-8
    body.extend_from_slice(
        "\"O6\",\"2024-11-02T08:00:00+08:00\",上海,\"李,娜\",not a phone,,M2,R2,P2,\n".as_bytes(),
    ); // line 7 ok
    fs::write(&records, body).expect("write");
    let r = import_default(&tmp.path().join("i"), &records);
    assert_eq!(r.rows, 6);
    assert_eq!(r.imported, 2);
    assert_eq!(r.skipped_total, 4);
    let lines: Vec<u64> = r.skipped.iter().map(|s| s.0).collect();
    assert_eq!(lines, vec![3, 4, 5, 6]);
    assert!(
        r.skipped[0].1.contains("wrong number of fields"),
        "{:?}",
        r.skipped
    );
    assert!(r.skipped[1].1.contains("created_at"));
    assert!(r.skipped[2].1.contains("order_id"));
    assert!(r.skipped[3].1.contains("UTF-8"));
    // Skip reasons never quote values.
    assert!(
        r.skipped
            .iter()
            .all(|s| !s.1.contains("yesterday") && !s.1.contains("王芳"))
    );

    // JSONL: a bad line is skipped with its number; numbers are accepted as strings.
    let jsonl = tmp.path().join("r.jsonl");
    fs::write(
        &jsonl,
        "{\"order_id\":\"J1\",\"created_at\":\"2024-11-01 12:00:00\",\"city\":\"北京\",\"customer_phone\":13812345678,\"customer_name\":\"张伟\"}\n\
         \n\
         {not json\n\
         {\"order_id\":\"J3\",\"created_at\":\"bad\"}\n",
    )
    .expect("write");
    let r = import_default(&tmp.path().join("j"), &jsonl);
    assert_eq!((r.rows, r.imported, r.skipped_total), (3, 1, 2));
    assert_eq!(
        r.skipped.iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![3, 4]
    );
    let k = key();
    let index = LocalIndex::open(&tmp.path().join("j"), &k).expect("open");
    let rep = Matcher::new(&index, &k)
        .check(
            &[SampleInput {
                phone: Some("13812345678".into()),
                ..SampleInput::default()
            }],
            2024,
        )
        .expect("check");
    assert_eq!(rep.order_ids, vec!["J1"]);
}

#[test]
fn unusable_files_are_refused_clearly() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let empty = tmp.path().join("empty.csv");
    fs::write(&empty, "").expect("write");
    let err =
        LocalIndex::import(&tmp.path().join("a"), &key(), &empty, &no_progress).expect_err("empty");
    assert!(err.to_string().contains("empty"), "{err}");

    let binary = tmp.path().join("photo.jpg");
    fs::write(
        &binary,
        [
            0xFFu8, 0xD8, 0xFF, 0xE0, 0, 16, b'J', b'F', b'I', b'F', 0, 1, 2, 3,
        ],
    )
    .expect("write");
    let err = LocalIndex::import(&tmp.path().join("b"), &key(), &binary, &no_progress)
        .expect_err("binary");
    assert!(err.to_string().contains("missing column"), "{err}");

    let prose = tmp.path().join("notes.txt");
    fs::write(&prose, "张伟 13812345678 北京市海淀区\nhello\n").expect("write");
    let err =
        LocalIndex::import(&tmp.path().join("c"), &key(), &prose, &no_progress).expect_err("prose");
    let msg = err.to_string();
    assert!(msg.contains("order_id"), "{msg}");
    assert!(!msg.contains("13812345678"), "error quotes data: {msg}");

    let missing = tmp.path().join("nope.csv");
    assert!(matches!(
        LocalIndex::import(&tmp.path().join("d"), &key(), &missing, &no_progress),
        Err(MatchError::Io { .. })
    ));

    // A header alone is a valid, empty export.
    let header_only = tmp.path().join("h.csv");
    fs::write(&header_only, HEADER).expect("write");
    let r = import_default(&tmp.path().join("e"), &header_only);
    assert_eq!((r.rows, r.imported), (0, 0));
    let index = LocalIndex::open(&tmp.path().join("e"), &key()).expect("open");
    assert_eq!(index.orders(), 0);

    // Opening what is not an index.
    assert!(matches!(
        LocalIndex::open(tmp.path(), &key()),
        Err(MatchError::Index { .. })
    ));
}

#[test]
fn wrong_key_is_refused_and_other_files_are_not_mixed_in() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let records = tmp.path().join("r.csv");
    generator::write_records_csv(&records, 1_000, 3, Plant::None).expect("generate");
    let dir = tmp.path().join("i");
    let first = import_default(&dir, &records);
    let other_key = BlindKey::new([9u8; 32]);
    assert!(matches!(
        LocalIndex::open(&dir, &other_key),
        Err(MatchError::WrongKey { .. })
    ));
    assert!(matches!(
        LocalIndex::import(&dir, &other_key, &records, &no_progress),
        Err(MatchError::WrongKey { .. })
    ));
    // The same file again: nothing to do, same report.
    let again = import_default(&dir, &records);
    assert_eq!(again.resumed_from, Some(first.rows));
    assert_eq!(
        ImportReport {
            resumed_from: None,
            ..again
        },
        first
    );
    // Another file into the same directory is refused.
    let other = tmp.path().join("o.csv");
    generator::write_records_csv(&other, 1_000, 4, Plant::None).expect("generate");
    assert!(matches!(
        LocalIndex::import(&dir, &key(), &other, &no_progress),
        Err(MatchError::Index { .. })
    ));
    // Access log rows for unknown orders or with bad fields are skipped with line numbers.
    let log = tmp.path().join("log.csv");
    let known = oracle(&records).into_keys().min().expect("an order");
    fs::write(
        &log,
        format!(
            "order_id,actor_kind,actor_id,action,at\n{known},staff,S1,view,2024-11-01 10:00:00\nNOPE,staff,S1,view,2024-11-01 10:00:00\n{known},robot,S1,view,2024-11-01 10:00:00\n{known},staff,S1,export,2024-11-01 10:05:00\n"
        ),
    )
    .expect("write");
    let r = LocalIndex::import_access_log(&dir, &log).expect("log");
    assert_eq!((r.rows, r.imported, r.skipped_total), (4, 2, 2));
    assert_eq!(
        r.skipped.iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![3, 4]
    );
    let index = LocalIndex::open(&dir, &key()).expect("open");
    let from = 0;
    let counts = index
        .base_counts(None, from, i64::MAX, None)
        .expect("counts");
    assert_eq!(counts.total, 1_000 + 84);
    assert!(
        counts
            .actors
            .iter()
            .any(|a| a.actor_kind == "staff_account" && a.actor_id == "S1" && a.orders == 1)
    );
}

#[test]
fn interrupted_import_resumes_to_the_same_index() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let records = tmp.path().join("r.csv");
    generator::write_records_csv(&records, 30_000, 5, Plant::None).expect("generate");
    let opts = ImportOptions {
        chunk_rows: 4_000,
        threads: 2,
    };
    let whole = tmp.path().join("whole");
    let full =
        LocalIndex::import_with(&whole, &key(), &records, &no_progress, &opts).expect("import");

    let cut = tmp.path().join("cut");
    let total = fs::metadata(&records).expect("meta").len();
    let crash = |done: u64, _: u64| {
        if done > total / 2 {
            panic!("simulated crash");
        }
    };
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        LocalIndex::import_with(&cut, &key(), &records, &crash, &opts)
    }));
    assert!(res.is_err(), "the import should have been interrupted");
    assert!(matches!(
        LocalIndex::open(&cut, &key()),
        Err(MatchError::Index { .. })
    ));
    let done_before: Vec<_> = index_files(&cut)
        .into_iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "lwm"))
        .collect();
    assert!(
        !done_before.is_empty(),
        "some chunks finished before the crash"
    );
    // A leftover temp file from the crash is cleaned up on resume.
    fs::write(cut.join("chunk-00099.lwm.tmp"), b"junk").expect("write");

    let resumed =
        LocalIndex::import_with(&cut, &key(), &records, &no_progress, &opts).expect("resume");
    let from = resumed.resumed_from.expect("resumed");
    assert!(
        from > 0 && from < full.rows && from.is_multiple_of(4_000),
        "{from}"
    );
    assert_eq!(
        ImportReport {
            resumed_from: None,
            ..resumed
        },
        full
    );
    let same_files = |a: &Path, b: &Path| {
        let (a, b) = (index_files(a), index_files(b));
        assert_eq!(a.len(), b.len());
        for ((pa, ba), (pb, bb)) in a.iter().zip(&b) {
            assert_eq!(pa.file_name(), pb.file_name());
            assert!(ba == bb, "{} differs", pa.display());
        }
    };
    same_files(&whole, &cut);

    // A crash after the last chunk, while the postings file was being built: the manifest
    // lists every chunk but no postings file; a half-written temp file and an unrecorded
    // postings file are left. The index cannot be opened; a resumed import reads no row,
    // builds the postings again, and ends with the same files.
    let manifest_path = cut.join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_slice(&fs::read(&manifest_path).expect("manifest")).expect("json");
    m["complete"] = false.into();
    m["postings_bytes"] = serde_json::Value::Null;
    fs::write(&manifest_path, serde_json::to_vec(&m).expect("json")).expect("write");
    let postings = fs::read(cut.join("postings.lwp")).expect("postings");
    fs::write(cut.join("postings.lwp"), &postings[..postings.len() / 2]).expect("write");
    fs::write(cut.join("postings.lwp.tmp"), b"half").expect("write");
    assert!(matches!(
        LocalIndex::open(&cut, &key()),
        Err(MatchError::Index { .. })
    ));
    let rebuilt =
        LocalIndex::import_with(&cut, &key(), &records, &no_progress, &opts).expect("resume");
    assert_eq!(rebuilt.resumed_from, Some(full.rows));
    same_files(&whole, &cut);
    LocalIndex::open(&cut, &key()).expect("open");

    // A manifest that says complete but records no postings file (damaged by hand): refused
    // at open, and an import builds the file instead of reporting the import done.
    let mut m: serde_json::Value =
        serde_json::from_slice(&fs::read(&manifest_path).expect("manifest")).expect("json");
    m["postings_bytes"] = serde_json::Value::Null;
    fs::write(&manifest_path, serde_json::to_vec(&m).expect("json")).expect("write");
    assert!(matches!(
        LocalIndex::open(&cut, &key()),
        Err(MatchError::Index { .. })
    ));
    LocalIndex::import_with(&cut, &key(), &records, &no_progress, &opts).expect("resume");
    same_files(&whole, &cut);
}

/// A postings file naming an order the index does not hold (a damaged ref) gives an index
/// error, not a query error that a remote client would take for its own mistake.
#[test]
fn a_posting_beyond_the_index_is_an_index_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let records = tmp.path().join("r.csv");
    generator::write_records_csv(&records, 2_000, 21, Plant::None).expect("generate");
    let dir = tmp.path().join("i");
    import_default(&dir, &records);
    // The first phone posting: token at 192 (after the 32-byte preamble and the 10-section
    // table), its ref in the 4 bytes after the token.
    let path = dir.join("postings.lwp");
    let mut bytes = fs::read(&path).expect("postings");
    let token = u64::from_le_bytes(bytes[192..200].try_into().expect("token"));
    bytes[200..204].copy_from_slice(&4_000_000u32.to_le_bytes());
    fs::write(&path, &bytes).expect("write");
    let index = LocalIndex::open(&dir, &key()).expect("open");
    let query = TokenQuery {
        phone: vec![Token(token)],
        ..TokenQuery::default()
    };
    match index.candidates(&query) {
        Err(MatchError::Index { path: p, reason }) => {
            assert_eq!(p, path);
            assert!(reason.contains("does not hold"), "{reason}");
        }
        other => panic!("expected an index error, got {other:?}"),
    }
}

/// Base counts from an index built in several chunks against a count straight from the
/// records file, for windows that start and end inside days, on day boundaries, inside one
/// day, and unbounded: the day sections and the scanned edges must add up exactly.
#[test]
fn base_counts_equal_a_count_of_the_records_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let records = tmp.path().join("r.csv");
    generator::write_records_csv(&records, 20_000, 13, Plant::None).expect("generate");
    let dir = tmp.path().join("i");
    let opts = ImportOptions {
        chunk_rows: 3_000,
        threads: 2,
    };
    LocalIndex::import_with(&dir, &key(), &records, &no_progress, &opts).expect("import");
    let index = LocalIndex::open(&dir, &key()).expect("open");
    // (city, created_at, merchant, rider, partner) of every record.
    let mut rows: Vec<(String, i64, String, String, String)> = Vec::new();
    let mut r = csv::Reader::from_path(&records).expect("records");
    for rec in r.records() {
        let rec = rec.expect("record");
        rows.push((
            normalise::canonical_city(&rec[2]),
            normalise::parse_record_time(&rec[1]).expect("time"),
            rec[6].to_string(),
            rec[7].to_string(),
            rec[8].to_string(),
        ));
    }
    let first = rows.iter().map(|r| r.1).min().expect("rows");
    let last = rows.iter().map(|r| r.1).max().expect("rows");
    let day = 86_400;
    let day0 = first.div_euclid(day) * day;
    let mut windows = vec![
        (first, last),
        (first + 12_345, last - 54_321),
        (day0 + 3 * day, day0 + 10 * day - 1),
        (day0 + 3 * day - 1, day0 + 10 * day),
        (day0 + 5 * day + 100, day0 + 5 * day + 40_000),
        (day0 + 5 * day + 100, day0 + 6 * day + 100),
        (first, first),
        (last, first),
        (0, i64::MAX),
        (i64::MIN, i64::MAX),
    ];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..20 {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let a = first + (x >> 33) as i64 % (last - first);
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        windows.push((a, a + (x >> 33) as i64 % (20 * day)));
    }
    let cities = [
        None,
        Some("北京"),
        Some("上海市"),
        Some("杭州"),
        Some("火星"),
    ];
    for (from, to) in windows {
        for city in cities {
            let want_city = city.map(normalise::canonical_city);
            let mut total = 0u64;
            let mut want: std::collections::BTreeMap<(String, String), u64> = Default::default();
            for (c, at, m, rd, p) in &rows {
                if want_city.as_ref().is_some_and(|w| w != c) || *at < from || *at > to {
                    continue;
                }
                total += 1;
                for (kind, id) in [("merchant", m), ("rider", rd), ("partner", p)] {
                    if !id.is_empty() {
                        *want.entry((kind.to_string(), id.clone())).or_insert(0) += 1;
                    }
                }
            }
            let got = index.base_counts(city, from, to, None).expect("counts");
            assert_eq!(got.total, total, "{city:?} {from}..={to}");
            // Asking for a few actors (and one that does not exist) gives just their counts.
            let only: Vec<ActorRef> = got
                .actors
                .iter()
                .step_by(7)
                .map(|a| ActorRef {
                    actor_kind: a.actor_kind.clone(),
                    actor_id: a.actor_id.clone(),
                })
                .chain([ActorRef {
                    actor_kind: "rider".into(),
                    actor_id: "nobody".into(),
                }])
                .collect();
            let some = index
                .base_counts(city, from, to, Some(&only))
                .expect("counts");
            assert_eq!(some.total, total);
            let expected: Vec<ActorCount> = got.actors.iter().step_by(7).cloned().collect();
            assert_eq!(some.actors, expected, "{city:?} {from}..={to}");
            let got: std::collections::BTreeMap<(String, String), u64> = got
                .actors
                .into_iter()
                .map(|a| ((a.actor_kind, a.actor_id), a.orders))
                .collect();
            assert_eq!(got, want, "{city:?} {from}..={to}");
        }
    }
}

/// A damaged chunk or postings file (any byte changed, the size unchanged) gives errors or
/// different answers, never a panic or an out-of-bounds read.
#[test]
fn damaged_index_files_never_panic() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let records = tmp.path().join("r.csv");
    let truth = generator::write_records_csv(&records, 3_000, 17, Plant::Rider).expect("generate");
    let dir = tmp.path().join("i");
    let opts = ImportOptions {
        chunk_rows: 1_500,
        threads: 2,
    };
    LocalIndex::import_with(&dir, &key(), &records, &no_progress, &opts).expect("import");
    let (rows, _) = generator::sample(&truth, 60, 18);
    let k = key();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut errors = 0;
    // A chunk file and the postings file, each damaged in turn.
    for file in ["chunk-00000.lwm", "postings.lwp"] {
        let path = dir.join(file);
        let pristine = fs::read(&path).expect("index file");
        for i in 0..200 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut bytes = pristine.clone();
            // The header and section table in a third of the cases, anywhere otherwise.
            let span = if i % 3 == 0 { 320 } else { bytes.len() };
            let at = (x % span as u64) as usize;
            let width = 1 + (x >> 40) as usize % 4;
            for (j, b) in bytes.iter_mut().skip(at).take(width).enumerate() {
                *b ^= (x >> (8 * j)) as u8 | 1;
            }
            fs::write(&path, &bytes).expect("write");
            let Ok(index) = LocalIndex::open(&dir, &k) else {
                errors += 1;
                continue;
            };
            if Matcher::new(&index, &k).check(&rows, truth.year).is_err() {
                errors += 1;
            }
            let _ = index.base_counts(None, i64::MIN, i64::MAX, None);
        }
        fs::write(&path, &pristine).expect("write");
    }
    assert!(errors > 0, "some damage should have been noticed");
    let index = LocalIndex::open(&dir, &k).expect("open");
    assert!(Matcher::new(&index, &k).check(&rows, truth.year).is_ok());
}

/// Answers of a split query merge into one set: sorted by ref, each order once, cities and
/// address tokens carried over.
#[test]
fn candidate_sets_merge_by_order_ref() {
    let order = |r: u64| Candidate {
        order_ref: r,
        created_at: r as i64 * 10,
        phone: Some(Token(r + 100)),
        ..Candidate::default()
    };
    let mut a = CandidateSet::default();
    let bj = a.add_city("北京");
    a.push(
        Candidate {
            city: bj,
            ..order(5)
        },
        &[1, 2],
    )
    .expect("push");
    a.push(
        Candidate {
            city: bj,
            ..order(9)
        },
        &[3],
    )
    .expect("push");
    let mut b = CandidateSet::default();
    let sh = b.add_city("上海");
    let bj2 = b.add_city("北京");
    b.push(
        Candidate {
            city: sh,
            ..order(7)
        },
        &[4, 5, 6],
    )
    .expect("push");
    b.push(
        Candidate {
            city: bj2,
            ..order(5)
        },
        &[1, 2],
    )
    .expect("push");
    let m = CandidateSet::merge(vec![a, b]).expect("merge");
    let refs: Vec<u64> = m.orders().iter().map(|c| c.order_ref).collect();
    assert_eq!(refs, vec![5, 7, 9]);
    let cities: Vec<&str> = m.orders().iter().map(|c| m.city(c)).collect();
    assert_eq!(cities, vec!["北京", "上海", "北京"]);
    let addresses: Vec<Vec<u32>> = m.orders().iter().map(|c| m.address(c).to_vec()).collect();
    assert_eq!(addresses, vec![vec![1, 2], vec![4, 5, 6], vec![3]]);
    assert_eq!(m.orders()[1].phone, Some(Token(107)));
    assert!(CandidateSet::merge(Vec::new()).expect("merge").is_empty());
}

/// A set whose address tokens stay in the index's maps gives the same orders and tokens when
/// merged into (copied to) an owned one.
#[test]
fn mapped_candidate_sets_copy_to_owned_ones_unchanged() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let records = tmp.path().join("r.csv");
    generator::write_records_csv(&records, 3_000, 19, Plant::None).expect("generate");
    let dir = tmp.path().join("i");
    import_default(&dir, &records);
    let index = LocalIndex::open(&dir, &key()).expect("open");
    let b = Blinder::new(&key());
    let mut cache = blind::TokenCache::default();
    let mut q = TokenQuery::default();
    let mut r = csv::Reader::from_path(&records).expect("records");
    for rec in r.records().take(40) {
        let rec = rec.expect("record");
        let f = b.tokens(Some(&rec[4]), None, Some(&rec[3]), None, &mut cache);
        q.phone.extend(f.tokens.phone);
        q.name.extend(f.tokens.name);
    }
    let set = index.candidates(&q).expect("candidates");
    assert!(set.len() >= 40);
    assert!(set.orders().iter().any(|c| set.address_len(c) > 0));
    let owned = CandidateSet::merge(vec![set.clone(), set.clone()]).expect("merge");
    assert_eq!(owned.orders().len(), set.orders().len());
    for (a, o) in set.orders().iter().zip(owned.orders()) {
        assert_eq!(
            (a.order_ref, a.phone, a.name),
            (o.order_ref, o.phone, o.name)
        );
        assert_eq!(set.city(a), owned.city(o));
        assert_eq!(set.address(a), owned.address(o));
        assert!(set.address(a).is_sorted());
    }
    // Pushing onto a mapped set copies its tokens first.
    let mut grown = set.clone();
    let last = set.orders().last().copied().expect("an order");
    let extra = Candidate {
        order_ref: last.order_ref + 1,
        ..last
    };
    grown.push(extra, &[7, 8]).expect("push");
    assert_eq!(grown.len(), set.len() + 1);
    assert_eq!(
        grown.address(&grown.orders()[0]),
        set.address(&set.orders()[0])
    );
    assert_eq!(
        grown.address(&grown.orders()[set.len()]).to_vec(),
        vec![7, 8]
    );
}

#[test]
fn query_split_keeps_every_token() {
    let q = TokenQuery {
        phone: (0..7).map(Token).collect(),
        masked: (10..13).map(Token).collect(),
        name: vec![Token(20)],
        pinyin: vec![],
        name_in_city: vec![CityToken {
            token: Token(30),
            city: "杭州".into(),
            district: None,
        }],
        pinyin_in_city: vec![CityToken {
            token: Token(31),
            city: "上海".into(),
            district: None,
        }],
        masked_in_city: vec![CityToken {
            token: Token(32),
            city: "北京".into(),
            district: None,
        }],
        limit_per_token: 9,
    };
    let parts = q.split(4);
    assert_eq!(parts.len(), 4);
    assert!(parts.iter().all(|p| p.len() <= 4 && p.limit_per_token == 9));
    let mut back = TokenQuery {
        limit_per_token: 9,
        ..TokenQuery::default()
    };
    for p in parts {
        back.phone.extend(p.phone);
        back.masked.extend(p.masked);
        back.name.extend(p.name);
        back.pinyin.extend(p.pinyin);
        back.name_in_city.extend(p.name_in_city);
        back.pinyin_in_city.extend(p.pinyin_in_city);
        back.masked_in_city.extend(p.masked_in_city);
    }
    assert_eq!(back, q);
    assert!(TokenQuery::default().split(4).is_empty());
    // The JSON form of tokens is 16 hex digits.
    let json = serde_json::to_string(&Token(0xab)).expect("json");
    assert_eq!(json, "\"00000000000000ab\"");
    assert_eq!(
        serde_json::from_str::<Token>(&json).expect("parse"),
        Token(0xab)
    );
    assert!(serde_json::from_str::<Token>("\"ab\"").is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn normalisation_never_panics(s in "\\PC{0,80}", year in -5000i32..5000) {
        let _ = normalise::normalise_phone(&s);
        let _ = normalise::normalise_masked_phone(&s);
        let _ = normalise::normalise_name(&s);
        if let Some(a) = normalise::normalise_address(&s) {
            prop_assert!(a.pieces.len() <= normalise::MAX_ADDRESS_PIECES);
            for p in a.pieces {
                let _ = normalise::piece_text(p);
            }
        }
        let _ = normalise::parse_record_time(&s);
        let _ = normalise::parse_sample_time(&s, year);
        let _ = normalise::canonical_city(&s);
        let _ = normalise::half_width(&s);
    }

    #[test]
    fn normalisation_of_phone_like_text_never_panics(s in "[+0-9０-９ ()*x●-]{0,30}") {
        let _ = normalise::normalise_phone(&s);
        let _ = normalise::normalise_masked_phone(&s);
        let _ = normalise::parse_sample_time(&s, 2024);
        let b = Blinder::new(&key());
        let _ = b.tokens(Some(&s), Some(&s), Some(&s), Some(&s), &mut blind::TokenCache::default());
    }
}

/// CPU seconds (user + system) this process has used so far (Linux, 100 ticks a second).
fn cpu_secs() -> f64 {
    fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the parenthesised command name; utime and stime are 14th and 15th.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let u: f64 = f.get(11)?.parse().ok()?;
            let k: f64 = f.get(12)?.parse().ok()?;
            Some((u + k) / 100.0)
        })
        .unwrap_or(0.0)
}

/// Peak resident memory of this process (Linux), in MiB.
fn peak_rss_mib() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}

/// Import rate and index size at ten million records, and the time to check 5,000 rows.
/// Run with `cargo test --release -- --ignored bench_ten_million --nocapture`
/// (`LEAKWATCH_BENCH_RECORDS` changes the count, `LEAKWATCH_BENCH_DIR` the scratch place).
#[test]
#[ignore]
fn bench_ten_million() {
    let n: u64 = std::env::var("LEAKWATCH_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let base = std::env::var("LEAKWATCH_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    let tmp = tempfile::tempdir_in(base).expect("tempdir");
    let records = tmp.path().join("orders.csv");
    let t = Instant::now();
    // A partner leak: its pool is large enough for a full 5,000-row sample.
    let truth = generator::write_records_csv(&records, n, 99, Plant::Partner).expect("generate");
    let csv_bytes = fs::metadata(&records).expect("meta").len();
    eprintln!(
        "generated {} records ({:.1} MiB) in {:.1}s",
        truth.records,
        csv_bytes as f64 / 1048576.0,
        t.elapsed().as_secs_f64()
    );
    let rss_before = peak_rss_mib();
    let dir = tmp.path().join("index");
    let t = Instant::now();
    let cpu0 = cpu_secs();
    let report = LocalIndex::import(&dir, &key(), &records, &no_progress).expect("import");
    let secs = t.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu0;
    assert_eq!(report.imported, truth.records);
    let t = Instant::now();
    let k = key();
    let index = LocalIndex::open(&dir, &k).expect("open");
    let open_secs = t.elapsed().as_secs_f64();
    eprintln!(
        "import: {} records in {:.1}s = {:.0} records/s, {:.2} CPU-µs/record ({:.1} CPU-s); index {:.1} MiB ({:.0} B/record); peak RSS {} MiB (after generation {} MiB); open {:.3}s",
        report.imported,
        secs,
        report.imported as f64 / secs,
        cpu * 1e6 / report.imported as f64,
        cpu,
        index.size_bytes() as f64 / 1048576.0,
        index.size_bytes() as f64 / report.imported as f64,
        peak_rss_mib(),
        rss_before,
        open_secs
    );
    let (rows, gt) = generator::sample(&truth, 5_000, 100);
    let m = Matcher::new(&index, &k);
    let t = Instant::now();
    let r = m.check(&rows, truth.year).expect("check");
    let first = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let r2 = m.check(&rows, truth.year).expect("check");
    let second = t.elapsed().as_secs_f64();
    assert_eq!(r, r2);
    let ids: HashSet<&str> = r.order_ids.iter().map(String::as_str).collect();
    let q = quality(&rows, &gt, &r, &oracle_for(&records, Some(&ids)));
    eprintln!(
        "check {} rows: {:.2}s (cold), {:.2}s (warm); matched {} rows, {} customers, {} orders; precision {:.4} recall {:.4}; top suspect {:?} {} lift {:.1}",
        rows.len(),
        first,
        second,
        r.rows_matched,
        r.distinct_customers,
        r.distinct_orders,
        q.precision(),
        q.recall(),
        r.attribution.first().map(|s| (&s.actor_kind, &s.actor_id)),
        r.attribution.first().map(|s| s.touched).unwrap_or(0),
        r.attribution.first().map(|s| s.lift).unwrap_or(0.0)
    );
}
