//! Removes nodes that no output depends on, and the per-step outputs of scans that nothing
//! reads. Inputs and params always stay: inputs are the model's interface, and params are what
//! a weights file must provide, whether or not a path uses them.

use crate::ir::{Graph, NodeId, Op};
use std::collections::HashSet;

/// Returns the number of nodes removed (scan body outputs removed count too).
pub fn eliminate_dead_code(graph: &mut Graph) -> usize {
    // Dead users must go before a scan's unread outputs can be seen as unread.
    let mut removed = remove_unreachable(graph);
    removed += prune_scan_outputs(graph);
    removed += remove_unreachable(graph);
    // Scan bodies are graphs too.
    for id in graph.node_ids() {
        if let Op::Scan(scan) = &mut graph.node_mut(id).op {
            removed += eliminate_dead_code(&mut scan.body);
        }
    }
    removed
}

fn remove_unreachable(graph: &mut Graph) -> usize {
    let live = live_nodes(graph);
    let mut removed = 0;
    for id in graph.node_ids() {
        let keep =
            live.contains(&id) || matches!(graph.node(id).op, Op::Input { .. } | Op::Param { .. });
        if !keep {
            graph.remove(id);
            removed += 1;
        }
    }
    removed
}

/// Nodes reachable backwards from the outputs.
fn live_nodes(graph: &Graph) -> HashSet<NodeId> {
    let mut live = HashSet::new();
    let mut stack: Vec<NodeId> = graph.outputs.clone();
    while let Some(id) = stack.pop() {
        if !graph.contains(id) || !live.insert(id) {
            continue;
        }
        stack.extend(graph.operands(id));
    }
    live
}

/// Drops stacked per-step outputs of scans whose `project` nodes have no users (and are not
/// graph outputs), renumbering the remaining projections. Carried states stay: the next step
/// reads them.
fn prune_scan_outputs(graph: &mut Graph) -> usize {
    let mut removed = 0;
    let outputs: HashSet<NodeId> = graph.outputs.iter().copied().collect();
    for scan_id in graph.node_ids() {
        let Op::Scan(scan) = &graph.node(scan_id).op else {
            continue;
        };
        let n_carry = scan.n_carry;
        let n_results = scan.result_types.len();
        // Which results are read, and by which project nodes.
        let mut projects: Vec<Vec<NodeId>> = vec![Vec::new(); n_results];
        for user in graph.users(scan_id) {
            if let Op::Project { index } = graph.node(user).op {
                if index < n_results {
                    projects[index].push(user);
                }
            }
        }
        let used: Vec<bool> = projects
            .iter()
            .map(|ids| {
                ids.iter()
                    .any(|id| !graph.users(*id).is_empty() || outputs.contains(id))
            })
            .collect();
        let dropped: Vec<usize> = (n_carry..n_results).filter(|&index| !used[index]).collect();
        if dropped.is_empty() {
            continue;
        }
        // New index of each kept result.
        let mut new_index = vec![None; n_results];
        let mut next = 0;
        for (index, slot) in new_index.iter_mut().enumerate() {
            if !dropped.contains(&index) {
                *slot = Some(next);
                next += 1;
            }
        }
        for (index, ids) in projects.iter().enumerate() {
            for id in ids {
                match new_index[index] {
                    Some(renumbered) => graph.node_mut(*id).op = Op::Project { index: renumbered },
                    None => {
                        graph.remove(*id);
                    }
                }
            }
        }
        if let Op::Scan(scan) = &mut graph.node_mut(scan_id).op {
            let kept_outputs: Vec<NodeId> = scan
                .body
                .outputs
                .iter()
                .enumerate()
                .filter(|(index, _)| !dropped.contains(index))
                .map(|(_, id)| *id)
                .collect();
            scan.body.outputs = kept_outputs;
            let kept_types = scan
                .result_types
                .iter()
                .enumerate()
                .filter(|(index, _)| !dropped.contains(index))
                .map(|(_, ty)| ty.clone())
                .collect();
            scan.result_types = kept_types;
        }
        removed += dropped.len();
    }
    removed
}
