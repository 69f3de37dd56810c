//! Live updates for open pages: a Server-Sent Events stream of signals (`orders`, `stock`,
//! `inbox`) read from the event log. A signal carries no data, only that something of its
//! kind changed; the page then fetches itself again with the person's own session, so it
//! never shows more than the person may see.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use omnihub_domain::users::{Area, Role};

use crate::Admin;
use crate::page::PageError;
use crate::session::Staff;

/// Other server processes' events are seen by polling this often (this process's own wake
/// the stream at once). A second is live enough for a list, and many open tabs stay cheap.
const POLL: Duration = Duration::from_secs(1);

/// The signal an event type raises, if the role may see what it is about.
fn signal(kind: &str, role: Role) -> Option<&'static str> {
    let (area, name) = match kind.split('.').next()? {
        "order" | "fulfillment" | "return" => (Area::Orders, "orders"),
        "inventory" | "availability" | "reservation" => (Area::Inventory, "stock"),
        "message" | "conversation" => (Area::Inbox, "inbox"),
        _ => return None,
    };
    let sees = role.may_see(area) || (name == "orders" && role.may_see(Area::PickupDesk));
    sees.then_some(name)
}

pub async fn stream(
    State(admin): State<Admin>,
    staff: Staff,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, PageError> {
    // Only what happens from now on: the page was drawn with everything before.
    let after = admin.store.last_event_seq().await?;
    let follow = Follow {
        wake: admin.store.watch_log(),
        admin,
        role: staff.role(),
        after,
        pending: Vec::new(),
    };
    let signals = stream::unfold(follow, |mut follow| async move {
        follow.next().await.map(|signal| (Ok(signal), follow))
    });
    Ok(Sse::new(signals).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

struct Follow {
    admin: Admin,
    role: Role,
    after: i64,
    pending: Vec<&'static str>,
    wake: tokio::sync::watch::Receiver<u64>,
}

impl Follow {
    /// The next signal, waiting for one; `None` ends the stream (shutdown).
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(name) = self.pending.pop() {
                return Some(SseEvent::default().event(name).data(self.after.to_string()));
            }
            if *self.admin.shutdown.borrow() {
                return None;
            }
            match self.admin.store.events_after(self.after, &[], 500).await {
                Ok(events) if !events.is_empty() => {
                    self.after = events.last().map_or(self.after, |e| e.seq);
                    // Many events of one kind make one signal: the page refreshes once.
                    let names: BTreeSet<_> = events.iter().filter_map(|e| signal(&e.kind, self.role)).collect();
                    self.pending = names.into_iter().collect();
                    continue;
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "the admin's live stream could not read the log"),
            }
            let mut shutdown = self.admin.shutdown.clone();
            tokio::select! {
                _ = self.wake.changed() => {}
                _ = shutdown.changed() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_follow_what_the_role_may_see() {
        assert_eq!(signal("order.placed", Role::Manager), Some("orders"));
        assert_eq!(signal("fulfillment.collected", Role::StoreStaff), Some("orders"));
        assert_eq!(signal("availability.changed", Role::Agent), None);
        assert_eq!(signal("inventory.level_changed", Role::StoreStaff), Some("stock"));
        assert_eq!(signal("message.received", Role::Agent), Some("inbox"));
        assert_eq!(signal("product.created", Role::Owner), None);
    }
}
