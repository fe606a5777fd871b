"""The namespace ``from utils import *`` gives a notebook: what it gave in 2017.

The helpers (``get_batches``, ``plots``, ``save_array``, ``Vgg16``, ...) and the Keras classes a 2017 cell
builds with (``dl1.compat.keras1``: Keras' own and ``dl1.nn``'s, which take the Keras 1 arguments once
``utils`` installed the spellings) are imported here; numpy as ``np``, ``plt``, ``pd``, the Keras layers, ``K``, ``image``, ``confusion_matrix``,
``FileLink`` and friends are resolved on first use (PEP 562), so that ``import utils`` does not pay for
pandas, scikit-learn and matplotlib until a cell uses them. ``__all__`` lists every name.
"""

import importlib

from dl1.compat import image
from dl1.compat import kbackend as K
from dl1.compat.keras1 import (
    GRU,
    LSTM,
    SGD,
    Activation,
    Adadelta,
    Adagrad,
    Adam,
    Adamax,
    BatchNormalization,
    Conv1D,
    Conv2D,
    Convolution1D,
    Convolution2D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    Input,
    Keras1Error,
    MaxPooling1D,
    MaxPooling2D,
    Merge,
    Model,
    Nadam,
    Reshape,
    RMSprop,
    Sequential,
    SimpleRNN,
    TimeDistributed,
    ZeroPadding2D,
    merge,
)
from dl1.compat.scipyimage import misc, ndimage
from dl1.data.batches import (
    ArrayIterator,
    DirectoryIterator,
    ImageDataGenerator,
    MixIterator,
    get_batches,
    get_classes,
    get_data,
    onehot,
)
from dl1.data.chars import (
    CharVocab,
    char_columns,
    char_sequences,
    load_text,
    one_hot,
    split_ids,
    stateful_order,
    unigram_loss,
)
from dl1.data.digits import load_digits, read_digits_csv
from dl1.data.glove import embedding_matrix, load_glove, load_vectors, read_glove, save_glove, w2v
from dl1.data.imageops import ceil, floor, gray, mk_size, mk_square, to_bw, to_plot
from dl1.data.prepare import prepare_data, split_sizes
from dl1.data.ratings import movie_names, read_movies, read_ratings, remap_ids, split_ratings, top_ids
from dl1.data.sample import write_sample
from dl1.data.text import Tokenizer, limit_vocab, read_imdb, read_reviews, text_to_word_sequence
from dl1.inspect.embeddings import extremes, pca_factors, plot_embeddings, tsne_2d
from dl1.inspect.history import plot_history
from dl1.inspect.plots import plot, plot_confusion_matrix, plots
from dl1.inspect.predictions import inspect_predictions, plot_log_loss, plots_idx
from dl1.io.arrays import load_array, save_array
from dl1.io.errors import DataError, DL1Error, SubmissionError, WeightsError
from dl1.kaggle.submission import (
    best_clip,
    binary_submission,
    do_clip,
    multiclass_submission,
    parse_id,
    validate_submission,
    write_submission,
)
from dl1.models.backbones import Resnet50
from dl1.models.bn_calibrate import calibrate_bn
from dl1.models.collab import bias_model, create_bias, dot_model, embedding_input, neural_model
from dl1.models.ensemble import Ensemble, load_ensemble
from dl1.models.surgery import (
    adjust_dropout,
    copy_layer,
    copy_layers,
    copy_model,
    copy_weights,
    insert_layer,
    split_at,
    vgg_ft,
    vgg_ft_bn,
    wrap_config,
)
from dl1.models.textgen import PrintSamples, generate
from dl1.models.vgg16 import Vgg16, Vgg16BN, vgg_mean, vgg_preprocess

_EAGER = [name for name in dir() if not name.startswith("_") and name != "importlib"]

# name -> (module, attribute or None for the module itself), imported on first use
_LAZY = {}


def _add(module, names=None, alias=None):
    if names is None:
        _LAZY[alias or module.rsplit(".", 1)[-1]] = (module, None)
        return
    for name in names:
        attr, _, public = name.partition(" as ")
        _LAZY[public or attr] = (module, attr)


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
_add("keras.layers", ["Bidirectional", "Lambda", "AveragePooling2D", "GlobalAveragePooling2D",
                      "GlobalMaxPooling2D", "UpSampling2D", "Concatenate", "Add", "Dot"])
_add("keras.regularizers", ["l1", "l2", "l1_l2"])
_add("keras.losses", ["categorical_crossentropy"])
_add("keras.metrics", ["categorical_accuracy"])
_add("keras.utils", ["get_file", "to_categorical", "pad_sequences"])
_add("keras.preprocessing.sequence", alias="sequence")
_add("scipy.ndimage", ["zoom"])
_add("keras.callbacks", ["EarlyStopping", "ModelCheckpoint"])
_add("keras.layers", ["SpatialDropout1D", "GlobalMaxPooling1D"])  # lessons 4-5

__all__ = sorted(set(_LAZY) | set(_EAGER))


def __getattr__(name):
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'utils' (dl1.compat.star) has no attribute {name!r}") from None
    mod = importlib.import_module(module)
    value = mod if attr is None else getattr(mod, attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
