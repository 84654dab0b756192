//! The loops every elementwise op shares: one pass over `N` broadcast inputs, a chunk
//! of [`LANES`] elements at a time.

use std::ops::{Add, Div, Mul, Neg, Sub};

use crate::broadcast::BroadcastOffsets;
use crate::error::Result;
use crate::num::{Float, Num};
use crate::ops::binary::Binary;
use crate::ops::unary::Unary;
use crate::parallel::{self, Slots};
use crate::value::{Array, size_of};
use crate::vmath;

/// `f` applied elementwise to `inputs` broadcast to `out_shape`, in one pass.
pub fn zip<T: Float, const N: usize>(
    op: &'static str,
    inputs: [&Array<T>; N],
    out_shape: &[usize],
    f: impl Fn([T; N]) -> T + Sync,
) -> Result<Array<T>> {
    zip_lanes(op, inputs, out_shape, |args| Lanes::each(args, &f))
}

/// `f` applied to chunks of `inputs` broadcast to `out_shape`, in one pass: what rules
/// over [`Num`] run on, so that each of their operations is one short loop. Long
/// outputs are cut into chunks that run in parallel.
///
/// Inputs that already have `out_shape` (or a single element, or one value
/// throughout) are read directly; the others are gathered for each chunk first, a row
/// at a time through broadcast offsets, so that one tight loop reads every input. The
/// lanes past the end of the last chunk hold ones, and their results are dropped.
pub fn zip_lanes<T: Float, const N: usize>(
    op: &'static str,
    inputs: [&Array<T>; N],
    out_shape: &[usize],
    f: impl Fn([Lanes<T>; N]) -> Lanes<T> + Sync,
) -> Result<Array<T>> {
    let len = size_of(out_shape, op)?;
    // An input known to hold one value throughout is read as that value, broadcast
    // like a 0-d one: its one element, and no axes. One kept as a broadcast is read as
    // the smaller array it broadcasts.
    let read = inputs.map(|a| match a.uniform() {
        Some(v) => (std::slice::from_ref(v), &[][..]),
        None => a
            .broadcast_source()
            .unwrap_or_else(|| (a.as_slice(), a.shape())),
    });
    // Here only inputs of one value have no axes (a 0-d one holds one value).
    if out_shape.is_empty() || read.iter().all(|(_, shape)| shape.is_empty()) {
        // One value throughout (0-d results are stored inline): computed once.
        let mut args = [Lanes([T::one(); LANES]); N];
        for (arg, (s, _)) in args.iter_mut().zip(read) {
            *arg = Lanes::load(s, 0);
        }
        return Array::full(out_shape, f(args).0[0], op);
    }
    // An output of one group of lanes, from inputs of its length or of one element: the
    // group computed at once, without the chunked loop's set-up (most of the cost of an
    // op on a few elements).
    if len <= LANES && read.iter().all(|(s, _)| s.len() == len || s.len() == 1) {
        let mut args = [Lanes([T::one(); LANES]); N];
        for (arg, (s, _)) in args.iter_mut().zip(read) {
            *arg = match s {
                [v] => Lanes([*v; LANES]),
                _ => Lanes::load(s, 0),
            };
        }
        let group = f(args).0;
        return Array::from_vec(out_shape, group.get(..len).unwrap_or_default().to_vec());
    }
    // Broadcast inputs are gathered a row (the output's last axis) at a time.
    let row = out_shape.last().copied().unwrap_or(1).max(1);
    let outer = out_shape
        .get(..out_shape.len().saturating_sub(1))
        .unwrap_or_default();
    let plan = Plan {
        inputs: read,
        len,
        row,
        outer,
    };
    let out = plan.fill(op, &f)?;
    Array::from_vec(out_shape, out)
}

/// How [`zip_lanes`] reads its inputs.
struct Plan<'a, T, const N: usize> {
    /// The inputs' elements and shapes (no axes for one value throughout).
    inputs: [(&'a [T], &'a [usize]); N],
    /// The output's size, its last axis, and the axes before it.
    len: usize,
    row: usize,
    outer: &'a [usize],
}

