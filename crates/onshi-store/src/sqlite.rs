//! The embedded SQLite store: one file `DATA/onshi.db` in WAL mode. Every acknowledged write is
//! committed before the call returns, which survives a killed process (SIGKILL); the
//! `synchronous=NORMAL` setting trades the last commits on a power cut for throughput.
//!
//! One connection behind a mutex: SQLite serialises writers anyway, and the server's calls are
//! short. "Last contact" times are buffered in memory and written in one transaction per flush.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use jiff::Timestamp;
use onshi_core::deployment::DeploymentState;
use onshi_core::institution::{InstitutionCode, InstitutionKind, Prefecture};
use onshi_core::offer::CampaignStatus;
use onshi_core::release::Sha256;
use onshi_core::vendor::{DeviceKind, Vendor};
use onshi_core::version::Version;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::contacts::{Contact, ContactBuffer};
use crate::migrations::{self, Backend};
use crate::rows::{
    self, CampaignRow, FACTS_COLS, MAIL_COLS, MailRow, RawDeployment, RawDevice, RawInstitution,
    corrupt, hhmm, identity, key_column, parse_campaign, ts,
};
use crate::time::db_time;
use crate::*;

mod slots;
mod waves;

use slots::CampaignSlots;

/// The SQLite implementation of [`Store`].
pub struct SqliteStore {
    conn: Mutex<Connection>,
    contacts: ContactBuffer,
    /// Device identities by token hash: the check-in hot path authenticates without SQL. This
    /// store is the only writer of its file, so it keeps the cache exact (re-enrolment drops
    /// the old token).
    identities: RwLock<Identities>,
    /// Each device's open deployments, dropped whenever a write touches them.
    open: RwLock<HashMap<i64, Vec<Deployment>>>,
    /// Each campaign's download slots and queue (`slots.rs`), loaded from `leases` on first
    /// use. Locked before the connection whenever both are held.
    slots: Mutex<HashMap<String, CampaignSlots>>,
}

#[derive(Default)]
struct Identities {
    by_hash: HashMap<String, Device>,
    hash_of: HashMap<i64, String>,
}

/// Creates the database file with mode 0600 if it is missing, or narrows an existing one's.
fn owner_only(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            }
            Err(e) => return Err(e),
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Applies pending migrations (`migrations.rs`), after adopting the record of a database made
/// before refinery ran them.
fn migrate(conn: &mut Connection) -> Result<()> {
    let old: i64 = conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [migrations::OLD_HISTORY],
        |r| r.get(0),
    )?;
    if old > 0 {
        let tx = conn.transaction()?;
        tx.execute_batch(migrations::CREATE_HISTORY)?;
        let recorded: i64 = tx.query_row(
            &format!("SELECT COUNT(*) FROM {}", migrations::HISTORY),
            [],
            |r| r.get(0),
        )?;
        if recorded == 0 {
            let applied = tx
                .prepare(&format!(
                    "SELECT name, applied_at FROM {} ORDER BY name",
                    migrations::OLD_HISTORY
                ))?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<(String, String)>>>()?;
            for a in migrations::adopt(Backend::Sqlite, &applied)? {
                tx.execute(
                    &format!(
                        "INSERT INTO {} (version, name, applied_on, checksum) VALUES (?1, ?2, ?3, ?4)",
                        migrations::HISTORY
                    ),
                    params![a.version, a.name, a.applied_on, a.checksum],
                )?;
            }
            tracing::info!(
                migrations = applied.len(),
                "adopted the record of applied migrations"
            );
        }
        tx.commit()?;
    }
    let report = Backend::Sqlite
        .runner()?
        .run(conn)
        .map_err(migrations::failed)?;
    for m in report.applied_migrations() {
        tracing::info!(migration = %m, "applied migration");
    }
    Ok(())
}

