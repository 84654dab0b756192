//! The op families. Each file holds its ops' forward kernels and pullbacks together;
//! the [`Op`](crate::Op) enum dispatches to them.
//!
//! ```
//! use tracker_core::ops::binary::Binary;
//! use tracker_core::ops::reduce::Reduce;
//! use tracker_core::ops::unary::Unary;
//!
//! // Every op is known by its NumPy name.
//! assert_eq!(Unary::from_name("tanh"), Some(Unary::Tanh));
//! assert_eq!(Binary::from_name("power"), Some(Binary::Pow));
//! assert_eq!(Reduce::Mean.name(), "mean");
//! ```

pub mod binary;
pub(crate) mod decomp;
pub mod index;
pub(crate) mod linalg;
pub mod reduce;
pub mod shape;
pub mod special;
pub mod unary;
