//! Receiving ends for filing that run on this machine: a small RFC 5321 SMTP server and an
//! HTTP webhook receiver, each on a loopback address, each with fault modes that can be switched
//! while it runs. The tests use them to exercise the real client code paths, and the product's
//! demo mode uses them so that a packet can be "sent" without reaching anyone.
//!
//! Both refuse to bind anything but a loopback address, keep what they accept in memory (the
//! SMTP sink can also write `.eml` files), and stop when dropped.
//!
//! [`SmtpSink`] speaks: greeting, EHLO/HELO (advertising SIZE, 8BITMIME, ENHANCEDSTATUSCODES),
//! MAIL FROM (with `SIZE=` and `BODY=`), RCPT TO, DATA (dot-unstuffing per RFC 5321 §4.5.2, a
//! size cap), RSET, NOOP, VRFY, HELP and QUIT, with 5yz answers to bad sequences and syntax. No
//! STARTTLS or AUTH: it is for loopback only.
//!
//! [`WebhookSink`] accepts `POST /filings` carrying the document and signature described in
//! `webhook.rs`, checks the signature, the timestamp's age and every attachment's SHA-256, and
//! answers `{"id": "..."}`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::{
    SIGNATURE_HEADER, SIGNATURE_TOLERANCE_SECS, TIMESTAMP_HEADER, WebhookDocument, sha256_hex,
    verify_signature,
};
use crate::durable::{create_dir_all_synced, write_atomic};

/// Default cap on one message's size (the `SIZE` we advertise).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 32 * 1024 * 1024;
/// RFC 5321 §4.5.3.1.4 allows 512 octets per command line; MAIL FROM parameters can be longer.
const COMMAND_LINE_LIMIT: usize = 2048;
/// Read size while in DATA; longer lines are simply read in pieces.
const DATA_CHUNK: usize = 64 * 1024;
/// RFC 5321 §4.5.3.1.8: a server must accept at least 100 recipients.
const MAX_RECIPIENTS: usize = 100;
/// RFC 5321 §4.5.3.2.7: a server should wait at least 5 minutes for the next command.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Bad commands tolerated before the sink hangs up (RFC 5321 §4.3.2 allows closing with 421).
const MAX_ERRORS: u32 = 10;
/// The name the SMTP sink gives itself.
const SERVER_NAME: &str = "localhost";

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the sink down with it; the data stays usable.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn require_loopback(addr: SocketAddr) -> std::io::Result<()> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("sink address {addr} is not loopback; sinks listen on this machine only"),
        ))
    }
}

/// A short random id, like an MTA's queue id.
fn queue_id() -> String {
    format!("{:012X}", rand::random::<u64>() & 0xFFFF_FFFF_FFFF)
}

// ---------------------------------------------------------------------------------------------
// SMTP

/// How the SMTP sink misbehaves, when told to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpFault {
    /// `550` to every RCPT TO: a permanent refusal.
    Refuse,
    /// `451` to DATA: a temporary failure.
    TempFail,
    /// Accept the connection and never say anything, not even the greeting.
    Stall,
    /// Close the connection, without a reply, as soon as MAIL FROM arrives.
    Drop,
}

/// One message the SMTP sink accepted.
#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    /// The id given in the `250` reply to DATA.
    pub queue_id: String,
    pub peer: SocketAddr,
    /// The name the client gave in EHLO/HELO.
    pub helo: String,
    /// Envelope sender (empty for the null reverse-path `<>`).
    pub mail_from: String,
    /// Envelope recipients, in order.
    pub rcpt_to: Vec<String>,
    /// The message as received, dot-unstuffed, with our `Received:` line in front.
    pub raw: Vec<u8>,
    /// Where the `.eml` copy was written, if the sink has an output directory.
    pub eml_path: Option<PathBuf>,
}

struct SmtpShared {
    fault: Mutex<Option<SmtpFault>>,
    messages: Mutex<Vec<ReceivedMessage>>,
    max_message_bytes: AtomicUsize,
    outdir: Option<PathBuf>,
}

/// A running SMTP sink; it stops when dropped.
pub struct SmtpSink {
    addr: SocketAddr,
    shared: Arc<SmtpShared>,
    task: JoinHandle<()>,
}

impl SmtpSink {
    /// Listens on `addr` (port 0 picks a free one) and serves until dropped. With `outdir`,
    /// each accepted message is also written there as `<queue id>.eml`. Must be called inside a
    /// tokio runtime.
    pub async fn start(addr: SocketAddr, outdir: Option<PathBuf>) -> std::io::Result<SmtpSink> {
        require_loopback(addr)?;
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(SmtpShared {
            fault: Mutex::new(None),
            messages: Mutex::new(Vec::new()),
            max_message_bytes: AtomicUsize::new(DEFAULT_MAX_MESSAGE_BYTES),
            outdir,
        });
        let task = tokio::spawn(smtp_accept_loop(listener, Arc::clone(&shared)));
        Ok(SmtpSink { addr, shared, task })
    }

    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every message accepted so far, oldest first.
    pub fn messages(&self) -> Vec<ReceivedMessage> {
        lock(&self.shared.messages).clone()
    }

