//! Optimizer steps through the step graph on the interpreter, against reference updates
//! computed here in f64 from PyTorch's documented formulas, and hand-derived values.
//!
//! The model is `y = x * w` with `w: f32[3]`; with `x = 1` and `mse` against zero targets the
//! loss is `mean(w^2)` over 3 elements, so the gradient is `g = 2 w / 3` (plus `2 l2 w` and
//! `l1 sign(w)` when set). Tolerance: the graph computes in f32, so each element must agree
//! with the f64 reference within `1e-5 + 1e-5 * |reference|` after 5 steps.

use super::*;
use crate::check::check_file_here;
use crate::check::modules::MemoryLoader;
use crate::check::settings::{LossSpec, OptimizerSpec, TrainConfig};
use crate::check::CheckOptions;
use crate::interp::{evaluate, Tensor};
use std::collections::HashMap;

const MODEL: &str = "model M {
    param w: f32[3] = zeros()
    forward(x: f32[B, 3]) -> f32[B, 3] { x * w }
}
";

fn forward(source: &str) -> Graph {
    let loader = MemoryLoader(HashMap::new());
    let result = check_file_here("main.model", source, &loader, CheckOptions::default());
    assert!(result.diagnostics.is_empty(), "{:?}", result.diagnostics);
    result.models.into_iter().next().unwrap().graph
}

fn config(optimizer: OptimizerSpec, l1: f64, l2: f64) -> TrainConfig {
    let mut config = TrainConfig::defaults("M");
    config.loss = LossSpec::Mse;
    config.optimizer = optimizer;
    config.l1 = l1;
    config.l2 = l2;
    config
}

/// Runs `steps` updates from `w0` and returns the params after each.
fn run_graph(config: &TrainConfig, w0: [f32; 3], lrs: &[f32]) -> Vec<Vec<f32>> {
    let step = build_step_graph(&forward(MODEL), config).unwrap();
    assert_eq!(step.params.len(), 1);
    let mut w = Tensor::from_f32(vec![3], w0.to_vec()).unwrap();
    let mut state: Vec<Tensor> = step
        .state
        .iter()
        .map(|_| Tensor::from_f32(vec![3], vec![0.0; 3]).unwrap())
        .collect();
    let mut history = Vec::new();
    for (t, &lr) in lrs.iter().enumerate() {
        let mut inputs = vec![
            Tensor::from_f32(vec![1, 3], vec![1.0; 3]).unwrap(),
            Tensor::from_f32(vec![1, 3], vec![0.0; 3]).unwrap(),
            w.clone(),
        ];
        inputs.extend(state.iter().cloned());
        inputs.push(Tensor::from_f32(vec![], vec![lr]).unwrap());
        inputs.push(Tensor::from_f32(vec![], vec![(t + 1) as f32]).unwrap());
        inputs.push(Tensor::from_i64(vec![], vec![step_seed(0, t as u64 + 1)]).unwrap());
        let outputs = evaluate(&step.graph, &inputs, &HashMap::new()).unwrap();
        assert_eq!(outputs.len(), 3 + step.state.len());
        w = outputs[step.param_output(0)].clone();
        state = (0..step.state.len())
            .map(|i| outputs[step.state_output(i)].clone())
            .collect();
        history.push(w.as_f32().unwrap().to_vec());
    }
    history
}

