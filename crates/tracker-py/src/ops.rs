//! The per-operation path: operators, `__array_ufunc__`, indexing and reductions, all
//! in Rust. No rule lives here: each call converts its operands and applies a core op.

use numpy::{
    PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::IntoPyObjectExt;
use pyo3::exceptions::{PyIndexError, PyTypeError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyEllipsis, PyFloat, PyInt, PyNone, PySlice, PyString, PyTuple};
use tracker_core::op::Arrays;
use tracker_core::ops::binary::Binary;
use tracker_core::ops::index::{IndexItem, plan};
use tracker_core::ops::reduce::{Reduce, cumprod, normalize_axes};
use tracker_core::ops::shape::{Mask, resolve_shape};
use tracker_core::ops::unary::Unary;
use tracker_core::{Arg, Dtype, Live, Op, Output, Shape, Tracked, Value, apply};

use crate::convert::{arg_or_raise, arg_with, numpy, output_to_py, tracked_operand, unsupported};
use crate::errors::IntoPyResult;
use crate::tracked::tracked_of;

/// Elements an op reads above which it runs without the GIL.
const DETACH_ABOVE: usize = 1 << 16;

/// Applies `op` and hands the result to Python; large ops release the GIL meanwhile.
pub fn run(py: Python<'_>, op: Op, args: &[Arg]) -> PyResult<Py<PyAny>> {
    let work: usize = args.iter().map(|a| a.with_value(Value::len)).sum();
    let out = if work > DETACH_ABOVE {
        py.detach(|| apply(op, args))
    } else {
        apply(op, args)
    };
    output_to_py(py, out.py()?)
}

/// The operands of a binary op, each `None` when tracker does not take its type. A
/// Python number takes the dtype of the tracked operand (NEP 50's weak scalars).
fn operands(
    a: &Bound<'_, PyAny>,
    b: &Bound<'_, PyAny>,
    op: &str,
) -> PyResult<(Option<Arg>, Option<Arg>)> {
    let (ta, tb) = (tracked_operand(a), tracked_operand(b));
    let like = ta.as_ref().or(tb.as_ref()).map(Tracked::dtype);
    Ok((arg_with(a, ta, like, op)?, arg_with(b, tb, like, op)?))
}

/// Both operands of a binary op, or the error naming the one tracker does not take.
fn operands_or_raise(a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>, op: &str) -> PyResult<[Arg; 2]> {
    match operands(a, b, op)? {
        (Some(x), Some(y)) => Ok([x, y]),
        (None, _) => Err(unsupported(a, op)),
        (_, None) => Err(unsupported(b, op)),
    }
}

/// `base ** exponent`. A Python 2 as the exponent squares, as NumPy does (`x * x`
/// exactly, where `pow` may round differently): one input, a simpler rule.
pub fn power(
    py: Python<'_>,
    base: &Bound<'_, PyAny>,
    exponent: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    let two = (exponent.is_exact_instance_of::<PyInt>()
        || exponent.is_exact_instance_of::<PyFloat>())
        && exponent.extract::<f64>().is_ok_and(|e| e == 2.0);
    if two && let Some(t) = tracked_of(base) {
        return unary(py, Unary::Square, &t);
    }
    binary(py, Binary::Pow, base, exponent)
}

/// `a <op> b`; `NotImplemented` for operand types tracker does not take.
pub fn binary(
    py: Python<'_>,
    op: Binary,
    a: &Bound<'_, PyAny>,
    b: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    let (Some(x), Some(y)) = operands(a, b, op.name())? else {
        return Ok(py.NotImplemented());
    };
    run(py, Op::Binary(op), &[x, y])
}

pub fn unary(py: Python<'_>, op: Unary, x: &Tracked) -> PyResult<Py<PyAny>> {
    run(py, Op::Unary(op), &[Arg::Tracked(x.clone())])
}

pub fn matmul(py: Python<'_>, a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let (Some(x), Some(y)) = operands(a, b, "matmul")? else {
        return Ok(py.NotImplemented());
    };
    run(py, Op::Matmul, &[x, y])
}

