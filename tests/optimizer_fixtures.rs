//! Optimizer steps against numpy: `tests/fixtures/optimizers/steps.json`, written by
//! `scripts/gen_optimizer_fixtures.py` in float64 from PyTorch's documented update rules, holds
//! five steps (with a changing learning rate) of SGD, SGD with momentum, Nesterov, Adam, AdamW
//! and RMSprop on a linear layer `x @ weight + bias` under the mean squared error. modelc's step
//! graph, built from a `train` block with the same optimizer, runs the same steps through the
//! interpreter and through the CPU backend. Tolerance: every param element within
//! `1e-5 + 1e-4 * |numpy|` after each step (f32 against f64).

use modelc_compiler::check::{check_file, select_model, CheckOptions};
use modelc_compiler::interp::{evaluate, Tensor};
use modelc_compiler::train::{build_step_graph, step_seed};
use modelc_runtime::cpu::CpuExecutable;
use modelc_runtime::loader::FsLoader;
use modelc_runtime::train::train_configs;
use serde_json::Value;
use std::collections::HashMap;

fn floats(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_f64().expect("a number") as f32)
        .collect()
}

/// The optimizer expression of a fixture's spec, in the language.
fn optimizer(spec: &Value) -> String {
    let number = |key: &str| spec[key].as_f64().expect(key);
    match spec["kind"].as_str().expect("kind") {
        "sgd" => format!(
            "sgd(lr = 0.1, momentum = {}, nesterov = {})",
            number("momentum"),
            spec["nesterov"].as_bool().expect("nesterov")
        ),
        "adam" => format!(
            "adam(lr = 0.1, beta1 = {}, beta2 = {}, eps = {})",
            number("beta1"),
            number("beta2"),
            number("eps")
        ),
        "adamw" => format!(
            "adamw(lr = 0.1, beta1 = {}, beta2 = {}, eps = {}, weight_decay = {})",
            number("beta1"),
            number("beta2"),
            number("eps"),
            number("weight_decay")
        ),
        "rmsprop" => format!(
            "rmsprop(lr = 0.1, alpha = {}, eps = {})",
            number("alpha"),
            number("eps")
        ),
        other => panic!("unknown optimizer {other}"),
    }
}

#[test]
fn optimizer_steps_match_numpy() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("tests/fixtures/optimizers/steps.json"))
        .expect("the fixture");
    let fixture: Value = serde_json::from_str(&text).expect("JSON");
    let (x, target) = (floats(&fixture["x"]), floats(&fixture["target"]));
    let lrs = floats(&fixture["lrs"]);
    let optimizers = fixture["optimizers"].as_object().expect("optimizers");
    assert_eq!(optimizers.len(), 6);
    for (name, case) in optimizers {
        let source = format!(
            "model Linear {{\n    param weight: f32[4, 3] = zeros()\n    param bias: f32[3] = zeros()\n    \
             forward(x: f32[B, 4]) -> f32[B, 3] {{ x @ weight + bias }}\n}}\n\n\
             train Linear {{\n    loss = mse()\n    optimizer = {}\n}}\n",
            optimizer(&case["spec"])
        );
        let result = check_file("linear.model", &source, &FsLoader, CheckOptions::default());
        assert!(!result.has_errors(), "{name}: {:?}", result.diagnostics);
        let config = train_configs(&result)
            .into_iter()
            .next()
            .expect("a train block");
        let model = select_model(&result, Some("Linear")).expect("the model");
        let step = build_step_graph(&model.graph, &config).expect("a step graph");
        let executable = CpuExecutable::compile(&step.graph).expect("compiles");
        let no_params = HashMap::new();
        let bound = executable.bind(&no_params).expect("binds");
        let start: HashMap<&str, Vec<f32>> = [
            ("weight", floats(&fixture["weight"])),
            ("bias", floats(&fixture["bias"])),
        ]
        .into();
        for backend in ["interpreter", "cpu"] {
            let mut params: Vec<Tensor> = step
                .params
                .iter()
                .map(|p| {
                    let values = start[p.name.as_str()].clone();
                    let shape = if p.name == "weight" {
                        vec![4, 3]
                    } else {
                        vec![3]
                    };
                    Tensor::from_f32(shape, values).unwrap()
                })
                .collect();
            let mut state: Vec<Tensor> = step
                .state
                .iter()
                .map(|slot| {
                    let shape = params[slot.param].shape.clone();
                    let count = shape.iter().product();
                    Tensor::from_f32(shape, vec![0.0; count]).unwrap()
                })
                .collect();
            for (index, &lr) in lrs.iter().enumerate() {
                let mut inputs = vec![
                    Tensor::from_f32(vec![5, 4], x.clone()).unwrap(),
                    Tensor::from_f32(vec![5, 3], target.clone()).unwrap(),
                ];
                inputs.extend(params.iter().cloned());
                inputs.extend(state.iter().cloned());
                inputs.push(Tensor::from_f32(vec![], vec![lr]).unwrap());
                inputs.push(Tensor::from_f32(vec![], vec![(index + 1) as f32]).unwrap());
                inputs
                    .push(Tensor::from_i64(vec![], vec![step_seed(0, index as u64 + 1)]).unwrap());
                let outputs = match backend {
                    "interpreter" => evaluate(&step.graph, &inputs, &HashMap::new()).unwrap(),
                    _ => bound.run(&inputs).unwrap(),
                };
                params = (0..step.params.len())
                    .map(|i| outputs[step.param_output(i)].clone())
                    .collect();
                state = (0..step.state.len())
                    .map(|i| outputs[step.state_output(i)].clone())
                    .collect();
                let expected = &case["steps"][index];
                for (p, tensor) in step.params.iter().zip(&params) {
                    let want = floats(&expected[p.name.as_str()]);
                    for (got, want) in tensor.as_f32().unwrap().iter().zip(&want) {
                        assert!(
                            (got - want).abs() <= 1e-5 + 1e-4 * want.abs(),
                            "{name} on the {backend}, step {}: {} = {got}, numpy {want}",
                            index + 1,
                            p.name
                        );
                    }
                }
            }
        }
    }
}
