//! E-mail inboxes: raw MIME from the inbound relay, threaded by message ids, and replies over
//! SMTP to a tiny fake server on 127.0.0.1.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;

use crate::fixtures::id;
use crate::helpers::{TestApp, json, problem};
use crate::on_both_backends;

on_both_backends!(
    mails_are_threaded_and_replies_go_out_over_smtp,
    a_server_without_starttls_gets_neither_the_password_nor_the_mail,
    the_clear_is_only_asked_for_and_only_to_this_machine,
);

const RELAY_SECRET: &str = "relay-secret-0123456789";

/// Whether the fake SMTP server offers STARTTLS.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Offer {
    StartTls,
    Cleartext,
}

/// An SMTP server that accepts every mail and keeps its data and every command it heard;
/// offering STARTTLS, it upgrades with the test certificate (`tests/fixtures/tls`: a test CA,
/// which the test servers trust as `--extra-ca-file`, and `localhost`'s certificate and key).
#[derive(Clone)]
struct Smtp {
    port: u16,
    mails: Arc<Mutex<Vec<String>>>,
    commands: Arc<Mutex<Vec<String>>>,
}

impl Smtp {
    async fn start(offer: Offer) -> Smtp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let smtp = Smtp {
            port,
            mails: Arc::default(),
            commands: Arc::default(),
        };
        let server = smtp.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(server.clone().converse(socket, offer));
            }
        });
        smtp
    }

    /// `smtp://user:password@localhost:<port>`: STARTTLS required, by the name on the
    /// certificate.
    fn url(&self) -> String {
        format!("smtp://shop%40example.org:s3cret@localhost:{}", self.port)
    }

    fn commands(&self) -> Vec<String> {
        self.commands.lock().unwrap().clone()
    }

    async fn wait_for(&self, count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mails = self.mails.lock().unwrap().clone();
            if mails.len() >= count {
                return mails;
            }
            assert!(Instant::now() < deadline, "expected {count} mails");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn converse(self, socket: TcpStream, offer: Offer) {
        let mut plain = BufStream::new(socket);
        plain.write_all(b"220 fake ESMTP\r\n").await.unwrap();
        plain.flush().await.unwrap();
        let extensions: &[u8] = match offer {
            Offer::StartTls => b"250-fake\r\n250-STARTTLS\r\n250 8BITMIME\r\n",
            Offer::Cleartext => b"250-fake\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n",
        };
        if !self.dialogue(&mut plain, extensions).await {
            return;
        }
        let tls = tokio_rustls::TlsAcceptor::from(server_tls());
        let Ok(secure) = tls.accept(plain.into_inner()).await else {
            return;
        };
        let mut secure = BufStream::new(secure);
        self.dialogue(&mut secure, b"250-fake\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n")
            .await;
    }

    /// Answers commands until the client quits (false) or asks for STARTTLS (true).
    async fn dialogue<S: AsyncRead + AsyncWrite + Unpin>(&self, stream: &mut BufStream<S>, extensions: &[u8]) -> bool {
        let mut line = String::new();
        loop {
            line.clear();
            if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                return false;
            }
            let command = line.trim_end().to_owned();
            self.commands.lock().unwrap().push(command.clone());
            let verb = command.split_whitespace().next().unwrap_or_default().to_uppercase();
            let answer: &[u8] = match verb.as_str() {
                "EHLO" | "HELO" => extensions,
                "STARTTLS" => {
                    stream.write_all(b"220 go ahead\r\n").await.unwrap();
                    stream.flush().await.unwrap();
                    return true;
                }
                "AUTH" => b"235 welcome\r\n",
                "DATA" => {
                    stream.write_all(b"354 go on\r\n").await.unwrap();
                    stream.flush().await.unwrap();
                    let data = read_data(stream).await;
                    self.mails.lock().unwrap().push(data);
                    b"250 kept\r\n"
                }
                "QUIT" => {
                    let _ = stream.write_all(b"221 bye\r\n").await;
                    let _ = stream.flush().await;
                    return false;
                }
                _ => b"250 ok\r\n",
            };
            stream.write_all(answer).await.unwrap();
            stream.flush().await.unwrap();
        }
    }
}

