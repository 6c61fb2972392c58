//! Checks `train` and `compress` blocks and turns each into a typed [`TrainConfig`] or
//! [`CompressConfig`] for the training loop, the hyper-parameter search and the compression
//! passes.
//!
//! A setting's value is a constant expression: a number (constant arithmetic such as `2 ** 8`
//! is folded), a boolean, a string, a range `0..64`, a list, a bare name (`l1`, `accuracy`) or a
//! constructor call whose callee is a name (`adamw(lr = 3e-3, weight_decay = 1e-4)`). A bare
//! constructor name stands for a call with no arguments (`loss = mse`).
//!
//! Checking never stops at the first error: every bad setting, argument and sweep axis in a
//! block gets its own diagnostic, and the block yields a config only when none was found. A
//! setting whose value is wrong is checked no further, so one mistake gives one diagnostic.
//!
//! Codes: `unknown-model` (the block's target), `unknown-setting` (an unknown setting,
//! constructor, argument or name, with a did-you-mean), `invalid-setting` (a value of the wrong
//! kind or out of range, a missing or repeated argument) and `duplicate-definition` (a setting
//! or sweep axis given twice).

use crate::diag::Diagnostic;
use crate::source::Span;
use crate::syntax::ast::{
    Arg, BinaryOperator, Expr, ExprKind, Setting, SettingsDecl, Sweep, UnaryOperator,
};

/// Fraction of the data used for training when `split` is not given; the rest is validation.
pub const DEFAULT_SPLIT: f64 = 0.8;
/// Batch size when `batch` is not given.
pub const DEFAULT_BATCH: usize = 32;
/// Number of epochs when `epochs` is not given.
pub const DEFAULT_EPOCHS: usize = 10;
/// Learning rate of `adam` when `lr` is not given (the optimizer when none is given).
pub const DEFAULT_ADAM_LR: f64 = 1e-3;
/// Most CSV feature columns a `features` setting may select; more is surely a typo, and the
/// column list is materialised.
pub const MAX_FEATURE_COLUMNS: usize = 1 << 22;

// ------------------------------------------------------------------------------------ public API

/// Which kind of block is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SettingsKind {
    Train,
    Compress,
}

impl SettingsKind {
    pub fn keyword(self) -> &'static str {
        match self {
            SettingsKind::Train => "train",
            SettingsKind::Compress => "compress",
        }
    }
}

/// The checked contents of one block.
// There is one per block, never arrays of them, so boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum SettingsConfig {
    Train(TrainConfig),
    Compress(CompressConfig),
}

/// A checked `train` block. Every setting not written in the block holds its default.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// The model trained.
    pub model: String,
    /// Where the examples come from; `None` when the block does not say (the CLI may).
    pub data: Option<DataSpec>,
    /// Fraction of the examples used for training, in (0, 1); the rest is for validation.
    pub split: f64,
    pub loss: LossSpec,
    pub optimizer: OptimizerSpec,
    pub schedule: ScheduleSpec,
    pub batch: usize,
    pub epochs: usize,
    /// Metrics reported after each epoch, in the order written, without repeats. Empty when
    /// not given; the training loop reports the loss in any case.
    pub metrics: Vec<Metric>,
    /// L1 regularization strength, `>= 0`: `l1 * sum(|w|)` is added to the loss.
    pub l1: f64,
    /// L2 regularization strength, `>= 0`: `l2 * sum(w * w)` is added to the loss.
    pub l2: f64,
    /// Seed for initialization, shuffling and dropout; `None` lets the runtime choose.
    pub seed: Option<u64>,
    pub sweep: Option<SweepSpec>,
    /// The whole `train` block.
    pub span: Span,
}

impl TrainConfig {
    /// The configuration a block with no settings gets.
    pub fn defaults(model: impl Into<String>) -> TrainConfig {
        TrainConfig {
            model: model.into(),
            data: None,
            split: DEFAULT_SPLIT,
            loss: LossSpec::default(),
            optimizer: OptimizerSpec::default(),
            schedule: ScheduleSpec::default(),
            batch: DEFAULT_BATCH,
            epochs: DEFAULT_EPOCHS,
            metrics: Vec::new(),
            l1: 0.0,
            l2: 0.0,
            seed: None,
            sweep: None,
            span: Span::DUMMY,
        }
    }
}

/// `data = ...`, with the span of its value so that a file that cannot be read is reported at
/// the setting.
#[derive(Clone, Debug, PartialEq)]
pub struct DataSpec {
    pub source: DataSource,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum DataSource {
    /// `csv("path", features = 0..64, label = 64, shape = [1, 8, 8], header = false)`
    Csv(CsvData),
    /// `npy("x.npy", "y.npy")`: features and labels in two `.npy` files.
    Npy { features: String, label: String },
    /// `safetensors("file", features = "x", label = "y")`: two tensors of one file.
    Safetensors {
        path: String,
        features: String,
        label: String,
    },
    /// `synthetic("copy", length = 8, vocab = 10, samples = 10000, layout = "causal")`:
    /// generated sequence tasks.
    Synthetic {
        task: SyntheticTask,
        length: usize,
        vocab: usize,
        samples: usize,
        layout: SequenceLayout,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct CsvData {
    pub path: String,
    /// Zero-based feature columns in order; `None`: every column but the label's.
    pub features: Option<Vec<usize>>,
    /// Zero-based label column; `None`: the last column.
    pub label: Option<usize>,
    /// Shape of one example's features (`[1, 8, 8]`); `None`: a flat vector. When both are
    /// given, its element count equals the number of feature columns.
    pub shape: Option<Vec<usize>>,
    /// Whether the first row holds column names (default `false`).
    pub header: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyntheticTask {
    Copy,
    Reverse,
    Sort,
}

impl SyntheticTask {
    pub fn name(self) -> &'static str {
        match self {
            SyntheticTask::Copy => "copy",
            SyntheticTask::Reverse => "reverse",
            SyntheticTask::Sort => "sort",
        }
    }
}

/// How a synthetic sequence task is laid out (`layout = "aligned" | "causal"`); the runtime's
/// `data::synthetic` module gives the exact format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SequenceLayout {
    /// Input `x` (`[length]`), target `f(x)` (`[length]`) at the same positions. Learnable
    /// only by models that see the whole input at every position (bidirectional encoders and
    /// RNNs), except for `copy`.
    Aligned,
    /// Prompt then answer, for any per-token model including causal decoders and
    /// unidirectional RNNs: input `x ++ [SEP] ++ f(x)[..length-1]` (`[2 * length]`, `SEP` =
    /// `vocab`), target `-100` (ignored) for the first `length` positions, then `f(x)`.
    #[default]
    Causal,
}

impl SequenceLayout {
    pub fn name(self) -> &'static str {
        match self {
            SequenceLayout::Aligned => "aligned",
            SequenceLayout::Causal => "causal",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LossSpec {
    /// Softmax cross entropy over logits, with integer class labels.
    CrossEntropy { label_smoothing: f64 },
    /// Negative log likelihood over log-probabilities.
    Nll,
    /// Mean squared error.
    Mse,
    /// Sigmoid and binary cross entropy over logits.
    BceWithLogits,
}

impl Default for LossSpec {
    fn default() -> LossSpec {
        LossSpec::CrossEntropy {
            label_smoothing: 0.0,
        }
    }
}

impl LossSpec {
    pub fn name(self) -> &'static str {
        match self {
            LossSpec::CrossEntropy { .. } => "cross_entropy",
            LossSpec::Nll => "nll",
            LossSpec::Mse => "mse",
            LossSpec::BceWithLogits => "bce_with_logits",
        }
    }
}

/// An optimizer and its hyper-parameters, named and defaulted as in PyTorch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimizerSpec {
    Sgd {
        lr: f64,
        momentum: f64,
        nesterov: bool,
    },
    Adam {
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
    },
    /// Adam with decoupled weight decay.
    AdamW {
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
    },
    RmsProp {
        lr: f64,
        alpha: f64,
        eps: f64,
    },
}

impl Default for OptimizerSpec {
    fn default() -> OptimizerSpec {
        OptimizerSpec::Adam {
            lr: DEFAULT_ADAM_LR,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

impl OptimizerSpec {
    pub fn name(self) -> &'static str {
        match self {
            OptimizerSpec::Sgd { .. } => "sgd",
            OptimizerSpec::Adam { .. } => "adam",
            OptimizerSpec::AdamW { .. } => "adamw",
            OptimizerSpec::RmsProp { .. } => "rmsprop",
        }
    }

    pub fn lr(self) -> f64 {
        match self {
            OptimizerSpec::Sgd { lr, .. }
            | OptimizerSpec::Adam { lr, .. }
            | OptimizerSpec::AdamW { lr, .. }
            | OptimizerSpec::RmsProp { lr, .. } => lr,
        }
    }
}

/// How the learning rate changes over training. Warm-ups count optimizer steps; `step`'s
/// `every` counts epochs, as PyTorch's `StepLR` is usually stepped.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum ScheduleSpec {
    #[default]
    Constant,
    /// Multiplies the rate by `gamma` (in (0, 1]) every `every` epochs.
    Step { every: usize, gamma: f64 },
    /// Linear warm-up from 0 over `warmup` steps, then cosine decay to 0 at the end.
    Cosine { warmup: usize },
    /// Linear warm-up from 0 over `warmup` steps, then linear decay to 0 at the end.
    Linear { warmup: usize },
}

impl ScheduleSpec {
    pub fn name(self) -> &'static str {
        match self {
            ScheduleSpec::Constant => "constant",
            ScheduleSpec::Step { .. } => "step",
            ScheduleSpec::Cosine { .. } => "cosine",
            ScheduleSpec::Linear { .. } => "linear",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    Accuracy,
    Loss,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::Loss => "loss",
        }
    }
}

/// `sweep { ... }`: the hyper-parameters searched and how.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepSpec {
    /// In the order written, each target at most once.
    pub axes: Vec<SweepAxis>,
    pub method: SearchMethod,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SweepAxis {
    pub target: SweepTarget,
    pub values: SweepValues,
    /// The whole `target in values` line.
    pub span: Span,
}

/// What a sweep axis varies: a train setting or an argument of the block's optimizer (the
/// checker makes sure the optimizer takes it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SweepTarget {
    Batch,
    Epochs,
    L1,
    L2,
    Split,
    Lr,
    WeightDecay,
    Momentum,
    Beta1,
    Beta2,
}

impl SweepTarget {
    pub const ALL: [SweepTarget; 10] = [
        SweepTarget::Batch,
        SweepTarget::Epochs,
        SweepTarget::L1,
        SweepTarget::L2,
        SweepTarget::Split,
        SweepTarget::Lr,
        SweepTarget::WeightDecay,
        SweepTarget::Momentum,
        SweepTarget::Beta1,
        SweepTarget::Beta2,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SweepTarget::Batch => "batch",
            SweepTarget::Epochs => "epochs",
            SweepTarget::L1 => "l1",
            SweepTarget::L2 => "l2",
            SweepTarget::Split => "split",
            SweepTarget::Lr => "lr",
            SweepTarget::WeightDecay => "weight_decay",
            SweepTarget::Momentum => "momentum",
            SweepTarget::Beta1 => "beta1",
            SweepTarget::Beta2 => "beta2",
        }
    }

    pub fn from_name(name: &str) -> Option<SweepTarget> {
        SweepTarget::ALL
            .into_iter()
            .find(|target| target.name() == name)
    }

    /// Whether the values are whole numbers (`batch`, `epochs`).
    pub fn is_integer(self) -> bool {
        matches!(self.domain(), Domain::Int(_))
    }

    /// Whether it is an optimizer argument rather than a train setting.
    pub fn is_optimizer_argument(self) -> bool {
        matches!(
            self,
            SweepTarget::Lr
                | SweepTarget::WeightDecay
                | SweepTarget::Momentum
                | SweepTarget::Beta1
                | SweepTarget::Beta2
        )
    }

