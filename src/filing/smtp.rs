//! E-mail filing: one multipart message per packet (the body as text, every file attached),
//! sent through an SMTP submission server with `lettre`'s blocking transport.
//!
//! We set our own `Message-ID` (`<packet_id.random@sender-domain>`) and keep it in the receipt
//! together with the server's reply to DATA (which usually names its queue id), so that a later
//! question "did the police get it?" can be answered from the server's own logs. The random part
//! is new on every try: a receiver that got two copies after a lost reply sees two ids that both
//! begin with the packet id.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment as MailAttachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};

use super::{
    Filer, FilingError, FilingReceipt, FilingRequest, Reply, SmtpRoute, TlsMode, error_chain,
    is_loopback_host, read_secret_env,
};

/// Sends packets as e-mail; built from an [`SmtpRoute`].
pub struct SmtpFiler {
    host: String,
    port: u16,
    tls: TlsMode,
    from: Mailbox,
    to: Vec<Mailbox>,
    credentials: Option<Credentials>,
    timeout: Duration,
    /// Right-hand side of our `Message-ID`s: the sender's domain.
    id_domain: String,
}

impl SmtpFiler {
    /// Checks the route and reads the password; makes no connection.
    pub fn new(route: &SmtpRoute) -> Result<SmtpFiler, FilingError> {
        let config = |m: String| FilingError::Config(m);
        if route.host.is_empty() {
            return Err(config("host is empty".into()));
        }
        if route.tls == TlsMode::None && !is_loopback_host(&route.host) {
            return Err(config(format!(
                "tls = \"none\" would send evidence in clear text; it is allowed only to a \
                 loopback host, not {:?}",
                route.host
            )));
        }
        let from: Mailbox = route
            .from
            .parse()
            .map_err(|e| config(format!("from = {:?}: {e}", route.from)))?;
        if route.to.is_empty() {
            return Err(config("to is empty".into()));
        }
        let to = route
            .to
            .iter()
            .map(|addr| {
                addr.parse::<Mailbox>()
                    .map_err(|e| config(format!("to = {addr:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let credentials = match (&route.username, &route.password_env) {
            (Some(user), Some(var)) => {
                let password = read_secret_env(var, "password_env")?;
                let password = String::from_utf8(password)
                    .map_err(|_| config(format!("password_env: {var} is not UTF-8")))?;
                Some(Credentials::new(user.clone(), password))
            }
            (None, None) => None,
            _ => {
                return Err(config(
                    "username and password_env must be set together".into(),
                ));
            }
        };
        if route.timeout_ms == 0 {
            return Err(config("timeout_ms must be positive".into()));
        }
        let port = route.port.unwrap_or(match route.tls {
            TlsMode::None => 25,
            TlsMode::Starttls => 587,
            TlsMode::Tls => 465,
        });
        Ok(SmtpFiler {
            host: route.host.clone(),
            port,
            tls: route.tls,
            id_domain: from.email.domain().to_string(),
            from,
            to,
            credentials,
            timeout: Duration::from_millis(route.timeout_ms),
        })
    }

    fn target(&self) -> String {
        format!("smtp://{}:{}", self.host, self.port)
    }

    fn timeout_ms(&self) -> u64 {
        u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX)
    }

    fn message(&self, req: &FilingRequest, message_id: &str) -> Result<Message, FilingError> {
        let invalid = |detail: String| FilingError::InvalidRequest {
            packet_id: req.packet_id.clone(),
            detail,
        };
        let mut parts = MultiPart::mixed().singlepart(SinglePart::plain(req.body_text.clone()));
        for attachment in &req.attachments {
            let content_type = ContentType::parse(&attachment.content_type).map_err(|e| {
                invalid(format!(
                    "attachment {:?}: content type {:?}: {e}",
                    attachment.name, attachment.content_type
                ))
            })?;
            // Control characters have no business in a file name and could break the header.
            let name: String = attachment
                .name
                .chars()
                .filter(|c| !c.is_control())
                .collect();
            parts = parts
                .singlepart(MailAttachment::new(name).body(attachment.bytes.clone(), content_type));
        }
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(req.subject.clone())
            .message_id(Some(message_id.to_string()))
            .date_now();
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        builder
            .multipart(parts)
            .map_err(|e| invalid(format!("cannot build the e-mail: {e}")))
    }

    fn transport(&self) -> Result<SmtpTransport, FilingError> {
        let tls_parameters = || {
            TlsParameters::new(self.host.clone()).map_err(|e| {
                FilingError::Config(format!("{}: cannot set up TLS: {e}", self.target()))
            })
        };
        let tls = match self.tls {
            TlsMode::None => Tls::None,
            TlsMode::Starttls => Tls::Required(tls_parameters()?),
            TlsMode::Tls => Tls::Wrapper(tls_parameters()?),
        };
        let mut builder = SmtpTransport::builder_dangerous(self.host.clone())
            .port(self.port)
            .tls(tls)
            .timeout(Some(self.timeout));
        if let Some(credentials) = &self.credentials {
            builder = builder.credentials(credentials.clone());
        }
        Ok(builder.build())
    }

    /// Maps lettre's error onto ours by what a retry could change.
    fn classify(&self, error: lettre::transport::smtp::Error) -> FilingError {
        let target = self.target();
        if let Some(code) = error.status() {
            let code = code.to_string().parse::<u16>().unwrap_or(554);
            let text = std::error::Error::source(&error)
                .map(|s| s.to_string())
                .unwrap_or_default();
            return FilingError::Refused {
                target,
                reply: Reply::Smtp(code),
                answer: format!("{code} {text}").trim_end().to_string(),
            };
        }
        let detail = error_chain(&error);
        if is_io_timeout(&error) {
            return FilingError::Timeout {
                target,
                timeout_ms: self.timeout_ms(),
                detail,
            };
        }
        let message = error.to_string();
        // lettre's kinds are private; its Display names them.
        if message.starts_with("Connection error") {
            FilingError::ConnectFailed { target, detail }
        } else if error.is_response() || message.starts_with("network error") {
            // EOF or a reset mid-conversation, or a reply cut short.
            FilingError::Dropped { target, detail }
        } else if error.is_tls() {
            FilingError::ConnectFailed {
                target,
                detail: format!("TLS: {detail}"),
            }
        } else {
            FilingError::Protocol { target, detail }
        }
    }
}

impl Filer for SmtpFiler {
    fn channel(&self) -> &str {
        "smtp"
    }

    fn recipient(&self) -> String {
        let to: Vec<String> = self.to.iter().map(|m| m.email.to_string()).collect();
        format!("{} via {}", to.join(", "), self.target())
    }

    fn file(&self, req: &FilingRequest) -> Result<FilingReceipt, FilingError> {
        req.validate()?;
        let message_id = format!(
            "<{}.{:016x}@{}>",
            req.packet_id,
            rand::random::<u64>(),
            self.id_domain
        );
        let message = self.message(req, &message_id)?;
        let response = self
            .transport()?
            .send(&message)
            .map_err(|e| self.classify(e))?;
        let text: Vec<&str> = response.message().collect();
        Ok(FilingReceipt {
            channel: "smtp".into(),
            recipient: self.recipient(),
            message_id: Some(message_id),
            server_answer: format!("{} {}", response.code(), text.join(" ")),
        })
    }
}

/// A socket read time-out shows up as `WouldBlock` on Linux (EAGAIN), `TimedOut` elsewhere.
fn is_io_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            );
        }
        source = cause.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filing::sink::{SmtpFault, SmtpSink};
    use crate::filing::test_support::{request, run_with_retry, runtime};
    use crate::filing::{AttemptFailure, Outcome, sha256_hex};
    use mail_parser::MimeHeaders;
    use std::net::SocketAddr;
    use std::time::Instant;

