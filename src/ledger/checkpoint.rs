//! Signed tree heads for the ledger: C2SP tlog-checkpoint bodies carried in
//! C2SP signed notes, signed and verified with Ed25519.
//!
//! A signed checkpoint looks like this (`—` is U+2014 EM DASH):
//!
//! ```text
//! <origin>
//! <tree size, decimal>
//! <base64 of the 32-byte RFC 6962 root>
//! [extension lines]
//!
//! — <key name> <base64(4-byte key id || 64-byte Ed25519 signature)>
//! ```
//!
//! Invariants:
//! - The signature covers the note text byte for byte, up to and including
//!   its final newline but not the blank line (c2sp.org/signed-note
//!   "Format"); nothing is re-encoded before verification, so what was
//!   verified is exactly what is parsed.
//! - A note is accepted only if at least one signature line carries the
//!   verifier's key name and key id and verifies under its key, and no line
//!   with that name and id fails to verify (signed-note "Signatures": a
//!   failing known signature rejects the whole note). Lines from other keys
//!   are ignored, which is what lets witnesses cosign.
//! - Parsing is strict and never panics: valid UTF-8 without ASCII control
//!   characters other than newline, a canonical decimal size, a canonical
//!   padded base64 root of exactly 32 bytes, non-empty lines. Every
//!   rejection says which line is at fault and why.
//! - Key ids are `SHA-256(name || 0x0A || 0x01 || public key)[:4]`
//!   (signed-note "Ed25519 signatures") and verifier keys are
//!   `<name>+<hex key id>+<base64(0x01 || public key)>`, as in Go's
//!   `golang.org/x/mod/sumdb/note`, so notes interoperate with Go tooling
//!   and sum.golang.org.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::merkle::Hash;

/// Signature type byte for Ed25519 (c2sp.org/signed-note "Signature types").
const ED25519_TYPE: u8 = 0x01;
/// Em dash and space that start every signature line (signed-note "Format").
const SIGNATURE_PREFIX: &str = "\u{2014} ";
/// Signed-note "Format": verifiers SHOULD cap the number of signatures and
/// MUST accept at least 16; Go's note package caps at 100.
const MAX_SIGNATURES: usize = 100;
/// Key id bytes followed by the 64-byte Ed25519 signature.
const ED25519_SIGNATURE_LINE_BYTES: usize = 4 + 64;

/// Why a checkpoint, note or key was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    /// The signed note's framing is wrong (lines are counted from 1 over
    /// the whole note).
    #[error("malformed signed note, line {line}: {reason}")]
    MalformedNote { line: usize, reason: String },
    /// The checkpoint body is wrong (lines are counted from 1; the body is
    /// the start of the note, so the numbers match the note's).
    #[error("malformed checkpoint body, line {line}: {reason}")]
    MalformedBody { line: usize, reason: String },
    /// A base64 field does not decode.
    #[error("line {line}: {field} is not valid padded standard base64: {source}")]
    Base64 {
        line: usize,
        field: &'static str,
        #[source]
        source: base64::DecodeError,
    },
    /// A key name breaks signed-note "Format": it must be non-empty with no
    /// Unicode space and no '+'.
    #[error("invalid key name {name:?}: {reason}")]
    InvalidKeyName { name: String, reason: &'static str },
    /// A verifier key string that is not `<name>+<key id>+<key>`.
    #[error("invalid verifier key: {0}")]
    InvalidVerifierKey(String),
    /// No signature line carries the verifier's key name and key id.
    #[error("note has no signature by key {name}+{key_id}")]
    UnknownKey { name: String, key_id: String },
    /// A signature line by the verifier's key does not verify.
    #[error("line {line}: signature by key {name}+{key_id} does not verify")]
    BadSignature {
        line: usize,
        name: String,
        key_id: String,
    },
}

