//! The dense algorithms the linear-algebra ops compute with, on one row-major `f64`
//! matrix at a time: LU with partial pivoting, Cholesky, triangular solves, Householder
//! QR, tridiagonal QR iteration for symmetric eigenproblems and one-sided Jacobi for the
//! SVD.
//!
//! They are the textbook algorithms (Golub & Van Loan), written here rather than taken
//! from a crate: `faer` 0.24, the maintained pure-Rust candidate (default features off),
//! took the extension's clean release build from 66 s to 259 s on the project's 2-core
//! machine, far over the 90 s budget for a dependency. Float32 inputs are
//! factorised in f64 and rounded back, which is at least as accurate as LAPACK's `s*`
//! routines. Every access is checked (`get`), so nothing here can panic.

/// Why a factorisation failed; the op turns it into `Error::LinAlg` with its name.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// The interrupt hook (Ctrl-C), polled once per Jacobi sweep, raised this error.
    Interrupted(crate::error::Error),
    /// An exactly zero pivot (LAPACK's `info > 0` of `getrf`).
    Singular,
    /// A non-positive pivot in Cholesky.
    NotPositiveDefinite,
    /// An iteration that did not converge within its sweep limit.
    NoConvergence,
}

/// A row-major matrix with checked element access.
#[derive(Debug, Clone)]
pub struct Mat {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f64>,
}

impl Mat {
    pub fn zeros(rows: usize, cols: usize) -> Mat {
        Mat {
            rows,
            cols,
            data: vec![0.0; rows.saturating_mul(cols)],
        }
    }

    pub fn identity(n: usize) -> Mat {
        let mut m = Mat::zeros(n, n);
        for i in 0..n {
            m.set(i, i, 1.0);
        }
        m
    }

    pub fn from_slice(rows: usize, cols: usize, data: &[f64]) -> Mat {
        let mut m = Mat::zeros(rows, cols);
        for (d, &s) in m.data.iter_mut().zip(data) {
            *d = s;
        }
        m
    }

    #[inline]
    pub fn at(&self, i: usize, j: usize) -> f64 {
        self.data.get(i * self.cols + j).copied().unwrap_or(0.0)
    }

    #[inline]
    pub fn set(&mut self, i: usize, j: usize, v: f64) {
        if let Some(x) = self.data.get_mut(i * self.cols + j) {
            *x = v;
        }
    }

    pub fn transposed(&self) -> Mat {
        let mut t = Mat::zeros(self.cols, self.rows);
        for i in 0..self.rows {
            for j in 0..self.cols {
                t.set(j, i, self.at(i, j));
            }
        }
        t
    }

    fn swap_rows(&mut self, a: usize, b: usize) {
        if a == b {
            return;
        }
        for j in 0..self.cols {
            let (x, y) = (self.at(a, j), self.at(b, j));
            self.set(a, j, y);
            self.set(b, j, x);
        }
    }
}

/// An LU factorisation `P A = L U` (unit lower `L` and `U` packed in one matrix).
pub struct Lu {
    pub lu: Mat,
    /// `perm[i]`: the row of `A` that row `i` of `P A` came from.
    pub perm: Vec<usize>,
    /// The determinant of `P`: ±1.
    pub sign: f64,
    /// Whether a pivot was exactly zero.
    pub singular: bool,
}

/// LU with partial pivoting. A zero column leaves a zero pivot (the factorisation goes
/// on, as LAPACK's does, so the determinant is 0).
pub fn lu(a: &Mat) -> Lu {
    let n = a.rows;
    let mut lu = a.clone();
    let mut perm: Vec<usize> = (0..n).collect();
    let mut sign = 1.0;
    let mut singular = false;
    for k in 0..n {
        let mut p = k;
        let mut best = lu.at(k, k).abs();
        for i in k + 1..n {
            let v = lu.at(i, k).abs();
            if v > best {
                best = v;
                p = i;
            }
        }
        if p != k {
            lu.swap_rows(p, k);
            perm.swap(p, k);
            sign = -sign;
        }
        let pivot = lu.at(k, k);
        if pivot == 0.0 {
            singular = true;
            continue;
        }
        for i in k + 1..n {
            let factor = lu.at(i, k) / pivot;
            lu.set(i, k, factor);
            if factor != 0.0 {
                for j in k + 1..n {
                    let v = lu.at(i, j) - factor * lu.at(k, j);
                    lu.set(i, j, v);
                }
            }
        }
    }
    Lu {
        lu,
        perm,
        sign,
        singular,
    }
}

