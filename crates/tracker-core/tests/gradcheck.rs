//! Every core op, checked against finite differences to first and second order in f64.
//!
//! For each op, `loss(x) = sum(op(x, ...) * w)` with a fixed weight `w`: its gradient is
//! compared with central differences of the loss, and its Hessian (a recorded gradient,
//! differentiated again) with central differences of the gradient.

use std::sync::Arc;

use tracker_core::gradcheck::{max_abs_diff, numerical_gradient};
use tracker_core::op::Op;
use tracker_core::ops::binary::Binary;
use tracker_core::ops::index::{IndexItem, plan};
use tracker_core::ops::reduce::{Reduce, cumprod};
use tracker_core::ops::shape::Mask;
use tracker_core::ops::special::Special;
use tracker_core::ops::unary::Unary;
use tracker_core::{
    Arg, Dtype, Live, Output, Result, Shape, Tracked, Value, apply, enter_scope, gradient, hessian,
};

type Case = (String, Vec<usize>, Box<dyn Fn(&Tracked) -> Result<Tracked>>);

fn tracked(out: Output) -> Result<Tracked> {
    match out {
        Output::Tracked(t) => Ok(t),
        Output::Value(_) => Err(tracker_core::Error::Usage {
            message: "not recorded".into(),
        }),
    }
}

fn op(op: Op, args: &[Arg]) -> Result<Tracked> {
    tracked(apply(op, args)?)
}

/// Deterministic values in [0.5, 1.5), distinct so that max/min have no ties.
fn values(n: usize, seed: u64) -> Vec<f64> {
    (0..n)
        .map(|i| 0.5 + ((i as u64 * 7919 + seed * 104729) % 1000) as f64 / 1000.0)
        .collect()
}

fn constant(shape: &[usize], seed: u64) -> Arg {
    let n = shape.iter().product();
    Arg::Value(Value::from_vec(shape, values(n, seed)).unwrap_or(Value::scalar(1.0, Dtype::F64)))
}

/// `sum(y * w)` for a fixed `w` of `y`'s shape.
fn weighted_sum(y: &Tracked) -> Result<Tracked> {
    let w = constant(&y.shape(), 99);
    let yw = op(Op::Binary(Binary::Mul), &[Arg::Tracked(y.clone()), w])?;
    let axes = (0..y.shape().len()).collect();
    op(
        Op::Reduce {
            kind: Reduce::Sum,
            axes,
            keepdims: false,
        },
        &[Arg::Tracked(yw)],
    )
}

fn loss_value(f: &dyn Fn(&Tracked) -> Result<Tracked>, x: &Value) -> Result<f64> {
    let scope = enter_scope(false);
    let y = scope
        .input(Arg::Value(x.clone()))
        .and_then(|t| weighted_sum(&f(&t)?));
    scope.exit(Vec::new())?;
    Ok(y?.value().item().unwrap_or(f64::NAN))
}

/// `then(x·scale + offset)`: `x` moved into an op's domain first.
fn moved_into(x: &Tracked, scale: f64, offset: f64, then: Op) -> Result<Tracked> {
    let scalar = |v: f64| Arg::Value(Value::scalar(v, Dtype::F64));
    let scaled = op(
        Op::Binary(Binary::Mul),
        &[Arg::Tracked(x.clone()), scalar(scale)],
    )?;
    let moved = op(
        Op::Binary(Binary::Add),
        &[Arg::Tracked(scaled), scalar(offset)],
    )?;
    op(then, &[Arg::Tracked(moved)])
}

