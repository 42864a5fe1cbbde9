//! The PostgreSQL store, which several `onshi serve` replicas share. Correct across replicas by
//! PostgreSQL's own guarantees, never by memory of one process:
//!
//! - state reports are one compare-and-set `UPDATE` on (state, `last_seq`): a repeat or a late
//!   report from any replica is `Stale`, a report from a state the deployment left is a conflict;
//! - download slots are rows in `leases`; taking one holds a transaction-level advisory lock
//!   per campaign while it reclaims expired slots, counts and inserts, so "at most N" holds for
//!   all replicas together; the devices waiting for one share one fair queue (`queue.rs`);
//! - audit numbers are assigned under a transaction-level advisory lock as `MAX(id) + 1`, so
//!   they are gapless and a reader never sees number n + 1 before n is committed.
//!
//! Each replica keeps device identities and open deployments in memory, kept true through
//! LISTEN/NOTIFY (`cache.rs`), and buffers "last contact" times (`contacts.rs`). Every other
//! call runs on a pooled connection of the async driver (tokio-postgres and deadpool-postgres on
//! the store's own small runtime, `pool.rs`), with TLS through rustls (`tls.rs`); a connection
//! the database dropped is discarded, and a lost or unreachable database is
//! [`StoreError::Unavailable`].
//! A future outbox fits the same way: rows claimed with `SELECT … FOR UPDATE SKIP LOCKED`
//! inside the sending replica's transaction.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use jiff::Timestamp;
use onshi_core::deployment::DeploymentState;
use onshi_core::institution::{InstitutionCode, InstitutionKind, Prefecture};
use onshi_core::offer::CampaignStatus;
use onshi_core::release::Sha256;
use onshi_core::vendor::{DeviceKind, Vendor};
use onshi_core::version::Version;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Config, Row};

mod cache;
mod pool;
mod queue;
mod tls;
mod waves;

use cache::{ALL_DEPLOYMENTS_CHANGED, Cache, deployments_changed, device_changed};
#[cfg(any(test, feature = "testing"))]
pub(crate) use pool::describe;
use pool::{Conn, Driver};
pub use pool::{application_name, redact, with_search_path};

use crate::contacts::{Contact, ContactBuffer};
use crate::migrations::{self, Backend};
use crate::rows::{
    self, CampaignRow, FACTS_COLS, MAIL_COLS, MailRow, RawDeployment, RawDevice, RawInstitution,
    corrupt, hhmm, identity, parse_campaign, ts,
};
use crate::time::db_time;
use crate::*;
use onshi_core::notice::{NoticeKind, SiteFacts};

/// Connections per replica. The server's blocking pool waits for one when all are busy.
const POOL_SIZE: usize = 16;
/// How long a call waits for a connection before the database counts as unavailable.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(3);
/// Contacts written per statement.
const FLUSH_CHUNK: usize = 500;
/// Rows per statement when writing many institutions.
const UPSERT_CHUNK: usize = 1000;
/// The first key of onshi's advisory locks ("on" in ASCII), so they meet no other program's.
const LOCK_SPACE: i32 = 0x6f6e;
/// Second key of the audit log's lock (lease locks use the campaign id's hash).
const AUDIT_LOCK: i32 = 1;

/// The PostgreSQL implementation of [`Store`].
pub struct PostgresStore {
    driver: Driver,
    cache: Arc<Cache>,
    /// The channel of this database schema's cache notices.
    channel: String,
    /// The application name of this store's listener connection.
    listener: String,
    contacts: ContactBuffer,
    /// Held by the one thread of this replica answering a turn under a campaign's lock; the
    /// others are refused at once from what they read, but for the head of the queue, which
    /// waits here holding no pooled connection (see `queue.rs`).
    turns: std::sync::Mutex<()>,
    /// The URL with its password replaced, for messages.
    redacted: String,
}

impl PostgresStore {
    /// Holds this replica's turn lock, as a thread answering a turn does (tests).
    #[cfg(test)]
    pub(crate) fn hold_turns(&self) -> std::sync::MutexGuard<'_, ()> {
        self.turns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connects to the database at `url` (`postgres://user:password@host:port/db`, or the
    /// key-value form; `sslmode` as libpq: `disable`, `prefer`, `require`, `verify-ca` and
    /// `verify-full` with `sslrootcert=FILE`), applies pending migrations and starts the cache's
    /// listener. An unreachable database is an error naming the URL with the password redacted.
    pub fn open(url: &str) -> Result<Self> {
        let redacted = redact(url);
        let (rest, wish) =
            tls::split_url(url).map_err(|e| StoreError::Config(format!("{redacted}: {e}")))?;
        let mut config: Config = rest
            .parse()
            .map_err(|e| StoreError::Config(format!("{redacted} is not a PostgreSQL URL: {e}")))?;
        config.ssl_mode(wish.mode);
        if config.get_application_name().is_none() {
            config.application_name("onshi");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECTION_TIMEOUT);
        }
        let tls = tls::connector(&wish)?;
        let driver = Driver::new(config.clone(), tls.clone(), POOL_SIZE, CONNECTION_TIMEOUT)?;
        let mut conn = driver.conn(&redacted).map_err(|e| match e {
            StoreError::Unavailable(text) => StoreError::Unavailable(format!(
                "cannot connect to PostgreSQL at {redacted}: {text}"
            )),
            other => other,
        })?;
        migrate(&mut conn)?;
        let schema: String = conn.query_one("SELECT current_schema()", &[])?.try_get(0)?;
        drop(conn);
        let channel = format!("onshi_cache:{schema}");
        let cache = Arc::new(Cache::default());
        let mut listener = config;
        static STORES: AtomicU64 = AtomicU64::new(0);
        let listener_name = format!(
            "{}:listener:{}:{}",
            listener.get_application_name().unwrap_or("onshi"),
            std::process::id(),
            STORES.fetch_add(1, Ordering::Relaxed)
        );
        listener.application_name(&listener_name);
        driver.handle.spawn(cache::listen(
            Arc::clone(&cache),
            listener,
            tls,
            channel.clone(),
            redacted.clone(),
        ));
        tracing::info!(database = %redacted, "PostgreSQL store open");
        Ok(Self {
            driver,
            cache,
            channel,
            listener: listener_name,
            contacts: ContactBuffer::default(),
            turns: std::sync::Mutex::new(()),
            redacted,
        })
    }

    fn conn(&self) -> Result<Conn> {
        self.driver.conn(&self.redacted)
    }

    /// The application name of this store's cache listener connection (`pg_stat_activity`),
    /// unique per store: tests cut it with `pg_terminate_backend`.
    pub fn listener_name(&self) -> &str {
        &self.listener
    }

    /// Keeps the cache listener from connecting again once lost (`true`), or lets it: tests of
    /// the fallback to queries.
    #[cfg(any(test, feature = "testing"))]
    pub fn hold_listener(&self, held: bool) {
        self.cache.hold_listener(held);
    }

    /// The open deployments of `device`, read from the database; filling the cache if it is
    /// live and nothing dropped them since `ticket`.
    fn query_open(&self, device: i64) -> Result<Vec<Deployment>> {
        let ticket = self.cache.ticket();
        let open = self
            .conn()?
            .query(
                "SELECT d.campaign_id, d.device_id, d.state, d.bytes, d.last_seq, d.updated_at
                 FROM deployments d JOIN campaigns c ON c.id = d.campaign_id
                 WHERE d.device_id = $1 AND c.status <> 'closed'
                 ORDER BY c.created_at DESC, c.id DESC",
                &[&device],
            )?
            .iter()
            .map(deployment_from)
            .collect::<Result<Vec<_>>>()?;
        self.cache.remember_open(device, &open, ticket);
        Ok(open)
    }
}

/// Applies pending migrations (`migrations.rs`) under a session advisory lock, so that replicas
/// starting together apply each migration once; first adopts the record of a database made
/// before refinery ran them.
fn migrate(conn: &mut Conn) -> Result<()> {
    conn.execute(&format!("SELECT pg_advisory_lock({LOCK_SPACE}, 0)"), &[])?;
    let migrated = adopt_old_history(conn).and_then(|()| {
        let runner = Backend::Postgres.runner()?;
        let (runtime, client) = conn.client();
        let report =
            pool::block_on(runtime, runner.run_async(client)).map_err(migrations::failed)?;
        for m in report.applied_migrations() {
            tracing::info!(migration = %m, "applied migration");
        }
        Ok(())
    });
    // The lock is the session's: released here, or when a failed connection closes.
    let unlocked = conn.execute(&format!("SELECT pg_advisory_unlock({LOCK_SPACE}, 0)"), &[]);
    migrated?;
    unlocked?;
    Ok(())
}

