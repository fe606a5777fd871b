"""The 2017 spellings, at the edge of the library: Keras 1 arguments and model methods installed on the
classes the library builds with (``spellings``: ``keras1``, ``optimizers``, ``methods``, ``modules``; put
back by ``uninstall``), ``K`` (``kbackend``), ``image``, SciPy's removed image functions (``scipyimage``) and
the namespace that ``from utils import *`` gives (``star``). No other room of ``dl1`` imports this one (an
import-linter contract checks it); the faces ``utils`` and ``vgg16`` install the spellings."""
