"""Transforms with torchvision's names, each usable on one sample and on a whole batch.

    t(img)            one sample, as torchvision: img a PIL Image, an image array (H, W) or (H, W, C),
                      or a Tensor (..., C, H, W); the result is of the same kind (ToTensor and
                      ToPILImage convert). A random transform draws once per call, from current_rng():
                      the DataLoader's generator while it builds a batch, else minicnn's global one
                      (seeded by minicnn.manual_seed). The leading dims of a Tensor share that draw.
    t.batch(x, rng)   a whole batch x (B, C, H, W), NumPy or CuPy array or Tensor (same kind back);
                      each image gets its own draw from rng (a NumPy Generator; default current_rng()).

Both forms run one kernel on (B, C, H, W) arrays (one sample is a batch of one), so a
deterministic transform gives the same numbers either way and a random one the same
distribution. Random choices are drawn on the host, so a seed gives the same augmentation on
NumPy and on CuPy. Lambda and ToPILImage have no batch form; a Compose has one when all its
transforms have, and then a DataLoader over an array data set applies it to whole batches.

    >>> augment = Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(), ToTensor(),
    ...                    Normalize((0.49, 0.48, 0.45), (0.25, 0.24, 0.26))])
    >>> loader = DataLoader(CIFAR10("data", transform=augment), 128, shuffle=True, seed=0)

Where minicnn differs from torchvision: Resize computes F.interpolate(align_corners=False,
antialias=False) on every input, PIL images included (torchvision lets PIL antialias those);
ToTensor gives float32 for every input (torchvision keeps the dtype of non-uint8 arrays).
"""

import contextlib
import enum
import numbers
import sys
import threading
import warnings

import numpy as np

from .._tensor import Tensor
from ..backend import default_rng, get_array_module
from .image import images_to_float, is_pil_image, require_pil

# -- where random transforms draw from -------------------------------------------------------------

_drawing = threading.local()  # per thread: the DataLoader's worker threads each build their own batch


def current_rng():
    """The generator per-sample random transforms draw from (see the module docstring)."""
    rng = getattr(_drawing, "rng", None)
    return rng if rng is not None else default_rng()


@contextlib.contextmanager
def drawing_from(rng):
    """Within the block, per-sample random transforms in this thread draw from `rng`."""
    before = getattr(_drawing, "rng", None)
    _drawing.rng = rng
    try:
        yield rng
    finally:
        _drawing.rng = before


def has_batch_form(t):
    """True when `t` can run on whole batches: t.batch exists (for a Compose: for every member)."""
    if isinstance(t, Compose):
        return all(has_batch_form(s) for s in t.transforms)
    return callable(getattr(t, "batch", None))


# -- one sample as a batch of one ------------------------------------------------------------------

def _hwc_as_batch(a, who):
    if a.ndim == 2:
        return a[None, None], lambda y: y[0, 0]
    if a.ndim == 3:
        return a.transpose(2, 0, 1)[None], lambda y: y[0].transpose(1, 2, 0)
    raise ValueError(f"{who}: an image array must be (H, W) or (H, W, C), got shape {tuple(a.shape)}")


def _as_batch(img, who):
    """(x, back): img as an array x (B, C, H, W), and back(y), which gives a result y in img's kind."""
    if isinstance(img, Tensor):
        a = img.array
        if a.ndim == 2:
            return a[None, None], lambda y: Tensor._wrap(y[0, 0])
        if a.ndim < 2:
            raise ValueError(f"{who}: expected a Tensor (..., C, H, W), got shape {tuple(a.shape)}")
        lead = a.shape[:-3]
        return a.reshape(-1, *a.shape[-3:]), lambda y: Tensor._wrap(y.reshape(*lead, *y.shape[1:]))
    if is_pil_image(img):
        x, back = _hwc_as_batch(np.asarray(img), who)
        return x, lambda y: sys.modules["PIL.Image"].fromarray(np.ascontiguousarray(back(y)))
    if hasattr(img, "ndim") and hasattr(img, "dtype"):
        return _hwc_as_batch(img, who)
    raise TypeError(f"{who}: expected a PIL Image, an image array (H, W) or (H, W, C), or a Tensor "
                    f"(..., C, H, W); got {type(img).__name__}")


