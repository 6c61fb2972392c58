//! Native kernels of the CPU backend for the ops that are not fused elementwise loops:
//! contractions through the `gemm` crate, convolution (im2col or direct GEMM) and its
//! gradients, pooling and its gradient, row reductions, strided copies for movement ops, and
//! gathers.
//!
//! Kernels work on raw pointers into the run's arena (the executor has sized every buffer from
//! the bound shapes), and split their outer loops over the persistent rayon pool when the work
//! is large enough to pay for the split.

pub mod conv;
pub mod conv_backward;
pub mod conv_direct;
pub mod copy;
pub mod gather;
pub mod matmul;
pub mod packed;
pub mod pool;
pub mod pool_backward;
pub mod reduce;

/// A raw pointer that may cross to the pool's threads. Each task writes a disjoint part of the
/// buffer it points into; the executor guarantees the buffer outlives the call.
#[derive(Clone, Copy)]
pub struct SendPtr<T>(pub *mut T);

// SAFETY: see the type's comment; tasks never write overlapping elements.
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The pointer (a method, so closures capture the whole `SendPtr`, not the raw field).
    pub fn get(self) -> *mut T {
        self.0
    }

    /// The pointer `count` elements further on.
    ///
    /// # Safety
    /// The result must stay inside the buffer.
    pub unsafe fn add(self, count: usize) -> *mut T {
        self.0.add(count)
    }
}

/// Work that a contraction hands over a finished part of its output while that part is still
/// in cache: called once for each contiguous range `(first flat index, length)`, the ranges
/// covering the output exactly once between them, possibly from several threads at once.
pub type Epilogue<'a> = &'a (dyn Fn(usize, usize) + Sync);

/// Below this many floating-point operations a kernel runs on the calling thread: splitting
/// costs a few microseconds of wake-up and synchronization.
pub const PARALLEL_WORK: usize = 1 << 16;

/// How many threads the pool has (the cores, unless `RAYON_NUM_THREADS` or `--threads` says).
pub fn threads() -> usize {
    rayon::current_num_threads()
}

/// Runs `f` on a thread of the pool (at once when already on one), so that a program's serial
/// stretches and its parallel kernels share the pool's threads: the calling thread sleeps
/// meanwhile instead of being one more thread that wants a core while the pool's idle workers
/// spin between kernels. Measured on 2 cores, convnet at batch 1: 1.97 ms with the kernels
/// called from the main thread, 1.72 ms on one thread alone.
pub fn on_pool<R>(f: impl FnOnce() -> R) -> R {
    if rayon::current_thread_index().is_some() {
        return f();
    }
    let job = AssertSend(f);
    let mut result = AssertSend(None);
    rayon::scope(|_| {
        let f = job.into_inner();
        result.set(Some(f()));
    });
    result.into_inner().expect("the scope ran its body")
}

/// A value moved to the pool's thread that runs [`on_pool`]'s body while its owner waits.
struct AssertSend<T>(T);

// SAFETY: `on_pool` hands the value to exactly one other thread while the calling thread is
// blocked in `rayon::scope`, so it is never used from two threads at once; what the body
// reaches through it (arena and input pointers, the bound program) is not touched by the
// caller until the scope returns.
unsafe impl<T> Send for AssertSend<T> {}

impl<T> AssertSend<T> {
    fn into_inner(self) -> T {
        self.0
    }

    fn set(&mut self, value: T) {
        self.0 = value;
    }
}

/// Runs `task` on column ranges that cover `0..n`, one per thread of the pool, each a multiple
/// of `align` columns long except the last (so vector lanes line up as on one thread).
pub fn for_column_blocks(n: usize, align: usize, task: impl Fn(std::ops::Range<usize>) + Sync) {
    use rayon::prelude::*;
    let tasks = threads();
    let chunk = n.div_ceil(tasks).div_ceil(align) * align;
    (0..tasks).into_par_iter().for_each(|index| {
        let first = (index * chunk).min(n);
        let last = ((index + 1) * chunk).min(n);
        if first < last {
            task(first..last);
        }
    });
}

/// Row-major strides of a shape, in elements.
pub fn contiguous_strides(shape: &[usize]) -> Vec<isize> {
    let mut strides = vec![0isize; shape.len()];
    let mut stride = 1isize;
    for (axis, &dim) in shape.iter().enumerate().rev() {
        strides[axis] = stride;
        stride *= dim as isize;
    }
    strides
}
