//! Indexing, NumPy's way: integers, slices, `None`, `...` and integer arrays (basic and
//! advanced, mixed). An index becomes a [`Gather`]: what it reads, as a strided view for
//! a basic index or as flat positions for an advanced one. Its gradient scatters the
//! piece back into those places, so `x[i]` costs the size of the piece, not of `x`.
//!
//! ```
//! use tracker_core::ops::index::{IndexItem, plan};
//!
//! # fn main() -> tracker_core::Result<()> {
//! // x[1] of a 2 × 3 array reads the second row: flat positions 3, 4, 5.
//! let row = plan(&[2, 3], &[IndexItem::Int(1)])?;
//! assert_eq!((row.shape.as_slice(), row.positions()), (&[3][..], vec![3, 4, 5]));
//! # Ok(())
//! # }
//! ```

use crate::broadcast::{BroadcastOffsets, broadcast_shapes};
use crate::error::{Error, Result, index_error};
use crate::num::Float;
use crate::value::{Array, Shape, Value, alloc, reserve, size_of};
use smallvec::SmallVec;

/// One item of an index expression: `x[1, ::2, None, ...]` is four items.
///
/// ```
/// use tracker_core::ops::index::IndexItem;
/// use tracker_core::{Tracked, Value};
///
/// # fn main() -> tracker_core::Result<()> {
/// let x = Tracked::param(Value::from_vec(&[2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])?);
/// let every_other = IndexItem::Slice { start: None, stop: None, step: Some(2) };
/// let y = x.index(&[IndexItem::Int(1), every_other, IndexItem::NewAxis])?; // x[1, ::2, None]
/// assert_eq!((y.shape().as_slice(), y.value().to_f64_vec()), (&[2, 1][..], vec![4.0, 6.0]));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum IndexItem {
    /// One position of an axis (negative from the end); the axis is removed.
    Int(isize),
    /// A Python slice `start:stop:step` of an axis.
    Slice {
        /// The first position, or the axis's start (its end for a negative step).
        start: Option<isize>,
        /// The position to stop before, or past the axis's end.
        stop: Option<isize>,
        /// The stride, 1 if absent; not 0.
        step: Option<isize>,
    },
    /// `None`: a new axis of length 1.
    NewAxis,
    /// `...`: as many full slices as the other items leave axes.
    Ellipsis,
    /// An integer array (repeated positions accumulate in the gradient).
    Array {
        /// The index array's shape.
        shape: Shape,
        /// Its positions, row-major (negative from the end).
        values: Vec<isize>,
    },
}

/// What an index reads from a row-major array: what [`Op::Gather`] records, and what its
/// gradient scatters back into.
///
/// [`Op::Gather`]: crate::Op::Gather
///
/// ```
/// use std::sync::Arc;
///
/// use tracker_core::ops::index::{Gather, Reads};
/// use tracker_core::{Op, Shape, Value};
///
/// # fn main() -> tracker_core::Result<()> {
/// // The diagonal of a 2 × 2 matrix, as positions.
/// let diagonal = Gather {
///     source_shape: Shape::from_slice(&[2, 2]),
///     shape: Shape::from_slice(&[2]),
///     reads: Reads::Positions(vec![0, 3]),
/// };
/// let x = Value::from_vec(&[2, 2], vec![1.0, 2.0, 3.0, 4.0])?;
/// assert_eq!(Op::Gather(Arc::new(diagonal)).forward(&[&x])?.to_f64_vec(), vec![1.0, 4.0]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Gather {
    /// The shape of the array read.
    pub source_shape: Shape,
    /// The shape of the result.
    pub shape: Shape,
    /// Where each element of the result comes from; places outside the source read as
    /// zero.
    pub reads: Reads,
}

