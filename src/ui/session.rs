//! Console sessions and the login limit, both in memory (a restart logs everyone out, which is
//! the safe direction).
//!
//! A session is created by a successful login: a random 256-bit id goes to the browser as an
//! `HttpOnly; SameSite=Strict` cookie, the server keeps only its SHA-256 (a memory dump does
//! not yield usable cookies, and looking a session up compares digests, not the secret). Each
//! session has its own random CSRF token, embedded in every form and checked on every POST.
//! Sessions end after [`SESSION_MAX`] or [`SESSION_IDLE`] without a request, on logout, and
//! when the token behind them is revoked (checked by the caller on every request).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::api::tokens::Principal;

/// Absolute lifetime of a session.
pub const SESSION_MAX: Duration = Duration::from_secs(8 * 3600);
/// A session unused this long ends.
pub const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
/// Sessions held at most; the oldest is dropped beyond it (bounded memory).
const MAX_SESSIONS: usize = 4096;
/// Failed logins allowed per client address per minute; the next attempt is refused (429).
pub const LOGIN_FAILURES_PER_MINUTE: u32 = 10;
const LIMITER_MAX_ADDRESSES: usize = 10_000;

/// 256 random bits, hex.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    hex::encode(bytes)
}

/// Equality of two secrets in time that depends only on their lengths.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// What a live session carries.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub principal: Principal,
    pub csrf: String,
}

struct Session {
    info: SessionInfo,
    created: Instant,
    last_seen: Instant,
}

impl Session {
    fn live(&self, now: Instant) -> bool {
        now.duration_since(self.created) < SESSION_MAX
            && now.duration_since(self.last_seen) < SESSION_IDLE
    }
}

#[derive(Default)]
pub struct SessionStore {
    map: Mutex<HashMap<[u8; 32], Session>>,
}

fn key(cookie: &str) -> [u8; 32] {
    Sha256::digest(cookie.as_bytes()).into()
}

impl SessionStore {
    /// A new session for `principal`; returns the cookie value (the only copy of the id).
    pub fn create(&self, principal: Principal) -> String {
        let id = random_secret();
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| s.live(now));
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map.iter().min_by_key(|(_, s)| s.last_seen).map(|(k, _)| *k)
        {
            map.remove(&oldest);
        }
        map.insert(
            key(&id),
            Session {
                info: SessionInfo {
                    principal,
                    csrf: random_secret(),
                },
                created: now,
                last_seen: now,
            },
        );
        id
    }

    /// The live session behind a cookie value, marking it used; an expired one is dropped.
    pub fn get(&self, cookie: &str) -> Option<SessionInfo> {
        self.get_at(cookie, Instant::now())
    }

    fn get_at(&self, cookie: &str, now: Instant) -> Option<SessionInfo> {
        if cookie.len() != 64 {
            return None;
        }
        let k = key(cookie);
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let session = map.get_mut(&k)?;
        if !session.live(now) {
            map.remove(&k);
            return None;
        }
        session.last_seen = now;
        Some(session.info.clone())
    }

    pub fn remove(&self, cookie: &str) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&key(cookie));
    }
}

/// Failed logins per client address in fixed one-minute windows.
#[derive(Default)]
pub struct LoginLimiter {
    map: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl LoginLimiter {
    /// True when `ip` has used up this minute's failures: refuse without checking the token.
    pub fn blocked(&self, ip: IpAddr) -> bool {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&ip) {
            Some((start, n)) => {
                start.elapsed() < Duration::from_secs(60) && *n >= LOGIN_FAILURES_PER_MINUTE
            }
            None => false,
        }
    }

    pub fn failed(&self, ip: IpAddr) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if map.len() >= LIMITER_MAX_ADDRESSES {
            map.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(60));
        }
        let slot = map.entry(ip).or_insert((now, 0));
        if now.duration_since(slot.0) >= Duration::from_secs(60) {
            *slot = (now, 0);
        }
        slot.1 = slot.1.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::tokens::Role;

    fn alice() -> Principal {
        Principal {
            owner: "alice".into(),
            role: Role::Moderator,
            token_id: "abc".into(),
        }
    }

    #[test]
    fn sessions_expire_when_idle_or_old_and_end_on_logout() {
        let store = SessionStore::default();
        let cookie = store.create(alice());
        assert_eq!(cookie.len(), 64);
        let s = store.get(&cookie).unwrap();
        assert_eq!(s.principal, alice());
        assert_eq!(s.csrf.len(), 64);
        assert_ne!(s.csrf, cookie);
        assert!(store.get("0".repeat(64).as_str()).is_none());
        assert!(store.get("short").is_none());

        let now = Instant::now();
        assert!(store.get_at(&cookie, now + SESSION_IDLE / 2).is_some());
        // Used half an idle period later: still live an idle period after the first use.
        assert!(store.get_at(&cookie, now + SESSION_IDLE).is_some());
        assert!(
            store
                .get_at(&cookie, now + SESSION_IDLE * 2 + Duration::from_secs(1))
                .is_none(),
            "idle too long"
        );
        assert!(store.get(&cookie).is_none(), "an expired session is gone");

        let c2 = store.create(alice());
        let mut t = Instant::now();
        while t < Instant::now() + SESSION_MAX {
            t += SESSION_IDLE / 2;
            if store.get_at(&c2, t).is_none() {
                break;
            }
        }
        assert!(store.get_at(&c2, t).is_none(), "8 hours is the limit");

        let c3 = store.create(alice());
        store.remove(&c3);
        assert!(store.get(&c3).is_none());
    }

    #[test]
    fn failed_logins_are_limited_per_address() {
        let limiter = LoginLimiter::default();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..LOGIN_FAILURES_PER_MINUTE {
            assert!(!limiter.blocked(a));
            limiter.failed(a);
        }
        assert!(limiter.blocked(a));
        assert!(!limiter.blocked(b), "other addresses are not affected");
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abcd", "abcd"));
        assert!(!same_secret("abcd", "abce"));
        assert!(!same_secret("abcd", "abc"));
        assert!(!same_secret("", "a"));
    }
}
