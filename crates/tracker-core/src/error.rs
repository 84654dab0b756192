//! One error type for the whole engine. Its `Display` text is the message a user reads,
//! so every variant names the op, what was wrong and, where one exists, the remedy.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// An error raised outside the engine (in a rule's Python pullback), carried through
/// it unchanged so the boundary can re-raise the original. Two payloads are equal when
/// they hold the same object.
///
/// ```
/// use std::sync::Arc;
///
/// use tracker_core::{Error, Payload};
///
/// let payload = Payload(Arc::new("a foreign error"));
/// let error = Error::External { rule: "my_rule", payload: payload.clone() };
/// if let Error::External { payload, .. } = &error {
///     assert_eq!(payload.0.downcast_ref::<&str>(), Some(&"a foreign error"));
/// }
/// assert_eq!(error.to_string(), "the pullback of `my_rule` raised an error");
/// ```
#[derive(Clone)]
pub struct Payload(
    /// The original error, for the embedding to downcast.
    pub Arc<dyn Any + Send + Sync>,
);

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

/// Everything that can go wrong in the engine. The `Display` text is the whole message
/// for the user; the variant says which kind of error it is (the Python boundary maps
/// each to an exception class).
///
/// ```
/// use tracker_core::{Error, Value};
///
/// # fn main() -> tracker_core::Result<()> {
/// let x = Value::from_vec(&[2, 3], vec![0.0; 6])?;
/// let error = x.reshaped(&[4]).unwrap_err();
/// assert!(matches!(error, Error::Shape { op: "reshape", .. }));
/// assert_eq!(
///     error.to_string(),
///     "reshape: cannot reshape an array of shape [2, 3] into shape [4]"
/// );
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// Shapes that do not fit together (broadcasting, matmul, reshape, indexing).
    Shape {
        /// The op that raised it.
        op: &'static str,
        /// What was wrong.
        message: String,
    },
    /// An axis or index out of range.
    Index {
        /// The op that raised it.
        op: &'static str,
        /// What was wrong.
        message: String,
    },
    /// A matrix the op cannot work with: singular, not positive definite, not square
    /// (NumPy's `LinAlgError`).
    LinAlg {
        /// The op that raised it.
        op: &'static str,
        /// What was wrong.
        message: String,
    },
    /// A dtype or argument kind the op does not support.
    Type {
        /// The op that raised it.
        op: &'static str,
        /// What was wrong.
        message: String,
    },
    /// An allocation whose size the user controls could not be made.
    Memory {
        /// The op that asked for the memory.
        op: &'static str,
        /// How many bytes it asked for.
        bytes: usize,
    },
    /// A backward pass reached a node that an earlier `back(once=True)` consumed.
    Consumed {
        /// The op of the consumed node.
        op: &'static str,
    },
    /// A backward pass reached a gradient computed by an un-nested `gradient` call.
    Nesting {
        /// What happened, and the remedy (`nest=True`).
        message: String,
    },
    /// A non-leaf value recorded by another thread.
    Thread,
    /// The value handed to `back` is not a finite scalar, or its seed does not match.
    Loss {
        /// What is wrong with the loss or the seed.
        message: String,
    },
    /// An operation the engine does not offer (yet), or misuse of the API.
    Usage {
        /// What was asked, and why it cannot be done.
        message: String,
    },
    /// Anomaly mode: a backward pass produced a NaN or infinite gradient.
    Anomaly {
        /// The op whose pullback produced it.
        op: &'static str,
        /// Where the op was recorded, if the location hook said.
        location: Option<String>,
    },
    /// An error raised by an external rule's pullback (`rule` names it).
    External {
        /// The rule's name.
        rule: &'static str,
        /// The error it raised, unchanged.
        payload: Payload,
    },
}

/// The engine's result type: every fallible function returns it.
///
/// ```
/// use tracker_core::{Error, Result, Value};
///
/// fn total(x: &Value) -> Result<f64> {
///     x.item().ok_or(Error::Usage { message: "not one element".into() })
/// }
///
/// # fn main() -> Result<()> {
/// assert_eq!(total(&Value::from_vec(&[1], vec![4.0])?)?, 4.0);
/// assert!(total(&Value::from_vec(&[2], vec![4.0, 5.0])?).is_err());
/// # Ok(())
/// # }
/// ```
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