/// Where a [`Gather`]'s elements come from.
///
/// ```
/// use tracker_core::ops::index::{IndexItem, Reads, plan};
///
/// # fn main() -> tracker_core::Result<()> {
/// // x[1:, ::-1] of a 3 × 4 array: a view starting at row 1's last element.
/// let back = IndexItem::Slice { start: None, stop: None, step: Some(-1) };
/// let first = IndexItem::Slice { start: Some(1), stop: None, step: None };
/// let g = plan(&[3, 4], &[first, back])?;
/// assert!(matches!(&g.reads, Reads::Strided { start: 7, strides } if strides.as_slice() == [4, -1]));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub enum Reads {
    /// A basic index's view: result element `(i₀, i₁, …)` reads position
    /// `start + Σ iₖ·strides[k]`, so it is copied run by run without a position list.
    Strided {
        /// The position result element `(0, 0, …)` reads.
        start: usize,
        /// One stride per result axis, in elements (negative for reversed slices).
        strides: SmallVec<[isize; 4]>,
    },
    /// For each element of the result (row-major), the flat position it reads.
    Positions(Vec<usize>),
}

impl Gather {
    /// The flat position each element of the result reads, row-major.
    ///
    /// ```
    /// use tracker_core::ops::index::{IndexItem, plan};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let every_other = IndexItem::Slice { start: None, stop: None, step: Some(2) };
    /// assert_eq!(plan(&[5], &[every_other])?.positions(), vec![0, 2, 4]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn positions(&self) -> Vec<usize> {
        let mut out = Vec::new();
        self.runs(|_, from, step, len| out.extend((0..len).map(|j| nth(from, step, j))));
        out
    }

    /// Calls `f(at, from, step, len)` for each run of the result: its elements
    /// `at..at + len` read positions `from`, `from + step`, …. A strided view's
    /// innermost axes form one run where they are contiguous.
    fn runs(&self, mut f: impl FnMut(usize, usize, isize, usize)) {
        match &self.reads {
            Reads::Positions(positions) => {
                positions
                    .iter()
                    .enumerate()
                    .for_each(|(at, &p)| f(at, p, 1, 1));
            }
            Reads::Strided { start, strides } => {
                if self.shape.contains(&0) {
                    return;
                }
                // Axes of length 1 move nothing; the innermost others form one run
                // for as long as each continues where the last ended.
                let mut axes: SmallVec<[(usize, isize); 4]> = self
                    .shape
                    .iter()
                    .copied()
                    .zip(strides.iter().copied())
                    .filter(|&(d, _)| d != 1)
                    .collect();
                let (mut len, step) = axes.pop().unwrap_or((1, 1));
                while let Some(&(d, s)) = axes.last() {
                    if s != step * len as isize {
                        break;
                    }
                    len *= d;
                    axes.pop();
                }
                let mut index: SmallVec<[usize; 4]> = smallvec::smallvec![0; axes.len()];
                let mut from = *start as isize;
                let mut at = 0;
                loop {
                    f(at, from as usize, step, len);
                    at += len;
                    // Advance the outer axes like an odometer.
                    let mut k = axes.len();
                    loop {
                        let Some(k1) = k.checked_sub(1) else { return };
                        k = k1;
                        let (Some(i), Some(&(d, s))) = (index.get_mut(k), axes.get(k)) else {
                            return;
                        };
                        *i += 1;
                        from += s;
                        if *i < d {
                            break;
                        }
                        from -= s * d as isize;
                        *i = 0;
                    }
                }
            }
        }
    }
}

/// One output axis (or the joint axes of the advanced indices) and the offsets it adds.
struct Selector {
    dims: Shape,
    offsets: Vec<usize>,
}

fn wrap(index: isize, len: usize, axis: usize) -> Result<usize> {
    let wrapped = if index < 0 {
        index + len as isize
    } else {
        index
    };
    if wrapped < 0 || wrapped as usize >= len {
        return Err(index_error(
            "getitem",
            format!("index {index} is out of bounds for axis {axis} with size {len}"),
        ));
    }
    Ok(wrapped as usize)
}

/// What a slice selects from an axis of `len`, as Python's `slice.indices`: the first
/// position, how many, and the step between them.
fn slice_span(
    start: Option<isize>,
    stop: Option<isize>,
    step: Option<isize>,
    len: usize,
) -> Result<(usize, usize, isize)> {
    let step = step.unwrap_or(1);
    let n = len as isize;
    if step == 0 {
        return Err(Error::Index {
            op: "getitem",
            message: "slice step cannot be zero".into(),
        });
    }
    let clamp = |v: Option<isize>, default: isize, lo: isize, hi: isize| match v {
        None => default,
        Some(v) if v < 0 => v.saturating_add(n).max(lo),
        Some(v) => v.min(hi),
    };
    let (start, stop) = if step > 0 {
        (clamp(start, 0, 0, n), clamp(stop, n, 0, n))
    } else {
        (clamp(start, n - 1, -1, n - 1), clamp(stop, -1, -1, n - 1))
    };
    // In i128: a step of isize::MIN has no positive isize.
    let (distance, stride) = (stop as i128 - start as i128, step as i128);
    let count = if distance.signum() == stride.signum() {
        (distance.abs() + stride.abs() - 1) / stride.abs()
    } else {
        0
    };
    match usize::try_from(count) {
        Ok(0) | Err(_) => Ok((0, 0, step)),
        Ok(count) => Ok((start as usize, count, step)),
    }
}

