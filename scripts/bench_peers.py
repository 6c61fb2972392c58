#!/usr/bin/env python3
"""Benchmark modelc against its peers (ONNX Runtime, JAX/XLA, tract) and write docs/performance.md.

Run with the peers' virtual environment (it has numpy and safetensors, and peers.py needs it):

    python3 -m venv /work/peers-venv
    /work/peers-venv/bin/pip install -r ../shared/peers/requirements.txt
    /work/peers-venv/bin/python scripts/bench_peers.py [--only mlp,gpt] [--min-time 2.5]
                                                       [--out docs/performance.md] [--no-build]

Steps, in one invocation so every engine sees similar machine conditions:
  1. `cargo build --release` (unless --no-build or --modelc), then
     `cargo bench --bench gemm_peak -- --json` (unless --no-gemm; with --no-build, the gemm_peak
     executable already built, when there is one): the one-core FMA peak, gemm::gemm and modelc's
     packed-weight kernel at 512^3.
  2. Model by model: `modelc bench examples/peers/<m>.model --weights <peers>/models/<m>.safetensors
     --input <name>=<input.b<B> extracted to a .npy> --backend cpu --min-time T --json` for each
     of the peers' batch sizes, then `peers.py --only <m> --out-dir <tmp> --min-time T`.
  3. Writes the report as its own section of the file (see perf_doc.py: the sections of other
     scripts, e.g. bench_train.py's training throughput, are kept), atomically: a temporary file
     in the same folder, then a rename.

A modelc run that exits non-zero, or prints no usable JSON, is reported as "failed" with its
error; no figure is ever made up. Outputs are not checked here (tests/parity_peers.rs does).
"""
import argparse
import datetime
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from perf_doc import write_section  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_PEERS = os.path.normpath(os.path.join(REPO, "..", "shared", "peers"))
# The peers' models and batch sizes (peers.py BATCHES), in peers.py's order.
BATCHES = {"mlp": (1, 64), "lenet": (1, 64), "convnet": (1, 16), "lstm": (1, 16),
           "encoder": (1, 8), "gpt": (1,)}
INPUT_NAME = {"gpt": "ids"}  # every other model's input is `x`
PEERS = (("ort", "ORT 2 threads"), ("ort1", "ORT 1 thread"), ("jax", "JAX/XLA"), ("tract", "tract"))
GPT_COMPILE_TARGET_MS = 50.0
GEMM_TARGET_FRACTION = 0.85
HZ = os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------------- machine
def cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def loadavg():
    try:
        with open("/proc/loadavg") as fh:
            return " ".join(fh.read().split()[:3])
    except OSError:
        return "?"


def machine_busy_s():
    """CPU seconds spent by the whole machine (all processes), from /proc/stat."""
    with open("/proc/stat") as fh:
        v = [int(t) for t in fh.readline().split()[1:9]]
    return (sum(v) - v[3] - v[4]) / HZ


def own_cpu_s():
    """CPU seconds of this process and its waited-for children."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def other_load(seconds):
    """Cores kept busy by other processes over `seconds` (this process sleeps)."""
    b0, c0, w0 = machine_busy_s(), own_cpu_s(), time.perf_counter()
    time.sleep(seconds)
    return max(0.0, (machine_busy_s() - b0 - (own_cpu_s() - c0)) / (time.perf_counter() - w0))


def wait_idle(max_wait):
    """Wait (up to max_wait s) until other processes use < 0.15 cores; return the last reading."""
    t0 = time.perf_counter()
    load = other_load(1.0)
    while load > 0.15 and time.perf_counter() - t0 < max_wait:
        log(f"  other processes keep {load:.2f} cores busy; waiting for an idle machine")
        time.sleep(4)
        load = other_load(1.0)
    return load


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- running things
class Runner:
    """Runs commands, recording each exactly, and how busy other processes kept the machine."""

    def __init__(self):
        self.commands = []

    def run(self, argv, cwd=REPO, timeout=None, record=True):
        if record:
            self.commands.append(shlex.join(argv) if cwd == REPO else f"(cd {shlex.quote(cwd)} && {shlex.join(argv)})")
        log("$ " + shlex.join(argv))
        b0, c0, w0 = machine_busy_s(), own_cpu_s(), time.perf_counter()
        try:
            p = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
            rc, out, err = p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired as e:
            rc, out, err = None, _text(e.stdout), _text(e.stderr) + f"\ntimed out after {timeout} s"
        except OSError as e:
            rc, out, err = None, "", f"{type(e).__name__}: {e}"
        wall = time.perf_counter() - w0
        others = max(0.0, (machine_busy_s() - b0 - (own_cpu_s() - c0)) / wall) if wall > 0 else 0.0
        return rc, out, err, {"wall_s": wall, "other_procs_cores": others}


def _text(b):
    if b is None:
        return ""
    return b.decode(errors="replace") if isinstance(b, bytes) else b


def last_json_object(text):
    """The last line of `text` that parses as a JSON object, or None."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                v = json.loads(line)
            except ValueError:
                continue
            if isinstance(v, dict):
                return v
    # a pretty-printed object spanning several lines
    try:
        v = json.loads(text)
        return v if isinstance(v, dict) else None
    except ValueError:
        return None


