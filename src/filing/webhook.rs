//! Webhook filing: one signed JSON document per packet, POSTed to a receiver's URL.
//!
//! # The document (version 1)
//!
//! `Content-Type: application/json`, UTF-8:
//!
//! ```json
//! {
//!   "version": 1,
//!   "packet_id": "lw-takedown-0123456789abcdef",
//!   "kind": "takedown",
//!   "subject": "one line",
//!   "body_text": "the letter, plain text",
//!   "attachments": [
//!     { "name": "report.pdf", "content_type": "application/pdf",
//!       "sha256": "<64 lowercase hex digits of the decoded bytes>",
//!       "base64": "<RFC 4648 §4 standard alphabet, padded>" }
//!   ]
//! }
//! ```
//!
//! A later version adds fields or changes `version`; a receiver should refuse versions it does
//! not know.
//!
//! # The signature
//!
//! Two headers come with every request:
//!
//! - `X-Leakwatch-Timestamp: <unix seconds, decimal>`
//! - `X-Leakwatch-Signature: sha256=<lowercase hex of HMAC-SHA256(key, timestamp "." body)>`
//!
//! where `key` is the shared secret's bytes, `timestamp` the header's value exactly as sent,
//! `"."` one full stop (0x2E) and `body` the raw request body bytes as received (verify before
//! parsing JSON). To verify: recompute the MAC, compare in constant time, and refuse a timestamp
//! more than [`SIGNATURE_TOLERANCE_SECS`] away from your clock, which bounds replays. With
//! OpenSSL: `printf '%s.%s' "$TS" "$BODY" | openssl dgst -sha256 -hmac "$KEY"`.
//! [`verify_signature`] does the MAC part.
//!
//! # The answer
//!
//! Any 2xx is acceptance; a JSON object with an `id` (string or number) in the answer becomes
//! the receipt's `message_id`. 408, 429 and 5xx are retried; other statuses are final.
//! Redirects are not followed (the body is signed for this URL).

use std::io::Read;
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{
    Filer, FilingError, FilingReceipt, FilingRequest, Reply, WebhookRoute, error_chain,
    is_loopback_host, read_secret_env, sha256_hex,
};

/// `version` of the document this module writes.
pub const DOCUMENT_VERSION: u32 = 1;
pub const TIMESTAMP_HEADER: &str = "X-Leakwatch-Timestamp";
pub const SIGNATURE_HEADER: &str = "X-Leakwatch-Signature";
/// How far a receiver should accept the timestamp from its own clock, in seconds.
pub const SIGNATURE_TOLERANCE_SECS: i64 = 300;
/// Characters of the answer body kept in the receipt.
const ANSWER_BODY_CHARS: usize = 500;
/// Bytes of the answer body read at most (enough for the kept text and an `id`).
const ANSWER_READ_LIMIT: u64 = 64 * 1024;

/// The JSON document POSTed for one packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookDocument {
    pub version: u32,
    pub packet_id: String,
    pub kind: String,
    pub subject: String,
    pub body_text: String,
    pub attachments: Vec<WebhookAttachment>,
}

/// One file inside a [`WebhookDocument`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookAttachment {
    pub name: String,
    pub content_type: String,
    /// Lowercase hex SHA-256 of the decoded bytes.
    pub sha256: String,
    /// The bytes, standard base64 with padding.
    pub base64: String,
}

impl WebhookDocument {
    pub fn from_request(req: &FilingRequest) -> WebhookDocument {
        WebhookDocument {
            version: DOCUMENT_VERSION,
            packet_id: req.packet_id.clone(),
            kind: req.kind.clone(),
            subject: req.subject.clone(),
            body_text: req.body_text.clone(),
            attachments: req
                .attachments
                .iter()
                .map(|a| WebhookAttachment {
                    name: a.name.clone(),
                    content_type: a.content_type.clone(),
                    sha256: sha256_hex(&a.bytes),
                    base64: base64::engine::general_purpose::STANDARD.encode(&a.bytes),
                })
                .collect(),
        }
    }
}

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length (RFC 2104 §2), so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `X-Leakwatch-Signature` value for `body` sent at `timestamp`: `sha256=<hex>`.
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

/// Whether `header` (an `X-Leakwatch-Signature` value) is the signature of `body` sent at
/// `timestamp` under `secret`. The MAC comparison is constant-time. The timestamp's age is the
/// caller's to check.
pub fn verify_signature(secret: &[u8], timestamp: &str, body: &[u8], header: &str) -> bool {
    let Some(hex_mac) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(claimed) = hex::decode(hex_mac) else {
        return false;
    };
    mac(secret, timestamp, body).verify_slice(&claimed).is_ok()
}

