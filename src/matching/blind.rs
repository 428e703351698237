//! The blind index key and the keyed tokens that stand in for customer data.
//!
//! Every phone, masked phone, name, pinyin form, district and address piece becomes
//! HMAC-SHA256(key, "lw1/" ‖ field ‖ 0 ‖ value), truncated: 8 bytes (a u64 [`Token`]) for the
//! identity fields, 4 bytes for address pieces (compared as sets per order, where a collision
//! only nudges a similarity score). The field name in the message keeps the domains apart: the
//! same string as a name and as an address piece gives unrelated tokens.
//!
//! Invariants: a token of value 0 never occurs (0 means "absent" in the index files, so a zero
//! MAC is mapped to 1); address tokens carry their kind in the top bit (1 = a number piece such
//! as a room or bed number), so comparisons can treat numbers apart without seeing them;
//! [`BlindKey`] never prints its bytes and is never written by this module; without the key a
//! token reveals nothing but equality with other tokens of the same field.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::normalise::{self, MaskedPhone, NormAddress, NormName};
use super::{MatchError, OrderTokens, Token};

type HmacSha256 = Hmac<Sha256>;

/// The secret key of a blind index: 32 bytes. Whoever holds it (and the index) can test
/// whether a given phone or name is in the records; whoever holds only the index cannot.
#[derive(Clone, PartialEq, Eq)]
pub struct BlindKey([u8; 32]);

impl BlindKey {
    /// A key from its bytes.
    pub fn new(bytes: [u8; 32]) -> BlindKey {
        BlindKey(bytes)
    }

    /// A key from 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(s: &str) -> Result<BlindKey, MatchError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut bytes)
            .map_err(|e| MatchError::BadKey(format!("expected 64 hex digits: {e}")))?;
        Ok(BlindKey(bytes))
    }

    /// A fresh random key from the operating system's generator.
    pub fn generate() -> BlindKey {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        BlindKey(bytes)
    }

    /// The key as 64 hex digits, for the caller to store in its own secret store.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// A check value that identifies the key without revealing it: the first 16 bytes of the
    /// key's MAC over a fixed label, in hex. Stored in an index's manifest so a wrong key is
    /// refused instead of silently matching nothing.
    pub fn check_value(&self) -> String {
        let full = Blinder::new(self).mac(b"keycheck", b"leakwatch blind index");
        hex::encode(&full[..16])
    }
}

impl fmt::Debug for BlindKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BlindKey(..)")
    }
}

impl Drop for BlindKey {
    fn drop(&mut self) {
        // Best effort: do not leave the key in freed memory. `black_box` keeps the optimiser
        // from removing the fill of a value that is about to die.
        self.0.fill(0);
        std::hint::black_box(&self.0);
    }
}

/// Computes tokens under one key. Cheap to clone; holds the keyed HMAC state so each token
/// costs two SHA-256 compressions.
#[derive(Clone)]
pub struct Blinder {
    mac: HmacSha256,
}

/// Field labels inside the MAC message (domain separation).
mod field {
    pub const PHONE: &[u8] = b"phone";
    pub const MASKED: &[u8] = b"masked";
    pub const NAME: &[u8] = b"name";
    pub const PINYIN: &[u8] = b"pinyin";
    pub const DISTRICT: &[u8] = b"district";
    pub const ADDRESS: &[u8] = b"addr";
}

/// Top bit of an address token: set for number pieces.
pub const ADDRESS_NUMBER_BIT: u32 = 1 << 31;

impl Blinder {
    pub fn new(key: &BlindKey) -> Blinder {
        // HMAC zero-pads keys shorter than the hash block; padding here lets the fixed-size
        // constructor be used, which cannot fail.
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(&key.0);
        let mac = <HmacSha256 as hmac::digest::KeyInit>::new(
            hmac::digest::generic_array::GenericArray::from_slice(&block),
        );
        block.fill(0);
        Blinder { mac }
    }

    fn mac(&self, field: &[u8], value: &[u8]) -> [u8; 32] {
        let mut m = self.mac.clone();
        m.update(b"lw1/");
        m.update(field);
        m.update(&[0]);
        m.update(value);
        m.finalize().into_bytes().into()
    }

    fn token8(&self, field: &[u8], value: &[u8]) -> Token {
        let full = self.mac(field, value);
        let mut b = [0u8; 8];
        b.copy_from_slice(&full[..8]);
        match u64::from_le_bytes(b) {
            0 => Token(1),
            v => Token(v),
        }
    }

