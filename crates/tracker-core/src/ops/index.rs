//! Indexing, NumPy's way: integers, slices, `None`, `...` and integer arrays (basic and
//! advanced, mixed). An index becomes a [`Gather`]: the flat positions it reads. Its
//! gradient scatters the piece back into those positions, so `x[i]` costs the size of
//! the piece, not of `x`.
//!
//! ```
//! use tracker_core::ops::index::{IndexItem, plan};
//!
//! # fn main() -> tracker_core::Result<()> {
//! // x[1] of a 2 × 3 array reads the second row: flat positions 3, 4, 5.
//! let row = plan(&[2, 3], &[IndexItem::Int(1)])?;
//! assert_eq!((row.shape.as_slice(), row.positions.as_slice()), (&[3][..], &[3, 4, 5][..]));
//! # Ok(())
//! # }
//! ```

use crate::broadcast::{BroadcastOffsets, broadcast_shapes};
use crate::error::{Error, Result, index_error};
use crate::num::Float;
use crate::value::{Array, Shape, Value, alloc, size_of};

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

/// The positions an index reads from a row-major array: what [`Op::Gather`] records,
/// and what its gradient scatters back into.
///
/// [`Op::Gather`]: crate::Op::Gather
///
/// ```
/// use std::sync::Arc;
///
/// use tracker_core::ops::index::Gather;
/// use tracker_core::{Op, Shape, Value};
///
/// # fn main() -> tracker_core::Result<()> {
/// // The diagonal of a 2 × 2 matrix, as positions.
/// let diagonal = Gather {
///     source_shape: Shape::from_slice(&[2, 2]),
///     shape: Shape::from_slice(&[2]),
///     positions: vec![0, 3],
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
    /// For each element of the result (row-major), the flat position it reads.
    pub positions: Vec<usize>,
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

/// The indices a slice selects from an axis of `len`, as Python's `slice.indices`.
fn slice_indices(
    start: Option<isize>,
    stop: Option<isize>,
    step: Option<isize>,
    len: usize,
) -> Result<Vec<usize>> {
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
    let mut out = Vec::new();
    let mut i = start;
    while (step > 0 && i < stop) || (step < 0 && i > stop) {
        out.push(i as usize);
        match i.checked_add(step) {
            Some(next) => i = next,
            None => break,
        }
    }
    Ok(out)
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
/// assert_eq!(g.positions, vec![2, 0, 2]);
/// assert!(plan(&[4], &[IndexItem::Int(4)]).is_err());
/// # Ok(())
/// # }
/// ```
pub fn plan(shape: &[usize], items: &[IndexItem]) -> Result<Gather> {
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
    let mut expanded: Vec<&IndexItem> = Vec::new();
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
    // The advanced indices (integers count as 0-d arrays when any array is present).
    let mut adv: Vec<(usize, Shape, Vec<isize>)> = Vec::new();
    let mut selectors: Vec<Option<Selector>> = Vec::new(); // None marks the advanced block
    let mut base = 0usize;
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
            IndexItem::Int(i) if !advanced => {
                base += wrap(*i, len, axis)? * stride;
                axis += 1;
            }
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
                let picked = slice_indices(*start, *stop, *step, len)?;
                selectors.push(Some(Selector {
                    dims: Shape::from_slice(&[picked.len()]),
                    offsets: picked.into_iter().map(|i| i * stride).collect(),
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
    let mut positions = vec![base];
    for selector in selectors.into_iter().flatten() {
        out_shape.extend(selector.dims.iter().copied());
        let mut next = alloc(0, 0usize, "getitem")?;
        let len = positions
            .len()
            .checked_mul(selector.offsets.len())
            .ok_or(Error::Memory {
                op: "getitem",
                bytes: usize::MAX,
            })?;
        next.try_reserve_exact(len).map_err(|_| Error::Memory {
            op: "getitem",
            bytes: len * 8,
        })?;
        for &p in &positions {
            next.extend(selector.offsets.iter().map(|&o| p + o));
        }
        positions = next;
    }
    Ok(Gather {
        source_shape: shape.into(),
        shape: out_shape,
        positions,
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
    Ok(map_value!(x, a => {
        let src = a.as_slice();
        Array::from_vec(&g.shape, g.positions.iter().map(|&p| src.get(p).copied().unwrap_or_default()).collect())?
    }))
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

/// Adds `piece` into `target` at the gather's positions (repeats accumulate).
pub(crate) fn scatter_add<T: Float>(g: &Gather, piece: &[T], target: &mut [T]) {
    for (&p, &v) in g.positions.iter().zip(piece) {
        if let Some(t) = target.get_mut(p) {
            *t = *t + v;
        }
    }
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
            g.map(|g| (g.shape.to_vec(), g.positions)),
            Some((vec![2], vec![5, 7]))
        );
        let arr = IndexItem::Array {
            shape: Shape::from_slice(&[3]),
            values: vec![0, 2, 0],
        };
        let g = plan(&[3, 2], std::slice::from_ref(&arr)).ok();
        assert_eq!(
            g.map(|g| (g.shape.to_vec(), g.positions)),
            Some((vec![3, 2], vec![0, 1, 4, 5, 0, 1]))
        );
        let g = plan(
            &[3, 2],
            &[IndexItem::Ellipsis, IndexItem::NewAxis, IndexItem::Int(-1)],
        )
        .ok();
        assert_eq!(
            g.map(|g| (g.shape.to_vec(), g.positions)),
            Some((vec![3, 1], vec![1, 3, 5]))
        );
        let g = plan(
            &[2, 3, 4],
            &[arr, slice(None, None, None), IndexItem::Int(0)],
        );
        assert!(g.is_err(), "index 2 is out of bounds for axis 0");
        assert!(plan(&[3], &[IndexItem::Int(3)]).is_err());
        let g = plan(&[4], &[slice(None, None, Some(-1))]).ok();
        assert_eq!(g.map(|g| g.positions), Some(vec![3, 2, 1, 0]));
    }
}
