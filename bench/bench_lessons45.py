"""Lessons 4-5: the lesson models trained eager and compiled against plain PyTorch, and the tokenizer against plain
Python, measured in the same run.

Cases (``bench/_compile.py`` says how each is measured; ``--cases`` picks some):

- ``dot_model``, ``bias_model``, ``neural_model``: lesson 4's recommenders (``dl1.models.collab``: 50-factor
  embeddings with L2 1e-4, mse, Adam 0.001, batch 64) on synthetic MovieLens-sized ratings (671 users, 9,066
  movies, 100,000 ratings, as the course's data), against the same models in plain PyTorch (``nn.Embedding``,
  the same penalty on the whole embedding matrices, ``torch.optim.Adam``, shuffled batches of 64);
- ``conv_model``: lesson 5's single-convolution sentiment model (Embedding 5000x32 -> Dropout -> Conv1D(64, 5,
  same, relu) -> Dropout -> MaxPooling1D -> Flatten -> Dense(100, relu) -> Dropout(0.7) -> Dense(1, sigmoid);
  binary cross-entropy, Adam, batch 64, 2,000 reviews of 500 ids);
- ``multiconv_model``: lesson 5's multi-size CNN (Keras 1 ``Embedding(5000, 50, dropout=0.2)`` -> Dropout ->
  Conv1D(64, k, same, relu) -> MaxPooling1D -> Flatten for k = 3, 4, 5, concatenated -> Dropout(0.5) ->
  Dense(100, relu) -> Dropout(0.7) -> Dense(1, sigmoid));
- ``lstm_model``: lesson 5's LSTM (Keras 1 ``Embedding(5000, 32, W_regularizer=l2(1e-6), dropout=0.2)`` ->
  LSTM(100) -> Dense(1, sigmoid)) on 640 reviews of 500 ids (its compiled step unrolls 500 time steps);

and ``tokenize_pad_vs_plain_python``: fitting the ``Tokenizer`` on 25,000 synthetic reviews, turning them into
ids and padding to 500 (``pad_sequences``), against a plain-Python version of the same (dict counts, a sort,
list look-ups, list padding, then ``np.array``).

Ratios are ours / baseline (throughputs: higher is better).

    python bench/bench_lessons45.py                      # the sizes above, eager + compiled (hours on 2 CPU cores)
    python bench/bench_lessons45.py --no-compile         # eager and plain PyTorch only (no compiles)
    python bench/bench_lessons45.py --cases dot_model --json dot.json
    python bench/bench_lessons45.py --quick --no-compile # tiny sizes (the tests)
"""

import argparse
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C
import _compile as K

import dl1  # noqa: F401  (picks the Keras backend before Keras is imported)

CASES = {key: f"bench_lessons45:{key}_case" for key in
         ("dot_model", "bias_model", "neural_model", "conv_model", "multiconv_model", "lstm_model")}


def synthetic_ratings(n, n_users, n_movies, seed=0):
    rng = np.random.RandomState(seed)
    u = rng.randint(0, n_users, n)
    m = rng.randint(0, n_movies, n)
    uf, mf = rng.normal(0, 0.6, (n_users, 3)), rng.normal(0, 0.6, (n_movies, 3))
    r = np.clip(np.round((3.5 + (uf[u] * mf[m]).sum(1) + rng.normal(0, 0.3, n)) * 2) / 2, 0.5, 5)
    return u.astype(np.int64), m.astype(np.int64), r.astype(np.float32)


RATINGS = {"quick": (640, 50, 200), "cpu": (100_000, 671, 9066), "full": (100_000, 671, 9066)}
REVIEWS = {"quick": (128, 60, 500), "cpu": (2000, 500, 5000), "full": (25_000, 500, 5000)}


def uniform_embedding(torch, n, dim, device):
    """``nn.Embedding`` initialised as Keras' (uniform in +-0.05)."""
    e = torch.nn.Embedding(n, dim).to(device)
    torch.nn.init.uniform_(e.weight, -0.05, 0.05)
    return e


def _ratings_case(size, key, title, builder, torch_net, notes=""):
    n, n_users, n_movies = RATINGS[size]
    u, m, r = synthetic_ratings(n, n_users, n_movies)

    def build(jit_compile):
        from dl1.models import collab

        return K.rejit(getattr(collab, builder)(n_users, n_movies, 50), jit_compile)

    def torch_epoch():
        import torch

        device = K.torch_device()
        torch.manual_seed(0)
        net = torch_net(torch, n_users, n_movies, 50, device)
        tu, tm, tr = (torch.from_numpy(a).to(device) for a in (u, m, r))

        def loss_of(idx):
            pred = net(tu[idx], tm[idx])
            penalty = net.ue.weight.pow(2).sum() + net.me.weight.pow(2).sum()
            return torch.mean((pred - tr[idx]) ** 2) + 1e-4 * penalty

        net.train()
        return K.torch_loop(K.adam_step(net.parameters(), loss_of), n, 64)

    return K.Case(key, title, "ratings", [u, m], r, 64, build, torch_epoch, n, notes=notes)