def error_text(rc, err, out=""):
    lines = [ln for ln in (err or out or "").strip().splitlines() if ln.strip()]
    tail = " / ".join(lines[-3:]) if lines else "(no output)"
    status = "timed out or could not start" if rc is None else f"exit {rc}"
    return f"{status}: {tail}"[:400]


def cargo_target_dir(runner):
    rc, out, err, _ = runner.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], record=False)
    if rc == 0:
        try:
            return json.loads(out)["target_directory"]
        except (ValueError, KeyError):
            pass
    return os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target")


# ----------------------------------------------------------------------------- modelc
def run_modelc(runner, modelc, model, batch, args, peers_dir, tmp):
    import numpy as np
    from safetensors.numpy import load_file

    weights = os.path.join(peers_dir, "models", f"{model}.safetensors")
    io = load_file(os.path.join(peers_dir, "models", f"{model}.io.safetensors"))
    key = f"input.b{batch}"
    if key not in io:
        return {"error": f"{key} is not in {model}.io.safetensors"}
    npy = os.path.join(tmp, f"{model}.{key}.npy")
    np.save(npy, np.ascontiguousarray(io[key]))
    name = INPUT_NAME.get(model, "x")
    argv = [modelc, "bench", os.path.relpath(os.path.join(REPO, "examples", "peers", f"{model}.model"), REPO),
            "--weights", weights, "--input", f"{name}={npy}", "--backend", "cpu",
            "--min-time", f"{args.min_time:g}", "--json"]
    rc, out, err, cond = runner.run(argv, timeout=args.timeout)
    r = {"other_procs_cores": cond["other_procs_cores"], "wall_s": cond["wall_s"]}
    if rc != 0:
        r["error"] = error_text(rc, err, out)
        return r
    j = last_json_object(out)
    if j is None:
        r["error"] = "exit 0 but no JSON object on stdout: " + (out.strip()[-200:] or "(empty)")
        return r
    r["json"] = j
    median = (j.get("latency_ms") or {}).get("median")
    if not isinstance(median, (int, float)) or median <= 0:
        r["error"] = "JSON has no positive latency_ms.median"
    return r


# ----------------------------------------------------------------------------- peers
def run_peers(runner, model, args, peers_dir, tmp, skip_numpy):
    out_dir = os.path.join(tmp, f"peers-{model}")
    os.makedirs(out_dir, exist_ok=True)
    argv = [args.python, os.path.join(peers_dir, "peers.py"), "--out-dir", out_dir, "--only", model,
            "--min-time", f"{args.min_time:g}"]
    if args.wait_idle > 0:
        argv += ["--wait-idle", f"{args.wait_idle:g}"]
    if skip_numpy:
        argv.append("--skip-numpy")
    rc, out, err, _ = runner.run(argv, timeout=args.timeout * 10)
    path = os.path.join(out_dir, "results.json")
    if rc != 0 or not os.path.exists(path):
        return {"error": error_text(rc, err, out)}
    with open(path) as fh:
        return json.load(fh)


