"""The Tensor operations as forward/backward pairs on arrays: arithmetic with broadcasting,
matmul, reductions, reshaping, indexing, joining.

Same contract as every op here: `op(...) -> (out, cache)` and `op_backward(dout, cache)`
returning one gradient per array input (a tuple when there are several). A backward never
writes into dout: the tape may hand the same dout to several nodes.

Broadcasting: an input of shape S that was broadcast to the output's shape receives
dout summed over the broadcast axes and reshaped back to S (`unbroadcast`).
"""

from ..backend import get_array_module
from . import parallel
from .impl import choose


def unbroadcast(grad, shape):
    """Sum grad over the axes that broadcasting added or stretched, so it has `shape` again."""
    shape = tuple(shape)
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(i + extra for i, n in enumerate(shape) if n == 1 and grad.shape[i + extra] != 1)
    summed = grad.sum(axis=axes, keepdims=True) if axes else grad
    return summed.reshape(shape)


# -- element-wise arithmetic: out has the broadcast shape of a and b ----------------------------


def add(a, b):
    """out = a + b. The fast path (two arrays of one shape and dtype: a residual add) cuts the sum
    over threads (ops.parallel); the same values, bit for bit."""
    if (choose(None, "add") == "fast" and getattr(a, "ndim", 0) > 0 and getattr(b, "shape", None) == a.shape
            and b.dtype == a.dtype):
        xp = get_array_module(a, b)
        return parallel.elementwise(lambda o, x, y: xp.add(x, y, out=o), xp.empty_like(a), a, b), (a.shape, b.shape)
    return a + b, (a.shape, b.shape)


def add_backward(dout, cache):
    """da = dout, db = dout, each summed back to its input's shape."""
    a_shape, b_shape = cache
    return unbroadcast(dout, a_shape), unbroadcast(dout, b_shape)


def sub(a, b):
    """out = a - b."""
    return a - b, (a.shape, b.shape)


def sub_backward(dout, cache):
    """da = dout, db = -dout."""
    a_shape, b_shape = cache
    return unbroadcast(dout, a_shape), unbroadcast(-dout, b_shape)


def mul(a, b):
    """out = a * b."""
    return a * b, (a, b)


def mul_backward(dout, cache):
    """da = dout * b, db = dout * a."""
    a, b = cache
    return unbroadcast(dout * b, a.shape), unbroadcast(dout * a, b.shape)


def mul_one_side(a, b, side):
    """out = a * b where only one factor gets a gradient (side 0: a, side 1: b); the cache keeps the
    other factor and the shapes only, as torch saves no more (so a later in-place change of the
    factor that gets the gradient does not touch what this backward reads)."""
    return a * b, (side, b if side == 0 else a, a.shape, b.shape)


def mul_one_side_backward(dout, cache):
    """da = dout * b (side 0) or db = dout * a (side 1); None for the other."""
    side, other, a_shape, b_shape = cache
    if side == 0:
        return unbroadcast(dout * other, a_shape), None
    return None, unbroadcast(dout * other, b_shape)


def div(a, b):
    """out = a / b."""
    return a / b, (a, b)


def div_backward(dout, cache):
    """da = dout / b, db = -dout * a / b^2."""
    a, b = cache
    da = dout / b
    return unbroadcast(da, a.shape), unbroadcast(-da * a / b, b.shape)


def div_by_constant(a, b):
    """out = a / b where b gets no gradient: the cache keeps b and a's shape, not a."""
    return a / b, (a.shape, b)


def div_by_constant_backward(dout, cache):
    """da = dout / b."""
    a_shape, b = cache
    return unbroadcast(dout / b, a_shape), None


def neg(x):
    """out = -x."""
    return -x, None


def neg_backward(dout, cache):
    return -dout


def pow(x, exponent):
    """out = x ** exponent, for a Python number exponent."""
    return x ** exponent, (x, exponent)


def pow_backward(dout, cache):
    """dx = dout * exponent * x^(exponent - 1)."""
    x, exponent = cache
    if exponent == 0:
        return dout * 0
    return dout * (exponent * x ** (exponent - 1))


