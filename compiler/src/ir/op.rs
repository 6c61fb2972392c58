//! The op set of the graph IR, in one enum grouped by kind.
//!
//! Layers are inlined into these primitives during elaboration. Elementwise ops broadcast their
//! operands NumPy-style to the node's shape; movement ops describe views; `MatMul`, `Conv2d` and
//! `Pool2d` are kept whole so that backends call tuned kernels instead of pattern-matching them
//! back out of multiplies and sums.

use super::dim::Dim;
use std::fmt;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum DType {
    F32,
    I64,
    Bool,
}

impl DType {
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::I64 => "i64",
            DType::Bool => "bool",
        }
    }

    pub fn from_name(name: &str) -> Option<DType> {
        match name {
            "f32" => Some(DType::F32),
            "i64" => Some(DType::I64),
            "bool" => Some(DType::Bool),
            _ => None,
        }
    }

    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::I64 => 8,
            DType::Bool => 1,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A tensor's type: element type and (possibly symbolic) shape.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct TensorType {
    pub dtype: DType,
    pub shape: Vec<Dim>,
}

impl TensorType {
    pub fn new(dtype: DType, shape: Vec<Dim>) -> TensorType {
        TensorType { dtype, shape }
    }

    pub fn scalar(dtype: DType) -> TensorType {
        TensorType {
            dtype,
            shape: Vec::new(),
        }
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.dtype, super::dim::format_shape(&self.shape))
    }
}

/// A scalar literal.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Literal {
    F32(f32),
    I64(i64),
    Bool(bool),
}