impl Lu {
    /// `A⁻¹ B` for `B` of `n` rows.
    pub fn solve(&self, b: &Mat) -> Result<Mat, Failure> {
        if self.singular {
            return Err(Failure::Singular);
        }
        let n = self.lu.rows;
        let mut x = Mat::zeros(n, b.cols);
        for (i, &p) in self.perm.iter().enumerate() {
            for j in 0..b.cols {
                x.set(i, j, b.at(p, j));
            }
        }
        for c in 0..b.cols {
            for i in 0..n {
                let mut s = x.at(i, c);
                for k in 0..i {
                    s -= self.lu.at(i, k) * x.at(k, c);
                }
                x.set(i, c, s);
            }
            for i in (0..n).rev() {
                let mut s = x.at(i, c);
                for k in i + 1..n {
                    s -= self.lu.at(i, k) * x.at(k, c);
                }
                x.set(i, c, s / self.lu.at(i, i));
            }
        }
        Ok(x)
    }

    /// The sign of the determinant (0 when singular) and the log of its magnitude.
    pub fn slogdet(&self) -> (f64, f64) {
        let mut sign = self.sign;
        let mut log = 0.0;
        for i in 0..self.lu.rows {
            let u = self.lu.at(i, i);
            if u == 0.0 {
                return (0.0, f64::NEG_INFINITY);
            }
            if u < 0.0 {
                sign = -sign;
            }
            log += u.abs().ln();
        }
        (sign, log)
    }

    pub fn det(&self) -> f64 {
        let mut d = self.sign;
        for i in 0..self.lu.rows {
            d *= self.lu.at(i, i);
        }
        d
    }
}

/// The lower Cholesky factor of a symmetric positive-definite matrix, reading only its
/// lower triangle (as NumPy's `cholesky`).
pub fn cholesky(a: &Mat) -> Result<Mat, Failure> {
    let n = a.rows;
    let mut l = Mat::zeros(n, n);
    for j in 0..n {
        let mut d = a.at(j, j);
        for k in 0..j {
            d -= l.at(j, k) * l.at(j, k);
        }
        if d.is_nan() || d <= 0.0 {
            return Err(Failure::NotPositiveDefinite);
        }
        let d = d.sqrt();
        l.set(j, j, d);
        for i in j + 1..n {
            let mut s = a.at(i, j);
            for k in 0..j {
                s -= l.at(i, k) * l.at(j, k);
            }
            l.set(i, j, s / d);
        }
    }
    Ok(l)
}

/// `A⁻¹ B` for triangular `A`, reading only its lower (or upper) triangle.
pub fn solve_triangular(a: &Mat, b: &Mat, lower: bool) -> Result<Mat, Failure> {
    let n = a.rows;
    if (0..n).any(|i| a.at(i, i) == 0.0) {
        return Err(Failure::Singular);
    }
    let mut x = b.clone();
    for c in 0..b.cols {
        let order: Vec<usize> = if lower {
            (0..n).collect()
        } else {
            (0..n).rev().collect()
        };
        for &i in &order {
            let mut s = x.at(i, c);
            let known: Vec<usize> = if lower {
                (0..i).collect()
            } else {
                (i + 1..n).collect()
            };
            for k in known {
                s -= a.at(i, k) * x.at(k, c);
            }
            x.set(i, c, s / a.at(i, i));
        }
    }
    Ok(x)
}

