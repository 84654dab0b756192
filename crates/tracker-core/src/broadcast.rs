//! NumPy broadcasting: the shape of a broadcast, walking a smaller array inside a larger
//! shape, and the one place that works out how a gradient is summed back to an input's
//! shape.
//!
//! ```
//! use tracker_core::broadcast::{BroadcastOffsets, broadcast_shapes};
//!
//! # fn main() -> tracker_core::Result<()> {
//! // A column of 2 and a row of 3 broadcast to a 2 × 3 grid...
//! assert_eq!(broadcast_shapes("add", &[2, 1], &[3])?.as_slice(), &[2, 3]);
//! // ... in which the column's element k is read at offsets k, k, k.
//! let column: Vec<usize> = BroadcastOffsets::new(&[2, 1], &[2, 3]).collect();
//! assert_eq!(column, vec![0, 0, 0, 1, 1, 1]);
//! # Ok(())
//! # }
//! ```

use smallvec::SmallVec;

use crate::error::{Result, shape_error};
use crate::value::Shape;

/// The broadcast shape of `a` and `b`, as NumPy computes it: shapes are aligned at
/// their last axes, and an axis of length 1 stretches to the other's length. `op` names
/// the operation in the [`Error::Shape`](crate::Error::Shape) raised when they do not fit.
///
/// ```
/// use tracker_core::broadcast::broadcast_shapes;
///
/// # fn main() -> tracker_core::Result<()> {
/// assert_eq!(broadcast_shapes("add", &[4, 1, 3], &[5, 1])?.as_slice(), &[4, 5, 3]);
/// assert_eq!(broadcast_shapes("add", &[], &[2])?.as_slice(), &[2]);
/// assert!(broadcast_shapes("add", &[3], &[4]).is_err());
/// # Ok(())
/// # }
/// ```
pub fn broadcast_shapes(op: &'static str, a: &[usize], b: &[usize]) -> Result<Shape> {
    let ndim = a.len().max(b.len());
    let mut out = Shape::with_capacity(ndim);
    for k in 0..ndim {
        let da = dim_from_end(a, ndim - 1 - k);
        let db = dim_from_end(b, ndim - 1 - k);
        out.push(match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(shape_error(
                    op,
                    format!("operands could not be broadcast together with shapes {a:?} {b:?}"),
                ));
            }
        });
    }
    Ok(out)
}

/// `shape[len - 1 - from_end]`, or 1 for axes that `shape` does not have.
fn dim_from_end(shape: &[usize], from_end: usize) -> usize {
    shape
        .len()
        .checked_sub(1 + from_end)
        .and_then(|i| shape.get(i))
        .copied()
        .unwrap_or(1)
}

/// The axes of `grad_shape` to sum (keeping dimensions) so that the result reshapes to
/// `target`, where `target` broadcasts to `grad_shape`.
pub(crate) fn reduction_axes(grad_shape: &[usize], target: &[usize]) -> Shape {
    let lead = grad_shape.len().saturating_sub(target.len());
    grad_shape
        .iter()
        .enumerate()
        .filter(|&(k, &d)| {
            k < lead || (dim_from_end(target, grad_shape.len() - 1 - k) == 1 && d != 1)
        })
        .map(|(k, _)| k)
        .collect()
}

/// The offsets into a row-major array of shape `src`, visited as `src` is broadcast to
/// `dst` and walked in `dst`'s row-major order. `src` must broadcast to `dst`.
///
/// An iterator of exactly `dst`'s size: elementwise kernels use it to read an input
/// that was not materialised at the output's shape.
///
/// ```
/// use tracker_core::broadcast::BroadcastOffsets;
///
/// // A row of 3 read for each of 2 rows: offsets 0, 1, 2, then 0, 1, 2 again.
/// let row: Vec<usize> = BroadcastOffsets::new(&[3], &[2, 3]).collect();
/// assert_eq!(row, vec![0, 1, 2, 0, 1, 2]);
/// ```
pub struct BroadcastOffsets {
    /// Per axis of `dst`: its length and the stride in `src` (0 where broadcast). Up to
    /// four axes are stored inline: a walk is made for each chunk of a loop.
    axes: SmallVec<[(usize, usize); 4]>,
    index: Shape,
    offset: usize,
    remaining: usize,
}

