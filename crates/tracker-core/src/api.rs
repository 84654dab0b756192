//! The Rust user's API: common ops as methods on [`Tracked`], [`gradient`] and
//! [`hessian`] of functions of plain values, and [`Live`] for composite functions.

use crate::error::{Error, Result};
use crate::op::{Arrays, Op};
use crate::ops::binary::Binary;
use crate::ops::index::IndexItem;
use crate::ops::reduce::Reduce;
use crate::ops::unary::Unary;
use crate::tape::{Arg, Output, Scope, Tracked, apply, enter_scope};
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
///
/// ```
/// use tracker_core::ops::reduce::cumprod;
/// use tracker_core::{Arg, Live, Tracked, Value, backward};
///
/// # fn main() -> tracker_core::Result<()> {
/// let x = Tracked::param(Value::from_vec(&[3], vec![1.0, 2.0, 3.0])?);
/// let Arg::Tracked(y) = cumprod(&mut Live, &Arg::Tracked(x.clone()), 0)? else {
///     panic!("a tracked input gives a tracked result");
/// };
/// assert_eq!(y.value().to_f64_vec(), vec![1.0, 2.0, 6.0]);
/// backward(&y.sum()?, None, true)?; // d(x0 + x0 x1 + x0 x1 x2)
/// assert_eq!(x.grad()?.to_f64_vec(), vec![9.0, 4.0, 2.0]);
/// # Ok(())
/// # }
/// ```
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

    /// `self + other`, elementwise with NumPy broadcasting.
    ///
    /// ```
    /// use tracker_core::{Tracked, Value};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let a = Tracked::param(Value::from_vec(&[2], vec![1.0, 2.0])?);
    /// let b = Tracked::param(Value::from_vec(&[1], vec![10.0])?);
    /// assert_eq!(a.add(&b)?.value().to_f64_vec(), vec![11.0, 12.0]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn add(&self, other: &Tracked) -> Result<Tracked> {
        self.binary(Binary::Add, Arg::Tracked(other.clone()))
    }

    /// `self - other`, elementwise with NumPy broadcasting.
    ///
    /// ```
    /// use tracker_core::{Tracked, Value};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let a = Tracked::param(Value::from_vec(&[2], vec![1.0, 2.0])?);
    /// let b = Tracked::param(Value::from_vec(&[2], vec![0.5, 4.0])?);
    /// assert_eq!(a.sub(&b)?.value().to_f64_vec(), vec![0.5, -2.0]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn sub(&self, other: &Tracked) -> Result<Tracked> {
        self.binary(Binary::Sub, Arg::Tracked(other.clone()))
    }

    /// `self * other`, elementwise with NumPy broadcasting.
    ///
    /// ```
    /// use tracker_core::{Tracked, Value, backward};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let a = Tracked::param(Value::from_vec(&[2], vec![2.0, 3.0])?);
    /// let b = Tracked::param(Value::from_vec(&[2], vec![5.0, 7.0])?);
    /// backward(&a.mul(&b)?.sum()?, None, true)?;
    /// assert_eq!(a.grad()?.to_f64_vec(), vec![5.0, 7.0]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn mul(&self, other: &Tracked) -> Result<Tracked> {
        self.binary(Binary::Mul, Arg::Tracked(other.clone()))
    }

    /// `self / other`, elementwise with NumPy broadcasting.
    ///
    /// ```
    /// use tracker_core::{Tracked, Value};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let a = Tracked::param(Value::from_vec(&[2], vec![1.0, 3.0])?);
    /// let b = Tracked::param(Value::from_vec(&[2], vec![2.0, 4.0])?);
    /// assert_eq!(a.div(&b)?.value().to_f64_vec(), vec![0.5, 0.75]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn div(&self, other: &Tracked) -> Result<Tracked> {
        self.binary(Binary::Div, Arg::Tracked(other.clone()))
    }

    /// `self ** exponent` for a constant exponent (of `self`'s dtype).
    ///
    /// ```
    /// use tracker_core::{Tracked, Value, backward};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let x = Tracked::param(Value::from_vec(&[2], vec![2.0, 3.0])?);
    /// let y = x.powf(3.0)?;
    /// assert_eq!(y.value().to_f64_vec(), vec![8.0, 27.0]);
    /// backward(&y.sum()?, None, true)?;
    /// assert_eq!(x.grad()?.to_f64_vec(), vec![12.0, 27.0]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn powf(&self, exponent: f64) -> Result<Tracked> {
        self.binary(
            Binary::Pow,
            Arg::Value(Value::scalar(exponent, self.dtype())),
        )
    }

    /// `e ** self`, elementwise.
    ///
    /// ```
    /// use tracker_core::{Tracked, Value, backward};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let x = Tracked::param(Value::from_vec(&[2], vec![0.0, 1.0])?);
    /// backward(&x.exp()?.sum()?, None, true)?;
    /// let g = x.grad()?.to_f64_vec();
    /// assert_eq!(g[0], 1.0);
    /// assert!((g[1] - 1f64.exp()).abs() <= f64::EPSILON * 4.0); // within an ulp
    /// # Ok(())
    /// # }
    /// ```
    pub fn exp(&self) -> Result<Tracked> {
        self.unary(Unary::Exp)
    }

    /// The natural logarithm, elementwise (NumPy's `log`).
    ///
    /// ```
    /// use tracker_core::{Tracked, Value, backward};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let x = Tracked::param(Value::from_vec(&[2], vec![1.0, 4.0])?);
    /// backward(&x.ln()?.sum()?, None, true)?;
    /// assert_eq!(x.grad()?.to_f64_vec(), vec![1.0, 0.25]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn ln(&self) -> Result<Tracked> {
        self.unary(Unary::Log)
    }

    /// The sine, elementwise (radians).
    ///
    /// ```
    /// use tracker_core::{Tracked, Value, backward};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let x = Tracked::param(Value::from_vec(&[2], vec![0.0, 1.0])?);
    /// backward(&x.sin()?.sum()?, None, true)?;
    /// assert_eq!(x.grad()?.to_f64_vec(), vec![1.0, 1f64.cos()]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn sin(&self) -> Result<Tracked> {
        self.unary(Unary::Sin)
    }

    /// The hyperbolic tangent, elementwise.
    ///
    /// ```
    /// use tracker_core::{Tracked, Value, backward};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let x = Tracked::param(Value::from_vec(&[1], vec![0.0])?);
    /// let y = x.tanh()?;
    /// assert_eq!(y.value().to_f64_vec(), vec![0.0]);
    /// backward(&y.sum()?, None, true)?;
    /// assert_eq!(x.grad()?.to_f64_vec(), vec![1.0]); // 1 - tanh²(0)
    /// # Ok(())
    /// # }
    /// ```
    pub fn tanh(&self) -> Result<Tracked> {
        self.unary(Unary::Tanh)
    }

    /// The sum of all elements, as a 0-d value.
    ///
    /// ```
    /// use tracker_core::{Tracked, Value};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let x = Tracked::param(Value::from_vec(&[2, 2], vec![1.0, 2.0, 3.0, 4.0])?);
    /// let s = x.sum()?;
    /// assert_eq!((s.shape().len(), s.value().item()), (0, Some(10.0)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn sum(&self) -> Result<Tracked> {
        self.reduce(Reduce::Sum)
    }

    /// The product of all elements, as a 0-d value. Its gradient is right where an
    /// element is zero.
    ///
    /// ```
    /// use tracker_core::{Tracked, Value, backward};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let x = Tracked::param(Value::from_vec(&[3], vec![2.0, 0.0, 4.0])?);
    /// backward(&x.prod()?, None, true)?;
    /// assert_eq!(x.grad()?.to_f64_vec(), vec![0.0, 8.0, 0.0]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn prod(&self) -> Result<Tracked> {
        self.reduce(Reduce::Prod)
    }

    /// `self @ other`, NumPy's `matmul` (1-D operands promoted, batches broadcast).
    ///
    /// ```
    /// use tracker_core::{Tracked, Value};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let a = Tracked::param(Value::from_vec(&[2, 2], vec![1.0, 2.0, 3.0, 4.0])?);
    /// let v = Tracked::param(Value::from_vec(&[2], vec![1.0, 1.0])?);
    /// assert_eq!(a.matmul(&v)?.value().to_f64_vec(), vec![3.0, 7.0]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn matmul(&self, other: &Tracked) -> Result<Tracked> {
        tracked(
            apply(
                Op::Matmul,
                &[Arg::Tracked(self.clone()), Arg::Tracked(other.clone())],
            )?,
            "matmul",
        )
    }

    /// `self[start:stop]` along the first axis; negative positions count from the end.
    ///
    /// ```
    /// use tracker_core::{Tracked, Value};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let x = Tracked::param(Value::from_vec(&[4], vec![1.0, 2.0, 3.0, 4.0])?);
    /// assert_eq!(x.slice(1, Some(3))?.value().to_f64_vec(), vec![2.0, 3.0]);
    /// assert_eq!(x.slice(-1, None)?.value().to_f64_vec(), vec![4.0]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn slice(&self, start: isize, stop: Option<isize>) -> Result<Tracked> {
        self.index(&[IndexItem::Slice {
            start: Some(start),
            stop,
            step: None,
        }])
    }

    /// `self[items]`, NumPy's indexing (integers, slices, new axes, `...`, integer
    /// arrays). The gradient adds into the positions read.
    ///
    /// ```
    /// use tracker_core::ops::index::IndexItem;
    /// use tracker_core::{Tracked, Value};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let x = Tracked::param(Value::from_vec(&[2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])?);
    /// let column = x.index(&[IndexItem::Ellipsis, IndexItem::Int(-1)])?; // x[..., -1]
    /// assert_eq!(column.value().to_f64_vec(), vec![3.0, 6.0]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn index(&self, items: &[IndexItem]) -> Result<Tracked> {
        let gather = crate::ops::index::plan(&self.shape(), items)?;
        tracked(
            apply(Op::Gather(gather.into()), &[Arg::Tracked(self.clone())])?,
            "getitem",
        )
    }
}

