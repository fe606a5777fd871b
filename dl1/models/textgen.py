"""Text from a character model, to watch it learn: ``generate`` from a prompt, ``PrintSamples`` during fit.

``generate(model, vocab, prompt, length)`` feeds the last ``seq_len`` characters (the model's input
length; a shorter prompt is padded on the left with the padding id 0), takes the distribution of the last
time step, draws the next character with ``dl1.data.chars.sample`` at ``temperature`` and repeats: what
char-rnn's ``print_example`` did (at temperature 1). It works with index inputs ``(batch, seq_len)`` and
one-hot inputs ``(batch, seq_len, vocab)``, single or sequence outputs, and models built for a fixed
batch size (stateful ones: the prompt is repeated over the batch).
"""

import keras
import numpy as np

from dl1.data.chars import CharVocab, one_hot, sample

__all__ = ["PrintSamples", "generate"]


def _input_spec(model):
    shape = tuple(model.inputs[0].shape) if getattr(model, "inputs", None) else tuple(model.input_shape)
    batch = shape[0]
    seq_len = shape[1]
    onehot = len(shape) == 3
    return batch, seq_len, onehot


def generate(model, vocab, prompt, length=320, temperature=1.0, seq_len=None, rng=None):
    """``length`` characters that ``model`` writes after ``prompt``, one at a time (see the module
    docstring). ``vocab``: a ``CharVocab`` or the list ``chars``; ``rng``: a seed or a numpy Generator.
    Returns only the new characters (``prompt + generate(...)`` is the whole text)."""
    vocab = vocab if isinstance(vocab, CharVocab) else CharVocab(list(vocab))
    rng = np.random.default_rng(rng)
    batch, model_len, onehot = _input_spec(model)
    seq_len = seq_len or model_len or 40
    ids = list(vocab.encode(prompt))
    out = []
    for _ in range(length):
        window = ids[-seq_len:]
        window = [0] * (seq_len - len(window)) + window
        x = np.asarray([window], dtype="int64")
        if onehot:
            x = one_hot(x, vocab.vocab_size)
        if batch:
            x = np.repeat(x, batch, axis=0)
        preds = keras.ops.convert_to_numpy(model(x, training=False))[0]
        if preds.ndim == 2:  # a sequence of predictions: the last one is the next character's
            preds = preds[-1]
        preds = preds.copy()
        preds[0] = 0.0  # never the padding
        nxt = sample(preds / preds.sum(), temperature, rng)
        ids.append(nxt)
        out.append(vocab.indices_char[nxt])
    return "".join(out)


class PrintSamples(keras.callbacks.Callback):
    """Prints what the model writes after ``prompt`` at the end of every ``every``-th epoch (and keeps it
    in ``self.samples``), at each of ``temperatures``: the learner sees gibberish turn into words."""

    def __init__(self, vocab, prompt, length=200, temperatures=(1.0,), every=1, seed=0, print_fn=print):
        super().__init__()
        self.vocab = vocab if isinstance(vocab, CharVocab) else CharVocab(list(vocab))
        self.prompt, self.length, self.every = prompt, length, every
        self.temperatures = tuple(temperatures)
        self.rng = np.random.default_rng(seed)
        self.print_fn = print_fn
        self.samples = []

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        for t in self.temperatures:
            text = generate(self.model, self.vocab, self.prompt, self.length, temperature=t, rng=self.rng)
            self.samples.append((epoch + 1, t, text))
            if self.print_fn:
                self.print_fn(f"--- epoch {epoch + 1}, temperature {t}:\n{self.prompt}{text}")
