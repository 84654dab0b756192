//! Linear algebra: `matmul` with batch dimensions and NumPy broadcasting (through a
//! GEMM an embedding installs with [`set_gemm`], else ndarray's, matrixmultiply), and
//! the decompositions of `np.linalg` over batches of matrices `(..., m, n)`.
//!
//! Every pullback is written from the op's tracked inputs and recorded output, so it is
//! differentiable again: `inv`'s uses its output `Y` (`dA = -Yᵀ dY Yᵀ`), `det`'s and
//! `slogdet`'s record an `inv`, `eigh`'s and `svd`'s read `V`, `w`, `U`, `S` out of the
//! recorded output, and `cholesky`'s and `qr`'s solve with the recorded triangular
//! factor through `solve_triangular`.
//!
//! **Several results, one node.** The tape records one output per node, so `eigh`,
//! `svd` and `qr` pack their results into one buffer whose pieces the caller takes out
//! by indexing (a gather): each piece's gradient comes back as a scatter into the packed
//! gradient. The layouts:
//!
//! - `eigh`: `(..., n + 1, n)`: `V` in the first `n` rows, the eigenvalues `w` in the last;
//! - `svd` (thin): `(..., m + 1 + n, k)`, `k = min(m, n)`: `U`, then `S`, then `V` (not `Vᵀ`);
//! - `qr` (reduced, `m ≥ n`): `(..., m + n, n)`: `Q`, then `R`.
//!
//! **Degenerate inputs.** Where two eigenvalues (or singular values) are exactly equal,
//! the pullbacks drop that pair's `1/(λⱼ - λᵢ)` term (JAX's convention for the SVD): a
//! loss of the eigenvalues alone gets the finite gradient PyTorch gives, while a loss of
//! the eigenvectors of a repeated eigenvalue, which is not differentiable there, gets
//! this finite value instead of PyTorch's inf/NaN. Likewise `1/σ` is taken as 0 at a zero
//! singular value. Singular matrices raise `Error::LinAlg` (NumPy's `LinAlgError`) in
//! `inv` and `solve`, and in the pullbacks that need an inverse (`slogdet` at a singular
//! matrix, `qr` of a rank-deficient one); `det`'s pullback switches to the SVD there.

use std::mem::MaybeUninit;
use std::sync::{Arc, OnceLock};

use ndarray::{ArrayView2, ArrayViewMut2, linalg::general_mat_mul};

use crate::broadcast::{BroadcastOffsets, broadcast_shapes};
use crate::error::{Error, Result, shape_error};
use crate::num::Float;
use crate::op::{Backend, Contribution, Contributions, Op, each_input};
use crate::ops::binary::Binary;
use crate::ops::decomp::{self, Failure, Mat};
use crate::ops::index::{IndexItem, plan};
use crate::value::{Array, Dtype, Shape, Value, reserve, size_of};

// -- matmul ---------------------------------------------------------------------------

/// The sizes and layouts of one matrix product `c = op(a) @ op(b)`: `op(a)` is m×k and
/// `op(b)` k×n, each stored row-major and contiguous, and transposed when its flag is
/// set (`a` stored k×m, `b` stored n×k); `c` is m×n.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Product {
    /// Rows of `op(a)` and of `c`.
    pub m: usize,
    /// Columns of `op(a)`, rows of `op(b)`.
    pub k: usize,
    /// Columns of `op(b)` and of `c`.
    pub n: usize,
    /// Whether `a` is stored transposed.
    pub ta: bool,
    /// Whether `b` is stored transposed.
    pub tb: bool,
}

/// A matrix product an embedding can supply (the BLAS NumPy links, say): `c = op(a) @
/// op(b)` as [`Product`] describes. Returns whether it ran, having then written every
/// element of `c`; if not, matrixmultiply's runs instead. `c` starts uninitialised (a
/// BLAS with `beta = 0` never reads it), so that no pass zeroes it first.
///
/// ```
/// use std::mem::MaybeUninit;
///
/// use tracker_core::{Gemm, Product};
///
/// /// The textbook triple loop, for small products.
/// fn naive(p: &Product, a: &[f64], b: &[f64], c: &mut [MaybeUninit<f64>]) -> bool {
///     let at = |i: usize, l: usize| if p.ta { a[l * p.m + i] } else { a[i * p.k + l] };
///     let bt = |l: usize, j: usize| if p.tb { b[j * p.k + l] } else { b[l * p.n + j] };
///     for i in 0..p.m {
///         for j in 0..p.n {
///             c[i * p.n + j].write((0..p.k).map(|l| at(i, l) * bt(l, j)).sum());
///         }
///     }
///     true
/// }
///
/// let gemm: Gemm<f64> = naive;
/// let mut c = [MaybeUninit::uninit(); 1];
/// let p = Product { m: 1, k: 2, n: 1, ta: false, tb: true };
/// assert!(gemm(&p, &[1.0, 2.0], &[3.0, 4.0], &mut c));
/// // SAFETY: `naive` returned true, having written every element.
/// assert_eq!(unsafe { c[0].assume_init() }, 11.0);
/// ```
pub type Gemm<T> = fn(product: &Product, a: &[T], b: &[T], c: &mut [MaybeUninit<T>]) -> bool;

static GEMM: OnceLock<(Gemm<f64>, Gemm<f32>)> = OnceLock::new();

/// Installs the matrix products `matmul` uses from now on (once per process; later calls
/// are ignored). Without them, matrixmultiply's run.
///
/// ```rust,standalone_crate
/// use std::mem::MaybeUninit;
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// use tracker_core::{Product, Tracked, Value, set_gemm};
///
/// static CALLS: AtomicUsize = AtomicUsize::new(0);
///
/// /// Counts the products, leaving each to matrixmultiply (returns false).
/// fn counting<T>(_p: &Product, _a: &[T], _b: &[T], _c: &mut [MaybeUninit<T>]) -> bool {
///     CALLS.fetch_add(1, Ordering::SeqCst);
///     false
/// }
///
/// # fn main() -> tracker_core::Result<()> {
/// set_gemm(counting::<f64>, counting::<f32>);
/// let a = Tracked::param(Value::from_vec(&[2, 2], vec![1.0, 2.0, 3.0, 4.0])?);
/// let y = a.matmul(&a)?;
/// assert_eq!(y.value().to_f64_vec(), vec![7.0, 10.0, 15.0, 22.0]);
/// assert_eq!(CALLS.load(Ordering::SeqCst), 1);
/// # Ok(())
/// # }
/// ```
pub fn set_gemm(f64: Gemm<f64>, f32: Gemm<f32>) {
    let _ = GEMM.set((f64, f32));
}

