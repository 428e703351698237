//! Matching through the command line, as an investigator would: import records, check a sample
//! file a seller posted, read the result — and the blind index and ledger never hold the raw
//! personal data of the records.

mod common;

use std::fs;

use leakwatch::matching::generator::{self, Plant};

/// A sample file as sellers post them: one row per line.
fn write_sample(path: &std::path::Path, rows: &[leakwatch::matching::SampleInput]) {
    let text: Vec<String> = rows
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                r.phone.clone().or(r.masked_phone.clone()),
                r.address.clone(),
                r.order_time.clone(),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ")
        })
        .collect();
    fs::write(path, text.join("\n")).unwrap();
}

fn all_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn import_then_match_names_the_planted_rider_and_stores_no_raw_pii() {
    let s = common::Scratch::new("");
    let records = s.dir.path().join("orders.csv");
    let truth = generator::write_records_csv(&records, 10_000, 7, Plant::Rider).unwrap();
    let out = s.ok(&["records", "import", records.to_str().unwrap()]);
    assert!(out.contains("skipped"), "{out}");

    let (rows, ground) = generator::sample(&truth, 300, 11);
    let sample = s.dir.path().join("样本.txt");
    write_sample(&sample, &rows);
    let out = s.ok(&["match", sample.to_str().unwrap()]);
    let (kind, id) = ground.planted.clone().unwrap();
    let first_suspect = out
        .lines()
        .find(|l| l.starts_with("suspect "))
        .unwrap_or("");
    assert!(
        first_suspect.contains(&format!("{kind}:{id}")),
        "planted {kind}:{id} not first:\n{out}"
    );
    let real = ground.rows.iter().filter(|r| r.is_some()).count();
    let matched: u64 = out
        .lines()
        .next()
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|x| x.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(
        matched as f64 >= real as f64 * 0.9,
        "{matched} of {real} real rows matched:\n{out}"
    );

    // The run is a ledger entry, and it verifies.
    let dump = s.ok(&["ledger", "dump"]);
    assert!(dump.contains("\tmatched\t"), "{dump}");
    assert!(s.ok(&["ledger", "verify"]).starts_with("ok:"));

    // Neither the index nor the ledger holds a raw phone, name or address of the records.
    let mut files = all_files(&s.data_root().join("matching"));
    files.extend(all_files(&s.data_root().join("ledger")));
    let needles: Vec<String> = truth
        .pool
        .iter()
        .take(200)
        .flat_map(|o| [o.phone.clone(), o.address.clone(), o.name.clone()])
        .filter(|n| n.chars().count() >= 3)
        .collect();
    for f in files {
        // Lossy decoding keeps every valid UTF-8 run intact, so a raw value stored in the
        // file would still be found by `contains`.
        let text = String::from_utf8_lossy(&fs::read(&f).unwrap()).into_owned();
        for n in &needles {
            assert!(
                !text.contains(n.as_str()),
                "{} holds raw personal data ({n})",
                f.display()
            );
        }
    }
}

#[test]
fn bad_records_wrong_key_and_empty_samples_are_clear_errors() {
    let s = common::Scratch::new("");
    let records = s.dir.path().join("orders.csv");
    fs::write(
        &records,
        "order_id,created_at,city,customer_name,customer_phone,address,merchant_id,rider_id,delivery_partner\n\
         W1,2026-11-01T10:00:00+08:00,北京,张伟,13812345678,北京市海淀区中关村大街1号,M1,R1,蜂鸟即配\n\
         W2,not a date,北京,李娜,13912345678,北京市朝阳区建国路2号,M1,R1,蜂鸟即配\n\
         W3,2026-11-02T10:00:00+08:00,北京\n",
    )
    .unwrap();
    let out = s.ok(&["records", "import", records.to_str().unwrap()]);
    assert!(
        out.contains("line 3") && out.contains("line 4"),
        "malformed rows named by line: {out}"
    );

    // Not a records file at all.
    let junk = s.dir.path().join("junk.bin");
    fs::write(&junk, [0xffu8, 0xfe, 0x00, 0x01].repeat(100)).unwrap();
    let out = s.run(&["records", "import", junk.to_str().unwrap()]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success() || text.contains("skipped"), "{text}");

    // A sample with no rows.
    let empty = s.dir.path().join("chatter.txt");
    fs::write(&empty, "有人吗\n今天的数据什么时候发\n").unwrap();
    let err = s.fails(&["match", empty.to_str().unwrap()]);
    assert!(err.contains("no sample rows"), "{err}");

    // With the right key it matches.
    let sample = s.dir.path().join("s.txt");
    fs::write(
        &sample,
        "张伟 13812345678 北京市海淀区中关村大街1号 11-01 10:00\n",
    )
    .unwrap();
    let out = s.ok(&["match", sample.to_str().unwrap()]);
    assert!(out.contains("1 rows checked, 1 matched"), "{out}");

    // The wrong key is refused, and nothing is recorded.
    let before = s.ok(&["ledger", "dump"]);
    let out = s
        .cmd(&["match", sample.to_str().unwrap()])
        .env("LEAKWATCH_INDEX_KEY", "22".repeat(32))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.to_lowercase().contains("key"), "{err}");
    assert_eq!(before, s.ok(&["ledger", "dump"]));
}