# ----------------------------------------------------------------------------- gemm_peak
def run_gemm(runner, no_build, target_dir):
    """`cargo bench --bench gemm_peak -- --json`; with --no-build, the newest gemm_peak executable
    already built (cargo would rebuild it whenever the runtime changed), if there is one."""
    argv = ["cargo", "bench", "--bench", "gemm_peak", "--", "--json"]
    if no_build:
        deps = os.path.join(target_dir, "release", "deps")
        exes = [os.path.join(deps, f) for f in (os.listdir(deps) if os.path.isdir(deps) else [])
                if f.startswith("gemm_peak-") and "." not in f and os.access(os.path.join(deps, f), os.X_OK)]
        if exes:
            argv = [max(exes, key=os.path.getmtime), "--bench", "--json"]
    rc, out, err, cond = runner.run(argv, timeout=1800)
    if rc != 0:
        return {"error": error_text(rc, err, out)}
    j = last_json_object(out)
    if j is None:
        return {"error": "no JSON line from gemm_peak: " + out.strip()[-200:]}
    j["other_procs_cores"] = cond["other_procs_cores"]
    return j


# ----------------------------------------------------------------------------- report
def cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def ms(v):
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:.1f}"
    if v >= 10:
        return f"{v:.2f}"
    return f"{v:.3f}"


def ratio(a, b):
    if a is None or b is None or b <= 0:
        return None
    return a / b


def verdict(r):
    return "-" if r is None else ("met" if r <= 1.0 else "missed")


def fmt_ratio(r, mark=False):
    if r is None:
        return "-"
    return f"{r:.2f}" + (f" ({verdict(r)})" if mark else "")


def peer_ms(row, eng):
    d = (row or {}).get(eng) or {}
    return d.get("median_ms")


def peer_cell(row, eng):
    if row is None:
        return "failed: peers.py did not run"
    d = row.get(eng) or {}
    if "median_ms" in d:
        return ms(d["median_ms"])
    return "failed: " + cell(d.get("error", "no result"))[:200]


