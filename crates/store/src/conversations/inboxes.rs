//! Inboxes: connected messaging channels. Their credentials are sealed with the server's
//! secret key before they reach the database and opened only to verify a webhook or send.

use omnihub_domain::conversations::{Credentials, Inbox, InboxDraft, InboxKind, NewInbox};
use omnihub_domain::events::{EventType, NewEvent};
use omnihub_domain::id::{self, Kind};
use omnihub_domain::{Invalid, Timestamp};

use crate::db::Page;
use crate::db::events::append;
use crate::db::{Row, Tx, sql};
use crate::{Error, Store};

fn inbox(row: &Row, agent_ids: Vec<String>) -> Result<Inbox, Error> {
    let kind = row.text("kind")?;
    Ok(Inbox {
        id: row.text("id")?,
        kind: InboxKind::parse(&kind).ok_or_else(|| Error::Corrupt(format!("unknown inbox kind {kind}")))?,
        name: row.text("name")?,
        api_base_url: row.opt_text("api_base_url")?,
        sales_channel_id: row.opt_text("sales_channel_id")?,
        agent_ids,
        version: row.int("version")?,
        created_at: Timestamp(row.int("created_at")?),
        updated_at: Timestamp(row.int("updated_at")?),
    })
}

/// The inbox's agents in their round-robin order.
pub(super) async fn agents_of(tx: &mut Tx, inbox_id: &str) -> Result<Vec<String>, Error> {
    let rows = tx
        .fetch_all(sql("SELECT agent_id FROM inbox_agents WHERE inbox_id = $1 ORDER BY position").bind(inbox_id))
        .await?;
    rows.iter().map(|r| r.text("agent_id")).collect()
}

async fn read_inbox(tx: &mut Tx, id: &str) -> Result<(Inbox, String), Error> {
    let row = tx
        .fetch_optional(sql("SELECT * FROM inboxes WHERE id = $1").bind(id))
        .await?
        .ok_or(Error::NotFound("inbox"))?;
    let agents = agents_of(tx, id).await?;
    Ok((inbox(&row, agents)?, row.text("credentials")?))
}

impl Store {
    async fn check_sales_channel(&self, id: Option<&str>) -> Result<(), Error> {
        let Some(id) = id else { return Ok(()) };
        self.channel(id)
            .await
            .map(drop)
            .map_err(|_| Invalid::one("sales_channel_id", "not_found", "there is no such sales channel").into())
    }

    /// Connects a channel. The answer never shows the credentials again.
    pub async fn create_inbox(&self, new: NewInbox) -> Result<Inbox, Error> {
        let credentials = new.validate(self.destinations)?;
        self.check_sales_channel(new.sales_channel_id.as_deref()).await?;
        let id = id::new(Kind::Inbox);
        let sealed = self
            .secret_key
            .seal(credentials.to_json().to_string().as_bytes(), &id)?;
        let now = self.now();
        let mut tx = self.db.begin().await?;
        tx.execute(
            sql("INSERT INTO inboxes (id, kind, name, credentials, api_base_url, sales_channel_id, version, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $7)")
            .bind(&id)
            .bind(new.kind.as_str())
            .bind(new.name.trim())
            .bind(sealed)
            .bind(new.api_base_url.as_deref().map(str::trim))
            .bind(new.sales_channel_id.as_deref())
            .bind(now.millis()),
        )
        .await?;
        for (position, agent) in (0_i64..).zip(&new.agent_ids) {
            tx.execute(
                sql("INSERT INTO inbox_agents (inbox_id, agent_id, position) VALUES ($1, $2, $3)")
                    .bind(&id)
                    .bind(agent.trim())
                    .bind(position),
            )
            .await?;
        }
        let (created, _) = read_inbox(&mut tx, &id).await?;
        append(&mut tx, now, NewEvent::new(EventType::InboxCreated, &created));
        self.commit(tx).await?;
        Ok(created)
    }

    /// Changes the inbox's name, sales channel and agents from version `version`; credentials,
    /// when given, replace the old ones whole and are sealed anew.
    pub async fn update_inbox(&self, id: &str, draft: InboxDraft, version: i64) -> Result<Inbox, Error> {
        let current = self.inbox(id).await?;
        let credentials = draft.validate(current.kind, self.destinations)?;
        self.check_sales_channel(draft.sales_channel_id.as_deref()).await?;
        let sealed = match &credentials {
            Some(c) => Some(self.secret_key.seal(c.to_json().to_string().as_bytes(), id)?),
            None => None,
        };
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let changed = tx
            .execute(
                sql(
                    "UPDATE inboxes SET name = $3, sales_channel_id = $4, credentials = COALESCE($5, credentials), \
                     version = version + 1, updated_at = $6 WHERE id = $1 AND version = $2",
                )
                .bind(id)
                .bind(version)
                .bind(draft.name.trim())
                .bind(draft.sales_channel_id.as_deref())
                .bind(sealed)
                .bind(now.millis()),
            )
            .await?;
        if changed == 0 {
            let (latest, _) = read_inbox(&mut tx, id).await?;
            return Err(Error::VersionMismatch {
                current: latest.version,
            });
        }
        tx.execute(sql("DELETE FROM inbox_agents WHERE inbox_id = $1").bind(id))
            .await?;
        for (position, agent) in (0_i64..).zip(&draft.agent_ids) {
            tx.execute(
                sql("INSERT INTO inbox_agents (inbox_id, agent_id, position) VALUES ($1, $2, $3)")
                    .bind(id)
                    .bind(agent.trim())
                    .bind(position),
            )
            .await?;
        }
        let (updated, _) = read_inbox(&mut tx, id).await?;
        let mut data = serde_json::to_value(&updated).unwrap_or_default();
        data["credentials_replaced"] = serde_json::Value::Bool(credentials.is_some());
        append(&mut tx, now, NewEvent::new(EventType::InboxUpdated, data));
        self.commit(tx).await?;
        Ok(updated)
    }

    pub async fn inbox(&self, id: &str) -> Result<Inbox, Error> {
        let mut tx = self.db.begin_read().await?;
        Ok(read_inbox(&mut tx, id).await?.0)
    }

    /// The inbox with its credentials opened, to verify a webhook or send a reply.
    pub async fn inbox_with_credentials(&self, id: &str) -> Result<(Inbox, Credentials), Error> {
        let mut tx = self.db.begin_read().await?;
        let (inbox, sealed) = read_inbox(&mut tx, id).await?;
        let opened = self.secret_key.open(&sealed, id)?;
        let value = serde_json::from_slice(&opened).map_err(|e| Error::Corrupt(format!("credentials: {e}")))?;
        let credentials = Credentials::parse(inbox.kind, &value)
            .map_err(|_| Error::Corrupt("stored credentials no longer fit their inbox".into()))?;
        Ok((inbox, credentials))
    }

    pub async fn inboxes(&self, page: &Page) -> Result<(Vec<Inbox>, Option<String>), Error> {
        let mut tx = self.db.begin_read().await?;
        let rows = tx
            .fetch_all(
                sql("SELECT * FROM inboxes WHERE id > $1 ORDER BY id LIMIT $2")
                    .bind(page.after.as_deref().unwrap_or(""))
                    .bind(page.limit + 1),
            )
            .await?;
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            let agents = agents_of(&mut tx, &row.text("id")?).await?;
            items.push(inbox(row, agents)?);
        }
        Ok(page.finish(items, |i| &i.id))
    }
}
