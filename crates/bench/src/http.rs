//! A minimal HTTP/1.1 client on hyper: each simulated client owns one keep-alive connection
//! and sends one request at a time on it, which is exactly the load model of the scenarios.
//! Plain TCP to this machine only: no TLS, no proxies from the environment, no pool to hide
//! how many connections there are.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::api::{Error, Result};

/// A server on this machine: where to connect and what to say in `Host`.
#[derive(Debug, Clone)]
pub struct Server {
    pub addr: SocketAddr,
    host: HeaderValue,
}

impl Server {
    pub fn new(addr: SocketAddr) -> Result<Server> {
        let host = HeaderValue::from_str(&addr.to_string()).map_err(|e| Error(format!("host {addr}: {e}")))?;
        Ok(Server { addr, host })
    }

    /// Parses `http://127.0.0.1:8080`, refusing anything that is not this machine: a load
    /// generator must never be aimed at somebody else's server by a typo.
    pub fn local(url: &str) -> Result<Server> {
        let refuse = |why: &str| Error(format!("--url {url}: {why} (e.g. http://127.0.0.1:8080)"));
        let uri: Uri = url.parse().map_err(|_| refuse("not a URL"))?;
        if uri.scheme_str() != Some("http") {
            return Err(refuse("only plain http to this machine"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(refuse("give the server's root, without a path"));
        }
        let ip = match uri.host() {
            Some("localhost") => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Some(host) => host
                .trim_matches(['[', ']'])
                .parse::<IpAddr>()
                .map_err(|_| refuse("the host must be a loopback address"))?,
            None => return Err(refuse("no host")),
        };
        if !ip.is_loopback() {
            return Err(refuse("the host must be a loopback address"));
        }
        Server::new(SocketAddr::new(ip, uri.port_u16().unwrap_or(80)))
    }

    /// A request with the headers every call carries; `auth` is the whole header value.
    pub fn request(
        &self,
        method: Method,
        path: &Uri,
        auth: &HeaderValue,
        body: Option<Bytes>,
    ) -> Result<Request<Full<Bytes>>> {
        let mut request = Request::builder()
            .method(method)
            .uri(path.clone())
            .header(HOST, self.host.clone())
            .header(AUTHORIZATION, auth.clone());
        if body.is_some() {
            request = request.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        request
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| Error(format!("request {path}: {e}")))
    }
}

/// A path (with its query) to send requests to.
pub fn path(text: &str) -> Result<Uri> {
    text.parse().map_err(|e| Error(format!("{text}: {e}")))
}

/// One open connection.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
}

/// Why a request got no HTTP answer; short, because it becomes a key of `error_kinds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Connect,
    Timeout,
    Transport,
}

impl Failure {
    pub fn kind(self) -> &'static str {
        match self {
            Failure::Connect => "connect",
            Failure::Timeout => "timeout",
            Failure::Transport => "transport",
        }
    }
}

/// The status and the whole body of an answer.
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

pub async fn connect(server: &Server) -> std::result::Result<Connection, Failure> {
    let stream = TcpStream::connect(server.addr).await.map_err(|_| Failure::Connect)?;
    // Small requests must leave at once, not wait for Nagle's algorithm.
    stream.set_nodelay(true).map_err(|_| Failure::Connect)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| Failure::Connect)?;
    // The connection's I/O runs beside its user; it ends when the sender is dropped.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(Connection { sender })
}

impl Connection {
    /// Sends a request and reads the answer to its end (so the connection can carry the next
    /// one). After a failure the connection is unusable and must be dropped.
    pub async fn send(
        &mut self,
        request: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> std::result::Result<Answer, Failure> {
        let exchange = async {
            self.sender.ready().await.map_err(|_| Failure::Transport)?;
            let response = self
                .sender
                .send_request(request)
                .await
                .map_err(|_| Failure::Transport)?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|_| Failure::Transport)?
                .to_bytes();
            Ok(Answer { status, body })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(Failure::Timeout))
    }
}

#[cfg(test)]
mod tests {
    use super::Server;

    #[test]
    fn only_this_machine_is_a_target() {
        for url in [
            "http://127.0.0.1:8080",
            "http://localhost:1",
            "http://[::1]:80",
            "http://127.0.0.2/",
        ] {
            assert!(Server::local(url).is_ok(), "{url}");
        }
        for url in [
            "http://10.0.0.1:8080",
            "https://127.0.0.1",
            "http://example.com",
            "http://127.0.0.1:8080/api",
            "nonsense",
        ] {
            assert!(Server::local(url).is_err(), "{url}");
        }
        assert_eq!(
            Server::local("http://localhost:9").unwrap().addr.to_string(),
            "127.0.0.1:9"
        );
    }
}
