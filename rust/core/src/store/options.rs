//! Limits and policies of a [`Store`](super::Store).

use std::fmt;
use std::str::FromStr;

use crate::crypto::AesMode;
use crate::error::Error;

/// The rule by which a session's time to live is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Eviction {
    /// From the owner's last successful register or poll; inbound
    /// interactions never extend it.
    #[default]
    Sliding,
    /// From the session's first registration.
    Fixed,
}

impl Eviction {
    /// Returns the strategy's name as `-eviction-strategy` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sliding => "sliding",
            Self::Fixed => "fixed",
        }
    }
}

impl FromStr for Eviction {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self, Error> {
        match value {
            "sliding" => Ok(Self::Sliding),
            "fixed" => Ok(Self::Fixed),
            _ => Err(Error::InvalidOption {
                name: "eviction_strategy",
                reason: format!("{value:?} is not a strategy: use sliding or fixed"),
            }),
        }
    }
}

impl fmt::Display for Eviction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Limits and policies of a store; the defaults are those of `StoreOptions`
/// in `interactsh.store.base`.
///
/// Sizes are bytes of plaintext records, durations are seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreOptions {
    /// Number of `[a-z0-9]` characters in a correlation id (`-cidl`).
    pub correlation_id_length: usize,
    /// AES mode of sessions whose registration does not choose one.
    pub aes_mode: AesMode,
    /// Session time to live, or `None` for sessions that never expire.
    pub ttl_seconds: Option<f64>,
    /// The rule by which the time to live is counted.
    pub eviction: Eviction,
    /// Records a session queues before its oldest ones are dropped.
    pub max_session_items: usize,
    /// Bytes a session queues before its oldest records are dropped.
    pub max_session_bytes: usize,
    /// Records each shared bucket keeps; older ones are dropped on insert.
    pub max_shared_items: usize,
    /// Records per list (`data`, `extra`, `tlddata`) in one poll reply.
    pub max_page_items: usize,
    /// Plaintext bytes per list in one poll reply, except that a list always
    /// takes its first queued record.
    pub max_page_bytes: usize,
    /// Bytes each shared bucket keeps; older records are dropped on insert.
    pub max_shared_bytes: usize,
    /// The byte budget of [`StoreStats::total_bytes`](super::StoreStats::total_bytes), or `None` for none.
    pub max_total_bytes: Option<usize>,
    /// Whether payloads live in slab pools (`true`) or each in its own allocation.
    pub pooled: bool,
    /// Seconds without a register or poll after which a session is idle, so
    /// that its records may be evicted.
    pub idle_eviction_seconds: f64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            correlation_id_length: 20,
            aes_mode: AesMode::Ctr,
            ttl_seconds: Some(30.0 * 86_400.0),
            eviction: Eviction::Sliding,
            max_session_items: 10_000,
            max_session_bytes: 16 * 1024 * 1024,
            max_shared_items: 10_000,
            max_page_items: 5_000,
            max_page_bytes: 8 * 1024 * 1024,
            max_shared_bytes: 16 * 1024 * 1024,
            max_total_bytes: None,
            pooled: true,
            idle_eviction_seconds: 60.0,
        }
    }
}

impl StoreOptions {
    /// Checks that every limit is usable.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] for the first option out of range.
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(ttl) = self.ttl_seconds {
            if !(ttl.is_finite() && ttl > 0.0) {
                return Err(Error::InvalidOption {
                    name: "ttl_seconds",
                    reason: format!("{ttl} is not a positive number of seconds: use None to disable expiry"),
                });
            }
        }
        let counts = [
            ("correlation_id_length", self.correlation_id_length),
            ("max_session_items", self.max_session_items),
            ("max_session_bytes", self.max_session_bytes),
            ("max_shared_items", self.max_shared_items),
            ("max_page_items", self.max_page_items),
            ("max_page_bytes", self.max_page_bytes),
            ("max_shared_bytes", self.max_shared_bytes),
            // No budget (None) is valid; only a budget of 0 is not.
            ("max_total_bytes", self.max_total_bytes.unwrap_or(1)),
        ];
        for (name, value) in counts {
            if value == 0 {
                return Err(Error::InvalidOption {
                    name,
                    reason: "0 is too small: the minimum is 1".to_owned(),
                });
            }
        }
        check_seconds(self.idle_eviction_seconds).map_err(|reason| Error::InvalidOption {
            name: "idle_eviction_seconds",
            reason,
        })
    }
}

/// Checks that `seconds` is a finite number, 0 or more, and returns the reason when it is not.
pub(crate) fn check_seconds(seconds: f64) -> Result<(), String> {
    if seconds.is_finite() && seconds >= 0.0 {
        return Ok(());
    }
    Err(format!("{seconds} is not a finite number of seconds of 0 or more"))
}
