//! Unit tests for the RFC 3161 request encoder and response parser. The
//! responses here are assembled by hand with the module's own DER encoder
//! (with a dummy signature), so every field and failure path can be reached
//! without a TSA; the real openssl TSA is exercised in `tests/tsa.rs`.

use super::der::{self, context_constructed, context_primitive, sequence, tlv};
use super::*;
use proptest::prelude::*;

fn oid_tlv(dotted: &str) -> Vec<u8> {
    let arcs: Vec<u64> = dotted.split('.').map(|a| a.parse().unwrap()).collect();
    der::oid(&arcs).unwrap()
}

fn set(parts: &[&[u8]]) -> Vec<u8> {
    tlv(der::SET, &parts.concat())
}

/// Knobs for a hand-made response; `Default` is a well-formed granted one.
struct Fake {
    status: u64,
    with_token: bool,
    status_string: Option<&'static str>,
    fail_info: Option<Vec<u8>>,
    imprint_alg: Vec<u8>,
    digest: Vec<u8>,
    nonce: Option<Vec<u8>>,
    serial: Vec<u8>,
    gen_time: &'static str,
    tsa: Option<Vec<u8>>,
    certs: Vec<Vec<u8>>,
    e_content_type: &'static str,
    wrong_message_digest: bool,
}

impl Default for Fake {
    fn default() -> Fake {
        Fake {
            status: 0,
            with_token: true,
            status_string: None,
            fail_info: None,
            imprint_alg: SHA256_ALGORITHM_ID.to_vec(),
            digest: Sha256::digest(b"checkpoint").to_vec(),
            nonce: Some(der::integer_u64(0x8000_0000_0000_0001)),
            serial: der::integer_u64(0xab),
            gen_time: "20261128153000Z",
            tsa: None,
            certs: vec![
                sequence(&[&der::integer_u64(7)]),
                sequence(&[&der::integer_u64(8)]),
            ],
            e_content_type: TST_INFO_OID,
            wrong_message_digest: false,
        }
    }
}

impl Fake {
    fn tst_info(&self) -> Vec<u8> {
        let imprint = sequence(&[&self.imprint_alg, &der::octet_string(&self.digest)]);
        let accuracy = sequence(&[&der::integer_u64(1)]);
        let mut parts: Vec<Vec<u8>> = vec![
            der::integer_u64(1),
            oid_tlv("1.2.3.4.1"),
            imprint,
            self.serial.clone(),
            tlv(der::GENERALIZED_TIME, self.gen_time.as_bytes()),
            accuracy,
            der::boolean(true),
        ];
        if let Some(n) = &self.nonce {
            parts.push(n.clone());
        }
        if let Some(t) = &self.tsa {
            parts.push(tlv(context_constructed(0), t));
        }
        let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
        sequence(&refs)
    }

    fn token(&self) -> Vec<u8> {
        let tst = self.tst_info();
        let mut md = Sha256::digest(&tst).to_vec();
        if self.wrong_message_digest {
            md[0] ^= 1;
        }
        let attrs = [
            sequence(&[
                &oid_tlv(CONTENT_TYPE_ATTR_OID),
                &set(&[&oid_tlv(TST_INFO_OID)]),
            ]),
            sequence(&[
                &oid_tlv(MESSAGE_DIGEST_ATTR_OID),
                &set(&[&der::octet_string(&md)]),
            ]),
        ]
        .concat();
        let signer = sequence(&[
            &der::integer_u64(1),
            &sequence(&[&sequence(&[]), &der::integer_u64(5)]),
            &SHA256_ALGORITHM_ID,
            &tlv(context_constructed(0), &attrs),
            &sequence(&[&oid_tlv("1.2.840.10045.4.3.2")]),
            &der::octet_string(&[1, 2, 3]),
        ]);
        let encap = sequence(&[
            &oid_tlv(self.e_content_type),
            &tlv(context_constructed(0), &der::octet_string(&tst)),
        ]);
        let certs = self.certs.concat();
        let mut sd: Vec<Vec<u8>> = vec![der::integer_u64(3), set(&[&SHA256_ALGORITHM_ID]), encap];
        if !self.certs.is_empty() {
            sd.push(tlv(context_constructed(0), &certs));
        }
        sd.push(set(&[&signer]));
        let refs: Vec<&[u8]> = sd.iter().map(|p| p.as_slice()).collect();
        sequence(&[
            &oid_tlv(SIGNED_DATA_OID),
            &tlv(context_constructed(0), &sequence(&refs)),
        ])
    }