/// Works out what `x[items]` reads, for `x` of `shape`, with NumPy's rules (advanced
/// indices broadcast together). Out-of-range positions raise
/// [`Error::Index`].
///
/// ```
/// use tracker_core::ops::index::{IndexItem, plan};
/// use tracker_core::Shape;
///
/// # fn main() -> tracker_core::Result<()> {
/// let picks = IndexItem::Array { shape: Shape::from_slice(&[3]), values: vec![2, 0, 2] };
/// let g = plan(&[4], &[picks])?; // x[[2, 0, 2]]
/// assert_eq!(g.positions(), vec![2, 0, 2]);
/// assert!(plan(&[4], &[IndexItem::Int(4)]).is_err());
/// # Ok(())
/// # }
/// ```
pub fn plan(shape: &[usize], items: &[IndexItem]) -> Result<Gather> {
    if let ([item @ IndexItem::Int(_)], [_]) = (items, shape) {
        // x[i] of a vector, a loop over scalars' read: nothing to expand.
        return view(shape, &[1], &[item]);
    }
    let consuming = items
        .iter()
        .filter(|i| !matches!(i, IndexItem::NewAxis | IndexItem::Ellipsis))
        .count();
    if consuming > shape.len() {
        return Err(index_error(
            "getitem",
            format!(
                "too many indices for array: array is {}-dimensional, but {consuming} were indexed",
                shape.len()
            ),
        ));
    }
    if items
        .iter()
        .filter(|i| matches!(i, IndexItem::Ellipsis))
        .count()
        > 1
    {
        return Err(index_error(
            "getitem",
            "an index can only have a single ellipsis ('...')",
        ));
    }
    let full = IndexItem::Slice {
        start: None,
        stop: None,
        step: None,
    };
    let mut expanded: SmallVec<[&IndexItem; 4]> = SmallVec::new();
    for item in items {
        if matches!(item, IndexItem::Ellipsis) {
            expanded.extend(std::iter::repeat_n(&full, shape.len() - consuming));
        } else {
            expanded.push(item);
        }
    }
    while expanded
        .iter()
        .filter(|i| !matches!(i, IndexItem::NewAxis))
        .count()
        < shape.len()
    {
        expanded.push(&full);
    }
    let mut strides: Shape = shape.iter().map(|_| 1).collect();
    let mut acc = 1usize;
    for (s, &d) in strides.iter_mut().zip(shape).rev() {
        *s = acc;
        acc = acc.saturating_mul(d);
    }
    let advanced = expanded
        .iter()
        .any(|i| matches!(i, IndexItem::Array { .. }));
    if !advanced {
        return view(shape, &strides, &expanded);
    }
    // The advanced indices (integers count as 0-d arrays when any array is present).
    let mut adv: Vec<(usize, Shape, Vec<isize>)> = Vec::new();
    let mut selectors: Vec<Option<Selector>> = Vec::new(); // None marks the advanced block
    let mut axis = 0usize;
    let mut adv_positions: Vec<usize> = Vec::new();
    for item in &expanded {
        let len = shape.get(axis).copied().unwrap_or(1);
        let stride = strides.get(axis).copied().unwrap_or(1);
        match item {
            IndexItem::NewAxis => selectors.push(Some(Selector {
                dims: Shape::from_slice(&[1]),
                offsets: vec![0],
            })),
            IndexItem::Int(i) => {
                // Checked now: an empty broadcast would never read it.
                wrap(*i, len, axis)?;
                adv_positions.push(selectors.len());
                adv.push((axis, Shape::new(), vec![*i]));
                axis += 1;
            }
            IndexItem::Array { shape: s, values } => {
                adv_positions.push(selectors.len());
                adv.push((axis, s.clone(), values.clone()));
                axis += 1;
            }
            IndexItem::Slice { start, stop, step } => {
                let (first, count, step) = slice_span(*start, *stop, *step, len)?;
                selectors.push(Some(Selector {
                    dims: Shape::from_slice(&[count]),
                    offsets: (0..count).map(|j| nth(first, step, j) * stride).collect(),
                }));
                axis += 1;
            }
            IndexItem::Ellipsis => {}
        }
    }
    if !adv.is_empty() {
        let mut joint = Shape::new();
        for (_, s, _) in &adv {
            joint = broadcast_shapes("getitem", &joint, s)?;
        }
        let count = size_of(&joint, "getitem")?;
        let mut offsets = alloc(count, 0usize, "getitem")?;
        for (ax, s, values) in &adv {
            let len = shape.get(*ax).copied().unwrap_or(1);
            let stride = strides.get(*ax).copied().unwrap_or(1);
            for (o, k) in offsets.iter_mut().zip(BroadcastOffsets::new(s, &joint)) {
                let v = values.get(k).copied().unwrap_or(0);
                *o += wrap(v, len, *ax)? * stride;
            }
        }
        // Adjacent advanced indices keep their place; separated ones go first (NumPy).
        let adjacent = adv_positions
            .windows(2)
            .all(|w| matches!(w, [a, b] if a == b));
        let at = if adjacent {
            adv_positions.first().copied().unwrap_or(0)
        } else {
            0
        };
        selectors.insert(
            at.min(selectors.len()),
            Some(Selector {
                dims: joint,
                offsets,
            }),
        );
    }
    let mut out_shape = Shape::new();
    let mut positions = vec![0];
    for selector in selectors.into_iter().flatten() {
        out_shape.extend(selector.dims.iter().copied());
        let len = positions
            .len()
            .checked_mul(selector.offsets.len())
            .ok_or(Error::Memory {
                op: "getitem",
                bytes: usize::MAX,
            })?;
        let mut next = reserve(len, "getitem")?;
        for &p in &positions {
            next.extend(selector.offsets.iter().map(|&o| p + o));
        }
        positions = next;
    }
    Ok(Gather {
        source_shape: shape.into(),
        shape: out_shape,
        reads: Reads::Positions(positions),
    })
}

