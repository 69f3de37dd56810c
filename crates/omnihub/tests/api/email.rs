//! E-mail inboxes: raw MIME from the inbound relay, threaded by message ids, and replies over
//! SMTP to a tiny fake server on 127.0.0.1.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::fixtures::id;
use crate::helpers::{TestApp, json, problem};
use crate::on_both_backends;

on_both_backends!(mails_are_threaded_and_replies_go_out_over_smtp);

const RELAY_SECRET: &str = "relay-secret-0123456789";

/// An SMTP server that accepts every mail and keeps its data.
#[derive(Clone)]
struct Smtp {
    url: String,
    mails: Arc<Mutex<Vec<String>>>,
}

impl Smtp {
    async fn start() -> Smtp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("smtp://{}", listener.local_addr().unwrap());
        let mails = Arc::new(Mutex::new(Vec::new()));
        let kept = mails.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(converse(socket, kept.clone()));
            }
        });
        Smtp { url, mails }
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
}

async fn converse(socket: TcpStream, mails: Arc<Mutex<Vec<String>>>) {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 fake ESMTP\r\n").await.unwrap();
    while let Ok(Some(line)) = lines.next_line().await {
        let verb = line.split_whitespace().next().unwrap_or_default().to_uppercase();
        let answer: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250-fake\r\n250 8BITMIME\r\n",
            "DATA" => {
                write.write_all(b"354 go on\r\n").await.unwrap();
                let mut data = String::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line == "." {
                        break;
                    }
                    data.push_str(&line);
                    data.push('\n');
                }
                mails.lock().unwrap().push(data);
                b"250 kept\r\n"
            }
            "QUIT" => {
                let _ = write.write_all(b"221 bye\r\n").await;
                return;
            }
            _ => b"250 ok\r\n",
        };
        write.write_all(answer).await.unwrap();
    }
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

async fn mails_are_threaded_and_replies_go_out_over_smtp(app: TestApp) {
    let smtp = Smtp::start().await;
    let credentials = json!({"smtp_url": smtp.url, "from_address": "shop@example.org", "inbound_secret": RELAY_SECRET});
    let body = json!({"kind": "email", "name": "Shop mail", "credentials": credentials});
    let inbox = json(app.post("/inboxes", &body).await, 201).await;

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
