//! The CPU backend's convolution kernels on the peer models' shapes: the register-tile kernel
//! (`conv_direct`, what `conv2d` picks on AVX2+FMA for output rows of 12 or more, except plain
//! 1x1 convolutions) against
//! im2col + `gemm` (`conv2d_im2col`), both measured in the same run.
//!
//!     cargo bench --bench conv_kernels
//!     cargo bench --bench conv_kernels -- --threads 1
//!
//! For each shape: the best time of each kernel over at least `MIN_TIME` seconds, its
//! GFLOP/s (2 flops per multiply-add) and the ratio direct / im2col. A benchmark, not a test:
//! it reports and never fails.

use modelc_runtime::cpu::kernels::conv::{conv2d_im2col, ConvGeometry};
use modelc_runtime::cpu::kernels::conv_direct;
use std::time::Duration;

#[path = "support/mod.rs"]
mod support;
use support::best;

const MIN_TIME: f64 = 1.0;

/// (name, [N, C, H, W], [O, kernel], stride, padding)
type Shape = (&'static str, [usize; 4], [usize; 2], usize, usize);

const SHAPES: &[Shape] = &[
    ("convnet block 3x3, b16", [16, 32, 32, 32], [32, 3], 1, 1),
    ("convnet down 3x3 s2, b16", [16, 32, 32, 32], [64, 3], 2, 1),
    ("convnet block3 3x3, b16", [16, 64, 16, 16], [64, 3], 1, 1),
    ("convnet stem 3x3, b16", [16, 3, 32, 32], [32, 3], 1, 1),
    ("convnet block 3x3, b1", [1, 32, 32, 32], [32, 3], 1, 1),
    ("convnet block3 3x3, b1", [1, 64, 16, 16], [64, 3], 1, 1),
    ("lenet conv1 5x5 p2, b64", [64, 1, 28, 28], [6, 5], 1, 2),
    ("lenet conv2 5x5, b64", [64, 6, 14, 14], [16, 5], 1, 0),
    ("7x7 3x3 p1, b16", [16, 32, 7, 7], [32, 3], 1, 1),
    ("1x1 64->64 s2, b16", [16, 64, 32, 32], [64, 1], 2, 0),
];

fn main() {
    support::threads_from_args();
    println!(
        "{} thread(s); best ms and GFLOP/s; ratio = direct / im2col",
        rayon::current_num_threads()
    );
    // On a thread of the pool, as `modelc run` calls kernels.
    modelc_runtime::cpu::kernels::on_pool(measure);
}

fn measure() {
    for &(name, [n, c, h, w], [o, k], stride, padding) in SHAPES {
        let geometry = ConvGeometry {
            stride: [stride, stride],
            padding: [padding, padding],
            dilation: [1, 1],
            groups: 1,
        };
        let oh = (h + 2 * padding - k) / stride + 1;
        let ow = (w + 2 * padding - k) / stride + 1;
        let x: Vec<f32> = (0..n * c * h * w)
            .map(|i| (i as f32 * 0.37).sin())
            .collect();
        let weight: Vec<f32> = (0..o * c * k * k)
            .map(|i| (i as f32 * 0.11).cos())
            .collect();
        let bias: Vec<f32> = (0..o).map(|i| i as f32 * 0.01).collect();
        let mut out = vec![0f32; n * o * oh * ow];
        let flops = 2.0 * (n * o * oh * ow * c * k * k) as f64;
        let time = |direct: bool, out: &mut Vec<f32>| {
            best(MIN_TIME, || unsafe {
                let kernel = if direct {
                    conv_direct::conv2d
                } else {
                    conv2d_im2col
                };
                kernel(
                    x.as_ptr(),
                    [n, c, h, w],
                    weight.as_ptr(),
                    [o, c, k, k],
                    Some(bias.as_ptr()),
                    out.as_mut_ptr(),
                    [n, o, oh, ow],
                    geometry,
                    None,
                )
            })
        };
        let im2col = time(false, &mut out);
        let line = |label: &str, t: Duration| {
            format!(
                "{label} {:8.3} ms {:6.1} GFLOP/s",
                t.as_secs_f64() * 1e3,
                flops / t.as_secs_f64() / 1e9
            )
        };
        if conv_direct::suits([k, k], geometry, w, ow) {
            let direct = time(true, &mut out);
            println!(
                "{name:28} {}   {}   ratio {:.2}",
                line("direct", direct),
                line("im2col", im2col),
                direct.as_secs_f64() / im2col.as_secs_f64()
            );
        } else {
            println!(
                "{name:28} (direct does not suit)   {}",
                line("im2col", im2col)
            );
        }
    }
}
