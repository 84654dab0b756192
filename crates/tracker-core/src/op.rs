//! The op enum, its one dispatch `match`, and the array backend that pullbacks are
//! written against.
//!
//! A pullback is written once, generic over the engine's array backend (a crate-private
//! extension of [`Arrays`]): with [`Eager`] it computes on buffers; with the tape's
//! recording backend every step records a node, so the same function gives gradients of
//! gradients.
//!
//! ```
//! use tracker_core::op::{Arrays, Eager, Op};
//! use tracker_core::ops::unary::Unary;
//! use tracker_core::{Arg, Output, Tracked, Value, apply};
//!
//! # fn main() -> tracker_core::Result<()> {
//! let x = Value::from_vec(&[2], vec![1.0, 4.0])?;
//! let sqrt = Op::Unary(Unary::Sqrt);
//! // On buffers, without a tape:
//! assert_eq!(Eager.apply(sqrt.clone(), &[&x])?.to_f64_vec(), vec![1.0, 2.0]);
//! // On the tape, when an argument is tracked:
//! let y = apply(sqrt, &[Arg::Tracked(Tracked::param(x))])?;
//! assert!(matches!(y, Output::Tracked(_)));
//! # Ok(())
//! # }
//! ```

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

/// Axes of an op, normalised (non-negative, sorted, unique), as
/// [`normalize_axes`](crate::ops::reduce::normalize_axes) makes them.
///
/// ```
/// use tracker_core::Value;
/// use tracker_core::op::{Axes, Eager, Arrays, Op};
/// use tracker_core::ops::reduce::Reduce;
///
/// # fn main() -> tracker_core::Result<()> {
/// let x = Value::from_vec(&[2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])?;
/// let rows = Op::Reduce { kind: Reduce::Sum, axes: Axes::from_slice(&[1]), keepdims: false };
/// assert_eq!(Eager.apply(rows, &[&x])?.to_f64_vec(), vec![6.0, 15.0]);
/// # Ok(())
/// # }
/// ```
pub type Axes = SmallVec<[usize; 4]>;

