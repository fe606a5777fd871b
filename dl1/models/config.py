"""``RunConfig``: every setting of a fine-tuning run (and of the learning-rate finder) in one typed, validated
object, built once (by the command line, ``RunConfig.from_namespace``, or by a library call,
``RunConfig(epochs=3, arch='resnet50')``), passed down to the steps, and recorded whole in
``results/dl1-model.json`` (``dl1.models.record``).

Each field is declared once, with its default, its check, its command-line flag and help text and the
subcommands that take it (``option``); ``dl1.cli`` generates those subcommands' options from these
declarations. Every value is checked when the object is made: a bad one raises ``ConfigError`` (a usage
error), one line naming the option and the value, before anything is read or written. This module
imports neither Keras nor PyTorch.
"""

import dataclasses
import math
import numbers
import os

from dl1.io.errors import DL1Error
from dl1.models import archs

FINETUNE, LR_FIND = "finetune", "lr-find"
TRAINING = (FINETUNE, LR_FIND)
DEFAULT_LR = 0.001  # the learning rate of the recipe (2017 ``Vgg16.compile(lr=0.001)``): the one place it is set
MIXED_PRECISION = {"auto": "auto", "on": True, "off": False}


class ConfigError(DL1Error, ValueError):
    """A setting of the wrong kind or out of its range (a usage error): one line naming the option, the
    value and what is allowed."""


# ---- checks: None when the value is fine, else what is wrong, in words ------------------------------------
def at_least(n):
    """A whole number ``n`` or more."""
    def check(value):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            return "must be a whole number"
        return None if value >= n else f"must be {n} or more"
    return check


def positive(value):
    """A finite number above 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return "must be a number"
    return None if math.isfinite(value) and value > 0 else "must be a finite number above 0"


def flag_of(name):
    """The command-line spelling of a setting: ``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


def checked(flag, value, check):
    """``value`` when ``check(value)`` finds nothing wrong, else a ConfigError naming ``flag`` and it."""
    problem = check(value)
    if problem:
        raise ConfigError(f"{flag} {problem}, not {value!r}")
    return value


def option(default, help, *, flag=None, check=None, commands=TRAINING, choices=None, metavar=None,
           negate=False, both=False):
    """A ``RunConfig`` field declared once: ``help`` (a string, or ``{command: string}``), ``flag`` (default
    ``--field-name``; ``negate``: a ``--no-...`` switch that sets it False; ``both``: ``--flag`` and
    ``--no-flag``, True or False, None when neither is given), ``check`` (see above), ``commands`` (the
    subcommands that take it), ``choices``."""
    return dataclasses.field(default=default, metadata={
        "help": help, "flag": flag, "check": check, "commands": tuple(commands), "choices": choices,
        "metavar": metavar, "negate": negate, "both": both})


