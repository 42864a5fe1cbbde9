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
        let (campaign, device, now) = (ask.campaign, ask.device, ask.now);
        let (now_s, expires_s) = (db_time(now), db_time(ask.expires));
        let mut conn = self.conn()?;
        let mut tx = conn.client.transaction()?;
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
        let opened_s = db_time(ask.window.opened_at);
        let row = tx.query_opt(
            "SELECT window_opened_at, next_ticket, hold_seconds FROM slot_turnover
             WHERE campaign_id = $1",
            &[&campaign],
        )?;
        let (mut next_ticket, mut turnover) = match row {
            Some(r) if r.try_get::<_, String>(0)? == opened_s => (
                r.try_get::<_, i64>(1)?,
                Turnover {
                    hold: r.try_get(2)?,
                },
            ),
            Some(r) => {
                tx.execute(
                    "DELETE FROM slot_queue WHERE campaign_id = $1",
                    &[&campaign],
                )?;
                (
                    0,
                    Turnover {
                        hold: r.try_get(2)?,
                    },
                )
            }
            None => (0, Turnover::assumed()),
        };
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
                let t = next_ticket;
                next_ticket += 1;
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
            "INSERT INTO slot_turnover
                 (campaign_id, window_opened_at, next_ticket, hold_seconds, seen_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (campaign_id) DO UPDATE SET window_opened_at = excluded.window_opened_at,
                 next_ticket = excluded.next_ticket, hold_seconds = excluded.hold_seconds,
                 seen_at = GREATEST(slot_turnover.seen_at, excluded.seen_at)",
            &[&campaign, &opened_s, &next_ticket, &turnover.hold, &now_s],
        )?;
        tx.commit()?;
        Ok(turn)
    }

    /// Gives a slot back, and counts how long it was held (until the latest check-in of the
    /// campaign, which stands for now) in the campaign's turnover.
    pub(super) fn queue_release(&self, campaign: &str, device: i64) -> Result<()> {
        let mut conn = self.conn()?;
        let mut tx = conn.client.transaction()?;
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
                "SELECT hold_seconds, seen_at FROM slot_turnover WHERE campaign_id = $1 FOR UPDATE",
                &[&campaign],
            )?;
            if let Some(r) = row {
                let mut turnover = Turnover {
                    hold: r.try_get(0)?,
                };
                let now = ts(&r.try_get::<_, String>(1)?)?;
                turnover.freed(held_for(taken, now.max(taken)));
                tx.execute(
                    "UPDATE slot_turnover SET hold_seconds = $2 WHERE campaign_id = $1",
                    &[&campaign, &turnover.hold],
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
