//! The tape: an arena of nodes in execution order, the handles that refer to them, the
//! scopes that decide where an op records, and the backward sweep.
//!
//! Nodes are appended as ops run, so the arena is already topologically ordered: the
//! backward pass is one reverse loop over it, with no recursion, sorting or hashing.
//! Parameters live outside the arena (value, gradient accumulator, version); a node
//! refers to a parameter through a leaf.

use std::cell::RefCell;
use std::ops::{Add, Div, Mul, Neg, Sub};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::ThreadId;

use smallvec::SmallVec;

use crate::error::{Error, Result};
use crate::num::Num;
use crate::op::{Backend, Contribution, Eager, Op};
use crate::ops::binary::Binary;
use crate::ops::index::scatter_add;
use crate::ops::shape::Mask;
use crate::ops::unary::Unary;
use crate::value::{Dtype, Shape, Value};

/// A node's position in its tape.
pub type NodeId = usize;

type Inputs = SmallVec<[NodeId; 2]>;

struct Node {
    op: Op,
    inputs: Inputs,
    /// The output; freed when a consuming sweep has passed (handles keep their own).
    value: Option<Value>,
    needs_grad: bool,
    consumed: bool,
    /// How many live handles refer to this node.
    handles: u32,
}

struct Arena {
    nodes: Vec<Node>,
    /// Bumped each time the arena is cleared; handles from earlier epochs are stale.
    epoch: u64,
    /// Live handles that refer to unconsumed nodes: the arena is cleared when none do.
    live: usize,
}

impl Arena {
    /// Empties the arena (its handles become stale) and returns the old nodes, for the
    /// caller to drop once the lock is released.
    fn retire(&mut self, capacity: usize) -> Vec<Node> {
        self.epoch += 1;
        self.live = 0;
        std::mem::replace(&mut self.nodes, Vec::with_capacity(capacity))
    }
}

/// One tape: the nodes recorded by one thread in one scope.
pub struct Tape {
    arena: Mutex<Arena>,
    owner: ThreadId,
    id: u64,
}

static NEXT_TAPE_ID: AtomicU64 = AtomicU64::new(1);

