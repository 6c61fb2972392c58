//! The CLI's commands. Each returns the process exit code.

use crate::{Backend, Emit};
use modelc_compiler::check::{check_file, select_model, CheckOptions, CheckResult};
use modelc_compiler::diag::render::render;
use modelc_compiler::diag::Diagnostic;
use modelc_compiler::interp::{evaluate, Tensor, TensorData};
use modelc_compiler::ir::{dot::graph_to_dot, print::print_graph};
use modelc_compiler::source::SourceMap;
use modelc_runtime::data::Standardizer;
use modelc_runtime::loader::FsLoader;
use modelc_runtime::{fsio, npy, session, weights};
use std::collections::HashMap;
use std::path::Path;

const EXIT_OK: u8 = 0;
const EXIT_DIAGNOSTICS: u8 = 1;
const EXIT_USAGE: u8 = 2;

pub(crate) fn print_diagnostics(diagnostics: &[Diagnostic], sources: &SourceMap, color: bool) {
    for diagnostic in diagnostics {
        eprintln!("{}", render(diagnostic, sources, color));
    }
    if diagnostics.len() > 1 {
        eprintln!("{} errors", diagnostics.len());
    }
}

/// Reads and checks a file; `None` after printing when it cannot be read or has errors.
fn load_and_check(file: &Path, color: bool, options: CheckOptions) -> Result<CheckResult, u8> {
    let name = file.to_string_lossy().into_owned();
    let empty = SourceMap::new();
    let bytes = match fsio::read_file(file) {
        Ok(bytes) => bytes,
        Err(diagnostic) => {
            print_diagnostics(&[diagnostic], &empty, color);
            return Err(EXIT_DIAGNOSTICS);
        }
    };
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => {
            let offset = error.utf8_error().valid_up_to();
            let diagnostic = Diagnostic::error(
                "invalid-utf8",
                format!("`{name}` is not valid UTF-8 (byte {offset})"),
            )
            .with_help("save the file as UTF-8");
            print_diagnostics(&[diagnostic], &empty, color);
            return Err(EXIT_DIAGNOSTICS);
        }
    };
    let result = check_file(&name, &text, &FsLoader, options);
    if result.has_errors() {
        print_diagnostics(&result.diagnostics, &result.program.sources, color);
        return Err(EXIT_DIAGNOSTICS);
    }
    Ok(result)
}

/// [`load_and_check`] for `modelc bench`: also returns how long parsing (the file and its
/// imports) took, and checking with lowering.
pub(crate) fn load_and_check_timed(
    file: &Path,
    color: bool,
) -> Result<(CheckResult, std::time::Duration, std::time::Duration), u8> {
    // Parse on its own first to time it, then check (which parses again) and subtract.
    let text = fsio::read_file(file)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_default();
    let started = std::time::Instant::now();
    let _ =
        modelc_compiler::check::modules::load_program(&file.to_string_lossy(), &text, &FsLoader);
    let parse = started.elapsed();
    let started = std::time::Instant::now();
    let result = load_and_check(file, color, CheckOptions::default())?;
    let total = started.elapsed();
    Ok((result, parse, total.saturating_sub(parse)))
}

pub fn check(file: &Path, color: bool) -> u8 {
    match load_and_check(file, color, CheckOptions::default()) {
        Ok(result) => {
            let models: Vec<&str> = result.models.iter().map(|m| m.name.as_str()).collect();
            if models.is_empty() {
                println!("{}: ok", file.display());
            } else {
                println!("{}: ok ({})", file.display(), models.join(", "));
            }
            EXIT_OK
        }
        Err(code) => code,
    }
}

fn write_output(text: &str, output: Option<&Path>, color: bool) -> u8 {
    match output {
        None => {
            print!("{text}");
            EXIT_OK
        }
        Some(path) => match fsio::write_atomic(path, text.as_bytes()) {
            Ok(()) => EXIT_OK,
            Err(diagnostic) => {
                print_diagnostics(&[diagnostic], &SourceMap::new(), color);
                EXIT_DIAGNOSTICS
            }
        },
    }
}

