//! Evidence bundles end to end, the way legal and an outside party use them: `serve` runs the
//! simulator with a real local TSA, legal exports a case with the binary, and the bundle is
//! checked with `leakwatch bundle verify`, with `sha256sum -c` and with `openssl ts -verify`.
//! Then every file of it is damaged in turn, a forked log is passed off as the real one, and
//! hostile zips are fed to the verifier.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::tsa::LocalTsa;
use leakwatch::bundle::{self, VerifyOptions};
use leakwatch::evidence::Evidence;
use leakwatch::ledger::entry::{BlobRef, CaptureRecord, EntryBody, LedgerEntry};
use sha2::{Digest, Sha256};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Every file of a zip, in order, read with the `zip` crate (not our reader).
fn unzip_all(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut z = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    (0..z.len())
        .map(|i| {
            let mut f = z.by_index(i).unwrap();
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes).unwrap();
            (f.name().to_string(), bytes)
        })
        .collect()
}

fn write_zip(path: &Path, files: &[(String, Vec<u8>)]) {
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in files {
        z.start_file(name.as_str(), opts).unwrap();
        z.write_all(bytes).unwrap();
    }
    z.finish().unwrap();
}

/// Unpack as an outsider would: `unzip` when installed, else the `zip` crate.
fn unpack(zip_path: &Path, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let unzip = Command::new("unzip")
        .arg("-q")
        .arg(zip_path)
        .arg("-d")
        .arg(dir)
        .output();
    match unzip {
        Ok(out) => assert!(out.status.success(), "unzip: {out:?}"),
        Err(_) => {
            for (name, bytes) in unzip_all(zip_path) {
                let p = dir.join(&name);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, bytes).unwrap();
            }
        }
    }
}

fn manifest_of(files: &[(String, Vec<u8>)]) -> serde_json::Value {
    let (_, bytes) = files.iter().find(|(n, _)| n == "manifest.json").unwrap();
    serde_json::from_slice(bytes).unwrap()
}

/// Recomputes `files` in the manifest and `SHA256SUMS` after a file was changed on purpose,
/// as a forger would.
fn rehash(files: &mut [(String, Vec<u8>)]) {
    let mut manifest = manifest_of(files);
    let hashes: BTreeMap<String, (String, u64)> = files
        .iter()
        .map(|(n, b)| (n.clone(), (sha256_hex(b), b.len() as u64)))
        .collect();
    for f in manifest["files"].as_array_mut().unwrap() {
        let (sha, size) = &hashes[f["path"].as_str().unwrap()];
        f["sha256"] = sha.clone().into();
        f["size"] = (*size).into();
    }
    let mut manifest_bytes = serde_json::to_vec_pretty(&manifest).unwrap();
    manifest_bytes.push(b'\n');
    let mut sums = String::new();
    for (name, bytes) in files.iter_mut() {
        if name == "manifest.json" {
            *bytes = manifest_bytes.clone();
        }
    }
    for (name, bytes) in files.iter() {
        if name != "SHA256SUMS" {
            sums.push_str(&format!("{}  {name}\n", sha256_hex(bytes)));
        }
    }
    for (name, bytes) in files.iter_mut() {
        if name == "SHA256SUMS" {
            *bytes = sums.clone().into_bytes();
        }
    }
}

fn verify_lib(path: &Path) -> bundle::VerifyReport {
    bundle::verify_bundle(path, &VerifyOptions::default()).unwrap()
}

fn names(report: &bundle::VerifyReport, file: &str) -> bool {
    report
        .problems
        .iter()
        .any(|p| p.file.as_deref() == Some(file) || p.detail.contains(file))
}

// ----------------------------------------------------------------------- simulator run