/// Axes as Python passes them: `None`, an int, or a tuple of ints.
fn axes_arg(axis: Option<&Bound<'_, PyAny>>, op: &str) -> PyResult<Option<Vec<isize>>> {
    let Some(a) = axis.filter(|a| !a.is_none()) else {
        return Ok(None);
    };
    if a.is_instance_of::<pyo3::types::PyBool>() {
        return Err(PyTypeError::new_err(format!(
            "{op}: axis must be an int or a tuple of ints, not a bool"
        )));
    }
    match a.extract::<isize>() {
        Ok(k) => Ok(Some(vec![k])),
        Err(_) => int_sequence(a, "axis", op).map(Some),
    }
}

pub fn reduce(
    py: Python<'_>,
    x: &Tracked,
    kind: Reduce,
    axis: Option<&Bound<'_, PyAny>>,
    keepdims: bool,
) -> PyResult<Py<PyAny>> {
    let axes = axes_arg(axis, kind.name())?;
    let axes = normalize_axes(kind.name(), axes.as_deref(), x.shape().len()).py()?;
    let op = Op::Reduce {
        kind,
        axes,
        keepdims,
    };
    run(py, op, &[Arg::Tracked(x.clone())])
}

/// NumPy's limit on dimensions: longer axis or shape lists are refused before they are read.
const MAX_DIMS: usize = 64;

/// A short sequence of integers (axes, a shape), refused when longer than any array's
/// dimensions, so a huge sequence is not read.
fn int_sequence(obj: &Bound<'_, PyAny>, what: &str, op: &str) -> PyResult<Vec<isize>> {
    let n = obj.len().map_err(|_| {
        PyTypeError::new_err(format!("{op}: {what} must be an int or a sequence of ints"))
    })?;
    if n > MAX_DIMS {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "{op}: {what} has {n} entries, but arrays have at most {MAX_DIMS} dimensions"
        )));
    }
    obj.extract::<Vec<isize>>().map_err(|_| {
        PyTypeError::new_err(format!("{op}: {what} must be an int or a sequence of ints"))
    })
}

/// A shape given as `f(2, 3)` or `f((2, 3))`.
fn shape_args(args: &Bound<'_, PyTuple>, op: &str) -> PyResult<Vec<isize>> {
    match args.len() {
        1 => {
            let first = args.get_item(0)?;
            match first.extract::<isize>() {
                Ok(d) => Ok(vec![d]),
                Err(_) => int_sequence(&first, "the shape", op),
            }
        }
        _ => int_sequence(args.as_any(), "the shape", op),
    }
}

pub fn reshape(py: Python<'_>, x: &Tracked, args: &Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
    let requested = shape_args(args, "reshape")?;
    let size = x.value().len();
    let shape = resolve_shape(&requested, size).py()?;
    run(py, Op::Reshape(shape), &[Arg::Tracked(x.clone())])
}

pub fn transpose(py: Python<'_>, x: &Tracked, args: &Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
    let ndim = x.shape().len();
    let perm: Shape = if args.is_empty() || (args.len() == 1 && args.get_item(0)?.is_none()) {
        (0..ndim).rev().collect()
    } else {
        shape_args(args, "transpose")?
            .iter()
            .map(|&a| {
                if a < 0 {
                    (a + ndim as isize) as usize
                } else {
                    a as usize
                }
            })
            .collect()
    };
    run(py, Op::Transpose(perm), &[Arg::Tracked(x.clone())])
}

/// `where(condition, a, b)`; the condition is a constant (it has no gradient).
pub fn select(
    py: Python<'_>,
    condition: &Bound<'_, PyAny>,
    a: &Bound<'_, PyAny>,
    b: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    let np = numpy(py)?;
    let condition = match tracked_of(condition) {
        Some(t) => crate::convert::to_numpy(py, t.value())?,
        None => condition.clone(),
    };
    let bools = np.call_method1("asarray", (condition, "bool"))?;
    let shape: Vec<usize> = bools.getattr("shape")?.extract()?;
    let bits: Vec<bool> = bools
        .call_method0("ravel")?
        .call_method0("tolist")?
        .extract()?;
    let mask = Mask {
        shape: shape.into(),
        bits,
    };
    run(
        py,
        Op::Where(mask.into()),
        &operands_or_raise(a, b, "where")?,
    )
}

