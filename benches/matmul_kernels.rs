//! Products with a weight on the right, `x @ W.T + b` as `Linear` computes them, on the peer
//! models' shapes: the packed-weight kernel (`kernels::packed`, the weight packed once) against
//! `kernels::matmul::matmul` (the `gemm` crate, or the few-row paths), both in the same run.
//!
//!     cargo bench --bench matmul_kernels
//!     cargo bench --bench matmul_kernels -- --threads 1
//!
//! For each shape: the best time of each kernel over at least `MIN_TIME` seconds, its GFLOP/s
//! and the ratio packed / matmul. A benchmark, not a test: it reports and never fails.

use modelc_runtime::cpu::kernels::{matmul::matmul, on_pool, packed};
use std::time::Duration;

#[path = "support/mod.rs"]
mod support;
use support::best;

const MIN_TIME: f64 = 0.7;

/// (name, m, k, n)
const SHAPES: &[(&str, usize, usize, usize)] = &[
    ("mlp fc1, b1", 1, 784, 512),
    ("lstm step, b1", 1, 128, 512),
    ("mlp fc1, b64", 64, 784, 512),
    ("mlp fc2, b64", 64, 512, 512),
    ("lstm step, b16", 16, 128, 512),
    ("lstm input, b16", 512, 64, 512),
    ("encoder qkv, b8", 1024, 256, 256),
    ("encoder fc1, b8", 1024, 256, 1024),
    ("encoder fc2, b8", 1024, 1024, 256),
    ("gpt fc1 and lm head, b1", 128, 256, 1024),
];

fn main() {
    support::threads_from_args();
    if !packed::available() {
        println!("this CPU has no AVX2+FMA: the packed kernel does not run here");
        return;
    }
    println!(
        "{} thread(s); best ms and GFLOP/s; ratio = packed / matmul",
        rayon::current_num_threads()
    );
    on_pool(measure);
}

fn measure() {
    for &(name, m, k, n) in SHAPES {
        let x: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        // Stored as `Linear` stores it: `[n, k]`, read transposed.
        let w: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.11).cos()).collect();
        let bias: Vec<f32> = (0..n).map(|i| i as f32 * 0.01).collect();
        let mut out = vec![0f32; m * n];
        let mut packed_w = vec![0f32; packed::packed_len(k, n)];
        unsafe { packed::pack_rhs(w.as_ptr(), (k, n), (1, k), &mut packed_w) };
        let flops = 2.0 * (m * k * n) as f64;
        let reference = best(MIN_TIME, || unsafe {
            matmul(
                x.as_ptr(),
                &[m, k],
                w.as_ptr(),
                &[k, n],
                out.as_mut_ptr(),
                &[m, n],
                (false, true),
                Some(bias.as_ptr()),
            )
        });
        let packed_time = best(MIN_TIME, || unsafe {
            packed::matmul_packed(
                x.as_ptr(),
                (m, k, n),
                packed_w.as_ptr(),
                Some(bias.as_ptr()),
                out.as_mut_ptr(),
                None,
            )
        });
        let line = |label: &str, t: Duration| {
            format!(
                "{label} {:8.4} ms {:6.1} GFLOP/s",
                t.as_secs_f64() * 1e3,
                flops / t.as_secs_f64() / 1e9
            )
        };
        println!(
            "{name:18} [{m}x{k}x{n}] {}   {}   ratio {:.2}",
            line("packed", packed_time),
            line("matmul", reference),
            packed_time.as_secs_f64() / reference.as_secs_f64()
        );
    }
}
