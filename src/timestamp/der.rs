//! A deliberately small DER encoder and TLV walker (ITU-T X.690), just enough
//! for RFC 3161 time-stamp requests and responses and the CMS SignedData
//! (RFC 5652) that carries the token.
//!
//! Why hand-written: the time-stamp client needs to build one fixed request
//! shape and read a handful of fields out of the answer. A full ASN.1
//! toolkit would bring far more code than the parts used, and everything that
//! matters cryptographically (the TSA's signature and certificate chain) is
//! checked by `openssl ts -verify`, not here.
//!
//! Invariants of the decoder:
//! - It never panics and never allocates in proportion to a claimed length:
//!   every length is checked against the bytes actually present before it is
//!   used, and lengths need at most four length octets (4 GiB), far above the
//!   size cap the caller applies to whole answers.
//! - Indefinite lengths (X.690 §8.1.3.6) are rejected: DER forbids them
//!   (X.690 §10.1) and without them a TLV's extent is known from its header
//!   alone, which is what keeps the walker non-recursive and bounded.
//! - Only single-octet tags are accepted. Every tag RFC 3161 and RFC 5652 use
//!   fits in one octet; high tag numbers (X.690 §8.1.2.4) inside certificates
//!   never reach the walker because certificates are carried as opaque TLVs.
//! - Non-minimal length encodings are tolerated. DER requires minimal lengths
//!   (X.690 §10.1), but a TSA's cosmetic slip there does not make its
//!   timestamp less trustworthy, and openssl tolerates it as well.

use std::fmt;

/// Universal tag numbers used by RFC 3161 / RFC 5652 (X.680 §8.4).
pub const BOOLEAN: u8 = 0x01;
pub const INTEGER: u8 = 0x02;
pub const BIT_STRING: u8 = 0x03;
pub const OCTET_STRING: u8 = 0x04;
pub const NULL: u8 = 0x05;
pub const OID: u8 = 0x06;
pub const UTF8_STRING: u8 = 0x0c;
pub const PRINTABLE_STRING: u8 = 0x13;
pub const TELETEX_STRING: u8 = 0x14;
pub const IA5_STRING: u8 = 0x16;
pub const GENERALIZED_TIME: u8 = 0x18;
pub const VISIBLE_STRING: u8 = 0x1a;
pub const SEQUENCE: u8 = 0x30;
pub const SET: u8 = 0x31;

/// Context-specific constructed tag `[n]` (X.690 §8.1.2: class bits 10, P/C bit 1).
pub const fn context_constructed(n: u8) -> u8 {
    0xa0 | (n & 0x1f)
}

/// Context-specific primitive tag `[n]`.
pub const fn context_primitive(n: u8) -> u8 {
    0x80 | (n & 0x1f)
}

/// Why a DER structure could not be read; the caller adds which field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerError(pub String);

impl fmt::Display for DerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err(msg: impl Into<String>) -> DerError {
    DerError(msg.into())
}

// ---------------------------------------------------------------- encoding

/// Appends a DER length (X.690 §8.1.3.4/§8.1.3.5, minimal as §10.1 requires).
fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        // Short form: one octet, high bit clear.
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    let significant = &bytes[skip..];
    out.push(0x80 | significant.len() as u8);
    out.extend_from_slice(significant);
}

/// One complete TLV.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    push_len(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

/// A SEQUENCE of already-encoded elements.
pub fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    tlv(SEQUENCE, &parts.concat())
}

/// The content octets of a non-negative INTEGER (X.690 §8.3): big-endian,
/// minimal, with a leading 0x00 when the top bit would otherwise read as a
/// sign bit.
pub fn unsigned_content(value: &[u8]) -> Vec<u8> {
    let skip = value.iter().take_while(|b| **b == 0).count();
    let magnitude = &value[skip..];
    let mut out = Vec::with_capacity(magnitude.len() + 1);
    if magnitude.first().is_none_or(|b| b & 0x80 != 0) {
        out.push(0);
    }
    out.extend_from_slice(magnitude);
    out
}