/// An integer array's shape and its values in row-major order, read from any array-like.
pub fn int_array(obj: &Bound<'_, PyAny>, op: &str) -> PyResult<(Shape, Vec<isize>)> {
    let np = numpy(obj.py())?;
    let arr = np.call_method1("asarray", (obj, np.getattr("intp")?))?;
    // The shape from Python, the values flat: rust-numpy's views stop at 32 dimensions.
    let shape: Vec<usize> = arr.getattr("shape")?.extract()?;
    let shape: Shape = shape.into();
    let arr = arr
        .call_method1("reshape", (-1,))?
        .cast_into::<PyArrayDyn<isize>>()?;
    let readonly = arr.readonly();
    let view = readonly.as_array();
    let mut values = Vec::new();
    values.try_reserve_exact(view.len()).map_err(|_| {
        pyo3::exceptions::PyMemoryError::new_err(format!(
            "{op}: cannot allocate an index of {} elements",
            view.len()
        ))
    })?;
    values.extend(view.iter().copied());
    Ok((shape, values))
}

/// The parts of an index expression: the items of a tuple, or the key itself.
fn key_parts<'py>(key: &Bound<'py, PyAny>) -> Vec<Bound<'py, PyAny>> {
    match key.cast::<PyTuple>() {
        Ok(t) if key.is_exact_instance_of::<PyTuple>() => t.iter().collect(),
        _ => vec![key.clone()],
    }
}

/// A Python index expression as core index items.
fn index_items(key: &Bound<'_, PyAny>, shape: &[usize]) -> PyResult<Vec<IndexItem>> {
    let py = key.py();
    let parts = key_parts(key);
    let np = numpy(py)?;
    let mut items = Vec::with_capacity(parts.len());
    // Boolean masks: where their index arrays start among the items, and their shape.
    let mut masks: Vec<(usize, Vec<usize>)> = Vec::new();
    for part in parts {
        if part.is_instance_of::<PyNone>() {
            items.push(IndexItem::NewAxis);
        } else if part.is_instance_of::<PyEllipsis>() {
            items.push(IndexItem::Ellipsis);
        } else if let Ok(s) = part.cast::<PySlice>() {
            // Bounds beyond any index clamp, as NumPy's slices do.
            let field = |name: &str| -> PyResult<Option<isize>> {
                let v = s.getattr(name)?;
                if v.is_none() {
                    return Ok(None);
                }
                match v.extract::<isize>() {
                    Ok(k) => Ok(Some(k)),
                    Err(_) if v.is_instance_of::<pyo3::types::PyInt>() => Ok(Some(if v.lt(0)? {
                        isize::MIN / 2
                    } else {
                        isize::MAX / 2
                    })),
                    Err(_) => Err(PyTypeError::new_err(format!(
                        "slice indices must be integers or None (slice {name})"
                    ))),
                }
            };
            items.push(IndexItem::Slice {
                start: field("start")?,
                stop: field("stop")?,
                step: field("step")?,
            });
        } else if tracked_of(&part).is_some() {
            return Err(PyTypeError::new_err(
                "an index cannot be a tracked value: pass tr.data(index) for its plain value",
            ));
        } else if part.is_instance_of::<pyo3::types::PyBool>() {
            return Err(PyIndexError::new_err(
                "a boolean scalar is not a supported index",
            ));
        } else if part.is_instance_of::<pyo3::types::PyInt>()
            || part.is_instance(&np.getattr("integer")?)?
        {
            items.push(IndexItem::Int(part.extract().map_err(|_| {
                PyIndexError::new_err(format!("index {part} is out of bounds"))
            })?));
        } else {
            let arr = np.call_method1("asarray", (&part,))?;
            let untyped = arr.cast::<PyUntypedArray>()?;
            // An empty list is float to NumPy, but as an index it selects nothing.
            let kind = match untyped.dtype().kind() {
                b'f' if untyped.len() == 0 => b'i',
                kind => kind,
            };
            match kind {
                b'b' => {
                    let mask_shape: Vec<usize> = arr.getattr("shape")?.extract()?;
                    // Refused before NumPy walks it: a mask's axes are some of the array's.
                    let longest = shape.iter().copied().max().unwrap_or(0);
                    if mask_shape.len() > shape.len().max(1)
                        || mask_shape.iter().any(|&d| d > longest.max(1))
                    {
                        return Err(PyIndexError::new_err(format!(
                            "boolean index of shape {mask_shape:?} does not fit the indexed \
                             array of shape {shape:?}"
                        )));
                    }
                    masks.push((items.len(), mask_shape));
                    for axis in np
                        .call_method1("nonzero", (&arr,))?
                        .cast_into::<PyTuple>()?
                        .iter()
                    {
                        let (shape, values) = int_array(&axis, "getitem")?;
                        items.push(IndexItem::Array { shape, values });
                    }
                }
                b'i' | b'u' => {
                    let (shape, values) = int_array(&arr, "getitem")?;
                    items.push(IndexItem::Array { shape, values });
                }
                _ => {
                    return Err(PyIndexError::new_err(
                        "only integers, slices (`:`), ellipsis (`...`), numpy.newaxis (`None`) and \
                         integer or boolean arrays are valid indices",
                    ));
                }
            }
        }
    }
    check_masks(&items, &masks, shape)?;
    Ok(items)
}

