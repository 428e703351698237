//! The Telegram Bot API client shared by the group adapter and the staff bot.
//!
//! Two ways in, on purpose. Calls whose answer is evidence (`getUpdates`, `getChat`) are made
//! here as plain HTTP and their JSON is kept byte for byte (each update's exact bytes, sliced out
//! of the answer with `RawValue`), because a court copy must be what Telegram sent, not what a
//! typed model re-serialises. Everything else (`getMe`, `getFile`, file downloads,
//! `getChatMemberCount`, `leaveChat`, and the staff bot's messages, buttons and callback
//! answers) goes through teloxide's typed [`teloxide::Bot`], built with our own HTTP client and
//! pointed at the configured `api_url`.
//!
//! Invariants:
//! - the bot token never leaves this module in text: [`BotToken`] has a redacting `Debug`, every
//!   error string is scrubbed of the token (reqwest errors carry the request URL, which holds
//!   it), and a token with characters that could change a URL is refused at start;
//! - every answer is read with a size cap ([`MAX_ANSWER_BYTES`]) and every download with the
//!   caller's cap, counted while streaming, so a lying `file_size` cannot make us buffer more;
//! - files are downloaded only from `<api_url>/file/bot<token>/<file_path>`, and only when
//!   `file_path` (from `getFile`, never from a message) is a plain relative path.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use teloxide::net::Download;
use teloxide::requests::Requester;
use teloxide::types::{ChatId, FileId};
use teloxide::{Bot, RequestError};

/// The Bot API's own limit on files a bot may download.
pub const BOT_API_FILE_LIMIT: u64 = crate::config::TELEGRAM_FILE_LIMIT;
/// The largest Bot API answer read (a full `getUpdates` page of 100 updates is far smaller).
pub const MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;
/// Requests other than long polls and downloads give up after this long.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Whole-request cap of the HTTP client (a 20 MB download on a slow link still fits).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(180);

#[derive(Debug, thiserror::Error)]
pub enum TelegramError {
    #[error("environment variable {0} is not set (it must hold the bot token)")]
    TokenMissing(String),
    #[error("the bot token in {0} is malformed (expected <digits>:<letters, digits, _ or ->)")]
    TokenMalformed(String),
    #[error("api_url {url:?}: {reason}")]
    BadApiUrl { url: String, reason: String },
    #[error("HTTP client: {0}")]
    Client(String),
    #[error("{method}: network error: {detail}")]
    Network { method: String, detail: String },
    /// Telegram refused the call (`ok: false`); `code` is its `error_code` (0 when unknown).
    #[error("{method}: Telegram answered {code}: {description}")]
    Api {
        method: String,
        code: i64,
        description: String,
    },
    #[error("{method}: flood control, retry after {seconds} s")]
    RetryAfter { method: String, seconds: u64 },
    #[error("{method}: the group was upgraded to supergroup {new_chat_id}")]
    Migrated { method: String, new_chat_id: i64 },
    #[error("{method}: the answer is over {limit} bytes")]
    TooLarge { method: String, limit: usize },
    #[error("{method}: unreadable answer: {detail}")]
    BadAnswer { method: String, detail: String },
}

impl TelegramError {
    /// Telegram's description, lower-cased, when it refused the call.
    pub fn api_description(&self) -> Option<String> {
        match self {
            TelegramError::Api { description, .. } => Some(description.to_ascii_lowercase()),
            _ => None,
        }
    }
}

/// A bot token. Its `Debug` never shows it.
#[derive(Clone)]
pub struct BotToken(Arc<str>);

impl fmt::Debug for BotToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BotToken(<redacted>)")
    }
}

impl BotToken {
    /// Check the shape `<bot id>:<secret>`: anything else could rewrite the request URL.
    pub fn parse(token: &str, source: &str) -> Result<BotToken, TelegramError> {
        let token = token.trim();
        let ok = token.split_once(':').is_some_and(|(id, secret)| {
            !id.is_empty()
                && id.len() <= 20
                && id.bytes().all(|b| b.is_ascii_digit())
                && !secret.is_empty()
                && secret.len() <= 200
                && secret
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
        if !ok {
            return Err(TelegramError::TokenMalformed(source.to_string()));
        }
        Ok(BotToken(Arc::from(token)))
    }

    /// Read a token from the environment variable `var`.
    pub fn from_env(var: &str) -> Result<BotToken, TelegramError> {
        match std::env::var(var) {
            Ok(t) if !t.trim().is_empty() => BotToken::parse(&t, var),
            _ => Err(TelegramError::TokenMissing(var.to_string())),
        }
    }

    fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with the token (and its secret half alone) replaced.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.replace(self.expose(), "<token>");
        if let Some((_, secret)) = self.expose().split_once(':')
            && secret.len() >= 8
        {
            out = out.replace(secret, "<token>");
        }
        out
    }
}

/// Who the bot is (`getMe`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotIdentity {
    pub id: i64,
    pub username: Option<String>,
    /// False while privacy mode is on: in groups the bot then sees only commands and replies.
    pub reads_all_group_messages: bool,
}