/// Copies the old runner's `schema_migrations` into refinery's table, once (see
/// [`migrations::adopt`]).
fn adopt_old_history(conn: &mut Conn) -> Result<()> {
    let old: bool = conn
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&migrations::OLD_HISTORY],
        )?
        .try_get(0)?;
    if !old {
        return Ok(());
    }
    let mut tx = conn.transaction()?;
    tx.batch_execute(migrations::CREATE_HISTORY)?;
    let recorded: i64 = tx
        .query_one(
            format!("SELECT COUNT(*) FROM {}", migrations::HISTORY).as_str(),
            &[],
        )?
        .try_get(0)?;
    if recorded == 0 {
        let applied: Vec<(String, String)> = tx
            .query(
                format!(
                    "SELECT name, applied_at FROM {} ORDER BY name",
                    migrations::OLD_HISTORY
                )
                .as_str(),
                &[],
            )?
            .iter()
            .map(|r| -> Result<(String, String)> { Ok((r.try_get(0)?, r.try_get(1)?)) })
            .collect::<Result<_>>()?;
        let insert = format!(
            "INSERT INTO {} (version, name, applied_on, checksum) VALUES ($1, $2, $3, $4)",
            migrations::HISTORY
        );
        for a in migrations::adopt(Backend::Postgres, &applied)? {
            tx.execute(
                insert.as_str(),
                &[&a.version, &a.name, &a.applied_on, &a.checksum],
            )?;
        }
        tracing::info!(
            migrations = applied.len(),
            "adopted the record of applied migrations"
        );
    }
    tx.commit()
}

// Column lists, as macros so that whole statements stay `&'static str` (prepared once each).
macro_rules! institution_cols {
    () => {
        "i.code, i.name, i.kind, i.prefecture, i.email, i.auto_restart, i.phone"
    };
}
macro_rules! device_cols {
    () => {
        "d.id, d.institution_code, d.kind, d.vendor, d.serial, d.parent_id, d.installed_version, d.running_version, d.last_contact"
    };
}
macro_rules! deployment_cols {
    () => {
        "campaign_id, device_id, state, bytes, last_seq, updated_at"
    };
}
macro_rules! campaign_cols {
    () => {
        "id, schedule, release_id, selector, max_downloads, poll_seconds, status"
    };
}

// The outbox and site-facts statements, built once from the column lists both stores share.
static SQL_1: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {}, {FACTS_COLS}
                     FROM deployments p JOIN devices d ON d.id = p.device_id
                     JOIN institutions i ON i.code = d.institution_code
                     WHERE p.campaign_id = $1
                     GROUP BY i.code, i.name, i.kind, i.prefecture, i.email, i.auto_restart, i.phone
                     ORDER BY i.code",
        institution_cols!()
    )
});
/// One page of sites' facts: the institutions' code range first, so a page reads its own
/// sites' devices only.
/// Rows added at once after which the tables' planner statistics are refreshed.
const ANALYZE_AFTER: u64 = 10_000;

static SQL_PAGE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {}, {FACTS_COLS}
                     FROM institutions i JOIN devices d ON d.institution_code = i.code
                     JOIN deployments p ON p.device_id = d.id AND p.campaign_id = $1
                     WHERE ($2::TEXT IS NULL OR i.code > $2) AND i.code <= $3
                     GROUP BY i.code, i.name, i.kind, i.prefecture, i.email, i.auto_restart, i.phone
                     ORDER BY i.code",
        institution_cols!()
    )
});
static SQL_2: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {FACTS_COLS}
                 FROM deployments p JOIN devices d ON d.id = p.device_id
                 WHERE p.campaign_id = $1 AND d.institution_code = $2"
    )
});
static SQL_3: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE outbox SET next_attempt_at = $2
                     WHERE id IN (SELECT id FROM outbox
                                  WHERE sent_at IS NULL AND gave_up_at IS NULL
                                    AND next_attempt_at <= $1
                                  ORDER BY next_attempt_at, id LIMIT $3
                                  FOR UPDATE SKIP LOCKED)
                     RETURNING {MAIL_COLS}"
    )
});
static SQL_4: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {MAIL_COLS} FROM outbox
                     WHERE ($1::TEXT IS NULL OR institution_code = $1)
                     ORDER BY id DESC LIMIT $2"
    )
});

fn institution_from(r: &Row, base: usize) -> Result<RawInstitution> {
    Ok(RawInstitution {
        code: r.try_get(base)?,
        name: r.try_get(base + 1)?,
        kind: r.try_get(base + 2)?,
        prefecture: r.try_get(base + 3)?,
        email: r.try_get(base + 4)?,
        auto_restart: r.try_get(base + 5)?,
        phone: r.try_get(base + 6)?,
    })
}

fn facts_at(r: &Row, base: usize) -> Result<SiteFacts> {
    let mut counts = [None; 5];
    for (i, c) in counts.iter_mut().enumerate() {
        *c = r.try_get::<_, Option<i64>>(base + i)?;
    }
    Ok(rows::facts(counts))
}

fn mail_from(r: &Row) -> Result<MailRow> {
    Ok(MailRow {
        id: r.try_get(0)?,
        campaign: r.try_get(1)?,
        institution: r.try_get(2)?,
        kind: r.try_get(3)?,
        key: r.try_get(4)?,
        recipient: r.try_get(5)?,
        subject: r.try_get(6)?,
        body: r.try_get(7)?,
        attempts: r.try_get(8)?,
        next_attempt_at: r.try_get(9)?,
        last_error: r.try_get(10)?,
        created_at: r.try_get(11)?,
        sent_at: r.try_get(12)?,
    })
}

fn device_from(r: &Row, base: usize) -> Result<RawDevice> {
    Ok(RawDevice {
        id: r.try_get(base)?,
        institution: r.try_get(base + 1)?,
        kind: r.try_get(base + 2)?,
        vendor: r.try_get(base + 3)?,
        serial: r.try_get(base + 4)?,
        parent: r.try_get(base + 5)?,
        installed: r.try_get(base + 6)?,
        running: r.try_get(base + 7)?,
        last_contact: r.try_get(base + 8)?,
    })
}

fn deployment_from(r: &Row) -> Result<Deployment> {
    deployment_at(r, 0)
}

fn deployment_at(r: &Row, base: usize) -> Result<Deployment> {
    RawDeployment {
        campaign_id: r.try_get(base)?,
        device_id: r.try_get(base + 1)?,
        state: r.try_get(base + 2)?,
        bytes: r.try_get(base + 3)?,
        last_seq: r.try_get(base + 4)?,
        updated_at: r.try_get(base + 5)?,
    }
    .parse()
}

fn campaign_from(r: &Row) -> Result<CampaignRecord> {
    let row: CampaignRow = (
        r.try_get(0)?,
        r.try_get(1)?,
        r.try_get(2)?,
        r.try_get(3)?,
        r.try_get(4)?,
        r.try_get(5)?,
        r.try_get(6)?,
    );
    parse_campaign(row)
}

/// Appends an audit line. Run it after `pg_advisory_xact_lock(LOCK_SPACE, AUDIT_LOCK)` in the
/// same transaction: the number is taken under a lock held to the commit, so the next writer
/// waits for this one's commit and then sees its row, and numbers have no gaps and appear in
/// order.
const INSERT_AUDIT: &str = "INSERT INTO audit (id, at, actor, action, subject, detail)
     SELECT COALESCE(MAX(id), 0) + 1, $1, $2, $3, $4, $5 FROM audit";

fn audit_params<'a>(e: &'a AuditEntry, at: &'a String) -> [&'a (dyn ToSql + Sync); 5] {
    [at, &e.actor, &e.action, &e.subject, &e.detail]
}

fn big(n: u64) -> Result<i64> {
    i64::try_from(n).map_err(corrupt)
}

impl PostgresStore {
    /// The device with `token_hash` and its open deployments, in one query; kept in the cache
    /// if it is live and nothing dropped them since the query began.
    fn query_device_and_open(&self, token_hash: &str) -> Result<Option<(Device, Vec<Deployment>)>> {
        let ticket = self.cache.ticket();
        let rows = self.conn()?.query(
            concat!(
                "SELECT ",
                device_cols!(),
                ", p.campaign_id, p.device_id, p.state, p.bytes, p.last_seq, p.updated_at
                 FROM devices d
                 LEFT JOIN (deployments p JOIN campaigns c
                            ON c.id = p.campaign_id AND c.status <> 'closed')
                   ON p.device_id = d.id
                 WHERE d.token_hash = $1
                 ORDER BY c.created_at DESC, c.id DESC"
            ),
            &[&token_hash],
        )?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let device = identity(&device_from(first, 0)?.parse()?);
        let mut open = Vec::new();
        for r in &rows {
            // A device in no open campaign comes back as one row without a deployment.
            if r.try_get::<_, Option<String>>(9)?.is_some() {
                open.push(deployment_at(r, 9)?);
            }
        }
        self.cache.remember_device(token_hash, &device, ticket);
        self.cache.remember_open(device.id, &open, ticket);
        Ok(Some((device, open)))
    }
}