class _Transform:
    """Both forms of a transform through one kernel: draw(n, H, W, rng) -> params, apply(x, params)."""

    def draw(self, n, height, width, rng):
        return None  # deterministic

    def apply(self, x, params):
        raise NotImplementedError

    def __call__(self, img):
        x, back = _as_batch(img, type(self).__name__)
        params = self.draw(1, x.shape[2], x.shape[3], current_rng())
        if params is not None:  # one draw for the whole sample
            params = tuple(np.repeat(p, len(x)) for p in params)
        return back(self.apply(x, params))

    def batch(self, x, rng=None):
        """The transform of every image of x (B, C, H, W), each with its own random draw."""
        a = x.array if isinstance(x, Tensor) else x
        if a.ndim != 4:
            raise ValueError(f"{type(self).__name__}.batch: expected a batch (B, C, H, W), got shape "
                             f"{tuple(a.shape)}")
        rng = rng if rng is not None else current_rng()
        out = self.apply(a, self.draw(len(a), a.shape[2], a.shape[3], rng))
        return Tensor._wrap(out) if isinstance(x, Tensor) else out


# -- kernels on (B, C, H, W) arrays ------------------------------------------------------------------

PADDING_MODES = ("constant", "edge", "reflect", "symmetric")  # NumPy's pad modes of the same names


def _parse_padding(padding, who):
    """(left, top, right, bottom) from torchvision's int, (lr, tb) or (left, top, right, bottom)."""
    if isinstance(padding, numbers.Integral):
        padding = [padding]
    if not isinstance(padding, (tuple, list)) or not all(isinstance(p, numbers.Integral) for p in padding):
        raise TypeError(f"{who}: Got inappropriate padding arg {padding!r}: ints expected")
    if len(padding) not in (1, 2, 4):
        raise ValueError(f"{who}: Padding must be an int or a 1, 2, or 4 element tuple, not a "
                         f"{len(padding)} element tuple")
    if any(p < 0 for p in padding):
        raise ValueError(f"{who}: padding must be >= 0, got {padding}")
    p = [int(v) for v in padding]
    return tuple(p * 4 if len(p) == 1 else p * 2 if len(p) == 2 else p)


def _check_fill(fill, padding_mode, who):
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"{who}: Padding mode should be either constant, edge, reflect or symmetric, "
                         f"got {padding_mode!r}")
    if not (isinstance(fill, numbers.Number) or
            (isinstance(fill, (tuple, list)) and all(isinstance(f, numbers.Number) for f in fill))):
        raise TypeError(f"{who}: fill must be a number or a tuple of numbers (one per channel), got {fill!r}")


def _pad(x, left, top, right, bottom, fill=0, mode="constant"):
    """x (B, C, H, W) padded to (B, C, top + H + bottom, left + W + right)."""
    xp = get_array_module(x)
    if mode != "constant":
        return xp.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), mode=mode)
    B, C, H, W = x.shape
    value = np.asarray(fill, dtype=np.float64).reshape(-1)
    if value.size not in (1, C):
        raise ValueError(f"Pad: fill has {value.size} values, but the images have {C} channels")
    shape = (B, C, top + H + bottom, left + W + right)
    if not value.any():
        out = xp.zeros(shape, x.dtype)  # fresh zeroed memory: no pass to fill it
    else:
        out = xp.empty(shape, x.dtype)
        out[...] = xp.asarray(value.astype(x.dtype)).reshape(1, -1, 1, 1)
    out[:, :, top:top + H, left:left + W] = x
    return out


