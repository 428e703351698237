//! RFC 3161 trusted timestamps for signed ledger checkpoints: build a
//! `TimeStampReq`, POST it to one or more Time-Stamp Authorities over HTTP
//! (RFC 3161 §3.4), read the `TimeStampResp`, and check that the token is for
//! exactly the bytes we sent and answers exactly our request.
//!
//! What is stored: the FULL `TimeStampResp` DER as the TSA answered it (a
//! `.tsr` file). That is what `openssl ts -verify -in file.tsr` reads by
//! default, and it keeps the TSA's status beside the token. The
//! `TimeStampToken` (the CMS `ContentInfo`, RFC 3161 §2.4.2) sits inside it
//! unchanged, so nothing is lost for tools that want `-token_in`.
//!
//! What this module checks, and what it leaves to others:
//! - PKIStatus is granted(0) or grantedWithMods(1), and then a token is
//!   present (RFC 3161 §2.4.2); any other status is [`TimestampError::Refused`].
//! - The token is CMS SignedData (RFC 5652 §5.1) whose encapsulated content is
//!   a TSTInfo (id-ct-TSTInfo, RFC 3161 §2.4.2); every SignerInfo carries the
//!   content-type and message-digest signed attributes (RFC 5652 §5.3, §11.1,
//!   §11.2) and, for the SHA-2 digests we can compute, the message digest
//!   matches the TSTInfo bytes, so the TSTInfo we read is the one the
//!   signature covers.
//! - The TSTInfo's messageImprint is SHA-256 of our data and its nonce equals
//!   the request's (RFC 3161 §2.4.2: "MUST have the same value", "MUST equal").
//! - The TSA's signature and certificate chain are NOT verified here: that is
//!   done, by us in tests and by any outside party, with
//!   `openssl ts -verify -data <checkpoint> -in <tsr> -CAfile <root>`. The
//!   certificates embedded in the token are extracted so they can be stored
//!   beside it.
//!
//! Parsing never panics on arbitrary input, refuses answers larger than
//! [`MAX_RESPONSE_BYTES`], and rejects indefinite lengths (see [`der`]).

mod der;

use std::time::Duration;

use sha2::{Digest, Sha256, Sha384, Sha512};

use der::{Reader, Tlv};

/// Largest TSA answer accepted. Real responses, chain included, are a few
/// kilobytes; the cap bounds memory however a TSA (or something pretending
/// to be one) misbehaves.
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// MIME type of a request body (RFC 3161 §3.4).
pub const QUERY_CONTENT_TYPE: &str = "application/timestamp-query";
/// MIME type of a response body (RFC 3161 §3.4).
pub const REPLY_CONTENT_TYPE: &str = "application/timestamp-reply";

/// id-sha256 (RFC 5754 §2 / NIST CSOR).
pub const SHA256_OID: &str = "2.16.840.1.101.3.4.2.1";
const SHA384_OID: &str = "2.16.840.1.101.3.4.2.2";
const SHA512_OID: &str = "2.16.840.1.101.3.4.2.3";
/// id-signedData (RFC 5652 §5.1).
const SIGNED_DATA_OID: &str = "1.2.840.113549.1.7.2";
/// id-ct-TSTInfo (RFC 3161 §2.4.2).
const TST_INFO_OID: &str = "1.2.840.113549.1.9.16.1.4";
/// id-contentType signed attribute (RFC 5652 §11.1).
const CONTENT_TYPE_ATTR_OID: &str = "1.2.840.113549.1.9.3";
/// id-messageDigest signed attribute (RFC 5652 §11.2).
const MESSAGE_DIGEST_ATTR_OID: &str = "1.2.840.113549.1.9.4";

/// `AlgorithmIdentifier { id-sha256, NULL }`, written out once. RFC 5754 §2
/// lets the parameters be absent or NULL; we send NULL because that is what
/// openssl sends and what every TSA is known to accept.
const SHA256_ALGORITHM_ID: [u8; 15] = [
    0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00,
];

/// Everything that can go wrong getting or checking a timestamp. Every
/// variant names the TSA URL so a log line says which authority failed.
#[derive(Debug, thiserror::Error)]
pub enum TimestampError {
    /// The TSA could not be reached, timed out, or answered with an HTTP
    /// error status (the message then starts with `HTTP <code>`).
    #[error("{url}: {message}")]
    Transport { url: String, message: String },
    /// The TSA answered with a PKIStatus other than granted/grantedWithMods
    /// (RFC 3161 §2.4.2); `text` holds the status name, the failInfo bits and
    /// the TSA's own statusString, if any.
    #[error("{url}: TSA refused the request: status {status}{}", text_suffix(.text))]
    Refused {
        url: String,
        status: u32,
        text: String,
    },
    /// The answer is not a well-formed TimeStampResp / TimeStampToken.
    #[error("{url}: answer is not a valid RFC 3161 response: {reason}")]
    Malformed { url: String, reason: String },
    /// The token timestamps something other than the data we sent.
    #[error("{url}: token's message imprint does not match the data sent")]
    WrongImprint { url: String },
    /// The token answers a different request (replayed or mixed up).
    #[error("{url}: token's nonce does not match the request's")]
    WrongNonce { url: String },
}

