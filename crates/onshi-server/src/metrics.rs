//! The server's Prometheus metrics, in the Prometheus text format through prometheus-client:
//! what this replica counts as it works (check-ins and their answers, mails sent and failed,
//! how long store calls take), and gauges of shared state (download slots in use and devices
//! waiting per active campaign, mails queued) that `routes/operations.rs` reads from the store at
//! each scrape. Counters are per replica (Prometheus sums them); the gauges are the database's.

use std::time::Duration;

use onshi_core::offer::Action;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The `Content-Type` of [`Metrics::render`].
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// One label set: `campaign="2026-01"`, `action="download"`.
type Labels = Vec<(&'static str, String)>;

/// The metrics of one server process.
pub struct Metrics {
    registry: Registry,
    checkins: Counter,
    /// One counter per [`Action::ALL`] entry, made once so a check-in allocates nothing.
    answers: [Counter; Action::ALL.len()],
    mails_sent: Counter,
    mails_failed: Counter,
    /// Artifact bytes served by this replica: full packages, then deltas.
    artifact_bytes: [Counter; 2],
    store_seconds: Histogram,
    slots_in_use: Family<Labels, Gauge>,
    queue_length: Family<Labels, Gauge>,
    mails_queued: Gauge,
    mails_retrying: Gauge,
    store_up: Gauge,
}

/// One active campaign's gauges, as the store answers them.
#[derive(Debug, Clone)]
pub struct CampaignGauges {
    pub campaign: String,
    pub slots_in_use: u64,
    pub queue_length: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("onshi");
        let checkins = Counter::default();
        registry.register(
            "checkins",
            "Device check-ins answered by this replica",
            checkins.clone(),
        );
        let answers_family = Family::<Labels, Counter>::default();
        registry.register(
            "checkin_answers",
            "Check-in answers by action (none, download, retry_later, install, restart_required)",
            answers_family.clone(),
        );
        let answers = Action::ALL.map(|a| {
            answers_family
                .get_or_create(&vec![("action", a.slug().to_owned())])
                .clone()
        });
        let bytes_family = Family::<Labels, Counter>::default();
        registry.register(
            "artifact_bytes",
            "Artifact bytes this replica sent (answers' lengths), by kind (package, delta)",
            bytes_family.clone(),
        );
        let artifact_bytes = ["package", "delta"].map(|k| {
            bytes_family
                .get_or_create(&vec![("kind", k.to_owned())])
                .clone()
        });
        let mails_sent = Counter::default();
        registry.register(
            "mails_sent",
            "Notice mails this replica delivered (the relay accepted them, or written as .eml)",
            mails_sent.clone(),
        );
        let mails_failed = Counter::default();
        registry.register(
            "mails_failed",
            "Notice mail deliveries that failed and wait to be retried",
            mails_failed.clone(),
        );
        let mails_queued = Gauge::default();
        registry.register(
            "mails_queued",
            "Notice mails in the outbox not yet sent",
            mails_queued.clone(),
        );
        let mails_retrying = Gauge::default();
        registry.register(
            "mails_retrying",
            "Queued mails whose delivery failed at least once",
            mails_retrying.clone(),
        );
        let slots_in_use = Family::<Labels, Gauge>::default();
        registry.register(
            "download_slots_in_use",
            "Download slots held now, per active campaign",
            slots_in_use.clone(),
        );
        let queue_length = Family::<Labels, Gauge>::default();
        registry.register(
            "download_queue_length",
            "Devices waiting in the queue for a download slot, per active campaign",
            queue_length.clone(),
        );
        let store_up = Gauge::default();
        registry.register(
            "store_up",
            "1 when the last scrape could read the store, 0 when it could not (the gauges read \
             from it then keep their last values)",
            store_up.clone(),
        );
        // 0.1 ms to about 1.6 s.
        let store_seconds = Histogram::new(exponential_buckets(0.0001, 4.0, 8));
        registry.register(
            "store_call_seconds",
            "How long the store took for each call made off the async workers",
            store_seconds.clone(),
        );
        Self {
            registry,
            checkins,
            answers,
            mails_sent,
            artifact_bytes,
            mails_failed,
            store_seconds,
            slots_in_use,
            queue_length,
            mails_queued,
            mails_retrying,
            store_up,
        }
    }

    /// A check-in was answered with `action`.
    /// Counts the bytes of an artifact answer (a delta's or a full package's).
    pub fn artifact_bytes(&self, delta: bool, bytes: u64) {
        self.artifact_bytes[usize::from(delta)].inc_by(bytes);
    }

    pub fn checkin(&self, action: Action) {
        self.checkins.inc();
        if let Some(i) = Action::ALL.iter().position(|a| *a == action) {
            self.answers[i].inc();
        }
    }

    /// A mail was delivered.
    pub fn mail_sent(&self) {
        self.mails_sent.inc();
    }

    /// A mail's delivery failed.
    pub fn mail_failed(&self) {
        self.mails_failed.inc();
    }

    /// A store call took `took`.
    pub fn store_call(&self, took: Duration) {
        self.store_seconds.observe(took.as_secs_f64());
    }

    /// The gauges read from the store: each active campaign's slots and queue, the outbox.
    pub fn set_shared(&self, campaigns: &[CampaignGauges], queued: u64, retrying: u64) {
        // Closed or paused campaigns drop out rather than keep their last value.
        self.slots_in_use.clear();
        self.queue_length.clear();
        for c in campaigns {
            let labels = vec![("campaign", c.campaign.clone())];
            self.slots_in_use
                .get_or_create(&labels)
                .set(gauge(c.slots_in_use));
            self.queue_length
                .get_or_create(&labels)
                .set(gauge(c.queue_length));
        }
        self.mails_queued.set(gauge(queued));
        self.mails_retrying.set(gauge(retrying));
        self.store_up.set(1);
    }

    /// The store could not be read for the gauges: they keep their last values.
    pub fn store_down(&self) {
        self.store_up.set(0);
    }

    /// Every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_text::encode(&mut text, &self.registry);
        text
    }
}

fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_gauges_render_in_the_text_format() {
        let m = Metrics::new();
        m.checkin(Action::Download);
        m.checkin(Action::RetryLater);
        m.checkin(Action::RetryLater);
        m.mail_sent();
        m.store_call(Duration::from_millis(3));
        m.set_shared(
            &[CampaignGauges {
                campaign: "2026-01".into(),
                slots_in_use: 50,
                queue_length: 7,
            }],
            4,
            1,
        );
        let text = m.render();
        for line in [
            "onshi_checkins_total 3",
            "onshi_checkin_answers_total{action=\"retry_later\"} 2",
            "onshi_checkin_answers_total{action=\"download\"} 1",
            "onshi_checkin_answers_total{action=\"install\"} 0",
            "onshi_mails_sent_total 1",
            "onshi_mails_failed_total 0",
            "onshi_mails_queued 4",
            "onshi_store_up 1",
            "onshi_download_slots_in_use{campaign=\"2026-01\"} 50",
            "onshi_download_queue_length{campaign=\"2026-01\"} 7",
            "onshi_store_call_seconds_count 1",
            "# TYPE onshi_checkins_total counter",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from:\n{text}"
            );
        }
        m.set_shared(&[], 0, 0);
        assert!(!m.render().contains("campaign=\"2026-01\""));
    }
}
