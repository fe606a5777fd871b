"""The Stanford Large Movie Review Dataset (lesson 5): ``aclImdb_v1.tar.gz``, or a synthetic stand-in.

The archive (84,125,825 bytes, sha256 checked) unpacks, its top folder ``aclImdb/`` stripped, to
``train/{pos,neg,unsup}``, ``test/{pos,neg}`` (``<id>_<stars>.txt``, one review each), ``imdb.vocab`` and
the rest of what Stanford ships, all of it kept.

The stand-in writes ``train/{pos,neg}`` and ``test/{pos,neg}`` reviews in the same naming, and ``imdb.vocab``:
English-looking text (``<br /><br />`` line breaks included) whose sentiment is learnable from its words:
positive reviews use more of a set of positive words, negative ones more of a set of negative words.
"""

import os

import numpy as np

from dl1.data.datasets import Dataset, register
from dl1.data.datasets._archive import fetch_and_unpack
from dl1.data.datasets._words import NEGATIVE, POSITIVE, review_vocabulary, tail_words
from dl1.io.atomic import write_text

URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
FILENAME = "aclImdb_v1.tar.gz"
SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
SIZE = 84125825


def download(dest, verbose=True, urls=None):
    return fetch_and_unpack(dest, [URL], FILENAME, sha256=SHA256, size=SIZE, strip=1, verbose=verbose, urls=urls)


def _review(rng, positive, common, cum_common, tail, mean_len, signal):
    n = int(np.clip(rng.lognormal(np.log(mean_len), 0.5), 10, mean_len * 8))
    own, other = (POSITIVE, NEGATIVE) if positive else (NEGATIVE, POSITIVE)
    kinds = rng.rand(n)
    pick = rng.rand(n)
    common_idx = np.minimum(np.searchsorted(cum_common, pick), len(common) - 1)
    words = []
    for k, p, c in zip(kinds.tolist(), pick.tolist(), common_idx.tolist(), strict=True):
        if k < signal:
            words.append(own[int(p * len(own))])
        elif k < signal * 1.3:
            words.append(other[int(p * len(other))])
        elif k < 0.93:
            words.append(common[c])
        else:
            words.append(tail[int(p * len(tail))])
    ends = rng.rand(n)
    out, sentence = [], []
    for i, w in enumerate(words):
        sentence.append(w)
        e = ends[i]
        if len(sentence) > 4 and (e < 0.12 or i == len(words) - 1):
            s = " ".join(sentence)
            s = s[0].upper() + s[1:]
            out.append(s + ".!.?."[int(e * 40) % 5])
            sentence = []
        elif len(sentence) > 2 and e > 0.95:
            sentence[-1] += ","
    if sentence:
        out.append(" ".join(sentence) + ".")
    breaks = rng.rand(len(out)) < 0.1
    return out[0] + "".join(("<br /><br />" if b else " ") + s for b, s in zip(breaks[1:], out[1:], strict=True))


def synthesize(dest, seed=0, n=1000, mean_len=120, signal=0.12):
    """``n`` reviews in each of ``train`` and ``test`` (half positive); returns ``{folder: files}``."""
    rng = np.random.RandomState(seed)
    n = max(int(n), 4)
    common = review_vocabulary()
    p_common = 1.0 / np.arange(1, len(common) + 1) ** 1.0
    cum_common = np.cumsum(p_common / p_common.sum())
    tail = tail_words(3000, seed=1)
    counts = {}
    for split in ("train", "test"):
        for label, positive in (("pos", True), ("neg", False)):
            folder = os.path.join(dest, split, label)
            os.makedirs(folder, exist_ok=True)
            k = n // 2 if positive else n - n // 2
            for i in range(k):
                stars = rng.randint(7, 11) if positive else rng.randint(1, 5)
                with open(os.path.join(folder, f"{i}_{stars}.txt"), "w", encoding="utf-8") as f:
                    f.write(_review(rng, positive, common, cum_common, tail, mean_len, signal))
            counts[f"{split}/{label}"] = k
    vocab = list(dict.fromkeys(common + POSITIVE + NEGATIVE + tail))
    write_text(os.path.join(dest, "imdb.vocab"), "\n".join(vocab) + "\n")
    return counts


register(Dataset(
    "imdb", "Stanford Large Movie Review Dataset, aclImdb_v1 (lesson 5)",
    "train/{pos,neg}/*.txt, test/{pos,neg}/*.txt (<id>_<stars>.txt), imdb.vocab",
    download=download, synthesize=synthesize, sources=[URL]))
