"""Eager against compiled Keras training, and plain PyTorch doing the same, for the lesson models.

A *case* (``Case``) is one lesson model: its data, a function that builds and compiles the Keras model with a
given ``jit_compile``, and a function that builds the same model in plain PyTorch and returns one epoch of its
training. ``measure`` trains, in one process and in turn (so that load from other processes falls on all of
them): the Keras model eager, the Keras model compiled (``jit_compile=True``: ``torch.compile`` of Keras' train
step) and the plain PyTorch model, one first epoch each and then ``epochs`` timed epochs each. From the epoch
times (``n`` steps an epoch; ``e``, ``c`` the steady seconds a step eager and compiled; ``E1``, ``C1`` the first
epochs):

- steady-state throughput of each contender: units (ratings, reviews, characters, images) per second of the
  median epoch;
- compile seconds: what the first compiled epoch costs beyond its steady state, less what the first eager epoch
  costs beyond its own (Keras builds its train function and optimizer on both): ``(C1 - n c) - (E1 - n e)``;
  recompiles within the first epoch (the second step, the last short batch) are in it;
- break-even steps: ``compile seconds / (e - c)``, the length of run from which compiling is ahead (None when
  the compiled step is not faster).

``run_case`` does this in two fresh processes sharing one empty inductor cache folder
(``TORCHINDUCTOR_CACHE_DIR``): the first compiles cold, the second warm (torch's FX-graph and AOT-autograd caches
filled by the first). ``--no-compile`` measures eager and plain PyTorch only, in this process (the quick tests).

``results`` prints, for case ``k`` with unit ``u`` (the names are in bench/README.md):

    RESULT <steady name, default k_u_per_s_vs_plain_torch> ours=<dl1's default mode> baseline=<plain torch>
    RESULT k_compiled_vs_plain_torch ours=<compiled units/s> baseline=<plain torch units/s>
    RESULT k_compiled_vs_eager ours=<compiled units/s> baseline=<eager units/s>
    RESULT k_compile_seconds ours=<warm> baseline=<cold> ratio=<cold / warm>
    RESULT k_break_even_steps ours=<with the warm cache> baseline=<cold> ratio=<cold / warm>
    RESULT k_reduce_overhead_vs_compiled ours=<CUDA-graph units/s> baseline=<compiled units/s>  (--reduce-overhead)

dl1's default mode is what its compile policy (``jit_compile='auto'``) picks for a run of ``policy_steps``
steps (the lesson run the case stands for, else ``RUN_EPOCHS`` epochs).

and ``write_json`` the same figures for a program to read (the compile policy's break-even).
"""

import argparse
import contextlib
import dataclasses
import importlib
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

BENCH = os.path.dirname(os.path.abspath(__file__))
if BENCH not in sys.path:
    sys.path.insert(0, BENCH)
import _common as C  # noqa: E402

JSON_VERSION = 1
RUN_EPOCHS = 10  # a lesson trains a model about this many epochs in all (several fits)
MODES = ("eager", "compiled", "reduce_overhead", "torch")