def pow_tensor(a, b):
    """out = a ** b for an array exponent (a and b broadcast together). Integers follow torch:
    a ** b with b < 0 is 0 unless |a| = 1 (NumPy refuses negative integer powers)."""
    xp = get_array_module(a)
    if a.dtype.kind in "biu" and b.dtype.kind in "biu":
        out = xp.where((b < 0) & (xp.abs(a) != 1), 0, a ** xp.abs(b))
    else:
        out = a ** b
    return out, (a, b, out)


def pow_tensor_backward(dout, cache):
    """da = dout * b * a^(b-1) (0 where b = 0), db = dout * a^b * log(a) (0 where a = 0 and b >= 0),
    the cells torch masks; elsewhere a negative base gives NaN in db, as log(a) is NaN."""
    a, b, out = cache
    xp = get_array_module(dout)
    da = xp.where(b == 0, 0, dout * (b * a ** (b - 1)))
    db = xp.where((a == 0) & (b >= 0), 0, dout * (out * xp.log(a)))
    return unbroadcast(da, a.shape), unbroadcast(db, b.shape)


def exp(x):
    out = get_array_module(x).exp(x)
    return out, out


def exp_backward(dout, cache):
    """d exp(x) = exp(x)."""
    return dout * cache


def log(x):
    return get_array_module(x).log(x), x


def log_backward(dout, cache):
    """d log(x) = 1 / x."""
    return dout / cache


def sqrt(x):
    out = get_array_module(x).sqrt(x)
    return out, out


def sqrt_backward(dout, cache):
    """d sqrt(x) = 1 / (2 sqrt(x))."""
    return dout / (2 * cache)


def abs(x):
    return get_array_module(x).abs(x), x


def abs_backward(dout, cache):
    """d |x| = sign(x) (0 at 0, as torch)."""
    return dout * get_array_module(cache).sign(cache)


def clamp(x, min=None, max=None):
    """x limited to [min, max] (either may be None)."""
    xp = get_array_module(x)
    out = xp.clip(x, min, max) if (min is not None or max is not None) else x.copy()
    return out, (x, min, max)


def clamp_backward(dout, cache):
    """dx = dout where min <= x <= max (the bounds included, as torch), else 0."""
    x, lo, hi = cache
    keep = True
    if lo is not None:
        keep = x >= lo
    if hi is not None:
        keep = keep & (x <= hi)
    return dout * keep


def maximum(a, b):
    """Element-wise max of a and b; where they tie, each gets half of dout (as torch)."""
    return get_array_module(a).maximum(a, b), (a, b)


def maximum_backward(dout, cache):
    a, b = cache
    share = (a > b) + (a == b) * a.dtype.type(0.5) if a.dtype.kind == "f" else (a >= b)
    return unbroadcast(dout * share, a.shape), unbroadcast(dout * (1 - share), b.shape)


def minimum(a, b):
    """Element-wise min of a and b; where they tie, each gets half of dout (as torch). Computed
    directly, not as -maximum(-a, -b): negation wraps around for unsigned integers."""
    return get_array_module(a).minimum(a, b), (a, b)


def minimum_backward(dout, cache):
    """da = dout where a < b, db = dout where b < a; a tie gives each half (for floats)."""
    a, b = cache
    share = (a < b) + (a == b) * a.dtype.type(0.5) if a.dtype.kind == "f" else (a <= b)
    return unbroadcast(dout * share, a.shape), unbroadcast(dout * (1 - share), b.shape)


def where(condition, a, b):
    """a where condition holds, else b (all three broadcast together)."""
    return get_array_module(a).where(condition, a, b), (condition, a.shape, b.shape)


def where_backward(dout, cache):
    """da = dout where the condition held, db = dout elsewhere: exactly 0 in the other branch
    (selected with where, not multiplied by the mask, which turns an inf or NaN dout into NaN)."""
    condition, a_shape, b_shape = cache
    xp = get_array_module(dout)
    return unbroadcast(xp.where(condition, dout, 0), a_shape), unbroadcast(xp.where(condition, 0, dout), b_shape)


# -- matrix product ---------------------------------------------------------------------------