/// The reference: PyTorch's update rules in f64.
fn reference(config: &TrainConfig, w0: [f32; 3], lrs: &[f32]) -> Vec<Vec<f32>> {
    let mut w: Vec<f64> = w0.iter().map(|&v| f64::from(v)).collect();
    let mut s1 = [0f64; 3];
    let mut s2 = [0f64; 3];
    let mut history = Vec::new();
    for (index, &lr) in lrs.iter().enumerate() {
        let lr = f64::from(lr);
        let t = (index + 1) as f64;
        for i in 0..3 {
            let sign = if w[i] > 0.0 {
                1.0
            } else if w[i] < 0.0 {
                -1.0
            } else {
                0.0
            };
            let g = 2.0 * w[i] / 3.0 + 2.0 * config.l2 * w[i] + config.l1 * sign;
            match config.optimizer {
                OptimizerSpec::Sgd {
                    momentum, nesterov, ..
                } => {
                    if momentum == 0.0 {
                        w[i] -= lr * g;
                    } else {
                        s1[i] = if index == 0 { g } else { momentum * s1[i] + g };
                        let d = if nesterov {
                            g + momentum * s1[i]
                        } else {
                            s1[i]
                        };
                        w[i] -= lr * d;
                    }
                }
                OptimizerSpec::Adam {
                    beta1, beta2, eps, ..
                }
                | OptimizerSpec::AdamW {
                    beta1, beta2, eps, ..
                } => {
                    if let OptimizerSpec::AdamW { weight_decay, .. } = config.optimizer {
                        w[i] *= 1.0 - lr * weight_decay;
                    }
                    s1[i] = beta1 * s1[i] + (1.0 - beta1) * g;
                    s2[i] = beta2 * s2[i] + (1.0 - beta2) * g * g;
                    let c1 = 1.0 - beta1.powf(t);
                    let c2 = 1.0 - beta2.powf(t);
                    w[i] -= lr / c1 * s1[i] / ((s2[i].sqrt() / c2.sqrt()) + eps);
                }
                OptimizerSpec::RmsProp { alpha, eps, .. } => {
                    s1[i] = alpha * s1[i] + (1.0 - alpha) * g * g;
                    w[i] -= lr * g / (s1[i].sqrt() + eps);
                }
            }
        }
        history.push(w.iter().map(|&v| v as f32).collect());
    }
    history
}

fn assert_close(actual: &[Vec<f32>], expected: &[Vec<f32>]) {
    for (step, (a, e)) in actual.iter().zip(expected).enumerate() {
        for (x, y) in a.iter().zip(e) {
            assert!(
                (x - y).abs() <= 1e-5 + 1e-5 * y.abs(),
                "step {}: {a:?} vs {e:?}",
                step + 1
            );
        }
    }
}

fn check(optimizer: OptimizerSpec, l1: f64, l2: f64) {
    let config = config(optimizer, l1, l2);
    let lrs = [0.1, 0.05, 0.1, 0.02, 0.1];
    let w0 = [1.0, -2.0, 3.0];
    assert_close(&run_graph(&config, w0, &lrs), &reference(&config, w0, &lrs));
}

#[test]
fn sgd_matches_hand_derived_values() {
    // g = 2w/3, so one step of lr 0.3 scales w by 1 - 0.2.
    let config = config(
        OptimizerSpec::Sgd {
            lr: 0.3,
            momentum: 0.0,
            nesterov: false,
        },
        0.0,
        0.0,
    );
    let history = run_graph(&config, [1.0, -2.0, 3.0], &[0.3]);
    assert_close(&history, &[vec![0.8, -1.6, 2.4]]);
}

#[test]
fn adam_first_step_moves_each_weight_by_lr() {
    // With zero state, m_hat = g and v_hat = g^2, so the first step is lr * sign(g).
    let config = config(OptimizerSpec::default(), 0.0, 0.0);
    let history = run_graph(&config, [1.0, -2.0, 3.0], &[0.1]);
    assert_close(&history, &[vec![0.9, -1.9, 2.9]]);
}

#[test]
fn sgd_plain_momentum_and_nesterov_match_pytorch() {
    for (momentum, nesterov) in [(0.0, false), (0.9, false), (0.9, true)] {
        check(
            OptimizerSpec::Sgd {
                lr: 0.1,
                momentum,
                nesterov,
            },
            0.0,
            0.0,
        );
    }
}

