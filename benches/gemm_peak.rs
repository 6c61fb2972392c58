//! How close the CPU backend's matrix products (the `gemm` crate, and modelc's own
//! packed-weight kernel) come to this machine's floating-point peak.
//!
//!     cargo bench --bench gemm_peak             # a human summary
//!     cargo bench --bench gemm_peak -- --json   # one JSON line (read by scripts/bench_peers.py)
//!
//! Three measurements:
//!
//! 1. The one-core f32 FMA peak: a loop of `CHAINS` independent chains of 8-lane AVX2 FMAs
//!    (`acc = acc * a + b`), enough chains to cover the FMA latency on every pipe, so the loop
//!    runs at the FMA units' throughput. Without AVX2+FMA (or off x86-64) there is no peak to
//!    measure and the summary says so.
//! 2. `gemm::gemm` at 512 x 512 x 512 f32, row-major as the runtime calls it, on one thread
//!    (`Parallelism::None`) and on two (`Parallelism::Rayon(2)`).
//! 3. `kernels::packed::matmul_packed` (products with a weight, the weight packed beforehand as
//!    at bind time) at the same size on a pool of one thread and of two (AVX2+FMA only).
//!
//! Each figure is the median over at least `MIN_TIME` seconds of repeated runs (the best run is
//! printed next to it: on a shared machine it is the better estimate of an idle one). The
//! fraction of peak divides the gemm median by the best FMA-loop figure (times the thread count
//! for two threads). This is a benchmark, not a test: it reports and never fails on a slow
//! machine.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// Seconds of timed runs per figure.
const MIN_TIME: f64 = 1.0;
/// Matrix size: M = N = K.
const SIZE: usize = 512;
/// Independent FMA chains per loop iteration (12 x 8 lanes; Zen 3 and recent Intel cores need
/// at least 2 pipes x 4 cycles latency = 8 chains to be throughput-bound).
const CHAINS: usize = 12;
/// Loop iterations per timed FMA run (12 FMAs of 16 flops each per iteration).
const FMA_ITERATIONS: u64 = 2_000_000;

/// Median, best (minimum) time and count of repeated runs of `run`, after a warm-up, for at
/// least `MIN_TIME` seconds and `min_runs` runs.
fn time_runs(min_runs: usize, mut run: impl FnMut()) -> (Duration, Duration, usize) {
    let warm_until = Instant::now() + Duration::from_millis(200);
    run();
    while Instant::now() < warm_until {
        run();
    }
    let mut samples = Vec::new();
    let start = Instant::now();
    while samples.len() < min_runs || start.elapsed().as_secs_f64() < MIN_TIME {
        let t = Instant::now();
        run();
        samples.push(t.elapsed());
    }
    samples.sort();
    let median = samples[samples.len() / 2];
    (median, samples[0], samples.len())
}

#[cfg(target_arch = "x86_64")]
mod fma {
    use super::{CHAINS, FMA_ITERATIONS};
    use std::arch::x86_64::*;

    /// `FMA_ITERATIONS` x `CHAINS` dependent-per-chain FMAs; returns a value that depends on
    /// every chain so the loop cannot be removed.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn chains(a: f32, b: f32, iterations: u64) -> f32 {
        let va = _mm256_set1_ps(a);
        let vb = _mm256_set1_ps(b);
        let mut acc = [_mm256_setzero_ps(); CHAINS];
        for (i, lane) in acc.iter_mut().enumerate() {
            *lane = _mm256_set1_ps(i as f32 * 0.01);
        }
        for _ in 0..iterations {
            // Written out so every accumulator stays in a register.
            acc[0] = _mm256_fmadd_ps(acc[0], va, vb);
            acc[1] = _mm256_fmadd_ps(acc[1], va, vb);
            acc[2] = _mm256_fmadd_ps(acc[2], va, vb);
            acc[3] = _mm256_fmadd_ps(acc[3], va, vb);
            acc[4] = _mm256_fmadd_ps(acc[4], va, vb);
            acc[5] = _mm256_fmadd_ps(acc[5], va, vb);
            acc[6] = _mm256_fmadd_ps(acc[6], va, vb);
            acc[7] = _mm256_fmadd_ps(acc[7], va, vb);
            acc[8] = _mm256_fmadd_ps(acc[8], va, vb);
            acc[9] = _mm256_fmadd_ps(acc[9], va, vb);
            acc[10] = _mm256_fmadd_ps(acc[10], va, vb);
            acc[11] = _mm256_fmadd_ps(acc[11], va, vb);
        }
        let mut sum = _mm256_setzero_ps();
        for lane in acc {
            sum = _mm256_add_ps(sum, lane);
        }
        let mut out = [0.0f32; 8];
        _mm256_storeu_ps(out.as_mut_ptr(), sum);
        out.iter().sum()
    }

    /// Flops per call of `chains`: 2 per lane per FMA.
    pub const FLOPS: f64 = (FMA_ITERATIONS as f64) * (CHAINS as f64) * 8.0 * 2.0;

    pub fn available() -> bool {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
}

