//! SciPy's special functions (`scipy.special`): forward values and pullbacks.
//!
//! A function's forward value is computed here when a maintained Rust crate (`libm`,
//! the C math library's algorithms) or a short formula over it matches SciPy to
//! 1e-12 relative (1e-14 absolute near zeros and poles); the others are evaluated by
//! an evaluator the embedding installs ([`set_evaluator`]: the Python boundary calls
//! SciPy's own ufunc on the buffer). [`Special::native`] says which is which.
//!
//! Every pullback is composed of ops (other special functions included: `digamma`'s
//! derivative is `polygamma(1, x)`), written once over [`Arrays`], so second
//! derivatives come from the same text.
//!
//! ```
//! use tracker_core::ops::special::Special;
//! use tracker_core::{Op, Tracked, Value, gradient};
//!
//! # fn main() -> tracker_core::Result<()> {
//! assert!(Special::Gammaln.native());
//! let x = Value::from_vec(&[2], vec![1.0, 3.0])?;
//! let y = Op::Special(Special::Gammaln).forward(&[&x])?; // log Γ(x)
//! assert!((y.to_f64_vec()[1] - 2f64.ln()).abs() < 1e-15);
//! # Ok(())
//! # }
//! ```

use std::f64::consts::{FRAC_2_SQRT_PI, PI};
use std::sync::OnceLock;

use smallvec::smallvec;

use crate::broadcast::broadcast_shapes;
use crate::error::{Error, Result};
use crate::kernel::zip;
use crate::num::Float;
use crate::op::{Arrays, Backend, Contribution, Contributions, Op, each_input};
use crate::ops::binary::Binary;
use crate::ops::shape::Mask;
use crate::ops::unary::Unary;
use crate::value::{Array, Value};

/// A special function of `scipy.special`, recorded as [`Op::Special`]. Its inputs
/// broadcast as a ufunc's.
///
/// ```
/// use tracker_core::ops::special::Special;
/// use tracker_core::{Op, Value};
///
/// # fn main() -> tracker_core::Result<()> {
/// let x = Value::from_vec(&[2], vec![0.0, 1.0])?;
/// let y = Value::from_vec(&[2], vec![5.0, std::f64::consts::E])?;
/// assert_eq!(Op::Special(Special::Xlogy).forward(&[&x, &y])?.to_f64_vec(), vec![0.0, 1.0]);
/// assert_eq!(Op::Special(Special::Ndtr).forward(&[&x])?.to_f64_vec()[0], 0.5);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    /// `erfc(x) = 1 - erf(x)`.
    Erfc,
    /// The inverse of `erf`.
    Erfinv,
    /// The inverse of `erfc`.
    Erfcinv,
    /// The scaled complementary error function `exp(x²) erfc(x)`.
    Erfcx,
    /// The gamma function `Γ(x)`.
    Gamma,
    /// `log|Γ(x)|`.
    Gammaln,
    /// `ψ(x)`, the derivative of `log Γ(x)`.
    Digamma,
    /// `polygamma(n, x)`, the n-th derivative of `digamma` (n ≥ 1).
    Polygamma(u32),
    /// `log(x / (1 - x))`.
    Logit,
    /// `Φ(x)`, the standard normal CDF.
    Ndtr,
    /// `log Φ(x)`, accurate far in the left tail.
    LogNdtr,
    /// The modified Bessel function of the first kind, order 0.
    I0,
    /// The modified Bessel function of the first kind, order 1.
    I1,
    /// `exp(-|x|) I0(x)`.
    I0e,
    /// `exp(-|x|) I1(x)`.
    I1e,
    /// The Bessel function of the first kind, order 0.
    J0,
    /// The Bessel function of the first kind, order 1.
    J1,
    /// The Bessel function of the second kind, order 0.
    Y0,
    /// The Bessel function of the second kind, order 1.
    Y1,
    /// The complete elliptic integral of the first kind `K(m)`.
    Ellipk,
    /// The complete elliptic integral of the second kind `E(m)`.
    Ellipe,
    /// The exponential integral `E1(x)`.
    Exp1,
    /// The exponential integral `Ei(x)`.
    Expi,
    /// `x log(y)`, 0 where `x = 0`.
    Xlogy,
    /// `x log1p(y)`, 0 where `x = 0`.
    Xlog1py,
    /// Hurwitz's `zeta(x, q)`.
    Zeta,
    /// The beta function `B(a, b)`.
    Beta,
    /// `log|B(a, b)|`.
    Betaln,
}

