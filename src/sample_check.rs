//! Checking samples against the platform's order records, and recording what was found.
//!
//! The bridge between extraction and `matching`: it turns extracted rows into matcher input,
//! runs the configured [`RecordSource`] (the local blind index, or a remote tokens-only lookup),
//! and records a `matched` ledger entry whose full report is an encrypted blob. A match with at
//! least one verified row becomes a finding in `state` (the review stage picks it up).
//!
//! The blind-index key is loaded here and handed to the matcher; it never reaches the ledger,
//! a log line or an error message.

use std::path::PathBuf;

use chrono::Datelike;

use crate::blobs::BlobId;
use crate::config::Config;
use crate::evidence::{Evidence, EvidenceError, load_secret_key};
use crate::extract::SampleRow;
use crate::ledger::entry::{BlobRef, EntryBody, LedgerEntry, timestamp};
use crate::matching::{
    BlindKey, LocalIndex, MatchError, MatchReport, Matcher, RecordSource, RemoteSource, SampleInput,
};

/// Written into every `matched` entry: bump when results would change.
pub const MATCHER_VERSION: &str = "match/1";

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{0}")]
    Match(#[from] MatchError),
    #[error("{0}")]
    Evidence(#[from] EvidenceError),
    #[error(
        "no record source: run `leakwatch records import FILE` first (or set matching.remote_url)"
    )]
    NoSource,
}

pub struct SampleChecker {
    source: Box<dyn RecordSource>,
    key: BlindKey,
    label: String,
}

/// Where the local index lives.
pub fn index_dir(config: &Config) -> PathBuf {
    config.data_root.join(&config.matching.index_dir)
}

/// The blind-index key; with `may_create`, a new one is made when none exists yet (first import).
pub fn blind_key(config: &Config, may_create: bool) -> Result<BlindKey, EvidenceError> {
    let bytes = load_secret_key(
        &config.matching.key_env,
        &config.data_root.join(&config.matching.key_file),
        may_create,
        "the blind index cannot be used without the key it was built with",
    )?;
    Ok(BlindKey::new(bytes))
}

/// True when a local index has been imported.
pub fn local_index_exists(config: &Config) -> bool {
    index_dir(config).join("manifest.json").exists()
}

impl SampleChecker {
    /// The configured source: the remote lookup when `matching.remote_url` is set, else the local
    /// index. `Ok(None)` when neither is available yet.
    pub fn from_config(config: &Config) -> Result<Option<SampleChecker>, CheckError> {
        if let Some(url) = &config.matching.remote_url {
            let token = std::env::var(&config.matching.remote_token_env).unwrap_or_default();
            let key = blind_key(config, false)?;
            return Ok(Some(SampleChecker {
                source: Box::new(RemoteSource::new(url, &token)?),
                key,
                label: url.clone(),
            }));
        }
        if !local_index_exists(config) {
            return Ok(None);
        }
        let key = blind_key(config, false)?;
        let index = LocalIndex::open(&index_dir(config), &key)?;
        Ok(Some(SampleChecker {
            source: Box::new(index),
            key,
            label: "local".into(),
        }))
    }

    /// Check rows against the records (no recording).
    pub fn check(&self, rows: &[SampleRow]) -> Result<MatchReport, CheckError> {
        let inputs: Vec<SampleInput> = rows.iter().map(to_input).collect();
        let year = chrono::Utc::now().year();
        Ok(Matcher::new(self.source.as_ref(), &self.key).check(&inputs, year)?)
    }

    /// Check rows and record the result as a `matched` entry (a finding when anything matched).
    /// Returns the entry's index and the report.
    pub fn check_and_record(
        &self,
        ev: &Evidence,
        actor: &str,
        case: Option<&str>,
        extraction: Option<u64>,
        input: BlobId,
        rows: &[SampleRow],
    ) -> Result<(u64, MatchReport), CheckError> {
        let report = self.check(rows)?;
        let bytes = serde_json::to_vec(&report).unwrap_or_default();
        let report_ref = BlobRef {
            sha256: ev.blobs.put(&bytes).map_err(EvidenceError::from)?,
            size: bytes.len() as u64,
            media_type: "application/json".into(),
            // Order ids tie the report to real customers: handle it like personal data.
            pii: true,
        };
        let at = |t: Option<i64>| {
            t.and_then(|s| chrono::DateTime::from_timestamp(s, 0))
                .map(timestamp)
        };
        let body = EntryBody::Matched {
            case: case.map(str::to_string),
            extraction,
            input,
            source: self.label.clone(),
            matcher: MATCHER_VERSION.into(),
            rows_checked: report.rows_checked,
            rows_matched: report.rows_matched,
            distinct_customers: report.distinct_customers,
            distinct_orders: report.distinct_orders,
            first_order_at: at(report.first_order_at),
            last_order_at: at(report.last_order_at),
            canary_partners: report
                .canary_hits
                .iter()
                .map(|c| c.partner.clone())
                .collect(),
            suspects: report
                .attribution
                .iter()
                .take(5)
                .map(|s| {
                    format!(
                        "{}:{} lift {:.1} ({} orders)",
                        s.actor_kind, s.actor_id, s.lift, s.touched
                    )
                })
                .collect(),
            report: report_ref,
        };
        let index = ev.record(&LedgerEntry::new(actor, body))?;
        Ok((index, report))
    }
}

/// Extracted row → matcher input.
pub fn to_input(row: &SampleRow) -> SampleInput {
    SampleInput {
        name: row.name.clone(),
        phone: row.phone.clone(),
        masked_phone: row.masked_phone.clone(),
        address: row.address.clone(),
        order_time: row.order_time.clone(),
    }
}