    /// Sets (or with `None` clears) the fault mode; it applies from the next command on.
    pub fn set_fault(&self, fault: Option<SmtpFault>) {
        *lock(&self.shared.fault) = fault;
    }

    pub fn fault(&self) -> Option<SmtpFault> {
        *lock(&self.shared.fault)
    }

    /// Changes the size cap (and the advertised `SIZE`).
    pub fn set_max_message_bytes(&self, bytes: usize) {
        self.shared
            .max_message_bytes
            .store(bytes, Ordering::Relaxed);
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every open session.
        self.task.abort();
    }
}

async fn smtp_accept_loop(listener: TcpListener, shared: Arc<SmtpShared>) {
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    sessions.spawn(smtp_session(stream, peer, Arc::clone(&shared)));
                }
                // Out of file descriptors and the like: wait rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
}

/// Where one SMTP conversation stands.
#[derive(Default)]
struct Session {
    helo: Option<String>,
    esmtp: bool,
    mail_from: Option<String>,
    rcpt_to: Vec<String>,
    errors: u32,
}

impl Session {
    fn reset_transaction(&mut self) {
        self.mail_from = None;
        self.rcpt_to.clear();
    }
}

enum Line {
    Complete,
    TooLong,
    Eof,
}

/// Reads one line of at most `limit` bytes into `buf`; a longer line is read to its end and
/// discarded, so a client cannot make us buffer without bound.
async fn read_line_limited<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<Line> {
    buf.clear();
    let n = (&mut *reader)
        .take(limit as u64)
        .read_until(b'\n', buf)
        .await?;
    if n == 0 {
        return Ok(Line::Eof);
    }
    if buf.ends_with(b"\n") {
        return Ok(Line::Complete);
    }
    if buf.len() < limit {
        return Ok(Line::Eof);
    }
    let mut rest = Vec::new();
    loop {
        rest.clear();
        let n = (&mut *reader)
            .take(limit as u64)
            .read_until(b'\n', &mut rest)
            .await?;
        if n == 0 {
            return Ok(Line::Eof);
        }
        if rest.ends_with(b"\n") {
            return Ok(Line::TooLong);
        }
    }
}

type SmtpReader = BufReader<tokio::net::tcp::OwnedReadHalf>;
type SmtpWriter = tokio::net::tcp::OwnedWriteHalf;

async fn reply(writer: &mut SmtpWriter, text: &str) -> std::io::Result<()> {
    writer.write_all(text.as_bytes()).await?;
    writer.write_all(b"\r\n").await?;
    writer.flush().await
}

async fn smtp_session(stream: TcpStream, peer: SocketAddr, shared: Arc<SmtpShared>) {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    if *lock(&shared.fault) == Some(SmtpFault::Stall) {
        // Swallow whatever comes until the client gives up.
        let _ = tokio::io::copy(&mut reader, &mut tokio::io::sink()).await;
        return;
    }
    // Errors here are the client's connection going away; there is no one left to tell.
    let _ = smtp_conversation(&mut reader, &mut writer, peer, &shared).await;
}

async fn smtp_conversation(
    reader: &mut SmtpReader,
    writer: &mut SmtpWriter,
    peer: SocketAddr,
    shared: &SmtpShared,
) -> std::io::Result<()> {
    reply(
        writer,
        &format!("220 {SERVER_NAME} ESMTP leakwatch sink ready"),
    )
    .await?;
    let mut session = Session::default();
    let mut buf = Vec::new();
    loop {
        if session.errors >= MAX_ERRORS {
            return reply(writer, "421 4.7.0 Too many errors, closing connection").await;
        }
        let line = tokio::time::timeout(
            IDLE_TIMEOUT,
            read_line_limited(reader, &mut buf, COMMAND_LINE_LIMIT),
        )
        .await;
        match line {
            Err(_) => return reply(writer, "421 4.4.2 Idle timeout, closing connection").await,
            Ok(Err(e)) => return Err(e),
            Ok(Ok(Line::Eof)) => return Ok(()),
            Ok(Ok(Line::TooLong)) => {
                session.errors += 1;
                reply(writer, "500 5.5.6 Line too long").await?;
                continue;
            }
            Ok(Ok(Line::Complete)) => {}
        }
        let text = String::from_utf8_lossy(&buf);
        let text = text.trim_end_matches(['\r', '\n']);
        let (verb, arg) = match text.split_once(' ') {
            Some((verb, arg)) => (verb.to_ascii_uppercase(), arg.trim()),
            None => (text.to_ascii_uppercase(), ""),
        };
        let flow = match verb.as_str() {
            "EHLO" | "HELO" => hello(writer, &mut session, &verb, arg, shared).await?,
            "MAIL" => mail(writer, &mut session, arg, shared).await?,
            "RCPT" => rcpt(writer, &mut session, arg, shared).await?,
            "DATA" => data(reader, writer, &mut session, arg, peer, shared).await?,
            "RSET" => {
                session.reset_transaction();
                reply(writer, "250 2.0.0 OK").await?;
                Flow::Continue
            }
            "NOOP" => {
                reply(writer, "250 2.0.0 OK").await?;
                Flow::Continue
            }
            "VRFY" => {
                reply(
                    writer,
                    "252 2.5.2 Cannot VRFY user, but will accept message",
                )
                .await?;
                Flow::Continue
            }
            "HELP" => {
                reply(
                    writer,
                    "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT",
                )
                .await?;
                Flow::Continue
            }
            "QUIT" => {
                reply(
                    writer,
                    &format!("221 2.0.0 {SERVER_NAME} closing connection"),
                )
                .await?;
                Flow::Close
            }
            "STARTTLS" | "AUTH" | "EXPN" | "TURN" | "BDAT" => {
                reply(writer, "502 5.5.1 Command not implemented").await?;
                Flow::Error
            }
            _ => {
                reply(writer, "500 5.5.2 Command not recognized").await?;
                Flow::Error
            }
        };
        match flow {
            Flow::Continue => {}
            Flow::Error => session.errors += 1,
            Flow::Close => return Ok(()),
        }
    }
}