/// The gradient of the scalar function `f` at `x`, of `x`'s shape and dtype. `f` runs
/// in a scope with a tape of its own, which is dropped afterwards; parameters'
/// accumulated gradients are not touched.
///
/// ```
/// use tracker_core::{Value, gradient};
///
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

/// Runs `then(outer, input, grad)` on the gradient `grad` of `f` at `x`, recorded (nested)
/// on the scope `outer` where `input` stands for `x`, so that sweeps of `outer` from
/// `grad` differentiate it once more; leaves the scope after.
fn on_recorded_gradient<T>(
    f: impl Fn(&Tracked) -> Result<Tracked>,
    x: &Value,
    then: impl FnOnce(&Scope, &Tracked, &Output) -> Result<T>,
) -> Result<T> {
    let outer = enter_scope(false);
    let result = (|| {
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
        then(&outer, &input, &grad)
    })();
    outer.exit(Vec::new())?;
    result
}

/// One sweep of `outer` from `grad` seeded with `seed` (same shape as `x`): `seedᵀ H`,
/// which is `H seed` since the Hessian `H` is symmetric.
fn seeded_row(outer: &Scope, input: &Tracked, grad: &Output, seed: Value) -> Result<Value> {
    let seed = seed.cast(grad.value().dtype())?;
    let row = outer.gradient(
        grad,
        std::slice::from_ref(input),
        Some(Arg::Value(seed)),
        true,
    )?;
    row.into_iter()
        .next()
        .map(|r| r.value())
        .ok_or(Error::Usage {
            message: "hessian: no row".into(),
        })
}

