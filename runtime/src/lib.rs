//! modelc's runtime support: reading and writing tensors and weights, and initializing
//! parameters when no weights file is given.
//!
//! Everything here reads untrusted files, so every function returns a
//! [`Diagnostic`](modelc_compiler::diag::Diagnostic) instead of panicking, and every size
//! declared inside a file is checked against the bytes actually present before anything is
//! allocated from it.
//!
//! - [`data`]: training data: CSV, `.npy` and safetensors data sets, synthetic sequence
//!   tasks, seeded splitting, shuffling and batching.
//! - [`fsio`]: whole-file reads and crash-safe (atomic) writes.
//! - [`npy`]: NumPy `.npy` arrays, versions 1.0 to 3.0.
//! - [`weights`]: safetensors files, and binding their tensors to a model's declared params.
//! - [`init`]: deterministic parameter initializers (Kaiming, Xavier, uniform, normal, ...).
//! - [`train`]: the training loop of a `train` block, checkpoints and resuming.

pub mod cpu;
pub mod data;
pub mod fsio;
pub mod init;
pub mod loader;
pub mod npy;
pub mod session;
pub mod train;
pub mod weights;