async fn read_data<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut BufStream<S>) -> String {
    let (mut data, mut line) = (String::new(), String::new());
    loop {
        line.clear();
        if stream.read_line(&mut line).await.unwrap_or(0) == 0 || line.trim_end() == "." {
            return data;
        }
        data.push_str(line.trim_end_matches(['\r', '\n']));
        data.push('\n');
    }
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

/// `localhost`'s certificate (signed by the test CA) and key.
fn server_tls() -> Arc<rustls::ServerConfig> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(fixture("server.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(fixture("server.key")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    Arc::new(config)
}

fn mail(from: &str, message_id: &str, in_reply_to: Option<&str>, text: &str) -> String {
    let thread = in_reply_to.map_or(String::new(), |id| format!("In-Reply-To: {id}\r\nReferences: {id}\r\n"));
    format!(
        "From: {from}\r\nTo: shop@example.org\r\nSubject: Pickup\r\nMessage-ID: {message_id}\r\n{thread}\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n"
    )
}

async fn relay(app: &TestApp, inbox: &Value, raw: &str, secret: Option<&str>) -> reqwest::Response {
    let mut request = app
        .client
        .post(inbox["webhook_url"].as_str().unwrap())
        .header("content-type", "message/rfc822")
        .body(raw.to_owned());
    if let Some(secret) = secret {
        request = request.bearer_auth(secret);
    }
    request.send().await.unwrap()
}

async fn email_inbox(app: &TestApp, smtp_url: &str) -> Value {
    let credentials = json!({"smtp_url": smtp_url, "from_address": "shop@example.org", "inbound_secret": RELAY_SECRET});
    let body = json!({"kind": "email", "name": "Shop mail", "credentials": credentials});
    json(app.post("/inboxes", &body).await, 201).await
}

/// Ann writes in; answers the conversation's id.
async fn ann_writes(app: &TestApp, inbox: &Value) -> String {
    let first = mail("Ann Lee <ann@example.com>", "<first@mail.example.com>", None, "Hello?");
    json(relay(app, inbox, &first, Some(RELAY_SECRET)).await, 200).await;
    let list = json(app.get(&format!("/conversations?inbox_id={}", id(inbox))).await, 200).await;
    list["data"][0]["id"].as_str().unwrap().to_owned()
}

async fn answer(app: &TestApp, conversation_id: &str) -> Value {
    let path = format!("/conversations/{conversation_id}/messages");
    json(app.post(&path, &json!({"text": "Yes, from tomorrow."})).await, 201).await
}

/// The attack: a server on the way (or a downgrading man in the middle) that does not offer
/// STARTTLS. The hub sends it neither its login nor the customer's mail, and the reply is
/// recorded as failed with the reason.
async fn a_server_without_starttls_gets_neither_the_password_nor_the_mail(app: TestApp) {
    let smtp = Smtp::start(Offer::Cleartext).await;
    let inbox = email_inbox(&app, &smtp.url()).await;
    let conversation_id = ann_writes(&app, &inbox).await;
    let sent = answer(&app, &conversation_id).await;
    assert_eq!(sent["status"], "failed", "{sent}");
    assert!(sent["error"].as_str().unwrap().contains("STARTTLS"), "{sent}");
    let commands = smtp.commands();
    assert!(commands.iter().any(|c| c.starts_with("EHLO")), "{commands:?}");
    assert!(
        !commands.iter().any(|c| c.starts_with("AUTH") || c.starts_with("MAIL")),
        "{commands:?}"
    );
    assert!(smtp.mails.lock().unwrap().is_empty());
}

/// `?tls=none` sends in the clear, and only to a relay on this machine without a password.
async fn the_clear_is_only_asked_for_and_only_to_this_machine(app: TestApp) {
    for (url, code) in [
        ("smtp://mail.example.org:25?tls=none", "tls_required"),
        ("smtp://user:secret@localhost:25?tls=none", "tls_required"),
        ("smtp://mail.example.org?tls=opportunistic", "invalid"),
    ] {
        let credentials = json!({"smtp_url": url, "from_address": "shop@example.org", "inbound_secret": RELAY_SECRET});
        let body = json!({"kind": "email", "name": "Shop mail", "credentials": credentials});
        let refused = problem(app.post("/inboxes", &body).await, 422, "validation_failed").await;
        assert_eq!(refused["errors"][0]["field"], "credentials.smtp_url", "{url}");
        assert_eq!(refused["errors"][0]["code"], code, "{url}");
    }
    let smtp = Smtp::start(Offer::Cleartext).await;
    let inbox = email_inbox(&app, &format!("smtp://localhost:{}?tls=none", smtp.port)).await;
    let remote = json!({"name": "Shop mail", "credentials": {"smtp_url": "smtp://10.1.2.3?tls=none",
        "from_address": "shop@example.org", "inbound_secret": RELAY_SECRET}});
    let refused = problem(
        app.patch(&format!("/inboxes/{}", id(&inbox)), &remote).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(refused["errors"][0]["code"], "tls_required");
    let conversation_id = ann_writes(&app, &inbox).await;
    assert_eq!(answer(&app, &conversation_id).await["status"], "sent");
    assert!(smtp.wait_for(1).await[0].contains("Yes, from tomorrow."));
}

async fn mails_are_threaded_and_replies_go_out_over_smtp(app: TestApp) {
    let smtp = Smtp::start(Offer::StartTls).await;
    let inbox = email_inbox(&app, &smtp.url()).await;

    let first = mail(
        "Ann Lee <Ann@Example.com>",
        "<first@mail.example.com>",
        None,
        "Can I pick it up in Berlin?",
    );
    problem(
        relay(&app, &inbox, &first, Some("wrong")).await,
        401,
        "invalid_signature",
    )
    .await;
    problem(relay(&app, &inbox, &first, None).await, 401, "invalid_signature").await;
    let stored = json(relay(&app, &inbox, &first, Some(RELAY_SECRET)).await, 200).await;
    assert_eq!(stored["received"], 1);
    let again = json(relay(&app, &inbox, &first, Some(RELAY_SECRET)).await, 200).await;
    assert_eq!(again["duplicates"], 1);

    let list = json(app.get(&format!("/conversations?inbox_id={}", id(&inbox))).await, 200).await;
    let conversation_id = list["data"][0]["id"].as_str().unwrap().to_owned();
    let seen = json(app.get(&format!("/conversations/{conversation_id}")).await, 200).await;
    assert_eq!(seen["messages"][0]["text"], "Can I pick it up in Berlin?");
    assert_eq!(seen["context"]["customer"]["identities"][0]["value"], "ann@example.com");

    let answer = json!({"text": "Yes, from tomorrow."});
    let path = format!("/conversations/{conversation_id}/messages");
    let sent = json(app.post(&path, &answer).await, 201).await;
    assert_eq!(sent["status"], "sent", "{sent}");
    let ours = format!("<{}@example.org>", sent["id"].as_str().unwrap());
    assert_eq!(sent["provider_message_id"], ours.as_str());
    let delivered = smtp.wait_for(1).await[0].clone();
    let commands = smtp.commands();
    let upgraded = commands.iter().position(|c| c == "STARTTLS").expect("STARTTLS");
    let login = commands.iter().position(|c| c.starts_with("AUTH")).expect("a login");
    assert!(upgraded < login, "the login went after the upgrade: {commands:?}");
    assert!(
        delivered.contains("In-Reply-To: <first@mail.example.com>"),
        "{delivered}"
    );
    assert!(delivered.contains(&format!("Message-ID: {ours}")), "{delivered}");
    assert!(delivered.contains("Yes, from tomorrow."), "{delivered}");

    // Ann answers from her work address: the reply joins the thread it answers.
    let reply = mail(
        "ann.lee@work.example",
        "<second@work.example>",
        Some(&ours),
        "Great, thanks!",
    );
    json(relay(&app, &inbox, &reply, Some(RELAY_SECRET)).await, 200).await;
    let list = json(app.get(&format!("/conversations?inbox_id={}", id(&inbox))).await, 200).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
    let seen = json(app.get(&format!("/conversations/{conversation_id}")).await, 200).await;
    assert_eq!(seen["messages"][2]["text"], "Great, thanks!");

    let not_mail = json(relay(&app, &inbox, "no headers at all", Some(RELAY_SECRET)).await, 200).await;
    assert_eq!(not_mail["ignored"], 1);
}
