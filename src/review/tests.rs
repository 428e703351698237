//! Review queue rules on a real evidence store in a temp dir: exclusive claims under a race,
//! four-eyes, reveal on record, packets only after approval.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::config::{Config, EMBEDDED_DEFAULT};
use crate::packets::assemble;

struct Fixture {
    _dir: tempfile::TempDir,
    config: Config,
    ev: Arc<Evidence>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::parse(EMBEDDED_DEFAULT, "test").unwrap();
    config.data_root = dir.path().join("evidence");
    let ev = Arc::new(Evidence::open(&config, &|_, _| {}).unwrap());
    Fixture {
        _dir: dir,
        config,
        ev,
    }
}

fn finding(ev: &Evidence, group: &str, customers: u64) -> String {
    super::fixture::seed_finding(ev, group, customers).unwrap()
}

fn review(f: &Fixture, four_eyes: bool) -> Review {
    Review::new(
        f.ev.clone(),
        ReviewSettings {
            claim_timeout: Duration::from_secs(600),
            four_eyes,
        },
    )
}

#[test]
fn racing_moderators_never_hold_the_same_finding() {
    let f = fixture();
    let ids: Vec<String> = (0..6)
        .map(|i| finding(&f.ev, &format!("70000{i}"), 10))
        .collect();
    let r = Arc::new(review(&f, false));
    let handles: Vec<_> = (0..8)
        .map(|m| {
            let r = r.clone();
            std::thread::spawn(move || r.claim_next(&format!("mod{m}")).unwrap())
        })
        .collect();
    let got: Vec<Option<FindingView>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let claimed: Vec<String> = got.iter().flatten().map(|f| f.finding.clone()).collect();
    let distinct: std::collections::BTreeSet<&String> = claimed.iter().collect();
    assert_eq!(
        claimed.len(),
        6,
        "six findings, eight moderators: six get one"
    );
    assert_eq!(
        distinct.len(),
        6,
        "no finding handed out twice: {claimed:?}"
    );
    assert_eq!(got.iter().filter(|g| g.is_none()).count(), 2);
    for id in &ids {
        let v = f.ev.state.finding(id).unwrap().unwrap();
        assert!(v.claimed_by.is_some());
    }
    // A claimed finding cannot be taken by someone else.
    let holder =
        f.ev.state
            .finding(&ids[0])
            .unwrap()
            .unwrap()
            .claimed_by
            .unwrap();
    let other = if holder == "mod0" { "mod1" } else { "mod0" };
    assert!(matches!(
        r.claim(&ids[0], other),
        Err(ReviewError::Conflict(_))
    ));
}

#[test]
fn decisions_need_the_claim_and_a_reason() {
    let f = fixture();
    let id = finding(&f.ev, "700100", 10);
    let r = review(&f, false);
    assert!(matches!(
        r.decide(&id, "alice", Decision::Approve, "genuine"),
        Err(ReviewError::Conflict(_))
    ));
    r.claim(&id, "alice").unwrap();
    assert!(matches!(
        r.decide(&id, "alice", Decision::Approve, "  "),
        Err(ReviewError::Invalid(_))
    ));
    let v = r
        .decide(&id, "alice", Decision::Reject, "test data")
        .unwrap();
    assert_eq!(v.status, "rejected");
    assert!(r.queue().unwrap().is_empty());
    // A rejected finding builds no packet.
    let err = assemble::build_due(&f.ev, &id, &f.config.packets, "test").unwrap();
    assert!(err.is_empty());
    assert!(f.ev.state.packets().unwrap().is_empty());
}

