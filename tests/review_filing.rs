//! From finding to takedown, end to end over real processes: the `serve` binary captures the
//! simulator's groups and verifies their samples; two moderators with their own tokens work the
//! queue over the HTTP API (four-eyes for the police packet); packets are filed to a real SMTP
//! server and a webhook receiver on loopback and to a drop directory; the simulator dismisses
//! the group and tracking records it gone. A second test drives refusing, stalling and
//! dropping filing servers and checks the attempts on record and the visible failure.

mod common;

use std::process::Stdio;
use std::sync::Arc;

use leakwatch::filing::sink::{SmtpFault, SmtpSink, WebhookFault, WebhookSink};
use mail_parser::MimeHeaders;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.client.get(&url),
            _ => self.client.post(&url),
        };
        let req = req.bearer_auth(token);
        let req = match body {
            Some(b) => req.json(&b),
            None => req,
        };
        let Ok(resp) = req.send().await else {
            return (0, Value::Null);
        };
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap_or_default();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_finding_is_filed_by_mail_and_webhook_and_the_group_is_tracked_down() {
    let smtp = SmtpSink::start("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    let hook = WebhookSink::start("127.0.0.1:0".parse().unwrap(), b"hook-secret".to_vec())
        .await
        .unwrap();
    let s0 = common::Scratch::new("");
    let secret = s0.dir.path().join("hook.key");
    std::fs::write(&secret, "hook-secret\n").unwrap();
    let drop_dir = s0.dir.path().join("drop");
    let (s, sim_port, api_port) = common::simulator_scratch(
        1,
        &format!(
            "[review]\nfour_eyes = true\n\
         [tracking]\nprobe_interval_s = 1\nescalate_after_days = 0.00003\n\
         [filing.retry]\nattempts = 3\ninitial_backoff_ms = 100\nmax_backoff_ms = 200\n\
         [[filing.routes]]\nkind = \"takedown\"\nchannel = \"webhook\"\nurl = {url:?}\nsecret_file = {secret:?}\ntimeout_ms = 5000\n\
         [[filing.routes]]\nkind = \"police\"\nchannel = \"smtp\"\nhost = \"127.0.0.1\"\nport = {smtp_port}\ntls = \"none\"\nfrom = \"leakwatch@platform.example\"\nto = [\"cybercrime@police.example\"]\ntimeout_ms = 5000\n\
         [[filing.routes]]\nkind = \"breach_notice\"\nchannel = \"file_drop\"\ndir = {drop_dir:?}\n",
            url = hook.url(),
            smtp_port = smtp.addr().port(),
        ),
    );
    let alice = common::create_token(&s, "moderator", "alice");
    let bob = common::create_token(&s, "moderator", "bob");
    let legal = common::create_token(&s, "legal", "lena");
    let serve = common::ChildGuard(
        s.cmd(&["serve"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let api = Api {
        base: format!("http://127.0.0.1:{api_port}"),
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
    };

    // Capture → match → findings in the queue (the demo scenario's samples are real orders).
    let queue = common::wait_for("findings in the review queue", 120, async || {
        let (st, v) = api.call("GET", "/api/v1/review/queue", &alice, None).await;
        let q = v["queue"].as_array()?.clone();
        (st == 200 && q.len() >= 3).then_some(q)
    })
    .await;
    assert!(queue.iter().all(|f| f["status"] == "new"));

    // Alice claims the first finding; Bob cannot take the same one.
    let (st, v) = api.call("POST", "/api/v1/review/next", &alice, None).await;
    assert_eq!(st, 200, "{v}");
    let fid = v["finding"]["finding"].as_str().unwrap().to_string();
    let (st, _) = api
        .call("POST", &format!("/api/v1/findings/{fid}/claim"), &bob, None)
        .await;
    assert_eq!(
        st, 409,
        "a claimed finding is not handed to a second moderator"
    );

    // The card is masked; a reveal needs a reason and is on record.
    let (st, card) = api
        .call("GET", &format!("/api/v1/findings/{fid}"), &alice, None)
        .await;
    assert_eq!(st, 200);
    let sample = card["sample"].as_array().unwrap();
    assert!(!sample.is_empty());
    for row in sample {
        if let Some(p) = row["phone"].as_str() {
            assert!(p.contains("****"), "phone masked: {p}");
        }
        if let Some(n) = row["name"].as_str() {
            assert!(n.ends_with('*'), "name masked: {n}");
        }
    }
    let (st, _) = api
        .call(
            "POST",
            &format!("/api/v1/findings/{fid}/reveal"),
            &alice,
            Some(json!({"reason": ""})),
        )
        .await;
    assert_eq!(st, 400);
    let (st, rev) = api
        .call(
            "POST",
            &format!("/api/v1/findings/{fid}/reveal"),
            &alice,
            Some(json!({"reason": "check the ward number"})),
        )
        .await;
    assert_eq!(st, 200);
    let raw_phones: Vec<String> = rev["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["phone"].as_str().map(str::to_string))
        .collect();

    // First approval: takedown and breach notice; police waits for a second moderator.
    let (st, out) = api
        .call(
            "POST",
            &format!("/api/v1/findings/{fid}/decision"),
            &alice,
            Some(json!({"decision": "approve", "reason": "orders are real, fresh"})),
        )
        .await;
    assert_eq!(st, 200, "{out}");
    assert_eq!(out["finding"]["status"], "awaiting_second_approval");
    let kinds: Vec<&str> = out["packets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["takedown", "breach_notice"], "{out}");
    // Alice cannot give the second approval herself.
    let (st, v) = api.call("POST", "/api/v1/review/next", &alice, None).await;
    assert_eq!(st, 200, "{v}");
    assert_ne!(
        v["finding"]["finding"],
        fid.as_str(),
        "not her own approval again"
    );
    let (st, _) = api
        .call(
            "POST",
            &format!("/api/v1/findings/{fid}/claim"),
            &alice,
            None,
        )
        .await;
    assert_eq!(st, 409);
    let (st, _) = api
        .call("POST", &format!("/api/v1/findings/{fid}/claim"), &bob, None)
        .await;
    assert_eq!(st, 200);
    let (st, out) = api
        .call(
            "POST",
            &format!("/api/v1/findings/{fid}/decision"),
            &bob,
            Some(json!({"decision": "approve", "reason": "confirmed, second pair of eyes"})),
        )
        .await;
    assert_eq!(st, 200, "{out}");
    assert_eq!(out["finding"]["status"], "approved");
    assert_eq!(out["packets"].as_array().unwrap().len(), 3);

    // Another finding is rejected by Bob: it files nothing.
    let (st, v) = api.call("POST", "/api/v1/review/next", &bob, None).await;
    assert_eq!(st, 200, "{v}");
    let rejected = v["finding"]["finding"].as_str().unwrap().to_string();
    assert_ne!(rejected, fid);
    let (st, out) = api
        .call(
            "POST",
            &format!("/api/v1/findings/{rejected}/decision"),
            &bob,
            Some(json!({"decision": "reject", "reason": "duplicate of an earlier sample"})),
        )
        .await;
    assert_eq!(st, 200);
    assert!(out["packets"].as_array().unwrap().is_empty());

    // Everything approved is filed; nothing of the rejected finding is.
    let packets = common::wait_for("all packets filed", 60, async || {
        let (_, v) = api.call("GET", "/api/v1/packets", &legal, None).await;
        let list = v["packets"].as_array()?.clone();
        (list.len() == 3 && list.iter().all(|p| p["filing_status"] == "filed")).then_some(list)
    })
    .await;
    assert!(
        packets
            .iter()
            .all(|p| p["packet"]["finding"] == fid.as_str())
    );
    let by_kind =
        |k: &str| packets.iter().find(|p| p["packet"]["kind"] == k).unwrap()["packet"].clone();

    // The police e-mail: every packet file attached, byte for byte, with the hashes on record.
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1, "one police e-mail");
    assert_eq!(mails[0].rcpt_to, vec!["cybercrime@police.example"]);
    let msg = mail_parser::MessageParser::default()
        .parse(&mails[0].raw)
        .unwrap();
    let police = by_kind("police");
    let police_files = police["files"].as_array().unwrap();
    assert_eq!(msg.attachment_count(), police_files.len());
    let mut pdf = None;
    for f in police_files {
        let name = f["name"].as_str().unwrap();
        let att = msg
            .attachments()
            .find(|a| a.attachment_name() == Some(name))
            .unwrap_or_else(|| panic!("attachment {name} missing"));
        assert_eq!(
            sha256_hex(att.contents()),
            f["blob"]["sha256"].as_str().unwrap()
        );
        if name.ends_with(".pdf") {
            pdf = Some(att.contents().to_vec());
        }
    }
    // The police report names the evidence bundle exported with it; the bundle verifies.
    let json_att = msg
        .attachments()
        .find(|a| a.attachment_name().is_some_and(|n| n.ends_with(".json")))
        .unwrap();
    let report: Value = serde_json::from_slice(json_att.contents()).unwrap();
    let bundle_sha = report["evidence_bundle"]["bundle_sha256"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(bundle_sha.len(), 64);
    let bundles: Vec<std::path::PathBuf> = std::fs::read_dir(s.data_root().join("bundles"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let bundle = bundles
        .iter()
        .find(|p| sha256_hex(&std::fs::read(p).unwrap()) == bundle_sha)
        .expect("the referenced bundle is kept");
    let out = s.run(&["bundle", "verify", bundle.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Legal exports a bundle through the API (PII only for legal), and downloads it.
    let (st, _) = api
        .call(
            "POST",
            &format!("/api/v1/cases/{}/bundle", police["case"].as_str().unwrap()),
            &alice,
            Some(json!({})),
        )
        .await;
    assert_eq!(st, 403, "moderators do not export bundles");
    let (st, exp) = api
        .call(
            "POST",
            &format!("/api/v1/cases/{}/bundle", police["case"].as_str().unwrap()),
            &legal,
            Some(json!({"purpose": "court", "include_pii": false})),
        )
        .await;
    assert_eq!(st, 201, "{exp}");
    assert!(
        exp["withheld"].as_u64().unwrap() > 0,
        "PII withheld unless asked"
    );
    let zip = api
        .client
        .get(format!("{}{}", api.base, exp["download"].as_str().unwrap()))
        .bearer_auth(&legal)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(sha256_hex(&zip), exp["sha256"].as_str().unwrap());
    let (st, _) = api
        .call("GET", "/api/v1/bundles/..%2Fkeys%2Fdata.key", &legal, None)
        .await;
    assert_eq!(st, 400, "only stored bundle names are served");

    let msg_id = police["filings"][0]["message_id"].as_str().unwrap();
    assert_eq!(
        msg.message_id().map(|m| format!("<{m}>")),
        Some(msg_id.to_string())
    );
    // The police report renders and its Chinese text is extractable, with the victim count.
    let pdf_path = s.dir.path().join("police.pdf");
    std::fs::write(&pdf_path, pdf.unwrap()).unwrap();
    let out = std::process::Command::new("pdftotext")
        .args(["-enc", "UTF-8"])
        .arg(&pdf_path)
        .arg("-")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).replace(char::is_whitespace, "");
    let customers = out_finding_customers(&api, &legal, &fid).await;
    assert!(
        text.contains("侵犯公民个人信息"),
        "Chinese text extractable"
    );
    assert!(
        text.contains(&customers.to_string()),
        "victim count {customers} in the report"
    );
    let png = s.dir.path().join("page");
    let st = std::process::Command::new("pdftoppm")
        .args(["-png", "-r", "50", "-f", "1", "-l", "1"])
        .arg(&pdf_path)
        .arg(&png)
        .status()
        .unwrap();
    assert!(st.success());

    // The takedown went to the webhook, signed, without the sample.
    let docs = hook.documents();
    assert_eq!(docs.len(), 1);
    let takedown = by_kind("takedown");
    for f in takedown["files"].as_array().unwrap() {
        let att = docs[0]
            .document
            .attachments
            .iter()
            .find(|a| a.name == f["name"].as_str().unwrap())
            .unwrap();
        assert_eq!(att.sha256, f["blob"]["sha256"].as_str().unwrap());
    }
    let body = String::from_utf8_lossy(&docs[0].raw).into_owned();
    for phone in &raw_phones {
        assert!(
            !body.contains(phone.as_str()),
            "no unmasked phone in the takedown"
        );
    }
    // The breach notice landed in the drop directory.
    let breach = by_kind("breach_notice");
    let dropped = drop_dir.join(breach["packet_id"].as_str().unwrap());
    assert!(dropped.join("manifest.json").exists());

    // Still up shortly after the takedown (the test's escalation delay is ~2.6 s): tracking
    // raises a `takedown_ignored` finding for review, once.
    let escalation = common::wait_for("a takedown_ignored finding", 60, async || {
        let (_, v) = api.call("GET", "/api/v1/review/queue", &alice, None).await;
        v["queue"]
            .as_array()?
            .iter()
            .find(|f| f["kind"] == "takedown_ignored")
            .cloned()
    })
    .await;
    assert_eq!(escalation["case"], police["case"]);

    // The group is dismissed; tracking records it gone.
    let case = police["case"].as_str().unwrap().to_string();
    let (_, c) = api
        .call("GET", &format!("/api/v1/cases/{case}"), &legal, None)
        .await;
    let group: i64 = c["case"]["group_id"].as_str().unwrap().parse().unwrap();
    let r = api
        .client
        .post(format!("http://127.0.0.1:{sim_port}/_sim/fault"))
        .bearer_auth("t")
        .json(&json!({"dismiss": group}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let c = common::wait_for("tracking to record the group gone", 60, async || {
        let (_, c) = api
            .call("GET", &format!("/api/v1/cases/{case}"), &legal, None)
            .await;
        c["case"]["tracking"]["gone_at"]
            .as_str()
            .is_some()
            .then_some(c)
    })
    .await;
    let timeline = c["timeline"].as_array().unwrap();
    let probes: Vec<&str> = timeline
        .iter()
        .filter(|t| t["kind"] == "tracking_probed")
        .map(|t| t["what"].as_str().unwrap())
        .collect();
    assert!(probes.last().unwrap().contains("gone"), "{probes:?}");
    assert!(probes.iter().any(|p| p.contains("still_up")), "{probes:?}");
    let raised = timeline
        .iter()
        .filter(|t| t["kind"] == "finding_raised")
        .count();
    assert_eq!(raised, 1, "escalated once");
    // Every claim, reveal and decision is on record with its moderator.
    let actors: Vec<(&str, &str)> = timeline
        .iter()
        .map(|t| (t["kind"].as_str().unwrap(), t["actor"].as_str().unwrap()))
        .collect();
    assert!(actors.contains(&("review_claimed", "moderator:alice")));
    assert!(actors.contains(&("pii_revealed", "moderator:alice")));
    assert!(actors.contains(&("review_decided", "moderator:bob")));
    assert!(actors.contains(&("filing_finished", "system:filing")));

    drop(serve);
    let out = s.run(&["ledger", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn out_finding_customers(api: &Api, token: &str, fid: &str) -> u64 {
    let (_, card) = api
        .call("GET", &format!("/api/v1/findings/{fid}"), token, None)
        .await;
    card["finding"]["distinct_customers"].as_u64().unwrap()
}

/// A finding approved in-process, then filed against servers that refuse, stall and drop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusing_stalling_and_dropping_servers_are_retried_then_shown_failed() {
    use leakwatch::config::Config;
    use leakwatch::evidence::Evidence;
    use leakwatch::filing::FilingConfig;
    use leakwatch::filing::dispatch::Dispatcher;

    let smtp = SmtpSink::start("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    let hook = WebhookSink::start("127.0.0.1:0".parse().unwrap(), b"k".to_vec())
        .await
        .unwrap();
    let s = common::Scratch::new("[review]\nfour_eyes = false\n");
    let secret = s.dir.path().join("hook.key");
    std::fs::write(&secret, "k").unwrap();
    let config: Config = s.config();
    let ev = Arc::new(Evidence::open(&config, &|_, _| {}).unwrap());
    let out = tokio::task::block_in_place(|| {
        let fid = leakwatch::review::fixture::seed_finding(&ev, "910001", 12).unwrap();
        let review = leakwatch::review::Review::new(
            ev.clone(),
            leakwatch::review::ReviewSettings::from_config(&config),
        );
        review.claim(&fid, "moderator:alice").unwrap();
        review
            .decide_and_build(
                &fid,
                "moderator:alice",
                leakwatch::review::Decision::Approve,
                "real",
                &config.packets,
            )
            .unwrap()
    });
    assert_eq!(out.packets.len(), 3);

    let filing = FilingConfig::from_toml(&format!(
        "[retry]\nattempts = 3\ninitial_backoff_ms = 10\nmax_backoff_ms = 20\n\
         [[routes]]\nkind = \"takedown\"\nchannel = \"webhook\"\nurl = {url:?}\nsecret_file = {secret:?}\ntimeout_ms = 800\n\
         [[routes]]\nkind = \"police\"\nchannel = \"smtp\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\nfrom = \"a@platform.example\"\nto = [\"b@police.example\"]\ntimeout_ms = 800\n\
         [[routes]]\nkind = \"breach_notice\"\nchannel = \"smtp\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\nfrom = \"a@platform.example\"\nto = [\"dpo@platform.example\"]\ntimeout_ms = 800\n",
        url = hook.url(),
        port = smtp.addr().port(),
    ))
    .unwrap();
    let status = |kind: &str| {
        let p = ev
            .state
            .packets()
            .unwrap()
            .into_iter()
            .find(|p| p.kind == kind)
            .unwrap();
        (p.filing_status().to_string(), p)
    };

    // The webhook stalls (time-outs), the mail server drops the connection: both retried to
    // the limit, then failed — visibly, with every attempt on record.
    hook.set_fault(Some(WebhookFault::Stall));
    smtp.set_fault(Some(SmtpFault::Drop));
    let d = Dispatcher::new(ev.clone(), filing.clone());
    d.sweep().await;
    for kind in ["takedown", "police", "breach_notice"] {
        let (st, p) = status(kind);
        assert_eq!(st, "failed", "{kind}");
        assert_eq!(p.filings[0].attempts, 3, "{kind}: retried to the limit");
    }
    let attempts = (0..ev.ledger.size())
        .filter(|i| {
            matches!(
                ev.ledger.read_entry(*i).unwrap().body,
                leakwatch::ledger::entry::EntryBody::FilingAttempted { ok: false, .. }
            )
        })
        .count();
    assert_eq!(attempts, 9, "every failed attempt is a ledger entry");
    // A failed filing is not retried by itself.
    d.sweep().await;
    assert_eq!(status("police").1.filings[0].attempts, 3);

    // A permanent refusal is not retried at all.
    smtp.set_fault(Some(SmtpFault::Refuse));
    d.refile(&status("police").1.packet_id);
    d.sweep().await;
    let (st, p) = status("police");
    assert_eq!(st, "failed");
    assert_eq!(
        p.filings[0].attempts, 4,
        "one more attempt, refused, not retried"
    );
    assert!(
        p.filings[0].last_answer.contains("550"),
        "{}",
        p.filings[0].last_answer
    );

    // Servers recover; a re-file request files and attempts continue their numbering.
    smtp.set_fault(None);
    hook.set_fault(None);
    for kind in ["takedown", "police"] {
        d.refile(&status(kind).1.packet_id);
    }
    d.sweep().await;
    assert_eq!(status("takedown").0, "filed");
    assert_eq!(status("police").0, "filed");
    assert_eq!(status("police").1.filings[0].attempts, 5);
    assert_eq!(status("breach_notice").0, "failed", "not asked to re-file");
    assert_eq!(smtp.messages().len(), 1);
    assert_eq!(hook.documents().len(), 1);
}