/// A boolean mask must match the axes it indexes, as NumPy requires.
fn check_masks(
    items: &[IndexItem],
    masks: &[(usize, Vec<usize>)],
    shape: &[usize],
) -> PyResult<()> {
    let consumes =
        |item: &IndexItem| usize::from(!matches!(item, IndexItem::NewAxis | IndexItem::Ellipsis));
    let total: usize = items.iter().map(consumes).sum();
    // The axis of `x` each item starts at (an ellipsis takes the axes left over).
    let mut axis = 0usize;
    let mut starts = Vec::with_capacity(items.len());
    for item in items {
        starts.push(axis);
        axis += match item {
            IndexItem::Ellipsis => shape.len().saturating_sub(total),
            other => consumes(other),
        };
    }
    for (first, mask) in masks {
        let Some(&start) = starts.get(*first) else {
            continue;
        };
        let axes = shape.get(start..start + mask.len());
        if !mask.is_empty() && axes != Some(mask.as_slice()) {
            return Err(PyIndexError::new_err(format!(
                "boolean index of shape {mask:?} does not match the indexed array's axes {:?} \
                 (the array has shape {shape:?})",
                axes.unwrap_or(&[])
            )));
        }
    }
    Ok(())
}

pub fn getitem(py: Python<'_>, x: &Tracked, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let shape = x.shape();
    // x[i], the scalar loop's read, skips the general key parsing.
    let int = key
        .is_exact_instance_of::<PyInt>()
        .then(|| key.extract::<isize>().ok())
        .flatten();
    let gather = match int {
        Some(i) => plan(&shape, &[IndexItem::Int(i)]),
        None => {
            if let Some((shape, key)) = without_scalar_bools(key, &shape)? {
                let reshaped = run(py, Op::Reshape(shape.into()), &[Arg::Tracked(x.clone())])?;
                return Ok(reshaped.bind(py).get_item(key)?.unbind());
            }
            plan(&shape, &index_items(key, &shape)?)
        }
    }
    .py()?;
    run(py, Op::Gather(gather.into()), &[Arg::Tracked(x.clone())])
}

