"""Checks of the numeric arguments of library functions: a wrong value is one ``ArgumentError`` line naming
the argument, the value and what is expected, never a traceback from deep inside numpy."""

import numbers

from dl1.io.errors import DL1Error

__all__ = ["ArgumentError", "fraction", "number", "whole", "folder_name"]


class ArgumentError(DL1Error, ValueError):
    """A function was called with an argument outside what it accepts."""


def whole(name, value, minimum=1, maximum=None):
    """``value`` as an int, refused unless a whole number (not a bool) in ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and float(value).is_integer():
            value = int(value)
        else:
            raise ArgumentError(f"{name} must be a whole number, not {value!r}")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and at most {maximum}" if maximum is not None else ""
        raise ArgumentError(f"{name} must be at least {minimum}{upper}, not {value}")
    return value


def number(name, value, low=None, high=None, low_open=False, high_open=False):
    """``value`` as a finite float within the bounds given (open bounds exclude the bound itself)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != value or value in (
            float("inf"), float("-inf")):
        raise ArgumentError(f"{name} must be a finite number, not {value!r}")
    value = float(value)
    below = low is not None and (value <= low if low_open else value < low)
    above = high is not None and (value >= high if high_open else value > high)
    if below or above:
        lo = "" if low is None else f"{'above' if low_open else 'at least'} {low:g}"
        hi = "" if high is None else f"{'below' if high_open else 'at most'} {high:g}"
        raise ArgumentError(f"{name} must be {' and '.join(p for p in (lo, hi) if p)}, not {value:g}")
    return value


def fraction(name, value):
    """A number strictly between 0 and 1."""
    return number(name, value, 0, 1, low_open=True, high_open=True)


def folder_name(name, value):
    """``value`` as one folder name inside a data folder: no separator, not ``..``, not absolute."""
    text = str(value)
    if not text or text in (".", "..") or "/" in text or "\\" in text or "\0" in text:
        raise ArgumentError(f"{name} must be the name of a folder inside the data folder, not {value!r}")
    return text
