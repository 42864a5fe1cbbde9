//! What one replica keeps in memory of a database that several replicas write: device
//! identities by token hash and each device's open deployments, so that a check-in needs no
//! query. Kept true by LISTEN/NOTIFY: every write that changes a device's identity or a
//! deployment sends a notice on the schema's channel in the same transaction (delivered at its
//! commit), and each replica's listener connection drops what the notice names. While the
//! listener is not connected the cache is empty and unused (every read asks the database), and
//! it is emptied again once the listener is back, since notices sent meanwhile were lost.
//!
//! A read that missed fills the cache only if nothing it could have read was dropped since it
//! began (`Ticket`): a notice that arrives while a query runs is not undone by the query's older
//! answer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_postgres::{AsyncMessage, Config};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::pool::describe;
use crate::{Deployment, Device};

/// A notice: the device's identity (token, site, kind, vendor, parent) changed.
pub(crate) fn device_changed(id: i64) -> String {
    format!("d:{id}")
}

/// A notice: the device's deployments changed.
pub(crate) fn deployments_changed(id: i64) -> String {
    format!("p:{id}")
}

/// A notice: deployments of many devices, or the campaigns they belong to, changed.
pub(crate) const ALL_DEPLOYMENTS_CHANGED: &str = "p*";

/// The instant a read began, in the cache's count of drops.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket(u64);

enum Slot<T> {
    Held(T),
    /// Dropped at this count: a read that began earlier must not fill it.
    Dropped(u64),
}

impl<T> Slot<T> {
    fn dropped_after(&self, ticket: Ticket) -> bool {
        matches!(self, Slot::Dropped(at) if *at > ticket.0)
    }
}

#[derive(Default)]
struct Inner {
    /// Drops so far.
    count: u64,
    /// The count at the last time everything was dropped.
    all_at: u64,
    /// Deployments (not identities) were all dropped at this count.
    all_open_at: u64,
    by_hash: HashMap<String, Device>,
    hash_of: HashMap<i64, Slot<String>>,
    open: HashMap<i64, Slot<Vec<Deployment>>>,
}

/// One replica's cache (see the module's doc).
#[derive(Default)]
pub(crate) struct Cache {
    inner: RwLock<Inner>,
    /// The listener is connected and listening: the cache may be used.
    live: AtomicBool,
    /// Keeps the listener from connecting again (tests of a lost listener).
    held: AtomicBool,
}

impl Cache {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the listener is connected, so the cache answers.
    pub(crate) fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Take before a read that may fill the cache.
    pub(crate) fn ticket(&self) -> Ticket {
        Ticket(self.read().count)
    }

    pub(crate) fn device(&self, hash: &str) -> Option<Device> {
        if !self.is_live() {
            return None;
        }
        self.read().by_hash.get(hash).cloned()
    }

    pub(crate) fn open(&self, device: i64) -> Option<Vec<Deployment>> {
        if !self.is_live() {
            return None;
        }
        match self.read().open.get(&device) {
            Some(Slot::Held(list)) => Some(list.clone()),
            _ => None,
        }
    }

    pub(crate) fn remember_device(&self, hash: &str, device: &Device, ticket: Ticket) {
        let mut c = self.write();
        if !self.is_live()
            || c.all_at > ticket.0
            || c.hash_of
                .get(&device.id)
                .is_some_and(|s| s.dropped_after(ticket))
        {
            return;
        }
        if let Some(Slot::Held(old)) = c.hash_of.insert(device.id, Slot::Held(hash.to_owned()))
            && old != hash
        {
            c.by_hash.remove(&old);
        }
        c.by_hash.insert(hash.to_owned(), device.clone());
    }

    pub(crate) fn remember_open(&self, device: i64, open: &[Deployment], ticket: Ticket) {
        let mut c = self.write();
        if !self.is_live()
            || c.all_at.max(c.all_open_at) > ticket.0
            || c.open.get(&device).is_some_and(|s| s.dropped_after(ticket))
        {
            return;
        }
        c.open.insert(device, Slot::Held(open.to_vec()));
    }

    /// Drops what a notice (see [`device_changed`] and the others) names.
    pub(crate) fn apply(&self, notice: &str) {
        let mut c = self.write();
        c.count += 1;
        let at = c.count;
        let id = |prefix: &str| {
            notice
                .strip_prefix(prefix)
                .and_then(|id| id.parse::<i64>().ok())
        };
        if let Some(id) = id("d:") {
            if let Some(Slot::Held(hash)) = c.hash_of.insert(id, Slot::Dropped(at)) {
                c.by_hash.remove(&hash);
            }
        } else if let Some(id) = id("p:") {
            c.open.insert(id, Slot::Dropped(at));
        } else if notice == ALL_DEPLOYMENTS_CHANGED {
            c.all_open_at = at;
            c.open.clear();
        } else {
            // Unknown: drop everything rather than keep what it may have meant.
            clear(&mut c);
        }
    }

    /// Keeps the listener from connecting again after it is lost (`true`), or lets it.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn hold_listener(&self, held: bool) {
        self.held.store(held, Ordering::Release);
    }

    /// The listener connected (`true`) or was lost (`false`): either way nothing kept may be
    /// trusted any more.
    fn set_live(&self, live: bool) {
        let mut c = self.write();
        clear(&mut c);
        self.live.store(live, Ordering::Release);
    }
}

fn clear(c: &mut Inner) {
    c.count += 1;
    c.all_at = c.count;
    c.by_hash.clear();
    c.hash_of.clear();
    c.open.clear();
}