#[test]
fn adam_adamw_and_rmsprop_match_pytorch() {
    check(OptimizerSpec::default(), 0.0, 0.0);
    check(
        OptimizerSpec::Adam {
            lr: 0.1,
            beta1: 0.8,
            beta2: 0.9,
            eps: 1e-3,
        },
        0.0,
        0.0,
    );
    check(
        OptimizerSpec::AdamW {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.1,
        },
        0.0,
        0.0,
    );
    check(
        OptimizerSpec::RmsProp {
            lr: 0.01,
            alpha: 0.99,
            eps: 1e-8,
        },
        0.0,
        0.0,
    );
}

#[test]
fn l1_and_l2_terms_enter_the_gradient() {
    let sgd = OptimizerSpec::Sgd {
        lr: 0.1,
        momentum: 0.0,
        nesterov: false,
    };
    check(sgd, 0.05, 0.0);
    check(sgd, 0.0, 0.2);
    check(OptimizerSpec::default(), 0.01, 0.01);
}

/// Cross entropy with label smoothing and ignored positions, and the correct count, against a
/// direct computation.
#[test]
fn cross_entropy_skips_ignored_positions_and_smooths() {
    let source = "model C {
    param w: f32[3] = zeros()
    forward(x: f32[B, T, 3]) -> f32[B, T, 3] { x + w }
}
";
    let eval = build_eval_graph(
        &forward(source),
        LossSpec::CrossEntropy {
            label_smoothing: 0.1,
        },
    )
    .unwrap();
    assert_eq!(eval.labels.dtype, DType::I64);
    let logits = [
        1.0f32, 2.0, 0.5, 0.0, -1.0, 3.0, 2.0, 2.5, -0.5, 0.3, 0.1, 0.2,
    ];
    let labels = [1i64, IGNORE_INDEX, 0, 2];
    let inputs = vec![
        Tensor::from_f32(vec![2, 2, 3], logits.to_vec()).unwrap(),
        Tensor::from_i64(vec![2, 2], labels.to_vec()).unwrap(),
        Tensor::from_f32(vec![3], vec![0.0; 3]).unwrap(),
    ];
    let outputs = evaluate(&eval.graph, &inputs, &HashMap::new()).unwrap();
    let mut total = 0.0f64;
    let mut count = 0.0;
    let mut correct = 0.0;
    for (row, &label) in logits.chunks(3).zip(&labels) {
        if label == IGNORE_INDEX {
            continue;
        }
        let max = row.iter().cloned().fold(f32::MIN, f32::max) as f64;
        let lse = row
            .iter()
            .map(|&v| (v as f64 - max).exp())
            .sum::<f64>()
            .ln()
            + max;
        let logp: Vec<f64> = row.iter().map(|&v| v as f64 - lse).collect();
        total += -0.9 * logp[label as usize] - 0.1 / 3.0 * logp.iter().sum::<f64>();
        count += 1.0;
        let argmax = (0..3).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
        if argmax as i64 == label {
            correct += 1.0;
        }
    }
    let loss = outputs[0].as_f32().unwrap()[0] as f64;
    assert!(
        (loss - total / count).abs() < 1e-5,
        "{loss} vs {}",
        total / count
    );
    assert_eq!(outputs[1].as_f32().unwrap()[0] as f64, correct);
}

#[test]
fn bce_with_logits_takes_targets_without_the_unit_axis() {
    let source = "model Bin {
    param w: f32[1] = zeros()
    forward(x: f32[B, 1]) -> f32[B, 1] { x + w }
}
";
    let eval = build_eval_graph(&forward(source), LossSpec::BceWithLogits).unwrap();
    assert_eq!(eval.labels.rank(), 1);
    let z = [2.0f32, -1.0, 0.5];
    let y = [1.0f32, 1.0, 0.0];
    let inputs = vec![
        Tensor::from_f32(vec![3, 1], z.to_vec()).unwrap(),
        Tensor::from_f32(vec![3], y.to_vec()).unwrap(),
        Tensor::from_f32(vec![1], vec![0.0]).unwrap(),
    ];
    let outputs = evaluate(&eval.graph, &inputs, &HashMap::new()).unwrap();
    let expected: f64 = z
        .iter()
        .zip(&y)
        .map(|(&z, &y)| {
            let (z, y) = (z as f64, y as f64);
            -(y * (1.0 / (1.0 + (-z).exp())).ln()
                + (1.0 - y) * (1.0 - 1.0 / (1.0 + (-z).exp())).ln())
        })
        .sum::<f64>()
        / 3.0;
    let loss = outputs[0].as_f32().unwrap()[0] as f64;
    assert!((loss - expected).abs() < 1e-5, "{loss} vs {expected}");
    assert_eq!(outputs[1].as_f32().unwrap()[0], 1.0);
}