def build_report(ctx):
    args, rows, gemm, peers_runs = ctx["args"], ctx["rows"], ctx["gemm"], ctx["peers_runs"]
    L = []
    w = L.append
    w("# Performance: modelc against its peers")
    w("")
    w("Written by `scripts/bench_peers.py`; every figure of this part (up to the training")
    w("throughput, which `scripts/bench_train.py` writes) comes from one run of it. Latencies are")
    w("medians of repeated runs on this machine; compare the ratios, not the absolute figures, with other")
    w("machines. A ratio is modelc's time divided by the peer's: **at most 1.0 means modelc is at least as")
    w("fast**. Rows that failed say so; no figure is filled in by hand.")
    w("")
    w(f"- Date: {ctx['date']}")
    w(f"- Machine: {ctx['cpu']}, {os.cpu_count()} cores ({platform.system()} {platform.release()})")
    w(f"- Load average (1, 5, 15 min): {ctx['load_before']} before, {ctx['load_after']} after")
    w(f"- Cores kept busy by other processes: {ctx['others_before']:.2f} at the start, "
      f"{ctx['others_after']:.2f} at the end; per run in the details table")
    busy = max([ctx["others_before"], ctx["others_after"], ctx["gemm"].get("other_procs_cores", 0)]
               + [r["modelc"].get("other_procs_cores", 0) for r in ctx["rows"]]
               + [(r["peer"] or {}).get(e, {}).get("other_procs_cores", 0) for r in ctx["rows"] for e, _ in PEERS])
    if busy > 0.3:
        w(f"- **Warning: other processes kept up to {busy:.2f} cores busy during this run; the figures are "
          "disturbed (modelc and the peers alike, but not necessarily equally).**")
    w(f"- modelc: `{ctx['git']}`; timed runs per engine and configuration: {args.min_time:g} s")
    vers = next((p.get("versions") for p in peers_runs.values() if isinstance(p, dict) and p.get("versions")), None)
    if vers:
        w("- Peers: " + ", ".join(f"{k} {v}" for k, v in vers.items()))
    sett = next((p.get("settings") for p in peers_runs.values() if isinstance(p, dict) and p.get("settings")), None)
    if sett:
        w(f"- ONNX Runtime: {sett.get('ort')}; JAX: {sett.get('jax')}; tract: {sett.get('tract')}")
    threads = sorted({str(r["modelc"]["json"].get("threads")) for r in rows if "json" in r["modelc"]})
    if threads:
        w(f"- modelc bench: CPU backend, threads reported: {', '.join(threads)}")
    w("")

    # ---- steady latency
    w("## Steady latency (median ms)")
    w("")
    w("Headline: modelc against ONNX Runtime with 2 threads. Ratio = modelc / peer.")
    w("")
    w("The last column divides the fastest runs (modelc `latency_ms.min` / ORT 2 threads `min_ms`): on a")
    w("shared machine it is the better estimate of what an idle one would show; the targets use medians.")
    w("")
    w("| model | B | modelc | ORT 2 threads | **modelc / ORT 2** | ORT 1 thread | modelc / ORT 1 "
      "| JAX/XLA | modelc / JAX | tract | modelc / tract | min / ORT 2 min |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        m = r["modelc"]
        mm = None if "error" in m else m["json"]["latency_ms"]["median"]
        mcell = ms(mm) if mm is not None else "failed: " + cell(m["error"])
        cells = [r["model"], str(r["batch"]), mcell]
        for eng, _ in PEERS:
            p = peer_ms(r["peer"], eng)
            rr = ratio(mm, p)
            cells += [peer_cell(r["peer"], eng), ("**" + fmt_ratio(rr, True) + "**") if eng == "ort" and rr
                      else fmt_ratio(rr, eng == "ort")]
        mmin = None if "error" in m else (m["json"].get("latency_ms") or {}).get("min")
        cells.append(fmt_ratio(ratio(mmin, ((r["peer"] or {}).get("ort") or {}).get("min_ms"))))
        w("| " + " | ".join(cells) + " |")
    w("")

    # ---- compile time
    w("## Compile time (ms)")
    w("")
    w("modelc: `compile_ms.total` of `modelc bench` (parse to runnable code). Peers: ONNX Runtime session")
    w("creation, JAX's first call minus its steady median (trace and XLA compile), tract load and optimize.")
    w("Ratio = modelc / peer.")
    w("")
    w("| model | B | modelc | modelc phases | ORT session | modelc / ORT | JAX compile | modelc / JAX "
      "| tract load | modelc / tract |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        m = r["modelc"]
        comp = (m.get("json") or {}).get("compile_ms") or {}
        total = comp.get("total") if "error" not in m else None
        phases = ", ".join(f"{k} {ms(v)}" for k, v in comp.items() if k != "total" and isinstance(v, (int, float)))
        peer = r["peer"] or {}
        sec = lambda eng, key: (peer.get(eng) or {}).get(key)  # noqa: E731
        ort, jax, tract = sec("ort", "session_create_s"), sec("jax", "compile_s"), sec("tract", "load_optimize_s")
        ort, jax, tract = (None if v is None else v * 1e3 for v in (ort, jax, tract))
        w("| " + " | ".join([r["model"], str(r["batch"]),
                             ms(total) if total is not None else "failed" if "error" in m else "-",
                             phases or "-", ms(ort), fmt_ratio(ratio(total, ort)), ms(jax),
                             fmt_ratio(ratio(total, jax)), ms(tract), fmt_ratio(ratio(total, tract))]) + " |")
    w("")

    # ---- gemm
    w("## GEMM against the machine's peak")
    w("")
    one = None
    if "error" in gemm:
        w(f"`cargo bench --bench gemm_peak -- --json` failed: {cell(gemm['error'])}")
    elif gemm.get("skipped"):
        w("Not run (`--no-gemm`).")
    else:
        peak = gemm.get("fma_peak_1core") or {}
        if peak.get("available"):
            w(f"One-core f32 FMA peak ({peak.get('chains')} independent chains of AVX2 FMAs): "
              f"{peak['gflops_median']:.1f} GFLOP/s median, **{peak['gflops_best']:.1f} best** (the peak used below).")
        else:
            w(f"One-core FMA peak: not measured ({peak.get('why', '?')}).")
        w("")
        w("| 512³ f32 product | median ms | GFLOP/s median | GFLOP/s best | median / peak | best / peak |")
        w("|---|---|---|---|---|---|")
        for g in gemm.get("gemm", []):
            frac = g.get("fraction_of_peak")
            fracb = g.get("fraction_of_peak_best")
            pk = f"{g['threads']} x peak" if g["threads"] > 1 else "peak"
            kernel = "modelc packed weight" if g.get("kernel") == "packed" else "gemm::gemm"
            w(f"| {kernel}, {g['threads']} thread{'s' if g['threads'] > 1 else ''} | {ms(g['median_ms'])} | "
              f"{g['gflops_median']:.1f} | {g['gflops_best']:.1f} | "
              f"{'-' if frac is None else f'{frac * 100:.1f}% of {pk}'} | "
              f"{'-' if fracb is None else f'{fracb * 100:.1f}%'} |")
            if g["threads"] == 1 and g.get("kernel", "gemm") == "gemm":
                one = g
        nb = next((p.get("numpy_blas") for p in peers_runs.values() if isinstance(p, dict) and p.get("numpy_blas")),
                  None)
        if nb and "sizes" in nb and "512" in nb["sizes"]:
            s = nb["sizes"]["512"]
            libs = [f"{d.get('internal_api')} {d.get('version')} ({d.get('num_threads')} threads)"
                    for d in nb.get("threadpoolctl", []) if d.get("user_api") == "blas"]
            w("")
            w(f"For reference, numpy's BLAS ({', '.join(libs) or '?'}) at 512³ in the same run: "
              f"{s['gflops']:.1f} GFLOP/s median, {s['best_gflops']:.1f} best.")
        w("")
        w(f"Other processes kept {gemm.get('other_procs_cores', 0):.2f} cores busy during the GEMM benchmark.")
    w("")

    # ---- targets
    w("## Targets")
    w("")
    w("| target | result | status |")
    w("|---|---|---|")
    ok_rows = [r for r in rows if "error" not in r["modelc"]]
    failed = [r for r in rows if "error" in r["modelc"]]
    head = [(r, ratio(r["modelc"]["json"]["latency_ms"]["median"], peer_ms(r["peer"], "ort"))) for r in ok_rows]
    met = [x for x in head if x[1] is not None and x[1] <= 1.0]
    known = [x for x in head if x[1] is not None]
    worst = max(known, key=lambda x: x[1]) if known else None
    status = "met" if known and len(met) == len(rows) else "missed"
    detail = f"{len(met)} of {len(rows)} rows ≤ 1.0"
    if worst:
        detail += f"; worst {worst[0]['model']} B={worst[0]['batch']} at {worst[1]:.2f}"
    if failed:
        detail += f"; {len(failed)} failed"
    w(f"| modelc / ORT 2 threads ≤ 1.0 on every row (headline) | {detail} | **{status}** |")
    mins = [ratio((r["modelc"]["json"].get("latency_ms") or {}).get("min"),
                  ((r["peer"] or {}).get("ort") or {}).get("min_ms")) for r in ok_rows]
    n_min = sum(1 for x in mins if x is not None and x <= 1.0)
    w(f"| (for information) the same on the fastest runs | {n_min} of {len(rows)} rows ≤ 1.0"
      f"{'' if not any(mins) else f'; worst {max(x for x in mins if x is not None):.2f}'} | "
      f"{'met' if n_min == len(rows) else 'missed'} |")
    for eng, title in PEERS[1:]:
        rs = [ratio(r["modelc"]["json"]["latency_ms"]["median"], peer_ms(r["peer"], eng)) for r in ok_rows]
        n_ok = sum(1 for x in rs if x is not None and x <= 1.0)
        st = "met" if n_ok == len(rows) else "missed"
        wr = max((x for x in rs if x is not None), default=None)
        w(f"| modelc / {title} ≤ 1.0 on every row | {n_ok} of {len(rows)} rows ≤ 1.0"
          f"{'' if wr is None else f'; worst {wr:.2f}'} | {st} |")
    gpt = next((r for r in rows if r["model"] == "gpt"), None)
    if gpt is None:
        w(f"| gpt compile < {GPT_COMPILE_TARGET_MS:g} ms | not run (`--only`) | - |")
    else:
        t = None if "error" in gpt["modelc"] else (gpt["modelc"]["json"].get("compile_ms") or {}).get("total")
        w(f"| gpt compile < {GPT_COMPILE_TARGET_MS:g} ms | "
          f"{'failed' if t is None else f'{t:.1f} ms'} | {'missed' if t is None or t >= GPT_COMPILE_TARGET_MS else 'met'} |")
    one_packed = next((g for g in (gemm.get("gemm") or []) if g.get("kernel") == "packed" and g["threads"] == 1),
                      None) if isinstance(gemm, dict) else None
    for label, fig in (("gemm::gemm", one), ("modelc packed weight", one_packed)):
        if fig is not None and fig.get("fraction_of_peak") is not None:
            f = fig["fraction_of_peak"]
            w(f"| GEMM 512³ on one core ≥ {GEMM_TARGET_FRACTION:.0%} of the measured FMA peak ({label}) | "
              f"{f * 100:.1f}% (median; best run {fig['fraction_of_peak_best'] * 100:.1f}%) | "
              f"{'met' if f >= GEMM_TARGET_FRACTION else 'missed'} |")
        else:
            w(f"| GEMM 512³ on one core ≥ {GEMM_TARGET_FRACTION:.0%} of the measured FMA peak ({label}) | "
              f"not measured | - |")
    w("")

    # ---- details
    w("## Details of the modelc runs")
    w("")
    w("| model | B | threads | p10 ms | p90 ms | min ms | iterations | arena bytes | peak RSS bytes "
      "| other cores busy (modelc / peers max) |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        m = r["modelc"]
        j = m.get("json") or {}
        lat = j.get("latency_ms") or {}
        po = [(r["peer"] or {}).get(e, {}).get("other_procs_cores") for e, _ in PEERS]
        po = [x for x in po if x is not None]
        w("| " + " | ".join([r["model"], str(r["batch"]), str(j.get("threads", "-")), ms(lat.get("p10")),
                             ms(lat.get("p90")), ms(lat.get("min")), str(j.get("iterations", "-")),
                             str(j.get("arena_bytes", "-")), str(j.get("peak_rss_bytes", "-")),
                             f"{m.get('other_procs_cores', 0):.2f} / {max(po) if po else 0:.2f}"]) + " |")
    if failed:
        w("")
        w("Failures:")
        w("")
        for r in failed:
            w(f"- {r['model']} B={r['batch']}: `{r['modelc']['error']}`")
    for model, p in peers_runs.items():
        if isinstance(p, dict) and "error" in p:
            w(f"- peers.py --only {model}: `{p['error']}`")
    w("")

    # ---- commands
    w("## Commands of this run")
    w("")
    w("In this order (the `.npy` inputs are `input.b<B>` of the peers' `<model>.io.safetensors`, extracted")
    w("to a temporary folder; peers.py wrote into a temporary `--out-dir`):")
    w("")
    w("```")
    w("$ " + ctx["invocation"])
    for c in ctx["commands"]:
        w(c)
    w("```")
    w("")
    w("## How to reproduce")
    w("")
    w("```")
    w("python3 -m venv /work/peers-venv")
    w("/work/peers-venv/bin/pip install -r ../shared/peers/requirements.txt")
    w("/work/peers-venv/bin/python scripts/bench_peers.py            # all models; writes docs/performance.md")
    w("/work/peers-venv/bin/python scripts/bench_peers.py --only mlp,gpt --min-time 1 --out /tmp/perf.md")
    w("cargo bench --bench gemm_peak                                 # the GEMM figures alone")
    w("```")
    w("")
    w("Options: `--no-build` (use the existing release builds of modelc and gemm_peak), `--modelc PATH`, `--no-gemm`,")
    w("`--wait-idle SECONDS` (wait for other processes to go idle before each model; peers.py gets it too),")
    w("`--peers-dir` (default `../shared/peers`), `--json-out PATH` (every raw figure). Run it on an idle")
    w("machine: the load averages and the other-process columns above say how idle this one was.")
    w("")
    return "\n".join(L)


def write_atomic(path, text):
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".perf-", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ----------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="", help="comma-separated model names (default: all six)")
    ap.add_argument("--min-time", type=float, default=2.5, help="seconds of timed runs per engine and batch")
    ap.add_argument("--out", default=os.path.join(REPO, "docs", "performance.md"))
    ap.add_argument("--no-build", action="store_true", help="use the modelc and gemm_peak already built (no cargo build)")
    ap.add_argument("--modelc", help="the modelc binary (implies --no-build)")
    ap.add_argument("--no-gemm", action="store_true", help="skip cargo bench --bench gemm_peak")
    ap.add_argument("--peers-dir", default=DEFAULT_PEERS)
    ap.add_argument("--python", default=sys.executable, help="python that runs peers.py (default: this one)")
    ap.add_argument("--wait-idle", type=float, default=0.0,
                    help="wait up to this many seconds for other processes to go idle before each model")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per modelc bench run")
    ap.add_argument("--json-out", help="also write every raw figure to this JSON file")
    args = ap.parse_args()

    try:
        import numpy  # noqa: F401
        import safetensors  # noqa: F401
    except ImportError as e:
        sys.exit(f"{e}: run this script with the peers' venv python, e.g. /work/peers-venv/bin/python "
                 f"(python3 -m venv /work/peers-venv && /work/peers-venv/bin/pip install -r "
                 f"{os.path.relpath(args.peers_dir, REPO)}/requirements.txt)")
    models = [m for m in BATCHES if not args.only or m in args.only.split(",")]
    unknown = [m for m in args.only.split(",") if m and m not in BATCHES]
    if unknown or not models:
        sys.exit(f"unknown model(s) {unknown}; choose from {', '.join(BATCHES)}")
    if not os.path.exists(os.path.join(args.peers_dir, "peers.py")):
        sys.exit(f"no peers.py in {args.peers_dir} (use --peers-dir)")

    runner = Runner()
    invocation = shlex.join([os.path.relpath(sys.executable) if not os.path.isabs(sys.executable) else sys.executable,
                             os.path.relpath(os.path.abspath(sys.argv[0]), REPO)] + sys.argv[1:])
    git = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_before = loadavg()
    others_before = other_load(2.0)
    log(f"load average {load_before}; other processes keep {others_before:.2f} cores busy")

    target_dir = cargo_target_dir(runner)
    if args.modelc:
        modelc = os.path.abspath(args.modelc)
    else:
        if not args.no_build:
            rc, out, err, _ = runner.run(["cargo", "build", "--release"], timeout=3600)
            if rc != 0:
                sys.exit("cargo build --release failed:\n" + err[-3000:])
        modelc = os.path.join(target_dir, "release", "modelc")
    if not os.path.exists(modelc):
        log(f"warning: {modelc} does not exist; every modelc row will fail")

    gemm = {"skipped": True} if args.no_gemm else run_gemm(runner, args.no_build or bool(args.modelc), target_dir)
    if "error" in gemm:
        log("gemm_peak failed: " + gemm["error"])

    rows, peers_runs = [], {}
    with tempfile.TemporaryDirectory(prefix="bench_peers-") as tmp:
        for i, model in enumerate(models):
            if args.wait_idle > 0:
                wait_idle(args.wait_idle)
            modelc_runs = {B: run_modelc(runner, modelc, model, B, args, args.peers_dir, tmp)
                           for B in BATCHES[model]}
            for B, r in modelc_runs.items():
                log(f"  modelc {model} b{B}: " + (r["error"] if "error" in r else
                                                 f"{r['json']['latency_ms']['median']:.3f} ms"))
            # numpy's BLAS figures once, with the last model
            p = run_peers(runner, model, args, args.peers_dir, tmp, skip_numpy=i != len(models) - 1)
            peers_runs[model] = p
            if "error" in p:
                log(f"  peers.py --only {model} failed: {p['error']}")
            for B in BATCHES[model]:
                prow = next((x for x in p.get("results", []) if x.get("model") == model and x.get("batch") == B), None)
                rows.append({"model": model, "batch": B, "modelc": modelc_runs[B], "peer": prow})

    ctx = {"args": args, "rows": rows, "gemm": gemm, "peers_runs": peers_runs, "date": date, "cpu": cpu_model(),
           "load_before": load_before, "load_after": loadavg(), "others_before": others_before,
           "others_after": other_load(2.0), "git": (git.stdout.strip() or "?"), "commands": runner.commands,
           "invocation": invocation}
    # paths in the report: relative to the repository where that is shorter
    text = build_report(ctx).replace(REPO + os.sep, "")
    # Only this script's section: other scripts' sections (bench_train.py's) stay as they are.
    write_section(args.out, "bench_peers", text)
    log(f"wrote {args.out}")
    if args.json_out:
        raw = {k: v for k, v in ctx.items() if k != "args"}
        raw["args"] = vars(args)
        write_atomic(args.json_out, json.dumps(raw, indent=1, default=str))
    print(text)


if __name__ == "__main__":
    main()