/// How `a @ b` pairs up its operands' matrices.
struct MatmulPlan {
    m: usize,
    k: usize,
    n: usize,
    /// `a` and `b` with 1-D operands promoted to matrices.
    a2: Shape,
    b2: Shape,
    /// The broadcast batch shape, and the result's shape (promoted axes removed).
    batch: Shape,
    out: Shape,
}

fn matmul_plan(a: &[usize], b: &[usize]) -> Result<MatmulPlan> {
    for (k, s) in [a, b].iter().enumerate() {
        if s.is_empty() {
            return Err(shape_error(
                "matmul",
                format!(
                    "operand {k} is 0-dimensional (shapes {a:?} and {b:?}); matmul needs at \
                     least 1-D operands: use * to multiply by a scalar"
                ),
            ));
        }
    }
    let (a2, b2): (Shape, Shape) = (
        if a.len() == 1 {
            Shape::from_slice(&[1, a.first().copied().unwrap_or(0)])
        } else {
            a.into()
        },
        if b.len() == 1 {
            Shape::from_slice(&[b.first().copied().unwrap_or(0), 1])
        } else {
            b.into()
        },
    );
    let (abatch, [m, k]) = split_matrix(&a2);
    let (bbatch, [k2, n]) = split_matrix(&b2);
    if k != k2 {
        return Err(shape_error(
            "matmul",
            format!(
                "shapes {a:?} and {b:?} are not aligned: {k} (dim {}) != {k2} (dim {})",
                a.len() - 1,
                b.len().saturating_sub(2)
            ),
        ));
    }
    let batch = broadcast_shapes("matmul", abatch, bbatch)?;
    let mut out = batch.clone();
    if a.len() > 1 {
        out.push(m);
    }
    if b.len() > 1 {
        out.push(n);
    }
    Ok(MatmulPlan {
        m,
        k,
        n,
        a2,
        b2,
        batch,
        out,
    })
}

/// The batch dimensions and the matrix dimensions of a shape of at least 2 axes.
fn split_matrix(shape: &[usize]) -> (&[usize], [usize; 2]) {
    let at = shape.len().saturating_sub(2);
    let (batch, matrix) = shape.split_at(at);
    match matrix {
        &[r, c] => (batch, [r, c]),
        _ => (batch, [0, 0]),
    }
}

/// For each matrix of the broadcast `batch`, the index of the matrix of each operand.
fn batch_pairs(a: &[usize], b: &[usize], batch: &[usize]) -> Vec<(usize, usize)> {
    BroadcastOffsets::new(a, batch)
        .zip(BroadcastOffsets::new(b, batch))
        .collect()
}

/// `shape` with its last two axes swapped when `transposed`.
fn swapped(shape: &[usize], transposed: bool) -> Shape {
    let mut out: Shape = shape.into();
    let n = out.len();
    if transposed && n >= 2 {
        out.swap(n - 1, n - 2);
    }
    out
}

fn matmul_typed<T: Float + ndarray::LinalgScalar>(
    a: &Array<T>,
    b: &Array<T>,
    (ta, tb): (bool, bool),
    gemm: Option<Gemm<T>>,
) -> Result<Array<T>> {
    let p = matmul_plan(&swapped(a.shape(), ta), &swapped(b.shape(), tb))?;
    let (m, k, n) = (p.m, p.k, p.n);
    let count = size_of(&p.batch, "matmul")?;
    let len = size_of(&p.out, "matmul")?;
    if m * n == 0 {
        return Array::from_vec(&p.out, Vec::new());
    }
    let (abatch, _) = split_matrix(&p.a2);
    let (bbatch, _) = split_matrix(&p.b2);
    let pairs = batch_pairs(abatch, bbatch, &p.batch);
    let product = Product { m, k, n, ta, tb };
    if let Some(out) = rank_one(&p, &product, a, b, &pairs)? {
        return Ok(out);
    }
    let mut out: Vec<T> = reserve(len, "matmul")?;
    fn view<T>(s: &[T], d: [usize; 2]) -> Result<ArrayView2<'_, T>> {
        ArrayView2::from_shape(d, s).map_err(|e| shape_error("matmul", e.to_string()))
    }
    for ((ia, ib), c) in pairs
        .into_iter()
        .zip(out.spare_capacity_mut().chunks_exact_mut(m * n))
        .take(count)
    {
        let a = matrix(a, ia, m * k)?;
        let b = matrix(b, ib, k * n)?;
        if gemm.is_some_and(|g| k > 0 && g(&product, a, b, c)) {
            continue;
        }
        let av = if ta {
            view(a, [k, m])?.reversed_axes()
        } else {
            view(a, [m, k])?
        };
        let bv = if tb {
            view(b, [n, k])?.reversed_axes()
        } else {
            view(b, [k, n])?
        };
        c.fill(MaybeUninit::new(<T as Float>::zero()));
        // SAFETY: every element was just initialised.
        let c = unsafe { &mut *(std::ptr::from_mut(c) as *mut [T]) };
        let mut cv = ArrayViewMut2::from_shape([m, n], c)
            .map_err(|e| shape_error("matmul", e.to_string()))?;
        // Shapes are checked above, so the product cannot panic.
        general_mat_mul(<T as Float>::one(), &av, &bv, <T as Float>::zero(), &mut cv);
    }
    // SAFETY: the `count` chunks of m·n cover the `len` elements, and each was written
    // in full by the installed GEMM (when it returned true) or the fallback.
    unsafe { out.set_len(len) };
    Array::from_vec(&p.out, out)
}

/// Matrix `index` of a batch of matrices of `size` elements each.
fn matrix<T: Float>(batch: &Array<T>, index: usize, size: usize) -> Result<&[T]> {
    let start = index * size;
    batch
        .as_slice()
        .get(start..start + size)
        .ok_or_else(|| shape_error("matmul", "internal: a batch out of range"))
}