/// A non-negative INTEGER TLV.
pub fn integer_u64(value: u64) -> Vec<u8> {
    tlv(INTEGER, &unsigned_content(&value.to_be_bytes()))
}

/// A BOOLEAN TLV; DER encodes TRUE as 0xFF (X.690 §11.1).
pub fn boolean(value: bool) -> Vec<u8> {
    tlv(BOOLEAN, &[if value { 0xff } else { 0x00 }])
}

/// The NULL TLV. (Production code sends a fixed AlgorithmIdentifier; the
/// general OID/NULL encoders build test fixtures and check that constant.)
#[cfg(test)]
pub fn null() -> Vec<u8> {
    tlv(NULL, &[])
}

/// An OCTET STRING TLV (primitive, as DER requires: X.690 §10.2).
pub fn octet_string(content: &[u8]) -> Vec<u8> {
    tlv(OCTET_STRING, content)
}

/// An OBJECT IDENTIFIER TLV from its arcs (X.690 §8.19). Returns `None` for
/// arcs no OID can have (fewer than two, first arc above 2, second arc
/// above 39 under roots 0 and 1, or a combined first subidentifier that
/// overflows).
#[cfg(test)]
pub fn oid(arcs: &[u64]) -> Option<Vec<u8>> {
    let (&first, rest) = arcs.split_first()?;
    let (&second, rest) = rest.split_first()?;
    if first > 2 || (first < 2 && second > 39) {
        return None;
    }
    let mut content = Vec::new();
    // §8.19.4: the first two arcs share one subidentifier, 40 * X + Y.
    push_base128(&mut content, (first * 40).checked_add(second)?);
    for &arc in rest {
        push_base128(&mut content, arc);
    }
    Some(tlv(OID, &content))
}

/// Base-128, high bit set on every octet but the last (X.690 §8.19.2).
#[cfg(test)]
fn push_base128(out: &mut Vec<u8>, mut value: u64) {
    let mut tmp = [0u8; 10];
    let mut n = 0;
    loop {
        tmp[n] = (value & 0x7f) as u8;
        n += 1;
        value >>= 7;
        if value == 0 {
            break;
        }
    }
    for i in (0..n).rev() {
        let more = if i == 0 { 0 } else { 0x80 };
        out.push(tmp[i] | more);
    }
}

// ---------------------------------------------------------------- decoding

/// One decoded TLV: its tag, its content octets and its whole encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    pub tag: u8,
    pub content: &'a [u8],
    /// Tag, length and content exactly as they appear in the input, so a
    /// certificate or eContent can be handed on byte for byte.
    pub raw: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// A reader over this TLV's content (for constructed types).
    pub fn reader(&self) -> Reader<'a> {
        Reader::new(self.content)
    }
}

