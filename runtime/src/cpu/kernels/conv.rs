//! 2-D convolution (NCHW input, OIHW weight) as GEMM: a 1x1 convolution with stride 1 and no
//! padding multiplies the weight by the image directly; every other shape first unfolds the
//! image's windows into columns (im2col, `[C/g * KH * KW, OH * OW]`) and multiplies the weight
//! by them. A bias is written into the output first and the product accumulated onto it, so it
//! costs no extra pass. Images run in parallel when there are enough of them; a single image
//! splits inside the product instead. With AVX2+FMA and output rows of at least 12, every
//! convolution but a plain 1x1 one runs on the register-tile kernel of [`conv_direct`] instead
//! (no im2col matrix). Either way the
//! caller's epilogue runs over each finished part of the output (an image, or a band of rows).

use super::matmul::gemm_f32;
use super::{conv_direct, for_column_blocks, threads, Epilogue, SendPtr, PARALLEL_WORK};
use rayon::prelude::*;

#[derive(Clone, Copy, Debug)]
pub struct ConvGeometry {
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
}

/// # Safety
/// Pointers address contiguous tensors of the given shapes; `out_shape` is the convolution's
/// result shape for these operands and geometry (checked at compile time).
#[allow(clippy::too_many_arguments)]
pub unsafe fn conv2d(
    x: *const f32,
    x_shape: [usize; 4],
    weight: *const f32,
    weight_shape: [usize; 4],
    bias: Option<*const f32>,
    out: *mut f32,
    out_shape: [usize; 4],
    geometry: ConvGeometry,
    epilogue: Option<Epilogue>,
) {
    let kernel = if conv_direct::suits(
        [weight_shape[2], weight_shape[3]],
        geometry,
        x_shape[3],
        out_shape[3],
    ) {
        conv_direct::conv2d
    } else {
        conv2d_im2col
    };
    kernel(
        x,
        x_shape,
        weight,
        weight_shape,
        bias,
        out,
        out_shape,
        geometry,
        epilogue,
    )
}

/// [`conv2d`] through im2col and `gemm` (or `gemm` alone for a 1x1 convolution), whatever the
/// CPU and shape.
///
/// # Safety
/// As [`conv2d`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn conv2d_im2col(
    x: *const f32,
    x_shape: [usize; 4],
    weight: *const f32,
    weight_shape: [usize; 4],
    bias: Option<*const f32>,
    out: *mut f32,
    out_shape: [usize; 4],
    geometry: ConvGeometry,
    epilogue: Option<Epilogue>,
) {
    let [batch, channels, height, width] = x_shape;
    let [out_channels, group_channels, kernel_h, kernel_w] = weight_shape;
    let [_, _, out_h, out_w] = out_shape;
    let groups = geometry.groups.max(1);
    let group_out = out_channels / groups;
    let depth = group_channels * kernel_h * kernel_w;
    let positions = out_h * out_w;
    if batch == 0 || positions == 0 || out_channels == 0 {
        return;
    }
    let direct =
        kernel_h == 1 && kernel_w == 1 && geometry.stride == [1, 1] && geometry.padding == [0, 0];
    if !direct && batch >= 2 && positions < BLOCK_COLUMNS {
        image_blocks(
            x,
            x_shape,
            weight,
            weight_shape,
            bias,
            out,
            out_shape,
            geometry,
            epilogue,
        );
        return;
    }
    let (x, weight, out) = (
        SendPtr(x as *mut f32),
        SendPtr(weight as *mut f32),
        SendPtr(out),
    );
    let bias = bias.map(|b| SendPtr(b as *mut f32));
    let image = |n: usize, columns: &mut Vec<f32>, parallel_gemm: bool| {
        for group in 0..groups {
            // SAFETY: offsets of image `n`, group `group` inside the contiguous tensors.
            unsafe {
                let input = x.add((n * channels + group * group_channels) * height * width);
                let output = out.add((n * out_channels + group * group_out) * positions);
                let accumulate = if let Some(bias) = bias {
                    for o in 0..group_out {
                        let value = *bias.add(group * group_out + o);
                        std::slice::from_raw_parts_mut(output.add(o * positions), positions)
                            .fill(value);
                    }
                    true
                } else {
                    false
                };
                let columns_pointer = if direct {
                    input as *const f32
                } else {
                    columns.resize(depth * positions, 0.0);
                    im2col(
                        input,
                        [group_channels, height, width],
                        [kernel_h, kernel_w],
                        [out_h, out_w],
                        geometry,
                        columns,
                        positions,
                        parallel_gemm,
                    );
                    columns.as_ptr()
                };
                if parallel_gemm {
                    // One image: output positions in blocks, one block per thread.
                    gemm_column_blocks(
                        (group_out, depth, positions),
                        weight.add(group * group_out * depth),
                        columns_pointer,
                        output,
                        accumulate,
                    );
                } else {
                    gemm_f32(
                        (group_out, depth, positions),
                        weight.add(group * group_out * depth),
                        (depth as isize, 1),
                        columns_pointer,
                        (positions as isize, 1),
                        output,
                        positions as isize,
                        accumulate,
                        false,
                    );
                }
            }
        }
        if let Some(epilogue) = epilogue {
            epilogue(n * out_channels * positions, out_channels * positions);
        }
    };
    let work = batch * out_channels * depth * positions;
    if batch >= 2 && threads() > 1 && work >= PARALLEL_WORK {
        (0..batch)
            .into_par_iter()
            .for_each_init(Vec::new, |columns, n| image(n, columns, false));
    } else {
        let mut columns = Vec::new();
        for n in 0..batch {
            image(n, &mut columns, true);
        }
    }
}

