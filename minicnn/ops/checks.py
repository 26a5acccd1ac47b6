"""Argument checks shared by the functional ops: clear errors at the boundary."""

import numbers
import operator


def _integral(v):
    return type(v) is int or (isinstance(v, numbers.Integral) and not isinstance(v, bool))


def pair(value, name, where, minimum=1):
    """(value, value) for an int, the tuple for a pair; checks both are ints >= minimum. Any integral
    number is an int here (a NumPy integer from np.prod, say); a bool or a float is not."""
    if type(value) is tuple and len(value) == 2 and type(value[0]) is int and type(value[1]) is int \
            and value[0] >= minimum and value[1] >= minimum:
        return value  # the common case, on every forward call: already a valid pair
    pair_ = (value, value) if _integral(value) else tuple(value) if isinstance(value, (tuple, list)) else None
    if pair_ is None or len(pair_) != 2 or not all(_integral(v) for v in pair_):
        raise TypeError(f"{where}: {name} must be an int or a pair of ints, got {value!r}")
    pair_ = tuple(operator.index(v) for v in pair_)
    if min(pair_) < minimum:
        raise ValueError(f"{where}: {name} must be >= {minimum}, got {value!r}")
    return pair_


def check_same_dtype(where, x, w, b=None):
    """x, w and b (if any) must share one dtype: mixing float32 and float64 would promote silently."""
    if x.dtype != w.dtype or (b is not None and b.dtype != w.dtype):
        raise TypeError(
            f"{where}: expected x, w and b of one dtype (no silent promotion), got x {x.dtype}, w {w.dtype}"
            + (f", b {b.dtype}" if b is not None else "")
        )
