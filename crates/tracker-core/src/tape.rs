//! The tape: an arena of nodes in execution order, the handles that refer to them, the
//! scopes that decide where an op records, and the backward sweep.
//!
//! Nodes are appended as ops run, so the arena is already topologically ordered: the
//! backward pass is one reverse loop over it, with no recursion, sorting or hashing.
//! Parameters live outside the arena (value, gradient accumulator, version); a node
//! refers to a parameter through a leaf.
//!
//! A tape is cleared when no handle refers to an unconsumed node of it. While one does
//! (a value kept for later), the top-level tape frees the rest as it goes: before each
//! op it drops the nodes past the last one a handle needs, and when it has doubled it
//! compacts, keeping what live values reach and moving their handles (`Arena::trim`).
//!
//! ```
//! use tracker_core::{Tracked, Value, backward};
//!
//! # fn main() -> tracker_core::Result<()> {
//! let x = Tracked::param(Value::from_vec(&[2], vec![1.0, 2.0])?);
//! let y = x.exp()?.sum()?;
//! // The arena, in execution order: the parameter's leaf, then each op.
//! let ops: Vec<&str> = y.graph()?.iter().map(|node| node.op).collect();
//! assert_eq!(ops, ["param", "exp", "sum"]);
//! backward(&y, None, true)?; // one reverse loop over those nodes
//! let expected = [1f64.exp(), 2f64.exp()];
//! for (g, e) in x.grad()?.to_f64_vec().iter().zip(expected) {
//!     assert!((g - e).abs() <= e * f64::EPSILON); // within an ulp
//! }
//! # Ok(())
//! # }
//! ```

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::thread::ThreadId;

use smallvec::SmallVec;

use crate::error::{Error, Result};
use crate::op::{Contribution, Extern, Op};
use crate::ops::binary::Binary;
use crate::sweep;
use crate::value::{Dtype, Shape, Value};

/// A node's position in its tape: nodes are numbered in the order they were recorded,
/// so a node's inputs always have smaller ids.
///
/// ```
/// use tracker_core::{Tracked, Value};
///
/// # fn main() -> tracker_core::Result<()> {
/// let x = Tracked::param(Value::from_vec(&[2], vec![1.0, 2.0])?);
/// let graph = x.sin()?.graph()?;
/// assert_eq!(graph[1].inputs, vec![graph[0].id]); // sin reads the parameter's leaf
/// assert!(graph[0].id < graph[1].id);
/// # Ok(())
/// # }
/// ```
pub type NodeId = usize;

/// Where a handle points once its node has been freed by compaction.
const GONE: NodeId = NodeId::MAX;

/// The smallest arena that is compacted: below it, unreachable nodes wait for the next
/// clear.
const COMPACT_MIN: usize = 1024;

pub(crate) type Inputs = SmallVec<[NodeId; 2]>;

pub(crate) struct Node {
    pub(crate) op: Op,
    pub(crate) inputs: Inputs,
    /// The output; freed when a consuming sweep has passed (handles keep their own).
    pub(crate) value: Option<Value>,
    pub(crate) needs_grad: bool,
    pub(crate) consumed: bool,
    /// How many live handles refer to this node (counted on a top-level tape only).
    pub(crate) handles: u32,
    /// The handles made for this node, told its new place when the arena is compacted.
    refs: SmallVec<[Weak<NodeRef>; 1]>,
    /// The oldest and newest generations of the external rules this node depends on.
    reach: Option<(u32, u32)>,
}

pub(crate) struct Arena {
    pub(crate) nodes: Vec<Node>,
    /// Bumped each time the arena is cleared; handles from earlier epochs are stale.
    pub(crate) epoch: u64,
    /// Live handles that refer to unconsumed nodes: the arena is cleared when none do.
    pub(crate) live: usize,
    /// Where ops were recorded, kept only in anomaly mode.
    pub(crate) locations: Vec<(NodeId, Arc<str>)>,
    /// Sweeps under way on this tape: it is not cleared while one runs.
    pub(crate) sweeps: usize,
    /// The length at which the arena is next compacted.
    compact_at: usize,
    /// The generation of the newest external rule (see [`Tape::generation`]).
    generation: u32,
    /// The 0-d constants on the arena, by dtype and bits: the ops that take one (`2 * x`,
    /// `x ** 2`) share its leaf rather than each pushing their own. Forgotten whenever
    /// nodes move.
    scalars: Vec<((Dtype, u64), NodeId)>,
}

impl Node {
    /// Whether a sweep may start here: a live handle refers to the node, and no sweep
    /// has consumed it.
    fn is_root(&self) -> bool {
        self.handles > 0 && !self.consumed
    }
}

impl Arena {
    /// Empties the arena (its handles become stale) and returns the old nodes, for the
    /// caller to [`recycle`] once the lock is released.
    fn retire(&mut self) -> Vec<Node> {
        self.epoch += 1;
        self.live = 0;
        self.locations.clear();
        self.scalars.clear();
        self.compact_at = COMPACT_MIN;
        std::mem::replace(&mut self.nodes, spare_nodes())
    }

    /// Whether [`tidy`] has something to do on a tape that counts its handles (a `top`
    /// one): no sweep is under way, and either no handle refers to a node (the arena is
    /// cleared) or, `alone` on the thread's top-level tape, [`Arena::trim`] would remove
    /// nodes: the newest is dead, or the arena is due for compaction.
    fn untidy(&self, top: bool, alone: bool) -> bool {
        let trimmed = || {
            self.nodes.len() >= self.compact_at || self.nodes.last().is_some_and(|n| !n.is_root())
        };
        top && self.sweeps == 0
            && !self.nodes.is_empty()
            && (self.live == 0 || (alone && trimmed()))
    }

    /// Removes the nodes no sweep can reach any more, while handles keep others alive: the
    /// dead tail at once, and every unreachable node when the arena has doubled since it
    /// was last compacted. A sweep starts at a live handle's unconsumed node and follows
    /// inputs, which always lie before the node, so what is neither such a node nor an
    /// input of a kept unconsumed node is garbage. Handles of removed nodes are told they
    /// are gone (they stand for consumed values from then on), and kept ones their new
    /// place. Returns the removed nodes and the handles touched, for the caller to drop
    /// once the lock is released.
    fn trim(&mut self, tape: u64) -> (Vec<Node>, Vec<Arc<NodeRef>>) {
        let mut touched = Vec::new();
        let tail = self
            .nodes
            .iter()
            .rposition(Node::is_root)
            .map_or(0, |id| id + 1);
        if tail < self.nodes.len() {
            self.scalars.clear();
            let mut removed = self.nodes.split_off(tail);
            for (offset, node) in removed.iter_mut().enumerate() {
                self.retarget(node, tape, tail + offset, GONE, &mut touched);
            }
            self.locations.retain(|&(id, _)| id < tail);
            return (removed, touched);
        }
        if self.nodes.len() < self.compact_at {
            return (Vec::new(), touched);
        }
        let mut keep = vec![false; self.nodes.len()];
        for (id, node) in self.nodes.iter().enumerate().rev() {
            let kept = node.is_root() || keep.get(id).copied().unwrap_or(false);
            if let Some(k) = keep.get_mut(id) {
                *k = kept;
            }
            // A consumed node is kept only to raise when a sweep reaches it.
            if kept && !node.consumed {
                for &input in &node.inputs {
                    if let Some(k) = keep.get_mut(input) {
                        *k = true;
                    }
                }
            }
        }
        let mut place = vec![GONE; self.nodes.len()];
        let mut removed = Vec::new();
        self.scalars.clear();
        for (id, mut node) in std::mem::take(&mut self.nodes).into_iter().enumerate() {
            let new = if keep.get(id).copied().unwrap_or(false) {
                self.nodes.len()
            } else {
                GONE
            };
            if let Some(p) = place.get_mut(id) {
                *p = new;
            }
            self.retarget(&mut node, tape, id, new, &mut touched);
            if new == GONE {
                removed.push(node);
                continue;
            }
            if node.consumed {
                node.inputs.clear();
            }
            for input in node.inputs.iter_mut() {
                *input = place.get(*input).copied().unwrap_or(GONE);
            }
            self.nodes.push(node);
        }
        self.locations.retain_mut(|(id, _)| {
            *id = place.get(*id).copied().unwrap_or(GONE);
            *id != GONE
        });
        self.compact_at = (2 * self.nodes.len()).max(COMPACT_MIN);
        (removed, touched)
    }

    /// Moves `node` from `old` to `new` (or `GONE`): its handles and a parameter's
    /// remembered leaf follow it.
    fn retarget(
        &self,
        node: &mut Node,
        tape: u64,
        old: NodeId,
        new: NodeId,
        touched: &mut Vec<Arc<NodeRef>>,
    ) {
        node.refs.retain(|r| match r.upgrade() {
            Some(r) => {
                r.id.store(new, Ordering::Relaxed);
                touched.push(r);
                new != GONE
            }
            None => false,
        });
        if let Op::Param(p) = &node.op {
            let mut leaf = p.leaf.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((t, e, _, id)) = leaf.as_mut()
                && *t == tape
                && *e == self.epoch
                && *id == old
            {
                if new == GONE {
                    *leaf = None;
                } else {
                    *id = new;
                }
            }
        }
    }
}

