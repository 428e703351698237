//! Shared pieces of the filing tests: a sample packet, a runtime for the loopback sinks, and a
//! retry runner that records instead of sleeping.

use std::sync::Mutex;
use std::time::Duration;

use super::{Attachment, Attempt, Filer, FilingRequest, Outcome, RetryPolicy, file_with_retry};

/// A packet with a text body and two attachments, one binary.
pub fn request(packet_id: &str) -> FilingRequest {
    FilingRequest {
        packet_id: packet_id.into(),
        kind: "police".into(),
        subject: "Report: customer data offered for sale (案件 42)".into(),
        body_text: "Dear officer,\n\nplease find the evidence attached.\n.\nA line that starts with a dot.\n\nLeakwatch\n"
            .into(),
        attachments: vec![
            Attachment {
                name: "report.pdf".into(),
                content_type: "application/pdf".into(),
                bytes: (0..=255u8).cycle().take(70_000).collect(),
            },
            Attachment {
                name: "evidence.json".into(),
                content_type: "application/json".into(),
                bytes: br#"{"case":"42","offers":3}"#.to_vec(),
            },
        ],
    }
}

/// A runtime whose worker serves the sinks while the test thread runs the blocking filer, the
/// way `spawn_blocking` does in the service.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// `attempts` tries with backoff that is recorded, not slept; `between` runs at each sleep (a
/// test uses it to clear a fault).
pub fn run_with_retry(
    filer: &dyn Filer,
    req: &FilingRequest,
    attempts: u32,
    between: &dyn Fn(usize),
) -> (Outcome, Vec<Attempt>, Vec<Duration>) {
    let policy = RetryPolicy {
        attempts,
        ..RetryPolicy::default()
    };
    let slept = Mutex::new(Vec::new());
    let mut reported = Vec::new();
    let outcome = file_with_retry(
        filer,
        req,
        &policy,
        &|d| {
            let mut slept = slept.lock().unwrap();
            slept.push(d);
            between(slept.len());
        },
        &mut |a| reported.push(a.clone()),
    );
    (outcome, reported, slept.into_inner().unwrap())
}