fn cases() -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    let me = |x: &Tracked| Arg::Tracked(x.clone());
    for &u in Unary::ALL {
        // Inputs in [0.5, 1.5) moved into each op's domain, and off the integers and
        // half-integers where the piecewise constant ops step.
        let (scale, offset) = match u {
            Unary::Arcsin | Unary::Arccos | Unary::Arctanh => (0.5, 1.234e-4),
            Unary::Arccosh => (1.0, 1.0),
            // The branch below the kink at 0 (above it they are x and scale·x).
            Unary::Relu | Unary::Elu | Unary::Selu => (-1.0, 1.234e-4),
            _ => (1.0, 1.234e-4),
        };
        // Also on a 0-d value: the sweep's path for loops over scalars.
        for shape in [vec![2, 3], vec![]] {
            cases.push((
                format!("{} {shape:?}", u.name()),
                shape,
                Box::new(move |x| moved_into(x, scale, offset, Op::Unary(u))),
            ));
        }
    }
    for &b in Binary::ALL {
        // Tracked on both sides, with broadcasting: x[0] (3,) against x (2, 3).
        let f = move |x: &Tracked| {
            let row = op(
                Op::Gather(plan(&x.shape(), &[IndexItem::Int(0)])?.into()),
                &[me(x)],
            )?;
            let other = op(
                Op::Binary(Binary::Add),
                &[Arg::Tracked(row), constant(&[3], 5)],
            )?;
            op(Op::Binary(b), &[me(x), Arg::Tracked(other)])
        };
        cases.push((
            format!("{} (both tracked)", b.name()),
            vec![2, 3],
            Box::new(f),
        ));
        cases.push((
            format!("{} (constant right)", b.name()),
            vec![2, 3],
            Box::new(move |x| op(Op::Binary(b), &[me(x), constant(&[3, 1, 1], 3)])),
        ));
        // 0-d values, as a loop over scalars has them: the sweep's path for those.
        let scalar = |v: f64| Arg::Value(Value::scalar(v, Dtype::F64));
        cases.push((
            format!("{} (0-d, both tracked)", b.name()),
            vec![],
            Box::new(move |x| {
                let other = op(Op::Binary(Binary::Add), &[me(x), scalar(0.37)])?;
                op(Op::Binary(b), &[me(x), Arg::Tracked(other)])
            }),
        ));
        cases.push((
            format!("{} (0-d, constant right)", b.name()),
            vec![],
            Box::new(move |x| op(Op::Binary(b), &[me(x), scalar(0.8)])),
        ));
    }
    // The special functions whose values and derivatives are all computed in the core
    // (the others need SciPy: tests/test_special.py checks them through Python).
    for s in [
        Special::Erfc,
        Special::Logit,
        Special::Ndtr,
        Special::LogNdtr,
        Special::J0,
        Special::J1,
        Special::Y0,
        Special::Y1,
    ] {
        // Inputs in [0.45, 0.95) for logit's (0, 1), else [0.5, 1.5).
        let (scale, offset) = if s == Special::Logit {
            (0.5, 0.2)
        } else {
            (1.0, 0.0)
        };
        cases.push((
            s.name().into(),
            vec![2, 3],
            Box::new(move |x| moved_into(x, scale, offset, Op::Special(s))),
        ));
    }
    for s in [Special::Xlogy, Special::Xlog1py] {
        cases.push((
            format!("{} (both tracked)", s.name()),
            vec![2, 3],
            Box::new(move |x| {
                let sq = op(Op::Binary(Binary::Mul), &[me(x), me(x)])?;
                op(Op::Special(s), &[Arg::Tracked(sq), me(x)])
            }),
        ));
    }
    for &kind in Reduce::ALL {
        for (axes, keepdims) in [(vec![0, 1, 2], false), (vec![1], true), (vec![0, 2], false)] {
            let name = format!("{} over {axes:?}", kind.name());
            let f = move |x: &Tracked| {
                op(
                    Op::Reduce {
                        kind,
                        axes: axes.iter().copied().collect(),
                        keepdims,
                    },
                    &[me(x)],
                )
            };
            cases.push((name, vec![2, 3, 4], Box::new(f)));
        }
    }
    let mask = Arc::new(Mask {
        shape: Shape::from_slice(&[3]),
        bits: vec![true, false, true],
    });
    cases.push((
        "where".into(),
        vec![2, 3],
        Box::new(move |x| {
            let sq = op(Op::Binary(Binary::Mul), &[me(x), me(x)])?;
            op(Op::Where(mask.clone()), &[me(x), Arg::Tracked(sq)])
        }),
    ));
    for (a, b) in [
        (vec![2, 3], vec![3, 4]),
        (vec![3], vec![3, 2]),
        (vec![2, 3], vec![3]),
        (vec![3], vec![3]),
    ] {
        let name = format!("matmul {a:?} @ {b:?}");
        cases.push((
            name,
            a.clone(),
            Box::new(move |x| {
                // Both operands depend on x: w = reshape(x-derived values) for a second-order check.
                let w = op(Op::Unary(Unary::Sin), &[constant(&b, 7)]);
                let w = match w {
                    Ok(w) => Arg::Tracked(w),
                    Err(_) => constant(&b, 7),
                };
                let y = op(Op::Matmul, &[me(x), w])?;
                let x2 = op(Op::Binary(Binary::Mul), &[me(x), me(x)])?;
                let z = op(Op::Matmul, &[Arg::Tracked(x2), constant(&b, 11)])?;
                op(Op::Binary(Binary::Add), &[Arg::Tracked(y), Arg::Tracked(z)])
            }),
        ));
    }
    linalg_cases(&mut cases);
    cases.push((
        "transpose".into(),
        vec![2, 3, 4],
        Box::new(move |x| op(Op::Transpose(Shape::from_slice(&[2, 0, 1])), &[me(x)])),
    ));
    cases.push((
        "reshape".into(),
        vec![2, 3],
        Box::new(move |x| op(Op::Reshape(Shape::from_slice(&[3, 2])), &[me(x)])),
    ));
    cases.push((
        "broadcast_to".into(),
        vec![3, 1],
        Box::new(move |x| op(Op::BroadcastTo(Shape::from_slice(&[2, 3, 4])), &[me(x)])),
    ));
    cases.push((
        "getitem (repeated integer array)".into(),
        vec![3, 2],
        Box::new(move |x| {
            let items = [IndexItem::Array {
                shape: Shape::from_slice(&[4]),
                values: vec![0, 2, 0, -1],
            }];
            let g = op(Op::Gather(plan(&x.shape(), &items)?.into()), &[me(x)])?;
            op(
                Op::Binary(Binary::Mul),
                &[Arg::Tracked(g.clone()), Arg::Tracked(g)],
            )
        }),
    ));
    cases.push((
        "scatter_add".into(),
        vec![2],
        Box::new(move |x| {
            let g = plan(&[3, 2], &[IndexItem::Int(1)])?;
            let sq = op(Op::Binary(Binary::Mul), &[me(x), me(x)])?;
            op(Op::Scatter(g.into()), &[Arg::Tracked(sq)])
        }),
    ));
    cases.push((
        "shift".into(),
        vec![2, 4],
        Box::new(move |x| {
            let sq = op(Op::Binary(Binary::Mul), &[me(x), me(x)])?;
            op(
                Op::Shift {
                    axis: 1,
                    by: 2,
                    fill: 1.0,
                },
                &[Arg::Tracked(sq)],
            )
        }),
    ));
    for (axis, reverse) in [(0, false), (1, true)] {
        cases.push((
            format!("cumsum over {axis} (reverse {reverse})"),
            vec![2, 4],
            Box::new(move |x| {
                let sq = op(Op::Binary(Binary::Mul), &[me(x), me(x)])?;
                op(Op::Cumsum { axis, reverse }, &[Arg::Tracked(sq)])
            }),
        ));
    }
    cases.push((
        "cumprod".into(),
        vec![2, 4],
        Box::new(move |x| match cumprod(&mut Live, &me(x), 1)? {
            Arg::Tracked(t) => Ok(t),
            Arg::Value(_) => Err(tracker_core::Error::Usage {
                message: "not recorded".into(),
            }),
        }),
    ));
    cases.push((
        "astype".into(),
        vec![3],
        Box::new(move |x| {
            let sq = op(Op::Binary(Binary::Mul), &[me(x), me(x)])?;
            let down = op(Op::Cast(Dtype::F32), &[Arg::Tracked(sq)])?;
            op(Op::Cast(Dtype::F64), &[Arg::Tracked(down)])
        }),
    ));
    cases
}

