//! Matrix products (1-D and 2-D operands), through ndarray's GEMM (matrixmultiply).

use ndarray::{ArrayView2, ArrayViewMut2, linalg::general_mat_mul};

use crate::error::{Error, Result, shape_error};
use crate::num::Float;
use crate::op::{Backend, Contributions, Op, each_input};
use crate::value::{Array, Shape, Value, alloc, size_of};

/// The 2-D shapes of `a @ b` after promoting 1-D operands, and the result's shape.
fn matmul_shapes(a: &[usize], b: &[usize]) -> Result<([usize; 2], [usize; 2], Shape)> {
    let (a2, b2) = match (a, b) {
        (&[k], &[k2]) => ([1, k], [k2, 1]),
        (&[k], &[k2, n]) => ([1, k], [k2, n]),
        (&[m, k], &[k2]) => ([m, k], [k2, 1]),
        (&[m, k], &[k2, n]) => ([m, k], [k2, n]),
        _ => {
            return Err(Error::Type {
                op: "matmul",
                message: format!(
                    "operands of shapes {a:?} and {b:?}: only 1-D and 2-D operands are supported"
                ),
            });
        }
    };
    if a2[1] != b2[0] {
        return Err(shape_error(
            "matmul",
            format!(
                "shapes {a:?} and {b:?} are not aligned: {} (dim {}) != {} (dim 0)",
                a2[1],
                a.len() - 1,
                b2[0]
            ),
        ));
    }
    let mut out = Shape::new();
    if a.len() == 2 {
        out.push(a2[0]);
    }
    if b.len() == 2 {
        out.push(b2[1]);
    }
    Ok((a2, b2, out))
}

fn matmul_typed<T: Float + ndarray::LinalgScalar>(a: &Array<T>, b: &Array<T>) -> Result<Array<T>> {
    let ([m, k], [_, n], shape) = matmul_shapes(a.shape(), b.shape())?;
    let mut out = alloc(size_of(&[m, n], "matmul")?, <T as Float>::zero(), "matmul")?;
    fn view<T>(s: &[T], d: [usize; 2]) -> Result<ArrayView2<'_, T>> {
        ArrayView2::from_shape(d, s).map_err(|e| shape_error("matmul", e.to_string()))
    }
    let av = view(a.as_slice(), [m, k])?;
    let bv = view(b.as_slice(), [k, n])?;
    let mut cv = ArrayViewMut2::from_shape([m, n], &mut out)
        .map_err(|e| shape_error("matmul", e.to_string()))?;
    // Shapes are checked above, so the product cannot panic.
    general_mat_mul(<T as Float>::one(), &av, &bv, <T as Float>::zero(), &mut cv);
    Array::from_vec(&shape, out)
}

/// `a @ b` for 1-D and 2-D operands of one dtype.
pub fn matmul(a: &Value, b: &Value) -> Result<Value> {
    match (a, b) {
        (Value::F32(a), Value::F32(b)) => Ok(Value::F32(matmul_typed(a, b)?)),
        (Value::F64(a), Value::F64(b)) => Ok(Value::F64(matmul_typed(a, b)?)),
        _ => Err(crate::op::mixed_dtypes("matmul")),
    }
}

/// `x @ w`. Pullback: `dx = dy @ wᵀ`, `dw = xᵀ @ dy` (1-D operands promoted to 2-D).
pub fn matmul_pullback<B: Backend>(
    b: &mut B,
    x: &B::A,
    w: &B::A,
    dy: &B::A,
    need_x: bool,
    need_w: bool,
) -> Result<Contributions<B::A>> {
    let (xs, ws) = (b.shape(x), b.shape(w));
    let (x2, w2, _) = matmul_shapes(&xs, &ws)?;
    let dy2 = b.reshape(dy, &[x2[0], w2[1]])?;
    // The 2-D products, reshaped back to the operands' shapes by `each_input`.
    each_input(b, &[(x, need_x), (w, need_w)], |b, k| {
        if k == 0 {
            let w2v = b.reshape(w, &w2)?;
            let wt = b.transpose(&w2v, &[1, 0])?;
            let g = b.apply(Op::Matmul, &[&dy2, &wt])?;
            b.reshape(&g, &xs)
        } else {
            let x2v = b.reshape(x, &x2)?;
            let xt = b.transpose(&x2v, &[1, 0])?;
            let g = b.apply(Op::Matmul, &[&xt, &dy2])?;
            b.reshape(&g, &ws)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_by_hand() {
        let a = Value::from_vec(&[2, 2], vec![1., 2., 3., 4.]).ok();
        let v = Value::from_vec(&[2], vec![1., 1.]).ok();
        let av = a
            .as_ref()
            .zip(v.as_ref())
            .and_then(|(a, v)| matmul(a, v).ok());
        assert_eq!(
            av.map(|r| (r.shape().to_vec(), r.to_f64_vec())),
            Some((vec![2], vec![3., 7.]))
        );
        let vv = v.as_ref().and_then(|v| matmul(v, v).ok());
        assert_eq!(
            vv.map(|r| (r.shape().to_vec(), r.to_f64_vec())),
            Some((vec![], vec![2.]))
        );
        let bad = a
            .as_ref()
            .and_then(|a| matmul(a, &Value::from_vec(&[3], vec![1., 1., 1.]).ok()?).err());
        assert!(bad.is_some());
    }
}