/// Images with fewer output positions than this share one product: the columns of several
/// images side by side, so that each product is wide enough for `gemm` to run near its peak.
const BLOCK_COLUMNS: usize = 512;

/// Convolution of small images in blocks: the windows of a block of images unfolded side by
/// side, one product per block and group, then each image's part copied to its place in the
/// output. Blocks run in parallel.
///
/// # Safety
/// As [`conv2d`].
#[allow(clippy::too_many_arguments)]
unsafe fn image_blocks(
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
    let per_block = BLOCK_COLUMNS.div_ceil(positions).min(batch);
    let blocks = batch.div_ceil(per_block);
    let (x, weight, out) = (
        SendPtr(x as *mut f32),
        SendPtr(weight as *mut f32),
        SendPtr(out),
    );
    let bias = bias.map(|b| SendPtr(b as *mut f32));
    let block = |index: usize, scratch: &mut (Vec<f32>, Vec<f32>)| {
        let first = index * per_block;
        let count = per_block.min(batch - first);
        let wide = count * positions;
        let (columns, product) = scratch;
        columns.resize(depth * wide, 0.0);
        product.resize(group_out * wide, 0.0);
        for group in 0..groups {
            // SAFETY (this block): offsets of images `first..first + count` and of `group`
            // inside the contiguous tensors; the scratch holds `depth` and `group_out` rows of
            // `wide` columns.
            unsafe {
                for image in 0..count {
                    let input = x.add(
                        ((first + image) * channels + group * group_channels) * height * width,
                    );
                    im2col(
                        input,
                        [group_channels, height, width],
                        [kernel_h, kernel_w],
                        [out_h, out_w],
                        geometry,
                        &mut columns[image * positions..],
                        wide,
                        false,
                    );
                }
                if let Some(bias) = bias {
                    for (o, row) in product.chunks_exact_mut(wide).enumerate() {
                        row.fill(*bias.add(group * group_out + o));
                    }
                }
                gemm_f32(
                    (group_out, depth, wide),
                    weight.add(group * group_out * depth),
                    (depth as isize, 1),
                    columns.as_ptr(),
                    (wide as isize, 1),
                    product.as_mut_ptr(),
                    wide as isize,
                    bias.is_some(),
                    false,
                );
                for image in 0..count {
                    for (o, row) in product.chunks_exact(wide).enumerate() {
                        let destination = out.add(
                            ((first + image) * out_channels + group * group_out + o) * positions,
                        );
                        std::ptr::copy_nonoverlapping(
                            row.as_ptr().add(image * positions),
                            destination,
                            positions,
                        );
                    }
                }
            }
        }
        if let Some(epilogue) = epilogue {
            epilogue(
                first * out_channels * positions,
                count * out_channels * positions,
            );
        }
    };
    let work = batch * out_channels * depth * positions;
    if blocks >= 2 && threads() > 1 && work >= PARALLEL_WORK {
        (0..blocks).into_par_iter().for_each_init(
            || (Vec::new(), Vec::new()),
            |scratch, index| block(index, scratch),
        );
    } else {
        let mut scratch = (Vec::new(), Vec::new());
        for index in 0..blocks {
            block(index, &mut scratch);
        }
    }
}

