//! Reductions over axes: sum, mean, prod, max, min; and running sums and products.
//!
//! ```
//! use tracker_core::op::{Arrays, Eager, Op};
//! use tracker_core::ops::reduce::{Reduce, normalize_axes};
//! use tracker_core::Value;
//!
//! # fn main() -> tracker_core::Result<()> {
//! let x = Value::from_vec(&[2, 3], vec![1.0, 5.0, 3.0, 4.0, 2.0, 6.0])?;
//! let axes = normalize_axes("max", Some(&[-1]), 2)?; // axis=-1
//! let max = Op::Reduce { kind: Reduce::Max, axes, keepdims: true };
//! let y = Eager.apply(max, &[&x])?;
//! assert_eq!((y.shape(), y.to_f64_vec()), (&[2, 1][..], vec![5.0, 6.0]));
//! # Ok(())
//! # }
//! ```

use crate::broadcast::BroadcastOffsets;
use crate::error::{Error, Result};
use crate::num::Float;
use crate::op::{Arrays, Backend, Op};
use crate::value::{Array, Shape, Value, alloc, size_of, try_collect};

/// Which reduction [`Op::Reduce`] computes.
///
/// ```
/// use tracker_core::op::Axes;
/// use tracker_core::ops::reduce::Reduce;
/// use tracker_core::{Arg, Op, Tracked, Value, apply};
///
/// # fn main() -> tracker_core::Result<()> {
/// let x = Tracked::param(Value::from_vec(&[4], vec![1.0, 2.0, 3.0, 6.0])?);
/// let mean = Op::Reduce { kind: Reduce::Mean, axes: Axes::from_slice(&[0]), keepdims: false };
/// assert_eq!(apply(mean, &[Arg::Tracked(x)])?.value().item(), Some(3.0));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduce {
    /// The sum.
    Sum,
    /// The arithmetic mean.
    Mean,
    /// The product (its gradient is right at zeros).
    Prod,
    /// The maximum (NaN propagates; tied maxima share the gradient equally).
    Max,
    /// The minimum (NaN propagates; tied minima share the gradient equally).
    Min,
}

impl Reduce {
    /// Every reduction, for coverage tests.
    ///
    /// ```
    /// use tracker_core::ops::reduce::Reduce;
    ///
    /// assert_eq!(Reduce::ALL.len(), 5);
    /// assert!(Reduce::ALL.contains(&Reduce::Prod));
    /// ```
    pub const ALL: &'static [Reduce] = &[
        Reduce::Sum,
        Reduce::Mean,
        Reduce::Prod,
        Reduce::Max,
        Reduce::Min,
    ];

    /// The reduction's name, as NumPy spells it.
    ///
    /// ```
    /// use tracker_core::ops::reduce::Reduce;
    ///
    /// assert_eq!(Reduce::Sum.name(), "sum");
    /// assert_eq!(Reduce::Min.name(), "min");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Reduce::Sum => "sum",
            Reduce::Mean => "mean",
            Reduce::Prod => "prod",
            Reduce::Max => "max",
            Reduce::Min => "min",
        }
    }
}

/// Axes as NumPy accepts them (`None` for all, negative from the end), sorted and
/// checked against `ndim`. `op` names the operation in the error for an axis out of
/// range or repeated.
///
/// ```
/// use tracker_core::ops::reduce::normalize_axes;
///
/// # fn main() -> tracker_core::Result<()> {
/// assert_eq!(normalize_axes("sum", Some(&[-1, 0]), 3)?.as_slice(), &[0, 2]);
/// assert_eq!(normalize_axes("sum", None, 2)?.as_slice(), &[0, 1]);
/// assert!(normalize_axes("sum", Some(&[3]), 3).is_err());
/// assert!(normalize_axes("sum", Some(&[1, -2]), 3).is_err()); // axis 1 twice
/// # Ok(())
/// # }
/// ```
pub fn normalize_axes(
    op: &'static str,
    axes: Option<&[isize]>,
    ndim: usize,
) -> Result<crate::op::Axes> {
    let Some(axes) = axes else {
        return Ok((0..ndim).collect());
    };
    let mut out = crate::op::Axes::new();
    for &a in axes {
        let k = if a < 0 { a + ndim as isize } else { a };
        if k < 0 || k as usize >= ndim {
            return Err(crate::error::index_error(
                op,
                format!("axis {a} is out of bounds for array of dimension {ndim}"),
            ));
        }
        if out.contains(&(k as usize)) {
            return Err(Error::Shape {
                op,
                message: format!("duplicate value in 'axis': {a}"),
            });
        }
        out.push(k as usize);
    }
    out.sort_unstable();
    Ok(out)
}

