//! Max and average pooling over NCHW planes, one plane per task. Padding cells never win a max
//! and count as zeros in an average (PyTorch's `count_include_pad=True`; with floor output
//! sizes a window never reaches past the padded input, so the divisor is the window size).
//! Each output row reduces its window's input rows column by column first, then each window's
//! columns; of two equal maxima (`-0.0` and `0.0`) either may be returned.

use super::{SendPtr, PARALLEL_WORK};
use modelc_compiler::ir::PoolKind;
use rayon::prelude::*;

#[derive(Clone, Copy, Debug)]
pub struct PoolGeometry {
    pub kind: PoolKind,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
}

/// # Safety
/// Pointers address contiguous tensors of the given shapes; `out_shape` is the pooling
/// result's shape for this geometry (checked at compile time).
pub unsafe fn pool2d(
    x: *const f32,
    x_shape: [usize; 4],
    out: *mut f32,
    out_shape: [usize; 4],
    geometry: PoolGeometry,
) {
    let [batch, channels, height, width] = x_shape;
    let [_, _, out_h, out_w] = out_shape;
    let planes = batch * channels;
    let (x, out) = (SendPtr(x as *mut f32), SendPtr(out));
    let window_size = (geometry.kernel[0] * geometry.kernel[1]) as f32;
    // Each output column's input columns, computed once per call.
    let columns: Vec<(usize, usize)> = (0..out_w)
        .map(|ow| {
            let range = window(
                ow,
                geometry.stride[1],
                geometry.padding[1],
                geometry.kernel[1],
                width,
            );
            (range.start, range.end)
        })
        .collect();
    let plane = |p: usize| {
        // SAFETY: plane `p` of both tensors.
        let input =
            unsafe { std::slice::from_raw_parts(x.add(p * height * width), height * width) };
        let output =
            unsafe { std::slice::from_raw_parts_mut(out.add(p * out_h * out_w), out_h * out_w) };
        // First across the window's rows for every input column (a loop the compiler
        // vectorizes), then across each window's columns.
        let mut across_rows = vec![0f32; width];
        for (oh, output_row) in output.chunks_exact_mut(out_w).enumerate() {
            let mut rows = window(
                oh,
                geometry.stride[0],
                geometry.padding[0],
                geometry.kernel[0],
                height,
            );
            let row = |ih: usize| &input[ih * width..(ih + 1) * width];
            match rows.next() {
                Some(first) => across_rows.copy_from_slice(row(first)),
                None => across_rows.fill(match geometry.kind {
                    PoolKind::Max => f32::NEG_INFINITY,
                    PoolKind::Avg => 0.0,
                }),
            }
            for ih in rows {
                match geometry.kind {
                    PoolKind::Max => {
                        for (best, &value) in across_rows.iter_mut().zip(row(ih)) {
                            *best = nan_max(*best, value);
                        }
                    }
                    PoolKind::Avg => {
                        for (sum, &value) in across_rows.iter_mut().zip(row(ih)) {
                            *sum += value;
                        }
                    }
                }
            }
            for (result, &(start, end)) in output_row.iter_mut().zip(&columns) {
                let cells = &across_rows[start..end];
                *result = match geometry.kind {
                    PoolKind::Max => cells.iter().fold(f32::NEG_INFINITY, |b, &v| nan_max(b, v)),
                    PoolKind::Avg => cells.iter().sum::<f32>() / window_size,
                };
            }
        }
    };
    let work = planes * out_h * out_w * geometry.kernel[0] * geometry.kernel[1];
    if planes >= 2 && work >= PARALLEL_WORK && super::threads() > 1 {
        (0..planes).into_par_iter().for_each(plane);
    } else {
        (0..planes).for_each(plane);
    }
}

/// The larger of two values, NaN if either is: once a NaN is seen it sticks, as in the
/// interpreter. Branch-free, so the loops over rows vectorize.
#[inline(always)]
fn nan_max(best: f32, value: f32) -> f32 {
    if value > best || value.is_nan() {
        value
    } else {
        best
    }
}

