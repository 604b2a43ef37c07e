//! The core's `tracing` events (corrupt data, failure policy, cache warnings) as Python `logging` records.
//!
//! Events at INFO and above go to the logger `sessionkit` (target `sessionkit::corrupt` to `sessionkit.corrupt`),
//! so Django's `LOGGING` setting decides where they end up. DEBUG and TRACE events are filtered out before any
//! formatting, so the hot path pays nothing for them.

use std::fmt::{self, Write as _};

use pyo3::prelude::*;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

struct PythonLogging;

#[derive(Default)]
struct Text {
    message: String,
    fields: String,
}

impl Visit for Text {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={:?}", field.name(), value);
        }
    }
}

impl<S: Subscriber> Layer<S> for PythonLogging {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let level: u8 = match *meta.level() {
            Level::ERROR => 40,
            Level::WARN => 30,
            Level::INFO => 20,
            Level::DEBUG => 10,
            Level::TRACE => 5,
        };
        let logger = if meta.target().starts_with("sessionkit::corrupt") { "sessionkit.corrupt" } else { "sessionkit" };
        let mut text = Text::default();
        event.record(&mut text);
        let line = format!("{}{}", text.message, text.fields);
        // try_attach: nothing is logged while the interpreter shuts down.
        let _ = Python::try_attach(|py| -> PyResult<()> {
            py.import("logging")?.call_method1("getLogger", (logger,))?.call_method1("log", (level, line))?;
            Ok(())
        });
    }
}

/// Sends the core's log events to Python's `logging` (once per process; a no-op if a subscriber is already set).
pub fn install() {
    let subscriber = tracing_subscriber::registry().with(PythonLogging.with_filter(LevelFilter::INFO));
    let _ = tracing::subscriber::set_global_default(subscriber);
}