@dataclasses.dataclass
class Case:
    """One lesson model to train three ways (see the module docstring).

    ``build(jit_compile)``: a new compiled Keras model (``jit_compile=None``: dl1's default); ``torch_epoch()``:
    a new plain PyTorch model and optimizer, returned as a function that trains one epoch over ``x, y``.
    ``samples`` training examples of ``units_per_sample`` units each, ``batch_size`` a step."""

    key: str
    title: str
    unit: str
    x: object
    y: object
    batch_size: int
    build: object
    torch_epoch: object
    samples: int
    units_per_sample: int = 1
    shuffle: bool = True
    steady_name: str = ""
    notes: str = ""
    run_steps: int = 0  # the training steps of the lesson run this case stands for (0: RUN_EPOCHS epochs)

    @property
    def policy_steps(self):
        """The run length dl1's compile policy decides for (``default_mode``)."""
        return self.run_steps or RUN_EPOCHS * self.steps_per_epoch

    @property
    def steps_per_epoch(self):
        return -(-self.samples // self.batch_size)

    @property
    def result_name(self):
        return self.steady_name or f"{self.key}_{self.unit}_per_s_vs_plain_torch"


def torch_device():
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def rejit(model, jit_compile):
    """``model`` compiled again with ``jit_compile`` and a fresh optimizer of the same configuration (the
    lessons' builders compile with their own optimizer and loss)."""
    if jit_compile is None:
        return model
    opt = model.optimizer
    config = model.get_compile_config() or {}
    model.compile(optimizer=type(opt).from_config(opt.get_config()), loss=model.loss,
                  metrics=config.get("metrics"), jit_compile=jit_compile)
    return model


def rejit_mode(model, mode):
    """``model`` compiled again (``rejit``) with its training step ``torch.compile(mode=mode)`` instead of
    Keras' plain ``torch.compile``: ``"reduce-overhead"`` replays the step as a CUDA graph."""
    import torch

    rejit(model, False)
    model.make_train_function(force=True)
    model.train_function = torch.compile(model.train_function, mode=mode)
    return model


def default_mode(model, case):
    """What dl1's default (``jit_compile='auto'``) does for a run of ``case.policy_steps`` steps of ``model``."""
    from dl1.nn.model import choose_jit

    choose_jit(model, case.policy_steps)
    return "compiled" if model.jit_compile else "eager"


def shuffled_batches(n, batch_size, shuffle, rng):
    order = rng.permutation(n) if shuffle else np.arange(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def torch_loop(step, n, batch_size, shuffle=True, seed=0):
    """One epoch of plain PyTorch: ``step(idx)`` (zero_grad, forward, loss, backward, optimizer step) for each
    batch of row numbers ``idx`` (a tensor on the device), in a new shuffled order each epoch."""
    import torch

    rng = np.random.RandomState(seed)
    device = torch_device()

    def epoch():
        for idx in shuffled_batches(n, batch_size, shuffle, rng):
            step(torch.from_numpy(idx).to(device))
        sync()

    return epoch


def adam_step(params, loss_of, lr=1e-3):
    """A training step for ``torch_loop``: Adam as Keras' (eps=1e-7) on ``params``, minimising ``loss_of(idx)``."""
    import torch

    opt = torch.optim.Adam([p for p in params if p.requires_grad], lr=lr, eps=1e-7)

    def step(idx):
        opt.zero_grad()
        loss = loss_of(idx)
        loss.backward()
        opt.step()

    return step


# ---- measuring, in this process ----------------------------------------------------------------------------
def _keras_epoch(model, case):
    t0 = time.perf_counter()
    model.fit(case.x, case.y, batch_size=case.batch_size, epochs=1, shuffle=case.shuffle, verbose=0)
    sync()
    seconds = time.perf_counter() - t0
    for layer in model._flatten_layers(include_self=False):  # stateful RNNs start every epoch from zero
        if getattr(layer, "stateful", False):
            layer.reset_states()
    return seconds


def _torch_epoch(run):
    t0 = time.perf_counter()
    run()
    return time.perf_counter() - t0


class CompileTimeout(Exception):
    """The first compiled epoch ran past ``measure``'s ``compile_timeout``."""


@contextlib.contextmanager
def _deadline(seconds):
    """Raise ``CompileTimeout`` in this (main) thread after ``seconds`` (None: no limit)."""
    if not seconds or not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def ring(signum, frame):
        raise CompileTimeout(f"the first compiled epoch ran past {seconds:.0f} s")

    old = signal.signal(signal.SIGALRM, ring)
    signal.alarm(int(math.ceil(seconds)))
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def error_text(e, limit=400):
    """An exception in one line: its type and the first lines of its message (Keras wraps the real error of a
    layer's call after a line of its own), terminal colour codes removed."""
    lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", str(e)).splitlines() if line.strip()]
    return f"{type(e).__name__}: {' '.join(lines[:3])}"[:limit]


def dynamo_counters():
    """What torch.compile did in this process: graphs compiled, graph breaks and their reasons (first lines),
    hits and misses of the FX-graph and AOT-autograd caches."""
    from torch._dynamo.utils import counters

    reasons = {}
    for reason, count in counters["graph_break"].items():
        first = str(reason).strip().splitlines()[0][:120]
        reasons[first] = reasons.get(first, 0) + count
    caches = {f"{group}.{key}": n for group in ("aot_autograd", "inductor") for key, n in counters[group].items()
              if "cache" in key}
    return {"graphs": counters["stats"].get("unique_graphs", 0), "graph_breaks": sum(reasons.values()),
            "break_reasons": reasons, "caches": caches}


def measure(case, epochs=2, compiled=True, compile_timeout=None, reduce_overhead=False):
    """Epoch seconds of each contender (see the module docstring), taken in turn: a dict of lists
    ``{"eager": [...], "compiled": [...], "torch": [...]}`` whose first entry is the first epoch, plus
    ``default_mode`` (what dl1's default ``jit_compile`` resolves to), ``errors`` (a contender's exception:
    it is dropped, the others go on) and ``dynamo`` (``dynamo_counters``). ``compile_timeout``: seconds the
    first compiled epoch may take; ``reduce_overhead``: also the step compiled with CUDA graphs
    (``rejit_mode``)."""
    import keras

    out = {name: [] for name in MODES}
    out["errors"] = {}
    keras.utils.set_random_seed(0)
    default = case.build(None)
    out["default_mode"] = default_mode(default, case)
    contenders = {"eager": rejit(default, False)}
    if compiled:
        keras.utils.set_random_seed(0)
        contenders["compiled"] = rejit(case.build(None), True)
    if compiled and reduce_overhead:
        keras.utils.set_random_seed(0)
        contenders["reduce_overhead"] = rejit_mode(case.build(None), "reduce-overhead")
    contenders["torch"] = case.torch_epoch()

    def one(name):
        what = contenders.get(name)
        if what is None:
            return
        limit = compile_timeout if name in ("compiled", "reduce_overhead") and not out[name] else None
        try:
            with _deadline(limit):
                seconds = _torch_epoch(what) if name == "torch" else _keras_epoch(what, case)
        except Exception as e:  # noqa: BLE001 (a compile failure is a finding, not the end of the bench)
            out["errors"][name] = error_text(e)
            C.say(f"{name} failed: {out['errors'][name]}")
            contenders[name] = None
            return
        out[name].append(seconds)
        C.say(f"{name} epoch {len(out[name])}: {seconds:.2f} s")

    for _ in range(1 + epochs):
        for name in MODES:
            one(name)
    if compiled:
        out["dynamo"] = dynamo_counters()
    return out


def summarise(case, times_cold, times_warm=None):
    """Figures of one case from ``measure``'s epoch times in the cold (and warm) process: a JSON-able dict."""
    n = case.steps_per_epoch
    units = case.samples * case.units_per_sample

    def steady(name):
        vals = times_cold[name][1:] + (times_warm[name][1:] if times_warm else [])
        return statistics.median(vals) if vals else None

    e, c, t = steady("eager"), steady("compiled"), steady("torch")
    r = steady("reduce_overhead") if "reduce_overhead" in times_cold else None

    def extra(times):
        """First compiled epoch beyond its steady state, less the first eager epoch beyond its own."""
        if not times or not times["compiled"] or not times["eager"] or c is None or e is None:
            return None
        return (times["compiled"][0] - c) - (times["eager"][0] - e)

    cold = extra(times_cold)
    warm = extra(times_warm) if times_warm else None

    def break_even(seconds):
        if seconds is None or c is None or e is None:
            return None
        gain = (e - c) / n  # seconds saved a step
        if gain <= 0:
            return None
        return max(seconds, 0.0) / gain

    seconds = (("eager", e), ("compiled", c), ("torch", t)) + ((("reduce_overhead", r),) if r else ())
    per_s = {k: (units / v if v else None) for k, v in seconds}
    return {
        "title": case.title, "unit": case.unit, "samples": case.samples, "units_per_epoch": units,
        "batch_size": case.batch_size, "steps_per_epoch": n, "notes": case.notes,
        "default_mode": times_cold.get("default_mode", "eager"),
        "policy_steps": case.policy_steps,
        "epoch_seconds": {"cold": {k: times_cold.get(k, []) for k in MODES},
                          "warm": ({k: times_warm.get(k, []) for k in MODES} if times_warm else None)},
        "step_seconds": {k: v / n if v else None for k, v in seconds},
        "per_s": per_s,
        "compile_seconds": {"cold": cold, "warm": warm},
        "break_even_steps": {"cold": break_even(cold), "warm": break_even(warm)},
        "errors": {**times_cold.get("errors", {}),
                   **{f"warm {k}": v for k, v in (times_warm or {}).get("errors", {}).items()}},
        "dynamo": {"cold": times_cold.get("dynamo"), "warm": (times_warm or {}).get("dynamo")},
    }


def load_case(ref, size):
    """The case ``ref`` (``"module:factory"``, a module of bench/) at ``size``."""
    module, factory = ref.split(":")
    added = BENCH not in sys.path
    if added:  # a test may have imported the scripts and then restored sys.path
        sys.path.insert(0, BENCH)
    try:
        return getattr(importlib.import_module(module), factory)(size)
    finally:
        if added:
            sys.path.remove(BENCH)


# ---- a case in fresh processes (cold and warm compile caches) ----------------------------------------------
def _worker_main(argv):
    """``python bench/_compile.py --worker MODULE:FACTORY --size SIZE --epochs N --out FILE``: build the case
    and write ``measure``'s result as JSON (the parent sets ``TORCHINDUCTOR_CACHE_DIR``)."""
    p = argparse.ArgumentParser()
    p.add_argument("--worker", required=True)
    p.add_argument("--size", required=True)
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--compile-timeout", type=float, required=True)
    p.add_argument("--reduce-overhead", action="store_true")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    from dl1.backend import configure_backend

    configure_backend()
    import torch

    torch.set_num_threads(args.threads)
    case = load_case(args.worker, args.size)
    times = measure(case, epochs=args.epochs, compiled=True, compile_timeout=args.compile_timeout,
                    reduce_overhead=args.reduce_overhead)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(times, f)


def run_worker(ref, size, epochs, cache_dir, label, compile_timeout, reduce_overhead=False):
    """``measure`` of the case ``ref`` (``"module:factory"``) in a new process whose inductor cache is
    ``cache_dir``; its output is passed on line by line. Returns the epoch times (or None and the reason)."""
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache_dir, PYTHONUNBUFFERED="1")
    with tempfile.TemporaryDirectory(prefix="dl1-bench-worker-") as tmp:
        out = os.path.join(tmp, "times.json")
        import torch

        cmd = [sys.executable, os.path.abspath(__file__), "--worker", ref, "--size", size,
               "--epochs", str(epochs), "--threads", str(torch.get_num_threads()),
               "--compile-timeout", str(compile_timeout), "--out", out] + \
            (["--reduce-overhead"] if reduce_overhead else [])
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                cwd=os.path.dirname(BENCH))
        tail = []
        for line in proc.stdout:
            tail = (tail + [line.rstrip()])[-20:]
            C.say(f"  [{label}] {line.rstrip()}")
        proc.wait()
        if proc.returncode or not os.path.exists(out):
            return None, f"the {label} process failed (exit {proc.returncode}): " + " | ".join(tail[-3:])
        with open(out, encoding="utf-8") as f:
            times = json.load(f)
        C.say(f"  [{label}] process took {time.perf_counter() - t0:.0f} s")
        return times, None


