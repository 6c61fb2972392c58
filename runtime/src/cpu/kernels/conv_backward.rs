//! The gradients of 2-D convolution (NCHW input, OIHW weight) as GEMM, the adjoints of
//! [`conv2d`](super::conv::conv2d):
//!
//! - with respect to the weight: the images' windows unfolded into columns (the forward's
//!   im2col), then `dW_g += dY_g [O/g, P] x cols_g^T [P, C/g * KH * KW]` per group. Images are
//!   taken in chunks whose columns sit side by side in one matrix, so each product reduces over
//!   `images * P` at once; chunks run in parallel, each into a partial sum of its own, and the
//!   partials are added in chunk order at the end. The chunks depend only on the shapes (never
//!   on the thread count), so the result is the same on any number of threads.
//! - with respect to the input: `dcols_g [C/g * KH * KW, P] = W_g^T x dY_g` per image and group,
//!   then the columns folded back (col2im, each window tap added onto the input position it
//!   read). A 1x1 convolution with stride 1 and no padding writes the product straight into
//!   the input gradient. Images run in parallel; a single image splits inside the product and
//!   folds its channels in parallel.

use super::conv::{im2col, ConvGeometry};
use super::matmul::gemm_f32;
use super::{threads, SendPtr, PARALLEL_WORK};
use rayon::prelude::*;

/// At most this many image chunks (and partial weight gradients) in the weight gradient.
const MAX_CHUNKS: usize = 16;

/// The partial weight gradients together hold at most about this many floats.
const PARTIAL_BUDGET: usize = 1 << 23;

/// One chunk's unfolded columns hold at most about this many floats (the chunk's images go
/// through in slices that fit).
const COLUMNS_BUDGET: usize = 1 << 21;

/// The gradient of a convolution with respect to its weight: `out` (`[O, C/g, KH, KW]`) from
/// the input `x` and the output gradient `gradient` (`[N, O, OH, OW]`).
///
/// # Safety
/// Pointers address contiguous tensors of the given shapes, which are consistent for this
/// geometry (checked at compile time); `out` does not overlap the operands.
pub unsafe fn conv2d_backward_weight(
    x: *const f32,
    x_shape: [usize; 4],
    gradient: *const f32,
    gradient_shape: [usize; 4],
    out: *mut f32,
    weight_shape: [usize; 4],
    geometry: ConvGeometry,
) {
    let [batch, channels, height, width] = x_shape;
    let [_, out_channels, out_h, out_w] = gradient_shape;
    let [_, group_channels, kernel_h, kernel_w] = weight_shape;
    let groups = geometry.groups.max(1);
    let group_out = out_channels / groups;
    let depth = group_channels * kernel_h * kernel_w;
    let positions = out_h * out_w;
    let total = out_channels * depth;
    std::ptr::write_bytes(out, 0, total);
    if batch == 0 || positions == 0 || total == 0 {
        return;
    }
    let work = batch * total * positions;
    let chunks = if work < PARALLEL_WORK {
        1
    } else {
        batch.min(MAX_CHUNKS).min((PARTIAL_BUDGET / total).max(1))
    };
    let per_chunk = batch.div_ceil(chunks);
    let chunks = batch.div_ceil(per_chunk);
    // Images per product: as many of the chunk's as the columns budget allows.
    let slice = (COLUMNS_BUDGET / (depth * positions).max(1)).clamp(1, per_chunk);
    let (x, gradient, out) = (
        SendPtr(x as *mut f32),
        SendPtr(gradient as *mut f32),
        SendPtr(out),
    );
    // Adds images `first..last` into `sums` (`[O, depth]`), unfolding into `columns` and
    // gathering the gradient rows into `rows`.
    let accumulate = |first: usize, last: usize, sums: *mut f32, buffers: &mut Buffers| {
        let mut start = first;
        while start < last {
            let end = (start + slice).min(last);
            let images = end - start;
            let width_all = images * positions;
            buffers.columns.resize(depth * width_all, 0.0);
            buffers.rows.resize(group_out * width_all, 0.0);
            for group in 0..groups {
                for (i, n) in (start..end).enumerate() {
                    // SAFETY: image `n`, group `group` of the input; its columns start at
                    // column `i * positions` of rows `width_all` apart.
                    unsafe {
                        im2col(
                            x.add((n * channels + group * group_channels) * height * width),
                            [group_channels, height, width],
                            [kernel_h, kernel_w],
                            [out_h, out_w],
                            geometry,
                            &mut buffers.columns[i * positions..],
                            width_all,
                            chunks == 1,
                        );
                    }
                }
                // The group's gradient rows, images side by side: `[O/g, images * P]`.
                let (source, source_row) = if images == 1 {
                    (
                        unsafe {
                            gradient.add((start * out_channels + group * group_out) * positions)
                        } as *const f32,
                        positions,
                    )
                } else {
                    for (i, n) in (start..end).enumerate() {
                        for o in 0..group_out {
                            // SAFETY: row `o` of image `n`'s group `group` gradient.
                            let row = unsafe {
                                std::slice::from_raw_parts(
                                    gradient.add(
                                        ((n * out_channels) + group * group_out + o) * positions,
                                    ),
                                    positions,
                                )
                            };
                            let at = o * width_all + i * positions;
                            buffers.rows[at..at + positions].copy_from_slice(row);
                        }
                    }
                    (buffers.rows.as_ptr(), width_all)
                };
                // SAFETY: `[O/g, images * P] x [images * P, depth]` (the columns read
                // transposed) onto the group's rows of `sums`.
                unsafe {
                    gemm_f32(
                        (group_out, width_all, depth),
                        source,
                        (source_row as isize, 1),
                        buffers.columns.as_ptr(),
                        (1, width_all as isize),
                        sums.add(group * group_out * depth),
                        depth as isize,
                        true,
                        chunks == 1,
                    );
                }
            }
            start = end;
        }
    };
    if chunks == 1 {
        let mut buffers = Buffers::default();
        accumulate(0, batch, out.get(), &mut buffers);
        return;
    }
    let mut partials = vec![0f32; chunks * total];
    partials.par_chunks_mut(total).enumerate().for_each_init(
        Buffers::default,
        |buffers, (chunk, sums)| {
            let first = chunk * per_chunk;
            let last = ((chunk + 1) * per_chunk).min(batch);
            accumulate(first, last, sums.as_mut_ptr(), buffers);
        },
    );
    // The partials added in chunk order, in parallel over blocks of the result.
    let result = std::slice::from_raw_parts_mut(out.get(), total);
    let add = |(block, destination): (usize, &mut [f32])| {
        let offset = block * REDUCE_BLOCK;
        for chunk in 0..chunks {
            let partial = &partials[chunk * total + offset..][..destination.len()];
            for (d, p) in destination.iter_mut().zip(partial) {
                *d += p;
            }
        }
    };
    if total * chunks >= PARALLEL_WORK && threads() > 1 {
        result
            .par_chunks_mut(REDUCE_BLOCK)
            .enumerate()
            .for_each(add);
    } else {
        result.chunks_mut(REDUCE_BLOCK).enumerate().for_each(add);
    }
}

