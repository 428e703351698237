//! Crash safety as a user would hit it: the real binary appends as fast as it can and is killed
//! with SIGKILL at random moments; every entry it acknowledged must survive byte for byte.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use rand::{Rng, SeedableRng};

#[test]
fn kill_9_never_loses_an_acknowledged_entry() {
    let s = common::Scratch::new("");
    let seed: u64 = rand::random();
    eprintln!("kill -9 test seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut acked: BTreeMap<u64, String> = BTreeMap::new();

    for round in 0..24 {
        let mut child = s
            .cmd(&[
                "ledger",
                "append-synthetic",
                "--count",
                "100000000",
                "--threads",
                "8",
                "--blob-every",
                "7",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn appender");
        let stdout = child.stdout.take().expect("stdout");
        let (first_ack_tx, first_ack) = std::sync::mpsc::channel::<()>();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(l) => {
                        if lines.is_empty() {
                            let _ = first_ack_tx.send(());
                        }
                        lines.push(l)
                    }
                    Err(_) => break,
                }
            }
            lines
        });
        if round % 2 == 0 {
            // Mid-stream: once appends flow, at a random moment.
            let _ = first_ack.recv_timeout(Duration::from_secs(20));
            std::thread::sleep(Duration::from_millis(rng.gen_range(0..200)));
        } else {
            // Anywhere, including while the previous torn tail is being recovered on open.
            std::thread::sleep(Duration::from_millis(rng.gen_range(0..400)));
        }
        child.kill().expect("kill -9"); // SIGKILL on unix
        let _ = child.wait();
        let lines = reader.join().expect("reader");
        let mut this_round = 0;
        for l in lines {
            let mut parts = l.split_whitespace();
            if parts.next() != Some("ack") {
                continue;
            }
            let index: u64 = parts.next().and_then(|x| x.parse().ok()).expect("index");
            let hash = parts.next().expect("hash").to_string();
            if let Some(prev) = acked.insert(index, hash.clone()) {
                panic!("round {round}: index {index} acknowledged twice ({prev} then {hash})");
            }
            this_round += 1;
        }
        eprintln!("round {round}: {this_round} acknowledged");
    }
    assert!(
        acked.len() > 100,
        "too few appends to mean anything: {}",
        acked.len()
    );

    // Read-only verify must pass even with a torn tail left by the last kill.
    let verify = s.ok(&["ledger", "verify"]);
    assert!(verify.starts_with("ok:"), "{verify}");

    // Every acknowledged index is present with the same bytes (same leaf hash).
    let dump = s.ok(&["ledger", "dump", "--json"]);
    let mut present: BTreeMap<u64, String> = BTreeMap::new();
    for line in dump.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json line");
        present.insert(
            v["index"].as_u64().expect("index"),
            v["leaf"].as_str().expect("leaf").to_string(),
        );
    }
    for (index, hash) in &acked {
        assert_eq!(
            present.get(index),
            Some(hash),
            "acknowledged entry {index} lost or changed"
        );
    }
    // No gaps: indexes run 0..n.
    let n = present.len() as u64;
    assert_eq!(
        present.keys().copied().collect::<Vec<_>>(),
        (0..n).collect::<Vec<_>>()
    );

    // A writable open cuts any torn tail; then a checkpoint and a full verify still pass.
    s.ok(&["ledger", "checkpoint"]);
    let verify = s.ok(&["ledger", "verify"]);
    assert!(verify.starts_with(&format!("ok: {n} entries")), "{verify}");
}
