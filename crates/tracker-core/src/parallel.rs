//! The threads behind large elementwise loops and reductions: a rayon pool of the
//! engine's own (the global pool is left to the program), built on first use with
//! [`num_threads`] threads.
//!
//! Work is split only where the split cannot change a result: elementwise loops cut
//! their output into chunks, and reductions combine blocks in an order fixed by the
//! shape alone, so every thread count gives the same bits. Elementwise loops over fewer
//! than 2^17 elements, and reductions over fewer than 2^18, stay on the calling thread,
//! where waking the pool would cost more than it saves.
//!
//! ```
//! use tracker_core::{Tracked, Value, num_threads};
//!
//! # fn main() -> tracker_core::Result<()> {
//! assert!(num_threads() >= 1);
//! // Large enough to be split between the threads, with the same result as one thread.
//! let x = Tracked::param(Value::from_vec(&[1 << 20], vec![0.5; 1 << 20])?);
//! assert_eq!(x.sum()?.value().item(), Some(524_288.0));
//! # Ok(())
//! # }
//! ```

use std::mem::MaybeUninit;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::error::Result;

/// Loops over fewer elements than this run on the calling thread. Waking the pool's
/// other thread took 15 to 30 µs on a virtual machine's two cores: there an addition of
/// 2^16 `f64` took as long split as on one thread (an `exp` gained a sixth), and from
/// 2^17 on every elementwise op gained. (Where waking is cheaper, 2^15 already gains.)
pub(crate) const PARALLEL_MIN: usize = 1 << 17;

/// A reduction's elements count this many times less toward [`PARALLEL_MIN`]: it reads
/// each once and writes nothing, so it has less work to share (a sum of 2^17 `f64`
/// took 17 µs on one thread and 30 split; of 2^19, 155 against 66).
pub(crate) const REDUCTION_SHARE: usize = 2;

/// The elements one task of an elementwise loop takes (a multiple of every lane count).
pub(crate) const CHUNK: usize = 1 << 12;

/// The variables read for the thread count, first set first.
const THREAD_VARIABLES: [&str; 3] = [
    "TRACKER_NUM_THREADS",
    "RAYON_NUM_THREADS",
    "OMP_NUM_THREADS",
];

/// How many threads the engine's loops use: `TRACKER_NUM_THREADS`, else
/// `RAYON_NUM_THREADS`, else `OMP_NUM_THREADS`, else the number of CPUs. A value that
/// is not a positive whole number is skipped. Read once, when first needed.
///
/// ```
/// assert!(tracker_core::num_threads() >= 1);
/// ```
pub fn num_threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| {
        THREAD_VARIABLES
            .iter()
            .find_map(|name| std::env::var(name).ok().and_then(|v| parse_count(&v)))
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    })
}

/// A thread count as the variables spell it; `OMP_NUM_THREADS` may list one per level
/// of nesting ("4,2"), and the first is ours.
fn parse_count(text: &str) -> Option<usize> {
    let first = text.split(',').next()?.trim();
    first.parse().ok().filter(|&n| n > 0)
}

/// The pool, when there is more than one thread and it could be built. In a child
/// forked after it was built there is none: the fork copied the pool but not its
/// threads, so work handed to it would never run.
fn pool() -> Option<&'static ThreadPool> {
    static POOL: OnceLock<(u32, Option<ThreadPool>)> = OnceLock::new();
    let (owner, pool) = POOL.get_or_init(|| {
        let pool = (num_threads() > 1).then(|| {
            ThreadPoolBuilder::new()
                .num_threads(num_threads())
                .thread_name(|k| format!("tracker-{k}"))
                .build()
                .ok()
        });
        (std::process::id(), pool.flatten())
    });
    pool.as_ref().filter(|_| *owner == std::process::id())
}

/// The pool, for `work` elements of work, when splitting them is worth it.
fn pool_for(work: usize) -> Option<&'static ThreadPool> {
    if work < PARALLEL_MIN || cores_taken() {
        return None;
    }
    pool()
}

/// Until when (in nanoseconds from [`clock_start`]) another library's threads keep the
/// other cores busy; see [`cores_busy_for`].
static BUSY_UNTIL: AtomicU64 = AtomicU64::new(0);

/// The instant the clock of [`BUSY_UNTIL`] counts from.
fn clock_start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// Says that another library's threads keep the other cores busy for `duration` from
/// now: until then, large loops run on the calling thread alone. A BLAS's idle workers
/// spin this way after each multithreaded call (OpenBLAS's for about 0.1 s), and a
/// loop split across the pool would wait on the half that shares a core with them
/// (W7, the backward pass of two matrix products, is 12% faster without the split).
///
/// ```
/// use std::time::Duration;
///
/// tracker_core::cores_busy_for(Duration::from_millis(1));
/// ```
pub fn cores_busy_for(duration: Duration) {
    let until = clock_start().elapsed().saturating_add(duration);
    let nanos = u64::try_from(until.as_nanos()).unwrap_or(u64::MAX);
    BUSY_UNTIL.fetch_max(nanos, Ordering::Relaxed);
}

/// Whether [`cores_busy_for`]'s time is not over yet.
fn cores_taken() -> bool {
    let until = BUSY_UNTIL.load(Ordering::Relaxed);
    until != 0 && u128::from(until) > clock_start().elapsed().as_nanos()
}

/// `a()` and `b()`, side by side on the pool when `work` elements make it worth it.
pub(crate) fn join<A, B, RA, RB>(work: usize, a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    match pool_for(work) {
        // Inside the pool already (a nested split), `install` just runs the closure.
        Some(pool) => pool.install(|| rayon::join(a, b)),
        None => (a(), b()),
    }
}

