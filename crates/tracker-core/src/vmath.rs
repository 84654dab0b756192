//! Vectorised math over slices: exp, expm1, log, log1p, sin, cos, tanh and sigmoid for
//! `f32` and `f64`.
//!
//! Each function is a branch-free `f64` kernel written for one element (polynomials
//! after a range reduction, bits taken apart with `to_bits`/`from_bits`), so that LLVM
//! vectorises the loop over the elements. The loop is compiled three times, for
//! AVX-512, for AVX2 (with FMA) and for the baseline, and the best the CPU has is
//! picked at run time. The kernels' multiply-adds are fused (`mul_add`, a quarter
//! faster than a product and a sum): exactly rounded, so every path gives the same
//! bits, on every CPU that has FMA (x86-64 since 2013, every 64-bit ARM). An x86-64 CPU
//! without it, where each would be a library call, gets the scalar functions instead.
//! `exp`, `log` and `tanh` of `f32` elements, the ones `f32` models lean on, are
//! computed in `f32` itself, sixteen lanes at a time rather than eight; the others are
//! computed in `f64` and rounded once, with the exponentials' polynomial cut to what
//! `f32` needs.
//!
//! A kernel has a fast range (for `exp`, `|x| <= 708`): elements outside it (NaN,
//! infinities, overflow, underflow, huge arguments of `sin`) are recomputed by the
//! caller's scalar function, one by one. Which function answers depends on the element
//! alone, never on its neighbours.
//!
//! Accuracy in `f64`, measured against glibc's functions (themselves within 1 ulp of
//! the true value; see the tests): within 1 ulp for exp, expm1, log and log1p, 2 for
//! sin, cos and sigmoid, 3 for tanh (2.4 from the true value). `f32` results are
//! within 1 ulp of the correctly rounded value.
//!
//! ```
//! use tracker_core::vmath::{Func, apply};
//!
//! let x = [0.0f64, 1.0, 800.0];
//! let mut y = [0.0; 3];
//! apply(Func::Exp, &x, &mut y, f64::exp); // 800 overflows: the scalar exp answers
//! assert_eq!((y[0], y[2]), (1.0, f64::INFINITY));
//! assert!((y[1] - 1f64.exp()).abs() <= f64::EPSILON * 4.0); // within an ulp
//! ```

use std::f64::consts::{FRAC_2_PI, LOG2_E};

use crate::num::Float;

/// A function of this module.
///
/// ```
/// use tracker_core::vmath::{Func, apply};
///
/// let x = [0.5f32];
/// let mut y = [0.0f32];
/// apply(Func::Sigmoid, &x, &mut y, |v| 1.0 / (1.0 + (-v).exp()));
/// assert!((y[0] - 0.622_459_3).abs() < 1e-7);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    /// `eˣ`.
    Exp,
    /// `eˣ - 1`, accurate near 0.
    Expm1,
    /// The natural logarithm.
    Log,
    /// `ln(1 + x)`, accurate near 0.
    Log1p,
    /// The sine.
    Sin,
    /// The cosine.
    Cos,
    /// The hyperbolic tangent.
    Tanh,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
}

impl Func {
    /// Every function, for tests.
    ///
    /// ```
    /// use tracker_core::vmath::Func;
    ///
    /// assert_eq!(Func::ALL.len(), 8);
    /// assert!(Func::ALL.contains(&Func::Tanh));
    /// ```
    pub const ALL: &'static [Func] = &[
        Func::Exp,
        Func::Expm1,
        Func::Log,
        Func::Log1p,
        Func::Sin,
        Func::Cos,
        Func::Tanh,
        Func::Sigmoid,
    ];
}

/// `func` of each element of `x`, into `out` (of the same length; extra elements of
/// either are ignored). Elements outside the kernel's fast range get `scalar`.
///
/// ```
/// use tracker_core::vmath::{Func, apply};
///
/// let x: Vec<f64> = (0..1000).map(|i| i as f64 / 100.0 - 5.0).collect();
/// let mut y = vec![0.0; x.len()];
/// apply(Func::Tanh, &x, &mut y, f64::tanh);
/// for (a, b) in x.iter().zip(&y) {
///     assert!((a.tanh() - b).abs() <= 4.0 * f64::EPSILON);
/// }
/// ```
pub fn apply<T: Float>(func: Func, x: &[T], out: &mut [T], scalar: impl Fn(T) -> T) {
    apply_on(Isa::detect(), func, x, out, scalar);
}

/// The instruction sets the loops are compiled for.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Isa {
    Baseline,
    Avx2,
    Avx512,
}

impl Isa {
    /// The best one this CPU has.
    pub(crate) fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if is_x86_feature_detected!("avx2") {
                return Isa::Avx2;
            }
        }
        Isa::Baseline
    }
}