/// `op(a) @ op(b)` when `a` or `b` holds one value throughout (the broadcast seed of a
/// `sum`, on its way back through a product): each entry is then the sum of a row of
/// `op(a)` or of a column of `op(b)`, times that value, in O(mk + kn) instead of
/// O(mkn). The result is those sums broadcast, kept symbolic (see [`Array::repeated`]);
/// `None` when the shortcut does not apply.
fn rank_one<T: Float>(
    p: &MatmulPlan,
    &Product { m, k, n, ta, tb }: &Product,
    a: &Array<T>,
    b: &Array<T>,
    pairs: &[(usize, usize)],
) -> Result<Option<Array<T>>> {
    if m.saturating_mul(k).saturating_mul(n) < 1 << 15 {
        return Ok(None);
    }
    let mut to = p.batch.clone();
    to.extend([m, n]);
    let mut from = p.batch.clone();
    let mut sums = Vec::new();
    if let Some(&v) = b.uniform() {
        // Entry (i, j) is the sum of row i of op(a), times v.
        for &(ia, _) in pairs {
            let a = matrix(a, ia, m * k)?;
            sums.extend(if ta {
                line_sums(a, m, v)
            } else {
                row_sums(a, k, v)
            });
        }
        from.extend([m, 1]);
    } else if let Some(&v) = a.uniform() {
        // Entry (i, j) is the sum of column j of op(b), times v.
        for &(_, ib) in pairs {
            let b = matrix(b, ib, k * n)?;
            sums.extend(if tb {
                row_sums(b, k, v)
            } else {
                line_sums(b, n, v)
            });
        }
        from.extend([1, n]);
    } else {
        return Ok(None);
    }
    Array::repeated(sums, &from, &to, "matmul")?
        .reshaped(&p.out)
        .map(Some)
}

/// Each row of the row-major `s` (rows of `width`) summed, times `v`.
fn row_sums<T: Float>(s: &[T], width: usize, v: T) -> Vec<T> {
    s.chunks_exact(width)
        .map(|row| super::reduce::sum_run(row) * v)
        .collect()
}

/// Each column of the row-major `s` (rows of `width`) summed, its entries times `v` first.
fn line_sums<T: Float>(s: &[T], width: usize, v: T) -> Vec<T> {
    let mut sums = vec![T::zero(); width];
    for row in s.chunks_exact(width) {
        for (o, &x) in sums.iter_mut().zip(row) {
            *o = *o + x * v;
        }
    }
    sums
}

/// `a @ b` with NumPy's `matmul` semantics: 1-D operands promoted (and the axis removed
/// again), batch dimensions broadcast.
pub fn matmul(a: &Value, b: &Value) -> Result<Value> {
    matmul_t(a, b, false, false)
}

/// `op(a) @ op(b)`, `op` transposing the last two axes of an operand whose flag is set,
/// without copying it: the products matmul's pullbacks need.
pub fn matmul_t(a: &Value, b: &Value, ta: bool, tb: bool) -> Result<Value> {
    if (ta && a.shape().len() < 2) || (tb && b.shape().len() < 2) {
        return Err(shape_error(
            "matmul",
            "a transposed operand needs 2 or more dimensions",
        ));
    }
    let gemm = GEMM.get().copied();
    let t = (ta, tb);
    match (a, b) {
        (Value::F32(a), Value::F32(b)) => Ok(Value::F32(matmul_typed(a, b, t, gemm.map(|g| g.1))?)),
        (Value::F64(a), Value::F64(b)) => Ok(Value::F64(matmul_typed(a, b, t, gemm.map(|g| g.0))?)),
        _ => Err(crate::op::mixed_dtypes("matmul")),
    }
}

/// `x @ w`. Pullback: `dx = dy @ wᵀ`, `dw = xᵀ @ dy` (1-D operands promoted to 2-D),
/// each summed back over the batch dimensions it was broadcast along.
pub fn matmul_pullback<B: Backend>(
    b: &mut B,
    x: &B::A,
    w: &B::A,
    dy: &B::A,
    need_x: bool,
    need_w: bool,
) -> Result<Contributions<B::A>> {
    let (xs, ws) = (b.shape(x), b.shape(w));
    let p = matmul_plan(&xs, &ws)?;
    let mut full = p.batch.clone();
    full.extend([p.m, p.n]);
    let dy2 = b.reshape(dy, &full)?;
    each_input(b, &[(x, need_x), (w, need_w)], |b, k| {
        let g = if k == 0 {
            let w2 = b.reshape(w, &p.b2)?;
            let g = mm_t(b, &dy2, &w2, false, true)?;
            b.sum_to(&g, &p.a2)?
        } else {
            let x2 = b.reshape(x, &p.a2)?;
            let g = mm_t(b, &x2, &dy2, true, false)?;
            b.sum_to(&g, &p.b2)?
        };
        b.reshape(&g, if k == 0 { &xs } else { &ws })
    })
}

/// `c = op(a) @ op(b)` (see [`matmul_t`]). Pullback, by the same products:
/// `da = dc @ op(b)ᵀ` (transposed back when `a` is), `db = op(a)ᵀ @ dc` (likewise),
/// each summed back over the batch dimensions it was broadcast along.
pub fn matmul_t_pullback<B: Backend>(
    b: &mut B,
    (x, need_x): (&B::A, bool),
    (w, need_w): (&B::A, bool),
    dy: &B::A,
    ta: bool,
    tb: bool,
) -> Result<Contributions<B::A>> {
    each_input(b, &[(x, need_x), (w, need_w)], |b, k| match (k, ta, tb) {
        (0, false, _) => mm_t(b, dy, w, false, !tb),
        (0, true, _) => mm_t(b, w, dy, tb, true),
        (_, _, false) => mm_t(b, x, dy, !ta, false),
        (_, _, true) => mm_t(b, dy, x, true, ta),
    })
}

// -- backend helpers ----------------------------------------------------------------------

fn mm_t<B: Backend>(b: &mut B, x: &B::A, y: &B::A, ta: bool, tb: bool) -> Result<B::A> {
    b.apply(Op::MatmulT { ta, tb }, &[x, y])
}

fn mm<B: Backend>(b: &mut B, x: &B::A, y: &B::A) -> Result<B::A> {
    b.apply(Op::Matmul, &[x, y])
}

fn sub<B: Backend>(b: &mut B, x: &B::A, y: &B::A) -> Result<B::A> {
    b.apply(Op::Binary(Binary::Sub), &[x, y])
}

fn div<B: Backend>(b: &mut B, x: &B::A, y: &B::A) -> Result<B::A> {
    b.apply(Op::Binary(Binary::Div), &[x, y])
}

fn scale<B: Backend>(b: &mut B, x: &B::A, by: f64) -> Result<B::A> {
    let s = b.scalar_like(x, by)?;
    b.mul(x, &s)
}

