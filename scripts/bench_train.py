#!/usr/bin/env python3
"""Training throughput of modelc against JAX on the CPU, written into docs/performance.md.

Run with the peers' virtual environment (it has jax and numpy):

    /work/peers-venv/bin/python scripts/bench_train.py [--epochs 8] [--threads 1]
                                                       [--out docs/performance.md] [--no-build]

Models (the same architecture, batch size, optimizer and data shapes on both sides):
  - digits MLP (`examples/digits_mlp.model`): 64 -> 64 relu -> 10, cross-entropy, Adam lr 3e-3,
    batch 32;
  - digits CNN (`examples/digits_cnn.model`, LeNet-style): conv 1->16 3x3 pad 1, relu, max pool 2,
    conv 16->32 3x3 pad 1, relu, max pool 2, flatten, 128 -> 64 relu, (dropout: the identity in
    modelc's step graph, so left out), 64 -> 10; cross-entropy with label smoothing 0.05, AdamW
    lr 3e-3 weight decay 1e-4, batch 64; the learning rate comes in as an input of each step on
    both sides (modelc computes its cosine schedule outside the step graph too).

Both train on the 1438 training images of the 0.8 split of `examples/data/digits.csv.gz`, reshuffled
every epoch, in batches of the block's size with the remainder as a last smaller batch (as
`modelc train` does), one optimizer step per batch; an epoch's samples/s is 1438 divided by the
wall time of its steps (batch gathering included, validation excluded on both sides).

  - modelc: `modelc train <model> --epochs N --metrics <csv> -o <tmp>`, samples_per_second per epoch
    from the metrics CSV (runtime/src/train/mod.rs EpochMetrics); the first epoch is warm-up.
  - JAX: `jax.jit` of a step function (`jax.value_and_grad` of the loss, then Adam/AdamW in
    jax.numpy; no optax), on the CPU backend (JAX_PLATFORMS=cpu). One warm-up epoch compiles both
    batch shapes; each timed epoch ends with `block_until_ready` on the params.

The figure per side is the median over the timed epochs. Threads: modelc uses its rayon pool (one
thread per core unless RAYON_NUM_THREADS says otherwise); JAX uses XLA's CPU client (its intra-op
thread pool spans the cores). With --threads 1 both are limited to one thread (RAYON_NUM_THREADS=1;
XLA_FLAGS=--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1).

The report replaces only its own section ("Training throughput") of the output file; see
perf_doc.py. A modelc run that fails is reported as failed with its error; no figure is made up.
"""
import argparse
import csv
import datetime
import gzip
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from perf_doc import write_section  # noqa: E402

