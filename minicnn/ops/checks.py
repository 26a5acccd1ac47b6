"""Argument checks shared by the functional ops: clear errors at the boundary."""


def pair(value, name, where, minimum=1):
    """(value, value) for an int, the tuple for a pair; checks both are ints >= minimum."""
    pair_ = (value, value) if isinstance(value, int) else tuple(value) if isinstance(value, (tuple, list)) else None
    if pair_ is None or len(pair_) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair_):
        raise TypeError(f"{where}: {name} must be an int or a pair of ints, got {value!r}")
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
