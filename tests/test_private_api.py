"""Keras' private API: only dl1/nn/kprivate.py touches it, each use checked against the Keras versions it was
verified on, and both the private and the plain-Keras paths give the same training."""

import ast
import os

import keras
import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KPRIVATE = os.path.join("dl1", "nn", "kprivate.py")

# Keras internals dl1 has needed (the attributes kprivate.py reads or writes), and the private package
PRIVATE_ATTRIBUTES = {"_keras_history", "_inbound_nodes", "_outbound_nodes", "_tracker", "_layers", "_flatten_layers",
                      "_trainable_variables", "_trainable_variables_indices", "_variables", "_input_shape_arg",
                      "_build_shapes_dict", "_iterations", "_learning_rate", "_compile_loss", "_compile_metrics",
                      "_loss_tracker", "_functional", "_operations", "_auto_config", "_post_build"}
PRIVATE_PACKAGE = "keras.src"


def library_files():
    files = [os.path.join(REPO, "vgg16.py")]
    for top in ("dl1", "utils"):
        for folder, _, names in os.walk(os.path.join(REPO, top)):
            files += [os.path.join(folder, n) for n in names if n.endswith(".py")]
    return sorted(files)


def _own_names(tree):
    """Names a module defines itself (functions, methods, ``self.x = ...``): its own ``_layers`` is not
    Keras'."""
    own = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            own.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) \
                and isinstance(node.value, ast.Name) and node.value.id == "self":
            own.add(node.attr)
    return own


def private_uses(path):
    """``[(line, what)]``: Keras private attributes (except a module's own names on ``self``/``super()``),
    ``getattr``-style strings naming them, and ``keras.src`` in imports, attribute chains or strings."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    own = _own_names(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in PRIVATE_ATTRIBUTES:
            if not (ast.unparse(node.value) in ("self", "super()") and node.attr in own):
                found.append((node.lineno, node.attr))
        elif isinstance(node, ast.Attribute) and node.attr == "src" and ast.unparse(node.value) == "keras":
            found.append((node.lineno, PRIVATE_PACKAGE))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and (
                node.value in PRIVATE_ATTRIBUTES or node.value.startswith(PRIVATE_PACKAGE)):
            found.append((node.lineno, node.value))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith(PRIVATE_PACKAGE)]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PRIVATE_PACKAGE):
            found.append((node.lineno, node.module))
    return found


def test_only_kprivate_touches_keras_internals():
    uses = {os.path.relpath(p, REPO): private_uses(p) for p in library_files()}
    assert uses[KPRIVATE], "the scan finds nothing even in kprivate.py: it is broken"
    elsewhere = {p: u for p, u in uses.items() if u and p != KPRIVATE}
    assert not elsewhere, f"Keras private API outside {KPRIVATE} (move it there, with a version guard): {elsewhere}"


def test_the_scan_catches_each_form(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import keras.src.layers\nfrom keras.src import ops\n"
                   "def f(t, m):\n    return t._keras_history, getattr(m, '_layers'), keras.src.backend\n"
                   "class A:\n    def _layers(self):\n        return self._layers()\n")
    assert sorted(what for _, what in private_uses(str(bad))) == [
        "_keras_history", "_layers", "keras.src", "keras.src", "keras.src.layers"]


@pytest.mark.parametrize("version, ok", [("3.15.1", True), ("3.99.0", False), ("2.15.0", False)])
def test_keras_internals_are_used_only_on_verified_versions(monkeypatch, version, ok, caplog):
    from dl1.nn import kprivate

    monkeypatch.setattr(keras, "__version__", version)
    kprivate.recheck()
    try:
        with caplog.at_level("WARNING", logger="dl1"):
            assert kprivate.verified() is ok
            assert kprivate.fast_torch_layers() is ok
        assert ("outside the versions dl1 was verified on" in caplog.text) is (not ok)
    finally:
        monkeypatch.undo()
        kprivate.recheck()


@pytest.mark.parametrize("private", ["1", "0"])
def test_both_keras_paths_give_the_same_training(monkeypatch, private):
    """Changing ``trainable`` after compile, and the fast convolutions, on the private path and on the
    plain-Keras path: same predictions and the same weights after the same steps."""
    from dl1.nn import kprivate
    from dl1.nn.layers import Conv2D
    from dl1.nn.model import Sequential

    def run():
        keras.utils.set_random_seed(0)
        model = Sequential([keras.Input((8, 8, 3)), Conv2D(4, 3, padding="same", activation="relu"),
                            keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])
        model.compile(optimizer="adam", loss="categorical_crossentropy")
        x = np.random.default_rng(0).normal(size=(16, 8, 8, 3)).astype("float32")
        y = np.eye(2, dtype="float32")[np.arange(16) % 2]
        model.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
        model.layers[0].trainable = False
        model.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
        return model.predict(x, verbose=0), [w.copy() for w in model.get_weights()]

    monkeypatch.setenv("DL1_KERAS_PRIVATE", "1")
    kprivate.recheck()
    reference = run()
    monkeypatch.setenv("DL1_KERAS_PRIVATE", private)
    kprivate.recheck()
    try:
        assert kprivate.verified() is (private == "1")
        preds, weights = run()
    finally:
        monkeypatch.delenv("DL1_KERAS_PRIVATE")
        kprivate.recheck()
    np.testing.assert_allclose(preds, reference[0], atol=1e-5)
    for a, b in zip(weights, reference[1], strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_the_graph_reads_of_kprivate_on_a_functional_chain():
    from dl1.nn import kprivate

    inp = keras.Input((4,))
    hidden = keras.layers.Dense(3, name="hidden")(inp)
    out = keras.layers.Dense(2, name="out")(hidden)
    layer, inputs = kprivate.producer(out)
    assert layer.name == "out" and inputs[0] is hidden and kprivate.node_output_count(out) == 1
    assert kprivate.producing_layer(hidden).name == "hidden"
    assert isinstance(kprivate.producing_layer(inp), keras.layers.InputLayer)
    model = keras.Sequential([keras.Input((5, 4)), keras.layers.TimeDistributed(keras.layers.Dense(2))])
    assert kprivate.flat_layers(model)[-1].__class__.__name__ == "Dense"
    assert not kprivate.sequential_is_empty(model) and kprivate.sequential_is_empty(keras.Sequential())
