//! The limits of what anybody may do without a secret key ([`PublicLimit`]): counted per
//! client (or visitor) and place, in this process only — with several nodes each allows as
//! much, which still bounds it.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use axum::Extension;
use omnihub_domain::access::PublicLimit;
use omnihub_domain::network::ClientAddress;

use crate::AppState;
use crate::problem::ApiError;

/// Counters of past windows are dropped once this many are kept.
const MAX_COUNTED: usize = 10_000;

/// A limit, the place it counts in (an inbox, a sales channel), and who is counted.
type Counted = (PublicLimit, String, String);

/// Counts one more of `limit` for `who` in `place`; 429 `rate_limited` past its allowance,
/// with `refusal` as the reason.
pub fn within(state: &AppState, limit: PublicLimit, place: &str, who: &str, refusal: &str) -> Result<(), ApiError> {
    static COUNTED: LazyLock<Mutex<HashMap<Counted, (i64, u32)>>> = LazyLock::new(Default::default);
    let now = state.store.now().millis();
    // A counter left poisoned by a panic elsewhere must not close the shop for everyone.
    let Ok(mut counted) = COUNTED.lock() else {
        return Ok(());
    };
    if counted.len() >= MAX_COUNTED {
        counted.retain(|(limit, _, _), (start, _)| now - *start < limit.allowance().1);
    }
    let key = (limit, place.to_owned(), who.to_owned());
    let (counter, allowed) = limit.count(counted.get(&key).copied(), now);
    counted.insert(key, counter);
    if allowed {
        Ok(())
    } else {
        Err(ApiError::rate_limited(format!("{refusal}; try again later")))
    }
}

/// The client address limits count, or one shared name when the server does not know it.
pub fn client_of(client: Option<Extension<ClientAddress>>) -> String {
    client.map_or_else(|| "unknown".to_owned(), |Extension(client)| client.counted_as())
}