def yes_or_no(value):
    """True or False."""
    return None if isinstance(value, bool) else "must be True or False (or None: decide)"


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """The settings of one ``dl1 finetune`` (or ``dl1 lr-find``) run; see the module docstring."""

    sample: bool = option(False, "use DIR/sample/train and DIR/sample/valid (results in DIR/sample/results)")
    arch: str = option(archs.DEFAULT_ARCH, "network: " + ", ".join(archs.names()) + " (default "
                       f"{archs.DEFAULT_ARCH}; recorded in results/dl1-model.json for predict, inspect and "
                       "submit). Several GPUs: torchrun --nproc-per-node N -m dl1 finetune DIR ...",
                       choices=tuple(archs.names()))
    weights: str = option("imagenet", "imagenet (default), none (random) or a weights file")
    size: int | None = option(None, "image side in pixels (default: the architecture's, 224)", check=at_least(1))
    epochs: int = option(1, "epochs in all (default 1)", check=at_least(1), commands=(FINETUNE,))
    batch_size: int = option(64, {FINETUNE: "batch size (default 64; under torchrun the global batch, shared by "
                                            "the processes)", LR_FIND: "batch size (default 64)"},
                             check=at_least(1))
    lr: float = option(DEFAULT_LR, f"learning rate (default {DEFAULT_LR})", check=positive, commands=(FINETUNE,))
    seed: int = option(0, "shuffle seed (default 0)", check=at_least(0))
    cache: bool = option(True, "do not cache the frozen layers' outputs", flag="--no-cache", negate=True)
    checkpoint_every: int | None = option(None, "also save a checkpoint every N batches", check=at_least(1),
                                          metavar="N", commands=(FINETUNE,))
    restart: bool = option(False, "ignore an existing checkpoint and start the record again at epoch 1 (the "
                                  "earlier history is kept aside)", commands=(FINETUNE,))
    mixed_precision: str = option("auto", "bfloat16/float16 compute: auto = on when a CUDA GPU is present "
                                          "(default)", choices=tuple(MIXED_PRECISION))
    jit: bool | None = option(None, "compile the training step (--jit) or run eager (--no-jit); default: "
                                    "compile when the run is long enough to pay for it", check=yes_or_no,
                              both=True)
    keep: int = option(2, "keep the N newest per-epoch weight files ftN.h5 (default 2; 0 keeps all)",
                       check=at_least(0), metavar="N", commands=(FINETUNE,))
    verbose: int = option(1, "Keras verbosity (default 1)", choices=(0, 1, 2))
    one_cycle: bool = option(False, "one-cycle schedule: the rate warms up to --lr (the maximum), then anneals "
                                    "(cosine)", commands=(FINETUNE,))
    unfreeze: bool = option(False, {FINETUNE: "fine_tune: --freeze-epochs head epochs, then --epochs with every "
                                              "layer training, lower rates for earlier blocks (--lr is the base "
                                              "rate)",
                                    LR_FIND: "test with every layer training (slower: no cache)"})
    freeze_epochs: int = option(1, "with --unfreeze: head-only epochs first (default 1)", check=at_least(0),
                                metavar="N", commands=(FINETUNE,))
    start_lr: float = option(1e-7, "first rate (default 1e-7)", check=positive, commands=(LR_FIND,))
    end_lr: float = option(10.0, "last rate (default 10)", check=positive, commands=(LR_FIND,))
    num_steps: int = option(100, "most steps (batches) to run (default 100)", check=at_least(2),
                            commands=(LR_FIND,))
    suggest: str = option("valley", "the rule of the suggested rate: valley (default: the middle of the "
                          "longest stretch where the loss keeps falling) or minimum/10 (the lowest loss's rate "
                          "/ 10)", choices=("valley", "minimum/10"), commands=(LR_FIND,))

    def __post_init__(self):
        weights = "none" if self.weights is None else os.fspath(self.weights)
        object.__setattr__(self, "weights", weights)
        if isinstance(self.mixed_precision, bool):
            object.__setattr__(self, "mixed_precision", "on" if self.mixed_precision else "off")
        if isinstance(self.arch, str):
            object.__setattr__(self, "arch", self.arch.lower())
        for f in dataclasses.fields(self):
            value, meta = getattr(self, f.name), f.metadata
            flag = meta["flag"] or flag_of(f.name)
            if meta["choices"] is not None and value not in meta["choices"]:
                allowed = ", ".join(str(c) for c in meta["choices"])
                raise ConfigError(f"{flag} must be one of {allowed}, not {value!r}")
            if meta["check"] is not None and not (value is None and f.default is None):
                checked(flag, value, meta["check"])
        if not weights:
            raise ConfigError("--weights must be imagenet, none or a file, not ''")
        spec = archs.get(self.arch)
        if self.size is None:
            object.__setattr__(self, "size", spec.default_size)
        problem = spec.size_problem((self.size, self.size))
        if problem:
            raise ConfigError(f"--{problem} (--arch {self.arch})")
        if not self.start_lr < self.end_lr:
            raise ConfigError(f"--start-lr must be below --end-lr, not {self.start_lr!r} and {self.end_lr!r}")

    # ---- reading and writing -----------------------------------------------------------------------------
    @classmethod
    def from_namespace(cls, namespace):
        """The config from parsed command-line arguments (the attributes named like fields)."""
        given = {f.name: getattr(namespace, f.name) for f in dataclasses.fields(cls) if hasattr(namespace, f.name)}
        return cls(**given)

    @classmethod
    def from_dict(cls, data):
        """The config recorded by ``to_dict`` (keys this version does not know are ignored)."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in dict(data).items() if k in known})

    @classmethod
    def build(cls, config=None, **changes):
        """``config`` (or the defaults) with ``changes``; an unknown setting is a ConfigError."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigError(f"unknown setting {unknown[0]!r}: use one of {', '.join(sorted(known))}")
        return dataclasses.replace(config, **changes) if config is not None else cls(**changes)

    def to_dict(self):
        return dataclasses.asdict(self)

    # ---- what the settings mean --------------------------------------------------------------------------
    @property
    def schedule(self):
        """``fine_tune`` (--unfreeze), ``one_cycle`` (--one-cycle) or ``constant``."""
        return "fine_tune" if self.unfreeze else "one_cycle" if self.one_cycle else "constant"

    @property
    def arch_spec(self):
        return archs.get(self.arch)

    def model_args(self):
        """The keyword arguments of ``ImageClassifier`` these settings give."""
        weights = {"none": None, "random": None, "imagenet": "imagenet"}.get(self.weights.lower(), self.weights)
        return {"weights": weights, "size": self.size, "mixed_precision": MIXED_PRECISION[self.mixed_precision],
                "jit_compile": "auto" if self.jit is None else self.jit}


def declared_options(command):
    """``[(field name, metadata, default)]`` of the ``RunConfig`` settings ``command`` takes, in order."""
    return [(f.name, f.metadata, f.default) for f in dataclasses.fields(RunConfig) if command in f.metadata["commands"]]
