//! The signature on an RFC 3161 time-stamp token, checked offline.
//!
//! `crate::timestamp` reads a token and checks that its message imprint is the data's hash;
//! it leaves the TSA's signature to `openssl ts -verify`. A bundle verifier that needs nothing
//! but the bundle must check that signature itself:
//!
//! - the token is CMS SignedData (RFC 5652 §5) over a TSTInfo; a SignerInfo's signed
//!   attributes carry the content type id-ct-TSTInfo and the TSTInfo's digest (§5.4, §11);
//! - the signature over the DER of the signed attributes, re-tagged as a SET OF (§5.4), holds
//!   under the public key of the certificate the SignerInfo names (issuer and serial, or
//!   subject key identifier), found among the certificates the token carries (RFC 3161
//!   §2.4.1 certReq) or the bundle's chain file;
//! - when present, the ESS signing-certificate-v2 attribute (RFC 5816) names that certificate
//!   by its hash, so another certificate with the same key cannot be swapped in;
//! - with pinned roots, the signer's certificate chains to one of them, was valid at the
//!   token's genTime, and carries the id-kp-timeStamping extended key usage (RFC 3161 §2.3):
//!   X.509 path validation by `rustls-webpki`, signatures by *ring*.
//!
//! Everything is parsed from untrusted bytes and never panics.

use std::time::Duration;

use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, UnixTime};
use sha2::{Digest, Sha256, Sha384, Sha512};
use webpki::ring as algs;

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const OID: u8 = 0x06;
const OCTET_STRING: u8 = 0x04;
const BOOLEAN: u8 = 0x01;
const CONTEXT_0: u8 = 0xA0;
const CONTEXT_1: u8 = 0xA1;
const CONTEXT_3: u8 = 0xA3;
const CONTEXT_0_PRIMITIVE: u8 = 0x80;

const SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
const TST_INFO: &str = "1.2.840.113549.1.9.16.1.4";
const CONTENT_TYPE_ATTR: &str = "1.2.840.113549.1.9.3";
const MESSAGE_DIGEST_ATTR: &str = "1.2.840.113549.1.9.4";
const SIGNING_CERTIFICATE_V2: &str = "1.2.840.113549.1.9.16.2.47";
const SUBJECT_KEY_ID: &str = "2.5.29.14";
const SHA256_OID: &str = "2.16.840.1.101.3.4.2.1";
const SHA384_OID: &str = "2.16.840.1.101.3.4.2.2";
const SHA512_OID: &str = "2.16.840.1.101.3.4.2.3";
/// id-kp-timeStamping, 1.3.6.1.5.5.7.3.8, as DER content octets.
const EKU_TIME_STAMPING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x08];

/// Every algorithm a TSA certificate chain may use.
static CHAIN_ALGS: &[&dyn SignatureVerificationAlgorithm] = &[
    algs::ECDSA_P256_SHA256,
    algs::ECDSA_P256_SHA384,
    algs::ECDSA_P384_SHA256,
    algs::ECDSA_P384_SHA384,
    algs::ED25519,
    algs::RSA_PKCS1_2048_8192_SHA256,
    algs::RSA_PKCS1_2048_8192_SHA384,
    algs::RSA_PKCS1_2048_8192_SHA512,
    algs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    algs::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
    algs::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
];

/// What a verified token's signature says.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The signing certificate's subject, `/C=../O=../CN=..`.
    pub signer: String,
    /// The signer chains to a pinned root (always false without roots).
    pub pinned: bool,
    /// Why it does not, when roots were given.
    pub chain_error: Option<String>,
}

#[derive(Clone, Copy)]
struct Tlv<'a> {
    tag: u8,
    content: &'a [u8],
    raw: &'a [u8],
}

struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn next(&mut self) -> Result<Tlv<'a>, String> {
        let b = self.0;
        let (&tag, rest) = b.split_first().ok_or("DER ends early")?;
        if tag & 0x1f == 0x1f {
            return Err("multi-byte DER tags are not used here".into());
        }
        let (&first, rest) = rest.split_first().ok_or("DER ends early")?;
        let (len, rest) = match first {
            l if l < 0x80 => (l as usize, rest),
            0x80 => return Err("indefinite DER length".into()),
            l => {
                let n = (l & 0x7f) as usize;
                if n > 4 || rest.len() < n {
                    return Err("bad DER length".into());
                }
                let len = rest[..n].iter().fold(0usize, |a, &x| (a << 8) | x as usize);
                (len, &rest[n..])
            }
        };
        if rest.len() < len {
            return Err("DER value runs past its container".into());
        }
        let header = b.len() - rest.len();
        let t = Tlv {
            tag,
            content: &rest[..len],
            raw: &b[..header + len],
        };
        self.0 = &rest[len..];
        Ok(t)
    }

    fn field(&mut self, tag: u8, what: &str) -> Result<Tlv<'a>, String> {
        let t = self.next().map_err(|e| format!("{what}: {e}"))?;
        if t.tag != tag {
            return Err(format!(
                "{what}: expected tag 0x{tag:02x}, found 0x{:02x}",
                t.tag
            ));
        }
        Ok(t)
    }

    fn optional(&mut self, tag: u8) -> Result<Option<Tlv<'a>>, String> {
        if self.0.first() == Some(&tag) {
            self.next().map(Some)
        } else {
            Ok(None)
        }
    }
}

fn der<'a>(t: &Tlv<'a>) -> Der<'a> {
    Der(t.content)
}

fn oid(t: &Tlv<'_>) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for &b in t.content {
        value = (value << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    arcs.iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(".")
}

fn digest(alg: &str, data: &[u8]) -> Option<Vec<u8>> {
    Some(match alg {
        SHA256_OID => Sha256::digest(data).to_vec(),
        SHA384_OID => Sha384::digest(data).to_vec(),
        SHA512_OID => Sha512::digest(data).to_vec(),
        _ => return None,
    })
}

/// The signature algorithms to try for a SignerInfo's (signatureAlgorithm, digestAlgorithm).
fn signer_algs(sig: &str, digest: &str) -> Vec<&'static dyn SignatureVerificationAlgorithm> {
    match (sig, digest) {
        ("1.2.840.10045.4.3.2", _) | ("1.2.840.10045.2.1", SHA256_OID) => {
            vec![algs::ECDSA_P256_SHA256, algs::ECDSA_P384_SHA256]
        }
        ("1.2.840.10045.4.3.3", _) | ("1.2.840.10045.2.1", SHA384_OID) => {
            vec![algs::ECDSA_P256_SHA384, algs::ECDSA_P384_SHA384]
        }
        ("1.2.840.113549.1.1.11", _) | ("1.2.840.113549.1.1.1", SHA256_OID) => {
            vec![algs::RSA_PKCS1_2048_8192_SHA256]
        }
        ("1.2.840.113549.1.1.12", _) | ("1.2.840.113549.1.1.1", SHA384_OID) => {
            vec![algs::RSA_PKCS1_2048_8192_SHA384]
        }
        ("1.2.840.113549.1.1.13", _) | ("1.2.840.113549.1.1.1", SHA512_OID) => {
            vec![algs::RSA_PKCS1_2048_8192_SHA512]
        }
        ("1.3.101.112", _) => vec![algs::ED25519],
        _ => Vec::new(),
    }
}

/// The parts of a certificate the signer lookup needs.
struct Cert<'a> {
    raw: &'a [u8],
    serial: &'a [u8],
    issuer: &'a [u8],
    subject: Tlv<'a>,
    key_id: Option<&'a [u8]>,
}

