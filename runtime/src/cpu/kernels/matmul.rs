//! f32 matrix products through the `gemm` crate (about 96% of one core's FMA peak at 512³ on
//! the reference machine), with NumPy `matmul` batch broadcasting.
//!
//! A batched left operand times one right matrix folds the batch into the rows (one large
//! product). Other batches run one product per batch element, split over the pool's threads;
//! a single large product splits inside `gemm` instead.

use super::{contiguous_strides, for_column_blocks, threads, SendPtr};
use rayon::prelude::*;

/// Products with at most this many rows skip `gemm` (whose packing and dispatch cost more
/// than the product for a few rows, e.g. one recurrent step or one sample).
const SMALL_M: usize = 4;

/// Products with a transposed right operand (a weight read as stored, `x @ W.T`) and at most
/// this many rows use tiles of dot products (a recurrent step over a batch), which skip the
/// packing `gemm` does on every call.
const SMALL_M_DOT: usize = 32;

/// Tiled dot products with at least this many multiply-adds split their columns over threads
/// (one recurrent step of a 128-unit LSTM over 16 sequences, 2^20, measured faster on one).
const PARALLEL_SMALL_M_DOT_WORK: usize = 1 << 22;

/// Few-row products with at least this many multiply-adds split their columns over threads (a
/// 784x512 layer on one sample, 0.4M, streams its weights from memory: two cores stream twice
/// as fast; the peer MLP at batch 1 went from 0.072 to 0.053 ms).
const PARALLEL_SMALL_M_WORK: usize = 1 << 18;

/// Products with at least this many multiply-adds use several threads inside `gemm`.
const PARALLEL_GEMM_WORK: usize = 1 << 22;

/// `out = lhs @ rhs` (or `out += lhs @ rhs` when `accumulate`), row-major, with strides in
/// elements: `lhs` is `m x k`, `rhs` is `k x n`, `out` is `m x n` with row stride `out_row`.
///
/// # Safety
/// The pointers must address matrices of the stated sizes and strides.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_f32(
    (m, k, n): (usize, usize, usize),
    lhs: *const f32,
    (lhs_row, lhs_column): (isize, isize),
    rhs: *const f32,
    (rhs_row, rhs_column): (isize, isize),
    out: *mut f32,
    out_row: isize,
    accumulate: bool,
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for row in 0..m {
                std::ptr::write_bytes(out.offset(row as isize * out_row), 0, n);
            }
        }
        return;
    }
    // Few-row products skip `gemm`: tiles of dot products for a transposed right operand with
    // up to SMALL_M_DOT rows (AVX2), vector loops for up to SMALL_M rows.
    let dot_tiles = cfg!(target_arch = "x86_64")
        && m > SMALL_M
        && m <= SMALL_M_DOT
        && lhs_column == 1
        && rhs_row == 1
        && rhs_column != 1
        && k >= 16
        && avx2_fma();
    let vector_rows = m <= SMALL_M && lhs_column == 1 && (rhs_column == 1 || rhs_row == 1);
    if dot_tiles || vector_rows {
        let (lhs, rhs, out) = (
            SendPtr(lhs as *mut f32),
            SendPtr(rhs as *mut f32),
            SendPtr(out),
        );
        let columns = |range: std::ops::Range<usize>| {
            let dims = (m, k, range.len());
            // SAFETY: columns `range` of the product and of the right operand.
            unsafe {
                let rhs = rhs.get().offset(range.start as isize * rhs_column);
                let out = out.add(range.start);
                if dot_tiles {
                    #[cfg(target_arch = "x86_64")]
                    dot_tiles_avx2(
                        dims,
                        lhs.get(),
                        lhs_row,
                        rhs,
                        rhs_column,
                        out,
                        out_row,
                        accumulate,
                    );
                } else {
                    small_m(
                        dims,
                        lhs.get(),
                        lhs_row,
                        rhs,
                        (rhs_row, rhs_column),
                        out,
                        out_row,
                        accumulate,
                    );
                }
            }
        };
        let threshold = if dot_tiles {
            PARALLEL_SMALL_M_DOT_WORK
        } else {
            PARALLEL_SMALL_M_WORK
        };
        if parallel && threads() > 1 && m * k * n >= threshold && n >= 16 * threads() {
            for_column_blocks(n, 8, columns);
        } else {
            columns(0..n);
        }
        return;
    }
    let parallelism = if parallel && m * n * k >= PARALLEL_GEMM_WORK && threads() > 1 {
        gemm::Parallelism::Rayon(threads())
    } else {
        gemm::Parallelism::None
    };
    gemm::gemm(
        m,
        n,
        k,
        out,
        1,
        out_row,
        accumulate,
        lhs,
        lhs_column,
        lhs_row,
        rhs,
        rhs_column,
        rhs_row,
        if accumulate { 1.0 } else { 0.0 },
        1.0,
        false,
        false,
        false,
        parallelism,
    );
}