    fn response(&self) -> Vec<u8> {
        let mut status: Vec<Vec<u8>> = vec![der::integer_u64(self.status)];
        if let Some(s) = self.status_string {
            status.push(sequence(&[&tlv(der::UTF8_STRING, s.as_bytes())]));
        }
        if let Some(bits) = &self.fail_info {
            status.push(tlv(der::BIT_STRING, bits));
        }
        let refs: Vec<&[u8]> = status.iter().map(|p| p.as_slice()).collect();
        let status = sequence(&refs);
        if self.with_token {
            sequence(&[&status, &self.token()])
        } else {
            sequence(&[&status])
        }
    }
}

fn malformed_reason(r: Result<(Vec<u8>, TokenInfo), TimestampError>) -> String {
    match r {
        Err(TimestampError::Malformed { url, reason }) => {
            assert_eq!(url, "http://tsa.test/");
            reason
        }
        other => panic!("expected Malformed, got {other:?}"),
    }
}

const URL: &str = "http://tsa.test/";

#[test]
fn request_round_trips_through_the_decoder() {
    let req = TimestampRequest::for_data(b"checkpoint text\n");
    assert_eq!(
        req.digest,
        <[u8; 32]>::from(Sha256::digest(b"checkpoint text\n"))
    );

    let outer = der::single(&req.der, der::SEQUENCE, "req").unwrap();
    let mut r = outer.reader();
    let version = r.field(der::INTEGER, "version").unwrap();
    assert_eq!(der::small_int(&version, "v").unwrap(), 1);
    let imprint = r.field(der::SEQUENCE, "imprint").unwrap();
    let nonce = r.field(der::INTEGER, "nonce").unwrap();
    let cert_req = r.field(der::BOOLEAN, "certReq").unwrap();
    r.finish("req").unwrap();

    assert_eq!(parse_imprint(&imprint).unwrap(), req.digest);
    let mut m = imprint.reader();
    let alg = m.field(der::SEQUENCE, "alg").unwrap();
    let mut a = alg.reader();
    assert_eq!(read_oid(&mut a, "oid").unwrap(), SHA256_OID);
    assert_eq!(a.field(der::NULL, "null").unwrap().content, b"");
    assert_eq!(
        der::magnitude(nonce.content),
        der::magnitude(&req.nonce.to_be_bytes())
    );
    assert!(
        nonce.content[0] & 0x80 == 0,
        "nonce must encode as non-negative"
    );
    assert_eq!(cert_req.content, [0xff]);
}

#[test]
fn algorithm_id_constant_matches_the_encoder() {
    assert_eq!(
        SHA256_ALGORITHM_ID.to_vec(),
        sequence(&[&oid_tlv(SHA256_OID), &der::null()])
    );
}

#[test]
fn requests_get_fresh_nonces_and_high_bit_nonces_encode() {
    let a = TimestampRequest::for_digest([1; 32]);
    let b = TimestampRequest::for_digest([1; 32]);
    assert_ne!(a.nonce, b.nonce);
    assert_ne!(a.der, b.der);
    let high = TimestampRequest::with_nonce([2; 32], u64::MAX);
    assert!(
        high.der
            .windows(11)
            .any(|w| w == der::integer_u64(u64::MAX))
    );
}

#[test]
fn parses_a_granted_response() {
    let fake = Fake::default();
    let bytes = fake.response();
    let (stored, info) = parse_response(URL, &bytes).unwrap();
    assert_eq!(stored, bytes, "the response is stored exactly as received");
    assert_eq!(info.gen_time, "20261128153000Z");
    assert_eq!(info.serial_hex, "ab");
    assert_eq!(info.policy_oid, "1.2.3.4.1");
    assert_eq!(info.digest.to_vec(), fake.digest);
    assert_eq!(info.nonce, Some(vec![0x00, 0x80, 0, 0, 0, 0, 0, 0, 0x01]));
    assert_eq!(info.tsa_name, None);
    assert_eq!(embedded_certificates(&bytes), fake.certs);
    assert_eq!(embedded_certificates(&fake.token()), fake.certs);
}

#[test]
fn granted_with_mods_and_fractional_time_are_accepted() {
    let fake = Fake {
        status: 1,
        gen_time: "20261128153000.125Z",
        ..Fake::default()
    };
    let (_, info) = parse_response(URL, &fake.response()).unwrap();
    assert_eq!(info.gen_time, "20261128153000.125Z");
}

