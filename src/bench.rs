//! `modelc bench`: compile time per phase, then steady-state latency of repeated runs.
//!
//! Phases: `parse` (reading and parsing the file and its imports), `check` (name resolution,
//! shape checking and lowering to the graph: elaboration does all three in one walk, so
//! lowering is not timed apart), `passes`
//! (optimization), `codegen` (scheduling, planning and Cranelift), and `bind` (checking the
//! weights and computing what depends only on them, such as transposed weights). Latency is
//! measured over at least `--min-time` seconds and 10 runs after one warm-up run.

use crate::commands::{load_and_check_timed, load_inputs_and_params, print_diagnostics};
use crate::Backend;
use modelc_compiler::check::select_model;
use modelc_compiler::diag::Diagnostic;
use modelc_compiler::interp::evaluate;
use modelc_runtime::cpu::CpuExecutable;
use std::path::Path;
use std::time::{Duration, Instant};

pub struct BenchRequest<'a> {
    pub file: &'a Path,
    pub weights: Option<&'a Path>,
    pub inputs: &'a [String],
    pub seed: u64,
    pub model: Option<&'a str>,
    pub backend: Backend,
    pub min_time: f64,
    pub json: bool,
    /// Time each instruction too (CPU backend only).
    pub profile: bool,
}

struct Latency {
    runs: Vec<Duration>,
}

impl Latency {
    fn quantile(&self, q: f64) -> f64 {
        let mut sorted: Vec<f64> = self.runs.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        sorted.sort_by(f64::total_cmp);
        let position = ((sorted.len() - 1) as f64 * q).round() as usize;
        sorted[position]
    }
}

/// Peak resident memory of this process, from `/proc/self/status` (Linux); 0 elsewhere.
fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

pub fn bench(request: BenchRequest, color: bool) -> u8 {
    let (result, parse, check) = match load_and_check_timed(request.file, color) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let sources = &result.program.sources;
    let checked = match select_model(&result, request.model) {
        Ok(checked) => checked,
        Err(diagnostic) => {
            print_diagnostics(&[diagnostic], sources, color);
            return 1;
        }
    };
    let graph = &checked.graph;
    let (inputs, params, _) =
        match load_inputs_and_params(graph, request.inputs, request.weights, request.seed) {
            Ok(loaded) => loaded,
            Err(problems) => {
                print_diagnostics(&problems, sources, color);
                return 1;
            }
        };
    let batch = inputs
        .first()
        .and_then(|t| t.shape.first().copied())
        .unwrap_or(1);
    let failure = |error: modelc_compiler::interp::EvalError| {
        print_diagnostics(&[error.to_diagnostic()], sources, color);
        1
    };
    let (passes, codegen, bind, arena_bytes, latency);
    let mut profile = None;
    match request.backend {
        Backend::Cpu => {
            let executable = match CpuExecutable::compile(graph) {
                Ok(executable) => executable,
                Err(message) => {
                    let diagnostic = Diagnostic::error(
                        "internal-error",
                        format!("the CPU backend failed: {message}"),
                    )
                    .with_help("run with `--backend interp`; this is a bug in modelc");
                    print_diagnostics(&[diagnostic], sources, color);
                    return 1;
                }
            };
            let times = executable.compile_times();
            (passes, codegen) = (times.passes, times.codegen);
            let started = Instant::now();
            let bound = match executable.bind(&params) {
                Ok(bound) => bound,
                Err(error) => return failure(error),
            };
            bind = started.elapsed();
            arena_bytes = match bound.arena_bytes(&inputs) {
                Ok(bytes) => bytes,
                Err(error) => return failure(error),
            };
            latency = match measure(request.min_time, || bound.run(&inputs).map(|_| ())) {
                Ok(latency) => latency,
                Err(error) => return failure(error),
            };
            if request.profile {
                let runs = (latency.runs.len() / 4).max(10);
                profile = match bound.profile(&inputs, runs) {
                    Ok(lines) => Some((runs, lines)),
                    Err(error) => return failure(error),
                };
            }
        }
        Backend::Interp => {
            (passes, codegen, bind, arena_bytes) =
                (Duration::ZERO, Duration::ZERO, Duration::ZERO, 0);
            latency = match measure(request.min_time, || {
                evaluate(graph, &inputs, &params).map(|_| ())
            }) {
                Ok(latency) => latency,
                Err(error) => return failure(error),
            };
        }
    }
    let total = parse + check + passes + codegen;
    let (median, p10, p90, min) = (
        latency.quantile(0.5),
        latency.quantile(0.1),
        latency.quantile(0.9),
        latency.quantile(0.0),
    );
    let throughput = batch as f64 * 1e3 / median;
    let backend = match request.backend {
        Backend::Cpu => "cpu",
        Backend::Interp => "interp",
    };
    let threads = match request.backend {
        Backend::Cpu => rayon::current_num_threads(),
        Backend::Interp => 1,
    };
    if request.json {
        let report = serde_json::json!({
            "file": request.file.to_string_lossy(),
            "model": checked.name,
            "backend": backend,
            "threads": threads,
            "batch": batch,
            "compile_ms": {
                "parse": ms(parse),
                "check": ms(check),
                "passes": ms(passes),
                "codegen": ms(codegen),
                "total": ms(total),
                "bind": ms(bind),
            },
            "latency_ms": {"median": median, "p10": p10, "p90": p90, "min": min},
            "iterations": latency.runs.len(),
            "throughput_per_s": throughput,
            "arena_bytes": arena_bytes,
            "peak_rss_bytes": peak_rss_bytes(),
        });
        let mut report = report;
        if let Some((runs, lines)) = &profile {
            let total: f64 = lines.iter().map(|l| ms(l.total)).sum::<f64>().max(1e-12);
            report["profile"] = lines
                .iter()
                .map(|l| {
                    serde_json::json!({
                        "instruction": l.instruction,
                        "kind": l.kind,
                        "ms_per_run": ms(l.total) / *runs as f64,
                        "share": ms(l.total) / total,
                    })
                })
                .collect();
        }
        println!("{report}");
    } else {
        println!(
            "{} ({}), backend {backend}, {threads} thread(s), batch {batch}",
            request.file.display(),
            checked.name
        );
        println!(
            "compile  {:8.3} ms  (parse {:.3}, check+lower {:.3}, passes {:.3}, codegen {:.3}); bind weights {:.3} ms",
            ms(total),
            ms(parse),
            ms(check),
            ms(passes),
            ms(codegen),
            ms(bind)
        );
        println!(
            "latency  {median:8.3} ms median  (p10 {p10:.3}, p90 {p90:.3}, min {min:.3}; {} runs)",
            latency.runs.len()
        );
        println!("throughput {throughput:.1} samples/s");
        println!(
            "memory   arena {:.2} MiB, peak resident {:.1} MiB",
            arena_bytes as f64 / (1 << 20) as f64,
            peak_rss_bytes() as f64 / (1 << 20) as f64
        );
        if let Some((runs, lines)) = &profile {
            print!("{}", profile_text(*runs, lines));
        }
    }
    0
}

