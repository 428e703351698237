//! Helpers shared by the end-to-end tests: a scratch data root with its own config, and the
//! real `leakwatch` binary run against it.
#![allow(dead_code)]

pub mod fake_tg;
pub mod tsa;
pub mod webdriver;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_leakwatch")
}

/// A temporary directory holding `leakwatch.toml` and an `evidence/` data root.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new(extra: &str) -> Scratch {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = format!(
            "data_root = {:?}\n[ledger]\nsegment_max_bytes = 65536\n{extra}\n",
            dir.path().join("evidence")
        );
        std::fs::write(dir.path().join("leakwatch.toml"), cfg).expect("write config");
        Scratch { dir }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("leakwatch.toml")
    }

    pub fn data_root(&self) -> PathBuf {
        self.dir.path().join("evidence")
    }

    pub fn config(&self) -> leakwatch::config::Config {
        leakwatch::config::Config::load(Some(&self.config_path())).expect("config")
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.arg("--config").arg(self.config_path()).args(args);
        c.env_remove("LEAKWATCH_DATA_KEY");
        c.env("LEAKWATCH_LOG", "warn");
        c.current_dir(self.dir.path());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run leakwatch")
    }

    /// Run and insist on success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "leakwatch {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run and insist on failure; returns stderr, which must be one line.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "leakwatch {args:?} should have failed"
        );
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let error_lines: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(error_lines.len(), 1, "expected one error line, got: {err}");
        err
    }
}

pub fn segment_files(data_root: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data_root.join("ledger"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("seg-"))
    });
    v.sort();
    v
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local address")
        .port()
}

/// A child process (usually `serve`) killed when the test ends, however it ends.
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `leakwatch admin token create`: the new token for `owner` with `role`.
pub fn create_token(s: &Scratch, role: &str, owner: &str) -> String {
    let out = s.run(&["admin", "token", "create", "--role", role, "--owner", owner]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("token is UTF-8")
        .trim()
        .to_string()
}

/// Poll `probe` every 250 ms until it yields a value; fail after `secs` naming `what`.
pub async fn wait_for<T>(what: &str, secs: u64, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// A scratch for `serve` with the built-in simulator (both default groups, 12 messages each,
/// posted fast, its orders imported as records) on free loopback ports, plus `extra` config.
/// Returns the scratch, the simulator's port and the API's port.
pub fn simulator_scratch(checkpoint_interval_s: u64, extra: &str) -> (Scratch, u16, u16) {
    let (sim_port, api_port) = (free_port(), free_port());
    let s = Scratch::new("");
    let scenario = leakwatch::simulator::scenario::DEFAULT_SCENARIO
        .replace("messages = 40", "messages = 12")
        .replace("rate_per_s = 2.0", "rate_per_s = 20.0")
        .replace("orders = 3000", "orders = 600");
    let scenario_path = s.dir.path().join("scenario.toml");
    std::fs::write(&scenario_path, scenario).expect("write scenario");
    let data_root = s.data_root();
    std::fs::write(
        s.config_path(),
        format!(
            "data_root = {data_root:?}\n\
             [ledger]\nsegment_max_bytes = 65536\ncheckpoint_interval_s = {checkpoint_interval_s}\n\
             [[adapters.onebot]]\nname = \"qq\"\nmode = \"forward-ws\"\nurl = \"ws://127.0.0.1:{sim_port}/\"\naccess_token = \"t\"\nallow_private_media = true\nreconnect_max_ms = 500\n\
             [capture]\njoin_retry_s = 1\n\
             [api]\nlisten = \"127.0.0.1:{api_port}\"\n\
             [simulator]\nenabled = true\nlisten = \"127.0.0.1:{sim_port}\"\ntoken = \"t\"\nsubmit_groups = true\nimport_records = true\nscenario = {scenario_path:?}\n\
             {extra}\n"
        ),
    )
    .expect("write config");
    (s, sim_port, api_port)
}
