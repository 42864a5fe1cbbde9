//! For tests of this crate and the crates above it: a fresh PostgreSQL schema per test, so tests
//! run in parallel on one database and leave nothing behind.

use crate::postgres::with_search_path;

/// Runs `f` on a thread of its own: the blocking PostgreSQL client must not run on an async
/// runtime's thread, and tests call these helpers from async tests too.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().expect("the helper thread finishes"))
}

/// Where tests find PostgreSQL unless `ONSHI_TEST_POSTGRES` names another database.
pub const DEFAULT_TEST_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The test database's URL: `ONSHI_TEST_POSTGRES`, else [`DEFAULT_TEST_URL`].
pub fn test_url() -> String {
    std::env::var("ONSHI_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_TEST_URL.to_owned())
}

/// A schema of its own in the test database, dropped (with everything in it) on drop.
pub struct TestSchema {
    base_url: String,
    name: String,
    /// The URL of the database with this schema first on the search path: what a store or a
    /// server under test connects to.
    pub url: String,
}

impl TestSchema {
    /// Creates a schema with a random name in the test database. `None` when PostgreSQL cannot
    /// be reached and `CI` is not `true` (a developer without PostgreSQL skips these tests; CI
    /// fails instead, because `.ci/run` starts PostgreSQL).
    pub fn create() -> Option<Self> {
        match Self::create_in(&test_url()) {
            Ok(schema) => Some(schema),
            Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
                eprintln!("SKIPPED: {e}; run .ci/run or start PostgreSQL");
                None
            }
            Err(e) => panic!("{e}"),
        }
    }

    /// Creates a schema with a random name in the database at `base_url`.
    pub fn create_in(base_url: &str) -> Result<Self, String> {
        let unreachable = |e: ::postgres::Error| {
            format!(
                "PostgreSQL at {} is not reachable ({})",
                crate::postgres::redact(base_url),
                crate::postgres::describe(&e)
            )
        };
        let name = format!("t_{:016x}", rand::random::<u64>());
        off_runtime(|| {
            ::postgres::Client::connect(base_url, ::postgres::NoTls)?
                .batch_execute(&format!("CREATE SCHEMA {name}"))
        })
        .map_err(unreachable)?;
        Ok(Self {
            url: with_search_path(base_url, &name),
            base_url: base_url.to_owned(),
            name,
        })
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A new connection to the test database (search path set to this schema). Blocking: call
    /// it off async workers (or use [`TestSchema::query_i64`]).
    pub fn client(&self) -> ::postgres::Client {
        ::postgres::Client::connect(&self.url, ::postgres::NoTls).expect("a test connection")
    }

    /// The first column of every row `sql` returns, as integers; callable from async tests.
    pub fn query_i64(&self, sql: &str) -> Vec<i64> {
        off_runtime(|| {
            self.client()
                .query(sql, &[])
                .expect("the query runs")
                .iter()
                .map(|r| r.get::<_, i64>(0))
                .collect()
        })
    }

    /// Ends every other connection to this schema's database made by `application_name`
    /// `onshi` with this schema on its search path: what a database restart does to a server.
    /// Returns how many connections were ended.
    pub fn terminate_connections(&self) -> u64 {
        off_runtime(|| {
            let rows = self
                .client()
                .query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE pid <> pg_backend_pid() AND application_name = $1",
                    &[&crate::postgres::application_name(&self.name)],
                )
                .expect("connections are listed");
            rows.len() as u64
        })
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        off_runtime(|| {
            if let Ok(mut client) = ::postgres::Client::connect(&self.base_url, ::postgres::NoTls) {
                let _ =
                    client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
            }
        });
    }
}
