//! Connections to PostgreSQL: the store's own small tokio runtime that drives the async driver
//! (tokio-postgres, pooled by deadpool-postgres), blocking calls onto it that never stall an
//! async worker of the caller, statements prepared once per connection, which errors mean "the
//! database is unavailable", and the URL helpers (password redaction, one schema per test).

use std::future::Future;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio::runtime::{Handle, Runtime, RuntimeFlavor};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Config, Row, Statement, ToStatement};
use tokio_postgres_rustls::MakeRustlsConnect;

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

impl From<tokio_postgres::Error> for StoreError {
    /// A lost connection, a database shutting down or refusing connections, or a transient
    /// conflict is `Unavailable` (try again later); anything else is an error of the call.
    fn from(e: tokio_postgres::Error) -> Self {
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

/// Runs `fut` on the store's runtime and waits for it. The store's calls are blocking (the
/// `Store` trait); on a worker of a multi-threaded runtime the wait is announced with
/// `block_in_place` (the worker's other tasks move to another thread), on a current-thread
/// runtime it happens on a helper thread, so no async worker of the caller ever stalls on a
/// query.
pub(crate) fn block_on<F>(rt: &Handle, fut: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    match Handle::try_current() {
        Err(_) => rt.block_on(fut),
        Ok(current) if current.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| rt.block_on(fut))
        }
        Ok(_) => std::thread::scope(|s| {
            s.spawn(|| rt.block_on(fut))
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        }),
    }
}

/// The store's runtime (two threads drive every connection's socket and the listener) and its
/// pool of connections.
pub(crate) struct Driver {
    /// Always `Some` until dropped (see `Drop`).
    rt: Option<Runtime>,
    pub(crate) handle: Handle,
    pool: Pool,
}

impl Driver {
    pub(crate) fn new(
        config: Config,
        tls: MakeRustlsConnect,
        size: usize,
        timeout: Duration,
    ) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("onshi-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Config(format!("cannot start the PostgreSQL runtime: {e}")))?;
        let manager = Manager::from_config(
            config,
            tls,
            // A connection whose socket the driver found closed is discarded when it comes
            // back; the driver polls every socket, so a connection the database dropped is
            // known closed without a round trip.
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(size)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .build()
            .map_err(|e| StoreError::Config(format!("cannot build the connection pool: {e}")))?;
        Ok(Self {
            handle: rt.handle().clone(),
            rt: Some(rt),
            pool,
        })
    }

    /// Runs `fut` on the store's runtime (see [`block_on`]).
    pub(crate) fn block<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        block_on(&self.handle, fut)
    }

    /// A pooled connection, waiting at most the pool's timeout.
    pub(crate) fn conn(&self, redacted: &str) -> Result<Conn> {
        let obj = self.block(self.pool.get()).map_err(|e| {
            let text = match &e {
                deadpool_postgres::PoolError::Backend(b) => describe(b),
                other => other.to_string(),
            };
            StoreError::Unavailable(format!("PostgreSQL at {redacted}: {text}"))
        })?;
        Ok(Conn {
            obj,
            handle: self.handle.clone(),
        })
    }
}

impl Drop for Driver {
    /// Dropping a runtime blocks, which must not happen on an async worker (where the server's
    /// last reference may be dropped): its threads are left to end on their own.
    fn drop(&mut self) {
        self.pool.close();
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// A pooled connection, with blocking calls (statements prepared once per connection).
pub(crate) struct Conn {
    obj: Object,
    handle: Handle,
}

impl Conn {
    /// The client itself and the runtime its futures run on (refinery's async runner).
    pub(crate) fn client(&mut self) -> (&Handle, &mut tokio_postgres::Client) {
        (&self.handle, &mut self.obj)
    }

    /// `sql`, prepared once per connection.
    pub(crate) fn prep(&mut self, sql: &str) -> Result<Statement> {
        Ok(block_on(&self.handle, self.obj.prepare_cached(sql))?)
    }

    pub(crate) fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let st = self.prep(sql)?;
        self.query_st(&st, params)
    }

    pub(crate) fn query_st(
        &mut self,
        st: &Statement,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        Ok(block_on(&self.handle, self.obj.query(st, params))?)
    }

    pub(crate) fn query_opt(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>> {
        let st = self.prep(sql)?;
        self.query_opt_st(&st, params)
    }

    pub(crate) fn query_opt_st(
        &mut self,
        st: &Statement,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>> {
        Ok(block_on(&self.handle, self.obj.query_opt(st, params))?)
    }

    pub(crate) fn query_one(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row> {
        let st = self.prep(sql)?;
        Ok(block_on(&self.handle, self.obj.query_one(&st, params))?)
    }

    pub(crate) fn execute(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let st = self.prep(sql)?;
        Ok(block_on(&self.handle, self.obj.execute(&st, params))?)
    }

    /// Begins a transaction (rolled back if dropped without [`Tx::commit`]).
    pub(crate) fn transaction(&mut self) -> Result<Tx<'_>> {
        let tx = block_on(&self.handle, self.obj.transaction())?;
        Ok(Tx {
            tx,
            handle: &self.handle,
        })
    }
}

/// A transaction on a pooled connection, with blocking calls.
pub(crate) struct Tx<'a> {
    tx: deadpool_postgres::Transaction<'a>,
    handle: &'a Handle,
}

impl Tx<'_> {
    /// `sql`, prepared once per connection.
    pub(crate) fn prep(&self, sql: &str) -> Result<Statement> {
        Ok(block_on(self.handle, self.tx.prepare_cached(sql))?)
    }

    pub(crate) fn execute<T: ?Sized + ToStatement + Sync>(
        &mut self,
        st: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64> {
        Ok(block_on(self.handle, self.tx.execute(st, params))?)
    }

    pub(crate) fn query_one<T: ?Sized + ToStatement + Sync>(
        &mut self,
        st: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row> {
        Ok(block_on(self.handle, self.tx.query_one(st, params))?)
    }

    pub(crate) fn query_opt<T: ?Sized + ToStatement + Sync>(
        &mut self,
        st: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>> {
        Ok(block_on(self.handle, self.tx.query_opt(st, params))?)
    }

    pub(crate) fn query<T: ?Sized + ToStatement + Sync>(
        &mut self,
        st: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        Ok(block_on(self.handle, self.tx.query(st, params))?)
    }

    pub(crate) fn batch_execute(&mut self, sql: &str) -> Result<()> {
        Ok(block_on(self.handle, self.tx.batch_execute(sql))?)
    }

    pub(crate) fn commit(self) -> Result<()> {
        Ok(block_on(self.handle, self.tx.commit())?)
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
