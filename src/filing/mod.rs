//! Filing: sends a finished packet (takedown, police report, breach notice) to whoever must
//! receive it, and reports every attempt so the caller can write it to the evidence ledger.
//!
//! Packets are built elsewhere (`packets`) as a set of files; this module only moves them.
//! The parts:
//!
//! - [`Filer`]: one destination. Three implementations, chosen by config:
//!   [`SmtpFiler`] (a multipart e-mail through `lettre`), [`WebhookFiler`] (a signed JSON POST,
//!   format and signature documented in `webhook.rs`) and [`FileDropFiler`] (a directory written
//!   atomically, for a human or another system to pick up).
//! - [`config`]: the `[filing]` table — the retry policy and which routes each packet kind takes.
//! - [`file_with_retry`]: runs one filer with exponential backoff and reports each [`Attempt`].
//! - [`sink`]: real SMTP and webhook servers on loopback with switchable faults, used by the
//!   tests here and by the product's demo mode.
//!
//! Invariants:
//!
//! - Never silent: every attempt, failed or not, goes through the caller's `on_attempt`, with the
//!   server's own answer when there was one.
//! - A permanent refusal (SMTP 5xx, HTTP 4xx other than 408/429) is never retried; transient
//!   failures (SMTP 4xx, HTTP 5xx/408/429, time-outs, dropped connections) are.
//! - Evidence never travels in clear text to another machine: SMTP without TLS and webhooks over
//!   plain `http` are refused by configuration unless the host is loopback.
//! - Secrets (SMTP password, webhook key) are read from the environment or a file when the filers
//!   are built, and never appear in errors, receipts or `Debug` output.
//! - Filers block; the caller runs them in `tokio::task::spawn_blocking`.
//!
//! Configuration, as the `[filing]` table of the service's TOML (every key is documented on the
//! types in [`config`]):
//!
#![doc = concat!("```toml\n", include_str!("example.toml"), "```")]

pub mod config;
pub mod dispatch;
mod file_drop;
mod retry;
pub mod sink;
mod smtp;
mod webhook;

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use config::{
    FileDropRoute, FilingConfig, RetryPolicy, Route, SmtpRoute, TlsMode, WebhookRoute,
};
pub use file_drop::{FileDropFiler, MANIFEST_VERSION, sanitise_attachment_name};
pub use retry::{Attempt, AttemptFailure, Outcome, backoff_delay, file_with_retry};
pub use smtp::SmtpFiler;
pub use webhook::{
    DOCUMENT_VERSION, SIGNATURE_HEADER, SIGNATURE_TOLERANCE_SECS, TIMESTAMP_HEADER,
    WebhookAttachment, WebhookDocument, WebhookFiler, sign, verify_signature,
};

/// The packet kinds a route may name.
pub const KINDS: [&str; 3] = ["takedown", "police", "breach_notice"];

/// One file of a packet, as it is to be delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// File name shown to the recipient; sanitised before it touches a file system.
    pub name: String,
    /// MIME type, e.g. `application/pdf`.
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// A packet ready to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilingRequest {
    /// The packet's id (`lw-<kind>-<16 hex>`); also names the file-drop directory, so it is
    /// restricted to `[A-Za-z0-9._-]`, at most 128 characters, not starting with a dot.
    pub packet_id: String,
    /// `takedown`, `police` or `breach_notice`: picks the routes.
    pub kind: String,
    /// E-mail subject and webhook `subject`; one line.
    pub subject: String,
    pub body_text: String,
    pub attachments: Vec<Attachment>,
}

/// What a channel answered when it accepted a packet; written to the ledger as proof of sending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilingReceipt {
    /// `smtp`, `webhook` or `file_drop`.
    pub channel: String,
    /// Who received it: the addresses and server, the URL, or the directory.
    pub recipient: String,
    /// SMTP: our `Message-ID` header (with its angle brackets); webhook: the `id` the receiver
    /// returned, if any; file drop: the packet directory.
    pub message_id: Option<String>,
    /// The server's final reply (SMTP reply to DATA, HTTP status line and body start), or what
    /// the file drop stored.
    pub server_answer: String,
}

/// The status code of a negative answer, with the protocol that gives it meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Smtp(u16),
    Http(u16),
}

impl Reply {
    /// RFC 5321 §4.2.1: 4yz is transient, 5yz permanent. HTTP: 5xx, 408 and 429 are the
    /// server's temporary trouble; any other 4xx (bad signature, unknown route) will not change.
    pub fn retryable(self) -> bool {
        match self {
            Reply::Smtp(code) => (400..500).contains(&code),
            Reply::Http(code) => code >= 500 || code == 408 || code == 429,
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Smtp(code) => write!(f, "SMTP {code}"),
            Reply::Http(code) => write!(f, "HTTP {code}"),
        }
    }
}