def _crop(x, top, left, height, width):
    """out[b] = x[b, :, top[b]:top[b] + height, left[b]:left[b] + width]: (B, C, height, width)."""
    xp = get_array_module(x)
    if (height, width) == x.shape[2:]:
        return x
    # every window at once, as a view (B, H - height + 1, W - width + 1, C, height, width); pick one per image
    windows = xp.lib.stride_tricks.sliding_window_view(x, (height, width), axis=(2, 3)).transpose(0, 2, 3, 1, 4, 5)
    return windows[xp.arange(len(x)), xp.asarray(top), xp.asarray(left)]


def _nearest_taps(n_in, n_out):
    """Source index of each output index (n_out,): torch's 'nearest', floor(i * n_in / n_out) in float32."""
    scale = np.float32(n_in) / np.float32(n_out)
    return np.minimum(np.floor(np.arange(n_out, dtype=np.float32) * scale).astype(np.int64), n_in - 1)


def _linear_taps(n_in, n_out, dtype):
    """Torch's linear interpolation with align_corners=False, antialias=False, along one axis.

    Output i reads the source at s = (i + 0.5) * n_in / n_out - 0.5, clamped at 0:
    out[i] = w0 * in[i0] + w1 * in[i1] with i0 = floor(s), i1 = min(i0 + 1, n_in - 1), w1 = s - i0.
    """
    scale = dtype.type(n_in) / dtype.type(n_out)
    s = np.maximum((np.arange(n_out, dtype=dtype) + dtype.type(0.5)) * scale - dtype.type(0.5), 0)
    i0 = np.minimum(np.floor(s).astype(np.int64), n_in - 1)
    w1 = np.clip(s - i0, 0, 1).astype(dtype)
    return i0, np.minimum(i0 + 1, n_in - 1), (1 - w1).astype(dtype), w1


def _resize(x, height, width, mode):
    """x (B, C, H, W) resized to (B, C, height, width) as F.interpolate(mode, align_corners=False,
    antialias=False). Integer images are interpolated in float32, then rounded (half to even)."""
    xp = get_array_module(x)
    B, C, H, W = x.shape
    if (height, width) == (H, W):
        return x
    if mode == "nearest":
        rows, cols = _nearest_taps(H, height), _nearest_taps(W, width)
        return x[:, :, xp.asarray(rows)[:, None], xp.asarray(cols)]
    dtype = np.dtype(np.float64 if x.dtype == np.float64 else np.float32)
    f = x.astype(dtype, copy=False)
    c0, c1, cw0, cw1 = (xp.asarray(a) for a in _linear_taps(W, width, dtype))
    r0, r1, rw0, rw1 = (xp.asarray(a) for a in _linear_taps(H, height, dtype))
    across = f[..., c0] * cw0 + f[..., c1] * cw1                                    # (B, C, H, width)
    out = across[:, :, r0] * rw0[:, None] + across[:, :, r1] * rw1[:, None]        # (B, C, height, width)
    if x.dtype.kind in "iub":
        return xp.round(out).astype(x.dtype)
    return out.astype(x.dtype, copy=False)


# -- the transforms ---------------------------------------------------------------------------------