DATA = os.path.join(REPO, "examples", "data", "digits.csv.gz")
MODELS = {
    "mlp": {"title": "digits MLP (64-64-10, Adam)", "file": "examples/digits_mlp.model", "batch": 32},
    "cnn": {"title": "digits CNN (LeNet-style, AdamW)", "file": "examples/digits_cnn.model", "batch": 64},
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def loadavg():
    try:
        with open("/proc/loadavg") as fh:
            return " ".join(fh.read().split()[:3])
    except OSError:
        return "?"


# ----------------------------------------------------------------------------- modelc
def run_modelc(modelc, model, epochs, env, commands):
    with tempfile.TemporaryDirectory(prefix="bench_train-") as tmp:
        metrics = os.path.join(tmp, "metrics.csv")
        argv = [modelc, "train", MODELS[model]["file"], "--epochs", str(epochs), "--metrics", metrics,
                "-o", os.path.join(tmp, "weights.safetensors")]
        commands.append(shlex.join(argv).replace(tmp, "<tmp>"))
        log("$ " + shlex.join(argv))
        try:
            p = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
        except OSError as e:
            return {"error": f"{type(e).__name__}: {e}"}
        if p.returncode != 0:
            return {"error": (p.stderr.strip() or p.stdout.strip() or f"exit {p.returncode}")[-500:]}
        try:
            with open(metrics) as fh:
                rows = list(csv.DictReader(fh))
            rates = [float(r["samples_per_second"]) for r in rows]
        except (OSError, KeyError, ValueError) as e:
            return {"error": f"no usable metrics CSV: {e}"}
    if len(rates) < 2:
        return {"error": f"{len(rates)} epochs in the metrics CSV; need at least 2"}
    timed = rates[1:]
    return {"median": statistics.median(timed), "epochs": timed, "warmup": rates[0]}


# ----------------------------------------------------------------------------- JAX
def load_digits():
    import numpy as np
    with gzip.open(DATA, "rt") as fh:
        rows = [line.strip().split(",") for line in fh if line.strip()]
    try:
        float(rows[0][0])
    except ValueError:
        rows = rows[1:]  # a header
    table = np.asarray(rows, dtype=np.float64)
    x, y = table[:, :64].astype(np.float32), table[:, 64].astype(np.int32)
    # The 0.8 split's size (which images does not matter for throughput), standardized features.
    order = np.random.default_rng(0).permutation(len(x))
    n_train = int(round(len(x) * 0.8))
    x, y = x[order[:n_train]], y[order[:n_train]]
    x = (x - x.mean(0)) / np.maximum(x.std(0), 1e-6)
    return x, y


def jax_model(model, jax, jnp):
    """(init params, logits function, label smoothing, weight decay)."""
    key = jax.random.PRNGKey(0)
    keys = jax.random.split(key, 8)

    def uniform(k, shape, fan_in):
        bound = 1.0 / (fan_in ** 0.5)
        return jax.random.uniform(k, shape, jnp.float32, -bound, bound)

    if model == "mlp":
        params = {"w1": uniform(keys[0], (64, 64), 64), "b1": uniform(keys[1], (64,), 64),
                  "w2": uniform(keys[2], (64, 10), 64), "b2": uniform(keys[3], (10,), 64)}

        def logits(p, x):
            h = jax.nn.relu(x @ p["w1"] + p["b1"])
            return h @ p["w2"] + p["b2"]

        return params, logits, 0.0, 0.0

    params = {"c1": uniform(keys[0], (16, 1, 3, 3), 9), "cb1": uniform(keys[1], (16,), 9),
              "c2": uniform(keys[2], (32, 16, 3, 3), 144), "cb2": uniform(keys[3], (32,), 144),
              "w1": uniform(keys[4], (128, 64), 128), "b1": uniform(keys[5], (64,), 128),
              "w2": uniform(keys[6], (64, 10), 64), "b2": uniform(keys[7], (10,), 64)}

    def conv(x, w, b):
        y = jax.lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)),
                                         dimension_numbers=("NCHW", "OIHW", "NCHW"))
        return y + b[None, :, None, None]

    def pool(x):
        return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

    def logits(p, x):
        x = x.reshape(x.shape[0], 1, 8, 8)
        x = pool(jax.nn.relu(conv(x, p["c1"], p["cb1"])))
        x = pool(jax.nn.relu(conv(x, p["c2"], p["cb2"])))
        x = x.reshape(x.shape[0], -1)
        x = jax.nn.relu(x @ p["w1"] + p["b1"])
        return x @ p["w2"] + p["b2"]

    return params, logits, 0.05, 1e-4


