//! Waves and health gates in SQLite: each site's wave, the campaign's wave progress (changed
//! compare-and-set with its status, audit line and operator mail in one transaction), what a
//! terminal's restart told, and the operator's outbox.

use jiff::Timestamp;
use onshi_core::deployment::DeploymentState;
use onshi_core::institution::InstitutionCode;
use onshi_core::waves::{WaveHealth, WaveProgress};
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, insert_audit, insert_campaign_on};
use crate::rows::{corrupt, ts, wave_entry};
use crate::time::db_time;
use crate::*;

/// Each wave's counts; the placeholders are the campaign (1), the last wave (2) and the
/// overdue instant (3).
/// Each wave's counts from the tally the triggers of migration 0007 keep (a few rows per
/// campaign); the placeholders are the campaign (1) and the last wave (2), in which the sites
/// not dealt (wave -1) count.
const HEALTH: &str = "SELECT CASE WHEN wave < 0 THEN ?2 ELSE wave END AS w,
        SUM(n),
        SUM(CASE WHEN terminal = 1 THEN n ELSE 0 END),
        SUM(CASE WHEN state <> 'waiting' THEN n ELSE 0 END),
        SUM(CASE WHEN state = 'failed' THEN n ELSE 0 END),
        SUM(CASE WHEN terminal = 1 AND state = 'applied' THEN n ELSE 0 END),
        SUM(CASE WHEN terminal = 1 AND unhealthy = 1 THEN n ELSE 0 END),
        SUM(CASE WHEN terminal = 1 AND state = 'installed' AND restarted = 1 THEN n ELSE 0 END)
     FROM wave_tally WHERE campaign_id = ?1
     GROUP BY 1
     ORDER BY 1";

/// Each wave's installed terminals restarted without the new version at or before (3): the
/// few restarted rows, through the partial index `deployments_restarted`.
const OVERDUE: &str = "SELECT COALESCE(w.wave, ?2), COUNT(*)
     FROM deployments p JOIN devices d ON d.id = p.device_id
     LEFT JOIN wave_sites w ON w.campaign_id = p.campaign_id AND w.institution_code = d.institution_code
     WHERE p.campaign_id = ?1 AND p.restarted_at IS NOT NULL AND p.restarted_at <= ?3
       AND p.state = 'installed' AND d.kind = 'terminal'
     GROUP BY 1";

/// Counts a campaign's deployments into its tally afresh and its waves' sizes (once, when its
/// sites are dealt: the triggers keep the tally from then on).
const RECOUNT: &str = "DELETE FROM wave_tally WHERE campaign_id = ?1;
     INSERT INTO wave_tally (campaign_id, wave, terminal, state, unhealthy, restarted, n)
     SELECT p.campaign_id, COALESCE(w.wave, -1),
            CASE WHEN d.kind = 'terminal' THEN 1 ELSE 0 END, p.state,
            CASE WHEN p.health = 'unhealthy' THEN 1 ELSE 0 END,
            CASE WHEN p.restarted_at IS NOT NULL THEN 1 ELSE 0 END, COUNT(*)
     FROM deployments p JOIN devices d ON d.id = p.device_id
     LEFT JOIN wave_sites w ON w.campaign_id = p.campaign_id AND w.institution_code = d.institution_code
     WHERE p.campaign_id = ?1
     GROUP BY 1, 2, 3, 4, 5, 6;
     DELETE FROM wave_sizes WHERE campaign_id = ?1;
     INSERT INTO wave_sizes (campaign_id, wave, sites)
     SELECT campaign_id, wave, COUNT(*) FROM wave_sites WHERE campaign_id = ?1
     GROUP BY campaign_id, wave;";

/// A campaign's devices past `waiting` with their wave and state; the placeholders are the
/// campaign (1) and the last wave (2).
const WAVE_DEVICES: &str = "SELECT p.device_id, COALESCE(w.wave, ?2), p.state
     FROM deployments p JOIN devices d ON d.id = p.device_id
     LEFT JOIN wave_sites w ON w.campaign_id = p.campaign_id AND w.institution_code = d.institution_code
     WHERE p.campaign_id = ?1 AND p.state <> 'waiting'
     ORDER BY p.device_id";

const OPERATOR_MAIL_COLS: &str =
    "id, campaign_id, notice_key, recipient, subject, body, attempts, sent_at";

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn pair(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, i64)> {
    Ok((r.get(0)?, r.get(1)?))
}

fn operator_mail(r: &rusqlite::Row<'_>) -> rusqlite::Result<(OperatorMail, Option<String>)> {
    Ok((
        OperatorMail {
            id: r.get(0)?,
            campaign: r.get(1)?,
            key: r.get(2)?,
            recipient: r.get(3)?,
            subject: r.get(4)?,
            body: r.get(5)?,
            attempts: u32::try_from(r.get::<_, i64>(6)?).unwrap_or(0),
            sent_at: None,
        },
        r.get(7)?,
    ))
}