/// One tape: the nodes recorded by one thread in one scope. Each thread has a top-level
/// tape, and each differentiation scope without `nest` a tape of its own. A tape is
/// cleared (its epoch bumped) when no handle refers to an unconsumed node of it any
/// more, so a training loop reuses one arena.
///
/// ```
/// use tracker_core::{Tracked, Value, current_tape};
///
/// # fn main() -> tracker_core::Result<()> {
/// let x = Tracked::param(Value::from_vec(&[2], vec![1.0, 2.0])?);
/// let y = x.exp()?;
/// let tape = current_tape();
/// assert!(std::sync::Arc::ptr_eq(&tape, y.tape().expect("y is recorded")));
/// assert_eq!(tape.len(), 2); // the parameter's leaf and exp
/// # Ok(())
/// # }
/// ```
pub struct Tape {
    arena: Mutex<Arena>,
    owner: ThreadId,
    id: u64,
    /// What an embedding (the Python boundary) keeps beside the tape.
    extension: Mutex<Option<Arc<dyn Any + Send + Sync>>>,
    /// Whether an external rule was ever recorded here (read without the lock).
    externs: AtomicBool,
    /// Whether the tape was made as a thread's top-level tape, the only kind that
    /// [`tidy`] clears or trims: only it counts its nodes' handles, and keeps weak links
    /// to them, to tell them their new place when [`Arena::trim`] moves nodes.
    top: bool,
}

static NEXT_TAPE_ID: AtomicU64 = AtomicU64::new(1);

/// The most nodes whose room a retired arena hands on.
const SPARE_MAX: usize = 1 << 16;

thread_local! {
    /// An emptied node vector of an arena retired on this thread: the next arena (each
    /// `gradient` call records on a new tape) starts with its room, instead of growing
    /// and copying its nodes anew.
    static SPARE_NODES: Cell<Vec<Node>> = const { Cell::new(Vec::new()) };
}

/// The spare node vector, or a new one.
fn spare_nodes() -> Vec<Node> {
    SPARE_NODES.try_with(Cell::take).unwrap_or_default()
}

/// Drops `nodes` (with no lock held: that may run Python code, or drop other tapes)
/// and keeps the emptied vector for the next arena, if it is the roomiest yet.
fn recycle(mut nodes: Vec<Node>) {
    nodes.clear();
    if nodes.capacity() <= SPARE_MAX {
        let _ = SPARE_NODES.try_with(|spare| {
            let old = spare.take();
            spare.set(if old.capacity() >= nodes.capacity() {
                old
            } else {
                nodes
            });
        });
    }
}

impl Drop for Tape {
    fn drop(&mut self) {
        let arena = self.arena.get_mut().unwrap_or_else(|e| e.into_inner());
        recycle(std::mem::take(&mut arena.nodes));
    }
}

impl Tape {
    fn new(top: bool) -> Arc<Tape> {
        Arc::new(Tape {
            arena: Mutex::new(Arena {
                nodes: spare_nodes(),
                epoch: 0,
                live: 0,
                locations: Vec::new(),
                sweeps: 0,
                compact_at: COMPACT_MIN,
                generation: 0,
                scalars: Vec::new(),
            }),
            owner: std::thread::current().id(),
            id: NEXT_TAPE_ID.fetch_add(1, Ordering::Relaxed),
            extension: Mutex::new(None),
            externs: AtomicBool::new(false),
            top,
        })
    }

