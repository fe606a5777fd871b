"""(d) Keras backends: PyTorch (our default, "ours") against JAX ("baseline"), each in its own process.

For our ``Vgg16(weights=None, size=S)`` (the weights do not change the speed):
- forward: ``model.predict(x, batch_size=B)`` on a fixed array of N images, images/s (median of repeats,
  after a warm-up call that also pays JAX's compilation);
- train step: the whole network trainable (fine-tuning every layer, as lesson 2 ends), Adam,
  ``model.train_on_batch`` on a fixed batch, images/s (median over steps, after two warm-up steps);
- the first ``predict`` call (build + compile) in seconds.
``--rounds`` processes per backend, in alternating order (medians): on a shared machine the load from
other processes changes by the minute.

Each backend runs in a subprocess with ``KERAS_BACKEND`` set, because Keras fixes its backend at import.
Without JAX installed (or with ``--backends torch``) the script measures PyTorch alone and prints a SKIP
line per comparison and RESULT lines whose baseline and ratio are ``nan``.
The model is compiled by ``Vgg16.compile`` (what ``finetune`` runs), with the library's defaults
``mixed_precision=False, jit_compile=False`` - on JAX that means no XLA compilation either (Keras' own
default, ``jit_compile='auto'``, would compile). For a GPU box: ``--mixed-precision``
(``Vgg16(mixed_precision=True)``: bfloat16, or float16 with loss scaling) and ``--jit``
(``Vgg16(jit_compile=True)``: ``torch.compile`` for PyTorch, XLA for JAX).

    python bench/bench_backends.py          # CPU: 64 px, 128 images, batch 32, train batch 8
    python bench/bench_backends.py --full   # GPU box: 224 px, 1024 images, batch 64
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C


def worker(args):
    """Subprocess mode: measure one backend (set by the parent in KERAS_BACKEND); print one JSON line."""
    import numpy as np

    from dl1.backend import configure_backend

    backend = configure_backend()
    import keras

    from dl1.models.vgg16 import Vgg16

    keras.utils.set_random_seed(0)
    s = args.size
    # the library's own options: mixed_precision=True picks bfloat16 (float16 + loss scaling on GPUs
    # without bfloat16); jit_compile goes to model.compile
    vgg = Vgg16(weights=None, size=s, verbose=False, mixed_precision=bool(args.mixed_precision),
                jit_compile=bool(args.jit))
    model = vgg.model
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (args.n, s, s, 3)).astype("float32")
    vgg.compile()  # as finetune/ft do: what predict and fit run with after the recipe's finetune
    t0 = time.perf_counter()
    model.predict(x[:args.batch_size], batch_size=args.batch_size, verbose=0)
    first_call = time.perf_counter() - t0
    model.predict(x, batch_size=args.batch_size, verbose=0)  # warm-up of the full-size call
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        model.predict(x, batch_size=args.batch_size, verbose=0)
        times.append(time.perf_counter() - t0)
    forward = args.n / C.median(times)

    tb = args.train_batch
    xb = x[:tb]
    yb = keras.utils.to_categorical(rng.integers(0, 1000, tb), 1000)
    for layer in model.layers:
        layer.trainable = True
    vgg.compile(lr=1e-4)
    t0 = time.perf_counter()
    model.train_on_batch(xb, yb)
    first_step = time.perf_counter() - t0
    model.train_on_batch(xb, yb)
    steps = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        model.train_on_batch(xb, yb)
        steps.append(time.perf_counter() - t0)
    train = tb / C.median(steps)
    info = {"backend": backend, "forward_img_s": forward, "train_img_s": train, "first_predict_s": first_call,
            "first_train_step_s": first_step, "policy": vgg.policy or "float32",
            "jit_compile": model.jit_compile, "device": _device(backend)}
    print("WORKER " + json.dumps(info), flush=True)


def jax_sees_gpu():
    """Whether jax (in a subprocess: this process runs torch) has a GPU backend."""
    code = "import jax; print(jax.default_backend())"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return proc.returncode == 0 and proc.stdout.strip().splitlines()[-1:] in (["gpu"], ["cuda"], ["rocm"])


def _device(backend):
    if backend == "jax":
        import jax

        return ", ".join(sorted({str(d.platform) for d in jax.devices()}))
    import torch

    return "cuda" if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"


def run_backend(backend, args):
    env = dict(os.environ, KERAS_BACKEND=backend)
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--size", str(args.size), "--n", str(args.n),
           "--batch-size", str(args.batch_size), "--train-batch", str(args.train_batch), "--steps",
           str(args.steps), "--repeats", str(args.repeats)]
    cmd += ["--mixed-precision"] if args.mixed_precision else []
    cmd += ["--jit"] if args.jit else []
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise SystemExit(f"the {backend} worker failed (exit {proc.returncode}):\n{tail}")
    line = next(line for line in proc.stdout.splitlines() if line.startswith("WORKER "))
    info = json.loads(line[len("WORKER "):])
    info["process_s"] = time.perf_counter() - t0
    return info


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--full", action="store_true", help="GPU-box size: 224 px, 1024 images, batch 64")
    p.add_argument("--tiny", action="store_true", help="smoke-test size")
    p.add_argument("--size", type=int)
    p.add_argument("--n", type=int, help="images in the forward array")
    p.add_argument("--batch-size", type=int, help="predict batch size")
    p.add_argument("--train-batch", type=int, help="train step batch size")
    p.add_argument("--steps", type=int, help="timed train steps")
    p.add_argument("--repeats", type=int, help="timed predict calls")
    p.add_argument("--mixed-precision", action="store_true", help="mixed precision policy (for GPU boxes)")
    p.add_argument("--jit", action="store_true", help="jit_compile=True (torch.compile for PyTorch)")
    p.add_argument("--backends", default="torch,jax",
                   help="'torch,jax' (default) or 'torch' alone (SKIP lines for the comparison)")
    p.add_argument("--rounds", type=int, help="processes per backend, alternating (medians reported)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.tiny:
        defaults = {"size": 32, "n": 16, "batch_size": 8, "train_batch": 4, "steps": 1, "repeats": 1,
                    "rounds": 1}
    elif args.full:
        defaults = {"size": 224, "n": 1024, "batch_size": 64, "train_batch": 32, "steps": 10, "repeats": 3,
                    "rounds": 2}
    else:
        defaults = {"size": 64, "n": 128, "batch_size": 32, "train_batch": 8, "steps": 3, "repeats": 3,
                    "rounds": 2}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.worker:
        return worker(args)

    os.environ.setdefault("KERAS_BACKEND", "torch")
    C.machine_info("bench_backends: Keras on PyTorch (ours, the default) against Keras on JAX")
    C.say(f"VGG16 at {args.size} px: predict {args.n} images in batches of {args.batch_size}; train steps on "
          f"batches of {args.train_batch}, all layers trainable; mixed precision "
          f"{'on' if args.mixed_precision else 'off'}; jit_compile {'True' if args.jit else 'auto (Keras default)'}")
    if not args.mixed_precision and not args.jit and C.gpu_name() == "none":
        C.say("(no GPU here: mixed precision and torch.compile are not measured; on a GPU box run again with "
              "--mixed-precision and/or --jit)")
    wanted = [b.strip() for b in args.backends.split(",") if b.strip()]
    backends = ["torch"] + (["jax"] if "jax" in wanted and importlib.util.find_spec("jax") is not None else [])
    jax_skip = "jax is not installed (pip install jax) - nothing to compare against"
    if "jax" not in wanted:
        jax_skip = "jax not asked for (--backends)"
    if "jax" in backends and C.gpu_name() != "none" and not jax_sees_gpu():
        backends.remove("jax")
        jax_skip = "torch sees a GPU but jax does not: install a CUDA build of jax (pip install 'jax[cuda12]')"
    runs = {b: [] for b in backends}
    for r in range(args.rounds):  # alternate the order, so that load from other processes hits both
        for backend in backends if r % 2 == 0 else backends[::-1]:
            info = run_backend(backend, args)
            runs[backend].append(info)
            C.say(f"  round {r + 1} {backend:5s} on {info['device']}: forward {info['forward_img_s']:7.1f} img/s; "
                  f"train step {info['train_img_s']:6.1f} img/s; first predict call {info['first_predict_s']:.2f} s, "
                  f"first train step {info['first_train_step_s']:.2f} s; policy {info['policy']}; jit_compile "
                  f"{info['jit_compile']}; process "
                  f"{info['process_s']:.1f} s in all")
    results = {b: {key: C.median([i[key] for i in infos]) for key in ("forward_img_s", "train_img_s",
                                                                       "first_predict_s")}
               for b, infos in runs.items()}
    C.say()
    C.say(f"load average at the end: {C.load_average()}")
    if "jax" not in results:
        t = results["torch"]
        for name, key in (("torch_vs_jax_forward", "forward_img_s"), ("torch_vs_jax_train_step", "train_img_s"),
                          ("torch_vs_jax_first_predict_seconds", "first_predict_s")):
            C.skip(name, jax_skip, ours=t[key])
        return
    t, j = results["torch"], results["jax"]
    C.result("torch_vs_jax_forward", t["forward_img_s"], j["forward_img_s"])
    C.result("torch_vs_jax_train_step", t["train_img_s"], j["train_img_s"])
    C.result("torch_vs_jax_first_predict_seconds", t["first_predict_s"], j["first_predict_s"],
             lower_is_better=True)


if __name__ == "__main__":
    main()
