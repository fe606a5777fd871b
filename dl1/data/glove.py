"""Pre-trained word vectors (lesson 5, wordvectors): read a GloVe text file, build an embedding matrix.

``read_glove(path, dim=50)`` reads a GloVe text file (a word, then its numbers, one word per line) into
``(vecs, words, wordidx)``; a ragged row, a number that is not one, or vectors of another length than ``dim``
raise a one-line ``DataError`` naming the file and line. ``save_glove``/``load_glove`` keep the course's
three pre-processed files (``<name>.dat`` array, ``<name>_words.pkl``, ``<name>_idx.pkl``), each written
atomically; ``load_glove`` also takes the text file itself. ``embedding_matrix`` is the course's
``create_emb``: one row per word id of a vocabulary, copied from GloVe where the word is there, random
(``normal(scale=0.6)``) where it is not, row 0 (padding) zero, the whole divided by 3.
"""

import os
import pickle
import re

import numpy as np

from dl1.io.arrays import load_array, save_array
from dl1.io.atomic import write_bytes
from dl1.io.errors import DataError
from dl1.io.log import note

__all__ = ["embedding_matrix", "load_glove", "load_vectors", "read_glove", "save_glove", "w2v"]

WORD_PATTERN = r"^[a-zA-Z0-9\-]*$"


def read_glove(path, dim=None, max_words=None):
    """``(vecs float32 (n, dim), words, wordidx)`` from a GloVe text file (see the module docstring)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    words, rows = [], []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                raise DataError(f"{path} line {lineno}: not UTF-8 text (is this a GloVe text file?)") from None
            if not line.strip():
                continue
            parts = line.rstrip(" ").split(" ")
            if dim is None:
                dim = len(parts) - 1
                if dim < 1:
                    raise DataError(f"{path} line {lineno}: a word without numbers (not a GloVe file?)")
            if len(parts) - 1 != dim:
                why = " (vectors of another dimension than asked)" if not words else " (ragged rows)"
                raise DataError(f"{path} line {lineno}: {len(parts) - 1} numbers after the word, expected "
                                f"{dim}{why}")
            numbers = parts[1:]
            words.append(parts[0])
            rows.append(numbers)
            if max_words and len(words) >= max_words:
                break
    if not words:
        raise DataError(f"{path}: the file holds no word vectors")
    try:
        vecs = np.array(rows, dtype=np.float32)
    except ValueError:
        for i, r in enumerate(rows):
            try:
                np.array(r, dtype=np.float32)
            except ValueError:
                raise DataError(f"{path}: line {i + 1} ({words[i]!r}) holds something that is not a number"
                                ) from None
        raise
    return vecs, words, {w: i for i, w in enumerate(words)}


def save_glove(loc, vecs, words, wordidx=None):
    """Write ``loc + '.dat'`` (``save_array``), ``loc + '_words.pkl'`` and ``loc + '_idx.pkl'`` (the course's
    pre-processed files), each atomically."""
    wordidx = wordidx if wordidx is not None else {w: i for i, w in enumerate(words)}
    save_array(loc + ".dat", vecs)
    write_bytes(loc + "_words.pkl", pickle.dumps(list(words), protocol=4))
    write_bytes(loc + "_idx.pkl", pickle.dumps(dict(wordidx), protocol=4))
    return loc


def load_glove(loc, dim=None):
    """``(vecs, words, wordidx)`` from a GloVe text file, or from the three files ``save_glove`` wrote."""
    loc = os.fspath(loc)
    if os.path.isfile(loc):
        return read_glove(loc, dim=dim)
    if not os.path.exists(loc + ".dat"):
        raise DataError(f"{loc}: neither a GloVe text file nor pre-processed vectors ({loc}.dat)")
    vecs = load_array(loc + ".dat")
    with open(loc + "_words.pkl", "rb") as f:
        words = pickle.load(f)
    with open(loc + "_idx.pkl", "rb") as f:
        wordidx = pickle.load(f)
    if dim is not None and vecs.shape[1] != dim:
        raise DataError(f"{loc}.dat: vectors of {vecs.shape[1]} numbers, expected {dim}")
    return vecs, words, wordidx


load_vectors = load_glove  # lesson 5's name for the same


def w2v(word, vecs, wordidx):
    """The vector of ``word`` (the wordvectors notebook's ``w2v``)."""
    return vecs[wordidx[word]]


def embedding_matrix(word_index, vecs, wordidx, vocab_size, scale=0.6, divide=3.0, seed=None,
                     pattern=WORD_PATTERN, verbose=True):
    """A ``(vocab_size, dim)`` matrix for ids ``0..vocab_size-1`` of ``word_index`` (word -> id, or a dict
    id -> word), as the course's ``create_emb``: row 0 zero; a word matching ``pattern`` and present in
    GloVe gets its GloVe vector; any other id, and the last one (the "rare word" id), ``normal(0, scale)``;
    then everything is divided by ``divide``."""
    items = list(word_index.items())
    idx2word = dict(items) if items and isinstance(items[0][0], (int, np.integer)) else \
        {i: w for w, i in items}
    rng = np.random.RandomState(seed) if seed is not None else np.random
    dim = vecs.shape[1]
    emb = np.zeros((vocab_size, dim), dtype=np.float32)
    ok = re.compile(pattern)
    found = 0
    for i in range(1, vocab_size - 1):
        word = idx2word.get(i)
        if word is not None and ok.match(word) and word in wordidx:
            emb[i] = vecs[wordidx[word]]
            found += 1
        else:
            emb[i] = rng.normal(scale=scale, size=dim)
    if vocab_size > 1:
        emb[-1] = rng.normal(scale=scale, size=dim)
    emb /= divide
    if verbose:
        note("%d of %d word ids start from their GloVe vector, the others at random", found,
             max(vocab_size - 2, 0))
    return emb