/// Every operation the tape can record. [`apply`](crate::apply) runs one on
/// arguments (recording it when one is tracked); [`Op::forward`] computes its value on
/// plain values. The first five variants are the engine's own bookkeeping: leaves,
/// consumed nodes, and marks.
///
/// ```
/// use tracker_core::op::Axes;
/// use tracker_core::{Op, Value};
///
/// # fn main() -> tracker_core::Result<()> {
/// let a = Value::from_vec(&[2, 2], vec![2.0, 0.0, 0.0, 4.0])?;
/// let b = Value::from_vec(&[2, 1], vec![1.0, 1.0])?;
/// assert_eq!(Op::Solve.forward(&[&a, &b])?.to_f64_vec(), vec![0.5, 0.25]);
/// assert_eq!(Op::Det.forward(&[&a])?.item(), Some(8.0));
/// assert_eq!(Op::Transpose(Axes::from_slice(&[1, 0])).forward(&[&b])?.shape(), &[1, 2]);
/// # Ok(())
/// # }
/// ```
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
    /// A unary elementwise op (`exp`, `tanh`, `relu`, ...).
    Unary(Unary),
    /// A binary elementwise op with broadcasting (`add`, `power`, `maximum`, ...).
    Binary(Binary),
    /// A special function of `scipy.special`, of one or two arguments.
    Special(Special),
    /// `where(mask, a, b)`.
    Where(Arc<Mask>),
    /// A reduction over `axes` (sum, mean, prod, max, min).
    Reduce {
        /// Which reduction.
        kind: Reduce,
        /// The axes reduced, normalised.
        axes: Axes,
        /// Whether the reduced axes stay, with length 1.
        keepdims: bool,
    },
    /// `a @ b` (NumPy's matmul: 1-D operands promoted, batch dimensions broadcast).
    Matmul,
    /// `op(a) @ op(b)`, where `op` swaps the last two axes of an operand whose flag is
    /// set (both at least 2-D): the products matmul's pullbacks take, read transposed
    /// in place instead of copied.
    MatmulT {
        /// Whether `a` is read transposed.
        ta: bool,
        /// Whether `b` is read transposed.
        tb: bool,
    },
    /// The inverse of each matrix of a batch `(..., n, n)`. The linear-algebra ops
    /// work on batches of matrices in their last two axes; a singular matrix raises
    /// [`Error::LinAlg`].
    Inv,
    /// The determinant of each matrix of a batch.
    Det,
    /// `log|det|` (NumPy's `slogdet` without the sign, which has no gradient).
    Slogdet,
    /// `a⁻¹ b` for square `a` (`..., n, n`) and `b` (`..., n, k`), batches broadcast.
    Solve,
    /// `a⁻¹ b` for triangular `a`, reading its lower (or upper) triangle only.
    SolveTriangular {
        /// Whether `a` is lower triangular (else upper).
        lower: bool,
    },
    /// The lower Cholesky factor of symmetric positive-definite matrices (reading the
    /// lower triangle only).
    Cholesky,
    /// The eigendecomposition of symmetric matrices (reading the lower triangle), packed
    /// in one output `(..., n + 1, n)`: the eigenvectors `V` as columns of the first `n`
    /// rows, the eigenvalues (ascending) in the last row.
    Eigh,
    /// The thin SVD `A = U diag(S) Vᵀ` of `(..., m, n)` matrices, packed in one output
    /// `(..., m + 1 + n, k)`, `k = min(m, n)`: `U`, then the row `S` (descending),
    /// then `V` (not `Vᵀ`).
    Svd,
    /// The reduced QR factorisation of `(..., m, n)` matrices with `m ≥ n`, packed in
    /// one output `(..., m + n, n)`: `Q`, then `R`.
    Qr,
    /// The axes permuted: axis `k` of the result is axis `perm[k]` of the input.
    Transpose(Axes),
    /// The same elements under another shape of the same size.
    Reshape(Shape),
    /// The input broadcast (and materialised) to a shape.
    BroadcastTo(Shape),
    /// `x[index]`, as the positions it reads.
    Gather(Arc<Gather>),
    /// The transpose of a gather: a zero array with the input added at the positions.
    Scatter(Arc<Gather>),
    /// Shift along an axis by `by` places, filling the vacated places with `fill`.
    Shift {
        /// The axis shifted along.
        axis: usize,
        /// How many places, towards the end for positive values.
        by: isize,
        /// The value of the vacated places.
        fill: f64,
    },
    /// The input converted to another dtype.
    Cast(Dtype),
    /// Running sums along `axis`, from its end when `reverse`.
    Cumsum {
        /// The axis summed along.
        axis: usize,
        /// Whether the sums run from the end of the axis.
        reverse: bool,
    },
    /// A rule whose pullback lives outside the engine: a custom rule, hook or checkpoint.
    Extern(Arc<dyn Extern>),
}

