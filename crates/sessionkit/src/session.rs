//! [`Session`]: what a request works with. Django's `SessionBase` over any [`SessionStore`].

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use crate::audit::{Audit, AuditEvent, AuditHook};
use crate::expiry::EXPIRY_KEY;
use crate::lifetime;
use crate::store::user_index::session_id;
use crate::store::Touched;
use crate::{Expiry, SessionData, SessionKey, SessionRecord, SessionStore, Settings, StoreError, Version};

/// How many fresh keys [`Session::create`] tries before giving up. With 36^32 possible keys a single
/// collision is already astronomically unlikely; repeated collisions mean a broken store.
const MAX_CREATE_ATTEMPTS: usize = 100;

/// Errors of the [`Session`] API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The store failed (unavailable, session vanished, ...).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored value does not have the type the caller asked for.
    #[error("session value {key:?} does not have the requested type: {source}")]
    WrongType {
        /// The session key (dict key) that was read.
        key: String,
        /// Why deserialization failed.
        #[source]
        source: serde_json::Error,
    },
    /// The store keeps no per-user session index (only Redis does today).
    #[error("this session store keeps no per-user session index")]
    NoUserIndex,
    /// The operation needs a logged-in session (`_auth_user_id`), and this one has none.
    #[error("the session has no logged-in user (_auth_user_id)")]
    NotLoggedIn,
    /// A login was asked for a user the user source does not know (see [`crate::auth::DjangoAuth::log_in`]).
    #[error("no Django user with primary key {user_id:?}")]
    UnknownUser {
        /// The primary key that was asked for.
        user_id: String,
    },
    /// A value given to the session cannot be represented as JSON.
    #[error("value for session key {key:?} cannot be stored as JSON: {source}")]
    NotJson {
        /// The session key (dict key) that was written.
        key: String,
        /// Why serialization failed.
        #[source]
        source: serde_json::Error,
    },
}

#[derive(Debug)]
enum State {
    /// Nothing read from the store yet.
    NotLoaded,
    /// Data in memory (loaded, or known to be new).
    Loaded(SessionData),
    /// The load failed; the same error is returned again without another store call.
    Failed(StoreError),
}

/// One request's view of a session, with Django's semantics:
///
/// - Nothing is loaded until the data is first touched; then it is loaded once.
/// - `accessed` is set by any touch of the data, `modified` by any change (or by [`Session::mark_modified`]).
/// - An unknown, expired or invalid key loads as a new empty session and the key is dropped.
/// - [`Session::save`] only updates; with no key it creates a new session under a fresh key.
/// - [`Session::cycle_key`] moves the data to a new key (do it at login), [`Session::flush`] deletes everything.
#[derive(Debug)]
pub struct Session {
    store: Arc<dyn SessionStore>,
    settings: Arc<Settings>,
    key: Option<SessionKey>,
    state: State,
    /// What the store read (or last wrote), for the compare-and-set of the next save.
    version: Option<Version>,
    /// The expiry the store reported when the session was loaded (or last written), for the touch of an idle
    /// timeout ([`lifetime`]).
    stored_expiry: Option<OffsetDateTime>,
    accessed: bool,
    modified: bool,
    audit: Audit,
}

impl Session {
    /// A session for `key` (usually the cookie's value); nothing is loaded yet.
    pub fn new(store: Arc<dyn SessionStore>, settings: Arc<Settings>, key: Option<SessionKey>) -> Self {
        Session {
            store,
            settings,
            key,
            state: State::NotLoaded,
            version: None,
            stored_expiry: None,
            accessed: false,
            modified: false,
            audit: Audit::default(),
        }
    }

    /// Reports this session's events to `hook` (see [`crate::audit`]).
    pub fn with_audit(mut self, hook: Arc<dyn AuditHook>) -> Self {
        self.audit = Audit::new(hook);
        self
    }

    /// Reports an event to the audit hook, if one is set.
    pub(crate) fn report(&self, event: impl FnOnce() -> AuditEvent) {
        self.audit.report(event);
    }

    /// A session for a raw cookie value; a value Django would not accept as a key gives a new session.
    pub fn from_cookie(store: Arc<dyn SessionStore>, settings: Arc<Settings>, cookie: Option<&str>) -> Self {
        let key = cookie.and_then(|value| SessionKey::parse(value).ok());
        Session::new(store, settings, key)
    }

    /// The current key; `None` for a session that has not been saved yet (or whose key was unknown).
    pub fn key(&self) -> Option<&SessionKey> {
        self.key.as_ref()
    }

