//! Metrics and a tracing span for every store call: the wrapper [`open_store`](super::open_store) puts around
//! each store it opens (the series and spans are listed in [`crate::telemetry`]).
//!
//! It sits directly around the store, inside the `merge=false` and `failure_policy` wrappers, so a failure the
//! policy turns into an empty session is still counted as a failure. It forwards **every** [`SessionStore`]
//! method, the defaulted ones included (a default would otherwise run on the wrapper and bypass the store's own
//! implementation): a method added to the trait gets a forward here too.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tracing::field::Empty;
use tracing::{Instrument, Span};

use super::user_index::UserSessionData;
use super::{RawSession, Saved, SessionLister, SessionStore, Touched, UserSession, UserSessionIndex};
use crate::telemetry::{self, error_kind, LoadOutcome, SaveOutcome, StoreKind};
use crate::{ChangeSet, SessionKey, SessionRecord, StoreError, Version};

/// A store whose calls are counted, timed and traced.
#[derive(Debug)]
pub struct Instrumented {
    inner: Arc<dyn SessionStore>,
    kind: StoreKind,
    /// `inner.describe()`, computed once for the spans.
    description: Arc<str>,
    index: InstrumentedIndex,
}

/// The inner store's per-user index, counted.
#[derive(Debug)]
struct InstrumentedIndex {
    inner: Arc<dyn SessionStore>,
    kind: StoreKind,
    description: Arc<str>,
}

impl Instrumented {
    /// Wraps `inner`, whose series get the label `store="<kind>"`.
    pub fn new(inner: Arc<dyn SessionStore>, kind: StoreKind) -> Self {
        let description: Arc<str> = inner.describe().into();
        let index = InstrumentedIndex { inner: Arc::clone(&inner), kind, description: Arc::clone(&description) };
        Instrumented { inner, kind, description, index }
    }

    /// The kind the series are labelled with.
    pub fn kind(&self) -> StoreKind {
        self.kind
    }

    /// The store inside.
    pub fn inner(&self) -> &Arc<dyn SessionStore> {
        &self.inner
    }
}

/// The span of one store call (DEBUG, target `sessionkit::store`; free when no subscriber wants it).
fn call_span(operation: &'static str, kind: StoreKind, description: &str) -> Span {
    tracing::debug_span!(target: "sessionkit::store", "sessionkit.store", operation, otel.name = otel_name(operation),
        store = description, store.kind = kind.label(), outcome = Empty, error = Empty)
}