pub fn build(
    file: &Path,
    emit: Emit,
    model: Option<&str>,
    output: Option<&Path>,
    color: bool,
) -> u8 {
    let result = match load_and_check(file, color, CheckOptions::default()) {
        Ok(result) => result,
        Err(code) => return code,
    };
    let text = match emit {
        Emit::Ast => modelc_compiler::syntax::print::print_module(
            &result.program.modules[result.program.root].ast,
        ),
        Emit::Graph | Emit::Dot | Emit::Optimized | Emit::Kernels | Emit::Plan | Emit::Clif => {
            let checked = match select_model(&result, model) {
                Ok(checked) => checked,
                Err(diagnostic) => {
                    print_diagnostics(&[diagnostic], &result.program.sources, color);
                    return EXIT_DIAGNOSTICS;
                }
            };
            match emit {
                Emit::Dot => graph_to_dot(&checked.graph, Some(&result.program.sources)),
                Emit::Optimized => {
                    let mut graph = checked.graph.clone();
                    match modelc_compiler::passes::optimize(&mut graph) {
                        Ok(reports) => {
                            let mut text = print_graph(&graph, Some(&result.program.sources));
                            for report in reports {
                                text.push_str(&format!(
                                    "# {}: {} -> {} nodes, {} changes\n",
                                    report.name,
                                    report.nodes_before,
                                    report.nodes_after,
                                    report.changes
                                ));
                            }
                            text
                        }
                        Err((pass, errors)) => {
                            let diagnostic = Diagnostic::error(
                                "internal-error",
                                format!(
                                    "pass `{pass}` broke the graph: {}",
                                    errors.first().map(|e| e.to_string()).unwrap_or_default()
                                ),
                            )
                            .with_help("this is a bug in modelc; please report it with this file");
                            print_diagnostics(&[diagnostic], &result.program.sources, color);
                            return EXIT_DIAGNOSTICS;
                        }
                    }
                }
                Emit::Kernels | Emit::Plan | Emit::Clif => {
                    match modelc_runtime::cpu::CpuExecutable::compile(&checked.graph) {
                        Ok(executable) => match emit {
                            Emit::Clif => executable.clif(),
                            Emit::Plan => executable.plan(),
                            _ => modelc_compiler::schedule::print_schedule(
                                executable.graph(),
                                executable.schedule(),
                                Some(&result.program.sources),
                            ),
                        },
                        Err(message) => {
                            let diagnostic = Diagnostic::error(
                                "internal-error",
                                format!("the CPU backend failed: {message}"),
                            )
                            .with_help("this is a bug in modelc; please report it with this file");
                            print_diagnostics(&[diagnostic], &result.program.sources, color);
                            return EXIT_DIAGNOSTICS;
                        }
                    }
                }
                _ => print_graph(&checked.graph, Some(&result.program.sources)),
            }
        }
    };
    write_output(&text, output, color)
}

/// `name=path` or `path`.
fn split_binding(argument: &str) -> (Option<&str>, &str) {
    match argument.split_once('=') {
        Some((name, path)) if !name.is_empty() && !name.contains('/') && !name.contains('.') => {
            (Some(name), path)
        }
        _ => (None, argument),
    }
}

/// A run's inputs (in signature order), params (by name) and the weights file's string
/// metadata (empty without a file).
pub type RunValues = (
    Vec<Tensor>,
    HashMap<String, Tensor>,
    HashMap<String, String>,
);

