//! Connections to PostgreSQL: the r2d2 pool's manager, statements prepared once per connection,
//! which errors mean "the database is unavailable", and the URL helpers (password redaction,
//! one schema per test).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ::postgres::types::ToSql;
use ::postgres::{Client, Config, NoTls, Row, Statement};

use crate::{Result, StoreError};

/// An error with its causes: "error connecting to server: Connection refused (os error 111)".
pub(crate) fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.ends_with(&s_text) {
            text = format!("{text}: {s_text}");
        }
        source = s.source();
    }
    text
}

/// `url` with its password replaced by `***` (URL and key-value forms).
pub fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if let Some((userinfo, host)) = authority.rsplit_once('@')
            && let Some((user, _password)) = userinfo.split_once(':')
        {
            return format!("{scheme}://{user}:***@{host}{tail}");
        }
        return url.to_owned();
    }
    url.split_whitespace()
        .map(|kv| {
            if kv.starts_with("password=") {
                "password=***"
            } else {
                kv
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The application name a connection made for `schema` carries (see [`with_search_path`]).
pub fn application_name(schema: &str) -> String {
    format!("onshi-{schema}")
}

/// `url` (URL form) with `schema` first on every connection's search path, and an application
/// name naming the schema: one database can hold several onshi schemas (tests do).
pub fn with_search_path(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!(
        "{url}{sep}options=-csearch_path%3D{schema}&application_name={}",
        application_name(schema)
    )
}

impl From<::postgres::Error> for StoreError {
    /// A lost connection, a database shutting down or refusing connections, or a transient
    /// conflict is `Unavailable` (try again later); anything else is an error of the call.
    fn from(e: ::postgres::Error) -> Self {
        let transient = e.code().is_some_and(|c| {
            let c = c.code();
            c.starts_with("08") || c.starts_with("57P") || c == "53300" || c.starts_with("40")
        });
        let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
        if e.is_closed() || transient || io {
            Self::Unavailable(describe(&e))
        } else {
            Self::Postgres(e)
        }
    }
}

/// A pooled connection and the statements prepared on it.
pub(crate) struct Conn {
    pub(crate) client: Client,
    statements: HashMap<&'static str, Statement>,
    /// The pool's [`Losses`] count when this connection was made or last found working.
    seen: u64,
    /// Found dead by a check: the pool discards it when it comes back.
    broken: bool,
}

impl Conn {
    /// `sql`, prepared once per connection.
    pub(crate) fn prep(&mut self, sql: &'static str) -> Result<Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        self.statements.insert(sql, s.clone());
        Ok(s)
    }

    pub(crate) fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        let st = self.prep(sql)?;
        Ok(self.client.query(&st, params)?)
    }

    pub(crate) fn query_opt(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>> {
        let st = self.prep(sql)?;
        Ok(self.client.query_opt(&st, params)?)
    }

    pub(crate) fn query_one(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row> {
        let st = self.prep(sql)?;
        Ok(self.client.query_one(&st, params)?)
    }

    pub(crate) fn execute(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64> {
        let st = self.prep(sql)?;
        Ok(self.client.execute(&st, params)?)
    }
}

/// How many connections the pool has found dead. Idle connections are not checked when they are
/// checked out (a round trip on every call), so when the database went away, each one would
/// fail once when next used; instead, once any connection is found dead, every connection older
/// than that loss is checked once before it is used again ([`Losses::check`]).
#[derive(Clone, Default)]
pub(crate) struct Losses(Arc<AtomicU64>);

impl Losses {
    fn count(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    fn record(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }

    /// Whether `conn` may be used: it has not been out since the last loss, or a round trip
    /// on it works now. A dead one is marked so that the pool discards it.
    pub(crate) fn check(&self, conn: &mut Conn) -> bool {
        let now = self.count();
        if conn.seen >= now {
            return true;
        }
        if conn.client.simple_query("").is_ok() {
            conn.seen = now;
            true
        } else {
            conn.broken = true;
            false
        }
    }
}

pub(crate) struct Manager {
    pub(crate) config: Config,
    pub(crate) losses: Losses,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = ::postgres::Error;

    fn connect(&self) -> std::result::Result<Conn, ::postgres::Error> {
        Ok(Conn {
            client: self.config.connect(NoTls)?,
            statements: HashMap::new(),
            seen: self.losses.count(),
            broken: false,
        })
    }

    fn is_valid(&self, conn: &mut Conn) -> std::result::Result<(), ::postgres::Error> {
        conn.client.simple_query("").map(|_| ())
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        if conn.broken {
            return true;
        }
        let closed = conn.client.is_closed();
        if closed {
            self.losses.record();
        }
        closed
    }
}

#[derive(Debug)]
pub(crate) struct LogErrors;

impl r2d2::HandleError<::postgres::Error> for LogErrors {
    fn handle_error(&self, error: ::postgres::Error) {
        tracing::warn!(%error, "PostgreSQL connection failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_in_both_url_forms() {
        assert_eq!(
            redact("postgres://onshi:s3cret@db.example:5432/onshi?sslmode=disable"),
            "postgres://onshi:***@db.example:5432/onshi?sslmode=disable"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1:5432/test"),
            "postgres://postgres@127.0.0.1:5432/test"
        );
        assert_eq!(
            redact("host=db user=onshi password=s3cret dbname=onshi"),
            "host=db user=onshi password=*** dbname=onshi"
        );
    }
}