impl BroadcastOffsets {
    /// The walk of `src` broadcast to `dst` (which `src` must broadcast to).
    ///
    /// ```
    /// use tracker_core::broadcast::BroadcastOffsets;
    ///
    /// let scalar = BroadcastOffsets::new(&[], &[2, 2]);
    /// assert_eq!(scalar.len(), 4);
    /// assert_eq!(scalar.collect::<Vec<_>>(), vec![0, 0, 0, 0]);
    /// ```
    pub fn new(src: &[usize], dst: &[usize]) -> Self {
        let mut strides: Shape = smallvec::smallvec![0; dst.len()];
        let mut stride = 1usize;
        let lead = dst.len().saturating_sub(src.len());
        for (k, &d) in src.iter().enumerate().rev() {
            if let Some(s) = strides.get_mut(lead + k) {
                *s = if d == 1 { 0 } else { stride };
            }
            stride = stride.saturating_mul(d);
        }
        let remaining = dst.iter().product();
        BroadcastOffsets {
            axes: dst.iter().copied().zip(strides).collect(),
            index: smallvec::smallvec![0; dst.len()],
            offset: 0,
            remaining,
        }
    }
}

impl BroadcastOffsets {
    /// This walk, not yet begun, moved to element `start` of `dst` (for a loop cut into
    /// chunks).
    pub(crate) fn starting_at(mut self, start: usize) -> Self {
        let start = start.min(self.remaining);
        let mut rest = start;
        for ((len, stride), i) in self.axes.iter().zip(self.index.iter_mut()).rev() {
            *i = rest % (*len).max(1);
            rest /= (*len).max(1);
            self.offset += *i * stride;
        }
        self.remaining -= start;
        self
    }
}

impl Iterator for BroadcastOffsets {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let current = self.offset;
        // Advance the odometer from the last axis.
        for ((len, stride), i) in self.axes.iter().zip(self.index.iter_mut()).rev() {
            *i += 1;
            self.offset += stride;
            if *i < *len {
                break;
            }
            self.offset -= stride * *len;
            *i = 0;
        }
        Some(current)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for BroadcastOffsets {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_broadcast_like_numpy() {
        assert_eq!(
            broadcast_shapes("add", &[3, 1], &[4]).ok(),
            Some(Shape::from_slice(&[3, 4]))
        );
        assert_eq!(
            broadcast_shapes("add", &[], &[2, 2]).ok(),
            Some(Shape::from_slice(&[2, 2]))
        );
        assert!(broadcast_shapes("add", &[3], &[4]).is_err());
    }

    #[test]
    fn reduction_axes_cover_leading_and_stretched_axes() {
        assert_eq!(reduction_axes(&[2, 3, 4], &[3, 1]).as_slice(), &[0, 2]);
        assert_eq!(reduction_axes(&[2, 3], &[2, 3]).as_slice(), &[] as &[usize]);
    }

    #[test]
    fn offsets_walk_a_broadcast() {
        let offsets: Vec<usize> = BroadcastOffsets::new(&[3, 1], &[2, 3, 2]).collect();
        assert_eq!(offsets, vec![0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 2]);
        let offsets: Vec<usize> = BroadcastOffsets::new(&[2], &[2, 2]).collect();
        assert_eq!(offsets, vec![0, 1, 0, 1]);
    }

    #[test]
    fn a_walk_can_begin_anywhere() {
        let whole: Vec<usize> = BroadcastOffsets::new(&[3, 1], &[2, 3, 2]).collect();
        for start in 0..=whole.len() {
            let rest: Vec<usize> = BroadcastOffsets::new(&[3, 1], &[2, 3, 2])
                .starting_at(start)
                .collect();
            assert_eq!(Some(rest.as_slice()), whole.get(start..));
        }
    }
}
