//! The queue for download slots that every PostgreSQL replica shares (`slot_queue`,
//! `slot_turnover`, `leases.taken_at`): the same fair queue the SQLite server keeps in memory,
//! with the same rules (`onshi_core::appointment`: [`admission`], [`come_back`], [`lapsed`],
//! [`Turnover`]) applied to the fields kept in the tables, so that a device is first come, first
//! served whichever replica it reaches, and keeps its place when it comes back through another.
//!
//! Every ask starts with one statement that renews a live slot, or reads what a refusal needs:
//! the live slots, the queue's book, the device's ticket and how many wait ahead of it (the
//! count is linear in the position; it only sizes the appointment). While every slot is held by
//! a live lease (most of a campaign night), the device is then refused without any lock: its
//! place is kept (or taken at the back: a ticket comes from one atomic `UPDATE … RETURNING`, so
//! arrival order holds across replicas) and its appointment written. Otherwise it is answered
//! in one transaction under the campaign's advisory lock (the lock that takes slots, so "at most
//! N" holds for all replicas together) of four statements: the lock; the lapsed leases
//! reclaimed (each freed slot's hold counted into the turnover) and the lapsed places dropped
//! (by the index on appointments), with the book re-read; the head of the queue; and every
//! write of the answer. One thread per replica takes the lock at a time; while it does, the
//! others are answered at once as refusals from what they read (a device near the head comes
//! back within seconds), rather than in line for the lock with an instant gone stale — except a
//! device with fewer ahead of it than there are free slots, which waits for the lock: the
//! admission rule admits it.

use std::time::Duration;

use jiff::Timestamp;
use onshi_core::appointment::{
    Ahead, Turn, Turnover, admission, admission_scan, come_back, lapse_cutoff,
};
use tokio_postgres::Row;

use super::pool::{Conn, Tx};
use super::{LOCK_SPACE, PostgresStore};
use crate::rows::ts;
use crate::time::db_time;
use crate::*;

const LOCK: &str = "SELECT pg_advisory_xact_lock($1, hashtext($2))";

/// Renews the device's live slot, or reads what its refusal needs: (renewed, live slots, the
/// book's window, hold, frees, first ask, seen, the device's ticket, how many wait ahead of it).
/// A device not in the queue counts every waiting device ahead of it.
const GLANCE: &str = "WITH renewed AS (
         UPDATE leases SET expires_at = $4
         WHERE campaign_id = $1 AND device_id = $2 AND expires_at > $3
         RETURNING 1
     ), mine AS (
         SELECT ticket FROM slot_queue WHERE campaign_id = $1 AND device_id = $2
     )
     SELECT (SELECT COUNT(*) FROM renewed),
            (SELECT COUNT(*) FROM leases WHERE campaign_id = $1 AND expires_at > $3),
            b.window_opened_at, b.hold_seconds, b.frees, b.first_ask_at, b.seen_at,
            (SELECT ticket FROM mine),
            (SELECT COUNT(*) FROM slot_queue q WHERE q.campaign_id = $1
                AND q.ticket < COALESCE((SELECT ticket FROM mine), 9223372036854775807))
     FROM (SELECT 1) AS one LEFT JOIN slot_turnover b ON b.campaign_id = $1";

/// Under the lock: reclaims the lapsed leases (answering their taken and expiry instants),
/// drops the lapsed places (appointments before $4), and re-reads the live slots, the book and
/// the device's ticket (as it was before the drop: the lapsed tickets are answered too).
const RECLAIM: &str = "WITH gone AS (
         DELETE FROM leases WHERE campaign_id = $1 AND expires_at <= $2
         RETURNING taken_at, expires_at
     ), lapsed AS (
         DELETE FROM slot_queue WHERE campaign_id = $1 AND due_at < $4
         RETURNING ticket
     )
     SELECT (SELECT COUNT(*) FROM leases WHERE campaign_id = $1 AND expires_at > $2),
            b.window_opened_at, b.hold_seconds, b.frees, b.first_ask_at, b.seen_at,
            (SELECT ticket FROM slot_queue WHERE campaign_id = $1 AND device_id = $3),
            (SELECT array_agg(taken_at) FROM gone), (SELECT array_agg(expires_at) FROM gone),
            (SELECT array_agg(ticket) FROM lapsed)
     FROM (SELECT 1) AS one LEFT JOIN slot_turnover b ON b.campaign_id = $1";

