//! PyO3 bindings: the `interactsh._core` extension module.
//!
//! Glue only. `Store` wraps the core store behind a mutex, converts
//! arguments and results, and maps errors through `errors::to_py_err`.
//! Registration (RSA-OAEP), polling (AES and base64 over a whole page) and
//! shrinking run without the GIL. The memory functions and `PressureMonitor`
//! expose `interactsh_core::limit` and `interactsh_core::pressure`.

mod errors;
mod memory;
mod store;

use interactsh_core as core;
use pyo3::prelude::*;

/// Initializes the `interactsh._core` module: the store, the memory readers,
/// the pressure monitor and the accepted RSA key sizes.
#[pymodule]
fn _core(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<store::Store>()?;
    module.add_class::<memory::PressureMonitor>()?;
    module.add_function(wrap_pyfunction!(memory::resident_bytes, module)?)?;
    module.add_function(wrap_pyfunction!(memory::effective_limit, module)?)?;
    module.add_function(wrap_pyfunction!(memory::eviction_target, module)?)?;
    module.add("MIN_RSA_BITS", core::crypto::MIN_RSA_BITS)?;
    module.add("MAX_RSA_BITS", core::crypto::MAX_RSA_BITS)?;
    Ok(())
}