impl<T: Float, const N: usize> Plan<'_, T, N> {
    /// The output, written in chunks (in parallel when long) by loops compiled for AVX2
    /// where the CPU has it ([`vmath::on_avx2`]; a short output is not worth the call).
    fn fill(
        &self,
        op: &'static str,
        f: &(impl Fn([Lanes<T>; N]) -> Lanes<T> + Sync),
    ) -> Result<Vec<T>> {
        if self.len <= 4 * LANES {
            return parallel::filled(self.len, op, |first, out| self.chunk(f, first, out));
        }
        parallel::filled(self.len, op, |first, out| {
            vmath::on_avx2(
                #[inline(always)]
                || self.chunk(f, first, out),
            )
        })
    }

    /// The chunk of the output from `first`, `LANES` elements at a time.
    #[inline(always)]
    fn chunk(&self, f: &impl Fn([Lanes<T>; N]) -> Lanes<T>, first: usize, out: &mut Slots<'_, T>) {
        let len = out.len();
        // Inputs of one value are read from a group of it; a single row repeated over
        // the outer axes (a bias) is read in place when its groups of lanes line up with
        // the output's; other broadcast inputs are gathered for the chunk; the rest are
        // read in place.
        let mut repeated = [[T::zero(); LANES]; N];
        let mut gathered = [const { Vec::new() }; N];
        for ((group, run), (s, shape)) in repeated.iter_mut().zip(&mut gathered).zip(self.inputs) {
            match s {
                [v] => *group = [*v; LANES],
                _ if s.len() == self.len || self.is_aligned_row(s, shape) => {}
                _ => *run = self.gather(s, shape, first, len),
            }
        }
        // Each input as a run: a group of lanes is read at `at`, which moves on `step`
        // elements for the next group, and back to 0 on reaching `period`.
        let mut runs = [(&[][..], 0, 0, usize::MAX); N];
        let sources = repeated.iter().zip(&gathered).zip(self.inputs);
        for (run, ((group, gathered), (s, shape))) in runs.iter_mut().zip(sources) {
            *run = match s {
                [_] => (group.as_slice(), 0, 0, usize::MAX),
                _ if s.len() == self.len => (
                    s.get(first..first + len).unwrap_or_default(),
                    0,
                    LANES,
                    usize::MAX,
                ),
                _ if self.is_aligned_row(s, shape) => (s, first % self.row, LANES, self.row),
                _ => (gathered.as_slice(), 0, LANES, usize::MAX),
            };
        }
        // Only a chunk that reads a row in place checks for the end of a period. `N > 1`
        // is known when compiling: one-input loops, which never read a row in place
        // (see `is_aligned_row`), get no wrapping copy.
        if N > 1 && runs.iter().any(|&(_, _, _, period)| period != usize::MAX) {
            fill_runs::<T, N, true>(runs, f, out);
        } else {
            fill_runs::<T, N, false>(runs, f, out);
        }
    }

    /// Whether input `s` (of shape `shape`) is one row of the output repeated over the
    /// outer axes, of a length that is a whole number of groups of lanes: every group of
    /// the output then reads one whole group of it (chunks start at multiples of
    /// [`LANES`]). A loop over one input (a `broadcast_to`) gathers it instead, so that
    /// only loops over several inputs are compiled twice.
    fn is_aligned_row(&self, s: &[T], shape: &[usize]) -> bool {
        N > 1
            && self.row.is_multiple_of(LANES)
            && s.len() == self.row
            && shape.last() == Some(&self.row)
    }

    /// The elements of broadcast input `s` (of shape `shape`) for the `len` outputs
    /// from `first`, copied a row at a time. Its last axis either matches the row or has
    /// length 1 (one element repeated along the row).
    fn gather(&self, s: &[T], shape: &[usize], first: usize, len: usize) -> Vec<T> {
        let (lead, last) = shape.split_at(shape.len().saturating_sub(1));
        let along = last.first().is_some_and(|&d| d != 1);
        let mut bases = BroadcastOffsets::new(lead, self.outer).starting_at(first / self.row);
        let mut run = Vec::with_capacity(len);
        let (mut at, end) = (first, first + len);
        // The chunk may start and end inside a row.
        while at < end {
            let from = at % self.row;
            let to = self.row.min(from + end - at);
            let base = bases.next().unwrap_or(0);
            if along {
                let piece = s.get(base * self.row..).unwrap_or_default();
                run.extend_from_slice(piece.get(from..to).unwrap_or_default());
            } else {
                let v = s.get(base).copied().unwrap_or_default();
                run.resize(run.len() + (to - from), v);
            }
            at += to - from;
        }
        run
    }
}

