//! Reading metrics back: a debugging recorder installed for the current thread (tests run on
//! tokio's current-thread runtime, so every statement of a test records on its thread and
//! parallel tests never see each other's numbers), and captured `tracing` events.

use std::sync::{Arc, Mutex};

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::{CompositeKey, MetricKind};

/// A debugging recorder set as this thread's recorder while the value lives.
pub struct Recording {
    snapshotter: Snapshotter,
    _guard: metrics::LocalRecorderGuard<'static>,
}

impl Recording {
    /// Starts recording on this thread.
    pub fn start() -> Recording {
        let recorder: &'static DebuggingRecorder = Box::leak(Box::new(DebuggingRecorder::new()));
        let snapshotter = recorder.snapshotter();
        let guard = metrics::set_default_local_recorder(recorder);
        Recording { snapshotter, _guard: guard }
    }

    /// What was recorded since the last snapshot (counters are reset by taking it).
    pub fn snapshot(&self) -> Recorded {
        Recorded(self.snapshotter.snapshot().into_vec().into_iter().map(|(k, _, _, v)| (k, v)).collect())
    }
}

/// One snapshot.
#[derive(Debug)]
pub struct Recorded(Vec<(CompositeKey, DebugValue)>);

impl Recorded {
    fn matching<'a>(
        &'a self,
        kind: MetricKind,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a DebugValue> + 'a {
        self.0.iter().filter_map(move |(k, v)| {
            let key = k.key();
            let has = |(lk, lv): &(&str, &str)| key.labels().any(|l| l.key() == *lk && l.value() == *lv);
            (k.kind() == kind && key.name() == name && labels.iter().all(has)).then_some(v)
        })
    }

    /// Every value recorded into histograms `name` whose labels include `labels`, sorted.
    pub fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        let mut out: Vec<f64> = self
            .matching(MetricKind::Histogram, name, labels)
            .flat_map(|v| match v {
                DebugValue::Histogram(values) => values.iter().map(|f| f.into_inner()).collect::<Vec<_>>(),
                other => panic!("{name} is not a histogram: {other:?}"),
            })
            .collect();
        out.sort_by(f64::total_cmp);
        out
    }

    /// The sum of counters `name` whose labels include `labels`.
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.matching(MetricKind::Counter, name, labels)
            .map(|v| match v {
                DebugValue::Counter(n) => *n,
                other => panic!("{name} is not a counter: {other:?}"),
            })
            .sum()
    }

    /// The gauge `name` with exactly these labels' values among its labels.
    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.matching(MetricKind::Gauge, name, labels).find_map(|v| match v {
            DebugValue::Gauge(g) => Some(g.into_inner()),
            _ => None,
        })
    }

    /// Every metric name recorded, with the label keys seen on it.
    pub fn names_and_labels(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for (k, _) in &self.0 {
            let key = k.key();
            let labels = key.labels().map(|l| l.key().to_owned());
            match out.iter_mut().find(|(n, _)| n == key.name()) {
                Some((_, ls)) => ls.extend(labels),
                None => out.push((key.name().to_owned(), labels.collect())),
            }
        }
        for (_, ls) in &mut out {
            ls.sort();
            ls.dedup();
        }
        out
    }

    /// Every label value of `label` seen on metric `name`, sorted and deduplicated.
    pub fn label_values(&self, name: &str, label: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .0
            .iter()
            .filter(|(k, _)| k.key().name() == name)
            .flat_map(|(k, _)| {
                k.key().labels().filter(|l| l.key() == label).map(|l| l.value().to_owned()).collect::<Vec<_>>()
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// One captured event: its target and fields (values as text).
#[derive(Debug, Clone)]
pub struct Event {
    pub target: String,
    pub level: tracing::Level,
    pub fields: Vec<(String, String)>,
}

impl Event {
    /// A field's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A layer keeping every event whose target starts with `polystore`.
#[derive(Clone, Default)]
pub struct Events(pub Arc<Mutex<Vec<Event>>>);

struct FieldList<'a>(&'a mut Vec<(String, String)>);

impl tracing::field::Visit for FieldList<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Events {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let meta = event.metadata();
        if meta.target().starts_with("polystore") {
            let mut fields = Vec::new();
            event.record(&mut FieldList(&mut fields));
            self.0.lock().unwrap().push(Event { target: meta.target().to_owned(), level: *meta.level(), fields });
        }
    }
}

impl Events {
    /// Captures events on this thread while the guard lives.
    pub fn capture() -> (Events, tracing::subscriber::DefaultGuard) {
        use tracing_subscriber::layer::SubscriberExt as _;
        let events = Events::default();
        let guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(events.clone()));
        // A callsite first met on another test's thread while no subscriber listened may be
        // cached as "never interested": recompute that for this subscriber.
        tracing::callsite::rebuild_interest_cache();
        (events, guard)
    }

    /// The events with `target`.
    pub fn with_target(&self, target: &str) -> Vec<Event> {
        self.0.lock().unwrap().iter().filter(|e| e.target == target).cloned().collect()
    }
}

/// A layer keeping the fields of every `polystore.sql` / `polystore.mongodb` span, including
/// those recorded after the span was created (`error.type`).
#[derive(Clone, Default)]
pub struct Spans(Arc<Mutex<Vec<SpanFields>>>);

/// A span's id and fields.
type SpanFields = (tracing::span::Id, Vec<(String, String)>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Spans {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if matches!(attrs.metadata().name(), "polystore.sql" | "polystore.mongodb") {
            let mut fields = Vec::new();
            attrs.record(&mut FieldList(&mut fields));
            self.0.lock().unwrap().push((id.clone(), fields));
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if let Some((_, fields)) = self.0.lock().unwrap().iter_mut().find(|(i, _)| i == id) {
            values.record(&mut FieldList(fields));
        }
    }
}

impl Spans {
    /// Captures spans on this thread while the guard lives.
    pub fn capture() -> (Spans, tracing::subscriber::DefaultGuard) {
        use tracing_subscriber::layer::SubscriberExt as _;
        let spans = Spans::default();
        let guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
        tracing::callsite::rebuild_interest_cache();
        (spans, guard)
    }

    /// The value of `field` on each captured span (`None` where it was never recorded).
    pub fn field(&self, field: &str) -> Vec<Option<String>> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, fields)| fields.iter().find(|(k, _)| k == field).map(|(_, v)| v.clone()))
            .collect()
    }
}