/// Why one filing attempt failed. `target` names the channel and destination, e.g.
/// `smtp://mail.example.org:587` or `file_drop /var/lib/leakwatch/outbox`.
#[derive(Debug, thiserror::Error)]
pub enum FilingError {
    /// The server answered, and the answer was no.
    #[error("{target}: refused with {reply}: {answer}")]
    Refused {
        target: String,
        reply: Reply,
        answer: String,
    },
    #[error("{target}: no answer within {timeout_ms} ms: {detail}")]
    Timeout {
        target: String,
        timeout_ms: u64,
        detail: String,
    },
    #[error("{target}: cannot connect: {detail}")]
    ConnectFailed { target: String, detail: String },
    /// The connection was lost before the server's final answer: the packet may or may not
    /// have arrived.
    #[error("{target}: connection dropped before the final answer: {detail}")]
    Dropped { target: String, detail: String },
    /// The conversation went wrong on our side in a way a retry will not fix.
    #[error("{target}: {detail}")]
    Protocol { target: String, detail: String },
    #[error("filing config: {0}")]
    Config(String),
    #[error("packet {packet_id}: cannot be filed: {detail}")]
    InvalidRequest { packet_id: String, detail: String },
    #[error("{target}: {}: {source}", path.display())]
    Storage {
        target: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file drop found the packet directory already there with other content.
    #[error("{target}: {} already exists with different content: {detail}", path.display())]
    Conflict {
        target: String,
        path: PathBuf,
        detail: String,
    },
}

impl FilingError {
    /// Whether trying again later can succeed.
    pub fn retryable(&self) -> bool {
        use std::io::ErrorKind;
        match self {
            FilingError::Refused { reply, .. } => reply.retryable(),
            FilingError::Timeout { .. }
            | FilingError::ConnectFailed { .. }
            | FilingError::Dropped { .. } => true,
            FilingError::Protocol { .. }
            | FilingError::Config(_)
            | FilingError::InvalidRequest { .. }
            | FilingError::Conflict { .. } => false,
            // A full disk or an interrupted NFS mount can clear; a permission cannot.
            FilingError::Storage { source, .. } => !matches!(
                source.kind(),
                ErrorKind::PermissionDenied
                    | ErrorKind::ReadOnlyFilesystem
                    | ErrorKind::InvalidInput
                    | ErrorKind::InvalidFilename
                    | ErrorKind::NotADirectory
                    | ErrorKind::AlreadyExists
            ),
        }
    }
}

/// One destination for packets. Blocking: run it in `spawn_blocking`.
pub trait Filer: Send + Sync {
    /// `smtp`, `webhook` or `file_drop`.
    fn channel(&self) -> &str;
    /// Who receives what this filer sends, for reports (never contains a secret).
    fn recipient(&self) -> String;
    /// Sends `req` once. Retrying is [`file_with_retry`]'s job.
    fn file(&self, req: &FilingRequest) -> Result<FilingReceipt, FilingError>;
}

impl FilingRequest {
    /// Checks what every channel relies on: a packet id that is safe as a directory name and
    /// inside a `Message-ID`, and a one-line subject (a newline would forge mail headers).
    pub fn validate(&self) -> Result<(), FilingError> {
        let invalid = |detail: String| FilingError::InvalidRequest {
            packet_id: self.packet_id.chars().take(140).collect(),
            detail,
        };
        if !is_safe_packet_id(&self.packet_id) {
            return Err(invalid(
                "packet_id must be 1-128 characters of [A-Za-z0-9._-], not starting with '.'"
                    .into(),
            ));
        }
        if self.kind.is_empty() {
            return Err(invalid("kind is empty".into()));
        }
        if self.subject.chars().any(char::is_control) {
            return Err(invalid("subject contains a control character".into()));
        }
        Ok(())
    }
}

fn is_safe_packet_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Whether `host` names this machine without a DNS lookup: `localhost`, 127.0.0.0/8 or ::1.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.eq_ignore_ascii_case("localhost.")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `error` and its causes, `: `-joined, for a one-line report.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Many errors repeat their cause in their own message.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Reads a secret named by configuration, without ever putting its value in the error.
pub(crate) fn read_secret_env(var: &str, key: &str) -> Result<Vec<u8>, FilingError> {
    match std::env::var_os(var) {
        Some(value) if !value.is_empty() => Ok(value.into_encoded_bytes()),
        Some(_) => Err(FilingError::Config(format!(
            "{key}: environment variable {var} is empty"
        ))),
        None => Err(FilingError::Config(format!(
            "{key}: environment variable {var} is not set"
        ))),
    }
}

#[cfg(test)]
pub(crate) mod test_support;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_ids_that_could_escape_a_directory_are_refused() {
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "a\\b",
            "a b",
            "é",
            &"x".repeat(129),
        ] {
            assert!(!is_safe_packet_id(bad), "{bad:?} accepted");
        }
        for good in [
            "lw-takedown-0123456789abcdef",
            "a",
            "A.b_c-1",
            &"x".repeat(128),
        ] {
            assert!(is_safe_packet_id(good), "{good:?} refused");
        }
    }

    #[test]
    fn loopback_is_decided_without_dns() {
        for host in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "mail.example.org",
            "10.0.0.1",
            "0.0.0.0",
            "localhost.example.org",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn retryable_follows_the_reply_class() {
        assert!(Reply::Smtp(451).retryable());
        assert!(!Reply::Smtp(550).retryable());
        assert!(!Reply::Smtp(554).retryable());
        assert!(Reply::Http(500).retryable());
        assert!(Reply::Http(503).retryable());
        assert!(Reply::Http(429).retryable());
        assert!(!Reply::Http(403).retryable());
        assert!(!Reply::Http(400).retryable());
        let timeout = FilingError::Timeout {
            target: "t".into(),
            timeout_ms: 1,
            detail: "d".into(),
        };
        assert!(timeout.retryable());
        assert!(!FilingError::Config("x".into()).retryable());
    }

    #[test]
    fn subject_with_a_newline_is_refused() {
        let mut req = test_support::request("lw-police-1");
        req.subject = "hi\r\nBcc: someone@example.org".into();
        assert!(matches!(
            req.validate(),
            Err(FilingError::InvalidRequest { .. })
        ));
    }
}
