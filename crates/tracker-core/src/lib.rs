//! `tracker-core`: a tape-based reverse-mode automatic differentiation engine, after
//! Tracker.jl.
//!
//! Operations on tracked values record nodes on a tape (an arena in execution order);
//! [`backward`] walks it in reverse and leaves gradients on the parameters. Every
//! pullback is written once, generic over an array backend, so gradients can be
//! recorded and differentiated again ([`gradient`], [`hessian`]).
//!
//! # Using it
//!
//! A parameter is a leaf whose gradient accumulates: make one with [`Tracked::param`],
//! compute with the methods of [`Tracked`] (or any [`Op`] through [`apply`]), call
//! [`backward`] on the scalar result, and read [`Tracked::grad`]:
//!
//! ```
//! use tracker_core::{Tracked, Value, backward};
//!
//! # fn main() -> tracker_core::Result<()> {
//! let x = Tracked::param(Value::from_vec(&[3], vec![1.0, 2.0, 3.0])?);
//! let y = x.powf(2.0)?.sum()?.add(&x.slice(1, None)?.prod()?)?; // sum(x²) + prod(x[1:])
//! backward(&y, None, true)?;
//! assert_eq!(x.grad()?.to_f64_vec(), vec![2.0, 7.0, 8.0]);
//! # Ok(())
//! # }
//! ```
//!
//! For a function of a plain value, [`gradient`] and [`hessian`] do the bookkeeping
//! (a scope with its own tape, the sweeps) and return plain values; parameters are not
//! touched:
//!
//! ```
//! use tracker_core::{Tracked, Value, gradient, hessian};
//!
//! # fn main() -> tracker_core::Result<()> {
//! let f = |x: &Tracked| x.powf(3.0)?.sum(); // sum(x³)
//! let x = Value::from_vec(&[2], vec![1.0, 2.0])?;
//! assert_eq!(gradient(f, &x)?.to_f64_vec(), vec![3.0, 12.0]);
//! let h = hessian(f, &x)?;
//! assert_eq!(h.shape(), &[2, 2]);
//! assert_eq!(h.to_f64_vec(), vec![6.0, 0.0, 0.0, 12.0]);
//! # Ok(())
//! # }
//! ```
//!
//! A rule whose pullback the engine does not know is an [`Extern`]: its caller computes
//! the forward value, [`apply_extern`] records it, and the sweep calls its pullback.
//! A pullback written with [`apply`] records when it is handed tracked values, so
//! its gradient can be differentiated again:
//!
//! ```
//! use std::sync::Arc;
//!
//! use tracker_core::ops::binary::Binary;
//! use tracker_core::{Arg, Extern, Op, Output, Result, Tracked, Value};
//! use tracker_core::{apply, apply_extern, backward};
//!
//! /// `y = 3x`, with its pullback written by hand.
//! struct Triple;
//!
//! impl Extern for Triple {
//!     fn name(&self) -> &'static str {
//!         "triple"
//!     }
//!     fn pullback(&self, dy: Arg) -> Result<Vec<Option<Arg>>> {
//!         let three = Arg::Value(Value::scalar(3.0, dy.value().dtype()));
//!         let dx = match apply(Op::Binary(Binary::Mul), &[dy, three])? {
//!             Output::Tracked(t) => Arg::Tracked(t),
//!             Output::Value(v) => Arg::Value(v),
//!         };
//!         Ok(vec![Some(dx)]) // one gradient per argument
//!     }
//!     fn release(&self) {}
//! }
//!
//! # fn main() -> Result<()> {
//! let x = Tracked::param(Value::from_vec(&[2], vec![1.0, 2.0])?);
//! let y = Value::from_vec(&[2], vec![3.0, 6.0])?; // the forward value, computed here
//! let Output::Tracked(y) = apply_extern(Arc::new(Triple), &[Arg::Tracked(x.clone())], y)?
//! else {
//!     panic!("x is tracked, so the rule is recorded");
//! };
//! backward(&y.sum()?, None, true)?;
//! assert_eq!(x.grad()?.to_f64_vec(), vec![3.0, 3.0]);
//! # Ok(())
//! # }
//! ```
//!
//! # Modules
//!
//! - [`tape`]: the engine: the arena of nodes, [`Tracked`] handles, parameters,
//!   scopes, [`apply`] and [`backward`].
//! - [`op`]: the [`Op`] enum (every operation the tape records), its dispatch, and the
//!   [`Arrays`](op::Arrays) trait that composite functions are written against.
//! - [`ops`]: the op families (unary, binary, reductions, shape, indexing, special
//!   functions), each op's forward value and pullback in one place.
//! - [`num`]: the scalar-like traits the elementwise rules are written against.
//! - [`vmath`]: vectorised exp, log, sin, cos, tanh and sigmoid over `f32`/`f64` slices.
//! - [`broadcast`]: NumPy's broadcasting rules.
//! - [`num_threads`]: how many threads large loops and reductions run on.
//! - [`gradcheck`]: finite differences, to check gradients against.
//!
//! Values ([`Value`], [`Array`]) and errors ([`Error`]) are re-exported at the root,
//! as is the rest of what a user of the engine needs.
//!
//! Every public item has a doc comment (`missing_docs` is denied) with an example
//! (checked by `tests/test_rust_docs.py`).

#![deny(missing_docs)]

#[macro_use]
mod value;
mod api;
pub mod broadcast;
mod error;
pub mod gradcheck;
mod kernel;
pub mod num;
pub mod op;
pub mod ops;
mod parallel;
mod sweep;
pub mod tape;
pub mod vmath;

pub use api::{Live, gradient, hessian, hvp};
pub use error::{Error, Payload, Result};
pub use op::{Extern, Op};
pub use ops::linalg::{Gemm, Product, set_gemm};
pub use parallel::{cores_busy_for, num_threads};
pub use tape::{
    Arg, GraphNode, Output, Param, Scope, Tape, Tracked, apply, apply_extern, backward,
    current_tape, enter_scope, reset_thread_tape, set_anomaly, set_grad_enabled,
    set_interrupt_hook, set_location_hook, set_retire_hook,
};
pub use value::{Array, Dtype, Shape, Value};
