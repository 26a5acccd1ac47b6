"""torch.backends.cuda: whether a CUDA backend is built (here: whether CuPy imports and sees a GPU),
and matmul.allow_tf32, accepted and recorded (CuPy's GEMM keeps float32 either way)."""


class _Matmul:
    allow_tf32 = False
    allow_fp16_reduced_precision_reduction = True
    allow_bf16_reduced_precision_reduction = True


matmul = _Matmul()


def is_built():
    from .. import _tensor
    return _tensor.cuda.is_available()