def matmul(a, b):
    """a @ b with NumPy's rules: (n,) or (..., n, k) @ (k,) or (..., k, m); batch axes broadcast."""
    return a @ b, (a, b)


def matmul_backward(dout, cache):
    """da = dout @ b^T, db = a^T @ dout (a vector operand is treated as a one-row or one-column matrix)."""
    a, b = cache
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    d = dout  # made (..., N, M) like a2 @ b2: the column axis first, so that vec @ vec's 0-d dout works too
    if b.ndim == 1:
        d = d[..., None]
    if a.ndim == 1:
        d = d[..., None, :]
    da = d @ b2.swapaxes(-1, -2)
    db = a2.swapaxes(-1, -2) @ d
    da = unbroadcast(da, a2.shape).reshape(a.shape)
    db = unbroadcast(db, b2.shape).reshape(b.shape)
    return da, db


# -- reductions -------------------------------------------------------------------------------


def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(a % ndim if ndim else a for a in axes)


def sum(x, axis=None, keepdims=False):
    """Sum over axis (an int, a tuple, or None for all)."""
    return x.sum(axis=axis, keepdims=keepdims), (x.shape, _axes(axis, x.ndim), keepdims)


def sum_backward(dout, cache):
    """Every input cell receives the dout of the sum it went into."""
    shape, axes, keepdims = cache
    xp = get_array_module(dout)
    if not keepdims:
        dout = xp.expand_dims(dout, axes) if axes else dout
    return xp.broadcast_to(dout, shape).copy()


def mean(x, axis=None, keepdims=False):
    """Mean over axis."""
    return x.mean(axis=axis, keepdims=keepdims), (x.shape, _axes(axis, x.ndim), keepdims)


def mean_backward(dout, cache):
    """Every input cell receives dout / (the number of cells averaged)."""
    shape, axes, _ = cache
    count = 1
    for a in axes:
        count *= shape[a]
    return sum_backward(dout, cache) / count


def max(x, axis=None, keepdims=False):
    """Maximum over axis. NaN propagates (a NaN is the maximum), as in torch."""
    xp = get_array_module(x)
    out = xp.max(x, axis=axis, keepdims=keepdims)
    return out, (x, _axes(axis, x.ndim), out, keepdims)


def min(x, axis=None, keepdims=False):
    """Minimum over axis. NaN propagates."""
    xp = get_array_module(x)
    out = xp.min(x, axis=axis, keepdims=keepdims)
    return out, (x, _axes(axis, x.ndim), out, keepdims)


def max_backward(dout, cache):
    """dout is shared evenly among the cells equal to the result (torch's rule for amax/amin,
    and for max/min over all elements). Also the backward of min."""
    x, axes, out, keepdims = cache
    xp = get_array_module(x)
    if not keepdims:
        out, dout = xp.expand_dims(out, axes), xp.expand_dims(dout, axes)
    hit = (x == out) | (xp.isnan(x) & xp.isnan(out)) if x.dtype.kind == "f" else (x == out)
    hit = hit.astype(dout.dtype)
    return hit * (dout / hit.sum(axis=axes, keepdims=True))


min_backward = max_backward


def norm(x, p=2, axis=None, keepdims=False):
    """The vector p-norm over axis (None: all): sqrt(sum x^2) for p = 2, sum |x| for p = 1,
    max |x| for p = inf."""
    xp = get_array_module(x)
    if p == 2:
        out = xp.sqrt((x * x).sum(axis=axis, keepdims=keepdims))
    elif p == 1:
        out = xp.abs(x).sum(axis=axis, keepdims=keepdims)
    else:
        out = xp.abs(x).max(axis=axis, keepdims=keepdims)
    return out, (x, p, _axes(axis, x.ndim), out, keepdims)


def norm_backward(dout, cache):
    """p = 2: dx = x * dout / norm, 0 where the norm is 0 (as torch; not 0 * inf = NaN);
    p = 1: dx = dout * sign(x); p = inf: dout * sign(x), shared among the cells where |x| is the max."""
    x, p, axes, out, keepdims = cache
    xp = get_array_module(x)
    if not keepdims and axes:
        out, dout = xp.expand_dims(out, axes), xp.expand_dims(dout, axes)
    if p == 2:
        return x * xp.where(out == 0, 0, dout / xp.where(out == 0, 1, out))
    if p == 1:
        return dout * xp.sign(x)
    hit = (xp.abs(x) == out).astype(x.dtype)
    return dout * xp.sign(x) * hit / hit.sum(axis=axes, keepdims=True)


