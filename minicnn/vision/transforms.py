"""torchvision.transforms' names (implemented in minicnn.data.transforms).

Each works on one sample, t(img), as torchvision (a PIL Image, an image array or a Tensor
(..., C, H, W)), and, except Lambda and ToPILImage, on whole batches: t.batch(x, rng).
"""

from ..data.transforms import (Compose, InterpolationMode, Lambda, Normalize, Pad, RandomCrop,
                               RandomHorizontalFlip, RandomVerticalFlip, Resize, ToPILImage, ToTensor)

__all__ = ["Compose", "ToTensor", "Normalize", "Pad", "Resize", "InterpolationMode", "RandomCrop",
           "RandomHorizontalFlip", "RandomVerticalFlip", "Lambda", "ToPILImage"]
