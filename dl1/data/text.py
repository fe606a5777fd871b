"""Text for lesson 5: read the IMDB review folders, a Keras-1-compatible ``Tokenizer``, fixed-length padding.

``read_imdb(path, 'train')`` reads ``path/train/pos/*.txt`` then ``path/train/neg/*.txt`` (labels 1 then 0,
each folder in the order of the review ids); ``split`` is a folder name inside ``path`` (``'../x'`` is
refused). A folder without ``pos``/``neg`` is one ``DataError`` line; a review that is not UTF-8 is read as
Latin-1 and named in one warning; an empty review or a binary file is left out and named in one warning (the
read fails only when no review is left). ``Tokenizer`` is Keras 1/2's
``keras.preprocessing.text.Tokenizer`` (gone from Keras 3): ``fit_on_texts``, ``texts_to_sequences``,
``word_index`` (1 = the most frequent word, as the course's ``imdb.get_word_index()``), ``num_words``
(``nb_words`` in Keras 1), ``word_counts``, ``document_count``, ``texts_to_matrix``. ``pad_sequences`` pads and
truncates at the front by default, as Keras does, so long reviews keep their last words.
"""

import os
import re
from collections import Counter, OrderedDict, defaultdict

import numpy as np

from dl1.io.checks import folder_name, whole
from dl1.io.errors import DataError
from dl1.io.log import examples, warn

__all__ = ["DEFAULT_FILTERS", "Tokenizer", "limit_vocab", "pad_sequences", "read_imdb", "read_reviews",
           "text_to_word_sequence"]

DEFAULT_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'


def _table(filters, split):
    return str.maketrans({c: split for c in filters})


def text_to_word_sequence(text, filters=DEFAULT_FILTERS, lower=True, split=" "):
    """Keras' word splitter: lower-case, filtered characters become separators, empty words dropped."""
    if lower:
        text = text.lower()
    return [w for w in text.translate(_table(filters, split)).split(split) if w]


def one_hot(text, n, filters=DEFAULT_FILTERS, lower=True, split=" "):
    """Keras 1's ``one_hot``: each word of ``text`` as an integer in ``[1, n)`` by hashing (collisions
    possible; 0 is left for padding). The hash is MD5, so ids are the same in every process (Keras used
    Python's ``hash``, which is randomised per process since Python 3.3)."""
    import hashlib

    n = whole("n", n, minimum=2)
    words = text_to_word_sequence(text, filters=filters, lower=lower, split=split)
    return [int(hashlib.md5(w.encode("utf-8")).hexdigest(), 16) % (n - 1) + 1 for w in words]


class Tokenizer:
    """Keras 1/2's text tokenizer (see the module docstring); ``nb_words=`` is the Keras 1 spelling of
    ``num_words``."""

    def __init__(self, num_words=None, filters=DEFAULT_FILTERS, lower=True, split=" ", char_level=False,
                 oov_token=None, nb_words=None, **kwargs):
        if kwargs:
            raise TypeError(f"Tokenizer got unexpected arguments: {', '.join(kwargs)}")
        self.num_words = num_words if num_words is not None else nb_words
        if self.num_words is not None:
            self.num_words = whole("num_words", self.num_words)
        self.filters, self.lower, self.split = filters, lower, split
        self.char_level, self.oov_token = char_level, oov_token
        self.word_counts = OrderedDict()
        self.word_docs = defaultdict(int)
        self.document_count = 0
        self.word_index, self.index_word, self.index_docs = {}, {}, defaultdict(int)
        self._table = _table(filters, split)

    @property
    def nb_words(self):
        return self.num_words

    def _words(self, text):
        if self.char_level:
            return list(text.lower() if self.lower else text)
        if self.lower:
            text = text.lower()
        if self.split == " ":
            return text.translate(self._table).split()
        return [w for w in text.translate(self._table).split(self.split) if w]

    def fit_on_texts(self, texts):
        counts, docs = Counter(self.word_counts), Counter(self.word_docs)
        for text in texts:
            self.document_count += 1
            seq = self._words(text) if isinstance(text, str) else list(text)
            counts.update(seq)  # C loops; insertion order (first seen) kept, as Keras' OrderedDict
            docs.update(set(seq))
        self.word_counts = OrderedDict(counts)
        self.word_docs = defaultdict(int, docs)
        ranked = sorted(counts.items(), key=lambda kv: kv[1], reverse=True)  # stable: ties by first seen
        vocab = ([self.oov_token] if self.oov_token is not None else []) + [w for w, _ in ranked]
        self.word_index = {w: i for i, w in enumerate(vocab, 1)}
        self.index_word = {i: w for w, i in self.word_index.items()}
        self.index_docs = defaultdict(int, {self.word_index[w]: c for w, c in self.word_docs.items()})

    def texts_to_sequences_generator(self, texts):
        index, limit = self.word_index, self.num_words
        oov = index.get(self.oov_token) if self.oov_token is not None else None
        for text in texts:
            seq = self._words(text) if isinstance(text, str) else text
            if limit is None and oov is None:
                yield [i for i in map(index.get, seq) if i is not None]
                continue
            out = []
            for w in seq:
                i = index.get(w)
                if i is not None and (limit is None or i < limit):
                    out.append(i)
                elif oov is not None:
                    out.append(oov)
            yield out

    def texts_to_sequences(self, texts):
        return list(self.texts_to_sequences_generator(texts))

    def sequences_to_texts(self, sequences):
        words = self.index_word
        limit = self.num_words
        return [" ".join(words[i] for i in seq if i in words and (limit is None or i < limit))
                for seq in sequences]

    def texts_to_matrix(self, texts, mode="binary"):
        return self.sequences_to_matrix(self.texts_to_sequences(texts), mode=mode)

    def sequences_to_matrix(self, sequences, mode="binary"):
        n = self.num_words or len(self.word_index) + 1
        if mode == "tfidf" and not self.document_count:
            raise ValueError("fit the Tokenizer on some texts before mode='tfidf'")
        x = np.zeros((len(sequences), n))
        for row, seq in enumerate(sequences):
            if not seq:
                continue
            ids, counts = np.unique([i for i in seq if i < n], return_counts=True)
            if mode == "count":
                x[row, ids] = counts
            elif mode == "freq":
                x[row, ids] = counts / len(seq)
            elif mode == "binary":
                x[row, ids] = 1
            elif mode == "tfidf":
                docs = np.array([self.index_docs.get(int(i), 0) for i in ids])
                x[row, ids] = (1 + np.log(counts)) * np.log(1 + self.document_count / (1 + docs))
            else:
                raise ValueError(f"unknown mode {mode!r} (binary, count, tfidf, freq)")
        return x

    def get_config(self):
        return {"num_words": self.num_words, "filters": self.filters, "lower": self.lower, "split": self.split,
                "char_level": self.char_level, "oov_token": self.oov_token,
                "document_count": self.document_count}


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre", value=0):
    """Keras' ``pad_sequences``: a ``(len(sequences), maxlen)`` array, padded with ``value`` and truncated
    at the front (``'pre'``) or the back (``'post'``)."""
    if padding not in ("pre", "post") or truncating not in ("pre", "post"):
        raise ValueError("padding and truncating must be 'pre' or 'post'")
    lengths = [len(s) for s in sequences]
    maxlen = max(lengths, default=0) if maxlen is None else whole("maxlen", maxlen, minimum=0)
    x = np.full((len(sequences), maxlen), value, dtype=dtype)
    if maxlen == 0:
        return x
    for row, (seq, n) in enumerate(zip(sequences, lengths, strict=True)):
        if not n:
            continue
        if n > maxlen:
            seq = seq[-maxlen:] if truncating == "pre" else seq[:maxlen]
            n = maxlen
        if padding == "pre":
            x[row, maxlen - n:] = seq
        else:
            x[row, :n] = seq
    return x


