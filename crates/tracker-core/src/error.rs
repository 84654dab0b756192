//! One error type for the whole engine. Its `Display` text is the message a user reads,
//! so every variant names the op, what was wrong and, where one exists, the remedy.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// An error raised outside the engine (in a rule's Python pullback), carried through
/// it unchanged so the boundary can re-raise the original.
#[derive(Clone)]
pub struct Payload(pub Arc<dyn Any + Send + Sync>);

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Payload")
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Everything that can go wrong in the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// Shapes that do not fit together (broadcasting, matmul, reshape, indexing).
    Shape { op: &'static str, message: String },
    /// An axis or index out of range.
    Index { op: &'static str, message: String },
    /// A matrix the op cannot work with: singular, not positive definite, not square
    /// (NumPy's `LinAlgError`).
    LinAlg { op: &'static str, message: String },
    /// A dtype or argument kind the op does not support.
    Type { op: &'static str, message: String },
    /// An allocation whose size the user controls could not be made.
    Memory { op: &'static str, bytes: usize },
    /// A backward pass reached a node that an earlier `back(once=True)` consumed.
    Consumed { op: &'static str },
    /// A backward pass reached a gradient computed by an un-nested `gradient` call.
    Nesting { message: String },
    /// A non-leaf value recorded by another thread.
    Thread,
    /// The value handed to `back` is not a finite scalar, or its seed does not match.
    Loss { message: String },
    /// An operation the engine does not offer (yet), or misuse of the API.
    Usage { message: String },
    /// Anomaly mode: a backward pass produced a NaN or infinite gradient.
    Anomaly {
        op: &'static str,
        location: Option<String>,
    },
    /// An error raised by an external rule's pullback (`rule` names it).
    External {
        rule: &'static str,
        payload: Payload,
    },
}

/// The engine's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Shape { op, message } => write!(f, "{op}: {message}"),
            Error::Index { op, message } => write!(f, "{op}: {message}"),
            Error::Type { op, message } => write!(f, "{op}: {message}"),
            Error::LinAlg { op, message } => write!(f, "{op}: {message}"),
            Error::Memory { op, bytes } => {
                write!(f, "{op}: cannot allocate {bytes} bytes for the result")
            }
            Error::Consumed { op } => write!(
                f,
                "the backward pass reached `{op}`, whose saved values an earlier back() \
                 already consumed; pass once=False to the first back() to keep the tape for \
                 another pass"
            ),
            Error::Nesting { message } => write!(f, "{message}"),
            Error::Thread => write!(
                f,
                "this tracked value was recorded by another thread's tape; pass tr.data(x) to \
                 use its value as a constant, or compute it in this thread"
            ),
            Error::Loss { message } => write!(f, "back: {message}"),
            Error::Usage { message } => write!(f, "{message}"),
            Error::Anomaly { op, location } => {
                write!(f, "the backward pass of `{op}`")?;
                if let Some(location) = location {
                    write!(f, " (recorded at {location})")?;
                }
                write!(f, " produced a NaN or infinite gradient")
            }
            Error::External { rule, .. } => write!(f, "the pullback of `{rule}` raised an error"),
        }
    }
}

impl std::error::Error for Error {}

/// Shorthand for a shape error.
pub(crate) fn shape_error(op: &'static str, message: impl Into<String>) -> Error {
    Error::Shape {
        op,
        message: message.into(),
    }
}

/// Shorthand for an index or axis error.
pub(crate) fn index_error(op: &'static str, message: impl Into<String>) -> Error {
    Error::Index {
        op,
        message: message.into(),
    }
}