/// The profile as text: the most expensive instructions, then the time by kind.
fn profile_text(runs: usize, lines: &[modelc_runtime::cpu::ProfileLine]) -> String {
    let per_run = |d: Duration| ms(d) / runs as f64;
    let total: f64 = lines.iter().map(|l| per_run(l.total)).sum::<f64>();
    let share = |t: f64| 100.0 * t / total.max(1e-12);
    let mut out = format!(
        "profile  {total:.3} ms per run in {} instructions ({runs} runs)\n",
        lines.len()
    );
    let mut sorted: Vec<&modelc_runtime::cpu::ProfileLine> = lines.iter().collect();
    sorted.sort_by_key(|line| std::cmp::Reverse(line.total));
    for line in sorted.iter().take(12) {
        let t = per_run(line.total);
        out.push_str(&format!(
            "  {t:8.3} ms {:5.1}%  {}\n",
            share(t),
            line.instruction
        ));
    }
    let mut kinds: Vec<(String, f64, usize)> = Vec::new();
    for line in lines {
        let kind = line.kind.split('[').next().unwrap_or_default().to_string();
        match kinds.iter_mut().find(|(k, _, _)| *k == kind) {
            Some(entry) => {
                entry.1 += per_run(line.total);
                entry.2 += 1;
            }
            None => kinds.push((kind, per_run(line.total), 1)),
        }
    }
    kinds.sort_by(|a, b| b.1.total_cmp(&a.1));
    out.push_str("  by kind:\n");
    for (kind, t, count) in kinds {
        out.push_str(&format!(
            "  {t:8.3} ms {:5.1}%  {kind} (x{count})\n",
            share(t)
        ));
    }
    out
}

/// One warm-up run, then runs until `min_time` seconds and at least 10 runs have passed.
fn measure<E>(min_time: f64, mut run: impl FnMut() -> Result<(), E>) -> Result<Latency, E> {
    run()?;
    let mut runs = Vec::new();
    let started = Instant::now();
    while runs.len() < 10 || started.elapsed().as_secs_f64() < min_time {
        let begin = Instant::now();
        run()?;
        runs.push(begin.elapsed());
    }
    Ok(Latency { runs })
}
