//! Waves and health gates in PostgreSQL, shared by every replica: each site's wave, the
//! campaign's wave progress (one compare-and-set `UPDATE`; the status, the audit line under the
//! audit lock and the operator's mail in the same transaction, so two replicas judging one gate
//! hold the campaign, audit and mail once), what a terminal's restart told, and the operator's
//! outbox (claimed with `FOR UPDATE SKIP LOCKED`).

use jiff::Timestamp;
use onshi_core::deployment::DeploymentState;
use onshi_core::institution::InstitutionCode;
use onshi_core::waves::{WaveHealth, WaveProgress};
use tokio_postgres::Row;

use super::{
    ALL_DEPLOYMENTS_CHANGED, AUDIT_LOCK, INSERT_AUDIT, LOCK_SPACE, PostgresStore, audit_params,
    insert_campaign_in,
};
use crate::rows::{corrupt, ts, wave_entry};
use crate::time::db_time;
use crate::*;

/// Each wave's counts from the tally the trigger of migration 0007 keeps (a few rows per
/// campaign, each count split over 16 stripes); the sites not dealt (wave -1) count in the
/// last wave ($2).
const HEALTH: &str = "SELECT CASE WHEN wave < 0 THEN $2 ELSE wave END AS w,
        SUM(n)::BIGINT,
        SUM(CASE WHEN terminal = 1 THEN n ELSE 0 END)::BIGINT,
        SUM(CASE WHEN state <> 'waiting' THEN n ELSE 0 END)::BIGINT,
        SUM(CASE WHEN state = 'failed' THEN n ELSE 0 END)::BIGINT,
        SUM(CASE WHEN terminal = 1 AND state = 'applied' THEN n ELSE 0 END)::BIGINT,
        SUM(CASE WHEN terminal = 1 AND unhealthy = 1 THEN n ELSE 0 END)::BIGINT,
        SUM(CASE WHEN terminal = 1 AND state = 'installed' AND restarted = 1 THEN n ELSE 0 END)::BIGINT
     FROM wave_tally WHERE campaign_id = $1
     GROUP BY 1
     ORDER BY 1";

/// Each wave's installed terminals restarted without the new version at or before $3: the few
/// restarted rows, through the partial index `deployments_restarted`.
const OVERDUE: &str = "SELECT COALESCE(w.wave, $2), COUNT(*)
     FROM deployments p JOIN devices d ON d.id = p.device_id
     LEFT JOIN wave_sites w ON w.campaign_id = p.campaign_id AND w.institution_code = d.institution_code
     WHERE p.campaign_id = $1 AND p.restarted_at IS NOT NULL AND p.restarted_at <= $3
       AND p.state = 'installed' AND d.kind = 'terminal'
     GROUP BY 1";

/// Counts a campaign's deployments into its tally afresh and its waves' sizes, once, when its
/// sites are dealt (the trigger keeps the tally from then on). The tally is locked first, so
/// a report's trigger waits and then counts from what this counted.
const RECOUNT: [&str; 5] = [
    "LOCK TABLE wave_tally IN EXCLUSIVE MODE",
    "DELETE FROM wave_tally WHERE campaign_id = $1",
    "INSERT INTO wave_tally (campaign_id, wave, terminal, state, unhealthy, restarted, stripe, n)
     SELECT p.campaign_id, COALESCE(w.wave, -1),
            CASE WHEN d.kind = 'terminal' THEN 1 ELSE 0 END, p.state,
            CASE WHEN p.health = 'unhealthy' THEN 1 ELSE 0 END,
            CASE WHEN p.restarted_at IS NOT NULL THEN 1 ELSE 0 END, p.device_id % 16, COUNT(*)
     FROM deployments p JOIN devices d ON d.id = p.device_id
     LEFT JOIN wave_sites w ON w.campaign_id = p.campaign_id AND w.institution_code = d.institution_code
     WHERE p.campaign_id = $1
     GROUP BY 1, 2, 3, 4, 5, 6, 7",
    "DELETE FROM wave_sizes WHERE campaign_id = $1",
    "INSERT INTO wave_sizes (campaign_id, wave, sites)
     SELECT campaign_id, wave, COUNT(*) FROM wave_sites WHERE campaign_id = $1
     GROUP BY campaign_id, wave",
];

/// A campaign's devices past `waiting` with their wave and state.
const WAVE_DEVICES: &str = "SELECT p.device_id, COALESCE(w.wave, $2), p.state
     FROM deployments p JOIN devices d ON d.id = p.device_id
     LEFT JOIN wave_sites w ON w.campaign_id = p.campaign_id AND w.institution_code = d.institution_code
     WHERE p.campaign_id = $1 AND p.state <> 'waiting'
     ORDER BY p.device_id";

const OPERATOR_MAIL_COLS: &str =
    "id, campaign_id, notice_key, recipient, subject, body, attempts, sent_at";

