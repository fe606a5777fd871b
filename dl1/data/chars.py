"""Text as characters, for the character models of lesson 6 and char-rnn (numpy only, no Keras).

The course's steps, as functions:

- ``load_text(path)``: the text of a plain-text file; an empty, binary or too-short file is one
  ``DataError`` line naming the file;
- ``CharVocab(text)``: ``chars`` (sorted, with ``"\\0"`` at index 0 for padding, as the course inserted it),
  ``vocab_size``, ``char_indices``, ``indices_char``, ``encode``/``decode``;
- ``one_hot(ids, vocab_size)``: the ``to_categorical`` of every id, any shape;
- ``char_columns(idx, cs)``: the lesson's fixed inputs, ``cs`` arrays of every ``cs``-th character (offsets
  0..cs-1) and the character that follows each window (the 3-char and 8-char models);
- ``char_sequences(idx, seq_len, stride)``: windows of ``seq_len`` ids and the same windows shifted by one
  (sequence-to-sequence targets); stride ``seq_len`` is lesson 6's, stride 1 char-rnn's;
- ``stateful_order(x, y, batch_size)``: the rows of consecutive windows re-laid out so that row ``j`` of
  batch ``i`` continues row ``j`` of batch ``i-1`` (what a ``stateful=True`` model needs);
- ``unigram_loss``: the cross-entropy of predicting every character by its frequency alone, the baseline
  every model must beat;
- ``sample(preds, temperature)``: draw a character id from a model's probabilities, sharpened or flattened.
"""

import os

import numpy as np

from dl1.io.checks import fraction, number, whole
from dl1.io.errors import DataError

PAD = "\0"

__all__ = ["PAD", "CharVocab", "char_columns", "char_sequences", "load_text", "one_hot", "sample",
           "split_ids", "stateful_order", "unigram_loss"]