#[test]
fn tsa_names_are_rendered() {
    let rdn =
        |oid: &str, tag: u8, v: &str| set(&[&sequence(&[&oid_tlv(oid), &tlv(tag, v.as_bytes())])]);
    let name = sequence(&[
        &rdn("2.5.4.6", der::PRINTABLE_STRING, "XX"),
        &rdn("2.5.4.10", der::UTF8_STRING, "Example"),
        &rdn("2.5.4.3", der::UTF8_STRING, "Test\u{7}TSA"),
    ]);
    let fake = Fake {
        tsa: Some(tlv(context_constructed(4), &name)),
        ..Fake::default()
    };
    let (_, info) = parse_response(URL, &fake.response()).unwrap();
    assert_eq!(
        info.tsa_name.as_deref(),
        Some("/C=XX/O=Example/CN=Test?TSA")
    );

    let fake = Fake {
        tsa: Some(tlv(context_primitive(2), b"tsa.example")),
        ..Fake::default()
    };
    let (_, info) = parse_response(URL, &fake.response()).unwrap();
    assert_eq!(info.tsa_name.as_deref(), Some("DNS:tsa.example"));

    // An odd GeneralName is only a missing hint, not a bad token.
    let fake = Fake {
        tsa: Some(tlv(context_primitive(7), &[127, 0, 0, 1])),
        ..Fake::default()
    };
    let (_, info) = parse_response(URL, &fake.response()).unwrap();
    assert_eq!(info.tsa_name, None);
}

