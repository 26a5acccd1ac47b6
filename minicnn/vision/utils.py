"""torchvision.utils' names: make_grid, save_image (implemented in minicnn.data.grid)."""

from ..data.grid import make_grid, save_image

__all__ = ["make_grid", "save_image"]
