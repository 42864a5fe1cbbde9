//! The queue for download slots in PostgreSQL, so that every replica serves one queue per
//! campaign: the same fields as `onshi_core::appointment::Queue` in `slot_queue` and
//! `slot_turnover`, changed under the campaign's advisory lock (the one taking a slot holds), and
//! every rule — appointment, turnover, lapse, admission — asked of `onshi-core`.

use std::time::Duration;

use jiff::Timestamp;
use onshi_core::appointment::{self, Turnover, Window};

use super::{LOCK_SPACE, PostgresStore};
use crate::rows::ts;
use crate::time::db_time;
use crate::{Result, Turn, TurnAsk};

impl PostgresStore {
    pub(super) fn queue_take_turn(&self, ask: &TurnAsk<'_>) -> Result<Turn> {
        if let Some(turn) = self.queue_wait_unlocked(ask)? {
            return Ok(turn);
        }
        self.queue_take_turn_locked(ask)
    }

    /// A device that cannot take a slot now learns its place without the campaign's lock (so the
    /// many waiting devices never queue on it): renewing or counting is one statement, a new
    /// ticket one row update, the place one count. `None` when a free slot may be the device's,
    /// or the queue has no row for this window yet: the locked path decides.
    fn queue_wait_unlocked(&self, ask: &TurnAsk<'_>) -> Result<Option<Turn>> {
        let (campaign, device, now) = (ask.campaign, ask.device, ask.now);
        let (now_s, expires_s) = (db_time(now), db_time(ask.expires));
        let opened_s = db_time(ask.window.opened_at);
        let mut conn = self.conn()?;
        let row = conn.query_one(
            "WITH renewed AS (
                 UPDATE leases SET expires_at = $3
                 WHERE campaign_id = $1 AND device_id = $2 AND expires_at > $4
                 RETURNING 1
             )
             SELECT (SELECT COUNT(*) FROM renewed),
                    (SELECT COUNT(*) FROM leases WHERE campaign_id = $1 AND expires_at > $4),
                    (SELECT hold_seconds FROM slot_turnover
                     WHERE campaign_id = $1 AND window_opened_at = $5),
                    (SELECT ticket FROM slot_queue WHERE campaign_id = $1 AND device_id = $2)",
            &[&campaign, &device, &expires_s, &now_s, &opened_s],
        )?;
        let (renewed, live): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        if renewed == 1 {
            return Ok(Some(Turn::Slot));
        }
        let (hold, ticket): (Option<f64>, Option<i64>) = (row.try_get(2)?, row.try_get(3)?);
        let Some(hold) = hold else { return Ok(None) };
        let free = ask
            .max
            .saturating_sub(u32::try_from(live).unwrap_or(u32::MAX));
        if free > 0 {
            // Places whose turn lapsed among the first free + 1 give it up (one statement: a
            // device coming back at that moment queues again at the back, as it would anyway).
            let cutoff = now
                .checked_sub(jiff::SignedDuration::try_from(appointment::GRACE).unwrap_or_default())
                .unwrap_or(now);
            conn.execute(
                "DELETE FROM slot_queue WHERE campaign_id = $1 AND due_at < $2 AND ticket IN
                     (SELECT ticket FROM slot_queue WHERE campaign_id = $1 ORDER BY ticket LIMIT $3)",
                &[&campaign, &db_time(cutoff), &(i64::from(free) + 1)],
            )?;
        }
        let ticket = match ticket {
            Some(t) => t,
            None => {
                let t: i64 = conn
                    .query_one(
                        "UPDATE slot_turnover SET next_ticket = next_ticket + 1
                         WHERE campaign_id = $1 RETURNING next_ticket - 1",
                        &[&campaign],
                    )?
                    .try_get(0)?;
                conn.execute(
                    "INSERT INTO slot_queue (campaign_id, device_id, ticket, due_at)
                     VALUES ($1, $2, $3, $4) ON CONFLICT (campaign_id, device_id) DO NOTHING",
                    &[&campaign, &device, &t, &now_s],
                )?;
                t
            }
        };
        let ahead: i64 = conn
            .query_one(
                "SELECT COUNT(*) FROM slot_queue WHERE campaign_id = $1 AND ticket < $2",
                &[&campaign, &ticket],
            )?
            .try_get(0)?;
        let position = u64::try_from(ahead).unwrap_or(0);
        if position < u64::from(free) {
            // A free slot may be this device's: decided under the campaign's lock.
            return Ok(None);
        }
        let at = appointment::appointment(
            position,
            free,
            Turnover { hold }.rate(ask.max),
            now,
            &ask.window,
            ask.jitter,
        );
        if past_close(&ask.window, at) {
            conn.execute(
                "DELETE FROM slot_queue WHERE campaign_id = $1 AND device_id = $2",
                &[&campaign, &device],
            )?;
        } else {
            conn.execute(
                "UPDATE slot_queue SET due_at = $3 WHERE campaign_id = $1 AND device_id = $2",
                &[&campaign, &device, &db_time(at)],
            )?;
        }
        Ok(Some(Turn::Wait { position, at }))
    }

    fn queue_take_turn_locked(&self, ask: &TurnAsk<'_>) -> Result<Turn> {
        let (campaign, device, now) = (ask.campaign, ask.device, ask.now);
        let (now_s, expires_s) = (db_time(now), db_time(ask.expires));
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&LOCK_SPACE, &campaign],
        )?;
        let renewed = tx.execute(
            "UPDATE leases SET expires_at = $3
             WHERE campaign_id = $1 AND device_id = $2 AND expires_at > $4",
            &[&campaign, &device, &expires_s, &now_s],
        )?;
        if renewed == 1 {
            tx.execute(
                "UPDATE slot_turnover SET seen_at = GREATEST(seen_at, $2) WHERE campaign_id = $1",
                &[&campaign, &now_s],
            )?;
            tx.commit()?;
            return Ok(Turn::Slot);
        }
        let lapsed_leases = tx.query(
            "DELETE FROM leases WHERE campaign_id = $1 AND expires_at <= $2
             RETURNING taken_at, expires_at",
            &[&campaign, &now_s],
        )?;
        let live: i64 = tx
            .query_one(
                "SELECT COUNT(*) FROM leases WHERE campaign_id = $1",
                &[&campaign],
            )?
            .try_get(0)?;
        let live = u32::try_from(live).unwrap_or(u32::MAX);
        // The queue's own row: its window (a new one starts a new queue), tickets, turnover.
        // Tickets are drawn by one atomic update (the unlocked path draws them too).
        let opened_s = db_time(ask.window.opened_at);
        let row = tx.query_opt(
            "SELECT window_opened_at, next_ticket, hold_seconds FROM slot_turnover
             WHERE campaign_id = $1",
            &[&campaign],
        )?;
        let mut turnover = match &row {
            Some(r) => Turnover {
                hold: r.try_get(2)?,
            },
            None => Turnover::assumed(),
        };
        let window_of_row = row
            .as_ref()
            .map(|r| r.try_get::<_, String>(0))
            .transpose()?;
        if window_of_row.as_deref() != Some(opened_s.as_str()) {
            // A new window (or the first): a new queue, and the row that draws its tickets.
            tx.execute(
                "DELETE FROM slot_queue WHERE campaign_id = $1",
                &[&campaign],
            )?;
            tx.execute(
                "INSERT INTO slot_turnover
                     (campaign_id, window_opened_at, next_ticket, hold_seconds, seen_at)
                 VALUES ($1, $2, 0, $3, $4)
                 ON CONFLICT (campaign_id) DO UPDATE SET window_opened_at = excluded.window_opened_at,
                     next_ticket = 0",
                &[&campaign, &opened_s, &turnover.hold, &now_s],
            )?;
        }
        for r in &lapsed_leases {
            let (taken, expires): (Option<String>, String) = (r.try_get(0)?, r.try_get(1)?);
            if let Some(taken) = taken {
                turnover.freed(held_for(ts(&taken)?, ts(&expires)?));
            }
        }
        let free = ask.max.saturating_sub(live);
        // Lapsed places among the first free + 1 give their turn up.
        for r in tx.query(
            "SELECT ticket, due_at FROM slot_queue WHERE campaign_id = $1 ORDER BY ticket LIMIT $2",
            &[&campaign, &(i64::from(free) + 1)],
        )? {
            let (ticket, due): (i64, String) = (r.try_get(0)?, r.try_get(1)?);
            if appointment::lapsed(ts(&due)?, now) {
                tx.execute(
                    "DELETE FROM slot_queue WHERE campaign_id = $1 AND ticket = $2",
                    &[&campaign, &ticket],
                )?;
            }
        }
        let ticket: i64 = match tx.query_opt(
            "SELECT ticket FROM slot_queue WHERE campaign_id = $1 AND device_id = $2",
            &[&campaign, &device],
        )? {
            Some(r) => r.try_get(0)?,
            None => {
                let t: i64 = tx
                    .query_one(
                        "UPDATE slot_turnover SET next_ticket = next_ticket + 1
                         WHERE campaign_id = $1 RETURNING next_ticket - 1",
                        &[&campaign],
                    )?
                    .try_get(0)?;
                tx.execute(
                    "INSERT INTO slot_queue (campaign_id, device_id, ticket, due_at)
                     VALUES ($1, $2, $3, $4)",
                    &[&campaign, &device, &t, &now_s],
                )?;
                t
            }
        };
        let ahead: Vec<u32> = tx
            .query(
                "SELECT passed_by FROM slot_queue WHERE campaign_id = $1 AND ticket < $2",
                &[&campaign, &ticket],
            )?
            .iter()
            .map(|r| {
                r.try_get::<_, i64>(0)
                    .map(|p| u32::try_from(p).unwrap_or(u32::MAX))
            })
            .collect::<std::result::Result<_, _>>()?;
        let position = ahead.len() as u64;
        let turn = if appointment::admits(position, free, ahead.iter().copied()) {
            tx.execute(
                "UPDATE slot_queue SET passed_by = passed_by + 1
                 WHERE campaign_id = $1 AND ticket < $2",
                &[&campaign, &ticket],
            )?;
            tx.execute(
                "DELETE FROM slot_queue WHERE campaign_id = $1 AND device_id = $2",
                &[&campaign, &device],
            )?;
            tx.execute(
                "INSERT INTO leases (campaign_id, device_id, expires_at, taken_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (campaign_id, device_id)
                 DO UPDATE SET expires_at = excluded.expires_at, taken_at = excluded.taken_at",
                &[&campaign, &device, &expires_s, &now_s],
            )?;
            Turn::Slot
        } else {
            let at = appointment::appointment(
                position,
                free,
                turnover.rate(ask.max),
                now,
                &ask.window,
                ask.jitter,
            );
            if past_close(&ask.window, at) {
                tx.execute(
                    "DELETE FROM slot_queue WHERE campaign_id = $1 AND device_id = $2",
                    &[&campaign, &device],
                )?;
            } else {
                tx.execute(
                    "UPDATE slot_queue SET due_at = $3 WHERE campaign_id = $1 AND device_id = $2",
                    &[&campaign, &device, &db_time(at)],
                )?;
            }
            Turn::Wait { position, at }
        };
        tx.execute(
            "UPDATE slot_turnover SET hold_seconds = $2, seen_at = GREATEST(seen_at, $3)
             WHERE campaign_id = $1",
            &[&campaign, &turnover.hold, &now_s],
        )?;
        tx.commit()?;
        Ok(turn)
    }

    /// Gives a slot back, and counts how long it was held (until the latest check-in of the
    /// campaign, which stands for now) in the campaign's turnover.
    pub(super) fn queue_release(&self, campaign: &str, device: i64) -> Result<()> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        let freed = tx.query_opt(
            "DELETE FROM leases WHERE campaign_id = $1 AND device_id = $2 RETURNING taken_at",
            &[&campaign, &device],
        )?;
        if let Some(taken) = freed
            .map(|r| r.try_get::<_, Option<String>>(0))
            .transpose()?
            .flatten()
        {
            let taken = ts(&taken)?;
            let row = tx.query_opt(
                "SELECT seen_at FROM slot_turnover WHERE campaign_id = $1",
                &[&campaign],
            )?;
            if let Some(r) = row {
                let now = ts(&r.try_get::<_, String>(0)?)?;
                // The moving average of `Turnover::freed`, applied in one statement.
                let held = held_for(taken, now.max(taken))
                    .min(appointment::LONGEST_HOLD)
                    .as_secs_f64();
                tx.execute(
                    "UPDATE slot_turnover SET hold_seconds = hold_seconds + $2 * ($3 - hold_seconds)
                     WHERE campaign_id = $1",
                    &[&campaign, &appointment::TURNOVER_WEIGHT, &held],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub(super) fn queue_place_of(
        &self,
        campaign: &str,
        device: i64,
    ) -> Result<Option<(u64, Timestamp)>> {
        let row = self.conn()?.query_opt(
            "SELECT (SELECT COUNT(*) FROM slot_queue a
                     WHERE a.campaign_id = q.campaign_id AND a.ticket < q.ticket), q.due_at
             FROM slot_queue q WHERE q.campaign_id = $1 AND q.device_id = $2",
            &[&campaign, &device],
        )?;
        row.map(|r| {
            let (ahead, due): (i64, String) = (r.try_get(0)?, r.try_get(1)?);
            Ok((u64::try_from(ahead).unwrap_or(0), ts(&due)?))
        })
        .transpose()
    }
}

fn past_close(window: &Window, at: Timestamp) -> bool {
    window.closes_at.is_some_and(|close| at >= close)
}

fn held_for(taken: Timestamp, until: Timestamp) -> Duration {
    Duration::try_from(until.duration_since(taken)).unwrap_or_default()
}
