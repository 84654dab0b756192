//! NumPy ↔ core values. Arguments are borrowed without a copy when they are native
//! (C-contiguous, aligned, native byte order); results leave as read-only views of the
//! buffers the tape holds.

use std::ptr::NonNull;

use numpy::{Element, PyArrayDescrMethods, PyArrayDyn, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::PyTypeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyFloat, PyInt, PyList, PyTuple};
use tracker_core::num::Float;
use tracker_core::{Arg, Array, Dtype, Output, Tracked, Value};

use crate::errors::IntoPyResult;
use crate::tracked::{PyTrackedArray, PyTrackedReal, tracked_of};

static NUMPY: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// The `numpy` module, imported once.
pub fn numpy(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    NUMPY
        .get_or_try_init(py, || Ok::<_, PyErr>(py.import("numpy")?.unbind()))
        .map(|m| m.bind(py))
}

/// Keeps a value's buffer alive for the NumPy views made of it.
#[pyclass(frozen, module = "tracker._core")]
pub struct BufferOwner {
    value: Value,
}

/// rust-numpy's limit on dimensions (NumPy's is 64): wider arrays cross flattened.
const MAX_DIMS: usize = 32;

fn typed_view<'py, T: Element + Float>(
    owner: &Bound<'py, BufferOwner>,
    array: &Array<T>,
) -> PyResult<Bound<'py, PyAny>> {
    if array.shape().len() > MAX_DIMS {
        // A flat view, reshaped by NumPy (still a read-only view of the same buffer).
        let flat = typed_view(owner, &array.reshaped(&[array.len()]).py()?)?;
        return flat.call_method1("reshape", (PyTuple::new(owner.py(), array.shape())?,));
    }
    let view = array.view().py()?;
    // SAFETY: the view points into the buffer `owner` keeps alive (an Arc'd buffer or the
    // inline scalar inside the frozen, heap-allocated owner); nothing writes to it, and
    // the NumPy array is made read-only before anyone sees it.
    let out = unsafe { PyArrayDyn::<T>::borrow_from_array(&view, owner.clone().into_any()) };
    // SAFETY: the array was just made and nothing else holds it. Its flag is cleared
    // directly: rust-numpy's `readwrite()` would first register a borrow, a hash-map
    // insertion and removal on every value handed to Python.
    unsafe {
        (*numpy::npyffi::_PyArray_GET_ITEM_DATA(out.as_array_ptr())).flags &=
            !numpy::npyffi::NPY_ARRAY_WRITEABLE;
    }
    Ok(out.into_any())
}

/// A read-only NumPy view of `value` (no copy).
pub fn to_numpy<'py>(py: Python<'py>, value: Value) -> PyResult<Bound<'py, PyAny>> {
    let owner = Bound::new(py, BufferOwner { value })?;
    let stored = &owner.get().value;
    match stored {
        Value::F32(a) => typed_view(&owner, a),
        Value::F64(a) => typed_view(&owner, a),
    }
}

/// A NumPy scalar of `value`'s dtype, for 0-d values.
pub fn to_numpy_scalar<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    let v = value.item().unwrap_or(f64::NAN);
    numpy(py)?.getattr(value.dtype().name())?.call1((v,))
}

/// A result for Python: a tracked handle, or a plain NumPy value.
pub fn output_to_py(py: Python<'_>, out: Output) -> PyResult<Py<PyAny>> {
    match out {
        Output::Tracked(t) => {
            // A handle holds the Python callables its backward pass can reach (see `rules`).
            let objects = crate::rules::objects_of(py, &t);
            let holds_objects = objects.is_some();
            let handle = if t.shape().is_empty() {
                Py::new(py, PyTrackedReal { inner: t, objects })?.into_any()
            } else {
                Py::new(py, PyTrackedArray { inner: t, objects })?.into_any()
            };
            if !holds_objects {
                // A handle refers to no Python object: the collector need not visit it,
                // and untracked it costs nothing when collections run.
                // SAFETY: the object is a live, GC-tracked instance we just made.
                unsafe { pyo3::ffi::PyObject_GC_UnTrack(handle.as_ptr().cast()) };
            }
            Ok(handle)
        }
        Output::Value(v) if v.shape().is_empty() => Ok(to_numpy_scalar(py, &v)?.unbind()),
        Output::Value(v) => Ok(to_numpy(py, v)?.unbind()),
    }
}

fn dtype_error(op: &str, kind: &str) -> PyErr {
    PyTypeError::new_err(format!(
        "{op}: {kind} values are not supported: tracker differentiates float32 and float64 arrays \
         (convert with .astype(np.float64))"
    ))
}

/// The float dtype an array of NumPy dtype `kind`/`itemsize` takes part in an op as,
/// next to a tracked value of dtype `like` (NumPy's promotion: small ints keep float32).
fn float_dtype(op: &str, kind: char, itemsize: usize, like: Option<Dtype>) -> PyResult<Dtype> {
    match (kind, itemsize) {
        ('f', 8) => Ok(Dtype::F64),
        ('f', 4) => Ok(Dtype::F32),
        ('f', 2) => Err(dtype_error(op, "float16")),
        ('f', _) => Err(dtype_error(op, "long double")),
        ('b', _) => Ok(like.unwrap_or(Dtype::F64)),
        ('i' | 'u', 1 | 2) => Ok(like.unwrap_or(Dtype::F64)),
        ('i' | 'u', _) => Ok(Dtype::F64),
        ('c', _) => Err(dtype_error(op, "complex")),
        _ => Err(PyTypeError::new_err(format!(
            "{op}: arrays of dtype kind '{kind}' are not supported: tracker differentiates float32 and \
             float64 arrays"
        ))),
    }
}