fn parse_cert(raw: &[u8]) -> Result<Cert<'_>, String> {
    let cert = Der(raw).field(SEQUENCE, "Certificate")?;
    let mut c = der(&cert);
    let tbs = c.field(SEQUENCE, "tbsCertificate")?;
    let mut t = der(&tbs);
    t.optional(CONTEXT_0)?;
    let serial = t.field(INTEGER, "serialNumber")?.content;
    t.field(SEQUENCE, "signature")?;
    let issuer = t.field(SEQUENCE, "issuer")?.raw;
    t.field(SEQUENCE, "validity")?;
    let subject = t.field(SEQUENCE, "subject")?;
    t.field(SEQUENCE, "subjectPublicKeyInfo")?;
    let mut key_id = None;
    while !t.is_empty() {
        let field = t.next()?;
        if field.tag != CONTEXT_3 {
            continue;
        }
        let exts = Der(field.content).field(SEQUENCE, "extensions")?;
        let mut e = der(&exts);
        while !e.is_empty() {
            let ext = e.field(SEQUENCE, "extension")?;
            let mut x = der(&ext);
            let id = oid(&x.field(OID, "extnID")?);
            x.optional(BOOLEAN)?;
            let value = x.field(OCTET_STRING, "extnValue")?;
            if id == SUBJECT_KEY_ID {
                key_id = Some(
                    Der(value.content)
                        .field(OCTET_STRING, "keyIdentifier")?
                        .content,
                );
            }
        }
    }
    Ok(Cert {
        raw,
        serial,
        issuer,
        subject,
        key_id,
    })
}

/// `/C=CN/O=Org/CN=Name` from a Name (the common attributes; others by OID).
fn render_name(name: &Tlv<'_>) -> String {
    let mut out = String::new();
    let mut rdns = der(name);
    while let Ok(rdn) = rdns.next() {
        let mut atvs = der(&rdn);
        while let Ok(atv) = atvs.next() {
            let mut a = der(&atv);
            let (Ok(id), Ok(value)) = (a.next(), a.next()) else {
                continue;
            };
            let key = match oid(&id).as_str() {
                "2.5.4.3" => "CN".to_string(),
                "2.5.4.6" => "C".to_string(),
                "2.5.4.7" => "L".to_string(),
                "2.5.4.8" => "ST".to_string(),
                "2.5.4.10" => "O".to_string(),
                "2.5.4.11" => "OU".to_string(),
                other => other.to_string(),
            };
            let text: String = String::from_utf8_lossy(value.content)
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect();
            out.push_str(&format!("/{key}={text}"));
        }
    }
    out
}

/// `YYYYMMDDhhmmss[.f]Z` to seconds since the epoch.
fn gen_time_secs(gen_time: &str) -> Result<u64, String> {
    let whole = gen_time.get(..14).ok_or("genTime too short")?;
    let t = chrono::NaiveDateTime::parse_from_str(whole, "%Y%m%d%H%M%S")
        .map_err(|e| format!("genTime {gen_time:?}: {e}"))?;
    u64::try_from(t.and_utc().timestamp()).map_err(|_| "genTime before 1970".to_string())
}