    fn filer_for(addr: SocketAddr, timeout_ms: u64) -> SmtpFiler {
        SmtpFiler::new(&SmtpRoute {
            kind: "police".into(),
            host: addr.ip().to_string(),
            port: Some(addr.port()),
            tls: TlsMode::None,
            from: "Leakwatch <leakwatch@filing.example>".into(),
            to: vec![
                "cybercrime@police.example".into(),
                "Duty Desk <duty@police.example>".into(),
            ],
            username: None,
            password_env: None,
            timeout_ms,
        })
        .unwrap()
    }

    fn loopback() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    #[test]
    fn packet_arrives_intact_with_our_message_id() {
        let rt = runtime();
        let outdir = tempfile::tempdir().unwrap();
        let sink = rt
            .block_on(SmtpSink::start(
                loopback(),
                Some(outdir.path().to_path_buf()),
            ))
            .unwrap();
        let filer = filer_for(sink.addr(), 2000);
        let req = request("lw-police-00aa11bb22cc33dd");

        let receipt = filer.file(&req).unwrap();

        let messages = sink.messages();
        assert_eq!(messages.len(), 1);
        let received = &messages[0];
        assert_eq!(received.mail_from, "leakwatch@filing.example");
        assert_eq!(
            received.rcpt_to,
            ["cybercrime@police.example", "duty@police.example"]
        );
        assert_eq!(receipt.channel, "smtp");
        assert!(
            receipt.server_answer.starts_with("250 ")
                && receipt.server_answer.contains(&received.queue_id),
            "{}",
            receipt.server_answer
        );
        assert!(receipt.recipient.contains("cybercrime@police.example"));

        let parsed = mail_parser::MessageParser::default()
            .parse(&received.raw)
            .unwrap();
        assert_eq!(parsed.subject(), Some(req.subject.as_str()));
        assert_eq!(
            parsed.body_text(0).unwrap().replace("\r\n", "\n"),
            req.body_text
        );
        let attachments: Vec<_> = parsed.attachments().collect();
        assert_eq!(attachments.len(), 2);
        for (got, want) in attachments.iter().zip(&req.attachments) {
            assert_eq!(got.attachment_name(), Some(want.name.as_str()));
            assert_eq!(sha256_hex(got.contents()), sha256_hex(&want.bytes));
        }
        let message_id = receipt.message_id.unwrap();
        assert_eq!(
            Some(format!("<{}>", parsed.message_id().unwrap())),
            Some(message_id.clone())
        );
        assert!(message_id.starts_with("<lw-police-00aa11bb22cc33dd."));
        assert!(message_id.ends_with("@filing.example>"));

        // The .eml on disk is the stored message byte for byte.
        let eml = received.eml_path.as_ref().unwrap();
        assert_eq!(std::fs::read(eml).unwrap(), received.raw);
    }

