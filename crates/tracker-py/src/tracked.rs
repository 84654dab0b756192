//! The handles: `TrackedArray` and `TrackedReal` (the tracked 0-d value), immutable
//! pyclasses over the core's thread-safe `Tracked`.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pyclass::CompareOp;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyTuple};
use pyo3::{PyTraverseError, PyVisit};
use tracker_core::Tracked;
use tracker_core::ops::binary::Binary;
use tracker_core::ops::reduce::Reduce;
use tracker_core::ops::unary::Unary;

use crate::convert::{arg_from_py, numpy, to_numpy, to_numpy_scalar};
use crate::ops;
use crate::rules::TapeObjects;

/// A tracked array (1 or more dimensions).
#[pyclass(frozen, module = "tracker", name = "TrackedArray")]
pub struct PyTrackedArray {
    pub inner: Tracked,
    /// The Python callables of the handle's tape (custom rules, hooks, checkpoints).
    pub objects: Option<Py<TapeObjects>>,
}

/// A tracked 0-d value.
#[pyclass(frozen, module = "tracker", name = "TrackedReal")]
pub struct PyTrackedReal {
    pub inner: Tracked,
    pub objects: Option<Py<TapeObjects>>,
}

/// The core handle behind a Python object, if it is tracked.
pub fn tracked_of(obj: &Bound<'_, PyAny>) -> Option<Tracked> {
    if let Ok(a) = obj.cast::<PyTrackedArray>() {
        return Some(a.get().inner.clone());
    }
    obj.cast::<PyTrackedReal>()
        .ok()
        .map(|r| r.get().inner.clone())
}

/// The plain value of a tracked handle for Python: a read-only view, or a NumPy scalar.
pub fn plain(py: Python<'_>, t: &Tracked) -> PyResult<Py<PyAny>> {
    let value = t.value();
    if value.shape().is_empty() {
        Ok(to_numpy_scalar(py, &value)?.unbind())
    } else {
        Ok(to_numpy(py, value)?.unbind())
    }
}

/// NumPy functions with a rule, registered by `tracker._numpy`: func → implementation.
pub static FUNCTIONS: PyOnceLock<Py<PyDict>> = PyOnceLock::new();

fn repr(py: Python<'_>, t: &Tracked) -> PyResult<String> {
    let value = t.value();
    let data = plain(py, t)?;
    let data = data.bind(py);
    if value.shape().is_empty() {
        let suffix = if value.dtype().name() == "float64" {
            String::new()
        } else {
            format!(", dtype={}", value.dtype().name())
        };
        return Ok(format!("TrackedReal({}{suffix})", data.str()?));
    }
    let text = data.repr()?.to_string();
    Ok(format!(
        "Tracked{}",
        text.replacen("array(", "Array(", 1)
            .replace("\n      ", "\n             ")
    ))
}

