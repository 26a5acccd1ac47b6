"""torch.Generator: a stream of random numbers of its own, for the `generator=` arguments
(random_split, DataLoader, rand, randn, randint, randperm, normal_, uniform_, nn.init).

    g = minicnn.Generator().manual_seed(42)
    train, val = random_split(data, [50000, 10000], generator=g)   # the same split on every run

Inside is a NumPy Generator (PCG64). A Generator's draws advance its state, as torch's do: two
random_split calls with one generator give two different splits. minicnn.default_generator is
the global stream (the one minicnn.manual_seed seeds); minicnn.manual_seed returns it, as
torch.manual_seed does. The numbers differ from torch's: only the seeding behaves alike.
"""

import json

import numpy as np

from . import backend


def _fresh_seed():
    return int(np.random.SeedSequence().entropy % (2 ** 63))


class Generator:
    """torch.Generator(device='cpu'): manual_seed(s) (returns the generator), seed(),
    initial_seed(), get_state() / set_state(state) (a uint8 tensor)."""

    def __init__(self, device="cpu"):
        self.device = str(device)
        self._seed = _fresh_seed()
        self._numpy = np.random.default_rng(self._seed)

    @property
    def _rng(self):
        return self._numpy

    def manual_seed(self, seed):
        seed = _check_seed(seed)
        self._seed, self._numpy = seed, np.random.default_rng(seed)
        return self

    def seed(self):
        """A fresh seed from the OS, set and returned."""
        seed = _fresh_seed()
        self.manual_seed(seed)
        return seed

    def initial_seed(self):
        return self._seed

    def get_state(self):
        from ._tensor import Tensor
        state = json.dumps(self._rng.bit_generator.state).encode()
        return Tensor._wrap(np.frombuffer(state, dtype=np.uint8).copy())

    def set_state(self, new_state):
        try:
            state = json.loads(bytes(np.asarray(new_state.numpy() if hasattr(new_state, "numpy") else new_state,
                                                dtype=np.uint8)).decode())
            self._rng.bit_generator.state = state
        except (ValueError, TypeError, KeyError) as exc:
            raise RuntimeError(f"Generator.set_state: not a state from get_state() ({exc})") from None
        return self

    def __repr__(self):
        return f"<minicnn.Generator object (device {self.device}, initial seed {self.initial_seed()})>"


class _DefaultGenerator(Generator):
    """minicnn.default_generator: the global stream of minicnn.backend (weights, dropout, shuffling)."""

    def __init__(self):
        self.device = "cpu"

    @property
    def _rng(self):
        return backend.default_rng()

    def manual_seed(self, seed):
        backend.seed(_check_seed(seed))
        return self

    def initial_seed(self):
        return backend.initial_seed()


def _check_seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"manual_seed expected an int seed, got {type(seed).__name__}")
    return int(seed) % (2 ** 64)  # torch takes negative seeds too, as their 64-bit pattern


default_generator = _DefaultGenerator()


def rng_of(generator, who):
    """The NumPy Generator to draw from: minicnn's global one for None, the Generator's own stream."""
    if generator is None:
        return backend.default_rng()
    if isinstance(generator, Generator):
        return generator._rng
    raise TypeError(f"{who}: generator must be a minicnn.Generator (or None for the global one), "
                    f"got {type(generator).__name__}")
