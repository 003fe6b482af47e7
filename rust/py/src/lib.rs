//! PyO3 bindings: the `interactsh._core` extension module.
//!
//! Glue only. `Store` wraps the core store behind a mutex, converts
//! arguments and results, and maps errors through `errors::to_py_err`.
//! Registration (RSA-OAEP) and polling (AES and base64 over a whole page)
//! run without the GIL.

mod errors;

use std::sync::{Mutex, MutexGuard, PoisonError};

use interactsh_core as core;
use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use pyo3::types::{PyBytes, PyString};

use crate::errors::to_py_err;

/// A poll reply as a tuple: body, lowercased correlation id, data count,
/// last data sequence number, and the `extra` and `tlddata` read offsets.
type PollTuple<'py> = (Bound<'py, PyBytes>, String, usize, u64, Option<u64>, Option<u64>);

/// The counters of `StoreStats`, in its field order.
type StatsTuple = (usize, usize, usize, usize, usize, u64, u64, u64);

/// The interaction store of `interactsh-core`, shared by every Python thread.
#[pyclass(module = "interactsh._core", name = "Store", frozen)]
struct Store {
    inner: Mutex<core::Store>,
}

#[pymethods]
impl Store {
    /// Create a store; `interactsh.store.base.StoreOptions` holds the defaults.
    #[new]
    #[pyo3(signature = (
        *,
        correlation_id_length,
        aes_mode,
        ttl_seconds,
        eviction_strategy,
        max_session_items,
        max_session_bytes,
        max_shared_items,
        max_page_items,
        max_page_bytes,
    ))]
    #[allow(
        clippy::too_many_arguments,
        reason = "one keyword argument per field of StoreOptions"
    )]
    fn new(
        py: Python<'_>,
        correlation_id_length: i64,
        aes_mode: &str,
        ttl_seconds: Option<f64>,
        eviction_strategy: &str,
        max_session_items: i64,
        max_session_bytes: i64,
        max_shared_items: i64,
        max_page_items: i64,
        max_page_bytes: i64,
    ) -> PyResult<Self> {
        let build = || -> Result<core::Store, core::Error> {
            let options = core::StoreOptions {
                correlation_id_length: count("correlation_id_length", correlation_id_length)?,
                aes_mode: aes_mode.parse()?,
                ttl_seconds,
                eviction: eviction_strategy.parse()?,
                max_session_items: count("max_session_items", max_session_items)?,
                max_session_bytes: count("max_session_bytes", max_session_bytes)?,
                max_shared_items: count("max_shared_items", max_shared_items)?,
                max_page_items: count("max_page_items", max_page_items)?,
                max_page_bytes: count("max_page_bytes", max_page_bytes)?,
            };
            core::Store::new(options)
        };
        let store = build().map_err(|error| to_py_err(py, error))?;
        Ok(Self {
            inner: Mutex::new(store),
        })
    }

    /// Register a session or refresh it; `True` for a new session.
    #[pyo3(signature = (correlation_id, secret, public_key, aes_mode, now))]
    fn register(
        &self,
        py: Python<'_>,
        correlation_id: &Bound<'_, PyString>,
        secret: &Bound<'_, PyString>,
        public_key: &Bound<'_, PyString>,
        aes_mode: Option<&Bound<'_, PyString>>,
        now: f64,
    ) -> PyResult<bool> {
        let mode = match aes_mode {
            Some(mode) => Some(mode.to_string_lossy().parse().map_err(|error| to_py_err(py, error))?),
            None => None,
        };
        let correlation_id = correlation_id.to_string_lossy();
        let secret = secret_bytes(secret)?;
        let public_key = public_key.to_string_lossy();
        py.detach(|| lock(&self.inner).register(&correlation_id, &secret, &public_key, mode, now))
            .map_err(|error| to_py_err(py, error))
    }

    /// Remove a session, its queue and its shared read offsets.
    fn deregister(
        &self,
        py: Python<'_>,
        correlation_id: &Bound<'_, PyString>,
        secret: &Bound<'_, PyString>,
        now: f64,
    ) -> PyResult<()> {
        let secret = secret_bytes(secret)?;
        let correlation_id = correlation_id.to_string_lossy();
        let result = self.lock_attached(py).deregister(&correlation_id, &secret, now);
        result.map_err(|error| to_py_err(py, error))
    }

    /// Tell whether a live session has this id.
    fn contains(&self, py: Python<'_>, correlation_id: &Bound<'_, PyString>, now: f64) -> bool {
        let correlation_id = correlation_id.to_string_lossy();
        self.lock_attached(py).contains(&correlation_id, now)
    }

    /// Queue a copy of `record` for a live session; `False` when there is none.
    fn append(&self, py: Python<'_>, correlation_id: &Bound<'_, PyString>, record: &[u8], now: f64) -> bool {
        let correlation_id = correlation_id.to_string_lossy();
        self.lock_attached(py).push(&correlation_id, record, now)
    }

    /// Add a copy of `record` to the `extra` or `tlddata` bucket.
    fn append_shared(&self, py: Python<'_>, bucket: &str, record: &[u8]) -> PyResult<()> {
        let bucket: core::SharedBucket = bucket.parse().map_err(|error| to_py_err(py, error))?;
        self.lock_attached(py).push_shared(bucket, record);
        Ok(())
    }

    /// Build the next page without removing anything; see `PollTuple` for the result.
    #[pyo3(signature = (correlation_id, secret, extra, tlddata, now))]
    fn poll<'py>(
        &self,
        py: Python<'py>,
        correlation_id: &Bound<'py, PyString>,
        secret: &Bound<'py, PyString>,
        extra: bool,
        tlddata: bool,
        now: f64,
    ) -> PyResult<PollTuple<'py>> {
        let correlation_id = correlation_id.to_string_lossy();
        let secret = secret_bytes(secret)?;
        let shared = core::SharedRequest { extra, tlddata };
        let page = py
            .detach(|| lock(&self.inner).poll(&correlation_id, &secret, shared, now))
            .map_err(|error| to_py_err(py, error))?;
        let receipt = page.receipt;
        Ok((
            PyBytes::new(py, &page.body),
            receipt.correlation_id,
            page.data_count,
            receipt.last_data_seq,
            receipt.extra_offset,
            receipt.tlddata_offset,
        ))
    }

    /// Remove what a poll reply delivered; a second commit does nothing.
    #[pyo3(signature = (correlation_id, last_data_seq, extra_offset, tlddata_offset))]
    fn commit(
        &self,
        py: Python<'_>,
        correlation_id: String,
        last_data_seq: u64,
        extra_offset: Option<u64>,
        tlddata_offset: Option<u64>,
    ) {
        let receipt = core::PollReceipt {
            correlation_id,
            last_data_seq,
            extra_offset,
            tlddata_offset,
        };
        self.lock_attached(py).commit(&receipt);
    }

    /// Remove sessions whose time to live has passed; return how many went.
    fn expire(&self, py: Python<'_>, now: f64) -> usize {
        self.lock_attached(py).expire(now)
    }

    /// Return the fields of `StoreStats` as a tuple, in its field order, counting sessions live at `now`.
    fn stats(&self, py: Python<'_>, now: f64) -> StatsTuple {
        let stats = self.lock_attached(py).stats(now);
        (
            stats.sessions,
            stats.queued_items,
            stats.queued_bytes,
            stats.shared_items,
            stats.shared_bytes,
            stats.dropped_items,
            stats.dropped_shared_items,
            stats.expired_sessions,
        )
    }

    /// Return the number of sessions live at `now`.
    fn live_len(&self, py: Python<'_>, now: f64) -> usize {
        self.lock_attached(py).live_len(now)
    }

    /// Return the number of sessions held, including expired ones not yet removed.
    fn __len__(&self, py: Python<'_>) -> usize {
        self.lock_attached(py).len()
    }
}