/// `f()` with its loops (inlined into it: mark a closure `#[inline(always)]`) compiled
/// for AVX2 where the CPU has it: for loops outside this module, which wait on memory
/// (elementwise ops, reductions). Not for AVX-512: 512-bit vectors lower the clock on
/// some CPUs, and these loops measured slower with them (W4 7% on a Cascade Lake);
/// this module's kernels, which compute far more per element, are twice as fast.
#[inline(always)]
pub(crate) fn on_avx2<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if Isa::detect() >= Isa::Avx2 {
            // SAFETY: the CPU has AVX2.
            return unsafe { avx2(f) };
        }
    }
    f()
}

/// [`apply`] with loops compiled for `isa`, which the CPU must have (it falls back to
/// the baseline otherwise).
pub(crate) fn apply_on<T: Float>(
    isa: Isa,
    func: Func,
    x: &[T],
    out: &mut [T],
    scalar: impl Fn(T) -> T,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if isa == Isa::Avx512 && is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            return unsafe { apply_avx512(func, x, out, scalar) };
        }
        let fma = is_x86_feature_detected!("fma");
        if isa >= Isa::Avx2 && is_x86_feature_detected!("avx2") && fma {
            // SAFETY: the CPU has AVX2 and FMA.
            return unsafe { apply_avx2(func, x, out, scalar) };
        }
        if !fma {
            // Without FMA the kernels' multiply-adds would each be a library call.
            for (o, &v) in out.iter_mut().zip(x) {
                *o = scalar(v);
            }
            return;
        }
    }
    let _ = isa; // used on x86_64 only
    apply_blocks(func, x, out, scalar);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn apply_avx512<T: Float>(func: Func, x: &[T], out: &mut [T], scalar: impl Fn(T) -> T) {
    apply_blocks(func, x, out, scalar);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn apply_avx2<T: Float>(func: Func, x: &[T], out: &mut [T], scalar: impl Fn(T) -> T) {
    apply_blocks(func, x, out, scalar);
}

/// Elements per block: the unit the fast-range check covers, small enough that a
/// block is still in cache when its elements outside the fast range are redone.
const BLOCK: usize = 512;

#[inline(always)]
fn apply_blocks<T: Float>(func: Func, x: &[T], out: &mut [T], scalar: impl Fn(T) -> T) {
    if size_of::<T>() == size_of::<f32>() {
        blocks::<T, F32_TERMS>(func, x, out, scalar);
    } else {
        blocks::<T, { EXPM1.len() }>(func, x, out, scalar);
    }
}

/// [`apply_blocks`] with the exponentials' polynomial cut to its first `TERMS` terms
/// ([`F32_TERMS`] for `f32` elements, which also take [`tanh32`]).
#[inline(always)]
fn blocks<T: Float, const TERMS: usize>(
    func: Func,
    x: &[T],
    out: &mut [T],
    scalar: impl Fn(T) -> T,
) {
    for (x, out) in x.chunks(BLOCK).zip(out.chunks_mut(BLOCK)) {
        match func {
            Func::Exp if TERMS == F32_TERMS => {
                lanes32(x, out, &scalar, exp32, |v| v.abs() <= EXP32_MAX);
            }
            Func::Exp => lanes(x, out, &scalar, exp::<TERMS>, |v| v.abs() <= EXP_MAX),
            Func::Expm1 => lanes(x, out, &scalar, expm1::<TERMS>, |v| v.abs() <= EXP_MAX),
            Func::Log if TERMS == F32_TERMS => lanes32(x, out, &scalar, log32, |v| {
                (f32::MIN_POSITIVE..=f32::MAX).contains(&v)
            }),
            Func::Log => lanes(x, out, &scalar, log, |v| {
                (f64::MIN_POSITIVE..=f64::MAX).contains(&v)
            }),
            Func::Log1p => lanes(x, out, &scalar, log1p, |v| v > -1.0 && v <= f64::MAX),
            Func::Sin => lanes(x, out, &scalar, sin, |v| v.abs() <= TRIG_MAX),
            Func::Cos => lanes(x, out, &scalar, cos, |v| v.abs() <= TRIG_MAX),
            Func::Tanh if TERMS == F32_TERMS => {
                lanes32(x, out, &scalar, tanh32, |v| v.abs() <= f32::MAX);
            }
            Func::Tanh => lanes(x, out, &scalar, tanh::<TERMS>, |v| v.abs() <= f64::MAX),
            Func::Sigmoid => lanes(x, out, &scalar, sigmoid::<TERMS>, |v| v.abs() <= EXP_MAX),
        }
    }
}

/// `kernel` on every element, then `scalar` on those outside the fast range, if any.
#[inline(always)]
fn lanes<T: Float>(
    x: &[T],
    out: &mut [T],
    scalar: &impl Fn(T) -> T,
    kernel: impl Fn(f64) -> f64,
    fast: impl Fn(f64) -> bool,
) {
    lanes_in(x, out, scalar, T::to_f64, T::from_f64, kernel, fast);
}

/// [`lanes`] for a kernel computed in `f32`, for `f32` elements (whose conversions
/// to and from `f64` are exact and compile to nothing).
#[inline(always)]
fn lanes32<T: Float>(
    x: &[T],
    out: &mut [T],
    scalar: &impl Fn(T) -> T,
    kernel: impl Fn(f32) -> f32,
    fast: impl Fn(f32) -> bool,
) {
    let narrow = |v: T| v.to_f64() as f32;
    let widen = |y: f32| T::from_f64(f64::from(y));
    lanes_in(x, out, scalar, narrow, widen, kernel, fast);
}

/// [`lanes`] computing in `C`, reached from the elements by `to` and back by `from`.
#[inline(always)]
fn lanes_in<T: Float, C: Copy>(
    x: &[T],
    out: &mut [T],
    scalar: &impl Fn(T) -> T,
    to: impl Fn(T) -> C,
    from: impl Fn(C) -> T,
    kernel: impl Fn(C) -> C,
    fast: impl Fn(C) -> bool,
) {
    let mut all_fast = true;
    for (o, &v) in out.iter_mut().zip(x) {
        let v = to(v);
        *o = from(kernel(v));
        all_fast &= fast(v);
    }
    if !all_fast {
        for (o, &v) in out.iter_mut().zip(x) {
            if !fast(to(v)) {
                *o = scalar(v);
            }
        }
    }
}

// -- the kernels: f64 -> f64, branch-free, exact only inside their fast range -------------

/// The fast range of the exponentials: `2^k` for `k = round(x / ln 2)` stays normal.
const EXP_MAX: f64 = 708.0;
/// [`EXP_MAX`] for [`exp32`]: `k` stays within `±126`, and `2^-126·e^r` normal.
const EXP32_MAX: f32 = 87.0;
/// The fast range of `sin` and `cos`: `k·PIO2_1` is exact for `k < 2^21`.
const TRIG_MAX: f64 = 1_048_576.0; // 2^20

/// ln 2 split so that `k·LN2_HI` is exact for `|k| < 2^11` (42 significant bits).
const LN2_HI: f64 = 0.693_147_180_559_890_3;
const LN2_LO: f64 = 5.497_923_018_708_371e-14;
/// π/2 in four parts; the first three have 32 significant bits, so `k·PIO2_i` is exact
/// for `k < 2^21`. Their sum is π/2 within 2^-160.
const PIO2_1: f64 = 1.570_796_326_734_125_6;
const PIO2_2: f64 = 6.077_100_506_303_966e-11;
const PIO2_3: f64 = 2.022_266_248_711_166_5e-21;
const PIO2_4: f64 = 8.478_427_660_368_9e-32;

/// The Chebyshev fits below were computed with mpmath (60 digits) and rounded to f64;
/// each is exact to about 2^-55 relative to the function it serves. Lowest degree first.
///
/// `expm1(r) = r + r²/2 + r³·P(r)` on `|r| <= ln2 / 2` (degree 9, error 1.9e-17 in `P`).
const EXPM1: [f64; 10] = [
    0.166_666_666_666_666_69,
    0.041_666_666_666_666_664,
    0.008_333_333_333_330_062,
    0.001_388_888_888_888_655_2,
    0.000_198_412_698_630_536_18,
    2.480_158_731_714_449_8e-5,
    2.755_726_845_999_706_4e-6,
    2.755_728_296_954_995e-7,
    2.510_038_549_551_032e-8,
    2.091_123_663_026_154_5e-9,
];
/// `log(1+f) = 2·atanh(s) = 2s + s·z·P(z)`, `s = f/(2+f)`, `z = s²` on
/// `z <= ((√2-1)/(√2+1))²` (degree 6, error 3.2e-16 in `P`).
const LOG: [f64; 7] = [
    0.666_666_666_666_667,
    0.399_999_999_998_988_9,
    0.285_714_286_262_538_36,
    0.222_222_110_893_794_96,
    0.181_828_924_325_368_7,
    0.153_316_117_220_550_08,
    0.146_178_071_534_173_25,
];
/// `sin(r) = r + r·z·P(z)`, `z = r²` on `|r| <= π/4` (degree 6, error 9.3e-18 in `P`).
const SIN: [f64; 7] = [
    -0.166_666_666_666_666_66,
    0.008_333_333_333_333_331,
    -0.000_198_412_698_412_650_65,
    2.755_731_921_933_912e-6,
    -2.505_210_623_243_116e-8,
    1.605_853_161_638_406_4e-10,
    -7.586_696_964_319_367e-13,
];
/// `cos(r) = 1 - z/2 + z²·P(z)`, `z = r²` on `|r| <= π/4` (degree 5, error 2.3e-18 in `P`).
const COS: [f64; 6] = [
    0.041_666_666_666_666_664,
    -0.001_388_888_888_888_739_8,
    2.480_158_729_876_566e-5,
    -2.755_731_727_171_490_6e-7,
    2.087_614_626_530_059_8e-9,
    -1.138_263_220_199_036e-11,
];

/// `c[0] + x·c[1] + x²·c[2] + …`, by Horner's rule in `x²` over the pairs
/// `c[2i] + x·c[2i+1]`: the pairs are independent, so the chain of dependent
/// operations, which bounds the loops' speed, is half as long as plain Horner's.
#[inline(always)]
fn horner<F: MulAdd>(x: F, c: &[F]) -> F {
    let x2 = x * x;
    let pair = |p: &[F]| match p {
        [a, b] => x.mul_add(*b, *a),
        [a] => *a,
        _ => F::ZERO,
    };
    let mut pairs = c.chunks(2).rev();
    let last = pairs.next().map(pair).unwrap_or(F::ZERO);
    pairs.fold(last, |acc, p| acc.mul_add(x2, pair(p)))
}

/// The fused multiply-add of `f32` and `f64`, for [`horner`].
trait MulAdd: Copy + std::ops::Mul<Output = Self> {
    const ZERO: Self;
    fn mul_add(self, a: Self, b: Self) -> Self;
}

impl MulAdd for f32 {
    const ZERO: Self = 0.0;
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        f32::mul_add(self, a, b)
    }
}

