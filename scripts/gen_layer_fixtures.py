#!/usr/bin/env python3
"""Independent numpy references for the recurrent, attention and Transformer layers of the stdlib
(plus Embedding, BatchNorm2d, positions, PatchEmbedding and GlobalAvgPool2d).

What it generates
-----------------
One safetensors file per case in ``tests/fixtures/layers/<case>.safetensors``, each holding:

* ``input.<name>``: the model's inputs, named after the ``forward`` parameters of the test
  model in ``tests/layer_fixtures.rs`` (which fixes their order);
* the model's params under their model param names (``lstm.weight_ih``,
  ``attn.q.weight``, ``encoder.ln1.bias``, ``bn.num_batches_tracked``, ...);
* ``output.<i>``: the model's expected outputs in order (a model returning a tuple has
  several), computed in float64 from the float32 inputs and params and then cast to float32.

The references are written from the textbook / PyTorch definitions, not from the ``.model``
code: the recurrences loop over time one step at a time with PyTorch's gate layouts
(RNN; LSTM gates i, f, g, o; GRU gates r, z, n with ``r * (W_hn h + b_hn)``), the reverse
direction walks the time axis backwards, and attention loops over batch and head with an
explicit per-query softmax in which causal and padded keys get ``-inf`` (every query keeps at
least one key, so this equals the stdlib's ``-1e9``). Sinusoidal positions follow the formula
``pe[t, 2i] = sin(t / 10000^(2i/d))``, ``pe[t, 2i+1] = cos(t / 10000^(2i/d))``; the patch
embedding cuts the image into patches explicitly and projects each one.

Every case draws from its own ``numpy.random.default_rng(seed)`` with a fixed seed, so the files
are reproducible byte for byte. Sizes are small and odd (B = 2 or 3, T = 5, hidden 6 or 7,
width 12 with 3 heads); each file is a few KB and all of them together stay far under 1 MB.

How to rerun
------------
From the repository root::

    .venv/bin/python scripts/gen_layer_fixtures.py

It needs only numpy and safetensors, rewrites every fixture, and prints each file's size.
"""

import math
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

OUT_DIR = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "layers"


# ------------------------------------------------------------------------------------ helpers
def f32(a):
    return np.array(a, dtype=np.float32, order="C", copy=True)


def normal(rng, shape, scale=1.0):
    return f32(rng.standard_normal(shape) * scale)


def uniform(rng, shape, bound):
    return f32(rng.uniform(-bound, bound, shape))


def d(a):
    """float64 copy of a float32 array: every reference computes in float64."""
    return np.asarray(a, dtype=np.float64)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def contiguous(a):
    """A C-contiguous copy that keeps 0-d arrays 0-d (np.ascontiguousarray makes them 1-d)."""
    return np.array(a, order="C", copy=True)


def save(case, inputs, params, outputs):
    tensors = {}
    for name, value in inputs.items():
        tensors[f"input.{name}"] = contiguous(value)
    for name, value in params.items():
        tensors[name] = contiguous(value)
    for i, value in enumerate(outputs):
        tensors[f"output.{i}"] = f32(value)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{case}.safetensors"
    save_file(tensors, str(path))
    print(f"{path.relative_to(OUT_DIR.parent.parent.parent)}: {path.stat().st_size} bytes")
    return path.stat().st_size


# -------------------------------------------------------------------------------- recurrences
def rnn_params(rng, prefix, gates, inputs, hidden, bidirectional):
    """PyTorch-layout recurrent params: weight_ih [gates*H, I], weight_hh [gates*H, H], biases."""
    bound = 1.0 / math.sqrt(hidden)
    params = {}
    suffixes = ["", "_reverse"] if bidirectional else [""]
    for suffix in suffixes:
        params[f"{prefix}.weight_ih{suffix}"] = uniform(rng, (gates * hidden, inputs), bound)
        params[f"{prefix}.weight_hh{suffix}"] = uniform(rng, (gates * hidden, hidden), bound)
        params[f"{prefix}.bias_ih{suffix}"] = uniform(rng, (gates * hidden,), bound)
        params[f"{prefix}.bias_hh{suffix}"] = uniform(rng, (gates * hidden,), bound)
    return params


def direction(params, prefix, suffix):
    return tuple(
        d(params[f"{prefix}.{name}{suffix}"])
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    )