    /// The settings this session follows.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The store behind this session.
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.store
    }

    /// True once the data was touched (read or written).
    pub fn is_accessed(&self) -> bool {
        self.accessed
    }

    /// True once the data was changed.
    pub fn is_modified(&self) -> bool {
        self.modified
    }

    /// Marks the session as modified so it is saved even though no key was set (Django's
    /// `request.session.modified = True`).
    pub fn mark_modified(&mut self) {
        self.modified = true;
    }

    /// True when the data has been loaded (or is known to be new).
    pub fn is_loaded(&self) -> bool {
        matches!(self.state, State::Loaded(_))
    }

    /// Django's `is_empty()`: no key and no data in memory. Does not load.
    pub fn is_empty(&self) -> bool {
        self.key.is_none() && !matches!(&self.state, State::Loaded(data) if !data.is_empty())
    }

    /// Loads the data if needed and returns it.
    async fn loaded(&mut self) -> Result<&mut SessionData, SessionError> {
        self.accessed = true;
        if let State::NotLoaded = self.state {
            self.state = match &self.key {
                None => State::Loaded(SessionData::new()),
                Some(key) => match self.store.load(key).await {
                    Ok(Some(record)) => self.take_loaded(record).await,
                    Ok(None) => {
                        self.key = None;
                        State::Loaded(SessionData::new())
                    }
                    Err(err) => State::Failed(err),
                },
            };
        }
        match &mut self.state {
            State::Loaded(data) => Ok(data),
            State::Failed(err) => Err(err.clone().into()),
            State::NotLoaded => unreachable!("state was set above"),
        }
    }

    /// A loaded record under the lifetime rules: a session a rule has ended is deleted and replaced by a new,
    /// empty one; a session that must carry its start ([`lifetime::CREATED_KEY`]) and does not gets it (and is
    /// then saved once for it).
    async fn take_loaded(&mut self, record: SessionRecord) -> State {
        if !lifetime::rules_on(&self.settings) {
            self.version = record.version;
            self.stored_expiry = Some(record.expires_at);
            return State::Loaded(SessionData::from_map(record.data));
        }
        let now = self.settings.clock.now();
        if let Some(rule) = lifetime::expired_by(&self.settings, &record.data, Some(record.expires_at), now) {
            tracing::info!(target: "sessionkit", store = %self.store.describe(), rule = rule.as_str(),
                "session ended by its lifetime rule; a new session starts");
            crate::telemetry::record_lifetime_expired(rule);
            if let Err(err) = self.store.delete(&record.key).await {
                // The store's own expiry removes it anyway; the request goes on with a new session.
                tracing::warn!(target: "sessionkit", store = %self.store.describe(), error = %err,
                    "could not delete a session ended by its lifetime rule");
            }
            self.report(|| AuditEvent::Expired {
                session: session_id(&record.key),
                user_id: crate::store::user_index::auth_user_id(&record.data),
                rule,
            });
            self.key = None;
            return State::Loaded(SessionData::new());
        }
        self.version = record.version;
        self.stored_expiry = Some(record.expires_at);
        let mut data = SessionData::from_map(record.data);
        if lifetime::needs_created(&self.settings, data.as_map()) {
            data.insert(lifetime::CREATED_KEY, lifetime::created_value(now));
            self.modified = true;
        }
        State::Loaded(data)
    }

    /// The data itself, loading it if needed.
    pub async fn data(&mut self) -> Result<&SessionData, SessionError> {
        Ok(self.loaded().await?)
    }

    /// The value under `key`, deserialized into `T`.
    pub async fn get<T: DeserializeOwned>(&mut self, key: &str) -> Result<Option<T>, SessionError> {
        match self.loaded().await?.get(key) {
            None => Ok(None),
            // From the stored value in place: no copy of it (numbers and strings would each be allocated again).
            Some(value) => T::deserialize(value)
                .map(Some)
                .map_err(|source| SessionError::WrongType { key: key.to_owned(), source }),
        }
    }

    /// The JSON value under `key`.
    pub async fn get_value(&mut self, key: &str) -> Result<Option<Value>, SessionError> {
        Ok(self.loaded().await?.get(key).cloned())
    }

    /// True when `key` is present.
    pub async fn contains_key(&mut self, key: &str) -> Result<bool, SessionError> {
        Ok(self.loaded().await?.contains_key(key))
    }

    /// Sets `key` to `value` (anything serde can turn into JSON).
    pub async fn set(&mut self, key: &str, value: impl Serialize) -> Result<(), SessionError> {
        let value =
            serde_json::to_value(value).map_err(|source| SessionError::NotJson { key: key.to_owned(), source })?;
        self.loaded().await?.insert(key, value);
        self.modified = true;
        Ok(())
    }

    /// Removes `key` and returns its value (Django's `pop`); modified only if the key was there.
    pub async fn pop(&mut self, key: &str) -> Result<Option<Value>, SessionError> {
        let old = self.loaded().await?.remove(key);
        self.modified |= old.is_some();
        Ok(old)
    }

    /// Returns the value under `key`, first setting it to `default` if absent (Django's `setdefault`).
    pub async fn setdefault(&mut self, key: &str, default: impl Serialize) -> Result<Value, SessionError> {
        if let Some(existing) = self.loaded().await?.get(key) {
            return Ok(existing.clone());
        }
        let value =
            serde_json::to_value(default).map_err(|source| SessionError::NotJson { key: key.to_owned(), source })?;
        self.loaded().await?.insert(key, value.clone());
        self.modified = true;
        Ok(value)
    }

    /// Sets several keys at once (Django's `update`).
    pub async fn update<K: Into<String>>(
        &mut self,
        pairs: impl IntoIterator<Item = (K, Value)>,
    ) -> Result<(), SessionError> {
        let data = self.loaded().await?;
        for (key, value) in pairs {
            data.insert(key, value);
        }
        self.modified = true;
        Ok(())
    }

    /// The keys, in insertion order.
    pub async fn keys(&mut self) -> Result<Vec<String>, SessionError> {
        Ok(self.loaded().await?.keys().map(str::to_owned).collect())
    }

    /// The key/value pairs, in insertion order.
    pub async fn items(&mut self) -> Result<Vec<(String, Value)>, SessionError> {
        Ok(self.loaded().await?.iter().map(|(k, v)| (k.to_owned(), v.clone())).collect())
    }

    /// Number of keys.
    pub async fn len(&mut self) -> Result<usize, SessionError> {
        Ok(self.loaded().await?.len())
    }

    /// Removes all data without loading it first (Django's `clear`). The key stays.
    pub fn clear(&mut self) {
        let mut data = SessionData::new();
        data.clear();
        self.state = State::Loaded(data);
        self.accessed = true;
        self.modified = true;
    }

    /// The custom expiry stored in the session (`_session_expiry`).
    pub async fn expiry(&mut self) -> Result<Expiry, SessionError> {
        Ok(Expiry::from_value(self.loaded().await?.get(EXPIRY_KEY)))
    }

    /// Sets or removes the custom expiry (Django's `set_expiry`).
    pub async fn set_expiry(&mut self, expiry: Expiry) -> Result<(), SessionError> {
        match expiry.to_value() {
            Some(value) => {
                self.loaded().await?.insert(EXPIRY_KEY, value);
                self.modified = true;
            }
            None => {
                self.pop(EXPIRY_KEY).await?;
            }
        }
        Ok(())
    }

    /// Seconds until expiry, counted from now (Django's `get_expiry_age`).
    pub async fn expiry_age(&mut self) -> Result<i64, SessionError> {
        let cookie_age = self.settings.cookie_age;
        Ok(self.expiry().await?.age(OffsetDateTime::now_utc(), cookie_age))
    }

    /// When the session expires if saved now (Django's `get_expiry_date`).
    pub async fn expiry_date(&mut self) -> Result<OffsetDateTime, SessionError> {
        let cookie_age = self.settings.cookie_age;
        Ok(self.expiry().await?.date(OffsetDateTime::now_utc(), cookie_age))
    }

    /// Whether the cookie expires at browser close (Django's `get_expire_at_browser_close`).
    pub async fn expire_at_browser_close(&mut self) -> Result<bool, SessionError> {
        let setting = self.settings.expire_at_browser_close;
        Ok(self.expiry().await?.at_browser_close(setting))
    }

    /// Saves the data (Django's `save()`): updates the stored session, or creates one under a fresh key when
    /// there is no key. A session deleted meanwhile gives [`StoreError::SessionVanished`].
    ///
    /// The store applies this request's changes on top of what is stored now (`docs/concurrency.md`): when
    /// another request wrote the session since it was loaded, its keys are kept, and after the save this
    /// session holds the merged data.
    pub async fn save(&mut self) -> Result<(), SessionError> {
        self.loaded().await?;
        let Some(key) = self.key.clone() else {
            return self.create().await;
        };
        let store = Arc::clone(&self.store);
        let settings = Arc::clone(&self.settings);
        let now = settings.clock.now();
        let version = self.version.take();
        let State::Loaded(data) = &mut self.state else { unreachable!("loaded above") };
        let expires_at = lifetime::store_expiry(&settings, data.as_map(), now);
        if settings.idle_timeout.is_some() && data.changes().is_empty() && version.is_some() {
            // Nothing changed: under an idle timeout only the expiry moves, at most once per touch interval.
            self.version = version;
            return self.touch_unchanged(key, now).await;
        }
        // Hand the map to the store without copying it, then put it back.
        let record = SessionRecord { key, data: data.take_map(), expires_at, version };
        let result = match store.save(&record, data.changes()).await {
            Ok(saved) => store.issue_key(&record).map(|issued| (saved, issued)),
            Err(err) => Err(err),
        };
        data.put_map(record.data);
        let (saved, issued) = match result {
            Ok(done) => done,
            Err(err) => {
                self.version = record.version;
                return Err(err.into());
            }
        };
        let conflict = saved.merged.is_some();
        match saved.merged {
            Some(merged) => data.replace_saved(merged.data),
            None => data.reset_changes(),
        }
        self.version = saved.version;
        self.stored_expiry = Some(record.expires_at);
        if conflict {
            let user_id = crate::store::user_index::auth_user_id(data.as_map());
            self.report(|| AuditEvent::MergeConflict { session: session_id(&record.key), user_id });
        }
        if let Some(issued) = issued {
            self.key = Some(issued);
        }
        Ok(())
    }

    /// True when this request loaded the session, changed nothing, and an idle timeout's touch is due: a
    /// front-end then calls [`Session::save`], which only moves the expiry (see [`lifetime`]).
    pub fn touch_due(&self) -> bool {
        let (State::Loaded(data), Some(stored)) = (&self.state, self.stored_expiry) else { return false };
        self.key.is_some()
            && data.changes().is_empty()
            && lifetime::touch_due(&self.settings, data.as_map(), stored, self.settings.clock.now()).is_some()
    }

    /// The save of an unchanged session under an idle timeout: a touch when one is due, else nothing. A store
    /// that cannot touch gets a full save.
    async fn touch_unchanged(&mut self, key: SessionKey, now: OffsetDateTime) -> Result<(), SessionError> {
        let (State::Loaded(data), Some(stored)) = (&mut self.state, self.stored_expiry) else { return Ok(()) };
        let Some(expires_at) = lifetime::touch_due(&self.settings, data.as_map(), stored, now) else { return Ok(()) };
        let record = SessionRecord { key, data: data.take_map(), expires_at, version: self.version.clone() };
        let touched = self.store.touch(&record).await;
        let SessionRecord { key, data: map, version, .. } = record;
        data.put_map(map);
        match touched? {
            Touched::Moved => {
                self.stored_expiry = Some(expires_at);
                Ok(())
            }
            Touched::Vanished => Err(StoreError::SessionVanished.into()),
            Touched::Unsupported => {
                let changes = crate::ChangeSet::default();
                let record = SessionRecord { key, data: data.take_map(), expires_at, version };
                let result = match self.store.save(&record, &changes).await {
                    Ok(saved) => self.store.issue_key(&record).map(|issued| (saved, issued)),
                    Err(err) => Err(err),
                };
                data.put_map(record.data);
                let (saved, issued) = result?;
                if let Some(merged) = saved.merged {
                    data.replace_saved(merged.data);
                }
                self.version = saved.version;
                self.stored_expiry = Some(expires_at);
                if let Some(issued) = issued {
                    self.key = Some(issued);
                }
                Ok(())
            }
        }
    }

    /// Stores the current data under a fresh key (Django's `create()`): never overwrites an existing session.
    pub async fn create(&mut self) -> Result<(), SessionError> {
        self.accessed = true;
        if !self.is_loaded() {
            // Django's create() saves with no_load: data not loaded yet is taken as empty.
            self.state = State::Loaded(SessionData::new());
        }
        let store = Arc::clone(&self.store);
        let settings = Arc::clone(&self.settings);
        let now = settings.clock.now();
        let State::Loaded(data) = &mut self.state else { unreachable!("set above") };
        if settings.absolute_timeout.is_some() {
            // Created (or cycled, at login) now: the absolute lifetime starts again.
            data.insert(lifetime::CREATED_KEY, lifetime::created_value(now));
        }
        let expires_at = lifetime::store_expiry(&settings, data.as_map(), now);
        let mut record = SessionRecord::new(SessionKey::generate(), data.take_map(), expires_at);
        let mut outcome = Err(StoreError::KeyCollision);
        for _ in 0..MAX_CREATE_ATTEMPTS {
            outcome = store.create(&record).await;
            match outcome {
                Err(StoreError::KeyCollision) => record.key = SessionKey::generate(),
                _ => break,
            }
        }
        let issued = outcome.and_then(|version| store.issue_key(&record).map(|issued| (version, issued)));
        data.put_map(record.data);
        let (version, issued) = issued?;
        data.reset_changes();
        self.key = Some(issued.unwrap_or(record.key));
        self.version = version;
        self.stored_expiry = Some(expires_at);
        self.modified = true;
        Ok(())
    }

    /// Moves the data to a new key and deletes the old one (Django's `cycle_key()`). Call it at login, so a key
    /// planted before login (session fixation) is worthless afterwards.
    pub async fn cycle_key(&mut self) -> Result<(), SessionError> {
        self.loaded().await?;
        let old = self.key.take();
        self.create().await?;
        if let Some(old) = &old {
            self.store.delete(old).await?;
        }
        if let (Some(new), State::Loaded(data)) = (&self.key, &self.state) {
            let user_id = crate::store::user_index::auth_user_id(data.as_map());
            self.report(|| AuditEvent::Cycled { from: old.as_ref().map(session_id), to: session_id(new), user_id });
        }
        Ok(())
    }

    /// The logged-in Django user of this session (`_auth_user_id`), if any.
    pub async fn auth_user_id(&mut self) -> Result<Option<String>, SessionError> {
        Ok(crate::store::user_index::auth_user_id(self.loaded().await?.as_map()))
    }

    /// Records the client's user agent and IP in the session (under
    /// [`USER_AGENT_KEY`](crate::store::user_index::USER_AGENT_KEY) and
    /// [`CLIENT_IP_KEY`](crate::store::user_index::CLIENT_IP_KEY)) so the per-user index can show them. Writes
    /// only what changed, so an unchanged client does not make the session modified.
    pub async fn record_client(&mut self, user_agent: Option<&str>, ip: Option<&str>) -> Result<(), SessionError> {
        use crate::store::user_index::{CLIENT_IP_KEY, USER_AGENT_KEY};
        for (key, value) in [(USER_AGENT_KEY, user_agent), (CLIENT_IP_KEY, ip)] {
            let Some(value) = value else { continue };
            let value: String = value.chars().take(512).collect();
            if self.loaded().await?.get(key).and_then(Value::as_str) != Some(value.as_str()) {
                self.set(key, value).await?;
            }
        }
        Ok(())
    }

    /// The logged-in user's sessions, from the store's per-user index.
    pub async fn user_sessions(&mut self) -> Result<Vec<crate::store::UserSession>, SessionError> {
        let user = self.auth_user_id().await?.ok_or(SessionError::NotLoggedIn)?;
        let index = self.store.user_index().ok_or(SessionError::NoUserIndex)?;
        Ok(index.list(&user).await?)
    }

    /// Deletes every other session of the logged-in user ("log out other devices") and returns how many.
    pub async fn log_out_other_devices(&mut self) -> Result<u64, SessionError> {
        let user = self.auth_user_id().await?.ok_or(SessionError::NotLoggedIn)?;
        let index = self.store.user_index().ok_or(SessionError::NoUserIndex)?;
        let deleted = index.delete_all(&user, self.key.as_ref()).await?;
        let kept = self.key.as_ref().map(session_id);
        self.report(|| AuditEvent::Revoked { user_id: user, sessions: deleted, kept });
        Ok(deleted)
    }

    /// Deletes the session and its data and drops the key (Django's `flush()`); use it at logout.
    pub async fn flush(&mut self) -> Result<(), SessionError> {
        let user_id = match &self.state {
            State::Loaded(data) => crate::store::user_index::auth_user_id(data.as_map()),
            _ => None,
        };
        self.clear();
        if let Some(key) = &self.key {
            self.store.delete(key).await?;
        }
        let session = self.key.take().map(|key| session_id(&key));
        self.version = None;
        self.stored_expiry = None;
        self.report(|| AuditEvent::Flushed { session, user_id });
        Ok(())
    }
}
