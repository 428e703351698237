//! The OneBot v11 adapter against the simulator, over real sockets on loopback: the invite flow,
//! media, dropped connections, every transport and dialect, and the private-address guard.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use leakwatch::adapters::netguard::HostResolver;
use leakwatch::adapters::onebot::OneBotAdapter;
use leakwatch::adapters::{
    AdapterEvent, ChatAdapter, ChatMessage, GroupRef, GroupStatus, JoinOutcome, MediaKind,
    SubmittedGroups,
};
use leakwatch::config::Config;
use leakwatch::simulator::scenario::Scenario;
use leakwatch::simulator::{SimOptions, Simulator};
use serde_json::{Value, json};
use tokio::sync::mpsc::Receiver;

const TOKEN: &str = "test-token";
const GROUP_A: i64 = 800000001; // bot not a member: needs the invite flow
const GROUP_B: i64 = 800000002; // bot already a member

fn scenario(ids: &str, format: &str, history: &str) -> Scenario {
    let text = leakwatch::simulator::scenario::DEFAULT_SCENARIO
        .replace("ids = \"number\"", &format!("ids = \"{ids}\""))
        .replace(
            "message_format = \"array\"",
            &format!("message_format = \"{format}\""),
        )
        .replace("history = \"napcat\"", &format!("history = \"{history}\""))
        .replace("auto_invite = true", "auto_invite = false");
    Scenario::parse(&text, "test").unwrap()
}

async fn start_sim(s: Scenario, opts: SimOptions) -> Simulator {
    Simulator::start(
        "127.0.0.1:0",
        s,
        SimOptions {
            token: Some(TOKEN.into()),
            ..opts
        },
    )
    .await
    .unwrap()
}

use common::free_port;

/// An adapter config block, parsed the way `leakwatch` parses its config file.
fn adapter_config(body: &str) -> leakwatch::config::OneBotConfig {
    let text = format!(
        "[[adapters.onebot]]\nname = \"qq-test\"\naccess_token = \"{TOKEN}\"\nreconnect_max_ms = 500\naction_timeout_ms = 3000\nhistory_page = 40\n{body}\n"
    );
    Config::parse(&text, "test")
        .unwrap()
        .adapters
        .onebot
        .remove(0)
}

struct Harness {
    sim: Simulator,
    adapter: OneBotAdapter,
    events: Receiver<AdapterEvent>,
    http: reqwest::Client,
}

impl Harness {
    async fn control(&self, path: &str, body: Value) -> Value {
        self.http
            .post(format!("http://{}/_sim/{path}", self.sim.addr))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("http://{}/_sim/{path}", self.sim.addr))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn posted_ids(&self, group: i64) -> Vec<String> {
        self.get(&format!("messages/{group}"))
            .await
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["message_id"].as_str().unwrap().to_string())
            .collect()
    }

    /// Wait for the next event matching `pred`, within `secs`.
    async fn expect(&mut self, secs: u64, pred: impl Fn(&AdapterEvent) -> bool) -> AdapterEvent {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let ev = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .expect("timed out waiting for an event")
                .expect("event stream ended");
            if pred(&ev) {
                return ev;
            }
        }
    }

    /// Collect messages of `group` until every id in `want` has arrived; fails on a duplicate.
    async fn collect(
        &mut self,
        group: i64,
        want: &BTreeSet<String>,
        secs: u64,
    ) -> Vec<ChatMessage> {
        let mut got: Vec<ChatMessage> = Vec::new();
        let mut seen = BTreeSet::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while !want.is_subset(&seen) {
            let ev = match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(ev)) => ev,
                _ => panic!(
                    "timed out: {} of {} messages received",
                    want.intersection(&seen).count(),
                    want.len()
                ),
            };
            if let AdapterEvent::Message(m) = ev
                && m.group.id == group.to_string()
            {
                assert!(
                    seen.insert(m.message_id.clone()),
                    "message {} delivered twice",
                    m.message_id
                );
                if want.contains(&m.message_id) {
                    got.push(*m);
                }
            }
        }
        got
    }
}