/// Sends packets to a webhook; built from a [`WebhookRoute`].
pub struct WebhookFiler {
    url: reqwest::Url,
    /// The URL without user info or query, which may carry tokens: for reports.
    shown_url: String,
    secret: Vec<u8>,
    timeout: Duration,
}

impl WebhookFiler {
    /// Checks the route and reads the secret; makes no connection.
    pub fn new(route: &WebhookRoute) -> Result<WebhookFiler, FilingError> {
        let config = |m: String| FilingError::Config(m);
        let url = reqwest::Url::parse(&route.url)
            .map_err(|e| config(format!("url = {:?}: {e}", route.url)))?;
        let host = url.host_str().unwrap_or_default().to_string();
        match url.scheme() {
            "https" => {}
            "http" if is_loopback_host(&host) => {}
            "http" => {
                return Err(config(format!(
                    "url: plain http would send evidence in clear text; it is allowed only to \
                     a loopback host, not {host:?}"
                )));
            }
            other => return Err(config(format!("url: scheme {other:?} is not http(s)"))),
        }
        let secret = match (&route.secret_env, &route.secret_file) {
            (Some(var), None) => read_secret_env(var, "secret_env")?,
            (None, Some(path)) => {
                let mut bytes = std::fs::read(path)
                    .map_err(|e| config(format!("secret_file = {}: {e}", path.display())))?;
                // Editors and `echo` add a final newline that is not part of the key.
                while bytes.last().is_some_and(|b| matches!(b, b'\n' | b'\r')) {
                    bytes.pop();
                }
                if bytes.is_empty() {
                    return Err(config(format!("secret_file = {}: empty", path.display())));
                }
                bytes
            }
            _ => {
                return Err(config(
                    "set exactly one of secret_env and secret_file".into(),
                ));
            }
        };
        if route.timeout_ms == 0 {
            return Err(config("timeout_ms must be positive".into()));
        }
        let mut shown = url.clone();
        shown.set_query(None);
        shown.set_fragment(None);
        // Both fail only for URLs without a host, which the scheme check excluded.
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        Ok(WebhookFiler {
            shown_url: shown.to_string(),
            url,
            secret,
            timeout: Duration::from_millis(route.timeout_ms),
        })
    }

    fn target(&self) -> String {
        format!("webhook {}", self.shown_url)
    }

    fn classify(&self, error: reqwest::Error) -> FilingError {
        let target = self.target();
        let detail = error_chain(&error);
        if error.is_timeout() {
            FilingError::Timeout {
                target,
                timeout_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
                detail,
            }
        } else if error.is_connect() {
            FilingError::ConnectFailed { target, detail }
        } else if error.is_builder() {
            FilingError::Protocol { target, detail }
        } else {
            // Sent (perhaps in part) but no complete answer came back.
            FilingError::Dropped { target, detail }
        }
    }
}

impl WebhookFiler {
    /// A failure while reading the answer body: the status came, the rest did not.
    fn classify_read(&self, error: std::io::Error) -> FilingError {
        let target = self.target();
        let detail = format!("reading the answer: {}", error_chain(&error));
        if matches!(
            error.kind(),
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
        ) {
            FilingError::Timeout {
                target,
                timeout_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
                detail,
            }
        } else {
            FilingError::Dropped { target, detail }
        }
    }
}

impl Filer for WebhookFiler {
    fn channel(&self) -> &str {
        "webhook"
    }

    fn recipient(&self) -> String {
        self.shown_url.clone()
    }

