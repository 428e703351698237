//! Retrying one filer: exponential backoff with jitter, stopping at the first permanent
//! refusal, and reporting every attempt as it ends so that none goes unrecorded.
//!
//! Sleeping is injected, so the caller decides how to wait (a blocking sleep in
//! `spawn_blocking`, a recording no-op in tests).

use std::time::{Duration, Instant};

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{Filer, FilingError, FilingReceipt, FilingRequest, RetryPolicy};

/// One try of one filer, reported through `on_attempt` as soon as it ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1 for the first try.
    pub number: u32,
    pub channel: String,
    pub recipient: String,
    /// When the try began, RFC 3339 in UTC.
    pub started_at: String,
    /// How long the try took.
    pub duration_ms: u64,
    pub result: Result<FilingReceipt, AttemptFailure>,
    /// The wait before the next try, or `None` when this was the last one.
    pub retry_in_ms: Option<u64>,
}

/// Why a try failed, as text for the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptFailure {
    pub message: String,
    pub retryable: bool,
}

/// How filing through one filer ended.
#[derive(Debug)]
pub enum Outcome {
    Filed(FilingReceipt),
    Failed {
        /// Tries made, the first included.
        attempts: u32,
        last_error: FilingError,
    },
}

/// Files `req` through `filer`, up to `policy.attempts` times (at least once).
///
/// After a retryable failure it calls `sleep` with [`backoff_delay`]; a failure that is not
/// retryable ends it at once. `on_attempt` sees every try, in order, before any sleep.
pub fn file_with_retry(
    filer: &dyn Filer,
    req: &FilingRequest,
    policy: &RetryPolicy,
    sleep: &dyn Fn(Duration),
    on_attempt: &mut dyn FnMut(&Attempt),
) -> Outcome {
    let max_attempts = policy.attempts.max(1);
    let mut rng = rand::thread_rng();
    let mut number = 0;
    loop {
        number += 1;
        let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let clock = Instant::now();
        let result = filer.file(req);
        let duration_ms = u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX);
        let report = |result, retry_in: Option<Duration>| Attempt {
            number,
            channel: filer.channel().to_string(),
            recipient: filer.recipient(),
            started_at: started_at.clone(),
            duration_ms,
            result,
            retry_in_ms: retry_in.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        };
        match result {
            Ok(receipt) => {
                on_attempt(&report(Ok(receipt.clone()), None));
                return Outcome::Filed(receipt);
            }
            Err(error) => {
                let retryable = error.retryable();
                let delay = (retryable && number < max_attempts)
                    .then(|| backoff_delay(policy, number, &mut rng));
                let failure = AttemptFailure {
                    message: error.to_string(),
                    retryable,
                };
                on_attempt(&report(Err(failure), delay));
                match delay {
                    Some(delay) => sleep(delay),
                    None => {
                        return Outcome::Failed {
                            attempts: number,
                            last_error: error,
                        };
                    }
                }
            }
        }
    }
}