#[test]
fn a_model_with_two_outputs_is_a_diagnostic() {
    let source = "model Two {
    param w: f32[3] = zeros()
    forward(x: f32[B, 3]) -> (f32[B, 3], f32[B, 3]) { (x + w, x * w) }
}
";
    let graph = forward(source);
    if graph.outputs.len() == 2 {
        let errors = build_eval_graph(&graph, LossSpec::Mse).unwrap_err();
        assert_eq!(errors[0].code, TRAIN_UNSUPPORTED);
    }
}

// ------------------------------------------------------------------ training mode: dropout

/// A graph `x -> dropout(rate) -> output` per rate (streams 0, 1, ...), with a seed input,
/// rewritten to training mode.
fn dropout_graph(length: usize, rates: &[f64]) -> Graph {
    let mut graph = Graph::new();
    let ty = TensorType::new(DType::F32, vec![crate::ir::Dim::constant(length as i64)]);
    let x = add_input(&mut graph, "x", ty.clone(), Span::DUMMY);
    let seed = add_input(
        &mut graph,
        "seed",
        TensorType::scalar(DType::I64),
        Span::DUMMY,
    );
    for &rate in rates {
        let dropped = graph.add(Op::Dropout { rate }, ty.clone(), Span::DUMMY, &[x]);
        graph.outputs.push(dropped);
    }
    assert_eq!(modes::activate_dropout(&mut graph, seed), rates.len());
    verify(&graph).unwrap();
    graph
}

fn run_dropout(graph: &Graph, length: usize, seed: i64) -> Vec<Vec<f32>> {
    let inputs = [
        Tensor::from_f32(vec![length], vec![1.0; length]).unwrap(),
        Tensor::from_i64(vec![], vec![seed]).unwrap(),
    ];
    evaluate(graph, &inputs, &HashMap::new())
        .unwrap()
        .into_iter()
        .map(|t| t.as_f32().unwrap().to_vec())
        .collect()
}

/// With 100,000 ones through two dropouts of rate 0.3: the same seed gives the same masks bit
/// for bit, another seed or another stream (dropout node) other masks; the kept fraction is
/// within 0.01 of 0.7 (its standard deviation is 0.0015) and each kept value is exactly
/// `1 / 0.7` in f32, each dropped one exactly 0.
#[test]
fn dropout_masks_are_seeded_reproducible_and_scaled() {
    let length = 100_000;
    let graph = dropout_graph(length, &[0.3, 0.3]);
    let first = run_dropout(&graph, length, 42);
    assert_eq!(first, run_dropout(&graph, length, 42));
    let other_seed = run_dropout(&graph, length, 43);
    assert_ne!(first[0], other_seed[0]);
    assert_ne!(first[0], first[1], "two dropout nodes draw different masks");
    let scale = (1.0 / (1.0 - 0.3f64)) as f32;
    for mask in first.iter().chain(&other_seed) {
        let kept = mask.iter().filter(|&&v| v != 0.0).count();
        let fraction = kept as f64 / length as f64;
        assert!((fraction - 0.7).abs() < 0.01, "kept fraction {fraction}");
        assert!(mask.iter().all(|&v| v == 0.0 || v == scale));
    }
    // Masks of different seeds or streams agree about as often as independent ones would
    // (0.7^2 + 0.3^2 = 0.58).
    let agreement = first[0]
        .iter()
        .zip(&first[1])
        .filter(|(a, b)| a == b)
        .count() as f64
        / length as f64;
    assert!((agreement - 0.58).abs() < 0.01, "agreement {agreement}");
}