/// The device joins the back of the queue with the next ticket (one statement: replicas
/// joining at once get distinct tickets in order); answers its ticket.
const JOIN: &str = "WITH t AS (
         UPDATE slot_turnover SET next_ticket = next_ticket + 1
         WHERE campaign_id = $1 RETURNING next_ticket - 1 AS ticket
     )
     INSERT INTO slot_queue (campaign_id, device_id, ticket, due_at, passed_by)
     SELECT $1, $2, t.ticket, $3, 0 FROM t
     ON CONFLICT (campaign_id, device_id) DO UPDATE SET due_at = slot_queue.due_at
     RETURNING ticket";

const HEAD: &str = "SELECT ticket, due_at, passed_by FROM slot_queue WHERE campaign_id = $1
     ORDER BY ticket LIMIT $2";

const CLEAR: &str = "DELETE FROM slot_queue WHERE campaign_id = $1";

/// Every write of an answer under the lock, in one statement: the places passed ($2), the
/// places that end ($3: lapsed, and the device's own when it takes a slot or waits for the next
/// window), the device's appointment ($4 at ticket $5), its slot ($9: device $6 until $7, taken
/// at $8) and the book ($10..$15).
const ANSWER: &str = "WITH passed AS (
         UPDATE slot_queue SET passed_by = passed_by + 1
         WHERE campaign_id = $1 AND ticket = ANY($2)
     ), ended AS (
         DELETE FROM slot_queue WHERE campaign_id = $1 AND ticket = ANY($3)
     ), due AS (
         UPDATE slot_queue SET due_at = $4 WHERE campaign_id = $1 AND ticket = $5
     ), slot AS (
         INSERT INTO leases (campaign_id, device_id, expires_at, taken_at)
         SELECT $1, $6, $7, $8 WHERE $9
         ON CONFLICT (campaign_id, device_id)
         DO UPDATE SET expires_at = excluded.expires_at, taken_at = excluded.taken_at
     )
     INSERT INTO slot_turnover
         (campaign_id, window_opened_at, next_ticket, hold_seconds, frees, first_ask_at, seen_at)
     VALUES ($1, $10, 0, $11, $12, $13, $14)
     ON CONFLICT (campaign_id) DO UPDATE SET
         window_opened_at = excluded.window_opened_at,
         hold_seconds = excluded.hold_seconds, frees = excluded.frees,
         first_ask_at = excluded.first_ask_at, seen_at = excluded.seen_at";

const SAVE_BOOK: &str = "INSERT INTO slot_turnover
         (campaign_id, window_opened_at, next_ticket, hold_seconds, frees, first_ask_at, seen_at)
     VALUES ($1, $2, 0, $3, $4, $5, $6)
     ON CONFLICT (campaign_id) DO UPDATE SET
         window_opened_at = excluded.window_opened_at,
         hold_seconds = excluded.hold_seconds, frees = excluded.frees,
         first_ask_at = excluded.first_ask_at, seen_at = excluded.seen_at";

const DUE: &str = "UPDATE slot_queue SET due_at = $3 WHERE campaign_id = $1 AND ticket = $2";
const LEAVE: &str = "DELETE FROM slot_queue WHERE campaign_id = $1 AND ticket = $2";
const BOOK: &str = "SELECT window_opened_at, hold_seconds, frees, first_ask_at, seen_at
     FROM slot_turnover WHERE campaign_id = $1";
const GIVE_BACK: &str = "DELETE FROM leases WHERE campaign_id = $1 AND device_id = $2
     RETURNING taken_at, expires_at";
const PLACE: &str = "SELECT q.due_at,
         (SELECT COUNT(*) FROM slot_queue a WHERE a.campaign_id = $1 AND a.ticket < q.ticket)
     FROM slot_queue q WHERE q.campaign_id = $1 AND q.device_id = $2";

/// One campaign's queue-wide fields (`slot_turnover`).
struct Book {
    /// The window the waiting places belong to (a new window starts a new queue).
    window: Option<Timestamp>,
    turnover: Turnover,
    /// When the window's first refused device asked (bounds appointments until the turnover
    /// is settled).
    first_ask: Option<Timestamp>,
    /// The latest instant a call brought: a slot given back is counted as freed then.
    seen: Option<Timestamp>,
}