/// The reduced QR factorisation of an `m × n` matrix with `m ≥ n`: `Q` (`m × n`, with
/// orthonormal columns) and upper-triangular `R` (`n × n`). Householder reflections with
/// LAPACK's sign convention (`geqrf`: `R[k][k] = -sign(a) ‖x‖`, no reflection where the
/// column below the diagonal is already zero), so `Q` and `R` are NumPy's.
pub fn qr(a: &Mat) -> (Mat, Mat) {
    let (m, n) = (a.rows, a.cols);
    let mut r = a.clone();
    // The reflectors: v (with v[k] = 1) and tau, H = I - tau v vᵀ.
    let mut reflectors: Vec<(Vec<f64>, f64)> = Vec::with_capacity(n);
    for k in 0..n.min(m) {
        let alpha = r.at(k, k);
        let tail: f64 = (k + 1..m).map(|i| r.at(i, k) * r.at(i, k)).sum();
        if tail == 0.0 {
            reflectors.push((Vec::new(), 0.0));
            continue;
        }
        let norm = (alpha * alpha + tail).sqrt();
        let beta = if alpha >= 0.0 { -norm } else { norm };
        let tau = (beta - alpha) / beta;
        let scale = 1.0 / (alpha - beta);
        let mut v = vec![0.0; m];
        if let Some(x) = v.get_mut(k) {
            *x = 1.0;
        }
        for i in k + 1..m {
            if let Some(x) = v.get_mut(i) {
                *x = r.at(i, k) * scale;
            }
        }
        // Apply H to the remaining columns of R.
        for j in k..n {
            let dot: f64 = (k..m)
                .map(|i| v.get(i).copied().unwrap_or(0.0) * r.at(i, j))
                .sum();
            let f = tau * dot;
            for i in k..m {
                let vi = v.get(i).copied().unwrap_or(0.0);
                r.set(i, j, r.at(i, j) - f * vi);
            }
        }
        reflectors.push((v, tau));
    }
    // Q = H_0 H_1 ... H_{n-1} applied to the first n columns of the identity.
    let mut q = Mat::zeros(m, n);
    for i in 0..n.min(m) {
        q.set(i, i, 1.0);
    }
    for (k, (v, tau)) in reflectors.iter().enumerate().rev() {
        if *tau == 0.0 {
            continue;
        }
        for j in 0..n {
            let dot: f64 = (k..m)
                .map(|i| v.get(i).copied().unwrap_or(0.0) * q.at(i, j))
                .sum();
            let f = tau * dot;
            for i in k..m {
                let vi = v.get(i).copied().unwrap_or(0.0);
                q.set(i, j, q.at(i, j) - f * vi);
            }
        }
    }
    let mut upper = Mat::zeros(n, n);
    for i in 0..n.min(m) {
        for j in i..n {
            upper.set(i, j, r.at(i, j));
        }
    }
    (q, upper)
}

const MAX_SWEEPS: usize = 100;

/// Polls for interrupts before a sweep over an `n × n` problem large enough for a sweep
/// to take a noticeable time.
fn poll(n: usize) -> Result<(), Failure> {
    if n >= 64 {
        crate::tape::check_interrupt().map_err(Failure::Interrupted)?;
    }
    Ok(())
}

/// Rows `p < q` of a row-major matrix with rows of length `len`, both mutable.
fn two_rows(data: &mut [f64], len: usize, p: usize, q: usize) -> Option<(&mut [f64], &mut [f64])> {
    let (head, tail) = data.split_at_mut_checked(q.checked_mul(len)?)?;
    Some((head.get_mut(p * len..(p + 1) * len)?, tail.get_mut(..len)?))
}

/// `(x, y) ← (c x - s y, s x + c y)`, elementwise.
fn rotate(x: &mut [f64], y: &mut [f64], c: f64, s: f64) {
    for (a, b) in x.iter_mut().zip(y.iter_mut()) {
        let (u, v) = (*a, *b);
        *a = c * u - s * v;
        *b = s * u + c * v;
    }
}

fn dot(x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(y).map(|(a, b)| a * b).sum()
}

