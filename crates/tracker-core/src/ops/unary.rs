//! Unary elementwise ops: one table row each, `y = f(x)` and `dx` given `x`, `y`, `dy`.

use crate::error::Result;
use crate::kernel::zip;
use crate::num::{Float, Num};
use crate::value::Array;

macro_rules! unary_ops {
    ($($variant:ident => $name:literal, |$x:ident| $forward:expr, |$rx:ident, $ry:ident, $rdy:ident| $rule:expr;)*) => {
        /// A unary elementwise op.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Unary { $($variant),* }

        impl Unary {
            /// Every unary op, for coverage tests.
            pub const ALL: &'static [Unary] = &[$(Unary::$variant),*];

            pub fn name(self) -> &'static str {
                match self { $(Unary::$variant => $name),* }
            }

            /// `y = f(x)` on one scalar-like value.
            pub fn eval<S: Num>(self, x: S) -> S {
                match self { $(Unary::$variant => { let $x = x; $forward })* }
            }

            /// `dx` given `x`, `y` and `dy`, on scalar-like values.
            pub fn rule<S: Num>(self, x: S, y: S, dy: S) -> S {
                match self { $(Unary::$variant => { let ($rx, $ry, $rdy) = (x, y, dy); $rule })* }
            }

            /// `y = f(x)` over a buffer, as one loop.
            pub fn forward<T: Float>(self, x: &Array<T>) -> Result<Array<T>> {
                match self { $(Unary::$variant => x.map(|$x| $forward)),* }
            }

            /// `dx` over buffers of one shape, as one fused loop.
            pub fn rule_arrays<T: Float>(self, x: &Array<T>, y: &Array<T>, dy: &Array<T>) -> Result<Array<T>> {
                match self {
                    $(Unary::$variant => zip(self.name(), [x, y, dy], dy.shape(), |[$rx, $ry, $rdy]| $rule)),*
                }
            }
        }
    };
}

unary_ops! {
    // y = f(x)                                      dx, given x, y and dy
    Neg  => "negative", |x| -x,                      |_x, _y, dy| -dy;
    Exp  => "exp",      |x| x.exp(),                 |_x, y, dy| dy * y;
    Log  => "log",      |x| x.ln(),                  |x, _y, dy| dy / x;
    Sin  => "sin",      |x| x.sin(),                 |x, _y, dy| dy * x.cos();
    Cos  => "cos",      |x| x.cos(),                 |x, _y, dy| -(dy * x.sin());
    Tanh => "tanh",     |x| x.tanh(),                |_x, y, dy| dy * (y.lit(1.0) - y * y);
    Sqrt => "sqrt",     |x| x.sqrt(),                |_x, y, dy| dy / (y + y);
    // abs'(0) = 0, as PyTorch.
    Abs  => "absolute", |x| x.abs(),                 |x, _y, dy| dy * x.sign();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_and_rule_by_hand() {
        let x = Array::from_vec(&[2], vec![0.5f64, -1.0]).ok();
        let x = x.as_ref().map(|x| Unary::Tanh.forward(x));
        let y = x.and_then(|r| r.ok()).map(|y| y.as_slice().to_vec());
        assert_eq!(y, Some(vec![0.5f64.tanh(), (-1.0f64).tanh()]));
        assert_eq!(Unary::Abs.rule(0.0, 0.0, 1.0), 0.0);
        assert_eq!(Unary::Sqrt.rule(4.0, 2.0, 1.0), 0.25);
        assert_eq!(Unary::Exp.eval(0.0f64), 1.0);
    }
}
