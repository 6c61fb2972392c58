//! Matrix products with a right operand packed once (a weight, packed when params are bound):
//! `out = lhs @ rhs (+ bias)`, `lhs` row-major `m x k`, `rhs` stored as panels of 16 columns,
//! each `k x 16` contiguous ([`pack_rhs`]), so a product never repacks its weight the way the
//! `gemm` crate does on every call, and a panel's reads are sequential whatever the weight's
//! layout.
//!
//! The product runs in `MR x 16` register tiles (MR = 6 or 4 rows of `lhs`, two 8-lane AVX2
//! vectors of output columns): per `k`, one broadcast per row and two vector loads from the
//! panel, `2 * MR` FMAs; the bias is added as a tile is stored. Rows are taken in chunks of
//! `ROW_CHUNK` so that a chunk of `lhs` stays in L2 while every panel passes over it, and the
//! depth in blocks of `DEPTH_BLOCK` so that a panel's block (16 KiB) stays in L1 across the
//! chunk's row tiles (later blocks add to what the first stored).
//!
//! Threads split the row chunks when there are enough of them, each thread running the
//! caller's epilogue over its finished rows; otherwise they split the panels, and the
//! epilogue runs over the whole result after. Products of at most `FEW_ROWS` rows (one sample,
//! one recurrent step of one sequence) take each row against four panels at a time instead.

use super::{for_column_blocks, threads, Epilogue, SendPtr, PARALLEL_WORK};
use rayon::prelude::*;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Output columns per panel and register tile.
pub const PANEL: usize = 16;
/// Rows of `lhs` per chunk.
const ROW_CHUNK: usize = 48;
/// Depth per block of the product: a panel's block is 16 KiB.
const DEPTH_BLOCK: usize = 256;
/// Products with at most this many rows take each row against several panels at once
/// ([`few_row_avx2`]) instead of row tiles (which would compute 4 rows for 1).
pub const FEW_ROWS: usize = 4;
/// Few-row products with at least this many multiply-adds split their panels over threads
/// (reading the weight is the cost; two cores read it about twice as fast).
const PARALLEL_FEW_ROWS_WORK: usize = 1 << 18;

/// Whether the packed product can run here (AVX2+FMA).
pub fn available() -> bool {
    super::matmul::avx2_fma()
}

/// Floats in the packed form of a `k x n` right operand.
pub fn packed_len(k: usize, n: usize) -> usize {
    n.div_ceil(PANEL) * PANEL * k
}

/// Packs `rhs` (`k x n`, element `(p, j)` at `p * row + j * column`) into panels of 16 columns,
/// `k x 16` each, columns past `n` zero.
///
/// # Safety
/// `rhs` addresses every element of the matrix through those strides; `packed` holds
/// [`packed_len`] floats.
pub unsafe fn pack_rhs(
    rhs: *const f32,
    (k, n): (usize, usize),
    (row, column): (usize, usize),
    packed: &mut [f32],
) {
    for (panel, block) in packed[..packed_len(k, n)]
        .chunks_exact_mut(PANEL * k)
        .enumerate()
    {
        let first = panel * PANEL;
        let width = PANEL.min(n - first);
        if width < PANEL {
            block.fill(0.0);
        }
        if row == 1 {
            // A transposed weight: each of the panel's columns is a stored row, read in order.
            for j in 0..width {
                let source = rhs.add((first + j) * column);
                for p in 0..k {
                    block[p * PANEL + j] = *source.add(p);
                }
            }
        } else {
            for p in 0..k {
                for j in 0..width {
                    block[p * PANEL + j] = *rhs.add(p * row + (first + j) * column);
                }
            }
        }
    }
}