fn text_suffix(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(" ({text})")
    }
}

/// A DER TimeStampReq (RFC 3161 §2.4.1): version 1, messageImprint SHA-256
/// (OID 2.16.840.1.101.3.4.2.1, with NULL params), nonce, certReq TRUE.
///
/// certReq is TRUE so the TSA must put its certificate into the token
/// (§2.4.1), which lets the token be verified later with only the root CA.
/// No reqPolicy is sent: the TSA's default policy is recorded in the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampRequest {
    /// The encoded request, as POSTed.
    pub der: Vec<u8>,
    /// The random nonce (§2.4.1: "a large random number with a high
    /// probability that the client generates it only once"), sent as a
    /// non-negative INTEGER.
    pub nonce: u64,
    /// SHA-256 of the data being timestamped.
    pub digest: [u8; 32],
}

impl TimestampRequest {
    /// A request for SHA-256(`data`) with a fresh random nonce.
    pub fn for_data(data: &[u8]) -> TimestampRequest {
        TimestampRequest::for_digest(Sha256::digest(data).into())
    }

    /// A request for an already computed SHA-256 digest, with a fresh random
    /// nonce from the thread-local CSPRNG (seeded from the OS).
    pub fn for_digest(digest: [u8; 32]) -> TimestampRequest {
        TimestampRequest::with_nonce(digest, rand::random::<u64>())
    }

    fn with_nonce(digest: [u8; 32], nonce: u64) -> TimestampRequest {
        let imprint = der::sequence(&[&SHA256_ALGORITHM_ID, &der::octet_string(&digest)]);
        let der = der::sequence(&[
            &der::integer_u64(1),
            &imprint,
            &der::integer_u64(nonce),
            &der::boolean(true),
        ]);
        TimestampRequest { der, nonce, digest }
    }

    /// The nonce as INTEGER content octets, the form a token carries it in.
    fn nonce_content(&self) -> Vec<u8> {
        der::unsigned_content(&self.nonce.to_be_bytes())
    }
}

/// What a granted token says (parsed from the TSTInfo inside the CMS
/// SignedData, RFC 3161 §2.4.2).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenInfo {
    /// genTime exactly as in the token, e.g. `20261128153000Z` or, with
    /// sub-second precision, `20261128153000.25Z` (always UTC, §2.4.2).
    pub gen_time: String,
    /// serialNumber as lowercase hex of the integer's magnitude (sign padding
    /// removed), e.g. `01` or `8f3a…`.
    pub serial_hex: String,
    /// The TSA policy under which the token was issued, dotted OID.
    pub policy_oid: String,
    /// messageImprint.hashedMessage (always SHA-256; other algorithms are
    /// rejected as malformed since we never ask for them).
    pub digest: [u8; 32],
    /// The nonce's INTEGER content octets, if the token has one.
    pub nonce: Option<Vec<u8>>,
    /// The optional `tsa` GeneralName, rendered like openssl does:
    /// `/C=XX/O=…/CN=…` for a directory name, `DNS:…`, `URI:…`, `email:…`;
    /// `None` when absent or of another kind.
    pub tsa_name: Option<String>,
}

/// Parse a full TimeStampResp (what the HTTP server answers): check PKIStatus
/// granted(0)/grantedWithMods(1) and return the full response DER as stored
/// (the `.tsr`) together with the parsed TSTInfo.
///
/// The returned bytes are exactly `der`: the response is stored as received,
/// never re-encoded, so the signed bytes inside stay byte-identical.
pub fn parse_response(url: &str, der: &[u8]) -> Result<(Vec<u8>, TokenInfo), TimestampError> {
    let malformed = |e: der::DerError| TimestampError::Malformed {
        url: url.to_owned(),
        reason: e.0,
    };
    if der.len() > MAX_RESPONSE_BYTES {
        return Err(malformed(der::DerError(format!(
            "{} bytes is more than the {MAX_RESPONSE_BYTES} accepted",
            der.len()
        ))));
    }
    let resp = split_response(der).map_err(malformed)?;
    match resp.status {
        0 | 1 => {}
        status => {
            return Err(TimestampError::Refused {
                url: url.to_owned(),
                status,
                text: resp.status_text,
            });
        }
    }
    // §2.4.2: "If the status is granted or grantedWithMods, the
    // timeStampToken MUST be present".
    let token = resp.token.ok_or_else(|| {
        malformed(der::DerError(
            "status is granted but the response carries no timeStampToken".into(),
        ))
    })?;
    let parsed = parse_token(token).map_err(malformed)?;
    Ok((der.to_vec(), parsed.info))
}