def run_case(ref, size, epochs=2, compiled=True, cache_dir=None, warm=True, compile_timeout=3600,
             reduce_overhead=False):
    """Figures of the case ``ref`` (``"module:factory"``): with ``compiled``, cold then warm in two new processes
    sharing a new inductor cache folder (or ``cache_dir``: then "cold" is whatever that folder holds); without,
    eager and plain PyTorch in this process."""
    case = load_case(ref, size)
    C.say(f"-- {case.key}: {case.title}; {case.samples} samples, batch {case.batch_size}, "
          f"{case.steps_per_epoch} steps an epoch")
    if not compiled:
        times = measure(case, epochs=epochs, compiled=False)
        return case, summarise(case, times)
    own = cache_dir is None
    folder = tempfile.mkdtemp(prefix="dl1-bench-inductor-") if own else cache_dir
    try:
        cold, why = run_worker(ref, size, epochs, folder, "cold cache", compile_timeout, reduce_overhead)
        if cold is None:
            return case, {"failed": why}
        hot = None
        if warm:
            hot, why = run_worker(ref, size, epochs, folder, "warm cache", compile_timeout, reduce_overhead)
            if hot is None:
                C.say(f"  {why}")
        return case, summarise(case, cold, hot)
    finally:
        if own:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)


# ---- output ------------------------------------------------------------------------------------------------
def _f(x, spec=None):
    if x is None:
        return "n/a"
    return format(x, spec) if spec else C.fmt(x)