/// What the conversation does after a command.
enum Flow {
    Continue,
    /// The command was refused as a client error; counts towards [`MAX_ERRORS`].
    Error,
    Close,
}

async fn hello(
    writer: &mut SmtpWriter,
    session: &mut Session,
    verb: &str,
    arg: &str,
    shared: &SmtpShared,
) -> std::io::Result<Flow> {
    if arg.is_empty() || arg.contains(char::is_whitespace) {
        reply(writer, &format!("501 5.5.4 Syntax: {verb} <domain>")).await?;
        return Ok(Flow::Error);
    }
    // RFC 5321 §4.1.4: EHLO/HELO also resets any transaction.
    session.reset_transaction();
    session.helo = Some(arg.to_string());
    session.esmtp = verb == "EHLO";
    if session.esmtp {
        let size = shared.max_message_bytes.load(Ordering::Relaxed);
        reply(
            writer,
            &format!(
                "250-{SERVER_NAME} greets {arg}\r\n250-SIZE {size}\r\n250-8BITMIME\r\n\
                 250 ENHANCEDSTATUSCODES"
            ),
        )
        .await?;
    } else {
        reply(writer, &format!("250 {SERVER_NAME} greets {arg}")).await?;
    }
    Ok(Flow::Continue)
}

/// Splits `FROM:<path> params` (or `TO:`) into the address and the parameters.
fn parse_path<'a>(arg: &'a str, keyword: &str) -> Option<(&'a str, &'a str)> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg[keyword.len()..].trim_start();
    let rest = rest.strip_prefix('<')?;
    let end = rest.find('>')?;
    Some((&rest[..end], rest[end + 1..].trim()))
}

/// A plausible `local@domain` (RFC 5321 §4.1.2, loosely): no spaces or brackets, both parts.
fn is_plausible_address(addr: &str) -> bool {
    match addr.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !addr.contains(|c: char| c.is_whitespace() || c.is_control() || "<>".contains(c))
        }
        None => false,
    }
}

async fn mail(
    writer: &mut SmtpWriter,
    session: &mut Session,
    arg: &str,
    shared: &SmtpShared,
) -> std::io::Result<Flow> {
    if session.helo.is_none() {
        reply(writer, "503 5.5.1 Send EHLO or HELO first").await?;
        return Ok(Flow::Error);
    }
    if session.mail_from.is_some() {
        reply(writer, "503 5.5.1 Nested MAIL command").await?;
        return Ok(Flow::Error);
    }
    let Some((addr, params)) = parse_path(arg, "FROM:") else {
        reply(writer, "501 5.5.4 Syntax: MAIL FROM:<address>").await?;
        return Ok(Flow::Error);
    };
    // The null reverse-path `<>` is allowed (RFC 5321 §4.5.5).
    if !addr.is_empty() && !is_plausible_address(addr) {
        reply(writer, "501 5.1.7 Bad sender address syntax").await?;
        return Ok(Flow::Error);
    }
    let max = shared.max_message_bytes.load(Ordering::Relaxed);
    for param in params.split_whitespace() {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        match key.to_ascii_uppercase().as_str() {
            // RFC 1870: SIZE is only declared in ESMTP.
            "SIZE" if session.esmtp => match value.parse::<usize>() {
                Ok(size) if size > max => {
                    reply(
                        writer,
                        "552 5.3.4 Message size exceeds fixed maximum message size",
                    )
                    .await?;
                    return Ok(Flow::Continue);
                }
                Ok(_) => {}
                Err(_) => {
                    reply(writer, "501 5.5.4 Bad SIZE parameter").await?;
                    return Ok(Flow::Error);
                }
            },
            // RFC 6152: BODY=8BITMIME.
            "BODY"
                if session.esmtp
                    && (value.eq_ignore_ascii_case("7BIT")
                        || value.eq_ignore_ascii_case("8BITMIME")) => {}
            _ => {
                reply(writer, "555 5.5.4 MAIL FROM parameters not recognized").await?;
                return Ok(Flow::Error);
            }
        }
    }
    if *lock(&shared.fault) == Some(SmtpFault::Drop) {
        return Ok(Flow::Close);
    }
    session.mail_from = Some(addr.to_string());
    reply(writer, "250 2.1.0 Sender OK").await?;
    Ok(Flow::Continue)
}

