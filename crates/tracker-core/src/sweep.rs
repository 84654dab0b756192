//! The backward sweep: one reverse loop down the arena, with one of two walks.
//!
//! The eager walk computes gradients on buffers (and may consume the nodes it passes);
//! the recording walk records every step of every pullback as nodes on the same tape,
//! so the gradients it returns can be differentiated again. The tape's lock is taken
//! per step, never across a pullback: a rule written in Python may run ops (and drop
//! handles) while its pullback runs. The eager walk passes a short elementwise op (a
//! loop over scalars or small vectors) and a gather without building a step: the
//! first's scalar rules read the values where they lie, the second's scatter needs none.

use std::cell::RefCell;
use std::ops::{Add, Div, Mul, Neg, Sub};
use std::sync::{Arc, MutexGuard};

use smallvec::SmallVec;

use crate::error::{Error, Result};
use crate::num::{Float, Num};
use crate::op::{Arrays, Backend, Contribution, Contributions, Eager, Extern, Op};
use crate::ops::binary::Binary;
use crate::ops::index::scatter_add;
use crate::ops::shape::Mask;
use crate::ops::unary::Unary;
use crate::parallel;
use crate::tape::{Arena, Arg, Inputs, NodeId, Tape, new_handle, push, push_constant};
use crate::value::{Array, Dtype, Element, Shape, Value};

/// Adds a contribution to a gradient slot, in place when the slot owns its buffer.
pub(crate) fn add_into(slot: &mut Option<Value>, contribution: Contribution<Value>) -> Result<()> {
    match (slot.as_mut(), contribution) {
        (None, Contribution::Dense(g)) => *slot = Some(g),
        (None, Contribution::Scatter { gather, piece }) => {
            *slot = Some(crate::ops::index::scatter(&gather, &piece)?);
        }
        (Some(acc), Contribution::Dense(mut g)) => {
            let added = match (&mut *acc, &mut g) {
                (Value::F32(a), Value::F32(g)) => add_in_place(a, g),
                (Value::F64(a), Value::F64(g)) => add_in_place(a, g),
                _ => false,
            };
            if !added {
                *acc = Binary::Add.forward(acc, &g)?;
            }
        }
        (Some(acc), Contribution::Scatter { gather, piece }) => match (acc, &piece) {
            (Value::F32(a), Value::F32(p)) => scatter_add(&gather, p.as_slice(), a.make_mut()?),
            (Value::F64(a), Value::F64(p)) => scatter_add(&gather, p.as_slice(), a.make_mut()?),
            _ => return Err(crate::op::mixed_dtypes("scatter_add")),
        },
    }
    Ok(())
}

/// `acc += g` written into whichever of the two owns its buffer alone (addition
/// commutes, so either order gives the same bits); false when neither does, or the
/// shapes differ.
fn add_in_place<T: Float>(acc: &mut Array<T>, g: &mut Array<T>) -> bool {
    if acc.shape() != g.shape() {
        return false;
    }
    if acc.unique_mut().is_none() {
        std::mem::swap(acc, g);
    }
    let from = g.as_slice();
    let Some(to) = acc.unique_mut() else {
        return false;
    };
    let len = to.len();
    parallel::for_each_chunk(to, parallel::CHUNK, len, |start, chunk| {
        let from = from.get(start..).unwrap_or_default();
        crate::vmath::on_avx2(
            #[inline(always)]
            || chunk.iter_mut().zip(from).for_each(|(a, &g)| *a = *a + g),
        );
    });
    true
}

/// Marks node `id` passed by a consuming sweep: consumed, its handles no longer live.
/// Returns its value, for the caller to drop once the lock is released.
fn pass(arena: &mut Arena, id: NodeId) -> Option<Value> {
    let node = arena.nodes.get_mut(id)?;
    node.consumed = true;
    let handles = node.handles as usize;
    let value = node.value.take();
    arena.live = arena.live.saturating_sub(handles);
    value
}

