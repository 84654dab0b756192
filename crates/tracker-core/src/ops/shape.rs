//! Shape ops: transpose, broadcast_to, shift, and `where`.
//!
//! ```
//! use std::sync::Arc;
//!
//! use tracker_core::ops::shape::Mask;
//! use tracker_core::{Op, Shape, Value};
//!
//! # fn main() -> tracker_core::Result<()> {
//! let x = Value::from_vec(&[3], vec![1.0, 2.0, 3.0])?;
//! let later = Op::Shift { axis: 0, by: 1, fill: 0.0 }.forward(&[&x])?;
//! assert_eq!(later.to_f64_vec(), vec![0.0, 1.0, 2.0]);
//! let mask = Arc::new(Mask { shape: Shape::from_slice(&[3]), bits: vec![true, false, true] });
//! assert_eq!(Op::Where(mask).forward(&[&x, &later])?.to_f64_vec(), vec![1.0, 1.0, 3.0]);
//! # Ok(())
//! # }
//! ```

use crate::broadcast::broadcast_shapes;
use crate::error::{Result, index_error, shape_error};
use crate::kernel::zip;
use crate::num::Float;
use crate::op::{Backend, Contributions, each_input};
use crate::value::{Array, Dtype, Shape, Value, alloc, reserve, size_of};

/// A boolean condition, as `where` saves it: [`Op::Where`](crate::Op::Where) takes its
/// first operand where the condition holds (broadcast), its second elsewhere.
///
/// ```
/// use std::sync::Arc;
///
/// use tracker_core::ops::shape::Mask;
/// use tracker_core::{Arg, Op, Output, Shape, Tracked, Value, apply, backward};
///
/// # fn main() -> tracker_core::Result<()> {
/// let x = Tracked::param(Value::from_vec(&[2], vec![1.0, 2.0])?);
/// let first = Arc::new(Mask { shape: Shape::from_slice(&[2]), bits: vec![true, false] });
/// let zero = Arg::Value(Value::scalar(0.0, x.dtype()));
/// let Output::Tracked(y) = apply(Op::Where(first), &[Arg::Tracked(x.clone()), zero])?
/// else {
///     unreachable!("x is tracked")
/// };
/// assert_eq!(y.value().to_f64_vec(), vec![1.0, 0.0]);
/// backward(&y.sum()?, None, true)?;
/// assert_eq!(x.grad()?.to_f64_vec(), vec![1.0, 0.0]);
/// # Ok(())
/// # }
/// ```
pub struct Mask {
    /// The condition's shape (it broadcasts against the operands).
    pub shape: Shape,
    /// The condition, row-major.
    pub bits: Vec<bool>,
}

impl Mask {
    /// The condition as 0/1 values of `dtype` (`negate` gives 1 where it is false).
    pub(crate) fn to_value(&self, dtype: Dtype, negate: bool) -> Result<Value> {
        let ones = self
            .bits
            .iter()
            .map(|&b| if b != negate { 1.0 } else { 0.0 });
        match dtype {
            Dtype::F32 => Ok(Value::F32(Array::from_vec(
                &self.shape,
                ones.map(|v| v as f32).collect(),
            )?)),
            Dtype::F64 => Ok(Value::F64(Array::from_vec(&self.shape, ones.collect())?)),
        }
    }
}

/// A requested shape (one entry may be -1, inferred) for an array of `size` elements,
/// as `reshape` takes it. Fails with [`Error::Shape`](crate::Error::Shape) when no shape
/// fits.
///
/// ```
/// use tracker_core::ops::shape::resolve_shape;
///
/// # fn main() -> tracker_core::Result<()> {
/// assert_eq!(resolve_shape(&[2, -1], 6)?.as_slice(), &[2, 3]);
/// assert!(resolve_shape(&[4, -1], 6).is_err());
/// assert!(resolve_shape(&[-1, -1], 6).is_err());
/// # Ok(())
/// # }
/// ```
pub fn resolve_shape(requested: &[isize], size: usize) -> Result<Shape> {
    let known_dims: Shape = requested
        .iter()
        .filter(|&&d| d >= 0)
        .map(|&d| d as usize)
        .collect();
    let known = size_of(&known_dims, "reshape")?;
    let unknown = requested.iter().filter(|&&d| d < 0).count();
    let bad = || {
        shape_error(
            "reshape",
            format!("cannot reshape array of size {size} into shape {requested:?}"),
        )
    };
    if unknown > 1 || requested.iter().any(|&d| d < -1) {
        return Err(bad());
    }
    let shape: Shape = requested
        .iter()
        .map(|&d| {
            if d < 0 {
                size.checked_div(known).unwrap_or(0)
            } else {
                d as usize
            }
        })
        .collect();
    if size_of(&shape, "reshape")? != size {
        return Err(bad());
    }
    Ok(shape)
}