/// A rule whose pullback lives outside the engine (in Python: custom rules, hooks,
/// checkpoints). Its forward value was computed by its caller, and
/// [`apply_extern`](crate::apply_extern) records it.
///
/// ```
/// # use std::sync::Arc;
/// # use tracker_core::ops::binary::Binary;
/// # use tracker_core::{Arg, Extern, Op, Output, Result, Value, apply};
/// # struct Triple;
/// # impl Extern for Triple {
/// #     fn name(&self) -> &'static str { "triple" }
/// #     fn pullback(&self, dy: Arg) -> Result<Vec<Option<Arg>>> {
/// #         let three = Arg::Value(Value::scalar(3.0, dy.value().dtype()));
/// #         Ok(vec![Some(match apply(Op::Binary(Binary::Mul), &[dy, three])? {
/// #             Output::Tracked(t) => Arg::Tracked(t),
/// #             Output::Value(v) => Arg::Value(v),
/// #         })])
/// #     }
/// #     fn release(&self) {}
/// # }
/// use tracker_core::{Tracked, apply_extern, gradient};
///
/// # fn main() -> Result<()> {
/// let x = Value::from_vec(&[2], vec![1.0, 2.0])?;
/// let g = gradient(
///     |x| {
///         let y = Value::from_vec(&[2], vec![3.0, 6.0])?; // Triple's value at x
///         match apply_extern(Arc::new(Triple), &[Arg::Tracked(x.clone())], y)? {
///             Output::Tracked(y) => y.sum(),
///             Output::Value(_) => unreachable!("x is tracked"),
///         }
///     },
///     &x,
/// )?;
/// assert_eq!(g.to_f64_vec(), vec![3.0, 3.0]);
/// # Ok(())
/// # }
/// ```
pub trait Extern: Send + Sync {
    /// The rule's name, for errors and `show`.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use tracker_core::ops::binary::Binary;
    /// # use tracker_core::{Arg, Extern, Op, Output, Result, Value, apply};
    /// # struct Triple;
    /// # impl Extern for Triple {
    /// #     fn name(&self) -> &'static str { "triple" }
    /// #     fn pullback(&self, dy: Arg) -> Result<Vec<Option<Arg>>> {
    /// #         let three = Arg::Value(Value::scalar(3.0, dy.value().dtype()));
    /// #         Ok(vec![Some(match apply(Op::Binary(Binary::Mul), &[dy, three])? {
    /// #             Output::Tracked(t) => Arg::Tracked(t),
    /// #             Output::Value(v) => Arg::Value(v),
    /// #         })])
    /// #     }
    /// #     fn release(&self) {}
    /// # }
    /// assert_eq!(Triple.name(), "triple");
    /// ```
    fn name(&self) -> &'static str;
    /// The gradient for each input given `dy`: a plain value in an eager sweep, a
    /// tracked one in a recording sweep (where what the pullback computes from its
    /// tracked inputs is recorded, so it can be differentiated again). One entry per
    /// argument the rule was recorded with; `None` for no gradient.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use tracker_core::ops::binary::Binary;
    /// # use tracker_core::{Arg, Extern, Op, Output, Result, Value, apply};
    /// # struct Triple;
    /// # impl Extern for Triple {
    /// #     fn name(&self) -> &'static str { "triple" }
    /// #     fn pullback(&self, dy: Arg) -> Result<Vec<Option<Arg>>> {
    /// #         let three = Arg::Value(Value::scalar(3.0, dy.value().dtype()));
    /// #         Ok(vec![Some(match apply(Op::Binary(Binary::Mul), &[dy, three])? {
    /// #             Output::Tracked(t) => Arg::Tracked(t),
    /// #             Output::Value(v) => Arg::Value(v),
    /// #         })])
    /// #     }
    /// #     fn release(&self) {}
    /// # }
    /// # fn main() -> Result<()> {
    /// let dy = Arg::Value(Value::from_vec(&[2], vec![1.0, 0.5])?);
    /// let grads = Triple.pullback(dy)?;
    /// assert_eq!(grads.len(), 1);
    /// assert_eq!(grads[0].as_ref().map(|g| g.value().to_f64_vec()), Some(vec![3.0, 1.5]));
    /// # Ok(())
    /// # }
    /// ```
    fn pullback(&self, dy: Arg) -> Result<Vec<Option<Arg>>>;
    /// Frees what the pullback holds, once a consuming sweep has passed. The engine
    /// calls it after [`backward`](crate::backward) with `once` has passed the rule's
    /// node.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    ///
    /// use tracker_core::{Arg, Extern, Output, Result, Tracked, Value, apply_extern, backward};
    ///
    /// /// The identity, which notes when it is released.
    /// struct Noted(AtomicBool);
    ///
    /// impl Extern for Noted {
    ///     fn name(&self) -> &'static str {
    ///         "noted"
    ///     }
    ///     fn pullback(&self, dy: Arg) -> Result<Vec<Option<Arg>>> {
    ///         Ok(vec![Some(dy)])
    ///     }
    ///     fn release(&self) {
    ///         self.0.store(true, Ordering::SeqCst);
    ///     }
    /// }
    ///
    /// # fn main() -> Result<()> {
    /// let rule = Arc::new(Noted(AtomicBool::new(false)));
    /// let x = Tracked::param(Value::scalar(2.0, tracker_core::Dtype::F64));
    /// let Output::Tracked(y) = apply_extern(rule.clone(), &[Arg::Tracked(x.clone())], x.value())?
    /// else {
    ///     unreachable!("x is tracked")
    /// };
    /// assert!(!rule.0.load(Ordering::SeqCst));
    /// backward(&y, None, true)?;
    /// assert!(rule.0.load(Ordering::SeqCst));
    /// assert_eq!(x.grad()?.item(), Some(1.0));
    /// # Ok(())
    /// # }
    /// ```
    fn release(&self);
}

