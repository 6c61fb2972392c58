//! 2-D convolution as register tiles over a padded copy of the input, with no im2col matrix.
//!
//! Each image is first copied once into a zero-padded, stride-phase-split buffer: for stride
//! `s`, phase `(a, b)` holds the padded input at rows `a, a + s, ...` and columns
//! `b, b + s, ...`. In that buffer the input value that weight tap `k = (c, kh, kw)` meets at
//! output `(oh, ow)` sits at `offset[k] + oh * row + ow`: for a fixed tap, consecutive output
//! columns read consecutive floats. So the product `out[o, p] = sum_k w[o, k] * x[k, p]` reads
//! its right-hand side straight from the buffer (one pointer per tap, the "indirection" of
//! XNNPACK's convolutions), never unfolding it into a `K x positions` matrix that would not fit
//! in cache.
//!
//! The product runs in `MR x 16` register tiles (MR = 6 or 4 output channels, 16 output
//! columns of one output row as two 8-lane AVX2 vectors): per tap one broadcast weight per
//! channel and two vector loads, `2 * MR` FMAs. Weights are packed once per call into
//! `MR`-channel panels, tap-major. A tile adds the bias as it stores. Work is split into
//! (image, band of output rows) tasks; when a band is finished, the caller's epilogue runs over
//! it while it is still in cache.
//!
//! Columns past the end of an output row are computed from whatever follows in the buffer and
//! never stored; the buffer carries zeroed slack so that those reads stay inside it.

#[cfg(target_arch = "x86_64")]
use super::packed::store_row;
use super::{threads, Epilogue, SendPtr, PARALLEL_WORK};
use crate::cpu::kernels::conv::ConvGeometry;
use rayon::prelude::*;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Output columns per register tile: two 8-lane vectors.
const NR: usize = 16;
/// Output positions per task (rounded to whole output rows): the band's outputs for every
/// channel stay in L2 for the epilogue.
const BAND_POSITIONS: usize = 256;

/// Whether this kernel suits the shape: AVX2+FMA, not a plain 1x1 convolution (a product
/// `gemm` runs faster on the input as it is), and tiles that waste little of their work: tiles
/// along output rows ([`row_tiles`]) or, for short rows, tiles over the padded copy's flat
/// positions, which compute the `columns - out_w` positions past each row's end too (at most
/// 40% of them).
pub fn suits(
    [kernel_h, kernel_w]: [usize; 2],
    geometry: ConvGeometry,
    width: usize,
    out_w: usize,
) -> bool {
    let plain_1x1 =
        [kernel_h, kernel_w] == [1, 1] && geometry.stride == [1, 1] && geometry.padding == [0, 0];
    let columns = (width + 2 * geometry.padding[1]).div_ceil(geometry.stride[1].max(1));
    let flat = out_w > 0 && (columns - out_w.min(columns)) * 5 <= columns * 2;
    super::matmul::avx2_fma() && !plain_1x1 && (row_tiles(out_w) || flat)
}

/// Whether 16-column tiles along output rows waste at most a quarter of their work.
fn row_tiles(out_w: usize) -> bool {
    out_w.div_ceil(NR) * NR * 3 <= out_w * 4
}

/// Geometry of one image's padded, phase-split copy.
#[derive(Clone)]
struct Padded {
    channels: usize,
    /// Rows and columns of one phase plane.
    rows: usize,
    columns: usize,
    stride: [usize; 2],
    padding: [usize; 2],
    /// Floats per image copy, slack included.
    size: usize,
    /// Which phases `(a, b)` (index `a * sw + b`) some tap reads; the others are not filled.
    used: Vec<bool>,
}

impl Padded {
    fn new(
        channels: usize,
        [height, width]: [usize; 2],
        [kernel_h, kernel_w]: [usize; 2],
        geometry: ConvGeometry,
    ) -> Padded {
        let [sh, sw] = geometry.stride;
        let [ph, pw] = geometry.padding;
        let [dh, dw] = geometry.dilation;
        let mut used = vec![false; sh * sw];
        for kh in 0..kernel_h {
            for kw in 0..kernel_w {
                used[(kh * dh) % sh * sw + (kw * dw) % sw] = true;
            }
        }
        let rows = (height + 2 * ph).div_ceil(sh);
        let columns = (width + 2 * pw).div_ceil(sw);
        // A tile's last column reads at most NR - 1 floats past its row's end.
        let slack = NR + columns;
        Padded {
            channels,
            rows,
            columns,
            stride: [sh, sw],
            padding: [ph, pw],
            size: sh * sw * channels * rows * columns + slack,
            used,
        }
    }

