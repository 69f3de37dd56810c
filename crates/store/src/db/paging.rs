//! Lists a page at a time, by id.

/// One page of a list: at most `limit` items after the item with id `after`.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub after: Option<String>,
    pub limit: i64,
}

impl Page {
    /// Splits one extra fetched row off to tell whether there is a next page.
    pub fn finish<T>(&self, mut items: Vec<T>, id: impl Fn(&T) -> &str) -> (Vec<T>, Option<String>) {
        let limit = usize::try_from(self.limit).unwrap_or(0);
        if items.len() > limit {
            items.truncate(limit);
            let next = items.last().map(|item| id(item).to_owned());
            (items, next)
        } else {
            (items, None)
        }
    }

    /// The id lists start after (the empty string sorts before every id).
    pub(crate) fn after(&self) -> &str {
        self.after.as_deref().unwrap_or("")
    }
}
