//! The SMTP server of an e-mail inbox, read from its `smtp_url`, and the rule of how the
//! courier may talk to it: encrypted before anything is sent — STARTTLS required on
//! `smtp://` (port 587 by default), TLS from the start on `smtps://` (465) — and in the clear
//! only where asked for with `?tls=none`, without credentials, to this machine's own relay.

use std::net::IpAddr;

use percent_encoding::percent_decode_str;
use url::Url;

use crate::destinations;

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtp://`: STARTTLS is required; a server that does not offer it is not sent to.
    StartTls,
    /// `smtps://`: TLS from the first byte.
    Implicit,
    /// `smtp://…?tls=none`: in the clear, to a relay on this machine only.
    Plain,
}

/// An SMTP server as the courier connects to it.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpServer {
    /// The name (or address) the certificate must be for; IPv6 without brackets.
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    /// User name and password, percent-decoded.
    pub login: Option<(String, String)>,
}

impl std::fmt::Debug for SmtpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpServer")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("user", &self.login.as_ref().map(|(user, _)| user))
            .finish()
    }
}

/// Why an `smtp_url` cannot be used; the message names what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadSmtpUrl {
    #[error("must be smtp://user:password@host:587 (STARTTLS) or smtps://user:password@host:465 (TLS)")]
    Invalid,
    #[error("tls=none sends everything in the clear: only to a relay on this machine (localhost)")]
    PlainToRemote,
    #[error("a password is never sent in the clear: use STARTTLS (smtp://) or TLS (smtps://)")]
    PlainWithPassword,
}

impl BadSmtpUrl {
    /// The code of the field error.
    pub fn code(&self) -> &'static str {
        match self {
            BadSmtpUrl::Invalid => "invalid",
            BadSmtpUrl::PlainToRemote | BadSmtpUrl::PlainWithPassword => "tls_required",
        }
    }
}

/// Reads an inbox's `smtp_url`. The only query it takes is `tls`: `required` (the default
/// of `smtp://`) or `none`.
pub fn smtp_server(text: &str) -> Result<SmtpServer, BadSmtpUrl> {
    let url = Url::parse(text.trim()).map_err(|_| BadSmtpUrl::Invalid)?;
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or(BadSmtpUrl::Invalid)?;
    let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    let mut tls = None;
    for (name, value) in url.query_pairs() {
        match (name.as_ref(), tls) {
            ("tls", None) => tls = Some(value.into_owned()),
            _ => return Err(BadSmtpUrl::Invalid),
        }
    }
    let (security, default_port) = match (url.scheme(), tls.as_deref()) {
        ("smtp", None | Some("required")) => (SmtpSecurity::StartTls, 587),
        ("smtp", Some("none")) => (SmtpSecurity::Plain, 25),
        ("smtps", None) => (SmtpSecurity::Implicit, 465),
        _ => return Err(BadSmtpUrl::Invalid),
    };
    let login = login(&url)?;
    if security == SmtpSecurity::Plain {
        if login.is_some() {
            return Err(BadSmtpUrl::PlainWithPassword);
        }
        if !is_this_machine(&host) {
            return Err(BadSmtpUrl::PlainToRemote);
        }
    }
    Ok(SmtpServer {
        host,
        port: url.port().unwrap_or(default_port),
        security,
        login,
    })
}

fn login(url: &Url) -> Result<Option<(String, String)>, BadSmtpUrl> {
    let decode = |text: &str| {
        percent_decode_str(text)
            .decode_utf8()
            .map(|t| t.into_owned())
            .map_err(|_| BadSmtpUrl::Invalid)
    };
    match (url.username(), url.password()) {
        ("", None) => Ok(None),
        (user, password) => Ok(Some((decode(user)?, decode(password.unwrap_or_default())?))),
    }
}

/// Loopback, by address in any form or by the name that always means it.
fn is_this_machine(host: &str) -> bool {
    match destinations::host_address(host) {
        Some(IpAddr::V4(v4)) => v4.is_loopback(),
        Some(IpAddr::V6(v6)) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        None => destinations::is_local_name(host),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_requires_starttls_and_smtps_is_tls_from_the_start() {
        let submission = smtp_server("smtp://shop%40example.org:p%3Ass@mail.example.org").unwrap();
        assert_eq!(submission.security, SmtpSecurity::StartTls);
        assert_eq!((submission.host.as_str(), submission.port), ("mail.example.org", 587));
        assert_eq!(
            submission.login,
            Some(("shop@example.org".to_owned(), "p:ss".to_owned()))
        );
        let required = smtp_server("smtp://u:p@mail.example.org:2525?tls=required").unwrap();
        assert_eq!((required.security, required.port), (SmtpSecurity::StartTls, 2525));
        let implicit = smtp_server("smtps://u:p@[2001:4860::1]").unwrap();
        assert_eq!(
            (implicit.security, implicit.host.as_str(), implicit.port),
            (SmtpSecurity::Implicit, "2001:4860::1", 465)
        );
    }

    #[test]
    fn the_clear_is_only_for_a_relay_on_this_machine_and_never_with_a_password() {
        let local = smtp_server("smtp://localhost?tls=none").unwrap();
        assert_eq!(
            (local.security, local.port, local.login),
            (SmtpSecurity::Plain, 25, None)
        );
        assert!(smtp_server("smtp://127.1:2525?tls=none").is_ok());
        assert!(smtp_server("smtp://[::1]:25?tls=none").is_ok());
        assert_eq!(
            smtp_server("smtp://mail.example.org:25?tls=none"),
            Err(BadSmtpUrl::PlainToRemote)
        );
        assert_eq!(
            smtp_server("smtp://10.0.0.5:25?tls=none"),
            Err(BadSmtpUrl::PlainToRemote)
        );
        assert_eq!(
            smtp_server("smtp://user:secret@localhost:25?tls=none"),
            Err(BadSmtpUrl::PlainWithPassword)
        );
    }

    #[test]
    fn anything_else_is_not_an_smtp_url() {
        for wrong in [
            "http://mail.example.org",
            "smtp://",
            "smtp://mail.example.org?tls=opportunistic",
            "smtps://mail.example.org?tls=none",
            "smtp://mail.example.org?tls=none&tls=required",
            "smtp://mail.example.org?port=25",
            "not a url",
        ] {
            assert_eq!(smtp_server(wrong), Err(BadSmtpUrl::Invalid), "{wrong}");
        }
    }
}
