"""Nietzsche's writing as one plain-text file, the text of lesson 6 and char-rnn.

The course read ``nietzsche.txt`` with ``get_file`` from ``https://s3.amazonaws.com/text-datasets/``, the
file Keras' text-generation example still downloads (600,901 characters in the course's run). No checksum
of it was ever published, and none could be measured here (no internet): the download is checked to be a
readable text of the expected size instead, and a truncated transfer resumes (``dl1.io.download``).

The stand-in (``dl1 sample DIR --dataset nietzsche``) is text from a small word-level Markov source with
the course's flavour: a fixed vocabulary of words, each followed by one of a few others, sentences with
capitals and punctuation, lines of about 70 characters. Its characters have real structure (spelling
inside words, a few likely next words), so a character model beats the letter-frequency baseline within
one epoch.
"""

import os

import numpy as np

from dl1.data.datasets import Dataset, register
from dl1.io.atomic import write_text
from dl1.io.download import DownloadError, fetch

URL = "https://s3.amazonaws.com/text-datasets/nietzsche.txt"
FILENAME = "nietzsche.txt"
N_CHARS = 600_901  # the course's len(text)
SHA256 = None  # not published; see the module docstring

# the words of the stand-in: the lesson's prompts ("phi", " th", " an", "for thos", "part of ", "queens a",
# "this is ", "ethics is a basic foundation of all that") read as they did on the real text
WORDS = """the of and to that is a in it which as not for this be with he are all by his they we what
one but or has have more himself itself truth woman philosopher philosophers philosophy morality moral
spirit free will power good evil life man men soul god nature thought those part queens ethics basic
foundation there then ground whole german religion sense great kind belief world history value
knowledge perhaps precisely always something nothing every very must may can would should""".split()


def _chain(rng, n_words, fanout=4):
    """Each word's few likely successors, with Zipf-like weights."""
    succ = rng.integers(0, n_words, size=(n_words, fanout))
    weights = 1.0 / np.arange(1, fanout + 1)
    return succ, weights / weights.sum()


def synthetic_text(n=100_000, seed=0):
    """``n`` characters of the stand-in text (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    words = list(WORDS)
    index = {w: i for i, w in enumerate(words)}
    succ, weights = _chain(rng, len(words))
    # the lesson's phrases as likely paths of the chain
    for a, b in [("for", "those"), ("part", "of"), ("queens", "and"), ("this", "is"), ("ethics", "is"),
                 ("is", "a"), ("a", "basic"), ("basic", "foundation"), ("foundation", "of"), ("of", "all"),
                 ("all", "that"), ("the", "philosopher"), ("truth", "is"), ("a", "woman")]:
        succ[index[a], 0] = index[b]
    out = ["PREFACE\n\n\nSUPPOSING that Truth is a woman--what then? "]
    length = len(out[0])
    line = length - len("PREFACE\n\n\n")
    w = index["is"]
    start = True
    while length < n:
        w = succ[w, rng.choice(len(weights), p=weights)] if rng.random() > 0.05 else rng.integers(len(words))
        word = words[w]
        if start:
            word = word.capitalize()
            start = False
        end = rng.random()
        if end < 0.08:
            word += "."
            start = True
        elif end < 0.11:
            word += ","
        elif end < 0.115:
            word += "?"
            start = True
        elif end < 0.12:
            word += "--"
        piece = word if word.endswith("--") else word + " "
        if line + len(piece) > 70:
            piece = "\n" + piece
            line = 0
        if start and rng.random() < 0.03:
            piece += "\n\n"
            line = 0
        out.append(piece)
        line += len(piece)
        length += len(piece)
    return "".join(out)[:n]


def synthesize(dest, seed=0, n=100_000):
    """``dest/nietzsche.txt``: ``n`` characters of the stand-in text."""
    os.makedirs(dest, exist_ok=True)
    write_text(os.path.join(dest, FILENAME), synthetic_text(n, seed=seed))
    return {FILENAME: n}


def download(dest, verbose=True, url=None, urls=None):
    """``dest/nietzsche.txt`` from where Keras' example downloads it (resumable, atomic, checked to be the
    course's text); ``url`` or ``urls``: other sources to use instead (mirrors)."""
    dest = os.fspath(dest)
    os.makedirs(dest, exist_ok=True)
    path = os.path.join(dest, FILENAME)
    sources = list(urls or ([url] if url else []))
    fetch(sources or [URL], path, sha256=SHA256, what=FILENAME, verbose=verbose, check=text_problem,
          mirrors=not sources)
    return {FILENAME: check_download(path)}


def text_problem(path, expected=N_CHARS, tolerance=0.02):
    """Why the file at ``path`` is not the course's text (an HTML error page, a binary file, a text far
    from its size), or None: the ``check`` of the download, so that a wrong file never gets the name."""
    from dl1.data.chars import load_text
    from dl1.io.errors import DataError

    try:
        text = load_text(path)
    except DataError as e:
        return str(e).removeprefix(f"{path}: ")
    if text.lstrip().startswith("<"):
        return "an HTML or XML page, not the text"
    if abs(len(text) - expected) > tolerance * expected:
        return f"{len(text)} characters where the course's text has {expected}"
    return None


def check_download(path, expected=N_CHARS, tolerance=0.02):
    """The number of characters of a downloaded ``nietzsche.txt``; one that is not the course's text
    (see ``text_problem``) is moved aside (``.bad``) with one line saying so."""
    from dl1.data.chars import load_text

    problem = text_problem(path, expected, tolerance)
    if problem is not None:
        os.replace(path, path + ".bad")
        raise DownloadError(f"{path}: {problem}; kept as {path}.bad (not the expected file?)")
    return len(load_text(path))


register(Dataset(
    name="nietzsche",
    description="Nietzsche's writing as plain text (lesson 6, char-rnn)",
    layout=FILENAME,
    download=download,
    synthesize=synthesize,
    sources=[URL],
))