impl Special {
    /// Every special function (polygamma as `polygamma(1, x)`), for coverage tests.
    ///
    /// ```
    /// use tracker_core::ops::special::Special;
    ///
    /// assert!(Special::ALL.contains(&Special::Polygamma(1)));
    /// assert_eq!(Special::ALL.iter().filter(|s| s.arity() == 2).count(), 5);
    /// ```
    pub const ALL: &'static [Special] = &[
        Special::Erfc,
        Special::Erfinv,
        Special::Erfcinv,
        Special::Erfcx,
        Special::Gamma,
        Special::Gammaln,
        Special::Digamma,
        Special::Polygamma(1),
        Special::Logit,
        Special::Ndtr,
        Special::LogNdtr,
        Special::I0,
        Special::I1,
        Special::I0e,
        Special::I1e,
        Special::J0,
        Special::J1,
        Special::Y0,
        Special::Y1,
        Special::Ellipk,
        Special::Ellipe,
        Special::Exp1,
        Special::Expi,
        Special::Xlogy,
        Special::Xlog1py,
        Special::Zeta,
        Special::Beta,
        Special::Betaln,
    ];

    /// The name, as `scipy.special` spells it.
    ///
    /// ```
    /// use tracker_core::ops::special::Special;
    ///
    /// assert_eq!(Special::LogNdtr.name(), "log_ndtr");
    /// assert_eq!(Special::Polygamma(2).name(), "polygamma");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Special::Erfc => "erfc",
            Special::Erfinv => "erfinv",
            Special::Erfcinv => "erfcinv",
            Special::Erfcx => "erfcx",
            Special::Gamma => "gamma",
            Special::Gammaln => "gammaln",
            Special::Digamma => "digamma",
            Special::Polygamma(_) => "polygamma",
            Special::Logit => "logit",
            Special::Ndtr => "ndtr",
            Special::LogNdtr => "log_ndtr",
            Special::I0 => "i0",
            Special::I1 => "i1",
            Special::I0e => "i0e",
            Special::I1e => "i1e",
            Special::J0 => "j0",
            Special::J1 => "j1",
            Special::Y0 => "y0",
            Special::Y1 => "y1",
            Special::Ellipk => "ellipk",
            Special::Ellipe => "ellipe",
            Special::Exp1 => "exp1",
            Special::Expi => "expi",
            Special::Xlogy => "xlogy",
            Special::Xlog1py => "xlog1py",
            Special::Zeta => "zeta",
            Special::Beta => "beta",
            Special::Betaln => "betaln",
        }
    }

    /// The function a name of [`Special::name`] is (`polygamma` takes its order apart).
    ///
    /// ```
    /// use tracker_core::ops::special::Special;
    ///
    /// assert_eq!(Special::from_name("gammaln"), Some(Special::Gammaln));
    /// assert_eq!(Special::from_name("polygamma"), None); // needs its order
    /// ```
    pub fn from_name(name: &str) -> Option<Special> {
        Special::ALL
            .iter()
            .copied()
            .find(|s| s.name() == name && !matches!(s, Special::Polygamma(_)))
    }

    /// How many arguments the function takes.
    ///
    /// ```
    /// use tracker_core::ops::special::Special;
    ///
    /// assert_eq!(Special::Gamma.arity(), 1);
    /// assert_eq!(Special::Beta.arity(), 2);
    /// ```
    pub fn arity(self) -> usize {
        match self {
            Special::Xlogy | Special::Xlog1py | Special::Zeta | Special::Beta | Special::Betaln => {
                2
            }
            _ => 1,
        }
    }

    /// Whether the forward value is computed in this crate (else by the evaluator that
    /// [`set_evaluator`] installs).
    ///
    /// ```
    /// use tracker_core::ops::special::Special;
    ///
    /// assert!(Special::Erfc.native());
    /// assert!(!Special::Zeta.native());
    /// ```
    pub fn native(self) -> bool {
        matches!(
            self,
            Special::Erfc
                | Special::Gamma
                | Special::Gammaln
                | Special::Logit
                | Special::Ndtr
                | Special::LogNdtr
                | Special::J0
                | Special::J1
                | Special::Y0
                | Special::Y1
                | Special::Xlogy
                | Special::Xlog1py
        )
    }
}

