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