/// A cursor over a run of consecutive TLVs.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { rest: bytes }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next TLV's tag without consuming it.
    pub fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// Reads the next TLV, whatever its tag.
    pub fn read(&mut self) -> Result<Tlv<'a>, DerError> {
        let input = self.rest;
        let (&tag, after_tag) = input
            .split_first()
            .ok_or_else(|| err("unexpected end of data"))?;
        if tag & 0x1f == 0x1f {
            return Err(err(format!(
                "high tag number form (tag octet 0x{tag:02x}) is not supported"
            )));
        }
        let (&first, after_len0) = after_tag
            .split_first()
            .ok_or_else(|| err("truncated length"))?;
        let (len, after_len) = if first < 0x80 {
            (usize::from(first), after_len0)
        } else if first == 0x80 {
            return Err(err("indefinite length is not allowed in DER"));
        } else {
            let count = usize::from(first & 0x7f);
            // 0xFF is reserved (X.690 §8.1.3.5 c); more than four octets
            // would describe a value far beyond any size we accept.
            if count > 4 {
                return Err(err(format!(
                    "length uses {count} octets; at most 4 allowed"
                )));
            }
            if after_len0.len() < count {
                return Err(err("truncated length"));
            }
            let (len_bytes, after) = after_len0.split_at(count);
            let len = len_bytes
                .iter()
                .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            let len = usize::try_from(len).map_err(|_| err("length does not fit in memory"))?;
            (len, after)
        };
        if after_len.len() < len {
            return Err(err(format!(
                "value claims {len} bytes but only {} remain",
                after_len.len()
            )));
        }
        let header = input.len() - after_len.len();
        let (content, rest) = after_len.split_at(len);
        let raw = &input[..header + len];
        self.rest = rest;
        Ok(Tlv { tag, content, raw })
    }

    /// Reads the next TLV and insists on its tag; `what` names the field in
    /// the error.
    pub fn field(&mut self, tag: u8, what: &str) -> Result<Tlv<'a>, DerError> {
        match self.peek_tag() {
            None => Err(err(format!("{what}: missing"))),
            Some(t) if t != tag => Err(err(format!(
                "{what}: expected tag 0x{tag:02x}, found 0x{t:02x}"
            ))),
            Some(_) => self.read().map_err(|e| err(format!("{what}: {e}"))),
        }
    }

    /// Reads the next TLV only if it carries `tag` (for OPTIONAL and DEFAULT
    /// fields, which are recognised by their tag).
    pub fn optional(&mut self, tag: u8, what: &str) -> Result<Option<Tlv<'a>>, DerError> {
        if self.peek_tag() == Some(tag) {
            self.field(tag, what).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Insists that nothing is left: trailing bytes mean the structure is not
    /// what we think it is.
    pub fn finish(&self, what: &str) -> Result<(), DerError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(err(format!(
                "{what}: {} unexpected trailing bytes",
                self.rest.len()
            )))
        }
    }
}

/// Reads exactly one TLV spanning all of `bytes`.
pub fn single<'a>(bytes: &'a [u8], tag: u8, what: &str) -> Result<Tlv<'a>, DerError> {
    let mut r = Reader::new(bytes);
    let t = r.field(tag, what)?;
    r.finish(what)?;
    Ok(t)
}

/// The dotted form of an OBJECT IDENTIFIER's content octets (X.690 §8.19).
pub fn oid_to_string(content: &[u8]) -> Result<String, DerError> {
    if content.is_empty() {
        return Err(err("empty object identifier"));
    }
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    let mut in_progress = false;
    for &b in content {
        // §8.19.2: a subidentifier never starts with 0x80 (non-minimal).
        if !in_progress && b == 0x80 {
            return Err(err("object identifier has a padded subidentifier"));
        }
        if value > (u64::MAX >> 7) {
            return Err(err("object identifier arc too large"));
        }
        value = (value << 7) | u64::from(b & 0x7f);
        in_progress = b & 0x80 != 0;
        if !in_progress {
            arcs.push(value);
            value = 0;
        }
    }
    if in_progress {
        return Err(err("object identifier ends inside a subidentifier"));
    }
    let mut out = String::new();
    for (i, arc) in arcs.iter().enumerate() {
        if i == 0 {
            // §8.19.4: undo the 40 * X + Y packing of the first two arcs.
            let (x, y) = match *arc {
                a if a < 40 => (0, a),
                a if a < 80 => (1, a - 40),
                a => (2, a - 80),
            };
            out.push_str(&format!("{x}.{y}"));
        } else {
            out.push_str(&format!(".{arc}"));
        }
    }
    Ok(out)
}

/// A small INTEGER (version numbers, PKIStatus) as i64.
pub fn small_int(t: &Tlv<'_>, what: &str) -> Result<i64, DerError> {
    if t.tag != INTEGER {
        return Err(err(format!("{what}: not an INTEGER")));
    }
    if t.content.is_empty() {
        return Err(err(format!("{what}: empty INTEGER")));
    }
    if t.content.len() > 8 {
        return Err(err(format!("{what}: INTEGER too large")));
    }
    // Two's complement, sign-extended from the first octet (X.690 §8.3.3).
    let init: i64 = if t.content[0] & 0x80 != 0 { -1 } else { 0 };
    Ok(t.content
        .iter()
        .fold(init, |acc, b| (acc << 8) | i64::from(*b)))
}