/// What one node of a sweep needs: its op, its inputs, its output and which inputs
/// want a gradient.
struct Step<A> {
    op: Op,
    inputs: SmallVec<[A; 2]>,
    input_ids: Inputs,
    y: A,
    needs: SmallVec<[bool; 2]>,
}

/// A gradient for an input, by the input's node.
type InputGrad<T> = Option<(NodeId, Array<T>)>;

/// Elementwise nodes of at most this many elements are passed by their op's scalar
/// rules, an element at a time: below one group of lanes, setting up a step and the
/// array kernels costs more than the elements do.
const DIRECT_MAX: usize = crate::kernel::LANES;

/// The gradients a short elementwise node (a loop over scalars, or over small
/// vectors) passes to its inputs, from its op's scalar rules, by input: no step is
/// built. `None` for any other node, and when an input that wants a gradient is
/// broadcast (its gradient is a sum, which the general path takes).
#[inline(always)]
fn direct_grads<T: Element>(
    arena: &Arena,
    node: &crate::tape::Node,
    dy: &Array<T>,
) -> Option<[InputGrad<T>; 2]> {
    let (shape, len) = (dy.shape(), dy.len());
    let y = T::array(node.value.as_ref()?)?;
    if len > DIRECT_MAX || y.shape() != shape {
        return None;
    }
    // An input's elements, read in step with the output's, or one value throughout
    // for a 0-d constant.
    let input = |k: usize| {
        let id = *node.inputs.get(k)?;
        let n = arena.nodes.get(id)?;
        let x = T::array(n.value.as_ref()?)?;
        let read = x.shape() == shape || (x.shape().is_empty() && !n.needs_grad);
        read.then_some((id, x.as_slice(), n.needs_grad))
    };
    let at = |s: &[T], i: usize| s.get(i).or(s.first()).copied();
    let (y, dy) = (y.as_slice(), dy.as_slice());
    Some(match (&node.op, node.inputs.len()) {
        (Op::Unary(u), 1) => {
            let (i, x, need) = input(0)?;
            let rule = |e| Some(u.rule(at(x, e)?, at(y, e)?, at(dy, e)?));
            [wanted(need, i, || elementwise(shape, len, rule))?, None]
        }
        (Op::Binary(op), 2) => {
            let ((i, a, need_a), (j, b, need_b)) = (input(0)?, input(1)?);
            let side = |k: usize| {
                let rule = |e| Some(op.rule(k, at(a, e)?, at(b, e)?, at(y, e)?, at(dy, e)?));
                elementwise(shape, len, rule)
            };
            [
                wanted(need_a, i, || side(0))?,
                wanted(need_b, j, || side(1))?,
            ]
        }
        _ => return None,
    })
}

/// Input `id`'s gradient `g()` if it wants one; `None` (the general path) when `g` fails.
#[inline(always)]
fn wanted<T>(need: bool, id: NodeId, g: impl FnOnce() -> Option<Array<T>>) -> Option<InputGrad<T>> {
    Some(if need { Some((id, g()?)) } else { None })
}

/// The array of `shape` (`len` elements) whose element `i` is `rule(i)`. A 0-d one is
/// built inline without the vector `Array::from_vec` would take: a loop over scalars
/// allocates nothing here.
#[inline(always)]
fn elementwise<T: Float>(
    shape: &[usize],
    len: usize,
    rule: impl Fn(usize) -> Option<T>,
) -> Option<Array<T>> {
    if shape.is_empty() {
        return rule(0).map(Array::scalar);
    }
    let values = (0..len).map(rule).collect::<Option<Vec<T>>>()?;
    Array::from_vec(shape, values).ok()
}