/// `scale · I` of size `n`, as a constant.
fn identity(n: usize, scale: f64) -> Arg {
    let values = (0..n * n)
        .map(|k| if k % (n + 1) == 0 { scale } else { 0.0 })
        .collect();
    Arg::Value(Value::from_vec(&[n, n], values).unwrap_or(Value::scalar(scale, Dtype::F64)))
}

/// A constant `(r, c)` matrix with 2, -3, 4, ... on its diagonal: added to `values`
/// (which are nearly rank one), it makes well-separated singular values.
fn spread(shape: &[usize]) -> Arg {
    let (r, c) = (
        shape.first().copied().unwrap_or(1),
        shape.get(1).copied().unwrap_or(1),
    );
    let values = (0..r * c)
        .map(|k| {
            let (i, j) = (k / c, k % c);
            if i == j {
                (i as f64 + 2.0) * if i % 2 == 0 { 1.0 } else { -1.0 }
            } else {
                0.0
            }
        })
        .collect();
    Arg::Value(Value::from_vec(&[r, c], values).unwrap_or(Value::scalar(1.0, Dtype::F64)))
}

fn plus(a: &Tracked, b: Arg) -> Result<Tracked> {
    op(Op::Binary(Binary::Add), &[Arg::Tracked(a.clone()), b])
}

