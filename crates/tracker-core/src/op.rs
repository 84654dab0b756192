//! The op enum, its one dispatch `match`, and the array backend that pullbacks are
//! written against.
//!
//! A pullback is written once, generic over `Backend`: with [`Eager`] it computes on
//! buffers; with the tape's recording backend every step records a node, so the same
//! function gives gradients of gradients.

use std::sync::Arc;

use smallvec::{SmallVec, smallvec};

use crate::broadcast::reduction_axes;
use crate::error::{Error, Result};
use crate::ops::binary::Binary;
use crate::ops::index::Gather;
use crate::ops::reduce::Reduce;
use crate::ops::shape::Mask;
use crate::ops::special::Special;
use crate::ops::unary::Unary;
use crate::ops::{binary, index, linalg, reduce, shape, special};
use crate::tape::{Arg, Param};
use crate::value::{Dtype, Shape, Value};

/// Axes of an op, normalised (non-negative, sorted, unique).
pub type Axes = SmallVec<[usize; 4]>;

/// Every operation the tape can record.
#[derive(Clone)]
pub enum Op {
    /// A value that is not differentiated.
    Const,
    /// A value differentiated by an out-of-place sweep (`gradient`'s arguments).
    Input,
    /// A parameter: its gradient accumulates in the parameter.
    Param(Arc<Param>),
    /// A value whose node an earlier `back` consumed: reaching it is an error.
    Consumed(&'static str),
    /// The identity, whose pullback raises: marks a gradient computed without nesting.
    Nobacksies(Arc<str>),
    Unary(Unary),
    Binary(Binary),
    /// A special function of `scipy.special`, of one or two arguments.
    Special(Special),
    /// `where(mask, a, b)`.
    Where(Arc<Mask>),
    Reduce {
        kind: Reduce,
        axes: Axes,
        keepdims: bool,
    },
    /// `a @ b` (NumPy's matmul: 1-D operands promoted, batch dimensions broadcast).
    Matmul,
    /// The linear-algebra ops over batches of matrices (`ops/linalg.rs`): several
    /// results (`eigh`, `svd`, `qr`) are packed into one output.
    Inv,
    Det,
    /// `log|det|` (NumPy's `slogdet` without the sign, which has no gradient).
    Slogdet,
    Solve,
    /// `a⁻¹ b` for triangular `a`, reading its lower (or upper) triangle only.
    SolveTriangular {
        lower: bool,
    },
    Cholesky,
    Eigh,
    Svd,
    Qr,
    Transpose(Axes),
    Reshape(Shape),
    BroadcastTo(Shape),
    /// `x[index]`, as the positions it reads.
    Gather(Arc<Gather>),
    /// The transpose of a gather: a zero array with the input added at the positions.
    Scatter(Arc<Gather>),
    /// Shift along an axis by `by` places, filling the vacated places with `fill`.
    Shift {
        axis: usize,
        by: isize,
        fill: f64,
    },
    Cast(Dtype),
    /// Running sums along `axis`, from its end when `reverse`.
    Cumsum {
        axis: usize,
        reverse: bool,
    },
    /// A rule whose pullback lives outside the engine: a custom rule, hook or checkpoint.
    Extern(Arc<dyn Extern>),
}

/// A rule whose pullback lives outside the engine (in Python: custom rules, hooks,
/// checkpoints). Its forward value was computed by its caller.
pub trait Extern: Send + Sync {
    /// The rule's name, for errors and `show`.
    fn name(&self) -> &'static str;
    /// The gradient for each input given `dy`: a plain value in an eager sweep, a
    /// tracked one in a recording sweep (where what the pullback computes from its
    /// tracked inputs is recorded, so it can be differentiated again).
    fn pullback(&self, dy: Arg) -> Result<Vec<Option<Arg>>>;
    /// Frees what the pullback holds, once a consuming sweep has passed.
    fn release(&self);
}

impl Op {
    /// The op's name, as NumPy spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Const => "constant",
            Op::Input => "input",
            Op::Param(_) => "param",
            Op::Consumed(name) => name,
            Op::Nobacksies(_) => "nobacksies",
            Op::Unary(u) => u.name(),
            Op::Binary(b) => b.name(),
            Op::Special(s) => s.name(),
            Op::Where(_) => "where",
            Op::Reduce { kind, .. } => kind.name(),
            Op::Matmul => "matmul",
            Op::Inv => "inv",
            Op::Det => "det",
            Op::Slogdet => "slogdet",
            Op::Solve => "solve",
            Op::SolveTriangular { .. } => "solve_triangular",
            Op::Cholesky => "cholesky",
            Op::Eigh => "eigh",
            Op::Svd => "svd",
            Op::Qr => "qr",
            Op::Transpose(_) => "transpose",
            Op::Reshape(_) => "reshape",
            Op::BroadcastTo(_) => "broadcast_to",
            Op::Gather(_) => "getitem",
            Op::Scatter(_) => "scatter_add",
            Op::Shift { .. } => "shift",
            Op::Cast(_) => "astype",
            Op::Cumsum { .. } => "cumsum",
            Op::Extern(rule) => rule.name(),
        }
    }

    /// Whether this op is a leaf of the graph (it has no inputs).
    pub(crate) fn is_leaf(&self) -> bool {
        matches!(self, Op::Const | Op::Input | Op::Param(_) | Op::Consumed(_))
    }

    /// The op's value, given its inputs' values.
    pub fn forward(&self, inputs: &[&Value]) -> Result<Value> {
        let op = self.name();
        match (self, inputs) {
            (Op::Nobacksies(_), [x, ..]) => Ok((*x).clone()),
            (Op::Unary(u), [x]) => Ok(map_value!(x, a => u.forward(a)?)),
            (Op::Binary(b), [x, y]) => b.forward(x, y),
            (Op::Special(s), _) => special::forward(*s, inputs),
            (Op::Where(mask), [x, y]) => shape::select(mask, x, y),
            (
                Op::Reduce {
                    kind,
                    axes,
                    keepdims,
                },
                [x],
            ) => reduce::forward(*kind, x, axes, *keepdims),
            (Op::Matmul, [x, y]) => linalg::matmul(x, y),
            (Op::Inv, [x]) => linalg::inv(x),
            (Op::Det, [x]) => linalg::det(x),
            (Op::Slogdet, [x]) => linalg::slogdet(x),
            (Op::Solve, [a, b]) => linalg::solve(a, b),
            (Op::SolveTriangular { lower }, [a, b]) => linalg::solve_triangular(a, b, *lower),
            (Op::Cholesky, [x]) => linalg::cholesky(x),
            (Op::Eigh, [x]) => linalg::eigh(x),
            (Op::Svd, [x]) => linalg::svd(x),
            (Op::Qr, [x]) => linalg::qr(x),
            (Op::Transpose(perm), [x]) => shape::transpose(x, perm),
            (Op::Reshape(s), [x]) => x.reshaped(s),
            (Op::BroadcastTo(s), [x]) => shape::broadcast_to(x, s),
            (Op::Gather(g), [x]) => index::gather(g, x),
            (Op::Scatter(g), [x]) => index::scatter(g, x),
            (Op::Shift { axis, by, fill }, [x]) => shape::shift(x, *axis, *by, *fill),
            (Op::Cast(dtype), [x]) => x.cast(*dtype),
            (Op::Cumsum { axis, reverse }, [x]) => reduce::cumsum(x, *axis, *reverse),
            _ => Err(Error::Usage {
                message: format!("{op}: got {} inputs", inputs.len()),
            }),
        }
    }

    /// The contributions of `dy` (the gradient of this op's output `y`) to the gradients
    /// of the inputs for which `needs` is true. Written once for both backends.
    pub(crate) fn pullback<B: Backend>(
        &self,
        b: &mut B,
        inputs: &[B::A],
        y: &B::A,
        dy: &B::A,
        needs: &[bool],
    ) -> Result<Contributions<B::A>> {
        let need = |k: usize| needs.get(k).copied().unwrap_or(false);
        let dense = |g: B::A| Some(Contribution::Dense(g));
        Ok(match (self, inputs) {
            (Op::Extern(rule), _) => b.external(rule, inputs, dy)?,
            (Op::Nobacksies(message), _) => {
                return Err(Error::Nesting {
                    message: message.to_string(),
                });
            }
            (Op::Unary(u), [x]) => smallvec![dense(b.unary_rule(*u, x, y, dy)?)],
            (Op::Binary(op), [x1, x2]) => {
                binary::pullback(b, *op, x1, x2, y, dy, need(0), need(1))?
            }
            (Op::Special(s), _) => special::pullback(b, *s, inputs, y, dy, needs)?,
            (Op::Where(mask), [x1, x2]) => {
                shape::select_pullback(b, mask, x1, x2, dy, need(0), need(1))?
            }
            (
                Op::Reduce {
                    kind,
                    axes,
                    keepdims,
                },
                [x],
            ) => smallvec![dense(reduce::pullback(
                b, *kind, axes, *keepdims, x, y, dy
            )?)],
            (Op::Matmul, [x1, x2]) => linalg::matmul_pullback(b, x1, x2, dy, need(0), need(1))?,
            (Op::Inv | Op::Det | Op::Slogdet | Op::Cholesky | Op::Eigh | Op::Svd | Op::Qr, [x]) => {
                linalg::unary_pullback(b, self, x, y, dy)?
            }
            (Op::Solve, [a, rhs]) => {
                linalg::solve_pullback(b, a, rhs, y, dy, need(0), need(1), None)?
            }
            (Op::SolveTriangular { lower }, [a, rhs]) => {
                linalg::solve_pullback(b, a, rhs, y, dy, need(0), need(1), Some(*lower))?
            }
            (Op::Transpose(perm), [_]) => {
                smallvec![dense(b.transpose(dy, &shape::inverse_permutation(perm))?)]
            }
            (Op::Reshape(_), [x]) => {
                let s = b.shape(x);
                smallvec![dense(b.reshape(dy, &s)?)]
            }
            (Op::BroadcastTo(_), [x]) => {
                let s = b.shape(x);
                smallvec![dense(b.sum_to(dy, &s)?)]
            }
            (Op::Gather(g), [_]) => smallvec![Some(Contribution::Scatter {
                gather: g.clone(),
                piece: dy.clone(),
            })],
            (Op::Scatter(g), [_]) => smallvec![dense(b.apply(Op::Gather(g.clone()), &[dy])?)],
            (Op::Shift { axis, by, .. }, [_]) => smallvec![dense(b.apply(
                Op::Shift {
                    axis: *axis,
                    by: -*by,
                    fill: 0.0
                },
                &[dy]
            )?)],
            (Op::Cumsum { axis, reverse }, [_]) => smallvec![dense(b.apply(
                Op::Cumsum {
                    axis: *axis,
                    reverse: !*reverse
                },
                &[dy]
            )?)],
            (Op::Cast(_), [x]) => {
                let dtype = b.dtype(x);
                smallvec![dense(b.apply(Op::Cast(dtype), &[dy])?)]
            }
            _ => {
                return Err(Error::Usage {
                    message: format!("{}: has no pullback", self.name()),
                });
            }
        })
    }
}

