//! One campaign's queue in memory, exact: the SQLite server (the only writer of its file) and
//! the simulator hold one per campaign. Its two decisions — who takes a free slot
//! ([`admission`]) and when a refused device comes back ([`come_back`]) — are pure functions the
//! PostgreSQL store calls too, on the same fields kept in its tables.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use jiff::Timestamp;

use super::{HEAD_MAX_POLL, OVERTAKE_BOUND, Turnover, Window, admits, appointment, lapse_cutoff};

/// How many devices told to come back later than [`HEAD_MAX_POLL`] a device asking for a slot
/// may pass at most, beyond the free slots (bounds the work of one check-in).
const SCAN_PAST_ABSENT: usize = 1024;

/// The answer to a device that wants a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Take a free slot now (the caller records it).
    Slot,
    /// Come back at `at`; `position` devices are ahead of it.
    Wait { position: u64, at: Timestamp },
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    device: i64,
    /// The device's appointment; its place lapses the window's grace after it.
    due: Timestamp,
    /// How many later arrivals have taken a slot while one was reserved for this device.
    passed_by: u32,
}

/// A campaign's fair queue for its download slots within one window.
#[derive(Debug, Clone)]
pub struct Queue {
    window: Option<Timestamp>,
    /// Waiting devices by ticket (arrival order within the window).
    waiting: BTreeMap<u64, Entry>,
    ticket_of: HashMap<i64, u64>,
    /// The waiting places by appointment, so lapsed ones are found without a scan.
    by_due: BTreeSet<(Timestamp, u64)>,
    /// How many devices wait with each ticket (0 or 1), for positions in O(log n).
    ranks: Fenwick,
    turnover: Turnover,
    /// The first time a device asked (until the turnover is settled).
    first_ask: Option<Timestamp>,
}

impl Default for Queue {
    fn default() -> Self {
        Self::new()
    }
}

impl Queue {
    /// An empty queue.
    pub fn new() -> Self {
        Self {
            window: None,
            waiting: BTreeMap::new(),
            ticket_of: HashMap::new(),
            by_due: BTreeSet::new(),
            ranks: Fenwick::default(),
            turnover: Turnover::assumed(),
            first_ask: None,
        }
    }

    /// How many devices wait (lapsed places included until they are noticed).
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether no device waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// A slot of the campaign held for `held` was freed (given back, or its lease lapsed).
    pub fn freed(&mut self, held: Duration) {
        self.turnover.freed(held);
    }

    /// The device's place: how many wait ahead of it and its appointment, if it waits.
    pub fn place_of(&self, device: i64) -> Option<(u64, Timestamp)> {
        let ticket = *self.ticket_of.get(&device)?;
        let entry = self.waiting.get(&ticket)?;
        Some((self.ranks.prefix(ticket), entry.due))
    }

    /// A device that holds no slot asks for one at `now` in `window`, while `live` of `max`
    /// slots are held. Answers [`Turn::Slot`] (it left the queue; the caller takes the slot) or
    /// its appointment. `jitter` in [0, 1).
    pub fn ask(
        &mut self,
        device: i64,
        now: Timestamp,
        window: &Window,
        live: u32,
        max: u32,
        jitter: f64,
    ) -> Turn {
        if self.window != Some(window.opened_at) {
            // A new window starts a new queue; the turnover seen so far still holds.
            self.waiting.clear();
            self.ticket_of.clear();
            self.by_due.clear();
            self.ranks = Fenwick::default();
            self.window = Some(window.opened_at);
        }
        let free = max.saturating_sub(live);
        self.drop_lapsed(now, window.grace);
        let ticket = match self.ticket_of.get(&device) {
            Some(&t) => t,
            None => {
                let t = self.ranks.push(1);
                self.ticket_of.insert(device, t);
                self.by_due.insert((now, t));
                self.waiting.insert(
                    t,
                    Entry {
                        device,
                        due: now,
                        passed_by: 0,
                    },
                );
                t
            }
        };
        let position = self.ranks.prefix(ticket);
        let ahead = self.waiting.range(..ticket).map(|(&ticket, e)| Ahead {
            ticket,
            due: e.due,
            passed_by: e.passed_by,
        });
        // Further back than the rule looks, a device cannot take a slot: no scan.
        let within = usize::try_from(position).is_ok_and(|p| p < admission_scan(free));
        if let Some(passed) = within.then(|| admission(ahead, free, now)).flatten() {
            for t in passed {
                if let Some(e) = self.waiting.get_mut(&t) {
                    e.passed_by += 1;
                }
            }
            self.remove(ticket);
            return Turn::Slot;
        }
        let first = *self.first_ask.get_or_insert(now);
        let back = come_back(
            position,
            free,
            &self.turnover,
            max,
            first,
            now,
            window,
            jitter,
        );
        if back.keeps_place {
            if let Some(e) = self.waiting.get_mut(&ticket) {
                self.by_due.remove(&(e.due, ticket));
                e.due = back.at;
                self.by_due.insert((back.at, ticket));
            }
        } else {
            self.remove(ticket);
        }
        Turn::Wait {
            position,
            at: back.at,
        }
    }

    /// Removes the device from the queue (it no longer wants a slot).
    pub fn leave(&mut self, device: i64) {
        if let Some(&t) = self.ticket_of.get(&device) {
            self.remove(t);
        }
    }

    fn remove(&mut self, ticket: u64) {
        if let Some(e) = self.waiting.remove(&ticket) {
            self.ticket_of.remove(&e.device);
            self.by_due.remove(&(e.due, ticket));
            self.ranks.add(ticket, -1);
        }
    }

