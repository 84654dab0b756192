//! The scalar-like traits that elementwise ops are written against.
//!
//! An op's forward expression is written against [`Real`] (the element types'
//! math). Its rule, such as `|_x, y, dy| dy * (y.lit(1.0) - y * y)`, is generic over
//! [`Num`]: with `f32`/`f64` it is the body of one fused loop over buffers; with a
//! recorded value ([`crate::tape::Var`]) every operator and function records a node,
//! so the same text gives second derivatives.

use std::fmt::Debug;
use std::ops::{Add, Div, Mul, Neg, Sub};

use crate::ops::binary::Binary;
use crate::ops::unary::Unary;

/// What an elementwise rule may use.
pub trait Num:
    Copy
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    /// A constant of the same kind as `self`.
    fn lit(self, value: f64) -> Self;
    /// A unary op of the table: evaluated, or recorded.
    fn unary(self, op: Unary) -> Self;
    /// A binary op of the table: evaluated, or recorded.
    fn binary(self, op: Binary, other: Self) -> Self;
    /// A mask read from primal data: -1, 0 or 1 (a constant: its derivative is zero).
    fn sign(self) -> Self;
    /// A mask read from primal data: 1 where `self > other`, ½ where they tie, 0 where
    /// `self < other`. Ties share the gradient equally, as PyTorch does.
    fn share(self, other: Self) -> Self;
    /// A mask read from primal data: what `fmax` gives `self`: 1 where `other` is NaN,
    /// 0 where only `self` is, else as [`Num::share`].
    fn prefer(self, other: Self) -> Self;
    /// A mask read from primal data: 1 where `self` is zero, else 0.
    fn is_zero(self) -> Self;
    /// A mask read from primal data: 1 where `self >= 0`, else 0.
    fn nonnegative(self) -> Self;
    /// Zeros of `self`'s shape: the gradient of a piecewise constant op.
    fn zeros(self) -> Self;
    /// `value` where the mask `condition` is non-zero, `self` elsewhere: a select, so an
    /// infinite or NaN `self` does not leak through as `0 × inf`.
    fn replace_where(self, condition: Self, value: f64) -> Self;

    fn exp(self) -> Self {
        self.unary(Unary::Exp)
    }
    fn ln(self) -> Self {
        self.unary(Unary::Log)
    }
    fn sin(self) -> Self {
        self.unary(Unary::Sin)
    }
    fn cos(self) -> Self {
        self.unary(Unary::Cos)
    }
    fn sinh(self) -> Self {
        self.unary(Unary::Sinh)
    }
    fn cosh(self) -> Self {
        self.unary(Unary::Cosh)
    }
    fn sqrt(self) -> Self {
        self.unary(Unary::Sqrt)
    }
    fn floor(self) -> Self {
        self.unary(Unary::Floor)
    }
    fn trunc(self) -> Self {
        self.unary(Unary::Trunc)
    }
    fn powf(self, exponent: Self) -> Self {
        self.binary(Binary::Pow, exponent)
    }
}

/// The math of the element types, which forward expressions are written against.
pub trait Real:
    Copy
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    fn lit(self, value: f64) -> Self;
    fn exp(self) -> Self;
    fn exp2(self) -> Self;
    fn exp_m1(self) -> Self;
    fn ln(self) -> Self;
    fn log2(self) -> Self;
    fn log10(self) -> Self;
    fn ln_1p(self) -> Self;
    fn sqrt(self) -> Self;
    fn cbrt(self) -> Self;
    fn sin(self) -> Self;
    fn cos(self) -> Self;
    fn tan(self) -> Self;
    fn asin(self) -> Self;
    fn acos(self) -> Self;
    fn atan(self) -> Self;
    fn sinh(self) -> Self;
    fn cosh(self) -> Self;
    fn tanh(self) -> Self;
    fn asinh(self) -> Self;
    fn acosh(self) -> Self;
    fn atanh(self) -> Self;
    fn abs(self) -> Self;
    fn floor(self) -> Self;
    fn ceil(self) -> Self;
    /// Rounds half to even, as NumPy's `rint`.
    fn rint(self) -> Self;
    fn trunc(self) -> Self;
    fn is_nan(self) -> bool;
    fn powf(self, exponent: Self) -> Self;
    fn atan2(self, other: Self) -> Self;
    fn hypot(self, other: Self) -> Self;
    fn copysign(self, sign: Self) -> Self;
    /// C's `fmod`: the remainder with the sign of the dividend.
    fn fmod(self, divisor: Self) -> Self;
    /// The error function (from `libm`).
    fn erf(self) -> Self;

    /// NumPy's `sign`: -1, 0 or 1, NaN for NaN.
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
    fn maximum(self, other: Self) -> Self {
        if self.is_nan() || self >= other {
            self
        } else {
            other
        }
    }
    /// NumPy's `minimum`: NaN propagates.
    fn minimum(self, other: Self) -> Self {
        if self.is_nan() || self <= other {
            self
        } else {
            other
        }
    }
    /// NumPy's `fmax`: NaN is ignored unless both are NaN.
    fn fmax(self, other: Self) -> Self {
        if other.is_nan() || self >= other {
            self
        } else {
            other
        }
    }
    /// NumPy's `fmin`: NaN is ignored unless both are NaN.
    fn fmin(self, other: Self) -> Self {
        if other.is_nan() || self <= other {
            self
        } else {
            other
        }
    }
    /// NumPy's `remainder` (Python's `%`): the sign of the divisor.
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
    fn sinc(self) -> Self {
        if self == self.lit(0.0) {
            return self.lit(1.0);
        }
        let px = self * self.lit(std::f64::consts::PI);
        px.sin() / px
    }
}

/// The element types a buffer can hold.
pub trait Float: Num + Real + Debug + Default + Send + Sync + 'static {
    fn zero() -> Self;
    fn one() -> Self;
    fn from_f64(value: f64) -> Self;
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
