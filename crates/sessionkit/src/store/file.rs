//! Django's `file` session backend (`django.contrib.sessions.backends.file`): one file per session in a
//! directory that Django and sessionkit can share.
//!
//! Layout, as Django writes it:
//! - the file of session `KEY` is `DIR/<SESSION_COOKIE_NAME>KEY`, e.g. `/tmp/sessionidddbs54wf03km6pul4bbsuhjr4ln194mn`;
//! - its content is the signed session token of [`SignedSessionCodec`] (Django's `SessionBase.encode`), ASCII,
//!   without a trailing newline; mode `0600`;
//! - every write goes to a temporary file `DIR/<SESSION_COOKIE_NAME>KEY_out_<random>` in the same directory, which
//!   is then renamed over the session file, so a reader sees either the old or the new content, never a mix;
//! - there is no stored expiry: a session expires at `_session_expiry` when that is set, else at the file's mtime
//!   plus `SESSION_COOKIE_AGE`. An expired file is deleted when it is loaded.
//!
//! URL: `file:///absolute/dir`, or `file://` alone for `SESSION_FILE_PATH` ([`Settings::file_path`]) and, when that
//! is unset, the system temp dir (Django's default). The directory must exist. Option `?fsync=true` (see below).
//!
//! # Durability (`fsync`)
//!
//! By default nothing is fsynced, as in Django: a save costs a write and a rename. After a power loss a session
//! file may then be empty or truncated; it is read as an empty session (the user is logged out), never as someone
//! else's data, because the token is signed. With `file:///dir?fsync=true` the temporary file is fsynced before
//! the rename and the directory after it, so a completed save survives a crash, at the price of two disk flushes.
//!
//! # Parallel saves
//!
//! A save merges with what other requests wrote since it loaded (`docs/concurrency.md`): the version of a session
//! is its file's content, and a save checks it and renames its new file into place while holding an exclusive
//! lock (`flock`) on one of 64 lock files `DIR/.sessionkit-lock-NN` (chosen by the key), which deletes take too.
//! So between sessionkit processes a save never overwrites a write it did not see and never brings back a deleted
//! session. Django's own file backend takes no lock: its writes are last-write-wins against ours, as among
//! Django processes. The lock files are hidden and do not start with the cookie name, so Django and the lister
//! ignore them.
//!
//! # Differences from Django's file backend (deliberate)
//!
//! - `save` of a session whose file is gone fails with [`StoreError::SessionVanished`] (Django's file backend
//!   re-creates the file). The store contract demands it: a logout in a concurrent request must stay a logout.
//! - Corrupt data (bad signature, not ASCII, larger than the codec's 1 MiB token limit) loads as an empty session
//!   under the same key, logged on target `sessionkit::corrupt`. Django moves such a session to a fresh key, and
//!   crashes on non-ASCII bytes. Files larger than the limit are not read at all.
//! - An integer `_session_expiry` (N seconds of inactivity) expires N seconds after the file's mtime, the meaning
//!   Django gives it everywhere else; Django's file backend compares the bare number and never deletes such a file.
//! - An empty file (the placeholder `create` claims before writing, left behind if a writer died) loads as an empty
//!   session, as in Django, but it also expires at mtime + `SESSION_COOKIE_AGE`, so `clear_expired` removes it.
//! - Keys must be [storage-safe](SessionKey::is_storage_safe): `a-z0-9`, at most 64 characters. Django refuses
//!   other characters too (`InvalidSessionKey`) but has no length limit.
//! - [`SessionStore::clear_expired`] also removes abandoned temporary files (`<cookie name><key>_out_*` older than
//!   one day). They are logged, not counted in the returned number, which counts sessions only.
//! - With an idle timeout ([`crate::lifetime`]) a session also expires at mtime + `SESSION_IDLE_TIMEOUT`: the
//!   mtime is the last activity, since every save and every touch (which sets only the mtime) moves it. Django's
//!   file backend does not know the rule and keeps such a file for `SESSION_COOKIE_AGE`.
//! - Anything at a session path that is not a regular file (a symlink, a directory, a FIFO) is ignored by loads.
//!
//! All filesystem work runs on tokio's blocking thread pool (`spawn_blocking`), one task per call.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration as StdDuration, SystemTime};

use async_trait::async_trait;
use rand::Rng;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::merge::{save_merging, CompareAndSet, Saved, WriteOutcome};
use super::{
    ListCursor, RawSession, SessionLister, SessionPage, SessionStore, SignedSessionCodec, StoredSession, Touched,
};
use crate::codec::{CodecError, DecodeLimits};
use crate::expiry::EXPIRY_KEY;
use crate::{ChangeSet, ConfigError, Expiry, SessionKey, SessionRecord, Settings, StoreError, Version};