/// A basic index (no arrays) of `shape`, whose row-major strides are `strides`: the
/// strided view it reads.
fn view(shape: &[usize], strides: &[usize], items: &[&IndexItem]) -> Result<Gather> {
    let mut start = 0usize;
    let mut out_shape = Shape::new();
    let mut out_strides = SmallVec::new();
    let mut axis = 0usize;
    for item in items {
        let len = shape.get(axis).copied().unwrap_or(1);
        let stride = strides.get(axis).copied().unwrap_or(1);
        match item {
            IndexItem::NewAxis => {
                out_shape.push(1);
                out_strides.push(0);
            }
            IndexItem::Int(i) => {
                start += wrap(*i, len, axis)? * stride;
                axis += 1;
            }
            IndexItem::Slice {
                start: a,
                stop,
                step,
            } => {
                let (first, count, step) = slice_span(*a, *stop, *step, len)?;
                start += first * stride;
                out_shape.push(count);
                out_strides.push(step.saturating_mul(stride as isize));
                axis += 1;
            }
            IndexItem::Ellipsis | IndexItem::Array { .. } => {}
        }
    }
    Ok(Gather {
        source_shape: shape.into(),
        shape: out_shape,
        reads: Reads::Strided {
            start,
            strides: out_strides,
        },
    })
}