/// Checks the token inside `response_der` (a TimeStampResp) as the module doc says.
/// `extra_certs` are more certificates to look in (the bundle's chain file); `roots` the
/// pinned TSA roots (DER).
pub fn verify_token(
    response_der: &[u8],
    extra_certs: &[Vec<u8>],
    roots: &[Vec<u8>],
    gen_time: &str,
) -> Result<Verified, String> {
    let resp = Der(response_der).field(SEQUENCE, "TimeStampResp")?;
    let mut r = der(&resp);
    r.field(SEQUENCE, "PKIStatusInfo")?;
    let token = r.field(SEQUENCE, "timeStampToken")?;
    let mut ci = der(&token);
    if oid(&ci.field(OID, "contentType")?) != SIGNED_DATA {
        return Err("the token is not CMS SignedData".into());
    }
    let explicit = ci.field(CONTEXT_0, "content")?;
    let sd = Der(explicit.content).field(SEQUENCE, "SignedData")?;
    let mut s = der(&sd);
    s.field(INTEGER, "version")?;
    s.field(SET, "digestAlgorithms")?;
    let encap = s.field(SEQUENCE, "encapContentInfo")?;
    let certs = s.optional(CONTEXT_0)?;
    s.optional(CONTEXT_1)?;
    let signer_infos = s.field(SET, "signerInfos")?;

    let mut e = der(&encap);
    if oid(&e.field(OID, "eContentType")?) != TST_INFO {
        return Err("the signed content is not a TSTInfo".into());
    }
    let e_content = e.field(CONTEXT_0, "eContent")?;
    let tst = Der(e_content.content)
        .field(OCTET_STRING, "eContent")?
        .content;

    let mut raws: Vec<&[u8]> = Vec::new();
    if let Some(set) = &certs {
        let mut c = der(set);
        while !c.is_empty() {
            let item = c.next()?;
            if item.tag == SEQUENCE {
                raws.push(item.raw);
            }
        }
    }
    raws.extend(extra_certs.iter().map(|c| c.as_slice()));
    let parsed: Vec<Cert<'_>> = raws.iter().filter_map(|r| parse_cert(r).ok()).collect();

    let mut errors = Vec::new();
    let mut infos = der(&signer_infos);
    while !infos.is_empty() {
        let info = infos.field(SEQUENCE, "SignerInfo")?;
        match check_signer(&info, tst, &parsed) {
            Ok(signer) => {
                let name = render_name(&signer.subject);
                let chain = if roots.is_empty() {
                    None
                } else {
                    Some(chain_to_roots(signer.raw, &raws, roots, gen_time))
                };
                return Ok(Verified {
                    signer: name,
                    pinned: matches!(chain, Some(Ok(()))),
                    chain_error: chain.and_then(|c| c.err()),
                });
            }
            Err(e) => errors.push(e),
        }
    }
    Err(if errors.is_empty() {
        "the token has no SignerInfo".into()
    } else {
        errors.join("; ")
    })
}

fn check_signer<'c>(
    info: &Tlv<'_>,
    tst: &[u8],
    certs: &'c [Cert<'c>],
) -> Result<&'c Cert<'c>, String> {
    let mut s = der(info);
    s.field(INTEGER, "SignerInfo version")?;
    let sid = s.next()?;
    let digest_alg = s.field(SEQUENCE, "digestAlgorithm")?;
    let digest_oid = oid(&der(&digest_alg).field(OID, "digestAlgorithm")?);
    let attrs = s.field(CONTEXT_0, "signedAttrs")?;
    let sig_alg = s.field(SEQUENCE, "signatureAlgorithm")?;
    let sig_oid = oid(&der(&sig_alg).field(OID, "signatureAlgorithm")?);
    let signature = s.field(OCTET_STRING, "signature")?.content;

    // The signer's certificate, by issuer and serial or by key identifier.
    let cert = match sid.tag {
        SEQUENCE => {
            let mut i = der(&sid);
            let issuer = i.field(SEQUENCE, "issuer")?.raw;
            let serial = i.field(INTEGER, "serialNumber")?.content;
            certs
                .iter()
                .find(|c| c.issuer == issuer && c.serial == serial)
        }
        CONTEXT_0_PRIMITIVE => certs.iter().find(|c| c.key_id == Some(sid.content)),
        _ => None,
    }
    .ok_or("the signer's certificate is not in the token or its chain file")?;

    // Signed attributes: content type, message digest, signing certificate.
    let expected = digest(&digest_oid, tst)
        .ok_or_else(|| format!("digest algorithm {digest_oid} is not supported"))?;
    let (mut content_type, mut message_digest) = (false, false);
    let mut a = der(&attrs);
    while !a.is_empty() {
        let attr = a.field(SEQUENCE, "attribute")?;
        let mut x = der(&attr);
        let id = oid(&x.field(OID, "attrType")?);
        let values = x.field(SET, "attrValues")?;
        let mut v = der(&values);
        match id.as_str() {
            CONTENT_TYPE_ATTR => {
                content_type = oid(&v.field(OID, "content-type")?) == TST_INFO;
            }
            MESSAGE_DIGEST_ATTR => {
                message_digest = v.field(OCTET_STRING, "message-digest")?.content == expected;
            }
            SIGNING_CERTIFICATE_V2 => check_ess_v2(&mut v, cert.raw)?,
            _ => {}
        }
    }
    if !content_type {
        return Err("signed attributes do not name id-ct-TSTInfo".into());
    }
    if !message_digest {
        return Err("the signed message digest is not the TSTInfo's".into());
    }

    // RFC 5652 §5.4: the signature is over the attributes' DER with an explicit SET OF tag.
    let mut message = attrs.raw.to_vec();
    message[0] = SET;
    let cert_der = CertificateDer::from(cert.raw);
    let ee = webpki::EndEntityCert::try_from(&cert_der)
        .map_err(|e| format!("the signer's certificate does not parse: {e}"))?;
    let candidates = signer_algs(&sig_oid, &digest_oid);
    if candidates.is_empty() {
        return Err(format!(
            "signature algorithm {sig_oid} with {digest_oid} is not supported (check it with openssl ts -verify)"
        ));
    }
    if candidates
        .iter()
        .any(|alg| ee.verify_signature(*alg, &message, signature).is_ok())
    {
        Ok(cert)
    } else {
        Err(format!(
            "the signature by {} does not verify",
            render_name(&cert.subject)
        ))
    }
}