/// How a pullback adds to an input's gradient.
pub(crate) enum Contribution<A> {
    /// A gradient of the input's full shape.
    Dense(A),
    /// A piece added at the positions a gather read: costs the size of the piece.
    Scatter { gather: Arc<Gather>, piece: A },
}

/// One optional contribution per input.
pub(crate) type Contributions<A> = SmallVec<[Option<Contribution<A>>; 2]>;

/// A dense contribution for each input that needs one: `grad(b, k)` is input k's
/// gradient at any shape that broadcasts to it, and is summed back to its shape.
pub(crate) fn each_input<B: Backend>(
    b: &mut B,
    inputs: &[(&B::A, bool)],
    mut grad: impl FnMut(&mut B, usize) -> Result<B::A>,
) -> Result<Contributions<B::A>> {
    let mut out = Contributions::new();
    for (k, &(x, need)) in inputs.iter().enumerate() {
        out.push(if need {
            let g = grad(b, k)?;
            let shape = b.shape(x);
            Some(Contribution::Dense(b.sum_to(&g, &shape)?))
        } else {
            None
        });
    }
    Ok(out)
}

/// Arrays that ops apply to: buffers ([`Eager`]), nodes a sweep records, or values on
/// the live tape ([`crate::tape::Live`]). Composite functions are written against it.
pub trait Arrays {
    type A: Clone;

