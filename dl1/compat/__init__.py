"""The 2017 spellings: Keras 1 argument names, ``K``, ``image``, and the namespace that
``from utils import *`` gives (``dl1.compat.star``)."""