/// Reads every device's identity and open deployments into the cache, so that a replica that
/// starts, or whose listener came back, answers check-ins from memory at once instead of with a
/// query each (at 100,000 devices a cold replica answered a seventh of a warm one's check-ins
/// until most had asked once). Runs on the listener's connection right after `LISTEN`: a notice
/// that arrives meanwhile is applied, and the ticket keeps the older rows from undoing it.
/// Answers how many devices were read.
async fn warm(cache: &Cache, client: &tokio_postgres::Client) -> Result<usize> {
    use futures_lite::StreamExt;

    let ticket = cache.ticket();
    let rows = client
        .query_raw(
            concat!(
                "SELECT ",
                device_cols!(),
                ", d.token_hash, p.campaign_id, p.device_id, p.state, p.bytes, p.last_seq, p.updated_at
                 FROM devices d
                 LEFT JOIN (deployments p JOIN campaigns c
                            ON c.id = p.campaign_id AND c.status <> 'closed')
                   ON p.device_id = d.id
                 ORDER BY d.id, c.created_at DESC, c.id DESC"
            ),
            std::iter::empty::<i64>(),
        )
        .await?;
    let mut rows = std::pin::pin!(rows);
    let mut current: Option<(String, Device, Vec<Deployment>)> = None;
    let mut devices = 0;
    while let Some(row) = rows.next().await {
        let row = row?;
        let device = identity(&device_from(&row, 0)?.parse()?);
        if current.as_ref().is_none_or(|(_, d, _)| d.id != device.id) {
            if let Some((hash, d, open)) = current.take() {
                cache.remember_device(&hash, &d, ticket);
                cache.remember_open(d.id, &open, ticket);
                devices += 1;
            }
            current = Some((row.try_get(9)?, device, Vec::new()));
        }
        // A device in no open campaign comes back as one row without a deployment.
        if row.try_get::<_, Option<String>>(10)?.is_some()
            && let Some((_, _, open)) = current.as_mut()
        {
            open.push(deployment_at(&row, 10)?);
        }
    }
    if let Some((hash, d, open)) = current {
        cache.remember_device(&hash, &d, ticket);
        cache.remember_open(d.id, &open, ticket);
        devices += 1;
    }
    Ok(devices)
}

impl Store for PostgresStore {
    /// While the cache's listener is connected: a check-in's look-ups are answered from memory
    /// once read, and a miss reads the database without stalling the caller's async worker.
    fn reads_from_memory(&self) -> bool {
        self.cache.is_live()
    }

    fn remembered_device(&self, token_hash: &str) -> Option<Device> {
        self.cache.device(token_hash)
    }

    fn setting(&self, key: &str) -> Result<Option<String>> {
        self.conn()?
            .query_opt("SELECT value FROM settings WHERE key = $1", &[&key])?
            .map(|r| Ok(r.try_get(0)?))
            .transpose()
    }

    fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.conn()?.execute(
            "INSERT INTO settings (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&key, &value],
        )?;
        Ok(())
    }

    fn insert_setting_if_absent(&self, key: &str, value: &str) -> Result<String> {
        let mut conn = self.conn()?;
        conn.execute(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            &[&key, &value],
        )?;
        Ok(conn
            .query_one("SELECT value FROM settings WHERE key = $1", &[&key])?
            .try_get(0)?)
    }

    fn upsert_institutions(&self, institutions: &[Institution], at: Timestamp) -> Result<usize> {
        // One statement per chunk; a code twice in one import takes its last row (as one
        // statement cannot update a row twice).
        let mut last: HashMap<InstitutionCode, &Institution> = HashMap::new();
        for i in institutions {
            last.insert(i.code, i);
        }
        let mut unique: Vec<&Institution> = last.into_values().collect();
        unique.sort_by_key(|i| i.code.to_string());
        let now = db_time(at);
        let mut conn = self.conn()?;
        let st = conn.prep(
            "INSERT INTO institutions (code, name, kind, prefecture, email, auto_restart, phone, created_at, updated_at)
             SELECT u.code, u.name, u.kind, u.prefecture, u.email, u.auto_restart, u.phone, $8, $8
             FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[])
               AS u (code, name, kind, prefecture, email, auto_restart, phone)
             ON CONFLICT (code) DO UPDATE SET name = excluded.name, kind = excluded.kind,
               prefecture = excluded.prefecture, email = excluded.email,
               auto_restart = excluded.auto_restart, phone = excluded.phone,
               updated_at = excluded.updated_at",
        )?;
        let mut tx = conn.transaction()?;
        for chunk in unique.chunks(UPSERT_CHUNK) {
            let codes: Vec<String> = chunk.iter().map(|i| i.code.to_string()).collect();
            let names: Vec<&str> = chunk.iter().map(|i| i.name.as_str()).collect();
            let kinds: Vec<&str> = chunk.iter().map(|i| i.kind.slug()).collect();
            let prefs: Vec<i64> = chunk
                .iter()
                .map(|i| i64::from(i.prefecture.number()))
                .collect();
            let emails: Vec<&str> = chunk.iter().map(|i| i.email.as_str()).collect();
            let restarts: Vec<Option<String>> =
                chunk.iter().map(|i| i.auto_restart.map(hhmm)).collect();
            let phones: Vec<Option<&str>> = chunk.iter().map(|i| i.phone.as_deref()).collect();
            tx.execute(
                &st,
                &[
                    &codes, &names, &kinds, &prefs, &emails, &restarts, &phones, &now,
                ],
            )?;
        }
        tx.commit()?;
        Ok(institutions.len())
    }

    fn institution(&self, code: InstitutionCode) -> Result<Option<Institution>> {
        self.conn()?
            .query_opt(
                concat!(
                    "SELECT ",
                    institution_cols!(),
                    " FROM institutions i WHERE i.code = $1"
                ),
                &[&code.to_string()],
            )?
            .map(|r| institution_from(&r, 0)?.parse())
            .transpose()
    }

    fn institutions(&self, filter: &InstitutionFilter) -> Result<(Vec<Institution>, u64)> {
        let pref = filter.prefecture.map(|p| i64::from(p.number()));
        let kind = filter.kind.map(InstitutionKind::slug);
        let mut conn = self.conn()?;
        let total: i64 = conn
            .query_one(
                "SELECT COUNT(*) FROM institutions i
                 WHERE ($1::bigint IS NULL OR i.prefecture = $1) AND ($2::text IS NULL OR i.kind = $2)",
                &[&pref, &kind],
            )?
            .try_get(0)?;
        let rows = conn.query(
            concat!(
                "SELECT ",
                institution_cols!(),
                " FROM institutions i
                 WHERE ($1::bigint IS NULL OR i.prefecture = $1) AND ($2::text IS NULL OR i.kind = $2)
                 ORDER BY i.code LIMIT $3 OFFSET $4"
            ),
            &[
                &pref,
                &kind,
                &i64::from(filter.limit),
                &i64::from(filter.offset),
            ],
        )?;
        let list = rows
            .iter()
            .map(|r| institution_from(r, 0)?.parse())
            .collect::<Result<Vec<_>>>()?;
        Ok((list, u64::try_from(total).unwrap_or(0)))
    }

    fn set_institution_key(
        &self,
        code: InstitutionCode,
        which: InstitutionKey,
        hash: &str,
    ) -> Result<()> {
        let sql = match which {
            InstitutionKey::Enrollment => {
                "UPDATE institutions SET enrollment_key_hash = $1 WHERE code = $2"
            }
            InstitutionKey::Access => {
                "UPDATE institutions SET access_key_hash = $1 WHERE code = $2"
            }
        };
        let n = self.conn()?.execute(sql, &[&hash, &code.to_string()])?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("institution {code}")));
        }
        Ok(())
    }

    fn institution_key(
        &self,
        code: InstitutionCode,
        which: InstitutionKey,
    ) -> Result<Option<String>> {
        let sql = match which {
            InstitutionKey::Enrollment => {
                "SELECT enrollment_key_hash FROM institutions WHERE code = $1"
            }
            InstitutionKey::Access => "SELECT access_key_hash FROM institutions WHERE code = $1",
        };
        let row = self.conn()?.query_opt(sql, &[&code.to_string()])?;
        Ok(row
            .map(|r| r.try_get::<_, Option<String>>(0))
            .transpose()?
            .flatten())
    }

    fn create_sign_in_link(&self, link: &NewSignInLink<'_>) -> Result<()> {
        let stale = link
            .created_at
            .checked_sub(jiff::SignedDuration::from_hours(24))
            .unwrap_or(link.created_at);
        let mut conn = self.conn()?;
        conn.execute(
            "DELETE FROM sign_in_links WHERE expires_at < $1",
            &[&db_time(stale)],
        )?;
        conn.execute(
            "INSERT INTO sign_in_links
               (token_hash, institution_code, key_generation, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &link.token_hash,
                &link.institution.to_string(),
                &link.generation,
                &db_time(link.created_at),
                &db_time(link.expires_at),
            ],
        )?;
        Ok(())
    }

    fn redeem_sign_in_link(
        &self,
        token_hash: &str,
        at: Timestamp,
    ) -> Result<Option<(InstitutionCode, String)>> {
        // One conditional UPDATE: of two replicas racing with one link, the row lock lets the
        // second see `used_at` set and match nothing.
        let row = self.conn()?.query_opt(
            "UPDATE sign_in_links SET used_at = $2
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2
             RETURNING institution_code, key_generation",
            &[&token_hash, &db_time(at)],
        )?;
        row.map(|r| {
            let code: String = r.try_get(0)?;
            let generation: String = r.try_get(1)?;
            InstitutionCode::parse(&code)
                .map(|c| (c, generation))
                .map_err(crate::rows::corrupt)
        })
        .transpose()
    }

    fn create_site_session(&self, s: &NewSiteSession<'_>, limits: &SessionLimits) -> Result<()> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        let purge = tx.prep("DELETE FROM site_sessions WHERE seen_at < $1 OR created_at < $2")?;
        tx.execute(
            &purge,
            &[&db_time(limits.idle_since), &db_time(limits.created_since)],
        )?;
        let insert = tx.prep(
            "INSERT INTO site_sessions
               (id_hash, institution_code, key_generation, csrf, created_at, seen_at)
             VALUES ($1, $2, $3, $4, $5, $5)",
        )?;
        tx.execute(
            &insert,
            &[
                &s.id_hash,
                &s.institution.to_string(),
                &s.generation,
                &s.csrf,
                &db_time(s.at),
            ],
        )?;
        let keep = tx.prep(
            "DELETE FROM site_sessions WHERE institution_code = $1 AND id_hash NOT IN
               (SELECT id_hash FROM site_sessions WHERE institution_code = $1
                ORDER BY seen_at DESC, created_at DESC LIMIT $2)",
        )?;
        tx.execute(&keep, &[&s.institution.to_string(), &i64::from(s.keep)])?;
        tx.commit()?;
        Ok(())
    }

    fn resume_site_session(
        &self,
        id_hash: &str,
        limits: &SessionLimits,
        at: Timestamp,
    ) -> Result<Option<SiteSession>> {
        let row = self.conn()?.query_opt(
            "UPDATE site_sessions SET seen_at = $2
             WHERE id_hash = $1 AND seen_at >= $3 AND created_at >= $4
             RETURNING institution_code, key_generation, csrf",
            &[
                &id_hash,
                &db_time(at),
                &db_time(limits.idle_since),
                &db_time(limits.created_since),
            ],
        )?;
        row.map(|r| {
            let code: String = r.try_get(0)?;
            Ok(SiteSession {
                institution: InstitutionCode::parse(&code).map_err(crate::rows::corrupt)?,
                generation: r.try_get(1)?,
                csrf: r.try_get(2)?,
            })
        })
        .transpose()
    }

    fn end_site_session(&self, id_hash: &str) -> Result<()> {
        self.conn()?
            .execute("DELETE FROM site_sessions WHERE id_hash = $1", &[&id_hash])?;
        Ok(())
    }

    fn end_site_sessions_of(&self, code: InstitutionCode) -> Result<u64> {
        self.conn()?.execute(
            "DELETE FROM site_sessions WHERE institution_code = $1",
            &[&code.to_string()],
        )
    }

    fn set_enrollment_key(
        &self,
        code: InstitutionCode,
        hash: &str,
        expires: Timestamp,
        uses: u32,
    ) -> Result<()> {
        let n = self.conn()?.execute(
            "UPDATE institutions SET enrollment_key_hash = $1, enrollment_key_expires_at = $2,
               enrollment_key_uses_left = $3
             WHERE code = $4",
            &[
                &hash,
                &db_time(expires),
                &i64::from(uses),
                &code.to_string(),
            ],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("institution {code}")));
        }
        Ok(())
    }

    fn enrol_device(&self, d: &NewDevice, rules: &EnrolRules<'_>, at: Timestamp) -> Result<Device> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        let code = d.institution.to_string();
        let at_text = db_time(at);
        // The site's row is locked to the commit, so two replicas enrolling at one site at once
        // count and check one after the other.
        let site = match rules.key_hash {
            // A key without an expiry or a use count (NULL) is refused: migration 0011 gave the
            // keys issued before both existed a week and one use.
            Some(key) => tx.query_opt(
                "UPDATE institutions SET enrollment_key_uses_left = enrollment_key_uses_left - 1
                 WHERE code = $1 AND enrollment_key_hash = $2
                   AND enrollment_key_expires_at > $3 AND enrollment_key_uses_left > 0
                 RETURNING code",
                &[&code, &key, &at_text],
            )?,
            None => tx.query_opt(
                "SELECT code FROM institutions WHERE code = $1 FOR UPDATE",
                &[&code],
            )?,
        };
        if site.is_none() {
            return Err(match rules.key_hash {
                Some(_) => EnrolRefusal::Key.into(),
                None => StoreError::NotFound(format!("institution {code}")),
            });
        }
        let live = tx.query_opt(
            "SELECT revoked_at IS NULL FROM devices
             WHERE institution_code = $1 AND kind = $2 AND serial = $3",
            &[&code, &d.kind.slug(), &d.serial],
        )?;
        if live.map(|r| r.try_get::<_, bool>(0)).transpose()? == Some(true) {
            return Err(EnrolRefusal::SerialTaken.into());
        }
        if rules.cap > 0 {
            let row = match d.parent {
                Some(parent) => tx.query_one(
                    "SELECT COUNT(*) FROM devices WHERE parent_id = $1 AND kind = $2
                       AND revoked_at IS NULL",
                    &[&parent, &d.kind.slug()],
                )?,
                None => tx.query_one(
                    "SELECT COUNT(*) FROM devices WHERE institution_code = $1 AND kind = $2
                       AND revoked_at IS NULL",
                    &[&code, &d.kind.slug()],
                )?,
            };
            if row.try_get::<_, i64>(0)? >= i64::from(rules.cap) {
                return Err(EnrolRefusal::Full.into());
            }
        }
        if rules.site_cap > 0 {
            // The site's row is locked (above): replicas count one after the other.
            let row = tx.query_one(
                "SELECT COUNT(*) FROM devices WHERE institution_code = $1 AND kind = $2
                   AND revoked_at IS NULL",
                &[&code, &d.kind.slug()],
            )?;
            if row.try_get::<_, i64>(0)? >= i64::from(rules.site_cap) {
                return Err(EnrolRefusal::Full.into());
            }
        }
        // Only a revoked device's row can conflict here: it is enrolled again, same id. The
        // notice is sent by the same statement: every replica forgets the old token when this
        // commits.
        let row = tx.query_one(
            concat!(
                "WITH e AS (
                 INSERT INTO devices AS d (institution_code, kind, vendor, serial, parent_id, token_hash, enrolled_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (institution_code, kind, serial) DO UPDATE SET
                   token_hash = excluded.token_hash, vendor = excluded.vendor,
                   parent_id = excluded.parent_id, enrolled_at = excluded.enrolled_at,
                   revoked_at = NULL
                 RETURNING ",
                device_cols!(),
                ") SELECT e.*, pg_notify($8, 'd:' || e.id) FROM e"
            ),
            &[
                &code,
                &d.kind.slug(),
                &d.vendor.map(Vendor::slug),
                &d.serial,
                &d.parent,
                &d.token_hash,
                &at_text,
                &self.channel,
            ],
        )?;
        tx.commit()?;
        let device = device_from(&row, 0)?.parse()?;
        self.cache.apply(&device_changed(device.id));
        Ok(device)
    }

    fn revoke_device(&self, id: i64, at: Timestamp) -> Result<Vec<i64>> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        if tx
            .query_opt("SELECT id FROM devices WHERE id = $1", &[&id])?
            .is_none()
        {
            return Err(StoreError::NotFound(format!("device {id}")));
        }
        // Every replica forgets the tokens when this commits (the notices of the statement).
        let rows = tx.query(
            "WITH r AS (
               UPDATE devices SET revoked_at = $2, token_hash = 'revoked:' || id
               WHERE (id = $1 OR parent_id = $1) AND revoked_at IS NULL
               RETURNING id
             )
             SELECT r.id, pg_notify($3, 'd:' || r.id) FROM r",
            &[&id, &db_time(at), &self.channel],
        )?;
        let revoked = rows
            .iter()
            .map(|r| r.try_get::<_, i64>(0))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        tx.execute("DELETE FROM leases WHERE device_id = ANY($1)", &[&revoked])?;
        tx.commit()?;
        for device in &revoked {
            self.cache.apply(&device_changed(*device));
        }
        Ok(revoked)
    }

    fn device_by_token(&self, token_hash: &str) -> Result<Option<Device>> {
        if let Some(device) = self.cache.device(token_hash) {
            return Ok(Some(device));
        }
        // A check-in asks for the open deployments next: read (and keep) both at once.
        Ok(self.query_device_and_open(token_hash)?.map(|(d, _)| d))
    }

    fn device_and_open_deployments(
        &self,
        token_hash: &str,
    ) -> Result<Option<(Device, Vec<Deployment>)>> {
        if let Some(device) = self.cache.device(token_hash) {
            let open = self.open_deployments_of(device.id)?;
            return Ok(Some((device, open)));
        }
        self.query_device_and_open(token_hash)
    }

    fn device(&self, id: i64) -> Result<Option<Device>> {
        self.conn()?
            .query_opt(
                concat!("SELECT ", device_cols!(), " FROM devices d WHERE d.id = $1"),
                &[&id],
            )?
            .map(|r| device_from(&r, 0)?.parse())
            .transpose()
    }

    fn devices_of(&self, code: InstitutionCode) -> Result<Vec<Device>> {
        self.flush()?;
        self.conn()?
            .query(
                concat!(
                    "SELECT ",
                    device_cols!(),
                    " FROM devices d WHERE d.institution_code = $1 AND d.revoked_at IS NULL ORDER BY d.id"
                ),
                &[&code.to_string()],
            )?
            .iter()
            .map(|r| device_from(r, 0)?.parse())
            .collect()
    }

    fn all_devices(&self) -> Result<Vec<(Device, Institution)>> {
        self.conn()?
            .query(
                concat!(
                    "SELECT ",
                    device_cols!(),
                    ", ",
                    institution_cols!(),
                    " FROM devices d JOIN institutions i ON i.code = d.institution_code WHERE d.revoked_at IS NULL ORDER BY d.id"
                ),
                &[],
            )?
            .iter()
            .map(|r| Ok((device_from(r, 0)?.parse()?, institution_from(r, 9)?.parse()?)))
            .collect()
    }

    fn record_contact(
        &self,
        id: i64,
        installed: Option<&Version>,
        running: Option<&Version>,
        at: Timestamp,
    ) -> Result<()> {
        self.contacts.record(id, installed, running, at);
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        while self.flush_some(FLUSH_CHUNK)? > 0 {}
        Ok(())
    }

    fn flush_some(&self, max: usize) -> Result<usize> {
        self.contacts
            .drain(max, FLUSH_CHUNK, |chunk: &[(i64, Contact)]| -> Result<()> {
                // In id order, so that two replicas writing overlapping devices lock rows in
                // the same order and never deadlock. A contact older than the stored one
                // (another replica wrote a newer one) changes nothing: the newest instant and
                // its versions win.
                let mut rows: Vec<&(i64, Contact)> = chunk.iter().collect();
                rows.sort_by_key(|(id, _)| *id);
                let ids: Vec<i64> = rows.iter().map(|(id, _)| *id).collect();
                let ats: Vec<String> = rows.iter().map(|(_, c)| db_time(c.at)).collect();
                let installed: Vec<Option<&str>> =
                    rows.iter().map(|(_, c)| c.installed.as_deref()).collect();
                let running: Vec<Option<&str>> =
                    rows.iter().map(|(_, c)| c.running.as_deref()).collect();
                self.conn()?.execute(
                    "UPDATE devices AS d SET last_contact = GREATEST(d.last_contact, v.at),
                       installed_version = CASE WHEN v.at >= COALESCE(d.last_contact, '')
                         THEN COALESCE(v.installed, d.installed_version) ELSE d.installed_version END,
                       running_version = CASE WHEN v.at >= COALESCE(d.last_contact, '')
                         THEN COALESCE(v.running, d.running_version) ELSE d.running_version END
                     FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[])
                       AS v (id, at, installed, running)
                     WHERE d.id = v.id",
                    &[&ids, &ats, &installed, &running],
                )?;
                Ok(())
            })
    }

    fn add_artifact(&self, sha256: Sha256, size: u64, at: Timestamp) -> Result<()> {
        self.conn()?.execute(
            "INSERT INTO artifacts (sha256, size, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (sha256) DO NOTHING",
            &[&sha256.hex(), &big(size)?, &db_time(at)],
        )?;
        Ok(())
    }

    fn artifact(&self, sha256: Sha256) -> Result<Option<u64>> {
        let row = self.conn()?.query_opt(
            "SELECT size FROM artifacts WHERE sha256 = $1",
            &[&sha256.hex()],
        )?;
        row.map(|r| u64::try_from(r.try_get::<_, i64>(0)?).map_err(corrupt))
            .transpose()
    }

    fn insert_release(&self, release: &Release, at: Timestamp) -> Result<()> {
        self.conn()?.execute(
            "INSERT INTO releases (id, version, manifest, signature, created_at) VALUES ($1, $2, $3, $4, $5)",
            &[
                &release.id,
                &release.manifest.version.to_string(),
                &release.signed.signed,
                &rows::signatures_text(&release.signed)?,
                &db_time(at),
            ],
        )?;
        Ok(())
    }

    fn release(&self, id: &str) -> Result<Option<Release>> {
        let row = self.conn()?.query_opt(
            "SELECT manifest, signature FROM releases WHERE id = $1",
            &[&id],
        )?;
        row.map(|r| {
            let manifest: String = r.try_get(0)?;
            let signatures: String = r.try_get(1)?;
            rows::release_row(id, manifest, &signatures)
        })
        .transpose()
    }

    fn release_manifests(&self) -> Result<Vec<(String, String)>> {
        self.conn()?
            .query("SELECT id, manifest FROM releases ORDER BY id", &[])?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    fn release_count(&self) -> Result<u64> {
        let n: i64 = self
            .conn()?
            .query_one("SELECT count(*) FROM releases", &[])?
            .try_get(0)?;
        u64::try_from(n).map_err(rows::corrupt)
    }

    fn insert_campaign(&self, c: &CampaignRecord, at: Timestamp) -> Result<()> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        insert_campaign_in(&mut tx, c, at)?;
        tx.commit()
    }

    fn campaign(&self, id: &str) -> Result<Option<CampaignRecord>> {
        self.conn()?
            .query_opt(
                concat!("SELECT ", campaign_cols!(), " FROM campaigns WHERE id = $1"),
                &[&id],
            )?
            .map(|r| campaign_from(&r))
            .transpose()
    }

    fn campaigns(&self) -> Result<Vec<CampaignRecord>> {
        self.conn()?
            .query(
                concat!(
                    "SELECT ",
                    campaign_cols!(),
                    " FROM campaigns ORDER BY created_at, id"
                ),
                &[],
            )?
            .iter()
            .map(campaign_from)
            .collect()
    }

    fn set_campaign_status(&self, id: &str, status: CampaignStatus, at: Timestamp) -> Result<()> {
        // Closing a campaign closes its deployments: every replica forgets the open ones.
        let n: i64 = self
            .conn()?
            .query_one(
                "WITH u AS (UPDATE campaigns SET status = $2, updated_at = $3 WHERE id = $1 RETURNING 1)
                 SELECT (SELECT COUNT(*) FROM u), pg_notify($4, $5)",
                &[
                    &id,
                    &status.slug(),
                    &db_time(at),
                    &self.channel,
                    &ALL_DEPLOYMENTS_CHANGED,
                ],
            )?
            .try_get(0)?;
        self.cache.apply(ALL_DEPLOYMENTS_CHANGED);
        if n == 0 {
            return Err(StoreError::NotFound(format!("campaign {id}")));
        }
        Ok(())
    }

    fn ensure_deployments(&self, campaign: &str, devices: &[i64], at: Timestamp) -> Result<usize> {
        // One statement: an unknown device fails it whole, so nothing is added. When any was
        // added, the notice goes in the same transaction.
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        let n = tx.execute(
            "INSERT INTO deployments (campaign_id, device_id, state, bytes, last_seq, updated_at)
             SELECT $1, u.id, 'waiting', 0, 0, $3 FROM unnest($2::bigint[]) AS u (id)
             ON CONFLICT (campaign_id, device_id) DO NOTHING",
            &[&campaign, &devices, &db_time(at)],
        )?;
        if n > 0 {
            tx.execute(
                "SELECT pg_notify($1, $2)",
                &[&self.channel, &ALL_DEPLOYMENTS_CHANGED],
            )?;
        }
        tx.commit()?;
        if n > 0 {
            self.cache.apply(ALL_DEPLOYMENTS_CHANGED);
        }
        if n >= ANALYZE_AFTER {
            // A campaign just got its fleet: until autovacuum notices (a minute or more), the
            // planner would take the campaign's deployments for a handful of rows and scan all
            // of them for every page of sites the notices worker plans (150 ms a page at
            // 100,000 devices, against 0.4 ms with statistics).
            conn.execute("ANALYZE institutions, devices, deployments", &[])?;
        }
        usize::try_from(n).map_err(corrupt)
    }

    fn open_deployments_of(&self, device: i64) -> Result<Vec<Deployment>> {
        match self.cache.open(device) {
            Some(open) => Ok(open),
            None => self.query_open(device),
        }
    }

    fn open_deployments_fresh(&self, device: i64) -> Result<Vec<Deployment>> {
        self.query_open(device)
    }

    fn apply_report_logged(
        &self,
        r: &Report<'_>,
        audit: Option<&AuditEntry>,
    ) -> Result<ReportOutcome> {
        let Report {
            campaign,
            device,
            seq,
            from,
            to,
            bytes,
            at,
        } = *r;
        let mut conn = self.conn()?;
        // Two replicas updating the same row are serialised by its row lock, and the second
        // re-checks the condition on the row the first wrote, so only one of two reports with
        // the same seq applies.
        // The notice is sent by the same statement, so it is delivered when the change commits.
        let update = conn.prep(concat!(
            "WITH u AS (
             UPDATE deployments SET state = $4, bytes = $5, last_seq = $3, updated_at = $6
             WHERE campaign_id = $1 AND device_id = $2 AND last_seq < $3 AND state = $7
             RETURNING ",
            deployment_cols!(),
            ") SELECT u.*, pg_notify($8, 'p:' || u.device_id) FROM u"
        ))?;
        let (bytes, at) = (big(bytes)?, db_time(at));
        let params: [&(dyn ToSql + Sync); 8] = [
            &campaign,
            &device,
            &seq,
            &to.slug(),
            &bytes,
            &at,
            &from.slug(),
            &self.channel,
        ];
        let applied = match audit {
            // One statement, committed when it returns.
            None => conn.query_opt_st(&update, &params)?,
            // The update and its audit line in one transaction.
            Some(entry) => {
                let lock = conn.prep("SELECT pg_advisory_xact_lock($1, $2)")?;
                let insert = conn.prep(INSERT_AUDIT)?;
                let mut tx = conn.transaction()?;
                let row = tx.query_opt(&update, &params)?;
                if row.is_some() {
                    tx.execute(&lock, &[&LOCK_SPACE, &AUDIT_LOCK])?;
                    tx.execute(&insert, &audit_params(entry, &db_time(entry.at)))?;
                }
                tx.commit()?;
                row
            }
        };
        if let Some(row) = applied {
            self.cache.apply(&deployments_changed(device));
            return Ok(ReportOutcome::Applied(deployment_from(&row)?));
        }
        let current = conn
            .query_opt(
                concat!(
                    "SELECT ",
                    deployment_cols!(),
                    " FROM deployments WHERE campaign_id = $1 AND device_id = $2"
                ),
                &[&campaign, &device],
            )?
            .ok_or_else(|| {
                StoreError::NotFound(format!("deployment of device {device} in {campaign}"))
            })?;
        let current = deployment_from(&current)?;
        if current.last_seq >= seq {
            Ok(ReportOutcome::Stale(current))
        } else {
            Err(StoreError::Conflict(format!(
                "deployment is {} now, not {}",
                current.state, from
            )))
        }
    }

    fn acquire_lease(
        &self,
        campaign: &str,
        device: i64,
        now: Timestamp,
        expires: Timestamp,
        max: u32,
    ) -> Result<bool> {
        let (now_s, expires_s) = (db_time(now), db_time(expires));
        let mut conn = self.conn()?;
        // Renewing a live slot changes no count: no lock needed. Nor does refusing while every
        // slot is live: a count read without the lock may be stale either way, and both are
        // safe — too high (a slot freed since) only delays a device; too low (a slot being taken
        // under the lock) sends it to the locked path, which counts again. Only a device that
        // may get a free slot takes the campaign's lock; while the throttle is full, the many
        // waiting devices do not queue on it.
        let row = conn.query_one(
            "WITH renewed AS (
                 UPDATE leases SET expires_at = $3
                 WHERE campaign_id = $1 AND device_id = $2 AND expires_at > $4
                 RETURNING 1
             )
             SELECT (SELECT COUNT(*) FROM renewed),
                    (SELECT COUNT(*) FROM leases WHERE campaign_id = $1 AND expires_at > $4)",
            &[&campaign, &device, &expires_s, &now_s],
        )?;
        let (renewed, live): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        if renewed == 1 {
            return Ok(true);
        }
        if live >= i64::from(max) {
            return Ok(false);
        }
        let lock = conn.prep("SELECT pg_advisory_xact_lock($1, hashtext($2))")?;
        let reclaim =
            conn.prep("DELETE FROM leases WHERE campaign_id = $1 AND expires_at <= $2")?;
        let count = conn.prep("SELECT COUNT(*) FROM leases WHERE campaign_id = $1")?;
        let insert = conn.prep(
            "INSERT INTO leases (campaign_id, device_id, expires_at, taken_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (campaign_id, device_id)
             DO UPDATE SET expires_at = excluded.expires_at, taken_at = excluded.taken_at",
        )?;
        // Reclaim, count and take under one lock per campaign, held to the commit: replicas
        // take slots of one campaign one at a time, so the count they see is the true one.
        let mut tx = conn.transaction()?;
        tx.execute(&lock, &[&LOCK_SPACE, &campaign])?;
        tx.execute(&reclaim, &[&campaign, &now_s])?;
        let live: i64 = tx.query_one(&count, &[&campaign])?.try_get(0)?;
        if live >= i64::from(max) {
            tx.commit()?;
            return Ok(false);
        }
        tx.execute(&insert, &[&campaign, &device, &expires_s, &now_s])?;
        tx.commit()?;
        Ok(true)
    }

    fn take_turn(&self, ask: &TurnAsk<'_>) -> Result<Turn> {
        self.take_shared_turn(ask)
    }

    fn queue_place(&self, campaign: &str, device: i64) -> Result<Option<(u64, Timestamp)>> {
        self.shared_place(campaign, device)
    }

    fn queue_length(&self, campaign: &str) -> Result<u64> {
        let n: i64 = self
            .conn()?
            .query_one(
                "SELECT COUNT(*) FROM slot_queue WHERE campaign_id = $1",
                &[&campaign],
            )?
            .try_get(0)?;
        Ok(n.max(0) as u64)
    }

    fn ping(&self) -> Result<()> {
        self.conn()?.query_one("SELECT 1", &[])?;
        Ok(())
    }

    fn has_lease(&self, campaign: &str, device: i64, now: Timestamp) -> Result<bool> {
        let n: i64 = self
            .conn()?
            .query_one(
                "SELECT COUNT(*) FROM leases WHERE campaign_id = $1 AND device_id = $2 AND expires_at > $3",
                &[&campaign, &device, &db_time(now)],
            )?
            .try_get(0)?;
        Ok(n > 0)
    }

    fn release_lease(&self, campaign: &str, device: i64) -> Result<()> {
        self.give_back_shared(campaign, device)
    }

    fn live_leases(&self, campaign: &str, now: Timestamp) -> Result<u64> {
        let n: i64 = self
            .conn()?
            .query_one(
                "SELECT COUNT(*) FROM leases WHERE campaign_id = $1 AND expires_at > $2",
                &[&campaign, &db_time(now)],
            )?
            .try_get(0)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn progress(&self, campaign: &str) -> Result<Vec<ProgressRow>> {
        self.conn()?
            .query(
                "SELECT p.state, d.kind, i.prefecture, i.kind, d.vendor, COUNT(*)
                 FROM deployments p JOIN devices d ON d.id = p.device_id
                 JOIN institutions i ON i.code = d.institution_code
                 WHERE p.campaign_id = $1
                 GROUP BY p.state, d.kind, i.prefecture, i.kind, d.vendor",
                &[&campaign],
            )?
            .iter()
            .map(|r| {
                let pref: i64 = r.try_get(2)?;
                Ok(ProgressRow {
                    state: r.try_get::<_, String>(0)?.parse().map_err(corrupt)?,
                    device: r.try_get::<_, String>(1)?.parse().map_err(corrupt)?,
                    prefecture: u8::try_from(pref)
                        .ok()
                        .and_then(Prefecture::from_number)
                        .ok_or_else(|| corrupt(format!("prefecture {pref}")))?,
                    kind: r.try_get::<_, String>(3)?.parse().map_err(corrupt)?,
                    vendor: r
                        .try_get::<_, Option<String>>(4)?
                        .map(|v| v.parse::<Vendor>().map_err(corrupt))
                        .transpose()?,
                    count: u64::try_from(r.try_get::<_, i64>(5)?).unwrap_or(0),
                })
            })
            .collect()
    }

    fn deployments(&self, campaign: &str, f: &DeploymentFilter) -> Result<Vec<DeploymentListing>> {
        self.flush()?;
        self.conn()?
            .query(
                concat!(
                    "SELECT ",
                    device_cols!(),
                    ", ",
                    institution_cols!(),
                    ", p.state, p.bytes, p.updated_at
                     FROM deployments p JOIN devices d ON d.id = p.device_id
                     JOIN institutions i ON i.code = d.institution_code
                     WHERE p.campaign_id = $1 AND ($2::text IS NULL OR p.state = $2)
                       AND ($3::text IS NULL OR d.kind = $3) AND ($4::bigint IS NULL OR i.prefecture = $4)
                       AND ($5::text IS NULL OR i.kind = $5) AND ($6::text IS NULL OR d.vendor = $6)
                       AND ($9::text IS NULL OR (d.kind = $9 AND p.state <> $10 AND d.last_contact < $11))
                     ORDER BY i.code, d.id LIMIT $7 OFFSET $8"
                ),
                &[
                    &campaign,
                    &f.state.map(DeploymentState::slug),
                    &f.device.map(DeviceKind::slug),
                    &f.prefecture.map(|p| i64::from(p.number())),
                    &f.kind.map(InstitutionKind::slug),
                    &f.vendor.map(Vendor::slug),
                    &i64::from(f.limit),
                    &i64::from(f.offset),
                    &f.silent.map(|s| s.device.slug()),
                    &f.silent.map(|s| s.done.slug()),
                    &f.silent.map(|s| db_time(s.contact_before)),
                ],
            )?
            .iter()
            .map(|r| {
                Ok(DeploymentListing {
                    device: device_from(r, 0)?.parse()?,
                    institution: institution_from(r, 9)?.parse()?,
                    state: r.try_get::<_, String>(16)?.parse().map_err(corrupt)?,
                    bytes: u64::try_from(r.try_get::<_, i64>(17)?).unwrap_or(0),
                    updated_at: ts(&r.try_get::<_, String>(18)?)?,
                })
            })
            .collect()
    }

    fn site_facts(&self, campaign: &str) -> Result<Vec<(Institution, SiteFacts)>> {
        self.conn()?
            .query(SQL_1.as_str(), &[&campaign])?
            .iter()
            .map(|r| Ok((institution_from(r, 0)?.parse()?, facts_at(r, 7)?)))
            .collect()
    }

    fn site_facts_of(&self, campaign: &str, code: InstitutionCode) -> Result<SiteFacts> {
        let row = self
            .conn()?
            .query_one(SQL_2.as_str(), &[&campaign, &code.to_string()])?;
        facts_at(&row, 0)
    }

    fn enqueue_mail(&self, m: &NewMail<'_>) -> Result<bool> {
        let n = self.conn()?.execute(
            "INSERT INTO outbox (campaign_id, institution_code, kind, notice_key, recipient,
                subject, body, next_attempt_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
             ON CONFLICT (campaign_id, institution_code, kind, notice_key) DO NOTHING",
            &[
                &m.campaign,
                &m.institution.to_string(),
                &m.kind.slug(),
                &m.key,
                &m.recipient,
                &m.subject,
                &m.body,
                &db_time(m.at),
            ],
        )?;
        Ok(n == 1)
    }

    fn mail_keys(&self, campaign: &str) -> Result<Vec<(InstitutionCode, NoticeKind, String)>> {
        self.conn()?
            .query(
                "SELECT institution_code, kind, notice_key FROM outbox WHERE campaign_id = $1",
                &[&campaign],
            )?
            .iter()
            .map(|r| {
                let kind: String = r.try_get(1)?;
                Ok((
                    InstitutionCode::parse(&r.try_get::<_, String>(0)?).map_err(corrupt)?,
                    NoticeKind::parse(&kind)
                        .ok_or_else(|| corrupt(format!("notice kind {kind}")))?,
                    r.try_get(2)?,
                ))
            })
            .collect()
    }

    fn site_facts_page(
        &self,
        campaign: &str,
        after: Option<InstitutionCode>,
        limit: u32,
    ) -> Result<SiteFactsPage> {
        let after = after.map(|c| c.to_string());
        let mut conn = self.conn()?;
        let through: Option<String> = conn
            .query_one(
                "SELECT MAX(code) FROM (SELECT code FROM institutions
                   WHERE $1::TEXT IS NULL OR code > $1 ORDER BY code LIMIT $2) page",
                &[&after, &i64::from(limit)],
            )?
            .try_get(0)?;
        let Some(through) = through else {
            return Ok(SiteFactsPage::default());
        };
        let sites = conn
            .query(SQL_PAGE.as_str(), &[&campaign, &after, &through])?
            .iter()
            .map(|r| Ok((institution_from(r, 0)?.parse()?, facts_at(r, 7)?)))
            .collect::<Result<_>>()?;
        Ok(SiteFactsPage {
            sites,
            through: Some(InstitutionCode::parse(&through).map_err(corrupt)?),
        })
    }

    fn mail_keys_of_sites(
        &self,
        campaign: &str,
        after: Option<InstitutionCode>,
        through: InstitutionCode,
    ) -> Result<Vec<(InstitutionCode, NoticeKind, String)>> {
        self.conn()?
            .query(
                "SELECT institution_code, kind, notice_key FROM outbox
                 WHERE campaign_id = $1 AND ($2::TEXT IS NULL OR institution_code > $2)
                   AND institution_code <= $3",
                &[
                    &campaign,
                    &after.map(|c| c.to_string()),
                    &through.to_string(),
                ],
            )?
            .iter()
            .map(|r| {
                let kind: String = r.try_get(1)?;
                Ok((
                    InstitutionCode::parse(&r.try_get::<_, String>(0)?).map_err(corrupt)?,
                    NoticeKind::parse(&kind)
                        .ok_or_else(|| corrupt(format!("notice kind {kind}")))?,
                    r.try_get(2)?,
                ))
            })
            .collect()
    }

    fn enqueue_mails(&self, mails: &[NewMail<'_>]) -> Result<u64> {
        if mails.is_empty() {
            return Ok(0);
        }
        let campaigns: Vec<&str> = mails.iter().map(|m| m.campaign).collect();
        let codes: Vec<String> = mails.iter().map(|m| m.institution.to_string()).collect();
        let kinds: Vec<&str> = mails.iter().map(|m| m.kind.slug()).collect();
        let keys: Vec<&str> = mails.iter().map(|m| m.key).collect();
        let recipients: Vec<&str> = mails.iter().map(|m| m.recipient).collect();
        let subjects: Vec<&str> = mails.iter().map(|m| m.subject).collect();
        let bodies: Vec<&str> = mails.iter().map(|m| m.body).collect();
        let ats: Vec<String> = mails.iter().map(|m| db_time(m.at)).collect();
        // One statement: the batch is planned whole or not at all, its rows in key order, so
        // two replicas planning the same page lock them in the same order (no deadlock).
        let n = self.conn()?.execute(
            "INSERT INTO outbox (campaign_id, institution_code, kind, notice_key, recipient,
                subject, body, next_attempt_at, created_at)
             SELECT u.c, u.i, u.k, u.n, u.r, u.s, u.b, u.a, u.a
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::text[], $7::text[], $8::text[]) AS u (c, i, k, n, r, s, b, a)
             ORDER BY u.c, u.i, u.k, u.n
             ON CONFLICT (campaign_id, institution_code, kind, notice_key) DO NOTHING",
            &[
                &campaigns,
                &codes,
                &kinds,
                &keys,
                &recipients,
                &subjects,
                &bodies,
                &ats,
            ],
        )?;
        Ok(n)
    }

    fn silent_of_sites(
        &self,
        campaign: &str,
        rule: &Silence,
        after: Option<InstitutionCode>,
        through: InstitutionCode,
    ) -> Result<Vec<SilentDevice>> {
        self.flush()?;
        self.conn()?
            .query(
                "SELECT d.institution_code, d.serial, d.last_contact
                 FROM devices d JOIN deployments p ON p.device_id = d.id
                 WHERE ($2::TEXT IS NULL OR d.institution_code > $2) AND d.institution_code <= $3
                   AND p.campaign_id = $1
                   AND d.kind = $4 AND p.state <> $5 AND d.last_contact < $6
                 ORDER BY d.institution_code, d.id",
                &[
                    &campaign,
                    &after.map(|c| c.to_string()),
                    &through.to_string(),
                    &rule.device.slug(),
                    &rule.done.slug(),
                    &db_time(rule.contact_before),
                ],
            )?
            .iter()
            .map(|r| {
                Ok(SilentDevice {
                    institution: InstitutionCode::parse(&r.try_get::<_, String>(0)?)
                        .map_err(corrupt)?,
                    serial: r.try_get(1)?,
                    last_contact: ts(&r.try_get::<_, String>(2)?)?,
                })
            })
            .collect()
    }

    fn claim_mails(&self, now: Timestamp, claim_until: Timestamp, limit: u32) -> Result<Vec<Mail>> {
        // SKIP LOCKED: replicas running the worker at once claim disjoint mails.
        let mut mails = self
            .conn()?
            .query(
                SQL_3.as_str(),
                &[&db_time(now), &db_time(claim_until), &i64::from(limit)],
            )?
            .iter()
            .map(|r| mail_from(r)?.parse())
            .collect::<Result<Vec<_>>>()?;
        mails.sort_by_key(|m| m.id);
        Ok(mails)
    }

    fn mail_sent(&self, id: i64, at: Timestamp) -> Result<()> {
        self.conn()?.execute(
            "UPDATE outbox SET sent_at = $2, attempts = attempts + 1 WHERE id = $1",
            &[&id, &db_time(at)],
        )?;
        Ok(())
    }

    fn mail_failed(&self, id: i64, error: &str, retry_at: Timestamp) -> Result<()> {
        self.conn()?.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3
             WHERE id = $1 AND sent_at IS NULL",
            &[&id, &error, &db_time(retry_at)],
        )?;
        Ok(())
    }

    fn mail_given_up(&self, id: i64, error: &str, at: Timestamp) -> Result<()> {
        self.conn()?.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $2, gave_up_at = $3
             WHERE id = $1 AND sent_at IS NULL",
            &[&id, &error, &db_time(at)],
        )?;
        Ok(())
    }

    fn mail_summary(&self) -> Result<MailSummary> {
        let rows = self.conn()?.query(
            "SELECT kind, sent_at IS NOT NULL, attempts > 0, gave_up_at IS NOT NULL, COUNT(*)
             FROM outbox GROUP BY 1, 2, 3, 4",
            &[],
        )?;
        let mut out = MailSummary::default();
        for r in &rows {
            let kind: String = r.try_get(0)?;
            let kind =
                NoticeKind::parse(&kind).ok_or_else(|| corrupt(format!("notice kind {kind}")))?;
            out.add(
                kind,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
            );
        }
        Ok(out)
    }

    fn mails(&self, institution: Option<InstitutionCode>, limit: u32) -> Result<Vec<Mail>> {
        let code = institution.map(|c| c.to_string());
        self.conn()?
            .query(SQL_4.as_str(), &[&code, &i64::from(limit)])?
            .iter()
            .map(|r| mail_from(r)?.parse())
            .collect()
    }

    fn start_waves(
        &self,
        campaign: &str,
        sites: &[(InstitutionCode, u16)],
        progress: &onshi_core::waves::WaveProgress,
        at: Timestamp,
    ) -> Result<()> {
        self.start_waves_impl(campaign, sites, progress, at)
    }

    fn wave_sites(&self, campaign: &str) -> Result<Vec<(InstitutionCode, u16)>> {
        self.wave_sites_impl(campaign)
    }

    fn wave_progress(&self, campaign: &str) -> Result<Option<onshi_core::waves::WaveProgress>> {
        self.wave_progress_impl(campaign)
    }

    fn change_waves(&self, change: &WaveChange<'_>) -> Result<bool> {
        self.change_waves_impl(change)
    }

    fn wave_devices(&self, campaign: &str, last: u16) -> Result<Vec<(i64, u16, DeploymentState)>> {
        self.wave_devices_impl(campaign, last)
    }

    fn wave_health(
        &self,
        campaign: &str,
        last: u16,
        overdue_before: Timestamp,
    ) -> Result<Vec<onshi_core::waves::WaveHealth>> {
        self.wave_health_impl(campaign, last, overdue_before)
    }

    fn record_restart(
        &self,
        campaign: &str,
        device: i64,
        note: RestartNote,
        at: Timestamp,
    ) -> Result<()> {
        self.record_restart_impl(campaign, device, note, at)
    }

    fn claim_operator_mails(
        &self,
        now: Timestamp,
        claim_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<OperatorMail>> {
        self.claim_operator_mails_impl(now, claim_until, limit)
    }

    fn operator_mail_sent(&self, id: i64, at: Timestamp) -> Result<()> {
        self.operator_mail_sent_impl(id, at)
    }

    fn operator_mail_failed(&self, id: i64, error: &str, retry_at: Timestamp) -> Result<()> {
        self.operator_mail_failed_impl(id, error, retry_at)
    }

    fn operator_mail_given_up(&self, id: i64, error: &str, at: Timestamp) -> Result<()> {
        self.conn()?.execute(
            "UPDATE operator_outbox SET attempts = attempts + 1, last_error = $2,
                gave_up_at = $3 WHERE id = $1 AND sent_at IS NULL",
            &[&id, &error, &db_time(at)],
        )?;
        Ok(())
    }

    fn operator_mails(&self, campaign: &str) -> Result<Vec<OperatorMail>> {
        self.operator_mails_impl(campaign)
    }

    fn audit(&self, e: &AuditEntry) -> Result<()> {
        let mut conn = self.conn()?;
        let lock = conn.prep("SELECT pg_advisory_xact_lock($1, $2)")?;
        let insert = conn.prep(INSERT_AUDIT)?;
        let mut tx = conn.transaction()?;
        tx.execute(&lock, &[&LOCK_SPACE, &AUDIT_LOCK])?;
        tx.execute(&insert, &audit_params(e, &db_time(e.at)))?;
        tx.commit()?;
        Ok(())
    }

    fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>> {
        self.conn()?
            .query(
                "SELECT at, actor, action, subject, detail FROM audit ORDER BY id DESC LIMIT $1",
                &[&i64::from(limit)],
            )?
            .iter()
            .map(|r| {
                Ok(AuditEntry {
                    at: ts(&r.try_get::<_, String>(0)?)?,
                    actor: r.try_get(1)?,
                    action: r.try_get(2)?,
                    subject: r.try_get(3)?,
                    detail: r.try_get(4)?,
                })
            })
            .collect()
    }
}

/// Inserts a campaign in a transaction (`Conflict` when its id is taken).
fn insert_campaign_in(tx: &mut pool::Tx<'_>, c: &CampaignRecord, at: Timestamp) -> Result<()> {
    let selector = serde_json::to_string(&c.selector).map_err(corrupt)?;
    let n = tx.execute(
        "INSERT INTO campaigns (id, schedule, release_id, selector, max_downloads, poll_seconds, status, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT (id) DO NOTHING",
        &[
            &c.id,
            &c.schedule_toml,
            &c.release_id,
            &selector,
            &i64::from(c.max_downloads),
            &big(c.poll_interval.as_secs())?,
            &c.status.slug(),
            &db_time(at),
        ],
    )?;
    if n == 0 {
        return Err(StoreError::Conflict(format!(
            "campaign {} already exists",
            c.id
        )));
    }
    Ok(())
}
