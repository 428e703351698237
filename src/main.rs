//! The `leakwatch` command line. Parsing and printing only: the work is done by the library.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use base64::Engine;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use leakwatch::blobs::BlobId;
use leakwatch::config::Config;
use leakwatch::evidence::{self, Evidence};
use leakwatch::ledger::entry::{BlobRef, EntryBody, LedgerEntry};
use leakwatch::ledger::{AppendPolicy, Ledger, verify};
use leakwatch::state::State;

#[derive(Parser)]
#[command(
    name = "leakwatch",
    version,
    about = "Preserve and act on chat groups selling stolen delivery-platform customer data"
)]
struct Cli {
    /// Configuration file (default: config/default.toml, or the embedded default).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything the config turns on (today: the evidence store and the checkpoint
    /// schedule) until interrupted.
    Serve,
    /// The whole flow against the built-in simulator on the embedded default: its groups are
    /// submitted, captured, checked against its orders and turned into findings; prints the
    /// console URL, one-time tokens and progress until interrupted.
    Demo,
    /// Submit a group link (QQ group number, QQ invite link, t.me link) for capture.
    Submit {
        link: String,
        /// Why this group was submitted (kept with the case).
        #[arg(long)]
        note: Option<String>,
    },
    /// Platform order records: the blind index samples are checked against.
    #[command(subcommand)]
    Records(RecordsCommand),
    /// Check a sample file (txt / csv / xlsx, as sellers post them) against the records; the run
    /// is a ledger entry.
    Match {
        file: PathBuf,
        /// Attach the result to this case.
        #[arg(long)]
        case: Option<String>,
        /// Print the full report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the OneBot v11 marketplace simulator (for tests, training and the demo).
    Simulate {
        /// Address to listen on (forward WebSocket, HTTP API, media, control API).
        #[arg(long, default_value = "127.0.0.1:3001")]
        listen: String,
        /// Access token clients must present (`Authorization: Bearer`).
        #[arg(long)]
        token: Option<String>,
        /// Scenario file (default: the built-in `config/scenarios/default.toml`).
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// Also dial this reverse WebSocket (universal role), as NapCat does in reverse mode.
        #[arg(long)]
        reverse: Option<String>,
        /// Dial this reverse WebSocket for events only (to pair with the HTTP API).
        #[arg(long)]
        reverse_event: Option<String>,
        /// Write the scenario's synthetic platform orders as a records CSV, then start.
        #[arg(long)]
        export_records: Option<PathBuf>,
        /// Do not post on a timer; post only through the control API.
        #[arg(long)]
        no_autopost: bool,
    },
    /// Inspect, prove and check the evidence ledger.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Packets built from approved findings.
    #[command(subcommand)]
    Packet(PacketCommand),
    /// Evidence bundles for police and courts: export a case, verify a bundle offline.
    #[command(subcommand)]
    Bundle(BundleCommand),
    /// Administrative tasks.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Benchmarks (figures for the README; they assert nothing).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum LedgerCommand {
    /// Re-hash every entry and blob, recompute the root, check every checkpoint. Exit 0 only if all hold.
    Verify {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sign a checkpoint over the current ledger and print it (a C2SP signed note).
    Checkpoint,
    /// Print the inclusion proof of entry N against the latest checkpoint, as JSON.
    Proof { index: u64 },
    /// Print entries, one per line (no decrypted personal data, ever).
    Dump {
        /// First entry to print.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// JSON lines: index, leaf hash, kind, time, actor, fields.
        #[arg(long)]
        json: bool,
    },
    /// Append synthetic entries as fast as possible, printing `ack <index> <leaf hash>` for each
    /// one once it is durable (crash-safety testing; never on a production ledger).
    #[command(hide = true)]
    AppendSynthetic {
        #[arg(long, default_value_t = 1_000_000)]
        count: u64,
        #[arg(long, default_value_t = 8)]
        threads: usize,
        /// Store a blob and reference it in every Nth entry (0: never).
        #[arg(long, default_value_t = 10)]
        blob_every: u64,
    },
}

#[derive(Subcommand)]
enum BundleCommand {
    /// Write a case's entries, proofs, checkpoints, time-stamps, blobs and custody log into a
    /// zip anyone can verify; the export is recorded in the ledger.
    Export {
        case: String,
        /// The zip to write (never overwritten).
        #[arg(short = 'o', long = "output", value_name = "FILE.zip")]
        output: PathBuf,
        /// Who exports (recorded as `cli:NAME`; default: $USER).
        #[arg(long, value_name = "NAME")]
        actor: Option<String>,
        /// Why the bundle is made (recorded in the manifest and the ledger).
        #[arg(long, value_name = "TEXT")]
        purpose: Option<String>,
        /// Include blobs holding victims' personal data (sample rows, their messages and
        /// files); by default they are listed as withheld with their hashes.
        #[arg(long)]
        include_pii: bool,
    },
    /// Check a bundle offline: every hash, inclusion and consistency proof, the checkpoint
    /// signature, the time-stamp tokens, and every referenced blob. Exit 0 only if all hold.
    Verify {
        file: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// The log key the checkpoints must be signed with: a `.vkey` file or the key itself
        /// (`name+keyid+base64`).
        #[arg(long, value_name = "VKEY")]
        log_key: Option<String>,
        /// A TSA root certificate (PEM or DER) the time-stamp tokens must chain to; repeatable.
        #[arg(long, value_name = "FILE")]
        tsa_root: Vec<PathBuf>,
        /// A checkpoint (signed note) obtained elsewhere; the bundle's checkpoint of the same
        /// size must have the same root (fork detection); repeatable.
        #[arg(long, value_name = "FILE")]
        known_checkpoint: Vec<PathBuf>,
        /// Refuse zips with more members than this.
        #[arg(long, default_value_t = leakwatch::bundle::DEFAULT_MAX_FILES)]
        max_files: usize,
        /// Refuse zips whose members add up to more uncompressed bytes than this.
        #[arg(long, default_value_t = leakwatch::bundle::DEFAULT_MAX_BYTES)]
        max_bytes: u64,
        /// Threads hashing blobs (0: one per core, up to 4).
        #[arg(long, default_value_t = 0)]
        threads: usize,
    },
}

#[derive(Subcommand)]
enum RecordsCommand {
    /// Import order records (CSV or JSONL) into the blind index: tokens only, no raw personal
    /// data. Resumes an interrupted import of the same file.
    Import {
        file: PathBuf,
        /// Also import an access log (order_id, actor_kind, actor_id, action, at).
        #[arg(long)]
        access_log: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Throw the state store away and rebuild it from the ledger; prints the state digest.
    RebuildState,
    /// Print the state digest (after catching up with the ledger), to compare two states.
    StateDigest,
    /// Staff API tokens (stored as SHA-256 digests only).
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token; it is printed once and cannot be shown again.
    Create {
        /// intake | moderator | legal | admin
        #[arg(long)]
        role: String,
        /// Who holds it (recorded as the actor of everything done with it).
        #[arg(long, default_value = "staff")]
        owner: String,
    },
    /// List tokens (ids, owners, roles; never the tokens).
    List,
    /// Revoke a token by id.
    Revoke { id: String },
}

#[derive(Subcommand)]
enum PacketCommand {
    /// Build a packet for the latest approved finding of a case (packets are built
    /// automatically after approval; this rebuilds a missing one or shows the one on record).
    Build {
        case: String,
        /// takedown | police | breach-notice
        #[arg(long)]
        kind: String,
        /// Write the packet's files into this directory too.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// OneBot event parsing (events/s, arrays and CQ strings) and simulator → durable ledger
    /// entry capture under a burst (messages/s, latency p50/p99).
    Capture {
        /// Events to parse.
        #[arg(long, default_value_t = 200_000)]
        events: u64,
        /// Messages the simulator bursts.
        #[arg(long, default_value_t = 2_000)]
        messages: u64,
        /// Scratch directory (default: <data_root>/bench-tmp); removed afterwards.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// API under load: `wrk` on loopback against the case list and the review queue
    /// (requests/s, p50/p99, errors, the server's memory before and after).
    Api {
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        #[arg(long, default_value_t = 32)]
        connections: u32,
        /// Scratch directory (default: <data_root>/bench-tmp); removed afterwards.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Matching: import rate and index size for generated records, and the time to check a
    /// sample against the open index.
    Match {
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
        #[arg(long, default_value_t = 5_000)]
        sample: usize,
        /// Scratch directory (default: <data_root>/bench-tmp); removed afterwards.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Extraction throughput: sample rows/s from text and from an xlsx file.
    Extract {
        #[arg(long, default_value_t = 20_000)]
        rows: usize,
    },
    /// Bundle verification throughput (MB/s) on a generated bundle, against `openssl dgst
    /// -sha256` over the same files unpacked, in the same run.
    Verify {
        /// Size of the generated bundle's blobs, in MB.
        #[arg(long, default_value_t = 1024)]
        size_mb: u64,
        /// Scratch directory (default: <data_root>/bench-tmp); removed afterwards.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Durable appends per second (group commit vs one fsync per append) and hashing MB/s.
    Ingest {
        /// Entries to append with group commit (a tenth of that with one fsync each).
        #[arg(long, default_value_t = 20_000)]
        entries: u64,
        /// Concurrent appenders.
        #[arg(long, default_value_t = 16)]
        threads: usize,
        /// Scratch directory (default: <data_root>/bench-tmp); removed afterwards.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

fn main() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LEAKWATCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        // One line: what was wrong and where.
        let text = format!("{e:#}").replace('\n', " ");
        eprintln!("leakwatch: error: {text}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve => serve(&config),
        Command::Demo => {
            let mut config = config;
            config.simulator.enabled = true;
            config.simulator.submit_groups = true;
            config.simulator.import_records = true;
            let ev = with_progress("opening evidence", |p| Evidence::open(&config, p))?;
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            runtime.block_on(leakwatch::service::demo(Arc::new(ev), config))?;
            Ok(())
        }
        Command::Submit { link, note } => submit(&config, &link, note.as_deref()),
        Command::Records(RecordsCommand::Import { file, access_log }) => {
            records_import(&config, &file, access_log.as_deref())
        }
        Command::Match { file, case, json } => match_file(&config, &file, case.as_deref(), json),
        Command::Simulate {
            listen,
            token,
            scenario,
            reverse,
            reverse_event,
            export_records,
            no_autopost,
        } => {
            let scenario = leakwatch::simulator::scenario::Scenario::load(scenario.as_deref())?;
            let opts = leakwatch::simulator::SimOptions {
                token,
                reverse_url: reverse,
                reverse_event_url: reverse_event,
                autopost: !no_autopost,
            };
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            runtime.block_on(async move {
                let sim = leakwatch::simulator::Simulator::start(&listen, scenario, opts).await?;
                if let Some(path) = export_records {
                    let mut file = std::fs::File::create(&path)
                        .with_context(|| format!("{}: cannot create", path.display()))?;
                    sim.write_orders_csv(&mut file)
                        .with_context(|| format!("{}: cannot write", path.display()))?;
                }
                tracing::info!(addr = %sim.addr, "simulator listening (OneBot v11: ws://{0}/, http://{0}/<action>)", sim.addr);
                tokio::select! {
                    _ = sim.wait() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
                anyhow::Ok(())
            })
        }
        Command::Ledger(cmd) => ledger_command(&config, cmd),
        Command::Bundle(cmd) => bundle_command(&config, cmd),
        Command::Admin(cmd) => admin_command(&config, cmd),
        Command::Packet(cmd) => packet_command(&config, cmd),
        Command::Bench(cmd) => bench_command(&config, cmd),
    }
}

/// A progress bar on stderr, drawn only when stderr is a terminal and the work is long enough
/// to show one.
fn progress_bar(what: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

fn with_progress<T>(what: &str, work: impl FnOnce(&dyn Fn(u64, u64)) -> T) -> T {
    let bar = progress_bar(what);
    let started = std::time::Instant::now();
    let tick = |done: u64, total: u64| {
        // Only show a bar for work that takes more than a second.
        if started.elapsed().as_secs() >= 1 {
            bar.set_length(total);
            bar.set_position(done);
        }
    };
    let out = work(&tick);
    bar.finish_and_clear();
    out
}

fn serve(config: &Config) -> Result<()> {
    let ev = with_progress("opening evidence", |p| Evidence::open(config, p))?;
    tracing::info!(
        entries = ev.ledger.size(),
        data_root = %config.data_root.display(),
        key = %ev.ledger.verifier().to_vkey_string(),
        "leakwatch serving"
    );
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(leakwatch::service::run(Arc::new(ev), config.clone()))?;
    Ok(())
}

fn submit(config: &Config, link: &str, note: Option<&str>) -> Result<()> {
    // Check the link before touching anything.
    leakwatch::intake::normalise_link(link)?;
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    match Evidence::open(config, &|_, _| {}) {
        Ok(ev) => {
            let sub = leakwatch::intake::submit(&ev, link, note, &format!("cli:{user}"))?;
            print_submission(&sub.case, sub.new_case, &sub.group.to_string());
            if sub.new_case {
                println!("capture starts when `leakwatch serve` runs");
            }
            Ok(())
        }
        Err(leakwatch::evidence::EvidenceError::Ledger(
            leakwatch::ledger::LedgerError::Locked { .. },
        )) => {
            // A server holds the ledger: hand the submission to it.
            let token = leakwatch::api::operator_token(config, false)?
                .context("a leakwatch server is running but its operator token is missing")?;
            let url = format!("http://{}/api/v1/cases", config.api.listen);
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let (status, body): (u16, serde_json::Value) = runtime
                .block_on(async {
                    let resp = reqwest::Client::builder()
                        .no_proxy()
                        .build()?
                        .post(&url)
                        .bearer_auth(token)
                        .json(&serde_json::json!({"link": link, "note": note}))
                        .send()
                        .await?;
                    let status = resp.status().as_u16();
                    anyhow::Ok((status, resp.json().await?))
                })
                .with_context(|| {
                    format!("{url}: the running server did not take the submission")
                })?;
            if status >= 400 {
                bail!(
                    "{url}: {}",
                    body["error"].as_str().unwrap_or("submission refused")
                );
            }
            print_submission(
                body["case"].as_str().unwrap_or("?"),
                body["new_case"].as_bool().unwrap_or(false),
                body["group"].as_str().unwrap_or("?"),
            );
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

fn records_import(config: &Config, file: &Path, access_log: Option<&Path>) -> Result<()> {
    use leakwatch::sample_check::{blind_key, index_dir, local_index_exists};
    if !file.is_file() {
        bail!("{}: no such records file", file.display());
    }
    let key = blind_key(config, !local_index_exists(config))?;
    let dir = index_dir(config);
    let report = with_progress("importing records", |p| {
        leakwatch::matching::LocalIndex::import(&dir, &key, file, p)
    })?;
    if let Some(from) = report.resumed_from {
        println!("resumed an interrupted import at byte {from}");
    }
    println!(
        "{}: {} rows read, {} imported, {} skipped",
        file.display(),
        report.rows,
        report.imported,
        report.skipped_total
    );
    for (line, why) in report.skipped.iter().take(20) {
        println!("  line {line}: {why}");
    }
    if report.skipped_total > 20 {
        println!("  … and {} more skipped rows", report.skipped_total - 20);
    }
    if let Some(log) = access_log {
        let r = leakwatch::matching::LocalIndex::import_access_log(&dir, log)?;
        println!(
            "{}: {} access events imported, {} skipped",
            log.display(),
            r.imported,
            r.skipped_total
        );
        for (line, why) in r.skipped.iter().take(20) {
            println!("  line {line}: {why}");
        }
    }
    Ok(())
}

fn match_file(config: &Config, file: &Path, case: Option<&str>, json: bool) -> Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("{}: cannot read", file.display()))?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let extraction = leakwatch::extract::extract_file(&name, &bytes);
    if extraction.rows.is_empty() {
        bail!(
            "{}: no sample rows found (a row needs a phone or masked phone and a name or address){}",
            file.display(),
            extraction
                .notes
                .first()
                .map(|n| format!("; {n}"))
                .unwrap_or_default()
        );
    }
    let checker = leakwatch::sample_check::SampleChecker::from_config(config)?
        .ok_or(leakwatch::sample_check::CheckError::NoSource)?;
    let ev = Evidence::open(config, &|_, _| {})?;
    if let Some(c) = case
        && ev.state.case(c)?.is_none()
    {
        bail!("{c}: no such case");
    }
    let input = ev.blobs.put(&bytes)?;
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let (index, report) = checker.check_and_record(
        &ev,
        &format!("cli:{user}"),
        case,
        None,
        input,
        &extraction.rows,
    )?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{}: {} rows checked, {} matched (ledger entry {index})",
        file.display(),
        report.rows_checked,
        report.rows_matched
    );
    for (level, n) in &report.by_level {
        println!("  {level:<22} {n}");
    }
    println!(
        "distinct customers: {}, distinct orders: {}",
        report.distinct_customers, report.distinct_orders
    );
    let at = |t: Option<i64>| {
        t.and_then(|s| chrono::DateTime::from_timestamp(s, 0))
            .map(|d| d.to_rfc3339())
            .unwrap_or_else(|| "-".into())
    };
    println!(
        "matched orders from {} to {}",
        at(report.first_order_at),
        at(report.last_order_at)
    );
    for c in &report.canary_hits {
        println!("CANARY: order {} was issued to {}", c.order_id, c.partner);
    }
    for s in report.attribution.iter().take(5) {
        println!(
            "suspect {}:{}: {} of the matched orders (share {:.0}%, base {:.1}%, lift {:.1})",
            s.actor_kind,
            s.actor_id,
            s.touched,
            s.share * 100.0,
            s.base_share * 100.0,
            s.lift
        );
    }
    Ok(())
}

fn print_submission(case: &str, new_case: bool, group: &str) {
    if new_case {
        println!("case {case} opened for {group}");
    } else {
        println!("{group} is already case {case}; this submission was added to it");
    }
}

fn ledger_command(config: &Config, cmd: LedgerCommand) -> Result<()> {
    match cmd {
        LedgerCommand::Verify { json } => {
            let ledger = Ledger::open_read_only(config)?;
            let blobs = evidence::open_blobs(config, false)?;
            let report = with_progress("verifying", |p| verify::verify(&ledger, &blobs, p))?;
            if json {
                let value = serde_json::json!({
                    "ok": true,
                    "entries": report.entries,
                    "root": hex::encode(report.root),
                    "blobs_checked": report.blobs_checked,
                    "checkpoints": report.checkpoints,
                    "timestamps_checked": report.timestamps_checked,
                    "torn_tail": report.torn_tail.as_ref().map(|t| serde_json::json!({
                        "segment": t.segment.display().to_string(),
                        "offset": t.offset,
                        "bytes": t.bytes,
                        "reason": t.reason,
                    })),
                });
                println!("{value}");
            } else {
                println!(
                    "ok: {} entries, {} blobs, {} checkpoints, {} time-stamps; root {}",
                    report.entries,
                    report.blobs_checked,
                    report.checkpoints,
                    report.timestamps_checked,
                    hex::encode(report.root)
                );
                if let Some(t) = &report.torn_tail {
                    println!(
                        "note: {} has {} bytes of an interrupted write after entry {} ({}); they are cut on the next writable open",
                        t.segment.display(),
                        t.bytes,
                        t.index.saturating_sub(1),
                        t.reason
                    );
                }
            }
            Ok(())
        }
        LedgerCommand::Checkpoint => {
            let ledger = Ledger::open(config, AppendPolicy::default())?;
            let signed = ledger.sign_checkpoint()?;
            print!("{}", signed.note);
            Ok(())
        }
        LedgerCommand::Proof { index } => {
            let ledger = Ledger::open_read_only(config)?;
            let Some(latest) = ledger.latest_checkpoint()? else {
                bail!("no checkpoint has been signed yet; run `leakwatch ledger checkpoint`");
            };
            let size = latest.checkpoint.size;
            if index >= size {
                bail!(
                    "entry {index} is not covered by the latest checkpoint ({size} entries); run `leakwatch ledger checkpoint`"
                );
            }
            let proof = ledger.inclusion_proof(index, size)?;
            let leaf = ledger
                .leaf_hash(index)
                .with_context(|| format!("entry {index} has no leaf hash"))?;
            let b64 = base64::engine::general_purpose::STANDARD;
            let value = serde_json::json!({
                "index": index,
                "tree_size": size,
                "leaf_hash": b64.encode(leaf),
                "root_hash": b64.encode(latest.checkpoint.root),
                "proof": proof.iter().map(|h| b64.encode(h)).collect::<Vec<_>>(),
                "checkpoint": latest.note,
                "verifier_key": ledger.verifier().to_vkey_string(),
            });
            println!("{}", serde_json::to_string_pretty(&value)?);
            Ok(())
        }
        LedgerCommand::Dump { from, json } => {
            let ledger = Ledger::open_read_only(config)?;
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            for index in from..ledger.size() {
                let entry = ledger.read_entry(index)?;
                let line = if json {
                    let leaf = ledger.leaf_hash(index).map(hex::encode).unwrap_or_default();
                    let body = serde_json::to_value(&entry.body)?;
                    serde_json::json!({
                        "index": index,
                        "leaf": leaf,
                        "kind": entry.body.kind(),
                        "at": entry.at,
                        "actor": entry.actor,
                        "fields": body,
                    })
                    .to_string()
                } else {
                    format!(
                        "{index}\t{}\t{}\t{}\t{}",
                        entry.at,
                        entry.body.kind(),
                        entry.actor,
                        summary(&entry.body)
                    )
                };
                if writeln!(out, "{line}").is_err() {
                    break; // reader went away (e.g. `| head`)
                }
            }
            Ok(())
        }
        LedgerCommand::AppendSynthetic {
            count,
            threads,
            blob_every,
        } => append_synthetic(config, count, threads.max(1), blob_every),
    }
}

fn bundle_command(config: &Config, cmd: BundleCommand) -> Result<()> {
    match cmd {
        BundleCommand::Export {
            case,
            output,
            actor,
            purpose,
            include_pii,
        } => {
            let name = actor
                .or_else(|| std::env::var("USER").ok())
                .filter(|n| !n.trim().is_empty());
            let actor = match name {
                Some(n) => format!("cli:{}", n.trim()),
                None => "cli".to_string(),
            };
            if output.exists() {
                bail!(
                    "{}: already exists; choose another name (a bundle is never overwritten)",
                    output.display()
                );
            }
            let ev = match Evidence::open(config, &|_, _| {}) {
                Ok(ev) => ev,
                Err(leakwatch::evidence::EvidenceError::Ledger(
                    leakwatch::ledger::LedgerError::Locked { path },
                )) => bail!(
                    "{path}: the ledger is held by a running leakwatch server; stop it to export a bundle (the export must be recorded in the ledger; exporting through the server's API comes later)"
                ),
                Err(e) => return Err(e.into()),
            };
            let opts = leakwatch::bundle::ExportOptions {
                actor,
                purpose,
                include_pii,
            };
            let report = with_progress("exporting", |p| {
                leakwatch::bundle::export(&ev, &case, &output, &opts, p)
            })?;
            println!(
                "bundle {}: case {case}, {} entries, {} blobs ({} withheld), {} time-stamp{}, checkpoint {}{}",
                report.path.display(),
                report.entries,
                report.blobs,
                report.withheld,
                report.timestamps,
                if report.timestamps == 1 { "" } else { "s" },
                report.checkpoint_size,
                if report.fresh_checkpoint {
                    " (signed for this bundle)"
                } else {
                    ""
                }
            );
            println!(
                "  {} files, {} bytes, sha256 {}",
                report.files, report.bytes, report.sha256
            );
            println!(
                "  bundle id {}; recorded as ledger entry {}",
                report.bundle_id, report.custody_index
            );
            if report.files > leakwatch::bundle::DEFAULT_MAX_FILES {
                println!(
                    "  note: more files than a verifier accepts by default; verify with --max-files {}",
                    report.files
                );
            }
            Ok(())
        }
        BundleCommand::Verify {
            file,
            json,
            log_key,
            tsa_root,
            known_checkpoint,
            max_files,
            max_bytes,
            threads,
        } => {
            let log_key = match log_key {
                None => None,
                Some(k) => {
                    let text = if Path::new(&k).exists() {
                        std::fs::read_to_string(&k)
                            .with_context(|| format!("--log-key {k}: cannot read"))?
                    } else {
                        k.clone()
                    };
                    Some(
                        leakwatch::ledger::checkpoint::NoteVerifier::parse(text.trim())
                            .with_context(|| format!("--log-key {k}: not a verifier key"))?,
                    )
                }
            };
            let mut tsa_roots = Vec::new();
            for path in &tsa_root {
                let bytes = std::fs::read(path)
                    .with_context(|| format!("--tsa-root {}: cannot read", path.display()))?;
                tsa_roots.extend(
                    certificates_from(&bytes).with_context(|| {
                        format!("--tsa-root {}: no certificate", path.display())
                    })?,
                );
            }
            let mut known = Vec::new();
            for path in &known_checkpoint {
                known.push(std::fs::read_to_string(path).with_context(|| {
                    format!("--known-checkpoint {}: cannot read", path.display())
                })?);
            }
            let opts = leakwatch::bundle::VerifyOptions {
                limits: leakwatch::bundle::Limits {
                    max_files,
                    max_bytes,
                },
                log_key,
                tsa_roots,
                known_checkpoints: known,
                threads,
            };
            let result = with_progress("verifying", |p| {
                leakwatch::bundle::verify_bundle_with_progress(&file, &opts, p)
            });
            let report = match result {
                Ok(r) => r,
                Err(e) => {
                    if json {
                        println!(
                            "{}",
                            serde_json::json!({"ok": false, "refused": e.to_string()})
                        );
                    }
                    return Err(e.into());
                }
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.render(&file));
            }
            if !report.ok {
                let first = report
                    .problems
                    .first()
                    .map(|p| p.to_string())
                    .unwrap_or_default();
                bail!(
                    "{}: verification failed: {} problem{} (first: {first})",
                    file.display(),
                    report.problems.len(),
                    if report.problems.len() == 1 { "" } else { "s" }
                );
            }
            Ok(())
        }
    }
}

/// DER certificates from a PEM file (every CERTIFICATE block) or a DER file.
fn certificates_from(bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
    if let Ok(text) = std::str::from_utf8(bytes)
        && text.contains("-----BEGIN")
    {
        let mut out = Vec::new();
        let mut body: Option<String> = None;
        for line in text.lines() {
            let line = line.trim();
            if line == "-----BEGIN CERTIFICATE-----" {
                body = Some(String::new());
            } else if line == "-----END CERTIFICATE-----" {
                if let Some(b) = body.take() {
                    out.push(base64::engine::general_purpose::STANDARD.decode(b)?);
                }
            } else if let Some(b) = &mut body {
                b.push_str(line);
            }
        }
        if out.is_empty() {
            bail!("no CERTIFICATE block in the PEM text");
        }
        return Ok(out);
    }
    if bytes.first() == Some(&0x30) {
        return Ok(vec![bytes.to_vec()]);
    }
    bail!("neither PEM nor DER")
}

fn summary(body: &EntryBody) -> String {
    match body {
        EntryBody::CaseOpened { case, link, .. } => format!("case={case} link={link}"),
        EntryBody::Captured(c) => format!(
            "case={} group={}:{} message={} raw={} media={}",
            c.case,
            c.platform,
            c.group_id,
            c.message_id,
            c.raw.sha256,
            c.media.len()
        ),
        EntryBody::Custody {
            case,
            action,
            detail,
        } => format!("case={case} action={action} {detail}"),
        EntryBody::JoinStatus {
            case,
            status,
            group_id,
            ..
        } => format!("case={case} group={group_id} status={status}"),
        EntryBody::GroupSnapshot {
            case,
            name,
            member_count,
            info,
            ..
        } => format!(
            "case={case} name={} members={} info={}",
            name.as_deref().unwrap_or("?"),
            member_count
                .map(|n| n.to_string())
                .unwrap_or_else(|| "?".into()),
            info.sha256
        ),
        EntryBody::GroupEnded { case, reason, .. } => format!("case={case} reason={reason}"),
        EntryBody::Backfilled {
            case,
            through_message_id,
            messages,
            ..
        } => format!("case={case} through={through_message_id} messages={messages}"),
        EntryBody::MediaRefused {
            case,
            message_id,
            reason,
            ..
        } => format!("case={case} message={message_id} reason={reason}"),
        EntryBody::Extracted {
            case,
            capture,
            offer,
            rows,
            ..
        } => format!(
            "case={case} capture={capture} offer={} rows={rows}",
            if offer.is_some() { "yes" } else { "no" }
        ),
        EntryBody::Timestamped {
            checkpoint_size,
            tsa,
            gen_time,
            error,
            ..
        } => match error {
            Some(e) => format!("checkpoint={checkpoint_size} tsa={tsa} failed: {e}"),
            None => format!(
                "checkpoint={checkpoint_size} tsa={tsa} time={}",
                gen_time.as_deref().unwrap_or("?")
            ),
        },
        EntryBody::Matched {
            case,
            rows_checked,
            rows_matched,
            distinct_customers,
            suspects,
            ..
        } => format!(
            "case={} rows={rows_checked} matched={rows_matched} customers={distinct_customers} suspects={}",
            case.as_deref().unwrap_or("-"),
            suspects.first().map(String::as_str).unwrap_or("-")
        ),
        EntryBody::ReviewClaimed {
            case,
            finding,
            until,
        } => format!("case={case} finding={finding} until={until}"),
        EntryBody::PiiRevealed { case, finding, .. } => format!("case={case} finding={finding}"),
        EntryBody::ReviewDecided {
            case,
            finding,
            decision,
            ..
        } => format!("case={case} finding={finding} decision={decision}"),
        EntryBody::PacketBuilt {
            case,
            packet_id,
            packet_kind,
            files,
            ..
        } => format!(
            "case={case} packet={packet_id} kind={packet_kind} files={}",
            files.len()
        ),
        EntryBody::FilingAttempted {
            packet_id,
            channel,
            attempt,
            ok,
            ..
        } => format!("packet={packet_id} channel={channel} attempt={attempt} ok={ok}"),
        EntryBody::FilingFinished {
            packet_id,
            channel,
            status,
            attempts,
            ..
        } => format!("packet={packet_id} channel={channel} status={status} attempts={attempts}"),
        EntryBody::TrackingProbed { case, result, .. } => format!("case={case} result={result}"),
        EntryBody::FindingRaised { case, reason, .. } => format!("case={case} reason={reason}"),
        EntryBody::Synthetic { seq, blob, .. } => match blob {
            Some(b) => format!("seq={seq} blob={}", b.sha256),
            None => format!("seq={seq}"),
        },
    }
}

fn append_synthetic(config: &Config, count: u64, threads: usize, blob_every: u64) -> Result<()> {
    let ledger = Arc::new(Ledger::open(config, AppendPolicy::default())?);
    let blobs = Arc::new(evidence::open_blobs(config, true)?);
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (ledger, blobs, next) = (ledger.clone(), blobs.clone(), next.clone());
            std::thread::spawn(move || -> Result<()> {
                let stdout = std::io::stdout();
                loop {
                    let seq = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if seq >= count {
                        return Ok(());
                    }
                    let blob = if blob_every > 0 && seq % blob_every == 0 {
                        let bytes = format!("synthetic blob {seq} {}", rand::random::<u64>());
                        let id: BlobId = blobs.put(bytes.as_bytes())?;
                        Some(BlobRef {
                            sha256: id,
                            size: bytes.len() as u64,
                            media_type: "text/plain".into(),
                            pii: false,
                        })
                    } else {
                        None
                    };
                    let entry = LedgerEntry::new(
                        "synthetic",
                        EntryBody::Synthetic {
                            seq,
                            payload: format!("synthetic entry {seq}"),
                            blob,
                        },
                    );
                    let index = ledger.append(&entry)?;
                    let leaf = leakwatch::ledger::merkle::leaf_hash(&entry.to_bytes());
                    let mut out = stdout.lock();
                    writeln!(out, "ack {index} {}", hex::encode(leaf))?;
                    out.flush()?;
                }
            })
        })
        .collect();
    for h in handles {
        h.join()
            .map_err(|_| anyhow::anyhow!("appender thread panicked"))??;
    }
    Ok(())
}

fn packet_command(config: &Config, cmd: PacketCommand) -> Result<()> {
    use leakwatch::packets::PacketKind;
    use leakwatch::packets::assemble;
    let PacketCommand::Build { case, kind, out } = cmd;
    let kind = match kind.as_str() {
        "takedown" => PacketKind::Takedown,
        "police" => PacketKind::Police,
        "breach-notice" | "breach_notice" => PacketKind::BreachNotice,
        other => anyhow::bail!("--kind {other:?}: expected takedown, police or breach-notice"),
    };
    let ev = Evidence::open(config, &|_, _| {})?;
    let finding = ev
        .state
        .findings()?
        .into_iter()
        .rev()
        .find(|f| f.case == case && assemble::kinds_allowed(f).contains(&kind))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "case {case}: no finding approved for a {} packet",
                assemble::kind_name(kind)
            )
        })?;
    let actor = format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "operator".into())
    );
    let packet = assemble::build_and_record(&ev, &finding.finding, kind, &config.packets, &actor)?;
    println!(
        "{} packet {} for {} ({}): {}",
        packet.kind,
        packet.packet_id,
        packet.finding,
        packet.filing_status(),
        packet
            .files
            .iter()
            .map(|f| format!("{} sha256:{}", f.name, f.blob.sha256))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(dir) = out {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("{}: cannot create", dir.display()))?;
        for (i, (name, _, bytes)) in assemble::packet_files(&ev, &packet)?
            .into_iter()
            .enumerate()
        {
            let path = dir.join(leakwatch::filing::sanitise_attachment_name(&name, i));
            std::fs::write(&path, bytes)
                .with_context(|| format!("{}: cannot write", path.display()))?;
        }
    }
    Ok(())
}

fn admin_command(config: &Config, cmd: AdminCommand) -> Result<()> {
    match cmd {
        AdminCommand::Token(cmd) => {
            use leakwatch::api::tokens::{Role, TokenStore};
            let store = TokenStore::new(&config.keys_dir());
            match cmd {
                TokenCommand::Create { role, owner } => {
                    let role = Role::parse(&role).ok_or_else(|| {
                        anyhow::anyhow!(
                            "--role {role:?}: expected intake, moderator, legal or admin"
                        )
                    })?;
                    let (token, rec) = store.create(role, &owner)?;
                    eprintln!(
                        "token {} for {} ({}); shown once, keep it secret:",
                        rec.id,
                        rec.owner,
                        rec.role.as_str()
                    );
                    println!("{token}");
                }
                TokenCommand::List => {
                    for r in store.list()? {
                        println!(
                            "{}  {:<9} {:<20} {}{}",
                            r.id,
                            r.role.as_str(),
                            r.owner,
                            r.created_at,
                            if r.revoked { "  revoked" } else { "" }
                        );
                    }
                }
                TokenCommand::Revoke { id } => {
                    store.revoke(&id)?;
                    println!("token {id} revoked");
                }
            }
            Ok(())
        }
        AdminCommand::RebuildState => {
            let ledger = Ledger::open(config, AppendPolicy::default())?;
            let state = with_progress("rebuilding state", |p| {
                State::rebuild(&config.state_dir(), &ledger, p)
            })?;
            println!(
                "state rebuilt from {} entries; digest {}",
                state.applied()?,
                state.digest()?
            );
            Ok(())
        }
        AdminCommand::StateDigest => {
            let ev = with_progress("opening", |p| Evidence::open(config, p))?;
            if let Some(reason) = &ev.rebuilt {
                eprintln!("leakwatch: state was rebuilt: {reason}");
            }
            println!(
                "{} entries; digest {}",
                ev.state.applied()?,
                ev.state.digest()?
            );
            Ok(())
        }
    }
}

fn bench_command(config: &Config, cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Capture {
            events,
            messages,
            dir,
        } => {
            let p = leakwatch::bench::parse_events(events);
            println!("OneBot event parsing ({} events)", p.events);
            println!("  segment arrays      : {:>10.0} events/s", p.array_per_s);
            println!(
                "  CQ-code strings     : {:>10.0} events/s",
                p.cq_string_per_s
            );
            let dir = dir.unwrap_or_else(|| config.data_root.join("bench-tmp"));
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let c = runtime
                .block_on(leakwatch::bench::capture(&dir, messages))
                .map_err(|e| anyhow::anyhow!(e))?;
            println!(
                "capture: simulator -> WebSocket -> adapter -> blobs + ledger (durable), {} messages",
                c.messages
            );
            println!("  throughput          : {:>10.0} messages/s", c.per_s);
            println!(
                "  latency post->durable: p50 {:.1?}, p99 {:.1?}",
                c.p50, c.p99
            );
            Ok(())
        }
        BenchCommand::Api {
            seconds,
            connections,
            dir,
        } => {
            let dir = dir.unwrap_or_else(|| config.data_root.join("bench-tmp"));
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let f = runtime
                .block_on(leakwatch::bench::api_load(&dir, seconds, connections))
                .map_err(|e| anyhow::anyhow!(e))?;
            println!(
                "API under wrk ({}s, {} connections, GET /api/v1/cases + /api/v1/review/queue, 60 cases)",
                f.seconds, f.connections
            );
            println!(
                "  requests            : {:>10} ({} errors)",
                f.requests, f.errors
            );
            println!(
                "  throughput          : {:>10.0} requests/s",
                f.requests_per_s
            );
            println!(
                "  latency             : p50 {:.2} ms, p99 {:.2} ms",
                f.p50_ms, f.p99_ms
            );
            println!(
                "  server memory       : {:.1} MB after warm-up, {:.1} MB at the end",
                f.rss_after_warmup as f64 / 1e6,
                f.rss_end as f64 / 1e6
            );
            Ok(())
        }
        BenchCommand::Match {
            records,
            sample,
            dir,
        } => {
            let dir = dir.unwrap_or_else(|| config.data_root.join("bench-tmp"));
            let f = leakwatch::bench::matching(&dir, records, sample)
                .map_err(|e| anyhow::anyhow!(e))?;
            println!("matching ({} generated records)", f.records);
            println!(
                "  import              : {:>10.0} records/s ({:.2?})",
                f.records as f64 / f.import.as_secs_f64().max(1e-9),
                f.import
            );
            println!(
                "  index size          : {:>10.1} MB ({:.0} bytes/record)",
                f.index_bytes as f64 / 1e6,
                f.index_bytes as f64 / f.records.max(1) as f64
            );
            println!("  open index          : {:>10.1?}", f.open);
            println!(
                "  check {} rows      : {:>10.1?} first after open ({} matched)",
                f.sample_rows, f.check, f.rows_matched
            );
            let [fast, median, slow] = f.repeat;
            println!(
                "  same check again    : {:>10.1?} median of 9 (fastest {:.1?}, slowest {:.1?})",
                median, fast, slow
            );
            if let Some(rss) = f.peak_rss_bytes {
                println!("  peak memory         : {:>10.0} MB", rss as f64 / 1e6);
            }
            Ok(())
        }
        BenchCommand::Extract { rows } => {
            let f = leakwatch::bench::extraction(rows);
            println!("extraction ({} rows)", f.rows);
            println!("  from text           : {:>10.0} rows/s", f.text_rows_per_s);
            println!("  from xlsx           : {:>10.0} rows/s", f.xlsx_rows_per_s);
            Ok(())
        }
        BenchCommand::Verify { size_mb, dir } => {
            if size_mb == 0 {
                bail!("--size-mb must be at least 1");
            }
            let dir = dir.unwrap_or_else(|| config.data_root.join("bench-tmp"));
            let f = with_progress("building the bundle", |p| {
                leakwatch::bench::verify(&dir, size_mb, p)
            })
            .map_err(|e| anyhow::anyhow!(e))?;
            let mb = f.bytes as f64 / 1e6;
            let rate = |d: std::time::Duration| mb / d.as_secs_f64().max(1e-9);
            println!(
                "bundle verify ({:.0} MB in {} files: {} blobs, {} entries)",
                mb, f.files, f.blobs, f.entries
            );
            println!(
                "  leakwatch bundle verify : {:>8.0} MB/s ({:.2?}, {} hashing threads)",
                rate(f.ours),
                f.ours,
                f.threads
            );
            println!(
                "  same, one thread        : {:>8.0} MB/s ({:.2?})",
                rate(f.ours_one_thread),
                f.ours_one_thread
            );
            match f.openssl {
                Some(t) => {
                    println!(
                        "  openssl dgst -sha256    : {:>8.0} MB/s ({t:.2?}, the same files unpacked)",
                        rate(t)
                    );
                    println!(
                        "  ratio                   : {:>8.2} ({:.2} with one thread)",
                        rate(f.ours) / rate(t),
                        rate(f.ours_one_thread) / rate(t)
                    );
                }
                None => println!("  openssl dgst -sha256    : not run (openssl not found)"),
            }
            Ok(())
        }
        BenchCommand::Ingest {
            entries,
            threads,
            dir,
        } => {
            let dir = dir.unwrap_or_else(|| config.data_root.join("bench-tmp"));
            let figures = leakwatch::bench::ingest(&dir, entries, threads.max(1))?;
            let _ = std::fs::remove_dir(&dir);
            print_ingest(&figures, &dir);
            Ok(())
        }
    }
}

fn print_ingest(f: &leakwatch::bench::IngestFigures, dir: &Path) {
    println!(
        "ledger ingest ({} appender threads, {}-byte entries, in {})",
        f.threads,
        f.entry_bytes,
        dir.display()
    );
    println!(
        "  group commit        : {:>10.0} durable appends/s ({} in {:.2?})",
        f.group_commit.per_second(),
        f.group_commit.entries,
        f.group_commit.elapsed
    );
    println!(
        "  one fsync per append: {:>10.0} durable appends/s ({} in {:.2?})",
        f.fsync_each.per_second(),
        f.fsync_each.entries,
        f.fsync_each.elapsed
    );
    println!(
        "  speed-up            : {:>10.1}x",
        f.group_commit.per_second() / f.fsync_each.per_second().max(1e-9)
    );
    println!(
        "  leaf hashing        : {:>10.0} MB/s (entry-sized inputs)",
        f.hash_entry_mb_s
    );
    println!(
        "  SHA-256 bulk        : {:>10.0} MB/s (1 MiB inputs)",
        f.hash_bulk_mb_s
    );
}