impl MulAdd for f64 {
    const ZERO: Self = 0.0;
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        f64::mul_add(self, a, b)
    }
}

/// 1.5·2^52: a sum with it is rounded to an integer, which its low bits hold.
const SHIFT: f64 = 6_755_399_441_055_744.0;

/// `x` rounded to the nearest integer (ties to even), as a float and as the bits of an
/// `i64`; for `|x| < 2^51`.
#[inline(always)]
fn round_int(x: f64) -> (f64, u64) {
    let t = x + SHIFT;
    (t - SHIFT, t.to_bits().wrapping_sub(SHIFT.to_bits()))
}

/// `2^k` for the integer `k` (as `i64` bits) in `-1022..=1023`.
#[inline(always)]
fn pow2(k: u64) -> f64 {
    f64::from_bits(k.wrapping_add(1023) << 52)
}

/// `x = k·ln2 + r` with `|r| <= ln2/2`: `(k as i64 bits, r)`.
#[inline(always)]
fn reduce_ln2(x: f64) -> (u64, f64) {
    let (kf, k) = round_int(x * LOG2_E);
    // k·LN2_HI is exact and close to x: the first subtraction is exact.
    (k, kf.mul_add(-LN2_LO, kf.mul_add(-LN2_HI, x)))
}

/// How many terms of [`EXPM1`] `f32` results need: the first six leave a relative error
/// of 2^-30.5 in `expm1(r)`, far below half an `f32` ulp (2^-25), so the results stay
/// within 1 ulp of the correctly rounded value, with 4 multiply-adds fewer per element.
const F32_TERMS: usize = 6;