    /// Applies `op` to `inputs`.
    fn apply(&mut self, op: Op, inputs: &[&Self::A]) -> Result<Self::A>;
    /// A constant (a mask, a scale).
    fn constant(&mut self, value: Value) -> Result<Self::A>;
    /// The primal value of `a`: pullbacks read it only to build masks.
    fn value(&self, a: &Self::A) -> Result<Value>;
    fn shape(&self, a: &Self::A) -> Shape;
    fn dtype(&self, a: &Self::A) -> Dtype;
    fn add(&mut self, a: &Self::A, b: &Self::A) -> Result<Self::A> {
        self.apply(Op::Binary(Binary::Add), &[a, b])
    }

    fn mul(&mut self, a: &Self::A, b: &Self::A) -> Result<Self::A> {
        self.apply(Op::Binary(Binary::Mul), &[a, b])
    }

    fn reshape(&mut self, a: &Self::A, shape: &[usize]) -> Result<Self::A> {
        if self.shape(a).as_slice() == shape {
            return Ok(a.clone());
        }
        self.apply(Op::Reshape(shape.into()), &[a])
    }

    fn transpose(&mut self, a: &Self::A, perm: &[usize]) -> Result<Self::A> {
        if perm.iter().enumerate().all(|(k, &p)| k == p) {
            return Ok(a.clone());
        }
        self.apply(Op::Transpose(perm.into()), &[a])
    }

