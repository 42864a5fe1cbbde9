//! The event queue: a calendar of one-minute buckets, each sorted in a small binary heap when
//! its minute comes.
//!
//! One binary heap over the whole run held ~1 million pending events (restarts planned days
//! ahead, polls hours ahead) and spent two thirds of the run in cache misses. Buckets keep the
//! heap down to one minute's events. The order is the same as one heap's: by time, then by
//! insertion number, so a run stays deterministic.

use std::collections::BinaryHeap;

use super::Event;
use crate::calendar::SimTime;

/// Seconds per bucket.
const BUCKET: SimTime = 60;

/// Pending events, earliest first.
pub(super) struct Queue {
    /// Events of later minutes, unsorted, one bucket per minute of the run.
    buckets: Vec<Vec<Event>>,
    /// The minute being processed, sorted.
    current: BinaryHeap<Event>,
    /// The index of the bucket in `current`.
    minute: usize,
    len: usize,
}

impl Queue {
    /// A queue for events before `horizon`.
    pub(super) fn new(horizon: SimTime) -> Self {
        let buckets = horizon.div_ceil(BUCKET) as usize;
        Self {
            buckets: (0..buckets).map(|_| Vec::new()).collect(),
            current: BinaryHeap::new(),
            minute: 0,
            len: 0,
        }
    }

    /// Adds an event. Events are never in the past of the one last popped.
    pub(super) fn push(&mut self, event: Event) {
        let b = (event.at() / BUCKET) as usize;
        self.len += 1;
        if b <= self.minute {
            self.current.push(event);
        } else if let Some(bucket) = self.buckets.get_mut(b) {
            bucket.push(event);
        } else {
            self.len -= 1; // past the horizon: never happens
        }
    }

    /// The earliest event.
    pub(super) fn pop(&mut self) -> Option<Event> {
        while self.current.is_empty() {
            if self.len == 0 {
                return None;
            }
            self.minute += 1;
            let next = std::mem::take(self.buckets.get_mut(self.minute)?);
            self.current = BinaryHeap::from(next);
        }
        self.len -= 1;
        self.current.pop()
    }
}

#[cfg(test)]
mod tests {
    use super::super::Kind;
    use super::*;

    fn event(at: SimTime, seq: u32) -> Event {
        Event {
            key: (u64::from(at) << 32) | u64::from(seq),
            target: seq,
            epoch: 0,
            kind: Kind::Poll,
        }
    }

    #[test]
    fn pops_by_time_then_insertion_across_buckets() {
        let mut q = Queue::new(3600);
        for (i, at) in [130, 5, 59, 60, 5, 3599, 0].into_iter().enumerate() {
            q.push(event(at, i as u32));
        }
        let mut order = Vec::new();
        while let Some(e) = q.pop() {
            order.push((e.at(), e.target));
            if e.target == 2 {
                q.push(event(59, 100)); // same second, later insertion: still before 60
                q.push(event(61, 101));
            }
            if e.target == 100 {
                assert_eq!(q.len, 4);
            }
        }
        assert_eq!(
            order,
            [
                (0, 6),
                (5, 1),
                (5, 4),
                (59, 2),
                (59, 100),
                (60, 3),
                (61, 101),
                (130, 0),
                (3599, 5)
            ]
        );
    }
}