/// The matrix transpose of each matrix of a batch (the last two axes swapped).
fn swap_last<B: Backend>(b: &mut B, x: &B::A) -> Result<B::A> {
    let nd = b.shape(x).len();
    let mut perm: Shape = (0..nd).collect();
    if nd >= 2 {
        perm.swap(nd - 1, nd - 2);
    }
    b.transpose(x, &perm)
}

/// `x` with a new axis of length 1 inserted `from_end` places before the end.
fn unsqueeze<B: Backend>(b: &mut B, x: &B::A, from_end: usize) -> Result<B::A> {
    let mut shape = b.shape(x);
    let at = shape.len().saturating_sub(from_end);
    shape.insert(at, 1);
    b.reshape(x, &shape)
}

/// A constant `rows × cols` matrix of `dtype` with entries `f(i, j)`.
fn const_matrix<B: Backend>(
    b: &mut B,
    dtype: Dtype,
    rows: usize,
    cols: usize,
    f: impl Fn(usize, usize) -> f64,
) -> Result<B::A> {
    let values = (0..rows)
        .flat_map(|i| (0..cols).map(move |j| (i, j)))
        .map(|(i, j)| f(i, j))
        .collect();
    let v = Value::from_vec(&[rows, cols], values)?.cast(dtype)?;
    b.constant(v)
}

/// `x[..., rows, :]` for a range of rows of each matrix.
fn rows_of<B: Backend>(b: &mut B, x: &B::A, start: usize, stop: usize) -> Result<B::A> {
    let shape = b.shape(x);
    let items = [
        IndexItem::Ellipsis,
        IndexItem::Slice {
            start: Some(start as isize),
            stop: Some(stop as isize),
            step: None,
        },
        IndexItem::Slice {
            start: None,
            stop: None,
            step: None,
        },
    ];
    b.apply(Op::Gather(Arc::new(plan(&shape, &items)?)), &[x])
}

/// `x[..., row, :]`.
fn row_of<B: Backend>(b: &mut B, x: &B::A, row: usize) -> Result<B::A> {
    let shape = b.shape(x);
    let items = [
        IndexItem::Ellipsis,
        IndexItem::Int(row as isize),
        IndexItem::Slice {
            start: None,
            stop: None,
            step: None,
        },
    ];
    b.apply(Op::Gather(Arc::new(plan(&shape, &items)?)), &[x])
}

/// `diag_embed(v)`: each vector of `v` (`..., n`) as a diagonal matrix.
fn diag_embed<B: Backend>(b: &mut B, v: &B::A, n: usize) -> Result<B::A> {
    let eye = const_matrix(b, b.dtype(v), n, n, |i, j| f64::from(u8::from(i == j)))?;
    let row = unsqueeze(b, v, 1)?;
    b.mul(&row, &eye)
}

/// `1/(v[j] - v[i])` as a matrix, with 0 where the difference is exactly zero (the
/// diagonal, and ties): the zero mask is read from primal data.
fn reciprocal_gaps<B: Backend>(b: &mut B, v: &B::A) -> Result<B::A> {
    let row = unsqueeze(b, v, 1)?; // (..., 1, n): v[j]
    let col = unsqueeze(b, v, 0)?; // (..., n, 1): v[i]
    let gaps = sub(b, &row, &col)?;
    safe_reciprocal(b, &gaps)
}

/// 1 where `x` is exactly zero (or, with `invert`, where it is not), else 0.
fn zero_mask(x: &Value, invert: bool) -> Result<Value> {
    fn typed<T: Float>(a: &Array<T>, invert: bool) -> Result<Array<T>> {
        a.map(|v| {
            if (v == T::zero()) != invert {
                T::one()
            } else {
                T::zero()
            }
        })
    }
    Ok(map_value!(x, a => typed(a, invert)?))
}

/// `1/v` with 0 where `v` is exactly zero (mask from primal data).
fn safe_reciprocal<B: Backend>(b: &mut B, v: &B::A) -> Result<B::A> {
    let value = b.value(v)?;
    let zeros = b.constant(zero_mask(&value, false)?)?;
    let others = b.constant(zero_mask(&value, true)?)?;
    let safe = b.add(v, &zeros)?;
    div(b, &others, &safe)
}

/// The lower (`lower`) or upper triangle of each matrix, the diagonal scaled by `diagonal`.
fn triangle<B: Backend>(b: &mut B, x: &B::A, lower: bool, diagonal: f64) -> Result<B::A> {
    let shape = b.shape(x);
    let (_, [r, c]) = split_matrix(&shape);
    let mask = const_matrix(b, b.dtype(x), r, c, |i, j| {
        if i == j {
            diagonal
        } else if (i > j) == lower {
            1.0
        } else {
            0.0
        }
    })?;
    b.mul(x, &mask)
}

// -- the forward kernels: one matrix at a time, in f64 ---------------------------------------

fn linalg_error(op: &'static str, failure: Failure, index: Option<usize>) -> Error {
    let what = match failure {
        Failure::Interrupted(error) => return error,
        Failure::Singular => "Singular matrix",
        Failure::NotPositiveDefinite => "Matrix is not positive definite",
        Failure::NoConvergence => "the iteration did not converge (is the input finite?)",
    };
    let message = match index {
        Some(k) => format!("{what} (matrix {k} of the batch)"),
        None => what.to_string(),
    };
    Error::LinAlg { op, message }
}

/// Polls for interrupts (Ctrl-C) before the `k`th matrix of a batch: before every large
/// matrix, and every 64 small ones.
fn poll(k: usize, elements: usize) -> Result<()> {
    if elements >= 4096 || k % 64 == 63 {
        crate::tape::check_interrupt()?;
    }
    Ok(())
}

/// Checks that `shape` holds matrices (and square ones when `square`), as NumPy's linalg.
fn check_matrices(op: &'static str, shape: &[usize], square: bool) -> Result<[usize; 2]> {
    if shape.len() < 2 {
        return Err(Error::LinAlg {
            op,
            message: format!(
                "{}-dimensional array given. Array must be at least two-dimensional",
                shape.len()
            ),
        });
    }
    let (_, [r, c]) = split_matrix(shape);
    if square && r != c {
        return Err(Error::LinAlg {
            op,
            message: format!("Last 2 dimensions of the array must be square (got shape {shape:?})"),
        });
    }
    Ok([r, c])
}

/// The values of `x` as f64 (an allocation that fails as `Error::Memory`).
fn f64_values(x: &Value, op: &'static str) -> Result<Vec<f64>> {
    with_value!(x, a => crate::value::try_collect(a.as_slice().iter().map(|v| v.to_f64()), op))
}