/// The inverse of a permutation of axes.
pub(crate) fn inverse_permutation(perm: &[usize]) -> Shape {
    let mut inverse: Shape = perm.iter().map(|_| 0).collect();
    for (k, &p) in perm.iter().enumerate() {
        if let Some(slot) = inverse.get_mut(p) {
            *slot = k;
        }
    }
    inverse
}

/// Checks that `perm` is a permutation of `0..ndim`.
pub(crate) fn check_permutation(perm: &[usize], ndim: usize) -> Result<()> {
    let mut seen = vec![false; ndim];
    for &p in perm {
        match seen.get_mut(p) {
            Some(s) if !*s => *s = true,
            _ => {
                return Err(index_error(
                    "transpose",
                    format!("axes {perm:?} are not a permutation of {ndim} axes"),
                ));
            }
        }
    }
    if perm.len() != ndim {
        return Err(index_error(
            "transpose",
            format!("axes {perm:?} do not match an array of {ndim} dimensions"),
        ));
    }
    Ok(())
}

/// The axes of `x` permuted (a copy, row-major).
pub(crate) fn transpose(x: &Value, perm: &[usize]) -> Result<Value> {
    check_permutation(perm, x.shape().len())?;
    let shape: Shape = perm
        .iter()
        .map(|&p| x.shape().get(p).copied().unwrap_or(1))
        .collect();
    Ok(map_value!(x, a => Array::from_vec(&shape, permute(a.as_slice(), a.shape(), perm)?)?))
}

/// The elements of a row-major array of `shape` in the order of its axes permuted by
/// `perm`: an odometer over the output whose innermost axis walks the input with one
/// stride (ndarray's iterator over a dynamic-dimensional permuted view is ~20x slower).
fn permute<T: Copy + Default>(src: &[T], shape: &[usize], perm: &[usize]) -> Result<Vec<T>> {
    let mut strides = vec![1usize; shape.len()];
    let mut acc = 1usize;
    for (s, &d) in strides.iter_mut().zip(shape).rev() {
        *s = acc;
        acc = acc.saturating_mul(d);
    }
    let dims: Vec<usize> = perm
        .iter()
        .map(|&p| shape.get(p).copied().unwrap_or(1))
        .collect();
    let steps: Vec<usize> = perm
        .iter()
        .map(|&p| strides.get(p).copied().unwrap_or(0))
        .collect();
    let len = size_of(&dims, "transpose")?;
    let mut out = reserve(len, "transpose")?;
    if len == 0 {
        return Ok(out);
    }
    let (outer_dims, inner_len, inner_step) = match (dims.split_last(), steps.last()) {
        (Some((&n, rest)), Some(&step)) => (rest, n, step),
        _ => (&[][..], 1, 0),
    };
    let mut index = vec![0usize; outer_dims.len()];
    let mut base = 0usize;
    loop {
        out.extend(
            (0..inner_len).map(|i| src.get(base + i * inner_step).copied().unwrap_or_default()),
        );
        // Advance the odometer over the outer axes, last fastest.
        let mut k = outer_dims.len();
        loop {
            if k == 0 {
                return Ok(out);
            }
            k -= 1;
            let (Some(i), Some(&d), Some(&step)) =
                (index.get_mut(k), outer_dims.get(k), steps.get(k))
            else {
                return Ok(out);
            };
            *i += 1;
            base += step;
            if *i < d {
                break;
            }
            base -= step * d;
            *i = 0;
        }
    }
}

/// `x` broadcast to `shape`, kept symbolic: its elements are written out only when
/// something other than an elementwise kernel or a product reads them.
pub(crate) fn broadcast_to(x: &Value, shape: &[usize]) -> Result<Value> {
    size_of(shape, "broadcast_to")?;
    let joint = broadcast_shapes("broadcast_to", x.shape(), shape)?;
    if joint.as_slice() != shape {
        return Err(shape_error(
            "broadcast_to",
            format!(
                "cannot broadcast an array of shape {:?} to shape {shape:?}",
                x.shape()
            ),
        ));
    }
    if x.shape() == shape {
        return Ok(x.clone());
    }
    // A broadcast value stays known to be one value (a sum's seed on its way back).
    Ok(map_value!(x, a => match a.uniform() {
        Some(&v) => Array::full(shape, v, "broadcast_to")?,
        None => Array::repeated(a.as_slice().to_vec(), a.shape(), shape, "broadcast_to")?,
    }))
}