    fn plane(&self) -> usize {
        self.rows * self.columns
    }

    /// Where tap `(c, kh, kw)` starts, relative to an output position's `oh * columns + ow`.
    fn tap_offsets(&self, [kernel_h, kernel_w]: [usize; 2], dilation: [usize; 2]) -> Vec<usize> {
        let [sh, sw] = self.stride;
        let mut offsets = Vec::with_capacity(self.channels * kernel_h * kernel_w);
        for c in 0..self.channels {
            for kh in 0..kernel_h {
                let (phase_h, shift_h) = ((kh * dilation[0]) % sh, (kh * dilation[0]) / sh);
                for kw in 0..kernel_w {
                    let (phase_w, shift_w) = ((kw * dilation[1]) % sw, (kw * dilation[1]) / sw);
                    let phase = (phase_h * sw + phase_w) * self.channels + c;
                    offsets.push(phase * self.plane() + shift_h * self.columns + shift_w);
                }
            }
        }
        offsets
    }

    /// Copies one image (`channels` planes of `height x width`) into `copy` (`self.size`).
    ///
    /// # Safety
    /// `input` addresses the image's planes.
    unsafe fn fill(&self, input: *const f32, [height, width]: [usize; 2], copy: &mut [f32]) {
        let [sh, sw] = self.stride;
        let [ph, pw] = self.padding;
        let plane = self.plane();
        for a in 0..sh {
            for b in (0..sw).filter(|b| self.used[a * sw + b]) {
                for c in 0..self.channels {
                    let source = input.add(c * height * width);
                    let base = ((a * sw + b) * self.channels + c) * plane;
                    for i in 0..self.rows {
                        let row = &mut copy[base + i * self.columns..][..self.columns];
                        let y = (i * sh + a) as isize - ph as isize;
                        if y < 0 || y >= height as isize {
                            row.fill(0.0);
                            continue;
                        }
                        let source = source.add(y as usize * width);
                        // Phase columns `j` whose input column `j * sw + b - pw` is inside.
                        let first = pw.saturating_sub(b).div_ceil(sw).min(self.columns);
                        let last = (width + pw)
                            .saturating_sub(b)
                            .div_ceil(sw)
                            .min(self.columns);
                        row[..first].fill(0.0);
                        row[last.max(first)..].fill(0.0);
                        if first < last {
                            let x0 = first * sw + b - pw;
                            if sw == 1 {
                                std::ptr::copy_nonoverlapping(
                                    source.add(x0),
                                    row[first..].as_mut_ptr(),
                                    last - first,
                                );
                            } else {
                                for (i, slot) in row[first..last].iter_mut().enumerate() {
                                    *slot = *source.add(x0 + i * sw);
                                }
                            }
                        }
                    }
                }
            }
        }
        copy[self.size - (NR + self.columns)..self.size].fill(0.0);
    }
}

/// How the output channels split into register-tile panels: `(first channel, MR)`, six-channel
/// panels as far as they go (12 accumulator chains hide the FMA latency better than 8), then
/// four-channel ones so that the panels cover the channels exactly where the count is even.
fn panels(out_channels: usize) -> Vec<(usize, usize)> {
    let mut sixes = out_channels / 6;
    while sixes > 0 && !(out_channels - 6 * sixes).is_multiple_of(4) {
        sixes -= 1;
    }
    let mut panels: Vec<(usize, usize)> = (0..sixes).map(|p| (6 * p, 6)).collect();
    let mut channel = 6 * sixes;
    while channel < out_channels {
        panels.push((channel, 4));
        channel += 4;
    }
    panels
}

/// Weights `[O, K]` repacked panel by panel ([`panels`]): `K x MR` each, tap-major, zero rows
/// past `O`. Returns the packed floats and each panel's offset into them.
fn pack_weights(weight: &[f32], out_channels: usize, depth: usize) -> (Vec<f32>, Vec<usize>) {
    let panels = panels(out_channels);
    let mut packed = vec![0f32; panels.iter().map(|(_, mr)| mr * depth).sum()];
    let mut starts = Vec::with_capacity(panels.len());
    let mut start = 0;
    for &(first, mr) in &panels {
        starts.push(start);
        let block = &mut packed[start..start + mr * depth];
        for r in 0..mr.min(out_channels - first) {
            let row = &weight[(first + r) * depth..][..depth];
            for (k, &w) in row.iter().enumerate() {
                block[k * mr + r] = w;
            }
        }
        start += mr * depth;
    }
    (packed, starts)
}