/// One update exactly as received, and its parsed form.
#[derive(Debug, Clone)]
pub struct RawUpdate {
    pub update_id: Option<i64>,
    pub raw: Vec<u8>,
    pub value: Value,
}

/// A Bot API answer kept as evidence: its `result` exactly as received, and parsed.
#[derive(Debug, Clone)]
pub struct RawResult {
    pub raw: Vec<u8>,
    pub value: Value,
}

#[derive(Deserialize)]
struct Envelope {
    ok: bool,
    #[serde(default)]
    result: Option<Box<RawValue>>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    error_code: Option<i64>,
    #[serde(default)]
    parameters: Option<EnvelopeParameters>,
}

#[derive(Deserialize)]
struct EnvelopeParameters {
    #[serde(default)]
    retry_after: Option<u64>,
    #[serde(default)]
    migrate_to_chat_id: Option<i64>,
}

/// The Bot API at one URL with one token.
pub struct BotApi {
    bot: Bot,
    http: reqwest::Client,
    api_url: url::Url,
    token: BotToken,
}

impl fmt::Debug for BotApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // teloxide's own `Bot` derives Debug with the token in it: never print it.
        f.debug_struct("BotApi")
            .field("api_url", &self.api_url.as_str())
            .finish_non_exhaustive()
    }
}

impl BotApi {
    pub fn new(api_url: &str, token: BotToken) -> Result<BotApi, TelegramError> {
        let bad = |reason: &str| TelegramError::BadApiUrl {
            url: api_url.to_string(),
            reason: reason.to_string(),
        };
        let url = url::Url::parse(api_url).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
            return Err(bad("not an http(s) URL"));
        }
        // A Bot API server on this machine (a self-hosted telegram-bot-api, a test fake) is
        // reached directly; anything else honours the system's proxy settings.
        let loopback = match url.host() {
            Some(url::Host::Ipv4(a)) => a.is_loopback(),
            Some(url::Host::Ipv6(a)) => a.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(CLIENT_TIMEOUT)
            .tcp_nodelay(true);
        if loopback {
            builder = builder.no_proxy();
        }
        let http = builder
            .build()
            .map_err(|e| TelegramError::Client(token.redact(&e.to_string())))?;
        // `with_client`, not `Bot::new`: the latter reads TELOXIDE_PROXY and panics on a bad one.
        let bot = Bot::with_client(token.expose(), http.clone()).set_api_url(url.clone());
        Ok(BotApi {
            bot,
            http,
            api_url: url,
            token,
        })
    }

    /// The typed teloxide bot (the staff bot sends messages and buttons with it).
    pub fn bot(&self) -> &Bot {
        &self.bot
    }

    pub fn redact(&self, text: &str) -> String {
        self.token.redact(text)
    }

