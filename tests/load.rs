//! The API under load (bounded: 5 s of `wrk` on loopback against the case list and the review
//! queue): no errors, and the server's memory stays flat. The figures for the README come from
//! `leakwatch bench api` (60 s), not from here.

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_list_and_queue_under_wrk_answer_without_errors_and_memory_stays_flat() {
    let dir = tempfile::tempdir().unwrap();
    let f = tokio::time::timeout(
        Duration::from_secs(60),
        leakwatch::bench::api_load(&dir.path().join("load"), 5, 16),
    )
    .await
    .expect("load run bounded")
    .unwrap();
    assert!(f.requests > 0);
    assert_eq!(f.errors, 0, "{f:?}");
    // Flat: a leak per request would show as growth proportional to the requests served.
    let growth = f.rss_end.saturating_sub(f.rss_after_warmup);
    assert!(
        growth < 32 << 20,
        "memory grew {} MB over {} requests: {f:?}",
        growth >> 20,
        f.requests
    );
}

#[test]
fn wrk_reports_are_read_correctly() {
    let out = "Running 5s test @ http://127.0.0.1:1\n  2 threads and 16 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency     1.10ms  300.00us   9.00ms   80.00%\n  Latency Distribution\n     50%  850.00us\n     75%    1.20ms\n     90%    1.50ms\n     99%    2.10ms\n  40000 requests in 5.00s, 10.00MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\n  Non-2xx or 3xx responses: 4\nRequests/sec:   8000.00\nTransfer/sec:      2.00MB\n";
    let (n, rps, p50, p99, errors) = leakwatch::bench::parse_wrk(out).unwrap();
    assert_eq!((n, errors), (40000, 7));
    assert!((rps - 8000.0).abs() < 1e-9 && (p50 - 0.85).abs() < 1e-9 && (p99 - 2.1).abs() < 1e-9);
    assert!(leakwatch::bench::parse_wrk("garbage").is_err());
}
