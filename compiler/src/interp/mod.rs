//! The reference interpreter: plain, obviously correct loops over the graph IR.
pub mod eval;
pub mod kernels;
pub mod tensor;
pub use eval::{evaluate, evaluate_with_options, EvalError, EvalOptions};
pub use tensor::{Tensor, TensorData};