/// The input positions a window covers, clipped to the input.
pub(super) fn window(
    position: usize,
    stride: usize,
    padding: usize,
    kernel: usize,
    length: usize,
) -> std::ops::Range<usize> {
    let start = (position * stride) as isize - padding as isize;
    let end = (start + kernel as isize).min(length as isize);
    (start.max(0) as usize)..(end.max(0) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelc_compiler::interp::{kernels, Tensor, TensorData};

    /// Every geometry against the interpreter's kernel, including NaN inputs, padding and
    /// overlapping and gapped windows: max bit for bit; average within 1e-5 absolute (the
    /// interpreter sums in f64, this kernel in f32; at most 25 values of magnitude <= 2).
    #[test]
    fn pooling_matches_the_interpreter() {
        let geometries = [
            ([2, 2], [2, 2], [0, 0]),
            ([3, 3], [1, 1], [1, 1]),
            ([3, 2], [2, 1], [1, 0]),
            ([2, 2], [3, 3], [0, 0]),
            ([5, 5], [1, 1], [2, 2]),
        ];
        let mut state = 17u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        };
        for (shape, nan) in [([1, 1, 7, 9], false), ([3, 5, 12, 11], true)] {
            let count: usize = shape.iter().product();
            let mut values: Vec<f32> = (0..count).map(|_| next()).collect();
            if nan {
                values[37] = f32::NAN;
            }
            let input = Tensor {
                shape: shape.to_vec(),
                data: TensorData::F32(values.clone()),
            };
            for (kernel, stride, padding) in geometries {
                for kind in [PoolKind::Max, PoolKind::Avg] {
                    let out_h = (shape[2] + 2 * padding[0] - kernel[0]) / stride[0] + 1;
                    let out_w = (shape[3] + 2 * padding[1] - kernel[1]) / stride[1] + 1;
                    let out_shape = [shape[0], shape[1], out_h, out_w];
                    let expected =
                        kernels::pool2d(kind, &input, kernel, stride, padding, &out_shape)
                            .expect("the interpreter pools");
                    let mut actual = vec![0f32; out_shape.iter().product()];
                    let geometry = PoolGeometry {
                        kind,
                        kernel,
                        stride,
                        padding,
                    };
                    // SAFETY: buffers of the shapes passed.
                    unsafe {
                        pool2d(
                            values.as_ptr(),
                            shape,
                            actual.as_mut_ptr(),
                            out_shape,
                            geometry,
                        )
                    };
                    let expected = expected.as_f32().expect("f32").to_vec();
                    let same = expected.iter().zip(&actual).all(|(e, a)| match kind {
                        PoolKind::Max => e.to_bits() == a.to_bits() || (e.is_nan() && a.is_nan()),
                        PoolKind::Avg => (e - a).abs() <= 1e-5 || (e.is_nan() && a.is_nan()),
                    });
                    assert!(
                        same,
                        "{kind:?} {kernel:?} {stride:?} {padding:?} on {shape:?}"
                    );
                }
            }
        }
    }

    // Random shapes and geometries against the interpreter's kernel (padded and unpadded
    // windows, max and average, ties, NaN and -inf). Tolerance: `1e-5 * (1 + |expected|)`.

    use modelc_compiler::interp::kernels as interp;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn random_poolings_match_the_interpreter() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut checked = 0;
        while checked < 400 {
            let kernel = [rng.random_range(1..4), rng.random_range(1..4)];
            let geometry = PoolGeometry {
                kind: if rng.random_bool(0.5) {
                    PoolKind::Max
                } else {
                    PoolKind::Avg
                },
                kernel,
                stride: [rng.random_range(1..4), rng.random_range(1..3)],
                padding: if rng.random_bool(0.5) {
                    [0, 0]
                } else {
                    [
                        rng.random_range(0..kernel[0] / 2 + 1),
                        rng.random_range(0..kernel[1] / 2 + 1),
                    ]
                },
            };
            // The common 2x2 halving (its own loops) a quarter of the time.
            let geometry = if rng.random_bool(0.25) {
                PoolGeometry {
                    kernel: [2, 2],
                    stride: [2, 2],
                    padding: [0, 0],
                    ..geometry
                }
            } else {
                geometry
            };
            let shape = [
                [1, 2, 5, 16][rng.random_range(0..4)],
                rng.random_range(1..5),
                rng.random_range(1..12),
                rng.random_range(1..10),
            ];
            let [n, c, h, w] = shape;
            let (Some(oh), Some(ow)) = (
                interp::window_output_length(
                    h,
                    geometry.kernel[0],
                    geometry.stride[0],
                    geometry.padding[0],
                    1,
                ),
                interp::window_output_length(
                    w,
                    geometry.kernel[1],
                    geometry.stride[1],
                    geometry.padding[1],
                    1,
                ),
            ) else {
                continue;
            };
            let special = rng.random_bool(0.3);
            let values = (0..n * c * h * w)
                .map(|_| match rng.random_range(0..20) {
                    0 if special => f32::NAN,
                    1 if special => f32::NEG_INFINITY,
                    _ => rng.random_range(-1.0f32..1.0),
                })
                .collect();
            let x = Tensor::from_f32(shape.to_vec(), values).unwrap();
            let out_shape = [n, c, oh, ow];
            let expected = interp::pool2d(
                geometry.kind,
                &x,
                geometry.kernel,
                geometry.stride,
                geometry.padding,
                &out_shape,
            )
            .unwrap();
            let mut actual = vec![0.0f32; n * c * oh * ow];
            unsafe {
                pool2d(
                    x.as_f32().unwrap().as_ptr(),
                    shape,
                    actual.as_mut_ptr(),
                    out_shape,
                    geometry,
                )
            };
            for (index, (e, a)) in expected.as_f32().unwrap().iter().zip(&actual).enumerate() {
                let same =
                    (e.is_nan() && a.is_nan()) || e == a || (e - a).abs() <= 1e-5 * (1.0 + e.abs());
                assert!(
                    same,
                    "{shape:?} {geometry:?}: element {index}: {e} (interpreter) vs {a}"
                );
            }
            checked += 1;
        }
    }
}