/// The first `TERMS` terms of `P(r)` in [`EXPM1`].
#[inline(always)]
fn expm1_tail<const TERMS: usize>(r: f64) -> f64 {
    horner(
        r,
        EXPM1.first_chunk::<TERMS>().map_or(EXPM1.as_slice(), |c| c),
    )
}

/// `expm1(r)` for `|r| <= ln2/2`.
#[inline(always)]
fn expm1_reduced<const TERMS: usize>(r: f64) -> f64 {
    (r * r).mul_add(r.mul_add(expm1_tail::<TERMS>(r), 0.5), r)
}

#[inline(always)]
fn exp<const TERMS: usize>(x: f64) -> f64 {
    let (k, r) = reduce_ln2(x);
    let s = pow2(k);
    s.mul_add(expm1_reduced::<TERMS>(r), s)
}

#[inline(always)]
fn expm1<const TERMS: usize>(x: f64) -> f64 {
    // 2^k·(1 + e) - 1 = ((2^k - 1) + 2^k·r) + 2^k·(e - r); k = 0 leaves e itself. r
    // is kept in two parts, its rounding error in `lo`.
    let (kf, k) = round_int(x * LOG2_E);
    let hi = kf.mul_add(-LN2_HI, x);
    let r = kf.mul_add(-LN2_LO, hi);
    let lo = kf.mul_add(-LN2_LO, hi - r);
    let s = pow2(k);
    let e = (r * r).mul_add(r.mul_add(expm1_tail::<TERMS>(r), 0.5), lo);
    let y = s.mul_add(e, s.mul_add(r, s - 1.0));
    if x == 0.0 { x } else { y }
}

/// `log(x)` for a positive normal `x`.
#[inline(always)]
fn log(x: f64) -> f64 {
    // x = 2^k·m with √½ <= m < √2: adding SQRT2_CARRY carries into the exponent field
    // exactly when the significand is at least √2's.
    const SQRT2_CARRY: u64 = 0x3ff0_0000_0000_0000 - 0x3fe6_a09e_667f_3bcd;
    let bits = x.to_bits();
    let biased = bits.wrapping_add(SQRT2_CARRY) >> 52; // k + 1023
    let k = biased.wrapping_sub(1023);
    let m = f64::from_bits(bits.wrapping_sub(k << 52));
    let kf = f64::from_bits(SHIFT.to_bits().wrapping_add(biased)) - (SHIFT + 1023.0);
    // log(m) = log(1+f) = f - f²/2 + s·(f²/2 + z·P(z)), with f exact.
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let half_f2 = 0.5 * f * f;
    let tail = s.mul_add(z.mul_add(horner(z, &LOG), half_f2), kf * LN2_LO);
    kf.mul_add(LN2_HI, f - (half_f2 - tail))
}

