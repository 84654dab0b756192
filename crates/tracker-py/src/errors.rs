//! The core's errors as Python exceptions, in one exhaustive match.

use pyo3::exceptions::{PyException, PyIndexError, PyMemoryError, PyTypeError, PyValueError};
use pyo3::prelude::PyAnyMethods;
use pyo3::{PyErr, create_exception};
use tracker_core::Error;

create_exception!(
    tracker,
    TrackerError,
    PyException,
    "Base class of tracker's own errors."
);
create_exception!(
    tracker,
    ConsumedError,
    TrackerError,
    "A backward pass reached a node that an earlier `back(once=True)` consumed."
);
create_exception!(
    tracker,
    NestingError,
    TrackerError,
    "A backward pass reached a gradient computed without `nest=True`."
);
create_exception!(
    tracker,
    ThreadError,
    TrackerError,
    "A non-leaf tracked value was used from a thread other than the one that recorded it."
);
create_exception!(
    tracker,
    AnomalyError,
    TrackerError,
    "Anomaly mode: a backward pass produced a NaN or infinite gradient."
);
create_exception!(
    tracker,
    LossError,
    TrackerError,
    "The loss handed to `back` is not a finite scalar, or its seed does not match."
);

/// The Python exception for a core error.
pub fn to_py(error: Error) -> PyErr {
    let message = error.to_string();
    match error {
        // The pullback's own exception, re-raised as it was.
        Error::External { payload, .. } => match payload.0.downcast_ref::<PyErr>() {
            Some(e) => pyo3::Python::attach(|py| e.clone_ref(py)),
            None => TrackerError::new_err(message),
        },
        Error::Shape { .. } => PyValueError::new_err(message),
        Error::Index { .. } => PyIndexError::new_err(message),
        Error::Type { .. } => PyTypeError::new_err(message),
        Error::LinAlg { .. } => linalg_error(message),
        Error::Memory { .. } => PyMemoryError::new_err(message),
        Error::Consumed { .. } => ConsumedError::new_err(message),
        Error::Nesting { .. } => NestingError::new_err(message),
        Error::Thread => ThreadError::new_err(message),
        Error::Loss { .. } => LossError::new_err(message),
        Error::Usage { .. } => TrackerError::new_err(message),
        Error::Anomaly { .. } => AnomalyError::new_err(message),
    }
}

/// NumPy's `numpy.linalg.LinAlgError` (a `ValueError` subclass), or a `ValueError`
/// should NumPy not provide it.
fn linalg_error(message: String) -> PyErr {
    pyo3::Python::attach(|py| {
        let class = py
            .import("numpy.linalg")
            .and_then(|m| m.getattr("LinAlgError"))
            .and_then(|c| c.cast_into::<pyo3::types::PyType>().map_err(PyErr::from));
        match class {
            Ok(class) => PyErr::from_type(class, message),
            Err(_) => PyValueError::new_err(message),
        }
    })
}

/// `?`-friendly conversion of core results.
pub trait IntoPyResult<T> {
    fn py(self) -> pyo3::PyResult<T>;
}

impl<T> IntoPyResult<T> for tracker_core::Result<T> {
    fn py(self) -> pyo3::PyResult<T> {
        self.map_err(to_py)
    }
}
