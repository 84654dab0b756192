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

/// `numpy.<name>(self, *args, **kwargs)`: a method that is NumPy's function of the same
/// name, so one definition (in the `__array_function__` table) serves both.
fn numpy_method(
    slf: &Bound<'_, PyAny>,
    name: &str,
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<Py<PyAny>> {
    let py = slf.py();
    let mut all = vec![slf.clone()];
    all.extend(args.iter());
    let all = PyTuple::new(py, all)?;
    Ok(numpy(py)?.getattr(name)?.call(all, kwargs)?.unbind())
}

/// `x.astype(dtype)`: float32 and float64 stay tracked (a recorded cast); integer and
/// boolean dtypes give a plain array, as a cast to them has no gradient (as JAX and
/// PyTorch); other dtypes are refused.
fn astype(
    slf: &Bound<'_, PyAny>,
    t: &Tracked,
    dtype: &Bound<'_, PyAny>,
    casting: &str,
    copy: bool,
) -> PyResult<Py<PyAny>> {
    let py = slf.py();
    let np = numpy(py)?;
    let target = np.getattr("dtype")?.call1((dtype,))?;
    let source = np.getattr("dtype")?.call1((t.dtype().name(),))?;
    if !np
        .getattr("can_cast")?
        .call1((&source, &target, casting))?
        .is_truthy()?
    {
        return Err(PyTypeError::new_err(format!(
            "astype: cannot cast from {source} to {target} according to the rule '{casting}'"
        )));
    }
    let name: String = target.getattr("name")?.extract()?;
    let kind: String = target.getattr("kind")?.extract()?;
    let cast = match name.as_str() {
        "float32" => tracker_core::Dtype::F32,
        "float64" => tracker_core::Dtype::F64,
        _ if matches!(kind.as_str(), "i" | "u" | "b") => {
            let plain = to_numpy(py, t.value())?;
            return Ok(plain.call_method1("astype", (target,))?.unbind());
        }
        _ => {
            return Err(PyTypeError::new_err(format!(
                "astype({name}): tracker tracks float32 and float64 values; for a plain value \
                 of another dtype use tr.data(x).astype(...)"
            )));
        }
    };
    if cast == t.dtype() && !copy {
        return Ok(slf.clone().unbind());
    }
    ops::run(
        py,
        tracker_core::Op::Cast(cast),
        &[tracker_core::Arg::Tracked(t.clone())],
    )
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

            /// `np.ravel(x, ...)`.
            #[pyo3(signature = (*args, **kwargs))]
            fn ravel(slf: &Bound<'_, Self>, args: &Bound<'_, PyTuple>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Py<PyAny>> {
                numpy_method(slf.as_any(), "ravel", args, kwargs)
            }

            /// `np.ravel(x, ...)` (tracked values are never shared, so no copy is needed).
            #[pyo3(signature = (*args, **kwargs))]
            fn flatten(slf: &Bound<'_, Self>, args: &Bound<'_, PyTuple>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Py<PyAny>> {
                numpy_method(slf.as_any(), "ravel", args, kwargs)
            }

            /// `np.squeeze(x, ...)`.
            #[pyo3(signature = (*args, **kwargs))]
            fn squeeze(slf: &Bound<'_, Self>, args: &Bound<'_, PyTuple>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Py<PyAny>> {
                numpy_method(slf.as_any(), "squeeze", args, kwargs)
            }

            /// `np.swapaxes(x, ...)`.
            #[pyo3(signature = (*args, **kwargs))]
            fn swapaxes(slf: &Bound<'_, Self>, args: &Bound<'_, PyTuple>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Py<PyAny>> {
                numpy_method(slf.as_any(), "swapaxes", args, kwargs)
            }

            /// `np.repeat(x, ...)`.
            #[pyo3(signature = (*args, **kwargs))]
            fn repeat(slf: &Bound<'_, Self>, args: &Bound<'_, PyTuple>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Py<PyAny>> {
                numpy_method(slf.as_any(), "repeat", args, kwargs)
            }

            /// `np.take(x, ...)`.
            #[pyo3(signature = (*args, **kwargs))]
            fn take(slf: &Bound<'_, Self>, args: &Bound<'_, PyTuple>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Py<PyAny>> {
                numpy_method(slf.as_any(), "take", args, kwargs)
            }

            /// `np.var(x, ...)`.
            #[pyo3(signature = (*args, **kwargs))]
            fn var(slf: &Bound<'_, Self>, args: &Bound<'_, PyTuple>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Py<PyAny>> {
                numpy_method(slf.as_any(), "var", args, kwargs)
            }

            /// `np.std(x, ...)`.
            #[pyo3(signature = (*args, **kwargs))]
            fn std(slf: &Bound<'_, Self>, args: &Bound<'_, PyTuple>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Py<PyAny>> {
                numpy_method(slf.as_any(), "std", args, kwargs)
            }

            /// `np.clip(x, ...)`.
            #[pyo3(signature = (*args, **kwargs))]
            fn clip(slf: &Bound<'_, Self>, args: &Bound<'_, PyTuple>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Py<PyAny>> {
                numpy_method(slf.as_any(), "clip", args, kwargs)
            }

            /// `np.cumsum(x, ...)`.
            #[pyo3(signature = (*args, **kwargs))]
            fn cumsum(slf: &Bound<'_, Self>, args: &Bound<'_, PyTuple>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Py<PyAny>> {
                numpy_method(slf.as_any(), "cumsum", args, kwargs)
            }

            /// `np.cumprod(x, ...)`.
            #[pyo3(signature = (*args, **kwargs))]
            fn cumprod(slf: &Bound<'_, Self>, args: &Bound<'_, PyTuple>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Py<PyAny>> {
                numpy_method(slf.as_any(), "cumprod", args, kwargs)
            }

            /// `np.copy(x, ...)`: a new node with the same value.
            #[pyo3(signature = (*args, **kwargs))]
            fn copy(slf: &Bound<'_, Self>, args: &Bound<'_, PyTuple>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Py<PyAny>> {
                numpy_method(slf.as_any(), "copy", args, kwargs)
            }

            /// `np.argsort(x, ...)`: plain integers (no gradient).
            #[pyo3(signature = (*args, **kwargs))]
            fn argsort(slf: &Bound<'_, Self>, args: &Bound<'_, PyTuple>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Py<PyAny>> {
                numpy_method(slf.as_any(), "argsort", args, kwargs)
            }

            /// `np.argmax(x, ...)`: plain integers (no gradient).
            #[pyo3(signature = (*args, **kwargs))]
            fn argmax(slf: &Bound<'_, Self>, args: &Bound<'_, PyTuple>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Py<PyAny>> {
                numpy_method(slf.as_any(), "argmax", args, kwargs)
            }

            /// `np.argmin(x, ...)`: plain integers (no gradient).
            #[pyo3(signature = (*args, **kwargs))]
            fn argmin(slf: &Bound<'_, Self>, args: &Bound<'_, PyTuple>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Py<PyAny>> {
                numpy_method(slf.as_any(), "argmin", args, kwargs)
            }

            /// `np.nonzero(x)`: plain integers (no gradient).
            fn nonzero(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
                numpy_method(slf.as_any(), "nonzero", &PyTuple::empty(slf.py()), None)
            }

            /// Sorting in place would mutate a tracked value: refused, naming `np.sort`.
            #[pyo3(signature = (*args, **kwargs))]
            fn sort(&self, args: &Bound<'_, PyTuple>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
                let _ = (args, kwargs);
                Err(PyTypeError::new_err(
                    "x.sort() sorts in place, and tracked values are immutable: use \
                     y = np.sort(x), which is differentiable",
                ))
            }

            /// `x` cast to `dtype`: tracked for float32/float64, a plain array for integer
            /// and boolean dtypes (which carry no gradient).
            #[pyo3(signature = (dtype, order="K", casting="unsafe", subok=true, copy=true))]
            fn astype(slf: &Bound<'_, Self>, dtype: &Bound<'_, PyAny>, order: &str, casting: &str, subok: bool, copy: bool) -> PyResult<Py<PyAny>> {
                let _ = (order, subok);
                astype(slf.as_any(), &slf.get().inner, dtype, casting, copy)
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
                    "tracked arrays are immutable: assignment into one (x[idx] = v) cannot be \
                     differentiated; use the functional update y = tr.at(x)[idx].set(v) (or \
                     .add(v)), np.where, or modify a copy of tr.data(x) as a constant",
                ))
            }

            #[pyo3(signature = (dtype=None, copy=None))]
            fn __array__(&self, py: Python<'_>, dtype: Option<&Bound<'_, PyAny>>, copy: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
                let _ = (dtype, copy);
                // A SciPy function with a home in tracker.scipy says so.
                if let Ok(Some(message)) = py
                    .import("tracker.scipy")
                    .and_then(|m| m.call_method0("_refusal"))
                    .and_then(|m| m.extract::<Option<String>>())
                {
                    return Err(PyTypeError::new_err(message));
                }
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
                ops::power(slf.py(), slf.as_any(), other)
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
