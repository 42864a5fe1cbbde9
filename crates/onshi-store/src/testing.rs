//! For tests of this crate and the crates above it: a fresh PostgreSQL schema per test, so tests
//! run in parallel on one database and leave nothing behind.

use crate::postgres::with_search_path;

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
        let base_url = test_url();
        let mut client = match ::postgres::Client::connect(&base_url, ::postgres::NoTls) {
            Ok(c) => c,
            Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
                eprintln!(
                    "SKIPPED: PostgreSQL at {} is not reachable ({}); run .ci/run or start it",
                    crate::postgres::redact(&base_url),
                    crate::postgres::describe(&e)
                );
                return None;
            }
            Err(e) => panic!(
                "PostgreSQL at {} is not reachable: {e}",
                crate::postgres::redact(&base_url)
            ),
        };
        let name = format!("t_{:016x}", rand::random::<u64>());
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .expect("the test schema is created");
        Some(Self {
            url: with_search_path(&base_url, &name),
            base_url,
            name,
        })
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A new connection to the test database (search path set to this schema).
    pub fn client(&self) -> ::postgres::Client {
        ::postgres::Client::connect(&self.url, ::postgres::NoTls).expect("a test connection")
    }

    /// Ends every other connection to this schema's database made by `application_name`
    /// `onshi` with this schema on its search path: what a database restart does to a server.
    /// Returns how many connections were ended.
    pub fn terminate_connections(&self) -> u64 {
        let mut client = self.client();
        let rows = client
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE pid <> pg_backend_pid() AND application_name = $1",
                &[&crate::postgres::application_name(&self.name)],
            )
            .expect("connections are listed");
        rows.len() as u64
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        if let Ok(mut client) = ::postgres::Client::connect(&self.base_url, ::postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}