    /// What an embedding keeps beside this tape (the Python boundary keeps the
    /// callables of custom rules there, visible to Python's garbage collector).
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// use tracker_core::current_tape;
    ///
    /// let tape = current_tape();
    /// assert!(tape.extension().is_none());
    /// tape.set_extension(Some(Arc::new(42u32)));
    /// let kept = tape.extension().expect("set above");
    /// assert_eq!(kept.downcast_ref::<u32>(), Some(&42));
    /// ```
    pub fn extension(&self) -> Option<Arc<dyn Any + Send + Sync>> {
        self.extension
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces what an embedding keeps beside this tape (`None` removes it).
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// use tracker_core::current_tape;
    ///
    /// let tape = current_tape();
    /// tape.set_extension(Some(Arc::new("callables")));
    /// tape.set_extension(None);
    /// assert!(tape.extension().is_none());
    /// ```
    pub fn set_extension(&self, value: Option<Arc<dyn Any + Send + Sync>>) {
        *self.extension.lock().unwrap_or_else(|e| e.into_inner()) = value;
    }

    /// The current epoch: bumped each time the arena is cleared. A handle remembers the
    /// epoch it was recorded in; one from an earlier epoch is stale.
    ///
    /// ```
    /// use tracker_core::{Tracked, Value, current_tape};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let x = Tracked::param(Value::from_vec(&[2], vec![1.0, 2.0])?);
    /// let y = x.exp()?;
    /// let epoch = current_tape().epoch();
    /// drop(y); // no handle refers to the tape's nodes any more...
    /// let _z = x.sin()?; // ...so the next op clears it before it records
    /// assert_eq!(current_tape().epoch(), epoch + 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn epoch(&self) -> u64 {
        self.lock().epoch
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Arena> {
        // A poisoned lock only means another thread panicked while holding it; the
        // arena itself stays consistent because every mutation completes under the lock.
        self.arena.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The generation of the external rule recorded last: each external rule starts a
    /// new one, so an embedding that keeps each generation's callables apart can free
    /// a rule's as soon as no value reaches it (see [`Tracked::extern_reach`]).
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// use tracker_core::{Arg, Extern, Output, Result, Tracked, Value, apply_extern, current_tape};
    ///
    /// /// `y = x` with the identity as pullback.
    /// struct Same;
    ///
    /// impl Extern for Same {
    ///     fn name(&self) -> &'static str {
    ///         "same"
    ///     }
    ///     fn pullback(&self, dy: Arg) -> Result<Vec<Option<Arg>>> {
    ///         Ok(vec![Some(dy)])
    ///     }
    ///     fn release(&self) {}
    /// }
    ///
    /// fn same(x: &Tracked) -> Result<Tracked> {
    ///     match apply_extern(Arc::new(Same), &[Arg::Tracked(x.clone())], x.value())? {
    ///         Output::Tracked(y) => Ok(y),
    ///         Output::Value(_) => unreachable!("x is tracked"),
    ///     }
    /// }
    ///
    /// # fn main() -> Result<()> {
    /// let x = Tracked::param(Value::from_vec(&[2], vec![1.0, 2.0])?);
    /// let before = current_tape().generation();
    /// let y = same(&x)?;
    /// assert_eq!(current_tape().generation(), before + 1);
    /// # drop(y);
    /// # Ok(())
    /// # }
    /// ```
    pub fn generation(&self) -> u32 {
        self.lock().generation
    }

    /// The number of nodes currently recorded (for tests and `show`).
    ///
    /// ```
    /// use tracker_core::{Tracked, Value, current_tape};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let x = Tracked::param(Value::from_vec(&[2], vec![1.0, 2.0])?);
    /// let y = x.mul(&x)?.sum()?; // x's leaf is shared by both uses
    /// assert_eq!(current_tape().len(), 3);
    /// # drop(y);
    /// # Ok(())
    /// # }
    /// ```
    pub fn len(&self) -> usize {
        self.lock().nodes.len()
    }

    /// Whether no node is recorded.
    ///
    /// ```
    /// use tracker_core::{enter_scope, current_tape};
    ///
    /// let scope = enter_scope(false); // a fresh tape
    /// assert!(current_tape().is_empty());
    /// # scope.exit(Vec::new()).ok();
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A parameter: a leaf whose gradient accumulates across backward passes. It lives
/// outside the arena (value, gradient, version), so clearing a tape never loses it;
/// [`Tracked::param`] makes one, and [`Tracked::as_param`] reaches it.
///
/// ```
/// use tracker_core::{Tracked, Value, backward};
///
/// # fn main() -> tracker_core::Result<()> {
/// let w = Tracked::param(Value::from_vec(&[2], vec![1.0, 2.0])?);
/// backward(&w.mul(&w)?.sum()?, None, true)?;
/// let param = w.as_param().expect("w is a parameter");
/// assert_eq!(param.grad()?.to_f64_vec(), vec![2.0, 4.0]);
/// param.update(&Value::from_vec(&[2], vec![-0.5, -1.0])?)?; // a gradient step
/// assert_eq!(param.value().to_f64_vec(), vec![0.5, 1.0]);
/// assert_eq!(param.grad()?.to_f64_vec(), vec![0.0, 0.0]);
/// # Ok(())
/// # }
/// ```
pub struct Param {
    value: RwLock<Value>,
    grad: Mutex<Option<Value>>,
    version: AtomicU64,
    /// The leaf node standing for this parameter on a tape: (tape, epoch, version, node).
    leaf: Mutex<Option<(u64, u64, u64, NodeId)>>,
}

impl Param {
    /// A new parameter owning `value`, with no gradient yet.
    ///
    /// ```
    /// use tracker_core::{Param, Value};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let p = Param::new(Value::from_vec(&[2], vec![1.0, 2.0])?);
    /// assert_eq!(p.value().to_f64_vec(), vec![1.0, 2.0]);
    /// assert_eq!(p.grad()?.to_f64_vec(), vec![0.0, 0.0]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(value: Value) -> Arc<Param> {
        Arc::new(Param {
            value: RwLock::new(value),
            grad: Mutex::new(None),
            version: AtomicU64::new(0),
            leaf: Mutex::new(None),
        })
    }

    /// The current value (sharing its buffer, not copying it).
    ///
    /// ```
    /// use tracker_core::{Tracked, Value};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let w = Tracked::param(Value::from_vec(&[1], vec![3.0])?);
    /// let param = w.as_param().expect("w is a parameter");
    /// assert_eq!(param.value().item(), Some(3.0));
    /// # Ok(())
    /// # }
    /// ```
    pub fn value(&self) -> Value {
        self.value.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The accumulated gradient, zeros if none has arrived. Each backward pass that
    /// reaches the parameter adds to it.
    ///
    /// ```
    /// use tracker_core::{Tracked, Value, backward};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let w = Tracked::param(Value::from_vec(&[1], vec![3.0])?);
    /// let param = w.as_param().expect("w is a parameter");
    /// assert_eq!(param.grad()?.item(), Some(0.0));
    /// backward(&w.mul(&w)?.sum()?, None, true)?;
    /// backward(&w.mul(&w)?.sum()?, None, true)?;
    /// assert_eq!(param.grad()?.item(), Some(12.0)); // 6 + 6
    /// # Ok(())
    /// # }
    /// ```
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

    /// Forgets the accumulated gradient (it reads as zeros again).
    ///
    /// ```
    /// use tracker_core::{Tracked, Value, backward};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let w = Tracked::param(Value::from_vec(&[1], vec![3.0])?);
    /// backward(&w.sum()?, None, true)?;
    /// let param = w.as_param().expect("w is a parameter");
    /// assert_eq!(param.grad()?.item(), Some(1.0));
    /// param.zero_grad();
    /// assert_eq!(param.grad()?.item(), Some(0.0));
    /// # Ok(())
    /// # }
    /// ```
    pub fn zero_grad(&self) {
        *self.grad.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Adds `delta` to the value and zeroes the gradient. The old buffer is left to
    /// whoever still holds it (a tape, a view): the new value is a new buffer.
    ///
    /// ```
    /// use tracker_core::{Tracked, Value};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let w = Tracked::param(Value::from_vec(&[2], vec![1.0, 2.0])?);
    /// let before = w.value();
    /// let param = w.as_param().expect("w is a parameter");
    /// param.update(&Value::from_vec(&[2], vec![0.5, 0.5])?)?;
    /// assert_eq!(w.value().to_f64_vec(), vec![1.5, 2.5]);
    /// assert_eq!(before.to_f64_vec(), vec![1.0, 2.0]); // the old buffer is unchanged
    /// assert!(param.update(&Value::from_vec(&[3], vec![0.0; 3])?).is_err());
    /// # Ok(())
    /// # }
    /// ```
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

    pub(crate) fn accumulate(&self, g: Value) -> Result<()> {
        let g = g.cast(self.value().dtype())?;
        let mut slot = self.grad.lock().unwrap_or_else(|e| e.into_inner());
        sweep::add_into(&mut slot, Contribution::Dense(g))
    }
}

/// A handle's link to the node it stands for.
pub(crate) struct NodeRef {
    tape: Arc<Tape>,
    /// The node's place, moved by compaction (under the tape's lock); `GONE` once freed.
    id: AtomicUsize,
    epoch: u64,
    op: &'static str,
    value: Value,
    /// Whether this handle keeps the tape from being cleared (see `Tracked::uncounted`).
    /// Only a top-level tape counts its handles: a scope's tape is freed whole when its
    /// last handle goes, and nothing on it before.
    counted: bool,
}

impl NodeRef {
    fn id(&self) -> NodeId {
        self.id.load(Ordering::Relaxed)
    }
}

impl Drop for NodeRef {
    fn drop(&mut self) {
        if !self.counted {
            return;
        }
        let mut arena = self.tape.lock();
        if arena.epoch == self.epoch {
            let counted = arena
                .nodes
                .get_mut(self.id())
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

/// One recorded op of the graph behind a value (see [`Tracked::graph`]).
///
/// ```
/// use tracker_core::{Dtype, Tracked, Value};
///
/// # fn main() -> tracker_core::Result<()> {
/// let x = Tracked::param(Value::from_vec(&[2], vec![1.0, 2.0])?);
/// let graph = x.tanh()?.sum()?.graph()?;
/// let sum = &graph[2];
/// assert_eq!((sum.op, sum.inputs.clone()), ("sum", vec![graph[1].id]));
/// assert_eq!(sum.value, Some((Default::default(), Dtype::F64))); // a 0-d float64
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct GraphNode {
    /// The node's place on its tape.
    pub id: NodeId,
    /// The name of the node's op ([`Op::name`]).
    pub op: &'static str,
    /// The output's shape and dtype (`None` where a consuming sweep freed it).
    pub value: Option<(Shape, Dtype)>,
    /// The nodes the op read, in argument order.
    pub inputs: Vec<NodeId>,
}

#[derive(Clone)]
enum Link {
    Param(Arc<Param>),
    Node(Arc<NodeRef>),
}

/// A tracked value: a parameter, or a node of a tape. Cheap to clone (clones are
/// handles to the same value). Ops on tracked values record; the common ones are
/// methods, and every [`Op`] runs through [`apply`].
///
/// ```
/// use tracker_core::{Tracked, Value, backward};
///
/// # fn main() -> tracker_core::Result<()> {
/// let w = Tracked::param(Value::from_vec(&[2], vec![0.5, -1.0])?);
/// let x = Tracked::param(Value::from_vec(&[2], vec![2.0, 3.0])?);
/// let y = w.mul(&x)?.sum()?.tanh()?; // tanh(w · x)
/// assert_eq!(y.op_name(), "tanh");
/// backward(&y, None, true)?;
/// let slope = 1.0 - (-2.0f64).tanh().powi(2);
/// assert_eq!(w.grad()?.to_f64_vec(), vec![2.0 * slope, 3.0 * slope]);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Tracked {
    link: Link,
}

impl Tracked {
    /// The node this handle stands for, if it is a node of `tape` at `epoch`.
    pub(crate) fn node_on(&self, tape: &Arc<Tape>, epoch: u64) -> Option<NodeId> {
        match &self.link {
            Link::Node(r) if Arc::ptr_eq(&r.tape, tape) && r.epoch == epoch && r.id() != GONE => {
                Some(r.id())
            }
            _ => None,
        }
    }

    /// A new parameter (a leaf) owning `value`: what [`backward`] leaves gradients on.
    ///
    /// ```
    /// use tracker_core::{Tracked, Value};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let w = Tracked::param(Value::from_vec(&[2], vec![1.0, 2.0])?);
    /// assert!(w.as_param().is_some());
    /// assert_eq!(w.op_name(), "param");
    /// # Ok(())
    /// # }
    /// ```
    pub fn param(value: Value) -> Tracked {
        Tracked {
            link: Link::Param(Param::new(value)),
        }
    }

    /// The value (for a parameter, its current value).
    ///
    /// ```
    /// use tracker_core::{Tracked, Value};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let x = Tracked::param(Value::from_vec(&[2], vec![1.0, 4.0])?);
    /// assert_eq!(x.value().to_f64_vec(), vec![1.0, 4.0]);
    /// assert_eq!(x.powf(0.5)?.value().to_f64_vec(), vec![1.0, 2.0]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn value(&self) -> Value {
        match &self.link {
            Link::Param(p) => p.value(),
            Link::Node(r) => r.value.clone(),
        }
    }

    /// The value's shape.
    ///
    /// ```
    /// use tracker_core::{Tracked, Value};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let x = Tracked::param(Value::from_vec(&[2, 3], vec![0.0; 6])?);
    /// assert_eq!(x.shape().as_slice(), &[2, 3]);
    /// assert!(x.sum()?.shape().is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn shape(&self) -> Shape {
        self.with_value(|v| crate::value::copy_shape(v.shape()))
    }

    /// The value's dtype.
    ///
    /// ```
    /// use tracker_core::{Dtype, Tracked, Value};
    ///
    /// let x = Tracked::param(Value::scalar(1.0, Dtype::F32));
    /// assert_eq!(x.dtype(), Dtype::F32);
    /// ```
    pub fn dtype(&self) -> Dtype {
        self.with_value(Value::dtype)
    }

    /// `f` of the value, without cloning it.
    fn with_value<R>(&self, f: impl FnOnce(&Value) -> R) -> R {
        match &self.link {
            Link::Param(p) => f(&p.value.read().unwrap_or_else(|e| e.into_inner())),
            Link::Node(r) => f(&r.value),
        }
    }

    /// A handle to the same value that does not keep its tape from being cleared: for
    /// what a rule's pullback captures, which runs only while the rule's node (and so
    /// the tape) is alive.
    ///
    /// ```
    /// use tracker_core::{Tracked, Value};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let x = Tracked::param(Value::from_vec(&[1], vec![0.0])?);
    /// let y = x.exp()?;
    /// let weak = y.uncounted();
    /// assert!(weak.same(&y));
    /// drop(y);
    /// let _z = x.sin()?; // only `weak` referred to the tape: it was cleared first
    /// assert!(weak.graph().is_err()); // the node is gone...
    /// assert_eq!(weak.value().item(), Some(1.0)); // ...its value is kept
    /// # Ok(())
    /// # }
    /// ```
    pub fn uncounted(&self) -> Tracked {
        match &self.link {
            Link::Param(_) => self.clone(),
            Link::Node(r) => {
                let mut arena = r.tape.lock();
                let copy = Arc::new(NodeRef {
                    tape: r.tape.clone(),
                    id: AtomicUsize::new(r.id()),
                    epoch: r.epoch,
                    op: r.op,
                    value: r.value.clone(),
                    counted: false,
                });
                if r.tape.top
                    && arena.epoch == r.epoch
                    && let Some(node) = arena.nodes.get_mut(r.id())
                {
                    node.refs.push(Arc::downgrade(&copy));
                }
                Tracked {
                    link: Link::Node(copy),
                }
            }
        }
    }

    /// The tape of a recorded value (`None` for a parameter).
    ///
    /// ```
    /// use tracker_core::{Tracked, Value, current_tape};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let x = Tracked::param(Value::from_vec(&[1], vec![0.0])?);
    /// assert!(x.tape().is_none());
    /// let y = x.exp()?;
    /// assert!(y.tape().is_some_and(|tape| std::sync::Arc::ptr_eq(tape, &current_tape())));
    /// # Ok(())
    /// # }
    /// ```
    pub fn tape(&self) -> Option<&Arc<Tape>> {
        match &self.link {
            Link::Param(_) => None,
            Link::Node(r) => Some(&r.tape),
        }
    }

    /// The recorded ops this value depends on, in the order they were recorded (each
    /// node's inputs before it), for `show` and `to_dot`. A parameter is one node.
    /// Fails when the tape behind the value has been cleared.
    ///
    /// ```
    /// use tracker_core::{Tracked, Value};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let a = Tracked::param(Value::from_vec(&[2], vec![1.0, 2.0])?);
    /// let b = Tracked::param(Value::from_vec(&[2], vec![3.0, 4.0])?);
    /// let unused = b.exp()?; // recorded, but not behind y
    /// let y = a.mul(&b)?;
    /// let ops: Vec<&str> = y.graph()?.iter().map(|node| node.op).collect();
    /// assert_eq!(ops, ["param", "param", "multiply"]);
    /// assert_eq!(a.graph()?.len(), 1);
    /// # drop(unused);
    /// # Ok(())
    /// # }
    /// ```
    pub fn graph(&self) -> Result<Vec<GraphNode>> {
        let r = match &self.link {
            Link::Param(p) => {
                let value = p.value();
                return Ok(vec![GraphNode {
                    id: 0,
                    op: "param",
                    value: Some((value.shape().into(), value.dtype())),
                    inputs: Vec::new(),
                }]);
            }
            Link::Node(r) => r,
        };
        let arena = r.tape.lock();
        let root = r.id();
        if arena.epoch != r.epoch || root >= arena.nodes.len() {
            return Err(Error::Usage {
                message: "show: the tape behind this value was cleared".into(),
            });
        }
        let mut wanted = vec![false; root + 1];
        if let Some(w) = wanted.get_mut(root) {
            *w = true;
        }
        let mut out = Vec::new();
        for id in (0..=root).rev() {
            let (Some(true), Some(node)) = (wanted.get(id).copied(), arena.nodes.get(id)) else {
                continue;
            };
            for &input in &node.inputs {
                if let Some(w) = wanted.get_mut(input) {
                    *w = true;
                }
            }
            let value = match (&node.value, id == root) {
                (Some(v), _) => Some(v),
                (None, true) => Some(&r.value),
                (None, false) => None,
            };
            out.push(GraphNode {
                id,
                op: node.op.name(),
                value: value.map(|v| (v.shape().into(), v.dtype())),
                inputs: node.inputs.to_vec(),
            });
        }
        out.reverse();
        Ok(out)
    }

    /// The oldest and newest generations ([`Tape::generation`]) of the external rules
    /// a backward pass from this value can reach; `None` when it reaches none. An
    /// embedding keeps a rule's callable alive through the values that can reach it.
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// use tracker_core::{Arg, Extern, Output, Result, Tracked, Value, apply_extern, current_tape};
    ///
    /// /// `y = x` with the identity as pullback.
    /// struct Same;
    ///
    /// impl Extern for Same {
    ///     fn name(&self) -> &'static str {
    ///         "same"
    ///     }
    ///     fn pullback(&self, dy: Arg) -> Result<Vec<Option<Arg>>> {
    ///         Ok(vec![Some(dy)])
    ///     }
    ///     fn release(&self) {}
    /// }
    ///
    /// fn same(x: &Tracked) -> Result<Tracked> {
    ///     match apply_extern(Arc::new(Same), &[Arg::Tracked(x.clone())], x.value())? {
    ///         Output::Tracked(y) => Ok(y),
    ///         Output::Value(_) => unreachable!("x is tracked"),
    ///     }
    /// }
    ///
    /// # fn main() -> Result<()> {
    /// let x = Tracked::param(Value::from_vec(&[2], vec![1.0, 2.0])?);
    /// let plain = x.exp()?;
    /// assert_eq!(plain.extern_reach(), None); // no rule behind it
    /// let a = same(&x)?;
    /// let b = same(&plain)?;
    /// let (ga, gb) = (a.extern_reach().unwrap(), b.extern_reach().unwrap());
    /// assert_eq!(gb.0, ga.0 + 1); // one generation per rule
    /// assert_eq!(a.add(&b)?.extern_reach(), Some((ga.0, gb.1))); // both reached
    /// # Ok(())
    /// # }
    /// ```
    pub fn extern_reach(&self) -> Option<(u32, u32)> {
        let Link::Node(r) = &self.link else {
            return None;
        };
        if !r.tape.externs.load(Ordering::Relaxed) {
            return None;
        }
        let arena = r.tape.lock();
        if arena.epoch != r.epoch {
            return None;
        }
        arena.nodes.get(r.id()).and_then(|n| n.reach)
    }

    /// The parameter behind this handle, if it is one.
    ///
    /// ```
    /// use tracker_core::{Tracked, Value};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let w = Tracked::param(Value::from_vec(&[1], vec![2.0])?);
    /// assert_eq!(w.as_param().map(|p| p.value().to_f64_vec()), Some(vec![2.0]));
    /// assert!(w.exp()?.as_param().is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn as_param(&self) -> Option<&Arc<Param>> {
        match &self.link {
            Link::Param(p) => Some(p),
            Link::Node(_) => None,
        }
    }

    /// The name of the op that computed this value (`"param"` for a parameter).
    ///
    /// ```
    /// use tracker_core::{Tracked, Value};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let w = Tracked::param(Value::from_vec(&[2], vec![1.0, 2.0])?);
    /// assert_eq!(w.op_name(), "param");
    /// assert_eq!(w.matmul(&w)?.op_name(), "matmul");
    /// # Ok(())
    /// # }
    /// ```
    pub fn op_name(&self) -> &'static str {
        match &self.link {
            Link::Param(_) => "param",
            Link::Node(r) => r.op,
        }
    }

    /// The parameter's accumulated gradient (zeros before any arrives). Only
    /// parameters accumulate: for a recorded value this is an error, and [`Scope::gradient`]
    /// (or [`gradient`](crate::gradient)) differentiates with respect to other values.
    ///
    /// ```
    /// use tracker_core::{Tracked, Value, backward};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let w = Tracked::param(Value::from_vec(&[2], vec![1.0, 2.0])?);
    /// let y = w.powf(2.0)?.sum()?;
    /// backward(&y, None, true)?;
    /// assert_eq!(w.grad()?.to_f64_vec(), vec![2.0, 4.0]);
    /// assert!(y.grad().is_err());
    /// # Ok(())
    /// # }
    /// ```
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
    ///
    /// ```
    /// use tracker_core::{Tracked, Value};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let x = Tracked::param(Value::from_vec(&[1], vec![1.0])?);
    /// let y = x.exp()?;
    /// assert!(y.same(&y.clone()));
    /// assert!(!y.same(&x.exp()?)); // equal values, two nodes
    /// # Ok(())
    /// # }
    /// ```
    pub fn same(&self, other: &Tracked) -> bool {
        match (&self.link, &other.link) {
            (Link::Param(a), Link::Param(b)) => Arc::ptr_eq(a, b),
            (Link::Node(a), Link::Node(b)) => {
                Arc::ptr_eq(a, b)
                    || (Arc::ptr_eq(&a.tape, &b.tape)
                        && a.id() == b.id()
                        && a.id() != GONE
                        && a.epoch == b.epoch)
            }
            _ => false,
        }
    }
}

/// An argument of an op: a tracked value or a constant.
///
/// ```
/// use tracker_core::ops::binary::Binary;
/// use tracker_core::{Arg, Op, Output, Tracked, Value, apply};
///
/// # fn main() -> tracker_core::Result<()> {
/// let x = Arg::Tracked(Tracked::param(Value::from_vec(&[2], vec![1.0, 2.0])?));
/// let ten = Arg::Value(Value::from_vec(&[1], vec![10.0])?);
/// let y = apply(Op::Binary(Binary::Mul), &[x, ten])?;
/// assert!(matches!(&y, Output::Tracked(_)));
/// assert_eq!(y.value().to_f64_vec(), vec![10.0, 20.0]);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub enum Arg {
    /// A tracked value: the op records, and differentiates with respect to it.
    Tracked(Tracked),
    /// A constant.
    Value(Value),
}

impl Arg {
    /// The argument's value (a tracked value's current value).
    ///
    /// ```
    /// use tracker_core::{Arg, Tracked, Value};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let x = Value::from_vec(&[2], vec![1.0, 2.0])?;
    /// assert_eq!(Arg::Value(x.clone()).value().to_f64_vec(), vec![1.0, 2.0]);
    /// assert_eq!(Arg::Tracked(Tracked::param(x)).value().to_f64_vec(), vec![1.0, 2.0]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn value(&self) -> Value {
        match self {
            Arg::Tracked(t) => t.value(),
            Arg::Value(v) => v.clone(),
        }
    }

