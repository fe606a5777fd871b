"""Collaborative filtering (lesson 4): the dot-product model, the bias model and the neural recommender.

Each user and each movie gets an embedding (a vector of ``n_factors`` latent factors). The course's three
models, in Keras 3 layers:

- ``dot_model``: rating = user vector . movie vector;
- ``bias_model``: the same plus a learned bias per user and per movie (no global mean: the biases absorb it,
  as in the course);
- ``neural_model``: the two vectors concatenated and fed to ``Dense(70, relu)`` -> ``Dense(1)``, with dropout.

Inputs are named ``user_in`` and ``movie_in`` and take one integer index each (``Input((1,), 'int64')``);
models are compiled with ``Adam(0.001)`` and ``'mse'``, and save to any weight-file name (``bias.h5``).
``embedding_input`` and ``create_bias`` are the course's helpers of the same names. ``nbs/lesson4.ipynb``
writes the three models out in its cells, as the course did; these are the same models for the command line
and the benchmarks (``tests/test_lessons45.py`` loads the notebook's trained weights into them and compares
the predictions).
"""

import keras

from dl1.nn.model import Model
from dl1.nn.optimizers import Adam

__all__ = ["bias_model", "create_bias", "dot_model", "embedding_input", "neural_model"]


def embedding_input(name, n_in, n_out, reg=1e-4):
    """``(Input((1,), int64, name=name+'_in'), Embedding(n_in, n_out, l2(reg)) output (None, 1, n_out))``."""
    inp = keras.Input(shape=(1,), dtype="int64", name=f"{name}_in")
    reg = keras.regularizers.l2(reg) if reg else None
    return inp, keras.layers.Embedding(n_in, n_out, embeddings_regularizer=reg, name=f"{name}_emb")(inp)


def create_bias(inp, n_in, name=None):
    """One learned number per index of ``inp`` (``Embedding(n_in, 1)``, no regulariser), flattened."""
    emb = keras.layers.Embedding(n_in, 1, name=name)(inp)
    return keras.layers.Flatten()(emb)


def _compile(model, lr):
    model.compile(Adam(lr), loss="mse")
    return model


def dot_model(n_users, n_movies, n_factors=50, reg=1e-4, lr=0.001):
    """rating = user embedding . movie embedding."""
    user_in, u = embedding_input("user", n_users, n_factors, reg)
    movie_in, m = embedding_input("movie", n_movies, n_factors, reg)
    x = keras.layers.Flatten()(keras.layers.Dot(axes=2)([u, m]))
    return _compile(Model([user_in, movie_in], x, name="dot"), lr)


def bias_model(n_users, n_movies, n_factors=50, reg=1e-4, lr=0.001):
    """rating = user embedding . movie embedding + user bias + movie bias."""
    user_in, u = embedding_input("user", n_users, n_factors, reg)
    movie_in, m = embedding_input("movie", n_movies, n_factors, reg)
    ub = create_bias(user_in, n_users, name="user_bias")
    mb = create_bias(movie_in, n_movies, name="movie_bias")
    x = keras.layers.Flatten()(keras.layers.Dot(axes=2)([u, m]))
    x = keras.layers.Add()([x, ub])
    x = keras.layers.Add()([x, mb])
    return _compile(Model([user_in, movie_in], x, name="bias"), lr)


def neural_model(n_users, n_movies, n_factors=50, reg=1e-4, hidden=70, dropout=(0.3, 0.75), lr=0.001):
    """The two embeddings concatenated -> Dropout -> Dense(hidden, relu) -> Dropout -> Dense(1)."""
    user_in, u = embedding_input("user", n_users, n_factors, reg)
    movie_in, m = embedding_input("movie", n_movies, n_factors, reg)
    x = keras.layers.Flatten()(keras.layers.Concatenate()([u, m]))
    x = keras.layers.Dropout(dropout[0])(x)
    x = keras.layers.Dense(hidden, activation="relu")(x)
    x = keras.layers.Dropout(dropout[1])(x)
    x = keras.layers.Dense(1)(x)
    return _compile(Model([user_in, movie_in], x, name="neural"), lr)
