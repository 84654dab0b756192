//! `tracker._core`: the PyO3 boundary of tracker-core. Conversion, error mapping and
//! handles only; no rule lives here.

mod alloc;
mod blas;
mod convert;
mod errors;
mod linalg;
mod nn;
mod ops;
mod rules;
mod scope;
mod special;
mod tracked;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tracker_core::{Arg, Op, Output, Tracked};

use crate::convert::{array_value, output_to_py, to_numpy};
use crate::errors::IntoPyResult;
use crate::tracked::{PyTrackedArray, PyTrackedReal, tracked_of};

#[global_allocator]
static ALLOCATOR: alloc::Cached = alloc::Cached::new();

fn tracked_arg(x: &Bound<'_, PyAny>, function: &str) -> PyResult<Tracked> {
    tracked_of(x).ok_or_else(|| {
        PyTypeError::new_err(format!(
            "{function}: expected a tracked value (made with tr.param), got {}",
            convert::type_name(x)
        ))
    })
}

/// A new parameter: a tracked copy of `x` (ints become float64, float32 stays). Of a
/// tracked value, an identity node connected to it.
#[pyfunction]
fn param(py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    if let Some(t) = tracked_of(x) {
        let shape = t.shape();
        return output_to_py(
            py,
            tracker_core::apply(Op::Reshape(shape), &[Arg::Tracked(t)]).py()?,
        );
    }
    let value = array_value(x, None, "param")?;
    // Copy once: a parameter owns its value.
    let owned = value.copied().py()?;
    output_to_py(py, Output::Tracked(Tracked::param(owned)))
}

pub(crate) fn backward(
    py: Python<'_>,
    y: &Tracked,
    dy: Option<&Bound<'_, PyAny>>,
    once: bool,
) -> PyResult<()> {
    let seed = dy
        .map(|d| array_value(d, Some(y.dtype()), "back"))
        .transpose()?;
    // The sweep runs without the GIL; rules written in Python and the interrupt poll
    // take it back when they need it.
    py.detach(|| tracker_core::backward(y, seed, once)).py()
}

/// Back-propagates from `y` (a scalar, or with a seed `dy` of its shape), accumulating
/// into the parameters it reaches. With `once`, the nodes it passes are consumed.
#[pyfunction]
#[pyo3(signature = (y, dy=None, once=true))]
fn back(
    py: Python<'_>,
    y: &Bound<'_, PyAny>,
    dy: Option<&Bound<'_, PyAny>>,
    once: bool,
) -> PyResult<()> {
    backward(py, &tracked_arg(y, "back")?, dy, once)
}

pub(crate) fn grad_of(py: Python<'_>, t: &Tracked) -> PyResult<Py<PyAny>> {
    let g = t.grad().py()?;
    if g.shape().is_empty() {
        Ok(convert::to_numpy_scalar(py, &g)?.unbind())
    } else {
        Ok(to_numpy(py, g)?.unbind())
    }
}

/// The parameter's accumulated gradient: a read-only view that never changes.
#[pyfunction]
fn grad(py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    grad_of(py, &tracked_arg(x, "grad")?)
}

/// The value without tracking (a read-only view); anything else is returned unchanged.
#[pyfunction]
fn data(py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    match tracked_of(x) {
        Some(t) => tracked::plain(py, &t),
        None => Ok(x.clone().unbind()),
    }
}

#[pyfunction]
fn istracked(x: &Bound<'_, PyAny>) -> bool {
    tracked_of(x).is_some()
}

/// Whether `x` is a parameter (a leaf of the graph).
#[pyfunction]
fn isleaf(x: &Bound<'_, PyAny>) -> bool {
    tracked_of(x).is_some_and(|t| t.as_param().is_some())
}

/// Zeroes a parameter's gradient.
#[pyfunction]
fn zero_grad(x: &Bound<'_, PyAny>) -> PyResult<()> {
    if let Some(p) = tracked_arg(x, "zero_grad")?.as_param() {
        p.zero_grad();
    }
    Ok(())
}