/// The one-core FMA peak in GFLOP/s: (median, best, runs), or why it cannot be measured.
fn fma_peak() -> Result<(f64, f64, usize), String> {
    #[cfg(target_arch = "x86_64")]
    {
        if !fma::available() {
            return Err("this CPU lacks AVX2+FMA: no FMA peak measured".into());
        }
        let mut sink = 0.0f32;
        let (median, best, runs) = time_runs(10, || {
            // a < 1 and b small: the chains converge to b / (1 - a), far from denormals.
            // SAFETY: AVX2 and FMA were detected above.
            sink += unsafe { fma::chains(black_box(0.999), black_box(0.001), FMA_ITERATIONS) };
        });
        black_box(sink);
        let gflops = |d: Duration| fma::FLOPS / d.as_secs_f64() / 1e9;
        Ok((gflops(median), gflops(best), runs))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Err(format!(
            "no FMA peak kernel for {} (only x86-64 AVX2+FMA): no peak measured",
            std::env::consts::ARCH
        ))
    }
}

/// One product configuration: median ms, median and best GFLOP/s, runs.
struct GemmFigure {
    /// `gemm` (the `gemm` crate) or `packed` (modelc's packed-weight kernel).
    kernel: &'static str,
    threads: usize,
    median_ms: f64,
    best_ms: f64,
    gflops_median: f64,
    gflops_best: f64,
    runs: usize,
}

/// The two `SIZE x SIZE` operands: deterministic, well-scaled (no denormals, no overflow).
fn operands() -> (Vec<f32>, Vec<f32>) {
    let a = (0..SIZE * SIZE)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let b = (0..SIZE * SIZE)
        .map(|i| ((i * 104729) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    (a, b)
}

fn gemm_512(threads: usize) -> GemmFigure {
    let (m, n, k) = (SIZE, SIZE, SIZE);
    let (a, b) = operands();
    let mut c = vec![0.0f32; m * n];
    let parallelism = if threads == 1 {
        gemm::Parallelism::None
    } else {
        gemm::Parallelism::Rayon(threads)
    };
    let (median, best, runs) = time_runs(10, || {
        // SAFETY: row-major buffers of the stated sizes; strides in elements. The same call as
        // the runtime's matmul (dst overwritten: alpha 0, beta 1, read_dst false).
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                1,
                n as isize,
                false,
                a.as_ptr(),
                1,
                k as isize,
                b.as_ptr(),
                1,
                n as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            );
        }
        black_box(&mut c);
    });
    figure("gemm", threads, median, best, runs)
}

fn figure(
    kernel: &'static str,
    threads: usize,
    median: Duration,
    best: Duration,
    runs: usize,
) -> GemmFigure {
    let flops = 2.0 * (SIZE * SIZE * SIZE) as f64;
    GemmFigure {
        kernel,
        threads,
        median_ms: median.as_secs_f64() * 1e3,
        best_ms: best.as_secs_f64() * 1e3,
        gflops_median: flops / median.as_secs_f64() / 1e9,
        gflops_best: flops / best.as_secs_f64() / 1e9,
        runs,
    }
}

