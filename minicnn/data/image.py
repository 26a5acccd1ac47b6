"""One image at a time, as torchvision's data sets hand them out, and the batch form of "to float".

A data set stores its images as uint8 (N, C, H, W). One of them, `ds[i]`, comes out as torchvision's
does: a PIL Image (mode "L" for C = 1, "RGB" for C = 3) when Pillow is installed; otherwise, or for
other channel counts and dtypes, a NumPy array laid out as `np.asarray(pil_image)` would be:
(H, W) for one channel, (H, W, C) for more. Code that does `np.asarray(img)` gets the same array
either way.

Pillow is optional: it is imported when an image is made, never when minicnn is.
"""

import sys

import numpy as np


def pil_image_module():
    """PIL.Image, or None when Pillow is not installed."""
    try:
        from PIL import Image
    except ImportError:
        return None
    return Image


def require_pil(who):
    """PIL.Image, or an ImportError that says `who` needs Pillow and how to get it."""
    Image = pil_image_module()
    if Image is None:
        raise ImportError(f"{who} needs Pillow, which is not installed: pip install pillow")
    return Image


def is_pil_image(obj):
    """True for a PIL Image (without importing Pillow: no PIL Image exists before it is imported)."""
    module = sys.modules.get("PIL.Image")
    return module is not None and isinstance(obj, module.Image)


def to_sample(image):
    """One stored image (C, H, W) as a data set hands it out: a PIL Image, or an (H, W[, C]) array copy."""
    hwc = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
    Image = pil_image_module() if image.dtype == np.uint8 and image.shape[0] in (1, 3) else None
    if Image is not None:
        return Image.fromarray(np.ascontiguousarray(hwc))
    return hwc.copy()  # a copy: editing a sample must not edit the data set


def images_to_float(images):
    """float32 images: uint8 (..., C, H, W) is scaled to [0, 1], floats are cast to float32.

    The batch form of ToTensor (the layout is already channels first). NumPy or CuPy arrays.
    """
    if images.dtype == np.uint8:
        out = images.astype(np.float32)
        out /= 255  # in place: one new array, not two
        return out
    return images.astype(np.float32, copy=False)