async fn rcpt(
    writer: &mut SmtpWriter,
    session: &mut Session,
    arg: &str,
    shared: &SmtpShared,
) -> std::io::Result<Flow> {
    if session.mail_from.is_none() {
        reply(writer, "503 5.5.1 Need MAIL before RCPT").await?;
        return Ok(Flow::Error);
    }
    let Some((addr, params)) = parse_path(arg, "TO:") else {
        reply(writer, "501 5.5.4 Syntax: RCPT TO:<address>").await?;
        return Ok(Flow::Error);
    };
    if !params.is_empty() {
        reply(writer, "555 5.5.4 RCPT TO parameters not recognized").await?;
        return Ok(Flow::Error);
    }
    if !is_plausible_address(addr) && !addr.eq_ignore_ascii_case("postmaster") {
        reply(writer, "501 5.1.3 Bad recipient address syntax").await?;
        return Ok(Flow::Error);
    }
    if session.rcpt_to.len() >= MAX_RECIPIENTS {
        reply(writer, "452 4.5.3 Too many recipients").await?;
        return Ok(Flow::Continue);
    }
    if *lock(&shared.fault) == Some(SmtpFault::Refuse) {
        reply(
            writer,
            &format!("550 5.7.1 <{addr}>: Recipient refused (sink fault mode Refuse)"),
        )
        .await?;
        return Ok(Flow::Continue);
    }
    session.rcpt_to.push(addr.to_string());
    reply(writer, "250 2.1.5 Recipient OK").await?;
    Ok(Flow::Continue)
}

/// How reading a DATA block ended.
enum DataRead {
    Complete(Vec<u8>),
    TooBig,
    Eof,
}

/// Reads up to the lone `.` line, removing the dot that RFC 5321 §4.5.2 adds to lines starting
/// with one, and keeping at most `max` bytes (the rest is read and dropped).
async fn read_data<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> std::io::Result<DataRead> {
    let mut message = Vec::new();
    let mut too_big = false;
    let mut chunk = Vec::new();
    let mut at_line_start = true;
    loop {
        chunk.clear();
        let mut limited = (&mut *reader).take(DATA_CHUNK as u64);
        let read = limited.read_until(b'\n', &mut chunk);
        let n = match tokio::time::timeout(IDLE_TIMEOUT, read).await {
            Ok(n) => n?,
            Err(_) => return Ok(DataRead::Eof),
        };
        if n == 0 {
            return Ok(DataRead::Eof);
        }
        if at_line_start && (chunk == b".\r\n" || chunk == b".\n") {
            return Ok(if too_big {
                DataRead::TooBig
            } else {
                DataRead::Complete(message)
            });
        }
        let content = if at_line_start && chunk.starts_with(b".") {
            &chunk[1..]
        } else {
            &chunk[..]
        };
        if message.len() + content.len() > max {
            too_big = true;
            message = Vec::new();
        } else if !too_big {
            message.extend_from_slice(content);
        }
        at_line_start = chunk.ends_with(b"\n");
    }
}

