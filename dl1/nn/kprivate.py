"""The one module that relies on Keras internals, each use guarded by the Keras versions it was verified on.

Outside ``VERIFIED`` (or with ``DL1_KERAS_PRIVATE=0``) every function here takes a plain, public-API path
and the first use logs one warning saying so: the fast PyTorch convolutions are off, a change of
``trainable`` after compiling recompiles the model instead of re-syncing its optimizer, and the number of
classes of a Keras 3 weights file is read by loading it rather than from its HDF5 group names. Results
stay right either way; only speed and the identity of the optimizer object differ.

A few reads have no public equivalent at all and are used on every version (``tests/test_private_api.py``
runs them and keeps any other module of the package from touching Keras internals): the layer that produced
a tensor of a functional model (``producer``), a first layer's ``input_shape=`` argument, whether a
``Sequential`` is still empty, every layer inside a model, and the public class behind a backend's optimizer.
"""

import logging
import os
import re
import shutil
import tempfile
import weakref

import keras

log = logging.getLogger("dl1")

# (major, minor) versions of Keras whose internals this module was checked against (the test suite
# runs both paths on the pinned version)
VERIFIED = ((3, 15), (3, 15))

_state = {}
_TRAINED_WITH = weakref.WeakKeyDictionary()  # model -> ids of the variables it last trained


def keras_version(text=None):
    """``(major, minor)`` of the installed Keras (or of ``text``)."""
    parts = re.findall(r"\d+", text or keras.__version__)
    return tuple(int(p) for p in (parts + ["0", "0"])[:2])


def verified():
    """True when the installed Keras is one this module's private paths were verified on."""
    if "ok" not in _state:
        version = keras_version()
        lo, hi = VERIFIED
        off = os.environ.get("DL1_KERAS_PRIVATE", "").lower() in ("0", "off", "false", "no")
        ok = lo <= version <= hi and not off
        _state["ok"] = ok
        if not ok:
            why = "DL1_KERAS_PRIVATE=0" if off else (
                f"Keras {keras.__version__} is outside the versions dl1 was verified on "
                f"({'.'.join(map(str, lo))}-{'.'.join(map(str, hi))}.x)")
            log.warning("%s: using plain Keras paths (fast torch convolutions off, optimizer re-sync by "
                        "recompiling); results are the same, training may be slower", why)
    return _state["ok"]


def recheck():
    """Forget the cached version check (tests, or after changing ``DL1_KERAS_PRIVATE``)."""
    _state.clear()


# ---- fast layers ---------------------------------------------------------------------------------------
def fast_layers():
    """Whether ``dl1.nn.layers`` may hand Keras variables' tensors to the backend's fast path (relies on
    ``Variable.value`` being the backend tensor, laid out as Keras stores kernels)."""
    return verified()


def fast_torch_layers():
    """``fast_layers()`` on the PyTorch backend, the one with a fast path (False elsewhere)."""
    return keras.backend.backend() == "torch" and fast_layers()


# ---- the graph of a functional model ---------------------------------------------------------------------
def producer(tensor):
    """``(layer, input tensors)`` of the call that produced symbolic ``tensor`` (a layer output of a
    functional model), or None for a model input or a tensor Keras did not record."""
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return None
    layer = history.operation
    node = layer._inbound_nodes[history.node_index]
    return layer, list(node.input_tensors)


def producing_layer(tensor):
    """The layer whose call produced ``tensor`` (None for a model input)."""
    found = producer(tensor)
    return None if found is None else found[0]


def node_output_count(tensor):
    """How many tensors the call that produced ``tensor`` returned (1 for most layers), or None."""
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return None
    return len(history.operation._inbound_nodes[history.node_index].outputs)


# ---- first-layer input shapes (Keras 1's input_shape=/batch_input_shape=) ------------------------------
def set_input_shape_argument(layer, shape):
    """Record ``shape`` as the layer's ``input_shape=`` argument (what ``keras.Sequential.add`` reads to
    start the model with an Input), without Keras' "Do not pass an `input_shape`" warning."""
    layer._input_shape_arg = tuple(shape)


def sequential_is_empty(model):
    """True for a ``keras.Sequential`` with no layer yet, not even an Input."""
    return not model._layers


def flat_layers(model):
    """Every layer inside ``model`` (nested models and wrappers included), ``model`` itself excluded."""
    return list(model._flatten_layers(include_self=False))