    #[test]
    fn refusal_is_not_retried() {
        let rt = runtime();
        let sink = rt.block_on(SmtpSink::start(loopback(), None)).unwrap();
        sink.set_fault(Some(SmtpFault::Refuse));
        let filer = filer_for(sink.addr(), 2000);

        let (outcome, attempts, slept) =
            run_with_retry(&filer, &request("lw-police-1"), 4, &|_| {});

        let Outcome::Failed {
            attempts: n,
            last_error,
        } = outcome
        else {
            panic!("filed despite Refuse");
        };
        assert_eq!(n, 1);
        assert!(matches!(
            last_error,
            FilingError::Refused {
                reply: Reply::Smtp(550),
                ..
            }
        ));
        assert!(last_error.to_string().contains("550"), "{last_error}");
        assert_eq!(attempts.len(), 1);
        assert!(matches!(
            &attempts[0].result,
            Err(AttemptFailure { retryable: false, message }) if message.contains("5.7.1")
        ));
        assert!(slept.is_empty());
        assert!(sink.messages().is_empty());
    }

    #[test]
    fn temporary_failure_is_retried_until_it_clears() {
        let rt = runtime();
        let sink = rt.block_on(SmtpSink::start(loopback(), None)).unwrap();
        sink.set_fault(Some(SmtpFault::TempFail));
        let filer = filer_for(sink.addr(), 2000);

        // The server recovers while we back off.
        let (outcome, attempts, slept) =
            run_with_retry(&filer, &request("lw-police-2"), 4, &|_| {
                sink.set_fault(None)
            });

        assert!(matches!(outcome, Outcome::Filed(_)), "{outcome:?}");
        assert_eq!(attempts.len(), 2);
        assert!(matches!(
            &attempts[0].result,
            Err(AttemptFailure { retryable: true, message }) if message.contains("451")
        ));
        assert!(attempts[1].result.is_ok());
        assert_eq!(slept.len(), 1);
        assert_eq!(sink.messages().len(), 1);
    }