/// The matrices of `x` as f64 `Mat`s (their values rounded to f64 from either dtype).
fn matrices(x: &Value, op: &'static str) -> Result<Vec<Mat>> {
    let (batch, [r, c]) = split_matrix(x.shape());
    let count = size_of(batch, op)?;
    let values = f64_values(x, op)?;
    Ok((0..count)
        .map(|k| match values.get(k * r * c..(k + 1) * r * c) {
            Some(s) => Mat::from_slice(r, c, s),
            None => Mat::zeros(r, c),
        })
        .collect())
}

/// Builds a value of `dtype` and `shape` from f64 values.
fn value_of(shape: &[usize], values: Vec<f64>, dtype: Dtype) -> Result<Value> {
    Value::from_vec(shape, values)?.cast(dtype)
}

/// Runs `f` on each matrix of `x`, concatenating the results into `tail`-shaped pieces.
fn per_matrix(
    op: &'static str,
    x: &Value,
    square: bool,
    tail: &[usize],
    f: impl Fn(&Mat) -> std::result::Result<Vec<f64>, Failure>,
) -> Result<Value> {
    check_matrices(op, x.shape(), square)?;
    let (batch, [r, c]) = split_matrix(x.shape());
    let count = size_of(batch, op)?;
    let piece = size_of(tail, op)?;
    let mut out = reserve(count.saturating_mul(piece), op)?;
    let values = f64_values(x, op)?;
    for k in 0..count {
        poll(k, r * c)?;
        let m = match values.get(k * r * c..(k + 1) * r * c) {
            Some(s) => Mat::from_slice(r, c, s),
            None => Mat::zeros(r, c),
        };
        let result = f(&m).map_err(|e| linalg_error(op, e, (count > 1).then_some(k)))?;
        out.extend(result);
    }
    let mut shape: Shape = batch.into();
    shape.extend(tail.iter().copied());
    value_of(&shape, out, x.dtype())
}

pub fn inv(x: &Value) -> Result<Value> {
    let [n, _] = check_matrices("inv", x.shape(), true)?;
    per_matrix("inv", x, true, &[n, n], |a| {
        Ok(decomp::lu(a).solve(&Mat::identity(n))?.data)
    })
}

pub fn det(x: &Value) -> Result<Value> {
    per_matrix("det", x, true, &[], |a| Ok(vec![decomp::lu(a).det()]))
}

/// `log|det(x)|` (the sign, which has no gradient, is taken from `det` by the caller).
pub fn slogdet(x: &Value) -> Result<Value> {
    per_matrix("slogdet", x, true, &[], |a| {
        Ok(vec![decomp::lu(a).slogdet().1])
    })
}

pub fn cholesky(x: &Value) -> Result<Value> {
    let [n, _] = check_matrices("cholesky", x.shape(), true)?;
    per_matrix("cholesky", x, true, &[n, n], |a| {
        Ok(decomp::cholesky(a)?.data)
    })
}

pub fn eigh(x: &Value) -> Result<Value> {
    let [n, _] = check_matrices("eigh", x.shape(), true)?;
    per_matrix("eigh", x, true, &[n + 1, n], |a| {
        let (w, v) = decomp::eigh(a)?;
        let mut out = v.data;
        out.extend(w);
        Ok(out)
    })
}

pub fn svd(x: &Value) -> Result<Value> {
    let [m, n] = check_matrices("svd", x.shape(), false)?;
    let k = m.min(n);
    per_matrix("svd", x, false, &[m + 1 + n, k], |a| {
        let (u, s, v) = decomp::svd(a)?;
        let mut out = u.data;
        out.extend(s);
        out.extend(v.data);
        Ok(out)
    })
}

pub fn qr(x: &Value) -> Result<Value> {
    let [m, n] = check_matrices("qr", x.shape(), false)?;
    if m < n {
        return Err(shape_error(
            "qr",
            format!(
                "the core op takes matrices with at least as many rows as columns, got \
                 {m} × {n}; np.linalg.qr splits a wide matrix into a square one and the rest"
            ),
        ));
    }
    per_matrix("qr", x, false, &[m + n, n], |a| {
        let (q, r) = decomp::qr(a);
        let mut out = q.data;
        out.extend(r.data);
        Ok(out)
    })
}

/// A solve of `a x = b` for each pair of broadcast matrices.
fn solve_with(
    op: &'static str,
    a: &Value,
    b: &Value,
    f: impl Fn(&Mat, &Mat) -> std::result::Result<Mat, Failure>,
) -> Result<Value> {
    if a.dtype() != b.dtype() {
        return Err(crate::op::mixed_dtypes(op));
    }
    let [n, _] = check_matrices(op, a.shape(), true)?;
    if b.shape().len() < 2 {
        return Err(shape_error(
            op,
            format!(
                "b of shape {:?} must have at least 2 dimensions (..., {n}, k); np.linalg.solve \
                 takes a 1-D b as one column",
                b.shape()
            ),
        ));
    }
    let (bbatch, [rows, k]) = split_matrix(b.shape());
    if rows != n {
        return Err(shape_error(
            op,
            format!(
                "a of shape {:?} and b of shape {:?} do not fit: b must have {n} rows",
                a.shape(),
                b.shape()
            ),
        ));
    }
    let (abatch, _) = split_matrix(a.shape());
    let batch = broadcast_shapes(op, abatch, bbatch)?;
    let (ams, bms) = (matrices(a, op)?, matrices(b, op)?);
    let count = size_of(&batch, op)?;
    let mut out = reserve(count.saturating_mul(n * k), op)?;
    for (index, (ia, ib)) in batch_pairs(abatch, bbatch, &batch).into_iter().enumerate() {
        poll(index, n * n)?;
        let (Some(am), Some(bm)) = (ams.get(ia), bms.get(ib)) else {
            return Err(shape_error(op, "internal: a batch out of range"));
        };
        let x = f(am, bm).map_err(|e| linalg_error(op, e, (count > 1).then_some(index)))?;
        out.extend(x.data);
    }
    let mut shape = batch;
    shape.extend([n, k]);
    value_of(&shape, out, a.dtype())
}

/// `a⁻¹ b` for square `a` (`..., n, n`) and `b` (`..., n, k`), batches broadcast.
pub fn solve(a: &Value, b: &Value) -> Result<Value> {
    solve_with("solve", a, b, |a, b| decomp::lu(a).solve(b))
}

/// `a⁻¹ b` for triangular `a`, reading only its lower (or upper) triangle.
pub fn solve_triangular(a: &Value, b: &Value, lower: bool) -> Result<Value> {
    solve_with("solve_triangular", a, b, |a, b| {
        decomp::solve_triangular(a, b, lower)
    })
}

