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
use crate::kernel::LANES;
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
    if count == 0 && matches!(kind, Reduce::Max | Reduce::Min) && !kept.contains(&0) {
        return Err(Error::Shape {
            op,
            message: "zero-size array to reduction operation which has no identity".into(),
        });
    }
    let (lowest, highest) = (T::from_f64(f64::NEG_INFINITY), T::from_f64(f64::INFINITY));
    let mut out = match kind {
        Reduce::Sum | Reduce::Mean => fold(x, axes, &kept, op, T::zero(), |a, b| a + b)?,
        Reduce::Prod => fold(x, axes, &kept, op, T::one(), |a, b| a * b)?,
        Reduce::Max => fold(x, axes, &kept, op, lowest, T::maximum)?,
        Reduce::Min => fold(x, axes, &kept, op, highest, T::minimum)?,
    };
    if kind == Reduce::Mean {
        let scale = T::from_f64(1.0 / count as f64);
        out.iter_mut().for_each(|v| *v = *v * scale);
    }
    Array::from_vec(&reduced_shape(x.shape(), axes, keepdims), out)
}

/// `x` folded over `axes` by `combine` (associative, with identity `init`), into a
/// buffer of the `kept` shape.
fn fold<T: Float>(
    x: &Array<T>,
    axes: &[usize],
    kept: &[usize],
    op: &'static str,
    init: T,
    combine: impl Combine<T>,
) -> Result<Vec<T>> {
    let mut out = alloc(size_of(kept, op)?, init, op)?;
    if x.is_empty() {
        return Ok(out);
    }
    match Slabs::of(x.shape(), axes) {
        Some(slabs) => slabs.fold(x.as_slice(), &mut out, init, combine),
        None => fold_by_offsets(x, kept, &mut out, combine),
    }
    Ok(out)
}

/// An associative operation that reductions fold with.
trait Combine<T>: Fn(T, T) -> T + Copy + Send + Sync {}

impl<T, F: Fn(T, T) -> T + Copy + Send + Sync> Combine<T> for F {}

/// The general fold: each element of `x` walks to its output, one by one.
fn fold_by_offsets<T: Float>(
    x: &Array<T>,
    kept: &[usize],
    out: &mut [T],
    combine: impl Combine<T>,
) {
    let walk = BroadcastOffsets::new(kept, x.shape());
    for (&v, k) in x.as_slice().iter().zip(walk) {
        if let Some(acc) = out.get_mut(k) {
            *acc = combine(*acc, v);
        }
    }
}

// Long folds are halved, the halves folded (on two threads when large) and combined:
// pairwise, which keeps sums accurate. Where to halve depends on the shape alone, so
// every thread count gives the same result.

/// The longest run folded in one pass, in lanes.
const RUN_BLOCK: usize = 1 << 11;

/// The most elements a stack of rows folded in one pass has. The halves of a larger
/// stack need a buffer row each, so a block holds many rows to keep that cost small.
const ROWS_BLOCK: usize = 1 << 15;

/// Independent accumulators of a run's fold: enough to keep the adder busy with
/// 512-bit vectors of `f32`.
const ACCUMULATORS: usize = 32;

/// Rows wider than this are folded in strips of columns, which keeps a block many rows
/// deep.
const STRIP_MAX: usize = 1 << 10;

/// A reduction whose reduced axes form one block: `x` is `outer × n × inner` (axes of
/// length 1 aside), folded over `n` into `outer × inner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slabs {
    n: usize,
    inner: usize,
}

impl Slabs {
    /// The slabs of a nonempty `shape` reduced over `axes`; `None` when the reduced
    /// axes are not one block.
    fn of(shape: &[usize], axes: &[usize]) -> Option<Slabs> {
        let (mut n, mut inner) = (1, 1);
        for (k, &d) in shape.iter().enumerate().filter(|&(_, &d)| d != 1) {
            if axes.contains(&k) {
                if inner > 1 {
                    return None;
                }
                n *= d;
            } else if n > 1 {
                inner *= d;
            }
        }
        Some(Slabs { n, inner })
    }

