"""Lesson 6 and char-rnn's recurrent networks: Keras eager and compiled against the same model in plain PyTorch.

Cases (``bench/_compile.py`` says how each is measured; ``--cases`` picks some):

- ``char_rnn``: char-rnn's network, ``Embedding(vocab, 24)``, two ``LSTM(512, return_sequences=True)``
  (``LSTM`` from ``utils``, the 2017 face), a softmax ``Dense(vocab)`` at every step; Adam, sparse categorical cross-entropy;
  batches of 64 sequences of 40 characters (the course's sizes), 1,024 sequences an epoch. Without dropout, so
  that both sides run the same arithmetic (``torch.nn.LSTM`` has no recurrent dropout, and Keras' recurrent
  dropout turns its fast path off). Baseline: ``torch.nn.Embedding`` + ``torch.nn.LSTM(num_layers=2,
  batch_first=True)`` + ``torch.nn.Linear``. RESULT ``lstm_train_chars_per_s`` (training characters a second).
- ``char_rnn_loop``: the same network with ``LSTM(..., use_cudnn=False)``: Keras' own step-by-step loop, which
  GRU, SimpleRNN and an LSTM with recurrent dropout take (the compile policy's 'recurrent' row).
- ``stateful_lstm``: lesson 6's stateful model, ``Embedding(vocab, 42, batch_input_shape=(64, 8))`` ->
  ``BatchNormalization`` -> ``LSTM(256, return_sequences=True, stateful=True)`` -> ``TimeDistributed(Dense(vocab,
  softmax))``, trained in order (``shuffle=False``) on 2,560 sequences of 8 characters, the state reset every
  epoch. Baseline: the same in torch, the LSTM's final state carried (detached) into the next batch.

On a CUDA GPU Keras 3.15 runs an eager LSTM through cuDNN (``torch._VF.lstm``) as ``torch.nn.LSTM`` does, but not
while ``torch.compile`` traces it (it checks ``torch.compiler.is_compiling()``): compiled, every time step is
unrolled into the graph there too. On the CPU Keras always loops over the time steps in Python; dl1's ``LSTM``
(``dl1.nn.layers``, the one ``utils`` gives) runs eager on ``torch._VF.lstm`` there too.

    python bench/bench_rnn.py                  # the course's sizes, eager + compiled (about 40 minutes on 2 CPU cores)
    python bench/bench_rnn.py --no-compile     # eager and plain PyTorch only
    python bench/bench_rnn.py --quick --no-compile   # tiny sizes (the tests)
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C
import _compile as K

CASES = {"char_rnn": "bench_rnn:char_rnn_case", "char_rnn_loop": "bench_rnn:char_rnn_loop_case",
         "stateful_lstm": "bench_rnn:stateful_lstm_case"}
VOCAB = 60


def char_rnn_loop_case(size):
    return char_rnn_case(size, loop=True)


def char_rnn_case(size, loop=False):
    n_hidden, seq_len, batch, n = {"quick": (32, 10, 16, 64), "cpu": (512, 40, 64, 1024),
                                   "full": (512, 40, 64, 16384)}[size]
    rng = np.random.default_rng(0)
    x = rng.integers(1, VOCAB, (n, seq_len))
    y = rng.integers(1, VOCAB, (n, seq_len))

    def build(jit_compile):
        import keras

        from dl1.nn.model import Sequential
        from utils import LSTM

        model = Sequential([
            keras.Input((seq_len,), dtype="int64"), keras.layers.Embedding(VOCAB, 24),
            LSTM(n_hidden, return_sequences=True, use_cudnn=not loop),
            LSTM(n_hidden, return_sequences=True, use_cudnn=not loop),
            keras.layers.Dense(VOCAB, activation="softmax")])
        model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
        return K.rejit(model, jit_compile)

    def torch_epoch():
        import torch

        device = K.torch_device()
        torch.manual_seed(0)

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.emb = torch.nn.Embedding(VOCAB, 24)
                self.lstm = torch.nn.LSTM(24, n_hidden, num_layers=2, batch_first=True)
                self.out = torch.nn.Linear(n_hidden, VOCAB)

            def forward(self, x):
                return self.out(self.lstm(self.emb(x))[0])

        net = Net().to(device)
        xt, yt = torch.as_tensor(x, device=device), torch.as_tensor(y, device=device)

        def loss_of(idx):
            return torch.nn.functional.cross_entropy(net(xt[idx]).reshape(-1, VOCAB), yt[idx].reshape(-1))

        return K.torch_loop(K.adam_step(net.parameters(), loss_of), n, batch)

    layers = f"LSTM({n_hidden}, use_cudnn=False) x2 (Keras' loop)" if loop else f"LSTM({n_hidden}) x2"
    return K.Case("char_rnn_loop" if loop else "char_rnn", f"char-rnn {layers}, {batch} x {seq_len} characters a step",
                  "chars", x, y, batch, build, torch_epoch, n, units_per_sample=seq_len,
                  steady_name="" if loop else "lstm_train_chars_per_s",  # char-rnn's RESULT keeps its old name
                  notes="no dropout (torch.nn.LSTM has no recurrent dropout)")


def stateful_lstm_case(size):
    n_hidden, cs, bs, n = {"quick": (16, 8, 16, 64), "cpu": (256, 8, 64, 2560), "full": (256, 8, 64, 2560)}[size]
    rng = np.random.default_rng(0)
    x = rng.integers(1, VOCAB, (n, cs))
    y = rng.integers(1, VOCAB, (n, cs, 1))

    def build(jit_compile):
        import keras
        from keras.layers import Dense

        from dl1.nn.model import Sequential
        from utils import LSTM, BatchNormalization, Embedding, TimeDistributed

        model = Sequential([
            Embedding(VOCAB, 42, input_length=cs, batch_input_shape=(bs, cs)), BatchNormalization(),
            LSTM(n_hidden, return_sequences=True, stateful=True),
            TimeDistributed(Dense(VOCAB, activation="softmax"))])
        model.compile(loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.Adam())
        return K.rejit(model, jit_compile)

    def torch_epoch():
        import torch

        device = K.torch_device()
        torch.manual_seed(0)

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.emb = torch.nn.Embedding(VOCAB, 42)
                self.bn = torch.nn.BatchNorm1d(42, momentum=0.01, eps=1e-3)  # Keras' defaults
                self.lstm = torch.nn.LSTM(42, n_hidden, batch_first=True)
                self.out = torch.nn.Linear(n_hidden, VOCAB)
                self.state = None

            def forward(self, ids):
                h = self.bn(self.emb(ids).transpose(1, 2)).transpose(1, 2)
                h, state = self.lstm(h, self.state)
                self.state = tuple(s.detach() for s in state)
                return self.out(h)

        net = Net().to(device)
        xt, yt = torch.as_tensor(x, device=device), torch.as_tensor(y, device=device)

        def loss_of(idx):
            return torch.nn.functional.cross_entropy(net(xt[idx]).reshape(-1, VOCAB), yt[idx].reshape(-1))

        loop = K.torch_loop(K.adam_step(net.parameters(), loss_of), n, bs, shuffle=False)

        def epoch():
            net.state = None  # reset every epoch, as the Keras side does
            loop()

        return epoch

    return K.Case("stateful_lstm", f"lesson 6 stateful LSTM({n_hidden}), batches of {bs} x {cs} in order",
                  "chars", x, y, bs, build, torch_epoch, n, units_per_sample=cs, shuffle=False)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    K.add_arguments(p)
    args = p.parse_args(argv)
    C.machine_info("bench_rnn: lesson 6 / char-rnn LSTMs, Keras eager and compiled against plain PyTorch")
    K.configure(args)
    K.run_cases(CASES, args)


if __name__ == "__main__":
    main()