impl Op {
    /// The op's name, as NumPy spells it: errors and the graph display use it.
    ///
    /// ```
    /// use tracker_core::Op;
    /// use tracker_core::ops::unary::Unary;
    ///
    /// assert_eq!(Op::Unary(Unary::Exp).name(), "exp");
    /// assert_eq!(Op::Matmul.name(), "matmul");
    /// ```
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
            Op::Matmul | Op::MatmulT { .. } => "matmul",
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

    /// [`Op::forward`] on the values `read` gives for `inputs`, their references
    /// gathered on the stack for one or two (collecting them into a vector costs as
    /// much as a scalar op's arithmetic).
    pub(crate) fn forward_each<'v, I>(
        &self,
        inputs: &'v [I],
        read: impl Fn(&'v I) -> Result<&'v Value>,
    ) -> Result<Value> {
        match inputs {
            [a] => self.forward(&[read(a)?]),
            [a, b] => self.forward(&[read(a)?, read(b)?]),
            _ => self.forward(&inputs.iter().map(read).collect::<Result<Vec<_>>>()?),
        }
    }

    /// The op's value, given its inputs' values (of one dtype where the op combines
    /// several: [`apply`](crate::apply) casts them first). Nothing is recorded.
    ///
    /// ```
    /// use tracker_core::ops::binary::Binary;
    /// use tracker_core::{Op, Value};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let a = Value::from_vec(&[2], vec![1.0, 2.0])?;
    /// let b = Value::from_vec(&[2], vec![3.0, 4.0])?;
    /// assert_eq!(Op::Binary(Binary::Mul).forward(&[&a, &b])?.to_f64_vec(), vec![3.0, 8.0]);
    /// assert!(Op::Matmul.forward(&[&a]).is_err()); // matmul takes two inputs
    /// # Ok(())
    /// # }
    /// ```
    pub fn forward(&self, inputs: &[&Value]) -> Result<Value> {
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
            (Op::MatmulT { ta, tb }, [x, y]) => linalg::matmul_t(x, y, *ta, *tb),
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
                message: format!("{}: got {} inputs", self.name(), inputs.len()),
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
            (Op::MatmulT { ta, tb }, [x1, x2]) => {
                linalg::matmul_t_pullback(b, (x1, need(0)), (x2, need(1)), dy, *ta, *tb)?
            }
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
/// the live tape ([`Live`](crate::Live)). Composite functions are written against it,
/// so one text computes on buffers, records on the tape, and runs inside pullbacks.
///
/// ```
/// use tracker_core::op::{Arrays, Eager};
/// use tracker_core::{Arg, Live, Tracked, Value, backward};
///
/// /// `x * x + x`, for any kind of arrays.
/// fn square_plus<B: Arrays>(b: &mut B, x: &B::A) -> tracker_core::Result<B::A> {
///     let square = b.mul(x, x)?;
///     b.add(&square, x)
/// }
///
/// # fn main() -> tracker_core::Result<()> {
/// let x = Value::from_vec(&[2], vec![1.0, 2.0])?;
/// assert_eq!(square_plus(&mut Eager, &x)?.to_f64_vec(), vec![2.0, 6.0]);
///
/// let p = Tracked::param(x);
/// let Arg::Tracked(y) = square_plus(&mut Live, &Arg::Tracked(p.clone()))? else {
///     unreachable!("p is tracked")
/// };
/// backward(&y.sum()?, None, true)?;
/// assert_eq!(p.grad()?.to_f64_vec(), vec![3.0, 5.0]); // 2x + 1
/// # Ok(())
/// # }
/// ```
pub trait Arrays {
    /// The array type: [`Value`] for [`Eager`], [`Arg`] for [`Live`](crate::Live).
    type A: Clone;

    /// Applies `op` to `inputs`.
    ///
    /// ```
    /// use tracker_core::op::{Arrays, Eager, Op};
    /// use tracker_core::ops::unary::Unary;
    /// use tracker_core::Value;
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let x = Value::from_vec(&[2], vec![-1.0, 2.0])?;
    /// assert_eq!(Eager.apply(Op::Unary(Unary::Abs), &[&x])?.to_f64_vec(), vec![1.0, 2.0]);
    /// # Ok(())
    /// # }
    /// ```
    fn apply(&mut self, op: Op, inputs: &[&Self::A]) -> Result<Self::A>;
    /// A constant (a mask, a scale): never differentiated.
    ///
    /// ```
    /// use tracker_core::op::{Arrays, Eager};
    /// use tracker_core::{Arg, Live, Value};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let c = Live.constant(Value::from_vec(&[1], vec![2.0])?)?;
    /// assert!(matches!(c, Arg::Value(_)));
    /// assert_eq!(Eager.constant(Value::from_vec(&[1], vec![2.0])?)?.item(), Some(2.0));
    /// # Ok(())
    /// # }
    /// ```
    fn constant(&mut self, value: Value) -> Result<Self::A>;
    /// The primal value of `a`: pullbacks read it only to build masks.
    ///
    /// ```
    /// use tracker_core::op::Arrays;
    /// use tracker_core::{Arg, Live, Tracked, Value};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let x = Arg::Tracked(Tracked::param(Value::from_vec(&[2], vec![1.0, 2.0])?));
    /// assert_eq!(Live.value(&x)?.to_f64_vec(), vec![1.0, 2.0]);
    /// # Ok(())
    /// # }
    /// ```
    fn value(&self, a: &Self::A) -> Result<Value>;
    /// The shape of `a`.
    ///
    /// ```
    /// use tracker_core::op::{Arrays, Eager};
    /// use tracker_core::Value;
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// assert_eq!(Eager.shape(&Value::from_vec(&[2, 1], vec![0.0; 2])?).as_slice(), &[2, 1]);
    /// # Ok(())
    /// # }
    /// ```
    fn shape(&self, a: &Self::A) -> Shape;
    /// The dtype of `a`.
    ///
    /// ```
    /// use tracker_core::op::{Arrays, Eager};
    /// use tracker_core::{Dtype, Value};
    ///
    /// assert_eq!(Eager.dtype(&Value::scalar(1.0, Dtype::F32)), Dtype::F32);
    /// ```
    fn dtype(&self, a: &Self::A) -> Dtype;
    /// `a + b`, with broadcasting.
    ///
    /// ```
    /// use tracker_core::op::{Arrays, Eager};
    /// use tracker_core::Value;
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let a = Value::from_vec(&[2], vec![1.0, 2.0])?;
    /// assert_eq!(Eager.add(&a, &a)?.to_f64_vec(), vec![2.0, 4.0]);
    /// # Ok(())
    /// # }
    /// ```
    fn add(&mut self, a: &Self::A, b: &Self::A) -> Result<Self::A> {
        self.apply(Op::Binary(Binary::Add), &[a, b])
    }

    /// `a * b`, with broadcasting.
    ///
    /// ```
    /// use tracker_core::op::{Arrays, Eager};
    /// use tracker_core::Value;
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let a = Value::from_vec(&[2], vec![1.0, 2.0])?;
    /// let b = Value::from_vec(&[2, 1], vec![1.0, 10.0])?;
    /// assert_eq!(Eager.mul(&a, &b)?.to_f64_vec(), vec![1.0, 2.0, 10.0, 20.0]);
    /// # Ok(())
    /// # }
    /// ```
    fn mul(&mut self, a: &Self::A, b: &Self::A) -> Result<Self::A> {
        self.apply(Op::Binary(Binary::Mul), &[a, b])
    }

    /// `a` under another shape of the same size; `a` itself when the shape is its own.
    ///
    /// ```
    /// use tracker_core::op::{Arrays, Eager};
    /// use tracker_core::Value;
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let a = Value::from_vec(&[4], vec![1.0, 2.0, 3.0, 4.0])?;
    /// assert_eq!(Eager.reshape(&a, &[2, 2])?.shape(), &[2, 2]);
    /// # Ok(())
    /// # }
    /// ```
    fn reshape(&mut self, a: &Self::A, shape: &[usize]) -> Result<Self::A> {
        if self.shape(a).as_slice() == shape {
            return Ok(a.clone());
        }
        self.apply(Op::Reshape(shape.into()), &[a])
    }

    /// `a` with its axes permuted by `perm`; `a` itself for the identity permutation.
    ///
    /// ```
    /// use tracker_core::op::{Arrays, Eager};
    /// use tracker_core::Value;
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let a = Value::from_vec(&[2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])?;
    /// let t = Eager.transpose(&a, &[1, 0])?;
    /// assert_eq!((t.shape(), t.to_f64_vec()), (&[3, 2][..], vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]));
    /// # Ok(())
    /// # }
    /// ```
    fn transpose(&mut self, a: &Self::A, perm: &[usize]) -> Result<Self::A> {
        if perm.iter().enumerate().all(|(k, &p)| k == p) {
            return Ok(a.clone());
        }
        self.apply(Op::Transpose(perm.into()), &[a])
    }

    /// `a` broadcast to `shape`; `a` itself when it has that shape.
    ///
    /// ```
    /// use tracker_core::op::{Arrays, Eager};
    /// use tracker_core::Value;
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let a = Value::from_vec(&[2], vec![1.0, 2.0])?;
    /// assert_eq!(Eager.broadcast_to(&a, &[2, 2])?.to_f64_vec(), vec![1.0, 2.0, 1.0, 2.0]);
    /// # Ok(())
    /// # }
    /// ```
    fn broadcast_to(&mut self, a: &Self::A, shape: &[usize]) -> Result<Self::A> {
        if self.shape(a).as_slice() == shape {
            return Ok(a.clone());
        }
        self.apply(Op::BroadcastTo(shape.into()), &[a])
    }

    /// Sums `a` back to `shape`, which broadcasts to `a`'s shape: the only place a
    /// gradient is reduced to an input's shape.
    ///
    /// ```
    /// use tracker_core::op::{Arrays, Eager};
    /// use tracker_core::Value;
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let g = Value::from_vec(&[2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])?;
    /// assert_eq!(Eager.sum_to(&g, &[3])?.to_f64_vec(), vec![5.0, 7.0, 9.0]);
    /// assert_eq!(Eager.sum_to(&g, &[2, 1])?.to_f64_vec(), vec![6.0, 15.0]);
    /// # Ok(())
    /// # }
    /// ```
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
    ///
    /// ```
    /// use tracker_core::op::{Arrays, Eager};
    /// use tracker_core::{Dtype, Value};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let half = Eager.scalar_like(&Value::scalar(3.0, Dtype::F32), 0.5)?;
    /// assert_eq!((half.dtype(), half.item()), (Dtype::F32, Some(0.5)));
    /// # Ok(())
    /// # }
    /// ```
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
///
/// ```
/// use tracker_core::op::{Arrays, Eager};
/// use tracker_core::ops::reduce::cumprod;
/// use tracker_core::Value;
///
/// # fn main() -> tracker_core::Result<()> {
/// let x = Value::from_vec(&[4], vec![1.0, 2.0, 3.0, 4.0])?;
/// assert_eq!(cumprod(&mut Eager, &x, 0)?.to_f64_vec(), vec![1.0, 2.0, 6.0, 24.0]);
/// # Ok(())
/// # }
/// ```
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
        crate::value::copy_shape(a.shape())
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
