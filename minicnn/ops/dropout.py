"""Inverted dropout: zero each input with probability p while training, and scale the
survivors by 1 / (1 - p) so that nothing needs rescaling at test time. Shapes: any."""

from ..backend import default_rng, get_array_module


def dropout(x, p=0.5, training=True, rng=None):
    """out = x * mask / (1 - p), mask ~ Bernoulli(1 - p); the identity when not training.

    rng: a numpy Generator for the mask (default: minicnn's, seeded by minicnn.seed).
    """
    if not 0 <= p < 1:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if not training or p == 0:
        return x, None
    xp = get_array_module(x)
    keep = (rng or default_rng()).random(x.shape) >= p
    mask = xp.asarray(keep, dtype=x.dtype) / x.dtype.type(1 - p)
    return x * mask, mask


def dropout_backward(dout, cache):
    """dx = dout * mask / (1 - p): the same units are dropped on the way back."""
    return dout if cache is None else dout * cache


# -- channel dropout (torch's Dropout2d): zero whole feature maps, not single values.
# Neighbouring pixels of a feature map are strongly correlated, so dropping single values of a
# convolution's output barely regularises it; dropping a whole channel does (Tompson et al., 2015).


def dropout2d(x, p=0.5, training=True, rng=None):
    """out[n, c] = x[n, c] * mask[n, c] / (1 - p), mask[n, c] ~ Bernoulli(1 - p): one draw per
    (sample, channel), shared by all H x W values. x (N, C, H, W) -> out (N, C, H, W).

    p = 1 zeroes everything (as torch). The identity when not training or p = 0 (cache None).
    rng: a numpy Generator for the mask (default: minicnn's, seeded by minicnn.manual_seed).
    """
    if not 0 <= p <= 1:
        raise ValueError(f"dropout2d: dropout probability has to be between 0 and 1, but got {p}")
    if x.ndim != 4:
        raise ValueError(f"dropout2d: expected input of shape (N, C, H, W), got shape {tuple(x.shape)}")
    if not training or p == 0:
        return x, None
    xp = get_array_module(x)
    N, C = x.shape[:2]
    keep = (rng or default_rng()).random((N, C, 1, 1)) >= p
    mask = xp.asarray(keep, dtype=x.dtype) * x.dtype.type(0 if p == 1 else 1 / (1 - p))
    return x * mask, mask


def dropout2d_backward(dout, cache):
    """dx = dout * mask / (1 - p): the dropped channels get no gradient. mask (N, C, 1, 1) broadcasts."""
    return dout if cache is None else dout * cache