/// Unfolds one image's windows: row `(c * KH + kh) * KW + kw`, column `oh * OW + ow` holds the
/// input at `(c, oh * s - p + kh * d, ow * s - p + kw * d)`, zero outside the image. Rows start
/// `row_stride` elements apart (at least `OH * OW`; more when several images' columns sit side
/// by side in one matrix), so `columns` holds at least `(rows - 1) * row_stride + OH * OW`.
///
/// # Safety
/// `input` addresses `channels` contiguous planes of `height * width`.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn im2col(
    input: *const f32,
    [channels, height, width]: [usize; 3],
    [kernel_h, kernel_w]: [usize; 2],
    [out_h, out_w]: [usize; 2],
    geometry: ConvGeometry,
    columns: &mut [f32],
    row_stride: usize,
    parallel: bool,
) {
    let [stride_h, stride_w] = geometry.stride;
    let [pad_h, pad_w] = geometry.padding;
    let [dilation_h, dilation_w] = geometry.dilation;
    let positions = out_h * out_w;
    let rows_per_channel = kernel_h * kernel_w * row_stride;
    let input = SendPtr(input as *mut f32);
    let one_channel = |c: usize, block: &mut [f32]| {
        // SAFETY: channel `c` of the image; `block` is that channel's rows of the columns.
        let plane = unsafe { input.add(c * height * width) };
        for kh in 0..kernel_h {
            for kw in 0..kernel_w {
                let row = (kh * kernel_w + kw) * row_stride;
                let row = &mut block[row..row + positions];
                let column_shift = (kw * dilation_w) as isize - pad_w as isize;
                // Output columns whose input column lies inside the image.
                let first = if column_shift >= 0 {
                    0
                } else {
                    ((-column_shift) as usize).div_ceil(stride_w)
                };
                let last = if (width as isize) <= column_shift {
                    0
                } else {
                    (((width as isize - column_shift) as usize).div_ceil(stride_w)).min(out_w)
                };
                for oh in 0..out_h {
                    let ih = (oh * stride_h + kh * dilation_h) as isize - pad_h as isize;
                    let segment = &mut row[oh * out_w..(oh + 1) * out_w];
                    if ih < 0 || ih >= height as isize || first >= last {
                        segment.fill(0.0);
                        continue;
                    }
                    // SAFETY: row `ih` of the plane, inside the image.
                    let source = unsafe { plane.add(ih as usize * width) };
                    segment[..first].fill(0.0);
                    segment[last..].fill(0.0);
                    // SAFETY: columns `first..last` map inside the row (computed above).
                    unsafe {
                        if stride_w == 1 {
                            let start = (first as isize + column_shift) as usize;
                            let length = last - first;
                            if length >= 32 {
                                std::ptr::copy_nonoverlapping(
                                    source.add(start),
                                    segment.as_mut_ptr().add(first),
                                    length,
                                );
                            } else {
                                // Short rows: eight values at a time inline, not a call to
                                // `memmove` per row.
                                let source = std::slice::from_raw_parts(source.add(start), length);
                                copy_short(source, &mut segment[first..last]);
                            }
                        } else {
                            for (ow, slot) in segment.iter_mut().enumerate().take(last).skip(first)
                            {
                                *slot = *source.offset((ow * stride_w) as isize + column_shift);
                            }
                        }
                    }
                }
            }
        }
    };
    if channels == 0 || kernel_h * kernel_w == 0 || positions == 0 {
        return;
    }
    let used = (channels * kernel_h * kernel_w - 1) * row_stride + positions;
    let blocks = columns[..used].chunks_mut(rows_per_channel);
    if parallel && threads() > 1 && channels >= 2 && channels * rows_per_channel >= PARALLEL_WORK {
        blocks
            .enumerate()
            .collect::<Vec<_>>()
            .into_par_iter()
            .for_each(|(c, block)| one_channel(c, block));
    } else {
        for (c, block) in blocks.enumerate() {
            one_channel(c, block);
        }
    }
}