    /// Drops the lapsed places (their devices did not come back within the grace after their
    /// appointments), so a device that did not come cannot hold a slot; each is found once,
    /// from the earliest appointment.
    fn drop_lapsed(&mut self, now: Timestamp, grace: Duration) {
        let Some(cutoff) = lapse_cutoff(now, grace) else {
            return;
        };
        while let Some(&(due, t)) = self.by_due.first() {
            if due >= cutoff {
                break;
            }
            self.remove(t);
        }
    }
}

/// A device waiting ahead of the one asking, as the admission rule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ahead {
    /// Its place in arrival order within the window.
    pub ticket: u64,
    /// Its appointment.
    pub due: Timestamp,
    /// How many later arrivals have taken a slot while one was reserved for it.
    pub passed_by: u32,
}

/// How many of the devices ahead (from the head, in arrival order) [`admission`] needs to see
/// with `free` slots free: it never looks further.
pub fn admission_scan(free: u32) -> usize {
    if free == 0 {
        0
    } else {
        free as usize + SCAN_PAST_ABSENT + 1
    }
}

/// Whether a device asking for a slot at `now` with `free` slots free takes one, given the
/// devices waiting ahead of it from the head in arrival order (at least the first
/// [`admission_scan`] of them). `Some(tickets it passes)` when it does — each of those has then
/// been passed once more — `None` when it waits.
///
/// The free slots are kept for the devices ahead due back within [`HEAD_MAX_POLL`], and for
/// those passed [`OVERTAKE_BOUND`] times; the others ahead (told a later appointment, or gone
/// away) are passed rather than left holding a slot standing idle until then.
pub fn admission(
    ahead: impl IntoIterator<Item = Ahead>,
    free: u32,
    now: Timestamp,
) -> Option<Vec<u64>> {
    let soon = now.checked_add(HEAD_MAX_POLL).unwrap_or(Timestamp::MAX);
    let (mut expected, mut held) = (0u64, 0u64);
    let mut passed = Vec::new();
    for (i, a) in ahead.into_iter().enumerate() {
        if !admits(expected, held, free) || i >= free as usize + SCAN_PAST_ABSENT {
            return None;
        }
        if a.due <= soon {
            expected += 1;
        } else if a.passed_by >= OVERTAKE_BOUND {
            held += 1;
        } else {
            passed.push(a.ticket);
        }
    }
    admits(expected, held, free).then_some(passed)
}

/// When a device refused a slot comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComeBack {
    /// Its appointment.
    pub at: Timestamp,
    /// Whether it keeps its place in this window's queue (an appointment in the next window
    /// starts afresh there, holding no place nor reserved turn in this one).
    pub keeps_place: bool,
}

/// The appointment of a device `position` places behind the head, refused a slot at `now` with
/// `free` of `max` slots free, from the observed `turnover`; `first_ask` is when the queue's
/// first device asked in this window.
#[allow(clippy::too_many_arguments)]
pub fn come_back(
    position: u64,
    free: u32,
    turnover: &Turnover,
    max: u32,
    first_ask: Timestamp,
    now: Timestamp,
    window: &Window,
    jitter: f64,
) -> ComeBack {
    let mut at = appointment(position, free, turnover.rate(max), now, window, jitter);
    if !turnover.settled(max) {
        // Before the hold is measured, the assumed one may be far too long: no device is
        // sent away for longer than the queue has been asking (at least HEAD_MAX_POLL), so
        // a wrong guess costs a few check-ins that back off, not hours of idle slots.
        let asking = Duration::try_from(now.duration_since(first_ask)).unwrap_or_default();
        if let Ok(latest) = now.checked_add(asking.max(HEAD_MAX_POLL)) {
            at = at.min(latest);
        }
    }
    ComeBack {
        at,
        keeps_place: window.closes_at.is_none_or(|close| at < close),
    }
}

/// A Fenwick tree that grows by one element at a time: counts by ticket, prefix sums in O(log n).
#[derive(Debug, Clone)]
struct Fenwick {
    /// 1-based; `tree[0]` is unused.
    tree: Vec<i64>,
}

impl Default for Fenwick {
    fn default() -> Self {
        Self { tree: vec![0] }
    }
}

impl Fenwick {
    /// Appends a value; answers its (0-based) index.
    fn push(&mut self, value: i64) -> u64 {
        let i = self.tree.len();
        let low = i & i.wrapping_neg();
        let node = self.sum_to(i - 1) - self.sum_to(i - low) + value;
        self.tree.push(node);
        (i - 1) as u64
    }

    fn add(&mut self, index: u64, delta: i64) {
        let mut i = index as usize + 1;
        while i < self.tree.len() {
            self.tree[i] += delta;
            i += i & i.wrapping_neg();
        }
    }

    /// The sum of the values before `index`.
    fn prefix(&self, index: u64) -> u64 {
        u64::try_from(self.sum_to(index as usize)).unwrap_or(0)
    }

    /// The sum of the first `n` values.
    fn sum_to(&self, n: usize) -> i64 {
        let mut i = n.min(self.tree.len() - 1);
        let mut s = 0;
        while i > 0 {
            s += self.tree[i];
            i -= i & i.wrapping_neg();
        }
        s
    }
}

#[cfg(test)]
mod fenwick_tests {
    use super::Fenwick;

    #[test]
    fn prefix_sums_follow_pushes_and_removals() {
        let mut f = Fenwick::default();
        for _ in 0..37 {
            f.push(1);
        }
        f.add(3, -1);
        f.add(20, -1);
        let naive = |i: u64| (0..i.min(37)).filter(|&t| t != 3 && t != 20).count() as u64;
        for i in 0..40 {
            assert_eq!(f.prefix(i), naive(i), "prefix {i}");
        }
        f.push(1);
        assert_eq!(f.prefix(38), 36);
        assert_eq!(f.prefix(39), 36);
    }
}
