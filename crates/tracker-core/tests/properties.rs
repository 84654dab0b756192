//! Property tests of the core, from Rust.
//!
//! Random programs — elementwise, reduce, broadcast, shape, index and matmul ops over
//! random small shapes — are checked against finite differences to first and second
//! order, and in float32 against float64. Each program is resolved once at its input:
//! every op is chosen with the values it will see at hand, so a `log` gets a positive
//! argument, an `abs` or a `maximum` stays `MARGIN` away from its kink and a `max` has
//! a unique maximiser; the resolved program is then replayed, traced or plain, at any
//! point.
//!
//! Random invalid shapes, axes, indices and argument counts handed to `apply` and to
//! the planners come back as `Err`, never as a panic (proptest reports a panic as a
//! failure), and extreme slice steps, shifts and shapes are computed exactly.

use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tracker_core::broadcast::{BroadcastOffsets, broadcast_shapes};
use tracker_core::gradcheck::{max_abs_diff, numerical_gradient};
use tracker_core::ops::binary::Binary;
use tracker_core::ops::index::{IndexItem, plan};
use tracker_core::ops::reduce::{Reduce, normalize_axes};
use tracker_core::ops::shape::{Mask, resolve_shape};
use tracker_core::ops::unary::Unary;
use tracker_core::{
    Arg, Dtype, Error, Op, Output, Result, Shape, Tracked, Value, apply, gradient, hessian,
};

/// How far every value stays from a kink, a tie or a threshold.
const MARGIN: f64 = 0.05;
/// Values larger than this are scaled back by a constant factor.
const LIMIT: f64 = 4.0;
/// No intermediate value grows past this many elements.
const MAX_SIZE: usize = 24;
/// The finite-difference step.
const STEP: f64 = 1e-5;

fn usage(message: impl Into<String>) -> Error {
    Error::Usage {
        message: message.into(),
    }
}

fn fail(e: Error) -> TestCaseError {
    TestCaseError::fail(format!("unexpected error: {e}"))
}

/// A small deterministic generator, seeded by proptest.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    /// A number in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        let r = self.next() as usize;
        r.checked_rem(n).unwrap_or(0)
    }

    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
}

fn size(shape: &[usize]) -> usize {
    shape.iter().product()
}

fn maximum(values: &[f64]) -> f64 {
    values.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v))
}

fn minimum(values: &[f64]) -> f64 {
    values.iter().fold(f64::INFINITY, |m, &v| m.min(v))
}

/// An operand of an instruction: an earlier value of the program, or a constant.
#[derive(Clone)]
enum Src {
    Node(usize),
    Const(Value),
}

/// A program resolved at its input: node 0 is the input, node `k` the result of
/// instruction `k - 1`.
struct Program {
    instrs: Vec<(Op, Vec<Src>)>,
    /// Every node's value at the input the program was resolved at.
    values: Vec<Value>,
    /// The nodes later instructions draw their operands from.
    pool: Vec<usize>,
    text: Vec<String>,
}

impl Program {
    fn new(x: &Value) -> Program {
        Program {
            instrs: Vec::new(),
            values: vec![x.clone()],
            pool: vec![0],
            text: Vec::new(),
        }
    }

    fn value(&self, node: usize) -> Result<&Value> {
        self.values
            .get(node)
            .ok_or_else(|| usage(format!("no node {node}")))
    }

    fn shape(&self, node: usize) -> Result<Shape> {
        Ok(self.value(node)?.shape().into())
    }

    fn data(&self, node: usize) -> Result<Vec<f64>> {
        Ok(self.value(node)?.to_f64_vec())
    }

    /// Records `op` on `args` and computes its value at the program's input.
    fn emit(&mut self, op: Op, args: Vec<Src>, keep: bool) -> Result<usize> {
        let base = args
            .iter()
            .map(|s| match s {
                Src::Node(k) => self.value(*k).cloned().map(Arg::Value),
                Src::Const(v) => Ok(Arg::Value(v.clone())),
            })
            .collect::<Result<Vec<_>>>()?;
        let out = apply(op.clone(), &base)?.value();
        let names: Vec<String> = args
            .iter()
            .map(|s| match s {
                Src::Node(k) => format!("v{k}"),
                Src::Const(v) => format!("{v:?}"),
            })
            .collect();
        let node = self.values.len();
        self.text.push(format!(
            "v{node} = {}({}) -> {:?}",
            op.name(),
            names.join(", "),
            out.shape()
        ));
        self.instrs.push((op, args));
        self.values.push(out);
        if keep {
            self.pool.push(node);
        }
        Ok(node)
    }

    fn pick(&self, rng: &mut Rng) -> usize {
        let recent = if rng.coin() {
            self.pool.len().min(3)
        } else {
            self.pool.len()
        };
        let from = self.pool.len() - recent;
        self.pool
            .get(from + rng.below(recent))
            .copied()
            .unwrap_or(0)
    }

