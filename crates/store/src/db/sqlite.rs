//! Statements run on a rusqlite connection, on the thread that asks: the write connection's
//! (see `write_connection`) or a read connection's (see `readers`).

use std::sync::Arc;

use rusqlite::Connection;
use rusqlite::types::{ToSqlOutput, Value, ValueRef};

use super::{Arg, Sql};
use crate::Error;

/// Enough for every distinct statement a connection runs, so none is prepared twice.
pub(crate) const STATEMENT_CACHE: usize = 512;

/// Runs a statement, keeping at most `limit` of the rows it answers. The statement is prepared
/// once per connection and kept.
pub(crate) fn run(connection: &Connection, sql: &Sql, limit: usize) -> Result<Vec<SqliteRow>, Error> {
    let text = sql.text();
    tracing::trace!(statement = text, "statement");
    let mut statement = connection.prepare_cached(text)?;
    // `$n` names the n-th argument wherever it stands; SQLite numbers parameters in the
    // order they first appear.
    for index in 1..=statement.parameter_count() {
        let position = statement
            .parameter_name(index)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| Error::Corrupt(format!("statement parameter {index} is not $n: {text}")))?;
        let value = match position.checked_sub(1).and_then(|i| sql.args.get(i)) {
            Some(arg) => value_of(arg),
            None => ValueRef::Null,
        };
        statement.raw_bind_parameter(index, ToSqlOutput::Borrowed(value))?;
    }
    let columns: Arc<[String]> = statement.column_names().into_iter().map(str::to_owned).collect();
    let mut rows = statement.raw_query();
    let mut kept = Vec::new();
    while let Some(row) = rows.next()? {
        if kept.len() < limit {
            let values = (0..columns.len())
                .map(|i| row.get::<_, Value>(i))
                .collect::<Result<_, _>>()?;
            kept.push(SqliteRow {
                columns: columns.clone(),
                values,
            });
        }
    }
    Ok(kept)
}

/// The argument as SQLite binds it; text is bound where it lies, not copied.
fn value_of(arg: &Arg) -> ValueRef<'_> {
    match arg {
        Arg::Int(v) => v.map_or(ValueRef::Null, ValueRef::Integer),
        Arg::Text(v) => v
            .as_deref()
            .map_or(ValueRef::Null, |text| ValueRef::Text(text.as_bytes())),
        Arg::Bool(v) => ValueRef::Integer(i64::from(*v)),
        Arg::Float(v) => v.map_or(ValueRef::Null, ValueRef::Real),
    }
}

/// A row answered by SQLite, read by column name.
pub struct SqliteRow {
    columns: Arc<[String]>,
    values: Vec<Value>,
}

impl SqliteRow {
    pub(crate) fn get<T: FromValue>(&self, column: &str) -> Result<T, Error> {
        let value = self
            .columns
            .iter()
            .position(|c| c == column)
            .map(|i| &self.values[i])
            .ok_or_else(|| Error::Corrupt(format!("no column {column}")))?;
        T::from_value(ValueRef::from(value)).ok_or_else(|| Error::Corrupt(format!("column {column} holds {value:?}")))
    }
}

/// A Rust type a column's value is read as.
pub(crate) trait FromValue: Sized {
    fn from_value(value: ValueRef<'_>) -> Option<Self>;
}

impl FromValue for i64 {
    fn from_value(value: ValueRef<'_>) -> Option<Self> {
        value.as_i64().ok()
    }
}

impl FromValue for String {
    fn from_value(value: ValueRef<'_>) -> Option<Self> {
        value.as_str().ok().map(str::to_owned)
    }
}

impl FromValue for bool {
    fn from_value(value: ValueRef<'_>) -> Option<Self> {
        value.as_i64().ok().map(|v| v != 0)
    }
}

impl FromValue for f64 {
    fn from_value(value: ValueRef<'_>) -> Option<Self> {
        match value {
            ValueRef::Real(v) => Some(v),
            ValueRef::Integer(v) => Some(v as f64),
            _ => None,
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: ValueRef<'_>) -> Option<Self> {
        match value {
            ValueRef::Null => Some(None),
            value => T::from_value(value).map(Some),
        }
    }
}

/// A database file of a test's own, removed with its log when the test ends.
#[cfg(test)]
pub(crate) struct Scratch(pub std::path::PathBuf);

#[cfg(test)]
impl Scratch {
    pub(crate) fn new() -> Scratch {
        Scratch(std::env::temp_dir().join(format!("omnihub-scratch-{}.db", ulid::Ulid::new())))
    }
}

#[cfg(test)]
impl Drop for Scratch {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}