async fn harness(
    s: Scenario,
    mode: &str,
    resolver: Option<Arc<dyn HostResolver>>,
    extra: &str,
) -> Harness {
    let reverse_port = free_port();
    let (opts, body) = match mode {
        "forward" => (SimOptions::default(), String::new()),
        "split" => (SimOptions::default(), String::new()),
        "reverse" => (
            SimOptions {
                reverse_url: Some(format!("ws://127.0.0.1:{reverse_port}/")),
                ..Default::default()
            },
            format!("mode = \"reverse-ws\"\nlisten = \"127.0.0.1:{reverse_port}\"\n"),
        ),
        "http" => (
            SimOptions {
                reverse_event_url: Some(format!("ws://127.0.0.1:{reverse_port}/")),
                ..Default::default()
            },
            String::new(),
        ),
        _ => unreachable!(),
    };
    let sim = start_sim(s, opts).await;
    let body = match mode {
        "forward" => format!("mode = \"forward-ws\"\nurl = \"ws://{}/\"\n", sim.addr),
        "split" => format!(
            "mode = \"forward-ws\"\napi_url = \"ws://{0}/api\"\nevent_url = \"ws://{0}/event\"\n",
            sim.addr
        ),
        "http" => format!(
            "mode = \"http\"\nurl = \"http://{}\"\nlisten = \"127.0.0.1:{reverse_port}\"\n",
            sim.addr
        ),
        _ => body,
    };
    let cfg = adapter_config(&format!("{body}{extra}"));
    let submitted = Arc::new(SubmittedGroups::default());
    let adapter = match resolver {
        Some(r) => OneBotAdapter::start_with_resolver(cfg, submitted, r)
            .await
            .unwrap(),
        None => OneBotAdapter::start(cfg, submitted).await.unwrap(),
    };
    let events = adapter.take_events().unwrap();
    assert!(
        adapter.take_events().is_none(),
        "the event stream has one consumer"
    );
    let mut h = Harness {
        sim,
        adapter,
        events,
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
    };
    h.expect(10, |e| matches!(e, AdapterEvent::Connected)).await;
    h
}

fn group(id: i64) -> GroupRef {
    GroupRef::qq(id.to_string())
}

#[tokio::test]
async fn invite_flow_accepts_submitted_groups_only_and_media_arrives_with_bytes() {
    let mut h = harness(
        scenario("number", "array", "napcat"),
        "forward",
        None,
        "allow_private_media = true\n",
    )
    .await;
    // Not yet a member of A: join says what it waits for.
    let outcome = h.adapter.join(&group(GROUP_A)).await.unwrap();
    let JoinOutcome::AwaitingInvite { instructions } = outcome else {
        panic!("expected AwaitingInvite, got {outcome:?}");
    };
    assert!(
        instructions.contains("3000000001") && instructions.contains("800000001"),
        "{instructions}"
    );
    // Already in B.
    assert_eq!(
        h.adapter.join(&group(GROUP_B)).await.unwrap(),
        JoinOutcome::Joined
    );

    // A staff member invites the bot into A (submitted): accepted.
    assert_eq!(
        h.control(&format!("invite/{GROUP_A}"), json!({})).await["sent"],
        true
    );
    h.expect(
        10,
        |e| matches!(e, AdapterEvent::Joined { group, .. } if group.id == "800000001"),
    )
    .await;
    let stats = h.get("stats").await;
    assert_eq!(stats["groups"]["800000001"]["bot_in"], true);

    // Live messages of every kind, with media bytes.
    for kind in ["offer", "sample", "file", "image", "chatter"] {
        h.control(&format!("post/{GROUP_A}"), json!({"kind": kind}))
            .await;
    }
    let want: BTreeSet<String> = h.posted_ids(GROUP_A).await.into_iter().collect();
    let got = h.collect(GROUP_A, &want, 20).await;
    assert_eq!(got.len(), 5);
    let offer = &got[0];
    assert!(offer.text.contains("外卖"), "{}", offer.text);
    let sender = offer.sender.id.as_deref().unwrap_or("");
    assert!(
        ["2100000001", "2100000002"].contains(&sender),
        "sender {sender}"
    );
    assert!(offer.posted_at.is_some_and(|t| t > 1_700_000_000));
    assert!(offer.raw.starts_with(b"{"), "raw JSON kept");
    let file = got
        .iter()
        .find(|m| m.media.iter().any(|x| x.kind == MediaKind::File))
        .unwrap();
    let f = &file.media[0];
    let bytes = f.content.as_ref().expect("file bytes fetched");
    let name = f.name.clone().unwrap();
    match name.rsplit('.').next().unwrap() {
        "xlsx" => assert_eq!(&bytes[..2], b"PK"),
        "csv" => assert!(String::from_utf8_lossy(bytes).starts_with("姓名,电话")),
        "txt" => assert!(!bytes.is_empty()),
        other => panic!("unexpected file type {other}"),
    }
    let image = got
        .iter()
        .find(|m| m.media.iter().any(|x| x.kind == MediaKind::Image))
        .unwrap();
    let img = image
        .media
        .iter()
        .find(|x| x.kind == MediaKind::Image)
        .unwrap();
    assert_eq!(&img.content.as_ref().unwrap()[..8], b"\x89PNG\r\n\x1a\n");
    assert!(h.get("stats").await["media_requests"].as_u64().unwrap() >= 2);
}