/// The wait after failed try number `failed` (1-based): the exponential step
/// `initial * 2^(failed-1)`, capped at `max_backoff_ms`, of which a random half is kept
/// ("equal jitter") so that routes failing together do not retry in lockstep, while no wait is
/// shorter than half its step.
pub fn backoff_delay(policy: &RetryPolicy, failed: u32, rng: &mut impl Rng) -> Duration {
    let doublings = failed.saturating_sub(1).min(63);
    let step = policy
        .initial_backoff_ms
        .saturating_mul(1u64 << doublings)
        .min(policy.max_backoff_ms);
    let half = step / 2;
    Duration::from_millis(half + rng.gen_range(0..=step - half))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filing::Reply;
    use crate::filing::test_support::request;
    use std::sync::Mutex;

    /// Fails with the scripted errors in turn, then succeeds.
    struct ScriptedFiler {
        failures: Mutex<Vec<FilingError>>,
        calls: Mutex<u32>,
    }

    impl ScriptedFiler {
        fn new(mut failures: Vec<FilingError>) -> Self {
            failures.reverse();
            ScriptedFiler {
                failures: Mutex::new(failures),
                calls: Mutex::new(0),
            }
        }
    }

    impl Filer for ScriptedFiler {
        fn channel(&self) -> &str {
            "test"
        }
        fn recipient(&self) -> String {
            "scripted".into()
        }
        fn file(&self, req: &FilingRequest) -> Result<FilingReceipt, FilingError> {
            *self.calls.lock().unwrap() += 1;
            match self.failures.lock().unwrap().pop() {
                Some(error) => Err(error),
                None => Ok(FilingReceipt {
                    channel: "test".into(),
                    recipient: "scripted".into(),
                    message_id: Some(req.packet_id.clone()),
                    server_answer: "ok".into(),
                }),
            }
        }
    }

    fn dropped() -> FilingError {
        FilingError::Dropped {
            target: "t".into(),
            detail: "reset".into(),
        }
    }

    fn run(filer: &ScriptedFiler, policy: &RetryPolicy) -> (Outcome, Vec<Attempt>, Vec<Duration>) {
        let slept = Mutex::new(Vec::new());
        let mut attempts = Vec::new();
        let outcome = file_with_retry(
            filer,
            &request("lw-police-1"),
            policy,
            &|d| slept.lock().unwrap().push(d),
            &mut |a| attempts.push(a.clone()),
        );
        (outcome, attempts, slept.into_inner().unwrap())
    }

    #[test]
    fn success_after_transient_failures_reports_each_try() {
        let filer = ScriptedFiler::new(vec![dropped(), dropped()]);
        let (outcome, attempts, slept) = run(&filer, &RetryPolicy::default());
        assert!(matches!(outcome, Outcome::Filed(ref r) if r.server_answer == "ok"));
        assert_eq!(attempts.len(), 3);
        assert_eq!(
            attempts.iter().map(|a| a.number).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert!(attempts[0].result.as_ref().is_err_and(|f| f.retryable));
        assert!(attempts[2].result.is_ok());
        assert_eq!(attempts[2].retry_in_ms, None);
        assert_eq!(slept.len(), 2);
        assert_eq!(
            attempts[0].retry_in_ms,
            Some(u64::try_from(slept[0].as_millis()).unwrap())
        );
        assert!(chrono::DateTime::parse_from_rfc3339(&attempts[0].started_at).is_ok());
    }

    #[test]
    fn permanent_refusal_stops_at_once() {
        let filer = ScriptedFiler::new(vec![FilingError::Refused {
            target: "t".into(),
            reply: Reply::Smtp(550),
            answer: "no".into(),
        }]);
        let (outcome, attempts, slept) = run(&filer, &RetryPolicy::default());
        assert!(matches!(outcome, Outcome::Failed { attempts: 1, .. }));
        assert_eq!(attempts.len(), 1);
        assert!(slept.is_empty());
        assert_eq!(*filer.calls.lock().unwrap(), 1);
    }

    #[test]
    fn gives_up_after_the_configured_attempts() {
        let filer = ScriptedFiler::new((0..10).map(|_| dropped()).collect());
        let policy = RetryPolicy {
            attempts: 3,
            ..RetryPolicy::default()
        };
        let (outcome, attempts, slept) = run(&filer, &policy);
        assert!(matches!(
            outcome,
            Outcome::Failed {
                attempts: 3,
                last_error: FilingError::Dropped { .. }
            }
        ));
        assert_eq!(attempts.len(), 3);
        assert_eq!(slept.len(), 2);
        assert_eq!(attempts[2].retry_in_ms, None);
    }

    #[test]
    fn zero_attempts_still_tries_once() {
        let filer = ScriptedFiler::new(vec![dropped()]);
        let policy = RetryPolicy {
            attempts: 0,
            ..RetryPolicy::default()
        };
        let (outcome, attempts, _) = run(&filer, &policy);
        assert!(matches!(outcome, Outcome::Failed { attempts: 1, .. }));
        assert_eq!(attempts.len(), 1);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let policy = RetryPolicy::default();
        let mut rng = rand::thread_rng();
        for _ in 0..200 {
            for (failed, step) in [
                (1, 2000u64),
                (2, 4000),
                (3, 8000),
                (6, 60_000),
                (40, 60_000),
            ] {
                let d =
                    u64::try_from(backoff_delay(&policy, failed, &mut rng).as_millis()).unwrap();
                assert!(d >= step / 2 && d <= step, "failed={failed} delay={d}");
            }
        }
        let zero = RetryPolicy {
            attempts: 2,
            initial_backoff_ms: 0,
            max_backoff_ms: 0,
        };
        assert_eq!(backoff_delay(&zero, 5, &mut rng), Duration::ZERO);
    }
}