#[test]
fn dropout_rate_zero_is_the_identity_and_rate_one_drops_everything() {
    let graph = dropout_graph(1000, &[0.0, 1.0]);
    assert!(graph
        .node_ids()
        .iter()
        .all(|id| !matches!(graph.node(*id).op, Op::RandomUniform { .. })));
    let outputs = run_dropout(&graph, 1000, 7);
    assert!(outputs[0].iter().all(|&v| v == 1.0));
    assert!(outputs[1].iter().all(|&v| v == 0.0));
}

#[test]
fn step_seeds_differ_per_step_and_run() {
    let seeds: Vec<i64> = (1..100).map(|step| step_seed(0, step)).collect();
    let distinct: std::collections::HashSet<i64> = seeds.iter().copied().collect();
    assert_eq!(distinct.len(), seeds.len());
    assert_ne!(step_seed(0, 1), step_seed(1, 1));
    assert_eq!(step_seed(5, 9), step_seed(5, 9));
}

/// The step graph has a `seed` input after `step`, and its dropout is active: two seeds give
/// two losses; the evaluation graph keeps dropout the identity.
#[test]
fn the_step_graph_takes_a_seed_and_the_eval_graph_has_no_randomness() {
    let source = "model M {
    param w: f32[8] = zeros()
    forward(x: f32[B, 8]) -> f32[B, 8] { dropout(x * w, 0.5) }
}
";
    let config = config(OptimizerSpec::default(), 0.0, 0.0);
    let step = build_step_graph(&forward(source), &config).unwrap();
    let seed = step.graph.inputs[step.seed_input()];
    assert!(matches!(&step.graph.node(seed).op, Op::Input { name, .. } if name == "seed"));
    assert_eq!(step.graph.inputs.len(), step.seed_input() + 1);
    let loss_for = |seed: i64| {
        let mut inputs = vec![
            Tensor::from_f32(vec![4, 8], (0..32).map(|i| i as f32).collect()).unwrap(),
            Tensor::from_f32(vec![4, 8], vec![0.0; 32]).unwrap(),
            Tensor::from_f32(vec![8], vec![1.0; 8]).unwrap(),
        ];
        inputs.extend((0..2).map(|_| Tensor::from_f32(vec![8], vec![0.0; 8]).unwrap()));
        inputs.push(Tensor::from_f32(vec![], vec![0.0]).unwrap());
        inputs.push(Tensor::from_f32(vec![], vec![1.0]).unwrap());
        inputs.push(Tensor::from_i64(vec![], vec![seed]).unwrap());
        let outputs = evaluate(&step.graph, &inputs, &HashMap::new()).unwrap();
        outputs[0].as_f32().unwrap()[0]
    };
    assert_eq!(loss_for(1), loss_for(1));
    assert_ne!(loss_for(1), loss_for(2));
    let eval = build_eval_graph(&forward(source), LossSpec::Mse).unwrap();
    for id in eval.graph.node_ids() {
        match &eval.graph.node(id).op {
            Op::RandomUniform { .. } => panic!("the evaluation graph draws random numbers"),
            Op::Input { name, .. } => assert_ne!(name, "seed"),
            _ => {}
        }
    }
}

// -------------------------------------------------------------- training mode: batch norm