/// The slots left in `out` from `f` on the lanes of `runs` (see [`Plan::chunk`]); with
/// `WRAP`, a run goes back to its start at the end of its period.
#[inline(always)]
fn fill_runs<T: Float, const N: usize, const WRAP: bool>(
    mut runs: [(&[T], usize, usize, usize); N],
    f: &impl Fn([Lanes<T>; N]) -> Lanes<T>,
    out: &mut Slots<'_, T>,
) {
    out.fill_groups(
        #[inline(always)]
        |k| {
            let mut args = [Lanes([T::one(); LANES]); N];
            for (arg, (run, at, step, period)) in args.iter_mut().zip(&mut runs) {
                if WRAP {
                    *arg = Lanes::load(run, *at);
                    *at += *step;
                    if *at == *period {
                        *at = 0;
                    }
                } else {
                    *arg = Lanes::load(run, *at + k * *step);
                }
            }
            f(args).0
        },
    );
}

/// How many elements the loops take together.
pub const LANES: usize = 16;

/// [`LANES`] elements, evaluated together: a value rules over [`Num`] run on, each
/// operation a loop LLVM vectorises; unary functions go to [`vmath`] a chunk at a time.
#[derive(Debug, Clone, Copy)]
pub struct Lanes<T>(pub [T; LANES]);

impl<T: Float> Lanes<T> {
    /// The elements of `s` from `start` (ones past its end).
    #[inline(always)]
    fn load(s: &[T], start: usize) -> Self {
        match s.get(start..) {
            Some(rest) => match rest.first_chunk::<LANES>() {
                Some(whole) => Lanes(*whole),
                None => {
                    let mut lanes = [T::one(); LANES];
                    lanes.iter_mut().zip(rest).for_each(|(l, &v)| *l = v);
                    Lanes(lanes)
                }
            },
            None => Lanes([T::one(); LANES]),
        }
    }

    /// `f` on the lanes of `args`, lane by lane.
    #[inline(always)]
    fn each<const N: usize>(args: [Self; N], f: impl Fn([T; N]) -> T) -> Self {
        let mut out = [T::zero(); LANES];
        for (i, o) in out.iter_mut().enumerate() {
            let mut lane = [T::zero(); N];
            for (l, a) in lane.iter_mut().zip(&args) {
                *l = a.0.get(i).copied().unwrap_or_default();
            }
            *o = f(lane);
        }
        Lanes(out)
    }

    #[inline(always)]
    fn map(mut self, f: impl Fn(T) -> T) -> Self {
        self.0.iter_mut().for_each(|v| *v = f(*v));
        self
    }

    #[inline(always)]
    fn zip_with(mut self, other: Self, f: impl Fn(T, T) -> T) -> Self {
        self.0
            .iter_mut()
            .zip(other.0)
            .for_each(|(v, w)| *v = f(*v, w));
        self
    }
}

macro_rules! lanewise {
    ($($trait:ident $method:ident),*) => {$(
        impl<T: Float> $trait for Lanes<T> {
            type Output = Self;
            #[inline(always)]
            fn $method(self, other: Self) -> Self {
                self.zip_with(other, T::$method)
            }
        }
    )*};
}

lanewise!(Add add, Sub sub, Mul mul, Div div);

impl<T: Float> Neg for Lanes<T> {
    type Output = Self;
    #[inline(always)]
    fn neg(self) -> Self {
        self.map(T::neg)
    }
}

