//! The `[filing]` configuration table: how often to retry, and which routes each packet kind
//! takes. Unknown keys are errors, so a typo never silently drops a route; everything that can
//! be checked without a connection (TLS policy, addresses, URLs, secrets being present) is
//! checked when the filers are built.
//!
//! See the module docs of [`crate::filing`] for a complete example.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{FileDropFiler, Filer, FilingError, KINDS, SmtpFiler, WebhookFiler};

/// The `[filing]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilingConfig {
    /// `[filing.retry]`: applied to each route separately.
    pub retry: RetryPolicy,
    /// `[[filing.routes]]`: every route whose `kind` matches a packet receives it.
    pub routes: Vec<Route>,
}

/// `[filing.retry]`: exponential backoff with jitter (see [`super::backoff_delay`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Tries per route, the first included (default 4, at least 1).
    pub attempts: u32,
    /// Wait after the first failed try, in milliseconds (default 2000); doubles after each.
    pub initial_backoff_ms: u64,
    /// Upper bound of any wait, in milliseconds (default 60000).
    pub max_backoff_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            initial_backoff_ms: 2000,
            max_backoff_ms: 60_000,
        }
    }
}

/// One `[[filing.routes]]` entry: a packet kind and where such packets go. The `channel` key
/// selects the variant and with it the other keys allowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "channel", rename_all = "snake_case")]
pub enum Route {
    /// `channel = "smtp"`
    Smtp(SmtpRoute),
    /// `channel = "webhook"`
    Webhook(WebhookRoute),
    /// `channel = "file_drop"`
    FileDrop(FileDropRoute),
}

/// `channel = "smtp"`: an e-mail with the body as text and every file attached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpRoute {
    /// Packet kind: `takedown`, `police` or `breach_notice`.
    pub kind: String,
    /// Submission server host name or IP address.
    pub host: String,
    /// Server port; default 25 for `none`, 587 for `starttls`, 465 for `tls`.
    #[serde(default)]
    pub port: Option<u16>,
    /// `none` (only to a loopback host), `starttls` (required, not opportunistic) or `tls`
    /// (implicit TLS). Certificates are checked against the Web PKI roots.
    pub tls: TlsMode,
    /// Sender, `Name <addr>` or `addr`; its domain also ends our `Message-ID`.
    pub from: String,
    /// Recipients, at least one.
    pub to: Vec<String>,
    /// Login name; set together with `password_env`, or neither.
    #[serde(default)]
    pub username: Option<String>,
    /// Name of the environment variable holding the password (never the password itself).
    #[serde(default)]
    pub password_env: Option<String>,
    /// Connect, read and write time-out in milliseconds (default 30000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

/// How an SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    None,
    Starttls,
    Tls,
}

/// `channel = "webhook"`: a signed JSON POST (format in `webhook.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookRoute {
    /// Packet kind: `takedown`, `police` or `breach_notice`.
    pub kind: String,
    /// `https://...`; plain `http://` only to a loopback host.
    pub url: String,
    /// Name of the environment variable holding the HMAC key. Exactly one of `secret_env` and
    /// `secret_file` is set.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// File holding the HMAC key (trailing newlines are ignored).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Whole-request time-out in milliseconds (default 30000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

/// `channel = "file_drop"`: `<dir>/<packet_id>/` with the files, `body.txt` and
/// `manifest.json`, written atomically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDropRoute {
    /// Packet kind: `takedown`, `police` or `breach_notice`.
    pub kind: String,
    /// Directory that receives one sub-directory per packet; created if missing.
    pub dir: PathBuf,
}

fn default_timeout_ms() -> u64 {
    30_000
}

impl FilingConfig {
    /// Makes relative file-drop directories relative to `base` (the data root).
    pub fn resolve_dirs(&mut self, base: &std::path::Path) {
        for r in &mut self.routes {
            if let Route::FileDrop(f) = r
                && f.dir.is_relative()
            {
                f.dir = base.join(&f.dir);
            }
        }
    }
}

impl Route {
    /// The packet kind this route carries.
    pub fn kind(&self) -> &str {
        match self {
            Route::Smtp(r) => &r.kind,
            Route::Webhook(r) => &r.kind,
            Route::FileDrop(r) => &r.kind,
        }
    }

    /// `smtp`, `webhook` or `file_drop`.
    pub fn channel(&self) -> &'static str {
        match self {
            Route::Smtp(_) => "smtp",
            Route::Webhook(_) => "webhook",
            Route::FileDrop(_) => "file_drop",
        }
    }

    /// Builds the filer, reading any secret now; makes no connection.
    pub fn filer(&self) -> Result<Box<dyn Filer>, FilingError> {
        if !KINDS.contains(&self.kind()) {
            return Err(FilingError::Config(format!(
                "kind = {:?} is not one of {}",
                self.kind(),
                KINDS.join(", ")
            )));
        }
        Ok(match self {
            Route::Smtp(r) => Box::new(SmtpFiler::new(r)?),
            Route::Webhook(r) => Box::new(WebhookFiler::new(r)?),
            Route::FileDrop(r) => Box::new(FileDropFiler::new(r)?),
        })
    }
}