/// `shape` with the reduced `axes` kept as length 1.
pub(crate) fn kept_shape(shape: &[usize], axes: &[usize]) -> Shape {
    shape
        .iter()
        .enumerate()
        .map(|(k, &d)| if axes.contains(&k) { 1 } else { d })
        .collect()
}

fn reduced_shape(shape: &[usize], axes: &[usize], keepdims: bool) -> Shape {
    if keepdims {
        return kept_shape(shape, axes);
    }
    shape
        .iter()
        .enumerate()
        .filter(|(k, _)| !axes.contains(k))
        .map(|(_, &d)| d)
        .collect()
}

/// The reduction of `x` over `axes`.
pub(crate) fn forward(kind: Reduce, x: &Value, axes: &[usize], keepdims: bool) -> Result<Value> {
    if let Some(&bad) = axes.iter().find(|&&k| k >= x.shape().len()) {
        return Err(crate::error::index_error(
            kind.name(),
            format!(
                "axis {bad} is out of bounds for array of dimension {}",
                x.shape().len()
            ),
        ));
    }
    Ok(map_value!(x, a => reduce_array(kind, a, axes, keepdims)?))
}

fn reduce_array<T: Float>(
    kind: Reduce,
    x: &Array<T>,
    axes: &[usize],
    keepdims: bool,
) -> Result<Array<T>> {
    let op = kind.name();
    let kept = kept_shape(x.shape(), axes);
    let reduced: Shape = axes
        .iter()
        .filter_map(|&k| x.shape().get(k).copied())
        .collect();
    let count = size_of(&reduced, op)?;
    let init = match kind {
        Reduce::Sum | Reduce::Mean => T::zero(),
        Reduce::Prod => T::one(),
        Reduce::Max => T::from_f64(f64::NEG_INFINITY),
        Reduce::Min => T::from_f64(f64::INFINITY),
    };
    if count == 0 && matches!(kind, Reduce::Max | Reduce::Min) && !kept.contains(&0) {
        return Err(Error::Shape {
            op,
            message: "zero-size array to reduction operation which has no identity".into(),
        });
    }
    let mut out = alloc(size_of(&kept, op)?, init, op)?;
    let walk = BroadcastOffsets::new(&kept, x.shape());
    for (&v, k) in x.as_slice().iter().zip(walk) {
        if let Some(acc) = out.get_mut(k) {
            *acc = match kind {
                Reduce::Sum | Reduce::Mean => *acc + v,
                Reduce::Prod => *acc * v,
                Reduce::Max => acc.maximum(v),
                Reduce::Min => acc.minimum(v),
            };
        }
    }
    if kind == Reduce::Mean {
        let scale = T::from_f64(1.0 / count as f64);
        out.iter_mut().for_each(|v| *v = *v * scale);
    }
    Array::from_vec(&reduced_shape(x.shape(), axes, keepdims), out)
}

/// The gradient of a reduction of `x` (with result `y`) given `dy`.
pub(crate) fn pullback<B: Backend>(
    b: &mut B,
    kind: Reduce,
    axes: &[usize],
    _keepdims: bool,
    x: &B::A,
    y: &B::A,
    dy: &B::A,
) -> Result<B::A> {
    let shape = b.shape(x);
    let kept = kept_shape(&shape, axes);
    let dy = b.reshape(dy, &kept)?;
    match kind {
        Reduce::Sum => b.broadcast_to(&dy, &shape),
        Reduce::Mean => {
            let reduced: Shape = axes.iter().filter_map(|&k| shape.get(k).copied()).collect();
            let count = size_of(&reduced, "mean")?;
            let g = b.broadcast_to(&dy, &shape)?;
            let scale = b.scalar_like(x, 1.0 / count as f64)?;
            b.mul(&g, &scale)
        }
        Reduce::Max | Reduce::Min => {
            let mask = tie_mask(&b.value(x)?, &b.value(y)?, &kept)?;
            let mask = b.constant(mask)?;
            let g = b.broadcast_to(&dy, &shape)?;
            b.mul(&g, &mask)
        }
        Reduce::Prod => prod_pullback(b, x, axes, &shape, &dy),
    }
}