fn times(a: &Tracked, b: &Tracked) -> Result<Tracked> {
    op(
        Op::Binary(Binary::Mul),
        &[Arg::Tracked(a.clone()), Arg::Tracked(b.clone())],
    )
}

fn swap(a: &Tracked) -> Result<Tracked> {
    let nd = a.shape().len();
    let mut perm: Shape = (0..nd).collect();
    perm.swap(nd - 1, nd - 2);
    op(Op::Transpose(perm), &[Arg::Tracked(a.clone())])
}

/// The linear-algebra ops, on inputs built from `x` so that they are well conditioned
/// (`x + 3I`), symmetric (`x + xᵀ`, `x xᵀ + I`) or triangular as each op needs; the
/// outputs of eigh and svd are squared, which is invariant to the signs of the vectors.
fn linalg_cases(cases: &mut Vec<Case>) {
    let me = |x: &Tracked| Arg::Tracked(x.clone());
    cases.push((
        "matmul (batched, broadcast)".into(),
        vec![2, 1, 2, 3],
        Box::new(move |x| {
            let y = op(Op::Matmul, &[me(x), constant(&[3, 3, 2], 7)])?;
            let x2 = times(x, x)?;
            let z = op(Op::Matmul, &[Arg::Tracked(x2), constant(&[1, 3, 2], 3)])?;
            plus(&y, Arg::Tracked(z))
        }),
    ));
    cases.push((
        "matmul (1-D @ batched, both tracked)".into(),
        vec![2, 2],
        Box::new(move |x| {
            let row = op(
                Op::Gather(plan(&x.shape(), &[IndexItem::Int(0)])?.into()),
                &[me(x)],
            )?;
            let stacked = op(Op::Reshape(Shape::from_slice(&[1, 2, 2])), &[me(x)])?;
            op(Op::Matmul, &[Arg::Tracked(row), Arg::Tracked(stacked)])
        }),
    ));
    // The transposed products of matmul's pullbacks, each operand tracked in turn (x
    // against x·x, so both carry gradient), batches broadcast.
    for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
        cases.push((
            format!("matmul_t (ta={ta}, tb={tb})"),
            vec![2, 1, 3, 3],
            Box::new(move |x| {
                let x2 = times(x, x)?;
                let y = op(Op::MatmulT { ta, tb }, &[me(x), Arg::Tracked(x2.clone())])?;
                let z = op(Op::MatmulT { ta, tb }, &[constant(&[3, 3], 5), me(x)])?;
                let w = op(
                    Op::MatmulT { ta, tb },
                    &[Arg::Tracked(x2), constant(&[2, 3, 3], 9)],
                )?;
                plus(&plus(&y, Arg::Tracked(z))?, Arg::Tracked(w))
            }),
        ));
    }
    for (name, linalg) in [("inv", Op::Inv), ("det", Op::Det), ("slogdet", Op::Slogdet)] {
        cases.push((
            name.into(),
            vec![2, 3, 3],
            Box::new(move |x| {
                let a = plus(x, identity(3, 3.0))?;
                op(linalg.clone(), &[Arg::Tracked(a)])
            }),
        ));
    }
    cases.push((
        "solve (both tracked)".into(),
        vec![3, 3],
        Box::new(move |x| {
            let a = plus(x, identity(3, 3.0))?;
            let b = times(x, x)?;
            op(Op::Solve, &[Arg::Tracked(a), Arg::Tracked(b)])
        }),
    ));
    for lower in [true, false] {
        cases.push((
            format!("solve_triangular (lower: {lower})"),
            vec![3, 3],
            Box::new(move |x| {
                let a = plus(x, identity(3, 3.0))?;
                op(
                    Op::SolveTriangular { lower },
                    &[Arg::Tracked(a), Arg::Tracked(times(x, x)?)],
                )
            }),
        ));
    }
    cases.push((
        "cholesky".into(),
        vec![3, 3],
        Box::new(move |x| {
            let xt = swap(x)?;
            let a = op(Op::Matmul, &[me(x), Arg::Tracked(xt)])?;
            let a = plus(&a, identity(3, 1.0))?;
            op(Op::Cholesky, &[Arg::Tracked(a)])
        }),
    ));
    cases.push((
        "eigh (squared)".into(),
        vec![3, 3],
        Box::new(move |x| {
            let a = plus(x, Arg::Tracked(swap(x)?))?;
            let y = op(Op::Eigh, &[Arg::Tracked(a)])?;
            times(&y, &y)
        }),
    ));
    for shape in [vec![3, 2], vec![2, 3]] {
        cases.push((
            format!("svd {shape:?} (squared)"),
            shape,
            Box::new(move |x| {
                let a = plus(x, spread(&x.shape()))?;
                let y = op(Op::Svd, &[Arg::Tracked(a)])?;
                times(&y, &y)
            }),
        ));
    }
    cases.push((
        "qr".into(),
        vec![3, 2],
        Box::new(move |x| {
            let a = plus(x, spread(&x.shape()))?;
            op(Op::Qr, &[Arg::Tracked(a)])
        }),
    ));
}

