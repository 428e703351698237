//! Configuration: the TOML file every command reads (`--config FILE`, default
//! `config/default.toml`, falling back to the copy compiled into the binary).
//!
//! Unknown keys are errors, so a typo never silently turns a feature off. Every key is
//! documented in `config/default.toml`; this module only gives them types and defaults.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The embedded default, compiled in so a fresh checkout runs with no set-up.
pub const EMBEDDED_DEFAULT: &str = include_str!("../config/default.toml");

/// The path used when no `--config` is given.
pub const DEFAULT_PATH: &str = "config/default.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: invalid config: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: invalid config: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_data_root")]
    pub data_root: PathBuf,
    #[serde(default)]
    pub ledger: LedgerConfig,
    #[serde(default)]
    pub blobs: BlobsConfig,
    #[serde(default)]
    pub adapters: AdaptersConfig,
    #[serde(default)]
    pub capture: CaptureConfig,
    #[serde(default)]
    pub timestamp: TimestampConfig,
    #[serde(default)]
    pub api: ApiConfig,
    #[serde(default)]
    pub simulator: SimulatorConfig,
    #[serde(default)]
    pub matching: MatchingConfig,
    #[serde(default)]
    pub review: ReviewConfig,
    #[serde(default)]
    pub packets: PacketsConfig,
    #[serde(default)]
    pub tracking: TrackingConfig,
    #[serde(default)]
    pub filing: crate::filing::FilingConfig,
    #[serde(default)]
    pub staffbot: StaffBotConfig,
    /// Where this configuration came from, for error messages.
    #[serde(skip)]
    pub source: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerConfig {
    pub origin: String,
    pub key_name: String,
    pub checkpoint_interval_s: u64,
    pub segment_max_bytes: u64,
    pub entry_max_bytes: usize,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig {
            origin: "leakwatch.example/log".into(),
            key_name: "leakwatch.example".into(),
            checkpoint_interval_s: 60,
            segment_max_bytes: 64 * 1024 * 1024,
            entry_max_bytes: 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BlobsConfig {
    pub key_env: String,
    pub key_file: PathBuf,
    pub max_bytes: u64,
}

impl Default for BlobsConfig {
    fn default() -> Self {
        BlobsConfig {
            key_env: "LEAKWATCH_DATA_KEY".into(),
            key_file: PathBuf::from("keys/data.key"),
            max_bytes: 50 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    /// Re-snapshot group info and members this often (recorded only when they changed).
    pub snapshot_interval_s: u64,
    /// While waiting for an invitation, ask the adapter again this often.
    pub join_retry_s: u64,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            snapshot_interval_s: 600,
            join_retry_s: 60,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimestampConfig {
    /// RFC 3161 time-stamp authorities; every signed checkpoint is sent to each.
    pub tsa: Vec<TsaConfig>,
    pub timeout_s: u64,
    /// A failed TSA is tried again after this long.
    pub retry_s: u64,
}

impl Default for TimestampConfig {
    fn default() -> Self {
        TimestampConfig {
            tsa: Vec::new(),
            timeout_s: 20,
            retry_s: 60,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TsaConfig {
    pub url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Where `serve` listens for the HTTP API and the web console (loopback unless a reverse
    /// proxy fronts it).
    pub listen: String,
    /// Mark the console's session cookie `Secure`. Unset: on when `listen` is not a loopback
    /// address (a console reachable from elsewhere must sit behind HTTPS), off on loopback,
    /// where plain HTTP is the norm and a `Secure` cookie would never be sent back.
    pub secure_cookies: Option<bool>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: "127.0.0.1:8077".into(),
            secure_cookies: None,
        }
    }
}

impl ApiConfig {
    /// Whether session cookies carry `Secure` (see [`ApiConfig::secure_cookies`]).
    pub fn cookies_secure(&self) -> bool {
        if let Some(on) = self.secure_cookies {
            return on;
        }
        let host = match self.listen.rsplit_once(':') {
            Some((host, _port)) => host.trim_start_matches('[').trim_end_matches(']'),
            None => self.listen.as_str(),
        };
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        !loopback
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MatchingConfig {
    /// The blind-index HMAC key, 64 hex digits, from this environment variable…
    pub key_env: String,
    /// …or from this file (relative to data_root), created with mode 0600 by the first
    /// `records import` when no key is set. Never written to the ledger, logs or bundles.
    pub key_file: PathBuf,
    /// Where the local index lives (relative to data_root).
    pub index_dir: PathBuf,
    /// Check against a remote platform lookup (tokens only) instead of the local index.
    pub remote_url: Option<String>,
    /// Environment variable holding the remote lookup's bearer token.
    pub remote_token_env: String,
    /// Match every extracted sample during capture (when a source is available).
    pub auto: bool,
}

impl Default for MatchingConfig {
    fn default() -> Self {
        MatchingConfig {
            key_env: "LEAKWATCH_INDEX_KEY".into(),
            key_file: PathBuf::from("keys/index.key"),
            index_dir: PathBuf::from("matching"),
            remote_url: None,
            remote_token_env: "LEAKWATCH_LOOKUP_TOKEN".into(),
            auto: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReviewConfig {
    /// How long a moderator's claim on a finding lasts.
    pub claim_timeout_s: u64,
    /// Police packets need approvals from two different moderators.
    pub four_eyes: bool,
}

impl Default for ReviewConfig {
    fn default() -> Self {
        ReviewConfig {
            claim_timeout_s: 1800,
            four_eyes: true,
        }
    }
}

/// Who files the packets (printed in every packet) and the font of the police PDF.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PacketsConfig {
    pub font: PathBuf,
    pub org_name_zh: String,
    pub org_name_en: String,
    pub contact_email: String,
    pub phone: String,
    pub address: String,
    pub unified_social_credit_code: Option<String>,
    /// The 法释〔2017〕10号 art. 5 threshold class of the data sold: `sensitive` (行踪轨迹 /
    /// 通信内容 / 征信 / 财产, 50), `transaction` (住宿 / 通信记录 / 健康 / 交易, 500) or
    /// `other` (5,000; name + phone + address).
    pub data_category: String,
}

impl Default for PacketsConfig {
    fn default() -> Self {
        PacketsConfig {
            font: PathBuf::from(crate::packets::DEFAULT_FONT_PATH),
            org_name_zh: "示例外卖平台安全团队".into(),
            org_name_en: "Example Delivery Platform Security Team".into(),
            contact_email: "security@platform.example".into(),
            phone: "400-000-0000".into(),
            address: "示例市示例区示例路1号".into(),
            unified_social_credit_code: None,
            data_category: "other".into(),
        }
    }
}

/// Takedown tracking: after a takedown is filed the group is probed on a schedule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrackingConfig {
    pub probe_interval_s: u64,
    /// Raise a `takedown_ignored` finding when the group is still up this long after filing.
    pub escalate_after_days: f64,
}

impl Default for TrackingConfig {
    fn default() -> Self {
        TrackingConfig {
            probe_interval_s: 3600,
            escalate_after_days: 3.0,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatorConfig {
    /// Run the built-in marketplace simulator inside `serve` (the demo set-up).
    pub enabled: bool,
    pub listen: String,
    pub token: Option<String>,
    /// Scenario file; the built-in default when unset or missing.
    pub scenario: Option<PathBuf>,
    /// Submit the scenario's groups at start, as intake staff would (demo only).
    pub submit_groups: bool,
    /// Import the scenario's synthetic platform orders into the local index at start when it is
    /// empty, so the demo can verify samples (demo only).
    pub import_records: bool,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            enabled: false,
            listen: "127.0.0.1:3001".into(),
            token: None,
            scenario: None,
            submit_groups: false,
            import_records: false,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdaptersConfig {
    pub onebot: Vec<OneBotConfig>,
    pub telegram: TelegramConfig,
}

/// The Telegram Bot API's own limit on files a bot may download (`getFile`).
pub const TELEGRAM_FILE_LIMIT: u64 = 20 * 1024 * 1024;

/// The Telegram group adapter: a Bot API bot that staff add to the groups to watch.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelegramConfig {
    pub enabled: bool,
    /// The adapter's name in the ledger (`adapter:<name>`, `telegram:<name>`).
    pub name: String,
    /// The Bot API server; a self-hosted `telegram-bot-api`, or a local fake in tests. Media are
    /// downloaded only from here.
    pub api_url: String,
    /// The environment variable holding the bot token (never put the token in this file).
    pub token_env: String,
    /// Long-polling timeout of `getUpdates` (Telegram allows up to 50 s).
    pub poll_timeout_s: u64,
    /// Larger media are refused (and recorded as refused); the Bot API stops at 20 MB anyway.
    pub media_max_bytes: u64,
    /// Cap of the reconnect backoff when the Bot API fails.
    pub reconnect_max_ms: u64,
}

impl Default for TelegramConfig {
    fn default() -> Self {
        TelegramConfig {
            enabled: false,
            name: "telegram".into(),
            api_url: "https://api.telegram.org".into(),
            token_env: "LEAKWATCH_TG_TOKEN".into(),
            poll_timeout_s: 30,
            media_max_bytes: TELEGRAM_FILE_LIMIT,
            reconnect_max_ms: 30_000,
        }
    }
}

/// What a staff chat may do through the staff bot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StaffRole {
    /// Submits groups (`/submit`).
    Intake,
    /// Reviews findings (`/next`, the card buttons) and receives alerts.
    Moderator,
    /// Reads case summaries.
    Legal,
    /// Submits groups and receives alerts.
    Admin,
}

impl StaffRole {
    pub fn as_str(self) -> &'static str {
        match self {
            StaffRole::Intake => "intake",
            StaffRole::Moderator => "moderator",
            StaffRole::Legal => "legal",
            StaffRole::Admin => "admin",
        }
    }
}

/// One chat on the staff bot's allow-list.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaffChatConfig {
    /// The Telegram chat id (a user's id for a private chat, negative for a group).
    pub id: i64,
    pub role: StaffRole,
    /// Who this chat is in the ledger: its actions are recorded as `tg:<name>`.
    pub name: String,
}

/// The staff bot: a second Telegram bot for trust-and-safety staff.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StaffBotConfig {
    pub enabled: bool,
    pub api_url: String,
    pub token_env: String,
    pub poll_timeout_s: u64,
    pub reconnect_max_ms: u64,
    /// The allow-list: every other chat gets one polite refusal and nothing else.
    pub chats: Vec<StaffChatConfig>,
}

impl Default for StaffBotConfig {
    fn default() -> Self {
        StaffBotConfig {
            enabled: false,
            api_url: "https://api.telegram.org".into(),
            token_env: "LEAKWATCH_STAFFBOT_TOKEN".into(),
            poll_timeout_s: 30,
            reconnect_max_ms: 30_000,
            chats: Vec::new(),
        }
    }
}

/// How leakwatch reaches a OneBot v11 implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OneBotMode {
    /// leakwatch connects to the implementation's WebSocket: `url` (universal), or `api_url`
    /// plus `event_url` (split).
    ForwardWs,
    /// The implementation connects to leakwatch's WebSocket server on `listen`.
    ReverseWs,
    /// Actions over the HTTP API at `url`; events through the reverse WebSocket on `listen`.
    Http,
}

/// Which `get_group_msg_history` the implementation speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HistoryDialect {
    /// NapCat / LLOneBot: `message_seq` + `count`.
    Napcat,
    /// Lagrange.OneBot: `message_id` + `count`.
    Lagrange,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OneBotConfig {
    pub name: String,
    pub mode: OneBotMode,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub api_url: Option<String>,
    #[serde(default)]
    pub event_url: Option<String>,
    #[serde(default)]
    pub listen: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default = "default_dialect")]
    pub history: HistoryDialect,
    #[serde(default = "default_page")]
    pub history_page: u32,
    #[serde(default = "default_action_timeout")]
    pub action_timeout_ms: u64,
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max_ms: u64,
    #[serde(default = "default_media_max")]
    pub media_max_bytes: u64,
    /// Fetch media from loopback / private / link-local addresses. Off except for a local
    /// implementation such as the built-in simulator: a URL in a chat message must never make
    /// leakwatch reach into its own network.
    #[serde(default)]
    pub allow_private_media: bool,
}

fn default_dialect() -> HistoryDialect {
    HistoryDialect::Napcat
}
fn default_page() -> u32 {
    50
}
fn default_action_timeout() -> u64 {
    10_000
}
fn default_reconnect_max() -> u64 {
    30_000
}
fn default_media_max() -> u64 {
    20 * 1024 * 1024
}

fn default_data_root() -> PathBuf {
    PathBuf::from("evidence")
}

impl Config {
    /// Load `path`, or the default location, or the embedded default when neither exists.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.display().to_string(),
                    source,
                })?;
                Config::parse(&text, &p.display().to_string())
            }
            None => {
                let p = Path::new(DEFAULT_PATH);
                if p.exists() {
                    Config::load(Some(p))
                } else {
                    Config::parse(EMBEDDED_DEFAULT, "<embedded default config>")
                }
            }
        }
    }

    pub fn parse(text: &str, source: &str) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: source.to_string(),
            // toml's message spans several lines (a caret diagram); keep the first and the
            // location so the error stays one line.
            message: one_line(&e.to_string()),
        })?;
        config.source = source.to_string();
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: self.source.clone(),
            message,
        };
        if self.ledger.origin.trim().is_empty() || self.ledger.origin.contains('\n') {
            return Err(invalid("ledger.origin must be one non-empty line".into()));
        }
        let name = &self.ledger.key_name;
        if name.is_empty() || name.contains(char::is_whitespace) || name.contains('+') {
            return Err(invalid(format!(
                "ledger.key_name {name:?} must be non-empty, without spaces or '+'"
            )));
        }
        if self.ledger.segment_max_bytes < 4096 {
            return Err(invalid(
                "ledger.segment_max_bytes must be at least 4096".into(),
            ));
        }
        if self.ledger.entry_max_bytes < 1024 || self.ledger.entry_max_bytes > 64 * 1024 * 1024 {
            return Err(invalid(
                "ledger.entry_max_bytes must be between 1024 and 67108864".into(),
            ));
        }
        if self.ledger.checkpoint_interval_s == 0 {
            return Err(invalid(
                "ledger.checkpoint_interval_s must be at least 1".into(),
            ));
        }
        self.validate_telegram().map_err(invalid)?;
        Ok(())
    }

    /// `[adapters.telegram]` and `[staffbot]`: checked even when disabled, so turning one on
    /// later does not reveal an old mistake at start.
    fn validate_telegram(&self) -> Result<(), String> {
        let tg = &self.adapters.telegram;
        check_api_url("adapters.telegram.api_url", &tg.api_url)?;
        check_env_name("adapters.telegram.token_env", &tg.token_env)?;
        if tg.name.trim().is_empty() || tg.name.len() > 64 {
            return Err("adapters.telegram.name must be 1 to 64 characters".into());
        }
        if !(1..=50).contains(&tg.poll_timeout_s) {
            return Err("adapters.telegram.poll_timeout_s must be between 1 and 50".into());
        }
        if tg.media_max_bytes == 0 {
            return Err("adapters.telegram.media_max_bytes must be at least 1".into());
        }
        let sb = &self.staffbot;
        check_api_url("staffbot.api_url", &sb.api_url)?;
        check_env_name("staffbot.token_env", &sb.token_env)?;
        if !(1..=50).contains(&sb.poll_timeout_s) {
            return Err("staffbot.poll_timeout_s must be between 1 and 50".into());
        }
        let mut ids = std::collections::HashSet::new();
        for chat in &sb.chats {
            let name_ok = !chat.name.is_empty()
                && chat.name.len() <= 64
                && chat
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            if !name_ok {
                return Err(format!(
                    "staffbot.chats: name {:?} (chat {}) must be 1 to 64 of A-Z a-z 0-9 _ - .",
                    chat.name, chat.id
                ));
            }
            if !ids.insert(chat.id) {
                return Err(format!("staffbot.chats: chat {} is listed twice", chat.id));
            }
        }
        if sb.enabled && sb.chats.is_empty() {
            return Err(
                "staffbot is enabled but staffbot.chats is empty: it would answer nobody".into(),
            );
        }
        if tg.enabled && sb.enabled && tg.token_env == sb.token_env && tg.api_url == sb.api_url {
            return Err(
                "adapters.telegram and staffbot need two different bots (token_env is the same)"
                    .into(),
            );
        }
        Ok(())
    }

    pub fn ledger_dir(&self) -> PathBuf {
        self.data_root.join("ledger")
    }
    pub fn blobs_dir(&self) -> PathBuf {
        self.data_root.join("blobs")
    }
    pub fn state_dir(&self) -> PathBuf {
        self.data_root.join("state")
    }
    pub fn keys_dir(&self) -> PathBuf {
        self.data_root.join("keys")
    }
    /// Where bundles exported through the API, the console and police packets are kept.
    pub fn bundles_dir(&self) -> PathBuf {
        self.data_root.join("bundles")
    }
    pub fn data_key_file(&self) -> PathBuf {
        self.data_root.join(&self.blobs.key_file)
    }
}

