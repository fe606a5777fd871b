"""Pre-trained word vectors (lesson 5, wordvectors): read a GloVe text file, build an embedding matrix.

``read_glove(path, dim=50)`` reads a GloVe text file (a word, then its numbers, one word per line) into
``(vecs, words, wordidx)``. A ragged row, a number that is not one, NaN or infinity, or vectors of another
length than ``dim`` raise a one-line ``DataError`` naming the file and line; a byte-order mark before the
first word is dropped; a word listed again keeps its first vector, and the later lines are named in one
warning. ``save_glove``/``load_glove`` keep the course's three pre-processed files (``<name>.dat`` array,
``<name>_words.pkl``, ``<name>_idx.pkl``), each written atomically: the two lists are JSON with a format name
and version, never pickles (a replaced pickle runs code when loaded); ``load_glove`` validates them,
rebuilds a damaged index from the words, refuses a 2017 pickle in one line, and also takes the text file
itself. ``embedding_matrix`` is the course's ``create_emb``: one row per word id of a vocabulary, copied from
GloVe where the word is there, random (``normal(scale=0.6)``) where it is not, row 0 (padding) zero, the
whole divided by 3.
"""

import json
import os
import re

import numpy as np

from dl1.io.arrays import load_array, save_array
from dl1.io.atomic import write_text
from dl1.io.checks import number, whole
from dl1.io.errors import DataError
from dl1.io.log import note, warn

__all__ = ["embedding_matrix", "load_glove", "load_vectors", "read_glove", "save_glove", "w2v"]

WORD_PATTERN = r"^[a-zA-Z0-9\-]*$"
WORDS_FORMAT, INDEX_FORMAT, VERSION = "dl1-glove-words", "dl1-glove-index", 1


