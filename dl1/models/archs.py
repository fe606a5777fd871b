"""The table of architectures: one entry per network ``dl1`` fine-tunes, and nothing but facts.

Each ``Arch`` says how to build the network (``network``: a class named as ``module:Class``, imported only
when a model is built), how its images are preprocessed, its default and minimum input size, Keras'
ImageNet weight files (names, URLs, hashes), its ImageNet top-1 accuracy and parameter count, and the
wrapper class that keeps its published name (``Vgg16``, ``Resnet50``, ...). The command line's ``--arch``
choices, the record in ``results/dl1-model.json``, ``predict`` and the README's table of backbones all come
from ``ARCHS``. This module imports neither Keras nor PyTorch, so ``dl1 --help`` stays fast.

Adding a ``keras.applications`` network is one ``register(Arch(...))`` below and a test (see the README,
"Adding an architecture"); ``densenet121`` was added that way.
"""

from dataclasses import dataclass, field

_APPS = "https://storage.googleapis.com/tensorflow/keras-applications/"

# preprocessing: what the model does first to raw 0-255 RGB images (keras.applications' own vocabulary)
PREPROCESSING = {
    "caffe": "RGB->BGR, ImageNet mean subtracted (a layer before the network)",
    "torch": "scaled to 0-1, ImageNet mean and std normalised (a layer before the network)",
    "builtin": "the application's own rescaling/normalisation layers (include_preprocessing=True)",
}


@dataclass(frozen=True)
class RemoteFile:
    """A published file: its name in the Keras cache, where it is downloaded from, its md5 or sha256."""

    fname: str
    origin: str
    md5: str


@dataclass(frozen=True)
class Arch:
    """One architecture (see the module docstring). ``network_args`` go to the network class;
    ``application``/``application_args`` name the ``keras.applications`` function for those built on one."""

    name: str
    title: str
    network: str
    face: str | None
    preprocessing: str
    weights: RemoteFile | None
    weights_notop: RemoteFile | None
    top1: float | None
    top1_source: str
    params_m: float
    application: str | None = None
    application_args: tuple = ()
    network_args: tuple = ()
    default_size: int = 224
    min_size: int = 32
    size_reason: str = "halves the image five times"
    dropout: float = 0.0
    notes: str = ""
    env_var: str = field(default="")

    def __post_init__(self):
        if self.preprocessing not in PREPROCESSING:
            raise ValueError(f"{self.name}: preprocessing must be one of {', '.join(PREPROCESSING)}")
        if not self.env_var:
            object.__setattr__(self, "env_var", "DL1_WEIGHTS_" + self.name.upper())

    @property
    def caffe_outside(self):
        """True when the caffe-style preprocessing layer comes before the (application's) network."""
        return self.preprocessing == "caffe"

    def size_problem(self, size):
        """None when ``(height, width)`` suits this network, else the reason in words."""
        if min(size) < self.min_size:
            shown = f"{size[0]}x{size[1]}" if size[0] != size[1] else str(size[0])
            return (f"size {shown} is too small: {self.title} {self.size_reason}, so use at least "
                    f"{self.min_size}")
        return None

    def remote(self, include_top=True):
        """Keras' ImageNet file for this network, with its classifier or without (``notop``)."""
        return self.weights if include_top else self.weights_notop

    def load(self, what="face"):
        """The class named by ``face`` (default) or ``network``, imported now (this imports Keras)."""
        import importlib

        target = getattr(self, what)
        if target is None:
            return None
        module, _, name = target.partition(":")
        return getattr(importlib.import_module(module), name)


ARCHS = {}
DEFAULT_ARCH = "vgg16"


def register(arch):
    """Add ``arch`` to the table (its name must be new); returns it."""
    if arch.name in ARCHS:
        raise ValueError(f"architecture {arch.name!r} is registered already")
    ARCHS[arch.name] = arch
    return arch


def names():
    """The architecture names, in the table's order (the ``--arch`` choices)."""
    return list(ARCHS)


def get(name):
    """The ``Arch`` called ``name`` (any case; None: the default), or a ValueError listing the names."""
    key = (name or DEFAULT_ARCH).lower()
    if key not in ARCHS:
        raise ValueError(f"unknown architecture {name!r}: use one of {', '.join(ARCHS)}")
    return ARCHS[key]


def markdown_table():
    """The README's table of architectures, generated from ``ARCHS`` (a test keeps the README in step)."""
    rows = ["| `--arch` | class | ImageNet top-1 | parameters | preprocessing | size (default, least) |",
            "|---|---|---|---|---|---|"]
    for a in ARCHS.values():
        face = f"`{a.face.partition(':')[2]}`" if a.face else f"`ImageClassifier('{a.name}')`"
        top1 = f"{a.top1:.1%} ({a.top1_source})" if a.top1 is not None else a.top1_source
        default = " (default)" if a.name == DEFAULT_ARCH else ""
        rows.append(f"| `{a.name}`{default} | {face} | {top1} | {a.params_m:.1f} M | {a.preprocessing} | "
                    f"{a.default_size}, {a.min_size} |")
    return "\n".join(rows)