#[test]
fn every_op_matches_finite_differences_to_second_order() -> Result<()> {
    let mut failures = Vec::new();
    for (name, shape, f) in cases() {
        let n = shape.iter().product();
        let x = Value::from_vec(&shape, values(n, 1))?;
        let loss = |x: &Tracked| weighted_sum(&f(x)?);
        // float32 round trips (astype) limit that case's precision: its loss is quadratic,
        // so a large step is still exact for central differences.
        let (step, tolerance) = if name == "astype" {
            (1e-2, 1e-5)
        } else {
            (1e-6, 1e-7)
        };
        let analytic = gradient(loss, &x)?;
        let numeric = numerical_gradient(|x| loss_value(&f, x), &x, step)?;
        let first = max_abs_diff(&analytic, &numeric);
        if first > tolerance {
            failures.push(format!("{name}: gradient off by {first:e}"));
        }
        let h = hessian(loss, &x)?;
        // Central differences of the gradient, one column per input element.
        let mut numeric_h = Vec::with_capacity(n * n);
        for k in 0..n {
            let at = |delta: f64| -> Result<Vec<f64>> {
                let mut shifted = x.to_f64_vec();
                if let Some(v) = shifted.get_mut(k) {
                    *v += delta;
                }
                Ok(gradient(loss, &Value::from_vec(&shape, shifted)?)?.to_f64_vec())
            };
            let step = step * 10.0;
            let (up, down) = (at(step)?, at(-step)?);
            numeric_h.push(
                up.iter()
                    .zip(&down)
                    .map(|(u, d)| (u - d) / (2.0 * step))
                    .collect::<Vec<_>>(),
            );
        }
        let h = h.to_f64_vec();
        let second = (0..n)
            .flat_map(|i| (0..n).map(move |j| (i, j)))
            .map(|(i, j)| {
                (h.get(i * n + j).copied().unwrap_or(f64::NAN)
                    - numeric_h
                        .get(j)
                        .and_then(|c| c.get(i))
                        .copied()
                        .unwrap_or(f64::NAN))
                .abs()
            })
            .fold(0.0, f64::max);
        let tolerance = if name == "astype" { 1e-4 } else { 1e-5 };
        if second.is_nan() || second > tolerance {
            failures.push(format!("{name}: Hessian off by {second:e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

#[test]
fn hessian_of_tanh_of_a_matrix_product_is_analytic() -> Result<()> {
    // f(x) = sum(tanh(W x)); H = Wᵀ diag(-2 tanh(Wx) (1 - tanh²(Wx))) W.
    let (m, n) = (3, 4);
    let w = values(m * n, 3).iter().map(|v| v - 1.0).collect::<Vec<_>>();
    let x = Value::from_vec(&[n], values(n, 5))?;
    let wv = Value::from_vec(&[m, n], w.clone())?;
    let f = |x: &Tracked| {
        let y = op(
            Op::Matmul,
            &[Arg::Value(wv.clone()), Arg::Tracked(x.clone())],
        )?;
        let t = op(Op::Unary(Unary::Tanh), &[Arg::Tracked(y)])?;
        op(
            Op::Reduce {
                kind: Reduce::Sum,
                axes: [0].into_iter().collect(),
                keepdims: false,
            },
            &[Arg::Tracked(t)],
        )
    };
    let h = hessian(f, &x)?.to_f64_vec();
    let xs = x.to_f64_vec();
    let at = |r: usize, c: usize| w.get(r * n + c).copied().unwrap_or(0.0);
    for i in 0..n {
        for j in 0..n {
            let expected: f64 = (0..m)
                .map(|r| {
                    let t = (0..n)
                        .map(|c| at(r, c) * xs.get(c).copied().unwrap_or(0.0))
                        .sum::<f64>()
                        .tanh();
                    at(r, i) * (-2.0 * t * (1.0 - t * t)) * at(r, j)
                })
                .sum();
            let got = h.get(i * n + j).copied().unwrap_or(f64::NAN);
            assert!(
                (got - expected).abs() < 1e-10,
                "H[{i},{j}] = {got}, expected {expected}"
            );
        }
    }
    Ok(())
}

#[test]
fn prod_is_twice_differentiable_at_zeros() -> Result<()> {
    let prod = |x: &Tracked| {
        op(
            Op::Reduce {
                kind: Reduce::Prod,
                axes: [0].into_iter().collect(),
                keepdims: false,
            },
            &[Arg::Tracked(x.clone())],
        )
    };
    for point in [vec![2.0, 0.0, 3.0, 4.0], vec![2.0, 0.0, 0.0, 4.0]] {
        let x = Value::from_vec(&[4], point.clone())?;
        let others = |skip: &[usize]| -> f64 {
            point
                .iter()
                .enumerate()
                .filter(|(k, _)| !skip.contains(k))
                .map(|(_, v)| v)
                .product()
        };
        assert_eq!(
            gradient(prod, &x)?.to_f64_vec(),
            (0..4).map(|i| others(&[i])).collect::<Vec<_>>()
        );
        let h = hessian(prod, &x)?.to_f64_vec();
        for i in 0..4 {
            for j in 0..4 {
                let expected = if i == j { 0.0 } else { others(&[i, j]) };
                assert_eq!(
                    h.get(i * 4 + j).copied(),
                    Some(expected),
                    "H[{i},{j}] at {point:?}"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn special_functions_without_an_evaluator_say_scipy_is_needed() {
    let x = Value::from_vec(&[2], vec![0.5, 1.5]).unwrap_or(Value::scalar(0.5, Dtype::F64));
    for &s in Special::ALL.iter().filter(|s| !s.native()) {
        let inputs = vec![Arg::Value(x.clone()); s.arity()];
        let message = apply(Op::Special(s), &inputs).err().map(|e| e.to_string());
        assert!(
            message
                .as_deref()
                .is_some_and(|m| m.contains("install scipy")),
            "{}: {message:?}",
            s.name()
        );
    }
}

/// Short elementwise ops (on 0-d values, or on vectors of up to 16 elements), which the
/// sweep passes by the ops' scalar rules, have the gradients of the same ops on long
/// arrays (the array kernels), in both dtypes.
#[test]
fn short_elementwise_gradients_match_the_array_kernels() -> Result<()> {
    let mut failures = Vec::new();
    let mut check = |name: String, f: &dyn Fn(&Tracked) -> Result<Tracked>, at: f64| {
        let short: Vec<f64> = (0..5).map(|i| at + 0.01 * f64::from(i)).collect();
        let long: Vec<f64> = short.iter().copied().cycle().take(40).collect();
        let sum = |x: &Tracked| {
            let axes = [0].into_iter().collect();
            let y = f(x)?;
            op(
                Op::Reduce {
                    kind: Reduce::Sum,
                    axes,
                    keepdims: false,
                },
                &[Arg::Tracked(y)],
            )
        };
        for dtype in [Dtype::F32, Dtype::F64] {
            let g = |values: &[f64]| -> Result<Vec<f64>> {
                let x = Value::from_vec(&[values.len()], values.to_vec())?.cast(dtype)?;
                Ok(gradient(sum, &x)?.to_f64_vec())
            };
            let (g_short, g_long) = (g(&short)?, g(&long)?);
            let g_scalar = gradient(f, &Value::scalar(at, dtype))?.item();
            let ulp = if dtype == Dtype::F32 { 1e-7 } else { 3e-16 };
            let near = |a: f64, b: f64| a.is_finite() && (a - b).abs() <= 4.0 * ulp * b.abs();
            let pairs = g_short
                .iter()
                .zip(&g_long)
                .chain(g_scalar.as_ref().zip(g_long.first()));
            if g_short.len() != 5 || !pairs.into_iter().all(|(&a, &b)| near(a, b)) {
                failures.push(format!(
                    "{name} {dtype:?}: {g_short:?} and {g_scalar:?} against {g_long:?}"
                ));
            }
        }
        Ok::<(), tracker_core::Error>(())
    };
    let scaled = |x: &Tracked, by: f64| {
        let by = Arg::Value(Value::scalar(by, x.dtype()));
        op(Op::Binary(Binary::Mul), &[Arg::Tracked(x.clone()), by])
    };
    for &u in Unary::ALL {
        let at = if u == Unary::Arccosh { 1.6 } else { 0.6 };
        check(
            u.name().into(),
            &|x| op(Op::Unary(u), &[Arg::Tracked(x.clone())]),
            at,
        )?;
    }
    for &b in Binary::ALL {
        let f = |x: &Tracked| {
            let other = scaled(x, 2.1)?;
            op(
                Op::Binary(b),
                &[Arg::Tracked(x.clone()), Arg::Tracked(other)],
            )
        };
        check(b.name().into(), &f, 0.6)?;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}