impl Book {
    /// The book from a row's five columns from `at` (window, hold, frees, first ask, seen),
    /// all `NULL` when the campaign has none yet.
    fn from_row(r: &Row, at: usize) -> Result<Self> {
        let Some(window) = r.try_get::<_, Option<String>>(at)? else {
            return Ok(Self {
                window: None,
                turnover: Turnover::assumed(),
                first_ask: None,
                seen: None,
            });
        };
        let frees: i64 = r.try_get(at + 2)?;
        Ok(Self {
            window: Some(ts(&window)?),
            turnover: Turnover {
                hold: r.try_get(at + 1)?,
                frees: u32::try_from(frees).unwrap_or(u32::MAX),
            },
            first_ask: opt_ts(r, at + 3)?,
            seen: opt_ts(r, at + 4)?,
        })
    }

    fn saw(&mut self, now: Timestamp) {
        self.seen = Some(self.seen.map_or(now, |s| s.max(now)));
    }

    /// The book's columns as written: (window, hold, frees, first ask, seen). A book saved
    /// before any window (a slot given back first) belongs to none yet: the first ask in a
    /// window replaces the epoch and starts its queue.
    fn columns(&self) -> (String, f64, i64, Option<String>, String) {
        (
            db_time(self.window.unwrap_or(Timestamp::UNIX_EPOCH)),
            self.turnover.hold,
            i64::from(self.turnover.frees),
            self.first_ask.map(db_time),
            db_time(self.seen.unwrap_or(Timestamp::UNIX_EPOCH)),
        )
    }

    fn save(&self, tx: &mut Tx<'_>, campaign: &str) -> Result<()> {
        let (window, hold, frees, first, seen) = self.columns();
        tx.execute(
            &tx.prep(SAVE_BOOK)?,
            &[&campaign, &window, &hold, &frees, &first, &seen],
        )?;
        Ok(())
    }
}

fn opt_ts(r: &Row, i: usize) -> Result<Option<Timestamp>> {
    r.try_get::<_, Option<String>>(i)?
        .as_deref()
        .map(ts)
        .transpose()
}

fn count(r: &Row, i: usize) -> Result<u64> {
    Ok(u64::try_from(r.try_get::<_, i64>(i)?).unwrap_or(0))
}

fn held_for(taken: Timestamp, until: Timestamp) -> Duration {
    Duration::try_from(until.duration_since(taken)).unwrap_or_default()
}

impl PostgresStore {
    /// [`Store::take_turn`] on the shared queue.
    pub(super) fn take_shared_turn(&self, ask: &TurnAsk<'_>) -> Result<Turn> {
        let campaign = ask.campaign;
        let now_s = db_time(ask.now);
        let mut conn = self.conn()?;
        let glance = conn.query_one(
            GLANCE,
            &[&campaign, &ask.device, &now_s, &db_time(ask.expires)],
        )?;
        if count(&glance, 0)? == 1 {
            // A live slot renewed: no count and no place changed.
            return Ok(Turn::Slot);
        }
        let live = count(&glance, 1)?;
        let book = Book::from_row(&glance, 2)?;
        let ticket: Option<i64> = glance.try_get(7)?;
        let position = count(&glance, 8)?;
        // Every slot held by a live lease, and the queue already this window's: no device can
        // take a slot now, so the refusal needs no lock (a slot freed since the count only
        // brings the device back a little later; its place is kept).
        if live >= u64::from(ask.max)
            && book.window == Some(ask.window.opened_at)
            && let Some(first) = book.first_ask
        {
            return refuse_unlocked(&mut conn, ask, ticket, position, 0, &book.turnover, first);
        }
        // One thread of this replica at a time takes the campaign's lock. While it does, the
        // others are answered at once as refusals, from what they read (a device near the head
        // is told to come back within seconds): waiting in line for the lock would answer them
        // late, with an instant gone stale, and a night of devices arriving late lapses and
        // stalls the queue. Two kinds of device wait for the lock instead: one of a queue not
        // yet this window's (to start it), and one with fewer devices ahead of it than there
        // are free slots, which the admission rule admits whoever is ahead — refused for the
        // lock alone, the head would be sent away again and again while the lock answered
        // the devices behind it, and the slots stood idle (2,000 agents on two replicas: one
        // slot of 50 in use, 30 terminals an hour). At most as many as the free slots wait.
        let this_window = book.window == Some(ask.window.opened_at);
        let free = ask
            .max
            .saturating_sub(u32::try_from(live).unwrap_or(u32::MAX));
        let at_the_head = position < u64::from(free);
        let guard = match self.turns.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        if guard.is_none() && this_window && !at_the_head {
            let first = book.first_ask.unwrap_or(ask.now);
            return refuse_unlocked(
                &mut conn,
                ask,
                ticket,
                position,
                free,
                &book.turnover,
                first,
            );
        }
        drop(conn);
        let _turn = match guard {
            Some(g) => g,
            None => self.turns.lock().unwrap_or_else(|e| e.into_inner()),
        };
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        let turn = answer_locked(&mut tx, ask, ticket, position)?;
        tx.commit()?;
        Ok(turn)
    }

