//! Trusted time end to end: `serve` signs checkpoints on schedule and sends each to the
//! configured RFC 3161 TSAs — a real local one (`openssl ts -reply`) and a misbehaving one. The
//! stored token verifies with `openssl ts -verify` as an outside party would; the bad TSA is
//! recorded, retried, and never blocks anything.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::tsa::LocalTsa;
use leakwatch::evidence::Evidence;
use leakwatch::ledger::entry::EntryBody;

use common::free_port;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_are_timestamped_and_verify_with_openssl() {
    let good = LocalTsa::start().await;
    let bad = LocalTsa::start_wrong_nonce().await;
    let s = common::Scratch::new(&format!(
        "checkpoint_interval_s = 1\n[timestamp]\nretry_s = 1\ntimeout_s = 10\n[[timestamp.tsa]]\nurl = \"{}\"\n[[timestamp.tsa]]\nurl = \"{}\"\n[api]\nlisten = \"127.0.0.1:{}\"\n",
        good.url,
        bad.url,
        free_port()
    ));
    let config = s.config();
    let ev = Arc::new(Evidence::open(&config, &|_, _| {}).unwrap());
    // The misbehaving TSA answers every request with its first token: prime it with another
    // request so even the first checkpoint gets a wrong nonce from it.
    let _ = leakwatch::timestamp::TsaClient::new(Duration::from_secs(5))
        .unwrap()
        .timestamp(&bad.url, b"prime")
        .await;
    tokio::task::block_in_place(|| {
        leakwatch::intake::submit(&ev, "qq:800000001", Some("tsa test"), "cli:test")
    })
    .unwrap();
    let running = leakwatch::service::start(ev.clone(), &config)
        .await
        .unwrap();

    // Wait for a good token and at least two recorded failures of the bad TSA (one retry).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (token, size, failures) = loop {
        let mut token = None;
        let mut failures = Vec::new();
        for i in 0..ev.ledger.size() {
            if let EntryBody::Timestamped {
                checkpoint_size,
                tsa,
                token: t,
                error,
                ..
            } = ev.ledger.read_entry(i).unwrap().body
            {
                if tsa == good.url
                    && let Some(t) = t
                {
                    token = Some((t, checkpoint_size));
                }
                if tsa == bad.url {
                    failures.push(error.unwrap_or_default());
                }
            }
        }
        if let (Some((t, size)), true) = (&token, failures.len() >= 2) {
            break (t.clone(), *size, failures);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no token / retries: {token:?} {failures:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for f in &failures {
        assert!(f.contains("nonce") || f.contains("imprint"), "{f}");
    }

    // An outside party: the exact checkpoint bytes, the .tsr, the CA — and openssl.
    let note = std::fs::read(
        s.data_root()
            .join("ledger/checkpoints")
            .join(leakwatch::ledger::checkpoint_file_name(size)),
    )
    .unwrap();
    let der = ev.blobs.get(&token.sha256).unwrap();
    let (ok, out) = good.openssl_verify(&note, &der);
    assert!(ok, "openssl ts -verify failed: {out}");
    let (ok, _) = good.openssl_verify(b"some other checkpoint", &der);
    assert!(!ok, "a token must not verify for other data");

    // Time-stamp entries alone do not cause new checkpoints (no endless chase).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = ev.ledger.checkpoints().unwrap().len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after = ev.ledger.checkpoints().unwrap().len();
    assert_eq!(
        before, after,
        "checkpoints kept being signed with nothing new to cover"
    );
    drop(running);
}
