//! The `modelc` command line: check, build, run and initialize `.model` files.
//!
//! Exit codes: 0 success, 1 the input was wrong (diagnostics printed), 2 usage error.

mod bench;
mod commands;
mod lsp;
mod sweep;
mod train;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "modelc",
    version,
    about = "A declarative model compiler: check, build and run .model files"
)]
struct Cli {
    /// Colour diagnostics: auto (on a terminal), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand)]
enum Command {
    /// Check a .model file: names, arguments and every shape. Prints all diagnostics.
    Check {
        /// The .model file.
        file: PathBuf,
    },
    /// Compile a model and print one stage of the pipeline.
    Build {
        /// The .model file.
        file: PathBuf,
        /// What to print: the syntax tree, the graph IR as text (as lowered, or optimized), or the
        /// graph as Graphviz DOT.
        #[arg(long, value_enum, default_value_t = Emit::Graph)]
        emit: Emit,
        /// Which model to build, when the file has several (default: the last one).
        #[arg(long)]
        model: Option<String>,
        /// Write to this file instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Run a model on inputs from .npy files and write its outputs as .npy files.
    Run {
        /// The .model file.
        file: PathBuf,
        /// Weights in safetensors, named by dotted path (`fc1.weight`). Without it, params are
        /// initialized from their declared initializers with --seed.
        #[arg(long)]
        weights: Option<PathBuf>,
        /// An input: `x.npy` (in signature order) or `name=x.npy`.
        #[arg(long = "input", short = 'i')]
        inputs: Vec<String>,
        /// Where to write an output: `y.npy` (in order) or `index=y.npy`. Without it, a summary
        /// of each output is printed.
        #[arg(long = "output", short = 'o')]
        outputs: Vec<String>,
        /// Seed for initializers when no weights are given.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Which model to run, when the file has several (default: the last one).
        #[arg(long)]
        model: Option<String>,
        /// Execution backend: `cpu` (native code, the default) or `interp` (the reference
        /// interpreter, the oracle every backend is tested against).
        #[arg(long, value_enum, default_value_t = Backend::Cpu)]
        backend: Backend,
    },
    /// Measure a model: compile time per phase, latency (median, p10, p90) and throughput.
    Bench {
        /// The .model file.
        file: PathBuf,
        /// Weights in safetensors; without it, params are initialized with --seed.
        #[arg(long)]
        weights: Option<PathBuf>,
        /// An input: `x.npy` (in signature order) or `name=x.npy`.
        #[arg(long = "input", short = 'i')]
        inputs: Vec<String>,
        /// Seed for initializers when no weights are given.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Which model, when the file has several (default: the last one).
        #[arg(long)]
        model: Option<String>,
        /// Execution backend.
        #[arg(long, value_enum, default_value_t = Backend::Cpu)]
        backend: Backend,
        /// Seconds of timed runs (at least 10 runs are made).
        #[arg(long, default_value_t = 2.0)]
        min_time: f64,
        /// Worker threads (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Also time each instruction of the CPU backend's plan and print where the time goes.
        #[arg(long)]
        profile: bool,
    },
    /// Train a model as its `train` block says and write the trained weights.
    Train {
        /// The .model file.
        file: PathBuf,
        /// Seed for initialization, the split and shuffling (default: the block's, else 0).
        #[arg(long)]
        seed: Option<u64>,
        /// Total number of epochs (default: the block's).
        #[arg(long)]
        epochs: Option<usize>,
        /// The trained weights (default: the .model file with the extension .safetensors).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Write a checkpoint to this folder after each epoch.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Continue from a checkpoint.
        #[arg(long)]
        resume: Option<PathBuf>,
        /// Write the metrics per epoch as CSV (and the curves as SVG next to it).
        #[arg(long)]
        metrics: Option<PathBuf>,
        /// Which model to train (default: the model of the file's first train block).
        #[arg(long)]
        model: Option<String>,
    },
    /// Search hyper-parameters as the train block's `sweep` says: grid, random or Bayesian
    ///
    /// One training run per trial (Bayesian search is a tree-structured Parzen estimator);
    /// prints a line per trial, the trials ranked by objective and the best configuration.
    Sweep {
        /// The .model file.
        file: PathBuf,
        /// Which model's train block (default: the model of the file's first train block).
        #[arg(long)]
        model: Option<String>,
        /// Seed for the search and for every trial's training (default: the block's, else 0).
        #[arg(long)]
        seed: Option<u64>,
        /// Number of trials, overriding the method's (for a grid: the first N combinations).
        #[arg(long)]
        trials: Option<usize>,
        /// Epochs of every trial, overriding the block and an `epochs` axis (quick sweeps).
        #[arg(long)]
        epochs: Option<usize>,
        /// Write one row per trial as CSV:
        /// `trial,<axis...>,objective,val_loss,val_accuracy,seconds,status`.
        #[arg(long)]
        csv: Option<PathBuf>,
        /// Print one JSON object instead of the table (trial lines go to standard error).
        #[arg(long)]
        json: bool,
    },
    /// Write a model's initialized weights to a safetensors file.
    Init {
        /// The .model file.
        file: PathBuf,
        /// The safetensors file to write (atomically).
        #[arg(short, long)]
        output: PathBuf,
        /// Seed for the initializers.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Which model, when the file has several (default: the last one).
        #[arg(long)]
        model: Option<String>,
    },
    /// Serve the Language Server Protocol on standard input and output, for editors.
    Lsp,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Emit {
    Ast,
    Graph,
    /// The graph after the optimization passes.
    Optimized,
    /// The fusion plan: kernels with the source lines they came from, and refused fusions.
    Kernels,
    /// The CPU backend's instructions: native kernels, fused loops, what runs at bind time.
    Plan,
    /// The Cranelift IR of the CPU backend's fused kernels.
    Clif,
    Dot,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Backend {
    /// The reference interpreter: plain loops, the oracle for every other backend.
    Interp,
    /// The CPU backend: Cranelift-compiled fused kernels, GEMM, planned memory, all cores.
    Cpu,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let color = match cli.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            use std::io::IsTerminal;
            std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
        }
    };
    // Deeply nested sources recurse deeply; a large stack keeps every accepted input safe.
    let worker = std::thread::Builder::new()
        .stack_size(512 << 20)
        .spawn(move || match cli.command {
            Command::Check { file } => commands::check(&file, color),
            Command::Build {
                file,
                emit,
                model,
                output,
            } => commands::build(&file, emit, model.as_deref(), output.as_deref(), color),
            Command::Run {
                file,
                weights,
                inputs,
                outputs,
                seed,
                model,
                backend,
            } => commands::run(
                commands::RunRequest {
                    file: &file,
                    weights: weights.as_deref(),
                    inputs: &inputs,
                    outputs: &outputs,
                    seed,
                    model: model.as_deref(),
                    backend,
                },
                color,
            ),
            Command::Bench {
                file,
                weights,
                inputs,
                seed,
                model,
                backend,
                min_time,
                threads,
                json,
                profile,
            } => {
                if let Some(threads) = threads {
                    if threads == 0
                        || rayon::ThreadPoolBuilder::new()
                            .num_threads(threads)
                            .build_global()
                            .is_err()
                    {
                        eprintln!("error: --threads must be at least 1");
                        return 2;
                    }
                }
                if !(min_time.is_finite() && min_time >= 0.0) {
                    eprintln!("error: --min-time must be a number of seconds, at least 0");
                    return 2;
                }
                bench::bench(
                    bench::BenchRequest {
                        file: &file,
                        weights: weights.as_deref(),
                        inputs: &inputs,
                        seed,
                        model: model.as_deref(),
                        backend,
                        min_time,
                        json,
                        profile,
                    },
                    color,
                )
            }
            Command::Train {
                file,
                seed,
                epochs,
                output,
                checkpoint,
                resume,
                metrics,
                model,
            } => train::train(
                train::TrainRequest {
                    file: &file,
                    seed,
                    epochs,
                    output: output.as_deref(),
                    checkpoint: checkpoint.as_deref(),
                    resume: resume.as_deref(),
                    metrics: metrics.as_deref(),
                    model: model.as_deref(),
                },
                color,
            ),
            Command::Sweep {
                file,
                model,
                seed,
                trials,
                epochs,
                csv,
                json,
            } => {
                if trials == Some(0) {
                    eprintln!("error: --trials must be at least 1");
                    return 2;
                }
                if epochs == Some(0) {
                    eprintln!("error: --epochs must be at least 1");
                    return 2;
                }
                sweep::sweep(
                    sweep::SweepRequest {
                        file: &file,
                        model: model.as_deref(),
                        seed,
                        trials,
                        epochs,
                        csv: csv.as_deref(),
                        json,
                    },
                    color,
                )
            }
            Command::Init {
                file,
                output,
                seed,
                model,
            } => commands::init(&file, &output, seed, model.as_deref(), color),
            Command::Lsp => lsp::serve(),
        });
    let code = match worker.map(|handle| handle.join()) {
        Ok(Ok(code)) => code,
        _ => {
            eprintln!("error: internal compiler error (this is a bug in modelc; please report it with the input)");
            1
        }
    };
    ExitCode::from(code)
}