/// Reads nodes for a sweep and adds contributions, for one backend.
trait Walk {
    type B: Backend;
    fn backend(&mut self) -> &mut Self::B;
    /// The node's step, or `None` for a leaf (whose slot is left for the caller).
    fn step(&mut self, id: NodeId) -> Result<Option<Step<<Self::B as Arrays>::A>>>;
    /// Adds node `id`'s contributions to its inputs' slots in `grads` without building
    /// a step: those of a short elementwise op, from its scalar rules (see
    /// [`direct_grads`]), and a gather's scatter of `dy`. False takes the general path.
    fn direct_step(
        &mut self,
        _id: NodeId,
        _dy: &<Self::B as Arrays>::A,
        _grads: &mut [Option<<Self::B as Arrays>::A>],
    ) -> Result<bool> {
        Ok(false)
    }
    fn accumulate(
        &mut self,
        slot: &mut Option<<Self::B as Arrays>::A>,
        c: Contribution<<Self::B as Arrays>::A>,
    ) -> Result<()>;
    /// Called after a node's pullback (whose op is `op`): a consuming sweep frees what
    /// it has not freed yet here.
    fn done(&mut self, id: NodeId, op: &Op);
    /// A leaf reached with a gradient.
    fn leaf(&mut self, id: NodeId, g: &<Self::B as Arrays>::A) -> Result<()>;
    /// The tape being swept (for anomaly reports).
    fn tape(&self) -> &Tape;
}

/// Anomaly mode's check: every contribution of node `id` is finite.
fn check_finite<W: Walk>(
    walk: &mut W,
    id: NodeId,
    op: &Op,
    contributions: &Contributions<<W::B as Arrays>::A>,
) -> Result<()> {
    for c in contributions.iter().flatten() {
        let g = match c {
            Contribution::Dense(g) | Contribution::Scatter { piece: g, .. } => {
                walk.backend().value(g)?
            }
        };
        if g.to_f64_vec().iter().any(|v| !v.is_finite()) {
            let location = walk
                .tape()
                .lock()
                .locations
                .iter()
                .find(|(n, _)| *n == id)
                .map(|(_, l)| l.to_string());
            return Err(Error::Anomaly {
                op: op.name(),
                location,
            });
        }
    }
    Ok(())
}

/// The reverse sweep from `root` with gradient `seed`: one loop down the arena.
/// Returns every node's gradient slot (leaves keep theirs).
fn sweep<W: Walk>(
    walk: &mut W,
    root: NodeId,
    seed: <W::B as Arrays>::A,
) -> Result<Vec<Option<<W::B as Arrays>::A>>> {
    let mut grads: Vec<Option<<W::B as Arrays>::A>> = Vec::new();
    grads
        .try_reserve_exact(root + 1)
        .map_err(|_| Error::Memory {
            op: "back",
            bytes: root.saturating_mul(32),
        })?;
    grads.resize_with(root + 1, || None);
    if let Some(slot) = grads.last_mut() {
        *slot = Some(seed);
    }
    let anomaly = crate::tape::anomaly();
    for id in (0..=root).rev() {
        // Long sweeps poll for interrupts, so Ctrl-C stops them promptly.
        if id % 4096 == 0 {
            crate::tape::check_interrupt()?;
        }
        let Some(dy) = grads.get_mut(id).and_then(Option::take) else {
            continue;
        };
        if !anomaly && walk.direct_step(id, &dy, &mut grads)? {
            continue;
        }
        let Some(step) = walk.step(id)? else {
            walk.leaf(id, &dy)?;
            if let Some(slot) = grads.get_mut(id) {
                *slot = Some(dy);
            }
            continue;
        };
        let mut contributions =
            step.op
                .pullback(walk.backend(), &step.inputs, &step.y, &dy, &step.needs)?;
        if anomaly {
            check_finite(walk, id, &step.op, &contributions)?;
        }
        // Taken one by one rather than moved out whole: the list is large.
        for (c, &input) in contributions.iter_mut().zip(step.input_ids.iter()) {
            if let (Some(c), Some(slot)) = (c.take(), grads.get_mut(input)) {
                walk.accumulate(slot, c)?;
            }
        }
        walk.done(id, &step.op);
    }
    Ok(grads)
}

fn cleared() -> Error {
    Error::Usage {
        message: "the tape was cleared during the backward pass (a rule's pullback must not \
                  start a new computation at top level)"
            .into(),
    }
}

/// The eager walk: buffers, optionally consuming the nodes it passes.
struct EagerWalk<'t> {
    tape: &'t Tape,
    epoch: u64,
    consume: bool,
    /// Accumulate into parameters (the in-place `back`).
    into_params: bool,
    eager: Eager,
}

