//! SciPy's special functions: the ufunc names that map to core ops, and the evaluator
//! that computes, with SciPy's own ufuncs, the functions the core does not.

use std::sync::Arc;

use pyo3::exceptions::{PyModuleNotFoundError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use tracker_core::ops::special::Special;
use tracker_core::{Error, Op, Payload, Value};

use crate::convert::{arg_or_raise, array_value, to_numpy};
use crate::tracked::tracked_of;

/// The special function a SciPy ufunc's `__name__` is (`psi` is digamma, `_zeta` is
/// `zeta(x, q)`).
pub fn from_ufunc(name: &str) -> Option<Special> {
    match name {
        "psi" => Some(Special::Digamma),
        "_zeta" => Some(Special::Zeta),
        "digamma" | "zeta" => None,
        _ => Special::from_name(name),
    }
}

/// `scipy.special.<name>(*inputs)` on tracked operands.
pub fn call(py: Python<'_>, op: Special, inputs: &Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
    let dtype = inputs
        .iter()
        .find_map(|x| tracked_of(&x).map(|t| t.dtype()));
    let args = inputs
        .iter()
        .map(|x| arg_or_raise(&x, dtype, op.name()))
        .collect::<PyResult<Vec<_>>>()?;
    crate::ops::run(py, Op::Special(op), &args)
}

/// `polygamma(n, x)` for an order `n ≥ 0` (0 is digamma).
#[pyfunction]
pub fn polygamma(py: Python<'_>, n: u32, x: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let op = if n == 0 {
        Special::Digamma
    } else {
        Special::Polygamma(n)
    };
    let dtype = tracked_of(x).map(|t| t.dtype());
    let x = arg_or_raise(x, dtype, "polygamma")?;
    crate::ops::run(py, Op::Special(op), &[x])
}

/// A special function by its `scipy.special` name, on any operands.
#[pyfunction(name = "special")]
#[pyo3(signature = (name, *inputs))]
pub fn special_py(py: Python<'_>, name: &str, inputs: &Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
    let op = from_ufunc(name)
        .or_else(|| Special::from_name(name))
        .ok_or_else(|| PyTypeError::new_err(format!("no special function is named {name:?}")))?;
    if inputs.len() != op.arity() {
        return Err(PyTypeError::new_err(format!(
            "{name} takes {} arguments, got {}",
            op.arity(),
            inputs.len()
        )));
    }
    call(py, op, inputs)
}

/// The names of the special functions and whether the core computes each one.
#[pyfunction]
pub fn special_functions() -> Vec<(&'static str, bool)> {
    Special::ALL
        .iter()
        .map(|s| (s.name(), s.native()))
        .collect()
}

fn external(name: &'static str, e: PyErr) -> Error {
    Error::External {
        rule: name,
        payload: Payload(Arc::new(e)),
    }
}

/// Computes a function the core does not, with SciPy's ufunc on the buffers.
pub fn evaluate(op: Special, inputs: &[&Value]) -> tracker_core::Result<Value> {
    let name = op.name();
    Python::attach(|py| {
        let scipy = py.import("scipy.special").map_err(|_| {
            PyModuleNotFoundError::new_err(format!(
                "scipy.special.{name} is computed by SciPy, which is not installed; install \
                 scipy to use tracker.scipy.special.{name} (the functions tracker computes \
                 itself work without it)"
            ))
        })?;
        let arrays = inputs
            .iter()
            .map(|v| to_numpy(py, (*v).clone()))
            .collect::<PyResult<Vec<_>>>()?;
        let out = match (op, arrays.as_slice()) {
            (Special::Polygamma(n), [x]) => scipy.getattr("polygamma")?.call1((n, x))?,
            (Special::Digamma, [x]) => scipy.getattr("psi")?.call1((x,))?,
            _ => scipy.getattr(name)?.call1(PyTuple::new(py, arrays)?)?,
        };
        let dtype = inputs.first().map(|v| v.dtype());
        array_value(&out, dtype, name)
    })
    .map_err(|e| external(name, e))
}
