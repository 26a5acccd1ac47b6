"""torch.backends.cudnn's flags. minicnn does not call cuDNN: each flag keeps the value a program
sets, and no flag changes how minicnn computes. is_available() is False, as on torch's CPU build."""

enabled = True
benchmark = False  # torch's autotuner; minicnn has one convolution algorithm and nothing to tune
deterministic = False  # minicnn's results do not depend on it: the same inputs give the same bits
allow_tf32 = True


def is_available():
    """False: minicnn has no cuDNN (its GPU path is CuPy's GEMM)."""
    return False


def version():
    """None, as torch answers where cuDNN is not there."""
    return None
