//! `leakwatch serve`: the long-running process. Today it keeps the evidence store open and signs
//! checkpoints on schedule; later stages (adapters, capture, API) hang off the same loop.

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::evidence::{Evidence, EvidenceError};

/// Sign a checkpoint if entries were added since the latest one. Returns the new tree size
/// when one was signed.
pub fn checkpoint_if_new(ev: &Evidence) -> Result<Option<u64>, EvidenceError> {
    let size = ev.ledger.size();
    let latest = ev.ledger.latest_checkpoint()?.map(|c| c.checkpoint.size);
    if size == 0 || latest == Some(size) {
        return Ok(None);
    }
    let signed = ev.ledger.sign_checkpoint()?;
    Ok(Some(signed.checkpoint.size))
}

/// Run until SIGINT or SIGTERM, then sign a last checkpoint and return.
pub async fn run(ev: Arc<Evidence>, config: Config) -> Result<(), EvidenceError> {
    let mut tick = tokio::time::interval(Duration::from_secs(config.ledger.checkpoint_interval_s));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| EvidenceError::Key {
            path: "signal handler".into(),
            detail: e.to_string(),
        })?;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let ev = ev.clone();
                match tokio::task::spawn_blocking(move || checkpoint_if_new(&ev)).await {
                    Ok(Ok(Some(size))) => tracing::info!(size, "checkpoint signed"),
                    Ok(Ok(None)) => {}
                    Ok(Err(e)) => tracing::error!("checkpoint failed: {e}"),
                    Err(e) => tracing::error!("checkpoint task failed: {e}"),
                }
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    tracing::info!("shutting down");
    let ev2 = ev.clone();
    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || checkpoint_if_new(&ev2)).await {
        tracing::error!("final checkpoint failed: {e}");
    }
    ev.state.flush()?;
    Ok(())
}
