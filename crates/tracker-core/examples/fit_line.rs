//! Fits a line `y = w x + b` to noisy points by gradient descent on two parameters:
//! `cargo run -p tracker-core --example fit_line`.
//!
//! Each step records the loss on the tape, `backward` leaves the gradients on the
//! parameters, and `update` moves them (and zeroes the gradients for the next step).

use tracker_core::ops::binary::Binary;
use tracker_core::ops::reduce::Reduce;
use tracker_core::{Arg, Dtype, Error, Op, Output, Result, Tracked, Value, apply, backward};

/// The result of an op with a tracked argument (recording is on, so it is tracked).
fn tracked(out: Output) -> Result<Tracked> {
    match out {
        Output::Tracked(t) => Ok(t),
        Output::Value(_) => Err(Error::Usage {
            message: "expected a recorded result".into(),
        }),
    }
}

/// The mean squared error of the line `w x + b` on the points `(xs, ys)`.
fn loss(w: &Tracked, b: &Tracked, xs: &Value, ys: &Value) -> Result<Tracked> {
    let wx = apply(
        Op::Binary(Binary::Mul),
        &[Arg::Value(xs.clone()), Arg::Tracked(w.clone())],
    )?;
    let prediction = tracked(wx)?.add(b)?;
    let residual = apply(
        Op::Binary(Binary::Sub),
        &[Arg::Tracked(prediction), Arg::Value(ys.clone())],
    )?;
    let mean = Op::Reduce {
        kind: Reduce::Mean,
        axes: [0].as_slice().into(),
        keepdims: false,
    };
    tracked(apply(mean, &[Arg::Tracked(tracked(residual)?.powf(2.0)?)])?)
}

/// Moves each parameter by `-rate` times its gradient.
fn descend(params: &[&Tracked], rate: f64) -> Result<()> {
    for p in params {
        let step = p.grad()?.item().unwrap_or(0.0) * -rate;
        if let Some(param) = p.as_param() {
            param.update(&Value::scalar(step, Dtype::F64))?;
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    // Twenty points near y = 2x + 1, with a small deterministic wobble as noise.
    let n = 20;
    let xs: Vec<f64> = (0..n).map(|i| f64::from(i) / f64::from(n)).collect();
    let ys: Vec<f64> = xs
        .iter()
        .enumerate()
        .map(|(i, x)| 2.0 * x + 1.0 + 0.01 * (7.0 * i as f64).sin())
        .collect();
    let xs = Value::from_vec(&[xs.len()], xs)?;
    let ys = Value::from_vec(&[ys.len()], ys)?;

    let w = Tracked::param(Value::scalar(0.0, Dtype::F64));
    let b = Tracked::param(Value::scalar(0.0, Dtype::F64));
    for step in 0..=200 {
        let l = loss(&w, &b, &xs, &ys)?;
        if step % 40 == 0 {
            println!(
                "step {step:4}: loss {:.6}",
                l.value().item().unwrap_or(f64::NAN)
            );
        }
        backward(&l, None, true)?;
        descend(&[&w, &b], 0.5)?;
    }

    let w = w.value().item().unwrap_or(f64::NAN);
    let b = b.value().item().unwrap_or(f64::NAN);
    println!("fitted w = {w:.4}, b = {b:.4} (the points lie near w = 2, b = 1)");
    if (w - 2.0).abs() < 0.02 && (b - 1.0).abs() < 0.02 {
        Ok(())
    } else {
        Err(Error::Usage {
            message: "gradient descent did not find the line".into(),
        })
    }
}
