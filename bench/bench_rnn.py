"""(e) The lesson's LSTM: Keras on this backend against the same model in plain PyTorch, same run.

char-rnn's network: ``Embedding(vocab, 24)``, two ``LSTM(n_hidden, return_sequences=True)``, a softmax
``Dense(vocab)`` at every step; Adam, sparse categorical cross-entropy; batches of 64 sequences of 40
characters (the course's sizes, ``n_hidden=512``). Without dropout, so that both sides run the same
arithmetic (``torch.nn.LSTM`` has no recurrent dropout, and Keras' recurrent dropout turns its fast path off).

- ours: ``dl1.nn.layers.LSTM`` (Keras' LSTM, whose stateful form trains on torch) in our ``Sequential``, ``train_on_batch`` on fixed batches;
- baseline: ``torch.nn.Embedding`` + ``torch.nn.LSTM(num_layers=2, batch_first=True)`` + ``torch.nn.Linear``,
  a hand-written step (zero_grad, forward, cross-entropy, backward, Adam step).
Figure: training characters per second (batch x seq_len per step / median step time), after warm-up steps.
On the GPU Keras 3.15 runs its LSTM through cuDNN (``torch._VF.lstm``) by itself, like ``torch.nn.LSTM``.

    python bench/bench_rnn.py            # the course's sizes
    python bench/bench_rnn.py --quick    # tiny sizes (the tests)
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C


def _median_step(step, n_warmup, n_steps):
    for _ in range(n_warmup):
        step()
    times = []
    for _ in range(n_steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def keras_lstm(args, x, y, device):
    import keras

    from dl1.nn.layers import LSTM
    from dl1.nn.model import Sequential

    keras.utils.set_random_seed(0)
    model = Sequential([
        keras.Input((args.seq_len,), dtype="int64"), keras.layers.Embedding(args.vocab, 24),
        LSTM(args.n_hidden, return_sequences=True), LSTM(args.n_hidden, return_sequences=True),
        keras.layers.Dense(args.vocab, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")

    def step():
        model.train_on_batch(x, y)
        if device == "cuda":
            import torch

            torch.cuda.synchronize()

    return _median_step(step, args.warmup, args.steps)


def torch_lstm(args, x, y, device):
    import torch

    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(args.vocab, 24)
            self.lstm = torch.nn.LSTM(24, args.n_hidden, num_layers=2, batch_first=True)
            self.out = torch.nn.Linear(args.n_hidden, args.vocab)

        def forward(self, x):
            return self.out(self.lstm(self.emb(x))[0])

    net = Net().to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    xt = torch.as_tensor(x, device=device)
    yt = torch.as_tensor(y, device=device).reshape(-1)

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(xt).reshape(-1, args.vocab), yt)
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()

    return _median_step(step, args.warmup, args.steps)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", "--tiny", action="store_true", help="tiny sizes, a few steps (the tests)")
    p.add_argument("--n-hidden", type=int, default=512)
    p.add_argument("--seq-len", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--vocab", type=int, default=60)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds (medians), for a shared machine")
    args = p.parse_args(argv)
    if args.quick:
        args.n_hidden, args.seq_len, args.batch_size, args.steps, args.warmup, args.rounds = 32, 10, 16, 3, 1, 1
    from dl1.backend import configure_backend

    configure_backend()
    import numpy as np
    import torch

    C.machine_info("bench_rnn: the lesson's LSTM, Keras against plain PyTorch")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rng = np.random.default_rng(0)
    x = rng.integers(1, args.vocab, (args.batch_size, args.seq_len))
    y = rng.integers(1, args.vocab, (args.batch_size, args.seq_len))
    chars = args.batch_size * args.seq_len
    C.say(f"LSTM x2, n_hidden={args.n_hidden}, seq_len={args.seq_len}, batch={args.batch_size}, "
          f"vocab={args.vocab}, device={device}, torch threads={torch.get_num_threads()}")
    ours, base = [], []
    for _ in range(args.rounds):
        ours.append(chars / keras_lstm(args, x, y, device))
        base.append(chars / torch_lstm(args, x, y, device))
    o, b = statistics.median(ours), statistics.median(base)
    C.say(f"Keras (dl1) LSTM: {o:,.0f} chars/s; plain torch.nn.LSTM: {b:,.0f} chars/s")
    C.result("lstm_train_chars_per_s", o, b)


if __name__ == "__main__":
    main()