async fn data(
    reader: &mut SmtpReader,
    writer: &mut SmtpWriter,
    session: &mut Session,
    arg: &str,
    peer: SocketAddr,
    shared: &SmtpShared,
) -> std::io::Result<Flow> {
    if !arg.is_empty() {
        reply(writer, "501 5.5.4 Syntax: DATA").await?;
        return Ok(Flow::Error);
    }
    let Some(mail_from) = session.mail_from.clone() else {
        reply(writer, "503 5.5.1 Need MAIL before DATA").await?;
        return Ok(Flow::Error);
    };
    if session.rcpt_to.is_empty() {
        reply(writer, "503 5.5.1 Need RCPT before DATA").await?;
        return Ok(Flow::Error);
    }
    if *lock(&shared.fault) == Some(SmtpFault::TempFail) {
        session.reset_transaction();
        reply(
            writer,
            "451 4.3.0 Temporary failure (sink fault mode TempFail), try again later",
        )
        .await?;
        return Ok(Flow::Continue);
    }
    reply(writer, "354 Start mail input; end with <CRLF>.<CRLF>").await?;
    let max = shared.max_message_bytes.load(Ordering::Relaxed);
    let body = match read_data(reader, max).await? {
        DataRead::Complete(body) => body,
        DataRead::TooBig => {
            session.reset_transaction();
            reply(
                writer,
                "552 5.3.4 Message size exceeds fixed maximum message size",
            )
            .await?;
            return Ok(Flow::Continue);
        }
        DataRead::Eof => return Ok(Flow::Close),
    };
    let rcpt_to = std::mem::take(&mut session.rcpt_to);
    session.reset_transaction();
    let id = queue_id();
    let helo = session.helo.clone().unwrap_or_default();
    // RFC 5321 §4.4: the receiving server prepends a trace line.
    let mut raw = format!(
        "Received: from {helo} ([{}])\r\n\tby {SERVER_NAME} (leakwatch sink) with {} id {id};\r\n\t{}\r\n",
        peer.ip(),
        if session.esmtp { "ESMTP" } else { "SMTP" },
        chrono::Utc::now().to_rfc2822()
    )
    .into_bytes();
    raw.extend_from_slice(&body);
    let eml_path = match &shared.outdir {
        Some(dir) => {
            let dir = dir.clone();
            let path = dir.join(format!("{id}.eml"));
            let bytes = raw.clone();
            let target = path.clone();
            let stored = tokio::task::spawn_blocking(move || {
                create_dir_all_synced(&dir)?;
                write_atomic(&target, &bytes, 0o644)
            })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            if let Err(e) = stored {
                // Not accepted unless stored: the client keeps the message and retries.
                reply(
                    writer,
                    &format!("451 4.3.0 Cannot store message in {}: {e}", path.display()),
                )
                .await?;
                return Ok(Flow::Continue);
            }
            Some(path)
        }
        None => None,
    };
    lock(&shared.messages).push(ReceivedMessage {
        queue_id: id.clone(),
        peer,
        helo,
        mail_from,
        rcpt_to,
        raw,
        eml_path,
    });
    reply(writer, &format!("250 2.0.0 Ok: queued as {id}")).await?;
    Ok(Flow::Continue)
}

// ---------------------------------------------------------------------------------------------
// Webhook

/// The path the webhook sink accepts documents on.
pub const WEBHOOK_PATH: &str = "/filings";
/// Largest request body the webhook sink reads (packets carry PDFs and screenshots).
const WEBHOOK_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// How the webhook sink misbehaves, when told to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFault {
    /// `403` to everything: a permanent refusal.
    Refuse,
    /// `500` to everything: a temporary failure.
    ServerError,
    /// Read the request and never answer.
    Stall,
    /// Read the start of the request, then close the connection without an answer.
    Drop,
}

/// One document the webhook sink accepted.
#[derive(Debug, Clone)]
pub struct ReceivedDocument {
    /// The id returned to the sender.
    pub id: String,
    /// `X-Leakwatch-Timestamp` as received.
    pub timestamp: String,
    /// `X-Leakwatch-Signature` as received.
    pub signature: String,
    pub document: WebhookDocument,
    /// The request body as received, the bytes the signature covers.
    pub raw: Vec<u8>,
}

struct WebhookShared {
    secret: Vec<u8>,
    fault: Mutex<Option<WebhookFault>>,
    documents: Mutex<Vec<ReceivedDocument>>,
    shutdown: watch::Receiver<bool>,
}