fn with_sent((mut m, sent): (OperatorMail, Option<String>)) -> Result<OperatorMail> {
    m.sent_at = sent.as_deref().map(ts).transpose()?;
    Ok(m)
}

fn progress_json(p: &WaveProgress) -> Result<String> {
    serde_json::to_string(p).map_err(corrupt)
}

impl SqliteStore {
    pub(super) fn start_waves_impl(
        &self,
        campaign: &str,
        sites: &[(InstitutionCode, u16)],
        progress: &WaveProgress,
        at: Timestamp,
    ) -> Result<()> {
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        let n = tx.execute(
            "INSERT INTO wave_progress (campaign_id, progress, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (campaign_id) DO NOTHING",
            params![campaign, progress_json(progress)?, db_time(at)],
        )?;
        if n == 1 {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO wave_sites (campaign_id, institution_code, wave) VALUES (?1, ?2, ?3)
                 ON CONFLICT (campaign_id, institution_code) DO NOTHING",
            )?;
            for (code, wave) in sites {
                stmt.execute(params![campaign, code.to_string(), wave])?;
            }
            drop(stmt);
            for sql in RECOUNT.split_terminator(';') {
                tx.prepare(sql)?.execute(params![campaign])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub(super) fn wave_sites_impl(&self, campaign: &str) -> Result<Vec<(InstitutionCode, u16)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT institution_code, wave FROM wave_sites WHERE campaign_id = ?1
             ORDER BY institution_code",
        )?;
        let rows = stmt
            .query_map([campaign], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(code, wave)| {
                Ok((
                    code.parse().map_err(corrupt)?,
                    u16::try_from(wave).map_err(corrupt)?,
                ))
            })
            .collect()
    }

    pub(super) fn wave_progress_impl(&self, campaign: &str) -> Result<Option<WaveProgress>> {
        let text: Option<String> = self
            .conn()
            .prepare_cached("SELECT progress FROM wave_progress WHERE campaign_id = ?1")?
            .query_row([campaign], |r| r.get(0))
            .optional()?;
        text.map(|t| serde_json::from_str(&t).map_err(corrupt))
            .transpose()
    }

    pub(super) fn change_waves_impl(&self, c: &WaveChange<'_>) -> Result<bool> {
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        let n = tx.execute(
            "UPDATE wave_progress SET progress = ?3, updated_at = ?4
             WHERE campaign_id = ?1 AND progress = ?2",
            params![
                c.campaign,
                progress_json(c.expected)?,
                progress_json(c.next)?,
                db_time(c.at)
            ],
        )?;
        if n != 1 {
            return Ok(false);
        }
        if let Some((from, to)) = c.status {
            let n = tx.execute(
                "UPDATE campaigns SET status = ?3, updated_at = ?4 WHERE id = ?1 AND status = ?2",
                params![c.campaign, from.slug(), to.slug(), db_time(c.at)],
            )?;
            if n != 1 {
                return Ok(false);
            }
        }
        if let Some(r) = c.rollback {
            insert_campaign_on(&tx, r.campaign, c.at)?;
            let mut stmt = tx.prepare_cached(
                "INSERT INTO deployments (campaign_id, device_id, state, bytes, last_seq, updated_at)
                 VALUES (?1, ?2, 'waiting', 0, 0, ?3) ON CONFLICT (campaign_id, device_id) DO NOTHING",
            )?;
            for d in r.devices {
                stmt.execute(params![r.campaign.id, d, db_time(c.at)])?;
            }
        }
        if let Some(e) = c.audit {
            insert_audit(&tx, e)?;
        }
        if let Some(m) = c.mail {
            tx.execute(
                "INSERT INTO operator_outbox (campaign_id, notice_key, recipient, subject, body,
                    next_attempt_at, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
                 ON CONFLICT (campaign_id, notice_key) DO NOTHING",
                params![
                    c.campaign,
                    m.key,
                    m.recipient,
                    m.subject,
                    m.body,
                    db_time(c.at)
                ],
            )?;
        }
        tx.commit()?;
        if c.status.is_some() || c.rollback.is_some() {
            // The cached open deployments carry no status, but a check-in reads the campaign
            // afresh: drop them all as `set_campaign_status` does (and a rollback's new
            // deployments with them).
            self.open.write().unwrap_or_else(|e| e.into_inner()).clear();
        }
        Ok(true)
    }