/// Whether the CPU has AVX2 and FMA (checked once by the standard library, then cached).
pub(super) fn avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A product with few rows as vector loops: rows of a row-major `rhs` scaled and added
/// (`out[i, :] += a[i, p] * rhs[p, :]`), or dot products with the rows of a transposed `rhs`.
/// With AVX2+FMA intrinsics when the CPU has them, portable loops otherwise.
#[allow(clippy::too_many_arguments)]
unsafe fn small_m(
    dims: (usize, usize, usize),
    lhs: *const f32,
    lhs_row: isize,
    rhs: *const f32,
    rhs_strides: (isize, isize),
    out: *mut f32,
    out_row: isize,
    accumulate: bool,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if avx2_fma() {
            return small_m_avx2(
                dims,
                lhs,
                lhs_row,
                rhs,
                rhs_strides,
                out,
                out_row,
                accumulate,
            );
        }
    }
    small_m_portable(
        dims,
        lhs,
        lhs_row,
        rhs,
        rhs_strides,
        out,
        out_row,
        accumulate,
    )
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn small_m_avx2(
    (m, k, n): (usize, usize, usize),
    lhs: *const f32,
    lhs_row: isize,
    rhs: *const f32,
    (rhs_row, rhs_column): (isize, isize),
    out: *mut f32,
    out_row: isize,
    accumulate: bool,
) {
    use std::arch::x86_64::*;
    for i in 0..m {
        let a = lhs.offset(i as isize * lhs_row);
        let o = out.offset(i as isize * out_row);
        if !accumulate {
            std::ptr::write_bytes(o, 0, n);
        }
        if rhs_column == 1 {
            // o += a[p] * rhs[p, :], eight columns per instruction.
            for p in 0..k {
                let scale = *a.add(p);
                let factor = _mm256_set1_ps(scale);
                let b = rhs.offset(p as isize * rhs_row);
                let mut j = 0;
                while j + 8 <= n {
                    let sum = _mm256_fmadd_ps(
                        factor,
                        _mm256_loadu_ps(b.add(j)),
                        _mm256_loadu_ps(o.add(j)),
                    );
                    _mm256_storeu_ps(o.add(j), sum);
                    j += 8;
                }
                while j < n {
                    *o.add(j) = scale.mul_add(*b.add(j), *o.add(j));
                    j += 1;
                }
            }
        } else {
            // o[j] += dot(a, rhs_stored[j, :]): four independent 8-lane accumulators.
            for j in 0..n {
                let b = rhs.offset(j as isize * rhs_column);
                let mut sums = [_mm256_setzero_ps(); 4];
                let mut p = 0;
                while p + 32 <= k {
                    for (lane, sum) in sums.iter_mut().enumerate() {
                        let at = p + lane * 8;
                        *sum = _mm256_fmadd_ps(
                            _mm256_loadu_ps(a.add(at)),
                            _mm256_loadu_ps(b.add(at)),
                            *sum,
                        );
                    }
                    p += 32;
                }
                while p + 8 <= k {
                    sums[0] = _mm256_fmadd_ps(
                        _mm256_loadu_ps(a.add(p)),
                        _mm256_loadu_ps(b.add(p)),
                        sums[0],
                    );
                    p += 8;
                }
                let total = _mm256_add_ps(
                    _mm256_add_ps(sums[0], sums[1]),
                    _mm256_add_ps(sums[2], sums[3]),
                );
                let half = _mm_add_ps(
                    _mm256_castps256_ps128(total),
                    _mm256_extractf128_ps(total, 1),
                );
                let quarter = _mm_add_ps(half, _mm_movehl_ps(half, half));
                let single = _mm_add_ss(quarter, _mm_shuffle_ps(quarter, quarter, 1));
                let mut value = _mm_cvtss_f32(single);
                while p < k {
                    value = (*a.add(p)).mul_add(*b.add(p), value);
                    p += 1;
                }
                *o.add(j) += value;
            }
        }
    }
}