    /// `<api_url>/bot<token>/<method>`, built the way teloxide builds it.
    fn method_url(&self, method: &str) -> url::Url {
        let mut url = self.api_url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty();
            segments.push(&format!("bot{}", self.token.expose()));
            segments.push(method);
        }
        url
    }

    fn network(&self, method: &str, e: reqwest::Error) -> TelegramError {
        TelegramError::Network {
            method: method.to_string(),
            detail: self.redact(&e.without_url().to_string()),
        }
    }

    /// Map a teloxide error, scrubbed of the token.
    pub fn from_request(&self, method: &str, e: RequestError) -> TelegramError {
        let method = method.to_string();
        match e {
            RequestError::Api(api) => TelegramError::Api {
                method,
                code: 0,
                description: self.redact(&api.to_string()),
            },
            RequestError::RetryAfter(s) => TelegramError::RetryAfter {
                method,
                seconds: u64::from(s.seconds()),
            },
            RequestError::MigrateToChatId(id) => TelegramError::Migrated {
                method,
                new_chat_id: id.0,
            },
            // The raw answer is left out: it can be long, and it is the server's business.
            RequestError::InvalidJson { source, .. } => TelegramError::BadAnswer {
                method,
                detail: self.redact(&source.to_string()),
            },
            RequestError::Network(e) => TelegramError::Network {
                method,
                detail: self.redact(&e.to_string()),
            },
            RequestError::Io(e) => TelegramError::Network {
                method,
                detail: self.redact(&e.to_string()),
            },
        }
    }

    /// Call `method` with JSON `params`; returns its `result` exactly as received.
    pub async fn call_raw(
        &self,
        method: &str,
        params: &Value,
        timeout: Duration,
    ) -> Result<Box<RawValue>, TelegramError> {
        let resp = self
            .http
            .post(self.method_url(method))
            .json(params)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| self.network(method, e))?;
        let status = resp.status();
        let body = read_capped(resp, MAX_ANSWER_BYTES as u64)
            .await
            .map_err(|e| match e {
                CappedRead::Over => TelegramError::TooLarge {
                    method: method.to_string(),
                    limit: MAX_ANSWER_BYTES,
                },
                CappedRead::Net(e) => self.network(method, e),
            })?;
        let envelope: Envelope =
            serde_json::from_slice(&body).map_err(|e| TelegramError::BadAnswer {
                method: method.to_string(),
                detail: format!("HTTP {}: {e}", status.as_u16()),
            })?;
        if envelope.ok {
            return envelope.result.ok_or_else(|| TelegramError::BadAnswer {
                method: method.to_string(),
                detail: "ok without a result".into(),
            });
        }
        let params = envelope.parameters;
        if let Some(seconds) = params.as_ref().and_then(|p| p.retry_after) {
            return Err(TelegramError::RetryAfter {
                method: method.to_string(),
                seconds,
            });
        }
        if let Some(new_chat_id) = params.as_ref().and_then(|p| p.migrate_to_chat_id) {
            return Err(TelegramError::Migrated {
                method: method.to_string(),
                new_chat_id,
            });
        }
        Err(TelegramError::Api {
            method: method.to_string(),
            code: envelope
                .error_code
                .unwrap_or_else(|| i64::from(status.as_u16())),
            description: self.redact(
                &envelope
                    .description
                    .unwrap_or_else(|| "no description".into())
                    .chars()
                    .take(500)
                    .collect::<String>(),
            ),
        })
    }

    /// As [`BotApi::call_raw`], parsed as well.
    pub async fn call_kept(
        &self,
        method: &str,
        params: &Value,
    ) -> Result<RawResult, TelegramError> {
        let raw = self.call_raw(method, params, CALL_TIMEOUT).await?;
        let value = serde_json::from_str(raw.get()).map_err(|e| TelegramError::BadAnswer {
            method: method.to_string(),
            detail: e.to_string(),
        })?;
        Ok(RawResult {
            raw: raw.get().as_bytes().to_vec(),
            value,
        })
    }

    /// One long poll: the updates from `offset` on, each kept byte for byte.
    pub async fn get_updates(
        &self,
        offset: i64,
        timeout_s: u64,
        allowed: &[&str],
    ) -> Result<Vec<RawUpdate>, TelegramError> {
        let params = serde_json::json!({
            "offset": offset,
            "timeout": timeout_s,
            "limit": 100,
            "allowed_updates": allowed,
        });
        let raw = self
            .call_raw(
                "getUpdates",
                &params,
                Duration::from_secs(timeout_s.saturating_add(15)),
            )
            .await?;
        let items: Vec<Box<RawValue>> =
            serde_json::from_str(raw.get()).map_err(|e| TelegramError::BadAnswer {
                method: "getUpdates".into(),
                detail: format!("result is not a list of updates: {e}"),
            })?;
        Ok(items
            .into_iter()
            .map(|item| {
                let value: Value = serde_json::from_str(item.get()).unwrap_or(Value::Null);
                RawUpdate {
                    update_id: value.get("update_id").and_then(Value::as_i64),
                    raw: item.get().as_bytes().to_vec(),
                    value,
                }
            })
            .collect())
    }

    pub async fn get_me(&self) -> Result<BotIdentity, TelegramError> {
        let me = self
            .bot
            .get_me()
            .await
            .map_err(|e| self.from_request("getMe", e))?;
        Ok(BotIdentity {
            id: i64::try_from(me.user.id.0).unwrap_or(i64::MAX),
            username: me.user.username.clone(),
            reads_all_group_messages: me.can_read_all_group_messages,
        })
    }

    /// `getChat` for a numeric chat id or a public `@username`, kept as evidence.
    pub async fn get_chat(&self, chat: &ChatKey) -> Result<RawResult, TelegramError> {
        self.call_kept("getChat", &serde_json::json!({"chat_id": chat.param()}))
            .await
    }

    /// `getChatMember` status of `user_id` (`member`, `administrator`, `left`, `kicked`, ...).
    pub async fn member_status(
        &self,
        chat: &ChatKey,
        user_id: i64,
    ) -> Result<(String, Option<bool>), TelegramError> {
        let r = self
            .call_kept(
                "getChatMember",
                &serde_json::json!({"chat_id": chat.param(), "user_id": user_id}),
            )
            .await?;
        let status = r
            .value
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let is_member = r.value.get("is_member").and_then(Value::as_bool);
        Ok((status, is_member))
    }

    pub async fn member_count(&self, chat_id: i64) -> Result<u64, TelegramError> {
        self.bot
            .get_chat_member_count(ChatId(chat_id))
            .await
            .map(u64::from)
            .map_err(|e| self.from_request("getChatMemberCount", e))
    }

    pub async fn leave_chat(&self, chat_id: i64) -> Result<(), TelegramError> {
        self.bot
            .leave_chat(ChatId(chat_id))
            .await
            .map(|_| ())
            .map_err(|e| self.from_request("leaveChat", e))
    }

    /// Download a file by its id: `getFile`, then the bytes from the Bot API's file URL, never
    /// more than `cap` bytes. The error is the reason, for a `media_refused` entry.
    pub async fn download(&self, file_id: &str, cap: u64) -> Result<Vec<u8>, String> {
        if file_id.is_empty() || file_id.len() > 512 {
            return Err("the message names no usable file_id".into());
        }
        let file = self
            .bot
            .get_file(FileId(file_id.to_string()))
            .await
            .map_err(|e| self.from_request("getFile", e).to_string())?;
        let declared = u64::from(file.meta.size);
        if declared > cap {
            return Err(over_cap(declared, cap));
        }
        check_file_path(&file.path)?;
        let mut stream = self.bot.download_file_stream(&file.path);
        let mut out: Vec<u8> = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                format!(
                    "download failed: {}",
                    self.redact(&e.without_url().to_string())
                )
            })?;
            if (out.len() + chunk.len()) as u64 > cap {
                return Err(format!(
                    "the download passed the {cap}-byte limit (getFile declared {declared} bytes); stopped there"
                ));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

pub fn over_cap(size: u64, cap: u64) -> String {
    format!("the file is {size} bytes, over the {cap}-byte limit")
}

/// A chat as the Bot API addresses it: its numeric id, or a public group's `@username`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatKey {
    Id(i64),
    Username(String),
}