/// ESS signing-certificate-v2 (RFC 5816): the first ESSCertIDv2 hashes the signer certificate.
fn check_ess_v2(values: &mut Der<'_>, cert: &[u8]) -> Result<(), String> {
    let signing_cert = values.field(SEQUENCE, "SigningCertificateV2")?;
    let certs = der(&signing_cert).field(SEQUENCE, "certs")?;
    let first = der(&certs).field(SEQUENCE, "ESSCertIDv2")?;
    let mut id = der(&first);
    let mut alg = SHA256_OID.to_string();
    if let Some(a) = id.optional(SEQUENCE)? {
        alg = oid(&der(&a).field(OID, "hashAlgorithm")?);
    }
    let hash = id.field(OCTET_STRING, "certHash")?.content;
    match digest(&alg, cert) {
        Some(h) if h == hash => Ok(()),
        Some(_) => Err("the signing-certificate attribute names another certificate".into()),
        None => Ok(()), // an algorithm we cannot compute: the signature check still binds the key
    }
}

fn chain_to_roots(
    signer: &[u8],
    certs: &[&[u8]],
    roots: &[Vec<u8>],
    gen_time: &str,
) -> Result<(), String> {
    let root_ders: Vec<CertificateDer<'_>> = roots
        .iter()
        .map(|r| CertificateDer::from(r.as_slice()))
        .collect();
    let anchors: Vec<_> = root_ders
        .iter()
        .filter_map(|d| webpki::anchor_from_trusted_cert(d).ok())
        .collect();
    if anchors.is_empty() {
        return Err("no pinned root parses as a certificate".into());
    }
    let intermediates: Vec<CertificateDer<'_>> = certs
        .iter()
        .filter(|c| **c != signer)
        .map(|c| CertificateDer::from(*c))
        .collect();
    let signer_der = CertificateDer::from(signer);
    let ee = webpki::EndEntityCert::try_from(&signer_der).map_err(|e| e.to_string())?;
    let time = UnixTime::since_unix_epoch(Duration::from_secs(gen_time_secs(gen_time)?));
    ee.verify_for_usage(
        CHAIN_ALGS,
        &anchors,
        &intermediates,
        time,
        webpki::KeyUsage::required(EKU_TIME_STAMPING),
        None,
        None,
    )
    .map(|_| ())
    .map_err(|e| format!("{e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_der_never_panics() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let _ = verify_token(
                &bytes,
                std::slice::from_ref(&bytes),
                std::slice::from_ref(&bytes),
                "20260101000000Z",
            );
            let _ = parse_cert(&bytes);
        }
        assert!(verify_token(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff], &[], &[], "x").is_err());
    }

    #[test]
    fn oids_and_times_read_right() {
        let t = Tlv {
            tag: OID,
            content: &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01],
            raw: &[],
        };
        assert_eq!(oid(&t), SHA256_OID);
        assert_eq!(gen_time_secs("19700101000100Z"), Ok(60));
        assert_eq!(gen_time_secs("20260101000000.5Z"), Ok(1_767_225_600));
        assert!(gen_time_secs("2026").is_err());
    }
}