/// `out = lhs @ rhs` for a transposed `rhs` (column `j` of the product is the stored row `j`,
/// contiguous), in tiles of 4 rows by 2 columns: eight 8-lane accumulators over `k`, so each
/// loaded vector feeds two or four multiply-adds, then eight horizontal sums. Leftover rows and
/// columns take single dot products.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn dot_tiles_avx2(
    (m, k, n): (usize, usize, usize),
    lhs: *const f32,
    lhs_row: isize,
    rhs: *const f32,
    rhs_column: isize,
    out: *mut f32,
    out_row: isize,
    accumulate: bool,
) {
    use std::arch::x86_64::*;
    #[inline(always)]
    unsafe fn horizontal_sum(v: __m256) -> f32 {
        let half = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let quarter = _mm_add_ps(half, _mm_movehl_ps(half, half));
        _mm_cvtss_f32(_mm_add_ss(quarter, _mm_shuffle_ps(quarter, quarter, 1)))
    }
    let full = k / 8 * 8;
    let row = |i: usize| lhs.offset(i as isize * lhs_row);
    let column = |j: usize| rhs.offset(j as isize * rhs_column);
    let store = |i: usize, j: usize, value: f32| {
        let slot = out.offset(i as isize * out_row + j as isize);
        *slot = if accumulate { *slot + value } else { value };
    };
    let single = |i: usize, j: usize| {
        let (a, b) = (row(i), column(j));
        let mut sum = _mm256_setzero_ps();
        let mut p = 0;
        while p < full {
            sum = _mm256_fmadd_ps(_mm256_loadu_ps(a.add(p)), _mm256_loadu_ps(b.add(p)), sum);
            p += 8;
        }
        let mut value = horizontal_sum(sum);
        while p < k {
            value = (*a.add(p)).mul_add(*b.add(p), value);
            p += 1;
        }
        store(i, j, value);
    };
    let mut i = 0;
    while i + 4 <= m {
        let a = [row(i), row(i + 1), row(i + 2), row(i + 3)];
        let mut j = 0;
        while j + 2 <= n {
            let b = [column(j), column(j + 1)];
            let mut sums = [[_mm256_setzero_ps(); 2]; 4];
            let mut p = 0;
            while p < full {
                let b0 = _mm256_loadu_ps(b[0].add(p));
                let b1 = _mm256_loadu_ps(b[1].add(p));
                for r in 0..4 {
                    let x = _mm256_loadu_ps(a[r].add(p));
                    sums[r][0] = _mm256_fmadd_ps(x, b0, sums[r][0]);
                    sums[r][1] = _mm256_fmadd_ps(x, b1, sums[r][1]);
                }
                p += 8;
            }
            for r in 0..4 {
                for c in 0..2 {
                    let mut value = horizontal_sum(sums[r][c]);
                    for q in full..k {
                        value = (*a[r].add(q)).mul_add(*b[c].add(q), value);
                    }
                    store(i + r, j + c, value);
                }
            }
            j += 2;
        }
        for j in j..n {
            for r in 0..4 {
                single(i + r, j);
            }
        }
        i += 4;
    }
    for i in i..m {
        for j in 0..n {
            single(i, j);
        }
    }
}