    #[test]
    fn stalled_server_times_out_on_every_attempt() {
        let rt = runtime();
        let sink = rt.block_on(SmtpSink::start(loopback(), None)).unwrap();
        sink.set_fault(Some(SmtpFault::Stall));
        let filer = filer_for(sink.addr(), 700);
        let started = Instant::now();

        let (outcome, attempts, slept) =
            run_with_retry(&filer, &request("lw-police-3"), 3, &|_| {});

        let Outcome::Failed {
            attempts: n,
            last_error,
        } = outcome
        else {
            panic!("filed despite Stall");
        };
        assert_eq!(n, 3);
        assert!(
            matches!(
                last_error,
                FilingError::Timeout {
                    timeout_ms: 700,
                    ..
                }
            ),
            "{last_error:?}"
        );
        assert_eq!(attempts.len(), 3);
        for attempt in &attempts {
            assert!(
                matches!(&attempt.result, Err(f) if f.retryable),
                "{attempt:?}"
            );
            assert!(attempt.duration_ms >= 600, "{attempt:?}");
        }
        assert_eq!(slept.len(), 2);
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn dropped_connection_is_retried() {
        let rt = runtime();
        let sink = rt.block_on(SmtpSink::start(loopback(), None)).unwrap();
        sink.set_fault(Some(SmtpFault::Drop));
        let filer = filer_for(sink.addr(), 2000);

        let (outcome, attempts, _) = run_with_retry(&filer, &request("lw-police-4"), 3, &|_| {});
        assert!(
            matches!(
                outcome,
                Outcome::Failed {
                    attempts: 3,
                    last_error: FilingError::Dropped { .. }
                }
            ),
            "{outcome:?}"
        );
        assert!(
            attempts
                .iter()
                .all(|a| matches!(&a.result, Err(f) if f.retryable))
        );

        // And once the connection holds, the next try gets through.
        let (outcome, attempts, _) = run_with_retry(&filer, &request("lw-police-4"), 3, &|_| {
            sink.set_fault(None)
        });
        assert!(matches!(outcome, Outcome::Filed(_)), "{outcome:?}");
        assert_eq!(attempts.len(), 2);
        assert_eq!(sink.messages().len(), 1);
    }

    #[test]
    fn nothing_listening_is_a_retryable_connect_failure() {
        // Bind and close to find a port that refuses.
        let port = std::net::TcpListener::bind(loopback())
            .unwrap()
            .local_addr()
            .unwrap();
        let filer = filer_for(port, 1000);
        let error = filer.file(&request("lw-police-5")).err().unwrap();
        assert!(
            matches!(error, FilingError::ConnectFailed { .. }),
            "{error:?}"
        );
        assert!(error.retryable());
        assert!(
            error
                .to_string()
                .contains(&format!("smtp://127.0.0.1:{}", port.port()))
        );
    }

    #[test]
    fn bad_content_type_is_an_invalid_request() {
        let rt = runtime();
        let sink = rt.block_on(SmtpSink::start(loopback(), None)).unwrap();
        let filer = filer_for(sink.addr(), 1000);
        let mut req = request("lw-police-6");
        req.attachments[0].content_type = "not a type".into();
        let error = filer.file(&req).err().unwrap();
        assert!(
            matches!(error, FilingError::InvalidRequest { .. }),
            "{error:?}"
        );
        assert!(sink.messages().is_empty());
    }
}