def read_glove(path, dim=None, max_words=None):
    """``(vecs float32 (n, dim), words, wordidx)`` from a GloVe text file (see the module docstring)."""
    path = os.fspath(path)
    dim = None if dim is None else whole("dim", dim)
    max_words = None if max_words is None else whole("max_words", max_words)
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    words, rows, linenos, first_line, repeats = [], [], [], {}, []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8").rstrip("\r\n")
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
            word = parts[0]
            if not word:
                raise DataError(f"{path} line {lineno}: the line starts with a space, not a word")
            if word in first_line:
                repeats.append(f"{word!r} on line {lineno} (first on line {first_line[word]})")
                continue
            first_line[word] = lineno
            words.append(word)
            rows.append(parts[1:])
            linenos.append(lineno)
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
                bad = next(x for x in r if not _is_number(x))
                raise DataError(f"{path} line {linenos[i]} ({words[i]!r}): {bad!r} is not a number") from None
        raise
    finite = np.isfinite(vecs).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        lines = ", ".join(str(linenos[i]) for i in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise DataError(f"{path} line {linenos[bad[0]]} ({words[bad[0]]!r}): NaN or infinity in the vector "
                        f"({len(bad)} such line{'s' if len(bad) > 1 else ''}: {lines})")
    if repeats:
        more = f" and {len(repeats) - 3} more" if len(repeats) > 3 else ""
        warn(f"{path}: {len(repeats)} word(s) listed again, the first vector kept: {'; '.join(repeats[:3])}{more}")
    return vecs, words, {w: i for i, w in enumerate(words)}


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def save_glove(loc, vecs, words, wordidx=None):
    """Write ``loc + '.dat'`` (``save_array``), ``loc + '_words.pkl'`` and ``loc + '_idx.pkl'`` (the course's
    pre-processed files, by name; JSON inside, see the module docstring), each atomically."""
    loc = os.fspath(loc)
    words = [str(w) for w in words]
    vecs = np.asarray(vecs)
    if vecs.ndim != 2 or len(words) != len(vecs):
        raise DataError(f"save_glove needs one vector per word: {len(words)} words, vectors of shape {vecs.shape}")
    wordidx = {w: i for i, w in enumerate(words)} if wordidx is None else \
        {str(w): int(i) for w, i in dict(wordidx).items()}
    _check_index(wordidx, len(words), f"{loc}_idx.pkl")
    save_array(loc + ".dat", vecs)
    write_text(loc + "_words.pkl", json.dumps({"format": WORDS_FORMAT, "version": VERSION, "words": words}))
    write_text(loc + "_idx.pkl", json.dumps({"format": INDEX_FORMAT, "version": VERSION, "rows": len(words),
                                             "index": wordidx}))
    return loc


def _check_index(wordidx, n, name):
    for w, i in wordidx.items():
        if not isinstance(w, str) or isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n:
            raise DataError(f"{name}: the index maps {w!r} to {i!r}, not a row of the {n} vectors")


def _read_json(path, fmt, rebuild):
    """The JSON object of one of ``save_glove``'s lists, checked for its format and version."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: missing; {rebuild}") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read it ({e.strerror}); {rebuild}") from None
    if data[:1] == b"\x80":
        raise DataError(f"{path}: a pickle (the 2017 format), which dl1 does not load because a pickle runs code "
                        f"when loaded; {rebuild}")
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise DataError(f"{path}: damaged (not the JSON dl1 writes: {e}); {rebuild}") from None
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        raise DataError(f"{path}: not a file of save_glove (no format {fmt!r}); {rebuild}")
    if obj.get("version") != VERSION:
        raise DataError(f"{path}: format version {obj.get('version')!r}, this dl1 reads version {VERSION}; "
                        f"{rebuild}")
    return obj


def load_glove(loc, dim=None):
    """``(vecs, words, wordidx)`` from a GloVe text file, or from the three files ``save_glove`` wrote."""
    loc = os.fspath(loc)
    if os.path.isfile(loc):
        return read_glove(loc, dim=dim)
    if not os.path.exists(loc + ".dat"):
        raise DataError(f"{loc}: neither a GloVe text file nor pre-processed vectors ({loc}.dat)")
    rebuild = f"write them again with save_glove({loc!r}, *read_glove(GLOVE_TEXT_FILE))"
    vecs = load_array(loc + ".dat")
    if vecs.ndim != 2 or not np.issubdtype(vecs.dtype, np.floating):
        raise DataError(f"{loc}.dat: an array of shape {vecs.shape} and type {vecs.dtype}, not word vectors; {rebuild}")
    if not np.isfinite(vecs).all():
        raise DataError(f"{loc}.dat: NaN or infinity in the vectors; {rebuild}")
    obj = _read_json(loc + "_words.pkl", WORDS_FORMAT, rebuild)
    words = obj.get("words")
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words) or len(words) != len(vecs):
        n = len(words) if isinstance(words, list) else "no"
        raise DataError(f"{loc}_words.pkl: {n} words for {len(vecs)} vectors; {rebuild}")
    try:
        obj = _read_json(loc + "_idx.pkl", INDEX_FORMAT, rebuild)
        wordidx = obj.get("index")
        if not isinstance(wordidx, dict):
            raise DataError(f"{loc}_idx.pkl: no index")
        _check_index(wordidx, len(words), f"{loc}_idx.pkl")
    except DataError as e:
        warn(f"{str(e).split('; write them again')[0]}; rebuilt from {os.path.basename(loc)}_words.pkl")
        wordidx = {w: i for i, w in enumerate(words)}
    if dim is not None and vecs.shape[1] != whole("dim", dim):
        raise DataError(f"{loc}.dat: vectors of {vecs.shape[1]} numbers, expected {dim}")
    return vecs, words, wordidx


load_vectors = load_glove  # lesson 5's name for the same


def w2v(word, vecs, wordidx):
    """The vector of ``word`` (the wordvectors notebook's ``w2v``)."""
    if word not in wordidx:
        raise DataError(f"{word!r} is not one of the {len(wordidx)} words of these vectors")
    return vecs[wordidx[word]]


def embedding_matrix(word_index, vecs, wordidx, vocab_size, scale=0.6, divide=3.0, seed=None,
                     pattern=WORD_PATTERN, verbose=True):
    """A ``(vocab_size, dim)`` matrix for ids ``0..vocab_size-1`` of ``word_index`` (word -> id, or a dict
    id -> word), as the course's ``create_emb``: row 0 zero; a word matching ``pattern`` and present in
    GloVe gets its GloVe vector; any other id, and the last one (the "rare word" id), ``normal(0, scale)``;
    then everything is divided by ``divide``."""
    vocab_size = whole("vocab_size", vocab_size)
    scale = number("scale", scale, 0)
    divide = number("divide", divide, 0, low_open=True)
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
