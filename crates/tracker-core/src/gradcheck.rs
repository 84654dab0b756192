//! Finite differences: the reference every op's gradient is checked against.

use crate::error::Result;
use crate::value::Value;

/// The gradient of scalar `f` at `x` by central differences with step `h` (in f64).
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
pub fn max_abs_diff(a: &Value, b: &Value) -> f64 {
    a.to_f64_vec()
        .iter()
        .zip(b.to_f64_vec())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}