/// Convolution of `x` (NCHW) with `weight` (OIHW) plus an optional bias into `out` (NCHW),
/// then `epilogue` over every finished band (see the module comment). The caller checked
/// [`suits`].
///
/// # Safety
/// Pointers address contiguous tensors of the given shapes; `out_shape` is the convolution's
/// result shape for these operands and geometry.
#[allow(clippy::too_many_arguments)]
pub unsafe fn conv2d(
    x: *const f32,
    [batch, channels, height, width]: [usize; 4],
    weight: *const f32,
    [out_channels, group_channels, kernel_h, kernel_w]: [usize; 4],
    bias: Option<*const f32>,
    out: *mut f32,
    [_, _, out_h, out_w]: [usize; 4],
    geometry: ConvGeometry,
    epilogue: Option<Epilogue>,
) {
    let groups = geometry.groups.max(1);
    let group_out = out_channels / groups;
    let depth = group_channels * kernel_h * kernel_w;
    let positions = out_h * out_w;
    if batch == 0 || positions == 0 || out_channels == 0 {
        return;
    }
    let weights = std::slice::from_raw_parts(weight, out_channels * depth);
    let packed: Vec<(Vec<f32>, Vec<usize>)> = (0..groups)
        .map(|g| {
            pack_weights(
                &weights[g * group_out * depth..(g + 1) * group_out * depth],
                group_out,
                depth,
            )
        })
        .collect();
    let panels = panels(group_out);
    let padded = Padded::new(
        group_channels,
        [height, width],
        [kernel_h, kernel_w],
        geometry,
    );
    let offsets = padded.tap_offsets([kernel_h, kernel_w], geometry.dilation);
    // Bands of one image split only when the image is big enough to pay for waking the pool
    // (measured: LeNet's first convolution, 117k multiply-adds, took 8 us on one thread and 24
    // split in bands over two).
    let work = batch * out_channels * depth * positions;
    let parallel = threads() > 1 && work >= PARALLEL_WORK;
    let parallel_bands = parallel && out_channels * depth * positions >= PARALLEL_WORK * 16;

    let x = SendPtr(x as *mut f32);
    // Image `n`'s padded copy, one per group.
    let fill = |n: usize, copy: &mut Vec<f32>| {
        copy.resize(groups * padded.size, 0.0);
        for (g, copy) in copy.chunks_mut(padded.size).enumerate() {
            // SAFETY: image `n`, group `g`'s input planes.
            unsafe {
                padded.fill(
                    x.add((n * channels + g * group_channels) * height * width),
                    [height, width],
                    copy,
                )
            }
        }
    };
    let images_in_parallel = parallel && batch >= threads();
    let band_rows = if images_in_parallel || !parallel_bands {
        (BAND_POSITIONS / out_w).clamp(1, out_h)
    } else {
        // One image's bands shared out: at least two per thread, for balance.
        (BAND_POSITIONS / out_w).clamp(1, out_h.div_ceil(2 * threads()))
    };
    let bands = out_h.div_ceil(band_rows);
    let out = SendPtr(out);
    let bias = bias.map(|b| SendPtr(b as *mut f32));
    let band = |n: usize, band: usize, copy: &[f32]| {
        let rows = band * band_rows..((band + 1) * band_rows).min(out_h);
        for g in 0..groups {
            // SAFETY: the band's rows of image `n`, group `g`'s output channels.
            unsafe {
                let output = out.add((n * out_channels + g * group_out) * positions);
                let bias = bias.map(|b| b.add(g * group_out) as *const f32);
                band_tiles(
                    (&panels, &packed[g].0, &packed[g].1),
                    &offsets,
                    copy[g * padded.size..].as_ptr(),
                    padded.columns,
                    bias,
                    output,
                    [group_out, out_w, positions],
                    rows.clone(),
                );
            }
        }
        if let Some(epilogue) = epilogue {
            for o in 0..out_channels {
                let start = (n * out_channels + o) * positions + rows.start * out_w;
                epilogue(start, rows.len() * out_w);
            }
        }
    };
    if images_in_parallel {
        // Whole images per task, each thread padding into its own reused copy.
        (0..batch).into_par_iter().for_each(|n| {
            with_copy(|copy| {
                fill(n, copy);
                (0..bands).for_each(|b| band(n, b, copy));
            })
        });
    } else {
        with_copy(|copy| {
            for n in 0..batch {
                fill(n, copy);
                if parallel_bands && bands >= 2 {
                    (0..bands).into_par_iter().for_each(|b| band(n, b, copy));
                } else {
                    (0..bands).for_each(|b| band(n, b, copy));
                }
            }
        })
    }
}