    pub(super) fn wave_devices_impl(
        &self,
        campaign: &str,
        last: u16,
    ) -> Result<Vec<(i64, u16, DeploymentState)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(WAVE_DEVICES)?;
        let rows = stmt
            .query_map(params![campaign, last], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(id, wave, state)| {
                Ok((
                    id,
                    u16::try_from(wave).map_err(corrupt)?,
                    state.parse().map_err(corrupt)?,
                ))
            })
            .collect()
    }

    pub(super) fn wave_health_impl(
        &self,
        campaign: &str,
        last: u16,
        overdue_before: Timestamp,
    ) -> Result<Vec<WaveHealth>> {
        let conn = self.conn();
        let tallies = conn
            .prepare_cached(HEALTH)?
            .query_map(params![campaign, last], |r| {
                let mut v = [0i64; 8];
                for (i, x) in v.iter_mut().enumerate() {
                    *x = r.get::<_, Option<i64>>(i)?.unwrap_or(0);
                }
                Ok(v)
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let overdue = conn
            .prepare_cached(OVERDUE)?
            .query_map(params![campaign, last, db_time(overdue_before)], pair)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let sizes = conn
            .prepare_cached("SELECT wave, sites FROM wave_sizes WHERE campaign_id = ?1")?
            .query_map([campaign], pair)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        drop(conn);
        let mut out: Vec<WaveHealth> = Vec::new();
        for v in tallies {
            let h = wave_entry(&mut out, v[0])?;
            h.devices = count(v[1]);
            h.terminals = count(v[2]);
            h.started = count(v[3]);
            h.failed = count(v[4]);
            h.applied_terminals = count(v[5]);
            h.unhealthy = count(v[6]);
            h.restarted_old = count(v[7]);
        }
        for (wave, n) in overdue {
            wave_entry(&mut out, wave)?.restarted_old_overdue = count(n);
        }
        for (wave, n) in sizes {
            wave_entry(&mut out, wave)?.sites = count(n);
        }
        out.sort_by_key(|h| h.wave);
        Ok(out)
    }

    pub(super) fn record_restart_impl(
        &self,
        campaign: &str,
        device: i64,
        note: RestartNote,
        at: Timestamp,
    ) -> Result<()> {
        let conn = self.conn();
        match note {
            RestartNote::Healthy | RestartNote::Unhealthy => {
                let health = if note == RestartNote::Healthy {
                    "healthy"
                } else {
                    "unhealthy"
                };
                conn.prepare_cached(
                    "UPDATE deployments SET health = ?3 WHERE campaign_id = ?1 AND device_id = ?2",
                )?
                .execute(params![campaign, device, health])?;
            }
            RestartNote::OldVersion => {
                conn.prepare_cached(
                    "UPDATE deployments SET restarted_at = ?3
                     WHERE campaign_id = ?1 AND device_id = ?2 AND restarted_at IS NULL",
                )?
                .execute(params![campaign, device, db_time(at)])?;
            }
        }
        Ok(())
    }

    pub(super) fn claim_operator_mails_impl(
        &self,
        now: Timestamp,
        claim_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<OperatorMail>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "UPDATE operator_outbox SET next_attempt_at = ?2
             WHERE id IN (SELECT id FROM operator_outbox
                          WHERE sent_at IS NULL AND gave_up_at IS NULL AND next_attempt_at <= ?1
                          ORDER BY next_attempt_at, id LIMIT ?3)
             RETURNING {OPERATOR_MAIL_COLS}"
        ))?;
        let rows = stmt
            .query_map(
                params![db_time(now), db_time(claim_until), limit],
                operator_mail,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut mails = rows
            .into_iter()
            .map(with_sent)
            .collect::<Result<Vec<_>>>()?;
        mails.sort_by_key(|m| m.id);
        Ok(mails)
    }

    pub(super) fn operator_mail_sent_impl(&self, id: i64, at: Timestamp) -> Result<()> {
        self.conn()
            .prepare_cached(
                "UPDATE operator_outbox SET sent_at = ?2, attempts = attempts + 1 WHERE id = ?1",
            )?
            .execute(params![id, db_time(at)])?;
        Ok(())
    }

    pub(super) fn operator_mail_failed_impl(
        &self,
        id: i64,
        error: &str,
        retry_at: Timestamp,
    ) -> Result<()> {
        self.conn()
            .prepare_cached(
                "UPDATE operator_outbox SET attempts = attempts + 1, last_error = ?2,
                    next_attempt_at = ?3 WHERE id = ?1 AND sent_at IS NULL",
            )?
            .execute(params![id, error, db_time(retry_at)])?;
        Ok(())
    }

    pub(super) fn operator_mails_impl(&self, campaign: &str) -> Result<Vec<OperatorMail>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {OPERATOR_MAIL_COLS} FROM operator_outbox WHERE campaign_id = ?1 ORDER BY id"
        ))?;
        let rows = stmt
            .query_map([campaign], operator_mail)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(with_sent).collect()
    }
}