impl EagerWalk<'_> {
    /// Marks node `id` passed when the sweep consumes, and releases the lock (before
    /// its value is freed).
    fn passed(&self, mut arena: MutexGuard<'_, Arena>, id: NodeId) {
        if self.consume {
            let value = pass(&mut arena, id);
            drop(arena);
            drop(value);
        }
    }

    /// [`Walk::direct_step`] for an elementwise node with a gradient `dy` of `T`s.
    fn pass_direct<T: Element>(
        &self,
        arena: MutexGuard<'_, Arena>,
        id: NodeId,
        dy: &Array<T>,
        grads: &mut [Option<Value>],
    ) -> Result<bool> {
        let Some(passed) = arena
            .nodes
            .get(id)
            .and_then(|node| direct_grads(&arena, node, dy))
        else {
            return Ok(false);
        };
        self.passed(arena, id);
        for (input, g) in passed.into_iter().flatten() {
            if let Some(slot) = grads.get_mut(input) {
                add_into(slot, Contribution::Dense(T::value(g)))?;
            }
        }
        Ok(true)
    }
}

impl Walk for EagerWalk<'_> {
    type B = Eager;

    fn backend(&mut self) -> &mut Eager {
        &mut self.eager
    }

    // Inlined, so that the step is built where the sweep keeps it rather than copied.
    #[inline(always)]
    fn step(&mut self, id: NodeId) -> Result<Option<Step<Value>>> {
        let mut arena = self.tape.lock();
        if arena.epoch != self.epoch {
            return Err(cleared());
        }
        let Some(node) = arena.nodes.get(id) else {
            return Ok(None);
        };
        if node.op.is_leaf() {
            return Ok(None);
        }
        if node.consumed {
            return Err(Error::Consumed { op: node.op.name() });
        }
        let mut inputs = SmallVec::new();
        let mut needs = SmallVec::new();
        for &i in &node.inputs {
            let input = arena.nodes.get(i);
            match input.and_then(|n| n.value.clone()) {
                Some(v) => inputs.push(v),
                None => {
                    return Err(Error::Consumed {
                        op: input.map_or("?", |n| n.op.name()),
                    });
                }
            }
            needs.push(input.is_some_and(|n| n.needs_grad));
        }
        // `from_slice` copies: `clone` goes through the generic `extend`.
        let (op, input_ids) = (node.op.clone(), Inputs::from_slice(&node.inputs));
        // A consuming sweep passes the node now, taking its value rather than copying
        // it, so that `done` need not lock again; an external rule's node waits for its
        // pullback to have run before it is released.
        let y = if self.consume && !matches!(op, Op::Extern(_)) {
            pass(&mut arena, id)
        } else {
            node.value.clone()
        };
        let y = y.ok_or_else(|| Error::Consumed { op: op.name() })?;
        Ok(Some(Step {
            op,
            inputs,
            input_ids,
            y,
            needs,
        }))
    }

    fn direct_step(&mut self, id: NodeId, dy: &Value, grads: &mut [Option<Value>]) -> Result<bool> {
        let arena = self.tape.lock();
        let Some(node) = arena
            .nodes
            .get(id)
            .filter(|n| arena.epoch == self.epoch && !n.consumed)
        else {
            return Ok(false);
        };
        if let (Op::Gather(gather), &[input]) = (&node.op, node.inputs.as_slice()) {
            let gather = gather.clone();
            self.passed(arena, id);
            let piece = dy.clone();
            return match grads.get_mut(input) {
                Some(slot) => {
                    add_into(slot, Contribution::Scatter { gather, piece }).map(|()| true)
                }
                None => Ok(true),
            };
        }
        match dy {
            Value::F32(dy) => self.pass_direct(arena, id, dy, grads),
            Value::F64(dy) => self.pass_direct(arena, id, dy, grads),
        }
    }

    fn accumulate(&mut self, slot: &mut Option<Value>, c: Contribution<Value>) -> Result<()> {
        add_into(slot, c)
    }

    fn done(&mut self, id: NodeId, op: &Op) {
        // Other nodes were passed by `step` already.
        let (true, Op::Extern(rule)) = (self.consume, op) else {
            return;
        };
        let value = pass(&mut self.tape.lock(), id);
        // Freed after the lock is released: either may hold Python objects.
        drop(value);
        rule.release();
    }

    fn tape(&self) -> &Tape {
        self.tape
    }

    fn leaf(&mut self, id: NodeId, g: &Value) -> Result<()> {
        let op = self.tape.lock().nodes.get(id).map(|n| n.op.clone());
        match op {
            Some(Op::Consumed(op)) => Err(Error::Consumed { op }),
            Some(Op::Param(p)) if self.into_params => p.accumulate(g.clone()),
            _ => Ok(()),
        }
    }
}

