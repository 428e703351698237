//! Intake: trust-and-safety staff submit a group link; leakwatch opens (or finds) its case.
//!
//! A link is normalised and validated first — a QQ group number, `qq:<number>`, a QQ invite link
//! (`qm.qq.com/...group_code=`), or a Telegram link (`t.me/<name>`, `t.me/+<invite>`,
//! `t.me/joinchat/<invite>`, `@name`, `tg://resolve?domain=`) — and anything else is refused with
//! one line saying why. Repeat submissions of the same group land in the same case: the case id
//! is derived from the group, and the `case_opened` entry is written once. Who submitted, and
//! every repeat, is a ledger entry.

use sha2::{Digest, Sha256};

use crate::adapters::onebot::resolve_qq_link;
use crate::adapters::{GroupRef, Platform};
use crate::evidence::{Evidence, EvidenceError};
use crate::ledger::entry::{EntryBody, LedgerEntry};

pub const MAX_LINK: usize = 500;
pub const MAX_NOTE: usize = 2000;

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("{0:?} is not a QQ group number, QQ invite link or t.me link")]
    BadLink(String),
    #[error("the link is {0} characters long; the limit is {MAX_LINK}")]
    LinkTooLong(usize),
    #[error("the note is {0} characters long; the limit is {MAX_NOTE}")]
    NoteTooLong(usize),
    #[error("{0}")]
    Evidence(#[from] EvidenceError),
}

/// A submitted link, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalisedLink {
    pub group: GroupRef,
    /// The canonical form recorded in the case (`qq:123456`, `https://t.me/name`).
    pub canonical: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    pub case: String,
    pub group: GroupRef,
    /// False when the group already had a case (this submission was added to it).
    pub new_case: bool,
}

/// Understand a link, or say why not.
pub fn normalise_link(link: &str) -> Result<NormalisedLink, IntakeError> {
    let trimmed = link.trim();
    if trimmed.chars().count() > MAX_LINK {
        return Err(IntakeError::LinkTooLong(trimmed.chars().count()));
    }
    let shown: String = trimmed.chars().take(120).collect();
    if let Some(group) = resolve_qq_link(trimmed) {
        let canonical = format!("qq:{}", group.id);
        return Ok(NormalisedLink { group, canonical });
    }
    if let Some(id) = telegram_id(trimmed) {
        let canonical = match id.strip_prefix('@') {
            Some(name) => format!("https://t.me/{name}"),
            None => format!("https://t.me/{id}"),
        };
        return Ok(NormalisedLink {
            group: GroupRef {
                platform: Platform::Telegram,
                id,
            },
            canonical,
        });
    }
    Err(IntakeError::BadLink(shown))
}