/// `tan θ` of the Jacobi rotation for `zeta = cot 2θ`: the smaller root, so `|θ| ≤ π/4`.
fn jacobi_tangent(zeta: f64) -> f64 {
    if zeta == 0.0 {
        1.0
    } else {
        zeta.signum() / (zeta.abs() + (zeta * zeta + 1.0).sqrt())
    }
}

/// Eigenvalues (ascending) and eigenvectors (the columns of `V`) of a symmetric matrix,
/// reading only its lower triangle (NumPy's `UPLO='L'`): Householder reduction to
/// tridiagonal form, then implicit QR steps with Wilkinson shifts (Golub & Van Loan,
/// 8.3), accumulating the transformations. The vectors are kept as rows (`Vᵀ`) so that
/// every update runs over contiguous memory.
pub fn eigh(a: &Mat) -> Result<(Vec<f64>, Mat), Failure> {
    let n = a.rows;
    let mut t = Mat::zeros(n, n);
    for i in 0..n {
        for j in 0..=i {
            t.set(i, j, a.at(i, j));
            t.set(j, i, a.at(i, j));
        }
    }
    if !t.data.iter().all(|x| x.is_finite()) {
        return Err(Failure::NoConvergence);
    }
    let mut zt = Mat::identity(n);
    tridiagonalize(&mut t, &mut zt);
    let mut steps = 0usize;
    let mut high = n.saturating_sub(1);
    while high > 0 {
        // Deflate: negligible subdiagonal entries become exact zeros.
        for i in 0..high {
            let e = t.at(i + 1, i);
            if e != 0.0 && e.abs() <= f64::EPSILON * (t.at(i, i).abs() + t.at(i + 1, i + 1).abs()) {
                t.set(i + 1, i, 0.0);
                t.set(i, i + 1, 0.0);
            }
        }
        if t.at(high, high - 1) == 0.0 {
            high -= 1;
            continue;
        }
        let mut low = high - 1;
        while low > 0 && t.at(low, low - 1) != 0.0 {
            low -= 1;
        }
        steps += 1;
        if steps > 40 * n.max(1) {
            return Err(Failure::NoConvergence);
        }
        if steps.is_multiple_of(64) {
            poll(n)?;
        }
        qr_step(&mut t, &mut zt, low, high);
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| t.at(i, i).total_cmp(&t.at(j, j)));
    let w = order.iter().map(|&i| t.at(i, i)).collect();
    let mut sorted = Mat::zeros(n, n);
    for (new, &old) in order.iter().enumerate() {
        for k in 0..n {
            sorted.set(k, new, zt.at(old, k));
        }
    }
    Ok((w, sorted))
}