/// What separates a session file's name from the random part of its temporary files (Django's `mkstemp` prefix).
const TEMP_MARKER: &str = "_out_";
/// Temporary files older than this are abandoned writes; `clear_expired` removes them.
const TEMP_FILE_MAX_AGE: StdDuration = StdDuration::from_secs(24 * 60 * 60);
/// Length of the random part of a temporary file name.
const TEMP_SUFFIX_LEN: usize = 12;
const TEMP_SUFFIX_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
/// Saves and deletes of a session hold one of this many lock files (chosen by the key).
const LOCK_STRIPES: u32 = 64;
/// The name of lock file `n` is this followed by two digits: hidden, and never starting with a cookie name.
const LOCK_FILE_PREFIX: &str = ".sessionkit-lock-";

/// Django's `file` session backend: one signed-token file per session in a directory.
///
/// Cloning is cheap and clones share everything.
#[derive(Debug, Clone)]
pub struct FileStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The session directory, absolute.
    dir: PathBuf,
    /// `SESSION_COOKIE_NAME`: the prefix of every session file name.
    prefix: String,
    codec: SignedSessionCodec,
    /// `SESSION_COOKIE_AGE`, for files without `_session_expiry`.
    cookie_age: i64,
    /// `SESSION_IDLE_TIMEOUT`: a file not written or touched for this long has expired.
    idle_timeout: Option<i64>,
    /// Files larger than this are corrupt and not read (the codec's token limit).
    max_file_bytes: u64,
    fsync: bool,
    describe: String,
}

/// Where the directory came from, for error messages.
enum DirSource {
    Url,
    Setting,
    TempDir,
}

impl FileStore {
    /// Opens the store at `url` (`file:///absolute/dir`, or `file://` for `settings.file_path`, falling back to
    /// the system temp dir) with `settings.secret_key` and `settings.cookie_name`.
    ///
    /// Fails with a [`ConfigError`] when the URL is malformed, the directory does not exist or is not a
    /// directory (Django's `ImproperlyConfigured`), `SECRET_KEY` is empty, or the cookie name cannot be part of
    /// a file name.
    pub async fn open(url: &str, settings: &Settings) -> Result<Self, StoreError> {
        Self::open_with(url, settings, crate::store::Access::ReadWrite).await
    }

    /// [`open`](Self::open); with [`Access::ReadOnly`](crate::store::Access::ReadOnly) a missing `SECRET_KEY` is
    /// accepted (see [`open_store_read_only`](crate::store::open_store_read_only)). Opening never creates the
    /// directory either way.
    pub async fn open_with(url: &str, settings: &Settings, access: crate::store::Access) -> Result<Self, StoreError> {
        let codec = SignedSessionCodec::for_access(settings, access)?;
        let (url_dir, fsync) = parse_url(url)?;
        if settings.cookie_name.is_empty() || !settings.cookie_name.bytes().all(is_cookie_name_byte) {
            return Err(ConfigError::InvalidSetting {
                name: "SESSION_COOKIE_NAME",
                value: settings.cookie_name.clone(),
                expected: "a cookie name (letters, digits, !#$%&'*+-.^_`|~); the file store puts it into file names",
            }
            .into());
        }
        let (dir, source) = match (url_dir, &settings.file_path) {
            (Some(dir), _) => (dir, DirSource::Url),
            (None, Some(dir)) => (dir.clone(), DirSource::Setting),
            (None, None) => (std::env::temp_dir(), DirSource::TempDir),
        };
        let checked = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || -> io::Result<(PathBuf, bool)> {
                let dir = std::path::absolute(&dir)?;
                let is_dir = fs::metadata(&dir).map(|m| m.is_dir()).unwrap_or(false);
                Ok((dir, is_dir))
            })
            .await
        };
        let (dir, is_dir) = match checked {
            Ok(Ok(found)) => found,
            Ok(Err(err)) => return Err(StoreError::unavailable(format!("file://{}", dir.display()), err)),
            Err(err) => return Err(StoreError::unavailable(format!("file://{}", dir.display()), err)),
        };
        if !is_dir {
            return Err(missing_dir_error(url, &dir, source).into());
        }
        let describe = format!("file://{}", dir.display());
        let max_file_bytes = u64::try_from(DecodeLimits::default().max_token_bytes).unwrap_or(u64::MAX);
        let inner = Inner {
            dir,
            prefix: settings.cookie_name.clone(),
            codec,
            cookie_age: settings.cookie_age,
            idle_timeout: settings.idle_timeout,
            max_file_bytes,
            fsync,
            describe,
        };
        Ok(FileStore { inner: Arc::new(inner) })
    }

    /// The session directory (absolute).
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The path of `key`'s session file, or `None` when the key is not storage-safe (such a key never reaches
    /// the filesystem).
    pub fn path_for(&self, key: &SessionKey) -> Option<PathBuf> {
        self.inner.path_for(key)
    }

    /// Runs `work` on the blocking thread pool.
    async fn blocking<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        // Corrupt data found on the blocking thread counts for the load waiting here (`crate::telemetry`).
        match tokio::task::spawn_blocking(move || crate::telemetry::capture_corrupt(|| work(&inner))).await {
            Ok((result, corrupt)) => {
                crate::telemetry::mark_corrupt_if(corrupt);
                result
            }
            Err(err) => Err(StoreError::unavailable(self.inner.describe.clone(), err)),
        }
    }
}

