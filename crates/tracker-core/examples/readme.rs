//! The README's example through the crate's own API: `cargo run -p tracker-core --example readme`.

use tracker_core::{Result, Tracked, Value, backward, gradient, hessian};

/// `sum(x²) + prod(x[1:])`
fn f(x: &Tracked) -> Result<Tracked> {
    x.powf(2.0)?.sum()?.add(&x.slice(1, None)?.prod()?)
}

fn main() -> Result<()> {
    let x = Tracked::param(Value::from_vec(&[3], vec![1.0, 2.0, 3.0])?);
    let y = f(&x)?;
    backward(&y, None, true)?;
    println!("grad(x)    = {:?}", x.grad()?.to_f64_vec());

    let x0 = Value::from_vec(&[3], vec![1.0, 2.0, 3.0])?;
    println!("gradient   = {:?}", gradient(f, &x0)?.to_f64_vec());
    let h = hessian(f, &x0)?;
    println!("hessian    = {:?} of shape {:?}", h.to_f64_vec(), h.shape());
    Ok(())
}
