//! Differentiation scopes for `tracker.api` (gradient, withgradient, hessian).

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyList;
use tracker_core::{Output, Scope};

use crate::convert::{arg_or_raise, array_value, output_to_py};
use crate::errors::IntoPyResult;
use crate::tracked::tracked_of;

/// One differentiation call's scope. Its frame belongs to the thread that entered it;
/// dropping it elsewhere (a collected pullback) is harmless.
#[pyclass(module = "tracker._core", name = "Scope")]
pub struct PyScope {
    inner: Option<Scope>,
}

impl PyScope {
    fn scope(&self) -> PyResult<&Scope> {
        self.inner
            .as_ref()
            .ok_or_else(|| PyRuntimeError::new_err("this scope has been exited"))
    }
}

fn output_of(obj: &Bound<'_, PyAny>) -> PyResult<Output> {
    Ok(match tracked_of(obj) {
        Some(t) => Output::Tracked(t),
        None => Output::Value(array_value(obj, None, "gradient")?),
    })
}

#[pymethods]
impl PyScope {
    /// A leaf to differentiate with respect to; a NumPy array is borrowed, not copied.
    fn input(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let arg = arg_or_raise(value, None, "gradient")?;
        let t = self.scope()?.input(arg).py()?;
        output_to_py(py, Output::Tracked(t))
    }

    /// The gradients of `y` with respect to `inputs` (out of place; tracked when nested).
    #[pyo3(signature = (y, inputs, seed=None, retain=false))]
    fn gradient(
        &self,
        py: Python<'_>,
        y: &Bound<'_, PyAny>,
        inputs: Vec<Bound<'_, PyAny>>,
        seed: Option<&Bound<'_, PyAny>>,
        retain: bool,
    ) -> PyResult<Vec<Py<PyAny>>> {
        let y = output_of(y)?;
        let inputs = inputs
            .iter()
            .map(|i| {
                tracked_of(i)
                    .ok_or_else(|| PyRuntimeError::new_err("gradient: inputs must be tracked"))
            })
            .collect::<PyResult<Vec<_>>>()?;
        let dtype = Some(y.value().dtype());
        let seed = seed
            .map(|s| arg_or_raise(s, dtype, "gradient"))
            .transpose()?;
        let scope = self.scope()?;
        // The sweep runs without the GIL (rules written in Python take it back).
        let grads = py
            .detach(|| scope.gradient(&y, &inputs, seed, retain))
            .py()?;
        grads.into_iter().map(|g| output_to_py(py, g)).collect()
    }

    /// Stops recording in this scope while keeping its tape for later sweeps.
    fn leave(&self) -> PyResult<()> {
        self.scope()?.leave();
        Ok(())
    }

    /// After `leave`: `values` marked like `exit`'s results when the scope used values of
    /// enclosing scopes as constants.
    fn mark(&self, py: Python<'_>, values: &Bound<'_, PyList>) -> PyResult<Vec<Py<PyAny>>> {
        let values = values
            .iter()
            .map(|v| output_of(&v))
            .collect::<PyResult<Vec<_>>>()?;
        let marked = self.scope()?.mark(values).py()?;
        marked.into_iter().map(|v| output_to_py(py, v)).collect()
    }

    /// Leaves the scope; results that depend on enclosing values are marked.
    fn exit(&mut self, py: Python<'_>, results: &Bound<'_, PyList>) -> PyResult<Vec<Py<PyAny>>> {
        let scope = self
            .inner
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("this scope has been exited"))?;
        let results = results
            .iter()
            .map(|r| output_of(&r))
            .collect::<PyResult<Vec<_>>>()?;
        let results = scope.exit(results).py()?;
        results.into_iter().map(|r| output_to_py(py, r)).collect()
    }
}

/// Enters a differentiation scope (see `tracker.api`).
#[pyfunction]
pub fn enter_scope(nest: bool) -> PyScope {
    PyScope {
        inner: Some(tracker_core::enter_scope(nest)),
    }
}
