//! The reference interpreter: plain, obviously correct loops over the graph IR.
pub mod tensor;
pub use tensor::{Tensor, TensorData};
