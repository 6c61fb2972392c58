//! The gradient of max and average pooling over NCHW planes (the adjoint of
//! [`pool2d`](super::pool::pool2d)), one plane per task. Max pooling routes each window's
//! gradient to the element the forward kernel picks: the first maximum in row-major window
//! order, or the first NaN (padding never wins). Average pooling spreads it evenly over the
//! window's input elements, with the whole window, padding included, as the divisor
//! (`count_include_pad=True`, as in the interpreter).

use super::pool::{window, PoolGeometry};
use super::{SendPtr, PARALLEL_WORK};
use modelc_compiler::ir::PoolKind;
use rayon::prelude::*;

/// `out` (the input's shape, `[N, C, H, W]`) from the forward input `x` and the output
/// gradient `gradient` (`[N, C, OH, OW]`).
///
/// # Safety
/// Pointers address contiguous tensors of the given shapes, which are consistent for this
/// geometry (checked at compile time); `out` does not overlap the operands.
pub unsafe fn pool2d_backward(
    x: *const f32,
    x_shape: [usize; 4],
    gradient: *const f32,
    gradient_shape: [usize; 4],
    out: *mut f32,
    geometry: PoolGeometry,
) {
    let [batch, channels, height, width] = x_shape;
    let [_, _, out_h, out_w] = gradient_shape;
    let planes = batch * channels;
    let (x, gradient, out) = (
        SendPtr(x as *mut f32),
        SendPtr(gradient as *mut f32),
        SendPtr(out),
    );
    let window_size = (geometry.kernel[0] * geometry.kernel[1]) as f32;
    let plane = |p: usize| {
        // SAFETY: plane `p` of each tensor; only this task writes plane `p` of `out`.
        let input =
            unsafe { std::slice::from_raw_parts(x.add(p * height * width), height * width) };
        let gradient =
            unsafe { std::slice::from_raw_parts(gradient.add(p * out_h * out_w), out_h * out_w) };
        let output =
            unsafe { std::slice::from_raw_parts_mut(out.add(p * height * width), height * width) };
        output.fill(0.0);
        if geometry.padding == [0, 0] {
            // Every window lies inside the input (floor output sizes): no clipping.
            unpadded(input, gradient, output, width, [out_h, out_w], geometry);
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
                let g = gradient[oh * out_w + ow];
                match geometry.kind {
                    PoolKind::Max => {
                        let mut best: Option<(usize, f32)> = None;
                        for ih in rows.clone() {
                            for iw in columns.clone() {
                                let index = ih * width + iw;
                                let value = input[index];
                                let better = match best {
                                    None => true,
                                    Some((_, b)) => !b.is_nan() && (value.is_nan() || value > b),
                                };
                                if better {
                                    best = Some((index, value));
                                }
                            }
                        }
                        if let Some((index, _)) = best {
                            output[index] += g;
                        }
                    }
                    PoolKind::Avg => {
                        let share = g / window_size;
                        for ih in rows.clone() {
                            for value in
                                &mut output[ih * width + columns.start..ih * width + columns.end]
                            {
                                *value += share;
                            }
                        }
                    }
                }
            }
        }
    };
    let work = planes * (out_h * out_w * geometry.kernel[0] * geometry.kernel[1] + height * width);
    if planes >= 2 && work >= PARALLEL_WORK && super::threads() > 1 {
        (0..planes).into_par_iter().for_each(plane);
    } else {
        (0..planes).for_each(plane);
    }
}

