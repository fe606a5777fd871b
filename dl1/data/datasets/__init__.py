"""The course's data sets: where each is published today, and a synthetic stand-in in the same format.

Each data set is a ``Dataset`` in ``REGISTRY`` (one module per data set in this package registers its
own). ``dl1 download NAME DIR`` fetches and unpacks the real one (resumable, checksummed, atomic);
``dl1 sample DIR --dataset NAME`` writes the stand-in, which the tests and offline machines use.
"""

from dataclasses import dataclass, field

from dl1.io.errors import DL1Error


@dataclass
class Dataset:
    """``download(dest, verbose, urls=None)`` fetches and unpacks the real data into ``dest`` (idempotent;
    ``urls``, from ``dl1 download --url``, replace its sources);
    ``synthesize(dest, seed, **options)`` writes a small stand-in in the same layout. Both return a dict
    of what they wrote, for the command to print."""

    name: str
    description: str
    layout: str
    download: object = None
    synthesize: object = None
    sources: list = field(default_factory=list)


REGISTRY = {}


def register(dataset):
    REGISTRY[dataset.name] = dataset
    return dataset


def get(name):
    _load_all()
    try:
        return REGISTRY[name]
    except KeyError:
        raise DL1Error(f"unknown data set {name!r}; known: {', '.join(sorted(REGISTRY))}") from None


def names():
    _load_all()
    return sorted(REGISTRY)


def _load_all():
    """Import the data-set modules of this package (each registers itself)."""
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def kaggle_only(what, competition, name, prepare_options=""):
    """A ``download`` for a data set that only Kaggle serves: one line saying the commands to use."""

    def download(dest, verbose=True, urls=None):
        import os

        dest = os.fspath(dest)
        raise DL1Error(f"the {what} data is a Kaggle competition: dl1 kaggle download {dest} "
                       f"--competition {competition} (accept its rules on kaggle.com first), then dl1 prepare "
                       f"{dest}{prepare_options}; or 'dl1 sample {dest} --dataset {name}' for the stand-in")

    return download
