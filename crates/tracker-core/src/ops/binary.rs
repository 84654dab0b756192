//! Binary elementwise ops with NumPy broadcasting: one table row each, `y = f(a, b)`
//! and the two partial rules given `a`, `b`, `y` and `dy`.
//!
//! ```
//! use tracker_core::ops::binary::Binary;
//!
//! // y = a / b; dy/da = 1/b, dy/db = -y/b.
//! let (a, b) = (1.0f64, 4.0);
//! let y = Binary::Div.eval(a, b);
//! assert_eq!(y, 0.25);
//! assert_eq!(Binary::Div.rule(0, a, b, y, 1.0), 0.25);
//! assert_eq!(Binary::Div.rule(1, a, b, y, 1.0), -0.0625);
//! ```

use std::f64::consts::LN_2;

use crate::broadcast::broadcast_shapes;
use crate::error::Result;
use crate::kernel::{zip, zip_lanes};
use crate::num::{Float, Num, Real};
use crate::op::{Backend, Contributions, each_input};
use crate::value::{Array, Value};

macro_rules! binary_ops {
    ($($variant:ident => $name:literal, |$a:ident, $b:ident| $forward:expr,
        |$ra:ident, $rb:ident, $ry:ident, $rdy:ident| ($rule_a:expr, $rule_b:expr);)*) => {
        /// A binary elementwise op: NumPy's ufunc of the same name, with broadcasting.
        /// Its forward expression and its two partial rules are one row of the table in
        /// this file.
        ///
        /// ```
        /// use tracker_core::ops::binary::Binary;
        /// use tracker_core::{Arg, Op, Tracked, Value, apply, backward};
        ///
        /// # fn main() -> tracker_core::Result<()> {
        /// let x = Tracked::param(Value::from_vec(&[2], vec![1.0, 5.0])?);
        /// let three = Value::scalar(3.0, x.dtype());
        /// let y = apply(Op::Binary(Binary::Maximum), &[Arg::Tracked(x.clone()), Arg::Value(three)])?;
        /// assert_eq!(y.value().to_f64_vec(), vec![3.0, 5.0]);
        /// # Ok(())
        /// # }
        /// ```
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Binary { $(#[doc = concat!("NumPy's `", $name, "`.")] $variant),* }

        impl Binary {
            /// Every binary op, for coverage tests.
            ///
            /// ```
            /// use tracker_core::ops::binary::Binary;
            ///
            /// assert!(Binary::ALL.contains(&Binary::Hypot));
            /// assert!(Binary::ALL.iter().all(|op| Binary::from_name(op.name()) == Some(*op)));
            /// ```
            pub const ALL: &'static [Binary] = &[$(Binary::$variant),*];

            /// The op's name: NumPy's name of the ufunc.
            ///
            /// ```
            /// use tracker_core::ops::binary::Binary;
            ///
            /// assert_eq!(Binary::Sub.name(), "subtract");
            /// ```
            pub fn name(self) -> &'static str {
                match self { $(Binary::$variant => $name),* }
            }

            /// The op NumPy's ufunc `name` is.
            ///
            /// ```
            /// use tracker_core::ops::binary::Binary;
            ///
            /// assert_eq!(Binary::from_name("arctan2"), Some(Binary::Arctan2));
            /// assert_eq!(Binary::from_name("exp"), None);
            /// ```
            pub fn from_name(name: &str) -> Option<Binary> {
                match name { $($name => Some(Binary::$variant),)* _ => None }
            }

            /// `y = f(a, b)` on elements.
            ///
            /// ```
            /// use tracker_core::ops::binary::Binary;
            ///
            /// assert_eq!(Binary::Hypot.eval(3.0f64, 4.0), 5.0);
            /// assert_eq!(Binary::Remainder.eval(-1.0f64, 3.0), 2.0); // Python's %
            /// ```
            #[inline]
            pub fn eval<T: Real>(self, a: T, b: T) -> T {
                match self { $(Binary::$variant => { let ($a, $b) = (a, b); $forward })* }
            }

            /// The partial rule for input `side` (0 or 1), on scalar-like values: the
            /// contribution of `dy` to that input's gradient, given `a`, `b` and `y`.
            ///
            /// ```
            /// use tracker_core::ops::binary::Binary;
            ///
            /// // y = a * b at a = 2, b = 5: dy/da = b, dy/db = a.
            /// assert_eq!(Binary::Mul.rule(0, 2.0f64, 5.0, 10.0, 1.0), 5.0);
            /// assert_eq!(Binary::Mul.rule(1, 2.0f64, 5.0, 10.0, 1.0), 2.0);
            /// ```
            pub fn rule<S: Num>(self, side: usize, a: S, b: S, y: S, dy: S) -> S {
                match self {
                    $(Binary::$variant => {
                        #[allow(unused_variables)]
                        let ($ra, $rb, $ry, $rdy) = (a, b, y, dy);
                        if side == 0 { $rule_a } else { $rule_b }
                    })*
                }
            }

            /// `y = f(a, b)` over broadcast buffers, as one loop.
            ///
            /// ```
            /// use tracker_core::Array;
            /// use tracker_core::ops::binary::Binary;
            ///
            /// # fn main() -> tracker_core::Result<()> {
            /// let a = Array::from_vec(&[2, 1], vec![1.0f64, 2.0])?;
            /// let b = Array::from_vec(&[2], vec![10.0f64, 20.0])?;
            /// let y = Binary::Add.forward_arrays(&a, &b)?;
            /// assert_eq!((y.shape(), y.as_slice()), (&[2, 2][..], &[11.0, 21.0, 12.0, 22.0][..]));
            /// # Ok(())
            /// # }
            /// ```
            pub fn forward_arrays<T: Float>(self, a: &Array<T>, b: &Array<T>) -> Result<Array<T>> {
                if let (Some(&x), Some(&y)) = (a.zero_dim(), b.zero_dim()) {
                    // Two 0-d operands (a loop over scalars): the element ops of a loop,
                    // without one.
                    return Ok(Array::scalar(self.eval(x, y)));
                }
                let shape = broadcast_shapes(self.name(), a.shape(), b.shape())?;
                if self.is_square(b) {
                    return zip(self.name(), [a], &shape, |[a]| a * a);
                }
                match self {
                    $(Binary::$variant => {
                        #[inline(always)]
                        fn f<T: Real>($a: T, $b: T) -> T { $forward }
                        zip(self.name(), [a, b], &shape, |[a, b]| f(a, b))
                    })*
                }
            }

            /// The partial rule for input `side` at the output's shape, as one fused loop
            /// (the caller sums it back to the input's shape).
            ///
            /// ```
            /// use tracker_core::Array;
            /// use tracker_core::ops::binary::Binary;
            ///
            /// # fn main() -> tracker_core::Result<()> {
            /// let a = Array::from_vec(&[2], vec![2.0f64, 3.0])?;
            /// let b = Array::from_vec(&[2], vec![4.0f64, 5.0])?;
            /// let y = Binary::Mul.forward_arrays(&a, &b)?;
            /// let dy = Array::from_vec(&[2], vec![1.0f64, 1.0])?;
            /// assert_eq!(Binary::Mul.rule_arrays(0, &a, &b, &y, &dy)?.as_slice(), &[4.0, 5.0]);
            /// # Ok(())
            /// # }
            /// ```
            pub fn rule_arrays<T: Float>(
                self,
                side: usize,
                a: &Array<T>,
                b: &Array<T>,
                y: &Array<T>,
                dy: &Array<T>,
            ) -> Result<Array<T>> {
                let shape = dy.shape();
                if self == Binary::Mul && dy.uniform() == Some(&T::one()) {
                    // The seed of a sum: each gradient is the other operand itself
                    // (unless it is the caller's memory, which may change later).
                    let other = if side == 0 { b } else { a };
                    if other.shape() == shape && !other.borrows() {
                        return Ok(other.clone());
                    }
                }
                if side == 0 && self.is_square(b) {
                    return zip(self.name(), [a, dy], shape, |[a, dy]| dy * (a + a));
                }
                match (self, side) {
                    $(
                        (Binary::$variant, 0) => {
                            #[allow(unused_variables)]
                            #[inline(always)]
                            fn r<S: Num>($ra: S, $rb: S, $ry: S, $rdy: S) -> S { $rule_a }
                            zip_lanes(self.name(), [a, b, y, dy], shape, |[a, b, y, dy]| r(a, b, y, dy))
                        }
                        (Binary::$variant, _) => {
                            #[allow(unused_variables)]
                            #[inline(always)]
                            fn r<S: Num>($ra: S, $rb: S, $ry: S, $rdy: S) -> S { $rule_b }
                            zip_lanes(self.name(), [a, b, y, dy], shape, |[a, b, y, dy]| r(a, b, y, dy))
                        }
                    )*
                }
            }
        }
    };
}

impl Binary {
    /// Whether the gradient for input `side` is `dy` itself (before it is summed back
    /// to the input's shape).
    fn passes_dy(self, side: usize) -> bool {
        matches!((self, side), (Binary::Add, _) | (Binary::Sub, 0))
    }

    /// Whether this is `a ** 2` with one exponent: computed as `a·a` (bit for bit what
    /// `powf` gives) in a loop that vectorises, which `powf`'s test of each exponent
    /// prevents.
    fn is_square<T: Float>(self, b: &Array<T>) -> bool {
        self == Binary::Pow && matches!(b.as_slice(), [e] if *e == T::from_f64(2.0))
    }
}

binary_ops! {
    // y = f(a, b)                                      (da, db), given a, b, y and dy
    Add        => "add",        |a, b| a + b,           |a, b, y, dy| (dy, dy);
    Sub        => "subtract",   |a, b| a - b,           |a, b, y, dy| (dy, -dy);
    Mul        => "multiply",   |a, b| a * b,           |a, b, y, dy| (dy * b, dy * a);
    Div        => "divide",     |a, b| a / b,           |a, b, y, dy| (dy / b, -(dy * y) / b);
    // As PyTorch: no base gradient where the exponent is 0, no exponent gradient where
    // the base is 0 and the exponent is not negative. The masked places also compute
    // on harmless values (exponent 1, base 1), so no 0·inf reaches a higher derivative.
    Pow        => "power",      |a, b| a.powf(b),       |a, b, y, dy| (
        {
            let zero = b.is_zero();
            (dy * b * a.powf(b.replace_where(zero, 1.0) - b.lit(1.0))).replace_where(zero, 0.0)
        },
        {
            let zero = a.is_zero() * b.nonnegative();
            (dy * y * a.replace_where(zero, 1.0).ln()).replace_where(zero, 0.0)
        });
    // Ties share the gradient equally, as PyTorch.
    Maximum    => "maximum",    |a, b| a.maximum(b),    |a, b, y, dy| (dy * a.share(b), dy * b.share(a));
    Minimum    => "minimum",    |a, b| a.minimum(b),    |a, b, y, dy| (dy * b.share(a), dy * a.share(b));
    // The gradient goes to the operand taken (the one that is not NaN); ties share it
    // equally, as PyTorch.
    Fmax       => "fmax",       |a, b| a.fmax(b),       |a, b, y, dy| (
        dy * a.prefer(b), dy * (a.lit(1.0) - a.prefer(b)));
    Fmin       => "fmin",       |a, b| a.fmin(b),       |a, b, y, dy| (
        dy * (-a).prefer(-b), dy * (a.lit(1.0) - (-a).prefer(-b)));
    Arctan2    => "arctan2",    |a, b| a.atan2(b),      |a, b, y, dy| (
        dy * b / (a * a + b * b), -(dy * a) / (a * a + b * b));
    Hypot      => "hypot",      |a, b| a.hypot(b),      |a, b, y, dy| (dy * a / y, dy * b / y);
    Logaddexp  => "logaddexp",  |a, b| a.logaddexp(b),  |a, b, y, dy| (
        dy * (a - y).exp(), dy * (b - y).exp());
    Logaddexp2 => "logaddexp2", |a, b| a.logaddexp2(b), |a, b, y, dy| (
        dy * ((a - y) * a.lit(LN_2)).exp(), dy * ((b - y) * b.lit(LN_2)).exp());
    // a - floor(a / b)·b and a - trunc(a / b)·b, with the quotient's steps held constant.
    Remainder  => "remainder",  |a, b| a.remainder(b),  |a, b, y, dy| (dy, -(dy * (a / b).floor()));
    Fmod       => "fmod",       |a, b| a.fmod(b),       |a, b, y, dy| (dy, -(dy * (a / b).trunc()));
    // |a|·sign(b): as PyTorch, no gradient at a = 0 nor to b (dividing by 1 there).
    Copysign   => "copysign",   |a, b| a.copysign(b),   |a, b, y, dy| (
        (dy * y / a.replace_where(a.is_zero(), 1.0)).replace_where(a.is_zero(), 0.0),
        dy.zeros());
    FloorDivide => "floor_divide", |a, b| a.floor_divide(b), |a, b, y, dy| (dy.zeros(), dy.zeros());
}

impl Binary {
    /// `y = f(a, b)` on values of one dtype (a [`Error::Type`](crate::Error::Type)
    /// otherwise: [`apply`](crate::apply) casts mixed dtypes first).
    ///
    /// ```
    /// use tracker_core::ops::binary::Binary;
    /// use tracker_core::{Dtype, Value};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let a = Value::from_vec(&[2], vec![2.0, 3.0])?;
    /// let b = Value::from_vec(&[2], vec![3.0, 2.0])?;
    /// assert_eq!(Binary::Pow.forward(&a, &b)?.to_f64_vec(), vec![8.0, 9.0]);
    /// assert!(Binary::Pow.forward(&a, &b.cast(Dtype::F32)?).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn forward(self, a: &Value, b: &Value) -> Result<Value> {
        match (a, b) {
            (Value::F32(a), Value::F32(b)) => Ok(Value::F32(self.forward_arrays(a, b)?)),
            (Value::F64(a), Value::F64(b)) => Ok(Value::F64(self.forward_arrays(a, b)?)),
            _ => Err(crate::op::mixed_dtypes(self.name())),
        }
    }
}

