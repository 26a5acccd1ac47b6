"""torch.backends: the flags that training scripts set, so that they run unchanged.

    import minicnn.backends.cudnn as cudnn
    cudnn.benchmark = True                     # accepted; minicnn has no cuDNN, nothing changes
    minicnn.backends.mps.is_available()        # False: minicnn runs on NumPy (CPU) or CuPy (CUDA)

minicnn's convolution is im2col + GEMM on both backends, with no algorithm search to switch on
or off, so these flags are recorded where a program can read them back, and change nothing.
"""

from . import cuda, cudnn, mps  # noqa: F401
