//! Graph-to-graph optimization passes. Each pass is one file with one entry point that takes
//! `&mut Graph` and returns a [`PassReport`]; [`pipeline`] gives their order and verifies the
//! graph after each one. Every pass preserves semantics: the tests run the reference
//! interpreter before and after on every example.

pub mod eliminate_dead_code;
pub mod lower_batch_norm;
pub mod pipeline;
pub mod simplify_algebra;

pub use pipeline::{optimize, PassReport};
