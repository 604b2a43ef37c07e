//! The audit hook: session events an application can write to an audit log without patching the engine.
//!
//! Give a [`Session`](crate::Session) a hook ([`Session::with_audit`](crate::Session::with_audit); the tower
//! layer's `with_audit` does it for every request) and it reports logins and key cycles, flushes (logout),
//! revocations through the per-user index, expiries by the [lifetime rules](crate::lifetime) and merged
//! parallel writes. Sessions are named by [`session_id`](crate::store::user_index::session_id) (a digest),
//! never by their key, which is a bearer credential. The Django engine sends the same events as the Django
//! signal `sessionkit.django.signals.session_event`.
//!
//! A hook runs inline on the request path: keep it quick (hand the event to a channel or a logger).

use std::fmt;
use std::sync::Arc;

use crate::lifetime::ExpiryRule;

/// One session event. Fields name sessions by their [`session_id`](crate::store::user_index::session_id).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditEvent {
    /// The session moved to a new key (`cycle_key`, done at login against session fixation).
    Cycled {
        /// The id of the key given up, if the session had one.
        from: Option<String>,
        /// The id of the new key.
        to: String,
        /// The logged-in user at that moment, if any.
        user_id: Option<String>,
    },
    /// A user logged in to the session (after its key was cycled).
    LoggedIn {
        /// The session's id; `None` when the login flushed a session of another user (the new one gets its key
        /// when it is first saved, at the end of the request).
        session: Option<String>,
        /// The user's primary key, as Django stores it.
        user_id: String,
    },
    /// The session was flushed: its data deleted and its key dropped (logout).
    Flushed {
        /// The id of the deleted session, if it had been stored.
        session: Option<String>,
        /// The user logged in to it, if any.
        user_id: Option<String>,
    },
    /// Sessions of a user were deleted through the per-user index ("log out other devices", revoke one).
    Revoked {
        /// The user whose sessions were deleted.
        user_id: String,
        /// How many were deleted.
        sessions: u64,
        /// The id of the session kept (the current one), if any.
        kept: Option<String>,
    },
    /// A request brought a session that a lifetime rule has ended; it was deleted and the request got a new,
    /// empty session.
    Expired {
        /// The session's id.
        session: String,
        /// The user logged in to it, if any.
        user_id: Option<String>,
        /// The rule.
        rule: ExpiryRule,
    },
    /// Another request wrote the session since this one loaded it; this request's changes were merged into what
    /// was stored (`docs/concurrency.md`).
    MergeConflict {
        /// The session's id.
        session: String,
        /// The user logged in to it, if any.
        user_id: Option<String>,
    },
}

impl AuditEvent {
    /// A short name of the event's kind (`cycled`, `logged_in`, `flushed`, `revoked`, `expired`,
    /// `merge_conflict`), the same as the Django signal's `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            AuditEvent::Cycled { .. } => "cycled",
            AuditEvent::LoggedIn { .. } => "logged_in",
            AuditEvent::Flushed { .. } => "flushed",
            AuditEvent::Revoked { .. } => "revoked",
            AuditEvent::Expired { .. } => "expired",
            AuditEvent::MergeConflict { .. } => "merge_conflict",
        }
    }
}

/// Receives [`AuditEvent`]s. Implemented for every `Fn(&AuditEvent) + Send + Sync`.
pub trait AuditHook: Send + Sync + 'static {
    /// Called once per event, on the request's task, after the event happened.
    fn record(&self, event: &AuditEvent);
}

impl<F: Fn(&AuditEvent) + Send + Sync + 'static> AuditHook for F {
    fn record(&self, event: &AuditEvent) {
        self(event)
    }
}

/// An optional, shared [`AuditHook`].
#[derive(Clone, Default)]
pub struct Audit(Option<Arc<dyn AuditHook>>);

impl Audit {
    /// Events go to `hook`.
    pub fn new(hook: Arc<dyn AuditHook>) -> Self {
        Audit(Some(hook))
    }

    /// Reports an event, if a hook is set; the event is built only then.
    pub fn report(&self, event: impl FnOnce() -> AuditEvent) {
        if let Some(hook) = &self.0 {
            hook.record(&event());
        }
    }
}

impl fmt::Debug for Audit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "Audit(hook)" } else { "Audit(none)" })
    }
}