    /// Replaces `node` in the pool by its scaled copy when its values exceed `LIMIT`.
    fn rescale(&mut self, node: usize) -> Result<usize> {
        let top = maximum(&self.data(node)?.iter().map(|v| v.abs()).collect::<Vec<_>>());
        if top <= LIMIT {
            return Ok(node);
        }
        let factor = Value::scalar(LIMIT / top, Dtype::F64);
        let scaled = self.emit(
            Op::Binary(Binary::Mul),
            vec![Src::Node(node), Src::Const(factor)],
            false,
        )?;
        for slot in self.pool.iter_mut().filter(|slot| **slot == node) {
            *slot = scaled;
        }
        Ok(scaled)
    }

    /// `node`, made at least 0.3 everywhere (as `x * x + 0.5` if it is not already).
    fn positive(&mut self, node: usize) -> Result<usize> {
        let v = self.data(node)?;
        if v.is_empty() || minimum(&v) >= 0.3 {
            return Ok(node);
        }
        let square = self.emit(
            Op::Binary(Binary::Mul),
            vec![Src::Node(node), Src::Node(node)],
            false,
        )?;
        self.emit(
            Op::Binary(Binary::Add),
            vec![
                Src::Node(square),
                Src::Const(Value::scalar(0.5, Dtype::F64)),
            ],
            false,
        )
    }

    /// `node`, scaled into [-0.9, 0.9] if it is not already (the domain of arcsin).
    fn bounded(&mut self, node: usize) -> Result<usize> {
        let top = maximum(&self.data(node)?.iter().map(|v| v.abs()).collect::<Vec<_>>());
        if top <= 0.9 {
            return Ok(node);
        }
        self.emit(
            Op::Binary(Binary::Mul),
            vec![
                Src::Node(node),
                Src::Const(Value::scalar(0.9 / top, Dtype::F64)),
            ],
            false,
        )
    }

    /// `node` plus a constant `c` such that `differences - c` stays `MARGIN` from 0.
    fn shifted(&mut self, node: usize, differences: &[f64]) -> Result<usize> {
        let clear = |c: f64| differences.iter().all(|d| (d - c).abs() >= MARGIN);
        if clear(0.0) {
            return Ok(node);
        }
        let top = maximum(&differences.iter().map(|d| d.abs()).collect::<Vec<_>>());
        let c = [0.5, -0.5, 1.0, -1.0, 2.0]
            .into_iter()
            .find(|&c| clear(c))
            .unwrap_or(top + 1.0);
        self.emit(
            Op::Binary(Binary::Add),
            vec![Src::Node(node), Src::Const(Value::scalar(c, Dtype::F64))],
            false,
        )
    }

    /// `node`, made to have a unique maximum and minimum in each group of `axes`.
    fn untied(&mut self, node: usize, axes: &[usize]) -> Result<usize> {
        let shape = self.shape(node)?;
        let v = self.data(node)?;
        let kept: Shape = shape
            .iter()
            .enumerate()
            .map(|(k, &d)| if axes.contains(&k) { 1 } else { d })
            .collect();
        let mut groups: Vec<Vec<f64>> = vec![Vec::new(); size(&kept)];
        for (&x, g) in v.iter().zip(BroadcastOffsets::new(&kept, &shape)) {
            if let Some(group) = groups.get_mut(g) {
                group.push(x);
            }
        }
        let unique = groups.iter_mut().all(|group| {
            group.sort_by(f64::total_cmp);
            group.windows(2).all(|w| match w {
                [a, b] => b - a >= MARGIN,
                _ => true,
            })
        });
        if unique {
            return Ok(node);
        }
        let spread = maximum(&v) - minimum(&v) + 2.0 * MARGIN;
        let ramp = (0..v.len()).map(|k| k as f64 * spread).collect();
        let ramp = Value::from_vec(&shape, ramp)?;
        self.emit(
            Op::Binary(Binary::Add),
            vec![Src::Node(node), Src::Const(ramp)],
            false,
        )
    }

    /// Another pool value that broadcasts with `node`, or the sum of one if none does.
    fn partner(&mut self, node: usize, rng: &mut Rng) -> Result<usize> {
        let other = self.pick(rng);
        let fits = broadcast_shapes("fuzz", &self.shape(node)?, &self.shape(other)?)
            .is_ok_and(|joint| size(&joint) <= MAX_SIZE);
        if fits {
            return Ok(other);
        }
        let ndim = self.shape(other)?.len();
        let sum = self.emit(
            Op::Reduce {
                kind: Reduce::Sum,
                axes: (0..ndim).collect(),
                keepdims: false,
            },
            vec![Src::Node(other)],
            false,
        )?;
        self.rescale(sum)
    }

    /// A shape that broadcasts to `shape`: leading axes dropped, some set to 1.
    fn sub_shape(shape: &[usize], rng: &mut Rng) -> Shape {
        let drop = rng.below(shape.len() + 1);
        shape
            .iter()
            .skip(drop)
            .map(|&d| if rng.coin() { d } else { 1 })
            .collect()
    }

    /// A constant of `shape`, multiples of 1/32 in `[low, high]`, never 0.
    fn constant(shape: &[usize], low: f64, high: f64, rng: &mut Rng) -> Result<Value> {
        let steps = ((high - low) * 32.0) as usize + 1;
        let values = (0..size(shape))
            .map(|_| {
                let v = low + rng.below(steps) as f64 / 32.0;
                if v == 0.0 { 0.75 } else { v }
            })
            .collect();
        Value::from_vec(shape, values)
    }

