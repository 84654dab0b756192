//! Values: dense, row-major `f32` or `f64` buffers with a shape.
//!
//! A buffer is owned by Rust or borrowed from an external owner (a NumPy array kept
//! alive by the boundary), so inputs need not be copied. A 0-d value is stored inline,
//! which keeps scalar loops (`x[i]`, `sum(x)`) free of heap allocations.

use std::any::Any;
use std::cell::UnsafeCell;
use std::fmt;
use std::ptr::NonNull;
use std::sync::{Arc, Once};

use ndarray::{ArrayViewD, IxDyn};
use smallvec::SmallVec;

use crate::broadcast::BroadcastOffsets;
use crate::error::{Error, Result, shape_error};
use crate::num::Float;

/// A shape: the length of each axis (empty for a 0-d value). Up to four axes are
/// stored inline.
///
/// ```
/// use tracker_core::{Shape, Value};
///
/// # fn main() -> tracker_core::Result<()> {
/// let x = Value::from_vec(&[2, 3], vec![0.0; 6])?;
/// assert_eq!(Shape::from(x.shape()), Shape::from_slice(&[2, 3]));
/// # Ok(())
/// # }
/// ```
pub type Shape = SmallVec<[usize; 4]>;

/// The element type of a value. The order is NumPy's promotion order: `F32 < F64`.
///
/// ```
/// use tracker_core::{Dtype, Value};
///
/// assert_eq!(Value::scalar(1.0, Dtype::F32).dtype(), Dtype::F32);
/// assert!(Dtype::F32 < Dtype::F64);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dtype {
    /// 32-bit floats, NumPy's `float32`.
    F32,
    /// 64-bit floats, NumPy's `float64`.
    F64,
}

impl Dtype {
    /// NumPy's name for it, as errors and `dtype` attributes spell it.
    ///
    /// ```
    /// use tracker_core::Dtype;
    ///
    /// assert_eq!(Dtype::F32.name(), "float32");
    /// assert_eq!(Dtype::F64.name(), "float64");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "float32",
            Dtype::F64 => "float64",
        }
    }

    /// `np.result_type` of two float dtypes: the wider one. Ops on mixed dtypes
    /// compute in it.
    ///
    /// ```
    /// use tracker_core::Dtype;
    ///
    /// assert_eq!(Dtype::F32.promote(Dtype::F64), Dtype::F64);
    /// assert_eq!(Dtype::F32.promote(Dtype::F32), Dtype::F32);
    /// ```
    pub fn promote(self, other: Dtype) -> Dtype {
        self.max(other)
    }
}

/// Storage shared between a value, the tape and NumPy views.
pub(crate) enum Buffer<T> {
    Owned(Vec<T>),
    /// A smaller array broadcast (a sum's seed, a product with one): kept symbolic for
    /// the kernels and products that read it as such, written out on first other read.
    /// Boxed, so that every other buffer stays as small to move as before.
    Repeated(Box<Repeated<T>>),
    /// Memory owned elsewhere; `owner` keeps it alive and unchanged while this exists.
    Borrowed {
        ptr: NonNull<T>,
        len: usize,
        _owner: Box<dyn Any + Send + Sync>,
    },
}

// SAFETY: a borrowed buffer is only read, and its owner (which is Send + Sync) keeps the
// memory alive; a repeated one is written once, behind its `Once`, before any read of
// its elements; the element types are plain floats.
unsafe impl<T: Send + Sync> Send for Buffer<T> {}
// SAFETY: as above: shared access is read-only, but for that one guarded write.
unsafe impl<T: Send + Sync> Sync for Buffer<T> {}

impl<T: Copy> Buffer<T> {
    /// The number of elements (written out or not).
    #[inline]
    fn len(&self) -> usize {
        match self {
            Buffer::Owned(v) => v.len(),
            Buffer::Repeated(r) => r.to.iter().product(),
            Buffer::Borrowed { len, .. } => *len,
        }
    }

    #[inline]
    fn as_slice(&self) -> &[T] {
        match self {
            Buffer::Owned(v) => v,
            Buffer::Repeated(r) => r.elements(),
            // SAFETY: the owner guarantees `len` readable, aligned elements at `ptr`
            // for as long as it lives, and it lives as long as `self`.
            Buffer::Borrowed { ptr, len, .. } => unsafe {
                std::slice::from_raw_parts(ptr.as_ptr(), *len)
            },
        }
    }
}

/// The elements of `source` (of shape `from`) broadcast to the shape `to`, written out
/// only when first read as a whole: a sum's seed, and a product with it, that kernels
/// read through [`Array::broadcast_source`] never take the memory bandwidth of their
/// full size. The room is reserved when made, so writing can no longer fail.
pub(crate) struct Repeated<T> {
    source: Vec<T>,
    from: Shape,
    to: Shape,
    elements: UnsafeCell<Vec<T>>,
    written: Once,
}

