//! The pass order, with the IR verifier between passes.

use super::{
    eliminate_dead_code::eliminate_dead_code, lower_batch_norm::lower_batch_norm,
    simplify_algebra::simplify_algebra,
};
use crate::ir::verify::{verify, VerifyError};
use crate::ir::Graph;
use std::time::{Duration, Instant};

/// What one pass did.
#[derive(Clone, Debug)]
pub struct PassReport {
    pub name: &'static str,
    pub nodes_before: usize,
    pub nodes_after: usize,
    /// Rewrites made (nodes replaced, removed or merged).
    pub changes: usize,
    pub elapsed: Duration,
}

/// A pass: its registered name and entry point.
type Pass = (&'static str, fn(&mut Graph) -> usize);

/// The passes in order. Inference batch norms become a scale and a shift first, so that
/// simplification sees their primitives; simplification exposes dead nodes; dead-code
/// elimination then removes them, including unused per-step outputs of scans.
const PASSES: &[Pass] = &[
    ("lower_batch_norm", lower_batch_norm),
    ("simplify_algebra", simplify_algebra),
    ("eliminate_dead_code", eliminate_dead_code),
];

/// Runs every pass, verifying the graph after each. A verifier failure names the pass that
/// broke an invariant; it is a compiler bug.
pub fn optimize(graph: &mut Graph) -> Result<Vec<PassReport>, (&'static str, Vec<VerifyError>)> {
    let mut reports = Vec::new();
    for (name, pass) in PASSES {
        let nodes_before = graph.node_count();
        let start = Instant::now();
        let changes = pass(graph);
        let elapsed = start.elapsed();
        verify(graph).map_err(|errors| (*name, errors))?;
        reports.push(PassReport {
            name,
            nodes_before,
            nodes_after: graph.node_count(),
            changes,
            elapsed,
        });
    }
    Ok(reports)
}
