"""Looking at embeddings (lessons 4, 5, wordvectors): principal components, t-SNE, labelled scatter plots.

``pca_factors(emb, 3)`` is lesson 4's ``PCA(n_components=3).fit(emb.T).components_``: the factors are the
samples, and each component gives one loading per item (movie). ``tsne_2d`` is the wordvectors notebook's
``TSNE(n_components=2, random_state=0).fit_transform``. ``plot_embeddings`` scatters 2-D points and writes
each one's label beside it (the course: a 15x15 figure, font size 14, random dark colours).
``extremes`` lists the highest and lowest ``(value, label)`` pairs, the course's ``sorted(...)[:15]``.
"""

import numpy as np

__all__ = ["extremes", "pca_factors", "plot_embeddings", "tsne_2d"]


def pca_factors(emb, n_components=3):
    """``(n_components, n_items)`` loadings of the items of ``emb`` (``(n_items, n_factors)``)."""
    from sklearn.decomposition import PCA

    emb = np.asarray(emb)
    n_components = min(n_components, *emb.shape)
    return PCA(n_components=n_components).fit(emb.T).components_


def tsne_2d(vecs, random_state=0, perplexity=30.0):
    """2-D t-SNE coordinates of ``vecs`` (perplexity lowered for small sets, which t-SNE requires)."""
    from sklearn.manifold import TSNE

    vecs = np.asarray(vecs, dtype=np.float32)
    perplexity = min(perplexity, max(1.0, (len(vecs) - 1) / 3))
    return TSNE(n_components=2, random_state=random_state, perplexity=perplexity,
                init="pca").fit_transform(vecs)


def plot_embeddings(xy, labels, figsize=(15, 15), fontsize=14, seed=None, ax=None, title=None):
    """Scatter ``xy`` (``(n, 2)``) with each point labelled; returns the axes."""
    import matplotlib.pyplot as plt

    xy = np.asarray(xy)
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    rng = np.random.RandomState(seed) if seed is not None else np.random
    ax.scatter(xy[:, 0], xy[:, 1], s=4, c="0.6")
    for (x, y), label in zip(xy, labels, strict=False):
        ax.text(x, y, str(label), color=rng.rand(3) * 0.7, fontsize=fontsize)
    if title:
        ax.set_title(title)
    return ax


def extremes(values, labels, n=10):
    """``(highest n, lowest n)`` lists of ``(value, label)``, highest first and lowest first."""
    pairs = sorted(zip(np.asarray(values).ravel().tolist(), labels, strict=True), key=lambda p: p[0])
    return pairs[::-1][:n], pairs[:n]
