#!/usr/bin/env python3
"""Numpy reference fixtures for every layer and function of stdlib v0.

What it generates
-----------------
One safetensors file per case in ``tests/fixtures/stdlib/<case>.safetensors``, each holding:

* ``input.<name>``: the model's inputs, by the names of the ``forward`` parameters (every
  case here has one input, ``input.x``);
* the model's params under their model param names (``fc.weight``, ``conv.bias``, ...);
* ``output``: the expected output, computed in float64 from the float32 inputs and params and
  then cast to float32.

``tests/stdlib_fixtures.rs`` holds the ``.model`` source of each case and checks the reference
interpreter against these files. The references are deliberately independent of the
interpreter: convolution and pooling are plain nested loops, everything else is direct numpy
(the exact GELU uses ``math.erf`` vectorized). No PyTorch is needed; the conventions followed
are PyTorch's (OIHW conv weights, ``y = x @ W.T + b``, floor output sizes, max pooling padded
with -inf, average pooling with ``count_include_pad=True``, LayerNorm with biased variance).

Every case draws from its own ``numpy.random.default_rng(seed)`` with a fixed seed, so the
files are reproducible byte for byte. Sizes are odd (7, 5, 3) and files are a few KB each.

How to rerun
------------
From the repository root::

    .venv/bin/python scripts/gen_stdlib_fixtures.py

It needs only numpy and safetensors, rewrites every fixture, and prints each file's size.
"""

import math
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

OUT_DIR = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "stdlib"


# ------------------------------------------------------------------------------------ helpers
def f32(a):
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


def normal(rng, shape, scale=1.0, shift=0.0):
    return f32(rng.standard_normal(shape) * scale + shift)


def uniform(rng, shape, low, high):
    return f32(rng.uniform(low, high, shape))


