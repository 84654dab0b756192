//! The loops every elementwise op shares: one pass over `N` broadcast inputs.

use crate::broadcast::BroadcastOffsets;
use crate::error::{Error, Result};
use crate::num::Float;
use crate::value::{Array, size_of};

/// `f` applied elementwise to `inputs` broadcast to `out_shape`, in one pass.
///
/// Inputs that already have `out_shape` (or a single element) are read directly; the
/// others are walked through broadcast offsets.
pub fn zip<T: Float, const N: usize>(
    op: &'static str,
    inputs: [&Array<T>; N],
    out_shape: &[usize],
    f: impl Fn([T; N]) -> T,
) -> Result<Array<T>> {
    let len = size_of(out_shape, op)?;
    let mut out = Vec::new();
    out.try_reserve_exact(len).map_err(|_| Error::Memory {
        op,
        bytes: len.saturating_mul(std::mem::size_of::<T>()),
    })?;
    let slices = inputs.map(|a| a.as_slice());
    let direct = slices.iter().all(|s| s.len() == len || s.len() == 1);
    if direct {
        // Each input is either full size or a single value: no offsets needed.
        let full = slices.map(|s| s.len() == len && len != 1);
        let firsts = slices.map(|s| s.first().copied().unwrap_or_default());
        if full.iter().all(|&f| f) {
            for i in 0..len {
                out.push(f(slices.map(|s| s.get(i).copied().unwrap_or_default())));
            }
        } else {
            for i in 0..len {
                let mut args = firsts;
                for ((arg, s), &is_full) in args.iter_mut().zip(slices.iter()).zip(full.iter()) {
                    if is_full {
                        *arg = s.get(i).copied().unwrap_or_default();
                    }
                }
                out.push(f(args));
            }
        }
    } else {
        let mut walks = inputs.map(|a| BroadcastOffsets::new(a.shape(), out_shape));
        for _ in 0..len {
            let mut args = [T::zero(); N];
            for ((arg, walk), s) in args.iter_mut().zip(walks.iter_mut()).zip(slices.iter()) {
                *arg = walk
                    .next()
                    .and_then(|k| s.get(k))
                    .copied()
                    .unwrap_or_default();
            }
            out.push(f(args));
        }
    }
    Array::from_vec(out_shape, out)
}