/// Reads a model's inputs (`x.npy` in signature order or `name=x.npy`) and its params (from a
/// weights file, or initialized with `seed`); every problem is reported at once.
pub fn load_inputs_and_params(
    graph: &modelc_compiler::ir::Graph,
    input_arguments: &[String],
    weights_path: Option<&Path>,
    seed: u64,
) -> Result<RunValues, Vec<Diagnostic>> {
    // Inputs, by position or by name.
    let input_names: Vec<String> = graph
        .inputs
        .iter()
        .map(|id| match &graph.node(*id).op {
            modelc_compiler::ir::Op::Input { name, .. } => name.clone(),
            _ => String::new(),
        })
        .collect();
    let mut inputs: Vec<Option<Tensor>> = vec![None; input_names.len()];
    let mut problems = Vec::new();
    for (position, argument) in input_arguments.iter().enumerate() {
        let (name, path) = split_binding(argument);
        let index = match name {
            Some(name) => match input_names.iter().position(|n| n == name) {
                Some(index) => index,
                None => {
                    problems.push(
                        Diagnostic::error(
                            "input-mismatch",
                            format!("the model has no input `{name}`"),
                        )
                        .with_help(format!("its inputs are: {}", input_names.join(", "))),
                    );
                    continue;
                }
            },
            None => position,
        };
        if index >= inputs.len() {
            problems.push(
                Diagnostic::error(
                    "input-mismatch",
                    format!(
                        "{} inputs given, but the model takes {}",
                        input_arguments.len(),
                        input_names.len()
                    ),
                )
                .with_help(format!("its inputs are: {}", input_names.join(", "))),
            );
            continue;
        }
        match fsio::read_file(Path::new(path)).and_then(|bytes| npy::read_npy(&bytes, path)) {
            Ok(tensor) => inputs[index] = Some(tensor),
            Err(diagnostic) => problems.push(diagnostic),
        }
    }
    for (index, slot) in inputs.iter().enumerate() {
        if slot.is_none() && problems.is_empty() {
            let node = graph.node(graph.inputs[index]);
            problems.push(
                Diagnostic::error(
                    "input-mismatch",
                    format!("no value for input `{}`, a {}", input_names[index], node.ty),
                )
                .with_help(format!(
                    "pass it with `--input {}=file.npy`",
                    input_names[index]
                )),
            );
        }
    }
    let params = match session::load_params_with_metadata(graph, weights_path, seed) {
        Ok(loaded) => Some(loaded),
        Err(diagnostics) => {
            problems.extend(diagnostics);
            None
        }
    };
    match params {
        Some((params, metadata)) if problems.is_empty() => {
            Ok((inputs.into_iter().flatten().collect(), params, metadata))
        }
        _ => Err(problems),
    }
}

/// What `modelc run` was asked to do.
pub struct RunRequest<'a> {
    pub file: &'a Path,
    pub weights: Option<&'a Path>,
    pub inputs: &'a [String],
    pub outputs: &'a [String],
    pub seed: u64,
    pub model: Option<&'a str>,
    pub backend: Backend,
}

pub fn run(request: RunRequest, color: bool) -> u8 {
    let RunRequest {
        file,
        weights: weights_path,
        inputs: input_arguments,
        outputs: output_arguments,
        seed,
        model,
        backend,
    } = request;
    let result = match load_and_check(file, color, CheckOptions::default()) {
        Ok(result) => result,
        Err(code) => return code,
    };
    let sources = &result.program.sources;
    let checked = match select_model(&result, model) {
        Ok(checked) => checked,
        Err(diagnostic) => {
            print_diagnostics(&[diagnostic], sources, color);
            return EXIT_DIAGNOSTICS;
        }
    };
    let graph = &checked.graph;
    let (mut inputs, params, metadata) =
        match load_inputs_and_params(graph, input_arguments, weights_path, seed) {
            Ok(loaded) => loaded,
            Err(problems) => {
                print_diagnostics(&problems, sources, color);
                return EXIT_DIAGNOSTICS;
            }
        };
    if let Some(path) = weights_path {
        if let Err(diagnostic) = standardize_inputs(path, &metadata, &mut inputs) {
            print_diagnostics(&[diagnostic], sources, color);
            return EXIT_DIAGNOSTICS;
        }
    }
    let outputs = match backend {
        Backend::Interp => evaluate(graph, &inputs, &params),
        Backend::Cpu => match modelc_runtime::cpu::CpuExecutable::compile(graph) {
            Ok(executable) => executable.run(&inputs, &params),
            Err(message) => {
                let diagnostic = Diagnostic::error(
                    "internal-error",
                    format!("the CPU backend failed: {message}"),
                )
                .with_help("run with `--backend interp`; this is a bug in modelc");
                print_diagnostics(&[diagnostic], sources, color);
                return EXIT_DIAGNOSTICS;
            }
        },
    };
    let outputs = match outputs {
        Ok(outputs) => outputs,
        Err(error) => {
            print_diagnostics(&[error.to_diagnostic()], sources, color);
            return EXIT_DIAGNOSTICS;
        }
    };
    if output_arguments.is_empty() {
        for (index, tensor) in outputs.iter().enumerate() {
            println!("output {index}: {}", summarize(tensor));
        }
        return EXIT_OK;
    }
    for (position, argument) in output_arguments.iter().enumerate() {
        let (name, path) = split_binding(argument);
        let index = match name.map(|n| n.parse::<usize>()) {
            Some(Ok(index)) => index,
            Some(Err(_)) => {
                eprintln!("error: outputs are named by index, e.g. `--output 0=y.npy`");
                return EXIT_USAGE;
            }
            None => position,
        };
        let Some(tensor) = outputs.get(index) else {
            let diagnostic = Diagnostic::error(
                "input-mismatch",
                format!(
                    "the model has {} outputs; there is no output {index}",
                    outputs.len()
                ),
            );
            print_diagnostics(&[diagnostic], sources, color);
            return EXIT_DIAGNOSTICS;
        };
        if let Err(diagnostic) = fsio::write_atomic(Path::new(path), &npy::write_npy(tensor)) {
            print_diagnostics(&[diagnostic], sources, color);
            return EXIT_DIAGNOSTICS;
        }
    }
    EXIT_OK
}