def describe(case, s):
    """Human-readable lines of one case's figures."""
    if "failed" in s:
        C.say(f"{case.key}: {s['failed']}")
        return
    per_s, cs, be = s["per_s"], s["compile_seconds"], s["break_even_steps"]
    ratio = (per_s["eager"] / per_s["torch"]) if per_s["eager"] and per_s["torch"] else None
    line = (f"{case.key}: eager {_f(per_s['eager'])} {case.unit}/s ({_f(ratio, '.2f')}x plain torch), ")
    if per_s["compiled"]:
        cratio = per_s["compiled"] / per_s["torch"] if per_s["torch"] else None
        line += f"compiled {_f(per_s['compiled'])} ({_f(cratio, '.2f')}x), "
    if per_s.get("reduce_overhead"):
        rratio = per_s["reduce_overhead"] / per_s["torch"] if per_s["torch"] else None
        line += f"reduce-overhead {_f(per_s['reduce_overhead'])} ({_f(rratio, '.2f')}x), "
    line += f"plain torch {_f(per_s['torch'])}"
    C.say(line)
    if per_s["compiled"]:
        C.say(f"  compile seconds: cold {_f(cs['cold'], '.1f')}, warm {_f(cs['warm'], '.1f')}; break-even after "
              f"{_f(be['cold'], '.0f')} steps cold, {_f(be['warm'], '.0f')} warm ({s['steps_per_epoch']} steps an epoch); "
              f"dl1's default for a run of {s.get('policy_steps', 'n/a')} steps: {s['default_mode']}")
    dyn = s["dynamo"]["cold"]
    if dyn:
        reasons = "; ".join(f"{n} x {r}" for r, n in sorted(dyn["break_reasons"].items(), key=lambda kv: -kv[1]))
        C.say(f"  torch.compile (cold process): {dyn['graphs']} graphs, {dyn['graph_breaks']} graph breaks"
              + (f" ({reasons})" if reasons else ""))
    for label, dyn in s["dynamo"].items():
        if dyn and dyn.get("caches"):
            C.say(f"  compile caches ({label} process): "
                  + ", ".join(f"{k} {v}" for k, v in sorted(dyn["caches"].items())))
    for who, err in s["errors"].items():
        C.say(f"  {who} failed: {err}")


