//! The download slots of every campaign in memory, exact: the SQLite store is the only writer of
//! its file, so the rows of `leases` are mirrored here by every write that takes, renews or
//! frees a slot, and a lapsed lease is noticed here at its expiry. A device refused a slot then
//! costs no scan of `leases` and no write transaction, and each campaign's queue
//! (`onshi_core::appointment::Queue`) lives beside its slots.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use jiff::Timestamp;
use onshi_core::appointment::Queue;

/// One campaign's slots and queue.
#[derive(Default)]
pub(super) struct CampaignSlots {
    /// Device → (taken at, expires at), for every lease row.
    held: HashMap<i64, (Timestamp, Timestamp)>,
    by_expiry: BTreeSet<(Timestamp, i64)>,
    /// The latest instant a call brought: `release_lease` carries none, so a slot given back is
    /// counted as freed then (check-ins keep it within seconds of the server's clock).
    seen: Option<Timestamp>,
    pub(super) queue: Queue,
}

impl CampaignSlots {
    /// Slots as loaded from the `leases` rows (device, expires at); when they were taken is
    /// not stored, so `now` stands for it.
    pub(super) fn loaded(rows: impl IntoIterator<Item = (i64, Timestamp)>, now: Timestamp) -> Self {
        let mut s = Self::default();
        for (device, expires) in rows {
            s.put(device, now, expires);
        }
        s
    }

    /// Forgets leases lapsed at `now`, each a freed slot for the queue's turnover.
    pub(super) fn reap(&mut self, now: Timestamp) {
        self.seen = Some(self.seen.map_or(now, |s| s.max(now)));
        while let Some(&(expires, device)) = self.by_expiry.first() {
            if expires > now {
                break;
            }
            self.by_expiry.pop_first();
            if let Some((taken, _)) = self.held.remove(&device) {
                self.queue.freed(held_for(taken, expires));
            }
        }
    }

    /// How many slots are held (after [`Self::reap`]).
    pub(super) fn live(&self) -> u32 {
        u32::try_from(self.held.len()).unwrap_or(u32::MAX)
    }

    /// Whether `device` holds a slot live at `now`.
    pub(super) fn holds(&self, device: i64, now: Timestamp) -> bool {
        self.held.get(&device).is_some_and(|&(_, e)| e > now)
    }

    /// A slot taken (or renewed: the instant it was taken stays) until `expires`.
    pub(super) fn put(&mut self, device: i64, now: Timestamp, expires: Timestamp) {
        let taken = match self.held.get(&device) {
            Some(&(taken, old)) => {
                self.by_expiry.remove(&(old, device));
                taken
            }
            None => now,
        };
        self.held.insert(device, (taken, expires));
        self.by_expiry.insert((expires, device));
    }

    /// The device gave its slot back.
    pub(super) fn free(&mut self, device: i64) {
        if let Some((taken, expires)) = self.held.remove(&device) {
            self.by_expiry.remove(&(expires, device));
            let now = self.seen.unwrap_or(taken).min(expires);
            self.queue.freed(held_for(taken, now));
        }
    }
}

fn held_for(taken: Timestamp, until: Timestamp) -> Duration {
    Duration::try_from(until.duration_since(taken)).unwrap_or_default()
}
