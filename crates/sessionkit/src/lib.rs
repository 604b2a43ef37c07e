//! # sessionkit
//!
//! Django's session engine (`django.contrib.sessions`) in Rust. It reads and writes Django's own formats byte
//! for byte, so a Django site and Rust services can share one login cookie.
//!
//! The pieces, from the bottom up:
//! - [`codec`]: Django's signing (`django.core.signing`), Python-compatible JSON and base62. Pure functions.
//! - [`SessionKey`], [`SessionData`], [`expiry`]: the session itself and Django's expiry rules. No I/O.
//! - [`SessionStore`]: the async storage contract (load, create, save, exists, delete, clear_expired),
//!   with one implementation per module under [`store`].
//! - [`Session`]: what a request works with: lazy loading, change tracking, `cycle_key`, `flush`.
//! - [`Settings`]: Django's `SESSION_*` settings with Django's defaults; [`lifetime`]: the idle timeout and
//!   absolute lifetime sessionkit adds (off by default).
//! - [`auth`]: the Django auth bridge: which verified Django user a session belongs to.
//! - [`audit`]: a hook that receives session events (login, logout, revocation, expiry, merged writes).
//! - [`telemetry`]: the metrics and tracing spans every store call records (through the `metrics` and `tracing`
//!   facades; no exporter).
//!
//! HTTP lives elsewhere (`sessionkit-tower`); this crate knows nothing about requests or cookies.

pub mod audit;
pub mod auth;
pub mod codec;
mod data;
mod error;
pub mod expiry;
mod key;
pub mod lifetime;
mod record;
mod secret;
mod session;
mod settings;
pub mod store;
pub mod telemetry;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use data::{ChangeSet, SaveMode, SessionData};
pub use error::{ConfigError, StoreError};
pub use expiry::Expiry;
pub use key::{InvalidKey, SessionKey};
pub use record::{SessionRecord, Version};
pub use secret::SecretKey;
pub use session::{Session, SessionError};
pub use settings::{SameSite, Settings};
pub use store::{open_store, SessionStore};

/// JSON values as sessions hold them (`serde_json::Value`, insertion-ordered, integers of any size kept exact).
pub use serde_json::Value;