#[allow(clippy::too_many_arguments)]
unsafe fn small_m_portable(
    (m, k, n): (usize, usize, usize),
    lhs: *const f32,
    lhs_row: isize,
    rhs: *const f32,
    (rhs_row, rhs_column): (isize, isize),
    out: *mut f32,
    out_row: isize,
    accumulate: bool,
) {
    for i in 0..m {
        let a = std::slice::from_raw_parts(lhs.offset(i as isize * lhs_row), k);
        let o = std::slice::from_raw_parts_mut(out.offset(i as isize * out_row), n);
        if !accumulate {
            o.fill(0.0);
        }
        if rhs_column == 1 {
            for (p, &scale) in a.iter().enumerate() {
                let b = std::slice::from_raw_parts(rhs.offset(p as isize * rhs_row), n);
                for (slot, &value) in o.iter_mut().zip(b) {
                    *slot = scale.mul_add(value, *slot);
                }
            }
        } else {
            // Transposed: column j of the product is row j of the stored matrix.
            for (j, slot) in o.iter_mut().enumerate() {
                let b = std::slice::from_raw_parts(rhs.offset(j as isize * rhs_column), k);
                *slot += dot(a, b);
            }
        }
    }
}

/// A dot product with eight independent lanes (vectorizes without reassociation).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let (a_tail, b_tail) = (a_chunks.remainder(), b_chunks.remainder());
    for (x, y) in a_chunks.zip(b_chunks) {
        for l in 0..8 {
            lanes[l] = x[l].mul_add(y[l], lanes[l]);
        }
    }
    let mut total = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5]))
        + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
    for (x, y) in a_tail.iter().zip(b_tail) {
        total = x.mul_add(*y, total);
    }
    total
}

/// NumPy `matmul` of operands of rank >= 2 into a contiguous result, plus a bias over the
/// last axis when one is given (the epilogue of a linear layer). The shapes are the
/// logical ones; an operand marked transposed is stored with its last two axes swapped (a
/// folded `.T`), which only changes the strides `gemm` reads it with.
///
/// # Safety
/// The pointers must address contiguous tensors of the given shapes; `out_shape` must be the
/// broadcast result shape.
#[allow(clippy::too_many_arguments)]
pub unsafe fn matmul(
    lhs: *const f32,
    lhs_shape: &[usize],
    rhs: *const f32,
    rhs_shape: &[usize],
    out: *mut f32,
    out_shape: &[usize],
    (lhs_transposed, rhs_transposed): (bool, bool),
    bias: Option<*const f32>,
) {
    let (lr, rr, or) = (lhs_shape.len(), rhs_shape.len(), out_shape.len());
    let (m, k) = (lhs_shape[lr - 2], lhs_shape[lr - 1]);
    let n = rhs_shape[rr - 1];
    let rhs_batch: usize = rhs_shape[..rr - 2].iter().product();
    let out_batch_shape = &out_shape[..or - 2];
    let batch: usize = out_batch_shape.iter().product();
    if batch == 0 || m == 0 || n == 0 {
        return;
    }
    let lhs_batch: usize = lhs_shape[..lr - 2].iter().product();
    // A bias epilogue: every output row starts as the bias and the product accumulates onto it.
    let accumulate = bias.is_some();
    if let Some(bias) = bias {
        let bias = std::slice::from_raw_parts(bias, n);
        for row in 0..batch * m {
            std::slice::from_raw_parts_mut(out.add(row * n), n).copy_from_slice(bias);
        }
    }
    // Element strides (row, column) of each matrix.
    let lhs_matrix = if lhs_transposed {
        (1, m as isize)
    } else {
        (k as isize, 1)
    };
    let rhs_matrix = if rhs_transposed {
        (1, k as isize)
    } else {
        (n as isize, 1)
    };
    if rhs_batch == 1 && lhs_batch == batch && !lhs_transposed {
        // Every batch element multiplies the same matrix: one product of `batch * m` rows.
        gemm_f32(
            (batch * m, k, n),
            lhs,
            (k as isize, 1),
            rhs,
            rhs_matrix,
            out,
            n as isize,
            accumulate,
            true,
        );
        return;
    }
    // Batch offsets through broadcast strides (0 along broadcast axes).
    let lhs_strides = batch_strides(&lhs_shape[..lr - 2], out_batch_shape, m * k);
    let rhs_strides = batch_strides(&rhs_shape[..rr - 2], out_batch_shape, k * n);
    let out_strides = contiguous_strides(out_batch_shape);
    let offsets = |index: usize| -> (isize, isize) {
        let (mut l, mut r) = (0isize, 0isize);
        for axis in 0..out_batch_shape.len() {
            let position = (index as isize / out_strides[axis]) % out_batch_shape[axis] as isize;
            l += position * lhs_strides[axis];
            r += position * rhs_strides[axis];
        }
        (l, r)
    };
    let (lhs, rhs, out) = (
        SendPtr(lhs as *mut f32),
        SendPtr(rhs as *mut f32),
        SendPtr(out),
    );
    let one = |index: usize| {
        let (l, r) = offsets(index);
        // SAFETY: offsets stay inside the operands (broadcast strides of valid shapes).
        unsafe {
            gemm_f32(
                (m, k, n),
                lhs.get().offset(l),
                lhs_matrix,
                rhs.get().offset(r),
                rhs_matrix,
                out.add(index * m * n),
                n as isize,
                accumulate,
                false,
            )
        }
    };
    if batch >= 2 && batch * m * n * k >= super::PARALLEL_WORK && threads() > 1 {
        (0..batch).into_par_iter().for_each(one);
    } else {
        (0..batch).for_each(one);
    }
}