    /// The values allowed, the same for the plain setting and the sweep axis.
    fn domain(self) -> Domain {
        match self {
            SweepTarget::Batch | SweepTarget::Epochs => Domain::Int(IntRule::Positive),
            SweepTarget::L1 | SweepTarget::L2 | SweepTarget::WeightDecay => {
                Domain::Float(FloatRule::NonNegative)
            }
            SweepTarget::Split => Domain::Float(FloatRule::OpenUnit),
            SweepTarget::Lr => Domain::Float(FloatRule::Positive),
            SweepTarget::Momentum | SweepTarget::Beta1 | SweepTarget::Beta2 => {
                Domain::Float(FloatRule::HalfOpenUnit)
            }
        }
    }
}

/// The values a sweep axis takes. Integer axes hold whole numbers in their lists.
#[derive(Clone, Debug, PartialEq)]
pub enum SweepValues {
    /// `[32, 64, 128]`: exactly these, in this order.
    List(Vec<f64>),
    /// `uniform(a, b)`: uniform on [a, b).
    Uniform { low: f64, high: f64 },
    /// `log_uniform(a, b)`: log-uniform on [a, b), `0 < a < b`.
    LogUniform { low: f64, high: f64 },
    /// `int_uniform(a, b)`: a whole number in [a, b], both ends included.
    IntUniform { low: i64, high: i64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SearchMethod {
    /// Every combination of the axes' lists.
    Grid,
    Random {
        trials: usize,
    },
    Bayesian {
        trials: usize,
    },
}

/// A checked `compress` block.
#[derive(Clone, Debug, PartialEq)]
pub struct CompressConfig {
    pub model: String,
    pub prune: Option<PruneSpec>,
    pub quantize: Option<QuantizeSpec>,
    /// Dotted layer paths (`"block1.fc3"`) left uncompressed.
    pub keep: Vec<String>,
    /// The whole `compress` block.
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PruneSpec {
    /// Removes whole output channels/units with the smallest norm, rewriting the shapes.
    Structured { sparsity: f64, by: PruneNorm },
    /// Zeroes the individual weights of smallest magnitude.
    Unstructured { sparsity: f64 },
}

impl PruneSpec {
    pub fn sparsity(self) -> f64 {
        match self {
            PruneSpec::Structured { sparsity, .. } | PruneSpec::Unstructured { sparsity } => {
                sparsity
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PruneNorm {
    L1,
    L2,
}

/// `quantize = int8(calibrate = 256, per_channel = true, max_error = 0.01)`
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QuantizeSpec {
    /// Number of examples run to calibrate activation ranges.
    pub calibrate: usize,
    /// One scale per output channel of each weight, rather than one per tensor.
    pub per_channel: bool,
    /// A layer whose relative output error exceeds this stays in float.
    pub max_error: f64,
}

impl Default for QuantizeSpec {
    fn default() -> QuantizeSpec {
        QuantizeSpec {
            calibrate: 256,
            per_channel: true,
            max_error: 0.01,
        }
    }
}

/// Checks one train or compress block. `model_names` lists the models in scope: the target
/// must be one of them, and the did-you-mean for a misspelled target is chosen among them.
/// Reports every error in the block to `diagnostics` and returns `None` when there was any.
pub fn check_settings(
    kind: SettingsKind,
    decl: &SettingsDecl,
    model_names: &[String],
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<SettingsConfig> {
    let first_new = diagnostics.len();
    let mut checker = Checker {
        diagnostics,
        errors: 0,
    };
    checker.check_target(decl, model_names);
    let config = match kind {
        SettingsKind::Train => checker.check_train(decl).map(SettingsConfig::Train),
        SettingsKind::Compress => checker.check_compress(decl).map(SettingsConfig::Compress),
    };
    let errors = checker.errors;
    // Checks run setting by setting; report in source order, as a reader meets them.
    if let Some(new) = diagnostics.get_mut(first_new..) {
        new.sort_by_key(|diagnostic| diagnostic.primary_span().map(|span| (span.start, span.end)));
    }
    if errors > 0 {
        return None;
    }
    config
}

/// The closest of `candidates` to `name` within edit distance 2, for a "did you mean" help.
pub fn closest_name<'c>(
    name: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let name_length = name.chars().count();
    let mut best: Option<(usize, &'c str)> = None;
    for candidate in candidates {
        if candidate == name {
            continue;
        }
        let distance = levenshtein(name, candidate);
        // A distance as long as the name itself means nothing of it was kept.
        if distance > 2 || distance >= name_length.max(candidate.chars().count()) {
            continue;
        }
        if best.is_none_or(|(best_distance, _)| distance < best_distance) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// Edit distance (insertions, deletions, substitutions) between two strings, by characters.
pub fn levenshtein(a: &str, b: &str) -> usize {
    let b_chars: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b_chars.len()).collect();
    let mut current = vec![0; b_chars.len() + 1];
    for (i, a_char) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, &b_char) in b_chars.iter().enumerate() {
            let substitution = previous[j] + usize::from(a_char != b_char);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b_chars.len()]
}

// ------------------------------------------------------------------------ what settings accept

const TRAIN_SETTINGS: &[&str] = &[
    "data",
    "split",
    "loss",
    "optimizer",
    "schedule",
    "batch",
    "epochs",
    "metrics",
    "l1",
    "l2",
    "seed",
];
const COMPRESS_SETTINGS: &[&str] = &["prune", "quantize", "keep"];
const SWEEP_SETTINGS: &[&str] = &["method"];
const METRICS: &[&str] = &["accuracy", "loss"];
const SYNTHETIC_TASKS: &[&str] = &["copy", "reverse", "sort"];
const SEQUENCE_LAYOUTS: &[&str] = &["aligned", "causal"];
const PRUNE_NORMS: &[&str] = &["l1", "l2"];

/// A constructor parameter: its name and whether it must be given.
struct ParamSpec {
    name: &'static str,
    required: bool,
}

const fn required(name: &'static str) -> ParamSpec {
    ParamSpec {
        name,
        required: true,
    }
}

const fn optional(name: &'static str) -> ParamSpec {
    ParamSpec {
        name,
        required: false,
    }
}

struct ConstructorSpec {
    name: &'static str,
    params: &'static [ParamSpec],
}

/// The constructors one setting accepts, with the words its messages use.
struct Family {
    /// `"an optimizer"`
    article: &'static str,
    /// `"optimizer"`
    noun: &'static str,
    /// `"adam(lr = 1e-3)"`
    example: &'static str,
    constructors: &'static [ConstructorSpec],
}

const DATA: Family = Family {
    article: "a data source",
    noun: "data source",
    example: "csv(\"data.csv\", label = 0)",
    constructors: &[
        ConstructorSpec {
            name: "csv",
            params: &[
                required("path"),
                optional("features"),
                optional("label"),
                optional("shape"),
                optional("header"),
            ],
        },
        ConstructorSpec {
            name: "npy",
            params: &[required("features"), required("label")],
        },
        ConstructorSpec {
            name: "safetensors",
            params: &[required("path"), optional("features"), optional("label")],
        },
        ConstructorSpec {
            name: "synthetic",
            params: &[
                required("task"),
                optional("length"),
                optional("vocab"),
                optional("samples"),
                optional("layout"),
            ],
        },
    ],
};

const LOSS: Family = Family {
    article: "a loss",
    noun: "loss",
    example: "cross_entropy()",
    constructors: &[
        ConstructorSpec {
            name: "cross_entropy",
            params: &[optional("label_smoothing")],
        },
        ConstructorSpec {
            name: "nll",
            params: &[],
        },
        ConstructorSpec {
            name: "mse",
            params: &[],
        },
        ConstructorSpec {
            name: "bce_with_logits",
            params: &[],
        },
    ],
};

const OPTIMIZER: Family = Family {
    article: "an optimizer",
    noun: "optimizer",
    example: "adam(lr = 1e-3)",
    constructors: &[
        ConstructorSpec {
            name: "sgd",
            params: &[required("lr"), optional("momentum"), optional("nesterov")],
        },
        ConstructorSpec {
            name: "adam",
            params: &[
                optional("lr"),
                optional("beta1"),
                optional("beta2"),
                optional("eps"),
            ],
        },
        ConstructorSpec {
            name: "adamw",
            params: &[
                required("lr"),
                optional("weight_decay"),
                optional("beta1"),
                optional("beta2"),
                optional("eps"),
            ],
        },
        ConstructorSpec {
            name: "rmsprop",
            params: &[required("lr"), optional("alpha"), optional("eps")],
        },
    ],
};

const SCHEDULE: Family = Family {
    article: "a schedule",
    noun: "schedule",
    example: "cosine(warmup = 100)",
    constructors: &[
        ConstructorSpec {
            name: "constant",
            params: &[],
        },
        ConstructorSpec {
            name: "step",
            params: &[required("every"), optional("gamma")],
        },
        ConstructorSpec {
            name: "cosine",
            params: &[optional("warmup")],
        },
        ConstructorSpec {
            name: "linear",
            params: &[optional("warmup")],
        },
    ],
};

const SWEEP_VALUES: Family = Family {
    article: "a list of values or a distribution",
    noun: "distribution",
    example: "log_uniform(1e-4, 1e-2)",
    constructors: &[
        ConstructorSpec {
            name: "uniform",
            params: &[required("low"), required("high")],
        },
        ConstructorSpec {
            name: "log_uniform",
            params: &[required("low"), required("high")],
        },
        ConstructorSpec {
            name: "int_uniform",
            params: &[required("low"), required("high")],
        },
    ],
};

const METHOD: Family = Family {
    article: "a search method",
    noun: "search method",
    example: "random(trials = 20)",
    constructors: &[
        ConstructorSpec {
            name: "grid",
            params: &[],
        },
        ConstructorSpec {
            name: "random",
            params: &[required("trials")],
        },
        ConstructorSpec {
            name: "bayesian",
            params: &[required("trials")],
        },
    ],
};

const PRUNE: Family = Family {
    article: "a pruning method",
    noun: "pruning method",
    example: "structured(sparsity = 0.5, by = l1)",
    constructors: &[
        ConstructorSpec {
            name: "structured",
            params: &[optional("sparsity"), optional("by")],
        },
        ConstructorSpec {
            name: "unstructured",
            params: &[optional("sparsity")],
        },
    ],
};

const QUANTIZE: Family = Family {
    article: "a quantization scheme",
    noun: "quantization scheme",
    example: "int8(calibrate = 256)",
    constructors: &[ConstructorSpec {
        name: "int8",
        params: &[
            optional("calibrate"),
            optional("per_channel"),
            optional("max_error"),
        ],
    }],
};

/// The range a float setting must lie in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FloatRule {
    /// `> 0`
    Positive,
    /// `>= 0`
    NonNegative,
    /// `(0, 1)`
    OpenUnit,
    /// `[0, 1)`
    HalfOpenUnit,
    /// `(0, 1]`
    PositiveUpToOne,
}

impl FloatRule {
    fn accepts(self, value: f64) -> bool {
        value.is_finite()
            && match self {
                FloatRule::Positive => value > 0.0,
                FloatRule::NonNegative => value >= 0.0,
                FloatRule::OpenUnit => value > 0.0 && value < 1.0,
                FloatRule::HalfOpenUnit => (0.0..1.0).contains(&value),
                FloatRule::PositiveUpToOne => value > 0.0 && value <= 1.0,
            }
    }

    /// The range in words, for a value that must also be a whole number.
    fn bounds(self) -> &'static str {
        match self {
            FloatRule::Positive => "> 0",
            FloatRule::NonNegative => ">= 0",
            FloatRule::OpenUnit => "between 0 and 1",
            FloatRule::HalfOpenUnit => "in [0, 1)",
            FloatRule::PositiveUpToOne => "in (0, 1]",
        }
    }

    fn expected(self) -> &'static str {
        match self {
            FloatRule::Positive => "a positive float",
            FloatRule::NonNegative => "a float >= 0",
            FloatRule::OpenUnit => "a float between 0 and 1",
            FloatRule::HalfOpenUnit => "a float in [0, 1)",
            FloatRule::PositiveUpToOne => "a float in (0, 1]",
        }
    }
}

/// The range an integer setting must lie in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IntRule {
    /// `> 0`
    Positive,
    /// `>= 0`
    NonNegative,
}

impl IntRule {
    fn accepts(self, value: i64) -> bool {
        match self {
            IntRule::Positive => value > 0,
            IntRule::NonNegative => value >= 0,
        }
    }

    fn expected(self) -> &'static str {
        match self {
            IntRule::Positive => "a positive integer",
            IntRule::NonNegative => "an integer >= 0",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Domain {
    Int(IntRule),
    Float(FloatRule),
}

// ------------------------------------------------------------------------------ constant values

#[derive(Clone, Copy, Debug, PartialEq)]
enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    fn as_f64(self) -> f64 {
        match self {
            Number::Int(value) => value as f64,
            Number::Float(value) => value,
        }
    }
}

/// The value of a constant numeric expression, or `None` when it is not one (or overflows,
/// or divides by zero). The parser bounds expression depth, so the recursion is bounded.
fn eval_number(expr: &Expr) -> Option<Number> {
    match &expr.kind {
        ExprKind::Int(value) => Some(Number::Int(*value)),
        ExprKind::Float(value) => value.is_finite().then_some(Number::Float(*value)),
        ExprKind::Unary {
            op: UnaryOperator::Neg,
            operand,
        } => match eval_number(operand)? {
            Number::Int(value) => value.checked_neg().map(Number::Int),
            Number::Float(value) => Some(Number::Float(-value)),
        },
        ExprKind::Binary { op, lhs, rhs } => fold_binary(*op, eval_number(lhs)?, eval_number(rhs)?),
        _ => None,
    }
}

fn fold_binary(op: BinaryOperator, lhs: Number, rhs: Number) -> Option<Number> {
    if let (Number::Int(a), Number::Int(b)) = (lhs, rhs) {
        return match op {
            BinaryOperator::Add => a.checked_add(b).map(Number::Int),
            BinaryOperator::Sub => a.checked_sub(b).map(Number::Int),
            BinaryOperator::Mul => a.checked_mul(b).map(Number::Int),
            BinaryOperator::Rem => a.checked_rem(b).map(Number::Int),
            // Integer division stays an integer only when exact: `64 / 2`, but `1 / 3` is 0.33.
            BinaryOperator::Div if b == 0 => None,
            BinaryOperator::Div if a.checked_rem(b) == Some(0) => a.checked_div(b).map(Number::Int),
            BinaryOperator::Div => finite(a as f64 / b as f64),
            BinaryOperator::Pow => match u32::try_from(b) {
                Ok(exponent) => a.checked_pow(exponent).map(Number::Int),
                Err(_) => finite((a as f64).powf(b as f64)),
            },
            _ => None,
        };
    }
    let (a, b) = (lhs.as_f64(), rhs.as_f64());
    match op {
        BinaryOperator::Add => finite(a + b),
        BinaryOperator::Sub => finite(a - b),
        BinaryOperator::Mul => finite(a * b),
        BinaryOperator::Div => finite(a / b),
        BinaryOperator::Rem => finite(a % b),
        BinaryOperator::Pow => finite(a.powf(b)),
        _ => None,
    }
}

fn finite(value: f64) -> Option<Number> {
    value.is_finite().then_some(Number::Float(value))
}

/// How a value reads in "found ..." labels.
fn describe(expr: &Expr) -> String {
    if let Some(number) = eval_number(expr) {
        return match number {
            Number::Int(value) => value.to_string(),
            Number::Float(value) => format!("{value:?}"),
        };
    }
    match &expr.kind {
        ExprKind::Bool(value) => value.to_string(),
        ExprKind::Str(text) if text.chars().count() <= 40 => format!("the string {text:?}"),
        ExprKind::Str(_) => "a string".to_string(),
        ExprKind::Name(name) => format!("`{name}`"),
        ExprKind::Range { .. } => "a range".to_string(),
        ExprKind::List(_) => "a list".to_string(),
        ExprKind::Tuple(items) if items.is_empty() => "nothing".to_string(),
        ExprKind::Tuple(_) => "a tuple".to_string(),
        ExprKind::Call { callee, .. } => match &callee.kind {
            ExprKind::Name(name) => format!("a call to `{name}`"),
            _ => "a call".to_string(),
        },
        ExprKind::Lambda { .. } => "a function".to_string(),
        _ => "an expression that is not a constant".to_string(),
    }
}

fn quoted_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A value written as a constructor: `adam(lr = 1e-3)`, or a bare `adam`.
struct Constructor<'e> {
    name: &'e str,
    name_span: Span,
    args: &'e [Arg],
    span: Span,
}

fn as_constructor(expr: &Expr) -> Option<Constructor<'_>> {
    match &expr.kind {
        ExprKind::Name(name) => Some(Constructor {
            name,
            name_span: expr.span,
            args: &[],
            span: expr.span,
        }),
        ExprKind::Call { callee, args } => match &callee.kind {
            ExprKind::Name(name) => Some(Constructor {
                name,
                name_span: callee.span,
                args,
                span: expr.span,
            }),
            _ => None,
        },
        _ => None,
    }
}

/// A constructor's arguments bound to its parameters.
struct BoundArgs<'e> {
    spec: &'static ConstructorSpec,
    values: Vec<Option<&'e Expr>>,
}

impl<'e> BoundArgs<'e> {
    fn get(&self, name: &str) -> Option<&'e Expr> {
        let index = self
            .spec
            .params
            .iter()
            .position(|param| param.name == name)?;
        self.values.get(index).copied().flatten()
    }

    /// How the argument is named in messages: "`lr` of `adamw`".
    fn subject(&self, name: &str) -> String {
        format!("`{name}` of `{}`", self.spec.name)
    }
}

/// A named entry of a block or sweep, with the settings seen so far for duplicate detection.
struct SeenSettings<'s> {
    names: &'static [&'static str],
    first: Vec<Option<&'s Setting>>,
}

