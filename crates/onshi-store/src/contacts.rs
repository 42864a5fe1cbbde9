//! "Last contact" times, buffered in memory per server process and written in chunks. A device
//! checks in every few minutes; last contact is kept to the minute, so a check-in that changes
//! nothing within [`RESOLUTION`] of the last one handed to the buffer costs no write at all.
//!
//! Both stores use this buffer. With several replicas each keeps its own: a device whose
//! check-ins alternate between replicas is written at most once a minute by each, and the
//! newest contact wins in the database (a write older than the stored contact changes nothing,
//! so a replica flushing late never puts back versions another replica has replaced).

use std::collections::HashMap;
use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};
use onshi_core::version::Version;

/// "Last contact" is kept to this resolution.
pub(crate) const RESOLUTION: SignedDuration = SignedDuration::from_secs(60);

/// One buffered contact: the newest instant and the versions reported since the last write.
#[derive(Debug, Clone)]
pub(crate) struct Contact {
    pub at: Timestamp,
    pub installed: Option<String>,
    pub running: Option<String>,
}

/// Contacts waiting to be written, merged per device.
#[derive(Default)]
pub(crate) struct ContactBuffer {
    pending: Mutex<HashMap<i64, Contact>>,
    /// The last contact handed to the buffer per device, to skip writes that change nothing.
    seen: Mutex<HashMap<i64, Contact>>,
    /// Held by a drain from taking contacts until they are written: a flush returns only once
    /// every contact buffered before it is in the database, including those another drain
    /// (the background flusher) had already taken.
    writing: Mutex<()>,
}

impl ContactBuffer {
    /// Buffers a check-in unless it changes nothing worth writing.
    pub fn record(
        &self,
        id: i64,
        installed: Option<&Version>,
        running: Option<&Version>,
        at: Timestamp,
    ) {
        let installed = installed.map(ToString::to_string);
        let running = running.map(ToString::to_string);
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            let last = seen.entry(id).or_insert(Contact {
                at: Timestamp::MIN,
                installed: None,
                running: None,
            });
            let same_versions = installed
                .as_ref()
                .is_none_or(|v| last.installed.as_ref() == Some(v))
                && running
                    .as_ref()
                    .is_none_or(|v| last.running.as_ref() == Some(v));
            let recent = at.duration_since(last.at) < RESOLUTION;
            if same_versions && recent {
                return;
            }
            last.at = at;
            if installed.is_some() {
                last.installed.clone_from(&installed);
            }
            if running.is_some() {
                last.running.clone_from(&running);
            }
        }
        // Merge into what is buffered: a later check-in without versions must not drop the
        // versions an earlier one reported.
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let c = pending.entry(id).or_insert(Contact {
            at,
            installed: None,
            running: None,
        });
        c.at = c.at.max(at);
        if installed.is_some() {
            c.installed = installed;
        }
        if running.is_some() {
            c.running = running;
        }
    }

    /// Takes at most `max` buffered contacts; returns them and how many stay buffered.
    fn take(&self, max: usize) -> (Vec<(i64, Contact)>, usize) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let ids: Vec<i64> = pending.keys().take(max).copied().collect();
        let rows = ids
            .into_iter()
            .filter_map(|id| pending.remove(&id).map(|c| (id, c)))
            .collect();
        (rows, pending.len())
    }

    /// Puts contacts back after a failed write; newer ones buffered meanwhile win.
    pub fn put_back(&self, rows: impl IntoIterator<Item = (i64, Contact)>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for (id, c) in rows {
            pending.entry(id).or_insert(c);
        }
    }

    /// Writes everything buffered with `write`, at most `max` contacts per call to `write`
    /// and at most `max` in all; returns how many stay buffered. A failed chunk is put back.
    pub fn drain<E>(
        &self,
        max: usize,
        chunk: usize,
        mut write: impl FnMut(&[(i64, Contact)]) -> Result<(), E>,
    ) -> Result<usize, E> {
        let _writing = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let (mut rows, left) = self.take(max);
        while !rows.is_empty() {
            let part: Vec<(i64, Contact)> = rows.drain(..rows.len().min(chunk)).collect();
            if let Err(e) = write(&part) {
                self.put_back(part.into_iter().chain(rows));
                return Err(e);
            }
        }
        Ok(left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn a_flush_returns_only_after_the_contacts_another_drain_took_are_written() {
        let buffer = ContactBuffer::default();
        buffer.record(1, None, None, Timestamp::UNIX_EPOCH);
        let (started, has_started) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let (flushed, has_flushed) = mpsc::channel();
        let written = Mutex::new(Vec::new());
        let (buffer, written) = (&buffer, &written);
        std::thread::scope(|s| {
            // The background flusher: takes device 1 and is slow to write it.
            s.spawn(move || {
                buffer
                    .drain(10, 10, |rows| -> Result<(), ()> {
                        started.send(()).expect("test alive");
                        released.recv().expect("released");
                        written
                            .lock()
                            .expect("log")
                            .extend(rows.iter().map(|r| r.0));
                        Ok(())
                    })
                    .expect("written");
            });
            has_started.recv().expect("the flusher took the contact");
            // A reader flushes first (as `devices_of` does): nothing is left to take, but it
            // must not return before device 1 is written.
            s.spawn(move || {
                buffer.drain(10, 10, |_| Ok::<(), ()>(())).expect("flushed");
                flushed
                    .send(written.lock().expect("log").clone())
                    .expect("test alive");
            });
            let early = has_flushed.recv_timeout(Duration::from_millis(200));
            release.send(()).expect("flusher alive");
            assert!(
                early.is_err(),
                "the flush returned while the contact was still being written: {early:?}"
            );
            assert_eq!(has_flushed.recv().expect("flushed"), vec![1]);
        });
    }
}