def _recommender(torch, n_users, n_movies, f, device, bias=False, hidden=0):
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.ue, self.me = uniform_embedding(torch, n_users, f, device), uniform_embedding(torch, n_movies, f, device)
            if bias:
                self.ub, self.mb = uniform_embedding(torch, n_users, 1, device), uniform_embedding(torch, n_movies, 1, device)
            if hidden:
                self.fc1, self.fc2 = torch.nn.Linear(2 * f, hidden), torch.nn.Linear(hidden, 1)
                self.d1, self.d2 = torch.nn.Dropout(0.3), torch.nn.Dropout(0.75)

        def forward(self, u, m):
            if hidden:
                h = self.d1(torch.cat([self.ue(u), self.me(m)], 1))
                return self.fc2(self.d2(torch.relu(self.fc1(h)))).squeeze(1)
            pred = (self.ue(u) * self.me(m)).sum(-1)
            if bias:
                pred = pred + self.ub(u).squeeze(1) + self.mb(m).squeeze(1)
            return pred

    return Net().to(device)


def dot_model_case(size):
    return _ratings_case(size, "dot_model", "lesson 4 dot product (dl1.models.collab.dot_model)", "dot_model",
                         _recommender)


def bias_model_case(size):
    return _ratings_case(size, "bias_model", "lesson 4 dot product with biases (collab.bias_model)", "bias_model",
                         lambda *a: _recommender(*a, bias=True))


def neural_model_case(size):
    return _ratings_case(size, "neural_model", "lesson 4 neural recommender (collab.neural_model)", "neural_model",
                         lambda *a: _recommender(*a, hidden=70))


def _reviews(size, n=None):
    n_default, seq_len, vocab = REVIEWS[size]
    n = n_default if n is None else n
    rng = np.random.RandomState(0)
    x = rng.randint(0, vocab, (n, seq_len)).astype(np.int32)
    y = rng.randint(0, 2, n).astype(np.float32)
    return x, y, n, seq_len, vocab


def _reviews_case(size, key, title, build_keras, torch_net, n=None, notes=""):
    x, y, n, seq_len, vocab = _reviews(size, n)

    def build(jit_compile):
        return K.rejit(build_keras(seq_len, vocab), jit_compile)

    def torch_epoch():
        import torch

        device = K.torch_device()
        torch.manual_seed(0)
        net = torch_net(torch, seq_len, vocab).to(device)
        net.train()
        tx, ty = torch.from_numpy(x.astype(np.int64)).to(device), torch.from_numpy(y).to(device)

        def loss_of(idx):
            return torch.nn.functional.binary_cross_entropy(net(tx[idx]), ty[idx]) + net.penalty()

        return K.torch_loop(K.adam_step(net.parameters(), loss_of), n, 64)

    return K.Case(key, title, "reviews", x, y, 64, build, torch_epoch, n, notes=notes)


def _row_dropout(torch, weight, p, training):
    """Keras 1 ``Embedding(dropout=p)``: whole rows of the matrix zeroed for the batch, the rest scaled."""
    if not (training and p):
        return weight
    keep = (torch.rand(weight.shape[0], 1, device=weight.device) >= p).to(weight.dtype)
    return weight * keep / (1 - p)