fn is_scalar_bool(part: &Bound<'_, PyAny>) -> PyResult<bool> {
    if part.is_instance_of::<pyo3::types::PyBool>() {
        return Ok(true);
    }
    let Ok(arr) = part.cast::<PyUntypedArray>() else {
        return part.is_instance(&numpy(part.py())?.getattr(intern!(part.py(), "bool_"))?);
    };
    Ok(arr.ndim() == 0 && arr.dtype().kind() == b'b')
}

/// A key with boolean scalars made plain, as NumPy reads them: each is a new axis of
/// length 1 in the indexed array, where the scalar stands, indexed by `[0]` (True) or
/// `[]` (False). Gives the array's new shape and the key; `None` when the key has none.
fn without_scalar_bools<'py>(
    key: &Bound<'py, PyAny>,
    shape: &[usize],
) -> PyResult<Option<(Vec<usize>, Bound<'py, PyAny>)>> {
    let py = key.py();
    let parts = key_parts(key);
    let bools = parts
        .iter()
        .map(is_scalar_bool)
        .collect::<PyResult<Vec<bool>>>()?;
    if !bools.contains(&true) {
        return Ok(None);
    }
    // How many axes of the array each part takes (an ellipsis: those left over).
    let takes = |part: &Bound<'py, PyAny>| -> PyResult<usize> {
        if part.is_none() || part.is_instance_of::<PyEllipsis>() {
            return Ok(0);
        }
        match part.cast::<PyUntypedArray>() {
            Ok(arr) if arr.dtype().kind() == b'b' => Ok(arr.ndim()),
            _ => Ok(1),
        }
    };
    let mut counts = Vec::with_capacity(parts.len());
    for (part, &b) in parts.iter().zip(&bools) {
        counts.push(if b { 0 } else { takes(part)? });
    }
    let total: usize = counts.iter().sum();
    let np = numpy(py)?;
    let mut new_shape = Vec::with_capacity(shape.len() + parts.len());
    let mut new_key = Vec::with_capacity(parts.len());
    let mut axis = 0usize;
    for ((part, &b), &count) in parts.iter().zip(&bools).zip(&counts) {
        let count = if part.is_instance_of::<PyEllipsis>() {
            shape.len().saturating_sub(total)
        } else {
            count
        };
        let end = (axis + count).min(shape.len());
        new_shape.extend(shape.get(axis..end).unwrap_or(&[]));
        axis = end;
        if b {
            new_shape.push(1);
            let picked: Vec<isize> = if part.is_truthy()? { vec![0] } else { vec![] };
            new_key.push(np.call_method1("array", (picked, np.getattr("intp")?))?);
        } else {
            new_key.push(part.clone());
        }
    }
    new_shape.extend(shape.get(axis..).unwrap_or(&[]));
    Ok(Some((new_shape, PyTuple::new(py, new_key)?.into_any())))
}

/// `x` placed into a zero array of `shape` at `key` (the transpose of `x[key]`): the
/// piece `np.stack` and `np.concatenate` are assembled from.
pub fn place(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    shape: Vec<usize>,
    key: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    let items = index_items(key, &shape)?;
    let gather = plan(&shape, &items).py()?;
    let arg = arg_or_raise(x, None, "stack")?;
    let value = match &arg {
        Arg::Tracked(t) => t.value(),
        Arg::Value(v) => v.clone(),
    };
    if value.shape() != gather.shape.as_slice() {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "cannot place an array of shape {:?} where shape {:?} is expected",
            value.shape(),
            gather.shape.as_slice()
        )));
    }
    run(py, Op::Scatter(gather.into()), &[arg])
}

/// The error for an operation that would silently drop tracking.
pub fn refuse(what: &str, remedy: &str) -> PyErr {
    PyTypeError::new_err(format!("{what} would drop tracking; {remedy}"))
}

/// NumPy's other names for core ops: (ufunc, the core op's name).
const UFUNC_ALIASES: &[(&str, &str)] = &[
    ("fabs", "absolute"),
    ("radians", "deg2rad"),
    ("degrees", "rad2deg"),
    ("true_divide", "divide"),
    ("float_power", "power"),
    ("expit", "sigmoid"),
];