    fn unary(&mut self, rng: &mut Rng) -> Result<usize> {
        let node = self.pick(rng);
        // The piecewise constant ops are left out: finite differences across their steps
        // mean nothing (their zero gradients are checked in the gradcheck table).
        let smooth: Vec<Unary> = Unary::ALL
            .iter()
            .copied()
            .filter(|u| {
                !matches!(
                    u,
                    Unary::Sign | Unary::Floor | Unary::Ceil | Unary::Rint | Unary::Trunc
                )
            })
            .collect();
        let op = smooth
            .get(rng.below(smooth.len()))
            .copied()
            .unwrap_or(Unary::Exp);
        let arg = match op {
            Unary::Log
            | Unary::Log2
            | Unary::Log10
            | Unary::Log1p
            | Unary::Sqrt
            | Unary::Cbrt
            | Unary::Recip => self.positive(node)?,
            Unary::Arccosh => {
                let positive = self.positive(node)?;
                self.emit(
                    Op::Binary(Binary::Add),
                    vec![
                        Src::Node(positive),
                        Src::Const(Value::scalar(1.0, Dtype::F64)),
                    ],
                    false,
                )?
            }
            Unary::Arcsin | Unary::Arccos | Unary::Arctanh | Unary::Tan => self.bounded(node)?,
            // Kinks at 0 (in the first or the second derivative): moved off it.
            Unary::Abs | Unary::Relu | Unary::Elu | Unary::Selu => {
                let negated: Vec<f64> = self.data(node)?.iter().map(|v| -v).collect();
                self.shifted(node, &negated)?
            }
            _ => node,
        };
        let out = self.emit(Op::Unary(op), vec![Src::Node(arg)], true)?;
        self.rescale(out)
    }

    fn binary(&mut self, rng: &mut Rng) -> Result<usize> {
        let a = self.pick(rng);
        // The ops that step (remainders, floor division, the sign of copysign) are left
        // out, as the piecewise constant unary ops are.
        let smooth: Vec<Binary> = Binary::ALL
            .iter()
            .copied()
            .filter(|b| {
                !matches!(
                    b,
                    Binary::Remainder | Binary::Fmod | Binary::FloorDivide | Binary::Copysign
                )
            })
            .collect();
        let op = smooth
            .get(rng.below(smooth.len()))
            .copied()
            .unwrap_or(Binary::Add);
        let mut b = if rng.below(3) == 0 {
            let shape = Self::sub_shape(&self.shape(a)?, rng);
            let low = if matches!(op, Binary::Div | Binary::Pow) {
                0.5
            } else {
                -1.0
            };
            Src::Const(Self::constant(&shape, low, 1.5, rng)?)
        } else {
            Src::Node(self.partner(a, rng)?)
        };
        let mut a = Src::Node(a);
        if rng.coin() {
            std::mem::swap(&mut a, &mut b);
        }
        match (op, &a, &b) {
            (Binary::Div, _, Src::Node(k)) => b = Src::Node(self.positive(*k)?),
            (Binary::Pow, Src::Node(k), _) => a = Src::Node(self.positive(*k)?),
            (Binary::Maximum | Binary::Minimum | Binary::Fmax | Binary::Fmin, _, _) => {
                let value = |p: &Program, s: &Src| match s {
                    Src::Node(k) => p.value(*k).cloned(),
                    Src::Const(v) => Ok(v.clone()),
                };
                let d = Binary::Sub
                    .forward(&value(self, &a)?, &value(self, &b)?)?
                    .to_f64_vec();
                b = match b {
                    Src::Node(k) => Src::Node(self.shifted(k, &d)?),
                    Src::Const(c) => {
                        let node = self.emit(
                            Op::Binary(Binary::Add),
                            vec![Src::Const(c), Src::Const(Value::scalar(0.0, Dtype::F64))],
                            false,
                        )?;
                        Src::Node(self.shifted(node, &d)?)
                    }
                };
            }
            _ => {}
        }
        let out = self.emit(Op::Binary(op), vec![a, b], true)?;
        self.rescale(out)
    }

    fn reduce(&mut self, rng: &mut Rng) -> Result<usize> {
        let node = self.pick(rng);
        let shape = self.shape(node)?;
        let mut kind = Reduce::ALL
            .get(rng.below(Reduce::ALL.len()))
            .copied()
            .unwrap_or(Reduce::Sum);
        let axes: Vec<usize> = (0..shape.len()).filter(|_| rng.coin()).collect();
        let reduced: usize = axes.iter().filter_map(|&k| shape.get(k)).product();
        if size(&shape) == 0 || (reduced == 0 && kind == Reduce::Mean) {
            kind = Reduce::Sum;
        }
        let arg = match kind {
            Reduce::Max | Reduce::Min => self.untied(node, &axes)?,
            _ => node,
        };
        let op = Op::Reduce {
            kind,
            axes: axes.into_iter().collect(),
            keepdims: rng.coin(),
        };
        let out = self.emit(op, vec![Src::Node(arg)], true)?;
        self.rescale(out)
    }