def limit_vocab(sequences, vocab_size):
    """Every id at or above ``vocab_size - 1`` becomes ``vocab_size - 1`` (the course's "rare word" id)."""
    top = whole("vocab_size", vocab_size, minimum=2) - 1
    return [np.minimum(np.asarray(s, dtype=np.int64), top) for s in sequences]


_REVIEW_ID = re.compile(r"^(\d+)(?:_(\d+))?\.txt$")


def _review_key(name):
    m = _REVIEW_ID.match(name)
    return (0, int(m.group(1)), name) if m else (1, 0, name)


def read_reviews(folder):
    """The texts of the ``.txt`` files of ``folder``, in review-id order. A file that is not UTF-8 is read as
    Latin-1; an empty or binary one is left out; each kind is named in one warning. ``DataError`` when no
    review is left."""
    folder = os.fspath(folder)
    names = sorted((n for n in os.listdir(folder) if n.endswith(".txt") and not n.startswith(".")),
                   key=_review_key)
    if not names:
        raise DataError(f"{folder}: no .txt reviews in this folder")
    texts, latin1, skipped = [], [], []
    for name in names:
        path = os.path.join(folder, name)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            skipped.append(f"{name} ({e.strerror})")
            continue
        if b"\0" in data:
            skipped.append(f"{name} (binary)")
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            text = data.decode("cp1252", errors="strict") if _cp1252(data) else data.decode("latin-1")
            latin1.append(f"{name} (byte {e.start})")
        if not text.strip():
            skipped.append(f"{name} (empty)")
            continue
        texts.append(text)
    if latin1:
        warn(f"{folder}: {len(latin1)} review(s) not in UTF-8, read as Latin-1: {_short(latin1)}")
    if skipped:
        warn(f"{folder}: {len(skipped)} file(s) left out: {_short(skipped)}")
    if not texts:
        raise DataError(f"{folder}: no readable review in this folder ({_short(skipped)})")
    return texts


def _cp1252(data):
    try:
        data.decode("cp1252")
        return True
    except UnicodeDecodeError:
        return False


def _short(items):
    return examples(items)


def read_imdb(path, split="train"):
    """``(texts, labels)`` of ``path/split/pos`` (label 1) then ``path/split/neg`` (label 0)."""
    split = folder_name("split", split)
    root = os.path.join(os.fspath(path), split)
    if not os.path.isdir(root):
        raise DataError(f"{root}: no such folder (expected the IMDB layout {split}/pos and {split}/neg)")
    missing = [c for c in ("pos", "neg") if not os.path.isdir(os.path.join(root, c))]
    if missing:
        raise DataError(f"{root}: no {' or '.join(missing)} folder (expected {split}/pos and {split}/neg)")
    pos = read_reviews(os.path.join(root, "pos"))
    neg = read_reviews(os.path.join(root, "neg"))
    return pos + neg, np.array([1] * len(pos) + [0] * len(neg), dtype=np.int64)