class Compose:
    """Apply transforms in order. Per sample: t(img); batch form: every member's, with one rng."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img

    def batch(self, x, rng=None):
        rng = rng if rng is not None else current_rng()
        for t in self.transforms:
            if not has_batch_form(t):
                raise TypeError(f"Compose.batch: {t!r} has no batch form; use the per-sample form "
                                "(call the Compose on each sample)")
            x = t.batch(x, rng)
        return x

    def __repr__(self):
        return "Compose(\n" + "".join(f"    {t!r}\n" for t in self.transforms) + ")"


class ToTensor:
    """A PIL Image or an image array (H, W[, C]) -> a float32 Tensor (C, H, W); uint8 scaled to [0, 1].

    Batch form: uint8 (B, C, H, W) -> float32 / 255 (floats cast to float32), layout kept.
    """

    def __call__(self, pic):
        if isinstance(pic, Tensor) or not (is_pil_image(pic) or hasattr(pic, "ndim")):
            raise TypeError(f"pic should be PIL Image or ndarray. Got {type(pic)}")
        a = np.asarray(pic) if is_pil_image(pic) else pic
        if a.ndim not in (2, 3):
            raise ValueError(f"pic should be 2/3 dimensional. Got {a.ndim} dimensions.")
        chw = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
        return Tensor._wrap(images_to_float(get_array_module(a).ascontiguousarray(chw)))

    def batch(self, x, rng=None):
        if isinstance(x, Tensor):
            return Tensor._wrap(images_to_float(x.array))
        return images_to_float(x)

    def __repr__(self):
        return "ToTensor()"


class Normalize(_Transform):
    """(x - mean[c]) / std[c] for each channel c of a float Tensor (..., C, H, W).

    mean, std: sequences of C values (or of one, for every channel). inplace=True writes the result
    into the given tensor, as torchvision.
    """

    def __init__(self, mean, std, inplace=False):
        self.mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        self.std = np.asarray(std, dtype=np.float64).reshape(-1)
        if self.mean.shape != self.std.shape:
            raise ValueError(f"Normalize: mean and std need the same length, got mean {self.mean.tolist()}, "
                             f"std {self.std.tolist()}")
        if np.any(self.std == 0):
            raise ValueError(f"Normalize: std evaluated to zero, leading to division by zero "
                             f"(std {self.std.tolist()})")
        self.inplace = inplace

    def apply(self, x, params):
        if x.dtype.kind != "f":
            raise TypeError(f"Normalize: Input tensor should be a float tensor. Got {x.dtype}. "
                            "Put ToTensor() before Normalize.")
        if len(self.mean) not in (1, x.shape[1]):
            raise ValueError(f"Normalize: {len(self.mean)} channel means for images of {x.shape[1]} channels, "
                             f"shape (..., {x.shape[1]}, H, W)")
        xp = get_array_module(x)
        mean = xp.asarray(self.mean, dtype=x.dtype).reshape(1, -1, 1, 1)  # x's dtype: float32 stays float32
        std = xp.asarray(self.std, dtype=x.dtype).reshape(1, -1, 1, 1)
        out = x - mean
        out /= std  # in place: one new array per batch, not two
        return out

    def __call__(self, tensor):
        if not isinstance(tensor, Tensor):
            raise TypeError(f"img should be Tensor Image. Got {type(tensor)}. Put ToTensor() before Normalize.")
        out = super().__call__(tensor)
        if self.inplace:
            tensor.array[...] = out.array
            return tensor
        return out

    def __repr__(self):
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class Pad(_Transform):
    """Pad every side: padding an int (all sides), (left/right, top/bottom) or (left, top, right, bottom).

    padding_mode: 'constant' (with fill: a number, or one per channel), 'edge', 'reflect'
    (without repeating the edge) or 'symmetric' (repeating it). (..., C, H, W) -> (..., C, H', W').
    """

    def __init__(self, padding, fill=0, padding_mode="constant"):
        self.sides = _parse_padding(padding, "Pad")
        _check_fill(fill, padding_mode, "Pad")
        self.padding, self.fill, self.padding_mode = padding, fill, padding_mode

    def apply(self, x, params):
        return _pad(x, *self.sides, self.fill, self.padding_mode)

    def __repr__(self):
        return f"Pad(padding={self.padding}, fill={self.fill}, padding_mode={self.padding_mode})"


def _pair(size, who):
    if isinstance(size, numbers.Integral):
        return int(size), int(size)
    if isinstance(size, (tuple, list)) and len(size) in (1, 2) and all(isinstance(s, numbers.Integral) for s in size):
        return (int(size[0]), int(size[-1]))
    raise ValueError(f"{who}: Please provide only two dimensions (h, w) for size, got {size!r}")


class RandomCrop(_Transform):
    """Pad (optionally), then cut a (h, w) window at a random place. (..., C, H, W) -> (..., C, h, w).

    size: int or (h, w). padding, fill, padding_mode: as Pad. pad_if_needed: pad an image smaller
    than the crop on both sides by the difference, as torchvision. The batch form draws a place
    for each image.
    """

    def __init__(self, size, padding=None, pad_if_needed=False, fill=0, padding_mode="constant"):
        self.size = _pair(size, "RandomCrop")
        if min(self.size) < 1:
            raise ValueError(f"RandomCrop: size must be >= 1, got {size}")
        self.sides = _parse_padding(padding, "RandomCrop") if padding is not None else (0, 0, 0, 0)
        _check_fill(fill, padding_mode, "RandomCrop")
        self.padding, self.pad_if_needed, self.fill, self.padding_mode = padding, pad_if_needed, fill, padding_mode

    def _extra(self, height, width):
        """(left, top, right, bottom) that pad_if_needed adds to an image padded to (height, width)."""
        (th, tw) = self.size
        dw = max(tw - width, 0) if self.pad_if_needed else 0
        dh = max(th - height, 0) if self.pad_if_needed else 0
        return dw, dh, dw, dh

    def draw(self, n, height, width, rng):
        """Top-left corners (top (n,), left (n,)) of the windows in the padded images."""
        left, top, right, bottom = self.sides
        h, w = height + top + bottom, width + left + right
        el, et, er, eb = self._extra(h, w)
        h, w = h + et + eb, w + el + er
        th, tw = self.size
        if h < th or w < tw:
            raise ValueError(f"RandomCrop: Required crop size {(th, tw)} is larger than input image size "
                             f"{(h, w)} (after padding by {self.padding})")
        return rng.integers(0, h - th + 1, size=n), rng.integers(0, w - tw + 1, size=n)

    def apply(self, x, params):
        top, left = params
        if any(self.sides):
            x = _pad(x, *self.sides, self.fill, self.padding_mode)
        extra = self._extra(*x.shape[2:])
        if any(extra):
            x = _pad(x, *extra, self.fill, self.padding_mode)
        return _crop(x, top, left, *self.size)

    def __repr__(self):
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip(_Transform):
    """Mirror left-right with probability p (the batch form: independently for each image)."""

    axis = -1

    def __init__(self, p=0.5):
        if not 0 <= p <= 1:
            raise ValueError(f"{type(self).__name__}: p must be in [0, 1], got {p}")
        self.p = p

    def draw(self, n, height, width, rng):
        """Which of n images to flip: (bool (n,),)."""
        return (rng.random(n) < self.p,)

    def apply(self, x, params):
        xp = get_array_module(x)
        chosen = np.flatnonzero(params[0])  # found on the host: no device round trip
        out = x.copy()
        if len(chosen):
            chosen = xp.asarray(chosen)
            out[chosen] = xp.flip(x[chosen], axis=self.axis)
        return out

    def __repr__(self):
        return f"{type(self).__name__}(p={self.p})"


class RandomVerticalFlip(RandomHorizontalFlip):
    """Mirror top-bottom with probability p (the batch form: independently for each image)."""

    axis = -2


class InterpolationMode(enum.Enum):
    """torchvision's interpolation modes; Resize has NEAREST and BILINEAR."""

    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


