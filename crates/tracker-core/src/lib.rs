//! `tracker-core`: a tape-based reverse-mode automatic differentiation engine, after
//! Tracker.jl.
//!
//! Operations on tracked values record nodes on a tape (an arena in execution order);
//! [`backward`] walks it in reverse and leaves gradients on the parameters. Every
//! pullback is written once, generic over an array backend, so gradients can be
//! recorded and differentiated again ([`gradient`] with `nest`, [`hessian`]).
//!
//! ```
//! use tracker_core::{Tracked, Value, backward};
//!
//! # fn main() -> tracker_core::Result<()> {
//! let x = Tracked::param(Value::from_vec(&[3], vec![1.0, 2.0, 3.0])?);
//! let y = x.powf(2.0)?.sum()?.add(&x.slice(1, None)?.prod()?)?;  // sum(x²) + prod(x[1:])
//! backward(&y, None, true)?;
//! assert_eq!(x.grad()?.to_f64_vec(), vec![2.0, 7.0, 8.0]);
//! # Ok(())
//! # }
//! ```

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
mod sweep;
pub mod tape;
pub mod vmath;

pub use api::{Live, gradient, hessian};
pub use error::{Error, Payload, Result};
pub use op::{Extern, Op};
pub use tape::{
    Arg, GraphNode, Output, Param, Scope, Tape, Tracked, apply, apply_extern, backward,
    enter_scope, reset_thread_tape, set_anomaly, set_grad_enabled, set_interrupt_hook,
    set_location_hook, set_retire_hook,
};
pub use value::{Array, Dtype, Shape, Value};
