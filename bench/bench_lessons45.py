"""Lessons 4-5: what the toolkit costs against plain PyTorch and plain Python, measured in the same run.

- ``dot_model_ratings_per_s_vs_plain_torch``: training throughput (ratings/s) of lesson 4's dot-product model
  (``dl1.models.collab.dot_model``: two 50-factor embeddings with L2 1e-4, dot, mse, Adam 0.001, batch 64) on
  synthetic MovieLens-sized ratings (671 users, 9,066 movies, as the course's data), against the same model
  written in plain PyTorch (``nn.Embedding``, the same penalty on the whole embedding matrices, ``torch.optim.Adam``,
  shuffled batches of 64). One warm-up epoch each, then a timed epoch.
- ``conv_model_reviews_per_s_vs_plain_torch``: the same for lesson 5's single-convolution sentiment model
  (Embedding 5000x32 -> Dropout -> Conv1D(64, 5, same, relu) -> Dropout -> MaxPooling1D -> Flatten ->
  Dense(100, relu) -> Dropout(0.7) -> Dense(1, sigmoid); binary cross-entropy, Adam, batch 64, 500 ids a review).
- ``tokenize_pad_vs_plain_python``: fitting the ``Tokenizer`` on 25,000 synthetic reviews, turning them into ids
  and padding to 500 (``pad_sequences``), against a plain-Python version of the same (dict counts, a sort, list
  look-ups, list padding, then ``np.array``).

Ratios are ours / baseline (throughputs: higher is better).

    python bench/bench_lessons45.py            # the sizes above (a few minutes on 2 CPU cores)
    python bench/bench_lessons45.py --quick    # tiny sizes (the tests)
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C

import dl1  # noqa: F401  (picks the Keras backend before Keras is imported)


def synthetic_ratings(n, n_users, n_movies, seed=0):
    rng = np.random.RandomState(seed)
    u = rng.randint(0, n_users, n)
    m = rng.randint(0, n_movies, n)
    uf, mf = rng.normal(0, 0.6, (n_users, 3)), rng.normal(0, 0.6, (n_movies, 3))
    r = np.clip(np.round((3.5 + (uf[u] * mf[m]).sum(1) + rng.normal(0, 0.3, n)) * 2) / 2, 0.5, 5)
    return u.astype(np.int64), m.astype(np.int64), r.astype(np.float32)


def time_keras_epoch(model, x, y, batch_size):
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)  # warm-up: builds the train function
    t0 = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    return time.perf_counter() - t0


def time_torch_epoch(loss_of, opt, n, batch_size, seed=0):
    """Seconds of one shuffled epoch of plain PyTorch steps (after a warm-up epoch): ``loss_of(idx)`` is the
    loss of the examples ``idx`` (a tensor of row numbers), ``opt`` the optimizer that steps on it."""
    import torch

    rng = np.random.RandomState(seed)

    def epoch():
        order = rng.permutation(n)
        for i in range(0, n, batch_size):
            loss = loss_of(torch.from_numpy(order[i:i + batch_size]))
            opt.zero_grad()
            loss.backward()
            opt.step()

    epoch()
    t0 = time.perf_counter()
    epoch()
    return time.perf_counter() - t0


def bench_dot(n, n_users, n_movies, batch_size, n_factors=50):
    import torch

    from dl1.models.collab import dot_model

    u, m, r = synthetic_ratings(n, n_users, n_movies)
    model = dot_model(n_users, n_movies, n_factors)
    ours = n / time_keras_epoch(model, [u, m], r, batch_size)

    torch.manual_seed(0)
    ue, me = torch.nn.Embedding(n_users, n_factors), torch.nn.Embedding(n_movies, n_factors)
    for e in (ue, me):
        torch.nn.init.uniform_(e.weight, -0.05, 0.05)  # Keras' Embedding default
    opt = torch.optim.Adam(list(ue.parameters()) + list(me.parameters()), lr=0.001, eps=1e-7)
    tu, tm, tr = torch.from_numpy(u), torch.from_numpy(m), torch.from_numpy(r)

    def loss_of(idx):
        pred = (ue(tu[idx]) * me(tm[idx])).sum(-1)
        return torch.mean((pred - tr[idx]) ** 2) + 1e-4 * (ue.weight.pow(2).sum() + me.weight.pow(2).sum())

    baseline = n / time_torch_epoch(loss_of, opt, n, batch_size)
    C.say(f"dot-product model, {n} ratings, {n_users} users x {n_movies} movies, batch {batch_size}: "
          f"ours {ours:.0f} ratings/s, plain torch {baseline:.0f} ratings/s")
    return ours, baseline


def bench_conv(n, seq_len, vocab_size, batch_size):
    import keras
    import torch

    from dl1.nn.model import Sequential
    from dl1.nn.optimizers import Adam

    rng = np.random.RandomState(0)
    x = rng.randint(0, vocab_size, (n, seq_len)).astype(np.int32)
    y = rng.randint(0, 2, n).astype(np.float32)
    L = keras.layers
    model = Sequential([keras.Input((seq_len,)), L.Embedding(vocab_size, 32), L.Dropout(0.2),
                        L.Conv1D(64, 5, padding="same", activation="relu"), L.Dropout(0.2), L.MaxPooling1D(),
                        L.Flatten(), L.Dense(100, activation="relu"), L.Dropout(0.7),
                        L.Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer=Adam(), metrics=["accuracy"])
    ours = n / time_keras_epoch(model, x, y, batch_size)

    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(vocab_size, 32)
            self.conv = torch.nn.Conv1d(32, 64, 5, padding=2)
            self.fc1 = torch.nn.Linear(64 * (seq_len // 2), 100)
            self.fc2 = torch.nn.Linear(100, 1)
            self.d2, self.d7 = torch.nn.Dropout(0.2), torch.nn.Dropout(0.7)

        def forward(self, ids):
            h = self.d2(self.emb(ids)).transpose(1, 2)
            h = self.d2(torch.relu(self.conv(h)))
            h = torch.nn.functional.max_pool1d(h, 2).transpose(1, 2).flatten(1)
            return torch.sigmoid(self.fc2(self.d7(torch.relu(self.fc1(h))))).squeeze(1)

    net = Net()
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=0.001, eps=1e-7)
    tx, ty = torch.from_numpy(x.astype(np.int64)), torch.from_numpy(y)

    def loss_of(idx):
        return torch.nn.functional.binary_cross_entropy(net(tx[idx]), ty[idx])

    baseline = n / time_torch_epoch(loss_of, opt, n, batch_size)
    C.say(f"conv sentiment model, {n} reviews of {seq_len} ids, batch {batch_size}: ours {ours:.0f} reviews/s, "
          f"plain torch {baseline:.0f} reviews/s")
    return ours, baseline


def plain_python_tokenize_pad(texts, maxlen):
    table = str.maketrans({c: " " for c in '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'})
    tokenized = [t.lower().translate(table).split() for t in texts]
    counts = {}
    for words in tokenized:
        for w in words:
            counts[w] = counts.get(w, 0) + 1
    index = {w: i for i, (w, _) in enumerate(sorted(counts.items(), key=lambda kv: -kv[1]), 1)}
    rows = []
    for words in tokenized:
        ids = [index[w] for w in words][-maxlen:]
        rows.append([0] * (maxlen - len(ids)) + ids)
    return np.array(rows, dtype=np.int32)


def bench_tokenize(work, n, maxlen, repeats):
    from dl1.data.datasets import imdb as imdb_ds
    from dl1.data.text import Tokenizer, pad_sequences, read_imdb

    folder = os.path.join(work, f"imdb{n}")
    if not os.path.isdir(folder):
        imdb_ds.synthesize(folder, seed=0, n=n)
    texts, _ = read_imdb(folder, "train")

    def ours_fn():
        tok = Tokenizer()
        tok.fit_on_texts(texts)
        return pad_sequences(tok.texts_to_sequences(texts), maxlen=maxlen)

    a, b = ours_fn(), plain_python_tokenize_pad(texts, maxlen)
    assert (a == b).all(), "the two tokenisers disagree"
    t_ours, _ = C.timed(ours_fn, repeats=repeats)
    t_base, _ = C.timed(lambda: plain_python_tokenize_pad(texts, maxlen), repeats=repeats)
    C.say(f"tokenise + pad {len(texts)} reviews to {maxlen}: ours {t_ours:.2f} s, plain Python {t_base:.2f} s "
          "(same ids: checked)")
    return len(texts) / t_ours, len(texts) / t_base


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", "--tiny", action="store_true", dest="quick", help="tiny sizes (the tests)")
    p.add_argument("--out", default=None, help="keep the synthetic reviews here")
    args = p.parse_args(argv)
    C.machine_info("bench_lessons45: lesson 4-5 training and tokenising against plain torch / Python")
    import torch

    torch.set_num_threads(max(1, C.usable_cpus()))
    if args.quick:
        dot = bench_dot(2000, 50, 200, 64)
        conv = bench_conv(128, 60, 500, 64)
        n_reviews, repeats = 200, 1
    else:
        dot = bench_dot(100_000, 671, 9066, 64)
        conv = bench_conv(2000, 500, 5000, 64)
        n_reviews, repeats = 25_000, 3
    with C.workdir(args.out) as work:
        tok = bench_tokenize(work, n_reviews, 60 if args.quick else 500, repeats)
    C.say()
    C.result("dot_model_ratings_per_s_vs_plain_torch", *dot)
    C.result("conv_model_reviews_per_s_vs_plain_torch", *conv)
    C.result("tokenize_pad_vs_plain_python", *tok)


if __name__ == "__main__":
    main()