impl<T: Copy> Repeated<T> {
    #[inline]
    fn elements(&self) -> &[T] {
        if !self.written.is_completed() {
            self.write_out_once();
        }
        // SAFETY: written (`is_completed` orders that write before this read); never
        // written again while `self` is shared.
        unsafe { &*self.elements.get() }
    }

    /// Kept out of line, so that reading the elements of other buffers stays short.
    #[cold]
    #[inline(never)]
    fn write_out_once(&self) {
        self.written.call_once(|| {
            // SAFETY: `call_once` runs this once, before any reference to the elements
            // exists (they are only handed out after it).
            let out = unsafe { &mut *self.elements.get() };
            self.write_out(out);
        });
    }

    /// The elements, taken out to be owned (written out first if they were not).
    fn take_elements(&mut self) -> Vec<T> {
        let mut out = std::mem::take(self.elements.get_mut());
        if !self.written.is_completed() {
            self.write_out(&mut out);
        }
        out
    }

    /// Each row of `to` (its last axis) from the row of `source` it broadcasts from,
    /// into `out`'s reserved room.
    fn write_out(&self, out: &mut Vec<T>) {
        fn rows(shape: &[usize]) -> (&[usize], usize) {
            match shape.split_last() {
                Some((&width, outer)) => (outer, width),
                None => (&[], 1),
            }
        }
        let ((outer, width), (source_outer, source_width)) = (rows(&self.to), rows(&self.from));
        for row in BroadcastOffsets::new(source_outer, outer) {
            let start = row * source_width;
            match self.source.get(start..start + source_width) {
                Some(&[v]) => out.resize(out.len() + width, v),
                Some(values) => out.extend_from_slice(values),
                None => return,
            }
        }
    }
}

#[derive(Clone)]
enum Data<T> {
    Scalar(T),
    Shared(Arc<Buffer<T>>),
}

/// A dense row-major array of `T` (`f32` or `f64`): the typed buffer inside a
/// [`Value`]. Clones share the buffer; writing through [`Array::make_mut`] copies it
/// first if it is shared.
///
/// ```
/// use tracker_core::Array;
///
/// # fn main() -> tracker_core::Result<()> {
/// let a = Array::from_vec(&[2, 2], vec![1.0f32, 2.0, 3.0, 4.0])?;
/// assert_eq!(a.shape(), &[2, 2]);
/// assert_eq!(a.as_slice(), &[1.0, 2.0, 3.0, 4.0]);
/// # Ok(())
/// # }
/// ```
pub struct Array<T> {
    shape: Shape,
    data: Data<T>,
}

impl<T: Clone> Clone for Array<T> {
    /// Shares the buffer and copies the shape: values are cloned on every op and at
    /// every step of a sweep, and `SmallVec`'s own clone goes through its generic
    /// `extend` (5% of a loop of scalar ops).
    fn clone(&self) -> Self {
        Array {
            shape: copy_shape(&self.shape),
            data: self.data.clone(),
        }
    }
}

/// `shape` copied: a fixed-length copy of the inline room when it fits there.
pub(crate) fn copy_shape(shape: &[usize]) -> Shape {
    const INLINE: usize = 4;
    if shape.len() > INLINE {
        return Shape::from_slice(shape);
    }
    let mut room = [0; INLINE];
    for (k, d) in room.iter_mut().enumerate() {
        *d = shape.get(k).copied().unwrap_or(0);
    }
    Shape::from_buf_and_len(room, shape.len())
}

/// The number of elements of `shape`, or an error when it overflows.
pub(crate) fn size_of(shape: &[usize], op: &'static str) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or(Error::Memory {
            op,
            bytes: usize::MAX,
        })
}

/// Collects `items` into a vector whose allocation fails as `Error::Memory` instead of
/// aborting.
pub(crate) fn try_collect<T>(
    items: impl ExactSizeIterator<Item = T>,
    op: &'static str,
) -> Result<Vec<T>> {
    let mut v = reserve(items.len(), op)?;
    v.extend(items);
    Ok(v)
}

/// A vector of `len` copies of `fill`, failing with `Error::Memory` instead of aborting.
pub(crate) fn alloc<T: Copy>(len: usize, fill: T, op: &'static str) -> Result<Vec<T>> {
    let mut v = reserve(len, op)?;
    v.resize(len, fill);
    Ok(v)
}

/// An empty vector with room for `len` elements, failing with `Error::Memory` instead of
/// aborting.
pub(crate) fn reserve<T>(len: usize, op: &'static str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| Error::Memory {
        op,
        bytes: len.saturating_mul(std::mem::size_of::<T>()),
    })?;
    Ok(v)
}

