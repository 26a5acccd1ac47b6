"""default_collate: a list of samples -> one batch, with torch's rules.

    Tensors               stacked: (B, *shape), dtype kept
    NumPy arrays          stacked the same way (dtype kept); arrays of strings or objects are refused
    NumPy scalars         a (B,) tensor of their dtype
    Python ints (bools)   int64 (bool) (B,)
    Python floats         float64 (B,)  (torch's rule: not the default float32)
    str, bytes            the list as it is
    dicts                 {key: collate of that key}
    namedtuples           the same namedtuple of collated fields
    tuples, lists         a list with one collated entry per position: (x, y) samples give [X, Y]

Stacked batches are Tensors on the active backend (copied to the GPU when CuPy is active).
"""

import collections.abc
import copy

import numpy as np

from .._tensor import Tensor, float64, tensor
from ..backend import get_array_module, to_device

ERROR = "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {}"


def _stack(arrays, what):
    shapes = {tuple(a.shape) for a in arrays}
    if len(shapes) > 1:
        raise RuntimeError(f"stack expects each tensor to be equal size, but got {sorted(shapes)} "
                           f"in one batch of {what}; resize them to one size (a transform), or pass collate_fn")
    return Tensor._wrap(to_device(get_array_module(*arrays).stack(arrays)))


def default_collate(batch):
    """One batch from a list of samples (see the module docstring for the rules)."""
    elem = batch[0]
    if isinstance(elem, Tensor):
        return _stack([t.array for t in batch], "tensors")
    if isinstance(elem, np.ndarray):
        if elem.dtype.kind in "USO":
            raise TypeError(ERROR.format(elem.dtype))
        return _stack(batch, "arrays")
    if isinstance(elem, (np.bool_, np.number)):
        return Tensor._wrap(to_device(np.asarray(batch)))
    if isinstance(elem, int):
        return tensor(batch)  # torch.tensor's dtype: int64 for ints, bool for bools
    if isinstance(elem, float):
        return tensor(batch, dtype=float64)
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        collated = {key: default_collate([d[key] for d in batch]) for key in elem}
        if isinstance(elem, collections.abc.MutableMapping):
            clone = copy.copy(elem)
            clone.update(collated)
            return clone
        return collated
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # a namedtuple
        return type(elem)(*(default_collate(list(field)) for field in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        if any(len(sample) != len(elem) for sample in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        return [default_collate(list(field)) for field in zip(*batch)]
    hint = "; add transforms.ToTensor() to the data set's transform" if "PIL" in type(elem).__module__ else ""
    raise TypeError(ERROR.format(type(elem)) + hint)
