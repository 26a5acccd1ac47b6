"""Batch transforms (data augmentation and normalisation) for DataLoader.

Each transform is a callable `t(x, rng)`: x float32 (B, C, H, W), NumPy or
CuPy; rng a NumPy Generator. Random choices (which images to flip, where to
crop) are drawn on the host with rng, so a seed gives the same augmentation
on either backend, then applied to the whole batch at once with xp.
Outputs keep x's dtype.

    >>> t = Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(),
    ...              Normalize((0.49, 0.48, 0.45), (0.25, 0.24, 0.26))])
    >>> loader = DataLoader(CIFAR10(), 128, shuffle=True, seed=0, transform=t)
"""

import numpy as np

from ..backend import get_array_module


def _rng(rng):
    return rng if rng is not None else np.random.default_rng()


class Compose:
    """Apply transforms in order, all drawing from the same rng."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, x, rng=None):
        rng = _rng(rng)
        for t in self.transforms:
            x = t(x, rng)
        return x

    def __repr__(self):
        return f"Compose({self.transforms!r})"


class Normalize:
    """(x - mean[c]) / std[c] for each channel c. mean, std: sequences of length C."""

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        self.std = np.asarray(std, dtype=np.float64).reshape(-1)
        if self.mean.shape != self.std.shape or np.any(self.std <= 0):
            raise ValueError(f"Normalize: mean and std need the same length and std > 0, "
                             f"got mean {self.mean.tolist()}, std {self.std.tolist()}")

    def __call__(self, x, rng=None):
        if x.ndim != 4 or x.shape[1] != len(self.mean):
            raise ValueError(f"Normalize: expected (B, {len(self.mean)}, H, W) for "
                             f"{len(self.mean)} channel means, got shape {x.shape}")
        xp = get_array_module(x)
        # cast to x's dtype so float32 stays float32
        mean = xp.asarray(self.mean, dtype=x.dtype).reshape(1, -1, 1, 1)
        std = xp.asarray(self.std, dtype=x.dtype).reshape(1, -1, 1, 1)
        return (x - mean) / std

    def __repr__(self):
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class RandomHorizontalFlip:
    """Mirror each image left-right with probability p (independently per image)."""

    def __init__(self, p=0.5):
        if not 0 <= p <= 1:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = p

    def draw(self, n, rng):
        """Which of n images to flip: bool (n,)."""
        return rng.random(n) < self.p

    def __call__(self, x, rng=None):
        xp = get_array_module(x)
        flip = xp.asarray(self.draw(len(x), _rng(rng))).reshape(-1, 1, 1, 1)
        return xp.where(flip, x[..., ::-1], x)

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class RandomCrop:
    """Zero-pad by `padding` on every side, then cut a (size_h, size_w) window at a
    random place, independently per image. (B, C, H, W) -> (B, C, size_h, size_w).

    size: int or (h, w); needs h <= H + 2*padding and w <= W + 2*padding.
    """

    def __init__(self, size, padding=0):
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        if padding < 0 or min(self.size) < 1:
            raise ValueError(f"RandomCrop: size must be >= 1 and padding >= 0, "
                             f"got size {size}, padding {padding}")
        self.padding = padding

    def draw(self, n, height, width, rng):
        """Top-left corners (top (n,), left (n,)) of the windows in the padded images."""
        (h, w), p = self.size, self.padding
        if h > height + 2 * p or w > width + 2 * p:
            raise ValueError(f"RandomCrop: a {h}x{w} crop does not fit in {height}x{width} "
                             f"images padded by {p}")
        return (rng.integers(0, height + 2 * p - h + 1, size=n),
                rng.integers(0, width + 2 * p - w + 1, size=n))

    def __call__(self, x, rng=None):
        xp = get_array_module(x)
        (h, w), p = self.size, self.padding
        B, C, H, W = x.shape
        top, left = self.draw(B, H, W, _rng(rng))
        padded = xp.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        # one gather for the whole batch: out[b, c, i, j] = padded[b, c, top[b] + i, left[b] + j]
        rows = xp.asarray(top[:, None] + np.arange(h))      # (B, h)
        cols = xp.asarray(left[:, None] + np.arange(w))     # (B, w)
        b = xp.arange(B)[:, None, None, None]
        c = xp.arange(C)[None, :, None, None]
        return padded[b, c, rows[:, None, :, None], cols[:, None, None, :]]

    def __repr__(self):
        return f"RandomCrop(size={self.size}, padding={self.padding})"