thread_local! {
    /// Each thread's padded image copy, kept between calls (no allocation or page faults per
    /// call once it has grown).
    static COPY: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's padded-copy buffer (a fresh one if it is already in use).
fn with_copy<R>(f: impl FnOnce(&mut Vec<f32>) -> R) -> R {
    COPY.with(|cell| match cell.try_borrow_mut() {
        Ok(mut copy) => f(&mut copy),
        Err(_) => f(&mut Vec::new()),
    })
}

/// All tiles of output rows `rows` for one image and group: `out_channels` rows of
/// `positions` outputs at `output`, `out_w` per output row. Tiles run along output rows when
/// [`row_tiles`] says so, else over the copy's flat positions (see [`suits`]).
///
/// # Safety
/// As [`conv2d`]; `copy` is the image's padded copy with `columns` per phase row.
#[allow(clippy::too_many_arguments)]
unsafe fn band_tiles(
    (panels, packed, starts): (&[(usize, usize)], &[f32], &[usize]),
    offsets: &[usize],
    copy: *const f32,
    columns: usize,
    bias: Option<*const f32>,
    output: *mut f32,
    [out_channels, out_w, positions]: [usize; 3],
    rows: std::ops::Range<usize>,
) {
    let tile_row = |source: *const f32, out: *mut f32, stride: usize, cols: usize| {
        for (&(channel, mr), &start) in panels.iter().zip(starts) {
            let tile = Tile {
                weights: packed[start..].as_ptr(),
                offsets,
                source,
                bias: bias.map(|b| b.add(channel)),
                out: out.add(channel * stride),
                stride,
                rows: mr.min(out_channels - channel),
                cols,
            };
            #[cfg(target_arch = "x86_64")]
            match mr {
                6 => tile_avx2::<6>(&tile),
                _ => tile_avx2::<4>(&tile),
            }
        }
    };
    if row_tiles(out_w) {
        for oh in rows {
            for ow in (0..out_w).step_by(NR) {
                tile_row(
                    copy.add(oh * columns + ow),
                    output.add(oh * out_w + ow),
                    positions,
                    NR.min(out_w - ow),
                );
            }
        }
        return;
    }
    // Flat tiles: 16 consecutive positions of the copy's `[rows, columns]` grid, wherever rows
    // end, into a scratch tile; then the positions inside the output (`ow < out_w`) are copied
    // to their places, run by run.
    let mut scratch = vec![0f32; out_channels * NR];
    let end = rows.end * columns;
    let mut first = rows.start * columns;
    while first < end {
        tile_row(copy.add(first), scratch.as_mut_ptr(), NR, NR);
        let mut j = 0;
        while j < NR.min(end - first) {
            let (oh, ow) = ((first + j) / columns, (first + j) % columns);
            let run = (columns - ow).min(NR - j).min(end - first - j);
            if ow < out_w {
                let length = run.min(out_w - ow);
                for channel in 0..out_channels {
                    std::ptr::copy_nonoverlapping(
                        scratch.as_ptr().add(channel * NR + j),
                        output.add(channel * positions + oh * out_w + ow),
                        length,
                    );
                }
            }
            j += run;
        }
        first += NR;
    }
}

/// One register tile's operands.
struct Tile<'a> {
    /// `K x MR` packed weights.
    weights: *const f32,
    offsets: &'a [usize],
    /// The padded copy at the tile's first output position.
    source: *const f32,
    bias: Option<*const f32>,
    out: *mut f32,
    /// Floats between the tile's output rows (channels).
    stride: usize,
    /// Valid channels (at most MR) and columns (at most NR).
    rows: usize,
    cols: usize,
}

