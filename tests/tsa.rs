//! RFC 3161 timestamps end to end against a real openssl TSA on loopback:
//! a checkpoint is timestamped, the stored `.tsr` verifies with
//! `openssl ts -verify` as an outside party would run it, and broken or
//! dishonest TSAs give errors that name the TSA instead of panicking.

mod common;

use std::time::Duration;

use common::tsa::{LocalTsa, TEST_POLICY, closed_port_url, serve_fixed};
use leakwatch::timestamp::{
    TimestampError, TimestampRequest, TsaClient, check_token, embedded_certificates, parse_response,
};
use sha2::{Digest, Sha256};

/// A signed checkpoint as the ledger writes it (C2SP signed note).
const CHECKPOINT: &str = "leakwatch.example/ledger\n\
                          4242\n\
                          n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=\n\
                          \n\
                          \u{2014} leakwatch.example/ledger Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n";

fn client() -> TsaClient {
    TsaClient::new(Duration::from_secs(20)).expect("client")
}

#[tokio::test]
async fn checkpoint_is_timestamped_and_verifies_with_openssl() {
    let tsa = LocalTsa::start().await;
    let ts = client()
        .timestamp(&tsa.url, CHECKPOINT.as_bytes())
        .await
        .expect("timestamp");

    let digest: [u8; 32] = Sha256::digest(CHECKPOINT.as_bytes()).into();
    assert_eq!(ts.url, tsa.url);
    assert_eq!(ts.info.digest, digest);
    assert_eq!(ts.info.policy_oid, TEST_POLICY);
    assert_eq!(ts.info.gen_time.len(), 15, "{}", ts.info.gen_time);
    assert!(ts.info.gen_time.ends_with('Z'));
    assert!(ts.info.nonce.is_some());
    assert!(!ts.info.serial_hex.is_empty());
    assert_eq!(
        ts.info.tsa_name.as_deref(),
        Some("/O=leakwatch tests/CN=leakwatch test TSA")
    );

    // What is stored is the full response, and it verifies as an outside
    // party would check it, only against the data it was made for.
    let (ok, output) = tsa.openssl_verify(CHECKPOINT.as_bytes(), &ts.response_der);
    assert!(ok, "openssl ts -verify failed:\n{output}");
    let (ok, output) = tsa.openssl_verify(b"a different checkpoint\n", &ts.response_der);
    assert!(!ok, "verification of other data must fail:\n{output}");

    // Re-reading the stored bytes later gives the same facts; without the
    // request at hand the nonce check is skipped.
    let (stored, info) = parse_response(&tsa.url, &ts.response_der).expect("reparse");
    assert_eq!(stored, ts.response_der);
    assert_eq!(info, ts.info);
    check_token(&tsa.url, &info, &digest, None).expect("re-check");
    assert!(matches!(
        check_token(&tsa.url, &info, &[0; 32], None),
        Err(TimestampError::WrongImprint { .. })
    ));

    // A second checkpoint gets its own token with a new serial number.
    let again = client()
        .timestamp(&tsa.url, b"leakwatch.example/ledger\n4243\n")
        .await
        .expect("second timestamp");
    assert_ne!(again.info.serial_hex, ts.info.serial_hex);
}

#[tokio::test]
async fn several_tsas_timestamp_the_same_checkpoint() {
    let (a, b) = tokio::join!(LocalTsa::start(), LocalTsa::start());
    let client = client();
    let (ra, rb) = tokio::join!(
        client.timestamp(&a.url, CHECKPOINT.as_bytes()),
        client.timestamp(&b.url, CHECKPOINT.as_bytes())
    );
    let (ra, rb) = (ra.expect("first TSA"), rb.expect("second TSA"));
    assert_eq!(ra.info.digest, rb.info.digest);
    assert!(a.openssl_verify(CHECKPOINT.as_bytes(), &ra.response_der).0);
    assert!(b.openssl_verify(CHECKPOINT.as_bytes(), &rb.response_der).0);
    // Each token chains only to its own TSA's root.
    assert!(!a.openssl_verify(CHECKPOINT.as_bytes(), &rb.response_der).0);
}

#[tokio::test]
async fn embedded_certificates_hold_the_tsa_certificate() {
    let tsa = LocalTsa::start().await;
    let ts = client()
        .timestamp(&tsa.url, CHECKPOINT.as_bytes())
        .await
        .expect("timestamp");
    let tsa_der = tsa.tsa_cert_der();
    assert_eq!(ts.certificates, embedded_certificates(&ts.response_der));
    assert!(
        ts.certificates.contains(&tsa_der),
        "TSA certificate not among {} embedded",
        ts.certificates.len()
    );
    // openssl puts the signer first, which is how `Timestamped` documents it.
    assert_eq!(ts.certificates.first(), Some(&tsa_der));
    // The TSA was run with `-chain ca.crt`, so the root travels along too.
    assert!(ts.certificates.contains(&tsa.ca_cert_der()));
}