/// Copies a short run of values in fixed-size pieces the compiler keeps inline.
fn copy_short(source: &[f32], destination: &mut [f32]) {
    let mut pieces = destination.chunks_exact_mut(8);
    let mut from = source.chunks_exact(8);
    for (to, from) in (&mut pieces).zip(&mut from) {
        let piece: [f32; 8] = from.try_into().expect("eight values");
        to.copy_from_slice(&piece);
    }
    for (to, from) in pieces.into_remainder().iter_mut().zip(from.remainder()) {
        *to = *from;
    }
}

/// `out = lhs @ rhs` (row-major, `lhs` is `m x k`, `rhs` is `k x n`, `out` is `m x n`) with the
/// columns split into one block per thread: one image's convolution as parallel products.
unsafe fn gemm_column_blocks(
    (m, k, n): (usize, usize, usize),
    lhs: *const f32,
    rhs: *const f32,
    out: *mut f32,
    accumulate: bool,
) {
    let tasks = threads();
    if tasks < 2 || m * k * n < PARALLEL_WORK * 16 || n < 32 * tasks {
        gemm_f32(
            (m, k, n),
            lhs,
            (k as isize, 1),
            rhs,
            (n as isize, 1),
            out,
            n as isize,
            accumulate,
            false,
        );
        return;
    }
    let (lhs, rhs, out) = (
        SendPtr(lhs as *mut f32),
        SendPtr(rhs as *mut f32),
        SendPtr(out),
    );
    for_column_blocks(n, 16, |columns| {
        // SAFETY: columns `columns`, disjoint per task.
        unsafe {
            gemm_f32(
                (m, k, columns.len()),
                lhs.get(),
                (k as isize, 1),
                rhs.add(columns.start),
                (n as isize, 1),
                out.add(columns.start),
                n as isize,
                accumulate,
                false,
            )
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct loops, the definition.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        x: &[f32],
        [n, c, h, w]: [usize; 4],
        weight: &[f32],
        [o, cg, kh, kw]: [usize; 4],
        [oh, ow]: [usize; 2],
        g: ConvGeometry,
    ) -> Vec<f32> {
        let groups = g.groups;
        let og = o / groups;
        let mut out = vec![0f32; n * o * oh * ow];
        for b in 0..n {
            for oc in 0..o {
                let group = oc / og;
                for y in 0..oh {
                    for xx in 0..ow {
                        let mut sum = 0.0f32;
                        for ic in 0..cg {
                            for i in 0..kh {
                                for j in 0..kw {
                                    let iy = (y * g.stride[0] + i * g.dilation[0]) as isize
                                        - g.padding[0] as isize;
                                    let ix = (xx * g.stride[1] + j * g.dilation[1]) as isize
                                        - g.padding[1] as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                        continue;
                                    }
                                    let channel = group * cg + ic;
                                    sum += x
                                        [((b * c + channel) * h + iy as usize) * w + ix as usize]
                                        * weight[((oc * cg + ic) * kh + i) * kw + j];
                                }
                            }
                        }
                        out[((b * o + oc) * oh + y) * ow + xx] = sum;
                    }
                }
            }
        }
        out
    }

    /// One large image takes the parallel im2col and column-block paths (called directly: on
    /// AVX2+FMA `conv2d` gives this shape to the register-tile kernel).
    #[test]
    fn one_large_image_splits_over_threads_and_matches_loops() {
        let (n, c, h, w, o, k) = (1, 16, 32, 32, 32, 3);
        let g = ConvGeometry {
            stride: [1, 1],
            padding: [1, 1],
            dilation: [1, 1],
            groups: 1,
        };
        let x: Vec<f32> = (0..n * c * h * w).map(|v| (v as f32 * 0.7).sin()).collect();
        let weight: Vec<f32> = (0..o * c * k * k).map(|v| (v as f32 * 0.3).cos()).collect();
        let bias: Vec<f32> = (0..o).map(|v| v as f32 * 0.1).collect();
        let mut out = vec![f32::NAN; n * o * h * w];
        unsafe {
            conv2d_im2col(
                x.as_ptr(),
                [n, c, h, w],
                weight.as_ptr(),
                [o, c, k, k],
                Some(bias.as_ptr()),
                out.as_mut_ptr(),
                [n, o, h, w],
                g,
                None,
            )
        };
        let expected = reference(&x, [n, c, h, w], &weight, [o, c, k, k], [h, w], g);
        for (index, (e, a)) in expected.iter().zip(&out).enumerate() {
            let e = e + bias[index / (h * w) % o];
            assert!((e - a).abs() < 1e-3, "{index}: {e} vs {a}");
        }
    }

    /// Batches of 1 (one image at a time), 2 (one block) and 13 (blocks of 9 and 4 images side
    /// by side, run in parallel), with and without bias.
    #[test]
    fn strided_padded_dilated_grouped_convolutions_match_loops() {
        for &(stride, padding, dilation, groups, k) in &[
            (1, 0, 1, 1, 1),
            (1, 1, 1, 1, 3),
            (2, 1, 1, 1, 3),
            (2, 2, 1, 2, 5),
            (1, 2, 2, 1, 3),
            (3, 0, 1, 4, 2),
        ] {
            for n in [1, 2, 13] {
                let (c, h, w, o) = (4, 9, 7, 8);
                let with_bias = n != 2;
                let g = ConvGeometry {
                    stride: [stride, stride],
                    padding: [padding, padding],
                    dilation: [dilation, dilation],
                    groups,
                };
                let span = dilation * (k - 1) + 1;
                let oh = (h + 2 * padding - span) / stride + 1;
                let ow = (w + 2 * padding - span) / stride + 1;
                let x: Vec<f32> = (0..n * c * h * w).map(|v| (v as f32 * 0.7).sin()).collect();
                let weight: Vec<f32> = (0..o * (c / groups) * k * k)
                    .map(|v| (v as f32 * 0.3).cos())
                    .collect();
                let bias: Vec<f32> = (0..o).map(|v| v as f32 * 0.25 - 1.0).collect();
                let mut out = vec![f32::NAN; n * o * oh * ow];
                unsafe {
                    conv2d(
                        x.as_ptr(),
                        [n, c, h, w],
                        weight.as_ptr(),
                        [o, c / groups, k, k],
                        with_bias.then_some(bias.as_ptr()),
                        out.as_mut_ptr(),
                        [n, o, oh, ow],
                        g,
                        None,
                    )
                };
                let expected = reference(
                    &x,
                    [n, c, h, w],
                    &weight,
                    [o, c / groups, k, k],
                    [oh, ow],
                    g,
                );
                for (index, (e, a)) in expected.iter().zip(&out).enumerate() {
                    let e = if with_bias {
                        e + bias[index / (oh * ow) % o]
                    } else {
                        *e
                    };
                    assert!((e - a).abs() < 1e-4, "{g:?} k={k} n={n}: {e} vs {a}");
                }
            }
        }
    }
}