impl RetryPolicy {
    pub fn validate(&self) -> Result<(), FilingError> {
        if self.attempts == 0 {
            return Err(FilingError::Config(
                "retry.attempts must be at least 1".into(),
            ));
        }
        if self.initial_backoff_ms > self.max_backoff_ms {
            return Err(FilingError::Config(format!(
                "retry.initial_backoff_ms ({}) is larger than retry.max_backoff_ms ({})",
                self.initial_backoff_ms, self.max_backoff_ms
            )));
        }
        Ok(())
    }
}

impl FilingConfig {
    /// Parses a `[filing]` table given on its own (the keys inside it, without the header).
    pub fn from_toml(text: &str) -> Result<FilingConfig, FilingError> {
        toml::from_str(text).map_err(|e| FilingError::Config(e.to_string()))
    }

    /// The filers for every route of `kind`, in configuration order. An error if the kind has
    /// no route (a packet that would go nowhere must not look sent) or a route is invalid.
    pub fn filers_for(&self, kind: &str) -> Result<Vec<Box<dyn Filer>>, FilingError> {
        self.retry.validate()?;
        let mut filers = Vec::new();
        for (index, route) in self.routes.iter().enumerate() {
            if route.kind() == kind {
                filers.push(route.filer().map_err(|e| in_route(e, index, route))?);
            }
        }
        if filers.is_empty() {
            return Err(FilingError::Config(format!(
                "no route configured for packet kind {kind:?}"
            )));
        }
        Ok(filers)
    }

    /// Builds every route once, so that a bad route or a missing secret stops start-up rather
    /// than the first filing.
    pub fn validate(&self) -> Result<(), FilingError> {
        self.retry.validate()?;
        for (index, route) in self.routes.iter().enumerate() {
            route.filer().map_err(|e| in_route(e, index, route))?;
        }
        Ok(())
    }
}

