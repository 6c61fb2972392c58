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