    /// Token of a normalised 11-digit phone.
    pub fn phone(&self, phone: &str) -> Token {
        self.token8(field::PHONE, phone.as_bytes())
    }

    /// Token of a masked phone (first three and last four digits).
    pub fn masked(&self, m: &MaskedPhone) -> Token {
        let mut v = String::with_capacity(8);
        v.push_str(&m.first3);
        v.push('|');
        v.push_str(&m.last4);
        self.token8(field::MASKED, v.as_bytes())
    }

    /// Phone and masked-phone tokens of an 11-digit phone, without allocating (the same
    /// values as [`Blinder::phone`] and [`Blinder::masked`]).
    fn phone_digits(&self, d: &[u8; 11]) -> (Token, Token) {
        let mut m = [b'|'; 8];
        m[..3].copy_from_slice(&d[..3]);
        m[4..].copy_from_slice(&d[7..]);
        (self.token8(field::PHONE, d), self.token8(field::MASKED, &m))
    }

    /// Exact-name token and pinyin token.
    pub fn name(&self, n: &NormName) -> (Token, Token) {
        (
            self.token8(field::NAME, n.key.as_bytes()),
            self.token8(field::PINYIN, n.pinyin.as_bytes()),
        )
    }

    /// Token of a district key.
    pub fn district(&self, d: &str) -> Token {
        self.token8(field::DISTRICT, d.as_bytes())
    }

    /// Token of one packed address piece (see [`normalise::piece_text`]).
    pub fn address_piece(&self, piece: u64) -> u32 {
        let full = self.mac(field::ADDRESS, normalise::piece_text(piece).as_bytes());
        let v = u32::from_le_bytes([full[0], full[1], full[2], full[3]]);
        if normalise::piece_is_number(piece) {
            v | ADDRESS_NUMBER_BIT
        } else {
            v & !ADDRESS_NUMBER_BIT
        }
    }

    /// Address tokens of a parsed address, sorted and distinct, through a cache (address
    /// pieces repeat endlessly across orders: street names, 号楼, 单元, room numbers).
    pub fn address(&self, a: &NormAddress, cache: &mut TokenCache) -> Vec<u32> {
        let mut out: Vec<u32> = a
            .pieces
            .iter()
            .map(|p| cache.piece(*p, || self.address_piece(*p)))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// All tokens for one record or sample row from its raw fields. `masked` is used only when
    /// there is no valid full phone.
    pub fn tokens(
        &self,
        phone: Option<&str>,
        masked: Option<&str>,
        name: Option<&str>,
        address: Option<&str>,
        cache: &mut TokenCache,
    ) -> BlindFields {
        let mut out = BlindFields::default();
        if let Some(d) = phone.and_then(normalise::phone_digits) {
            let (p, m) = self.phone_digits(&d);
            out.tokens.phone = Some(p);
            out.tokens.masked = Some(m);
        } else if let Some(m) = masked.or(phone).and_then(normalise::normalise_masked_phone) {
            out.tokens.masked = Some(self.masked(&m));
        }
        if let Some(raw) = name
            && let Some((nt, pt)) = normalise::normalise_name(raw).map(|n| self.name(&n))
        {
            out.tokens.name = Some(nt);
            out.tokens.pinyin = Some(pt);
        }
        if let Some(a) = address.and_then(normalise::normalise_address) {
            out.tokens.district = a
                .district
                .as_deref()
                .map(|d| cache.district(d, || self.district(d)));
            out.tokens.address = self.address(&a, cache);
            out.city = a.city;
        }
        out
    }
}

/// Tokens of one record or row, plus the city its address names (a city is not personal
/// data; it is compared in the clear with the order's city).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BlindFields {
    pub tokens: OrderTokens,
    pub city: Option<String>,
}

/// Per-thread cache of the tokens of values that repeat across orders: address pieces (street
/// names, 号楼, 单元, room numbers) and districts. Both vocabularies are small, so the cache
/// stays in the CPU cache and saves most address HMACs. (Names are not cached: there are
/// hundreds of thousands of distinct ones, and a lookup that misses the CPU cache costs as
/// much as normalising and hashing the name.) It only saves HMAC and normalisation work; each map is cleared when it reaches its capacity,
/// which bounds memory. It lives in memory only, for the duration of an import or a check.
#[derive(Default)]
pub struct TokenCache {
    pieces: HashMap<u64, u32, BuildHasherDefault<PieceHasher>>,
    districts: HashMap<Box<str>, Token, BuildHasherDefault<PieceHasher>>,
}