def time_order(steps, backwards):
    return range(steps - 1, -1, -1) if backwards else range(steps)


def elman(x, h0, weights, nonlinearity, backwards=False):
    """h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh); returns (outputs [B, T, H], h_last)."""
    w_ih, w_hh, b_ih, b_hh = weights
    batch, steps, _ = x.shape
    act = np.tanh if nonlinearity == "tanh" else (lambda v: np.maximum(v, 0.0))
    outputs = np.zeros((batch, steps, w_hh.shape[0]))
    h = d(h0)
    for t in time_order(steps, backwards):
        h = act(x[:, t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh)
        outputs[:, t] = h
    return outputs, h


def lstm(x, h0, c0, weights, backwards=False):
    """PyTorch's LSTM cell, gates i, f, g, o; returns (outputs, h_last, c_last)."""
    w_ih, w_hh, b_ih, b_hh = weights
    hidden = w_hh.shape[1]
    batch, steps, _ = x.shape
    outputs = np.zeros((batch, steps, hidden))
    h, c = d(h0), d(c0)
    for t in time_order(steps, backwards):
        gates = x[:, t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh
        i = sigmoid(gates[:, 0 * hidden : 1 * hidden])
        f = sigmoid(gates[:, 1 * hidden : 2 * hidden])
        g = np.tanh(gates[:, 2 * hidden : 3 * hidden])
        o = sigmoid(gates[:, 3 * hidden : 4 * hidden])
        c = f * c + i * g
        h = o * np.tanh(c)
        outputs[:, t] = h
    return outputs, h, c


def gru(x, h0, weights, backwards=False):
    """PyTorch's GRU cell, gates r, z, n: n = tanh(W_in x + b_in + r * (W_hn h + b_hn))."""
    w_ih, w_hh, b_ih, b_hh = weights
    hidden = w_hh.shape[1]
    batch, steps, _ = x.shape
    outputs = np.zeros((batch, steps, hidden))
    h = d(h0)
    for t in time_order(steps, backwards):
        xi = x[:, t] @ w_ih.T + b_ih
        hh = h @ w_hh.T + b_hh
        r = sigmoid(xi[:, :hidden] + hh[:, :hidden])
        z = sigmoid(xi[:, hidden : 2 * hidden] + hh[:, hidden : 2 * hidden])
        n = np.tanh(xi[:, 2 * hidden :] + r * hh[:, 2 * hidden :])
        h = (1.0 - z) * n + z * h
        outputs[:, t] = h
    return outputs, h


def case_rnn(case, seed, nonlinearity, with_h0):
    rng = np.random.default_rng(seed)
    batch, steps, inputs, hidden = 3, 5, 4, 6
    x = normal(rng, (batch, steps, inputs))
    params = rnn_params(rng, "rnn", 1, inputs, hidden, False)
    h0 = normal(rng, (batch, hidden), 0.5) if with_h0 else np.zeros((batch, hidden), np.float32)
    outs, h = elman(d(x), h0, direction(params, "rnn", ""), nonlinearity)
    named = {"x": x, "h0": h0} if with_h0 else {"x": x}
    return save(case, named, params, [outs, h])


def case_lstm(case, seed, with_state):
    rng = np.random.default_rng(seed)
    batch, steps, inputs, hidden = 3, 5, 4, 6
    x = normal(rng, (batch, steps, inputs))
    params = rnn_params(rng, "lstm", 4, inputs, hidden, False)
    if with_state:
        h0 = normal(rng, (batch, hidden), 0.5)
        c0 = normal(rng, (batch, hidden), 1.0)
        named = {"x": x, "h0": h0, "c0": c0}
    else:
        h0 = c0 = np.zeros((batch, hidden), np.float32)
        named = {"x": x}
    outs, h, c = lstm(d(x), h0, c0, direction(params, "lstm", ""))
    return save(case, named, params, [outs, h, c])


def case_lstm_bidirectional(case, seed, with_state):
    rng = np.random.default_rng(seed)
    batch, steps, inputs, hidden = 2, 5, 4, 6
    x = normal(rng, (batch, steps, inputs))
    params = rnn_params(rng, "lstm", 4, inputs, hidden, True)
    if with_state:
        h0 = normal(rng, (2, batch, hidden), 0.5)
        c0 = normal(rng, (2, batch, hidden), 1.0)
        named = {"x": x, "h0": h0, "c0": c0}
    else:
        h0 = c0 = np.zeros((2, batch, hidden), np.float32)
        named = {"x": x}
    out_f, h_f, c_f = lstm(d(x), h0[0], c0[0], direction(params, "lstm", ""))
    out_b, h_b, c_b = lstm(d(x), h0[1], c0[1], direction(params, "lstm", "_reverse"), True)
    outputs = np.concatenate([out_f, out_b], axis=-1)
    h_n = np.stack([h_f, h_b])
    c_n = np.stack([c_f, c_b])
    return save(case, named, params, [outputs, h_n, c_n])


def case_gru(case, seed):
    rng = np.random.default_rng(seed)
    batch, steps, inputs, hidden = 3, 5, 4, 7
    x = normal(rng, (batch, steps, inputs))
    params = rnn_params(rng, "gru", 3, inputs, hidden, False)
    h0 = normal(rng, (batch, hidden), 0.5)
    outs, h = gru(d(x), h0, direction(params, "gru", ""))
    return save(case, {"x": x, "h0": h0}, params, [outs, h])


def case_gru_bidirectional(case, seed, with_state):
    rng = np.random.default_rng(seed)
    batch, steps, inputs, hidden = 2, 5, 4, 7
    x = normal(rng, (batch, steps, inputs))
    params = rnn_params(rng, "gru", 3, inputs, hidden, True)
    if with_state:
        h0 = normal(rng, (2, batch, hidden), 0.5)
        named = {"x": x, "h0": h0}
    else:
        h0 = np.zeros((2, batch, hidden), np.float32)
        named = {"x": x}
    out_f, h_f = gru(d(x), h0[0], direction(params, "gru", ""))
    out_b, h_b = gru(d(x), h0[1], direction(params, "gru", "_reverse"), True)
    outputs = np.concatenate([out_f, out_b], axis=-1)
    return save(case, named, params, [outputs, np.stack([h_f, h_b])])


# ---------------------------------------------------------------------------------- attention
def linear_params(rng, prefix, inputs, outputs):
    bound = 1.0 / math.sqrt(inputs)
    return {
        f"{prefix}.weight": uniform(rng, (outputs, inputs), bound),
        f"{prefix}.bias": uniform(rng, (outputs,), bound),
    }


def linear(params, prefix, x):
    return x @ d(params[f"{prefix}.weight"]).T + d(params[f"{prefix}.bias"])


def attention_params(rng, prefix, dim):
    params = {}
    for name in ("q", "k", "v", "out"):
        params.update(linear_params(rng, f"{prefix}.{name}", dim, dim))
    return params


def attention(params, prefix, x, heads, causal=False, key_padding=None):
    """Self-attention, one batch element, head and query at a time.

    key_padding: bool [B, T], true at keys to ignore. Ignored keys get -inf before the softmax.
    """
    batch, steps, dim = x.shape
    head_dim = dim // heads
    q = linear(params, f"{prefix}.q", x)
    k = linear(params, f"{prefix}.k", x)
    v = linear(params, f"{prefix}.v", x)
    context = np.zeros((batch, steps, dim))
    for b in range(batch):
        for head in range(heads):
            cols = slice(head * head_dim, (head + 1) * head_dim)
            for i in range(steps):
                scores = np.full(steps, -np.inf)
                for j in range(steps):
                    if causal and j > i:
                        continue
                    if key_padding is not None and key_padding[b, j]:
                        continue
                    scores[j] = q[b, i, cols] @ k[b, j, cols] / math.sqrt(head_dim)
                assert np.isfinite(scores).any(), "every query must keep a key"
                weights = np.exp(scores - scores.max())
                weights /= weights.sum()
                context[b, i, cols] = weights @ v[b, :, cols]
    return linear(params, f"{prefix}.out", context)


def case_mha(case, seed, causal, masked):
    rng = np.random.default_rng(seed)
    batch, steps, dim, heads = 2, 5, 12, 3
    x = normal(rng, (batch, steps, dim))
    params = attention_params(rng, "attn", dim)
    named = {"x": x}
    mask = None
    if masked:
        # Batch 0 pads its last two keys; batch 1 ignores a key in the middle. Key 0 is never
        # masked, so every query (causal ones included) keeps at least one key.
        mask = np.zeros((batch, steps), dtype=np.bool_)
        mask[0, 3:] = True
        mask[1, 2] = True
        named["mask"] = mask
    y = attention(params, "attn", d(x), heads, causal=causal, key_padding=mask)
    return save(case, named, params, [y])


def layer_norm_params(rng, prefix, dim):
    return {
        f"{prefix}.weight": f32(1.0 + 0.3 * rng.standard_normal(dim)),
        f"{prefix}.bias": normal(rng, (dim,), 0.2),
    }


def layer_norm(params, prefix, x, eps=1e-5):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    normalized = (x - mean) / np.sqrt(var + eps)
    return normalized * d(params[f"{prefix}.weight"]) + d(params[f"{prefix}.bias"])


def gelu_erf(x):
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def case_encoder_layer(case, seed):
    rng = np.random.default_rng(seed)
    batch, steps, dim, heads, hidden = 2, 5, 12, 3, 20
    x = normal(rng, (batch, steps, dim))
    params = attention_params(rng, "encoder.attn", dim)
    params.update(layer_norm_params(rng, "encoder.ln1", dim))
    params.update(linear_params(rng, "encoder.fc1", dim, hidden))
    params.update(linear_params(rng, "encoder.fc2", hidden, dim))
    params.update(layer_norm_params(rng, "encoder.ln2", dim))
    mask = np.zeros((batch, steps), dtype=np.bool_)
    mask[0, 4] = True
    mask[1, 1] = True
    mask[1, 3] = True
    # Post-norm: h = ln1(x + attn(x)); y = ln2(h + fc2(gelu(fc1(h)))), exact (erf) GELU.
    xd = d(x)
    h = layer_norm(params, "encoder.ln1", xd + attention(params, "encoder.attn", xd, heads, key_padding=mask))
    ff = linear(params, "encoder.fc2", gelu_erf(linear(params, "encoder.fc1", h)))
    y = layer_norm(params, "encoder.ln2", h + ff)
    return save(case, {"x": x, "mask": mask}, params, [y])


def case_decoder_block(case, seed):
    rng = np.random.default_rng(seed)
    batch, steps, dim, heads, hidden = 2, 5, 12, 3, 20
    x = normal(rng, (batch, steps, dim))
    params = layer_norm_params(rng, "block.ln1", dim)
    params.update(attention_params(rng, "block.attn", dim))
    params.update(layer_norm_params(rng, "block.ln2", dim))
    params.update(linear_params(rng, "block.fc1", dim, hidden))
    params.update(linear_params(rng, "block.fc2", hidden, dim))
    # Pre-norm, causal: x = x + attn(ln1(x)); x = x + fc2(gelu_tanh(fc1(ln2(x)))).
    xd = d(x)
    xd = xd + attention(params, "block.attn", layer_norm(params, "block.ln1", xd), heads, causal=True)
    y = xd + linear(params, "block.fc2", gelu_tanh(linear(params, "block.fc1", layer_norm(params, "block.ln2", xd))))
    return save(case, {"x": x}, params, [y])


# ------------------------------------------------------------------------------ other layers
def case_embedding(case, seed):
    rng = np.random.default_rng(seed)
    count, dim = 9, 5
    weight = normal(rng, (count, dim))
    ids = np.array([[0, 3, 8, 3, 1], [8, 0, 5, 7, 2]], dtype=np.int64)
    y = np.zeros(ids.shape + (dim,))
    for index in np.ndindex(ids.shape):
        y[index] = weight[ids[index]]
    return save(case, {"ids": ids}, {"emb.weight": weight}, [y])


def case_batchnorm2d(case, seed):
    rng = np.random.default_rng(seed)
    batch, channels, height, width = 2, 3, 5, 4
    x = normal(rng, (batch, channels, height, width), 2.0)
    params = {
        "bn.weight": f32([1.5, -0.7, 0.3]),
        "bn.bias": f32([0.2, -1.1, 0.05]),
        "bn.running_mean": f32([0.4, -0.9, 1.7]),
        "bn.running_var": f32([0.25, 2.3, 0.8]),
        "bn.num_batches_tracked": np.array(123, dtype=np.int64),
    }
    eps = 1e-5
    y = np.zeros(x.shape)
    for c in range(channels):
        mean = d(params["bn.running_mean"][c])
        var = d(params["bn.running_var"][c])
        gamma = d(params["bn.weight"][c])
        beta = d(params["bn.bias"][c])
        y[:, c] = (d(x[:, c]) - mean) / math.sqrt(var + eps) * gamma + beta
    return save(case, {"x": x}, params, [y])


def case_learned_positions(case, seed):
    rng = np.random.default_rng(seed)
    batch, steps, length, dim = 2, 5, 7, 6
    x = normal(rng, (batch, steps, dim))
    weight = normal(rng, (length, dim), 0.5)
    y = d(x).copy()
    for t in range(steps):
        y[:, t] += weight[t]
    return save(case, {"x": x}, {"pos.weight": weight}, [y])


def case_sinusoidal_positions(case, seed):
    rng = np.random.default_rng(seed)
    batch, steps, dim = 2, 11, 10
    x = normal(rng, (batch, steps, dim))
    pe = np.zeros((steps, dim))
    for t in range(steps):
        for i in range(dim // 2):
            angle = t / 10000.0 ** (2 * i / dim)
            pe[t, 2 * i] = math.sin(angle)
            pe[t, 2 * i + 1] = math.cos(angle)
    return save(case, {"x": x}, {}, [d(x) + pe])


def case_patch_embedding(case, seed):
    rng = np.random.default_rng(seed)
    batch, channels, height, width, dim, patch = 2, 3, 6, 4, 5, 2
    x = normal(rng, (batch, channels, height, width))
    fan_in = channels * patch * patch
    weight = uniform(rng, (dim, channels, patch, patch), 1.0 / math.sqrt(fan_in))
    bias = uniform(rng, (dim,), 1.0 / math.sqrt(fan_in))
    rows, cols = height // patch, width // patch
    y = np.zeros((batch, rows * cols, dim))
    for b in range(batch):
        for r in range(rows):
            for c in range(cols):
                piece = d(x[b, :, r * patch : (r + 1) * patch, c * patch : (c + 1) * patch])
                for o in range(dim):
                    y[b, r * cols + c, o] = (piece * d(weight[o])).sum() + bias[o]
    params = {"patches.projection.weight": weight, "patches.projection.bias": bias}
    return save(case, {"x": x}, params, [y])


def case_global_avg_pool2d(case, seed):
    rng = np.random.default_rng(seed)
    batch, channels, height, width = 3, 4, 5, 3
    x = normal(rng, (batch, channels, height, width), 1.0)
    y = np.zeros((batch, channels))
    for b in range(batch):
        for c in range(channels):
            y[b, c] = sum(d(x[b, c, i, j]) for i in range(height) for j in range(width)) / (height * width)
    return save(case, {"x": x}, {}, [y])


def main():
    total = 0
    total += case_rnn("rnn_tanh", 101, "tanh", with_h0=False)
    total += case_rnn("rnn_relu", 102, "relu", with_h0=True)
    total += case_lstm("lstm_zero_state", 103, with_state=False)
    total += case_lstm("lstm_initial_state", 104, with_state=True)
    total += case_lstm_bidirectional("lstm_bidirectional", 105, with_state=False)
    total += case_lstm_bidirectional("lstm_bidirectional_initial_state", 106, with_state=True)
    total += case_gru("gru_initial_state", 107)
    total += case_gru_bidirectional("gru_bidirectional", 108, with_state=False)
    total += case_gru_bidirectional("gru_bidirectional_initial_state", 109, with_state=True)
    total += case_mha("mha_plain", 110, causal=False, masked=False)
    total += case_mha("mha_causal", 111, causal=True, masked=False)
    total += case_mha("mha_mask", 112, causal=False, masked=True)
    total += case_mha("mha_causal_mask", 113, causal=True, masked=True)
    total += case_encoder_layer("encoder_layer_mask", 114)
    total += case_decoder_block("decoder_block", 115)
    total += case_embedding("embedding", 116)
    total += case_batchnorm2d("batchnorm2d", 117)
    total += case_learned_positions("learned_positions", 118)
    total += case_sinusoidal_positions("sinusoidal_positions", 119)
    total += case_patch_embedding("patch_embedding", 120)
    total += case_global_avg_pool2d("global_avg_pool2d", 121)
    print(f"total: {total} bytes")
    assert total < 1_000_000


if __name__ == "__main__":
    main()
