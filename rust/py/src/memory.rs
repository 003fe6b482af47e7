//! Memory figures of the process and the pressure monitor.

use std::sync::{Mutex, MutexGuard, PoisonError};

use interactsh_core::limit::{self, CgroupVersion, LimitSource, MemoryLimits};
use interactsh_core::pressure::{self, Level, Thresholds};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use pyo3::types::PyDict;

use crate::errors::{limit_err, pressure_err};

/// A level change as `observe` returns it: from, to, and resident bytes over the limit.
type TransitionTuple = (&'static str, &'static str, f64);

/// Return the resident set size of this process in bytes, from `/proc/self/statm`.
#[pyfunction]
pub(crate) fn resident_bytes(py: Python<'_>) -> PyResult<u64> {
    py.detach(limit::resident_bytes).map_err(limit_err)
}

/// Return the effective memory limit in bytes and what sets it.
///
/// The limit is the lowest of `configured_bytes`, the cgroup limit of this
/// process and physical memory. The source is "configured", "cgroup-v2",
/// "cgroup-v1", "physical", or "none" with a limit of `None`.
#[pyfunction]
#[pyo3(signature = (configured_bytes))]
pub(crate) fn effective_limit(py: Python<'_>, configured_bytes: Option<i64>) -> PyResult<(Option<u64>, &'static str)> {
    let configured = configured_bytes
        .map(|bytes| {
            u64::try_from(bytes).map_err(|_| {
                PyValueError::new_err(format!(
                    "configured memory limit {bytes} is negative: use a number of bytes"
                ))
            })
        })
        .transpose()?;
    let limits = py.detach(|| MemoryLimits::detect(configured)).map_err(limit_err)?;
    Ok((limits.effective(), source_name(&limits)))
}

fn source_name(limits: &MemoryLimits) -> &'static str {
    match limits.source() {
        None => "none",
        Some(LimitSource::Configured) => "configured",
        Some(LimitSource::Physical) => "physical",
        Some(LimitSource::Cgroup) => match limits.cgroup.as_ref().map(|cgroup| cgroup.version) {
            Some(CgroupVersion::V1) => "cgroup-v1",
            _ => "cgroup-v2",
        },
    }
}

/// Return the resident bytes that eviction at High and Critical aims for: 70 % of `limit`.
#[pyfunction]
pub(crate) fn eviction_target(limit: u64) -> u64 {
    pressure::eviction_target(limit)
}

/// Tracks the memory pressure level across resident-set samples, with hysteresis.
#[pyclass(module = "interactsh._core", name = "PressureMonitor", frozen)]
pub(crate) struct PressureMonitor {
    inner: Mutex<pressure::PressureMonitor>,
}

#[pymethods]
impl PressureMonitor {
    /// Create a monitor at level "none"; thresholds are fractions of the limit.
    #[new]
    #[pyo3(signature = (*, low = 0.40, medium = 0.60, high = 0.80, critical = 0.90, margin = 0.05))]
    fn new(low: f64, medium: f64, high: f64, critical: f64, margin: f64) -> PyResult<Self> {
        let thresholds = Thresholds {
            low,
            medium,
            high,
            critical,
            margin,
        };
        let monitor = pressure::PressureMonitor::with_thresholds(thresholds).map_err(pressure_err)?;
        Ok(Self {
            inner: Mutex::new(monitor),
        })
    }

    /// Record a sample; return (from, to, ratio) when the level changes, else None.
    fn observe(&self, py: Python<'_>, rss: u64, limit: u64) -> Option<TransitionTuple> {
        let transition = self.lock(py).observe(rss, limit)?;
        Some((transition.from.as_str(), transition.to.as_str(), transition.ratio))
    }

    /// The current level: "none", "low", "medium", "high" or "critical".
    #[getter]
    fn level(&self, py: Python<'_>) -> &'static str {
        self.lock(py).level().as_str()
    }

    /// Return the resident bytes the current level requires freeing: the excess over 70 % at High and Critical.
    fn bytes_to_free(&self, py: Python<'_>, rss: u64, limit: u64) -> u64 {
        self.lock(py).bytes_to_free(rss, limit)
    }

    /// Return the counters: level, samples, samples and entries per level, latest and peak ratio.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = self.lock(py).stats();
        let samples_at = PyDict::new(py);
        let entered = PyDict::new(py);
        for (index, level) in Level::ALL.into_iter().enumerate() {
            samples_at.set_item(level.as_str(), stats.samples_at[index])?;
            entered.set_item(level.as_str(), stats.entered[index])?;
        }
        let dict = PyDict::new(py);
        dict.set_item("level", stats.level.as_str())?;
        dict.set_item("samples", stats.samples)?;
        dict.set_item("samples_at", samples_at)?;
        dict.set_item("entered", entered)?;
        dict.set_item("last_ratio", stats.last_ratio)?;
        dict.set_item("peak_ratio", stats.peak_ratio)?;
        Ok(dict)
    }
}

impl PressureMonitor {
    fn lock(&self, py: Python<'_>) -> MutexGuard<'_, pressure::PressureMonitor> {
        self.inner.lock_py_attached(py).unwrap_or_else(PoisonError::into_inner)
    }
}
