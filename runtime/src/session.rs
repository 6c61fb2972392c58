//! A model's parameters as the runtime sees them: declared by the graph's `param` nodes,
//! loaded from a safetensors file or initialized from their declared initializers.

use crate::weights::{bind_weights, read_metadata, read_safetensors, ExpectedParam};
use crate::{fsio, init};
use modelc_compiler::diag::Diagnostic;
use modelc_compiler::interp::Tensor;
use modelc_compiler::ir::{Graph, Init, Op};
use std::collections::HashMap;
use std::path::Path;

/// Every param of a graph with its concrete shape. Param shapes never depend on symbols.
pub fn declared_params(graph: &Graph) -> Result<Vec<(ExpectedParam, Init)>, Diagnostic> {
    let mut params = Vec::new();
    for (id, name) in graph.params() {
        let node = graph.node(id);
        let Op::Param { init, .. } = &node.op else {
            continue;
        };
        let mut shape = Vec::new();
        for dim in &node.ty.shape {
            match dim.as_const().and_then(|d| usize::try_from(d).ok()) {
                Some(size) => shape.push(size),
                None => {
                    return Err(Diagnostic::error(
                        "invalid-dim",
                        format!("param `{name}` has the non-constant shape {}", node.ty),
                    )
                    .with_label(node.span, "declared here"))
                }
            }
        }
        params.push((
            ExpectedParam {
                name: name.to_string(),
                dtype: node.ty.dtype,
                shape,
            },
            init.clone(),
        ));
    }
    Ok(params)
}

/// Initializes every param from its declared initializer, deterministically for `seed`.
pub fn initialize_params(graph: &Graph, seed: u64) -> Result<Vec<(String, Tensor)>, Diagnostic> {
    let mut out = Vec::new();
    for (param, init) in declared_params(graph)? {
        let tensor = init::initialize(&param.name, &init, param.dtype, &param.shape, seed)?;
        out.push((param.name, tensor));
    }
    Ok(out)
}

/// Loads params from a safetensors file (strictly: every declared param present with its
/// declared shape, nothing else), or initializes them when no file is given.
pub fn load_params(
    graph: &Graph,
    weights: Option<&Path>,
    seed: u64,
) -> Result<HashMap<String, Tensor>, Vec<Diagnostic>> {
    load_params_with_metadata(graph, weights, seed).map(|(params, _)| params)
}

/// Params by name.
pub type Params = HashMap<String, Tensor>;
/// A weights file's string metadata by key.
pub type Metadata = HashMap<String, String>;

/// [`load_params`], with the string metadata of the weights file (empty without one), from
/// the same read of the file.
pub fn load_params_with_metadata(
    graph: &Graph,
    weights: Option<&Path>,
    seed: u64,
) -> Result<(Params, Metadata), Vec<Diagnostic>> {
    match weights {
        None => Ok((
            initialize_params(graph, seed)
                .map_err(|d| vec![d])?
                .into_iter()
                .collect(),
            HashMap::new(),
        )),
        Some(path) => {
            let file_name = path.to_string_lossy().into_owned();
            let bytes = fsio::read_file(path).map_err(|d| vec![d])?;
            let found = read_safetensors(&bytes, &file_name).map_err(|d| vec![d])?;
            let metadata = read_metadata(&bytes, &file_name).map_err(|d| vec![d])?;
            let expected: Vec<ExpectedParam> = declared_params(graph)
                .map_err(|d| vec![d])?
                .into_iter()
                .map(|(p, _)| p)
                .collect();
            Ok((bind_weights(&expected, found, &file_name)?, metadata))
        }
    }
}