// -- pullbacks ----------------------------------------------------------------------------

/// `Y = A⁻¹`. Pullback: `dA = -Yᵀ dY Yᵀ`.
pub fn inv_pullback<B: Backend>(b: &mut B, y: &B::A, dy: &B::A) -> Result<B::A> {
    let yt = swap_last(b, y)?;
    let g = mm(b, &yt, dy)?;
    let g = mm(b, &g, &yt)?;
    scale(b, &g, -1.0)
}

/// `A⁻ᵀ` through a recorded `inv`, for `det` and `slogdet`.
fn inverse_transpose<B: Backend>(b: &mut B, op: &'static str, x: &B::A) -> Result<B::A> {
    let inverse = b.apply(Op::Inv, &[x]).map_err(|e| match e {
        Error::LinAlg { .. } => Error::LinAlg {
            op,
            message: format!(
                "the gradient at a singular matrix is not implemented (it needs A⁻¹): {e}"
            ),
        },
        other => other,
    })?;
    swap_last(b, &inverse)
}

/// `y = det(A)`. Pullback: `dA = dy · cof(A)`, the cofactor matrix: `y · A⁻ᵀ` where
/// every matrix of the batch is well conditioned, else (as PyTorch at singular matrices)
/// through the SVD `A = U diag(s) Vᵀ`: `cof(A) = det(U) det(V) U diag(∏_{j≠i} s_j) Vᵀ`,
/// which stays accurate, to second order, at and near singular matrices.
pub fn det_pullback<B: Backend>(b: &mut B, x: &B::A, y: &B::A, dy: &B::A) -> Result<B::A> {
    let cofactors = if well_conditioned(&b.value(x)?, &b.value(y)?)? {
        let it = inverse_transpose(b, "det", x)?;
        let y2 = unsqueeze(b, y, 0)?;
        let y2 = unsqueeze(b, &y2, 0)?;
        b.mul(&y2, &it)?
    } else {
        cofactors_by_svd(b, x)?
    };
    let g = unsqueeze(b, dy, 0)?;
    let g = unsqueeze(b, &g, 0)?;
    b.mul(&g, &cofactors)
}

/// Whether `|det|` of every matrix is above `√ε` times Hadamard's bound (the product
/// of its column norms): a cheap test that `det · A⁻ᵀ` is accurate. A branch on primal
/// data, as a mask is.
fn well_conditioned(x: &Value, det: &Value) -> Result<bool> {
    Ok(matrices(x, "det")?
        .iter()
        .zip(det.to_f64_vec())
        .all(|(a, d)| {
            let bound: f64 = (0..a.cols)
                .map(|j| {
                    (0..a.rows)
                        .map(|i| a.at(i, j) * a.at(i, j))
                        .sum::<f64>()
                        .sqrt()
                })
                .product();
            d.abs() > f64::EPSILON.sqrt() * bound
        }))
}

/// `det(U) det(V) U diag(∏_{j≠i} s_j) Vᵀ` from a recorded SVD of `x`; the signs
/// `det(U) det(V)` (±1, piecewise constant) are read from primal data.
fn cofactors_by_svd<B: Backend>(b: &mut B, x: &B::A) -> Result<B::A> {
    let shape = b.shape(x);
    let (batch, [n, _]) = split_matrix(&shape);
    let batch: Shape = batch.into();
    let packed = b.apply(Op::Svd, &[x])?;
    let u = rows_of(b, &packed, 0, n)?;
    let s = row_of(b, &packed, n)?;
    let v = rows_of(b, &packed, n + 1, 2 * n + 1)?;
    let dtype = b.dtype(x);
    let off = const_matrix(b, dtype, n, n, |i, j| f64::from(u8::from(i != j)))?;
    let eye = const_matrix(b, dtype, n, n, |i, j| f64::from(u8::from(i == j)))?;
    // others[i][j] = s[j] off the diagonal, 1 on it; its row products are ∏_{j≠i} s_j.
    let s_row = unsqueeze(b, &s, 1)?;
    let others = b.mul(&s_row, &off)?;
    let others = b.add(&others, &eye)?;
    let last = b.shape(&others).len() - 1;
    let products = b.apply(
        Op::Reduce {
            kind: crate::ops::reduce::Reduce::Prod,
            axes: [last].into_iter().collect(),
            keepdims: false,
        },
        &[&others],
    )?;
    let (uv, vv) = (b.value(&u)?, b.value(&v)?);
    let signs: Vec<f64> = matrices(&uv, "det")?
        .iter()
        .zip(matrices(&vv, "det")?)
        .map(|(um, vm)| decomp::lu(um).det().signum() * decomp::lu(&vm).det().signum())
        .collect();
    let signs = b.constant(value_of(&batch, signs, dtype)?)?;
    let signs = unsqueeze(b, &signs, 0)?;
    let scaled = b.mul(&products, &signs)?;
    let scaled = unsqueeze(b, &scaled, 1)?;
    let us = b.mul(&u, &scaled)?;
    let vt = swap_last(b, &v)?;
    mm(b, &us, &vt)
}

/// `y = log|det(A)|`. Pullback: `dA = dy · A⁻ᵀ`.
pub fn slogdet_pullback<B: Backend>(b: &mut B, x: &B::A, dy: &B::A) -> Result<B::A> {
    let it = inverse_transpose(b, "slogdet", x)?;
    let g = unsqueeze(b, dy, 0)?;
    let g = unsqueeze(b, &g, 0)?;
    b.mul(&g, &it)
}

/// `X = A⁻¹ B`. Pullback: `G = A⁻ᵀ dX`; `dB = G`, `dA = -G Xᵀ`.
#[allow(clippy::too_many_arguments)]
pub fn solve_pullback<B: Backend>(
    b: &mut B,
    a: &B::A,
    rhs: &B::A,
    x: &B::A,
    dy: &B::A,
    need_a: bool,
    need_b: bool,
    triangular: Option<bool>,
) -> Result<Contributions<B::A>> {
    let at = swap_last(b, a)?;
    let g = match triangular {
        None => b.apply(Op::Solve, &[&at, dy])?,
        Some(lower) => b.apply(Op::SolveTriangular { lower: !lower }, &[&at, dy])?,
    };
    each_input(b, &[(a, need_a), (rhs, need_b)], |b, k| {
        if k == 1 {
            return Ok(g.clone());
        }
        let xt = swap_last(b, x)?;
        let ga = mm(b, &g, &xt)?;
        let ga = scale(b, &ga, -1.0)?;
        match triangular {
            None => Ok(ga),
            Some(lower) => triangle(b, &ga, lower, 1.0),
        }
    })
}