/// `log1p(x)` for `-1 < x <= f64::MAX`.
#[inline(always)]
fn log1p(x: f64) -> f64 {
    // u = 1 + x rounded; log(1+x) = log(u) + (1 + x - u)/u, the rounding error of the
    // sum being exact (Fast2Sum, larger operand first).
    let u = 1.0 + x;
    let err = if x.abs() <= 1.0 {
        x - (u - 1.0)
    } else {
        1.0 - (u - x)
    };
    let y = log(u) + err / u;
    if x == 0.0 { x } else { y }
}

/// `x = k·π/2 + r` with `|r| <= π/4`: `(k as i64 bits, r)`, for `|x| <= TRIG_MAX`.
#[inline(always)]
fn reduce_pio2(x: f64) -> (u64, f64) {
    let (kf, k) = round_int(x * FRAC_2_PI);
    // Each product is exact; each subtraction is exact or loses only what the result's
    // own rounding loses.
    let r = [PIO2_1, PIO2_2, PIO2_3, PIO2_4]
        .iter()
        .fold(x, |r, part| kf.mul_add(-part, r));
    (k, r)
}

/// `sin(k·π/2 + r)` for `|r| <= π/4`: ±sin(r) or ±cos(r) by the quadrant `k mod 4`.
#[inline(always)]
fn quadrant(k: u64, r: f64) -> f64 {
    let z = r * r;
    let sin = (r * z).mul_add(horner(z, &SIN), r);
    // 1 - z/2 with its rounding error added back.
    let half_z = 0.5 * z;
    let w = 1.0 - half_z;
    let cos = w + (z * z).mul_add(horner(z, &COS), (1.0 - w) - half_z);
    let v = if k & 1 == 0 { sin } else { cos };
    f64::from_bits(v.to_bits() ^ ((k & 2) << 62))
}

#[inline(always)]
fn sin(x: f64) -> f64 {
    let (k, r) = reduce_pio2(x);
    let y = quadrant(k, r);
    if x == 0.0 { x } else { y }
}

#[inline(always)]
fn cos(x: f64) -> f64 {
    let (k, r) = reduce_pio2(x);
    quadrant(k.wrapping_add(1), r)
}

#[inline(always)]
fn tanh<const TERMS: usize>(x: f64) -> f64 {
    // tanh|x| = t/(t+2), t = expm1(2|x|); tanh(x) rounds to 1 beyond 20.
    let a = x.abs();
    let t = expm1::<TERMS>(if a > 20.0 { 40.0 } else { a + a });
    (t / (t + 2.0)).copysign(x)
}

/// `tanh|x| = |x| + |x|³·P(x²)` on `|x| < 1` (degree 7, relative error 2^-27.5 in `P`).
const TANH32: [f32; 8] = [
    -0.333_333_34,
    0.133_333_1,
    -0.053_963_415,
    0.021_829_55,
    -0.008_697_848,
    0.003_206_803_5,
    -0.000_923_500_86,
    0.000_142_793_19,
];
/// `log(1+f) = f - f²/2 + f³·P(f)` on `√½-1 <= f < √2-1` (degree 8, relative error of
/// `log(1+f)` 2^-28; fitted by reweighted least squares in mpmath).
const LOG32: [f32; 9] = [
    0.333_333_13,
    -0.250_000_1,
    0.200_021_19,
    -0.166_679_96,
    0.142_195_51,
    -0.124_055_915,
    0.118_881_75,
    -0.116_756_41,
    0.067_466_01,
];
/// `exp(r)` on `|r| <= ln2 / 2` (degree 6, relative error 2^-28.6).
const EXP32: [f32; 7] = [
    1.0,
    1.0,
    0.5,
    0.166_664_15,
    0.041_666_35,
    0.008_375_126,
    0.001_394_110_8,
];

/// `tanh` in `f32` arithmetic, twice the lanes of an `f64` kernel. Below 1, a
/// polynomial; from 1 on, `1 - 2/(1 + e^2|x|)`, where the quotient is below 0.24, so its
/// errors (a few `f32` ulps of it, from `e` and the reciprocal) stay under one ulp of the
/// result: every `f32` is checked.
/// `|x|` is capped at 10, beyond which `tanh` rounds to 1.
#[inline(always)]
fn tanh32(x: f32) -> f32 {
    let a = x.abs();
    let z = a * a;
    let small = (a * z).mul_add(horner(z, &TANH32), a);
    let b = a.min(10.0);
    let large = 1.0 - 2.0 * recip32(1.0 + exp32(b + b));
    (if a < 1.0 { small } else { large }).copysign(x)
}

/// 1.5·2^23: a sum with it is rounded to an integer, which its low bits hold.
const SHIFT32: f32 = 12_582_912.0;
/// ln 2 in two parts; `k·LN2_HI32` is exact for `|k| < 2^15`.
const LN2_HI32: f32 = 0.693_359_4;
const LN2_LO32: f32 = -2.121_944_4e-4;