/// Computes the functions this crate does not (the Python boundary calls SciPy): given
/// the function and its inputs (one dtype), the value at their broadcast shape.
///
/// ```
/// use tracker_core::ops::special::{Evaluator, Special};
/// use tracker_core::{Error, Result, Value};
///
/// fn none(op: Special, _inputs: &[&Value]) -> Result<Value> {
///     Err(Error::Usage { message: format!("{} is not available", op.name()) })
/// }
///
/// let evaluator: Evaluator = none;
/// assert!(evaluator(Special::Zeta, &[]).is_err());
/// ```
pub type Evaluator = fn(Special, &[&Value]) -> Result<Value>;

static EVALUATOR: OnceLock<Evaluator> = OnceLock::new();

/// Installs the evaluator of the functions that are not [`Special::native`], once per
/// process (later calls are ignored). Without one, those functions raise
/// [`Error::Type`].
///
/// ```rust,standalone_crate
/// use tracker_core::ops::special::{Special, set_evaluator};
/// use tracker_core::{Error, Op, Result, Value};
///
/// /// `I0(x)` by its power series `Σ (x/2)^(2k) / (k!)²`, enough for small `x`.
/// fn evaluate(op: Special, inputs: &[&Value]) -> Result<Value> {
///     let (Special::I0, [Value::F64(x)]) = (op, inputs) else {
///         return Err(Error::Usage { message: format!("{} is not available", op.name()) });
///     };
///     let series = |x: f64| {
///         let (mut term, mut sum) = (1.0, 1.0);
///         for k in 1..30 {
///             term *= (x / 2.0) * (x / 2.0) / (k * k) as f64;
///             sum += term;
///         }
///         sum
///     };
///     Ok(Value::F64(x.map(series)?))
/// }
///
/// # fn main() -> Result<()> {
/// let x = Value::from_vec(&[2], vec![0.0, 1.0])?;
/// assert!(Op::Special(Special::I0).forward(&[&x]).is_err()); // no evaluator yet
/// set_evaluator(evaluate);
/// let y = Op::Special(Special::I0).forward(&[&x])?.to_f64_vec();
/// assert_eq!(y[0], 1.0);
/// assert!((y[1] - 1.266_065_877_752_008_4).abs() < 1e-15);
/// # Ok(())
/// # }
/// ```
pub fn set_evaluator(evaluator: Evaluator) {
    let _ = EVALUATOR.set(evaluator);
}

/// `Φ(x)`, the standard normal CDF, as SciPy computes it from `erf`/`erfc`.
fn ndtr(x: f64) -> f64 {
    let z = x * std::f64::consts::FRAC_1_SQRT_2;
    if z.abs() < std::f64::consts::FRAC_1_SQRT_2 {
        0.5 + 0.5 * libm::erf(z)
    } else {
        let y = 0.5 * libm::erfc(z.abs());
        if z > 0.0 { 1.0 - y } else { y }
    }
}

/// `log Φ(x)`: `log1p(-Φ(-x))` on the right, `log Φ(x)` in the middle, and the
/// asymptotic series of `Φ` (Abramowitz & Stegun 26.2.12) far on the left.
fn log_ndtr(x: f64) -> f64 {
    if x > -1.0 {
        (-0.5 * libm::erfc(x * std::f64::consts::FRAC_1_SQRT_2)).ln_1p()
    } else if x > -20.0 {
        (0.5 * libm::erfc(-x * std::f64::consts::FRAC_1_SQRT_2)).ln()
    } else {
        // Φ(x) = φ(x)/(-x) · (1 - 1/x² + 3/x⁴ - 15/x⁶ + ...)
        let x2 = x * x;
        let (mut term, mut sum) = (1.0, 1.0);
        for k in 1..12 {
            term *= -f64::from(2 * k - 1) / x2;
            sum += term;
        }
        -0.5 * x2 - (-x).ln() - 0.5 * (2.0 * PI).ln() + sum.ln()
    }
}

/// `log(x / (1 - x))`; near ½ as `log1p` of the small difference.
fn logit(x: f64) -> f64 {
    if (0.25..=0.75).contains(&x) {
        ((2.0 * x - 1.0) / (1.0 - x)).ln_1p()
    } else {
        (x / (1.0 - x)).ln()
    }
}

