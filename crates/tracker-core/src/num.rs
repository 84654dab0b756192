//! The scalar-like trait that elementwise rules are written against.
//!
//! A rule such as `|_x, y, dy| dy * (y.lit(1.0) - y * y)` is generic over [`Num`]:
//! with `f32`/`f64` it is the body of one fused loop over buffers; with a recorded
//! value ([`crate::tape::Var`]) every operator records a node, so the same text gives
//! second derivatives.

use std::fmt::Debug;
use std::ops::{Add, Div, Mul, Neg, Sub};

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
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn sin(self) -> Self;
    fn cos(self) -> Self;
    fn tanh(self) -> Self;
    fn sqrt(self) -> Self;
    fn abs(self) -> Self;
    fn powf(self, exponent: Self) -> Self;
    fn maximum(self, other: Self) -> Self;
    fn minimum(self, other: Self) -> Self;
    /// A mask read from primal data: -1, 0 or 1 (a constant: its derivative is zero).
    fn sign(self) -> Self;
    /// A mask read from primal data: 1 where `self > other`, ½ where they tie, 0 where
    /// `self < other`. Ties share the gradient equally, as PyTorch does.
    fn share(self, other: Self) -> Self;
    /// A mask read from primal data: 1 where `self` is zero, else 0.
    fn is_zero(self) -> Self;
    /// A mask read from primal data: 1 where `self >= 0`, else 0.
    fn nonnegative(self) -> Self;
    /// `value` where the mask `condition` is non-zero, `self` elsewhere: a select, so an
    /// infinite or NaN `self` does not leak through as `0 × inf`.
    fn replace_where(self, condition: Self, value: f64) -> Self;
}

/// The element types a buffer can hold.
pub trait Float: Num + PartialOrd + Debug + Default + Send + Sync + 'static {
    fn zero() -> Self;
    fn one() -> Self;
    fn from_f64(value: f64) -> Self;
    fn to_f64(self) -> f64;
}

macro_rules! impl_float {
    ($t:ty) => {
        impl Num for $t {
            #[inline]
            fn lit(self, value: f64) -> Self {
                value as $t
            }
            #[inline]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline]
            fn sin(self) -> Self {
                <$t>::sin(self)
            }
            #[inline]
            fn cos(self) -> Self {
                <$t>::cos(self)
            }
            #[inline]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline]
            fn powf(self, exponent: Self) -> Self {
                <$t>::powf(self, exponent)
            }
            #[inline]
            fn maximum(self, other: Self) -> Self {
                // NumPy's maximum propagates NaN.
                if self.is_nan() || self >= other {
                    self
                } else {
                    other
                }
            }
            #[inline]
            fn minimum(self, other: Self) -> Self {
                if self.is_nan() || self <= other {
                    self
                } else {
                    other
                }
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

impl_float!(f32);
impl_float!(f64);