/// Checks the gradients an external pullback returned against its inputs, naming the
/// rule in every error.
fn check_extern(rule: &dyn Extern, grads: &[Option<Arg>], inputs: &[Value]) -> Result<()> {
    let name = rule.name();
    if grads.len() != inputs.len() {
        return Err(Error::Type {
            op: name,
            message: format!(
                "the pullback returned {} gradients for {} inputs (return one per input, None \
                 for an input without a gradient)",
                grads.len(),
                inputs.len()
            ),
        });
    }
    for (k, (g, x)) in grads.iter().zip(inputs).enumerate() {
        let Some(g) = g else { continue };
        let g = g.value();
        // A gradient that broadcasts from the input's shape is summed back to it, as
        // PyTorch does for custom functions.
        let fits = crate::broadcast::broadcast_shapes(name, x.shape(), g.shape())
            .is_ok_and(|s| s.as_slice() == g.shape());
        if !fits {
            return Err(Error::Shape {
                op: name,
                message: format!(
                    "the pullback's gradient {k} has shape {:?}, but input {k} has shape {:?}",
                    g.shape(),
                    x.shape()
                ),
            });
        }
        if g.dtype() != x.dtype() {
            return Err(Error::Type {
                op: name,
                message: format!(
                    "the pullback's gradient {k} is {}, but input {k} is {}",
                    g.dtype().name(),
                    x.dtype().name()
                ),
            });
        }
    }
    Ok(())
}

/// An external rule's gradients on buffers: the pullback gets a plain `dy`.
pub(crate) fn eager_external(
    rule: &Arc<dyn Extern>,
    inputs: &[Value],
    dy: &Value,
) -> Result<Contributions<Value>> {
    let grads = rule.pullback(Arg::Value(dy.clone()))?;
    check_extern(rule.as_ref(), &grads, inputs)?;
    grads
        .into_iter()
        .zip(inputs)
        .map(|(g, x)| {
            g.map(|g| Ok(Contribution::Dense(Eager.sum_to(&g.value(), x.shape())?)))
                .transpose()
        })
        .collect()
}

/// The recording backend: every op of a pullback becomes a node on the same tape, so
/// gradients are themselves differentiable.
pub(crate) struct Recorder<'t> {
    tape: &'t Arc<Tape>,
    epoch: u64,
    error: RefCell<Option<Error>>,
}

impl<'t> Recorder<'t> {
    pub(crate) fn new(tape: &'t Arc<Tape>, epoch: u64) -> Self {
        Recorder {
            tape,
            epoch,
            error: RefCell::new(None),
        }
    }