/// An INTEGER's content octets, checked to be a non-empty INTEGER.
pub fn integer_content<'a>(t: &Tlv<'a>, what: &str) -> Result<&'a [u8], DerError> {
    if t.tag != INTEGER {
        return Err(err(format!("{what}: not an INTEGER")));
    }
    if t.content.is_empty() {
        return Err(err(format!("{what}: empty INTEGER")));
    }
    Ok(t.content)
}

/// The magnitude of a non-negative INTEGER's content: leading zero octets
/// removed (they are sign padding or, in sloppy encoders, non-minimal
/// zeros), so two encodings of the same number compare equal.
pub fn magnitude(content: &[u8]) -> &[u8] {
    let skip = content.iter().take_while(|b| **b == 0).count();
    &content[skip..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_short_and_long() {
        assert_eq!(tlv(0x04, &[1, 2]), vec![0x04, 0x02, 1, 2]);
        let long = tlv(0x04, &[0u8; 200]);
        assert_eq!(&long[..3], &[0x04, 0x81, 200]);
        let longer = tlv(0x04, &[0u8; 300]);
        assert_eq!(&longer[..4], &[0x04, 0x82, 0x01, 0x2c]);
        let t = single(&longer, 0x04, "x").unwrap();
        assert_eq!(t.content.len(), 300);
        assert_eq!(t.raw, &longer[..]);
    }

    #[test]
    fn rejects_indefinite_truncated_and_oversized() {
        assert!(Reader::new(&[0x30, 0x80, 0, 0]).read().is_err());
        assert!(Reader::new(&[0x30, 0x05, 1]).read().is_err());
        assert!(Reader::new(&[0x30, 0x85, 1, 1, 1, 1, 1]).read().is_err());
        assert!(
            Reader::new(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff])
                .read()
                .is_err()
        );
        assert!(Reader::new(&[0x1f, 0x01, 0x00]).read().is_err());
        assert!(Reader::new(&[0x30]).read().is_err());
        assert!(Reader::new(&[]).read().is_err());
        assert!(single(&[0x05, 0x00, 0x00], NULL, "x").is_err());
    }

    #[test]
    fn integers() {
        assert_eq!(integer_u64(0), vec![0x02, 0x01, 0x00]);
        assert_eq!(integer_u64(1), vec![0x02, 0x01, 0x01]);
        assert_eq!(integer_u64(0x80), vec![0x02, 0x02, 0x00, 0x80]);
        assert_eq!(
            integer_u64(u64::MAX),
            vec![
                0x02, 0x09, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
            ]
        );
        let encoded = integer_u64(300);
        let t = single(&encoded, INTEGER, "x").unwrap();
        assert_eq!(small_int(&t, "x").unwrap(), 300);
        let neg = single(&[0x02, 0x01, 0xff], INTEGER, "x").unwrap();
        assert_eq!(small_int(&neg, "x").unwrap(), -1);
        assert_eq!(magnitude(&[0, 0, 5]), &[5]);
    }

    #[test]
    fn oids_round_trip() {
        let sha256 = oid(&[2, 16, 840, 1, 101, 3, 4, 2, 1]).unwrap();
        assert_eq!(
            sha256,
            vec![
                0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01
            ]
        );
        let t = single(&sha256, OID, "x").unwrap();
        assert_eq!(oid_to_string(t.content).unwrap(), "2.16.840.1.101.3.4.2.1");
        let signed_data = oid(&[1, 2, 840, 113549, 1, 7, 2]).unwrap();
        let t = single(&signed_data, OID, "x").unwrap();
        assert_eq!(oid_to_string(t.content).unwrap(), "1.2.840.113549.1.7.2");
        assert!(oid(&[3, 1]).is_none());
        assert!(oid(&[1, 40]).is_none());
        assert!(oid_to_string(&[0x2a, 0x86]).is_err());
        assert!(oid_to_string(&[0x80, 0x01]).is_err());
        assert!(oid_to_string(&[0xff; 12]).is_err());
    }
}