    /// `f` of the argument's value, without cloning it (for its size or dtype).
    ///
    /// ```
    /// use tracker_core::{Arg, Tracked, Value};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let x = Tracked::param(Value::from_vec(&[2], vec![1.0, 2.0])?);
    /// assert_eq!(Arg::Tracked(x).with_value(Value::len), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_value<R>(&self, f: impl FnOnce(&Value) -> R) -> R {
        match self {
            Arg::Tracked(t) => t.with_value(f),
            Arg::Value(v) => f(v),
        }
    }
}

/// What an op returns: tracked, or a plain value when nothing is recorded (`no_grad`,
/// or no argument is differentiated in this scope).
///
/// ```
/// use tracker_core::ops::unary::Unary;
/// use tracker_core::{Arg, Op, Output, Tracked, Value, apply};
///
/// # fn main() -> tracker_core::Result<()> {
/// let x = Value::from_vec(&[1], vec![0.0])?;
/// let exp = Op::Unary(Unary::Exp);
/// assert!(matches!(apply(exp.clone(), &[Arg::Value(x.clone())])?, Output::Value(_)));
/// let tracked = apply(exp, &[Arg::Tracked(Tracked::param(x))])?;
/// assert!(matches!(tracked, Output::Tracked(_)));
/// # Ok(())
/// # }
/// ```
pub enum Output {
    /// A recorded result.
    Tracked(Tracked),
    /// A plain result: nothing was recorded.
    Value(Value),
}