/// `out = lhs @ rhs (+ bias)` with `rhs` packed by [`pack_rhs`]; then `epilogue` over the
/// result (see the module comment).
///
/// # Safety
/// `lhs` is `m x k` row-major, `packed` the packing of a `k x n` matrix, `out` `m x n`
/// row-major, `bias` (when given) `n` floats; the CPU has AVX2 and FMA ([`available`]).
#[allow(clippy::too_many_arguments)]
pub unsafe fn matmul_packed(
    lhs: *const f32,
    (m, k, n): (usize, usize, usize),
    packed: *const f32,
    bias: Option<*const f32>,
    out: *mut f32,
    epilogue: Option<Epilogue>,
) {
    if m == 0 || n == 0 {
        return;
    }
    let (lhs, packed, out) = (
        SendPtr(lhs as *mut f32),
        SendPtr(packed as *mut f32),
        SendPtr(out),
    );
    let bias = bias.map(|b| SendPtr(b as *mut f32));
    let panels = n.div_ceil(PANEL);
    if m <= FEW_ROWS {
        // Each row against four panels at a time (eight accumulators), panels split over the
        // threads when the weight is large enough that streaming it is the cost.
        let rows = |range: std::ops::Range<usize>| {
            for i in 0..m {
                // SAFETY: row `i` and panels `range`, inside the operands; disjoint per task.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    few_row_avx2(
                        lhs.get().add(i * k),
                        k,
                        packed.get(),
                        bias.map(|b| b.get() as *const f32),
                        out.get().add(i * n),
                        n,
                        range.clone(),
                    )
                }
            }
        };
        let parallel = threads() > 1 && m * k * n >= PARALLEL_FEW_ROWS_WORK && panels >= 2;
        if parallel {
            for_column_blocks(panels, 4, rows);
        } else {
            rows(0..panels);
        }
        if let Some(epilogue) = epilogue {
            epilogue(0, m * n);
        }
        return;
    }
    // Rows `rows` by panels `panels`.
    let block = |rows: std::ops::Range<usize>, panels: std::ops::Range<usize>| {
        // SAFETY: inside the operands (the caller's promise); blocks are disjoint.
        unsafe {
            product_block(
                lhs.get(),
                k,
                packed.get(),
                bias.map(|b| b.get() as *const f32),
                out.get(),
                n,
                rows,
                panels,
            )
        }
    };
    let chunks = m.div_ceil(ROW_CHUNK);
    let parallel = threads() > 1 && m * k * n >= PARALLEL_WORK * 4;
    if parallel && chunks >= 2 * threads() {
        (0..chunks).into_par_iter().for_each(|chunk| {
            let rows = chunk * ROW_CHUNK..((chunk + 1) * ROW_CHUNK).min(m);
            block(rows.clone(), 0..panels);
            if let Some(epilogue) = epilogue {
                epilogue(rows.start * n, rows.len() * n);
            }
        });
        return;
    }
    if parallel && panels >= 2 {
        for_column_blocks(panels, 1, |range| {
            for chunk in 0..chunks {
                block(
                    chunk * ROW_CHUNK..((chunk + 1) * ROW_CHUNK).min(m),
                    range.clone(),
                );
            }
        });
    } else {
        for chunk in 0..chunks {
            block(
                chunk * ROW_CHUNK..((chunk + 1) * ROW_CHUNK).min(m),
                0..panels,
            );
        }
    }
    if let Some(epilogue) = epilogue {
        if parallel {
            for_column_blocks(m * n, 8, |range| epilogue(range.start, range.len()));
        } else {
            epilogue(0, m * n);
        }
    }
}

/// Rows `rows` (at most a chunk) by panels `panels` of the product.
///
/// # Safety
/// As [`matmul_packed`].
#[allow(clippy::too_many_arguments)]
unsafe fn product_block(
    lhs: *const f32,
    k: usize,
    packed: *const f32,
    bias: Option<*const f32>,
    out: *mut f32,
    n: usize,
    rows: std::ops::Range<usize>,
    panels: std::ops::Range<usize>,
) {
    // Depth in blocks of DEPTH_BLOCK, so that a panel's block (16 KiB) stays in L1 across the
    // row tiles; the first block stores (with the bias), later ones add.
    for depth in (0..k).step_by(DEPTH_BLOCK) {
        let length = DEPTH_BLOCK.min(k - depth);
        for panel in panels.clone() {
            let first = panel * PANEL;
            let cols = PANEL.min(n - first);
            let mut row = rows.start;
            while row < rows.end {
                let left = rows.end - row;
                // Sixes, then fours; a last 1 to 3 rows take a four-row tile.
                let mr = if left >= 6 && left != 8 { 6 } else { 4 };
                let tile = Tile {
                    lhs: lhs.add(row * k + depth),
                    lhs_stride: k,
                    k: length,
                    panel: packed.add(panel * PANEL * k + depth * PANEL),
                    bias: if depth == 0 {
                        bias.map(|b| b.add(first))
                    } else {
                        None
                    },
                    accumulate: depth > 0,
                    out: out.add(row * n + first),
                    stride: n,
                    rows: mr.min(left),
                    cols,
                };
                #[cfg(target_arch = "x86_64")]
                match mr {
                    6 => tile_avx2::<6>(&tile),
                    _ => tile_avx2::<4>(&tile),
                }
                row += mr.min(left);
            }
        }
    }
}

