//! Reductions whose reduced axes are the trailing ones (the layout of softmax, layer norm and
//! mean pooling over features): each of the `rows` outputs reduces `length` contiguous values.
//! Sums accumulate in f64 like the interpreter; max and min propagate NaN.

use super::{SendPtr, PARALLEL_WORK};
use modelc_compiler::ir::ReduceOp;
use rayon::prelude::*;

/// # Safety
/// `x` holds `rows * length` values and `out` holds `rows`.
pub unsafe fn reduce_rows(op: ReduceOp, x: *const f32, rows: usize, length: usize, out: *mut f32) {
    let (x, out) = (SendPtr(x as *mut f32), SendPtr(out));
    let row = |r: usize| {
        // SAFETY: row `r` of the input and element `r` of the output.
        let values = unsafe { std::slice::from_raw_parts(x.add(r * length), length) };
        unsafe { *out.add(r) = reduce_row(op, values) };
    };
    if rows >= 2 && rows * length >= PARALLEL_WORK && super::threads() > 1 {
        (0..rows).into_par_iter().for_each(row);
    } else {
        (0..rows).for_each(row);
    }
}

/// The same reductions on the calling thread (for callers that split the rows themselves).
///
/// # Safety
/// As [`reduce_rows`].
pub unsafe fn reduce_rows_serial(
    op: ReduceOp,
    x: *const f32,
    rows: usize,
    length: usize,
    out: *mut f32,
) {
    for r in 0..rows {
        let values = std::slice::from_raw_parts(x.add(r * length), length);
        *out.add(r) = reduce_row(op, values);
    }
}

fn reduce_row(op: ReduceOp, values: &[f32]) -> f32 {
    match op {
        ReduceOp::Sum => sum(values) as f32,
        ReduceOp::Mean => (sum(values) / values.len() as f64) as f32,
        ReduceOp::Max => extremum(values, f32::NEG_INFINITY, |v, best| v > best),
        ReduceOp::Min => extremum(values, f32::INFINITY, |v, best| v < best),
    }
}

/// Sum in f64, four independent accumulators so the additions pipeline.
fn sum(values: &[f32]) -> f64 {
    let mut lanes = [0.0f64; 4];
    let chunks = values.chunks_exact(4);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += f64::from(v);
        }
    }
    let mut total = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
    for &v in tail {
        total += f64::from(v);
    }
    total
}

fn extremum(values: &[f32], start: f32, better: impl Fn(f32, f32) -> bool) -> f32 {
    let mut best = start;
    for &v in values {
        if v.is_nan() {
            return v;
        }
        if better(v, best) {
            best = v;
        }
    }
    best
}