def results(case, s, compiled=True):
    """The RESULT lines of one case (names in the module docstring)."""
    key = case.key
    if "failed" in s:
        C.skip(case.result_name, s["failed"])
        if compiled:
            for name in ("compiled_vs_plain_torch", "compiled_vs_eager", "compile_seconds", "break_even_steps"):
                C.skip(f"{key}_{name}", s["failed"])
        return
    per_s = s["per_s"]
    if per_s[s["default_mode"]] is None:
        C.skip(case.result_name, f"dl1's default is {s['default_mode']} for {s.get('policy_steps')} steps; "
                                 "not measured (--no-compile or a failure)")
    else:
        C.result(case.result_name, per_s[s["default_mode"]], per_s["torch"])
    if not compiled:
        return
    if per_s["compiled"] is None:
        why = s["errors"].get("compiled", "no compiled figures")
        for name in ("compiled_vs_plain_torch", "compiled_vs_eager", "compile_seconds", "break_even_steps"):
            C.skip(f"{key}_{name}", why)
        return
    C.result(f"{key}_compiled_vs_plain_torch", per_s["compiled"], per_s["torch"])
    C.result(f"{key}_compiled_vs_eager", per_s["compiled"], per_s["eager"])
    if "reduce_overhead" in s["errors"]:
        C.skip(f"{key}_reduce_overhead_vs_compiled", s["errors"]["reduce_overhead"])
    elif per_s.get("reduce_overhead"):
        C.result(f"{key}_reduce_overhead_vs_compiled", per_s["reduce_overhead"], per_s["compiled"])
    cs, be = s["compile_seconds"], s["break_even_steps"]
    if cs["warm"] is None:
        C.skip(f"{key}_compile_seconds", "no warm-cache process", ours=None)
    else:
        C.result(f"{key}_compile_seconds", max(cs["warm"], 0.0), max(cs["cold"], 0.0), lower_is_better=True)
    if be["cold"] is None:
        C.skip(f"{key}_break_even_steps", "the compiled step is not faster than the eager one: compiling never pays")
    elif be["warm"] is None:
        C.skip(f"{key}_break_even_steps", "no warm-cache figure", ours=None)
    else:
        C.result(f"{key}_break_even_steps", be["warm"], be["cold"], lower_is_better=True)


