"""Data parallel scaling: ``torchrun --nproc-per-node 2`` against 1 process on the same work (CPU, gloo).

Both runs are ``python -m torch.distributed.run --nproc-per-node N -m dl1 finetune DIR --arch resnet50
--no-cache --weights none`` with the same global batch, so they do the same steps on the same images;
the figure is training images/s read from the epoch lines dl1 prints (seconds of the epochs, features not
cached so the network runs every step). On this 2-core machine two processes share the cores, so expect
a ratio near or below 1: the point here is correctness (tests/test_ddp.py) and a command that scales on
a GPU box, where each process has its own GPU:

    torchrun --nproc-per-node $(nvidia-smi -L | wc -l) -m dl1 finetune data/redux --arch resnet50 --no-cache

(not runnable here: no GPU; ``--gpus`` prints that command's images/s at 1, 2, ... GPUs when run there).

    python bench/bench_ddp.py            # 96 images at 32 px, 3 epochs (the last one timed)
    python bench/bench_ddp.py --quick    # tests: 24 images, 2 epochs (the last one timed)
"""

import argparse
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C

EPOCH = re.compile(r"^(?:Note: )?Epoch \d+/\d+ \((\d+) processes, (\d+) steps, ([\d.]+)s\)")


def run(n_proc, data, epochs, batch_size, size, arch="resnet50"):
    env = dict(os.environ, DL1_OFFLINE="1", PYTHONPATH=C.ROOT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(n_proc), "--master-port",
           str(29600 + n_proc), "-m", "dl1", "finetune", data, "--arch", arch, "--weights", "none",
           "--no-cache", "--restart", "--size", str(size), "--batch-size", str(batch_size),
           "--epochs", str(epochs), "--keep", "1"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    seconds = steps = 0
    for line in out.stdout.splitlines():  # the last epoch: the first pays for warm-up
        m = EPOCH.match(line)
        if m:
            steps, seconds = int(m[2]), float(m[3])
    return seconds, steps


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", "--tiny", action="store_true")
    p.add_argument("--gpus", action="store_true", help="on a GPU box: images/s at 1, 2, ... GPUs")
    args = p.parse_args(argv)
    n, epochs, size, batch = (24, 2, 32, 8) if args.quick else (96, 3, 32, 16)
    C.machine_info("bench_ddp: torchrun data parallel, 2 processes vs 1 (gloo on CPU)")
    with C.workdir(prefix="dl1-bench-ddp-") as tmp:
        data = C.make_images(os.path.join(tmp, "data"), n, 200, valid_fraction=0.25)
        import torch

        counts = [1, 2]
        if args.gpus and torch.cuda.is_available():
            counts = list(range(1, torch.cuda.device_count() + 1))
        figures = {}
        for k in counts:
            seconds, steps = run(k, data, epochs, batch, size)
            images = round(n * 0.75)
            figures[k] = images / seconds if seconds else float("nan")
            C.say(f"{k} process(es): {steps} steps, {seconds:.2f} s of training, {figures[k]:.1f} images/s")
        if not torch.cuda.is_available():
            C.say("multi-GPU images/s: not measured here (no GPU); on a GPU box run "
                  "python bench/bench_ddp.py --gpus")
    C.result("ddp_2proc_vs_1proc", figures[2], figures[1])


if __name__ == "__main__":
    main()