/// Elements per task when the partial weight gradients are added up.
const REDUCE_BLOCK: usize = 4096;

/// Scratch space of one task.
#[derive(Default)]
struct Buffers {
    columns: Vec<f32>,
    rows: Vec<f32>,
}

/// The gradient of a convolution with respect to its input: `out` (`[N, C, H, W]`) from the
/// output gradient `gradient` (`[N, O, OH, OW]`) and the weight (`[O, C/g, KH, KW]`).
///
/// # Safety
/// Pointers address contiguous tensors of the given shapes, which are consistent for this
/// geometry (checked at compile time); `out` does not overlap the operands.
pub unsafe fn conv2d_backward_input(
    gradient: *const f32,
    gradient_shape: [usize; 4],
    weight: *const f32,
    weight_shape: [usize; 4],
    out: *mut f32,
    x_shape: [usize; 4],
    geometry: ConvGeometry,
) {
    let [batch, channels, height, width] = x_shape;
    let [_, out_channels, out_h, out_w] = gradient_shape;
    let [_, group_channels, kernel_h, kernel_w] = weight_shape;
    let groups = geometry.groups.max(1);
    let group_out = out_channels / groups;
    let depth = group_channels * kernel_h * kernel_w;
    let positions = out_h * out_w;
    let plane = height * width;
    let direct =
        kernel_h == 1 && kernel_w == 1 && geometry.stride == [1, 1] && geometry.padding == [0, 0];
    if batch * channels * plane == 0 {
        return;
    }
    let (gradient, weight, out) = (
        SendPtr(gradient as *mut f32),
        SendPtr(weight as *mut f32),
        SendPtr(out),
    );
    let image = |n: usize, columns: &mut Vec<f32>, parallel: bool| {
        for group in 0..groups {
            // SAFETY: offsets of image `n`, group `group` inside the contiguous tensors.
            unsafe {
                let source = gradient.add((n * out_channels + group * group_out) * positions);
                let kernel = weight.add(group * group_out * depth);
                let destination = out.add((n * channels + group * group_channels) * plane);
                if direct {
                    // `dX_g [C/g, HW] = W_g^T [C/g, O/g] x dY_g [O/g, HW]`.
                    gemm_f32(
                        (group_channels, group_out, positions),
                        kernel,
                        (1, depth as isize),
                        source,
                        (positions as isize, 1),
                        destination,
                        positions as isize,
                        false,
                        parallel,
                    );
                    continue;
                }
                columns.resize(depth * positions, 0.0);
                gemm_f32(
                    (depth, group_out, positions),
                    kernel,
                    (1, depth as isize),
                    source,
                    (positions as isize, 1),
                    columns.as_mut_ptr(),
                    positions as isize,
                    false,
                    parallel,
                );
                col2im(
                    columns,
                    destination,
                    [group_channels, height, width],
                    [kernel_h, kernel_w],
                    [out_h, out_w],
                    geometry,
                    parallel,
                );
            }
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
            image(n, &mut columns, batch == 1);
        }
    }
}

