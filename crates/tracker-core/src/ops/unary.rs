//! Unary elementwise ops: one table row each, `y = f(x)` and `dx` given `x`, `y`, `dy`.
//!
//! ```
//! use tracker_core::ops::unary::Unary;
//!
//! // y = sqrt(x) at x = 4; dx = dy / 2y.
//! let y = Unary::Sqrt.eval(4.0f64);
//! assert_eq!(y, 2.0);
//! assert_eq!(Unary::Sqrt.rule(4.0, y, 1.0), 0.25);
//! ```

use std::f64::consts::{FRAC_1_SQRT_2, FRAC_2_SQRT_PI, LN_2, LN_10, PI};

use crate::error::Result;
use crate::kernel::zip_lanes;
use crate::num::{Float, Num, Real};
use crate::value::Array;
use crate::vmath::{self, Func};

macro_rules! unary_ops {
    ($($variant:ident => $name:literal, |$x:ident| $forward:expr, |$rx:ident, $ry:ident, $rdy:ident| $rule:expr;)*) => {
        /// A unary elementwise op: NumPy's ufunc of the same name, or one of the
        /// activations of `tracker.nn.functional`. Its forward expression and its rule
        /// are one row of the table in this file.
        ///
        /// ```
        /// use tracker_core::ops::unary::Unary;
        /// use tracker_core::{Arg, Op, Tracked, Value, apply};
        ///
        /// # fn main() -> tracker_core::Result<()> {
        /// let x = Tracked::param(Value::from_vec(&[2], vec![-1.0, 2.0])?);
        /// let y = apply(Op::Unary(Unary::Relu), &[Arg::Tracked(x)])?;
        /// assert_eq!(y.value().to_f64_vec(), vec![0.0, 2.0]);
        /// # Ok(())
        /// # }
        /// ```
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Unary { $(#[doc = concat!("`", $name, "`, elementwise.")] $variant),* }

        impl Unary {
            /// Every unary op, for coverage tests.
            ///
            /// ```
            /// use tracker_core::ops::unary::Unary;
            ///
            /// assert!(Unary::ALL.contains(&Unary::Gelu));
            /// assert!(Unary::ALL.iter().all(|op| Unary::from_name(op.name()) == Some(*op)));
            /// ```
            pub const ALL: &'static [Unary] = &[$(Unary::$variant),*];

            /// The op's name: NumPy's name of the ufunc (or the activation's).
            ///
            /// ```
            /// use tracker_core::ops::unary::Unary;
            ///
            /// assert_eq!(Unary::Abs.name(), "absolute");
            /// assert_eq!(Unary::Log.name(), "log");
            /// ```
            pub fn name(self) -> &'static str {
                match self { $(Unary::$variant => $name),* }
            }

            /// The op NumPy's ufunc `name` is.
            ///
            /// ```
            /// use tracker_core::ops::unary::Unary;
            ///
            /// assert_eq!(Unary::from_name("negative"), Some(Unary::Neg));
            /// assert_eq!(Unary::from_name("add"), None);
            /// ```
            pub fn from_name(name: &str) -> Option<Unary> {
                match name { $($name => Some(Unary::$variant),)* _ => None }
            }

            /// `y = f(x)` on one element.
            ///
            /// ```
            /// use tracker_core::ops::unary::Unary;
            ///
            /// assert_eq!(Unary::Sigmoid.eval(0.0f64), 0.5);
            /// assert_eq!(Unary::Rint.eval(2.5f32), 2.0); // half to even
            /// ```
            #[inline]
            pub fn eval<T: Real>(self, x: T) -> T {
                match self { $(Unary::$variant => { let $x = x; $forward })* }
            }

            /// `dx` given `x`, `y` and `dy`, on scalar-like values: plain floats here;
            /// recorded values when a sweep differentiates the rule again.
            ///
            /// ```
            /// use tracker_core::ops::unary::Unary;
            ///
            /// // y = exp(x): dx = dy · y.
            /// assert_eq!(Unary::Exp.rule(0.0f64, 1.0, 3.0), 3.0);
            /// assert_eq!(Unary::Abs.rule(0.0f64, 0.0, 1.0), 0.0); // abs'(0) = 0
            /// ```
            pub fn rule<S: Num>(self, x: S, y: S, dy: S) -> S {
                match self { $(Unary::$variant => { let ($rx, $ry, $rdy) = (x, y, dy); $rule })* }
            }

            /// `y = f(x)` over a buffer, as one loop.
            ///
            /// ```
            /// use tracker_core::Array;
            /// use tracker_core::ops::unary::Unary;
            ///
            /// # fn main() -> tracker_core::Result<()> {
            /// let x = Array::from_vec(&[3], vec![-1.5f64, 0.0, 2.0])?;
            /// assert_eq!(Unary::Abs.forward(&x)?.as_slice(), &[1.5, 0.0, 2.0]);
            /// # Ok(())
            /// # }
            /// ```
            pub fn forward<T: Float>(self, x: &Array<T>) -> Result<Array<T>> {
                if let Some(&v) = x.zero_dim() {
                    // A 0-d operand: one element, without a loop's buffer (vmath gives
                    // each element the bits it gives it in any array).
                    let mut y = [T::zero()];
                    match self.vectorised() {
                        Some(func) => vmath::apply(func, &[v], &mut y, |v| self.eval(v)),
                        None => y = [self.eval(v)],
                    }
                    return Ok(Array::scalar(y[0]));
                }
                if let Some(func) = self.vectorised() {
                    return x.map_slices(|x, y| vmath::apply(func, x, y, |v| self.eval(v)));
                }
                match self {
                    $(Unary::$variant => {
                        #[inline(always)]
                        fn f<T: Real>($x: T) -> T { $forward }
                        x.map(f)
                    })*
                }
            }

            /// `dx` over buffers of one shape, as one fused loop.
            ///
            /// ```
            /// use tracker_core::Array;
            /// use tracker_core::ops::unary::Unary;
            ///
            /// # fn main() -> tracker_core::Result<()> {
            /// let x = Array::from_vec(&[2], vec![1.0f64, 4.0])?;
            /// let y = Unary::Sqrt.forward(&x)?;
            /// let dy = Array::full(&[2], 1.0f64, "ones")?;
            /// assert_eq!(Unary::Sqrt.rule_arrays(&x, &y, &dy)?.as_slice(), &[0.5, 0.25]);
            /// # Ok(())
            /// # }
            /// ```
            pub fn rule_arrays<T: Float>(self, x: &Array<T>, y: &Array<T>, dy: &Array<T>) -> Result<Array<T>> {
                match self {
                    $(Unary::$variant => {
                        #[inline(always)]
                        fn r<S: Num>($rx: S, $ry: S, $rdy: S) -> S { $rule }
                        zip_lanes(self.name(), [x, y, dy], dy.shape(), |[x, y, dy]| r(x, y, dy))
                    })*
                }
            }
        }
    };
}

unary_ops! {
    // y = f(x)                                         dx, given x, y and dy
    Neg     => "negative",   |x| -x,                    |_x, _y, dy| -dy;
    Exp     => "exp",        |x| x.exp(),               |_x, y, dy| dy * y;
    Exp2    => "exp2",       |x| x.exp2(),              |_x, y, dy| dy * y * y.lit(LN_2);
    Expm1   => "expm1",      |x| x.exp_m1(),            |_x, y, dy| dy * (y + y.lit(1.0));
    Log     => "log",        |x| x.ln(),                |x, _y, dy| dy / x;
    Log2    => "log2",       |x| x.log2(),              |x, _y, dy| dy / (x * x.lit(LN_2));
    Log10   => "log10",      |x| x.log10(),             |x, _y, dy| dy / (x * x.lit(LN_10));
    Log1p   => "log1p",      |x| x.ln_1p(),             |x, _y, dy| dy / (x + x.lit(1.0));
    Sqrt    => "sqrt",       |x| x.sqrt(),              |_x, y, dy| dy / (y + y);
    Square  => "square",     |x| x * x,                 |x, _y, dy| dy * (x + x);
    Cbrt    => "cbrt",       |x| x.cbrt(),              |_x, y, dy| dy / (y * y * y.lit(3.0));
    Recip   => "reciprocal", |x| x.lit(1.0) / x,        |_x, y, dy| -(dy * y * y);
    Sin     => "sin",        |x| x.sin(),               |x, _y, dy| dy * x.cos();
    Cos     => "cos",        |x| x.cos(),               |x, _y, dy| -(dy * x.sin());
    Tan     => "tan",        |x| x.tan(),               |_x, y, dy| dy * (y * y + y.lit(1.0));
    Arcsin  => "arcsin",     |x| x.asin(),              |x, _y, dy| dy / (x.lit(1.0) - x * x).sqrt();
    Arccos  => "arccos",     |x| x.acos(),              |x, _y, dy| -(dy / (x.lit(1.0) - x * x).sqrt());
    Arctan  => "arctan",     |x| x.atan(),              |x, _y, dy| dy / (x * x + x.lit(1.0));
    Sinh    => "sinh",       |x| x.sinh(),              |x, _y, dy| dy * x.cosh();
    Cosh    => "cosh",       |x| x.cosh(),              |x, _y, dy| dy * x.sinh();
    Tanh    => "tanh",       |x| x.tanh(),              |_x, y, dy| dy * (y.lit(1.0) - y * y);
    Arcsinh => "arcsinh",    |x| x.asinh(),             |x, _y, dy| dy / (x * x + x.lit(1.0)).sqrt();
    Arccosh => "arccosh",    |x| x.acosh(),             |x, _y, dy| dy / (x * x - x.lit(1.0)).sqrt();
    Arctanh => "arctanh",    |x| x.atanh(),             |x, _y, dy| dy / (x.lit(1.0) - x * x);
    Deg2rad => "deg2rad",    |x| x * x.lit(PI / 180.0), |_x, _y, dy| dy * dy.lit(PI / 180.0);
    Rad2deg => "rad2deg",    |x| x * x.lit(180.0 / PI), |_x, _y, dy| dy * dy.lit(180.0 / PI);
    // sinc'(0) = 0, held constant there, as PyTorch; the division runs on 1 in place
    // of 0, so no 0/0 reaches a higher derivative.
    Sinc    => "sinc",       |x| x.sinc(),              |x, _y, dy| {
        let zero = x.is_zero();
        let x = x.replace_where(zero, 1.0);
        (dy * ((x * x.lit(PI)).cos() - x.unary(Unary::Sinc)) / x).replace_where(zero, 0.0)
    };
    // abs'(0) = 0, as PyTorch.
    Abs     => "absolute",   |x| x.abs(),               |x, _y, dy| dy * x.sign();
    // Piecewise constant: zero gradient, as PyTorch and JAX.
    Sign    => "sign",       |x| x.signum0(),           |_x, _y, dy| dy.zeros();
    Floor   => "floor",      |x| x.floor(),             |_x, _y, dy| dy.zeros();
    Ceil    => "ceil",       |x| x.ceil(),              |_x, _y, dy| dy.zeros();
    Rint    => "rint",       |x| x.rint(),              |_x, _y, dy| dy.zeros();
    Trunc   => "trunc",      |x| x.trunc(),             |_x, _y, dy| dy.zeros();
    Erf     => "erf",        |x| x.erf(),               |x, _y, dy| dy * (-(x * x)).exp() * dy.lit(FRAC_2_SQRT_PI);
    // The activations of tracker.nn.functional; kinks as PyTorch: relu'(0) = 0, and
    // elu'(0) = selu'(0)/scale = alpha (the negative branch holds at 0).
    Relu    => "relu",       |x| x.maximum(x.lit(0.0)), |_x, y, dy| dy * y.sign();
    Sigmoid => "sigmoid",    |x| sigmoid(x),            |_x, y, dy| dy * y * (y.lit(1.0) - y);
    Logsigmoid => "logsigmoid", |x| -softplus(-x),      |x, _y, dy| dy * (-x).unary(Unary::Sigmoid);
    Softplus => "softplus",  |x| softplus(x),           |x, _y, dy| dy * x.unary(Unary::Sigmoid);
    Silu    => "silu",       |x| x * sigmoid(x),        |x, _y, dy| {
        let s = x.unary(Unary::Sigmoid);
        dy * s * (x * (x.lit(1.0) - s) + x.lit(1.0))
    };
    Gelu    => "gelu",       |x| x * x.lit(0.5) * ((x * x.lit(FRAC_1_SQRT_2)).erf() + x.lit(1.0)),
                             |x, _y, dy| {
        let cdf = ((x * x.lit(FRAC_1_SQRT_2)).unary(Unary::Erf) + x.lit(1.0)) * x.lit(0.5);
        dy * (cdf + x * (x * x * x.lit(-0.5)).exp() * x.lit(FRAC_2_SQRT_PI * FRAC_1_SQRT_2 * 0.5))
    };
    GeluTanh => "gelu_tanh", |x| x * x.lit(0.5) * (gelu_inner(x).tanh() + x.lit(1.0)),
                             |x, _y, dy| {
        let t = (x * x.lit(GELU_BETA) + x * x * x * x.lit(GELU_BETA * GELU_KAPPA)).unary(Unary::Tanh);
        let slope = (x * x * x.lit(3.0 * GELU_KAPPA) + x.lit(1.0)) * x.lit(GELU_BETA);
        dy * ((t + x.lit(1.0)) * x.lit(0.5) + x * x.lit(0.5) * (x.lit(1.0) - t * t) * slope)
    };
    Elu     => "elu",        |x| if x > x.lit(0.0) { x } else { x.exp_m1() },
                             |x, _y, dy| dy * x.replace_where(positive(x), 0.0).exp();
    Selu    => "selu",       |x| x.lit(SELU_SCALE) * if x > x.lit(0.0) { x } else { x.exp_m1() * x.lit(SELU_ALPHA) },
                             |x, _y, dy| {
        let negative = x.replace_where(positive(x), 0.0).exp() * x.lit(SELU_ALPHA);
        dy * negative.replace_where(positive(x), 1.0) * dy.lit(SELU_SCALE)
    };
}

impl Unary {
    /// The [`vmath`] function that computes this op over buffers, if one does.
    pub(crate) fn vectorised(self) -> Option<Func> {
        Some(match self {
            Unary::Exp => Func::Exp,
            Unary::Expm1 => Func::Expm1,
            Unary::Log => Func::Log,
            Unary::Log1p => Func::Log1p,
            Unary::Sin => Func::Sin,
            Unary::Cos => Func::Cos,
            Unary::Tanh => Func::Tanh,
            Unary::Sigmoid => Func::Sigmoid,
            _ => return None,
        })
    }
}

/// SELU's `α` (Klambauer et al., 2017), as PyTorch's: the negative branch is
/// `scale · α · (exp(x) - 1)`.
///
/// ```
/// use tracker_core::ops::unary::{SELU_ALPHA, SELU_SCALE, Unary};
///
/// let far_left = Unary::Selu.eval(-50.0f64);
/// assert!((far_left + SELU_SCALE * SELU_ALPHA).abs() < 1e-15);
/// ```
pub const SELU_ALPHA: f64 = 1.673_263_242_354_377_3;
/// SELU's `scale` (Klambauer et al., 2017), as PyTorch's: the positive branch is
/// `scale · x`.
///
/// ```
/// use tracker_core::ops::unary::{SELU_SCALE, Unary};
///
/// assert_eq!(Unary::Selu.eval(2.0f64), 2.0 * SELU_SCALE);
/// ```
pub const SELU_SCALE: f64 = 1.050_700_987_355_480_5;
const GELU_BETA: f64 = FRAC_2_SQRT_PI * FRAC_1_SQRT_2; // sqrt(2/pi)
const GELU_KAPPA: f64 = 0.044_715;

/// `1 / (1 + exp(-x))`, without overflow: `exp` only ever sees `-|x|`.
fn sigmoid<T: Real>(x: T) -> T {
    let e = (-x.abs()).exp();
    let one = x.lit(1.0);
    if x >= x.lit(0.0) {
        one / (one + e)
    } else {
        e / (one + e)
    }
}

/// `log(1 + exp(x))`, without overflow: `max(x, 0) + log1p(exp(-|x|))`.
fn softplus<T: Real>(x: T) -> T {
    x.maximum(x.lit(0.0)) + (-x.abs()).exp().ln_1p()
}

fn gelu_inner<T: Real>(x: T) -> T {
    (x + x * x * x * x.lit(GELU_KAPPA)) * x.lit(GELU_BETA)
}

/// A mask read from primal data: 1 where `x > 0`, else 0.
fn positive<S: Num>(x: S) -> S {
    x.lit(1.0) - (-x).nonnegative()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_and_rule_by_hand() {
        let x = Array::from_vec(&[2], vec![0.5f64, -1.0]).ok();
        let x = x.as_ref().map(|x| Unary::Tanh.forward(x));
        let y = x.and_then(|r| r.ok()).map(|y| y.as_slice().to_vec());
        // tanh over a buffer is vmath's, within 3 ulp of the C library's.
        let close = |a: f64, b: f64| (a - b).abs() <= 3.0 * f64::EPSILON * b.abs();
        assert!(y.is_some_and(|y| matches!(y[..], [a, b]
            if close(a, 0.5f64.tanh()) && close(b, (-1.0f64).tanh()))));
        assert_eq!(Unary::Abs.rule(0.0, 0.0, 1.0), 0.0);
        assert_eq!(Unary::Sqrt.rule(4.0, 2.0, 1.0), 0.25);
        assert_eq!(Unary::Exp.eval(0.0f64), 1.0);
        assert_eq!(Unary::Relu.rule(0.0, 0.0, 1.0), 0.0);
        assert_eq!(Unary::Elu.rule(0.0, 0.0, 1.0), 1.0);
        assert_eq!(Unary::Sigmoid.eval(0.0f64), 0.5);
        assert_eq!(Unary::Sigmoid.eval(-800.0f64), 0.0);
        assert_eq!(Unary::Softplus.eval(800.0f64), 800.0);
        assert!((Unary::Erf.eval(0.5f64) - 0.520_499_877_813_046_5).abs() < 1e-16);
    }
}