    fn arena(&self) -> Result<std::sync::MutexGuard<'_, Arena>> {
        let arena = self.tape.lock();
        if arena.epoch != self.epoch {
            return Err(cleared());
        }
        Ok(arena)
    }

    fn record(&self, op: Op, inputs: &[NodeId]) -> Result<NodeId> {
        let mut arena = self.arena()?;
        let mut values: SmallVec<[Value; 2]> = SmallVec::new();
        let mut needs = false;
        for &i in inputs {
            let node = arena.nodes.get(i).ok_or(Error::Usage {
                message: "internal: missing node".into(),
            })?;
            values.push(
                node.value
                    .clone()
                    .ok_or(Error::Consumed { op: node.op.name() })?,
            );
            needs |= node.needs_grad;
        }
        let value = op.forward_each(&values, Ok)?;
        Ok(push(
            &mut arena,
            op,
            Inputs::from_slice(inputs),
            value,
            needs,
        ))
    }

    pub(crate) fn constant(&self, value: Value) -> Result<NodeId> {
        Ok(push_constant(&mut *self.arena()?, value))
    }

    fn value(&self, id: NodeId) -> Result<Value> {
        let arena = self.arena()?;
        let node = arena.nodes.get(id).ok_or(Error::Usage {
            message: "internal: missing node".into(),
        })?;
        node.value
            .clone()
            .ok_or(Error::Consumed { op: node.op.name() })
    }

    /// Remembers the first failure of an operator (operators cannot return errors).
    fn fail(&self, e: Error) {
        self.error.borrow_mut().get_or_insert(e);
    }

    fn var(&self, op: Op, inputs: &[NodeId]) -> Var<'_, 't> {
        let id = match self.record(op, inputs) {
            Ok(id) => id,
            Err(e) => {
                self.fail(e);
                inputs.first().copied().unwrap_or(0)
            }
        };
        Var { rec: self, id }
    }

    fn checked(&self, v: Var<'_, 't>) -> Result<NodeId> {
        match self.error.borrow_mut().take() {
            Some(e) => Err(e),
            None => Ok(v.id),
        }
    }

    fn mask(&self, a: NodeId, b: NodeId, f: impl Fn(Value, Value) -> Result<Value>) -> Var<'_, 't> {
        let id = self
            .value(a)
            .and_then(|a| Ok((a, self.value(b)?)))
            .and_then(|(a, b)| f(a, b))
            .and_then(|v| self.constant(v));
        match id {
            Ok(id) => Var { rec: self, id },
            Err(e) => {
                self.fail(e);
                Var { rec: self, id: a }
            }
        }
    }
}

/// A recorded value inside a pullback: the scalar-like type of elementwise rules when
/// they record.
#[derive(Clone, Copy)]
pub struct Var<'r, 't> {
    rec: &'r Recorder<'t>,
    id: NodeId,
}

macro_rules! var_operator {
    ($trait:ident, $method:ident, $op:ident) => {
        impl<'r, 't> $trait for Var<'r, 't> {
            type Output = Var<'r, 't>;
            fn $method(self, other: Self) -> Self {
                self.rec.var(Op::Binary(Binary::$op), &[self.id, other.id])
            }
        }
    };
}

var_operator!(Add, add, Add);
var_operator!(Sub, sub, Sub);
var_operator!(Mul, mul, Mul);
var_operator!(Div, div, Div);

impl Neg for Var<'_, '_> {
    type Output = Self;
    fn neg(self) -> Self {
        self.rec.var(Op::Unary(Unary::Neg), &[self.id])
    }
}

impl Var<'_, '_> {
    fn unary(self, op: Unary) -> Self {
        self.rec.var(Op::Unary(op), &[self.id])
    }

    /// Elementwise `f` of primal values as a constant: a mask.
    fn primal_mask(self, other: Self, f: fn(f64, f64) -> f64) -> Self {
        self.rec.mask(self.id, other.id, |a, b| {
            let dtype = a.dtype().promote(b.dtype());
            let shape = crate::broadcast::broadcast_shapes("mask", a.shape(), b.shape())?;
            let (a, b) = (a.cast(Dtype::F64)?, b.cast(Dtype::F64)?);
            match (&a, &b) {
                (Value::F64(a), Value::F64(b)) => {
                    Value::F64(crate::kernel::zip("mask", [a, b], &shape, |[a, b]| {
                        f(a, b)
                    })?)
                    .cast(dtype)
                }
                _ => Err(crate::op::mixed_dtypes("mask")),
            }
        })
    }
}