_PIL_CODES = {0: InterpolationMode.NEAREST, 2: InterpolationMode.BILINEAR, 3: InterpolationMode.BICUBIC,
              4: InterpolationMode.BOX, 5: InterpolationMode.HAMMING, 1: InterpolationMode.LANCZOS}


class Resize(_Transform):
    """Resize to `size`: (h, w), or an int for the smaller edge (the other keeps the aspect ratio,
    int(size * long / short), capped at max_size). (..., C, H, W) -> (..., C, h, w).

    interpolation: InterpolationMode.NEAREST or BILINEAR (or 'nearest', 'bilinear'), computed as
    torch's F.interpolate(mode, align_corners=False, antialias=False) for every input, PIL images
    too; integer images are rounded back. torchvision antialiases when it shrinks (PIL images,
    and tensors with its default antialias=True), so shrunk images differ slightly from its.
    """

    def __init__(self, size, interpolation=InterpolationMode.BILINEAR, max_size=None, antialias=None):
        if not isinstance(size, (numbers.Integral, tuple, list)):
            raise TypeError(f"Resize: Size should be int or sequence. Got {type(size)}")
        if isinstance(size, (tuple, list)) and len(size) not in (1, 2):
            raise ValueError(f"Resize: If size is a sequence, it should have 1 or 2 values, got {size!r}")
        mode = _PIL_CODES.get(interpolation, interpolation) if isinstance(interpolation, int) else interpolation
        try:
            mode = InterpolationMode(mode.value if isinstance(mode, InterpolationMode) else mode)
        except ValueError:
            raise ValueError(f"Resize: unknown interpolation {interpolation!r}") from None
        if mode not in (InterpolationMode.NEAREST, InterpolationMode.BILINEAR):
            raise ValueError(f"Resize: interpolation {mode.value!r} is not implemented in minicnn; "
                             "use 'nearest' or 'bilinear'")
        if antialias:
            warnings.warn("Resize: antialias=True is not implemented; minicnn resizes as "
                          "F.interpolate(antialias=False), so shrunk images differ slightly from torchvision's",
                          stacklevel=2)
        self.size, self.interpolation, self.max_size, self.antialias = size, mode, max_size, antialias

    def output_size(self, height, width):
        """(h, w) of the resized image, torchvision's rule."""
        if isinstance(self.size, (tuple, list)) and len(self.size) == 2:
            return int(self.size[0]), int(self.size[1])
        requested = int(self.size if isinstance(self.size, numbers.Integral) else self.size[0])
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = requested, int(requested * long / short)
        if self.max_size is not None:
            if self.max_size <= requested:
                raise ValueError(f"Resize: max_size = {self.max_size} must be strictly greater than the requested "
                                 f"size for the smaller edge size = {self.size}")
            if new_long > self.max_size:
                new_short, new_long = int(self.max_size * new_short / new_long), self.max_size
        return (new_long, new_short) if width <= height else (new_short, new_long)

    def apply(self, x, params):
        return _resize(x, *self.output_size(*x.shape[2:]), self.interpolation.value)

    def __repr__(self):
        return f"Resize(size={self.size}, interpolation={self.interpolation.value}, max_size={self.max_size})"