/// A transparency-log checkpoint (c2sp.org/tlog-checkpoint "Note text").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Unique identity of the log; non-empty, one line.
    pub origin: String,
    /// Number of leaves in the tree.
    pub size: u64,
    /// RFC 6962 Merkle tree hash at `size`.
    pub root: Hash,
    /// Optional opaque lines after the root; each non-empty, one line.
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The note text: origin, size, base64 root and extension lines, each
    /// ending in a newline. This is exactly the signed byte string.
    pub fn body(&self) -> String {
        let mut out = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        );
        for line in &self.extensions {
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    /// Checks that [`Checkpoint::body`] will parse back to `self`: the
    /// origin and extension lines are non-empty and hold no newline or
    /// other control character. [`NoteSigner::sign`] does not check this.
    pub fn validate(&self) -> Result<(), CheckpointError> {
        check_body_line(1, &self.origin, "origin")?;
        for (i, line) in self.extensions.iter().enumerate() {
            check_body_line(i + 4, line, "extension line")?;
        }
        Ok(())
    }

    /// Parses a checkpoint body (the note text, with its final newline).
    pub fn parse_body(text: &str) -> Result<Self, CheckpointError> {
        let line_count = text.split('\n').count();
        let Some(content) = text.strip_suffix('\n') else {
            return Err(body_error(
                line_count,
                "the body does not end with a newline",
            ));
        };
        let lines: Vec<&str> = content.split('\n').collect();
        // tlog-checkpoint "Note text": at least three non-empty lines.
        if lines.len() < 3 {
            return Err(body_error(
                lines.len() + 1,
                "a checkpoint needs an origin, a tree size and a root hash line",
            ));
        }
        for (i, line) in lines.iter().enumerate() {
            if let Some(c) = line.chars().find(|c| is_forbidden_control(*c)) {
                return Err(body_error(
                    i + 1,
                    format!("contains control character U+{:04X}", u32::from(c)),
                ));
            }
        }

        let origin = lines[0];
        if origin.is_empty() {
            return Err(body_error(1, "the origin is empty"));
        }
        let size = parse_tree_size(lines[1])?;
        let root = parse_root(lines[2])?;
        let mut extensions = Vec::with_capacity(lines.len() - 3);
        for (i, line) in lines.iter().enumerate().skip(3) {
            if line.is_empty() {
                return Err(body_error(i + 1, "extension lines must be non-empty"));
            }
            extensions.push((*line).to_owned());
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }
}

/// Holds an Ed25519 signing key under a note key name.
pub struct NoteSigner {
    name: String,
    key: SigningKey,
    key_id: [u8; 4],
}

impl fmt::Debug for NoteSigner {
    // Never print the private key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_id", &hex::encode(self.key_id))
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// A signer for `name`, which must be a valid key name.
    pub fn new(name: &str, key: SigningKey) -> Result<Self, CheckpointError> {
        validate_key_name(name)?;
        let key_id = ed25519_key_id(name, &key.verifying_key());
        Ok(NoteSigner {
            name: name.to_owned(),
            key,
            key_id,
        })
    }

    /// A signer for `name` with a fresh key from the operating system's RNG.
    pub fn generate(name: &str) -> Result<Self, CheckpointError> {
        validate_key_name(name)?;
        Self::new(name, SigningKey::generate(&mut rand::rngs::OsRng))
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key id (signed-note "Ed25519 signatures").
    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    /// The matching verifier.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// The 32-byte Ed25519 seed, for storing the key. Secret.
    pub fn seed_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The full signed note for `cp`: its body, a blank line and one
    /// signature line. The body is signed as [`Checkpoint::body`] renders
    /// it, unchecked: for a checkpoint that fails [`Checkpoint::validate`]
    /// (an empty field, a newline inside one) [`open_checkpoint`] refuses
    /// the note or reads back different fields, so validate checkpoints
    /// whose fields came from outside before signing them.
    pub fn sign(&self, cp: &Checkpoint) -> String {
        self.sign_text(&cp.body())
    }

    /// Signs any note text ending in a newline; the checkpoint layer is the
    /// only public caller.
    fn sign_text(&self, text: &str) -> String {
        let signature = self.key.sign(text.as_bytes());
        let mut raw = Vec::with_capacity(ED25519_SIGNATURE_LINE_BYTES);
        raw.extend_from_slice(&self.key_id);
        raw.extend_from_slice(&signature.to_bytes());
        // signed-note "Format": text, blank line, then
        // "— <key name> <base64(key id || signature)>\n".
        format!(
            "{text}\n{SIGNATURE_PREFIX}{} {}\n",
            self.name,
            STANDARD.encode(raw)
        )
    }
}

/// A trusted Ed25519 note key: name, key id and public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: [u8; 4],
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Parses `<name>+<8 hex digit key id>+<base64(0x01 || 32-byte key)>`,
    /// checking that the key id is the one the name and key imply.
    pub fn parse(vkey: &str) -> Result<Self, CheckpointError> {
        let invalid = |why: &str| CheckpointError::InvalidVerifierKey(why.to_owned());
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("expected <name>+<key id>+<base64 key>"));
        };
        validate_key_name(name)?;
        if id_hex.len() != 8 || !id_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid("the key id must be 8 hex digits"));
        }
        let mut key_id = [0u8; 4];
        hex::decode_to_slice(id_hex, &mut key_id)
            .map_err(|_| invalid("the key id must be 8 hex digits"))?;
        let raw = STANDARD
            .decode(key_b64)
            .map_err(|e| CheckpointError::InvalidVerifierKey(format!("key is not base64: {e}")))?;
        let public: [u8; 32] = match raw.split_first() {
            Some((&ED25519_TYPE, rest)) => rest
                .try_into()
                .map_err(|_| invalid("an Ed25519 key must be 32 bytes"))?,
            Some((other, _)) => {
                return Err(CheckpointError::InvalidVerifierKey(format!(
                    "unsupported signature type 0x{other:02x} (only Ed25519, 0x01)"
                )));
            }
            None => return Err(invalid("the key is empty")),
        };
        let key = VerifyingKey::from_bytes(&public)
            .map_err(|_| invalid("not a valid Ed25519 public key"))?;
        if ed25519_key_id(name, &key) != key_id {
            return Err(invalid("the key id does not match the name and key"));
        }
        Ok(NoteVerifier {
            name: name.to_owned(),
            key_id,
            key,
        })
    }

    /// The `<name>+<key id>+<key>` string [`NoteVerifier::parse`] reads,
    /// with the key id in lowercase hex.
    pub fn to_vkey_string(&self) -> String {
        let mut raw = Vec::with_capacity(33);
        raw.push(ED25519_TYPE);
        raw.extend_from_slice(self.key.as_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(self.key_id),
            STANDARD.encode(raw)
        )
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key id.
    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }
}

