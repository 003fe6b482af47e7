//! The one place where core errors become Python exceptions.
//!
//! Each store error becomes an instance of its class in `interactsh.errors`,
//! so Python code catches the same classes whichever store engine runs.
//! Errors of the memory readers become `OSError`, and invalid pressure
//! thresholds `ValueError`.

use interactsh_core::limit::LimitError;
use interactsh_core::pressure::PressureError;
use interactsh_core::Error;
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

static ERRORS_MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// Converts a core error into an instance of its `interactsh.errors` class.
///
/// Option, argument and bucket errors are programming errors of the caller
/// and become plain `ValueError`s. Every way a write can fail to fit the
/// store's memory becomes `StoreFullError`, a `MemoryError`.
pub(crate) fn to_py_err(py: Python<'_>, error: Error) -> PyErr {
    let class_name = match &error {
        Error::InvalidCorrelationId(_) => "InvalidCorrelationIdError",
        Error::InvalidPublicKey(_) => "InvalidPublicKeyError",
        Error::InvalidAesMode { .. } => "InvalidAesModeError",
        Error::AlreadyRegistered => "AlreadyRegisteredError",
        Error::SessionNotFound => "SessionNotFoundError",
        Error::StoreFull { .. } | Error::LargerThanBudget { .. } | Error::Pool(_) => "StoreFullError",
        Error::InvalidOption { .. } | Error::InvalidArgument { .. } | Error::InvalidBucket { .. } => {
            return PyValueError::new_err(error.to_string());
        }
        _ => "InteractshError",
    };
    match error_class(py, class_name) {
        Ok(class) => PyErr::from_type(class, (error.to_string(),)),
        Err(lookup_error) => lookup_error,
    }
}

/// Converts an error of reading `/proc` or `/sys` into `OSError`.
pub(crate) fn limit_err(error: LimitError) -> PyErr {
    PyOSError::new_err(error.to_string())
}

/// Converts invalid pressure thresholds into `ValueError`.
pub(crate) fn pressure_err(error: PressureError) -> PyErr {
    PyValueError::new_err(error.to_string())
}

fn error_class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
    let module = ERRORS_MODULE.get_or_try_init(py, || py.import("interactsh.errors").map(Bound::unbind))?;
    Ok(module.bind(py).getattr(name)?.cast_into::<PyType>()?)
}