macro_rules! tracked_methods {
    ($cls:ident) => {
        #[pymethods]
        impl $cls {
            fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
                if let Some(objects) = &self.objects {
                    visit.call(objects)?;
                }
                Ok(())
            }

            #[classattr]
            fn __array_priority__() -> f64 {
                1000.0
            }

            #[getter]
            fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
                PyTuple::new(py, self.inner.shape().iter())
            }

            #[getter]
            fn dtype<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                numpy(py)?.getattr("dtype")?.call1((self.inner.dtype().name(),))
            }

            #[getter]
            fn ndim(&self) -> usize {
                self.inner.shape().len()
            }

            #[getter]
            fn size(&self) -> usize {
                self.inner.value().len()
            }

            #[allow(non_snake_case)]
            #[getter]
            fn T(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
                ops::transpose(py, &self.inner, &PyTuple::empty(py))
            }

            /// The value without tracking: a read-only view (a NumPy scalar for 0-d).
            #[getter]
            fn data(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
                plain(py, &self.inner)
            }

            /// The parameter's accumulated gradient (a read-only view).
            #[getter]
            fn grad(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
                crate::grad_of(py, &self.inner)
            }

            /// Back-propagates from this value (see `tracker.back`).
            #[pyo3(signature = (dy=None, once=true))]
            fn back(&self, py: Python<'_>, dy: Option<&Bound<'_, PyAny>>, once: bool) -> PyResult<()> {
                crate::backward(py, &self.inner, dy, once)
            }

            /// The plain Python float of a one-element value (not tracked).
            fn item(&self) -> PyResult<f64> {
                self.inner.value().item().ok_or_else(|| {
                    PyValueError::new_err("can only convert an array of size 1 to a Python scalar")
                })
            }

            #[pyo3(signature = (axis=None, keepdims=false))]
            fn sum(&self, py: Python<'_>, axis: Option<&Bound<'_, PyAny>>, keepdims: bool) -> PyResult<Py<PyAny>> {
                ops::reduce(py, &self.inner, Reduce::Sum, axis, keepdims)
            }

            #[pyo3(signature = (axis=None, keepdims=false))]
            fn mean(&self, py: Python<'_>, axis: Option<&Bound<'_, PyAny>>, keepdims: bool) -> PyResult<Py<PyAny>> {
                ops::reduce(py, &self.inner, Reduce::Mean, axis, keepdims)
            }

            #[pyo3(signature = (axis=None, keepdims=false))]
            fn prod(&self, py: Python<'_>, axis: Option<&Bound<'_, PyAny>>, keepdims: bool) -> PyResult<Py<PyAny>> {
                ops::reduce(py, &self.inner, Reduce::Prod, axis, keepdims)
            }

            #[pyo3(signature = (axis=None, keepdims=false))]
            fn max(&self, py: Python<'_>, axis: Option<&Bound<'_, PyAny>>, keepdims: bool) -> PyResult<Py<PyAny>> {
                ops::reduce(py, &self.inner, Reduce::Max, axis, keepdims)
            }

            #[pyo3(signature = (axis=None, keepdims=false))]
            fn min(&self, py: Python<'_>, axis: Option<&Bound<'_, PyAny>>, keepdims: bool) -> PyResult<Py<PyAny>> {
                ops::reduce(py, &self.inner, Reduce::Min, axis, keepdims)
            }

            #[pyo3(signature = (*shape))]
            fn reshape(&self, py: Python<'_>, shape: &Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
                ops::reshape(py, &self.inner, shape)
            }

            #[pyo3(signature = (*axes))]
            fn transpose(&self, py: Python<'_>, axes: &Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
                ops::transpose(py, &self.inner, axes)
            }

            fn dot(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
                crate::dot(slf.py(), slf.as_any(), other)
            }

            fn __len__(&self) -> PyResult<usize> {
                self.inner.shape().first().copied().ok_or_else(|| PyTypeError::new_err("len() of unsized object"))
            }

            fn __iter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
                let n = self.__len__()?;
                let items = (0..n)
                    .map(|i| ops::getitem(py, &self.inner, &i.into_pyobject(py)?.into_any()))
                    .collect::<PyResult<Vec<_>>>()?;
                Ok(PyList::new(py, items)?.call_method0("__iter__")?.unbind())
            }

            fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
                ops::getitem(py, &self.inner, key)
            }

            fn __setitem__(&self, _key: &Bound<'_, PyAny>, _value: &Bound<'_, PyAny>) -> PyResult<()> {
                Err(PyTypeError::new_err(
                    "tracked arrays are immutable: assignment into one cannot be differentiated; \
                     build the new value functionally (np.where, concatenation), or modify a copy \
                     of tr.data(x) as a constant",
                ))
            }

            #[pyo3(signature = (dtype=None, copy=None))]
            fn __array__(&self, dtype: Option<&Bound<'_, PyAny>>, copy: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
                let _ = (dtype, copy);
                Err(ops::refuse(
                    "converting a tracked value to a NumPy array (np.asarray, np.array([...]))",
                    "use tr.data(x) for its plain value, or np.stack to build an array from \
                     tracked values",
                ))
            }

            #[pyo3(signature = (ufunc, method, *inputs, **kwargs))]
            fn __array_ufunc__(
                &self,
                py: Python<'_>,
                ufunc: &Bound<'_, PyAny>,
                method: &str,
                inputs: &Bound<'_, PyTuple>,
                kwargs: Option<&Bound<'_, PyDict>>,
            ) -> PyResult<Py<PyAny>> {
                ops::array_ufunc(py, ufunc, method, inputs, kwargs)
            }

            fn __array_function__(
                &self,
                py: Python<'_>,
                func: &Bound<'_, PyAny>,
                _types: &Bound<'_, PyAny>,
                args: &Bound<'_, PyTuple>,
                kwargs: &Bound<'_, PyDict>,
            ) -> PyResult<Py<PyAny>> {
                let rule = FUNCTIONS.get(py).and_then(|table| table.bind(py).get_item(func).ok().flatten());
                match rule {
                    Some(rule) => Ok(rule.call(args, Some(kwargs))?.unbind()),
                    None => Err(ops::no_rule(func)),
                }
            }

            fn __float__(&self) -> PyResult<f64> {
                Err(ops::refuse(
                    "float() of a tracked value (which math.* functions call)",
                    "use np.sin and the like to stay tracked, or x.item() or tr.data(x) for the \
                     plain value",
                ))
            }

            fn __int__(&self) -> PyResult<i64> {
                Err(ops::refuse("int() of a tracked value", "use x.item() or tr.data(x) for its plain value"))
            }

            fn __bool__(&self) -> PyResult<bool> {
                match self.inner.value().item() {
                    Some(v) => Ok(v != 0.0),
                    None => Err(PyValueError::new_err(
                        "the truth value of an array with more than one element is ambiguous",
                    )),
                }
            }

            fn __format__(&self, py: Python<'_>, spec: &str) -> PyResult<String> {
                let data = plain(py, &self.inner)?;
                data.bind(py).call_method1("__format__", (spec,))?.extract()
            }

            fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
                repr(py, &self.inner)
            }

            fn __add__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
                ops::binary(slf.py(), Binary::Add, slf.as_any(), other)
            }
            fn __radd__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
                ops::binary(slf.py(), Binary::Add, other, slf.as_any())
            }
            fn __sub__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
                ops::binary(slf.py(), Binary::Sub, slf.as_any(), other)
            }
            fn __rsub__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
                ops::binary(slf.py(), Binary::Sub, other, slf.as_any())
            }
            fn __mul__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
                ops::binary(slf.py(), Binary::Mul, slf.as_any(), other)
            }
            fn __rmul__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
                ops::binary(slf.py(), Binary::Mul, other, slf.as_any())
            }
            fn __truediv__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
                ops::binary(slf.py(), Binary::Div, slf.as_any(), other)
            }
            fn __rtruediv__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
                ops::binary(slf.py(), Binary::Div, other, slf.as_any())
            }
            fn __mod__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
                ops::binary(slf.py(), Binary::Remainder, slf.as_any(), other)
            }
            fn __rmod__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
                ops::binary(slf.py(), Binary::Remainder, other, slf.as_any())
            }
            fn __floordiv__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
                ops::binary(slf.py(), Binary::FloorDivide, slf.as_any(), other)
            }
            fn __rfloordiv__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
                ops::binary(slf.py(), Binary::FloorDivide, other, slf.as_any())
            }
            fn __pow__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>, modulo: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
                let _ = modulo;
                ops::binary(slf.py(), Binary::Pow, slf.as_any(), other)
            }
            fn __rpow__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>, modulo: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
                let _ = modulo;
                ops::binary(slf.py(), Binary::Pow, other, slf.as_any())
            }
            fn __matmul__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
                ops::matmul(slf.py(), slf.as_any(), other)
            }
            fn __rmatmul__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
                ops::matmul(slf.py(), other, slf.as_any())
            }
            fn __neg__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
                ops::unary(py, Unary::Neg, &self.inner)
            }
            fn __pos__(slf: &Bound<'_, Self>) -> Py<PyAny> {
                slf.clone().into_any().unbind()
            }
            fn __abs__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
                ops::unary(py, Unary::Abs, &self.inner)
            }

            /// Comparisons give plain boolean arrays (they carry no gradient).
            fn __richcmp__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>, op: CompareOp) -> PyResult<Py<PyAny>> {
                let py = slf.py();
                if arg_from_py(other, None, "comparison")?.is_none() {
                    return Ok(py.NotImplemented());
                }
                let left = plain(py, &slf.get().inner)?;
                let right = match tracked_of(other) {
                    Some(t) => plain(py, &t)?,
                    None => other.clone().unbind(),
                };
                let name = match op {
                    CompareOp::Lt => "less",
                    CompareOp::Le => "less_equal",
                    CompareOp::Gt => "greater",
                    CompareOp::Ge => "greater_equal",
                    CompareOp::Eq => "equal",
                    CompareOp::Ne => "not_equal",
                };
                Ok(numpy(py)?.getattr(name)?.call1((left, right))?.unbind())
            }

            #[classattr]
            fn __hash__() -> Option<()> {
                None
            }
        }
    };
}

tracked_methods!(PyTrackedArray);
tracked_methods!(PyTrackedReal);
