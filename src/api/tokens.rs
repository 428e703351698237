//! Staff access tokens: created with `leakwatch admin token create --role ROLE`, shown once,
//! stored only as SHA-256 digests in `keys/api-tokens.json` (mode 0600).
//!
//! A token is `lw_<role>_<64 hex>` (256 random bits); the role in the prefix is only a hint
//! for humans — the stored record decides. The running server re-reads the file when it
//! changes, so a token created or revoked from the command line takes effect at once.
//! Comparison is by digest, so its timing does not depend on the secret's bytes.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a token may do (the permission matrix is in [`super::PERMISSIONS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Intake,
    Moderator,
    Legal,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Intake, Role::Moderator, Role::Legal, Role::Admin];

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "intake" => Some(Role::Intake),
            "moderator" => Some(Role::Moderator),
            "legal" => Some(Role::Legal),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Intake => "intake",
            Role::Moderator => "moderator",
            Role::Legal => "legal",
            Role::Admin => "admin",
        }
    }
}

/// Who is calling: the token's owner and role. `actor()` is the name written to the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub owner: String,
    pub role: Role,
    pub token_id: String,
}

impl Principal {
    pub fn actor(&self) -> String {
        format!("{}:{}", self.role.as_str(), self.owner)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    /// First 12 hex digits of the digest: names the token in lists and logs.
    pub id: String,
    pub owner: String,
    pub role: Role,
    /// Hex SHA-256 of the token.
    pub sha256: String,
    pub created_at: String,
    #[serde(default)]
    pub revoked: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("owner name must be 1-64 characters of letters, digits, '.', '-', '_' or '@'")]
    BadOwner,
    #[error("no token with id {0}")]
    NoSuchToken(String),
}

pub const TOKENS_FILE: &str = "api-tokens.json";

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub struct TokenStore {
    path: PathBuf,
    cache: Mutex<(Option<SystemTime>, Vec<TokenRecord>)>,
}

impl TokenStore {
    pub fn new(keys_dir: &Path) -> TokenStore {
        TokenStore {
            path: keys_dir.join(TOKENS_FILE),
            cache: Mutex::new((None, Vec::new())),
        }
    }

    fn read(&self) -> Result<Vec<TokenRecord>, TokenError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| TokenError::File {
                path: self.path.display().to_string(),
                message: format!("not a token list: {e}"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(TokenError::File {
                path: self.path.display().to_string(),
                message: e.to_string(),
            }),
        }
    }

    fn write(&self, records: &[TokenRecord]) -> Result<(), TokenError> {
        let err = |e: std::io::Error| TokenError::File {
            path: self.path.display().to_string(),
            message: e.to_string(),
        };
        if let Some(dir) = self.path.parent() {
            crate::durable::create_dir_all_synced(dir).map_err(err)?;
        }
        let bytes = serde_json::to_vec_pretty(records).unwrap_or_default();
        crate::durable::write_atomic(&self.path, &bytes, 0o600).map_err(err)
    }

    /// Create a token for `owner` with `role`; returns the token (shown once) and its record.
    pub fn create(&self, role: Role, owner: &str) -> Result<(String, TokenRecord), TokenError> {
        let ok = !owner.is_empty()
            && owner.len() <= 64
            && owner
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
        if !ok {
            return Err(TokenError::BadOwner);
        }
        let mut bytes = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        let token = format!("lw_{}_{}", role.as_str(), hex::encode(bytes));
        let sha = digest(&token);
        let record = TokenRecord {
            id: sha[..12].to_string(),
            owner: owner.to_string(),
            role,
            sha256: sha,
            created_at: crate::ledger::entry::timestamp(chrono::Utc::now()),
            revoked: false,
        };
        let mut all = self.read()?;
        all.push(record.clone());
        self.write(&all)?;
        Ok((token, record))
    }

    pub fn list(&self) -> Result<Vec<TokenRecord>, TokenError> {
        self.read()
    }

    pub fn revoke(&self, id: &str) -> Result<(), TokenError> {
        let mut all = self.read()?;
        let rec = all
            .iter_mut()
            .find(|r| r.id == id)
            .ok_or_else(|| TokenError::NoSuchToken(id.to_string()))?;
        rec.revoked = true;
        self.write(&all)
    }

    /// The cached records, re-read first when the file changed on disk.
    fn current(&self) -> std::sync::MutexGuard<'_, (Option<SystemTime>, Vec<TokenRecord>)> {
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.0 != modified || modified.is_none() {
            match self.read() {
                Ok(records) => *cache = (modified, records),
                Err(e) => tracing::warn!("token store unreadable, refusing tokens: {e}"),
            }
        }
        cache
    }

    /// Whether the token with this id exists and is not revoked (the console re-checks its
    /// sessions' tokens with this, so a revocation also ends a logged-in session).
    pub fn is_live(&self, id: &str) -> bool {
        self.current().1.iter().any(|r| !r.revoked && r.id == id)
    }

    /// The principal a bearer token stands for, if it is a live token.
    pub fn lookup(&self, token: &str) -> Option<Principal> {
        if token.is_empty() || token.len() > 200 {
            return None;
        }
        let cache = self.current();
        let sha = digest(token);
        cache
            .1
            .iter()
            .find(|r| !r.revoked && r.sha256 == sha)
            .map(|r| Principal {
                owner: r.owner.clone(),
                role: r.role,
                token_id: r.id.clone(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stored_as_digests_and_revocable() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path());
        let (token, rec) = store.create(Role::Moderator, "alice").unwrap();
        let file = std::fs::read_to_string(dir.path().join(TOKENS_FILE)).unwrap();
        assert!(!file.contains(&token), "the token itself is never stored");
        let p = store.lookup(&token).unwrap();
        assert_eq!((p.owner.as_str(), p.role), ("alice", Role::Moderator));
        assert_eq!(p.actor(), "moderator:alice");
        assert!(store.is_live(&rec.id));
        assert!(store.lookup("lw_moderator_00").is_none());
        assert!(store.lookup("").is_none());
        // Another handle on the same file sees the revocation.
        TokenStore::new(dir.path()).revoke(&rec.id).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(store.lookup(&token).is_none());
        assert!(!store.is_live(&rec.id));
        assert!(matches!(
            store.create(Role::Admin, "a b"),
            Err(TokenError::BadOwner)
        ));
    }
}