class Lambda:
    """A function of one sample as a transform. Per sample only (no batch form)."""

    def __init__(self, lambd):
        if not callable(lambd):
            raise TypeError(f"Argument lambd should be callable, got {type(lambd).__name__!r}")
        self.lambd = lambd

    def __call__(self, img):
        return self.lambd(img)

    def __repr__(self):
        return "Lambda()"


class ToPILImage:
    """A Tensor (C, H, W) or (H, W), or an array (H, W[, C]), -> a PIL Image (needs Pillow).

    Floats are taken as [0, 1] and become uint8 as torchvision does: (x * 255) truncated.
    One channel gives mode 'L', three 'RGB'. `mode` converts the result. Per sample only.
    """

    def __init__(self, mode=None):
        self.mode = mode

    def __call__(self, pic):
        Image = require_pil("ToPILImage")
        if isinstance(pic, Tensor):
            a = np.asarray(pic.detach())
            if a.ndim not in (2, 3):
                raise ValueError(f"pic should be 2/3 dimensional. Got {a.ndim} dimensions.")
            a = a if a.ndim == 2 else a.transpose(1, 2, 0)
        elif hasattr(pic, "ndim"):
            a = np.asarray(pic)
            if a.ndim not in (2, 3):
                raise ValueError(f"pic should be 2/3 dimensional. Got {a.ndim} dimensions.")
        else:
            raise TypeError(f"pic should be Tensor or ndarray. Got {type(pic)}.")
        if a.dtype.kind == "f" and self.mode != "F":
            a = (a * 255).astype(np.uint8)
        if a.ndim == 3 and a.shape[2] == 1:
            a = a[:, :, 0]
        img = Image.fromarray(np.ascontiguousarray(a))
        return img.convert(self.mode) if self.mode is not None and img.mode != self.mode else img

    def __repr__(self):
        return f"ToPILImage(mode={self.mode})" if self.mode else "ToPILImage()"