/// `exp` in `f32` arithmetic for `|x| <= EXP32_MAX`: `2^k·e^r` with `|r| <= ln2/2`.
/// `e^r = 1 + r·q(r)` keeps the rounding of the polynomial's sums scaled by `|r|`, so
/// the result stays within 1 ulp of the correctly rounded value (every `f32` is
/// checked).
#[inline(always)]
fn exp32(x: f32) -> f32 {
    let t = x.mul_add(std::f32::consts::LOG2_E, SHIFT32);
    let kf = t - SHIFT32;
    // k·LN2_HI32 is exact and close to x: the first subtraction is exact.
    let r = kf.mul_add(-LN2_LO32, kf.mul_add(-LN2_HI32, x));
    let e = r.mul_add(horner(r, &EXP32[1..]), 1.0);
    // 2^k·e: k (two's complement, in t's low bits) added to the exponent field.
    let k = t.to_bits().wrapping_sub(SHIFT32.to_bits());
    f32::from_bits(e.to_bits().wrapping_add(k << 23))
}

/// `log` in `f32` arithmetic for a positive normal `x`: `x = 2^k·m`, `√½ <= m < √2`,
/// `log(m) = f - f²/2 + f³·P(f)` with `f = m - 1` exact. Within 1 ulp of the correctly
/// rounded value (every `f32` is checked).
#[inline(always)]
fn log32(x: f32) -> f32 {
    // Adding SQRT2_CARRY32 carries into the exponent field exactly when the significand
    // is at least √2's.
    const SQRT2_CARRY32: u32 = 0x3f80_0000 - 0x3f35_04f3;
    let bits = x.to_bits();
    let biased = bits.wrapping_add(SQRT2_CARRY32) >> 23; // k + 127
    let k = biased.wrapping_sub(127);
    let m = f32::from_bits(bits.wrapping_sub(k << 23));
    let kf = k as i32 as f32; // k is two's complement
    let f = m - 1.0;
    let small = (f * f).mul_add(f.mul_add(horner(f, &LOG32), -0.5), kf * LN2_LO32);
    // k·LN2_HI32 is exact and comes last: where it nearly cancels f (k = ±1), the sum
    // is exact too, so only the small terms' rounding is lost.
    kf.mul_add(LN2_HI32, f + small)
}

/// `1/d` for `d` in `[1, 2^30]` by three Newton steps from an estimate read off the
/// bits (5% off; each step squares the relative error, to 2^-34 after three, below
/// `f32`'s rounding). The division it replaces was a third of `tanh`'s time with
/// AVX-512; without it `tanh` of 10^6 `f32` takes 0.70 ms instead of 0.84.
#[inline(always)]
fn recip32(d: f32) -> f32 {
    let mut y = f32::from_bits(0x7ef3_11c7_u32.wrapping_sub(d.to_bits()));
    for _ in 0..3 {
        y = y.mul_add((-d).mul_add(y, 1.0), y);
    }
    y
}

