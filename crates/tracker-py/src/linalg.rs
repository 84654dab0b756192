//! The linear-algebra ops of the core, for `tracker._linalg` (which builds `np.linalg`
//! and the products from them). No rule lives here.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use tracker_core::{Arg, Op};

use crate::convert::arg_or_raise;
use crate::errors::IntoPyResult;
use crate::tracked::tracked_of;

/// Applies the core's linear-algebra op `name` (`matmul`, `inv`, `det`, `slogdet`,
/// `solve`, `solve_triangular`, `cholesky`, `eigh`, `svd`, `qr`) to `args`. `eigh`,
/// `svd` and `qr` return their results packed into one array (see `ops/linalg.rs`).
#[pyfunction]
#[pyo3(signature = (name, *args, lower=true))]
pub fn linalg(
    py: Python<'_>,
    name: &str,
    args: &Bound<'_, PyTuple>,
    lower: bool,
) -> PyResult<Py<PyAny>> {
    let (op, arity) = match name {
        "matmul" => (Op::Matmul, 2),
        "inv" => (Op::Inv, 1),
        "det" => (Op::Det, 1),
        "slogdet" => (Op::Slogdet, 1),
        "solve" => (Op::Solve, 2),
        "solve_triangular" => (Op::SolveTriangular { lower }, 2),
        "cholesky" => (Op::Cholesky, 1),
        "eigh" => (Op::Eigh, 1),
        "svd" => (Op::Svd, 1),
        "qr" => (Op::Qr, 1),
        _ => {
            return Err(PyTypeError::new_err(format!(
                "linalg: no linear-algebra op named {name:?}"
            )));
        }
    };
    if args.len() != arity {
        return Err(PyTypeError::new_err(format!(
            "linalg: {name} takes {arity} operands, got {}",
            args.len()
        )));
    }
    let like = args.iter().find_map(|a| tracked_of(&a).map(|t| t.dtype()));
    let args = args
        .iter()
        .map(|a| arg_or_raise(&a, like, name))
        .collect::<PyResult<Vec<Arg>>>()?;
    // A factorisation costs about n per element: long ones run without the GIL.
    let work: usize = args
        .iter()
        .map(|a| {
            let v = a.value();
            v.len()
                .saturating_mul(v.shape().last().copied().unwrap_or(1))
        })
        .sum();
    let out = if work > DETACH_ABOVE {
        py.detach(|| tracker_core::apply(op, &args))
    } else {
        tracker_core::apply(op, &args)
    };
    crate::convert::output_to_py(py, out.py()?)
}

/// Work (elements times matrix size) above which an op runs without the GIL.
const DETACH_ABOVE: usize = 1 << 16;
