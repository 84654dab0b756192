//! What `tracker.nn.functional` needs beyond NumPy's operators: a planned gather (the
//! windows of convolution and pooling), built once per shape and reused, so a call costs
//! the copy of the elements and nothing more.

use std::sync::Arc;

use pyo3::exceptions::{PyIndexError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use tracker_core::ops::index::{Gather, Reads};
use tracker_core::{Arg, Op};

use crate::convert::arg_or_raise;

/// Flat positions into a row-major array of `source_shape`, in the shape of
/// `positions`: `gather(x, index)` reads them (its gradient adds back into them),
/// `scatter(v, index)` adds `v` into a zero array at them (repeats accumulate).
#[pyclass(frozen, module = "tracker._core", name = "GatherIndex")]
pub struct PyGatherIndex {
    gather: Arc<Gather>,
}

#[pymethods]
impl PyGatherIndex {
    #[new]
    fn new(source_shape: Vec<usize>, positions: &Bound<'_, PyAny>) -> PyResult<Self> {
        let (shape, values) = crate::ops::int_array(positions, "GatherIndex")?;
        let size = source_shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or_else(|| PyValueError::new_err("GatherIndex: the source shape is too large"))?;
        let mut flat = Vec::new();
        flat.try_reserve_exact(values.len()).map_err(|_| {
            pyo3::exceptions::PyMemoryError::new_err(format!(
                "GatherIndex: cannot allocate {} positions",
                values.len()
            ))
        })?;
        for v in values {
            let p = usize::try_from(v)
                .ok()
                .filter(|&p| p < size)
                .ok_or_else(|| {
                    PyIndexError::new_err(format!(
                        "GatherIndex: position {v} is out of bounds for an array of shape \
                         {source_shape:?} ({size} elements)"
                    ))
                })?;
            flat.push(p);
        }
        Ok(Self {
            gather: Arc::new(Gather {
                source_shape: source_shape.into(),
                shape,
                reads: Reads::Positions(flat),
            }),
        })
    }

    /// The shape of what `gather` returns.
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.gather.shape.iter())
    }

    /// The shape of the array `gather` reads (and `scatter` returns).
    #[getter]
    fn source_shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.gather.source_shape.iter())
    }
}

/// `x.reshape(-1)[positions]` for `x` of the index's source shape (differentiable in `x`).
#[pyfunction]
pub fn gather(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    index: &Bound<'_, PyGatherIndex>,
) -> PyResult<Py<PyAny>> {
    let arg = arg_or_raise(x, None, "gather")?;
    run(py, Op::Gather(index.get().gather.clone()), arg)
}

/// A zero array of the index's source shape with `v` (of the index's shape) added at its
/// positions (differentiable in `v`).
#[pyfunction]
pub fn scatter(
    py: Python<'_>,
    v: &Bound<'_, PyAny>,
    index: &Bound<'_, PyGatherIndex>,
) -> PyResult<Py<PyAny>> {
    let arg = arg_or_raise(v, None, "scatter")?;
    run(py, Op::Scatter(index.get().gather.clone()), arg)
}

fn run(py: Python<'_>, op: Op, arg: Arg) -> PyResult<Py<PyAny>> {
    crate::ops::run(py, op, &[arg])
}