fn borrow_typed<T: Float>(array: Bound<'_, PyUntypedArray>) -> PyResult<Array<T>> {
    // SAFETY: `array` is a live NumPy array; its data pointer is read, not followed.
    let data = unsafe { (*array.as_array_ptr()).fields.data }.cast::<T>();
    let Some(ptr) = NonNull::new(data) else {
        return Array::from_vec(array.shape(), Vec::new()).py();
    };
    // The owner is a second reference, so that the shape is read where it is.
    let owner = Box::new(array.clone().unbind());
    // SAFETY: the caller checked that the array is C-contiguous, aligned, native and
    // holds `T`s, and the owner (a reference to the array) keeps the memory alive.
    unsafe { Array::borrowed(array.shape(), ptr, owner) }.py()
}

/// A NumPy array (or anything `np.asarray` takes) as a value, borrowed when native.
pub fn array_value(obj: &Bound<'_, PyAny>, like: Option<Dtype>, op: &str) -> PyResult<Value> {
    let py = obj.py();
    let np = numpy(py)?;
    let mut array = match obj.cast::<PyUntypedArray>() {
        Ok(a) => a.clone(),
        Err(_) => np
            .call_method1("asarray", (obj,))?
            .cast_into::<PyUntypedArray>()?,
    };
    let descr = array.dtype();
    let dtype = float_dtype(op, descr.kind() as char, descr.itemsize(), like)?;
    let native = array.is_c_contiguous()
        && array.is_aligned()
        && descr.is_native_byteorder().unwrap_or(true)
        && descr.kind() == b'f'
        && array.is_exact_instance_of::<PyUntypedArray>()
        && descr.itemsize() == if dtype == Dtype::F64 { 8 } else { 4 };
    if !native {
        let kwargs = pyo3::types::PyDict::new(py);
        kwargs.set_item("dtype", dtype.name())?;
        kwargs.set_item("order", "C")?;
        let copied = np.getattr("array")?.call((array,), Some(&kwargs))?;
        array = copied.cast_into::<PyUntypedArray>()?;
    }
    if array.ndim() > MAX_DIMS {
        let shape = array.shape().to_vec();
        // Borrowed flat (a view for a contiguous array), then given its shape back.
        let flat = array.call_method0("ravel")?.cast_into::<PyUntypedArray>()?;
        let value = match dtype {
            Dtype::F32 => Value::F32(borrow_typed(flat)?),
            Dtype::F64 => Value::F64(borrow_typed(flat)?),
        };
        return value.reshaped(&shape).py();
    }
    Ok(match dtype {
        Dtype::F32 => Value::F32(borrow_typed(array)?),
        Dtype::F64 => Value::F64(borrow_typed(array)?),
    })
}

/// An operand of an op: tracked, a Python number (weakly typed, as NEP 50: it takes
/// `like`'s dtype), or an array. `None` when the type is not one tracker takes.
pub fn arg_from_py(obj: &Bound<'_, PyAny>, like: Option<Dtype>, op: &str) -> PyResult<Option<Arg>> {
    arg_with(obj, tracked_operand(obj), like, op)
}

/// [`arg_from_py`] for an object whose [`tracked_operand`] was already looked up.
pub fn arg_with(
    obj: &Bound<'_, PyAny>,
    tracked: Option<Tracked>,
    like: Option<Dtype>,
    op: &str,
) -> PyResult<Option<Arg>> {
    match tracked {
        Some(t) => Ok(Some(Arg::Tracked(t))),
        None => untracked_arg(obj, like, op),
    }
}

/// `obj`'s tracked value, if it has one; numbers are told apart first (see [`is_number`]).
pub fn tracked_operand(obj: &Bound<'_, PyAny>) -> Option<Tracked> {
    if is_number(obj) {
        None
    } else {
        tracked_of(obj)
    }
}

/// [`arg_from_py`] for an object already known not to be tracked.
fn untracked_arg(obj: &Bound<'_, PyAny>, like: Option<Dtype>, op: &str) -> PyResult<Option<Arg>> {
    if is_number(obj) {
        let v: f64 = obj.extract()?;
        return Ok(Some(Arg::Value(Value::scalar(
            v,
            like.unwrap_or(Dtype::F64),
        ))));
    }
    let arrayish = obj.is_instance_of::<PyUntypedArray>()
        || obj.is_instance_of::<PyList>()
        || obj.is_instance_of::<PyTuple>()
        || obj.is_instance(&numpy(obj.py())?.getattr(intern!(obj.py(), "generic"))?)?;
    if arrayish {
        return Ok(Some(Arg::Value(array_value(obj, like, op)?)));
    }
    Ok(None)
}

/// Whether `obj` is a Python number (a float, int or bool): a pointer comparison, where
/// asking whether an object is tracked walks its type's bases, so numbers are told apart
/// first.
pub fn is_number(obj: &Bound<'_, PyAny>) -> bool {
    obj.is_exact_instance_of::<PyFloat>()
        || obj.is_exact_instance_of::<PyInt>()
        || obj.is_exact_instance_of::<PyBool>()
}

/// Like [`arg_from_py`], but unsupported types raise.
pub fn arg_or_raise(obj: &Bound<'_, PyAny>, like: Option<Dtype>, op: &str) -> PyResult<Arg> {
    arg_from_py(obj, like, op)?.ok_or_else(|| unsupported(obj, op))
}

/// The error for an operand of a type tracker does not take.
pub fn unsupported(obj: &Bound<'_, PyAny>, op: &str) -> PyErr {
    PyTypeError::new_err(format!(
        "{op}: unsupported operand of type {}",
        type_name(obj)
    ))
}

/// The name of `obj`'s type, for error messages.
pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default()
}