/// The one-argument functions computed here, on one element.
fn native1(op: Special, x: f64) -> f64 {
    match op {
        Special::Erfc => libm::erfc(x),
        Special::Gamma => {
            // Γ has poles at 0 and the negative integers: SciPy gives ±inf at ±0 and NaN
            // at the others.
            if x == 0.0 {
                f64::INFINITY.copysign(x)
            } else if x < 0.0 && x == x.floor() {
                f64::NAN
            } else {
                libm::tgamma(x)
            }
        }
        Special::Gammaln => libm::lgamma(x),
        Special::Logit => logit(x),
        Special::Ndtr => ndtr(x),
        Special::LogNdtr => log_ndtr(x),
        Special::J0 => libm::j0(x),
        Special::J1 => libm::j1(x),
        Special::Y0 => libm::y0(x),
        Special::Y1 => libm::y1(x),
        _ => f64::NAN,
    }
}

/// The two-argument functions computed here, on elements.
fn native2(op: Special, a: f64, b: f64) -> f64 {
    match op {
        // 0 where a = 0 (unless b is NaN), as SciPy.
        Special::Xlogy if a == 0.0 && !b.is_nan() => 0.0,
        Special::Xlogy => a * b.ln(),
        Special::Xlog1py if a == 0.0 && !b.is_nan() => 0.0,
        Special::Xlog1py => a * b.ln_1p(),
        _ => f64::NAN,
    }
}

fn native_unary<T: Float>(op: Special, x: &Array<T>) -> Result<Array<T>> {
    x.map(|v| T::from_f64(native1(op, v.to_f64())))
}

fn native_binary<T: Float>(op: Special, a: &Array<T>, b: &Array<T>) -> Result<Array<T>> {
    let shape = broadcast_shapes(op.name(), a.shape(), b.shape())?;
    zip(op.name(), [a, b], &shape, |[a, b]| {
        T::from_f64(native2(op, a.to_f64(), b.to_f64()))
    })
}

/// The function's value on `inputs` (of one dtype).
pub(crate) fn forward(op: Special, inputs: &[&Value]) -> Result<Value> {
    let name = op.name();
    if inputs.len() != op.arity() {
        return Err(Error::Usage {
            message: format!("{name}: got {} inputs, takes {}", inputs.len(), op.arity()),
        });
    }
    if op.native() {
        return match inputs {
            [Value::F32(x)] => Ok(Value::F32(native_unary(op, x)?)),
            [Value::F64(x)] => Ok(Value::F64(native_unary(op, x)?)),
            [Value::F32(a), Value::F32(b)] => Ok(Value::F32(native_binary(op, a, b)?)),
            [Value::F64(a), Value::F64(b)] => Ok(Value::F64(native_binary(op, a, b)?)),
            _ => Err(crate::op::mixed_dtypes(name)),
        };
    }
    let Some(evaluate) = EVALUATOR.get() else {
        return Err(Error::Type {
            op: name,
            message: format!(
                "scipy.special.{name} is computed by SciPy, which is not available (install \
                 scipy to use it)"
            ),
        });
    };
    let dtype = inputs.first().map_or(crate::Dtype::F64, |v| v.dtype());
    let mut shape: &[usize] = &[];
    let broadcast;
    if let [a, b] = inputs {
        broadcast = broadcast_shapes(name, a.shape(), b.shape())?;
        shape = &broadcast;
    } else if let [x] = inputs {
        shape = x.shape();
    }
    let out = evaluate(op, inputs)?.cast(dtype)?;
    if out.shape() != shape {
        return Err(Error::Shape {
            op: name,
            message: format!(
                "the evaluator returned shape {:?} for shape {shape:?}",
                out.shape()
            ),
        });
    }
    Ok(out)
}

// Helpers for writing pullbacks over `Arrays`.

fn special<B: Arrays>(b: &mut B, op: Special, inputs: &[&B::A]) -> Result<B::A> {
    b.apply(Op::Special(op), inputs)
}

fn unary<B: Arrays>(b: &mut B, op: Unary, x: &B::A) -> Result<B::A> {
    b.apply(Op::Unary(op), &[x])
}

fn binary<B: Arrays>(b: &mut B, op: Binary, x: &B::A, y: &B::A) -> Result<B::A> {
    b.apply(Op::Binary(op), &[x, y])
}

