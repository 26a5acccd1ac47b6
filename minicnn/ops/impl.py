"""Which implementation the ops use: 'plain' (the textbook form) or 'fast' (the default).

Every op that has a fast path keeps its plain form beside it, and both give the same numbers
(the tests hold them to each other and to torch). Learners switch the whole engine at once:

    minicnn.set_impl("plain")           # from here on
    with minicnn.set_impl("plain"):     # or only inside the block (the old choice comes back)
        ...
    minicnn.get_impl()                  # 'fast'

as torch.set_grad_enabled works both ways. A single call can still pass impl= to an op.
The choice is read when an op runs forward; a convolution's or a pooling's backward follows its
forward's choice (it is in the cache); the element-wise fast paths give the same bits as the plain ones.
"""

IMPLS = ("plain", "fast")
IMPL = "fast"


def choose(impl, where):
    """impl, or the engine's current choice when impl is None; a clear error for a wrong name."""
    impl = IMPL if impl is None else impl
    if impl not in IMPLS:
        raise ValueError(f"{where}: impl must be 'plain' or 'fast', got {impl!r}")
    return impl


def get_impl():
    """The implementation the ops use now: 'plain' or 'fast'."""
    return IMPL


class set_impl:
    """Use implementation name ('plain' or 'fast') from now on; as a context manager, only inside the block."""

    def __init__(self, name):
        global IMPL
        choose(name, "set_impl")
        self.previous, IMPL = IMPL, name

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        global IMPL
        IMPL = self.previous
        return False

    def __repr__(self):
        return f"set_impl({IMPL!r})"