    fn transpose(&mut self, rng: &mut Rng) -> Result<usize> {
        let node = self.pick(rng);
        let mut perm: Shape = (0..self.shape(node)?.len()).collect();
        for k in (1..perm.len()).rev() {
            perm.swap(k, rng.below(k + 1));
        }
        self.emit(Op::Transpose(perm), vec![Src::Node(node)], true)
    }

    fn reshape(&mut self, rng: &mut Rng) -> Result<usize> {
        let node = self.pick(rng);
        let mut rest = size(&self.shape(node)?);
        let mut dims = Shape::new();
        for _ in 0..rng.below(3) {
            let divisors: Vec<usize> = (1..=rest.min(4))
                .filter(|d| rest.is_multiple_of(*d))
                .collect();
            let d = divisors
                .get(rng.below(divisors.len()))
                .copied()
                .unwrap_or(0);
            dims.push(d);
            rest = rest.checked_div(d).unwrap_or(0);
        }
        if rest != 1 || dims.is_empty() && rng.coin() {
            dims.push(rest);
        }
        self.emit(Op::Reshape(dims), vec![Src::Node(node)], true)
    }

    fn broadcast(&mut self, rng: &mut Rng) -> Result<usize> {
        let node = self.pick(rng);
        let shape = self.shape(node)?;
        let mut target: Shape = shape
            .iter()
            .map(|&d| if d == 1 && rng.coin() { 2 } else { d })
            .collect();
        if rng.coin() {
            target.insert(0, 1 + rng.below(2));
        }
        if size(&target) > MAX_SIZE {
            return Ok(node);
        }
        self.emit(Op::BroadcastTo(target), vec![Src::Node(node)], true)
    }

    fn index(&mut self, rng: &mut Rng) -> Result<usize> {
        let node = self.pick(rng);
        let shape = self.shape(node)?;
        let mut items = Vec::new();
        for &n in shape.iter().take(rng.below(shape.len() + 1)) {
            let signed = n as isize;
            match rng.below(4) {
                0 if n > 0 => items.push(IndexItem::Int(rng.below(2 * n) as isize - signed)),
                1 if n > 0 => {
                    let count = rng.below(4);
                    let values = (0..count)
                        .map(|_| rng.below(2 * n) as isize - signed)
                        .collect();
                    items.push(IndexItem::Array {
                        shape: Shape::from_slice(&[count]),
                        values,
                    });
                }
                2 => items.push(IndexItem::NewAxis),
                _ => {
                    let mut bound =
                        || (rng.coin()).then(|| rng.below(2 * n + 5) as isize - signed - 2);
                    let (start, stop) = (bound(), bound());
                    let step = [None, Some(1), Some(2), Some(-1), Some(-2)]
                        .get(rng.below(5))
                        .copied()
                        .flatten();
                    items.push(IndexItem::Slice { start, stop, step });
                }
            }
        }
        if rng.coin() {
            items.insert(0, IndexItem::Ellipsis);
        }
        match plan(&shape, &items) {
            Ok(g) if size(&g.shape) <= MAX_SIZE => {
                self.emit(Op::Gather(Arc::new(g)), vec![Src::Node(node)], true)
            }
            _ => Ok(node),
        }
    }

    fn matmul(&mut self, rng: &mut Rng) -> Result<usize> {
        let node = self.pick(rng);
        let n = size(&self.shape(node)?);
        let rows = self.shape(node)?.first().copied().unwrap_or(1);
        let matrix = rng.coin() && rows > 0 && n.is_multiple_of(rows);
        let a_shape: Shape = if matrix {
            Shape::from_slice(&[rows, n / rows])
        } else {
            Shape::from_slice(&[n])
        };
        let a = self.emit(Op::Reshape(a_shape.clone()), vec![Src::Node(node)], false)?;
        let k = a_shape.last().copied().unwrap_or(1);
        let cols = 1 + rng.below(3);
        let b_shape: Shape = if rng.coin() {
            Shape::from_slice(&[k, cols])
        } else {
            Shape::from_slice(&[k])
        };
        let other = self.pick(rng);
        let other_size = size(&self.shape(other)?);
        let b = if rng.coin() && other_size > 0 {
            // a tracked operand: elements of another value, gathered into shape
            let flat = self.emit(
                Op::Reshape(Shape::from_slice(&[other_size])),
                vec![Src::Node(other)],
                false,
            )?;
            let values = (0..size(&b_shape))
                .map(|_| rng.below(other_size) as isize)
                .collect();
            let items = [IndexItem::Array {
                shape: b_shape.clone(),
                values,
            }];
            let g = plan(&[other_size], &items)?;
            Src::Node(self.emit(Op::Gather(Arc::new(g)), vec![Src::Node(flat)], false)?)
        } else {
            Src::Const(Self::constant(&b_shape, -1.0, 1.0, rng)?)
        };
        let out = self.emit(Op::Matmul, vec![Src::Node(a), b], true)?;
        self.rescale(out)
    }

    fn select(&mut self, rng: &mut Rng) -> Result<usize> {
        let a = self.pick(rng);
        let b = self.partner(a, rng)?;
        let joint = broadcast_shapes("fuzz", &self.shape(a)?, &self.shape(b)?)?;
        let shape = Self::sub_shape(&joint, rng);
        let bits = (0..size(&shape)).map(|_| rng.coin()).collect();
        let mask = Arc::new(Mask { shape, bits });
        self.emit(Op::Where(mask), vec![Src::Node(a), Src::Node(b)], true)
    }