fn missing_dir_error(url: &str, dir: &Path, source: DirSource) -> ConfigError {
    match source {
        DirSource::Url => ConfigError::InvalidStoreUrl {
            url: url.to_owned(),
            reason: format!(
                "the session storage path {:?} doesn't exist or is not a directory; create it or name an existing \
                 directory",
                dir.display().to_string()
            ),
        },
        DirSource::Setting => ConfigError::InvalidSetting {
            name: "SESSION_FILE_PATH",
            value: dir.display().to_string(),
            expected: "an existing directory in which sessions can be stored",
        },
        DirSource::TempDir => ConfigError::InvalidSetting {
            name: "SESSION_FILE_PATH",
            value: dir.display().to_string(),
            expected: "an existing directory (SESSION_FILE_PATH is unset, so the system temp dir is used, and it does \
                       not exist)",
        },
    }
}

/// Splits a `file://` URL into its directory (`None` for `file://` alone) and the `fsync` option.
fn parse_url(url: &str) -> Result<(Option<PathBuf>, bool), ConfigError> {
    let invalid = |reason: String| ConfigError::InvalidStoreUrl { url: url.to_owned(), reason };
    let Some(rest) = url.strip_prefix("file://") else {
        return Err(invalid("file store URLs look like file:///absolute/dir or file://".to_owned()));
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut fsync = false;
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "fsync" => {
                fsync = match value.to_ascii_lowercase().as_str() {
                    "1" | "true" | "yes" | "on" => true,
                    "0" | "false" | "no" | "off" => false,
                    other => return Err(invalid(format!("fsync must be true or false, not {other:?}"))),
                }
            }
            other => return Err(crate::store::url_options::unknown_option(url, "file", other, &["fsync"])),
        }
    }
    if path.is_empty() {
        return Ok((None, fsync));
    }
    if !path.starts_with('/') {
        return Err(invalid(
            "the directory must be an absolute path: file:///absolute/dir (three slashes), or file:// for \
             SESSION_FILE_PATH"
                .to_owned(),
        ));
    }
    if path.contains('#') {
        return Err(invalid("'#' must be percent-encoded (%23) in a directory path".to_owned()));
    }
    let parsed = url::Url::parse(&format!("file://{path}")).map_err(|err| invalid(err.to_string()))?;
    let dir = parsed.to_file_path().map_err(|()| invalid("not a local directory path".to_owned()))?;
    Ok((Some(dir), fsync))
}

/// The bytes Django accepts in `SESSION_COOKIE_NAME` (none of them is `/` or NUL).
fn is_cookie_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// What a directory entry is, judged by its name.
#[derive(Debug, PartialEq, Eq)]
enum EntryName {
    /// `<cookie name><storage-safe key>`.
    Session(SessionKey),
    /// `<cookie name><key>_out_<anything>`: a write in progress or abandoned.
    Temp,
    /// Anything else: not ours, left alone.
    Other,
}

fn classify(prefix: &str, name: &str) -> EntryName {
    let Some(rest) = name.strip_prefix(prefix) else { return EntryName::Other };
    if let Some((key, _)) = rest.split_once(TEMP_MARKER) {
        let key_like = !key.is_empty()
            && key.len() <= crate::key::MAX_STORAGE_KEY_LEN
            && key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        return if key_like { EntryName::Temp } else { EntryName::Other };
    }
    match SessionKey::parse(rest) {
        Ok(key) if key.is_storage_safe() => EntryName::Session(key),
        _ => EntryName::Other,
    }
}

