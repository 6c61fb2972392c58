//! Reductions whose reduced axes are the trailing ones (the layout of softmax, layer norm and
//! mean pooling over features): each of the `rows` outputs reduces `length` contiguous values.
//! Sums accumulate in f64 like the interpreter; max and min propagate NaN.
//!
//! Sums and means over leading axes (and possibly trailing ones too) keeping a block of middle
//! axes — the gradient of a bias broadcast over a batch, or over a batch and image positions —
//! go through [`reduce_outer`].

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

/// A sum or mean of `x`, viewed as `[outer, kept, inner]`, over the outer and inner axes:
/// `out[k]` reduces `x[o, k, i]` for every `o` and `i`, in f64, `o` by `o`.
///
/// # Safety
/// `x` holds `outer * kept * inner` values and `out` holds `kept`.
pub unsafe fn reduce_outer(
    op: ReduceOp,
    x: *const f32,
    (outer, kept, inner): (usize, usize, usize),
    out: *mut f32,
) {
    let scale = match op {
        ReduceOp::Mean => 1.0 / (outer * inner) as f64,
        _ => 1.0,
    };
    let values = std::slice::from_raw_parts(x, outer * kept * inner);
    let out = std::slice::from_raw_parts_mut(out, kept);
    if inner == 1 {
        // Rows added into one accumulator row.
        let mut totals = vec![0.0f64; kept];
        for row in values.chunks_exact(kept.max(1)) {
            for (total, &v) in totals.iter_mut().zip(row) {
                *total += f64::from(v);
            }
        }
        for (o, t) in out.iter_mut().zip(&totals) {
            *o = (t * scale) as f32;
        }
        return;
    }
    let one = |(k, slot): (usize, &mut f32)| {
        let mut total = 0.0f64;
        for o in 0..outer {
            let start = (o * kept + k) * inner;
            total += sum(&values[start..start + inner]);
        }
        *slot = (total * scale) as f32;
    };
    if kept >= 2 && values.len() >= PARALLEL_WORK && super::threads() > 1 {
        out.par_iter_mut().enumerate().for_each(one);
    } else {
        out.iter_mut().enumerate().for_each(one);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Against direct f64 loops, for sums and means, with and without inner axes.
    #[test]
    fn outer_reductions_match_loops() {
        for (outer, kept, inner) in [
            (1, 1, 1),
            (3, 5, 1),
            (64, 10, 1),
            (7, 4, 9),
            (64, 32, 16),
            (2, 300, 300),
        ] {
            let x: Vec<f32> = (0..outer * kept * inner)
                .map(|v| ((v * 37 % 101) as f32 - 50.0) / 16.0)
                .collect();
            for op in [ReduceOp::Sum, ReduceOp::Mean] {
                let mut out = vec![f32::NAN; kept];
                unsafe { reduce_outer(op, x.as_ptr(), (outer, kept, inner), out.as_mut_ptr()) };
                for (k, &a) in out.iter().enumerate() {
                    let mut e = 0.0f64;
                    for o in 0..outer {
                        for i in 0..inner {
                            e += f64::from(x[(o * kept + k) * inner + i]);
                        }
                    }
                    if op == ReduceOp::Mean {
                        e /= (outer * inner) as f64;
                    }
                    assert!(
                        (e as f32 - a).abs() <= 1e-6 * (1.0 + e.abs() as f32),
                        "{op:?} {k}: {e} vs {a}"
                    );
                }
            }
        }
    }
}