def machine():
    """The facts a reader of the JSON needs beside the figures."""
    import keras
    import torch

    return {"cpu": C.cpu_model(), "cpus": C.usable_cpus(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "keras": keras.__version__, "backend": keras.backend.backend(),
            "gpu": C.gpu_name(), "command": " ".join([os.path.basename(sys.executable)] + sys.argv)}


def write_json(path, cases, load_start, load_end):
    """``{"version", "machine", "load_average": {"start", "end"}, "cases": {key: figures}}``."""
    doc = {"version": JSON_VERSION, "machine": machine(), "load_average": {"start": load_start, "end": load_end},
           "cases": cases}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, default=lambda x: None if isinstance(x, float) and math.isnan(x) else x)
    C.say(f"figures written to {path}")


def add_arguments(p, default_epochs=2):
    """The options every script with cases takes."""
    p.add_argument("--quick", "--tiny", action="store_true", dest="quick", help="tiny sizes (the tests)")
    p.add_argument("--full", action="store_true", help="GPU-box sizes")
    p.add_argument("--no-compile", action="store_true",
                   help="eager and plain PyTorch only, in this process (no compiled runs: fast)")
    p.add_argument("--no-warm", action="store_true", help="skip the second (warm-cache) process")
    p.add_argument("--cases", help="comma-separated case keys to run (default: all of this script's)")
    p.add_argument("--epochs", type=int, default=default_epochs, help="timed epochs of each contender")
    p.add_argument("--cache-dir", help="inductor cache folder to compile into (default: a new empty one)")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: every usable CPU)")
    p.add_argument("--reduce-overhead", action="store_true",
                   help="also torch.compile(mode='reduce-overhead') of the train step (CUDA graphs; on a GPU)")
    p.add_argument("--compile-timeout", type=float, default=3600,
                   help="seconds the first compiled epoch may take before it is given up (default 3600)")


def configure(args):
    """Set torch's threads as ``args`` say and print them with the device (call after ``C.machine_info``)."""
    from dl1.backend import configure_backend

    configure_backend()
    import torch

    torch.set_num_threads(args.threads or max(1, C.usable_cpus()))
    C.say(f"torch threads={torch.get_num_threads()}, device={torch_device()}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}")


def size_of(args):
    return "quick" if args.quick else ("full" if args.full else "cpu")


def run_cases(refs, args):
    """Run the cases ``refs`` (``{key: "module:factory"}``) as ``args`` say; print lines and RESULTs; return
    ``{key: figures}``."""
    wanted = [k.strip() for k in args.cases.split(",")] if args.cases else list(refs)
    unknown = [k for k in wanted if k not in refs]
    if unknown:
        raise SystemExit(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(refs)}")
    load_start = C.load_average()
    compiled = not args.no_compile
    done = [run_case(refs[k], size_of(args), args.epochs, compiled, args.cache_dir, not args.no_warm,
                     args.compile_timeout, getattr(args, "reduce_overhead", False)) for k in wanted]
    C.say()
    for case, s in done:
        describe(case, s)
    load_end = C.load_average()
    C.say(f"load average at the end: {load_end} (at the start: {load_start})")
    figures = {case.key: s for case, s in done}
    if args.json:
        write_json(args.json, figures, load_start, load_end)
    C.say()
    for case, s in done:
        results(case, s, compiled)
    return figures


if __name__ == "__main__":
    _worker_main(sys.argv[1:])