#[test]
fn rejection_is_refused_with_status_text() {
    // failInfo badAlg (bit 0) and unacceptedPolicy (bit 15): two octets,
    // no unused bits... plus one unknown bit (bit 9).
    let fake = Fake {
        status: 2,
        with_token: false,
        status_string: Some("digest not\nsupported"),
        fail_info: Some(vec![0x00, 0x80, 0x41]),
        ..Fake::default()
    };
    let err = parse_response(URL, &fake.response()).unwrap_err();
    match &err {
        TimestampError::Refused { url, status, text } => {
            assert_eq!(url, URL);
            assert_eq!(*status, 2);
            assert_eq!(
                text,
                "rejection; badAlg; unacceptedPolicy; failInfo bit 9; \"digest not supported\""
            );
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "http://tsa.test/: TSA refused the request: status 2 (rejection; badAlg; \
         unacceptedPolicy; failInfo bit 9; \"digest not supported\")"
    );

    let bare = sequence(&[&sequence(&[&der::integer_u64(9)])]);
    let err = parse_response(URL, &bare).unwrap_err();
    assert_eq!(
        err.to_string(),
        "http://tsa.test/: TSA refused the request: status 9"
    );
}

#[test]
fn structural_problems_are_malformed() {
    let granted_without_token = Fake {
        with_token: false,
        ..Fake::default()
    };
    assert!(
        malformed_reason(parse_response(URL, &granted_without_token.response()))
            .contains("no timeStampToken")
    );

    let sha1 = Fake {
        imprint_alg: sequence(&[&oid_tlv("1.3.14.3.2.26"), &der::null()]),
        digest: vec![0; 20],
        ..Fake::default()
    };
    assert!(malformed_reason(parse_response(URL, &sha1.response())).contains("not SHA-256"));

    let short = Fake {
        digest: vec![0; 31],
        ..Fake::default()
    };
    assert!(malformed_reason(parse_response(URL, &short.response())).contains("32"));

    let wrong_type = Fake {
        e_content_type: "1.2.840.113549.1.7.1",
        ..Fake::default()
    };
    assert!(malformed_reason(parse_response(URL, &wrong_type.response())).contains("TSTInfo"));

    let tampered = Fake {
        wrong_message_digest: true,
        ..Fake::default()
    };
    assert!(malformed_reason(parse_response(URL, &tampered.response())).contains("message-digest"));

    let bad_time = Fake {
        gen_time: "2026112815300Z",
        ..Fake::default()
    };
    assert!(malformed_reason(parse_response(URL, &bad_time.response())).contains("genTime"));
    let local_time = Fake {
        gen_time: "20261128153000+0100",
        ..Fake::default()
    };
    assert!(malformed_reason(parse_response(URL, &local_time.response())).contains("genTime"));

    let mut trailing = Fake::default().response();
    trailing.push(0);
    assert!(malformed_reason(parse_response(URL, &trailing)).contains("trailing"));

    // The same response with an indefinite outer length.
    let good = Fake::default().response();
    let inner = der::single(&good, der::SEQUENCE, "x")
        .unwrap()
        .content
        .to_vec();
    let mut indefinite = vec![0x30, 0x80];
    indefinite.extend_from_slice(&inner);
    indefinite.extend_from_slice(&[0, 0]);
    assert!(malformed_reason(parse_response(URL, &indefinite)).contains("indefinite"));

    let huge = vec![0u8; MAX_RESPONSE_BYTES + 1];
    assert!(malformed_reason(parse_response(URL, &huge)).contains("accepted"));

    assert!(malformed_reason(parse_response(URL, b"<html>503</html>")).contains("TimeStampResp"));
    assert!(malformed_reason(parse_response(URL, b"")).contains("missing"));
}

#[test]
fn check_token_compares_imprint_then_nonce() {
    let req =
        TimestampRequest::with_nonce(Sha256::digest(b"checkpoint").into(), 0x8000_0000_0000_0001);
    let (_, info) = parse_response(URL, &Fake::default().response()).unwrap();
    check_token(URL, &info, &req.digest, Some(&req)).unwrap();
    check_token(URL, &info, &req.digest, None).unwrap();

    let other = TimestampRequest::with_nonce(req.digest, 42);
    assert!(matches!(
        check_token(URL, &info, &req.digest, Some(&other)),
        Err(TimestampError::WrongNonce { url }) if url == URL
    ));
    assert!(matches!(
        check_token(URL, &info, &[0; 32], Some(&req)),
        Err(TimestampError::WrongImprint { url }) if url == URL
    ));

    // A token that drops the nonce we sent does not answer our request.
    let no_nonce = Fake {
        nonce: None,
        ..Fake::default()
    };
    let (_, info) = parse_response(URL, &no_nonce.response()).unwrap();
    assert!(matches!(
        check_token(URL, &info, &req.digest, Some(&req)),
        Err(TimestampError::WrongNonce { .. })
    ));
    check_token(URL, &info, &req.digest, None).unwrap();

    // Equal numbers compare equal even when padded; negative ones never do.
    let mut padded = info.clone();
    padded.nonce = Some(vec![0, 0, 42]);
    check_token(URL, &padded, &req.digest, Some(&other)).unwrap();
    padded.nonce = Some(vec![0xff]);
    let max = TimestampRequest::with_nonce(req.digest, 0xff);
    assert!(check_token(URL, &padded, &req.digest, Some(&max)).is_err());
}

#[test]
fn error_messages_name_the_url() {
    let e = TimestampError::Transport {
        url: URL.into(),
        message: "connection refused".into(),
    };
    assert_eq!(e.to_string(), "http://tsa.test/: connection refused");
    let e = TimestampError::WrongNonce { url: URL.into() };
    assert_eq!(
        e.to_string(),
        "http://tsa.test/: token's nonce does not match the request's"
    );
    let e = TimestampError::Refused {
        url: URL.into(),
        status: 2,
        text: String::new(),
    };
    assert_eq!(
        e.to_string(),
        "http://tsa.test/: TSA refused the request: status 2"
    );
}

#[test]
fn embedded_certificates_of_garbage_is_empty() {
    assert!(embedded_certificates(b"").is_empty());
    assert!(embedded_certificates(b"\x30\x03\x02\x01\x00").is_empty());
    let no_certs = Fake {
        certs: vec![],
        ..Fake::default()
    };
    assert!(embedded_certificates(&no_certs.response()).is_empty());
}

#[test]
fn printable_excerpt_folds_and_truncates() {
    assert_eq!(printable_excerpt(b"  a\r\n\tb\x00c  ", 50), "a b c");
    assert_eq!(printable_excerpt(b"abcdef", 3), "abc…");
    assert_eq!(printable_excerpt(b"", 3), "");
}

proptest! {
    #[test]
    fn parse_response_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let _ = parse_response(URL, &bytes);
        let _ = embedded_certificates(&bytes);
    }

    #[test]
    fn mutated_responses_never_panic(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
    ) {
        let name = sequence(&[&set(&[&sequence(&[&oid_tlv("2.5.4.3"), &tlv(der::UTF8_STRING, b"T")])])]);
        let mut bytes = Fake {
            tsa: Some(tlv(context_constructed(4), &name)),
            status_string: Some("ok"),
            fail_info: Some(vec![0]),
            ..Fake::default()
        }
        .response();
        for (at, value) in edits {
            let n = bytes.len();
            bytes[at % n] = value;
        }
        let _ = parse_response(URL, &bytes);
        let _ = embedded_certificates(&bytes);
        bytes.truncate(cut % (bytes.len() + 1));
        let _ = parse_response(URL, &bytes);
        let _ = embedded_certificates(&bytes);
    }
}