/// Adds `delta` to a parameter and zeroes its gradient; returns the parameter.
#[pyfunction]
fn update<'py>(x: &Bound<'py, PyAny>, delta: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let t = tracked_arg(x, "update")?;
    let p = t.as_param().ok_or_else(|| {
        PyTypeError::new_err(format!(
            "update: x was computed by `{}`; only parameters can be updated",
            t.op_name()
        ))
    })?;
    let delta = match tracked_of(delta) {
        Some(d) => d.value(),
        None => array_value(delta, Some(t.dtype()), "update")?,
    };
    p.update(&delta).py()?;
    Ok(x.clone())
}

/// How many threads large elementwise loops and reductions run on: `TRACKER_NUM_THREADS`,
/// else `RAYON_NUM_THREADS`, else `OMP_NUM_THREADS`, else the number of CPUs.
#[pyfunction]
fn num_threads() -> usize {
    tracker_core::num_threads()
}

/// Gives this thread a fresh top-level tape (for isolating tests).
#[pyfunction]
fn reset_thread_tape() {
    tracker_core::reset_thread_tape();
}

/// How many nodes this thread's current tape holds (for tests of its lifetime).
#[pyfunction]
fn tape_length() -> usize {
    tracker_core::tape::current_tape().len()
}

/// Turns recording on or off for this thread; returns the previous setting.
#[pyfunction]
fn set_grad_enabled(enabled: bool) -> bool {
    tracker_core::set_grad_enabled(enabled)
}

/// Registers the NumPy functions with a rule (`tracker._numpy`).
#[pyfunction]
fn set_functions(py: Python<'_>, table: Bound<'_, PyDict>) -> PyResult<()> {
    tracked::FUNCTIONS
        .set(py, table.unbind())
        .map_err(|_| PyTypeError::new_err("the function table is already set"))
}

/// The core's unary op `name` on `x`, for NumPy functions that are not ufuncs (`np.sinc`).
#[pyfunction]
fn unary(py: Python<'_>, name: &str, x: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let op = tracker_core::ops::unary::Unary::from_name(name)
        .ok_or_else(|| PyValueError::new_err(format!("no unary op is named {name:?}")))?;
    let x = convert::arg_or_raise(x, None, op.name())?;
    ops::run(py, tracker_core::Op::Unary(op), &[x])
}

/// The ufuncs with a gradient on tracked arrays, and those with plain boolean results.
#[pyfunction]
fn ufuncs() -> (Vec<&'static str>, Vec<&'static str>) {
    ops::ufunc_names()
}

/// One recorded op: its place, name, shape and dtype (None where freed), and inputs.
type GraphRow = (
    usize,
    &'static str,
    Option<Vec<usize>>,
    Option<&'static str>,
    Vec<usize>,
);

/// The recorded ops `x` depends on, each before those that use it.
#[pyfunction]
fn graph(x: &Bound<'_, PyAny>) -> PyResult<Vec<GraphRow>> {
    let x = tracked::tracked_of(x)
        .ok_or_else(|| PyTypeError::new_err("show: the value is not tracked, so it has no tape"))?;
    Ok(x.graph()
        .py()?
        .into_iter()
        .map(|n| {
            let (shape, dtype) = match n.value {
                Some((shape, dtype)) => (Some(shape.to_vec()), Some(dtype.name())),
                None => (None, None),
            };
            (n.id, n.op, shape, dtype, n.inputs)
        })
        .collect())
}

/// `np.cumsum(x, axis)`, over the flattened array when `axis` is None.
#[pyfunction]
#[pyo3(signature = (x, axis=None))]
fn cumsum(py: Python<'_>, x: &Bound<'_, PyAny>, axis: Option<isize>) -> PyResult<Py<PyAny>> {
    ops::scan(py, x, axis, false)
}