def max_along(x, axis, keepdims=False):
    """torch.max(x, dim): the values and the index of the first maximum along one axis.
    The gradient goes to that index only."""
    return _pick_along(x, axis, keepdims, argmax(x, axis))


def min_along(x, axis, keepdims=False):
    """torch.min(x, dim): values and the index of the first minimum."""
    return _pick_along(x, axis, keepdims, argmin(x, axis))


def _pick_along(x, axis, keepdims, index):
    xp = get_array_module(x)
    values = xp.take_along_axis(x, xp.expand_dims(index, axis), axis)
    if not keepdims:
        values = values.squeeze(axis)
    return (values, index if not keepdims else xp.expand_dims(index, axis)), (x.shape, axis, index, keepdims)


def max_along_backward(dout, cache):
    """dx: dout placed at the winning index along the axis, 0 elsewhere. Also min_along's."""
    shape, axis, index, keepdims = cache
    xp = get_array_module(dout)
    dx = xp.zeros(shape, dtype=dout.dtype)
    d = dout if keepdims else xp.expand_dims(dout, axis)
    xp.put_along_axis(dx, xp.expand_dims(index, axis), d, axis)
    return dx


min_along_backward = max_along_backward


def argmax(x, axis=None):
    """Index of the first maximum (NaN counts as the maximum, as in torch). No gradient."""
    return _nan_first(x, axis, get_array_module(x).argmax(x, axis=axis))


def argmin(x, axis=None):
    """Index of the first minimum (NaN counts as the minimum, as in torch). No gradient."""
    return _nan_first(x, axis, get_array_module(x).argmin(x, axis=axis))


def _nan_first(x, axis, index):
    """index, except where the slice holds a NaN: there the index of its first NaN, as torch gives."""
    xp = get_array_module(x)
    if x.dtype.kind != "f":
        return index
    nan = xp.isnan(x)
    if not bool(nan.any()):
        return index
    return xp.where(nan.any(axis=axis), xp.argmax(nan, axis=axis), index)


# -- reshaping --------------------------------------------------------------------------------


def reshape(x, shape):
    """The same values in a new shape (a view where the layout allows)."""
    return x.reshape(shape), x.shape


def reshape_backward(dout, cache):
    """The gradient takes back the input's shape."""
    return dout.reshape(cache)


def transpose(x, axes):
    """Axes permuted: out.shape[i] = x.shape[axes[i]] (torch's permute)."""
    return x.transpose(axes), tuple(axes)


def transpose_backward(dout, cache):
    """Permute back with the inverse permutation."""
    inverse = [0] * len(cache)
    for i, a in enumerate(cache):
        inverse[a] = i
    return dout.transpose(inverse)


def expand(x, shape):
    """x broadcast to shape (a read-only view)."""
    return get_array_module(x).broadcast_to(x, shape), x.shape


def expand_backward(dout, cache):
    return unbroadcast(dout, cache)


# -- indexing and joining ---------------------------------------------------------------------