impl TokenCache {
    /// Entries per map before it is cleared.
    pub const CAPACITY: usize = 1 << 20;

    fn piece(&mut self, piece: u64, f: impl FnOnce() -> u32) -> u32 {
        if let Some(v) = self.pieces.get(&piece) {
            return *v;
        }
        if self.pieces.len() >= Self::CAPACITY {
            self.pieces.clear();
        }
        let v = f();
        self.pieces.insert(piece, v);
        v
    }

    fn district(&mut self, d: &str, f: impl FnOnce() -> Token) -> Token {
        if let Some(v) = self.districts.get(d) {
            return *v;
        }
        if self.districts.len() >= Self::CAPACITY {
            self.districts.clear();
        }
        let v = f();
        self.districts.insert(d.into(), v);
        v
    }
}

/// A fast non-cryptographic hasher for the caches and dictionaries of the import: the keys are
/// not attacker-chosen in a way that matters (a slow import at worst), and SipHash would cost
/// more than the lookups save. Deterministic (no random state); the order-id hash of the index
/// format is built on it.
#[derive(Default)]
pub struct PieceHasher(u64);

impl Hasher for PieceHasher {
    fn finish(&self) -> u64 {
        // A full avalanche at the end (splitmix64's finaliser): the multiply-rotate steps only
        // carry differences upward, and hash tables index by the low bits, so without this
        // ids that differ in their last byte ("R00003", "R00004") would all collide.
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    }
    fn write(&mut self, bytes: &[u8]) {
        // Eight bytes at a time; the tail is zero-padded and the length mixed in.
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(b));
        }
        let rest = chunks.remainder();
        let mut b = [0u8; 8];
        b[..rest.len()].copy_from_slice(rest);
        self.write_u64(u64::from_le_bytes(b) ^ ((bytes.len() as u64) << 56));
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        self.0 ^= self.0 >> 29;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> BlindKey {
        BlindKey::new([7u8; 32])
    }

    #[test]
    fn debug_hides_the_key() {
        let k = BlindKey::from_hex(&"ab".repeat(32)).expect("hex key");
        let dbg = format!("{k:?}");
        assert!(!dbg.contains("ab"), "{dbg}");
        assert_eq!(k.to_hex(), "ab".repeat(32));
        assert!(BlindKey::from_hex("abc").is_err());
        assert!(BlindKey::from_hex(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn tokens_are_keyed_and_separated() {
        let b = Blinder::new(&key());
        let other = Blinder::new(&BlindKey::new([8u8; 32]));
        assert_eq!(b.phone("13812345678"), b.phone("13812345678"));
        assert_ne!(b.phone("13812345678"), other.phone("13812345678"));
        assert_ne!(b.phone("13812345678"), b.district("13812345678"));
        assert_ne!(key().check_value(), BlindKey::new([8u8; 32]).check_value());
        // HMAC over the padded key equals HMAC over the key itself.
        let mut m = <HmacSha256 as Mac>::new_from_slice(&[7u8; 32]).expect("any length");
        m.update(b"lw1/phone\x0013812345678");
        let direct: [u8; 32] = m.finalize().into_bytes().into();
        assert_eq!(
            b.phone("13812345678").0,
            u64::from_le_bytes(direct[..8].try_into().expect("8 bytes"))
        );
    }

    #[test]
    fn row_tokens() {
        let b = Blinder::new(&key());
        let mut c = TokenCache::default();
        let full = b.tokens(
            Some("+86 138 1234 5678"),
            None,
            Some("张伟"),
            Some("北京市海淀区中关村大街27号"),
            &mut c,
        );
        let masked = b.tokens(None, Some("138****5678"), Some("Zhang Wei"), None, &mut c);
        assert!(full.tokens.phone.is_some());
        assert_eq!(full.tokens.masked, masked.tokens.masked);
        assert_eq!(full.tokens.pinyin, masked.tokens.pinyin);
        assert_ne!(full.tokens.name, masked.tokens.name);
        assert_eq!(full.city.as_deref(), Some("北京"));
        assert!(
            full.tokens
                .address
                .iter()
                .any(|t| t & ADDRESS_NUMBER_BIT != 0)
        );
        assert!(
            full.tokens
                .address
                .iter()
                .any(|t| t & ADDRESS_NUMBER_BIT == 0)
        );
    }
}