/// Check a stored response against the data/digest and the request's nonce
/// (`None`: skip the nonce check, e.g. when re-verifying later).
pub fn check_token(
    url: &str,
    info: &TokenInfo,
    digest: &[u8; 32],
    nonce: Option<&TimestampRequest>,
) -> Result<(), TimestampError> {
    // §2.4.2: messageImprint "MUST have the same value as the similar field
    // in TimeStampReq". The imprint is what ties the token to the checkpoint,
    // so it is checked first.
    if &info.digest != digest {
        return Err(TimestampError::WrongImprint {
            url: url.to_owned(),
        });
    }
    if let Some(request) = nonce {
        // §2.4.2: the nonce "MUST be present if it was present in the
        // TimeStampReq" and "MUST equal the value provided". Compared as
        // numbers (magnitudes), so a TSA's non-minimal but equal encoding
        // does not count as a replay.
        let expected = request.nonce_content();
        let matches = info.nonce.as_deref().is_some_and(|got| {
            is_non_negative(got) && der::magnitude(got) == der::magnitude(&expected)
        });
        if !matches {
            return Err(TimestampError::WrongNonce {
                url: url.to_owned(),
            });
        }
    }
    Ok(())
}

fn is_non_negative(integer_content: &[u8]) -> bool {
    integer_content.first().is_some_and(|b| b & 0x80 == 0)
}

/// Pull the certificates embedded in the token's SignedData (DER), for
/// storing the TSA's chain beside the token.
///
/// Accepts a full TimeStampResp (what is stored) or a bare TimeStampToken.
/// Only X.509 certificates (the `Certificate` choice of CertificateChoices,
/// RFC 5652 §10.2.2) are returned, each byte for byte as embedded. Anything
/// that does not parse yields an empty list rather than an error: the caller
/// only uses this to save a convenience copy of the chain.
pub fn embedded_certificates(response_der: &[u8]) -> Vec<Vec<u8>> {
    if response_der.len() > MAX_RESPONSE_BYTES {
        return Vec::new();
    }
    let token = match split_response(response_der) {
        Ok(resp) => resp.token,
        // Not a TimeStampResp: perhaps the token on its own.
        Err(_) => Some(response_der),
    };
    token
        .and_then(|t| parse_token(t).ok())
        .map(|p| p.certificates.iter().map(|c| c.to_vec()).collect())
        .unwrap_or_default()
}

/// A successful, checked timestamp from one TSA.
#[derive(Debug, Clone)]
pub struct Timestamped {
    /// The TSA URL the token came from.
    pub url: String,
    /// The full TimeStampResp, to be stored as `<checkpoint>.tsr`.
    pub response_der: Vec<u8>,
    /// What the token says.
    pub info: TokenInfo,
    /// The certificates embedded in the token (DER), TSA certificate first
    /// when the TSA orders them that way (openssl does).
    pub certificates: Vec<Vec<u8>>,
}

/// An HTTP client for RFC 3161 TSAs (RFC 3161 §3.4, "Time-Stamp Protocol via
/// HTTP").
#[derive(Debug, Clone)]
pub struct TsaClient {
    http: reqwest::Client,
    timeout: Duration,
}

