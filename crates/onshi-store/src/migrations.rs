//! The schema's migrations, one runner for both stores: refinery applies them, each in a
//! transaction with its line in `refinery_schema_history`, and refuses to start on a database
//! whose applied migrations differ from these files (changed after they ran, or unknown to this
//! build).
//!
//! The files are in `migrations/` (`build.rs` lists them, so a new migration is a new file):
//! `NNNN_name.sql` where both databases read the same SQL, `sqlite/NNNN_name.sql` and
//! `postgres/NNNN_name.sql` where they differ — 64-bit integers are `INTEGER` in SQLite and
//! `BIGINT` in PostgreSQL (whose `INTEGER` is 32-bit, and the store reads every integer as
//! `i64`), a row-id key is an identity column in PostgreSQL. `BIGINT` means 64 bits to both, so a
//! shared file writes that.
//!
//! Databases made before refinery recorded their migrations by name in `schema_migrations`; the
//! first start with this runner copies that record into refinery's table ([`adopt`]) and leaves
//! the old table as it was.

use refinery::{Migration, Runner};

use crate::StoreError;

include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// refinery's record of applied migrations (its default table name).
pub(crate) const HISTORY: &str = "refinery_schema_history";

/// The table refinery keeps, created here first when an old record is adopted; the same
/// statement refinery runs (`CREATE TABLE IF NOT EXISTS`), so either may come first.
pub(crate) const CREATE_HISTORY: &str = "CREATE TABLE IF NOT EXISTS refinery_schema_history(
             version int4 PRIMARY KEY,
             name VARCHAR(255),
             applied_on VARCHAR(255),
             checksum VARCHAR(255));";

/// The record of the runner before refinery: `(name TEXT PRIMARY KEY, applied_at TEXT)`, one
/// row per migration by its file stem (`0003_slot_queue`). Read, never written.
pub(crate) const OLD_HISTORY: &str = "schema_migrations";

/// Which database a migration is applied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// refinery's name (`V3__slot_queue`) and the SQL of each migration, in order.
    pub(crate) fn files(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Sqlite => SQLITE,
            Self::Postgres => POSTGRES,
        }
    }

    /// The migrations of this backend.
    pub(crate) fn migrations(self) -> Result<Vec<Migration>, StoreError> {
        self.files()
            .iter()
            .map(|(name, sql)| {
                Migration::unapplied(name, sql)
                    .map_err(|e| StoreError::Config(format!("migration {name}: {e}")))
            })
            .collect()
    }

    /// The runner: every migration not yet applied, in order, each in its own transaction.
    pub(crate) fn runner(self) -> Result<Runner, StoreError> {
        Ok(Runner::new(&self.migrations()?)
            .set_abort_divergent(true)
            .set_abort_missing(true))
    }
}

/// A row of refinery's history that stands for one migration the old runner applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Adopted {
    pub version: i32,
    pub name: String,
    /// When the old runner applied it (RFC 3339, as refinery writes it).
    pub applied_on: String,
    /// refinery's checksum of this build's file, which the old runner applied (the old runner
    /// kept no checksum; these files are the ones it read).
    pub checksum: String,
}

/// refinery's history for the old record `old` (name, applied_at). A name this build does not
/// have means the database is newer than the binary: an error, as refinery's own check.
pub(crate) fn adopt(
    backend: Backend,
    old: &[(String, String)],
) -> Result<Vec<Adopted>, StoreError> {
    let migrations = backend.migrations()?;
    old.iter()
        .map(|(stem, applied_at)| {
            let m = migrations
                .iter()
                .find(|m| old_name(m) == *stem)
                .ok_or_else(|| {
                    StoreError::Config(format!(
                        "the database has migration {stem}, which this onshi does not have: it \
                         was set up by a newer version"
                    ))
                })?;
            Ok(Adopted {
                version: m.version(),
                name: m.name().to_owned(),
                applied_on: applied_at.clone(),
                checksum: m.checksum().to_string(),
            })
        })
        .collect()
}

/// The name the old runner recorded for `m`: its file stem, `0003_slot_queue`.
fn old_name(m: &Migration) -> String {
    format!("{:04}_{}", m.version(), m.name())
}

