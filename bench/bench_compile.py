"""Compile or not: every lesson model trained eager and compiled (``jit_compile=True``) against plain PyTorch, with
the compile seconds cold and warm and the break-even number of steps, in one run and one JSON file.

Cases: those of ``bench_lessons45.py`` (lesson 4's recommenders, lesson 5's sentiment models) and ``bench_rnn.py``
(char-rnn and lesson 6's stateful LSTM), and three of its own:

- ``recipe_head``: the 7-line recipe's training after ``finetune`` on cached features, as ``Vgg16.fit`` runs it
  (``dl1.train.fit``): the head that follows VGG16's frozen prefix (fc1's dropout, fc2 frozen, its dropout, a
  new ``Dense(2, softmax)``), Adam(1e-3), categorical cross-entropy and accuracy, batch 64, on 2,000 rows of
  4,096 ReLU features; baseline the same head in torch (fc2's weights not trained);
- ``bn_head``: lesson 7's batch-normalised dense head (``bench_lesson7.bn_head``) on 1,024 rows of 4x4x512 ReLU
  conv features, 8 classes, batch 64; baseline the same in torch (``BatchNorm2d``/``BatchNorm1d``);
- ``vgg16_unfrozen``: ``Vgg16(weights=None, size=32)`` after ``finetune`` with every layer trainable again (the
  lessons' last fine-tuning step), batch 32 of 32 px images; baseline the same network in torch (``nn.Conv2d``,
  NCHW).

``bench/_compile.py`` says how each case is measured and which RESULT lines it prints; ``--json FILE`` writes the
figures (steps a second, compile seconds, break-even steps) for a program to read.

    python bench/bench_compile.py --json compile.json        # all cases (hours on 2 CPU cores)
    python bench/bench_compile.py --cases dot_model,recipe_head
    python bench/bench_compile.py --quick --cases dot_model  # a tiny model compiled cold and warm
    python bench/bench_compile.py --policy --epochs 1        # the compile policy's cases and break-even table
    python bench/bench_compile.py --full --reduce-overhead   # on a GPU box: CUDA graphs too

``--policy`` runs the five cases the compile policy's table (``dl1/backend/torch_impl.py`` ``BREAK_EVEN``) is
made from (lesson 4's dot model and the recipe's head: dense; lesson 5's conv model: conv; char-rnn: fused_lstm;
char-rnn through Keras' loop: recurrent) and prints the measured table beside the one dl1 uses.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C
import _compile as K
import bench_lessons45
import bench_rnn

CASES = {**bench_lessons45.CASES, **bench_rnn.CASES, "recipe_head": "bench_compile:recipe_head_case",
         "bn_head": "bench_compile:bn_head_case", "vgg16_unfrozen": "bench_compile:vgg16_unfrozen_case"}


def recipe_head_case(size):
    n, batch = {"quick": (256, 64), "cpu": (2000, 64), "full": (4000, 64)}[size]
    rng = np.random.default_rng(0)
    x = np.maximum(rng.normal(0, 1, (n, 4096)), 0).astype("float32")  # fc1's ReLU output
    y = np.eye(2, dtype="float32")[rng.integers(0, 2, n)]

    def build(jit_compile):
        import keras

        from dl1.models.vgg16 import Vgg16
        from dl1.nn.model import Sequential
        from dl1.train.features import FrozenPrefix, frozen_prefix_length

        vgg = Vgg16(weights=None, size=32, verbose=False)
        vgg.ft(2)
        prefix = FrozenPrefix(vgg.model, frozen_prefix_length(vgg.model))
        head = prefix.head(vgg.model, cls=Sequential)  # dl1's, as compiled_head makes it
        assert head.input_shape[1:] == (4096,), head.input_shape
        # as dl1.train.fit._compile_like, which hands the model's optimizer, loss and metrics to the head
        head.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy", metrics=["accuracy"])
        return K.rejit(head, jit_compile)

    def torch_epoch():
        import torch

        device = K.torch_device()
        torch.manual_seed(0)
        F = torch.nn.functional
        fc2, out = torch.nn.Linear(4096, 4096).to(device), torch.nn.Linear(4096, 2).to(device)
        fc2.requires_grad_(False)
        xt, yt = torch.as_tensor(x, device=device), torch.as_tensor(y.argmax(1), device=device)

        def loss_of(idx):
            h = F.dropout(torch.relu(fc2(F.dropout(xt[idx], 0.5))), 0.5)
            logits = out(h)
            (logits.argmax(1) == yt[idx]).float().mean()  # the accuracy Keras computes every step
            return F.cross_entropy(logits, yt[idx])

        return K.torch_loop(K.adam_step(list(out.parameters()), loss_of), n, batch)

    return K.Case("recipe_head", "the recipe's head after finetune, on cached fc1 features (fc2 frozen)", "samples",
                  x, y, batch, build, torch_epoch, n)


def bn_head_case(size):
    side, n, batch = {"quick": (2, 128, 32), "cpu": (4, 1024, 64), "full": (7, 4096, 64)}[size]
    rng = np.random.default_rng(0)
    x = np.maximum(rng.normal(0, 1, (n, side, side, 512)), 0).astype("float32")  # VGG16-BN's last conv features
    y = np.eye(8, dtype="float32")[rng.integers(0, 8, n)]

    def build(jit_compile):
        import keras
        from bench_lesson7 import bn_head

        head = bn_head(x.shape[1:])
        head.compile(keras.optimizers.Adam(1e-3), "categorical_crossentropy", metrics=["accuracy"])
        return K.rejit(head, jit_compile)

    def torch_epoch():
        import torch

        device = K.torch_device()
        torch.manual_seed(0)
        nn, p = torch.nn, 0.6
        flat = 512 * (side // 2) ** 2
        net = nn.Sequential(nn.MaxPool2d(2), nn.BatchNorm2d(512, momentum=0.01, eps=1e-3), nn.Dropout(p / 4),
                            nn.Flatten(), nn.Linear(flat, 512), nn.ReLU(), nn.BatchNorm1d(512, momentum=0.01, eps=1e-3),
                            nn.Dropout(p), nn.Linear(512, 512), nn.ReLU(),
                            nn.BatchNorm1d(512, momentum=0.01, eps=1e-3), nn.Dropout(p / 2), nn.Linear(512, 8)).to(device)
        xt = torch.as_tensor(x, device=device).permute(0, 3, 1, 2).contiguous()
        yt = torch.as_tensor(y.argmax(1), device=device)

        def loss_of(idx):
            return nn.functional.cross_entropy(net(xt[idx]), yt[idx])

        net.train()
        return K.torch_loop(K.adam_step(net.parameters(), loss_of), n, batch)

    return K.Case("bn_head", f"lesson 7's batch-normalised head on {side}x{side}x512 conv features, 8 classes",
                  "samples", x, y, batch, build, torch_epoch, n,
                  notes="Keras' BatchNormalization keeps its reduction axes in a tracked list, on which "
                        "torch.compile breaks the graph")


VGG16_BLOCKS = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))


def vgg16_unfrozen_case(size):
    side, n, batch = {"quick": (32, 16, 8), "cpu": (32, 256, 32), "full": (224, 2048, 64)}[size]
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (n, side, side, 3)).astype("float32")
    y = np.eye(2, dtype="float32")[rng.integers(0, 2, n)]

    def build(jit_compile):
        from dl1.models.vgg16 import Vgg16

        vgg = Vgg16(weights=None, size=side, verbose=False)
        vgg.ft(2)
        for layer in vgg.model.layers:
            layer.trainable = True
        vgg.compile(lr=0.001)  # what the lessons do after unfreezing
        return K.rejit(vgg.model, jit_compile)

    def torch_epoch():
        import torch

        device = K.torch_device()
        torch.manual_seed(0)
        nn = torch.nn
        layers, channels = [], 3
        for n_conv, filters in VGG16_BLOCKS:
            for _ in range(n_conv):
                layers += [nn.Conv2d(channels, filters, 3, padding=1), nn.ReLU()]
                channels = filters
            layers.append(nn.MaxPool2d(2))
        flat = channels * (side // 32) ** 2
        layers += [nn.Flatten(), nn.Linear(flat, 4096), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4096, 4096),
                   nn.ReLU(), nn.Dropout(0.5), nn.Linear(4096, 2)]
        net = nn.Sequential(*layers).to(device)
        mean = torch.tensor([103.939, 116.779, 123.68], device=device).view(1, 3, 1, 1)
        xt = torch.as_tensor(x, device=device).permute(0, 3, 1, 2).contiguous()  # NCHW, as torch users hold images
        yt = torch.as_tensor(y.argmax(1), device=device)

        def loss_of(idx):
            images = xt[idx].flip(1) - mean  # RGB -> BGR, mean subtracted (VGG's preprocessing)
            return nn.functional.cross_entropy(net(images), yt[idx])

        net.train()
        return K.torch_loop(K.adam_step(net.parameters(), loss_of), n, batch)

    return K.Case("vgg16_unfrozen", f"VGG16 with every layer trainable, {side} px images, batch {batch}", "images",
                  x, y, batch, build, torch_epoch, n)


# The cases the compile policy's break-even table (dl1/backend/torch_impl.py BREAK_EVEN) comes from, by kind
POLICY_CASES = {"dot_model": "dense", "recipe_head": "dense", "conv_model": "conv", "char_rnn": "fused_lstm",
                "char_rnn_loop": "recurrent"}


def significant(x, digits=2):
    """``x`` rounded up to ``digits`` significant digits (a break-even to write down)."""
    if x <= 0:
        return 0
    scale = 10 ** max(int(np.floor(np.log10(x))) - digits + 1, 0)
    return int(-(-x // scale) * scale)


def policy_table(figures):
    """``{kind: break-even steps}`` from the cold-cache figures of ``POLICY_CASES``: for each kind the largest
    of its cases (compiling pays for all of them after it), None where the compiled step is never faster."""
    table = {}
    for key, kind in POLICY_CASES.items():
        s = figures.get(key)
        if not s or "failed" in s:
            continue
        steps = s["break_even_steps"]["cold"]
        if kind in table and (table[kind] is None or steps is None):
            table[kind] = None
        else:
            table[kind] = None if steps is None else max(table.get(kind, 0), significant(steps))
    return table


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    K.add_arguments(p)
    p.add_argument("--policy", action="store_true",
                   help="the compile policy's cases (" + ", ".join(POLICY_CASES) + ") and its break-even table")
    args = p.parse_args(argv)
    if args.policy and not args.cases:
        args.cases = ",".join(POLICY_CASES)
    C.machine_info("bench_compile: eager vs compiled Keras training, plain PyTorch, compile seconds, break-even")
    K.configure(args)
    figures = K.run_cases(CASES, args)
    if args.policy and not args.no_compile:
        import torch

        from dl1.backend import torch_impl

        device = "cuda" if torch.cuda.is_available() else "cpu"
        table = policy_table(figures)
        C.say("compile policy, break-even steps measured (cold cache): "
              + ", ".join(f"{kind} {'never' if v is None else v}" for kind, v in table.items())
              + f"; dl1 uses BREAK_EVEN[{device!r}] = {torch_impl.BREAK_EVEN[device]} (dl1/backend/torch_impl.py)")
    return figures


if __name__ == "__main__":
    main()