impl Store {
    /// Locks the store, waiting without the GIL only when another thread holds it.
    fn lock_attached(&self, py: Python<'_>) -> MutexGuard<'_, core::Store> {
        self.inner.lock_py_attached(py).unwrap_or_else(PoisonError::into_inner)
    }
}

/// Locks the store from a thread that does not hold the GIL.
///
/// A panic while the lock was held would poison it; the store's totals are
/// updated after each change is complete, so the data stays usable.
fn lock(inner: &Mutex<core::Store>) -> MutexGuard<'_, core::Store> {
    inner.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Returns the UTF-8 bytes of a secret, keeping lone surrogates distinct
/// (as `surrogatepass` does) rather than replacing them.
fn secret_bytes(secret: &Bound<'_, PyString>) -> PyResult<Vec<u8>> {
    if let Ok(text) = secret.to_str() {
        return Ok(text.as_bytes().to_vec());
    }
    let encoded = secret.call_method1("encode", ("utf-8", "surrogatepass"))?;
    Ok(encoded.cast_into::<PyBytes>()?.as_bytes().to_vec())
}

/// Converts a Python integer option into a count, naming the option when it is negative.
fn count(name: &'static str, value: i64) -> Result<usize, core::Error> {
    usize::try_from(value).map_err(|_| core::Error::InvalidOption {
        name,
        reason: format!("{value} is negative: use a positive number"),
    })
}

/// Initializes the `interactsh._core` module: the `Store` class and the accepted RSA key sizes.
#[pymodule]
fn _core(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Store>()?;
    module.add("MIN_RSA_BITS", core::crypto::MIN_RSA_BITS)?;
    module.add("MAX_RSA_BITS", core::crypto::MAX_RSA_BITS)?;
    Ok(())
}