impl TsaClient {
    /// A client whose every request (connect, send, read) ends after
    /// `timeout`. It ignores proxy environment variables, so a timestamp
    /// request goes exactly where configured, and it does not follow
    /// redirects: a POST silently turned into a GET, or a token from an
    /// unexpected host, should show up as an error naming the configured URL.
    pub fn new(timeout: Duration) -> Result<TsaClient, TimestampError> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("leakwatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TimestampError::Transport {
                url: "(TSA client setup)".to_owned(),
                message: describe(&e),
            })?;
        Ok(TsaClient { http, timeout })
    }

    /// POST application/timestamp-query to `url`, parse, and check imprint
    /// and nonce; also insist the token carries the TSA certificate we asked
    /// for with certReq (RFC 3161 §2.4.1).
    pub async fn timestamp(&self, url: &str, data: &[u8]) -> Result<Timestamped, TimestampError> {
        let request = TimestampRequest::for_data(data);
        let transport = |message: String| TimestampError::Transport {
            url: url.to_owned(),
            message,
        };
        let mut response = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, QUERY_CONTENT_TYPE)
            .header(reqwest::header::ACCEPT, REPLY_CONTENT_TYPE)
            .body(request.der.clone())
            .send()
            .await
            .map_err(|e| transport(self.describe_reqwest(e)))?;

        let status = response.status();
        if !status.is_success() {
            // Keep a short, printable excerpt of the body: TSAs often explain
            // the failure there, but it is untrusted text headed for a log.
            let body = read_prefix(&mut response, 4096).await;
            let excerpt = printable_excerpt(&body, 200);
            let mut message = format!("HTTP {status}");
            if !excerpt.is_empty() {
                message.push_str(&format!(": {excerpt}"));
            }
            return Err(transport(message));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        if response
            .content_length()
            .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
        {
            return Err(TimestampError::Malformed {
                url: url.to_owned(),
                reason: format!("answer is larger than {MAX_RESPONSE_BYTES} bytes"),
            });
        }
        let body = match read_capped(&mut response, MAX_RESPONSE_BYTES).await {
            Ok(body) => body,
            Err(ReadError::TooLarge) => {
                return Err(TimestampError::Malformed {
                    url: url.to_owned(),
                    reason: format!("answer is larger than {MAX_RESPONSE_BYTES} bytes"),
                });
            }
            Err(ReadError::Http(e)) => return Err(transport(self.describe_reqwest(e))),
        };

        let (response_der, info) = parse_response(url, &body).map_err(|e| match e {
            // A wrong content type explains most garbage (an HTML error
            // page, a captive portal), so say so. §3.4 names the type.
            TimestampError::Malformed { url, reason }
                if !content_type.starts_with(REPLY_CONTENT_TYPE) =>
            {
                TimestampError::Malformed {
                    url,
                    reason: format!(
                        "{reason} (content type was {:?}, expected {REPLY_CONTENT_TYPE})",
                        printable_excerpt(content_type.as_bytes(), 80)
                    ),
                }
            }
            other => other,
        })?;
        check_token(url, &info, &request.digest, Some(&request))?;
        let certificates = embedded_certificates(&response_der);
        if certificates.is_empty() {
            return Err(TimestampError::Malformed {
                url: url.to_owned(),
                reason: "the token carries no certificate although certReq was TRUE \
                         (RFC 3161 §2.4.1)"
                    .to_owned(),
            });
        }
        Ok(Timestamped {
            url: url.to_owned(),
            response_der,
            info,
            certificates,
        })
    }

    fn describe_reqwest(&self, e: reqwest::Error) -> String {
        if e.is_timeout() {
            format!("no answer within {:?}", self.timeout)
        } else {
            // The URL is already in the error's prefix; drop reqwest's copy.
            describe(&e.without_url())
        }
    }
}

enum ReadError {
    TooLarge,
    Http(reqwest::Error),
}

/// Reads the body chunk by chunk, giving up as soon as it exceeds `cap`, so a
/// hostile or broken server cannot make us buffer without bound.
async fn read_capped(response: &mut reqwest::Response, cap: usize) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Http)? {
        if body.len() + chunk.len() > cap {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Up to `cap` bytes of the body, for quoting in an error; a body that is
/// longer, or breaks off, still yields what arrived.
async fn read_prefix(response: &mut reqwest::Response, cap: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < cap {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    body.truncate(cap);
    body
}

/// An error and its causes on one line ("error sending request: connection
/// refused"), without repeating a cause already contained in its parent.
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// Untrusted bytes made safe for a one-line message: lossy UTF-8, control
/// characters and runs of whitespace folded to one space, at most `max`
/// characters.
fn printable_excerpt(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    for word in text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
        if out.chars().count() >= max {
            let cut: String = out.chars().take(max).collect();
            return format!("{cut}…");
        }
    }
    out
}

// ------------------------------------------------------------ structure

/// The parts of a TimeStampResp (RFC 3161 §2.4.2).
struct SplitResponse<'a> {
    status: u32,
    status_text: String,
    /// The TimeStampToken's whole TLV, if present.
    token: Option<&'a [u8]>,
}

/// ```text
/// TimeStampResp ::= SEQUENCE { status PKIStatusInfo, timeStampToken TimeStampToken OPTIONAL }
/// PKIStatusInfo ::= SEQUENCE { status PKIStatus, statusString PKIFreeText OPTIONAL,
///                              failInfo PKIFailureInfo OPTIONAL }
/// ```
fn split_response(bytes: &[u8]) -> Result<SplitResponse<'_>, der::DerError> {
    let resp = der::single(bytes, der::SEQUENCE, "TimeStampResp")?;
    let mut r = resp.reader();
    let status_info = r.field(der::SEQUENCE, "PKIStatusInfo")?;
    // TimeStampToken ::= ContentInfo, a SEQUENCE (§2.4.2, RFC 5652 §3).
    let token = r.optional(der::SEQUENCE, "timeStampToken")?;
    r.finish("TimeStampResp")?;

    let mut s = status_info.reader();
    let status = der::small_int(&s.field(der::INTEGER, "PKIStatus")?, "PKIStatus")?;
    let status = u32::try_from(status)
        .map_err(|_| der::DerError(format!("PKIStatus {status} is negative")))?;
    let mut notes: Vec<String> = Vec::new();
    if let Some(name) = status_name(status) {
        notes.push(name.to_owned());
    }
    // PKIFreeText ::= SEQUENCE SIZE (1..MAX) OF UTF8String (RFC 4210 §5.1.1).
    let mut free_text = Vec::new();
    if let Some(text) = s.optional(der::SEQUENCE, "statusString")? {
        let mut t = text.reader();
        while !t.is_empty() {
            let line = t.field(der::UTF8_STRING, "statusString")?;
            free_text.push(format!("{:?}", printable_excerpt(line.content, 200)));
        }
    }
    if let Some(bits) = s.optional(der::BIT_STRING, "failInfo")? {
        notes.extend(fail_info_names(bits.content));
    }
    s.finish("PKIStatusInfo")?;
    notes.extend(free_text);
    Ok(SplitResponse {
        status,
        status_text: notes.join("; "),
        token: token.map(|t| t.raw),
    })
}

