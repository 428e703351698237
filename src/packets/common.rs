//! Small helpers shared by the packet builders: hashing, deterministic identifiers,
//! base64 (X-ARF evidence payloads must be base64, XARF v4 `xarf-core.json`
//! `evidence_item.payload`), and the formatting used in the Chinese documents.
//!
//! Identifiers are derived from the input rather than drawn at random so that building
//! the same approved finding twice yields the same ids and byte-identical JSON and text
//! files: a recipient (or a court) can re-derive their SHA-256 from the ledger.

use chrono::{DateTime, FixedOffset, Offset, SecondsFormat, Utc};
use sha2::{Digest, Sha256};

use super::{PacketFile, PacketKind};

/// Lower-case hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// SHA-256 over length-prefixed parts, so that ("ab","c") and ("a","bc") differ.
pub(crate) fn digest_parts(parts: &[&str]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    h.finalize().into()
}

/// Formats 16 digest bytes in the RFC 9562 UUID layout with version 4 and the RFC 4122
/// variant. The bits come from SHA-256 rather than an RNG; they are as unpredictable and
/// collision-resistant as random bits for this purpose, and keep the packet reproducible.
pub(crate) fn uuid_v4_layout(digest: &[u8; 32]) -> String {
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Standard base64 with padding (RFC 4648 §4).
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b0 = chunk[0];
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let n = (u32::from(b0) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        out.push(char::from(ALPHABET[(n >> 18) as usize & 63]));
        out.push(char::from(ALPHABET[(n >> 12) as usize & 63]));
        if chunk.len() > 1 {
            out.push(char::from(ALPHABET[(n >> 6) as usize & 63]));
        } else {
            out.push('=');
        }
        if chunk.len() > 2 {
            out.push(char::from(ALPHABET[n as usize & 63]));
        } else {
            out.push('=');
        }
    }
    out
}

/// RFC 3339 in UTC with a `Z` suffix, second precision (the X-ARF `date-time` format).
pub(crate) fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// China Standard Time (UTC+8): Chinese recipients read times in 北京时间.
fn beijing() -> FixedOffset {
    // 8 h is always a valid offset; UTC is the harmless fallback the type system asks for.
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| Utc.fix())
}

/// `2024-05-01 20:00:00(北京时间)`.
pub(crate) fn beijing_time(t: &DateTime<Utc>) -> String {
    format!(
        "{}(北京时间)",
        t.with_timezone(&beijing()).format("%Y-%m-%d %H:%M:%S")
    )
}

/// Optional time, `未知` when absent.
pub(crate) fn beijing_time_opt(t: Option<&DateTime<Utc>>) -> String {
    t.map(beijing_time).unwrap_or_else(|| "未知".to_string())
}

/// Price in fen → `0.50元`.
pub(crate) fn fen_to_yuan(fen: u64) -> String {
    format!("{}.{:02}元", fen / 100, fen % 100)
}

/// Whether `s` is 64 hex digits.
pub(crate) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Wraps finished bytes as a [`PacketFile`] with its digest.
pub(crate) fn file(name: &str, media_type: &str, bytes: Vec<u8>) -> PacketFile {
    let sha256 = sha256_hex(&bytes);
    PacketFile {
        name: name.to_string(),
        media_type: media_type.to_string(),
        bytes,
        sha256,
    }
}

/// Deterministic packet id: `lw-<kind>-<16 hex>` from finding, case, kind and time.
pub(crate) fn packet_id(kind: PacketKind, finding_id: &str, case_id: &str, at: &str) -> String {
    let d = digest_parts(&["leakwatch-packet", kind.slug(), finding_id, case_id, at]);
    format!("lw-{}-{}", kind.slug(), &hex::encode(d)[..16])
}

/// Joins a list for prose, `无` when empty.
pub(crate) fn join_or_none(items: &[String], sep: &str) -> String {
    if items.is_empty() {
        "无".to_string()
    } else {
        items.join(sep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_test_vectors() {
        // RFC 4648 §10.
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(input.as_bytes()), want);
        }
    }

    #[test]
    fn uuid_layout_has_version_4_and_rfc_variant() {
        let u = uuid_v4_layout(&digest_parts(&["x"]));
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn formatting_helpers() {
        assert_eq!(fen_to_yuan(5), "0.05元");
        assert_eq!(fen_to_yuan(150), "1.50元");
        let t = DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z").map(|t| t.with_timezone(&Utc));
        assert!(t.is_ok());
        if let Ok(t) = t {
            assert_eq!(beijing_time(&t), "2024-05-01 20:00:00(北京时间)");
            assert_eq!(rfc3339(&t), "2024-05-01T12:00:00Z");
        }
        assert!(is_sha256_hex(&"a".repeat(64)));
        assert!(!is_sha256_hex("abc"));
        assert_ne!(digest_parts(&["ab", "c"]), digest_parts(&["a", "bc"]));
    }
}