/// `c · x` (or `c + x`) for a constant `c`.
fn scale<B: Arrays>(b: &mut B, c: f64, x: &B::A) -> Result<B::A> {
    let c = b.scalar_like(x, c)?;
    b.mul(&c, x)
}

fn shift<B: Arrays>(b: &mut B, c: f64, x: &B::A) -> Result<B::A> {
    let c = b.scalar_like(x, c)?;
    b.add(&c, x)
}

/// A mask read from primal data: where `x` is zero.
fn zeros_of<B: Arrays>(b: &B, x: &B::A) -> Result<Mask> {
    let v = b.value(x)?;
    Ok(Mask {
        shape: v.shape().into(),
        bits: v.to_f64_vec().iter().map(|&e| e == 0.0).collect(),
    })
}

/// `value` where `mask` is set, `x` elsewhere (a select: `x`'s places under the mask get
/// no gradient).
fn replace<B: Arrays>(b: &mut B, mask: &Mask, value: f64, x: &B::A) -> Result<B::A> {
    let c = b.scalar_like(x, value)?;
    let mask = Mask {
        shape: mask.shape.clone(),
        bits: mask.bits.clone(),
    };
    b.apply(Op::Where(std::sync::Arc::new(mask)), &[&c, x])
}

/// `f(x)` where `x ≠ 0`, computed with `safe` in place of 0, and its Taylor polynomial
/// `value + slope·x` where `x = 0`: the finite limit of an expression like `i1(x) / x`,
/// with no 0/0 reaching a higher derivative, and the right second derivative at 0.
fn limit_at_zero<B: Arrays>(
    b: &mut B,
    x: &B::A,
    safe: f64,
    (value, slope): (f64, f64),
    f: impl FnOnce(&mut B, &B::A) -> Result<B::A>,
) -> Result<B::A> {
    let zero = zeros_of(b, x)?;
    if !zero.bits.iter().any(|&z| z) {
        return f(b, x);
    }
    let safe = replace(b, &zero, safe, x)?;
    let g = f(b, &safe)?;
    let taylor = scale(b, slope, x)?;
    let taylor = shift(b, value, &taylor)?;
    b.apply(Op::Where(std::sync::Arc::new(zero)), &[&taylor, &g])
}