/// One row of the product, `out[j] = row . column j (+ bias[j])`, for panels `panels`: four
/// panels at a time (eight independent accumulator chains), then one at a time.
///
/// # Safety
/// AVX2 and FMA; `row` holds `k` floats, `packed` the packed weight, `out` the row's `n`
/// outputs, `bias` `n` floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn few_row_avx2(
    row: *const f32,
    k: usize,
    packed: *const f32,
    bias: Option<*const f32>,
    out: *mut f32,
    n: usize,
    panels: std::ops::Range<usize>,
) {
    let mut panel = panels.start;
    while panel < panels.end {
        let group = if panels.end - panel >= 4 { 4 } else { 1 };
        let mut acc = [[_mm256_setzero_ps(); 2]; 4];
        let base = packed.add(panel * PANEL * k);
        if group == 4 {
            for p in 0..k {
                let a = _mm256_broadcast_ss(&*row.add(p));
                for (q, acc) in acc.iter_mut().enumerate() {
                    let b = base.add(q * PANEL * k + p * PANEL);
                    acc[0] = _mm256_fmadd_ps(a, _mm256_loadu_ps(b), acc[0]);
                    acc[1] = _mm256_fmadd_ps(a, _mm256_loadu_ps(b.add(8)), acc[1]);
                }
            }
        } else {
            for p in 0..k {
                let a = _mm256_broadcast_ss(&*row.add(p));
                let b = base.add(p * PANEL);
                acc[0][0] = _mm256_fmadd_ps(a, _mm256_loadu_ps(b), acc[0][0]);
                acc[0][1] = _mm256_fmadd_ps(a, _mm256_loadu_ps(b.add(8)), acc[0][1]);
            }
        }
        for (q, acc) in acc.iter().enumerate().take(group) {
            let first = (panel + q) * PANEL;
            let cols = PANEL.min(n - first);
            let (bias0, bias1) = bias_vectors(bias.map(|b| b.add(first)), cols);
            store_row(
                out.add(first),
                cols,
                _mm256_add_ps(acc[0], bias0),
                _mm256_add_ps(acc[1], bias1),
                false,
            );
        }
        panel += group;
    }
}

/// The bias of a 16-column tile as two vectors (zeros without a bias; only `cols` read).
///
/// # Safety
/// AVX2; `bias` holds `cols` floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn bias_vectors(bias: Option<*const f32>, cols: usize) -> (__m256, __m256) {
    match bias {
        Some(bias) if cols == PANEL => (_mm256_loadu_ps(bias), _mm256_loadu_ps(bias.add(8))),
        Some(bias) => {
            let mut line = [0f32; PANEL];
            std::ptr::copy_nonoverlapping(bias, line.as_mut_ptr(), cols);
            (
                _mm256_loadu_ps(line.as_ptr()),
                _mm256_loadu_ps(line.as_ptr().add(8)),
            )
        }
        None => (_mm256_setzero_ps(), _mm256_setzero_ps()),
    }
}

/// One register tile's operands.
struct Tile {
    /// The tile's first row of `lhs` at its first depth; rows are `lhs_stride` apart.
    lhs: *const f32,
    lhs_stride: usize,
    /// Depth of this tile's part of the product.
    k: usize,
    /// The panel at the tile's first depth, `k x 16` contiguous.
    panel: *const f32,
    /// Add to what `out` holds (a later depth block) instead of storing.
    accumulate: bool,
    /// The bias at the tile's first column.
    bias: Option<*const f32>,
    out: *mut f32,
    /// Floats between output rows.
    stride: usize,
    /// Valid rows (at most MR) and columns (at most 16).
    rows: usize,
    cols: usize,
}