/// `x[index]`, reading the planned positions.
pub(crate) fn gather(g: &Gather, x: &Value) -> Result<Value> {
    if x.shape() != g.source_shape.as_slice() {
        return Err(crate::error::shape_error(
            "getitem",
            format!(
                "planned for shape {:?}, applied to {:?}",
                g.source_shape.as_slice(),
                x.shape()
            ),
        ));
    }
    fn typed<T: Float>(g: &Gather, x: &Array<T>) -> Result<Array<T>> {
        let src = x.as_slice();
        if g.shape.is_empty() {
            // One element (`x[i]` of a vector): stored inline, without a buffer.
            let mut value = T::zero();
            g.runs(|_, from, _, _| value = src.get(from).copied().unwrap_or_default());
            return Ok(Array::scalar(value));
        }
        let mut out = reserve(size_of(&g.shape, "getitem")?, "getitem")?;
        g.runs(|_, from, step, len| match run(src, from, len) {
            Some(run) if step == 1 => out.extend_from_slice(run),
            _ => out
                .extend((0..len).map(|j| src.get(nth(from, step, j)).copied().unwrap_or_default())),
        });
        Array::from_vec(&g.shape, out)
    }
    Ok(map_value!(x, a => typed(g, a)?))
}

/// A zero array of the gather's source shape with `piece` added at its positions.
pub(crate) fn scatter(g: &Gather, piece: &Value) -> Result<Value> {
    if piece.shape() != g.shape.as_slice() {
        return Err(crate::error::shape_error(
            "scatter_add",
            format!(
                "expects a piece of shape {:?}, got {:?}",
                g.shape.as_slice(),
                piece.shape()
            ),
        ));
    }
    fn typed<T: Float>(g: &Gather, piece: &Array<T>) -> Result<Array<T>> {
        let mut out = alloc(
            size_of(&g.source_shape, "scatter_add")?,
            T::zero(),
            "scatter_add",
        )?;
        scatter_add(g, piece.as_slice(), &mut out);
        Array::from_vec(&g.source_shape, out)
    }
    Ok(map_value!(piece, a => typed(g, a)?))
}

/// Position `j` of a run that starts at `from` and moves by `step`.
fn nth(from: usize, step: isize, j: usize) -> usize {
    from.wrapping_add_signed(step.wrapping_mul(j as isize))
}

/// `len` elements of `s` from `from`, if all are there.
fn run<T>(s: &[T], from: usize, len: usize) -> Option<&[T]> {
    s.get(from..from.checked_add(len)?)
}

/// Adds `piece` into `target` at the gather's positions (repeats accumulate).
pub(crate) fn scatter_add<T: Float>(g: &Gather, piece: &[T], target: &mut [T]) {
    g.runs(|at, from, step, len| {
        let Some(piece) = run(piece, at, len) else {
            return;
        };
        match from
            .checked_add(len)
            .and_then(|end| target.get_mut(from..end))
        {
            Some(run) if step == 1 => run.iter_mut().zip(piece).for_each(|(t, &v)| *t = *t + v),
            _ => {
                for (j, &v) in piece.iter().enumerate() {
                    if let Some(t) = target.get_mut(nth(from, step, j)) {
                        *t = *t + v;
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(start: Option<isize>, stop: Option<isize>, step: Option<isize>) -> IndexItem {
        IndexItem::Slice { start, stop, step }
    }

    #[test]
    fn basic_and_advanced_positions() {
        let g = plan(&[3, 4], &[IndexItem::Int(1), slice(Some(1), None, Some(2))]).ok();
        assert_eq!(
            g.map(|g| (g.shape.to_vec(), g.positions())),
            Some((vec![2], vec![5, 7]))
        );
        let arr = IndexItem::Array {
            shape: Shape::from_slice(&[3]),
            values: vec![0, 2, 0],
        };
        let g = plan(&[3, 2], std::slice::from_ref(&arr)).ok();
        assert_eq!(
            g.map(|g| (g.shape.to_vec(), g.positions())),
            Some((vec![3, 2], vec![0, 1, 4, 5, 0, 1]))
        );
        let g = plan(
            &[3, 2],
            &[IndexItem::Ellipsis, IndexItem::NewAxis, IndexItem::Int(-1)],
        )
        .ok();
        assert_eq!(
            g.map(|g| (g.shape.to_vec(), g.positions())),
            Some((vec![3, 1], vec![1, 3, 5]))
        );
        let g = plan(
            &[2, 3, 4],
            &[arr, slice(None, None, None), IndexItem::Int(0)],
        );
        assert!(g.is_err(), "index 2 is out of bounds for axis 0");
        assert!(plan(&[3], &[IndexItem::Int(3)]).is_err());
        let g = plan(&[4], &[slice(None, None, Some(-1))]).ok();
        assert_eq!(g.map(|g| g.positions()), Some(vec![3, 2, 1, 0]));
    }
}