# ---- the table ---------------------------------------------------------------------------------------------
_VGG16_TOP = RemoteFile("vgg16_weights_tf_dim_ordering_tf_kernels.h5",
                        _APPS + "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels.h5",
                        "64373286793e3c8b2b4e3219cbf3544b")
_VGG16_NOTOP = RemoteFile("vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
                          _APPS + "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
                          "6d6bbae143d832006294945121d1f1fc")

register(Arch(
    name="vgg16", title="VGG16", network="dl1.models.vgg16:VggNetwork", face="dl1.models.vgg16:Vgg16",
    preprocessing="caffe", weights=_VGG16_TOP, weights_notop=_VGG16_NOTOP, top1=0.713,
    top1_source="Keras docs", params_m=138.4, dropout=0.5, env_var="DL1_WEIGHTS",
    notes="the 2017 course's network: Dropout(0.5) after fc1 and fc2"))
register(Arch(
    name="vgg16bn", title="VGG16 with BatchNormalization", network="dl1.models.vgg16:VggNetwork",
    face="dl1.models.vgg16:Vgg16BN", preprocessing="caffe", weights=_VGG16_TOP, weights_notop=_VGG16_NOTOP,
    top1=None, top1_source="no ImageNet BN file", params_m=138.4, dropout=0.5, env_var="DL1_WEIGHTS",
    network_args=(("batch_norm", True),),
    notes="VGG16's ImageNet weights; the BatchNormalization layers start as the identity"))
register(Arch(
    name="resnet50", title="ResNet50", network="dl1.models.applications:ApplicationNetwork",
    face="dl1.models.backbones:Resnet50", application="ResNet50", preprocessing="caffe",
    weights=RemoteFile("resnet50_weights_tf_dim_ordering_tf_kernels.h5",
                       _APPS + "resnet/resnet50_weights_tf_dim_ordering_tf_kernels.h5",
                       "2cb95161c43110f7111970584f804107"),
    weights_notop=RemoteFile("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                             _APPS + "resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                             "4d473c1dd8becc155b73f8504c6f6626"),
    top1=0.749, top1_source="Keras docs", params_m=25.6))
register(Arch(
    name="efficientnetv2b0", title="EfficientNetV2B0", network="dl1.models.applications:ApplicationNetwork",
    face="dl1.models.backbones:EfficientNetV2B0", application="EfficientNetV2B0",
    application_args=(("include_preprocessing", True),), preprocessing="builtin",
    weights=RemoteFile("efficientnetv2-b0.h5", _APPS + "efficientnet_v2/efficientnetv2-b0.h5",
                       "21ecbf6da12460d5c40bb2f29ceb2188"),
    weights_notop=RemoteFile("efficientnetv2-b0_notop.h5", _APPS + "efficientnet_v2/efficientnetv2-b0_notop.h5",
                             "893217f2bb855e2983157299931e43ff"),
    top1=0.787, top1_source="Keras docs", params_m=7.2))
register(Arch(
    name="efficientnetv2s", title="EfficientNetV2S", network="dl1.models.applications:ApplicationNetwork",
    face="dl1.models.backbones:EfficientNetV2S", application="EfficientNetV2S",
    application_args=(("include_preprocessing", True),), preprocessing="builtin",
    weights=RemoteFile("efficientnetv2-s.h5", _APPS + "efficientnet_v2/efficientnetv2-s.h5",
                       "e1d88a8495beba45748fedd0cecbe016"),
    weights_notop=RemoteFile("efficientnetv2-s_notop.h5", _APPS + "efficientnet_v2/efficientnetv2-s_notop.h5",
                             "af0682fb74e8c54910f2d4393339c070"),
    top1=0.839, top1_source="Keras docs", params_m=21.6))
register(Arch(
    name="convnext_tiny", title="ConvNeXtTiny", network="dl1.models.applications:ApplicationNetwork",
    face="dl1.models.backbones:ConvNeXtTiny", application="ConvNeXtTiny",
    application_args=(("include_preprocessing", True),), preprocessing="builtin",
    weights=RemoteFile("convnext_tiny.h5", _APPS + "convnext/convnext_tiny.h5",
                       "8ae6e78ce2933352b1ef4008e6dd2f17bc40771563877d156bc6426c7cf503ff"),
    weights_notop=RemoteFile("convnext_tiny_notop.h5", _APPS + "convnext/convnext_tiny_notop.h5",
                             "d547c096cabd03329d7be5562c5e14798aa39ed24b474157cef5e85ab9e49ef1"),
    top1=0.821, top1_source="its paper", params_m=28.6))
# Added as the README shows: one entry (no wrapper class: ImageClassifier('densenet121') and --arch densenet121).
register(Arch(
    name="densenet121", title="DenseNet121", network="dl1.models.applications:ApplicationNetwork", face=None,
    application="DenseNet121", preprocessing="torch",
    weights=RemoteFile("densenet121_weights_tf_dim_ordering_tf_kernels.h5",
                       _APPS + "densenet/densenet121_weights_tf_dim_ordering_tf_kernels.h5",
                       "9d60b8095a5708f2dcce2bca79d332c7"),
    weights_notop=RemoteFile("densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
                             _APPS + "densenet/densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
                             "30ee3e1110167f948a6b9946edeeb738"),
    top1=0.750, top1_source="Keras docs", params_m=8.1))