impl<'s> SeenSettings<'s> {
    fn get(&self, name: &str) -> Option<&'s Setting> {
        let index = self.names.iter().position(|candidate| *candidate == name)?;
        self.first.get(index).copied().flatten()
    }
}

// -------------------------------------------------------------------------------------- checker

struct Checker<'d> {
    diagnostics: &'d mut Vec<Diagnostic>,
    errors: usize,
}

impl Checker<'_> {
    fn report(&mut self, diagnostic: Diagnostic) {
        self.errors += 1;
        self.diagnostics.push(diagnostic);
    }

    fn invalid(&mut self, span: Span, subject: &str, label: String) {
        self.report(
            Diagnostic::error("invalid-setting", format!("invalid value for {subject}"))
                .with_label(span, label),
        );
    }

    fn invalid_found(&mut self, expr: &Expr, subject: &str, expected: &str) {
        self.invalid(
            expr.span,
            subject,
            format!("expected {expected}, found {}", describe(expr)),
        );
    }

    /// An unknown name among `valid`, with a did-you-mean and the list of valid names.
    fn unknown(&mut self, span: Span, message: String, label: String, name: &str, valid: &[&str]) {
        let mut diagnostic = Diagnostic::error("unknown-setting", message)
            .with_label(span, label)
            .with_note(if valid.is_empty() {
                "there is nothing to choose from here".to_string()
            } else {
                format!("expected one of {}", quoted_list(valid))
            });
        if let Some(suggestion) = closest_name(name, valid.iter().copied()) {
            diagnostic = diagnostic.with_help(format!("did you mean `{suggestion}`?"));
        }
        self.report(diagnostic);
    }

    fn check_target(&mut self, decl: &SettingsDecl, model_names: &[String]) {
        let target = &decl.target;
        // An empty name comes from parser recovery, which has reported the syntax error.
        if target.name.is_empty() || model_names.contains(&target.name) {
            return;
        }
        let mut diagnostic =
            Diagnostic::error("unknown-model", format!("no model named `{}`", target.name))
                .with_label(target.span, "not a model in scope");
        match closest_name(&target.name, model_names.iter().map(String::as_str)) {
            Some(suggestion) => {
                diagnostic = diagnostic.with_help(format!("did you mean `{suggestion}`?"));
            }
            None if model_names.is_empty() => {
                diagnostic = diagnostic.with_note("no model is defined or imported here");
            }
            None => {}
        }
        self.report(diagnostic);
    }

    /// Finds each setting's first occurrence, reporting unknown and repeated names.
    fn collect<'s>(
        &mut self,
        settings: &'s [Setting],
        names: &'static [&'static str],
        what: &str,
    ) -> SeenSettings<'s> {
        let mut seen = SeenSettings {
            names,
            first: vec![None; names.len()],
        };
        for setting in settings {
            let name = &setting.name;
            if name.name.is_empty() {
                continue;
            }
            let Some(index) = names.iter().position(|candidate| *candidate == name.name) else {
                self.unknown(
                    name.span,
                    format!("unknown {what} setting `{}`", name.name),
                    format!("not a {what} setting"),
                    &name.name,
                    names,
                );
                continue;
            };
            match seen.first[index] {
                Some(first) => self.report(
                    Diagnostic::error(
                        "duplicate-definition",
                        format!("`{}` is set twice", name.name),
                    )
                    .with_label(name.span, "set again here")
                    .with_label(first.name.span, "first set here")
                    .with_help("remove one of the two"),
                ),
                None => seen.first[index] = Some(setting),
            }
        }
        seen
    }

    // ------------------------------------------------------------------ values of each kind

    fn float(&mut self, expr: &Expr, subject: &str, rule: FloatRule) -> Option<f64> {
        match eval_number(expr) {
            Some(number) if rule.accepts(number.as_f64()) => Some(number.as_f64()),
            _ => {
                self.invalid_found(expr, subject, rule.expected());
                None
            }
        }
    }

    fn int(&mut self, expr: &Expr, subject: &str, rule: IntRule) -> Option<i64> {
        match eval_number(expr) {
            Some(Number::Int(value)) if rule.accepts(value) => Some(value),
            _ => {
                self.invalid_found(expr, subject, rule.expected());
                None
            }
        }
    }

    /// A whole number within a setting's domain: an `int_uniform` bound.
    fn whole_number(&mut self, expr: &Expr, subject: &str, domain: Domain) -> Option<i64> {
        let (accepted, expected) = match (domain, eval_number(expr)) {
            (Domain::Int(rule), number) => (
                matches!(number, Some(Number::Int(value)) if rule.accepts(value)),
                rule.expected().to_string(),
            ),
            (Domain::Float(rule), number) => (
                matches!(number, Some(Number::Int(value)) if rule.accepts(value as f64)),
                format!("an integer {}", rule.bounds()),
            ),
        };
        match eval_number(expr) {
            Some(Number::Int(value)) if accepted => Some(value),
            _ => {
                self.invalid_found(expr, subject, &expected);
                None
            }
        }
    }

    fn count(&mut self, expr: &Expr, subject: &str, rule: IntRule) -> Option<usize> {
        let value = self.int(expr, subject, rule)?;
        match usize::try_from(value) {
            Ok(value) => Some(value),
            Err(_) => {
                self.invalid_found(expr, subject, "an integer that fits in memory");
                None
            }
        }
    }

    fn boolean(&mut self, expr: &Expr, subject: &str) -> Option<bool> {
        match expr.kind {
            ExprKind::Bool(value) => Some(value),
            _ => {
                self.invalid_found(expr, subject, "`true` or `false`");
                None
            }
        }
    }

    fn string(&mut self, expr: &Expr, subject: &str) -> Option<String> {
        match &expr.kind {
            ExprKind::Str(text) => Some(text.clone()),
            _ => {
                self.invalid_found(expr, subject, "a string");
                None
            }
        }
    }

    /// A name among `valid`, written bare (`l1`) or as a string (`"l1"`); returns its index.
    fn choice(&mut self, expr: &Expr, subject: &str, what: &str, valid: &[&str]) -> Option<usize> {
        let name = match &expr.kind {
            ExprKind::Name(name) | ExprKind::Str(name) => name,
            _ => {
                self.invalid_found(expr, subject, &format!("one of {}", quoted_list(valid)));
                return None;
            }
        };
        let index = valid.iter().position(|candidate| candidate == name);
        if index.is_none() {
            self.unknown(
                expr.span,
                format!("unknown {what} `{name}`"),
                format!("not a known {what}"),
                name,
                valid,
            );
        }
        index
    }

    fn float_arg(
        &mut self,
        args: &BoundArgs,
        name: &str,
        default: f64,
        rule: FloatRule,
    ) -> Option<f64> {
        match args.get(name) {
            Some(expr) => self.float(expr, &args.subject(name), rule),
            None => Some(default),
        }
    }

    fn count_arg(
        &mut self,
        args: &BoundArgs,
        name: &str,
        default: usize,
        rule: IntRule,
    ) -> Option<usize> {
        match args.get(name) {
            Some(expr) => self.count(expr, &args.subject(name), rule),
            None => Some(default),
        }
    }

    fn bool_arg(&mut self, args: &BoundArgs, name: &str, default: bool) -> Option<bool> {
        match args.get(name) {
            Some(expr) => self.boolean(expr, &args.subject(name)),
            None => Some(default),
        }
    }

    fn string_arg(&mut self, args: &BoundArgs, name: &str, default: &str) -> Option<String> {
        match args.get(name) {
            Some(expr) => self.string(expr, &args.subject(name)),
            None => Some(default.to_string()),
        }
    }

    /// Picks the constructor a value names and binds its arguments. Reports a value that is not
    /// a constructor, an unknown constructor, and unknown, repeated, surplus or missing
    /// arguments; the arguments that did bind are returned even then, to be checked too.
    fn constructor<'e>(
        &mut self,
        expr: &'e Expr,
        subject: &str,
        family: &'static Family,
    ) -> Option<BoundArgs<'e>> {
        let Some(constructor) = as_constructor(expr) else {
            self.invalid_found(
                expr,
                subject,
                &format!("{} such as `{}`", family.article, family.example),
            );
            return None;
        };
        let names: Vec<&str> = family.constructors.iter().map(|spec| spec.name).collect();
        let Some(spec) = family
            .constructors
            .iter()
            .find(|spec| spec.name == constructor.name)
        else {
            self.unknown(
                constructor.name_span,
                format!("unknown {} `{}`", family.noun, constructor.name),
                format!("not a known {}", family.noun),
                constructor.name,
                &names,
            );
            return None;
        };
        Some(self.bind(&constructor, spec))
    }

    fn bind<'e>(
        &mut self,
        constructor: &Constructor<'e>,
        spec: &'static ConstructorSpec,
    ) -> BoundArgs<'e> {
        let param_names: Vec<&str> = spec.params.iter().map(|param| param.name).collect();
        let mut values: Vec<Option<&'e Expr>> = vec![None; spec.params.len()];
        let mut next_positional = 0;
        for arg in constructor.args {
            let (index, span) = match &arg.name {
                Some(name) => match param_names
                    .iter()
                    .position(|candidate| *candidate == name.name)
                {
                    Some(index) => (index, name.span),
                    None => {
                        let mut diagnostic = Diagnostic::error(
                            "unknown-setting",
                            format!("`{}` has no argument `{}`", spec.name, name.name),
                        )
                        .with_label(name.span, format!("not an argument of `{}`", spec.name))
                        .with_note(if param_names.is_empty() {
                            format!("`{}` takes no arguments", spec.name)
                        } else {
                            format!("`{}` takes {}", spec.name, quoted_list(&param_names))
                        });
                        if let Some(suggestion) =
                            closest_name(&name.name, param_names.iter().copied())
                        {
                            diagnostic =
                                diagnostic.with_help(format!("did you mean `{suggestion}`?"));
                        }
                        self.report(diagnostic);
                        continue;
                    }
                },
                None => {
                    if next_positional >= spec.params.len() {
                        let takes = match spec.params.len() {
                            0 => "no arguments".to_string(),
                            1 => "one argument".to_string(),
                            n => format!("{n} arguments"),
                        };
                        self.report(
                            Diagnostic::error(
                                "invalid-setting",
                                format!("too many arguments to `{}`", spec.name),
                            )
                            .with_label(arg.value.span, format!("`{}` takes {takes}", spec.name)),
                        );
                        continue;
                    }
                    next_positional += 1;
                    (next_positional - 1, arg.value.span)
                }
            };
            if values[index].is_some() {
                self.report(
                    Diagnostic::error(
                        "invalid-setting",
                        format!("`{}` of `{}` is given twice", param_names[index], spec.name),
                    )
                    .with_label(span, "given again here"),
                );
                continue;
            }
            values[index] = Some(&arg.value);
        }
        for (param, value) in spec.params.iter().zip(&values) {
            if param.required && value.is_none() {
                self.report(
                    Diagnostic::error(
                        "invalid-setting",
                        format!("`{}` needs `{}`", spec.name, param.name),
                    )
                    .with_label(
                        constructor.span,
                        format!("missing argument `{}`", param.name),
                    )
                    .with_help(format!("add `{} = ...` to the arguments", param.name)),
                );
            }
        }
        BoundArgs { spec, values }
    }

    // -------------------------------------------------------------------------------- train

    fn check_train(&mut self, decl: &SettingsDecl) -> Option<TrainConfig> {
        let seen = self.collect(&decl.settings, TRAIN_SETTINGS, "train");
        let errors_before = self.errors;
        let mut config = TrainConfig::defaults(decl.target.name.clone());
        config.span = decl.span;

        if let Some(setting) = seen.get("data") {
            config.data = self.data(&setting.value).map(|source| DataSpec {
                source,
                span: setting.value.span,
            });
        }
        if let Some(setting) = seen.get("split") {
            config.split = self
                .target_float(&setting.value, SweepTarget::Split)
                .unwrap_or(DEFAULT_SPLIT);
        }
        if let Some(setting) = seen.get("loss") {
            config.loss = self.loss(&setting.value).unwrap_or_default();
        }
        // `None` when the optimizer is wrong, so that sweep axes are not checked against it.
        let mut optimizer = Some(OptimizerSpec::default());
        if let Some(setting) = seen.get("optimizer") {
            optimizer = self.optimizer(&setting.value);
        }
        config.optimizer = optimizer.unwrap_or_default();
        if let Some(setting) = seen.get("schedule") {
            config.schedule = self.schedule(&setting.value).unwrap_or_default();
        }
        if let Some(setting) = seen.get("batch") {
            config.batch = self
                .count(&setting.value, "`batch`", IntRule::Positive)
                .unwrap_or(DEFAULT_BATCH);
        }
        if let Some(setting) = seen.get("epochs") {
            config.epochs = self
                .count(&setting.value, "`epochs`", IntRule::Positive)
                .unwrap_or(DEFAULT_EPOCHS);
        }
        if let Some(setting) = seen.get("metrics") {
            config.metrics = self.metrics(&setting.value).unwrap_or_default();
        }
        if let Some(setting) = seen.get("l1") {
            config.l1 = self
                .target_float(&setting.value, SweepTarget::L1)
                .unwrap_or(0.0);
        }
        if let Some(setting) = seen.get("l2") {
            config.l2 = self
                .target_float(&setting.value, SweepTarget::L2)
                .unwrap_or(0.0);
        }
        if let Some(setting) = seen.get("seed") {
            config.seed = self
                .int(&setting.value, "`seed`", IntRule::NonNegative)
                .and_then(|seed| u64::try_from(seed).ok());
        }
        if let Some(sweep) = &decl.sweep {
            config.sweep = self.sweep(sweep, optimizer);
        }
        (self.errors == errors_before).then_some(config)
    }

    fn target_float(&mut self, expr: &Expr, target: SweepTarget) -> Option<f64> {
        let rule = match target.domain() {
            Domain::Float(rule) => rule,
            Domain::Int(_) => FloatRule::NonNegative,
        };
        self.float(expr, &format!("`{}`", target.name()), rule)
    }

    fn data(&mut self, expr: &Expr) -> Option<DataSource> {
        let args = self.constructor(expr, "`data`", &DATA)?;
        match args.spec.name {
            "csv" => self.csv(&args).map(DataSource::Csv),
            "npy" => {
                let features = args
                    .get("features")
                    .and_then(|e| self.string(e, &args.subject("features")));
                let label = args
                    .get("label")
                    .and_then(|e| self.string(e, &args.subject("label")));
                Some(DataSource::Npy {
                    features: features?,
                    label: label?,
                })
            }
            "safetensors" => {
                let path = args
                    .get("path")
                    .and_then(|e| self.string(e, &args.subject("path")));
                let features = self.string_arg(&args, "features", "x");
                let label = self.string_arg(&args, "label", "y");
                Some(DataSource::Safetensors {
                    path: path?,
                    features: features?,
                    label: label?,
                })
            }
            _ => {
                let task = args.get("task").and_then(|expr| {
                    match &expr.kind {
                        ExprKind::Str(_) => {}
                        _ => {
                            self.invalid_found(
                                expr,
                                &args.subject("task"),
                                "a task name such as \"copy\"",
                            );
                            return None;
                        }
                    }
                    self.choice(
                        expr,
                        &args.subject("task"),
                        "synthetic task",
                        SYNTHETIC_TASKS,
                    )
                });
                let task = task.map(|index| match index {
                    0 => SyntheticTask::Copy,
                    1 => SyntheticTask::Reverse,
                    _ => SyntheticTask::Sort,
                });
                let length = self.count_arg(&args, "length", 8, IntRule::Positive);
                let vocab = self.count_arg(&args, "vocab", 10, IntRule::Positive);
                let samples = self.count_arg(&args, "samples", 10_000, IntRule::Positive);
                let layout = match args.get("layout") {
                    Some(expr) => {
                        if matches!(expr.kind, ExprKind::Str(_)) {
                            self.choice(
                                expr,
                                &args.subject("layout"),
                                "sequence layout",
                                SEQUENCE_LAYOUTS,
                            )
                            .map(|index| match index {
                                0 => SequenceLayout::Aligned,
                                _ => SequenceLayout::Causal,
                            })
                        } else {
                            self.invalid_found(
                                expr,
                                &args.subject("layout"),
                                "\"aligned\" or \"causal\"",
                            );
                            None
                        }
                    }
                    None => Some(SequenceLayout::default()),
                };
                Some(DataSource::Synthetic {
                    task: task?,
                    length: length?,
                    vocab: vocab?,
                    samples: samples?,
                    layout: layout?,
                })
            }
        }
    }

    fn csv(&mut self, args: &BoundArgs) -> Option<CsvData> {
        let path = args
            .get("path")
            .and_then(|expr| self.string(expr, &args.subject("path")));
        let features = match args.get("features") {
            Some(expr) => self.columns(expr, &args.subject("features")).map(Some),
            None => Some(None),
        };
        let label = match args.get("label") {
            Some(expr) => self
                .count(expr, &args.subject("label"), IntRule::NonNegative)
                .map(Some),
            None => Some(None),
        };
        let shape = match args.get("shape") {
            Some(expr) => self.shape(expr, &args.subject("shape")).map(Some),
            None => Some(None),
        };
        let header = self.bool_arg(args, "header", false);
        let (path, features, label, shape, header) = (path?, features?, label?, shape?, header?);
        let mut consistent = true;
        if let (Some(columns), Some(label), Some(label_expr)) =
            (&features, label, args.get("label"))
        {
            if columns.contains(&label) {
                consistent = false;
                self.invalid(
                    label_expr.span,
                    &args.subject("label"),
                    format!("column {label} is also a feature column"),
                );
            }
        }
        if let (Some(columns), Some(dims), Some(shape_expr)) =
            (&features, &shape, args.get("shape"))
        {
            let elements = dims
                .iter()
                .try_fold(1usize, |product, &dim| product.checked_mul(dim));
            if elements != Some(columns.len()) {
                consistent = false;
                let holds = match elements {
                    Some(elements) => format!("holds {elements} values"),
                    None => "is too large".to_string(),
                };
                self.invalid(
                    shape_expr.span,
                    &args.subject("shape"),
                    format!(
                        "this shape {holds}, but `features` selects {} columns",
                        columns.len()
                    ),
                );
            }
        }
        consistent.then_some(CsvData {
            path,
            features,
            label,
            shape,
            header,
        })
    }

    /// Feature columns: a range `0..64` (end excluded) or a list of column numbers.
    fn columns(&mut self, expr: &Expr, subject: &str) -> Option<Vec<usize>> {
        let expected = "a range of columns such as `0..64` or a list of column numbers";
        match &expr.kind {
            ExprKind::Range { start, end } => {
                let (Some(Number::Int(first)), Some(Number::Int(last))) =
                    (eval_number(start), eval_number(end))
                else {
                    self.invalid_found(
                        expr,
                        subject,
                        "a range of whole column numbers such as `0..64`",
                    );
                    return None;
                };
                if first < 0 || first >= last {
                    self.invalid(
                        expr.span,
                        subject,
                        format!("expected a non-empty range of columns from 0 up, found {first}..{last}"),
                    );
                    return None;
                }
                let count = last
                    .checked_sub(first)
                    .and_then(|count| usize::try_from(count).ok());
                if count.is_none_or(|count| count > MAX_FEATURE_COLUMNS) {
                    self.invalid(
                        expr.span,
                        subject,
                        format!(
                            "expected at most {MAX_FEATURE_COLUMNS} columns, found {first}..{last}"
                        ),
                    );
                    return None;
                }
                // Both ends are non-negative and fit in usize (checked above).
                let first = usize::try_from(first).ok()?;
                let last = usize::try_from(last).ok()?;
                Some((first..last).collect())
            }
            ExprKind::List(items) if !items.is_empty() => {
                let mut columns = Vec::with_capacity(items.len());
                let mut ok = true;
                for item in items {
                    match self.count(item, subject, IntRule::NonNegative) {
                        Some(column) if columns.contains(&column) => {
                            ok = false;
                            self.invalid(
                                item.span,
                                subject,
                                format!("column {column} is listed twice"),
                            );
                        }
                        Some(column) => columns.push(column),
                        None => ok = false,
                    }
                }
                ok.then_some(columns)
            }
            _ => {
                self.invalid_found(expr, subject, expected);
                None
            }
        }
    }

    /// A shape: a non-empty list of positive integers.
    fn shape(&mut self, expr: &Expr, subject: &str) -> Option<Vec<usize>> {
        let ExprKind::List(items) = &expr.kind else {
            self.invalid_found(expr, subject, "a list of dims such as `[1, 8, 8]`");
            return None;
        };
        if items.is_empty() {
            self.invalid_found(
                expr,
                subject,
                "a non-empty list of dims such as `[1, 8, 8]`",
            );
            return None;
        }
        let dims: Vec<Option<usize>> = items
            .iter()
            .map(|item| self.count(item, subject, IntRule::Positive))
            .collect();
        dims.into_iter().collect()
    }

    fn loss(&mut self, expr: &Expr) -> Option<LossSpec> {
        let args = self.constructor(expr, "`loss`", &LOSS)?;
        Some(match args.spec.name {
            "cross_entropy" => LossSpec::CrossEntropy {
                label_smoothing: self.float_arg(
                    &args,
                    "label_smoothing",
                    0.0,
                    FloatRule::HalfOpenUnit,
                )?,
            },
            "nll" => LossSpec::Nll,
            "mse" => LossSpec::Mse,
            _ => LossSpec::BceWithLogits,
        })
    }

    fn optimizer(&mut self, expr: &Expr) -> Option<OptimizerSpec> {
        let args = self.constructor(expr, "`optimizer`", &OPTIMIZER)?;
        let lr_default = if args.spec.name == "adam" {
            DEFAULT_ADAM_LR
        } else {
            0.0
        };
        let lr = match args.get("lr") {
            Some(expr) => self.float(expr, &args.subject("lr"), FloatRule::Positive),
            // A missing required `lr` has been reported by `bind`.
            None => Some(lr_default),
        };
        match args.spec.name {
            "sgd" => {
                let momentum = self.float_arg(&args, "momentum", 0.0, FloatRule::HalfOpenUnit);
                let nesterov = self.bool_arg(&args, "nesterov", false);
                let (lr, momentum, nesterov) = (lr?, momentum?, nesterov?);
                if nesterov && momentum == 0.0 {
                    let span = args
                        .get("nesterov")
                        .map_or(expr.span, |nesterov| nesterov.span);
                    self.report(
                        Diagnostic::error("invalid-setting", "Nesterov momentum needs a momentum")
                            .with_label(span, "`nesterov = true` with `momentum = 0`")
                            .with_help("set `momentum` above 0, such as `momentum = 0.9`"),
                    );
                    return None;
                }
                Some(OptimizerSpec::Sgd {
                    lr,
                    momentum,
                    nesterov,
                })
            }
            "adam" | "adamw" => {
                let beta1 = self.float_arg(&args, "beta1", 0.9, FloatRule::HalfOpenUnit);
                let beta2 = self.float_arg(&args, "beta2", 0.999, FloatRule::HalfOpenUnit);
                let eps = self.float_arg(&args, "eps", 1e-8, FloatRule::Positive);
                if args.spec.name == "adam" {
                    return Some(OptimizerSpec::Adam {
                        lr: lr?,
                        beta1: beta1?,
                        beta2: beta2?,
                        eps: eps?,
                    });
                }
                let weight_decay =
                    self.float_arg(&args, "weight_decay", 0.01, FloatRule::NonNegative);
                Some(OptimizerSpec::AdamW {
                    lr: lr?,
                    beta1: beta1?,
                    beta2: beta2?,
                    eps: eps?,
                    weight_decay: weight_decay?,
                })
            }
            _ => {
                let alpha = self.float_arg(&args, "alpha", 0.99, FloatRule::HalfOpenUnit);
                let eps = self.float_arg(&args, "eps", 1e-8, FloatRule::Positive);
                Some(OptimizerSpec::RmsProp {
                    lr: lr?,
                    alpha: alpha?,
                    eps: eps?,
                })
            }
        }
    }

    fn schedule(&mut self, expr: &Expr) -> Option<ScheduleSpec> {
        let args = self.constructor(expr, "`schedule`", &SCHEDULE)?;
        Some(match args.spec.name {
            "constant" => ScheduleSpec::Constant,
            "step" => {
                let every = match args.get("every") {
                    Some(expr) => self.count(expr, &args.subject("every"), IntRule::Positive),
                    None => Some(1),
                };
                let gamma = self.float_arg(&args, "gamma", 0.1, FloatRule::PositiveUpToOne);
                ScheduleSpec::Step {
                    every: every?,
                    gamma: gamma?,
                }
            }
            "cosine" => ScheduleSpec::Cosine {
                warmup: self.count_arg(&args, "warmup", 0, IntRule::NonNegative)?,
            },
            _ => ScheduleSpec::Linear {
                warmup: self.count_arg(&args, "warmup", 0, IntRule::NonNegative)?,
            },
        })
    }

    /// `[accuracy, loss]`; a single bare name is a list of one.
    fn metrics(&mut self, expr: &Expr) -> Option<Vec<Metric>> {
        let items = match &expr.kind {
            ExprKind::List(items) => items.as_slice(),
            ExprKind::Name(_) => std::slice::from_ref(expr),
            _ => {
                self.invalid_found(expr, "`metrics`", "a list of metrics such as `[accuracy]`");
                return None;
            }
        };
        let mut metrics = Vec::new();
        let mut ok = true;
        for item in items {
            let metric = match &item.kind {
                ExprKind::Name(_) => self.choice(item, "`metrics`", "metric", METRICS),
                _ => {
                    self.invalid_found(
                        item,
                        "`metrics`",
                        &format!("a metric name, one of {}", quoted_list(METRICS)),
                    );
                    None
                }
            };
            match metric.map(|index| {
                if index == 0 {
                    Metric::Accuracy
                } else {
                    Metric::Loss
                }
            }) {
                Some(metric) if metrics.contains(&metric) => {
                    ok = false;
                    self.invalid(
                        item.span,
                        "`metrics`",
                        format!("`{}` is listed twice", metric.name()),
                    );
                }
                Some(metric) => metrics.push(metric),
                None => ok = false,
            }
        }
        ok.then_some(metrics)
    }

    // -------------------------------------------------------------------------------- sweep

    /// `optimizer` is the block's optimizer, or `None` when it was wrong (its axes are then not
    /// checked against it).
    fn sweep(&mut self, sweep: &Sweep, optimizer: Option<OptimizerSpec>) -> Option<SweepSpec> {
        let errors_before = self.errors;
        // Sweep settings (`method`), with a hint for an axis written with `=`.
        let mut method_setting: Option<&Setting> = None;
        let mut axis_written_as_setting = false;
        for setting in &sweep.settings {
            let name = &setting.name;
            if name.name.is_empty() {
                continue;
            }
            if !SWEEP_SETTINGS.contains(&name.name.as_str()) {
                let mut diagnostic = Diagnostic::error(
                    "unknown-setting",
                    format!("unknown sweep setting `{}`", name.name),
                )
                .with_label(name.span, "not a sweep setting")
                .with_note(format!("expected one of {}", quoted_list(SWEEP_SETTINGS)));
                if SweepTarget::from_name(&name.name).is_some() {
                    axis_written_as_setting = true;
                    diagnostic = diagnostic.with_help(format!(
                        "to search over `{0}`, write `{0} in [...]` or `{0} in uniform(a, b)`",
                        name.name
                    ));
                } else if let Some(suggestion) =
                    closest_name(&name.name, SWEEP_SETTINGS.iter().copied())
                {
                    diagnostic = diagnostic.with_help(format!("did you mean `{suggestion}`?"));
                }
                self.report(diagnostic);
                continue;
            }
            match method_setting {
                Some(first) => self.report(
                    Diagnostic::error(
                        "duplicate-definition",
                        format!("`{}` is set twice", name.name),
                    )
                    .with_label(name.span, "set again here")
                    .with_label(first.name.span, "first set here")
                    .with_help("remove one of the two"),
                ),
                None => method_setting = Some(setting),
            }
        }
        let method = match method_setting {
            Some(setting) => self.method(&setting.value),
            None => Some(SearchMethod::Grid),
        };

        let axis_names: Vec<&str> = SweepTarget::ALL
            .iter()
            .map(|target| target.name())
            .collect();
        // Each well-formed axis with the setting it was written as.
        let mut checked: Vec<(&Setting, SweepAxis)> = Vec::new();
        let mut first_axis: Vec<(SweepTarget, Span)> = Vec::new();
        for axis in &sweep.axes {
            let name = &axis.name;
            if name.name.is_empty() {
                continue;
            }
            let Some(target) = SweepTarget::from_name(&name.name) else {
                self.unknown(
                    name.span,
                    format!("cannot sweep over `{}`", name.name),
                    "not a train setting or optimizer argument that can be swept".to_string(),
                    &name.name,
                    &axis_names,
                );
                continue;
            };
            if let Some((_, first_span)) = first_axis.iter().find(|(seen, _)| *seen == target) {
                self.report(
                    Diagnostic::error(
                        "duplicate-definition",
                        format!("`{}` is swept twice", name.name),
                    )
                    .with_label(name.span, "swept again here")
                    .with_label(*first_span, "first swept here")
                    .with_help("put all its values on one axis"),
                );
                continue;
            }
            first_axis.push((target, name.span));
            if let Some(optimizer) = optimizer.filter(|optimizer| {
                target.is_optimizer_argument() && !optimizer_takes(*optimizer, target)
            }) {
                let sweepable: Vec<&str> = SweepTarget::ALL
                    .iter()
                    .filter(|candidate| {
                        candidate.is_optimizer_argument() && optimizer_takes(optimizer, **candidate)
                    })
                    .map(|candidate| candidate.name())
                    .collect();
                self.report(
                    Diagnostic::error(
                        "invalid-setting",
                        format!(
                            "`{}` has no argument `{}` to sweep",
                            optimizer.name(),
                            name.name
                        ),
                    )
                    .with_label(
                        name.span,
                        format!("not an argument of `{}`", optimizer.name()),
                    )
                    .with_note(format!(
                        "the arguments of `{}` that can be swept are {}",
                        optimizer.name(),
                        quoted_list(&sweepable)
                    )),
                );
                continue;
            }
            if let Some(values) = self.sweep_values(&axis.value, target) {
                checked.push((
                    axis,
                    SweepAxis {
                        target,
                        values,
                        span: axis.span,
                    },
                ));
            }
        }
        if sweep.axes.is_empty() && !axis_written_as_setting {
            self.report(
                Diagnostic::error("invalid-setting", "a sweep needs at least one axis")
                    .with_label(sweep.span, "this sweep varies nothing")
                    .with_help("add an axis such as `lr in log_uniform(1e-4, 1e-2)`"),
            );
        }
        // Grid search enumerates lists; a distribution has no finite set of values.
        if method == Some(SearchMethod::Grid) {
            for (axis, _) in checked
                .iter()
                .filter(|(_, checked)| !matches!(checked.values, SweepValues::List(_)))
            {
                let mut diagnostic = Diagnostic::error(
                    "invalid-setting",
                    format!("grid search needs a list of values for `{}`", axis.name.name),
                )
                .with_label(
                    axis.value.span,
                    format!("expected a list such as `[1, 2, 3]`, found {}", describe(&axis.value)),
                )
                .with_help(
                    "give a list of values, or use `method = random(trials = N)` or `bayesian(trials = N)`",
                );
                diagnostic = match method_setting {
                    Some(setting) => {
                        diagnostic.with_label(setting.value.span, "grid search chosen here")
                    }
                    None => diagnostic.with_note("grid search is the method when none is given"),
                };
                self.report(diagnostic);
            }
        }
        if self.errors != errors_before {
            return None;
        }
        let axes = checked.into_iter().map(|(_, axis)| axis).collect();
        Some(SweepSpec {
            axes,
            method: method?,
            span: sweep.span,
        })
    }

    fn method(&mut self, expr: &Expr) -> Option<SearchMethod> {
        let args = self.constructor(expr, "`method`", &METHOD)?;
        let trials = match args.get("trials") {
            Some(expr) => self.count(expr, &args.subject("trials"), IntRule::Positive),
            None => Some(1),
        };
        Some(match args.spec.name {
            "grid" => SearchMethod::Grid,
            "random" => SearchMethod::Random { trials: trials? },
            _ => SearchMethod::Bayesian { trials: trials? },
        })
    }

    fn sweep_values(&mut self, expr: &Expr, target: SweepTarget) -> Option<SweepValues> {
        let subject = format!("sweep axis `{}`", target.name());
        if let ExprKind::List(items) = &expr.kind {
            if items.is_empty() {
                self.invalid_found(expr, &subject, "a non-empty list of values");
                return None;
            }
            let values: Vec<Option<f64>> = items
                .iter()
                .map(|item| match target.domain() {
                    Domain::Int(rule) => self.int(item, &subject, rule).map(|value| value as f64),
                    Domain::Float(rule) => self.float(item, &subject, rule),
                })
                .collect();
            return values
                .into_iter()
                .collect::<Option<Vec<f64>>>()
                .map(SweepValues::List);
        }
        let args = self.constructor(expr, &subject, &SWEEP_VALUES)?;
        let (Some(low_expr), Some(high_expr)) = (args.get("low"), args.get("high")) else {
            return None; // Reported by `bind`.
        };
        if args.spec.name == "int_uniform" {
            let low = self.whole_number(low_expr, &subject, target.domain());
            let high = self.whole_number(high_expr, &subject, target.domain());
            let (low, high) = (low?, high?);
            if low >= high {
                self.invalid(
                    expr.span,
                    &subject,
                    format!("expected a low end below the high end, found {low} and {high}"),
                );
                return None;
            }
            return Some(SweepValues::IntUniform { low, high });
        }
        let Domain::Float(rule) = target.domain() else {
            self.invalid(
                expr.span,
                &subject,
                format!(
                    "`{}` takes whole numbers: expected a list or `int_uniform(a, b)`, found {}",
                    target.name(),
                    describe(expr)
                ),
            );
            return None;
        };
        let low = self.float(low_expr, &subject, rule);
        let high = self.float(high_expr, &subject, rule);
        let (low, high) = (low?, high?);
        if args.spec.name == "log_uniform" && low <= 0.0 {
            self.invalid(
                low_expr.span,
                &subject,
                format!(
                    "expected a positive low end for `log_uniform`, found {}",
                    describe(low_expr)
                ),
            );
            return None;
        }
        if low >= high {
            self.invalid(
                expr.span,
                &subject,
                format!(
                    "expected a low end below the high end, found {} and {}",
                    describe(low_expr),
                    describe(high_expr)
                ),
            );
            return None;
        }
        Some(if args.spec.name == "log_uniform" {
            SweepValues::LogUniform { low, high }
        } else {
            SweepValues::Uniform { low, high }
        })
    }

    // ----------------------------------------------------------------------------- compress

    fn check_compress(&mut self, decl: &SettingsDecl) -> Option<CompressConfig> {
        let seen = self.collect(&decl.settings, COMPRESS_SETTINGS, "compress");
        let errors_before = self.errors;
        if let Some(sweep) = &decl.sweep {
            self.report(
                Diagnostic::error("unknown-setting", "a compress block has no sweep")
                    .with_label(sweep.span, "sweeps belong in a train block")
                    .with_help("move this sweep into the model's `train` block"),
            );
        }
        let mut config = CompressConfig {
            model: decl.target.name.clone(),
            prune: None,
            quantize: None,
            keep: Vec::new(),
            span: decl.span,
        };
        if let Some(setting) = seen.get("prune") {
            config.prune = self.prune(&setting.value);
        }
        if let Some(setting) = seen.get("quantize") {
            config.quantize = self.quantize(&setting.value);
        }
        if let Some(setting) = seen.get("keep") {
            config.keep = self.keep(&setting.value).unwrap_or_default();
        }
        // Only when nothing else is wrong: a misspelled `prnue` has its own diagnostic.
        let only_keep = decl
            .settings
            .iter()
            .all(|setting| setting.name.name == "keep");
        if seen.get("prune").is_none()
            && seen.get("quantize").is_none()
            && only_keep
            && decl.sweep.is_none()
        {
            self.report(
                Diagnostic::error(
                    "invalid-setting",
                    "a compress block needs `prune` or `quantize`",
                )
                .with_label(decl.target.span, "this block compresses nothing")
                .with_help("add `prune = structured(sparsity = 0.5)` or `quantize = int8()`"),
            );
        }
        (self.errors == errors_before).then_some(config)
    }

    fn prune(&mut self, expr: &Expr) -> Option<PruneSpec> {
        let args = self.constructor(expr, "`prune`", &PRUNE)?;
        let sparsity = self.float_arg(&args, "sparsity", 0.5, FloatRule::HalfOpenUnit);
        if args.spec.name == "unstructured" {
            return Some(PruneSpec::Unstructured {
                sparsity: sparsity?,
            });
        }
        let by = match args.get("by") {
            Some(by) => self
                .choice(by, &args.subject("by"), "pruning norm", PRUNE_NORMS)
                .map(|index| {
                    if index == 0 {
                        PruneNorm::L1
                    } else {
                        PruneNorm::L2
                    }
                }),
            None => Some(PruneNorm::L1),
        };
        Some(PruneSpec::Structured {
            sparsity: sparsity?,
            by: by?,
        })
    }

    fn quantize(&mut self, expr: &Expr) -> Option<QuantizeSpec> {
        let args = self.constructor(expr, "`quantize`", &QUANTIZE)?;
        let defaults = QuantizeSpec::default();
        let calibrate = self.count_arg(&args, "calibrate", defaults.calibrate, IntRule::Positive);
        let per_channel = self.bool_arg(&args, "per_channel", defaults.per_channel);
        let max_error = self.float_arg(&args, "max_error", defaults.max_error, FloatRule::Positive);
        Some(QuantizeSpec {
            calibrate: calibrate?,
            per_channel: per_channel?,
            max_error: max_error?,
        })
    }

    /// `["fc3", "block1.conv1"]`: dotted layer paths.
    fn keep(&mut self, expr: &Expr) -> Option<Vec<String>> {
        let ExprKind::List(items) = &expr.kind else {
            self.invalid_found(expr, "`keep`", "a list of layer paths such as `[\"fc3\"]`");
            return None;
        };
        let mut paths = Vec::new();
        let mut ok = true;
        for item in items {
            let path = match &item.kind {
                ExprKind::Str(path) => path,
                ExprKind::Name(name) => {
                    ok = false;
                    self.report(
                        Diagnostic::error("invalid-setting", "invalid value for `keep`")
                            .with_label(
                                item.span,
                                format!("expected a layer path string, found `{name}`"),
                            )
                            .with_help(format!("write the path as a string: \"{name}\"")),
                    );
                    continue;
                }
                _ => {
                    ok = false;
                    self.invalid_found(item, "`keep`", "a layer path string such as \"fc3\"");
                    continue;
                }
            };
            let well_formed = !path.is_empty()
                && path.split('.').all(|segment| {
                    let mut chars = segment.chars();
                    chars
                        .next()
                        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
                        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
                });
            if !well_formed {
                ok = false;
                self.invalid_found(item, "`keep`", "a dotted layer path such as \"block1.fc3\"");
                continue;
            }
            if paths.contains(path) {
                ok = false;
                self.invalid(item.span, "`keep`", format!("\"{path}\" is listed twice"));
                continue;
            }
            paths.push(path.clone());
        }
        ok.then_some(paths)
    }
}

