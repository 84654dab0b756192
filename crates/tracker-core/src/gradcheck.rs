//! Finite differences: the reference every op's gradient is checked against.
//!
//! ```
//! use tracker_core::gradcheck::{max_abs_diff, numerical_gradient};
//! use tracker_core::{Value, gradient};
//!
//! # fn main() -> tracker_core::Result<()> {
//! let x = Value::from_vec(&[3], vec![0.5, -1.0, 2.0])?;
//! let exact = gradient(|x| x.sin()?.mul(x)?.sum(), &x)?; // sum(x sin x)
//! let approx = numerical_gradient(
//!     |v| Ok(v.to_f64_vec().iter().map(|x| x * x.sin()).sum()),
//!     &x,
//!     1e-6,
//! )?;
//! assert!(max_abs_diff(&exact, &approx) < 1e-8);
//! # Ok(())
//! # }
//! ```

use crate::error::Result;
use crate::value::Value;

/// The gradient of scalar `f` at `x` by central differences with step `h` (in f64):
/// `(f(x + h eᵢ) - f(x - h eᵢ)) / 2h` for each element `i`, two calls of `f` each.
///
/// ```
/// use tracker_core::Value;
/// use tracker_core::gradcheck::numerical_gradient;
///
/// # fn main() -> tracker_core::Result<()> {
/// let x = Value::from_vec(&[2], vec![1.0, 2.0])?;
/// let g = numerical_gradient(|v| Ok(v.to_f64_vec().iter().map(|x| x * x).sum()), &x, 1e-3)?;
/// let expected = [2.0, 4.0];
/// assert!(g.to_f64_vec().iter().zip(expected).all(|(g, e)| (g - e).abs() < 1e-9));
/// # Ok(())
/// # }
/// ```
pub fn numerical_gradient(f: impl Fn(&Value) -> Result<f64>, x: &Value, h: f64) -> Result<Value> {
    let base = x.to_f64_vec();
    let mut grad = Vec::with_capacity(base.len());
    for i in 0..base.len() {
        let mut shifted = base.clone();
        let mut at = |delta: f64| -> Result<f64> {
            if let Some(v) = shifted.get_mut(i) {
                *v = base.get(i).copied().unwrap_or(0.0) + delta;
            }
            f(&Value::from_vec(x.shape(), shifted.clone())?)
        };
        let up = at(h)?;
        let down = at(-h)?;
        grad.push((up - down) / (2.0 * h));
    }
    Value::from_vec(x.shape(), grad)
}

/// The largest absolute difference between two values of one shape.
///
/// ```
/// use tracker_core::Value;
/// use tracker_core::gradcheck::max_abs_diff;
///
/// # fn main() -> tracker_core::Result<()> {
/// let a = Value::from_vec(&[3], vec![1.0, 2.0, 3.0])?;
/// let b = Value::from_vec(&[3], vec![1.0, 2.5, 2.0])?;
/// assert_eq!(max_abs_diff(&a, &b), 1.0);
/// # Ok(())
/// # }
/// ```
pub fn max_abs_diff(a: &Value, b: &Value) -> f64 {
    a.to_f64_vec()
        .iter()
        .zip(b.to_f64_vec())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}