def run_jax(model, epochs, x, y):
    import jax
    import jax.numpy as jnp
    import numpy as np

    params, logits, smoothing, weight_decay = jax_model(model, jax, jnp)
    beta1, beta2, eps = 0.9, 0.999, 1e-8

    def loss_fn(p, xb, yb):
        logp = jax.nn.log_softmax(logits(p, xb))
        nll = -jnp.take_along_axis(logp, yb[:, None], axis=1)[:, 0]
        loss = (1.0 - smoothing) * nll - smoothing * logp.mean(axis=1)
        correct = (jnp.argmax(logp, axis=1) == yb).sum()
        return loss.mean(), correct

    @jax.jit
    def step(p, m, v, xb, yb, lr, t):
        (loss, correct), g = jax.value_and_grad(loss_fn, has_aux=True)(p, xb, yb)

        def update(pi, gi, mi, vi):
            pi = pi * (1.0 - lr * weight_decay)  # AdamW's decoupled decay (0 for Adam)
            mi = beta1 * mi + (1.0 - beta1) * gi
            vi = beta2 * vi + (1.0 - beta2) * gi * gi
            mhat = mi / (1.0 - beta1 ** t)
            vhat = vi / (1.0 - beta2 ** t)
            return pi - lr * mhat / (jnp.sqrt(vhat) + eps), mi, vi

        out = {k: update(p[k], g[k], m[k], v[k]) for k in p}
        return ({k: o[0] for k, o in out.items()}, {k: o[1] for k, o in out.items()},
                {k: o[2] for k, o in out.items()}, loss, correct)

    m = {k: jnp.zeros_like(a) for k, a in params.items()}
    v = {k: jnp.zeros_like(a) for k, a in params.items()}
    batch = MODELS[model]["batch"]
    rng = np.random.default_rng(0)
    state = {"p": params, "m": m, "v": v, "t": 0}

    def epoch():
        order = rng.permutation(len(x))
        started = time.perf_counter()
        losses = []
        for start in range(0, len(x), batch):
            idx = order[start:start + batch]
            state["t"] += 1
            p, mm, vv, loss, _ = step(state["p"], state["m"], state["v"], x[idx], y[idx],
                                      np.float32(3e-3), np.float32(state["t"]))
            state["p"], state["m"], state["v"] = p, mm, vv
            losses.append(loss)
        jax.block_until_ready(state["p"])
        seconds = time.perf_counter() - started
        return len(x) / seconds, float(jnp.mean(jnp.stack(losses)))

    warmup, _ = epoch()  # compiles both batch shapes
    rates, last_loss = [], None
    for _ in range(epochs):
        rate, last_loss = epoch()
        rates.append(rate)
    return {"median": statistics.median(rates), "epochs": rates, "warmup": warmup, "loss": last_loss,
            "jax": jax.__version__, "backend": jax.default_backend()}


