//! What the kernel benchmarks share: the thread count from `--threads N`, and the best time of
//! repeated runs.

use std::time::{Duration, Instant};

/// Builds the global pool with `--threads N` threads when the arguments say so (one per core
/// otherwise).
pub fn threads_from_args() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--threads") {
        let threads: usize = args.get(at + 1).and_then(|t| t.parse().ok()).unwrap_or(1);
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .expect("the global pool is built once");
    }
}

/// The best time of `run` over at least `min_time` seconds and 10 runs, after one warm-up run:
/// on a shared, noisy machine the closest estimate of an idle one.
pub fn best(min_time: f64, mut run: impl FnMut()) -> Duration {
    run();
    let mut samples = Vec::new();
    let start = Instant::now();
    while samples.len() < 10 || start.elapsed().as_secs_f64() < min_time {
        let t = Instant::now();
        run();
        samples.push(t.elapsed());
    }
    samples.into_iter().min().expect("at least one run")
}