/// `f(start, chunk)` on `items` cut into chunks of `chunk_len` (the last may be
/// shorter), `start` being the chunk's first index; the chunks run on the pool when
/// `work` elements make it worth it, else `f` sees all of `items` at once.
pub(crate) fn for_each_chunk<T: Send>(
    items: &mut [T],
    chunk_len: usize,
    work: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    let chunk_len = chunk_len.max(1);
    match pool_for(work).filter(|_| items.len() > chunk_len) {
        Some(pool) => pool.install(|| {
            items
                .par_chunks_mut(chunk_len)
                .enumerate()
                .for_each(|(k, chunk)| f(k * chunk_len, chunk))
        }),
        None => f(0, items),
    }
}

/// A vector of `len` elements written by `fill(start, slots)` on chunks of [`CHUNK`]
/// slots (in parallel for long vectors). The memory is never zeroed first: each page
/// is touched once, by the thread that writes it. `op` names the operation in the
/// [`Error::Memory`](crate::Error::Memory) raised when the vector cannot be allocated.
pub(crate) fn filled<T: Copy + Default + Send>(
    len: usize,
    op: &'static str,
    fill: impl Fn(usize, &mut Slots<'_, T>) + Sync,
) -> Result<Vec<T>> {
    let mut out = crate::value::reserve(len, op)?;
    let spare = out.spare_capacity_mut();
    let spare = spare.get_mut(..len).unwrap_or_default();
    for_each_chunk(spare, CHUNK, len, |start, chunk| {
        let mut slots = Slots {
            slots: chunk,
            written: 0,
        };
        fill(start, &mut slots);
        slots.finish();
    });
    // SAFETY: the first `len` slots of the capacity were each written: every chunk
    // went through `Slots::finish`, which writes whatever `fill` left unwritten.
    unsafe { out.set_len(len) };
    Ok(out)
}

/// Uninitialised slots that a [`filled`] loop writes front to back.
pub(crate) struct Slots<'a, T> {
    slots: &'a mut [MaybeUninit<T>],
    written: usize,
}

impl<T: Copy + Default> Slots<'_, T> {
    /// How many slots there are.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Writes `values` into the next slots (as many as are left).
    #[inline(always)]
    pub(crate) fn extend_from_slice(&mut self, values: &[T]) {
        let free = self.slots.get_mut(self.written..).unwrap_or_default();
        let n = values.len().min(free.len());
        for (slot, &v) in free.iter_mut().zip(values) {
            slot.write(v);
        }
        self.written += n;
    }

    /// Fills the slots left `L` at a time, group `k` with `group(k)` (the last group
    /// takes as many of its values as there are slots).
    #[inline(always)]
    pub(crate) fn fill_groups<const L: usize>(&mut self, mut group: impl FnMut(usize) -> [T; L]) {
        let left = self.slots.get_mut(self.written..).unwrap_or_default();
        let mut groups = left.chunks_exact_mut(L);
        let mut k = 0;
        for slots in &mut groups {
            for (slot, v) in slots.iter_mut().zip(group(k)) {
                slot.write(v);
            }
            k += 1;
        }
        let rest = groups.into_remainder();
        if !rest.is_empty() {
            for (slot, v) in rest.iter_mut().zip(group(k)) {
                slot.write(v);
            }
        }
        self.written = self.slots.len();
    }

    /// Writes `value` into every slot left.
    pub(crate) fn fill(&mut self, value: T) {
        let left = self.slots.get_mut(self.written..).unwrap_or_default();
        left.iter_mut().for_each(|slot| {
            slot.write(value);
        });
        self.written = self.slots.len();
    }

    /// Writes the default value into the slots left, so that all are initialised.
    fn finish(&mut self) {
        self.fill(T::default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_parse_or_are_skipped() {
        assert_eq!(parse_count("2"), Some(2));
        assert_eq!(parse_count(" 3 "), Some(3));
        assert_eq!(parse_count("4,2"), Some(4));
        assert_eq!(parse_count("0"), None);
        assert_eq!(parse_count("abc"), None);
        assert_eq!(parse_count("-1"), None);
        assert_eq!(parse_count(""), None);
    }

    #[test]
    fn filled_writes_every_slot_in_order() {
        let len = 3 * CHUNK + 5;
        let v = filled(len, "test", |start, slots| {
            let values: Vec<usize> = (start..start + slots.len()).collect();
            slots.extend_from_slice(&values);
        });
        assert_eq!(v.ok(), Some((0..len).collect::<Vec<_>>()));
        // Slots left unwritten hold the default value.
        let v = filled(10, "test", |_, slots| slots.extend_from_slice(&[7, 7]));
        assert_eq!(v.ok(), Some(vec![7, 7, 0, 0, 0, 0, 0, 0, 0, 0]));
    }

    #[test]
    fn loops_stay_on_the_calling_thread_while_the_cores_are_busy() {
        cores_busy_for(Duration::from_millis(300));
        assert!(pool_for(usize::MAX).is_none());
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(pool_for(usize::MAX).is_some(), pool().is_some());
    }

    #[test]
    fn chunks_cover_the_items_once() {
        let mut items = vec![0usize; 10 * CHUNK + 3];
        for_each_chunk(&mut items, CHUNK, PARALLEL_MIN, |start, chunk| {
            for (k, item) in chunk.iter_mut().enumerate() {
                *item = start + k;
            }
        });
        assert!(items.iter().enumerate().all(|(k, &v)| k == v));
    }
}
