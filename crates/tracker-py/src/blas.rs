//! Matrix products through the BLAS NumPy itself links: the OpenBLAS that NumPy's wheels
//! bundle (scipy-openblas, 64-bit integers). `tracker` finds the library beside NumPy and
//! hands its path here; without one, the core's matrixmultiply runs. `TRACKER_NUM_THREADS`,
//! when set, sets OpenBLAS's thread count too.

use std::ffi::c_int;
use std::mem::MaybeUninit;
use std::sync::OnceLock;
use std::time::Duration;

use pyo3::prelude::*;
use tracker_core::Product;

/// `cblas_?gemm` with 64-bit integers, as scipy-openblas exports it.
type Cblas<T> = unsafe extern "C" fn(
    order: c_int,
    trans_a: c_int,
    trans_b: c_int,
    m: i64,
    n: i64,
    k: i64,
    alpha: T,
    a: *const T,
    lda: i64,
    b: *const T,
    ldb: i64,
    beta: T,
    c: *mut T,
    ldc: i64,
);

const ROW_MAJOR: c_int = 101;
const NO_TRANS: c_int = 111;
const TRANS: c_int = 112;

/// The library's routines: the two GEMMs and `openblas_get_num_threads`.
struct Routines {
    dgemm: Cblas<f64>,
    sgemm: Cblas<f32>,
    threads: unsafe extern "C" fn() -> c_int,
}

static ROUTINES: OnceLock<Routines> = OnceLock::new();

/// How long OpenBLAS's idle workers spin after a multithreaded call before they sleep:
/// 2^28 cycles of the time-stamp counter (its default `OPENBLAS_THREAD_TIMEOUT`), 0.107 s
/// measured here (2.5 GHz).
const SPIN: Duration = Duration::from_millis(100);

/// OpenBLAS runs a product on the calling thread below this many multiply-adds (m·n·k):
/// 65536 times its `GEMM_MULTITHREAD_THRESHOLD` of 4.
const SINGLE_THREADED: usize = 65536 * 4;

/// `c = op(a) @ op(b)` through `routine` (one of `routines`), as `p` describes it;
/// false (nothing done) when the slices do not hold the operands. A product large
/// enough for OpenBLAS's threads tells the engine that they will spin after it, so that
/// its loops leave them their cores meanwhile.
fn gemm<T: Copy + From<u8>>(
    routines: &Routines,
    routine: Cblas<T>,
    p: &Product,
    a: &[T],
    b: &[T],
    c: &mut [MaybeUninit<T>],
) -> bool {
    let &Product { m, k, n, ta, tb } = p;
    let holds = |len: usize, rows: usize, cols: usize| rows.checked_mul(cols) == Some(len);
    if !(holds(a.len(), m, k) && holds(b.len(), k, n) && holds(c.len(), m, n)) || k == 0 {
        return false;
    }
    let [Ok(m64), Ok(k64), Ok(n64)] = [m, k, n].map(i64::try_from) else {
        return false;
    };
    // Row-major leading dimensions: the stored width of each matrix.
    let lda = if ta { m64 } else { k64 };
    let ldb = if tb { k64 } else { n64 };
    let flag = |t: bool| if t { TRANS } else { NO_TRANS };
    // SAFETY: the slices hold exactly m×k, k×n and m×n elements (checked above), row-major
    // and contiguous, stored as `p` says with leading dimensions lda, ldb and n, as this
    // call describes them; `c` is borrowed mutably and overlaps neither operand, and with
    // beta = 0 the routine writes it without reading it.
    unsafe {
        routine(
            ROW_MAJOR,
            flag(ta),
            flag(tb),
            m64,
            n64,
            k64,
            T::from(1),
            a.as_ptr(),
            lda.max(1),
            b.as_ptr(),
            ldb.max(1),
            T::from(0),
            c.as_mut_ptr().cast::<T>(),
            n64.max(1),
        )
    };
    // SAFETY: scipy-openblas's openblas_get_num_threads takes nothing and returns an int.
    let threads = unsafe { (routines.threads)() };
    if threads > 1 && m.saturating_mul(n).saturating_mul(k) >= SINGLE_THREADED {
        tracker_core::cores_busy_for(SPIN);
    }
    true
}

fn dgemm(p: &Product, a: &[f64], b: &[f64], c: &mut [MaybeUninit<f64>]) -> bool {
    ROUTINES.get().is_some_and(|r| gemm(r, r.dgemm, p, a, b, c))
}

fn sgemm(p: &Product, a: &[f32], b: &[f32], c: &mut [MaybeUninit<f32>]) -> bool {
    ROUTINES.get().is_some_and(|r| gemm(r, r.sgemm, p, a, b, c))
}

/// Uses the scipy-openblas library at `path` (NumPy's own, already loaded by NumPy) for
/// matrix products; false when it is not one.
#[pyfunction]
pub fn use_blas(path: &str) -> bool {
    if ROUTINES.get().is_some() {
        return true;
    }
    // SAFETY: `tracker` passes only the OpenBLAS bundled with NumPy, which NumPy has
    // loaded already, so loading it again runs no initialisation; the symbols looked up
    // are scipy-openblas's cblas_dgemm and cblas_sgemm with 64-bit integers, whose C
    // signature `Cblas` spells out, its openblas_get_num_threads() and its
    // openblas_set_num_threads(int).
    let routines = unsafe {
        let Ok(library) = libloading::Library::new(path) else {
            return false;
        };
        let d = library
            .get::<Cblas<f64>>(b"scipy_cblas_dgemm64_\0")
            .map(|s| *s);
        let s = library
            .get::<Cblas<f32>>(b"scipy_cblas_sgemm64_\0")
            .map(|s| *s);
        let threads = library
            .get::<unsafe extern "C" fn() -> c_int>(b"scipy_openblas_get_num_threads64_\0")
            .map(|s| *s);
        let (Ok(dgemm), Ok(sgemm), Ok(threads)) = (d, s, threads) else {
            return false;
        };
        // One knob for all the threads: TRACKER_NUM_THREADS, when set, is OpenBLAS's
        // thread count too (scipy-openblas's openblas_set_num_threads, taking an int).
        if std::env::var_os("TRACKER_NUM_THREADS").is_some()
            && let Ok(set_threads) =
                library.get::<unsafe extern "C" fn(c_int)>(b"scipy_openblas_set_num_threads64_\0")
        {
            set_threads(c_int::try_from(tracker_core::num_threads()).unwrap_or(c_int::MAX));
        }
        // The routines live as long as the process: the library is never unloaded.
        std::mem::forget(library);
        Routines {
            dgemm,
            sgemm,
            threads,
        }
    };
    let _ = ROUTINES.set(routines);
    tracker_core::set_gemm(dgemm, sgemm);
    true
}
