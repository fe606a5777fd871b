"""Recurrent networks written out by hand: what lesson 6 did in Theano and in pure numpy, in today's terms.

In 2017 the lesson wrote the RNN and the GRU as a ``step`` function, ran it along a sequence with
``theano.scan``, asked ``T.grad`` for the gradients of the summed cross-entropy, and trained one sequence
at a time with plain SGD. Here the same ``step`` functions are written with ``keras.ops`` (so they run on
any Keras backend), ``keras.ops.scan`` runs them along the sequence, and ``value_and_grad`` asks the
backend's automatic differentiation (PyTorch autograd by default, ``jax.grad`` on JAX) for the
gradients. ``train_sgd`` is the per-sequence SGD loop with the course's printouts.

The second half is the pure-numpy RNN (no biases, ReLU, softmax, cross-entropy) with its back-propagation
written by hand: ``np_rnn_forward`` and ``np_rnn_grads``, which agree with the automatic gradients
(``tests/test_lesson6.py``). The 2017 notebook's backward pass added a scalar (a dot product) to every
weight of ``w_h`` where the outer product belongs, and updated the weights inside the backward loop; this
version computes the true gradient.
"""

import math

import numpy as np
from keras import ops

from dl1 import backend

__all__ = ["gru_step", "gru_weights", "id_and_bias", "init_bias", "init_wgts", "np_rnn_forward", "np_rnn_grads",
           "np_rnn_weights", "rnn_forward", "rnn_step", "rnn_weights", "sequence_error", "sgd_update", "train_sgd",
           "value_and_grad", "wgts_and_bias"]


# ---- weights (the course's init_wgts, init_bias, wgts_and_bias, id_and_bias) ---------------------------
def init_wgts(rows, cols, rng=None):
    """A ``rows x cols`` float32 matrix of normal(0, sqrt(2/rows)) (He initialisation)."""
    rng = np.random.default_rng(0) if rng is None else rng
    return rng.normal(scale=math.sqrt(2 / rows), size=(rows, cols)).astype("float32")


def init_bias(rows):
    return np.zeros(rows, dtype="float32")


def wgts_and_bias(n_in, n_out, rng=None):
    return init_wgts(n_in, n_out, rng), init_bias(n_out)


def id_and_bias(n):
    """The identity matrix and a zero bias: the hidden-to-hidden weights that start by carrying the state
    unchanged (Le, Jaitly and Hinton 2015)."""
    return np.eye(n, dtype="float32"), init_bias(n)


# ---- the RNN and the GRU as step functions (keras.ops) --------------------------------------------------
def rnn_weights(n_input, n_hidden, n_output, seed=0):
    """``[W_h, b_h, W_x, b_x, W_y, b_y]`` as the lesson made them (identity ``W_h``)."""
    rng = np.random.default_rng(seed)
    return [*id_and_bias(n_hidden), *wgts_and_bias(n_input, n_hidden, rng), *wgts_and_bias(n_hidden, n_output, rng)]


def rnn_step(x, h, W_h, b_h, W_x, b_x, W_y, b_y):
    """One character: the new hidden state ``relu(x.W_x + b_x + h.W_h + b_h)`` and the prediction
    ``softmax(h.W_y + b_y)``."""
    h = ops.relu(ops.matmul(x, W_x) + b_x + ops.matmul(h, W_h) + b_h)
    y = ops.softmax(ops.matmul(h, W_y) + b_y, axis=-1)
    return h, y