impl Output {
    /// The result's value, recorded or not.
    ///
    /// ```
    /// use tracker_core::ops::unary::Unary;
    /// use tracker_core::{Arg, Op, Value, apply};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let x = Arg::Value(Value::from_vec(&[2], vec![-1.0, 1.0])?);
    /// assert_eq!(apply(Op::Unary(Unary::Abs), &[x])?.value().to_f64_vec(), vec![1.0, 1.0]);
    /// # Ok(())
    /// # }
    /// ```
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
    /// Parameters this scope differentiates (implicit `Params`): their leaf nodes.
    watched: Vec<(Arc<Param>, u64, NodeId)>,
}

struct ThreadState {
    frames: Vec<Frame>,
    grad_enabled: bool,
    anomaly: bool,
}

thread_local! {
    static STATE: RefCell<ThreadState> = RefCell::new(ThreadState {
        frames: vec![Frame { tape: Tape::new(true), outer: Vec::new(), watched: Vec::new() }],
        grad_enabled: true,
        anomaly: false,
    });
}

/// Told when a tape's arena has been cleared (after its lock is released), so that an
/// embedding can free what it keeps for the old nodes.
static RETIRED: std::sync::OnceLock<fn(&Tape)> = std::sync::OnceLock::new();

/// Installs the function told when a tape's arena is cleared, once per process (later
/// calls are ignored). It runs after the tape's lock is released, so it may record.
///
/// ```rust,standalone_crate
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// use tracker_core::{Tape, Tracked, Value, set_retire_hook};
///
/// static CLEARED: AtomicUsize = AtomicUsize::new(0);
///
/// fn count(_tape: &Tape) {
///     CLEARED.fetch_add(1, Ordering::SeqCst);
/// }
///
/// # fn main() -> tracker_core::Result<()> {
/// set_retire_hook(count);
/// let x = Tracked::param(Value::from_vec(&[1], vec![0.0])?);
/// drop(x.exp()?);
/// let _y = x.sin()?; // clears the tape first: nothing refers to its nodes
/// assert_eq!(CLEARED.load(Ordering::SeqCst), 1);
/// # Ok(())
/// # }
/// ```
pub fn set_retire_hook(hook: fn(&Tape)) {
    let _ = RETIRED.set(hook);
}

fn retired(tape: &Tape) {
    if let Some(hook) = RETIRED.get() {
        hook(tape);
    }
}

/// Polled by long backward passes: an error (say, a keyboard interrupt) stops them.
static INTERRUPT: std::sync::OnceLock<fn() -> Result<()>> = std::sync::OnceLock::new();

/// Installs the function that long backward passes poll for interrupts (Ctrl-C), once
/// per process (later calls are ignored). An error it returns stops the pass and is
/// returned by it. Sweeps poll it every 4096 nodes, and at the last.
///
/// ```rust,standalone_crate
/// use tracker_core::{Error, Result, Tracked, Value, backward, set_interrupt_hook};
///
/// fn interrupted() -> Result<()> {
///     Err(Error::Usage { message: "interrupted".into() })
/// }
///
/// # fn main() -> Result<()> {
/// set_interrupt_hook(interrupted);
/// let x = Tracked::param(Value::from_vec(&[2], vec![1.0, 2.0])?);
/// let error = backward(&x.exp()?.sum()?, None, true).unwrap_err();
/// assert_eq!(error.to_string(), "interrupted");
/// # Ok(())
/// # }
/// ```
pub fn set_interrupt_hook(hook: fn() -> Result<()>) {
    let _ = INTERRUPT.set(hook);
}

/// Polls the interrupt hook, if one is installed.
pub(crate) fn check_interrupt() -> Result<()> {
    INTERRUPT.get().map_or(Ok(()), |hook| hook())
}

/// Says where the op being recorded was called from (installed by an embedding).
static LOCATION: std::sync::OnceLock<fn() -> Option<String>> = std::sync::OnceLock::new();

/// Installs the function that says where an op is recorded (for anomaly mode), once
/// per process (later calls are ignored). It is asked only in anomaly mode, at each
/// recorded op.
///
/// ```rust,standalone_crate
/// use tracker_core::{Error, Tracked, Value, backward, set_anomaly, set_location_hook};
///
/// fn here() -> Option<String> {
///     Some("model.rs:12".into())
/// }
///
/// # fn main() -> tracker_core::Result<()> {
/// set_location_hook(here);
/// set_anomaly(true);
/// let x = Tracked::param(Value::from_vec(&[1], vec![0.0])?);
/// let error = backward(&x.powf(0.5)?.sum()?, None, true).unwrap_err();
/// assert_eq!(
///     error,
///     Error::Anomaly { op: "power", location: Some("model.rs:12".into()) }
/// );
/// # Ok(())
/// # }
/// ```
pub fn set_location_hook(hook: fn() -> Option<String>) {
    let _ = LOCATION.set(hook);
}

/// Turns anomaly mode on or off for this thread; returns the previous setting. In
/// anomaly mode ops remember where they were recorded, and a backward pass raises at
/// the first op whose gradient is NaN or infinite.
///
/// ```
/// use tracker_core::{Error, Tracked, Value, backward, set_anomaly};
///
/// # fn main() -> tracker_core::Result<()> {
/// let x = Tracked::param(Value::from_vec(&[2], vec![0.0, 1.0])?);
/// assert!(!set_anomaly(true));
/// let y = x.powf(0.5)?.sum()?; // d/dx √x = 1/(2√x) is infinite at 0
/// assert!(matches!(backward(&y, None, true), Err(Error::Anomaly { op: "power", .. })));
/// assert!(set_anomaly(false));
/// # Ok(())
/// # }
/// ```
pub fn set_anomaly(enabled: bool) -> bool {
    STATE.with(|s| std::mem::replace(&mut s.borrow_mut().anomaly, enabled))
}

pub(crate) fn anomaly() -> bool {
    STATE.with(|s| s.borrow().anomaly)
}

/// Gives this thread a fresh top-level tape (outside any differentiation call); values
/// recorded on the old one stay usable as constants. For isolating tests.
///
/// ```
/// use std::sync::Arc;
///
/// use tracker_core::{Tracked, Value, current_tape, reset_thread_tape};
///
/// # fn main() -> tracker_core::Result<()> {
/// let x = Tracked::param(Value::from_vec(&[1], vec![0.0])?);
/// let y = x.exp()?;
/// let old = current_tape();
/// reset_thread_tape();
/// assert!(!Arc::ptr_eq(&old, &current_tape()));
/// assert_eq!(y.add(&x)?.value().item(), Some(1.0)); // y's value is still usable
/// # Ok(())
/// # }
/// ```
pub fn reset_thread_tape() {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        if s.frames.len() == 1
            && let Some(frame) = s.frames.first_mut()
        {
            frame.tape = Tape::new(true);
            frame.watched.clear();
            frame.outer.clear();
        }
    });
}

/// Turns recording on or off for this thread; returns the previous setting. With
/// recording off, ops on tracked values compute plain values (PyTorch's `no_grad`).
///
/// ```
/// use tracker_core::ops::unary::Unary;
/// use tracker_core::{Arg, Op, Output, Tracked, Value, apply, set_grad_enabled};
///
/// # fn main() -> tracker_core::Result<()> {
/// let x = Arg::Tracked(Tracked::param(Value::from_vec(&[1], vec![0.0])?));
/// assert!(set_grad_enabled(false));
/// let y = apply(Op::Unary(Unary::Exp), &[x])?;
/// assert!(matches!(y, Output::Value(_)));
/// assert!(!set_grad_enabled(true));
/// # Ok(())
/// # }
/// ```
pub fn set_grad_enabled(enabled: bool) -> bool {
    STATE.with(|s| std::mem::replace(&mut s.borrow_mut().grad_enabled, enabled))
}