    fn shift(&mut self, rng: &mut Rng) -> Result<usize> {
        let node = self.pick(rng);
        let ndim = self.shape(node)?.len();
        if ndim == 0 {
            return Ok(node);
        }
        let op = Op::Shift {
            axis: rng.below(ndim),
            by: rng.below(5) as isize - 2,
            fill: 0.25,
        };
        self.emit(op, vec![Src::Node(node)], true)
    }

    /// A random program of `steps` ops at `x`, ending in a weighted sum.
    fn random(x: &Value, steps: usize, seed: u64) -> Result<Program> {
        let mut program = Program::new(x);
        let mut rng = Rng(seed);
        for _ in 0..steps {
            match rng.below(12) {
                0 | 1 => program.unary(&mut rng)?,
                2 | 3 => program.binary(&mut rng)?,
                4 => program.reduce(&mut rng)?,
                5 => program.transpose(&mut rng)?,
                6 => program.reshape(&mut rng)?,
                7 => program.broadcast(&mut rng)?,
                8 => program.index(&mut rng)?,
                9 => program.matmul(&mut rng)?,
                10 => program.select(&mut rng)?,
                _ => program.shift(&mut rng)?,
            };
        }
        // the loss: weighted sums of the last value and up to two others
        let mut terms = vec![program.pool.last().copied().unwrap_or(0)];
        for _ in 0..rng.below(3) {
            terms.push(program.pick(&mut rng));
        }
        let mut loss = None;
        for node in terms {
            let shape = program.shape(node)?;
            let weights = Self::constant(&shape, -1.0, 1.0, &mut rng)?;
            let weighted = program.emit(
                Op::Binary(Binary::Mul),
                vec![Src::Node(node), Src::Const(weights)],
                false,
            )?;
            let term = program.emit(
                Op::Reduce {
                    kind: Reduce::Sum,
                    axes: (0..shape.len()).collect(),
                    keepdims: false,
                },
                vec![Src::Node(weighted)],
                false,
            )?;
            loss = Some(match loss {
                None => term,
                Some(total) => program.emit(
                    Op::Binary(Binary::Add),
                    vec![Src::Node(total), Src::Node(term)],
                    false,
                )?,
            });
        }
        Ok(program)
    }

    /// The program at `x`, traced or plain (constants take `x`'s dtype).
    fn run(&self, x: Arg) -> Result<Arg> {
        let dtype = x.value().dtype();
        let mut nodes = vec![x];
        for (op, args) in &self.instrs {
            let args = args
                .iter()
                .map(|s| match s {
                    Src::Node(k) => nodes.get(*k).cloned().ok_or_else(|| usage("no node")),
                    Src::Const(v) => v.cast(dtype).map(Arg::Value),
                })
                .collect::<Result<Vec<_>>>()?;
            nodes.push(match apply(op.clone(), &args)? {
                Output::Tracked(t) => Arg::Tracked(t),
                Output::Value(v) => Arg::Value(v),
            });
        }
        nodes.pop().ok_or_else(|| usage("empty program"))
    }

    fn traced(&self, x: &Tracked) -> Result<Tracked> {
        match self.run(Arg::Tracked(x.clone()))? {
            Arg::Tracked(t) => Ok(t),
            Arg::Value(_) => Err(usage("the loss was not recorded")),
        }
    }

    fn loss(&self, x: &Value) -> Result<f64> {
        self.run(Arg::Value(x.clone()))?
            .value()
            .item()
            .ok_or_else(|| usage("the loss is not a scalar"))
    }

    fn listing(&self) -> String {
        self.text.join("\n")
    }
}

/// A random input: a shape of up to 3 axes and values in [0.5, 1.5].
fn inputs() -> impl Strategy<Value = (Vec<usize>, Vec<f64>)> {
    prop::collection::vec(1usize..=3, 0..=3).prop_flat_map(|shape| {
        let n = size(&shape);
        (Just(shape), prop::collection::vec(0.5f64..1.5, n))
    })
}