fn write_scenario(dir: &Path) -> PathBuf {
    let text = leakwatch::simulator::scenario::DEFAULT_SCENARIO
        .replace("messages = 40", "messages = 12")
        .replace("rate_per_s = 2.0", "rate_per_s = 20.0")
        .replace("orders = 3000", "orders = 600");
    let path = dir.join("scenario.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn dump(s: &common::Scratch) -> Vec<serde_json::Value> {
    s.ok(&["ledger", "dump", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_case_exported_and_checked_as_an_outsider_would_and_tamper_is_named() {
    let tsa = LocalTsa::start().await;
    let sim_port = free_port();
    let s0 = common::Scratch::new("");
    let scenario = write_scenario(s0.dir.path());
    let s = common::Scratch::new(&format!(
        "checkpoint_interval_s = 1\n\
         [[adapters.onebot]]\nname = \"qq\"\nmode = \"forward-ws\"\nurl = \"ws://127.0.0.1:{sim_port}/\"\naccess_token = \"t\"\nallow_private_media = true\nreconnect_max_ms = 500\n\
         [capture]\njoin_retry_s = 1\n\
         [api]\nlisten = \"127.0.0.1:{api}\"\n\
         [timestamp]\nretry_s = 1\ntimeout_s = 10\n[[timestamp.tsa]]\nurl = \"{tsa}\"\n\
         [simulator]\nenabled = true\nlisten = \"127.0.0.1:{sim_port}\"\ntoken = \"t\"\nsubmit_groups = true\nimport_records = true\nscenario = {scenario:?}\n",
        api = free_port(),
        tsa = tsa.url,
    ));
    let mut serve = common::ChildGuard(
        s.cmd(&["serve"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // Wait until group 800000002 has posted and been captured whole, and a time-stamped
    // checkpoint covers its case.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let case = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            std::time::Instant::now() < deadline,
            "the simulator run did not finish in time"
        );
        let entries = tokio::task::block_in_place(|| dump(&s));
        let Some(case) = entries
            .iter()
            .find(|e| e["kind"] == "case_opened" && e["fields"]["group_id"] == "800000002")
            .map(|e| e["fields"]["case"].as_str().unwrap().to_string())
        else {
            continue;
        };
        let captured = entries
            .iter()
            .filter(|e| e["kind"] == "captured" && e["fields"]["case"] == case.as_str())
            .count();
        let last_case_index = entries
            .iter()
            .filter(|e| e["fields"]["case"] == case.as_str())
            .map(|e| e["index"].as_u64().unwrap())
            .max()
            .unwrap_or(0);
        let stamped = entries.iter().any(|e| {
            e["kind"] == "timestamped"
                && !e["fields"]["token"].is_null()
                && e["fields"]["checkpoint_size"].as_u64().unwrap() > last_case_index
        });
        if captured >= 12 && stamped {
            break case;
        }
    };

    // While the server holds the ledger, export says so in one line.
    let zip_path = s.dir.path().join("case.zip");
    let zip = zip_path.to_str().unwrap();
    let err = tokio::task::block_in_place(|| s.fails(&["bundle", "export", &case, "-o", zip]));
    assert!(err.contains("running leakwatch server"), "{err}");
    assert!(!zip_path.exists());

    // Stop the server (SIGTERM: it signs a last checkpoint and exits).
    // SAFETY: sending a signal to the child we started.
    unsafe { libc::kill(serve.0.id() as i32, libc::SIGTERM) };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while serve.0.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = serve.0.kill();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = serve.0.wait();

    tokio::task::block_in_place(|| {
        // Legal exports the case.
        let out = s.ok(&[
            "bundle",
            "export",
            &case,
            "-o",
            zip,
            "--actor",
            "legal-test",
            "--purpose",
            "police report 2026-118",
        ]);
        assert!(out.contains(&format!("case {case}")), "{out}");
        let bundle_sha = sha256_hex(&std::fs::read(&zip_path).unwrap());
        assert!(out.contains(&bundle_sha), "{out}");

        // The export is a custody entry: who, which case, which bytes.
        let entries = dump(&s);
        let custody = entries
            .iter()
            .rev()
            .find(|e| e["kind"] == "custody" && e["fields"]["action"] == "bundle_exported")
            .expect("custody entry");
        assert_eq!(custody["actor"], "cli:legal-test");
        assert_eq!(custody["fields"]["case"], case.as_str());
        let detail: serde_json::Value =
            serde_json::from_str(custody["fields"]["detail"].as_str().unwrap()).unwrap();
        assert_eq!(detail["sha256"], bundle_sha.as_str());
        assert_eq!(detail["purpose"], "police report 2026-118");

        // Our verifier, as anyone would run it: nothing but the zip.
        let out = s.ok(&["bundle", "verify", zip]);
        assert!(out.contains("OK"), "{out}");
        let json: serde_json::Value =
            serde_json::from_str(&s.ok(&["bundle", "verify", zip, "--json"])).unwrap();
        assert_eq!(json["ok"], true, "{json}");
        assert_eq!(json["case"], case.as_str());
        assert!(json["entries"].as_u64().unwrap() >= 12, "{json}");
        assert!(!json["timestamps"].as_array().unwrap().is_empty(), "{json}");
        assert!(
            json["blobs_withheld"].as_u64().unwrap() > 0,
            "sample rows withheld by default: {json}"
        );
        assert!(json["blobs_present"].as_u64().unwrap() > 0, "{json}");

        // With the published log key and the TSA's root pinned.
        let vkey = s.data_root().join("keys/log-ed25519.vkey");
        let out = s.ok(&[
            "bundle",
            "verify",
            zip,
            "--log-key",
            vkey.to_str().unwrap(),
            "--tsa-root",
            tsa.ca_cert.to_str().unwrap(),
        ]);
        assert!(out.contains("chains to the pinned TSA root"), "{out}");
        assert!(out.contains("(pinned)"), "{out}");
        // Another log key, or another TSA root, is refused.
        let other = leakwatch::ledger::checkpoint::NoteSigner::generate("leakwatch.example")
            .unwrap()
            .verifier()
            .to_vkey_string();
        let err = s.fails(&["bundle", "verify", zip, "--log-key", &other]);
        assert!(err.contains("log/key.vkey"), "{err}");
        let other_tsa = s.dir.path().join("other-root.pem");
        std::fs::copy(&tsa.tsa_cert, &other_tsa).unwrap();
        let err = s.fails(&[
            "bundle",
            "verify",
            zip,
            "--tsa-root",
            other_tsa.to_str().unwrap(),
        ]);
        assert!(err.contains("pinned TSA root"), "{err}");

        // Without leakwatch: unzip, sha256sum -c, openssl ts -verify.
        let unpacked = s.dir.path().join("unpacked");
        unpack(&zip_path, &unpacked);
        let sums = Command::new("sha256sum")
            .args(["-c", "--quiet", "SHA256SUMS"])
            .current_dir(&unpacked)
            .output()
            .unwrap();
        assert!(sums.status.success(), "sha256sum -c: {sums:?}");
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(unpacked.join("manifest.json")).unwrap())
                .unwrap();
        let stamps = manifest["timestamps"].as_array().unwrap();
        assert!(!stamps.is_empty());
        for t in stamps {
            let mut cmd = Command::new("openssl");
            cmd.args(["ts", "-verify", "-data"])
                .arg(t["data"].as_str().unwrap())
                .arg("-in")
                .arg(t["token"].as_str().unwrap())
                .arg("-CAfile")
                .arg(&tsa.ca_cert)
                .current_dir(&unpacked);
            if let Some(chain) = t["chain"].as_str() {
                cmd.arg("-untrusted").arg(chain);
            }
            let out = cmd.output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.status.success() && text.contains("Verification: OK"),
                "openssl ts -verify {t}: {text}"
            );
        }
        // The README tells an outsider exactly these three ways.
        let readme = std::fs::read_to_string(unpacked.join("README.txt")).unwrap();
        for needle in [
            "leakwatch bundle verify",
            "sha256sum -c SHA256SUMS",
            "openssl ts -verify",
            "如何验证",
        ] {
            assert!(readme.contains(needle), "README lacks {needle}");
        }

        // With personal data, nothing is withheld.
        let pii_zip = s.dir.path().join("case-pii.zip");
        s.ok(&[
            "bundle",
            "export",
            &case,
            "-o",
            pii_zip.to_str().unwrap(),
            "--include-pii",
        ]);
        let json: serde_json::Value =
            serde_json::from_str(&s.ok(&["bundle", "verify", pii_zip.to_str().unwrap(), "--json"]))
                .unwrap();
        assert_eq!(json["ok"], true, "{json}");
        assert_eq!(json["blobs_withheld"], 0, "{json}");

        tamper_every_file(&zip_path, &s);
        forged_entry_with_fixed_up_hashes(&zip_path, &s);
        forged_time_stamp_with_fixed_up_hashes(&zip_path, &s);
    });
}

/// Flip a byte of, truncate, or delete each file in turn: verification fails and names it.
fn tamper_every_file(zip_path: &Path, s: &common::Scratch) {
    let good = unzip_all(zip_path);
    assert!(verify_lib(zip_path).ok);
    let bad_path = s.dir.path().join("tampered.zip");
    let mut checked = 0;
    for (i, (name, bytes)) in good.iter().enumerate() {
        let mutations: Vec<(&str, Option<Vec<u8>>)> = vec![
            ("flip", {
                let mut b = bytes.clone();
                if !b.is_empty() {
                    let at = b.len() / 2;
                    b[at] ^= 0x01;
                }
                Some(b)
            }),
            ("truncate", Some(bytes[..bytes.len() / 2].to_vec())),
            ("delete", None),
        ];
        for (how, changed) in mutations {
            let mut files = good.clone();
            match changed {
                Some(b) => files[i].1 = b,
                None => {
                    files.remove(i);
                }
            }
            write_zip(&bad_path, &files);
            let report = verify_lib(&bad_path);
            assert!(!report.ok, "{how} {name}: still verifies");
            assert!(
                names(&report, name),
                "{how} {name}: not named: {:?}",
                report.problems
            );
            checked += 1;
        }
    }
    assert!(checked >= 3 * 10, "only {checked} cases");
    // The binary says the same in one line, for a few of them.
    for (victim, how) in [
        ("manifest.json", "flip"),
        ("ledger/entries.jsonl", "truncate"),
        ("SHA256SUMS", "delete"),
    ] {
        let mut files = good.clone();
        let i = files.iter().position(|(n, _)| n == victim).unwrap();
        match how {
            "flip" => {
                let at = files[i].1.len() / 2;
                files[i].1[at] ^= 0x01;
            }
            "truncate" => {
                let half = files[i].1.len() / 2;
                files[i].1.truncate(half);
            }
            _ => {
                files.remove(i);
            }
        }
        write_zip(&bad_path, &files);
        let err = s.fails(&["bundle", "verify", bad_path.to_str().unwrap()]);
        assert!(err.contains(victim), "{how} {victim}: {err}");
        assert!(err.contains("verification failed"), "{err}");
    }
    let _ = std::fs::remove_file(&bad_path);
}

/// An entry replaced, with its hash fixed up in the manifest and SHA256SUMS: the file hashes
/// all agree (sha256sum -c passes), but the Merkle proof does not.
fn forged_entry_with_fixed_up_hashes(zip_path: &Path, s: &common::Scratch) {
    let mut files = unzip_all(zip_path);
    let i = files
        .iter()
        .position(|(n, _)| n == "ledger/entries.jsonl")
        .unwrap();
    let text = String::from_utf8(files[i].1.clone()).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let target = lines
        .iter()
        .position(|l| l.contains("\"kind\":\"captured\""))
        .unwrap();
    let forged = lines[target].replacen("\"actor\":\"", "\"actor\":\"forger-", 1);
    assert_ne!(forged, lines[target]);
    lines[target] = forged;
    files[i].1 = (lines.join("\n") + "\n").into_bytes();
    rehash(&mut files);
    let forged_path = s.dir.path().join("forged.zip");
    write_zip(&forged_path, &files);

    let dir = s.dir.path().join("forged-unpacked");
    unpack(&forged_path, &dir);
    let sums = Command::new("sha256sum")
        .args(["-c", "--quiet", "SHA256SUMS"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(sums.status.success(), "the forger's hashes are consistent");

    let report = verify_lib(&forged_path);
    assert!(!report.ok);
    let proof: Vec<_> = report
        .problems
        .iter()
        .filter(|p| p.check == "inclusion_proof")
        .collect();
    assert_eq!(proof.len(), 1, "{:?}", report.problems);
    assert_eq!(proof[0].file.as_deref(), Some("ledger/entries.jsonl"));
    assert!(
        report
            .problems
            .iter()
            .all(|p| p.check == "inclusion_proof" || p.check == "custody"),
        "only the proof (and the derived custody log) can tell: {:?}",
        report.problems
    );
    let err = s.fails(&["bundle", "verify", forged_path.to_str().unwrap()]);
    assert!(err.contains("not proven in checkpoint"), "{err}");
}

/// A token's genTime moved, with the manifest and every hash fixed up: the TSA's signature
/// no longer holds, and the verifier checks it itself (no openssl needed).
fn forged_time_stamp_with_fixed_up_hashes(zip_path: &Path, s: &common::Scratch) {
    let good = verify_lib(zip_path);
    let signer = good.timestamps[0].signer.clone().unwrap_or_default();
    assert!(signer.contains("leakwatch test TSA"), "{signer}");
    let mut files = unzip_all(zip_path);
    let mut manifest = manifest_of(&files);
    let stamp = &mut manifest["timestamps"][0];
    let token = stamp["token"].as_str().unwrap().to_string();
    let gen_time = stamp["gen_time"].as_str().unwrap().to_string();
    let mut moved = gen_time.clone().into_bytes();
    let at = moved.len() - 2; // the last digit of the seconds
    moved[at] = if moved[at] == b'9' {
        b'8'
    } else {
        moved[at] + 1
    };
    let moved = String::from_utf8(moved).unwrap();
    stamp["gen_time"] = moved.clone().into();
    let t = files.iter().position(|(n, _)| *n == token).unwrap();
    let der = &mut files[t].1;
    let pos = der
        .windows(gen_time.len())
        .position(|w| w == gen_time.as_bytes())
        .unwrap();
    // The signed message-digest attribute is SHA-256 of the TSTInfo around the genTime: find
    // that SEQUENCE (the one whose digest appears in the token), to fix the digest up too.
    let find = |der: &[u8], needle: &[u8]| der.windows(needle.len()).position(|w| w == needle);
    let (start, end, digest_at) = (0..pos)
        .rev()
        .filter(|&p| der[p] == 0x30)
        .find_map(|p| {
            let (len, header) = match der.get(p + 1)? {
                &l if l < 0x80 => (l as usize, 2),
                0x81 => (*der.get(p + 2)? as usize, 3),
                0x82 => (
                    ((*der.get(p + 2)? as usize) << 8) | *der.get(p + 3)? as usize,
                    4,
                ),
                _ => return None,
            };
            let end = p + header + len;
            if end <= pos || end > der.len() {
                return None;
            }
            let digest = Sha256::digest(&der[p..end]);
            find(der, &digest).map(|at| (p, end, at))
        })
        .expect("TSTInfo and its digest");
    der[pos..pos + moved.len()].copy_from_slice(moved.as_bytes());
    let digest = Sha256::digest(&der[start..end]);
    der[digest_at..digest_at + 32].copy_from_slice(&digest);
    let m = files
        .iter()
        .position(|(n, _)| n == "manifest.json")
        .unwrap();
    files[m].1 = serde_json::to_vec_pretty(&manifest).unwrap();
    rehash(&mut files);
    let forged = s.dir.path().join("forged-time.zip");
    write_zip(&forged, &files);
    let report = verify_lib(&forged);
    assert!(!report.ok);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.file.as_deref() == Some(token.as_str())
                && p.check == "timestamp"
                && p.detail.contains("signature")),
        "{:?}",
        report.problems
    );
    assert!(
        report.problems.iter().all(|p| p.check == "timestamp"),
        "only the signature can tell: {:?}",
        report.problems
    );
}

// ----------------------------------------------------------------------- forked log

fn captured(ev: &Evidence, case: &str, id: u64) -> u64 {
    let raw_bytes = format!("{{\"message_id\":{id},\"message\":\"外卖数据 0.1元/条\"}}");
    let raw = BlobRef {
        sha256: ev.blobs.put(raw_bytes.as_bytes()).unwrap(),
        size: raw_bytes.len() as u64,
        media_type: "application/json".into(),
        pii: true,
    };
    ev.record(&LedgerEntry::new(
        "adapter:test",
        EntryBody::Captured(Box::new(CaptureRecord {
            case: case.into(),
            platform: "qq".into(),
            group_id: "800000001".into(),
            group_name: None,
            message_id: id.to_string(),
            message_seq: None,
            sender_id: None,
            sender_nickname: None,
            sender_card: None,
            posted_at: None,
            captured_at: "2026-11-28T00:00:00.000000Z".into(),
            adapter: "onebot:test".into(),
            leakwatch_version: leakwatch::VERSION.into(),
            account: "1".into(),
            raw,
            media: vec![],
        })),
    ))
    .unwrap()
}

fn synthetic(ev: &Evidence, seq: u64, payload: &str) {
    ev.record(&LedgerEntry::new(
        "synthetic",
        EntryBody::Synthetic {
            seq,
            payload: payload.into(),
            blob: None,
        },
    ))
    .unwrap();
}

/// Sign a checkpoint and get it time-stamped by `tsa`; returns the note.
async fn checkpoint_and_stamp(ev: &Arc<Evidence>, tsa: &LocalTsa) -> String {
    let signed = ev.ledger.sign_checkpoint().unwrap();
    let client = leakwatch::timestamp::TsaClient::new(Duration::from_secs(10)).unwrap();
    let failed = leakwatch::service::timestamp_checkpoint(
        ev,
        &client,
        signed.checkpoint.size,
        &signed.note,
        std::slice::from_ref(&tsa.url),
    )
    .await;
    assert!(failed.is_empty());
    signed.note
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forked_log_is_caught() {
    let tsa = LocalTsa::start().await;
    let a = common::Scratch::new("");
    let b = common::Scratch::new("");
    let case;
    {
        let ev = Arc::new(Evidence::open(&a.config(), &|_, _| {}).unwrap());
        case = tokio::task::block_in_place(|| {
            let case =
                leakwatch::intake::submit(&ev, "qq:800000001", Some("fork test"), "cli:test")
                    .unwrap()
                    .case;
            for id in 1..=4 {
                captured(&ev, &case, id);
            }
            case
        });
        checkpoint_and_stamp(&ev, &tsa).await;
    }
    // B is a copy of A up to here, with the same log key; then the two go different ways.
    copy_dir(&a.data_root(), &b.data_root());
    let mut notes = Vec::new();
    for (s, payload) in [(&a, "the real history"), (&b, "a rewritten history")] {
        let ev = Arc::new(Evidence::open(&s.config(), &|_, _| {}).unwrap());
        tokio::task::block_in_place(|| {
            for seq in 0..3 {
                synthetic(&ev, seq, payload);
            }
        });
        notes.push(checkpoint_and_stamp(&ev, &tsa).await);
    }
    let note_of = |n: &str| {
        leakwatch::ledger::checkpoint::Checkpoint::parse_body(&n[..n.find("\n\n").unwrap() + 1])
            .unwrap()
    };
    let (real, fork) = (note_of(&notes[0]), note_of(&notes[1]));
    assert_eq!(real.size, fork.size, "same size");
    assert_ne!(real.root, fork.root, "different root");

    tokio::task::block_in_place(|| {
        let a_zip = a.dir.path().join("a.zip");
        let b_zip = b.dir.path().join("b.zip");
        a.ok(&["bundle", "export", &case, "-o", a_zip.to_str().unwrap()]);
        b.ok(&["bundle", "export", &case, "-o", b_zip.to_str().unwrap()]);
        assert!(verify_lib(&a_zip).ok);
        // On its own the fork's bundle is self-consistent (same key, valid proofs): only a
        // reference from outside the bundle can tell the two histories apart.
        let alone = verify_lib(&b_zip);
        assert!(alone.ok, "{:?}", alone.problems);
        assert!(alone.warnings.iter().any(|w| w.contains("not pinned")));

        // 1. The fork's own bundle, against the real checkpoint of that size.
        let known = a.dir.path().join("real-checkpoint.note");
        std::fs::write(&known, &notes[0]).unwrap();
        let err = b.fails(&[
            "bundle",
            "verify",
            b_zip.to_str().unwrap(),
            "--known-checkpoint",
            known.to_str().unwrap(),
        ]);
        assert!(err.contains("the log forked"), "{err}");
        assert!(err.contains(&format!("{:020}.note", real.size)), "{err}");
        a.ok(&[
            "bundle",
            "verify",
            a_zip.to_str().unwrap(),
            "--known-checkpoint",
            known.to_str().unwrap(),
        ]);

        // 2. The real bundle with the fork's checkpoint (same size, another root, a valid
        //    signature) swapped in and every hash fixed up.
        let mut files = unzip_all(&a_zip);
        let path = format!("log/checkpoints/{:020}.note", real.size);
        let i = files.iter().position(|(n, _)| *n == path).unwrap();
        files[i].1 = notes[1].clone().into_bytes();
        let mut m = manifest_of(&files);
        for c in m["log"]["checkpoints"].as_array_mut().unwrap() {
            if c["size"] == real.size {
                c["root"] = hex::encode(fork.root).into();
            }
        }
        let j = files
            .iter()
            .position(|(n, _)| n == "manifest.json")
            .unwrap();
        files[j].1 = serde_json::to_vec_pretty(&m).unwrap();
        rehash(&mut files);
        let swapped = a.dir.path().join("swapped.zip");
        write_zip(&swapped, &files);
        let report = verify_lib(&swapped);
        assert!(!report.ok);
        for check in ["inclusion_proof", "consistency_proof", "timestamp"] {
            assert!(
                report.problems.iter().any(|p| p.check == check),
                "{check} not failed: {:?}",
                report.problems
            );
        }
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.check == "timestamp" && p.detail.contains("does not cover")),
            "the real time-stamp does not cover the fork's checkpoint: {:?}",
            report.problems
        );
    });
}

// ----------------------------------------------------------------------- hostile zips

fn stored() -> zip::write::SimpleFileOptions {
    zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored)
}

fn zip_bytes(build: impl FnOnce(&mut zip::ZipWriter<std::io::Cursor<Vec<u8>>>)) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    build(&mut z);
    z.finish().unwrap().into_inner()
}

