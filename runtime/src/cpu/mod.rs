//! The CPU backend: runs an optimized, scheduled graph with native code.
//!
//! Pipeline: [`plan`] gives every value a home and every kernel an instruction (fused
//! elementwise kernels compiled by Cranelift in [`jit`] from the steps [`fused`] derives;
//! contractions, convolution, pooling, reductions and movement in [`kernels`]; anything else
//! through the interpreter's kernel); [`rows`] groups row reductions with their neighbours and
//! [`epilogue`] folds the elementwise kernel after a contraction into it; [`exec`] binds params (computing static values such as
//! weight transposes once) and runs on one arena laid out by [`memory`] per binding of the
//! symbolic dims. A program compiled once runs at any batch size without recompiling.

pub mod epilogue;
pub mod exec;
pub mod fused;
pub mod jit;
pub mod jit_math;
pub mod kernels;
pub mod memory;
pub mod plan;
pub mod rows;

use exec::BoundProgram;
use modelc_compiler::interp::eval::bind_input_symbols;
use modelc_compiler::interp::{EvalError, Tensor};
use modelc_compiler::ir::Graph;
use modelc_compiler::schedule::Schedule;
use plan::Program;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long each compile phase took.
#[derive(Clone, Copy, Debug, Default)]
pub struct CompileTimes {
    /// The optimization passes.
    pub passes: Duration,
    /// Scheduling, planning and Cranelift code generation.
    pub codegen: Duration,
}

pub struct CpuExecutable {
    program: Program,
    times: CompileTimes,
}

impl CpuExecutable {
    /// Optimizes, schedules and compiles a graph.
    pub fn compile(graph: &Graph) -> Result<CpuExecutable, String> {
        let started = Instant::now();
        let mut graph = graph.clone();
        modelc_compiler::passes::optimize(&mut graph)
            .map_err(|(pass, errors)| format!("pass `{pass}` broke the graph: {errors:?}"))?;
        let passes = started.elapsed();
        let started = Instant::now();
        let program = Program::new(graph)?;
        Ok(CpuExecutable {
            program,
            times: CompileTimes {
                passes,
                codegen: started.elapsed(),
            },
        })
    }

    pub fn compile_times(&self) -> CompileTimes {
        self.times
    }

    /// The CLIF of every compiled kernel, for `--emit clif`.
    pub fn clif(&self) -> String {
        let mut kernels: Vec<&(usize, String)> = self.program.clif.iter().collect();
        kernels.sort_by_key(|(index, _)| *index);
        kernels
            .iter()
            .map(|(index, clif)| format!("; kernel {index}\n{clif}\n"))
            .collect()
    }

    /// The planned instructions, for `--emit plan`.
    pub fn plan(&self) -> String {
        self.program.describe()
    }

    pub fn schedule(&self) -> &Schedule {
        &self.program.schedule
    }

    /// The optimized graph.
    pub fn graph(&self) -> &Graph {
        &self.program.graph
    }

    /// Binds params by name: checks them and computes every value that depends only on them
    /// (weight transposes, constant masks), once.
    pub fn bind<'p>(&'p self, params: &'p HashMap<String, Tensor>) -> Result<Bound<'p>, EvalError> {
        Ok(Bound {
            program: BoundProgram::new(&self.program, params)?,
            graph: &self.program.graph,
        })
    }

    /// Binds and runs once: inputs in signature order, params by name.
    pub fn run(
        &self,
        inputs: &[Tensor],
        params: &HashMap<String, Tensor>,
    ) -> Result<Vec<Tensor>, EvalError> {
        self.bind(params)?.run(inputs)
    }
}

/// One instruction's share of [`Bound::profile`].
#[derive(Clone, Debug)]
pub struct ProfileLine {
    /// `%out = what(%in, ...)`, as in `--emit plan`.
    pub instruction: String,
    /// What it runs (`matmul rhs.T`, `rows[...]`), for totals by kind.
    pub kind: String,
    pub total: Duration,
}

/// An executable with its params bound, ready to run many times.
pub struct Bound<'p> {
    program: BoundProgram<'p>,
    graph: &'p Graph,
}

impl Bound<'_> {
    /// Runs on inputs in signature order; their shapes bind the symbolic dims.
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, EvalError> {
        let bindings = bind_input_symbols(self.graph, inputs)?;
        self.program.run(inputs, &bindings)
    }

    /// Runs `runs` times and returns the wall time of each top-level instruction summed over
    /// the runs, in program order (a scan counts as one instruction, its body included).
    pub fn profile(&self, inputs: &[Tensor], runs: usize) -> Result<Vec<ProfileLine>, EvalError> {
        let bindings = bind_input_symbols(self.graph, inputs)?;
        let program = self.program.program();
        let mut times = vec![Duration::ZERO; program.instrs.len()];
        for _ in 0..runs {
            self.program
                .run_timed(inputs, &bindings, Some(&mut times))?;
        }
        Ok(program
            .instrs
            .iter()
            .zip(times)
            .filter(|(instr, _)| !instr.is_static)
            .map(|(instr, total)| ProfileLine {
                instruction: program.instr_text(instr),
                kind: program.instr_kind_text(instr),
                total,
            })
            .collect())
    }

    /// The arena a run on inputs of these shapes uses, in bytes (scan bodies not included).
    pub fn arena_bytes(&self, inputs: &[Tensor]) -> Result<usize, EvalError> {
        let bindings = bind_input_symbols(self.graph, inputs)?;
        Ok(self.program.layout(&bindings)?.arena_bytes)
    }
}
