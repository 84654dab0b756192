//! The extension's allocator: mimalloc, with a few large blocks kept for reuse.
//!
//! mimalloc, as pydantic-core uses: an op allocates a small buffer and a handle, and
//! glibc's malloc and free were 10% of a loop of small ops (mimalloc: 6-7% faster on
//! the per-op workloads W2 and W6).
//!
//! A gradient call frees its buffers at the end, and the next call asks for the same
//! sizes again. The underlying allocator returns blocks this large to the kernel, so every
//! call paid to fault in (and zero) all of its pages anew: about 40% of the time of a
//! 10^5-element workload. Kept blocks are handed out again for exactly the same layout.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};

use mimalloc::MiMalloc as Base;

/// Blocks from this size up are kept; smaller ones stay in the allocator's own bins…
const LARGE: usize = 1 << 18;
/// …up to this size: glibc's own largest mmap threshold, above which it too returns
/// every block at once.
const HUGE: usize = 32 << 20;
/// At most this many blocks are kept…
const SLOTS: usize = 32;
/// …holding at most this many bytes; the oldest go back to the system first.
const CAPACITY: usize = 128 << 20;

/// [`Base`] with a cache of large freed blocks.
pub struct Cached {
    lock: AtomicBool,
    kept: std::cell::UnsafeCell<Kept>,
}

/// The kept blocks, oldest first.
struct Kept {
    blocks: [(usize, Layout); SLOTS],
    len: usize,
    bytes: usize,
}

// Safety: `kept` is only touched with `lock` held.
unsafe impl Sync for Cached {}

impl Cached {
    pub const fn new() -> Self {
        Self {
            lock: AtomicBool::new(false),
            kept: std::cell::UnsafeCell::new(Kept {
                blocks: [(0, Layout::new::<u8>()); SLOTS],
                len: 0,
                bytes: 0,
            }),
        }
    }

    /// Runs `f` on the kept blocks. A spin lock: an allocator cannot use a lock that
    /// may allocate, and only large blocks, a few per op, come here.
    fn with<R>(&self, f: impl FnOnce(&mut Kept) -> R) -> R {
        while self
            .lock
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        // Safety: the lock is held until the end of this call.
        let out = f(unsafe { &mut *self.kept.get() });
        self.lock.store(false, Ordering::Release);
        out
    }

    /// Whether blocks of `layout` are kept when freed (and so worth looking for).
    fn keeps(layout: Layout) -> bool {
        (LARGE..=HUGE).contains(&layout.size())
    }

    /// A kept block of exactly `layout`, the most recently freed.
    fn take(&self, layout: Layout) -> Option<*mut u8> {
        if !Self::keeps(layout) {
            return None;
        }
        self.with(|kept| {
            let blocks = kept.blocks.get_mut(..kept.len)?;
            let i = blocks.iter().rposition(|&(_, l)| l == layout)?;
            let (ptr, _) = blocks.get(i).copied()?;
            blocks.get_mut(i..)?.rotate_left(1);
            kept.len -= 1;
            kept.bytes -= layout.size();
            Some(ptr as *mut u8)
        })
    }

    /// Keeps `ptr`, freeing the oldest blocks that no longer fit.
    fn keep(&self, ptr: *mut u8, layout: Layout) {
        self.with(|kept| {
            while kept.len == SLOTS || kept.bytes + layout.size() > CAPACITY {
                let Some(&(oldest, l)) = kept.blocks.first() else {
                    break;
                };
                kept.blocks.rotate_left(1);
                kept.len -= 1;
                kept.bytes -= l.size();
                // Safety: a kept block came from the system with its layout.
                unsafe { Base.dealloc(oldest as *mut u8, l) };
            }
            if let Some(slot) = kept.blocks.get_mut(kept.len) {
                *slot = (ptr as usize, layout);
                kept.len += 1;
                kept.bytes += layout.size();
            }
        })
    }
}

/// Where blocks of `size` bytes come from: the system for those over [`HUGE`] (glibc
/// maps each such block and unmaps it when freed, so a freed 80 MB value leaves the
/// process at once, where mimalloc would hold it a while), mimalloc for the rest.
fn base(size: usize) -> &'static dyn GlobalAlloc {
    if size > HUGE { &System } else { &Base }
}

// Safety: every block comes from `base(size)` for its size; a kept block is handed out
// only for the layout it was allocated with; `realloc` moves a block between the two
// bases by hand.
unsafe impl GlobalAlloc for Cached {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if let Some(ptr) = self.take(layout) {
            return ptr;
        }
        unsafe { base(layout.size()).alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if let Some(ptr) = self.take(layout) {
            unsafe { ptr.write_bytes(0, layout.size()) };
            return ptr;
        }
        unsafe { base(layout.size()).alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if Self::keeps(layout) {
            self.keep(ptr, layout);
        } else {
            unsafe { base(layout.size()).dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if (layout.size() > HUGE) == (new_size > HUGE) {
            return unsafe { base(new_size).realloc(ptr, layout, new_size) };
        }
        // Safety: the caller guarantees `new_size`, rounded up to the alignment, fits.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}
