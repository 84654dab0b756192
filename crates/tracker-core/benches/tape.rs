//! The engine without Python: recording ops on the tape and sweeping it backward.
//!
//! `cargo bench -p tracker-core --bench tape` (the Python-level suite is `bench/bench.py`).
//! Each case is run once and checked before it is timed, so a failing op is an error
//! rather than a fast benchmark of an error path; the timed closures return their
//! `Result`, which criterion keeps from being optimised away.

use std::hint::black_box;

use criterion::{BatchSize, Criterion};
use tracker_core::ops::binary::Binary;
use tracker_core::ops::index::IndexItem;
use tracker_core::{Arg, Dtype, Op, Output, Result, Tracked, Value, apply, backward, gradient};

/// Small elementwise ops recorded per call: 333 steps of `tanh(y * a + b)`, then `sum`.
const STEPS: usize = 333;
const SMALL: usize = 4;
/// Elements of the large elementwise case (the Python suite's W4).
const LARGE: usize = 1_000_000;
/// Side of the matrices of the matmul case.
const SIDE: usize = 256;

/// A deterministic vector in (-1, 1) without a random number crate.
fn values(len: usize, seed: u64) -> Vec<f64> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

fn vector(len: usize, seed: u64) -> Result<Value> {
    Value::from_vec(&[len], values(len, seed))
}

/// The small parameters of the recording case: `x`, `a` (near 1) and `b` (near 0).
struct Small {
    x: Value,
    a: Value,
    b: Value,
}

impl Small {
    fn new() -> Result<Small> {
        let a = values(SMALL, 2).iter().map(|v| 1.0 + 0.1 * v).collect();
        let b = values(SMALL, 3).iter().map(|v| 0.1 * v).collect();
        Ok(Small {
            x: vector(SMALL, 1)?,
            a: Value::from_vec(&[SMALL], a)?,
            b: Value::from_vec(&[SMALL], b)?,
        })
    }

    /// Records `3 * STEPS + 1` ops and returns the loss, with the parameter `x`.
    fn record(&self) -> Result<(Tracked, Tracked)> {
        let x = Tracked::param(self.x.clone());
        let a = Tracked::param(self.a.clone());
        let b = Tracked::param(self.b.clone());
        let mut y = x.clone();
        for _ in 0..STEPS {
            y = y.mul(&a)?.add(&b)?.tanh()?;
        }
        Ok((y.sum()?, x))
    }

    /// Records and sweeps: one gradient call.
    fn gradient(&self) -> Result<Value> {
        let (y, x) = self.record()?;
        backward(&y, None, true)?;
        x.grad()
    }
}

/// Scalars of the scalar-loop case (the Python suite's W6).
const SCALARS: usize = 100;

/// `c <op> t` for a constant `c`.
fn with_constant(op: Binary, c: f64, t: &Tracked) -> Result<Tracked> {
    let c = Arg::Value(Value::scalar(c, Dtype::F64));
    match apply(Op::Binary(op), &[c, Arg::Tracked(t.clone())])? {
        Output::Tracked(y) => Ok(y),
        Output::Value(_) => unreachable!("t is tracked"),
    }
}

/// Rosenbrock over the elements of `x`, one scalar at a time, as the Python suite's
/// W6 writes it: `sum(100 (x[i+1] - x[i]^2)^2 + (1 - x[i])^2)`, forward and backward.
fn scalar_loop(x: &Value) -> Result<Value> {
    gradient(
        |x| {
            let at = |i: usize| x.index(&[IndexItem::Int(i as isize)]);
            let mut total = with_constant(Binary::Mul, 0.0, &at(0)?)?;
            for i in 0..SCALARS - 1 {
                let (a, b) = (at(i)?, at(i + 1)?);
                let d = b.sub(&a.powf(2.0)?)?.powf(2.0)?;
                let e = with_constant(Binary::Sub, 1.0, &at(i)?)?.powf(2.0)?;
                total = total
                    .add(&with_constant(Binary::Mul, 100.0, &d)?)?
                    .add(&e)?;
            }
            Ok(total)
        },
        x,
    )
}

/// `sum(exp(sin(x)) * x**2 + tanh(x))`, forward and backward.
fn elementwise(x: &Value) -> Result<Value> {
    let p = Tracked::param(x.clone());
    let y = p.sin()?.exp()?.mul(&p.powf(2.0)?)?.add(&p.tanh()?)?.sum()?;
    backward(&y, None, true)?;
    p.grad()
}

/// `sum(tanh(a @ b))`, forward and backward, gradients for both.
fn matmul(a: &Value, b: &Value) -> Result<(Value, Value)> {
    let (pa, pb) = (Tracked::param(a.clone()), Tracked::param(b.clone()));
    let y = pa.matmul(&pb)?.tanh()?.sum()?;
    backward(&y, None, true)?;
    Ok((pa.grad()?, pb.grad()?))
}

fn benches(c: &mut Criterion) -> Result<()> {
    let small = Small::new()?;
    small.gradient()?;
    let ops = 3 * STEPS + 1;
    c.bench_function(&format!("record {ops} ops on (4,)"), |bench| {
        bench.iter(|| small.record())
    });
    // The sweep alone: each iteration sweeps a tape recorded in its untimed set-up.
    c.bench_function(&format!("sweep {ops} ops on (4,)"), |bench| {
        bench.iter_batched(
            || small.record(),
            |recorded| recorded.and_then(|(y, x)| backward(black_box(&y), None, true).map(|()| x)),
            BatchSize::PerIteration,
        )
    });
    c.bench_function(&format!("record + sweep {ops} ops on (4,)"), |bench| {
        bench.iter(|| small.gradient())
    });

    let scalars = vector(SCALARS, 7)?;
    scalar_loop(&scalars)?;
    c.bench_function("scalar loop (W6), forward + backward", |bench| {
        bench.iter(|| scalar_loop(black_box(&scalars)))
    });

    let x = vector(LARGE, 4)?;
    elementwise(&x)?;
    c.bench_function("elementwise 10^6, forward + backward", |bench| {
        bench.iter(|| elementwise(black_box(&x)))
    });

    let a = Value::from_vec(&[SIDE, SIDE], values(SIDE * SIDE, 5))?;
    let b = Value::from_vec(&[SIDE, SIDE], values(SIDE * SIDE, 6))?;
    matmul(&a, &b)?;
    c.bench_function("matmul 256x256, forward + backward", |bench| {
        bench.iter(|| matmul(black_box(&a), black_box(&b)))
    });
    Ok(())
}

fn main() -> Result<()> {
    let mut criterion = Criterion::default().configure_from_args();
    benches(&mut criterion)?;
    criterion.final_summary();
    Ok(())
}
