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