fn check_program(
    shape: &[usize],
    values: Vec<f64>,
    steps: usize,
    seed: u64,
) -> std::result::Result<(), TestCaseError> {
    let x = Value::from_vec(shape, values).map_err(fail)?;
    let program = Program::random(&x, steps, seed).map_err(fail)?;
    let listing = program.listing();
    let f = |t: &Tracked| program.traced(t);

    // first order
    let analytic = gradient(f, &x).map_err(fail)?;
    let numeric = numerical_gradient(|x| program.loss(x), &x, STEP).map_err(fail)?;
    let scale = 1.0
        + maximum(
            &numeric
                .to_f64_vec()
                .iter()
                .map(|v| v.abs())
                .collect::<Vec<_>>(),
        )
        .max(0.0);
    let first = max_abs_diff(&analytic, &numeric);
    prop_assert_eq!(analytic.shape(), x.shape());
    prop_assert!(
        first <= 1e-6 * scale,
        "gradient off by {:e}:\n{:?}\n{:?}\n{}",
        first,
        analytic,
        numeric,
        listing
    );

    // second order: the Hessian against central differences of the gradient
    let n = x.len();
    let h = hessian(f, &x).map_err(fail)?.to_f64_vec();
    prop_assert_eq!(h.len(), n * n);
    let base = x.to_f64_vec();
    let mut worst = 0.0f64;
    let mut hscale = 1.0f64;
    for k in 0..n {
        let at = |delta: f64| -> Result<Vec<f64>> {
            let mut moved = base.clone();
            if let Some(v) = moved.get_mut(k) {
                *v += delta;
            }
            Ok(gradient(f, &Value::from_vec(shape, moved)?)?.to_f64_vec())
        };
        let (up, down) = (at(STEP).map_err(fail)?, at(-STEP).map_err(fail)?);
        for (i, (u, d)) in up.iter().zip(&down).enumerate() {
            let column = (u - d) / (2.0 * STEP);
            let got = h.get(i * n + k).copied().unwrap_or(f64::NAN);
            hscale = hscale.max(1.0 + column.abs());
            worst = worst.max((got - column).abs());
        }
    }
    prop_assert!(
        worst <= 1e-5 * hscale,
        "Hessian off by {:e}\n{}",
        worst,
        listing
    );

    // float32: the same program runs in float32 and agrees with float64
    let x32 = x.cast(Dtype::F32).map_err(fail)?;
    let loss32 = program.run(Arg::Value(x32.clone())).map_err(fail)?.value();
    prop_assert_eq!(loss32.dtype(), Dtype::F32, "{}", listing);
    let g32 = gradient(f, &x32).map_err(fail)?;
    prop_assert_eq!(g32.dtype(), Dtype::F32, "{}", listing);
    let off = max_abs_diff(&g32, &analytic);
    prop_assert!(
        off <= 1e-3 * scale,
        "float32 gradient off by {:e}\n{}",
        off,
        listing
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 1000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_programs_match_finite_differences(
        (shape, values) in inputs(),
        steps in 1usize..8,
        seed in any::<u64>(),
    ) {
        check_program(&shape, values, steps, seed)?;
    }
}

// Invalid arguments: `Err`, never a panic

/// A tracked or plain argument of `shape`.
fn arg(shape: &[usize], tracked: bool) -> Result<Arg> {
    let v = Value::from_vec(shape, (0..size(shape)).map(|k| k as f64 + 0.5).collect())?;
    Ok(if tracked {
        Arg::Tracked(Tracked::param(v))
    } else {
        Arg::Value(v)
    })
}

fn small_shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0usize..=3, 0..=4)
}

/// Sizes and offsets, sometimes far too large.
fn extreme_usize() -> impl Strategy<Value = usize> {
    prop_oneof![
        0usize..6,
        Just(usize::MAX),
        Just(1usize << 32),
        Just(1usize << 62),
        Just(isize::MAX as usize),
    ]
}

fn extreme_isize() -> impl Strategy<Value = isize> {
    prop_oneof![
        -6isize..6,
        Just(isize::MAX),
        Just(isize::MIN),
        Just(isize::MAX - 1),
        Just(isize::MIN + 1),
        Just(1isize << 40),
        Just(-(1isize << 40)),
    ]
}