    /// Folds `x` into `out` (which holds `init`).
    fn fold<T: Float>(self, x: &[T], out: &mut [T], init: T, combine: impl Combine<T>) {
        let Slabs { n, inner } = self;
        let slab = n * inner;
        // Whole slabs per task, about a chunk of elements in each.
        let per_task = (crate::parallel::CHUNK / slab).max(1);
        let work = x.len() / crate::parallel::REDUCTION_SHARE;
        crate::parallel::for_each_chunk(out, per_task * inner, work, |first, out| {
            let x = x.get(first * n..).unwrap_or_default();
            if inner == 1 {
                // Each output folds a contiguous run of n elements.
                for (o, run) in out.iter_mut().zip(x.chunks(n)) {
                    *o = fold_run(run, init, combine);
                }
            } else {
                // Each row of outputs folds the n rows of a slab.
                for (o, slab) in out.chunks_mut(inner).zip(x.chunks(slab)) {
                    fold_rows(slab, inner, 0, o, init, combine);
                }
            }
        });
    }
}

/// The sum of a contiguous run, as `sum` adds it.
pub(crate) fn sum_run<T: Float>(run: &[T]) -> T {
    fold_run(run, T::zero(), |a, b| a + b)
}

/// The fold of a contiguous run: blocks of it in lanes, combined pairwise.
fn fold_run<T: Float>(run: &[T], init: T, combine: impl Combine<T>) -> T {
    if run.len() < ACCUMULATORS {
        return run.iter().fold(init, |acc, &v| combine(acc, v));
    }
    if run.len() <= RUN_BLOCK {
        return fold_lanes(run, init, combine);
    }
    let (left, right) = run.split_at((run.len() / 2).div_ceil(RUN_BLOCK) * RUN_BLOCK);
    let (a, b) = crate::parallel::join(
        run.len() / crate::parallel::REDUCTION_SHARE,
        || fold_run(left, init, combine),
        || fold_run(right, init, combine),
    );
    combine(a, b)
}

/// The fold of a short run in [`ACCUMULATORS`] independent accumulators (which
/// vectorises, for AVX2 where the CPU has it), combined pairwise at the end.
fn fold_lanes<T: Float>(run: &[T], init: T, combine: impl Combine<T>) -> T {
    crate::vmath::on_avx2(
        #[inline(always)]
        || fold_lanes_inline(run, init, combine),
    )
}

#[inline(always)]
fn fold_lanes_inline<T: Float>(run: &[T], init: T, combine: impl Combine<T>) -> T {
    let (rows, rest) = run.as_chunks::<ACCUMULATORS>();
    let mut lanes = [init; ACCUMULATORS];
    // Fresh accumulators for each 16 rows, so that no sum runs long (NumPy's pairwise
    // sum adds as many in a row).
    for part in rows.chunks(16) {
        let mut part_lanes = [init; ACCUMULATORS];
        for row in part {
            for (acc, &v) in part_lanes.iter_mut().zip(row) {
                *acc = combine(*acc, v);
            }
        }
        for (acc, v) in lanes.iter_mut().zip(part_lanes) {
            *acc = combine(*acc, v);
        }
    }
    for (acc, &v) in lanes.iter_mut().zip(rest) {
        *acc = combine(*acc, v);
    }
    let mut width = ACCUMULATORS;
    while width > 1 {
        width /= 2;
        let (low, high) = lanes.split_at_mut(width);
        for (acc, &v) in low.iter_mut().zip(high.iter()) {
            *acc = combine(*acc, v);
        }
    }
    lanes.first().copied().unwrap_or(init)
}