/// 1/count where `x` equals its group's extremum `y`, else 0: tied extrema share the
/// gradient equally, as PyTorch.
fn tie_mask(x: &Value, y: &Value, kept: &[usize]) -> Result<Value> {
    fn typed<T: Float>(x: &Array<T>, y: &Array<T>, kept: &[usize]) -> Result<Array<T>> {
        let extrema = y.as_slice();
        let mut counts = alloc(extrema.len(), T::zero(), "max")?;
        let hits = |v: T, k: usize| extrema.get(k).is_some_and(|&e| e == v);
        for (&v, k) in x
            .as_slice()
            .iter()
            .zip(BroadcastOffsets::new(kept, x.shape()))
        {
            if let Some(c) = counts.get_mut(k).filter(|_| hits(v, k)) {
                *c = *c + T::one();
            }
        }
        let mut mask = alloc(x.len(), T::zero(), "max")?;
        let walk = BroadcastOffsets::new(kept, x.shape());
        for ((m, &v), k) in mask.iter_mut().zip(x.as_slice()).zip(walk) {
            if hits(v, k) {
                *m = T::one() / counts.get(k).copied().unwrap_or(T::one());
            }
        }
        Array::from_vec(x.shape(), mask)
    }
    match (x, y) {
        (Value::F32(x), Value::F32(y)) => Ok(Value::F32(typed(x, y, kept)?)),
        (Value::F64(x), Value::F64(y)) => Ok(Value::F64(typed(x, y, kept)?)),
        _ => Err(crate::op::mixed_dtypes("max")),
    }
}

/// `prod`'s gradient without division, so it is right at zeros and differentiable again:
/// each element's gradient is the product of the elements before it times the product of
/// those after it, both exclusive scans made of shifts and multiplications.
fn prod_pullback<B: Backend>(
    b: &mut B,
    x: &B::A,
    axes: &[usize],
    shape: &[usize],
    dy: &B::A,
) -> Result<B::A> {
    // Move the reduced axes last and flatten them into one axis of length n.
    let rest: Vec<usize> = (0..shape.len()).filter(|k| !axes.contains(k)).collect();
    let perm: Shape = rest.iter().chain(axes.iter()).copied().collect();
    let permuted: Shape = perm.iter().filter_map(|&k| shape.get(k).copied()).collect();
    let mut flat: Shape = rest.iter().filter_map(|&k| shape.get(k).copied()).collect();
    let n = size_of(&permuted, "prod")? / size_of(&flat, "prod")?.max(1);
    let axis = flat.len();
    flat.push(n);
    let xt = b.transpose(x, &perm)?;
    let x2 = b.reshape(&xt, &flat)?;
    let before = exclusive_cumprod(b, &x2, axis, n, 1)?;
    let after = exclusive_cumprod(b, &x2, axis, n, -1)?;
    let others = b.mul(&before, &after)?;
    if let Some(last) = flat.last_mut() {
        *last = 1;
    }
    let dy = b.reshape(dy, &flat)?;
    let g = b.mul(&others, &dy)?;
    let g = b.reshape(&g, &permuted)?;
    b.transpose(&g, &super::shape::inverse_permutation(&perm))
}

/// The product of the elements strictly before each one along `axis` (`direction` 1), or
/// strictly after it (`direction` -1): a Hillis–Steele scan of shifted products.
fn exclusive_cumprod<B: Arrays>(
    b: &mut B,
    x: &B::A,
    axis: usize,
    n: usize,
    direction: isize,
) -> Result<B::A> {
    let shift = |by: usize| Op::Shift {
        axis,
        by: direction * by as isize,
        fill: 1.0,
    };
    let mut scan = b.apply(shift(1), &[x])?;
    let mut step = 1;
    while step < n {
        let shifted = b.apply(shift(step), &[&scan])?;
        scan = b.mul(&scan, &shifted)?;
        step *= 2;
    }
    Ok(scan)
}

