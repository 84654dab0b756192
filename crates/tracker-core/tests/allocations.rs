//! The gradient of `x[i]` costs the size of the piece, not of `x`: a loop of `n` scalar
//! indexings allocates O(n) bytes in total, forward and backward, not O(n²).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use tracker_core::op::Op;
use tracker_core::ops::binary::Binary;
use tracker_core::ops::index::{IndexItem, plan};
use tracker_core::{Arg, Output, Result, Tracked, Value, apply, backward};

/// Counts the bytes every allocation asks for.
struct Counting;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Bytes allocated by `s = x[0] + x[1] + ... + x[n-1]` and its backward pass.
fn bytes_for(n: usize) -> Result<usize> {
    let x = Tracked::param(Value::from_vec(&[n], vec![1.0; n])?);
    let before = ALLOCATED.load(Ordering::Relaxed);
    let mut total: Option<Tracked> = None;
    for i in 0..n {
        let gather = plan(&[n], &[IndexItem::Int(i as isize)])?;
        let Output::Tracked(xi) = apply(Op::Gather(gather.into()), &[Arg::Tracked(x.clone())])?
        else {
            return Ok(usize::MAX);
        };
        total = Some(match total {
            None => xi,
            Some(t) => match apply(
                Op::Binary(Binary::Add),
                &[Arg::Tracked(t), Arg::Tracked(xi)],
            )? {
                Output::Tracked(t) => t,
                Output::Value(_) => return Ok(usize::MAX),
            },
        });
    }
    if let Some(total) = &total {
        backward(total, None, true)?;
    }
    assert_eq!(x.grad()?.to_f64_vec(), vec![1.0; n]);
    Ok(ALLOCATED.load(Ordering::Relaxed) - before)
}

#[test]
fn scalar_indexing_allocates_linearly() -> Result<()> {
    bytes_for(100)?; // warm up thread-locals and the tape's first growth
    let small = bytes_for(2_000)?;
    let large = bytes_for(8_000)?;
    // Linear growth gives a ratio near 4 (amortised vector growth adds a little);
    // a dense gradient per indexing would give 16.
    let ratio = large as f64 / small as f64;
    eprintln!("allocated {small} then {large} bytes: ratio {ratio:.2}");
    assert!(
        ratio < 6.0,
        "4x the indexings allocated {ratio:.1}x the bytes ({small} → {large})"
    );
    Ok(())
}
