//! Every diagnostic code, with a one-line summary. `docs/diagnostics.md` documents each with an
//! example, and the test suite renders every code at least once.

pub struct CodeInfo {
    pub code: &'static str,
    pub summary: &'static str,
}

macro_rules! codes {
    ($($code:literal => $summary:literal,)*) => {
        pub const ALL: &[CodeInfo] = &[$(CodeInfo { code: $code, summary: $summary },)*];
    };
}

codes! {
    // Syntax.
    "syntax-error" => "the text does not follow the grammar",
    "unterminated-string" => "a string literal has no closing quote",
    "unterminated-comment" => "a `#=` block comment has no closing `=#`",
    "nesting-too-deep" => "brackets are nested deeper than the parser allows",
    "expression-too-long" => "an operator chain is longer than the compiler allows",
    "invalid-number" => "a number literal is out of range",
    "invalid-utf8" => "a source file is not valid UTF-8",
    // Modules and names.
    "unknown-name" => "a name is not defined in scope",
    "unknown-module" => "a `use` names a module that does not exist",
    "unknown-import" => "a `use` names an item the module does not define",
    "import-cycle" => "modules import each other in a cycle",
    "duplicate-definition" => "a name is defined twice in the same scope",
    "io-error" => "a file could not be read or written",
    // Calls and values.
    "missing-argument" => "a required argument is not given",
    "unknown-argument" => "a named argument does not exist",
    "duplicate-argument" => "an argument is given twice",
    "too-many-arguments" => "more positional arguments than parameters",
    "type-mismatch" => "a value has the wrong kind (tensor, int, layer, ...)",
    "not-callable" => "a value that is not a function or layer is called",
    "recursive-layer" => "a layer or function instantiates itself",
    "non-constant-condition" => "an `if` condition is not known at compile time",
    "invalid-argument" => "an argument's value is out of its allowed range",
    "invalid-pattern" => "a destructuring pattern does not fit the value",
    "missing-forward" => "a layer or model has no forward",
    "missing-result" => "a block ends without a result expression",
    "no-model" => "the file defines no model to compile",
    "invalid-initializer" => "a param initializer is not a known initializer",
    "invalid-type" => "a type annotation is malformed",
    // Shapes and dtypes.
    "shape-mismatch" => "a tensor's shape differs from the one expected",
    "rank-mismatch" => "a tensor has the wrong number of dims",
    "broadcast-mismatch" => "operand shapes do not broadcast",
    "matmul-mismatch" => "matmul operands' contracted dims differ",
    "dtype-mismatch" => "a tensor has the wrong element type",
    "invalid-axis" => "an axis is out of range for the tensor's rank",
    "invalid-reshape" => "a reshape changes the number of elements",
    "dim-not-divisible" => "a dim division leaves a remainder",
    "dim-overflow" => "a dim computation overflows 64 bits",
    "invalid-dim" => "a dim is zero, negative or not an integer",
    "tensor-too-large" => "a tensor has more elements than allowed",
    "program-too-large" => "a model takes too much work to elaborate (inlining blows up)",
    // Recurrence.
    "scan-state-shape" => "a scan's carried state changes type in the body",
    "yield-outside-scan" => "`yield` appears outside a scan body",
    "assign-outside-scan" => "a state update appears outside a scan body",
    // Train and compress blocks.
    "unknown-setting" => "a train or compress setting does not exist",
    "invalid-setting" => "a train or compress setting has a bad value",
    "unknown-model" => "a train or compress block names a model that is not defined",
    // Differentiation.
    "no-gradient" => "the gradient of the loss must flow through an op that has no gradient rule",
    // Run time: weights, inputs, evaluation.
    "weights-missing" => "the weights file lacks a parameter the model declares",
    "weights-unexpected" => "the weights file has a tensor the model does not declare",
    "weights-shape" => "a weight's shape differs from the declared one",
    "weights-dtype" => "a weight's element type is not supported",
    "weights-corrupt" => "the weights file is truncated or malformed",
    "input-mismatch" => "the inputs given do not match the forward signature",
    "npy-invalid" => "an .npy file is truncated, malformed or of an unsupported type",
    "data-invalid" => "a training data file is malformed or does not fit the task",
    "train-diverged" => "the training loss stopped being a finite number",
    "resume-mismatch" => "a checkpoint is of another model or seed than the run resuming it",
    "runtime-error" => "evaluation failed (index out of range, size limit)",
    // Bugs.
    "internal-error" => "an internal invariant of modelc failed: a bug to report",
}

pub fn summary(code: &str) -> Option<&'static str> {
    ALL.iter().find(|c| c.code == code).map(|c| c.summary)
}
