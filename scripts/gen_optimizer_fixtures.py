#!/usr/bin/env python3
"""Writes tests/fixtures/optimizers/steps.json: optimizer updates computed with numpy alone.

The model is a linear layer `y = x @ weight + bias` (weight [4, 3], bias [3]) with the mean
squared error against fixed targets, so the gradient is exact and closed-form:
    r = x @ weight + bias - target          (N x 3)
    d weight = 2 / (N * 3) * x.T @ r,  d bias = 2 / (N * 3) * r.sum(0)
Each optimizer takes five steps with a changing learning rate (the step graph's `lr` input),
following PyTorch's documented update rules (torch.optim.SGD with momentum/nesterov, Adam,
AdamW, RMSprop), in float64. tests/optimizer_fixtures.rs runs modelc's step graph from the same
start and compares. Run: python3 scripts/gen_optimizer_fixtures.py (needs numpy).
"""
import json
import os

import numpy as np

rng = np.random.default_rng(20261128)
N = 5
x = rng.standard_normal((N, 4))
target = rng.standard_normal((N, 3))
weight0 = rng.standard_normal((4, 3))
bias0 = rng.standard_normal(3)
lrs = [0.1, 0.05, 0.1, 0.02, 0.08]

OPTIMIZERS = {
    "sgd": dict(kind="sgd", momentum=0.0, nesterov=False),
    "momentum": dict(kind="sgd", momentum=0.9, nesterov=False),
    "nesterov": dict(kind="sgd", momentum=0.9, nesterov=True),
    "adam": dict(kind="adam", beta1=0.9, beta2=0.999, eps=1e-8),
    "adamw": dict(kind="adamw", beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1),
    "rmsprop": dict(kind="rmsprop", alpha=0.99, eps=1e-8),
}


def gradients(weight, bias):
    residual = x @ weight + bias - target
    scale = 2.0 / residual.size
    return scale * x.T @ residual, scale * residual.sum(axis=0)


def run(spec):
    params = [weight0.copy(), bias0.copy()]
    first = [np.zeros_like(p) for p in params]
    second = [np.zeros_like(p) for p in params]
    steps = []
    for index, lr in enumerate(lrs):
        t = index + 1
        grads = gradients(*params)
        for i, (p, g) in enumerate(zip(params, grads)):
            if spec["kind"] == "sgd":
                if spec["momentum"] == 0.0:
                    p -= lr * g
                else:
                    first[i] = g.copy() if t == 1 else spec["momentum"] * first[i] + g
                    d = g + spec["momentum"] * first[i] if spec["nesterov"] else first[i]
                    p -= lr * d
            elif spec["kind"] in ("adam", "adamw"):
                if spec["kind"] == "adamw":
                    p *= 1.0 - lr * spec["weight_decay"]
                first[i] = spec["beta1"] * first[i] + (1 - spec["beta1"]) * g
                second[i] = spec["beta2"] * second[i] + (1 - spec["beta2"]) * g * g
                c1 = 1 - spec["beta1"] ** t
                c2 = 1 - spec["beta2"] ** t
                p -= lr / c1 * first[i] / (np.sqrt(second[i]) / np.sqrt(c2) + spec["eps"])
            elif spec["kind"] == "rmsprop":
                first[i] = spec["alpha"] * first[i] + (1 - spec["alpha"]) * g * g
                p -= lr * g / (np.sqrt(first[i]) + spec["eps"])
        steps.append({"weight": params[0].ravel().tolist(), "bias": params[1].tolist()})
    return steps


fixture = {
    "x": x.ravel().tolist(),
    "target": target.ravel().tolist(),
    "weight": weight0.ravel().tolist(),
    "bias": bias0.tolist(),
    "lrs": lrs,
    "optimizers": {name: {"spec": spec, "steps": run(spec)} for name, spec in OPTIMIZERS.items()},
}
path = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "optimizers", "steps.json")
with open(path, "w") as f:
    json.dump(fixture, f, indent=1)
print(f"wrote {os.path.normpath(path)}")