/// PKIStatus names (RFC 3161 §2.4.2).
fn status_name(status: u32) -> Option<&'static str> {
    Some(match status {
        0 => "granted",
        1 => "grantedWithMods",
        2 => "rejection",
        3 => "waiting",
        4 => "revocationWarning",
        5 => "revocationNotification",
        _ => return None,
    })
}

/// PKIFailureInfo bits (RFC 3161 §2.4.2). A BIT STRING's first content octet
/// counts unused bits; bit n is then octet n/8, mask 0x80 >> n%8 (X.690 §8.6).
fn fail_info_names(content: &[u8]) -> Vec<String> {
    const NAMES: [(usize, &str); 8] = [
        (0, "badAlg"),
        (2, "badRequest"),
        (5, "badDataFormat"),
        (14, "timeNotAvailable"),
        (15, "unacceptedPolicy"),
        (16, "unacceptedExtension"),
        (17, "addInfoNotAvailable"),
        (25, "systemFailure"),
    ];
    let bits = content.get(1..).unwrap_or_default();
    let set = |n: usize| bits.get(n / 8).is_some_and(|b| b & (0x80 >> (n % 8)) != 0);
    let mut names: Vec<String> = NAMES
        .iter()
        .filter(|(n, _)| set(*n))
        .map(|(_, name)| (*name).to_owned())
        .collect();
    for n in 0..bits.len().min(8) * 8 {
        if set(n) && !NAMES.iter().any(|(k, _)| *k == n) {
            names.push(format!("failInfo bit {n}"));
        }
    }
    names
}

/// What a token yields: the TSTInfo and the embedded certificates.
struct ParsedToken<'a> {
    info: TokenInfo,
    certificates: Vec<&'a [u8]>,
}

