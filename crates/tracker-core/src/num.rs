//! The scalar-like traits that elementwise ops are written against.
//!
//! An op's forward expression is written against [`Real`] (the element types'
//! math). Its rule, such as `|_x, y, dy| dy * (y.lit(1.0) - y * y)`, is generic over
//! [`Num`]: with `f32`/`f64` it is the body of one fused loop over buffers; with a
//! recorded value (a node of the tape that a sweep records on) every operator and function records a node,
//! so the same text gives second derivatives.
//!
//! ```
//! use tracker_core::num::{Num, Real};
//!
//! /// `tanh`'s rule, as its table row writes it.
//! fn tanh_rule<S: Num>(y: S, dy: S) -> S {
//!     dy * (y.lit(1.0) - y * y)
//! }
//!
//! let y = Real::tanh(0.5f64);
//! assert_eq!(tanh_rule(y, 1.0), 1.0 - y * y);
//! ```

use std::fmt::Debug;
use std::ops::{Add, Div, Mul, Neg, Sub};

use crate::ops::binary::Binary;
use crate::ops::unary::Unary;

/// What an elementwise rule may use: arithmetic, the table's ops, and masks read from
/// primal data. Implemented by `f32` and `f64` (the rule evaluates) and by the
/// recorded values of a sweep (the rule records).
///
/// ```
/// use tracker_core::num::Num;
///
/// /// `relu`'s rule: the gradient passes where the output is positive.
/// fn relu_rule<S: Num>(y: S, dy: S) -> S {
///     dy * y.sign()
/// }
///
/// assert_eq!(relu_rule(2.0f64, 3.0), 3.0);
/// assert_eq!(relu_rule(0.0f32, 3.0), 0.0);
/// ```
pub trait Num:
    Copy
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    /// A constant of the same kind as `self` (for a recorded value, a constant on its
    /// tape), so a rule can write `y.lit(1.0) - y * y`.
    ///
    /// ```
    /// use tracker_core::num::Num;
    ///
    /// assert_eq!(Num::lit(5.0f32, 0.5), 0.5f32);
    /// ```
    fn lit(self, value: f64) -> Self;
    /// A unary op of the table: evaluated, or recorded.
    ///
    /// ```
    /// use tracker_core::num::Num;
    /// use tracker_core::ops::unary::Unary;
    ///
    /// assert_eq!(Num::unary(4.0f64, Unary::Sqrt), 2.0);
    /// ```
    fn unary(self, op: Unary) -> Self;
    /// A binary op of the table: evaluated, or recorded.
    ///
    /// ```
    /// use tracker_core::num::Num;
    /// use tracker_core::ops::binary::Binary;
    ///
    /// assert_eq!(Num::binary(2.0f64, Binary::Pow, 10.0), 1024.0);
    /// ```
    fn binary(self, op: Binary, other: Self) -> Self;
    /// A mask read from primal data: -1, 0 or 1 (a constant: its derivative is zero).
    ///
    /// ```
    /// use tracker_core::num::Num;
    ///
    /// assert_eq!([-3.0f64, 0.0, 2.0].map(Num::sign), [-1.0, 0.0, 1.0]);
    /// ```
    fn sign(self) -> Self;
    /// A mask read from primal data: 1 where `self > other`, ½ where they tie, 0 where
    /// `self < other`. Ties share the gradient equally, as PyTorch does.
    ///
    /// ```
    /// use tracker_core::num::Num;
    ///
    /// assert_eq!(Num::share(2.0f64, 1.0), 1.0);
    /// assert_eq!(Num::share(1.0f64, 1.0), 0.5);
    /// assert_eq!(Num::share(0.0f64, 1.0), 0.0);
    /// ```
    fn share(self, other: Self) -> Self;
    /// A mask read from primal data: what `fmax` gives `self`: 1 where `other` is NaN,
    /// 0 where only `self` is, else as [`Num::share`].
    ///
    /// ```
    /// use tracker_core::num::Num;
    ///
    /// assert_eq!(Num::prefer(1.0f64, f64::NAN), 1.0);
    /// assert_eq!(Num::prefer(f64::NAN, 1.0), 0.0);
    /// assert_eq!(Num::prefer(2.0f64, 1.0), 1.0);
    /// ```
    fn prefer(self, other: Self) -> Self;
    /// A mask read from primal data: 1 where `self` is zero, else 0.
    ///
    /// ```
    /// use tracker_core::num::Num;
    ///
    /// assert_eq!([0.0f64, -0.0, 2.0].map(Num::is_zero), [1.0, 1.0, 0.0]);
    /// ```
    fn is_zero(self) -> Self;
    /// A mask read from primal data: 1 where `self >= 0`, else 0.
    ///
    /// ```
    /// use tracker_core::num::Num;
    ///
    /// assert_eq!([-1.0f64, 0.0, 1.0].map(Num::nonnegative), [0.0, 1.0, 1.0]);
    /// ```
    fn nonnegative(self) -> Self;
    /// Zeros of `self`'s shape: the gradient of a piecewise constant op.
    ///
    /// ```
    /// use tracker_core::num::Num;
    ///
    /// assert_eq!(Num::zeros(7.0f64), 0.0);
    /// ```
    fn zeros(self) -> Self;
    /// `value` where the mask `condition` is non-zero, `self` elsewhere: a select, so an
    /// infinite or NaN `self` does not leak through as `0 × inf`.
    ///
    /// ```
    /// use tracker_core::num::Num;
    ///
    /// assert_eq!(Num::replace_where(f64::INFINITY, 1.0, 0.0), 0.0);
    /// assert_eq!(Num::replace_where(3.0f64, 0.0, 0.0), 3.0);
    /// ```
    fn replace_where(self, condition: Self, value: f64) -> Self;

    /// `e ** self`: the table's `exp`.
    ///
    /// ```
    /// use tracker_core::num::Num;
    ///
    /// assert_eq!(Num::exp(0.0f64), 1.0);
    /// ```
    fn exp(self) -> Self {
        self.unary(Unary::Exp)
    }
    /// The natural logarithm: the table's `log`.
    ///
    /// ```
    /// use tracker_core::num::Num;
    ///
    /// assert_eq!(Num::ln(1.0f64), 0.0);
    /// ```
    fn ln(self) -> Self {
        self.unary(Unary::Log)
    }
    /// The sine: the table's `sin`.
    ///
    /// ```
    /// use tracker_core::num::Num;
    ///
    /// assert_eq!(Num::sin(0.0f64), 0.0);
    /// ```
    fn sin(self) -> Self {
        self.unary(Unary::Sin)
    }
    /// The cosine: the table's `cos`.
    ///
    /// ```
    /// use tracker_core::num::Num;
    ///
    /// assert_eq!(Num::cos(0.0f64), 1.0);
    /// ```
    fn cos(self) -> Self {
        self.unary(Unary::Cos)
    }
    /// The hyperbolic sine: the table's `sinh`.
    ///
    /// ```
    /// use tracker_core::num::Num;
    ///
    /// assert_eq!(Num::sinh(0.0f64), 0.0);
    /// ```
    fn sinh(self) -> Self {
        self.unary(Unary::Sinh)
    }
    /// The hyperbolic cosine: the table's `cosh`.
    ///
    /// ```
    /// use tracker_core::num::Num;
    ///
    /// assert_eq!(Num::cosh(0.0f64), 1.0);
    /// ```
    fn cosh(self) -> Self {
        self.unary(Unary::Cosh)
    }
    /// The square root: the table's `sqrt`.
    ///
    /// ```
    /// use tracker_core::num::Num;
    ///
    /// assert_eq!(Num::sqrt(9.0f64), 3.0);
    /// ```
    fn sqrt(self) -> Self {
        self.unary(Unary::Sqrt)
    }
    /// Rounds down: the table's `floor` (its derivative is zero).
    ///
    /// ```
    /// use tracker_core::num::Num;
    ///
    /// assert_eq!(Num::floor(-1.5f64), -2.0);
    /// ```
    fn floor(self) -> Self {
        self.unary(Unary::Floor)
    }
    /// Rounds towards zero: the table's `trunc` (its derivative is zero).
    ///
    /// ```
    /// use tracker_core::num::Num;
    ///
    /// assert_eq!(Num::trunc(-1.5f64), -1.0);
    /// ```
    fn trunc(self) -> Self {
        self.unary(Unary::Trunc)
    }
    /// `self ** exponent`: the table's `power`.
    ///
    /// ```
    /// use tracker_core::num::Num;
    ///
    /// assert_eq!(Num::powf(2.0f64, 3.0), 8.0);
    /// ```
    fn powf(self, exponent: Self) -> Self {
        self.binary(Binary::Pow, exponent)
    }
}

