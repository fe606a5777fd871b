"""GloVe 6B word vectors (lesson 5, wordvectors): Stanford NLP's ``glove.6B.zip``, or a synthetic stand-in.

The archive (862,182,613 bytes; Stanford publishes no checksum, so its size is checked) holds
``glove.6B.{50,100,200,300}d.txt``: one word per line followed by its numbers, 400,000 words, the most
frequent first. It is fetched from Stanford's download server (``nlp.stanford.edu`` redirects there), else
from the Stanford NLP group's copy on the Hugging Face hub.

The stand-in writes ``glove.6B.50d.txt`` in the same format: GloVe's first tokens (``the , . of ...``), the
words of the synthetic IMDB reviews, and a tail; related words are near each other (the positive words, the
negative words, and a few topics such as royalty or numbers each form a cluster), the rest lie at random.
"""

import os

import numpy as np

from dl1.data.datasets import Dataset, register
from dl1.data.datasets._archive import fetch_and_unpack
from dl1.data.datasets._words import GLOVE_HEAD, NEGATIVE, POSITIVE, TOPICS, review_vocabulary, tail_words
from dl1.io.atomic import write_text

SOURCES = ["https://downloads.cs.stanford.edu/nlp/data/glove.6B.zip",
           "https://nlp.stanford.edu/data/glove.6B.zip",
           "https://huggingface.co/stanfordnlp/glove/resolve/main/glove.6B.zip"]
FILENAME = "glove.6B.zip"
SIZE = 862182613


def download(dest, verbose=True, urls=None):
    return fetch_and_unpack(dest, SOURCES, FILENAME, size=SIZE, strip=0, verbose=verbose, urls=urls)


def synthetic_vectors(seed=0, n=4000, dim=50):
    """``(words, vectors)`` of the stand-in (see the module docstring)."""
    rng = np.random.RandomState(seed)
    groups = {"positive": POSITIVE, "negative": NEGATIVE, **TOPICS}
    words = list(dict.fromkeys(GLOVE_HEAD + review_vocabulary() + POSITIVE + NEGATIVE
                               + [w for g in TOPICS.values() for w in g]))
    extra = max(0, n - len(words))
    words += [w for w in tail_words(extra + 3000, seed=1) if w not in set(words)][:extra]
    vecs = rng.normal(0, 0.45, (len(words), dim))
    index = {w: i for i, w in enumerate(words)}
    centers = {name: rng.normal(0, 0.45, dim) for name in groups}
    centers["negative"] = -centers["positive"] + rng.normal(0, 0.1, dim)
    for name, members in groups.items():
        for w in members:
            vecs[index[w]] = centers[name] * 1.6 + rng.normal(0, 0.15, dim)
    return words, vecs.astype(np.float32)


def write_glove_text(path, words, vecs):
    lines = [w + " " + " ".join(f"{x:.5g}" for x in v) for w, v in zip(words, vecs, strict=True)]
    write_text(path, "\n".join(lines) + "\n")


def synthesize(dest, seed=0, n=4000, dim=50):
    """``glove.6B.<dim>d.txt`` with ``n`` words (at least the head, review words and clusters)."""
    words, vecs = synthetic_vectors(seed, n, dim)
    name = f"glove.6B.{dim}d.txt"
    write_glove_text(os.path.join(dest, name), words, vecs)
    return {name: len(words)}


register(Dataset(
    "glove", "GloVe 6B word vectors (Wikipedia 2014 + Gigaword 5), Stanford NLP",
    "glove.6B.{50,100,200,300}d.txt: a word, then its numbers, one word per line",
    download=download, synthesize=synthesize, sources=SOURCES))