def _is_basic(index):
    """True for an index of ints, slices, None and Ellipsis only: it never picks a cell twice."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (int, slice)) for p in parts)


def getitem(x, index):
    """x[index], with NumPy's (and torch's) basic and advanced indexing."""
    return x[index], (x.shape, x.dtype, index)


def getitem_backward(dout, cache):
    """dx: dout written back where the cells came from. An advanced index may pick one cell
    several times; those contributions are added (by bincount over flat positions)."""
    shape, dtype, index = cache
    xp = get_array_module(dout)
    if _is_basic(index):
        dx = xp.zeros(shape, dtype=dout.dtype)
        dx[index] = dout
        return dx
    size = 1
    for n in shape:
        size *= n
    positions = xp.arange(size).reshape(shape)[index]  # flat source position of every output cell
    dx = xp.bincount(positions.ravel(), weights=dout.ravel(), minlength=size)
    return dx.astype(dout.dtype, copy=False).reshape(shape)


def cat(arrays, axis=0):
    """Join arrays along an existing axis."""
    xp = get_array_module(*arrays)
    return xp.concatenate(arrays, axis=axis), ([a.shape[axis] for a in arrays], axis)


def cat_backward(dout, cache):
    """Each input gets its own slab of dout back."""
    sizes, axis = cache
    grads, start = [], 0
    for n in sizes:
        index = [slice(None)] * dout.ndim
        index[axis] = slice(start, start + n)
        grads.append(dout[tuple(index)])
        start += n
    return tuple(grads)


def stack(arrays, axis=0):
    """Join arrays of one shape along a new axis."""
    xp = get_array_module(*arrays)
    return xp.stack(arrays, axis=axis), (len(arrays), axis)


def stack_backward(dout, cache):
    """Each input gets its slice of dout along the new axis."""
    count, axis = cache
    xp = get_array_module(dout)
    return tuple(xp.take(dout, i, axis=axis) for i in range(count))


def pad(x, widths, value=0):
    """x padded with `value`; widths: one (before, after) pair per axis of x, all >= 0.
    The cache keeps the value too (the backward does not need it; an exporter does)."""
    return get_array_module(x).pad(x, widths, constant_values=value), (widths, value)


def pad_backward(dout, cache):
    """The gradient of the kept cells: dout with the padding cut off."""
    widths, _ = cache
    return dout[tuple(slice(b, dout.shape[i] - a) for i, (b, a) in enumerate(widths))]


# -- writes: the new values of an in-place change, as pairs ----------------------------------------


def fill(x, value):
    """out: x's shape and dtype, every cell `value` (fill_, zero_)."""
    return get_array_module(x).full(x.shape, value, dtype=x.dtype), None


def fill_backward(dout, cache):
    """dx = 0: every old value was overwritten."""
    return get_array_module(dout).zeros_like(dout)


def copy_into(x, src):
    """out: src broadcast to x's shape (copy_'s new values; x's old values are all overwritten)."""
    return get_array_module(src).broadcast_to(src, x.shape).copy(), src.shape


def copy_into_backward(dout, cache):
    """dx = 0 (overwritten), dsrc = dout summed back to src's shape."""
    return get_array_module(dout).zeros_like(dout), unbroadcast(dout, cache)


def index_put(x, index, value):
    """out = x with out[index] = value (value an array broadcast to the indexed cells, or a number)."""
    out = x.copy()
    out[index] = value
    return out, (index, getattr(value, "shape", None))


def index_put_backward(dout, cache):
    """dx = dout with the written cells zeroed; dvalue = dout at those cells, summed back to value's shape."""
    index, value_shape = cache
    dx = dout.copy()
    dx[index] = 0
    if value_shape is None:
        return dx, None
    dv = dout[index]
    if dv.ndim < len(value_shape):  # value had leading 1s beyond the indexed cells' shape
        dv = dv.reshape((1,) * (len(value_shape) - dv.ndim) + dv.shape)
    return dx, unbroadcast(dv, value_shape)


def copy_slices_backward(dout, cache):
    """The gradient of a base b after an in-place change of its view v = take(b).

    The view's cells were overwritten by the change's result r, so: db = dout with v's cells
    zeroed, dr = dout at v's cells. cache: (takes, order): the steps from b to v (functions
    array -> view) and b's axes from the largest stride to the smallest, so that the same steps
    taken on a gradient laid out like b give a view of it, never a copy.
    """
    takes, order = cache
    xp = get_array_module(dout)
    inverse = [0] * len(order)
    for k, axis in enumerate(order):
        inverse[axis] = k
    db = xp.empty(tuple(dout.shape[a] for a in order), dtype=dout.dtype).transpose(inverse)
    db[...] = dout
    cells = db
    for take in takes:
        cells = take(cells)
    if cells.size and not xp.may_share_memory(cells, db):
        raise RuntimeError("internal error: copy_slices_backward: the view's steps made a copy of the gradient")
    dr = cells.copy()
    cells[...] = 0
    return db, dr