/// A session file as read from disk.
struct FileContent {
    /// The bytes, or `None` when the file is larger than the limit (then it was not read).
    bytes: Option<Vec<u8>>,
    /// The file's size when it was opened.
    len: u64,
    /// Its modification time: when it was last saved.
    mtime: OffsetDateTime,
    /// The open file: kept so the inode cannot be reused while we compare it (see `remove_if_same`).
    file: File,
}

/// What loading a session file found.
enum Loaded {
    Missing,
    Live(SessionRecord),
    /// The session had expired; `removed` tells whether this call deleted its file.
    Expired {
        removed: bool,
    },
}

impl Inner {
    fn path_for(&self, key: &SessionKey) -> Option<PathBuf> {
        key.is_storage_safe().then(|| self.dir.join(format!("{}{}", self.prefix, key.as_str())))
    }

    fn unavailable(&self, err: io::Error) -> StoreError {
        StoreError::unavailable(self.describe.clone(), err)
    }

    /// Reads the session file at `path`, at most `max_file_bytes` of it. `None` when there is none (or when
    /// what is there is not a regular file).
    fn read(&self, path: &Path) -> io::Result<Option<FileContent>> {
        // Look before opening: opening a FIFO would block, and a symlink could point anywhere.
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_file() => {}
            Ok(meta) => {
                tracing::warn!(store = %self.describe, path = %path.display(), file_type = ?meta.file_type(), "not a regular file at a session path; ignored");
                return Ok(None);
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err),
        }
        let file = match File::open(path) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err),
        };
        let meta = file.metadata()?;
        let mtime = file_time(meta.modified()?);
        let len = meta.len();
        if len > self.max_file_bytes {
            return Ok(Some(FileContent { bytes: None, len, mtime, file }));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        (&file).take(self.max_file_bytes.saturating_add(1)).read_to_end(&mut bytes)?;
        let too_long = u64::try_from(bytes.len()).map_or(true, |n| n > self.max_file_bytes);
        let bytes = (!too_long).then_some(bytes);
        Ok(Some(FileContent { bytes, len, mtime, file }))
    }

    /// The session dict in `content`; empty (and logged) when it cannot be decoded.
    fn decode(&self, key: &SessionKey, content: &FileContent) -> Map<String, Value> {
        let Some(bytes) = &content.bytes else {
            tracing::warn!(target: "sessionkit::corrupt", store = %self.describe, key = ?key, bytes = content.len, limit = self.max_file_bytes, "session file larger than the token limit; not read, using an empty session");
            crate::telemetry::mark_corrupt();
            return Map::new();
        };
        if bytes.is_empty() {
            // Django's placeholder: `create` claimed the name and has not renamed the data over it yet.
            return Map::new();
        }
        match std::str::from_utf8(bytes) {
            Ok(token) => self.codec.decode_or_empty(token, key, &self.describe),
            Err(_) => {
                tracing::warn!(target: "sessionkit::corrupt", store = %self.describe, key = ?key, "session file is not ASCII; using an empty session");
                crate::telemetry::mark_corrupt();
                Map::new()
            }
        }
    }

    /// Django's `_expiry_date`: `_session_expiry` when set, else mtime + `SESSION_COOKIE_AGE`; with an idle
    /// timeout, mtime + the timeout when that is earlier.
    fn expires_at(&self, data: &Map<String, Value>, mtime: OffsetDateTime) -> OffsetDateTime {
        let django = Expiry::from_value(data.get(EXPIRY_KEY)).date(mtime, self.cookie_age);
        match self.idle_timeout {
            Some(idle) => django.min(mtime.saturating_add(time::Duration::seconds(idle))),
            None => django,
        }
    }

    /// The touch of an idle timeout: the file's mtime becomes now, under the key's lock; the data stays.
    fn touch(&self, key: &SessionKey) -> Result<Touched, StoreError> {
        let Loaded::Live(_) = self.load(key)? else { return Ok(Touched::Vanished) };
        let Some(path) = self.path_for(key) else { return Ok(Touched::Vanished) };
        let _lock = self.lock(key).map_err(|e| self.unavailable(e))?;
        match OpenOptions::new().write(true).open(&path) {
            Ok(file) => {
                file.set_modified(std::time::SystemTime::now()).map_err(|e| self.unavailable(e))?;
                Ok(Touched::Moved)
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Touched::Vanished),
            Err(err) => Err(self.unavailable(err)),
        }
    }

    /// Loads `key`, deleting its file when it has expired (Django's `load`).
    fn load(&self, key: &SessionKey) -> Result<Loaded, StoreError> {
        let Some(path) = self.path_for(key) else { return Ok(Loaded::Missing) };
        let Some(content) = self.read(&path).map_err(|e| self.unavailable(e))? else { return Ok(Loaded::Missing) };
        let data = self.decode(key, &content);
        let expires_at = self.expires_at(&data, content.mtime);
        // Django's rule: expired once `get_expiry_age` (whole seconds left, floored) is <= 0.
        if Expiry::At(expires_at).age(OffsetDateTime::now_utc(), self.cookie_age) > 0 {
            // The version is the file's content: a save checks the file still holds it.
            let version = content.bytes.map(Version::new);
            return Ok(Loaded::Live(SessionRecord { key: key.clone(), data, expires_at, version }));
        }
        // Under the key's lock: a save renaming a fresh file over this one in between must not lose it.
        let removed = match self.lock(key).and_then(|_lock| remove_if_same(&path, &content.file)) {
            Ok(removed) => removed,
            Err(err) => {
                tracing::warn!(store = %self.describe, key = ?key, error = %err, "could not delete an expired session file");
                false
            }
        };
        Ok(Loaded::Expired { removed })
    }

    /// Writes `token` to a new temporary file next to `path` (mode 0600) and returns its path.
    fn write_temp(&self, path: &Path, token: &[u8]) -> io::Result<PathBuf> {
        let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(TEMP_MARKER);
        for _ in 0..16 {
            let mut candidate = name.clone();
            candidate.push(temp_suffix());
            let temp = path.with_file_name(candidate);
            let mut file = match open_new(&temp) {
                Ok(file) => file,
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(err) => return Err(err),
            };
            let written = file.write_all(token).and_then(|()| if self.fsync { file.sync_all() } else { Ok(()) });
            drop(file);
            return match written {
                Ok(()) => Ok(temp),
                Err(err) => {
                    let _ = fs::remove_file(&temp);
                    Err(err)
                }
            };
        }
        Err(io::Error::new(io::ErrorKind::AlreadyExists, "no free temporary file name after 16 tries"))
    }

    /// Renames `temp` over `path` (removing `temp` if that fails), then fsyncs the directory if configured.
    fn rename_into_place(&self, temp: &Path, path: &Path) -> io::Result<()> {
        if let Err(err) = fs::rename(temp, path) {
            let _ = fs::remove_file(temp);
            return Err(err);
        }
        if self.fsync {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    fn create(&self, key: &SessionKey, token: &[u8]) -> Result<(), StoreError> {
        let path = self.path_for(key).ok_or(StoreError::UnsafeKey)?;
        // Claim the name first: O_CREAT|O_EXCL never overwrites, so two creates of one key cannot both win.
        match open_new(&path) {
            Ok(placeholder) => drop(placeholder),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => return Err(StoreError::KeyCollision),
            Err(err) => return Err(self.unavailable(err)),
        }
        let written = self.write_temp(&path, token).and_then(|temp| {
            fs::rename(&temp, &path).inspect_err(|_| {
                let _ = fs::remove_file(&temp);
            })
        });
        if let Err(err) = written {
            // Give the name back: nothing of this session was written.
            let _ = fs::remove_file(&path);
            return Err(self.unavailable(err));
        }
        if self.fsync {
            sync_dir(&self.dir).map_err(|e| self.unavailable(e))?;
        }
        Ok(())
    }

    /// Takes the exclusive lock of `key`'s stripe (released when the returned file is dropped).
    fn lock(&self, key: &SessionKey) -> io::Result<File> {
        let stripe =
            key.as_str().bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b))) % LOCK_STRIPES;
        let path = self.dir.join(format!("{LOCK_FILE_PREFIX}{stripe:02}"));
        let mut options = OpenOptions::new();
        options.create(true).truncate(false).write(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = match options.open(&path) {
            Ok(file) => file,
            // Made by another user (a Django process sharing the directory): a read-only descriptor locks too.
            Err(err) if err.kind() == io::ErrorKind::PermissionDenied => File::open(&path)?,
            Err(err) => return Err(err),
        };
        file.lock()?;
        Ok(file)
    }

    /// Replaces `key`'s file with `token` if the file exists and, with `expected`, still holds exactly those bytes;
    /// under the key's lock, so no other sessionkit save or delete runs in between.
    fn write_if(&self, key: &SessionKey, token: &[u8], expected: Option<&[u8]>) -> Result<WriteOutcome, StoreError> {
        let path = self.path_for(key).ok_or(StoreError::UnsafeKey)?;
        let _lock = self.lock(key).map_err(|e| self.unavailable(e))?;
        // Only update: a session deleted meanwhile (logout, flush, expiry) must not come back.
        let Some(current) = self.read(&path).map_err(|e| self.unavailable(e))? else {
            return Ok(WriteOutcome::Vanished);
        };
        if let Some(expected) = expected {
            if current.bytes.as_deref() != Some(expected) {
                return Ok(WriteOutcome::Conflict(None));
            }
        }
        drop(current);
        let temp = self.write_temp(&path, token).map_err(|e| self.unavailable(e))?;
        self.rename_into_place(&temp, &path).map_err(|e| self.unavailable(e))?;
        Ok(WriteOutcome::Written(Some(Version::new(token))))
    }

    fn exists(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let Some(path) = self.path_for(key) else { return Ok(false) };
        path.try_exists().map_err(|e| self.unavailable(e))
    }

    fn delete(&self, key: &SessionKey) -> Result<(), StoreError> {
        let Some(path) = self.path_for(key) else { return Ok(()) };
        let _lock = self.lock(key).map_err(|e| self.unavailable(e))?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(self.unavailable(err)),
        }
    }

    fn load_raw(&self, key: &SessionKey) -> Result<Option<RawSession>, StoreError> {
        let Some(path) = self.path_for(key) else { return Ok(None) };
        let Some(content) = self.read(&path).map_err(|e| self.unavailable(e))? else { return Ok(None) };
        let data = self.decode(key, &content);
        let expires_at = Some(self.expires_at(&data, content.mtime));
        match content.bytes {
            Some(bytes) => Ok(Some(RawSession { bytes, expires_at })),
            None => Err(StoreError::Corrupt(format!(
                "session file is {} bytes, more than the {}-byte token limit",
                content.len, self.max_file_bytes
            ))),
        }
    }

    /// One page of session files: a single `read_dir` pass keeps the `page_size` smallest keys after `after`
    /// (memory bounded by the page), then each of them is read. Files that vanish meanwhile are left out.
    fn list_page(&self, after: Option<&str>, page_size: usize) -> Result<SessionPage, StoreError> {
        let page_size = page_size.max(1);
        let entries = fs::read_dir(&self.dir).map_err(|e| self.unavailable(e))?;
        let mut keys: std::collections::BTreeSet<SessionKey> = std::collections::BTreeSet::new();
        for entry in entries {
            let entry = entry.map_err(|e| self.unavailable(e))?;
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str() else { continue };
            let EntryName::Session(key) = classify(&self.prefix, name) else { continue };
            if after.is_some_and(|after| key.as_str() <= after) {
                continue;
            }
            if keys.len() == page_size && keys.last().is_some_and(|last| key >= *last) {
                continue;
            }
            keys.insert(key);
            if keys.len() > page_size {
                keys.pop_last();
            }
        }
        let full = keys.len() == page_size;
        let next = if full { keys.last().map(|k| ListCursor(k.as_str().to_owned())) } else { None };
        let mut sessions = Vec::with_capacity(keys.len());
        for key in keys {
            match self.load_raw(&key) {
                Ok(Some(raw)) => sessions.push(StoredSession { id: key.as_str().to_owned(), key: Some(key), raw }),
                Ok(None) => {}
                Err(StoreError::Corrupt(reason)) => {
                    tracing::warn!(store = %self.describe, key = ?key, %reason, "session file not listed");
                }
                Err(err) => return Err(err),
            }
        }
        Ok(SessionPage { sessions, next })
    }

    fn clear_expired(&self) -> Result<u64, StoreError> {
        let entries = fs::read_dir(&self.dir).map_err(|e| self.unavailable(e))?;
        let temp_cutoff = SystemTime::now().checked_sub(TEMP_FILE_MAX_AGE).unwrap_or(SystemTime::UNIX_EPOCH);
        let (mut sessions, mut temps, mut failures) = (0u64, 0u64, 0u64);
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(err) => {
                    tracing::warn!(store = %self.describe, error = %err, "could not read a directory entry");
                    failures += 1;
                    continue;
                }
            };
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str() else { continue };
            match classify(&self.prefix, name) {
                EntryName::Session(key) => match self.load(&key) {
                    Ok(Loaded::Expired { removed: true }) => sessions += 1,
                    Ok(_) => {}
                    Err(err) => {
                        tracing::warn!(store = %self.describe, key = ?key, error = %err, "could not check a session file");
                        failures += 1;
                    }
                },
                EntryName::Temp => match remove_old_temp(&entry.path(), temp_cutoff) {
                    Ok(removed) => temps += u64::from(removed),
                    Err(err) => {
                        tracing::warn!(store = %self.describe, file = %name, error = %err, "could not remove an abandoned temporary file");
                        failures += 1;
                    }
                },
                EntryName::Other => {}
            }
        }
        tracing::info!(store = %self.describe, removed_sessions = sessions, removed_temp_files = temps, failures, "cleared expired sessions");
        Ok(sessions)
    }
}