/// A running webhook receiver; it stops when dropped.
pub struct WebhookSink {
    addr: SocketAddr,
    shared: Arc<WebhookShared>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl WebhookSink {
    /// Listens on `addr` (port 0 picks a free one), accepting documents signed with `secret`.
    /// Must be called inside a tokio runtime.
    pub async fn start(
        addr: SocketAddr,
        secret: impl Into<Vec<u8>>,
    ) -> std::io::Result<WebhookSink> {
        require_loopback(addr)?;
        let secret = secret.into();
        if secret.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "webhook sink secret is empty",
            ));
        }
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(WebhookShared {
            secret,
            fault: Mutex::new(None),
            documents: Mutex::new(Vec::new()),
            shutdown: shutdown_rx,
        });
        let router = Router::new()
            .route(WEBHOOK_PATH, post(receive_document))
            .layer(DefaultBodyLimit::max(WEBHOOK_BODY_LIMIT))
            .with_state(Arc::clone(&shared));
        let listener = FaultyListener {
            inner: listener,
            shared: Arc::clone(&shared),
        };
        let task = tokio::spawn(async move {
            // Serving ends only by abort, so there is no result to report.
            let _ = axum::serve(listener, router).await;
        });
        Ok(WebhookSink {
            addr,
            shared,
            shutdown,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>/filings`, the URL to configure.
    pub fn url(&self) -> String {
        format!("http://{}{WEBHOOK_PATH}", self.addr)
    }

    /// Every document accepted so far, oldest first.
    pub fn documents(&self) -> Vec<ReceivedDocument> {
        lock(&self.shared.documents).clone()
    }

    /// Sets (or with `None` clears) the fault mode; it applies to the next request.
    pub fn set_fault(&self, fault: Option<WebhookFault>) {
        *lock(&self.shared.fault) = fault;
    }

    pub fn fault(&self) -> Option<WebhookFault> {
        *lock(&self.shared.fault)
    }
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        // Wakes stalled handlers, then stops accepting.
        let _ = self.shutdown.send(true);
        self.task.abort();
    }
}

/// The TCP listener, except that in `Drop` mode it hangs up on each connection itself.
struct FaultyListener {
    inner: TcpListener,
    shared: Arc<WebhookShared>,
}

impl axum::serve::Listener for FaultyListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, peer)) => {
                    if *lock(&self.shared.fault) == Some(WebhookFault::Drop) {
                        tokio::spawn(read_then_hang_up(stream));
                        continue;
                    }
                    return (stream, peer);
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// Lets the request start arriving, so the client has really sent something, then closes.
async fn read_then_hang_up(mut stream: TcpStream) {
    let mut buf = vec![0u8; 16 * 1024];
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await;
}

fn answer(status: StatusCode, error: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": error }))).into_response()
}

async fn receive_document(
    State(shared): State<Arc<WebhookShared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fault = *lock(&shared.fault);
    match fault {
        Some(WebhookFault::Refuse) => {
            return answer(StatusCode::FORBIDDEN, "refused (sink fault mode Refuse)");
        }
        Some(WebhookFault::ServerError) => {
            return answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error (sink fault mode ServerError)",
            );
        }
        Some(WebhookFault::Stall) => {
            let mut shutdown = shared.shutdown.clone();
            let _ = shutdown.wait_for(|stopped| *stopped).await;
            return answer(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
        }
        Some(WebhookFault::Drop) | None => {}
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (Some(timestamp), Some(signature)) = (header(TIMESTAMP_HEADER), header(SIGNATURE_HEADER))
    else {
        return answer(
            StatusCode::UNAUTHORIZED,
            "missing X-Leakwatch-Timestamp or X-Leakwatch-Signature",
        );
    };
    if !verify_signature(&shared.secret, &timestamp, &body, &signature) {
        return answer(StatusCode::FORBIDDEN, "signature does not match");
    }
    let fresh = timestamp.parse::<i64>().is_ok_and(|sent| {
        (chrono::Utc::now().timestamp() - sent).abs() <= SIGNATURE_TOLERANCE_SECS
    });
    if !fresh {
        return answer(
            StatusCode::FORBIDDEN,
            "timestamp outside the accepted window",
        );
    }
    let document: WebhookDocument = match serde_json::from_slice(&body) {
        Ok(document) => document,
        Err(e) => {
            return answer(
                StatusCode::BAD_REQUEST,
                &format!("not a filing document: {e}"),
            );
        }
    };
    if document.version != super::DOCUMENT_VERSION {
        return answer(
            StatusCode::BAD_REQUEST,
            &format!("unsupported document version {}", document.version),
        );
    }
    for attachment in &document.attachments {
        let intact = base64::engine::general_purpose::STANDARD
            .decode(&attachment.base64)
            .is_ok_and(|bytes| sha256_hex(&bytes) == attachment.sha256);
        if !intact {
            return answer(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("attachment {:?} does not match its sha256", attachment.name),
            );
        }
    }
    let id = format!("wh-{}", queue_id().to_ascii_lowercase());
    lock(&shared.documents).push(ReceivedDocument {
        id: id.clone(),
        timestamp,
        signature,
        document,
        raw: body.to_vec(),
    });
    (
        StatusCode::OK,
        axum::Json(serde_json::json!({ "id": id, "status": "accepted" })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filing::test_support::runtime;
    use std::io::{BufRead, BufReader as StdBufReader, Write};
    use std::net::TcpStream as StdTcpStream;

    /// A hand-driven SMTP client, to test the conversation line by line.
    struct Client {
        reader: StdBufReader<StdTcpStream>,
        writer: StdTcpStream,
    }

    impl Client {
        fn connect(addr: SocketAddr) -> Client {
            let stream = StdTcpStream::connect(addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut client = Client {
                reader: StdBufReader::new(stream.try_clone().unwrap()),
                writer: stream,
            };
            assert!(client.read_reply().starts_with("220 "));
            client
        }

        /// The whole (possibly multi-line) reply.
        fn read_reply(&mut self) -> String {
            let mut all = String::new();
            loop {
                let mut line = String::new();
                self.reader.read_line(&mut line).unwrap();
                all.push_str(&line);
                if line.len() < 4 || line.as_bytes()[3] == b' ' {
                    return all;
                }
            }
        }

        fn send(&mut self, raw: &str) {
            self.writer.write_all(raw.as_bytes()).unwrap();
        }

        fn cmd(&mut self, line: &str) -> String {
            self.send(&format!("{line}\r\n"));
            self.read_reply()
        }
    }

    fn loopback() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    #[test]
    fn conversation_and_dot_unstuffing() {
        let rt = runtime();
        let sink = rt.block_on(SmtpSink::start(loopback(), None)).unwrap();
        let mut c = Client::connect(sink.addr());
        let ehlo = c.cmd("EHLO client.example");
        assert!(ehlo.starts_with("250-"), "{ehlo}");
        assert!(
            ehlo.contains("SIZE ") && ehlo.contains("8BITMIME"),
            "{ehlo}"
        );
        assert!(c.cmd("NOOP").starts_with("250"));
        assert!(
            c.cmd("mail from:<a@example.org> SIZE=100 BODY=8BITMIME")
                .starts_with("250")
        );
        assert!(c.cmd("RCPT TO:<b@example.org>").starts_with("250"));
        assert!(c.cmd("RCPT TO:<postmaster>").starts_with("250"));
        assert!(c.cmd("DATA").starts_with("354"));
        c.send("Subject: t\r\n\r\n..leading dot\r\nline\r\n..\r\n.\r\n");
        let queued = c.read_reply();
        assert!(queued.starts_with("250 2.0.0 Ok: queued as "), "{queued}");
        assert!(c.cmd("QUIT").starts_with("221"));

        let messages = sink.messages();
        assert_eq!(messages.len(), 1);
        let m = &messages[0];
        assert!(queued.contains(&m.queue_id));
        assert_eq!(m.helo, "client.example");
        assert_eq!(m.mail_from, "a@example.org");
        assert_eq!(m.rcpt_to, ["b@example.org", "postmaster"]);
        let raw = String::from_utf8(m.raw.clone()).unwrap();
        assert!(raw.starts_with("Received: from client.example"), "{raw}");
        assert!(
            raw.ends_with("Subject: t\r\n\r\n.leading dot\r\nline\r\n.\r\n"),
            "{raw}"
        );
    }

    #[test]
    fn bad_sequences_get_5yz_answers() {
        let rt = runtime();
        let sink = rt.block_on(SmtpSink::start(loopback(), None)).unwrap();
        let mut c = Client::connect(sink.addr());
        assert!(c.cmd("MAIL FROM:<a@example.org>").starts_with("503"));
        assert!(c.cmd("EHLO").starts_with("501"));
        assert!(c.cmd("HELO client.example").starts_with("250 "));
        assert!(c.cmd("RCPT TO:<b@example.org>").starts_with("503"));
        assert!(c.cmd("DATA").starts_with("503"));
        assert!(c.cmd("MAIL FROM:a@example.org").starts_with("501"));
        // SIZE and BODY are ESMTP: after HELO they are unknown parameters.
        assert!(
            c.cmd("MAIL FROM:<a@example.org> SIZE=10")
                .starts_with("555")
        );
        assert!(c.cmd("MAIL FROM:<>").starts_with("250"));
        assert!(c.cmd("MAIL FROM:<a@example.org>").starts_with("503"));
        assert!(c.cmd("DATA").starts_with("503"));
        assert!(c.cmd("RCPT TO:<not an address>").starts_with("501"));
        // Nine errors so far; a fresh session keeps the tenth from closing this one.
        let mut c = Client::connect(sink.addr());
        assert!(c.cmd("EHLO client.example").starts_with("250"));
        assert!(c.cmd("MAIL FROM:<a@example.org>").starts_with("250"));
        assert!(
            c.cmd("RCPT TO:<b@example.org> NOTIFY=NEVER")
                .starts_with("555")
        );
        assert!(c.cmd("RSET").starts_with("250"));
        assert!(c.cmd("RCPT TO:<b@example.org>").starts_with("503"));
        assert!(c.cmd("STARTTLS").starts_with("502"));
        assert!(c.cmd("FROB").starts_with("500"));
        assert!(c.cmd(&"X".repeat(5000)).starts_with("500 5.5.6"));
        assert!(c.cmd("NOOP").starts_with("250"));
        assert!(sink.messages().is_empty());
    }

    #[test]
    fn too_many_errors_end_the_session() {
        let rt = runtime();
        let sink = rt.block_on(SmtpSink::start(loopback(), None)).unwrap();
        let mut c = Client::connect(sink.addr());
        for _ in 0..MAX_ERRORS {
            assert!(c.cmd("FROB").starts_with("500"));
        }
        assert!(c.cmd("NOOP").starts_with("421"));
    }

    #[test]
    fn size_cap_is_advertised_and_enforced() {
        let rt = runtime();
        let sink = rt.block_on(SmtpSink::start(loopback(), None)).unwrap();
        sink.set_max_message_bytes(100);
        let mut c = Client::connect(sink.addr());
        assert!(c.cmd("EHLO client.example").contains("SIZE 100"));
        assert!(
            c.cmd("MAIL FROM:<a@example.org> SIZE=101")
                .starts_with("552")
        );
        assert!(c.cmd("MAIL FROM:<a@example.org>").starts_with("250"));
        assert!(c.cmd("RCPT TO:<b@example.org>").starts_with("250"));
        assert!(c.cmd("DATA").starts_with("354"));
        c.send(&format!("{}\r\n.\r\n", "y".repeat(500)));
        assert!(c.read_reply().starts_with("552"));
        // The session goes on, with the transaction reset.
        assert!(c.cmd("RCPT TO:<b@example.org>").starts_with("503"));
        assert!(sink.messages().is_empty());
    }

    #[test]
    fn eml_files_are_written_when_asked() {
        let rt = runtime();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("eml");
        let sink = rt
            .block_on(SmtpSink::start(loopback(), Some(out.clone())))
            .unwrap();
        let mut c = Client::connect(sink.addr());
        c.cmd("EHLO c");
        c.cmd("MAIL FROM:<a@example.org>");
        c.cmd("RCPT TO:<b@example.org>");
        c.cmd("DATA");
        c.send("Subject: x\r\n\r\nhello\r\n.\r\n");
        assert!(c.read_reply().starts_with("250"));
        let m = &sink.messages()[0];
        assert_eq!(
            m.eml_path.as_deref(),
            Some(out.join(format!("{}.eml", m.queue_id)).as_path())
        );
        assert_eq!(
            std::fs::read(out.join(format!("{}.eml", m.queue_id))).unwrap(),
            m.raw
        );
    }

    #[test]
    fn sinks_refuse_non_loopback_addresses() {
        let rt = runtime();
        let any: SocketAddr = "0.0.0.0:0".parse().unwrap();
        assert!(rt.block_on(SmtpSink::start(any, None)).is_err());
        assert!(rt.block_on(WebhookSink::start(any, b"k".to_vec())).is_err());
        assert!(
            rt.block_on(WebhookSink::start(loopback(), Vec::new()))
                .is_err()
        );
    }

    #[test]
    fn dropping_the_sink_closes_its_port() {
        let rt = runtime();
        let sink = rt.block_on(SmtpSink::start(loopback(), None)).unwrap();
        let addr = sink.addr();
        drop(sink);
        // The abort lands on the runtime's worker; give it a moment.
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while StdTcpStream::connect(addr).is_ok() {
            assert!(std::time::Instant::now() < deadline, "still listening");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn webhook_sink_rejects_unsigned_stale_and_corrupt_documents() {
        let rt = runtime();
        let secret = b"k3y".to_vec();
        let sink = rt
            .block_on(WebhookSink::start(loopback(), secret.clone()))
            .unwrap();
        let client = reqwest::blocking::Client::new();
        let post = |body: &[u8], timestamp: &str, signature: Option<String>| {
            let mut request = client.post(sink.url()).body(body.to_vec());
            request = request.header(TIMESTAMP_HEADER, timestamp);
            if let Some(signature) = signature {
                request = request.header(SIGNATURE_HEADER, signature);
            }
            request.send().unwrap().status().as_u16()
        };
        let now = chrono::Utc::now().timestamp().to_string();
        let doc = serde_json::json!({
            "version": 1, "packet_id": "p", "kind": "takedown", "subject": "s", "body_text": "b",
            "attachments": [{"name": "a", "content_type": "text/plain",
                             "sha256": sha256_hex(b"hello"), "base64": "aGVsbG8="}]
        });
        let good = serde_json::to_vec(&doc).unwrap();
        assert_eq!(post(&good, &now, None), 401);
        let stale = (chrono::Utc::now().timestamp() - 3600).to_string();
        assert_eq!(
            post(
                &good,
                &stale,
                Some(crate::filing::sign(&secret, &stale, &good))
            ),
            403
        );
        let mut corrupt = doc.clone();
        corrupt["attachments"][0]["base64"] = "aGVsbG8h".into();
        let corrupt = serde_json::to_vec(&corrupt).unwrap();
        assert_eq!(
            post(
                &corrupt,
                &now,
                Some(crate::filing::sign(&secret, &now, &corrupt))
            ),
            422
        );
        let mut future = doc.clone();
        future["version"] = 2.into();
        let future = serde_json::to_vec(&future).unwrap();
        assert_eq!(
            post(
                &future,
                &now,
                Some(crate::filing::sign(&secret, &now, &future))
            ),
            400
        );
        assert!(sink.documents().is_empty());
        assert_eq!(
            post(&good, &now, Some(crate::filing::sign(&secret, &now, &good))),
            200
        );
        assert_eq!(sink.documents().len(), 1);
    }
}