/// `f'(x)` of a one-argument function, given `x` and `y = f(x)`.
fn derivative<B: Arrays>(b: &mut B, op: Special, x: &B::A, y: &B::A) -> Result<B::A> {
    let sq = |b: &mut B, v: &B::A| b.mul(v, v);
    match op {
        // -2/√π · exp(-x²) (erf itself is a row of the unary table).
        Special::Erfc => {
            let e = sq(b, x)?;
            let e = unary(b, Unary::Neg, &e)?;
            let e = unary(b, Unary::Exp, &e)?;
            scale(b, -FRAC_2_SQRT_PI, &e)
        }
        // √π/2 · exp(y²), and its negative.
        Special::Erfinv | Special::Erfcinv => {
            let e = sq(b, y)?;
            let e = unary(b, Unary::Exp, &e)?;
            let c = if op == Special::Erfinv { 1.0 } else { -1.0 };
            scale(b, c / FRAC_2_SQRT_PI, &e)
        }
        // 2x·y - 2/√π.
        Special::Erfcx => {
            let xy = b.mul(x, y)?;
            let xy = scale(b, 2.0, &xy)?;
            shift(b, -FRAC_2_SQRT_PI, &xy)
        }
        Special::Gamma => {
            let psi = special(b, Special::Digamma, &[x])?;
            b.mul(y, &psi)
        }
        Special::Gammaln => special(b, Special::Digamma, &[x]),
        Special::Digamma => special(b, Special::Polygamma(1), &[x]),
        Special::Polygamma(n) => special(b, Special::Polygamma(n.saturating_add(1)), &[x]),
        // 1 / (x(1 - x)).
        Special::Logit => {
            let one_minus = unary(b, Unary::Neg, x)?;
            let one_minus = shift(b, 1.0, &one_minus)?;
            let d = b.mul(x, &one_minus)?;
            unary(b, Unary::Recip, &d)
        }
        // φ(x) = exp(-x²/2)/√(2π), and for log Φ: exp(-x²/2 - y)/√(2π).
        Special::Ndtr | Special::LogNdtr => {
            let e = sq(b, x)?;
            let mut e = scale(b, -0.5, &e)?;
            if op == Special::LogNdtr {
                e = binary(b, Binary::Sub, &e, y)?;
            }
            let e = unary(b, Unary::Exp, &e)?;
            scale(b, 1.0 / (2.0 * PI).sqrt(), &e)
        }
        Special::I0 => special(b, Special::I1, &[x]),
        Special::J0 => {
            let j1 = special(b, Special::J1, &[x])?;
            unary(b, Unary::Neg, &j1)
        }
        Special::Y0 => {
            let y1 = special(b, Special::Y1, &[x])?;
            unary(b, Unary::Neg, &y1)
        }
        // i0(x) - i1(x)/x, j0(x) - j1(x)/x, y0(x) - y1(x)/x: ½ at 0 for i1 and j1.
        Special::I1 | Special::J1 | Special::Y1 => {
            let lower = match op {
                Special::I1 => Special::I0,
                Special::J1 => Special::J0,
                _ => Special::Y0,
            };
            let f0 = special(b, lower, &[x])?;
            let over_x = limit_at_zero(b, x, 1.0, (0.5, 0.0), |b, x| {
                let f1 = special(b, op, &[x])?;
                binary(b, Binary::Div, &f1, x)
            })?;
            binary(b, Binary::Sub, &f0, &over_x)
        }
        // i1e(x) - sign(x)·i0e(x).
        Special::I0e => {
            let i1e = special(b, Special::I1e, &[x])?;
            let s = unary(b, Unary::Sign, x)?;
            let sy = b.mul(&s, y)?;
            binary(b, Binary::Sub, &i1e, &sy)
        }
        // i0e(x) - i1e(x)/x - sign(x)·i1e(x): ½ at 0.
        Special::I1e => {
            let i0e = special(b, Special::I0e, &[x])?;
            let over_x = limit_at_zero(b, x, 1.0, (0.5, 0.0), |b, x| {
                let f1 = special(b, op, &[x])?;
                binary(b, Binary::Div, &f1, x)
            })?;
            let s = unary(b, Unary::Sign, x)?;
            let sy = b.mul(&s, y)?;
            let d = binary(b, Binary::Sub, &i0e, &over_x)?;
            binary(b, Binary::Sub, &d, &sy)
        }
        // K'(m) = (E - (1 - m)K) / (2m(1 - m)); π/8 + 9π/64·m near 0 (K's series,
        // DLMF 19.5.1).
        Special::Ellipk => limit_at_zero(b, x, 0.5, (PI / 8.0, 9.0 * PI / 64.0), |b, m| {
            let e = special(b, Special::Ellipe, &[m])?;
            let k = special(b, Special::Ellipk, &[m])?;
            let one_minus = unary(b, Unary::Neg, m)?;
            let one_minus = shift(b, 1.0, &one_minus)?;
            let k = b.mul(&one_minus, &k)?;
            let num = binary(b, Binary::Sub, &e, &k)?;
            let den = b.mul(m, &one_minus)?;
            let den = scale(b, 2.0, &den)?;
            binary(b, Binary::Div, &num, &den)
        }),
        // E'(m) = (E - K) / (2m); -π/8 - 3π/64·m near 0 (E's series, DLMF 19.5.2).
        Special::Ellipe => limit_at_zero(b, x, 0.5, (-PI / 8.0, -3.0 * PI / 64.0), |b, m| {
            let e = special(b, Special::Ellipe, &[m])?;
            let k = special(b, Special::Ellipk, &[m])?;
            let num = binary(b, Binary::Sub, &e, &k)?;
            let den = scale(b, 2.0, m)?;
            binary(b, Binary::Div, &num, &den)
        }),
        // -exp(-x)/x and exp(x)/x.
        Special::Exp1 | Special::Expi => {
            let arg = if op == Special::Exp1 {
                unary(b, Unary::Neg, x)?
            } else {
                x.clone()
            };
            let e = unary(b, Unary::Exp, &arg)?;
            let e = binary(b, Binary::Div, &e, x)?;
            scale(b, if op == Special::Exp1 { -1.0 } else { 1.0 }, &e)
        }
        Special::Xlogy | Special::Xlog1py | Special::Zeta | Special::Beta | Special::Betaln => {
            Err(Error::Usage {
                message: format!("{}: takes two arguments", op.name()),
            })
        }
    }
}