def gru_weights(n_input, n_hidden, n_output, seed=0):
    """``[W_h, b_h, W_y, b_y, uW_x, ub_x, rW_x, rb_x, W_x, uW_h, rW_h]`` (the course's order): the candidate's
    weights (identity ``W_h``), the output's, the update and reset gates' input and hidden weights."""
    rng = np.random.default_rng(seed)
    W_h, b_h = id_and_bias(n_hidden)
    W_y, b_y = wgts_and_bias(n_hidden, n_output, rng)
    uW_x, ub_x = wgts_and_bias(n_input, n_hidden, rng)
    rW_x, rb_x = wgts_and_bias(n_input, n_hidden, rng)
    W_x = init_wgts(n_input, n_hidden, rng)
    uW_h = init_wgts(n_hidden, n_hidden, rng)
    rW_h = init_wgts(n_hidden, n_hidden, rng)
    return [W_h, b_h, W_y, b_y, uW_x, ub_x, rW_x, rb_x, W_x, uW_h, rW_h]


def gate(x, h, W_h, W_x, b_x):
    """``sigmoid(x.W_x + b_x + h.W_h)``: how much of something to let through, between 0 and 1."""
    return ops.sigmoid(ops.matmul(x, W_x) + b_x + ops.matmul(h, W_h))


def gru_step(x, h, W_h, b_h, W_y, b_y, uW_x, ub_x, rW_x, rb_x, W_x, uW_h, rW_h):
    """One GRU step: the reset gate chooses how much of the old state the candidate sees, the update gate
    how much of the old state to keep. (The 2017 notebook squashed the candidate with a sigmoid; a GRU's
    candidate is a tanh, as here.)"""
    reset = gate(x, h, rW_h, rW_x, rb_x)
    update = gate(x, h, uW_h, uW_x, ub_x)
    h_new = ops.tanh(ops.matmul(x, W_x) + b_h + ops.matmul(h * reset, W_h))
    h = update * h + (1 - update) * h_new
    y = ops.softmax(ops.matmul(h, W_y) + b_y, axis=-1)
    return h, y


def rnn_forward(weights, x, h0, step=rnn_step):
    """Run ``step`` along the sequence ``x`` (``(T, n_input)``, or ``(T, batch, n_input)``) from ``h0``
    with ``keras.ops.scan`` (``theano.scan`` then); returns ``(last hidden state, predictions (T, ...))``."""

    def one(h, x_t):
        h, y = step(x_t, h, *weights)
        return h, y

    return ops.scan(one, h0, x)


def sequence_error(weights, x, y, h0, step=rnn_step, eps=1e-7):
    """The cross-entropy of the predictions along ``x`` against the one-hot targets ``y``, summed over the
    steps (the course's ``error``)."""
    _, preds = rnn_forward(weights, x, h0, step)
    return -ops.sum(y * ops.log(ops.clip(preds, eps, 1.0)))


def value_and_grad(fn):
    """``fn(weights) -> scalar`` becomes ``g(weights) -> (value, [d value / d w for w in weights])``,
    computed by the backend's automatic differentiation (``T.grad`` in 2017; ``dl1.backend``)."""
    return backend.current().value_and_grad(fn)


def sgd_update(weights, grads, lr):
    """``w - lr * g`` for every weight (the course's ``upd_dict``)."""
    return [ops.convert_to_tensor(w) - lr * g for w, g in zip(weights, grads, strict=True)]


def train_sgd(weights, X, Y, lr=0.01, step=rnn_step, n_hidden=None, print_every=1000, decay=1.0, n=None,
              fmt="Error:{:.3f}", verbose=True):
    """Plain SGD, one sequence at a time, as the lesson trained its Theano RNN and GRU: for each of the
    first ``n`` sequences ``X[i]`` (``(T, n_input)``, targets ``Y[i]``), one gradient step on its summed
    cross-entropy from a zero hidden state. Every ``print_every`` sequences prints the average error
    (``fmt``) and multiplies ``lr`` by ``decay``. Returns ``(weights, [average errors])``."""
    weights = [ops.convert_to_tensor(w) for w in weights]
    if n_hidden is None:
        n_hidden = int(ops.shape(weights[0])[-1])
    h0 = ops.zeros((n_hidden,), dtype=weights[0].dtype)
    n = len(X) if n is None else min(n, len(X))
    errors, total = [], 0.0
    for i in range(n):
        x = ops.convert_to_tensor(X[i], dtype=weights[0].dtype)
        y = ops.convert_to_tensor(Y[i], dtype=weights[0].dtype)
        value, grads = value_and_grad(lambda ws, x=x, y=y: sequence_error(ws, x, y, h0, step))(weights)
        weights = sgd_update(weights, grads, lr)
        total += float(value)
        if (i + 1) % print_every == 0 or i + 1 == n:
            count = (i % print_every) + 1
            errors.append(total / count)
            if verbose:
                print(fmt.format(errors[-1]), flush=True)
            total = 0.0
            lr *= decay
    return weights, errors