/// Folds one image's columns back (the adjoint of im2col): the input gradient at
/// `(c, oh * s - p + kh * d, ow * s - p + kw * d)` is the sum of column `oh * OW + ow` of row
/// `(c * KH + kh) * KW + kw` over every tap that reads it; positions no tap reads are zero.
/// Channels are independent (each writes its own plane), so they split over threads when
/// `parallel`.
unsafe fn col2im(
    columns: &[f32],
    out: *mut f32,
    [channels, height, width]: [usize; 3],
    [kernel_h, kernel_w]: [usize; 2],
    [out_h, out_w]: [usize; 2],
    geometry: ConvGeometry,
    parallel: bool,
) {
    let [stride_h, stride_w] = geometry.stride;
    let [pad_h, pad_w] = geometry.padding;
    let [dilation_h, dilation_w] = geometry.dilation;
    let positions = out_h * out_w;
    let rows_per_channel = kernel_h * kernel_w * positions;
    let out = SendPtr(out);
    let one_channel = |c: usize| {
        // SAFETY: plane `c` of the image's gradient, written only by this task.
        let plane =
            unsafe { std::slice::from_raw_parts_mut(out.add(c * height * width), height * width) };
        plane.fill(0.0);
        let block = &columns[c * rows_per_channel..(c + 1) * rows_per_channel];
        for kh in 0..kernel_h {
            for kw in 0..kernel_w {
                let row = (kh * kernel_w + kw) * positions;
                let row = &block[row..row + positions];
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
                if first >= last {
                    continue;
                }
                for oh in 0..out_h {
                    let ih = (oh * stride_h + kh * dilation_h) as isize - pad_h as isize;
                    if ih < 0 || ih >= height as isize {
                        continue;
                    }
                    let segment = &row[oh * out_w + first..oh * out_w + last];
                    let input_row = &mut plane[ih as usize * width..(ih as usize + 1) * width];
                    let start = (first as isize * stride_w as isize + column_shift) as usize;
                    if stride_w == 1 {
                        for (d, s) in input_row[start..start + segment.len()]
                            .iter_mut()
                            .zip(segment)
                        {
                            *d += s;
                        }
                    } else {
                        for (d, s) in input_row[start..].iter_mut().step_by(stride_w).zip(segment) {
                            *d += s;
                        }
                    }
                }
            }
        }
    };
    if parallel && threads() > 1 && channels >= 2 && channels * rows_per_channel >= PARALLEL_WORK {
        (0..channels).into_par_iter().for_each(one_channel);
    } else {
        (0..channels).for_each(one_channel);
    }
}

#[cfg(test)]
mod tests {
    //! Both gradients against the interpreter's kernels (direct loops accumulating in f64), over
    //! random shapes and geometries: strides, padding, dilation, groups, odd sizes, 1x1 kernels
    //! and batch 1. Tolerance: `1e-4 * (1 + |expected|)` per element (f32 products summed in
    //! another order; operands are in [-1, 1) and sums have at most a few hundred terms).

    use super::*;
    use modelc_compiler::interp::kernels::{self as interp, Conv2dAttributes};
    use modelc_compiler::interp::Tensor;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    struct Case {
        x: [usize; 4],
        w: [usize; 4],
        y: [usize; 4],
        geometry: ConvGeometry,
    }