/// The f64 reference of training-mode batch norm over axis 1 of an `[N, C, rest]` tensor:
/// the output with weight 1 and bias 0, the batch means and the unbiased batch variances.
fn batch_norm_reference(
    values: &[f32],
    shape: [usize; 3],
    eps: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let [n, c, rest] = shape;
    let at = |i: usize, k: usize, r: usize| f64::from(values[(i * c + k) * rest + r]);
    let count = (n * rest) as f64;
    let mut output = vec![0.0; values.len()];
    let mut means = Vec::new();
    let mut unbiased = Vec::new();
    for k in 0..c {
        let mut sum = 0.0;
        for i in 0..n {
            for r in 0..rest {
                sum += at(i, k, r);
            }
        }
        let mean = sum / count;
        let mut squares = 0.0;
        for i in 0..n {
            for r in 0..rest {
                squares += (at(i, k, r) - mean).powi(2);
            }
        }
        let variance = squares / count;
        for i in 0..n {
            for r in 0..rest {
                output[(i * c + k) * rest + r] = (at(i, k, r) - mean) / (variance + eps).sqrt();
            }
        }
        means.push(mean);
        unbiased.push(squares / (count - 1.0));
    }
    (output, means, unbiased)
}

/// `BatchNorm2d(3)` in training mode on a `[2, 3, 2, 2]` tensor: the output is normalized with
/// the batch statistics, the running mean and variance move by momentum 0.1 towards the batch
/// mean and the *unbiased* batch variance, the counter goes up by 1. Tolerance: 1e-5 absolute
/// (f32 against the f64 reference, values of order 1).
#[test]
fn batch_norm_training_uses_batch_statistics_and_updates_running_ones() {
    let source = "use std.nn.BatchNorm2d
model M {
    bn = BatchNorm2d(3)
    forward(x: f32[B, 3, 2, 2]) -> f32[B, 3, 2, 2] { bn(x) }
}
";
    let mut graph = forward(source);
    let updates = modes::use_batch_statistics(&mut graph);
    let by_name: HashMap<String, NodeId> = graph
        .params()
        .into_iter()
        .map(|(id, name)| (name.to_string(), id))
        .collect();
    for name in ["running_mean", "running_var", "num_batches_tracked"] {
        graph.outputs.push(updates[&by_name[&format!("bn.{name}")]]);
    }
    verify(&graph).unwrap();
    let values: Vec<f32> = (0..24)
        .map(|i| ((i * 7) % 11) as f32 * 0.5 - 2.0 + (i as f32) * 0.03)
        .collect();
    let params: HashMap<String, Tensor> = [
        ("bn.weight", Tensor::from_f32(vec![3], vec![1.0; 3])),
        ("bn.bias", Tensor::from_f32(vec![3], vec![0.0; 3])),
        (
            "bn.running_mean",
            Tensor::from_f32(vec![3], vec![0.5, -1.0, 0.0]),
        ),
        (
            "bn.running_var",
            Tensor::from_f32(vec![3], vec![1.0, 2.0, 0.5]),
        ),
        ("bn.num_batches_tracked", Tensor::from_i64(vec![], vec![4])),
    ]
    .into_iter()
    .map(|(name, tensor)| (name.to_string(), tensor.unwrap()))
    .collect();
    let x = Tensor::from_f32(vec![2, 3, 2, 2], values.clone()).unwrap();
    let outputs = evaluate(&graph, &[x], &params).unwrap();
    let (expected, means, unbiased) = batch_norm_reference(&values, [2, 3, 4], 1e-5);
    let close = |actual: &[f32], expected: &[f64]| {
        assert_eq!(actual.len(), expected.len());
        for (a, e) in actual.iter().zip(expected) {
            assert!((f64::from(*a) - e).abs() < 1e-5, "{a} vs {e}");
        }
    };
    close(outputs[0].as_f32().unwrap(), &expected);
    let running_mean: Vec<f64> = [0.5, -1.0, 0.0]
        .iter()
        .zip(&means)
        .map(|(r, m)| 0.9 * r + 0.1 * m)
        .collect();
    let running_var: Vec<f64> = [1.0, 2.0, 0.5]
        .iter()
        .zip(&unbiased)
        .map(|(r, v)| 0.9 * r + 0.1 * v)
        .collect();
    close(outputs[1].as_f32().unwrap(), &running_mean);
    close(outputs[2].as_f32().unwrap(), &running_var);
    assert_eq!(outputs[3].as_i64().unwrap(), &[5]);
}