/// The span name OpenTelemetry exporters show (`tracing-opentelemetry` reads the `otel.name` field).
fn otel_name(operation: &'static str) -> &'static str {
    match operation {
        "load" => "sessionkit.load",
        "create" => "sessionkit.create",
        "save" => "sessionkit.save",
        "exists" => "sessionkit.exists",
        "delete" => "sessionkit.delete",
        "clear_expired" => "sessionkit.clear_expired",
        "load_raw" => "sessionkit.load_raw",
        "hold_deleted" => "sessionkit.hold_deleted",
        "step_aside" => "sessionkit.step_aside",
        "list" => "sessionkit.user_index.list",
        "delete_one" => "sessionkit.user_index.delete_one",
        "delete_all" => "sessionkit.user_index.delete_all",
        "session_keys" => "sessionkit.user_index.session_keys",
        _ => "sessionkit.store",
    }
}

/// Runs one store call in its span; a failure is counted and recorded on the span.
async fn traced<T>(
    kind: StoreKind,
    description: &str,
    operation: &'static str,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let span = call_span(operation, kind, description);
    let result = call.instrument(span.clone()).await;
    if let Err(err) = &result {
        failed(&span, kind, operation, err);
    }
    result
}

fn failed(span: &Span, kind: StoreKind, operation: &'static str, err: &StoreError) {
    telemetry::record_error(kind, operation, err);
    span.record("error", error_kind(err));
}

#[async_trait]
impl SessionStore for Instrumented {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<SessionRecord>, StoreError> {
        let span = call_span("load", self.kind, &self.description);
        let started = Instant::now();
        let (result, corrupt) = telemetry::watch_corrupt(self.inner.load(key)).instrument(span.clone()).await;
        match &result {
            Ok(found) => {
                let outcome = match found {
                    _ if corrupt => LoadOutcome::Corrupt,
                    Some(_) => LoadOutcome::Hit,
                    None => LoadOutcome::Miss,
                };
                telemetry::record_load(self.kind, outcome, started.elapsed());
                span.record("outcome", outcome.label());
            }
            Err(err) => failed(&span, self.kind, "load", err),
        }
        result
    }

    async fn create(&self, record: &SessionRecord) -> Result<Option<Version>, StoreError> {
        let version = traced(self.kind, &self.description, "create", self.inner.create(record)).await?;
        telemetry::record_create(self.kind);
        Ok(version)
    }

    async fn save(&self, record: &SessionRecord, changes: &ChangeSet) -> Result<Saved, StoreError> {
        let span = call_span("save", self.kind, &self.description);
        let started = Instant::now();
        let result = self.inner.save(record, changes).instrument(span.clone()).await;
        match &result {
            Ok(saved) => {
                let outcome = if saved.merged.is_some() { SaveOutcome::Merged } else { SaveOutcome::Written };
                telemetry::record_save(self.kind, outcome, saved.attempts, started.elapsed());
                span.record("outcome", outcome.label());
            }
            Err(err) => failed(&span, self.kind, "save", err),
        }
        result
    }

    async fn exists(&self, key: &SessionKey) -> Result<bool, StoreError> {
        traced(self.kind, &self.description, "exists", self.inner.exists(key)).await
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), StoreError> {
        traced(self.kind, &self.description, "delete", self.inner.delete(key)).await?;
        telemetry::record_delete(self.kind);
        Ok(())
    }

    async fn clear_expired(&self) -> Result<u64, StoreError> {
        let removed = traced(self.kind, &self.description, "clear_expired", self.inner.clear_expired()).await?;
        telemetry::record_expired_cleared(self.kind, removed);
        Ok(removed)
    }

    async fn load_raw(&self, key: &SessionKey) -> Result<Option<RawSession>, StoreError> {
        traced(self.kind, &self.description, "load_raw", self.inner.load_raw(key)).await
    }

    async fn hold_deleted(&self, key: &SessionKey, hold: Duration) -> Result<(), StoreError> {
        traced(self.kind, &self.description, "hold_deleted", self.inner.hold_deleted(key, hold)).await
    }

    async fn step_aside(&self, key: &SessionKey, hold: Duration) -> Result<(), StoreError> {
        traced(self.kind, &self.description, "step_aside", self.inner.step_aside(key, hold)).await
    }

    async fn touch(&self, record: &SessionRecord) -> Result<Touched, StoreError> {
        let touched = traced(self.kind, &self.description, "touch", self.inner.touch(record)).await?;
        if touched == Touched::Moved {
            telemetry::record_touch(self.kind);
        }
        Ok(touched)
    }

    fn issue_key(&self, record: &SessionRecord) -> Result<Option<SessionKey>, StoreError> {
        self.inner.issue_key(record)
    }

    fn user_index(&self) -> Option<&dyn UserSessionIndex> {
        self.inner.user_index().map(|_| &self.index as &dyn UserSessionIndex)
    }

    fn lister(&self) -> Option<&dyn SessionLister> {
        self.inner.lister()
    }
}

impl InstrumentedIndex {
    /// The inner store's index (present: [`Instrumented::user_index`] hands this one out only then).
    fn index(&self) -> Result<&dyn UserSessionIndex, StoreError> {
        super::user_index::index_of(self.inner.as_ref(), || self.description.to_string(), "the store")
    }

    async fn call<'a, T, F, Fut>(&'a self, operation: &'static str, call: F) -> Result<T, StoreError>
    where
        F: FnOnce(&'a dyn UserSessionIndex) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let index = self.index()?;
        let result = traced(self.kind, &self.description, operation, call(index)).await;
        if result.is_ok() && operation != "session_keys" {
            telemetry::record_user_index(self.kind, operation);
        }
        result
    }
}

#[async_trait]
impl UserSessionIndex for InstrumentedIndex {
    async fn list(&self, user_id: &str) -> Result<Vec<UserSession>, StoreError> {
        self.call("list", |index| index.list(user_id)).await
    }

    async fn delete_one(&self, user_id: &str, session_id: &str) -> Result<bool, StoreError> {
        self.call("delete_one", |index| index.delete_one(user_id, session_id)).await
    }

    async fn delete_all(&self, user_id: &str, keep: Option<&SessionKey>) -> Result<u64, StoreError> {
        self.call("delete_all", |index| index.delete_all(user_id, keep)).await
    }

    async fn session_keys(&self, user_id: &str) -> Result<Vec<(String, Option<SessionKey>)>, StoreError> {
        self.call("session_keys", |index| index.session_keys(user_id)).await
    }

    async fn sessions_with_data(&self, user_id: &str) -> Result<Vec<UserSessionData>, StoreError> {
        self.call("sessions_with_data", |index| index.sessions_with_data(user_id)).await
    }

    async fn erase(&self, user_id: &str) -> Result<Vec<String>, StoreError> {
        self.call("erase", |index| index.erase(user_id)).await
    }
}
