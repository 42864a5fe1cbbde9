//! The spans of the server running in the test's process, as a test observes them: the notices
//! worker's planning rounds (`notices_plan`, field `at`) and its sends (`notice_send`). A test
//! that must show a round did nothing waits for the round to close, then looks.
//!
//! The recorder is the process's global subscriber, installed by the first [`spans`] call.
//! nextest (what `.ci/run` uses) runs each test in a process of its own, so what it records is
//! this test's servers'.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use tracing::span::{Attributes, Id};
use tracing::{Subscriber, field::Field, field::Visit};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::Registry;

/// One span: its name and its fields, as text.
#[derive(Debug, Clone)]
pub struct Span {
    pub name: &'static str,
    pub fields: HashMap<&'static str, String>,
}

impl Span {
    /// The field `name`, if recorded.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

#[derive(Default)]
struct Book {
    open: HashMap<u64, Span>,
    closed: Vec<Span>,
}

/// What the recorder has seen.
#[derive(Clone, Default)]
pub struct Spans(Arc<Mutex<Book>>);

impl Spans {
    /// The spans named `name` that have closed, in the order they closed.
    pub fn closed(&self, name: &str) -> Vec<Span> {
        let book = self.0.lock().expect("span book");
        book.closed
            .iter()
            .filter(|s| s.name == name)
            .cloned()
            .collect()
    }

    /// How many spans named `name` are open now.
    pub fn open(&self, name: &str) -> usize {
        let book = self.0.lock().expect("span book");
        book.open.values().filter(|s| s.name == name).count()
    }

    /// Whether a planning round of a notices worker at server time `at` or later has ended.
    pub fn notices_planned_since(&self, at: jiff::Timestamp) -> bool {
        self.closed("notices_plan").iter().any(|s| {
            s.field("at")
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .is_some_and(|t| t >= at)
        })
    }
}

/// The recorder of this process (installed on first use).
pub fn spans() -> Spans {
    static SPANS: OnceLock<Spans> = OnceLock::new();
    SPANS
        .get_or_init(|| {
            let spans = Spans::default();
            let recorder = Recorder(spans.clone());
            tracing::subscriber::set_global_default(Registry::default().with(recorder))
                .expect("no other global subscriber in a test process");
            spans
        })
        .clone()
}

/// The spans recorded; every other span (one per HTTP request, say) is left alone.
const WATCHED: [&str; 2] = ["notices_plan", "notice_send"];

struct Recorder(Spans);

struct Fields<'a>(&'a mut HashMap<&'static str, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name(), format!("{value:?}"));
    }
}

impl<S: Subscriber> Layer<S> for Recorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        if !WATCHED.contains(&attrs.metadata().name()) {
            return;
        }
        let mut fields = HashMap::new();
        attrs.record(&mut Fields(&mut fields));
        let span = Span {
            name: attrs.metadata().name(),
            fields,
        };
        self.0
            .0
            .lock()
            .expect("span book")
            .open
            .insert(id.into_u64(), span);
    }

    fn on_close(&self, id: Id, _: Context<'_, S>) {
        let mut book = self.0.0.lock().expect("span book");
        if let Some(span) = book.open.remove(&id.into_u64()) {
            book.closed.push(span);
        }
    }
}
