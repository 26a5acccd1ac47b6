"""torch.backends.mps (Apple's GPU): minicnn has no such backend."""


def is_available():
    return False


def is_built():
    return False
