//! The `Store` class: the core store behind a mutex.

use std::sync::{Mutex, MutexGuard, PoisonError};

use interactsh_core as core;
use interactsh_core::slab::PoolStats;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

use crate::errors::to_py_err;

/// A poll reply as a tuple: body, lowercased correlation id, data count,
/// last data sequence number, and the `extra` and `tlddata` read offsets.
type PollTuple<'py> = (Bound<'py, PyBytes>, String, usize, u64, Option<u64>, Option<u64>);

/// The counters of `StoreStats`, in its field order, without `pool`.
type StatsTuple = (usize, usize, usize, usize, usize, u64, u64, u64, usize, u64, u64, u64);

/// The interaction store of `interactsh-core`, shared by every Python thread.
#[pyclass(module = "interactsh._core", name = "Store", frozen)]
pub(crate) struct Store {
    inner: Mutex<core::Store>,
    /// The buffer that the last poll wrote its body into, kept so that the
    /// next poll writes into it without allocating. Concurrent polls each take
    /// their own; the last one to finish puts its buffer back.
    body: Mutex<String>,
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
        max_shared_bytes,
        max_total_bytes,
        pooled,
        idle_eviction_seconds,
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
        max_shared_bytes: i64,
        max_total_bytes: Option<i64>,
        pooled: bool,
        idle_eviction_seconds: f64,
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
                max_shared_bytes: count("max_shared_bytes", max_shared_bytes)?,
                max_total_bytes: max_total_bytes
                    .map(|bytes| count("max_total_bytes", bytes))
                    .transpose()?,
                pooled,
                idle_eviction_seconds,
            };
            core::Store::new(options)
        };
        let store = build().map_err(|error| to_py_err(py, error))?;
        Ok(Self {
            inner: Mutex::new(store),
            body: Mutex::new(String::new()),
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
    fn append(&self, py: Python<'_>, correlation_id: &Bound<'_, PyString>, record: &[u8], now: f64) -> PyResult<bool> {
        let correlation_id = correlation_id.to_string_lossy();
        let result = self.lock_attached(py).push(&correlation_id, record, now);
        result.map_err(|error| to_py_err(py, error))
    }

    /// Add a copy of `record` to the `extra` or `tlddata` bucket.
    fn append_shared(&self, py: Python<'_>, bucket: &str, record: &[u8], now: f64) -> PyResult<()> {
        let bucket: core::SharedBucket = bucket.parse().map_err(|error| to_py_err(py, error))?;
        let result = self.lock_attached(py).push_shared(bucket, record, now);
        result.map_err(|error| to_py_err(py, error))
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
        let (result, body) = py.detach(|| {
            let mut body = std::mem::take(&mut *lock(&self.body));
            let result = lock(&self.inner).poll_into(&correlation_id, &secret, shared, now, &mut body);
            (result, body)
        });
        let page = result.map(|summary| (PyBytes::new(py, body.as_bytes()), summary));
        *self.body.lock_py_attached(py).unwrap_or_else(PoisonError::into_inner) = body;
        let (body, summary) = page.map_err(|error| to_py_err(py, error))?;
        let receipt = summary.receipt;
        Ok((
            body,
            correlation_id.to_ascii_lowercase(),
            summary.data_count,
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
        correlation_id: &Bound<'_, PyString>,
        last_data_seq: u64,
        extra_offset: Option<u64>,
        tlddata_offset: Option<u64>,
    ) {
        let receipt = core::PollReceipt {
            last_data_seq,
            extra_offset,
            tlddata_offset,
        };
        let correlation_id = correlation_id.to_string_lossy();
        self.lock_attached(py).commit(&correlation_id, &receipt);
    }

    /// Remove sessions whose time to live has passed; return how many went.
    fn expire(&self, py: Python<'_>, now: f64) -> usize {
        self.lock_attached(py).expire(now)
    }

    /// Remove sessions idle for `idle_seconds` or past their TTL; return how many went.
    fn expire_idle(&self, py: Python<'_>, idle_seconds: f64, now: f64) -> PyResult<usize> {
        let result = self.lock_attached(py).expire_idle(idle_seconds, now);
        result.map_err(|error| to_py_err(py, error))
    }

    /// Evict the oldest records of idle sessions until the total is at most `target_bytes`.
    fn evict(&self, py: Python<'_>, target_bytes: i64, now: f64) -> PyResult<usize> {
        let target = usize::try_from(target_bytes).map_err(|_| {
            PyValueError::new_err(format!(
                "eviction target {target_bytes} is negative: use 0 or more bytes"
            ))
        })?;
        Ok(self.lock_attached(py).evict(target, now))
    }

    /// Set the byte budget, or `None` for none.
    fn set_budget(&self, py: Python<'_>, max_total_bytes: Option<i64>) -> PyResult<()> {
        let set = |store: &mut core::Store| -> Result<(), core::Error> {
            let budget = max_total_bytes
                .map(|bytes| {
                    usize::try_from(bytes).map_err(|_| core::Error::InvalidArgument {
                        name: "max_total_bytes",
                        reason: format!("{bytes} is below 1: use at least 1 byte, or None for no budget"),
                    })
                })
                .transpose()?;
            store.set_budget(budget)
        };
        let result = set(&mut self.lock_attached(py));
        result.map_err(|error| to_py_err(py, error))
    }

    /// Return free memory of the pool and the queues to the allocator; return the bytes released.
    fn shrink(&self, py: Python<'_>) -> usize {
        py.detach(|| lock(&self.inner).shrink())
    }

    /// Return the fields of `StoreStats` but `pool` as a tuple, in its field order, counting sessions live at `now`.
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
            stats.total_bytes,
            stats.evicted_items,
            stats.refused_items,
            stats.refused_sessions,
        )
    }

    /// Return the slab pool's figures as a dict, with one dict per size class under `classes`.
    fn pool_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = self.lock_attached(py).pool_stats();
        pool_stats_dict(py, &stats)
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

/// Locks a mutex from a thread that does not hold the GIL.
///
/// A panic while the lock was held would poison it; the store's totals are
/// updated after each change is complete, so the data stays usable.
fn lock<T>(inner: &Mutex<T>) -> MutexGuard<'_, T> {
    inner.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Builds the dict of `Store.pool_stats`.
fn pool_stats_dict<'py>(py: Python<'py>, stats: &PoolStats) -> PyResult<Bound<'py, PyDict>> {
    let classes = PyList::empty(py);
    for class in &stats.classes {
        let entry = PyDict::new(py);
        entry.set_item("chunk_size", class.chunk_size)?;
        entry.set_item("pages", class.pages)?;
        entry.set_item("free_pages", class.free_pages)?;
        entry.set_item("chunks_used", class.chunks_used)?;
        entry.set_item("chunks_free", class.chunks_free)?;
        entry.set_item("bytes_requested", class.bytes_requested)?;
        entry.set_item("bytes_held", class.bytes_held)?;
        classes.append(entry)?;
    }
    let dict = PyDict::new(py);
    dict.set_item("pooled", stats.pooled)?;
    dict.set_item("payloads", stats.payloads)?;
    dict.set_item("pages", stats.pages)?;
    dict.set_item("free_pages", stats.free_pages)?;
    dict.set_item("large_payloads", stats.large_payloads)?;
    dict.set_item("large_bytes", stats.large_bytes)?;
    dict.set_item("bytes_requested", stats.bytes_requested)?;
    dict.set_item("bytes_held", stats.bytes_held)?;
    dict.set_item("bytes_overhead", stats.bytes_overhead)?;
    dict.set_item("classes", classes)?;
    Ok(dict)
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