/// ```text
/// ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT ANY }   -- RFC 5652 §3
/// SignedData ::= SEQUENCE { version, digestAlgorithms SET, encapContentInfo,
///     certificates [0] IMPLICIT CertificateSet OPTIONAL,
///     crls [1] IMPLICIT RevocationInfoChoices OPTIONAL, signerInfos SET }  -- §5.1
/// EncapsulatedContentInfo ::= SEQUENCE { eContentType OID,
///     eContent [0] EXPLICIT OCTET STRING OPTIONAL }                         -- §5.2
/// ```
fn parse_token(token: &[u8]) -> Result<ParsedToken<'_>, der::DerError> {
    let content_info = der::single(token, der::SEQUENCE, "TimeStampToken")?;
    let mut ci = content_info.reader();
    let content_type = read_oid(&mut ci, "TimeStampToken contentType")?;
    if content_type != SIGNED_DATA_OID {
        // §2.4.2: "contentType is id-signedData".
        return Err(der::DerError(format!(
            "TimeStampToken content type is {content_type}, not id-signedData"
        )));
    }
    let explicit = ci.field(der::context_constructed(0), "TimeStampToken content")?;
    ci.finish("TimeStampToken")?;
    let signed_data = der::single(explicit.content, der::SEQUENCE, "SignedData")?;

    let mut sd = signed_data.reader();
    sd.field(der::INTEGER, "SignedData version")?;
    sd.field(der::SET, "SignedData digestAlgorithms")?;
    let encap = sd.field(der::SEQUENCE, "encapContentInfo")?;
    let certificate_set = sd.optional(der::context_constructed(0), "SignedData certificates")?;
    sd.optional(der::context_constructed(1), "SignedData crls")?;
    let signer_infos = sd.field(der::SET, "SignedData signerInfos")?;
    sd.finish("SignedData")?;

    let mut e = encap.reader();
    let e_content_type = read_oid(&mut e, "eContentType")?;
    if e_content_type != TST_INFO_OID {
        return Err(der::DerError(format!(
            "encapsulated content type is {e_content_type}, not id-ct-TSTInfo"
        )));
    }
    let e_content = e.field(der::context_constructed(0), "eContent")?;
    e.finish("encapContentInfo")?;
    // DER: eContent is a primitive OCTET STRING (X.690 §10.2), so its content
    // octets are exactly the TSTInfo's encoding.
    let tst_bytes = der::single(e_content.content, der::OCTET_STRING, "eContent")?.content;

    let mut signers = signer_infos.reader();
    if signers.is_empty() {
        return Err(der::DerError("SignedData has no SignerInfo".into()));
    }
    while !signers.is_empty() {
        let signer = signers.field(der::SEQUENCE, "SignerInfo")?;
        check_signer(&signer, tst_bytes)?;
    }

    let mut certificates = Vec::new();
    if let Some(set) = certificate_set {
        let mut c = set.reader();
        while !c.is_empty() {
            let choice = c
                .read()
                .map_err(|e| der::DerError(format!("certificates: {e}")))?;
            // CertificateChoices (RFC 5652 §10.2.2): a plain Certificate is a
            // SEQUENCE; the other choices are tagged [0]..[3] and are not
            // X.509 certificates, so they are skipped.
            if choice.tag == der::SEQUENCE {
                certificates.push(choice.raw);
            }
        }
    }

    Ok(ParsedToken {
        info: parse_tst_info(tst_bytes)?,
        certificates,
    })
}

/// ```text
/// SignerInfo ::= SEQUENCE { version, sid SignerIdentifier, digestAlgorithm,
///     signedAttrs [0] IMPLICIT SignedAttributes OPTIONAL, signatureAlgorithm,
///     signature OCTET STRING, unsignedAttrs [1] IMPLICIT UnsignedAttributes OPTIONAL }
/// ```
/// RFC 5652 §5.3: signedAttrs MUST be present when the content is not
/// id-data, and then MUST hold content-type and message-digest. Checking the
/// digest against the TSTInfo bytes proves the TSTInfo we report is the one
/// the (separately verified) signature covers.
fn check_signer(signer: &Tlv<'_>, tst_bytes: &[u8]) -> Result<(), der::DerError> {
    let mut s = signer.reader();
    s.field(der::INTEGER, "SignerInfo version")?;
    // sid: IssuerAndSerialNumber (SEQUENCE) or [0] SubjectKeyIdentifier.
    s.read()
        .map_err(|e| der::DerError(format!("SignerInfo sid: {e}")))?;
    let digest_alg = s.field(der::SEQUENCE, "SignerInfo digestAlgorithm")?;
    let digest_oid = read_oid(&mut digest_alg.reader(), "SignerInfo digestAlgorithm")?;
    let signed_attrs = s
        .optional(der::context_constructed(0), "SignerInfo signedAttrs")?
        .ok_or_else(|| der::DerError("SignerInfo has no signed attributes".into()))?;
    s.field(der::SEQUENCE, "SignerInfo signatureAlgorithm")?;
    s.field(der::OCTET_STRING, "SignerInfo signature")?;
    s.optional(der::context_constructed(1), "SignerInfo unsignedAttrs")?;
    s.finish("SignerInfo")?;

    let mut content_type_seen = false;
    let mut message_digest: Option<&[u8]> = None;
    let mut attrs = signed_attrs.reader();
    while !attrs.is_empty() {
        // Attribute ::= SEQUENCE { attrType OID, attrValues SET OF ANY }
        let attr = attrs.field(der::SEQUENCE, "signed attribute")?;
        let mut a = attr.reader();
        let attr_type = read_oid(&mut a, "signed attribute type")?;
        let values = a.field(der::SET, "signed attribute values")?;
        a.finish("signed attribute")?;
        match attr_type.as_str() {
            CONTENT_TYPE_ATTR_OID => {
                // §11.1: single-valued, and must equal eContentType.
                let value = der::single(values.content, der::OID, "content-type attribute")?;
                let value = der::oid_to_string(value.content)?;
                if value != TST_INFO_OID {
                    return Err(der::DerError(format!(
                        "content-type attribute is {value}, not id-ct-TSTInfo"
                    )));
                }
                content_type_seen = true;
            }
            MESSAGE_DIGEST_ATTR_OID => {
                // §11.2: single-valued OCTET STRING.
                let value = der::single(
                    values.content,
                    der::OCTET_STRING,
                    "message-digest attribute",
                )?;
                message_digest = Some(value.content);
            }
            _ => {}
        }
    }
    if !content_type_seen {
        return Err(der::DerError(
            "signed attributes lack the content-type attribute".into(),
        ));
    }
    let message_digest = message_digest.ok_or_else(|| {
        der::DerError("signed attributes lack the message-digest attribute".into())
    })?;
    // §5.4: the digest is over the eContent OCTET STRING's content octets.
    // Algorithms we cannot compute are left to `openssl ts -verify`.
    let computed: Option<Vec<u8>> = match digest_oid.as_str() {
        SHA256_OID => Some(Sha256::digest(tst_bytes).to_vec()),
        SHA384_OID => Some(Sha384::digest(tst_bytes).to_vec()),
        SHA512_OID => Some(Sha512::digest(tst_bytes).to_vec()),
        _ => None,
    };
    if computed.is_some_and(|c| c != message_digest) {
        return Err(der::DerError(
            "message-digest attribute does not match the TSTInfo".into(),
        ));
    }
    Ok(())
}

