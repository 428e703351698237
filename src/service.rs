//! `leakwatch serve`: the long-running process.
//!
//! It opens the evidence store, starts the built-in simulator when the config asks for it,
//! connects the configured chat adapters (OneBot; Telegram when `[adapters.telegram]` is
//! enabled), runs capture (a monitor per open case), serves the intake API, starts the staff
//! bot when `[staffbot]` is enabled, and signs a checkpoint on schedule — each one sent to the
//! configured RFC 3161 time-stamp authorities — until SIGINT or SIGTERM. A TSA that fails is recorded and retried;
//! it never holds up capture.

use std::sync::Arc;
use std::time::Duration;

use crate::adapters::onebot::OneBotAdapter;
use crate::adapters::telegram::TelegramAdapter;
use crate::adapters::telegram::api::BotToken;
use crate::adapters::{AdapterError, ChatAdapter, GroupRef, Platform, SubmittedGroups};
use crate::capture::{CaptureError, CaptureService, CaptureSettings};
use crate::config::Config;
use crate::evidence::{Evidence, EvidenceError};
use crate::ledger::entry::{BlobRef, EntryBody, LedgerEntry};
use crate::review::{Review, ReviewSettings};
use crate::simulator::scenario::{Scenario, ScenarioError};
use crate::simulator::{SimError, SimOptions, Simulator};
use crate::staffbot::{StaffBot, StaffDeps};
use crate::timestamp::TsaClient;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    Evidence(#[from] EvidenceError),
    #[error("{0}")]
    Adapter(#[from] AdapterError),
    #[error("{0}")]
    Capture(#[from] CaptureError),
    #[error("{0}")]
    Scenario(#[from] ScenarioError),
    #[error("{0}")]
    Simulator(#[from] SimError),
    #[error("{0}")]
    Intake(#[from] crate::intake::IntakeError),
    #[error("{what}: {message}")]
    Start { what: String, message: String },
}

/// Sign a checkpoint if entries other than time-stamp records were added since the latest one
/// (a time-stamp entry must not itself trigger a new checkpoint, or they would chase each other
/// forever). Returns the signed checkpoint.
pub fn checkpoint_if_new(
    ev: &Evidence,
) -> Result<Option<crate::ledger::SignedCheckpoint>, EvidenceError> {
    let size = ev.ledger.size();
    let latest = ev
        .ledger
        .latest_checkpoint()?
        .map(|c| c.checkpoint.size)
        .unwrap_or(0);
    if size == 0 || latest >= size {
        return Ok(None);
    }
    let mut substantive = false;
    for i in latest..size {
        if !matches!(ev.ledger.read_entry(i)?.body, EntryBody::Timestamped { .. }) {
            substantive = true;
            break;
        }
    }
    if !substantive {
        return Ok(None);
    }
    Ok(Some(ev.ledger.sign_checkpoint()?))
}

/// Send a signed checkpoint to every TSA and record each answer (or failure). Returns the TSAs
/// that failed, to be retried.
pub async fn timestamp_checkpoint(
    ev: &Arc<Evidence>,
    client: &TsaClient,
    size: u64,
    note: &str,
    tsas: &[String],
) -> Vec<String> {
    let mut failed = Vec::new();
    for url in tsas {
        let body = match client.timestamp(url, note.as_bytes()).await {
            Ok(ts) => {
                let chain_pem: String = ts
                    .certificates
                    .iter()
                    .map(|c| pem("CERTIFICATE", c))
                    .collect();
                let put = |bytes: &[u8], media: &str| -> Result<BlobRef, EvidenceError> {
                    Ok(BlobRef {
                        sha256: ev.blobs.put(bytes)?,
                        size: bytes.len() as u64,
                        media_type: media.into(),
                        pii: false,
                    })
                };
                match (
                    put(&ts.response_der, "application/timestamp-reply"),
                    put(chain_pem.as_bytes(), "application/x-pem-file"),
                ) {
                    (Ok(token), Ok(chain)) => EntryBody::Timestamped {
                        checkpoint_size: size,
                        tsa: url.clone(),
                        token: Some(token),
                        chain: (!ts.certificates.is_empty()).then_some(chain),
                        gen_time: Some(ts.info.gen_time.clone()),
                        error: None,
                    },
                    (Err(e), _) | (_, Err(e)) => {
                        tracing::error!("storing a time-stamp token failed: {e}");
                        failed.push(url.clone());
                        continue;
                    }
                }
            }
            Err(e) => {
                tracing::warn!("time-stamping checkpoint {size} at {url} failed: {e}");
                failed.push(url.clone());
                EntryBody::Timestamped {
                    checkpoint_size: size,
                    tsa: url.clone(),
                    token: None,
                    chain: None,
                    gen_time: None,
                    error: Some(e.to_string()),
                }
            }
        };
        if let Err(e) = ev
            .record_async(&LedgerEntry::new("system:timestamp", body))
            .await
        {
            tracing::error!("recording a time-stamp failed: {e}");
        }
    }
    failed
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// Everything `serve` runs, started.
pub struct Running {
    pub ev: Arc<Evidence>,
    pub capture: Arc<CaptureService>,
    pub simulator: Option<Simulator>,
    pub api_addr: std::net::SocketAddr,
    /// The review queue: one per process, so its lock serialises every review surface.
    pub review: Arc<Review>,
    pub dispatcher: Arc<crate::filing::dispatch::Dispatcher>,
    /// The staff bot, when `[staffbot]` is enabled (it stops when this is dropped).
    pub staffbot: Option<Arc<StaffBot>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A bot token from the environment, or a start error naming the variable (never the token).
fn bot_token(what: &str, env: &str) -> Result<BotToken, ServiceError> {
    BotToken::from_env(env).map_err(|e| ServiceError::Start {
        what: what.into(),
        message: e.to_string(),
    })
}

/// Start everything the config turns on.
pub async fn start(ev: Arc<Evidence>, config: &Config) -> Result<Running, ServiceError> {
    // Bot tokens first: a missing one stops the start before anything runs.
    let tg = &config.adapters.telegram;
    let tg_token = if tg.enabled {
        Some(bot_token("adapters.telegram", &tg.token_env)?)
    } else {
        None
    };
    let staff_token = if config.staffbot.enabled {
        Some(bot_token("staffbot", &config.staffbot.token_env)?)
    } else {
        None
    };
    let mut tasks = Vec::new();
    let simulator = if config.simulator.enabled {
        let scenario = Scenario::load(config.simulator.scenario.as_deref().filter(|p| p.exists()))?;
        let sim = Simulator::start(
            &config.simulator.listen,
            scenario,
            SimOptions {
                token: config.simulator.token.clone(),
                autopost: true,
                ..Default::default()
            },
        )
        .await?;
        tracing::info!(addr = %sim.addr, "built-in simulator running");
        Some(sim)
    } else {
        None
    };

    // The demo's intake comes first, as staff submit a group before inviting the bot into it.
    if simulator.is_some() && config.simulator.submit_groups {
        let scenario = Scenario::load(config.simulator.scenario.as_deref().filter(|p| p.exists()))?;
        for g in &scenario.groups {
            let link = format!("qq:{}", g.id);
            let ev2 = ev.clone();
            tokio::task::spawn_blocking(move || {
                crate::intake::submit(
                    &ev2,
                    &link,
                    Some("demo: a group of the built-in simulator"),
                    "system:demo",
                )
            })
            .await
            .map_err(|e| ServiceError::Start {
                what: "demo intake".into(),
                message: e.to_string(),
            })??;
        }
    }

    // Groups of open cases: the only groups whose invitations are accepted.
    let submitted = Arc::new(SubmittedGroups::default());
    for case in ev.state.cases().map_err(EvidenceError::from)? {
        if case.ended.is_none() {
            submitted.add(GroupRef {
                platform: if case.platform == "telegram" {
                    Platform::Telegram
                } else {
                    Platform::Qq
                },
                id: case.group_id,
            });
        }
    }
    let mut adapters: Vec<Arc<dyn ChatAdapter>> = Vec::new();
    for ob in &config.adapters.onebot {
        let adapter = OneBotAdapter::start(ob.clone(), submitted.clone()).await?;
        adapters.push(Arc::new(adapter));
    }
    if let Some(token) = tg_token {
        let adapter =
            TelegramAdapter::start(tg.clone(), token, submitted.clone()).map_err(|e| {
                ServiceError::Start {
                    what: "adapters.telegram".into(),
                    message: e.to_string(),
                }
            })?;
        adapters.push(Arc::new(adapter));
    }
    // Demo: the simulator's synthetic orders become the platform records to check against
    // (again when an earlier build imported them in an older index format).
    if let (Some(sim), true) = (&simulator, config.simulator.import_records) {
        import_simulator_records(sim, config).await?;
    }
    let checker = if config.matching.auto {
        match crate::sample_check::SampleChecker::from_config(config) {
            Ok(c) => c.map(Arc::new),
            Err(e) => {
                tracing::warn!("samples will not be checked against records: {e}");
                None
            }
        }
    } else {
        None
    };
    let capture = CaptureService::new(
        ev.clone(),
        adapters,
        CaptureSettings {
            snapshot_interval: Duration::from_secs(config.capture.snapshot_interval_s.max(1)),
            join_retry: Duration::from_secs(config.capture.join_retry_s.max(1)),
        },
        checker,
    );
    tasks.extend(capture.start()?);

    let review = Arc::new(Review::new(ev.clone(), ReviewSettings::from_config(config)));
    config.filing.validate().map_err(|e| ServiceError::Start {
        what: "filing routes".into(),
        message: e.to_string(),
    })?;
    let mut filing = config.filing.clone();
    filing.resolve_dirs(&config.data_root);
    let dispatcher = crate::filing::dispatch::Dispatcher::new(ev.clone(), filing);
    tasks.push(dispatcher.spawn());
    tasks.push(crate::tracking::spawn(
        ev.clone(),
        capture.clone(),
        config.tracking.clone(),
    ));
    let operator = crate::api::operator_token(config, true)
        .map_err(|e| ServiceError::Start {
            what: "operator token".into(),
            message: e.to_string(),
        })?
        .unwrap_or_default();
    let api = Arc::new(crate::api::ApiContext::new(
        capture.clone(),
        submitted.clone(),
        review.clone(),
        dispatcher.clone(),
        Arc::new(config.clone()),
        &operator,
    ));
    let (api_addr, api_task) = crate::api::serve(api).await?;
    tasks.push(api_task);

    let staffbot = if let Some(token) = staff_token {
        let bot = StaffBot::start(
            config.staffbot.clone(),
            token,
            StaffDeps {
                capture: capture.clone(),
                submitted: submitted.clone(),
                review: review.clone(),
                packets: config.packets.clone(),
            },
        )
        .map_err(|e| ServiceError::Start {
            what: "staffbot".into(),
            message: e.to_string(),
        })?;
        tracing::info!(chats = config.staffbot.chats.len(), "staff bot running");
        Some(Arc::new(bot))
    } else {
        None
    };

    let interval = Duration::from_secs(config.ledger.checkpoint_interval_s);
    let tsas: Vec<String> = config.timestamp.tsa.iter().map(|t| t.url.clone()).collect();
    let client =
        TsaClient::new(Duration::from_secs(config.timestamp.timeout_s.max(1))).map_err(|e| {
            ServiceError::Start {
                what: "TSA client".into(),
                message: e.to_string(),
            }
        })?;
    let retry = Duration::from_secs(config.timestamp.retry_s.max(1));
    tasks.push(tokio::spawn(checkpoint_loop(
        ev.clone(),
        interval,
        client,
        tsas,
        retry,
    )));

    Ok(Running {
        ev,
        capture,
        simulator,
        api_addr,
        review,
        dispatcher,
        staffbot,
        tasks,
    })
}

/// Import the simulator's synthetic platform orders into the local index (the demo's records),
/// unless an index is there already. An index of these same orders in an older format is
/// replaced; one of other records is left alone (capture then warns that samples go
/// unchecked until they are imported again).
async fn import_simulator_records(sim: &Simulator, config: &Config) -> Result<(), ServiceError> {
    let fail = |message: String| ServiceError::Start {
        what: "importing the simulator's records".into(),
        message,
    };
    let dir = crate::sample_check::index_dir(config);
    // A manifest that cannot be read is left to capture's warning, as an outdated one of
    // other records is.
    let present = crate::sample_check::local_index_exists(config);
    let current = crate::matching::index::status(&dir).map(|s| s["format_current"] == true);
    if present && !matches!(current, Ok(false)) {
        return Ok(());
    }
    let csv_path = config.data_root.join("simulator-records.csv");
    let mut file = std::fs::File::create(&csv_path)
        .map_err(|e| fail(format!("{}: {e}", csv_path.display())))?;
    sim.write_orders_csv(&mut file)
        .map_err(|e| fail(e.to_string()))?;
    drop(file);
    if present {
        match crate::matching::LocalIndex::discard_outdated(&dir, &csv_path) {
            Ok(true) => tracing::info!(
                "demo: the records index was of an older format; importing the simulator's orders again"
            ),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!("demo: keeping the records index: {e}");
                let _ = std::fs::remove_file(&csv_path);
                return Ok(());
            }
        }
    }
    let config = config.clone();
    let path = csv_path.clone();
    let report = tokio::task::spawn_blocking(move || -> Result<_, String> {
        let key = crate::sample_check::blind_key(&config, true).map_err(|e| e.to_string())?;
        crate::matching::LocalIndex::import(
            &crate::sample_check::index_dir(&config),
            &key,
            &path,
            &|_, _| {},
        )
        .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| fail(e.to_string()))?
    .map_err(fail)?;
    let _ = std::fs::remove_file(&csv_path);
    tracing::info!(
        orders = report.imported,
        "demo: imported the simulator's orders as platform records"
    );
    Ok(())
}

/// Sign checkpoints on schedule and time-stamp them; retry failed TSAs later.
async fn checkpoint_loop(
    ev: Arc<Evidence>,
    interval: Duration,
    client: TsaClient,
    tsas: Vec<String>,
    retry: Duration,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // (checkpoint size, note, TSAs still owed, when to retry)
    let mut owed: Vec<(u64, String, Vec<String>, tokio::time::Instant)> = Vec::new();
    loop {
        tick.tick().await;
        let ev2 = ev.clone();
        match tokio::task::spawn_blocking(move || checkpoint_if_new(&ev2)).await {
            Ok(Ok(Some(signed))) => {
                tracing::info!(size = signed.checkpoint.size, "checkpoint signed");
                if !tsas.is_empty() {
                    let failed = timestamp_checkpoint(
                        &ev,
                        &client,
                        signed.checkpoint.size,
                        &signed.note,
                        &tsas,
                    )
                    .await;
                    if !failed.is_empty() {
                        owed.push((
                            signed.checkpoint.size,
                            signed.note,
                            failed,
                            tokio::time::Instant::now() + retry,
                        ));
                    }
                }
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::error!("checkpoint failed: {e}"),
            Err(e) => tracing::error!("checkpoint task failed: {e}"),
        }
        let now = tokio::time::Instant::now();
        let mut still = Vec::new();
        for (size, note, urls, when) in owed.drain(..) {
            if when > now {
                still.push((size, note, urls, when));
                continue;
            }
            let failed = timestamp_checkpoint(&ev, &client, size, &note, &urls).await;
            if !failed.is_empty() {
                still.push((size, note, failed, now + retry));
            }
        }
        // Only the most recent checkpoints matter for retries: a later token covers earlier
        // entries too (by consistency), so keep the list short.
        if still.len() > 16 {
            still.drain(..still.len() - 16);
        }
        owed = still;
    }
}

/// Run until SIGINT or SIGTERM, then sign a last checkpoint.
pub async fn run(ev: Arc<Evidence>, config: Config) -> Result<(), ServiceError> {
    let running = start(ev.clone(), &config).await?;
    tracing::info!(
        api = %running.api_addr,
        console = %format!("http://{}/ui/", running.api_addr),
        "leakwatch serving"
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| ServiceError::Start {
            what: "signal handler".into(),
            message: e.to_string(),
        })?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    drop(running);
    let ev2 = ev.clone();
    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || checkpoint_if_new(&ev2)).await {
        tracing::error!("final checkpoint failed: {e}");
    }
    ev.state.flush().map_err(EvidenceError::from)?;
    Ok(())
}

/// Tokens the demo creates for a newcomer: one per role, two moderators for the four-eyes rule.
pub struct DemoTokens {
    pub admin: String,
    pub moderators: [String; 2],
    pub legal: String,
    pub intake: String,
}

/// Create the demo's tokens (new ones on every start; they live in the token store like any
/// other and can be revoked with `leakwatch admin token revoke`).
pub fn demo_tokens(config: &Config) -> Result<DemoTokens, crate::api::tokens::TokenError> {
    use crate::api::tokens::{Role, TokenStore};
    let store = TokenStore::new(&config.keys_dir());
    Ok(DemoTokens {
        admin: store.create(Role::Admin, "demo-admin")?.0,
        moderators: [
            store.create(Role::Moderator, "demo-moderator-1")?.0,
            store.create(Role::Moderator, "demo-moderator-2")?.0,
        ],
        legal: store.create(Role::Legal, "demo-legal")?.0,
        intake: store.create(Role::Intake, "demo-intake")?.0,
    })
}

/// One line of demo progress: what the pipeline has done so far.
pub fn progress_line(ev: &Evidence) -> Result<String, EvidenceError> {
    let st = &ev.state;
    let cases = st.cases()?;
    let joined = cases
        .iter()
        .filter(|c| c.join_status.as_deref() == Some("joined"))
        .count();
    let findings = st.findings()?;
    let open = findings.iter().filter(|f| f.open()).count();
    let packets = st.packets()?;
    let filed = packets
        .iter()
        .filter(|p| p.filing_status() == "filed")
        .count();
    Ok(format!(
        "groups joined {joined}/{}, messages captured {}, findings {} ({open} waiting for review), packets {} ({filed} filed), ledger entries {}",
        cases.len(),
        st.capture_count()?,
        findings.len(),
        packets.len(),
        ev.ledger.size(),
    ))
}

/// `leakwatch demo`: `serve` with the simulator, plus tokens, the console address and progress
/// on stdout until interrupted.
pub async fn demo(ev: Arc<Evidence>, config: Config) -> Result<(), ServiceError> {
    let tokens = demo_tokens(&config).map_err(|e| ServiceError::Start {
        what: "demo tokens".into(),
        message: e.to_string(),
    })?;
    let running = start(ev.clone(), &config).await?;
    let url = format!("http://{}/ui/", running.api_addr);
    println!("leakwatch demo");
    println!("  console      : {url}");
    println!(
        "  API          : http://{}/api/v1/ (OpenAPI at /openapi.json)",
        running.api_addr
    );
    println!("  log in with one of these tokens (shown once; also valid as API bearer tokens):");
    println!("    admin      : {}", tokens.admin);
    println!("    moderator 1: {}", tokens.moderators[0]);
    println!(
        "    moderator 2: {}  (police packets need a second moderator)",
        tokens.moderators[1]
    );
    println!("    legal      : {}", tokens.legal);
    println!("    intake     : {}", tokens.intake);
    println!(
        "  packets are filed into {}",
        config.data_root.join("packets/outbox").display()
    );
    println!(
        "  Ctrl-C stops; the evidence stays in {}",
        config.data_root.display()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| ServiceError::Start {
            what: "signal handler".into(),
            message: e.to_string(),
        })?;
    let mut last = String::new();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {
                let ev2 = ev.clone();
                if let Ok(Ok(line)) = tokio::task::spawn_blocking(move || progress_line(&ev2)).await
                    && line != last
                {
                    println!("  {line}");
                    last = line;
                }
            }
        }
    }
    drop(running);
    let ev2 = ev.clone();
    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || checkpoint_if_new(&ev2)).await {
        tracing::error!("final checkpoint failed: {e}");
    }
    ev.state.flush().map_err(EvidenceError::from)?;
    Ok(())
}