/// Ufuncs the boundary composes of core ops (see the end of `array_ufunc`).
const UFUNC_COMPOSED: &[&str] = &["positive", "conjugate", "matmul"];

fn core_name(ufunc: &str) -> &str {
    UFUNC_ALIASES
        .iter()
        .find(|(alias, _)| *alias == ufunc)
        .map_or(ufunc, |(_, core)| core)
}

fn ufunc_unary(name: &str) -> Option<Unary> {
    Unary::from_name(core_name(name))
}

fn ufunc_binary(name: &str) -> Option<Binary> {
    Binary::from_name(core_name(name))
}

/// The ufuncs with a gradient on tracked arrays, and those with boolean results.
pub fn ufunc_names() -> (Vec<&'static str>, Vec<&'static str>) {
    let differentiable = Unary::ALL
        .iter()
        .map(|u| u.name())
        .chain(Binary::ALL.iter().map(|b| b.name()))
        .chain(UFUNC_ALIASES.iter().map(|(alias, _)| *alias))
        .chain(UFUNC_COMPOSED.iter().copied())
        .collect();
    (differentiable, COMPARISONS.to_vec())
}

const COMPARISONS: &[&str] = &[
    "less",
    "less_equal",
    "greater",
    "greater_equal",
    "equal",
    "not_equal",
    "isnan",
    "isfinite",
    "isinf",
    "signbit",
    "logical_not",
    "logical_and",
    "logical_or",
    "logical_xor",
];

/// The ufuncs found to be unary ops of tracker's, keyed by the ufunc, with the op's
/// index in `Unary::ALL`: finding one by its name was a third of a call's cost.
static UNARY_UFUNCS: PyOnceLock<Py<PyDict>> = PyOnceLock::new();

/// The unary op `ufunc` computes, if it is one of tracker's (and not SciPy's).
fn unary_ufunc(py: Python<'_>, ufunc: &Bound<'_, PyAny>) -> PyResult<Option<Unary>> {
    let known = UNARY_UFUNCS
        .get_or_try_init(py, || Ok::<_, PyErr>(PyDict::new(py).unbind()))?
        .bind(py);
    if let Some(index) = known.get_item(ufunc)? {
        return Ok(Unary::ALL.get(index.extract::<usize>()?).copied());
    }
    let name = ufunc.getattr(intern!(py, "__name__"))?;
    let name = name.cast::<PyString>()?.to_str()?;
    let op = ufunc_unary(name).filter(|_| crate::special::from_ufunc(name).is_none());
    // Only ufuncs that are ops are kept: a program may make any number of others.
    if let Some(index) = op.and_then(|op| Unary::ALL.iter().position(|&u| u == op)) {
        known.set_item(ufunc, index)?;
    }
    Ok(op)
}