/// Opens a signed note and returns its text (with the final newline) if it
/// carries a valid signature by `verifier` (c2sp.org/signed-note).
///
/// Signature lines by other keys are checked for form only and otherwise
/// ignored; any line by `verifier`'s name and key id that fails to verify
/// rejects the note.
pub fn open_note<'a>(note: &'a str, verifier: &NoteVerifier) -> Result<&'a str, CheckpointError> {
    // signed-note "Format": no ASCII control characters but newline. (The
    // &str type already guarantees valid UTF-8.)
    for (i, line) in note.split('\n').enumerate() {
        if let Some(c) = line.chars().find(|c| is_forbidden_control(*c)) {
            return Err(note_error(
                i + 1,
                format!("contains control character U+{:04X}", u32::from(c)),
            ));
        }
    }
    // The text is separated from the signatures by the last blank line.
    let Some(split) = note.rfind("\n\n") else {
        return Err(note_error(
            note.split('\n').count(),
            "no blank line separates the text from the signatures",
        ));
    };
    let text = &note[..split + 1];
    let signatures = &note[split + 2..];
    let text_lines = text.matches('\n').count();
    let first_signature_line = text_lines + 2;
    if signatures.is_empty() {
        return Err(note_error(
            first_signature_line,
            "no signature lines after the blank line",
        ));
    }
    let Some(signatures) = signatures.strip_suffix('\n') else {
        return Err(note_error(
            text_lines + 1 + signatures.split('\n').count(),
            "the last signature line does not end with a newline",
        ));
    };

    let mut verified = false;
    for (i, line) in signatures.split('\n').enumerate() {
        let line_no = first_signature_line + i;
        if i >= MAX_SIGNATURES {
            return Err(note_error(
                line_no,
                format!("more than {MAX_SIGNATURES} signature lines"),
            ));
        }
        let Some(rest) = line.strip_prefix(SIGNATURE_PREFIX) else {
            return Err(note_error(
                line_no,
                "a signature line must start with an em dash (U+2014) and a space",
            ));
        };
        let Some((name, b64)) = rest.split_once(' ') else {
            return Err(note_error(
                line_no,
                "no space between the key name and the signature",
            ));
        };
        if let Err(e) = validate_key_name(name) {
            return Err(note_error(line_no, e.to_string()));
        }
        let raw = STANDARD
            .decode(b64)
            .map_err(|source| CheckpointError::Base64 {
                line: line_no,
                field: "signature",
                source,
            })?;
        // signed-note "Signatures": 4 bytes of key id, then the signature.
        if raw.len() < 5 {
            return Err(note_error(
                line_no,
                "a signature must be a key id plus at least one byte",
            ));
        }
        let (key_id, signature) = raw.split_at(4);
        // Unknown keys are ignored, even if they share the name or the id
        // (but not both) with the known key (signed-note "Signatures").
        if name != verifier.name || key_id != verifier.key_id {
            continue;
        }
        let bad = || CheckpointError::BadSignature {
            line: line_no,
            name: verifier.name.clone(),
            key_id: hex::encode(verifier.key_id),
        };
        let signature = Signature::from_slice(signature).map_err(|_| bad())?;
        // Strict verification also refuses small-order keys and
        // non-canonical encodings, so a signature cannot be mauled into
        // another valid one for the same note.
        verifier
            .key
            .verify_strict(text.as_bytes(), &signature)
            .map_err(|_| bad())?;
        verified = true;
    }
    if !verified {
        return Err(CheckpointError::UnknownKey {
            name: verifier.name.clone(),
            key_id: hex::encode(verifier.key_id),
        });
    }
    Ok(text)
}

/// Opens a signed checkpoint: verifies the note with `verifier` (see
/// [`open_note`]) and parses its text as a checkpoint body.
pub fn open_checkpoint(note: &str, verifier: &NoteVerifier) -> Result<Checkpoint, CheckpointError> {
    let text = open_note(note, verifier)?;
    Checkpoint::parse_body(text)
}

/// `SHA-256(name || 0x0A || 0x01 || public key)[:4]` (signed-note
/// "Ed25519 signatures").
fn ed25519_key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ED25519_TYPE]);
    h.update(key.as_bytes());
    let digest = h.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// signed-note "Format": key names are non-empty and hold no Unicode space
/// and no '+'. Control characters are refused too, since no note may hold
/// one.
fn validate_key_name(name: &str) -> Result<(), CheckpointError> {
    let reason = if name.is_empty() {
        "a key name must not be empty"
    } else if name.chars().any(char::is_whitespace) {
        "a key name must not contain whitespace"
    } else if name.contains('+') {
        "a key name must not contain '+'"
    } else if name.chars().any(char::is_control) {
        "a key name must not contain control characters"
    } else {
        return Ok(());
    };
    Err(CheckpointError::InvalidKeyName {
        name: name.to_owned(),
        reason,
    })
}

/// ASCII control characters other than newline (signed-note "Format").
fn is_forbidden_control(c: char) -> bool {
    c < '\u{20}' && c != '\n'
}

/// A body line the checkpoint's own fields must satisfy.
fn check_body_line(line: usize, value: &str, what: &str) -> Result<(), CheckpointError> {
    if value.is_empty() {
        return Err(body_error(line, format!("the {what} is empty")));
    }
    if let Some(c) = value.chars().find(|c| *c < '\u{20}') {
        return Err(body_error(
            line,
            format!(
                "the {what} contains control character U+{:04X}",
                u32::from(c)
            ),
        ));
    }
    Ok(())
}