/// The partial derivative of a two-argument function with respect to input `side`,
/// given the inputs and `y`, at the output's shape.
fn partial<B: Arrays>(
    b: &mut B,
    op: Special,
    side: usize,
    [x1, x2]: [&B::A; 2],
    y: &B::A,
) -> Result<B::A> {
    match (op, side) {
        // log(b) (log1p(b)) where a ≠ 0, else 0 (as PyTorch): computed on a harmless b
        // there, so no 0·inf reaches a higher derivative.
        (Special::Xlogy | Special::Xlog1py, 0) => {
            let mask = zeros_of(b, x1)?;
            let harmless = if op == Special::Xlogy { 1.0 } else { 0.0 };
            let safe = replace(b, &mask, harmless, x2)?;
            let log = if op == Special::Xlogy {
                Unary::Log
            } else {
                Unary::Log1p
            };
            let l = unary(b, log, &safe)?;
            replace(b, &mask, 0.0, &l)
        }
        // a / b and a / (1 + b).
        (Special::Xlogy, _) => binary(b, Binary::Div, x1, x2),
        (Special::Xlog1py, _) => {
            let d = shift(b, 1.0, x2)?;
            binary(b, Binary::Div, x1, &d)
        }
        (Special::Zeta, 0) => Err(Error::Type {
            op: "zeta",
            message: "zeta(x, q) has no derivative with respect to x here (neither SciPy nor \
                      PyTorch offers one); pass x as a constant (tr.data(x))"
                .into(),
        }),
        // ∂q zeta(x, q) = -x·zeta(x + 1, q).
        (Special::Zeta, _) => {
            let x_plus = shift(b, 1.0, x1)?;
            let z = special(b, Special::Zeta, &[&x_plus, x2])?;
            let xz = b.mul(x1, &z)?;
            unary(b, Unary::Neg, &xz)
        }
        // ∂a log B(a, b) = ψ(a) - ψ(a + b); ∂a B = B·(ψ(a) - ψ(a + b)).
        (Special::Beta | Special::Betaln, _) => {
            let s = b.add(x1, x2)?;
            let psi_s = special(b, Special::Digamma, &[&s])?;
            let own = if side == 0 { x1 } else { x2 };
            let psi = special(b, Special::Digamma, &[own])?;
            let d = binary(b, Binary::Sub, &psi, &psi_s)?;
            if op == Special::Beta {
                b.mul(y, &d)
            } else {
                Ok(d)
            }
        }
        _ => Err(Error::Usage {
            message: format!("{}: takes one argument", op.name()),
        }),
    }
}

/// The contributions of `dy` to the inputs' gradients.
pub(crate) fn pullback<B: Backend>(
    b: &mut B,
    op: Special,
    inputs: &[B::A],
    y: &B::A,
    dy: &B::A,
    needs: &[bool],
) -> Result<Contributions<B::A>> {
    let need = |k: usize| needs.get(k).copied().unwrap_or(false);
    match inputs {
        [x] => {
            let d = derivative(b, op, x, y)?;
            Ok(smallvec![Some(Contribution::Dense(b.mul(dy, &d)?))])
        }
        [x1, x2] => each_input(b, &[(x1, need(0)), (x2, need(1))], |b, side| {
            let d = partial(b, op, side, [x1, x2], y)?;
            b.mul(dy, &d)
        }),
        _ => Err(Error::Usage {
            message: format!("{}: got {} inputs", op.name(), inputs.len()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_values_by_hand() {
        assert_eq!(native1(Special::Logit, 0.5), 0.0);
        assert_eq!(native1(Special::Ndtr, 0.0), 0.5);
        assert!((native1(Special::Gamma, 5.0) - 24.0).abs() < 1e-12);
        assert_eq!(native2(Special::Xlogy, 0.0, 0.0), 0.0);
        assert!((native1(Special::LogNdtr, -30.0) - (-454.321_243_956_343_3)).abs() < 1e-9);
    }

    #[test]
    fn names_round_trip() {
        for &s in Special::ALL {
            if !matches!(s, Special::Polygamma(_)) {
                assert_eq!(Special::from_name(s.name()), Some(s));
            }
        }
    }
}
