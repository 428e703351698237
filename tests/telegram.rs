//! Telegram end to end, against a fake Bot API server on 127.0.0.1: the group adapter through
//! capture into the ledger (join by being added, messages, files within and over the cap, chats
//! nobody submitted, reconnects, probes), the staff bot (submit, refusals, review cards with
//! masked samples and buttons, alerts), and `serve` wiring both from the config.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::fake_tg::{self, FakeTg};
use leakwatch::adapters::telegram::TelegramAdapter;
use leakwatch::adapters::telegram::api::BotToken;
use leakwatch::adapters::{ChatAdapter, GroupRef, GroupStatus, JoinOutcome, SubmittedGroups};
use leakwatch::capture::{CaptureService, CaptureSettings};
use leakwatch::evidence::Evidence;
use leakwatch::ledger::entry::{CaptureRecord, EntryBody, LedgerEntry};
use leakwatch::review::{Review, ReviewSettings};
use leakwatch::staffbot::{StaffBot, StaffDeps};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const GROUP_TOKEN: &str = "111111:group-bot-secret-ABCDEFGHIJ";
const GROUP_BOT: i64 = 111111;
const STAFF_TOKEN: &str = "222222:staff-bot-secret-ABCDEFGHIJ";
const STAFF_BOT: i64 = 222222;
const CHAT: i64 = -1001000000001;
const CAP: u64 = 64 * 1024;

