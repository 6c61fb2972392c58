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
