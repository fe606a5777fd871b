"""The course's helper library, for today's Python and Keras 3.

``from utils import *`` in a notebook gives what it gave in 2017: the helpers (``get_batches``,
``plots``, ``save_array``, ``Vgg16``, ...), numpy as ``np``, ``plt``, ``pd``, Keras layers and
optimizers, ``K``, ``image``, ``confusion_matrix``, ``FileLink`` and friends (see ``__all__``).

Names are resolved on first use (PEP 562), so ``import utils.prepare`` or the ``dl1`` command do not
pay the seconds it takes to import Keras and PyTorch when they do not need them.
"""

import importlib

from .backend import configure_backend

configure_backend()

# name -> (module, attribute or None for the module itself)
_LAZY = {}


def _add(module, names=None, alias=None):
    if names is None:
        _LAZY[alias or module.rsplit(".", 1)[-1]] = (module, None)
        return
    for name in names:
        attr, _, public = name.partition(" as ")
        _LAZY[public or attr] = (module, attr)


# --- the helpers of the 2017 utils.py, one module per job --------------------------------------------
_add("vgg16", ["Vgg16", "Vgg16BN", "vgg_mean", "vgg_preprocess"])
_add("utils.batches", ["get_batches", "get_data", "get_classes", "onehot", "DirectoryIterator",
                       "ArrayIterator", "MixIterator"])
_add("utils.augment", ["ImageDataGenerator"])
_add("utils.plotting", ["plots", "plot_confusion_matrix"])
_add("utils.imageops", ["gray", "to_plot", "floor", "ceil", "mk_size", "mk_square", "to_bw"])
_add("utils.arrays", ["save_array", "load_array"])
_add("utils.models", ["split_at", "copy_layer", "copy_layers", "copy_weights", "copy_model",
                      "insert_layer", "wrap_config", "adjust_dropout", "vgg_ft", "vgg_ft_bn"])
_add("utils.submission", ["do_clip", "binary_submission", "multiclass_submission", "write_submission",
                          "validate_submission", "best_clip", "parse_id"])
_add("utils.inspection", ["plots_idx", "inspect_predictions", "plot_log_loss"])
_add("utils.prepare", ["prepare_data"])
_add("utils.sample", ["write_sample"])
_add("utils.errors", ["DL1Error", "DataError", "WeightsError", "SubmissionError"])
_add("utils.kcompat", ["Sequential", "Model", "SGD", "RMSprop", "Adam", "Adagrad", "Adadelta", "Adamax",
                       "Nadam", "Convolution2D"])
_add("utils.fastconv", ["Conv2D", "MaxPooling2D"])  # Keras' layers, without layout copies on torch
_add("utils.kbackend", alias="K")
_add("utils.image", alias="image")


def plot(img):
    """Show one image array (2017 ``utils.plot``)."""
    import matplotlib.pyplot as plt

    from .imageops import to_plot

    plt.imshow(to_plot(img))


# --- what the 2017 notebooks used without importing it ---------------------------------------------
_add("numpy", alias="np")
_add("numpy", ["newaxis"])
_add("numpy.random", ["random", "permutation", "randn", "normal", "uniform", "choice"])
_add("matplotlib.pyplot", alias="plt")
_add("pandas", alias="pd")
_add("PIL", alias="PIL")
_add("PIL.Image", alias="Image")
_add("glob", ["glob"])
_add("os", alias="os")
_add("sys", alias="sys")
_add("re", alias="re")
_add("json", alias="json")
_add("math", alias="math")
_add("pickle", alias="pickle")
_add("shutil", alias="shutil")
_add("itertools", alias="itertools")
_add("itertools", ["chain"])
_add("operator", ["itemgetter", "attrgetter", "methodcaller"])
_add("collections", ["OrderedDict"])
_add("sklearn.metrics", ["confusion_matrix", "log_loss"])
_add("sklearn.preprocessing", ["OneHotEncoder"])
_add("sklearn.manifold", ["TSNE"])
_add("IPython.display", ["FileLink", "display"])
_add("keras", alias="keras")
_add("keras.layers", ["Input", "Embedding", "Reshape", "LSTM", "Bidirectional", "TimeDistributed",
                      "Activation", "SimpleRNN", "GRU", "Flatten", "Dense", "Dropout", "Lambda",
                      "BatchNormalization", "Conv1D", "MaxPooling1D",
                      "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "ZeroPadding2D",
                      "UpSampling2D", "Concatenate", "Add", "Dot"])
_add("keras.regularizers", ["l1", "l2", "l1_l2"])
_add("keras.losses", ["categorical_crossentropy"])
_add("keras.metrics", ["categorical_accuracy"])
_add("keras.utils", ["get_file", "to_categorical", "pad_sequences"])
_add("keras.callbacks", ["EarlyStopping", "ModelCheckpoint"])

__all__ = sorted(set(_LAZY) | {"plot"})


def __getattr__(name):
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'utils' has no attribute {name!r}") from None
    mod = importlib.import_module(module)
    value = mod if attr is None else getattr(mod, attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
