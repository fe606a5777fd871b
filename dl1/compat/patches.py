"""Reversible changes of attributes on classes and modules: the mechanism behind ``dl1.compat.spellings``.

``Patches`` collects ``set(owner, name, value)`` and ``wrap(owner, name, make)`` entries and applies them
together; ``revert()`` puts every attribute back as it was, deleting those that did not exist (an
inherited method is shadowed while applied, then inherited again). ``wrap`` builds the replacement from the
attribute found when the patches are applied, so two wraps of the same name compose in order.
"""

_MISSING = object()


class Patches:
    """A set of attribute replacements, applied and reverted as one (see the module docstring)."""

    def __init__(self):
        self._planned = []  # (owner, name, value, wrap)
        self._saved = None  # (owner, name, previous own attribute or _MISSING), in application order

    @property
    def applied(self):
        return self._saved is not None

    def set(self, owner, name, value):
        """Set ``owner.name = value`` when applied."""
        self._planned.append((owner, name, value, False))

    def wrap(self, owner, name, make):
        """Set ``owner.name = make(current value of owner.name)`` when applied (the current value may be
        inherited); ``make`` returns a function, or a ``staticmethod``/``property``."""
        self._planned.append((owner, name, make, True))

    def targets(self):
        """``[(owner, name)]`` of every planned change."""
        return [(owner, name) for owner, name, _, _ in self._planned]

    def apply(self):
        if self._saved is not None:
            return
        saved = []
        try:
            for owner, name, value, wrap in self._planned:
                previous = vars(owner).get(name, _MISSING)
                new = value(getattr(owner, name)) if wrap else value
                setattr(owner, name, new)
                saved.append((owner, name, previous))
        except BaseException:
            _restore(saved)
            raise
        self._saved = saved

    def revert(self):
        if self._saved is None:
            return
        _restore(self._saved)
        self._saved = None


def _restore(saved):
    for owner, name, previous in reversed(saved):
        if previous is _MISSING:
            delattr(owner, name)
        else:
            setattr(owner, name, previous)