/// Reduces symmetric `t` to tridiagonal form `Qᵀ t Q` by Householder reflections,
/// multiplying them into `zt` (which becomes `Qᵀ zt`).
fn tridiagonalize(t: &mut Mat, zt: &mut Mat) {
    let n = t.rows;
    for k in 0..n.saturating_sub(2) {
        let x: Vec<f64> = (k + 1..n).map(|i| t.at(i, k)).collect();
        let tail: f64 = x.iter().skip(1).map(|v| v * v).sum();
        if tail == 0.0 {
            continue;
        }
        let x0 = x.first().copied().unwrap_or(0.0);
        let norm = (x0 * x0 + tail).sqrt();
        let alpha = if x0 >= 0.0 { -norm } else { norm };
        let mut v = x;
        if let Some(v0) = v.first_mut() {
            *v0 -= alpha;
        }
        let beta = 2.0 / dot(&v, &v);
        let m = v.len();
        let at = |t: &Mat, i: usize, j: usize| t.at(k + 1 + i, k + 1 + j);
        // p = β B v, K = β (vᵀp) / 2, q = p - K v; B ← B - v qᵀ - q vᵀ.
        let p: Vec<f64> = (0..m)
            .map(|i| {
                beta * (0..m)
                    .map(|j| at(t, i, j) * v.get(j).copied().unwrap_or(0.0))
                    .sum::<f64>()
            })
            .collect();
        let kk = beta * dot(&v, &p) / 2.0;
        let q: Vec<f64> = p.iter().zip(&v).map(|(pi, vi)| pi - kk * vi).collect();
        for i in 0..m {
            let (vi, qi) = (
                v.get(i).copied().unwrap_or(0.0),
                q.get(i).copied().unwrap_or(0.0),
            );
            for j in 0..m {
                let (vj, qj) = (
                    v.get(j).copied().unwrap_or(0.0),
                    q.get(j).copied().unwrap_or(0.0),
                );
                t.set(k + 1 + i, k + 1 + j, at(t, i, j) - vi * qj - qi * vj);
            }
        }
        for i in k + 1..n {
            let value = if i == k + 1 { alpha } else { 0.0 };
            t.set(i, k, value);
            t.set(k, i, value);
        }
        // zt ← H zt on rows k+1..: w = vᵀ zt[k+1..], zt[k+1+j] -= β v_j w.
        let cols = zt.cols;
        let mut w = vec![0.0; cols];
        for (j, &vj) in v.iter().enumerate() {
            if let Some(row) = zt.data.get((k + 1 + j) * cols..(k + 2 + j) * cols) {
                for (wc, r) in w.iter_mut().zip(row) {
                    *wc += vj * r;
                }
            }
        }
        for (j, &vj) in v.iter().enumerate() {
            if let Some(row) = zt.data.get_mut((k + 1 + j) * cols..(k + 2 + j) * cols) {
                for (r, wc) in row.iter_mut().zip(&w) {
                    *r -= beta * vj * wc;
                }
            }
        }
    }
}

/// One implicit symmetric QR step with a Wilkinson shift on the unreduced tridiagonal
/// block `low..=high` of `t`: a bulge chased down by Givens rotations, each applied to
/// the band of `t` and to the rows of `zt`.
fn qr_step(t: &mut Mat, zt: &mut Mat, low: usize, high: usize) {
    let (a, b, c) = (
        t.at(high - 1, high - 1),
        t.at(high, high - 1),
        t.at(high, high),
    );
    let d = (a - c) / 2.0;
    let sign = if d >= 0.0 { 1.0 } else { -1.0 };
    let mu = c - b * b / (d + sign * d.hypot(b));
    let n = t.rows;
    let mut x = t.at(low, low) - mu;
    let mut z = t.at(low + 1, low);
    for k in low..high {
        let r = x.hypot(z);
        if r == 0.0 {
            break;
        }
        let (cs, sn) = (x / r, -z / r);
        let first = k.saturating_sub(1).max(low);
        let last = (k + 2).min(high);
        // Rows k, k+1 of t, then columns k, k+1 (the band only: the rest is zero).
        for j in first..=last {
            let (u, v) = (t.at(k, j), t.at(k + 1, j));
            t.set(k, j, cs * u - sn * v);
            t.set(k + 1, j, sn * u + cs * v);
        }
        for i in first..=last {
            let (u, v) = (t.at(i, k), t.at(i, k + 1));
            t.set(i, k, cs * u - sn * v);
            t.set(i, k + 1, sn * u + cs * v);
        }
        if let Some((zk, zk1)) = two_rows(&mut zt.data, n, k, k + 1) {
            rotate(zk, zk1, cs, sn);
        }
        if k + 1 < high {
            x = t.at(k + 1, k);
            z = t.at(k + 2, k);
        }
    }
}