#[tokio::test]
async fn invite_for_an_unsubmitted_group_is_declined() {
    let mut h = harness(scenario("number", "array", "napcat"), "forward", None, "").await;
    // Group A was never submitted (no join call): its invitation is declined.
    h.control(&format!("invite/{GROUP_A}"), json!({})).await;
    let ev = h
        .expect(10, |e| {
            matches!(
                e,
                AdapterEvent::InviteDeclined { .. } | AdapterEvent::Joined { .. }
            )
        })
        .await;
    assert!(
        matches!(ev, AdapterEvent::InviteDeclined { ref group, .. } if group.id == "800000001"),
        "{ev:?}"
    );
    let stats = h.get("stats").await;
    assert_eq!(stats["groups"]["800000001"]["bot_in"], false);
    assert_eq!(stats["groups"]["800000001"]["pending_invites"], 0);
}

#[tokio::test]
async fn two_thousand_messages_through_dropped_connections_arrive_exactly_once() {
    let mut h = harness(scenario("number", "array", "napcat"), "forward", None, "").await;
    h.control("fault", json!({"drop_every_ms": 1200})).await;
    let resp = h
        .http
        .post(format!(
            "http://{}/_sim/burst/{GROUP_B}?count=2000&per_s=500",
            h.sim.addr
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    // Wait until the simulator has posted all of them, then until every one has arrived.
    let mut ids = Vec::new();
    for _ in 0..200 {
        ids = h.posted_ids(GROUP_B).await;
        if ids.len() >= 2000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ids.len(), 2000);
    h.control("fault", json!({"drop_every_ms": 0})).await;
    let want: BTreeSet<String> = ids.into_iter().collect();
    let got = h.collect(GROUP_B, &want, 60).await;
    assert_eq!(got.len(), 2000);
    let drops = h.get("stats").await["drops"].as_u64().unwrap();
    assert!(
        drops >= 2,
        "the connection should have been dropped repeatedly, was {drops}"
    );
    assert!(
        got.iter().any(|m| m.from_history),
        "some messages must have come from the backfill"
    );
    // Nothing more arrives: no late duplicates.
    let extra = tokio::time::timeout(Duration::from_millis(1500), async {
        loop {
            if let Some(AdapterEvent::Message(m)) = h.events.recv().await {
                return m.message_id;
            }
        }
    })
    .await;
    assert!(extra.is_err(), "a message arrived twice: {extra:?}");
}

/// One run of the same scenario for a transport / id / format / dialect combination.
async fn same_scenario(mode: &str, ids: &str, format: &str, dialect: &str) {
    let mut h = harness(
        scenario(ids, format, dialect),
        mode,
        None,
        "allow_private_media = true\n",
    )
    .await;
    assert_eq!(
        h.adapter.join(&group(GROUP_B)).await.unwrap(),
        JoinOutcome::Joined
    );
    // Some history before anything is live: the backfill reads it in the dialect.
    for _ in 0..30 {
        h.control(&format!("post/{GROUP_B}"), json!({"kind": "offer"}))
            .await;
    }
    let history = h.adapter.history(&group(GROUP_B), None).await.unwrap();
    assert_eq!(
        history.len(),
        30,
        "{mode} {ids} {format} {dialect}: history"
    );
    let hist_ids: Vec<String> = history.iter().map(|m| m.message_id.clone()).collect();
    let posted = h.posted_ids(GROUP_B).await;
    assert_eq!(hist_ids, posted, "history in posting order");
    // Live traffic with a drop in the middle.
    for i in 0..40 {
        let kind = ["offer", "sample", "chatter", "image"][i % 4];
        h.control(&format!("post/{GROUP_B}"), json!({"kind": kind}))
            .await;
        if i == 20 {
            h.control("fault", json!({"drop_now": true})).await;
        }
    }
    let posted = h.posted_ids(GROUP_B).await;
    let want: BTreeSet<String> = posted[30..].iter().cloned().collect();
    let got = h.collect(GROUP_B, &want, 30).await;
    assert_eq!(got.len(), 40, "{mode} {ids} {format} {dialect}");
    let with_images = got
        .iter()
        .filter(|m| m.media.iter().any(|x| x.content.is_ok()))
        .count();
    assert_eq!(with_images, 10, "{mode}: every image fetched");
    for m in &got {
        assert!(m.sender.id.is_some(), "sender kept");
        assert_eq!(m.group.id, GROUP_B.to_string());
    }
}

#[tokio::test]
async fn forward_ws_numeric_ids_arrays_napcat() {
    same_scenario("forward", "number", "array", "napcat").await;
}

#[tokio::test]
async fn forward_ws_split_string_ids_cq_strings_lagrange() {
    same_scenario("split", "string", "string", "lagrange").await;
}

#[tokio::test]
async fn reverse_ws_string_ids_arrays_napcat() {
    same_scenario("reverse", "string", "array", "napcat").await;
}

#[tokio::test]
async fn reverse_ws_numeric_ids_cq_strings_lagrange() {
    same_scenario("reverse", "number", "string", "lagrange").await;
}

#[tokio::test]
async fn http_api_with_reverse_ws_events() {
    same_scenario("http", "number", "string", "napcat").await;
}

/// Resolves every name to loopback, the way a hostile DNS answer would.
struct ToLoopback;

#[async_trait::async_trait]
impl HostResolver for ToLoopback {
    async fn lookup(&self, _host: &str, port: u16) -> std::io::Result<Vec<std::net::SocketAddr>> {
        Ok(vec![std::net::SocketAddr::from(([127, 0, 0, 1], port))])
    }
}

#[tokio::test]
async fn media_on_loopback_is_refused_by_default_and_nothing_is_fetched() {
    let mut h = harness(
        scenario("number", "array", "napcat"),
        "forward",
        Some(Arc::new(ToLoopback)),
        "",
    )
    .await;
    h.control(&format!("post/{GROUP_B}"), json!({"kind": "image"}))
        .await;
    // A name that resolves to loopback is refused too.
    let port = h.sim.addr.port();
    h.control(
        &format!("post/{GROUP_B}"),
        json!({"text": format!("看图[CQ:image,file=x.png,url=http://media.test:{port}/media/x]")}),
    )
    .await;
    let refused = h
        .expect(10, |e| matches!(e, AdapterEvent::MediaRefused { .. }))
        .await;
    let AdapterEvent::MediaRefused { reason, .. } = refused else {
        unreachable!()
    };
    assert!(
        reason.contains("refused") && reason.contains("127.0.0.1"),
        "{reason}"
    );
    let want: BTreeSet<String> = h.posted_ids(GROUP_B).await.into_iter().collect();
    let got = h.collect(GROUP_B, &want, 10).await;
    for m in &got {
        for item in &m.media {
            let err = item
                .content
                .as_ref()
                .expect_err("loopback media must not be fetched");
            assert!(err.contains("refused"), "{err}");
        }
    }
    assert!(got.iter().any(|m| {
        m.media
            .iter()
            .any(|i| i.url.as_deref().unwrap_or("").contains("media.test"))
    }));
    assert_eq!(
        h.get("stats").await["media_requests"],
        0,
        "no request may reach the media server"
    );
}

#[tokio::test]
async fn a_file_over_the_cap_is_an_error_event_not_a_crash() {
    let mut h = harness(
        scenario("number", "array", "napcat"),
        "forward",
        None,
        "allow_private_media = true\nmedia_max_bytes = 64\n",
    )
    .await;
    h.control(&format!("post/{GROUP_B}"), json!({"kind": "file"}))
        .await;
    h.control(&format!("post/{GROUP_B}"), json!({"kind": "image"}))
        .await;
    let ev = h
        .expect(10, |e| matches!(e, AdapterEvent::MediaRefused { .. }))
        .await;
    let AdapterEvent::MediaRefused { reason, .. } = ev else {
        unreachable!()
    };
    assert!(reason.contains("64-byte limit"), "{reason}");
    let want: BTreeSet<String> = h.posted_ids(GROUP_B).await.into_iter().collect();
    let got = h.collect(GROUP_B, &want, 10).await;
    assert_eq!(got.len(), 2);
    assert!(
        got.iter()
            .all(|m| m.media.iter().all(|i| i.content.is_err()))
    );
    // The adapter still works afterwards.
    h.control(&format!("post/{GROUP_B}"), json!({"text": "还在吗"}))
        .await;
    let ev = h
        .expect(10, |e| matches!(e, AdapterEvent::Message(_)))
        .await;
    assert!(matches!(ev, AdapterEvent::Message(m) if m.text == "还在吗"));
}

#[tokio::test]
async fn expired_media_is_reported_not_lost_silently() {
    let mut h = harness(
        scenario("number", "array", "napcat"),
        "forward",
        None,
        "allow_private_media = true\n",
    )
    .await;
    h.control("fault", json!({"expire_media": true})).await;
    h.control(&format!("post/{GROUP_B}"), json!({"kind": "image"}))
        .await;
    let ev = h
        .expect(10, |e| matches!(e, AdapterEvent::MediaRefused { .. }))
        .await;
    let AdapterEvent::MediaRefused { reason, .. } = ev else {
        unreachable!()
    };
    assert!(reason.contains("404"), "{reason}");
}

#[tokio::test]
async fn kicked_and_dismissed_groups_are_reported_and_probed() {
    let mut h = harness(scenario("string", "array", "napcat"), "forward", None, "").await;
    assert!(matches!(
        h.adapter.probe(&group(GROUP_B)).await.unwrap(),
        GroupStatus::Active {
            member_count: Some(128)
        }
    ));
    let info = h.adapter.group_info(&group(GROUP_B)).await.unwrap();
    assert_eq!(info.name.as_deref(), Some("同城外卖单 医院酒店网吧"));
    let members = h.adapter.members(&group(GROUP_B)).await.unwrap();
    assert!(
        members
            .iter()
            .any(|m| m.user_id == "2100000003" && m.card.as_deref() == Some("实时单"))
    );

    h.control("fault", json!({"kick": GROUP_B})).await;
    let ev = h
        .expect(10, |e| matches!(e, AdapterEvent::BotRemoved { .. }))
        .await;
    assert!(matches!(ev, AdapterEvent::BotRemoved { ref group, .. } if group.id == "800000002"));
    assert_eq!(
        h.adapter.probe(&group(GROUP_B)).await.unwrap(),
        GroupStatus::NotMember
    );

    // Back in through an invite, then the group is dismissed.
    h.adapter.join(&group(GROUP_B)).await.unwrap();
    h.control(&format!("invite/{GROUP_B}"), json!({})).await;
    h.expect(10, |e| matches!(e, AdapterEvent::Joined { .. }))
        .await;
    h.control("fault", json!({"dismiss": GROUP_B})).await;
    let ev = h
        .expect(10, |e| matches!(e, AdapterEvent::GroupDismissed { .. }))
        .await;
    assert!(matches!(ev, AdapterEvent::GroupDismissed { ref group } if group.id == "800000002"));
    assert_eq!(
        h.adapter.probe(&group(GROUP_B)).await.unwrap(),
        GroupStatus::Gone
    );
}

#[tokio::test]
async fn flaky_implementation_errors_are_retried() {
    let h = harness(scenario("number", "array", "napcat"), "forward", None, "").await;
    for _ in 0..25 {
        h.control(&format!("post/{GROUP_B}"), json!({"kind": "chatter"}))
            .await;
    }
    // Every third action fails with a retcode, and answers are slow.
    h.control("fault", json!({"error_every": 3, "slow_ms": 20}))
        .await;
    let before = h.get("stats").await["actions"].as_u64().unwrap();
    for _ in 0..4 {
        let history = h.adapter.history(&group(GROUP_B), None).await.unwrap();
        assert_eq!(history.len(), 25);
    }
    // Four histories need at least four answers; with every third action failing, some of
    // those calls failed and were retried.
    let used = h.get("stats").await["actions"].as_u64().unwrap() - before;
    assert!(used >= 5, "only {used} actions: no failure was exercised");
}

#[tokio::test]
async fn wrong_token_is_refused_by_the_simulator_and_the_adapter_keeps_trying() {
    let sim = start_sim(scenario("number", "array", "napcat"), SimOptions::default()).await;
    let text = format!(
        "[[adapters.onebot]]\nname = \"bad\"\naccess_token = \"wrong\"\nreconnect_max_ms = 200\nmode = \"forward-ws\"\nurl = \"ws://{}/\"\n",
        sim.addr
    );
    let cfg = Config::parse(&text, "t").unwrap().adapters.onebot.remove(0);
    let adapter = OneBotAdapter::start(cfg, Arc::new(SubmittedGroups::default()))
        .await
        .unwrap();
    let mut events = adapter.take_events().unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    let AdapterEvent::Disconnected { reason } = ev else {
        panic!("{ev:?}")
    };
    assert!(reason.contains("401"), "{reason}");
}