/// An invalid op and its arguments, described for the failure message.
fn invalid_case(
    kind: u8,
    a: &[usize],
    b: &[usize],
    numbers: &[usize],
    tracked: bool,
) -> Result<(String, Op, Vec<Arg>)> {
    let ndim = a.len();
    let first = numbers.first().copied().unwrap_or(0);
    let x = arg(a, tracked)?;
    Ok(match kind % 11 {
        0 => {
            // an axis out of range
            let mut axes: tracker_core::op::Axes =
                numbers.iter().map(|&k| k % (ndim + 1)).collect();
            axes.push(ndim.saturating_add(first));
            axes.sort_unstable();
            axes.dedup();
            let op = Op::Reduce {
                kind: Reduce::Sum,
                axes: axes.clone(),
                keepdims: first % 2 == 0,
            };
            (format!("sum over {axes:?} of {a:?}"), op, vec![x])
        }
        1 => {
            // not a permutation
            let mut perm: Shape = (0..ndim).collect();
            perm.push(first % (ndim + 2));
            (
                format!("transpose {a:?} by {perm:?}"),
                Op::Transpose(perm),
                vec![x],
            )
        }
        2 => {
            // a shape of another size
            let mut shape: Shape = numbers.iter().copied().collect();
            if size_checked(&shape) == Some(size(a)) {
                shape.push(2);
                if size(a) == 0 {
                    shape = Shape::from_slice(&[1]);
                }
            }
            (
                format!("reshape {a:?} to {shape:?}"),
                Op::Reshape(shape),
                vec![x],
            )
        }
        3 => {
            // a target the array does not broadcast to: one of its axes changed, or a
            // size that overflows
            let mut target: Shape = a.iter().copied().collect();
            match target.iter_mut().find(|d| **d != 1) {
                Some(d) => *d += 1,
                None => target = Shape::from_slice(&[usize::MAX, 3]),
            }
            (
                format!("broadcast {a:?} to {target:?}"),
                Op::BroadcastTo(target),
                vec![x],
            )
        }
        4 => {
            // operands that do not broadcast together
            let (a, b): (Vec<usize>, Vec<usize>) = match a.iter().rposition(|&d| d != 1) {
                Some(k) => {
                    let mut b = vec![1; a.len() - k];
                    if let (Some(d), Some(&ak)) = (b.first_mut(), a.get(k)) {
                        *d = if ak == 0 { 2 } else { ak + 1 };
                    }
                    (a.to_vec(), b)
                }
                None => (vec![2], vec![3]),
            };
            let op = Binary::ALL
                .get(first % Binary::ALL.len())
                .copied()
                .unwrap_or(Binary::Add);
            let (x, y) = (arg(&a, tracked)?, arg(&b, !tracked)?);
            (
                format!("{} of {a:?} and {b:?}", op.name()),
                Op::Binary(op),
                vec![x, y],
            )
        }
        5 => {
            // matmul: misaligned (b's contracted axis one longer than a's last), or 0-d
            let b: Vec<usize> = if !a.is_empty() && !b.is_empty() {
                let k = a.last().copied().unwrap_or(0);
                let mut b = b.to_vec();
                let at = b.len().saturating_sub(2);
                if let Some(d) = b.get_mut(at) {
                    *d = k + 1;
                }
                b
            } else {
                b.to_vec()
            };
            let b = if a.is_empty() { vec![2, 2, 2] } else { b };
            let y = arg(&b, !tracked)?;
            (format!("matmul of {a:?} and {b:?}"), Op::Matmul, vec![x, y])
        }
        6 => {
            // a mask whose bits do not fill its shape, or that does not broadcast
            let shape: Shape = b.iter().copied().collect();
            let bits = vec![true; size(&shape) + 1 + first % 3];
            let mask = Arc::new(Mask {
                shape: shape.clone(),
                bits,
            });
            let y = arg(a, !tracked)?;
            (
                format!("where over mask {shape:?} (wrong bit count) of {a:?}"),
                Op::Where(mask),
                vec![x, y],
            )
        }
        7 => {
            // a gather planned for another shape
            let mut other: Vec<usize> = a.to_vec();
            other.push(2 + first % 3);
            let g = plan(&other, &[IndexItem::Ellipsis])?;
            (
                format!("gather planned for {other:?} from {a:?}"),
                Op::Gather(Arc::new(g)),
                vec![x],
            )
        }
        8 => {
            // a scatter of a piece of the wrong shape
            let mut target = a.to_vec();
            target.push(2);
            let g = plan(&target, &[IndexItem::Ellipsis, IndexItem::Int(0)])?;
            let mut piece = a.to_vec();
            piece.push(3 + first % 2);
            let y = arg(&piece, tracked)?;
            (
                format!("scatter {piece:?} planned as {a:?} into {target:?}"),
                Op::Scatter(Arc::new(g)),
                vec![y],
            )
        }
        9 => {
            let axis = ndim.saturating_add(first);
            let op = Op::Shift {
                axis,
                by: 1,
                fill: 0.0,
            };
            (format!("shift {a:?} along axis {axis}"), op, vec![x])
        }
        _ => {
            // the wrong number of arguments
            let count = first % 4;
            let args = (0..count)
                .map(|k| arg(a, k % 2 == 0))
                .collect::<Result<Vec<_>>>()?;
            let op = match first % 5 {
                0 => Op::Unary(Unary::Exp),
                1 => Op::Binary(Binary::Mul),
                2 => Op::Matmul,
                3 => Op::Reduce {
                    kind: Reduce::Max,
                    axes: (0..ndim).collect(),
                    keepdims: false,
                },
                _ => Op::Const,
            };
            let wrong = match op {
                Op::Binary(_) | Op::Matmul => count != 2,
                Op::Const => true,
                _ => count != 1,
            };
            if !wrong {
                return invalid_case(kind, a, b, &[first + 1], tracked);
            }
            (format!("{} with {count} arguments", op.name()), op, args)
        }
    })
}