#[inline(always)]
fn sigmoid<const TERMS: usize>(x: f64) -> f64 {
    // exp only sees -|x|: 1/(1+e) for x >= 0, e/(1+e) below.
    let e = exp::<TERMS>(-x.abs());
    (if x >= 0.0 { 1.0 } else { e }) / (1.0 + e)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The distance in ulps between `a` and `b` (0 for two NaNs; adjacent floats are 1
    /// apart, across zero too).
    fn ulps(a: f64, b: f64) -> u64 {
        if a.is_nan() && b.is_nan() {
            return 0;
        }
        let key = |v: f64| {
            let b = v.to_bits() as i64;
            if b < 0 { i64::MIN.wrapping_sub(b) } else { b }
        };
        key(a).abs_diff(key(b))
    }

    fn ulps32(a: f32, b: f32) -> u64 {
        if a.is_nan() && b.is_nan() {
            return 0;
        }
        let key = |v: f32| {
            let b = v.to_bits() as i32;
            i64::from(if b < 0 { i32::MIN.wrapping_sub(b) } else { b })
        };
        key(a).abs_diff(key(b))
    }

    fn reference(func: Func, x: f64) -> f64 {
        match func {
            Func::Exp => x.exp(),
            Func::Expm1 => x.exp_m1(),
            Func::Log => x.ln(),
            Func::Log1p => x.ln_1p(),
            Func::Sin => x.sin(),
            Func::Cos => x.cos(),
            Func::Tanh => x.tanh(),
            Func::Sigmoid => {
                let e = (-x.abs()).exp();
                if x >= 0.0 {
                    1.0 / (1.0 + e)
                } else {
                    e / (1.0 + e)
                }
            }
        }
    }

    /// A reproducible stream of f64 bit patterns (xorshift).
    fn bits(seed: u64) -> impl Iterator<Item = u64> {
        let mut s = seed | 1;
        std::iter::repeat_with(move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        })
    }

    /// Inputs for `func`: uniform over the interesting range, log-uniform magnitudes,
    /// and the specials.
    fn inputs(func: Func, n: usize) -> Vec<f64> {
        let (lo, hi) = match func {
            Func::Exp | Func::Expm1 | Func::Sigmoid => (-750.0, 750.0),
            Func::Log | Func::Log1p => (-2.0, 1e6),
            Func::Sin | Func::Cos => (-2e6, 2e6),
            Func::Tanh => (-25.0, 25.0),
        };
        let mut v: Vec<f64> = bits(n as u64 ^ 0x9e37_79b9)
            .take(n)
            .enumerate()
            .map(|(i, b)| {
                let u = (b >> 11) as f64 / (1u64 << 53) as f64;
                match i % 4 {
                    0 => lo + (hi - lo) * u,
                    1 => (u - 0.5) * 2.0,
                    // magnitudes spread over 2^-1075 .. 2^12, either sign
                    2 => {
                        (1.0 + u).copysign(f64::from_bits(b)) * 2f64.powi((b % 1088) as i32 - 1075)
                    }
                    _ => f64::from_bits(b),
                }
            })
            .collect();
        v.extend([
            0.0,
            -0.0,
            1.0,
            -1.0,
            f64::NAN,
            -f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            -f64::MIN_POSITIVE,
            5e-324,
            -5e-324,
            1e-300,
            f64::MAX,
            f64::MIN,
            708.0,
            -708.0,
            709.78,
            710.0,
            -745.0,
            -746.0,
            -1.0 + f64::EPSILON / 2.0,
            TRIG_MAX,
            -TRIG_MAX,
            TRIG_MAX * 1.5,
            1e22,
            20.0,
            19.5,
            0.5f64.ln(),
            2f64.ln() / 2.0,
        ]);
        // Doubles nearest to multiples of π/2, where sin or cos nearly cancels.
        v.extend((1..20_000).map(|k| k as f64 * std::f64::consts::FRAC_PI_2));
        v.extend((0..20).map(|j| (j as f64 * 1.7).exp2() * std::f64::consts::FRAC_PI_2));
        v
    }

    fn run(isa: Isa, func: Func, x: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; x.len()];
        apply_on(isa, func, x, &mut out, |v| reference(func, v));
        out
    }

    fn isas() -> Vec<Isa> {
        let best = Isa::detect();
        [Isa::Baseline, Isa::Avx2, Isa::Avx512]
            .into_iter()
            .filter(|&i| i <= best)
            .collect()
    }

    /// The largest distance from the C library's result measured in f64 (the C library
    /// being within 1 ulp of the true value).
    fn tolerance(func: Func) -> u64 {
        match func {
            Func::Sin | Func::Cos | Func::Sigmoid => 2,
            Func::Tanh => 3,
            _ => 1,
        }
    }

    /// Near the C library in f64 (see `tolerance`), identical bits on every instruction
    /// set, specials exactly as the C library.
    #[test]
    fn f64_near_libm() {
        for &func in Func::ALL {
            let x = inputs(func, 400_000);
            let mut first: Option<Vec<f64>> = None;
            for isa in isas() {
                let y = run(isa, func, &x);
                let mut worst = (0, 0.0);
                for (&x, &y) in x.iter().zip(&y) {
                    let want = reference(func, x);
                    let d = ulps(y, want);
                    if d > worst.0 {
                        worst = (d, x);
                    }
                    if !want.is_finite() || want == 0.0 || x == 0.0 {
                        assert_eq!(
                            y.to_bits(),
                            want.to_bits(),
                            "{func:?}({x:e}) = {y:e}, want {want:e}"
                        );
                    }
                }
                println!("{func:?} f64 {isa:?}: max {} ulp at {:e}", worst.0, worst.1);
                assert!(
                    worst.0 <= tolerance(func),
                    "{func:?}: {} ulp at x = {:e}",
                    worst.0,
                    worst.1
                );
                match &first {
                    None => first = Some(y),
                    Some(f) => assert!(
                        f.iter().zip(&y).all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{func:?}: {isa:?} differs from the baseline"
                    ),
                }
            }
        }
    }

    /// f32: within 1 ulp of the f64 reference rounded to f32.
    #[test]
    fn f32_within_1_ulp() {
        for &func in Func::ALL {
            let x: Vec<f32> = inputs(func, 200_000).iter().map(|&v| v as f32).collect();
            for isa in isas() {
                let mut y = vec![0.0f32; x.len()];
                apply_on(isa, func, &x, &mut y, |v| reference(func, v.into()) as f32);
                let mut worst = (0, 0.0);
                for (&x, &y) in x.iter().zip(&y) {
                    let want = reference(func, x.into()) as f32;
                    let d = ulps32(y, want);
                    if d > worst.0 {
                        worst = (d, x);
                    }
                }
                println!("{func:?} f32 {isa:?}: max {} ulp at {:e}", worst.0, worst.1);
                assert!(
                    worst.0 <= 1,
                    "{func:?}: {} ulp at x = {:e}",
                    worst.0,
                    worst.1
                );
            }
        }
    }

    /// The `f32` kernels, each at every `step`-th `f32` from 0 to the end of its fast
    /// range and at their negatives: the worst `(func, ulps, x)` against the f64
    /// reference rounded to f32.
    fn f32_kernels_worst(step: usize) -> (Func, u64, f32) {
        let ranges = [
            (Func::Tanh, 10.5),
            (Func::Exp, EXP32_MAX),
            (Func::Log, f32::MAX),
        ];
        let mut worst = (Func::Tanh, 0, 0.0);
        for (func, top) in ranges {
            let reference = |x: f32| reference(func, x.into()) as f32;
            let bits: Vec<u32> = (0..=top.to_bits()).step_by(step).collect();
            // a chunk at a time: every f32 would not fit in memory at once
            for chunk in bits.chunks(1 << 20) {
                let x: Vec<f32> = chunk
                    .iter()
                    .flat_map(|&b| [f32::from_bits(b), -f32::from_bits(b)])
                    .collect();
                let mut y = vec![0.0f32; x.len()];
                apply(func, &x, &mut y, reference);
                for (&x, &y) in x.iter().zip(&y) {
                    let d = ulps32(y, reference(x));
                    if d > worst.1 {
                        worst = (func, d, x);
                    }
                }
            }
        }
        worst
    }

    #[test]
    fn f32_kernels_within_1_ulp_across_their_ranges() {
        let (func, ulps, x) = f32_kernels_worst(1021);
        assert!(ulps <= 1, "{func:?}: {ulps} ulp at x = {x:e}");
    }

    /// Every `f32` in the kernels' ranges.
    #[test]
    #[ignore = "every f32 in the kernels' ranges: minutes in release mode"]
    fn f32_kernels_within_1_ulp_everywhere() {
        let (func, ulps, x) = f32_kernels_worst(1);
        assert!(ulps <= 1, "{func:?}: {ulps} ulp at x = {x:e}");
    }

    #[test]
    fn specials() {
        let y = |func, x: f64| run(Isa::detect(), func, &[x]).first().copied();
        assert_eq!(y(Func::Exp, 710.0), Some(f64::INFINITY));
        assert_eq!(y(Func::Exp, -746.0), Some(0.0));
        assert_eq!(y(Func::Exp, -745.0), Some(5e-324));
        assert_eq!(y(Func::Log, 0.0), Some(f64::NEG_INFINITY));
        assert!(y(Func::Log, -1.0).is_some_and(f64::is_nan));
        assert_eq!(y(Func::Log1p, -1.0), Some(f64::NEG_INFINITY));
        assert_eq!(y(Func::Tanh, f64::NEG_INFINITY), Some(-1.0));
        assert_eq!(y(Func::Sigmoid, -800.0), Some(0.0));
        assert_eq!(y(Func::Sigmoid, f64::INFINITY), Some(1.0));
        assert!(y(Func::Sin, f64::INFINITY).is_some_and(f64::is_nan));
        assert_eq!(y(Func::Sin, 1e300), Some(1e300f64.sin()));
        for func in [Func::Expm1, Func::Log1p, Func::Sin, Func::Tanh] {
            assert_eq!(y(func, -0.0).map(f64::to_bits), Some((-0.0f64).to_bits()));
        }
    }

    proptest::proptest! {
        /// Any f64 (proptest's mix of normal, subnormal, zero, infinite and NaN values)
        /// and any f32: near the C library, the same bits on every instruction set.
        #[test]
        fn any_value(x in proptest::num::f64::ANY, neighbours in proptest::num::f64::ANY) {
            for &func in Func::ALL {
                let want = reference(func, x);
                let mut first = None;
                for isa in isas() {
                    // A neighbour outside the fast range must not change x's result.
                    let y = run(isa, func, &[neighbours, x]).get(1).copied().unwrap_or_default();
                    proptest::prop_assert!(ulps(y, want) <= tolerance(func), "{func:?}({x:e}) = {y:e}, want {want:e}");
                    proptest::prop_assert!(first.is_none_or(|f: f64| f.to_bits() == y.to_bits()));
                    first = Some(y);
                }
                let x32 = x as f32;
                let mut y32 = [0.0f32];
                apply(func, &[x32], &mut y32, |v| reference(func, v.into()) as f32);
                let want32 = reference(func, x32.into()) as f32;
                let [y32] = y32;
                proptest::prop_assert!(ulps32(y32, want32) <= 1, "{func:?}({x32:e})");
            }
        }
    }

    /// Any length, any alignment: the tail takes the same path.
    #[test]
    fn lengths() {
        let x: Vec<f64> = (0..100).map(|i| i as f64 * 0.37 - 11.0).collect();
        let full = run(Isa::detect(), Func::Sin, &x);
        for start in 0..20 {
            for end in start..x.len().min(start + 40) {
                let part = run(Isa::detect(), Func::Sin, x.get(start..end).unwrap_or(&[]));
                assert_eq!(Some(part.as_slice()), full.get(start..end));
            }
        }
    }
}