/// Element strides of each output batch axis in an operand whose batch shape broadcasts to it.
fn batch_strides(shape: &[usize], out: &[usize], matrix: usize) -> Vec<isize> {
    let padded: Vec<usize> = std::iter::repeat_n(1, out.len() - shape.len())
        .chain(shape.iter().copied())
        .collect();
    let mut strides = vec![0isize; out.len()];
    let mut stride = matrix as isize;
    for axis in (0..out.len()).rev() {
        strides[axis] = if padded[axis] == 1 { 0 } else { stride };
        stride *= padded[axis] as isize;
    }
    strides
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        out
    }

    #[test]
    fn few_row_products_match_loops_in_both_layouts() {
        // Up to four rows: vector loops; 5 to 32 rows with a transposed right operand: tiles of
        // dot products (4x2, with leftover rows and columns; the last case, 2^23 multiply-adds,
        // splits its columns over threads); others: `gemm`. Each product also accumulates onto ones.
        for &(m, k, n) in &[
            (1, 1, 1),
            (1, 13, 9),
            (3, 17, 33),
            (4, 64, 5),
            (5, 17, 3),
            (7, 33, 9),
            (32, 20, 5),
            (32, 256, 1024),
        ] {
            let a: Vec<f32> = (0..m * k).map(|v| (v as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..k * n).map(|v| (v as f32 * 0.11).cos()).collect();
            let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
            let expected = reference(&a, &b, m, k, n);
            for (pointer, strides) in [
                (b.as_ptr(), (n as isize, 1)),
                (bt.as_ptr(), (1, k as isize)),
            ] {
                for accumulate in [false, true] {
                    let start = if accumulate { 1.0 } else { f32::NAN };
                    let mut out = vec![start; m * n];
                    unsafe {
                        gemm_f32(
                            (m, k, n),
                            a.as_ptr(),
                            (k as isize, 1),
                            pointer,
                            strides,
                            out.as_mut_ptr(),
                            n as isize,
                            accumulate,
                            true,
                        )
                    };
                    for (e, o) in expected.iter().zip(&out) {
                        let e = if accumulate { e + 1.0 } else { *e };
                        assert!(
                            (e - o).abs() < 1e-4,
                            "{m}x{k}x{n} {strides:?} accumulate {accumulate}: {e} vs {o}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn broadcast_batches_match_loops() {
        // lhs [2, 1, 3, 4] @ rhs [3, 4, 5] -> [2, 3, 3, 5]
        let a: Vec<f32> = (0..24).map(|v| (v as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..60).map(|v| (v as f32 * 0.11).cos()).collect();
        let mut out = vec![0f32; 2 * 3 * 3 * 5];
        unsafe {
            matmul(
                a.as_ptr(),
                &[2, 1, 3, 4],
                b.as_ptr(),
                &[3, 4, 5],
                out.as_mut_ptr(),
                &[2, 3, 3, 5],
                (false, false),
                None,
            )
        };
        for i in 0..2 {
            for j in 0..3 {
                let expected = reference(&a[i * 12..i * 12 + 12], &b[j * 20..j * 20 + 20], 3, 4, 5);
                let start = (i * 3 + j) * 15;
                for (e, o) in expected.iter().zip(&out[start..start + 15]) {
                    assert!((e - o).abs() < 1e-5);
                }
            }
        }
    }
}