/// tlog-checkpoint "Note text": ASCII decimal with no leading zeroes,
/// except the size of the empty tree, "0".
fn parse_tree_size(line: &str) -> Result<u64, CheckpointError> {
    if line.is_empty() {
        return Err(body_error(2, "the tree size is empty"));
    }
    if !line.bytes().all(|b| b.is_ascii_digit()) {
        return Err(body_error(
            2,
            format!("the tree size {line:?} is not a decimal number"),
        ));
    }
    if line.len() > 1 && line.starts_with('0') {
        return Err(body_error(
            2,
            format!("the tree size {line:?} has a leading zero"),
        ));
    }
    line.parse::<u64>()
        .map_err(|_| body_error(2, format!("the tree size {line:?} does not fit in 64 bits")))
}

/// tlog-checkpoint "Note text": the base64 of the 32-byte root hash.
fn parse_root(line: &str) -> Result<Hash, CheckpointError> {
    let raw = STANDARD
        .decode(line)
        .map_err(|source| CheckpointError::Base64 {
            line: 3,
            field: "the root hash",
            source,
        })?;
    let len = raw.len();
    raw.try_into()
        .map_err(|_| body_error(3, format!("the root hash decodes to {len} bytes, not 32")))
}

fn note_error(line: usize, reason: impl Into<String>) -> CheckpointError {
    CheckpointError::MalformedNote {
        line,
        reason: reason.into(),
    }
}