impl<T: Float> Num for Lanes<T> {
    #[inline(always)]
    fn lit(self, value: f64) -> Self {
        Lanes([T::from_f64(value); LANES])
    }
    #[inline(always)]
    fn unary(self, op: Unary) -> Self {
        match op.vectorised() {
            Some(func) => {
                let mut out = self;
                vmath::apply(func, &self.0, &mut out.0, |v| op.eval(v));
                out
            }
            None => self.map(|v| op.eval(v)),
        }
    }
    #[inline(always)]
    fn binary(self, op: Binary, other: Self) -> Self {
        self.zip_with(other, |a, b| op.eval(a, b))
    }
    #[inline(always)]
    fn sign(self) -> Self {
        self.map(Num::sign)
    }
    #[inline(always)]
    fn share(self, other: Self) -> Self {
        self.zip_with(other, Num::share)
    }
    #[inline(always)]
    fn prefer(self, other: Self) -> Self {
        self.zip_with(other, Num::prefer)
    }
    #[inline(always)]
    fn is_zero(self) -> Self {
        self.map(Num::is_zero)
    }
    #[inline(always)]
    fn nonnegative(self) -> Self {
        self.map(Num::nonnegative)
    }
    #[inline(always)]
    fn zeros(self) -> Self {
        Lanes([T::zero(); LANES])
    }
    #[inline(always)]
    fn replace_where(self, condition: Self, value: f64) -> Self {
        self.zip_with(condition, |v, c| v.replace_where(c, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `a + 10·b + 100·c` of three inputs broadcast to `shape`, element by element.
    fn naive(shape: &[usize], inputs: [&Array<f64>; 3]) -> Vec<f64> {
        let len: usize = shape.iter().product();
        let mut out = vec![0.0; len];
        for (input, scale) in inputs.iter().zip([1.0, 10.0, 100.0]) {
            let offsets = BroadcastOffsets::new(input.shape(), shape);
            for (o, k) in out.iter_mut().zip(offsets) {
                *o += scale * input.as_slice().get(k).copied().unwrap_or(f64::NAN);
            }
        }
        out
    }

    fn counting(shape: &[usize]) -> Result<Array<f64>> {
        let len = shape.iter().product();
        Array::from_vec(shape, (0..len).map(|k| k as f64).collect())
    }

    /// Rows that are shorter than the lanes, longer, and not a divisor of the chunk
    /// (chunks start inside rows), in long outputs that the pool splits; and rows of
    /// whole groups of lanes, which are read in place (a bias).
    #[test]
    fn broadcasts_match_element_by_element() -> Result<()> {
        let shapes = [
            vec![64, 10],
            vec![3, 700, 10],
            vec![11_000, 13],
            vec![7, 1, 4099],
            vec![64, 256],
            vec![2, 5, 32],
            vec![3000, 48],
            vec![9000, 16],
            // One group of lanes or less: inputs of the output's length or of one
            // element take the short path, the others the chunked loop.
            vec![1, 5],
            vec![4, 1],
            vec![16],
            vec![2, 3],
        ];
        let split = |s: &Vec<usize>| s.iter().product::<usize>() >= crate::parallel::PARALLEL_MIN;
        assert!(
            shapes.iter().any(split),
            "no output long enough for the pool"
        );
        for shape in shapes {
            let n = shape.len();
            let row: Vec<usize> = shape
                .iter()
                .enumerate()
                .map(|(k, &d)| if k + 1 == n { d } else { 1 })
                .collect();
            let column: Vec<usize> = shape
                .iter()
                .enumerate()
                .map(|(k, &d)| if k + 1 == n { 1 } else { d })
                .collect();
            let (a, b, c) = (
                counting(&shape)?,
                counting(row.get(1..).unwrap_or_default())?,
                counting(&column)?,
            );
            let y = zip_lanes("test", [&a, &b, &c], &shape, |[a, b, c]| {
                a + b.lit(10.0) * b + c.lit(100.0) * c
            })?;
            assert_eq!(y.as_slice(), naive(&shape, [&a, &b, &c]), "{shape:?}");
            // The same row and column kept as broadcasts to the whole shape: read as
            // the smaller arrays, and never written out.
            let whole =
                |x: &Array<f64>| Array::repeated(x.as_slice().to_vec(), x.shape(), &shape, "test");
            let (rows, columns) = (whole(&b)?, whole(&c)?);
            let y = zip_lanes("test", [&a, &rows, &columns], &shape, |[a, b, c]| {
                a + b.lit(10.0) * b + c.lit(100.0) * c
            })?;
            assert_eq!(y.as_slice(), naive(&shape, [&a, &b, &c]), "{shape:?}");
            assert!(!rows.written_out() && !columns.written_out(), "{shape:?}");
            // The row alone, broadcast.
            let zero = Array::scalar(0.0);
            let y = zip_lanes("test", [&b], &shape, |[b]| b.lit(10.0) * b)?;
            assert_eq!(y.as_slice(), naive(&shape, [&zero, &b, &zero]), "{shape:?}");
        }
        Ok(())
    }
}