/// ```text
/// TSTInfo ::= SEQUENCE { version INTEGER { v1(1) }, policy TSAPolicyId,
///     messageImprint MessageImprint, serialNumber INTEGER, genTime GeneralizedTime,
///     accuracy Accuracy OPTIONAL, ordering BOOLEAN DEFAULT FALSE, nonce INTEGER OPTIONAL,
///     tsa [0] GeneralName OPTIONAL, extensions [1] IMPLICIT Extensions OPTIONAL }
/// ```
/// (RFC 3161 §2.4.2.)
fn parse_tst_info(bytes: &[u8]) -> Result<TokenInfo, der::DerError> {
    let tst = der::single(bytes, der::SEQUENCE, "TSTInfo")?;
    let mut t = tst.reader();
    let version = der::small_int(
        &t.field(der::INTEGER, "TSTInfo version")?,
        "TSTInfo version",
    )?;
    if version != 1 {
        return Err(der::DerError(format!(
            "TSTInfo version is {version}, not 1"
        )));
    }
    let policy_oid = read_oid(&mut t, "TSTInfo policy")?;
    let digest = parse_imprint(&t.field(der::SEQUENCE, "TSTInfo messageImprint")?)?;
    let serial = t.field(der::INTEGER, "TSTInfo serialNumber")?;
    let serial = der::integer_content(&serial, "TSTInfo serialNumber")?;
    let serial_hex = hex::encode(match der::magnitude(serial) {
        [] => &[0u8][..],
        m => m,
    });
    let gen_time = generalized_time(t.field(der::GENERALIZED_TIME, "TSTInfo genTime")?.content)?;
    t.optional(der::SEQUENCE, "TSTInfo accuracy")?;
    t.optional(der::BOOLEAN, "TSTInfo ordering")?;
    let nonce = match t.optional(der::INTEGER, "TSTInfo nonce")? {
        Some(n) => Some(der::integer_content(&n, "TSTInfo nonce")?.to_vec()),
        None => None,
    };
    let tsa_name = t
        .optional(der::context_constructed(0), "TSTInfo tsa")?
        .and_then(|tsa| general_name(tsa.content));
    t.optional(der::context_constructed(1), "TSTInfo extensions")?;
    t.finish("TSTInfo")?;
    Ok(TokenInfo {
        gen_time,
        serial_hex,
        policy_oid,
        digest,
        nonce,
        tsa_name,
    })
}

/// `MessageImprint ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, hashedMessage OCTET STRING }`
/// We only ever ask for SHA-256; RFC 5754 §2 allows its parameters to be
/// absent or NULL, and nothing else.
fn parse_imprint(imprint: &Tlv<'_>) -> Result<[u8; 32], der::DerError> {
    let mut m = imprint.reader();
    let alg = m.field(der::SEQUENCE, "messageImprint hashAlgorithm")?;
    let hashed = m.field(der::OCTET_STRING, "messageImprint hashedMessage")?;
    m.finish("messageImprint")?;
    let mut a = alg.reader();
    let oid = read_oid(&mut a, "messageImprint hashAlgorithm")?;
    if oid != SHA256_OID {
        return Err(der::DerError(format!(
            "message imprint uses hash algorithm {oid}, not SHA-256"
        )));
    }
    if let Some(params) = a.optional(der::NULL, "hashAlgorithm parameters")?
        && !params.content.is_empty()
    {
        return Err(der::DerError(
            "hashAlgorithm NULL parameters are not empty".into(),
        ));
    }
    a.finish("messageImprint hashAlgorithm")?;
    <[u8; 32]>::try_from(hashed.content).map_err(|_| {
        der::DerError(format!(
            "message imprint is {} bytes, SHA-256 needs 32",
            hashed.content.len()
        ))
    })
}