# ---- optimizers' classes -------------------------------------------------------------------------------
def public_optimizer_class(cls):
    """Keras swaps its own optimizer classes for backend-specific ones (torch: a parallel update that
    bypasses ``update_step``): the public class for such a class, ``cls`` itself otherwise."""
    if cls.__module__.startswith("keras.src.backend."):
        return getattr(keras.optimizers, cls.__name__)
    return cls


# ---- optimizers after a change of ``trainable`` --------------------------------------------------------
def _reset_in_place(opt):
    """Drop ``opt``'s per-variable state (e.g. Adam's moments) so that it rebuilds for the current
    trainable variables on its next step; the object, its learning rate and step count stay."""
    for o in (opt, getattr(opt, "inner_optimizer", None)):  # a LossScaleOptimizer wraps another
        if o is None:
            continue
        keep = {id(v) for v in (getattr(o, "_iterations", None), getattr(o, "_learning_rate", None))
                if v is not None}
        if hasattr(o, "step_counter"):
            keep |= {id(o.step_counter), id(o.dynamic_scale)}
        o._variables[:] = [v for v in o._variables if id(v) in keep]
        o._trainable_variables = []
        o._trainable_variables_indices = {}
        o.built = False


def _recompile(model):
    """The public-API equivalent: compile again with a fresh optimizer of the same configuration and
    step count (what recompiling did in Keras 1)."""
    opt = model.optimizer
    fresh = type(opt).from_config(opt.get_config())
    config = model.get_compile_config() or {}
    model.compile(optimizer=fresh, loss=model.loss, metrics=config.get("metrics"),
                  jit_compile=getattr(model, "dl1_jit", getattr(model, "jit_compile", "auto")))
    fresh.iterations.assign(opt.iterations)


def sync_optimizer(model):
    """Let a compiled model train after ``layer.trainable`` changed, as the lessons do without
    recompiling: Keras 3's optimizer refuses variables it was not built with. Returns True when the
    optimizer had to be rebuilt."""
    opt = getattr(model, "optimizer", None)
    current = [id(v) for v in model.trainable_variables]
    if opt is None or not getattr(opt, "built", False):
        _TRAINED_WITH[model] = current
        return False
    if verified():
        built_for = getattr(opt, "_trainable_variables", None)
        if built_for is None or [id(v) for v in built_for] == current:
            return False
        _reset_in_place(opt)
        return True
    before = _TRAINED_WITH.get(model)
    _TRAINED_WITH[model] = current
    if before is None or before == current:
        return False
    _recompile(model)
    return True


# ---- weight files ----------------------------------------------------------------------------------------
def load_weights_any_name(path, load, suffix=".weights.h5", **kwargs):
    """Call Keras' ``load`` (a bound ``load_weights``) on ``path`` whatever its name: Keras 3 accepts
    only ``.weights.h5`` (or ``.keras``), so a file named ``ft1.h5`` is linked (or copied) under that
    suffix first."""
    with tempfile.TemporaryDirectory(prefix="dl1-weights-") as tmp:
        link = os.path.join(tmp, "w" + suffix)
        try:
            os.symlink(os.path.abspath(path), link)
        except OSError:
            shutil.copyfile(path, link)
        return load(link, **kwargs)


def weights_h5_bytes(model):
    """The bytes (a buffer) of ``model.save_weights('x.weights.h5')``, built in memory (HDF5 on a ``BytesIO``), or None
    on an unverified Keras. Writing them is then a plain file write, which a full disk turns into an
    ``OSError``: HDF5 writing a file itself can crash the process when the disk fills up."""
    if not verified():
        return None
    import io

    from keras.src.saving import saving_lib

    buf = io.BytesIO()
    store = saving_lib.H5IOStore(buf, mode="w")
    try:
        saving_lib._save_state(model, weights_store=store, assets_store=None, inner_path="",
                               visited_saveables=set())
    finally:
        store.close()
    return buf.getbuffer()  # no copy: a 528 MB file is held once


def keras3_last_dense_units(h5file):
    """Outputs of the last Dense layer in an open Keras 3 ``.weights.h5`` file, from its group names
    (``layers/dense``, ``layers/dense_1``, ... in creation order), or None when this cannot be read
    (other Keras versions: the caller then loads the file to find out)."""
    if not verified():
        return None
    layers = h5file.get("layers", {})
    dense = sorted((int(m.group(1) or 0), name) for name in layers
                   if (m := re.fullmatch(r"dense(?:_(\d+))?", name)))
    if not dense:
        return None
    try:
        return int(layers[dense[-1][1]]["vars"]["0"].shape[-1])
    except (KeyError, IndexError):
        return None