    fn file(&self, req: &FilingRequest) -> Result<FilingReceipt, FilingError> {
        req.validate()?;
        let body = serde_json::to_vec(&WebhookDocument::from_request(req)).map_err(|e| {
            FilingError::InvalidRequest {
                packet_id: req.packet_id.clone(),
                detail: format!("cannot encode the webhook document: {e}"),
            }
        })?;
        let timestamp = chrono::Utc::now().timestamp().to_string();
        let signature = sign(&self.secret, &timestamp, &body);
        // A client per call: a blocking client owns a runtime thread, which must not be dropped
        // inside async code, and filers are built and dropped there.
        let client = reqwest::blocking::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("leakwatch-filing/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FilingError::Protocol {
                target: self.target(),
                detail: format!("cannot build the HTTP client: {}", error_chain(&e)),
            })?;
        let mut response = client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, &timestamp)
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .map_err(|e| self.classify(e))?;
        let status = response.status();
        let status_line = format!("{:?} {status}", response.version());
        // Only the start of the answer matters; a receiver cannot make us buffer without bound.
        let mut answer_body = Vec::new();
        if let Err(e) = (&mut response)
            .take(ANSWER_READ_LIMIT)
            .read_to_end(&mut answer_body)
        {
            return Err(self.classify_read(e));
        }
        let answer_text = String::from_utf8_lossy(&answer_body);
        let snippet: String = answer_text.chars().take(ANSWER_BODY_CHARS).collect();
        let server_answer = if snippet.trim().is_empty() {
            status_line
        } else {
            format!("{status_line}: {}", snippet.trim_end())
        };
        if !status.is_success() {
            return Err(FilingError::Refused {
                target: self.target(),
                reply: Reply::Http(status.as_u16()),
                answer: server_answer,
            });
        }
        let message_id = serde_json::from_slice::<serde_json::Value>(&answer_body)
            .ok()
            .and_then(|v| match v.get("id") {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                _ => None,
            });
        Ok(FilingReceipt {
            channel: "webhook".into(),
            recipient: self.recipient(),
            message_id,
            server_answer,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filing::sink::{WebhookFault, WebhookSink};
    use crate::filing::test_support::{request, run_with_retry, runtime};
    use crate::filing::{AttemptFailure, Outcome};
    use std::net::SocketAddr;

    const SECRET: &[u8] = b"shared webhook key for tests";

    #[test]
    fn signature_matches_an_independent_hmac() {
        // Computed with Python's hmac module:
        // hmac.new(b'Jefe', b'1700000000.{"version":1}', hashlib.sha256).hexdigest()
        let want = "sha256=11c6a57e329385bb25185175112f9105b5e1927c400fbcc7bc64da526d7232c5";
        assert_eq!(sign(b"Jefe", "1700000000", br#"{"version":1}"#), want);
        assert!(verify_signature(
            b"Jefe",
            "1700000000",
            br#"{"version":1}"#,
            want
        ));
        assert!(!verify_signature(
            b"Jefe",
            "1700000001",
            br#"{"version":1}"#,
            want
        ));
        assert!(!verify_signature(
            b"Jeff",
            "1700000000",
            br#"{"version":1}"#,
            want
        ));
        assert!(!verify_signature(
            b"Jefe",
            "1700000000",
            br#"{"version":2}"#,
            want
        ));
        assert!(!verify_signature(
            b"Jefe",
            "1700000000",
            br#"{"version":1}"#,
            &want[7..]
        ));
        assert!(!verify_signature(
            b"Jefe",
            "1700000000",
            br#"{"version":1}"#,
            "sha256=zz"
        ));
        assert!(!verify_signature(
            b"Jefe",
            "1700000000",
            br#"{"version":1}"#,
            "sha256="
        ));
    }

    fn filer_for(
        url: &str,
        secret: &[u8],
        timeout_ms: u64,
    ) -> (WebhookFiler, tempfile::NamedTempFile) {
        use std::io::Write;
        let mut key = tempfile::NamedTempFile::new().unwrap();
        key.write_all(secret).unwrap();
        key.write_all(b"\n").unwrap();
        let filer = WebhookFiler::new(&WebhookRoute {
            kind: "takedown".into(),
            url: url.into(),
            secret_env: None,
            secret_file: Some(key.path().to_path_buf()),
            timeout_ms,
        })
        .unwrap();
        (filer, key)
    }

    fn loopback() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    #[test]
    fn signed_document_is_verified_and_stored_by_the_receiver() {
        let rt = runtime();
        let sink = rt.block_on(WebhookSink::start(loopback(), SECRET)).unwrap();
        let (filer, _key) = filer_for(&format!("{}?token=abc", sink.url()), SECRET, 2000);
        let req = request("lw-takedown-0123456789abcdef");

        let receipt = filer.file(&req).unwrap();

        let documents = sink.documents();
        assert_eq!(documents.len(), 1);
        let received = &documents[0];
        assert_eq!(receipt.message_id.as_deref(), Some(received.id.as_str()));
        assert!(
            receipt.server_answer.starts_with("HTTP/1.1 200 OK"),
            "{}",
            receipt.server_answer
        );
        assert!(receipt.server_answer.contains(&received.id));
        // The query (which may hold a token) is not reported.
        assert_eq!(receipt.recipient, sink.url());
        assert!(verify_signature(
            SECRET,
            &received.timestamp,
            &received.raw,
            &received.signature
        ));
        let doc = &received.document;
        assert_eq!(doc.version, 1);
        assert_eq!(doc.packet_id, req.packet_id);
        assert_eq!(doc.body_text, req.body_text);
        assert_eq!(doc.attachments.len(), 2);
        for (got, want) in doc.attachments.iter().zip(&req.attachments) {
            assert_eq!(got.name, want.name);
            assert_eq!(got.sha256, sha256_hex(&want.bytes));
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&got.base64)
                .unwrap();
            assert_eq!(bytes, want.bytes);
        }
    }

    #[test]
    fn wrong_secret_is_refused_and_not_retried() {
        let rt = runtime();
        let sink = rt.block_on(WebhookSink::start(loopback(), SECRET)).unwrap();
        let (filer, _key) = filer_for(&sink.url(), b"not the shared key", 2000);

        let (outcome, attempts, slept) =
            run_with_retry(&filer, &request("lw-takedown-1"), 4, &|_| {});

        let Outcome::Failed {
            attempts: n,
            last_error,
        } = outcome
        else {
            panic!("filed with a wrong key");
        };
        assert_eq!(n, 1);
        assert!(matches!(
            last_error,
            FilingError::Refused {
                reply: Reply::Http(403),
                ..
            }
        ));
        assert!(matches!(
            &attempts[0].result,
            Err(AttemptFailure { retryable: false, message }) if message.contains("signature")
        ));
        assert!(slept.is_empty());
        assert!(sink.documents().is_empty());
    }

    #[test]
    fn refuse_fault_is_final() {
        let rt = runtime();
        let sink = rt.block_on(WebhookSink::start(loopback(), SECRET)).unwrap();
        sink.set_fault(Some(WebhookFault::Refuse));
        let (filer, _key) = filer_for(&sink.url(), SECRET, 2000);
        let (outcome, attempts, _) = run_with_retry(&filer, &request("lw-takedown-2"), 4, &|_| {});
        assert!(matches!(outcome, Outcome::Failed { attempts: 1, .. }));
        assert_eq!(attempts.len(), 1);
    }

    #[test]
    fn server_error_is_retried() {
        let rt = runtime();
        let sink = rt.block_on(WebhookSink::start(loopback(), SECRET)).unwrap();
        sink.set_fault(Some(WebhookFault::ServerError));
        let (filer, _key) = filer_for(&sink.url(), SECRET, 2000);

        let (outcome, attempts, _) = run_with_retry(&filer, &request("lw-takedown-3"), 3, &|_| {});
        assert!(
            matches!(
                outcome,
                Outcome::Failed {
                    attempts: 3,
                    last_error: FilingError::Refused {
                        reply: Reply::Http(500),
                        ..
                    }
                }
            ),
            "{outcome:?}"
        );
        assert!(
            attempts
                .iter()
                .all(|a| matches!(&a.result, Err(f) if f.retryable && f.message.contains("500")))
        );

        let (outcome, attempts, _) = run_with_retry(&filer, &request("lw-takedown-3"), 3, &|_| {
            sink.set_fault(None)
        });
        assert!(matches!(outcome, Outcome::Filed(_)), "{outcome:?}");
        assert_eq!(attempts.len(), 2);
        assert_eq!(sink.documents().len(), 1);
    }

    #[test]
    fn stall_times_out_and_drop_is_retried() {
        let rt = runtime();
        let sink = rt.block_on(WebhookSink::start(loopback(), SECRET)).unwrap();
        let (filer, _key) = filer_for(&sink.url(), SECRET, 700);

        sink.set_fault(Some(WebhookFault::Stall));
        let (outcome, attempts, _) = run_with_retry(&filer, &request("lw-takedown-4"), 2, &|_| {});
        assert!(
            matches!(
                outcome,
                Outcome::Failed {
                    attempts: 2,
                    last_error: FilingError::Timeout { .. }
                }
            ),
            "{outcome:?}"
        );
        assert_eq!(attempts.len(), 2);

        sink.set_fault(Some(WebhookFault::Drop));
        let (outcome, attempts, _) = run_with_retry(&filer, &request("lw-takedown-4"), 2, &|_| {});
        assert!(
            matches!(
                outcome,
                Outcome::Failed {
                    attempts: 2,
                    last_error: FilingError::Dropped { .. }
                }
            ),
            "{outcome:?}"
        );
        assert!(
            attempts
                .iter()
                .all(|a| matches!(&a.result, Err(f) if f.retryable))
        );
        assert!(sink.documents().is_empty());
    }

    #[test]
    fn runs_in_spawn_blocking_and_is_built_and_dropped_in_async_code() {
        // The service builds filers from config in async code and files in spawn_blocking; a
        // blocking HTTP client kept in the filer would panic when dropped there.
        let rt = runtime();
        let sink = rt.block_on(WebhookSink::start(loopback(), SECRET)).unwrap();
        let url = sink.url();
        let receipt = rt
            .block_on(async move {
                let (filer, key) = filer_for(&url, SECRET, 2000);
                let filer: std::sync::Arc<dyn Filer> = std::sync::Arc::new(filer);
                let worker = std::sync::Arc::clone(&filer);
                let receipt =
                    tokio::task::spawn_blocking(move || worker.file(&request("lw-takedown-5")))
                        .await;
                drop((filer, key));
                receipt
            })
            .unwrap()
            .unwrap();
        assert_eq!(receipt.channel, "webhook");
        assert_eq!(sink.documents().len(), 1);
    }
}