/// Contacts written per transaction by `flush`, so that the connection is never held long.
const FLUSH_CHUNK: usize = 500;

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    /// The file (and the WAL and shared-memory files SQLite creates with its mode) is readable
    /// by its owner only: it holds the hashes of every token and key.
    pub fn open(path: &Path) -> Result<Self> {
        owner_only(path)
            .map_err(|e| StoreError::Config(format!("making {} private: {e}", path.display())))?;
        let conn = Connection::open(path)?;
        Self::setup(conn)
    }

    /// An in-memory database, for unit tests.
    pub fn in_memory() -> Result<Self> {
        Self::setup(Connection::open_in_memory()?)
    }

    fn setup(mut conn: Connection) -> Result<Self> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        migrate(&mut conn)?;
        let identities = load_identities(&conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
            contacts: ContactBuffer::default(),
            identities: RwLock::new(identities),
            open: RwLock::default(),
            slots: Mutex::default(),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, CampaignSlots>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A campaign's slots, loaded from `leases` the first time, with lapsed leases reaped at
    /// `now`.
    fn campaign_slots<'m>(
        &self,
        book: &'m mut HashMap<String, CampaignSlots>,
        campaign: &str,
        now: Timestamp,
    ) -> Result<&'m mut CampaignSlots> {
        if !book.contains_key(campaign) {
            let rows: Vec<(i64, String)> = {
                let conn = self.conn();
                let mut stmt = conn.prepare_cached(
                    "SELECT device_id, expires_at FROM leases WHERE campaign_id = ?1",
                )?;
                stmt.query_map([campaign], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?
            };
            let rows = rows
                .into_iter()
                .map(|(d, e)| Ok((d, ts(&e)?)))
                .collect::<Result<Vec<_>>>()?;
            book.insert(campaign.to_owned(), CampaignSlots::loaded(rows, now));
        }
        let slots = book.get_mut(campaign).expect("inserted above");
        slots.reap(now);
        Ok(slots)
    }

    /// Writes a slot taken or renewed (dropping the campaign's lapsed rows when it is taken).
    fn write_lease(
        &self,
        campaign: &str,
        device: i64,
        now: Timestamp,
        expires: Timestamp,
        renew: bool,
    ) -> Result<()> {
        let conn = self.conn();
        if renew {
            conn.prepare_cached(
                "UPDATE leases SET expires_at = ?3 WHERE campaign_id = ?1 AND device_id = ?2",
            )?
            .execute(params![campaign, device, db_time(expires)])?;
            return Ok(());
        }
        let tx = conn.unchecked_transaction()?;
        tx.execute(
            "DELETE FROM leases WHERE campaign_id = ?1 AND expires_at <= ?2",
            params![campaign, db_time(now)],
        )?;
        tx.execute(
            "INSERT INTO leases (campaign_id, device_id, expires_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (campaign_id, device_id) DO UPDATE SET expires_at = excluded.expires_at",
            params![campaign, device, db_time(expires)],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn forget_open(&self, devices: impl IntoIterator<Item = i64>) {
        let mut open = self.open.write().unwrap_or_else(|e| e.into_inner());
        for d in devices {
            open.remove(&d);
        }
    }

    fn remember_identity(&self, hash: &str, device: &Device) {
        let mut ids = self.identities.write().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = ids.hash_of.insert(device.id, hash.to_owned())
            && old != hash
        {
            ids.by_hash.remove(&old);
        }
        ids.by_hash.insert(hash.to_owned(), identity(device));
    }
}

/// Every live device's identity by its token hash, read once when the store opens: so a check-in
/// never waits for SQL to find a device that exists — not even its first after a restart, when
/// the whole fleet checks in within one poll interval — and only unknown tokens (a scanner's, a
/// revoked device's) are looked up, off the async workers. The map grows to the same size as
/// the fleet checks in anyway (about 400 bytes a device).
fn load_identities(conn: &Connection) -> Result<Identities> {
    let mut ids = Identities::default();
    let mut stmt = conn.prepare(&format!(
        "SELECT {DEVICE_COLS}, d.token_hash FROM devices d WHERE d.revoked_at IS NULL"
    ))?;
    let rows = stmt.query_map([], |r| {
        Ok((device_from(r, 0)?, r.get::<_, Option<String>>(9)?))
    })?;
    for row in rows {
        let (raw, hash) = row?;
        let Some(hash) = hash else { continue };
        let device = raw.parse()?;
        ids.hash_of.insert(device.id, hash.clone());
        ids.by_hash.insert(hash, identity(&device));
    }
    Ok(ids)
}

const INSTITUTION_COLS: &str =
    "i.code, i.name, i.kind, i.prefecture, i.email, i.auto_restart, i.phone";

fn institution_from(r: &Row<'_>, base: usize) -> rusqlite::Result<RawInstitution> {
    Ok(RawInstitution {
        code: r.get(base)?,
        name: r.get(base + 1)?,
        kind: r.get(base + 2)?,
        prefecture: r.get(base + 3)?,
        email: r.get(base + 4)?,
        auto_restart: r.get(base + 5)?,
        phone: r.get(base + 6)?,
    })
}

const DEVICE_COLS: &str = "d.id, d.institution_code, d.kind, d.vendor, d.serial, d.parent_id, d.installed_version, d.running_version, d.last_contact";

fn device_from(r: &Row<'_>, base: usize) -> rusqlite::Result<RawDevice> {
    Ok(RawDevice {
        id: r.get(base)?,
        institution: r.get(base + 1)?,
        kind: r.get(base + 2)?,
        vendor: r.get(base + 3)?,
        serial: r.get(base + 4)?,
        parent: r.get(base + 5)?,
        installed: r.get(base + 6)?,
        running: r.get(base + 7)?,
        last_contact: r.get(base + 8)?,
    })
}

const DEPLOYMENT_COLS: &str = "campaign_id, device_id, state, bytes, last_seq, updated_at";

fn deployment_from(r: &Row<'_>) -> rusqlite::Result<RawDeployment> {
    Ok(RawDeployment {
        campaign_id: r.get(0)?,
        device_id: r.get(1)?,
        state: r.get(2)?,
        bytes: r.get(3)?,
        last_seq: r.get(4)?,
        updated_at: r.get(5)?,
    })
}

fn campaign_from(r: &Row<'_>) -> rusqlite::Result<CampaignRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

const CAMPAIGN_COLS: &str =
    "id, schedule, release_id, selector, max_downloads, poll_seconds, status";

impl Store for SqliteStore {
    fn reads_from_memory(&self) -> bool {
        true
    }

    fn remembered_device(&self, token_hash: &str) -> Option<Device> {
        self.identities
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_hash
            .get(token_hash)
            .cloned()
    }

    fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    fn insert_setting_if_absent(&self, key: &str, value: &str) -> Result<String> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
            params![key, value],
        )?;
        Ok(
            conn.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })?,
        )
    }

    fn upsert_institutions(&self, institutions: &[Institution], at: Timestamp) -> Result<usize> {
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO institutions (code, name, kind, prefecture, email, auto_restart, phone, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?8, ?7, ?7)
                 ON CONFLICT (code) DO UPDATE SET name = excluded.name, kind = excluded.kind,
                   prefecture = excluded.prefecture, email = excluded.email,
                   auto_restart = excluded.auto_restart, phone = excluded.phone,
                   updated_at = excluded.updated_at",
            )?;
            let now = db_time(at);
            for i in institutions {
                stmt.execute(params![
                    i.code.to_string(),
                    i.name,
                    i.kind.slug(),
                    i.prefecture.number(),
                    i.email,
                    i.auto_restart.map(hhmm),
                    now,
                    i.phone,
                ])?;
            }
        }
        tx.commit()?;
        Ok(institutions.len())
    }

    fn institution(&self, code: InstitutionCode) -> Result<Option<Institution>> {
        let raw = self
            .conn()
            .query_row(
                &format!("SELECT {INSTITUTION_COLS} FROM institutions i WHERE i.code = ?1"),
                [code.to_string()],
                |r| institution_from(r, 0),
            )
            .optional()?;
        raw.map(RawInstitution::parse).transpose()
    }

    fn institutions(&self, filter: &InstitutionFilter) -> Result<(Vec<Institution>, u64)> {
        let conn = self.conn();
        let where_ = "WHERE (?1 IS NULL OR i.prefecture = ?1) AND (?2 IS NULL OR i.kind = ?2)";
        let pref = filter.prefecture.map(Prefecture::number);
        let kind = filter.kind.map(InstitutionKind::slug);
        let total: i64 = conn.query_row(
            &format!("SELECT COUNT(*) FROM institutions i {where_}"),
            params![pref, kind],
            |r| r.get(0),
        )?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {INSTITUTION_COLS} FROM institutions i {where_} ORDER BY i.code LIMIT ?3 OFFSET ?4"
        ))?;
        let rows = stmt
            .query_map(params![pref, kind, filter.limit, filter.offset], |r| {
                institution_from(r, 0)
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let list = rows
            .into_iter()
            .map(RawInstitution::parse)
            .collect::<Result<Vec<_>>>()?;
        Ok((list, u64::try_from(total).unwrap_or(0)))
    }

    fn set_institution_key(
        &self,
        code: InstitutionCode,
        which: InstitutionKey,
        hash: &str,
    ) -> Result<()> {
        let column = key_column(which);
        let n = self.conn().execute(
            &format!("UPDATE institutions SET {column} = ?1 WHERE code = ?2"),
            params![hash, code.to_string()],
        )?;
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
        let column = key_column(which);
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {column} FROM institutions WHERE code = ?1"),
                [code.to_string()],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()?
            .flatten())
    }

    fn create_sign_in_link(&self, link: &NewSignInLink<'_>) -> Result<()> {
        let conn = self.conn();
        let stale = link
            .created_at
            .checked_sub(jiff::SignedDuration::from_hours(24))
            .unwrap_or(link.created_at);
        conn.execute(
            "DELETE FROM sign_in_links WHERE expires_at < ?1",
            params![db_time(stale)],
        )?;
        conn.execute(
            "INSERT INTO sign_in_links
               (token_hash, institution_code, key_generation, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                link.token_hash,
                link.institution.to_string(),
                link.generation,
                db_time(link.created_at),
                db_time(link.expires_at)
            ],
        )?;
        Ok(())
    }

    fn redeem_sign_in_link(
        &self,
        token_hash: &str,
        at: Timestamp,
    ) -> Result<Option<(InstitutionCode, String)>> {
        let row = self
            .conn()
            .query_row(
                "UPDATE sign_in_links SET used_at = ?2
                 WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > ?2
                 RETURNING institution_code, key_generation",
                params![token_hash, db_time(at)],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()?;
        row.map(|(code, generation)| {
            InstitutionCode::parse(&code)
                .map(|c| (c, generation))
                .map_err(crate::rows::corrupt)
        })
        .transpose()
    }

    fn create_site_session(&self, s: &NewSiteSession<'_>, limits: &SessionLimits) -> Result<()> {
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        tx.execute(
            "DELETE FROM site_sessions WHERE seen_at < ?1 OR created_at < ?2",
            params![db_time(limits.idle_since), db_time(limits.created_since)],
        )?;
        tx.execute(
            "INSERT INTO site_sessions
               (id_hash, institution_code, key_generation, csrf, created_at, seen_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            params![
                s.id_hash,
                s.institution.to_string(),
                s.generation,
                s.csrf,
                db_time(s.at)
            ],
        )?;
        tx.execute(
            "DELETE FROM site_sessions WHERE institution_code = ?1 AND id_hash NOT IN
               (SELECT id_hash FROM site_sessions WHERE institution_code = ?1
                ORDER BY seen_at DESC, created_at DESC LIMIT ?2)",
            params![s.institution.to_string(), s.keep],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn resume_site_session(
        &self,
        id_hash: &str,
        limits: &SessionLimits,
        at: Timestamp,
    ) -> Result<Option<SiteSession>> {
        let row = self
            .conn()
            .query_row(
                "UPDATE site_sessions SET seen_at = ?2
                 WHERE id_hash = ?1 AND seen_at >= ?3 AND created_at >= ?4
                 RETURNING institution_code, key_generation, csrf",
                params![
                    id_hash,
                    db_time(at),
                    db_time(limits.idle_since),
                    db_time(limits.created_since)
                ],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(code, generation, csrf)| {
            Ok(SiteSession {
                institution: InstitutionCode::parse(&code).map_err(crate::rows::corrupt)?,
                generation,
                csrf,
            })
        })
        .transpose()
    }

    fn end_site_session(&self, id_hash: &str) -> Result<()> {
        self.conn()
            .execute("DELETE FROM site_sessions WHERE id_hash = ?1", [id_hash])?;
        Ok(())
    }

    fn end_site_sessions_of(&self, code: InstitutionCode) -> Result<u64> {
        let n = self.conn().execute(
            "DELETE FROM site_sessions WHERE institution_code = ?1",
            [code.to_string()],
        )?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn set_enrollment_key(
        &self,
        code: InstitutionCode,
        hash: &str,
        expires: Timestamp,
        uses: u32,
    ) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE institutions SET enrollment_key_hash = ?1, enrollment_key_expires_at = ?2,
               enrollment_key_uses_left = ?3
             WHERE code = ?4",
            params![hash, db_time(expires), uses, code.to_string()],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("institution {code}")));
        }
        Ok(())
    }

    fn enrol_device(&self, d: &NewDevice, rules: &EnrolRules<'_>, at: Timestamp) -> Result<Device> {
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        let code = d.institution.to_string();
        let at_text = db_time(at);
        if let Some(key) = rules.key_hash {
            // A key without an expiry or a use count (NULL) is refused: migration 0011 gave the
            // keys issued before both existed a week and one use.
            let used = tx.execute(
                "UPDATE institutions SET enrollment_key_uses_left = enrollment_key_uses_left - 1
                 WHERE code = ?1 AND enrollment_key_hash = ?2
                   AND enrollment_key_expires_at > ?3 AND enrollment_key_uses_left > 0",
                params![code, key, at_text],
            )?;
            if used == 0 {
                return Err(EnrolRefusal::Key.into());
            }
        }
        let live: Option<bool> = tx
            .query_row(
                "SELECT revoked_at IS NULL FROM devices
                 WHERE institution_code = ?1 AND kind = ?2 AND serial = ?3",
                params![code, d.kind.slug(), d.serial],
                |r| r.get(0),
            )
            .optional()?;
        if live == Some(true) {
            return Err(EnrolRefusal::SerialTaken.into());
        }
        if rules.cap > 0 {
            let count: i64 = match d.parent {
                Some(parent) => tx.query_row(
                    "SELECT COUNT(*) FROM devices WHERE parent_id = ?1 AND kind = ?2
                       AND revoked_at IS NULL",
                    params![parent, d.kind.slug()],
                    |r| r.get(0),
                )?,
                None => tx.query_row(
                    "SELECT COUNT(*) FROM devices WHERE institution_code = ?1 AND kind = ?2
                       AND revoked_at IS NULL",
                    params![code, d.kind.slug()],
                    |r| r.get(0),
                )?,
            };
            if count >= i64::from(rules.cap) {
                return Err(EnrolRefusal::Full.into());
            }
        }
        if rules.site_cap > 0 {
            let count: i64 = tx.query_row(
                "SELECT COUNT(*) FROM devices WHERE institution_code = ?1 AND kind = ?2
                   AND revoked_at IS NULL",
                params![code, d.kind.slug()],
                |r| r.get(0),
            )?;
            if count >= i64::from(rules.site_cap) {
                return Err(EnrolRefusal::Full.into());
            }
        }
        // Only a revoked device's row can conflict here: it is enrolled again, same id.
        tx.execute(
            "INSERT INTO devices (institution_code, kind, vendor, serial, parent_id, token_hash, enrolled_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (institution_code, kind, serial) DO UPDATE SET
               token_hash = excluded.token_hash, vendor = excluded.vendor,
               parent_id = excluded.parent_id, enrolled_at = excluded.enrolled_at,
               revoked_at = NULL",
            params![
                code,
                d.kind.slug(),
                d.vendor.map(Vendor::slug),
                d.serial,
                d.parent,
                d.token_hash,
                at_text,
            ],
        )?;
        let raw = tx.query_row(
            &format!("SELECT {DEVICE_COLS} FROM devices d WHERE d.token_hash = ?1"),
            [&d.token_hash],
            |r| device_from(r, 0),
        )?;
        tx.commit()?;
        let device = raw.parse()?;
        self.remember_identity(&d.token_hash, &device);
        drop(conn);
        Ok(device)
    }

    fn revoke_device(&self, id: i64, at: Timestamp) -> Result<Vec<i64>> {
        let mut book = self.slots();
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        let exists: Option<i64> = tx
            .query_row("SELECT id FROM devices WHERE id = ?1", [id], |r| r.get(0))
            .optional()?;
        if exists.is_none() {
            return Err(StoreError::NotFound(format!("device {id}")));
        }
        let revoked: Vec<i64> = tx
            .prepare(
                "UPDATE devices SET revoked_at = ?2, token_hash = 'revoked:' || id
                 WHERE (id = ?1 OR parent_id = ?1) AND revoked_at IS NULL
                 RETURNING id",
            )?
            .query_map(params![id, db_time(at)], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for device in &revoked {
            tx.execute("DELETE FROM leases WHERE device_id = ?1", [device])?;
        }
        tx.commit()?;
        drop(conn);
        {
            let mut ids = self.identities.write().unwrap_or_else(|e| e.into_inner());
            for device in &revoked {
                if let Some(hash) = ids.hash_of.remove(device) {
                    ids.by_hash.remove(&hash);
                }
            }
        }
        for slots in book.values_mut() {
            for device in &revoked {
                slots.free(*device);
            }
        }
        drop(book);
        self.forget_open(revoked.iter().copied());
        Ok(revoked)
    }

    fn device_by_token(&self, token_hash: &str) -> Result<Option<Device>> {
        if let Some(d) = self
            .identities
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_hash
            .get(token_hash)
        {
            return Ok(Some(d.clone()));
        }
        let conn = self.conn();
        let raw = conn
            .prepare_cached(&format!(
                "SELECT {DEVICE_COLS} FROM devices d WHERE d.token_hash = ?1"
            ))?
            .query_row([token_hash], |r| device_from(r, 0))
            .optional()?;
        let device = raw.map(RawDevice::parse).transpose()?;
        if let Some(d) = &device {
            self.remember_identity(token_hash, d);
        }
        drop(conn);
        Ok(device.as_ref().map(identity))
    }

    fn device(&self, id: i64) -> Result<Option<Device>> {
        let raw = self
            .conn()
            .query_row(
                &format!("SELECT {DEVICE_COLS} FROM devices d WHERE d.id = ?1"),
                [id],
                |r| device_from(r, 0),
            )
            .optional()?;
        raw.map(RawDevice::parse).transpose()
    }

    fn devices_of(&self, code: InstitutionCode) -> Result<Vec<Device>> {
        self.flush()?;
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {DEVICE_COLS} FROM devices d WHERE d.institution_code = ?1
             AND d.revoked_at IS NULL ORDER BY d.id"
        ))?;
        let rows = stmt
            .query_map([code.to_string()], |r| device_from(r, 0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(RawDevice::parse).collect()
    }

    fn all_devices(&self) -> Result<Vec<(Device, Institution)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {DEVICE_COLS}, {INSTITUTION_COLS} FROM devices d
             JOIN institutions i ON i.code = d.institution_code
             WHERE d.revoked_at IS NULL ORDER BY d.id"
        ))?;
        let rows = stmt
            .query_map([], |r| Ok((device_from(r, 0)?, institution_from(r, 9)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(d, i)| Ok((d.parse()?, i.parse()?)))
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
                let conn = self.conn();
                let tx = conn.unchecked_transaction()?;
                {
                    let mut stmt = tx.prepare_cached(
                        // A contact older than the one stored (another process wrote a newer
                        // one) changes nothing: the newest instant and its versions win.
                        "UPDATE devices SET last_contact = MAX(COALESCE(last_contact, ''), ?2),
                           installed_version = CASE WHEN ?2 >= COALESCE(last_contact, '')
                             THEN COALESCE(?3, installed_version) ELSE installed_version END,
                           running_version = CASE WHEN ?2 >= COALESCE(last_contact, '')
                             THEN COALESCE(?4, running_version) ELSE running_version END
                         WHERE id = ?1",
                    )?;
                    for (id, c) in chunk {
                        stmt.execute(params![id, db_time(c.at), c.installed, c.running])?;
                    }
                }
                tx.commit()?;
                Ok(())
            })
    }

    fn add_artifact(&self, sha256: Sha256, size: u64, at: Timestamp) -> Result<()> {
        self.conn().execute(
            "INSERT INTO artifacts (sha256, size, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (sha256) DO NOTHING",
            params![
                sha256.hex(),
                i64::try_from(size).map_err(corrupt)?,
                db_time(at)
            ],
        )?;
        Ok(())
    }

    fn artifact(&self, sha256: Sha256) -> Result<Option<u64>> {
        let size: Option<i64> = self
            .conn()
            .prepare_cached("SELECT size FROM artifacts WHERE sha256 = ?1")?
            .query_row([sha256.hex()], |r| r.get(0))
            .optional()?;
        size.map(|s| u64::try_from(s).map_err(corrupt)).transpose()
    }

    fn insert_release(&self, release: &Release, at: Timestamp) -> Result<()> {
        self.conn().execute(
            "INSERT INTO releases (id, version, manifest, signature, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                release.id,
                release.manifest.version.to_string(),
                release.signed.signed,
                rows::signatures_text(&release.signed)?,
                db_time(at)
            ],
        )?;
        Ok(())
    }

    fn release(&self, id: &str) -> Result<Option<Release>> {
        let row: Option<(String, String)> = self
            .conn()
            .prepare_cached("SELECT manifest, signature FROM releases WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        row.map(|(manifest, signatures)| rows::release_row(id, manifest, &signatures))
            .transpose()
    }

    fn release_manifests(&self) -> Result<Vec<(String, String)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT id, manifest FROM releases ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn release_count(&self) -> Result<u64> {
        let n: i64 = self
            .conn()
            .prepare_cached("SELECT count(*) FROM releases")?
            .query_row([], |r| r.get(0))?;
        u64::try_from(n).map_err(rows::corrupt)
    }

    fn insert_campaign(&self, c: &CampaignRecord, at: Timestamp) -> Result<()> {
        insert_campaign_on(&self.conn(), c, at)
    }

    fn campaign(&self, id: &str) -> Result<Option<CampaignRecord>> {
        let row = self
            .conn()
            .prepare_cached(&format!(
                "SELECT {CAMPAIGN_COLS} FROM campaigns WHERE id = ?1"
            ))?
            .query_row([id], campaign_from)
            .optional()?;
        row.map(parse_campaign).transpose()
    }

    fn campaigns(&self) -> Result<Vec<CampaignRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {CAMPAIGN_COLS} FROM campaigns ORDER BY created_at, id"
        ))?;
        let rows = stmt
            .query_map([], campaign_from)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(parse_campaign).collect()
    }

    fn set_campaign_status(&self, id: &str, status: CampaignStatus, at: Timestamp) -> Result<()> {
        let conn = self.conn();
        let n = conn.execute(
            "UPDATE campaigns SET status = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, status.slug(), db_time(at)],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("campaign {id}")));
        }
        self.open.write().unwrap_or_else(|e| e.into_inner()).clear();
        drop(conn);
        Ok(())
    }

    fn ensure_deployments(&self, campaign: &str, devices: &[i64], at: Timestamp) -> Result<usize> {
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        let mut added = 0;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO deployments (campaign_id, device_id, state, bytes, last_seq, updated_at)
                 VALUES (?1, ?2, 'waiting', 0, 0, ?3) ON CONFLICT (campaign_id, device_id) DO NOTHING",
            )?;
            let now = db_time(at);
            for d in devices {
                added += stmt.execute(params![campaign, d, now])?;
            }
        }
        tx.commit()?;
        self.forget_open(devices.iter().copied());
        drop(conn);
        Ok(added)
    }

    fn open_deployments_of(&self, device: i64) -> Result<Vec<Deployment>> {
        if let Some(d) = self
            .open
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&device)
        {
            return Ok(d.clone());
        }
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT d.campaign_id, d.device_id, d.state, d.bytes, d.last_seq, d.updated_at
             FROM deployments d JOIN campaigns c ON c.id = d.campaign_id
             WHERE d.device_id = ?1 AND c.status <> 'closed'
             ORDER BY c.created_at DESC, c.id DESC",
        )?;
        let rows = stmt
            .query_map([device], deployment_from)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let list = rows
            .into_iter()
            .map(RawDeployment::parse)
            .collect::<Result<Vec<_>>>()?;
        // Cached while the connection is still held: a writer cannot commit in between, so the
        // cache never keeps what a later write changed.
        self.open
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(device, list.clone());
        drop(stmt);
        drop(conn);
        Ok(list)
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
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        let n = tx.execute(
            "UPDATE deployments SET state = ?4, bytes = ?5, last_seq = ?3, updated_at = ?6
             WHERE campaign_id = ?1 AND device_id = ?2 AND last_seq < ?3 AND state = ?7",
            params![
                campaign,
                device,
                seq,
                to.slug(),
                i64::try_from(bytes).map_err(corrupt)?,
                db_time(at),
                from.slug()
            ],
        )?;
        if let (1, Some(e)) = (n, audit) {
            insert_audit(&tx, e)?;
        }
        let current = tx
            .query_row(
                &format!(
                    "SELECT {DEPLOYMENT_COLS} FROM deployments WHERE campaign_id = ?1 AND device_id = ?2"
                ),
                params![campaign, device],
                deployment_from,
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("deployment of device {device} in {campaign}")))?
            .parse()?;
        tx.commit()?;
        self.forget_open([device]);
        drop(conn);
        if n == 1 {
            Ok(ReportOutcome::Applied(current))
        } else if current.last_seq >= seq {
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
        let mut book = self.slots();
        let slots = self.campaign_slots(&mut book, campaign, now)?;
        let renew = slots.holds(device, now);
        if !renew && slots.live() >= max {
            return Ok(false);
        }
        self.write_lease(campaign, device, now, expires, renew)?;
        slots.put(device, now, expires);
        Ok(true)
    }

    fn take_turn(&self, ask: &TurnAsk<'_>) -> Result<Turn> {
        let mut book = self.slots();
        let slots = self.campaign_slots(&mut book, ask.campaign, ask.now)?;
        let renew = slots.holds(ask.device, ask.now);
        let turn = if renew {
            Turn::Slot
        } else {
            let live = slots.live();
            slots
                .queue
                .ask(ask.device, ask.now, &ask.window, live, ask.max, ask.jitter)
        };
        if turn == Turn::Slot {
            self.write_lease(ask.campaign, ask.device, ask.now, ask.expires, renew)?;
            slots.put(ask.device, ask.now, ask.expires);
        }
        Ok(turn)
    }

    fn turn_in_memory(&self, ask: &TurnAsk<'_>) -> Result<Option<Turn>> {
        let mut book = self.slots();
        let slots = self.campaign_slots(&mut book, ask.campaign, ask.now)?;
        let live = slots.live();
        if slots.holds(ask.device, ask.now) || live < ask.max {
            return Ok(None);
        }
        // Every slot is held: the queue answers with an appointment, never a slot.
        Ok(Some(slots.queue.ask(
            ask.device,
            ask.now,
            &ask.window,
            live,
            ask.max,
            ask.jitter,
        )))
    }

    fn queue_place(&self, campaign: &str, device: i64) -> Result<Option<(u64, Timestamp)>> {
        Ok(self
            .slots()
            .get(campaign)
            .and_then(|s| s.queue.place_of(device)))
    }

    fn queue_length(&self, campaign: &str) -> Result<u64> {
        Ok(self
            .slots()
            .get(campaign)
            .map_or(0, |s| s.queue.len() as u64))
    }

    fn ping(&self) -> Result<()> {
        self.conn().query_row("SELECT 1", [], |_| Ok(()))?;
        Ok(())
    }

    fn has_lease(&self, campaign: &str, device: i64, now: Timestamp) -> Result<bool> {
        let mut book = self.slots();
        Ok(self
            .campaign_slots(&mut book, campaign, now)?
            .holds(device, now))
    }

    fn release_lease(&self, campaign: &str, device: i64) -> Result<()> {
        let mut book = self.slots();
        self.conn().execute(
            "DELETE FROM leases WHERE campaign_id = ?1 AND device_id = ?2",
            params![campaign, device],
        )?;
        if let Some(slots) = book.get_mut(campaign) {
            slots.free(device);
        }
        Ok(())
    }

    fn live_leases(&self, campaign: &str, now: Timestamp) -> Result<u64> {
        let mut book = self.slots();
        Ok(u64::from(
            self.campaign_slots(&mut book, campaign, now)?.live(),
        ))
    }

    fn progress(&self, campaign: &str) -> Result<Vec<ProgressRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT p.state, d.kind, i.prefecture, i.kind, d.vendor, COUNT(*)
             FROM deployments p JOIN devices d ON d.id = p.device_id
             JOIN institutions i ON i.code = d.institution_code
             WHERE p.campaign_id = ?1
             GROUP BY p.state, d.kind, i.prefecture, i.kind, d.vendor",
        )?;
        let rows = stmt
            .query_map([campaign], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, u8>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(state, device, pref, kind, vendor, count)| {
                Ok(ProgressRow {
                    state: state.parse().map_err(corrupt)?,
                    device: device.parse().map_err(corrupt)?,
                    prefecture: Prefecture::from_number(pref)
                        .ok_or_else(|| corrupt(format!("prefecture {pref}")))?,
                    kind: kind.parse().map_err(corrupt)?,
                    vendor: vendor
                        .map(|v| v.parse::<Vendor>().map_err(corrupt))
                        .transpose()?,
                    count: u64::try_from(count).unwrap_or(0),
                })
            })
            .collect()
    }

    fn deployments(&self, campaign: &str, f: &DeploymentFilter) -> Result<Vec<DeploymentListing>> {
        self.flush()?;
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {DEVICE_COLS}, {INSTITUTION_COLS}, p.state, p.bytes, p.updated_at
             FROM deployments p JOIN devices d ON d.id = p.device_id
             JOIN institutions i ON i.code = d.institution_code
             WHERE p.campaign_id = ?1 AND (?2 IS NULL OR p.state = ?2)
               AND (?3 IS NULL OR d.kind = ?3) AND (?4 IS NULL OR i.prefecture = ?4)
               AND (?5 IS NULL OR i.kind = ?5) AND (?6 IS NULL OR d.vendor = ?6)
               AND (?9 IS NULL OR (d.kind = ?9 AND p.state <> ?10 AND d.last_contact < ?11))
             ORDER BY i.code, d.id LIMIT ?7 OFFSET ?8"
        ))?;
        let rows = stmt
            .query_map(
                params![
                    campaign,
                    f.state.map(DeploymentState::slug),
                    f.device.map(DeviceKind::slug),
                    f.prefecture.map(Prefecture::number),
                    f.kind.map(InstitutionKind::slug),
                    f.vendor.map(Vendor::slug),
                    f.limit,
                    f.offset,
                    f.silent.map(|s| s.device.slug()),
                    f.silent.map(|s| s.done.slug()),
                    f.silent.map(|s| db_time(s.contact_before)),
                ],
                |r| {
                    Ok((
                        device_from(r, 0)?,
                        institution_from(r, 9)?,
                        r.get::<_, String>(16)?,
                        r.get::<_, i64>(17)?,
                        r.get::<_, String>(18)?,
                    ))
                },
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(d, i, state, bytes, updated)| {
                Ok(DeploymentListing {
                    device: d.parse()?,
                    institution: i.parse()?,
                    state: state.parse().map_err(corrupt)?,
                    bytes: u64::try_from(bytes).unwrap_or(0),
                    updated_at: ts(&updated)?,
                })
            })
            .collect()
    }

    fn site_facts(&self, campaign: &str) -> Result<Vec<(Institution, SiteFacts)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {INSTITUTION_COLS}, {FACTS_COLS}
             FROM deployments p JOIN devices d ON d.id = p.device_id
             JOIN institutions i ON i.code = d.institution_code
             WHERE p.campaign_id = ?1
             GROUP BY i.code ORDER BY i.code"
        ))?;
        let rows = stmt
            .query_map([campaign], |r| {
                Ok((institution_from(r, 0)?, facts_from(r, 7)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(|(i, f)| Ok((i.parse()?, f))).collect()
    }

    fn site_facts_of(&self, campaign: &str, code: InstitutionCode) -> Result<SiteFacts> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {FACTS_COLS}
             FROM deployments p JOIN devices d ON d.id = p.device_id
             WHERE p.campaign_id = ?1 AND d.institution_code = ?2"
        ))?;
        Ok(stmt.query_row(params![campaign, code.to_string()], |r| facts_from(r, 0))?)
    }

    fn enqueue_mail(&self, m: &NewMail<'_>) -> Result<bool> {
        let n = self
            .conn()
            .prepare_cached(
                "INSERT INTO outbox (campaign_id, institution_code, kind, notice_key, recipient,
                    subject, body, next_attempt_at, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
                 ON CONFLICT (campaign_id, institution_code, kind, notice_key) DO NOTHING",
            )?
            .execute(params![
                m.campaign,
                m.institution.to_string(),
                m.kind.slug(),
                m.key,
                m.recipient,
                m.subject,
                m.body,
                db_time(m.at)
            ])?;
        Ok(n == 1)
    }

    fn mail_keys(&self, campaign: &str) -> Result<Vec<(InstitutionCode, NoticeKind, String)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT institution_code, kind, notice_key FROM outbox WHERE campaign_id = ?1",
        )?;
        let rows = stmt
            .query_map([campaign], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(code, kind, key)| {
                Ok((
                    InstitutionCode::parse(&code).map_err(corrupt)?,
                    NoticeKind::parse(&kind)
                        .ok_or_else(|| corrupt(format!("notice kind {kind}")))?,
                    key,
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
        let conn = self.conn();
        let through: Option<String> = conn
            .prepare_cached(
                "SELECT MAX(code) FROM (SELECT code FROM institutions
                   WHERE ?1 IS NULL OR code > ?1 ORDER BY code LIMIT ?2)",
            )?
            .query_row(params![after, limit], |r| r.get(0))?;
        let Some(through) = through else {
            return Ok(SiteFactsPage::default());
        };
        // CROSS JOIN keeps the institutions' range outermost: a page reads its own sites'
        // devices, never the campaign's every deployment.
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {INSTITUTION_COLS}, {FACTS_COLS}
             FROM institutions i CROSS JOIN devices d CROSS JOIN deployments p
             WHERE (?2 IS NULL OR i.code > ?2) AND i.code <= ?3
               AND d.institution_code = i.code
               AND p.campaign_id = ?1 AND p.device_id = d.id
             GROUP BY i.code ORDER BY i.code"
        ))?;
        let rows = stmt
            .query_map(params![campaign, after, through], |r| {
                Ok((institution_from(r, 0)?, facts_from(r, 7)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(SiteFactsPage {
            sites: rows
                .into_iter()
                .map(|(i, f)| Ok((i.parse()?, f)))
                .collect::<Result<_>>()?,
            through: Some(InstitutionCode::parse(&through).map_err(corrupt)?),
        })
    }

    fn mail_keys_of_sites(
        &self,
        campaign: &str,
        after: Option<InstitutionCode>,
        through: InstitutionCode,
    ) -> Result<Vec<(InstitutionCode, NoticeKind, String)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT institution_code, kind, notice_key FROM outbox
             WHERE campaign_id = ?1 AND (?2 IS NULL OR institution_code > ?2)
               AND institution_code <= ?3",
        )?;
        let rows = stmt
            .query_map(
                params![campaign, after.map(|c| c.to_string()), through.to_string()],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                },
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(code, kind, key)| {
                Ok((
                    InstitutionCode::parse(&code).map_err(corrupt)?,
                    NoticeKind::parse(&kind)
                        .ok_or_else(|| corrupt(format!("notice kind {kind}")))?,
                    key,
                ))
            })
            .collect()
    }

    fn enqueue_mails(&self, mails: &[NewMail<'_>]) -> Result<u64> {
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        let mut added = 0;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO outbox (campaign_id, institution_code, kind, notice_key, recipient,
                    subject, body, next_attempt_at, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
                 ON CONFLICT (campaign_id, institution_code, kind, notice_key) DO NOTHING",
            )?;
            for m in mails {
                added += stmt.execute(params![
                    m.campaign,
                    m.institution.to_string(),
                    m.kind.slug(),
                    m.key,
                    m.recipient,
                    m.subject,
                    m.body,
                    db_time(m.at)
                ])? as u64;
            }
        }
        tx.commit()?;
        Ok(added)
    }

    fn silent_of_sites(
        &self,
        campaign: &str,
        rule: &Silence,
        after: Option<InstitutionCode>,
        through: InstitutionCode,
    ) -> Result<Vec<SilentDevice>> {
        self.flush()?;
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT d.institution_code, d.serial, d.last_contact
             FROM devices d CROSS JOIN deployments p
             WHERE (?2 IS NULL OR d.institution_code > ?2) AND d.institution_code <= ?3
               AND p.campaign_id = ?1 AND p.device_id = d.id
               AND d.kind = ?4 AND p.state <> ?5 AND d.last_contact < ?6
             ORDER BY d.institution_code, d.id",
        )?;
        let rows = stmt
            .query_map(
                params![
                    campaign,
                    after.map(|c| c.to_string()),
                    through.to_string(),
                    rule.device.slug(),
                    rule.done.slug(),
                    db_time(rule.contact_before),
                ],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                },
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(code, serial, last)| {
                Ok(SilentDevice {
                    institution: InstitutionCode::parse(&code).map_err(corrupt)?,
                    serial,
                    last_contact: ts(&last)?,
                })
            })
            .collect()
    }

    fn claim_mails(&self, now: Timestamp, claim_until: Timestamp, limit: u32) -> Result<Vec<Mail>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "UPDATE outbox SET next_attempt_at = ?2
             WHERE id IN (SELECT id FROM outbox
                          WHERE sent_at IS NULL AND gave_up_at IS NULL AND next_attempt_at <= ?1
                          ORDER BY next_attempt_at, id LIMIT ?3)
             RETURNING {MAIL_COLS}"
        ))?;
        let rows = stmt
            .query_map(params![db_time(now), db_time(claim_until), limit], mail_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut mails = rows
            .into_iter()
            .map(MailRow::parse)
            .collect::<Result<Vec<_>>>()?;
        mails.sort_by_key(|m| m.id);
        Ok(mails)
    }

    fn mail_sent(&self, id: i64, at: Timestamp) -> Result<()> {
        self.conn()
            .prepare_cached(
                "UPDATE outbox SET sent_at = ?2, attempts = attempts + 1 WHERE id = ?1",
            )?
            .execute(params![id, db_time(at)])?;
        Ok(())
    }

    fn mail_failed(&self, id: i64, error: &str, retry_at: Timestamp) -> Result<()> {
        self.conn()
            .prepare_cached(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3
                 WHERE id = ?1 AND sent_at IS NULL",
            )?
            .execute(params![id, error, db_time(retry_at)])?;
        Ok(())
    }

    fn mail_given_up(&self, id: i64, error: &str, at: Timestamp) -> Result<()> {
        self.conn()
            .prepare_cached(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, gave_up_at = ?3
                 WHERE id = ?1 AND sent_at IS NULL",
            )?
            .execute(params![id, error, db_time(at)])?;
        Ok(())
    }

    fn mail_summary(&self) -> Result<MailSummary> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT kind, sent_at IS NOT NULL, attempts > 0, gave_up_at IS NOT NULL, COUNT(*)
             FROM outbox GROUP BY 1, 2, 3, 4",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, bool>(1)?,
                    r.get::<_, bool>(2)?,
                    r.get::<_, bool>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut out = MailSummary::default();
        for (kind, sent, tried, gave_up, n) in rows {
            let kind =
                NoticeKind::parse(&kind).ok_or_else(|| corrupt(format!("notice kind {kind}")))?;
            out.add(kind, sent, tried, gave_up, n);
        }
        Ok(out)
    }

    fn mails(&self, institution: Option<InstitutionCode>, limit: u32) -> Result<Vec<Mail>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {MAIL_COLS} FROM outbox WHERE (?1 IS NULL OR institution_code = ?1)
             ORDER BY id DESC LIMIT ?2"
        ))?;
        let rows = stmt
            .query_map(params![institution.map(|c| c.to_string()), limit], mail_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(MailRow::parse).collect()
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
        self.conn()
            .prepare_cached(
                "UPDATE operator_outbox SET attempts = attempts + 1, last_error = ?2,
                    gave_up_at = ?3 WHERE id = ?1 AND sent_at IS NULL",
            )?
            .execute(params![id, error, db_time(at)])?;
        Ok(())
    }

    fn operator_mails(&self, campaign: &str) -> Result<Vec<OperatorMail>> {
        self.operator_mails_impl(campaign)
    }

    fn audit(&self, e: &AuditEntry) -> Result<()> {
        insert_audit(&self.conn(), e)
    }

    fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT at, actor, action, subject, detail FROM audit ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt
            .query_map([limit], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(at, actor, action, subject, detail)| {
                Ok(AuditEntry {
                    at: ts(&at)?,
                    actor,
                    action,
                    subject,
                    detail,
                })
            })
            .collect()
    }
}