def conv_model_case(size):
    def keras_model(seq_len, vocab):
        import keras

        from dl1.nn.model import Sequential
        from dl1.nn.optimizers import Adam

        L = keras.layers
        model = Sequential([keras.Input((seq_len,)), L.Embedding(vocab, 32), L.Dropout(0.2),
                            L.Conv1D(64, 5, padding="same", activation="relu"), L.Dropout(0.2), L.MaxPooling1D(),
                            L.Flatten(), L.Dense(100, activation="relu"), L.Dropout(0.7),
                            L.Dense(1, activation="sigmoid")])
        model.compile(loss="binary_crossentropy", optimizer=Adam(), metrics=["accuracy"])
        return model

    def torch_net(torch, seq_len, vocab):
        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.emb = uniform_embedding(torch, vocab, 32, "cpu")
                self.conv = torch.nn.Conv1d(32, 64, 5, padding=2)
                self.fc1 = torch.nn.Linear(64 * (seq_len // 2), 100)
                self.fc2 = torch.nn.Linear(100, 1)
                self.d2, self.d7 = torch.nn.Dropout(0.2), torch.nn.Dropout(0.7)

            def forward(self, ids):
                h = self.d2(self.emb(ids)).transpose(1, 2)
                h = self.d2(torch.relu(self.conv(h)))
                h = torch.nn.functional.max_pool1d(h, 2).transpose(1, 2).flatten(1)
                return torch.sigmoid(self.fc2(self.d7(torch.relu(self.fc1(h))))).squeeze(1)

            def penalty(self):
                return 0.0

        return Net()

    return _reviews_case(size, "conv_model", "lesson 5 single-convolution sentiment model", keras_model, torch_net)


def multiconv_model_case(size):
    dim = 16 if size == "quick" else 50

    def keras_model(seq_len, vocab):
        import keras
        from keras.layers import Dense

        from dl1.nn.model import Model, Sequential
        from dl1.nn.optimizers import Adam
        from utils import Conv1D, Dropout, Embedding, Flatten, MaxPooling1D, merge

        graph_in = keras.Input((seq_len, dim))
        convs = []
        for fsz in range(3, 6):
            h = Conv1D(64, fsz, border_mode="same", activation="relu")(graph_in)
            convs.append(Flatten()(MaxPooling1D()(h)))
        graph = Model(graph_in, merge(convs, mode="concat"))
        model = Sequential([Embedding(vocab, dim, input_length=seq_len, dropout=0.2), Dropout(0.2), graph,
                            Dropout(0.5), Dense(100, activation="relu"), Dropout(0.7), Dense(1, activation="sigmoid")])
        model.compile(loss="binary_crossentropy", optimizer=Adam(), metrics=["accuracy"])
        return model

    def torch_net(torch, seq_len, vocab):
        F = torch.nn.functional
        # torch pads an even kernel's 'same' asymmetrically through a padded copy, and says so every call
        warnings.filterwarnings("ignore", message="Using padding='same' with even kernel lengths")

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.emb = uniform_embedding(torch, vocab, dim, "cpu")
                self.convs = torch.nn.ModuleList([torch.nn.Conv1d(dim, 64, k, padding="same") for k in (3, 4, 5)])
                self.fc1 = torch.nn.Linear(3 * 64 * (seq_len // 2), 100)
                self.fc2 = torch.nn.Linear(100, 1)

            def forward(self, ids):
                h = F.embedding(ids, _row_dropout(torch, self.emb.weight, 0.2, self.training))
                h = F.dropout(h, 0.2, self.training).transpose(1, 2)
                h = torch.cat([F.max_pool1d(torch.relu(c(h)), 2).transpose(1, 2).flatten(1) for c in self.convs], 1)
                h = F.dropout(torch.relu(self.fc1(F.dropout(h, 0.5, self.training))), 0.7, self.training)
                return torch.sigmoid(self.fc2(h)).squeeze(1)

            def penalty(self):
                return 0.0

        return Net()

    return _reviews_case(size, "multiconv_model", f"lesson 5 multi-size CNN (convolutions of 3, 4, 5; {dim}-d "
                         "embedding with row dropout)", keras_model, torch_net)


def lstm_model_case(size):
    n = {"quick": 64, "cpu": 640, "full": 25_000}[size]
    units = 16 if size == "quick" else 100

    def keras_model(seq_len, vocab):
        import keras
        from keras.layers import Dense

        from dl1.nn.model import Sequential
        from utils import LSTM, Embedding

        model = Sequential([Embedding(vocab, 32, input_length=seq_len, W_regularizer=keras.regularizers.l2(1e-6),
                                      dropout=0.2),
                            LSTM(units), Dense(1, activation="sigmoid")])
        model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
        return model

    def torch_net(torch, seq_len, vocab):
        F = torch.nn.functional

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.emb = uniform_embedding(torch, vocab, 32, "cpu")
                self.lstm = torch.nn.LSTM(32, units, batch_first=True)
                self.fc = torch.nn.Linear(units, 1)

            def forward(self, ids):
                h = F.embedding(ids, _row_dropout(torch, self.emb.weight, 0.2, self.training))
                return torch.sigmoid(self.fc(self.lstm(h)[1][0][0])).squeeze(1)

            def penalty(self):
                return 1e-6 * self.emb.weight.pow(2).sum()

        return Net()

    return _reviews_case(size, "lstm_model", f"lesson 5 LSTM({units}) sentiment model", keras_model, torch_net, n=n,
                         notes="Keras' LSTM on the torch backend loops over the time steps in Python off CUDA "
                               "(and under torch.compile also on CUDA): the compiled step unrolls them all")


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
    K.add_arguments(p)
    p.add_argument("--out", default=None, help="keep the synthetic reviews here")
    p.add_argument("--no-tokenize", action="store_true", help="skip the tokenizer comparison")
    args = p.parse_args(argv)
    C.machine_info("bench_lessons45: lesson 4-5 training (eager, compiled) and tokenising against plain torch / Python")
    K.configure(args)
    tok = None
    if not args.no_tokenize:
        n_reviews, repeats = (200, 1) if args.quick else (25_000, 3)
        with C.workdir(args.out) as work:
            tok = bench_tokenize(work, n_reviews, 60 if args.quick else 500, repeats)
    K.run_cases(CASES, args)
    if tok:
        C.result("tokenize_pad_vs_plain_python", *tok)


if __name__ == "__main__":
    main()