/// The tape that ops of this thread record on now: the innermost scope's, or the
/// thread's top-level tape.
///
/// ```
/// use std::sync::Arc;
///
/// use tracker_core::{current_tape, enter_scope};
///
/// # fn main() -> tracker_core::Result<()> {
/// let top = current_tape();
/// let scope = enter_scope(false);
/// assert!(!Arc::ptr_eq(&top, &current_tape())); // the scope's own tape
/// scope.exit(Vec::new())?;
/// assert!(Arc::ptr_eq(&top, &current_tape()));
/// # Ok(())
/// # }
/// ```
pub fn current_tape() -> Arc<Tape> {
    STATE
        .with(|s| s.borrow().frames.last().map(|f| f.tape.clone()))
        .unwrap_or_else(|| Tape::new(false))
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

/// The leaf of a parameter that a scope recording on the current tape differentiates
/// (implicit `Params`): the innermost frame, and the enclosing ones it nests in.
fn watched_leaf(p: &Arc<Param>, epoch: u64) -> Option<NodeId> {
    STATE.with(|s| {
        let s = s.borrow();
        let tape = &s.frames.last()?.tape;
        s.frames
            .iter()
            .rev()
            .take_while(|f| Arc::ptr_eq(&f.tape, tape))
            .flat_map(|f| f.watched.iter())
            .find(|(q, e, _)| Arc::ptr_eq(p, q) && *e == epoch)
            .map(|&(_, _, id)| id)
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
                if let Some(id) = watched_leaf(p, arena.epoch) {
                    return Ok(Resolved::Node(id));
                }
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
                    let consumed = arena.epoch != r.epoch
                        || arena.nodes.get(r.id()).is_none_or(|n| n.consumed);
                    return Ok(if consumed {
                        Resolved::Leaf(Op::Consumed(r.op), r.value.clone(), true)
                    } else {
                        Resolved::Node(r.id())
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

pub(crate) fn push(
    arena: &mut Arena,
    op: Op,
    inputs: Inputs,
    value: Value,
    needs_grad: bool,
) -> NodeId {
    let own = matches!(op, Op::Extern(_)).then(|| {
        arena.generation = arena.generation.saturating_add(1);
        (arena.generation, arena.generation)
    });
    let reach = inputs
        .iter()
        .filter_map(|&i| arena.nodes.get(i).and_then(|n| n.reach))
        .chain(own)
        .reduce(|(a, b), (c, d)| (a.min(c), b.max(d)));
    arena.nodes.push(Node {
        op,
        inputs,
        value: Some(value),
        needs_grad,
        consumed: false,
        handles: 0,
        refs: SmallVec::new(),
        reach,
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

/// The leaf of constant `value`: for a 0-d one, the leaf already pushed for the same
/// value and dtype if there is one (W6, a loop of scalar ops, pushed a constant for
/// nearly every op).
pub(crate) fn push_constant(arena: &mut Arena, value: Value) -> NodeId {
    /// Distinct scalars remembered at most; a loop uses a handful.
    const SCALARS: usize = 16;
    let key = match value.item() {
        Some(v) if value.shape().is_empty() => (value.dtype(), v.to_bits()),
        _ => return push(arena, Op::Const, Inputs::new(), value, false),
    };
    if let Some(&(_, id)) = arena.scalars.iter().find(|(k, _)| *k == key) {
        return id;
    }
    let id = push(arena, Op::Const, Inputs::new(), value, false);
    if arena.scalars.len() < SCALARS {
        arena.scalars.push((key, id));
    }
    id
}

pub(crate) fn new_handle(arena: &mut Arena, tape: &Arc<Tape>, id: NodeId) -> Tracked {
    let (op, value) = match arena.nodes.get(id) {
        Some(node) => (node.op.name(), node.value.clone()),
        None => ("constant", None),
    };
    let r = Arc::new(NodeRef {
        tape: tape.clone(),
        id: AtomicUsize::new(id),
        epoch: arena.epoch,
        op,
        value: value.unwrap_or_else(|| Value::scalar(f64::NAN, Dtype::F64)),
        counted: tape.top,
    });
    if tape.top {
        if let Some(node) = arena.nodes.get_mut(id) {
            node.handles += 1;
            node.refs.push(Arc::downgrade(&r));
        }
        arena.live += 1;
    }
    Tracked {
        link: Link::Node(r),
    }
}

/// Whether `op` needs its inputs in one dtype.
fn unifies_dtypes(op: &Op) -> bool {
    matches!(
        op,
        Op::Binary(_)
            | Op::Special(_)
            | Op::Where(_)
            | Op::Matmul
            | Op::MatmulT { .. }
            | Op::Solve
            | Op::SolveTriangular { .. }
    )
}

/// Runs `op` on `args`, recording it on the current tape when an argument is tracked
/// and recording is on. Mixed dtypes are promoted as `np.result_type`.
///
/// ```
/// use tracker_core::ops::binary::Binary;
/// use tracker_core::{Arg, Dtype, Op, Tracked, Value, apply, backward};
///
/// # fn main() -> tracker_core::Result<()> {
/// let x = Tracked::param(Value::from_vec(&[2], vec![1.0, 2.0])?.cast(Dtype::F32)?);
/// let scale = Arg::Value(Value::from_vec(&[2], vec![0.5, 0.25])?); // float64
/// let y = apply(Op::Binary(Binary::Mul), &[Arg::Tracked(x.clone()), scale])?;
/// assert_eq!(y.value().dtype(), Dtype::F64); // promoted
/// let tracker_core::Output::Tracked(y) = y else { unreachable!("x is tracked") };
/// backward(&y.sum()?, None, true)?;
/// assert_eq!(x.grad()?.dtype(), Dtype::F32); // the gradient has the parameter's dtype
/// assert_eq!(x.grad()?.to_f64_vec(), vec![0.5, 0.25]);
/// # Ok(())
/// # }
/// ```
pub fn apply(op: Op, args: &[Arg]) -> Result<Output> {
    record(op, args, None)
}

/// Records an external rule (custom rule, hook, checkpoint) on `args`, whose forward
/// value its caller computed. The sweep calls the rule's
/// [`pullback`](Extern::pullback) with the gradient of that value.
///
/// ```
/// use std::sync::Arc;
///
/// use tracker_core::{Arg, Extern, Output, Result, Tracked, Value, apply_extern, backward};
///
/// /// The identity, as a rule: its pullback passes the gradient through.
/// struct Identity;
///
/// impl Extern for Identity {
///     fn name(&self) -> &'static str {
///         "identity"
///     }
///     fn pullback(&self, dy: Arg) -> Result<Vec<Option<Arg>>> {
///         Ok(vec![Some(dy)])
///     }
///     fn release(&self) {}
/// }
///
/// # fn main() -> Result<()> {
/// let x = Tracked::param(Value::from_vec(&[2], vec![1.0, 2.0])?);
/// let y = apply_extern(Arc::new(Identity), &[Arg::Tracked(x.clone())], x.value())?;
/// let Output::Tracked(y) = y else { unreachable!("x is tracked") };
/// assert_eq!(y.op_name(), "identity");
/// backward(&y.mul(&y)?.sum()?, None, true)?;
/// assert_eq!(x.grad()?.to_f64_vec(), vec![2.0, 4.0]);
/// # Ok(())
/// # }
/// ```
pub fn apply_extern(rule: Arc<dyn Extern>, args: &[Arg], value: Value) -> Result<Output> {
    record(Op::Extern(rule), args, Some(value))
}

/// Frees what no handle can reach before an op records on `tape`: the whole arena
/// (keeping its capacity) when no handle refers to an unconsumed node of it, or else,
/// on the thread's top-level tape outside any differentiation call (where no node id
/// is held outside the arena), the nodes `Arena::trim` finds unreachable. What is freed
/// is dropped, and the embedding told, after the lock is released: dropping borrowed
/// NumPy arrays or a rule's pullback can run Python code, which may record.
fn tidy(tape: &Tape, alone: bool) {
    let (removed, touched, cleared) = {
        let mut arena = tape.lock();
        if !arena.untidy(tape.top, alone) {
            return;
        }
        if arena.live == 0 {
            (arena.retire(), Vec::new(), true)
        } else {
            let (removed, touched) = arena.trim(tape.id);
            (removed, touched, false)
        }
    };
    drop(touched);
    if cleared {
        recycle(removed);
        retired(tape);
        return;
    }
    for node in removed {
        if let Op::Extern(rule) = &node.op {
            rule.release();
        }
    }
}

/// The value node `id` holds: every node an op reads while it is recorded holds one
/// (only a sweep frees them, and only from nodes it has passed).
fn stored(arena: &Arena, id: NodeId) -> Result<&Value> {
    arena
        .nodes
        .get(id)
        .and_then(|n| n.value.as_ref())
        .ok_or_else(|| Error::Usage {
            message: format!("internal: node {id} has no value to read"),
        })
}

/// `op`'s value (`given`, or computed), recorded when an argument is tracked.
fn record(op: Op, args: &[Arg], given: Option<Value>) -> Result<Output> {
    let target = unifies_dtypes(&op).then(|| {
        args.iter()
            .map(|a| a.with_value(Value::dtype))
            .fold(Dtype::F32, Dtype::promote)
    });
    let (grad_enabled, anomaly) = STATE.with(|s| {
        let s = s.borrow();
        (s.grad_enabled, s.anomaly)
    });
    let any_tracked = args.iter().any(|a| matches!(a, Arg::Tracked(_)));
    if !grad_enabled || !any_tracked {
        let values: Vec<Value> = args
            .iter()
            .map(|a| match target {
                Some(d) => a.value().cast(d),
                None => Ok(a.value()),
            })
            .collect::<Result<_>>()?;
        return Ok(Output::Value(match given {
            Some(v) => v,
            None => op.forward_each(&values, Ok)?,
        }));
    }
    // Asked before the lock is taken: the hook may run Python code.
    let location = anomaly
        .then(|| LOCATION.get().and_then(|hook| hook()))
        .flatten();
    let (current, top, alone) = STATE.with(|s| {
        let s = s.borrow();
        let first = s.frames.first().map(|f| Arc::as_ptr(&f.tape));
        let current = s.frames.last().map(|f| Arc::as_ptr(&f.tape));
        let top = current.is_some() && first == current;
        (current, top, top && s.frames.len() == 1)
    });
    // The tape is borrowed from an argument recorded on it where there is one (the
    // common case): cloning it from the thread's state costs two atomic operations.
    let on_tape = args.iter().find_map(|a| match a {
        Arg::Tracked(Tracked {
            link: Link::Node(r),
        }) if Some(Arc::as_ptr(&r.tape)) == current => Some(&r.tape),
        _ => None,
    });
    let cloned;
    let tape = match on_tape {
        Some(tape) => tape,
        None => {
            cloned = current_tape();
            &cloned
        }
    };
    let mut outer = Vec::new();
    let mut arena = tape.lock();
    if arena.untidy(tape.top, alone) {
        drop(arena);
        tidy(tape, alone);
        arena = tape.lock();
    }
    // Every input is put on the arena first and read from there: values are large
    // enough that copying each into a list costs a scalar op more than its arithmetic.
    let mut ids = Inputs::new();
    let mut needs_grad = false;
    for arg in args {
        let (mut id, needs) = match resolve(&arena, tape, arg, &mut outer, top)? {
            Resolved::Node(id) => (id, arena.nodes.get(id).is_some_and(|n| n.needs_grad)),
            Resolved::Leaf(Op::Const, value, needs) => {
                let value = match target {
                    Some(d) => value.cast(d)?,
                    None => value,
                };
                (push_constant(&mut arena, value), needs)
            }
            Resolved::Leaf(leaf, value, needs) => {
                (push_leaf(&mut arena, tape, leaf, value, needs), needs)
            }
        };
        let value = stored(&arena, id)?;
        if let Some(d) = target.filter(|&d| d != value.dtype()) {
            let value = value.cast(d)?;
            id = push(
                &mut arena,
                Op::Cast(d),
                Inputs::from_slice(&[id]),
                value,
                needs,
            );
        }
        needs_grad |= needs;
        ids.push(id);
    }
    let value = match given {
        Some(v) => v,
        None => op.forward_each(&ids, |&id| stored(&arena, id))?,
    };
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
    if matches!(op, Op::Extern(_)) {
        tape.externs.store(true, Ordering::Relaxed);
    }
    let id = push(&mut arena, op, ids, value, true);
    if let Some(location) = location {
        arena.locations.push((id, location.into()));
    }
    Ok(Output::Tracked(new_handle(&mut arena, tape, id)))
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
        Some(dy) if dy.shape() == y.shape() => {
            let dy = dy.cast(y.dtype())?;
            // A seed lent by the caller (not copied by the cast) is copied: gradients
            // may share it, and the caller may change it afterwards.
            if dy.borrows() { dy.copied() } else { Ok(dy) }
        }
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
/// Without a seed `dy`, `y` must be a finite scalar (the seed is 1); with one, `dy`
/// has `y`'s shape.
///
/// ```
/// use tracker_core::{Error, Tracked, Value, backward};
///
/// # fn main() -> tracker_core::Result<()> {
/// let x = Tracked::param(Value::from_vec(&[2], vec![1.0, 2.0])?);
/// let y = x.mul(&x)?; // not a scalar: it needs a seed
/// let seed = Value::from_vec(&[2], vec![1.0, 10.0])?;
/// backward(&y, Some(seed.clone()), false)?; // keeps the tape...
/// backward(&y, Some(seed.clone()), true)?; // ...for a second pass, which consumes it
/// assert_eq!(x.grad()?.to_f64_vec(), vec![4.0, 80.0]); // 2 x dy, twice
/// assert_eq!(backward(&y, Some(seed), true), Err(Error::Consumed { op: "multiply" }));
/// assert!(matches!(backward(&y, None, true), Err(Error::Loss { .. })));
/// # Ok(())
/// # }
/// ```
pub fn backward(y: &Tracked, dy: Option<Value>, once: bool) -> Result<()> {
    let seed = seed_for(&y.value(), dy)?;
    if let Link::Param(p) = &y.link {
        return p.accumulate(seed);
    }
    let r = node_of(y)?;
    if r.tape.lock().epoch != r.epoch || r.id() == GONE {
        return Err(Error::Consumed { op: r.op });
    }
    sweep::eager_sweep(&r.tape, r.epoch, r.id(), seed, once, true)?;
    Ok(())
}

/// One differentiation call's scope: ops record on its tape until it is left.
/// [`gradient`](crate::gradient) and [`hessian`](crate::hessian) are written with it.
///
/// ```
/// use tracker_core::{Arg, Output, Value, enter_scope};
///
/// # fn main() -> tracker_core::Result<()> {
/// let scope = enter_scope(false);
/// let x = scope.input(Arg::Value(Value::from_vec(&[2], vec![1.0, 2.0])?))?;
/// let y = x.powf(3.0)?.sum()?;
/// let grads = scope.gradient(&Output::Tracked(y), &[x], None, false)?;
/// let grads = scope.exit(grads)?;
/// assert_eq!(grads[0].value().to_f64_vec(), vec![3.0, 12.0]);
/// # Ok(())
/// # }
/// ```
pub struct Scope {
    tape: Arc<Tape>,
    nest: bool,
    depth: usize,
    /// Once left: the enclosing values the scope used as constants, for marking.
    left_outer: Mutex<Option<Vec<Arg>>>,
    /// The thread whose scope stack holds this scope's frame.
    owner: ThreadId,
}

/// Enters a scope. Without `nest` it has a fresh tape, and values of enclosing scopes are
/// constants in it; with `nest` it records on the enclosing tape, so what it computes
/// (gradients included) can be differentiated by the enclosing scope.
///
/// ```
/// use tracker_core::{Arg, Output, Value, enter_scope};
///
/// # fn main() -> tracker_core::Result<()> {
/// // d/dx of the recorded gradient of x³: 6x.
/// let outer = enter_scope(false);
/// let x = outer.input(Arg::Value(Value::from_vec(&[1], vec![2.0])?))?;
/// let inner = enter_scope(true);
/// let nested = inner.input(Arg::Tracked(x.clone()))?;
/// let y = nested.powf(3.0)?.sum()?;
/// let grad = inner.gradient(&Output::Tracked(y), &[nested], None, false)?;
/// let grad = inner.exit(grad)?.remove(0);
/// assert_eq!(grad.value().item(), Some(12.0)); // 3x²
/// let second = outer.gradient(&grad, &[x], None, false)?;
/// assert_eq!(second[0].value().item(), Some(12.0)); // 6x
/// outer.exit(Vec::new())?;
/// # Ok(())
/// # }
/// ```
pub fn enter_scope(nest: bool) -> Scope {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        let tape = match s.frames.last() {
            Some(f) if nest => f.tape.clone(),
            _ => Tape::new(false),
        };
        s.frames.push(Frame {
            tape: tape.clone(),
            outer: Vec::new(),
            watched: Vec::new(),
        });
        Scope {
            tape,
            nest,
            depth: s.frames.len(),
            left_outer: Mutex::new(None),
            owner: std::thread::current().id(),
        }
    })
}

impl Scope {
    /// A leaf to differentiate with respect to. A value is borrowed (not copied); a
    /// tracked value on this scope's tape is used as it is.
    ///
    /// ```
    /// use tracker_core::{Arg, Value, enter_scope};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let scope = enter_scope(false);
    /// let x = scope.input(Arg::Value(Value::from_vec(&[2], vec![1.0, 2.0])?))?;
    /// assert_eq!(x.op_name(), "input");
    /// assert!(x.same(&scope.input(Arg::Tracked(x.clone()))?));
    /// # scope.exit(Vec::new())?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn input(&self, x: Arg) -> Result<Tracked> {
        if let Arg::Tracked(t) = &x {
            if let Link::Node(r) = &t.link
                && Arc::ptr_eq(&r.tape, &self.tape)
                && node_of(t).is_ok()
            {
                let arena = self.tape.lock();
                if arena.epoch == r.epoch && arena.nodes.get(r.id()).is_some_and(|n| !n.consumed) {
                    return Ok(t.clone());
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
            if let Link::Param(p) = &t.link {
                // Differentiated in this scope wherever it is used (implicit `Params`);
                // a scope nested in one that already does so shares its leaf.
                let mut arena = self.tape.lock();
                if let Some(id) = watched_leaf(p, arena.epoch) {
                    return Ok(new_handle(&mut arena, &self.tape, id));
                }
                let id = push(&mut arena, Op::Input, Inputs::new(), p.value(), true);
                let epoch = arena.epoch;
                STATE.with(|s| {
                    if let Some(f) = s.borrow_mut().frames.get_mut(self.depth - 1) {
                        f.watched.push((p.clone(), epoch, id));
                    }
                });
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
    /// accumulators are not touched). Nested scopes return tracked gradients. `seed`
    /// is the gradient of `y` (ones for a scalar if `None`); `retain` keeps the tape for
    /// another sweep.
    ///
    /// ```
    /// use tracker_core::{Arg, Output, Value, enter_scope};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let scope = enter_scope(false);
    /// let x = scope.input(Arg::Value(Value::from_vec(&[2], vec![1.0, 2.0])?))?;
    /// let y = Output::Tracked(x.mul(&x)?); // x², elementwise
    /// // The Jacobian's rows, one sweep each, on one tape.
    /// for (k, row) in [[2.0, 0.0], [0.0, 4.0]].into_iter().enumerate() {
    ///     let mut seed = vec![0.0; 2];
    ///     seed[k] = 1.0;
    ///     let seed = Arg::Value(Value::from_vec(&[2], seed)?);
    ///     let g = scope.gradient(&y, &[x.clone()], Some(seed), true)?;
    ///     assert_eq!(g[0].value().to_f64_vec(), row.to_vec());
    /// }
    /// scope.exit(Vec::new())?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn gradient(
        &self,
        y: &Output,
        inputs: &[Tracked],
        seed: Option<Arg>,
        retain: bool,
    ) -> Result<Vec<Output>> {
        let grads = self.sweep_gradient(y, inputs, seed, retain)?;
        self.mark(grads)
    }

    fn sweep_gradient(
        &self,
        y: &Output,
        inputs: &[Tracked],
        seed: Option<Arg>,
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
                let seed = seed_for(&t.value(), seed.map(|s| s.value()))?;
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
                seed_for(&other.value(), seed.map(|s| s.value()))?;
                return inputs.iter().map(zeros).collect();
            }
        };
        let r = node_of(y)?;
        // A tracked seed (a nested checkpoint's) stays a node of the recording sweep.
        let tracked_seed = match &seed {
            Some(Arg::Tracked(s)) if self.nest => s.node_on(&self.tape, r.epoch),
            _ => None,
        };
        let seed = seed_for(&r.value, seed.map(|s| s.value()))?;
        let wanted: Vec<Option<NodeId>> = inputs
            .iter()
            .map(|t| match &t.link {
                Link::Node(n) if Arc::ptr_eq(&n.tape, &self.tape) && n.epoch == r.epoch => {
                    Some(n.id()).filter(|&id| id != GONE)
                }
                _ => None,
            })
            .collect();
        if self.tape.lock().epoch != r.epoch || r.id() == GONE {
            return Err(Error::Consumed { op: r.op });
        }
        if self.nest {
            let grads = sweep::recorded_sweep(&self.tape, r.epoch, r.id(), seed, tracked_seed)?;
            let mut arena = self.tape.lock();
            let mut out = Vec::with_capacity(inputs.len());
            for (t, w) in inputs.iter().zip(&wanted) {
                out.push(match w.and_then(|id| grads.get(id).copied().flatten()) {
                    Some(g) if arena.nodes.get(g).is_some_and(|n| n.needs_grad) => {
                        Output::Tracked(new_handle(&mut arena, &self.tape, g))
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
        let mut grads = sweep::eager_sweep(&self.tape, r.epoch, r.id(), seed, !retain, false)?;
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

    /// Stops recording in this scope (ops record on the enclosing one again) while
    /// keeping its tape for later sweeps (`forward`'s reusable pullback). Gradients
    /// computed after this are marked like `exit`'s results.
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// use tracker_core::{Arg, Output, Value, current_tape, enter_scope};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let top = current_tape();
    /// let scope = enter_scope(false);
    /// let x = scope.input(Arg::Value(Value::from_vec(&[1], vec![3.0])?))?;
    /// let y = Output::Tracked(x.powf(2.0)?.sum()?);
    /// scope.leave();
    /// assert!(Arc::ptr_eq(&top, &current_tape())); // recording where it was before
    /// let g = scope.gradient(&y, &[x], None, false)?; // the scope's tape is still there
    /// assert_eq!(g[0].value().item(), Some(6.0));
    /// scope.exit(Vec::new())?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn leave(&self) {
        let frame = self.pop();
        let outer = frame.map(|f| self.outer_to_mark(f.outer));
        *self.left_outer.lock().unwrap_or_else(|e| e.into_inner()) = outer;
    }

    /// Pops this scope's frame, if it is the innermost of its thread.
    fn pop(&self) -> Option<Frame> {
        if std::thread::current().id() != self.owner {
            return None;
        }
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            if s.frames.len() == self.depth && self.depth > 1 {
                s.frames.pop()
            } else {
                None
            }
        })
    }

    /// The enclosing values whose use as constants must be marked on the results.
    fn outer_to_mark(&self, mut outer: Vec<Arg>) -> Vec<Arg> {
        if self.depth == 2 {
            // Parameters used as constants directly under the top level are not marked:
            // the gradient stays a plain array, as in Tracker.jl.
            outer.retain(|a| !matches!(a, Arg::Tracked(t) if t.as_param().is_some()));
        }
        outer
    }

    /// Marks `results` on the current (enclosing) tape if the scope used enclosing
    /// values as constants, so that differentiating through them raises "pass
    /// nest=True" instead of silently treating them as constants.
    ///
    /// ```
    /// use tracker_core::{Arg, Error, Output, Tracked, Value, backward, enter_scope};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let p = Tracked::param(Value::from_vec(&[1], vec![2.0])?);
    /// let a = p.exp()?; // recorded on the enclosing (top-level) tape
    /// let scope = enter_scope(false);
    /// let x = scope.input(Arg::Value(Value::from_vec(&[1], vec![3.0])?))?;
    /// let y = x.mul(&a)?.sum()?; // `a` is a constant in this scope
    /// scope.leave();
    /// let marked = scope.mark(vec![Output::Value(y.value())])?;
    /// let Output::Tracked(y) = &marked[0] else { unreachable!("y depends on a") };
    /// assert_eq!(y.value().item(), Some(3.0 * 2f64.exp()));
    /// // Differentiating with respect to p through y raises instead of giving 0.
    /// assert!(matches!(backward(y, None, true), Err(Error::Nesting { .. })));
    /// scope.exit(Vec::new())?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn mark(&self, results: Vec<Output>) -> Result<Vec<Output>> {
        let outer = self
            .left_outer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match outer {
            Some(outer) if !outer.is_empty() && !self.nest => mark(results, &outer),
            _ => Ok(results),
        }
    }

    /// Leaves the scope. If the computation used values of enclosing scopes as
    /// constants, each result is marked on the enclosing tape so that differentiating
    /// through it raises "pass nest=True" instead of silently treating it as constant.
    /// A scope without `nest` drops its tape: handles recorded on it become stale.
    ///
    /// ```
    /// use tracker_core::{Arg, Output, Value, enter_scope};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let scope = enter_scope(false);
    /// let x = scope.input(Arg::Value(Value::from_vec(&[1], vec![3.0])?))?;
    /// let y = x.powf(2.0)?.sum()?;
    /// let g = scope.gradient(&Output::Tracked(y), &[x.clone()], None, false)?;
    /// let g = scope.exit(g)?; // nothing enclosing was used: results as they are
    /// assert!(matches!(&g[0], Output::Value(v) if v.item() == Some(6.0)));
    /// assert!(x.graph().is_err()); // x's tape was dropped
    /// # Ok(())
    /// # }
    /// ```
    pub fn exit(self, results: Vec<Output>) -> Result<Vec<Output>> {
        let left = self
            .left_outer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let outer = match (self.pop(), left) {
            (Some(frame), _) => self.outer_to_mark(frame.outer),
            (None, left) => left.unwrap_or_default(),
        };
        if !self.nest {
            // Retire the scope's tape: escaped handles become stale. The nodes are
            // dropped after the lock is released.
            let old = self.tape.lock().retire();
            recycle(old);
            retired(&self.tape);
        }
        if outer.is_empty() {
            return Ok(results);
        }
        if self.nest {
            // A nested scope shares the enclosing tape: its enclosing values are the
            // enclosing scope's too.
            STATE.with(|s| {
                if let Some(f) = s.borrow_mut().frames.last_mut() {
                    f.outer.extend(outer);
                }
            });
            return Ok(results);
        }
        mark(results, &outer)
    }
}

/// Each result as a nobacksies node on the current tape whose inputs include `outer`.
fn mark(results: Vec<Output>, outer: &[Arg]) -> Result<Vec<Output>> {
    let message: Arc<str> = Arc::from(
        "this value is a gradient computed by gradient(..., nest=False), which treats the \
         enclosing computation's tracked values as constants; pass nest=True to \
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

    #[test]
    fn a_kept_value_keeps_only_what_it_reaches() -> Result<()> {
        std::thread::spawn(|| -> Result<()> {
            let x = Tracked::param(Value::from_vec(&[2], vec![0.5, 1.5])?);
            let kept = x.sin()?.sum()?;
            let mut consumed = Vec::new();
            for i in 0..3000 {
                let y = x.exp()?.sum()?;
                if i % 1000 == 0 {
                    backward(&y, None, true)?;
                    consumed.push(y);
                }
            }
            // Dead tails go at once and holes at each doubling: far fewer than the 9,000
            // nodes recorded.
            assert!(
                current_tape().len() < COMPACT_MIN,
                "{}",
                current_tape().len()
            );
            if let Some(p) = x.as_param() {
                p.zero_grad();
            }
            backward(&kept, None, true)?;
            assert_eq!(x.grad()?.to_f64_vec(), vec![0.5f64.cos(), 1.5f64.cos()]);
            for y in &consumed {
                assert_eq!(
                    backward(y, None, true).err(),
                    Some(Error::Consumed { op: "sum" })
                );
            }
            Ok(())
        })
        .join()
        .map_err(|_| Error::Usage {
            message: "the test thread failed".into(),
        })?
    }
}