#[tokio::test]
async fn our_request_reads_correctly_in_openssl() {
    let tsa = LocalTsa::start().await;
    let request = TimestampRequest::for_data(CHECKPOINT.as_bytes());
    let (ok, text) = tsa.openssl_query_text(&request.der);
    assert!(ok, "{text}");
    assert!(text.contains("Version: 1"), "{text}");
    assert!(text.contains("Hash Algorithm: sha256"), "{text}");
    assert!(text.contains("Certificate required: yes"), "{text}");
    assert!(
        text.contains(&format!("{:X}", request.nonce)),
        "nonce {:X} not in {text}",
        request.nonce
    );
    // openssl prints the imprint as spaced hex; check its first bytes.
    let first = request.digest[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ");
    assert!(text.contains(&first), "imprint {first} not in {text}");
}

#[tokio::test]
async fn a_tsa_answering_another_request_is_caught() {
    let tsa = LocalTsa::start_wrong_nonce().await;
    let client = client();
    // The first request is the one it keeps answering, so it succeeds.
    client
        .timestamp(&tsa.url, CHECKPOINT.as_bytes())
        .await
        .expect("first request");

    // Same data again: the imprint matches but the nonce is the old one.
    let err = client
        .timestamp(&tsa.url, CHECKPOINT.as_bytes())
        .await
        .expect_err("replayed token must be rejected");
    assert!(
        matches!(&err, TimestampError::WrongNonce { url } if *url == tsa.url),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("{}: token's nonce does not match the request's", tsa.url)
    );

    // Different data: the token is for the first checkpoint.
    let err = client
        .timestamp(&tsa.url, b"another checkpoint\n")
        .await
        .expect_err("token for other data must be rejected");
    assert!(
        matches!(&err, TimestampError::WrongImprint { url } if *url == tsa.url),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_real_rejection_is_refused() {
    // The local TSA accepts only SHA-256 (`digests = sha256`), so a SHA-1
    // query made by openssl itself draws a genuine rejection / badAlg.
    let tsa = LocalTsa::start().await;
    let query = tsa.openssl_query(CHECKPOINT.as_bytes(), &["-sha1", "-no_nonce"]);
    let reply = tsa.reply_directly(&query).await;
    let err = parse_response(&tsa.url, &reply).expect_err("rejection");
    match &err {
        TimestampError::Refused { url, status, text } => {
            assert_eq!(url, &tsa.url);
            assert_eq!(*status, 2);
            assert!(text.contains("rejection"), "{text}");
            assert!(text.contains("badAlg"), "{text}");
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!("{}: TSA refused the request: status 2 (", tsa.url)),
        "{shown}"
    );
    assert!(embedded_certificates(&reply).is_empty());
}

#[tokio::test]
async fn garbage_answer_is_malformed_and_names_the_url() {
    let server = serve_fixed(
        200,
        "text/html",
        b"<html><body>Welcome to the captive portal</body></html>".to_vec(),
        Duration::ZERO,
    )
    .await;
    let err = client()
        .timestamp(&server.url, CHECKPOINT.as_bytes())
        .await
        .expect_err("garbage");
    assert!(
        matches!(&err, TimestampError::Malformed { url, .. } if *url == server.url),
        "{err:?}"
    );
    let shown = err.to_string();
    assert!(shown.starts_with(&server.url), "{shown}");
    assert!(shown.contains("text/html"), "{shown}");

    // Well-typed but truncated DER is malformed too.
    let truncated = serve_fixed(
        200,
        "application/timestamp-reply",
        vec![0x30, 0x82, 0x01, 0x00, 0x30, 0x03],
        Duration::ZERO,
    )
    .await;
    let err = client()
        .timestamp(&truncated.url, CHECKPOINT.as_bytes())
        .await
        .expect_err("truncated");
    assert!(matches!(&err, TimestampError::Malformed { .. }), "{err:?}");
}

#[tokio::test]
async fn http_error_is_a_transport_error_with_the_status() {
    let server = serve_fixed(
        500,
        "text/plain",
        b"TSA backend\r\ndown".to_vec(),
        Duration::ZERO,
    )
    .await;
    let err = client()
        .timestamp(&server.url, CHECKPOINT.as_bytes())
        .await
        .expect_err("HTTP 500");
    match &err {
        TimestampError::Transport { url, message } => {
            assert_eq!(url, &server.url);
            assert!(message.starts_with("HTTP 500"), "{message}");
            assert!(message.contains("TSA backend down"), "{message}");
        }
        other => panic!("expected Transport, got {other:?}"),
    }
    assert!(err.to_string().starts_with(&server.url));
}

#[tokio::test]
async fn refused_connection_names_the_url() {
    let url = closed_port_url();
    let err = client()
        .timestamp(&url, CHECKPOINT.as_bytes())
        .await
        .expect_err("nothing listens");
    assert!(
        matches!(&err, TimestampError::Transport { url: u, .. } if *u == url),
        "{err:?}"
    );
    let shown = err.to_string();
    assert!(shown.starts_with(&url), "{shown}");
    assert!(shown.to_lowercase().contains("refused"), "{shown}");
}

#[tokio::test]
async fn silent_tsa_times_out() {
    let server = serve_fixed(
        200,
        "application/timestamp-reply",
        Vec::new(),
        Duration::from_secs(30),
    )
    .await;
    let client = TsaClient::new(Duration::from_millis(300)).expect("client");
    let err = client
        .timestamp(&server.url, CHECKPOINT.as_bytes())
        .await
        .expect_err("timeout");
    match &err {
        TimestampError::Transport { url, message } => {
            assert_eq!(url, &server.url);
            assert!(message.contains("no answer within"), "{message}");
        }
        other => panic!("expected Transport, got {other:?}"),
    }
}