/// Prefixes a configuration error with the route it came from.
fn in_route(error: FilingError, index: usize, route: &Route) -> FilingError {
    match error {
        FilingError::Config(message) => FilingError::Config(format!(
            "routes[{index}] ({} for {:?}): {message}",
            route.channel(),
            route.kind()
        )),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ServiceConfig {
        filing: FilingConfig,
    }

    fn parse(text: &str) -> Result<FilingConfig, String> {
        toml::from_str::<ServiceConfig>(text)
            .map(|c| c.filing)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn documented_example_parses_with_the_documented_defaults() {
        let config = parse(include_str!("example.toml")).unwrap();
        assert_eq!(config.retry, RetryPolicy::default());
        assert_eq!(config.routes.len(), 4);
        let Route::Smtp(smtp) = &config.routes[1] else {
            panic!("second route is not smtp: {:?}", config.routes[1]);
        };
        assert_eq!(smtp.tls, TlsMode::Starttls);
        assert_eq!(smtp.port, Some(587));
        assert_eq!(config.routes[2].kind(), "police");
        assert_eq!(config.routes[2].channel(), "file_drop");
    }

    #[test]
    fn defaults_apply_when_keys_are_left_out() {
        let config = FilingConfig::from_toml(
            "[[routes]]\nkind = \"police\"\nchannel = \"file_drop\"\ndir = \"/tmp/x\"\n",
        )
        .unwrap();
        assert_eq!(config.retry.attempts, 4);
        assert_eq!(config.retry.initial_backoff_ms, 2000);
        assert_eq!(config.retry.max_backoff_ms, 60_000);
        assert_eq!(
            FilingConfig::from_toml("").unwrap(),
            FilingConfig::default()
        );
    }

    #[test]
    fn unknown_keys_are_refused_everywhere() {
        let cases = [
            "[filing]\nrouts = []\n",
            "[filing.retry]\nattempt = 3\n",
            "[[filing.routes]]\nkind = \"police\"\nchannel = \"file_drop\"\ndir = \"/x\"\nmode = 1\n",
            "[[filing.routes]]\nkind = \"police\"\nchannel = \"smtp\"\nhost = \"localhost\"\n\
             tls = \"none\"\nfrom = \"a@b.c\"\nto = [\"d@e.f\"]\npasword_env = \"X\"\n",
            "[[filing.routes]]\nkind = \"police\"\nchannel = \"webhook\"\n\
             url = \"https://x.example\"\nsecret_env = \"X\"\nsecret = \"inline\"\n",
            "[[filing.routes]]\nkind = \"police\"\nchannel = \"fax\"\n",
            "[[filing.routes]]\nkind = \"police\"\nchannel = \"smtp\"\nhost = \"localhost\"\n\
             tls = \"maybe\"\nfrom = \"a@b.c\"\nto = [\"d@e.f\"]\n",
        ];
        for text in cases {
            assert!(parse(text).is_err(), "accepted:\n{text}");
        }
    }

    fn smtp_route(host: &str, tls: TlsMode) -> Route {
        Route::Smtp(SmtpRoute {
            kind: "police".into(),
            host: host.into(),
            port: None,
            tls,
            from: "Leakwatch <leakwatch@example.org>".into(),
            to: vec!["cybercrime@police.example".into()],
            username: None,
            password_env: None,
            timeout_ms: 1000,
        })
    }

    #[test]
    fn plaintext_smtp_to_another_host_is_refused_from_config_alone() {
        // 192.0.2.0/24 (TEST-NET-1) and example.org: nothing would answer, and no connection is
        // attempted: the error is a config error, returned at once.
        for host in ["mail.example.org", "192.0.2.10"] {
            let config = FilingConfig {
                retry: RetryPolicy::default(),
                routes: vec![smtp_route(host, TlsMode::None)],
            };
            let started = std::time::Instant::now();
            let error = config.filers_for("police").err().unwrap();
            assert!(
                matches!(&error, FilingError::Config(m) if m.contains("loopback") && m.contains("routes[0]")),
                "{error}"
            );
            assert!(started.elapsed() < std::time::Duration::from_millis(500));
            assert!(config.validate().is_err());
        }
        for host in ["127.0.0.1", "localhost", "::1"] {
            let config = FilingConfig {
                retry: RetryPolicy::default(),
                routes: vec![smtp_route(host, TlsMode::None)],
            };
            assert_eq!(config.filers_for("police").unwrap().len(), 1, "{host}");
        }
        // With TLS any host is fine.
        let config = FilingConfig {
            retry: RetryPolicy::default(),
            routes: vec![smtp_route("mail.example.org", TlsMode::Tls)],
        };
        let filers = config.filers_for("police").unwrap();
        assert_eq!(filers[0].channel(), "smtp");
        assert!(filers[0].recipient().contains("mail.example.org:465"));
    }

    #[test]
    fn plain_http_webhook_to_another_host_is_refused() {
        let route = |url: &str| {
            Route::Webhook(WebhookRoute {
                kind: "takedown".into(),
                url: url.into(),
                secret_env: Some("PATH".into()), // always set; the value is irrelevant here
                secret_file: None,
                timeout_ms: 1000,
            })
        };
        assert!(matches!(
            route("http://abuse.example.org/x").filer().err(),
            Some(FilingError::Config(_))
        ));
        assert!(route("http://127.0.0.1:9/x").filer().is_ok());
        assert!(route("https://abuse.example.org/x").filer().is_ok());
        assert!(route("ftp://abuse.example.org/x").filer().is_err());
    }

    #[test]
    fn secrets_must_be_named_exactly_once_and_present() {
        let webhook = |env: Option<&str>, file: Option<&str>| {
            Route::Webhook(WebhookRoute {
                kind: "takedown".into(),
                url: "https://x.example/".into(),
                secret_env: env.map(String::from),
                secret_file: file.map(PathBuf::from),
                timeout_ms: 1000,
            })
            .filer()
            .err()
            .map(|e| e.to_string())
        };
        assert!(webhook(None, None).unwrap().contains("exactly one"));
        assert!(
            webhook(Some("PATH"), Some("/x"))
                .unwrap()
                .contains("exactly one")
        );
        let missing = webhook(Some("LEAKWATCH_TEST_SURELY_UNSET_VAR"), None).unwrap();
        assert!(
            missing.contains("LEAKWATCH_TEST_SURELY_UNSET_VAR"),
            "{missing}"
        );
        assert!(
            webhook(None, Some("/nonexistent/leakwatch.key"))
                .unwrap()
                .contains("/nonexistent/leakwatch.key")
        );

        let Route::Smtp(mut smtp) = smtp_route("localhost", TlsMode::None) else {
            unreachable!()
        };
        smtp.username = Some("u".into());
        let error = Route::Smtp(smtp).filer().err().unwrap().to_string();
        assert!(error.contains("password_env"), "{error}");
    }

    #[test]
    fn kinds_without_routes_and_unknown_kinds_are_errors() {
        let config = FilingConfig {
            retry: RetryPolicy::default(),
            routes: vec![smtp_route("localhost", TlsMode::None)],
        };
        let error = config.filers_for("takedown").err().unwrap().to_string();
        assert!(error.contains("no route"), "{error}");

        let Route::Smtp(mut smtp) = smtp_route("localhost", TlsMode::None) else {
            unreachable!()
        };
        smtp.kind = "breach-notice".into();
        let config = FilingConfig {
            retry: RetryPolicy::default(),
            routes: vec![Route::Smtp(smtp)],
        };
        let error = config.validate().err().unwrap().to_string();
        assert!(error.contains("breach_notice"), "{error}");
    }

    #[test]
    fn retry_policy_is_checked() {
        let mut config = FilingConfig {
            retry: RetryPolicy::default(),
            routes: vec![smtp_route("localhost", TlsMode::None)],
        };
        config.retry.attempts = 0;
        assert!(config.filers_for("police").is_err());
        config.retry = RetryPolicy {
            attempts: 2,
            initial_backoff_ms: 10,
            max_backoff_ms: 5,
        };
        assert!(config.validate().is_err());
    }
}