/// modelc's packed-weight product (`kernels::packed`, what `modelc run` uses for `x @ W` with a
/// weight) at the same size on `threads` threads of a pool: the weight packed beforehand, as
/// at bind time. `None` without AVX2+FMA.
fn packed_512(threads: usize) -> Option<GemmFigure> {
    use modelc_runtime::cpu::kernels::packed;
    if !packed::available() {
        return None;
    }
    let (m, n, k) = (SIZE, SIZE, SIZE);
    let (a, b) = operands();
    let mut packed_b = vec![0.0f32; packed::packed_len(k, n)];
    // SAFETY: `b` is `k x n` row-major; `packed_b` has the packed length.
    unsafe { packed::pack_rhs(b.as_ptr(), (k, n), (n, 1), &mut packed_b) };
    let mut c = vec![0.0f32; m * n];
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .ok()?;
    let (median, best, runs) = pool.install(|| {
        time_runs(10, || {
            // SAFETY: the operands have the sizes stated; AVX2+FMA checked above.
            unsafe {
                packed::matmul_packed(
                    a.as_ptr(),
                    (m, k, n),
                    packed_b.as_ptr(),
                    None,
                    c.as_mut_ptr(),
                    None,
                )
            };
            black_box(&mut c);
        })
    });
    Some(figure("packed", threads, median, best, runs))
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, name)| name.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// A JSON number, or `null` for a missing or non-finite figure.
fn number(value: Option<f64>) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.6}"),
        _ => "null".into(),
    }
}

fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

fn main() {
    // `cargo bench` passes `--bench`; only `--json` matters here.
    let json = std::env::args().any(|arg| arg == "--json");
    let peak = fma_peak();
    let mut figures = vec![gemm_512(1), gemm_512(2)];
    figures.extend([packed_512(1), packed_512(2)].into_iter().flatten());
    let peak_best = peak.as_ref().ok().map(|&(_, best, _)| best);
    let fraction = |figure: &GemmFigure, gflops: f64| {
        peak_best.map(|peak| gflops / (peak * figure.threads as f64))
    };

    if json {
        let peak_json = match &peak {
            Ok((median, best, runs)) => format!(
                "{{\"available\":true,\"isa\":\"avx2+fma\",\"chains\":{CHAINS},\
                 \"gflops_median\":{},\"gflops_best\":{},\"runs\":{runs}}}",
                number(Some(*median)),
                number(Some(*best))
            ),
            Err(why) => format!("{{\"available\":false,\"why\":{}}}", json_string(why)),
        };
        let gemm_json: Vec<String> = figures
            .iter()
            .map(|f| {
                format!(
                    "{{\"kernel\":\"{}\",\"threads\":{},\"median_ms\":{},\"best_ms\":{},\"gflops_median\":{},\
                     \"gflops_best\":{},\"runs\":{},\"fraction_of_peak\":{},\
                     \"fraction_of_peak_best\":{}}}",
                    f.kernel,
                    f.threads,
                    number(Some(f.median_ms)),
                    number(Some(f.best_ms)),
                    number(Some(f.gflops_median)),
                    number(Some(f.gflops_best)),
                    f.runs,
                    number(fraction(f, f.gflops_median)),
                    number(fraction(f, f.gflops_best)),
                )
            })
            .collect();
        println!(
            "{{\"bench\":\"gemm_peak\",\"cpu\":{},\"size\":{SIZE},\"min_time_s\":{MIN_TIME},\
             \"fma_peak_1core\":{peak_json},\"gemm\":[{}]}}",
            json_string(&cpu_model()),
            gemm_json.join(",")
        );
        return;
    }

    println!("gemm_peak on {}", cpu_model());
    match &peak {
        Ok((median, best, runs)) => println!(
            "  one-core f32 FMA peak ({CHAINS} chains of AVX2 FMAs): {median:.1} GFLOP/s median, \
             {best:.1} best ({runs} runs)"
        ),
        Err(why) => println!("  one-core f32 FMA peak: {why}"),
    }
    for f in &figures {
        let share = match (fraction(f, f.gflops_median), fraction(f, f.gflops_best)) {
            (Some(median), Some(best)) => format!(
                ", {:.1}% of {} x peak ({:.1}% best)",
                median * 100.0,
                f.threads,
                best * 100.0
            ),
            _ => String::new(),
        };
        println!(
            "  {} {SIZE}^3 f32, {} thread{}: {:.3} ms median ({:.3} best, {} runs), \
             {:.1} GFLOP/s median, {:.1} best{share}",
            if f.kernel == "gemm" {
                "gemm::gemm"
            } else {
                "modelc packed"
            },
            f.threads,
            if f.threads == 1 { "" } else { "s" },
            f.median_ms,
            f.best_ms,
            f.runs,
            f.gflops_median,
            f.gflops_best,
        );
    }
    if let Some(f) = figures.first() {
        if let Some(fraction) = fraction(f, f.gflops_median) {
            println!(
                "  target: gemm 512^3 on one core >= 85% of the FMA peak: {} ({:.1}%)",
                if fraction >= 0.85 { "met" } else { "missed" },
                fraction * 100.0
            );
        }
    }
}