/// Weights written by `modelc train` on standardized features record the training split's
/// mean and standard deviation; the model expects its input standardized the same way, so
/// `modelc run` applies them to the (single) input, and says so on stderr.
fn standardize_inputs(
    weights_path: &Path,
    metadata: &HashMap<String, String>,
    inputs: &mut [Tensor],
) -> Result<(), Diagnostic> {
    let name = weights_path.display().to_string();
    let standardizer = Standardizer::from_metadata(metadata).map_err(|message| {
        Diagnostic::error(
            "weights-corrupt",
            format!("`{name}` records a malformed standardization: {message}"),
        )
        .with_help("re-train the model, or remove the metadata from the file")
    })?;
    let Some(standardizer) = standardizer else {
        return Ok(());
    };
    let [input] = inputs else {
        return Err(Diagnostic::error(
            "input-mismatch",
            format!(
                "`{name}` was trained on one standardized input, but the model takes {}",
                inputs.len()
            ),
        ));
    };
    standardizer.apply_to_batch(input).map_err(|message| {
        Diagnostic::error(
            "input-mismatch",
            format!("cannot standardize the input: {message}"),
        )
        .with_help("pass the raw features the model was trained on, one example per row")
    })?;
    eprintln!(
        "note: standardized the input with the mean and standard deviation of {} features \
         recorded in `{name}` by `modelc train`",
        standardizer.mean.len()
    );
    Ok(())
}

fn summarize(tensor: &Tensor) -> String {
    let shape: Vec<String> = tensor.shape.iter().map(|d| d.to_string()).collect();
    let values = match &tensor.data {
        TensorData::F32(v) => v
            .iter()
            .take(6)
            .map(|x| format!("{x:.6}"))
            .collect::<Vec<_>>(),
        TensorData::I64(v) => v.iter().take(6).map(|x| x.to_string()).collect(),
        TensorData::Bool(v) => v.iter().take(6).map(|x| x.to_string()).collect(),
    };
    let more = if tensor.len() > 6 { ", ..." } else { "" };
    format!(
        "{}[{}] = [{}{more}]",
        tensor.dtype(),
        shape.join(", "),
        values.join(", ")
    )
}

pub fn init(file: &Path, output: &Path, seed: u64, model: Option<&str>, color: bool) -> u8 {
    let result = match load_and_check(file, color, CheckOptions::default()) {
        Ok(result) => result,
        Err(code) => return code,
    };
    let checked = match select_model(&result, model) {
        Ok(checked) => checked,
        Err(diagnostic) => {
            print_diagnostics(&[diagnostic], &result.program.sources, color);
            return EXIT_DIAGNOSTICS;
        }
    };
    let tensors = match session::initialize_params(&checked.graph, seed) {
        Ok(tensors) => tensors,
        Err(diagnostic) => {
            print_diagnostics(&[diagnostic], &result.program.sources, color);
            return EXIT_DIAGNOSTICS;
        }
    };
    let metadata = std::collections::HashMap::from([
        ("model".to_string(), checked.name.clone()),
        ("seed".to_string(), seed.to_string()),
        ("producer".to_string(), "modelc".to_string()),
    ]);
    let bytes = match weights::write_safetensors(&tensors, Some(metadata)) {
        Ok(bytes) => bytes,
        Err(diagnostic) => {
            print_diagnostics(&[diagnostic], &result.program.sources, color);
            return EXIT_DIAGNOSTICS;
        }
    };
    match fsio::write_atomic(output, &bytes) {
        Ok(()) => {
            println!(
                "wrote {} params of `{}` to {}",
                tensors.len(),
                checked.name,
                output.display()
            );
            EXIT_OK
        }
        Err(diagnostic) => {
            print_diagnostics(&[diagnostic], &result.program.sources, color);
            EXIT_DIAGNOSTICS
        }
    }
}
