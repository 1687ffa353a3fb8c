//! E-mail over SMTP (`lettre`): STARTTLS (required, not opportunistic), TLS from the first
//! byte, or none for a local relay; the bundled Mozilla roots plus an optional private CA;
//! a login when configured. A transport is built per notifier and kept.

use std::time::Duration;

use flowgate_config::SmtpTls;
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::Attempt;

/// One notifier's SMTP transport and envelope.
pub(super) struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

/// What an email notifier is configured with.
pub(super) struct Setup<'a> {
    pub host: &'a str,
    pub port: u16,
    pub tls: SmtpTls,
    pub ca_file: Option<&'a std::path::Path>,
    pub credentials: Option<(&'a str, &'a str)>,
    pub from: &'a str,
    pub to: &'a [String],
    pub timeout: Duration,
    /// The name this host gives in `EHLO`.
    pub hello: &'a str,
}

impl Mailer {
    pub(super) fn new(s: &Setup<'_>) -> Result<Mailer, String> {
        let params = || -> Result<TlsParameters, String> {
            let mut b = TlsParameters::builder(s.host.to_string());
            if let Some(path) = s.ca_file {
                let pem =
                    std::fs::read(path).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                b = b.add_root_certificate(cert);
            }
            b.build_rustls().map_err(|e| format!("TLS: {e}"))
        };
        let tls = match s.tls {
            SmtpTls::Starttls => Tls::Required(params()?),
            SmtpTls::Tls => Tls::Wrapper(params()?),
            SmtpTls::None => Tls::None,
        };
        let mut t = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host)
            .port(s.port)
            .tls(tls)
            .timeout(Some(s.timeout))
            .hello_name(ClientId::Domain(s.hello.to_string()));
        if let Some((user, password)) = s.credentials {
            t = t.credentials(Credentials::new(user.to_string(), password.to_string()));
        }
        let from = s
            .from
            .parse::<Mailbox>()
            .map_err(|e| format!("from {:?}: {e}", s.from))?;
        let to =
            s.to.iter()
                .map(|t| t.parse::<Mailbox>().map_err(|e| format!("to {t:?}: {e}")))
                .collect::<Result<Vec<_>, _>>()?;
        Ok(Mailer {
            transport: t.build(),
            from,
            to,
        })
    }

    /// Sends one message; a transient SMTP answer (4xx) or a lost connection may be tried
    /// again, a permanent one (5xx) not.
    pub(super) async fn send(&self, subject: &str, text: String, id: &str) -> Attempt {
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .message_id(Some(format!("<{id}@flowgate>")));
        for t in &self.to {
            b = b.to(t.clone());
        }
        let message = match b.body(text) {
            Ok(m) => m,
            Err(e) => return Attempt::Failed(format!("message: {e}")),
        };
        match self.transport.send(message).await {
            Ok(_) => Attempt::Sent,
            Err(e) if e.is_permanent() => Attempt::Failed(format!("SMTP: {e}")),
            Err(e) => Attempt::Retry(format!("SMTP: {e}"), None),
        }
    }
}