/// `MR x 16` outputs. Rows past `tile.rows` read row 0 again (valid memory) and are not stored.
///
/// # Safety
/// AVX2 and FMA; the tile's pointers valid as described on [`Tile`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2<const MR: usize>(tile: &Tile) {
    let mut acc = [[_mm256_setzero_ps(); 2]; MR];
    let rows: [*const f32; MR] = std::array::from_fn(|r| {
        tile.lhs.add(if r < tile.rows {
            r * tile.lhs_stride
        } else {
            0
        })
    });
    let mut b = tile.panel;
    for p in 0..tile.k {
        let b0 = _mm256_loadu_ps(b);
        let b1 = _mm256_loadu_ps(b.add(8));
        for (acc, row) in acc.iter_mut().zip(&rows) {
            let a = _mm256_broadcast_ss(&*row.add(p));
            acc[0] = _mm256_fmadd_ps(a, b0, acc[0]);
            acc[1] = _mm256_fmadd_ps(a, b1, acc[1]);
        }
        b = b.add(PANEL);
    }
    let (bias0, bias1) = bias_vectors(tile.bias, tile.cols);
    for (r, acc) in acc.iter().enumerate().take(tile.rows) {
        store_row(
            tile.out.add(r * tile.stride),
            tile.cols,
            _mm256_add_ps(acc[0], bias0),
            _mm256_add_ps(acc[1], bias1),
            tile.accumulate,
        );
    }
}

/// Stores one 16-column row of a register tile (two 8-lane vectors) at `out`: its first `cols`
/// values (16 or fewer at a matrix's edge), added to what is there when `accumulate`.
///
/// # Safety
/// AVX2; `out` holds `cols` floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn store_row(
    out: *mut f32,
    cols: usize,
    mut v0: __m256,
    mut v1: __m256,
    accumulate: bool,
) {
    let mut line = [0f32; PANEL];
    let full = cols == PANEL;
    // Written (and, accumulating, read) in place, or through a line for a partial row.
    let target = if full { out } else { line.as_mut_ptr() };
    if accumulate {
        if !full {
            std::ptr::copy_nonoverlapping(out, target, cols);
        }
        v0 = _mm256_add_ps(v0, _mm256_loadu_ps(target));
        v1 = _mm256_add_ps(v1, _mm256_loadu_ps(target.add(8)));
    }
    _mm256_storeu_ps(target, v0);
    _mm256_storeu_ps(target.add(8), v1);
    if !full {
        std::ptr::copy_nonoverlapping(target, out, cols);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against f64 loops: row counts around the tile heights and the chunk (1, 3, 5, 8, 13,
    /// 48, 49, 200: few-row, single and parallel row chunks), column counts around the panel
    /// width and the few-row path's groups of four panels (1, 15, 16, 17, 40, 70), depths 1, 7, 130 and 600 (three depth blocks), with and without bias, from a plain and from
    /// a transposed stored weight. Tolerance 1e-5 * (1 + sum of |terms|).
    #[test]
    fn packed_products_match_f64_loops() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX2+FMA, so the kernel never runs");
            return;
        }
        for m in [1, 3, 5, 8, 13, 48, 49, 200] {
            for n in [1, 15, 16, 17, 40, 70] {
                for k in [1, 7, 130, 600] {
                    let a: Vec<f32> = (0..m * k).map(|v| (v as f32 * 0.37).sin()).collect();
                    let w: Vec<f32> = (0..k * n).map(|v| (v as f32 * 0.11).cos()).collect();
                    let bias: Vec<f32> = (0..n).map(|v| v as f32 * 0.25 - 2.0).collect();
                    for transposed in [false, true] {
                        // The stored weight: `k x n`, or `n x k` read transposed.
                        let (row, column) = if transposed { (1, k) } else { (n, 1) };
                        let stored: Vec<f32> = if transposed {
                            (0..n * k).map(|v| w[(v % k) * n + v / k]).collect()
                        } else {
                            w.clone()
                        };
                        let mut packed = vec![f32::NAN; packed_len(k, n)];
                        unsafe { pack_rhs(stored.as_ptr(), (k, n), (row, column), &mut packed) };
                        for with_bias in [false, true] {
                            let mut out = vec![f32::NAN; m * n];
                            unsafe {
                                matmul_packed(
                                    a.as_ptr(),
                                    (m, k, n),
                                    packed.as_ptr(),
                                    with_bias.then_some(bias.as_ptr()),
                                    out.as_mut_ptr(),
                                    None,
                                )
                            };
                            for i in 0..m {
                                for j in 0..n {
                                    let mut sum = if with_bias { bias[j] as f64 } else { 0.0 };
                                    let mut size = sum.abs();
                                    for p in 0..k {
                                        let term = a[i * k + p] as f64 * w[p * n + j] as f64;
                                        sum += term;
                                        size += term.abs();
                                    }
                                    let got = out[i * n + j] as f64;
                                    assert!(
                                        (got - sum).abs() <= 1e-5 * (1.0 + size),
                                        "m {m} n {n} k {k} T {transposed} bias {with_bias} \
                                         ({i}, {j}): {got} vs {sum}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