/// RFC 3161 §2.4.2: genTime is `YYYYMMDDhhmmss[.s...]Z`, always UTC. Only the
/// shape is checked; the string is kept as the token has it.
fn generalized_time(content: &[u8]) -> Result<String, der::DerError> {
    let bad = || {
        der::DerError(format!(
            "genTime {:?} is not YYYYMMDDhhmmss[.fraction]Z",
            printable_excerpt(content, 40)
        ))
    };
    if !(15..=40).contains(&content.len()) {
        return Err(bad());
    }
    let (body, z) = content.split_at(content.len() - 1);
    let (whole, fraction) = body.split_at(14);
    let fraction_ok = match fraction {
        [] => true,
        [b'.', digits @ ..] => !digits.is_empty() && digits.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if z != b"Z" || !whole.iter().all(u8::is_ascii_digit) || !fraction_ok {
        return Err(bad());
    }
    // All bytes are ASCII here, so this cannot fail.
    String::from_utf8(content.to_vec()).map_err(|_| bad())
}

fn read_oid(r: &mut Reader<'_>, what: &str) -> Result<String, der::DerError> {
    let t = r.field(der::OID, what)?;
    der::oid_to_string(t.content).map_err(|e| der::DerError(format!("{what}: {e}")))
}

/// Renders the `tsa` field's GeneralName (RFC 5280 §4.2.1.6); the `[0]` tag
/// is explicit because GeneralName is a CHOICE (X.680 §31.2.7). Best effort:
/// the name is only a hint (§2.4.2), so anything unusual gives `None`.
fn general_name(explicit_content: &[u8]) -> Option<String> {
    let mut r = Reader::new(explicit_content);
    let name = r.read().ok()?;
    if !r.is_empty() {
        return None;
    }
    match name.tag {
        t if t == der::context_primitive(1) => {
            Some(format!("email:{}", text(der::IA5_STRING, name.content)?))
        }
        t if t == der::context_primitive(2) => {
            Some(format!("DNS:{}", text(der::IA5_STRING, name.content)?))
        }
        t if t == der::context_primitive(6) => {
            Some(format!("URI:{}", text(der::IA5_STRING, name.content)?))
        }
        // directoryName [4] Name; Name is a CHOICE, so the tag is explicit
        // and wraps the RDNSequence.
        t if t == der::context_constructed(4) => {
            let rdns = der::single(name.content, der::SEQUENCE, "Name").ok()?;
            distinguished_name(rdns.content)
        }
        _ => None,
    }
}

/// An RDNSequence in openssl's one-line form, `/C=XX/O=Org/CN=Name`, in
/// encoded order.
fn distinguished_name(rdn_sequence: &[u8]) -> Option<String> {
    let mut out = String::new();
    let mut rdns = Reader::new(rdn_sequence);
    while !rdns.is_empty() {
        let rdn = rdns.field(der::SET, "RDN").ok()?;
        let mut atvs = rdn.reader();
        while !atvs.is_empty() {
            let atv = atvs.field(der::SEQUENCE, "AttributeTypeAndValue").ok()?;
            let mut a = atv.reader();
            let oid = read_oid(&mut a, "attribute type").ok()?;
            let value = a.read().ok()?;
            let key = match oid.as_str() {
                "2.5.4.3" => "CN",
                "2.5.4.5" => "serialNumber",
                "2.5.4.6" => "C",
                "2.5.4.7" => "L",
                "2.5.4.8" => "ST",
                "2.5.4.10" => "O",
                "2.5.4.11" => "OU",
                "2.5.4.97" => "organizationIdentifier",
                "1.2.840.113549.1.9.1" => "emailAddress",
                other => other,
            };
            let value = text(value.tag, value.content)
                .unwrap_or_else(|| format!("#{}", hex::encode(value.raw)));
            out.push_str(&format!("/{key}={value}"));
        }
    }
    Some(out)
}

/// A directory string as display text, control characters replaced, or
/// `None` for string types we do not decode.
fn text(tag: u8, content: &[u8]) -> Option<String> {
    let decoded = match tag {
        der::UTF8_STRING
        | der::PRINTABLE_STRING
        | der::IA5_STRING
        | der::VISIBLE_STRING
        | der::TELETEX_STRING => String::from_utf8_lossy(content).into_owned(),
        // BMPString: UCS-2 big-endian.
        0x1e if content.len().is_multiple_of(2) => char::decode_utf16(
            content
                .chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]])),
        )
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect(),
        _ => return None,
    };
    Some(
        decoded
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect(),
    )
}

#[cfg(test)]
mod tests;