/// The math of the element types, which forward expressions are written against:
/// `f32` and `f64` forward to their std (or `libm`) functions; the NumPy functions
/// without a std counterpart are written once, here.
///
/// ```
/// use tracker_core::num::Real;
///
/// /// `softplus`, written once for both float types.
/// fn softplus<T: Real>(x: T) -> T {
///     x.maximum(x.lit(0.0)) + (-x.abs()).exp().ln_1p()
/// }
///
/// assert_eq!(softplus(0.0f64), std::f64::consts::LN_2);
/// assert_eq!(softplus(1000.0f32), 1000.0); // no overflow
/// ```
pub trait Real:
    Copy
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    /// A constant of `self`'s type: `value` rounded to it.
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::lit(1.0f32, 0.1), 0.1f32);
    /// ```
    fn lit(self, value: f64) -> Self;
    /// `e ** self`.
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::exp(0.0f64), 1.0);
    /// ```
    fn exp(self) -> Self;
    /// `2 ** self`.
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::exp2(3.0f64), 8.0);
    /// ```
    fn exp2(self) -> Self;
    /// `exp(self) - 1`, accurate near 0.
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::exp_m1(1e-20f64), 1e-20);
    /// ```
    fn exp_m1(self) -> Self;
    /// The natural logarithm.
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::ln(1.0f64), 0.0);
    /// ```
    fn ln(self) -> Self;
    /// The base-2 logarithm.
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::log2(8.0f64), 3.0);
    /// ```
    fn log2(self) -> Self;
    /// The base-10 logarithm.
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::log10(1000.0f64), 3.0);
    /// ```
    fn log10(self) -> Self;
    /// `ln(1 + self)`, accurate near 0.
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::ln_1p(1e-20f64), 1e-20);
    /// ```
    fn ln_1p(self) -> Self;
    /// The square root (NaN below 0).
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::sqrt(9.0f64), 3.0);
    /// assert!(Real::sqrt(-1.0f64).is_nan());
    /// ```
    fn sqrt(self) -> Self;
    /// The cube root (defined below 0).
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::cbrt(-27.0f64), -3.0);
    /// ```
    fn cbrt(self) -> Self;
    /// The sine (radians).
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::sin(0.0f64), 0.0);
    /// ```
    fn sin(self) -> Self;
    /// The cosine (radians).
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::cos(0.0f64), 1.0);
    /// ```
    fn cos(self) -> Self;
    /// The tangent (radians).
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert!((Real::tan(std::f64::consts::FRAC_PI_4) - 1.0).abs() < 1e-15);
    /// ```
    fn tan(self) -> Self;
    /// The arcsine, in `[-π/2, π/2]`.
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::asin(1.0f64), std::f64::consts::FRAC_PI_2);
    /// ```
    fn asin(self) -> Self;
    /// The arccosine, in `[0, π]`.
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::acos(-1.0f64), std::f64::consts::PI);
    /// ```
    fn acos(self) -> Self;
    /// The arctangent, in `(-π/2, π/2)`.
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::atan(f64::INFINITY), std::f64::consts::FRAC_PI_2);
    /// ```
    fn atan(self) -> Self;
    /// The hyperbolic sine.
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::sinh(0.0f64), 0.0);
    /// ```
    fn sinh(self) -> Self;
    /// The hyperbolic cosine.
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::cosh(0.0f64), 1.0);
    /// ```
    fn cosh(self) -> Self;
    /// The hyperbolic tangent.
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::tanh(f64::INFINITY), 1.0);
    /// ```
    fn tanh(self) -> Self;
    /// The inverse hyperbolic sine.
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::asinh(0.0f64), 0.0);
    /// ```
    fn asinh(self) -> Self;
    /// The inverse hyperbolic cosine (NaN below 1).
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::acosh(1.0f64), 0.0);
    /// ```
    fn acosh(self) -> Self;
    /// The inverse hyperbolic tangent (infinite at ±1).
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::atanh(1.0f64), f64::INFINITY);
    /// ```
    fn atanh(self) -> Self;
    /// The absolute value.
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::abs(-2.0f64), 2.0);
    /// ```
    fn abs(self) -> Self;
    /// The largest integer not above `self`.
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::floor(-1.5f64), -2.0);
    /// ```
    fn floor(self) -> Self;
    /// The smallest integer not below `self`.
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::ceil(-1.5f64), -1.0);
    /// ```
    fn ceil(self) -> Self;
    /// Rounds half to even, as NumPy's `rint`.
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::rint(2.5f64), 2.0);
    /// assert_eq!(Real::rint(3.5f64), 4.0);
    /// ```
    fn rint(self) -> Self;
    /// Rounds towards zero.
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::trunc(-1.7f64), -1.0);
    /// ```
    fn trunc(self) -> Self;
    /// Whether `self` is NaN.
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert!(Real::is_nan(f64::NAN));
    /// assert!(!Real::is_nan(f64::INFINITY));
    /// ```
    fn is_nan(self) -> bool;
    /// `self ** exponent`.
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::powf(2.0f64, -1.0), 0.5);
    /// ```
    fn powf(self, exponent: Self) -> Self;
    /// The angle of the point `(other, self)`, in `[-π, π]`: NumPy's `arctan2(self, other)`.
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::atan2(1.0f64, 0.0), std::f64::consts::FRAC_PI_2);
    /// ```
    fn atan2(self, other: Self) -> Self;
    /// `sqrt(self² + other²)`, without overflow.
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::hypot(3.0f64, 4.0), 5.0);
    /// assert!((Real::hypot(3e200f64, 4e200) / 5e200 - 1.0).abs() < 1e-15); // no overflow
    /// ```
    fn hypot(self, other: Self) -> Self;
    /// `|self|` with the sign of `sign` (the sign bit, so `-0.0` counts as negative).
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::copysign(2.0f64, -0.0), -2.0);
    /// ```
    fn copysign(self, sign: Self) -> Self;
    /// C's `fmod`: the remainder with the sign of the dividend.
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::fmod(-7.0f64, 3.0), -1.0);
    /// ```
    fn fmod(self, divisor: Self) -> Self;
    /// The error function (from `libm`).
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert!((Real::erf(0.5f64) - 0.520_499_877_813_046_5).abs() < 1e-16);
    /// ```
    fn erf(self) -> Self;

    /// NumPy's `sign`: -1, 0 or 1, NaN for NaN.
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!([-3.0f64, 0.0, 2.0].map(Real::signum0), [-1.0, 0.0, 1.0]);
    /// assert!(Real::signum0(f64::NAN).is_nan());
    /// ```
    fn signum0(self) -> Self {
        if self > self.lit(0.0) {
            self.lit(1.0)
        } else if self < self.lit(0.0) {
            self.lit(-1.0)
        } else {
            self
        }
    }
    /// NumPy's `maximum`: NaN propagates.
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::maximum(1.0f64, 2.0), 2.0);
    /// assert!(Real::maximum(1.0f64, f64::NAN).is_nan());
    /// ```
    fn maximum(self, other: Self) -> Self {
        if self.is_nan() || self >= other {
            self
        } else {
            other
        }
    }
    /// NumPy's `minimum`: NaN propagates.
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::minimum(1.0f64, 2.0), 1.0);
    /// assert!(Real::minimum(f64::NAN, 1.0).is_nan());
    /// ```
    fn minimum(self, other: Self) -> Self {
        if self.is_nan() || self <= other {
            self
        } else {
            other
        }
    }
    /// NumPy's `fmax`: NaN is ignored unless both are NaN.
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::fmax(1.0f64, f64::NAN), 1.0);
    /// assert_eq!(Real::fmax(f64::NAN, 1.0), 1.0);
    /// ```
    fn fmax(self, other: Self) -> Self {
        if other.is_nan() || self >= other {
            self
        } else {
            other
        }
    }
    /// NumPy's `fmin`: NaN is ignored unless both are NaN.
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::fmin(f64::NAN, 2.0), 2.0);
    /// assert_eq!(Real::fmin(1.0f64, 2.0), 1.0);
    /// ```
    fn fmin(self, other: Self) -> Self {
        if other.is_nan() || self <= other {
            self
        } else {
            other
        }
    }
    /// NumPy's `remainder` (Python's `%`): the sign of the divisor.
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::remainder(-1.0f64, 3.0), 2.0);
    /// assert_eq!(Real::remainder(1.0f64, -3.0), -2.0);
    /// ```
    fn remainder(self, divisor: Self) -> Self {
        let r = self.fmod(divisor);
        let zero = self.lit(0.0);
        if r == zero {
            zero.copysign(divisor)
        } else if (r < zero) != (divisor < zero) {
            r + divisor
        } else {
            r
        }
    }
    /// NumPy's `floor_divide`: the quotient that goes with `remainder`.
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::floor_divide(-7.0f64, 2.0), -4.0);
    /// assert_eq!(Real::floor_divide(7.0f64, 2.0), 3.0);
    /// ```
    fn floor_divide(self, divisor: Self) -> Self {
        let zero = self.lit(0.0);
        if divisor == zero {
            return self / divisor;
        }
        let m = self.fmod(divisor);
        let mut div = (self - m) / divisor;
        if m != zero && ((divisor < zero) != (m < zero)) {
            div = div - self.lit(1.0);
        }
        if div == zero {
            return zero.copysign(self / divisor);
        }
        let floor = div.floor();
        if div - floor > self.lit(0.5) {
            floor + self.lit(1.0)
        } else {
            floor
        }
    }
    /// `log(exp(self) + exp(other))` without overflow, as NumPy's `logaddexp`.
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::logaddexp(1000.0f64, 1000.0), 1000.0 + std::f64::consts::LN_2);
    /// assert_eq!(Real::logaddexp(0.0f64, f64::NEG_INFINITY), 0.0);
    /// ```
    fn logaddexp(self, other: Self) -> Self {
        if self == other {
            return self + self.lit(std::f64::consts::LN_2);
        }
        let d = self - other;
        if d > self.lit(0.0) {
            self + (-d).exp().ln_1p()
        } else if d <= self.lit(0.0) {
            other + d.exp().ln_1p()
        } else {
            d
        }
    }
    /// `log2(2**self + 2**other)` without overflow, as NumPy's `logaddexp2`.
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::logaddexp2(3.0f64, 3.0), 4.0);
    /// assert_eq!(Real::logaddexp2(2000.0f64, 2000.0), 2001.0);
    /// ```
    fn logaddexp2(self, other: Self) -> Self {
        if self == other {
            return self + self.lit(1.0);
        }
        let d = self - other;
        let log2_1p = |v: Self| v.ln_1p() / v.lit(std::f64::consts::LN_2);
        if d > self.lit(0.0) {
            self + log2_1p((-d).exp2())
        } else if d <= self.lit(0.0) {
            other + log2_1p(d.exp2())
        } else {
            d
        }
    }
    /// The normalised sinc, `sin(πx)/(πx)`, 1 at 0.
    ///
    /// ```
    /// use tracker_core::num::Real;
    ///
    /// assert_eq!(Real::sinc(0.0f64), 1.0);
    /// assert!(Real::sinc(1.0f64).abs() < 1e-15);
    /// ```
    fn sinc(self) -> Self {
        if self == self.lit(0.0) {
            return self.lit(1.0);
        }
        let px = self * self.lit(std::f64::consts::PI);
        px.sin() / px
    }
}

