//! Max and average pooling over NCHW planes, one plane per task. Padding cells never win a max
//! and count as zeros in an average (PyTorch's `count_include_pad=True`; with floor output
//! sizes a window never reaches past the padded input, so the divisor is the window size).

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
    let plane = |p: usize| {
        // SAFETY: plane `p` of both tensors.
        let input =
            unsafe { std::slice::from_raw_parts(x.add(p * height * width), height * width) };
        let output =
            unsafe { std::slice::from_raw_parts_mut(out.add(p * out_h * out_w), out_h * out_w) };
        if geometry.padding == [0, 0] {
            // Every window lies inside the input (floor output sizes): no clipping.
            unpadded(input, output, width, [out_h, out_w], geometry);
            return;
        }
        for oh in 0..out_h {
            let rows = window(
                oh,
                geometry.stride[0],
                geometry.padding[0],
                geometry.kernel[0],
                height,
            );
            for ow in 0..out_w {
                let columns = window(
                    ow,
                    geometry.stride[1],
                    geometry.padding[1],
                    geometry.kernel[1],
                    width,
                );
                output[oh * out_w + ow] = match geometry.kind {
                    PoolKind::Max => {
                        let mut best = f32::NEG_INFINITY;
                        for ih in rows.clone() {
                            for &value in
                                &input[ih * width + columns.start..ih * width + columns.end]
                            {
                                // NaN sticks once seen, as in the interpreter.
                                if value.is_nan() || value > best {
                                    best = value;
                                }
                            }
                        }
                        best
                    }
                    PoolKind::Avg => {
                        let mut sum = 0.0f32;
                        for ih in rows.clone() {
                            for &value in
                                &input[ih * width + columns.start..ih * width + columns.end]
                            {
                                sum += value;
                            }
                        }
                        sum / window_size
                    }
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

/// One plane of an unpadded pooling, with the windows' positions computed directly.
fn unpadded(
    input: &[f32],
    output: &mut [f32],
    width: usize,
    [out_h, out_w]: [usize; 2],
    geometry: PoolGeometry,
) {
    let [kernel_h, kernel_w] = geometry.kernel;
    let [stride_h, stride_w] = geometry.stride;
    let window_size = (kernel_h * kernel_w) as f32;
    if geometry.kind == PoolKind::Max && geometry.kernel == [2, 2] && geometry.stride == [2, 2] {
        // The common 2x2 halving, two input rows at a time.
        for (oh, output) in output.chunks_exact_mut(out_w).enumerate() {
            let top = &input[2 * oh * width..][..2 * out_w];
            let bottom = &input[(2 * oh + 1) * width..][..2 * out_w];
            for ((slot, top), bottom) in output
                .iter_mut()
                .zip(top.chunks_exact(2))
                .zip(bottom.chunks_exact(2))
            {
                // The first value starts the window as it would replace -inf (or equal it).
                let mut best = top[0];
                for value in [top[1], bottom[0], bottom[1]] {
                    if value.is_nan() || value > best {
                        best = value;
                    }
                }
                *slot = best;
            }
        }
        return;
    }
    for oh in 0..out_h {
        for ow in 0..out_w {
            let corner = oh * stride_h * width + ow * stride_w;
            let rows = (0..kernel_h).map(|kh| {
                let row = corner + kh * width;
                &input[row..row + kernel_w]
            });
            output[oh * out_w + ow] = match geometry.kind {
                PoolKind::Max => {
                    let mut best = f32::NEG_INFINITY;
                    for &value in rows.flatten() {
                        // NaN sticks once seen, as in the interpreter.
                        if value.is_nan() || value > best {
                            best = value;
                        }
                    }
                    best
                }
                PoolKind::Avg => rows.flatten().sum::<f32>() / window_size,
            };
        }
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
    //! Against the interpreter's kernel over random shapes and geometries (padded and unpadded
    //! windows, max and average, ties, NaN and -inf). Tolerance: `1e-5 * (1 + |expected|)`.

    use super::*;
    use modelc_compiler::interp::kernels as interp;
    use modelc_compiler::interp::Tensor;
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