fn facts_from(r: &Row<'_>, at: usize) -> rusqlite::Result<SiteFacts> {
    let mut counts = [None; 5];
    for (i, c) in counts.iter_mut().enumerate() {
        *c = r.get::<_, Option<i64>>(at + i)?;
    }
    Ok(rows::facts(counts))
}

fn mail_row(r: &Row<'_>) -> rusqlite::Result<MailRow> {
    Ok(MailRow {
        id: r.get(0)?,
        campaign: r.get(1)?,
        institution: r.get(2)?,
        kind: r.get(3)?,
        key: r.get(4)?,
        recipient: r.get(5)?,
        subject: r.get(6)?,
        body: r.get(7)?,
        attempts: r.get(8)?,
        next_attempt_at: r.get(9)?,
        last_error: r.get(10)?,
        created_at: r.get(11)?,
        sent_at: r.get(12)?,
    })
}

/// Inserts a campaign (`Conflict` when its id is taken), on a connection or in a transaction.
fn insert_campaign_on(conn: &Connection, c: &CampaignRecord, at: Timestamp) -> Result<()> {
    let selector = serde_json::to_string(&c.selector).map_err(corrupt)?;
    let n = conn.execute(
        "INSERT INTO campaigns (id, schedule, release_id, selector, max_downloads, poll_seconds, status, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8) ON CONFLICT (id) DO NOTHING",
        params![
            c.id,
            c.schedule_toml,
            c.release_id,
            selector,
            c.max_downloads,
            i64::try_from(c.poll_interval.as_secs()).map_err(corrupt)?,
            c.status.slug(),
            db_time(at)
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

fn insert_audit(conn: &Connection, e: &AuditEntry) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit (at, actor, action, subject, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        db_time(e.at),
        e.actor,
        e.action,
        e.subject,
        e.detail
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reopened_store_knows_every_live_devices_token_without_asking_the_database() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("onshi.db");
        let store = SqliteStore::open(&path).expect("opens");
        let code = InstitutionCode::parse("0110113719").expect("code");
        let site = Institution {
            code,
            name: "テスト診療所".into(),
            kind: InstitutionKind::Clinic,
            prefecture: Prefecture::from_number(1).expect("prefecture"),
            email: "site@example.invalid".into(),
            auto_restart: None,
            phone: None,
        };
        let at: Timestamp = "2026-01-13T01:00:00Z".parse().expect("instant");
        store.upsert_institutions(&[site], at).expect("stored");
        let enrol = |serial: &str| {
            let device = NewDevice {
                institution: code,
                kind: DeviceKind::Terminal,
                vendor: None,
                serial: serial.to_owned(),
                parent: None,
                token_hash: format!("hash-{serial}"),
            };
            store
                .enrol_device(&device, &EnrolRules::default(), at)
                .expect("enrols")
        };
        let (live, revoked) = (enrol("T-1"), enrol("T-2"));
        store.revoke_device(revoked.id, at).expect("revoked");
        drop(store);

        let reopened = SqliteStore::open(&path).expect("reopens");
        let known = reopened.remembered_device("hash-T-1").expect("in memory");
        assert_eq!((known.id, known.serial.as_str()), (live.id, "T-1"));
        assert!(reopened.remembered_device("hash-T-2").is_none());
        assert!(
            reopened
                .device_by_token("hash-T-2")
                .expect("asked")
                .is_none()
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_database_file_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("onshi.db");
        let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;

        drop(SqliteStore::open(&path).expect("opens"));
        assert_eq!(mode(&path), 0o600);

        // A file left readable by an older version is narrowed when opened.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let store = SqliteStore::open(&path).expect("reopens");
        store.set_setting("k", "v").expect("write");
        assert_eq!(mode(&path), 0o600);
        let wal = dir.path().join("onshi.db-wal");
        if wal.exists() {
            assert_eq!(mode(&wal), 0o600);
        }
    }
}
