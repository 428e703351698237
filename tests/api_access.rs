//! The permission matrix, exhaustively: every route of the running API × every role × no token
//! and a bad token. Allowed calls may fail for other reasons (404 for a made-up id, 400 for an
//! empty body), but never with 401 or 403; refused calls get exactly 401 (no or bad token) or
//! 403 (wrong role), and change nothing in the ledger.

mod common;

use std::sync::Arc;

use leakwatch::api::tokens::{Role, TokenStore};
use leakwatch::api::{Access, PERMISSIONS};
use leakwatch::evidence::Evidence;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_every_role_no_token_and_bad_token() {
    let s = common::Scratch::new(
        "[api]\nlisten = \"127.0.0.1:0\"\n[simulator]\nenabled = false\n[matching]\nauto = false\n",
    );
    let config = s.config();
    let store = TokenStore::new(&config.keys_dir());
    let tokens: Vec<(Role, String)> = Role::ALL
        .iter()
        .map(|r| {
            (
                *r,
                store.create(*r, &format!("{}-user", r.as_str())).unwrap().0,
            )
        })
        .collect();
    let ev = Arc::new(Evidence::open(&config, &|_, _| {}).unwrap());
    let running = leakwatch::service::start(ev.clone(), &config)
        .await
        .unwrap();
    let base = format!("http://{}", running.api_addr);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();

    let call = async |method: &str, path: &str, token: Option<&str>| -> u16 {
        let url = format!("{base}{}", path.replace('{', "x-").replace('}', ""));
        let mut req = if method == "GET" {
            client.get(&url)
        } else {
            client
                .post(&url)
                .header("content-type", "application/json")
                .body("{}")
        };
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap().status().as_u16()
    };

    let mut checked = 0;
    // Console routes (session cookies + CSRF) are swept by the console test.
    let api_routes: Vec<_> = PERMISSIONS
        .iter()
        .filter(|p| p.via == Access::Token)
        .collect();
    for p in &api_routes {
        let public = p.roles.is_empty();
        let before = ev.ledger.size();
        let none = call(p.method, p.path, None).await;
        let bad = call(p.method, p.path, Some("lw_admin_0000000000000000")).await;
        if public {
            assert!(none < 400, "{} {} is public: got {none}", p.method, p.path);
        } else {
            assert_eq!(none, 401, "{} {} without a token", p.method, p.path);
            assert_eq!(bad, 401, "{} {} with a bad token", p.method, p.path);
            assert_eq!(
                ev.ledger.size(),
                before,
                "a refused call wrote to the ledger"
            );
        }
        for (role, token) in &tokens {
            let before = ev.ledger.size();
            let got = call(p.method, p.path, Some(token)).await;
            if public || p.roles.contains(role) {
                assert!(
                    got != 401 && got != 403,
                    "{} {} as {}: allowed, got {got}",
                    p.method,
                    p.path,
                    role.as_str()
                );
            } else {
                assert_eq!(got, 403, "{} {} as {}", p.method, p.path, role.as_str());
                assert_eq!(
                    ev.ledger.size(),
                    before,
                    "a refused call wrote to the ledger"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, api_routes.len() * 4);

    // The OpenAPI document served is the one generated from the matrix.
    let doc: serde_json::Value = client
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc, leakwatch::api::openapi_document());
    // Metrics are Prometheus text.
    let admin = &tokens.iter().find(|(r, _)| *r == Role::Admin).unwrap().1;
    let text = client
        .get(format!("{base}/metrics"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "leakwatch_messages_captured_total",
        "leakwatch_groups_watched",
        "leakwatch_review_queue_depth",
        "leakwatch_filing_failures",
        "leakwatch_checkpoint_age_seconds",
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{name} in /metrics"
        );
    }
    drop(running);
}