# ---- the pure-numpy RNN with hand-written back-propagation ---------------------------------------------
def np_rnn_weights(n_input, n_hidden, n_output, seed=0, dtype="float64"):
    """``(w_x, w_h, w_y)`` as the lesson made them: normal(0, sqrt(2/n_input)) and an identity ``w_h``."""
    rng = np.random.default_rng(seed)
    scale = math.sqrt(2 / n_input)
    w_x = rng.normal(scale=scale, size=(n_input, n_hidden)).astype(dtype)
    w_y = rng.normal(scale=scale, size=(n_hidden, n_output)).astype(dtype)
    return w_x, np.eye(n_hidden, dtype=dtype), w_y


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_rnn_forward(w_x, w_h, w_y, x, y, eps=1e-7):
    """Forward along one sequence (``x``, ``y``: ``(T, vocab)`` one-hot), no biases:
    ``h_t = relu(x_t.w_x + h_{t-1}.w_h)``, ``p_t = softmax(h_t.w_y)``. Returns ``(summed cross-entropy,
    cache)`` where the cache keeps what the backward pass needs."""
    h = np.zeros(w_h.shape[0], dtype=w_h.dtype)
    hs, pres, preds = [h], [], []
    loss = 0.0
    for t in range(len(x)):
        pre = x[t] @ w_x + h @ w_h
        h = np.maximum(pre, 0)
        p = _softmax(h @ w_y)
        loss += -np.sum(y[t] * np.log(np.clip(p, eps, 1.0)))
        hs.append(h)
        pres.append(pre)
        preds.append(p)
    return float(loss), (hs, pres, preds)


def np_rnn_grads(w_x, w_h, w_y, x, y):
    """The summed cross-entropy of one sequence and its gradients ``(g_x, g_h, g_y)``, back-propagated by
    hand through time:

    - at the output, softmax and cross-entropy together give ``d pre_pred = p_t - y_t``;
    - ``g_y += h_t (outer) d pre_pred``;
    - the hidden state gets the output's error ``d pre_pred . w_y^T`` plus what flows back from the next
      step, ``d pre_hidden_{t+1} . w_h^T``, times ReLU's derivative (``pre_t > 0``);
    - ``g_x += x_t (outer) d pre_hidden``, ``g_h += h_{t-1} (outer) d pre_hidden``.
    """
    loss, (hs, pres, preds) = np_rnn_forward(w_x, w_h, w_y, x, y)
    g_x, g_h, g_y = np.zeros_like(w_x), np.zeros_like(w_h), np.zeros_like(w_y)
    d_next = np.zeros(w_h.shape[0], dtype=w_h.dtype)
    for t in reversed(range(len(x))):
        d_pre_pred = preds[t] - y[t]
        g_y += np.outer(hs[t + 1], d_pre_pred)
        d_hidden = d_pre_pred @ w_y.T + d_next
        d_pre_hidden = d_hidden * (pres[t] > 0)
        g_x += np.outer(x[t], d_pre_hidden)
        g_h += np.outer(hs[t], d_pre_hidden)
        d_next = d_pre_hidden @ w_h.T
    return loss, (g_x, g_h, g_y)