    /// [`Store::release_lease`]: the slot given back counts its hold into the turnover.
    pub(super) fn give_back_shared(&self, campaign: &str, device: i64) -> Result<()> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        tx.execute(&tx.prep(LOCK)?, &[&LOCK_SPACE, &campaign])?;
        let rows = tx.query(&tx.prep(GIVE_BACK)?, &[&campaign, &device])?;
        if let Some(r) = rows.first()
            && let Some(b) = tx.query_opt(&tx.prep(BOOK)?, &[&campaign])?
        {
            let mut book = Book::from_row(&b, 0)?;
            // Counted once the queue has seen an instant (a check-in of this campaign): a slot
            // is given back then, within seconds of the server's clock.
            if let (Some(seen), Some(taken)) = (book.seen, opt_ts(r, 0)?) {
                let expires = ts(&r.try_get::<_, String>(1)?)?;
                book.turnover.freed(held_for(taken, seen.min(expires)));
                book.save(&mut tx, campaign)?;
            }
        }
        tx.commit()
    }

    /// [`Store::queue_place`] in the shared queue.
    pub(super) fn shared_place(
        &self,
        campaign: &str,
        device: i64,
    ) -> Result<Option<(u64, Timestamp)>> {
        let Some(r) = self.conn()?.query_opt(PLACE, &[&campaign, &device])? else {
            return Ok(None);
        };
        Ok(Some((count(&r, 1)?, ts(&r.try_get::<_, String>(0)?)?)))
    }
}

/// The answer to a device refused without the campaign's lock (every slot held, or another
/// thread of this replica holding the lock), the queue being this window's: its place (joining at the back if it has none) and its appointment, without the
/// campaign's lock; the queue's book (turnover, first ask) is only read.
fn refuse_unlocked(
    conn: &mut Conn,
    ask: &TurnAsk<'_>,
    ticket: Option<i64>,
    position: u64,
    free: u32,
    turnover: &Turnover,
    first_ask: Timestamp,
) -> Result<Turn> {
    let campaign = ask.campaign;
    let back = come_back(
        position,
        free,
        turnover,
        ask.max,
        first_ask,
        ask.now,
        &ask.window,
        ask.jitter,
    );
    match (ticket, back.keeps_place) {
        (Some(t), true) => {
            conn.execute(DUE, &[&campaign, &t, &db_time(back.at)])?;
        }
        (Some(t), false) => {
            conn.execute(LEAVE, &[&campaign, &t])?;
        }
        (None, true) => {
            conn.query_one(JOIN, &[&campaign, &ask.device, &db_time(back.at)])?;
        }
        // Not tonight, and holding no place: nothing to keep.
        (None, false) => {}
    }
    Ok(Turn::Wait {
        position,
        at: back.at,
    })
}