/// `__array_ufunc__`: NumPy's ufuncs on tracked operands.
pub fn array_ufunc(
    py: Python<'_>,
    ufunc: &Bound<'_, PyAny>,
    method: &str,
    inputs: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<Py<PyAny>> {
    // The common case first: a unary ufunc called on a tracked value, no keywords.
    if method == "__call__"
        && inputs.len() == 1
        && kwargs.is_none_or(|k| k.is_empty())
        && let Some(op) = unary_ufunc(py, ufunc)?
        && let Some(x) = tracked_of(&inputs.get_item(0)?)
    {
        return unary(py, op, &x);
    }
    let name = ufunc.getattr(intern!(py, "__name__"))?;
    let name = name.cast::<PyString>()?.to_str()?;
    let arg = |k: usize| inputs.get_item(k);
    let option = |key: &str| -> PyResult<Option<Bound<'_, PyAny>>> {
        match kwargs {
            Some(kw) => Ok(kw.get_item(key)?.filter(|v| !v.is_none())),
            None => Ok(None),
        }
    };
    if option("out")?.is_some() {
        return Err(refuse(
            &format!("np.{name}(..., out=...) into an array"),
            "use the returned value instead of out=",
        ));
    }
    let handled: &[&str] = match method {
        "__call__" | "outer" => &[],
        "reduce" => &["axis", "keepdims"],
        "accumulate" => &["axis"],
        "at" => {
            return Err(PyTypeError::new_err(format!(
                "np.{name}.at updates an array in place, which would drop tracking; use \
                 tr.at(x)[index].add(v) (or .set, .multiply) for the updated value"
            )));
        }
        _ => {
            return Err(PyTypeError::new_err(format!(
                "np.{name}.{method} is not supported on tracked arrays (calls, outer, \
                 add/multiply/maximum/minimum.reduce and add/multiply.accumulate are)"
            )));
        }
    };
    if let Some(kwargs) = kwargs {
        for (key, value) in kwargs.iter() {
            let key: String = key.extract()?;
            if !value.is_none() && !handled.contains(&key.as_str()) {
                return Err(PyTypeError::new_err(format!(
                    "np.{name}: the keyword argument {key}= is not supported on tracked arrays"
                )));
            }
        }
    }
    if method == "reduce" {
        let kind = match name {
            "add" => Reduce::Sum,
            "multiply" => Reduce::Prod,
            "maximum" => Reduce::Max,
            "minimum" => Reduce::Min,
            _ => {
                return Err(PyTypeError::new_err(format!(
                    "np.{name}.reduce is not supported on tracked arrays"
                )));
            }
        };
        let x = tracked_of(&arg(0)?)
            .ok_or_else(|| PyTypeError::new_err("reduce of a non-tracked array"))?;
        // NumPy's reduce runs over axis 0 unless told otherwise; axis=None means all.
        let axis = match (
            kwargs.map(|kw| kw.get_item("axis")).transpose()?.flatten(),
            inputs.len(),
        ) {
            (Some(axis), _) => axis,
            (None, 2..) => arg(1)?,
            (None, _) => 0isize.into_bound_py_any(py)?,
        };
        let keepdims = option("keepdims")?
            .map(|k| k.is_truthy())
            .transpose()?
            .unwrap_or(false);
        return reduce(py, &x, kind, Some(&axis), keepdims);
    }
    if method == "accumulate" {
        let product = match name {
            "add" => false,
            "multiply" => true,
            _ => {
                return Err(PyTypeError::new_err(format!(
                    "np.{name}.accumulate is not supported on tracked arrays (add and \
                     multiply are: np.cumsum and np.cumprod)"
                )));
            }
        };
        let axis = match option("axis")? {
            Some(axis) => axis.extract()?,
            None => 0,
        };
        return scan(py, &arg(0)?, Some(axis), product);
    }
    if method == "outer" {
        let (2, Some(op)) = (inputs.len(), ufunc_binary(name)) else {
            return Err(PyTypeError::new_err(format!(
                "np.{name}.outer is not supported on tracked arrays (the binary ufuncs' are)"
            )));
        };
        return outer(py, op, &arg(0)?, &arg(1)?);
    }
    // SciPy's special functions arrive as ufuncs too.
    if let Some(op) = crate::special::from_ufunc(name).filter(|op| op.arity() == inputs.len()) {
        return crate::special::call(py, op, inputs);
    }
    if name == "_riemann_zeta" {
        return Err(PyTypeError::new_err(
            "scipy.special.zeta(x) has no derivative with respect to x here (neither SciPy nor \
             PyTorch offers one); Hurwitz's zeta(x, q) differentiates in q",
        ));
    }
    match (inputs.len(), ufunc_unary(name), ufunc_binary(name)) {
        (1, Some(op), _) => {
            if let Some(x) = tracked_of(&arg(0)?) {
                return unary(py, op, &x);
            }
        }
        (2, _, Some(op)) => {
            let out = if name == "float_power" {
                float_power(py, &arg(0)?, &arg(1)?)?
            } else {
                binary(py, op, &arg(0)?, &arg(1)?)?
            };
            if out.is(py.NotImplemented()) {
                return Err(PyTypeError::new_err(format!(
                    "np.{name}: unsupported operand types"
                )));
            }
            return Ok(out);
        }
        _ => {}
    }
    if COMPARISONS.contains(&name) {
        // Boolean results carry no gradient: compute them on the plain values.
        let plain: Vec<Py<PyAny>> = inputs
            .iter()
            .map(|x| match tracked_of(&x) {
                Some(t) => Ok(crate::convert::to_numpy(py, t.value())?.unbind()),
                None => Ok(x.unbind()),
            })
            .collect::<PyResult<_>>()?;
        return Ok(ufunc.call1(PyTuple::new(py, plain)?)?.unbind());
    }
    match (inputs.len(), name) {
        (1, "positive" | "conjugate") => Ok(arg(0)?.unbind()),
        (2, "matmul") => matmul(py, &arg(0)?, &arg(1)?),
        _ => Err(PyTypeError::new_err(format!(
            "tracker has no gradient rule for np.{name}; use tr.data(x) to compute it on the plain \
             value, as a constant (the README lists the supported functions)"
        ))),
    }
}