impl Literal {
    pub fn dtype(self) -> DType {
        match self {
            Literal::F32(_) => DType::F32,
            Literal::I64(_) => DType::I64,
            Literal::Bool(_) => DType::Bool,
        }
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::F32(v) => write!(f, "{v:?}"),
            Literal::I64(v) => write!(f, "{v}"),
            Literal::Bool(v) => write!(f, "{v}"),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum UnaryOp {
    Neg,
    Abs,
    Exp,
    Log,
    Sqrt,
    Rsqrt,
    Tanh,
    Sigmoid,
    Erf,
    Sin,
    Cos,
    Floor,
    /// Logical not, on bool.
    Not,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    /// Remainder with the sign of the divisor (Python's `%`).
    Rem,
    Pow,
    Max,
    Min,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

impl BinaryOp {
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge
        )
    }

    pub fn is_logical(self) -> bool {
        matches!(self, BinaryOp::And | BinaryOp::Or)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ReduceOp {
    Sum,
    Mean,
    Max,
    Min,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum PoolKind {
    Max,
    /// Average over the window; padding cells count in the divisor (PyTorch's
    /// `count_include_pad=True`).
    Avg,
}

/// How a parameter is initialized when no weights file is given. Fan-in and fan-out are
/// computed from the parameter's shape the way PyTorch does: `fan_in = shape[1] * prod(shape[2..])`.
#[derive(Clone, PartialEq, Debug)]
pub enum Init {
    Zeros,
    Ones,
    Constant(f64),
    Uniform {
        low: f64,
        high: f64,
    },
    Normal {
        mean: f64,
        std: f64,
    },
    /// PyTorch's default for Linear and Conv2d weights: uniform(-b, b) with
    /// `b = gain * sqrt(3 / fan_in)`, `gain = sqrt(2 / (1 + a^2))`.
    KaimingUniform {
        a: f64,
    },
    KaimingNormal,
    XavierUniform,
    XavierNormal,
}

impl fmt::Display for Init {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Init::Zeros => write!(f, "zeros()"),
            Init::Ones => write!(f, "ones()"),
            Init::Constant(v) => write!(f, "constant({v})"),
            Init::Uniform { low, high } => write!(f, "uniform({low}, {high})"),
            Init::Normal { mean, std } => write!(f, "normal({mean}, {std})"),
            Init::KaimingUniform { a } => write!(f, "kaiming_uniform(a = {a})"),
            Init::KaimingNormal => write!(f, "kaiming_normal()"),
            Init::XavierUniform => write!(f, "xavier_uniform()"),
            Init::XavierNormal => write!(f, "xavier_normal()"),
        }
    }
}

/// A loop over one axis of its sequence operands; the body is a graph of its own.
///
/// Operands of the scan node: `n_carry` initial states, then `n_sequences` sequences (iterated
/// along `axis`), then captured outer values. Body inputs, in order: the carried states, one
/// slice of each sequence (with `axis` removed), the captured values. Body outputs: the new
/// states, then the per-step outputs. The scan's results, read through `Project` nodes: the
/// final states, then the per-step outputs stacked along `axis`.
#[derive(Clone, Debug)]
pub struct ScanOp {
    pub body: Box<super::Graph>,
    pub n_carry: usize,
    pub n_sequences: usize,
    pub axis: usize,
    pub length: Dim,
    pub reverse: bool,
    pub result_types: Vec<TensorType>,
}

#[derive(Clone, Debug)]
pub enum Op {
    // --- Sources: no operands.
    /// A model input; `index` is its position in the forward signature.
    Input {
        index: usize,
        name: String,
    },
    /// A trained parameter, by its dotted path in the layer tree.
    Param {
        name: String,
        init: Init,
    },
    /// A tensor of the node's shape filled with one value.
    Fill(Literal),
    /// `0, 1, 2, ...` along `axis`, broadcast over the node's other axes.
    Iota {
        axis: usize,
    },

    // --- Elementwise: operands broadcast NumPy-style to the node's shape.
    Unary(UnaryOp),
    Binary(BinaryOp),
    /// `where(condition, if_true, if_false)`.
    Select,
    Cast,

    // --- Reductions.
    Reduce {
        op: ReduceOp,
        axes: Vec<usize>,
        keep_dims: bool,
    },
    ArgMax {
        axis: usize,
        keep_dims: bool,
    },

    // --- Movement.
    /// Row-major reinterpretation to the node's shape.
    Reshape,
    Permute {
        perm: Vec<usize>,
    },
    /// Broadcast to the node's shape (NumPy rules, leading axes added as needed).
    Expand,
    /// Elements `start, start + step, ...` along `axis`; the count is the node's `shape[axis]`.
    Slice {
        axis: usize,
        start: Dim,
        step: i64,
    },
    Concat {
        axis: usize,
    },

    // --- Contractions.
    /// NumPy `matmul`: batch dims broadcast; both operands have rank >= 2.
    MatMul,
    /// NCHW input, OIHW weight, optional bias as a third operand.
    Conv2d {
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
        groups: usize,
    },

    // --- Windowed reductions (NCHW).
    Pool2d {
        kind: PoolKind,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    },

    // --- Indexing.
    /// `table.take(indices, axis)`: operands (table, i64 indices).
    Gather {
        axis: usize,
    },

    // --- Randomness.
    /// Inverted dropout with drop probability `rate`; the identity at inference. The training
    /// step graph rewrites it into `x * mask` with a mask drawn by `RandomUniform`.
    Dropout {
        rate: f64,
    },
    /// Uniform f32 values in `[0, 1)` of the node's shape, from one operand: an i64 scalar
    /// seed. Counter-based and stateless: element `i` (row-major) is
    /// [`crate::interp::kernels::random_uniform_value`]`(seed, stream, i)`, so every backend
    /// draws the same bits and a value depends on nothing but (seed, stream, index).
    RandomUniform {
        stream: u64,
    },

    // --- Normalization.
    /// Batch normalization over axis 1 (channels) of a rank >= 2 f32 operand, at inference:
    /// `(x - running_mean) * weight / sqrt(running_var + eps) + bias`, each per-channel vector
    /// broadcast along the other axes. Operands: x `[N, C, ...]`, weight, bias, running_mean,
    /// running_var (each f32 `[C]`), then optionally num_batches_tracked (i64 scalar, read only
    /// by the training rewrite). `momentum` is used only by the training step graph, which
    /// normalizes with the batch statistics and updates the running ones
    /// (`crate::train`); inference lowers the node to a scale and a shift
    /// (`crate::passes::lower_batch_norm`).
    BatchNorm {
        eps: f64,
        momentum: f64,
    },

    // --- Gradients: the adjoints of ops above, added by reverse-mode differentiation
    // (`crate::autodiff`). Each result has the type of the forward op's operand it is the
    // gradient of.
    /// The adjoint of `Slice`: a zero tensor of the node's shape with the operand's elements at
    /// `start, start + step, ...` along `axis` (the operand's `shape[axis]` of them).
    SliceScatter {
        axis: usize,
        start: Dim,
        step: i64,
    },
    /// The adjoint of `Gather`: operands (f32 updates, i64 indices); a zero tensor of the node's
    /// shape (the table's) with each update slice added at its index along `axis`. Repeated
    /// indices accumulate.
    ScatterAdd {
        axis: usize,
    },
    /// The gradient of `Conv2d` with respect to its input: operands (output gradient, weight);
    /// the result has the input's type.
    Conv2dBackwardInput {
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
        groups: usize,
    },
    /// The gradient of `Conv2d` with respect to its weight: operands (input, output gradient);
    /// the result has the weight's type.
    Conv2dBackwardWeight {
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
        groups: usize,
    },
    /// The gradient of `Pool2d` with respect to its operand: operands (the forward input, the
    /// output gradient); the result has the input's type. Max pooling routes each window's
    /// gradient to the first maximum in row-major window order (the one the forward kernel
    /// picks); average pooling spreads it evenly, padding cells included in the divisor.
    Pool2dBackward {
        kind: PoolKind,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    },

    // --- Control.
    Scan(ScanOp),
    /// Result `index` of a multi-result node (a scan).
    Project {
        index: usize,
    },
}

impl Op {
    /// The op's mnemonic in the text form of the IR.
    pub fn mnemonic(&self) -> String {
        match self {
            Op::Input { .. } => "input".into(),
            Op::Param { .. } => "param".into(),
            Op::Fill(_) => "fill".into(),
            Op::Iota { .. } => "iota".into(),
            Op::Unary(op) => format!("{op:?}").to_lowercase(),
            Op::Binary(op) => format!("{op:?}").to_lowercase(),
            Op::Select => "select".into(),
            Op::Cast => "cast".into(),
            Op::Reduce { op, .. } => format!("reduce_{}", format!("{op:?}").to_lowercase()),
            Op::ArgMax { .. } => "argmax".into(),
            Op::Reshape => "reshape".into(),
            Op::Permute { .. } => "permute".into(),
            Op::Expand => "expand".into(),
            Op::Slice { .. } => "slice".into(),
            Op::Concat { .. } => "concat".into(),
            Op::MatMul => "matmul".into(),
            Op::Conv2d { .. } => "conv2d".into(),
            Op::Pool2d {
                kind: PoolKind::Max,
                ..
            } => "max_pool2d".into(),
            Op::Pool2d {
                kind: PoolKind::Avg,
                ..
            } => "avg_pool2d".into(),
            Op::Gather { .. } => "gather".into(),
            Op::Dropout { .. } => "dropout".into(),
            Op::RandomUniform { .. } => "random_uniform".into(),
            Op::BatchNorm { .. } => "batch_norm".into(),
            Op::SliceScatter { .. } => "slice_scatter".into(),
            Op::ScatterAdd { .. } => "scatter_add".into(),
            Op::Conv2dBackwardInput { .. } => "conv2d_backward_input".into(),
            Op::Conv2dBackwardWeight { .. } => "conv2d_backward_weight".into(),
            Op::Pool2dBackward {
                kind: PoolKind::Max,
                ..
            } => "max_pool2d_backward".into(),
            Op::Pool2dBackward {
                kind: PoolKind::Avg,
                ..
            } => "avg_pool2d_backward".into(),
            Op::Scan(_) => "scan".into(),
            Op::Project { .. } => "project".into(),
        }
    }

    /// The op's attributes in the text form, without the operands: `axes=[1] keep_dims=true`.
    pub fn attributes(&self) -> String {
        match self {
            Op::Input { index, name } => format!("{index} \"{name}\""),
            Op::Param { name, init } => format!("\"{name}\" init={init}"),
            Op::Fill(value) => format!("{value}"),
            Op::Iota { axis } => format!("axis={axis}"),
            Op::Reduce {
                axes, keep_dims, ..
            } => format!("axes={axes:?} keep_dims={keep_dims}"),
            Op::ArgMax { axis, keep_dims } => format!("axis={axis} keep_dims={keep_dims}"),
            Op::Permute { perm } => format!("perm={perm:?}"),
            Op::Slice { axis, start, step } | Op::SliceScatter { axis, start, step } => {
                format!("axis={axis} start={start} step={step}")
            }
            Op::Concat { axis } => format!("axis={axis}"),
            Op::Conv2d {
                stride,
                padding,
                dilation,
                groups,
            }
            | Op::Conv2dBackwardInput {
                stride,
                padding,
                dilation,
                groups,
            }
            | Op::Conv2dBackwardWeight {
                stride,
                padding,
                dilation,
                groups,
            } => format!(
                "stride={stride:?} padding={padding:?} dilation={dilation:?} groups={groups}"
            ),
            Op::Pool2d {
                kernel,
                stride,
                padding,
                ..
            }
            | Op::Pool2dBackward {
                kernel,
                stride,
                padding,
                ..
            } => {
                format!("kernel={kernel:?} stride={stride:?} padding={padding:?}")
            }
            Op::Gather { axis } | Op::ScatterAdd { axis } => format!("axis={axis}"),
            Op::Dropout { rate } => format!("rate={rate}"),
            Op::RandomUniform { stream } => format!("stream={stream}"),
            Op::BatchNorm { eps, momentum } => format!("eps={eps} momentum={momentum}"),
            Op::Scan(scan) => format!(
                "carry={} sequences={} axis={} length={} reverse={}",
                scan.n_carry, scan.n_sequences, scan.axis, scan.length, scan.reverse
            ),
            Op::Project { index } => format!("{index}"),
            Op::Unary(_)
            | Op::Binary(_)
            | Op::Select
            | Op::Cast
            | Op::Reshape
            | Op::Expand
            | Op::MatMul => String::new(),
        }
    }
}
