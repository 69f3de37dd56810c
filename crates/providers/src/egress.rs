//! The one way out: every request the hub makes of its own — webhook deliveries, replies
//! through providers' APIs, mail over SMTP — goes to a destination the rule of
//! [`omnihub_domain::destinations`] allows. The rule was checked on the URL when it was
//! registered; here it is checked on the addresses the name resolves to when connecting, and
//! the connection is made to an address that passed, so that a name resolving elsewhere later
//! (DNS rebinding) gains nothing.
//!
//! What went wrong is told in a few fixed words ("destination not allowed", "connection
//! refused", "timed out"), never with the far side's answer or the addresses tried: a caller
//! who registers URLs must not learn what answers inside the network.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use lettre::Tokio1Executor;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::{AsyncSmtpTransport, AsyncSmtpTransportBuilder};
use omnihub_domain::conversations::smtp::{SmtpSecurity, SmtpServer};
use omnihub_domain::destinations::{Destinations, host_address};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Host;

/// Where the hub may connect, and whom it trusts over TLS beside the system's roots.
#[derive(Clone, Default)]
pub struct Egress {
    destinations: Destinations,
    /// PEM certificates trusted as roots beside the system's (a company's own CA).
    extra_roots: Arc<Vec<u8>>,
}

/// Why nothing was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("destination not allowed")]
    NotAllowed,
    #[error("the server's name does not resolve")]
    Unresolved,
}

#[derive(Debug, thiserror::Error)]
#[error("the extra CA certificates cannot be read: {0}")]
pub struct BadRoots(String);

impl Egress {
    /// `extra_roots`: PEM certificates to trust beside the system's, or empty.
    pub fn new(destinations: Destinations, extra_roots: Vec<u8>) -> Result<Egress, BadRoots> {
        if !extra_roots.is_empty() {
            reqwest::Certificate::from_pem_bundle(&extra_roots).map_err(|e| BadRoots(e.to_string()))?;
            Certificate::from_pem(&extra_roots).map_err(|e| BadRoots(e.to_string()))?;
        }
        Ok(Egress {
            destinations,
            extra_roots: Arc::new(extra_roots),
        })
    }

    /// An HTTP client that connects only where the rule allows. Redirects are not followed:
    /// a receiver answers where it was registered, and a redirect would lead past the rule's
    /// registration check. No proxy is used: it would resolve names where the rule cannot
    /// see.
    pub fn http_client(&self, timeout: Duration, user_agent: &str) -> Result<HttpClient, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(user_agent)
            .dns_resolver(Checked(self.destinations));
        if !self.extra_roots.is_empty() {
            for root in reqwest::Certificate::from_pem_bundle(&self.extra_roots)? {
                builder = builder.add_root_certificate(root);
            }
        }
        Ok(HttpClient {
            client: builder.build()?,
            destinations: self.destinations,
        })
    }

    /// The address to connect to for `host` and `port`: the first the name resolves to that
    /// the rule allows.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, Refused> {
        let found = tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| Refused::Unresolved)?;
        allowed(self.destinations, found).next().ok_or(Refused::NotAllowed)
    }

    /// A transport to the SMTP server `server`, connecting to `address` (resolved and checked
    /// with [`Egress::resolve`]) and verifying the certificate against the server's name.
    pub fn smtp_transport(
        &self,
        server: &SmtpServer,
        address: SocketAddr,
        timeout: Duration,
    ) -> Result<AsyncSmtpTransport<Tokio1Executor>, lettre::transport::smtp::Error> {
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(address.ip().to_string())
            .port(address.port())
            .timeout(Some(timeout));
        builder = match server.security {
            SmtpSecurity::StartTls => builder.tls(Tls::Required(self.tls_for(&server.host)?)),
            SmtpSecurity::Implicit => builder.tls(Tls::Wrapper(self.tls_for(&server.host)?)),
            SmtpSecurity::Plain => builder.tls(Tls::None),
        };
        Ok(with_login(builder, server).build())
    }

    fn tls_for(&self, host: &str) -> Result<TlsParameters, lettre::transport::smtp::Error> {
        let mut parameters = TlsParameters::builder(host.to_owned());
        if !self.extra_roots.is_empty() {
            parameters = parameters.add_root_certificate(Certificate::from_pem(&self.extra_roots)?);
        }
        parameters.build_rustls()
    }
}

fn with_login(builder: AsyncSmtpTransportBuilder, server: &SmtpServer) -> AsyncSmtpTransportBuilder {
    match &server.login {
        Some((user, password)) => builder.credentials(Credentials::new(user.clone(), password.clone())),
        None => builder,
    }
}

fn allowed(destinations: Destinations, found: impl Iterator<Item = SocketAddr>) -> impl Iterator<Item = SocketAddr> {
    found.filter(move |address| destinations.allows(address.ip()))
}

/// Resolves names as the system does and keeps only the addresses the rule allows.
struct Checked(Destinations);

impl Resolve for Checked {
    fn resolve(&self, name: Name) -> Resolving {
        let (destinations, host) = (self.0, name.as_str().to_owned());
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let addresses: Vec<SocketAddr> = allowed(destinations, found).collect();
            if addresses.is_empty() {
                return Err(Box::new(Refused::NotAllowed) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

/// An HTTP client whose requests go only where the rule allows.
#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    destinations: Destinations,
}

impl HttpClient {
    /// A POST to `url`. A host written as an address is checked here: the resolver is only
    /// asked about names, whose every address it checks.
    pub fn post(&self, url: &str) -> Result<reqwest::RequestBuilder, Refused> {
        let parsed = url::Url::parse(url).map_err(|_| Refused::Unresolved)?;
        let literal = match parsed.host().ok_or(Refused::Unresolved)? {
            Host::Ipv4(address) => Some(IpAddr::V4(address)),
            Host::Ipv6(address) => Some(IpAddr::V6(address)),
            Host::Domain(name) => host_address(name),
        };
        if literal.is_some_and(|address| !self.destinations.allows(address)) {
            return Err(Refused::NotAllowed);
        }
        Ok(self.client.post(parsed))
    }
}

/// What went wrong with a request that got no answer, in a few words.
pub fn failure(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        return "timed out";
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause.downcast_ref::<Refused>() == Some(&Refused::NotAllowed) {
            return "destination not allowed";
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return "connection refused",
                std::io::ErrorKind::TimedOut => return "timed out",
                _ => {}
            }
        }
        source = cause.source();
    }
    if error.is_connect() {
        "could not connect"
    } else {
        "the request failed"
    }
}

/// Whether the request was refused by the rule rather than failing on the way.
pub fn not_allowed(error: &reqwest::Error) -> bool {
    failure(error) == "destination not allowed"
}