impl Num for Var<'_, '_> {
    fn lit(self, value: f64) -> Self {
        let dtype = self
            .rec
            .value(self.id)
            .map(|v| v.dtype())
            .unwrap_or(Dtype::F64);
        match self.rec.constant(Value::scalar(value, dtype)) {
            Ok(id) => Var { rec: self.rec, id },
            Err(e) => {
                self.rec.fail(e);
                self
            }
        }
    }
    fn unary(self, op: Unary) -> Self {
        Var::unary(self, op)
    }
    fn binary(self, op: Binary, other: Self) -> Self {
        self.rec.var(Op::Binary(op), &[self.id, other.id])
    }
    fn sign(self) -> Self {
        self.primal_mask(self, |a, _| Num::sign(a))
    }
    fn share(self, other: Self) -> Self {
        self.primal_mask(other, Num::share)
    }
    fn is_zero(self) -> Self {
        self.primal_mask(self, |a, _| Num::is_zero(a))
    }
    fn nonnegative(self) -> Self {
        self.primal_mask(self, |a, _| Num::nonnegative(a))
    }
    fn prefer(self, other: Self) -> Self {
        self.primal_mask(other, Num::prefer)
    }
    fn zeros(self) -> Self {
        self.primal_mask(self, |_, _| 0.0)
    }
    fn replace_where(self, condition: Self, value: f64) -> Self {
        let mask = self.rec.value(condition.id).map(|c| Mask {
            shape: c.shape().into(),
            bits: c.to_f64_vec().iter().map(|&v| v != 0.0).collect(),
        });
        match mask {
            Ok(mask) => {
                let value = self.lit(value);
                self.rec
                    .var(Op::Where(Arc::new(mask)), &[value.id, self.id])
            }
            Err(e) => {
                self.rec.fail(e);
                self
            }
        }
    }
}

/// The recording walk and backend over a [`Recorder`].
struct RecordWalk<'r, 't> {
    rec: &'r Recorder<'t>,
}

impl Arrays for RecordWalk<'_, '_> {
    type A = NodeId;

    fn apply(&mut self, op: Op, inputs: &[&NodeId]) -> Result<NodeId> {
        let ids: SmallVec<[NodeId; 2]> = inputs.iter().map(|&&i| i).collect();
        self.rec.record(op, &ids)
    }

    fn constant(&mut self, value: Value) -> Result<NodeId> {
        self.rec.constant(value)
    }

    fn value(&self, a: &NodeId) -> Result<Value> {
        self.rec.value(*a)
    }

    fn shape(&self, a: &NodeId) -> Shape {
        self.rec
            .value(*a)
            .map(|v| v.shape().into())
            .unwrap_or_default()
    }

    fn dtype(&self, a: &NodeId) -> Dtype {
        self.rec.value(*a).map(|v| v.dtype()).unwrap_or(Dtype::F64)
    }
}

impl Backend for RecordWalk<'_, '_> {
    fn unary_rule(&mut self, op: Unary, x: &NodeId, y: &NodeId, dy: &NodeId) -> Result<NodeId> {
        let var = |id| Var { rec: self.rec, id };
        let g = op.rule(var(*x), var(*y), var(*dy));
        self.rec.checked(g)
    }

    fn binary_rule(
        &mut self,
        op: Binary,
        side: usize,
        [a, b]: [&NodeId; 2],
        y: &NodeId,
        dy: &NodeId,
    ) -> Result<NodeId> {
        let var = |id| Var { rec: self.rec, id };
        let g = op.rule(side, var(*a), var(*b), var(*y), var(*dy));
        self.rec.checked(g)
    }

    /// An external rule's gradients, recorded: its pullback gets a tracked `dy`, and
    /// what it computes from its tracked inputs is recorded like any op.
    fn external(
        &mut self,
        rule: &Arc<dyn Extern>,
        inputs: &[NodeId],
        dy: &NodeId,
    ) -> Result<Contributions<NodeId>> {
        let seed = new_handle(&mut *self.rec.arena()?, self.rec.tape, *dy);
        let grads = rule.pullback(Arg::Tracked(seed))?;
        let values: Vec<Value> = inputs
            .iter()
            .map(|&i| self.rec.value(i))
            .collect::<Result<_>>()?;
        check_extern(rule.as_ref(), &grads, &values)?;
        grads
            .into_iter()
            .zip(&values)
            .map(|(g, x)| {
                let id = match g {
                    None => return Ok(None),
                    Some(Arg::Tracked(t)) => match t.node_on(self.rec.tape, self.rec.epoch) {
                        Some(id) => id,
                        None => self.rec.constant(t.value())?,
                    },
                    Some(Arg::Value(v)) => self.rec.constant(v)?,
                };
                Ok(Some(Contribution::Dense(self.sum_to(&id, x.shape())?)))
            })
            .collect()
    }
}