impl<T: Float> Array<T> {
    /// A 0-d array holding `value` (stored inline, without a heap allocation).
    ///
    /// ```
    /// use tracker_core::Array;
    ///
    /// let a = Array::scalar(2.5f64);
    /// assert_eq!(a.shape(), &[] as &[usize]);
    /// assert_eq!(a.as_slice(), &[2.5]);
    /// ```
    pub fn scalar(value: T) -> Self {
        Array {
            shape: Shape::new(),
            data: Data::Scalar(value),
        }
    }

    /// An array of `shape` over `values` (row-major), taking ownership of the vector.
    /// Fails with [`Error::Shape`] when the number of values does not fill the shape.
    ///
    /// ```
    /// use tracker_core::Array;
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let a = Array::from_vec(&[2, 3], vec![0.0f64; 6])?;
    /// assert_eq!(a.len(), 6);
    /// assert!(Array::from_vec(&[2, 3], vec![0.0f64; 5]).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_vec(shape: &[usize], values: Vec<T>) -> Result<Self> {
        let size = size_of(shape, "array")?;
        if size != values.len() {
            return Err(shape_error(
                "array",
                format!(
                    "{} values do not fill shape {shape:?} ({size} elements)",
                    values.len()
                ),
            ));
        }
        if shape.is_empty()
            && let Some(&v) = values.first()
        {
            return Ok(Self::scalar(v));
        }
        Ok(Array {
            shape: copy_shape(shape),
            data: Data::Shared(Arc::new(Buffer::Owned(values))),
        })
    }

    /// An array over memory that `owner` keeps alive and unchanged: no copy is made
    /// (the Python boundary lends NumPy arrays this way).
    ///
    /// ```
    /// use std::ptr::NonNull;
    /// use std::sync::Arc;
    ///
    /// use tracker_core::Array;
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let data = Arc::new(vec![1.0f64, 2.0, 3.0]);
    /// let ptr = NonNull::new(data.as_ptr().cast_mut()).expect("a vector's pointer");
    /// // SAFETY: the owner (a clone of `data`) keeps the three values alive, and nothing
    /// // writes to them.
    /// let a = unsafe { Array::borrowed(&[3], ptr, Box::new(data.clone()))? };
    /// assert_eq!(a.as_slice(), &[1.0, 2.0, 3.0]);
    /// assert_eq!(a.as_slice().as_ptr(), data.as_ptr());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Safety
    /// `ptr` must point to `size_of(shape)` aligned, initialised elements that stay
    /// valid and unmodified for as long as `owner` lives.
    pub unsafe fn borrowed(
        shape: &[usize],
        ptr: NonNull<T>,
        owner: Box<dyn Any + Send + Sync>,
    ) -> Result<Self> {
        let len = size_of(shape, "array")?;
        if shape.is_empty() {
            // SAFETY: the caller guarantees one readable element.
            return Ok(Self::scalar(unsafe { *ptr.as_ptr() }));
        }
        Ok(Array {
            shape: copy_shape(shape),
            data: Data::Shared(Arc::new(Buffer::Borrowed {
                ptr,
                len,
                _owner: owner,
            })),
        })
    }

    /// An array of `shape` filled with `value`. `op` names the operation in the
    /// [`Error::Memory`] raised when the buffer cannot be allocated.
    ///
    /// ```
    /// use tracker_core::Array;
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let a = Array::full(&[2, 2], 7.0f32, "full")?;
    /// assert_eq!(a.as_slice(), &[7.0; 4]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn full(shape: &[usize], value: T, op: &'static str) -> Result<Self> {
        if shape.is_empty() {
            return Ok(Self::scalar(value));
        }
        Self::repeated(vec![value], &[], shape, op)
    }

    /// `source`, of shape `from`, broadcast to the shape `to`: kept symbolic (see
    /// [`Array::broadcast_source`]) until its elements are read, with room reserved for
    /// them now. `op` names the operation in the error raised when `from` does not
    /// broadcast to `to`, or the room cannot be allocated.
    ///
    /// ```
    /// use tracker_core::Array;
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let columns = Array::repeated(vec![1.0f64, 2.0], &[2, 1], &[2, 3], "broadcast_to")?;
    /// assert_eq!(columns.as_slice(), &[1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
    /// assert!(Array::repeated(vec![1.0f64, 2.0], &[2], &[2, 3], "broadcast_to").is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn repeated(
        source: Vec<T>,
        from: &[usize],
        to: &[usize],
        op: &'static str,
    ) -> Result<Self> {
        if size_of(from, op)? != source.len()
            || crate::broadcast::broadcast_shapes(op, from, to)?.as_slice() != to
        {
            return Err(shape_error(
                op,
                format!(
                    "cannot broadcast {} elements of shape {from:?} to shape {to:?}",
                    source.len()
                ),
            ));
        }
        let elements = reserve(size_of(to, op)?, op)?;
        let repeated = Repeated {
            source,
            from: copy_shape(from),
            to: copy_shape(to),
            elements: UnsafeCell::new(elements),
            written: Once::new(),
        };
        Ok(Array {
            shape: copy_shape(to),
            data: Data::Shared(Arc::new(Buffer::Repeated(Box::new(repeated)))),
        })
    }

    /// The smaller array this one is a broadcast of, as its elements and its shape
    /// (aligned with this one's last axes), when it was made by [`Array::repeated`] and
    /// has kept its shape: what the elementwise kernels read in place of the elements.
    ///
    /// ```
    /// use tracker_core::Array;
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let rows = Array::repeated(vec![1.0f64, 2.0], &[1, 2], &[3, 2], "broadcast_to")?;
    /// assert_eq!(rows.broadcast_source(), Some((&[1.0, 2.0][..], &[1, 2][..])));
    /// assert_eq!(rows.reshaped(&[6])?.broadcast_source(), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn broadcast_source(&self) -> Option<(&[T], &[usize])> {
        match &self.data {
            Data::Shared(b) => match &**b {
                Buffer::Repeated(r) if r.to == self.shape => Some((&r.source, &r.from)),
                _ => None,
            },
            Data::Scalar(_) => None,
        }
    }

    /// The element of a 0-d array stored inline: what the kernels' shortcuts for loops
    /// over scalars take.
    pub(crate) fn zero_dim(&self) -> Option<&T> {
        match (&self.data, self.shape.is_empty()) {
            (Data::Scalar(v), true) => Some(v),
            _ => None,
        }
    }

    /// The one value every element holds, when that is known without reading them: a
    /// single element's, or that of an array made by [`Array::full`] (or repeated from
    /// one element) and not written to since.
    ///
    /// ```
    /// use tracker_core::Array;
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// assert_eq!(Array::full(&[1000], 1.0f64, "full")?.uniform(), Some(&1.0));
    /// assert_eq!(Array::from_vec(&[2], vec![1.0f64, 1.0])?.uniform(), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn uniform(&self) -> Option<&T> {
        match &self.data {
            Data::Scalar(v) => Some(v),
            Data::Shared(b) => match &**b {
                Buffer::Repeated(r) => match r.source.as_slice() {
                    [v] => Some(v),
                    _ => None,
                },
                _ => match b.as_slice() {
                    [v] => Some(v),
                    _ => None,
                },
            },
        }
    }

    /// The length of each axis.
    ///
    /// ```
    /// use tracker_core::Array;
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// assert_eq!(Array::from_vec(&[3, 1], vec![0.0f64; 3])?.shape(), &[3, 1]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The number of elements (1 for a 0-d array).
    ///
    /// ```
    /// use tracker_core::Array;
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// assert_eq!(Array::from_vec(&[2, 3], vec![0.0f64; 6])?.len(), 6);
    /// assert_eq!(Array::scalar(1.0f64).len(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn len(&self) -> usize {
        match &self.data {
            Data::Scalar(_) => 1,
            Data::Shared(b) => b.len(),
        }
    }

    /// Whether the array has no elements (some axis has length 0).
    ///
    /// ```
    /// use tracker_core::Array;
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// assert!(Array::<f64>::from_vec(&[2, 0], vec![])?.is_empty());
    /// assert!(!Array::scalar(0.0f64).is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements in row-major order.
    ///
    /// ```
    /// use tracker_core::Array;
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let a = Array::from_vec(&[2, 2], vec![1.0f64, 2.0, 3.0, 4.0])?;
    /// assert_eq!(a.as_slice()[2], 3.0); // row 1, column 0
    /// # Ok(())
    /// # }
    /// ```
    pub fn as_slice(&self) -> &[T] {
        match &self.data {
            Data::Scalar(v) => std::slice::from_ref(v),
            Data::Shared(b) => b.as_slice(),
        }
    }

    /// The elements for writing: in place when this value is their only owner,
    /// otherwise after copying them (copy on write), so other holders of the buffer
    /// never see the change.
    ///
    /// ```
    /// use tracker_core::Array;
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let a = Array::from_vec(&[2], vec![1.0f64, 2.0])?;
    /// let mut b = a.clone();
    /// b.make_mut()?[0] = 10.0;
    /// assert_eq!(b.as_slice(), &[10.0, 2.0]);
    /// assert_eq!(a.as_slice(), &[1.0, 2.0]); // `a` kept its buffer
    /// # Ok(())
    /// # }
    /// ```
    pub fn make_mut(&mut self) -> Result<&mut [T]> {
        if self.unique_mut().is_none() {
            self.data = self.map(|v| v)?.data;
        }
        self.unique_mut().ok_or_else(|| Error::Usage {
            message: "internal: copy on write failed".into(),
        })
    }

    /// The elements for writing when this value is their only owner (no copy made).
    pub(crate) fn unique_mut(&mut self) -> Option<&mut [T]> {
        match &mut self.data {
            Data::Scalar(v) => Some(std::slice::from_mut(v)),
            Data::Shared(arc) => {
                let buffer = Arc::get_mut(arc)?;
                if let Buffer::Repeated(r) = buffer {
                    // Written to, it is no longer a broadcast.
                    *buffer = Buffer::Owned(r.take_elements());
                }
                match buffer {
                    Buffer::Owned(v) => Some(v.as_mut_slice()),
                    _ => None,
                }
            }
        }
    }

    /// The same elements under another shape of the same size (no copy).
    ///
    /// ```
    /// use tracker_core::Array;
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let a = Array::from_vec(&[2, 3], vec![0.0f64; 6])?;
    /// let b = a.reshaped(&[3, 2])?;
    /// assert_eq!(b.shape(), &[3, 2]);
    /// assert!(a.reshaped(&[4]).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn reshaped(&self, shape: &[usize]) -> Result<Self> {
        let size = size_of(shape, "reshape")?;
        if size != self.len() {
            return Err(shape_error(
                "reshape",
                format!(
                    "cannot reshape an array of shape {:?} into shape {shape:?}",
                    self.shape
                ),
            ));
        }
        match (&self.data, shape.is_empty()) {
            (Data::Shared(_), false) => Ok(Array {
                shape: copy_shape(shape),
                data: self.data.clone(),
            }),
            _ => Self::from_vec(shape, self.as_slice().to_vec()),
        }
    }

    /// An [`ndarray`] view of the elements, for computing with ndarray's methods.
    ///
    /// ```
    /// use tracker_core::Array;
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let a = Array::from_vec(&[2, 2], vec![1.0f64, 2.0, 3.0, 4.0])?;
    /// let v = a.view()?;
    /// assert_eq!(v[[1, 0]], 3.0);
    /// assert_eq!(v.sum(), 10.0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn view(&self) -> Result<ArrayViewD<'_, T>> {
        ArrayViewD::from_shape(IxDyn(&self.shape), self.as_slice())
            .map_err(|e| shape_error("view", e.to_string()))
    }

    /// A new array of the same shape with `f` applied to each element.
    ///
    /// ```
    /// use tracker_core::Array;
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let a = Array::from_vec(&[3], vec![1.0f64, 2.0, 3.0])?;
    /// assert_eq!(a.map(|v| v * v)?.as_slice(), &[1.0, 4.0, 9.0]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn map(&self, f: impl Fn(T) -> T + Sync) -> Result<Self> {
        // Through `map_slices`' blocks, in a loop compiled for AVX2: written element by
        // element into the output, the loop did not vectorise (a negation of 16384
        // elements took 23 us, NumPy's 2.6).
        self.map_slices(|x, y| {
            crate::vmath::on_avx2(
                #[inline(always)]
                || y.iter_mut().zip(x).for_each(|(o, &v)| *o = f(v)),
            );
        })
    }

    /// A new array of the same shape, written by `f(input, output)` on successive
    /// blocks of the elements (through a buffer on the stack, so the output is written
    /// once, as `map` writes it). Long arrays are cut into chunks that run in parallel.
    ///
    /// ```
    /// use tracker_core::Array;
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let a = Array::from_vec(&[3], vec![1.0f64, 2.0, 3.0])?;
    /// let doubled = a.map_slices(|x, y| {
    ///     for (o, &v) in y.iter_mut().zip(x) {
    ///         *o = 2.0 * v;
    ///     }
    /// })?;
    /// assert_eq!(doubled.as_slice(), &[2.0, 4.0, 6.0]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn map_slices(&self, f: impl Fn(&[T], &mut [T]) + Sync) -> Result<Self> {
        const BLOCK: usize = 256;
        let input = self.as_slice();
        let out = crate::parallel::filled(input.len(), "map", |start, out| {
            let mut buffer = [T::zero(); BLOCK];
            let chunk = input.get(start..start + out.len()).unwrap_or_default();
            for block in chunk.chunks(BLOCK) {
                if let Some(dst) = buffer.get_mut(..block.len()) {
                    f(block, dst);
                    out.extend_from_slice(dst);
                }
            }
        })?;
        Self::from_vec(&self.shape, out)
    }

    /// The elements converted to another float type, in a new buffer.
    ///
    /// ```
    /// use tracker_core::Array;
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let a = Array::from_vec(&[2], vec![0.5f64, 1.0 / 3.0])?;
    /// let b = a.cast::<f32>()?;
    /// assert_eq!(b.as_slice(), &[0.5f32, 1.0 / 3.0]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn cast<U: Float>(&self) -> Result<Array<U>> {
        let out = try_collect(
            self.as_slice().iter().map(|&v| U::from_f64(v.to_f64())),
            "astype",
        )?;
        Array::from_vec(&self.shape, out)
    }

    /// Whether two arrays share one buffer (for tests of zero-copy paths). 0-d arrays,
    /// stored inline, share nothing.
    ///
    /// ```
    /// use tracker_core::Array;
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let a = Array::from_vec(&[4], vec![1.0f64, 2.0, 3.0, 4.0])?;
    /// assert!(a.shares_buffer(&a.reshaped(&[2, 2])?));
    /// assert!(!a.shares_buffer(&a.map(|v| v)?));
    /// # Ok(())
    /// # }
    /// ```
    pub fn shares_buffer(&self, other: &Self) -> bool {
        match (&self.data, &other.data) {
            (Data::Shared(a), Data::Shared(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// Whether the elements are memory owned elsewhere (a NumPy array's), which its
    /// owner may change later: such a buffer is never handed back as a gradient.
    pub(crate) fn borrows(&self) -> bool {
        matches!(&self.data, Data::Shared(b) if matches!(**b, Buffer::Borrowed { .. }))
    }
}

/// A value of either float dtype: what the tape stores and the ops compute on. Cheap
/// to clone (the buffer is shared).
///
/// ```
/// use tracker_core::{Dtype, Value};
///
/// # fn main() -> tracker_core::Result<()> {
/// let x = Value::from_vec(&[2], vec![1.0, 2.0])?;
/// assert_eq!(x.dtype(), Dtype::F64);
/// match x.cast(Dtype::F32)? {
///     Value::F32(a) => assert_eq!(a.as_slice(), &[1.0f32, 2.0]),
///     Value::F64(_) => unreachable!("cast to float32"),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub enum Value {
    /// A `float32` array.
    F32(Array<f32>),
    /// A `float64` array.
    F64(Array<f64>),
}

/// The element types of a [`Value`]: reach the typed array inside one, or wrap one.
pub(crate) trait Element: crate::num::Float {
    fn array(v: &Value) -> Option<&Array<Self>>;
    fn value(a: Array<Self>) -> Value;
}

impl Element for f32 {
    fn array(v: &Value) -> Option<&Array<f32>> {
        match v {
            Value::F32(a) => Some(a),
            Value::F64(_) => None,
        }
    }

    fn value(a: Array<f32>) -> Value {
        Value::F32(a)
    }
}

impl Element for f64 {
    fn array(v: &Value) -> Option<&Array<f64>> {
        match v {
            Value::F64(a) => Some(a),
            Value::F32(_) => None,
        }
    }

    fn value(a: Array<f64>) -> Value {
        Value::F64(a)
    }
}

/// Runs `$body` with `$a` bound to the typed array inside a `Value`, wrapping a typed
/// result back into a `Value` of the same dtype.
#[macro_export]
#[doc(hidden)]
macro_rules! map_value {
    ($v:expr, $a:ident => $body:expr) => {
        match $v {
            $crate::Value::F32($a) => $crate::Value::F32($body),
            $crate::Value::F64($a) => $crate::Value::F64($body),
        }
    };
}

/// Runs `$body` with `$a` bound to the typed array inside a `Value`.
#[macro_export]
#[doc(hidden)]
macro_rules! with_value {
    ($v:expr, $a:ident => $body:expr) => {
        match $v {
            $crate::Value::F32($a) => $body,
            $crate::Value::F64($a) => $body,
        }
    };
}

impl Value {
    /// A 0-d value of `dtype` (rounded to `f32` for [`Dtype::F32`]).
    ///
    /// ```
    /// use tracker_core::{Dtype, Value};
    ///
    /// let x = Value::scalar(0.5, Dtype::F32);
    /// assert_eq!((x.shape(), x.dtype(), x.item()), (&[] as &[usize], Dtype::F32, Some(0.5)));
    /// ```
    pub fn scalar(value: f64, dtype: Dtype) -> Value {
        match dtype {
            Dtype::F32 => Value::F32(Array::scalar(value as f32)),
            Dtype::F64 => Value::F64(Array::scalar(value)),
        }
    }

    /// A `float64` value of `shape` over `values` (row-major), without a copy.
    ///
    /// ```
    /// use tracker_core::Value;
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let x = Value::from_vec(&[2, 2], vec![1.0, 2.0, 3.0, 4.0])?;
    /// assert_eq!(x.shape(), &[2, 2]);
    /// assert!(Value::from_vec(&[3], vec![1.0]).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_vec(shape: &[usize], values: Vec<f64>) -> Result<Value> {
        Ok(Value::F64(Array::from_vec(shape, values)?))
    }

    /// A value of `shape` and `dtype` filled with `value`; `op` names the operation in
    /// the error if the buffer cannot be allocated.
    ///
    /// ```
    /// use tracker_core::{Dtype, Value};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let ones = Value::full(&[2, 3], 1.0, Dtype::F32, "ones")?;
    /// assert_eq!(ones.to_f64_vec(), vec![1.0; 6]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn full(shape: &[usize], value: f64, dtype: Dtype, op: &'static str) -> Result<Value> {
        Ok(match dtype {
            Dtype::F32 => Value::F32(Array::full(shape, value as f32, op)?),
            Dtype::F64 => Value::F64(Array::full(shape, value, op)?),
        })
    }

    /// The element type.
    ///
    /// ```
    /// use tracker_core::{Dtype, Value};
    ///
    /// assert_eq!(Value::scalar(1.0, Dtype::F32).dtype(), Dtype::F32);
    /// ```
    pub fn dtype(&self) -> Dtype {
        match self {
            Value::F32(_) => Dtype::F32,
            Value::F64(_) => Dtype::F64,
        }
    }

    /// The length of each axis.
    ///
    /// ```
    /// use tracker_core::Value;
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// assert_eq!(Value::from_vec(&[1, 3], vec![0.0; 3])?.shape(), &[1, 3]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn shape(&self) -> &[usize] {
        with_value!(self, a => a.shape())
    }

    /// The number of elements (1 for a 0-d value).
    ///
    /// ```
    /// use tracker_core::Value;
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// assert_eq!(Value::from_vec(&[2, 3], vec![0.0; 6])?.len(), 6);
    /// # Ok(())
    /// # }
    /// ```
    pub fn len(&self) -> usize {
        with_value!(self, a => a.len())
    }

    /// Whether the value has no elements.
    ///
    /// ```
    /// use tracker_core::Value;
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// assert!(Value::from_vec(&[0], vec![])?.is_empty());
    /// assert!(!Value::from_vec(&[1], vec![0.0])?.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value converted to `dtype` (shared, not copied, when it already has it).
    ///
    /// ```
    /// use tracker_core::{Dtype, Value};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let x = Value::from_vec(&[2], vec![0.1, 0.2])?;
    /// let y = x.cast(Dtype::F32)?;
    /// assert_eq!(y.dtype(), Dtype::F32);
    /// assert_eq!(y.to_f64_vec(), vec![0.1f32 as f64, 0.2f32 as f64]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn cast(&self, dtype: Dtype) -> Result<Value> {
        Ok(match (self, dtype) {
            (Value::F32(a), Dtype::F64) => Value::F64(a.cast()?),
            (Value::F64(a), Dtype::F32) => Value::F32(a.cast()?),
            _ => self.clone(),
        })
    }

    /// A copy in a new buffer that this value alone owns.
    ///
    /// ```
    /// use tracker_core::Value;
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let (Value::F64(a), Value::F64(b)) = (
    ///     Value::from_vec(&[2], vec![1.0, 2.0])?,
    ///     Value::from_vec(&[2], vec![1.0, 2.0])?.copied()?,
    /// ) else {
    ///     unreachable!("both are float64")
    /// };
    /// assert_eq!(a.as_slice(), b.as_slice());
    /// assert!(!a.shares_buffer(&b));
    /// # Ok(())
    /// # }
    /// ```
    pub fn copied(&self) -> Result<Value> {
        Ok(map_value!(self, a => a.map(|v| v)?))
    }

    /// Whether the elements are memory owned elsewhere (see [`Array`]'s `borrows`).
    pub(crate) fn borrows(&self) -> bool {
        match self {
            Value::F32(a) => a.borrows(),
            Value::F64(a) => a.borrows(),
        }
    }

    /// The same elements under another shape of the same size (no copy).
    ///
    /// ```
    /// use tracker_core::Value;
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let x = Value::from_vec(&[6], vec![0.0; 6])?;
    /// assert_eq!(x.reshaped(&[2, 3])?.shape(), &[2, 3]);
    /// assert!(x.reshaped(&[4]).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn reshaped(&self, shape: &[usize]) -> Result<Value> {
        Ok(map_value!(self, a => a.reshaped(shape)?))
    }

    /// The elements as `f64`, in row-major order (for tests and display).
    ///
    /// ```
    /// use tracker_core::{Dtype, Value};
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// let x = Value::full(&[2], 0.25, Dtype::F32, "full")?;
    /// assert_eq!(x.to_f64_vec(), vec![0.25, 0.25]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn to_f64_vec(&self) -> Vec<f64> {
        with_value!(self, a => a.as_slice().iter().map(|v| v.to_f64()).collect())
    }

    /// The only element of a one-element value (of any shape), as `f64`; `None` when
    /// the value has more or fewer elements.
    ///
    /// ```
    /// use tracker_core::Value;
    ///
    /// # fn main() -> tracker_core::Result<()> {
    /// assert_eq!(Value::from_vec(&[1, 1], vec![3.0])?.item(), Some(3.0));
    /// assert_eq!(Value::from_vec(&[2], vec![3.0, 4.0])?.item(), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn item(&self) -> Option<f64> {
        with_value!(self, a => match a.as_slice() {
            [v] => Some(v.to_f64()),
            _ => None,
        })
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        with_value!(self, a => write!(f, "{}{:?}{:?}", self.dtype().name(), a.shape(), a.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl<T: Float> Array<T> {
        /// Whether the elements were written out (always, but for an
        /// [`Array::repeated`] not read as a whole yet).
        pub(crate) fn written_out(&self) -> bool {
            match &self.data {
                Data::Shared(b) => match &**b {
                    Buffer::Repeated(r) => r.written.is_completed(),
                    _ => true,
                },
                Data::Scalar(_) => true,
            }
        }
    }

    /// `source` (counting from 1) broadcast to `to`, element by element.
    fn naive(from: &[usize], to: &[usize]) -> Vec<f64> {
        BroadcastOffsets::new(from, to)
            .map(|k| k as f64 + 1.0)
            .collect()
    }

    fn repeated(from: &[usize], to: &[usize]) -> Result<Array<f64>> {
        let len = from.iter().product();
        Array::repeated((1..=len).map(|k| k as f64).collect(), from, to, "test")
    }

    /// Rows repeated, columns repeated, a row broadcast over new axes, a batch, one
    /// value, and no elements: each written out as the broadcast it stands for, the
    /// first time it is read as a whole, and not before.
    #[test]
    fn repeated_arrays_write_out_their_broadcast() -> Result<()> {
        let cases: [(&[usize], &[usize]); 7] = [
            (&[2, 1], &[2, 3]),
            (&[1, 3], &[4, 3]),
            (&[3], &[2, 5, 3]),
            (&[2, 1, 3], &[2, 4, 3]),
            (&[], &[2, 2]),
            (&[1, 1], &[0, 3]),
            (&[2, 3], &[2, 3]),
        ];
        for (from, to) in cases {
            let a = repeated(from, to)?;
            assert_eq!(a.len(), to.iter().product::<usize>(), "{from:?} to {to:?}");
            assert_eq!(a.shape(), to);
            assert!(!a.written_out(), "{from:?} to {to:?}: written out early");
            assert_eq!(a.as_slice(), naive(from, to), "{from:?} to {to:?}");
            assert!(a.written_out());
            // Under another shape it is read as its elements.
            let flat = a.reshaped(&[a.len()])?;
            assert_eq!(flat.broadcast_source(), None);
            assert_eq!(flat.as_slice(), naive(from, to));
        }
        assert!(repeated(&[2], &[3]).is_err());
        assert!(repeated(&[2, 3], &[3]).is_err());
        Ok(())
    }

    /// Written to, a repeated array becomes plain elements: in place when it is their
    /// only owner, and without changing a clone that shares them.
    #[test]
    fn writing_to_a_repeated_array_copies_it_on_write() -> Result<()> {
        let mut only = repeated(&[2, 1], &[2, 2])?;
        if let Some(v) = only.make_mut()?.first_mut() {
            *v = 9.0;
        }
        assert_eq!(only.as_slice(), &[9.0, 1.0, 2.0, 2.0]);
        assert_eq!(only.broadcast_source(), None);
        let shared = repeated(&[1, 2], &[2, 2])?;
        let mut copy = shared.clone();
        if let Some(v) = copy.make_mut()?.last_mut() {
            *v = 9.0;
        }
        assert_eq!(copy.as_slice(), &[1.0, 2.0, 1.0, 9.0]);
        assert_eq!(shared.as_slice(), &[1.0, 2.0, 1.0, 2.0]);
        assert_eq!(shared.uniform(), None);
        assert_eq!(Array::full(&[3, 2], 4.0f64, "test")?.uniform(), Some(&4.0));
        Ok(())
    }
}