/// Wait until `check` holds, within `secs`.
async fn wait_until(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn entries(ev: &Evidence) -> Vec<LedgerEntry> {
    (0..ev.ledger.size())
        .map(|i| ev.ledger.read_entry(i).unwrap())
        .collect()
}

/// `captured` entries by message id.
fn captures(ev: &Evidence) -> BTreeMap<String, Vec<(u64, CaptureRecord)>> {
    let mut out: BTreeMap<String, Vec<(u64, CaptureRecord)>> = BTreeMap::new();
    for (i, e) in entries(ev).into_iter().enumerate() {
        if let EntryBody::Captured(c) = e.body {
            out.entry(c.message_id.clone())
                .or_default()
                .push((i as u64, *c));
        }
    }
    out
}

/// Push an update; returns it as served (with its update_id).
fn kept(fake: &FakeTg, mut u: Value) -> Value {
    let update_id = fake.push(u.clone());
    u["update_id"] = json!(update_id);
    u
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_adapter_captures_what_submitted_groups_post_and_nothing_else() {
    let fake = FakeTg::start(GROUP_TOKEN, GROUP_BOT, "lw_collector_bot").await;
    let s = common::Scratch::new(&format!(
        "[adapters.telegram]\nenabled = true\napi_url = \"{}\"\npoll_timeout_s = 1\nmedia_max_bytes = {CAP}\nreconnect_max_ms = 300\n",
        fake.url()
    ));
    let config = s.config();
    let ev = Arc::new(Evidence::open(&config, &|_, _| {}).unwrap());
    let submitted = Arc::new(SubmittedGroups::default());
    let adapter = Arc::new(
        TelegramAdapter::start(
            config.adapters.telegram.clone(),
            BotToken::parse(GROUP_TOKEN, "test").unwrap(),
            submitted.clone(),
        )
        .unwrap(),
    );
    let capture = CaptureService::new(
        ev.clone(),
        vec![adapter.clone() as Arc<dyn ChatAdapter>],
        CaptureSettings {
            snapshot_interval: Duration::from_secs(3600),
            join_retry: Duration::from_secs(1),
        },
        None,
    );
    let routers = capture.start().unwrap();

    let chat = fake_tg::group_chat(CHAT, "外卖数据 一毛一条", Some("WaiMai_Leaks"));
    fake.add_chat(chat.clone());
    fake.set_member_count(CHAT, 321);

    // Intake submits the group (as the API does); the monitor asks the adapter to join.
    let sub = tokio::task::block_in_place(|| {
        leakwatch::intake::submit(&ev, "https://t.me/WaiMai_Leaks", None, "test").unwrap()
    });
    let group = GroupRef::telegram("@waimai_leaks");
    assert_eq!(sub.group, group);
    submitted.add(group.clone());
    capture.watch(ev.state.case(&sub.case).unwrap().unwrap());
    wait_until(20, "awaiting_invite naming the bot", || {
        let c = ev.state.case(&sub.case).unwrap().unwrap();
        c.join_status.as_deref() == Some("awaiting_invite")
            && c.join_detail
                .as_deref()
                .is_some_and(|d| d.contains("@lw_collector_bot"))
    })
    .await;

    // A member adds the bot: joined, and the group is snapshotted through getChat.
    let admin = fake_tg::user(555, "群主");
    fake.set_member_status(CHAT, GROUP_BOT, "member");
    fake.push(fake_tg::my_chat_member(
        &chat, GROUP_BOT, &admin, "left", "member",
    ));
    wait_until(20, "joined and snapshotted", || {
        let c = ev.state.case(&sub.case).unwrap().unwrap();
        c.join_status.as_deref() == Some("joined")
            && c.group_name.as_deref() == Some("外卖数据 一毛一条")
            && c.member_count == Some(321)
    })
    .await;

    // What the seller posts: an offer, a sample file, a file declared over the cap, a file that
    // says it is small but is not, and an edit. Plus a chat nobody submitted.
    let seller = fake_tg::user(777, "卖家");
    let csv = "姓名,手机,地址,下单时间\n张伟,13812345678,广东省深圳市南山区科技园8栋1203,2026-01-02 12:30\n李娜,13987654321,北京市朝阳区望京SOHO T1 1501,2026-01-02 13:05\n";
    fake.add_file(
        "DOC1",
        "documents/file_1.csv",
        csv.as_bytes().to_vec(),
        csv.len() as u64,
    );
    fake.add_file("BIG1", "documents/file_2.csv", vec![b'x'; 16], 2 * CAP);
    fake.add_file(
        "LIE1",
        "documents/file_3.csv",
        vec![b'y'; 2 * CAP as usize],
        10,
    );
    let mut pushed: BTreeMap<&str, Value> = BTreeMap::new();
    let mut push = |id: &'static str, u: Value| {
        pushed.insert(id, kept(&fake, u));
    };
    push(
        "11",
        fake_tg::text_message(
            &chat,
            11,
            &seller,
            "出售美团外卖数据 0.1元/条 日更3000+ 当天新鲜",
        ),
    );
    push(
        "12",
        fake_tg::document_message(
            &chat,
            12,
            &seller,
            "DOC1",
            "样本.csv",
            Some(csv.len() as u64),
            "今日样本",
        ),
    );
    push(
        "13",
        fake_tg::document_message(
            &chat,
            13,
            &seller,
            "BIG1",
            "全量.csv",
            Some(2 * CAP),
            "全量",
        ),
    );
    push(
        "14",
        fake_tg::document_message(&chat, 14, &seller, "LIE1", "小样本.csv", Some(10), ""),
    );
    let mut edited = fake_tg::text_message(&chat, 11, &seller, "出售美团外卖数据 0.08元/条");
    edited["edited_message"] = edited["message"].take();
    edited["edited_message"]["edit_date"] = json!(1767229999);
    edited.as_object_mut().unwrap().remove("message");
    push("11:edit:1767229999", edited);
    let other = fake_tg::group_chat(-1002000000002, "闲聊群", Some("random_chat"));
    fake.push(fake_tg::text_message(
        &other,
        1,
        &seller,
        "出售外卖数据 0.1元/条",
    ));

    let ids = ["11", "12", "13", "14", "11:edit:1767229999"];
    wait_until(30, "the five messages captured", || {
        let caps = captures(&ev);
        ids.iter().all(|id| caps.contains_key(*id))
    })
    .await;
    // The chat nobody submitted: left, not captured.
    fake.wait_call("leaveChat", 10, |p| {
        p["chat_id"] == json!(-1002000000002_i64)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await; // let extraction entries land

    let caps = captures(&ev);
    let all = entries(&ev);
    assert!(
        caps.values().all(|v| v.len() == 1),
        "a message was captured twice"
    );
    for (id, update) in &pushed {
        let (_, c) = &caps[*id][0];
        assert_eq!(c.platform, "telegram");
        assert_eq!(c.group_id, "@waimai_leaks", "only the submitted group");
        assert_eq!(c.adapter, "telegram:telegram");
        assert_eq!(c.account, GROUP_BOT.to_string());
        assert_eq!(c.sender_id.as_deref(), Some("777"));
        // The raw update, as the Bot API served it.
        let raw: Value = serde_json::from_slice(&ev.blobs.get(&c.raw.sha256).unwrap()).unwrap();
        assert_eq!(&raw, update, "raw blob of {id}");
    }
    assert_eq!(
        caps.len(),
        ids.len(),
        "nothing else was captured: {:?}",
        caps.keys()
    );
    // The sample file: a blob whose SHA-256 is that of the bytes served, and its rows extracted.
    let (doc_index, doc) = &caps["12"][0];
    assert_eq!(doc.media.len(), 1);
    assert_eq!(doc.media[0].sha256.hex(), sha256_hex(csv.as_bytes()));
    assert_eq!(ev.blobs.get(&doc.media[0].sha256).unwrap(), csv.as_bytes());
    assert_eq!(doc.media[0].media_type, "text/csv");
    let rows_from_file: u64 = all
        .iter()
        .filter_map(|e| match &e.body {
            EntryBody::Extracted {
                capture,
                source,
                rows,
                ..
            } if capture == doc_index && *source == doc.media[0].sha256 => Some(*rows),
            _ => None,
        })
        .sum();
    assert_eq!(rows_from_file, 2, "both sample rows extracted from the CSV");
    // Over the cap, declared or discovered while downloading: refused, with the reason.
    for id in ["13", "14"] {
        assert!(caps[id][0].1.media.is_empty(), "{id} stored nothing");
        let reasons: Vec<&String> = all
            .iter()
            .filter_map(|e| match &e.body {
                EntryBody::MediaRefused {
                    message_id, reason, ..
                } if message_id == id => Some(reason),
                _ => None,
            })
            .collect();
        assert_eq!(reasons.len(), 1, "{id}: one media_refused entry");
        assert!(
            reasons[0].contains(&format!("{CAP}-byte limit")),
            "{id}: {}",
            reasons[0]
        );
    }
    // The oversize file declared as such was never fetched.
    assert!(fake.calls("getFile").iter().all(|p| p["file_id"] != "BIG1"));

    // A failing Bot API: the adapter backs off and carries on from the same offset.
    fake.fail_get_updates(3);
    wait_until(30, "three failed polls", || fake.failures_left() == 0).await;
    fake.push(fake_tg::text_message(&chat, 15, &seller, "还有货"));
    wait_until(30, "message 15 after the API recovered", || {
        captures(&ev).contains_key("15")
    })
    .await;
    let offsets = fake.offsets();
    assert!(
        offsets.windows(2).all(|w| w[0] <= w[1]),
        "offsets never go back: {offsets:?}"
    );
    assert!(
        offsets.windows(2).any(|w| w[0] == w[1] && w[0] > 0),
        "a failed poll was retried with the same offset: {offsets:?}"
    );
    assert!(captures(&ev).values().all(|v| v.len() == 1));

    // After a restart the bot is already in the group: join says so at once.
    {
        let again = TelegramAdapter::start(
            config.adapters.telegram.clone(),
            BotToken::parse(GROUP_TOKEN, "test").unwrap(),
            Arc::new(SubmittedGroups::default()),
        )
        .unwrap();
        wait_until(10, "getMe", || again.account().is_some()).await;
        assert_eq!(again.join(&group).await.unwrap(), JoinOutcome::Joined);
        assert!(again.history(&group, None).await.unwrap().is_empty());
        assert!(again.members(&group).await.is_err());
    } // dropped: its poller stops; updates it may have seen stay unconfirmed for the first one

    // Probes: active; the bot kicked is not a takedown; chat not found is gone.
    assert_eq!(
        adapter.probe(&group).await.unwrap(),
        GroupStatus::Active {
            member_count: Some(321)
        }
    );
    fake.set_member_status(CHAT, GROUP_BOT, "kicked");
    fake.push(fake_tg::my_chat_member(
        &chat, GROUP_BOT, &admin, "member", "kicked",
    ));
    wait_until(20, "group_ended (bot removed)", || {
        entries(&ev).iter().any(|e| {
            matches!(&e.body, EntryBody::GroupEnded { reason, operator, .. }
                if reason == "bot_removed" && operator.as_deref() == Some("555"))
        })
    })
    .await;
    assert_eq!(adapter.probe(&group).await.unwrap(), GroupStatus::NotMember);
    fake.remove_chat(CHAT);
    assert_eq!(adapter.probe(&group).await.unwrap(), GroupStatus::Gone);

    // The token is nowhere in the evidence, and the ledger verifies.
    for e in entries(&ev) {
        let text = String::from_utf8_lossy(&e.to_bytes()).into_owned();
        assert!(!text.contains("group-bot-secret"), "{text}");
    }
    drop(routers);
    let report = leakwatch::ledger::verify::verify(&ev.ledger, &ev.blobs, &|_, _| {}).unwrap();
    assert!(report.entries > 10);
}

/// A Telegram case with one captured sample that matched: returns (case id, finding id).
fn seed_finding(ev: &Evidence, group: &str, customers: u64) -> (String, String) {
    leakwatch::review::fixture::seed_finding_in(
        ev,
        &GroupRef::telegram(group),
        Some("张伟 13812345678 in a note must not leak either"),
        customers,
    )
    .unwrap()
}

/// What the staff bot sent to `chat`, in order.
fn sent_to(fake: &FakeTg, chat: i64) -> Vec<Value> {
    fake.calls("sendMessage")
        .into_iter()
        .filter(|p| p["chat_id"] == json!(chat))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_bot_submits_reviews_with_masked_cards_and_refuses_strangers() {
    const INTAKE: i64 = 1001;
    const MODS: i64 = -2002;
    const STRANGER: i64 = 3003;
    let fake = FakeTg::start(STAFF_TOKEN, STAFF_BOT, "lw_staff_bot").await;
    let s = common::Scratch::new(&format!(
        "[staffbot]\nenabled = true\napi_url = \"{}\"\npoll_timeout_s = 1\nreconnect_max_ms = 300\n\
         [[staffbot.chats]]\nid = {INTAKE}\nrole = \"intake\"\nname = \"ivy\"\n\
         [[staffbot.chats]]\nid = {MODS}\nrole = \"moderator\"\nname = \"alice\"\n",
        fake.url()
    ));
    let config = s.config();
    let ev = Arc::new(Evidence::open(&config, &|_, _| {}).unwrap());
    let (case, finding) = tokio::task::block_in_place(|| seed_finding(&ev, "@waimai_sample", 10));
    let submitted = Arc::new(SubmittedGroups::default());
    let capture = CaptureService::new(ev.clone(), vec![], CaptureSettings::default(), None);
    let review = Arc::new(Review::new(
        ev.clone(),
        ReviewSettings::from_config(&config),
    ));
    let bot = StaffBot::start(
        config.staffbot.clone(),
        BotToken::parse(STAFF_TOKEN, "test").unwrap(),
        StaffDeps {
            capture: capture.clone(),
            submitted: submitted.clone(),
            review,
            packets: config.packets.clone(),
        },
    )
    .unwrap();
    let ivy = fake_tg::user(INTAKE, "Ivy");
    let alice = fake_tg::user(4242, "Alice");
    let private = |id: i64| json!({"id": id, "type": "private", "first_name": "x"});
    let mods_chat = json!({"id": MODS, "type": "supergroup", "title": "moderators"});

    // /submit from the intake chat opens a case, recorded as tg:ivy.
    fake.push(fake_tg::text_message(
        &private(INTAKE),
        1,
        &ivy,
        "/submit https://t.me/new_leak_group 群里在卖外卖数据",
    ));
    let reply = fake
        .wait_call("sendMessage", 20, |p| p["chat_id"] == json!(INTAKE))
        .await;
    let text = reply["text"].as_str().unwrap();
    assert!(
        text.contains("opened for telegram:@new_leak_group"),
        "{text}"
    );
    let opened: Vec<LedgerEntry> = entries(&ev)
        .into_iter()
        .filter(|e| matches!(&e.body, EntryBody::CaseOpened { group_id, .. } if group_id == "@new_leak_group"))
        .collect();
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].actor, "tg:ivy");
    assert!(submitted.contains(&GroupRef::telegram("@new_leak_group")));

    // A chat not on the list: one polite refusal, no case, nothing more.
    fake.push(fake_tg::text_message(
        &private(STRANGER),
        1,
        &fake_tg::user(STRANGER, "Mallory"),
        "/submit https://t.me/another_group",
    ));
    fake.push(fake_tg::text_message(
        &private(STRANGER),
        2,
        &fake_tg::user(STRANGER, "Mallory"),
        &format!("/case {case}"),
    ));
    let refusal = fake
        .wait_call("sendMessage", 20, |p| p["chat_id"] == json!(STRANGER))
        .await;
    assert_eq!(
        refusal["text"].as_str().unwrap(),
        leakwatch::staffbot::access::REFUSAL
    );
    // The intake chat may not review.
    fake.push(fake_tg::text_message(&private(INTAKE), 2, &ivy, "/next"));
    fake.wait_call("sendMessage", 20, |p| {
        p["chat_id"] == json!(INTAKE) && p["text"].as_str().unwrap_or("").contains("moderator role")
    })
    .await;
    assert_eq!(
        sent_to(&fake, STRANGER).len(),
        1,
        "one refusal, nothing else"
    );
    assert!(
        ev.state
            .case_for_group("telegram", "@another_group")
            .unwrap()
            .is_none(),
        "no case for a stranger's link"
    );

    // /case from the intake chat: counts, no personal data.
    fake.push(fake_tg::text_message(
        &private(INTAKE),
        3,
        &ivy,
        &format!("/case {case}"),
    ));
    let summary = fake
        .wait_call("sendMessage", 20, |p| {
            p["chat_id"] == json!(INTAKE) && p["text"].as_str().unwrap_or("").contains("Findings:")
        })
        .await;
    let summary = summary["text"].as_str().unwrap();
    assert!(summary.contains("Findings: 1 (1 new)"), "{summary}");

    // /next in the moderators' chat: a card with the masked sample and three buttons.
    fake.push(fake_tg::text_message(&mods_chat, 1, &alice, "/next"));
    let card = fake
        .wait_call("sendMessage", 20, |p| {
            p["chat_id"] == json!(MODS) && p.get("reply_markup").is_some()
        })
        .await;
    let text = card["text"].as_str().unwrap();
    assert!(text.contains(&finding), "{text}");
    assert!(
        text.contains("138****5678") && text.contains("张*") && text.contains("南山区"),
        "{text}"
    );
    let buttons = card["reply_markup"]["inline_keyboard"][0]
        .as_array()
        .unwrap();
    let labels: Vec<&str> = buttons
        .iter()
        .map(|b| b["text"].as_str().unwrap())
        .collect();
    assert_eq!(labels, vec!["Approve", "Reject", "Escalate"]);
    let approve = buttons[0]["callback_data"].as_str().unwrap();
    let card_id = card["_message_id"].as_i64().unwrap();
    let claimed = ev.state.finding(&finding).unwrap().unwrap();
    assert_eq!(claimed.claimed_by.as_deref(), Some("tg:alice"));

    // Pressing Approve decides, answers the press, and takes the buttons away.
    fake.push(fake_tg::callback("cb-1", MODS, card_id, &alice, approve));
    let answer = fake
        .wait_call("answerCallbackQuery", 20, |p| {
            p["callback_query_id"] == "cb-1"
        })
        .await;
    assert!(
        answer["text"].as_str().unwrap().contains("approved"),
        "{answer}"
    );
    let edit = fake
        .wait_call("editMessageReplyMarkup", 20, |p| {
            p["chat_id"] == json!(MODS) && p["message_id"] == json!(card_id)
        })
        .await;
    assert!(
        edit.get("reply_markup").is_none_or(|m| m.is_null()
            || m["inline_keyboard"]
                .as_array()
                .is_some_and(|a| a.is_empty())),
        "buttons removed: {edit}"
    );
    let decided: Vec<LedgerEntry> = entries(&ev)
        .into_iter()
        .filter(|e| matches!(&e.body, EntryBody::ReviewDecided { finding: f, .. } if *f == finding))
        .collect();
    assert_eq!(decided.len(), 1);
    assert_eq!(decided[0].actor, "tg:alice");
    let EntryBody::ReviewDecided {
        decision, reason, ..
    } = &decided[0].body
    else {
        unreachable!()
    };
    assert_eq!(
        (decision.as_str(), reason.as_str()),
        ("approve", "via staff bot")
    );
    // Four eyes (the default): one approval builds the takedown and breach-notice packets.
    fake.wait_call("sendMessage", 60, |p| {
        p["chat_id"] == json!(MODS) && p["text"].as_str().unwrap_or("").contains("Packets built")
    })
    .await;
    let kinds: Vec<String> = ev
        .state
        .packets()
        .unwrap()
        .into_iter()
        .filter(|p| p.finding == finding)
        .map(|p| p.kind)
        .collect();
    assert!(kinds.contains(&"takedown".to_string()), "{kinds:?}");

    // Pressing a stale button again changes nothing.
    fake.push(fake_tg::callback("cb-2", MODS, card_id, &alice, approve));
    fake.wait_call("answerCallbackQuery", 20, |p| {
        p["callback_query_id"] == "cb-2"
    })
    .await;
    let decisions = entries(&ev)
        .iter()
        .filter(|e| matches!(&e.body, EntryBody::ReviewDecided { .. }))
        .count();
    assert_eq!(decisions, 1);

    // Alerts go to moderator and admin chats only; a new finding is announced by itself.
    assert_eq!(bot.alert("filing test alert").await, 1);
    assert!(
        sent_to(&fake, MODS)
            .iter()
            .any(|p| p["text"] == "filing test alert")
    );
    let (_, second) = tokio::task::block_in_place(|| seed_finding(&ev, "@waimai_sample", 3));
    fake.wait_call("sendMessage", 20, |p| {
        p["chat_id"] == json!(MODS)
            && p["text"]
                .as_str()
                .unwrap_or("")
                .contains(&format!("New finding {second}"))
    })
    .await;
    assert!(
        sent_to(&fake, INTAKE)
            .iter()
            .all(|p| !p["text"].as_str().unwrap_or("").contains("New finding"))
    );

    // Nothing the bot sent to Telegram holds the unmasked sample (or the case note).
    let everything = fake.all_bodies();
    for raw in ["13812345678", "张伟", "科技园", "8栋1203"] {
        assert!(!everything.contains(raw), "{raw} reached Telegram");
    }
    assert!(!everything.contains("staff-bot-secret"));
    drop(bot);
}

/// A `leakwatch serve` child that is killed if the test ends early.
struct ServeGuard(std::process::Child);

impl ServeGuard {
    async fn wait_exit(&mut self, secs: u64) -> std::process::ExitStatus {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(tokio::time::Instant::now() < deadline, "serve did not exit");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Everything it wrote to stderr (after it exited).
    fn stderr(&mut self) -> String {
        let mut out = String::new();
        if let Some(mut e) = self.0.stderr.take() {
            std::io::Read::read_to_string(&mut e, &mut out).unwrap();
        }
        out
    }
}

impl Drop for ServeGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_both_bots_from_the_config_and_needs_their_tokens() {
    let group_fake = FakeTg::start(GROUP_TOKEN, GROUP_BOT, "lw_collector_bot").await;
    let staff_fake = FakeTg::start(STAFF_TOKEN, STAFF_BOT, "lw_staff_bot").await;
    let s = common::Scratch::new(&format!(
        "[api]\nlisten = \"127.0.0.1:0\"\n\
         [adapters.telegram]\nenabled = true\napi_url = \"{}\"\npoll_timeout_s = 1\nreconnect_max_ms = 300\ntoken_env = \"LW_TEST_GROUP_TOKEN\"\n\
         [capture]\njoin_retry_s = 1\n\
         [staffbot]\nenabled = true\napi_url = \"{}\"\npoll_timeout_s = 1\nreconnect_max_ms = 300\ntoken_env = \"LW_TEST_STAFF_TOKEN\"\n\
         [[staffbot.chats]]\nid = 1001\nrole = \"admin\"\nname = \"root\"\n",
        group_fake.url(),
        staff_fake.url()
    ));
    // Without its token in the environment, serve refuses to start and says which variable.
    let mut refused = ServeGuard(
        s.cmd(&["serve"])
            .env_remove("LW_TEST_GROUP_TOKEN")
            .env("LW_TEST_STAFF_TOKEN", STAFF_TOKEN)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let status = refused.wait_exit(30).await;
    assert!(!status.success());
    let err = refused.stderr();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("LW_TEST_GROUP_TOKEN"), "{err}");
    assert!(!err.contains("secret"), "{err}");

    let mut serve = ServeGuard(
        s.cmd(&["serve"])
            .env("LW_TEST_GROUP_TOKEN", GROUP_TOKEN)
            .env("LW_TEST_STAFF_TOKEN", STAFF_TOKEN)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Staff submit a group through the staff bot; the collecting bot is added; a message arrives.
    staff_fake.push(fake_tg::text_message(
        &json!({"id": 1001, "type": "private", "first_name": "Root"}),
        1,
        &fake_tg::user(1001, "Root"),
        "/submit t.me/waimai_leaks",
    ));
    let reply = staff_fake
        .wait_call("sendMessage", 30, |p| p["chat_id"] == json!(1001))
        .await;
    assert!(
        reply["text"]
            .as_str()
            .unwrap()
            .contains("opened for telegram:@waimai_leaks"),
        "{reply}"
    );
    let chat = fake_tg::group_chat(CHAT, "外卖数据", Some("waimai_leaks"));
    group_fake.add_chat(chat.clone());
    group_fake.set_member_count(CHAT, 12);
    group_fake.push(fake_tg::my_chat_member(
        &chat,
        GROUP_BOT,
        &fake_tg::user(555, "群主"),
        "left",
        "member",
    ));
    group_fake.push(fake_tg::text_message(
        &chat,
        21,
        &fake_tg::user(777, "卖家"),
        "出售外卖数据 0.1元/条",
    ));
    // Wait until both updates were confirmed (the next poll's offset passed them), then for
    // the capture to be durable, and stop the server.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while group_fake.pending() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "updates never confirmed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    serve.0.kill().unwrap();
    serve.wait_exit(30).await;
    let logs = serve.stderr();
    assert!(!logs.contains("secret"), "a token reached the logs: {logs}");

    let dump = tokio::task::block_in_place(|| s.ok(&["ledger", "dump", "--json"]));
    let lines: Vec<Value> = dump
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .any(|v| v["kind"] == "case_opened" && v["actor"] == "tg:root"),
        "{dump}"
    );
    assert!(
        lines.iter().any(|v| v["kind"] == "captured"
            && v["fields"]["group_id"] == "@waimai_leaks"
            && v["fields"]["message_id"] == "21"),
        "{dump}"
    );
    assert!(!dump.contains("secret"));
}