/// Folds the rows of `slab` (each `inner` long) into `out`, which holds columns
/// `first..first + out.len()`: whole rows at a time (which vectorises), the stack of
/// rows halved pairwise down to [`ROWS_BLOCK`] elements, wide rows in strips.
fn fold_rows<T: Float>(
    slab: &[T],
    inner: usize,
    first: usize,
    out: &mut [T],
    init: T,
    combine: impl Combine<T>,
) {
    let width = out.len();
    let rows = slab.len() / inner.max(1);
    let work = rows * width / crate::parallel::REDUCTION_SHARE;
    if rows > 1 && width > STRIP_MAX {
        let (left, right) = out.split_at_mut((width / 2).next_multiple_of(LANES));
        let middle = first + left.len();
        crate::parallel::join(
            work,
            || fold_rows(slab, inner, first, left, init, combine),
            || fold_rows(slab, inner, middle, right, init, combine),
        );
    } else if rows > 1 && work > ROWS_BLOCK {
        let (top, bottom) = slab.split_at(rows / 2 * inner);
        let mut below = vec![init; width];
        crate::parallel::join(
            work,
            || fold_rows(top, inner, first, out, init, combine),
            || fold_rows(bottom, inner, first, &mut below, init, combine),
        );
        for (acc, &v) in out.iter_mut().zip(&below) {
            *acc = combine(*acc, v);
        }
    } else {
        for row in slab.chunks_exact(inner) {
            let row = row.get(first..first + width).unwrap_or_default();
            for (acc, &v) in out.iter_mut().zip(row) {
                *acc = combine(*acc, v);
            }
        }
    }
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
    use crate::num::Real;
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

    /// Every subset of `0..ndim` that is not empty.
    fn axis_sets(ndim: usize) -> impl Iterator<Item = Vec<usize>> {
        (1..1usize << ndim).map(move |bits| (0..ndim).filter(|k| bits >> k & 1 == 1).collect())
    }

    #[test]
    fn block_folds_match_the_walk() {
        // Shapes that take every path: long runs (halved, on two threads), short runs,
        // tall stacks of rows (halved), wide rows (in strips), middle axes, axes of length 1.
        let shapes: [&[usize]; 8] = [
            &[70_000],
            &[3, 40_000],
            &[40_000, 3],
            &[300, 400],
            &[40, 3000],
            &[2, 300, 70],
            &[600, 1, 40],
            &[5, 1],
        ];
        // Powers of two with signs: every order of sums and products gives the same bits.
        let mut seed = 7u64;
        let mut next = move || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            [1.0, -1.0, 2.0, 0.5].get((seed >> 62) as usize).copied()
        };
        type Fold = (f64, fn(f64, f64) -> f64);
        let folds: [Fold; 4] = [
            (0.0, |a, b| a + b),
            (1.0, |a, b| a * b),
            (f64::NEG_INFINITY, Real::maximum),
            (f64::INFINITY, Real::minimum),
        ];
        for shape in shapes {
            let len = shape.iter().product();
            let mut values: Vec<f64> = (0..len).map(|_| next().unwrap_or(1.0)).collect();
            if let Some(v) = values.get_mut(len / 3) {
                *v = f64::NAN;
            }
            let x = Array::from_vec(shape, values);
            assert!(x.is_ok(), "{shape:?}");
            let Ok(x) = x else { continue };
            for axes in axis_sets(shape.len()) {
                let kept = kept_shape(shape, &axes);
                for (init, combine) in folds {
                    let fast = fold(&x, &axes, &kept, "test", init, combine).ok();
                    let mut walked = vec![init; kept.iter().product()];
                    fold_by_offsets(&x, &kept, &mut walked, combine);
                    let bits = |v: &[f64]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                    assert_eq!(
                        fast.as_deref().map(bits),
                        Some(bits(&walked)),
                        "{shape:?} over {axes:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn slabs_see_one_block_of_axes() {
        let slabs = |shape: &[usize], axes: &[usize]| Slabs::of(shape, axes);
        assert_eq!(slabs(&[4, 5], &[0, 1]), Some(Slabs { n: 20, inner: 1 }));
        assert_eq!(slabs(&[4, 5, 6], &[1]), Some(Slabs { n: 5, inner: 6 }));
        assert_eq!(slabs(&[4, 1, 6], &[0, 2]), Some(Slabs { n: 24, inner: 1 }));
        assert_eq!(slabs(&[4, 5, 6], &[0, 2]), None);
    }

    #[test]
    fn blocked_sums_are_more_accurate_than_a_running_sum() {
        let x = Array::full(&[1_000_000], 0.1f32, "test").ok();
        let sum = x.and_then(|x| fold(&x, &[0], &[1], "test", 0.0, |a, b| a + b).ok());
        let exact = 1e6 * f64::from(0.1f32);
        let running = (0..1_000_000).fold(0.0f32, |acc, _| acc + 0.1);
        let error = |v: f32| (f64::from(v) - exact).abs() / exact;
        assert!(error(running) > 1e-3); // what an element-by-element walk gets
        assert_eq!(sum.map(|s| s.iter().all(|&v| error(v) < 1e-6)), Some(true));
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
