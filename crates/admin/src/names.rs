//! The names of sales channels and locations, to show instead of their ids.

use omnihub_domain::catalog::{Channel, Location, LocationKind};
use omnihub_store::{Page, Store};

/// Every channel and location: a merchant has a handful to a few hundred of each.
pub struct Names {
    pub channels: Vec<Channel>,
    pub locations: Vec<Location>,
}

/// A list's first page, big enough for everything.
pub const ALL: Page = Page {
    after: None,
    limit: 500,
};

impl Names {
    pub async fn load(store: &Store) -> Result<Names, omnihub_store::Error> {
        let (channels, _) = store.channels(&ALL).await?;
        let (locations, _) = store.locations(&ALL).await?;
        Ok(Names { channels, locations })
    }

    pub fn channel(&self, id: &str) -> String {
        self.channels
            .iter()
            .find(|c| c.id == id)
            .map_or_else(|| id.to_owned(), |c| c.draft.name.clone())
    }

    pub fn location(&self, id: &str) -> String {
        self.locations
            .iter()
            .find(|l| l.id == id)
            .map_or_else(|| id.to_owned(), |l| l.draft.name.clone())
    }

    /// Locations where customers collect and return goods.
    pub fn stores(&self) -> impl Iterator<Item = &Location> {
        self.locations.iter().filter(|l| l.draft.kind == LocationKind::Store)
    }
}