/// refinery's error, named.
pub(crate) fn failed(e: refinery::Error) -> StoreError {
    StoreError::Config(format!("migrating the database: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_backends_have_the_same_migrations_in_order() {
        let names = |b: Backend| b.files().iter().map(|(n, _)| *n).collect::<Vec<_>>();
        assert_eq!(names(Backend::Sqlite), names(Backend::Postgres));
        let versions: Vec<i32> = Backend::Sqlite
            .migrations()
            .expect("migrations")
            .iter()
            .map(Migration::version)
            .collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
        assert_eq!(versions[..6], [1, 2, 3, 4, 5, 6]);
    }

    /// PostgreSQL's `INTEGER` is 32-bit and the store reads `i64`: a PostgreSQL file says
    /// `BIGINT` (a shared file too, which SQLite reads as 64-bit as well).
    #[test]
    fn postgres_migrations_have_64_bit_integers_and_identity_keys() {
        for (name, sql) in Backend::Postgres.files() {
            let code: String = sql
                .lines()
                .map(|l| l.split("--").next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join("\n");
            assert!(
                !code.to_ascii_uppercase().contains("INTEGER"),
                "{name}: PostgreSQL's INTEGER is 32-bit; write BIGINT (a migration whose SQLite \
                 text needs INTEGER PRIMARY KEY goes in sqlite/ and postgres/)"
            );
        }
        let init = Backend::Postgres.files()[0].1;
        assert!(
            init.contains("id                BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
        );
        assert!(init.contains("prefecture          BIGINT NOT NULL"));
        assert!(
            Backend::Sqlite.files()[0]
                .1
                .contains("id                INTEGER PRIMARY KEY")
        );
    }

    /// `tests/fixtures/onshi-dd8fb81.db` was made by `SqliteStore::open` at dd8fb81, the last
    /// commit before refinery (a setting and a site stored through it, the file checkpointed).
    #[test]
    fn an_onshi_db_made_before_refinery_opens_keeps_its_data_and_migrates() {
        use crate::{SqliteStore, Store};
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("onshi.db");
        std::fs::copy(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/onshi-dd8fb81.db"
            ),
            &path,
        )
        .expect("the fixture copied");
        let store = SqliteStore::open(&path).expect("the old database opens");
        assert_eq!(
            store.setting("made_by").expect("read").as_deref(),
            Some("onshi dd8fb81")
        );
        let code = "0110113719".parse().expect("a code");
        assert!(store.institution(code).expect("read").is_some());
        drop(store);
        let conn = rusqlite::Connection::open(&path).expect("opens");
        let history: Vec<(i32, String, String)> = conn
            .prepare(
                "SELECT version, name, applied_on FROM refinery_schema_history ORDER BY version",
            )
            .expect("query")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("rows")
            .collect::<rusqlite::Result<_>>()
            .expect("history");
        assert_eq!(history.len(), Backend::Sqlite.files().len());
        assert_eq!(history[0].0, 1);
        assert_eq!(history[5].1, "queue_turnover");
        // The six the old runner applied keep when it applied them.
        assert!(
            history[..6]
                .iter()
                .all(|(_, _, at)| at.starts_with("2026-12-01T05:51"))
        );
        let old: i64 = conn
            .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
            .expect("old record");
        assert_eq!(old, 6, "the old record is left as it was");
        drop(conn);
        // And again: nothing to adopt or apply.
        SqliteStore::open(&path).expect("opens again");
    }

    #[test]
    fn the_old_record_is_adopted_by_name_with_this_builds_checksums() {
        let old = vec![
            (
                "0001_init".to_owned(),
                "2026-01-10T00:00:00.000Z".to_owned(),
            ),
            (
                "0002_outbox".to_owned(),
                "2026-01-10T00:00:00.001Z".to_owned(),
            ),
        ];
        let adopted = adopt(Backend::Sqlite, &old).expect("adopted");
        let migrations = Backend::Sqlite.migrations().expect("migrations");
        assert_eq!(
            adopted[1],
            Adopted {
                version: 2,
                name: "outbox".into(),
                applied_on: "2026-01-10T00:00:00.001Z".into(),
                checksum: migrations[1].checksum().to_string(),
            }
        );
        let unknown = vec![("0099_future".to_owned(), "2027-01-01T00:00:00Z".to_owned())];
        let err = adopt(Backend::Postgres, &unknown).expect_err("unknown migration");
        assert!(err.to_string().contains("0099_future"), "{err}");
    }
}
