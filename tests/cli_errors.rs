//! Bad input and broken surroundings: each gives one clear line naming the file and the
//! problem, a non-zero exit, and leaves what is stored untouched.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

/// Every file under the data root with its bytes, to prove a failing command touched nothing.
fn snapshot(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn with_ledger() -> common::Scratch {
    let s = common::Scratch::new("");
    s.ok(&[
        "ledger",
        "append-synthetic",
        "--count",
        "30",
        "--threads",
        "2",
        "--blob-every",
        "5",
    ]);
    s.ok(&["ledger", "checkpoint"]);
    s
}

#[test]
fn malformed_config_is_one_line_naming_the_file() {
    let s = common::Scratch::new("");
    fs::write(s.config_path(), "data_root = 5\n").unwrap();
    let err = s.fails(&["ledger", "verify"]);
    assert!(
        err.contains("leakwatch.toml") && err.contains("invalid config"),
        "{err}"
    );

    fs::write(s.config_path(), "[ledger]\norigin = \"a\"\nbogus = 1\n").unwrap();
    let err = s.fails(&["ledger", "verify"]);
    assert!(
        err.contains("leakwatch.toml") && err.contains("bogus"),
        "{err}"
    );

    let out = std::process::Command::new(common::bin())
        .args([
            "--config",
            "/nonexistent/leakwatch.toml",
            "ledger",
            "verify",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent/leakwatch.toml"), "{err}");
}

#[test]
fn missing_log_key_is_refused_and_nothing_changes() {
    let s = with_ledger();
    let seed = s.data_root().join("keys/log-ed25519.seed");
    fs::remove_file(&seed).unwrap();
    let before = snapshot(&s.data_root());
    let err = s.fails(&["ledger", "checkpoint"]);
    assert!(
        err.contains(&seed.display().to_string()) && err.contains("missing key file"),
        "{err}"
    );
    let err = s.fails(&["ledger", "append-synthetic", "--count", "1"]);
    assert!(err.contains("missing key file"), "{err}");
    // LOCK is created by a writable open attempt; nothing else may change.
    let after: Vec<_> = snapshot(&s.data_root());
    assert_eq!(before, after);
    // Read-only commands still work from the public key.
    assert!(s.ok(&["ledger", "verify"]).starts_with("ok: 30 entries"));
}

#[test]
fn data_key_problems_are_named() {
    let s = with_ledger();
    let key_file = s.data_root().join("keys/data.key");
    let key = fs::read_to_string(&key_file).unwrap();

    // Wrong key from the environment.
    let out = s
        .cmd(&["ledger", "verify"])
        .env("LEAKWATCH_DATA_KEY", "11".repeat(32))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("KEYCHECK") && err.contains("data key does not open"),
        "{err}"
    );

    // Not a key at all.
    let out = s
        .cmd(&["ledger", "verify"])
        .env("LEAKWATCH_DATA_KEY", "not-hex")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("LEAKWATCH_DATA_KEY"));

    // The right key from the environment works without the file.
    fs::remove_file(&key_file).unwrap();
    let out = s
        .cmd(&["ledger", "verify"])
        .env("LEAKWATCH_DATA_KEY", key.trim())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Missing key file with blobs on disk: refused, and no new key is made up.
    let before = snapshot(&s.data_root());
    let err = s.fails(&["ledger", "append-synthetic", "--count", "1"]);
    assert!(
        err.contains("data.key") && err.contains("missing key file"),
        "{err}"
    );
    assert!(!key_file.exists());
    let after = snapshot(&s.data_root());
    // The writable ledger open may have created LOCK only.
    let strip = |v: Vec<(PathBuf, Vec<u8>)>| -> Vec<_> {
        v.into_iter()
            .filter(|(p, _)| !p.ends_with("LOCK"))
            .collect()
    };
    assert_eq!(strip(before), strip(after));
}

#[test]
fn corrupt_segment_is_refused_by_every_command_and_left_as_it_is() {
    let s = with_ledger();
    let seg = common::segment_files(&s.data_root())[0].clone();
    let mut bytes = fs::read(&seg).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&seg, &bytes).unwrap();
    let before = snapshot(&s.data_root());
    for args in [
        &["ledger", "verify"][..],
        &["ledger", "checkpoint"][..],
        &["ledger", "dump"][..],
        &["ledger", "append-synthetic", "--count", "1"][..],
    ] {
        let err = s.fails(args);
        assert!(
            err.contains(&seg.display().to_string()) && err.contains("entry "),
            "{args:?}: {err}"
        );
    }
    assert_eq!(fs::read(&seg).unwrap(), bytes);
    let strip = |v: Vec<(PathBuf, Vec<u8>)>| -> Vec<_> {
        v.into_iter()
            .filter(|(p, _)| !p.ends_with("LOCK"))
            .collect()
    };
    assert_eq!(strip(before), strip(snapshot(&s.data_root())));
}

#[test]
fn a_second_writer_is_refused() {
    let s = with_ledger();
    let mut child = s
        .cmd(&[
            "ledger",
            "append-synthetic",
            "--count",
            "100000000",
            "--threads",
            "1",
            "--blob-every",
            "0",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let err = s.fails(&["ledger", "checkpoint"]);
    child.kill().unwrap();
    let _ = child.wait();
    assert!(err.contains("in use by another leakwatch process"), "{err}");
}

/// Unmounts the scratch tmpfs even when the test fails.
struct Mount(PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn full_disk_fails_cleanly_and_keeps_every_acknowledged_entry() {
    // A real full file system: a 1 MiB tmpfs as the data root (the test runs as root, as CI does).
    let s = common::Scratch::new("");
    let root = s.data_root();
    fs::create_dir_all(&root).unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&root)
        .status()
        .expect("run mount");
    assert!(
        status.success(),
        "mounting a tmpfs needs root; run the tests as CI does"
    );
    let _guard = Mount(root.clone());

    let out = s
        .cmd(&[
            "ledger",
            "append-synthetic",
            "--count",
            "100000000",
            "--threads",
            "1",
            "--blob-every",
            "3",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "filling the disk should fail");
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or("");
    assert!(last.contains("No space left on device"), "{err}");
    assert!(
        last.contains(&root.display().to_string()),
        "error should name the file: {last}"
    );

    let acked: Vec<(u64, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut p = l.split_whitespace();
            (p.next() == Some("ack")).then(|| {
                (
                    p.next().unwrap().parse().unwrap(),
                    p.next().unwrap().to_string(),
                )
            })
        })
        .collect();
    assert!(
        acked.len() > 100,
        "only {} entries before the disk filled",
        acked.len()
    );
    let dump = s.ok(&["ledger", "dump", "--json"]);
    let leaves: Vec<String> = dump
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["leaf"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for (index, hash) in &acked {
        assert_eq!(
            leaves.get(*index as usize),
            Some(hash),
            "entry {index} lost"
        );
    }
    assert!(s.ok(&["ledger", "verify"]).starts_with("ok:"));
}