    /// A random convolution that fits (output at least 1x1).
    fn random_case(rng: &mut ChaCha8Rng) -> Case {
        loop {
            let groups = [1, 1, 2, 3][rng.random_range(0..4)];
            let batch = [1, 2, 3, 5, 17][rng.random_range(0..5)];
            let group_channels = rng.random_range(1..4);
            let group_out = rng.random_range(1..4);
            let (kh, kw) = (rng.random_range(1..4), rng.random_range(1..4));
            let stride = [rng.random_range(1..3), rng.random_range(1..4)];
            let padding = [rng.random_range(0..3), rng.random_range(0..2)];
            let dilation = [rng.random_range(1..3), rng.random_range(1..3)];
            let (h, w) = (rng.random_range(1..12), rng.random_range(1..10));
            let geometry = ConvGeometry {
                stride,
                padding,
                dilation,
                groups,
            };
            let (Some(oh), Some(ow)) = (
                interp::window_output_length(h, kh, stride[0], padding[0], dilation[0]),
                interp::window_output_length(w, kw, stride[1], padding[1], dilation[1]),
            ) else {
                continue;
            };
            return Case {
                x: [batch, groups * group_channels, h, w],
                w: [groups * group_out, group_channels, kh, kw],
                y: [batch, groups * group_out, oh, ow],
                geometry,
            };
        }
    }

    fn random_tensor(rng: &mut ChaCha8Rng, shape: [usize; 4]) -> Tensor {
        let count = shape.iter().product();
        let values = (0..count).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        Tensor::from_f32(shape.to_vec(), values).unwrap()
    }

    fn attributes(g: ConvGeometry) -> Conv2dAttributes {
        Conv2dAttributes {
            stride: g.stride,
            padding: g.padding,
            dilation: g.dilation,
            groups: g.groups,
        }
    }

    fn assert_close(expected: &[f32], actual: &[f32], what: &str) {
        assert_eq!(expected.len(), actual.len(), "{what}");
        for (index, (e, a)) in expected.iter().zip(actual).enumerate() {
            assert!(
                (e - a).abs() <= 1e-4 * (1.0 + e.abs()),
                "{what}: element {index}: {e} (interpreter) vs {a}"
            );
        }
    }

    fn check(case: &Case, rng: &mut ChaCha8Rng) {
        let x = random_tensor(rng, case.x);
        let weight = random_tensor(rng, case.w);
        let dy = random_tensor(rng, case.y);
        let what = format!("x {:?} w {:?} {:?}", case.x, case.w, case.geometry);
        let expected =
            interp::conv2d_backward_weight(&x, &dy, attributes(case.geometry), &case.w).unwrap();
        let mut actual = vec![f32::NAN; case.w.iter().product()];
        unsafe {
            conv2d_backward_weight(
                x.as_f32().unwrap().as_ptr(),
                case.x,
                dy.as_f32().unwrap().as_ptr(),
                case.y,
                actual.as_mut_ptr(),
                case.w,
                case.geometry,
            )
        };
        assert_close(expected.as_f32().unwrap(), &actual, &format!("dW {what}"));
        let expected =
            interp::conv2d_backward_input(&dy, &weight, attributes(case.geometry), &case.x)
                .unwrap();
        let mut actual = vec![f32::NAN; case.x.iter().product()];
        unsafe {
            conv2d_backward_input(
                dy.as_f32().unwrap().as_ptr(),
                case.y,
                weight.as_f32().unwrap().as_ptr(),
                case.w,
                actual.as_mut_ptr(),
                case.x,
                case.geometry,
            )
        };
        assert_close(expected.as_f32().unwrap(), &actual, &format!("dX {what}"));
    }

    #[test]
    fn random_convolution_gradients_match_the_interpreter() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..300 {
            let case = random_case(&mut rng);
            check(&case, &mut rng);
        }
    }

    /// Shapes large enough for the parallel paths: image chunks with partial weight gradients
    /// (several slices per chunk), images in parallel, one image split inside the product and
    /// folded channel by channel in parallel, and the 1x1 direct product.
    #[test]
    fn large_convolution_gradients_split_over_threads_and_match_the_interpreter() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let plain = |stride, padding, groups| ConvGeometry {
            stride: [stride, stride],
            padding: [padding, padding],
            dilation: [1, 1],
            groups,
        };
        for (batch, c, o, h, k, geometry) in [
            (64, 16, 32, 4, 3, plain(1, 1, 1)),
            (64, 1, 16, 8, 3, plain(1, 1, 1)),
            (1, 16, 32, 24, 3, plain(1, 1, 1)),
            (1, 8, 16, 33, 3, plain(2, 1, 2)),
            (9, 12, 8, 20, 1, plain(1, 0, 1)),
            (1, 32, 64, 16, 1, plain(1, 0, 1)),
            (40, 6, 6, 15, 5, plain(2, 2, 3)),
        ] {
            let oh = interp::window_output_length(h, k, geometry.stride[0], geometry.padding[0], 1)
                .unwrap();
            let case = Case {
                x: [batch, c, h, h],
                w: [o, c / geometry.groups, k, k],
                y: [batch, o, oh, oh],
                geometry,
            };
            check(&case, &mut rng);
        }
    }
}