/// How long the listener waits before connecting again after losing its connection.
const RECONNECT_AFTER: Duration = Duration::from_millis(500);
/// How often the listener checks that its connection still answers (a cut network may close
/// nothing), and how long it waits for the answer.
const PING_EVERY: Duration = Duration::from_secs(5);

/// The listener: connects, listens on `channel`, applies every notice to `cache`; on any loss,
/// empties the cache and connects again. Runs until the store's runtime ends.
pub(crate) async fn listen(
    cache: Arc<Cache>,
    config: Config,
    tls: MakeRustlsConnect,
    channel: String,
    redacted: String,
) {
    let mut logged = false;
    loop {
        match listen_once(&cache, &config, &tls, &channel).await {
            Ok(()) => {}
            Err(e) if !logged => {
                tracing::warn!(database = %redacted, error = %e, "the cache listener lost PostgreSQL; reading from the database until it is back");
                logged = true;
            }
            Err(_) => {}
        }
        if cache.is_live() {
            logged = false;
        }
        cache.set_live(false);
        tokio::time::sleep(RECONNECT_AFTER).await;
        while cache.held.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn listen_once(
    cache: &Arc<Cache>,
    config: &Config,
    tls: &MakeRustlsConnect,
    channel: &str,
) -> Result<(), String> {
    let (client, mut connection) = config
        .connect(tls.clone())
        .await
        .map_err(|e| describe(&e))?;
    let notices = Arc::clone(cache);
    let mut driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => notices.apply(n.payload()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return describe(&e),
                None => return "connection closed".to_owned(),
            }
        }
    });
    let quoted = channel.replace('"', "\"\"");
    client
        .batch_execute(&format!("LISTEN \"{quoted}\""))
        .await
        .map_err(|e| describe(&e))?;
    // Listening from here on: what was kept before may have missed notices.
    cache.set_live(true);
    tracing::debug!(channel, "cache listener connected");
    let started = std::time::Instant::now();
    match super::warm(cache, &client).await {
        Ok(devices) => tracing::info!(
            devices,
            seconds = started.elapsed().as_secs_f64(),
            "cache filled: check-ins are answered from memory"
        ),
        // Not fatal: each device's first check-in reads the database and fills its entry.
        Err(e) => {
            tracing::warn!(error = %e, "could not fill the cache; it fills as devices check in")
        }
    }
    loop {
        tokio::select! {
            ended = &mut driver => {
                return Err(ended.unwrap_or_else(|e| e.to_string()));
            }
            () = tokio::time::sleep(PING_EVERY) => {
                match tokio::time::timeout(PING_EVERY, client.simple_query("")).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(describe(&e)),
                    Err(_) => return Err("no answer to a ping".to_owned()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onshi_core::deployment::DeploymentState;
    use onshi_core::institution::{InstitutionCode, Prefecture, ScoreTable};
    use onshi_core::vendor::DeviceKind;

    fn device(id: i64) -> Device {
        Device {
            id,
            institution: InstitutionCode::from_parts(
                Prefecture::from_number(13).expect("Tokyo"),
                ScoreTable::Medical,
                1,
                1,
            )
            .expect("a valid code"),
            kind: DeviceKind::Terminal,
            vendor: None,
            serial: format!("S{id}"),
            parent: None,
            installed: None,
            running: None,
            last_contact: None,
        }
    }

    fn deployment(device: i64) -> Deployment {
        Deployment {
            campaign_id: "c".to_owned(),
            device_id: device,
            state: DeploymentState::Waiting,
            bytes: 0,
            last_seq: 0,
            updated_at: jiff::Timestamp::UNIX_EPOCH,
        }
    }

    fn live() -> Cache {
        let c = Cache::default();
        c.set_live(true);
        c
    }

    #[test]
    fn nothing_is_kept_or_answered_while_the_listener_is_away() {
        let c = Cache::default();
        let t = c.ticket();
        c.remember_device("h", &device(1), t);
        c.set_live(true);
        assert_eq!(c.device("h"), None);
        let t = c.ticket();
        c.remember_device("h", &device(1), t);
        assert_eq!(c.device("h"), Some(device(1)));
        c.set_live(false);
        assert_eq!(c.device("h"), None);
        c.set_live(true);
        assert_eq!(c.device("h"), None, "emptied when the listener came back");
    }

    #[test]
    fn a_notice_during_a_read_keeps_the_read_out_of_the_cache() {
        let c = live();
        let t = c.ticket();
        c.apply(&device_changed(1));
        c.remember_device("h", &device(1), t);
        assert_eq!(c.device("h"), None);
        c.apply(&deployments_changed(2));
        c.remember_open(2, &[deployment(2)], t);
        assert_eq!(c.open(2), None);
        // Another device's notice does not keep this one out.
        let t = c.ticket();
        c.apply(&deployments_changed(3));
        c.remember_open(2, &[deployment(2)], t);
        assert_eq!(c.open(2), Some(vec![deployment(2)]));
        let t = c.ticket();
        c.apply(ALL_DEPLOYMENTS_CHANGED);
        assert_eq!(c.open(2), None);
        c.remember_open(2, &[], t);
        assert_eq!(c.open(2), None);
    }

    #[test]
    fn a_changed_token_forgets_the_old_one() {
        let c = live();
        let t = c.ticket();
        c.remember_device("old", &device(1), t);
        c.apply(&device_changed(1));
        assert_eq!(c.device("old"), None);
        let t = c.ticket();
        c.remember_device("new", &device(1), t);
        assert_eq!(c.device("new"), Some(device(1)));
        assert_eq!(c.device("old"), None);
    }
}