/// Creates `path`, failing if it exists, writable, mode 0600 (less if the umask says so).
/// A file time as a date; a time outside what `OffsetDateTime` can hold (a corrupt or hostile mtime) is clamped to
/// the Unix epoch or year 9999 rather than a panic.
fn file_time(at: std::time::SystemTime) -> OffsetDateTime {
    let seconds = match at.duration_since(std::time::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |s| -s),
    };
    let whole = OffsetDateTime::from_unix_timestamp(seconds).unwrap_or(if seconds < 0 {
        OffsetDateTime::UNIX_EPOCH
    } else {
        crate::expiry::clamp_storable(OffsetDateTime::now_utc().saturating_add(time::Duration::MAX))
    });
    let nanos = at.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    whole.replace_nanosecond(nanos).unwrap_or(whole)
}

fn open_new(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

fn temp_suffix() -> String {
    let mut rng = rand::thread_rng();
    (0..TEMP_SUFFIX_LEN)
        .map(|_| char::from(TEMP_SUFFIX_ALPHABET[rng.gen_range(0..TEMP_SUFFIX_ALPHABET.len())]))
        .collect()
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Deletes `path` if it is still the file `opened` (a save may have renamed a new file over it since it was
/// read; that one must survive). Returns whether this call deleted it.
fn remove_if_same(path: &Path, opened: &File) -> io::Result<bool> {
    let current = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(err) => return Err(err),
    };
    if !same_file(&current, &opened.metadata()?) {
        return Ok(false);
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(err),
    }
}

#[cfg(unix)]
fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    a.len() == b.len() && a.modified().ok() == b.modified().ok()
}

/// Removes a temporary file last modified before `cutoff`. Returns whether it did.
fn remove_old_temp(path: &Path, cutoff: SystemTime) -> io::Result<bool> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(err) => return Err(err),
    };
    if !meta.file_type().is_file() || meta.modified()? >= cutoff {
        return Ok(false);
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(err),
    }
}