/// The element types a buffer can hold: `f32` and `f64`.
///
/// ```
/// use tracker_core::Array;
/// use tracker_core::num::Float;
///
/// /// The sum of an array of either float type, as `f64`.
/// fn total<T: Float>(a: &Array<T>) -> f64 {
///     a.as_slice().iter().map(|v| v.to_f64()).sum()
/// }
///
/// # fn main() -> tracker_core::Result<()> {
/// assert_eq!(total(&Array::from_vec(&[2], vec![0.5f32, 1.5])?), 2.0);
/// # Ok(())
/// # }
/// ```
pub trait Float: Num + Real + Debug + Default + Send + Sync + 'static {
    /// The additive identity, `0`.
    ///
    /// ```
    /// use tracker_core::num::Float;
    ///
    /// assert_eq!(f32::zero(), 0.0);
    /// ```
    fn zero() -> Self;
    /// The multiplicative identity, `1`.
    ///
    /// ```
    /// use tracker_core::num::Float;
    ///
    /// assert_eq!(<f64 as Float>::one(), 1.0);
    /// ```
    fn one() -> Self;
    /// `value` converted to this type (rounded for `f32`).
    ///
    /// ```
    /// use tracker_core::num::Float;
    ///
    /// assert_eq!(f32::from_f64(0.1), 0.1f32);
    /// ```
    fn from_f64(value: f64) -> Self;
    /// The value as `f64` (exact).
    ///
    /// ```
    /// use tracker_core::num::Float;
    ///
    /// assert_eq!(Float::to_f64(0.5f32), 0.5);
    /// ```
    fn to_f64(self) -> f64;
}