/// `@name` for public groups and channels, `+<hash>` for invite links.
fn telegram_id(link: &str) -> Option<String> {
    let valid_name = |n: &str| {
        (5..=32).contains(&n.len())
            && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && n.as_bytes()[0].is_ascii_alphabetic()
    };
    let valid_hash = |h: &str| {
        (10..=64).contains(&h.len())
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if let Some(name) = link.strip_prefix('@') {
        return valid_name(name).then(|| format!("@{}", name.to_ascii_lowercase()));
    }
    let with_scheme = if link.contains("://") {
        link.to_string()
    } else {
        format!("https://{link}")
    };
    let url = url::Url::parse(&with_scheme).ok()?;
    match url.scheme() {
        "tg" => {
            let domain = url
                .query_pairs()
                .find(|(k, _)| k == "domain")?
                .1
                .into_owned();
            valid_name(&domain).then(|| format!("@{}", domain.to_ascii_lowercase()))
        }
        "https" | "http" => {
            let host = url.host_str()?;
            if !matches!(host, "t.me" | "telegram.me" | "www.t.me" | "telegram.dog") {
                return None;
            }
            let mut parts = url.path_segments()?.filter(|p| !p.is_empty());
            let first = parts.next()?;
            if first == "joinchat" {
                let hash = parts.next()?;
                return valid_hash(hash).then(|| format!("+{hash}"));
            }
            if let Some(hash) = first.strip_prefix('+') {
                return valid_hash(hash).then(|| format!("+{hash}"));
            }
            valid_name(first).then(|| format!("@{}", first.to_ascii_lowercase()))
        }
        _ => None,
    }
}

/// The case id of a group: stable, so repeat submissions meet in one case.
pub fn case_id(group: &GroupRef) -> String {
    let digest = Sha256::digest(format!("{}:{}", group.platform, group.id).as_bytes());
    format!("C-{}", &hex::encode(digest)[..10])
}

/// Open a case for `link` (or add this submission to the group's case). `actor` names who
/// submitted it (`cli:<user>`, `token:<owner>`).
pub fn submit(
    ev: &Evidence,
    link: &str,
    note: Option<&str>,
    actor: &str,
) -> Result<Submission, IntakeError> {
    let normalised = normalise_link(link)?;
    let note = note.map(str::trim).filter(|n| !n.is_empty());
    if let Some(n) = note {
        let len = n.chars().count();
        if len > MAX_NOTE {
            return Err(IntakeError::NoteTooLong(len));
        }
    }
    let group = normalised.group.clone();
    let case = case_id(&group);
    let existing = ev
        .state
        .case_for_group(group.platform.as_str(), &group.id)
        .map_err(EvidenceError::from)?;
    let new_case = existing.is_none();
    let entry = if new_case {
        EntryBody::CaseOpened {
            case: case.clone(),
            platform: group.platform.as_str().to_string(),
            group_id: group.id.clone(),
            link: normalised.canonical,
            note: note.map(str::to_string),
        }
    } else {
        EntryBody::Custody {
            case: case.clone(),
            action: "resubmitted".into(),
            detail: match note {
                Some(n) => format!("link {} submitted again: {n}", normalised.canonical),
                None => format!("link {} submitted again", normalised.canonical),
            },
        }
    };
    ev.record(&LedgerEntry::new(actor, entry))?;
    Ok(Submission {
        case,
        group,
        new_case,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_normalise() {
        let n = |l: &str| normalise_link(l).map(|n| (n.group.to_string(), n.canonical));
        assert_eq!(
            n("800000001").unwrap(),
            ("qq:800000001".into(), "qq:800000001".into())
        );
        assert_eq!(
            n("https://qm.qq.com/cgi-bin/qm/qr?k=x&group_code=800000001")
                .unwrap()
                .0,
            "qq:800000001"
        );
        assert_eq!(
            n("t.me/WaiMaiData").unwrap(),
            (
                "telegram:@waimaidata".into(),
                "https://t.me/waimaidata".into()
            )
        );
        assert_eq!(
            n("https://t.me/+AbCdEfGhIjKl").unwrap().0,
            "telegram:+AbCdEfGhIjKl"
        );
        assert_eq!(
            n("https://t.me/joinchat/AbCdEfGhIjKl").unwrap().0,
            "telegram:+AbCdEfGhIjKl"
        );
        assert_eq!(n("@waimai_data").unwrap().0, "telegram:@waimai_data");
        assert_eq!(
            n("tg://resolve?domain=waimai_data").unwrap().0,
            "telegram:@waimai_data"
        );
        for bad in [
            "",
            "hello",
            "https://evil.example/t.me/x",
            "t.me/ab",
            "javascript:alert(1)",
            "../../etc/passwd",
            "1234",
        ] {
            let err = normalise_link(bad).unwrap_err().to_string();
            assert!(err.contains("not a QQ group number"), "{bad}: {err}");
        }
        assert!(matches!(
            normalise_link(&"9".repeat(600)),
            Err(IntakeError::LinkTooLong(600))
        ));
    }

    #[test]
    fn case_ids_are_stable_per_group() {
        let a = case_id(&GroupRef::qq("800000001"));
        assert_eq!(a, case_id(&GroupRef::qq("800000001")));
        assert_ne!(a, case_id(&GroupRef::qq("800000002")));
        assert!(a.starts_with("C-") && a.len() == 12);
    }
}