/// The length of `axis` of `shape`, or the error naming `op` when there is no such axis.
pub(crate) fn axis_length(op: &'static str, shape: &[usize], axis: usize) -> Result<usize> {
    shape.get(axis).copied().ok_or_else(|| {
        index_error(
            op,
            format!(
                "axis {axis} is out of bounds for {} dimensions",
                shape.len()
            ),
        )
    })
}

/// `y[.., i, ..] = x[.., i - by, ..]` along `axis`, and `fill` where `i - by` is outside.
pub(crate) fn shift(x: &Value, axis: usize, by: isize, fill: f64) -> Result<Value> {
    let shape = x.shape();
    let n = axis_length("shift", shape, axis)?;
    let inner = size_of(shape.get(axis + 1..).unwrap_or(&[]), "shift")?;
    fn typed<T: Float>(
        a: &Array<T>,
        n: usize,
        inner: usize,
        by: isize,
        fill: T,
    ) -> Result<Array<T>> {
        let src = a.as_slice();
        let mut out = alloc(src.len(), fill, "shift")?;
        // A shift by the whole axis or more leaves only the fill.
        if by.unsigned_abs() >= n {
            return Array::from_vec(a.shape(), out);
        }
        let offset = by * inner as isize;
        for (k, o) in out.iter_mut().enumerate() {
            let i = (k / inner.max(1)) % n.max(1);
            let from = i as isize - by;
            if from >= 0
                && (from as usize) < n
                && let Some(&v) = src.get((k as isize - offset) as usize)
            {
                *o = v;
            }
        }
        Array::from_vec(a.shape(), out)
    }
    Ok(map_value!(x, a => typed(a, n, inner, by, Float::from_f64(fill))?))
}

/// `where(mask, a, b)` with broadcasting.
pub(crate) fn select(mask: &Mask, a: &Value, b: &Value) -> Result<Value> {
    let shape = broadcast_shapes(
        "where",
        &mask.shape,
        &broadcast_shapes("where", a.shape(), b.shape())?,
    )?;
    let m = mask.to_value(a.dtype(), false)?;
    match (&m, a, b) {
        (Value::F32(m), Value::F32(a), Value::F32(b)) => {
            Ok(Value::F32(zip("where", [m, a, b], &shape, |[m, a, b]| {
                if m != 0.0 { a } else { b }
            })?))
        }
        (Value::F64(m), Value::F64(a), Value::F64(b)) => {
            Ok(Value::F64(zip("where", [m, a, b], &shape, |[m, a, b]| {
                if m != 0.0 { a } else { b }
            })?))
        }
        _ => Err(crate::op::mixed_dtypes("where")),
    }
}

/// `where`'s gradient: `dy` where the mask holds goes to `a`, the rest to `b`.
pub(crate) fn select_pullback<B: Backend>(
    b: &mut B,
    mask: &Mask,
    x1: &B::A,
    x2: &B::A,
    dy: &B::A,
    need1: bool,
    need2: bool,
) -> Result<Contributions<B::A>> {
    each_input(b, &[(x1, need1), (x2, need2)], |b, k| {
        let m = mask.to_value(b.dtype(dy), k == 1)?;
        let m = b.constant(m)?;
        b.mul(dy, &m)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shift_fills_and_moves() {
        let x = Value::from_vec(&[2, 3], vec![1., 2., 3., 4., 5., 6.]).ok();
        let y = x.as_ref().and_then(|x| shift(x, 1, 1, 9.0).ok());
        assert_eq!(
            y.map(|v| v.to_f64_vec()),
            Some(vec![9., 1., 2., 9., 4., 5.])
        );
        let y = x.as_ref().and_then(|x| shift(x, 0, -1, 0.0).ok());
        assert_eq!(
            y.map(|v| v.to_f64_vec()),
            Some(vec![4., 5., 6., 0., 0., 0.])
        );
    }

    #[test]
    fn transpose_and_broadcast() {
        let x = Value::from_vec(&[2, 3], vec![1., 2., 3., 4., 5., 6.]).ok();
        let t = x.as_ref().and_then(|x| transpose(x, &[1, 0]).ok());
        assert_eq!(
            t.map(|v| v.to_f64_vec()),
            Some(vec![1., 4., 2., 5., 3., 6.])
        );
        let b = Value::from_vec(&[2], vec![1., 2.])
            .ok()
            .and_then(|x| broadcast_to(&x, &[2, 2]).ok());
        assert_eq!(b.map(|v| v.to_f64_vec()), Some(vec![1., 2., 1., 2.]));
    }
}