impl ChatKey {
    fn param(&self) -> Value {
        match self {
            ChatKey::Id(id) => Value::from(*id),
            ChatKey::Username(u) => Value::from(format!("@{}", u.trim_start_matches('@'))),
        }
    }
}

/// A `file_path` from `getFile` must be a plain relative path: a Bot API server in `--local`
/// mode answers absolute paths on its own disk, which are not fetched (nor ever opened here).
pub fn check_file_path(path: &str) -> Result<(), String> {
    let ok = !path.is_empty()
        && path.len() <= 512
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "getFile gave an unusable file_path {:?} (absolute paths come from a --local Bot API server and are not read)",
            path.chars().take(80).collect::<String>()
        ))
    }
}

enum CappedRead {
    Over,
    Net(reqwest::Error),
}

async fn read_capped(mut resp: reqwest::Response, cap: u64) -> Result<Vec<u8>, CappedRead> {
    if resp.content_length().is_some_and(|n| n > cap) {
        return Err(CappedRead::Over);
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(CappedRead::Net)? {
        if (out.len() + chunk.len()) as u64 > cap {
            return Err(CappedRead::Over);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Long polling with the offset kept across failures: an update is confirmed to Telegram (by
/// the next call's offset) only after the caller handled the batch it came in.
pub struct Poller {
    api: Arc<BotApi>,
    offset: i64,
    timeout_s: u64,
    allowed: &'static [&'static str],
}

impl Poller {
    pub fn new(api: Arc<BotApi>, timeout_s: u64, allowed: &'static [&'static str]) -> Poller {
        Poller {
            api,
            offset: 0,
            timeout_s,
            allowed,
        }
    }

    /// The next offset asked for (one past the newest update handed out).
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// One `getUpdates`. Updates below the offset (a server repeating itself) are dropped, and
    /// so are items without an `update_id`: they could never be confirmed, so they would come
    /// back on every poll.
    pub async fn poll(&mut self) -> Result<Vec<RawUpdate>, TelegramError> {
        let updates = self
            .api
            .get_updates(self.offset, self.timeout_s, self.allowed)
            .await?;
        let offset = self.offset;
        let total = updates.len();
        let fresh: Vec<RawUpdate> = updates
            .into_iter()
            .filter(|u| u.update_id.is_some_and(|id| id >= offset))
            .collect();
        if fresh.len() < total {
            tracing::warn!(
                dropped = total - fresh.len(),
                "getUpdates answered items without an update_id or below the offset; dropped"
            );
        }
        if let Some(max) = fresh.iter().filter_map(|u| u.update_id).max() {
            self.offset = max.saturating_add(1);
        }
        Ok(fresh)
    }
}

/// Capped exponential backoff with jitter.
pub struct Backoff {
    attempt: u32,
    cap: Duration,
}

impl Backoff {
    pub fn new(cap: Duration) -> Backoff {
        Backoff {
            attempt: 0,
            cap: cap.max(Duration::from_millis(100)),
        }
    }

    pub fn next_delay(&mut self) -> Duration {
        let base = Duration::from_millis(200).saturating_mul(1u32 << self.attempt.min(16));
        self.attempt = self.attempt.saturating_add(1);
        base.min(self.cap)
            .mul_f64(0.5 + rand::random::<f64>() * 0.5)
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// How long to wait after a failed call: Telegram's `retry_after` when it gave one (capped),
/// else the backoff.
pub fn wait_after(e: &TelegramError, backoff: &mut Backoff) -> Duration {
    match e {
        TelegramError::RetryAfter { seconds, .. } => Duration::from_secs((*seconds).min(300)),
        _ => backoff.next_delay(),
    }
}

/// A numeric id sent as a number or a string.
pub fn id_of(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "123456789:AAF7-g0gYncWnm5IyfZlpPRqRRv6kNAGlao";

    #[test]
    fn tokens_are_checked_and_never_shown() {
        let t = BotToken::parse(TOKEN, "TEST").unwrap();
        assert_eq!(format!("{t:?}"), "BotToken(<redacted>)");
        assert_eq!(
            t.redact(&format!("GET https://x/bot{TOKEN}/getMe failed")),
            "GET https://x/bot<token>/getMe failed"
        );
        assert_eq!(
            t.redact("secret AAF7-g0gYncWnm5IyfZlpPRqRRv6kNAGlao leaked"),
            "secret <token> leaked"
        );
        for bad in [
            "", "abc", "123:", ":abc", "123:a/b", "123:a?b", "12a:abc", "1:a b",
        ] {
            assert!(
                matches!(
                    BotToken::parse(bad, "LEAKWATCH_TG_TOKEN"),
                    Err(TelegramError::TokenMalformed(v)) if v == "LEAKWATCH_TG_TOKEN"
                ),
                "{bad}"
            );
        }
        let api = BotApi::new("http://127.0.0.1:9/prefix", t).unwrap();
        assert!(!format!("{api:?}").contains("AAF7"));
        assert_eq!(
            api.method_url("getMe").as_str(),
            format!("http://127.0.0.1:9/prefix/bot{TOKEN}/getMe")
        );
    }

    #[tokio::test]
    async fn network_errors_do_not_carry_the_token() {
        // Nothing listens on port 9 of loopback (discard): the call fails at connect.
        let api = BotApi::new("http://127.0.0.1:9", BotToken::parse(TOKEN, "T").unwrap()).unwrap();
        let err = api
            .call_raw("getMe", &serde_json::json!({}), Duration::from_secs(2))
            .await
            .unwrap_err()
            .to_string();
        assert!(!err.contains("AAF7") && !err.contains(TOKEN), "{err}");
        let err = api.get_me().await.unwrap_err().to_string();
        assert!(!err.contains("AAF7"), "{err}");
        let err = api.download("abc", 10).await.unwrap_err();
        assert!(!err.contains("AAF7"), "{err}");
    }

    #[test]
    fn file_paths_from_get_file_are_plain_relative_paths() {
        assert!(check_file_path("documents/file_12.csv").is_ok());
        assert!(check_file_path("photos/file_3.jpg").is_ok());
        for bad in [
            "",
            "/var/lib/telegram-bot-api/123/documents/file_1.csv",
            "../etc/passwd",
            "documents/../../x",
            "documents//x",
            "a?b",
            "a%2f..",
            "x\\y",
        ] {
            assert!(check_file_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn backoff_is_capped() {
        let mut b = Backoff::new(Duration::from_secs(2));
        for _ in 0..40 {
            assert!(b.next_delay() <= Duration::from_secs(2));
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(200));
        let e = TelegramError::RetryAfter {
            method: "x".into(),
            seconds: 7,
        };
        assert_eq!(wait_after(&e, &mut b), Duration::from_secs(7));
    }
}