#[test]
fn four_eyes_needs_a_second_moderator_for_police() {
    let f = fixture();
    let id = finding(&f.ev, "700200", 600);
    let r = review(&f, true);
    r.claim(&id, "alice").unwrap();
    let v = r
        .decide(&id, "alice", Decision::Approve, "real orders")
        .unwrap();
    assert_eq!(v.status, "awaiting_second_approval");
    assert_eq!(
        assemble::kinds_allowed(&v),
        vec![
            crate::packets::PacketKind::Takedown,
            crate::packets::PacketKind::BreachNotice
        ]
    );
    // Alice cannot give the second approval, nor take it from the queue.
    assert!(r.claim_next("alice").unwrap().is_none());
    assert!(matches!(
        r.claim(&id, "alice"),
        Err(ReviewError::Conflict(_))
    ));
    let got = r.claim_next("bob").unwrap().unwrap();
    assert_eq!(got.finding, id);
    let v = r
        .decide(&id, "bob", Decision::Approve, "confirmed")
        .unwrap();
    assert_eq!(v.status, "approved");
    assert!(assemble::kinds_allowed(&v).contains(&crate::packets::PacketKind::Police));
}

#[test]
fn reveal_is_on_record_and_the_card_is_masked() {
    let f = fixture();
    let id = finding(&f.ev, "700300", 10);
    let r = review(&f, false);
    let card = r.card(&id).unwrap();
    let shown = serde_json::to_string(&card).unwrap();
    assert!(shown.contains("138****5678") && shown.contains("张*"));
    assert!(!shown.contains("13812345678") && !shown.contains("科技园"));
    let before = f.ev.ledger.size();
    assert!(matches!(
        r.reveal(&id, "alice", ""),
        Err(ReviewError::Invalid(_))
    ));
    assert_eq!(
        f.ev.ledger.size(),
        before,
        "a refused reveal writes nothing"
    );
    let rows = r.reveal(&id, "alice", "check the ward number").unwrap();
    assert_eq!(rows[0].phone.as_deref(), Some("13812345678"));
    let last = f.ev.ledger.read_entry(f.ev.ledger.size() - 1).unwrap();
    assert_eq!(last.actor, "alice");
    assert!(matches!(last.body, EntryBody::PiiRevealed { .. }));
    assert_eq!(
        f.ev.state.finding(&id).unwrap().unwrap().reveals,
        vec!["alice"]
    );
}

#[test]
fn an_expired_claim_returns_to_the_queue() {
    let f = fixture();
    let id = finding(&f.ev, "700400", 10);
    let r = Review::new(
        f.ev.clone(),
        ReviewSettings {
            claim_timeout: Duration::from_secs(1),
            four_eyes: false,
        },
    );
    r.claim(&id, "alice").unwrap();
    assert!(r.claim_next("bob").unwrap().is_none());
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(r.claim_next("bob").unwrap().unwrap().finding, id);
    assert!(matches!(
        r.decide(&id, "alice", Decision::Approve, "late"),
        Err(ReviewError::Conflict(_))
    ));
}

#[test]
fn approved_findings_yield_packets_once() {
    let f = fixture();
    let id = finding(&f.ev, "700500", 10);
    let r = review(&f, false);
    assert!(matches!(
        assemble::build_and_record(
            &f.ev,
            &id,
            crate::packets::PacketKind::Takedown,
            &f.config.packets,
            "test"
        ),
        Err(assemble::AssembleError::NotApproved { .. })
    ));
    r.claim(&id, "alice").unwrap();
    r.decide(&id, "alice", Decision::Approve, "real").unwrap();
    let built = assemble::build_due(&f.ev, &id, &f.config.packets, "alice").unwrap();
    let kinds: Vec<&str> = built.iter().map(|p| p.kind.as_str()).collect();
    assert_eq!(kinds, vec!["takedown", "breach_notice", "police"]);
    let again = assemble::build_due(&f.ev, &id, &f.config.packets, "alice").unwrap();
    assert_eq!(
        built.iter().map(|p| &p.packet_id).collect::<Vec<_>>(),
        again.iter().map(|p| &p.packet_id).collect::<Vec<_>>()
    );
    assert_eq!(f.ev.state.packets().unwrap().len(), 3);
    // Only the police packet carries the unmasked sample.
    for p in &built {
        let files = assemble::packet_files(&f.ev, p).unwrap();
        let all: Vec<u8> = files.iter().flat_map(|(_, _, b)| b.clone()).collect();
        let text = String::from_utf8_lossy(&all);
        assert_eq!(
            text.contains("13812345678"),
            p.kind == "police",
            "{} packet and the raw phone",
            p.kind
        );
    }
}