    fn broadcast_to(&mut self, a: &Self::A, shape: &[usize]) -> Result<Self::A> {
        if self.shape(a).as_slice() == shape {
            return Ok(a.clone());
        }
        self.apply(Op::BroadcastTo(shape.into()), &[a])
    }

    /// Sums `a` back to `shape`, which broadcasts to `a`'s shape: the only place a
    /// gradient is reduced to an input's shape.
    fn sum_to(&mut self, a: &Self::A, shape: &[usize]) -> Result<Self::A> {
        let from = self.shape(a);
        if from.as_slice() == shape {
            return Ok(a.clone());
        }
        let axes = reduction_axes(&from, shape);
        let summed = if axes.is_empty() {
            a.clone()
        } else {
            self.apply(
                Op::Reduce {
                    kind: Reduce::Sum,
                    axes,
                    keepdims: true,
                },
                &[a],
            )?
        };
        self.reshape(&summed, shape)
    }

    /// A constant 0-d value of `a`'s dtype.
    fn scalar_like(&mut self, a: &Self::A, value: f64) -> Result<Self::A> {
        let dtype = self.dtype(a);
        self.constant(Value::scalar(value, dtype))
    }
}

/// The arrays a pullback computes with: buffers ([`Eager`]) or recorded nodes.
pub(crate) trait Backend: Arrays {
    /// The gradient of a unary elementwise op, as one fused pass.
    fn unary_rule(&mut self, op: Unary, x: &Self::A, y: &Self::A, dy: &Self::A) -> Result<Self::A>;
    /// The gradient of a binary elementwise op with respect to input `side`, at the
    /// output's shape (before it is summed back to the input's shape).
    fn binary_rule(
        &mut self,
        op: Binary,
        side: usize,
        inputs: [&Self::A; 2],
        y: &Self::A,
        dy: &Self::A,
    ) -> Result<Self::A>;

    /// The gradients of an external rule (its pullback is called back).
    fn external(
        &mut self,
        rule: &Arc<dyn Extern>,
        inputs: &[Self::A],
        dy: &Self::A,
    ) -> Result<Contributions<Self::A>>;
}

/// The backend over buffers: every op computes its value now, nothing is recorded.
pub struct Eager;

impl Arrays for Eager {
    type A = Value;

    fn apply(&mut self, op: Op, inputs: &[&Value]) -> Result<Value> {
        op.forward(inputs)
    }

    fn constant(&mut self, value: Value) -> Result<Value> {
        Ok(value)
    }

    fn value(&self, a: &Value) -> Result<Value> {
        Ok(a.clone())
    }

    fn shape(&self, a: &Value) -> Shape {
        a.shape().into()
    }

    fn dtype(&self, a: &Value) -> Dtype {
        a.dtype()
    }
}

impl Backend for Eager {
    fn external(
        &mut self,
        rule: &Arc<dyn Extern>,
        inputs: &[Value],
        dy: &Value,
    ) -> Result<Contributions<Value>> {
        crate::sweep::eager_external(rule, inputs, dy)
    }

    fn unary_rule(&mut self, op: Unary, x: &Value, y: &Value, dy: &Value) -> Result<Value> {
        match (x, y, dy) {
            (Value::F32(x), Value::F32(y), Value::F32(dy)) => {
                Ok(Value::F32(op.rule_arrays(x, y, dy)?))
            }
            (Value::F64(x), Value::F64(y), Value::F64(dy)) => {
                Ok(Value::F64(op.rule_arrays(x, y, dy)?))
            }
            _ => Err(mixed_dtypes(op.name())),
        }
    }

    fn binary_rule(
        &mut self,
        op: Binary,
        side: usize,
        [a, b]: [&Value; 2],
        y: &Value,
        dy: &Value,
    ) -> Result<Value> {
        match (a, b, y, dy) {
            (Value::F32(a), Value::F32(b), Value::F32(y), Value::F32(dy)) => {
                Ok(Value::F32(op.rule_arrays(side, a, b, y, dy)?))
            }
            (Value::F64(a), Value::F64(b), Value::F64(y), Value::F64(dy)) => {
                Ok(Value::F64(op.rule_arrays(side, a, b, y, dy)?))
            }
            _ => Err(mixed_dtypes(op.name())),
        }
    }
}

/// The error for a kernel handed values of different dtypes (the recorder casts first).
pub(crate) fn mixed_dtypes(op: &'static str) -> Error {
    Error::Type {
        op,
        message: "operands have different dtypes; cast one with astype first".into(),
    }
}