#[test]
fn hostile_zips_are_refused_with_one_clear_line() {
    let s = common::Scratch::new("");
    let one = |name: &str| {
        let name = name.to_string();
        zip_bytes(move |z| {
            z.start_file(name.as_str(), stored()).unwrap();
            z.write_all(b"x").unwrap();
        })
    };
    // Duplicate names: the zip crate will not write them, so rename one after the fact.
    let duplicate = {
        let bytes = zip_bytes(|z| {
            z.start_file("manifest.json", stored()).unwrap();
            z.write_all(b"{}").unwrap();
            z.start_file("manifest.jsoX", stored()).unwrap();
            z.write_all(b"{}").unwrap();
        });
        let mut out = bytes.clone();
        let (from, to) = (b"manifest.jsoX", b"manifest.json");
        let mut k = 0;
        while k + from.len() <= out.len() {
            if &out[k..k + from.len()] == from {
                out[k..k + from.len()].copy_from_slice(to);
            }
            k += 1;
        }
        out
    };
    let bomb = zip_bytes(|z| {
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        z.start_file("blobs/zeros", opts).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            z.write_all(&zeros).unwrap();
        }
    });
    let many = zip_bytes(|z| {
        for i in 0..100_000 {
            z.start_file(format!("f{i}"), stored()).unwrap();
        }
    });
    let symlink = zip_bytes(|z| {
        z.add_symlink("blobs/link", "/etc/passwd", stored())
            .unwrap();
    });
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("traversal", one("../outside.txt"), "path traversal"),
        ("deep traversal", one("blobs/../../x"), "path traversal"),
        ("absolute", one("/etc/passwd"), "absolute path"),
        ("backslash", one("..\\x"), "path tricks"),
        ("duplicate", duplicate, "duplicate member name"),
        (
            "case-only duplicate",
            zip_bytes(|z| {
                z.start_file("README.txt", stored()).unwrap();
                z.start_file("readme.TXT", stored()).unwrap();
            }),
            "differ only in case",
        ),
        ("zip bomb", bomb, "zip bomb"),
        ("100k entries", many, "100000 members"),
        ("symlink", symlink, "symbolic link"),
        (
            "not a zip",
            b"PK\x03\x04 not really a zip".to_vec(),
            "not a zip file",
        ),
    ];
    for (what, bytes, expect) in cases {
        let path = s.dir.path().join("evil.zip");
        std::fs::write(&path, &bytes).unwrap();
        let started = std::time::Instant::now();
        let err = s.fails(&["bundle", "verify", path.to_str().unwrap()]);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{what}: took {:?}",
            started.elapsed()
        );
        assert!(err.contains("refused"), "{what}: {err}");
        assert!(err.contains(expect), "{what}: {err}");
        // The JSON form says so too.
        let out = s.run(&["bundle", "verify", path.to_str().unwrap(), "--json"]);
        assert!(!out.status.success());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["ok"], false);
        assert!(
            v["refused"].as_str().unwrap().contains(expect),
            "{what}: {v}"
        );
    }
}