#[async_trait]
impl SessionStore for FileStore {
    fn describe(&self) -> String {
        self.inner.describe.clone()
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<SessionRecord>, StoreError> {
        if !key.is_storage_safe() {
            return Ok(None);
        }
        let key = key.clone();
        match self.blocking(move |inner| inner.load(&key)).await? {
            Loaded::Live(record) => Ok(Some(record)),
            Loaded::Missing | Loaded::Expired { .. } => Ok(None),
        }
    }

    async fn create(&self, record: &SessionRecord) -> Result<Option<Version>, StoreError> {
        if !record.key.is_storage_safe() {
            return Err(StoreError::UnsafeKey);
        }
        let token = self.inner.codec.encode(&record.data, OffsetDateTime::now_utc());
        let key = record.key.clone();
        self.blocking(move |inner| inner.create(&key, token.as_bytes()).map(|()| Some(Version::new(token)))).await
    }

    async fn save(&self, record: &SessionRecord, changes: &ChangeSet) -> Result<Saved, StoreError> {
        save_merging(self, record, changes).await
    }

    async fn exists(&self, key: &SessionKey) -> Result<bool, StoreError> {
        if !key.is_storage_safe() {
            return Ok(false);
        }
        let key = key.clone();
        self.blocking(move |inner| inner.exists(&key)).await
    }

    async fn touch(&self, record: &SessionRecord) -> Result<Touched, StoreError> {
        let key = record.key.clone();
        self.blocking(move |inner| inner.touch(&key)).await
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), StoreError> {
        if !key.is_storage_safe() {
            return Ok(());
        }
        let key = key.clone();
        self.blocking(move |inner| inner.delete(&key)).await
    }

    /// Loads every session file as Django's `clearsessions` does, deleting the expired ones, and returns how many
    /// it deleted. Abandoned temporary files older than a day are removed too; they are logged, not counted.
    async fn clear_expired(&self) -> Result<u64, StoreError> {
        self.blocking(|inner| inner.clear_expired()).await
    }

    async fn load_raw(&self, key: &SessionKey) -> Result<Option<RawSession>, StoreError> {
        if !key.is_storage_safe() {
            return Ok(None);
        }
        let key = key.clone();
        self.blocking(move |inner| inner.load_raw(&key)).await
    }

    fn lister(&self) -> Option<&dyn SessionLister> {
        Some(self)
    }
}

#[async_trait]
impl CompareAndSet for FileStore {
    async fn write_if(
        &self,
        record: &SessionRecord,
        expected: Option<&Version>,
        _changes: &ChangeSet,
    ) -> Result<WriteOutcome, StoreError> {
        if !record.key.is_storage_safe() {
            // No session can be stored under such a key, so there is none to update.
            return Ok(WriteOutcome::Vanished);
        }
        let token = self.inner.codec.encode(&record.data, OffsetDateTime::now_utc());
        let key = record.key.clone();
        let expected = expected.map(|v| v.as_bytes().to_vec());
        self.blocking(move |inner| inner.write_if(&key, token.as_bytes(), expected.as_deref())).await
    }
}

/// Pages in key order, one directory pass per page; the cursor is the last key of a page. Expiry is Django's:
/// `_session_expiry`, else the file's mtime plus `SESSION_COOKIE_AGE`.
#[async_trait]
impl SessionLister for FileStore {
    async fn list_page(&self, cursor: Option<&ListCursor>, page_size: usize) -> Result<SessionPage, StoreError> {
        let after = cursor.map(|c| c.0.clone());
        self.blocking(move |inner| inner.list_page(after.as_deref(), page_size)).await
    }