/// Both inputs' gradients: the fused rule at the output's shape, summed back to each
/// input's shape.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pullback<B: Backend>(
    b: &mut B,
    op: Binary,
    x1: &B::A,
    x2: &B::A,
    y: &B::A,
    dy: &B::A,
    need1: bool,
    need2: bool,
) -> Result<Contributions<B::A>> {
    each_input(b, &[(x1, need1), (x2, need2)], |b, side| {
        if op.passes_dy(side) {
            // Shared, not copied: gradients are copied before they are written to.
            return Ok(dy.clone());
        }
        b.binary_rule(op, side, [x1, x2], y, dy)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_forward_and_rules_by_hand() {
        let a = Array::from_vec(&[2, 1], vec![1.0f64, 2.0]).ok();
        let b = Array::from_vec(&[3], vec![1.0f64, 2.0, 3.0]).ok();
        let y = a
            .zip(b)
            .and_then(|(a, b)| Binary::Mul.forward_arrays(&a, &b).ok());
        assert_eq!(
            y.map(|y| y.as_slice().to_vec()),
            Some(vec![1.0, 2.0, 3.0, 2.0, 4.0, 6.0])
        );
        assert_eq!(Binary::Maximum.rule(0, 1.0, 1.0, 1.0, 1.0), 0.5);
        assert_eq!(Binary::Div.rule(1, 1.0, 2.0, 0.5, 1.0), -0.25);
    }
}