/// `X B⁻¹ = (B⁻ᵀ Xᵀ)ᵀ` for triangular `B` (`lower` says which triangle of `B`).
fn right_solve_triangular<B: Backend>(
    b: &mut B,
    x: &B::A,
    tri: &B::A,
    lower: bool,
) -> Result<B::A> {
    let tt = swap_last(b, tri)?;
    let xt = swap_last(b, x)?;
    let s = b.apply(Op::SolveTriangular { lower: !lower }, &[&tt, &xt])?;
    swap_last(b, &s)
}

/// `A = L Lᵀ`. Pullback (PyTorch's): `P = tril(Lᵀ dL)`, `Φ = ½(P + tril(P, -1)ᵀ)` (a
/// symmetric matrix), `dA = L⁻ᵀ Φ L⁻¹`: the gradient for symmetric perturbations.
pub fn cholesky_pullback<B: Backend>(b: &mut B, l: &B::A, dy: &B::A) -> Result<B::A> {
    let lt = swap_last(b, l)?;
    let p = mm(b, &lt, dy)?;
    let strict = triangle(b, &p, true, 0.0)?;
    let strict_t = swap_last(b, &strict)?;
    let diagonal = {
        let shape = b.shape(&p);
        let (_, [n, _]) = split_matrix(&shape);
        let eye = const_matrix(b, b.dtype(&p), n, n, |i, j| f64::from(u8::from(i == j)))?;
        b.mul(&p, &eye)?
    };
    let sym = b.add(&strict, &strict_t)?;
    let sym = b.add(&sym, &diagonal)?;
    let phi = scale(b, &sym, 0.5)?;
    let left = b.apply(Op::SolveTriangular { lower: false }, &[&lt, &phi])?;
    right_solve_triangular(b, &left, l, true)
}

/// The packed `(Q; R)` of `qr`. Pullback (Seeger et al.'s, for `m ≥ n`):
/// `M = R dRᵀ - dQᵀ Q`, `dA = (dQ + Q copyltu(M)) R⁻ᵀ`, where `copyltu` mirrors the lower
/// triangle of `M` onto the upper one.
pub fn qr_pullback<B: Backend>(b: &mut B, x: &B::A, y: &B::A, dy: &B::A) -> Result<B::A> {
    let shape = b.shape(x);
    let (_, [m, n]) = split_matrix(&shape);
    let q = rows_of(b, y, 0, m)?;
    let r = rows_of(b, y, m, m + n)?;
    let dq = rows_of(b, dy, 0, m)?;
    let dr = rows_of(b, dy, m, m + n)?;
    let drt = swap_last(b, &dr)?;
    let dqt = swap_last(b, &dq)?;
    let first = mm(b, &r, &drt)?;
    let second = mm(b, &dqt, &q)?;
    let big_m = sub(b, &first, &second)?;
    let strict = triangle(b, &big_m, true, 0.0)?;
    let strict_t = swap_last(b, &strict)?;
    let lower = triangle(b, &big_m, true, 1.0)?;
    let copied = b.add(&lower, &strict_t)?;
    let qc = mm(b, &q, &copied)?;
    let inner = b.add(&dq, &qc)?;
    right_solve_transposed_upper(b, &inner, &r).map_err(|e| match e {
        Error::LinAlg { .. } => Error::LinAlg {
            op: "qr",
            message: "the gradient needs R⁻¹, and R is singular: the QR factorisation of a \
                      rank-deficient matrix is not differentiable"
                .into(),
        },
        other => other,
    })
}

/// `X R⁻ᵀ = (R⁻¹ Xᵀ)ᵀ` for upper-triangular `R`.
fn right_solve_transposed_upper<B: Backend>(b: &mut B, x: &B::A, r: &B::A) -> Result<B::A> {
    let xt = swap_last(b, x)?;
    let s = b.apply(Op::SolveTriangular { lower: false }, &[r, &xt])?;
    swap_last(b, &s)
}

/// The packed `(V; w)` of `eigh`. Pullback (PyTorch's):
/// `dA = V (diag(dw) + F ∘ ½(VᵀdV - dVᵀV)) Vᵀ` with `F[i][j] = 1/(w[j] - w[i])`.
pub fn eigh_pullback<B: Backend>(b: &mut B, x: &B::A, y: &B::A, dy: &B::A) -> Result<B::A> {
    let shape = b.shape(x);
    let (_, [n, _]) = split_matrix(&shape);
    let v = rows_of(b, y, 0, n)?;
    let w = row_of(b, y, n)?;
    let dv = rows_of(b, dy, 0, n)?;
    let dw = row_of(b, dy, n)?;
    let vt = swap_last(b, &v)?;
    let vtdv = mm(b, &vt, &dv)?;
    let vtdv_t = swap_last(b, &vtdv)?;
    let skew = sub(b, &vtdv, &vtdv_t)?;
    let skew = scale(b, &skew, 0.5)?;
    let f = reciprocal_gaps(b, &w)?;
    let inner = b.mul(&skew, &f)?;
    let diag = diag_embed(b, &dw, n)?;
    let inner = b.add(&inner, &diag)?;
    let g = mm(b, &v, &inner)?;
    mm(b, &g, &vt)
}