fn body_error(line: usize, reason: impl Into<String>) -> CheckpointError {
    CheckpointError::MalformedBody {
        line,
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Published vectors from golang.org/x/mod/sumdb/note (note.go's package
    // documentation and note_test.go).
    const PETER_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
    const PETER_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                              then you don't know what your problem is.\n";
    const PETER_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    const ENOCH_SIG: &str = "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

    // The Go checksum database's published key (Go's
    // cmd/go/internal/modfetch/key.go) and two real checkpoints it signed:
    // one fetched from sum.golang.org/latest on 2024-09-23 (quoted in
    // sigsum-go's checkpoint tests) and one quoted in trillian-tessera's
    // parse tests (there without its final newline, restored here).
    const SUMDB_VKEY: &str = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8";
    const SUMDB_CHECKPOINTS: [(&str, u64, &str); 2] = [
        (
            "go.sum database tree\n30055305\nmXfgRcJ0bG0j3CPdKwgGWtUzBUbX67saZGRmFuJGGsM=\n\n\
             \u{2014} sum.golang.org Az3grpgEild5qw7+5dtV13Kf1C2Xurm8q4fhdxvcsDHnqNTaxL2AFjBY+2TyGKevucFcAAlWFJJYle3EJlDCrQ+y3A8=\n",
            30_055_305,
            "mXfgRcJ0bG0j3CPdKwgGWtUzBUbX67saZGRmFuJGGsM=",
        ),
        (
            "go.sum database tree\n31700353\nqINS1GRFhWHwdkUeqLEoP4yEMkTBBzxBkGwGQlVlVcs=\n\n\
             \u{2014} sum.golang.org Az3grnmrIUEDFqHzAElIQCPNoRFRAAdFo47fooyWKMHb89k11GJh5zHIfNCOBmwn/C3YI8oW9/C8DJ87F61QqspBYwM=\n",
            31_700_353,
            "qINS1GRFhWHwdkUeqLEoP4yEMkTBBzxBkGwGQlVlVcs=",
        ),
    ];

    fn peter_signer() -> NoteSigner {
        let raw = STANDARD
            .decode(PETER_SKEY.splitn(5, '+').nth(4).unwrap())
            .unwrap();
        assert_eq!(raw[0], ED25519_TYPE);
        let seed: [u8; 32] = raw[1..].try_into().unwrap();
        NoteSigner::new("PeterNeumann", SigningKey::from_bytes(&seed)).unwrap()
    }

    fn sample() -> Checkpoint {
        Checkpoint {
            origin: "leakwatch.example/ledger".to_owned(),
            size: 1234,
            root: core::array::from_fn(|i| i as u8),
            extensions: vec![],
        }
    }

    fn signer() -> NoteSigner {
        NoteSigner::new(
            "leakwatch.example/ledger",
            SigningKey::from_bytes(&[7u8; 32]),
        )
        .unwrap()
    }

    /// Replaces the first occurrence of `from` in the body part of `note`.
    fn edit_body(note: &str, from: &str, to: &str) -> String {
        let split = note.rfind("\n\n").unwrap();
        let (body, sigs) = note.split_at(split + 1);
        assert!(body.contains(from), "{from:?} not in body");
        format!("{}{}", body.replacen(from, to, 1), sigs)
    }

    #[test]
    fn body_has_the_exact_checkpoint_shape() {
        let mut cp = sample();
        assert_eq!(
            cp.body(),
            "leakwatch.example/ledger\n1234\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
        );
        cp.extensions = vec!["ext one".to_owned(), "two".to_owned()];
        assert!(cp.body().ends_with("=\next one\ntwo\n"));
        assert_eq!(Checkpoint::parse_body(&cp.body()), Ok(cp));
    }

    #[test]
    fn sign_then_open_round_trips() {
        let signer = signer();
        for extensions in [vec![], vec!["timestamp 1700000000".to_owned()]] {
            let cp = Checkpoint {
                extensions,
                ..sample()
            };
            let note = signer.sign(&cp);
            let (body, rest) = note.split_at(cp.body().len());
            assert_eq!(body, cp.body());
            assert!(rest.starts_with("\n\u{2014} leakwatch.example/ledger "));
            assert!(rest.ends_with('\n'));
            // 4 + 64 bytes of signature is 92 base64 characters.
            let b64 = rest.trim_end().rsplit(' ').next().unwrap();
            assert_eq!(b64.len(), 92);
            assert_eq!(&STANDARD.decode(b64).unwrap()[..4], &signer.key_id());
            assert_eq!(open_checkpoint(&note, &signer.verifier()), Ok(cp));
        }
        let empty = Checkpoint {
            size: 0,
            root: super::super::merkle::empty_root(),
            ..sample()
        };
        let note = signer.sign(&empty);
        assert_eq!(open_checkpoint(&note, &signer.verifier()), Ok(empty));
    }

    #[test]
    fn generated_signers_round_trip_and_keep_their_seed() {
        let a = NoteSigner::generate("log.example/a").unwrap();
        let b = NoteSigner::generate("log.example/a").unwrap();
        assert_ne!(a.seed_bytes(), b.seed_bytes());
        let again =
            NoteSigner::new("log.example/a", SigningKey::from_bytes(&a.seed_bytes())).unwrap();
        assert_eq!(again.verifier(), a.verifier());
        let note = a.sign(&sample());
        assert_eq!(open_checkpoint(&note, &again.verifier()), Ok(sample()));
        assert!(matches!(
            open_checkpoint(&note, &b.verifier()),
            Err(CheckpointError::UnknownKey { .. })
        ));
        assert!(format!("{a:?}").contains("log.example/a"));
        assert!(!format!("{a:?}").contains(&hex::encode(a.seed_bytes())));
    }

    #[test]
    fn verifier_key_string_round_trips_with_the_exact_shape() {
        let signer = signer();
        let verifier = signer.verifier();
        let vkey = verifier.to_vkey_string();
        let parts: Vec<&str> = vkey.splitn(3, '+').collect();
        assert_eq!(parts[0], "leakwatch.example/ledger");
        assert_eq!(parts[1], hex::encode(signer.key_id()));
        assert_eq!(parts[1].len(), 8);
        assert!(
            parts[1]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        let raw = STANDARD.decode(parts[2]).unwrap();
        assert_eq!(raw.len(), 33);
        assert_eq!(raw[0], 0x01);
        assert_eq!(&raw[1..], signer.key.verifying_key().as_bytes());
        let parsed = NoteVerifier::parse(&vkey).unwrap();
        assert_eq!(parsed, verifier);
        assert_eq!(parsed.name(), "leakwatch.example/ledger");
        assert_eq!(parsed.key_id(), signer.key_id());
        assert_eq!(parsed.to_vkey_string(), vkey);
    }

    #[test]
    fn key_id_is_the_truncated_sha256_of_name_newline_type_and_key() {
        let signer = signer();
        let public = signer.key.verifying_key().to_bytes();
        let mut input = b"leakwatch.example/ledger".to_vec();
        input.push(0x0a);
        input.push(0x01);
        input.extend_from_slice(&public);
        let digest = Sha256::digest(&input);
        assert_eq!(signer.key_id(), digest[..4]);
        assert_eq!(signer.verifier().key_id(), digest[..4]);
        // And the published Go vector: PeterNeumann's id is c74f20a3.
        assert_eq!(peter_signer().key_id(), [0xc7, 0x4f, 0x20, 0xa3]);
    }

    #[test]
    fn interop_with_go_sumdb_note_vectors() {
        let peter = peter_signer();
        // Ed25519 is deterministic, so the published signed note must come
        // out byte for byte.
        assert_eq!(peter.verifier().to_vkey_string(), PETER_VKEY);
        let signed = peter.sign_text(PETER_TEXT);
        assert_eq!(signed, format!("{PETER_TEXT}\n{PETER_SIG}"));

        let peter_v = NoteVerifier::parse(PETER_VKEY).unwrap();
        let enoch_v = NoteVerifier::parse(ENOCH_VKEY).unwrap();
        let both = format!("{PETER_TEXT}\n{PETER_SIG}{ENOCH_SIG}");
        assert_eq!(open_note(&both, &peter_v), Ok(PETER_TEXT));
        assert_eq!(open_note(&both, &enoch_v), Ok(PETER_TEXT));
        // The published note is not a checkpoint.
        assert!(matches!(
            open_checkpoint(&both, &peter_v),
            Err(CheckpointError::MalformedBody { .. })
        ));
        // Go's "invalid signature" case: bytes inserted into the signature.
        let mangled = format!("{PETER_TEXT}\n{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]);
        assert!(matches!(
            open_note(&mangled, &peter_v),
            Err(CheckpointError::BadSignature { line: 4, .. })
        ));
        // Go's malformed notes.
        for bad in [
            PETER_TEXT.to_owned(),
            format!("{PETER_TEXT}\n"),
            format!("{PETER_TEXT}\n{}", &PETER_SIG[..PETER_SIG.len() - 1]),
            format!("\u{1}{PETER_TEXT}\n{PETER_SIG}"),
            format!(
                "{PETER_TEXT}\n\u{2014} Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
            ),
            format!("{PETER_TEXT}\n{PETER_SIG}Unexpected line.\n"),
        ] {
            assert!(open_note(&bad, &peter_v).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn go_verifier_key_manglings_are_refused() {
        // Port of note_test.go's TestNewVerifier: every proper substring
        // and every single-byte increment of the key must be refused.
        assert!(NoteVerifier::parse(PETER_VKEY).is_ok());
        let bytes = PETER_VKEY.as_bytes();
        for i in 0..=bytes.len() {
            for j in i + 1..=bytes.len() {
                if i != 0 || j != bytes.len() {
                    let sub = &PETER_VKEY[i..j];
                    assert!(NoteVerifier::parse(sub).is_err(), "accepted {sub:?}");
                }
            }
        }
        for i in 0..bytes.len() {
            let mut changed = bytes.to_vec();
            changed[i] += 1;
            let changed = String::from_utf8(changed).unwrap();
            assert!(
                NoteVerifier::parse(&changed).is_err(),
                "accepted {changed:?}"
            );
        }
        // Wrong key length and unknown algorithm, each with a matching id.
        assert!(
            NoteVerifier::parse(
                "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
            )
            .is_err()
        );
        assert!(
            NoteVerifier::parse(
                "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            )
            .is_err()
        );
        for bad in ["", "+", "++", "a+b", "a b+c74f20a3+AA==", "+c74f20a3+ARpc"] {
            assert!(NoteVerifier::parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn interop_with_real_sum_golang_org_checkpoints() {
        let verifier = NoteVerifier::parse(SUMDB_VKEY).unwrap();
        assert_eq!(verifier.name(), "sum.golang.org");
        assert_eq!(verifier.key_id(), [0x03, 0x3d, 0xe0, 0xae]);
        for (note, size, root) in SUMDB_CHECKPOINTS {
            let cp = open_checkpoint(note, &verifier).unwrap();
            assert_eq!(cp.origin, "go.sum database tree");
            assert_eq!(cp.size, size);
            assert_eq!(STANDARD.encode(cp.root), root);
            assert!(cp.extensions.is_empty());
            // Any change to the signed size breaks the signature.
            let forged = note.replacen(&size.to_string(), &(size + 1).to_string(), 1);
            assert!(matches!(
                open_checkpoint(&forged, &verifier),
                Err(CheckpointError::BadSignature { .. })
            ));
        }
    }

    #[test]
    fn tampering_with_any_body_line_fails() {
        let signer = signer();
        let verifier = signer.verifier();
        let cp = Checkpoint {
            extensions: vec!["extension".to_owned()],
            ..sample()
        };
        let note = signer.sign(&cp);
        let root_b64 = STANDARD.encode(cp.root);
        let mut other_root = cp.root;
        other_root[31] ^= 1;
        for (from, to) in [
            ("leakwatch.example/ledger\n", "leakwatch.example/ledgex\n"),
            ("leakwatch.example/ledger\n", "Leakwatch.example/ledger\n"),
            ("1234", "1235"),
            ("1234", "123"),
            (root_b64.as_str(), STANDARD.encode(other_root).as_str()),
            ("extension", "extensioN"),
            ("extension\n", ""),
            ("extension\n", "extension\nmore\n"),
        ] {
            let tampered = edit_body(&note, from, to);
            assert!(
                matches!(
                    open_checkpoint(&tampered, &verifier),
                    Err(CheckpointError::BadSignature { line, .. }) if line > 3
                ),
                "accepted body edit {from:?} -> {to:?}"
            );
        }
    }

    #[test]
    fn tampering_with_the_signature_or_key_fails() {
        let signer = signer();
        let verifier = signer.verifier();
        let note = signer.sign(&sample());
        let sig_start = note.rfind(' ').unwrap() + 1;
        // Change each base64 character of the signature in turn: either
        // the key id stops matching, or the signature stops verifying.
        for i in sig_start..note.len() - 1 {
            let c = note.as_bytes()[i];
            if c == b'=' {
                continue;
            }
            let replacement = if c == b'A' { "B" } else { "A" };
            let mut tampered = note.clone();
            tampered.replace_range(i..=i, replacement);
            assert!(
                open_checkpoint(&tampered, &verifier).is_err(),
                "accepted edit at {i}"
            );
        }

        // Another key, same name: the id differs, so the note is unknown.
        let other = NoteSigner::new(signer.name(), SigningKey::from_bytes(&[8u8; 32])).unwrap();
        assert!(matches!(
            open_checkpoint(&note, &other.verifier()),
            Err(CheckpointError::UnknownKey { .. })
        ));
        // Another key's signature relabelled with this key's name and id.
        let forged_note = other.sign(&sample());
        let forged_raw = STANDARD
            .decode(forged_note.trim_end().rsplit(' ').next().unwrap())
            .unwrap();
        let mut relabelled = signer.key_id().to_vec();
        relabelled.extend_from_slice(&forged_raw[4..]);
        let forged = format!(
            "{}\n\u{2014} {} {}\n",
            sample().body(),
            signer.name(),
            STANDARD.encode(&relabelled)
        );
        assert!(matches!(
            open_checkpoint(&forged, &verifier),
            Err(CheckpointError::BadSignature { line: 5, .. })
        ));
        // A truncated signature by the known key is a bad signature.
        let short = format!(
            "{}\n\u{2014} {} {}\n",
            sample().body(),
            signer.name(),
            STANDARD.encode(&relabelled[..40])
        );
        assert!(matches!(
            open_checkpoint(&short, &verifier),
            Err(CheckpointError::BadSignature { .. })
        ));
    }

    #[test]
    fn other_keys_signatures_are_ignored_but_a_bad_known_one_rejects() {
        let signer = signer();
        let witness =
            NoteSigner::new("witness.example", SigningKey::from_bytes(&[9u8; 32])).unwrap();
        let cp = sample();
        let ours = signer.sign(&cp);
        let theirs = witness.sign(&cp);
        let our_line = &ours[cp.body().len() + 1..];
        let their_line = &theirs[cp.body().len() + 1..];
        // A short, unknown-algorithm-looking line from a third key.
        let odd_line = "\u{2014} third.example AAAAAAAA\n";
        let note = format!("{}\n{their_line}{odd_line}{our_line}", cp.body());
        assert_eq!(open_checkpoint(&note, &signer.verifier()), Ok(cp.clone()));
        assert_eq!(open_checkpoint(&note, &witness.verifier()), Ok(cp.clone()));

        // A second, failing line by the known key rejects the note even
        // though a good one is present (signed-note "Signatures").
        let mut bad_raw = STANDARD
            .decode(our_line.trim_end().rsplit(' ').next().unwrap())
            .unwrap();
        bad_raw[10] ^= 1;
        let bad_line = format!("\u{2014} {} {}\n", signer.name(), STANDARD.encode(&bad_raw));
        let note = format!("{}\n{our_line}{bad_line}", cp.body());
        assert!(matches!(
            open_checkpoint(&note, &signer.verifier()),
            Err(CheckpointError::BadSignature { line: 6, .. })
        ));
        // Only unknown signatures: refused.
        let note = format!("{}\n{their_line}", cp.body());
        assert!(matches!(
            open_checkpoint(&note, &signer.verifier()),
            Err(CheckpointError::UnknownKey { .. })
        ));
        // Too many signature lines.
        let note = format!("{}\n{}", cp.body(), their_line.repeat(MAX_SIGNATURES + 1));
        assert!(matches!(
            open_checkpoint(&note, &witness.verifier()),
            Err(CheckpointError::MalformedNote { line, .. }) if line == 5 + MAX_SIGNATURES
        ));
    }

    #[test]
    fn malformed_notes_give_errors_naming_the_line() {
        let signer = signer();
        let verifier = signer.verifier();
        let good = signer.sign(&sample());
        let body = sample().body();
        let sig_line = &good[body.len() + 1..];

        // Missing blank line.
        let note = format!("{body}{sig_line}");
        assert!(matches!(
            open_checkpoint(&note, &verifier),
            Err(CheckpointError::MalformedNote { .. })
        ));
        // Missing final newline.
        let note = good.trim_end_matches('\n');
        assert!(matches!(
            open_checkpoint(note, &verifier),
            Err(CheckpointError::MalformedNote { line: 5, .. })
        ));
        // No signature lines.
        assert!(matches!(
            open_checkpoint(&format!("{body}\n"), &verifier),
            Err(CheckpointError::MalformedNote { line: 5, .. })
        ));
        // Signature line without the em dash, with a hyphen instead, or
        // without the space before the signature.
        for broken in [
            sig_line.replacen("\u{2014} ", "", 1),
            sig_line.replacen('\u{2014}', "-", 1),
            sig_line.replacen("ledger ", "ledger", 1),
        ] {
            let note = format!("{body}\n{broken}");
            assert!(
                matches!(
                    open_checkpoint(&note, &verifier),
                    Err(CheckpointError::MalformedNote { line: 5, .. })
                ),
                "accepted {broken:?}"
            );
        }
        // Signature not base64.
        let note = format!("{body}\n\u{2014} x.example not*base64\n");
        assert!(matches!(
            open_checkpoint(&note, &verifier),
            Err(CheckpointError::Base64 { line: 5, .. })
        ));
        // Control characters, including a carriage return.
        let note = good.replacen("1234\n", "1234\r\n", 1);
        assert!(matches!(
            open_checkpoint(&note, &verifier),
            Err(CheckpointError::MalformedNote { line: 2, .. })
        ));
        // An empty note and a lone separator.
        for note in ["", "\n", "\n\n", "\n\n\n"] {
            assert!(
                open_checkpoint(note, &verifier).is_err(),
                "accepted {note:?}"
            );
        }
    }

    #[test]
    fn malformed_bodies_are_refused_even_when_validly_signed() {
        // Each body is really signed, so only the body rules can refuse it.
        let signer = signer();
        let verifier = signer.verifier();
        let root = STANDARD.encode([5u8; 32]);
        let cases: Vec<(String, usize)> = vec![
            (format!("\n12\n{root}\n"), 1),                         // empty origin
            (format!("origin\n12a\n{root}\n"), 2),                  // not decimal
            (format!("origin\n+12\n{root}\n"), 2),                  // sign
            (format!("origin\n-1\n{root}\n"), 2),                   // negative
            (format!("origin\n 12\n{root}\n"), 2),                  // space
            (format!("origin\n012\n{root}\n"), 2),                  // leading zero
            (format!("origin\n\n{root}\n"), 2),                     // empty size
            (format!("origin\n18446744073709551616\n{root}\n"), 2), // > u64::MAX
            ("origin\n12\nnot base64!\n".to_owned(), 3),            // bad base64
            (format!("origin\n12\n{}\n", STANDARD.encode([5u8; 31])), 3), // short
            (format!("origin\n12\n{}\n", STANDARD.encode([5u8; 33])), 3), // long
            (format!("origin\n12\n{}\n", root.trim_end_matches('=')), 3), // no padding
            ("origin\n12\n\n".to_owned(), 3),                       // empty root
            (format!("origin\n12\n{root}\n\n"), 4),                 // empty extension
            ("origin\n12\n".to_owned(), 3),                         // no root line
        ];
        for (body, line) in cases {
            let note = signer.sign_text(&body);
            let got = open_checkpoint(&note, &verifier);
            let got_line = match &got {
                Err(CheckpointError::MalformedBody { line, .. })
                | Err(CheckpointError::Base64 { line, .. }) => *line,
                other => panic!("{body:?} gave {other:?}"),
            };
            assert_eq!(got_line, line, "{body:?}: {got:?}");
        }
        // parse_body on its own: missing final newline.
        let body = format!("origin\n12\n{root}");
        assert!(matches!(
            Checkpoint::parse_body(&body),
            Err(CheckpointError::MalformedBody { line: 3, .. })
        ));
        assert_eq!(
            Checkpoint::parse_body(&format!("origin\n18446744073709551615\n{root}\n"))
                .map(|c| c.size),
            Ok(u64::MAX)
        );
        assert_eq!(
            Checkpoint::parse_body(&format!("origin\n0\n{root}\n")).map(|c| c.size),
            Ok(0)
        );
    }

    #[test]
    fn key_names_are_validated() {
        for bad in [
            "",
            "a b",
            "a+b",
            "tab\there",
            "nbsp\u{a0}x",
            "nl\nx",
            "ctl\u{1}x",
        ] {
            assert!(
                matches!(
                    NoteSigner::new(bad, SigningKey::from_bytes(&[1u8; 32])),
                    Err(CheckpointError::InvalidKeyName { .. })
                ),
                "accepted {bad:?}"
            );
            assert!(NoteSigner::generate(bad).is_err());
        }
        assert!(NoteSigner::new("example.com/log-1", SigningKey::from_bytes(&[1u8; 32])).is_ok());
    }

    #[test]
    fn validate_catches_fields_that_would_not_round_trip() {
        assert_eq!(sample().validate(), Ok(()));
        let bad = [
            Checkpoint {
                origin: String::new(),
                ..sample()
            },
            Checkpoint {
                origin: "two\nlines".to_owned(),
                ..sample()
            },
            Checkpoint {
                extensions: vec![String::new()],
                ..sample()
            },
            Checkpoint {
                extensions: vec!["a\nb".to_owned()],
                ..sample()
            },
        ];
        let signer = signer();
        for cp in bad {
            assert!(cp.validate().is_err(), "{cp:?}");
            // Signing it anyway fails closed: the note does not open to it.
            assert_ne!(
                open_checkpoint(&signer.sign(&cp), &signer.verifier()),
                Ok(cp)
            );
        }
    }

    fn arb_origin() -> impl Strategy<Value = String> {
        "[^\\x00-\\x1f]{1,40}"
    }

    proptest! {
        #[test]
        fn open_checkpoint_never_panics(note in any::<String>()) {
            let verifier = signer().verifier();
            let _ = open_checkpoint(&note, &verifier);
        }

        #[test]
        fn open_checkpoint_never_panics_on_note_shaped_input(
            note in "([a-z0-9/+=. ]{0,12}|\u{2014} |\n|AAAA){0,24}",
        ) {
            let verifier = signer().verifier();
            let _ = open_checkpoint(&note, &verifier);
        }

        #[test]
        fn mutated_signed_notes_never_panic_and_never_open_to_other_checkpoints(
            index in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let signer = signer();
            let note = signer.sign(&sample());
            let mut bytes = note.clone().into_bytes();
            let i = index.index(bytes.len());
            bytes[i] = byte;
            if let Ok(mutated) = String::from_utf8(bytes)
                && let Ok(cp) = open_checkpoint(&mutated, &signer.verifier())
            {
                prop_assert_eq!(cp, sample());
            }
        }

        #[test]
        fn parse_body_and_verifier_parse_never_panic(text in any::<String>()) {
            let _ = Checkpoint::parse_body(&text);
            let _ = NoteVerifier::parse(&text);
        }

        #[test]
        fn body_round_trips(
            origin in arb_origin(),
            size in any::<u64>(),
            root in prop::array::uniform32(any::<u8>()),
            extensions in prop::collection::vec(arb_origin(), 0..3),
        ) {
            let cp = Checkpoint { origin, size, root, extensions };
            prop_assert_eq!(cp.validate(), Ok(()));
            prop_assert_eq!(Checkpoint::parse_body(&cp.body()), Ok(cp));
        }
    }
}
