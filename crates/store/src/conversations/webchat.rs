//! Visitors of the web chat widget: a session is a visitor id and a token that only the
//! visitor's browser holds; the store keeps a hash of the token.

use omnihub_domain::id::{self, Kind};
use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};

use crate::db::sql;
use crate::{Error, Store};

/// A new visitor, with the token shown this once.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WebchatSession {
    pub visitor_id: String,
    pub token: String,
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Store {
    pub async fn start_webchat_session(&self, inbox_id: &str) -> Result<WebchatSession, Error> {
        let session = WebchatSession {
            visitor_id: id::new(Kind::WebchatVisitor),
            token: format!("wct_{}", Alphanumeric.sample_string(&mut rand::rng(), 40)),
        };
        let (inbox_id, clock, row) = (inbox_id.to_owned(), self.clock.clone(), session.clone());
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(
                    sql("INSERT INTO webchat_visitors (id, inbox_id, token_hash, created_at) VALUES ($1, $2, $3, $4)")
                        .bind(&row.visitor_id)
                        .bind(&inbox_id)
                        .bind(token_hash(&row.token))
                        .bind(clock.now().millis()),
                )
                .await?;
                Ok(())
            })
        })
        .await?;
        Ok(session)
    }

    /// The visitor of the inbox that holds `token`.
    pub async fn webchat_visitor(&self, inbox_id: &str, token: &str) -> Result<Option<String>, Error> {
        let row = self
            .db
            .fetch_optional(
                sql("SELECT id FROM webchat_visitors WHERE token_hash = $1 AND inbox_id = $2")
                    .bind(token_hash(token))
                    .bind(inbox_id),
            )
            .await?;
        row.map(|r| r.text("id")).transpose()
    }

    /// The visitor's conversation, once they have written.
    pub async fn webchat_conversation(&self, inbox_id: &str, visitor_id: &str) -> Result<Option<String>, Error> {
        let row = self
            .db
            .fetch_optional(
                sql("SELECT id FROM conversations WHERE inbox_id = $1 AND contact_address = $2")
                    .bind(inbox_id)
                    .bind(visitor_id),
            )
            .await?;
        row.map(|r| r.text("id")).transpose()
    }
}