def torch_like_uniform(rng, shape, fan_in):
    """PyTorch's default Linear/Conv init range, U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)
    return uniform(rng, shape, -bound, bound)


def d(a):
    """The float64 copy a reference computes with."""
    return np.asarray(a, dtype=np.float64)


# --------------------------------------------------------------------------------- references
def ref_linear(x, weight, bias):
    y = d(x) @ d(weight).T
    return y if bias is None else y + d(bias)


def ref_conv2d(x, weight, bias, stride=1, padding=0, dilation=1, groups=1):
    """NCHW input, OIHW weight; a straightforward loop over every output element."""
    x, weight = d(x), d(weight)
    n, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    assert c == cg * groups and o % groups == 0
    og = o // groups
    oh = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    ow = (w + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    out = np.zeros((n, o, oh, ow))
    for b in range(n):
        for oc in range(o):
            g = oc // og
            for i in range(oh):
                for j in range(ow):
                    acc = 0.0 if bias is None else float(bias[oc])
                    for ic in range(cg):
                        channel = g * cg + ic
                        for p in range(kh):
                            row = i * stride - padding + p * dilation
                            if not 0 <= row < h:
                                continue
                            for q in range(kw):
                                col = j * stride - padding + q * dilation
                                if not 0 <= col < w:
                                    continue
                                acc += x[b, channel, row, col] * weight[oc, ic, p, q]
                    out[b, oc, i, j] = acc
    return out


def ref_pool2d(x, kind, kernel, stride=None, padding=0):
    """Max pooling pads with -inf; average pooling divides by kernel*kernel, padded cells
    included (PyTorch's count_include_pad=True). Floor output sizes (ceil_mode=False)."""
    stride = kernel if stride is None else stride
    x = d(x)
    n, c, h, w = x.shape
    oh = (h + 2 * padding - kernel) // stride + 1
    ow = (w + 2 * padding - kernel) // stride + 1
    out = np.zeros((n, c, oh, ow))
    for b in range(n):
        for ch in range(c):
            for i in range(oh):
                for j in range(ow):
                    cells = []
                    for p in range(kernel):
                        for q in range(kernel):
                            row = i * stride - padding + p
                            col = j * stride - padding + q
                            inside = 0 <= row < h and 0 <= col < w
                            if kind == "max":
                                cells.append(x[b, ch, row, col] if inside else -math.inf)
                            else:
                                cells.append(x[b, ch, row, col] if inside else 0.0)
                    if kind == "max":
                        out[b, ch, i, j] = max(cells)
                    else:
                        out[b, ch, i, j] = sum(cells) / (kernel * kernel)
    return out


_erf = np.vectorize(math.erf, otypes=[np.float64])


def ref_gelu(x):
    x = d(x)
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def ref_gelu_tanh(x):
    x = d(x)
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def ref_sigmoid(x):
    x = d(x)
    return 1.0 / (1.0 + np.exp(-x))


def ref_softmax(x, axis):
    x = d(x)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def ref_log_softmax(x, axis):
    x = d(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def ref_layer_norm(x, weight, bias, eps=1e-5):
    x = d(x)
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)  # biased, as torch
    return (x - mean) / np.sqrt(var + eps) * d(weight) + d(bias)


# -------------------------------------------------------------------------------------- cases
# Each case: (name, seed, builder). A builder takes an rng and returns (inputs, params, output).
CASES = []


def case(name, seed):
    def register(builder):
        CASES.append((name, seed, builder))
        return builder

    return register


@case("linear", 101)
def _(rng):
    x = normal(rng, (3, 7))
    w, b = torch_like_uniform(rng, (5, 7), 7), torch_like_uniform(rng, (5,), 7)
    return {"x": x}, {"fc.weight": w, "fc.bias": b}, ref_linear(x, w, b)


@case("linear_no_bias", 102)
def _(rng):
    x = normal(rng, (3, 7))
    w = torch_like_uniform(rng, (5, 7), 7)
    return {"x": x}, {"fc.weight": w}, ref_linear(x, w, None)


@case("linear_rank3", 103)
def _(rng):
    x = normal(rng, (2, 3, 7))
    w, b = torch_like_uniform(rng, (5, 7), 7), torch_like_uniform(rng, (5,), 7)
    return {"x": x}, {"fc.weight": w, "fc.bias": b}, ref_linear(x, w, b)


def conv_case(rng, x_shape, outputs, kernel, bias=True, groups=1, **attrs):
    x = normal(rng, x_shape)
    cg = x_shape[1] // groups
    fan_in = cg * kernel * kernel
    w = torch_like_uniform(rng, (outputs, cg, kernel, kernel), fan_in)
    params = {"conv.weight": w}
    b = None
    if bias:
        b = torch_like_uniform(rng, (outputs,), fan_in)
        params["conv.bias"] = b
    return {"x": x}, params, ref_conv2d(x, w, b, groups=groups, **attrs)


@case("conv2d_basic", 201)
def _(rng):
    return conv_case(rng, (2, 3, 7, 5), 4, 3)


@case("conv2d_stride2_pad1", 202)
def _(rng):
    return conv_case(rng, (2, 3, 7, 5), 4, 3, stride=2, padding=1)


@case("conv2d_1x1", 203)
def _(rng):
    return conv_case(rng, (2, 3, 7, 5), 5, 1)


@case("conv2d_5x5_pad2", 204)
def _(rng):
    return conv_case(rng, (1, 3, 7, 5), 4, 5, padding=2)


@case("conv2d_groups2", 205)
def _(rng):
    return conv_case(rng, (2, 4, 7, 5), 6, 3, groups=2, padding=1)


@case("conv2d_dilation2", 206)
def _(rng):
    return conv_case(rng, (2, 3, 7, 9), 4, 3, dilation=2, padding=1)


@case("conv2d_no_bias", 207)
def _(rng):
    return conv_case(rng, (2, 3, 7, 5), 4, 3, bias=False, padding=1)


@case("maxpool2d_k2", 301)
def _(rng):
    x = normal(rng, (2, 3, 7, 5))
    return {"x": x}, {}, ref_pool2d(x, "max", 2)


@case("maxpool2d_k3_s2_p1", 302)
def _(rng):
    # Shifted negative so that some border windows hold only negative values: a zero-padded
    # (instead of -inf padded) max pool would get those wrong.
    x = normal(rng, (2, 3, 7, 5), scale=2.0, shift=-1.5)
    return {"x": x}, {}, ref_pool2d(x, "max", 3, stride=2, padding=1)


@case("avgpool2d_k2", 303)
def _(rng):
    x = normal(rng, (2, 3, 7, 5))
    return {"x": x}, {}, ref_pool2d(x, "avg", 2)


@case("avgpool2d_k3_s1_p1", 304)
def _(rng):
    x = normal(rng, (2, 3, 7, 5), shift=1.0)
    return {"x": x}, {}, ref_pool2d(x, "avg", 3, stride=1, padding=1)


@case("flatten", 401)
def _(rng):
    x = normal(rng, (2, 3, 7, 5))
    return {"x": x}, {}, d(x).reshape(2, -1)


@case("relu", 402)
def _(rng):
    x = normal(rng, (3, 7, 5), scale=3.0)
    return {"x": x}, {}, np.maximum(d(x), 0.0)


@case("gelu", 403)
def _(rng):
    x = uniform(rng, (3, 7, 5), -6.0, 6.0)
    return {"x": x}, {}, ref_gelu(x)


@case("gelu_tanh", 404)
def _(rng):
    x = uniform(rng, (3, 7, 5), -6.0, 6.0)
    return {"x": x}, {}, ref_gelu_tanh(x)


@case("sigmoid", 405)
def _(rng):
    x = uniform(rng, (3, 7, 5), -30.0, 30.0)
    return {"x": x}, {}, ref_sigmoid(x)


@case("tanh", 406)
def _(rng):
    x = uniform(rng, (3, 7, 5), -10.0, 10.0)
    return {"x": x}, {}, np.tanh(d(x))


@case("softmax_last", 501)
def _(rng):
    x = uniform(rng, (3, 5, 7), -50.0, 50.0)
    return {"x": x}, {}, ref_softmax(x, -1)


@case("softmax_axis1", 502)
def _(rng):
    x = uniform(rng, (3, 5, 7), -50.0, 50.0)
    return {"x": x}, {}, ref_softmax(x, 1)


@case("softmax_overflow", 503)
def _(rng):
    # exp(x) overflows float32 past ~88.7: only the max-subtracted form survives these.
    x = uniform(rng, (3, 7), 80.0, 120.0)
    return {"x": x}, {}, ref_softmax(x, -1)


@case("log_softmax", 504)
def _(rng):
    x = uniform(rng, (3, 5, 7), -50.0, 50.0)
    return {"x": x}, {}, ref_log_softmax(x, -1)


@case("layer_norm_fn", 601)
def _(rng):
    x = normal(rng, (2, 3, 7), scale=3.0, shift=2.0)
    w, b = normal(rng, (7,), scale=0.5, shift=1.0), normal(rng, (7,), scale=0.5)
    return {"x": x}, {"weight": w, "bias": b}, ref_layer_norm(x, w, b)


@case("layer_norm_layer", 602)
def _(rng):
    x = normal(rng, (2, 3, 7), scale=3.0, shift=-2.0)
    w, b = normal(rng, (7,), scale=0.5, shift=1.0), normal(rng, (7,), scale=0.5)
    return {"x": x}, {"norm.weight": w, "norm.bias": b}, ref_layer_norm(x, w, b)


@case("dropout", 701)
def _(rng):
    x = normal(rng, (3, 7, 5))
    return {"x": x}, {}, d(x)


@case("global_avg_pool2d", 702)
def _(rng):
    x = normal(rng, (2, 3, 7, 5), shift=0.5)
    return {"x": x}, {}, d(x).mean(axis=(2, 3))


# --------------------------------------------------------------------------------------- main
def main():
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    total = 0
    for name, seed, builder in CASES:
        inputs, params, output = builder(np.random.default_rng(seed))
        tensors = {f"input.{k}": f32(v) for k, v in inputs.items()}
        for k, v in params.items():
            assert k not in tensors and k != "output"
            tensors[k] = f32(v)
        tensors["output"] = f32(output)
        path = OUT_DIR / f"{name}.safetensors"
        # One metadata key only: safetensors writes the metadata map in hash order, so several
        # keys would make the files differ from run to run.
        metadata = {"source": f"scripts/gen_stdlib_fixtures.py case={name} seed={seed}"}
        save_file(tensors, str(path), metadata=metadata)
        size = path.stat().st_size
        total += size
        print(f"{path.relative_to(OUT_DIR.parent.parent.parent)}: {size} bytes, output {list(output.shape)}")
    print(f"{len(CASES)} cases, {total} bytes in all")


if __name__ == "__main__":
    main()