/// `np.cumprod(x, axis)`, over the flattened array when `axis` is None.
#[pyfunction]
#[pyo3(signature = (x, axis=None))]
fn cumprod(py: Python<'_>, x: &Bound<'_, PyAny>, axis: Option<isize>) -> PyResult<Py<PyAny>> {
    ops::scan(py, x, axis, true)
}

/// `np.where(condition, a, b)`.
#[pyfunction]
#[pyo3(name = "where")]
fn where_(
    py: Python<'_>,
    condition: &Bound<'_, PyAny>,
    a: &Bound<'_, PyAny>,
    b: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    ops::select(py, condition, a, b)
}

pub(crate) fn dot(
    py: Python<'_>,
    a: &Bound<'_, PyAny>,
    b: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    let scalar = |x: &Bound<'_, PyAny>| -> PyResult<bool> {
        Ok(x.getattr("ndim")
            .and_then(|n| n.extract::<usize>())
            .unwrap_or(0)
            == 0)
    };
    let ndim = |x: &Bound<'_, PyAny>| -> usize {
        x.getattr("ndim")
            .and_then(|n| n.extract::<usize>())
            .unwrap_or(0)
    };
    if ndim(a) > 2 || ndim(b) > 2 {
        // N-D dot is a tensordot, composed in Python.
        return Ok(py
            .import("tracker._linalg")?
            .getattr("dot")?
            .call1((a, b))?
            .unbind());
    }
    let out = if scalar(a)? || scalar(b)? {
        ops::binary(py, tracker_core::ops::binary::Binary::Mul, a, b)?
    } else {
        ops::matmul(py, a, b)?
    };
    if out.is(py.NotImplemented()) {
        return Err(PyTypeError::new_err("dot: unsupported operand types"));
    }
    Ok(out)
}

/// `np.dot(a, b)` (and `np.matmul` for 1-D and 2-D operands).
#[pyfunction]
#[pyo3(name = "dot")]
fn dot_py(py: Python<'_>, a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    dot(py, a, b)
}

/// `x` placed into a zero array of `shape` at `key` (differentiable in `x`).
#[pyfunction]
fn place(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    shape: Vec<usize>,
    key: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    ops::place(py, x, shape, key)
}

/// A handle to `x` that does not keep its tape from being cleared: what a rule's
/// pullback captures (it runs only while the rule's node is alive).
#[pyfunction]
fn uncounted(py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    match tracked_of(x) {
        Some(t) => output_to_py(py, Output::Tracked(t.uncounted())),
        None => Ok(x.clone().unbind()),
    }
}

/// `x`, marked so that any backward pass through it raises `message`.
#[pyfunction]
fn nobacksies(py: Python<'_>, message: &str, x: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let arg = convert::arg_or_raise(x, None, "nobacksies")?;
    output_to_py(
        py,
        tracker_core::apply(Op::Nobacksies(message.into()), &[arg]).py()?,
    )
}

/// Turns anomaly mode on or off for this thread; returns the previous setting.
#[pyfunction]
fn set_anomaly(enabled: bool) -> bool {
    tracker_core::set_anomaly(enabled)
}

/// Polled by long backward passes: a pending signal (Ctrl-C) becomes its exception.
fn interrupted() -> tracker_core::Result<()> {
    Python::attach(|py| py.check_signals()).map_err(|e| tracker_core::Error::External {
        rule: "interrupt",
        payload: tracker_core::Payload(std::sync::Arc::new(e)),
    })
}