fn check_api_url(key: &str, value: &str) -> Result<(), String> {
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
            if u.query().is_some() || u.fragment().is_some() {
                return Err(format!("{key} must not have a query or fragment"));
            }
            Ok(())
        }
        _ => Err(format!("{key} {value:?} is not an http(s) URL")),
    }
}

fn check_env_name(key: &str, value: &str) -> Result<(), String> {
    if value.is_empty()
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(format!(
            "{key} {value:?} must name an environment variable (A-Z 0-9 _)"
        ));
    }
    Ok(())
}

/// Fold a multi-line message into one line.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.chars().all(|c| c == '|' || c == '^' || c == ' '))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_parses() {
        let c = Config::parse(EMBEDDED_DEFAULT, "embedded").unwrap();
        assert_eq!(c.data_root, PathBuf::from("evidence"));
        assert_eq!(c.ledger.checkpoint_interval_s, 60);
    }

    #[test]
    fn unknown_key_is_one_line_error_naming_the_file() {
        let err = Config::parse("data_root = \"x\"\n[ledger]\norigni = \"a\"\n", "my.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("my.toml: invalid config:"), "{err}");
        assert!(err.contains("origni"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn telegram_sections_default_off_and_validate() {
        let c = Config::parse(EMBEDDED_DEFAULT, "embedded").unwrap();
        assert!(!c.adapters.telegram.enabled && !c.staffbot.enabled);
        assert_eq!(c.adapters.telegram.token_env, "LEAKWATCH_TG_TOKEN");
        assert_eq!(c.adapters.telegram.media_max_bytes, TELEGRAM_FILE_LIMIT);
        assert_eq!(c.staffbot.token_env, "LEAKWATCH_STAFFBOT_TOKEN");
        let ok = Config::parse(
            "[adapters.telegram]\nenabled = true\napi_url = \"http://127.0.0.1:9\"\n\
             [staffbot]\nenabled = true\n[[staffbot.chats]]\nid = -100123\nrole = \"moderator\"\nname = \"alice\"\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(ok.staffbot.chats[0].role, StaffRole::Moderator);
        for (bad, needle) in [
            ("[staffbot]\nenabled = true\n", "answer nobody"),
            (
                "[staffbot]\n[[staffbot.chats]]\nid = 1\nrole = \"boss\"\nname = \"a\"\n",
                "boss",
            ),
            (
                "[staffbot]\n[[staffbot.chats]]\nid = 1\nrole = \"admin\"\nname = \"a b\"\n",
                "name",
            ),
            (
                "[staffbot]\n[[staffbot.chats]]\nid = 1\nrole = \"admin\"\nname = \"a\"\n[[staffbot.chats]]\nid = 1\nrole = \"legal\"\nname = \"b\"\n",
                "twice",
            ),
            ("[adapters.telegram]\napi_url = \"ftp://x\"\n", "api_url"),
            (
                "[adapters.telegram]\npoll_timeout_s = 99\n",
                "poll_timeout_s",
            ),
            ("[adapters.telegram]\ntoken_env = \"A B\"\n", "token_env"),
            ("[adapters.telegram]\ntoken = \"123:abc\"\n", "token"),
        ] {
            let err = Config::parse(bad, "t.toml").unwrap_err().to_string();
            assert!(err.contains(needle), "{bad}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn bad_key_name_rejected() {
        let err = Config::parse("[ledger]\nkey_name = \"a b\"\n", "c.toml").unwrap_err();
        assert!(err.to_string().contains("key_name"));
    }
}