/// The thin SVD `A = U diag(S) Vᵀ` of an `m × n` matrix: `U` (`m × k`), `S` (`k`,
/// descending, non-negative), `V` (`n × k`), `k = min(m, n)`. One-sided Jacobi
/// (Hestenes) on the columns of `A` (or of `Aᵀ` when it is wide), kept as the rows of
/// `Aᵀ` so that every rotation works on contiguous memory.
pub fn svd(a: &Mat) -> Result<(Mat, Vec<f64>, Mat), Failure> {
    if a.rows < a.cols {
        let (u, s, v) = svd(&a.transposed())?;
        return Ok((v, s, u));
    }
    let (m, n) = (a.rows, a.cols);
    let mut wt = a.transposed();
    let mut vt = Mat::identity(n);
    if !wt.data.iter().all(|x| x.is_finite()) {
        return Err(Failure::NoConvergence);
    }
    // Columns this small are numerically zero: rotating them only stirs rounding noise,
    // which would keep the relative test below from ever being met.
    let negligible = wt.data.iter().map(|x| x * x).sum::<f64>() * f64::EPSILON * f64::EPSILON;
    let mut converged = n < 2;
    for _ in 0..MAX_SWEEPS {
        poll(n)?;
        let mut rotated = false;
        for p in 0..n {
            for q in p + 1..n {
                let Some((rp, rq)) = two_rows(&mut wt.data, m, p, q) else {
                    continue;
                };
                let (alpha, beta, gamma) = (dot(rp, rp), dot(rq, rq), dot(rp, rq));
                if gamma == 0.0
                    || alpha <= negligible
                    || beta <= negligible
                    || gamma.abs() <= f64::EPSILON * (alpha * beta).sqrt()
                {
                    continue;
                }
                rotated = true;
                let t = jacobi_tangent((beta - alpha) / (2.0 * gamma));
                let c = 1.0 / (1.0 + t * t).sqrt();
                let sn = c * t;
                rotate(rp, rq, c, sn);
                if let Some((vp, vq)) = two_rows(&mut vt.data, n, p, q) {
                    rotate(vp, vq, c, sn);
                }
            }
        }
        if !rotated {
            converged = true;
            break;
        }
    }
    if !converged {
        return Err(Failure::NoConvergence);
    }
    let norms: Vec<f64> = (0..n)
        .map(|j| {
            (0..m)
                .map(|i| wt.at(j, i) * wt.at(j, i))
                .sum::<f64>()
                .sqrt()
        })
        .collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| {
        let (a, b) = (
            norms.get(i).copied().unwrap_or(0.0),
            norms.get(j).copied().unwrap_or(0.0),
        );
        b.total_cmp(&a)
    });
    let s: Vec<f64> = order
        .iter()
        .map(|&j| norms.get(j).copied().unwrap_or(0.0))
        .collect();
    let largest = s.first().copied().unwrap_or(0.0);
    let mut u = Mat::zeros(m, n);
    let mut vs = Mat::zeros(n, n);
    let mut missing = Vec::new();
    for (new, &old) in order.iter().enumerate() {
        let sigma = s.get(new).copied().unwrap_or(0.0);
        for i in 0..n {
            vs.set(i, new, vt.at(old, i));
        }
        if sigma > largest * f64::EPSILON * (m as f64) && sigma > 0.0 {
            for i in 0..m {
                u.set(i, new, wt.at(old, i) / sigma);
            }
        } else {
            missing.push(new);
        }
    }
    // Columns of U for (numerically) zero singular values: any orthonormal completion.
    for col in missing {
        for e in 0..m {
            let mut cand: Vec<f64> = (0..m).map(|i| if i == e { 1.0 } else { 0.0 }).collect();
            for _ in 0..2 {
                for j in 0..n {
                    if j == col {
                        continue;
                    }
                    let dot: f64 = (0..m)
                        .map(|i| u.at(i, j) * cand.get(i).copied().unwrap_or(0.0))
                        .sum();
                    for (i, c) in cand.iter_mut().enumerate() {
                        *c -= dot * u.at(i, j);
                    }
                }
            }
            let norm = cand.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm > 0.5 {
                for (i, c) in cand.iter().enumerate() {
                    u.set(i, col, c / norm);
                }
                break;
            }
        }
    }
    Ok((u, s, vs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < tol)
    }

    fn product(a: &Mat, b: &Mat) -> Mat {
        let mut c = Mat::zeros(a.rows, b.cols);
        for i in 0..a.rows {
            for j in 0..b.cols {
                let s = (0..a.cols).map(|k| a.at(i, k) * b.at(k, j)).sum();
                c.set(i, j, s);
            }
        }
        c
    }

    #[test]
    fn lu_solves_and_detects_singular() {
        let a = Mat::from_slice(2, 2, &[0.0, 2.0, 3.0, 4.0]);
        let f = lu(&a);
        assert!((f.det() - -6.0).abs() < 1e-12);
        let x = f.solve(&Mat::identity(2)).ok();
        let back = x.map(|x| product(&a, &x).data);
        assert!(back.is_some_and(|b| close(&b, &[1.0, 0.0, 0.0, 1.0], 1e-12)));
        let s = lu(&Mat::from_slice(2, 2, &[1.0, 2.0, 2.0, 4.0]));
        assert!(s.singular && s.det() == 0.0);
        assert_eq!(s.solve(&Mat::identity(2)).err(), Some(Failure::Singular));
    }

    #[test]
    fn eigh_and_svd_of_a_larger_matrix_reconstruct() {
        let n = 7;
        let values: Vec<f64> = (0..n * n)
            .map(|k| ((k * 37 % 11) as f64 - 5.0) / 3.0)
            .collect();
        let a = Mat::from_slice(n, n, &values);
        let mut sym = a.clone();
        for i in 0..n {
            for j in 0..n {
                sym.set(i, j, a.at(i, j) + a.at(j, i));
            }
        }
        let (w, v) = eigh(&sym).unwrap_or((vec![], Mat::zeros(n, n)));
        assert!(w.windows(2).all(|p| matches!(p, [x, y] if x <= y)));
        let mut vw = v.clone();
        for i in 0..n {
            for j in 0..n {
                vw.set(i, j, v.at(i, j) * w.get(j).copied().unwrap_or(0.0));
            }
        }
        assert!(close(&product(&vw, &v.transposed()).data, &sym.data, 1e-12));
        assert!(close(
            &product(&v.transposed(), &v).data,
            &Mat::identity(n).data,
            1e-12
        ));
        let (u, s, v) = svd(&a).unwrap_or((Mat::zeros(n, n), vec![], Mat::zeros(n, n)));
        let mut us = u.clone();
        for i in 0..n {
            for j in 0..n {
                us.set(i, j, u.at(i, j) * s.get(j).copied().unwrap_or(0.0));
            }
        }
        assert!(close(&product(&us, &v.transposed()).data, &a.data, 1e-12));
    }

    #[test]
    fn decompositions_reconstruct() {
        let a = Mat::from_slice(3, 2, &[1.0, 2.0, 3.0, 4.0, 5.0, 7.0]);
        let (q, r) = qr(&a);
        assert!(close(&product(&q, &r).data, &a.data, 1e-12));
        assert!(r.at(0, 0) < 0.0, "LAPACK's sign: R[0][0] = -sign(a00) |a0|");
        let (u, s, v) = svd(&a).unwrap_or((Mat::zeros(0, 0), vec![], Mat::zeros(0, 0)));
        let mut us = u.clone();
        for i in 0..3 {
            for j in 0..2 {
                us.set(i, j, u.at(i, j) * s.get(j).copied().unwrap_or(0.0));
            }
        }
        assert!(close(&product(&us, &v.transposed()).data, &a.data, 1e-12));
        let sym = Mat::from_slice(2, 2, &[2.0, 1.0, 1.0, 2.0]);
        let (w, _) = eigh(&sym).unwrap_or((vec![], Mat::zeros(0, 0)));
        assert!(close(&w, &[1.0, 3.0], 1e-12));
        let l = cholesky(&sym).unwrap_or(Mat::zeros(0, 0));
        assert!(close(&product(&l, &l.transposed()).data, &sym.data, 1e-12));
        assert_eq!(
            cholesky(&Mat::from_slice(1, 1, &[-1.0])).err(),
            Some(Failure::NotPositiveDefinite)
        );
    }
}