/// A composite's result, a value of the live tape, handed to Python.
fn arg_to_py(py: Python<'_>, a: Arg) -> PyResult<Py<PyAny>> {
    output_to_py(
        py,
        match a {
            Arg::Tracked(t) => Output::Tracked(t),
            Arg::Value(v) => Output::Value(v),
        },
    )
}

/// `np.cumsum` (or `np.cumprod` when `product`) along `axis`, over the flattened array
/// when it is `None`.
pub fn scan(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    axis: Option<isize>,
    product: bool,
) -> PyResult<Py<PyAny>> {
    let name = if product { "cumprod" } else { "cumsum" };
    let mut live = Live;
    let mut x = arg_or_raise(x, None, name)?;
    if axis.is_none() {
        x = live.reshape(&x, &[x.value().len()]).py()?;
    }
    let ndim = x.value().shape().len();
    let axes = normalize_axes(name, Some(&[axis.unwrap_or(0)]), ndim).py()?;
    let axis = axes.first().copied().unwrap_or(0);
    let out = if product {
        cumprod(&mut live, &x, axis)
    } else {
        live.apply(
            Op::Cumsum {
                axis,
                reverse: false,
            },
            &[&x],
        )
    };
    arg_to_py(py, out.py()?)
}

/// `np.float_power(a, b)`: `power` in float64, whatever the operands' dtype.
fn float_power(py: Python<'_>, a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let mut live = Live;
    let mut in_f64 = |x: &Bound<'_, PyAny>| -> PyResult<Arg> {
        let x = arg_or_raise(x, Some(Dtype::F64), "float_power")?;
        if x.value().dtype() == Dtype::F64 {
            return Ok(x);
        }
        live.apply(Op::Cast(Dtype::F64), &[&x]).py()
    };
    let (a, b) = (in_f64(a)?, in_f64(b)?);
    run(py, Op::Binary(Binary::Pow), &[a, b])
}

/// `np.<op>.outer(a, b)`: `a` reshaped to broadcast against every element of `b`.
fn outer(
    py: Python<'_>,
    op: Binary,
    a: &Bound<'_, PyAny>,
    b: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    let [a, b] = operands_or_raise(a, b, op.name())?;
    let mut shape: Shape = a.value().shape().into();
    shape.extend(std::iter::repeat_n(1, b.value().shape().len()));
    let a = Live.reshape(&a, &shape).py()?;
    run(py, Op::Binary(op), &[a, b])
}

/// The error for a NumPy function with no rule.
pub fn no_rule(func: &Bound<'_, PyAny>) -> PyErr {
    let module: String = func
        .getattr("__module__")
        .and_then(|m| m.extract())
        .unwrap_or_else(|_| "numpy".into());
    let name: String = func
        .getattr("__name__")
        .and_then(|m| m.extract())
        .unwrap_or_else(|_| "?".into());
    PyTypeError::new_err(format!(
        "tracker has no gradient rule for {module}.{name}; use tr.data(x) to compute it on the \
         plain value, as a constant (the README lists the supported functions)"
    ))
}
