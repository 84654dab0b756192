//! Differentiation scopes for `tracker.api` (gradient, withgradient, hessian).

use numpy::{PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use tracker_core::{Output, Scope};

use crate::convert::{arg_or_raise, array_value, output_to_py};
use crate::errors::IntoPyResult;
use crate::tracked::tracked_of;

/// A call's arguments with their arrays replaced by inputs, and those inputs.
type Traced<'py> = (Bound<'py, PyTuple>, Vec<Py<PyAny>>);

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

    /// `(traced, inputs)` for the common calls, where each argument is a float32 or
    /// float64 array or a plain dict of them and no array appears twice: `args` with each
    /// array replaced by an input, and those inputs in order. `None` for any other
    /// arguments, which `tracker.api` walks as trees.
    fn trace_plain<'py>(&self, args: &Bound<'py, PyTuple>) -> PyResult<Option<Traced<'py>>> {
        let Some(arrays) = plain_arrays(args) else {
            return Ok(None);
        };
        let inputs = arrays
            .iter()
            .map(|a| self.input(args.py(), a))
            .collect::<PyResult<Vec<_>>>()?;
        let traced = arranged(args, inputs.iter().map(|i| i.bind(args.py()).clone()))?;
        Ok(Some((traced, inputs)))
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
        let outputs = results
            .iter()
            .map(|r| output_of(&r))
            .collect::<PyResult<Vec<_>>>()?;
        let outputs = scope.exit(outputs).py()?;
        // `exit` passes each result through or marks it (tracked): one that leaves as a
        // plain value is the one that came in, returned itself, not wrapped in a new view.
        results
            .iter()
            .zip(outputs)
            .map(|(r, out)| match out {
                Output::Value(_) => Ok(r.unbind()),
                out => output_to_py(py, out),
            })
            .collect()
    }
}

/// The arrays of `args` when each argument is a float32 or float64 array or a plain
/// dict of them, none twice; `None` otherwise.
fn plain_arrays<'py>(args: &Bound<'py, PyTuple>) -> Option<Vec<Bound<'py, PyAny>>> {
    let mut arrays = Vec::with_capacity(args.len());
    for arg in args.iter() {
        if let Ok(dict) = arg.cast_exact::<PyDict>() {
            arrays.extend(dict.values().iter());
        } else {
            arrays.push(arg);
        }
    }
    let float_array = |a: &Bound<'_, PyAny>| {
        a.cast_exact::<PyUntypedArray>().is_ok_and(|a| {
            let descr = a.dtype();
            descr.kind() == b'f' && matches!(descr.itemsize(), 4 | 8)
        })
    };
    if !arrays.iter().all(float_array) {
        return None;
    }
    let mut ids: Vec<_> = arrays.iter().map(Bound::as_ptr).collect();
    ids.sort_unstable();
    let distinct = ids.windows(2).all(|w| w.first() != w.last());
    distinct.then_some(arrays)
}

/// `args` (as [`plain_arrays`] takes them) with their arrays replaced by `values`, in
/// order: the gradients in the arguments' structure.
#[pyfunction]
pub fn arrange_plain<'py>(
    args: &Bound<'py, PyTuple>,
    values: Vec<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    arranged(args, values.into_iter())
}

fn arranged<'py>(
    args: &Bound<'py, PyTuple>,
    mut values: impl Iterator<Item = Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let py = args.py();
    let mut next = || {
        values
            .next()
            .ok_or_else(|| PyRuntimeError::new_err("arrange_plain: fewer values than arrays"))
    };
    let arranged = args
        .iter()
        .map(|arg| match arg.cast_exact::<PyDict>() {
            Ok(dict) => {
                let out = PyDict::new(py);
                for key in dict.keys() {
                    out.set_item(key, next()?)?;
                }
                Ok(out.into_any())
            }
            Err(_) => next(),
        })
        .collect::<PyResult<Vec<_>>>()?;
    PyTuple::new(py, arranged)
}

/// Enters a differentiation scope (see `tracker.api`).
#[pyfunction]
pub fn enter_scope(nest: bool) -> PyScope {
    PyScope {
        inner: Some(tracker_core::enter_scope(nest)),
    }
}