/// Through the whole step graph, `BatchNorm1d(2)` on `[[1, 2], [3, 6], [5, 10]]` (hand
/// computed: batch means 3 and 6, biased variances 8/3 and 32/3, unbiased 4 and 16) with `mse`
/// against zeros and SGD at lr 1: the buffers are inputs and outputs but get no optimizer state;
/// the running mean becomes `0.1 * [3, 6] = [0.3, 0.6]`, the running variance
/// `0.9 + 0.1 * [4, 16] = [1.3, 2.5]`, the counter 1; the loss is `mean(y^2) = var / (var +
/// eps)` per channel and the weight moves by `d loss / d w = var / (var + eps)` (the bias
/// gradient is 0). Tolerance 1e-5.
#[test]
fn batch_norm_buffers_are_updated_by_the_step_not_by_the_optimizer() {
    let source = "use std.nn.BatchNorm1d
model M {
    bn = BatchNorm1d(2)
    forward(x: f32[B, 2]) -> f32[B, 2] { bn(x) }
}
";
    let config = config(
        OptimizerSpec::Sgd {
            lr: 1.0,
            momentum: 0.9,
            nesterov: false,
        },
        0.0,
        0.5,
    );
    let step = build_step_graph(&forward(source), &config).unwrap();
    let buffers: Vec<bool> = step.params.iter().map(|p| p.buffer).collect();
    assert_eq!(buffers, [false, false, true, true, true]);
    // Momentum state for the weight and the bias only.
    assert_eq!(step.state.len(), 2);
    assert!(step.state.iter().all(|slot| slot.param < 2));
    let mut inputs = vec![
        Tensor::from_f32(vec![3, 2], vec![1.0, 2.0, 3.0, 6.0, 5.0, 10.0]).unwrap(),
        Tensor::from_f32(vec![3, 2], vec![0.0; 6]).unwrap(),
        Tensor::from_f32(vec![2], vec![1.0, 1.0]).unwrap(),
        Tensor::from_f32(vec![2], vec![0.0, 0.0]).unwrap(),
        Tensor::from_f32(vec![2], vec![0.0, 0.0]).unwrap(),
        Tensor::from_f32(vec![2], vec![1.0, 1.0]).unwrap(),
        Tensor::from_i64(vec![], vec![0]).unwrap(),
    ];
    inputs.extend((0..2).map(|_| Tensor::from_f32(vec![2], vec![0.0; 2]).unwrap()));
    inputs.push(Tensor::from_f32(vec![], vec![1.0]).unwrap());
    inputs.push(Tensor::from_f32(vec![], vec![1.0]).unwrap());
    inputs.push(Tensor::from_i64(vec![], vec![3]).unwrap());
    let outputs = evaluate(&step.graph, &inputs, &HashMap::new()).unwrap();
    let close = |actual: &Tensor, expected: &[f64]| {
        for (a, e) in actual.as_f32().unwrap().iter().zip(expected) {
            assert!((f64::from(*a) - e).abs() < 1e-5, "{a} vs {e}");
        }
    };
    let eps = 1e-5;
    let ratios = [
        (8.0 / 3.0) / (8.0 / 3.0 + eps),
        (32.0 / 3.0) / (32.0 / 3.0 + eps),
    ];
    close(&outputs[0], &[(ratios[0] + ratios[1]) / 2.0]);
    // The L2 term (0.5 * sum(w^2)) applies to the weight and bias only and adds `w = 1` to the
    // weight's gradient: the first momentum step moves it by `ratio + 1`, to `-ratio`.
    close(&outputs[step.param_output(0)], &[-ratios[0], -ratios[1]]);
    close(&outputs[step.param_output(1)], &[0.0, 0.0]);
    close(&outputs[step.param_output(2)], &[0.3, 0.6]);
    close(&outputs[step.param_output(3)], &[1.3, 2.5]);
    assert_eq!(outputs[step.param_output(4)].as_i64().unwrap(), &[1]);
}
