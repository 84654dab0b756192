//! The Rust user's API: ops as methods on [`Tracked`], and [`gradient`] / [`hessian`].

use crate::error::{Error, Result};
use crate::op::{Arrays, Op};
use crate::ops::binary::Binary;
use crate::ops::index::IndexItem;
use crate::ops::reduce::Reduce;
use crate::ops::unary::Unary;
use crate::tape::{Arg, Output, Tracked, apply, enter_scope};
use crate::value::{Dtype, Shape, Value};

fn tracked(out: Output, op: &str) -> Result<Tracked> {
    match out {
        Output::Tracked(t) => Ok(t),
        Output::Value(_) => Err(Error::Usage {
            message: format!("{op}: the result was not recorded (recording is off)"),
        }),
    }
}

/// The live tape as [`Arrays`]: a composite function applied to tracked values records
/// each of its steps (and on plain values computes them).
pub struct Live;

impl Arrays for Live {
    type A = Arg;

    fn apply(&mut self, op: Op, inputs: &[&Arg]) -> Result<Arg> {
        let args: Vec<Arg> = inputs.iter().map(|&a| a.clone()).collect();
        Ok(match apply(op, &args)? {
            Output::Tracked(t) => Arg::Tracked(t),
            Output::Value(v) => Arg::Value(v),
        })
    }

    fn constant(&mut self, value: Value) -> Result<Arg> {
        Ok(Arg::Value(value))
    }

    fn value(&self, a: &Arg) -> Result<Value> {
        Ok(a.value())
    }

    fn shape(&self, a: &Arg) -> Shape {
        a.value().shape().into()
    }

    fn dtype(&self, a: &Arg) -> Dtype {
        a.value().dtype()
    }
}

impl Tracked {
    fn unary(&self, op: Unary) -> Result<Tracked> {
        tracked(
            apply(Op::Unary(op), &[Arg::Tracked(self.clone())])?,
            op.name(),
        )
    }

    fn binary(&self, op: Binary, other: Arg) -> Result<Tracked> {
        tracked(
            apply(Op::Binary(op), &[Arg::Tracked(self.clone()), other])?,
            op.name(),
        )
    }

    fn reduce(&self, kind: Reduce) -> Result<Tracked> {
        let axes = (0..self.shape().len()).collect();
        let op = Op::Reduce {
            kind,
            axes,
            keepdims: false,
        };
        tracked(apply(op, &[Arg::Tracked(self.clone())])?, kind.name())
    }

    pub fn add(&self, other: &Tracked) -> Result<Tracked> {
        self.binary(Binary::Add, Arg::Tracked(other.clone()))
    }
    pub fn sub(&self, other: &Tracked) -> Result<Tracked> {
        self.binary(Binary::Sub, Arg::Tracked(other.clone()))
    }
    pub fn mul(&self, other: &Tracked) -> Result<Tracked> {
        self.binary(Binary::Mul, Arg::Tracked(other.clone()))
    }
    pub fn div(&self, other: &Tracked) -> Result<Tracked> {
        self.binary(Binary::Div, Arg::Tracked(other.clone()))
    }
    /// `self ** exponent` for a constant exponent.
    pub fn powf(&self, exponent: f64) -> Result<Tracked> {
        self.binary(
            Binary::Pow,
            Arg::Value(Value::scalar(exponent, self.dtype())),
        )
    }
    pub fn exp(&self) -> Result<Tracked> {
        self.unary(Unary::Exp)
    }
    pub fn ln(&self) -> Result<Tracked> {
        self.unary(Unary::Log)
    }
    pub fn sin(&self) -> Result<Tracked> {
        self.unary(Unary::Sin)
    }
    pub fn tanh(&self) -> Result<Tracked> {
        self.unary(Unary::Tanh)
    }
    /// The sum of all elements.
    pub fn sum(&self) -> Result<Tracked> {
        self.reduce(Reduce::Sum)
    }
    /// The product of all elements.
    pub fn prod(&self) -> Result<Tracked> {
        self.reduce(Reduce::Prod)
    }
    /// `self @ other`.
    pub fn matmul(&self, other: &Tracked) -> Result<Tracked> {
        tracked(
            apply(
                Op::Matmul,
                &[Arg::Tracked(self.clone()), Arg::Tracked(other.clone())],
            )?,
            "matmul",
        )
    }
    /// `self[start:stop]` along the first axis.
    pub fn slice(&self, start: isize, stop: Option<isize>) -> Result<Tracked> {
        self.index(&[IndexItem::Slice {
            start: Some(start),
            stop,
            step: None,
        }])
    }
    /// `self[items]`, NumPy's indexing.
    pub fn index(&self, items: &[IndexItem]) -> Result<Tracked> {
        let gather = crate::ops::index::plan(&self.shape(), items)?;
        tracked(
            apply(Op::Gather(gather.into()), &[Arg::Tracked(self.clone())])?,
            "getitem",
        )
    }
}