fn size_checked(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn invalid_arguments_to_apply_are_errors(
        kind in any::<u8>(),
        a in small_shape(),
        b in small_shape(),
        numbers in prop::collection::vec(extreme_usize(), 0..4),
        tracked in any::<bool>(),
    ) {
        let (what, op, args) = invalid_case(kind, &a, &b, &numbers, tracked).map_err(fail)?;
        match apply(op, &args) {
            Ok(out) => prop_assert!(false, "{} gave a value of shape {:?}", what, out.value().shape()),
            Err(e) => prop_assert!(!e.to_string().contains("internal"), "{}: {}", what, e),
        }
    }

    /// A slice of one axis reads what Python's `range(*slice(...).indices(n))` does.
    #[test]
    fn slices_match_python(
        n in 0usize..7,
        start in prop::option::of(extreme_isize()),
        stop in prop::option::of(extreme_isize()),
        step in prop::option::of(extreme_isize()),
    ) {
        let result = plan(&[n], &[IndexItem::Slice { start, stop, step }]);
        if step == Some(0) {
            prop_assert!(result.is_err());
        } else {
            let g = result.map_err(fail)?;
            prop_assert_eq!(g.positions(), python_slice(n, start, stop, step.unwrap_or(1)));
        }
    }

    /// Any index either plans positions inside the array or is an error.
    #[test]
    fn index_plans_stay_in_bounds(
        shape in small_shape(),
        raw in prop::collection::vec((0u8..6, extreme_isize(), extreme_isize(), extreme_isize()), 0..5),
    ) {
        let items: Vec<IndexItem> = raw
            .iter()
            .map(|&(kind, p, q, r)| match kind {
                0 => IndexItem::Int(p),
                1 => IndexItem::Slice { start: Some(p), stop: Some(q), step: Some(r) },
                2 => IndexItem::NewAxis,
                3 => IndexItem::Ellipsis,
                4 => IndexItem::Array { shape: Shape::from_slice(&[2]), values: vec![p, q] },
                _ => IndexItem::Slice { start: None, stop: None, step: Some(r) },
            })
            .collect();
        if let Ok(g) = plan(&shape, &items) {
            let n = size(&shape);
            let positions = g.positions();
            prop_assert!(positions.iter().all(|&p| p < n), "{:?}[{:?}] reads {:?}", shape, items, positions);
            prop_assert_eq!(positions.len(), size(&g.shape));
        }
    }

    /// A shift by any amount along any axis is computed exactly.
    #[test]
    fn shifts_match_a_reference(
        shape in prop::collection::vec(1usize..=3, 1..=3),
        axis in 0usize..3,
        by in extreme_isize(),
        tracked in any::<bool>(),
    ) {
        let x = arg(&shape, tracked).map_err(fail)?;
        let result = apply(Op::Shift { axis, by, fill: -1.0 }, &[x]);
        if axis >= shape.len() {
            prop_assert!(result.is_err());
        } else {
            let got = result.map_err(fail)?.value().to_f64_vec();
            prop_assert_eq!(got, shifted(&shape, axis, by));
        }
    }

    /// A requested shape resolves to one of the same size, or is an error.
    #[test]
    fn reshape_requests_resolve_or_fail(
        requested in prop::collection::vec(prop_oneof![Just(-1isize), extreme_isize()], 0..4),
        n in 0usize..25,
    ) {
        if let Ok(shape) = resolve_shape(&requested, n) {
            prop_assert_eq!(size_checked(&shape), Some(n), "{:?} for {}", requested, n);
        }
    }

    /// Axes normalise or fail; broadcasting huge shapes fails instead of overflowing.
    #[test]
    fn axes_and_broadcasts_never_panic(
        axes in prop::collection::vec(extreme_isize(), 0..4),
        ndim in 0usize..5,
        a in prop::collection::vec(extreme_usize(), 0..4),
        b in prop::collection::vec(extreme_usize(), 0..4),
        tracked in any::<bool>(),
    ) {
        if let Ok(normal) = normalize_axes("sum", Some(&axes), ndim) {
            prop_assert!(normal.iter().all(|&k| k < ndim));
        }
        if let Ok(joint) = broadcast_shapes("add", &a, &b) {
            prop_assert_eq!(joint.len(), a.len().max(b.len()));
        }
        // (sizes whose bytes overflow fail without asking the allocator; others in
        // between are left alone, as an allocator may promise them)
        let x = arg(&[], tracked).map_err(fail)?;
        match size_checked(&a) {
            Some(n) if n <= 4096 => {
                let result = apply(Op::BroadcastTo(a.iter().copied().collect()), &[x]);
                prop_assert!(result.is_ok(), "broadcast a scalar to {:?}", a);
            }
            Some(n) if n <= 1 << 60 => {}
            _ => {
                let result = apply(Op::BroadcastTo(a.iter().copied().collect()), &[x]);
                prop_assert!(result.is_err(), "broadcast a scalar to {:?}", a);
            }
        }
    }
}

/// Python's slice semantics, in exact (i128) arithmetic.
fn python_slice(n: usize, start: Option<isize>, stop: Option<isize>, step: isize) -> Vec<usize> {
    let (n, step) = (n as i128, step as i128);
    let clamp = |v: Option<isize>, default: i128, lo: i128, hi: i128| match v {
        None => default,
        Some(v) if v < 0 => (v as i128 + n).max(lo),
        Some(v) => (v as i128).min(hi),
    };
    let (mut i, stop) = if step > 0 {
        (clamp(start, 0, 0, n), clamp(stop, n, 0, n))
    } else {
        (clamp(start, n - 1, -1, n - 1), clamp(stop, -1, -1, n - 1))
    };
    let mut out = Vec::new();
    while (step > 0 && i < stop) || (step < 0 && i > stop) {
        out.push(i as usize);
        i += step;
    }
    out
}

/// `x` (values `k + 0.5`) shifted by `by` along `axis`, -1 where nothing arrives.
fn shifted(shape: &[usize], axis: usize, by: isize) -> Vec<f64> {
    let inner: usize = shape.iter().skip(axis + 1).product();
    let n = shape.get(axis).copied().unwrap_or(1) as i128;
    (0..size(shape))
        .map(|k| {
            let i = ((k / inner.max(1)) as i128) % n.max(1);
            let from = i - by as i128;
            if (0..n).contains(&from) {
                (k as i128 + (from - i) * inner as i128) as f64 + 0.5
            } else {
                -1.0
            }
        })
        .collect()
}