fn optimizer_takes(optimizer: OptimizerSpec, target: SweepTarget) -> bool {
    match target {
        SweepTarget::Lr => true,
        SweepTarget::Momentum => matches!(optimizer, OptimizerSpec::Sgd { .. }),
        SweepTarget::WeightDecay => matches!(optimizer, OptimizerSpec::AdamW { .. }),
        SweepTarget::Beta1 | SweepTarget::Beta2 => {
            matches!(
                optimizer,
                OptimizerSpec::Adam { .. } | OptimizerSpec::AdamW { .. }
            )
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceMap;
    use crate::syntax::ast::Item;
    use crate::syntax::parse_file;

    const BRIEF: &str = r#"
train DigitsCNN {
    data      = csv("data/digits.csv.gz", features = 0..64, label = 64, shape = [1, 8, 8])
    split     = 0.8
    loss      = cross_entropy(label_smoothing = 0.1)
    optimizer = adamw(lr = 3e-3, weight_decay = 1e-4)
    schedule  = cosine(warmup = 100)
    batch     = 64
    epochs    = 20
    metrics   = [accuracy]
    sweep {
        lr     in log_uniform(1e-4, 1e-2)
        batch  in [32, 64, 128]
        method = bayesian(trials = 20)
    }
}

compress DigitsCNN {
    prune    = structured(sparsity = 0.5, by = l1)
    quantize = int8(calibrate = 256, per_channel = true, max_error = 0.01)
}
"#;

    struct Checked {
        configs: Vec<Option<SettingsConfig>>,
        diagnostics: Vec<Diagnostic>,
        /// The source text, to read labels back.
        text: String,
        base: u32,
    }

    impl Checked {
        fn codes(&self) -> Vec<&'static str> {
            self.diagnostics.iter().map(|d| d.code).collect()
        }

        /// The source text under a diagnostic's primary label. Trimmed, because the parser's
        /// spans of `true` and `false` take in the whitespace after them.
        fn primary_text(&self, index: usize) -> &str {
            let span = self.diagnostics[index].primary_span().expect("a label");
            let start = (span.start - self.base) as usize;
            let end = (span.end - self.base) as usize;
            self.text[start..end].trim_end()
        }

        fn only_train(&self) -> &TrainConfig {
            match self.configs.as_slice() {
                [Some(SettingsConfig::Train(config))] => config,
                other => panic!(
                    "expected one train config, got {other:?} with {:?}",
                    self.diagnostics
                ),
            }
        }
    }

    /// Parses `text` (which must parse cleanly) and checks every train and compress block in it.
    fn check_with_models(text: &str, models: &[&str]) -> Checked {
        let mut sources = SourceMap::new();
        let file = sources.add("t.model", text).expect("file fits");
        let base = sources.file(file).base;
        let (module, parse_diagnostics) = parse_file(&sources, file);
        assert!(
            parse_diagnostics.is_empty(),
            "parse errors: {parse_diagnostics:?}"
        );
        let model_names: Vec<String> = models.iter().map(|name| name.to_string()).collect();
        let mut diagnostics = Vec::new();
        let mut configs = Vec::new();
        for item in &module.items {
            let (kind, decl) = match item {
                Item::Train(decl) => (SettingsKind::Train, decl),
                Item::Compress(decl) => (SettingsKind::Compress, decl),
                _ => continue,
            };
            configs.push(check_settings(kind, decl, &model_names, &mut diagnostics));
        }
        let text_len = text.len() as u32;
        for diagnostic in &diagnostics {
            assert!(!diagnostic.labels.is_empty(), "no label: {diagnostic:?}");
            for label in &diagnostic.labels {
                assert!(
                    label.span.start >= base && label.span.end <= base + text_len,
                    "{diagnostic:?}"
                );
            }
        }
        Checked {
            configs,
            diagnostics,
            text: text.to_string(),
            base,
        }
    }

    fn check(text: &str) -> Checked {
        check_with_models(text, &["DigitsCNN"])
    }

    fn train(body: &str) -> Checked {
        check(&format!("train DigitsCNN {{\n{body}\n}}\n"))
    }

    fn compress(body: &str) -> Checked {
        check(&format!("compress DigitsCNN {{\n{body}\n}}\n"))
    }

    #[test]
    fn brief_train_block_is_accepted() {
        let checked = check(BRIEF);
        assert!(checked.diagnostics.is_empty(), "{:?}", checked.diagnostics);
        let Some(SettingsConfig::Train(config)) = &checked.configs[0] else {
            panic!("expected a train config, got {:?}", checked.configs[0]);
        };
        assert_eq!(config.model, "DigitsCNN");
        let Some(DataSpec {
            source: DataSource::Csv(csv),
            ..
        }) = &config.data
        else {
            panic!("expected csv data, got {:?}", config.data);
        };
        assert_eq!(csv.path, "data/digits.csv.gz");
        assert_eq!(csv.features, Some((0..64).collect::<Vec<usize>>()));
        assert_eq!(csv.label, Some(64));
        assert_eq!(csv.shape, Some(vec![1, 8, 8]));
        assert!(!csv.header);
        assert_eq!(config.split, 0.8);
        assert_eq!(
            config.loss,
            LossSpec::CrossEntropy {
                label_smoothing: 0.1
            }
        );
        assert_eq!(
            config.optimizer,
            OptimizerSpec::AdamW {
                lr: 3e-3,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 1e-4
            }
        );
        assert_eq!(config.schedule, ScheduleSpec::Cosine { warmup: 100 });
        assert_eq!(config.batch, 64);
        assert_eq!(config.epochs, 20);
        assert_eq!(config.metrics, vec![Metric::Accuracy]);
        assert_eq!((config.l1, config.l2, config.seed), (0.0, 0.0, None));
        let sweep = config.sweep.as_ref().expect("a sweep");
        assert_eq!(sweep.method, SearchMethod::Bayesian { trials: 20 });
        assert_eq!(sweep.axes.len(), 2);
        assert_eq!(sweep.axes[0].target, SweepTarget::Lr);
        assert_eq!(
            sweep.axes[0].values,
            SweepValues::LogUniform {
                low: 1e-4,
                high: 1e-2
            }
        );
        assert_eq!(sweep.axes[1].target, SweepTarget::Batch);
        assert_eq!(
            sweep.axes[1].values,
            SweepValues::List(vec![32.0, 64.0, 128.0])
        );
    }

    #[test]
    fn brief_compress_block_is_accepted() {
        let checked = check(BRIEF);
        let Some(SettingsConfig::Compress(config)) = &checked.configs[1] else {
            panic!("expected a compress config, got {:?}", checked.configs[1]);
        };
        assert_eq!(config.model, "DigitsCNN");
        assert_eq!(
            config.prune,
            Some(PruneSpec::Structured {
                sparsity: 0.5,
                by: PruneNorm::L1
            })
        );
        assert_eq!(
            config.quantize,
            Some(QuantizeSpec {
                calibrate: 256,
                per_channel: true,
                max_error: 0.01
            })
        );
        assert!(config.keep.is_empty());
    }

    #[test]
    fn empty_train_block_gets_the_defaults() {
        let checked = train("");
        let config = checked.only_train();
        let mut expected = TrainConfig::defaults("DigitsCNN");
        expected.span = config.span;
        assert_eq!(*config, expected);
        assert_eq!(
            config.optimizer,
            OptimizerSpec::Adam {
                lr: 1e-3,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8
            }
        );
        assert_eq!((config.split, config.batch, config.epochs), (0.8, 32, 10));
    }

    #[test]
    fn every_documented_form_is_accepted() {
        let checked = train(
            r#"
            data = npy("x.npy", "y.npy")
            split = 0.9
            loss = mse
            optimizer = sgd(0.1, momentum = 0.9, nesterov = true)
            schedule = step(every = 2 * 5, gamma = 0.5)
            batch = 2 ** 7
            epochs = 3
            metrics = [accuracy, loss]
            l1 = 0
            l2 = 1e-4
            seed = 42
            sweep {
                momentum in uniform(0.5, 0.99)
                epochs in int_uniform(2, 8)
                l2 in [0, 1e-5, 1e-4]
                method = random(trials = 5)
            }
            "#,
        );
        let config = checked.only_train();
        assert_eq!(
            config.data.as_ref().map(|data| &data.source),
            Some(&DataSource::Npy {
                features: "x.npy".to_string(),
                label: "y.npy".to_string()
            })
        );
        assert_eq!(config.loss, LossSpec::Mse);
        assert_eq!(
            config.optimizer,
            OptimizerSpec::Sgd {
                lr: 0.1,
                momentum: 0.9,
                nesterov: true
            }
        );
        assert_eq!(
            config.schedule,
            ScheduleSpec::Step {
                every: 10,
                gamma: 0.5
            }
        );
        assert_eq!(config.batch, 128);
        assert_eq!(config.metrics, vec![Metric::Accuracy, Metric::Loss]);
        assert_eq!((config.l1, config.l2, config.seed), (0.0, 1e-4, Some(42)));
        let sweep = config.sweep.as_ref().expect("a sweep");
        assert_eq!(sweep.method, SearchMethod::Random { trials: 5 });
        assert_eq!(
            sweep.axes[0].values,
            SweepValues::Uniform {
                low: 0.5,
                high: 0.99
            }
        );
        assert_eq!(
            sweep.axes[1].values,
            SweepValues::IntUniform { low: 2, high: 8 }
        );
        assert_eq!(
            sweep.axes[2].values,
            SweepValues::List(vec![0.0, 1e-5, 1e-4])
        );

        let checked = train(
            r#"
            data = synthetic("reverse", length = 16, vocab = 12)
            optimizer = rmsprop(lr = 1e-2)
            schedule = linear(warmup = 50)
            loss = bce_with_logits()
            "#,
        );
        let config = checked.only_train();
        assert_eq!(
            config.data.as_ref().map(|data| &data.source),
            Some(&DataSource::Synthetic {
                task: SyntheticTask::Reverse,
                length: 16,
                vocab: 12,
                samples: 10_000,
                layout: SequenceLayout::Causal,
            })
        );
        let aligned = train(r#"data = synthetic("sort", layout = "aligned")"#);
        assert_eq!(
            aligned.only_train().data.as_ref().map(|data| &data.source),
            Some(&DataSource::Synthetic {
                task: SyntheticTask::Sort,
                length: 8,
                vocab: 10,
                samples: 10_000,
                layout: SequenceLayout::Aligned,
            })
        );
        assert_eq!(
            config.optimizer,
            OptimizerSpec::RmsProp {
                lr: 1e-2,
                alpha: 0.99,
                eps: 1e-8
            }
        );
        assert_eq!(config.schedule, ScheduleSpec::Linear { warmup: 50 });

        let checked = train(r#"data = safetensors("d.safetensors", label = "labels")"#);
        assert_eq!(
            checked.only_train().data.as_ref().map(|data| &data.source),
            Some(&DataSource::Safetensors {
                path: "d.safetensors".to_string(),
                features: "x".to_string(),
                label: "labels".to_string(),
            })
        );
    }

    #[test]
    fn three_independent_errors_give_three_diagnostics() {
        let checked = train(
            "
            bacth = 32
            split = 1.5
            epochs = 5
            epochs = 6
            optimizer = adam(lr = 1e-3)
            ",
        );
        assert_eq!(
            checked.codes(),
            vec!["unknown-setting", "invalid-setting", "duplicate-definition"]
        );
        assert_eq!(checked.configs, vec![None]);
        assert_eq!(checked.primary_text(0), "bacth");
        assert_eq!(
            checked.diagnostics[0].help.as_deref(),
            Some("did you mean `batch`?")
        );
        assert_eq!(checked.primary_text(1), "1.5");
        assert_eq!(
            checked.diagnostics[1].labels[0].message,
            "expected a float between 0 and 1, found 1.5"
        );
    }

    #[test]
    fn misspelled_optimizer_gets_a_did_you_mean() {
        let checked = train("optimizer = adum(lr = 1e-3)");
        assert_eq!(checked.codes(), vec!["unknown-setting"]);
        let diagnostic = &checked.diagnostics[0];
        assert_eq!(checked.primary_text(0), "adum");
        assert_eq!(diagnostic.message, "unknown optimizer `adum`");
        assert_eq!(diagnostic.help.as_deref(), Some("did you mean `adam`?"));
        assert_eq!(
            diagnostic.notes,
            vec!["expected one of `sgd`, `adam`, `adamw`, `rmsprop`"]
        );
    }

    #[test]
    fn unknown_argument_of_a_constructor_gets_a_did_you_mean() {
        let checked = train("optimizer = adamw(lr = 1e-3, weight_decy = 0.1)");
        assert_eq!(checked.codes(), vec!["unknown-setting"]);
        assert_eq!(checked.primary_text(0), "weight_decy");
        assert_eq!(
            checked.diagnostics[0].help.as_deref(),
            Some("did you mean `weight_decay`?")
        );
    }

    #[test]
    fn unknown_model_is_reported_with_a_suggestion() {
        let checked = check_with_models("train DigitCNN { batch = 8 }", &["DigitsCNN", "LeNet"]);
        assert_eq!(checked.codes(), vec!["unknown-model"]);
        assert_eq!(checked.primary_text(0), "DigitCNN");
        assert_eq!(
            checked.diagnostics[0].help.as_deref(),
            Some("did you mean `DigitsCNN`?")
        );
        assert_eq!(checked.configs, vec![None]);

        let checked = check_with_models("compress Other { quantize = int8 }", &["DigitsCNN"]);
        assert_eq!(checked.codes(), vec!["unknown-model"]);
        assert_eq!(checked.diagnostics[0].help, None);
    }

    #[test]
    fn duplicate_setting_points_at_both() {
        let checked = train("batch = 32\nbatch = 64");
        assert_eq!(checked.codes(), vec!["duplicate-definition"]);
        let labels = &checked.diagnostics[0].labels;
        assert_eq!(labels.len(), 2);
        assert_eq!(labels[0].message, "set again here");
        assert_eq!(labels[1].message, "first set here");
        assert!(labels[1].span.start < labels[0].span.start);
    }

    #[test]
    fn grid_sweep_needs_lists() {
        let checked = train(
            "
            sweep {
                lr in log_uniform(1e-4, 1e-2)
                batch in [32, 64]
                method = grid()
            }
            ",
        );
        assert_eq!(checked.codes(), vec!["invalid-setting"]);
        assert_eq!(checked.primary_text(0), "log_uniform(1e-4, 1e-2)");
        assert_eq!(
            checked.diagnostics[0].labels[1].message,
            "grid search chosen here"
        );

        // Grid search is also the method when none is given.
        let checked = train("sweep { l2 in uniform(0, 0.1) }");
        assert_eq!(checked.codes(), vec!["invalid-setting"]);

        let checked = train("sweep { lr in [1e-3, 1e-2]\n batch in [16, 32] }");
        let sweep = checked.only_train().sweep.as_ref().expect("a sweep");
        assert_eq!(sweep.method, SearchMethod::Grid);
    }

    #[test]
    fn sweep_axes_are_checked() {
        // Adam takes no momentum.
        let checked = train("sweep { momentum in [0.5, 0.9] }");
        assert_eq!(checked.codes(), vec!["invalid-setting"]);
        assert_eq!(checked.primary_text(0), "momentum");

        let checked = train("sweep { lerning_rate in [1e-3] }\n");
        assert_eq!(checked.codes(), vec!["unknown-setting"]);

        let checked = train("sweep { lr in log_uniform(0, 1e-2)\n method = random(trials = 4) }");
        assert_eq!(checked.codes(), vec!["invalid-setting"]);
        assert_eq!(checked.primary_text(0), "0");

        let checked = train("sweep { lr in uniform(1e-2, 1e-4)\n method = random(trials = 4) }");
        assert_eq!(checked.codes(), vec!["invalid-setting"]);

        let checked = train("sweep { batch in uniform(16, 128)\n method = random(trials = 4) }");
        assert_eq!(checked.codes(), vec!["invalid-setting"]);

        let checked = train("sweep { batch in [32, 0, 64.5] }");
        assert_eq!(checked.codes(), vec!["invalid-setting", "invalid-setting"]);

        let checked = train("sweep { lr in [1e-3]\n lr in [1e-2] }");
        assert_eq!(checked.codes(), vec!["duplicate-definition"]);

        let checked = train("sweep { lr = 0.1 }");
        assert_eq!(checked.codes(), vec!["unknown-setting"]);
        assert!(checked.diagnostics[0]
            .help
            .as_deref()
            .is_some_and(|help| help.contains("lr in")));

        let checked = train("sweep { lr in [1e-3]\n method = random() }");
        assert_eq!(checked.codes(), vec!["invalid-setting"]);
        assert_eq!(checked.diagnostics[0].message, "`random` needs `trials`");
    }

    #[test]
    fn bad_values_give_one_diagnostic_each() {
        let cases: &[(&str, &str, &str)] = &[
            ("split = 0", "invalid-setting", "0"),
            ("split = true", "invalid-setting", "true"),
            ("batch = 0", "invalid-setting", "0"),
            ("batch = 32.5", "invalid-setting", "32.5"),
            ("epochs = -3", "invalid-setting", "-3"),
            ("l1 = -0.1", "invalid-setting", "-0.1"),
            ("seed = -1", "invalid-setting", "-1"),
            ("loss = 3", "invalid-setting", "3"),
            (
                "loss = cross_entropy(label_smoothing = 1.0)",
                "invalid-setting",
                "1.0",
            ),
            ("loss = crossentropy", "unknown-setting", "crossentropy"),
            ("optimizer = sgd()", "invalid-setting", "sgd()"),
            (
                "optimizer = sgd(0.1, nesterov = true)",
                "invalid-setting",
                "true",
            ),
            ("optimizer = adam(lr = 0)", "invalid-setting", "0"),
            ("optimizer = adam(beta1 = 1.0)", "invalid-setting", "1.0"),
            (
                "optimizer = adam(1e-3, 0.9, 0.99, 1e-8, 5)",
                "invalid-setting",
                "5",
            ),
            (
                "optimizer = adam(lr = 1e-3, lr = 1e-2)",
                "invalid-setting",
                "lr",
            ),
            ("optimizer = \"adam\"", "invalid-setting", "\"adam\""),
            ("schedule = step()", "invalid-setting", "step()"),
            ("schedule = cosine(warmup = -1)", "invalid-setting", "-1"),
            ("metrics = [acuracy]", "unknown-setting", "acuracy"),
            (
                "metrics = [accuracy, accuracy]",
                "invalid-setting",
                "accuracy",
            ),
            ("metrics = 3", "invalid-setting", "3"),
            (
                "data = csv(\"d.csv\", features = 0..64, label = 3)",
                "invalid-setting",
                "3",
            ),
            (
                "data = csv(\"d.csv\", features = 0..64, shape = [8, 9])",
                "invalid-setting",
                "[8, 9]",
            ),
            (
                "data = csv(\"d.csv\", features = 4..2)",
                "invalid-setting",
                "4..2",
            ),
            (
                "data = csv(\"d.csv\", features = 0..100000000000)",
                "invalid-setting",
                "0..100000000000",
            ),
            ("data = csv(path = 3)", "invalid-setting", "3"),
            ("data = csv(\"d.csv\", header = 1)", "invalid-setting", "1"),
            ("data = tsv(\"d.tsv\")", "unknown-setting", "tsv"),
            (
                "data = synthetic(\"revers\")",
                "unknown-setting",
                "\"revers\"",
            ),
            (
                "data = synthetic(\"copy\", length = 0)",
                "invalid-setting",
                "0",
            ),
            (
                "data = synthetic(\"copy\", layout = \"alligned\")",
                "unknown-setting",
                "\"alligned\"",
            ),
            (
                "data = synthetic(\"copy\", layout = aligned)",
                "invalid-setting",
                "aligned",
            ),
            ("data = npy(\"x.npy\")", "invalid-setting", "npy(\"x.npy\")"),
            ("sweep { }", "invalid-setting", "sweep { }"),
        ];
        for (body, code, primary) in cases {
            let checked = train(body);
            assert_eq!(
                checked.codes(),
                vec![*code],
                "for `{body}`: {:?}",
                checked.diagnostics
            );
            assert_eq!(checked.primary_text(0), *primary, "for `{body}`");
            assert_eq!(checked.configs, vec![None], "for `{body}`");
        }
    }

    #[test]
    fn compress_settings_are_checked() {
        let checked =
            compress("prune = unstructured(sparsity = 0.9)\nkeep = [\"fc3\", \"block1.conv1\"]");
        let Some(SettingsConfig::Compress(config)) = &checked.configs[0] else {
            panic!("expected a compress config: {:?}", checked.diagnostics);
        };
        assert_eq!(
            config.prune,
            Some(PruneSpec::Unstructured { sparsity: 0.9 })
        );
        assert_eq!(config.quantize, None);
        assert_eq!(
            config.keep,
            vec!["fc3".to_string(), "block1.conv1".to_string()]
        );

        let checked = compress("quantize = int8");
        let Some(SettingsConfig::Compress(config)) = &checked.configs[0] else {
            panic!("expected a compress config: {:?}", checked.diagnostics);
        };
        assert_eq!(config.quantize, Some(QuantizeSpec::default()));

        let cases: &[(&str, &str, &str)] = &[
            (
                "prune = structured(sparsity = 1.0)",
                "invalid-setting",
                "1.0",
            ),
            ("prune = structured(by = l3)", "unknown-setting", "l3"),
            ("prune = structred()", "unknown-setting", "structred"),
            ("quantize = int8(calibrate = 0)", "invalid-setting", "0"),
            ("quantize = int8(per_channel = 1)", "invalid-setting", "1"),
            (
                "quantize = int8(max_eror = 0.1)",
                "unknown-setting",
                "max_eror",
            ),
            ("quantize = int4()", "unknown-setting", "int4"),
            ("quantize = int8\nkeep = [fc3]", "invalid-setting", "fc3"),
            (
                "quantize = int8\nkeep = [\"fc3..x\"]",
                "invalid-setting",
                "\"fc3..x\"",
            ),
            (
                "quantize = int8\nkeep = \"fc3\"",
                "invalid-setting",
                "\"fc3\"",
            ),
            ("prnue = structured()", "unknown-setting", "prnue"),
            ("keep = [\"fc3\"]", "invalid-setting", "DigitsCNN"),
            (
                "quantize = int8\nsweep { lr in [1e-3] }",
                "unknown-setting",
                "sweep { lr in [1e-3] }",
            ),
            ("batch = 3\nquantize = int8", "unknown-setting", "batch"),
        ];
        for (body, code, primary) in cases {
            let checked = compress(body);
            assert_eq!(
                checked.codes(),
                vec![*code],
                "for `{body}`: {:?}",
                checked.diagnostics
            );
            assert_eq!(checked.primary_text(0), *primary, "for `{body}`");
            assert_eq!(checked.configs, vec![None], "for `{body}`");
        }
        assert_eq!(
            compress("prnue = structured()").diagnostics[0]
                .help
                .as_deref(),
            Some("did you mean `prune`?")
        );
    }

    #[test]
    fn odd_values_never_panic() {
        let bodies = [
            "batch = 9223372036854775807 * 2",
            "batch = 1 / 0",
            "split = 1 % 0",
            "split = (-9223372036854775807 - 1) / -1",
            "split = 2 ** -1 - 0.25",
            "seed = 2 ** 62",
            "lr = |x| x",
            "optimizer = adam(lr = x.y)",
            "optimizer = a.b(1)",
            "data = csv(\"d.csv\", features = [0, 1, 1])",
            "data = csv(\"d.csv\", features = -1..3)",
            "data = csv(\"d.csv\", features = 0..4, shape = [9223372036854775807, 9223372036854775807])",
            "metrics = [accuracy, 1, \"loss\"]",
            "sweep { lr in int_uniform(1, 3)\n method = random(trials = 2) }",
            "sweep { split in int_uniform(0, 1)\n method = random(trials = 2) }",
        ];
        for body in bodies {
            // The outcome is checked by the assertions inside `check`: no panic, labels in range.
            let checked = train(body);
            assert!(checked.configs.len() == 1);
        }
        // `2 ** -1 - 0.25` is 0.25, a fine split.
        assert!(train("split = 2 ** -1 - 0.25").diagnostics.is_empty());
        assert_eq!(train("seed = 2 ** 62").only_train().seed, Some(1 << 62));
    }

    #[test]
    fn levenshtein_and_suggestions() {
        assert_eq!(levenshtein("adum", "adam"), 1);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(
            closest_name("optimiser", TRAIN_SETTINGS.iter().copied()),
            Some("optimizer")
        );
        assert_eq!(closest_name("zzz", TRAIN_SETTINGS.iter().copied()), None);
        assert_eq!(closest_name("l3", PRUNE_NORMS.iter().copied()), Some("l1"));
    }
}