impl Tape {
    fn new() -> Arc<Tape> {
        Arc::new(Tape {
            arena: Mutex::new(Arena {
                nodes: Vec::new(),
                epoch: 0,
                live: 0,
            }),
            owner: std::thread::current().id(),
            id: NEXT_TAPE_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Arena> {
        // A poisoned lock only means another thread panicked while holding it; the
        // arena itself stays consistent because every mutation completes under the lock.
        self.arena.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The number of nodes currently recorded (for tests and `show`).
    pub fn len(&self) -> usize {
        self.lock().nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A parameter: a leaf whose gradient accumulates across backward passes.
pub struct Param {
    value: RwLock<Value>,
    grad: Mutex<Option<Value>>,
    version: AtomicU64,
    /// The leaf node standing for this parameter on a tape: (tape, epoch, version, node).
    leaf: Mutex<Option<(u64, u64, u64, NodeId)>>,
}

impl Param {
    /// A new parameter owning `value`.
    pub fn new(value: Value) -> Arc<Param> {
        Arc::new(Param {
            value: RwLock::new(value),
            grad: Mutex::new(None),
            version: AtomicU64::new(0),
            leaf: Mutex::new(None),
        })
    }

    pub fn value(&self) -> Value {
        self.value.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The accumulated gradient, zeros if none has arrived.
    pub fn grad(&self) -> Result<Value> {
        let grad = self.grad.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match grad {
            Some(g) => Ok(g),
            None => {
                let v = self.value();
                Value::full(v.shape(), 0.0, v.dtype(), "grad")
            }
        }
    }

    pub fn zero_grad(&self) {
        *self.grad.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Adds `delta` to the value and zeroes the gradient. The old buffer is left to
    /// whoever still holds it (a tape, a view): the new value is a new buffer.
    pub fn update(&self, delta: &Value) -> Result<()> {
        let old = self.value();
        if delta.shape() != old.shape() {
            return Err(Error::Shape {
                op: "update",
                message: format!(
                    "delta of shape {:?} does not match the parameter's shape {:?}",
                    delta.shape(),
                    old.shape()
                ),
            });
        }
        let new = Binary::Add.forward(&old, &delta.cast(old.dtype())?)?;
        *self.value.write().unwrap_or_else(|e| e.into_inner()) = new;
        self.version.fetch_add(1, Ordering::Relaxed);
        self.zero_grad();
        Ok(())
    }

    fn accumulate(&self, g: Value) -> Result<()> {
        let g = g.cast(self.value().dtype())?;
        let mut slot = self.grad.lock().unwrap_or_else(|e| e.into_inner());
        add_into(&mut slot, Contribution::Dense(g))
    }
}

/// A handle's link to the node it stands for.
struct NodeRef {
    tape: Arc<Tape>,
    id: NodeId,
    epoch: u64,
    op: &'static str,
    value: Value,
}

impl Drop for NodeRef {
    fn drop(&mut self) {
        let mut arena = self.tape.lock();
        if arena.epoch == self.epoch {
            let counted = arena
                .nodes
                .get_mut(self.id)
                .filter(|n| n.handles > 0)
                .map(|n| {
                    n.handles -= 1;
                    !n.consumed
                })
                .unwrap_or(false);
            if counted {
                arena.live = arena.live.saturating_sub(1);
            }
        }
    }
}

#[derive(Clone)]
enum Link {
    Param(Arc<Param>),
    Node(Arc<NodeRef>),
}

/// A tracked value: a parameter, or a node of a tape. Cheap to clone.
#[derive(Clone)]
pub struct Tracked {
    link: Link,
}

impl Tracked {
    /// A new parameter (a leaf) owning `value`.
    pub fn param(value: Value) -> Tracked {
        Tracked {
            link: Link::Param(Param::new(value)),
        }
    }

    /// The value (for a parameter, its current value).
    pub fn value(&self) -> Value {
        match &self.link {
            Link::Param(p) => p.value(),
            Link::Node(r) => r.value.clone(),
        }
    }

    pub fn shape(&self) -> Shape {
        match &self.link {
            Link::Param(p) => p.value().shape().into(),
            Link::Node(r) => r.value.shape().into(),
        }
    }

    pub fn dtype(&self) -> Dtype {
        match &self.link {
            Link::Param(p) => p.value().dtype(),
            Link::Node(r) => r.value.dtype(),
        }
    }

    /// The parameter behind this handle, if it is one.
    pub fn as_param(&self) -> Option<&Arc<Param>> {
        match &self.link {
            Link::Param(p) => Some(p),
            Link::Node(_) => None,
        }
    }

    /// The name of the op that computed this value (`"param"` for a parameter).
    pub fn op_name(&self) -> &'static str {
        match &self.link {
            Link::Param(_) => "param",
            Link::Node(r) => r.op,
        }
    }

    /// The parameter's accumulated gradient.
    pub fn grad(&self) -> Result<Value> {
        match &self.link {
            Link::Param(p) => p.grad(),
            Link::Node(r) => Err(Error::Usage {
                message: format!(
                    "grad: this value was computed by `{}`, it is not a parameter; only \
                     parameters (tr.param) accumulate gradients — use tr.gradient for \
                     gradients with respect to other values",
                    r.op
                ),
            }),
        }
    }

    /// Whether two handles stand for the same parameter or node.
    pub fn same(&self, other: &Tracked) -> bool {
        match (&self.link, &other.link) {
            (Link::Param(a), Link::Param(b)) => Arc::ptr_eq(a, b),
            (Link::Node(a), Link::Node(b)) => {
                Arc::ptr_eq(&a.tape, &b.tape) && a.id == b.id && a.epoch == b.epoch
            }
            _ => false,
        }
    }
}

/// An argument of an op: a tracked value or a constant.
#[derive(Clone)]
pub enum Arg {
    Tracked(Tracked),
    Value(Value),
}

impl Arg {
    fn value(&self) -> Value {
        match self {
            Arg::Tracked(t) => t.value(),
            Arg::Value(v) => v.clone(),
        }
    }
}

/// What an op returns: tracked, or a plain value when nothing is recorded (`no_grad`,
/// or no argument is differentiated in this scope).
pub enum Output {
    Tracked(Tracked),
    Value(Value),
}

impl Output {
    pub fn value(&self) -> Value {
        match self {
            Output::Tracked(t) => t.value(),
            Output::Value(v) => v.clone(),
        }
    }

    fn into_arg(self) -> Arg {
        match self {
            Output::Tracked(t) => Arg::Tracked(t),
            Output::Value(v) => Arg::Value(v),
        }
    }
}

struct Frame {
    tape: Arc<Tape>,
    /// Values of enclosing scopes this scope used as constants.
    outer: Vec<Arg>,
}

struct ThreadState {
    frames: Vec<Frame>,
    grad_enabled: bool,
}

thread_local! {
    static STATE: RefCell<ThreadState> = RefCell::new(ThreadState {
        frames: vec![Frame { tape: Tape::new(), outer: Vec::new() }],
        grad_enabled: true,
    });
}

/// Turns recording on or off for this thread; returns the previous setting.
pub fn set_grad_enabled(enabled: bool) -> bool {
    STATE.with(|s| std::mem::replace(&mut s.borrow_mut().grad_enabled, enabled))
}

/// The tape that ops of this thread record on now.
pub fn current_tape() -> Arc<Tape> {
    STATE
        .with(|s| s.borrow().frames.last().map(|f| f.tape.clone()))
        .unwrap_or_else(Tape::new)
}

/// Whether `tape` is the thread's top-level tape, where parameters are differentiated.
fn is_top_level(tape: &Arc<Tape>) -> bool {
    STATE.with(|s| {
        s.borrow()
            .frames
            .first()
            .is_some_and(|f| Arc::ptr_eq(&f.tape, tape))
    })
}

/// How an argument appears on the current tape.
enum Resolved {
    Node(NodeId),
    /// A value to push as a leaf with this op.
    Leaf(Op, Value, bool),
}

fn resolve(
    arena: &Arena,
    tape: &Arc<Tape>,
    arg: &Arg,
    outer: &mut Vec<Arg>,
    top: bool,
) -> Result<Resolved> {
    match arg {
        Arg::Value(v) => Ok(Resolved::Leaf(Op::Const, v.clone(), false)),
        Arg::Tracked(t) => match &t.link {
            Link::Param(p) => {
                if !top {
                    outer.push(arg.clone());
                    return Ok(Resolved::Leaf(Op::Const, p.value(), false));
                }
                let cached = *p.leaf.lock().unwrap_or_else(|e| e.into_inner());
                let version = p.version.load(Ordering::Relaxed);
                match cached {
                    Some((tape_id, epoch, v, id))
                        if tape_id == tape.id && epoch == arena.epoch && v == version =>
                    {
                        Ok(Resolved::Node(id))
                    }
                    _ => Ok(Resolved::Leaf(Op::Param(p.clone()), p.value(), true)),
                }
            }
            Link::Node(r) => {
                if r.tape.owner != tape.owner {
                    return Err(Error::Thread);
                }
                if Arc::ptr_eq(&r.tape, tape) {
                    let consumed =
                        arena.epoch != r.epoch || arena.nodes.get(r.id).is_none_or(|n| n.consumed);
                    return Ok(if consumed {
                        Resolved::Leaf(Op::Consumed(r.op), r.value.clone(), true)
                    } else {
                        Resolved::Node(r.id)
                    });
                }
                let enclosing = STATE.with(|s| {
                    s.borrow()
                        .frames
                        .iter()
                        .any(|f| Arc::ptr_eq(&f.tape, &r.tape))
                });
                if enclosing {
                    outer.push(arg.clone());
                    Ok(Resolved::Leaf(Op::Const, r.value.clone(), false))
                } else {
                    Ok(Resolved::Leaf(Op::Consumed(r.op), r.value.clone(), true))
                }
            }
        },
    }
}

fn push(arena: &mut Arena, op: Op, inputs: Inputs, value: Value, needs_grad: bool) -> NodeId {
    arena.nodes.push(Node {
        op,
        inputs,
        value: Some(value),
        needs_grad,
        consumed: false,
        handles: 0,
    });
    arena.nodes.len() - 1
}

/// Pushes a leaf; a parameter's leaf is remembered, so every use of the parameter on
/// this tape (until it is cleared or the parameter updated) shares one node.
fn push_leaf(arena: &mut Arena, tape: &Tape, leaf: Op, value: Value, needs: bool) -> NodeId {
    let param = if let Op::Param(p) = &leaf {
        Some(p.clone())
    } else {
        None
    };
    let id = push(arena, leaf, Inputs::new(), value, needs);
    if let Some(p) = param {
        let version = p.version.load(Ordering::Relaxed);
        *p.leaf.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((tape.id, arena.epoch, version, id));
    }
    id
}

fn new_handle(arena: &mut Arena, tape: &Arc<Tape>, id: NodeId) -> Tracked {
    let (op, value) = match arena.nodes.get_mut(id) {
        Some(node) => {
            node.handles += 1;
            (node.op.name(), node.value.clone())
        }
        None => ("constant", None),
    };
    arena.live += 1;
    Tracked {
        link: Link::Node(Arc::new(NodeRef {
            tape: tape.clone(),
            id,
            epoch: arena.epoch,
            op,
            value: value.unwrap_or_else(|| Value::scalar(f64::NAN, Dtype::F64)),
        })),
    }
}

/// Whether `op` needs its inputs in one dtype.
fn unifies_dtypes(op: &Op) -> bool {
    matches!(op, Op::Binary(_) | Op::Where(_) | Op::Matmul)
}

/// Runs `op` on `args`, recording it on the current tape when an argument is tracked
/// and recording is on. Mixed dtypes are promoted as `np.result_type`.
pub fn apply(op: Op, args: &[Arg]) -> Result<Output> {
    let target = unifies_dtypes(&op).then(|| {
        args.iter()
            .map(|a| a.value().dtype())
            .fold(Dtype::F32, Dtype::promote)
    });
    let grad_enabled = STATE.with(|s| s.borrow().grad_enabled);
    let any_tracked = args.iter().any(|a| matches!(a, Arg::Tracked(_)));
    if !grad_enabled || !any_tracked {
        let values: Vec<Value> = args
            .iter()
            .map(|a| match target {
                Some(d) => a.value().cast(d),
                None => Ok(a.value()),
            })
            .collect::<Result<_>>()?;
        let refs: Vec<&Value> = values.iter().collect();
        return Ok(Output::Value(op.forward(&refs)?));
    }
    let tape = current_tape();
    let top = is_top_level(&tape);
    let mut outer = Vec::new();
    // Declared before the guard so that it is dropped after the lock is released:
    // dropping borrowed NumPy arrays can run Python code, which may record.
    let mut _retired = Vec::new();
    let mut arena = tape.lock();
    if arena.live == 0 && !arena.nodes.is_empty() {
        // No handle refers to an unconsumed node: start afresh, keeping the capacity.
        let capacity = arena.nodes.capacity();
        _retired = arena.retire(capacity);
    }
    let mut ids = Inputs::new();
    let mut values: SmallVec<[Value; 2]> = SmallVec::new();
    let mut needs_grad = false;
    for arg in args {
        let (mut id, mut value, needs) = match resolve(&arena, &tape, arg, &mut outer, top)? {
            Resolved::Node(id) => {
                let node = arena.nodes.get(id);
                let value = node
                    .and_then(|n| n.value.clone())
                    .unwrap_or_else(|| arg.value());
                (id, value, node.is_some_and(|n| n.needs_grad))
            }
            Resolved::Leaf(leaf, value, needs) => {
                let value = match (&leaf, target) {
                    (Op::Const, Some(d)) => value.cast(d)?,
                    _ => value,
                };
                (
                    push_leaf(&mut arena, &tape, leaf, value.clone(), needs),
                    value,
                    needs,
                )
            }
        };
        if let Some(d) = target.filter(|&d| d != value.dtype()) {
            value = value.cast(d)?;
            id = push(
                &mut arena,
                Op::Cast(d),
                Inputs::from_slice(&[id]),
                value.clone(),
                needs,
            );
        }
        needs_grad |= needs;
        ids.push(id);
        values.push(value);
    }
    let refs: SmallVec<[&Value; 2]> = values.iter().collect();
    let value = op.forward(&refs)?;
    if !outer.is_empty() {
        STATE.with(|s| {
            if let Some(f) = s.borrow_mut().frames.last_mut() {
                f.outer.append(&mut outer);
            }
        });
    }
    if !needs_grad {
        return Ok(Output::Value(value));
    }
    let id = push(&mut arena, op, ids, value, true);
    Ok(Output::Tracked(new_handle(&mut arena, &tape, id)))
}

/// Adds a contribution to a gradient slot, in place when the slot owns its buffer.
fn add_into(slot: &mut Option<Value>, contribution: Contribution<Value>) -> Result<()> {
    match (slot.as_mut(), contribution) {
        (None, Contribution::Dense(g)) => *slot = Some(g),
        (None, Contribution::Scatter { gather, piece }) => {
            *slot = Some(crate::ops::index::scatter(&gather, &piece)?);
        }
        (Some(acc), Contribution::Dense(g)) => match (acc, &g) {
            (Value::F32(a), Value::F32(g)) if a.shape() == g.shape() => a
                .make_mut()?
                .iter_mut()
                .zip(g.as_slice())
                .for_each(|(a, &g)| *a += g),
            (Value::F64(a), Value::F64(g)) if a.shape() == g.shape() => a
                .make_mut()?
                .iter_mut()
                .zip(g.as_slice())
                .for_each(|(a, &g)| *a += g),
            (acc, _) => *acc = Binary::Add.forward(acc, &g)?,
        },
        (Some(acc), Contribution::Scatter { gather, piece }) => match (acc, &piece) {
            (Value::F32(a), Value::F32(p)) => scatter_add(&gather, p.as_slice(), a.make_mut()?),
            (Value::F64(a), Value::F64(p)) => scatter_add(&gather, p.as_slice(), a.make_mut()?),
            _ => return Err(crate::op::mixed_dtypes("scatter_add")),
        },
    }
    Ok(())
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

/// Reads nodes for a sweep and adds contributions, for one backend.
trait Walk {
    type B: Backend;
    fn backend(&mut self) -> &mut Self::B;
    /// The node's step, or `None` for a leaf (whose slot is left for the caller).
    fn step(&mut self, id: NodeId) -> Result<Option<Step<<Self::B as Backend>::A>>>;
    fn accumulate(
        &mut self,
        slot: &mut Option<<Self::B as Backend>::A>,
        c: Contribution<<Self::B as Backend>::A>,
    ) -> Result<()>;
    /// Called after a node's pullback: a consuming sweep frees its saved value here.
    fn done(&mut self, id: NodeId);
    /// A leaf reached with a gradient.
    fn leaf(&mut self, id: NodeId, g: &<Self::B as Backend>::A) -> Result<()>;
}

/// The reverse sweep from `root` with gradient `seed`: one loop down the arena.
/// Returns every node's gradient slot (leaves keep theirs).
fn sweep<W: Walk>(
    walk: &mut W,
    root: NodeId,
    seed: <W::B as Backend>::A,
) -> Result<Vec<Option<<W::B as Backend>::A>>> {
    let mut grads: Vec<Option<<W::B as Backend>::A>> = Vec::new();
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
    for id in (0..=root).rev() {
        let Some(dy) = grads.get(id).and_then(|g| g.clone()) else {
            continue;
        };
        let Some(step) = walk.step(id)? else {
            walk.leaf(id, &dy)?;
            continue;
        };
        if let Some(slot) = grads.get_mut(id) {
            *slot = None;
        }
        let contributions =
            step.op
                .pullback(walk.backend(), &step.inputs, &step.y, &dy, &step.needs)?;
        for (c, &input) in contributions.into_iter().zip(step.input_ids.iter()) {
            if let (Some(c), Some(slot)) = (c, grads.get_mut(input)) {
                let mut taken = slot.take();
                walk.accumulate(&mut taken, c)?;
                if let Some(slot) = grads.get_mut(input) {
                    *slot = taken;
                }
            }
        }
        walk.done(id);
    }
    Ok(grads)
}

/// The eager walk: buffers, optionally consuming the nodes it passes.
struct EagerWalk<'a> {
    arena: &'a mut Arena,
    consume: bool,
    /// Accumulate into parameters (the in-place `back`).
    into_params: bool,
    eager: Eager,
}

impl Walk for EagerWalk<'_> {
    type B = Eager;

    fn backend(&mut self) -> &mut Eager {
        &mut self.eager
    }

    fn step(&mut self, id: NodeId) -> Result<Option<Step<Value>>> {
        let arena = &*self.arena;
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
        let y = node
            .value
            .clone()
            .ok_or(Error::Consumed { op: node.op.name() })?;
        Ok(Some(Step {
            op: node.op.clone(),
            inputs,
            input_ids: node.inputs.clone(),
            y,
            needs,
        }))
    }

    fn accumulate(&mut self, slot: &mut Option<Value>, c: Contribution<Value>) -> Result<()> {
        add_into(slot, c)
    }

    fn done(&mut self, id: NodeId) {
        if !self.consume {
            return;
        }
        if let Some(node) = self.arena.nodes.get_mut(id) {
            node.consumed = true;
            node.value = None;
            let handles = node.handles as usize;
            self.arena.live = self.arena.live.saturating_sub(handles);
        }
    }

    fn leaf(&mut self, id: NodeId, g: &Value) -> Result<()> {
        match self.arena.nodes.get(id).map(|n| &n.op) {
            Some(Op::Consumed(op)) => Err(Error::Consumed { op }),
            Some(Op::Param(p)) if self.into_params => p.accumulate(g.clone()),
            _ => Ok(()),
        }
    }
}

/// The recording backend: every op of a pullback becomes a node on the same tape, so
/// gradients are themselves differentiable.
pub struct Recorder<'t> {
    arena: RefCell<&'t mut Arena>,
    error: RefCell<Option<Error>>,
}

impl<'t> Recorder<'t> {
    fn record(&self, op: Op, inputs: &[NodeId]) -> Result<NodeId> {
        let mut arena = self.arena.borrow_mut();
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
        let refs: SmallVec<[&Value; 2]> = values.iter().collect();
        let value = op.forward(&refs)?;
        Ok(push(
            &mut arena,
            op,
            Inputs::from_slice(inputs),
            value,
            needs,
        ))
    }

    fn constant(&self, value: Value) -> NodeId {
        push(
            &mut self.arena.borrow_mut(),
            Op::Const,
            Inputs::new(),
            value,
            false,
        )
    }

    fn value(&self, id: NodeId) -> Result<Value> {
        let arena = self.arena.borrow();
        let node = arena.nodes.get(id).ok_or(Error::Usage {
            message: "internal: missing node".into(),
        })?;
        node.value
            .clone()
            .ok_or(Error::Consumed { op: node.op.name() })
    }

    /// Records `op`, or remembers the first failure (operators cannot return errors).
    fn var(&self, op: Op, inputs: &[NodeId]) -> Var<'_, 't> {
        let id = match self.record(op, inputs) {
            Ok(id) => id,
            Err(e) => {
                self.error.borrow_mut().get_or_insert(e);
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
        let id = match self
            .value(a)
            .and_then(|a| Ok((a, self.value(b)?)))
            .and_then(|(a, b)| f(a, b))
        {
            Ok(v) => self.constant(v),
            Err(e) => {
                self.error.borrow_mut().get_or_insert(e);
                a
            }
        };
        Var { rec: self, id }
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
        let id = self.rec.constant(Value::scalar(value, dtype));
        Var { rec: self.rec, id }
    }
    fn exp(self) -> Self {
        self.unary(Unary::Exp)
    }
    fn ln(self) -> Self {
        self.unary(Unary::Log)
    }
    fn sin(self) -> Self {
        self.unary(Unary::Sin)
    }
    fn cos(self) -> Self {
        self.unary(Unary::Cos)
    }
    fn tanh(self) -> Self {
        self.unary(Unary::Tanh)
    }
    fn sqrt(self) -> Self {
        self.unary(Unary::Sqrt)
    }
    fn abs(self) -> Self {
        self.unary(Unary::Abs)
    }
    fn powf(self, exponent: Self) -> Self {
        self.rec
            .var(Op::Binary(Binary::Pow), &[self.id, exponent.id])
    }
    fn maximum(self, other: Self) -> Self {
        self.rec
            .var(Op::Binary(Binary::Maximum), &[self.id, other.id])
    }
    fn minimum(self, other: Self) -> Self {
        self.rec
            .var(Op::Binary(Binary::Minimum), &[self.id, other.id])
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
                self.rec.error.borrow_mut().get_or_insert(e);
                self
            }
        }
    }
}

/// The recording backend over a [`Recorder`].
struct RecordWalk<'r, 't> {
    rec: &'r Recorder<'t>,
}

impl Backend for RecordWalk<'_, '_> {
    type A = NodeId;

    fn apply(&mut self, op: Op, inputs: &[&NodeId]) -> Result<NodeId> {
        let ids: SmallVec<[NodeId; 2]> = inputs.iter().map(|&&i| i).collect();
        self.rec.record(op, &ids)
    }

    fn constant(&mut self, value: Value) -> Result<NodeId> {
        Ok(self.rec.constant(value))
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
}

impl Walk for RecordWalk<'_, '_> {
    type B = Self;

    fn backend(&mut self) -> &mut Self {
        self
    }

    fn step(&mut self, id: NodeId) -> Result<Option<Step<NodeId>>> {
        let arena = self.rec.arena.borrow();
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
            inputs: node.inputs.clone(),
            input_ids: node.inputs.clone(),
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

    fn done(&mut self, _id: NodeId) {}

    fn leaf(&mut self, id: NodeId, _g: &NodeId) -> Result<()> {
        match self.rec.arena.borrow().nodes.get(id).map(|n| &n.op) {
            Some(Op::Consumed(op)) => Err(Error::Consumed { op }),
            _ => Ok(()),
        }
    }
}

/// Checks that a loss (with no seed) is a finite scalar, as Tracker.jl's `losscheck`.
fn check_loss(y: &Value) -> Result<()> {
    match y.item() {
        Some(v) if y.shape().iter().all(|&d| d == 1) => {
            if v.is_finite() {
                Ok(())
            } else {
                Err(Error::Loss {
                    message: format!(
                        "the loss is {v}; a gradient of a non-finite loss is meaningless"
                    ),
                })
            }
        }
        _ => Err(Error::Loss {
            message: format!(
                "the value has shape {:?}, not a scalar; pass a seed dy of that shape, or \
                 reduce it to a scalar first (e.g. with sum)",
                y.shape()
            ),
        }),
    }
}

/// The seed of a sweep: `dy` checked against `y`, or ones for a scalar loss.
fn seed_for(y: &Value, dy: Option<Value>) -> Result<Value> {
    match dy {
        Some(dy) if dy.shape() == y.shape() => dy.cast(y.dtype()),
        Some(dy) => Err(Error::Loss {
            message: format!(
                "the seed has shape {:?} but the value has shape {:?}",
                dy.shape(),
                y.shape()
            ),
        }),
        None => {
            check_loss(y)?;
            Value::full(y.shape(), 1.0, y.dtype(), "back")
        }
    }
}

fn node_of(t: &Tracked) -> Result<&NodeRef> {
    match &t.link {
        Link::Node(r) if r.tape.owner != std::thread::current().id() => Err(Error::Thread),
        Link::Node(r) => Ok(r),
        Link::Param(_) => Err(Error::Usage {
            message: "internal: a parameter has no node".into(),
        }),
    }
}

/// Back-propagates from `y`, accumulating into every parameter it reaches. With
/// `once`, the nodes passed free their saved values and cannot be passed again.
pub fn backward(y: &Tracked, dy: Option<Value>, once: bool) -> Result<()> {
    let seed = seed_for(&y.value(), dy)?;
    if let Link::Param(p) = &y.link {
        return p.accumulate(seed);
    }
    let r = node_of(y)?;
    let mut arena = r.tape.lock();
    if arena.epoch != r.epoch {
        return Err(Error::Consumed { op: r.op });
    }
    let mut walk = EagerWalk {
        arena: &mut arena,
        consume: once,
        into_params: true,
        eager: Eager,
    };
    sweep(&mut walk, r.id, seed)?;
    Ok(())
}

/// One differentiation call's scope: ops record on its tape until it is left.
pub struct Scope {
    tape: Arc<Tape>,
    nest: bool,
    depth: usize,
}

/// Enters a scope. Without `nest` it has a fresh tape, and values of enclosing scopes are
/// constants in it; with `nest` it records on the enclosing tape.
pub fn enter_scope(nest: bool) -> Scope {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        let tape = match s.frames.last() {
            Some(f) if nest => f.tape.clone(),
            _ => Tape::new(),
        };
        s.frames.push(Frame {
            tape: tape.clone(),
            outer: Vec::new(),
        });
        Scope {
            tape,
            nest,
            depth: s.frames.len(),
        }
    })
}

impl Scope {
    /// A leaf to differentiate with respect to. A value is borrowed (not copied); a
    /// tracked value on this scope's tape is used as it is.
    pub fn input(&self, x: Arg) -> Result<Tracked> {
        if let Arg::Tracked(t) = &x {
            if let Link::Node(r) = &t.link {
                if Arc::ptr_eq(&r.tape, &self.tape) && node_of(t).is_ok() {
                    let arena = self.tape.lock();
                    if arena.epoch == r.epoch && arena.nodes.get(r.id).is_some_and(|n| !n.consumed)
                    {
                        return Ok(t.clone());
                    }
                }
            }
            if let (Link::Param(_), true) = (&t.link, is_top_level(&self.tape)) {
                // Differentiate with respect to the parameter's leaf on this tape.
                let mut outer = Vec::new();
                let mut arena = self.tape.lock();
                let id = match resolve(&arena, &self.tape, &x, &mut outer, true)? {
                    Resolved::Node(id) => id,
                    Resolved::Leaf(leaf, value, needs) => {
                        push_leaf(&mut arena, &self.tape, leaf, value, needs)
                    }
                };
                return Ok(new_handle(&mut arena, &self.tape, id));
            }
            self.note_outer(x.clone());
        }
        let mut arena = self.tape.lock();
        let id = push(&mut arena, Op::Input, Inputs::new(), x.value(), true);
        Ok(new_handle(&mut arena, &self.tape, id))
    }

    fn note_outer(&self, x: Arg) {
        STATE.with(|s| {
            if let Some(f) = s.borrow_mut().frames.get_mut(self.depth - 1) {
                f.outer.push(x);
            }
        });
    }

    /// The gradients of `y` with respect to `inputs`, out of place (parameters'
    /// accumulators are not touched). Nested scopes return tracked gradients.
    pub fn gradient(
        &self,
        y: &Output,
        inputs: &[Tracked],
        seed: Option<Value>,
        retain: bool,
    ) -> Result<Vec<Output>> {
        let zeros = |t: &Tracked| {
            Ok(Output::Value(Value::full(
                &t.shape(),
                0.0,
                t.dtype(),
                "gradient",
            )?))
        };
        let y = match y {
            Output::Tracked(t) if matches!(&t.link, Link::Node(r) if Arc::ptr_eq(&r.tape, &self.tape)) => {
                t
            }
            Output::Tracked(t) if inputs.iter().any(|i| i.same(t)) => {
                let seed = seed_for(&t.value(), seed)?;
                return inputs
                    .iter()
                    .map(|i| {
                        if i.same(t) {
                            Ok(Output::Value(seed.clone()))
                        } else {
                            zeros(i)
                        }
                    })
                    .collect();
            }
            other => {
                seed_for(&other.value(), seed)?;
                return inputs.iter().map(zeros).collect();
            }
        };
        let r = node_of(y)?;
        let seed = seed_for(&r.value, seed)?;
        let wanted: Vec<Option<NodeId>> = inputs
            .iter()
            .map(|t| match &t.link {
                Link::Node(n) if Arc::ptr_eq(&n.tape, &self.tape) && n.epoch == r.epoch => {
                    Some(n.id)
                }
                _ => None,
            })
            .collect();
        let mut arena = self.tape.lock();
        if arena.epoch != r.epoch {
            return Err(Error::Consumed { op: r.op });
        }
        if self.nest {
            let rec = Recorder {
                arena: RefCell::new(&mut arena),
                error: RefCell::new(None),
            };
            let seed_id = rec.constant(seed);
            let grads = sweep(&mut RecordWalk { rec: &rec }, r.id, seed_id)?;
            let arena = rec.arena.into_inner();
            let mut out = Vec::with_capacity(inputs.len());
            for (t, w) in inputs.iter().zip(&wanted) {
                out.push(match w.and_then(|id| grads.get(id).copied().flatten()) {
                    Some(g) if arena.nodes.get(g).is_some_and(|n| n.needs_grad) => {
                        Output::Tracked(new_handle(arena, &self.tape, g))
                    }
                    Some(g) => {
                        Output::Value(arena.nodes.get(g).and_then(|n| n.value.clone()).ok_or(
                            Error::Usage {
                                message: "internal: missing gradient".into(),
                            },
                        )?)
                    }
                    None => zeros(t)?,
                });
            }
            return Ok(out);
        }
        let mut walk = EagerWalk {
            arena: &mut arena,
            consume: !retain,
            into_params: false,
            eager: Eager,
        };
        let mut grads = sweep(&mut walk, r.id, seed)?;
        let mut out = Vec::with_capacity(inputs.len());
        for (t, w) in inputs.iter().zip(&wanted) {
            out.push(
                match w.and_then(|id| grads.get_mut(id).and_then(Option::take)) {
                    Some(g) => Output::Value(g.cast(t.dtype())?),
                    None => zeros(t)?,
                },
            );
        }
        Ok(out)
    }

    /// Leaves the scope. If the computation used values of enclosing scopes as
    /// constants, each result is marked on the enclosing tape so that differentiating
    /// through it raises "pass nest=True" instead of silently treating it as constant.
    pub fn exit(self, results: Vec<Output>) -> Result<Vec<Output>> {
        let frame = STATE.with(|s| {
            let mut s = s.borrow_mut();
            if s.frames.len() == self.depth && self.depth > 1 {
                s.frames.pop()
            } else {
                None
            }
        });
        let mut outer = frame.map(|f| f.outer).unwrap_or_default();
        if self.depth == 2 {
            // Parameters used as constants directly under the top level are not marked:
            // the gradient stays a plain array, as in Tracker.jl.
            outer.retain(|a| !matches!(a, Arg::Tracked(t) if t.as_param().is_some()));
        }
        if !self.nest {
            // Retire the scope's tape: escaped handles become stale. The nodes are
            // dropped after the lock is released.
            let retired = self.tape.lock().retire(0);
            drop(retired);
        }
        if outer.is_empty() || self.nest {
            if self.nest && !outer.is_empty() {
                STATE.with(|s| {
                    if let Some(f) = s.borrow_mut().frames.last_mut() {
                        f.outer.extend(outer);
                    }
                });
            }
            return Ok(results);
        }
        let message: Arc<str> = Arc::from(
            "this value is a gradient computed by gradient(..., nest=False), which treats \
             the enclosing computation's tracked values as constants; pass nest=True to \
             differentiate through it",
        );
        results
            .into_iter()
            .map(|result| {
                let mut args = vec![result.into_arg()];
                args.extend(outer.iter().cloned());
                apply(Op::Nobacksies(message.clone()), &args)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracked(out: Output) -> Option<Tracked> {
        match out {
            Output::Tracked(t) => Some(t),
            Output::Value(_) => None,
        }
    }

    #[test]
    fn back_accumulates_into_a_parameter() -> Result<()> {
        let x = Tracked::param(Value::from_vec(&[3], vec![1., 2., 3.])?);
        let sq = apply(
            Op::Binary(Binary::Mul),
            &[Arg::Tracked(x.clone()), Arg::Tracked(x.clone())],
        )?;
        let s = apply(
            Op::Reduce {
                kind: crate::ops::reduce::Reduce::Sum,
                axes: smallvec::smallvec![0],
                keepdims: false,
            },
            &[sq.into_arg()],
        )?;
        let s = tracked(s).ok_or(Error::Usage {
            message: "untracked".into(),
        })?;
        backward(&s, None, true)?;
        assert_eq!(x.grad()?.to_f64_vec(), vec![2., 4., 6.]);
        // The nodes were consumed: a second pass names the op.
        assert_eq!(
            backward(&s, None, true).err(),
            Some(Error::Consumed { op: "sum" })
        );
        Ok(())
    }
}