fn count(r: &Row, i: usize) -> Result<u64> {
    Ok(u64::try_from(r.try_get::<_, Option<i64>>(i)?.unwrap_or(0)).unwrap_or(0))
}

fn operator_mail(r: &Row) -> Result<OperatorMail> {
    Ok(OperatorMail {
        id: r.try_get(0)?,
        campaign: r.try_get(1)?,
        key: r.try_get(2)?,
        recipient: r.try_get(3)?,
        subject: r.try_get(4)?,
        body: r.try_get(5)?,
        attempts: u32::try_from(r.try_get::<_, i64>(6)?).unwrap_or(0),
        sent_at: r
            .try_get::<_, Option<String>>(7)?
            .as_deref()
            .map(ts)
            .transpose()?,
    })
}

fn progress_json(p: &WaveProgress) -> Result<String> {
    serde_json::to_string(p).map_err(corrupt)
}

impl PostgresStore {
    pub(super) fn start_waves_impl(
        &self,
        campaign: &str,
        sites: &[(InstitutionCode, u16)],
        progress: &WaveProgress,
        at: Timestamp,
    ) -> Result<()> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        let n = tx.execute(
            "INSERT INTO wave_progress (campaign_id, progress, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (campaign_id) DO NOTHING",
            &[&campaign, &progress_json(progress)?, &db_time(at)],
        )?;
        if n == 1 {
            let codes: Vec<String> = sites.iter().map(|(c, _)| c.to_string()).collect();
            let waves: Vec<i64> = sites.iter().map(|(_, w)| i64::from(*w)).collect();
            tx.execute(
                "INSERT INTO wave_sites (campaign_id, institution_code, wave)
                 SELECT $1, u.code, u.wave FROM unnest($2::text[], $3::bigint[]) AS u (code, wave)
                 ON CONFLICT (campaign_id, institution_code) DO NOTHING",
                &[&campaign, &codes, &waves],
            )?;
            tx.batch_execute(RECOUNT[0])?;
            for sql in &RECOUNT[1..] {
                tx.execute(*sql, &[&campaign])?;
            }
        }
        tx.commit()
    }

    pub(super) fn wave_sites_impl(&self, campaign: &str) -> Result<Vec<(InstitutionCode, u16)>> {
        self.conn()?
            .query(
                "SELECT institution_code, wave FROM wave_sites WHERE campaign_id = $1
                 ORDER BY institution_code",
                &[&campaign],
            )?
            .iter()
            .map(|r| {
                let code: String = r.try_get(0)?;
                let wave: i64 = r.try_get(1)?;
                Ok((
                    code.parse().map_err(corrupt)?,
                    u16::try_from(wave).map_err(corrupt)?,
                ))
            })
            .collect()
    }

    pub(super) fn wave_progress_impl(&self, campaign: &str) -> Result<Option<WaveProgress>> {
        let row = self.conn()?.query_opt(
            "SELECT progress FROM wave_progress WHERE campaign_id = $1",
            &[&campaign],
        )?;
        row.map(|r| {
            let text: String = r.try_get(0)?;
            serde_json::from_str(&text).map_err(corrupt)
        })
        .transpose()
    }

    pub(super) fn change_waves_impl(&self, c: &WaveChange<'_>) -> Result<bool> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        let at = db_time(c.at);
        // The row lock serialises two replicas; the second sees the first's progress and
        // changes nothing.
        let n = tx.execute(
            "UPDATE wave_progress SET progress = $3, updated_at = $4
             WHERE campaign_id = $1 AND progress = $2",
            &[
                &c.campaign,
                &progress_json(c.expected)?,
                &progress_json(c.next)?,
                &at,
            ],
        )?;
        if n != 1 {
            return Ok(false);
        }
        if let Some((from, to)) = c.status {
            let n = tx.execute(
                "UPDATE campaigns SET status = $3, updated_at = $4 WHERE id = $1 AND status = $2",
                &[&c.campaign, &from.slug(), &to.slug(), &at],
            )?;
            if n != 1 {
                return Ok(false);
            }
        }
        if let Some(r) = c.rollback {
            insert_campaign_in(&mut tx, r.campaign, c.at)?;
            tx.execute(
                "INSERT INTO deployments (campaign_id, device_id, state, bytes, last_seq, updated_at)
                 SELECT $1, u.id, 'waiting', 0, 0, $3 FROM unnest($2::bigint[]) AS u (id)
                 ON CONFLICT (campaign_id, device_id) DO NOTHING",
                &[&r.campaign.id, &r.devices, &at],
            )?;
        }
        let changes_deployments = c.status.is_some() || c.rollback.is_some();
        if changes_deployments {
            tx.execute(
                "SELECT pg_notify($1, $2)",
                &[&self.channel, &ALL_DEPLOYMENTS_CHANGED],
            )?;
        }
        if let Some(e) = c.audit {
            tx.execute(
                "SELECT pg_advisory_xact_lock($1, $2)",
                &[&LOCK_SPACE, &AUDIT_LOCK],
            )?;
            tx.execute(INSERT_AUDIT, &audit_params(e, &db_time(e.at)))?;
        }
        if let Some(m) = c.mail {
            tx.execute(
                "INSERT INTO operator_outbox (campaign_id, notice_key, recipient, subject, body,
                    next_attempt_at, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $6)
                 ON CONFLICT (campaign_id, notice_key) DO NOTHING",
                &[&c.campaign, &m.key, &m.recipient, &m.subject, &m.body, &at],
            )?;
        }
        tx.commit()?;
        if changes_deployments {
            self.cache.apply(ALL_DEPLOYMENTS_CHANGED);
        }
        Ok(true)
    }

    pub(super) fn wave_devices_impl(
        &self,
        campaign: &str,
        last: u16,
    ) -> Result<Vec<(i64, u16, DeploymentState)>> {
        self.conn()?
            .query(WAVE_DEVICES, &[&campaign, &i64::from(last)])?
            .iter()
            .map(|r| {
                Ok((
                    r.try_get::<_, i64>(0)?,
                    u16::try_from(r.try_get::<_, i64>(1)?).map_err(corrupt)?,
                    r.try_get::<_, String>(2)?.parse().map_err(corrupt)?,
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
        let mut conn = self.conn()?;
        let last = i64::from(last);
        let mut out: Vec<WaveHealth> = Vec::new();
        for r in conn.query(HEALTH, &[&campaign, &last])? {
            let h = wave_entry(&mut out, r.try_get(0)?)?;
            h.devices = count(&r, 1)?;
            h.terminals = count(&r, 2)?;
            h.started = count(&r, 3)?;
            h.failed = count(&r, 4)?;
            h.applied_terminals = count(&r, 5)?;
            h.unhealthy = count(&r, 6)?;
            h.restarted_old = count(&r, 7)?;
        }
        for r in conn.query(OVERDUE, &[&campaign, &last, &db_time(overdue_before)])? {
            wave_entry(&mut out, r.try_get(0)?)?.restarted_old_overdue = count(&r, 1)?;
        }
        for r in conn.query(
            "SELECT wave, sites FROM wave_sizes WHERE campaign_id = $1",
            &[&campaign],
        )? {
            wave_entry(&mut out, r.try_get(0)?)?.sites = count(&r, 1)?;
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
        let mut conn = self.conn()?;
        match note {
            RestartNote::Healthy | RestartNote::Unhealthy => {
                let health = if note == RestartNote::Healthy {
                    "healthy"
                } else {
                    "unhealthy"
                };
                conn.execute(
                    "UPDATE deployments SET health = $3 WHERE campaign_id = $1 AND device_id = $2",
                    &[&campaign, &device, &health],
                )?;
            }
            RestartNote::OldVersion => {
                conn.execute(
                    "UPDATE deployments SET restarted_at = $3
                     WHERE campaign_id = $1 AND device_id = $2 AND restarted_at IS NULL",
                    &[&campaign, &device, &db_time(at)],
                )?;
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
        let mut mails = self
            .conn()?
            .query(
                &format!(
                    "UPDATE operator_outbox SET next_attempt_at = $2
                     WHERE id IN (SELECT id FROM operator_outbox
                                  WHERE sent_at IS NULL AND gave_up_at IS NULL
                                    AND next_attempt_at <= $1
                                  ORDER BY next_attempt_at, id LIMIT $3
                                  FOR UPDATE SKIP LOCKED)
                     RETURNING {OPERATOR_MAIL_COLS}"
                ),
                &[&db_time(now), &db_time(claim_until), &i64::from(limit)],
            )?
            .iter()
            .map(operator_mail)
            .collect::<Result<Vec<_>>>()?;
        mails.sort_by_key(|m| m.id);
        Ok(mails)
    }

    pub(super) fn operator_mail_sent_impl(&self, id: i64, at: Timestamp) -> Result<()> {
        self.conn()?.execute(
            "UPDATE operator_outbox SET sent_at = $2, attempts = attempts + 1 WHERE id = $1",
            &[&id, &db_time(at)],
        )?;
        Ok(())
    }

    pub(super) fn operator_mail_failed_impl(
        &self,
        id: i64,
        error: &str,
        retry_at: Timestamp,
    ) -> Result<()> {
        self.conn()?.execute(
            "UPDATE operator_outbox SET attempts = attempts + 1, last_error = $2,
                next_attempt_at = $3 WHERE id = $1 AND sent_at IS NULL",
            &[&id, &error, &db_time(retry_at)],
        )?;
        Ok(())
    }

    pub(super) fn operator_mails_impl(&self, campaign: &str) -> Result<Vec<OperatorMail>> {
        self.conn()?
            .query(
                &format!(
                    "SELECT {OPERATOR_MAIL_COLS} FROM operator_outbox WHERE campaign_id = $1 ORDER BY id"
                ),
                &[&campaign],
            )?
            .iter()
            .map(operator_mail)
            .collect()
    }
}