macro_rules! forward_std {
    ($t:ty, $($name:ident => $std:ident),*) => {
        $(#[inline] fn $name(self) -> Self { <$t>::$std(self) })*
    };
}

macro_rules! impl_float {
    ($t:ty, $erf:path) => {
        impl Real for $t {
            #[inline]
            fn lit(self, value: f64) -> Self {
                value as $t
            }
            forward_std!($t, exp => exp, exp2 => exp2, exp_m1 => exp_m1, ln => ln, log2 => log2,
                log10 => log10, ln_1p => ln_1p, sqrt => sqrt, cbrt => cbrt, sin => sin,
                cos => cos, tan => tan, asin => asin, acos => acos, atan => atan, sinh => sinh,
                cosh => cosh, tanh => tanh, asinh => asinh, acosh => acosh, atanh => atanh,
                abs => abs, floor => floor, ceil => ceil, rint => round_ties_even,
                trunc => trunc);
            #[inline]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
            #[inline]
            fn powf(self, exponent: Self) -> Self {
                // The exponents a square and its rule use, exactly: x·x is pow(x, 2)
                // correctly rounded, as NumPy's `square`.
                if exponent == 2.0 {
                    self * self
                } else if exponent == 1.0 {
                    self
                } else {
                    <$t>::powf(self, exponent)
                }
            }
            #[inline]
            fn atan2(self, other: Self) -> Self {
                <$t>::atan2(self, other)
            }
            #[inline]
            fn hypot(self, other: Self) -> Self {
                <$t>::hypot(self, other)
            }
            #[inline]
            fn copysign(self, sign: Self) -> Self {
                <$t>::copysign(self, sign)
            }
            #[inline]
            fn fmod(self, divisor: Self) -> Self {
                self % divisor
            }
            #[inline]
            fn erf(self) -> Self {
                $erf(self)
            }
        }

        impl Num for $t {
            #[inline]
            fn lit(self, value: f64) -> Self {
                value as $t
            }
            #[inline]
            fn unary(self, op: Unary) -> Self {
                op.eval(self)
            }
            #[inline]
            fn binary(self, op: Binary, other: Self) -> Self {
                op.eval(self, other)
            }
            #[inline]
            fn sign(self) -> Self {
                if self > 0.0 {
                    1.0
                } else if self < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            }
            #[inline]
            fn is_zero(self) -> Self {
                if self == 0.0 { 1.0 } else { 0.0 }
            }
            #[inline]
            fn nonnegative(self) -> Self {
                if self >= 0.0 { 1.0 } else { 0.0 }
            }
            #[inline]
            fn zeros(self) -> Self {
                0.0
            }
            #[inline]
            fn replace_where(self, condition: Self, value: f64) -> Self {
                if condition != 0.0 { value as $t } else { self }
            }
            #[inline]
            fn share(self, other: Self) -> Self {
                if self > other {
                    1.0
                } else if self == other {
                    0.5
                } else {
                    0.0
                }
            }
            #[inline]
            fn prefer(self, other: Self) -> Self {
                if other.is_nan() {
                    1.0
                } else if self.is_nan() {
                    0.0
                } else {
                    Num::share(self, other)
                }
            }
        }

        impl Float for $t {
            #[inline]
            fn zero() -> Self {
                0.0
            }
            #[inline]
            fn one() -> Self {
                1.0
            }
            #[inline]
            fn from_f64(value: f64) -> Self {
                value as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
        }
    };
}

impl_float!(f32, libm::erff);
impl_float!(f64, libm::erf);