/// The gradient of the scalar function `f` at `x`.
///
/// ```
/// use tracker_core::{Value, gradient};
/// # fn main() -> tracker_core::Result<()> {
/// let g = gradient(|x| x.mul(x)?.sum(), &Value::from_vec(&[2], vec![1.0, 3.0])?)?;
/// assert_eq!(g.to_f64_vec(), vec![2.0, 6.0]);
/// # Ok(())
/// # }
/// ```
pub fn gradient(f: impl Fn(&Tracked) -> Result<Tracked>, x: &Value) -> Result<Value> {
    let scope = enter_scope(false);
    let result = (|| {
        let input = scope.input(Arg::Value(x.clone()))?;
        let y = f(&input)?;
        scope.gradient(&Output::Tracked(y), &[input], None, false)
    })();
    let grads = scope.exit(result?)?;
    grads
        .into_iter()
        .next()
        .map(|g| g.value())
        .ok_or(Error::Usage {
            message: "gradient: no result".into(),
        })
}

/// The Hessian of the scalar function `f` at `x`, of shape `x.shape + x.shape`: the
/// Jacobian of a recorded (nested) gradient, one reverse sweep per row.
///
/// ```
/// use tracker_core::{Value, hessian};
/// # fn main() -> tracker_core::Result<()> {
/// let h = hessian(|x| x.mul(x)?.mul(x)?.sum(), &Value::from_vec(&[2], vec![1.0, 2.0])?)?;
/// assert_eq!(h.to_f64_vec(), vec![6.0, 0.0, 0.0, 12.0]);
/// # Ok(())
/// # }
/// ```
pub fn hessian(f: impl Fn(&Tracked) -> Result<Tracked>, x: &Value) -> Result<Value> {
    let outer = enter_scope(false);
    let rows = (|| {
        let input = outer.input(Arg::Value(x.clone()))?;
        let inner = enter_scope(true);
        let grad = (|| {
            let nested = inner.input(Arg::Tracked(input.clone()))?;
            let y = f(&nested)?;
            inner.gradient(&Output::Tracked(y), &[nested], None, false)
        })();
        let grad = inner.exit(grad?)?.into_iter().next().ok_or(Error::Usage {
            message: "hessian: no gradient".into(),
        })?;
        let n = x.len();
        let mut rows = Vec::with_capacity(n * n);
        for i in 0..n {
            let mut seed = vec![0.0; n];
            if let Some(s) = seed.get_mut(i) {
                *s = 1.0;
            }
            let seed = Value::from_vec(x.shape(), seed)?.cast(grad.value().dtype())?;
            let row = outer.gradient(
                &grad,
                std::slice::from_ref(&input),
                Some(Arg::Value(seed)),
                true,
            )?;
            for r in row {
                rows.extend(r.value().to_f64_vec());
            }
        }
        Ok(rows)
    })();
    outer.exit(Vec::new())?;
    let mut shape: crate::value::Shape = x.shape().into();
    shape.extend(x.shape().iter().copied());
    Value::from_vec(&shape, rows?)?.cast(x.dtype())
}