/// The packed `(U; S; V)` of the thin `svd`. Pullback (Townsend's, as PyTorch):
/// `dA = U [(F ∘ (UᵀdU - dUᵀU)) S + S (F ∘ (VᵀdV - dVᵀV)) + diag(dS)] Vᵀ
///       + (I - UUᵀ) dU S⁻¹ Vᵀ + U S⁻¹ dVᵀ (I - VVᵀ)`, `F[i][j] = 1/(S[j]² - S[i]²)`;
/// the last two terms only where `U` (or `V`) is not square.
pub fn svd_pullback<B: Backend>(b: &mut B, x: &B::A, y: &B::A, dy: &B::A) -> Result<B::A> {
    let shape = b.shape(x);
    let (_, [m, n]) = split_matrix(&shape);
    let k = m.min(n);
    let u = rows_of(b, y, 0, m)?;
    let s = row_of(b, y, m)?;
    let v = rows_of(b, y, m + 1, m + 1 + n)?;
    let du = rows_of(b, dy, 0, m)?;
    let ds = row_of(b, dy, m)?;
    let dv = rows_of(b, dy, m + 1, m + 1 + n)?;
    let ut = swap_last(b, &u)?;
    let vt = swap_last(b, &v)?;
    let utdu = mm(b, &ut, &du)?;
    let vtdv = mm(b, &vt, &dv)?;
    let j = {
        let t = swap_last(b, &utdu)?;
        sub(b, &utdu, &t)?
    };
    let kk = {
        let t = swap_last(b, &vtdv)?;
        sub(b, &vtdv, &t)?
    };
    let s2 = b.mul(&s, &s)?;
    let f = reciprocal_gaps(b, &s2)?;
    let s_row = unsqueeze(b, &s, 1)?; // scales columns
    let s_col = unsqueeze(b, &s, 0)?; // scales rows
    let left = b.mul(&j, &f)?;
    let left = b.mul(&left, &s_row)?;
    let right = b.mul(&kk, &f)?;
    let right = b.mul(&s_col, &right)?;
    let inner = b.add(&left, &right)?;
    let diag = diag_embed(b, &ds, k)?;
    let inner = b.add(&inner, &diag)?;
    let g = mm(b, &u, &inner)?;
    let mut g = mm(b, &g, &vt)?;
    let inv_s = safe_reciprocal(b, &s)?;
    let inv_s_row = unsqueeze(b, &inv_s, 1)?;
    if m > k {
        let proj = mm(b, &u, &utdu)?;
        let t = sub(b, &du, &proj)?;
        let t = b.mul(&t, &inv_s_row)?;
        let t = mm(b, &t, &vt)?;
        g = b.add(&g, &t)?;
    }
    if n > k {
        let proj = mm(b, &v, &vtdv)?;
        let t = sub(b, &dv, &proj)?;
        let t = b.mul(&t, &inv_s_row)?;
        let tt = swap_last(b, &t)?;
        let t = mm(b, &u, &tt)?;
        g = b.add(&g, &t)?;
    }
    Ok(g)
}

/// The one-input decompositions' pullbacks, as a dense contribution.
pub fn unary_pullback<B: Backend>(
    b: &mut B,
    op: &Op,
    x: &B::A,
    y: &B::A,
    dy: &B::A,
) -> Result<Contributions<B::A>> {
    let g = match op {
        Op::Inv => inv_pullback(b, y, dy)?,
        Op::Det => det_pullback(b, x, y, dy)?,
        Op::Slogdet => slogdet_pullback(b, x, dy)?,
        Op::Cholesky => cholesky_pullback(b, y, dy)?,
        Op::Eigh => eigh_pullback(b, x, y, dy)?,
        Op::Svd => svd_pullback(b, x, y, dy)?,
        Op::Qr => qr_pullback(b, x, y, dy)?,
        other => {
            return Err(Error::Usage {
                message: format!("{}: not a linear-algebra op", other.name()),
            });
        }
    };
    let mut out = Contributions::new();
    out.push(Some(Contribution::Dense(g)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::Eager;

    fn value(shape: &[usize], v: &[f64]) -> Option<Value> {
        Value::from_vec(shape, v.to_vec()).ok()
    }

    /// A product with a sum's seed (an array of one value, kept symbolic) is the row or
    /// column sums of the other operand, broadcast: kept symbolic too, so neither the
    /// seed nor the product is written out, and equal to the product written in full.
    #[test]
    fn products_with_a_seed_stay_broadcasts() -> Result<()> {
        let (m, k, n) = (64, 48, 40);
        let x = Array::from_vec(&[m, k], (0..m * k).map(|v| (v % 7) as f64 - 3.0).collect())?;
        // A seed on the right, and one (transposed) on the left.
        let (right, left) = (
            Array::full(&[k, n], 0.5, "test")?,
            Array::full(&[m, n], 0.5, "test")?,
        );
        let kept = [
            matmul_typed(&x, &right, (false, false), None)?,
            matmul_typed(&left, &x, (true, false), None)?,
        ];
        for product in kept.iter().chain([&right, &left]) {
            assert!(product.broadcast_source().is_some());
            assert!(!product.written_out());
        }
        let dense = |s: &Array<f64>| Array::from_vec(s.shape(), s.as_slice().to_vec());
        let full = [
            matmul_typed(&x, &dense(&right)?, (false, false), None)?,
            matmul_typed(&dense(&left)?, &x, (true, false), None)?,
        ];
        for (kept, full) in kept.iter().zip(&full) {
            assert_eq!(kept.shape(), full.shape());
            assert_eq!(kept.as_slice(), full.as_slice());
        }
        Ok(())
    }

    #[test]
    fn products_by_hand() {
        let a = value(&[2, 2], &[1., 2., 3., 4.]);
        let v = value(&[2], &[1., 1.]);
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

    #[test]
    fn batched_products_broadcast() {
        // (2, 1, 2) @ (3, 2, 1) -> (2, 3, 1, 1)... with a (2,1,1,2) @ (3,2,1) layout.
        let a = value(&[2, 1, 1, 2], &[1., 2., 3., 4.]);
        let b = value(&[3, 2, 1], &[1., 0., 0., 1., 1., 1.]);
        let c = a.zip(b).and_then(|(a, b)| matmul(&a, &b).ok());
        assert_eq!(
            c.map(|c| (c.shape().to_vec(), c.to_f64_vec())),
            Some((vec![2, 3, 1, 1], vec![1., 2., 3., 3., 4., 7.]))
        );
    }

    #[test]
    fn inverse_and_its_gradient_by_hand() {
        let a = value(&[2, 2], &[2., 0., 0., 4.]);
        let y = a.as_ref().and_then(|a| inv(a).ok());
        assert_eq!(
            y.as_ref().map(|y| y.to_f64_vec()),
            Some(vec![0.5, 0., 0., 0.25])
        );
        // d(sum inv(A))/dA = -(Y^T 1 Y^T) for diagonal A: -[1/4, 1/8; 1/8, 1/16].
        let ones = value(&[2, 2], &[1., 1., 1., 1.]);
        let g = y
            .zip(ones)
            .and_then(|(y, ones)| inv_pullback(&mut Eager, &y, &ones).ok());
        assert_eq!(
            g.map(|g| g.to_f64_vec()),
            Some(vec![-0.25, -0.125, -0.125, -0.0625])
        );
        let singular = value(&[2, 2], &[1., 2., 2., 4.]).and_then(|a| inv(&a).err());
        assert!(matches!(singular, Some(Error::LinAlg { op: "inv", .. })));
    }
}