/// `MR x 16` outputs: per tap, MR broadcast weights times two 8-lane vectors of input.
///
/// # Safety
/// The CPU has AVX2 and FMA; the tile's pointers are valid as described on [`Tile`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2<const MR: usize>(tile: &Tile) {
    let mut acc = [[_mm256_setzero_ps(); 2]; MR];
    let mut weights = tile.weights;
    for &offset in tile.offsets {
        let b = tile.source.add(offset);
        let b0 = _mm256_loadu_ps(b);
        let b1 = _mm256_loadu_ps(b.add(8));
        for (r, acc) in acc.iter_mut().enumerate() {
            let a = _mm256_broadcast_ss(&*weights.add(r));
            acc[0] = _mm256_fmadd_ps(a, b0, acc[0]);
            acc[1] = _mm256_fmadd_ps(a, b1, acc[1]);
        }
        weights = weights.add(MR);
    }
    for (r, acc) in acc.iter().enumerate().take(tile.rows) {
        let (mut v0, mut v1) = (acc[0], acc[1]);
        if let Some(bias) = tile.bias {
            let b = _mm256_set1_ps(*bias.add(r));
            v0 = _mm256_add_ps(v0, b);
            v1 = _mm256_add_ps(v1, b);
        }
        store_row(tile.out.add(r * tile.stride), tile.cols, v0, v1, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::kernels::conv::conv2d_im2col;
    use std::sync::Mutex;

    #[test]
    fn panels_cover_the_channels_with_sixes_then_fours() {
        let layout = |o: usize| panels(o).iter().map(|p| p.1).collect::<Vec<_>>();
        assert_eq!(layout(32), [6, 6, 6, 6, 4, 4]);
        assert_eq!(layout(64), [6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 4]);
        assert_eq!(layout(6), [6]);
        assert_eq!(layout(4), [4]);
        assert_eq!(layout(2), [4]);
        assert_eq!(layout(1), [4]);
        assert_eq!(layout(7), [4, 4]);
        for o in 1..100 {
            let panels = panels(o);
            let mut next = 0;
            for &(first, mr) in &panels {
                assert_eq!(first, next, "{o}: {panels:?}");
                next += mr;
            }
            assert!(next >= o && next < o + 4, "{o}: {panels:?}");
            if o % 2 == 0 && o >= 4 {
                assert_eq!(
                    next, o,
                    "even counts from 4 are covered exactly: {panels:?}"
                );
            }
        }
    }

    /// ([N, C, H, W], [O, KH, KW], stride, padding, dilation, groups)
    type Case = (
        [usize; 4],
        [usize; 3],
        [usize; 2],
        [usize; 2],
        [usize; 2],
        usize,
    );

    /// A convolution kernel's signature (this module's and im2col's).
    type Kernel = unsafe fn(
        *const f32,
        [usize; 4],
        *const f32,
        [usize; 4],
        Option<*const f32>,
        *mut f32,
        [usize; 4],
        ConvGeometry,
        Option<Epilogue>,
    );

    /// Against im2col + `gemm` (itself checked against direct loops in `conv`): strides 1 to 3,
    /// padding 0 to 3, dilation 1 and 2, groups, non-square and 1x1 kernels, channel counts
    /// that leave partial panels, output rows of 12 to 37 (partial 16-column tiles) and of 6
    /// to 10 (flat tiles across row ends), batches 1 (bands in parallel) and 3 (images in
    /// parallel), with and without bias. Tolerance
    /// 1e-4 * (1 + |expected|): the two kernels sum the same products in different orders.
    #[test]
    fn direct_convolutions_match_im2col() {
        if !crate::cpu::kernels::matmul::avx2_fma() {
            eprintln!("skipped: this CPU has no AVX2+FMA, so the kernel never runs");
            return;
        }
        let cases: &[Case] = &[
            // ([N, C, H, W], [O, KH, KW], stride, padding, dilation, groups)
            ([1, 3, 20, 24], [8, 3, 3], [1, 1], [1, 1], [1, 1], 1),
            ([3, 4, 17, 36], [7, 3, 3], [1, 1], [1, 1], [1, 1], 1),
            ([2, 5, 31, 56], [12, 3, 3], [2, 2], [1, 1], [1, 1], 1),
            ([3, 2, 16, 40], [5, 5, 5], [3, 3], [2, 2], [1, 1], 1),
            ([1, 4, 19, 29], [6, 3, 3], [1, 1], [2, 2], [2, 2], 1),
            ([2, 6, 12, 14], [9, 2, 3], [1, 1], [0, 1], [1, 1], 3),
            ([3, 4, 13, 13], [4, 1, 1], [1, 1], [1, 1], [1, 1], 2),
            ([1, 1, 28, 28], [6, 5, 5], [1, 1], [2, 2], [1, 1], 1),
            ([2, 8, 16, 50], [16, 3, 2], [1, 2], [3, 0], [2, 1], 4),
            ([1, 32, 32, 32], [32, 3, 3], [1, 1], [1, 1], [1, 1], 1),
            // Short rows: flat tiles across row ends.
            ([2, 6, 14, 14], [16, 5, 5], [1, 1], [0, 0], [1, 1], 1),
            ([3, 5, 7, 7], [7, 3, 3], [1, 1], [1, 1], [1, 1], 1),
            ([2, 4, 9, 11], [6, 3, 3], [2, 2], [1, 1], [1, 1], 2),
            ([1, 64, 10, 10], [64, 3, 3], [1, 1], [1, 1], [1, 1], 1),
        ];
        for &([n, c, h, w], [o, kh, kw], stride, padding, dilation, groups) in cases {
            let geometry = ConvGeometry {
                stride,
                padding,
                dilation,
                groups,
            };
            let out_size = |size: usize, k: usize, axis: usize| {
                (size + 2 * padding[axis] - dilation[axis] * (k - 1) - 1) / stride[axis] + 1
            };
            let (oh, ow) = (out_size(h, kh, 0), out_size(w, kw, 1));
            assert!(suits([kh, kw], geometry, w, ow), "case {o} {kh}x{kw} {ow}");
            let x: Vec<f32> = (0..n * c * h * w)
                .map(|v| (v as f32 * 0.37).sin())
                .collect();
            let cg = c / groups;
            let weight: Vec<f32> = (0..o * cg * kh * kw)
                .map(|v| (v as f32 * 0.11).cos())
                .collect();
            let bias: Vec<f32> = (0..o).map(|v| v as f32 * 0.5 - 1.0).collect();
            for with_bias in [true, false] {
                let run = |kernel: Kernel| {
                    let mut out = vec![f32::NAN; n * o * oh * ow];
                    unsafe {
                        kernel(
                            x.as_ptr(),
                            [n, c, h, w],
                            weight.as_ptr(),
                            [o, cg, kh, kw],
                            with_bias.then_some(bias.as_ptr()),
                            out.as_mut_ptr(),
                            [n, o, oh, ow],
                            geometry,
                            None,
                        )
                    };
                    out
                };
                let expected = run(conv2d_im2col);
                let actual = run(conv2d);
                for (index, (e, a)) in expected.iter().zip(&actual).enumerate() {
                    assert!(
                        (e - a).abs() <= 1e-4 * (1.0 + e.abs()),
                        "{geometry:?} x {:?} w {:?} bias {with_bias}, element {index}: \
                         {e} vs {a}",
                        [n, c, h, w],
                        [o, cg, kh, kw],
                    );
                }
            }
        }
    }

    /// The epilogue sees every output element exactly once, after it was written, for a batch
    /// of one (bands in parallel) and of five (images in parallel).
    #[test]
    fn the_epilogue_covers_each_output_once_after_it_is_written() {
        if !crate::cpu::kernels::matmul::avx2_fma() {
            eprintln!("skipped: this CPU has no AVX2+FMA, so the kernel never runs");
            return;
        }
        for n in [1, 5] {
            let (c, h, w, o) = (16, 40, 40, 24);
            let geometry = ConvGeometry {
                stride: [1, 1],
                padding: [1, 1],
                dilation: [1, 1],
                groups: 1,
            };
            let x: Vec<f32> = (0..n * c * h * w)
                .map(|v| (v as f32 * 0.37).sin())
                .collect();
            let weight: Vec<f32> = (0..o * c * 9).map(|v| (v as f32 * 0.11).cos()).collect();
            let mut out = vec![f32::NAN; n * o * h * w];
            let total = out.len();
            let pointer = SendPtr(out.as_mut_ptr());
            let ranges = Mutex::new(Vec::new());
            let epilogue = |start: usize, length: usize| {
                // Every element of the range is already written (not the NaN fill).
                let part = unsafe { std::slice::from_raw_parts(pointer.add(start), length) };
                assert!(part.iter().all(|v| !v.is_nan()), "range {start}+{length}");
                ranges.lock().unwrap().push((start, length));
            };
            unsafe {
                conv2d(
                    x.as_ptr(),
                    [n, c, h, w],
                    weight.as_ptr(),
                    [o, c, 3, 3],
                    None,
                    pointer.get(),
                    [n, o, h, w],
                    geometry,
                    Some(&epilogue),
                )
            };
            let mut ranges = ranges.into_inner().unwrap();
            ranges.sort();
            let mut next = 0;
            for (start, length) in ranges {
                assert_eq!(start, next, "ranges leave a gap or overlap at {next}");
                next += length;
            }
            assert_eq!(next, total);
        }
    }
}