#[test]
fn size_caps_and_bench_work_on_a_small_bundle() {
    let s = common::Scratch::new("");
    let case = leakwatch::intake::submit(
        &Evidence::open(&s.config(), &|_, _| {}).unwrap(),
        "qq:800000002",
        None,
        "cli:test",
    )
    .unwrap()
    .case;
    {
        let ev = Evidence::open(&s.config(), &|_, _| {}).unwrap();
        for id in 1..=3 {
            captured(&ev, &case, id);
        }
    }
    let zip = s.dir.path().join("small.zip");
    let out = s.ok(&["bundle", "export", &case, "-o", zip.to_str().unwrap()]);
    assert!(out.contains("signed for this bundle"), "{out}");
    // Never overwrite a bundle.
    let err = s.fails(&["bundle", "export", &case, "-o", zip.to_str().unwrap()]);
    assert!(err.contains("already exists"), "{err}");
    // No such case.
    let err = s.fails(&["bundle", "export", "C-nope", "-o", "x.zip"]);
    assert!(err.contains("no such case"), "{err}");
    // The caps refuse a legitimate bundle when set low.
    let err = s.fails(&[
        "bundle",
        "verify",
        zip.to_str().unwrap(),
        "--max-bytes",
        "1000",
    ]);
    assert!(
        err.contains("refused") && err.contains("--max-bytes"),
        "{err}"
    );
    let err = s.fails(&[
        "bundle",
        "verify",
        zip.to_str().unwrap(),
        "--max-files",
        "3",
    ]);
    assert!(
        err.contains("refused") && err.contains("--max-files"),
        "{err}"
    );
    s.ok(&["bundle", "verify", zip.to_str().unwrap()]);

    // The benchmark runs end to end at a small size and prints both figures.
    let out = s.ok(&[
        "bench",
        "verify",
        "--size-mb",
        "4",
        "--dir",
        s.dir.path().join("bench").to_str().unwrap(),
    ]);
    assert!(out.contains("leakwatch bundle verify"), "{out}");
    assert!(out.contains("openssl dgst -sha256"), "{out}");
    assert!(out.contains("ratio"), "{out}");
    assert!(!s.dir.path().join("bench").exists(), "bench cleaned up");
}
