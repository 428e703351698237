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
