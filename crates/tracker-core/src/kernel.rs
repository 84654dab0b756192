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
/// throughout) are read directly; the others are walked through broadcast offsets. The
/// lanes past the end of the last chunk hold ones, and their results are dropped.
pub fn zip_lanes<T: Float, const N: usize>(
    op: &'static str,
    inputs: [&Array<T>; N],
    out_shape: &[usize],
    f: impl Fn([Lanes<T>; N]) -> Lanes<T> + Sync,
) -> Result<Array<T>> {
    let len = size_of(out_shape, op)?;
    // An input known to hold one value throughout is read as that value, broadcast
    // like a 0-d one: its one element, and no axes.
    let read = inputs.map(|a| match a.uniform() {
        Some(v) => (std::slice::from_ref(v), &[][..]),
        None => (a.as_slice(), a.shape()),
    });
    let (slices, shapes) = (read.map(|r| r.0), read.map(|r| r.1));
    // Here only inputs of one value have no axes (a 0-d one holds one value).
    if out_shape.is_empty() || shapes.iter().all(|s| s.is_empty()) {
        // One value throughout (0-d results are stored inline): computed once.
        let args = slices.map(|s| Lanes::load(s, 0));
        return Array::full(out_shape, f(args).0[0], op);
    }
    let direct = slices.iter().all(|s| s.len() == len || s.len() == 1);
    // Broadcast inputs are read a row (the output's last axis) at a time: along a row
    // each input either advances one element per lane or repeats one element.
    let row = out_shape.last().copied().unwrap_or(1).max(1);
    let outer = out_shape
        .get(..out_shape.len().saturating_sub(1))
        .unwrap_or_default();
    let plan = Plan {
        shapes,
        slices,
        direct,
        row,
        outer,
    };
    let out = plan.fill(len, op, &f)?;
    Array::from_vec(out_shape, out)
}

/// How [`zip_lanes`] reads its inputs.
struct Plan<'a, T, const N: usize> {
    /// The inputs' shapes, empty for one value throughout.
    shapes: [&'a [usize]; N],
    slices: [&'a [T]; N],
    /// Every input is full size or a single value: no offsets needed.
    direct: bool,
    /// The output's last axis, and the axes before it.
    row: usize,
    outer: &'a [usize],
}

impl<T: Float, const N: usize> Plan<'_, T, N> {
    /// The output, written in chunks (in parallel when long) by loops compiled for AVX2
    /// where the CPU has it ([`vmath::on_avx2`]; a short output is not worth the call).
    fn fill(
        &self,
        len: usize,
        op: &'static str,
        f: &(impl Fn([Lanes<T>; N]) -> Lanes<T> + Sync),
    ) -> Result<Vec<T>> {
        if len <= 4 * LANES {
            return parallel::filled(len, op, |first, out| self.chunk(f, first, out));
        }
        parallel::filled(len, op, |first, out| {
            vmath::on_avx2(
                #[inline(always)]
                || self.chunk(f, first, out),
            )
        })
    }

    #[inline(always)]
    fn chunk(&self, f: &impl Fn([Lanes<T>; N]) -> Lanes<T>, first: usize, out: &mut Slots<'_, T>) {
        if self.direct {
            direct_chunk(self.slices, f, first, out);
        } else {
            broadcast_chunk(
                self.shapes,
                self.slices,
                (self.row, self.outer),
                f,
                first,
                out,
            );
        }
    }
}

/// One chunk of [`zip_lanes`]'s output from `first`, each input full size or a single
/// value.
#[inline(always)]
fn direct_chunk<T: Float, const N: usize>(
    slices: [&[T]; N],
    f: &impl Fn([Lanes<T>; N]) -> Lanes<T>,
    first: usize,
    out: &mut Slots<'_, T>,
) {
    let end = first + out.len();
    for start in (first..end).step_by(LANES) {
        let mut args = [Lanes([T::zero(); LANES]); N];
        for (arg, s) in args.iter_mut().zip(slices) {
            *arg = Lanes::load(s, start);
        }
        f(args).store(out, end - start);
    }
}

/// One chunk of [`zip_lanes`]'s output from `first`, some inputs broadcast: each is
/// read through offsets from its shape, a row (`row` elements, under the `outer` axes)
/// at a time.
#[inline(always)]
fn broadcast_chunk<T: Float, const N: usize>(
    shapes: [&[usize]; N],
    slices: [&[T]; N],
    (row, outer): (usize, &[usize]),
    f: &impl Fn([Lanes<T>; N]) -> Lanes<T>,
    first: usize,
    out: &mut Slots<'_, T>,
) {
    let end = first + out.len();
    let mut walks = shapes.map(|shape| {
        let (lead, last) = shape.split_at(shape.len().saturating_sub(1));
        let step = last.first().copied().unwrap_or(1);
        (
            BroadcastOffsets::new(lead, outer).starting_at(first / row),
            step,
        )
    });
    // The chunk may start and end inside a row.
    let mut at = first;
    while at < end {
        let from = at % row;
        let to = row.min(from + end - at);
        let mut bases = [(0usize, 1usize); N];
        for (base, (walk, step)) in bases.iter_mut().zip(walks.iter_mut()) {
            *base = (walk.next().unwrap_or(0) * *step, *step);
        }
        for start in (from..to).step_by(LANES) {
            let mut args = [Lanes([T::one(); LANES]); N];
            for ((arg, &(base, step)), s) in args.iter_mut().zip(&bases).zip(slices) {
                *arg = if step == 1 {
                    Lanes::splat(s.get(base).copied().unwrap_or_default())
                } else {
                    Lanes::load(s.get(base..base + row).unwrap_or_default(), start)
                };
            }
            f(args).store(out, to - start);
        }
        at += to - from;
    }
}

/// How many elements the loops take together.
pub const LANES: usize = 16;

/// [`LANES`] elements, evaluated together: a value rules over [`Num`] run on, each
/// operation a loop LLVM vectorises; unary functions go to [`vmath`] a chunk at a time.
#[derive(Debug, Clone, Copy)]
pub struct Lanes<T>(pub [T; LANES]);

impl<T: Float> Lanes<T> {
    /// The elements of `s` from `start` (ones past its end), or its only element in
    /// every lane.
    #[inline(always)]
    fn load(s: &[T], start: usize) -> Self {
        let whole = s.get(start..start.saturating_add(LANES));
        match (s, whole.and_then(|w| <&[T; LANES]>::try_from(w).ok())) {
            (_, Some(whole)) => Lanes(*whole),
            ([v], _) => Lanes([*v; LANES]),
            _ => {
                let mut lanes = [T::one(); LANES];
                let rest = s.get(start..).unwrap_or_default();
                lanes.iter_mut().zip(rest).for_each(|(l, &v)| *l = v);
                Lanes(lanes)
            }
        }
    }

    /// `v` in every lane.
    #[inline(always)]
    fn splat(v: T) -> Self {
        Lanes([v; LANES])
    }

    /// Writes the first `n` lanes (all of them when `n >= LANES`) into the next slots.
    #[inline(always)]
    fn store(self, out: &mut Slots<'_, T>, n: usize) {
        if n >= LANES {
            out.extend_from_array(&self.0);
        } else {
            out.extend_from_slice(self.0.get(..n).unwrap_or_default());
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