/// One plane of an unpadded pooling's gradient, with the windows' positions computed directly.
fn unpadded(
    input: &[f32],
    gradient: &[f32],
    output: &mut [f32],
    width: usize,
    [out_h, out_w]: [usize; 2],
    geometry: PoolGeometry,
) {
    let [kernel_h, kernel_w] = geometry.kernel;
    let [stride_h, stride_w] = geometry.stride;
    let window_size = (kernel_h * kernel_w) as f32;
    if geometry.kind == PoolKind::Max && geometry.kernel == [2, 2] && geometry.stride == [2, 2] {
        // The common 2x2 halving: windows are disjoint, so each input element is written once.
        for oh in 0..out_h {
            let top = 2 * oh * width;
            let bottom = top + width;
            for ow in 0..out_w {
                let g = gradient[oh * out_w + ow];
                let mut best = top + 2 * ow;
                let mut best_value = input[best];
                for index in [top + 2 * ow + 1, bottom + 2 * ow, bottom + 2 * ow + 1] {
                    let value = input[index];
                    // Without short-circuits, so that it compiles to selects, not branches
                    // (which data decides and mispredicts half the time).
                    let better = !best_value.is_nan() & (value.is_nan() | (value > best_value));
                    best = if better { index } else { best };
                    best_value = if better { value } else { best_value };
                }
                output[best] = g;
            }
        }
        return;
    }
    for oh in 0..out_h {
        for ow in 0..out_w {
            let corner = oh * stride_h * width + ow * stride_w;
            let g = gradient[oh * out_w + ow];
            match geometry.kind {
                PoolKind::Max => {
                    // The first maximum (or first NaN) in row-major order wins.
                    let mut best = corner;
                    let mut best_value = input[corner];
                    for kh in 0..kernel_h {
                        let row = corner + kh * width;
                        for (kw, &value) in input[row..row + kernel_w].iter().enumerate() {
                            if !best_value.is_nan() && (value.is_nan() || value > best_value) {
                                best = row + kw;
                                best_value = value;
                            }
                        }
                    }
                    output[best] += g;
                }
                PoolKind::Avg => {
                    let g = g / window_size;
                    for kh in 0..kernel_h {
                        let row = corner + kh * width;
                        for value in &mut output[row..row + kernel_w] {
                            *value += g;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Against the interpreter's kernel (f64 sums) over random shapes and geometries, max and
    //! average, overlapping windows, padding, odd sizes and batch 1, with inputs drawn from a
    //! few values so that windows hold ties (and some NaN and -inf). Tolerance:
    //! `1e-5 * (1 + |expected|)` per element (max routes exact values; averages are f32 shares).

    use super::*;
    use modelc_compiler::interp::kernels as interp;
    use modelc_compiler::interp::Tensor;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn check(
        rng: &mut ChaCha8Rng,
        x_shape: [usize; 4],
        geometry: PoolGeometry,
        special: bool,
    ) -> bool {
        let [n, c, h, w] = x_shape;
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
            return false;
        };
        let values = (0..n * c * h * w)
            .map(|_| match rng.random_range(0..20) {
                0 if special => f32::NAN,
                1 if special => f32::NEG_INFINITY,
                k => (k % 4) as f32 - 1.5,
            })
            .collect();
        let x = Tensor::from_f32(x_shape.to_vec(), values).unwrap();
        let y_shape = [n, c, oh, ow];
        let dy = Tensor::from_f32(
            y_shape.to_vec(),
            (0..n * c * oh * ow)
                .map(|_| rng.random_range(-1.0f32..1.0))
                .collect(),
        )
        .unwrap();
        let expected = interp::pool2d_backward(
            geometry.kind,
            &x,
            &dy,
            geometry.kernel,
            geometry.stride,
            geometry.padding,
            &x_shape,
        )
        .unwrap();
        let mut actual = vec![f32::NAN; n * c * h * w];
        unsafe {
            pool2d_backward(
                x.as_f32().unwrap().as_ptr(),
                x_shape,
                dy.as_f32().unwrap().as_ptr(),
                y_shape,
                actual.as_mut_ptr(),
                geometry,
            )
        };
        for (index, (e, a)) in expected.as_f32().unwrap().iter().zip(&actual).enumerate() {
            assert!(
                (e - a).abs() <= 1e-5 * (1.0 + e.abs()),
                "{x_shape:?} {geometry:?}: element {index}: {e} (interpreter) vs {a}"
            );
        }
        true
    }

    #[test]
    fn random_pooling_gradients_match_the_interpreter() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
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
                // Padding at most half the window, as PyTorch requires.
                padding: [
                    rng.random_range(0..kernel[0] / 2 + 1),
                    rng.random_range(0..kernel[1] / 2 + 1),
                ],
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
                [1, 2, 3, 5, 16][rng.random_range(0..5)],
                rng.random_range(1..5),
                rng.random_range(1..12),
                rng.random_range(1..10),
            ];
            let special = rng.random_bool(0.3);
            if check(&mut rng, shape, geometry, special) {
                checked += 1;
            }
        }
    }

    /// Enough planes for the parallel split.
    #[test]
    fn large_pooling_gradients_split_over_threads_and_match_the_interpreter() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for kind in [PoolKind::Max, PoolKind::Avg] {
            for (kernel, stride, padding) in [(2, 2, 0), (3, 2, 1), (3, 1, 1)] {
                let geometry = PoolGeometry {
                    kind,
                    kernel: [kernel; 2],
                    stride: [stride; 2],
                    padding: [padding; 2],
                };
                assert!(check(&mut rng, [64, 16, 8, 8], geometry, false));
                assert!(check(&mut rng, [1, 32, 33, 31], geometry, true));
            }
        }
    }
}