/// Where user code recorded the current op: the innermost frame outside tracker.
fn location() -> Option<String> {
    Python::attach(|py| -> PyResult<Option<String>> {
        let stack = py.import("traceback")?.call_method0("extract_stack")?;
        for frame in stack
            .try_iter()?
            .collect::<PyResult<Vec<_>>>()?
            .iter()
            .rev()
        {
            let file: String = frame.getattr("filename")?.extract()?;
            if file.contains("/tracker/") || file.contains("\\tracker\\") {
                continue;
            }
            let line: usize = frame.getattr("lineno")?.extract()?;
            let name: String = frame.getattr("name")?.extract()?;
            return Ok(Some(format!("{file}:{line} in {name}")));
        }
        Ok(None)
    })
    .ok()
    .flatten()
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<PyTrackedArray>()?;
    m.add_class::<PyTrackedReal>()?;
    m.add_class::<scope::PyScope>()?;
    m.add("TrackerError", py.get_type::<errors::TrackerError>())?;
    m.add("ConsumedError", py.get_type::<errors::ConsumedError>())?;
    m.add("NestingError", py.get_type::<errors::NestingError>())?;
    m.add("ThreadError", py.get_type::<errors::ThreadError>())?;
    m.add("LossError", py.get_type::<errors::LossError>())?;
    m.add("AnomalyError", py.get_type::<errors::AnomalyError>())?;
    tracker_core::set_location_hook(location);
    tracker_core::set_interrupt_hook(interrupted);
    tracker_core::set_retire_hook(rules::tape_cleared);
    tracker_core::ops::special::set_evaluator(special::evaluate);
    m.add_function(wrap_pyfunction!(param, m)?)?;
    m.add_function(wrap_pyfunction!(scope::arrange_plain, m)?)?;
    m.add_function(wrap_pyfunction!(back, m)?)?;
    m.add_function(wrap_pyfunction!(grad, m)?)?;
    m.add_function(wrap_pyfunction!(data, m)?)?;
    m.add_function(wrap_pyfunction!(istracked, m)?)?;
    m.add_function(wrap_pyfunction!(isleaf, m)?)?;
    m.add_function(wrap_pyfunction!(zero_grad, m)?)?;
    m.add_function(wrap_pyfunction!(update, m)?)?;
    m.add_function(wrap_pyfunction!(set_grad_enabled, m)?)?;
    m.add_function(wrap_pyfunction!(set_functions, m)?)?;
    m.add_function(wrap_pyfunction!(where_, m)?)?;
    m.add_function(wrap_pyfunction!(cumsum, m)?)?;
    m.add_function(wrap_pyfunction!(unary, m)?)?;
    m.add_function(wrap_pyfunction!(ufuncs, m)?)?;
    m.add_function(wrap_pyfunction!(special::special_py, m)?)?;
    m.add_function(wrap_pyfunction!(special::polygamma, m)?)?;
    m.add_function(wrap_pyfunction!(special::special_functions, m)?)?;
    m.add_function(wrap_pyfunction!(graph, m)?)?;
    m.add_function(wrap_pyfunction!(cumprod, m)?)?;
    m.add_function(wrap_pyfunction!(dot_py, m)?)?;
    m.add_function(wrap_pyfunction!(place, m)?)?;
    m.add_function(wrap_pyfunction!(linalg::linalg, m)?)?;
    m.add_function(wrap_pyfunction!(nobacksies, m)?)?;
    m.add_function(wrap_pyfunction!(uncounted, m)?)?;
    m.add_function(wrap_pyfunction!(set_anomaly, m)?)?;
    m.add_function(wrap_pyfunction!(num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(reset_thread_tape, m)?)?;
    m.add_function(wrap_pyfunction!(tape_length, m)?)?;
    m.add_function(wrap_pyfunction!(blas::use_blas, m)?)?;
    m.add_function(wrap_pyfunction!(rules::record_rule, m)?)?;
    m.add_class::<rules::TapeObjects>()?;
    m.add_function(wrap_pyfunction!(scope::enter_scope, m)?)?;
    m.add_class::<nn::PyGatherIndex>()?;
    m.add_function(wrap_pyfunction!(nn::gather, m)?)?;
    m.add_function(wrap_pyfunction!(nn::scatter, m)?)?;
    Ok(())
}
