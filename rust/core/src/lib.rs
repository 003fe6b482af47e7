//! The interaction store and cryptography of an Interactsh-compatible
//! out-of-band interaction server, in pure Rust.
//!
//! A [`Store`] keeps sessions keyed by correlation id. Each session queues
//! interaction records (UTF-8 JSON documents) that are encrypted for the
//! session's client only when polled, with the AES key that
//! [`crypto::SessionKey`] wrapped for the client's RSA key at registration.
//! Two shared buckets, `extra` and `tlddata`, hold plaintext records that
//! every consumer reads through its own read offset.
//!
//! The crate reads no clock and logs nothing: callers pass the time as `now`
//! and read counters from [`Store::stats`].
//!
//! ```
//! use interactsh_core::{SharedBucket, Store, StoreOptions};
//!
//! let mut store = Store::new(StoreOptions::default()).unwrap();
//! store.push_shared(SharedBucket::Extra, br#"{"protocol":"ftp"}"#, 0.0).unwrap();
//! assert_eq!(store.stats(0.0).shared_items, 1);
//! ```

#![warn(missing_docs)]

pub mod crypto;
pub mod error;
pub mod ids;
pub mod limit;
pub mod pressure;
pub mod slab;
mod store;

pub use crate::crypto::{AesMode, Sealer, SessionKey};
pub use crate::error::{Error, IdError, KeyError, Rejected};
pub use crate::store::{
    Eviction, PollPage, PollReceipt, PollSummary, SharedBucket, SharedRequest, Store, StoreOptions, StoreStats,
    EVICTION_HEADROOM_DIVISOR, RECORD_OVERHEAD,
};