impl Walk for RecordWalk<'_, '_> {
    type B = Self;

    fn backend(&mut self) -> &mut Self {
        self
    }

    fn step(&mut self, id: NodeId) -> Result<Option<Step<NodeId>>> {
        let arena = self.rec.arena()?;
        let Some(node) = arena.nodes.get(id) else {
            return Ok(None);
        };
        if node.op.is_leaf() {
            return Ok(None);
        }
        if node.consumed {
            return Err(Error::Consumed { op: node.op.name() });
        }
        let needs = node
            .inputs
            .iter()
            .map(|&i| arena.nodes.get(i).is_some_and(|n| n.needs_grad))
            .collect();
        Ok(Some(Step {
            op: node.op.clone(),
            inputs: Inputs::from_slice(&node.inputs),
            input_ids: Inputs::from_slice(&node.inputs),
            y: id,
            needs,
        }))
    }

    fn accumulate(&mut self, slot: &mut Option<NodeId>, c: Contribution<NodeId>) -> Result<()> {
        let g = match c {
            Contribution::Dense(g) => g,
            Contribution::Scatter { gather, piece } => {
                self.rec.record(Op::Scatter(gather), &[piece])?
            }
        };
        *slot = Some(match *slot {
            Some(acc) => self.rec.record(Op::Binary(Binary::Add), &[acc, g])?,
            None => g,
        });
        Ok(())
    }

    fn done(&mut self, _id: NodeId, _op: &Op) {}

    fn tape(&self) -> &Tape {
        self.rec.tape
    }

    fn leaf(&mut self, id: NodeId, _g: &NodeId) -> Result<()> {
        match self.rec.arena()?.nodes.get(id).map(|n| &n.op) {
            Some(Op::Consumed(op)) => Err(Error::Consumed { op }),
            _ => Ok(()),
        }
    }
}

/// Marks a sweep under way on a tape for as long as it lives.
struct Sweeping<'t>(&'t Tape);

impl<'t> Sweeping<'t> {
    fn new(tape: &'t Tape) -> Self {
        tape.lock().sweeps += 1;
        Sweeping(tape)
    }
}

impl Drop for Sweeping<'_> {
    fn drop(&mut self) {
        let mut arena = self.0.lock();
        arena.sweeps = arena.sweeps.saturating_sub(1);
    }
}

/// An eager sweep from `root` on `tape` (which must be at `epoch`).
pub(crate) fn eager_sweep(
    tape: &Tape,
    epoch: u64,
    root: NodeId,
    seed: Value,
    consume: bool,
    into_params: bool,
) -> Result<Vec<Option<Value>>> {
    let _sweeping = Sweeping::new(tape);
    let mut walk = EagerWalk {
        tape,
        epoch,
        consume,
        into_params,
        eager: Eager,
    };
    sweep(&mut walk, root, seed)
}

/// A recording sweep from `root` on `tape`: the gradients are nodes of the same tape.
pub(crate) fn recorded_sweep(
    tape: &Arc<Tape>,
    epoch: u64,
    root: NodeId,
    seed: Value,
    tracked_seed: Option<NodeId>,
) -> Result<Vec<Option<NodeId>>> {
    let _sweeping = Sweeping::new(tape);
    let rec = Recorder::new(tape, epoch);
    let seed = match tracked_seed {
        Some(id) => id,
        None => rec.constant(seed)?,
    };
    sweep(&mut RecordWalk { rec: &rec }, root, seed)
}