def load_text(path, lower=False, min_length=1, what="seq_len"):
    """The text of the plain-text file ``path`` (UTF-8, or Latin-1 when it is not UTF-8).

    Refuses, with one line naming the file: a missing file, an empty one, a binary one (NUL bytes), and a
    text of ``min_length`` characters or fewer (the windows need ``seq_len + 1`` characters).
    """
    path = os.fspath(path)
    min_length = whole("min_length", min_length, minimum=0)
    if os.path.isdir(path):
        raise DataError(f"{path}: is a folder, not a text file")
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such text file")
    with open(path, "rb") as f:
        data = f.read()
    if not data.strip():
        raise DataError(f"{path}: the text file is empty")
    if b"\0" in data:
        at = data.index(b"\0")
        raise DataError(f"{path}: not a plain-text file (binary data: a NUL byte at offset {at})")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    # control characters other than whitespace mean a binary file (an image, a zip...) more than text
    controls = sum(1 for c in text[:100_000] if ord(c) < 32 and c not in "\n\r\t\f\v")
    if controls > max(2, len(text[:100_000]) // 100):
        raise DataError(f"{path}: not a plain-text file ({controls} control characters)")
    if lower:
        text = text.lower()
    if len(text) <= min_length:
        raise DataError(f"{path}: {len(text)} characters, too short for {what}={min_length - 1} "
                        f"(needs at least {min_length + 1})")
    return text


class CharVocab:
    """The characters of a text with their ids: ``chars[0]`` is the padding ``"\\0"`` (never in the text),
    the others sorted, as in the course (``chars = sorted(set(text)); chars.insert(0, "\\0")``)."""

    def __init__(self, text_or_chars, pad=True):
        if isinstance(text_or_chars, str):
            chars = sorted(set(text_or_chars) - {PAD})
            if pad:
                chars.insert(0, PAD)
        else:
            chars = list(text_or_chars)
        self.chars = chars
        self.char_indices = {c: i for i, c in enumerate(chars)}
        self.indices_char = dict(enumerate(chars))

    @property
    def vocab_size(self):
        return len(self.chars)

    def __len__(self):
        return len(self.chars)

    def __repr__(self):
        return f"CharVocab({self.vocab_size} characters)"

    def encode(self, text):
        """Ids of the characters of ``text`` (int64 array); an unknown character is a ``DataError``."""
        try:
            return np.fromiter((self.char_indices[c] for c in text), dtype=np.int64, count=len(text))
        except KeyError:
            unknown = sorted(set(text) - set(self.char_indices))
            raise DataError(f"characters not in the vocabulary: {''.join(unknown)!r}") from None

    def decode(self, ids):
        return "".join(self.indices_char[int(i)] for i in np.ravel(ids))


def one_hot(ids, vocab_size, dtype="float32"):
    """``ids`` of any shape -> ``ids.shape + (vocab_size,)``, one 1 per id (Keras' ``to_categorical``)."""
    vocab_size = whole("vocab_size", vocab_size)
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise DataError(f"ids must be from 0 to vocab_size-1={vocab_size - 1}, found {int(ids.min())}..{int(ids.max())}")
    return np.eye(vocab_size, dtype=dtype)[ids]


def char_columns(idx, cs):
    """The lesson's ``cs``-character inputs: ``xs[n][k] = idx[k*cs + n]`` for n in 0..cs-1, and
    ``y[k] = idx[k*cs + cs]``, the character after each window (non-overlapping windows, stride ``cs``).

    As the notebook did (``np.stack(c[:-2])``), the last two windows are dropped. Returns
    ``(xs, y)``: a list of ``cs`` 1-D int arrays and one 1-D array, all of the same length.
    """
    cs = whole("cs", cs)
    idx = np.asarray(idx, dtype=np.int64)
    starts = np.arange(0, len(idx) - 1 - cs, cs)[:-2]
    if len(starts) < 1:
        raise DataError(f"a text of {len(idx)} characters is too short for {cs}-character windows")
    xs = [idx[starts + n] for n in range(cs)]
    return xs, idx[starts + cs]


def char_sequences(idx, seq_len, stride=None):
    """Windows of ``seq_len`` ids, ``x[k] = idx[s_k : s_k+seq_len]``, and their targets shifted by one,
    ``y[k] = idx[s_k+1 : s_k+seq_len+1]``, with starts ``s_k`` every ``stride`` characters (default
    ``seq_len``: consecutive, non-overlapping windows, lesson 6's; ``stride=1``: char-rnn's)."""
    seq_len = whole("seq_len", seq_len)
    stride = seq_len if stride is None else whole("stride", stride)
    idx = np.asarray(idx, dtype=np.int64)
    n = (len(idx) - seq_len - 1) // stride + 1
    if len(idx) < seq_len + 1 or n < 1:
        raise DataError(f"a text of {len(idx)} characters is too short for windows of seq_len={seq_len}")
    starts = np.arange(n) * stride
    cols = starts[:, None] + np.arange(seq_len)[None, :]
    return idx[cols], idx[cols + 1]


def stateful_order(x, y=None, batch_size=64):
    """Rows of consecutive windows (``char_sequences`` with stride ``seq_len``) re-laid out for a stateful
    model: ``batch_size`` parallel streams, each a contiguous stretch of the text, so that row ``j`` of
    batch ``i`` is the window that follows row ``j`` of batch ``i-1``. The rows that do not fill a last
    batch are dropped. Train with ``shuffle=False``. Returns ``x`` (and ``y`` when given) reordered."""
    batch_size = whole("batch_size", batch_size)
    if y is not None and len(y) != len(x):
        raise DataError(f"x and y must have the same number of rows, not {len(x)} and {len(y)}")
    n_batches = len(x) // batch_size
    if n_batches < 1:
        raise DataError(f"{len(x)} sequences make no batch of {batch_size}")
    # stream j holds windows j*n_batches ... (j+1)*n_batches-1; batch i takes window i of every stream
    order = (np.arange(batch_size)[None, :] * n_batches + np.arange(n_batches)[:, None]).ravel()
    if y is None:
        return x[order]
    return x[order], y[order]


def split_ids(idx, valid_fraction=0.1):
    """The ids split in two contiguous parts: the first for training, the last ``valid_fraction`` to
    validate on (text that the model never saw, not windows that overlap the training ones)."""
    valid_fraction = fraction("valid_fraction", valid_fraction)
    idx = np.asarray(idx)
    if len(idx) < 2:
        raise DataError(f"{len(idx)} ids cannot be split in two")
    n_valid = min(max(1, int(round(len(idx) * valid_fraction))), len(idx) - 1)
    return idx[:-n_valid], idx[-n_valid:]


def unigram_loss(train_ids, valid_ids, vocab_size):
    """Mean cross-entropy (nats) on ``valid_ids`` of the model that predicts every character from its
    frequency in ``train_ids`` (add-one smoothing): the loss of a model that learnt nothing about order."""
    vocab_size = whole("vocab_size", vocab_size)
    counts = np.bincount(np.ravel(train_ids), minlength=vocab_size).astype(np.float64) + 1.0
    p = counts / counts.sum()
    return float(-np.log(p[np.ravel(valid_ids)]).mean())


def sample(preds, temperature=1.0, rng=None):
    """An id drawn from the probabilities ``preds`` at ``temperature``: 1 samples them as they are, below
    1 sharpens them (0 takes the most likely), above 1 flattens them toward uniform."""
    temperature = number("temperature", temperature, 0)
    preds = np.asarray(preds, dtype=np.float64).ravel()
    if not preds.size or not np.isfinite(preds).all() or (preds < 0).any():
        raise DataError("preds must be probabilities: finite, not negative, at least one")
    if temperature <= 0:
        return int(np.argmax(preds))
    logits = np.log(np.maximum(preds, 1e-12)) / temperature
    p = np.exp(logits - logits.max())
    p /= p.sum()
    rng = np.random.default_rng() if rng is None else rng
    return int(rng.choice(len(p), p=p))
