//! A Hessian-vector product without the Hessian: `cargo run -p tracker-core --example
//! hessian_vector`.
//!
//! `hvp` records the gradient in a nested scope (so it is itself a tracked value), then
//! differentiates it once more with the vector as the seed: `H v = ∇(∇f · v)`, at the
//! cost of about two gradients, where the full Hessian (`hessian`) takes one sweep per
//! row. The result is checked against `hessian(f, x) @ v` and the hand-derived value.

use tracker_core::ops::binary::Binary;
use tracker_core::ops::index::IndexItem;
use tracker_core::{Arg, Error, Op, Output, Result, Tracked, Value, apply, hessian, hvp};

/// `op(a, b)` for a constant `a` and a tracked `b`.
fn with_constant(op: Binary, a: f64, b: &Tracked) -> Result<Tracked> {
    let a = Arg::Value(Value::scalar(a, b.dtype()));
    match apply(Op::Binary(op), &[a, Arg::Tracked(b.clone())])? {
        Output::Tracked(t) => Ok(t),
        Output::Value(_) => Err(Error::Usage {
            message: "expected a recorded result".into(),
        }),
    }
}

/// Rosenbrock's function `(1 - x₀)² + 100 (x₁ - x₀²)²`, with its narrow curved valley.
fn rosenbrock(x: &Tracked) -> Result<Tracked> {
    let x0 = x.index(&[IndexItem::Int(0)])?;
    let x1 = x.index(&[IndexItem::Int(1)])?;
    let valley = with_constant(Binary::Mul, 100.0, &x1.sub(&x0.powf(2.0)?)?.powf(2.0)?)?;
    with_constant(Binary::Sub, 1.0, &x0)?
        .powf(2.0)?
        .add(&valley)
}

fn main() -> Result<()> {
    let x = Value::from_vec(&[2], vec![-1.0, 2.0])?;
    let v = Value::from_vec(&[2], vec![0.5, 1.0])?;

    let hv = hvp(rosenbrock, &x, &v)?;
    println!("H v           = {:?}", hv.to_f64_vec());

    // The same product through the full Hessian.
    let h = hessian(rosenbrock, &x)?;
    let full = Op::Matmul.forward(&[&h, &v])?;
    println!("hessian(f) @ v = {:?}", full.to_f64_vec());

    // By hand: H = [[1200 x₀² - 400 x₁ + 2, -400 x₀], [-400 x₀, 200]] = [[402, 400], [400, 200]].
    let expected = [402.0 * 0.5 + 400.0, 400.0 * 0.5 + 200.0];
    let matches = |value: &Value| {
        value
            .to_f64_vec()
            .iter()
            .zip(expected)
            .all(|(a, b)| (a - b).abs() < 1e-9)
    };
    if matches(&hv) && matches(&full) {
        println!("both equal the hand-derived {expected:?}");
        Ok(())
    } else {
        Err(Error::Usage {
            message: format!("expected {expected:?}"),
        })
    }
}