    fn decode(&self, raw: &[u8]) -> Result<Map<String, Value>, CodecError> {
        let token = std::str::from_utf8(raw).map_err(|_| CodecError::Malformed("session file is not ASCII"))?;
        self.inner.codec.decode(token)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn file_times_outside_the_calendar_are_clamped() {
        use std::time::{Duration, UNIX_EPOCH};
        assert_eq!(file_time(UNIX_EPOCH + Duration::from_millis(5_500)).unix_timestamp(), 5);
        assert_eq!(file_time(UNIX_EPOCH + Duration::from_secs(1 << 40)).year(), 9999);
        assert!(file_time(UNIX_EPOCH - Duration::from_secs(1 << 40)) <= OffsetDateTime::UNIX_EPOCH);
    }

    #[test]
    fn urls_give_the_directory_and_options() {
        assert_eq!(parse_url("file://").ok(), Some((None, false)));
        assert_eq!(parse_url("file://?fsync=true").ok(), Some((None, true)));
        assert_eq!(parse_url("file:///var/lib/sessions").ok(), Some((Some(PathBuf::from("/var/lib/sessions")), false)));
        assert_eq!(parse_url("file:///a%20b/c?fsync=0").ok(), Some((Some(PathBuf::from("/a b/c")), false)));
        for bad in [
            "file://relative/dir",
            "file:/x",
            "sqlite:///x",
            "file:///x?fsync=maybe",
            "file:///x?mode=1",
            "file:///x#y",
        ] {
            assert!(matches!(parse_url(bad), Err(ConfigError::InvalidStoreUrl { .. })), "{bad}");
        }
    }

    #[test]
    fn classifies_directory_entries_like_django_plus_temp_files() {
        let key = "ddbs54wf03km6pul4bbsuhjr4ln194mn";
        assert!(
            matches!(classify("sessionid", &format!("sessionid{key}")), EntryName::Session(k) if k.as_str() == key)
        );
        assert_eq!(classify("sessionid", &format!("sessionid{key}_out_ab12_x")), EntryName::Temp);
        for other in [
            "notes.txt".to_owned(),
            format!("other{key}"),
            "sessionidshort".to_owned(),
            format!("sessionid{}", key.to_uppercase()),
            format!("sessionid{}", "a".repeat(65)),
            "sessionid_out_x".to_owned(),
            "sessionidAB_out_x".to_owned(),
        ] {
            assert_eq!(classify("sessionid", &other), EntryName::Other, "{other}");
        }
    }

    /// The removal of an expired file waits for the key's lock: a save holding it may be renaming a fresh file
    /// over the expired one, which must not be deleted right after.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_expired_file_is_removed_under_the_keys_lock() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let store = FileStore::open(&url, &crate::Settings::with_secret_key("file-lock")).await.unwrap();
        let key = SessionKey::generate();
        let record = SessionRecord::new(key.clone(), Map::new(), OffsetDateTime::now_utc() + time::Duration::hours(1));
        store.create(&record).await.unwrap();
        let path = store.path_for(&key).unwrap();
        let weeks_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(30 * 24 * 3600);
        File::options().write(true).open(&path).unwrap().set_modified(weeks_ago).unwrap();

        let lock = store.inner.lock(&key).unwrap(); // a save of this key is in progress
        let load = tokio::spawn({
            let store = FileStore { inner: Arc::clone(&store.inner) };
            let key = key.clone();
            async move { store.load(&key).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(path.exists(), "the expired file was removed while a save held the key's lock");
        drop(lock);
        assert!(load.await.unwrap().unwrap().is_none(), "expired: no session");
        assert!(!path.exists(), "removed once the lock was free");
    }
}