/// Running sums along `axis`, from its end when `reverse` ([`Op::Cumsum`]'s value).
///
/// [`Op::Cumsum`]: crate::Op::Cumsum
///
/// ```
/// use tracker_core::ops::reduce::cumsum;
/// use tracker_core::Value;
///
/// # fn main() -> tracker_core::Result<()> {
/// let x = Value::from_vec(&[2, 2], vec![1.0, 2.0, 3.0, 4.0])?;
/// assert_eq!(cumsum(&x, 1, false)?.to_f64_vec(), vec![1.0, 3.0, 3.0, 7.0]);
/// assert_eq!(cumsum(&x, 0, true)?.to_f64_vec(), vec![4.0, 6.0, 3.0, 4.0]);
/// # Ok(())
/// # }
/// ```
pub fn cumsum(x: &Value, axis: usize, reverse: bool) -> Result<Value> {
    let shape = x.shape();
    let n = super::shape::axis_length("cumsum", shape, axis)?;
    let inner = size_of(shape.get(axis + 1..).unwrap_or(&[]), "cumsum")?;
    fn typed<T: Float>(a: &Array<T>, n: usize, inner: usize, reverse: bool) -> Result<Array<T>> {
        let mut out = try_collect(a.as_slice().iter().copied(), "cumsum")?;
        for block in out.chunks_mut((n * inner).max(1)) {
            for i in 1..n {
                let (from, to) = if reverse {
                    (n - i, n - 1 - i)
                } else {
                    (i - 1, i)
                };
                for j in 0..inner {
                    let previous = block.get(from * inner + j).copied();
                    if let (Some(p), Some(v)) = (previous, block.get_mut(to * inner + j)) {
                        *v = *v + p;
                    }
                }
            }
        }
        Array::from_vec(a.shape(), out)
    }
    Ok(map_value!(x, a => typed(a, n, inner, reverse)?))
}

/// Running products along `axis`: `x` times the exclusive scan of shifted products, so
/// the gradient is right at zeros and differentiable again. A composite function: it
/// runs on any [`Arrays`] (buffers with [`Eager`](crate::op::Eager), the tape with
/// [`Live`](crate::Live)).
///
/// ```
/// use tracker_core::op::Eager;
/// use tracker_core::ops::reduce::cumprod;
/// use tracker_core::{Arg, Live, Tracked, Value, gradient};
///
/// # fn main() -> tracker_core::Result<()> {
/// let x = Value::from_vec(&[3], vec![2.0, 0.0, 5.0])?;
/// assert_eq!(cumprod(&mut Eager, &x, 0)?.to_f64_vec(), vec![2.0, 0.0, 0.0]);
/// // d/dx of x0 + x0 x1 + x0 x1 x2 at x1 = 0
/// let g = gradient(|x: &Tracked| {
///     let Arg::Tracked(y) = cumprod(&mut Live, &Arg::Tracked(x.clone()), 0)? else {
///         unreachable!("x is tracked")
///     };
///     y.sum()
/// }, &x)?;
/// assert_eq!(g.to_f64_vec(), vec![1.0, 12.0, 0.0]);
/// # Ok(())
/// # }
/// ```
pub fn cumprod<B: Arrays>(b: &mut B, x: &B::A, axis: usize) -> Result<B::A> {
    let shape = b.shape(x);
    let n = super::shape::axis_length("cumprod", &shape, axis)?;
    if n == 0 {
        return Ok(x.clone());
    }
    let before = exclusive_cumprod(b, x, axis, n, 1)?;
    b.mul(x, &before)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::Eager;

    #[test]
    fn reductions_by_hand() {
        let x = Value::from_vec(&[2, 3], vec![1., 2., 3., 4., 5., 6.]).ok();
        let sum = x
            .as_ref()
            .and_then(|x| forward(Reduce::Sum, x, &[1], false).ok());
        assert_eq!(sum.map(|v| v.to_f64_vec()), Some(vec![6., 15.]));
        let max = x
            .as_ref()
            .and_then(|x| forward(Reduce::Max, x, &[0], true).ok());
        assert_eq!(max.map(|v| v.shape().to_vec()), Some(vec![1, 3]));
    }

    #[test]
    fn prod_gradient_is_right_at_zeros() {
        let x = Value::from_vec(&[4], vec![2., 0., 3., 4.]).ok();
        let g = x.and_then(|x| {
            let y = forward(Reduce::Prod, &x, &[0], false).ok()?;
            pullback(
                &mut Eager,
                Reduce::Prod,
                &[0],
                false,
                &x,
                &y,
                &Value::scalar(1.0, y.dtype()),
            )
            .ok()
        });
        assert_eq!(g.map(|g| g.to_f64_vec()), Some(vec![0., 24., 0., 0.]));
    }
}
