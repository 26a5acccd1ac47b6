"""make_grid and save_image: a batch of images as one picture, as torchvision.utils draws it.

For B images (C, H, W), the grid is a (C', rows * (H + padding) + padding, cols * (W + padding) + padding)
Tensor with cols = min(nrow, B) and rows = ceil(B / cols): image k sits at row k // cols, column
k % cols, with `padding` pixels of pad_value between the images and around them. C' is 3 for
one-channel images (repeated into R, G and B), C otherwise. A single image comes back as it is,
without padding (torchvision does the same).
"""

import math

import numpy as np

from .._tensor import Tensor
from ..backend import get_array_module, to_numpy
from .image import require_pil


def make_grid(tensor, nrow=8, padding=2, normalize=False, value_range=None, scale_each=False, pad_value=0.0):
    """The images of tensor (B, C, H, W) (or one (C, H, W) or (H, W), or a list of (C, H, W)) in one grid.

    nrow        images per row
    normalize   shift and scale to [0, 1]: from value_range (min, max), clamping, or from the
                images' own min and max; scale_each: each image from its own min and max
    pad_value   the value of the padding pixels
    Returns a Tensor (C', H', W') of the images' dtype (float32 for integer images normalized);
    see the module docstring for its shape.
    """
    if isinstance(tensor, (list, tuple)):
        tensor = [t.array if isinstance(t, Tensor) else t for t in tensor]
        a = get_array_module(*tensor).stack(tensor)
    else:
        a = tensor.array if isinstance(tensor, Tensor) else tensor
    xp = get_array_module(a)
    if a.ndim == 2:
        a = a[None]
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4:
        raise ValueError(f"make_grid: expected images (B, C, H, W), (C, H, W) or (H, W), got shape {tuple(a.shape)}")
    if a.shape[1] == 1:  # one channel: grey in R, G and B
        a = xp.concatenate([a, a, a], axis=1)
    if normalize:
        if value_range is not None and not isinstance(value_range, tuple):
            raise TypeError("value_range has to be a tuple (min, max) if specified. min and max are numbers")
        a = a.astype(np.float32) if a.dtype.kind != "f" else a
        a = xp.stack([_to_unit(img, value_range) for img in a]) if scale_each else _to_unit(a, value_range)
    if len(a) == 1:
        return Tensor._wrap(a[0])
    B, C, H, W = a.shape
    cols = min(nrow, B)
    rows = int(math.ceil(B / cols))
    grid = xp.full((C, rows * (H + padding) + padding, cols * (W + padding) + padding), pad_value, dtype=a.dtype)
    for k in range(B):
        top, left = (k // cols) * (H + padding) + padding, (k % cols) * (W + padding) + padding
        grid[:, top:top + H, left:left + W] = a[k]
    return Tensor._wrap(grid)


def _to_unit(a, value_range):
    """a clamped to [low, high] and mapped to [0, 1]; (low, high) = value_range, or a's min and max."""
    low, high = value_range if value_range is not None else (float(a.min()), float(a.max()))
    xp = get_array_module(a)
    return (xp.clip(a, low, high) - low) / max(high - low, 1e-5)


def save_image(tensor, fp, format=None, **kwargs):
    """Write make_grid(tensor, **kwargs) as an image file (PNG for a .png name; `format` to choose).

    Values are taken as [0, 1]: written as uint8 round(255 * x), clamped, as torchvision. Needs
    Pillow (matplotlib, the other image writer, itself requires Pillow).
    """
    Image = require_pil("save_image")
    grid = to_numpy(make_grid(tensor, **kwargs).array).astype(np.float32)
    pixels = np.clip(grid * 255 + 0.5, 0, 255).astype(np.uint8)
    pixels = pixels.transpose(1, 2, 0) if pixels.ndim == 3 else pixels
    Image.fromarray(np.ascontiguousarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)).save(fp, format=format)