/// The answer under the campaign's lock (see the module's comment). `counted` is the ticket
/// and position read before the lock.
fn answer_locked(
    tx: &mut Tx<'_>,
    ask: &TurnAsk<'_>,
    counted_ticket: Option<i64>,
    counted: u64,
) -> Result<Turn> {
    let campaign = ask.campaign;
    let now_s = db_time(ask.now);
    tx.execute(&tx.prep(LOCK)?, &[&LOCK_SPACE, &campaign])?;
    // Before the window's grace, nothing has lapsed: the cutoff is then the epoch.
    let cutoff = db_time(lapse_cutoff(ask.now, ask.window.grace).unwrap_or(Timestamp::UNIX_EPOCH));
    let r = tx.query_one(
        &tx.prep(RECLAIM)?,
        &[&campaign, &now_s, &ask.device, &cutoff],
    )?;
    let live = count(&r, 0)?;
    let mut book = Book::from_row(&r, 1)?;
    let mut ticket: Option<i64> = r.try_get(6)?;
    let taken: Option<Vec<Option<String>>> = r.try_get(7)?;
    let expired: Option<Vec<String>> = r.try_get(8)?;
    for (taken, expires) in taken
        .unwrap_or_default()
        .iter()
        .zip(expired.unwrap_or_default())
    {
        if let Some(taken) = taken {
            book.turnover.freed(held_for(ts(taken)?, ts(&expires)?));
        }
    }
    let lapsed: Vec<i64> = r.try_get::<_, Option<Vec<i64>>>(9)?.unwrap_or_default();
    if ticket.is_some_and(|t| lapsed.contains(&t)) {
        // Its own place lapsed: it queues again at the back.
        ticket = None;
    }
    let lapsed_ahead =
        counted_ticket.map_or(lapsed.len(), |c| lapsed.iter().filter(|&&t| t < c).count());
    book.saw(ask.now);
    if book.window != Some(ask.window.opened_at) {
        // A new window starts a new queue; the turnover seen so far still holds.
        tx.execute(&tx.prep(CLEAR)?, &[&campaign])?;
        book.window = Some(ask.window.opened_at);
        book.save(tx, campaign)?;
        ticket = None;
    }
    let ticket = match ticket {
        Some(t) => t,
        None => tx
            .query_one(&tx.prep(JOIN)?, &[&campaign, &ask.device, &now_s])?
            .try_get::<_, i64>(0)?,
    };
    let free = ask
        .max
        .saturating_sub(u32::try_from(live).unwrap_or(u32::MAX));

    // The head of the queue: the devices ahead that the admission rule looks at.
    let limit = admission_scan(free).max(1);
    let head = tx.query(
        &tx.prep(HEAD)?,
        &[&campaign, &i64::try_from(limit).unwrap_or(i64::MAX)],
    )?;
    let mut ended = Vec::new();
    let mut ahead = Vec::new();
    let mut mine_seen = false;
    for r in &head {
        let (t, due) = (r.try_get::<_, i64>(0)?, ts(&r.try_get::<_, String>(1)?)?);
        if t == ticket {
            mine_seen = true;
            break;
        }
        ahead.push(Ahead {
            ticket: u64::try_from(t).unwrap_or(0),
            due,
            passed_by: u32::try_from(r.try_get::<_, i64>(2)?).unwrap_or(u32::MAX),
        });
    }
    // Its place: exact when it is among the head read; otherwise the count read before the
    // lock (a device joining now is behind everyone counted) less the lapsed places dropped
    // ahead of it.
    let position = if mine_seen {
        ahead.len() as u64
    } else {
        counted.saturating_sub(lapsed_ahead as u64)
    };
    // A device beyond the head fetched has more ahead of it than the rule looks at.
    let admitted = if mine_seen || head.len() < limit {
        if free == 0 {
            None
        } else {
            admission(ahead, free, ask.now)
        }
    } else {
        None
    };

    let (turn, passed, due) = match admitted {
        Some(passed) => {
            ended.push(ticket);
            (Turn::Slot, passed, None)
        }
        None => {
            let first = *book.first_ask.get_or_insert(ask.now);
            let back = come_back(
                position,
                free,
                &book.turnover,
                ask.max,
                first,
                ask.now,
                &ask.window,
                ask.jitter,
            );
            if !back.keeps_place {
                ended.push(ticket);
            }
            let due = back.keeps_place.then_some(back.at);
            (
                Turn::Wait {
                    position,
                    at: back.at,
                },
                Vec::new(),
                due,
            )
        }
    };
    let passed: Vec<i64> = passed
        .into_iter()
        .map(|t| i64::try_from(t).unwrap_or(i64::MAX))
        .collect();
    let slot = turn == Turn::Slot;
    let (due_at, due_ticket) = match due {
        Some(at) => (db_time(at), ticket),
        None => (now_s.clone(), -1),
    };
    let (window, hold, frees, first, seen) = book.columns();
    tx.execute(
        &tx.prep(ANSWER)?,
        &[
            &campaign,
            &passed,
            &ended,
            &due_at,
            &due_ticket,
            &ask.device,
            &db_time(ask.expires),
            &now_s,
            &slot,
            &window,
            &hold,
            &frees,
            &first,
            &seen,
        ],
    )?;
    Ok(turn)
}
