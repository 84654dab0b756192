//! The op families. Each file holds its ops' forward kernels and pullbacks together.

pub mod binary;
pub(crate) mod decomp;
pub mod index;
pub(crate) mod linalg;
pub mod reduce;
pub mod shape;
pub mod special;
pub mod unary;