# ----------------------------------------------------------------------------- report
def build_report(ctx):
    L = []
    w = L.append
    w("## Training throughput")
    w("")
    w(f"Written by `scripts/bench_train.py` on {ctx['date']} (git `{ctx['git']}`): training steps per")
    w("second as samples/s, modelc's `train` against a `jax.jit` step (`jax.value_and_grad`, Adam/AdamW")
    w("in jax.numpy) on the same model, batch size, optimizer and data shapes; median of the timed")
    w("epochs (1438 samples each: the 0.8 split of the digits, the remainder as a last smaller batch;")
    w("the first epoch of each side is warm-up). Higher is better; ratio = modelc / JAX.")
    w("")
    w(f"Machine: {ctx['cpu']}, {ctx['cores']} cores; load average {ctx['load_before']} before, "
      f"{ctx['load_after']} after. Threads: {ctx['threads_text']}. JAX {ctx.get('jax', '?')} "
      f"({ctx.get('backend', '?')} backend).")
    w("")
    w("| model | batch | modelc samples/s | JAX samples/s | ratio |")
    w("|---|---|---|---|---|")
    for r in ctx["rows"]:
        mc, jx = r["modelc"], r["jax"]
        a = "failed" if "error" in mc else f"{mc['median']:,.0f}"
        b = "failed" if "error" in jx else f"{jx['median']:,.0f}"
        ratio = "-" if "error" in mc or "error" in jx else f"{mc['median'] / jx['median']:.2f}"
        w(f"| {r['title']} | {r['batch']} | {a} | {b} | {ratio} |")
    w("")
    w("Every timed epoch (samples/s), to judge the spread:")
    w("")
    for r in ctx["rows"]:
        for side in ("modelc", "jax"):
            d = r[side]
            text = d["error"] if "error" in d else ", ".join(f"{e:,.0f}" for e in d["epochs"]) + \
                f" (warm-up epoch {d['warmup']:,.0f})"
            if "loss" in d:
                text += f"; mean training loss of the last epoch {d['loss']:.4f}"
            w(f"- {r['model']} {side}: {text}")
    w("")
    w("Commands of this run:")
    w("")
    w("```")
    w("$ " + ctx["invocation"])
    for c in ctx["commands"]:
        w(c)
    w("```")
    w("")
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=8, help="timed epochs per side (plus one warm-up)")
    ap.add_argument("--only", default="", help="comma-separated: mlp,cnn (default both)")
    ap.add_argument("--threads", type=int, default=0, help="1: one thread on both sides (default: all cores)")
    ap.add_argument("--out", default=os.path.join(REPO, "docs", "performance.md"))
    ap.add_argument("--no-build", action="store_true", help="use the modelc release build already there")
    ap.add_argument("--modelc", help="the modelc binary (implies --no-build)")
    args = ap.parse_args()
    if args.threads not in (0, 1):
        sys.exit("--threads takes 1 (or 0: all cores)")
    models = [m for m in MODELS if not args.only or m in args.only.split(",")]

    env = dict(os.environ)
    env["JAX_PLATFORMS"] = "cpu"
    cores = os.cpu_count()
    if args.threads == 1:
        env["RAYON_NUM_THREADS"] = "1"
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                            " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()
        threads_text = "1 on each side (RAYON_NUM_THREADS=1; XLA_FLAGS=--xla_cpu_multi_thread_eigen=false " \
                       "intra_op_parallelism_threads=1)"
    else:
        rayon = env.get("RAYON_NUM_THREADS")
        threads_text = (f"modelc {rayon or cores} (rayon pool{'' if rayon else ', one per core'}), "
                        f"JAX/XLA CPU client default (its thread pool spans the {cores} cores)")
    # JAX reads these at import: set them in this process before importing it.
    os.environ.update({k: env[k] for k in ("JAX_PLATFORMS", "XLA_FLAGS") if k in env})

    commands = []
    invocation = shlex.join([sys.executable, os.path.relpath(os.path.abspath(sys.argv[0]), REPO)] + sys.argv[1:])
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    if args.modelc:
        modelc = os.path.abspath(args.modelc)
    else:
        if not args.no_build:
            commands.append("cargo build --release")
            log("$ cargo build --release")
            p = subprocess.run(["cargo", "build", "--release"], cwd=REPO, capture_output=True, text=True)
            if p.returncode != 0:
                sys.exit("cargo build --release failed:\n" + p.stderr[-3000:])
        modelc = os.path.join(target, "release", "modelc")
    git = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True)
    ctx = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "git": git.stdout.strip() or "?", "cpu": cpu_model(), "cores": cores, "load_before": loadavg(),
           "threads_text": threads_text, "commands": commands, "invocation": invocation, "rows": []}
    x, y = load_digits()
    for model in models:
        mc = run_modelc(modelc, model, args.epochs + 1, env, commands)
        log(f"  modelc {model}: " + (mc["error"] if "error" in mc else f"{mc['median']:,.0f} samples/s"))
        try:
            jx = run_jax(model, args.epochs, x, y)
            ctx["jax"], ctx["backend"] = jx["jax"], jx["backend"]
        except Exception as e:  # noqa: BLE001 - reported, not hidden
            jx = {"error": f"{type(e).__name__}: {e}"[-500:]}
        log(f"  JAX {model}: " + (jx["error"] if "error" in jx else f"{jx['median']:,.0f} samples/s"))
        ctx["rows"].append({"model": model, "title": MODELS[model]["title"], "batch": MODELS[model]["batch"],
                            "modelc": mc, "jax": jx})
    ctx["load_after"] = loadavg()
    commands.append(f"(in this process) JAX: {args.epochs + 1} epochs per model, the first one warm-up")
    text = build_report(ctx).replace(REPO + os.sep, "")
    write_section(args.out, "bench_train", text)
    log(f"wrote {args.out}")
    print(text)


if __name__ == "__main__":
    main()