/// The Hessian of the scalar function `f` at `x`, of shape `x.shape + x.shape`: the
/// Jacobian of a recorded (nested) gradient, one reverse sweep per row.
///
/// ```
/// use tracker_core::{Value, hessian};
///
/// # fn main() -> tracker_core::Result<()> {
/// let h = hessian(|x| x.mul(x)?.mul(x)?.sum(), &Value::from_vec(&[2], vec![1.0, 2.0])?)?;
/// assert_eq!(h.to_f64_vec(), vec![6.0, 0.0, 0.0, 12.0]);
/// # Ok(())
/// # }
/// ```
pub fn hessian(f: impl Fn(&Tracked) -> Result<Tracked>, x: &Value) -> Result<Value> {
    let n = x.len();
    let rows = on_recorded_gradient(f, x, |outer, input, grad| {
        let mut rows = Vec::with_capacity(n * n);
        for i in 0..n {
            let mut seed = vec![0.0; n];
            if let Some(s) = seed.get_mut(i) {
                *s = 1.0;
            }
            let seed = Value::from_vec(x.shape(), seed)?;
            rows.extend(seeded_row(outer, input, grad, seed)?.to_f64_vec());
        }
        Ok(rows)
    })?;
    let mut shape: crate::value::Shape = x.shape().into();
    shape.extend(x.shape().iter().copied());
    Value::from_vec(&shape, rows)?.cast(x.dtype())
}

/// The Hessian-vector product `H v` of the scalar function `f` at `x`, without forming
/// `H`: the recorded gradient differentiated once more, seeded with `v` (about the cost
/// of two gradients, where [`hessian`] takes one sweep per row).
///
/// ```
/// use tracker_core::{Value, hvp};
///
/// # fn main() -> tracker_core::Result<()> {
/// // f = Σ x³: H = diag(6x) = diag(6, 12).
/// let x = Value::from_vec(&[2], vec![1.0, 2.0])?;
/// let v = Value::from_vec(&[2], vec![1.0, -1.0])?;
/// let hv = hvp(|x| x.mul(x)?.mul(x)?.sum(), &x, &v)?;
/// assert_eq!(hv.to_f64_vec(), vec![6.0, -12.0]);
/// # Ok(())
/// # }
/// ```
pub fn hvp(f: impl Fn(&Tracked) -> Result<Tracked>, x: &Value, v: &Value) -> Result<Value> {
    if v.shape() != x.shape() {
        return Err(Error::Shape {
            op: "hvp",
            message: format!("v has shape {:?}, x has shape {:?}", v.shape(), x.shape()),
        });
    }
    let hv = on_recorded_gradient(f, x, |outer, input, grad| {
        seeded_row(outer, input, grad, v.clone())
    })?;
    hv.cast(x.dtype())
}
